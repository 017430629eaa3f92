"""The "unfamiliar scene" note: its threshold logic on hand-made statistics, and the engine's run statistics."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ConstantModel, card_for, random_scene, write_scene

from rsseg.tiling import predict_scene
from rsseg.tiling.familiarity import (
    ENTROPY_MAX,
    TOP_PROBABILITY_MIN,
    TTA_DISAGREEMENT_MAX,
    RunStatistics,
    unfamiliar_reasons,
)


def test_a_confident_plausible_map_raises_no_note():
    stats = RunStatistics(0.9, 0.1, 0.02)
    assert unfamiliar_reasons(stats) is None
    assert unfamiliar_reasons(RunStatistics()) is None  # nothing measured: nothing to say


def test_each_signal_fires_just_past_its_threshold_only():
    assert unfamiliar_reasons(RunStatistics(mean_top_probability=TOP_PROBABILITY_MIN)) is None
    low = unfamiliar_reasons(RunStatistics(mean_top_probability=TOP_PROBABILITY_MIN - 0.01))
    assert low and "top-class probability 0.59" in low[0]
    assert unfamiliar_reasons(RunStatistics(mean_entropy=ENTROPY_MAX)) is None
    assert "entropy" in unfamiliar_reasons(RunStatistics(mean_entropy=ENTROPY_MAX + 0.01))[0]
    assert unfamiliar_reasons(RunStatistics(tta_disagreement=TTA_DISAGREEMENT_MAX)) is None
    assert "TTA" in unfamiliar_reasons(RunStatistics(tta_disagreement=TTA_DISAGREEMENT_MAX + 0.01))[0]


def test_the_confidently_wrong_roofs_as_cars_map_fires_and_lists_every_reason():
    """The issue's real 0.35 m city: top-prob 0.67 (silent before) but a high entropy."""
    reasons = unfamiliar_reasons(RunStatistics(0.67, 0.5, 0.2))
    assert reasons is not None and len(reasons) == 2
    assert not any("top-class" in r for r in reasons)


@pytest.mark.parametrize("scale, fires", [(0.0, True), (20.0, False)])
def test_the_engine_measures_entropy_and_top_probability_and_the_note_follows(tmp_path, scale, fires):
    """Uniform logits: entropy 1 and top probability 1/K, the note fires; one dominant class: silent."""
    scene = write_scene(tmp_path / "scene.tif", random_scene(96, 128))
    model = ConstantModel(4)
    with torch.no_grad():
        model.logits.mul_(scale)
    report = predict_scene(scene, tmp_path / "mask.tif", model, card_for(model), progress=False, device="cpu")
    probs = torch.softmax(model.logits.detach(), 0)
    entropy = float(-(probs * probs.log()).sum() / math.log(4))
    assert report.mean_top_probability == pytest.approx(float(probs.max()), abs=1e-4)
    assert report.mean_entropy == pytest.approx(entropy, abs=1e-4)
    assert report.tta_disagreement is None
    assert (report.unfamiliar_line() is not None) is fires
    if fires:
        assert "entropy 1.00 > " in report.unfamiliar_line()


def test_sampled_statistics_stay_close_to_every_pixel_and_leave_the_outputs_alone(tmp_path, tiny, monkeypatch):
    """The run's means on every other row and column against every pixel: within 0.005, with TTA
    disagreement too, and the mask and confidence bands are the same bytes."""
    from rsseg.tiling import predictor

    model, card = tiny
    scene = write_scene(tmp_path / "scene.tif", random_scene(200, 150, seed=4))
    runs = {}
    for step in (1, 2):
        monkeypatch.setattr(predictor, "STATS_STEP", step)
        out = tmp_path / str(step)
        out.mkdir()
        report = predict_scene(scene, out / "m.tif", model, card, tile=64, tta="flip", confidence=out / "c.tif",
                               progress=False, device="cpu", threads=1)
        runs[step] = report, (out / "m.tif").read_bytes(), (out / "c.tif").read_bytes()
    (full, *full_files), (sampled, *sampled_files) = runs[1], runs[2]
    assert sampled_files == full_files
    for name in ("mean_top_probability", "mean_entropy", "tta_disagreement"):
        assert getattr(sampled, name) == pytest.approx(getattr(full, name), abs=5e-3)
        assert getattr(sampled, name) != getattr(full, name)  # sampled indeed
