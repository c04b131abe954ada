"""The encoder protocols and the image preprocessing they share.

An image encoder maps uint8 frames ``(N, H, W, 3)`` to float32 features ``(N, D)``. Frozen
encoders (EfficientNet-Lite0, SigLIP/CLIP) are plain objects outside the reward model's module
tree, so ``model.train()`` never touches their batch-norm statistics and their weights never enter
a reward-model checkpoint; the trainable CNN is an ``nn.Module`` owned by the reward model.
A text encoder maps strings to float32 embeddings ``(N, D)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageEncoder",
    "TextEncoder",
    "check_images",
    "to_float_nchw",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@runtime_checkable
class ImageEncoder(Protocol):
    """Per-frame image encoder.

    Attributes:
        out_dim: Feature width D.
        trainable: True if the encoder is trained with the reward model (its features cannot be
            cached); False for frozen backbones.
        cache_key: Identifies the encoder and its preprocessing in feature-cache paths.
    """

    @property
    def out_dim(self) -> int:
        """Feature width D."""

    @property
    def trainable(self) -> bool:
        """Whether the encoder is trained end to end."""

    @property
    def cache_key(self) -> str:
        """Name of the encoder + preprocessing, used as a cache directory name."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encode uint8 images ``(N, H, W, 3)`` into float32 features ``(N, D)``."""

    def to(self, device: torch.device | str) -> Any:
        """Move the encoder's weights to ``device``."""


@runtime_checkable
class TextEncoder(Protocol):
    """Sentence encoder for instructions and primitive names."""

    @property
    def out_dim(self) -> int:
        """Embedding width D."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed strings into a float32 array ``(len(texts), D)``."""


def check_images(images: torch.Tensor, image_size: int | None = None) -> None:
    """Validate a uint8 ``(N, H, W, 3)`` image batch.

    Raises:
        ValueError: Naming the wrong dtype, rank, channel count or size.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {tuple(images.shape)}")
    if image_size is not None and tuple(images.shape[1:3]) != (image_size, image_size):
        raise ValueError(
            f"images must be {image_size}x{image_size}, got {images.shape[1]}x{images.shape[2]}"
        )


def to_float_nchw(
    images: torch.Tensor,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    letterbox: bool = False,
) -> torch.Tensor:
    """Convert uint8 NHWC images to normalised float32 NCHW.

    Args:
        images: uint8 ``(N, H, W, 3)``.
        size: Output side length; ``None`` keeps the input size. Resizing is bilinear.
        mean: Per-channel mean subtracted after scaling to [0, 1]; ``None`` skips normalisation.
        std: Per-channel standard deviation.
        letterbox: Keep the aspect ratio and zero-pad to a square (SigLIP reference
            ``resize_with_pad``, spec §1.4) instead of stretching.
    """
    x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        h, w = x.shape[-2:]
        if letterbox and h != w:
            scale = size / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
            top, left = (size - nh) // 2, (size - nw) // 2
            x = F.pad(x, (left, size - nw - left, top, size - nh - top))
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x - m) / s
    return x
