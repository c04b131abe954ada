"""Baseline checkpoints: ``config.json`` (kind, shared config, extras) + ``model.safetensors``.

Written atomically (temporary directory, then rename or ``os.replace`` of each file, weights
first), checked with a SHA-256 on load like SARM2 checkpoints; never pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Final

from safetensors import SafetensorError
from safetensors.torch import load_file

from sarm2_gym.common.files import make_staging_dir, save_safetensors
from sarm2_gym.reward.baselines.common import NormalizedInputs
from sarm2_gym.reward.baselines.rewind import ReWiNDModel
from sarm2_gym.reward.baselines.sarm_v1 import SARMv1Model
from sarm2_gym.reward.checkpoint import CheckpointError
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.text import TextEmbeddings

__all__ = ["BASELINE_FORMAT", "load_baseline", "save_baseline"]

BASELINE_FORMAT: Final[str] = "sarm2-baseline"
_VERSION: Final[int] = 1


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _extras(model: NormalizedInputs) -> dict[str, Any]:
    if isinstance(model, SARMv1Model):
        return {"proportions": {str(k): v for k, v in model.proportions.items()}}
    return {}


def save_baseline(model: NormalizedInputs, directory: str | Path) -> Path:
    """Write a baseline model to ``directory`` atomically; returns the directory."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_staging_dir(target.parent, target.name)
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_safetensors(state, tmp / "model.safetensors", metadata={"format": BASELINE_FORMAT})
        meta = {
            "format": BASELINE_FORMAT,
            "format_version": _VERSION,
            "kind": model.kind,
            "weights_sha256": _sha256(tmp / "model.safetensors"),
            "config": model.config.to_dict(),
            "extra": _extras(model),
        }
        (tmp / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if not target.exists():
            os.replace(tmp, target)
        else:
            os.replace(tmp / "model.safetensors", target / "model.safetensors")
            os.replace(tmp / "config.json", target / "config.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_baseline(
    kind: str, config: SARM2Config, text: TextEmbeddings, extra: dict[str, Any]
) -> NormalizedInputs:
    """A fresh baseline module of ``kind`` (``"rewind"`` or ``"sarm_v1"``)."""
    if kind == "rewind":
        return ReWiNDModel(config, text)
    if kind == "sarm_v1":
        props = {int(k): v for k, v in extra["proportions"].items()}
        return SARMv1Model(config, text, props)
    raise ValueError(f"unknown baseline kind {kind!r}")


def load_baseline(directory: str | Path) -> NormalizedInputs:
    """Load a baseline written by :func:`save_baseline` (eval mode, CPU).

    Raises:
        CheckpointError: Missing or foreign files, checksum mismatch, or weights that do not
            fit the config.
    """
    directory = Path(directory)
    try:
        meta = json.loads((directory / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{directory}/config.json is missing or invalid: {err}") from None
    if meta.get("format") != BASELINE_FORMAT or meta.get("format_version") != _VERSION:
        raise CheckpointError(f"{directory} is not a {BASELINE_FORMAT} v{_VERSION} checkpoint")
    weights = directory / "model.safetensors"
    if not weights.is_file() or _sha256(weights) != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights} is missing or does not match config.json")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights} is corrupted: {err}") from None
    config = SARM2Config.from_dict(meta["config"])
    text = TextEmbeddings.zeros(config.instructions, config.text_dim)
    model = build_baseline(str(meta["kind"]), config, text, meta.get("extra") or {})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{weights} does not fit its config: {err}") from None
    return model.eval()
