"""An untrained, tiny SARM2 model for tests, doctests and wiring checks.

Its outputs are arbitrary (random weights): use it to check plumbing — shapes, batching, the
wrappers' bookkeeping — never to judge rewards. The instruction embeddings are seeded random
vectors of the sentence encoder's width, so instructions outside the benchmark can still be
added with the real text encoder.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from sarm2_gym.envs.core.primitives import PRIMITIVES
from sarm2_gym.reward.config import BENCHMARK_INSTRUCTIONS, SARM2Config
from sarm2_gym.reward.encoders.text import TextEmbeddings
from sarm2_gym.reward.model import SARM2RewardModel

__all__ = ["tiny_config", "tiny_model"]


def tiny_config(image_size: int = 96, **overrides: object) -> SARM2Config:
    """A small CNN-encoder config of the default structure (2 experts per token, 4 experts)."""
    base: dict[str, object] = {
        "image_size": image_size,
        "encoder": "cnn",
        "cnn_out_dim": 16,
        "text_dim": 384,
        "instructions": BENCHMARK_INSTRUCTIONS,
        "d_model": 32,
        "n_heads": 2,
        "stage_layers": 1,
        "value_layers": 1,
        "num_experts": 4,
        "top_k": 2,
        "expert_hidden": (16,),
        "gate_hidden": 16,
        "dropout": 0.0,
    }
    base.update(overrides)
    return SARM2Config(**base)  # type: ignore[arg-type]


def _seeded_embeddings(texts: tuple[str, ...], dim: int) -> TextEmbeddings:
    rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=dim) for t in texts]
    prims = [np.random.default_rng(zlib.crc32(p.encode())).normal(size=dim) for p in PRIMITIVES]
    return TextEmbeddings(
        instructions=texts,
        instruction=np.asarray(rows, dtype=np.float32),
        primitive=np.asarray(prims, dtype=np.float32),
    )


def tiny_model(image_size: int = 96, seed: int = 0, **overrides: object) -> SARM2RewardModel:
    """A randomly initialised tiny model (deterministic given ``seed``), in eval mode."""
    config = tiny_config(image_size, **overrides)
    torch.manual_seed(seed)
    model = SARM2RewardModel(config, _seeded_embeddings(config.instructions, config.text_dim))
    return model.eval()
