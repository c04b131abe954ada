from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sarm2_gym.algos.spiral import (
    SPIRAL,
    AnnotatedRollout,
    EpisodeLabels,
    PrivilegedProgressLabeler,
    RolloutEpisode,
    SPIRALConfig,
)
from sarm2_gym.data.reader import LeRobotDataset

from .helpers import make_reach_env, tiny_vla

TINY = SPIRALConfig(
    rollouts_per_round=2, gradient_steps=8, actor_hidden=(16, 16), critic_hidden=(16, 16)
)


def _env(n: int = 2) -> DummyVecEnv:
    return DummyVecEnv([make_reach_env] * n)


def _spiral(tmp: Path | None = None, config: SPIRALConfig = TINY, **kwargs: Any) -> SPIRAL:
    return SPIRAL(
        tiny_vla(),
        _env(),
        PrivilegedProgressLabeler(),
        config=config,
        seed=3,
        checkpoint_dir=None if tmp is None else tmp / "ckpt",
        tensorboard_log=None if tmp is None else str(tmp / "tb"),
        **kwargs,
    )


def _params(model: SPIRAL) -> dict[str, torch.Tensor]:
    p = model.policy
    return {
        **{f"a.{k}": v for k, v in p.actor.state_dict().items()},
        **{f"c.{k}": v for k, v in p.critic.state_dict().items()},
        **{f"t.{k}": v for k, v in p.critic_target.state_dict().items()},
    }


class Counter(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.steps = self.rollout_starts = self.rollout_ends = 0

    def _on_step(self) -> bool:
        self.steps += 1
        return True

    def _on_rollout_start(self) -> None:
        self.rollout_starts += 1

    def _on_rollout_end(self) -> None:
        self.rollout_ends += 1


def test_learn_runs_rounds_end_to_end_and_logs_to_tensorboard(tmp_path: Path) -> None:
    model = _spiral(tmp_path)
    counter = Counter()
    model.learn(60, callback=counter, tb_log_name="tiny", progress_bar=True)
    assert model.num_timesteps >= 60 and model.round >= 1
    assert counter.steps * 2 == model.num_timesteps
    assert counter.rollout_starts == counter.rollout_ends == model.round
    assert model._n_updates == model.round * TINY.gradient_steps
    assert len(model.replay) > 0
    assert {e["source"] for e in model.replay.episodes} == {"rollout"}
    record = model.history[-1]
    assert record["episodes"] <= 2 and np.isfinite(record["train_critic_loss"])
    # the critics were only ever trained with z = 0, and their latent weights stayed at zero
    sample = model.replay.sample(4, np.random.default_rng(0))
    critic = model.policy.critic
    zero_q = critic(sample.features, torch.zeros_like(sample.actions), sample.actions)
    assert torch.equal(
        critic(sample.features, torch.randn_like(sample.actions), sample.actions), zero_q
    )
    events = list((tmp_path / "tb").glob("tiny_*/events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/critic_loss", "train/actor_loss", "rollout/success_rate", "spiral/round"} <= tags


def test_predict_works_with_sb3_evaluation_and_chunk_state() -> None:
    model = _spiral()
    obs = model.env.reset()  # type: ignore[union-attr]
    action, state = model.predict(obs, deterministic=True)
    assert action.shape == (2, 14) and np.abs(action).max() <= 1.0
    queue, cursor = state
    assert queue.shape == (2, 4, 14) and cursor.tolist() == [1, 1]
    again, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(action, again)
    single, _ = model.predict({k: v[0] for k, v in obs.items()}, deterministic=True)
    assert single.shape == (14,)
    mean_reward, _ = evaluate_policy(model, Monitor(make_reach_env()), n_eval_episodes=2)
    assert np.isfinite(mean_reward)


def test_deployment_picks_the_candidate_with_the_highest_min_q() -> None:
    model = _spiral()
    policy = model.policy

    class StubCritic(torch.nn.Module):
        def min_q(self, f: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            return -(a[:, :, 0] - 0.3).abs().sum(-1)  # prefers x-actions near 0.3

    policy.critic = StubCritic()  # type: ignore[assignment]
    obs = model.env.reset()  # type: ignore[union-attr]
    feats = policy.encode(obs)
    noise = torch.randn(
        (2, TINY.kappa, 4, 14), generator=torch.Generator().manual_seed(policy.config.deploy_seed)
    )
    chunks, q = policy.candidates(feats, noise)
    want = chunks[torch.arange(2), q.argmax(1)]
    got = policy.plan(obs, deterministic=True)
    assert np.allclose(got, want.numpy())
    assert not torch.allclose(chunks[:, 0], chunks[:, 1])


def test_deployment_ablations_take_the_policy_apart() -> None:
    model = _spiral()
    policy = model.policy
    with torch.no_grad():  # a residual far from zero, so leaving it out shows
        for param in policy.actor.parameters():
            param.add_(0.5)
    obs = model.env.reset()  # type: ignore[union-attr]
    feats = policy.encode(obs)
    z = torch.randn(
        (2, 1, 4, 14), generator=torch.Generator().manual_seed(policy.config.deploy_seed)
    )
    base = policy.base.env_actions(feats, policy.base.sample_normalized_actions(feats, z[:, 0]))
    policy.set_deployment(kappa=1, residual=False)  # = the base policy
    gen = torch.Generator().manual_seed(policy.config.deploy_seed)
    assert torch.allclose(policy.plan_from_features(feats, gen), base)
    policy.set_deployment(kappa=1)  # one latent, with the residual
    with_residual = policy.plan(obs, deterministic=True)
    assert not np.allclose(with_residual, base.numpy())
    assert np.allclose(with_residual, policy.total_chunks(feats, z[:, 0])[0].detach().numpy())
    policy.set_deployment(kappa=3, residual=False)
    seen: list[int] = []

    def count(f: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        seen.append(len(f))
        return torch.zeros(len(f))

    policy.critic.min_q = count  # type: ignore[method-assign]
    policy.plan(obs, deterministic=True)
    assert seen == [2 * 3]  # 2 envs x 3 latents
    with pytest.raises(ValueError, match="kappa must be at least 1"):
        policy.set_deployment(kappa=0)


def test_latent_temperature_scales_the_deployment_latents() -> None:
    model = _spiral()
    policy = model.policy
    feats = policy.encode(model.env.reset())  # type: ignore[union-attr]
    seed = policy.config.deploy_seed
    z = torch.randn((2, 4, 4, 14), generator=torch.Generator().manual_seed(seed))
    chunks, q = policy.candidates(feats, 0.5 * z)
    policy.set_deployment(temperature=0.5)
    got = policy.plan_from_features(feats, torch.Generator().manual_seed(seed))
    assert torch.allclose(got, chunks[torch.arange(2), q.argmax(1)])
    policy.set_deployment(kappa=1, residual=False, temperature=0.0)  # the zero latent
    zero = policy.base.env_actions(
        feats, policy.base.sample_normalized_actions(feats, torch.zeros(2, 4, 14))
    )
    assert torch.allclose(policy.plan_from_features(feats, torch.Generator()), zero)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            policy.set_deployment(temperature=bad)


def test_save_load_round_trip_predicts_identically(tmp_path: Path) -> None:
    model = _spiral()
    model.learn(40)
    model.save(tmp_path / "run")
    loaded = SPIRAL.load(tmp_path / "run", env=_env(), reward_model=PrivilegedProgressLabeler())
    for k, v in _params(model).items():
        assert torch.equal(v, _params(loaded)[k]), k
    obs = model.env.reset()  # type: ignore[union-attr]
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    # the stochastic latent generator is restored too
    assert np.array_equal(model.predict(obs)[0], loaded.predict(obs)[0])
    assert (loaded.num_timesteps, loaded.round, len(loaded.replay)) == (
        model.num_timesteps,
        model.round,
        len(model.replay),
    )
    no_env = SPIRAL.load(tmp_path / "run", reward_model=PrivilegedProgressLabeler())
    assert np.array_equal(
        no_env.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )


class Kill(BaseCallback):
    def __init__(self, at_round: int) -> None:
        super().__init__()
        self.at_round = at_round

    def _on_step(self) -> bool:
        if self.model.round == self.at_round and self.num_timesteps % 10 == 0:
            raise KeyboardInterrupt("simulated kill")
        return True


def test_a_run_killed_between_rounds_resumes_exactly(tmp_path: Path) -> None:
    total = 120
    straight = _spiral(tmp_path / "a")
    straight.learn(total)
    assert straight.round >= 3

    killed = _spiral(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        killed.learn(total, callback=Kill(at_round=2))
    resumed = SPIRAL.load(
        tmp_path / "b" / "ckpt", env=_env(), reward_model=PrivilegedProgressLabeler()
    )
    assert resumed.round == 2
    resumed.learn(total - resumed.num_timesteps, reset_num_timesteps=False)
    assert (resumed.num_timesteps, resumed.round) == (straight.num_timesteps, straight.round)
    for k, v in _params(straight).items():
        assert torch.equal(v, _params(resumed)[k]), k
    assert resumed.replay.episodes == straight.replay.episodes


def test_learn_on_clean_whiteboard(tmp_path: Path) -> None:
    task = "SARM2-CleanWhiteboard-v0"
    instruction = gym.make(task, obs_mode="state").unwrapped.instruction  # type: ignore[attr-defined]
    vla = tiny_vla(instructions=(instruction,))
    env = DummyVecEnv([lambda: gym.make(task, image_size=24, max_episode_steps=12)])
    cfg = SPIRALConfig(
        rollouts_per_round=1, gradient_steps=4, actor_hidden=(16,), critic_hidden=(16,)
    )
    model = SPIRAL(
        vla, env, PrivilegedProgressLabeler(), config=cfg, seed=0, tensorboard_log=str(tmp_path)
    )
    model.learn(12)
    assert model.instruction == instruction
    assert model.num_timesteps == 12 and model.round == 1
    assert len(model.replay) == 13  # 12 steps + the final observation
    assert list(tmp_path.glob("SPIRAL_*/events.out.tfevents.*"))
    env.close()


def test_offline_mode_learns_from_labelled_demonstrations(
    tmp_path: Path, reach_demos: Path
) -> None:
    model = _spiral(tmp_path)
    assert model.add_demonstrations(reach_demos, max_episodes=3) == 3
    assert [e["source"] for e in model.replay.episodes] == ["demo"] * 3
    assert all(e["terminal"] == float(e["success"]) for e in model.replay.episodes)
    stats = model.learn_offline(gradient_steps=5)
    assert model.offline_updates == 5 and np.isfinite(stats["critic_loss"])
    assert (tmp_path / "ckpt" / "latest.json").is_file()
    other = SPIRAL(
        tiny_vla(instructions=("another task",)),
        _env(),
        PrivilegedProgressLabeler(),
        instruction="another task",
    )
    with pytest.raises(ValueError, match="not the policy's task"):
        other.add_demonstrations(reach_demos)


class ConstantLabeler:
    needs_images = False

    def label(self, episode: RolloutEpisode) -> EpisodeLabels:
        reward = np.full(episode.length, 0.01)
        reward[0] = 0.0
        return EpisodeLabels(reward=reward, progress=np.cumsum(reward))


class FakeAdapter:
    def __init__(self) -> None:
        self.calls: list[Sequence[AnnotatedRollout]] = []
        self.restored: list[Path] = []

    def adapt(self, rollouts: Sequence[AnnotatedRollout], out_dir: Path | None) -> ConstantLabeler:
        self.calls.append(rollouts)
        assert out_dir is not None
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "adapted.txt").write_text("rm2")
        return ConstantLabeler()

    def restore(self, out_dir: Path) -> ConstantLabeler:
        self.restored.append(out_dir)
        return ConstantLabeler()


def test_reward_model_adaptation_hook_runs_once_on_annotated_rollouts(tmp_path: Path) -> None:
    adapter = FakeAdapter()
    model = _spiral(tmp_path, reward_adapter=adapter)
    model.learn(60, max_rounds=2)
    assert len(adapter.calls) == 1 and model.adapted
    annotated = adapter.calls[0]
    assert len(annotated) == 2
    for item in annotated:
        priv = item.episode.progress
        assert priv is not None and item.progress.shape == priv.shape
        assert item.progress[-1] == pytest.approx(np.clip(priv[-1], 0, 1), abs=1e-6)
        assert item.reward == pytest.approx(np.diff(item.progress, prepend=0.0))
    # every rollout, the adaptation round's included, is labelled by the adapted model (RM2)
    assert all(
        e["dense_return"] == pytest.approx(0.01 * (e["length"] - 1)) for e in model.replay.episodes
    )
    resumed = SPIRAL.load(
        tmp_path / "ckpt",
        env=_env(),
        reward_model=PrivilegedProgressLabeler(),
        reward_adapter=adapter,
    )
    assert isinstance(resumed.labeler, ConstantLabeler) and adapter.restored == [
        tmp_path / "ckpt" / "reward_model"
    ]


def test_mismatched_env_is_rejected_on_load(tmp_path: Path) -> None:
    model = _spiral()
    model.save(tmp_path / "run")
    other = DummyVecEnv([lambda: gym.make("SARM2-CleanWhiteboard-v0", obs_mode="state")])
    with pytest.raises(ValueError):
        SPIRAL.load(tmp_path / "run", env=other, reward_model=PrivilegedProgressLabeler())
    other.close()


def test_residual_acts_in_the_base_policys_normalised_action_units() -> None:
    # The residual is added where the base policy's head generates (spec §2.2, as the reference
    # edits pi0's normalised actions): a dimension moves by at most scale * its data spread, so
    # one the demonstrations never moved (std at the floor) cannot drift.
    model = _spiral()
    policy, base = model.policy, model.policy.base
    std = torch.full((14,), 0.2)
    std[3] = 1e-2  # a rotation the demonstrations keep still
    state_dim = base.config.state_dim
    base.set_normalization(np.zeros(state_dim), np.ones(state_dim), np.zeros(14), std.numpy())
    with torch.no_grad():
        policy.actor.mlp[-1].weight.normal_(0.0, 5.0)  # a saturated residual: +-scale
    feats = policy.encode(model.env.reset())  # type: ignore[union-attr]
    noise = torch.randn(2, base.chunk_size, 14, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        total, residual = policy.total_chunks(feats, noise)
        plain = base.sample_actions(feats, noise)
        normalized = base.sample_normalized_actions(feats, noise)
    scale = policy.config.actor_output_scale
    assert torch.allclose(plain, base.env_actions(feats, normalized))
    assert residual.abs().max() > 0.9 * scale
    moved = (total - plain).abs()
    inside = plain.abs() < 1.0 - 0.2 * scale  # away from the [-1, 1] clip
    assert (moved <= scale * std + 1e-6)[inside].all()
    assert moved[..., 3].max() <= scale * 1e-2 + 1e-6
    assert moved[..., 0][inside[..., 0]].max() > 0.5 * scale * 0.2


def test_latent_temperature_scales_every_latent_spiral_draws() -> None:
    with pytest.raises(ValueError, match="latent_temperature must be a finite number >= 0"):
        replace(TINY, latent_temperature=-1.0)
    model = _spiral(config=replace(TINY, latent_temperature=0.0, gradient_steps=2))
    drawn: list[torch.Tensor] = []
    total_chunks = model.policy.total_chunks

    def record(features: torch.Tensor, noise: torch.Tensor) -> Any:
        drawn.append(noise)
        return total_chunks(features, noise)

    model.policy.total_chunks = record  # type: ignore[method-assign]
    model.learn(40)  # a round: rollouts (deployment), then 2 updates (TD target + actor)
    assert model.round >= 1 and len(drawn) > 2 * 2  # planning calls plus two per update
    assert all(torch.count_nonzero(z) == 0 for z in drawn)  # T = 0: every latent is zero
    model.policy.set_deployment(temperature=1.0)  # an explicit override beats the config
    model.policy.plan(model.env.reset(), deterministic=True)  # type: ignore[union-attr]
    assert torch.count_nonzero(drawn[-1]) > 0


def test_choice_stats_measure_the_critics_choice_without_touching_training() -> None:
    model = _spiral()
    model.learn(80)
    record = model.history[-1]
    assert record["train_choice_q_spread"] > 0 and record["train_choice_ensemble_std"] > 0
    # drawing the diagnostics leaves the training streams alone
    twin = _spiral()
    twin.learn(80)
    twin.choice_stats()
    model.train(3)
    twin.train(3)
    for k, v in _params(model).items():
        assert torch.equal(v, _params(twin)[k]), k
    # identical candidates (T = 0) leave nothing to choose between
    model.config = replace(model.config, latent_temperature=0.0)
    assert model.choice_stats()["choice_q_spread"] == 0.0
    # identical critics do not disagree
    critic = model.policy.critic
    with torch.no_grad():
        for param in critic.parameters():
            if param.dim() and param.shape[0] == critic.n_critics:
                param.copy_(param[:1].expand_as(param))
    assert model.choice_stats()["choice_ensemble_std"] < 1e-6


def test_each_round_checks_its_critics_on_the_new_rollouts_before_training(
    tmp_path: Path,
) -> None:
    model = _spiral(tmp_path)
    model.learn(150, tb_log_name="fit")  # three full rounds of two 25-step episodes
    first, later = model.history[0], model.history[1:]
    assert not any(k.startswith("critic_heldout_") for k in first)  # no updates yet
    assert later and all(-1 <= r["critic_heldout_spearman"] <= 1 for r in later)
    assert all(r["critic_heldout_frames"] > 0 for r in later)
    acc = EventAccumulator(str(next((tmp_path / "tb").glob("fit_*"))))
    acc.Reload()
    fit_tags = {"spiral/critic_heldout_spearman", "spiral/critic_heldout_explained_variance"}
    assert fit_tags <= set(acc.Tags()["scalars"])
    # the numbers compare each chunk's Q with the return that followed that very chunk
    episodes = range(len(model.replay.episodes))
    truth = [model.replay.episode_chunks(i, TINY.mc_weight)[2] for i in episodes]
    for sign, want in ((1.0, 1.0), (-1.0, -1.0)):
        answers = iter(truth)
        model.policy.critic.min_q = lambda f, z, a, s=sign, it=answers: torch.from_numpy(  # type: ignore[method-assign]
            s * next(it)
        ).float()
        fit = model.critic_fit(episodes)
        assert fit["spearman"] == pytest.approx(want, abs=1e-6)
        assert fit["frames"] == sum(len(t) for t in truth)
    answers = iter(truth)
    model.policy.critic.min_q = lambda f, z, a: torch.from_numpy(next(answers))  # type: ignore[method-assign]
    assert model.critic_fit(episodes)["explained_variance"] == pytest.approx(1.0)


def test_frozen_image_features_widen_what_the_actor_and_critics_read(tmp_path: Path) -> None:
    from sarm2_gym.reward.encoders.efficientnet import EfficientNetLite0Encoder

    config = replace(TINY, frozen_image_features="efficientnet_lite0", frozen_image_size=32)
    model = _spiral(config=config)
    policy, vla = model.policy, model.base_policy
    obs = model.env.reset()  # type: ignore[union-attr]
    cameras = [k for k in obs if k != "state"]
    feats = policy.encode(obs)
    assert feats.shape == (2, vla.feature_dim + 1280 * len(cameras))
    assert model.replay.feature_dim == feats.shape[1]
    assert policy.base.encoder.device == vla.device  # the encoder follows the base policy
    assert policy.critic.linears[0].weight.shape[1] == feats.shape[1] + 2 * 4 * 14
    own = vla.encode(obs, policy.instruction)
    assert torch.equal(feats[:, : vla.feature_dim], own)
    encoder = EfficientNetLite0Encoder(32)
    for i, camera in enumerate(cameras):
        start = vla.feature_dim + 1280 * i
        frozen = encoder.encode(torch.as_tensor(obs[camera]))
        assert torch.allclose(feats[:, start : start + 1280], frozen, atol=1e-5)
    # the base policy reads its own slice: its chunks are those of the unwrapped policy
    z = torch.randn((2, 4, 14), generator=torch.Generator().manual_seed(0))
    assert torch.equal(
        policy.base.sample_normalized_actions(feats, z), vla.sample_normalized_actions(own, z)
    )
    with pytest.raises(ValueError, match="features must be"):
        policy.base.sample_normalized_actions(own, z)
    model.learn(60)
    assert (
        model.round >= 1
        and len(model.replay) > 0
        and np.isfinite(model.history[-1]["train_critic_loss"])
    )
    model.save(tmp_path / "run")
    loaded = SPIRAL.load(tmp_path / "run", env=_env(), reward_model=PrivilegedProgressLabeler())
    assert loaded.config.frozen_image_features == "efficientnet_lite0"
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    with pytest.raises(ValueError, match="frozen_image_features must be"):
        replace(TINY, frozen_image_features="resnet18")


def test_privileged_critics_read_the_simulator_state_and_the_actor_does_not(
    tmp_path: Path, reach_demos: Path
) -> None:
    from sarm2_gym.algos.vla.policy import privileged_state_read_by, wrap_env_for_policy
    from sarm2_gym.envs.privileged_state import PrivilegedState

    config = replace(TINY, critic_privileged_state=True)
    model = SPIRAL(  # a plain env: SPIRAL adds the privileged state itself
        tiny_vla(), make_reach_env(), PrivilegedProgressLabeler(), config=config, seed=3
    )
    policy, vla = model.policy, model.base_policy
    obs = model.env.reset()  # type: ignore[union-attr]
    reach = model.env.envs[0].unwrapped  # type: ignore[union-attr]
    assert np.array_equal(obs["env_state"][0], np.r_[reach.pos, reach.goal].astype(np.float32))
    feats = policy.encode(obs)
    assert feats.shape == (1, vla.feature_dim + 4) and model.replay.feature_dim == feats.shape[1]
    assert torch.equal(feats[:, -4:], torch.as_tensor(obs["env_state"]))
    h, a = policy.chunk_shape
    assert policy.actor.mlp[0].in_features == vla.feature_dim + h * a  # the actor: no state
    assert policy.critic.linears[0].weight.shape[1] == feats.shape[1] + 2 * h * a
    # another privileged state moves the critics' values, not the residual
    other = feats.clone()
    other[:, -4:] += 1.0
    z = torch.randn((1, h, a), generator=torch.Generator().manual_seed(0))
    chunks, residual = policy.total_chunks(feats, z)
    chunks_other, residual_other = policy.total_chunks(other, z)
    assert torch.equal(residual, residual_other) and torch.equal(chunks, chunks_other)
    assert not torch.equal(policy.critic(feats, z, chunks), policy.critic(other, z, chunks))
    # evaluation envs get the state the same way (evaluate_on_task wraps for the predictor)
    assert privileged_state_read_by(model) and not privileged_state_read_by(vla)
    assert "env_state" in wrap_env_for_policy(make_reach_env(), model).observation_space.spaces
    # given in parts (a base policy with past states, the config that runs it): both wrappers
    parts = wrap_env_for_policy(make_reach_env(), tiny_vla(past_states=2), config)
    assert {"past_states", "env_state"} <= set(parts.observation_space.spaces)
    # offline demonstrations give the critics the state they were recorded with
    assert model.add_demonstrations(reach_demos, max_episodes=1) == 1
    demo = LeRobotDataset(reach_demos).episode(0).frames["observation.environment_state"]
    stored = model.replay.episode_chunks(0, config.mc_weight)[0][:, -4:]
    assert np.array_equal(stored.numpy(), demo[:, :4])
    model.learn(60)
    assert model.round >= 1 and np.isfinite(model.history[-1]["train_critic_loss"])
    model.save(tmp_path / "run")
    env = DummyVecEnv([lambda: PrivilegedState(make_reach_env())])
    loaded = SPIRAL.load(tmp_path / "run", env=env, reward_model=PrivilegedProgressLabeler())
    assert loaded.config.critic_privileged_state
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    # what is wrong is named: a VecEnv without the state, an observation without it, NaN
    with pytest.raises(ValueError, match=r"critic_privileged_state needs .*PrivilegedState"):
        _spiral(config=config)
    plain = {k: v for k, v in obs.items() if k != "env_state"}
    with pytest.raises(ValueError, match="observation lacks 'env_state'"):
        policy.encode(plain)
    with pytest.raises(ValueError, match=r"'env_state' must be \(1, 4\)"):
        policy.encode({**plain, "env_state": obs["env_state"][:, :3]})
    with pytest.raises(ValueError, match="NaN"):
        policy.encode({**plain, "env_state": np.full((1, 4), np.nan, np.float32)})
    # with frozen image features too, the actor reads them and the critics read both
    both = replace(config, frozen_image_features="efficientnet_lite0", frozen_image_size=32)
    policy = SPIRAL(
        tiny_vla(), make_reach_env(), PrivilegedProgressLabeler(), config=both, seed=3
    ).policy
    frozen = vla.feature_dim + 3 * 1280
    assert policy.actor.mlp[0].in_features == frozen + h * a
    assert policy.critic.linears[0].weight.shape[1] == frozen + 4 + 2 * h * a
    assert torch.equal(policy.encode(obs)[:, -4:], torch.as_tensor(obs["env_state"]))
