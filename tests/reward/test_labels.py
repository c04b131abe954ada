from __future__ import annotations

import numpy as np
import pytest

from sarm2_gym.reward import labels as L


def test_linear_progress_and_steps_to_go() -> None:
    np.testing.assert_allclose(L.linear_progress(5), [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(L.steps_to_go(5), [1, 0.75, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(L.linear_progress(1), [1.0])
    given = np.array([0.0, 0.1, 0.1, 0.7], np.float32)
    np.testing.assert_allclose(L.steps_to_go(4, given), [1.0, 0.9, 0.9, 0.3], rtol=1e-6)


@pytest.mark.parametrize(
    "progress", [np.array([0.0, 1.2]), np.array([0.0, np.nan]), np.array([0.0, 0.5, 1.0])]
)
def test_steps_to_go_rejects_bad_progress(progress: np.ndarray) -> None:
    with pytest.raises(ValueError):
        L.steps_to_go(2, progress)


@pytest.mark.parametrize(
    ("idx", "expected"),
    [
        (100, [0, 75, 80, 85, 90, 95, 100]),  # strided: idx - 5*gap .. idx - gap
        (30, [0, 5, 10, 15, 20, 25, 30]),  # D == n_obs * gap: strided
        (29, [0, 5, 10, 14, 19, 24, 29]),  # evenly spread: round(29k/6), 14.5 -> 14 (half-even)
        (12, [0, 2, 4, 6, 8, 10, 12]),
        (7, [0, 1, 2, 4, 5, 6, 7]),  # 7k/6 = 1.17, 2.33, 3.5 -> 4, 4.67, 5.83
        (0, [0, 0, 0, 0, 0, 0, 0]),
    ],
)
def test_value_frame_indices(idx: int, expected: list[int]) -> None:
    got = L.value_frame_indices(idx, n_obs_steps=6, frame_gap=5)
    assert got.tolist() == expected
    stage = L.stage_frame_indices(idx, n_obs_steps=6, frame_gap=5)
    assert stage.tolist() == expected[1:]


def test_layout_with_episode_start_offset() -> None:
    got = L.value_frame_indices(110, n_obs_steps=6, frame_gap=5, ep_start=10)
    assert got.tolist() == [10, 85, 90, 95, 100, 105, 110]
    with pytest.raises(ValueError, match="precedes"):
        L.value_frame_indices(3, n_obs_steps=6, frame_gap=5, ep_start=10)


def test_rewind_appends_reversed_history_with_flipped_targets() -> None:
    base = L.value_frame_indices(100, n_obs_steps=6, frame_gap=5)
    got = L.apply_rewind(base, 3)
    assert got.tolist() == [0, 75, 80, 85, 90, 95, 100, 95, 90, 85]
    # Targets of rewind frames = the reference's flip(progress)[i + 1].
    progress = L.linear_progress(101)
    ref = [np.flip(progress[base])[i + 1] for i in range(3)]
    np.testing.assert_allclose(progress[got[7:]], ref)
    assert L.apply_rewind(base, 0).tolist() == base.tolist()
    with pytest.raises(ValueError):
        L.apply_rewind(base, 6)


def test_sample_rewind_steps() -> None:
    rng = np.random.default_rng(0)
    kw = {"n_obs_steps": 6, "frame_gap": 5, "max_rewind": 3}
    # Not allowed at or before ep_start + n_obs * gap.
    assert all(L.sample_rewind_steps(rng, 30, prob=1.0, **kw) == 0 for _ in range(20))
    draws = [L.sample_rewind_steps(rng, 31, prob=1.0, **kw) for _ in range(300)]
    assert set(draws) == {1, 2, 3}
    assert all(L.sample_rewind_steps(rng, 100, prob=0.0, **kw) == 0 for _ in range(20))
    rate = np.mean([L.sample_rewind_steps(rng, 100, prob=0.8, **kw) > 0 for _ in range(2000)])
    assert 0.76 < rate < 0.84
    assert L.sample_rewind_steps(rng, 100, n_obs_steps=6, frame_gap=5, max_rewind=0, prob=1) == 0


def test_temporal_proportions() -> None:
    # Demo 1: 4/10 and 6/10; demo 2: 10/20 and 10/20 -> mean (0.45, 0.55).
    props = L.temporal_proportions([[(0, 3), (4, 9)], [(0, 9), (10, 19)]], [10, 20])
    np.testing.assert_allclose(props, [0.45, 0.55])
    # A gap between subtasks: 2/10 and 5/10, renormalised to (2/7, 5/7).
    np.testing.assert_allclose(L.temporal_proportions([[(0, 1), (5, 9)]], [10]), [2 / 7, 5 / 7])
    with pytest.raises(ValueError):
        L.temporal_proportions([[(0, 3)], [(0, 1), (2, 3)]], [4, 4])


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0, (0, 0.0)),  # before the first subtask
        (2, (0, 0.0)),
        (4, (0, 2 / 3)),
        (5, (0, 1.0)),
        (6, (0, 1.0)),  # gap: previous subtask, tau = 1
        (8, (1, 0.5)),
        (11, (1, 0.999)),  # after the last subtask
    ],
)
def test_stage_and_tau_edge_rules(t: int, expected: tuple[int, float]) -> None:
    stage, tau = L.stage_and_tau(t, [(2, 5), (7, 9)], 12)
    assert stage == expected[0]
    assert tau == pytest.approx(expected[1])


def test_stage_and_tau_zero_length_and_single_stage() -> None:
    assert L.stage_and_tau(2, [(2, 2), (3, 5)], 6) == (0, 1.0)
    assert L.stage_and_tau(3, [(0, 9)], 10) == (0, pytest.approx(1 / 3))
    assert L.stage_and_tau(3, [(2, 5)], 10) == (0, pytest.approx(1 / 3))  # single-stage mode


def test_sarm_v1_labels_and_normalisation() -> None:
    props = np.array([0.4, 0.6])
    stage, tau, progress = L.sarm_v1_labels(6, [(0, 2), (3, 5)], props)
    assert stage.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(tau, [0, 0.5, 1, 0, 0.5, 1])
    np.testing.assert_allclose(progress, [0, 0.2, 0.4, 0.4, 0.7, 1.0], rtol=1e-6)


def test_primitive_segments() -> None:
    assert L.primitive_segments(np.array([3, 3, 3])) == [(3, 0, 2)]
    assert L.primitive_segments(np.array([7, 8, 8, 21])) == [(7, 0, 0), (8, 1, 2), (21, 3, 3)]
