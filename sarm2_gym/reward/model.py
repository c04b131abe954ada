"""The SARM2 reward model: stage estimator + MMoE value model, with training and inference APIs.

Paper: SARM2, arXiv 2606.10305 (spec §1.3-§1.8).

Two paths, kept apart:

* ``forward(batch)`` — torch in, :class:`RewardOutput` out (logits, steps-to-go, routing, losses);
  used by training. ``stage_only=True`` is the stage-pretraining phase (spec §1.5).
* ``predict(frames, state, task)`` — numpy in, :class:`PredictionResult` out, under
  ``torch.inference_mode()`` and ``eval()``; ``predict_episode`` scores many frames of one
  episode, ``predict_batch`` the last frame of many episodes, each in one forward pass.

Example:
    >>> import numpy as np
    >>> from sarm2_gym.envs.core.primitives import PRIMITIVES
    >>> from sarm2_gym.reward.encoders.text import TextEmbeddings
    >>> cfg = SARM2Config(encoder="cnn", cnn_out_dim=8, d_model=16, n_heads=2, text_dim=4,
    ...                   instructions=("fold",), expert_hidden=(8,), gate_hidden=8)
    >>> rng = np.random.default_rng(0)
    >>> text = TextEmbeddings(("fold",), rng.normal(size=(1, 4)).astype(np.float32),
    ...                       rng.normal(size=(22, 4)).astype(np.float32))
    >>> model = SARM2RewardModel(cfg, text)
    >>> frames = {c: np.zeros((20, 96, 96, 3), np.uint8) for c in cfg.camera_names}
    >>> r = model.predict(frames, np.zeros((20, 14), np.float32), "fold")
    >>> 0.0 <= r.progress <= 1.0, r.primitive_name in PRIMITIVES
    (True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sarm2_gym.envs.core.primitives import DUMMY, NUM_GROUPS, NUM_PRIMITIVES, PRIMITIVE_TO_GROUP
from sarm2_gym.reward import inference
from sarm2_gym.reward.batch import IGNORE_INDEX, RewardBatch
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders import ImageEncoder, TextEncoder, build_image_encoder
from sarm2_gym.reward.encoders.cache import encode_frames
from sarm2_gym.reward.encoders.cnn import SmallCNN
from sarm2_gym.reward.encoders.text import TextEmbeddings, compute_text_embeddings
from sarm2_gym.reward.inputs import check_frames
from sarm2_gym.reward.mmoe import routing_aux_losses
from sarm2_gym.reward.outputs import PredictionBatch, PredictionResult, RewardLosses, RewardOutput
from sarm2_gym.reward.stage_estimator import StageEstimator
from sarm2_gym.reward.value_model import ValueTransformer

__all__ = ["SARM2RewardModel"]


class SARM2RewardModel(nn.Module):
    """Stage-aware multi-task reward model (spec §1.5-§1.7).

    Args:
        config: Model configuration.
        text: Instruction and primitive-name embeddings (stored in the checkpoint); build them
            with :meth:`build` or :func:`~sarm2_gym.reward.encoders.compute_text_embeddings`.
        image_encoder: A frozen image encoder to use instead of building the one the config
            names (e.g. an already loaded SigLIP). Ignored for ``encoder="cnn"``.
    """

    config_class: ClassVar[type[SARM2Config]] = SARM2Config
    instruction_embeddings: torch.Tensor
    primitive_embeddings: torch.Tensor
    state_mean: torch.Tensor
    state_std: torch.Tensor
    group_of_primitive: torch.Tensor
    gate_of_primitive: torch.Tensor
    _frozen_encoder: ImageEncoder | None

    def __init__(
        self,
        config: SARM2Config,
        text: TextEmbeddings,
        *,
        image_encoder: ImageEncoder | None = None,
    ) -> None:
        super().__init__()
        if text.instructions != config.instructions:
            raise ValueError("text embeddings were computed for other instructions than config's")
        if text.dim != config.text_dim:
            raise ValueError(f"text embeddings are {text.dim}-d; config.text_dim={config.text_dim}")
        self.config = config
        self.stage = StageEstimator(config) if config.stage_estimator else None
        self.value = ValueTransformer(config)
        self.cnn = (
            SmallCNN(config.image_size, config.cnn_out_dim) if config.encoder == "cnn" else None
        )
        # Frozen encoders live outside the module tree (even if one is an nn.Module): no weights
        # in the checkpoint, no train() mode, no optimizer parameters.
        object.__setattr__(
            self, "_frozen_encoder", image_encoder if config.frozen_encoder else None
        )
        self.register_buffer("instruction_embeddings", torch.from_numpy(text.instruction.copy()))
        self.register_buffer("primitive_embeddings", torch.from_numpy(text.primitive.copy()))
        self.register_buffer("state_mean", torch.zeros(config.state_dim))
        self.register_buffer("state_std", torch.ones(config.state_dim))
        groups = torch.tensor(PRIMITIVE_TO_GROUP, dtype=torch.long)
        self.register_buffer("group_of_primitive", groups, persistent=False)
        gates = groups if config.num_gates > 1 else torch.zeros_like(groups)
        self.register_buffer("gate_of_primitive", gates, persistent=False)

    # ------------------------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        config: SARM2Config | None = None,
        *,
        text_encoder: TextEncoder | None = None,
        image_encoder: ImageEncoder | None = None,
    ) -> SARM2RewardModel:
        """Create a fresh model, embedding the instructions and primitive names once.

        Args:
            config: Configuration; default :class:`SARM2Config`.
            text_encoder: Text encoder; default the one ``config.text_encoder`` names.
            image_encoder: Optional frozen image encoder instance.
        """
        from sarm2_gym.reward.encoders import build_text_encoder

        config = config or SARM2Config()
        text_encoder = text_encoder or build_text_encoder(config)
        text = compute_text_embeddings(text_encoder, config.instructions)
        return cls(config, text, image_encoder=image_encoder)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` atomically (see :mod:`.checkpoint`)."""
        from sarm2_gym.reward.checkpoint import save_pretrained

        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        device: torch.device | str = "cpu",
        image_encoder: ImageEncoder | None = None,
    ) -> SARM2RewardModel:
        """Load a checkpoint written by :meth:`save_pretrained` (see :mod:`.checkpoint`)."""
        from sarm2_gym.reward.checkpoint import load_pretrained

        return load_pretrained(directory, device=device, image_encoder=image_encoder)

    # ------------------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        """Device of the model's tensors."""
        return self.state_mean.device

    @property
    def image_encoder(self) -> ImageEncoder:
        """The image encoder (the owned CNN, or the frozen backbone, built on first use)."""
        if self.cnn is not None:
            return self.cnn
        encoder = self._frozen_encoder
        if encoder is None:
            encoder = build_image_encoder(self.config)
            object.__setattr__(self, "_frozen_encoder", encoder)
        return encoder.to(self.device)

    @property
    def instructions(self) -> tuple[str, ...]:
        """Task instructions the model knows, in task-id order."""
        return self.config.instructions

    def task_id(self, task: str) -> int:
        """Index of an instruction.

        Raises:
            ValueError: If the model has no embedding for it (lists the known ones).
        """
        try:
            return self.config.instructions.index(task)
        except ValueError:
            raise ValueError(
                f"unknown task instruction {task!r}; this model knows {list(self.instructions)}. "
                "Add it with model.add_instructions([...], text_encoder)."
            ) from None

    def add_instructions(self, texts: Sequence[str], text_encoder: TextEncoder) -> None:
        """Embed new instructions with ``text_encoder`` (the model's kind) and store them."""
        new = [t for t in dict.fromkeys(texts) if t not in self.config.instructions]
        if not new:
            return
        emb = torch.as_tensor(np.asarray(text_encoder.encode(new), np.float32))
        if emb.shape != (len(new), self.config.text_dim):
            raise ValueError(
                f"text encoder gave {tuple(emb.shape)}; need (n, {self.config.text_dim})"
            )
        self.instruction_embeddings = torch.cat([self.instruction_embeddings, emb.to(self.device)])
        self.config = self.config.replace(instructions=(*self.config.instructions, *new))

    def set_state_stats(self, mean: np.ndarray, std: np.ndarray, eps: float = 1e-6) -> None:
        """Set the z-score statistics of the state (spec §1.4); ``std`` is floored at ``eps``."""
        m = torch.as_tensor(np.asarray(mean, np.float32)).to(self.device)
        s = torch.as_tensor(np.asarray(std, np.float32)).to(self.device).clamp_min(eps)
        if m.shape != self.state_mean.shape or s.shape != self.state_std.shape:
            raise ValueError(f"state stats must be ({self.config.state_dim},)")
        self.state_mean.copy_(m)
        self.state_std.copy_(s)

    def encode_images(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Encode uint8 frames ``(N, H, W, 3)`` into ``(N, F)`` features on the model device."""
        return encode_frames(self.image_encoder, images).to(self.device)

    # ------------------------------------------------------------------------------ forward
    def forward(self, batch: RewardBatch, *, stage_only: bool = False) -> RewardOutput:
        """Training forward pass over a batch in the value-model layout (:mod:`.batch`).

        Args:
            batch: Samples with ``lengths >= n_obs_steps + 1``.
            stage_only: Stage pretraining (spec §1.5): run the stage estimator only; the loss is
                ``CE(primitive) + group_loss_weight_pretrain * CE(group)``.
        """
        return self.forward_features(
            self._batch_features(batch),
            batch.state,
            batch.lengths,
            batch.task_ids,
            primitive_targets=batch.primitive_targets,
            steps_to_go=batch.steps_to_go,
            stage_only=stage_only,
        )

    def _batch_features(self, batch: RewardBatch) -> torch.Tensor:
        """Camera features ``(B, N, T, F)`` from cached features or by encoding images."""
        source = batch.features if batch.features is not None else batch.images
        assert source is not None  # RewardBatch guarantees one of them
        missing = [c for c in self.config.camera_names if c not in source]
        if missing:
            raise ValueError(f"batch lacks camera(s) {missing}")
        if batch.features is not None:
            feats = [
                batch.features[c].to(self.device, torch.float32) for c in self.config.camera_names
            ]
        else:
            b, t = batch.batch_size, batch.seq_len
            feats = []
            for cam in self.config.camera_names:
                imgs = source[cam]
                feats.append(
                    self.image_encoder.encode(imgs.reshape(b * t, *imgs.shape[2:])).view(b, t, -1)
                )
        return torch.stack(feats, dim=1)

    def _stage_logits(
        self, feats: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Primitive and group logits for every position of the value layout.

        The stage window is positions ``1..n`` (spec §1.4, ``_slice_act_pri_inputs``); the anchor
        (position 0) is classified from itself alone; a rewind position repeats the logits of
        the window frame it shows (``n - j`` for rewind step j). Each position's logits thus depend
        on frames at positions <= its own only.
        """
        b, _, t, _ = feats.shape
        n = self.config.n_obs_steps
        if self.stage is None:
            # Ablation without stage estimator: a constant, confident "dummy" reading.
            prim = torch.full((b, t, NUM_PRIMITIVES), -10.0, device=feats.device)
            prim[..., DUMMY] = 10.0
            group = torch.full((b, t, NUM_GROUPS), -10.0, device=feats.device)
            group[..., PRIMITIVE_TO_GROUP[DUMMY]] = 10.0
            return prim, group
        ones = torch.ones(b, dtype=torch.long, device=feats.device)
        window = self.stage(feats[:, :, 1 : n + 1], state[:, 1 : n + 1], ones * n)
        anchor = self.stage(feats[:, :, :1], state[:, :1], ones)
        pos = torch.arange(t, device=feats.device)
        source = torch.where(pos <= n, pos, 2 * n - pos).clamp(0, n)
        prim = torch.cat([anchor.primitive, window.primitive], dim=1)[:, source]
        group = torch.cat([anchor.group, window.group], dim=1)[:, source]
        return prim, group

    def forward_features(
        self,
        feats: torch.Tensor,
        state: torch.Tensor,
        lengths: torch.Tensor,
        task_ids: torch.Tensor,
        *,
        primitive_targets: torch.Tensor | None = None,
        steps_to_go: torch.Tensor | None = None,
        stage_only: bool = False,
    ) -> RewardOutput:
        """:meth:`forward` on camera features ``(B, N, T, F)`` (state ``(B, T, S)`` raw)."""
        cfg = self.config
        n = cfg.n_obs_steps
        lengths = lengths.to(self.device)
        if (
            feats.shape[2] < n + 1
            or int(lengths.min()) < n + 1
            or int(lengths.max()) > feats.shape[2]
        ):
            raise ValueError(f"sequences need lengths in [{n + 1}, T] and T >= {n + 1}")
        state = self._normalise_state(state)
        prim_logits, group_logits = self._stage_logits(feats, state)
        gate_index = self.gate_of_primitive[prim_logits.argmax(dim=-1)]
        ce_prim, ce_group = self._stage_ce(prim_logits, group_logits, primitive_targets)
        if stage_only and self.stage is None:
            raise ValueError("stage_only needs a stage estimator (config.stage_estimator=False)")
        if stage_only:
            losses = None
            if primitive_targets is not None:
                zero = ce_prim * 0.0
                total = ce_prim + cfg.group_loss_weight_pretrain * ce_group
                losses = RewardLosses(total, zero, zero, zero, zero, zero, ce_prim, ce_group)
            return RewardOutput(prim_logits, group_logits, gate_index, None, None, losses)

        prim_emb = self._primitive_stream(prim_logits)
        instr = self.instruction_embeddings[task_ids.to(self.device)]
        out = self.value(feats, prim_emb, instr, state, lengths, gate_index)

        losses = None
        if steps_to_go is not None:
            valid = torch.arange(feats.shape[2], device=self.device).unsqueeze(
                0
            ) < lengths.unsqueeze(1)
            err = (out.steps_to_go - steps_to_go.to(self.device)) ** 2
            # Mean over valid positions (the reference also averages padded ones, whose constant
            # 0.5 output adds no gradient; excluding them only removes a batch-dependent scale).
            mse = err[valid].mean()
            r = out.routing
            routing = routing_aux_losses(r.gate_probs, r.topk_index, valid)
            aux = routing.total(cfg.lambda_bal, cfg.lambda_imp, cfg.lambda_ent)
            total = mse + cfg.alpha_aux * aux
            if cfg.finetune_stage and primitive_targets is not None:
                total = total + cfg.stage_loss_weight * (ce_prim + ce_group)
            losses = RewardLosses(
                total,
                mse,
                aux,
                routing.balance,
                routing.importance,
                routing.entropy,
                ce_prim,
                ce_group,
            )
        return RewardOutput(
            prim_logits, group_logits, gate_index, out.steps_to_go, out.routing, losses
        )

    def _normalise_state(self, state: torch.Tensor) -> torch.Tensor:
        """Raw state to the model's device, float32 and normalised with the training stats."""
        return (state.to(self.device, torch.float32) - self.state_mean) / self.state_std

    def _primitive_stream(self, prim_logits: torch.Tensor) -> torch.Tensor:
        """Primitive embedding per position (spec §1.7).

        The soft mixture when the stage estimator is fine-tuned jointly, else the argmax
        primitive's; the gate is the hard argmax either way.
        """
        if self.config.finetune_stage:
            return torch.softmax(prim_logits, dim=-1) @ self.primitive_embeddings
        return self.primitive_embeddings[prim_logits.argmax(dim=-1)]

    def forward_current(
        self, feats: torch.Tensor, state: torch.Tensor, task_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Outputs at the current frame of full-length value windows (inference only).

        The same function as :meth:`forward_features` read at position ``n_obs_steps`` with every
        position valid, up to float rounding, but the value model's last layer and MMoE head
        run for that position only (:meth:`.ValueTransformer.forward_last`): a batch-8 query of
        the packaged model took about a fifth less time on one CPU thread (16.5 -> 13.3 ms).

        Args:
            feats: ``(Q, N, n_obs_steps + 1, F)`` camera features in the value layout.
            state: ``(Q, n_obs_steps + 1, state_dim)`` raw state.
            task_ids: ``(Q,)`` instruction indices.

        Returns:
            Primitive logits ``(Q, NUM_PRIMITIVES)``, group logits ``(Q, NUM_GROUPS)`` and
            steps-to-go ``(Q,)`` of the current frame.
        """
        n = self.config.n_obs_steps
        if feats.shape[2] != n + 1 or state.shape[1] != n + 1:
            raise ValueError(f"value windows must have n_obs_steps + 1 = {n + 1} frames")
        state = self._normalise_state(state)
        prim_logits, group_logits = self._stage_logits(feats, state)
        gate = self.gate_of_primitive[prim_logits[:, n].argmax(dim=-1)]
        instr = self.instruction_embeddings[task_ids.to(self.device)]
        steps = self.value.forward_last(
            feats, self._primitive_stream(prim_logits), instr, state, gate
        )
        return prim_logits[:, n], group_logits[:, n], steps

    def _stage_ce(
        self,
        prim_logits: torch.Tensor,
        group_logits: torch.Tensor,
        targets: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropies over the anchor + window positions (rewind positions are repeats)."""
        zero = prim_logits.sum() * 0.0
        if targets is None or self.stage is None:
            return zero, zero
        n1 = self.config.n_obs_steps + 1
        tgt = targets[:, :n1].to(self.device)
        keep = tgt != IGNORE_INDEX
        if not bool(keep.any()):
            return zero, zero
        ce_prim = F.cross_entropy(prim_logits[:, :n1][keep], tgt[keep])
        ce_group = F.cross_entropy(group_logits[:, :n1][keep], self.group_of_primitive[tgt[keep]])
        return ce_prim, ce_group

    # ---------------------------------------------------------------------------- inference
    def predict(
        self, frames: Mapping[str, np.ndarray], state: np.ndarray, task: str
    ) -> PredictionResult:
        """Score the last frame of an episode so far.

        Args:
            frames: Camera -> uint8 ``(T, H, W, 3)``; frame 0 is the episode's first frame.
            state: ``(T, state_dim)``.
            task: Instruction; must be one of :attr:`instructions`.
        """
        length = check_frames(frames, self.config.camera_names, self.config.image_size)
        return inference.predict_episode(self, frames, state, task, indices=[length - 1])[0]

    def predict_episode(
        self,
        frames: Mapping[str, np.ndarray],
        state: np.ndarray,
        task: str,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> PredictionBatch:
        """Score many frames of one episode, each from frames ``<= i`` with the training layout.

        Args:
            frames: Camera -> uint8 ``(T, H, W, 3)``; frame 0 is the episode's first frame.
            state: ``(T, state_dim)``.
            task: Instruction; must be one of :attr:`instructions`.
            indices: Frames to score (default: all).
        """
        return inference.predict_episode(self, frames, state, task, indices)

    def predict_batch(
        self,
        frames: Sequence[Mapping[str, np.ndarray]],
        states: Sequence[np.ndarray],
        tasks: Sequence[str],
    ) -> PredictionBatch:
        """Score the last frame of each of several episodes (any lengths) in one forward pass."""
        return inference.predict_batch(self, frames, states, tasks)

    def predict_features(
        self, features: torch.Tensor, state: torch.Tensor, task_ids: torch.Tensor
    ) -> PredictionBatch:
        """Score the current frame of encoded value windows ``(Q, N, n_obs_steps + 1, F)``."""
        return inference.predict_features(self, features, state, task_ids)
