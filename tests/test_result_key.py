"""The resume key follows the options' fields marked as changing the result, and only those."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import random_scene, write_scene

from rsseg.tiling import PredictOptions, predict_scene
from rsseg.tiling.journal import BandJournal
from rsseg.tiling.options import RESULT, result_fields

Extended = dataclasses.make_dataclass(
    "Extended", [("sharpen", float, dataclasses.field(default=0.0, metadata=RESULT)),
                 ("label", str, dataclasses.field(default=""))],
    bases=(PredictOptions,), frozen=True)


class Killed(BaseException):
    pass


def test_marked_field_enters_the_key_unmarked_does_not(tmp_path, tiny, monkeypatch):
    assert result_fields(Extended(sharpen=1.0))["sharpen"] == 1.0 and "label" not in result_fields(Extended())
    assert {"tile", "tta", "batch_size", "band_rows", "gsd"} <= set(result_fields(PredictOptions()))
    model, card = tiny
    scene = write_scene(tmp_path / "s.tif", random_scene(200, 64))
    out = tmp_path / "m.tif"
    base = Extended(progress=False, band_rows=64, threads=1)

    def killed_after_one_band(options):
        saved = []

        def save(self, band, arrays):
            if saved:
                raise Killed
            saved.append(original(self, band, arrays))
        original = BandJournal.save
        with monkeypatch.context() as m:
            m.setattr(BandJournal, "save", save)
            with pytest.raises(Killed):
                predict_scene(scene, out, model, card, options, overwrite=True)

    killed_after_one_band(base)
    assert predict_scene(scene, out, model, card, base, label="other", overwrite=True).resumed_row == 64
    killed_after_one_band(base)
    assert predict_scene(scene, out, model, card, base, sharpen=0.5, overwrite=True).resumed_row is None
    killed_after_one_band(base)
    assert predict_scene(scene, out, model, card, base, overwrite=True).resumed_row == 64
