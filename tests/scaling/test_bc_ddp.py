"""A 2-process DDP behaviour-cloning job (``torchrun``, gloo on CPU) trains like one process.

The ranks draw the same global batch and each trains on its half, but each has its own stream of
flow-matching noise and image shifts, so the per-step losses of a 2-rank run and a 1-process run
differ by sampling noise, not by rounding. We require the mean loss over the run within 10 %
(relative) of the single-process one, both to fall well below the first step's, the ranks to end
with identical weights (``train_bc`` checks this itself), rank 0 to write alone, and a resumed
2-rank run to end with exactly the weights of the uninterrupted one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sarm2_gym.algos.vla import TinyVLA
from tests.algos.helpers import record_demos, register_reach

pytestmark = pytest.mark.slow

JOB = Path(__file__).with_name("bc_ddp_job.py")
STEPS, RESUME_AT = 40, 35  # snapshots every 5 steps; the newest two are kept


def _losses(run: Path) -> np.ndarray:
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return np.array([e.value for e in acc.Scalars("train/loss")])


def _run(args: list[str], nproc: int) -> None:
    if nproc == 1:  # the single-process reference runs here (torch uses 1 thread in tests)
        spec = importlib.util.spec_from_file_location("bc_ddp_job", JOB)
        assert spec is not None and spec.loader is not None
        job = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(job)
        job.main(args)
        return
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd = [sys.executable, *launcher, str(JOB), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_bc_ddp_matches_single_process_and_resumes(tmp_path: Path) -> None:
    register_reach()
    data = record_demos(tmp_path / "demos", 6)
    _run([str(data), str(tmp_path / "single"), str(STEPS)], nproc=1)
    _run([str(data), str(tmp_path / "ddp"), str(STEPS), str(RESUME_AT)], nproc=2)

    single, ddp = _losses(tmp_path / "single"), _losses(tmp_path / "ddp")
    assert len(single) == len(ddp) == STEPS
    assert ddp[0] == pytest.approx(single[0], rel=0.25)  # same weights, other noise
    assert ddp.mean() == pytest.approx(single.mean(), rel=0.10)
    assert ddp[-5:].mean() < 0.7 * ddp[0] and single[-5:].mean() < 0.7 * single[0]
    summary = json.loads((tmp_path / "ddp" / "bc_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == STEPS
    assert len(list((tmp_path / "ddp" / "tb").iterdir())) == 1  # rank 0 writes alone

    # The resumed run ends with exactly the weights of the uninterrupted one.
    a = TinyVLA.from_pretrained(tmp_path / "ddp").state_dict()
    b = TinyVLA.from_pretrained(tmp_path / "ddp-resumed").state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
