"""Time building the default benchmark data -> docs/results/benchmark_data.md.

Runs ``make_benchmark`` (what ``sarm2 make-benchmark --out DIR`` runs) with the default sizes on
all ten tasks into a fresh folder, then reads the three datasets back and tabulates, per task and
split, the episodes, frames and outcomes. The 1-minute load average is sampled every 10 s while
it runs, so a reader can tell a quiet measurement from a crowded one.

Usage:
    python benchmarks/benchmark_data.py [--data /tmp/sarm2_benchmark] [--num-workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

import sarm2_gym
from sarm2_gym.data.generation import BenchmarkSizes, make_benchmark
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.envs.registry import implemented_tasks

TARGET_MINUTES = 60.0


class LoadSampler:
    """Samples ``os.getloadavg()[0]`` every ``period`` seconds in a daemon thread."""

    def __init__(self, period: float = 10.0) -> None:
        self.period = period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.period)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def summarise(paths: dict[str, Path]) -> tuple[list[str], int, int]:
    """Markdown rows per task x split, and the total episodes and frames."""
    rows: list[str] = []
    per: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    frames: dict[tuple[str, str], int] = defaultdict(int)
    total_eps = total_frames = 0
    for split, path in paths.items():
        for ep in LeRobotDataset(path).episodes_meta:
            key = (str(ep["env_id"]), split)
            per[key][str(ep["meta"]["outcome"])] += 1
            frames[key] += int(ep["length"])
            total_eps += 1
            total_frames += int(ep["length"])
    for task in implemented_tasks():
        for split in paths:
            c = per[(task.env_id, split)]
            n = sum(c.values())
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            rows.append(
                f"| {task.name} | {split} | {n} | {frames[(task.env_id, split)]} | {outcomes} |"
            )
    return rows, total_eps, total_frames


def main() -> None:
    """Build, time, tabulate, write the markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/sarm2_benchmark"))
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/results/benchmark_data.md"))
    args = parser.parse_args()

    if args.data.exists():
        shutil.rmtree(args.data)  # a fresh build: resuming would shorten the measurement
    sizes = BenchmarkSizes()
    with LoadSampler() as load:
        start = time.perf_counter()
        paths = make_benchmark(args.data, sizes=sizes, num_workers=args.num_workers)
        seconds = time.perf_counter() - start
    rows, episodes, frames = summarise(paths)
    minutes = seconds / 60
    loads = np.array(load.samples or [float("nan")])
    verdict = "meets" if minutes < TARGET_MINUTES else "misses"
    lines = [
        "# Building the default benchmark data",
        "",
        "```",
        f"python benchmarks/benchmark_data.py --num-workers {args.num_workers}",
        "```",
        "",
        f"which times `sarm2 make-benchmark --out DIR --num-workers {args.num_workers}` (default "
        f"sizes: per task {sizes.train} training episodes of mixed quality, "
        f"{sizes.heldout_demos} held-out expert demonstrations, {sizes.rollouts_per_outcome} "
        "successful + partial + failed held-out rollouts; 96 px, three cameras; all ten tasks).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, sarm2-gym {sarm2_gym.__version__}. 1-minute load average "
        f"while it ran: median {np.median(loads):.1f}, max {loads.max():.1f} "
        f"({len(load.samples)} samples); {args.num_workers} recording workers.",
        "",
        f"**Wall-clock: {minutes:.1f} min** for {episodes} episodes ({frames} frames, "
        f"{frames / seconds:.0f} frames/s, {seconds / episodes:.2f} s/episode): {verdict} the "
        f"{TARGET_MINUTES:.0f}-minute target on 2 cores.",
        "",
        "| task | split | episodes | frames | outcomes |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Partial and failed held-out rollouts come from degraded experts (abandoning, mistaken, "
        "slow, clumsy presets); an episode's outcome is decided from privileged progress, and "
        "the generator retries seeds until every quota is filled.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"{minutes:.1f} min; wrote {args.out}")


if __name__ == "__main__":
    main()
