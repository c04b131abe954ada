"""Streaming scorer: online SARM2 rewards for many envs, each frame encoded at most once, lazily.

For every env the scorer keeps the anchor frame (the episode's first) and a ring buffer of the
last ``n_obs_steps * frame_gap`` frames as **raw uint8 images**, plus their states. That is exactly
what the training layout needs at every step (:func:`~sarm2_gym.reward.labels.value_frame_indices`:
evenly spread history early in the episode, a fixed stride later), so online scores equal the
offline ``predict_episode`` on the same frames.

Encoding is lazy: :meth:`push` only stores the images; :meth:`score` encodes the frames its
layouts need that are not encoded yet (all envs' in one encoder call) and caches their features,
so a frame is still encoded at most once. Wrappers query every ``frame_gap`` steps (spec §1.8);
the strided layout then only touches every ``frame_gap``-th frame, which cuts encoder work about
``frame_gap``-fold compared with encoding every pushed frame.

Typical use in a vector-env reward wrapper::

    scorer = StreamingScorer(model, num_envs=8, task="folding shorts")
    scorer.push(first_obs_images, first_obs_state)          # after reset
    for each step:
        scorer.push(images, state)                          # (n_envs, H, W, 3) per camera
        result = scorer.score()                             # PredictionBatch, one row per env
        for i in done_envs: scorer.reset([i])               # then push the reset obs of env i

Example:
    >>> import numpy as np
    >>> from sarm2_gym.reward.config import SARM2Config
    >>> from sarm2_gym.reward.encoders.text import TextEmbeddings
    >>> cfg = SARM2Config(encoder="cnn", cnn_out_dim=8, d_model=16, n_heads=2, text_dim=4,
    ...                   instructions=("fold",), expert_hidden=(8,), gate_hidden=8)
    >>> model = SARM2RewardModel(cfg, TextEmbeddings.zeros(("fold",), 4))
    >>> scorer = StreamingScorer(model, num_envs=2, task="fold")
    >>> scorer.push({c: np.zeros((2, 96, 96, 3), np.uint8) for c in cfg.camera_names},
    ...             np.zeros((2, 14), np.float32))
    >>> len(scorer.score()), scorer.steps.tolist(), scorer.frames_encoded
    (2, [1, 1], 2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from sarm2_gym.reward.inference import inference_context
from sarm2_gym.reward.inputs import check_frames, check_state
from sarm2_gym.reward.labels import value_frame_indices
from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.reward.outputs import PredictionBatch

__all__ = ["StreamingScorer"]


class StreamingScorer:
    """Per-env raw-frame history, lazily encoded features, and batched scoring.

    Args:
        model: The reward model (used in eval mode, without gradients).
        num_envs: Number of parallel episodes.
        task: Instruction of every env, or one per env.
    """

    def __init__(self, model: SARM2RewardModel, num_envs: int, task: str | Sequence[str]) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.model = model
        self.num_envs = num_envs
        cfg = model.config
        self._ring = cfg.history_frames
        self._task_ids = np.zeros(num_envs, dtype=np.int64)
        self.set_task(task)
        n_cam, dim, device, size = (
            cfg.num_cameras,
            cfg.image_feature_dim,
            model.device,
            cfg.image_size,
        )
        # Raw frames stay on the host (uint8); only features live on the model's device.
        self._raw = np.zeros((num_envs, self._ring, n_cam, size, size, 3), dtype=np.uint8)
        self._anchor_raw = np.zeros((num_envs, n_cam, size, size, 3), dtype=np.uint8)
        self._feats = torch.zeros(num_envs, self._ring, n_cam, dim, device=device)
        self._anchor_feats = torch.zeros(num_envs, n_cam, dim, device=device)
        self._encoded = np.zeros((num_envs, self._ring), dtype=bool)
        self._anchor_encoded = np.zeros(num_envs, dtype=bool)
        self._state = torch.zeros(num_envs, self._ring, cfg.state_dim, device=device)
        self._anchor_state = torch.zeros(num_envs, cfg.state_dim, device=device)
        self._count = np.zeros(num_envs, dtype=np.int64)
        self.frames_encoded = 0
        """Frames encoded so far (one per camera image set), for cost accounting."""

    @property
    def steps(self) -> np.ndarray:
        """Frames pushed per env since its last reset."""
        return self._count.copy()

    def _envs(self, env_indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
        if env_indices is None:
            return np.arange(self.num_envs)
        idx = np.asarray(env_indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_envs):
            raise IndexError(f"env indices must be in [0, {self.num_envs}), got {idx.tolist()}")
        if len(np.unique(idx)) != idx.size:
            raise ValueError(f"env indices must be unique, got {idx.tolist()}")
        return idx

    def set_task(self, task: str | Sequence[str], env_indices: Sequence[int] | None = None) -> None:
        """Set the instruction of some (default: all) envs."""
        envs = self._envs(env_indices)
        tasks = [task] * len(envs) if isinstance(task, str) else list(task)
        if len(tasks) != len(envs):
            raise ValueError(f"{len(tasks)} tasks for {len(envs)} envs")
        self._task_ids[envs] = [self.model.task_id(t) for t in tasks]

    def reset(self, env_indices: Sequence[int] | None = None) -> None:
        """Forget the history of some (default: all) envs; their next push is a new anchor."""
        envs = self._envs(env_indices)
        self._count[envs] = 0
        self._encoded[envs] = False
        self._anchor_encoded[envs] = False

    def push(
        self,
        images: Mapping[str, np.ndarray],
        state: np.ndarray,
        env_indices: Sequence[int] | None = None,
    ) -> None:
        """Append one frame to each given env (default: all); nothing is encoded yet.

        Args:
            images: Camera -> uint8 ``(E, H, W, 3)``, one row per given env.
            state: ``(E, state_dim)``.
            env_indices: The E envs, in row order.
        """
        cfg = self.model.config
        envs = self._envs(env_indices)
        rows = check_frames(images, cfg.camera_names, cfg.image_size)
        if rows != len(envs):
            raise ValueError(f"got {rows} frames per camera for {len(envs)} envs")
        st = torch.from_numpy(check_state(state, rows, cfg.state_dim)).to(self.model.device)
        frames = np.stack([images[c] for c in cfg.camera_names], axis=1)  # (E, N, H, W, 3)
        slots = self._count[envs] % self._ring
        self._raw[envs, slots] = frames
        self._encoded[envs, slots] = False
        dev = self.model.device
        self._state[torch.from_numpy(envs).to(dev), torch.from_numpy(slots).to(dev)] = st
        first = self._count[envs] == 0
        if first.any():
            self._anchor_raw[envs[first]] = frames[first]
            self._anchor_state[torch.from_numpy(envs[first]).to(dev)] = st[
                torch.from_numpy(first).to(dev)
            ]
        self._count[envs] += 1

    def _layouts(self, envs: np.ndarray) -> np.ndarray:
        """``(E, T)`` frame indices of each env's current value window."""
        cfg = self.model.config
        return np.stack(
            [
                value_frame_indices(
                    int(self._count[e]) - 1, n_obs_steps=cfg.n_obs_steps, frame_gap=cfg.frame_gap
                )
                for e in envs
            ]
        )

    def _encode_missing(self, envs: np.ndarray, layouts: np.ndarray) -> None:
        """Encode, in one encoder call, every frame the layouts need that has no feature yet.

        Frame index 0 always reads the anchor (it may also appear among the evenly spread
        history frames early in an episode); every other index reads its ring slot, which still
        holds it because a layout spans at most ``n_obs_steps * frame_gap`` frames.
        """
        cfg = self.model.config
        anchors = [int(e) for e in envs if not self._anchor_encoded[e]]
        ring_pairs = sorted(
            {
                (int(e), int(j) % self._ring)
                for e, lay in zip(envs, layouts, strict=True)
                for j in lay
                if j > 0 and not self._encoded[e, int(j) % self._ring]
            }
        )
        if not anchors and not ring_pairs:
            return
        parts = [self._anchor_raw[anchors]] if anchors else []
        if ring_pairs:
            pe, ps = np.array(ring_pairs).T
            parts.append(self._raw[pe, ps])
        frames = np.concatenate(parts)  # (M, N, H, W, 3)
        m = frames.shape[0]
        # Camera-major stacking: one encoder call for all cameras and envs.
        stacked = frames.transpose(1, 0, 2, 3, 4).reshape(-1, *frames.shape[2:])
        with inference_context(self.model):
            feats = self.model.encode_images(stacked).view(cfg.num_cameras, m, -1)
        feats = feats.permute(1, 0, 2)  # (M, N, F)
        dev = self.model.device
        if anchors:
            self._anchor_feats[torch.tensor(anchors, device=dev)] = feats[: len(anchors)]
            self._anchor_encoded[anchors] = True
        if ring_pairs:
            rows = (torch.from_numpy(pe).to(dev), torch.from_numpy(ps).to(dev))
            self._feats[rows] = feats[len(anchors) :]
            self._encoded[pe, ps] = True
        self.frames_encoded += m

    def score(self, env_indices: Sequence[int] | None = None) -> PredictionBatch:
        """Score the latest frame of each given env (default: all) in one forward pass.

        Raises:
            RuntimeError: If an env has no frame since its reset.
        """
        envs = self._envs(env_indices)
        empty = envs[self._count[envs] == 0]
        if empty.size:
            raise RuntimeError(f"envs {empty.tolist()} have no frames; push() after reset()")
        layouts = self._layouts(envs)  # (E, T); every index but 0 is in the ring
        self._encode_missing(envs, layouts)
        device = self.model.device
        slots = torch.from_numpy(layouts % self._ring).to(device)
        env_t = torch.from_numpy(envs).to(device).unsqueeze(1)
        feats = self._feats[env_t, slots]  # (E, T, N, F)
        state = self._state[env_t, slots]  # (E, T, S)
        is_anchor = torch.from_numpy(layouts == 0).to(device)  # (E, T)
        anchor_f = self._anchor_feats[env_t[:, 0]].unsqueeze(1).expand_as(feats)
        anchor_s = self._anchor_state[env_t[:, 0]].unsqueeze(1).expand_as(state)
        feats = torch.where(is_anchor[..., None, None], anchor_f, feats)
        state = torch.where(is_anchor[..., None], anchor_s, state)
        task_ids = torch.from_numpy(self._task_ids[envs])
        return self.model.predict_features(feats.permute(0, 2, 1, 3), state, task_ids)
