"""SARM (v1) baseline: one stage + tau model per task, with the temporal-proportion prior.

Paper: SARM, arXiv 2509.25358 (spec §3.2-§3.5). Per task, two causal transformers over
``[cameras..., instruction, state]`` streams: the stage transformer classifies the task's stage
(K = the task's stage list, from the dataset's ``stage`` column); the subtask transformer reads
the same streams plus the stage one-hot zero-padded to ``d_model`` (no learned projection,
``_stage_to_dmodel``) and regresses the within-stage fraction tau with a sigmoid. Progress is
``P_{k-1} + alpha_k * tau`` (Formula 2) with the average temporal proportions ``alpha`` of the
task's successful training episodes (Formula 1). Training feeds the ground-truth stage to the
subtask transformer with probability 0.5 (opensarm-1), else the predicted one.

Tau labels: the paper's time fraction within an annotated subtask is wrong for failed and
partial episodes (it claims every started stage got finished), so by default tau is the
privileged progress within the stage, rescaled to [0, 1] (our simulator's equivalent of a
correct annotation); ``target="linear"`` uses the paper's time fraction.

The layout (anchor + history + rewind), mask and features are SARM2's, so only the modelling
differs. All per-task models live in one module (:class:`SARMv1Model`) and one checkpoint; each
training step updates the model of one task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sarm2_gym.reward.baselines.common import BaselineOutput, NormalizedInputs
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.text import TextEmbeddings
from sarm2_gym.reward.labels import primitive_segments, temporal_proportions
from sarm2_gym.reward.transformer import build_encoder, encode

__all__ = ["SARMv1Model", "SARMv1Task", "sarm_v1_frame_labels"]

TEACHER_FORCING = 0.5  # opensarm-1: GT stage fed to the subtask model with p = 0.5 (spec §3.4)


class _Streams(nn.Module):
    """Per-camera, instruction and state projections with the anchor marker, + transformer."""

    def __init__(self, config: SARM2Config, extra_streams: int) -> None:
        super().__init__()
        d = config.d_model
        self.visual_proj = nn.ModuleList(
            nn.Linear(config.image_feature_dim, d) for _ in config.camera_names
        )
        self.lang_proj = nn.Linear(config.text_dim, d)
        self.state_proj = nn.Linear(config.state_dim, d)
        self.first_pos = nn.Parameter(torch.zeros(d))
        self.transformer = build_encoder(
            d, config.n_heads, config.ffn_dim, config.dropout, config.value_layers
        )
        fused = (config.num_cameras + 2 + extra_streams) * d
        self.fusion = nn.Sequential(nn.LayerNorm(fused), nn.Linear(fused, d), nn.ReLU())

    def forward(
        self,
        feats: torch.Tensor,
        state: torch.Tensor,
        lang: torch.Tensor,
        lengths: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fused per-step tokens ``(B, T, d)`` of ``[cameras, instruction, state(, extra)]``."""
        b, _, t, _ = feats.shape
        cams = torch.stack([p(feats[:, i]) for i, p in enumerate(self.visual_proj)], dim=2)
        marker = torch.zeros(t, 1, 1, device=feats.device, dtype=cams.dtype)
        marker[0] = 1.0
        cams = cams + marker * self.first_pos  # first_pos on the anchor frame (spec §3.3)
        streams = [cams, self.lang_proj(lang)[:, None, None].expand(b, t, 1, -1)]
        streams.append(self.state_proj(state).unsqueeze(2))
        if extra is not None:
            streams.append(extra.unsqueeze(2))
        h = encode(self.transformer, torch.cat(streams, dim=2), lengths)  # (B, T, S, d)
        fused: torch.Tensor = self.fusion(h.reshape(b, t, -1))
        return fused


class SARMv1Task(nn.Module):
    """Stage + subtask transformers of one task.

    Args:
        config: Shared sizes.
        proportions: The task's temporal proportions ``alpha`` (K,).
    """

    alpha: torch.Tensor
    breaks: torch.Tensor

    def __init__(self, config: SARM2Config, proportions: Sequence[float]) -> None:
        super().__init__()
        alpha = torch.tensor(list(proportions), dtype=torch.float32)
        if alpha.ndim != 1 or alpha.numel() < 1 or not torch.isclose(alpha.sum(), torch.ones(())):
            raise ValueError(f"proportions must be K >= 1 values summing to 1, got {proportions}")
        self.num_stages = int(alpha.numel())
        self.d_model = config.d_model
        if self.num_stages > self.d_model:
            raise ValueError(f"{self.num_stages} stages do not fit a one-hot of d_model")
        self.register_buffer("alpha", alpha)
        self.register_buffer("breaks", torch.cat([torch.zeros(1), alpha.cumsum(0)]))
        self.stage_model = _Streams(config, extra_streams=0)
        self.stage_head = nn.Linear(config.d_model, self.num_stages)
        self.subtask_model = _Streams(config, extra_streams=1)
        self.tau_head = nn.Linear(config.d_model, 1)

    def stage_logits(
        self, feats: torch.Tensor, state: torch.Tensor, lang: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Stage logits ``(B, T, K)`` (state normalised, lang = instruction embeddings)."""
        out: torch.Tensor = self.stage_head(self.stage_model(feats, state, lang, lengths))
        return out

    def tau(
        self,
        feats: torch.Tensor,
        state: torch.Tensor,
        lang: torch.Tensor,
        lengths: torch.Tensor,
        stage: torch.Tensor,
    ) -> torch.Tensor:
        """Within-stage fraction ``(B, T)`` given the stage ``(B, T)`` (one-hot padded to d)."""
        onehot = F.one_hot(stage.clamp(0, self.num_stages - 1), self.d_model).to(feats.dtype)
        h = self.subtask_model(feats, state, lang, lengths, extra=onehot)
        return torch.sigmoid(self.tau_head(h).squeeze(-1))

    def progress(self, stage: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """Formula 2: ``P_{k-1} + alpha_k * tau``."""
        return self.breaks[stage] + self.alpha[stage] * tau


class SARMv1Model(NormalizedInputs):
    """Single-task SARM models, one per task id, in one module.

    Args:
        config: Shared sizes (d_model, heads, ``value_layers`` per transformer).
        text: Instruction embeddings.
        proportions: ``{task_id: alpha (K,)}`` of every task to model.
    """

    kind = "sarm_v1"

    def __init__(
        self,
        config: SARM2Config,
        text: TextEmbeddings,
        proportions: Mapping[int, Sequence[float]],
    ) -> None:
        super().__init__(config, text)
        if not proportions:
            raise ValueError("SARM v1 needs at least one task")
        self.proportions = {int(k): [float(x) for x in v] for k, v in proportions.items()}
        self.tasks = nn.ModuleDict(
            {f"t{k}": SARMv1Task(config, v) for k, v in sorted(self.proportions.items())}
        )

    def task_model(self, task_id: int) -> SARMv1Task:
        """The model of one task."""
        key = f"t{int(task_id)}"
        if key not in self.tasks:
            raise ValueError(f"no SARM v1 model for task id {task_id}; have {list(self.tasks)}")
        model: SARMv1Task = self.tasks[key]  # type: ignore[assignment]
        return model

    def forward_features(
        self,
        feats: torch.Tensor,
        state: torch.Tensor,
        lengths: torch.Tensor,
        task_ids: torch.Tensor,
        stage_targets: torch.Tensor | None = None,
        tau_targets: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> BaselineOutput:
        """Predict stage and progress at every position, per task sub-batch.

        Args:
            feats: ``(B, N, T, F)`` camera features.
            state: ``(B, T, S)`` raw state.
            lengths: ``(B,)`` valid positions.
            task_ids: ``(B,)`` instruction indices (each must have a task model).
            stage_targets: ``(B, T)`` stage labels; with ``tau_targets`` the losses are
                ``CE(stage) + MSE(tau)`` (spec §3.4) and teacher forcing is applied.
            tau_targets: ``(B, T)`` tau labels.
            generator: Torch generator for the teacher-forcing draw.
        """
        b, _, t, _ = feats.shape
        lengths = lengths.to(self.device)
        state = self.normalize_state(state)
        task_ids = task_ids.to(self.device)
        valid = self.valid_mask(lengths, t)
        steps = torch.full((b, t), 0.5, device=self.device)
        stages = torch.zeros(b, t, dtype=torch.long, device=self.device)
        ce_sum = feats.new_zeros(())
        mse_sum = feats.new_zeros(())
        for tid in torch.unique(task_ids).tolist():
            rows = (task_ids == tid).nonzero().squeeze(1)
            sub = self.task_model(tid)
            lang = self.instruction_embeddings[task_ids[rows]]
            f, st, ln = feats[rows], state[rows], lengths[rows]
            logits = sub.stage_logits(f, st, lang, ln)
            pred_stage = logits.argmax(-1)
            stage_in = pred_stage
            gt = None
            if stage_targets is not None:
                gt = stage_targets.to(self.device)[rows].clamp(0, sub.num_stages - 1)
                use_gt = torch.rand(len(rows), 1, generator=generator) < TEACHER_FORCING
                stage_in = torch.where(use_gt.to(self.device), gt, pred_stage)
            tau = sub.tau(f, st, lang, ln, stage_in)
            steps[rows] = 1.0 - sub.progress(stage_in, tau)
            stages[rows] = pred_stage
            if gt is not None and tau_targets is not None:
                v = valid[rows]
                ce_sum = ce_sum + F.cross_entropy(logits[v], gt[v], reduction="sum")
                mse_sum = mse_sum + ((tau - tau_targets.to(self.device)[rows]) ** 2)[v].sum()
        losses = None
        if stage_targets is not None and tau_targets is not None:
            count = valid.sum().clamp_min(1)
            ce, mse = ce_sum / count, mse_sum / count
            losses = {"total": ce + mse, "stage": ce, "tau": mse}
        return BaselineOutput(steps, stages, losses)


def _stage_runs(stage: np.ndarray) -> list[tuple[int, int, int]]:
    return primitive_segments(stage)  # runs (label, start, end) of any integer column


def sarm_v1_frame_labels(
    stage: np.ndarray,
    progress: np.ndarray,
    episodes: Sequence[tuple[int, int, bool]],
    target: str = "progress",
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Stage, tau and proportions of one task's training frames.

    Args:
        stage: ``(N,)`` stage column of the whole table.
        progress: ``(N,)`` privileged progress of the whole table.
        episodes: ``(start, length, success)`` of the task's training episodes.
        target: ``"progress"`` (tau from privileged progress within the stage) or ``"linear"``
            (the paper's time fraction within each run of a stage).

    Returns:
        ``(stage (N,), tau (N,), alpha)``; rows outside the task's episodes are left at 0.
    """
    num_stages = int(max(stage[s : s + n].max() for s, n, _ in episodes)) + 1
    segments, lengths = [], []
    for s, n, ok in episodes:
        col = stage[s : s + n]
        if ok and set(np.unique(col).tolist()) == set(range(num_stages)):
            segments.append(
                [
                    (int(np.flatnonzero(col == k)[0]), int(np.flatnonzero(col == k)[-1]))
                    for k in range(num_stages)
                ]
            )
            lengths.append(n)
    alpha = (
        temporal_proportions(segments, lengths)
        if segments
        else np.full(num_stages, 1.0 / num_stages)
    )
    tau = np.zeros(len(stage), dtype=np.float32)
    rows = np.concatenate([np.arange(s, s + n) for s, n, _ in episodes])
    if target == "progress":
        lo = np.array(
            [
                progress[rows][stage[rows] == k].min() if np.any(stage[rows] == k) else 0.0
                for k in range(num_stages)
            ]
        )
        hi = np.append(lo[1:], 1.0)
        k = stage[rows]
        tau[rows] = np.clip((progress[rows] - lo[k]) / np.maximum(hi[k] - lo[k], 1e-6), 0, 1)
    elif target == "linear":
        for s, n, _ in episodes:
            for _, a, e in _stage_runs(stage[s : s + n]):
                tau[s + a : s + e + 1] = np.linspace(0.0, 1.0, e - a + 1) if e > a else np.ones(1)
    else:
        raise ValueError(f"target must be 'progress' or 'linear', got {target!r}")
    return stage.astype(np.int64), tau, [float(x) for x in alpha]
