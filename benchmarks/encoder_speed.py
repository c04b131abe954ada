"""Frozen EfficientNet-Lite0 encoder speed -> docs/results/encoder_speed.md.

Milliseconds per image on one torch thread for a batch of 24 random 96x96 frames (an 8-env reward
wrapper's batch: 8 envs x 3 cameras), at several network input sizes: the network as loaded from
the weights package (``fold=False``) against the inference rewrite the project uses
(:func:`~sarm2_gym.reward.encoders.efficientnet.fold_for_inference`), and the rewritten one with
several limits on the images per forward pass (the choice behind ``ENCODE_CHUNK`` and
``ENCODE_CHUNK_SMALL``). Configurations are interleaved and the best of ``--repeats`` is kept, so a
busy machine slows them alike.

Usage:
    python benchmarks/encoder_speed.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

import sarm2_gym.reward.encoders.efficientnet as effnet
from sarm2_gym.reward.encoders.efficientnet import EfficientNetLite0Encoder

SIZES = (48, 64, 96, 128)
CHUNK_LIMITS = (8, 16, 24, 32)
BATCH = 24
FRAMES = torch.randint(
    0, 256, (BATCH, 96, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
)


def _with_chunk_limit(encoder: EfficientNetLite0Encoder, limit: int) -> Callable[[], object]:
    """Encode the batch with at most ``limit`` images per forward pass, whatever the size."""

    def run() -> object:
        saved = effnet.ENCODE_CHUNK, effnet.ENCODE_CHUNK_SMALL
        effnet.ENCODE_CHUNK = effnet.ENCODE_CHUNK_SMALL = limit
        try:
            return encoder.encode(FRAMES)
        finally:
            effnet.ENCODE_CHUNK, effnet.ENCODE_CHUNK_SMALL = saved

    return run


def best_ms_per_image(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Interleaved best-of-``repeats`` milliseconds per image of each zero-argument run."""
    best = dict.fromkeys(runs, float("inf"))
    for run in runs.values():
        run()  # warm-up
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - t0) / BATCH * 1e3)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/results/encoder_speed.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    header = ["input px", "as loaded", "rewritten (default chunks)"] + [
        f"rewritten, <= {c} per pass" for c in CHUNK_LIMITS
    ]
    rows = []
    for size in SIZES:
        loaded = EfficientNetLite0Encoder(input_size=size, fold=False)
        rewritten = EfficientNetLite0Encoder(input_size=size)
        runs: dict[str, Callable[[], object]] = {
            "loaded": lambda e=loaded: e.encode(FRAMES),
            "rewritten": lambda e=rewritten: e.encode(FRAMES),
        }
        runs |= {f"chunk{c}": _with_chunk_limit(rewritten, c) for c in CHUNK_LIMITS}
        ms = best_ms_per_image(runs, args.repeats)
        rows.append([str(size)] + [f"{v:.2f}" for v in ms.values()])
        print(size, {k: round(v, 2) for k, v in ms.items()}, flush=True)
    lines = [
        "# Frozen image encoder speed",
        "",
        f"Command: `python benchmarks/encoder_speed.py --repeats {args.repeats}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, 1 torch thread. Milliseconds per "
        f"image for a batch of {BATCH} random 96x96 frames (8 envs x 3 cameras), interleaved, "
        f"best of {args.repeats}. 'As loaded': the network from the weights package; "
        "'rewritten': `fold_for_inference` (batch norms folded, paddings inside the "
        "convolutions, 1x1 convolutions as matrix products), as every encoder of the project "
        f"runs it, with its default chunks ({effnet.ENCODE_CHUNK_SMALL} images per pass at "
        f"<= 48 px, else {effnet.ENCODE_CHUNK}; a batch is cut into equal chunks).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
