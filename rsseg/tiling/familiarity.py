"""Whether a map is likely wrong: the "unfamiliar scene" note's signals and thresholds.

A model that has never seen a kind of scene is often confidently wrong (real roofs called Car
with a mean top-class probability of 0.67), so the note looks at more than confidence: the mean
top-class probability, the mean normalised entropy and, with test-time augmentation and
confidence bands, how often the views disagree. The
thresholds were chosen with ``python scripts/real_scenes.py --calibrate`` on real scenes whose
maps were right or wrong and on held-out generated scenes (right).
"""

from __future__ import annotations

from dataclasses import dataclass

TOP_PROBABILITY_MIN = 0.6  # mean top-class probability below this
ENTROPY_MAX = 0.35  # mean normalised entropy (0 certain .. 1 uniform) above this
TTA_DISAGREEMENT_MAX = 0.12  # mean share of augmented views that disagree with their average


@dataclass
class RunStatistics:
    """Per-run statistics of a prediction, over its valid pixels."""

    mean_top_probability: float | None = None
    mean_entropy: float | None = None
    tta_disagreement: float | None = None


def unfamiliar_reasons(stats: RunStatistics) -> list[str] | None:
    """Why the map is probably wrong (one phrase per signal that fired), or None when none fired."""
    reasons = []
    if stats.mean_top_probability is not None and stats.mean_top_probability < TOP_PROBABILITY_MIN:
        reasons.append(f"mean top-class probability {stats.mean_top_probability:.2f} < {TOP_PROBABILITY_MIN}")
    if stats.mean_entropy is not None and stats.mean_entropy > ENTROPY_MAX:
        reasons.append(f"mean entropy {stats.mean_entropy:.2f} > {ENTROPY_MAX}")
    if stats.tta_disagreement is not None and stats.tta_disagreement > TTA_DISAGREEMENT_MAX:
        reasons.append(f"TTA views disagree on {100 * stats.tta_disagreement:.0f} % > "
                       f"{100 * TTA_DISAGREEMENT_MAX:g} %")
    return reasons or None
