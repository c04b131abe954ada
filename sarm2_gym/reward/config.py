"""Configuration of the SARM2 reward model.

:class:`SARM2Config` is a frozen dataclass: ``__post_init__`` only validates, and everything that
follows from the fields is a property. :meth:`SARM2Config.paper` gives the sizes of the paper's
reference code (spec §1.4-§1.7); the default is a CPU-sized model with the *same structure*
(same streams, gates, experts, routing and frame layout; narrower and shallower).

Example:
    >>> cfg = SARM2Config()
    >>> cfg.value_seq_len, cfg.max_seq_len, cfg.num_streams_value
    (7, 10, 6)
    >>> SARM2Config.paper().d_model
    512
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from sarm2_gym.data.episode import CAMERA_NAMES
from sarm2_gym.envs.core.primitives import NUM_GROUPS, NUM_PRIMITIVES
from sarm2_gym.envs.registry import TASKS

__all__ = [
    "BENCHMARK_INSTRUCTIONS",
    "ENCODER_KINDS",
    "TEXT_ENCODER_KINDS",
    "SARM2Config",
]

BENCHMARK_INSTRUCTIONS: Final[tuple[str, ...]] = tuple(task.instruction for task in TASKS)
"""The ten task instructions in dataset ``task_index`` order (the paper's, spec §1.2), taken from
the env registry so the two never drift apart."""

ENCODER_KINDS: Final[tuple[str, ...]] = ("efficientnet_lite0", "cnn", "hf")
"""Image encoders: frozen ImageNet EfficientNet-Lite0, small CNN trained end to end, and a
frozen SigLIP/CLIP vision tower loaded with transformers (``encoder_name`` = path or hub id)."""

TEXT_ENCODER_KINDS: Final[tuple[str, ...]] = ("minilm", "hf")
"""Text encoders: the packaged all-MiniLM-L6-v2 sentence encoder (384-d), or the text tower of
the SigLIP/CLIP model named by ``encoder_name``."""

_EFFICIENTNET_DIM: Final[int] = 1280


@dataclass(frozen=True, slots=True, kw_only=True)
class SARM2Config:
    """Hyper-parameters of the SARM2 reward model (stage estimator + MMoE value model).

    Args:
        camera_names: Camera streams, in model input order.
        image_size: Height and width of the input frames (square, uint8 RGB).
        state_dim: Proprioceptive state size (2 arms x [xyz, rpy, gripper]).
        encoder: Image encoder kind, one of :data:`ENCODER_KINDS`.
        encoder_name: Local path or hub id of the transformers model (``encoder="hf"`` and/or
            ``text_encoder="hf"``); empty otherwise.
        encoder_input_size: Resolution the frozen EfficientNet sees (frames are resized
            bilinearly; 128 measured somewhat better than the native 96, see
            :mod:`.encoders.efficientnet`); ``0`` keeps ``image_size``.
        cnn_out_dim: Feature size of the end-to-end CNN.
        hf_feature_dim: Image feature size of the transformers model (its
            ``get_image_features`` width); required when ``encoder="hf"``.
        text_encoder: Text encoder kind, one of :data:`TEXT_ENCODER_KINDS`.
        text_dim: Width of the stored instruction / primitive-name embeddings.
        instructions: Task instructions the model knows; their embeddings are stored in the
            checkpoint and ``task_ids`` index this tuple.
        n_obs_steps: Frames in the stage window and history frames of the value model
            (spec §1.4: 6).
        frame_gap: Control steps between history frames. Paper: 30 frames at 30 fps = 1 s;
            our envs run at 10 Hz, so the default 5 = 0.5 s.
        max_rewind: Most rewind frames appended in training (spec §1.7: 3).
        rewind_prob: Probability of rewind augmentation when it is allowed (spec §1.7: 0.8).
        d_model: Transformer width of both transformers.
        n_heads: Attention heads.
        ffn_mult: Feed-forward width as a multiple of ``d_model``.
        dropout: Dropout of transformers, gates and experts.
        stage_layers: Layers of the stage estimator (spec §1.5: 4).
        value_layers: Layers of the value transformer (spec §1.6: 6).
        stage_estimator: Use the stage estimator (spec §1.5). ``False`` is the "without stage
            estimator" ablation: no primitive is predicted, the primitive stream carries the
            constant ``dummy`` embedding, and the head has a single gate (``num_gates=1``).
        num_gates: MMoE gates: ``NUM_GROUPS`` (one per primitive group) or 1 (single-gate
            ablation).
        num_experts: Shared experts (spec §1.6: 10).
        top_k: Experts each token is routed to (spec §1.6: 2).
        expert_hidden: Hidden widths of each expert MLP (spec: 3 x 256).
        gate_hidden: Hidden width of each gate MLP (spec: 256).
        lambda_bal: Weight of the load-balance loss (spec §1.6: 2.5).
        lambda_imp: Weight of the importance loss (0.1).
        lambda_ent: Weight of the gate-entropy bonus (0.5).
        alpha_aux: Weight of the routing auxiliary loss in the value loss (spec §1.7: 0.2).
        stage_loss_weight: Weight of primitive + group cross-entropy in joint fine-tuning (0.25).
        group_loss_weight_pretrain: Weight of the group cross-entropy during stage pretraining
            (spec §1.5: 0.0, the group head is not trained there).
        finetune_stage: Joint fine-tuning of the stage estimator with the value model; the
            value model then sees the soft primitive embedding ``softmax(logits) @ E``
            (spec §1.7), else the hard ``E[argmax]``.
        stage_lr: Stage pretraining learning rate (spec §1.5: 2.5e-5).
        stage_weight_decay: Stage pretraining AdamW weight decay (0.01).
        stage_steps: Stage pretraining steps (16k).
        stage_cosine_steps: Length of the stage cosine schedule after warmup (80k - 1k).
        value_lr: Joint training learning rate (spec §1.7: 5e-5).
        value_weight_decay: Joint training AdamW weight decay (5e-3).
        value_steps: Joint training steps (30k).
        value_cosine_steps: Length of the joint cosine schedule after warmup (30k - 1k).
        warmup_steps: Linear warmup steps of both phases (1000).
        warmup_start_lr: Learning rate at the start of warmup (1e-6).
        adam_betas: AdamW betas (0.9, 0.95).
        adam_eps: AdamW epsilon (1e-8).
        batch_size: Training batch size (64).
        grad_clip: Gradient-norm clip (1.0).
        val_fraction: Fraction of episodes held out for validation (0.1).
        seed: Training seed (42).
    """

    camera_names: tuple[str, ...] = CAMERA_NAMES
    image_size: int = 96
    state_dim: int = 14
    encoder: str = "efficientnet_lite0"
    encoder_name: str = ""
    encoder_input_size: int = 128
    cnn_out_dim: int = 256
    hf_feature_dim: int = 0
    text_encoder: str = "minilm"
    text_dim: int = 384
    instructions: tuple[str, ...] = BENCHMARK_INSTRUCTIONS

    n_obs_steps: int = 6
    frame_gap: int = 5
    max_rewind: int = 3
    rewind_prob: float = 0.8

    d_model: int = 128
    n_heads: int = 4
    ffn_mult: int = 4
    dropout: float = 0.1
    stage_layers: int = 2
    value_layers: int = 3

    stage_estimator: bool = True
    num_gates: int = NUM_GROUPS
    num_experts: int = 10
    top_k: int = 2
    expert_hidden: tuple[int, ...] = (64, 64, 64)
    gate_hidden: int = 64

    lambda_bal: float = 2.5
    lambda_imp: float = 0.1
    lambda_ent: float = 0.5
    alpha_aux: float = 0.2
    stage_loss_weight: float = 0.25
    group_loss_weight_pretrain: float = 0.0
    finetune_stage: bool = True

    stage_lr: float = 3e-4
    stage_weight_decay: float = 0.01
    stage_steps: int = 2000
    stage_cosine_steps: int = 1900
    value_lr: float = 3e-4
    value_weight_decay: float = 5e-3
    value_steps: int = 6000
    value_cosine_steps: int = 5900
    warmup_steps: int = 100
    warmup_start_lr: float = 1e-6
    adam_betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1e-8
    batch_size: int = 64
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    seed: int = 42

    _POSITIVE_INTS: ClassVar[tuple[str, ...]] = (
        "image_size",
        "state_dim",
        "cnn_out_dim",
        "text_dim",
        "n_obs_steps",
        "frame_gap",
        "d_model",
        "n_heads",
        "ffn_mult",
        "stage_layers",
        "value_layers",
        "num_experts",
        "top_k",
        "gate_hidden",
        "stage_steps",
        "value_steps",
        "batch_size",
    )
    _NON_NEGATIVE: ClassVar[tuple[str, ...]] = (
        "encoder_input_size",
        "hf_feature_dim",
        "max_rewind",
        "lambda_bal",
        "lambda_imp",
        "lambda_ent",
        "alpha_aux",
        "stage_loss_weight",
        "group_loss_weight_pretrain",
        "stage_lr",
        "stage_weight_decay",
        "stage_cosine_steps",
        "value_lr",
        "value_weight_decay",
        "value_cosine_steps",
        "warmup_steps",
        "warmup_start_lr",
        "adam_eps",
        "grad_clip",
    )

    def __post_init__(self) -> None:
        for name in self._POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in self._NON_NEGATIVE:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        self._validate_choices()
        self._validate_structure()

    def _validate_choices(self) -> None:
        if self.encoder not in ENCODER_KINDS:
            raise ValueError(f"encoder must be one of {ENCODER_KINDS}, got {self.encoder!r}")
        if self.text_encoder not in TEXT_ENCODER_KINDS:
            raise ValueError(
                f"text_encoder must be one of {TEXT_ENCODER_KINDS}, got {self.text_encoder!r}"
            )
        if "hf" in (self.encoder, self.text_encoder) and not self.encoder_name:
            raise ValueError("encoder_name (local path or hub id) is required for 'hf' encoders")
        if self.encoder == "hf" and self.hf_feature_dim < 1:
            raise ValueError("hf_feature_dim must be set (> 0) when encoder='hf'")
        if self.num_gates not in (1, NUM_GROUPS):
            raise ValueError(f"num_gates must be one of (1, {NUM_GROUPS}), got {self.num_gates}")
        if not self.stage_estimator and self.num_gates != 1:
            # Gates are selected by the predicted primitive group; without a stage estimator
            # there is nothing to select by.
            raise ValueError("stage_estimator=False needs num_gates=1")

    def _validate_structure(self) -> None:
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be non-empty and unique, got {self.camera_names}")
        if not self.instructions or len(set(self.instructions)) != len(self.instructions):
            raise ValueError("instructions must be a non-empty tuple of unique strings")
        if any(not isinstance(s, str) or not s.strip() for s in self.instructions):
            raise ValueError("every instruction must be a non-empty string")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads")
        if not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={self.num_experts}]")
        if self.max_rewind >= self.n_obs_steps:
            # Rewind frames are taken from the history window (spec §1.7).
            raise ValueError(f"max_rewind must be < n_obs_steps ({self.n_obs_steps})")
        if not self.expert_hidden or any(h < 1 for h in self.expert_hidden):
            raise ValueError(f"expert_hidden must be positive widths, got {self.expert_hidden}")
        for name in ("dropout", "rewind_prob", "val_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0 and not (name == "rewind_prob" and value == 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if len(self.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")

    # ----------------------------------------------------------------------- derived values
    @property
    def num_cameras(self) -> int:
        """Number of camera streams N."""
        return len(self.camera_names)

    @property
    def num_tasks(self) -> int:
        """Number of stored task instructions."""
        return len(self.instructions)

    @property
    def num_primitives(self) -> int:
        """Primitive classes (21 + null, spec §1.3)."""
        return NUM_PRIMITIVES

    @property
    def num_groups(self) -> int:
        """Primitive groups (8, spec §1.3)."""
        return NUM_GROUPS

    @property
    def image_feature_dim(self) -> int:
        """Width of one camera's per-frame feature."""
        if self.encoder == "efficientnet_lite0":
            return _EFFICIENTNET_DIM
        if self.encoder == "cnn":
            return self.cnn_out_dim
        return self.hf_feature_dim

    @property
    def frozen_encoder(self) -> bool:
        """Whether image features can be computed once and cached (frozen encoder)."""
        return self.encoder != "cnn"

    @property
    def value_seq_len(self) -> int:
        """Value-model sequence without rewind: anchor + (n_obs_steps - 1) mid + current."""
        return 1 + self.n_obs_steps

    @property
    def max_seq_len(self) -> int:
        """Longest value-model sequence: with ``max_rewind`` rewind frames (spec §1.4: 10)."""
        return self.value_seq_len + self.max_rewind

    @property
    def current_index(self) -> int:
        """Position of the current frame in a value-model sequence (spec §1.4: 6)."""
        return self.n_obs_steps

    @property
    def history_frames(self) -> int:
        """Frames a streaming scorer must keep besides the anchor: ``n_obs_steps * frame_gap``."""
        return self.n_obs_steps * self.frame_gap

    @property
    def num_streams_stage(self) -> int:
        """Token streams of the stage estimator: cameras + state."""
        return self.num_cameras + 1

    @property
    def num_streams_value(self) -> int:
        """Token streams of the value model: cameras + primitive + instruction + state."""
        return self.num_cameras + 3

    @property
    def ffn_dim(self) -> int:
        """Feed-forward width of the transformer layers."""
        return self.ffn_mult * self.d_model

    # ------------------------------------------------------------------------ constructors
    @classmethod
    def paper(cls, **overrides: Any) -> SARM2Config:
        """Return the paper's reference sizes (spec §1.4-§1.7), with optional overrides.

        The frame gap stays in control steps of our 10 Hz envs (0.5 s) unless overridden; the
        paper's 30 frames are 1 s at 30 fps.
        """
        paper: dict[str, Any] = {
            "d_model": 512,
            "n_heads": 8,
            "ffn_mult": 4,
            "dropout": 0.1,
            "stage_layers": 4,
            "value_layers": 6,
            "num_gates": NUM_GROUPS,
            "num_experts": 10,
            "top_k": 2,
            "expert_hidden": (256, 256, 256),
            "gate_hidden": 256,
            "stage_lr": 2.5e-5,
            "stage_weight_decay": 0.01,
            "stage_steps": 16_000,
            "stage_cosine_steps": 79_000,
            "value_lr": 5e-5,
            "value_weight_decay": 5e-3,
            "value_steps": 30_000,
            "value_cosine_steps": 29_000,
            "warmup_steps": 1000,
        }
        paper.update(overrides)
        return cls(**paper)

    def replace(self, **changes: Any) -> SARM2Config:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as JSON-able values (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SARM2Config:
        """Build a config from :meth:`to_dict` output.

        Raises:
            ValueError: On unknown keys (naming them) or invalid values.
        """
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown SARM2Config fields {unknown}; known: {sorted(names)}")
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**kwargs)
