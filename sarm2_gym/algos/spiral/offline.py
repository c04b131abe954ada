"""Demonstrations as SPIRAL episodes (offline mode, spec §2.1 stage 2b).

Each episode of a LeRobot dataset is encoded by the frozen base policy, frame by frame, and handed
on in the same form as a collected rollout, so labelling and replay treat both alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sarm2_gym.algos.spiral.labeling import RolloutEpisode
from sarm2_gym.algos.spiral.policies import ResidualChunkPolicy
from sarm2_gym.algos.spiral.rollouts import CollectedEpisode
from sarm2_gym.algos.vla.policy import past_states_read_by, privileged_state_read_by
from sarm2_gym.data.episode import STATE_KEY, image_key, recorded_env_state
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.envs.past_states import PAST_STATES_KEY, episode_past_states
from sarm2_gym.envs.privileged_state import PRIVILEGED_STATE_KEY

__all__ = ["demonstration_episodes"]

_ENCODE_BATCH = 64


def demonstration_episodes(
    policy: ResidualChunkPolicy, dataset: str | Path, max_episodes: int | None, keep_images: bool
) -> Iterator[CollectedEpisode]:
    """Yield the first ``max_episodes`` episodes (all by default) with base-policy features.

    Raises:
        ValueError: If an episode's instruction is not the policy's, or a camera (or the
            privileged state the critics or the base policy read) is missing.
    """
    ds = LeRobotDataset(dataset)
    cameras = policy.cameras
    n_past, stride = past_states_read_by(policy)
    reads_state = privileged_state_read_by(policy)  # its critics, or an oracle base policy
    count = ds.num_episodes if max_episodes is None else min(max_episodes, ds.num_episodes)
    for i in range(count):
        ep = ds.episode(i)
        if ep.task != policy.instruction:
            raise ValueError(
                f"episode {i} of {dataset} is {ep.task!r}, "
                f"not the policy's task {policy.instruction!r}"
            )
        missing = [c for c in cameras if image_key(c) not in ep.frames]
        if missing:
            raise ValueError(f"episode {i} of {dataset} lacks cameras {missing}")
        obs = {c: ep.frames[image_key(c)] for c in cameras}
        obs["state"] = ep.frames[STATE_KEY]
        if n_past:  # as the env wrapper would have given them while recording
            obs[PAST_STATES_KEY] = episode_past_states(obs["state"], n_past, stride)
        if reads_state:  # the critics' width, if they read it; the base policy checks its own
            obs[PRIVILEGED_STATE_KEY] = recorded_env_state(
                ep, policy.privileged_state_dim or None, f"episode {i} of {dataset}"
            )
        with torch.no_grad():
            feats = np.concatenate(
                [
                    policy.encode({k: v[s : s + _ENCODE_BATCH] for k, v in obs.items()})
                    .cpu()
                    .numpy()
                    for s in range(0, ep.length, _ENCODE_BATCH)
                ]
            )
        rollout = RolloutEpisode.from_episode(ep, keep_images=keep_images, dataset_episode=i)
        yield CollectedEpisode(rollout, feats)
