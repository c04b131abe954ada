"""A small NatureCNN-style image encoder trained end to end with the reward model."""

from __future__ import annotations

import torch
from torch import nn

from sarm2_gym.reward.encoders.base import check_images, to_float_nchw

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """Three convolutions (8x8/4, 4x4/2, 3x3/1) and a linear layer, as the DQN NatureCNN.

    Args:
        image_size: Side length of the square input frames.
        out_dim: Feature width.

    Example:
        >>> enc = SmallCNN(image_size=96, out_dim=32)
        >>> enc.encode(torch.zeros(2, 96, 96, 3, dtype=torch.uint8)).shape
        torch.Size([2, 32])
    """

    trainable: bool = True

    def __init__(self, image_size: int = 96, out_dim: int = 256) -> None:
        super().__init__()
        if image_size < 36:
            raise ValueError(f"SmallCNN needs image_size >= 36, got {image_size}")
        self.image_size = image_size
        self._out_dim = out_dim
        self.conv = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, 3, image_size, image_size)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, out_dim), nn.ReLU())

    @property
    def out_dim(self) -> int:
        """Feature width."""
        return self._out_dim

    @property
    def cache_key(self) -> str:
        """Cache name; a trainable encoder's features are never cached."""
        return f"cnn-{self.image_size}-{self._out_dim}"

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encode uint8 ``(N, H, W, 3)`` frames into ``(N, out_dim)`` features (with grad)."""
        check_images(images, self.image_size)
        x = to_float_nchw(images.to(next(self.parameters()).device))
        out: torch.Tensor = self.fc(self.conv(x))
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`encode`."""
        return self.encode(images)
