"""Demonstrations in memory for behaviour cloning: every frame starts one action-chunk sample.

Episodes of one or more LeRobot datasets are read once. Camera frames are resized to the
policy's input size on load (through the same :func:`~sarm2_gym.algos.vla.vision.resize_frames`
the policy applies online) or, with a frozen encoder, replaced by cached per-frame features.
A sample at frame ``t`` of an episode ending at ``e`` holds the actions ``t .. t+H-1``; steps past
``e - 1`` repeat the last action and are flagged as padding (LeRobot's ``action_is_pad``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarm2_gym.algos.vla.policy import ChunkBatch
from sarm2_gym.algos.vla.vision import resize_frames
from sarm2_gym.data.episode import (
    ACTION_KEY,
    STATE_KEY,
    Episode,
    has_privileged_progress,
    image_key,
    recorded_env_state,
)
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.envs.past_states import PAST_STATES_KEY, past_state_indices
from sarm2_gym.envs.privileged_state import PRIVILEGED_STATE_KEY

__all__ = ["DemoData", "load_demos"]


@dataclass
class DemoData:
    """Frames of many episodes, concatenated.

    Attributes:
        inputs: Camera name -> uint8 ``(N, S, S, 3)``, or ``"image_features"`` -> float32
            ``(N, n_cameras, D)``.
        state: ``(N, S)`` robot state.
        actions: ``(N, A)`` actions.
        task_ids: ``(N,)`` index into :attr:`instructions`.
        episode_index: ``(N,)`` running episode number.
        episode_end: ``(N,)`` exclusive end (global frame index) of each frame's episode.
        progress: ``(N,)`` privileged progress (``nan`` where the data has none, e.g. a real
            robot's recording).
        instructions: Task instructions.
        episodes: Per episode ``(dataset root, episode index, start, length, success)``.
        env_ids: The envs the episodes were recorded in, in order of first appearance.
        privileged_state: ``(N, D)`` the simulator's privileged object state, where it was
            loaded (``load_demos(privileged_state_dim=D)``), else ``None``.
        frame_size: Side of the square frames the loaded cameras were recorded at, as the
            datasets declare them (before any resize); ``None`` where they are not square or not
            all one size.
    """

    inputs: dict[str, np.ndarray]
    state: np.ndarray
    actions: np.ndarray
    task_ids: np.ndarray
    episode_index: np.ndarray
    episode_end: np.ndarray
    progress: np.ndarray
    instructions: tuple[str, ...]
    episodes: list[tuple[str, int, int, int, bool]] = field(default_factory=list)
    env_ids: tuple[str, ...] = ()
    privileged_state: np.ndarray | None = None
    frame_size: int | None = None

    @property
    def num_frames(self) -> int:
        """Frames (= samples)."""
        return int(self.state.shape[0])

    def episode_slices(self) -> list[slice]:
        """Global frame range of every episode."""
        return [slice(start, start + length) for _, _, start, length, _ in self.episodes]

    def chunk_indices(self, index: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices ``(B, H)`` of each sample's actions and the padding mask ``(B, H)``."""
        raw = index[:, None] + np.arange(chunk_size)[None]
        last = self.episode_end[index][:, None] - 1
        return np.minimum(raw, last), raw > last

    def past_states(self, index: np.ndarray, n: int, stride: int = 1) -> np.ndarray:
        """States ``(B, n, S)`` ``n * stride, ..., stride`` frames before ``index``, oldest first.

        Frames before an episode's start repeat its first state, as
        :class:`~sarm2_gym.envs.past_states.PastStates` gives them at run time.
        """
        first = self._episode_starts[self.episode_index[index]]
        return self.state[past_state_indices(index, first, n, stride)]

    @cached_property
    def _episode_starts(self) -> np.ndarray:
        """First global frame of every episode (read for every batch with past states)."""
        return np.asarray([start for _, _, start, _, _ in self.episodes], np.int64)

    def batch(
        self, index: np.ndarray, chunk_size: int, past_states: int = 0, past_state_stride: int = 1
    ) -> ChunkBatch:
        """The samples starting at global frames ``index``.

        With ``past_states`` ``n >= 1`` the inputs also hold ``"past_states"`` (see
        :meth:`past_states`); with :attr:`privileged_state` loaded, ``"env_state"``.
        """
        act_idx, pad = self.chunk_indices(index, chunk_size)
        inputs = {k: torch.from_numpy(v[index]) for k, v in self.inputs.items()}
        inputs["state"] = torch.from_numpy(self.state[index])
        if past_states:
            inputs[PAST_STATES_KEY] = torch.from_numpy(
                self.past_states(index, past_states, past_state_stride)
            )
        if self.privileged_state is not None:
            inputs[PRIVILEGED_STATE_KEY] = torch.from_numpy(self.privileged_state[index])
        return ChunkBatch(
            inputs=inputs,
            task_ids=torch.from_numpy(self.task_ids[index]),
            actions=torch.from_numpy(self.actions[act_idx]),
            action_pad=torch.from_numpy(pad),
            action_states=torch.from_numpy(self.state[act_idx]),
        )


def _episode_inputs(
    ep: Episode, cameras: Sequence[str], image_size: int, feature_fn: Any, root: str, index: int
) -> dict[str, np.ndarray]:
    missing = [c for c in cameras if image_key(c) not in ep.frames]
    if missing:
        raise ValueError(f"episode {index} of {root} lacks cameras {missing}")
    if feature_fn is None:
        return {
            c: resize_frames(torch.from_numpy(ep.frames[image_key(c)]), image_size).numpy()
            for c in cameras
        }
    return {"image_features": np.asarray(feature_fn(root, index, ep), dtype=np.float32)}


def load_demos(
    roots: Sequence[str | Path],
    *,
    cameras: Sequence[str],
    image_size: int,
    max_episodes: int | Sequence[int | None] | None = None,
    episode_ranges: Sequence[range | None] | None = None,
    feature_fn: Any = None,
    instructions: Sequence[str] = (),
    privileged_state_dim: int = 0,
) -> DemoData:
    """Read the episodes of one or more datasets into memory.

    Args:
        roots: LeRobot dataset directories.
        cameras: Cameras to load, in policy order.
        image_size: Frames are resized to this side.
        max_episodes: Use at most this many episodes per dataset (the first ones), e.g. to limit
            the demonstrations a base policy learns from; a sequence gives one limit per root
            (``None``: all of that one).
        episode_ranges: Instead of ``max_episodes``, the episode indices to use, one range per
            root (``None``: all of that one), e.g. the last few episodes of each dataset as
            held-out demonstrations.
        feature_fn: ``(root, episode index, episode) -> (T, n_cameras, D)`` frozen features;
            frames are not kept then.
        instructions: Instructions to index first (e.g. an existing policy's), others follow.
        privileged_state_dim: Also load the simulator's privileged object state, this wide (an
            oracle policy's input; 0: not loaded).

    Raises:
        ValueError: If there are no episodes, a camera is missing, ``max_episodes`` or
            ``episode_ranges`` gives a count other than the number of roots, both are given, a
            range names an episode the dataset lacks, or an episode's privileged state is
            missing or of another width.
    """
    if episode_ranges is not None:
        if max_episodes is not None:
            raise ValueError("give max_episodes or episode_ranges, not both")
        if len(episode_ranges) != len(roots):
            raise ValueError(
                f"episode_ranges gives {len(episode_ranges)} ranges for {len(roots)} datasets"
            )
    if max_episodes is None or isinstance(max_episodes, int):
        limits: list[int | None] = [max_episodes] * len(roots)
    else:
        limits = list(max_episodes)
        if len(limits) != len(roots):
            raise ValueError(f"max_episodes gives {len(limits)} limits for {len(roots)} datasets")
    names: list[str] = list(instructions)
    env_ids: list[str] = []
    parts: list[dict[str, np.ndarray]] = []
    episodes: list[tuple[str, int, int, int, bool]] = []
    frame_shapes: set[tuple[int, ...]] = set()
    start = 0
    for r, (root, limit) in enumerate(zip(roots, limits, strict=True)):
        ds = LeRobotDataset(root)
        count = ds.num_episodes if limit is None else min(limit, ds.num_episodes)
        chosen = range(count) if episode_ranges is None else episode_ranges[r]
        if chosen is None:
            chosen = range(ds.num_episodes)
        if len(chosen) and (min(chosen) < 0 or max(chosen) >= ds.num_episodes):
            raise ValueError(f"{root} holds episodes 0..{ds.num_episodes - 1}; asked for {chosen}")
        if len(chosen):  # a dataset none of whose episodes is used does not decide the size
            frame_shapes |= _declared_frame_shapes(ds, cameras)
        for i in chosen:
            ep = ds.episode(i)
            if ep.task not in names:
                names.append(ep.task)
            if ep.env_id and ep.env_id not in env_ids:
                env_ids.append(ep.env_id)
            n = ep.length
            part = _episode_inputs(ep, cameras, image_size, feature_fn, str(root), i)
            part["state"] = ep.frames[STATE_KEY].astype(np.float32)
            part["actions"] = ep.frames[ACTION_KEY].astype(np.float32)
            if privileged_state_dim:
                part["privileged_state"] = recorded_env_state(
                    ep, privileged_state_dim, f"episode {i} of {root}"
                )
            part["task_ids"] = np.full(n, names.index(ep.task), np.int64)
            part["episode_index"] = np.full(n, len(episodes), np.int64)
            part["episode_end"] = np.full(n, start + n, np.int64)
            # A real robot's recorder writes placeholder zeros: no progress, so RA-BC's
            # privileged oracle refuses such data instead of weighting by zeros.
            no_progress = not has_privileged_progress(ep.meta) or "progress" not in ep.frames
            part["progress"] = (
                np.full(n, np.nan, np.float32)
                if no_progress
                else ep.frames["progress"].astype(np.float32)
            )
            parts.append(part)
            episodes.append((str(root), i, start, n, bool(ep.success)))
            start += n
    if not parts:
        raise ValueError(f"no episodes in {[str(r) for r in roots]}")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    special = (
        "state",
        "actions",
        "task_ids",
        "episode_index",
        "episode_end",
        "progress",
        "privileged_state",
    )
    return DemoData(
        inputs={k: v for k, v in cat.items() if k not in special},
        state=cat["state"],
        actions=cat["actions"],
        task_ids=cat["task_ids"],
        episode_index=cat["episode_index"],
        episode_end=cat["episode_end"],
        progress=cat["progress"],
        instructions=tuple(names),
        episodes=episodes,
        env_ids=tuple(env_ids),
        privileged_state=cat.get("privileged_state"),
        frame_size=_square_side(frame_shapes),
    )


def _declared_frame_shapes(ds: LeRobotDataset, cameras: Sequence[str]) -> set[tuple[int, ...]]:
    """The frame shapes ``ds`` declares for ``cameras``.

    A camera the dataset lacks is left out here; reading its frames names it.
    """
    features = ds.features
    return {
        tuple(int(n) for n in features[image_key(c)]["shape"])
        for c in cameras
        if image_key(c) in features
    }


def _square_side(shapes: set[tuple[int, ...]]) -> int | None:
    """The side of ``shapes`` when they are one square ``(S, S, C)`` frame shape, else ``None``."""
    if len(shapes) != 1:
        return None
    (shape,) = shapes
    return shape[0] if len(shape) == 3 and shape[0] == shape[1] else None
