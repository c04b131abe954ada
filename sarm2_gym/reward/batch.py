"""The reward model's tensor input and how to build it from per-frame episode arrays.

A sample is one query frame ``idx`` of one episode, laid out as the value model sees it
(spec §1.4): position 0 = the episode's first frame (anchor), positions ``1 .. n_obs_steps`` = the
stage window ``mid + [idx]`` (the current frame is position ``n_obs_steps``), then up to
``max_rewind`` rewind frames (training only), then padding to ``max_seq_len``.

A dataloader builds samples from cached per-frame features (or raw images for the trainable CNN)
with :func:`build_sample` and stacks them with :meth:`RewardBatch.collate`; inference
(:meth:`SARM2RewardModel.predict_episode`) builds its input with the same function, so training and
inference layouts are identical.

Example:
    >>> import numpy as np
    >>> from sarm2_gym.reward.config import SARM2Config
    >>> cfg = SARM2Config(camera_names=("top",), encoder="cnn", cnn_out_dim=4)
    >>> s = build_sample({"top": np.zeros((50, 4), np.float32)}, np.zeros((50, 14), np.float32),
    ...                  idx=40, config=cfg, task_id=0, rewind_steps=2)
    >>> s.indices.tolist(), s.length
    ([0, 15, 20, 25, 30, 35, 40, 35, 30, 0], 9)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import torch

from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.labels import apply_rewind, value_frame_indices

__all__ = ["IGNORE_INDEX", "RewardBatch", "Sample", "build_sample"]

IGNORE_INDEX: Final[int] = -100
"""Primitive target of padded positions (``torch.nn.functional.cross_entropy`` default)."""


@dataclass(frozen=True)
class Sample:
    """One query in the value-model layout, padded to ``max_seq_len`` (numpy)."""

    frames: dict[str, np.ndarray]
    state: np.ndarray
    length: int
    task_id: int
    indices: np.ndarray
    primitive_targets: np.ndarray | None
    steps_to_go: np.ndarray | None


def build_sample(
    frames: Mapping[str, np.ndarray],
    state: np.ndarray,
    idx: int,
    *,
    config: SARM2Config,
    task_id: int,
    steps_to_go: np.ndarray | None = None,
    act_pri: np.ndarray | None = None,
    rewind_steps: int = 0,
) -> Sample:
    """Gather one sample from per-frame episode arrays.

    Args:
        frames: Camera -> per-frame features ``(T_ep, F)`` or uint8 images ``(T_ep, H, W, 3)``.
        state: ``(T_ep, state_dim)`` raw state.
        idx: Query (current) frame.
        config: Model configuration (layout sizes).
        task_id: Index of the episode's instruction in ``config.instructions``.
        steps_to_go: ``(T_ep,)`` targets (:func:`~sarm2_gym.reward.labels.steps_to_go`).
        act_pri: ``(T_ep,)`` primitive index per frame.
        rewind_steps: Rewind frames to append (from
            :func:`~sarm2_gym.reward.labels.sample_rewind_steps`; 0 at inference).
    """
    indices = value_frame_indices(idx, n_obs_steps=config.n_obs_steps, frame_gap=config.frame_gap)
    if idx >= len(state):
        raise ValueError(f"frame {idx} outside an episode of {len(state)} frames")
    indices = apply_rewind(indices, rewind_steps)
    length = len(indices)
    padded = np.zeros(config.max_seq_len, dtype=np.int64)
    padded[:length] = indices

    def gather(arr: np.ndarray, fill: float | int = 0) -> np.ndarray:
        out = arr[padded].copy()
        out[length:] = fill
        return out

    return Sample(
        frames={c: gather(np.asarray(frames[c])) for c in config.camera_names},
        state=gather(np.asarray(state, dtype=np.float32)),
        length=length,
        task_id=task_id,
        indices=padded,
        primitive_targets=None if act_pri is None else gather(np.asarray(act_pri), IGNORE_INDEX),
        steps_to_go=None if steps_to_go is None else gather(np.asarray(steps_to_go, np.float32)),
    )


@dataclass
class RewardBatch:
    """Input of :meth:`SARM2RewardModel.forward` (B samples x T positions).

    Exactly one of ``features`` and ``images`` is set.

    Attributes:
        state: ``(B, T, state_dim)`` float32 raw state (the model normalises it).
        lengths: ``(B,)`` long, valid positions (``n_obs_steps + 1 + rewind``).
        task_ids: ``(B,)`` long, indices into the model's instructions.
        features: Camera -> ``(B, T, F)`` float frozen-encoder features.
        images: Camera -> ``(B, T, H, W, 3)`` uint8 frames (trainable CNN).
        primitive_targets: ``(B, T)`` long primitive per position, ``IGNORE_INDEX`` on padding.
        steps_to_go: ``(B, T)`` float targets.
    """

    state: torch.Tensor
    lengths: torch.Tensor
    task_ids: torch.Tensor
    features: dict[str, torch.Tensor] | None = None
    images: dict[str, torch.Tensor] | None = None
    primitive_targets: torch.Tensor | None = None
    steps_to_go: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.features is None) == (self.images is None):
            raise ValueError("set exactly one of features and images")

    @property
    def batch_size(self) -> int:
        """B."""
        return int(self.state.shape[0])

    @property
    def seq_len(self) -> int:
        """T."""
        return int(self.state.shape[1])

    def to(self, device: torch.device | str) -> RewardBatch:
        """Copy every tensor to ``device``."""
        moved: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                moved[f.name] = {k: v.to(device) for k, v in value.items()}
            elif isinstance(value, torch.Tensor):
                moved[f.name] = value.to(device)
            else:
                moved[f.name] = value
        return RewardBatch(**moved)  # type: ignore[arg-type]

    @classmethod
    def collate(cls, samples: Sequence[Sample]) -> RewardBatch:
        """Stack samples; uint8 4-D+ frame arrays become ``images``, others ``features``."""
        if not samples:
            raise ValueError("cannot collate an empty list of samples")
        cams = list(samples[0].frames)
        stacked = {c: torch.from_numpy(np.stack([s.frames[c] for s in samples])) for c in cams}
        is_images = next(iter(stacked.values())).dtype == torch.uint8
        if not is_images:
            stacked = {c: v.float() for c, v in stacked.items()}

        def optional(name: str) -> torch.Tensor | None:
            values = [getattr(s, name) for s in samples]
            if any(v is None for v in values):
                return None
            return torch.from_numpy(np.stack(values))

        return cls(
            state=torch.from_numpy(np.stack([s.state for s in samples])),
            lengths=torch.tensor([s.length for s in samples], dtype=torch.long),
            task_ids=torch.tensor([s.task_id for s in samples], dtype=torch.long),
            features=None if is_images else stacked,
            images=stacked if is_images else None,
            primitive_targets=optional("primitive_targets"),
            steps_to_go=optional("steps_to_go"),
        )
