"""Episode videos: the three cameras side by side with a progress / primitive overlay."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sarm2_gym.common.plots import PRIMITIVE_COLORS
from sarm2_gym.envs.core.primitives import PRIMITIVES

__all__ = ["compose_frame", "write_video"]

_BAR_H = 16


def _bar(width: int, value: float, color: tuple[float, ...], background: int = 40) -> np.ndarray:
    bar = np.full((_BAR_H, width, 3), background, dtype=np.uint8)
    filled = round(float(np.clip(value, 0.0, 1.0)) * width)
    bar[2:-2, :filled] = (np.asarray(color[:3]) * 255).astype(np.uint8)
    return bar


def _caption(bar: np.ndarray, text: str) -> np.ndarray:
    """Draw ``text`` on a bar (PIL's built-in bitmap font: no font files needed)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(bar)
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), text, fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
    return np.asarray(img)


def compose_frame(
    images: Sequence[np.ndarray],
    progress: Sequence[float] = (),
    primitives: Sequence[int] = (),
    scale: int = 2,
    labels: Sequence[str] = (),
) -> np.ndarray:
    """Tile camera images and add one bar per progress value (coloured by its primitive).

    Args:
        images: Camera images (H, W, 3) uint8 of equal height.
        progress: Progress values in [0, 1], one bar each (e.g. true, predicted).
        primitives: Primitive index per bar (colours the bar); defaults to grey.
        scale: Integer upscaling of the camera images (nearest neighbour).
        labels: Optional text per bar (e.g. ``"SARM2"``); the value and primitive name are added.

    Returns:
        The composed frame, uint8, with even height and width (video codecs need them).
    """
    row = np.concatenate([np.asarray(im, dtype=np.uint8) for im in images], axis=1)
    row = row.repeat(scale, axis=0).repeat(scale, axis=1)
    width = row.shape[1]
    parts = [row]
    for k, value in enumerate(progress):
        prim = primitives[k] if k < len(primitives) else PRIMITIVES.index("dummy")
        bar = _bar(width, float(value), PRIMITIVE_COLORS[prim])
        if k < len(labels):
            bar = _caption(bar, f"{labels[k]} {float(value):.2f} {PRIMITIVES[prim]}")
        parts.append(bar)
    frame = np.concatenate(parts, axis=0)
    h, w = frame.shape[:2]
    return np.ascontiguousarray(frame[: h - h % 2, : w - w % 2])


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write frames to ``.mp4`` (H.264) or ``.webm`` (VP9) with the ffmpeg from imageio-ffmpeg."""
    import imageio.v2 as imageio

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    codec = "libvpx-vp9" if out.suffix == ".webm" else "libx264"
    # imageio already asks for yuv420p (the pixel format browsers decode).
    params = ["-b:v", "0", "-crf", "32"] if codec == "libvpx-vp9" else []
    with imageio.get_writer(
        out, fps=fps, codec=codec, macro_block_size=1, ffmpeg_params=params
    ) as writer:
        for frame in frames:
            writer.append_data(frame)  # type: ignore[attr-defined]
    return out
