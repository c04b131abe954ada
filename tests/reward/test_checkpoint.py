from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from reward_helpers import INSTRUCTIONS, make_model, random_episode, tiny_config
from safetensors.numpy import load_file

from sarm2_gym.reward import CheckpointError, SARM2RewardModel
from sarm2_gym.reward.checkpoint import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME


@pytest.fixture
def trained(tmp_path: Path) -> tuple[SARM2RewardModel, Path]:
    model = make_model(tiny_config(), seed=5)
    model.set_state_stats(np.linspace(-1, 1, 14), np.linspace(0.5, 2, 14))
    with torch.no_grad():  # move weights away from init so the round trip is meaningful
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model, model.save_pretrained(tmp_path / "ckpt")


def test_round_trip_gives_identical_outputs(trained: tuple[SARM2RewardModel, Path]) -> None:
    model, path = trained
    loaded = SARM2RewardModel.from_pretrained(path)
    assert loaded.config == model.config and not loaded.training
    frames, state = random_episode(15, seed=0)
    a = model.predict_episode(frames, state, INSTRUCTIONS[1])
    b = loaded.predict_episode(frames, state, INSTRUCTIONS[1])
    np.testing.assert_array_equal(a.steps_to_go, b.steps_to_go)
    np.testing.assert_array_equal(a.primitive_probs, b.primitive_probs)
    torch.testing.assert_close(loaded.state_std, model.state_std, rtol=0, atol=0)


def test_checkpoint_files_hold_text_embeddings_and_versions(
    trained: tuple[SARM2RewardModel, Path],
) -> None:
    model, path = trained
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    meta = json.loads((path / CONFIG_NAME).read_text())
    assert meta["format_version"] == FORMAT_VERSION and "library_version" in meta
    assert meta["config"]["instructions"] == list(INSTRUCTIONS)
    weights = load_file(str(path / WEIGHTS_NAME))
    np.testing.assert_array_equal(
        weights["instruction_embeddings"], model.instruction_embeddings.numpy()
    )
    assert weights["primitive_embeddings"].shape == (22, 8)
    assert "state_mean" in weights and "state_std" in weights
    # Leaves no temporary directories next to the checkpoint.
    assert [p.name for p in path.parent.iterdir()] == ["ckpt"]


def test_overwrite_keeps_other_files(trained: tuple[SARM2RewardModel, Path]) -> None:
    model, path = trained
    (path / "notes.txt").write_text("keep me")
    model.set_state_stats(np.zeros(14), np.full(14, 3.0))
    model.save_pretrained(path)
    assert (path / "notes.txt").read_text() == "keep me"
    assert float(SARM2RewardModel.from_pretrained(path).state_std[0]) == 3.0


def _edit_meta(path: Path, **changes: object) -> None:
    meta = json.loads((path / CONFIG_NAME).read_text())
    for key, value in changes.items():
        if key.startswith("config."):
            meta["config"][key.removeprefix("config.")] = value
        else:
            meta[key] = value
    (path / CONFIG_NAME).write_text(json.dumps(meta))


def test_other_format_version_rejected(trained: tuple[SARM2RewardModel, Path]) -> None:
    _, path = trained
    _edit_meta(path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="format version 2"):
        SARM2RewardModel.from_pretrained(path)


def test_corrupted_weights_rejected(trained: tuple[SARM2RewardModel, Path]) -> None:
    _, path = trained
    raw = bytearray((path / WEIGHTS_NAME).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (path / WEIGHTS_NAME).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        SARM2RewardModel.from_pretrained(path)


def test_truncated_weights_rejected_even_with_matching_checksum(
    trained: tuple[SARM2RewardModel, Path],
) -> None:
    import hashlib

    _, path = trained
    (path / WEIGHTS_NAME).write_bytes((path / WEIGHTS_NAME).read_bytes()[:100])
    _edit_meta(path, weights_sha256=hashlib.sha256((path / WEIGHTS_NAME).read_bytes()).hexdigest())
    with pytest.raises(CheckpointError, match="corrupted"):
        SARM2RewardModel.from_pretrained(path)


def test_config_weights_mismatch_names_tensors(trained: tuple[SARM2RewardModel, Path]) -> None:
    _, path = trained
    _edit_meta(path, **{"config.d_model": 64})
    with pytest.raises(CheckpointError, match=r"does not match its config.*shape mismatches"):
        SARM2RewardModel.from_pretrained(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("delete-config", "no config.json"),
        ("bad-json", "not valid JSON"),
        ("bad-config", "invalid config"),
        ("delete-weights", "no model.safetensors"),
    ],
)
def test_broken_checkpoint_errors(
    trained: tuple[SARM2RewardModel, Path], damage: str, message: str
) -> None:
    _, path = trained
    if damage == "delete-config":
        (path / CONFIG_NAME).unlink()
    elif damage == "bad-json":
        (path / CONFIG_NAME).write_text("{not json")
    elif damage == "bad-config":
        _edit_meta(path, **{"config.encoder": "resnet"})
    else:
        (path / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match=message):
        SARM2RewardModel.from_pretrained(path)


def test_checkpoint_files_get_umask_modes_not_owner_only(tmp_path: Path) -> None:
    import os
    import stat

    from sarm2_gym.algos.common.io import atomic_save_tensors

    old = os.umask(0o022)
    try:
        ckpt = make_model(tiny_config(), seed=0).save_pretrained(tmp_path / "ckpt")
        atomic_save_tensors(tmp_path / "t.safetensors", {"x": torch.zeros(2)})
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(ckpt) == 0o755
    assert mode(ckpt / WEIGHTS_NAME) == 0o644 and mode(ckpt / CONFIG_NAME) == 0o644
    assert mode(tmp_path / "t.safetensors") == 0o644
