"""Resize the camera images of a ``Dict`` observation (what the agent sees, not the reward)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sarm2_gym.envs.spaces import image_entries
from sarm2_gym.wrappers.observations import resize_images

__all__ = ["ResizeCameras"]


class ResizeCameras(gym.ObservationWrapper[dict[str, np.ndarray], Any, dict[str, np.ndarray]]):
    """Give the agent ``size`` x ``size`` camera images of an env rendered at another size.

    Put it outside a reward wrapper whose model needs its own image size: the env renders at the
    model's size, the model scores those frames, and the policy gets the smaller images it was
    built for (e.g. PPO at 64 px beside a reward model trained at 96 px). Every ``(H, W, 3)``
    uint8 entry of the observation is resized (bilinear); other entries pass through.

    Args:
        env: Env with a ``Dict`` observation space.
        size: Output height and width.

    Raises:
        ValueError: If the observation space is not a ``Dict`` with at least one camera, or
            ``size`` is below 1.
    """

    def __init__(self, env: gym.Env[Any, Any], size: int) -> None:
        super().__init__(env)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        space = env.observation_space
        if not isinstance(space, spaces.Dict):
            raise ValueError(f"ResizeCameras needs a Dict observation space, got {space}")
        self.size = size
        self.cameras = image_entries(space)
        if not self.cameras:
            raise ValueError(f"no (H, W, 3) uint8 camera in the observation space: {space}")
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                k: spaces.Box(0, 255, (size, size, 3), np.uint8) if k in self.cameras else s
                for k, s in space.spaces.items()
            }
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation with every camera at ``size`` x ``size``."""
        out = dict(observation)
        for cam in self.cameras:
            image = np.asarray(observation[cam])
            if image.shape[:2] != (self.size, self.size):
                out[cam] = resize_images(image[None], self.size)[0]
        return out
