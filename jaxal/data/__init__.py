"""Datasets for jaxal: loading (`load_dataset`), class transforms, normalization and splits."""
from jaxal.data.sources import (FASHION_MNIST_CLASSES, IDX_FILES, IMAGE_EXTENSIONS, SOURCE_NAMES,
                                Dataset, DatasetError, check_labels, load_dataset, read_idx)
from jaxal.data.splits import Splits, balanced_indices, make_splits
from jaxal.data.transforms import (channel_stats, load_class_map, merge_classes, normalize,
                                   subset_classes)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IDX_FILES",
    "IMAGE_EXTENSIONS",
    "SOURCE_NAMES",
    "Dataset",
    "DatasetError",
    "Splits",
    "balanced_indices",
    "channel_stats",
    "check_labels",
    "load_class_map",
    "load_dataset",
    "make_splits",
    "merge_classes",
    "normalize",
    "read_idx",
    "subset_classes",
]
