"""Held-out evaluation of a reward model (``sarm2 eval-rm``), per task and overall.

Every episode is queried every frame gap (``0, g, 2g, ...``, spec §1.8) plus its last frame,
with the inference layout; demonstrations are the expert episodes (``heldout_demos``),
rollouts the others with a recorded outcome (``heldout_rollouts``: success / partial / failed).
Metrics
(:mod:`.metrics`):

* ``demo_mse`` — steps-to-go MSE on demonstrations at the query frames, macro over episodes, against
  ``1 - privileged progress`` (NaN for data without a ``progress`` column);
  ``demo_mse_linear`` against the paper's ``1 - t / (T - 1)``;
* ``primitive_acc`` — predicted vs annotated primitive (``act_pri``) at the query frames of the
  demonstrations (models with a stage estimator): the paper validates its stage estimator on
  held-out annotated demonstration episodes (spec §1.5). ``primitive_acc_rollouts`` is the same on
  rollouts, reported apart because a rollout's annotation can name what its scripted policy
  intended rather than what the frames show (an abandoned attempt is ``dummy`` from the moment
  it gives up, while the arm still hovers where a grasp would start);
  ``stage_acc`` — predicted vs ``stage`` column (SARM v1), at all query frames;
* ``rollout_spearman`` — per rollout, Spearman between predicted and privileged progress at the
  query frames, averaged over rollouts (a rollout whose privileged progress never changes is
  skipped);
* ``rollout_rho`` — rollouts classified by their final smoothed progress (the labeller's curve,
  :mod:`.labeller`, at the last frame): success at >= 0.9, failed below 0.25, partial in between;
  ``(#correct - #wrong) / N``;
* ``voc`` — value-order correlation of the predicted progress on demonstrations.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.base import ImageEncoder
from sarm2_gym.reward.frames import DEFAULT_CACHE_DIR, FrameTable, load_frame_table
from sarm2_gym.reward.kinds import score_batch
from sarm2_gym.reward.labeller import labels_from_steps_to_go
from sarm2_gym.reward.metrics import (
    FAILED_BELOW,
    SUCCESS_AT,
    macro_mse,
    rollout_rho,
    spearman,
    value_order_correlation,
)
from sarm2_gym.reward.sampling import TrainBatch, assemble_batch, task_ids_of

__all__ = [
    "METRICS",
    "METRIC_LABELS",
    "EpisodeScores",
    "evaluate_model",
    "evaluate_table",
    "metrics_table",
    "score_episodes",
]

METRICS = (
    "demo_mse",
    "demo_mse_linear",
    "primitive_acc",
    "primitive_acc_rollouts",
    "stage_acc",
    "rollout_spearman",
    "rollout_rho",
    "voc",
)
METRIC_LABELS = {
    "demo_mse": "demo MSE",
    "demo_mse_linear": "demo MSE (linear label)",
    "primitive_acc": "primitive acc (demos)",
    "primitive_acc_rollouts": "primitive acc (rollouts)",
    "stage_acc": "stage acc",
    "rollout_spearman": "rollout Spearman",
    "rollout_rho": "rollout ρ",
    "voc": "VOC",
}
"""Column heading of each of :data:`METRICS` in the markdown reports."""


@dataclass(frozen=True)
class EpisodeScores:
    """A model's readings of one episode at its query frames.

    Attributes:
        task: Short task name (``CleanWhiteboard``) or the instruction for data from elsewhere.
        outcome: Rollout outcome, ``""`` for a demonstration (an expert episode).
        length: Frames of the episode.
        frames: ``(Q,)`` query frames (every frame gap, plus the last frame).
        steps_to_go: ``(Q,)`` predicted steps-to-go.
        progress: ``(Q,)`` privileged progress.
        act_pri: ``(Q,)`` annotated primitive.
        stage: ``(Q,)`` stage column.
        primitive: ``(Q,)`` predicted primitive, or None.
        predicted_stage: ``(Q,)`` predicted stage (SARM v1), or None.
        final_progress: Smoothed predicted progress at the last frame (labeller curve).
    """

    task: str
    outcome: str
    length: int
    frames: np.ndarray
    steps_to_go: np.ndarray
    progress: np.ndarray
    act_pri: np.ndarray
    stage: np.ndarray
    primitive: np.ndarray | None
    predicted_stage: np.ndarray | None
    final_progress: float


def _task_name(env_id: str, instruction: str) -> str:
    return env_id.removeprefix("SARM2-").removesuffix("-v0") if env_id else instruction


def _query(length: int, gap: int) -> np.ndarray:
    q = np.arange(0, length, gap, dtype=np.int64)
    return q if q[-1] == length - 1 else np.append(q, length - 1)


def score_episodes(
    model: nn.Module, table: FrameTable, frame_gap: int | None = None, batch_size: int = 256
) -> list[EpisodeScores]:
    """Score every episode of a table at its query frames (one batch per ``batch_size``)."""
    cfg: SARM2Config = model.config  # type: ignore[assignment]
    gap = frame_gap or cfg.frame_gap
    tids = task_ids_of(table, cfg)
    targets = np.zeros(table.num_frames, np.float32)
    eps = np.concatenate(
        [np.full(len(_query(e.length, gap)), i) for i, e in enumerate(table.episodes)]
    ).astype(np.int64)
    frames = np.concatenate([_query(e.length, gap) for e in table.episodes])
    parts: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
    for s in range(0, len(eps), batch_size):
        e, f = eps[s : s + batch_size], frames[s : s + batch_size]
        tb: TrainBatch = assemble_batch(table, cfg, targets, tids, e, f, np.zeros_like(f))
        sc = score_batch(model, tb)
        parts.append((sc.steps_to_go, sc.primitive, sc.stage))
    steps = np.concatenate([p[0] for p in parts])
    prim = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    stage = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    out = []
    for i, info in enumerate(table.episodes):
        sel = eps == i
        q = frames[sel]
        rows = info.start + q
        curve = labels_from_steps_to_go(q, steps[sel], info.length)
        out.append(
            EpisodeScores(
                task=_task_name(info.env_id, info.task),
                outcome="" if info.is_demo else info.outcome,
                length=info.length,
                frames=q,
                steps_to_go=steps[sel],
                progress=table.progress[rows],
                act_pri=table.act_pri[rows],
                stage=table.stage[rows],
                primitive=None if prim is None else prim[sel],
                predicted_stage=None if stage is None else stage[sel],
                final_progress=float(curve.progress[-1]),
            )
        )
    return out


def _accuracy(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    # Unlabelled frames (negative placeholders of data without act_pri / stage) do not count.
    pairs = [(a[b >= 0], b[b >= 0]) for a, b in pairs]
    total = sum(len(a) for a, _ in pairs)
    if not total:
        return float("nan")
    return sum(int((a == b).sum()) for a, b in pairs) / total


def _group_metrics(scores: Sequence[EpisodeScores]) -> dict[str, float]:
    demos = [s for s in scores if not s.outcome]
    rollouts = [s for s in scores if s.outcome]
    lin = [1.0 - s.frames / max(s.length - 1, 1) for s in demos]
    rho_s = [spearman(1.0 - s.steps_to_go, s.progress) for s in rollouts]
    rho_s = [r for r in rho_s if np.isfinite(r)]
    voc = [value_order_correlation(1.0 - s.steps_to_go) for s in demos]
    voc = [v for v in voc if np.isfinite(v)]
    return {
        "demo_mse": macro_mse([s.steps_to_go for s in demos], [1.0 - s.progress for s in demos]),
        "demo_mse_linear": macro_mse([s.steps_to_go for s in demos], lin),
        "primitive_acc": _accuracy(
            [(s.primitive, s.act_pri) for s in demos if s.primitive is not None]
        ),
        "primitive_acc_rollouts": _accuracy(
            [(s.primitive, s.act_pri) for s in rollouts if s.primitive is not None]
        ),
        "stage_acc": _accuracy(
            [(s.predicted_stage, s.stage) for s in scores if s.predicted_stage is not None]
        ),
        "rollout_spearman": float(np.mean(rho_s)) if rho_s else float("nan"),
        "rollout_rho": rollout_rho(
            np.array([s.final_progress for s in rollouts]), [s.outcome for s in rollouts]
        ),
        "voc": float(np.mean(voc)) if voc else float("nan"),
        "n_demos": float(len(demos)),
        "n_rollouts": float(len(rollouts)),
    }


def evaluate_table(
    model: nn.Module, table: FrameTable, frame_gap: int | None = None
) -> tuple[dict[str, dict[str, float]], list[EpisodeScores]]:
    """Metrics per task (in table order) and ``"overall"``, plus the per-episode scores."""
    scores = score_episodes(model, table, frame_gap)
    tasks = list(dict.fromkeys(s.task for s in scores))
    results = {t: _group_metrics([s for s in scores if s.task == t]) for t in tasks}
    results["overall"] = _group_metrics(scores)
    return results, scores


def metrics_table(results: dict[str, dict[str, float]], title: str = "") -> str:
    """A markdown table of :func:`evaluate_table` results."""

    def fmt(v: float) -> str:
        return "–" if not np.isfinite(v) else f"{v:.4f}" if abs(v) < 0.1 else f"{v:.3f}"

    labels = " | ".join(METRIC_LABELS[k] for k in METRICS)
    head = f"| task | {labels} | demos | rollouts |\n|---|" + "---|" * (len(METRICS) + 2)
    rows = [
        f"| {t} | "
        + " | ".join(fmt(m[k]) for k in METRICS)
        + f" | {int(m['n_demos'])} | {int(m['n_rollouts'])} |"
        for t, m in results.items()
    ]
    notes = (
        f"\nRollout ρ: final smoothed progress >= {SUCCESS_AT} = success, < {FAILED_BELOW} = "
        "failed, else partial.\n"
    )
    return (f"### {title}\n\n" if title else "") + "\n".join([head, *rows]) + "\n" + notes


def evaluate_model(
    model: nn.Module,
    data: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    num_workers: int = 1,
    frame_gap: int | None = None,
    plots: int = 1,
    progress: bool = True,
    image_encoder: ImageEncoder | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate a model on held-out datasets.

    With ``out``, writes ``metrics.json``, ``metrics.md`` and progress plots there.

    Args:
        model: Any reward-model kind (:func:`~sarm2_gym.reward.kinds.load_model`).
        data: Held-out dataset directories (``heldout_demos``, ``heldout_rollouts``).
        out: Report directory (None: compute only).
        cache_dir: Feature cache root.
        num_workers: Feature-extraction processes.
        frame_gap: Query gap (default: the model's).
        plots: Plots per task and split kind (demo / rollout); 0 = none.
        progress: Show progress bars.
        image_encoder: Frozen encoder instance (default: the one the model's config names).
    """
    cfg: SARM2Config = model.config  # type: ignore[assignment]
    table = load_frame_table(
        [str(d) for d in data],
        cfg,
        cache_dir=cache_dir,
        num_workers=num_workers,
        progress=progress,
        image_encoder=image_encoder,
    )
    results, scores = evaluate_table(model, table, frame_gap)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "metrics.md").write_text(metrics_table(results))
        if plots:
            _plot(scores, table, out / "plots", plots)
    return results


def _plot(scores: list[EpisodeScores], table: FrameTable, out: Path, per_kind: int) -> None:
    from sarm2_gym.common.plots import plot_progress

    counts: dict[tuple[str, bool], int] = {}
    for s, info in zip(scores, table.episodes, strict=True):
        key = (s.task, bool(s.outcome))
        if counts.get(key, 0) >= per_kind:
            continue
        counts[key] = counts.get(key, 0) + 1
        t = np.arange(s.length)
        curves: dict[str, Any] = {
            "privileged": table.progress[info.rows],
            "predicted": np.interp(t, s.frames, 1.0 - s.steps_to_go),
            "labeller (smoothed)": labels_from_steps_to_go(s.frames, s.steps_to_go, s.length)[0],
        }
        if not np.isfinite(curves["privileged"]).any():  # data without a progress column
            del curves["privileged"]
            curves["linear label"] = t / max(s.length - 1, 1)
        predicted = None
        if s.primitive is not None:
            predicted = s.primitive[np.searchsorted(s.frames, t, side="right") - 1]
        name = f"{s.task}_{s.outcome or 'demo'}_{counts[key]}.png"
        plot_progress(
            curves,
            table.act_pri[info.rows],
            out / name,
            title=f"{s.task} ({s.outcome or 'held-out demo'})",
            predicted_labels=predicted,
        )
