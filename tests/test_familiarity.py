"""The "unfamiliar scene" note's threshold logic, on hand-made run statistics."""

from __future__ import annotations

from rsseg.tiling.familiarity import (
    CAR_SHARE_MAX,
    ENTROPY_MAX,
    TOP_PROBABILITY_MIN,
    TTA_DISAGREEMENT_MAX,
    RunStatistics,
    unfamiliar_reasons,
)


def test_a_confident_plausible_map_raises_no_note():
    stats = RunStatistics(0.9, 0.1, {"ImSurf": 0.4, "Building": 0.3, "Car": 0.02}, 0.02)
    assert unfamiliar_reasons(stats) is None
    assert unfamiliar_reasons(RunStatistics()) is None  # nothing measured: nothing to say


def test_each_signal_fires_just_past_its_threshold_only():
    assert unfamiliar_reasons(RunStatistics(mean_top_probability=TOP_PROBABILITY_MIN)) is None
    low = unfamiliar_reasons(RunStatistics(mean_top_probability=TOP_PROBABILITY_MIN - 0.01))
    assert low and "top-class probability 0.59" in low[0]
    assert unfamiliar_reasons(RunStatistics(mean_entropy=ENTROPY_MAX)) is None
    assert "entropy" in unfamiliar_reasons(RunStatistics(mean_entropy=ENTROPY_MAX + 0.01))[0]
    assert unfamiliar_reasons(RunStatistics(class_shares={"Car": CAR_SHARE_MAX})) is None
    cars = unfamiliar_reasons(RunStatistics(class_shares={"car": 0.085}))  # names compared ignoring case
    assert cars == ["8.5 % Car > 5 %"]
    assert unfamiliar_reasons(RunStatistics(tta_disagreement=TTA_DISAGREEMENT_MAX)) is None
    assert "TTA" in unfamiliar_reasons(RunStatistics(tta_disagreement=TTA_DISAGREEMENT_MAX + 0.01))[0]


def test_the_confidently_wrong_roofs_as_cars_map_fires_and_lists_every_reason():
    """The issue's real 0.35 m city: top-prob 0.67 (silent before), 8.5 % Car."""
    stats = RunStatistics(0.67, 0.5, {"ImSurf": 0.5, "Building": 0.05, "Car": 0.085}, 0.2)
    reasons = unfamiliar_reasons(stats)
    assert reasons is not None and len(reasons) == 3
    assert not any("top-class" in r for r in reasons)
