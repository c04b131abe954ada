"""Reward-model checkpoints: ``config.json`` + ``model.safetensors``; never pickle.

``config.json`` holds the format name and version, the library version that wrote it, the
SHA-256 of the weights file and the :class:`SARM2Config`. ``model.safetensors`` holds every
trainable weight and the buffers inference needs: the instruction and primitive-name text
embeddings and the state normalisation statistics. Frozen image backbones are not stored; they
are rebuilt from the config (EfficientNet-Lite0 from its pip package, SigLIP/CLIP from
``encoder_name``).

Writing is atomic: both files are written into a temporary directory next to the target, which
is then renamed into place (a new checkpoint) or whose files replace the old ones with
``os.replace`` (an existing directory; other files in it are left alone). If a crash falls
between the two replacements, the checksum in ``config.json`` no longer matches and loading
fails with a clear error instead of mixing two checkpoints.

Example:
    >>> import tempfile, numpy as np
    >>> from sarm2_gym.reward.encoders.text import TextEmbeddings
    >>> cfg = SARM2Config(encoder="cnn", cnn_out_dim=8, d_model=16, n_heads=2, text_dim=4,
    ...                   instructions=("fold",), expert_hidden=(8,), gate_hidden=8)
    >>> model = SARM2RewardModel(cfg, TextEmbeddings.zeros(("fold",), 4))
    >>> path = save_pretrained(model, tempfile.mkdtemp() + "/ckpt")
    >>> load_pretrained(path).config == cfg
    True
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
from pathlib import Path
from typing import Any, Final

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from sarm2_gym.common.files import make_staging_dir, save_safetensors
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.base import ImageEncoder
from sarm2_gym.reward.encoders.text import TextEmbeddings
from sarm2_gym.reward.model import SARM2RewardModel

__all__ = [
    "CONFIG_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "CheckpointError",
    "load_pretrained",
    "save_pretrained",
]

FORMAT_NAME: Final[str] = "sarm2-reward-model"
FORMAT_VERSION: Final[int] = 1
CONFIG_NAME: Final[str] = "config.json"
WEIGHTS_NAME: Final[str] = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the message names the file and the problem."""


def library_version() -> str:
    """Version of the installed ``sarm2-gym`` (``"unknown"`` when running from a source tree)."""
    try:
        return importlib.metadata.version("sarm2-gym")
    except importlib.metadata.PackageNotFoundError:
        version = getattr(importlib.import_module("sarm2_gym"), "__version__", None)
        return str(version) if version else "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_pretrained(model: SARM2RewardModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if needed) atomically.

    Returns:
        The checkpoint directory.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a directory")
    tmp = make_staging_dir(target.parent, target.name)
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        weights = tmp / WEIGHTS_NAME
        save_safetensors(state, weights, metadata={"format": FORMAT_NAME})
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "library_version": library_version(),
            "weights_sha256": _sha256(weights),
            "config": model.config.to_dict(),
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if not target.exists():
            os.replace(tmp, target)
        else:
            # Weights first, config last: a crash in between leaves a checksum mismatch.
            os.replace(tmp / WEIGHTS_NAME, target / WEIGHTS_NAME)
            os.replace(tmp / CONFIG_NAME, target / CONFIG_NAME)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _read_meta(directory: Path) -> dict[str, Any]:
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{directory} has no {CONFIG_NAME}; not a SARM2 checkpoint")
    try:
        meta = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{config_path} is not a {FORMAT_NAME} config")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has checkpoint format version {version!r} (written by sarm2-gym "
            f"{meta.get('library_version', 'unknown')}); this library reads version "
            f"{FORMAT_VERSION} only"
        )
    return meta


def load_pretrained(
    directory: str | Path,
    *,
    device: torch.device | str = "cpu",
    image_encoder: ImageEncoder | None = None,
) -> SARM2RewardModel:
    """Load a checkpoint written by :func:`save_pretrained`; the model is returned in eval mode.

    Args:
        directory: Checkpoint directory.
        device: Where to put the model.
        image_encoder: Frozen image encoder instance to use instead of building one.

    Raises:
        CheckpointError: Missing files, another format version, a corrupted or foreign weights
            file, or weights that do not fit the config (names the offending tensors).
    """
    directory = Path(directory)
    meta = _read_meta(directory)
    try:
        config = SARM2Config.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / CONFIG_NAME} holds an invalid config: {err}") from None
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}")
    if _sha256(weights) != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{weights} is corrupted or belongs to another {CONFIG_NAME} (checksum mismatch)"
        )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights} is corrupted: {err}") from None

    model = SARM2RewardModel(
        config,
        TextEmbeddings.zeros(config.instructions, config.text_dim),
        image_encoder=image_encoder,
    )
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{weights} does not match its config: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
