"""Model zoo: registry, checkpoints (self-describing model files), architectures."""

from rsseg.models.base import SegmentationModel
from rsseg.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from rsseg.models.registry import create_model, list_models, register_model

# Architecture modules (rsseg.models.registry.ARCHITECTURES) are imported on first use of the
# registry, so that importing rsseg does not import timm/smp until a model is needed.

__all__ = ["SegmentationModel", "ModelCard", "create_model", "list_models", "register_model",
           "load_checkpoint", "save_checkpoint"]
