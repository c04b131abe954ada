"""A future frame never changes an earlier output (time-major block-causal attention)."""

from __future__ import annotations

import pytest
import torch
from reward_helpers import feature_batch, make_model, tiny_config

from sarm2_gym.reward import RewardBatch, SARM2RewardModel
from sarm2_gym.reward.stage_estimator import StageEstimator
from sarm2_gym.reward.transformer import block_causal_mask


def test_block_causal_mask_structure() -> None:
    mask = block_causal_mask(3, 2, torch.device("cpu"))
    assert mask.shape == (6, 6)
    for q in range(6):
        for k in range(6):
            assert bool(mask[q, k]) == (k // 2 > q // 2)


def _perturb(batch: RewardBatch, pos: int) -> RewardBatch:
    assert batch.features is not None
    feats = {c: v.clone() for c, v in batch.features.items()}
    state = batch.state.clone()
    for v in feats.values():
        v[:, pos] += 3.0 * torch.randn_like(v[:, pos])
    state[:, pos] += 3.0
    return RewardBatch(
        state=state,
        lengths=batch.lengths,
        task_ids=batch.task_ids,
        features=feats,
        primitive_targets=batch.primitive_targets,
        steps_to_go=batch.steps_to_go,
    )


@pytest.mark.parametrize("finetune_stage", [True, False], ids=["soft-prim", "hard-prim"])
def test_future_frame_never_changes_earlier_outputs(finetune_stage: bool) -> None:
    cfg = tiny_config(finetune_stage=finetune_stage)
    model: SARM2RewardModel = make_model(cfg).eval()
    n = cfg.n_obs_steps
    full = cfg.max_seq_len  # anchor + window + max rewind, no padding
    batch = feature_batch(cfg, [full, full, full], seed=1)
    with torch.no_grad():
        ref = model(batch)
        assert ref.steps_to_go is not None
        for pos in range(1, full):
            out = model(_perturb(batch, pos))
            assert out.steps_to_go is not None
            torch.testing.assert_close(out.steps_to_go[:, :pos], ref.steps_to_go[:, :pos])
            torch.testing.assert_close(out.primitive_logits[:, :pos], ref.primitive_logits[:, :pos])
            # The perturbation is visible at its own position (the test can fail).
            assert not torch.allclose(out.steps_to_go[:, pos], ref.steps_to_go[:, pos])
            if pos > n:
                # Rewind frames never reach the current-frame output used as the reward.
                torch.testing.assert_close(out.steps_to_go[:, n], ref.steps_to_go[:, n])


def test_padding_never_changes_valid_outputs() -> None:
    cfg = tiny_config()
    model = make_model(cfg).eval()
    n1 = cfg.value_seq_len
    batch = feature_batch(cfg, [n1, n1 + 1], seed=2)
    with torch.no_grad():
        ref = model(batch)
        out = model(_perturb(batch, cfg.max_seq_len - 1))
    assert ref.steps_to_go is not None and out.steps_to_go is not None
    torch.testing.assert_close(out.steps_to_go[0, :n1], ref.steps_to_go[0, :n1])
    torch.testing.assert_close(out.steps_to_go[1, : n1 + 1], ref.steps_to_go[1, : n1 + 1])
    # Padded positions output sigmoid(0) = 0.5.
    assert torch.all(ref.steps_to_go[0, n1:] == 0.5)


def test_stage_estimator_is_causal_per_position() -> None:
    cfg = tiny_config()
    torch.manual_seed(0)
    stage = StageEstimator(cfg).eval()
    t = cfg.n_obs_steps
    feats = torch.randn(2, cfg.num_cameras, t, cfg.image_feature_dim)
    state = torch.randn(2, t, cfg.state_dim)
    lengths = torch.full((2,), t)
    with torch.no_grad():
        ref = stage(feats, state, lengths)
        for pos in range(1, t):
            f2 = feats.clone()
            f2[:, :, pos] += 5.0
            out = stage(f2, state, lengths)
            torch.testing.assert_close(out.primitive[:, :pos], ref.primitive[:, :pos])
            torch.testing.assert_close(out.group[:, :pos], ref.group[:, :pos])
            assert not torch.allclose(out.primitive[:, pos], ref.primitive[:, pos])
