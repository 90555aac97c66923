"""Self-supervised pretraining on the unlabeled pool (SimCLR): `loss` (NT-Xent), `augment` (the
views), `steps` (the network, state and jitted steps), `probe` (linear probe), `run` (a resumable
run writing encoder weights and the pool's embeddings), `configs` (presets)."""
from jaxal.pretrain.augment import Augment, views
from jaxal.pretrain.loss import nt_xent
from jaxal.pretrain.probe import linear_probe
from jaxal.pretrain.run import pretrain
from jaxal.pretrain.steps import PretrainState, SimCLRNet, init_state, make_embed, make_train_steps

__all__ = ["Augment", "PretrainState", "SimCLRNet", "init_state", "linear_probe", "make_embed",
           "make_train_steps", "nt_xent", "pretrain", "views"]
