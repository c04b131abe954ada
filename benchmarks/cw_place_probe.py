r"""Does a CleanWhiteboard policy see where the tray is when it plans the put-down?

Rolls each TinyVLA out on the held-out seeds (fresh latents per chunk, as BC is evaluated) and,
every time it plans a chunk, keeps what it reads (each camera's image features, its own features)
next to where the tray, the eraser and the gripper are. Two moments are compared: planning the
way to the first grasp (the eraser's offset from the gripper is what the chunk must cover) and
planning while carrying the eraser over a clean board (the tray's offset, and the tray's place
alone). A linear read-out of those targets from the features, cross-validated across episodes,
says how well each view locates the target at the moment the chunk is planned; where the
put-downs landed says how well the policy places.

    python benchmarks/cw_place_probe.py --root DATA --out DATA/place_probe \\
        --policies "survey s0=CleanWhiteboard/bc/seed0"
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from cw_precision import file_stem, ridge_r2, shown_out

from sarm2_gym.common.files import atomic_write
from sarm2_gym.data.episode import CAMERA_NAMES

TASK = "SARM2-CleanWhiteboard-v0"
ARM = "right"
FOLDS = 5
PENALTIES = (
    0.01,
    0.1,
    1.0,
    10.0,
)  # ridge penalties (x rows) the nested cross-validation picks from
# What is read out, at which planning steps: name -> description.
PHASES = ("approach", "carry", "carry, tray")
PHASE_TEXT = {
    "approach": "planning the way to the first grasp; target: eraser - gripper",
    "carry": "carrying the eraser over a clean board; target: tray - gripper",
    "carry, tray": "the same planning steps; target: where the tray is, whatever the gripper",
}
POLICY_VIEW = "policy features"
VIEWS = (*CAMERA_NAMES, POLICY_VIEW)
PHASE_TARGET = {"approach": "eraser - gripper", "carry": "tray - gripper", "carry, tray": "tray"}
# Part of every cache key: raise it when what a rollout records changes.
PROBE_VERSION = 1  # the analysis is not cached: only the rollouts' records are


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--policies", nargs="+", required=True, help="LABEL=TINYVLA_FOLDER pairs, in page order."
    )
    p.add_argument("--episodes", type=int, default=50, help="Held-out seeds per policy.")
    p.add_argument(
        "--root", type=Path, default=Path("."), help="Folder the TINYVLA_FOLDERs are relative to."
    )
    p.add_argument("--out", type=Path, required=True, help="Folder of the per-policy records.")
    p.add_argument("--doc", type=Path, default=Path("docs/results/cw_place_probe.md"))
    p.add_argument("--command", default="", help="Command lines quoted in the page.")
    p.add_argument("--note", default="", help="Paragraph printed under the page's title.")
    args = p.parse_args(argv)
    for pair in args.policies:
        if "=" not in pair:
            p.error(f"--policies takes LABEL=TINYVLA_FOLDER, got {pair!r}")
    return args


# ----------------------------------------------------------------------------- recording
# What record_policy keeps at every planning step, one array each.
ROW_KEYS = (
    "camera_features",
    "policy_features",
    "episode",
    "grasped_before",
    "held",
    "clean",
    "tcp",
    "eraser",
    "tray",
    "release_error",
)


def record_policy(folder: Path, seeds: list[int]) -> dict[str, np.ndarray]:
    """Every planning step of the policy's episodes: what it read and where things were."""
    import torch

    from sarm2_gym.algos.baselines.common import fresh_latent_seed, make_task_env, task_instruction
    from sarm2_gym.algos.vla import TinyVLA, VLAController

    torch.set_num_threads(1)
    policy = TinyVLA.from_pretrained(folder)
    env = make_task_env(TASK, policy)  # at the side of the frames it was cloned from
    task = env.unwrapped
    rows: dict[str, list[Any]] = {k: [] for k in ROW_KEYS}
    episode = {"index": 0, "grasped": False}

    class Recording(VLAController):
        """Keeps what the policy reads each time it plans a chunk."""

        def plan(self, observation: Any, deterministic: bool) -> np.ndarray:
            with torch.no_grad():
                cams = policy.camera_features(observation)[0].cpu().numpy()
                feats = policy.encode(observation, self.instruction)[0].cpu().numpy()
            rows["camera_features"].append(cams)
            rows["policy_features"].append(feats)
            rows["episode"].append(episode["index"])
            rows["grasped_before"].append(episode["grasped"])
            rows["held"].append(task.eraser_held())
            rows["clean"].append(len(task.remaining_ink()) == 0)
            rows["tcp"].append(task.robot.tcp_pos(task.data, ARM)[:2].copy())
            rows["eraser"].append(task.eraser_pose()[0][:2].copy())
            rows["tray"].append(task.tray_center()[:2].copy())
            rows["release_error"].append(np.full(2, np.nan))  # filled in by the chunk's release
            return super().plan(observation, deterministic)

    control = Recording(policy, task_instruction(TASK, policy), seed=fresh_latent_seed(0))
    successes = []
    try:
        for i, seed in enumerate(seeds):
            episode.update(index=i, grasped=False)
            obs, info = env.reset(seed=seed)
            state: Any = None
            done, first = False, True
            while not done:
                batch = {k: np.asarray(v)[None] for k, v in obs.items()}
                action, state = control.predict(batch, state, np.array([first]))
                first = False
                held = task.eraser_held()
                obs, _, terminated, truncated, info = env.step(action[0])
                episode["grasped"] = episode["grasped"] or task.eraser_held()
                if held and not task.eraser_held() and rows["clean"][-1]:
                    # the put-down: released by the chunk planned last, over a clean board
                    pos = task.eraser_pose()[0][:2]
                    if np.isnan(rows["release_error"][-1]).all():
                        rows["release_error"][-1] = pos - task.tray_center()[:2]
                done = terminated or truncated
            successes.append(bool(info.get("is_success", False)))
    finally:
        env.close()
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["success"] = np.asarray(successes)
    out["cameras"] = np.asarray(policy.config.cameras)
    return out


def cached_record(args: argparse.Namespace, label: str, folder: Path) -> dict[str, np.ndarray]:
    """The stored record of ``label`` if it read the same policy the same way, else a new one."""
    from sarm2_gym.algos.baselines.common import eval_seeds

    key = {"source": str(folder), "episodes": args.episodes, "version": PROBE_VERSION}
    stem = file_stem(label)
    key_path, data_path = args.out / f"{stem}.key.json", args.out / f"{stem}.npz"
    if key_path.is_file() and data_path.is_file() and json.loads(key_path.read_text()) == key:
        with np.load(data_path) as data:
            return {k: data[k] for k in data.files}
    t0 = time.time()
    record = record_policy(folder, eval_seeds(args.episodes))
    print(f"{label}: {args.episodes} episodes in {time.time() - t0:.0f} s", flush=True)

    def write_arrays(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a path
            np.savez(f, **record)

    atomic_write(data_path, write_arrays)
    atomic_write(key_path, lambda tmp: tmp.write_text(json.dumps(key)))  # last: marks it whole
    return record


# ----------------------------------------------------------------------------- analysis
def phase_rows(record: dict[str, np.ndarray], phase: str) -> tuple[np.ndarray, np.ndarray]:
    """Planning steps of ``phase`` and its target at each (metres, x / y)."""
    if phase == "approach":
        rows = ~record["grasped_before"] & ~record["held"]
        return rows, (record["eraser"] - record["tcp"])[rows]
    rows = record["held"] & record["clean"]
    target = record["tray"] if phase == "carry, tray" else record["tray"] - record["tcp"]
    return rows, target[rows]


def analyse(record: dict[str, np.ndarray]) -> dict[str, Any]:
    """Read-out R^2 per phase and view, the targets' spread, and where put-downs landed."""
    cameras = [str(c) for c in record["cameras"]]
    result: dict[str, Any] = {"success": float(record["success"].mean()), "phases": {}}
    for phase in PHASES:
        rows, target = phase_rows(record, phase)
        groups = record["episode"][rows]
        views = {c: record["camera_features"][rows][:, j] for j, c in enumerate(cameras)}
        views[POLICY_VIEW] = record["policy_features"][rows]
        episodes = len(set(groups.tolist()))
        result["phases"][phase] = {
            "plans": int(rows.sum()),
            "episodes": episodes,
            "target_std_cm": [float(v) * 100 for v in target.std(0)] if len(target) else [],
            # cross-validation by episode needs an episode in every fold
            "r2": {v: ridge_r2(x, target, FOLDS, groups, PENALTIES) for v, x in views.items()}
            if episodes >= FOLDS
            else {},
        }
    put_down = ~np.isnan(record["release_error"]).any(1)
    errors, trays = record["release_error"][put_down], record["tray"][put_down]
    result["put_downs"] = len(errors)
    # 1: the put-down follows the tray; 0: it lands at the same place whatever the tray
    result["put_down_slope"] = (
        [float(np.polyfit(trays[:, k], trays[:, k] + errors[:, k], 1)[0]) for k in range(2)]
        if len(errors) > 2
        else []
    )
    result["release_error_cm"] = (
        [float(v) * 100 for v in np.abs(errors).mean(0)] if len(errors) else []
    )
    _, first_plan = np.unique(record["episode"], return_index=True)
    tray = record["tray"][first_plan]  # one per reset
    result["tray_std_cm"] = [float(v) * 100 for v in tray.std(0)]
    result["clean_failures"] = clean_board_failures(record, put_down)
    return result


def clean_board_failures(record: dict[str, np.ndarray], put_down: np.ndarray) -> dict[str, int]:
    """Failed episodes whose board was clean at a planning step, by what became of the eraser.

    ``put_down``: it left the gripper over a clean board (and did not end in the tray);
    ``kept``: it never did, and was still held when the policy last planned.
    """
    counts = {"put_down": 0, "kept": 0, "other": 0}
    for i, success in enumerate(record["success"]):
        rows = record["episode"] == i
        if success or not record["clean"][rows].any():
            continue
        if put_down[rows].any():
            counts["put_down"] += 1
        elif record["held"][rows][-1]:
            counts["kept"] += 1
        else:  # e.g. let go in the chunk that cleaned the board (planned over ink left)
            counts["other"] += 1
    return counts


# ----------------------------------------------------------------------------- report
def plot(results: list[tuple[str, dict[str, Any]]], path: Path) -> None:
    views = VIEWS
    fig, axes = plt.subplots(1, len(PHASES), figsize=(14, 3.8), sharey=True)
    width = 0.8 / max(len(results), 1)
    for ax, phase in zip(axes, PHASES, strict=True):
        for i, (label, res) in enumerate(results):
            r2 = res["phases"][phase]["r2"]
            xs = np.arange(len(views)) + i * width
            ax.bar(xs, [np.mean(r2[v]) if v in r2 else np.nan for v in views], width, label=label)
        ax.set_xticks(np.arange(len(views)) + width * (len(results) - 1) / 2, views, fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{phase}: {PHASE_TARGET[phase]}", fontsize=9)
        ax.set_ylim(-0.4, 1.0)
    axes[0].set_ylabel("cross-validated R², mean of x and y")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pair(values: list[float], digits: int = 2) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values) if values else "–"


def render(args: argparse.Namespace, results: list[tuple[str, dict[str, Any]]]) -> str:
    stem = args.doc.with_suffix("")
    plot_path = stem / "readout_r2.png"
    plot(results, plot_path)
    views = VIEWS
    parts = [
        "# CleanWhiteboard: what the policy reads when it plans the put-down",
        "",
        *([args.note, ""] if args.note else []),
        f"![read-out R² per view]({stem.name}/{plot_path.name})",
        "",
        "## Setup",
        "",
        f"- Machine: {platform.machine()}, one torch thread. Task {TASK}, {args.episodes} held-out "
        "seeds per policy, fresh latent noise for every chunk (as BC is evaluated), the env "
        "rendered at the side of the frames the policy was cloned from.",
        "- Every time the policy plans a chunk, each camera's image features (what the trunk "
        "reads of it) and the policy's own features (what its flow head reads: the trunk's "
        "read-out, the image features of any cameras the head reads directly, and the state) "
        "are kept with the simulator's eraser, tray and right-gripper positions. Three "
        "read-outs: "
        + "; ".join(f"**{p}**: {PHASE_TEXT[p]}" for p in PHASES)
        + ". R²: a ridge read-out (standardised features, as cw_precision.py's probe) of the "
        f"target's x and y, {FOLDS}-fold cross-validated with whole episodes held out, the "
        f"penalty picked among {', '.join(f'{p:g}' for p in PENALTIES)} x rows by a "
        "cross-validation inside each fold's training episodes; 1 locates the target "
        "exactly, 0 no better than its mean. The tray's place varies between episodes only, "
        "so its read-out rests on as many independent places as there are episodes.",
        "- Put-down: where the eraser was when it left the gripper over a clean board (the "
        "first such release of a chunk). Error: its mean absolute distance from the tray's "
        "centre, x / y. Slope: of its place on the tray's place over the episodes (1: it "
        "follows the tray; 0: it lands at one place whatever the tray; the tray is placed "
        "uniformly within 3 cm of its mean in x and y, so ignoring it costs 1.5 cm per axis "
        "on average). Failed with a clean board: the failed episodes whose board was clean "
        "when the policy planned a chunk, by what became of the eraser: put down over the "
        "clean board (outside the tray, or it did not stay there), kept (still held when the "
        "policy last planned: the episode ran out of time carrying it) or other (neither, e.g. "
        "let go in the chunk that cleaned the board).",
        "",
        "## Results",
        "",
        "| policy | success | phase | plans (episodes) | target spread x / y (cm) | "
        + " | ".join(f"{v} R² x / y" for v in views)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(views),
    ]
    for label, res in results:
        for phase in PHASES:
            ph = res["phases"][phase]
            parts.append(
                f"| {label} | {res['success'] * 100:.0f} % | {phase} | {ph['plans']} "
                f"({ph['episodes']}) | {_pair(ph['target_std_cm'], 1)} | "
                + " | ".join(_pair(ph["r2"].get(v, [])) for v in views)
                + " |"
            )
    parts += [
        "",
        "| policy | tray spread over resets x / y (cm) | put-downs | put-down error x / y (cm) "
        "| put-down slope on the tray x / y | failed with a clean board: put down / kept "
        "/ other |",
        "|---|---|---|---|---|---|",
    ]
    for label, res in results:
        fails = res["clean_failures"]
        parts.append(
            f"| {label} | {_pair(res['tray_std_cm'], 1)} | {res['put_downs']} | "
            f"{_pair(res['release_error_cm'], 1)} | {_pair(res['put_down_slope'])} | "
            f"{fails['put_down']} / {fails['kept']} / {fails['other']} |"
        )
    parts += [
        "",
        "## Command",
        "",
        "```bash",
        *(args.command.splitlines() or ["(not given)"]),
        f"python benchmarks/cw_place_probe.py --root DATA --out {shown_out(args)} --doc "
        + str(args.doc)
        + f" --episodes {args.episodes} --policies "
        + " ".join(f'"{s}"' for s in args.policies)
        + "  # this page",
        "```",
        "",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = []
    for pair in args.policies:
        label, folder = pair.split("=", 1)
        record = cached_record(args, label, args.root / folder)
        results.append((label, analyse(record)))
    text = render(args, results)
    atomic_write(args.doc, lambda tmp: tmp.write_text(text))
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
