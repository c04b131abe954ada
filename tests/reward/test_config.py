from __future__ import annotations

import dataclasses
import json

import pytest

from sarm2_gym.reward.config import BENCHMARK_INSTRUCTIONS, SARM2Config


def test_default_is_cpu_sized_with_paper_structure() -> None:
    cfg = SARM2Config()
    paper = SARM2Config.paper()
    # Same structure: streams, gates, experts, routing, frame layout.
    for name in ("num_gates", "num_experts", "top_k", "n_obs_steps", "max_rewind", "camera_names"):
        assert getattr(cfg, name) == getattr(paper, name), name
    assert len(cfg.expert_hidden) == len(paper.expert_hidden) == 3
    assert cfg.d_model < paper.d_model
    assert cfg.stage_layers < paper.stage_layers and cfg.value_layers < paper.value_layers
    assert cfg.instructions == BENCHMARK_INSTRUCTIONS and cfg.num_tasks == 10
    # The paper's strings in the paper's order (spec §1.2): task_ids index this tuple.
    assert BENCHMARK_INSTRUCTIONS[0] == "pick and place plates into bin"
    assert BENCHMARK_INSTRUCTIONS[1] == "clean whiteboard WITH whiteboard eraser"
    assert BENCHMARK_INSTRUCTIONS[9] == "set dinner table"


def test_paper_sizes() -> None:
    p = SARM2Config.paper()
    assert (p.d_model, p.n_heads, p.ffn_dim, p.dropout) == (512, 8, 2048, 0.1)
    assert (p.stage_layers, p.value_layers) == (4, 6)
    assert (p.num_gates, p.num_experts, p.top_k) == (8, 10, 2)
    assert (p.expert_hidden, p.gate_hidden) == ((256, 256, 256), 256)
    assert (p.lambda_bal, p.lambda_imp, p.lambda_ent, p.alpha_aux) == (2.5, 0.1, 0.5, 0.2)
    assert p.stage_loss_weight == 0.25 and p.group_loss_weight_pretrain == 0.0
    assert (p.stage_lr, p.stage_weight_decay, p.stage_steps) == (2.5e-5, 0.01, 16_000)
    assert (p.value_lr, p.value_weight_decay, p.value_steps) == (5e-5, 5e-3, 30_000)
    assert (p.adam_betas, p.adam_eps, p.batch_size, p.grad_clip) == ((0.9, 0.95), 1e-8, 64, 1.0)
    assert SARM2Config.paper(frame_gap=30).frame_gap == 30


def test_derived_values() -> None:
    cfg = SARM2Config()
    assert cfg.value_seq_len == 7 and cfg.max_seq_len == 10 and cfg.current_index == 6
    assert cfg.history_frames == 30
    assert cfg.num_streams_stage == 4 and cfg.num_streams_value == 6
    assert cfg.image_feature_dim == 1280 and cfg.frozen_encoder
    assert SARM2Config(encoder="cnn", cnn_out_dim=64).image_feature_dim == 64


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"encoder": "resnet"}, "encoder must be one of"),
        ({"text_encoder": "bert"}, "text_encoder must be one of"),
        ({"num_gates": 3}, "num_gates must be one of"),
        ({"top_k": 11}, "top_k must be in"),
        ({"d_model": 130}, "divisible by n_heads"),
        ({"max_rewind": 6}, "max_rewind must be < n_obs_steps"),
        ({"frame_gap": 0}, "frame_gap must be a positive int"),
        ({"dropout": 1.5}, "dropout must be in"),
        ({"encoder": "hf"}, "encoder_name"),
        ({"encoder": "hf", "encoder_name": "x"}, "hf_feature_dim"),
        ({"camera_names": ("top", "top")}, "camera_names"),
        ({"instructions": ()}, "instructions"),
        ({"lambda_bal": -1.0}, "lambda_bal"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else "-".join(map(str, v)),
)
def test_invalid_values_raise(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SARM2Config(**changes)  # type: ignore[arg-type]


def test_frozen_and_json_round_trip() -> None:
    cfg = SARM2Config.paper()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 3  # type: ignore[misc]
    back = SARM2Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    with pytest.raises(ValueError, match="unknown SARM2Config fields"):
        SARM2Config.from_dict({**cfg.to_dict(), "bogus": 1})
