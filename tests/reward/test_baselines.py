from __future__ import annotations

import numpy as np
import pytest
import torch
from reward_helpers import FakeTextEncoder, feature_batch, frozen_config

from sarm2_gym.reward.baselines import (
    ReWiNDModel,
    SARMv1Model,
    build_baseline,
    load_baseline,
    sarm_v1_frame_labels,
    save_baseline,
)
from sarm2_gym.reward.checkpoint import CheckpointError
from sarm2_gym.reward.encoders.text import compute_text_embeddings


def _text(cfg):
    return compute_text_embeddings(FakeTextEncoder(cfg.text_dim), cfg.instructions)


def _overfit(model, loss_fn, steps: int = 50) -> tuple[float, float]:
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    first = last = 0.0
    for i in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if i == 0 else first
        last = float(loss.detach())
    return first, last


def test_rewind_forward_shapes_and_overfits() -> None:
    torch.manual_seed(0)
    cfg = frozen_config()
    model = ReWiNDModel(cfg, _text(cfg))
    b = feature_batch(cfg, [5, 7, 8, 5], seed=1)
    feats = model.batch_features(b)
    out = model.forward_features(feats, b.state, b.lengths, b.task_ids, b.steps_to_go)
    assert out.steps_to_go.shape == (4, cfg.max_seq_len) and out.stage is None
    assert ((out.steps_to_go >= 0) & (out.steps_to_go <= 1)).all()
    first, last = _overfit(
        model,
        lambda: model.forward_features(feats, b.state, b.lengths, b.task_ids, b.steps_to_go).losses[
            "total"
        ],
    )
    assert last < first / 10


def test_sarm_v1_forward_progress_formula_and_overfits() -> None:
    torch.manual_seed(0)
    cfg = frozen_config()
    model = SARMv1Model(cfg, _text(cfg), {0: [0.25, 0.75], 1: [0.5, 0.3, 0.2]})
    b = feature_batch(cfg, [5, 8, 6, 5], seed=2)
    b.task_ids[:] = torch.tensor([0, 1, 1, 0])
    feats = model.batch_features(b)
    gen = torch.Generator().manual_seed(0)
    stage = torch.randint(0, 2, b.state.shape[:2], generator=gen)
    tau = torch.rand(b.state.shape[:2], generator=gen)
    out = model.forward_features(feats, b.state, b.lengths, b.task_ids)
    assert out.stage is not None and out.stage.shape == (4, cfg.max_seq_len)
    sub = model.task_model(0)
    assert float(sub.progress(torch.tensor(1), torch.tensor(0.5))) == pytest.approx(0.25 + 0.375)
    first, last = _overfit(
        model,
        lambda: model.forward_features(feats, b.state, b.lengths, b.task_ids, stage, tau).losses[
            "total"
        ],
        steps=60,
    )
    assert last < first / 10
    with pytest.raises(ValueError, match="no SARM v1 model"):
        model.task_model(5)


def test_sarm_v1_labels_from_stage_column() -> None:
    # Two episodes of a 2-stage task: stage 0 for 40 % / 60 % of the frames.
    stage = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1, 1])
    progress = np.array([0.0, 0.2, 0.4, 0.7, 1.0, 0.0, 0.1, 0.2, 0.4, 1.0], np.float32)
    st, tau, alpha = sarm_v1_frame_labels(stage, progress, [(0, 5, True), (5, 5, True)])
    assert alpha == pytest.approx([0.5, 0.5])  # mean of (2/5, 3/5) and (3/5, 2/5)
    np.testing.assert_array_equal(st, stage)
    # tau from privileged progress within the stage: stage 0 spans [0, 0.4), stage 1 [0.4, 1].
    np.testing.assert_allclose(tau[:5], [0.0, 0.5, 0.0, 0.5, 1.0], atol=1e-6)
    _, tau_lin, _ = sarm_v1_frame_labels(stage, progress, [(0, 5, True)], target="linear")
    np.testing.assert_allclose(tau_lin[:5], [0.0, 1.0, 0.0, 0.5, 1.0])


def test_baseline_checkpoint_round_trip_and_corruption(tmp_path) -> None:
    cfg = frozen_config()
    model = build_baseline("sarm_v1", cfg, _text(cfg), {"proportions": {"1": [0.4, 0.6]}})
    path = save_baseline(model, tmp_path / "ckpt")
    loaded = load_baseline(path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="does not match"):
        load_baseline(path)


def test_baseline_checkpoint_gets_umask_modes(tmp_path) -> None:
    import os
    import stat

    cfg = frozen_config()
    model = build_baseline("rewind", cfg, _text(cfg), {})
    old = os.umask(0o022)
    try:
        path = save_baseline(model, tmp_path / "ckpt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert stat.S_IMODE((path / "model.safetensors").stat().st_mode) == 0o644
