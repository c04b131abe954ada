"""``TaskEnv``: the Gymnasium base class of every benchmark task.

It owns the observation / action / info contract (DESIGN.md "Robot, observations, actions"):

* observation ``Dict``: ``top``, ``left_wrist``, ``right_wrist`` (uint8 HxWx3) and ``state``
  (float32 (14,)) in ``obs_mode="rgb"``; ``state`` and ``env_state`` (privileged object/cloth
  state) in ``obs_mode="state"``;
* action ``Box(-1, 1, (14,))``: per arm [dxyz, drpy, gripper];
* control at 10 Hz, sparse reward 1.0 on the success step, success terminates;
* ``info`` every step: ``is_success``, ``primitive``, ``stage``, ``progress``, ``sparse_reward``,
  ``task``.

A task subclass describes its scene (:meth:`_build_scene`), registers what can be grasped
(:meth:`_configure`), randomises an episode (:meth:`_initialize_episode`), reports its stage
from simulator state (:meth:`_evaluate`) and exposes privileged state (:meth:`_env_state`).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Final

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from sarm2_gym.envs.core.embodiment import STATE_DIM, BimanualRobot, ControlLimits
from sarm2_gym.envs.core.primitives import primitive_name
from sarm2_gym.envs.core.rendering import MultiCameraRenderer
from sarm2_gym.envs.core.scene import PhysicsOptions, SceneBuilder
from sarm2_gym.envs.core.stages import Stage, StageMachine, TaskStatus

__all__ = ["CAMERAS", "CONTROL_HZ", "OBS_MODES", "TaskEnv"]

CONTROL_HZ: Final[int] = 10
CAMERAS: Final[tuple[str, ...]] = ("top", "left_wrist", "right_wrist")
OBS_MODES: Final[tuple[str, ...]] = ("rgb", "state")
ACTION_DIM: Final[int] = 14
STATE_BOUND: Final[float] = 10.0


class TaskEnv(gym.Env[dict[str, np.ndarray], np.ndarray], ABC):
    """Base class of the SARM2 benchmark tasks (see the module docstring for the contract).

    Args:
        obs_mode: ``"rgb"`` (three camera images + robot state) or ``"state"`` (robot state +
            privileged object state, no rendering).
        image_size: Side of the square camera images in pixels.
        render_mode: ``None`` or ``"rgb_array"``.
        render_size: Side of the frame returned by :meth:`render`.
        render_camera: Camera shown by :meth:`render`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}  # noqa: RUF012

    # ---- described by each task subclass
    name: ClassVar[str]
    instruction: ClassVar[str]
    stages: ClassVar[tuple[Stage, ...]]
    physics: ClassVar[PhysicsOptions] = PhysicsOptions()
    env_state_dim: ClassVar[int]
    settle_steps: ClassVar[int] = 40  # physics steps after placing objects, before the first obs
    control_limits: ClassVar[ControlLimits] = ControlLimits()

    def __init__(
        self,
        obs_mode: str = "rgb",
        image_size: int = 96,
        render_mode: str | None = None,
        render_size: int = 256,
        render_camera: str = "top",
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if not (isinstance(image_size, int) and 16 <= image_size <= 512):
            raise ValueError(f"image_size must be an int in [16, 512], got {image_size!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if render_camera not in CAMERAS:
            raise ValueError(f"render_camera must be one of {CAMERAS}, got {render_camera!r}")
        self.obs_mode = obs_mode
        self.image_size = image_size
        self.render_mode = render_mode
        self.render_size = render_size
        self.render_camera = render_camera

        builder = SceneBuilder(name=self.name, physics=self.physics)
        self._build_scene(builder)
        self.model = mujoco.MjModel.from_xml_string(builder.to_xml())
        self.data = mujoco.MjData(self.model)
        self.robot = BimanualRobot(self.model, self.control_limits)
        self._configure()
        # Grasping re-targets equality constraints in the model; keep pristine copies for reset.
        self._eq_obj2id0 = self.model.eq_obj2id.copy()
        self._eq_data0 = self.model.eq_data.copy()

        self.stage_machine = StageMachine(self.stages)
        self.n_substeps = max(1, round(1.0 / CONTROL_HZ / self.model.opt.timestep))
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.observation_space = self._make_observation_space()  # type: ignore[assignment]
        self._obs_renderer: MultiCameraRenderer | None = None
        self._view_renderer: MultiCameraRenderer | None = None
        self._status = TaskStatus(0, 0.0, False)
        self._elapsed = 0

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _build_scene(self, scene: SceneBuilder) -> None:
        """Add the task's objects to ``scene``."""

    def _configure(self) -> None:
        """Look up ids in the compiled model and register graspable bodies / cloth."""

    @abstractmethod
    def _initialize_episode(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        """Randomise object poses in ``self.data`` for a new episode (robot already at home)."""

    def _after_step(self) -> None:
        """Update task state that physics does not hold (e.g. erased ink) after a control step."""

    @abstractmethod
    def _evaluate(self) -> TaskStatus:
        """Stage, within-stage progress and success from the current simulator state."""

    @abstractmethod
    def _env_state(self) -> np.ndarray:
        """Privileged low-dimensional object state, shape ``(env_state_dim,)``."""

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start a new episode; with ``seed`` the initial state is reproducible."""
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.model.eq_obj2id[:] = self._eq_obj2id0
        self.model.eq_data[:] = self._eq_data0
        self.robot.reset(self.data)
        self._initialize_episode(self.np_random, dict(options or {}))
        mujoco.mj_forward(self.model, self.data)
        for _ in range(self.settle_steps):
            mujoco.mj_step(self.model, self.data)
        self._warnings0 = self._instability_count()
        self._elapsed = 0
        self._status = self._evaluate()
        return self._get_obs(), self._info(self._status, 0.0)

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Advance one control period (0.1 s) under ``action``."""
        act = self._validate_action(action)
        self.robot.apply_action(self.data, act)
        for k in range(self.n_substeps):
            self.robot.interpolate(self.data, (k + 1) / self.n_substeps)
            mujoco.mj_step(self.model, self.data)
        self.robot.update_grasps(self.data)
        self._after_step()
        self._elapsed += 1
        self._status = self._evaluate()
        reward = 1.0 if self._status.success else 0.0
        info = self._info(self._status, reward)
        if self._instability_count() > self._warnings0:
            # MuJoCo has already reset the state it could not integrate: the episode is over,
            # through no fault of the policy, so it is truncated rather than failed.
            warnings.warn(
                f"{self.name}: simulation diverged at step {self._elapsed} (MuJoCo BADQACC); "
                "episode truncated",
                RuntimeWarning,
                stacklevel=2,
            )
            info["physics_instability"] = True
            return self._get_obs(), 0.0, False, True, info
        return self._get_obs(), reward, self._status.success, False, info

    def render(self) -> np.ndarray | None:
        """The ``render_camera`` view at ``render_size`` (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array":
            return None
        if self._view_renderer is None:
            self._view_renderer = MultiCameraRenderer(
                self.model, self.render_size, self.render_size
            )
        return self._view_renderer.render(self.data, (self.render_camera,))[self.render_camera]

    def close(self) -> None:
        """Release renderers."""
        for r in (self._obs_renderer, self._view_renderer):
            if r is not None:
                r.close()
        self._obs_renderer = self._view_renderer = None

    # ------------------------------------------------------------------ properties
    @property
    def status(self) -> TaskStatus:
        """The task status after the last reset/step."""
        return self._status

    @property
    def progress(self) -> float:
        """Privileged task progress in [0, 1] after the last reset/step."""
        return self.stage_machine.progress(self._status)

    @property
    def elapsed_steps(self) -> int:
        """Control steps since reset."""
        return self._elapsed

    def privileged_state(self) -> np.ndarray:
        """The task's privileged object state (``env_state``), float32, whatever the obs mode."""
        return np.clip(self._env_state(), -STATE_BOUND, STATE_BOUND).astype(np.float32)

    def render_cameras(self, size: int | None = None) -> dict[str, np.ndarray]:
        """Render all three cameras now (at ``size``, default the observation size)."""
        size = size or self.image_size
        if size == self.image_size:
            if self._obs_renderer is None:
                self._obs_renderer = MultiCameraRenderer(self.model, size, size)
            return self._obs_renderer.render(self.data, CAMERAS)
        renderer = MultiCameraRenderer(self.model, size, size)
        try:
            return renderer.render(self.data, CAMERAS)
        finally:
            renderer.close()

    # ------------------------------------------------------------------ internals
    def _make_observation_space(self) -> spaces.Dict:
        # Finite bounds: positions are metres on a table, angles radians, the rest fractions.
        state = spaces.Box(-STATE_BOUND, STATE_BOUND, (STATE_DIM,), np.float32)
        if self.obs_mode == "state":
            env_state = spaces.Box(-STATE_BOUND, STATE_BOUND, (self.env_state_dim,), np.float32)
            return spaces.Dict({"state": state, "env_state": env_state})
        img = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        return spaces.Dict({**dict.fromkeys(CAMERAS, img), "state": state})

    def _get_obs(self) -> dict[str, np.ndarray]:
        state = self.robot.state(self.data)
        if self.obs_mode == "state":
            return {"state": state, "env_state": self.privileged_state()}
        return {**self.render_cameras(), "state": state}

    def _info(self, status: TaskStatus, reward: float) -> dict[str, Any]:
        primitive = self.stage_machine.primitive(status.stage)
        return {
            "is_success": bool(status.success),
            "primitive": primitive,
            "primitive_name": primitive_name(primitive),
            "stage": int(status.stage),
            "progress": self.stage_machine.progress(status),
            "sparse_reward": float(reward),
            "task": self.instruction,
        }

    def _validate_action(self, action: np.ndarray) -> np.ndarray:
        act = np.asarray(action)
        if act.shape != (ACTION_DIM,):
            raise ValueError(
                f"{self.name}: action must have shape ({ACTION_DIM},) = per arm [dxyz, drpy, "
                f"gripper], got shape {act.shape}"
            )
        if not np.issubdtype(act.dtype, np.number):
            raise ValueError(f"{self.name}: action must be numeric, got dtype {act.dtype}")
        if not np.all(np.isfinite(act)):
            raise ValueError(f"{self.name}: action contains NaN or inf: {act}")
        return np.clip(act.astype(np.float64), -1.0, 1.0)

    def _instability_count(self) -> int:
        return int(self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number)

    # ------------------------------------------------------------------ helpers for tasks
    def body_id(self, name: str) -> int:
        """Id of a body by name (raises ``ValueError`` if absent)."""
        idx = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if idx < 0:
            raise ValueError(f"{self.name}: no body named {name!r}")
        return int(idx)

    def set_free_body_pose(self, body: int, pos: np.ndarray, quat: np.ndarray) -> None:
        """Place a body with a free joint at ``pos``/``quat`` and zero its velocity."""
        jnt = int(self.model.body_jntadr[body])
        if jnt < 0 or self.model.jnt_type[jnt] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"{self.name}: body {body} has no free joint")
        qadr, vadr = int(self.model.jnt_qposadr[jnt]), int(self.model.jnt_dofadr[jnt])
        self.data.qpos[qadr : qadr + 3] = pos
        self.data.qpos[qadr + 3 : qadr + 7] = quat
        self.data.qvel[vadr : vadr + 6] = 0.0
