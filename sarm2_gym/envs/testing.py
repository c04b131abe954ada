"""A tiny MuJoCo-free env for wrapper and pipeline tests.

:class:`StepIndexEnv` follows the benchmark's observation contract (three uint8 cameras and a
14-d state) but its frames encode the step index: every pixel of step ``t`` equals ``t % 256``
and ``state[0] == t``. Tests can then tell exactly which frame a wrapper scored.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["StepIndexEnv"]


class StepIndexEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Episodes of seeded random length whose frames show the step index.

    Args:
        image_size: Side of the camera images.
        min_steps: Shortest episode.
        max_steps: Longest episode.
        success_prob: Probability an episode ends in success (terminated) rather than failure.
        instruction: The instruction reported as ``env.instruction`` and ``info["task"]``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        image_size: int = 16,
        min_steps: int = 3,
        max_steps: int = 12,
        success_prob: float = 0.5,
        instruction: str = "folding shorts",
        render_mode: str | None = None,
    ) -> None:
        self.image_size = image_size
        self.min_steps, self.max_steps = min_steps, max_steps
        self.success_prob = success_prob
        self.instruction = instruction
        self.render_mode = render_mode
        img = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "top": img,
                "left_wrist": img,
                "right_wrist": img,
                "state": spaces.Box(-1e4, 1e4, (14,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (14,), np.float32)
        self._t = 0
        self._length = min_steps
        self._success = False

    def _obs(self) -> dict[str, np.ndarray]:
        frame = np.full((self.image_size, self.image_size, 3), self._t % 256, dtype=np.uint8)
        state = np.zeros(14, dtype=np.float32)
        state[0] = self._t
        return {
            "top": frame,
            "left_wrist": frame.copy(),
            "right_wrist": frame.copy(),
            "state": state,
        }

    def _info(self) -> dict[str, Any]:
        done = self._t >= self._length
        return {
            "is_success": bool(done and self._success),
            "progress": min(self._t / self._length, 1.0),
            "task": self.instruction,
            "step_index": self._t,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode of seeded random length."""
        super().reset(seed=seed)
        self._t = 0
        self._length = int(self.np_random.integers(self.min_steps, self.max_steps + 1))
        self._success = bool(self.np_random.random() < self.success_prob)
        return self._obs(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Advance one step; the episode ends after its drawn length."""
        self._t += 1
        done = self._t >= self._length
        success = done and self._success
        return self._obs(), float(success), bool(success), bool(done and not success), self._info()

    def render(self) -> np.ndarray:
        """The ``top`` frame."""
        return self._obs()["top"]
