"""Per-frame feature cache for frozen image encoders.

Training reads thousands of frame windows per second; with a frozen backbone every frame's
feature is computed once and stored, so training never re-encodes an image. Layout::

    <root>/<dataset_key>/<encoder.cache_key>/<episode_key>.safetensors

Each file holds one tensor per camera, ``(T, D)``, float16 by default (half the disk, and the
backbones' features need no more precision), and metadata naming the encoder, the length and the
cameras. Files are written atomically (temp file + ``os.replace``); a file that is unreadable or
does not match the episode is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from sarm2_gym.common.files import atomic_write
from sarm2_gym.data.episode import CAMERA_NAMES, Episode, image_key
from sarm2_gym.reward.encoders.base import ImageEncoder

__all__ = ["FeatureCache", "encode_frames"]

_DTYPES: Final = {"float16": np.float16, "float32": np.float32}


def encode_frames(
    encoder: ImageEncoder, images: np.ndarray | torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Encode uint8 frames ``(N, H, W, 3)`` in chunks; returns float32 ``(N, D)``."""
    x = torch.as_tensor(images)
    if x.shape[0] == 0:
        return torch.zeros(0, encoder.out_dim)
    return torch.cat([encoder.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _safe(name: str) -> str:
    if not name:
        raise ValueError("cache keys must be non-empty")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class FeatureCache:
    """Features of every frame of many episodes, computed once per (dataset, encoder).

    Args:
        root: Cache root directory.
        dataset_key: Names the dataset (e.g. its directory name).
        encoder: A frozen image encoder.
        cameras: Cameras to encode.
        dtype: ``"float16"`` or ``"float32"`` storage.
        batch_size: Frames per encoder call.
    """

    def __init__(
        self,
        root: str | Path,
        dataset_key: str,
        encoder: ImageEncoder,
        cameras: Sequence[str] = CAMERA_NAMES,
        dtype: str = "float16",
        batch_size: int = 256,
    ) -> None:
        if encoder.trainable:
            raise ValueError("features of a trainable encoder change during training; no cache")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.encoder = encoder
        self.cameras = tuple(cameras)
        self.dtype = dtype
        self.batch_size = batch_size
        self.directory = Path(root) / _safe(dataset_key) / _safe(encoder.cache_key)

    def path(self, episode_key: str) -> Path:
        """File of one episode."""
        return self.directory / f"{_safe(episode_key)}.safetensors"

    def load(
        self, episode_key: str, length: int | None = None, *, as_float32: bool = True
    ) -> dict[str, np.ndarray] | None:
        """Cached features (``(T, D)`` per camera), or None if absent or not matching.

        Args:
            episode_key: Episode name within the dataset.
            length: Expected number of frames (checked when given).
            as_float32: Convert to float32; ``False`` keeps the stored dtype (half the memory
                for training tables that hold a whole dataset).
        """
        path = self.path(episode_key)
        if not path.is_file():
            return None
        try:
            arrays = load_file(str(path))
        except (SafetensorError, OSError, ValueError):
            return None
        if any(c not in arrays for c in self.cameras):
            return None
        out = {c: arrays[c].astype(np.float32) if as_float32 else arrays[c] for c in self.cameras}
        for arr in out.values():
            if arr.ndim != 2 or arr.shape[1] != self.encoder.out_dim:
                return None
            if length is not None and arr.shape[0] != length:
                return None
        return out

    def get(self, episode_key: str, images: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Features of one episode: from the cache, or encoded now and stored.

        Args:
            episode_key: Unique name of the episode within the dataset (e.g. its index).
            images: Camera -> uint8 ``(T, H, W, 3)``.
        """
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise ValueError(f"episode {episode_key!r} lacks cameras {missing}")
        length = int(images[self.cameras[0]].shape[0])
        cached = self.load(episode_key, length)
        if cached is not None:
            return cached
        feats = {
            c: encode_frames(self.encoder, images[c], self.batch_size).cpu().numpy()
            for c in self.cameras
        }
        self._write(episode_key, feats, length)
        return {c: f.astype(_DTYPES[self.dtype]).astype(np.float32) for c, f in feats.items()}

    def get_episode(self, episode_key: str, episode: Episode) -> dict[str, np.ndarray]:
        """:meth:`get` for an :class:`~sarm2_gym.data.episode.Episode`."""
        images = {
            c: episode.frames[image_key(c)] for c in self.cameras if image_key(c) in episode.frames
        }
        return self.get(episode_key, images)

    def _write(self, episode_key: str, feats: Mapping[str, np.ndarray], length: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors = {c: np.ascontiguousarray(f.astype(_DTYPES[self.dtype])) for c, f in feats.items()}
        meta = {
            "encoder": self.encoder.cache_key,
            "length": str(length),
            "cameras": ",".join(self.cameras),
        }
        atomic_write(
            self.path(episode_key), lambda tmp: save_file(tensors, str(tmp), metadata=meta)
        )
