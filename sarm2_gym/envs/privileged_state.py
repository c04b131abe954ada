"""``PrivilegedState``: the simulator's object state as one more observation entry.

Asymmetric actor-critic ("Asymmetric Actor Critic for Image-Based Robot Learning", RSS 2018)
trains a policy that acts from images with a critic that reads the simulator's true state: the
policy stays deployable, and the critic need not learn from pixels where the objects are. SPIRAL's
critics can read it this way (``SPIRALConfig.critic_privileged_state``), to tell whether what they
see is what keeps them from valuing chunks. The state is the task's ``env_state`` (the eraser's
pose, the ink left, ...), the same vector ``obs_mode="state"`` gives, so only simulated benchmark
tasks have it.
"""

from __future__ import annotations

from typing import Any, Final

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sarm2_gym.envs.core.task_env import STATE_BOUND

__all__ = ["PRIVILEGED_STATE_KEY", "PrivilegedState"]

PRIVILEGED_STATE_KEY: Final[str] = "env_state"


class PrivilegedState(
    gym.ObservationWrapper[dict[str, np.ndarray], Any, dict[str, np.ndarray]],
    gym.utils.RecordConstructorArgs,
):
    """Add ``"env_state"``: the task's privileged object state, float32 ``(D,)``.

    Args:
        env: A benchmark task env (its unwrapped env has ``privileged_state()`` and
            ``env_state_dim``) with a ``Dict`` observation space.

    Raises:
        ValueError: If the env has no privileged state, its space is not a ``Dict``, or it
            already has ``"env_state"`` (``obs_mode="state"`` gives it itself).

    Example:
        >>> env = PrivilegedState(gym.make("SARM2-CleanWhiteboard-v0", image_size=32))
        >>> obs, _ = env.reset(seed=0)
        >>> obs["env_state"].shape
        (15,)
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        # Recorded so that gym.make can rebuild a spec with this wrapper in it.
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        task = env.unwrapped
        if not callable(getattr(task, "privileged_state", None)) or not hasattr(
            task, "env_state_dim"
        ):
            raise ValueError(
                f"{type(task).__name__} has no privileged state: only the benchmark's simulated "
                "tasks give one (privileged_state(), env_state_dim)"
            )
        space = env.observation_space
        if not isinstance(space, spaces.Dict):
            raise ValueError(f"PrivilegedState needs a Dict observation space, got {space}")
        if PRIVILEGED_STATE_KEY in space.spaces:
            raise ValueError(f"the observation space already has {PRIVILEGED_STATE_KEY!r}")
        self._task: Any = task  # a benchmark task env: checked to have privileged_state()
        dim = int(task.env_state_dim)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                **space.spaces,
                PRIVILEGED_STATE_KEY: spaces.Box(-STATE_BOUND, STATE_BOUND, (dim,), np.float32),
            }
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``observation`` with the task's privileged state now."""
        return {**observation, PRIVILEGED_STATE_KEY: self._task.privileged_state()}
