"""Scale-out costs: recording and reward labelling on Ray actors, and how cost grows.

Measures, on this machine:

1. recording throughput (episodes/s, env steps/s) of ``collect`` in this process and on 1 and 2
   Ray actors (a local cluster, started before timing; actor start-up and env construction are
   part of each timed run, as in real use);
2. labelling throughput (frames/s) of ``label_dataset`` with the packaged SARM2 model in this
   process and on 1 and 2 Ray actors (with this process's torch thread count, and with 1 thread
   per actor), and whether the labels are bit-identical to this process's;
3. label time against episode length (sequences cut from the recorded episodes, in this process,
   1 thread);
4. recording time for 1 task against 3 tasks (same episodes per task, 2 Ray actors);
5. where recording time goes: recording episodes against writing them (in this process).

Every measurement is repeated ``--repeats`` times (fresh output each time); tables show the best
time (least disturbed by other work on the machine) and the worst.

Usage:
    python benchmarks/scaling.py [--episodes 24] [--label-episodes 8] [--repeats 2]
        [--out docs/results/scaling.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import sarm2_gym  # noqa: F401  (registers envs, picks the GL backend)
from sarm2_gym.common.ray_pool import init_ray
from sarm2_gym.data import LeRobotDataset
from sarm2_gym.data.generation import collect
from sarm2_gym.reward.labeller import PROGRESS_COLUMN, REWARD_COLUMN, label_dataset, label_episode

RECORD_TASK = "SARM2-CleanWhiteboard-v0"
TASKS_3 = ("SARM2-CleanWhiteboard-v0", "SARM2-PlatesIntoBin-v0", "SARM2-SweepScraps-v0")
_LOADS: list[float] = []  # 1-minute load averages sampled between measurements

USAGE_MD = """## How to scale out

```bash
pip install "sarm2-gym[distributed]"                      # Ray
sarm2 make-benchmark --out data --num-workers 8 --ray-address auto     # record on a cluster
sarm2 label data/train --model runs/rm --num-workers 8 --ray-address auto
sarm2 label data/train --model runs/rm --num-workers 2    # a local Ray cluster
torchrun --nproc_per_node 2 -m sarm2_gym.cli train-rm --data data/train --out runs/rm
```

* Recording and labelling results do not depend on the number of workers: episodes come back in
  submission order and the parent process writes them, so the datasets and labels equal the
  single-process ones bit for bit (`tests/data/test_ray_collection.py`,
  `tests/scaling/test_ray_labelling.py`). Labelling actors read the dataset themselves: on a
  multi-machine cluster it must be at the same path on every node.
* `train-rm` under `torchrun` trains one model data parallel (DDP; gloo on CPU, NCCL with one
  GPU per rank). Every rank draws the same global batch (`--batch-size` is the global batch) and
  trains on its shard; rank 0 extracts missing features first (the others wait), and writes
  TensorBoard, checkpoints and the final model; `--resume` works as in one process. The
  stage-pretraining losses of a 2-rank run equal the single-process ones to float rounding;
  the joint phase drifts slightly (per-shard masked means and routing losses), within 1 % over
  the 12-step test run (`tests/scaling/test_ddp.py`, typically about 0.2 % at batch 32). The
  helpers (`sarm2_gym/common/distributed.py`) are meant for the other trainers too.
"""


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    _LOADS.append(os.getloadavg()[0])
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def _best(repeats: int, run: Callable[[int], float]) -> tuple[float, float]:
    """(best, worst) seconds of ``run(k)`` for k = 0 .. repeats-1."""
    times = [run(k) for k in range(repeats)]
    return min(times), max(times)


def _frames(root: Path) -> int:
    return sum(int(m["length"]) for m in LeRobotDataset(root).episodes_meta)


def _how(workers: int | None) -> str:
    return "this process" if workers is None else f"Ray, {workers} actor{'s' * (workers > 1)}"


def _record(
    tasks: Sequence[str], per_task: int, out: Path, workers: int | None, image_size: int
) -> float:
    return _timed(
        collect,
        list(tasks),
        per_task,
        out,
        quality="expert",
        seed=0,
        image_size=image_size,
        num_workers=workers or 1,
        progress=False,
        ray_address=None if workers is None else "local",
    )


def bench_recording(tmp: Path, episodes: int, image_size: int, repeats: int) -> list[str]:
    runs = []
    for workers in (None, 1, 2):

        def run(k: int, w: int | None = workers) -> float:
            return _record([RECORD_TASK], episodes, tmp / f"record-{w}-{k}", w, image_size)

        best, worst = _best(repeats, run)
        runs.append((workers, best, worst))
        print("record", runs[-1], flush=True)
    data = tmp / "record-None-0"
    eps, steps = LeRobotDataset(data).num_episodes, _frames(data)
    one = next(best for w, best, _ in runs if w == 1)
    rows = [
        f"| {_how(w)} | {eps} | {steps} | {best:.1f} | {worst:.1f} | {eps / best:.3f} "
        f"| {steps / best:.1f} | {'–' if w is None else f'{one / best:.2f}'} |"
        for w, best, worst in runs
    ]
    return rows


def bench_record_split(
    tmp: Path, episodes: int, image_size: int, repeats: int
) -> tuple[list[str], float]:
    """Seconds of recording (env + rendering) against writing (PNG encoding, parquet)."""
    import gymnasium as gym

    from sarm2_gym.data.recording import record_episode
    from sarm2_gym.data.writer import LeRobotDatasetWriter
    from sarm2_gym.envs.core.task_env import CONTROL_HZ
    from sarm2_gym.envs.registry import expert_for, task_index

    env = gym.make(RECORD_TASK, obs_mode="rgb", image_size=image_size)
    record_episode(env, expert_for(RECORD_TASK, "expert"), 0, env_id=RECORD_TASK)  # warm-up
    eps: list[Any] = []

    def record(k: int) -> float:
        eps.clear()
        t0 = time.perf_counter()
        for seed in range(episodes):
            expert = expert_for(RECORD_TASK, "expert")
            eps.append(record_episode(env, expert, seed, env_id=RECORD_TASK))
        return time.perf_counter() - t0

    def write(k: int) -> float:
        t0 = time.perf_counter()
        with LeRobotDatasetWriter(tmp / f"write-{k}", fps=CONTROL_HZ) as writer:
            for ep in eps:
                writer.add_episode(ep, task_index=task_index(RECORD_TASK))
        return time.perf_counter() - t0

    rec, rec_worst = _best(repeats, record)
    wr, wr_worst = _best(repeats, write)
    env.close()
    steps = sum(len(e.frames["progress"]) for e in eps)
    rows = [
        f"| record (env steps, rendering) | {rec:.1f} | {rec_worst:.1f} "
        f"| {1000 * rec / steps:.1f} |",
        f"| write (PNG encoding, parquet) | {wr:.1f} | {wr_worst:.1f} | {1000 * wr / steps:.1f} |",
    ]
    print("split", rows, flush=True)
    return rows, wr / rec


def _labels(root: Path) -> list[dict[str, np.ndarray]]:
    ds = LeRobotDataset(root)
    return [ds.read_frames(i, [PROGRESS_COLUMN, REWARD_COLUMN]) for i in range(ds.num_episodes)]


def bench_labelling(tmp: Path, data: Path, model: Any, repeats: int) -> list[str]:
    import torch

    metas = LeRobotDataset(data).episodes_meta
    frames = sum(int(m["length"]) for m in metas)
    queries = sum(len(range(0, int(m["length"]), model.config.frame_gap)) for m in metas)
    here = torch.get_num_threads()
    runs: list[tuple[int | None, int, float, float, bool]] = []
    reference: list[dict[str, np.ndarray]] | None = None
    for workers, threads in ((None, here), (1, here), (2, here), (1, 1), (2, 1)):
        same = True

        def run(k: int, workers: int | None = workers, threads: int = threads) -> float:
            nonlocal reference, same
            root = tmp / f"label-{workers}-{threads}-{k}"
            shutil.copytree(data, root)
            seconds = _timed(
                label_dataset,
                root,
                model,
                progress=False,
                num_workers=workers or 1,
                ray_address=None if workers is None else "local",
                worker_threads=threads,
            )
            labels = _labels(root)
            reference = reference or labels
            same = same and all(
                np.array_equal(a[c], b[c])
                for a, b in zip(reference, labels, strict=True)
                for c in (PROGRESS_COLUMN, REWARD_COLUMN)
            )
            shutil.rmtree(root)
            return seconds

        best, worst = _best(repeats, run)
        runs.append((workers, threads, best, worst, same))
        print("label", runs[-1], flush=True)
    rows = []
    for w, threads, best, worst, same in runs:
        one = next(b for w1, t1, b, _, _ in runs if w1 == 1 and t1 == threads)
        speed = "–" if w is None else f"{one / best:.2f}"
        where = f"{_how(w)}, {threads} torch thread{'s' * (threads > 1)}{' each' * (w == 2)}"
        rows.append(
            f"| {where} | {frames} | {queries} | {best:.1f} | {worst:.1f} | {frames / best:.1f} "
            f"| {queries / best:.2f} | {speed} | {'yes' if same else 'no'} |"
        )
    return rows


def bench_length(data: Path, model: Any, lengths: Sequence[int], repeats: int) -> list[str]:
    import torch

    from sarm2_gym.data.episode import STATE_KEY, image_key

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = LeRobotDataset(data)
        cams = model.config.camera_names
        keys = [STATE_KEY, *(image_key(c) for c in cams)]
        parts = [ds.read_frames(i, keys) for i in range(ds.num_episodes)]
        total = sum(len(p[STATE_KEY]) for p in parts)
        reps = -(-max(lengths) // total)  # cycle the episodes when asked for more frames
        cols = {k: np.concatenate([p[k] for p in parts] * reps) for k in keys}
        task = ds.episode_meta(0)["tasks"][0]

        def episode(n: int) -> dict[str, Any]:
            images = {c: cols[image_key(c)][:n] for c in cams}
            return {"images": images, "state": cols[STATE_KEY][:n], "task": task}

        label_episode(model, episode(20))  # warm-up (lazy initialisation, allocator)
        rows = []
        for n in lengths:

            def run(k: int, n: int = n) -> float:
                return _timed(label_episode, model, episode(n))

            best, worst = _best(repeats, run)
            q = len(range(0, n, model.config.frame_gap))
            rows.append(
                f"| {n} | {q} | {best:.2f} | {worst:.2f} | {1000 * best / n:.1f} | {n / best:.1f} |"
            )
            print("length", rows[-1], flush=True)
        return rows
    finally:
        torch.set_num_threads(threads)


def bench_tasks(tmp: Path, per_task: int, image_size: int, repeats: int) -> list[str]:
    rows = []
    for tasks in ((TASKS_3[0],), TASKS_3):
        out = tmp / f"tasks-{len(tasks)}"

        def run(k: int, t: tuple[str, ...] = tasks, o: Path = out) -> float:
            return _record(t, per_task, Path(f"{o}-{k}"), 2, image_size)

        best, worst = _best(repeats, run)
        eps, steps = LeRobotDataset(f"{out}-0").num_episodes, _frames(Path(f"{out}-0"))
        names = ", ".join(t.removeprefix("SARM2-").removesuffix("-v0") for t in tasks)
        rows.append(
            f"| {len(tasks)} ({names}) | {eps} | {steps} | {best:.1f} | {worst:.1f} "
            f"| {best / eps:.2f} | {1000 * best / steps:.1f} |"
        )
        print("tasks", rows[-1], flush=True)
    return rows


def _machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, {cpus} CPU cores available, Python {sys.version.split()[0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=24, help="Episodes recorded.")
    parser.add_argument("--label-episodes", type=int, default=8, help="Episodes labelled.")
    parser.add_argument("--per-task", type=int, default=2, help="Episodes per task (1 vs 3).")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--lengths", default="50,100,200,400,800", help="Sequence lengths.")
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each measurement.")
    parser.add_argument("--out", type=Path, default=Path("docs/results/scaling.md"))
    args = parser.parse_args()
    command = "python benchmarks/scaling.py " + shlex.join(sys.argv[1:])
    import ray
    import torch

    from sarm2_gym.wrappers.factory import load_reward_model

    ray_start = _timed(init_ray, "local")
    print(f"local Ray cluster started in {ray_start:.1f} s", flush=True)
    model = load_reward_model(None)
    lengths = [int(x) for x in args.lengths.split(",")]
    reps = args.repeats
    with tempfile.TemporaryDirectory(prefix="sarm2-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        record_rows = bench_recording(tmp, args.episodes, args.image_size, reps)
        split_rows, write_share = bench_record_split(
            tmp, args.label_episodes, args.image_size, reps
        )
        data = tmp / "label-data"  # the first recorded episodes, recorded again (not timed)
        collect(
            [RECORD_TASK],
            args.label_episodes,
            data,
            quality="expert",
            seed=0,
            image_size=args.image_size,
            progress=False,
        )
        label_rows = bench_labelling(tmp, data, model, reps)
        length_rows = bench_length(data, model, lengths, reps)
        task_rows = bench_tasks(tmp, args.per_task, args.image_size, reps)
    ray.shutdown()
    _LOADS.append(os.getloadavg()[0])
    cfg = model.config
    best_of = f"best of {reps} runs" if reps > 1 else "one run"
    md = [
        "# Scaling: recording and labelling on Ray actors",
        "",
        "```",
        command,
        "```",
        "",
        f"Machine: {_machine()}, torch {torch.__version__} (CPU), Ray {ray.__version__}. "
        "The 2 cores are shared with other work: the 1-minute load average, sampled before "
        f"each measurement, ranged from {min(_LOADS):.1f} to {max(_LOADS):.1f} (median "
        f"{float(np.median(_LOADS)):.1f}), i.e. the machine was oversubscribed throughout, so "
        "timings are noisy and slower than on an idle machine. With 2 cores, 2 workers can at "
        f"best double the rate of 1. Times are the {best_of} (fresh output each run), with the "
        "worst run next to it; rates use the best.",
        "",
        f"A local Ray cluster started in {ray_start:.1f} s (not in the timings below). Each timed "
        "Ray run starts its actors, which build their envs / load the model: that cost is "
        "included, as it is in real use.",
        "",
        f"## Recording (`collect`, {RECORD_TASK}, expert, {args.image_size} px, 3 cameras)",
        "",
        "| where | episodes | env steps | time (s) | worst (s) | episodes/s | env steps/s "
        "| speed-up vs 1 actor |",
        "|---|---|---|---|---|---|---|---|",
        *record_rows,
        "",
        "Every run records the same seeds; the datasets are identical whatever the number of "
        "workers (`tests/data/test_ray_collection.py`). Each Ray run pays its actors' start-up "
        "(a fresh Python process importing MuJoCo and torch, then building the env) once, "
        "which small jobs do not amortise; this process keeps its env from one run to the next.",
        "",
        f"Where the time goes ({args.label_episodes} of these episodes, in this process):",
        "",
        "| part | time (s) | worst (s) | ms / env step |",
        "|---|---|---|---|",
        *split_rows,
        "",
        "The parent process writes every episode (so the dataset is the same whatever the "
        f"number of workers), and writing takes {write_share:.0%} of the recording time: with "
        "Ray the actors record while the parent encodes and writes, so 1 actor already keeps "
        "up to 2 cores busy and a second actor on a 2-core machine mostly competes with the "
        "parent for CPU. Throughput can never exceed what the parent alone can write; on a "
        "bigger machine actors add throughput until that is the bottleneck (encoding the "
        "PNGs on the actors would then be the next step).",
        "",
        "## Labelling (`label_dataset`, packaged SARM2 model)",
        "",
        f"Model: {cfg.encoder} ({cfg.encoder_input_size or cfg.image_size} px), "
        f"{len(cfg.camera_names)} cameras, queried every {cfg.frame_gap} frames (labels are "
        f"interpolated onto every frame), on the first {args.label_episodes} of the episodes "
        "above.",
        "",
        "| where | frames | model queries | time (s) | worst (s) | frames/s | queries/s "
        "| speed-up vs 1 actor (same threads) | labels bit-identical to this process's |",
        "|---|---|---|---|---|---|---|---|---|",
        *label_rows,
        "",
        "By default (`worker_threads=None`) each actor runs torch with as many threads as the "
        "calling process, which keeps the labels bit-identical to single-process labelling "
        "(EfficientNet's oneDNN convolutions round differently with another thread count, by "
        "about 1e-5 in the features and 1e-8 in progress); `--worker-threads 1` gives each "
        "actor one core (labels then identical across any number of actors, not to a "
        "multi-threaded single process). On an oversubscribed machine like this one a "
        "2-thread torch runs much slower than a 1-thread one, in any process (compare the "
        "rows), so `--worker-threads 1` is the fast choice there.",
        "",
        "## Label cost against episode length",
        "",
        "`label_episode` on sequences of the given length cut from the episodes above "
        "concatenated (cycled when longer; the cost depends on the number of frames, not on "
        "what they show), in this process with 1 torch thread. Each query encodes the frames "
        "of its window that earlier queries have not (the window's frames lie on the "
        f"{cfg.frame_gap}-frame grid, so about one new frame per camera per query) and runs "
        "the transformer once, so the cost should grow linearly with length: a flat ms / frame "
        "column says it does.",
        "",
        "| frames | queries | time (s) | worst (s) | ms / frame | frames/s |",
        "|---|---|---|---|---|---|",
        *length_rows,
        "",
        "## Recording cost against the number of tasks",
        "",
        f"`collect` with 2 Ray actors, {args.per_task} expert episodes per task. Each actor "
        "builds one env per task it meets (once), so the cost is the sum of the tasks' "
        "episode costs plus a small per-task set-up; the tasks differ in episode length and "
        "physics cost, hence per step.",
        "",
        "| tasks | episodes | env steps | time (s) | worst (s) | s / episode | ms / env step |",
        "|---|---|---|---|---|---|---|",
        *task_rows,
        "",
        USAGE_MD,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
