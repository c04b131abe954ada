r"""SARM2 vs baselines and ablations on the simulated benchmark -> docs/results/reward_model.md.

Data layout: ``<data-root>/<Task>/{train,heldout_demos,heldout_rollouts}`` (one
``sarm2 make-benchmark`` folder per task; ``--generate`` makes them). Every model kind of
:data:`sarm2_gym.reward.kinds.MODEL_KINDS` is trained on all tasks' ``train`` splits with the same
cached EfficientNet-Lite0 features, batch size and number of steps, for each seed, then evaluated
on the held-out splits (:mod:`sarm2_gym.reward.evaluation`). Resumable: a run whose
``result.json`` exists is skipped, an interrupted one resumes from its checkpoint; rerun the same
command. ``--report-only`` rewrites the markdown from whatever finished (marked PARTIAL when runs
are missing). ``--throughput`` measures the streaming scorer on this machine.

Example (small, CPU)::

    python benchmarks/reward_models.py --data-root /tmp/rm_small --out /tmp/rm_runs \\
        --steps 200 --seeds 0 --doc /tmp/reward_model.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "heldout_demos", "heldout_rollouts")
LABELS = {
    "sarm2": "SARM2",
    "sarm2_no_stage": "SARM2 w/o stage estimator",
    "sarm2_single_gate": "SARM2 single gate",
    "sarm2_mlp_head": "SARM2 MLP head (no experts)",
    "rewind": "ReWiND-style",
    "sarm_v1": "SARM (v1) single-task",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="Run folder (results, checkpoints).")
    p.add_argument("--doc", type=Path, default=Path("docs/results/reward_model.md"))
    p.add_argument("--tasks", nargs="*", default=None, help="Task names (default: all found).")
    p.add_argument("--kinds", nargs="*", default=None, help="Model kinds (default: all).")
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--encoder-input-size",
        type=int,
        default=128,
        help="EfficientNet input resolution (smaller = faster smoke runs).",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="Runs trained in parallel processes.")
    p.add_argument("--threads", type=int, default=1, help="Torch threads per run.")
    p.add_argument("--num-workers", type=int, default=1, help="Feature-extraction processes.")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument(
        "--text-embeddings",
        type=Path,
        default=None,
        help="JSON of precomputed text embeddings (machines without MiniLM).",
    )
    p.add_argument("--generate", action="store_true", help="Make the data first.")
    p.add_argument("--train", type=int, default=20)
    p.add_argument("--heldout-demos", type=int, default=4)
    p.add_argument("--rollouts-per-outcome", type=int, default=4)
    p.add_argument("--gen-jobs", type=int, default=1, help="Tasks generated in parallel.")
    p.add_argument("--gen-workers", type=int, default=1, help="Workers per generated task.")
    p.add_argument(
        "--gen-deadline",
        type=float,
        default=0.0,
        help="Stop generating after this many seconds (0 = none); the episodes "
        "written so far are kept.",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=0.0,
        help="Stop starting new runs after this many seconds (0 = none).",
    )
    p.add_argument(
        "--package",
        type=Path,
        default=None,
        help="Copy the sarm2 seed-0 model here (config.json + model.safetensors).",
    )
    p.add_argument("--throughput", action="store_true", help="Measure the streaming scorer.")
    p.add_argument(
        "--throughput-only",
        action="store_true",
        help="Measure the streaming scorer of --package and replace only the throughput "
        "section of an existing --doc (the rest of the page is left as it is).",
    )
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--command", default="", help="The command line to quote in the report.")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------ data
def task_dirs(root: Path, tasks: list[str] | None) -> dict[str, dict[str, Path]]:
    """``{task: {split: dir}}`` for task folders holding all three splits."""
    from sarm2_gym.envs.registry import TASKS

    order = [t.name for t in TASKS]
    found = {}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if tasks and d.name not in tasks:
            continue
        if all((d / s / "meta" / "info.json").is_file() for s in SPLITS):
            found[d.name] = {s: d / s for s in SPLITS}
    return dict(sorted(found.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))


def generate(args: argparse.Namespace) -> None:
    """``make_benchmark`` per task, ``--gen-jobs`` tasks at a time (subprocesses)."""
    from sarm2_gym.envs.registry import implemented_tasks

    names = [t.name for t in implemented_tasks() if not args.tasks or t.name in args.tasks]
    code = (
        "import sys; from sarm2_gym.data.generation import make_benchmark, BenchmarkSizes;"
        "make_benchmark(sys.argv[1], tasks=[sys.argv[2]], sizes=BenchmarkSizes("
        f"train={args.train}, heldout_demos={args.heldout_demos}, "
        f"rollouts_per_outcome={args.rollouts_per_outcome}), num_workers={args.gen_workers},"
        " progress=False)"
    )
    pending = list(names)
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    start = time.time()
    while pending or running:
        if args.gen_deadline and time.time() - start > args.gen_deadline:
            for name, proc in running:
                proc.kill()
                print(f"[generate] {name}: stopped at the deadline", flush=True)
            return
        while pending and len(running) < args.gen_jobs:
            name = pending.pop(0)
            cmd = [sys.executable, "-c", code, str(args.data_root / name), f"SARM2-{name}-v0"]
            running.append((name, subprocess.Popen(cmd)))
        time.sleep(2)
        for item in list(running):
            if item[1].poll() is not None:
                running.remove(item)
                status = "ok" if item[1].returncode == 0 else f"FAILED ({item[1].returncode})"
                print(f"[generate] {item[0]}: {status}", flush=True)


# ------------------------------------------------------------------------------ runs
def _text_encoder(path: str | None) -> Any:
    if path:
        from sarm2_gym.reward.encoders.text import StoredTextEncoder

        return StoredTextEncoder(path)
    return None


def _machine(device: str) -> str:
    import torch

    where = f"{platform.machine()}, {os.cpu_count()} CPUs"
    if device.startswith("cuda") and torch.cuda.is_available():
        where += f", {torch.cuda.get_device_name(0)}"
    return where


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train + evaluate one (kind, seed); writes ``result.json`` in its run folder."""
    import torch

    from sarm2_gym.reward.config import SARM2Config
    from sarm2_gym.reward.evaluation import evaluate_model
    from sarm2_gym.reward.trainer import TrainOptions, train_reward_model

    torch.set_num_threads(job["threads"])
    run = Path(job["run"])
    options = TrainOptions(
        kind=job["kind"],
        steps=job["steps"],
        seed=job["seed"],
        batch_size=job["batch_size"],
        checkpoint_every=max(job["steps"] // 4, 1),
        val_every=max(job["steps"] // 4, 1),
        device=job["device"],
        cache_dir=job["cache_dir"],
        progress=False,
    )
    t0 = time.time()
    result = train_reward_model(
        job["train"],
        run / "model",
        SARM2Config.from_dict(job["config"]),
        options=options,
        resume=(run / "model" / "train" / "checkpoints" / "latest").is_file(),
        text_encoder=_text_encoder(job["text_embeddings"]),
    )
    plots = 1 if job["seed"] == job["first_seed"] else 0
    metrics = evaluate_model(
        result.model.to(job["device"]),
        job["heldout"],
        run / "eval",
        cache_dir=job["cache_dir"],
        plots=plots,
        progress=False,
    )
    out = {
        "kind": job["kind"],
        "seed": job["seed"],
        "steps": result.steps,
        "wall_clock_s": result.wall_clock_s,
        "session_s": time.time() - t0,
        "machine": _machine(job["device"]),
        "device": job["device"],
        "metrics": metrics,
    }
    (run / "result.json").write_text(json.dumps(out, indent=2))
    print(
        f"[run] {job['kind']} seed {job['seed']}: demo_mse "
        f"{metrics['overall']['demo_mse']:.4f} in {result.wall_clock_s:.0f} s",
        flush=True,
    )
    return out


def run_all(args: argparse.Namespace, dirs: dict[str, dict[str, Path]]) -> None:
    from sarm2_gym.reward.config import SARM2Config
    from sarm2_gym.reward.frames import DEFAULT_CACHE_DIR, extract_features
    from sarm2_gym.reward.kinds import MODEL_KINDS

    cache = str(args.cache_dir or DEFAULT_CACHE_DIR)
    every = [d for t in dirs.values() for d in t.values()]
    config = SARM2Config(encoder_input_size=args.encoder_input_size)
    t0 = time.time()
    extract_features(
        every, config, cache_dir=cache, num_workers=args.num_workers, device=args.device
    )
    print(f"[features] ready in {time.time() - t0:.0f} s", flush=True)
    kinds = args.kinds or list(MODEL_KINDS)
    jobs = []
    for seed in args.seeds:
        for kind in kinds:
            run = args.out / "runs" / f"{kind}_s{seed}"
            if (run / "result.json").is_file():
                continue
            jobs.append(
                {
                    "kind": kind,
                    "seed": seed,
                    "run": str(run),
                    "steps": args.steps,
                    "config": config.to_dict(),
                    "batch_size": args.batch_size,
                    "device": args.device,
                    "cache_dir": cache,
                    "threads": args.threads,
                    "first_seed": args.seeds[0],
                    "text_embeddings": str(args.text_embeddings or ""),
                    "train": [str(t["train"]) for t in dirs.values()],
                    "heldout": [str(t[s]) for t in dirs.values() for s in SPLITS[1:]],
                }
            )
    print(f"[runs] {len(jobs)} to do", flush=True)
    start = time.time()
    if args.jobs <= 1:
        for job in jobs:
            if args.deadline and time.time() - start > args.deadline:
                print("[runs] deadline reached; stopping", flush=True)
                break
            run_one(job)
        return
    with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        pending = [pool.apply_async(run_one, (job,)) for job in jobs]
        for res in pending:
            remaining = args.deadline - (time.time() - start) if args.deadline else None
            try:
                res.get(timeout=max(remaining, 1) if remaining is not None else None)
            except mp.TimeoutError:
                print("[runs] deadline reached; leaving unfinished runs", flush=True)
                pool.terminate()
                return
            except Exception as exc:  # report and go on with the other runs
                print(f"[runs] a run failed: {exc!r}", flush=True)


def data_summary(dirs: dict[str, dict[str, Path]]) -> dict[str, dict[str, list[int]]]:
    """``{task: {split: [episodes, frames]}}``."""
    from sarm2_gym.data.reader import LeRobotDataset

    out: dict[str, dict[str, list[int]]] = {}
    for task, splits in dirs.items():
        out[task] = {}
        for split, path in splits.items():
            ds = LeRobotDataset(path)
            out[task][split] = [ds.num_episodes, ds.num_frames]
    return out


# ------------------------------------------------------------------------ throughput
def throughput(model_dir: Path, batches: tuple[int, ...] = (1, 8, 32)) -> dict[str, Any]:
    """Streaming-scorer frames/s (push + score) at several batch sizes, on this machine."""
    import torch

    from sarm2_gym.reward.streaming import StreamingScorer
    from sarm2_gym.wrappers.factory import load_reward_model

    model = load_reward_model(model_dir)
    cfg = model.config
    rng = np.random.default_rng(0)
    rows = []
    for n in batches:
        for query_every, steps in ((1, 40), (cfg.frame_gap, 200)):
            scorer = StreamingScorer(model, n, cfg.instructions[0])
            imgs = {
                c: rng.integers(0, 256, (n, cfg.image_size, cfg.image_size, 3), np.uint8)
                for c in cfg.camera_names
            }
            state = rng.normal(size=(n, cfg.state_dim)).astype(np.float32)
            scorer.push(imgs, state)
            scorer.score()  # warm-up
            t0 = time.perf_counter()
            for step in range(1, steps + 1):
                scorer.push(imgs, state)
                if step % query_every == 0:
                    scorer.score()
            dt = time.perf_counter() - t0
            rows.append(
                {
                    "batch": n,
                    "query_every": query_every,
                    "frames_per_s": n * steps / dt,
                    "encoded_per_frame": scorer.frames_encoded / (n * (steps + 1)),
                }
            )
    return {
        "rows": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "torch_threads": torch.get_num_threads(),
        "model": str(model_dir),
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
    }


THROUGHPUT_TITLE = "## Streaming scorer throughput"


def throughput_section(tp: dict[str, Any]) -> list[str]:
    """The report's throughput section (title, setup, table) from :func:`throughput`'s record."""
    when = f", measured {tp['measured']}" if "measured" in tp else ""
    parts = [
        THROUGHPUT_TITLE,
        "",
        f"`StreamingScorer` push + score with random 96x96 frames, 3 cameras, on "
        f"{tp['machine']}, {tp['torch_threads']} torch threads, model "
        f"`{tp['model']}`{when}. Frames/s = env frames consumed per second; with queries "
        "every frame gap only the layout frames are encoded (lazy encoding).",
        "",
        "| batch (envs) | query every | frames/s | encoded per frame |",
        "|---|---|---|---|",
    ]
    for row in tp["rows"]:
        parts.append(
            f"| {row['batch']} | {row['query_every']} | "
            f"{row['frames_per_s']:.1f} | {row['encoded_per_frame']:.2f} |"
        )
    return [*parts, ""]


def replace_throughput_section(doc: str, tp: dict[str, Any]) -> str:
    """``doc`` with its throughput section replaced by a fresh one (the rest unchanged).

    Raises:
        ValueError: ``doc`` has no throughput section to replace.
    """
    lines = doc.split("\n")
    if THROUGHPUT_TITLE not in lines:
        raise ValueError(f"the page has no '{THROUGHPUT_TITLE}' section to replace")
    start = lines.index(THROUGHPUT_TITLE)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join([*lines[:start], *throughput_section(tp), *lines[end:]])


# --------------------------------------------------------------------------- report
def _fmt(values: list[float], digits: int = 4, sci: bool = False) -> str:
    """``mean ± std`` over seeds (sample std), or the single value; "–" when none."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return "–"
    spec = f".{digits - 1}e" if sci else f".{digits}f"
    if v.size == 1:
        return format(v[0], spec)
    return f"{format(v.mean(), spec)} ± {format(v.std(ddof=1), spec)}"


def _split_primitive_accuracy(metrics: dict[str, dict[str, float]]) -> None:
    """Blank the primitive accuracy of a run evaluated before demos and rollouts were apart.

    Such a run's ``primitive_acc`` counts every query frame, rollouts included, and must not
    be shown as the demonstrations' accuracy; it stays readable as ``primitive_acc_all``.
    """
    for group in metrics.values():
        if "primitive_acc_rollouts" not in group:
            group["primitive_acc_all"] = group.get("primitive_acc", float("nan"))
            group["primitive_acc"] = float("nan")
            group["primitive_acc_rollouts"] = float("nan")


def load_results(out: Path) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((out / "runs").glob("*/result.json")):
        r = json.loads(path.read_text())
        _split_primitive_accuracy(r["metrics"])
        results.setdefault(r["kind"], []).append(r)
    return results


def _per_task_table(
    results: dict[str, list[dict[str, Any]]], tasks: list[str], metric: str, kinds: list[str]
) -> str:
    lines = ["| model | " + " | ".join(tasks) + " | overall |", "|---|" + "---|" * (len(tasks) + 1)]
    for kind in kinds:
        runs = results.get(kind, [])
        cells = [
            _fmt(
                [r["metrics"].get(t, {}).get(metric, float("nan")) for r in runs],
                3,
                sci=metric.startswith("demo_mse"),
            )
            for t in [*tasks, "overall"]
        ]
        lines.append(f"| {LABELS.get(kind, kind)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean(
    results: dict[str, list[dict[str, Any]]], kind: str, metric: str, task: str = "overall"
) -> float:
    vals = [r["metrics"].get(task, {}).get(metric, float("nan")) for r in results.get(kind, [])]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _targets(results: dict[str, list[dict[str, Any]]], tasks: list[str]) -> list[str]:
    sarm2 = _mean(results, "sarm2", "demo_mse")
    base = {k: _mean(results, k, "demo_mse") for k in ("rewind", "sarm_v1")}
    base = {k: v for k, v in base.items() if np.isfinite(v)}
    lines = []
    if base and np.isfinite(sarm2):
        best_kind = min(base, key=base.__getitem__)
        ok = sarm2 <= 0.5 * base[best_kind]
        lines.append(
            f"- SARM2 overall demo MSE {sarm2:.3e} vs best baseline "
            f"({LABELS[best_kind]}) {base[best_kind]:.3e}: ratio "
            f"{sarm2 / base[best_kind]:.2f} (target <= 0.5) — "
            f"**{'met' if ok else 'not met'}**"
        )
    for kind in ("sarm2_no_stage", "sarm2_single_gate", "sarm2_mlp_head"):
        v = _mean(results, kind, "demo_mse")
        if np.isfinite(v) and np.isfinite(sarm2):
            lines.append(
                f"- {LABELS[kind]}: demo MSE {v:.3e} vs SARM2 {sarm2:.3e} — ablation "
                f"worse than SARM2: **{'yes' if v > sarm2 else 'no'}**"
            )
    for task in ("FoldShorts", "CleanWhiteboard"):
        if task not in tasks:
            lines.append(f"- Rollout Spearman on {task}: not measured (task not in the data)")
            continue
        v = _mean(results, "sarm2", "rollout_spearman", task)
        if np.isfinite(v):
            lines.append(
                f"- SARM2 rollout Spearman on {task}: {v:.3f} (target >= 0.9) — "
                f"**{'met' if v >= 0.9 else 'not met'}**"
            )
    acc = _mean(results, "sarm2", "primitive_acc")
    if np.isfinite(acc):
        lines.append(
            f"- SARM2 primitive accuracy on held-out demonstrations {acc:.3f} (target >= 0.9) — "
            f"**{'met' if acc >= 0.9 else 'not met'}**; on rollouts "
            f"{_mean(results, 'sarm2', 'primitive_acc_rollouts'):.3f}"
        )
    elif np.isfinite(old := _mean(results, "sarm2", "primitive_acc_all")):
        lines.append(
            f"- SARM2 primitive accuracy (target >= 0.9): not measured on demonstrations alone; "
            f"these runs were evaluated before demonstrations and rollouts were counted apart "
            f"(all query frames together: {old:.3f})"
        )
    return lines


def write_report(args: argparse.Namespace) -> str:
    from sarm2_gym.reward.evaluation import METRIC_LABELS, METRICS
    from sarm2_gym.reward.kinds import MODEL_KINDS

    results = load_results(args.out)
    kinds = [k for k in (args.kinds or MODEL_KINDS) if k in results]
    summary_path = args.out / "data_summary.json"
    data = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    tasks = list(data) or sorted(
        {t for rs in results.values() for r in rs for t in r["metrics"]} - {"overall"}
    )
    expected = len(args.kinds or MODEL_KINDS) * len(args.seeds)
    done = sum(len(v) for v in results.values())
    parts = ["# Reward models: SARM2 vs baselines and ablations", ""]
    if done < expected:
        parts += [
            f"> **PARTIAL RESULTS**: {done} of {expected} runs "
            f"({len(args.kinds or MODEL_KINDS)} models x {len(args.seeds)} seeds) have "
            "finished; the tables show what exists. Rerun the command below to continue.",
            "",
        ]
    machines = sorted({r["machine"] for rs in results.values() for r in rs})
    steps = sorted({r["steps"] for rs in results.values() for r in rs})
    parts += [
        f"Tasks in the data: {', '.join(tasks) or '–'}. Every model: same training episodes, "
        f"same cached EfficientNet-Lite0 features (128 px, frozen), batch {args.batch_size}, "
        f"{', '.join(map(str, steps)) or '–'} optimizer steps; seeds "
        f"{', '.join(str(s) for s in args.seeds)}; mean ± std over the seeds that finished. "
        f"Trained on: {'; '.join(machines) or '–'}.",
        "",
        "Metrics (see `sarm2_gym/reward/evaluation.py`): demo MSE = steps-to-go MSE on held-out "
        "expert demos at every frame gap (5 frames), macro over episodes, against privileged "
        "progress (and against the paper's linear t/T label); primitive accuracy at the same "
        "frames of the held-out demos (the paper validates its stage estimator on annotated "
        "demonstrations) and, apart, of the held-out rollouts (whose annotation names what the "
        "scripted policy intended: an abandoned attempt is `dummy` from the moment it gives "
        "up); stage accuracy (SARM v1) at all query frames; rollout Spearman = per-rollout "
        "Spearman of predicted vs privileged progress, averaged; rollout ρ = "
        "(#correct − #wrong)/N classifying each held-out rollout as success (final smoothed "
        "progress ≥ 0.9) / failed (< 0.25) / partial; VOC = value-order correlation on demos.",
        "",
        "Train wall-clock is the sum of a run's optimizer-step times (feature extraction, "
        "loading and evaluation excluded); runs shared their machine with up to `--jobs` other "
        "runs, so compare wall-clocks only within this report. Targets are privileged progress "
        "(`--target progress`, the simulator's stage-weighted progress, which is right on failed "
        "and partial episodes); demo MSE against the linear label shows how far privileged "
        "progress is from t/T on expert demos.",
        "",
        "## Overall",
        "",
        "| model | "
        + " | ".join(METRIC_LABELS[m] for m in METRICS)
        + " | train wall-clock (s) | seeds |",
        "|---|" + "---|" * (len(METRICS) + 2),
    ]
    for kind in kinds:
        runs = results[kind]
        cells = [
            _fmt([r["metrics"]["overall"][m] for r in runs], 3, sci=m.startswith("demo_mse"))
            for m in METRICS
        ]
        wall = _fmt([r["wall_clock_s"] for r in runs], 0)
        parts.append(f"| {LABELS[kind]} | " + " | ".join(cells) + f" | {wall} | {len(runs)} |")
    parts += ["", "## Targets (issue #4)", "", *_targets(results, tasks), ""]
    for metric, title in (
        ("demo_mse", "Held-out demo MSE per task"),
        ("rollout_spearman", "Rollout Spearman per task"),
        ("rollout_rho", "Rollout ρ per task"),
        (
            "primitive_acc",
            "Primitive accuracy per task on held-out demonstrations (stage estimator)",
        ),
    ):
        parts += [f"## {title}", "", _per_task_table(results, tasks, metric, kinds), ""]
    tp_path = args.out / "throughput.json"
    if tp_path.is_file():
        parts += throughput_section(json.loads(tp_path.read_text()))
    if data:
        parts += [
            "## Data",
            "",
            "| task | train (episodes / frames) | held-out demos | held-out rollouts |",
            "|---|---|---|---|",
        ]
        for task, splits in data.items():
            parts.append(
                f"| {task} | " + " | ".join(f"{e} / {f}" for e, f in splits.values()) + " |"
            )
        parts.append("")
    plots = sorted((args.doc.parent / "reward_model").glob("*.png"))
    if plots:
        parts += ["## Example curves (SARM2, seed 0)", ""]
        parts += [f"![{p.stem}](reward_model/{p.name})" for p in plots] + [""]
    parts += [
        "## Commands",
        "",
        "```bash",
        *(args.command.splitlines() or ["python " + " ".join(sys.argv)]),
        "```",
        "",
    ]
    text = "\n".join(parts)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(text)
    return text


def copy_plots(args: argparse.Namespace) -> None:
    """Copy the SARM2 seed-0 demo and rollout curves of two tasks next to the report."""
    src = args.out / "runs" / f"sarm2_s{args.seeds[0]}" / "eval" / "plots"
    if not src.is_dir():
        return
    dst = args.doc.parent / "reward_model"
    dst.mkdir(parents=True, exist_ok=True)
    for old in dst.glob("*.png"):
        old.unlink()
    plots = sorted(src.glob("*.png"))
    tasks = [
        t for t in ("CleanWhiteboard", "FoldShorts") if any(p.name.startswith(t) for p in plots)
    ]
    for task in tasks or sorted({p.name.split("_")[0] for p in plots})[:2]:
        for p in [q for q in plots if q.name.startswith(f"{task}_")][:2]:
            shutil.copy2(p, dst / p.name)


def package(args: argparse.Namespace) -> None:
    """Store the SARM2 seed-0 model with float16 weights (loads back as float32)."""
    from sarm2_gym.reward.model import SARM2RewardModel

    src = args.out / "runs" / f"sarm2_s{args.seeds[0]}" / "model"
    if not (src / "config.json").is_file():
        print(f"[package] {src} not trained yet", flush=True)
        return
    SARM2RewardModel.from_pretrained(src).half().save_pretrained(args.package)
    print(f"[package] {src} -> {args.package} (float16)", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.throughput_only:
        if args.package is None:
            raise SystemExit("--throughput-only needs --package (the model to measure)")
        page = replace_throughput_section(args.doc.read_text(), throughput(args.package))
        tmp = args.doc.with_suffix(".md.tmp")
        tmp.write_text(page)
        tmp.replace(args.doc)  # atomic: an interrupted run leaves the page as it was
        print(f"[throughput] section of {args.doc} replaced", flush=True)
        return
    if args.generate and not args.report_only:
        generate(args)
    dirs = task_dirs(args.data_root, args.tasks)
    if dirs and not args.report_only:
        (args.out / "data_summary.json").write_text(json.dumps(data_summary(dirs), indent=2))
        run_all(args, dirs)
    if args.package and not args.report_only:
        package(args)
    if args.throughput:
        model_dir = args.package or args.out / "runs" / f"sarm2_s{args.seeds[0]}" / "model"
        if (model_dir / "config.json").is_file():
            tp = throughput(model_dir)
            (args.out / "throughput.json").write_text(json.dumps(tp, indent=2))
        else:
            print(f"[throughput] no model at {model_dir}; skipped", flush=True)
    copy_plots(args)
    print(write_report(args))


if __name__ == "__main__":
    main()
