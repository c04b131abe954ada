"""``torchrun`` entry point of ``test_ddp.py``: train the tiny frozen-feature SARM2.

Usage (plain ``python`` is the single-process reference)::

    torchrun --standalone --nproc_per_node 2 tests/scaling/ddp_job.py DATA OUT CACHE STEPS BATCH
        [RESUME_AT]

With ``RESUME_AT`` the job then copies the checkpoint of step ``RESUME_AT`` into ``OUT-resumed``
and resumes from it there, in the same process group (so one launch checks resuming).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reward"))

from reward_helpers import FakeFrozenEncoder, FakeTextEncoder, frozen_config

from sarm2_gym.common.distributed import barrier, distributed_session
from sarm2_gym.reward.trainer import TrainOptions, train_reward_model


def _train(data: Path, out: Path, cache: str, steps: int, batch: int) -> None:
    train_reward_model(
        [data],
        out,
        frozen_config(),
        options=TrainOptions(
            steps=steps,
            batch_size=batch,
            cache_dir=cache,
            progress=False,
            log_every=1,
            val_every=6,
            checkpoint_every=6,
        ),
        resume=(out / "train").exists(),
        image_encoder=FakeFrozenEncoder(),
        text_encoder=FakeTextEncoder(8),
    )


def main(argv: list[str]) -> None:
    data, out, cache = Path(argv[0]), Path(argv[1]), argv[2]
    steps, batch = int(argv[3]), int(argv[4])
    resume_at = int(argv[5]) if len(argv) > 5 else None
    torch.set_num_threads(1)
    with distributed_session() as dist:
        _train(data, out, cache, steps, batch)
        if resume_at is None:
            return
        resumed = out.with_name(out.name + "-resumed")
        if dist.is_main:
            name = f"step_{resume_at:08d}"
            ckpts = resumed / "train" / "checkpoints"
            ckpts.mkdir(parents=True)
            shutil.copytree(out / "train" / "checkpoints" / name, ckpts / name)
            (ckpts / "latest").write_text(name + "\n")
        barrier(dist)
        _train(data, resumed, cache, steps, batch)


if __name__ == "__main__":
    main(sys.argv[1:])
