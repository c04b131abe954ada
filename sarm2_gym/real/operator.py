"""The operator loop: run a policy on a real robot, with a person handling resets and labels.

Per episode the operator is asked (in the terminal, or through an injected ``input_fn``) to reset
the scene, the policy runs until the env ends the episode or the operator presses **Ctrl-C**
(early stop: the robot is stopped at once), and the operator labels the outcome: success,
failure, or discard. Each labelled episode is written to the dataset *as soon as it ends*,
through :func:`~sarm2_gym.real.recording.write_episode`, so a crash, a lost connection or a
kill later on never costs a finished episode.

Example:
    >>> from sarm2_gym.real.dummy import KinematicRobot
    >>> from sarm2_gym.real.env import RealRobotEnv
    >>> from sarm2_gym.real.recording import open_dataset_writer
    >>> import tempfile, numpy as np
    >>> env = RealRobotEnv(KinematicRobot(), max_episode_steps=3, control_hz=50, watchdog=False)
    >>> answers = iter(["", "s", "q"])
    >>> with open_dataset_writer(tempfile.mkdtemp(), fps=50) as writer:
    ...     loop = OperatorLoop(env, lambda obs: np.zeros(14, np.float32), writer,
    ...                         input_fn=lambda prompt: next(answers), print_fn=lambda *a: None)
    ...     print([(o.status, o.steps, o.success, o.index) for o in loop.run()])
    [('saved', 3, True, 0)]
    >>> env.close()
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sarm2_gym.real.env import RealRobotEnv
from sarm2_gym.real.errors import RobotError, UnsafeCommandError, WatchdogTrippedError
from sarm2_gym.real.recording import EpisodeRecorder, EpisodeSink, write_episode

__all__ = ["EpisodeOutcome", "OperatorLoop", "Policy"]

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]
"""``policy(obs) -> action``; objects with SB3's ``predict(obs, deterministic)`` work too."""

_YES = {"s", "success", "y", "yes"}
_NO = {"f", "failure", "fail", "n", "no"}
_DISCARD = {"d", "discard"}
_QUIT = {"q", "quit", "exit"}


@dataclass
class EpisodeOutcome:
    """What happened to one episode.

    Args:
        status: ``saved``, ``discarded`` (by the operator, or after a safety stop) or ``quit``.
        steps: Steps taken.
        success: The operator's label (``None`` if not saved).
        index: What the sink's ``add_episode`` returned (the dataset's episode index).
        early_stop: The operator stopped the episode with Ctrl-C.
        reason: Why it was discarded, if it was.
        timing: The env's timing statistics.
    """

    status: Literal["saved", "discarded", "quit"]
    steps: int = 0
    success: bool | None = None
    index: Any = None
    early_stop: bool = False
    reason: str = ""
    timing: dict[str, float] = field(default_factory=dict)


def _as_policy(policy: Any) -> Policy:
    predict = getattr(policy, "predict", None)
    if callable(predict):
        return lambda obs: np.asarray(predict(obs, deterministic=True)[0], dtype=np.float32)
    if callable(policy):
        return policy
    raise TypeError("policy must be callable(obs) -> action or have predict(obs, deterministic)")


class OperatorLoop:
    """Runs episodes with a human in the loop and records them.

    Args:
        env: The robot env.
        policy: ``policy(obs) -> action`` or an SB3-style model.
        sink: Where finished episodes go (a ``LeRobotDatasetWriter``).
        input_fn: Reads one answer, given a prompt (``input`` by default; inject for tests).
        print_fn: Prints a message.
        env_id: Stored with each episode as its source.
        record_cameras: Cameras whose images are stored (default: all).
    """

    def __init__(
        self,
        env: RealRobotEnv,
        policy: Any,
        sink: EpisodeSink,
        *,
        input_fn: Callable[[str], str] = input,
        print_fn: Callable[..., None] = print,
        env_id: str = "real",
        record_cameras: tuple[str, ...] | None = None,
    ) -> None:
        self.env, self.sink = env, sink
        self.policy = _as_policy(policy)
        self.input_fn, self.print_fn = input_fn, print_fn
        cams = env.config.cameras if record_cameras is None else record_cameras
        self.recorder = EpisodeRecorder(
            env.instruction, fps=round(env.config.control_hz), env_id=env_id, cameras=cams
        )

    def run(self, n_episodes: int | None = None) -> list[EpisodeOutcome]:
        """Run episodes until ``n_episodes`` are done or the operator quits.

        Raises:
            RobotConnectionError: The robot became unreachable; the episode in progress is
                dropped, every finished one is already stored.
        """
        outcomes: list[EpisodeOutcome] = []
        while n_episodes is None or len(outcomes) < n_episodes:
            outcome = self.run_episode(len(outcomes))
            if outcome.status == "quit":
                break
            outcomes.append(outcome)
        return outcomes

    def run_episode(self, number: int = 0) -> EpisodeOutcome:
        """Reset prompt, rollout, label prompt, store. Returns ``status="quit"`` on ``q``."""
        answer = self._ask(
            f"[episode {number}] Reset the scene, then press Enter to start (q = quit): "
        )
        if answer in _QUIT:
            return EpisodeOutcome("quit")
        env = self.env
        obs, info = env.reset()
        self.recorder.start(obs)
        self.print_fn("Running. Press Ctrl-C to stop the episode early.")
        early = False
        try:
            while True:
                action = self.policy(obs)
                obs, reward, terminated, truncated, info = env.step(action)
                self.recorder.add(action, reward, obs, info)
                if terminated or truncated:
                    break
            if info.get("watchdog_tripped"):
                self.print_fn("The watchdog stopped the robot: the policy was too slow.")
        except KeyboardInterrupt:
            early = True
            env.stop_robot()
            self.print_fn("Stopped by the operator.")
        except (WatchdogTrippedError, UnsafeCommandError) as exc:
            self._safe_stop()
            self.print_fn(f"Episode aborted by the safety layer: {exc}")
            return self._discarded(str(exc), early)
        timing = env.timing_stats().as_dict()
        if len(self.recorder) == 0:
            return self._discarded("no steps were taken", early)
        success = self._ask_label(bool(info.get("is_success", False)))
        if success is None:
            return self._discarded("discarded by the operator", early)
        meta = {
            "source": "real_robot",
            "operator_label": success,
            "early_stop": early,
            "timing": timing,
            "safety": env.safety_stats()["violations"],
            "recorded_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        episode = self.recorder.build(success, meta)
        index = write_episode(self.sink, episode)
        self.print_fn(f"Saved episode ({episode.length} steps, success={success}).")
        return EpisodeOutcome("saved", episode.length, success, index, early, timing=timing)

    # ------------------------------------------------------------------ helpers

    def _ask(self, prompt: str) -> str:
        try:
            return self.input_fn(prompt).strip().lower()
        except EOFError:
            return "q"

    def _ask_label(self, detected: bool) -> bool | None:
        default = "s" if detected else "f"
        while True:
            answer = (
                self._ask(f"Outcome? [s]uccess / [f]ailure / [d]iscard (Enter = {default}): ")
                or default
            )
            if answer in _YES:
                return True
            if answer in _NO:
                return False
            if answer in _DISCARD | _QUIT:
                return None
            self.print_fn(f"Unknown answer {answer!r}.")

    def _discarded(self, reason: str, early: bool) -> EpisodeOutcome:
        return EpisodeOutcome(
            "discarded",
            len(self.recorder),
            early_stop=early,
            reason=reason,
            timing=self.env.timing_stats().as_dict(),
        )

    def _safe_stop(self) -> None:
        try:
            self.env.stop_robot()
        except RobotError as exc:
            self.print_fn(f"Warning: could not stop the robot: {exc}")
