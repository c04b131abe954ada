"""Held-out quality and encoder cost of reward-model checkpoints, side by side.

Evaluates each checkpoint with :func:`~sarm2_gym.reward.evaluation.evaluate_model` (what
``sarm2 eval-rm`` runs) on the same held-out demos and rollouts, and times its frozen image
encoder on one thread (the cost that bounds the reward wrappers' throughput, see
``docs/results/wrapper_overhead.md``). Used to choose the packaged model: it writes
``docs/results/packaged_reward_model.md``.

Usage:
    python benchmarks/packaged_reward_model.py --data-root DATA \
        --model packaged=sarm2_gym/pretrained/sarm2_sim --model other=CKPT [--num-workers 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarm2_gym.reward.evaluation import METRIC_LABELS, METRICS, evaluate_model
from sarm2_gym.reward.frames import DEFAULT_CACHE_DIR
from sarm2_gym.reward.kinds import load_model

PER_TASK = ("demo_mse", "primitive_acc", "rollout_spearman")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True, help="make-benchmark output folder")
    p.add_argument(
        "--model", action="append", required=True, help="NAME=CHECKPOINT_DIR (repeatable)"
    )
    p.add_argument(
        "--describe", action="append", default=[], help="NAME=TEXT: how a model was trained"
    )
    p.add_argument("--work", type=Path, default=Path("runs/packaged_reward_model_eval"))
    p.add_argument("--num-workers", type=int, default=2, help="feature processes")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--doc", type=Path, default=Path("docs/results/packaged_reward_model.md"))
    return p.parse_args(argv)


def encoder_ms_per_image(model: Any, n: int = 24, repeats: int = 5, size: int = 96) -> float:
    """Best-of-``repeats`` milliseconds per ``size`` x ``size`` frame through the image encoder.

    Each repeat encodes one batch of ``n`` random frames (after one warm-up batch).
    """
    frames = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8)
    model.encode_images(frames)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.encode_images(frames)
        best = min(best, (time.perf_counter() - t0) / n * 1e3)
    return best


def evaluate(args: argparse.Namespace, name: str, directory: Path) -> dict[str, Any]:
    """Metrics (cached in ``--work/NAME/summary.json``) and encoder cost of one checkpoint."""
    summary = args.work / name / "summary.json"
    model = load_model(directory)
    torch.set_num_threads(1)
    ms = encoder_ms_per_image(model)
    sha = json.loads((directory / "config.json").read_text())["weights_sha256"]
    if summary.is_file():
        done = json.loads(summary.read_text())
        # Reuse only results of these very weights (a checkpoint folder may be retrained) that
        # carry every metric this version reports.
        fresh = set(METRICS) <= set(done["results"]["overall"])
        if done["model"] == str(directory) and done.get("weights_sha256") == sha and fresh:
            return {**done, "encoder_ms": ms}
    data = [args.data_root / "heldout_demos", args.data_root / "heldout_rollouts"]
    t0 = time.perf_counter()
    results = evaluate_model(
        model, data, args.work / name, num_workers=args.num_workers, plots=0,
        cache_dir=args.cache_dir or DEFAULT_CACHE_DIR,
    )  # fmt: skip
    cfg = model.config
    out = {
        "model": str(directory),
        "weights_sha256": sha,
        "encoder": f"{cfg.encoder} {cfg.encoder_input_size or cfg.image_size} px",
        "eval_seconds": time.perf_counter() - t0,
        "results": results,
    }
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(out, indent=2) + "\n")
    return {**out, "encoder_ms": ms}


def _fmt(value: float, metric: str) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:.2e}" if metric.startswith("demo_mse") else f"{value:.3f}"


def write_doc(args: argparse.Namespace, rows: dict[str, dict[str, Any]], command: str) -> str:
    """The markdown report."""
    first = next(iter(rows.values()))["results"]
    described = dict(d.partition("=")[::2] for d in args.describe)
    descriptions = [f"- **{n}**: {described[n]}" for n in rows if n in described]
    tasks = [t for t in first if t != "overall"]
    parts = [
        "# Packaged reward model: held-out quality and encoder cost",
        "",
        f"Held-out data: `{args.data_root}/heldout_demos` and `heldout_rollouts` (the default "
        "`sarm2 make-benchmark` sizes), the same frames for every checkpoint; metrics as in "
        "[reward_model.md](reward_model.md) (privileged-progress targets, frame gap 5). Encoder "
        f"cost: best of 5 batches of 24 frames (96x96) on one torch thread, {platform.machine()}, "
        "2 shared cores.",
        "",
        *(["## Models", "", *descriptions, ""] if descriptions else []),
        "## Overall",
        "",
        "| model | encoder | ms per frame | "
        + " | ".join(METRIC_LABELS[m] for m in METRICS)
        + " |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for name, row in rows.items():
        overall = row["results"]["overall"]
        cells = " | ".join(_fmt(overall[m], m) for m in METRICS)
        parts.append(f"| {name} | {row['encoder']} | {row['encoder_ms']:.1f} | {cells} |")
    for metric in PER_TASK:
        parts += [
            "",
            f"## {METRIC_LABELS[metric]} per task",
            "",
            "| model | " + " | ".join(tasks) + " |",
            "|---|" + "---|" * len(tasks),
        ]
        for name, row in rows.items():
            res = row["results"]
            nan = {metric: float("nan")}
            cells = " | ".join(_fmt(res.get(t, nan)[metric], metric) for t in tasks)
            parts.append(f"| {name} | {cells} |")
    parts += ["", "## Command", "", "```bash", command, "```", ""]
    text = "\n".join(parts)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    """Evaluate every ``--model`` and write the report."""
    args = parse_args(argv)
    rows: dict[str, dict[str, Any]] = {}
    for spec in args.model:
        name, sep, directory = spec.partition("=")
        if not sep or not name or not directory:
            raise SystemExit(f"--model must be NAME=CHECKPOINT_DIR, got {spec!r}")
        rows[name] = evaluate(args, name, Path(directory))
        print(f"[{name}] {json.dumps(rows[name]['results']['overall'])}", flush=True)
    command = "python benchmarks/packaged_reward_model.py " + shlex.join(sys.argv[1:])
    print(write_doc(args, rows, command))


if __name__ == "__main__":
    main()
