r"""SPIRAL vs baselines on CleanWhiteboard and FoldShorts -> docs/results/spiral.md.

``--tasks`` takes any benchmark task, with the budgets of :data:`PLANS` (``DEFAULT_PLAN`` for a task
without an entry).

For every task and seed: a TinyVLA is behaviour-cloned on a limited number of expert
demonstrations (the base policy, aimed at the paper's 40-70 % starting point), then SPIRAL runs
rounds of at most 100 rollouts from it, scored by the packaged SARM2 reward model, and is
evaluated on 50 held-out reset seeds after every round. The baselines get the same data: RA-BC
(the same demonstrations, SARM2-progress weights), SPIRAL with alpha = 0 (dense TD only) and
alpha = 1 (sparse MC only) with the same rounds, and SB3 PPO with the sparse and with the SARM2
dense reward for the env steps the SPIRAL run of that seed used.

Everything is resumable: each unit of work (a "job") writes into its own folder under
``--root`` and a finished job (``result.json``) is skipped; an interrupted BC job resumes from its
last snapshot and an interrupted SPIRAL job from its last finished round (see
:mod:`sarm2_gym.algos.baselines.runners`). Jobs run in priority order -- BC + SPIRAL on
CleanWhiteboard, then on FoldShorts, then the baselines -- and several worker processes may share
the queue (``--workers``; a job is claimed with a lock file naming its process). The markdown is
rewritten after every finished job and every SPIRAL round, marking what is still missing or
running, so it can be read at any time. ``--report-only`` just rewrites it.

Layout::

    ROOT/demos/<Task>/                    expert demonstrations (episode i: reset seed i)
    ROOT/demos/<Task>-<kind>/             demonstrations of another kind (dart, sweep, ...)
    ROOT/<Task>/<method>/seed<k>/         one job: result.json (+ curve.json, checkpoints, tb)
    ROOT/<Task>/<method>/seed<k>/job.json wall-clock of the job over all its calls

Example (the full benchmark, in the background)::

    nohup python benchmarks/spiral.py --root /work/data/spiral/bench --workers 2 \\
        > /work/data/spiral/bench.log 2>&1 &
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from sarm2_gym.algos.baselines.common import fresh_latent_success
from sarm2_gym.algos.common.evaluation import tally_stages
from sarm2_gym.algos.common.io import LATEST_FILE
from sarm2_gym.algos.spiral.persistence import ADAPTED_REWARD_MODEL_DIR, CHECKPOINT_DIR, STATE_FILE
from sarm2_gym.algos.vla.bc import PAST_END_MODES, BCConfig
from sarm2_gym.data.generation import DEMO_KINDS
from sarm2_gym.envs.registry import env_ids_by_name

TASK_IDS = env_ids_by_name()
DEFAULT_RANDOM_SHIFT: int = next(f.default for f in fields(BCConfig) if f.name == "random_shift")
DEFAULT_TASKS = ("CleanWhiteboard", "FoldShorts")  # the two tasks of the paper's comparison
METHODS = (
    "bc", "spiral", "spiral_offline", "spiral_adapted", "spiral_adapted_mixed", "rabc",
    "spiral_alpha0", "spiral_alpha1", "ppo_sparse", "ppo_sarm2", "filtered_bc", "lookahead_bc",
    "bc_continued",
)  # fmt: skip
# The full method (with and without the offline phase or the reward-model adaptation): the
# targets are theirs.
FULL_SPIRAL_METHODS = ("spiral", "spiral_offline", "spiral_adapted", "spiral_adapted_mixed")
# The methods with SPIRAL rounds (a curve and a per-round table each).
SPIRAL_METHODS = (*FULL_SPIRAL_METHODS, "spiral_alpha0", "spiral_alpha1")
# What full SPIRAL is compared against at the same budget.
BASELINE_METHODS = ("ppo_sparse", "ppo_sarm2", "rabc", "spiral_alpha0", "spiral_alpha1")
# Self-improvement without a critic: the policy's own successful rollouts cloned, those of a
# simulator planner choosing among its chunks (an oracle), and their control (the same
# fine-tuning on the demonstrations alone). Rounds like SPIRAL's.
FILTERED_BC_METHODS = ("filtered_bc", "lookahead_bc", "bc_continued")
# Every method with rounds (a curve and a per-round table each).
ROUND_METHODS = (*SPIRAL_METHODS, *FILTERED_BC_METHODS)
LABELS = {
    "bc": "BC (base policy)",
    "spiral": "SPIRAL (alpha = 0.5)",
    "spiral_offline": "SPIRAL + offline phase (stage 2b)",
    "spiral_adapted": "SPIRAL + reward-model adaptation (stage 2a)",
    "spiral_adapted_mixed": "SPIRAL + adaptation, demonstrations mixed in",
    "rabc": "RA-BC (SARM2 weights)",
    "spiral_alpha0": "SPIRAL alpha = 0 (dense TD only)",
    "spiral_alpha1": "SPIRAL alpha = 1 (sparse MC only)",
    "ppo_sparse": "PPO (sparse)",
    "ppo_sarm2": "PPO (SARM2 dense)",
    "filtered_bc": "Filtered BC (own successes cloned)",
    "lookahead_bc": "Lookahead BC (a planner's successes; oracle)",
    "bc_continued": "BC continued (demonstrations only)",
}
COLORS = {
    "bc": "black",
    "spiral": "tab:red",
    "spiral_offline": "tab:brown",
    "spiral_adapted": "tab:pink",
    "spiral_adapted_mixed": "tab:olive",
    "rabc": "tab:gray",
    "spiral_alpha0": "tab:blue",
    "spiral_alpha1": "tab:green",
    "ppo_sparse": "tab:purple",
    "ppo_sarm2": "tab:orange",
    "filtered_bc": "tab:cyan",
    "lookahead_bc": "tab:olive",
    "bc_continued": "tab:gray",
}


@dataclass(frozen=True)
class TaskPlan:
    """Budgets of one task (see ``parse_args`` for the command-line overrides)."""

    demos: int  # demonstrations the base policy (and RA-BC) learns from
    collect: int  # demonstrations recorded (>= demos)
    bc_steps: int
    rounds: int
    rollouts: int  # per round
    gradient_steps: int  # SPIRAL updates per round
    max_episode_steps: int | None = None  # None: the task's own time limit
    demo_quality: str = "expert"  # a kind of sarm2_gym.data.generation.DEMO_KINDS
    n_action_steps: int | None = None  # actions executed per chunk (None: the whole chunk)
    adapt_steps: int = 500  # reward-model fine-tuning steps of spiral_adapted (stage 2a)
    finetune_steps: int = 1500  # BC steps per round of filtered_bc / bc_continued


DEFAULT_PLAN = TaskPlan(
    demos=20, collect=60, bc_steps=6000, rounds=3, rollouts=50, gradient_steps=3000
)
PLANS = {
    # On development seeds (one BC seed each, bc_base_policy_sweep.md) the base policy cloned
    # from the nearest-ink expert succeeded 0-7 %, from the three-lane sweep up to 20 %, from the
    # four-lane dense sweep 40 %.
    "CleanWhiteboard": replace(DEFAULT_PLAN, demos=45, demo_quality="dense_sweep"),
    "FoldShorts": DEFAULT_PLAN,
    # 45 demonstrations and half-chunks put BC inside the paper's 40-70 % (bc_base_policy.md).
    "PlatesIntoBin": replace(DEFAULT_PLAN, demos=45, n_action_steps=5),
    # 45 demonstrations, whole chunks: 30 % on the development seeds, the best of that sweep.
    "PullPlug": replace(DEFAULT_PLAN, demos=45),
}  # other tasks: DEFAULT_PLAN


# --------------------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One unit of work: a method on a task with a seed."""

    task: str
    method: str
    seed: int
    run: Callable[[], Any]
    deps: list[Path] = field(default_factory=list)  # folders whose result.json must exist

    def out(self, root: Path) -> Path:
        """The job's folder under ``root``."""
        return root / self.task / self.method / f"seed{self.seed}"

    @property
    def name(self) -> str:
        """``Task/method/seedK``."""
        return f"{self.task}/{self.method}/seed{self.seed}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_owner(out: Path) -> int | None:
    """PID of the live process working on ``out``, or ``None``."""
    lock = out / "job.lock"
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


@contextlib.contextmanager
def _claim(out: Path) -> Iterator[bool]:
    """Take the job's lock file (stale locks of dead processes are replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    lock = out / "job.lock"
    if lock.exists() and _lock_owner(out) is None:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        yield False
        return
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()} {platform.node()}\n")
    try:
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _add_wall(out: Path, seconds: float, finished: bool) -> None:
    """Add one call's wall-clock to ``out/job.json``."""
    from sarm2_gym.algos.common.io import atomic_write_json

    data = _read_job(out)
    data["seconds"] += seconds
    data["calls"] += 1
    data["finished"] = finished
    data["machine"] = machine()
    atomic_write_json(out / "job.json", data)


def _record_labeler(out: Path, labeler: str | None) -> None:
    """Note the reward-model weights a call uses in ``out/job.json``, as the call starts.

    ``labeler`` (the scoring model's ``weights_sha256``, or ``"privileged"``) is appended to the
    job's ``labelers`` list when new: a run resumed after the packaged model changed shows both,
    and a call killed before it could add its wall-clock still leaves its model on record.
    """
    from sarm2_gym.algos.common.io import atomic_write_json

    data = _read_job(out)
    if labeler is None or labeler in data.setdefault("labelers", []):
        return
    data["labelers"].append(labeler)
    atomic_write_json(out / "job.json", data)


def _read_job(out: Path) -> dict[str, Any]:
    path = out / "job.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    return {"seconds": 0.0, "calls": 0}


def machine() -> str:
    """The machine line of a page, with the vector kernels torch picks on this CPU.

    Runs agree bit for bit only where torch runs the same kernels (AVX2 and AVX-512 round
    differently), so a page says which ones its report was written with.
    """
    import torch

    kernels = torch.backends.cpu.get_cpu_capability()
    return f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch CPU kernels {kernels}"


def _done(out: Path) -> bool:
    return (out / "result.json").is_file()


# --------------------------------------------------------------------------------------- args
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, required=True, help="Data and run folder.")
    p.add_argument("--doc", type=Path, default=Path("docs/results/spiral.md"))
    p.add_argument("--tasks", nargs="*", default=list(DEFAULT_TASKS), choices=list(TASK_IDS))
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--demos", type=int, default=None, help="Override every task's demos.")
    p.add_argument("--bc-steps", type=int, default=None)
    p.add_argument(
        "--bc-ema-decay",
        type=float,
        default=0.0,
        help="Base policies (BC, RA-BC) exported as the moving average of their weights with "
        "this decay (default 0: the last iterate).",
    )
    p.add_argument(
        "--bc-past-end",
        choices=PAST_END_MODES,
        default="masked",
        help="Base policies' chunk steps past an episode's end: left out of the BC loss "
        "(default) or trained to hold still.",
    )
    p.add_argument(
        "--bc-random-shift",
        type=int,
        default=DEFAULT_RANDOM_SHIFT,
        help="Base policies' random-shift augmentation of camera frames, in pixels (default: "
        "BC's own; 0: none).",
    )
    p.add_argument(
        "--bc-val-episodes",
        type=int,
        default=0,
        help="BC measures its policy on the last N recorded demonstrations, which it never "
        "trains on (validation.json and TensorBoard in each BC folder; default 0: none).",
    )
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--rollouts", type=int, default=None, help="Rollouts per SPIRAL round.")
    p.add_argument("--gradient-steps", type=int, default=None, help="SPIRAL updates per round.")
    p.add_argument(
        "--adapt-steps",
        type=int,
        default=None,
        help="Reward-model fine-tuning steps of spiral_adapted (default 500).",
    )
    p.add_argument(
        "--finetune-steps",
        type=int,
        default=None,
        help="BC fine-tuning steps per round of filtered_bc and bc_continued (default 1500).",
    )
    p.add_argument(
        "--lookahead-horizon",
        type=int,
        default=50,
        help="lookahead_bc: steps its planner simulates after each candidate chunk.",
    )
    p.add_argument(
        "--lookahead-candidates",
        type=int,
        default=4,
        help="lookahead_bc: candidate chunks per decision.",
    )
    p.add_argument("--max-episode-steps", type=int, default=None)
    p.add_argument(
        "--demo-quality",
        choices=list(DEMO_KINDS),
        default=None,
        help="Override every task's kind of demonstrations.",
    )
    p.add_argument(
        "--n-action-steps", type=int, default=None, help="Override actions executed per chunk."
    )
    p.add_argument("--bc-device", default="cpu", help="Torch device BC trains on (cpu, cuda).")
    p.add_argument(
        "--model",
        type=json.loads,
        default={},
        help="TinyVLAConfig fields as JSON for the base policies (BC, RA-BC), e.g. "
        '\'{"action_space": "target"}\'. Runs already in --root keep the model they were '
        "trained with: use a new --root for another one.",
    )
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument(
        "--heldout-demos",
        type=int,
        default=20,
        help="Held-out demonstrations the report scores adapted reward models on (0: none).",
    )
    p.add_argument(
        "--stochastic-eval",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Evaluate BC and every SPIRAL round a second time with fresh latents per chunk.",
    )
    p.add_argument("--n-envs", type=int, default=2, help="Rollout / evaluation envs per job.")
    p.add_argument(
        "--latent-temperature",
        type=float,
        default=1.0,
        help="Scale of the latents of every VLA (z = T * N(0, I)): BC / RA-BC evaluations, and "
        "SPIRAL's rollouts, updates and evaluations. A root holds runs of one temperature.",
    )
    p.add_argument(
        "--frozen-image-features",
        default=None,
        choices=["efficientnet_lite0"],
        help="SPIRAL's actor and critics also read each camera's frozen EfficientNet-Lite0 "
        "features (SPIRALConfig.frozen_image_features). A root holds runs of one setting.",
    )
    p.add_argument("--frozen-image-size", type=int, default=64, help="Its input side (px).")
    p.add_argument(
        "--critic-privileged-state",
        action="store_true",
        help="SPIRAL's critics (not its actor) also read the simulator's object state "
        "(SPIRALConfig.critic_privileged_state; a diagnostic). A root holds runs of one setting.",
    )
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument(
        "--labeler",
        default="sarm2",
        help="'sarm2' (packaged model), a SARM2 checkpoint dir, or 'privileged' (oracle; "
        "development only: the report then says so in its title).",
    )
    p.add_argument("--label-gap", type=int, default=5, help="Reward-model query gap (frames).")
    p.add_argument("--label-window", type=int, default=2, help="Smoothing window (queries).")
    p.add_argument("--threads", type=int, default=1, help="Torch threads per worker.")
    p.add_argument("--workers", type=int, default=1, help="Worker processes sharing the queue.")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--command", default="", help="Command line quoted in the report.")
    p.add_argument("--note", default="", help="Paragraph printed under the page's title.")
    args = p.parse_args(argv)
    args.root = args.root.resolve()
    return args


def plan_for(args: argparse.Namespace, task: str) -> TaskPlan:
    base = PLANS.get(task, DEFAULT_PLAN)
    over = {
        "demos": args.demos,
        "bc_steps": args.bc_steps,
        "rounds": args.rounds,
        "rollouts": args.rollouts,
        "gradient_steps": args.gradient_steps,
        "max_episode_steps": args.max_episode_steps,
        "demo_quality": args.demo_quality,
        "n_action_steps": args.n_action_steps,
        "adapt_steps": args.adapt_steps,
        "finetune_steps": args.finetune_steps,
    }
    kwargs = {**base.__dict__, **{k: v for k, v in over.items() if v is not None}}
    kwargs["collect"] = max(kwargs["collect"], kwargs["demos"])
    return TaskPlan(**kwargs)


# --------------------------------------------------------------------------------------- units
def demos_dir(args: argparse.Namespace, task: str, kind: str | None = None) -> Path:
    """Where the task's demonstrations of ``kind`` (default: the plan's) are recorded."""
    kind = kind or plan_for(args, task).demo_quality
    return args.root / "demos" / (task if kind == "expert" else f"{task}-{kind}")


def ensure_demos(args: argparse.Namespace, task: str) -> Path:
    """Record the task's expert demonstrations once (``sarm2 collect`` resumes a partial set)."""
    return _ensure_recorded(args, task, demos_dir(args, task), plan_for(args, task).collect)


# Reset seeds of the held-out demonstrations: apart from the training demonstrations' (episode i:
# seed i), the development seeds (900,000 on) and the evaluation seeds (1,000,000 on).
HELDOUT_DEMO_SEED = 500_000


def heldout_demos_dir(args: argparse.Namespace, task: str) -> Path:
    """Where the task's held-out demonstrations (of the plan's kind) are recorded."""
    return args.root / "heldout_demos" / demos_dir(args, task).name


def ensure_heldout_demos(args: argparse.Namespace, task: str) -> Path:
    """Record ``--heldout-demos`` demonstrations from reset seed :data:`HELDOUT_DEMO_SEED` on."""
    out = heldout_demos_dir(args, task)
    return _ensure_recorded(args, task, out, args.heldout_demos, seed=HELDOUT_DEMO_SEED)


def _ensure_recorded(
    args: argparse.Namespace, task: str, out: Path, want: int, seed: int = 0
) -> Path:
    """Record ``want`` demonstrations of the plan's kind into ``out`` unless it holds them.

    Workers that need the same demonstrations wait for the one recording them (a lock file
    beside the dataset) instead of failing on the dataset's own writer lock.
    """
    import fcntl

    from sarm2_gym.data.reader import LeRobotDataset

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes
        with contextlib.suppress(Exception):
            if LeRobotDataset(out).num_episodes >= want:
                return out
        _collect(args, task, out, want, seed)
    return out


def _collect(args: argparse.Namespace, task: str, out: Path, want: int, seed: int) -> None:
    preset, options = DEMO_KINDS[plan_for(args, task).demo_quality]
    cmd = [
        sys.executable, "-m", "sarm2_gym.cli", "collect", "--task", TASK_IDS[task],
        "--episodes", str(want), "--out", str(out), "--quality", preset,
        "--image-size", str(args.image_size), "--seed", str(seed),
    ]  # fmt: skip
    for name, value in options.items():
        cmd += ["--expert-option", f"{name}={value}"]
    subprocess.run(cmd, check=True)


def labeler(args: argparse.Namespace) -> Any:
    from sarm2_gym.algos.spiral import PrivilegedProgressLabeler, RewardModelLabeler
    from sarm2_gym.common.smoothed_progress import SMOOTHING_WINDOW

    if args.labeler == "privileged":
        return PrivilegedProgressLabeler(frame_gap=1, window=SMOOTHING_WINDOW)
    from sarm2_gym.wrappers import load_reward_model

    model = load_reward_model(None if args.labeler == "sarm2" else args.labeler)
    return RewardModelLabeler(model, frame_gap=args.label_gap, window=args.label_window)


def ppo_reward(args: argparse.Namespace, reward: str) -> tuple[str, dict[str, Any]]:
    """PPO's ``reward`` spec and ``reward_options``: the dense one made as SPIRAL's labels are.

    ``reward`` is ``"sparse"`` or ``"sarm2"`` (the dense-reward PPO). The dense PPO reads the
    labeller's model (or the privileged oracle) every ``--label-gap`` steps and smooths over
    ``--label-window`` readings, as :func:`labeler` labels SPIRAL's rollouts.
    """
    from sarm2_gym.common.smoothed_progress import SMOOTHING_WINDOW

    if reward == "sparse":
        return "sparse", {}
    if args.labeler == "privileged":  # the same oracle: every step, the labeller's window
        return "privileged", {"smoothing_window": SMOOTHING_WINDOW}
    spec = "sarm2" if args.labeler == "sarm2" else f"sarm2:{args.labeler}"
    return spec, {"query_every": args.label_gap, "smoothing_window": args.label_window}


LABELED_METHODS = frozenset({*SPIRAL_METHODS, "rabc", "ppo_sarm2"})


def weights_sha256(model_dir: str | Path) -> str:
    """The ``weights_sha256`` a SARM2 checkpoint's ``config.json`` records."""
    return str(json.loads((Path(model_dir) / "config.json").read_text())["weights_sha256"])


def labeler_id(args: argparse.Namespace) -> str:
    """``weights_sha256`` of the reward model that scores rollouts, or ``"privileged"``."""
    directory = reward_model_dir(args)
    return directory if directory == "privileged" else weights_sha256(directory)


def reward_model_dir(args: argparse.Namespace) -> str:
    if args.labeler == "privileged":
        return "privileged"
    if args.labeler == "sarm2":
        from sarm2_gym.wrappers.factory import PACKAGED_MODEL_DIR

        return str(PACKAGED_MODEL_DIR)
    return str(args.labeler)


def _ema_clause(args: argparse.Namespace) -> str:
    """How the base policies' weights were exported, where it is not the last iterate."""
    if not args.bc_ema_decay:
        return ""
    return f" (the moving average of the weights, decay {args.bc_ema_decay:g})"


def _past_end_clause(args: argparse.Namespace) -> str:
    """How BC trained the chunk steps past an episode's end, where it trained them."""
    if args.bc_past_end == "masked":
        return ""
    return ", chunk steps past an episode's end trained to hold still (`--bc-past-end hold`)"


def _random_shift_clause(args: argparse.Namespace) -> str:
    """The base policies' image augmentation, where it is not BC's default."""
    if args.bc_random_shift == DEFAULT_RANDOM_SHIFT:
        return ""
    if args.bc_random_shift == 0:
        return ", no random-shift augmentation of the frames (`--bc-random-shift 0`)"
    return (
        f", frames randomly shifted by up to {args.bc_random_shift} px "
        f"(`--bc-random-shift {args.bc_random_shift}`)"
    )


def _held_out_clause(args: argparse.Namespace, plan: TaskPlan) -> str:
    """Which recorded demonstrations BC measured itself on, where it did."""
    if not args.bc_val_episodes:
        return ""
    return (
        f" (the last {args.bc_val_episodes} of the {plan.collect} recorded held out: BC's "
        "held-out flow loss and chunk error in each BC folder's validation.json)"
    )


def bc_config(args: argparse.Namespace, task: str, seed: int, out: Path, rabc: bool) -> Any:
    from sarm2_gym.algos.vla import TinyVLAConfig

    plan = plan_for(args, task)
    return BCConfig(
        data=(str(demos_dir(args, task)),),
        out=str(out),
        steps=plan.bc_steps,
        max_episodes=plan.demos,
        rabc=reward_model_dir(args) if rabc else None,
        seed=seed,
        model=TinyVLAConfig.from_dict({**args.model, "n_action_steps": plan.n_action_steps}),
        device=args.bc_device,
        ema_decay=args.bc_ema_decay,
        val_episodes=args.bc_val_episodes,
        past_end=args.bc_past_end,
        random_shift=args.bc_random_shift,
    )


def make_jobs(args: argparse.Namespace) -> list[Job]:
    """All jobs, in priority order."""
    from sarm2_gym.algos.baselines import (
        FilteredBCRunConfig,
        PPORunConfig,
        SPIRALRunConfig,
        run_bc,
        run_filtered_bc,
        run_ppo,
        spiral_method_name,
    )
    from sarm2_gym.algos.baselines import run_spiral as _run_spiral
    from sarm2_gym.algos.spiral import SPIRALConfig

    root = args.root
    jobs: list[Job] = []

    def folder(task: str, method: str, seed: int) -> Path:
        return root / task / method / f"seed{seed}"

    def bc_job(task: str, seed: int, rabc: bool) -> Job:
        method = "rabc" if rabc else "bc"
        out = folder(task, method, seed)

        def run() -> Any:
            ensure_demos(args, task)
            cfg = bc_config(args, task, seed, out, rabc)
            plan = plan_for(args, task)
            # The page reports the kind of demonstrations a result was trained on.
            return run_bc(
                cfg, TASK_IDS[task], eval_episodes=args.eval_episodes,
                image_size=args.image_size, n_eval_envs=args.n_envs,
                max_episode_steps=plan.max_episode_steps,
                eval_stochastic=args.stochastic_eval, latent_temperature=args.latent_temperature,
                record={"demo_kind": plan.demo_quality},
            )  # fmt: skip

        return Job(task, method, seed, run)

    def spiral_job(
        task: str,
        seed: int,
        alpha: float,
        offline: bool = False,
        adapted: bool = False,
        mixed: bool = False,
    ) -> Job:
        """SPIRAL from the seed's BC policy.

        ``offline``: first the offline phase (stage 2b); ``adapted``: the reward model
        fine-tuned after the first round (stage 2a); ``mixed``: with the base policy's
        demonstrations as part of every batch.
        """
        plan = plan_for(args, task)
        base = folder(task, "bc", seed)
        mix_demos = adapted and mixed
        cfg = SPIRALRunConfig(
            task=TASK_IDS[task],
            base_policy=str(base),
            out="",
            timesteps=10**9,  # bounded by rounds x rollouts
            spiral=SPIRALConfig(
                mc_weight=alpha,
                rollouts_per_round=plan.rollouts,
                gradient_steps=plan.gradient_steps,
                latent_temperature=args.latent_temperature,
                frozen_image_features=args.frozen_image_features,
                frozen_image_size=args.frozen_image_size,
                critic_privileged_state=args.critic_privileged_state,
            ),
            seed=seed,
            n_envs=args.n_envs,
            image_size=args.image_size,
            eval_episodes=args.eval_episodes,
            n_eval_envs=args.n_envs,
            max_rounds=plan.rounds,
            # SPIRAL's own starting point (after the offline phase, if any): before any update
            # it deploys best of kappa base chunks chosen by untrained critics, which is not
            # the base policy the BC evaluation measures.
            eval_round0=True,
            max_episode_steps=plan.max_episode_steps,
            eval_stochastic=args.stochastic_eval,
            # Stage 2b: the demonstrations the base policy was cloned from, labelled by the
            # reward model, trained on before the first round and kept in the replay.
            offline_data=str(demos_dir(args, task)) if offline else None,
            offline_episodes=plan.demos if offline else None,
            # Stage 2a: the first round's rollouts, annotated from the simulator's progress
            # through the segment protocol of spec §2.3, fine-tune the SARM2 labeller.
            adapt_steps=plan.adapt_steps if adapted else 0,
            # ... mixed: with the base policy's demonstrations as half of every batch (the
            # paper mixes in its pretraining data).
            adapt_demos=str(demos_dir(args, task)) if mix_demos else None,
            adapt_demo_episodes=plan.demos if mix_demos else None,
        )
        method = spiral_method_name(cfg.spiral, offline=offline, adapted=adapted, mixed=mixed)
        out = folder(task, method, seed)
        cfg = replace(cfg, out=str(out))

        def run() -> Any:
            return _run_spiral(cfg, labeler(args), on_round=lambda _: safe_report(args))

        return Job(task, method, seed, run, deps=[base])

    def filtered_bc_job(task: str, seed: int, clone: bool, collector: str = "policy") -> Job:
        """Rounds of the seed's BC policy cloning successes (or the demos alone).

        ``collector``: whose successes, the policy's own or a simulator planner's.
        """
        plan = plan_for(args, task)
        base = folder(task, "bc", seed)
        cfg = FilteredBCRunConfig(
            task=TASK_IDS[task],
            base_policy=str(base),
            demos=str(demos_dir(args, task)),
            demo_episodes=plan.demos,
            out="",
            rounds=plan.rounds,
            rollouts_per_round=plan.rollouts,
            clone_rollouts=clone,
            finetune_steps=plan.finetune_steps,
            seed=seed,
            image_size=args.image_size,
            eval_episodes=args.eval_episodes,
            n_eval_envs=args.n_envs,
            max_episode_steps=plan.max_episode_steps,
            eval_stochastic=args.stochastic_eval,
            latent_temperature=args.latent_temperature,
            collector=collector,
            lookahead_horizon=args.lookahead_horizon,
            lookahead_candidates=args.lookahead_candidates,
        )
        cfg = replace(cfg, out=str(folder(task, cfg.method, seed)))
        return Job(task, cfg.method, seed, lambda: run_filtered_bc(cfg), deps=[base])

    def ppo_job(task: str, seed: int, reward: str) -> Job:
        plan = plan_for(args, task)
        method = "ppo_sparse" if reward == "sparse" else "ppo_sarm2"
        out = folder(task, method, seed)
        spiral = folder(task, "spiral", seed)

        def run() -> Any:
            steps = json.loads((spiral / "result.json").read_text())["env_steps"]
            spec, options = ppo_reward(args, reward)
            cfg = PPORunConfig(
                task=TASK_IDS[task], out=str(out), timesteps=int(steps), reward=spec,
                reward_options=options, seed=seed, n_envs=args.n_envs,
                eval_episodes=args.eval_episodes, max_episode_steps=plan.max_episode_steps,
            )  # fmt: skip
            return run_ppo(cfg)

        return Job(task, method, seed, run, deps=[spiral])

    want = set(args.methods)
    for task in args.tasks:  # 1. BC + SPIRAL, task by task
        for seed in args.seeds:
            if want & {"bc", *FULL_SPIRAL_METHODS, *FILTERED_BC_METHODS}:
                jobs.append(bc_job(task, seed, rabc=False))
            if "spiral" in want:
                jobs.append(spiral_job(task, seed, 0.5))
            if "spiral_offline" in want:
                jobs.append(spiral_job(task, seed, 0.5, offline=True))
            if "spiral_adapted" in want:
                jobs.append(spiral_job(task, seed, 0.5, adapted=True))
            if "spiral_adapted_mixed" in want:
                jobs.append(spiral_job(task, seed, 0.5, adapted=True, mixed=True))
    for seed in args.seeds:  # 2. baselines: every baseline at one seed before the next seed
        for task in args.tasks:
            if "rabc" in want:
                jobs.append(bc_job(task, seed, rabc=True))
            if "spiral_alpha0" in want:
                jobs.append(spiral_job(task, seed, 0.0))
            if "spiral_alpha1" in want:
                jobs.append(spiral_job(task, seed, 1.0))
            if "ppo_sparse" in want:
                jobs.append(ppo_job(task, seed, "sparse"))
            if "ppo_sarm2" in want:
                jobs.append(ppo_job(task, seed, "sarm2"))
            if "filtered_bc" in want:
                jobs.append(filtered_bc_job(task, seed, clone=True))
            if "lookahead_bc" in want:
                jobs.append(filtered_bc_job(task, seed, clone=True, collector="lookahead"))
            if "bc_continued" in want:
                jobs.append(filtered_bc_job(task, seed, clone=False))
    return jobs


# --------------------------------------------------------------------------------------- worker
class _Terminated(Exception):
    pass


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated(f"signal {signum}")


def work(args: argparse.Namespace) -> None:
    """Run jobs until none is left that this process can take."""
    import torch

    torch.set_num_threads(args.threads)
    signal.signal(signal.SIGTERM, _on_sigterm)
    failed: set[str] = set()
    while True:
        jobs = make_jobs(args)
        pending = [j for j in jobs if not _done(j.out(args.root)) and j.name not in failed]
        if not pending:
            break
        ready = [j for j in pending if all(_done(d) for d in j.deps)]
        took = False
        for job in ready:
            out = job.out(args.root)
            with _claim(out) as mine:
                if not mine or _done(out):
                    continue
                took = True
                print(f"[{time.strftime('%H:%M:%S')}] {os.getpid()} start {job.name}", flush=True)
                start = time.perf_counter()
                _record_labeler(out, labeler_id(args) if job.method in LABELED_METHODS else None)
                ok = False
                try:
                    job.run()
                    ok = True
                except _Terminated:
                    _add_wall(out, time.perf_counter() - start, False)
                    raise
                except Exception:
                    traceback.print_exc()
                    failed.add(job.name)
                finally:
                    if ok or job.name in failed:
                        _add_wall(out, time.perf_counter() - start, ok)
                print(
                    f"[{time.strftime('%H:%M:%S')}] {os.getpid()} {'done' if ok else 'FAILED'} "
                    f"{job.name} ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
            safe_report(args)
            break  # re-read the queue: priorities may have changed (new results)
        if not took:
            if any(_lock_owner(j.out(args.root)) for j in pending):
                time.sleep(30)  # others are busy with what is left or what it depends on
                continue
            break
    safe_report(args)


# --------------------------------------------------------------------------------------- report
def load_runs(args: argparse.Namespace) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """Task -> method -> seed -> {"result": ..., "curve": ..., "job": ..., "running": bool}."""
    runs: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for task in args.tasks:
        for method in METHODS:
            for seed in args.seeds:
                out = args.root / task / method / f"seed{seed}"
                if not out.is_dir():
                    continue
                entry: dict[str, Any] = {"running": _lock_owner(out) is not None}
                for name in ("result", "curve", "job"):
                    path = out / f"{name}.json"
                    if path.is_file():
                        with contextlib.suppress(json.JSONDecodeError, OSError):
                            entry[name] = json.loads(path.read_text())
                if method in SPIRAL_METHODS:
                    entry["rollouts"] = _replay_rollouts(out)
                runs.setdefault(task, {}).setdefault(method, {})[seed] = entry
    return runs


def _replay_rollouts(out: Path) -> list[dict[str, Any]]:
    """The rollout episodes in a SPIRAL run's latest checkpoint (round, success, dense return).

    ``[]`` when the run has no readable checkpoint yet.
    """
    ckpt = out / CHECKPOINT_DIR
    try:
        latest = json.loads((ckpt / LATEST_FILE).read_text())["latest"]
        meta = json.loads((ckpt / latest / STATE_FILE).read_text())
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return []
    episodes = meta.get("replay", {}).get("episodes", [])
    return [e for e in episodes if e.get("source") == "rollout" and "dense_return" in e]


def _returns_by_outcome(episodes: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Dense returns of the successful and of the failed ``episodes``."""
    ok = [float(e["dense_return"]) for e in episodes if e.get("success")]
    bad = [float(e["dense_return"]) for e in episodes if not e.get("success")]
    return ok, bad


def _auc(positive: list[float], negative: list[float]) -> float | None:
    """Chance that a ``positive`` value out-scores a ``negative`` one (ties count half)."""
    if not positive or not negative:
        return None
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def _reward_on_rollouts(runs: dict[str, Any]) -> list[str]:
    """How well the rollout rewards tell SPIRAL's successful rollouts from its failed ones."""
    rows = []
    for task, by in runs.items():
        for method in SPIRAL_METHODS:
            for seed, entry in sorted(by.get(method, {}).items()):
                eps = entry.get("rollouts") or []
                if not eps:
                    continue
                ok, bad = _returns_by_outcome(eps)
                later = _auc(*_returns_by_outcome([e for e in eps if e.get("round", 0) >= 1]))
                cells = ["–" if auc is None else f"{auc:.2f}" for auc in (_auc(ok, bad), later)]
                rows.append(
                    f"| {task} | {LABELS[method]} | {seed} | {len(eps)} ({len(ok)}) | "
                    f"{np.mean(ok) if ok else float('nan'):.2f} | "
                    f"{np.mean(bad) if bad else float('nan'):.2f} | {cells[0]} | {cells[1]} |"
                )
    if not rows:
        return []
    return [
        "## The rollout rewards: successes against failures",
        "",
        "Every rollout in a SPIRAL run's latest checkpoint, with the dense return its labeller "
        "gave it (the sum over the episode of its rewards, each the labelled progress's "
        "increase at that frame, never negative), "
        "split by the env's success flag. AUC: the chance that a successful rollout's dense "
        "return exceeds a failed one's (0.5: the dense rewards do not tell them apart; 1: "
        "always). A run with reward-model adaptation relabels every rollout with the adapted "
        "model, which was fine-tuned on the first round's: the last column leaves those out.",
        "",
        "| task | method | seed | rollouts (successful) | mean dense return, successful | "
        "mean dense return, failed | AUC | AUC, rounds 2 and 3 |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _heldout_metrics(args: argparse.Namespace, task: str, model: Path, cache: Path) -> Any:
    """The SARM2 model in ``model`` on the task's held-out demonstrations (cached in ``cache``).

    Demo MSE, VOC and primitive accuracy, as ``sarm2 eval-rm`` computes them. The cache records
    what it scored (the model's weights, the number of demonstrations, the frame gap) and is
    recomputed when any of them changed, e.g. a run folder reused for a new run.
    """
    key = {
        "weights_sha256": weights_sha256(model),
        "heldout_demos": args.heldout_demos,
        "frame_gap": args.label_gap,
    }
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("scored") == key:
            return cached
    from sarm2_gym.algos.common.io import atomic_write_json
    from sarm2_gym.reward import SARM2RewardModel
    from sarm2_gym.reward.evaluation import evaluate_model

    demos = ensure_heldout_demos(args, task)
    overall = evaluate_model(
        SARM2RewardModel.from_pretrained(model), [demos], None,
        cache_dir=args.root / "feature_cache", frame_gap=args.label_gap, plots=0, progress=False,
    )["overall"]  # fmt: skip
    metrics = {k: float(overall[k]) for k in ("demo_mse", "voc", "primitive_acc", "n_demos")}
    atomic_write_json(cache, {**metrics, "scored": key})
    return metrics


def _adapted_on_heldout_demos(args: argparse.Namespace, runs: dict[str, Any]) -> list[str]:
    """RM1 against each adapted run's RM2 on held-out demonstrations (did the model forget?)."""
    if not args.heldout_demos or args.labeler == "privileged":
        return []
    rows = []
    for task, by in runs.items():
        adapted = [m for m in SPIRAL_METHODS if "_adapted" in m and by.get(m)]
        if not adapted:
            continue
        cache = heldout_demos_dir(args, task).with_name(
            f"{heldout_demos_dir(args, task).name}.rm1.json"
        )
        rm1 = _heldout_metrics(args, task, Path(reward_model_dir(args)), cache)
        rows.append(
            f"| {task} | RM1 (the labeller every run starts with) | – | {rm1['demo_mse']:.4f} | "
            f"{rm1['voc']:.3f} | {rm1['primitive_acc']:.3f} |"
        )
        for method in adapted:
            for seed in sorted(by[method]):
                out = args.root / task / method / f"seed{seed}"
                if not (out / CHECKPOINT_DIR / ADAPTED_REWARD_MODEL_DIR / "config.json").is_file():
                    continue
                rm2 = _heldout_metrics(
                    args,
                    task,
                    out / CHECKPOINT_DIR / ADAPTED_REWARD_MODEL_DIR,
                    out / "rm2_heldout.json",
                )
                rows.append(
                    f"| {task} | RM2 of {LABELS[method]} | {seed} | {rm2['demo_mse']:.4f} | "
                    f"{rm2['voc']:.3f} | {rm2['primitive_acc']:.3f} |"
                )
    if not rows:
        return []
    return [
        "## The adapted reward models on held-out demonstrations",
        "",
        f"{args.heldout_demos} demonstrations of each task's kind recorded from reset seed "
        f"{HELDOUT_DEMO_SEED:,} on (`ROOT/heldout_demos/`; neither the base policy nor any "
        "reward model saw them), scored by the reward model every run starts with (RM1) and "
        "by each adapted run's fine-tuned copy (RM2, saved in the run's "
        "`checkpoints/reward_model`). Demo MSE: steps-to-go against the simulator's progress "
        f"every {args.label_gap} frames, macro over episodes (as `sarm2 eval-rm`); VOC: "
        "value-order correlation; primitive accuracy: the stage estimator's, which the "
        "adaptation leaves frozen (so it equals RM1's). A model fine-tuned on rollouts alone "
        "can forget what it knew of demonstrations; mixing them in is meant to prevent that.",
        "",
        "| task | reward model | seed | demo MSE | VOC | primitive accuracy |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def base_demos(args: argparse.Namespace, task: str, runs: dict[str, Any]) -> str:
    """How many demonstrations of which kind the task's base policies were cloned from.

    As their results record it (the kind: for results from before it was recorded, the kinds
    whose demonstration folders the root holds for the task); with no runs yet, the plan's.
    """
    plan = plan_for(args, task)
    entries = [
        e["result"] for m in ("bc", "rabc") for e in runs.get(task, {}).get(m, {}).values()
        if "result" in e
    ]  # fmt: skip
    counts = sorted({int(r["demos"]) for r in entries}) or [plan.demos]
    kinds = {r.get("extra", {}).get("demo_kind") for r in entries}
    if None in kinds:
        kinds.discard(None)
        kinds |= {kind for kind in DEMO_KINDS if demos_dir(args, task, kind).is_dir()}
    kind = " / ".join(sorted(kinds)) if kinds else plan.demo_quality
    return f"{' / '.join(map(str, counts))} {kind} demonstrations"


def _fmt_rate(values: list[float]) -> str:
    if not values:
        return "–"
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.0f} %"
    return f"{np.mean(pct):.0f} ± {np.std(pct):.0f} %"


def _curve_points(entry: dict[str, Any], bc: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A SPIRAL run's points, starting from its base policy's BC evaluation (0 rollouts).

    A run that evaluated its own policy before any update has its own 0-rollout point instead;
    after an offline phase, that point comes after the BC one.
    """
    pts = list(entry.get("curve", {}).get("curve", []))
    own_base = any(p["round"] == 0 and not p.get("offline_updates") for p in pts)
    if bc is not None and "result" in bc and not own_base:
        base = {
            "round": 0,
            "rollouts": 0,
            "env_steps": 0,
            "success_rate": bc["result"]["success_rate"],
        }
        fresh = fresh_latent_success(bc["result"])
        if fresh is not None:
            base["success_rate_stochastic"] = fresh
        pts.insert(0, base)
    return pts


def plot(args: argparse.Namespace, runs: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in args.tasks if t in runs]
    if not tasks:
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 5.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        by = runs[task]
        bc = by.get("bc", {})
        per_round = plan_for(args, task).rollouts
        for method in ROUND_METHODS:
            curves = [_curve_points(e, bc.get(s)) for s, e in by.get(method, {}).items()]
            curves = [c for c in curves if len(c) > 1]
            for c in curves:
                ax.plot(
                    [_plot_x(method, p, per_round) for p in c],
                    [100 * _point_rate(p) for p in c], color=COLORS[method], alpha=0.25, lw=1,
                )  # fmt: skip
            if curves:
                n = min(len(c) for c in curves)
                xs = np.mean([[_plot_x(method, p, per_round) for p in c[:n]] for c in curves], 0)
                ys = np.array([[100 * _point_rate(p) for p in c[:n]] for c in curves])
                ax.errorbar(
                    xs, ys.mean(0), yerr=ys.std(0) if len(curves) > 1 else None, marker="o",
                    color=COLORS[method], capsize=3,
                    label=f"{LABELS[method]} ({len(curves)} seed{'s' * (len(curves) > 1)})",
                )  # fmt: skip
                fixed = [c[:n] for c in curves if all("success_rate_stochastic" in p for p in c)]
                if fixed:  # the same runs deployed with fixed latents
                    ys = np.array([[100 * p["success_rate"] for p in c] for c in fixed])
                    ax.plot(
                        xs, ys.mean(0), ls="--", marker=".", color=COLORS[method], alpha=0.6,
                        label=f"{LABELS[method]}, fixed latents ({len(fixed)})",
                    )  # fmt: skip
        for method, marker in (("bc", "s"), ("rabc", "D")):
            vals = [
                100 * _final_rate(e["result"]) for e in by.get(method, {}).values() if "result" in e
            ]
            if vals:
                ax.errorbar(
                    [0], [np.mean(vals)], yerr=[np.std(vals)] if len(vals) > 1 else None,
                    marker=marker, color=COLORS[method], ls="none", capsize=3, ms=7,
                    label=f"{LABELS[method]} ({len(vals)})",
                )  # fmt: skip
        for method, marker in (("ppo_sparse", "v"), ("ppo_sarm2", "^")):
            done = [e["result"] for e in by.get(method, {}).values() if "result" in e]
            if done:
                episodes = [r["extra"].get("train_episodes", np.nan) for r in done]
                rates = [100 * r["success_rate"] for r in done]
                ax.plot(
                    episodes, rates, marker=marker, color=COLORS[method], ls="none", ms=8,
                    label=f"{LABELS[method]} ({len(done)})",
                )  # fmt: skip
        ax.axhline(95, color="k", ls=":", lw=0.8)
        ax.set_title(task)
        ax.set_xlabel("rollouts used (training episodes)")
        ax.set_ylabel(f"success on {args.eval_episodes} held-out seeds (%)")
        ax.set_ylim(-3, 103)
        if ax.get_xlim()[1] < 1:  # only 0-rollout points (no SPIRAL round yet): a readable axis
            ax.set_xlim(-5, 105)
        ax.grid(alpha=0.3)
        # Below the axes: inside, the legend of seven methods covers their curves.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")  # the legend below may be wider than the axes
    plt.close(fig)
    os.replace(tmp, path)
    return True


def _plot_x(method: str, point: dict[str, Any], per_round: int) -> float:
    """A curve point's x: rollouts used; BC continued uses none and sits at its round's x."""
    if method == "bc_continued":
        return float(point["round"] * per_round)
    return float(point["rollouts"])


def _wall(entry: dict[str, Any]) -> str:
    # A SPIRAL run's curve carries its own wall-clock, saved with every round's checkpoint: it
    # survives a call that was killed before it could add its time to job.json.
    secs = entry.get("curve", {}).get("wall_seconds")
    if secs is None:
        secs = entry.get("job", {}).get("seconds")
    return "–" if secs is None else f"{secs / 60:.0f}"


def _final_rate(result: dict[str, Any]) -> float:
    """A finished run's success as deployed: fresh latents where measured, else its own eval.

    PPO is evaluated with its mean action (SB3's ``deterministic=True``), its usual deployment.
    """
    fresh = fresh_latent_success(result)
    return float(result["success_rate"]) if fresh is None else fresh


def _point_rate(point: dict[str, Any]) -> float:
    """A curve point's success as deployed (fresh latents where measured)."""
    return float(point.get("success_rate_stochastic", point["success_rate"]))


def _point_cell(point: dict[str, Any]) -> str:
    """A curve point's :func:`_rates_cell`."""
    return _rates_cell(point["success_rate"], point.get("success_rate_stochastic"))


def _rates_cell(deterministic: float, stochastic: float | None) -> str:
    """``"46"``, or with the fresh-latents evaluation ``"32 / 46"`` (fresh / fixed, percent)."""
    cell = f"{100 * deterministic:.0f}"
    return cell if stochastic is None else f"{100 * stochastic:.0f} / {cell}"


def _method_row(
    task: str, method: str, seeds: dict[int, dict[str, Any]], args: argparse.Namespace
) -> str:
    finished = {s: e for s, e in seeds.items() if "result" in e}
    running = [s for s, e in seeds.items() if e.get("running")]
    rates = [_final_rate(e["result"]) for e in finished.values()]
    both = [e["result"] for e in finished.values() if fresh_latent_success(e["result"]) is not None]
    fixed = [r["success_rate"] for r in both]  # the same runs with fixed latents
    per_seed = ", ".join(
        f"s{s}: {100 * _final_rate(e['result']):.0f}" for s, e in sorted(finished.items())
    )
    steps = [e["result"]["env_steps"] for e in finished.values()]
    rollouts = []
    for e in finished.values():
        r = e["result"]
        if r["curve"]:
            rollouts.append(r["curve"][-1]["rollouts"])
        elif "train_episodes" in r.get("extra", {}):
            rollouts.append(r["extra"]["train_episodes"])
        else:
            rollouts.append(0)
    demos = sorted({e["result"]["demos"] for e in finished.values()})
    walls = ", ".join(_wall(e) for _, e in sorted(finished.items()))
    status = f"{len(finished)}/{len(args.seeds)}"
    if running:
        status += f" (running: seed {', '.join(map(str, running))})"
    return (
        f"| {LABELS[method]} | {_fmt_rate(rates)} | {_fmt_rate(fixed)} | {per_seed or '–'} | "
        f"{', '.join(map(str, demos)) or '–'} | {round(np.mean(rollouts)) if rollouts else '–'} | "
        f"{round(np.mean(steps)) if steps else '–'} | {walls or '–'} | {status} |"
    )


def _stage_counts(labels: list[str], counts: list[int]) -> str:
    return " · ".join(f"{label} {c}" for label, c in zip(labels, counts, strict=True))


def _where_episodes_ended(task: str, runs: dict[str, Any], methods: list[str]) -> list[str]:
    """Where each final policy's held-out episodes ended, and how far its failures got.

    From the evaluation with fresh latents where it recorded the env's stages, else the one
    with fixed latents; runs whose evaluations recorded no stages are left out.
    """
    from sarm2_gym.envs.registry import env_class

    names = [st.primitive for st in env_class(TASK_IDS[task]).stages]
    labels = [f"{i + 1}. {n}" for i, n in enumerate(names)]
    rows = []
    for method in methods:
        for seed, entry in sorted(runs.get(task, {}).get(method, {}).items()):
            result = entry.get("result")
            if result is None:
                continue
            fresh = result.get("extra", {}).get("stochastic_eval")
            evaluation, latents = (fresh, "fresh") if fresh else (result.get("eval"), "fixed")
            if not evaluation or "final_stage" not in evaluation:
                continue
            ended, furthest = tally_stages(
                evaluation["successes"],
                evaluation["final_stage"],
                evaluation.get("furthest_stage"),
                len(names),
            )
            rows.append(
                f"| {LABELS[method]} | {seed} | {latents} | "
                f"{_stage_counts([*labels, 'success'], ended)} | "
                f"{_stage_counts(labels, furthest) if 'furthest_stage' in evaluation else '–'} |"
            )
    if not rows:
        return []
    return [
        "Where the final policies' held-out episodes ended (the env's stage at the end; a stage "
        "machine goes back when a finished stage comes undone, so the last column counts each "
        "failed episode at the furthest stage it reached):",
        "",
        "| method | seed | latents | where episodes ended | furthest stage of the failures |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _spiral_rounds(task: str, method: str, runs: dict[str, Any]) -> list[str]:
    by = runs.get(task, {})
    seeds = by.get(method, {})
    if not seeds:
        return []
    offline = method == "spiral_offline"
    # Filtered BC deploys its base policy as BC does: no starting point of its own.
    own_start = method not in FILTERED_BC_METHODS
    first_column = "after the offline phase" if offline else "before any update"
    fit = (
        ", where measured the critics' fit to those rollouts before they were trained on them "
        "(ρ: Spearman of each executed chunk's min-Q with the return that followed it)"
        if own_start
        else " (the successes are the ones cloned)"
    )
    header = ["seed", "base (BC)", *([first_column] * own_start), "round 1", "round 2", "round 3"]
    lines = [
        f"**{LABELS[method]}** per round (success % on the held-out seeds with fresh latents / "
        "with fixed latents, or fixed only where fresh were not measured; in brackets the "
        f"rollouts used so far, the success rate of the round's own rollouts{fit}, and the "
        "run's wall-clock in minutes at that point, evaluations included):",
        "",
        "| " + " | ".join([*header, "status"]) + " |",
        "|" + "---|" * (len(header) + 1),
    ]
    bc = by.get("bc", {})
    for seed, entry in sorted(seeds.items()):
        base = bc.get(seed, {}).get("result")
        cells = [_rates_cell(base["success_rate"], fresh_latent_success(base)) if base else "–"]
        curve = entry.get("curve", {}).get("curve", [])
        first = [p for p in curve if p["round"] == 0]
        if own_start:
            cells.append(_point_cell(first[0]) if first else "–")
        pts = [p for p in curve if p["round"] > 0]
        prev_rollouts, prev_succ = 0, 0
        for p in pts[:3]:
            n = p["rollouts"] - prev_rollouts
            k = p.get("rollout_successes", 0) - prev_succ
            prev_rollouts, prev_succ = p["rollouts"], p.get("rollout_successes", 0)
            rate = f"{100 * k / n:.0f} %" if n else "–"
            wall = p.get("wall_seconds")
            wall_s = f", {wall / 60:.0f} min" if wall is not None else ""
            rho = p.get("critic_heldout_spearman")
            rho_s = f", ρ {rho:.2f}" if rho is not None else ""
            # Lookahead BC's planner also stepped a copy of the env (its cost, not data).
            sim = p.get("simulated_steps")
            sim_s = f", {sim / 1e3:.0f}k simulated steps" if sim is not None else ""
            cells.append(
                f"{_point_cell(p)} ({p['rollouts']} rollouts, {rate}{rho_s}{sim_s}{wall_s})"
            )
        cells += ["–"] * (len(header) - 1 - len(cells))
        status = "done" if "result" in entry else ("running" if entry.get("running") else "stopped")
        lines.append(f"| {seed} | " + " | ".join(cells) + f" | {status} |")
    return [*lines, ""]


def _rounds_or_all(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points after at least one round of rollouts (all points if there are none)."""
    return [p for p in curve if p["round"] > 0] or curve


def _eval_episodes(result: dict[str, Any], default: int) -> int:
    """How many held-out episodes a finished run's success rate counts.

    BC, RA-BC and PPO record their evaluation seeds; SPIRAL's result does not, and is evaluated
    on the page's ``--eval-episodes`` (``default``).
    """
    return len(result.get("eval", {}).get("seeds", ())) or default


def _verdict(ours: list[float], n_ours: list[int], theirs: list[float], n_theirs: list[int]) -> str:
    """Ahead / level / behind, judged against the binomial spread of the pooled success counts.

    Every rate is a count over its evaluation episodes, so a few points between two cells of 50
    episodes is noise: the verdict is "ahead" or "behind" only where the 95 % (Wald) interval of
    the difference of the pooled rates excludes zero, and says how wide that interval is.

    Args:
        ours: SPIRAL's success rate on each paired seed.
        n_ours: Episodes behind each of ``ours``.
        theirs: The baseline's rate on the same seeds.
        n_theirs: Episodes behind each of ``theirs``.
    """
    n1, n2 = sum(n_ours), sum(n_theirs)
    p1 = sum(r * n for r, n in zip(ours, n_ours, strict=True)) / n1
    p2 = sum(r * n for r, n in zip(theirs, n_theirs, strict=True)) / n2
    diff = p1 - p2
    half = 1.96 * float(np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2))
    spread = f"{100 * diff:+.0f} ± {100 * half:.0f} points over {n1} / {n2} episodes"
    # Rates are counts over the same episodes: equal counts are a tie, not float noise.
    if diff - half > 1e-9:
        return f"ahead ({spread})"
    if diff + half < -1e-9:
        return f"**behind** ({spread})"
    return f"**level** within the binomial spread ({spread})"


def _targets(task: str, runs: dict[str, Any], eval_episodes: int) -> list[str]:
    """The 95 % target and the comparison with every baseline, for each full-SPIRAL variant.

    ``eval_episodes``: the page's held-out episodes per evaluation, for runs that do not record
    theirs.
    """
    by = runs.get(task, {})
    lines: list[str] = []
    for variant in FULL_SPIRAL_METHODS:
        done = [e["result"] for e in by.get(variant, {}).values() if "result" in e]
        if not done:
            if variant == "spiral":
                started = variant in by  # a run folder exists
                lines.append(
                    f"- {task}: SPIRAL has no finished seed yet."
                    if started
                    else f"- {task}: SPIRAL was not run in this folder."
                )
            continue
        finals = [_final_rate(r) for r in done]
        # Best after a round of rollouts: round 0 (before any, or after the offline phase) is
        # where a run starts.
        best = [max(_point_rate(p) for p in _rounds_or_all(r["curve"])) for r in done]
        lines.append(
            f"- {task}: {LABELS[variant]} after its last round {_fmt_rate(finals)} over "
            f"{len(done)} seed(s) (best round {_fmt_rate(best)}); target >= 95 % after at most 3 "
            f"rounds — **{'met' if np.mean(finals) >= 0.95 else 'not met'}**"
        )
        mine = {
            s: _final_rate(e["result"]) for s, e in by.get(variant, {}).items() if "result" in e
        }
        # Its own base policy first (what the rounds improved on), then the baselines,
        # then self-improvement without a critic.
        for method in ("bc", *BASELINE_METHODS, *FILTERED_BC_METHODS):
            # Paired: only the seeds both have finished (same base policy, same rollout seeds).
            theirs = {
                s: _final_rate(e["result"])
                for s, e in by.get(method, {}).items()
                if "result" in e and s in mine
            }
            if theirs:
                seeds = sorted(theirs)
                ours = [mine[s] for s in seeds]
                other = [theirs[s] for s in seeds]
                episodes = [_eval_episodes(by[variant][s]["result"], eval_episodes) for s in seeds]
                other_episodes = [
                    _eval_episodes(by[method][s]["result"], eval_episodes) for s in seeds
                ]
                lines.append(
                    f"  - vs {LABELS[method]} on seed(s) {', '.join(map(str, seeds))}: "
                    f"{_fmt_rate(ours)} against {_fmt_rate(other)} — "
                    + _verdict(ours, episodes, other, other_episodes)
                )
    return lines


def page_title(args: argparse.Namespace) -> str:
    """The page's title: its tasks and every setting that differs from the defaults."""
    tasks = list(args.tasks)
    title = "# SPIRAL vs baselines on " + (
        tasks[0] if len(tasks) == 1 else ", ".join(tasks[:-1]) + " and " + tasks[-1]
    )
    settings = []
    if args.latent_temperature != 1.0:
        settings.append(f"latent temperature {args.latent_temperature:g}")
    if args.gradient_steps is not None:
        settings.append(f"{args.gradient_steps:,} updates per round")
    if args.frozen_image_features:
        settings.append("critics on frozen image features")
    if args.critic_privileged_state:
        settings.append("critics read the simulator's object state")
    if (args.model or {}).get("privileged_state_dim"):
        settings.append("an oracle base policy that reads the simulator's object state")
    demos = [str(v) for v in (args.demos, args.demo_quality) if v is not None]
    if demos:
        settings.append(" ".join(demos) + " demonstrations")
    title += f" ({', '.join(settings)})" if settings else ""
    if args.labeler == "privileged":
        title += " (DEVELOPMENT RUN: privileged-progress oracle labels, not SARM2)"
    return title


def write_report(args: argparse.Namespace) -> str:
    runs = load_runs(args)
    n_jobs = len(args.tasks) * len(args.seeds) * len(args.methods)
    finished = sum(
        1 for t in runs.values() for m, seeds in t.items() if m in args.methods
        for e in seeds.values() if "result" in e
    )  # fmt: skip
    running = [
        f"{t}/{m}/seed{s}" for t, by in runs.items() for m, seeds in by.items()
        for s, e in seeds.items() if e.get("running")
    ]  # fmt: skip
    parts = [page_title(args), ""]
    if finished < n_jobs:
        parts += [
            f"> **PARTIAL RESULTS** ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
            f"{finished} of {n_jobs} runs ({len(args.tasks)} tasks x {len(args.methods)} methods "
            f"x {len(args.seeds)} seeds) have finished. Still running: "
            f"{', '.join(running) or 'nothing (rerun the command below to continue)'}. "
            "Tables and plot show only what exists; the benchmark is resumable.",
            "",
        ]
    if args.note:
        parts += [args.note, ""]
    # The plot lives in a folder named after the page, so pages of other roots keep their own.
    png = args.doc.parent / args.doc.stem / "success_vs_rollouts.png"
    if plot(args, runs, png):
        parts += [f"![success vs rollouts]({args.doc.stem}/{png.name})", ""]
    parts += [_setup_text(args), ""]
    for task in args.tasks:
        plan = plan_for(args, task)
        parts += [
            f"## {task}",
            "",
            f"Base policy: {base_demos(args, task, runs)}{_held_out_clause(args, plan)}, "
            f"{plan.bc_steps} BC steps{_ema_clause(args)}{_past_end_clause(args)}"
            f"{_random_shift_clause(args)}, "
            f"{plan.n_action_steps or 'all 10'} actions executed per chunk. SPIRAL: "
            f"{plan.rounds} rounds x {plan.rollouts} rollouts, {plan.gradient_steps} updates "
            "per round.",
            "",
            "| method | success (mean ± std over seeds) | with fixed latents | per seed (%) | "
            "demos | rollouts used | env steps used | wall-clock per seed (min) | seeds done |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        by = runs.get(task, {})
        for method in args.methods:
            parts.append(_method_row(task, method, by.get(method, {}), args))
        parts.append("")
        parts += _where_episodes_ended(task, runs, args.methods)
        for method in ROUND_METHODS:
            parts += _spiral_rounds(task, method, runs)
    parts += _reward_on_rollouts(runs)
    parts += _adapted_on_heldout_demos(args, runs)
    parts += _labeler_section(args, runs)
    parts += ["## Targets", ""]
    for task in args.tasks:
        parts += _targets(task, runs, args.eval_episodes)
    parts += [
        "",
        "## Commands",
        "",
        "Every number above was produced by this command (rerun it to resume or to refresh "
        "this page; `--report-only` only rewrites the page):",
        "",
        "```bash",
        *(args.command.splitlines() or ["python " + " ".join(sys.argv)]),
        "```",
        "",
    ]
    text = "\n".join(parts)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.doc.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, args.doc)
    return text


def _labeler_section(args: argparse.Namespace, runs: dict[str, Any]) -> list[str]:
    """Which reward-model weights scored each run's rollouts (from the runs' ``job.json``)."""
    rows = []
    for task, by in runs.items():
        for method, seeds in by.items():
            if method not in LABELED_METHODS or method not in args.methods:
                continue
            for seed, entry in sorted(seeds.items()):
                used = entry.get("job", {}).get("labelers", [])
                cell = ", ".join(f"`{u[:12]}`" for u in used) or "not recorded"
                if "_adapted" in method:  # its own fine-tuned copy labels from round 1 on
                    cell += ", fine-tuned after round 1 (the run's `checkpoints/reward_model`)"
                rows.append(f"| {task} | {LABELS[method]} | {seed} | {cell} |")
    if not rows:
        return []
    return [
        "## Reward-model weights per run",
        "",
        "The first 12 hex digits of the `weights_sha256` of the reward model each run used "
        "(SPIRAL's and PPO's rollout rewards, RA-BC's demonstration weights), as recorded in the "
        "run's `job.json`; two entries mean the run was resumed after the model changed. The "
        f"model the command uses now: `{labeler_id(args)[:12]}`.",
        "",
        "| task | method | seed | reward-model weights |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def filtered_bc_defaults() -> dict[str, Any]:
    """The fine-tuning settings filtered-BC jobs leave at their defaults (for the setup text)."""
    from sarm2_gym.algos.baselines import FilteredBCRunConfig

    run = {f.name: f.default for f in dataclasses.fields(FilteredBCRunConfig)}
    bc = {f.name: f.default for f in fields(BCConfig)}
    return {
        **{k: run[k] for k in ("batch_size", "lr", "warmup_steps")},
        "min_lr_ratio": bc["min_lr_ratio"],
    }


def _setup_text(args: argparse.Namespace) -> str:
    from sarm2_gym.reward.adaptation import AdaptationConfig

    adaptation = AdaptationConfig()  # the adapter's defaults, as run_spiral uses them
    finetune = filtered_bc_defaults()  # as the filtered-BC jobs run them
    adapt_mix = (
        f" (in 'SPIRAL + adaptation, demonstrations mixed in', {adaptation.demo_frames} of "
        "every batch's frames come from the base policy's demonstrations instead, their "
        "privileged progress as targets: the paper mixes in its pretraining data)"
    )
    labels = (
        "the simulator's privileged progress (an oracle, development only)"
        if args.labeler == "privileged"
        else "the packaged SARM2 reward model (`sarm2_gym/pretrained/sarm2_sim`)"
        if args.labeler == "sarm2"
        else f"the SARM2 reward model `{args.labeler}`"
    )
    if args.labeler != "privileged":
        labels += (
            f", queried every {args.label_gap} frames, smoothed over {args.label_window} "
            "queries (spec §1.8)"
        )
    return "\n".join(
        [
            "## Setup",
            "",
            f"- Machine: {machine()}; one torch thread per worker, {args.workers} worker(s) "
            "sharing the job queue, other jobs on the same cores. Wall-clocks include "
            "the 50-episode evaluations and are comparable only within this page.",
            f"- Success: the env's own success flag on {args.eval_episodes} held-out reset "
            "seeds (1,000,000 onwards; demonstrations use seeds 0.., SPIRAL rounds "
            "seed x 100,000 + 1,000 x round + env, PPO its own seeded envs). "
            + (
                "BC, RA-BC and SPIRAL are deployed as a flow-matching VLA runs, with fresh latent "
                "noise for every chunk (SPIRAL: best of kappa fresh latents by min-Q, as its "
                "rollouts are collected); that is the success reported, the plot's solid lines "
                "and the targets. The same policies with fixed latents "
                "(`predict(deterministic=True)`: the same noise for every chunk) are in the "
                "column 'with fixed latents', after the slash in the round tables and dashed in "
                "the plot: a fixed latent is a draw that can land far from the policy's mean "
                "success either way. Runs without the fresh-latent evaluation report fixed "
                "latents only. PPO: its mean action."
                if args.stochastic_eval
                else "The policies are deployed with fixed latents (`predict(deterministic=True)`"
                ": the same latent noise for every chunk; SPIRAL picks the best of its kappa "
                "fixed latents by min-Q). PPO: its mean action."
            ),
            "- Base policy: TinyVLA (`sarm2 bc`) behaviour-cloned on the first N demonstrations "
            "of the task, `expert` (`sarm2 collect --quality expert`), `dart` (the same expert "
            "pushed off its path while executing, its corrections recorded: `--quality dart`) or, "
            "for CleanWhiteboard, `sweep` or `dense_sweep` (the expert wiping the whole board in "
            "three or four overlapping lanes before chasing any ink left: `--expert-option "
            "wipe=sweep` / `wipe=dense_sweep`; `dense_sweep_high`: the dense sweep with the "
            "eraser carried back to its tray high and lowered straight onto it, `carry=high`; "
            "`dense_sweep_full`: the dense sweep wiped to its last lane's end even once the "
            "board is clean, `finish=sweep`; `dense_sweep_full_high`: both; "
            "`dense_sweep_full_survey`: the full sweep with the first grasp approached from "
            "above the tray's mean place, `approach=survey`; `dense_sweep_full_survey_carry`: "
            "also a stop there on the way back, `carry=survey`); "
            "the kind and number of demonstrations are the "
            "knobs meant to put it near the paper's 40-70 % starting point "
            "([bc_base_policy.md](bc_base_policy.md) and, for the sweeps, "
            "[bc_base_policy_sweep.md](bc_base_policy_sweep.md) measure them; the BC row says "
            "where it is)"
            + (f", with TinyVLA fields `{json.dumps(args.model)}`" if args.model else "")
            + ". Before any update SPIRAL does not deploy this policy: it executes the best of "
            "kappa base chunks (each plus a near-zero residual) as chosen by its untrained "
            "critics. A SPIRAL run that evaluated that starting point shows it in its round "
            "table ('before any update') and as its curve's 0-rollout point; for the others the "
            "0-rollout point is this BC evaluation "
            "([spiral_deployment.md](spiral_deployment.md) measures the starting point of "
            "finished runs).",
            *(
                [
                    f"- Latent temperature {args.latent_temperature:g}: every VLA here (BC, RA-BC "
                    "and SPIRAL, in its rollouts, updates and evaluations) draws its latents as "
                    f"{args.latent_temperature:g} x N(0, I) instead of the flow head's own "
                    "N(0, I) (`--latent-temperature`)."
                ]
                if args.latent_temperature != 1.0
                else []
            ),
            f"- Rollout rewards: {labels}. Critic targets alpha·MC + (1 − alpha)·TD with the "
            "sparse terminal 1 for success, 0 otherwise (`mc_terminal='success'`).",
            "- SPIRAL: the spec's preset (gamma 0.9995 at 30 fps converted to 10 Hz, beta 30, "
            "5 critics, kappa 4, tau 0.005, lr 1e-4, batch 16, residual bound 0.1) with 3 x 256 "
            "MLPs over TinyVLA features"
            + (
                f" and each camera's frozen {args.frozen_image_features} features at "
                f"{args.frozen_image_size} px (`--frozen-image-features`)"
                if args.frozen_image_features
                else ""
            )
            + (
                " and, for the critics only (so for the best-of-kappa choice too, not for the "
                "residual actor), the simulator's privileged object state, the env's `env_state` "
                "(`--critic-privileged-state`: asymmetric actor-critic, simulation only),"
                if args.critic_privileged_state
                else ""
            )
            + " instead of 3 x 1024 over SigLIP features, and the "
            "updates per round each task gives (the preset does 10,000; fewer fit two shared "
            "CPU cores). No reward-model adaptation (stage 2a) but in 'SPIRAL + reward-model "
            "adaptation' and 'SPIRAL + adaptation, demonstrations mixed in': after its first "
            "round the reward model is fine-tuned "
            f"({', '.join(sorted({f'{plan_for(args, t).adapt_steps}' for t in args.tasks}))} "
            f"steps of {adaptation.batch_size} frames, lr {adaptation.lr:g}, stage estimator "
            "frozen: `SARM2Adapter`) on that round's "
            "rollouts, annotated from the simulator's progress through the segment protocol of "
            f"spec §2.3{adapt_mix}, and labels every rollout from then on, the first round's "
            "included. "
            "No offline phase (2b) but in "
            "'SPIRAL + offline phase': the base policy's own demonstrations, labelled by the "
            "same reward model, get one round's updates before the first round (its policy is "
            "evaluated after them) and stay in the replay (the critic's input latent is 0 for "
            "their actions, spec §2.2).",
            "- RA-BC: the same demonstrations and steps as BC, weights from the same reward "
            "model's progress (spec §3.6, kappa 0.01). SPIRAL alpha = 0 / 1: same rounds. PPO "
            "(SB3, `MultiInputPolicy` on the same cameras + state at 64 px): the env steps the "
            "SPIRAL run of the same seed used; plotted at the number of training episodes it ran."
            + (
                " PPO (SARM2 dense) is rewarded with the same oracle, the simulator's progress "
                "through SARM2's delta math (`reward='privileged'`: the mean of the last five "
                "readings, never falling, rewarded by its increase)."
                if args.labeler == "privileged"
                else f" PPO (SARM2 dense) is rewarded by the same reward model, queried every "
                f"{args.label_gap} steps and smoothed over {args.label_window} readings as "
                "SPIRAL's labels are (`reward_options`)."
            ),
            "- Filtered BC (`FilteredBCRunConfig`, no critic and no reward model): the same "
            "rounds and rollouts per round as SPIRAL, from the same base policy; each round "
            "rolls the current policy out with fresh latents, keeps the rollouts the env's "
            "sparse success flag marks successful (the signal PPO (sparse) gets), and "
            "fine-tunes the policy (BC from its weights and normalisation, a fresh optimizer, "
            f"{', '.join(sorted({f'{plan_for(args, t).finetune_steps:,}' for t in args.tasks}))}"
            f" steps of {finetune['batch_size']} at lr {finetune['lr']:g} after "
            f"{finetune['warmup_steps']} warm-up steps, cosine to {finetune['min_lr_ratio']:g} "
            "of it) on the base policy's demonstrations plus every success kept so far. BC "
            "continued: the same fine-tuning rounds on the demonstrations alone, without "
            "rollouts (what more BC steps alone do; the plot draws its rounds where the others' "
            "rounds are). Lookahead BC: the same rounds, but each "
            "rollout chooses every chunk among the current policy's "
            f"{args.lookahead_candidates} candidates (fresh latents) by executing each in a "
            f"copy of the env and following it with the policy for {args.lookahead_horizon} "
            "steps (the same continuation latents for all), the one with the most privileged "
            "progress at the end (1 if successful) executed (`SimulatedLookahead`): expert "
            "iteration with a simulator planner, an oracle that reads the simulator's progress "
            "and state, not SPIRAL and not possible on a robot. It measures what cloning a "
            "perfect short-horizon critic's choices would do. Its env steps count the "
            "episodes' own steps; the planner's steps in the copy (replays and lookaheads) are "
            "in its round table as simulated steps so far.",
        ]
    )


def safe_report(args: argparse.Namespace) -> None:
    try:
        write_report(args)
    except Exception:  # a report glitch must never stop the experiments
        traceback.print_exc()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report_only:
        write_report(args)
        print(f"wrote {args.doc}")
        return
    if args.workers > 1:
        child = list(argv if argv is not None else sys.argv[1:])
        i = child.index("--workers")
        child[i : i + 2] = ["--workers", "1"]
        procs = [subprocess.Popen([sys.executable, __file__, *child]) for _ in range(args.workers)]

        def forward(signum: int, frame: Any) -> None:
            for proc in procs:
                proc.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for proc in procs:
            proc.wait()
        write_report(args)
        return
    work(args)
    write_report(args)


if __name__ == "__main__":
    main()
