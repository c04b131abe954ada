from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sarm2_gym.algos.common.io import CheckpointError
from sarm2_gym.algos.vla import BCConfig, TinyVLA, train_bc
from sarm2_gym.algos.vla.bc import learning_rate

from .helpers import FakeText, tiny_bc_config


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return TinyVLA.from_pretrained(out).state_dict()


def test_bc_writes_a_loadable_checkpoint_and_tensorboard(tmp_path: Path, reach_demos: Path) -> None:
    out = train_bc(
        tiny_bc_config(reach_demos, tmp_path / "bc"), text_encoder=FakeText(), progress_bar=False
    )
    policy = TinyVLA.from_pretrained(out)
    assert policy.instructions == ("reach the red dot",)
    summary = json.loads((out / "bc_summary.json").read_text())
    assert summary["steps"] == 12 and summary["episodes"] == 6
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6, 8, 10, 12]
    with pytest.raises(CheckpointError, match="already holds a BC run"):
        train_bc(
            tiny_bc_config(reach_demos, tmp_path / "bc"),
            text_encoder=FakeText(),
            progress_bar=False,
        )


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])  # the weights' moving average resumes too
def test_bc_resume_equals_an_uninterrupted_run(
    tmp_path: Path, reach_demos: Path, ema_decay: float
) -> None:
    straight = train_bc(
        tiny_bc_config(reach_demos, tmp_path / "a", ema_decay=ema_decay),
        text_encoder=FakeText(),
        progress_bar=False,
    )

    def kill(step: int, metrics: dict[str, float]) -> None:
        if step == 8:  # between the snapshots at 5 and 10
            raise KeyboardInterrupt

    cfg = tiny_bc_config(reach_demos, tmp_path / "b", ema_decay=ema_decay)
    with pytest.raises(KeyboardInterrupt):
        train_bc(cfg, text_encoder=FakeText(), callback=kill, progress_bar=False)
    assert json.loads((tmp_path / "b" / "train_state" / "latest.json").read_text()) == {
        "latest": "step_00000005"
    }
    # TensorBoard reads a run's event files in name order: time (s), host, pid, then a per-process
    # counter that is not zero-padded. In one test process within one second, writer 10 would
    # sort before writer 9, so the resumed run starts its file in the next second.
    time.sleep(1.0 - time.time() % 1.0)
    resumed = train_bc(cfg, resume=True, progress_bar=False)  # no text encoder needed to resume
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    acc = EventAccumulator(str(tmp_path / "b" / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6, 8, 10, 12]  # no duplicates


def test_resume_refuses_a_different_run(tmp_path: Path, reach_demos: Path) -> None:
    train_bc(
        tiny_bc_config(reach_demos, tmp_path / "bc", steps=5),
        text_encoder=FakeText(),
        progress_bar=False,
    )
    with pytest.raises(CheckpointError, match="batch_size"):
        train_bc(
            tiny_bc_config(reach_demos, tmp_path / "bc", steps=10, batch_size=4),
            resume=True,
            progress_bar=False,
        )
    # more steps with everything else equal is a valid continuation
    train_bc(tiny_bc_config(reach_demos, tmp_path / "bc", steps=7), resume=True, progress_bar=False)
    assert json.loads((tmp_path / "bc" / "bc_summary.json").read_text())["steps"] == 7


def test_rabc_training_uses_progress_weights(tmp_path: Path, reach_demos: Path) -> None:
    seen: list[float] = []
    cfg = tiny_bc_config(reach_demos, tmp_path / "rabc", rabc="privileged", steps=4)
    train_bc(
        cfg,
        text_encoder=FakeText(),
        callback=lambda s, m: seen.append(m["rabc_weight_mean"]),
        progress_bar=False,
    )
    assert len(seen) == 4 and all(0.0 <= w <= 1.0 for w in seen)
    with pytest.raises(ValueError, match="--rabc must be"):
        train_bc(
            tiny_bc_config(reach_demos, tmp_path / "x", rabc="nonsense"),
            text_encoder=FakeText(),
            progress_bar=False,
        )


def test_learning_rate_schedule(tmp_path: Path) -> None:
    cfg = BCConfig(
        data=("d",), out=str(tmp_path), steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1
    )
    assert learning_rate(0, cfg) == pytest.approx(0.1)
    assert learning_rate(9, cfg) == pytest.approx(1.0)
    assert learning_rate(10, cfg) == pytest.approx(1.0)
    assert learning_rate(100, cfg) == pytest.approx(0.1)


def test_bc_device_is_checked_before_any_work(tmp_path: Path, reach_demos: Path) -> None:
    with pytest.raises(ValueError, match="not a torch device"):
        tiny_bc_config(reach_demos, tmp_path / "x", device="gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            train_bc(
                tiny_bc_config(reach_demos, tmp_path / "cuda", device="cuda"), progress_bar=False
            )
        assert not (tmp_path / "cuda").exists(), "nothing is written for a run that cannot start"
    # The device is not part of what a resumed run must share: a run may move between devices.
    assert "device" not in tiny_bc_config(reach_demos, tmp_path / "x").fingerprint()


def test_bc_on_an_explicit_cpu_device_equals_the_default(tmp_path: Path, reach_demos: Path) -> None:
    default = train_bc(
        tiny_bc_config(reach_demos, tmp_path / "a", steps=4),
        text_encoder=FakeText(),
        progress_bar=False,
    )
    explicit = train_bc(
        tiny_bc_config(reach_demos, tmp_path / "b", steps=4, device="cpu:0"),
        text_encoder=FakeText(),
        progress_bar=False,
    )
    a, b = _weights(default), _weights(explicit)
    assert all(torch.equal(a[k], b[k]) for k in a)
