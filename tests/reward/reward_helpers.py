"""Helpers for the reward-model tests: tiny configs, fake encoders, synthetic episodes."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch

from sarm2_gym.reward import IGNORE_INDEX, RewardBatch, SARM2Config, SARM2RewardModel
from sarm2_gym.reward.encoders.text import compute_text_embeddings

INSTRUCTIONS = ("fold the cloth", "wipe the board")
CAMERAS = ("top", "left_wrist", "right_wrist")


class FakeTextEncoder:
    """Deterministic pseudo-embeddings: a seeded normal vector per string."""

    def __init__(self, dim: int = 8) -> None:
        self.out_dim = dim
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        rows = [
            np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.out_dim) for t in texts
        ]
        return np.asarray(rows, dtype=np.float32)


class FakeFrozenEncoder:
    """A frozen image encoder: mean colour of each 2x2 block of a 4x4 grid -> 12-d features."""

    trainable = False
    out_dim = 12
    cache_key = "fake-grid"

    def __init__(self) -> None:
        self.calls = 0

    def to(self, device: torch.device | str) -> FakeFrozenEncoder:
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = images.float().permute(0, 3, 1, 2) / 255.0
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 2)  # (N, 3, 2, 2)
        return pooled.flatten(1)


def tiny_config(**overrides: object) -> SARM2Config:
    base: dict[str, object] = {
        "camera_names": CAMERAS,
        "image_size": 40,
        "encoder": "cnn",
        "cnn_out_dim": 16,
        "text_dim": 8,
        "instructions": INSTRUCTIONS,
        "n_obs_steps": 4,
        "frame_gap": 2,
        "max_rewind": 2,
        "d_model": 32,
        "n_heads": 2,
        "stage_layers": 1,
        "value_layers": 2,
        "num_experts": 4,
        "top_k": 2,
        "expert_hidden": (16,),
        "gate_hidden": 16,
        "dropout": 0.0,
    }
    base.update(overrides)
    return SARM2Config(**base)  # type: ignore[arg-type]


def make_model(config: SARM2Config | None = None, seed: int = 0) -> SARM2RewardModel:
    torch.manual_seed(seed)
    config = config or tiny_config()
    text = compute_text_embeddings(FakeTextEncoder(config.text_dim), config.instructions)
    return SARM2RewardModel(config, text)


def random_episode(
    length: int, seed: int, size: int = 40
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Frames whose brightness rises with time (so they carry progress) and a random-walk state."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(20, 230, length)[:, None, None, None]
    frames = {
        c: np.clip(ramp + rng.normal(0, 20, (length, size, size, 3)), 0, 255).astype(np.uint8)
        for c in CAMERAS
    }
    state = np.cumsum(rng.normal(0, 0.1, (length, 14)), axis=0).astype(np.float32)
    return frames, state


def feature_batch(
    config: SARM2Config, lengths: Sequence[int], seed: int = 0, targets: bool = True
) -> RewardBatch:
    """Random features in the value layout, padded to ``config.max_seq_len``."""
    gen = torch.Generator().manual_seed(seed)
    b, t = len(lengths), config.max_seq_len
    lens = torch.tensor(lengths, dtype=torch.long)
    valid = torch.arange(t).unsqueeze(0) < lens.unsqueeze(1)
    prim = torch.randint(0, 22, (b, t), generator=gen)
    return RewardBatch(
        state=torch.randn(b, t, config.state_dim, generator=gen),
        lengths=lens,
        task_ids=torch.randint(0, config.num_tasks, (b,), generator=gen),
        features={
            c: torch.randn(b, t, config.image_feature_dim, generator=gen)
            for c in config.camera_names
        },
        primitive_targets=torch.where(valid, prim, IGNORE_INDEX) if targets else None,
        steps_to_go=torch.rand(b, t, generator=gen) if targets else None,
    )


def synthetic_episode(length: int, seed: int, task: str, *, size: int = 40, success: bool = True):
    """A recorded-style :class:`Episode` whose frames brighten with progress (3 stages)."""
    from sarm2_gym.data import Episode
    from sarm2_gym.envs.core.primitives import primitive_index

    frames, state = random_episode(length, seed, size)
    top = 1.0 if success else 0.6
    progress = np.linspace(0.0, top, length).astype(np.float32)
    stage = np.minimum((progress * 3).astype(np.int64), 2)
    prims = np.array([primitive_index(p) for p in ("pick_grab", "erase", "place")])
    cols = {
        "observation.state": state,
        "action": np.zeros((length, 14), np.float32),
        "next.reward": np.zeros(length, np.float32),
        "next.done": np.arange(length) == length - 1,
        "next.success": (np.arange(length) == length - 1) & success,
        "act_pri": prims[stage].astype(np.int64),
        "stage": stage,
        "progress": progress,
    }
    cols.update({f"observation.images.{c}": frames[c] for c in CAMERAS})
    return Episode(task=task, env_id="", frames=cols, success=success, fps=10, meta={})


def write_synthetic_dataset(root, episodes: int = 6, lengths: tuple[int, ...] = (24, 30)):
    """A LeRobot dataset of synthetic episodes of both test instructions."""
    from sarm2_gym.data import LeRobotDatasetWriter

    with LeRobotDatasetWriter(root, fps=10) as writer:
        for i in range(episodes):
            task = INSTRUCTIONS[i % 2]
            ep = synthetic_episode(lengths[i % len(lengths)], seed=100 + i, task=task)
            writer.add_episode(ep, task_index=i % 2)
    return root


def frozen_config(**overrides: object) -> SARM2Config:
    """Tiny config for the 12-d :class:`FakeFrozenEncoder` (features cacheable)."""
    base: dict[str, object] = {
        "encoder": "hf",
        "encoder_name": "fake",
        "hf_feature_dim": FakeFrozenEncoder.out_dim,
        "batch_size": 8,
        "val_fraction": 0.2,
    }
    base.update(overrides)
    return tiny_config(**base)
