"""Model zoo: registry, checkpoints (self-describing model files), architectures."""

from rsseg.models.base import SegmentationModel
from rsseg.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from rsseg.models.registry import create_model, list_models, register_model

# Architecture modules register themselves when the registry first imports them (on first use),
# so that importing rsseg does not import timm/smp until a model is needed.

__all__ = ["SegmentationModel", "ModelCard", "create_model", "list_models", "register_model",
           "load_checkpoint", "save_checkpoint"]
