"""TinyVLA checkpoints: ``config.json`` + ``model.safetensors`` (atomic writes, strict loads).

``config.json`` holds a format tag, a format version, the library version and the
:class:`~sarm2_gym.algos.vla.config.TinyVLAConfig`; ``model.safetensors`` every parameter and
buffer (normalisation statistics and instruction embeddings included). Loading checks the tag,
the version, the config fields and every tensor name and shape, and names what does not match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import torch

from sarm2_gym.algos.common.io import (
    CheckpointError,
    atomic_save_tensors,
    atomic_write_json,
    load_tensors,
    read_json,
)
from sarm2_gym.algos.vla.config import TinyVLAConfig
from sarm2_gym.algos.vla.tiny_vla import TinyVLA

__all__ = ["CONFIG_FILE", "FORMAT", "FORMAT_VERSION", "WEIGHTS_FILE", "load_vla", "save_vla"]

FORMAT: Final[str] = "sarm2-gym/tinyvla"
FORMAT_VERSION: Final[int] = 1
CONFIG_FILE: Final[str] = "config.json"
WEIGHTS_FILE: Final[str] = "model.safetensors"


def _library_version() -> str:
    from sarm2_gym import __version__

    return __version__


def save_vla(model: TinyVLA, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if needed); weights first, config last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(directory / WEIGHTS_FILE, model.state_dict(), {"format": FORMAT})
    atomic_write_json(
        directory / CONFIG_FILE,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": _library_version(),
            "config": model.config.to_dict(),
        },
    )
    return directory


def read_vla_config(directory: str | Path) -> TinyVLAConfig:
    """The config stored in a checkpoint directory.

    Raises:
        CheckpointError: Missing file, another format, a newer version, or bad fields.
    """
    meta = read_json(Path(directory) / CONFIG_FILE, "TinyVLA config")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{directory} is not a TinyVLA checkpoint (format {meta.get('format')!r})"
        )
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} has format version {version}; this library reads {FORMAT_VERSION}"
        )
    try:
        return TinyVLAConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory}: invalid TinyVLA config: {exc}") from exc


def load_vla(directory: str | Path, device: str | torch.device = "cpu") -> TinyVLA:
    """Load a TinyVLA checkpoint.

    Raises:
        CheckpointError: If anything is missing, extra or mis-shaped (all mismatches listed).
    """
    directory = Path(directory)
    config = read_vla_config(directory)
    model = TinyVLA(config)
    tensors = load_tensors(directory / WEIGHTS_FILE, "TinyVLA weights")
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [
        f"{k}: shape {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(
            f"{directory / WEIGHTS_FILE} does not match its config: " + "; ".join(problems)
        )
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model.to(device)
