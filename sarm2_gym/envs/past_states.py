"""``PastStates``: the robot's recent states as one more observation entry.

A policy that sees one observation cannot tell which way the arm is going: holding the eraser
over its tray looks the same after picking it up (go and wipe) as after wiping (put it down).
Diffusion Policy and LeRobot give their policies a short observation history for this
(``n_obs_steps``); this wrapper gives the cheapest part of one, the proprioceptive state.
``gym.make(task, past_states=n, past_state_stride=k)`` builds it into a benchmark env.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["PAST_STATES_KEY", "PastStates", "episode_past_states", "past_state_indices"]

PAST_STATES_KEY: Final[str] = "past_states"


def past_state_indices(
    steps: np.ndarray, first: np.ndarray | int, n: int, stride: int
) -> np.ndarray:
    """Indices ``(B, n)`` of the past states of ``steps`` ``(B,)``, oldest first.

    Entry ``i`` is ``steps - (n - i) * stride``, no earlier than the episode's ``first`` index
    (``(B,)`` or one for all): the one definition of what :class:`PastStates` gives, used for
    recorded episodes as well.
    """
    lags = (n - np.arange(n)) * stride
    return np.maximum(np.asarray(steps)[:, None] - lags[None], np.asarray(first).reshape(-1, 1))


class PastStates(gym.Wrapper[dict[str, np.ndarray], Any, dict[str, np.ndarray], Any]):
    """Add ``"past_states"``: the states ``n * k, ..., 2k, k`` steps ago, oldest first.

    Entry ``i`` of the ``(n, S)`` array is the ``"state"`` observed ``(n - i) * k`` steps before
    the current one. Steps before the episode's first repeat its first state, as a
    demonstration's frames before its start do when a policy learns from them
    (:meth:`~sarm2_gym.algos.vla.data.DemoData.past_states`).

    Args:
        env: Env with a ``Dict`` observation space holding a 1-d ``"state"`` Box.
        n: Past states given (>= 1).
        stride: Steps between them (>= 1).

    Raises:
        ValueError: If ``n`` or ``stride`` is below 1, the space has no 1-d ``"state"``, or it
            already has a ``"past_states"`` entry.

    Example:
        >>> env = PastStates(gym.make("SARM2-CleanWhiteboard-v0", obs_mode="state"), n=2)
        >>> obs, _ = env.reset(seed=0)
        >>> obs["past_states"].shape
        (2, 14)
    """

    def __init__(self, env: gym.Env[Any, Any], n: int, stride: int = 1) -> None:
        super().__init__(env)
        if n < 1 or stride < 1:
            raise ValueError(f"n and stride must be >= 1, got n={n}, stride={stride}")
        space = env.observation_space
        state = space.spaces.get("state") if isinstance(space, spaces.Dict) else None
        if not isinstance(state, spaces.Box) or len(state.shape) != 1:
            raise ValueError(f"PastStates needs a Dict space with a 1-d 'state' Box, got {space}")
        assert isinstance(space, spaces.Dict)  # for the type checker: checked just above
        if PAST_STATES_KEY in space.spaces:
            raise ValueError(f"the observation space already has {PAST_STATES_KEY!r}")
        self.n = n
        self.stride = stride
        low = np.broadcast_to(state.low, (n, *state.shape))
        high = np.broadcast_to(state.high, (n, *state.shape))
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {**space.spaces, PAST_STATES_KEY: spaces.Box(low, high, dtype=state.dtype)}
        )
        # The current state and the n * stride before it.
        self._history: deque[np.ndarray] = deque(maxlen=n * stride + 1)

    def _with_past(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._history.append(np.array(observation["state"], copy=True))
        # The history holds the last len(history) steps: the current one is its last entry.
        now = len(self._history) - 1
        index = past_state_indices(np.array([now]), 0, self.n, self.stride)[0]
        return {**observation, PAST_STATES_KEY: np.stack([self._history[i] for i in index])}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset; the past states all equal the first state."""
        observation, info = self.env.reset(seed=seed, options=options)
        self._history.clear()
        return self._with_past(observation), info

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]:
        """Step and append the new state to the history."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self._with_past(observation), reward, terminated, truncated, info


def episode_past_states(states: np.ndarray, n: int, stride: int = 1) -> np.ndarray:
    """What :class:`PastStates` gives at every step of one recorded episode.

    Args:
        states: ``(T, S)`` the episode's states, in order.
        n: Past states per step.
        stride: Steps between them.

    Returns:
        ``(T, n, S)``: at step ``t``, the states at ``t - n * stride, ..., t - stride`` (the first
        state where those fall before the episode's start).
    """
    return np.asarray(states)[past_state_indices(np.arange(len(states)), 0, n, stride)]
