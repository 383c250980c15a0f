"""Training: the loop, one run from a config to result files, comparisons, benchmarks."""

from .bench import benchmark
from .loop import TrainingDiverged, evaluate, train_epoch
from ..optimizers import OPTIMIZERS, make_optimizer, trainable
from .config import RunConfig, resolve_device
from .run import build, run

__all__ = ["OPTIMIZERS", "RunConfig", "TrainingDiverged", "benchmark", "build", "evaluate",
           "make_optimizer", "resolve_device", "run", "train_epoch"]
