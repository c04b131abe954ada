r"""TinyVLA: a CPU-sized vision-language-action policy with a pi0-style flow-matching chunk head.

Architecture (one observation -> one chunk of ``H`` actions)::

    cameras --(shared image encoder)--> 1 token each  \\
    state (normalised) [+ changes] ---> 1 token         >-- transformer trunk --> readout token r
    instruction (frozen MiniLM, stored) -> 1 token     /
    readout (learned query) ----------> 1 token        /
    features c = [LayerNorm(r), head cameras' features, normalised state changes,
                  normalised state]                                                 (B, F)
    chunk = unnormalise(Euler-integrate v(x, t | c) from x_1 = z to t = 0)          (B, H, A)

The instruction embedding is computed once per task with the frozen sentence encoder and stored
in the checkpoint (no text model at run time). Actions and state are normalised with dataset
mean/std stored as buffers; chunks come out in env units, clipped to the action box [-1, 1].
The features ``c`` are what SPIRAL's residual actor and critic read (spec §2.2 uses pooled frozen
image features + state the same way). With ``head_cameras`` the head also reads those cameras'
encoder features directly, not only through the trunk's read-out. With ``past_states`` the state
token also reads the state's change over each lag, ``(state - past) / std``, from the
observation's ``"past_states"``. With ``privileged_state_dim`` (an oracle, for diagnostics) it
also reads the simulator's object state, normalised, from the observation's ``"env_state"``; the
features ``c`` stay as above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sarm2_gym.algos.common.tensors import to_tensor
from sarm2_gym.algos.vla.config import TinyVLAConfig
from sarm2_gym.algos.vla.flow import FlowHead, sample_flow_times
from sarm2_gym.algos.vla.policy import ChunkBatch, Observation
from sarm2_gym.algos.vla.targets import (
    actions_from_targets,
    limits_from_tuple,
    targets_from_actions,
    targets_from_states,
)
from sarm2_gym.algos.vla.vision import SpatialSoftmaxCNN, resize_frames
from sarm2_gym.envs.past_states import PAST_STATES_KEY
from sarm2_gym.envs.privileged_state import PRIVILEGED_STATE_KEY

__all__ = ["TinyVLA"]

_EPS = 1e-6
# Constant action/state dims (e.g. unused rotations) must not blow up. State changes share the
# state's floor: a policy's jitter in a dim its demonstrations never moved must stay small.
_STD_FLOOR = 1e-2


class TinyVLA(nn.Module):
    """CPU-sized VLA implementing :class:`~sarm2_gym.algos.vla.policy.ChunkPolicy`.

    Args:
        config: Architecture.
        instruction_embeddings: ``(len(config.instructions), text_dim)`` frozen sentence
            embeddings; zeros when ``None`` (filled by loading a checkpoint).

    Example:
        >>> cfg = TinyVLAConfig(image_size=32, cnn_channels=(4, 8, 8), image_feature_dim=8,
        ...                     text_dim=4, d_model=16, n_heads=2, n_layers=1, ff_dim=16,
        ...                     flow_hidden=16, flow_layers=1, instructions=("wipe",))
        >>> vla = TinyVLA(cfg)
        >>> obs = {c: np.zeros((2, 32, 32, 3), np.uint8) for c in cfg.cameras}
        >>> obs["state"] = np.zeros((2, 14), np.float32)
        >>> vla.sample_chunk(obs, "wipe", torch.zeros(2, 10, 14)).shape
        torch.Size([2, 10, 14])
    """

    instruction_embeddings: torch.Tensor
    state_mean: torch.Tensor
    state_std: torch.Tensor
    action_mean: torch.Tensor
    action_std: torch.Tensor
    motion_std: torch.Tensor
    privileged_mean: torch.Tensor
    privileged_std: torch.Tensor

    def __init__(
        self, config: TinyVLAConfig, instruction_embeddings: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        n_tasks = len(config.instructions)
        emb = (
            np.zeros((n_tasks, config.text_dim), np.float32)
            if instruction_embeddings is None
            else instruction_embeddings
        )
        if emb.shape != (n_tasks, config.text_dim):
            raise ValueError(
                f"instruction_embeddings must be {(n_tasks, config.text_dim)}, got {emb.shape}"
            )
        self.register_buffer(
            "instruction_embeddings", torch.as_tensor(emb, dtype=torch.float32).clone()
        )
        if config.action_space == "target" and not config.control_limits:
            raise ValueError("a 'target' TinyVLA needs control_limits (the env's, flat)")
        self._limits = limits_from_tuple(config.control_limits) if config.control_limits else None
        for name, dim in (("state", config.state_dim), ("action", config.action_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        if config.past_states:  # only then, so checkpoints without past states load as before
            self.register_buffer("motion_std", torch.ones(config.past_states, config.state_dim))
        if config.privileged_state_dim:  # the same: only then
            self.register_buffer("privileged_mean", torch.zeros(config.privileged_state_dim))
            self.register_buffer("privileged_std", torch.ones(config.privileged_state_dim))
        self.cnn = (
            SpatialSoftmaxCNN(config.image_size, config.cnn_channels, config.image_feature_dim)
            if config.image_encoder == "cnn"
            else None
        )
        self._frozen_encoder: Any = (
            None  # EfficientNet lives outside the module tree (never trained)
        )
        self.camera_proj = nn.Linear(config.image_feature_dim, d)
        g2 = config.spatial_grid**2
        if g2:
            assert self.cnn is not None  # the config checks spatial_grid needs the CNN
            self.grid_proj = nn.Linear(self.cnn.map_channels, d)
            self.grid_embed = nn.Parameter(torch.randn(len(config.cameras), g2, d) * 0.02)
        self.state_proj = nn.Linear(
            config.state_dim + config.motion_dim + config.privileged_state_dim, d
        )
        self.text_proj = nn.Linear(config.text_dim, d)
        n_tokens = len(config.cameras) + 3
        self.token_embed = nn.Parameter(torch.randn(n_tokens, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d,
            config.n_heads,
            config.ff_dim,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.trunk = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.readout_norm = nn.LayerNorm(d)
        self._head_camera_index = [config.cameras.index(c) for c in config.head_cameras]
        self.head = FlowHead(
            config.chunk_size,
            config.action_dim,
            config.feature_dim,
            config.flow_hidden,
            config.flow_layers,
        )

    # ------------------------------------------------------------------ protocol attributes
    @property
    def chunk_size(self) -> int:
        """Chunk length H."""
        return self.config.chunk_size

    @property
    def action_dim(self) -> int:
        """Action width A."""
        return self.config.action_dim

    @property
    def n_action_steps(self) -> int:
        """Actions executed per chunk before replanning (the config's, else the whole chunk)."""
        return self.config.n_action_steps or self.config.chunk_size

    @property
    def feature_dim(self) -> int:
        """Feature width F = d_model + head camera features + past state changes + state_dim."""
        return self.config.feature_dim

    @property
    def instructions(self) -> tuple[str, ...]:
        """Instructions with stored embeddings."""
        return self.config.instructions

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self.token_embed.device

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def build(cls, config: TinyVLAConfig, text_encoder: Any = None) -> TinyVLA:
        """A fresh model with the instruction embeddings computed by a frozen sentence encoder.

        Args:
            config: Architecture (``config.instructions`` are embedded).
            text_encoder: Object with ``encode(list[str]) -> (N, D)``; defaults to the packaged
                MiniLM (:class:`~sarm2_gym.reward.encoders.text.SentenceTextEncoder`).
        """
        if text_encoder is None:
            from sarm2_gym.reward.encoders.text import SentenceTextEncoder

            text_encoder = SentenceTextEncoder()
        emb = np.asarray(text_encoder.encode(list(config.instructions)), dtype=np.float32)
        return cls(config, emb.reshape(len(config.instructions), -1))

    def set_normalization(
        self,
        state_mean: np.ndarray,
        state_std: np.ndarray,
        action_mean: np.ndarray,
        action_std: np.ndarray,
        motion_std: np.ndarray | None = None,
        privileged_mean: np.ndarray | None = None,
        privileged_std: np.ndarray | None = None,
    ) -> None:
        """Store dataset statistics (std floored at 1e-2 so constant dims stay finite).

        ``motion_std`` ``(past_states, S)``, the spread of the state's change over each lag
        (floored the same), is needed with ``past_states`` and refused without; the same holds
        for ``privileged_mean`` and ``privileged_std`` ``(privileged_state_dim,)``, the
        statistics of the privileged object state, with ``privileged_state_dim``.
        """
        values = [
            ("state_mean", state_mean),
            ("state_std", np.maximum(state_std, _STD_FLOOR)),
            ("action_mean", action_mean),
            ("action_std", np.maximum(action_std, _STD_FLOOR)),
        ]
        if (motion_std is None) != (not self.config.past_states):
            raise ValueError(
                f"motion_std is needed exactly when past_states > 0 "
                f"(past_states={self.config.past_states})"
            )
        if motion_std is not None:
            values.append(("motion_std", np.maximum(motion_std, _STD_FLOOR)))
        given = privileged_mean is not None and privileged_std is not None
        if given != bool(self.config.privileged_state_dim) or (
            (privileged_mean is None) != (privileged_std is None)
        ):
            raise ValueError(
                "privileged_mean and privileged_std are needed exactly when "
                f"privileged_state_dim > 0 (privileged_state_dim="
                f"{self.config.privileged_state_dim})"
            )
        if privileged_mean is not None and privileged_std is not None:
            values.append(("privileged_mean", privileged_mean))
            values.append(("privileged_std", np.maximum(privileged_std, _STD_FLOOR)))
        for name, value in values:
            buf: torch.Tensor = getattr(self, name)
            buf.copy_(torch.as_tensor(np.asarray(value, dtype=np.float32)))

    def fit_normalization(
        self,
        state: np.ndarray,
        actions: np.ndarray,
        past_states: np.ndarray | None = None,
        privileged_state: np.ndarray | None = None,
    ) -> None:
        """Normalisation from demonstrations: state ``(N, S)`` and delta actions ``(N, A)``.

        The action statistics are those of what the flow head generates: the actions themselves,
        or (``"target"``) the pose each action commands from its state. With ``past_states``
        the policy also needs each frame's past states ``(N, past_states, S)``, with
        ``privileged_state_dim`` each frame's privileged object state ``(N, D)``.
        """
        labels = np.asarray(actions, dtype=np.float32)
        if self.config.action_space == "target":
            labels = self.labels(
                torch.as_tensor(state, dtype=torch.float32), torch.as_tensor(labels)[:, None]
            )[:, 0].numpy()
        motion_std = None
        if past_states is not None:
            motion_std = (np.asarray(state)[:, None] - np.asarray(past_states)).std(0)
        privileged = None if privileged_state is None else np.asarray(privileged_state)
        self.set_normalization(
            state.mean(0),
            state.std(0),
            labels.mean(0),
            labels.std(0),
            motion_std,
            None if privileged is None else privileged.mean(0),
            None if privileged is None else privileged.std(0),
        )

    def labels(
        self,
        state: torch.Tensor,
        actions: torch.Tensor,
        action_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Flow-head labels of delta-action chunks ``(B, H, A)`` taken from states ``(B, S)``.

        ``action_states`` ``(B, H, S)``, the recorded state at each step, make pose targets
        exact where the executed actions differed from the recorded ones (DART pushes).
        """
        if self._limits is None:
            return actions
        if action_states is not None:
            return targets_from_states(action_states.to(actions), actions, self._limits)
        return targets_from_actions(state.to(actions.dtype), actions, self._limits)

    def task_ids(self, instruction: str | Sequence[str], n: int) -> torch.Tensor:
        """Indices ``(n,)`` of instructions (one string for all, or one per sample).

        Raises:
            ValueError: For an instruction the checkpoint has no embedding for.
        """
        texts = [instruction] * n if isinstance(instruction, str) else list(instruction)
        if len(texts) != n:
            raise ValueError(f"got {len(texts)} instructions for {n} observations")
        known = {t: i for i, t in enumerate(self.config.instructions)}
        missing = sorted({t for t in texts if t not in known})
        if missing:
            raise ValueError(f"unknown instructions {missing}; the policy knows {list(known)}")
        return torch.tensor([known[t] for t in texts], dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ features
    def frozen_encoder(self) -> Any:
        """The frozen EfficientNet-Lite0 (``image_encoder="efficientnet_lite0"`` only)."""
        if self.config.image_encoder != "efficientnet_lite0":
            raise ValueError("this TinyVLA trains its own CNN; it has no frozen image encoder")
        if self._frozen_encoder is None:
            from sarm2_gym.reward.encoders.efficientnet import EfficientNetLite0Encoder

            self._frozen_encoder = EfficientNetLite0Encoder(
                self.config.image_size, device=self.device
            )
        return self._frozen_encoder

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Frozen-encoder features ``(N, 1280)`` of uint8 frames ``(N, H, W, 3)`` (cacheable)."""
        feats: torch.Tensor = self.frozen_encoder().encode(frames.to(self.device))
        return feats.float()

    def _image_tokens(
        self,
        inputs: Mapping[str, torch.Tensor],
        shift: int,
        generator: torch.Generator | None,
        with_grid: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Camera features ``(B, n_cameras, D)`` and grid tokens (or ``None``).

        Features are cached or computed from the frames; with a spatial grid the grid tokens are
        ``(B, n_cameras * grid**2, d_model)``, unless ``with_grid=False`` (``None`` then: not
        computed).
        """
        if "image_features" in inputs:
            return inputs["image_features"].to(self.device, torch.float32), None
        cams = self.config.cameras
        frames = torch.cat([inputs[c] for c in cams]).to(self.device)  # (n_cam*B, H, W, 3)
        cells = None
        if self.cnn is not None:
            feats, cells = self.cnn.encode(
                resize_frames(frames, self.config.image_size),
                shift,
                generator,
                self.config.spatial_grid if with_grid else 0,
            )
        else:
            feats = self.frame_features(frames)
        per_cam = feats.view(len(cams), -1, feats.shape[-1]).transpose(0, 1)
        if cells is None:
            return per_cam, None
        g2 = cells.shape[1]
        grid = self.grid_proj(cells).view(len(cams), -1, g2, self.config.d_model).transpose(0, 1)
        grid = grid + self.grid_embed[None]  # (B, n_cam, g2, d)
        return per_cam, grid.flatten(1, 2)

    def features_from_inputs(
        self,
        inputs: Mapping[str, torch.Tensor],
        task_ids: torch.Tensor,
        shift: int = 0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Features ``(B, F)`` with gradient (training path)."""
        raw_state = inputs["state"].to(self.device, torch.float32)
        state = (raw_state - self.state_mean) / self.state_std
        motion = self._motion(raw_state, inputs)
        cam_feats, grid = self._image_tokens(inputs, shift, generator)
        cams = self.camera_proj(cam_feats)  # (B, n_cam, d)
        b = state.shape[0]
        tokens = (
            torch.cat(
                [
                    cams,
                    self.state_proj(
                        torch.cat([state, motion, self._privileged(inputs, b)], dim=-1)
                    )[:, None],
                    self.text_proj(self.instruction_embeddings[task_ids])[:, None],
                    torch.zeros(b, 1, self.config.d_model, device=self.device),
                ],
                dim=1,
            )
            + self.token_embed[None]
        )
        if grid is not None:  # grid tokens first: the readout stays the last token
            tokens = torch.cat([grid, tokens], dim=1)
        readout = self.readout_norm(self.trunk(tokens)[:, -1])
        head_cams = cam_feats[:, self._head_camera_index].flatten(1)  # (B, head_camera_dim)
        # The state stays last: target-mode actions read it back from the features.
        return torch.cat([readout, head_cams, motion, state], dim=-1)

    def _motion(self, state: torch.Tensor, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Normalised state changes ``(B, past_states * S)`` (``(B, 0)`` without past states)."""
        n = self.config.past_states
        if not n:
            return state.new_zeros(state.shape[0], 0)
        past = inputs[PAST_STATES_KEY].to(self.device, torch.float32)
        expected = (state.shape[0], n, self.config.state_dim)
        if tuple(past.shape) != expected:
            raise ValueError(f"{PAST_STATES_KEY!r} must be {expected}, got {tuple(past.shape)}")
        return ((state[:, None] - past) / self.motion_std).flatten(1)

    def _privileged(self, inputs: Mapping[str, torch.Tensor], batch: int) -> torch.Tensor:
        """Normalised privileged object state ``(B, D)`` (``(B, 0)`` without it)."""
        d = self.config.privileged_state_dim
        if not d:
            return torch.zeros(batch, 0, device=self.device)
        value = inputs[PRIVILEGED_STATE_KEY].to(self.device, torch.float32)
        if tuple(value.shape) != (batch, d):
            raise ValueError(
                f"{PRIVILEGED_STATE_KEY!r} must be {(batch, d)}, got {tuple(value.shape)} (was "
                "the policy trained on another task's privileged state?)"
            )
        if not torch.isfinite(value).all():
            raise ValueError(f"{PRIVILEGED_STATE_KEY!r} holds NaN or inf")
        return (value - self.privileged_mean) / self.privileged_std

    def _to_inputs(self, observation: Observation) -> dict[str, torch.Tensor]:
        keys = (*self.config.cameras, "state")
        if self.config.past_states:
            if PAST_STATES_KEY not in observation:
                raise ValueError(
                    f"this policy reads {self.config.past_states} past states: the observation "
                    f"needs {PAST_STATES_KEY!r}: wrap the env with wrap_env_for_policy(env, "
                    f"policy) (or PastStates(env, {self.config.past_states}, "
                    f"{self.config.past_state_stride})); it has {sorted(observation)}"
                )
            keys = (*keys, PAST_STATES_KEY)
        if self.config.privileged_state_dim:
            if PRIVILEGED_STATE_KEY not in observation:
                raise ValueError(
                    f"this policy reads the simulator's privileged state (an oracle): the "
                    f"observation needs {PRIVILEGED_STATE_KEY!r}: wrap the env with "
                    f"wrap_env_for_policy(env, policy) (or PrivilegedState(env)); it has "
                    f"{sorted(observation)}"
                )
            keys = (*keys, PRIVILEGED_STATE_KEY)
        missing = [k for k in keys if k not in observation]
        if missing:
            raise ValueError(f"observation lacks {missing}; it has {sorted(observation)}")
        return {k: to_tensor(observation[k]) for k in keys}

    @torch.no_grad()
    def encode(self, observation: Observation, instruction: str | Sequence[str]) -> torch.Tensor:
        """Frozen features ``(B, F)`` of a batched observation dict (eval mode, no gradient)."""
        was_training = self.training
        self.eval()
        try:
            inputs = self._to_inputs(observation)
            return self.features_from_inputs(
                inputs, self.task_ids(instruction, inputs["state"].shape[0])
            )
        finally:
            self.train(was_training)

    @torch.no_grad()
    def camera_features(self, observation: Observation) -> torch.Tensor:
        """Each camera's image features ``(B, n_cameras, D)`` of a batched observation dict.

        What the trunk reads of each camera before it mixes them (the CNN's spatial-softmax
        output, or the frozen encoder's features), unshifted, in eval mode: for probing what a
        policy sees, e.g. how well a linear read-out of one camera locates an object.
        """
        was_training = self.training
        self.eval()
        try:
            feats, _ = self._image_tokens(self._to_inputs(observation), 0, None, False)
            return feats
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ actions
    def normalize_actions(self, labels: torch.Tensor) -> torch.Tensor:
        """Flow-head labels (see :meth:`labels`) -> model units."""
        return (labels.to(self.device) - self.action_mean) / self.action_std

    def sample_actions(self, features: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Chunks ``(B, H, A)`` in env units (clipped to [-1, 1]); deterministic given ``noise``."""
        return self.env_actions(features, self.sample_normalized_actions(features, noise))

    def sample_normalized_actions(
        self, features: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """What the flow head generates: ``(B, H, A)`` in model units, deterministic in ``noise``.

        Model units are normalised delta actions, or normalised pose targets with
        ``action_space="target"``.
        """
        expected = (features.shape[0], self.config.chunk_size, self.config.action_dim)
        if tuple(noise.shape) != expected:
            raise ValueError(f"noise must be {expected}, got {tuple(noise.shape)}")
        return self.head.sample(
            features.to(self.device), noise.to(self.device), self.config.flow_steps
        )

    def env_actions(self, features: torch.Tensor, normalized: torch.Tensor) -> torch.Tensor:
        """Env-unit chunks ``(B, H, A)`` in [-1, 1] for model-unit chunks (differentiable in them).

        Args:
            features: ``(B, F)`` features the chunks were sampled from (target mode reads the
                state they end with).
            normalized: ``(B, H, A)`` chunks in model units (:meth:`sample_normalized_actions`,
                possibly edited, e.g. by SPIRAL's residual).
        """
        out = normalized.to(self.device) * self.action_std + self.action_mean
        if self._limits is None:
            return out.clamp(-1.0, 1.0)
        # The features end with the normalised state: the targets become deltas from it.
        features = features.to(self.device)
        state = features[:, -self.config.state_dim :] * self.state_std + self.state_mean
        return actions_from_targets(state, out, self._limits)

    @torch.no_grad()
    def sample_chunk(
        self, observation: Observation, instruction: str | Sequence[str], noise: torch.Tensor
    ) -> torch.Tensor:
        """Chunks ``(B, H, A)`` for a batched observation and latent noise ``(B, H, A)``."""
        return self.sample_actions(self.encode(observation, instruction), noise)

    def chunk_targets(self, batch: ChunkBatch) -> torch.Tensor:
        """The batch's demonstrated chunks ``(B, H, A)`` in model units (what the head learns)."""
        return self.normalize_actions(
            self.labels(
                batch.inputs["state"].to(self.device, torch.float32),
                batch.actions.to(self.device),
                None if batch.action_states is None else batch.action_states.to(self.device),
            )
        )

    def bc_loss(
        self,
        batch: ChunkBatch,
        weights: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        shift: int = 0,
        flow_samples: int = 1,
        weight_total: float | None = None,
        mask_padding: bool = True,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Flow-matching behaviour-cloning loss (padded steps excluded unless told otherwise).

        With ``weights`` (RA-BC, spec §3.6) the per-sample losses ``l_i`` are combined as
        ``sum(w_i l_i) / (sum(w_i) + 1e-6)``; otherwise they are averaged.

        Args:
            batch: Samples.
            weights: ``(B,)`` non-negative sample weights, or ``None``.
            generator: RNG of the flow noise, times and image shifts.
            shift: Random-shift augmentation in pixels.
            flow_samples: (noise, time) pairs drawn per sample; a sample's loss is their mean.
                The velocity regression is a noisy target, and the flow head is cheap next to
                the image encoder, so several pairs per encoded observation buy a lower-variance
                gradient for little compute.
            weight_total: Denominator of the weighted mean instead of ``sum(w_i)`` (data
                parallel: the weight sum of the *global* batch, of which ``batch`` is a shard).
            mask_padding: Leave the chunk steps past an episode's end out of the loss (as
                LeRobot's ACT and pi0 do). ``False`` trains them towards what the batch holds
                there, the episode's final action repeated (LeRobot's diffusion policy default).
            features: The batch's features ``(B, F)`` (:meth:`features_from_inputs`, unshifted)
                when the caller has them already, so the frames are not encoded twice.

        Raises:
            ValueError: If ``flow_samples`` is below 1, or ``features`` come with a shift or
                do not match the batch.
        """
        if flow_samples < 1:
            raise ValueError(f"flow_samples must be >= 1, got {flow_samples}")
        if features is None:
            feats = self.features_from_inputs(
                batch.inputs, batch.task_ids.to(self.device), shift, generator
            )
        elif shift:
            raise ValueError("features are unshifted: give features or shift, not both")
        elif features.shape != (batch.task_ids.shape[0], self.feature_dim):
            raise ValueError(
                f"features {tuple(features.shape)} do not match the batch: want "
                f"({batch.task_ids.shape[0]}, {self.feature_dim})"
            )
        else:
            feats = features
        target = self.chunk_targets(batch)
        b = target.shape[0]
        pad = batch.action_pad.to(self.device)
        if flow_samples > 1:
            feats = feats.repeat_interleave(flow_samples, dim=0)
            target = target.repeat_interleave(flow_samples, dim=0)
            pad = pad.repeat_interleave(flow_samples, dim=0)
        noise = torch.randn(target.shape, generator=generator).to(self.device)
        t = sample_flow_times(target.shape[0], self.config.flow_time_alpha, generator)
        err = self.head.loss(target, feats, noise, t.to(self.device))  # (B*k, H, A)
        valid = (~pad if mask_padding else torch.ones_like(pad)).to(err.dtype)[..., None]
        per_sample = (err * valid).sum(dim=(1, 2)) / (
            valid.sum(dim=(1, 2)) * err.shape[-1]
        ).clamp_min(1.0)
        per_sample = per_sample.view(b, flow_samples).mean(dim=1)
        if weights is None:
            return per_sample.mean()
        w = weights.to(self.device, per_sample.dtype)
        total = w.sum() if weight_total is None else weight_total
        return (w * per_sample).sum() / (total + _EPS)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (atomic; see :mod:`.checkpoint`)."""
        from sarm2_gym.algos.vla.checkpoint import save_vla

        return save_vla(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> TinyVLA:
        """Load a checkpoint written by :meth:`save_pretrained` (strict; never unpickles)."""
        from sarm2_gym.algos.vla.checkpoint import load_vla

        return load_vla(directory, device=device)
