"""``sarm2 collect`` end to end: round trip, interruption and resume, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from typer.testing import CliRunner

from sarm2_gym.cli import app
from sarm2_gym.data import LeRobotDataset
from sarm2_gym.data.episode import image_key
from sarm2_gym.data.recording import record_episode
from sarm2_gym.envs import expert_for

ENV = "SARM2-CleanWhiteboard-v0"
runner = CliRunner()


def test_collect_round_trip_matches_a_direct_recording(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(
        app,
        [
            "collect",
            "--task",
            ENV,
            "--episodes",
            "2",
            "--out",
            str(out),
            "--quality",
            "expert",
            "--seed",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 2
    assert ds.tasks == {1: "clean whiteboard WITH whiteboard eraser"}  # paper order: task #2

    env = gym.make(ENV, obs_mode="rgb")
    direct = record_episode(env, expert_for(ENV, "expert"), seed=5, env_id=ENV)
    env.close()
    stored = ds.episode(0)
    assert stored.meta["seed"] == 5 and stored.success == direct.success
    for key in ("observation.state", "action", "act_pri", "stage", "progress", image_key("top")):
        np.testing.assert_array_equal(stored.frames[key], direct.frames[key], err_msg=key)
    assert stored.frames["progress"][-1] == 1.0 and stored.frames["next.done"][-1]


def test_interrupted_collect_is_readable_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "sarm2_gym.cli", "collect", "--task", ENV, "--episodes", "6",
           "--out", str(out), "--quality", "expert"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    episodes_dir = out / "meta" / "episodes"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if episodes_dir.exists() and len(list(episodes_dir.rglob("*.parquet"))) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = LeRobotDataset(out)
    assert 2 <= partial.num_episodes < 6
    done = {m["seed"] for m in partial.episodes_meta}

    result = runner.invoke(
        app, ["collect", "--task", ENV, "--episodes", "6", "--out", str(out), "--quality", "expert"]
    )
    assert result.exit_code == 0, result.output
    full = LeRobotDataset(out)
    seeds = [m["seed"] for m in full.episodes_meta]
    assert sorted(seeds) == list(range(6)) and done <= set(seeds)
    assert [m["episode_index"] for m in full.episodes_meta] == list(range(6))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "SARM2-JuggleKnives-v0"], "unknown task"),
        (["--task", ENV, "--quality", "heroic"], "unknown expert quality"),
    ],
)
def test_collect_rejects_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["collect", *args, "--episodes", "1", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert message in result.output


def test_collect_refuses_a_directory_with_other_content(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("my thesis")
    result = runner.invoke(
        app, ["collect", "--task", ENV, "--episodes", "1", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "holds no LeRobot dataset" in result.output
    assert (tmp_path / "notes.txt").read_text() == "my thesis"


def test_collect_refuses_a_different_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["collect", "--task", ENV, "--episodes", "1", "--out", str(out), "--quality", "failed"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--image-size", "64"])
    assert result.exit_code != 0
    assert "observation.images.top" in result.output
    # Other expert quality: refused before anything is recorded.
    from sarm2_gym.data.generation import collect

    with pytest.raises(ValueError, match="episodes of expert quality 'failed'"):
        collect([ENV], 2, out, quality="grasp_miss", progress=False)
    assert LeRobotDataset(out).num_episodes == 1


def test_collect_records_expert_options_and_keeps_a_dataset_to_one_set(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = ["collect", "--task", ENV, "--episodes", "1", "--out", str(out), "--image-size", "32"]
    args += ["--quality", "expert"]
    result = runner.invoke(app, [*args, "--expert-option", "wipe=sweep"])
    assert result.exit_code == 0, result.output
    stored = LeRobotDataset(out).episode(0)
    assert stored.meta["expert_options"] == {
        "wipe": "sweep", "lanes": "exact", "finish": "ink", "carry": "direct",
        "approach": "direct",
    }  # fmt: skip
    env = gym.make(ENV, obs_mode="rgb", image_size=32)
    direct = record_episode(env, expert_for(ENV, "expert", {"wipe": "sweep"}), seed=0, env_id=ENV)
    env.close()
    np.testing.assert_array_equal(stored.frames["action"], direct.frames["action"])
    # Adding episodes of the other strategy (here: the default) to it is refused.
    from sarm2_gym.data.generation import collect

    with pytest.raises(
        ValueError,
        match=r"expert options \{'wipe': 'sweep', 'lanes': 'exact', 'finish': 'ink', "
        r"'carry': 'direct', 'approach': 'direct'\}.*"
        r"--expert-option",
    ):
        collect([ENV], 2, out, quality="expert", image_size=32, progress=False)
    assert runner.invoke(app, [*args[:4], "2", *args[5:]]).exit_code != 0
    assert LeRobotDataset(out).num_episodes == 1


def test_episodes_recorded_before_an_expert_gained_an_option_count_as_its_default() -> None:
    """A dataset recorded before the ``lanes``, ``finish`` and ``carry`` options existed stores
    ``{"wipe": "sweep"}``: it takes more plain-sweep episodes, and refuses lifted-lane,
    full-sweep or high-carry ones."""
    from types import SimpleNamespace
    from typing import Any, cast

    from sarm2_gym.data.generation import _check_expert_options

    old = SimpleNamespace(
        episodes_meta=[{"env_id": ENV, "meta": {"expert_options": {"wipe": "sweep"}}}]
    )
    writer = cast(Any, old)
    _check_expert_options(writer, Path("ds"), {ENV: expert_for(ENV, "expert", {"wipe": "sweep"})})
    lifted = expert_for(ENV, "expert", {"wipe": "sweep", "lanes": "lifted"})
    with pytest.raises(ValueError, match="'lanes': 'exact'"):
        _check_expert_options(writer, Path("ds"), {ENV: lifted})
    high = expert_for(ENV, "expert", {"wipe": "sweep", "carry": "high"})
    with pytest.raises(ValueError, match="'carry': 'direct'"):
        _check_expert_options(writer, Path("ds"), {ENV: high})
    full = expert_for(ENV, "expert", {"wipe": "sweep", "finish": "sweep"})
    with pytest.raises(ValueError, match="'finish': 'ink'"):
        _check_expert_options(writer, Path("ds"), {ENV: full})


@pytest.mark.parametrize(
    ("option", "message"),
    [("wipe", "is not NAME=VALUE"), ("wipe=spiral", "is not one of"), ("grip=soft", "no option")],
)
def test_collect_rejects_bad_expert_options(tmp_path: Path, option: str, message: str) -> None:
    out = tmp_path / "x"
    result = runner.invoke(
        app, ["collect", "--task", ENV, "--out", str(out), "--expert-option", option]
    )
    assert result.exit_code != 0
    assert message in result.output
    assert not out.exists()


def test_collect_rejects_an_expert_option_given_twice(tmp_path: Path) -> None:
    out = tmp_path / "x"
    args = ["--expert-option", "wipe=sweep", "--expert-option", "wipe=nearest"]
    result = runner.invoke(app, ["collect", "--task", ENV, "--out", str(out), *args])
    assert result.exit_code != 0
    assert "given twice" in result.output
    assert not out.exists()


def test_collect_all_tasks_into_one_dataset(tmp_path: Path) -> None:
    tasks = ["SARM2-PullPlug-v0", "SARM2-CleanWhiteboard-v0"]  # the two fastest, in reverse order
    from sarm2_gym.data.generation import collect
    from sarm2_gym.envs.registry import task_index

    root = collect(tasks, 1, tmp_path / "multi", quality="failed", progress=False)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 2
    assert ds.tasks == {task_index(t): ds.episode(i).task for i, t in enumerate(tasks)}
    dims = {m["env_id"]: m["meta"]["env_state_dim"] for m in ds.episodes_meta}
    assert dims == {"SARM2-PullPlug-v0": 20, "SARM2-CleanWhiteboard-v0": 15}
    env_state = ds.episode(1).frames["observation.environment_state"]
    assert env_state.shape[1] == 128 and not env_state[:, 15:].any()


def test_demo_kinds_name_valid_presets_and_options() -> None:
    from sarm2_gym.data.generation import DEMO_KINDS

    for name, (preset, options) in DEMO_KINDS.items():
        expert = expert_for(ENV, preset, options)  # CleanWhiteboard has every option named
        defaults = {
            "wipe": "nearest", "lanes": "exact", "finish": "ink", "carry": "direct",
            "approach": "direct",
        }  # fmt: skip
        assert expert.options == {**defaults, **options}, name
    assert DEMO_KINDS["sweep"] == ("expert", {"wipe": "sweep"})
    with pytest.raises(TypeError):  # a shared constant: nobody's edit leaks into other runs
        DEMO_KINDS["sweep"][1]["wipe"] = "nearest"  # type: ignore[index]
