from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sarm2_gym.algos.spiral.adaptation import annotate_rollouts, privileged_annotator
from sarm2_gym.algos.spiral.labeling import RolloutEpisode
from sarm2_gym.reward.adaptation import AdaptationConfig, SARM2Adapter
from sarm2_gym.reward.config import BENCHMARK_INSTRUCTIONS
from sarm2_gym.reward.testing import tiny_model

SIZE = 40
TASK = BENCHMARK_INSTRUCTIONS[1]


def _rollout(final: float, length: int = 24, seed: int = 0) -> RolloutEpisode:
    """A rollout whose privileged progress rises to ``final``, its images as bright as its
    progress (so that a model can read progress off them)."""
    rng = np.random.default_rng(seed)
    progress = np.minimum(np.linspace(0.0, 1.2 * final, length), final)
    images = {}
    for cam in ("top", "left_wrist", "right_wrist"):
        base = (40 + 200 * progress)[:, None, None, None]
        noise = rng.integers(0, 10, (length, SIZE, SIZE, 3))
        images[cam] = np.clip(base + noise, 0, 255).astype(np.uint8)
    state = rng.normal(size=(length, 14)).astype(np.float32)
    return RolloutEpisode(
        task=TASK, state=state, actions=np.zeros((length, 14), np.float32),
        success=final >= 1.0, images=images, progress=progress,
    )  # fmt: skip


def _mse(labeler_model: torch.nn.Module, rollouts: list) -> float:
    errors = []
    for r in rollouts:
        pred = labeler_model.predict_episode(r.episode.images, r.episode.state, TASK)
        errors.append(np.mean((np.asarray(pred.steps_to_go) - (1.0 - r.progress)) ** 2))
    return float(np.mean(errors))


def test_adaptation_fits_the_annotated_progress_and_leaves_rm1_and_the_stage_estimator(
    tmp_path: Path,
) -> None:
    rm1 = tiny_model(image_size=SIZE, seed=0)
    before = {k: v.clone() for k, v in rm1.state_dict().items()}
    rollouts = annotate_rollouts(
        [_rollout(f, seed=i) for i, f in enumerate((1.0, 0.4, 0.7))], privileged_annotator
    )
    adapter = SARM2Adapter(rm1, AdaptationConfig(steps=150, batch_size=16, lr=3e-3), window=1)
    labeler = adapter.adapt(rollouts, tmp_path / "rm2")
    rm2 = labeler.model
    assert _mse(rm2, rollouts) < 0.3 * _mse(rm1, rollouts)
    assert np.mean(adapter.losses[-20:]) < 0.3 * np.mean(adapter.losses[:20])
    # RM1 is untouched; in RM2 only the stage estimator is.
    for k, v in rm1.state_dict().items():
        assert torch.equal(v, before[k]), k
    after = rm2.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("stage."))
    assert not all(torch.equal(after[k], before[k]) for k in before if k.startswith("value."))
    # Saved as a checkpoint: a resumed run gets the same labeller back.
    restored = adapter.restore(tmp_path / "rm2")
    for r in rollouts:
        a, b = labeler.label(r.episode), restored.label(r.episode)
        np.testing.assert_allclose(a.progress, b.progress, atol=1e-6)


def test_adaptation_refuses_rollouts_it_cannot_train_on() -> None:
    adapter = SARM2Adapter(tiny_model(image_size=SIZE), AdaptationConfig(steps=1))
    good = _rollout(0.5)
    with pytest.raises(ValueError, match="no annotated rollouts"):
        adapter.adapt([], None)
    blind = RolloutEpisode(
        task=TASK, state=good.state, actions=good.actions, success=False, progress=good.progress
    )
    with pytest.raises(ValueError, match="rollout 1 has no camera frames"):
        adapter.adapt(annotate_rollouts([good, blind], privileged_annotator), None)
    other = RolloutEpisode(
        task="juggle three oranges", state=good.state, actions=good.actions, success=False,
        images=good.images, progress=good.progress,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"rollout 0: .*juggle three oranges"):
        adapter.adapt(annotate_rollouts([other], privileged_annotator), None)
    small = {c: v[:, :16, :16] for c, v in good.images.items()}
    shrunk = RolloutEpisode(
        task=TASK, state=good.state, actions=good.actions, success=False, images=small,
        progress=good.progress,
    )  # fmt: skip
    with pytest.raises(ValueError, match="rollout 0: camera 'top': images must be 40x40"):
        adapter.adapt(annotate_rollouts([shrunk], privileged_annotator), None)
    with pytest.raises(ValueError, match="steps and batch_size"):
        AdaptationConfig(steps=0)
