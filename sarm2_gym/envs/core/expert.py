"""Scripted experts: closed-loop waypoint controllers with quality knobs and primitive labels.

A task's expert turns the current stage (from the task's stage machine, so a dropped object
sends it back to re-grasp) into a short plan of :class:`Waypoint` s, each tagged with the action
primitive it performs. :class:`ScriptedExpert` executes the plan with bounded per-step motion and
degrades it on purpose through :class:`ExpertQuality`: speed, action noise, hesitation pauses,
mistakes followed by recovery, and abandoning the task (partial or failed episodes), so datasets
mix good, slow, clumsy and failed demonstrations as the method needs.

For behaviour cloning it can also *perturb what it executes* without changing what it records
(DART-style noise injection): a short push moves the arm off the expert's path, the recorded
action stays the expert's own choice from the state the push led to, so the data show how to
steer back -- the states a cloned policy drifts into. A *missed grasp* is the same idea at the
grasp: the descent is executed to a point beside the object and the fingers close on nothing,
while the recorded actions stay the expert's; the data then show the expert opening, rising and
grasping again -- the recovery a cloned policy needs after it closes its fingers off target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np

from sarm2_gym.envs.core.embodiment import ARMS
from sarm2_gym.envs.core.primitives import DUMMY, primitive_index

if TYPE_CHECKING:
    from sarm2_gym.envs.core.task_env import TaskEnv

__all__ = [
    "QUALITY_PRESETS",
    "ArmTarget",
    "ExpertQuality",
    "ExpertStep",
    "ScriptedExpert",
    "Waypoint",
    "resolve_quality",
]

Vec = np.ndarray | Callable[[], np.ndarray]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpertQuality:
    """Knobs that degrade a scripted expert.

    Args:
        name: Preset name recorded in datasets.
        speed: Fraction of the maximum per-step motion used, in (0, 1].
        action_noise: Std of Gaussian noise added to the normalised arm motion.
        hesitation: Probability per step of starting a pause (labelled ``dummy``).
        hesitation_steps: Inclusive range of a pause's length in steps.
        mistake: Probability, per stage, of one mistake (a wrong detour or dropping what is
            held) that the closed-loop expert then recovers from.
        abandon_stage: Stage at which the expert gives up (``None``: never). Negative values are
            drawn per episode: ``-1`` a random stage after the first, ``-2`` the first stage.
        abandon_fraction: With ``abandon_stage`` set, the fraction of that stage's plan carried out
            before giving up (``None``: drawn uniformly in [0, 0.6]).
        perturbation: Probability per step of starting a push: for a few steps the *executed*
            action adds a constant random offset to the motion of the arms the current waypoint
            moves, while the recorded action stays the expert's (see
            :attr:`ExpertStep.executed`). Grippers are never pushed.
        perturbation_steps: Inclusive range of a push's length in steps.
        perturbation_scale: Size of a push in normalised action units: the translation offset
            has this norm, each rotation component a std of half of it.
        grasp_miss: Probability, per grasp attempt, of a missed grasp: the descent before a
            :attr:`Waypoint.grasp` waypoint is *executed* to a point ``grasp_miss_offset`` beside
            its target (either way along the fingers' closing axis) and the fingers close there for
            ``grasp_miss_close_steps`` steps, while the recorded actions stay the expert's own
            (towards the true target, then -- re-planned from the missed state -- open, rise
            and grasp again). Retries can miss too.
        grasp_miss_offset: Inclusive range of the miss distance (metres).
        grasp_miss_close_steps: Steps the fingers are closed at the missed point.
    """

    name: str = "custom"
    speed: float = 1.0
    action_noise: float = 0.0
    hesitation: float = 0.0
    hesitation_steps: tuple[int, int] = (3, 8)
    mistake: float = 0.0
    abandon_stage: int | None = None
    abandon_fraction: float | None = None
    perturbation: float = 0.0
    perturbation_steps: tuple[int, int] = (2, 5)
    perturbation_scale: float = 0.5
    grasp_miss: float = 0.0
    grasp_miss_offset: tuple[float, float] = (0.03, 0.045)
    grasp_miss_close_steps: int = 4

    def __post_init__(self) -> None:
        if not 0.0 < self.speed <= 1.0:
            raise ValueError(f"speed must be in (0, 1], got {self.speed}")
        for knob in ("action_noise", "hesitation", "mistake", "perturbation", "grasp_miss"):
            value = getattr(self, knob)
            if value < 0 or (knob != "action_noise" and value > 1):
                raise ValueError(f"{knob} must be a probability/non-negative, got {value}")
        for knob in ("hesitation_steps", "perturbation_steps"):
            lo, hi = getattr(self, knob)
            if not 1 <= lo <= hi:
                raise ValueError(f"{knob} must satisfy 1 <= lo <= hi, got {(lo, hi)}")
        if not 0.0 <= self.perturbation_scale <= 1.0:
            raise ValueError(f"perturbation_scale must be in [0, 1], got {self.perturbation_scale}")
        lo, hi = self.grasp_miss_offset
        if not 0.0 < lo <= hi <= 0.2:
            raise ValueError(
                f"grasp_miss_offset must satisfy 0 < lo <= hi <= 0.2 m, got {(lo, hi)}"
            )
        if self.grasp_miss_close_steps < 1:
            raise ValueError(
                f"grasp_miss_close_steps must be >= 1, got {self.grasp_miss_close_steps}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able knobs (recorded with every episode)."""
        return asdict(self)


QUALITY_PRESETS: Final[dict[str, ExpertQuality]] = {
    "expert": ExpertQuality(name="expert"),
    "slow": ExpertQuality(name="slow", speed=0.45, hesitation=0.03),
    "clumsy": ExpertQuality(name="clumsy", speed=0.8, action_noise=0.3, hesitation=0.04),
    "mistake": ExpertQuality(name="mistake", speed=0.9, action_noise=0.05, mistake=0.7),
    "partial": ExpertQuality(name="partial", speed=0.9, abandon_stage=-1),
    "failed": ExpertQuality(name="failed", speed=0.9, action_noise=0.1, abandon_stage=-2),
    "dart": ExpertQuality(name="dart", perturbation=0.05),
    "grasp_miss": ExpertQuality(name="grasp_miss", grasp_miss=0.5),
}
"""Named quality presets; ``"mixed"`` draws one per episode (see :func:`resolve_quality`).

``"dart"`` is the full-speed expert with executed-only pushes (on average one every 20 steps), and
``"grasp_miss"`` the full-speed expert whose grasp attempts miss half of the time and are retried:
demonstrations for behaviour cloning, not part of ``"mixed"``.
"""

MIXED_WEIGHTS: Final[dict[str, float]] = {
    "expert": 0.35,
    "slow": 0.15,
    "clumsy": 0.15,
    "mistake": 0.15,
    "partial": 0.1,
    "failed": 0.1,
}


def resolve_quality(quality: str | ExpertQuality, rng: np.random.Generator) -> ExpertQuality:
    """Turn a preset name (or ``"mixed"``) into knobs for one episode.

    Raises:
        ValueError: For an unknown preset name; the message lists the valid ones.
    """
    if isinstance(quality, ExpertQuality):
        return quality
    if quality == "mixed":
        names = list(MIXED_WEIGHTS)
        probs = np.array([MIXED_WEIGHTS[n] for n in names])
        return QUALITY_PRESETS[names[int(rng.choice(len(names), p=probs / probs.sum()))]]
    if quality not in QUALITY_PRESETS:
        raise ValueError(
            f"unknown expert quality {quality!r}; expected one of {[*QUALITY_PRESETS, 'mixed']}"
        )
    return QUALITY_PRESETS[quality]


@dataclass
class ArmTarget:
    """Where one arm should go. Positions may be callables, re-evaluated every step.

    Args:
        pos: TCP position target (world frame) or a callable returning it.
        rpy: Orientation target relative to the home pose (``None``: keep the current one).
        gripper: Gripper command, -1 open, +1 closed (``None``: keep the current one).
    """

    pos: Vec | None = None
    rpy: Vec | None = None
    gripper: float | None = None


@dataclass
class Waypoint:
    """One step of a plan.

    Args:
        primitive: Primitive label of the frames spent on this waypoint.
        targets: Per-arm targets; arms not named keep their commanded pose.
        tol: Position tolerance (metres) for "reached".
        rot_tol: Orientation tolerance (radians).
        hold: Steps to stay once reached (e.g. to let fingers close).
        until: Optional extra completion condition, checked after reaching.
        max_steps: Steps after which the waypoint is abandoned (a stuck motion never deadlocks).
        grasp: The waypoint closes grippers on an object (``until`` says when it is held); the
            waypoint before it is the descent. Marks where :attr:`ExpertQuality.grasp_miss`
            can make a grasp miss.
        executed: A deliberate deviation: the waypoint the arms really track while this one's
            actions are recorded, as a perturbation push's are (e.g. a wiping lane executed with
            the eraser lifted off the board, so that it leaves ink behind). Its targets decide
            when the waypoint is reached; while it runs, perturbation pushes do not (a missed
            grasp still does: deviations and misses act on different waypoints).
    """

    primitive: str
    targets: dict[str, ArmTarget] = field(default_factory=dict)
    tol: float = 0.008
    rot_tol: float = 0.05
    hold: int = 0
    until: Callable[[], bool] | None = None
    max_steps: int = 80
    grasp: bool = False
    executed: Waypoint | None = None


@dataclass(frozen=True, slots=True)
class ExpertStep:
    """What the expert does this step.

    Attributes:
        action: The expert's action: what a dataset records and a policy should learn.
        primitive: Primitive label of the step.
        gave_up: Whether the expert has abandoned the task.
        executed: The action to send to the env when it differs from ``action`` (a
            perturbation push, see :attr:`ExpertQuality.perturbation`); ``None`` otherwise.
    """

    action: np.ndarray
    primitive: int
    gave_up: bool
    executed: np.ndarray | None = None

    @property
    def env_action(self) -> np.ndarray:
        """What to step the env with: ``executed`` if set, else ``action``."""
        return self.action if self.executed is None else self.executed


class ScriptedExpert(ABC):
    """Executes a task-specific plan of waypoints with the quality knobs applied.

    Subclasses implement :meth:`plan_stage` (and may override :meth:`mistake_waypoints`). A
    subclass with more than one way of doing its task lists them in :attr:`OPTIONS`.

    Args:
        quality: A preset name, ``"mixed"`` (drawn per episode) or explicit knobs.
        **options: Strategy options of this task's expert (see :attr:`OPTIONS`).

    Raises:
        ValueError: An unknown quality preset, option or option value.
    """

    #: Strategy options: name -> allowed values, the first of them the default. Unlike the
    #: quality knobs, an option changes *how* the task is done, not how well.
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, quality: str | ExpertQuality = "expert", **options: str) -> None:
        if isinstance(quality, str):
            resolve_quality(quality, np.random.default_rng(0))  # validate the name early
        self.options = self.resolve_options(options)
        self._quality_spec = quality
        self.quality = ExpertQuality()
        self.env: TaskEnv | None = None
        self._rng = np.random.default_rng(0)
        self._plan: list[Waypoint] = []
        self._plan_stage = -1
        self._wp_steps = 0
        self._wp_held = 0
        self._pause = 0
        self._stage_len = 0
        self._stage_done_wps = 0
        self._abandon_stage: int | None = None
        self._abandon_after = 0
        self._gave_up = False
        self._mistake_stages: set[int] = set()
        self._pending_mistake = False
        self._abandon_frac = 0.0
        self._idle_target: dict[str, np.ndarray] = {}
        self._push = np.zeros(14)
        self._push_left = 0
        self._miss_drawn_for: Waypoint | None = None  # the descent a miss was last drawn for
        self._missed_descent: Waypoint | None = None  # what is executed instead, while it runs
        self._miss_arms: tuple[str, ...] = ()  # the arms whose grasp misses
        self._miss_close_left = 0

    # ------------------------------------------------------------------ public API
    @classmethod
    def resolve_options(cls, options: dict[str, str]) -> dict[str, str]:
        """``options`` checked against :attr:`OPTIONS`, with the defaults filled in.

        Raises:
            ValueError: An option this expert does not have, or a value it does not allow.
        """
        for name, value in options.items():
            if name not in cls.OPTIONS:
                known = ", ".join(cls.OPTIONS) or "none"
                raise ValueError(f"{cls.__name__} has no option {name!r} (its options: {known})")
            if value not in cls.OPTIONS[name]:
                raise ValueError(
                    f"{cls.__name__} option {name}={value!r} is not one of {cls.OPTIONS[name]}"
                )
        return {name: options.get(name, values[0]) for name, values in cls.OPTIONS.items()}

    def reset(self, env: TaskEnv, seed: int | None = None) -> None:
        """Prepare for an episode of ``env`` (already reset)."""
        self.env = env
        self._rng = np.random.default_rng(seed)
        self.quality = resolve_quality(self._quality_spec, self._rng)
        n = env.stage_machine.n_stages
        q = self.quality
        self._abandon_stage = None
        if q.abandon_stage is not None:
            if q.abandon_stage == -1:
                self._abandon_stage = int(self._rng.integers(1, n)) if n > 1 else 0
            elif q.abandon_stage == -2:
                self._abandon_stage = 0
            else:
                self._abandon_stage = int(np.clip(q.abandon_stage, 0, n - 1))
        frac = q.abandon_fraction
        self._abandon_frac = float(self._rng.uniform(0.0, 0.6) if frac is None else frac)
        self._mistake_stages = {k for k in range(n) if self._rng.random() < q.mistake}
        self._plan, self._plan_stage = [], -1
        self._pause = 0
        self._gave_up = False
        self._push_left = 0
        self._end_miss()

    @property
    def gave_up(self) -> bool:
        """Whether the expert has abandoned the task this episode."""
        return self._gave_up

    def act(self) -> ExpertStep:
        """Next action (normalised, (14,)) and its primitive label."""
        env = self._require_env()
        q = self.quality
        if self._gave_up:
            return ExpertStep(self._idle_action(), DUMMY, True)
        if self._pause > 0:
            self._pause -= 1
            return ExpertStep(self._hold_action(), DUMMY, False)
        if q.hesitation and self._rng.random() < q.hesitation:
            lo, hi = q.hesitation_steps
            self._pause = int(self._rng.integers(lo, hi + 1)) - 1
            return ExpertStep(self._hold_action(), DUMMY, False)

        stage = env.status.stage
        if not self._plan or (
            stage != self._plan_stage and not self.keeps_plan(self._plan_stage, stage)
        ):
            self._start_stage(stage)
        # The stage being carried out: the task's, unless a kept plan runs past it.
        if self._should_abandon(self._plan_stage):
            self._gave_up = True
            self._idle_target = {
                a: self._commanded_pos(a) + np.array([-0.08, 0.0, 0.1]) for a in ARMS
            }
            return ExpertStep(self._idle_action(), DUMMY, True)

        wp = self._plan[0]
        self._maybe_miss(wp)
        action = self._track(wp)
        deviation = wp.executed
        deviated = None if deviation is None else self._track(deviation)
        missed = self._missed_grasp(wp)
        if missed is None:
            if self._reached(wp if deviation is None else deviation):
                self._wp_held += 1
                if self._wp_held > wp.hold and (wp.until is None or wp.until()):
                    self._advance()
            self._wp_steps += 1
            if self._wp_steps >= wp.max_steps and self._plan and self._plan[0] is wp:
                self._advance()
        if q.action_noise:
            noise = self._rng.normal(0.0, q.action_noise, action.shape)
            noise[6::7] = 0.0  # gripper commands stay clean: noise there is a different mistake
            action = np.clip(action + noise, -1.0, 1.0)
        action = action.astype(np.float32)
        executed = self._pushed(action, wp) if missed is None else missed
        if deviated is not None and missed is None:
            executed = np.clip(deviated, -1.0, 1.0).astype(np.float32)
        return ExpertStep(action, primitive_index(wp.primitive), False, executed)

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def plan_stage(self, stage: int) -> list[Waypoint]:
        """Waypoints that accomplish ``stage`` from the current state."""

    def keeps_plan(self, planned: int, stage: int) -> bool:
        """Whether to go on with the plan for stage ``planned`` now that the task is at ``stage``.

        Called while that plan still has waypoints. The default, ``False``, re-plans as soon as
        the stage changes (a stage finished early, or one undone): the expert is closed-loop over
        stages. An expert that finishes a stage's plan past the moment the task counts the stage
        done overrides this; once the plan is done it plans the task's stage then.
        """
        del planned, stage
        return False

    def mistake_waypoints(self, stage: int) -> list[Waypoint]:
        """A mistake to insert into ``stage``'s plan (default: a wrong detour, or a drop).

        The expert is closed-loop over stages, so after a drop the stage machine falls back and
        the expert re-plans the grasp: that is the recovery.
        """
        env = self._require_env()
        arm = self._busy_arm()
        if env.robot.holding(arm) >= 0 or env.robot.holding_cloth(arm):
            pos = self._commanded_pos(arm)
            return [
                Waypoint("dummy", {arm: ArmTarget(pos=pos, gripper=-1.0)}, hold=3, max_steps=6),
                Waypoint("dummy", {arm: ArmTarget(pos=pos + np.array([0, 0, 0.06]))}, max_steps=10),
            ]
        offset = self._rng.uniform(-1, 1, 3) * np.array([0.12, 0.12, 0.04])
        offset[2] = abs(offset[2]) + 0.03
        wrong = np.clip(self._commanded_pos(arm) + offset, [-0.3, -0.4, 0.05], [0.4, 0.4, 0.4])
        primitive = env.stages[stage].primitive
        return [Waypoint(primitive, {arm: ArmTarget(pos=wrong)}, tol=0.02, max_steps=15)]

    def _busy_arm(self) -> str:
        """The arm the current plan moves (mistakes are made with it)."""
        for wp in self._plan:
            if wp.targets:
                return next(iter(wp.targets))
        return "right"

    def _require_env(self) -> TaskEnv:
        if self.env is None:
            raise RuntimeError("call expert.reset(env) before expert.act()")
        return self.env

    def _commanded_pos(self, arm: str) -> np.ndarray:
        return self._require_env().robot.arms[arm].target_pos.copy()

    def _commanded_rpy(self, arm: str) -> np.ndarray:
        return self._require_env().robot.arms[arm].target_rpy.copy()

    # ------------------------------------------------------------------ internals
    def _start_stage(self, stage: int) -> None:
        self._end_miss()
        plan = self.plan_stage(stage)
        if stage in self._mistake_stages and plan:
            self._mistake_stages.discard(stage)  # one mistake per chosen stage
            cut = int(self._rng.integers(1, len(plan) + 1)) if len(plan) > 1 else 1
            self._plan = plan[:cut]
            self._pending_mistake = True  # see _advance
        else:
            self._plan = plan
            self._pending_mistake = False
        self._plan_stage = stage
        self._stage_len = len(plan)
        self._stage_done_wps = 0
        self._wp_steps = self._wp_held = 0

    def _advance(self) -> None:
        self._plan.pop(0)
        self._stage_done_wps += 1
        self._wp_steps = self._wp_held = 0
        if not self._plan and self._pending_mistake:
            # The truncated plan is done: make the mistake now. Once its waypoints are done the
            # plan is empty again and act() re-plans the same stage from the new state, which is
            # the recovery.
            self._pending_mistake = False
            self._plan = self.mistake_waypoints(self._plan_stage)

    def _should_abandon(self, stage: int) -> bool:
        if self._abandon_stage is None or stage < self._abandon_stage:
            return False
        if stage > self._abandon_stage:
            return True
        return self._stage_done_wps >= self._abandon_frac * max(self._stage_len, 1)

    def _track(self, wp: Waypoint) -> np.ndarray:
        env = self._require_env()
        lim = env.robot.limits
        action = np.zeros(14)
        for i, arm in enumerate(ARMS):
            st = env.robot.arms[arm]
            tgt = wp.targets.get(arm)
            action[7 * i + 6] = st.gripper_cmd
            if tgt is None:
                continue
            if tgt.pos is not None:
                delta = _value(tgt.pos) - st.target_pos
                step = delta / lim.max_translation
                action[7 * i : 7 * i + 3] = _limit(step, self.quality.speed)
            if tgt.rpy is not None:
                drpy = _wrap(_value(tgt.rpy) - st.target_rpy)
                action[7 * i + 3 : 7 * i + 6] = _limit(drpy / lim.max_rotation, self.quality.speed)
            if tgt.gripper is not None:
                action[7 * i + 6] = tgt.gripper
        return action

    def _reached(self, wp: Waypoint) -> bool:
        env = self._require_env()
        for arm, tgt in wp.targets.items():
            st = env.robot.arms[arm]
            if tgt.pos is not None and np.linalg.norm(_value(tgt.pos) - st.target_pos) > wp.tol:
                return False
            if (
                tgt.rpy is not None
                and np.max(np.abs(_wrap(_value(tgt.rpy) - st.target_rpy))) > wp.rot_tol
            ):
                return False
        return True

    def _pushed(self, action: np.ndarray, wp: Waypoint) -> np.ndarray | None:
        """``action`` plus the current push (``None`` when no push is under way).

        Only arms that ``wp`` moves are pushed, and rotations only where it sets an orientation:
        an arm without a target keeps its commanded pose, so a push there would never be undone.
        """
        q = self.quality
        if not q.perturbation:
            return None  # draws nothing: episodes without pushes keep their random streams
        if self._push_left == 0 and self._rng.random() < q.perturbation:
            lo, hi = q.perturbation_steps
            self._push_left = int(self._rng.integers(lo, hi + 1))
            self._push = np.zeros(14)
            for i, arm in enumerate(ARMS):
                tgt = wp.targets.get(arm)
                if tgt is None or tgt.pos is None:
                    continue
                direction = self._rng.normal(size=3)
                norm = max(float(np.linalg.norm(direction)), 1e-9)
                self._push[7 * i : 7 * i + 3] = q.perturbation_scale * direction / norm
                if tgt.rpy is not None:
                    self._push[7 * i + 3 : 7 * i + 6] = self._rng.normal(
                        0.0, q.perturbation_scale / 2, 3
                    )
        if self._push_left == 0:
            return None
        self._push_left -= 1
        return np.clip(action + self._push, -1.0, 1.0).astype(np.float32)

    def _maybe_miss(self, wp: Waypoint) -> None:
        """Draw, once per descent onto a grasp, whether this attempt misses."""
        q = self.quality
        if not q.grasp_miss or wp is self._miss_drawn_for or self._miss_close_left:
            return  # draws nothing without the knob: other episodes keep their random streams
        if len(self._plan) < 2 or not self._plan[1].grasp:
            return
        self._miss_drawn_for = wp
        if self._rng.random() >= q.grasp_miss:
            return
        env = self._require_env()
        lo, hi = q.grasp_miss_offset
        targets, arms = dict(wp.targets), []
        for arm, closing in self._plan[1].targets.items():
            tgt = wp.targets.get(arm)
            if closing.gripper is None or tgt is None or tgt.pos is None:
                continue
            # Along the fingers' closing axis: one finger lands on the object, the other beside
            # it. (Off along the other axis the object would still be between the fingers.)
            axis = env.robot.tcp_mat(env.data, arm)[:, 1] * np.array([1.0, 1.0, 0.0])
            axis /= max(float(np.linalg.norm(axis)), 1e-9)
            side = 1.0 if self._rng.random() < 0.5 else -1.0
            offset = side * self._rng.uniform(lo, hi) * axis
            # A fixed point: a target that followed the object would chase it once a finger
            # lands on it and pushes it along.
            targets[arm] = replace(tgt, pos=_value(tgt.pos) + offset)
            arms.append(arm)
        if arms:
            self._missed_descent, self._miss_arms = replace(wp, targets=targets), tuple(arms)

    def _missed_grasp(self, wp: Waypoint) -> np.ndarray | None:
        """The executed action of a missed grasp under way (``None`` when none is).

        First the descent ``wp`` is tracked to its missed target; once there the fingers close
        for a few steps without moving; then the stage is re-planned from the state the miss left
        (usually: open, rise, grasp again). Meanwhile the recorded action is the expert's own.
        """
        if self._miss_close_left:
            self._miss_close_left -= 1
            action = self._hold_action()
            for arm in self._miss_arms:
                action[7 * ARMS.index(arm) + 6] = 1.0
            if not self._miss_close_left:
                self._end_miss()
                self._plan = []  # act() re-plans the stage from here
            return action
        missed = self._missed_descent
        if missed is None or wp is not self._miss_drawn_for:
            return None
        action = self._track(missed)
        self._wp_steps += 1
        if self._reached(missed) or self._wp_steps >= wp.max_steps:
            # Beside the object: close there. The recorded actions come from a fresh plan of
            # the stage, i.e. what the expert does from this (missed) state.
            self._miss_close_left = self.quality.grasp_miss_close_steps
            self._plan = self.plan_stage(self._plan_stage)
            self._wp_steps = self._wp_held = 0
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _end_miss(self) -> None:
        self._missed_descent = None
        self._miss_arms = ()
        self._miss_close_left = 0
        self._miss_drawn_for = None

    def _hold_action(self) -> np.ndarray:
        env = self._require_env()
        action = np.zeros(14, dtype=np.float32)
        for i, arm in enumerate(ARMS):
            action[7 * i + 6] = env.robot.arms[arm].gripper_cmd
        return action

    def _idle_action(self) -> np.ndarray:
        """Drift back and hover: what an operator sees when a policy stalls.

        The gripper keeps its command: letting go of a held object could finish the task by
        accident (an eraser dropped above its tray), which a stalled policy does not do.
        """
        env = self._require_env()
        action = self._hold_action()
        for i, arm in enumerate(ARMS):
            tgt = self._idle_target.get(arm)
            if tgt is None:
                continue
            delta = (tgt - env.robot.arms[arm].target_pos) / env.robot.limits.max_translation
            action[7 * i : 7 * i + 3] = _limit(delta, 0.4) + self._rng.normal(0, 0.05, 3)
        return np.clip(action, -1, 1).astype(np.float32)


def _value(v: Vec) -> np.ndarray:
    return np.asarray(v() if callable(v) else v, dtype=np.float64)


def _limit(step: np.ndarray, speed: float) -> np.ndarray:
    """Scale a desired normalised step so its largest component is at most ``speed``."""
    peak = float(np.max(np.abs(step))) if step.size else 0.0
    return step * (speed / peak) if peak > speed else step


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def with_name(quality: ExpertQuality, name: str) -> ExpertQuality:
    """A copy of ``quality`` carrying another preset name."""
    return replace(quality, name=name)
