"""The data-parallel helpers without a process group: shards, weights, sampler parts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reward"))

from reward_helpers import FakeFrozenEncoder, frozen_config, write_synthetic_dataset

from sarm2_gym.common.distributed import (
    DistInfo,
    all_reduce_mean,
    distributed_session,
    shard,
    shard_weight,
    unwrap,
    wrap_ddp,
)
from sarm2_gym.reward.frames import load_frame_table
from sarm2_gym.reward.sampling import BatchSampler, frame_targets


@pytest.mark.parametrize(("total", "world"), [(8, 2), (7, 2), (5, 3), (3, 3), (64, 5)])
def test_shards_partition_the_batch(total: int, world: int) -> None:
    parts = [shard(total, DistInfo(rank=r, world_size=world)) for r in range(world)]
    covered = [i for p in parts for i in range(total)[p]]
    assert covered == list(range(total))
    sizes = [len(range(total)[p]) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    weights = [
        shard_weight(p, total, DistInfo(rank=r, world_size=world)) for r, p in enumerate(parts)
    ]
    assert sum(weights) == pytest.approx(world)  # DDP divides by world: sum n_r L_r / total


def test_single_process_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed_session() as dist:
        assert dist == DistInfo() and dist.is_main and not dist.enabled
        model = torch.nn.Linear(2, 2)
        assert wrap_ddp(model, dist) is model and unwrap(model) is model
        assert all_reduce_mean({"a": 1.5}, dist) == {"a": 1.5}
        assert shard(5, dist) == slice(0, 5)


def test_sampler_parts_make_up_the_single_process_batch(tmp_path: Path) -> None:
    data = write_synthetic_dataset(tmp_path / "data")
    config = frozen_config()
    table = load_frame_table(
        [data],
        config,
        cache_dir=tmp_path / "cache",
        image_encoder=FakeFrozenEncoder(),
        progress=False,
    )
    targets = frame_targets(table, "progress")
    ids = list(range(table.num_episodes))
    whole = BatchSampler(table, ids, config, targets, seed=5)
    ranks = [BatchSampler(table, ids, config, targets, seed=5) for _ in range(2)]
    for _ in range(3):  # the ranks stay in step with the single process
        full = whole.sample(9)
        parts = [s.sample(9, shard(9, DistInfo(rank=r, world_size=2))) for r, s in enumerate(ranks)]
        np.testing.assert_array_equal(np.concatenate([p.rows for p in parts]), full.rows)
        np.testing.assert_array_equal(np.concatenate([p.episodes for p in parts]), full.episodes)
        np.testing.assert_array_equal(np.concatenate([p.frames for p in parts]), full.frames)
        np.testing.assert_array_equal(
            torch.cat([p.batch.state for p in parts]).numpy(), full.batch.state.numpy()
        )
