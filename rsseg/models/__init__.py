"""Model zoo: registry, checkpoints (self-describing model files), architectures."""

from rsseg.models.base import SegmentationModel
from rsseg.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from rsseg.models.registry import create_model, list_models, register_model

# Architectures register themselves on import.
from rsseg.models import smp_models  # noqa: F401,E402  isort: skip
from rsseg.models import manet  # noqa: F401,E402  isort: skip
from rsseg.models import maresunet  # noqa: F401,E402  isort: skip
from rsseg.models import abcnet  # noqa: F401,E402  isort: skip

__all__ = ["SegmentationModel", "ModelCard", "create_model", "list_models", "register_model",
           "load_checkpoint", "save_checkpoint"]
