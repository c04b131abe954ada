"""The batched scoring core behind every SARM2 reward wrapper.

:class:`RewardScorer` owns a :class:`~sarm2_gym.reward.streaming.StreamingScorer` (per-env ring
buffers of encoded frames: each frame is encoded once) and turns the model's progress readings
into rewards:

* ``"delta"`` (the paper, spec §1.8): the readings are smoothed online like the reference
  labeller — mean of the last ``smoothing_window`` queried values, then a running maximum — and
  the reward is the non-negative change of that smoothed progress; an episode's rewards sum to
  its final smoothed progress.
* ``"progress"``: the reward is the latest progress reading itself.
* ``"potential"``: ``gamma * Phi(s') - Phi(s)`` with ``Phi`` the latest progress reading
  (``Phi = 0`` after a true terminal), policy-invariant shaping (Ng et al., 1999).

The model is queried on the first step of an episode, every ``query_every`` steps (default: the
model's frame gap) and on every terminal step; in between the last reading is held, so
``"delta"`` rewards arrive at query steps. All envs that need a reading in a vector step
share one forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from sarm2_gym.common.smoothed_progress import SMOOTHING_WINDOW, SmoothedProgress
from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.reward.streaming import StreamingScorer

__all__ = ["REWARD_MODES", "RewardConfig", "RewardScorer", "RunningRewardNormalizer"]

REWARD_MODES: Final[tuple[str, ...]] = ("delta", "progress", "potential")


@dataclass(frozen=True, slots=True, kw_only=True)
class RewardConfig:
    """How model readings become rewards.

    Args:
        reward_mode: ``"delta"`` (paper), ``"progress"`` or ``"potential"``.
        query_every: Query the model every this many steps; ``None`` = the model's frame gap,
            1 = every step.
        smoothing_window: Readings averaged by ``"delta"`` (spec §1.8: 5).
        gamma: Discount of ``"potential"`` shaping.
        dense_weight: Weight of the model's reward.
        env_reward_weight: Weight of the env's own reward added to it.
        success_bonus: Added on a step whose ``info["is_success"]`` is true.
        normalize: Divide the reward by a running std of past rewards.
    """

    reward_mode: str = "delta"
    query_every: int | None = None
    smoothing_window: int = SMOOTHING_WINDOW
    gamma: float = 0.99
    dense_weight: float = 1.0
    env_reward_weight: float = 0.0
    success_bonus: float = 0.0
    normalize: bool = False

    def __post_init__(self) -> None:
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        if self.query_every is not None and (
            not isinstance(self.query_every, int) or self.query_every < 1
        ):
            raise ValueError(f"query_every must be an int >= 1 (or None), got {self.query_every!r}")
        if self.smoothing_window < 1:
            raise ValueError(f"smoothing_window must be >= 1, got {self.smoothing_window}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")


class RunningRewardNormalizer:
    """Scales rewards by a running standard deviation (Welford); freeze it for evaluation.

    Only the scale is normalised, never the mean, so non-negative ``"delta"`` rewards stay
    non-negative.

    Args:
        epsilon: Added to the std.
        clip: Absolute clip of the normalised reward.
    """

    def __init__(self, epsilon: float = 1e-8, clip: float = 10.0) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.epsilon = epsilon
        self.clip = clip
        self.frozen = False

    @property
    def std(self) -> float:
        """Current running standard deviation (1.0 before two samples)."""
        return float(np.sqrt(self.m2 / (self.count - 1))) if self.count > 1 else 1.0

    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        """Update the statistics (unless frozen) and return the scaled rewards."""
        if not self.frozen:
            for r in np.asarray(rewards, dtype=np.float64).ravel():
                self.count += 1
                delta = r - self.mean
                self.mean += delta / self.count
                self.m2 += delta * (r - self.mean)
        return np.clip(rewards / (self.std + self.epsilon), -self.clip, self.clip)

    def freeze(self) -> None:
        """Stop updating the statistics (evaluation)."""
        self.frozen = True

    def state_dict(self) -> dict[str, float]:
        """Statistics to save with a policy."""
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Restore saved statistics."""
        self.count, self.mean, self.m2 = (
            int(state["count"]),
            float(state["mean"]),
            float(state["m2"]),
        )


@dataclass
class _EnvState:
    steps: int = 0
    progress: SmoothedProgress = field(default_factory=SmoothedProgress)
    increase: float = 0.0  # of the smoothed progress at the latest reading ("delta" reward)
    phi: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)


class RewardScorer:
    """Per-env streaming state and batched reward computation.

    Args:
        model: The SARM2 reward model.
        num_envs: Number of parallel envs.
        instructions: One instruction for all envs, or one per env.
        config: Reward semantics.
    """

    def __init__(
        self,
        model: SARM2RewardModel,
        num_envs: int,
        instructions: str | Sequence[str],
        config: RewardConfig | None = None,
    ) -> None:
        self.config = config or RewardConfig()
        self.model = model
        self.num_envs = num_envs
        texts = [instructions] if isinstance(instructions, str) else list(instructions)
        unknown = [t for t in dict.fromkeys(texts) if t not in model.config.instructions]
        if unknown:  # foreign tasks: embed their instructions once, with the model's text encoder
            from sarm2_gym.reward.encoders import build_text_encoder

            model.add_instructions(unknown, build_text_encoder(model.config))
        self.streaming = StreamingScorer(model, num_envs, instructions)
        self.query_every = self.config.query_every or model.config.frame_gap
        self.normalizer = RunningRewardNormalizer() if self.config.normalize else None
        self._envs = [_EnvState() for _ in range(num_envs)]

    def reset(
        self, env_indices: Sequence[int], frames: Mapping[str, np.ndarray], state: np.ndarray
    ) -> None:
        """Start new episodes: forget the history and push the first frames (E rows each)."""
        idx = list(env_indices)
        if not idx:
            return
        self.streaming.reset(idx)
        self.streaming.push(frames, state, idx)
        for i in idx:
            self._envs[i] = _EnvState(progress=SmoothedProgress(self.config.smoothing_window))

    def step(
        self,
        frames: Mapping[str, np.ndarray],
        state: np.ndarray,
        env_rewards: np.ndarray,
        successes: np.ndarray,
        terminal: np.ndarray,
        terminated: np.ndarray,
        env_indices: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Push one new frame per env, query the model where due, and compute the rewards.

        Args:
            frames: Camera -> ``(E, H, W, 3)`` uint8, the frames the step produced (for a
                finished episode: its terminal frame).
            state: ``(E, state_dim)``.
            env_rewards: The env's own rewards ``(E,)``.
            successes: ``info["is_success"]`` per env.
            terminal: Episode ended (terminated or truncated) per env: always queried.
            terminated: True terminal per env (``Phi = 0`` after it for ``"potential"``).
            env_indices: The E envs the rows belong to (default all).

        Returns:
            Rewards ``(E,)`` and, per env, the model's latest reading for ``info["sarm2"]``.
        """
        idx = np.arange(self.num_envs) if env_indices is None else np.asarray(env_indices)
        if idx.size == 0:
            return np.zeros(0, dtype=np.float32), []
        self.streaming.push(frames, state, idx.tolist())
        for i in idx:
            self._envs[i].steps += 1
        due = [k for k, i in enumerate(idx) if terminal[k] or self._due(self._envs[i].steps)]
        if due:
            batch = self.streaming.score(idx[due].tolist())  # one forward pass for all due envs
            for row, k in enumerate(due):
                self._record(int(idx[k]), batch, row)
        rewards = np.array(
            [self._reward(int(i), k in due, bool(terminated[k])) for k, i in enumerate(idx)],
            dtype=np.float64,
        )
        rewards = self.config.dense_weight * rewards
        rewards += self.config.env_reward_weight * np.asarray(env_rewards, dtype=np.float64)
        rewards += self.config.success_bonus * np.asarray(successes, dtype=np.float64)
        if self.normalizer is not None:
            rewards = self.normalizer(rewards)
        infos = [dict(self._envs[int(i)].last, queried=k in due) for k, i in enumerate(idx)]
        return rewards.astype(np.float32), infos

    def _due(self, steps: int) -> bool:
        # The first step is always read, so info["sarm2"] carries a reading from then on.
        return steps == 1 or steps % self.query_every == 0

    def _record(self, env: int, batch: Any, row: int) -> None:
        st = self._envs[env]
        progress = float(np.clip(batch.progress[row], 0.0, 1.0))
        st.increase = st.progress.add(progress)
        st.last = {
            "progress": progress,
            "primitive": int(batch.primitive[row]),
            "primitive_name": batch.primitive_names[row],
            "group": int(batch.group[row]),
            "confidence": float(np.max(batch.primitive_probs[row])),
        }

    def _reward(self, env: int, queried: bool, terminated: bool) -> float:
        st = self._envs[env]
        mode = self.config.reward_mode
        if not st.progress.readings:  # nothing read yet this episode
            return 0.0
        if mode == "progress":
            return st.progress.readings[-1]
        if mode == "potential":
            phi_next = 0.0 if terminated else st.progress.readings[-1]
            reward = self.config.gamma * phi_next - st.phi
            st.phi = phi_next
            return reward
        return st.increase if queried else 0.0

    def latest(self, env: int) -> dict[str, Any]:
        """The latest reading of an env (empty before its first query)."""
        return dict(self._envs[env].last)
