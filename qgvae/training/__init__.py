"""Training: the trainer shared by every method, its checkpoints, and the throughput bench."""

from .checkpoint import CHECKPOINT, LOG, RESULT, load_result
from .trainer import train, train_step, validate

__all__ = ["CHECKPOINT", "LOG", "RESULT", "load_result", "train", "train_step", "validate"]
