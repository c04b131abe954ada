r"""Where SPIRAL's base policy starts: BC success vs demonstrations and DART pushes.

The paper starts SPIRAL from a VLA that succeeds about half the time. ``benchmarks/spiral.py``
gets there by limiting the demonstrations TinyVLA is cloned from; this sweep measures what that
knob does. For each task it trains TinyVLA by BC on the first N demonstrations of a kind
(``sarm2_gym.data.generation.DEMO_KINDS``):

- ``expert``: the full-speed scripted expert;
- ``dart``: the same expert with executed-only pushes (the ``"dart"`` preset,
  :attr:`~sarm2_gym.envs.core.expert.ExpertQuality.perturbation`): the data also show how to steer
  back from states off the expert's path;
- ``sweep`` / ``dart_sweep`` (CleanWhiteboard only): as above, the expert wiping the whole board
  in lanes instead of chasing the nearest ink (its ``wipe="sweep"`` option).

Every policy is scored on *development* seeds (900,000 onwards): neither the training seeds
(0, 1, ...) nor the held-out seeds ``spiral.md`` reports (1,000,000 onwards), so choosing a
setting here does not tune on the reported numbers. Each policy is run twice: executing its
whole 10-step chunks (``n_action_steps`` 10, the default) and half of each (5, replanning
twice as often).

Phases, each resumable (a finished unit's file is kept and skipped):

1. collect: ``ROOT/demos/<Task>/<kind>/`` (``--workers`` recording processes);
2. train: ``ROOT/<Task>/<kind>-<n>/`` (a TinyVLA checkpoint; ``--train-workers`` runs side by
   side, each on ``--device``);
3. evaluate: ``ROOT/<Task>/<kind>-<n>/eval_nas<k>.json`` (the seeds split over ``--workers``
   processes, one torch thread each).

Then the page (``--doc``, default ``docs/results/bc_base_policy.md``) and its plot (same name,
``.png``) are written; ``--report-only`` only rewrites them.

Example (on a machine with a GPU and 16 cores)::

    python benchmarks/bc_base_policy.py --root DATA --device cuda --workers 16 --train-workers 10

``--phases`` runs part of the work: several ``--model``/``--tag`` calls can share one
``collect`` and then train side by side on one GPU; a policy trained elsewhere is evaluated with
``--phases evaluate``. Each run records where it was trained (``trained_on.json``), and the page
says so.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarm2_gym.algos.common.evaluation import tally_stages
from sarm2_gym.data.generation import DEMO_KINDS
from sarm2_gym.envs.registry import env_ids_by_name

TASK_IDS = env_ids_by_name()
DEFAULT_TASKS = ("CleanWhiteboard", "FoldShorts")  # the two tasks spiral.md reports
KINDS = tuple(DEMO_KINDS)
DEV_SEED_START = 900_000  # between the training seeds (0..) and the held-out ones (1,000,000..)
DEFAULT_VARIANTS = ("expert:20", "expert:60", "expert:150", "dart:60", "dart:150")
PHASES = ("collect", "train", "evaluate")


@dataclass(frozen=True)
class Variant:
    """``kind`` demonstrations, the first ``demos`` of them, for the policy ``tag``."""

    kind: str
    demos: int
    tag: str = ""  # names a non-default TinyVLA (``--model``); "" is the default policy

    @property
    def name(self) -> str:
        """Folder name, e.g. ``dart-60`` or ``expert-45-grid4``."""
        return f"{self.kind}-{self.demos}" + (f"-{self.tag}" if self.tag else "")

    @classmethod
    def parse(cls, text: str) -> Variant:
        """From ``KIND:N`` (the command-line form)."""
        kind, _, n = text.partition(":")
        if kind not in KINDS or not n.isdigit() or int(n) < 1:
            raise argparse.ArgumentTypeError(
                f"variant {text!r} must be KIND:N with KIND in {KINDS} and N >= 1"
            )
        return cls(kind, int(n))

    @classmethod
    def from_name(cls, name: str) -> Variant | None:
        """Inverse of :attr:`name` (``None`` for a folder that is not a run)."""
        kind, _, rest = name.partition("-")
        n, _, tag = rest.partition("-")
        if kind not in KINDS or not n.isdigit():
            return None
        return cls(kind, int(n), tag)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True, help="Data and run folder.")
    p.add_argument("--doc", type=Path, default=Path("docs/results/bc_base_policy.md"))
    p.add_argument("--tasks", nargs="*", default=list(DEFAULT_TASKS), choices=list(TASK_IDS))
    p.add_argument("--variants", nargs="*", type=Variant.parse, default=None)
    p.add_argument("--steps", type=int, default=6000, help="BC steps (spiral.py's budget).")
    p.add_argument("--batch-size", type=int, default=64, help="BC samples per step.")
    p.add_argument("--seed", type=int, default=0, help="BC seed.")
    p.add_argument("--eval-episodes", type=int, default=30, help="Development seeds per policy.")
    p.add_argument("--n-action-steps", nargs="*", type=int, default=[10, 5])
    p.add_argument("--max-episode-steps", type=int, default=None, help="Default: the task's.")
    p.add_argument("--image-size", type=int, default=96, help="Recorded / rendered frame side.")
    p.add_argument("--device", default="cpu", help="Torch device BC trains on.")
    p.add_argument("--workers", type=int, default=2, help="Recording / evaluation processes.")
    p.add_argument("--train-workers", type=int, default=1, help="BC runs side by side.")
    p.add_argument("--train-threads", type=int, default=1, help="Torch threads per BC run.")
    p.add_argument(
        "--model",
        default=None,
        help='TinyVLAConfig fields as JSON for every policy of this call, e.g. \'{"image_size": '
        '96, "spatial_grid": 4}\'; needs --tag, which names their folders.',
    )
    p.add_argument("--tag", default="", help="Folder suffix of the --model policies.")
    p.add_argument(
        "--text-embeddings",
        type=Path,
        default=None,
        help="JSON of stored instruction embeddings (StoredTextEncoder) for machines without "
        "the sentence-encoder package; default: the packaged MiniLM.",
    )
    p.add_argument(
        "--phases",
        nargs="*",
        choices=PHASES,
        default=list(PHASES),
        help="Phases to run before the report (e.g. several --model calls can share one "
        "'collect', then train side by side).",
    )
    p.add_argument("--report-only", action="store_true", help="Same as --phases with none.")
    p.add_argument("--command", default="", help="Command line quoted in the report.")
    p.add_argument("--note", default="", help="A paragraph the report adds to its setup text.")
    args = p.parse_args(argv)
    if bool(args.model) != bool(args.tag) or "-" in args.tag:
        p.error("--model and --tag go together, and the tag has no '-'")
    args.model = json.loads(args.model) if args.model else {}
    if args.variants is None:  # a report with no --variants shows just the runs on disk
        no_runs = args.report_only or not args.phases
        args.variants = [] if no_runs else [Variant.parse(v) for v in DEFAULT_VARIANTS]
    variants = args.variants
    args.variants = [Variant(v.kind, v.demos, args.tag) for v in variants]
    return args


# ------------------------------------------------------------------------------------ phases
def demos_dir(args: argparse.Namespace, task: str, kind: str) -> Path:
    return args.root / "demos" / task / kind


def run_dir(args: argparse.Namespace, task: str, variant: Variant) -> Path:
    return args.root / task / variant.name


def collect_demos(args: argparse.Namespace) -> None:
    """Record as many demonstrations of each kind as the largest variant needs."""
    from sarm2_gym.data.generation import collect

    for task in args.tasks:
        for kind in KINDS:
            want = max((v.demos for v in args.variants if v.kind == kind), default=0)
            if want:
                preset, options = DEMO_KINDS[kind]
                collect(
                    [TASK_IDS[task]],
                    want,
                    demos_dir(args, task, kind),
                    quality=preset,
                    expert_options=options,
                    image_size=args.image_size,
                    num_workers=args.workers,
                )


def _train_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One BC run in a worker process (resumes a killed one)."""
    import torch

    from sarm2_gym.algos.common.io import atomic_write_json
    from sarm2_gym.algos.vla import BCConfig, TinyVLAConfig, train_bc
    from sarm2_gym.reward.encoders.text import StoredTextEncoder

    torch.set_num_threads(spec.pop("threads"))
    text = spec.pop("text_embeddings")
    encoder = StoredTextEncoder(text) if text else None
    model = TinyVLAConfig.from_dict(spec.pop("model"))
    config = BCConfig(**spec, model=model)
    out = Path(config.out)
    summary = _read(out / "bc_summary.json")
    if summary is not None and summary["steps"] == config.steps:
        return summary  # finished; a larger --steps continues the run from its snapshot
    train_bc(config, resume=True, text_encoder=encoder, progress_bar=False)
    # Where it was trained: the page may be written (and the policy evaluated) elsewhere.
    atomic_write_json(
        out / "trained_on.json",
        {
            "machine": machine(),
            "device": config.device,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    )
    return dict(json.loads((out / "bc_summary.json").read_text()))


def train_all(args: argparse.Namespace) -> None:
    specs = []
    for task in args.tasks:
        for v in args.variants:
            specs.append(
                {
                    "data": (str(demos_dir(args, task, v.kind)),),
                    "out": str(run_dir(args, task, v)),
                    "steps": args.steps,
                    "batch_size": args.batch_size,
                    "max_episodes": v.demos,
                    "seed": args.seed,
                    "device": args.device,
                    "model": args.model,
                    "threads": args.train_threads,
                    "text_embeddings": str(args.text_embeddings) if args.text_embeddings else None,
                }
            )
    _run_pool(_train_one, specs, args.train_workers, "train", lambda s: s["out"])


def _eval_part(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Episodes of one policy on some seeds, in a worker process on one CPU thread."""
    import torch

    from sarm2_gym.algos.baselines.common import evaluate_on_task, task_instruction
    from sarm2_gym.algos.vla import TinyVLA, VLAController

    torch.set_num_threads(1)
    policy = TinyVLA.from_pretrained(spec["ckpt"])
    controller = VLAController(
        policy,
        task_instruction(spec["task"], policy),
        n_action_steps=spec["nas"],
        seed=spec["seed"],
    )
    result = evaluate_on_task(
        controller,
        spec["task"],
        spec["seeds"],
        image_size=spec["image_size"],
        n_envs=1,
        max_episode_steps=spec["max_episode_steps"],
    )
    return [
        {
            "seed": s,
            "success": bool(ok),
            "length": int(n),
            "final_progress": float(p),
            "final_stage": int(k),
            "furthest_stage": int(f),
        }
        for s, ok, n, p, k, f in zip(
            result.seeds,
            result.successes,
            result.lengths,
            result.final_progress,
            result.final_stage,
            result.furthest_stage,
            strict=True,
        )
    ]


def eval_path(args: argparse.Namespace, task: str, variant: Variant, nas: int) -> Path:
    return run_dir(args, task, variant) / f"eval_nas{nas}.json"


def evaluate_all(args: argparse.Namespace) -> None:
    from sarm2_gym.algos.common.io import atomic_write_json

    seeds = list(range(DEV_SEED_START, DEV_SEED_START + args.eval_episodes))
    parts_per_eval = max(1, min(len(seeds), args.workers))
    specs, owners = [], []
    for task in args.tasks:
        for v in args.variants:
            for nas in args.n_action_steps:
                done = _read(eval_path(args, task, v, nas))
                if done is not None and [e["seed"] for e in done["episodes"]] == seeds:
                    continue  # evaluated on these seeds (another --eval-episodes reruns it)
                for chunk in np.array_split(np.array(seeds), parts_per_eval):
                    specs.append(
                        {
                            "ckpt": str(run_dir(args, task, v)),
                            "task": TASK_IDS[task],
                            "seeds": [int(s) for s in chunk],
                            "nas": nas,
                            "seed": args.seed,
                            "image_size": args.image_size,
                            "max_episode_steps": args.max_episode_steps,
                        }
                    )
                    owners.append((task, v, nas))
    episodes: dict[tuple[str, Variant, int], list[dict[str, Any]]] = {}
    left = {owner: owners.count(owner) for owner in set(owners)}
    started = time.perf_counter()

    def finished(i: int, part: list[dict[str, Any]]) -> None:
        # Written as soon as its last part is in: a run cut short keeps every finished policy.
        owner = owners[i]
        episodes.setdefault(owner, []).extend(part)
        left[owner] -= 1
        if left[owner]:
            return
        task, v, nas = owner
        eps = sorted(episodes.pop(owner), key=lambda e: e["seed"])
        atomic_write_json(
            eval_path(args, task, v, nas),
            {
                "task": TASK_IDS[task],
                "variant": v.name,
                "n_action_steps": nas,
                "success_rate": float(np.mean([e["success"] for e in eps])),
                "episodes": eps,
                "written_after_seconds": time.perf_counter() - started,
            },
        )

    _run_pool(_eval_part, specs, args.workers, "evaluate", lambda s: s["ckpt"], finished)


def _run_pool(
    fn: Callable[[dict[str, Any]], Any],
    specs: list[dict[str, Any]],
    workers: int,
    what: str,
    label: Callable[[dict[str, Any]], str],
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``fn`` over ``specs`` in ``workers`` fresh processes (CUDA and MuJoCo GL need a spawn).

    ``on_result(i, result)`` is called as each one finishes, in the order they finish.
    """
    from tqdm.auto import tqdm

    if not specs:
        return []
    results: list[Any] = [None] * len(specs)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        futures: dict[Future[Any], int] = {
            pool.submit(fn, dict(spec)): i for i, spec in enumerate(specs)
        }
        for fut in tqdm(as_completed(futures), total=len(futures), desc=what):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except Exception as exc:
                raise RuntimeError(f"{what} failed for {label(specs[i])}: {exc}") from exc
            if on_result is not None:
                on_result(i, results[i])
    return results


# ------------------------------------------------------------------------------------ report
def machine() -> str:
    import torch

    text = f"{platform.machine()}, {os.cpu_count()} CPUs"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _demo_stats(args: argparse.Namespace, task: str, kind: str, n: int) -> str:
    from sarm2_gym.data.reader import LeRobotDataset

    root = demos_dir(args, task, kind)
    if not root.is_dir():
        return "–"
    meta = LeRobotDataset(root).episodes_meta[:n]
    ok = sum(bool(m["success"]) for m in meta)
    return f"{ok}/{len(meta)}"


def variants_on_disk(args: argparse.Namespace, task: str) -> list[Variant]:
    """This call's variants and every other run folder of the task under the root."""
    found = list(args.variants)
    folder = args.root / task
    if folder.is_dir():
        for sub in sorted(folder.iterdir()):
            v = Variant.from_name(sub.name)
            if v is not None and v not in found and (sub / "config.json").is_file():
                found.append(v)
    return sorted(found, key=lambda v: (v.tag, v.kind, v.demos))


def rows(args: argparse.Namespace, task: str) -> Iterable[dict[str, Any]]:
    for v in variants_on_disk(args, task):
        summary = _read(run_dir(args, task, v) / "bc_summary.json")
        evals = {nas: _read(eval_path(args, task, v, nas)) for nas in args.n_action_steps}
        yield {"variant": v, "summary": summary, "evals": evals}


def _policy(args: argparse.Namespace, task: str, v: Variant) -> str:
    """What differs from the default TinyVLA, read from the checkpoint."""
    from sarm2_gym.algos.vla import TinyVLAConfig

    cfg = _read(run_dir(args, task, v) / "config.json")
    if cfg is None:
        return "–"
    default = TinyVLAConfig().to_dict()
    changed = {
        k: val
        for k, val in cfg["config"].items()
        # instructions and control limits come from the data and the task, not the recipe
        if k not in ("instructions", "control_limits")
        and json.dumps(val) != json.dumps(default.get(k))
    }
    return ", ".join(f"{k} {val}" for k, val in changed.items()) or "default"


def _trained_on(args: argparse.Namespace) -> str:
    """Machines and devices the runs on the page were trained on (from each run's record)."""
    seen: list[str] = []
    for task in args.tasks:
        for v in variants_on_disk(args, task):
            rec = _read(run_dir(args, task, v) / "trained_on.json")
            text = (
                "not recorded"
                if rec is None
                else f"{rec['machine']}, device `{rec['device']}`, "
                f"{rec.get('threads', 1)} torch thread(s) per run"
            )
            if (run_dir(args, task, v) / "config.json").is_file() and text not in seen:
                seen.append(text)
    return "; ".join(seen) or "nothing trained yet"


def _stage_names(task: str) -> tuple[list[str], np.ndarray]:
    """Short stage names and progress breakpoints of a task (from its class: no env is built)."""
    from sarm2_gym.envs.core.stages import StageMachine
    from sarm2_gym.envs.registry import env_class

    stages = env_class(TASK_IDS[task]).stages
    return [st.primitive for st in stages], np.asarray(StageMachine(stages).breakpoints)


def _setup_text(args: argparse.Namespace) -> str:
    """What was trained and how it was scored, read from the defaults the runs used."""
    from sarm2_gym.algos.vla import TinyVLAConfig
    from sarm2_gym.envs.core.expert import QUALITY_PRESETS
    from sarm2_gym.envs.experts import clean_whiteboard as cw

    vla = TinyVLAConfig()
    dart = QUALITY_PRESETS["dart"]
    miss = QUALITY_PRESETS["grasp_miss"]
    lo, hi = dart.perturbation_steps
    limit = (
        "time limit"
        if args.max_episode_steps is None
        else f"a time limit of {args.max_episode_steps} steps"
    )
    return (
        f"TinyVLA (`sarm2 bc` defaults: {vla.image_encoder.upper()} encoder at "
        f"{vla.image_size} px, chunks of {vla.chunk_size}) behaviour-cloned for "
        f"{args.steps} steps of {args.batch_size} samples (seed {args.seed}) on the first N "
        "demonstrations of each kind, "
        f"scored on {args.eval_episodes} development seeds ({DEV_SEED_START:,} onwards; the "
        f"SPIRAL page reports other, held-out seeds) with the env's own success flag and {limit}. "
        "`expert`: the full-speed scripted expert. `dart`: the same expert with executed-only "
        f"pushes (`--quality dart`: a push starts with probability {dart.perturbation:g} per "
        f"step, lasts {lo}-{hi} steps and moves the arms the expert is using by "
        f"{dart.perturbation_scale:g} of their top speed; the recorded actions stay the "
        "expert's). `sweep`, `dart_sweep` (CleanWhiteboard): the same, the expert wiping the "
        "whole board in three lanes before chasing any ink left (`--expert-option wipe=sweep`) "
        "instead of chasing the nearest ink from the start. `miss`: the expert whose grasp "
        f"attempts miss with probability {miss.grasp_miss:g} (`--quality grasp_miss`: the "
        f"descent is executed {miss.grasp_miss_offset[0] * 100:g}-"
        f"{miss.grasp_miss_offset[1] * 100:g} cm beside the object along the fingers' closing "
        "axis and the fingers close there, the recorded actions staying the expert's: it opens, "
        "rises and grasps again); `sweep_miss` (CleanWhiteboard): the sweeping expert with such "
        "misses. `dense_sweep`, "
        "`dense_sweep_miss` (CleanWhiteboard): the same with four lanes overlapping by 3.2 cm "
        "instead of three overlapping by 1 cm (`--expert-option wipe=dense_sweep`). "
        "`dense_sweep_lifted` (CleanWhiteboard): the dense sweep with some lanes executed with "
        f"the felt {cw.LIFT_CLEARANCE * 100:g} cm above the board (each with probability "
        f"{cw.LIFT_PROBABILITY:g}, at least one; `--expert-option lanes=lifted`), the recorded "
        "actions pressing: those lanes leave ink, which the expert chases before it puts the "
        "eraser away. "
        f"Demonstrations and evaluation episodes are rendered at {args.image_size} px "
        "and resized to the policy's input size. 'progress': mean final task progress. "
        "'Where episodes ended': the env's stage at the end; a stage machine goes back when a "
        "finished stage comes undone (a fold that slid open, an eraser let go before the board "
        "was clean), so 'furthest stage of the failures' counts each failed episode at the "
        "highest stage it reached (evaluations since this column was added)."
    )


def _ended_in(entry: dict[str, Any] | None, names: list[str], bounds: np.ndarray) -> str:
    """How many episodes ended in each stage, and succeeded.

    The stage the env reported at the end where the evaluation recorded it (``final_stage``),
    else the stage its final progress falls in (older evaluation files).
    """
    if entry is None:
        return "–"
    episodes = entry["episodes"]
    stages = [
        e["final_stage"]
        if e.get("final_stage", -1) >= 0
        else int(np.searchsorted(bounds[1:-1], e["final_progress"], side="right"))
        for e in episodes
    ]
    tally = tally_stages([e["success"] for e in episodes], stages, None, len(names))
    return _count_line([*_stage_labels(names), "success"], tally.ended)


def _stage_labels(names: list[str]) -> list[str]:
    return [f"{i + 1}. {n}" for i, n in enumerate(names)]


def _count_line(labels: list[str], counts: list[int]) -> str:
    return " · ".join(f"{label} {c}" for label, c in zip(labels, counts, strict=True))


def _got_to(entry: dict[str, Any] | None, names: list[str]) -> str:
    """How many failed episodes got at most as far as each stage (``furthest_stage``).

    "–" for evaluation files written before the furthest stage was recorded.
    """
    if entry is None or any("furthest_stage" not in e for e in entry["episodes"]):
        return "–"
    episodes = entry["episodes"]
    tally = tally_stages(
        [e["success"] for e in episodes],
        [-1] * len(episodes),
        [e["furthest_stage"] for e in episodes],
        len(names),
    )
    return _count_line(_stage_labels(names), tally.furthest)


def _rate(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "–"
    eps = entry["episodes"]
    ok = sum(e["success"] for e in eps)
    progress = np.mean([e["final_progress"] for e in eps])
    return f"{100 * ok / len(eps):.0f} % ({ok}/{len(eps)}), progress {progress:.2f}"


def plot(args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.tasks), figsize=(5 * len(args.tasks), 3.6), squeeze=False)
    width = 0.8 / max(len(args.n_action_steps), 1)
    for ax, task in zip(axes[0], args.tasks, strict=True):
        table = list(rows(args, task))
        x = np.arange(len(table))
        for k, nas in enumerate(args.n_action_steps):
            rates = [
                100 * row["evals"][nas]["success_rate"] if row["evals"].get(nas) else np.nan
                for row in table
            ]
            ax.bar(x + (k - (len(args.n_action_steps) - 1) / 2) * width, rates, width,
                   label=f"{nas} actions per chunk")  # fmt: skip
        ax.axhspan(40, 70, color="tab:green", alpha=0.1, label="paper's start (40-70 %)")
        ax.set_xticks(x, [row["variant"].name for row in table], rotation=20, fontsize=8)
        ax.set(title=task, ylabel="success on development seeds (%)", ylim=(0, 100))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(args: argparse.Namespace) -> None:
    doc = args.doc
    doc.parent.mkdir(parents=True, exist_ok=True)
    png = doc.with_suffix(".png")
    plot(args, png)
    nas_cols = " | ".join(f"success, {n} actions per chunk" for n in args.n_action_steps)
    lines = [
        "# Base policy: BC success vs demonstrations and DART pushes",
        "",
        f"![BC success per run]({png.name})",
        "",
        _setup_text(args),
        "",
        *([args.note, ""] if args.note else []),
        f"BC trained on: {_trained_on(args)}; `--train-workers` runs side by side (the "
        "wall-clocks are comparable only within a call). Evaluation on the CPU, one torch "
        f"thread per process; this page written on {machine()}.",
        "",
    ]
    for task in args.tasks:
        names, bounds = _stage_names(task)
        first = args.n_action_steps[0]
        lines += [
            f"## {task}",
            "",
            "| demos | policy | successful demos | frames | final BC loss | BC wall-clock (s) | "
            f"{nas_cols} | where episodes ended ({first} per chunk) | furthest stage of the "
            f"failures ({first} per chunk) |",
            "|---|---|---|---|---|---|" + "---|" * len(args.n_action_steps) + "---|---|",
        ]
        for row in rows(args, task):
            v, s = row["variant"], row["summary"]
            cells = [
                f"{v.kind} x {v.demos}",
                _policy(args, task, v),
                _demo_stats(args, task, v.kind, v.demos),
                str(s["frames"]) if s else "–",
                f"{s['final_loss']:.4f}" if s else "–",
                f"{s['wall_seconds_this_call']:.0f}" if s else "–",
                *(_rate(row["evals"][n]) for n in args.n_action_steps),
                _ended_in(row["evals"][first], names, bounds),
                _got_to(row["evals"][first], names),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Against the aim", ""]
    for task in args.tasks:
        best = max(
            (
                (e["success_rate"], row["variant"], nas)
                for row in rows(args, task)
                for nas, e in row["evals"].items()
                if e is not None
            ),
            default=None,
            key=lambda b: b[0],
        )
        if best is None:
            lines.append(f"- {task}: nothing evaluated yet.")
            continue
        rate, v, nas = best
        if rate == 0:
            lines.append(f"- {task}: no policy succeeded on any development seed.")
            continue
        verdict = "inside" if 0.4 <= rate <= 0.7 else "below" if rate < 0.4 else "above"
        lines.append(
            f"- {task}: best {100 * rate:.0f} % ({v.name}, {nas} actions per chunk), {verdict} "
            "the paper's 40-70 % starting point."
        )
    lines += [
        "",
        "## Command",
        "",
        "```bash",
        *(args.command.splitlines() or ["python benchmarks/bc_base_policy.py --root DATA"]),
        "```",
        "",
    ]
    doc.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    phases = {"collect": collect_demos, "train": train_all, "evaluate": evaluate_all}
    for name in [] if args.report_only else args.phases:
        start = time.perf_counter()
        phases[name](args)
        print(f"{name} {time.perf_counter() - start:.0f}s", flush=True)
    write_report(args)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
