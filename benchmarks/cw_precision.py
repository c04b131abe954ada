r"""Where CleanWhiteboard policies grasp and let go, against where things are -> a results page.

The eraser starts in its tray, and the tray is placed anew every episode (uniformly within
+-3 cm of its mean in x and y). A policy that locates it must grasp where the eraser is and let
go where the tray is; one that does not goes to the mean place. This script rolls policies out
on held-out seeds and records two moments per episode:

- the first grasp: where the right TCP is when the policy first commands its gripper closed,
  against where the eraser lies (its starting place, the tray's centre);
- every release of the eraser: where the eraser is when it leaves the gripper, against the
  tray's centre, and whether the board was clean then (the place stage); and where it comes to
  rest, and whether the env's own place check (inside the tray, on its base, at rest) holds
  there.

Per axis it fits ``tcp = a + slope * eraser`` over the episodes: slope 1 follows the eraser, 0
goes to the same place whatever the episode. The scripted expert (``--expert [KIND ...]``,
the demonstration kinds of ``sarm2_gym.data.generation.DEMO_KINDS``) is the reference: it reads
the simulator's positions.

Each policy's episodes are stored in ``--out`` (``LABEL.json``, written atomically) and reused
when the policy, episodes, chunk execution and :data:`MEASURE_VERSION` match, so a rerun only
measures what is new.

Usage:
    python benchmarks/cw_precision.py --doc docs/results/cw_precision.md --out DATA/precision \
        --expert --policies "shift 4=RUN/CleanWhiteboard/bc/seed0" ...
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sarm2_gym.common.files import atomic_write
from sarm2_gym.envs.tasks.clean_whiteboard import IN_TRAY_SLACK_XY, SETTLED_SPEED

TASK = "SARM2-CleanWhiteboard-v0"
GRIPPER = 13  # the right gripper's command in the 14-d action (> 0: close)
ARM = "right"
HOLD_CHECK = 5  # steps after the first close at which "holding" is read
DEFAULT_EXPERT_KIND = "dense_sweep_full"  # the demonstrations of most policies measured here
AXES = [7, 8]  # the right arm's x and y motion in the 14-d action
PROBE_STEPS = 5  # the approach: the expert is above the eraser after about five steps
PROBE_LATENTS = 8
PROBE_SEED_START = 2_000_000  # resets the probe reads (neither demonstrations nor evaluations)
# At most this many steps after a release the eraser's place is read as where it came to rest
# (earlier once it moves slower than the env's settled speed, from the step after on).
REST_STEPS = 10
# Part of every cache key: raise it when what an episode or a probe records changes, so stored
# measurements of an older version are measured again instead of read back incomplete.
MEASURE_VERSION = 2
EXPERT_SOURCE = "expert:"  # a source naming the scripted expert of a demonstration kind


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--policies",
        nargs="*",
        default=[],
        help="LABEL=TINYVLA_FOLDER pairs, in the order the page shows them.",
    )
    p.add_argument(
        "--expert",
        nargs="*",
        default=None,
        metavar="KIND",
        help="Also measure the scripted expert of these demonstration kinds (none given: "
        f"{DEFAULT_EXPERT_KIND}).",
    )
    p.add_argument("--episodes", type=int, default=50, help="Held-out seeds per policy.")
    p.add_argument(
        "--image-size",
        type=int,
        default=96,
        help="Side of the env's renders: that of the demonstrations the policies cloned "
        "(benchmarks/spiral.py records and evaluates at 96; the policy resizes them itself).",
    )
    p.add_argument(
        "--n-action-steps", type=int, default=None, help="Actions per chunk (default: all)."
    )
    p.add_argument(
        "--probe-resets",
        type=int,
        default=0,
        help="Also read each policy at this many resets: its first chunk against the expert's "
        "first actions, and how well its image and trunk features locate the eraser (0: no).",
    )
    p.add_argument(
        "--root", type=Path, default=Path("."), help="Folder the TINYVLA_FOLDERs are relative to."
    )
    p.add_argument("--out", type=Path, required=True, help="Folder of the per-policy episodes.")
    p.add_argument("--doc", type=Path, default=Path("docs/results/cw_precision.md"))
    p.add_argument("--command", default="", help="Command lines quoted in the page.")
    p.add_argument("--note", default="", help="Paragraph printed under the page's title.")
    args = p.parse_args(argv)
    if args.expert == []:
        args.expert = [DEFAULT_EXPERT_KIND]
    if not args.policies and not args.expert:
        p.error("give --policies, --expert or both")
    from sarm2_gym.data.generation import DEMO_KINDS

    for kind in args.expert or []:
        if kind not in DEMO_KINDS:
            p.error(f"--expert: unknown demonstration kind {kind!r} (known: {sorted(DEMO_KINDS)})")
    return args


# ----------------------------------------------------------------------------- measuring
def run_episode(env: Any, act: Callable[[Any, bool], np.ndarray], seed: int) -> dict[str, Any]:
    """One episode from ``reset(seed=seed)``; ``act(obs, first)`` returns the env action."""
    obs, _ = env.reset(seed=seed)
    task = env.unwrapped
    tray = [float(v) for v in task.tray_center()[:2]]
    start, _ = task.eraser_pose()
    eraser0 = [float(v) for v in start[:2]]
    grasp: dict[str, Any] | None = None
    releases: list[dict[str, Any]] = []
    closed_before = False
    info: dict[str, Any] = {}
    t = 0
    for t in range(10_000):
        action = act(obs, t == 0)
        closing = bool(action[GRIPPER] > 0)
        if grasp is None and closing and not closed_before:
            tcp = task.robot.tcp_pos(task.data, ARM)
            grasp = {"t": t, "tcp": [float(v) for v in tcp]}
        closed_before = closing
        held = task.eraser_held()
        obs, _, terminated, truncated, info = env.step(action)
        if grasp is not None and "held" not in grasp and t >= grasp["t"] + HOLD_CHECK:
            grasp["held"] = bool(task.eraser_held())
        if held and not task.eraser_held():
            pos, _ = task.eraser_pose()
            clean = len(task.remaining_ink()) == 0
            releases.append({"t": t, "eraser": [float(v) for v in pos], "clean": clean})
        for release in releases:
            if "rest" not in release:
                _read_rest(task, release, t, last=terminated or truncated)
        if terminated or truncated:
            break
    return {
        "seed": seed,
        "tray": tray,
        "eraser_start": eraser0,
        "grasp": grasp,
        "releases": releases,
        "success": bool(info.get("is_success", False)),
        "steps": t + 1,
    }


def _read_rest(task: Any, release: dict[str, Any], t: int, last: bool) -> None:
    """Record where a released eraser came to rest once it has (``rest`` None: grasped first)."""
    if task.eraser_held():
        release["rest"], release["in_tray"] = None, False
        return
    since = t - release["t"]
    if last or since >= REST_STEPS or (since >= 1 and task.eraser_speed() < SETTLED_SPEED):
        pos, _ = task.eraser_pose()
        release["rest"] = [float(v) for v in pos]
        release["in_tray"] = bool(task.eraser_in_tray())


def measure_policy(
    folder: Path, seeds: list[int], n_action_steps: int | None, image_size: int
) -> list[Any]:
    """Episodes of the TinyVLA in ``folder``, fresh latents per chunk as BC is evaluated."""
    import torch

    from sarm2_gym.algos.baselines.common import fresh_latent_seed, make_task_env, task_instruction
    from sarm2_gym.algos.vla import TinyVLA, VLAController

    torch.set_num_threads(1)
    policy = TinyVLA.from_pretrained(folder)
    control = VLAController(
        policy,
        task_instruction(TASK, policy),
        n_action_steps=n_action_steps,
        seed=fresh_latent_seed(0),
    )
    env = make_task_env(TASK, policy, image_size=image_size)
    state: Any = None

    def act(obs: Any, first: bool) -> np.ndarray:
        nonlocal state
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        action, state = control.predict(batch, state, np.array([first]), deterministic=False)
        return np.asarray(action[0])

    try:
        return [run_episode(env, act, seed) for seed in seeds]
    finally:
        env.close()


def measure_expert(seeds: list[int], kind: str) -> list[Any]:
    """Episodes of the scripted expert of demonstration ``kind`` (it reads the simulator)."""
    import gymnasium as gym

    from sarm2_gym.data.generation import DEMO_KINDS
    from sarm2_gym.envs.registry import expert_for

    env = gym.make(TASK, obs_mode="state")
    expert = expert_for(TASK, "expert", dict(DEMO_KINDS[kind][1]))
    episodes = []
    for seed in seeds:

        def act(obs: Any, first: bool, seed: int = seed) -> np.ndarray:
            if first:
                expert.reset(env.unwrapped, seed=seed)
            return np.asarray(expert.act().env_action)

        episodes.append(run_episode(env, act, seed))
    env.close()
    return episodes


def expert_label(kind: str) -> str:
    """The page's name for the scripted expert of demonstration ``kind``."""
    return "scripted expert" if kind == DEFAULT_EXPERT_KIND else f"scripted expert ({kind})"


def file_stem(label: str) -> str:
    return label.replace(" ", "_").replace("/", "_")


def _cached(path: Path, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """The value stored at ``path`` under ``key``, else ``compute()``, stored there atomically."""
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key and "value" in stored:
            return stored["value"]
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"key": key, "value": value}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record)))
    return value


def cached_episodes(args: argparse.Namespace, label: str, source: str) -> list[Any]:
    """The stored episodes of ``label`` if they were measured the same way, else new ones."""
    from sarm2_gym.algos.baselines.common import eval_seeds

    seeds = eval_seeds(args.episodes)

    def measure() -> list[Any]:
        t0 = time.time()
        if source.startswith(EXPERT_SOURCE):
            episodes = measure_expert(seeds, source.removeprefix(EXPERT_SOURCE))
        else:
            episodes = measure_policy(Path(source), seeds, args.n_action_steps, args.image_size)
        print(f"{label}: {len(episodes)} episodes in {time.time() - t0:.0f} s", flush=True)
        return episodes

    key = {
        "source": source,
        "seeds": seeds,
        "n_action_steps": args.n_action_steps,
        "image_size": args.image_size,
        "version": MEASURE_VERSION,
    }
    return list(_cached(args.out / f"{file_stem(label)}.json", key, measure))


def demo_options(folder: Path) -> dict[str, str]:
    """The expert options of the demonstrations a benchmark BC run cloned (its result.json).

    A policy trained outside ``benchmarks/spiral.py`` has no result.json; it is read against
    the :data:`DEFAULT_EXPERT_KIND` expert, and says so.
    """
    from sarm2_gym.data.generation import DEMO_KINDS

    result = folder / "result.json"
    if not result.is_file():
        print(f"{folder}: no result.json, probed against the {DEFAULT_EXPERT_KIND} expert")
        return dict(DEMO_KINDS[DEFAULT_EXPERT_KIND][1])
    kind = json.loads(result.read_text()).get("extra", {}).get("demo_kind")
    if kind not in DEMO_KINDS:
        raise SystemExit(f"{result}: demonstration kind {kind!r} is not one of DEMO_KINDS")
    return dict(DEMO_KINDS[kind][1])


def expert_first_actions(env: Any, expert: Any, seed: int, steps: int) -> np.ndarray:
    """The expert's first ``steps`` actions ``(steps, 14)`` from ``env.reset(seed=seed)``."""
    env.reset(seed=seed)
    expert.reset(env.unwrapped, seed=seed)
    actions = []
    for _ in range(steps):
        step = expert.act()
        actions.append(np.asarray(step.action))
        env.step(step.env_action)
    return np.array(actions)


def ridge_r2(
    features: np.ndarray,
    target: np.ndarray,
    folds: int = 5,
    groups: np.ndarray | None = None,
    penalties: tuple[float, ...] = (0.01,),
) -> list[float]:
    """Cross-validated R^2 of a ridge regression of ``target`` (N, k) on ``features`` (N, d).

    Rows are dealt to the folds in turn, or by ``groups`` (e.g. episodes: rows of one episode
    look alike, and a read-out tested on an episode it was fitted on is credited for memory).
    The ridge penalty is ``penalty x rows``; with several ``penalties`` each fold picks its own
    by a cross-validation inside its training rows (nested), so a wide feature vector fitted on
    few episodes is not judged by a penalty too weak for it.
    """
    std = features.std(0)
    # Features that hardly vary over the resets carry nothing; scaled up, they carry noise.
    x = np.where(std > 1e-4, (features - features.mean(0)) / np.maximum(std, 1e-4), 0.0)
    ids = np.arange(len(target)) if groups is None else np.asarray(groups)
    pred = _cross_validated(x, target, ids, folds, penalties)
    resid = ((pred - target) ** 2).sum(0)
    return [float(v) for v in 1 - resid / ((target - target.mean(0)) ** 2).sum(0)]


def _cross_validated(
    x: np.ndarray, y: np.ndarray, ids: np.ndarray, folds: int, penalties: tuple[float, ...]
) -> np.ndarray:
    """Each row's prediction by a ridge fitted on the folds (``ids % folds``) it is not in.

    Raises:
        ValueError: If the rows fall in fewer than two folds (a fold with no training rows would
            be left unpredicted, and its zeros scored as predictions).
    """
    pred = np.zeros_like(y)
    fold = ids % folds
    if len(np.unique(fold)) < 2:
        raise ValueError(
            f"a cross-validated read-out needs rows in two folds or more; these {len(ids)} rows "
            f"fall in {len(np.unique(fold))} (too few groups: {len(np.unique(ids))})"
        )
    for f in range(folds):
        train = fold != f
        if train.all() or not train.any():
            continue
        penalty = penalties[0]
        if len(penalties) > 1:  # the inner folds split the training groups anew
            inner = ids[train] // folds
            penalty = min(
                penalties, key=lambda p: _squared_error(x[train], y[train], inner, folds, p)
            )
        a, mean = x[train], y[train].mean(0)  # the mean is the intercept
        w = np.linalg.solve(
            a.T @ a + penalty * len(a) * np.eye(a.shape[1]), a.T @ (y[train] - mean)
        )
        pred[~train] = x[~train] @ w + mean
    return pred


def _squared_error(
    x: np.ndarray, y: np.ndarray, ids: np.ndarray, folds: int, penalty: float
) -> float:
    """Summed squared error of the cross-validated predictions with one ``penalty``."""
    return float(((_cross_validated(x, y, ids, folds, (penalty,)) - y) ** 2).sum())


def probe_policy(folder: Path, n: int, image_size: int) -> dict[str, Any]:
    """A policy read at ``n`` resets: first chunk vs the expert's, and what its features hold.

    The chunk is the mean over :data:`PROBE_LATENTS` latents, so the latent's own spread does not
    blur the slope; the first :data:`PROBE_STEPS` actions are summed per axis (the approach to
    the eraser). Features: each camera's image features (its CNN output) and the policy's
    features (trunk readout and state), regressed linearly on the eraser's place.
    """
    import gymnasium as gym
    import torch

    from sarm2_gym.algos.baselines.common import make_task_env
    from sarm2_gym.algos.vla import TinyVLA
    from sarm2_gym.envs.registry import expert_for

    torch.set_num_threads(1)
    expert_env = gym.make(TASK, obs_mode="state")  # the expert's moves, from the same resets
    expert = expert_for(TASK, "expert", demo_options(folder))
    policy = TinyVLA.from_pretrained(folder)
    policy.eval()
    env = make_task_env(TASK, policy, image_size=image_size)
    places, expert_sums, policy_sums, cams, feats = [], [], [], [], []
    instruction = policy.instructions[0]
    for i in range(n):
        seed = PROBE_SEED_START + i
        obs, _ = env.reset(seed=seed)
        places.append(env.unwrapped.eraser_pose()[0][:2].copy())
        first = expert_first_actions(expert_env, expert, seed, PROBE_STEPS)
        expert_sums.append(first[:, AXES].sum(0))
        batch = {k: np.repeat(np.asarray(v)[None], PROBE_LATENTS, axis=0) for k, v in obs.items()}
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((PROBE_LATENTS, policy.chunk_size, policy.action_dim), generator=gen)
        with torch.no_grad():
            chunk = policy.sample_chunk(batch, instruction, noise).cpu().numpy().mean(0)
            single = {k: v[:1] for k, v in batch.items()}
            feats.append(policy.encode(single, instruction)[0].cpu().numpy())
            cams.append(policy.camera_features(single)[0].cpu().numpy())
        policy_sums.append(chunk[:PROBE_STEPS, AXES].sum(0))
    env.close()
    expert_env.close()
    place = np.array(places)
    e, p = np.array(expert_sums), np.array(policy_sums)
    cam = np.array(cams)  # (n, n_cameras, d)
    return {
        "resets": n,
        # An expert whose first actions do not depend on the eraser (approach=survey) gives none.
        "chunk_slope": [
            float(np.polyfit(e[:, k], p[:, k], 1)[0]) if e[:, k].std() > 1e-3 else float("nan")
            for k in range(2)
        ],
        "expert_std": [float(v) for v in e.std(0)],
        "camera_r2": {c: ridge_r2(cam[:, j], place) for j, c in enumerate(policy.config.cameras)},
        "feature_r2": ridge_r2(np.array(feats), place),
    }


def cached_probe(args: argparse.Namespace, label: str, source: str) -> dict[str, Any]:
    """The stored probe of ``label`` if it read the same policy as often, else a new one."""
    key = {
        "source": source,
        "resets": args.probe_resets,
        "image_size": args.image_size,
        "version": MEASURE_VERSION,
    }
    path = args.out / f"{file_stem(label)}.probe.json"
    probe = lambda: probe_policy(Path(source), args.probe_resets, args.image_size)  # noqa: E731
    return dict(_cached(path, key, probe))


def probe_table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    cams = list(rows[0][1]["camera_r2"])
    lines = [
        "| policy | first chunk: slope on the expert's, x / y | "
        + " | ".join(f"{c} image features R² x / y" for c in cams)
        + " | policy features R² x / y |",
        "|---|---|" + "---|" * len(cams) + "---|",
    ]
    for label, probe in rows:
        pair = lambda v: f"{_slope(v[0])} / {_slope(v[1])}"  # noqa: E731
        lines.append(
            f"| {label} | {pair(probe['chunk_slope'])} | "
            + " | ".join(pair(probe["camera_r2"][c]) for c in cams)
            + f" | {pair(probe['feature_r2'])} |"
        )
    return lines


# ----------------------------------------------------------------------------- summarising
def _fit(target: np.ndarray, reached: np.ndarray) -> tuple[float, float]:
    """Slope of ``reached`` on ``target`` and the mean absolute miss (NaN below 3 points)."""
    if len(target) < 3 or float(np.std(target)) == 0.0:
        return float("nan"), float("nan")
    return float(np.polyfit(target, reached, 1)[0]), float(np.abs(reached - target).mean())


def summarise(label: str, episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's numbers for one policy."""
    grasps = [e for e in episodes if e["grasp"] is not None]
    start = np.array([e["eraser_start"] for e in grasps]).reshape(-1, 2)
    tcp = np.array([e["grasp"]["tcp"][:2] for e in grasps]).reshape(-1, 2)
    clean = [(e, r) for e in episodes for r in e["releases"] if r["clean"]]
    placing = [(e["tray"], r["eraser"][:2]) for e, r in clean]
    tray = np.array([p[0] for p in placing]).reshape(-1, 2)
    let_go = np.array([p[1] for p in placing]).reshape(-1, 2)
    inside = np.all(np.abs(let_go - tray) <= IN_TRAY_SLACK_XY, axis=1)
    return {
        "label": label,
        "episodes": len(episodes),
        "success": float(np.mean([e["success"] for e in episodes])),
        "grasps": len(grasps),
        "held": float(np.mean([bool(e["grasp"].get("held")) for e in grasps])) if grasps else 0.0,
        "grasp_fit": [_fit(start[:, k], tcp[:, k]) for k in range(2)],
        "grasp_points": (start, tcp),
        "releases": len(placing),
        "release_fit": [_fit(tray[:, k], let_go[:, k]) for k in range(2)],
        "release_inside": float(inside.mean()) if len(placing) else float("nan"),
        # The env's place check where the eraser came to rest (False: grasped again before).
        "rest_in_tray": float(np.mean([r["in_tray"] for _, r in clean])) if clean else float("nan"),
        "release_points": (tray, let_go),
    }


def _cm(x: float) -> str:
    return "–" if np.isnan(x) else f"{100 * x:.1f}"


def _slope(x: float) -> str:
    return "–" if np.isnan(x) else f"{x:.2f}"


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| policy | success | first closes: holding 5 steps later | grasp slope x / y | "
        "grasp miss x / y (cm) | releases on a clean board | release slope x / y | "
        "release miss x / y (cm) | releases inside the tray | at rest in the tray |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        (gsx, gmx), (gsy, gmy) = r["grasp_fit"]
        (rsx, rmx), (rsy, rmy) = r["release_fit"]
        inside, rest = (
            "–" if np.isnan(r[k]) else f"{100 * r[k]:.0f} %"
            for k in ("release_inside", "rest_in_tray")
        )
        lines.append(
            f"| {r['label']} | {100 * r['success']:.0f} % ({r['episodes']}) | "
            f"{100 * r['held']:.0f} % of {r['grasps']} | {_slope(gsx)} / {_slope(gsy)} | "
            f"{_cm(gmx)} / {_cm(gmy)} | {r['releases']} | {_slope(rsx)} / {_slope(rsy)} | "
            f"{_cm(rmx)} / {_cm(rmy)} | {inside} | {rest} |"
        )
    return lines


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Grasp and release positions against the targets, y axis (the one the policies miss).

    Policies whose labels differ only by ``, seed N`` share a colour, so the page's variants stay
    apart however many seeds each has.
    """
    groups = list(dict.fromkeys(r["label"].split(", seed")[0] for r in rows))
    colours = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(groups)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    labelled: set[str] = set()
    for r in rows:
        group = r["label"].split(", seed")[0]
        pairs = (r["grasp_points"], r["release_points"])
        for ax, (target, reached) in zip(axes, pairs, strict=True):
            if len(target):
                ax.scatter(
                    100 * target[:, 1],
                    100 * reached[:, 1],
                    s=10,
                    alpha=0.6,
                    color=colours[group],
                    label=None if group in labelled else group,
                )
                labelled.add(group)
    titles = ("first grasp: TCP y", "release on a clean board: eraser y")
    for ax, title in zip(axes, titles, strict=True):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="follows it")
        ax.set_xlabel("eraser's start = tray centre, y (cm)")
        ax.set_ylabel(f"{title.split(': ')[1]} (cm)")
        ax.set_title(title)
    # A few releases land far off (on the board); the tray's neighbourhood is what is read.
    axes[1].set_ylim(axes[1].get_xlim()[0] - 6, axes[1].get_xlim()[1] + 6)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def render(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    probes: list[tuple[str, dict[str, Any]]],
    png: Path,
) -> str:
    tol = IN_TRAY_SLACK_XY
    parts = ["# CleanWhiteboard: where policies grasp and let go", ""]
    if args.note:
        parts += [args.note, ""]
    parts += [
        f"![grasp and release positions]({png.parent.name}/{png.name})",
        "",
        "## Setup",
        "",
        f"- Machine: {platform.machine()}, CPU. {args.episodes} held-out reset seeds "
        "(1,000,000 onwards, those `benchmarks/spiral.py` evaluates on), one env rendering "
        f"{args.image_size}-pixel frames, fresh latent noise for every chunk (as BC is "
        "evaluated there), "
        f"{args.n_action_steps or 'all 10'} actions executed per chunk.",
        "- The tray, and the eraser lying in it, are placed anew every episode within +-3 cm "
        "of their mean in x and y. First grasp: the right TCP when the policy first commands "
        "its gripper closed, against the eraser's starting place; 'holding 5 steps later' "
        "says whether that close got it. Release: the eraser's centre when it leaves the "
        "gripper with the board clean, against the tray's centre. Slope: least squares of "
        "the reached position on the target over the episodes, per axis (1 follows the "
        "target, 0 goes to the same place every episode). Miss: mean absolute difference.",
        f"- Inside the tray: within {100 * tol[0]:.1f} cm in x and {100 * tol[1]:.1f} cm in y "
        "of its centre when it leaves the gripper, the env's own tolerance. At rest in the "
        "tray: the env's whole place check (that tolerance, on the tray's base, slower than "
        f"{SETTLED_SPEED} m/s) where the released eraser comes to rest: the first step after "
        f"the release at which it moves slower than that, at most {REST_STEPS} steps on (the "
        "episode's end if sooner; not in the tray if a gripper takes it again first).",
        "",
        "## Results",
        "",
        *table(rows),
        "",
    ]
    if probes:
        parts += [
            "### What the policies read at reset",
            "",
            f"Each policy at {args.probe_resets} further resets (seeds "
            f"{PROBE_SEED_START:,} onwards), before any step. First chunk: the sum of its first "
            f"{PROBE_STEPS} x and y actions (the mean chunk over {PROBE_LATENTS} latents), "
            "regressed on the first actions of the expert its demonstrations came from, from the "
            "same reset (1: it moves as that expert would towards this episode's eraser, 0: the "
            "same way every episode; '–' where that expert's first actions are the same every "
            "episode, as with `approach=survey`). "
            "R²: cross-validated ridge regression (5 folds) of the eraser's x and y on each "
            "camera's image features (`TinyVLA.camera_features`: its CNN output), and on the "
            "features the action head reads (trunk readout "
            "and state).",
            "",
            *probe_table(probes),
            "",
        ]
    parts += [
        "## Command",
        "",
        "```bash",
        *(args.command.splitlines() or ["(not given)"]),
        f"python benchmarks/cw_precision.py --root DATA --out {shown_out(args)} --doc "
        + str(args.doc)
        + (" --expert " + " ".join(args.expert) if args.expert else "")
        + (f" --n-action-steps {args.n_action_steps}" if args.n_action_steps else "")
        + f" --episodes {args.episodes}"
        + (f" --image-size {args.image_size}" if args.image_size != 96 else "")
        + (f" --probe-resets {args.probe_resets}" if args.probe_resets else "")
        + (" --policies " + " ".join(f'"{s}"' for s in args.policies) if args.policies else "")
        + "  # this page",
        "```",
        "",
    ]
    return "\n".join(parts)


def shown_out(args: argparse.Namespace) -> str:
    """``--out`` as the page's command shows it: under ``DATA`` where it is inside ``--root``."""
    out, root = Path(args.out).resolve(), Path(args.root).resolve()
    return f"DATA/{out.relative_to(root).as_posix()}" if out.is_relative_to(root) else str(args.out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sources = [(expert_label(kind), f"{EXPERT_SOURCE}{kind}") for kind in args.expert or []]
    for spec in args.policies:
        label, sep, folder = spec.partition("=")
        if not sep or not label or not folder:
            raise SystemExit(f"--policies takes LABEL=TINYVLA_FOLDER, got {spec!r}")
        path = args.root / folder
        if not (path / "config.json").is_file():
            raise SystemExit(f"{path} holds no TinyVLA (config.json)")
        sources.append((label, str(path)))
    rows = [summarise(label, cached_episodes(args, label, src)) for label, src in sources]
    probes = []
    if args.probe_resets:
        probes = [
            (lb, cached_probe(args, lb, src))
            for lb, src in sources
            if not src.startswith(EXPERT_SOURCE)
        ]
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    png = args.doc.parent / args.doc.stem / "positions.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, png)
    text = render(args, rows, probes, png)
    atomic_write(args.doc, lambda tmp: tmp.write_text(text))  # a killed run leaves the old page
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
