from __future__ import annotations

import numpy as np
import pytest
import torch
from reward_helpers import feature_batch, make_model, tiny_config

from sarm2_gym.envs.core.primitives import PRIMITIVE_TO_GROUP, primitive_index
from sarm2_gym.reward import RewardBatch, SARM2Config, SARM2RewardModel, build_sample
from sarm2_gym.reward.labels import sample_rewind_steps, steps_to_go


def test_forward_shapes_and_losses() -> None:
    cfg = tiny_config()
    model = make_model(cfg)
    v = cfg.value_seq_len
    batch = feature_batch(cfg, [v, v + 1, v + 2])
    out = model(batch)
    b, t = 3, cfg.max_seq_len
    assert out.steps_to_go is not None and out.routing is not None and out.losses is not None
    assert out.steps_to_go.shape == (b, t)
    assert out.primitive_logits.shape == (b, t, 22) and out.group_logits.shape == (b, t, 8)
    assert out.routing.gate_probs.shape == (b, t, cfg.num_experts)
    assert out.routing.topk_index.shape == (b, t, cfg.top_k)
    assert torch.all((out.steps_to_go > 0) & (out.steps_to_go < 1))
    for name, value in out.losses.as_floats().items():
        assert np.isfinite(value), name
    losses = out.losses
    expected = (
        losses.value
        + cfg.alpha_aux * losses.aux
        + cfg.stage_loss_weight * (losses.primitive + losses.group)
    )
    torch.testing.assert_close(losses.total, expected)
    losses.total.backward()
    assert model.value.first_pos.grad is not None


def test_rewind_positions_repeat_stage_predictions_of_shown_frames() -> None:
    cfg = tiny_config()
    model = make_model(cfg).eval()
    n = cfg.n_obs_steps
    with torch.no_grad():
        out = model(feature_batch(cfg, [cfg.max_seq_len]))
    logits = out.primitive_logits[0]
    for j in range(1, cfg.max_rewind + 1):
        torch.testing.assert_close(logits[n + j], logits[n - j])


def test_gate_is_group_of_predicted_primitive() -> None:
    cfg = tiny_config()
    model = make_model(cfg).eval()
    with torch.no_grad():
        out = model(feature_batch(cfg, [5, 7, 6], targets=False))
    groups = torch.tensor(PRIMITIVE_TO_GROUP)[out.primitive_logits.argmax(-1)]
    assert torch.equal(out.gate_index, groups)
    single = make_model(tiny_config(num_gates=1)).eval()
    with torch.no_grad():
        out1 = single(feature_batch(cfg, [5, 7, 6], targets=False))
    assert torch.all(out1.gate_index == 0)


@pytest.mark.parametrize(("finetune", "grad_expected"), [(True, True), (False, False)])
def test_value_loss_reaches_stage_only_through_soft_embedding(
    finetune: bool, grad_expected: bool
) -> None:
    cfg = tiny_config(finetune_stage=finetune, stage_loss_weight=0.0)
    model = make_model(cfg)
    out = model(feature_batch(cfg, [7, 5]))
    assert out.losses is not None
    out.losses.value.backward()
    grad = model.stage.primitive_head.weight.grad
    assert (grad is not None and bool(grad.abs().sum() > 0)) == grad_expected


def test_stage_only_forward_is_pretraining_loss() -> None:
    cfg = tiny_config(group_loss_weight_pretrain=0.0)
    model = make_model(cfg)
    out = model(feature_batch(cfg, [5, 6]), stage_only=True)
    assert out.steps_to_go is None and out.routing is None and out.losses is not None
    torch.testing.assert_close(out.losses.total, out.losses.primitive)
    out.losses.total.backward()
    assert model.stage.primitive_head.weight.grad is not None
    assert all(p.grad is None for p in model.value.parameters())


def test_images_path_trains_the_cnn() -> None:
    cfg = tiny_config()
    model = make_model(cfg)
    feats = feature_batch(cfg, [6, 5])
    images = {
        c: torch.randint(0, 255, (2, cfg.max_seq_len, 40, 40, 3), dtype=torch.uint8)
        for c in cfg.camera_names
    }
    batch = RewardBatch(
        state=feats.state,
        lengths=feats.lengths,
        task_ids=feats.task_ids,
        images=images,
        primitive_targets=feats.primitive_targets,
        steps_to_go=feats.steps_to_go,
    )
    out = model(batch)
    assert out.losses is not None
    out.losses.total.backward()
    assert model.cnn is not None
    assert model.cnn.conv[0].weight.grad is not None


def test_lengths_shorter_than_layout_rejected() -> None:
    cfg = tiny_config()
    with pytest.raises(ValueError, match="lengths"):
        make_model(cfg)(feature_batch(cfg, [cfg.n_obs_steps]))


def test_paper_sized_model_builds_and_runs() -> None:
    cfg = SARM2Config.paper(
        encoder="cnn", cnn_out_dim=64, text_dim=8, instructions=("a",), dropout=0.0
    )
    model = make_model(cfg).eval()
    assert len(model.stage.transformer.layers) == 4 and len(model.value.transformer.layers) == 6
    assert len(model.value.head.gates) == 8 and len(model.value.head.experts) == 10
    with torch.no_grad():
        out = model(feature_batch(cfg, [10], targets=False))
    assert out.steps_to_go is not None and out.steps_to_go.shape == (1, 10)


def _synthetic_samples(cfg: SARM2Config) -> RewardBatch:
    """Two episodes: features encode progress; first half pick_grab, second half place."""
    rng = np.random.default_rng(0)
    samples = []
    for ep, length in enumerate((30, 40)):
        p = np.linspace(0, 1, length)
        frames = {
            c: (
                np.outer(p, rng.normal(size=cfg.image_feature_dim))
                + 0.05 * rng.normal(size=(length, cfg.image_feature_dim))
            ).astype(np.float32)
            for c in cfg.camera_names
        }
        state = np.outer(p, rng.normal(size=cfg.state_dim)).astype(np.float32)
        act = np.where(p < 0.5, primitive_index("pick_grab"), primitive_index("place"))
        targets = steps_to_go(length)
        for idx in range(0, length, 2):
            r = sample_rewind_steps(
                rng,
                idx,
                n_obs_steps=cfg.n_obs_steps,
                frame_gap=cfg.frame_gap,
                max_rewind=cfg.max_rewind,
                prob=0.8,
            )
            samples.append(
                build_sample(
                    frames,
                    state,
                    idx,
                    config=cfg,
                    task_id=ep,
                    steps_to_go=targets,
                    act_pri=act,
                    rewind_steps=r,
                )
            )
    return RewardBatch.collate(samples)


def test_tiny_model_overfits_tiny_dataset() -> None:
    cfg = tiny_config()
    model = make_model(cfg, seed=3)
    batch = _synthetic_samples(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)

    def fit_loss() -> tuple[torch.Tensor, float]:
        out = model(batch)
        assert out.losses is not None
        return out.losses.total, float((out.losses.value + out.losses.primitive).detach())

    _, initial = fit_loss()
    for _ in range(40):
        opt.zero_grad()
        total, _ = fit_loss()
        total.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        _, final = fit_loss()
    assert final < initial / 10, (initial, final)


def test_build_embeds_instructions_once_and_checks_width() -> None:
    from reward_helpers import FakeTextEncoder

    cfg = tiny_config()
    enc = FakeTextEncoder(cfg.text_dim)
    model = SARM2RewardModel.build(cfg, text_encoder=enc)
    assert enc.calls == 2  # instructions + primitive names, once each
    np.testing.assert_allclose(
        model.primitive_embeddings[primitive_index("place")].numpy(), enc.encode(["place"])[0]
    )
    with pytest.raises(ValueError, match="text_dim"):
        SARM2RewardModel.build(cfg, text_encoder=FakeTextEncoder(5))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"finetune_stage": False},
        {"stage_estimator": False, "num_gates": 1},
        {"num_gates": 1},
        {"value_layers": 1},
    ],
    ids=["sarm2", "hard-primitive", "no-stage", "single-gate", "one-layer"],
)
def test_forward_current_equals_full_forward_at_current_frame(
    overrides: dict[str, object],
) -> None:
    """The inference path (last layer and head at the current frame only) is the same function."""
    cfg = tiny_config(**overrides)
    model = make_model(cfg).eval()
    n = cfg.n_obs_steps
    batch = feature_batch(cfg, [n + 1] * 5, targets=False)
    feats = torch.stack([batch.features[c][:, : n + 1] for c in cfg.camera_names], dim=1)
    state = batch.state[:, : n + 1]
    with torch.no_grad():
        full = model.forward_features(feats, state, batch.lengths, batch.task_ids)
        prim, group, steps = model.forward_current(feats, state, batch.task_ids)
    assert full.steps_to_go is not None
    torch.testing.assert_close(steps, full.steps_to_go[:, n], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(prim, full.primitive_logits[:, n])
    torch.testing.assert_close(group, full.group_logits[:, n])
    with pytest.raises(ValueError, match="n_obs_steps"):
        model.forward_current(feats[:, :, :n], state[:, :n], batch.task_ids)
    with pytest.raises(ValueError, match="eval mode"):
        model.train().forward_current(feats, state, batch.task_ids)
