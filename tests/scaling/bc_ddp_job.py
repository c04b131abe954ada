"""``torchrun`` entry point of ``test_bc_ddp.py``: behaviour-clone the tiny TinyVLA.

Usage (plain ``python`` is the single-process reference)::

    torchrun --standalone --nproc_per_node 2 tests/scaling/bc_ddp_job.py DATA OUT STEPS [RESUME_AT]

``train_bc`` itself checks at the end that the ranks hold identical weights. With ``RESUME_AT``
the job then copies the snapshot of step ``RESUME_AT`` into ``OUT-resumed`` and resumes from it
there, in the same process group (so one launch checks resuming).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sarm2_gym.algos.common.io import atomic_write_json
from sarm2_gym.algos.vla import BCConfig, train_bc
from sarm2_gym.common.distributed import barrier, distributed_session
from tests.algos.helpers import FakeText, register_reach, tiny_vla_config

BATCH, SAVE_EVERY = 16, 5


def _train(data: Path, out: Path, steps: int) -> None:
    config = BCConfig(
        data=(str(data),),
        out=str(out),
        steps=steps,
        batch_size=BATCH,
        warmup_steps=3,
        save_every=SAVE_EVERY,
        log_every=1,
        random_shift=2,
        model=tiny_vla_config(),
    )
    resume = (out / "train_state").exists()
    train_bc(config, resume=resume, text_encoder=FakeText(), progress_bar=False)


def main(argv: list[str]) -> None:
    data, out, steps = Path(argv[0]), Path(argv[1]), int(argv[2])
    resume_at = int(argv[3]) if len(argv) > 3 else None
    torch.set_num_threads(1)
    register_reach()
    with distributed_session() as dist:
        _train(data, out, steps)
        if resume_at is None:
            return
        resumed = out.with_name(out.name + "-resumed")
        if dist.is_main:
            name = f"step_{resume_at:08d}"
            (resumed / "train_state").mkdir(parents=True)
            shutil.copytree(out / "train_state" / name, resumed / "train_state" / name)
            atomic_write_json(resumed / "train_state" / "latest.json", {"latest": name})
        barrier(dist)
        _train(data, resumed, steps)


if __name__ == "__main__":
    main(sys.argv[1:])
