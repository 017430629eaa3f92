"""How prediction work is shared between ``torchrun`` ranks: re-exported from :mod:`rsseg.distributed`."""

from rsseg.distributed import contiguous_share, scene_share

__all__ = ["contiguous_share", "scene_share"]
