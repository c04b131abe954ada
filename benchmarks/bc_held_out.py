r"""BC's error on held-out demonstrations as training goes on -> docs/results/bc_held_out.md.

Reads BC runs trained with held-out demonstrations (``sarm2 bc --val-episodes N``, or
``benchmarks/spiral.py --bc-val-episodes N``): each run's ``validation.json`` holds, every
``--val-every`` steps, the policy's flow-matching loss and sampled-chunk error on the held-out
episodes and on as many training frames (:mod:`sarm2_gym.algos.vla.validation`). The page plots
both against the training step, one panel per run, and tabulates where the held-out error was
lowest, where it ended, the gap to the training frames, and the run's success on the env where
``benchmarks/spiral.py`` evaluated it (its ``result.json``).

``--score`` also measures finished policies that were trained without held-out episodes, the
same way, on episodes of a dataset they never saw (``--score-data``, ``--score-episodes``): e.g.
the base policies of other pages whose demonstrations were the first N of a longer recording.

No training happens here: the runs come from their own commands, which the page quotes
(``--command``). Rerun this script to refresh the page while they are still training.

Usage:
    python benchmarks/bc_held_out.py --doc docs/results/bc_held_out.md \
        --root DATA --runs "CleanWhiteboard, 30000 steps=CleanWhiteboard/bc/seed0" ...
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sarm2_gym.algos.baselines.common import fresh_latent_success
from sarm2_gym.common.files import atomic_write

METRIC = "chunk_mse"  # what deployment executes; the flow loss is the training objective


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="LABEL=BC_FOLDER pairs (folders relative to --root), in the order the page shows "
        "them.",
    )
    p.add_argument(
        "--root", type=Path, default=Path("."), help="Folder the BC_FOLDERs are relative to."
    )
    p.add_argument(
        "--score",
        nargs="*",
        default=[],
        help="LABEL=BC_FOLDER pairs (relative to --root) of finished policies to measure on "
        "--score-data's --score-episodes.",
    )
    p.add_argument("--score-data", type=Path, help="Dataset (relative to --root) --score reads.")
    p.add_argument(
        "--score-episodes", default="", help="START:END, episodes of --score-data (END excluded)."
    )
    p.add_argument("--doc", type=Path, default=Path("docs/results/bc_held_out.md"))
    p.add_argument("--command", default="", help="Command lines quoted in the report.")
    p.add_argument("--note", default="", help="Paragraph printed under the page's title.")
    return p.parse_args(argv)


def read_run(label: str, folder: Path) -> dict[str, Any]:
    """A run's validation rows, BC summary and evaluation (what exists of them)."""
    log = folder / "validation.json"
    if not log.is_file():
        raise SystemExit(f"{folder} has no validation.json: was it trained with --val-episodes?")
    rows = json.loads(log.read_text())["rows"]
    if not rows:
        raise SystemExit(f"{log} holds no measurement yet")
    summary = folder / "bc_summary.json"
    result = folder / "result.json"
    return {
        "label": label,
        "rows": rows,
        "summary": json.loads(summary.read_text()) if summary.is_file() else None,
        "result": json.loads(result.read_text()) if result.is_file() else None,
    }


def score_policies(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``--score``: each finished policy measured on the same held-out episodes and draws."""
    import torch

    from sarm2_gym.algos.vla import TinyVLA
    from sarm2_gym.algos.vla.data import load_demos
    from sarm2_gym.algos.vla.validation import BCProbe, bc_metrics

    start, sep, end = args.score_episodes.partition(":")
    if not sep or args.score_data is None:
        raise SystemExit("--score needs --score-data and --score-episodes START:END")
    torch.set_num_threads(1)
    episodes = range(int(start), int(end))
    probe, inputs, rows = None, None, []
    for spec in args.score:
        label, sep, folder = spec.partition("=")
        if not sep:
            raise SystemExit(f"--score takes LABEL=BC_FOLDER, got {spec!r}")
        policy = TinyVLA.from_pretrained(args.root / folder)
        cfg = policy.config
        # One probe for all: every policy must read the same inputs as the first.
        reads = {"cameras": cfg.cameras, "image_size": cfg.image_size, "encoder": cfg.image_encoder}
        if inputs is not None and reads != inputs:
            raise SystemExit(f"--score {label!r} reads {reads}, the first policy {inputs}")
        inputs = reads
        if probe is None:
            demos = load_demos(
                [args.root / args.score_data],
                cameras=cfg.cameras,
                image_size=cfg.image_size,
                episode_ranges=[episodes],
                instructions=policy.instructions,
            )
            probe = BCProbe.spread("heldout", demos, 512)
        result_file = args.root / folder / "result.json"
        result = json.loads(result_file.read_text()) if result_file.is_file() else None
        summary = json.loads((args.root / folder / "bc_summary.json").read_text())
        rows.append(
            {"label": label, "steps": summary["steps"], "result": result}
            | bc_metrics(policy, probe)
        )
    return rows


def score_table(rows: list[dict[str, Any]]) -> list[str]:
    """One row per scored policy."""
    lines = [
        "| policy | BC steps | held-out flow loss | held-out chunk error | success, fresh "
        "latents | with fixed latents |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['steps']} | {row['heldout/flow_loss']:.4f} | "
            f"{row['heldout/chunk_mse']:.4f} | {_success_cells(row['result'])} |"
        )
    return lines


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _success_cells(result: dict[str, Any] | None) -> str:
    """'fresh | fixed' success of a run's env evaluation ('–' where it has none)."""
    fresh = None if result is None else fresh_latent_success(result)
    fixed = None if result is None else float(result["success_rate"])
    return f"{_pct(fresh)} | {_pct(fixed)}"


def table(runs: list[dict[str, Any]]) -> list[str]:
    """One row per run."""
    lines = [
        "| run | steps measured | held-out chunk error: lowest (step) | at the last step | "
        "training frames, last step | held-out / training, last step | held-out flow loss, "
        "lowest (step) / last | success, fresh latents | with fixed latents |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        rows = run["rows"]
        best = min(rows, key=lambda r: r[f"heldout/{METRIC}"])
        best_flow = min(rows, key=lambda r: r["heldout/flow_loss"])
        last = rows[-1]
        done = run["summary"] is not None and run["summary"]["steps"] == last["step"]
        steps = f"{last['step']}" + ("" if done else " (unfinished)")
        lines.append(
            f"| {run['label']} | {steps} | {best[f'heldout/{METRIC}']:.4f} ({best['step']}) | "
            f"{last[f'heldout/{METRIC}']:.4f} | {last[f'train_probe/{METRIC}']:.4f} | "
            f"{last[f'heldout/{METRIC}'] / last[f'train_probe/{METRIC}']:.1f} | "
            f"{best_flow['heldout/flow_loss']:.4f} ({best_flow['step']}) / "
            f"{last['heldout/flow_loss']:.4f} | {_success_cells(run['result'])} |"
        )
    return lines


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Held-out and training-frame chunk error (solid) and flow loss (dashed) per run."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        steps = [r["step"] for r in run["rows"]]
        for probe, color in (("heldout", "tab:red"), ("train_probe", "tab:blue")):
            name = "held-out" if probe == "heldout" else "training frames"
            ax.plot(steps, [r[f"{probe}/{METRIC}"] for r in run["rows"]], color=color,
                    label=f"{name}: chunk error")  # fmt: skip
            ax.plot(steps, [r[f"{probe}/flow_loss"] for r in run["rows"]], color=color,
                    linestyle="--", label=f"{name}: flow loss")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("BC step")
        ax.set_title(run["label"], fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalised action units (log)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def render(
    args: argparse.Namespace, runs: list[dict[str, Any]], scored: list[dict[str, Any]]
) -> str:
    png = args.doc.with_suffix(".png")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    training = [r["label"] for r in runs if r["summary"] is None]
    parts = ["# BC on held-out demonstrations", ""]
    if training:
        parts += [
            f"> **PARTIAL** ({stamp}): not finished: {', '.join(training)} (the commands "
            "below resume them; rerun this script afterwards).",
            "",
        ]
    if args.note:
        parts += [args.note, ""]
    parts += [
        f"![held-out error]({png.name})",
        "",
        "## Setup",
        "",
        f"- Machine: {platform.machine()}, CPU; the BC runs' own commands are below.",
        "- Held-out: the last N recorded demonstrations of the dataset, never trained on "
        "(`--val-episodes N`); every 500 steps BC measures the policy it would export on up to "
        "512 frames spread over them, and on as many frames spread over its training episodes, "
        "each time with the same noise, flow times and latents.",
        "- Chunk error: mean squared error, in the policy's normalised action units, between "
        "the chunk the policy samples from a fixed latent and the demonstration's chunk "
        "(steps past an episode's end left out). Flow loss: the training objective on the same "
        "frames. 'held-out / training': the ratio of the two chunk errors at the last step.",
        "- Success: 50 held-out env seeds as `benchmarks/spiral.py` evaluates BC (fresh latents "
        "per chunk; fixed latents after), where the run has been evaluated.",
        "",
        "## Results",
        "",
        *table(runs),
        "",
    ]
    if scored:
        parts += [
            f"### Finished policies on episodes {args.score_episodes} of {args.score_data.name}",
            "",
            "Policies trained on earlier episodes of the same recording, none of these, "
            "measured as above on the same frames with the same draws. Success: their own "
            "evaluation on the env (result.json).",
            "",
            *score_table(scored),
            "",
        ]
    score_cli = ""
    if scored:
        score_cli = (
            f" --score-data {args.score_data} --score-episodes {args.score_episodes} --score "
            + " ".join(f'"{spec}"' for spec in args.score)
        )
    parts += [
        "## Command",
        "",
        "```bash",
        *(args.command.splitlines() or ["(not given)"]),
        "python benchmarks/bc_held_out.py --root DATA --doc "
        + str(args.doc)
        + " --runs "
        + " ".join(f'"{spec}"' for spec in args.runs)
        + score_cli
        + "  # this page",
        "```",
        "",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs = []
    for spec in args.runs:
        label, sep, folder = spec.partition("=")
        if not sep or not label or not folder:
            raise SystemExit(f"--runs takes LABEL=BC_FOLDER, got {spec!r}")
        runs.append(read_run(label, args.root / folder))
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, args.doc.with_suffix(".png"))
    scored = score_policies(args) if args.score else []
    text = render(args, runs, scored)
    atomic_write(args.doc, lambda tmp: tmp.write_text(text))  # a killed run leaves the old page
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
