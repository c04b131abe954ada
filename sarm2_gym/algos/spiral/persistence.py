"""Saving and restoring a SPIRAL run: safetensors + JSON, never pickle.

A saved run is a directory::

    spiral.json            format/version, config, counters, RNG state, spaces, base-policy class
    policy.safetensors     residual actor, critic ensemble, target critics
    training.safetensors   AdamW moments, torch generator states, the replay buffer
    base/                  the frozen base policy (config.json + model.safetensors)

The base policy is rebuilt by ``<class>.from_pretrained(base/)``; only classes inside this library
are imported from a saved name (pass ``base_policy=`` to :meth:`SPIRAL.load` for others).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import torch
from gymnasium import spaces

from sarm2_gym.algos.common.io import (
    LATEST_FILE,
    CheckpointError,
    atomic_save_tensors,
    atomic_write_json,
    generator_state,
    latest_snapshot,
    load_optimizer_state,
    load_tensors,
    numpy_rng_from_state,
    optimizer_state_tensors,
    read_json,
    set_generator_state,
)

if TYPE_CHECKING:
    from sarm2_gym.algos.spiral.spiral import SPIRAL

__all__ = [
    "ADAPTED_REWARD_MODEL_DIR",
    "CHECKPOINT_DIR",
    "FORMAT",
    "FORMAT_VERSION",
    "STATE_FILE",
    "load_run",
    "resolve_run_dir",
    "save_run",
    "space_from_json",
    "space_to_json",
]

FORMAT: Final[str] = "sarm2-gym/spiral"
FORMAT_VERSION: Final[int] = 1
STATE_FILE: Final[str] = "spiral.json"
# Where a run folder (``sarm2 spiral --out``, ``run_spiral``) keeps its round snapshots.
CHECKPOINT_DIR: Final[str] = "checkpoints"
# Where, beside the round snapshots, the reward model adapted during the run is kept.
ADAPTED_REWARD_MODEL_DIR: Final[str] = "reward_model"
_TRUSTED_PREFIX: Final[str] = "sarm2_gym."


def class_path(obj: Any) -> str:
    """``"module:QualName"`` of an object's class."""
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def import_base_class(path: str) -> Any:
    """Import a base-policy class named in a saved run (library classes only).

    Raises:
        CheckpointError: For a class outside ``sarm2_gym`` or one without ``from_pretrained``.
    """
    module, _, name = path.partition(":")
    if not module.startswith(_TRUSTED_PREFIX):
        raise CheckpointError(
            f"refusing to import base policy class {path!r}; pass base_policy= to load()"
        )
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise CheckpointError(f"cannot import base policy class {path!r}: {exc}") from exc
    if not hasattr(cls, "from_pretrained"):
        raise CheckpointError(f"{path} has no from_pretrained()")
    return cls


def resolve_run_dir(path: str | Path) -> Path:
    """A saved run directory, or the newest snapshot of a checkpoint directory.

    A ``sarm2 spiral --out`` folder (its snapshots in ``checkpoints/``) counts as its checkpoint
    directory.

    Raises:
        CheckpointError: If neither is found, or the format does not match.
    """
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        if not (path / LATEST_FILE).is_file() and (path / CHECKPOINT_DIR).is_dir():
            path = path / CHECKPOINT_DIR
        latest = latest_snapshot(path) if path.is_dir() else None
        if latest is None:
            raise CheckpointError(f"no SPIRAL run in {path} (no {STATE_FILE}, no latest.json)")
        path = latest
    meta = read_json(path / STATE_FILE, "SPIRAL state")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a SPIRAL run (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {meta.get('format_version')}, expected {FORMAT_VERSION}"
        )
    return path


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """JSON description of a ``Box`` or a ``Dict`` of ``Box`` spaces."""
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": space.low.tolist(),
            "high": space.high.tolist(),
        }
    raise CheckpointError(f"cannot save observation/action space {space}")


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    """Inverse of :func:`space_to_json`."""
    if data["type"] == "Dict":
        return spaces.Dict({k: space_from_json(v) for k, v in data["spaces"].items()})
    dtype = np.dtype(data["dtype"])
    low = np.asarray(data["low"], dtype=dtype)
    high = np.asarray(data["high"], dtype=dtype)
    return spaces.Box(low=low, high=high, shape=tuple(data["shape"]), dtype=dtype)


def check_spaces(saved: dict[str, Any], space: spaces.Space, what: str) -> None:
    """Raise :class:`CheckpointError` if an env's space differs from the saved one (shapes)."""
    got = space_to_json(space)

    def shapes(d: dict[str, Any]) -> Any:
        return (
            {k: shapes(v) for k, v in d["spaces"].items()}
            if d["type"] == "Dict"
            else (tuple(d["shape"]), d["dtype"])
        )

    if shapes(got) != shapes(saved):
        raise CheckpointError(
            f"the env's {what} space {shapes(got)} differs from the saved run's {shapes(saved)}"
        )


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def _unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    head = f"{prefix}."
    return {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}


def save_run(model: SPIRAL, directory: Path) -> None:
    """Write every piece of a SPIRAL run into ``directory`` (created if needed)."""
    from sarm2_gym import __version__

    directory.mkdir(parents=True, exist_ok=True)
    p = model.policy
    weights = {
        **_prefixed(p.actor.state_dict(), "actor"),
        **_prefixed(p.critic.state_dict(), "critic"),
        **_prefixed(p.critic_target.state_dict(), "critic_target"),
    }
    atomic_save_tensors(directory / "policy.safetensors", weights, {"format": FORMAT})
    actor_t, actor_m = optimizer_state_tensors(p.actor_optimizer, "actor_optimizer")
    critic_t, critic_m = optimizer_state_tensors(p.critic_optimizer, "critic_optimizer")
    replay_t, replay_m = model.replay.state()
    rngs = {"rng.policy": generator_state(p.rng), "rng.latent": generator_state(model.latent_rng)}
    atomic_save_tensors(
        directory / "training.safetensors", {**actor_t, **critic_t, **replay_t, **rngs}
    )
    model.base_policy.save_pretrained(directory / "base")
    assert model.observation_space is not None and model.action_space is not None
    atomic_write_json(
        directory / STATE_FILE,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "config": model.config.to_dict(),
            "instruction": model.instruction,
            "seed": model.seed,
            "counters": {
                "num_timesteps": model.num_timesteps,
                "round": model.round,
                "n_updates": model._n_updates,
                "episode_num": model._episode_num,
                "offline_updates": model.offline_updates,
                "adapted": model.adapted,
            },
            "history": model.history,
            "numpy_rng": model.update_rng.bit_generator.state,
            "optimizers": {"actor": actor_m, "critic": critic_m},
            "replay": replay_m,
            "observation_space": space_to_json(model.observation_space),
            "action_space": space_to_json(model.action_space),
            "base_class": class_path(model.base_policy),
        },
    )


def load_run(
    cls: type[SPIRAL],
    path: Path,
    env: Any,
    device: str,
    reward_model: Any,
    base_policy: Any = None,
    **kwargs: Any,
) -> SPIRAL:
    """Rebuild a SPIRAL run saved by :func:`save_run` (see :meth:`SPIRAL.load`)."""
    from sarm2_gym.algos.spiral.config import SPIRALConfig

    run_dir = resolve_run_dir(path)
    meta = read_json(run_dir / STATE_FILE, "SPIRAL state")
    base = (
        base_policy
        if base_policy is not None
        else import_base_class(meta["base_class"]).from_pretrained(run_dir / "base")
    )
    model = cls(
        base, env, reward_model, config=SPIRALConfig.from_dict(meta["config"]),
        instruction=meta["instruction"],
        seed=meta["seed"], device=device, _init_setup_model=False, **kwargs,
    )  # fmt: skip
    if env is None:
        model.observation_space = space_from_json(meta["observation_space"])
        model.action_space = space_from_json(meta["action_space"])
    else:
        check_spaces(meta["observation_space"], model.observation_space, "observation")
        check_spaces(meta["action_space"], model.action_space, "action")
    model._setup_model()
    p = model.policy
    weights = load_tensors(run_dir / "policy.safetensors", "SPIRAL weights")
    try:
        p.actor.load_state_dict(_unprefixed(weights, "actor"), strict=True)
        p.critic.load_state_dict(_unprefixed(weights, "critic"), strict=True)
        p.critic_target.load_state_dict(_unprefixed(weights, "critic_target"), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{run_dir}: weights do not match the saved config: {exc}") from exc
    training = load_tensors(run_dir / "training.safetensors", "SPIRAL training state")
    load_optimizer_state(
        p.actor_optimizer, training, meta["optimizers"]["actor"], "actor_optimizer"
    )
    load_optimizer_state(
        p.critic_optimizer, training, meta["optimizers"]["critic"], "critic_optimizer"
    )
    set_generator_state(p.rng, training["rng.policy"])
    set_generator_state(model.latent_rng, training["rng.latent"])
    model.update_rng = numpy_rng_from_state(meta["numpy_rng"])
    model.replay.load_state(training, meta["replay"])
    c = meta["counters"]
    model.num_timesteps, model.round, model._n_updates = (
        int(c["num_timesteps"]),
        int(c["round"]),
        int(c["n_updates"]),
    )
    model._episode_num, model.offline_updates, model.adapted = (
        int(c["episode_num"]),
        int(c["offline_updates"]),
        bool(c["adapted"]),
    )
    model.history = list(meta["history"])
    if model.adapted and model.reward_adapter is not None:
        model.labeler = model.reward_adapter.restore(
            (model.checkpoint_dir or run_dir.parent) / ADAPTED_REWARD_MODEL_DIR
        )
    return model
