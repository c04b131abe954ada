"""The ``ChunkPolicy`` protocol: what SPIRAL needs from a base vision-language-action policy.

A chunk policy maps an observation and a language instruction to an action chunk ``(H, A)``.
Its sampler is a deterministic function of explicit latent noise ``z`` (``(H, A)``, standard
normal), as pi0's flow-matching head is: SPIRAL's residual actor and critic take ``z`` as an input
(spec §2.2) and best-of-kappa deployment scores several latents for the same observation. The
policy also exposes a frozen per-observation feature vector, the input of the residual actor and
critic (spec §2.2 "Features"), and sampling from those features so that a replay buffer can store
features once instead of images.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

from sarm2_gym.envs.past_states import PAST_STATES_KEY, PastStates

__all__ = [
    "ChunkBatch",
    "ChunkPolicy",
    "Observation",
    "past_states_read_by",
    "privileged_state_read_by",
    "render_size_for",
    "wrap_env_for_policy",
]

DEFAULT_RENDER_SIZE = 96
"""Frame side an env renders at for a policy that records none (``sarm2 collect``'s default)."""

Observation = Mapping[str, np.ndarray | torch.Tensor]
"""Batched env observation: camera name -> uint8 ``(B, H, W, 3)``, ``"state"`` -> ``(B, 14)``."""


@dataclass(frozen=True)
class ChunkBatch:
    """A batch of behaviour-cloning samples.

    Attributes:
        inputs: Model inputs: camera name -> uint8 ``(B, H, W, 3)`` frames, or ``"image_features"``
            -> ``(B, n_cameras, D)`` cached frozen-encoder features; and ``"state"`` -> ``(B, S)``.
        task_ids: ``(B,)`` index of each sample's instruction in the policy's instruction list.
        actions: ``(B, H, A)`` demonstrated chunk, in env action units.
        action_pad: ``(B, H)`` True where the chunk runs past the episode end (excluded from
            the loss, like LeRobot's ``action_is_pad``).
        action_states: ``(B, H, S)`` the recorded state at each action's step, or ``None``.
            A pose-target policy learns ``state + action`` per step from them; without them it
            integrates the actions from the first state, which is the same only if the actions
            were executed as recorded (not with DART pushes).
    """

    inputs: Mapping[str, torch.Tensor]
    task_ids: torch.Tensor
    actions: torch.Tensor
    action_pad: torch.Tensor
    action_states: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b, h = self.actions.shape[:2]
        if self.action_pad.shape != (b, h):
            raise ValueError(f"action_pad must be {(b, h)}, got {tuple(self.action_pad.shape)}")
        if self.task_ids.shape != (b,):
            raise ValueError(f"task_ids must be ({b},), got {tuple(self.task_ids.shape)}")
        if self.action_states is not None and tuple(self.action_states.shape[:2]) != (b, h):
            raise ValueError(
                f"action_states must be ({b}, {h}, S), got {tuple(self.action_states.shape)}"
            )


@runtime_checkable
class ChunkPolicy(Protocol):
    """A base policy that samples action chunks from explicit latent noise.

    Attributes:
        chunk_size: Chunk length ``H`` (control steps).
        action_dim: Action width ``A``.
        feature_dim: Width ``F`` of :meth:`encode`'s features.
        instructions: The instructions the policy knows (embeddings stored in its checkpoint).
    """

    @property
    def chunk_size(self) -> int:
        """Chunk length H."""
        ...

    @property
    def action_dim(self) -> int:
        """Action width A."""
        ...

    @property
    def feature_dim(self) -> int:
        """Feature width F."""
        ...

    @property
    def instructions(self) -> tuple[str, ...]:
        """Known instructions."""
        ...

    def encode(self, observation: Observation, instruction: str | Sequence[str]) -> torch.Tensor:
        """Frozen features ``(B, F)`` of a batch of observations (no gradient)."""
        ...

    def sample_actions(self, features: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Chunks ``(B, H, A)`` in env action units from features and latent noise ``(B, H, A)``.

        Deterministic: the same features and noise give the same chunk. Equals
        ``env_actions(features, sample_normalized_actions(features, noise))``.
        """
        ...

    def sample_normalized_actions(
        self, features: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """The same chunks in the policy's own normalised action space (what its head generates).

        Residual policies (SPIRAL) edit chunks here, where every action dimension is in units of
        its spread in the training data, as the reference edits pi0's normalised actions.
        """
        ...

    def env_actions(self, features: torch.Tensor, normalized: torch.Tensor) -> torch.Tensor:
        """Env-unit chunks ``(B, H, A)`` for normalised chunks; differentiable in ``normalized``."""
        ...

    def sample_chunk(
        self, observation: Observation, instruction: str | Sequence[str], noise: torch.Tensor
    ) -> torch.Tensor:
        """``sample_actions(encode(observation, instruction), noise)``."""
        ...

    def bc_loss(self, batch: ChunkBatch, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Behaviour-cloning loss; with ``weights`` ``(B,)``: ``sum(w*l) / (sum(w) + eps)``."""
        ...

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` to ``directory``."""
        ...


# Attributes through which a controller, SPIRAL or a feature wrapper reaches the policy it runs.
_INNER_POLICY_ATTRS = ("base_policy", "base", "policy")


def _policy_parts(policy: Any) -> Iterator[Any]:
    """``policy``, its config, and the same of every policy it runs, each once."""
    seen: set[int] = set()
    todo = [policy]
    while todo:
        obj = todo.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        config = getattr(obj, "config", None)
        if config is not None:
            yield config
        todo.extend(getattr(obj, name, None) for name in _INNER_POLICY_ATTRS)


def past_states_read_by(policy: Any) -> tuple[int, int]:
    """``(n, stride)`` of the past states ``policy`` reads (``n = 0``: none).

    ``policy`` is a chunk policy, its config, or anything that runs one (a
    :class:`~sarm2_gym.algos.vla.controller.VLAController`, SPIRAL, its residual policy), found
    through ``base_policy``, ``base`` or ``policy`` attributes.
    """
    for part in _policy_parts(policy):
        n = getattr(part, "past_states", None)
        stride = getattr(part, "past_state_stride", None)
        if n is not None and stride is not None:
            return int(n), int(stride)
    return 0, 1


def privileged_state_read_by(policy: Any) -> bool:
    """Whether ``policy`` (found as in :func:`past_states_read_by`) reads the simulator's state.

    True for SPIRAL with ``critic_privileged_state`` (its config, or anything that runs it) and
    for a TinyVLA with ``privileged_state_dim`` (an oracle policy for diagnostics).
    """
    return any(
        getattr(part, "critic_privileged_state", False)
        or getattr(part, "privileged_state_dim", 0) > 0
        for part in _policy_parts(policy)
    )


def render_size_for(policy: Any, image_size: int | None = None) -> int:
    """The frame side an env made for ``policy`` should render at.

    ``policy`` is found as in :func:`past_states_read_by`. A TinyVLA records the side of the
    frames it was cloned from (``demo_frame_size``); rendering at another side and resizing to
    the encoder's input gives it frames that differ from those it learned from (other aliasing
    and edge widths), with no error to say so. ``image_size=None`` takes the recorded side
    (:data:`DEFAULT_RENDER_SIZE` where none is recorded); a given side that differs from the
    recorded one is used, with a warning.
    """
    recorded = next(
        (
            int(size)
            for part in _policy_parts(policy)
            if (size := getattr(part, "demo_frame_size", None)) is not None
        ),
        None,
    )
    if image_size is None:
        return DEFAULT_RENDER_SIZE if recorded is None else recorded
    if recorded is not None and image_size != recorded:
        warnings.warn(
            f"rendering at {image_size} px for a policy cloned from {recorded}-pixel frames: it "
            f"will see frames resized from another size than it learned from (render at "
            f"{recorded} unless that is what is measured)",
            stacklevel=2,
        )
    return image_size


def wrap_env_for_policy(env: gym.Env, policy: Any, *others: Any) -> gym.Env:
    """``env``, wrapped so that its observations hold what ``policy`` (and ``others``) read.

    A policy that reads past states (see :func:`past_states_read_by`) gets
    :class:`~sarm2_gym.envs.past_states.PastStates` (unless the env already gives them);
    anything else gets ``env`` back as it is. Works for any env with a ``Dict`` observation
    holding ``"state"``, not only the benchmark's (whose ``gym.make`` also takes
    ``past_states=``). A policy whose critics read the simulator's state (SPIRAL with
    ``critic_privileged_state``) or that reads it itself (a TinyVLA with ``privileged_state_dim``)
    also gets
    :class:`~sarm2_gym.envs.privileged_state.PrivilegedState`, which only the benchmark's
    simulated tasks can give. ``others`` are read the same way, for what is given in parts (a
    base policy and the SPIRAL config that will run it): the env gets what any of them reads.
    """
    from sarm2_gym.envs.privileged_state import PRIVILEGED_STATE_KEY, PrivilegedState

    def has(key: str) -> bool:
        space = env.observation_space
        return isinstance(space, gym.spaces.Dict) and key in space.spaces

    for part in (policy, *others):
        n, stride = past_states_read_by(part)
        if n and not has(PAST_STATES_KEY):
            env = PastStates(env, n, stride)
        if privileged_state_read_by(part) and not has(PRIVILEGED_STATE_KEY):
            env = PrivilegedState(env)
    return env
