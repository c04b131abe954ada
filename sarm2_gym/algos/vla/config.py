"""``TinyVLAConfig``: sizes of the CPU-sized vision-language-action policy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from sarm2_gym.data.episode import CAMERA_NAMES

LIMITS_WIDTH: Final[int] = 14  # numbers in flat control limits (see algos.vla.targets)

__all__ = ["ACTION_SPACES", "IMAGE_ENCODERS", "TinyVLAConfig"]

IMAGE_ENCODERS: Final[tuple[str, ...]] = ("cnn", "efficientnet_lite0")
ACTION_SPACES: Final[tuple[str, ...]] = ("delta", "target")


@dataclass(frozen=True, slots=True, kw_only=True)
class TinyVLAConfig:
    """Architecture of :class:`~sarm2_gym.algos.vla.tiny_vla.TinyVLA`.

    Args:
        chunk_size: Actions per chunk ``H``. 10 steps = 1 s at the benchmark's 10 Hz, the same
            wall-clock span as pi0's 50-step chunks at 50 Hz.
        action_dim: Action width (14 = 2 arms x [dxyz, drpy, gripper]).
        state_dim: Robot state width.
        cameras: Camera names, in token order.
        image_encoder: ``"cnn"`` (a small spatial-softmax CNN trained with the policy, then frozen
            with it) or ``"efficientnet_lite0"`` (the frozen ImageNet backbone the reward model
            uses; per-frame features are cached during training).
        image_size: Side of the square frames the encoder sees (frames are resized to it).
        cnn_channels: Channels of the CNN's three convolutions.
        image_feature_dim: Width of a camera's feature (CNN output; 1280 for EfficientNet).
        spatial_grid: CNN encoder only: besides its keypoint token, each camera also gives the
            trunk ``spatial_grid**2`` tokens, its last feature map average-pooled to a
            ``spatial_grid x spatial_grid`` grid (0: keypoint token only). Keypoints keep one
            position per channel; the grid keeps *several* things of one kind apart (e.g. the
            ink cells left on a whiteboard), which the trunk can then attend to.
        head_cameras: Cameras whose image features (the encoder's output, before the trunk)
            the flow head also reads, beside the trunk's read-out token (default: none, the
            read-out alone). The trunk mixes all tokens into that one token, which can lose
            where an object is (a linear read-out of a BC policy's read-out token did not find
            the CleanWhiteboard tray, which the top camera's features locate; see
            ``docs/results/cw_place_probe.md``); this gives the head that camera directly.
        text_dim: Width of the frozen sentence embedding of the instruction.
        d_model: Transformer trunk width.
        n_heads: Attention heads.
        n_layers: Trunk layers.
        ff_dim: Trunk feed-forward width.
        flow_hidden: Width of the flow-matching velocity network.
        flow_layers: Residual blocks of the velocity network.
        flow_steps: Euler steps ``K`` of the sampler (pi0 and the SPIRAL preset use 10).
        flow_time_alpha: Training flow times are ``Beta(alpha, 1)`` (pi0: 1.5).
        instructions: Instructions whose embeddings the checkpoint stores.
        n_action_steps: Actions executed from each chunk before the policy plans again, the
            default of every controller that runs this policy (``None``: the whole chunk).
        action_space: What the flow head generates. ``"delta"``: the env's delta actions.
            ``"target"``: the commanded pose after each step (see
            :mod:`~sarm2_gym.algos.vla.targets`), turned back into delta actions from the
            current state when a chunk is sampled; either way the policy acts in env units.
        control_limits: ``"target"`` only: the env's control limits, flat (see
            :func:`~sarm2_gym.algos.vla.targets.limits_to_tuple`); ``sarm2 bc`` fills them in
            from the demonstrations' task.
        past_states: Past robot states the policy reads besides the current one (0: none). It
            then needs the observation entry ``"past_states"`` (the env wrapped in
            :class:`~sarm2_gym.envs.past_states.PastStates`, as
            :func:`~sarm2_gym.algos.vla.policy.wrap_env_for_policy` and every evaluation here
            do, or a benchmark env made with ``gym.make(task, past_states=n,
            past_state_stride=k)``) and sees the state's change over each lag: which way the
            arm is moving, which a single frame does not show.
        past_state_stride: Steps between those past states.
        privileged_state_dim: Width of the simulator's privileged object state the policy also
            reads through its state token (0: none). An **oracle** input for diagnostics (does
            the policy fail for what its cameras do not show?), never a deployable policy: it
            needs the observation entry ``"env_state"``
            (:class:`~sarm2_gym.envs.privileged_state.PrivilegedState`, which
            :func:`~sarm2_gym.algos.vla.policy.wrap_env_for_policy` adds), which only the
            benchmark's simulated tasks give, and demonstrations recorded there (their
            ``observation.environment_state`` column, the task's ``env_state_dim`` wide).
        demo_frame_size: Side of the frames the cloned demonstrations were recorded at, before
            they were resized to ``image_size`` (``sarm2 bc`` fills it in, a fine-tune with
            ``--init`` sets it to its own data's; ``None``: unknown, e.g. a checkpoint from
            before it was recorded). Not part of the network: an env made for the policy
            (:func:`~sarm2_gym.algos.vla.policy.render_size_for`) renders at it, since a frame
            rendered at another size and resized is not the frame it learned from.
    """

    chunk_size: int = 10
    action_dim: int = 14
    state_dim: int = 14
    cameras: tuple[str, ...] = CAMERA_NAMES
    image_encoder: str = "cnn"
    image_size: int = 64
    cnn_channels: tuple[int, int, int] = (16, 32, 32)
    image_feature_dim: int = 64
    spatial_grid: int = 0
    head_cameras: tuple[str, ...] = ()
    text_dim: int = 384
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    ff_dim: int = 256
    flow_hidden: int = 256
    flow_layers: int = 3
    flow_steps: int = 10
    flow_time_alpha: float = 1.5
    instructions: tuple[str, ...] = ()
    n_action_steps: int | None = None
    action_space: str = "delta"
    control_limits: tuple[float, ...] = ()
    past_states: int = 0
    past_state_stride: int = 1
    privileged_state_dim: int = 0
    demo_frame_size: int | None = None

    def __post_init__(self) -> None:
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(
                f"image_encoder must be one of {IMAGE_ENCODERS}, got {self.image_encoder!r}"
            )
        if self.image_encoder == "efficientnet_lite0" and self.image_feature_dim != 1280:
            raise ValueError("efficientnet_lite0 gives 1280-d features: set image_feature_dim=1280")
        for name in ("chunk_size", "action_dim", "state_dim", "d_model", "n_layers", "flow_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.spatial_grid < 0 or (self.spatial_grid and self.image_encoder != "cnn"):
            raise ValueError("spatial_grid must be >= 0 and needs image_encoder='cnn'")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if not self.cameras:
            raise ValueError("need at least one camera")
        unknown_heads = [c for c in self.head_cameras if c not in self.cameras]
        if unknown_heads or len(set(self.head_cameras)) != len(self.head_cameras):
            raise ValueError(
                f"head_cameras must be distinct names among cameras {self.cameras}, got "
                f"{self.head_cameras}"
            )
        if len(set(self.instructions)) != len(self.instructions):
            raise ValueError("instructions must be distinct")
        if self.n_action_steps is not None and not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"n_action_steps must be in [1, chunk_size={self.chunk_size}], "
                f"got {self.n_action_steps}"
            )
        if self.action_space not in ACTION_SPACES:
            raise ValueError(
                f"action_space must be one of {ACTION_SPACES}, got {self.action_space!r}"
            )
        if self.control_limits and len(self.control_limits) != LIMITS_WIDTH:
            raise ValueError(
                f"control_limits must hold {LIMITS_WIDTH} numbers, got {len(self.control_limits)}"
            )
        if self.past_states < 0 or self.past_state_stride < 1:
            raise ValueError(
                f"past_states must be >= 0 and past_state_stride >= 1, got "
                f"{self.past_states} and {self.past_state_stride}"
            )
        if self.privileged_state_dim < 0:
            raise ValueError(f"privileged_state_dim must be >= 0, got {self.privileged_state_dim}")
        if self.demo_frame_size is not None and self.demo_frame_size < 1:
            raise ValueError(f"demo_frame_size must be >= 1 or None, got {self.demo_frame_size}")
        if self.flow_time_alpha <= 0:
            raise ValueError(f"flow_time_alpha must be positive, got {self.flow_time_alpha}")

    @property
    def motion_dim(self) -> int:
        """Width of the state changes over the past-state lags (0 without past states)."""
        return self.past_states * self.state_dim

    @property
    def head_camera_dim(self) -> int:
        """Width of the head cameras' image features (0 without head cameras)."""
        return len(self.head_cameras) * self.image_feature_dim

    @property
    def feature_dim(self) -> int:
        """Width of the features the flow head and SPIRAL read.

        Read-out + head cameras' image features + state changes + normalised state.
        """
        return self.d_model + self.head_camera_dim + self.motion_dim + self.state_dim

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TinyVLAConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: Naming unknown fields.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TinyVLAConfig fields {unknown}")
        tuples = {"cameras", "cnn_channels", "head_cameras", "instructions", "control_limits"}
        kwargs: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**kwargs)
