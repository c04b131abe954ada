"""Loading a reward model by name and wrapping an env with it (``gym.make(..., reward=...)``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import gymnasium as gym

from sarm2_gym.reward.model import SARM2RewardModel

__all__ = ["PACKAGED_MODEL_DIR", "load_reward_model", "wrap_with_sarm2"]

PACKAGED_MODEL_DIR: Final[Path] = (
    Path(__file__).resolve().parent.parent / "pretrained" / "sarm2_sim"
)
"""The SARM2 model shipped with the package (trained on the simulated benchmark)."""

_CACHE: dict[str, SARM2RewardModel] = {}


def load_reward_model(checkpoint: str | Path | None = None) -> SARM2RewardModel:
    """Load a SARM2 checkpoint directory, or the packaged model when ``checkpoint`` is None.

    Loaded models are cached per path, so many envs share one model.

    Raises:
        FileNotFoundError: If the directory (or the packaged model) does not exist.
    """
    path = Path(checkpoint) if checkpoint is not None else PACKAGED_MODEL_DIR
    if not (path / "config.json").is_file():
        hint = (
            "the packaged SARM2 model is missing from this installation; train one with "
            "`sarm2 train-rm` and pass reward='sarm2:<dir>'"
            if checkpoint is None
            else "expected a directory with config.json and model.safetensors"
        )
        raise FileNotFoundError(f"no SARM2 checkpoint at {path}: {hint}")
    key = str(path.resolve())
    if key not in _CACHE:
        _CACHE[key] = SARM2RewardModel.from_pretrained(path)
    return _CACHE[key]


def wrap_with_sarm2(
    env: gym.Env[Any, Any], checkpoint: str | Path | None = None, **kwargs: Any
) -> gym.Env[Any, Any]:
    """Wrap ``env`` with :class:`~sarm2_gym.wrappers.SARM2Reward` and the given model."""
    from sarm2_gym.wrappers.gym_wrapper import SARM2Reward

    return SARM2Reward(env, load_reward_model(checkpoint), **kwargs)
