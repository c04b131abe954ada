from __future__ import annotations

import numpy as np
import pytest
import torch
from reward_helpers import (
    INSTRUCTIONS,
    FakeFrozenEncoder,
    frozen_config,
    synthetic_episode,
    write_synthetic_dataset,
)

from sarm2_gym.reward.batch import RewardBatch, build_sample
from sarm2_gym.reward.frames import load_frame_table, missing_labels
from sarm2_gym.reward.sampling import (
    BatchSampler,
    assemble_batch,
    frame_targets,
    split_episodes,
    task_ids_of,
)


def test_vectorised_batches_equal_build_sample_and_collate(tmp_path) -> None:
    cfg = frozen_config()
    root = write_synthetic_dataset(tmp_path / "ds", episodes=4)
    table = load_frame_table(
        [root], cfg, cache_dir=tmp_path / "c", image_encoder=FakeFrozenEncoder(), progress=False
    )
    assert table.frames["top"].dtype == np.float16  # cached as float16, kept so in memory
    targets = frame_targets(table, "progress")
    tids = task_ids_of(table, cfg)
    eps, frames, rewinds = np.array([0, 1, 3, 2]), np.array([0, 5, 23, 20]), np.array([0, 0, 2, 1])
    tb = assemble_batch(table, cfg, targets, tids, eps, frames, rewinds)
    samples = []
    for e, f, r in zip(eps, frames, rewinds, strict=True):
        sl = table.episodes[e].rows
        samples.append(
            build_sample(
                {c: table.frames[c][sl] for c in cfg.camera_names},
                table.state[sl],
                int(f),
                config=cfg,
                task_id=int(tids[e]),
                steps_to_go=targets[sl],
                act_pri=table.act_pri[sl],
                rewind_steps=int(r),
            )
        )
    ref = RewardBatch.collate(samples)
    for name in ("state", "lengths", "task_ids", "primitive_targets", "steps_to_go"):
        assert torch.equal(getattr(tb.batch, name), getattr(ref, name)), name
    for c in cfg.camera_names:
        assert torch.equal(tb.batch.features[c], ref.features[c])
    assert tb.valid.sum() == int(ref.lengths.sum())


def test_sampler_is_reproducible_from_its_state(tmp_path) -> None:
    cfg = frozen_config()
    root = write_synthetic_dataset(tmp_path / "ds", episodes=6)
    table = load_frame_table(
        [root], cfg, cache_dir=tmp_path / "c", image_encoder=FakeFrozenEncoder(), progress=False
    )
    train, val = split_episodes(table, 0.2, seed=0)
    assert sorted(train + val) == list(range(6)) and len(val) == 2  # one per task
    sampler = BatchSampler(table, train, cfg, frame_targets(table, "linear"), seed=3)
    sampler.sample(4)
    state = sampler.state_dict()
    a = sampler.sample(8)
    sampler.load_state_dict(state)
    b = sampler.sample(8)
    assert torch.equal(a.batch.steps_to_go, b.batch.steps_to_go)
    assert set(a.episodes.tolist()) <= set(train)


def test_a_real_robots_placeholder_progress_is_no_target(tmp_path) -> None:
    """Episodes recorded on a real robot carry zeros in ``progress`` and say so in their
    metadata; training on privileged progress must refuse them, not regress onto zeros."""
    from sarm2_gym.data import LeRobotDatasetWriter

    real = synthetic_episode(20, seed=1, task=INSTRUCTIONS[0])
    real.meta["privileged_progress"] = False
    with LeRobotDatasetWriter(tmp_path / "real", fps=10) as writer:
        writer.add_episode(real, task_index=0)
    sim = write_synthetic_dataset(tmp_path / "sim", episodes=2)
    assert missing_labels([sim, tmp_path / "real"]) == {"progress": (str(tmp_path / "real"),)}
    table = load_frame_table(
        [tmp_path / "real"], frozen_config(), cache_dir=tmp_path / "c",
        image_encoder=FakeFrozenEncoder(), progress=False,
    )  # fmt: skip
    assert np.isnan(table.progress).all()
    with pytest.raises(
        ValueError, match=r"no progress column \(or only the zeros.*--target linear"
    ):
        frame_targets(table, "progress")
