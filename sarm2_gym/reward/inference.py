"""Numpy inference for :class:`~sarm2_gym.reward.model.SARM2RewardModel`.

Every query frame is scored with the *training* layout
(:func:`~sarm2_gym.reward.labels.value_frame_indices`, anchor = the episode's first frame), and
only the frames some layout uses are encoded, each once. Everything runs in ``eval()`` under
``torch.inference_mode()``; the model's previous train/eval mode is restored afterwards. The
model's ``predict*`` methods are thin wrappers around these functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sarm2_gym.envs.core.primitives import PRIMITIVE_TO_GROUP
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.inputs import check_frames, check_state
from sarm2_gym.reward.labels import value_frame_indices
from sarm2_gym.reward.outputs import PredictionBatch

if TYPE_CHECKING:
    from sarm2_gym.reward.model import SARM2RewardModel

__all__ = [
    "concat_predictions",
    "encode_windows",
    "inference_context",
    "layout",
    "predict_batch",
    "predict_episode",
    "predict_features",
]

_CHUNK = 512  # query frames per forward pass in predict_episode


@contextmanager
def inference_context(model: SARM2RewardModel) -> Iterator[None]:
    """``eval()`` + ``torch.inference_mode()``, restoring the previous mode on exit.

    A model already in eval mode is left alone: ``eval()`` / ``train()`` walk every submodule,
    which cost about a third of a batch-8 value query on one CPU thread when done per query.
    """
    was_training = model.training
    if was_training:
        model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if was_training:
            model.train()


def layout(config: SARM2Config, idx: int) -> np.ndarray:
    """Value-model frame indices of query frame ``idx`` (episode start = frame 0)."""
    return value_frame_indices(idx, n_obs_steps=config.n_obs_steps, frame_gap=config.frame_gap)


def encode_windows(
    model: SARM2RewardModel,
    frames: Sequence[Mapping[str, np.ndarray]],
    layouts: Sequence[np.ndarray],
) -> torch.Tensor:
    """Features of the frames in ``layouts[i] (Q_i, T)`` of episode i, one encoder call per camera.

    Returns:
        ``(sum Q_i, N, T, F)``.
    """
    needed = [np.unique(lay) for lay in layouts]
    offsets = np.cumsum([0] + [len(u) for u in needed[:-1]])
    pos = np.concatenate(
        [o + np.searchsorted(u, lay) for o, u, lay in zip(offsets, needed, layouts, strict=True)]
    )  # (sum Q_i, T) rows into the encoded frames
    out = []
    with inference_context(model):
        for cam in model.config.camera_names:
            imgs = np.concatenate([f[cam][u] for f, u in zip(frames, needed, strict=True)])
            feats = model.encode_images(imgs)
            out.append(feats[torch.from_numpy(pos).to(feats.device)])  # (sum Q_i, T, F)
    return torch.stack(out, dim=1)


def predict_features(
    model: SARM2RewardModel, features: torch.Tensor, state: torch.Tensor, task_ids: torch.Tensor
) -> PredictionBatch:
    """Score the current frame of full-length value windows given as encoded features.

    Args:
        model: The reward model.
        features: ``(Q, N, n_obs_steps + 1, F)`` in the value layout (no rewind).
        state: ``(Q, n_obs_steps + 1, state_dim)`` raw state.
        task_ids: ``(Q,)`` instruction indices.
    """
    with inference_context(model):
        prim_logits, group_logits, steps_t = model.forward_current(features, state, task_ids)
        steps = steps_t.float().cpu().numpy()
        prim_probs = torch.softmax(prim_logits, dim=-1).float().cpu().numpy()
        group_probs = torch.softmax(group_logits, dim=-1).float().cpu().numpy()
    primitive = prim_probs.argmax(axis=-1)
    return PredictionBatch(
        progress=1.0 - steps,
        steps_to_go=steps,
        primitive=primitive,
        group=np.asarray(PRIMITIVE_TO_GROUP)[primitive],
        primitive_probs=prim_probs,
        group_probs=group_probs,
    )


def predict_episode(
    model: SARM2RewardModel,
    frames: Mapping[str, np.ndarray],
    state: np.ndarray,
    task: str,
    indices: Sequence[int] | np.ndarray | None = None,
) -> PredictionBatch:
    """Score frames of one episode; see :meth:`SARM2RewardModel.predict_episode`."""
    cfg = model.config
    length = check_frames(frames, cfg.camera_names, cfg.image_size)
    state = check_state(state, length, cfg.state_dim)
    tid = model.task_id(task)
    idx = np.arange(length) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= length:
        raise ValueError(f"indices must be a non-empty 1-D list within [0, {length})")
    parts = []
    for start in range(0, idx.size, _CHUNK):
        lay = np.stack([layout(cfg, int(i)) for i in idx[start : start + _CHUNK]])  # (Q, T)
        feats = encode_windows(model, [frames], [lay])
        tids = torch.full((len(lay),), tid, dtype=torch.long)
        parts.append(predict_features(model, feats, torch.from_numpy(state[lay]), tids))
    return concat_predictions(parts)


def predict_batch(
    model: SARM2RewardModel,
    frames: Sequence[Mapping[str, np.ndarray]],
    states: Sequence[np.ndarray],
    tasks: Sequence[str],
) -> PredictionBatch:
    """Score the last frame of several episodes; see :meth:`SARM2RewardModel.predict_batch`."""
    if not len(frames) == len(states) == len(tasks) or not frames:
        raise ValueError("frames, states and tasks must be non-empty and of equal length")
    cfg = model.config
    lengths = [check_frames(f, cfg.camera_names, cfg.image_size) for f in frames]
    checked = [check_state(s, n, cfg.state_dim) for s, n in zip(states, lengths, strict=True)]
    tids = torch.tensor([model.task_id(t) for t in tasks], dtype=torch.long)
    layouts = [layout(cfg, n - 1)[None] for n in lengths]  # (1, T) each
    feats = encode_windows(model, frames, layouts)
    st = np.concatenate([s[lay] for s, lay in zip(checked, layouts, strict=True)])
    return predict_features(model, feats, torch.from_numpy(st), tids)


def concat_predictions(parts: Sequence[PredictionBatch]) -> PredictionBatch:
    """Concatenate prediction batches along the query axis."""
    if len(parts) == 1:
        return parts[0]
    names = list(PredictionBatch.__dataclass_fields__)
    merged: dict[str, Any] = {k: np.concatenate([getattr(p, k) for p in parts]) for k in names}
    return PredictionBatch(**merged)
