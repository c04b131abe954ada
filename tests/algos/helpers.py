"""A tiny reaching env with the benchmark's observation/action/info contract, and tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

from sarm2_gym.algos.vla import BCConfig, TinyVLA, TinyVLAConfig
from sarm2_gym.data import Episode, LeRobotDatasetWriter
from sarm2_gym.data.episode import CAMERA_NAMES, ENV_STATE_KEY, image_key
from sarm2_gym.data.recording import ENV_STATE_WIDTH

INSTRUCTION = "reach the red dot"
IMAGE = 24


class FakeText:
    """Deterministic stand-in for the sentence encoder (keeps tests free of the 90 MB model)."""

    out_dim = 8

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack(
            [np.random.default_rng(sum(map(ord, t))).normal(size=self.out_dim) for t in texts]
        ).astype(np.float32)


class ReachEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Move a point (state[0:2]) to a goal seen only in the top camera; 10 Hz, progress in info."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}
    instruction = INSTRUCTION
    env_state_dim = 4  # privileged state: the point and the goal, as a benchmark task gives it

    def __init__(self, reward: str = "sparse", image_size: int = IMAGE, **_: Any) -> None:
        if reward != "sparse":
            raise ValueError(f"ReachEnv has only the sparse reward, got {reward!r}")
        self.size = image_size
        img = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(
            {**dict.fromkeys(CAMERA_NAMES, img), "state": spaces.Box(-10, 10, (14,), np.float32)}
        )
        self.action_space = spaces.Box(-1.0, 1.0, (14,), np.float32)
        self.pos = np.zeros(2)
        self.goal = np.zeros(2)
        self.d0 = 1.0

    def _pixel(self, xy: np.ndarray) -> tuple[int, int]:
        r, c = ((xy + 1.0) / 2.0 * (self.size - 1)).round().astype(int).clip(0, self.size - 1)
        return int(r), int(c)

    def _obs(self) -> dict[str, np.ndarray]:
        top = np.zeros((self.size, self.size, 3), np.uint8)
        gr, gc = self._pixel(self.goal)
        top[max(gr - 1, 0) : gr + 2, max(gc - 1, 0) : gc + 2, 0] = 255
        pr, pc = self._pixel(self.pos)
        top[pr, pc, 1] = 255
        state = np.zeros(14, np.float32)
        state[:2] = self.pos
        obs = {c: np.zeros((self.size, self.size, 3), np.uint8) for c in CAMERA_NAMES}
        obs["top"] = top
        obs["state"] = state
        return obs

    def _info(self) -> dict[str, Any]:
        dist = float(np.linalg.norm(self.goal - self.pos))
        progress = float(np.clip(1.0 - dist / self.d0, 0.0, 1.0))
        return {
            "is_success": dist < 0.15,
            "progress": progress,
            "primitive": 0,
            "stage": 0,
            "task": INSTRUCTION,
        }

    def privileged_state(self) -> np.ndarray:
        return np.concatenate([self.pos, self.goal]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.8, 0.8, 2)
        self.goal = self.np_random.uniform(-0.8, 0.8, 2)
        while np.linalg.norm(self.goal - self.pos) < 0.5:
            self.goal = self.np_random.uniform(-0.8, 0.8, 2)
        self.d0 = float(np.linalg.norm(self.goal - self.pos))
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> Any:
        a = np.clip(np.asarray(action, dtype=np.float64), -1, 1)
        self.pos = np.clip(self.pos + 0.15 * a[:2], -1, 1)
        info = self._info()
        return self._obs(), float(info["is_success"]), bool(info["is_success"]), False, info


REACH_ID = "AlgosTest/Reach-v0"


def make_reach_env(max_steps: int = 25) -> gym.Env:
    return TimeLimit(ReachEnv(), max_episode_steps=max_steps)


def register_reach() -> None:
    if REACH_ID not in gym.registry:
        gym.register(REACH_ID, entry_point=ReachEnv, max_episode_steps=25)


def expert_action(obs: dict[str, np.ndarray], env: ReachEnv) -> np.ndarray:
    a = np.zeros(14, np.float32)
    a[:2] = np.clip((env.goal - env.pos) / 0.15, -1, 1)
    a[6] = 1.0
    return a


def record_demos(root: Path, n: int, seed: int = 0, image_size: int = IMAGE) -> Path:
    """Expert episodes of ReachEnv in the dataset layout (final row: terminal obs, hold action)."""
    with LeRobotDatasetWriter(root, fps=10) as writer:
        for i in range(n):
            env = ReachEnv(image_size=image_size)
            obs, info = env.reset(seed=seed + i)
            rows: dict[str, list[Any]] = {k: [] for k in ("obs", "act", "prog", "succ", "env")}
            for _ in range(25):
                a = expert_action(obs, env)
                rows["obs"].append(obs)
                rows["env"].append(env.privileged_state())
                rows["act"].append(a)
                rows["prog"].append(info["progress"])
                obs, _, term, _, info = env.step(a)
                rows["succ"].append(info["is_success"])
                if term:
                    break
            rows["obs"].append(obs)
            rows["env"].append(env.privileged_state())
            hold = np.zeros(14, np.float32)
            hold[6] = 1.0
            rows["act"].append(hold)
            rows["prog"].append(info["progress"])
            rows["succ"].append(info["is_success"])
            length = len(rows["obs"])
            frames = {image_key(c): np.stack([o[c] for o in rows["obs"]]) for c in CAMERA_NAMES}
            frames.update(
                {
                    "observation.state": np.stack([o["state"] for o in rows["obs"]]),
                    # zero-padded to a fixed width, as the benchmark's recordings are
                    ENV_STATE_KEY: np.pad(
                        np.stack(rows["env"]), ((0, 0), (0, ENV_STATE_WIDTH - 4))
                    ),
                    "action": np.stack(rows["act"]),
                    "next.reward": np.zeros(length, np.float32),
                    "next.done": np.arange(length) == length - 1,
                    "next.success": np.asarray(rows["succ"], dtype=bool),
                    "act_pri": np.zeros(length, np.int64),
                    "stage": np.zeros(length, np.int64),
                    "progress": np.asarray(rows["prog"], np.float32),
                }
            )
            ok = bool(info["is_success"])
            writer.add_episode(
                Episode(
                    task=INSTRUCTION,
                    env_id="",
                    frames=frames,
                    success=ok,
                    meta={"seed": seed + i, "env_state_dim": ReachEnv.env_state_dim},
                )
            )
    return root


def tiny_vla_config(**overrides: Any) -> TinyVLAConfig:
    base: dict[str, Any] = {
        "chunk_size": 4,
        "image_size": IMAGE,
        "cnn_channels": (4, 8, 8),
        "image_feature_dim": 16,
        "text_dim": FakeText.out_dim,
        "d_model": 32,
        "n_heads": 2,
        "n_layers": 1,
        "ff_dim": 32,
        "flow_hidden": 64,
        "flow_layers": 2,
        "flow_steps": 4,
        "instructions": (INSTRUCTION,),
    }
    base.update(overrides)
    return TinyVLAConfig(**base)


def tiny_bc_config(data: Path, out: Path, **overrides: Any) -> BCConfig:
    """A 12-step BC run of the tiny TinyVLA on ``data``, snapshots at steps 5 and 10."""
    base: dict[str, Any] = {
        "data": (str(data),),
        "out": str(out),
        "steps": 12,
        "batch_size": 8,
        "warmup_steps": 3,
        "save_every": 5,
        "log_every": 2,
        "random_shift": 2,
        "model": tiny_vla_config(),
    }
    base.update(overrides)
    return BCConfig(**base)


def tiny_vla(seed: int = 0, **overrides: Any) -> TinyVLA:
    import torch

    torch.manual_seed(seed)
    return TinyVLA.build(tiny_vla_config(**overrides), FakeText())


def fit_batch(vla: Any, batch: Any, steps: int, lr: float) -> Any:
    """Train ``vla`` on one fixed batch with AdamW; returns the (advanced) flow-time generator."""
    import torch

    opt = torch.optim.AdamW(vla.parameters(), lr=lr, foreach=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = vla.bc_loss(batch, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return gen


def unit_normalization(vla: Any, privileged_state_dim: int = 0) -> None:
    """Zero means and unit spreads for a TinyVLA (and its privileged state, if it reads one)."""
    vla.set_normalization(
        np.zeros(14),
        np.ones(14),
        np.zeros(14),
        np.ones(14),
        privileged_mean=np.zeros(privileged_state_dim) if privileged_state_dim else None,
        privileged_std=np.ones(privileged_state_dim) if privileged_state_dim else None,
    )


def random_observation(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch of ``n`` observations of random camera frames and states (``IMAGE`` px)."""
    rng = np.random.default_rng(seed)
    obs = {c: rng.integers(0, 256, (n, IMAGE, IMAGE, 3), dtype=np.uint8) for c in CAMERA_NAMES}
    obs["state"] = rng.normal(size=(n, 14)).astype(np.float32)
    return obs
