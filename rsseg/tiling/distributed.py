"""How prediction work is shared between ``torchrun`` ranks: whole scenes, or row bands of one scene.

Nothing is scheduled at run time: every rank derives its share from its rank and the world size,
so the split is the same on every rank and after a restart.
"""

from __future__ import annotations

from rsseg.distributed import DistEnv


def contiguous_share(n: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s contiguous slice of ``n`` items split as evenly as possible over ``world`` ranks."""
    return slice(n * rank // world, n * (rank + 1) // world)


def scene_share(n_scenes: int, env: DistEnv) -> tuple[list[int], bool]:
    """The scenes this rank runs, and whether each is split into row bands across all ranks.

    With at least as many scenes as ranks, whole scenes go round-robin (scene i to rank
    i mod N); with fewer (one huge mosaic), every rank runs every scene on its own rows.
    """
    if not env.enabled:
        return list(range(n_scenes)), False
    if n_scenes >= env.world_size:
        return list(range(env.rank, n_scenes, env.world_size)), False
    return list(range(n_scenes)), True
