"""SB3-style ``predict`` for a bare chunk policy (evaluating BC / RA-BC base policies)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from sarm2_gym.algos.common.chunking import ChunkState, chunked_predict
from sarm2_gym.algos.common.latents import check_temperature, draw_latents
from sarm2_gym.algos.vla.policy import ChunkPolicy

__all__ = ["VLAController"]


class VLAController:
    """Executes a :class:`~sarm2_gym.algos.vla.policy.ChunkPolicy` chunk by chunk.

    Latent noise is standard normal, drawn from the controller's own generator; with
    ``deterministic=True`` it is drawn from a generator re-seeded on every call, so the same
    observation always gives the same chunk.

    Args:
        policy: The base policy.
        instruction: Task instruction of every env.
        n_action_steps: Actions executed per chunk before replanning (default: the policy's
            ``n_action_steps`` attribute if it has one, else the whole chunk).
        seed: Seed of the stochastic latents.
        deterministic_seed: Seed of the deterministic latents.
        temperature: Scale of the latents, ``z = temperature * N(0, I)`` (below 1: chunks closer
            to the flow head's most typical one; 0: always the same latent, zero).

    Raises:
        ValueError: If ``n_action_steps`` is outside ``[1, chunk_size]`` or ``temperature`` is
            negative or not finite.
    """

    def __init__(
        self,
        policy: ChunkPolicy,
        instruction: str,
        n_action_steps: int | None = None,
        seed: int = 0,
        deterministic_seed: int = 0,
        temperature: float = 1.0,
    ) -> None:
        self.policy = policy
        self.instruction = instruction
        self.n_action_steps = (
            n_action_steps or getattr(policy, "n_action_steps", None) or policy.chunk_size
        )
        if not 1 <= self.n_action_steps <= policy.chunk_size:
            raise ValueError(
                f"n_action_steps must be in [1, {policy.chunk_size}], got {n_action_steps}"
            )
        self.generator = torch.Generator().manual_seed(seed)
        self.deterministic_seed = deterministic_seed
        self.temperature = check_temperature(temperature)

    def plan(self, observation: Mapping[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """Chunks ``(n, H, A)`` for a batched observation."""
        n = int(np.asarray(observation["state"]).shape[0])
        gen = (
            torch.Generator().manual_seed(self.deterministic_seed)
            if deterministic
            else self.generator
        )
        noise = draw_latents(
            (n, self.policy.chunk_size, self.policy.action_dim), gen, self.temperature
        )
        return self.policy.sample_chunk(observation, self.instruction, noise).cpu().numpy()

    def predict(
        self,
        observation: Mapping[str, np.ndarray],
        state: ChunkState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, ChunkState]:
        """One control step (SB3 signature; ``state`` carries the chunk queue)."""
        return chunked_predict(
            self, observation, state, episode_start, deterministic, self.n_action_steps
        )
