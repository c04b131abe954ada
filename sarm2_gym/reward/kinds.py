"""The model-kind switch of the shared training loop: SARM2, its ablations, and the baselines.

=====================  ==============================================================
kind                   model
=====================  ==============================================================
``sarm2``              SARM2: stage estimator pretraining, then joint training (§1.5, §1.7)
``sarm2_no_stage``     ablation: no stage estimator (constant primitive stream, 1 gate)
``sarm2_single_gate``  ablation: one gate instead of one per primitive group
``sarm2_mlp_head``     ablation: plain MLP head (1 expert, 1 gate, no routing)
``rewind``             ReWiND-style progress regressor (:mod:`.baselines.rewind`)
``sarm_v1``            SARM (v1), one stage + tau model per task (:mod:`.baselines.sarm_v1`)
=====================  ==============================================================

Every kind trains for the same number of optimizer steps with the same batch size (the
"same budget"): SARM2 splits them between its two phases; kinds without a stage estimator spend
them all in one phase; SARM v1 gives each task's model ``1 / n_tasks`` of them (round robin).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from sarm2_gym.reward.baselines import (
    NormalizedInputs,
    ReWiNDModel,
    SARMv1Model,
    load_baseline,
    sarm_v1_frame_labels,
    save_baseline,
)
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.base import TextEncoder
from sarm2_gym.reward.encoders.text import compute_text_embeddings
from sarm2_gym.reward.frames import FrameTable
from sarm2_gym.reward.inference import inference_context
from sarm2_gym.reward.model import SARM2RewardModel
from sarm2_gym.reward.sampling import TrainBatch

__all__ = [
    "MODEL_KINDS",
    "Phase",
    "SARMv1Labels",
    "Scores",
    "TrainableModel",
    "batch_losses",
    "build_model",
    "kind_config",
    "load_model",
    "model_kind",
    "phases",
    "save_model",
    "score_batch",
]

MODEL_KINDS: Final[tuple[str, ...]] = (
    "sarm2",
    "sarm2_no_stage",
    "sarm2_single_gate",
    "sarm2_mlp_head",
    "rewind",
    "sarm_v1",
)

_ABLATIONS: Final[dict[str, dict[str, Any]]] = {
    "sarm2": {},
    "sarm2_no_stage": {"stage_estimator": False, "num_gates": 1},
    "sarm2_single_gate": {"num_gates": 1},
    "sarm2_mlp_head": {"num_gates": 1, "num_experts": 1, "top_k": 1},
}

TrainableModel = SARM2RewardModel | NormalizedInputs


def _check(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")


def kind_config(kind: str, config: SARM2Config) -> SARM2Config:
    """The config a kind trains with (ablations change a few SARM2 fields)."""
    _check(kind)
    return config.replace(**_ABLATIONS.get(kind, {}))


@dataclass(frozen=True, slots=True)
class Phase:
    """One optimisation phase: AdamW with linear warmup then cosine decay.

    Attributes:
        name: ``"stage"`` (stage-estimator pretraining) or ``"joint"``.
        steps: Optimizer steps of the phase.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        warmup: Warmup steps (from ``warmup_start_lr``).
        cosine: Length of the cosine after warmup (may exceed the phase, as in the paper).
    """

    name: str
    steps: int
    lr: float
    weight_decay: float
    warmup: int
    cosine: int

    def lr_at(self, step: int, start_lr: float) -> float:
        """Learning rate at phase step ``step`` (0-based)."""
        if step < self.warmup:
            return start_lr + (self.lr - start_lr) * step / max(self.warmup, 1)
        t = min(step - self.warmup, self.cosine) / max(self.cosine, 1)
        return 0.5 * self.lr * (1.0 + float(np.cos(np.pi * t)))


def phases(kind: str, config: SARM2Config, total_steps: int | None = None) -> list[Phase]:
    """The phases of a kind; ``total_steps`` overrides the config's budget, split alike."""
    _check(kind)
    cfg_total = config.stage_steps + config.value_steps
    total = total_steps or cfg_total
    two_phase = kind.startswith("sarm2") and kind_config(kind, config).stage_estimator
    if two_phase:
        stage = (
            config.stage_steps
            if total_steps is None
            else round(total * config.stage_steps / cfg_total)
        )
        sizes = [("stage", max(stage, 1)), ("joint", max(total - stage, 1))]
    else:
        sizes = [("joint", total)]
    out = []
    for name, steps in sizes:
        warmup = min(config.warmup_steps, steps // 10)
        default_cos = config.stage_cosine_steps if name == "stage" else config.value_cosine_steps
        cosine = default_cos if total_steps is None and two_phase else steps - warmup
        lr = config.stage_lr if name == "stage" else config.value_lr
        wd = config.stage_weight_decay if name == "stage" else config.value_weight_decay
        out.append(Phase(name, steps, lr, wd, warmup, max(cosine, 1)))
    return out


@dataclass(frozen=True)
class SARMv1Labels:
    """Per-frame stage and tau targets of SARM v1 (whole table)."""

    stage: np.ndarray
    tau: np.ndarray


def build_model(
    kind: str,
    config: SARM2Config,
    table: FrameTable,
    train_ids: list[int],
    text_encoder: TextEncoder,
    target: str = "progress",
) -> tuple[TrainableModel, SARMv1Labels | None]:
    """A fresh model of ``kind`` (with state statistics of the training episodes).

    Returns:
        The model and, for SARM v1, its per-frame labels.
    """
    cfg = kind_config(kind, config)
    labels = None
    model: TrainableModel
    if kind.startswith("sarm2"):
        model = SARM2RewardModel.build(cfg, text_encoder=text_encoder)
    else:
        text = compute_text_embeddings(text_encoder, cfg.instructions)
        if kind == "rewind":
            model = ReWiNDModel(cfg, text)
        else:
            stage = np.zeros(table.num_frames, np.int64)
            tau = np.zeros(table.num_frames, np.float32)
            props: dict[int, list[float]] = {}
            for task in table.tasks:
                eps = [table.episodes[i] for i in train_ids if table.episodes[i].task == task]
                if not eps:
                    continue
                spans = [(e.start, e.length, e.success) for e in eps]
                st, ta, alpha = sarm_v1_frame_labels(table.stage, table.progress, spans, target)
                rows = np.concatenate([np.arange(s, s + n) for s, n, _ in spans])
                stage[rows], tau[rows] = st[rows], ta[rows]
                props[cfg.instructions.index(task)] = alpha
            model = SARMv1Model(cfg, text, props)
            labels = SARMv1Labels(stage, tau)
    mean, std = table.state_stats(train_ids)
    model.set_state_stats(mean, std)
    return model, labels


def batch_losses(
    model: nn.Module, tb: TrainBatch, phase: str, labels: SARMv1Labels | None = None
) -> dict[str, torch.Tensor]:
    """Training losses of one batch; ``"total"`` is what to backpropagate."""
    b = tb.batch
    if isinstance(model, SARM2RewardModel):
        out = model(b, stage_only=phase == "stage")
        assert out.losses is not None
        return dict(out.losses.__dict__)
    if isinstance(model, ReWiNDModel):
        res = model.forward_features(
            model.batch_features(b), b.state, b.lengths, b.task_ids, b.steps_to_go
        )
    elif isinstance(model, SARMv1Model):
        if labels is None:
            raise ValueError("SARM v1 needs its stage/tau labels")
        res = model.forward_features(
            model.batch_features(b),
            b.state,
            b.lengths,
            b.task_ids,
            torch.from_numpy(tb.gather(labels.stage, 0)),
            torch.from_numpy(tb.gather(labels.tau, 0.0)),
        )
    else:
        raise TypeError(f"not a reward model: {type(model).__name__}")
    assert res.losses is not None
    return res.losses


@dataclass(frozen=True)
class Scores:
    """Readings of the current frame of each sample.

    Attributes:
        steps_to_go: ``(B,)`` predicted steps-to-go.
        primitive: ``(B,)`` predicted primitive (models with a stage estimator), else None.
        stage: ``(B,)`` predicted task stage (SARM v1), else None.
    """

    steps_to_go: np.ndarray
    primitive: np.ndarray | None
    stage: np.ndarray | None


def score_batch(model: nn.Module, tb: TrainBatch) -> Scores:
    """Eval-mode readings at the current position (``n_obs_steps``) of an inference batch."""
    b = tb.batch
    cfg: SARM2Config = model.config  # type: ignore[assignment]
    n = cfg.n_obs_steps
    if isinstance(model, SARM2RewardModel):
        with inference_context(model):
            out = model(b)
        assert out.steps_to_go is not None
        prim = out.primitive_logits[:, n].argmax(-1).cpu().numpy()
        has_stage = model.config.stage_estimator
        return Scores(
            out.steps_to_go[:, n].float().cpu().numpy(), prim if has_stage else None, None
        )
    if not isinstance(model, ReWiNDModel | SARMv1Model):
        raise TypeError(f"not a reward model: {type(model).__name__}")
    was = model.training
    model.eval()
    with torch.inference_mode():
        res = model.forward_features(model.batch_features(b), b.state, b.lengths, b.task_ids)
    model.train(was)
    stage = None if res.stage is None else res.stage[:, n].cpu().numpy()
    return Scores(res.steps_to_go[:, n].float().cpu().numpy(), None, stage)


def save_model(model: nn.Module, directory: str | Path) -> Path:
    """Save any kind: SARM2 variants with ``save_pretrained``, baselines with theirs."""
    if isinstance(model, SARM2RewardModel):
        return model.save_pretrained(directory)
    if isinstance(model, NormalizedInputs):
        return save_baseline(model, directory)
    raise TypeError(f"not a reward model: {type(model).__name__}")


def load_model(directory: str | Path) -> TrainableModel:
    """Load a checkpoint of any kind (reads the ``format`` in ``config.json``)."""
    import json

    from sarm2_gym.reward.baselines import BASELINE_FORMAT

    path = Path(directory) / "config.json"
    fmt = json.loads(path.read_text()).get("format") if path.is_file() else None
    if fmt == BASELINE_FORMAT:
        return load_baseline(directory)
    return SARM2RewardModel.from_pretrained(directory)


def model_kind(model: nn.Module) -> str:
    """The kind name of a loaded model (ablations are recognised from their config)."""
    if isinstance(model, NormalizedInputs):
        return model.kind
    cfg: SARM2Config = model.config  # type: ignore[assignment]
    if not cfg.stage_estimator:
        return "sarm2_no_stage"
    if cfg.num_experts == 1:
        return "sarm2_mlp_head"
    return "sarm2_single_gate" if cfg.num_gates == 1 else "sarm2"
