"""Annotation -> progress curves against hand-computed values (spec §2.3), and the terminal tool."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sarm2_gym.data import Episode, LeRobotDataset, LeRobotDatasetWriter
from sarm2_gym.real.annotate_cli import ANNOTATIONS_FILE, AnnotationSession
from sarm2_gym.real.annotation import (
    RolloutAnnotation,
    Segment,
    progress_curve,
    reward_from_progress,
    slope_multipliers,
)


def ann(
    segs: list[tuple[float, float, str]], final: float, cat: float | None = None
) -> RolloutAnnotation:
    return RolloutAnnotation(tuple(Segment(*s) for s in segs), final, cat)


def test_fast_then_slow() -> None:
    # m = 2,2,2,2,2,1,1,1,1,1; dt_0 = 0, so sum m dt = 2*4 + 1*5 = 13 and s = 1/13.
    p = progress_curve(ann([(0, 5, "fast"), (5, 10, "slow")], 1.0), 10)
    np.testing.assert_allclose(p, np.array([0, 2, 4, 6, 8, 9, 10, 11, 12, 13]) / 13)


def test_adjust_and_mistake() -> None:
    # Frames 1-3 fast (+2s each), 4-5 adjust (0), 6-7 mistake (-s): sum = 6 - 2 = 4, s = 0.5/4.
    p = progress_curve(ann([(0, 4, "fast"), (4, 6, "adjust"), (6, 8, "mistake")], 0.5), 8)
    np.testing.assert_allclose(p, [0, 0.25, 0.5, 0.75, 0.75, 0.75, 0.625, 0.5])


def test_catastrophic() -> None:
    # Only frames t < 6 count: sum = 2 * 5 = 10, s = 0.06; progress is 0 from frame 6 on.
    p = progress_curve(ann([(0, 10, "fast")], 0.6, cat=6), 10)
    np.testing.assert_allclose(p, [0, 0.12, 0.24, 0.36, 0.48, 0.6, 0, 0, 0, 0])


def test_catastrophic_with_reference_sentinel_is_all_zero() -> None:
    # The reference UI stores final_progress = -100 for catastrophic rollouts: clip -> zeros.
    p = progress_curve(ann([(0, 4, "fast"), (4, 10, "catastrophic")], -100.0, cat=4), 10)
    np.testing.assert_array_equal(p, np.zeros(10))


def test_zero_slope_falls_back_to_linear() -> None:
    p = progress_curve(ann([(0, 5, "adjust")], 0.8), 5)
    np.testing.assert_allclose(p, [0, 0.2, 0.4, 0.6, 0.8])
    # Equal start and final progress: constant.
    np.testing.assert_array_equal(progress_curve(ann([(0, 5, "adjust")], 0.0), 5), np.zeros(5))
    # No segments at all: every slope is 0 too.
    np.testing.assert_allclose(progress_curve(ann([], 1.0), 3), [0, 0.5, 1.0])


def test_clip_to_unit_interval() -> None:
    # sum = 2*1 - 4 = -2, s = -0.5: frame 1 drops to -1 (clipped), then climbs 0.5 per frame.
    p = progress_curve(ann([(0, 2, "fast"), (2, 6, "mistake")], 1.0), 6)
    np.testing.assert_allclose(p, [0, 0, 0, 0, 0.5, 1.0])


def test_uncovered_frames_and_last_segment_extends() -> None:
    m = slope_multipliers([Segment(1, 3, "slow")], 6)
    np.testing.assert_array_equal(m, [0, 1, 1, 1, 1, 1])  # the last segment runs to the end
    m = slope_multipliers([Segment(0, 2, "fast"), Segment(4, 5, "slow")], 7)
    np.testing.assert_array_equal(m, [2, 2, 0, 0, 1, 1, 1])  # the gap has slope 0


def test_non_uniform_timestamps() -> None:
    # dt = [0, .1, .2, .3], m = 2: sum = 1.2, s = 0.5 -> p = [0, .1, .3, .6].
    p = progress_curve(ann([(0, 1, "fast")], 0.6), [10.0, 10.1, 10.3, 10.6])
    np.testing.assert_allclose(p, [0, 0.1, 0.3, 0.6])


def test_reward_is_diff_with_prepend_zero() -> None:
    p = progress_curve(ann([(0, 5, "fast"), (5, 10, "slow")], 0.7), 10)
    r = reward_from_progress(p)
    np.testing.assert_allclose(r, np.diff(p, prepend=0.0))
    assert r.sum() == pytest.approx(0.7)


def test_validation_and_aliases() -> None:
    assert Segment(0, 3, "progress_fast").label == "fast"
    with pytest.raises(ValueError, match="overlap"):
        ann([(0, 5, "fast"), (4, 8, "slow")], 1.0)
    with pytest.raises(ValueError, match="unknown segment label"):
        Segment(0, 1, "sideways")
    with pytest.raises(ValueError):
        Segment(3, 3, "fast")
    # Round trip through the JSON form (the reference tool's field names).
    a = ann([(0, 4, "fast"), (4, 9, "mistake")], 0.3, cat=7)
    assert RolloutAnnotation.from_dict(json.loads(json.dumps(a.to_dict()))) == a


# ---------------------------------------------------------------------- the terminal tool


def _episode(n: int) -> Episode:
    frames = {
        "observation.state": np.zeros((n, 14), np.float32),
        "action": np.zeros((n, 14), np.float32),
        "next.reward": np.zeros(n, np.float32),
        "next.done": np.arange(n) == n - 1,
        "next.success": np.zeros(n, bool),
        "act_pri": np.full(n, -1, np.int64),
        "stage": np.full(n, -1, np.int64),
        "progress": np.zeros(n, np.float32),
    }
    return Episode("fold", "real", frames, success=False, fps=10)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "rollouts"
    with LeRobotDatasetWriter(root, fps=10) as writer:
        for n in (10, 6, 8):
            writer.add_episode(_episode(n))
    return root


def _scripted(lines: list[str]):
    it = iter(lines)

    def read(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return read


def test_session_writes_json_and_columns(dataset: Path) -> None:
    out: list[str] = []
    session = AnnotationSession(
        dataset,
        input_fn=_scripted(
            [
                "seg 0 5 fast",
                "seg 5 10 slow",
                "seg 3 7 adjust",  # overlap: refused
                "done",  # refused: no final progress yet
                "final 1",
                "show",
                "done",  # episode 0
                "skip",  # episode 1
                "seg 0 8 f",
                "cat 5",
                "final 0.5",
                "done",  # episode 2
            ]
        ),
        print_fn=lambda *a: out.append(" ".join(map(str, a))),
        annotator="tester",
    )
    assert session.run() == 2
    assert any("overlap" in line for line in out)
    assert any("final progress" in line for line in out)

    doc = json.loads((dataset / ANNOTATIONS_FILE).read_text())
    assert sorted(doc["episodes"]) == ["0", "2"]
    assert doc["episodes"]["2"]["label"]["catastrophic_frame"] == 5
    ds = LeRobotDataset(dataset)
    f0 = ds.read_frames(0, ["annotated_progress", "annotated_reward", "annotated"])
    np.testing.assert_allclose(
        f0["annotated_progress"], np.array([0, 2, 4, 6, 8, 9, 10, 11, 12, 13]) / 13, rtol=1e-6
    )
    np.testing.assert_allclose(
        f0["annotated_reward"], np.diff(f0["annotated_progress"], prepend=0), atol=1e-6
    )
    assert f0["annotated"].all()
    f1 = ds.read_frames(1, ["annotated_progress", "annotated"])
    assert not f1["annotated"].any() and not f1["annotated_progress"].any()
    # Episode 2: fast everywhere, catastrophic at 5: s = 0.5 / (2 * 4), then zeros.
    f2 = ds.read_frames(2, ["annotated_progress"])
    np.testing.assert_allclose(
        f2["annotated_progress"], [0, 0.125, 0.25, 0.375, 0.5, 0, 0, 0], atol=1e-7
    )

    # Resume: only the skipped episode is asked for; earlier labels are kept.
    again = AnnotationSession(
        dataset, input_fn=_scripted(["seg 0 6 a", "final 0.6", "done"]), print_fn=lambda *a: None
    )
    assert again.run() == 1
    f1 = LeRobotDataset(dataset).read_frames(1, ["annotated_progress", "annotated"])
    np.testing.assert_allclose(f1["annotated_progress"], np.linspace(0, 0.6, 6), atol=1e-7)
    assert f1["annotated"].all()


def test_cli_columns_only(dataset: Path) -> None:
    from typer.testing import CliRunner

    from sarm2_gym.cli._app import app
    from sarm2_gym.cli.real_commands import parse_episodes

    assert parse_episodes("0,3,5-7") == [0, 3, 5, 6, 7]
    runner = CliRunner()
    result = runner.invoke(
        app, ["annotate", str(dataset), "--episodes", "1"], input="seg 0 6 slow\nfinal 1\ndone\n"
    )
    assert result.exit_code == 0, result.output
    assert "1 episodes annotated" in result.output
    result = runner.invoke(app, ["annotate", str(dataset), "--columns-only"])
    assert result.exit_code == 0, result.output
    f1 = LeRobotDataset(dataset).read_frames(1, ["annotated_progress"])
    np.testing.assert_allclose(f1["annotated_progress"], np.arange(6) / 5, atol=1e-7)
