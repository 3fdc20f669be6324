"""The blend tuner's reading of the running point (no Rasa: only config.yml is read)."""

from pathlib import Path

from nlu.tools.blend_tune import THRESHOLDS, WEIGHTS, running_point
from nlu.tools.common import CONFIG


def test_running_point_is_read_from_the_pipeline(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "language: vi\npipeline:\n"
        "  - name: nlu.components.ensemble.IntentRankingBlend\n    weight: 0.6\n"
        "  - name: FallbackClassifier\n    threshold: 0.45\n    ambiguity_threshold: 0.15\n",
        encoding="utf-8",
    )
    assert running_point(config) == {"weight": 0.6, "temperature": 1.0, "threshold": 0.45, "ambiguity": 0.15}


def test_the_running_point_is_on_the_tuners_grid() -> None:
    # the report compares the chosen point with the running one on the same edition; a running value off the grid
    # would mean it had been set by hand, not chosen
    point = running_point(CONFIG)
    assert point["weight"] in WEIGHTS
    assert point["threshold"] in THRESHOLDS
