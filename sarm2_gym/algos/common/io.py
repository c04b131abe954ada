"""Checkpoint I/O shared by the policy-learning code: safetensors + JSON, atomic, never pickle.

Every file is written to a temporary name in the same directory, flushed, and moved over the
final name (``os.replace``), so a process killed mid-write leaves either the old file or the new
one. Multi-file states (a training snapshot) are written into a fresh temporary directory that is
renamed into place once complete; a small ``latest.json`` pointer, itself written atomically,
names the newest complete snapshot. Optimizer states and RNG states are flattened into tensors
(safetensors) plus JSON, so resuming a run needs no unpickling.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sarm2_gym.common.files import atomic_write, fsync_dir, make_staging_dir

__all__ = [
    "CheckpointError",
    "atomic_save_tensors",
    "atomic_write_json",
    "generator_state",
    "latest_snapshot",
    "load_optimizer_state",
    "load_tensors",
    "numpy_rng_from_state",
    "optimizer_state_tensors",
    "read_json",
    "set_generator_state",
    "write_snapshot",
]

LATEST_FILE: Final[str] = "latest.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of another format, or does not match the model."""


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    data = json.dumps(obj, indent=2, default=_json_default) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(data)

    atomic_write(Path(path), write)


def read_json(path: str | Path, what: str = "file") -> Any:
    """Read a JSON file, raising :class:`CheckpointError` naming ``what`` when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what} {path} is not valid JSON: {exc}") from exc


def atomic_save_tensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Save tensors to a safetensors file atomically (contiguous CPU copies)."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = dict(metadata) if metadata else None
    atomic_write(Path(path), lambda tmp: save_file(flat, str(tmp), metadata=meta))


def load_tensors(path: str | Path, what: str = "weights") -> dict[str, torch.Tensor]:
    """Load a safetensors file onto the CPU.

    Raises:
        CheckpointError: If the file is missing or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{what} {path} is unreadable: {exc}") from exc


# ---------------------------------------------------------------------------- snapshots
def write_snapshot(
    parent: str | Path, name: str, write: Callable[[Path], None], keep: int = 2
) -> Path:
    """Write a multi-file snapshot ``parent/name`` atomically and point ``latest.json`` at it.

    Args:
        parent: Directory holding the snapshots.
        name: Snapshot directory name, a prefix and a number (e.g. ``step_00001000``); replaced
            if it exists.
        write: Fills the (temporary) directory it is given.
        keep: Number of newest snapshots kept; older ones are deleted. Snapshots are the
            directories named like ``name`` (its prefix, then digits): anything else in
            ``parent`` (e.g. SPIRAL's adapted ``reward_model``) is left alone.

    Returns:
        The snapshot directory.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = make_staging_dir(parent, name)
    final = parent / name
    try:
        write(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_json(parent / LATEST_FILE, {"latest": name})
    prefix = name.rstrip("0123456789")
    snapshots = sorted(
        p
        for p in parent.iterdir()
        if p.is_dir() and p.name.startswith(prefix) and p.name[len(prefix) :].isdigit()
    )
    for old in snapshots[: max(0, len(snapshots) - keep)]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_snapshot(parent: str | Path) -> Path | None:
    """The newest complete snapshot under ``parent``, or ``None`` if there is none."""
    pointer = Path(parent) / LATEST_FILE
    if not pointer.is_file():
        return None
    name = read_json(pointer, "snapshot pointer").get("latest")
    path = Path(parent) / str(name)
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {name!r} but {path} does not exist")
    return path


# ---------------------------------------------------------------------------- optimizers
def optimizer_state_tensors(
    optimizer: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors and a JSON-able remainder.

    Returns:
        ``(tensors, meta)``: tensors keyed ``"<prefix>.<param index>.<name>"``; ``meta`` holds the
        param groups and the non-tensor per-parameter entries.
    """
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    prefix: str,
) -> None:
    """Inverse of :func:`optimizer_state_tensors`.

    Raises:
        CheckpointError: If the saved state does not fit the optimizer's parameters.
    """
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}."
    for key, value in tensors.items():
        if key.startswith(head):
            idx, _, name = key[len(head) :].partition(".")
            state.setdefault(int(idx), {})[name] = value
    for idx, entries in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entries)
    groups = [dict(g) for g in meta["param_groups"]]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"optimizer state {prefix!r} does not fit: {exc}") from exc


# ---------------------------------------------------------------------------- RNG states
def generator_state(generator: torch.Generator) -> torch.Tensor:
    """The state of a torch generator as a uint8 tensor (safetensors-storable)."""
    return generator.get_state().clone()


def set_generator_state(generator: torch.Generator, state: torch.Tensor) -> None:
    """Restore a torch generator from :func:`generator_state`."""
    generator.set_state(state.to(torch.uint8).cpu())


def numpy_rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """Rebuild a numpy ``Generator`` from its JSON-able ``bit_generator.state``."""
    name = state.get("bit_generator")
    if name != "PCG64":
        raise CheckpointError(f"unsupported numpy bit generator {name!r}")
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = dict(state)
    return rng
