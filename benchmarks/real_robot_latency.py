"""Latency of the robot server over loopback: round trips, achievable control rate, watchdog.

A ``RobotServer`` with a physics-free ``KinematicRobot`` (three 96x96x3 cameras by default) runs
in a separate process; this process talks to it through ``RemoteRobot`` and ``RealRobotEnv``,
exactly as a learning PC talks to a robot PC, so the numbers are the cost of the software stack
(serialisation, HMAC, ZeroMQ, safety checks), not of any robot.

Run:
    .venv/bin/python benchmarks/real_robot_latency.py --out docs/results/real_robot.md
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sarm2_gym.real import KinematicRobot, RealRobotEnv, RemoteRobot, RobotServer

TOKEN = "benchmark-token-0123456789abcdef"


def serve(image_size: int, port_queue: mp.Queue, stop: mp.Event) -> None:  # type: ignore[type-arg]
    server = RobotServer(KinematicRobot(image_size=image_size), TOKEN, port=0)
    server.start()
    port_queue.put(server.port)
    stop.wait()
    server.shutdown()


def timed(fn: Callable[[], object], n: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out * 1000.0  # ms


def row(name: str, ms: np.ndarray) -> str:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return (
        f"| {name} | {ms.mean():.2f} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {1000 / ms.mean():.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("-n", type=int, default=500, help="requests per measurement")
    parser.add_argument("--trips", type=int, default=5, help="watchdog trips to measure")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    ports: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    stop = ctx.Event()
    proc = ctx.Process(target=serve, args=(args.image_size, ports, stop), daemon=True)
    proc.start()
    try:
        endpoint = f"tcp://127.0.0.1:{ports.get(timeout=60)}"
        lines = measure(endpoint, args)
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


def measure(endpoint: str, args: argparse.Namespace) -> list[str]:
    n, size = args.n, args.image_size
    robot = RemoteRobot(endpoint, TOKEN)
    robot.connect()
    robot.home()
    state = robot.observe().state.copy()
    for _ in range(50):  # warm-up
        robot.observe()
    payload = 3 * size * size * 3 + 14 * 8

    ping = timed(robot.ping, n)
    observe = timed(robot.observe, n)

    def act() -> None:
        robot.act(state)

    act_ms = timed(act, n)

    def cycle() -> None:
        robot.observe()
        robot.act(state)

    cycle_ms = timed(cycle, n)
    robot.stop()

    # RealRobotEnv.step with no rate limit (1 kHz target: every step is "late").
    # watchdog=False: only the server's watchdog may stop the robot (measured below).
    env = RealRobotEnv(robot, control_hz=1000.0, connect=False, watchdog=False)
    env.robot.connect()
    env.reset()
    zero = np.zeros(14, np.float32)
    step_ms = timed(lambda: env.step(zero), n)
    # The same env at the 10 Hz of the tasks: jitter and late steps.
    env10 = RealRobotEnv(robot, connect=False, watchdog=False)
    env10.robot.connect()
    env10.reset()
    for _ in range(100):
        env10.step(zero)
    t10 = env10.timing_stats()
    robot.stop()

    # Watchdog: command once, go silent, read the trip delay measured by the server.
    deadline = robot.config.safety.watchdog_timeout_s
    delays = []
    for _ in range(args.trips):
        robot.home()
        robot.observe()
        robot.act(state)
        time.sleep(deadline + 0.2)
        delays.append(robot.status()["watchdog"]["last_trip_delay_s"] - deadline)
    robot.home()
    robot.close()

    cmd = "    .venv/bin/python benchmarks/real_robot_latency.py " + shlex.join(sys.argv[1:])
    return [
        "# Real-robot stack: latency over loopback",
        "",
        "Produced by:",
        "",
        cmd.rstrip(),
        "",
        f"Server (`RobotServer` + `KinematicRobot`, no physics) and client in separate processes "
        f"on one machine ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, shared with other jobs, so tails are noisy); "
        f"3 cameras of {size}x{size}x3 uint8 = {payload / 1024:.0f} KiB per observation; "
        f"{n} requests per row; HMAC-SHA256 on every message.",
        "",
        "| request | mean ms | p50 ms | p95 ms | p99 ms | rate (1/mean, Hz) |",
        "|---|---|---|---|---|---|",
        row("ping (no payload)", ping),
        row("observe (3 images + state)", observe),
        row("act (14-D target, safety-checked)", act_ms),
        row("observe + act (one control cycle)", cycle_ms),
        row("`RealRobotEnv.step`, rate limit off", step_ms),
        "",
        "Achievable control rate (network + software only): about "
        f"**{1000 / cycle_ms.mean():.0f} Hz** for an observe + act cycle and "
        f"**{1000 / step_ms.mean():.0f} Hz** for a full `RealRobotEnv.step`, against the 10 Hz "
        "the tasks use.",
        "",
        f"At 10 Hz (`RealRobotEnv`, 100 steps): achieved {t10.achieved_hz:.2f} Hz, "
        f"mean interval {1000 * t10.mean_interval_s:.1f} ms, "
        f"max {1000 * t10.max_interval_s:.1f} ms, "
        f"{t10.late_steps} late steps (> 110 ms).",
        "",
        f"Watchdog ({deadline:.2f} s deadline, {args.trips} trips, measured in the server process "
        "from the last command to `stop()`): overshoot "
        f"mean {1000 * statistics.mean(delays):.2f} ms, max {1000 * max(delays):.2f} ms.",
    ]


if __name__ == "__main__":
    main()
