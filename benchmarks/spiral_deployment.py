r"""Where a SPIRAL policy's success comes from -> docs/results/spiral_deployment.md.

A SPIRAL policy acts by drawing ``kappa`` latents, adding the residual actor's edit to each of the
frozen base policy's chunks, and executing the chunk the critic ensemble rates highest (spec §2.2,
best-of-kappa). This benchmark takes finished SPIRAL runs of ``benchmarks/spiral.py`` apart on the
held-out seeds, with fresh latents per chunk as deployed, through
:meth:`~sarm2_gym.algos.spiral.policies.ResidualChunkPolicy.set_deployment`:

- ``kappa`` latents per chunk (1: no choice by the critic; the run's own kappa; more);
- with or without the residual (without: the critic chooses among the base policy's own chunks;
  with ``kappa = 1`` that is the base policy);
- at latent temperatures (``--latent-temperatures``: latents ``z = T * N(0, I)``; the run's own
  temperature, 1 unless it ran with ``--latent-temperature``, is how it was trained and deployed);
- before any update (``--initial``): the run's own policy as it stood before its first round (the
  same seed, config and base policy, so the same initial networks), deployed as the run deploys:
  best of kappa base chunks, each with the initial near-zero residual, chosen by the initial,
  untrained critics. This is SPIRAL's true starting point; it is not the base policy.
  ``--initial-variants`` also takes that starting point apart at every requested
  ``(kappa, residual)`` pair, e.g. one latent plus the initial residual (no choice), or the
  untrained critics choosing among the base policy's own chunks (no residual).

The run's own deployment (its kappa, with the residual) uses the latent seed of the run's own
fresh-latent evaluation, so on the same held-out seeds it reproduces the number the run recorded
after its last round; the page says whether it did. Each cell is one evaluation (``--episodes``
episodes), so it carries the binomial spread of that many episodes.

Resumable: every evaluation is a JSON file under ``--out``; finished ones are skipped.

Usage:
    python benchmarks/spiral_deployment.py --root DATA --runs PlatesIntoBin \
        PlatesIntoBin:spiral_offline --seeds 0 1 2 --out DATA/deployment
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from sarm2_gym.algos.baselines.common import (
    eval_seeds,
    evaluate_on_task,
    fresh_latent_seed,
    fresh_latent_success,
)
from sarm2_gym.algos.common.io import atomic_write_json
from sarm2_gym.algos.spiral import SPIRAL, PrivilegedProgressLabeler
from sarm2_gym.algos.spiral.persistence import CHECKPOINT_DIR
from sarm2_gym.algos.vla.policy import wrap_env_for_policy
from sarm2_gym.common.files import atomic_write
from sarm2_gym.envs.registry import env_ids_by_name

TASK_IDS = env_ids_by_name()
DEFAULT_EPISODES = 50  # records of this many episodes keep the names they had before --episodes


class Run(NamedTuple):
    """The runs of one SPIRAL method on one task (``ROOT/<task>/<method>/seed<k>``)."""

    task: str
    method: str

    @classmethod
    def parse(cls, text: str) -> Run:
        """``"Task"`` or ``"Task:method"`` (method default ``spiral``)."""
        task, _, method = text.partition(":")
        if task not in TASK_IDS:
            raise argparse.ArgumentTypeError(f"unknown task {task!r}; known: {sorted(TASK_IDS)}")
        return cls(task, method or "spiral")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, required=True, help="--root of benchmarks/spiral.py.")
    p.add_argument(
        "--runs",
        nargs="+",
        type=Run.parse,
        required=True,
        help="TASK or TASK:METHOD (a SPIRAL method folder, default spiral), one page section each.",
    )
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--kappas", nargs="*", type=int, default=[1, 4, 16])
    p.add_argument(
        "--latent-temperatures",
        "--temperatures",  # the name the first pages quote
        dest="temperatures",
        nargs="*",
        type=float,
        default=[1.0],
        help="Latent temperatures (z = T * N(0, I), as `sarm2 spiral --latent-temperature`); "
        "every (kappa, residual) variant is evaluated at each.",
    )
    p.add_argument(
        "--initial",
        action="store_true",
        help="Also evaluate each run's policy before any update (its own deployment, at every "
        "temperature).",
    )
    p.add_argument(
        "--initial-variants",
        action="store_true",
        help="Evaluate the policy before any update at every (kappa, residual) pair as well, not "
        "only at its own deployment (implies --initial).",
    )
    p.add_argument("--episodes", type=int, default=DEFAULT_EPISODES)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--n-envs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="Torch threads.")
    p.add_argument("--out", type=Path, required=True, help="Folder of the evaluations.")
    p.add_argument("--doc", type=Path, default=Path("docs/results/spiral_deployment.md"))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--command", default="", help="Command line quoted in the report.")
    p.add_argument("--note", default="", help="Paragraph printed under the title.")
    args = p.parse_args(argv)
    args.initial = args.initial or args.initial_variants
    return args


def run_dir(args: argparse.Namespace, run: Run, seed: int) -> Path:
    return args.root / run.task / run.method / f"seed{seed}"


def records_dir(args: argparse.Namespace, run: Run, seed: int) -> Path:
    return args.out / run.task / run.method / f"seed{seed}"


Variant = tuple[int, bool, float, bool]
"""``(kappa, residual, temperature, initial)``; ``initial``: the policy before any update."""


def variants(args: argparse.Namespace, own_kappa: int, own_temperature: float) -> list[Variant]:
    """Every variant to evaluate, the run's own deployment (its kappa and temperature) first."""
    kappas = sorted({*args.kappas, own_kappa})
    temps = sorted(set(args.temperatures), key=lambda t: (t != own_temperature, -t))
    own: Variant = (own_kappa, True, own_temperature, False)
    pairs = [(k, r) for r in (True, False) for k in kappas]
    out = [own] + [(k, r, t, False) for t in temps for k, r in pairs if (k, r, t, False) != own]
    if not args.initial:
        return out
    # One latent without the residual is the base policy, the same before and after the updates.
    initial_pairs = [p for p in pairs if p != (1, False)] if args.initial_variants else []
    firsts = [(own_kappa, True), *(p for p in initial_pairs if p != (own_kappa, True))]
    return out + [(k, r, t, True) for t in temps for k, r in firsts]


def _key(variant: Variant, episodes: int) -> str:
    kappa, residual, temperature, initial = variant
    # Temperature 1 and the default episode count keep the keys of the records made before
    # either was a choice; the episode count is in the name so a longer evaluation is not
    # skipped as done.
    suffix = "" if temperature == 1.0 else f"_T{temperature:g}"
    suffix += "" if episodes == DEFAULT_EPISODES else f"_n{episodes}"
    prefix = "initial_" if initial else ""
    return f"{prefix}kappa{kappa}_{'residual' if residual else 'base'}{suffix}"


def initial_policy(final: SPIRAL, env_id: str, image_size: int) -> SPIRAL:
    """The run's policy before its first round: the same seed, config and base policy.

    The networks are built right after the random seed is set, so they are the run's own
    initial ones (the env only fills the constructor; the evaluation makes its own).
    """
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(
        env_id,
        n_envs=1,
        seed=final.seed,
        env_kwargs={"image_size": image_size},
        wrapper_class=functools.partial(wrap_env_for_policy, policy=final),
    )
    return SPIRAL(
        final.base_policy, env, PrivilegedProgressLabeler(), config=final.config, seed=final.seed
    )


def evaluate_run(args: argparse.Namespace, run: Run, seed: int) -> None:
    """Evaluate every deployment variant of one seed's run (skipping finished ones)."""
    folder = run_dir(args, run, seed)
    if not (folder / "result.json").is_file():
        print(f"[{folder}] not finished; skipped", flush=True)
        return
    final: SPIRAL | None = None  # loaded once, for the first variant still to evaluate
    initial: SPIRAL | None = None
    own, own_t = _own_deployment(args, run, seed)

    def anchors_first(v: Variant) -> tuple[bool, bool, bool]:
        # At each temperature the policy before any update, the run's own deployment and the
        # base policy come first, so a stopped evaluation has the rows every other one is read
        # against.
        return v[2] != own_t, not v[3], not ((v[0] == own and v[1]) or (v[0] == 1 and not v[1]))

    for variant in sorted(variants(args, own, own_t), key=anchors_first):
        kappa, residual, temperature, before = variant
        path = records_dir(args, run, seed) / f"{_key(variant, args.episodes)}.json"
        if path.is_file():
            continue
        if final is None:
            final = SPIRAL.load(folder / CHECKPOINT_DIR, reward_model=PrivilegedProgressLabeler())
        if before and initial is None:
            initial = initial_policy(final, TASK_IDS[run.task], args.image_size)
        model = initial if before else final
        assert model is not None
        # Acting draws only from this generator: every variant starts from the same latents.
        model.policy.rng = torch.Generator().manual_seed(fresh_latent_seed(seed))
        model.policy.set_deployment(kappa=kappa, residual=residual, temperature=temperature)
        start = time.perf_counter()
        res = evaluate_on_task(
            model, TASK_IDS[run.task], eval_seeds(args.episodes), image_size=args.image_size,
            n_envs=args.n_envs, deterministic=False,
        )  # fmt: skip
        record = {
            "seed": seed,
            "kappa": kappa,
            "residual": residual,
            "temperature": temperature,
            "initial": before,
            "episodes": args.episodes,
            "success_rate": res.success_rate,
            "successes": [bool(s) for s in res.successes],
            "final_progress": [float(p) for p in res.final_progress],
            "wall_seconds": time.perf_counter() - start,
        }
        atomic_write_json(path, record)
        print(
            json.dumps(
                {k: v for k, v in record.items() if k not in ("successes", "final_progress")}
            ),
            flush=True,
        )


def _own_fresh_rate(args: argparse.Namespace, run: Run, seed: int) -> float | None:
    """The fresh-latent success the run recorded after its last round (if it measured one)."""
    return fresh_latent_success(json.loads((run_dir(args, run, seed) / "result.json").read_text()))


def _own_deployment(args: argparse.Namespace, run: Run, seed: int) -> tuple[int, float]:
    """The kappa and latent temperature the run deployed with (its recorded SPIRAL config)."""
    result = json.loads((run_dir(args, run, seed) / "result.json").read_text())
    spiral = result["extra"]["spiral"]
    return int(spiral["kappa"]), float(spiral.get("latent_temperature", 1.0))


def _section(args: argparse.Namespace, run: Run) -> tuple[list[str], list[float]]:
    """One run's table and checks, and the wall-clock of each of its evaluations."""
    records: dict[int, dict[Variant, dict[str, Any]]] = {}
    for seed in args.seeds:
        for path in sorted(records_dir(args, run, seed).glob("*kappa*.json")):
            r = json.loads(path.read_text())
            if r["episodes"] == args.episodes:
                key = (
                    r["kappa"],
                    bool(r["residual"]),
                    float(r.get("temperature", 1.0)),
                    bool(r.get("initial", False)),
                )
                records.setdefault(seed, {})[key] = r
    seeds = sorted(records)
    own = {s: _own_deployment(args, run, s) for s in seeds}
    own_kappas = {own[s][0] for s in seeds}
    own_temps = {own[s][1] for s in seeds}

    def order(p: Variant) -> tuple[bool, float, bool, bool, bool, int]:
        # The run's own temperature first, then from hot to cool; within one, the run's own kind
        # of deployment, the same before any update, then the residual variants and the base
        # ones by kappa, requested or left from earlier calls.
        return (
            p[2] not in own_temps, -p[2], not (p[1] and p[0] in own_kappas), p[3], not p[1],
            p[0],
        )  # fmt: skip

    pairs = sorted({p for by in records.values() for p in by}, key=order)

    def name(kappa: int, residual: bool, temperature: float, initial: bool) -> str:
        cooled = "" if temperature == 1.0 else f" (latent temperature {temperature:g})"
        if initial:
            if not residual:
                return (
                    f"before any update: base chunks, best of {kappa} by the untrained "
                    f"critics{cooled}"
                )
            if kappa == 1:
                return f"before any update: base chunks + initial residual, one latent{cooled}"
            return f"before any update: best of {kappa} by the untrained critics{cooled}"
        if kappa == 1 and not residual:
            return f"base policy (1 latent, no residual){cooled}"
        what = "base chunks + residual" if residual else "base chunks"
        choice = "one latent, no choice" if kappa == 1 else f"best of {kappa} by the critic"
        deployed = residual and all(own[s] == (kappa, temperature) for s in seeds)
        return f"{what}, {choice}{cooled}{' — as deployed' if deployed else ''}"

    lines = [
        f"## {run.task}, `{run.method}`",
        "",
        "| deployment | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
        "|---|" + "---|" * (len(seeds) + 1),
    ]
    for pair in pairs:
        rates = [records[s][pair]["success_rate"] for s in seeds if pair in records[s]]
        cells = [
            f"{100 * records[s][pair]['success_rate']:.0f}" if pair in records[s] else "–"
            for s in seeds
        ]
        mean = f"{100 * np.mean(rates):.0f}" if rates else "–"
        if len(rates) > 1:
            mean += f" ± {100 * np.std(rates):.0f}"
        if 0 < len(rates) < len(seeds):
            mean += f" ({len(rates)} seed{'s' * (len(rates) > 1)})"
        lines.append(f"| {name(*pair)} | " + " | ".join(cells) + f" | {mean} |")
    lines += [""]
    for s in seeds:
        mine = records[s].get((own[s][0], True, own[s][1], False))
        recorded = _own_fresh_rate(args, run, s)
        if mine is None or recorded is None:
            continue
        same = abs(mine["success_rate"] - recorded) < 1e-9
        lines.append(
            f"- Seed {s}: as deployed {100 * mine['success_rate']:.0f} %, the run's own "
            f"fresh-latent evaluation after its last round {100 * recorded:.0f} % — "
            f"{'reproduced' if same else '**not reproduced**'}."
        )
    walls = [r["wall_seconds"] for by in records.values() for r in by.values()]
    return [*lines, ""], walls


def write_report(args: argparse.Namespace) -> str:
    half = 100 * 0.5 / math.sqrt(args.episodes)  # the largest binomial std of one cell
    # A root holds runs of one temperature; the title says which, so pages of two roots differ.
    trained_at = sorted(
        {
            _own_deployment(args, run, s)[1]
            for run in args.runs
            for s in args.seeds
            if (run_dir(args, run, s) / "result.json").exists()
        }
    )
    temps = ", ".join(f"{t:g}" for t in trained_at)
    lines = [
        "# SPIRAL deployment taken apart"
        + (f": runs at latent temperature {temps}" if trained_at else ""),
        "",
        "Success (%) of the final policy of each run of `benchmarks/spiral.py` "
        f"(`{args.root.name}`) on {args.episodes} held-out seeds with fresh latents per chunk, "
        "deployed in other ways "
        "(`sarm2 eval-policy --kappa K [--no-residual] [--latent-temperature T]` does one "
        "cell). Rows 'before any update' are the same run's policy before its first round (same "
        "seed, config and base policy), deployed as the run deploys: best of kappa by its "
        "untrained critics. The run's own deployment "
        "(its kappa, with the residual) draws the latents of the run's own fresh-latent "
        "evaluation, so it should reproduce the run's last number; each section checks that. "
        f"One cell's binomial std is up to {half:.0f} points.",
        "",
        *([args.note, ""] if args.note else []),
    ]
    walls: list[float] = []
    for run in args.runs:
        part, run_walls = _section(args, run)
        lines += part
        walls += run_walls
    runs = " ".join(run.task if run.method == "spiral" else ":".join(run) for run in args.runs)
    initial_flag = (
        "--initial-variants " if args.initial_variants else "--initial " if args.initial else ""
    )
    lines += [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} torch thread(s); "
        f"{len(walls)} evaluations, {np.mean(walls) / 60 if walls else 0:.1f} min each on "
        "average (a wall-clock, not a speed measurement: it depends on what else ran).",
        "",
        "## Command",
        "",
        "```bash",
        args.command
        or f"python benchmarks/spiral_deployment.py --root DATA --runs {runs} "
        f"--seeds {' '.join(map(str, args.seeds))} --kappas {' '.join(map(str, args.kappas))} "
        f"--latent-temperatures {' '.join(f'{t:g}' for t in args.temperatures)} "
        f"{initial_flag}"
        f"--episodes {args.episodes} --out OUT",
        "```",
        "",
    ]
    text = "\n".join(lines)
    atomic_write(args.doc, lambda tmp: tmp.write_text(text))  # a killed run leaves the old page
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.report_only:
        for run in args.runs:
            for seed in args.seeds:
                evaluate_run(args, run, seed)
    write_report(args)
    print(f"wrote {args.doc}", flush=True)


if __name__ == "__main__":
    main()
