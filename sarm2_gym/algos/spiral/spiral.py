"""SPIRAL: reward-guided self-improvement of a chunk policy by residual actor-critic (spec §2).

Paper: SARM2 + SPIRAL, arXiv 2606.10305 (see ``reference/sarm2-spiral-spec.md`` PART II).

One round (spec §2.1, stage 3)::

    collect  rollouts_per_round episodes with the current policy (vectorised, best-of-kappa)
    adapt    once (if an adapter is given): annotate the round's rollouts, fine-tune RM1 -> RM2
    label    every episode with the reward model: dense per-frame reward + progress
    check    how well the critics, not yet trained on them, predict these episodes' returns
    update   gradient_steps x (critic -> actor -> Polyak) on all labelled episodes so far
    save     the whole run (if checkpoint_dir is set), so a killed run resumes at the next round

Offline mode (stage 2b): :meth:`SPIRAL.add_demonstrations` labels a demonstration dataset with the
reward model and :meth:`SPIRAL.learn_offline` runs the same update on it.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.utils import configure_logger, polyak_update
from stable_baselines3.common.vec_env import VecEnv

from sarm2_gym.algos.common.latents import draw_latents
from sarm2_gym.algos.spiral import persistence
from sarm2_gym.algos.spiral.adaptation import (
    Annotator,
    RewardModelAdapter,
    annotate_rollouts,
    privileged_annotator,
)
from sarm2_gym.algos.spiral.buffer import ChunkReplayBuffer
from sarm2_gym.algos.spiral.config import SPIRALConfig
from sarm2_gym.algos.spiral.labeling import RolloutLabeler
from sarm2_gym.algos.spiral.logs import log_round, round_record
from sarm2_gym.algos.spiral.policies import ResidualChunkPolicy
from sarm2_gym.algos.spiral.rollouts import CollectedEpisode, collect_rollouts
from sarm2_gym.algos.spiral.targets import critic_targets
from sarm2_gym.algos.vla.policy import ChunkPolicy, wrap_env_for_policy

__all__ = ["SPIRAL"]

SelfSPIRAL = TypeVar("SelfSPIRAL", bound="SPIRAL")


class SPIRAL(BaseAlgorithm):
    """Self-Policy Improvement via Reward-Aligned Learning (residual RL over a frozen VLA).

    Args:
        policy: The frozen base policy (a :class:`~sarm2_gym.algos.vla.policy.ChunkPolicy`), or
            the directory of a TinyVLA checkpoint.
        env: Env or SB3 ``VecEnv`` (or an env id); images are used channel-last, untransposed.
        reward_model: Labels finished episodes (:class:`~.labeling.RolloutLabeler`).
        config: Hyper-parameters (default: the paper's preset, see :class:`SPIRALConfig`).
        instruction: Task instruction (default: the env's ``instruction`` attribute).
        reward_adapter: Optional reward-model fine-tuning hook, called once after the first round.
        annotator: Annotates rollouts for the adaptation (default: the privileged simulator one).
        checkpoint_dir: Where the run is saved after every round (resumable).
        tensorboard_log: TensorBoard root (SB3 convention).
        verbose: SB3 verbosity.
        seed: Seeds networks, latents, minibatches and the rollout envs of every round.
        device: Torch device.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "ResidualChunkPolicy": ResidualChunkPolicy
    }
    policy: ResidualChunkPolicy

    def __init__(
        self,
        policy: ChunkPolicy | str | Path,
        env: GymEnv | str | None,
        reward_model: RolloutLabeler,
        *,
        config: SPIRALConfig | None = None,
        instruction: str | None = None,
        reward_adapter: RewardModelAdapter | None = None,
        annotator: Annotator | None = None,
        checkpoint_dir: str | Path | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: str = "cpu",
        _init_setup_model: bool = True,
    ) -> None:
        if isinstance(policy, str | Path):
            from sarm2_gym.algos.vla.tiny_vla import TinyVLA

            policy = TinyVLA.from_pretrained(policy, device=device)
        self.base_policy: ChunkPolicy = policy
        self.config = config or SPIRALConfig()
        # An env SPIRAL builds or wraps itself gives what the base policy reads (past states)
        # and, with critic_privileged_state, the simulator's state; a VecEnv must already (the
        # policy's error says how).
        if isinstance(env, str):
            env = gym.make(env)
        if isinstance(env, gym.Env):
            env = wrap_env_for_policy(env, policy, self.config)
        self.labeler = reward_model
        self.reward_adapter = reward_adapter
        self.annotator = annotator or privileged_annotator
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        super().__init__(
            policy=ResidualChunkPolicy,
            env=env,
            learning_rate=self.config.actor_lr,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            supported_action_spaces=(spaces.Box,),
        )
        self.instruction = instruction or self._env_instruction()
        self.round = 0
        self.adapted = False
        self.offline_updates = 0
        self.history: list[dict[str, Any]] = []
        if _init_setup_model:
            self._setup_model()

    @staticmethod
    def _wrap_env(env: GymEnv, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
        """SB3's wrapping minus ``VecTransposeImage``: the policy reads channel-last frames."""
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv
        from stable_baselines3.common.vec_env.patch_gym import _patch_env

        if isinstance(env, VecEnv):
            return env
        env = _patch_env(env)
        if monitor_wrapper and not isinstance(env, Monitor):
            env = Monitor(env)
        return DummyVecEnv([lambda: env])

    def _env_instruction(self) -> str:
        if self.env is not None:
            return str(self.env.get_attr("instruction")[0])
        if len(self.base_policy.instructions) == 1:
            return self.base_policy.instructions[0]
        raise ValueError(
            "pass instruction=: no env to read it from and the base policy knows several"
        )

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        seed = 0 if self.seed is None else self.seed
        self.policy = ResidualChunkPolicy(
            self.observation_space,
            self.action_space,
            self.lr_schedule,
            base=self.base_policy,
            instruction=self.instruction,
            config=self.config,
        ).to(self.device)
        self.policy.rng.manual_seed(seed)
        self.latent_rng = torch.Generator().manual_seed(seed + 1)  # z, z' of the updates
        self.update_rng = np.random.default_rng(seed)  # minibatch indices
        b = self.policy.base  # with any frozen image features appended
        self.replay = ChunkReplayBuffer(
            b.feature_dim, b.action_dim, b.chunk_size, self.config.gamma
        )

    # ------------------------------------------------------------------ the loop
    def learn(
        self: SelfSPIRAL,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "SPIRAL",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
        max_rounds: int | None = None,
    ) -> SelfSPIRAL:
        """Run rounds until ``total_timesteps`` env steps are used (SB3 semantics).

        ``reset_num_timesteps=False`` continues a loaded run: ``total_timesteps`` more steps.
        ``max_rounds`` stops after that many rounds in this call (e.g. to evaluate between
        rounds); the last round may stop early when the step budget runs out.
        """
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        rounds = 0
        while self.num_timesteps < total_timesteps and (max_rounds is None or rounds < max_rounds):
            if not self._run_round(total_timesteps, callback):
                break
            rounds += 1
        callback.on_training_end()
        return self

    def _run_round(self, total_timesteps: int, callback: BaseCallback) -> bool:
        """One round: collect -> (adapt) -> label -> update -> log -> save. False if aborted."""
        assert self.env is not None
        start, cfg = time.perf_counter(), self.config
        adapting = self.reward_adapter is not None and not self.adapted
        keep_images = self.labeler.needs_images or adapting
        pending: list[CollectedEpisode] = []
        dense_returns: list[float] = []
        n_before = len(self.replay.episodes)

        def on_episode(item: CollectedEpisode) -> None:
            if adapting:
                pending.append(item)  # labelled after the adaptation, by RM2
            else:
                dense_returns.append(self._add_labelled(item, "rollout"))

        def on_env_step(n: int, infos: list[dict[str, Any]], dones: np.ndarray) -> None:
            self.num_timesteps += n
            self._update_info_buffer(infos, dones)

        # --- collect with the current policy (each round's envs get their own seeds)
        callback.on_rollout_start()
        self.env.seed(self._round_seed())
        stats = collect_rollouts(
            self.policy, self.env, cfg.rollouts_per_round, total_timesteps - self.num_timesteps,
            callback, on_episode, keep_images=keep_images, on_env_step=on_env_step,
            meta={"round": self.round},
        )  # fmt: skip
        callback.on_rollout_end()
        if stats.aborted:
            return False
        # --- one-time reward-model adaptation on annotated rollouts (spec §2.1 stage 2a, §2.3)
        if adapting and pending:
            self._adapt([p.episode for p in pending])
            dense_returns += [self._add_labelled(p, "rollout") for p in pending]
        # --- the critics' fit to the new episodes, before they are trained on them
        heldout = self.critic_fit(range(n_before, len(self.replay.episodes)))
        # --- update: critic -> actor -> Polyak
        train_stats = self.train(cfg.gradient_steps) if len(self.replay) else {}
        # --- log and save
        record = round_record(self.round, self.num_timesteps, stats, dense_returns, train_stats)
        record.update({f"critic_heldout_{k}": v for k, v in heldout.items()})
        record["round_seconds"] = time.perf_counter() - start
        self._log_round(record, train_stats)
        self.history.append(record)
        self.round += 1
        if self.checkpoint_dir is not None:
            self.save_checkpoint()
        return True

    def _round_seed(self) -> int:
        return (0 if self.seed is None else self.seed) * 100_000 + 1_000 * self.round

    def _add_labelled(self, item: CollectedEpisode, source: str) -> float:
        """Label an episode with the current reward model, store it, return its dense return."""
        ep = item.episode
        labels = self.labeler.label(ep)
        terminal = {
            "success": float(ep.success),
            "progress": float(labels.progress[-1]),
            "one": 1.0,
        }[self.config.mc_terminal]
        info = {
            "source": source,
            "success": ep.success,
            "dense_return": float(labels.reward.sum()),
            **ep.meta,
        }
        self.replay.add_episode(item.features, ep.actions, labels.reward, terminal, info)
        return float(labels.reward.sum())

    def _adapt(self, episodes: list[Any]) -> None:
        assert self.reward_adapter is not None
        annotated = annotate_rollouts(episodes, self.annotator)
        out_dir = (
            None
            if self.checkpoint_dir is None
            else self.checkpoint_dir / persistence.ADAPTED_REWARD_MODEL_DIR
        )
        self.labeler = self.reward_adapter.adapt(annotated, out_dir)
        self.adapted = True
        self.logger.record("reward_model/adapted_on", len(annotated))

    def _log_round(self, record: dict[str, Any], train_stats: dict[str, float]) -> None:
        elapsed = max((time.time_ns() - self.start_time) / 1e9, 1e-9)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        rewards = [float(e["r"]) for e in self.ep_info_buffer or []]
        log_round(self.logger, record, train_stats, fps, rewards)
        self.logger.dump(step=self.num_timesteps)

    # ------------------------------------------------------------------ the update (spec §2.2)
    def train(self, gradient_steps: int) -> dict[str, float]:
        """``gradient_steps`` x (critic -> actor -> Polyak) on the replay; returns mean stats."""
        p, cfg = self.policy, self.config
        p.set_training_mode(True)
        h, a = p.chunk_shape
        sums: dict[str, float] = defaultdict(float)
        for _ in range(gradient_steps):
            batch = self.replay.sample(cfg.batch_size, self.update_rng)
            b = batch.features.shape[0]
            # critic: y = alpha y^MC + (1 - alpha)(R + gamma^H (1 - d) min_i Q^tgt_i(s', z', a'))
            with torch.no_grad():
                z_next = draw_latents((b, h, a), self.latent_rng, cfg.latent_temperature)
                a_next, _ = p.total_chunks(batch.next_features, z_next)
                q_next = p.critic_target.min_q(batch.next_features, z_next, a_next)
                y, y_td = critic_targets(
                    batch.chunk_return,
                    batch.done,
                    q_next,
                    batch.mc_return,
                    cfg.gamma,
                    h,
                    cfg.mc_weight,
                )
            q = p.critic(
                batch.features, torch.zeros_like(batch.actions), batch.actions
            )  # (N_Q, B); z = 0: latent unknown
            critic_loss = (q - y[None]).pow(2).mean()
            self._step(p.critic_optimizer, critic_loss, p.critic)
            # actor: -mean_j min_i Q_i(s, z_j, pi(s,z_j) + s_theta(s,z_j)) + beta mean ||s_theta||^2
            f_k, z_k, chunks_k, residual = self._kappa_candidates(batch.features, self.latent_rng)
            p.critic.requires_grad_(False)  # the actor loss must not move the critics
            q_pi = p.critic.min_q(f_k, z_k, chunks_k)
            p.critic.requires_grad_(True)
            residual_sq = residual.pow(2).mean()
            actor_loss = -q_pi.mean() + cfg.beta_bc * residual_sq
            self._step(p.actor_optimizer, actor_loss, p.actor)
            polyak_update(p.critic.parameters(), p.critic_target.parameters(), cfg.tau)
            self._n_updates += 1
            for key, value in (
                ("critic_loss", critic_loss), ("actor_loss", actor_loss), ("q_mean", q.mean()),
                ("q_pi_mean", q_pi.mean()), ("residual_rms", residual_sq.sqrt()),
                ("td_target_mean", y_td.mean()), ("mc_target_mean", batch.mc_return.mean()),
                ("target_mean", y.mean()),
            ):  # fmt: skip
                sums[key] += float(value.detach())
        p.set_training_mode(False)
        stats = {k: v / max(gradient_steps, 1) for k, v in sums.items()}
        stats["n_updates"] = float(self._n_updates)
        stats.update(self.choice_stats())
        return stats

    def _kappa_candidates(
        self, features: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Kappa latents per state and their total chunks, as deployment draws them.

        Returns:
            ``(features, latents, chunks, residuals)``, each repeated or drawn ``kappa`` times
            per state: ``(B * kappa, ...)``.
        """
        p, cfg = self.policy, self.config
        h, a = p.chunk_shape
        f_k = features.repeat_interleave(cfg.kappa, dim=0)
        z_k = draw_latents((f_k.shape[0], h, a), generator, cfg.latent_temperature)
        chunks, residual = p.total_chunks(f_k, z_k)
        return f_k, z_k, chunks, residual

    @torch.no_grad()
    def choice_stats(self, n_states: int = 256) -> dict[str, float]:
        """How decided the critic's best-of-kappa choice is, on states from the replay.

        For ``n_states`` replay states and the config's kappa latents each: ``choice_q_spread``,
        the mean gap between the best and the worst candidate's min-Q, and
        ``choice_ensemble_std``, the mean spread of the critics over one candidate. A gap well
        below the critics' own spread means the choice among candidates is mostly noise.
        Draws from generators of its own, so the training stream is unchanged.
        """
        p, cfg = self.policy, self.config
        if not len(self.replay):
            return {}
        batch = self.replay.sample(n_states, np.random.default_rng(self._n_updates))
        gen = torch.Generator().manual_seed(self._n_updates)
        f, z, chunks, _ = self._kappa_candidates(batch.features, gen)
        q = p.critic(f, z, chunks)  # (N_Q, n * kappa)
        min_q = q.min(dim=0).values.view(n_states, cfg.kappa)
        return {
            "choice_q_spread": float((min_q.max(dim=1).values - min_q.min(dim=1).values).mean()),
            "choice_ensemble_std": float(q.std(dim=0).mean()),
        }

    @torch.no_grad()
    def critic_fit(self, episodes: Iterable[int]) -> dict[str, float]:
        """How well the critics predict the returns that followed each chunk of some episodes.

        For every frame of the replay episodes ``episodes`` (indices into
        ``replay.episodes``): the ensemble-min Q of the executed chunk (latent 0, as the critics
        are trained) against the return that followed it, ``alpha y^MC + (1 - alpha) G_t``
        (:meth:`ChunkReplayBuffer.episode_chunks`). Each round measures it on its own new
        rollouts before training on them, a held-out check in the spirit of SB3's
        ``explained_variance``: a critic that cannot rank unseen chunks by what followed them
        gives best-of-kappa and the actor nothing to go on.

        Returns:
            ``spearman`` (rank correlation), ``explained_variance`` (``1 - Var(y - Q) / Var(y)``)
            and ``frames``; empty if no updates were made yet or no frames are given.
        """
        from sarm2_gym.reward.metrics import spearman

        if not self._n_updates:
            return {}
        q_parts, y_parts = [], []
        for index in episodes:
            features, actions, realized = self.replay.episode_chunks(index, self.config.mc_weight)
            q = self.policy.critic.min_q(features, torch.zeros_like(actions), actions)
            q_parts.append(q.numpy())
            y_parts.append(realized)
        if not q_parts:
            return {}
        q_all, y_all = np.concatenate(q_parts), np.concatenate(y_parts)
        var = float(np.var(y_all))
        explained = 1.0 - float(np.var(y_all - q_all)) / var if var > 0 else float("nan")
        return {
            "spearman": spearman(q_all, y_all),
            "explained_variance": explained,
            "frames": float(q_all.size),
        }

    def _step(
        self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, module: torch.nn.Module
    ) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        optimizer.step()

    # ------------------------------------------------------------------ offline mode (stage 2b)
    def add_demonstrations(self, dataset: str | Path, max_episodes: int | None = None) -> int:
        """Label a LeRobot demonstration dataset with the reward model and add it to the replay.

        Returns:
            The number of episodes added.
        """
        from sarm2_gym.algos.spiral.offline import demonstration_episodes

        count = 0
        for item in demonstration_episodes(
            self.policy, dataset, max_episodes, self.labeler.needs_images
        ):
            self._add_labelled(item, "demo")
            count += 1
        return count

    def learn_offline(
        self, gradient_steps: int | None = None, tb_log_name: str = "SPIRAL"
    ) -> dict[str, float]:
        """Update on the replay alone (e.g. labelled demonstrations), then log and save."""
        if not len(self.replay):
            raise ValueError("the replay is empty: add_demonstrations() first")
        if not self._custom_logger and not hasattr(self, "_logger"):
            self._logger = configure_logger(self.verbose, self.tensorboard_log, tb_log_name, True)
        steps = self.config.gradient_steps if gradient_steps is None else gradient_steps
        stats = self.train(steps)
        self.offline_updates += steps
        for key, value in stats.items():
            self.logger.record(f"offline/{key}", value)
        self.logger.dump(step=self.num_timesteps)
        if self.checkpoint_dir is not None:
            self.save_checkpoint()
        return stats

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, exclude: Any = None, include: Any = None) -> None:  # type: ignore[override]
        """Save the whole run to directory ``path`` (see :mod:`.state`); never pickles."""
        persistence.save_run(self, Path(path))

    def save_checkpoint(self) -> Path:
        """Save into ``checkpoint_dir/round_XXXX`` atomically and point ``latest.json`` at it."""
        assert self.checkpoint_dir is not None
        from sarm2_gym.algos.common.io import write_snapshot

        return write_snapshot(
            self.checkpoint_dir,
            f"round_{self.round:04d}",
            lambda tmp: persistence.save_run(self, tmp),
        )

    @classmethod
    def load(  # type: ignore[override]
        cls,
        path: str | Path,
        env: GymEnv | None = None,
        device: str = "cpu",
        *,
        reward_model: RolloutLabeler,
        **kwargs: Any,
    ) -> SPIRAL:
        """Load a run saved by :meth:`save` or a ``checkpoint_dir`` (its newest round).

        Keyword args are those of the constructor (``reward_adapter``, ``annotator``,
        ``checkpoint_dir``, ``tensorboard_log``, ``verbose``) plus ``base_policy`` to supply the
        base policy instead of reading it from the saved run.
        """
        model = persistence.load_run(cls, Path(path), env, device, reward_model, **kwargs)
        if model.adapted and model.reward_adapter is None:
            warnings.warn(
                "this run adapted its reward model; without reward_adapter the given labeller "
                "is used",
                stacklevel=2,
            )
        return model
