"""Training: the trainer shared by every method, its checkpoints, schedules, validation and the
throughput bench."""

from .checkpoint import BEST, CHECKPOINT, KEPT, LOG, RESULT, load_result
from .trainer import train, train_step
from .validation import validate

__all__ = ["BEST", "CHECKPOINT", "KEPT", "LOG", "RESULT", "load_result", "train", "train_step"]
__all__ += ["validate"]
