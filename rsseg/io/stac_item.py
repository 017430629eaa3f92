"""A STAC Item (a local ``.json`` or a URL) as a scene: its image asset, chosen by name or by role."""

from __future__ import annotations

from rsseg.errors import RssegError
from rsseg.io.remote import Scene, as_scene, public_url

ROLES = ("visual", "data")  # in order of preference


def is_stac_item(arg: str) -> bool:
    """Whether a scene argument names a JSON file (taken for a STAC Item)."""
    return public_url(arg).lower().endswith(".json")


def item_scene(arg: str, asset: str | None = None, download_whole: bool = False) -> Scene:
    """The scene of Item ``arg``: asset ``asset`` or the first with role ``visual``, then ``data``."""
    import pystac

    shown = public_url(arg) if "://" in arg else arg
    try:
        item = pystac.Item.from_file(arg)
    except (OSError, ValueError, KeyError, TypeError, pystac.STACError) as err:  # I/O, JSON, not an Item
        raise RssegError(f"{shown}: not a readable STAC Item ({type(err).__name__}: {str(err)[:120]})") from None
    if asset is not None:
        chosen = item.assets.get(asset)
        if chosen is None:
            raise RssegError(f"{shown}: no asset {asset!r} (`asset`; the Item has {', '.join(item.assets)})")
    else:
        chosen = next((a for role in ROLES for a in item.assets.values() if role in (a.roles or [])), None)
        if chosen is None:
            raise RssegError(f"{shown}: no asset with role {' or '.join(ROLES)}; choose one with `asset` "
                             f"({', '.join(item.assets)})")
    return as_scene(chosen.get_absolute_href() or chosen.href, download_whole)
