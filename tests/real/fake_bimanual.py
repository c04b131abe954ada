"""A tiny stand-in for a simulated SARM2 task: same spaces and info, no MuJoCo.

The "task" is to move the left gripper +9 cm along x (three full-scale steps). Registered as
``FakeBimanual-v0`` on import, so ``gym.make("fake_bimanual:FakeBimanual-v0")`` works in any
process that has this directory on ``sys.path`` (the robot-server subprocess of the tests).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

HOME = np.array(
    [-0.18, 0.22, 0.25, 0.0, 0.0, 0.0, 0.0, -0.18, -0.22, 0.25, 0.0, 0.0, 0.0, 0.0],
    dtype=np.float64,
)
GOAL_DX = 0.09
CAMERAS = ("top", "left_wrist", "right_wrist")
ENV_ID = "FakeBimanual-v0"


class FakeBimanualEnv(gym.Env[dict[str, Any], np.ndarray]):
    metadata = {"render_modes": [], "render_fps": 10}  # noqa: RUF012

    def __init__(self, obs_mode: str = "rgb", image_size: int = 96, noise: float = 0.01) -> None:
        assert obs_mode == "rgb"
        self.image_size = image_size
        self.noise = noise
        self.instruction = "move the left gripper forward"
        img = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(
            dict.fromkeys(CAMERAS, img) | {"state": spaces.Box(-10.0, 10.0, (14,), np.float32)}
        )
        self.action_space = spaces.Box(-1.0, 1.0, (14,), np.float32)
        self.state = HOME.copy()
        self.start_x = HOME[0]

    def _obs(self) -> dict[str, np.ndarray]:
        s = self.image_size
        obs: dict[str, np.ndarray] = {}
        for i, cam in enumerate(CAMERAS):
            img = np.zeros((s, s, 3), dtype=np.uint8)
            # Images depend on the state so tests can see motion, deterministically.
            img[..., 0] = int(np.clip((self.state[0] + 0.5) * 200, 0, 255))
            img[..., 1] = int(np.clip((self.state[7] + 0.5) * 200, 0, 255))
            img[..., 2] = 40 * i
            obs[cam] = img
        obs["state"] = self.state.astype(np.float32)
        return obs

    def _info(self) -> dict[str, Any]:
        progress = float(np.clip((self.state[0] - self.start_x) / GOAL_DX, 0.0, 1.0))
        success = progress >= 1.0 - 1e-6
        return {
            "is_success": success,
            "primitive": 7 if self.state[6] > 0.5 else 21,
            "stage": int(progress >= 0.5),
            "progress": progress,
            "sparse_reward": 1.0 if success else 0.0,
            "task": self.instruction,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.state = HOME.copy()
        jitter = self.np_random.uniform(-self.noise, self.noise, size=3)
        self.state[0:3] += jitter
        self.state[7:10] += jitter
        self.start_x = self.state[0]
        return self._obs(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        for o in (0, 7):
            self.state[o : o + 3] += a[o : o + 3] * 0.03
            self.state[o + 3 : o + 6] += a[o + 3 : o + 6] * 0.15
            self.state[o + 6] = 0.5 * (a[o + 6] + 1.0)
        info = self._info()
        return self._obs(), info["sparse_reward"], info["is_success"], False, info


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=FakeBimanualEnv, max_episode_steps=30)
