"""The grid of sliding windows over a scene."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from rsseg.io.geometry import axis_starts


@dataclass(frozen=True)
class Tile:
    """One window: its grid row, top-left corner and the extent that lies inside the scene."""

    row: int
    y: int
    x: int
    height: int
    width: int


@dataclass(frozen=True)
class TileGrid:
    """Sliding windows of ``tile_h × tile_w`` over a ``height × width`` scene, row-major."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @classmethod
    def build(cls, height: int, width: int, tile_h: int, tile_w: int, stride_y: int, stride_x: int) -> TileGrid:
        return cls(height, width, tile_h, tile_w,
                   tuple(axis_starts(height, tile_h, stride_y)), tuple(axis_starts(width, tile_w, stride_x)))

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def __iter__(self) -> Iterator[Tile]:
        return self.tiles(range(len(self.row_starts)))

    def tiles(self, rows: range) -> Iterator[Tile]:
        """The windows of grid rows ``rows``, row-major."""
        for r in rows:
            y = self.row_starts[r]
            h = min(self.tile_h, self.height - y)
            for x in self.col_starts:
                yield Tile(r, y, x, h, min(self.tile_w, self.width - x))

    def final_rows_after(self, row: int) -> int:
        """Scene rows above this index are final once every window of grid row ``row`` is blended."""
        return self.row_starts[row + 1] if row + 1 < len(self.row_starts) else self.height
