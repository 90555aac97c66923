"""Datasets for jaxal: loading (`load_dataset`), class transforms, input noise, normalization and
splits."""
from jaxal.data.sources import (FASHION_MNIST_CLASSES, IDX_FILES, IMAGE_EXTENSIONS, SOURCE_NAMES,
                                Dataset, DatasetError, check_labels, load_dataset, read_idx)
from jaxal.data.noise import KINDS as NOISE_KINDS, add_noise, noise_dataset
from jaxal.data.splits import Splits, balanced_indices, make_splits
from jaxal.data.transforms import (channel_stats, load_class_map, merge_classes, normalize,
                                   subsample, subset_classes)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IDX_FILES",
    "IMAGE_EXTENSIONS",
    "NOISE_KINDS",
    "SOURCE_NAMES",
    "Dataset",
    "DatasetError",
    "Splits",
    "add_noise",
    "balanced_indices",
    "channel_stats",
    "check_labels",
    "load_class_map",
    "load_dataset",
    "make_splits",
    "merge_classes",
    "noise_dataset",
    "normalize",
    "read_idx",
    "subsample",
    "subset_classes",
]
