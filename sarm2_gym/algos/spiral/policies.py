"""``ResidualChunkPolicy``: frozen base chunk policy + residual actor + critic ensemble.

Executed chunk (spec §2.2): ``a = pi_VLA(s, z) + s_theta(s, z)``, the residual added in the base
policy's normalised action space (:meth:`ChunkPolicy.env_actions` maps the sum to env units), as
the reference adds it to pi0's normalised actions: each action dimension can move only in units of
its spread in the demonstrations, and one they never moved hardly at all. Deployment is
best-of-kappa: draw ``kappa`` latents, form their total chunks, execute the one with the highest
ensemble-min Q. The base policy is held outside the module tree (never trained, never in this
policy's ``state_dict``; saved separately), and is always in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs

from sarm2_gym.algos.common.chunking import ChunkState, chunked_predict
from sarm2_gym.algos.common.latents import check_temperature, draw_latents
from sarm2_gym.algos.spiral.config import SPIRALConfig
from sarm2_gym.algos.spiral.features import (
    WithFrozenImageFeatures,
    WithPrivilegedState,
    frozen_image_encoder,
)
from sarm2_gym.algos.spiral.networks import CriticEnsemble, ResidualActor, best_of_kappa
from sarm2_gym.algos.vla.policy import ChunkPolicy
from sarm2_gym.envs.privileged_state import PRIVILEGED_STATE_KEY
from sarm2_gym.envs.spaces import image_entries

__all__ = ["ResidualChunkPolicy"]


class _Frozen:
    """Keeps the base policy out of ``nn.Module`` registration."""

    def __init__(self, policy: ChunkPolicy) -> None:
        self.policy = policy
        if isinstance(policy, torch.nn.Module):
            policy.eval()
            policy.requires_grad_(False)


class ResidualChunkPolicy(BasePolicy):
    """SPIRAL's policy: base + residual actor, critic ensemble and its Polyak target.

    Args:
        observation_space: Env observation space (``Dict`` of cameras + ``state``).
        action_space: Env action space (``Box(-1, 1, (A,))``).
        lr_schedule: SB3 schedule (unused: SPIRAL's learning rates are constants of the preset).
        base: The frozen base chunk policy.
        instruction: Task instruction given to the base policy.
        config: SPIRAL hyper-parameters.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any = None,
        *,
        base: ChunkPolicy,
        instruction: str,
        config: SPIRALConfig,
    ) -> None:
        super().__init__(observation_space, action_space)
        if not isinstance(action_space, spaces.Box) or action_space.shape != (base.action_dim,):
            raise ValueError(f"action space must be Box(({base.action_dim},)), got {action_space}")
        if instruction not in base.instructions:
            raise ValueError(
                f"the base policy has no embedding for {instruction!r}; "
                f"it knows {list(base.instructions)}"
            )
        self._base = _Frozen(base)
        # The env's camera images (not the state, nor e.g. past states): what frozen features
        # encode, rollouts record and offline demonstrations must hold.
        self.cameras = image_entries(observation_space)
        if config.frozen_image_features is not None:
            # On the base policy's device: the frames go there anyway to be encoded.
            encoder = frozen_image_encoder(
                config.frozen_image_features,
                config.frozen_image_size,
                getattr(base, "device", "cpu"),
            )
            base = self._base.policy = WithFrozenImageFeatures(base, self.cameras, encoder)
        # The actor reads the features up to here; privileged columns, if any, come last.
        self.actor_feature_dim = base.feature_dim
        self.privileged_state_dim = 0  # width of the "env_state" the critics read
        if config.critic_privileged_state:
            self.privileged_state_dim = _privileged_state_dim(observation_space)
            base = self._base.policy = WithPrivilegedState(base, self.privileged_state_dim)
        self.instruction = instruction
        self.config = config
        h, a, f = base.chunk_size, base.action_dim, base.feature_dim
        self.actor = ResidualActor(
            self.actor_feature_dim, h, a, config.actor_hidden, config.actor_output_scale
        )
        self.critic = CriticEnsemble(config.n_critics, f, h, a, config.critic_hidden)
        self.critic_target = CriticEnsemble(config.n_critics, f, h, a, config.critic_hidden)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.actor_optimizer = torch.optim.AdamW(
            self.actor.parameters(),
            lr=config.actor_lr,
            weight_decay=config.weight_decay,
            foreach=True,
        )
        self.critic_optimizer = torch.optim.AdamW(
            self.critic.parameters(),
            lr=config.critic_lr,
            weight_decay=config.weight_decay,
            foreach=True,
        )
        self.rng = torch.Generator().manual_seed(0)  # latents of stochastic deployment
        self.n_action_steps = config.n_action_steps or getattr(base, "n_action_steps", None) or h
        # Deployment ablations (set_deployment): not part of the config, never saved.
        self.deploy_kappa: int | None = None
        self.deploy_residual = True
        self.deploy_temperature: float | None = None

    @property
    def base(self) -> ChunkPolicy:
        """The frozen base policy."""
        return self._base.policy

    @property
    def chunk_shape(self) -> tuple[int, int]:
        """``(H, A)``."""
        return self.base.chunk_size, self.base.action_dim

    def set_training_mode(self, mode: bool) -> None:
        """Train/eval mode of the actor and critics (the base stays in eval mode)."""
        self.actor.train(mode)
        self.critic.train(mode)
        self.training = mode

    def set_deployment(
        self, kappa: int | None = None, residual: bool = True, temperature: float | None = None
    ) -> None:
        """Change how the policy acts, to take its parts apart (evaluation ablations).

        Rollouts collected afterwards act this way too; the updates (actor loss over the config's
        kappa latents, critic targets) do not change.

        Args:
            kappa: Latents drawn per chunk (``None``: the config's kappa). ``1`` executes one
                latent's chunk with no choice by the critic.
            residual: ``False`` executes the base policy's chunks without the residual (still
                chosen among ``kappa`` latents by the critic).
            temperature: Scale of the latents, ``z = temperature * N(0, I)`` (``None``: the
                config's ``latent_temperature``): below 1 the flow head samples closer to its
                most typical chunk (0: one latent, the same for all kappa candidates). The
                residual actor and the critic see the scaled latent, as the base policy does.

        Raises:
            ValueError: If ``kappa`` is below 1 or ``temperature`` is negative or not finite.
        """
        if kappa is not None and kappa < 1:
            raise ValueError(f"kappa must be at least 1, got {kappa}")
        self.deploy_kappa, self.deploy_residual = kappa, residual
        self.deploy_temperature = None if temperature is None else check_temperature(temperature)

    # ------------------------------------------------------------------ acting
    def encode(self, observation: Mapping[str, np.ndarray | torch.Tensor]) -> torch.Tensor:
        """Features ``(n, F)`` of a batched observation: the base policy's, then any appended."""
        return self.base.encode(observation, self.instruction)

    @torch.no_grad()
    def candidates(
        self, features: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Total chunks ``(n, k, H, A)`` for latents ``(n, k, H, A)`` and their min-Q ``(n, k)``."""
        n, k = noise.shape[:2]
        f = features.repeat_interleave(k, dim=0)
        z = noise.reshape(n * k, *noise.shape[2:])
        if self.deploy_residual:
            chunks, _ = self.total_chunks(f, z)
        else:
            chunks = self.base.env_actions(f, self.base.sample_normalized_actions(f, z))
        q = self.critic.min_q(f, z, chunks)
        return chunks.view(n, k, *chunks.shape[1:]), q.view(n, k)

    def total_chunks(
        self, features: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Executed chunks ``(B, H, A)`` in env units and the residual ``(B, H, A)``.

        Args:
            features: ``(B, F)`` base-policy features.
            noise: ``(B, H, A)`` latents.

        Gradients reach the actor through the residual; the base policy's chunks are sampled
        without gradient (it is frozen).
        """
        with torch.no_grad():
            base = self.base.sample_normalized_actions(features, noise)
        residual = self.actor(features[:, : self.actor_feature_dim], noise)
        return self.base.env_actions(features, base + residual), residual

    def plan_from_features(
        self, features: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Best-of-kappa chunks ``(n, H, A)`` for features ``(n, F)``."""
        kappa = self.config.kappa if self.deploy_kappa is None else self.deploy_kappa
        temperature = (
            self.config.latent_temperature
            if self.deploy_temperature is None
            else self.deploy_temperature
        )
        noise = draw_latents((features.shape[0], kappa, *self.chunk_shape), generator, temperature)
        chunks, q = self.candidates(features, noise)
        return best_of_kappa(q, chunks)[0]

    def plan(self, observation: Mapping[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """Best-of-kappa chunks for a batched observation (deterministic: fixed latent seed)."""
        gen = torch.Generator().manual_seed(self.config.deploy_seed) if deterministic else self.rng
        return self.plan_from_features(self.encode(observation), gen).cpu().numpy()

    def predict(  # type: ignore[override]
        self,
        observation: Mapping[str, np.ndarray],
        state: ChunkState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, ChunkState]:
        """SB3 ``predict``: the next action of each env's current chunk (queue in ``state``).

        Called with ``state=None`` on every step, the policy replans every step and executes
        the first action of each best-of-kappa chunk.
        """
        self.set_training_mode(False)
        return chunked_predict(
            self, observation, state, episode_start, deterministic, self.n_action_steps
        )

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        """First action of the best-of-kappa chunk (replans every call)."""
        assert isinstance(observation, dict)
        gen = torch.Generator().manual_seed(self.config.deploy_seed) if deterministic else self.rng
        return self.plan_from_features(self.encode(observation), gen)[:, 0]

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        """Same as :meth:`_predict`."""
        return self._predict(obs, deterministic)


def _privileged_state_dim(observation_space: spaces.Space) -> int:
    """Width of the observation's privileged state, for critics that read it."""
    entry = (
        observation_space.spaces.get(PRIVILEGED_STATE_KEY)
        if isinstance(observation_space, spaces.Dict)
        else None
    )
    if not isinstance(entry, spaces.Box) or len(entry.shape) != 1:
        raise ValueError(
            f"critic_privileged_state needs a 1-d {PRIVILEGED_STATE_KEY!r} Box in the observation "
            "space: wrap the env in sarm2_gym.envs.privileged_state.PrivilegedState (simulated "
            f"benchmark tasks only); got {observation_space}"
        )
    return int(entry.shape[0])
