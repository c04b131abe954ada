"""Image side of TinyVLA: frame resizing, a small spatial-softmax CNN, random-shift augmentation.

The CNN is deliberately small (about 3 M multiply-adds per 64x64 frame) so that behaviour cloning
trains end to end on two CPU cores. Its spatial-softmax head returns the expected image position
of each feature map, which keeps *where* things are (the eraser, the board edge): the frozen
ImageNet EfficientNet's pooled features lose most of that (see
:mod:`sarm2_gym.reward.encoders.efficientnet`, position R² below 0.2 at 96 px), which is why the CNN
is the default encoder here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpatialSoftmaxCNN", "random_shift", "resize_frames"]


def resize_frames(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 frames ``(N, H, W, 3)`` to ``(N, size, size, 3)`` uint8 (bilinear, rounded).

    Training data and live observations both go through this one function, so the policy sees
    identical pixels offline and online.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 (N, H, W, 3), got {images.dtype} {tuple(images.shape)}"
        )
    if tuple(images.shape[1:3]) == (size, size):
        return images
    x = images.permute(0, 3, 1, 2).to(torch.float32)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def random_shift(
    images: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift float images ``(N, C, H, W)`` by up to ``pad`` pixels (replicate padding; DrQ-style).

    Args:
        images: Float batch.
        pad: Maximum shift in pixels (0 returns the input).
        generator: Source of the offsets (kept explicit so a resumed run repeats them).
    """
    if pad <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    if images.device.type == "cpu":  # slicing frame by frame is the cheaper path on a CPU
        return _shift_by_slices(padded, offsets, h, w)
    # On an accelerator a loop costs a kernel launch per frame, which dominates a small CNN's
    # step: gather the whole batch at once (the same offsets, the same values).
    return _shift_by_gather(padded, offsets.to(images.device), h, w)


def _shift_by_slices(padded: torch.Tensor, offsets: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Crop ``(h, w)`` windows at ``offsets`` ``(N, 2)`` (row, column), one frame at a time."""
    return torch.stack(
        [padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())]
    )


def _shift_by_gather(padded: torch.Tensor, offsets: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The same crops as :func:`_shift_by_slices`, as one advanced-indexing gather."""
    rows = (offsets[:, 0, None] + torch.arange(h, device=padded.device))[:, :, None]
    cols = (offsets[:, 1, None] + torch.arange(w, device=padded.device))[:, None, :]
    batch = torch.arange(padded.shape[0], device=padded.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


class SpatialSoftmaxCNN(nn.Module):
    """Three convolutions, then per-channel spatial-softmax keypoints and mean activations.

    Args:
        image_size: Side of the square input frames.
        channels: Output channels of the three convolutions.
        out_dim: Feature width.

    Example:
        >>> cnn = SpatialSoftmaxCNN(image_size=32, channels=(4, 8, 8), out_dim=16)
        >>> cnn(torch.zeros(2, 32, 32, 3, dtype=torch.uint8)).shape
        torch.Size([2, 16])
    """

    def __init__(self, image_size: int, channels: tuple[int, int, int], out_dim: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.image_size = image_size
        self.conv = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=5, stride=2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2),
            nn.ReLU(),
            nn.Conv2d(c2, c3, kernel_size=3, stride=1),
        )
        with torch.no_grad():
            _, _, h, w = self.conv(torch.zeros(1, 3, image_size, image_size)).shape
        if h < 2 or w < 2:
            raise ValueError(f"image_size={image_size} is too small for the CNN")
        self.pos: torch.Tensor
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer(
            "pos", torch.stack([xs.flatten(), ys.flatten()], dim=-1), persistent=False
        )
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.fc = nn.Sequential(nn.Linear(3 * c3, out_dim), nn.LayerNorm(out_dim))

    @property
    def map_channels(self) -> int:
        """Channels of the last feature map (the width of :meth:`encode`'s grid cells)."""
        conv = self.conv[-1]
        assert isinstance(conv, nn.Conv2d)
        return conv.out_channels

    def forward(
        self, images: torch.Tensor, shift: int = 0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Features ``(N, out_dim)`` of uint8 frames ``(N, S, S, 3)`` (already resized).

        Args:
            images: Frames at :attr:`image_size`.
            shift: Random-shift augmentation in pixels (training only).
            generator: RNG of the shift.
        """
        return self.encode(images, shift, generator)[0]

    def encode(
        self,
        images: torch.Tensor,
        shift: int = 0,
        generator: torch.Generator | None = None,
        grid: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features ``(N, out_dim)`` and the pooled last feature map (or ``None``).

        With ``grid > 0`` the last feature map is average-pooled to ``grid x grid`` cells,
        ``(N, grid * grid, map_channels)`` (row-major).
        """
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0 - 0.5
        x = random_shift(x, shift, generator)
        maps = self.conv(x)  # (N, C, h, w)
        flat = maps.flatten(2)  # (N, C, h*w)
        attn = torch.softmax(flat / self.log_temperature.exp(), dim=-1)
        keypoints = attn @ self.pos  # (N, C, 2): expected (x, y) of each channel
        pooled = F.relu(flat).mean(dim=-1)  # (N, C): how strongly each channel fires
        out: torch.Tensor = self.fc(torch.cat([keypoints.flatten(1), pooled], dim=-1))
        if grid <= 0:
            return out, None
        cells = F.adaptive_avg_pool2d(F.relu(maps), grid).flatten(2).transpose(1, 2)
        return out, cells
