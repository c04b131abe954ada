from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sarm2_gym.envs.core.primitives import primitive_index as pi
from tests.envs.helpers import label_sequence, max_drop, run_expert

ENV = "SARM2-CleanWhiteboard-v0"
STAGE_PRIMITIVES = [pi("pick_grab"), pi("erase"), pi("place")]


def test_expert_succeeds_on_20_seeds_with_monotone_progress_and_ordered_labels() -> None:
    rollouts = [run_expert(ENV, seed) for seed in range(20)]
    successes = sum(r.success for r in rollouts)
    assert successes >= 19, f"expert success {successes}/20"
    for r in rollouts:
        assert not r.physics_instability
        if r.success:
            assert r.progress[-1] == 1.0
            assert max_drop(r.progress) < 0.05, "expert progress should not go backwards"
            assert label_sequence(r.labels) == STAGE_PRIMITIVES
            # The env's own stage primitive walks the stage list in order, too.
            assert label_sequence(r.info_primitives) == STAGE_PRIMITIVES


def test_sweep_wipes_the_board_in_lanes_and_still_finishes() -> None:
    sweeps = [run_expert(ENV, seed, options={"wipe": "sweep"}) for seed in range(6)]
    nearest = [run_expert(ENV, seed) for seed in range(6)]
    dense = [run_expert(ENV, seed, options={"wipe": "dense_sweep"}) for seed in range(3)]
    assert all(r.success for r in sweeps + dense)
    for r in dense:
        assert label_sequence(r.labels) == STAGE_PRIMITIVES
    for r in sweeps:
        assert label_sequence(r.labels) == STAGE_PRIMITIVES
        assert max_drop(r.progress) < 0.05
    # Covering the whole board takes longer than chasing the ink, episode for episode.
    assert all(len(s.progress) > len(n.progress) for s, n in zip(sweeps, nearest, strict=True))


@pytest.mark.parametrize("wipe", ["sweep", "dense_sweep"])
def test_sweep_path_follows_the_board_not_the_ink(wipe: str) -> None:
    """Two scenes with different strokes: the first lane's hover point sits over the same spot of
    the board, and the wiping legs run along the board's y axis."""
    import gymnasium as gym

    from sarm2_gym.envs import expert_for
    from sarm2_gym.envs.experts import clean_whiteboard as cw

    lanes = cw.LANES_X[wipe]
    # The last lane ends at -y, next to the tray: the first starts at +y for an odd count.
    first_y = cw.SWEEP_END_Y if len(lanes) % 2 else -cw.SWEEP_END_Y
    starts = []
    for seed in (0, 1):
        env = gym.make(ENV, obs_mode="state")
        env.reset(seed=seed)
        task = env.unwrapped
        expert = expert_for(ENV, "expert", {"wipe": wipe})
        expert.reset(task, seed=seed)
        while task.status.stage == 0:
            env.step(expert.act().action)
        expert.act()  # plans the erase stage (one step towards its first waypoint)
        plan = expert._plan
        assert len(plan) == 1 + 2 * len(lanes) + 1  # hover, two legs a lane, clean-up
        felt = task.eraser_pose()[0][:2]
        hover = plan[0].targets["right"].pos()  # TCP target; the offset to the felt is the grasp
        tcp = task.robot.arms["right"].target_pos[:2]
        starts.append(hover[:2] - (tcp - felt) - task.board_center()[:2])
        legs = [wp.targets["right"].pos()[:2] for wp in plan[1:-1]]
        # Along each lane only y changes, by the full lane length.
        for a, b in zip(legs[0::2], legs[1::2], strict=True):
            assert abs(a[0] - b[0]) < 1e-9
            assert abs(abs(a[1] - b[1]) - 2 * cw.SWEEP_END_Y) < 1e-9
        assert legs[-1][1] - task.board_center()[1] < 0, "the last leg ends at the tray's side"
        env.close()
    np.testing.assert_allclose(starts[0], starts[1], atol=1e-6)
    np.testing.assert_allclose(starts[0], [lanes[0], first_y], atol=1e-6)


def test_dense_sweep_covers_the_board_with_the_eraser_off_centre_in_the_hand() -> None:
    """Where the felt reaches across the lanes: every ink column with either sweep, and with the
    dense one still when all lanes sit 2 cm to one side (a cloned policy's drift, or the eraser
    held off centre); the felt stays on the board."""
    from sarm2_gym.envs.experts import clean_whiteboard as cw
    from sarm2_gym.envs.tasks.clean_whiteboard import BOARD_HALF, ERASER_HALF, INK_CELL, INK_GRID

    felt = 0.98 * ERASER_HALF[0]  # the felt's half-length, across the lanes
    columns = (np.arange(INK_GRID[0]) - (INK_GRID[0] - 1) / 2) * INK_CELL

    def covered(lanes: tuple[float, ...], shift: float) -> bool:
        return all(any(abs(c - (x + shift)) <= felt for x in lanes) for c in columns)

    assert covered(cw.SWEEP_LANES_X, 0.0) and covered(cw.DENSE_SWEEP_LANES_X, 0.0)
    assert not covered(cw.SWEEP_LANES_X, 0.02), "the three lanes leave a column at 2 cm"
    assert covered(cw.DENSE_SWEEP_LANES_X, 0.02) and covered(cw.DENSE_SWEEP_LANES_X, -0.02)
    assert max(abs(x) for x in cw.DENSE_SWEEP_LANES_X) + felt < BOARD_HALF[0]


def test_lifted_lanes_leave_ink_that_the_expert_chases_while_recording_a_pressing_sweep() -> None:
    """``lanes="lifted"``: some lanes are executed with the felt off the board, the recorded
    actions pressing as in the plain sweep (same moves across the board, lower in z); the ink
    they leave is still there when the sweep ends and the expert wipes it before placing."""
    import gymnasium as gym

    from sarm2_gym.envs import expert_for
    from sarm2_gym.envs.experts import clean_whiteboard as cw

    def run(lanes: str, seed: int = 2) -> tuple[bool, list[tuple[np.ndarray, np.ndarray]], int]:
        env = gym.make(ENV, obs_mode="state")
        env.reset(seed=seed)
        task = env.unwrapped
        expert = expert_for(ENV, "expert", {"wipe": "dense_sweep", "lanes": lanes})
        expert.reset(task, seed=seed)
        deviated, ink_after_sweep = [], -1
        for _ in range(400):
            step = expert.act()
            if step.executed is not None:
                assert step.primitive == pi("erase")
                deviated.append((step.action, step.executed))
            _, _, terminated, truncated, info = env.step(step.env_action)
            if ink_after_sweep < 0 and expert._plan_stage == 1 and len(expert._plan) == 1:
                ink_after_sweep = len(task.remaining_ink())  # only the chase is left
            if terminated or truncated:
                break
        env.close()
        return bool(info["is_success"]), deviated, ink_after_sweep

    ok, deviated, ink_left = run("lifted")
    assert ok
    assert len(deviated) > 2 * cw.SWEEP_LEG_STEPS // 4, "a lifted lane is executed for its legs"
    for recorded, executed in deviated:
        z = 7 + 2  # the right arm's z
        np.testing.assert_allclose(np.delete(recorded, z), np.delete(executed, z), atol=1e-6)
    assert sum(r[7 + 2] < e[7 + 2] - 1e-3 for r, e in deviated) > len(deviated) // 2
    assert ink_left > 0, "the lifted lane left ink for the chase"
    ok_exact, deviated_exact, ink_left_exact = run("exact")
    assert ok_exact and not deviated_exact and ink_left_exact <= 0


def test_full_sweep_wipes_every_lane_to_its_end_once_the_board_is_clean() -> None:
    """``finish="sweep"``: the same path as ``"ink"`` until the last ink is gone (mid-sweep on
    these seeds), then the rest of the sweep, labelled erase while the task is at place, ending
    at the last lane's end next to the tray; ``"ink"`` turns to placing at once."""
    import gymnasium as gym

    from sarm2_gym.envs import expert_for
    from sarm2_gym.envs.experts import clean_whiteboard as cw

    def run(finish: str, seed: int) -> tuple[bool, list[np.ndarray], list[int], list[np.ndarray]]:
        """Success, the executed actions, and the labels and felt positions (board-local xy)
        from the step the board came clean."""
        env = gym.make(ENV, obs_mode="state")
        env.reset(seed=seed)
        task = env.unwrapped
        expert = expert_for(ENV, "expert", {"wipe": "dense_sweep", "finish": finish})
        expert.reset(task, seed=seed)
        actions: list[np.ndarray] = []
        labels: list[int] = []
        felt: list[np.ndarray] = []
        for _ in range(400):
            step = expert.act()
            if len(task.remaining_ink()) == 0:
                labels.append(step.primitive)
                felt.append(task.eraser_pose()[0][:2] - task.board_center()[:2])
            else:
                actions.append(step.env_action)
            _, _, terminated, truncated, info = env.step(step.env_action)
            if terminated or truncated:
                break
        env.close()
        return bool(info["is_success"]), actions, labels, felt

    for seed in range(2):
        ok_ink, actions_ink, labels_ink, _ = run("ink", seed)
        ok, actions, labels, felt = run("sweep", seed)
        assert ok and ok_ink
        np.testing.assert_array_equal(np.array(actions), np.array(actions_ink))
        assert pi("erase") not in labels_ink, "ink: placing as soon as the board is clean"
        wiped = [i for i, label in enumerate(labels) if label == pi("erase")]
        assert len(wiped) >= cw.SWEEP_LEG_STEPS // 4, "sweep: at least a leg more of wiping"
        assert wiped == list(range(len(wiped))), "... before anything else"
        assert label_sequence(labels[len(wiped) :]) == [pi("place")]
        end = felt[wiped[-1]]
        np.testing.assert_allclose(
            end, [cw.DENSE_SWEEP_LANES_X[-1], -cw.SWEEP_END_Y], atol=cw.WIPE_REACH + 0.01
        )


def test_an_expert_abandoning_place_finishes_the_full_sweep_first() -> None:
    """Giving up is decided for the stage being carried out: the kept sweep, not the task's
    place stage, until the sweep is done."""
    import gymnasium as gym

    from sarm2_gym.envs import expert_for
    from sarm2_gym.envs.core.expert import ExpertQuality
    from sarm2_gym.envs.experts import clean_whiteboard as cw

    quality = ExpertQuality(name="quits_place", abandon_stage=2, abandon_fraction=0.0)
    env = gym.make(ENV, obs_mode="state")
    env.reset(seed=0)
    task = env.unwrapped
    expert = expert_for(ENV, quality, {"wipe": "dense_sweep", "finish": "sweep"})
    expert.reset(task, seed=0)
    wiped_clean = 0
    while not expert.gave_up:
        step = expert.act()
        wiped_clean += int(len(task.remaining_ink()) == 0 and step.primitive == pi("erase"))
        env.step(step.env_action)
    assert wiped_clean >= cw.SWEEP_LEG_STEPS // 4, "the rest of the sweep first"
    assert task.status.stage == 2 and task.eraser_held()
    felt = task.eraser_pose()[0][:2] - task.board_center()[:2]
    np.testing.assert_allclose(
        felt, [cw.DENSE_SWEEP_LANES_X[-1], -cw.SWEEP_END_Y], atol=cw.WIPE_REACH + 0.01
    )
    env.close()


def test_full_sweep_goes_on_only_from_erase_to_place_holding_the_eraser() -> None:
    import gymnasium as gym

    from sarm2_gym.envs import expert_for

    env = gym.make(ENV, obs_mode="state")
    env.reset(seed=0)
    task = env.unwrapped
    full = expert_for(ENV, "expert", {"wipe": "dense_sweep", "finish": "sweep"})
    full.reset(task, seed=0)
    ink = expert_for(ENV, "expert", {"wipe": "dense_sweep"})
    ink.reset(task, seed=0)
    assert not full.keeps_plan(1, 2), "not holding the eraser: re-plan (pick it up again)"
    while task.status.stage == 0:
        env.step(full.act().env_action)
    assert task.eraser_held()
    assert full.keeps_plan(1, 2)
    assert not any(full.keeps_plan(a, b) for a, b in [(1, 0), (0, 1), (2, 1), (0, 2)])
    assert not ink.keeps_plan(1, 2)
    nearest = expert_for(ENV, "expert", {"finish": "sweep"})  # no sweep to finish
    nearest.reset(task, seed=0)
    assert not nearest.keeps_plan(1, 2)
    env.close()


def test_expert_options_are_checked() -> None:
    from sarm2_gym.envs import expert_for

    assert expert_for(ENV).options == {
        "wipe": "nearest", "lanes": "exact", "finish": "ink", "carry": "direct",
        "approach": "direct",
    }  # fmt: skip
    with pytest.raises(ValueError, match="has no option 'speed'"):
        expert_for(ENV, "expert", {"speed": "fast"})
    with pytest.raises(ValueError, match="wipe='spiral' is not one of"):
        expert_for(ENV, "expert", {"wipe": "spiral"})
    with pytest.raises(ValueError, match="its options: none"):
        expert_for("SARM2-PullPlug-v0", "expert", {"wipe": "sweep"})


@pytest.mark.parametrize("wipe", ["nearest", "dense_sweep"])
def test_high_carry_keeps_the_way_to_the_board_and_the_way_back_apart(wipe: str) -> None:
    """``carry="high"``: held near its tray, the eraser is low when just picked up and high on the
    way back, from where it goes straight down; ``"direct"`` comes back low as well."""
    from sarm2_gym.envs.experts import clean_whiteboard as cw

    def run(carry: str, seed: int) -> tuple[bool, list[float], list[float]]:
        """Success, and the TCP heights held within 2 cm (xy) of the tray before any ink was
        wiped (out) and once the board is clean (back)."""
        env, task, expert = _expert_in_env(seed, {"wipe": wipe, "carry": carry})
        ink = len(task.remaining_ink())
        out: list[float] = []
        back: list[float] = []
        for _ in range(400):
            _, _, terminated, truncated, info = env.step(expert.act().env_action)
            tcp = task.robot.tcp_pos(task.data, "right")
            if task.eraser_held() and np.linalg.norm(tcp[:2] - task.tray_center()[:2]) < 0.02:
                left = len(task.remaining_ink())
                if left == ink:
                    out.append(float(tcp[2]))
                elif left == 0:
                    back.append(float(tcp[2]))
            if terminated or truncated:
                break
        env.close()
        return bool(info["is_success"]), out, back

    for seed in range(2):
        ok, out, back = run("high", seed)
        assert ok and out and back
        assert max(out) < cw.PLACE_LIFT - 0.04, "picked: out of the tray low"
        assert max(back) > cw.CARRY_HEIGHT - 0.01, "placing: over the tray high"
        assert np.all(np.diff(back) < 1e-3), "... and from there straight down"
        ok, out, back = run("direct", seed)
        assert ok
        assert max(back) < cw.PLACE_LIFT + 0.01, "direct: back at the height of a pick"


@pytest.mark.parametrize("seed", range(3))
def test_partial_and_failed_presets_do_what_they_say(seed: int) -> None:
    partial = run_expert(ENV, seed, "partial")
    failed = run_expert(ENV, seed, "failed")
    assert partial.gave_up and not partial.success
    assert 0.2 < partial.progress[-1] < 1.0
    assert failed.gave_up and not failed.success
    assert failed.progress[-1] < 0.25


def test_slow_and_mistake_presets_still_finish_but_differ() -> None:
    expert = run_expert(ENV, 3)
    slow = run_expert(ENV, 3, "slow")
    assert slow.success and len(slow.progress) > 1.4 * len(expert.progress)
    mistakes = [run_expert(ENV, s, "mistake") for s in range(6)]
    assert sum(m.success for m in mistakes) >= 5
    # At least one episode shows a real setback that was recovered from.
    assert any(m.success and max_drop(m.progress) > 0.02 for m in mistakes)


def test_erasing_needs_contact() -> None:
    import gymnasium as gym

    env = gym.make(ENV, obs_mode="state")
    env.reset(seed=0)
    task = env.unwrapped
    ink0 = len(task.remaining_ink())
    # Hovering the (empty) grippers over the board erases nothing.
    a = np.zeros(14, dtype=np.float32)
    a[0] = 1.0
    for _ in range(15):
        env.step(a)
    assert len(task.remaining_ink()) == ink0
    env.close()


def _expert_in_env(seed: int, options: dict[str, str]) -> tuple[Any, Any, Any]:
    """A state-mode env reset to ``seed``, its task, and the expert with ``options`` on it."""
    import gymnasium as gym

    from sarm2_gym.envs import expert_for

    env = gym.make(ENV, obs_mode="state")
    env.reset(seed=seed)
    expert = expert_for(ENV, "expert", options)
    expert.reset(env.unwrapped, seed=seed)
    return env, env.unwrapped, expert


def test_survey_approach_looks_from_above_the_trays_mean_place_then_grasps() -> None:
    """``approach="survey"``: the first grasp starts from the same point above the tray's mean
    place, held long enough that the move on to the eraser falls in a policy's second chunk;
    a re-grasp away from the tray goes straight to the eraser."""
    import mujoco

    from sarm2_gym.envs.experts import clean_whiteboard as cw

    survey = np.array(cw.SURVEY_POINT)
    options = {"wipe": "dense_sweep", "finish": "sweep", "approach": "survey"}
    for seed in range(2):
        env, task, expert = _expert_in_env(seed, options)
        eraser = task.eraser_pose()[0][:2].copy()
        at_survey, close_at = [], None
        for t in range(400):
            step = expert.act()
            if close_at is None and step.action[13] > 0:
                close_at = t
                tcp = task.robot.tcp_pos(task.data, "right")
                assert np.linalg.norm(tcp[:2] - eraser) < 0.005, "closes over the eraser"
            _, _, terminated, truncated, info = env.step(step.env_action)
            if np.linalg.norm(task.robot.tcp_pos(task.data, "right") - survey) < 0.012:
                at_survey.append(t)
            if terminated or truncated:
                break
        env.close()
        assert info["is_success"]
        assert at_survey and close_at is not None and max(at_survey) < close_at
        assert len(at_survey) >= cw.SURVEY_HOLD and max(at_survey) >= 9, "leaves after step 9"

    env, task, expert = _expert_in_env(0, options)

    def targets(plan: list) -> list[np.ndarray]:
        pos = [w.targets["right"].pos for w in plan if w.targets["right"].pos is not None]
        return [np.asarray(p() if callable(p) else p) for p in pos]

    assert np.allclose(targets(expert.plan_stage(0))[0], survey)
    on_board = np.array([*task.board_center()[:2], 0.05])
    task.set_free_body_pose(task.body_id("eraser"), on_board, np.array([1.0, 0.0, 0.0, 0.0]))
    mujoco.mj_forward(task.model, task.data)  # positions as the next step reads them
    assert not any(np.allclose(p, survey) for p in targets(expert.plan_stage(0))), (
        "a re-grasp on the board goes straight to the eraser"
    )
    env.close()


def test_survey_carry_stops_above_the_trays_mean_place_for_a_chunk_before_placing() -> None:
    """``carry="survey"``: holding the eraser over a clean board, the arm stops at the survey
    point for at least a chunk of ten steps, then puts the eraser in the tray."""
    from sarm2_gym.envs.experts import clean_whiteboard as cw

    survey = np.array(cw.SURVEY_POINT)
    options = {"wipe": "dense_sweep", "finish": "sweep", "carry": "survey"}
    for seed in range(2):
        env, task, expert = _expert_in_env(seed, options)
        stopped, released_at = [], None
        for t in range(400):
            _, _, terminated, truncated, info = env.step(expert.act().env_action)
            tcp = task.robot.tcp_pos(task.data, "right")
            clean = len(task.remaining_ink()) == 0
            if clean and task.eraser_held() and np.linalg.norm(tcp - survey) < 0.012:
                stopped.append(t)
            if clean and released_at is None and not task.eraser_held():
                released_at = t
            if terminated or truncated:
                break
        env.close()
        assert info["is_success"]
        assert len(stopped) >= cw.PLACE_SURVEY_HOLD >= 10, "a whole chunk at the survey point"
        assert released_at is not None and max(stopped) < released_at


def test_eraser_in_tray_holds_at_reset_not_once_lifted_and_again_once_placed() -> None:
    from sarm2_gym.envs.tasks.clean_whiteboard import SETTLED_SPEED

    env, task, expert = _expert_in_env(3, {})
    assert task.eraser_in_tray(), "the eraser starts at rest in its tray"
    assert task.eraser_speed() < SETTLED_SPEED
    seen_held = False
    for _ in range(400):
        _, _, terminated, truncated, info = env.step(expert.act().env_action)
        if task.eraser_held() and task.eraser_pose()[0][2] > 0.06:
            seen_held = True
            assert not task.eraser_in_tray(), "a lifted eraser is not in the tray"
        if terminated or truncated:
            break
    assert seen_held and info["is_success"]
    assert task.eraser_in_tray() and task.eraser_speed() < SETTLED_SPEED
    env.close()
