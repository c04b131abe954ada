"""Policy-rollout recording, BC fine-tuning (init, extra data) and the filtered-BC rounds."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

import sarm2_gym.cli.policy_commands  # noqa: F401  (registers the commands)
from sarm2_gym.algos.baselines import FilteredBCRunConfig, eval_seeds, run_filtered_bc
from sarm2_gym.algos.baselines import filtered_bc as filtered_bc_module
from sarm2_gym.algos.baselines.common import fresh_latent_success
from sarm2_gym.algos.baselines.filtered_bc import rollout_seed
from sarm2_gym.algos.vla import BCConfig, TinyVLA, train_bc
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.cli import app
from sarm2_gym.data import LeRobotDataset
from sarm2_gym.data.recording import record_policy_episode

from .helpers import (
    IMAGE,
    INSTRUCTION,
    FakeText,
    ReachEnv,
    make_reach_env,
    tiny_vla,
    tiny_vla_config,
    unit_normalization,
)

EVEN_ID = "AlgosTest/EvenSeedReach-v0"


class EvenSeedReach(ReachEnv):
    """ReachEnv that ends after 3 steps, successful exactly when its reset seed was even."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.even = seed is not None and seed % 2 == 0
        self.steps = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> Any:
        obs, _, _, truncated, info = super().step(action)
        self.steps += 1
        done = self.steps >= 3
        info["is_success"] = bool(done and self.even)
        return obs, float(info["is_success"]), done, truncated, info


@pytest.fixture(autouse=True)
def _even_registered() -> None:
    if EVEN_ID not in gym.registry:
        gym.register(EVEN_ID, entry_point=EvenSeedReach, max_episode_steps=10)


class Scripted:
    """SB3-style predictor that reaches for the goal and counts its calls."""

    def __init__(self, env: ReachEnv, scale: float = 1.0) -> None:
        self.env, self.scale, self.starts = env, scale, []

    def predict(self, obs: Any, state: Any, episode_start: Any, deterministic: bool) -> Any:
        self.starts.append(bool(episode_start[0]))
        a = np.zeros(14, np.float32)
        a[:2] = self.scale * np.clip((self.env.goal - self.env.pos) / 0.15, -1, 1)
        return a, state


def test_record_policy_episode_records_what_the_policy_did() -> None:
    env = make_reach_env()
    policy = Scripted(env.unwrapped)  # type: ignore[arg-type]
    ep = record_policy_episode(env, policy, seed=3, env_id="reach", meta={"round": 2})
    assert ep.success and ep.meta["outcome"] == "success"
    assert ep.meta["seed"] == 3 and ep.meta["round"] == 2 and ep.env_id == "reach"
    steps = ep.length - 1  # the final row holds the last observation, no step
    assert policy.starts == [True] + [False] * (steps - 1)
    assert ep.frames["next.done"].tolist() == [False] * (steps - 1) + [True, True]
    assert ep.frames["progress"][-1] == pytest.approx(ep.meta["final_progress"])
    assert np.all(ep.frames["action"][-1][:6] == 0)  # hold still on the final row
    replay = make_reach_env()
    obs, _ = replay.reset(seed=3)
    for t, action in enumerate(ep.frames["action"][:-1]):  # the recorded actions replay it
        assert np.array_equal(obs["top"], ep.frames["observation.images.top"][t])
        obs, *_ = replay.step(action)
    assert np.array_equal(obs["top"], ep.frames["observation.images.top"][-1])

    still = record_policy_episode(make_reach_env(7), Scripted(ReachEnv(), scale=0.0), seed=3)
    assert not still.success and still.length == 8 and still.meta["outcome"] == "failed"


def _base(tmp_path: Path) -> Path:
    return tiny_vla().save_pretrained(tmp_path / "base")


def test_bc_fine_tunes_an_init_checkpoint_on_data_and_extra_data(
    tmp_path: Path, reach_demos: Path
) -> None:
    base = _base(tmp_path)
    cfg = BCConfig(
        data=(str(reach_demos),),
        extra_data=(str(reach_demos),),
        max_episodes=2,  # applies to data only: 2 + all 6 of the extra dataset
        init=str(base),
        out=str(tmp_path / "ft"),
        steps=3,
        batch_size=4,
    )
    out = train_bc(cfg, progress_bar=False)
    summary = json.loads((out / "bc_summary.json").read_text())
    assert summary["episodes"] == 8
    before, after = load_file(base / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    # the init's normalisation (never fitted here: zeros and ones) and embeddings are kept
    kept = ("state_mean", "state_std", "action_mean", "action_std", "instruction_embeddings")
    assert all(np.array_equal(before[k], after[k]) for k in kept)
    trained = [k for k in before if not np.array_equal(before[k], after[k])]
    assert trained  # the weights moved from the init's
    # the architecture is kept; the frame side becomes that of the data it was fine-tuned on
    tuned = TinyVLA.from_pretrained(out).config
    assert tuned == replace(TinyVLA.from_pretrained(base).config, demo_frame_size=IMAGE)

    with pytest.raises(ValueError, match=r"fixes the architecture.*'cnn_channels'"):
        train_bc(
            BCConfig(
                data=(str(reach_demos),),
                init=str(base),
                out=str(tmp_path / "bad"),
                model=tiny_vla_config(),
            ),
            progress_bar=False,
        )
    other = tiny_vla(instructions=("stack the cups",)).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match=r"not trained on.*reach the red dot"):
        train_bc(
            BCConfig(data=(str(reach_demos),), init=str(other), out=str(tmp_path / "bad2")),
            progress_bar=False,
        )


def test_cli_bc_fine_tunes_with_init_and_extra_data(
    tmp_path: Path, reach_demos: Path, said: Callable[[str], str]
) -> None:
    base = str(_base(tmp_path))
    common = ["bc", "--data", str(reach_demos), "--steps", "2", "--batch-size", "4", "--init", base]
    res = CliRunner().invoke(
        app,
        [*common, "--out", str(tmp_path / "ft"), "--max-episodes", "1",
         "--extra-data", str(reach_demos), "--warmup-steps", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ft" / "bc_summary.json").read_text())["episodes"] == 7
    (snapshot,) = (tmp_path / "ft" / "train_state").glob("step_*")
    state = json.loads((snapshot / "state.json").read_text())
    assert state["fingerprint"]["warmup_steps"] == 1
    res = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "x"), "--chunk-size", "4"])
    assert res.exit_code == 2
    assert "fixes the architecture; leave these model fields at their defaults: ['chunk_size']" in (
        said(res.output)
    )


def test_load_demos_takes_one_episode_limit_per_dataset(reach_demos: Path) -> None:
    demos = load_demos(
        [reach_demos, reach_demos], cameras=("top",), image_size=IMAGE, max_episodes=[1, None]
    )
    assert len(demos.episodes) == 7
    with pytest.raises(ValueError, match="2 limits for 1 datasets"):
        load_demos([reach_demos], cameras=("top",), image_size=IMAGE, max_episodes=[1, 2])


def _config(tmp_path: Path, base: Path, demos: Path, **overrides: Any) -> FilteredBCRunConfig:
    fields: dict[str, Any] = {
        "task": EVEN_ID,
        "base_policy": str(base),
        "demos": str(demos),
        "demo_episodes": 4,
        "out": str(tmp_path / "run"),
        "rounds": 2,
        "rollouts_per_round": 3,
        "finetune_steps": 2,
        "warmup_steps": 1,
        "batch_size": 4,
        "image_size": IMAGE,
        "eval_episodes": 2,
        "n_eval_envs": 1,
        "eval_stochastic": True,
    }
    fields.update(overrides)
    return FilteredBCRunConfig(**fields)


def _no_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fine-tuning keeps the checkpoint's embeddings: no text encoder may be loaded."""
    import sarm2_gym.reward.encoders.text as text

    monkeypatch.setattr(text, "SentenceTextEncoder", lambda *a, **k: FakeText())


def test_filtered_bc_clones_the_successful_rollouts_and_resumes(
    tmp_path: Path, reach_demos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_text(monkeypatch)
    cfg = _config(tmp_path, _base(tmp_path), reach_demos)
    result = run_filtered_bc(cfg)
    run = Path(cfg.out)
    # reset seeds 1000, 1001, 1002 (round 1) and 2000-2002 (round 2): the even ones succeed
    assert [rollout_seed(0, 1, i) for i in range(3)] == [1000, 1001, 1002]
    for r in (1, 2):
        rollouts = json.loads((run / f"round{r}" / "rollouts.json").read_text())
        assert [s["success"] for s in rollouts] == [True, False, True]
        assert all(s["length"] == 3 for s in rollouts)
        kept = LeRobotDataset(run / f"round{r}" / "successes")
        assert kept.num_episodes == 2
        assert sorted(kept.episode(i).meta["seed"] for i in range(2)) == [1000 * r, 1000 * r + 2]
    bc_episodes = [
        json.loads((run / f"round{r}" / "policy" / "bc_summary.json").read_text())["episodes"]
        for r in (1, 2)
    ]
    assert bc_episodes == [4 + 2, 4 + 4]  # the demos plus every success kept so far
    assert result.method == "filtered_bc" and result.demos == 4
    assert result.extra["kept_successes"] == 4 and result.env_steps == 18
    assert [(p["round"], p["rollouts"], p["env_steps"], p["rollout_successes"]) for p in
            result.curve] == [(1, 3, 9, 2), (2, 6, 18, 4)]  # fmt: skip
    assert all("success_rate_stochastic" in p for p in result.curve)
    assert result.eval["seeds"] == eval_seeds(2)
    # the final policy's fresh-latent episodes are kept, as BC keeps them
    fresh = result.extra["stochastic_eval"]
    assert fresh["seeds"] == eval_seeds(2) and len(fresh["final_stage"]) == 2
    assert fresh_latent_success(asdict(result)) == result.curve[-1]["success_rate_stochastic"]

    # killed after round 2's fine-tuning: neither rollouts nor fine-tuning are done again
    (run / "result.json").unlink()
    (run / "round2" / "eval.json").unlink()
    monkeypatch.setattr(filtered_bc_module, "_collect", _fail)
    monkeypatch.setattr(filtered_bc_module, "train_bc", _fail)  # the round's policy is there
    again = run_filtered_bc(cfg)
    assert again.curve[0] == result.curve[0]
    assert [p["success_rate"] for p in again.curve] == [p["success_rate"] for p in result.curve]
    assert run_filtered_bc(cfg) == again  # finished: returned as recorded


def test_bc_continued_control_fine_tunes_on_the_demonstrations_alone(
    tmp_path: Path, reach_demos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_text(monkeypatch)
    monkeypatch.setattr(filtered_bc_module, "_collect", _fail)
    cfg = _config(tmp_path, _base(tmp_path), reach_demos, clone_rollouts=False, rounds=1)
    result = run_filtered_bc(cfg)
    assert result.method == "bc_continued" and result.env_steps == 0 and result.demos == 4
    assert result.curve[0]["rollouts"] == 0 and result.extra["kept_successes"] == 0
    record = result.extra["filtered_bc"]
    assert record["warmup_steps"] == cfg.warmup_steps and record["demos"] == cfg.demos
    assert "lookahead_horizon" not in record  # no planner in this run
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        _config(tmp_path, Path("x"), reach_demos, rounds=0)


def _fail(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("finished work must not be done again")


class RenderableReach(ReachEnv):
    """ReachEnv with the benchmark envs' ``render_cameras`` (the planner renders on demand)."""

    def render_cameras(self) -> dict[str, np.ndarray]:
        obs = self._obs()
        return {c: obs[c] for c in ("top", "left_wrist", "right_wrist")}


class UnseededReach(RenderableReach):
    """Ignores the reset seed: a replay lands elsewhere."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        return super().reset(seed=int(np.random.default_rng().integers(1 << 30)))


RENDER_ID, UNSEEDED_ID = "AlgosTest/RenderableReach-v0", "AlgosTest/UnseededReach-v0"


@pytest.fixture
def planner_envs() -> None:
    for env_id, cls in ((RENDER_ID, RenderableReach), (UNSEEDED_ID, UnseededReach)):
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=cls, max_episode_steps=25)


def _progress_after(chunk: np.ndarray, seed: int) -> float:
    env = gym.make(RENDER_ID)
    env.reset(seed=seed)
    info: dict[str, Any] = {}
    for action in chunk:
        info = env.step(action)[4]
        if info["is_success"]:
            return 1.0
    return float(info["progress"])


@pytest.mark.usefixtures("planner_envs")
def test_simulated_lookahead_executes_the_candidate_that_simulates_best() -> None:
    import torch

    from sarm2_gym.algos.baselines.lookahead import SimulatedLookahead
    from sarm2_gym.algos.common.latents import draw_latents

    policy = tiny_vla()
    planner = SimulatedLookahead(
        policy, "reach the red dot", RENDER_ID, horizon=0, candidates=6, seed=3, image_size=IMAGE
    )
    env = gym.make(RENDER_ID)
    obs, _ = env.reset(seed=11)
    planner.start(11)
    first = [planner.predict(obs)[0] for _ in range(policy.chunk_size)]
    # the same candidates, drawn as the planner draws them, each simulated by hand
    noise = draw_latents((6, policy.chunk_size, 14), torch.Generator().manual_seed(3), 1.0)
    batched = {k: np.repeat(v[None], 6, axis=0) for k, v in obs.items()}
    with torch.no_grad():
        chunks = policy.sample_chunk(batched, "reach the red dot", noise).numpy()
    scores = [_progress_after(c, 11) for c in chunks]
    assert len(set(np.round(scores, 6))) > 1  # the choice matters here
    assert np.allclose(first, chunks[int(np.argmax(scores))])
    assert planner.executed == first and planner.decisions == 1
    with pytest.raises(RuntimeError, match="new episode, but start"):
        planner.predict(obs, episode_start=np.ones(1, dtype=bool))
    planner.start(12)  # as record_policy_episode calls it: start first, then episode_start
    planner.predict(gym.make(RENDER_ID).reset(seed=12)[0], episode_start=np.ones(1, dtype=bool))

    with pytest.raises(RuntimeError, match="start"):
        SimulatedLookahead(policy, "x", RENDER_ID, image_size=IMAGE).predict(obs)
    unseeded = SimulatedLookahead(policy, INSTRUCTION, UNSEEDED_ID, horizon=0, image_size=IMAGE)
    unseeded.start(11)
    unseeded.executed = [np.zeros(14, np.float32)]
    with pytest.raises(RuntimeError, match="not deterministic"):
        unseeded.predict(obs)
    with pytest.raises(ValueError, match="past states"):
        SimulatedLookahead(tiny_vla(past_states=2), "x", RENDER_ID)


@pytest.mark.usefixtures("planner_envs")
def test_simulated_lookahead_gives_an_oracle_policy_its_privileged_state() -> None:
    from sarm2_gym.algos.baselines.lookahead import SimulatedLookahead
    from sarm2_gym.envs.privileged_state import PrivilegedState

    policy = tiny_vla(privileged_state_dim=4)
    unit_normalization(policy, 4)
    planner = SimulatedLookahead(
        policy, INSTRUCTION, RENDER_ID, horizon=6, candidates=2, image_size=IMAGE
    )
    env = PrivilegedState(gym.make(RENDER_ID))
    obs, _ = env.reset(seed=4)
    planner.start(4)
    for _ in range(2 * policy.chunk_size):  # two decisions, each continued past its chunk
        obs = env.step(planner.predict(obs)[0])[0]
    assert planner.decisions == 2 and planner.simulated_steps > 2 * 2 * 6


@pytest.mark.usefixtures("planner_envs")
def test_lookahead_bc_clones_the_planner_episodes(
    tmp_path: Path, reach_demos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_text(monkeypatch)
    cfg = _config(
        tmp_path, _base(tmp_path), reach_demos, task=RENDER_ID, collector="lookahead",
        lookahead_horizon=2, lookahead_candidates=2, rounds=1, rollouts_per_round=2,
    )  # fmt: skip
    result = run_filtered_bc(cfg)
    assert result.method == "lookahead_bc"
    assert result.extra["filtered_bc"] == asdict(cfg)  # the whole config, the planner's too
    rollouts = json.loads((Path(cfg.out) / "round1" / "rollouts.json").read_text())
    assert [s["seed"] for s in rollouts] == [1000, 1001]
    # every decision replays the episode and simulates 2 candidates ahead in the copy
    assert all(s["simulated_steps"] > 2 * s["length"] for s in rollouts)
    assert result.curve[0]["simulated_steps"] == sum(s["simulated_steps"] for s in rollouts)
    with pytest.raises(ValueError, match="collector must be one of"):
        _config(tmp_path, Path("x"), reach_demos, collector="planner")
    with pytest.raises(ValueError, match="clone_rollouts"):
        _config(tmp_path, Path("x"), reach_demos, collector="lookahead", clone_rollouts=False)
