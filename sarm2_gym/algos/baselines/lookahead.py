"""A planner that chooses a chunk policy's chunks by simulating each candidate ahead (an oracle).

:class:`SimulatedLookahead` deploys a base chunk policy the way best-of-kappa does, except that
the choice among the kappa candidate chunks is made by the simulator rather than by a critic:
each candidate is executed in a second copy of the env, from the current state, and followed by
the base policy for ``horizon`` more steps; the candidate with the most privileged progress at
the end (1 once the task succeeded) is executed. Every candidate gets the same continuation
latents, so the draw favours none of them.

It reads the simulator's own progress and replays the episode in a copy of the env, so it exists
in simulation only: it measures what a perfect short-horizon critic would choose, and its
episodes are data for expert iteration (cloned by :mod:`.filtered_bc`), never a deployable
policy on a robot.

The second env runs in ``obs_mode="state"`` and renders its cameras only where the base policy
reads them (every ``n_action_steps`` steps of a continuation): rendering is most of a step's
cost. Replaying is checked against the episode: a replay that does not land on the robot state
the episode reached raises (the env would not be deterministic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from sarm2_gym.algos.common.chunking import batch_observation
from sarm2_gym.algos.common.latents import check_temperature, draw_latents
from sarm2_gym.algos.vla.policy import (
    ChunkPolicy,
    past_states_read_by,
    privileged_state_read_by,
    render_size_for,
)
from sarm2_gym.envs.privileged_state import PRIVILEGED_STATE_KEY

__all__ = ["SimulatedLookahead"]


class SimulatedLookahead:
    """SB3-style predictor for one env: chunks chosen among candidates by simulating ahead.

    Call :meth:`start` with the episode's reset seed before its first ``predict``.

    Args:
        policy: The base chunk policy (its cameras and ``state`` are all it may read).
        instruction: Task instruction.
        task: Env id of the episode's env (the copy is made from it).
        horizon: Steps the base policy continues after each candidate chunk (0: the chunk's own
            progress decides).
        candidates: Candidate chunks per decision (kappa).
        n_action_steps: Actions executed per chunk (default: the policy's ``n_action_steps``,
            else the whole chunk).
        seed: Seeds the candidates' and the continuations' latents.
        temperature: Scale of every latent.
        image_size: Camera size of the episode's env (the policy sees the same frames;
            ``None``: the side the policy was cloned from, as
            :func:`~sarm2_gym.algos.vla.policy.render_size_for` gives).
        max_episode_steps: The episode env's time limit, if it overrides the task's.

    Raises:
        ValueError: For a policy that reads past states, or bad sizes.
    """

    def __init__(
        self,
        policy: ChunkPolicy,
        instruction: str,
        task: str,
        *,
        horizon: int = 50,
        candidates: int = 4,
        n_action_steps: int | None = None,
        seed: int = 0,
        temperature: float = 1.0,
        image_size: int | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        if past_states_read_by(policy)[0]:
            raise ValueError("SimulatedLookahead runs policies that read no past states")
        if horizon < 0 or candidates < 1:
            raise ValueError(f"need horizon >= 0 and candidates >= 1, got {horizon}, {candidates}")
        self.policy, self.instruction = policy, instruction
        self.reads_privileged_state = privileged_state_read_by(policy)
        self.horizon, self.candidates = horizon, candidates
        self.n_action_steps = (
            n_action_steps or getattr(policy, "n_action_steps", None) or policy.chunk_size
        )
        self.temperature = check_temperature(temperature)
        self.generator = torch.Generator().manual_seed(seed)
        # Not make_task_env: the copy steps in state mode (replays render nothing) and renders
        # its cameras only when the base policy plans a chunk (_observe).
        kwargs: dict[str, Any] = {
            "obs_mode": "state",
            "image_size": render_size_for(policy, image_size),
        }
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = max_episode_steps
        self.sim = gym.make(task, disable_env_checker=True, **kwargs)
        self.reset_seed: int | None = None
        self.executed: list[np.ndarray] = []
        self.queue: list[np.ndarray] = []
        self.decisions = 0
        self.simulated_steps = 0  # steps of the copy (replays included): the planner's cost

    def start(self, reset_seed: int) -> None:
        """Begin an episode the env was reset to with ``reset_seed``."""
        self.reset_seed = reset_seed
        self.executed, self.queue = [], []

    def close(self) -> None:
        """Close the simulation copy."""
        self.sim.close()

    def predict(
        self,
        observation: Mapping[str, np.ndarray],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """The next action of the episode (planning a chunk when the last one is used up).

        Raises:
            RuntimeError: Before :meth:`start`, or when ``episode_start`` says a new episode
                began that :meth:`start` was not called for (its replays need its reset seed).
        """
        if self.reset_seed is None:
            raise RuntimeError("call start(reset_seed) before the episode's first predict")
        if episode_start is not None and bool(np.any(episode_start)) and self.executed:
            raise RuntimeError(
                "episode_start marks a new episode, but start(reset_seed) was not called for it: "
                "the planner replays each episode from its reset seed"
            )
        if not self.queue:
            self.queue = list(self._choose(observation))
        action = np.asarray(self.queue.pop(0), dtype=np.float32)
        self.executed.append(action)
        return action, None

    # ------------------------------------------------------------------ internals
    def _chunks(self, observation: Mapping[str, np.ndarray], n: int, gen: torch.Generator) -> Any:
        batched, _ = batch_observation(observation)
        repeated = {k: np.repeat(v, n, axis=0) for k, v in batched.items()}
        shape = (n, self.policy.chunk_size, self.policy.action_dim)
        with torch.no_grad():
            noise = draw_latents(shape, gen, self.temperature)
            chunks = self.policy.sample_chunk(repeated, self.instruction, noise)
        return chunks[:, : self.n_action_steps].cpu().numpy()

    def _choose(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        candidates = self._chunks(observation, self.candidates, self.generator)
        self.decisions += 1
        if self.candidates == 1:
            return np.asarray(candidates[0])
        continuation_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        scores = [
            self._score(chunk, np.asarray(observation["state"]), continuation_seed)
            for chunk in candidates
        ]
        return np.asarray(candidates[int(np.argmax(scores))])

    def _replay(self, robot_state: np.ndarray) -> tuple[Any, bool]:
        """The copy replayed to the episode's current state; ``(obs, done)``."""
        obs, _ = self.sim.reset(seed=self.reset_seed)
        done = False
        for action in self.executed:
            obs, _, terminated, truncated, _ = self.sim.step(action)
            done = terminated or truncated
        self.simulated_steps += len(self.executed)
        if not np.allclose(obs["state"], robot_state, atol=1e-5):
            raise RuntimeError(
                f"replaying {len(self.executed)} actions from reset seed {self.reset_seed} did "
                "not reach the episode's robot state: the env is not deterministic"
            )
        return obs, done

    def _observe(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the base policy reads, from the copy's current state.

        The cameras, rendered now, the robot state and, for an oracle policy that reads it, the
        task's privileged object state.
        """
        task: Any = self.sim.unwrapped
        seen = {**task.render_cameras(), "state": np.asarray(obs["state"])}
        if self.reads_privileged_state:
            seen[PRIVILEGED_STATE_KEY] = np.asarray(task.privileged_state(), dtype=np.float32)
        return seen

    def _score(self, chunk: np.ndarray, robot_state: np.ndarray, seed: int) -> float:
        """Privileged progress after ``chunk`` and ``horizon`` base-policy steps (1: success)."""
        obs, done = self._replay(robot_state)
        gen = torch.Generator().manual_seed(seed)
        queue: Sequence[np.ndarray] = list(chunk)
        progress, steps = 0.0, 0
        while not done and steps < len(chunk) + self.horizon:
            if not queue:
                queue = list(self._chunks(self._observe(obs), 1, gen)[0])
            action, queue = queue[0], queue[1:]
            obs, _, terminated, truncated, info = self.sim.step(action)
            steps += 1
            self.simulated_steps += 1
            done = terminated or truncated
            if info["is_success"]:
                return 1.0
            progress = float(info["progress"])
        return progress
