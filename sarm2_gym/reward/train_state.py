"""Training checkpoints: the model plus everything needed to continue bit for bit.

A checkpoint is one directory ``<run>/checkpoints/step_<N>/`` holding the model files
(``config.json`` + ``model.safetensors``, see :func:`~sarm2_gym.reward.kinds.save_model`) and

* ``training_state.safetensors``: optimizer tensors (``optim.<param>.<name>``) and the torch
  RNG state (dropout, teacher forcing) — ``torch_rng`` of rank 0 (the only one of a
  single-process run) and ``torch_rng.rank<r>`` of every other rank of a data-parallel run;
* ``training_state.json``: global step, phase, elapsed wall-clock, optimizer hyper-parameters,
  the samplers' numpy generator states, the run's settings and its ``world_size``.

Data-parallel ranks hold identical weights, optimizer moments and sampler states (the samplers
draw the global batch on every rank), so rank 0 writes the one checkpoint every rank resumes
from; only the torch RNG states differ per rank.

It is written into a temporary directory and renamed into place, then ``<run>/checkpoints/latest``
is replaced atomically; older checkpoints beyond ``keep`` are deleted afterwards. A run killed at
any moment therefore leaves the previous complete checkpoint as ``latest``. Never pickle.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from sarm2_gym.common.files import atomic_write, make_staging_dir, save_safetensors
from sarm2_gym.reward.kinds import load_model, save_model

__all__ = [
    "CHECKPOINTS_DIR",
    "TrainingState",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

STATE_FORMAT: Final[str] = "sarm2-training-state"
_LATEST: Final[str] = "latest"
CHECKPOINTS_DIR: Final[str] = "checkpoints"  # in a training run's folder


@dataclass
class TrainingState:
    """Where a run stands (JSON part of a checkpoint).

    Attributes:
        step: Global optimizer steps done.
        phase: Index of the current phase.
        elapsed_s: Training wall-clock so far (seconds, over all sessions of the run).
        samplers: Each sampler's generator state.
        settings: The run's settings (checked on resume).
    """

    step: int
    phase: int
    elapsed_s: float
    samplers: list[dict[str, Any]]
    settings: dict[str, Any]


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    sd = opt.state_dict()
    tensors = {}
    for pid, pstate in sd["state"].items():
        for name, value in pstate.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{pid}.{name}"] = t.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def _rng_key(rank: int) -> str:
    return "torch_rng" if rank == 0 else f"torch_rng.rank{rank}"


def save_checkpoint(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    keep: int = 2,
    rng_states: Sequence[torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint of the run atomically and point ``latest`` at it.

    Args:
        run_dir: The run's directory.
        model: The (unwrapped) model.
        optimizer: Its optimizer.
        state: Step, phase, samplers, settings.
        keep: Checkpoints to keep.
        rng_states: Torch RNG state of every rank, in rank order (default: this process's).
    """
    rngs = list(rng_states) if rng_states is not None else [torch.get_rng_state()]
    ckpt_root = run_dir / CHECKPOINTS_DIR
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{state.step:08d}"
    tmp = make_staging_dir(ckpt_root, "ckpt")
    try:
        save_model(model, tmp / "model")
        tensors, groups = _optimizer_tensors(optimizer)
        for rank, rng in enumerate(rngs):
            tensors[_rng_key(rank)] = rng
        save_safetensors(tensors, tmp / "training_state.safetensors")
        meta = {
            "format": STATE_FORMAT,
            "step": state.step,
            "phase": state.phase,
            "elapsed_s": state.elapsed_s,
            "samplers": state.samplers,
            "settings": state.settings,
            "param_groups": groups,
            "world_size": len(rngs),
        }
        (tmp / "training_state.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write(ckpt_root / _LATEST, lambda tmp: tmp.write_text(final.name + "\n"))
    old = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir() and p != final)
    for path in old[: max(len(old) - (keep - 1), 0)]:
        shutil.rmtree(path, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` points at, or None."""
    pointer = run_dir / CHECKPOINTS_DIR / _LATEST
    if not pointer.is_file():
        return None
    path = run_dir / CHECKPOINTS_DIR / pointer.read_text().strip()
    return path if (path / "training_state.json").is_file() else None


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None, rank: int = 0
) -> TrainingState:
    """Restore weights (into ``model``), optimizer state and the torch RNG from a checkpoint.

    ``rank`` picks the RNG state of that data-parallel rank. A rank the checkpoint has none of
    (resuming with more processes than wrote it) gets a fresh generator seeded from the step and
    the rank: training continues, but not bit for bit.

    Raises:
        ValueError: If the directory is not a training checkpoint or does not fit the model.
    """
    meta = json.loads((path / "training_state.json").read_text())
    if meta.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a {STATE_FORMAT} checkpoint")
    saved = load_model(path / "model")
    missing = model.load_state_dict(saved.state_dict(), strict=True)
    del missing
    tensors = load_file(str(path / "training_state.safetensors"))
    if optimizer is not None:
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    key = _rng_key(rank)
    if key in tensors:
        torch.set_rng_state(tensors[key])
    else:
        seq = np.random.SeedSequence([int(meta["step"]), rank])
        torch.manual_seed(int(seq.generate_state(1)[0]))
    return TrainingState(
        step=int(meta["step"]),
        phase=int(meta["phase"]),
        elapsed_s=float(meta["elapsed_s"]),
        samplers=list(meta["samplers"]),
        settings=dict(meta["settings"]),
    )
