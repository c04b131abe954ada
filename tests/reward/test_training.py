from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from reward_helpers import (
    FakeFrozenEncoder,
    FakeTextEncoder,
    frozen_config,
    write_synthetic_dataset,
)

from sarm2_gym.reward.kinds import MODEL_KINDS, load_model, model_kind, phases
from sarm2_gym.reward.trainer import TrainOptions, train_reward_model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "train")


def _train(dataset: Path, out: Path, cache: Path, kind: str = "sarm2", **opts: object):
    options = TrainOptions(
        kind=kind,
        cache_dir=str(cache),
        progress=False,
        **{"steps": 12, **opts},  # type: ignore[arg-type]
    )
    return train_reward_model(
        [dataset],
        out,
        frozen_config(),
        options=options,
        resume=out.joinpath("train").exists(),
        image_encoder=FakeFrozenEncoder(),
        text_encoder=FakeTextEncoder(8),
    )


@pytest.mark.parametrize("kind", ["sarm2", "sarm_v1"])
def test_resume_equals_uninterrupted_run(dataset: Path, tmp_path: Path, kind: str) -> None:
    cache = tmp_path / "cache"
    full = _train(dataset, tmp_path / "full", cache, kind, checkpoint_every=5, val_every=5)
    assert full.finished and full.steps == 12
    part = _train(
        dataset, tmp_path / "part", cache, kind, checkpoint_every=5, val_every=5, stop_after=5
    )
    assert not part.finished and part.steps == 5
    torch.manual_seed(1234)  # a resumed run restores the RNG, whatever happened in between
    resumed = _train(dataset, tmp_path / "part", cache, kind, checkpoint_every=5, val_every=5)
    assert resumed.finished and resumed.steps == 12
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert (tmp_path / "full" / "train" / "summary.json").is_file()
    assert list((tmp_path / "full" / "train" / "tb").iterdir())


def test_existing_run_needs_resume(dataset: Path, tmp_path: Path) -> None:
    _train(dataset, tmp_path / "run", tmp_path / "cache", steps=2, checkpoint_every=1)
    with pytest.raises(FileExistsError, match="resume"):
        train_reward_model(
            [dataset],
            tmp_path / "run",
            frozen_config(),
            options=TrainOptions(steps=2, cache_dir=str(tmp_path / "cache"), progress=False),
            image_encoder=FakeFrozenEncoder(),
            text_encoder=FakeTextEncoder(8),
        )


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_kind_trains_saves_and_loads(dataset: Path, tmp_path: Path, kind: str) -> None:
    result = _train(dataset, tmp_path / kind, tmp_path / "cache", kind, steps=6, val_every=3)
    assert result.finished
    assert np.isfinite(result.val["value_mse"])
    loaded = load_model(tmp_path / kind)
    assert model_kind(loaded) == kind
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_phases_split_the_same_budget() -> None:
    cfg = frozen_config()
    for kind in MODEL_KINDS:
        total = sum(p.steps for p in phases(kind, cfg, 100))
        assert total == 100, kind
    names = [p.name for p in phases("sarm2", cfg, 100)]
    assert names == ["stage", "joint"]
    assert [p.name for p in phases("sarm2_no_stage", cfg, 100)] == ["joint"]
    stage = phases("sarm2", cfg, 100)[0]
    assert stage.lr_at(0, 1e-6) == pytest.approx(1e-6)
    assert stage.lr_at(stage.warmup, 1e-6) == pytest.approx(stage.lr)
    assert stage.lr_at(stage.warmup + stage.cosine, 1e-6) == pytest.approx(0.0, abs=1e-12)
