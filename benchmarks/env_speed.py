"""Control steps per second of every benchmark task, in rgb and state modes, on one core.

Drives each env with its scripted expert (so contacts, grasps and cloth folding are exercised)
and times ``env.step`` in ``obs_mode="rgb"`` (96x96, three cameras rendered each step) and
``obs_mode="state"`` (no rendering). The difference is the rendering cost, the rest physics,
task evaluation and control.

Usage:
    python benchmarks/env_speed.py [--steps 300] [--tasks all] [--out docs/results/env_speed.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym

import sarm2_gym  # noqa: F401  (registers envs, picks the GL backend)
from sarm2_gym.data.generation import resolve_tasks
from sarm2_gym.envs.registry import expert_for

TARGET_RGB = {"SARM2-FoldShorts-v0": 20.0}
DEFAULT_TARGET = 10.0


def time_mode(env_id: str, obs_mode: str, steps: int) -> float:
    """Mean seconds per control step over about ``steps`` expert-driven steps."""
    env = gym.make(env_id, obs_mode=obs_mode, image_size=96)
    expert = expert_for(env_id, "expert")
    elapsed, done_steps, seed = 0.0, 0, 0
    while done_steps < steps:
        env.reset(seed=seed)
        expert.reset(env.unwrapped, seed=seed)
        for _ in range(steps - done_steps):
            action = expert.act().action
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            elapsed += time.perf_counter() - t0
            done_steps += 1
            if terminated or truncated or expert.gave_up:
                break
        seed += 1
    env.close()
    return elapsed / done_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--out", type=Path, default=Path("docs/results/env_speed.md"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(
            0, {sorted(os.sched_getaffinity(0))[0]}
        )  # one core, as the target says

    load = os.getloadavg()
    rows = []
    for env_id in resolve_tasks(args.tasks):
        rgb = time_mode(env_id, "rgb", args.steps)
        state = time_mode(env_id, "state", args.steps)
        target = TARGET_RGB.get(env_id, DEFAULT_TARGET)
        render_share = max(rgb - state, 0.0) / rgb
        rows.append((env_id, 1 / rgb, 1 / state, 1 - render_share, render_share, target))
        print(f"{env_id}: rgb {1 / rgb:.1f} steps/s, state {1 / state:.1f} steps/s", flush=True)

    lines = [
        "# Environment speed",
        "",
        f"Command: `python benchmarks/env_speed.py --steps {args.steps} --tasks {args.tasks}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one core "
        f"pinned, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, Python {sys.version.split()[0]}; "
        f"load average during the run {load[0]:.1f} -> {os.getloadavg()[0]:.1f} (other work shared "
        "the machine: the numbers are lower bounds). Expert-driven episodes; rgb = three 96x96 "
        "cameras rendered every control step (10 Hz).",
        "",
        "| task | rgb steps/s | state steps/s | physics+control share (rgb) "
        "| rendering share (rgb) | target rgb | meets |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id, rgb_sps, state_sps, phys, rend, target in rows:
        lines.append(
            f"| {env_id} | {rgb_sps:.1f} | {state_sps:.1f} | {phys:.0%} | {rend:.0%} "
            f"| >= {target:.0f} | {'yes' if rgb_sps >= target else 'NO'} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
