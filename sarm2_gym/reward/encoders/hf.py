"""Frozen SigLIP / CLIP towers loaded with ``transformers``.

The paper's backbone is ``google/siglip2-base-patch16-224`` through ``SiglipModel`` (spec §1.4).
Both towers come from one model given as an instance or as a local path / hub id. Images are
letterboxed to the vision tower's resolution (``resize_with_pad``, spec §1.4) and normalised with
the model family's statistics (SigLIP: 0.5 / 0.5; CLIP: the OpenAI values); texts are padded to
``max_length`` 64 as the reference does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sarm2_gym.reward.encoders.base import check_images, to_float_nchw

__all__ = ["HFTextEncoder", "HFVisionEncoder", "load_hf_model"]

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_SIGLIP_MEAN = (0.5, 0.5, 0.5)
_SIGLIP_STD = (0.5, 0.5, 0.5)


def load_hf_model(name_or_path: str) -> Any:
    """Load a SigLIP/CLIP model with ``transformers.AutoModel`` (local path or hub id), eval."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(name_or_path)
    model.eval()
    model.requires_grad_(False)
    return model


def _features(out: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor (transformers 4) or an output object (5)."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if not isinstance(pooled, torch.Tensor):
        raise TypeError(f"cannot read features from {type(out).__name__}")
    return pooled


def _family_stats(model: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    model_type = str(getattr(model.config, "model_type", ""))
    if model_type == "siglip2":
        # NaFlex checkpoints need patch masks and shapes; the fixed-resolution SigLIP-2 ones
        # (e.g. google/siglip2-base-patch16-224, the paper's) load as SiglipModel.
        raise ValueError("NaFlex SigLIP-2 models are not supported; use a fixed-resolution one")
    if model_type.startswith("clip"):
        return _CLIP_MEAN, _CLIP_STD
    if model_type.startswith("siglip"):
        return _SIGLIP_MEAN, _SIGLIP_STD
    raise ValueError(f"unsupported model_type {model_type!r}; expected a CLIP or SigLIP model")


class HFVisionEncoder:
    """Frozen image tower of a SigLIP/CLIP model (``get_image_features``).

    Args:
        model: A loaded ``SiglipModel`` / ``CLIPModel`` (or ``AutoModel`` of one), or a local
            path / hub id to load.
        name: Name used in cache keys; defaults to the path or the config's ``_name_or_path``.
    """

    trainable: bool = False

    def __init__(self, model: Any | str, *, name: str | None = None) -> None:
        if isinstance(model, str):
            name = name or model
            model = load_hf_model(model)
        model.eval()
        model.requires_grad_(False)
        self.model = model
        self.name = name or str(getattr(model.config, "_name_or_path", "")) or "hf"
        self.mean, self.std = _family_stats(model)
        self.input_size = int(model.config.vision_config.image_size)
        probe = torch.zeros(1, self.input_size, self.input_size, 3, dtype=torch.uint8)
        self.out_dim = int(self.encode(probe).shape[-1])

    @property
    def cache_key(self) -> str:
        """Encoder + preprocessing name for feature caches."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)
        return f"hf-{safe}-{self.input_size}"

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> HFVisionEncoder:
        """Move the model to ``device``."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encode uint8 ``(N, H, W, 3)`` frames into float32 ``(N, D)`` features."""
        check_images(images)
        x = to_float_nchw(
            images.to(self.device), self.input_size, self.mean, self.std, letterbox=True
        )
        return _features(self.model.get_image_features(pixel_values=x)).float()


class HFTextEncoder:
    """Frozen text tower of a SigLIP/CLIP model (``get_text_features``).

    Args:
        model: A loaded model, or a local path / hub id to load (its tokenizer too).
        tokenizer: The tokenizer; loaded with ``AutoTokenizer`` from ``model`` when it is a path.
        max_length: Padding / truncation length (spec §1.4: 64).
    """

    def __init__(self, model: Any | str, tokenizer: Any | None = None, max_length: int = 64):
        if isinstance(model, str):
            from transformers import AutoTokenizer

            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = load_hf_model(model)
        if tokenizer is None:
            raise ValueError("a tokenizer is required when passing a model instance")
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        limit = int(getattr(model.config.text_config, "max_position_embeddings", max_length))
        self.max_length = min(max_length, limit)
        self.out_dim = int(self.encode(["probe"]).shape[-1])

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed strings into float32 ``(len(texts), D)``."""
        tokens = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        device = next(self.model.parameters()).device
        kwargs = {"input_ids": tokens["input_ids"].to(device)}
        if "attention_mask" in tokens and self.model.config.model_type.startswith("clip"):
            # SigLIP was trained without an attention mask on max-length padding; CLIP uses one.
            kwargs["attention_mask"] = tokens["attention_mask"].to(device)
        out = _features(self.model.get_text_features(**kwargs))
        return out.float().cpu().numpy()
