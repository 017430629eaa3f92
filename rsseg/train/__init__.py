"""Training and evaluation: losses, metrics, the trainer, distributed helpers."""

from rsseg.train.config import build_config
from rsseg.train.losses import DiceLoss, SegmentationLoss
from rsseg.train.metrics import ConfusionMatrix, compute_metrics, format_table
from rsseg.train.trainer import Trainer, train

__all__ = ["ConfusionMatrix", "DiceLoss", "SegmentationLoss", "Trainer", "build_config", "compute_metrics",
           "format_table", "train"]
