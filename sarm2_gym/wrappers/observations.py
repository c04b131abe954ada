"""From an env's observations to the reward model's inputs: camera frames and state.

Our own envs already speak the model's language (``top``/``left_wrist``/``right_wrist`` images
and a 14-d ``state``). For envs we did not write, :class:`ObservationAdapter` maps named
observation keys (or ``env.render()``) to the model's cameras and optionally takes a state key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

__all__ = ["RENDER", "ObservationAdapter"]

RENDER: Final[str] = "render"
"""Use as an observation key to take that camera's frame from ``env.render()``."""


@dataclass(frozen=True)
class ObservationAdapter:
    """Maps observations to ``(frames, state)`` for the reward model.

    Args:
        camera_names: The model's cameras, in its order.
        image_size: The model's square frame size.
        state_dim: The model's state size.
        camera_keys: Model camera -> observation key (or :data:`RENDER`). ``None``: each camera
            is read from the observation key of the same name.
        state_key: Observation key of the proprioceptive state; ``None``: zeros are fed (the
            model then relies on the images alone).
        missing_cameras: What a camera with no key gets: ``"zeros"`` (a black frame) or
            ``"repeat"`` (a copy of the first mapped camera).
        resize: Resize frames of another size to ``image_size`` instead of raising.
    """

    camera_names: tuple[str, ...]
    image_size: int
    state_dim: int
    camera_keys: Mapping[str, str] | None = None
    state_key: str | None = "state"
    missing_cameras: str = "zeros"
    resize: bool = False

    def __post_init__(self) -> None:
        if self.missing_cameras not in ("zeros", "repeat"):
            raise ValueError(
                f"missing_cameras must be 'zeros' or 'repeat', got {self.missing_cameras!r}"
            )
        keys = self.keys
        unknown = [c for c in keys if c not in self.camera_names]
        if unknown:
            raise ValueError(
                f"camera_keys names cameras {unknown} the model does not have {self.camera_names}"
            )
        if not keys:
            raise ValueError(
                "camera_keys maps no camera: the reward model needs at least one image"
            )

    @property
    def keys(self) -> dict[str, str]:
        """Model camera -> observation key, for the cameras that have one."""
        if self.camera_keys is None:
            return {c: c for c in self.camera_names}
        return dict(self.camera_keys)

    @property
    def uses_render(self) -> bool:
        """Whether any camera comes from ``env.render()``."""
        return RENDER in self.keys.values()

    def validate_space(self, observation_space: Any) -> None:
        """Raise a clear error at construction if the observation lacks a configured key."""
        needed = [k for k in self.keys.values() if k != RENDER]
        if self.state_key is not None:
            needed.append(self.state_key)
        if not needed:
            return
        spaces = getattr(observation_space, "spaces", None)
        if spaces is None:
            raise ValueError(
                f"the observation space is {type(observation_space).__name__}, not a Dict; give "
                f"camera_keys={{camera: '{RENDER}'}} and state_key=None to score rendered frames"
            )
        missing = [k for k in needed if k not in spaces]
        if missing:
            raise ValueError(
                f"observation has no keys {missing} (it has {sorted(spaces)}); set camera_keys / "
                "state_key to the keys that hold the images and the state"
            )

    def batch(
        self,
        obs: Mapping[str, np.ndarray],
        num_envs: int,
        rendered: Sequence[np.ndarray] | None = None,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Frames ``camera -> (E, H, W, 3)`` uint8 and state ``(E, state_dim)`` of a batch."""
        frames: dict[str, np.ndarray] = {}
        for cam, key in self.keys.items():
            if key == RENDER:
                if rendered is None:
                    raise ValueError("camera mapped to env.render() but the env rendered nothing")
                images = np.stack([np.asarray(r) for r in rendered])
            else:
                if key not in obs:
                    raise ValueError(
                        f"observation has no key {key!r} for camera {cam!r}; it has {sorted(obs)}"
                    )
                images = np.asarray(obs[key])
            frames[cam] = self._check_images(images, cam, num_envs)
        first = next(iter(frames.values()))
        for cam in self.camera_names:
            if cam not in frames:
                frames[cam] = (
                    first.copy() if self.missing_cameras == "repeat" else np.zeros_like(first)
                )
        state = self._state(obs, num_envs)
        return {c: frames[c] for c in self.camera_names}, state

    def _state(self, obs: Mapping[str, np.ndarray], num_envs: int) -> np.ndarray:
        if self.state_key is None:
            return np.zeros((num_envs, self.state_dim), dtype=np.float32)
        if self.state_key not in obs:
            raise ValueError(
                f"observation has no state key {self.state_key!r}; it has {sorted(obs)}"
            )
        state = np.asarray(obs[self.state_key], dtype=np.float32).reshape(num_envs, -1)
        if state.shape[1] != self.state_dim:
            raise ValueError(
                f"state {self.state_key!r} has {state.shape[1]} values but the model takes "
                f"{self.state_dim}; pass state_key=None to score without state"
            )
        if not np.all(np.isfinite(state)):
            raise ValueError(f"state {self.state_key!r} holds NaN or inf values")
        return state

    def _check_images(self, images: np.ndarray, cam: str, num_envs: int) -> np.ndarray:
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[0] != num_envs or images.shape[-1] != 3:
            raise ValueError(
                f"camera {cam!r}: expected ({num_envs}, H, W, 3) images, got shape {images.shape}"
            )
        if images.dtype != np.uint8:
            raise ValueError(f"camera {cam!r}: images must be uint8 RGB, got dtype {images.dtype}")
        h, w = images.shape[1:3]
        if (h, w) != (self.image_size, self.image_size):
            if not self.resize:
                raise ValueError(
                    f"camera {cam!r}: images are {h}x{w} but the reward model takes "
                    f"{self.image_size}x{self.image_size}; render at that size or pass resize=True"
                )
            images = resize_images(images, self.image_size)
        return images


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of ``(N, H, W, 3)`` uint8 frames to ``(N, size, size, 3)``."""
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
            for im in images
        ]
    )
