from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sarm2_gym.envs import expert_for
from sarm2_gym.envs.core.cloth import lattice_garment
from sarm2_gym.envs.core.primitives import primitive_index as pi
from sarm2_gym.envs.tasks.fold_shorts import LAYER_MIN_GAP, shorts_mesh
from tests.envs.helpers import Rollout, label_sequence, max_drop, run_expert

ENV = "SARM2-FoldShorts-v0"
STAGE_PRIMITIVES = [
    pi("pick_grab"),
    pi("fold_flatten"),
    pi("pick_grab"),
    pi("fold_flatten"),
    pi("press"),
]


@pytest.fixture(scope="module")
def expert_rollouts() -> list[Rollout]:
    return [run_expert(ENV, seed) for seed in range(20)]


@pytest.mark.slow
def test_expert_succeeds_on_20_seeds_with_monotone_progress_and_ordered_labels(
    expert_rollouts: list[Rollout],
) -> None:
    successes = sum(r.success for r in expert_rollouts)
    assert successes >= 19, f"expert success {successes}/20"
    for r in expert_rollouts:
        assert not r.physics_instability
        if r.success:
            assert r.progress[-1] == 1.0
            assert max_drop(r.progress) < 0.03, "expert progress should not go backwards"
            assert label_sequence(r.labels) == STAGE_PRIMITIVES
            assert label_sequence(r.info_primitives) == STAGE_PRIMITIVES
            assert 80 <= len(r.labels) <= 200


def test_degraded_presets_do_what_they_say() -> None:
    failed = run_expert(ENV, 0, "failed")
    assert failed.gave_up and not failed.success and failed.progress[-1] < 0.25
    partial = run_expert(ENV, 1, "partial")
    assert partial.gave_up and not partial.success and 0.2 < partial.progress[-1] < 1.0


def test_slow_expert_makes_less_progress_in_the_same_time() -> None:
    steps = 60
    progress = {}
    for quality in ("expert", "slow"):
        env = gym.make(ENV, obs_mode="state")
        env.reset(seed=2)
        expert = expert_for(ENV, quality)
        expert.reset(env.unwrapped, seed=2)
        for _ in range(steps):
            *_, info = env.step(expert.act().action)
        progress[quality] = info["progress"]
        env.close()
    assert progress["slow"] < progress["expert"] - 0.1


def test_mistake_is_recovered_from() -> None:
    # The mistake expert drops the carried cloth (a clear progress setback) and goes back for it.
    # Whether one seed's drop is recoverable hangs on how the cloth falls, which differs between
    # machines (seed 3 recovered on one and timed out on another), so the test asks for two
    # recoveries among the first eight seeds instead of naming one (0, 4, 6 and 7 on an AMD EPYC).
    recovered = []
    for seed in range(8):
        r = run_expert(ENV, seed, "mistake")
        if r.success and max_drop(r.progress) > 0.05:
            assert label_sequence(r.labels)[-1] == pi("press")
            recovered.append(seed)
            if len(recovered) == 2:
                break
    assert len(recovered) == 2, f"only seeds {recovered} of 0-7 recovered from their mistake"


def test_seeded_resets_are_deterministic_and_seeds_differ() -> None:
    env = gym.make(ENV, obs_mode="state")
    traces = []
    for seed in (5, 5, 6):
        obs, _ = env.reset(seed=seed)
        expert = expert_for(ENV)
        expert.reset(env.unwrapped, seed=seed)
        trace = [obs["env_state"]]
        for _ in range(25):
            obs, *_ = env.step(expert.act().action)
            trace.append(obs["env_state"])
        traces.append(np.array(trace))
    env.close()
    np.testing.assert_array_equal(traces[0], traces[1])
    assert np.abs(traces[0][0] - traces[2][0]).max() > 0.01


def test_first_fold_stacks_layers_instead_of_sinking_through() -> None:
    # Run the expert until the first fold is judged made, then check the physical layering.
    env = gym.make(ENV, obs_mode="state")
    env.reset(seed=0)
    task = env.unwrapped
    expert = expert_for(ENV)
    expert.reset(task, seed=0)
    for _ in range(60):
        *_, info = env.step(expert.act().action)
        if info["stage"] == 2:
            break
    assert info["stage"] == 2
    pos = task.cloth.positions(task.data)
    pairs = task.mesh.mirror_pairs(axis=1, min_separation=0.06)
    gaps = np.abs(pos[pairs[:, 0], 2] - pos[pairs[:, 1], 2])
    assert np.median(gaps) > LAYER_MIN_GAP
    assert task.press_coverage() == 0.0  # nothing pressed before the second fold
    env.close()


def test_shorts_mesh_is_mirror_symmetric_with_a_crotch_gap() -> None:
    mesh = shorts_mesh()
    assert len(mesh.mirror_pairs(axis=0)) > 0 and len(mesh.mirror_pairs(axis=1)) > 0
    # Every vertex off the fold lines has a mirror partner across both folds' lines.
    off_v = np.abs(mesh.points[:, 1]) > 1e-9
    assert len(mesh.mirror_pairs(axis=1)) == off_v.sum() // 2
    # The legs are separate below the crotch: the lattice node between them is gone.
    assert mesh.grid[mesh.grid.shape[0] // 2, 0] == -1
    assert mesh.area < 0.32 * 0.32
    with pytest.raises(ValueError):
        lattice_garment(np.zeros((2, 2), dtype=bool), 0.1)


def test_cloth_measures_on_a_flat_sheet() -> None:
    from sarm2_gym.envs.core.cloth import Footprint, keypoint_errors, layer_separation

    mesh = lattice_garment(np.ones((4, 4), dtype=bool), 0.05)  # 0.2 m square, vertex row at 0
    # A fold along the lattice line u = -0.05 stacks the column u = -0.1 on the column u = 0.
    pairs = mesh.mirror_pairs(axis=0, line=-0.05)
    assert len(pairs) == 5
    assert np.allclose(mesh.points[pairs[:, 0], 0], -0.1)
    assert np.allclose(mesh.points[pairs[:, 1], 0], 0.0)
    pos = np.c_[mesh.points, np.zeros(mesh.n_vertices)]
    fp = Footprint(mesh.triangles, cell=0.005)
    assert abs(fp.area(pos[:, :2]) - mesh.area) < 0.1 * mesh.area
    centroids = mesh.points[mesh.triangles].mean(axis=1)
    iou, _ = fp.iou(pos[:, :2], np.flatnonzero(centroids[:, 0] > 0))
    assert 0.4 < iou < 0.6  # half the sheet
    assert layer_separation(pos, pairs, 0.004) == 0.0
    lifted = pos.copy()
    lifted[pairs[:, 0], 2] = 0.008
    assert layer_separation(lifted, pairs, 0.004) == 1.0
    pair = {"x": (int(pairs[0, 0]), int(pairs[0, 1]))}
    assert keypoint_errors(pos, pair)["x"] == pytest.approx(0.1)
