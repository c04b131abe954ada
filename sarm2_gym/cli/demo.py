"""The demo job: expert demonstrations of a task, a video and a labelled progress plot each."""

from __future__ import annotations

from pathlib import Path

from sarm2_gym.common.plots import plot_progress
from sarm2_gym.common.video import compose_frame, write_video
from sarm2_gym.data.episode import image_key
from sarm2_gym.data.generation import collect, resolve_tasks
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.envs.core.task_env import CAMERAS

__all__ = ["run_demo"]


def run_demo(task: str, *, episodes: int, out: str | Path, seed: int = 0) -> Path:
    """Collect ``episodes`` expert episodes of ``task`` into ``out/dataset`` and visualise them.

    Returns:
        The folder with ``episode_<i>.mp4`` and ``episode_<i>_progress.png`` per episode and a
        ``summary.md``.
    """
    out = Path(out)
    env_id = resolve_tasks(task)[0]
    root = collect([env_id], episodes, out / "dataset", quality="expert", seed=seed)
    ds = LeRobotDataset(root)
    lines = [
        f"# {env_id}: {ds.num_episodes} expert episodes",
        "",
        "| episode | frames | success | video | plot |",
        "|---|---|---|---|---|",
    ]
    for i in range(ds.num_episodes):
        ep = ds.episode(i)
        frames = [
            compose_frame(
                [ep.frames[image_key(c)][t] for c in CAMERAS],
                progress=[float(ep.frames["progress"][t])],
                primitives=[int(ep.frames["act_pri"][t])],
            )
            for t in range(ep.length)
        ]
        video = write_video(frames, out / f"episode_{i}.mp4", fps=ep.fps)
        plot = plot_progress(
            {"privileged progress": ep.frames["progress"]},
            ep.frames["act_pri"],
            out / f"episode_{i}_progress.png",
            title=f"{ep.task} (seed {ep.meta.get('seed')}, success={ep.success})",
            fps=ep.fps,
        )
        lines.append(f"| {i} | {ep.length} | {ep.success} | {video.name} | {plot.name} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return out
