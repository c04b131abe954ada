from __future__ import annotations

from collections import Counter
from pathlib import Path

from sarm2_gym.data import LeRobotDataset
from sarm2_gym.data.generation import SPLIT_SEED_BASE, BenchmarkSizes, make_benchmark

ENV = "SARM2-CleanWhiteboard-v0"


def test_make_benchmark_fills_every_split_and_outcome_quota(tmp_path: Path) -> None:
    sizes = BenchmarkSizes(train=2, heldout_demos=1, rollouts_per_outcome=1)
    paths = make_benchmark(tmp_path, tasks=[ENV], sizes=sizes, num_workers=1, progress=False)
    train, demos, rollouts = (
        LeRobotDataset(paths[s]) for s in ("train", "heldout_demos", "heldout_rollouts")
    )
    assert train.num_episodes == 2 and demos.num_episodes == 1
    assert Counter(m["meta"]["outcome"] for m in rollouts.episodes_meta) == {
        "success": 1,
        "partial": 1,
        "failed": 1,
    }
    # Splits never share a scene.
    seeds = {
        s: {m["seed"] for m in ds.episodes_meta}
        for s, ds in zip(paths, (train, demos, rollouts), strict=True)
    }
    assert all(min(v) >= SPLIT_SEED_BASE[s] for s, v in seeds.items())
    assert not (seeds["train"] & seeds["heldout_demos"]) and not (
        seeds["train"] & seeds["heldout_rollouts"]
    )
    assert demos.episodes_meta[0]["quality"] == "expert" and demos.episodes_meta[0]["success"]
    for m in rollouts.episodes_meta:
        final = m["meta"]["final_progress"]
        assert {"success": final == 1.0, "partial": 0.25 <= final < 1.0, "failed": final < 0.25}[
            m["meta"]["outcome"]
        ]

    # A rerun finds everything done and adds nothing; asking for more appends.
    make_benchmark(tmp_path, tasks=[ENV], sizes=sizes, num_workers=1, progress=False)
    assert LeRobotDataset(paths["train"]).num_episodes == 2
    make_benchmark(
        tmp_path, tasks=[ENV], sizes=BenchmarkSizes(3, 1, 1), num_workers=1, progress=False
    )
    assert LeRobotDataset(paths["train"]).num_episodes == 3
