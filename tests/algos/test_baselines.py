from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from typer.testing import CliRunner

import sarm2_gym.cli.policy_commands  # noqa: F401  (registers the commands)
from sarm2_gym.algos.baselines import (
    PPORunConfig,
    SPIRALRunConfig,
    eval_seeds,
    fresh_latent_seed,
    fresh_latent_success,
    load_result,
    run_bc,
    run_ppo,
    run_spiral,
    spiral_method_name,
    with_alpha,
)
from sarm2_gym.algos.common.evaluation import evaluate_success, tally_stages
from sarm2_gym.algos.common.io import latest_snapshot
from sarm2_gym.algos.spiral import PrivilegedProgressLabeler, SPIRALConfig
from sarm2_gym.algos.vla import BCConfig
from sarm2_gym.cli import app

from .helpers import (
    REACH_ID,
    FakeText,
    ReachEnv,
    make_reach_env,
    record_demos,
    tiny_vla,
    tiny_vla_config,
)

CLEAN_WHITEBOARD = "SARM2-CleanWhiteboard-v0"
TINY_SPIRAL = SPIRALConfig(
    rollouts_per_round=2, gradient_steps=4, actor_hidden=(16,), critic_hidden=(16,)
)


class Expert:
    """Scripted reaching expert behind the SB3 ``predict`` signature (reads the goal pixel)."""

    def predict(
        self,
        obs: dict[str, np.ndarray],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        size = obs["top"].shape[1]
        actions = np.zeros((len(obs["state"]), 14), np.float32)
        for i, top in enumerate(obs["top"]):
            rows, cols = np.nonzero(top[:, :, 0])
            goal = np.array([rows.mean(), cols.mean()]) / (size - 1) * 2 - 1
            actions[i, :2] = np.clip((goal - obs["state"][i, :2]) / 0.15, -1, 1)
        return actions, None


def test_evaluate_success_runs_one_episode_per_seed() -> None:
    res = evaluate_success(Expert(), make_reach_env, [5, 6, 7], n_envs=2)
    assert res.seeds == [5, 6, 7] and res.success_rate == 1.0
    assert len(res.lengths) == 3 and res.env_steps == sum(res.lengths)
    still = evaluate_success(_Still(), make_reach_env, [5, 6], n_envs=2)
    assert still.success_rate == 0.0 and still.lengths == [25, 25]
    assert still.final_stage == [0, 0]  # the fake task has one stage
    staged = evaluate_success(
        _Still(), lambda: gym.make(CLEAN_WHITEBOARD, obs_mode="state", max_episode_steps=3), [0]
    )
    assert staged.final_stage == [0] and staged.lengths == [3]  # still grasping the eraser
    with pytest.raises(ValueError, match="distinct"):
        evaluate_success(Expert(), make_reach_env, [1, 1])
    assert eval_seeds(3) == [1_000_000, 1_000_001, 1_000_002]


def test_evaluation_writes_one_video_per_episode(tmp_path: Path) -> None:
    import imageio.v3 as iio

    res = evaluate_success(_Still(), make_reach_env, [5, 6, 7], n_envs=2, videos=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "5_failure.mp4", "6_failure.mp4", "7_failure.mp4"
    ]  # fmt: skip
    frames = iio.imread(tmp_path / "6_failure.mp4")
    assert len(frames) == res.lengths[1] + 1  # the reset observation, then one per step
    done = evaluate_success(Expert(), make_reach_env, [5], videos=tmp_path / "expert")
    assert done.success_rate == 1.0 and (tmp_path / "expert" / "5_success.mp4").is_file()
    state_only = lambda: gym.make(CLEAN_WHITEBOARD, obs_mode="state", max_episode_steps=2)  # noqa: E731
    with pytest.raises(ValueError, match="videos need camera observations"):
        evaluate_success(_Still(), state_only, [0], videos=tmp_path / "none")


def test_evaluation_writes_videos_of_the_failures_or_the_successes_only(tmp_path: Path) -> None:
    def names(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    kinds = {"expert": Expert(), "still": _Still()}
    for kind, predictor in kinds.items():
        for which in ("failures", "successes"):
            out = tmp_path / f"{kind}_{which}"
            evaluate_success(
                predictor, make_reach_env, [5, 6], n_envs=2, videos=out, video_episodes=which
            )
            wrote = (kind == "expert") == (which == "successes")
            outcome = "success" if kind == "expert" else "failure"
            assert names(out) == ([f"5_{outcome}.mp4", f"6_{outcome}.mp4"] if wrote else [])
    with pytest.raises(ValueError, match="video_episodes must be one of"):
        evaluate_success(Expert(), make_reach_env, [5], videos=tmp_path, video_episodes="some")


class _StageBack(gym.Wrapper):  # type: ignore[type-arg]
    """Reports stage 0, then ``peak`` for two steps, then 0 again (a finished stage undone)."""

    def __init__(self, env: gym.Env, peak: int) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.peak, self.t = peak, 0

    def reset(self, **kwargs: Any) -> Any:
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        info["stage"] = self.peak if self.t in (3, 4) else 0
        return obs, reward, terminated, truncated, info


def test_evaluation_records_the_furthest_stage_as_well_as_the_last() -> None:
    peaks = iter([2, 1, 3])  # one per env built; episodes then run on the envs in turn
    res = evaluate_success(
        _Still(), lambda: _StageBack(make_reach_env(), next(peaks)), [5, 6], n_envs=2
    )
    assert res.final_stage == [0, 0] and res.furthest_stage == [2, 1]
    again = evaluate_success(_Still(), lambda: _StageBack(make_reach_env(), 2), [5, 6, 7], n_envs=1)
    assert again.furthest_stage == [2, 2, 2]  # counted afresh for each episode on one env
    plain = evaluate_success(_Still(), make_reach_env, [5], n_envs=1)
    assert plain.furthest_stage == plain.final_stage == [0]  # a stage that never changes


def test_stage_tally_counts_where_episodes_ended_and_how_far_failures_got() -> None:
    res = evaluate_success(_Still(), lambda: _StageBack(make_reach_env(), 2), [5, 6], n_envs=1)
    assert res.stage_tally(3) == ([2, 0, 0, 0], [0, 0, 2])  # both fell back to stage 0
    tally = tally_stages(
        successes=[True, False, False, False, False, True],
        final_stage=[2, 0, 1, 4, -1, 2],  # 4: past the last stage; -1: not reported
        furthest_stage=[2, 2, 1, 4, -1, 2],
        n_stages=3,
    )
    assert tally.ended == [1, 1, 1, 2] and tally.furthest == [0, 1, 2]
    assert tally_stages([False], [1], None, 3) == ([0, 1, 0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="2 successes, 1 final stages"):
        tally_stages([True, False], [0], None, 3)
    with pytest.raises(ValueError, match="n_stages must be at least 1"):
        tally_stages([], [], None, 0)


class _Still:
    def predict(
        self,
        obs: dict[str, np.ndarray],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        return np.zeros((len(obs["state"]), 14), np.float32), None


def test_run_bc_trains_evaluates_and_skips_when_finished(
    tmp_path: Path, reach_demos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = BCConfig(
        data=(str(reach_demos),),
        out=str(tmp_path / "bc"),
        steps=6,
        batch_size=8,
        model=tiny_vla_config(),
    )
    result = run_bc(
        cfg, REACH_ID, eval_episodes=2, text_encoder=FakeText(), record={"demo_kind": "expert"}
    )
    assert result.method == "bc" and result.env_steps == 0 and result.demos == 6
    assert result.eval["seeds"] == eval_seeds(2) and 0.0 <= result.success_rate <= 1.0
    assert result.extra["demo_kind"] == "expert"  # the caller's record, saved with the result
    import sarm2_gym.algos.baselines.runners as runners

    monkeypatch.setattr(runners, "train_bc", _fail)
    assert run_bc(cfg, REACH_ID, eval_episodes=2) == result  # finished: not run again
    # a finished result is returned as recorded, whatever the caller would record now
    assert run_bc(cfg, REACH_ID, eval_episodes=2, record={"demo_kind": "dart"}) == result


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a finished run must not train again")


def _base_policy(tmp_path: Path) -> Path:
    tiny_vla().save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def test_run_spiral_records_a_curve_per_round(tmp_path: Path) -> None:
    cfg = SPIRALRunConfig(
        task=REACH_ID,
        base_policy=str(_base_policy(tmp_path)),
        out=str(tmp_path / "s"),
        timesteps=50,
        spiral=TINY_SPIRAL,
        eval_episodes=2,
        image_size=24,
    )
    result = run_spiral(cfg, PrivilegedProgressLabeler())
    rounds = [p["round"] for p in result.curve]
    assert rounds == list(range(len(rounds))) and len(rounds) >= 2
    assert result.curve[0]["env_steps"] == 0 and result.env_steps >= 50
    assert result.method == "spiral" and load_result(tmp_path / "s") == result
    curve = json.loads((tmp_path / "s" / "curve.json").read_text())["curve"]
    assert [p["round"] for p in curve] == rounds
    assert run_spiral(cfg, PrivilegedProgressLabeler()) == result
    # the final round's evaluation in full, as BC keeps its own
    assert result.eval["seeds"] == eval_seeds(2) and len(result.eval["final_stage"]) == 2
    assert result.eval["success_rate"] == result.success_rate == result.curve[-1]["success_rate"]
    assert "stochastic_eval" not in result.extra
    ablation = with_alpha(cfg, 0.0, str(tmp_path / "a0"))
    assert (
        spiral_method_name(ablation.spiral) == "spiral_alpha0" and ablation.spiral.mc_weight == 0.0
    )
    assert spiral_method_name(with_alpha(cfg, 1.0, "x").spiral) == "spiral_alpha1"
    assert spiral_method_name(cfg.spiral, offline=True) == "spiral_offline"
    assert spiral_method_name(cfg.spiral, adapted=True, mixed=True) == "spiral_adapted_mixed"
    assert spiral_method_name(cfg.spiral, mixed=True) == "spiral"  # no adaptation to mix into


def test_run_spiral_stops_after_max_rounds_and_reports_each_round(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    cfg = SPIRALRunConfig(
        task=REACH_ID, base_policy=str(_base_policy(tmp_path)), out=str(tmp_path / "s"),
        timesteps=10**6, spiral=TINY_SPIRAL, eval_episodes=2, image_size=24, max_rounds=2,
        eval_round0=False, max_episode_steps=10, eval_stochastic=True,
    )  # fmt: skip
    result = run_spiral(cfg, PrivilegedProgressLabeler(), on_round=seen.append)
    assert [p["round"] for p in result.curve] == [1, 2] and seen == result.curve
    fresh = result.extra["stochastic_eval"]  # round 2's fresh-latent episodes, stages and all
    assert fresh["success_rate"] == result.curve[-1]["success_rate_stochastic"]
    assert fresh["seeds"] == result.eval["seeds"] == eval_seeds(2)
    assert len(fresh["furthest_stage"]) == 2 and all(n <= 10 for n in fresh["lengths"])
    assert [p["rollouts"] for p in result.curve] == [2, 4]
    assert all(p["eval_seconds"] > 0 and p["wall_seconds"] >= p["eval_seconds"] for p in seen)
    assert result.env_steps <= 2 * 2 * (10 + 2)  # rounds x rollouts x capped length (+ spares)
    assert 0 <= result.curve[-1]["rollout_successes"] <= 4
    # round 1's rollouts came before any update; round 2's were checked by trained critics
    assert "critic_heldout_spearman" not in result.curve[0]
    assert -1 <= result.curve[1]["critic_heldout_spearman"] <= 1


def test_run_spiral_adapts_its_sarm2_labeller_once_and_resumes_with_the_adapted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``adapt_steps``: after round 1 the SARM2 labeller is fine-tuned on that round's rollouts
    (annotated from the simulator's progress) and saved with the run; a resumed run labels with
    that saved model, not with the one it was started with."""
    import torch

    from sarm2_gym.algos.spiral.labeling import RewardModelLabeler
    from sarm2_gym.reward import SARM2RewardModel
    from sarm2_gym.reward.config import SARM2Config
    from sarm2_gym.reward.encoders.text import TextEmbeddings

    from .helpers import INSTRUCTION

    torch.manual_seed(0)
    rm_cfg = SARM2Config(
        encoder="cnn", cnn_out_dim=8, image_size=40, d_model=16, n_heads=2, text_dim=4,
        instructions=(INSTRUCTION,), expert_hidden=(8,), gate_hidden=8,
    )  # fmt: skip
    rm1 = SARM2RewardModel(rm_cfg, TextEmbeddings.zeros((INSTRUCTION,), 4))
    demos = record_demos(tmp_path / "demos", 3, image_size=40)
    cfg = SPIRALRunConfig(
        task=REACH_ID, base_policy=str(_base_policy(tmp_path)), out=str(tmp_path / "s"),
        timesteps=10**6, spiral=TINY_SPIRAL, eval_episodes=2, image_size=40, max_rounds=1,
        eval_round0=False, max_episode_steps=10, adapt_steps=3, adapt_demos=str(demos),
        adapt_demo_episodes=2,
    )  # fmt: skip
    import sarm2_gym.reward.adaptation as adaptation
    from sarm2_gym.reward.adaptation import SARM2Adapter

    calls: list[str] = []
    load = adaptation.load_demonstrations

    def spy(name: str, method: Any) -> Any:
        def wrapped(*args: Any) -> Any:
            result = method(*args)
            calls.append(name if name != "load" else f"load {len(result)}")
            return result

        return wrapped

    monkeypatch.setattr(SARM2Adapter, "adapt", spy("adapt", SARM2Adapter.adapt))
    monkeypatch.setattr(SARM2Adapter, "restore", spy("restore", SARM2Adapter.restore))
    monkeypatch.setattr(adaptation, "load_demonstrations", spy("load", load))
    run_spiral(cfg, RewardModelLabeler(rm1, frame_gap=2, window=1))
    assert calls == ["load 2", "adapt"]  # the first 2 demonstrations, loaded by the adaptation
    saved = tmp_path / "s" / "checkpoints" / "reward_model"
    rm2 = SARM2RewardModel.from_pretrained(saved)
    assert any(
        not torch.equal(a, b)
        for (k, a), b in zip(rm2.state_dict().items(), rm1.state_dict().values(), strict=True)
        if k.startswith("value.")
    )
    calls.clear()
    (tmp_path / "s" / "result.json").unlink()  # run on: round 2 resumes from the checkpoint
    result = run_spiral(replace(cfg, max_rounds=2), RewardModelLabeler(rm1, frame_gap=2))
    assert [p["round"] for p in result.curve] == [1, 2]
    assert calls == ["restore"]  # labelled by the saved RM2, not adapted again (nor loaded)
    assert (saved / "config.json").is_file()  # kept beside the round snapshots, not pruned
    with pytest.raises(ValueError, match="adapt_steps fine-tunes a SARM2 labeller"):
        run_spiral(replace(cfg, out=str(tmp_path / "p")), PrivilegedProgressLabeler())
    with pytest.raises(ValueError, match="adapt_steps must be >= 0"):
        replace(cfg, adapt_steps=-1)
    with pytest.raises(ValueError, match="adapt_demos set with adapt_steps 0"):
        replace(cfg, adapt_steps=0, adapt_demo_episodes=None)
    with pytest.raises(ValueError, match="adapt_demo_episodes set without adapt_demos"):
        replace(cfg, adapt_demos=None)


def test_run_spiral_offline_phase_uses_the_first_demos_and_is_evaluated(
    tmp_path: Path, reach_demos: Path
) -> None:
    cfg = SPIRALRunConfig(
        task=REACH_ID, base_policy=str(_base_policy(tmp_path)), out=str(tmp_path / "s"),
        timesteps=10**6, spiral=TINY_SPIRAL, eval_episodes=2, image_size=24, max_rounds=1,
        max_episode_steps=10, offline_data=str(reach_demos), offline_episodes=4, offline_steps=3,
    )  # fmt: skip
    result = run_spiral(cfg, PrivilegedProgressLabeler())
    assert result.method == "spiral_offline" and result.demos == 4  # of the dataset's 6
    first, last = result.curve
    assert (first["round"], first["rollouts"], first["offline_updates"]) == (0, 0, 3)
    assert (last["round"], last["rollouts"], last["offline_updates"]) == (1, 2, 3)
    assert run_spiral(cfg, PrivilegedProgressLabeler()) == result  # finished: not rerun
    with pytest.raises(ValueError, match="offline_steps and offline_episodes set without"):
        replace(cfg, offline_data=None)
    with pytest.raises(ValueError, match=r"^offline_steps set without offline_data"):
        replace(cfg, offline_data=None, offline_episodes=None)


def test_run_ppo_with_the_sparse_reward(tmp_path: Path) -> None:
    cfg = PPORunConfig(
        task=REACH_ID, out=str(tmp_path / "ppo"), timesteps=64, n_steps=16, batch_size=16,
        image_size=36, eval_episodes=2,
    )  # fmt: skip
    result = run_ppo(cfg)
    assert result.method == "ppo_sparse" and result.env_steps == 64
    assert result.extra["train_episodes"] >= 1 and result.extra["train_seconds"] > 0
    assert (tmp_path / "ppo" / "policy.safetensors").is_file()
    assert list((tmp_path / "ppo" / "tb").glob("ppo_sparse_*"))
    with pytest.raises(ValueError, match="reward must be"):
        PPORunConfig(task=REACH_ID, out="x", timesteps=1, reward="dense")
    assert PPORunConfig(task=REACH_ID, out="x", timesteps=1, reward="sarm2").method == "ppo_sarm2"


def test_cli_spiral_ppo_and_eval(tmp_path: Path, said: Callable[[str], str]) -> None:
    base = _base_policy(tmp_path)
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["spiral", "--policy", str(base), "--task", REACH_ID, "--out", str(tmp_path / "s"),
         "--timesteps", "30", "--labeler", "privileged", "--rollouts-per-round", "2",
         "--gradient-steps", "3", "--eval-episodes", "2", "--image-size", "24", "--n-envs", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "round 0:" in res.output and (tmp_path / "s" / "result.json").is_file()
    assert "(fixed latents " in res.output  # both evaluations by default
    res = runner.invoke(
        app,
        ["spiral", "--policy", str(base), "--task", REACH_ID, "--out", str(tmp_path / "s2"),
         "--timesteps", "30", "--labeler", "privileged", "--offline-episodes", "3"],
    )  # fmt: skip
    assert res.exit_code != 0 and "offline_episodes set without offline_data" in said(res.output)
    assert not (tmp_path / "s2").exists()
    res = runner.invoke(
        app,
        ["spiral", "--policy", str(base), "--task", REACH_ID, "--out", str(tmp_path / "s3"),
         "--timesteps", "30", "--labeler", "privileged", "--frozen-image-features", "resnet18"],
    )  # fmt: skip
    assert res.exit_code != 0 and "frozen_image_features must be" in said(res.output)
    assert not (tmp_path / "s3").exists()
    out = tmp_path / "eval" / "base.json"
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(base), "--task", REACH_ID, "--episodes", "2",
         "--out", str(out), "--videos", str(tmp_path / "videos")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "videos").glob("100000[01]_*.mp4"))) == 2
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert 0.0 <= summary["success_rate"] <= 1.0
    written = json.loads(out.read_text())  # the whole evaluation, per episode
    assert written["success_rate"] == summary["success_rate"]
    assert written["seeds"] == [1_000_000, 1_000_001] and len(written["furthest_stage"]) == 2
    # a `sarm2 spiral --out` folder is a SPIRAL policy as it stands; anything else is refused
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(tmp_path / "s"), "--task", REACH_ID, "--episodes", "1",
         "--kappa", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["eval-policy", "--policy", str(tmp_path / "videos"), "--task", REACH_ID]
    )
    assert res.exit_code != 0 and "no SPIRAL run in" in said(res.output)
    assert "Traceback" not in res.output
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(base), "--task", REACH_ID, "--out", str(out.parent)],
    )  # fmt: skip
    assert res.exit_code != 0 and "is a folder" in said(res.output)
    res = runner.invoke(
        app,
        [
            "eval-policy",
            "--policy",
            str(tmp_path / "s" / "checkpoints"),
            "--task",
            REACH_ID,
            "--episodes",
            "2",
            "--latents",
            "fixed",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["latents"] == "fixed"
    ablation = ["--kappa", "1", "--no-residual"]  # the run's base policy
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(tmp_path / "s" / "checkpoints"), "--task", REACH_ID,
         "--episodes", "2", *ablation, "--latent-temperature", "0.5"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert (out["kappa"], out["residual"], out["latent_temperature"]) == (1, False, 0.5)
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(base), "--task", REACH_ID, "--episodes", "2",
         "--latent-temperature", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["latent_temperature"] == 0.0
    res = runner.invoke(app, ["eval-policy", "--policy", str(base), "--task", REACH_ID, *ablation])
    assert res.exit_code != 0 and "need a SPIRAL run" in said(res.output)
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(base), "--task", REACH_ID, "--latents", "mean"],
    )
    assert res.exit_code != 0 and "--latents must be" in said(res.output)
    res = runner.invoke(
        app,
        [
            "ppo",
            "--task",
            REACH_ID,
            "--reward",
            "dense",
            "--timesteps",
            "4",
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code != 0 and "reward must be" in said(res.output)
    res = runner.invoke(
        app,
        ["ppo", "--task", REACH_ID, "--timesteps", "4", "--out", str(tmp_path / "p"),
         "--reward-smoothing-window", "2"],
    )  # fmt: skip
    assert res.exit_code != 0 and "sparse reward takes no reward_options" in said(res.output)


def test_cli_spiral_with_critics_that_read_the_privileged_state(tmp_path: Path) -> None:
    base = _base_policy(tmp_path)
    res = CliRunner().invoke(
        app,
        ["spiral", "--policy", str(base), "--task", REACH_ID, "--out", str(tmp_path / "s"),
         "--timesteps", "30", "--labeler", "privileged", "--rollouts-per-round", "2",
         "--gradient-steps", "3", "--eval-episodes", "2", "--image-size", "24", "--n-envs", "1",
         "--critic-privileged-state", "--fixed-latents-eval-only"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    snapshot = latest_snapshot(tmp_path / "s" / "checkpoints")
    assert snapshot is not None
    saved = json.loads((snapshot / "spiral.json").read_text())
    assert saved["config"]["critic_privileged_state"] is True


def test_cli_bc_with_the_packaged_sentence_encoder(tmp_path: Path, reach_demos: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "bc"), "--steps", "2",
         "--batch-size", "4", "--chunk-size", "4", "--image-size", "24", "--max-episodes", "2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    from sarm2_gym.algos.vla import TinyVLA

    policy = TinyVLA.from_pretrained(tmp_path / "bc")
    assert policy.config.text_dim == 384 and policy.instruction_embeddings.abs().sum() > 0
    assert isinstance(ReachEnv().instruction, str)


def test_cli_bc_with_the_frozen_efficientnet_encoder(tmp_path: Path, reach_demos: Path) -> None:
    # `--image-encoder efficientnet_lite0` alone must do: the CLI supplies its 1280-d features.
    res = CliRunner().invoke(
        app,
        ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "bc"), "--steps", "2",
         "--batch-size", "4", "--chunk-size", "4", "--image-size", "32", "--max-episodes", "2",
         "--image-encoder", "efficientnet_lite0", "--model", '{"d_model": 32, "n_heads": 2}'],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    from sarm2_gym.algos.vla import TinyVLA

    config = TinyVLA.from_pretrained(tmp_path / "bc").config
    assert config.image_encoder == "efficientnet_lite0"
    assert (config.image_feature_dim, config.image_size, config.d_model) == (1280, 32, 32)


def test_cli_bc_options_win_over_model_fields_only_when_given(
    tmp_path: Path, reach_demos: Path
) -> None:
    from sarm2_gym.algos.vla import TinyVLA

    runner = CliRunner()
    fields = '{"chunk_size": 4, "n_action_steps": 2, "past_states": 1, "image_size": 24}'
    common = ["bc", "--data", str(reach_demos), "--steps", "1", "--batch-size", "2",
              "--max-episodes", "1", "--model", fields]  # fmt: skip
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    config = TinyVLA.from_pretrained(tmp_path / "a").config
    assert (config.chunk_size, config.n_action_steps, config.past_states) == (4, 2, 1)
    assert config.image_size == 24 and config.image_encoder == "cnn"
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "b"), "--past-states", "0"])
    assert res.exit_code == 0, res.output
    assert TinyVLA.from_pretrained(tmp_path / "b").config.past_states == 0


def test_cli_bc_spiral_and_eval_with_past_states(tmp_path: Path, reach_demos: Path) -> None:
    # The policy reads past states; `sarm2 spiral` and `eval-policy` build envs that give them.
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["bc", "--data", str(reach_demos), "--out", str(tmp_path / "bc"), "--steps", "2",
         "--batch-size", "4", "--chunk-size", "4", "--image-size", "24", "--max-episodes", "2",
         "--past-states", "2", "--past-state-stride", "3"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    from sarm2_gym.algos.vla import TinyVLA

    config = TinyVLA.from_pretrained(tmp_path / "bc").config
    assert (config.past_states, config.past_state_stride) == (2, 3)
    res = runner.invoke(
        app,
        ["spiral", "--policy", str(tmp_path / "bc"), "--task", REACH_ID, "--out",
         str(tmp_path / "s"), "--timesteps", "30", "--labeler", "privileged",
         "--rollouts-per-round", "2", "--gradient-steps", "3", "--eval-episodes", "1",
         "--image-size", "24", "--n-envs", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(tmp_path / "bc"), "--task", REACH_ID, "--episodes", "1",
         "--videos", str(tmp_path / "videos"), "--videos-of", "successes"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    success = json.loads(res.output.strip().splitlines()[-1])["success_rate"] == 1.0
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == int(success)
    res = runner.invoke(
        app,
        ["eval-policy", "--policy", str(tmp_path / "bc"), "--task", REACH_ID,
         "--videos", str(tmp_path / "videos"), "--videos-of", "some"],
    )  # fmt: skip
    assert res.exit_code != 0 and "--videos-of must be" in res.output


def test_run_ppo_with_sarm2_dense_rewards_through_the_wrappers(tmp_path: Path) -> None:
    import torch

    from sarm2_gym.reward import SARM2Config, SARM2RewardModel, TextEmbeddings

    instruction = "clean whiteboard WITH whiteboard eraser"
    torch.manual_seed(0)
    cfg = SARM2Config(
        encoder="cnn", cnn_out_dim=8, image_size=40, d_model=16, n_heads=2, text_dim=4,
        instructions=(instruction,), expert_hidden=(8,), gate_hidden=8,
    )  # fmt: skip
    SARM2RewardModel(cfg, TextEmbeddings.zeros((instruction,), 4)).save_pretrained(tmp_path / "rm")
    run = PPORunConfig(
        task="SARM2-CleanWhiteboard-v0", out=str(tmp_path / "ppo"), timesteps=32,
        reward=f"sarm2:{tmp_path / 'rm'}", n_steps=16, batch_size=16, image_size=40,
        eval_episodes=2, max_episode_steps=10,
    )  # fmt: skip
    result = run_ppo(run)
    assert result.method == "ppo_sarm2" and result.env_steps == 32
    assert result.eval["lengths"] == [10, 10] or result.success_rate > 0


def test_stochastic_evaluation_is_recorded_and_leaves_the_run_unchanged(
    tmp_path: Path, reach_demos: Path
) -> None:
    bc = BCConfig(
        data=(str(reach_demos),), out=str(tmp_path / "bc"), steps=6, batch_size=8,
        model=tiny_vla_config(),
    )  # fmt: skip
    bc_run = run_bc(bc, REACH_ID, eval_episodes=2, text_encoder=FakeText(), eval_stochastic=True)
    fresh = bc_run.extra["stochastic_eval"]
    assert fresh["seeds"] == eval_seeds(2) and 0.0 <= fresh["success_rate"] <= 1.0
    assert bc_run.extra["latent_temperature"] == 1.0
    cooled = run_bc(
        replace(bc, out=str(tmp_path / "bc_cool")), REACH_ID, eval_episodes=2,
        text_encoder=FakeText(), latent_temperature=0.0,
    )  # fmt: skip
    assert cooled.extra["latent_temperature"] == 0.0

    def run(name: str, stochastic: bool) -> Any:
        cfg = SPIRALRunConfig(
            task=REACH_ID, base_policy=str(_base_policy(tmp_path)), out=str(tmp_path / name),
            timesteps=10**6, spiral=TINY_SPIRAL, eval_episodes=2, image_size=24, max_rounds=2,
            eval_round0=False, max_episode_steps=10, eval_stochastic=stochastic,
        )  # fmt: skip
        return run_spiral(cfg, PrivilegedProgressLabeler())

    plain, both = run("plain", False), run("both", True)
    assert all("success_rate_stochastic" not in p for p in plain.curve)
    assert all(0.0 <= p["success_rate_stochastic"] <= 1.0 for p in both.curve)
    # The evaluation draws its own latents: rollouts and updates are those of the plain run.
    keys = ("round", "env_steps", "rollouts", "rollout_successes", "success_rate")
    assert [{k: p[k] for k in keys} for p in both.curve] == [
        {k: p[k] for k in keys} for p in plain.curve
    ]

    def untimed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in history]

    assert untimed(both.extra["history"]) == untimed(plain.extra["history"])
    assert len(both.extra["history"]) == 2  # per round: losses, returns, rollout successes


def test_fresh_latent_success_reads_bc_spiral_and_ppo_results() -> None:
    bc = {"extra": {"stochastic_eval": {"success_rate": 0.42}}, "curve": []}
    spiral = {
        "extra": {},
        "curve": [{"success_rate_stochastic": 0.2}, {"success_rate_stochastic": 0.6}],
    }
    assert fresh_latent_success(bc) == 0.42
    assert fresh_latent_success(spiral) == 0.6  # the final round
    assert (
        fresh_latent_success({"extra": {}, "curve": [{"success_rate": 0.5}]}) is None
    )  # fixed only
    assert fresh_latent_success({"extra": {"train_episodes": 3}, "curve": []}) is None  # PPO
    assert fresh_latent_seed(2) == fresh_latent_seed(0) + 2


def test_cli_task_takes_a_registered_id_or_a_benchmark_short_name(
    tmp_path: Path, said: Callable[[str], str]
) -> None:
    from sarm2_gym.cli.policy_commands import resolve_env_id

    assert resolve_env_id("CleanWhiteboard") == CLEAN_WHITEBOARD
    assert resolve_env_id(CLEAN_WHITEBOARD) == CLEAN_WHITEBOARD
    assert resolve_env_id(REACH_ID) == REACH_ID  # an env this project did not write
    runner = CliRunner()
    for command in (
        ["eval-policy", "--policy", str(tmp_path), "--task", "CleanWhitebord"],
        ["ppo", "--task", "CleanWhitebord", "--timesteps", "8", "--out", str(tmp_path / "p")],
        ["spiral", "--policy", str(tmp_path), "--task", "CleanWhitebord", "--out",
         str(tmp_path / "s"), "--timesteps", "8", "--labeler", "privileged"],
    ):  # fmt: skip
        res = runner.invoke(app, command)
        assert res.exit_code == 2, res.output
        assert "unknown task 'CleanWhitebord'" in said(res.output)
        assert "SARM2-CleanWhiteboard-v0" in said(res.output) and "Traceback" not in res.output
    assert not (tmp_path / "p").exists() and not (tmp_path / "s").exists()


class _ChunkedExpert:
    """The reaching expert's action held for a chunk, executed 3 steps per chunk (a queue)."""

    def plan(self, obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        actions, _ = Expert().predict(obs)
        return np.repeat(actions[:, None], 4, axis=1)

    def predict(
        self,
        obs: dict[str, np.ndarray],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        from sarm2_gym.algos.common.chunking import chunked_predict

        return chunked_predict(self, obs, state, episode_start, deterministic, 3)


def test_evaluate_success_gives_each_seed_the_same_episode_however_many_envs_step() -> None:
    # A chunk queue per env: envs that restart or go idle must not disturb the others' queues.
    seeds = list(range(5, 17))
    alone = evaluate_success(_ChunkedExpert(), make_reach_env, seeds, n_envs=1)
    for n_envs in (2, 3, 5):
        side_by_side = evaluate_success(_ChunkedExpert(), make_reach_env, seeds, n_envs=n_envs)
        assert side_by_side.lengths == alone.lengths
        assert side_by_side.successes == alone.successes
        assert side_by_side.final_progress == pytest.approx(alone.final_progress)
    assert len(set(alone.lengths)) > 1, "episodes of different lengths exercise the restarts"
