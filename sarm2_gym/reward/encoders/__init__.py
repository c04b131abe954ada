"""Image and text encoders behind small protocols, and the per-frame feature cache.

Example:
    >>> from sarm2_gym.reward.config import SARM2Config
    >>> build_image_encoder(SARM2Config(encoder="cnn", cnn_out_dim=16)).out_dim
    16
"""

from __future__ import annotations

from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.base import ImageEncoder, TextEncoder
from sarm2_gym.reward.encoders.cache import FeatureCache, encode_frames
from sarm2_gym.reward.encoders.cnn import SmallCNN
from sarm2_gym.reward.encoders.efficientnet import EfficientNetLite0Encoder
from sarm2_gym.reward.encoders.hf import HFTextEncoder, HFVisionEncoder
from sarm2_gym.reward.encoders.text import (
    SentenceTextEncoder,
    TextEmbeddings,
    compute_text_embeddings,
)

__all__ = [
    "EfficientNetLite0Encoder",
    "FeatureCache",
    "HFTextEncoder",
    "HFVisionEncoder",
    "ImageEncoder",
    "SentenceTextEncoder",
    "SmallCNN",
    "TextEmbeddings",
    "TextEncoder",
    "build_image_encoder",
    "build_text_encoder",
    "compute_text_embeddings",
    "encode_frames",
]


def build_image_encoder(config: SARM2Config) -> ImageEncoder:
    """Build the image encoder a config names (frozen ones load their pretrained weights)."""
    if config.encoder == "cnn":
        return SmallCNN(config.image_size, config.cnn_out_dim)
    if config.encoder == "efficientnet_lite0":
        return EfficientNetLite0Encoder(config.encoder_input_size or config.image_size)
    encoder = HFVisionEncoder(config.encoder_name)
    if encoder.out_dim != config.hf_feature_dim:
        raise ValueError(
            f"{config.encoder_name} gives {encoder.out_dim}-d image features but the config "
            f"says hf_feature_dim={config.hf_feature_dim}"
        )
    return encoder


def build_text_encoder(config: SARM2Config) -> TextEncoder:
    """Build the text encoder a config names and check its width against ``text_dim``."""
    encoder: TextEncoder
    if config.text_encoder == "minilm":
        encoder = SentenceTextEncoder()
    else:
        encoder = HFTextEncoder(config.encoder_name)
    if encoder.out_dim != config.text_dim:
        raise ValueError(
            f"text encoder gives {encoder.out_dim}-d embeddings but config.text_dim="
            f"{config.text_dim}"
        )
    return encoder
