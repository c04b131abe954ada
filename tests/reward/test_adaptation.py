from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from reward_helpers import INSTRUCTIONS, synthetic_episode, write_synthetic_dataset

from sarm2_gym.algos.spiral.adaptation import annotate_rollouts, privileged_annotator
from sarm2_gym.algos.spiral.labeling import RolloutEpisode
from sarm2_gym.reward.adaptation import AdaptationConfig, SARM2Adapter, load_demonstrations
from sarm2_gym.reward.config import BENCHMARK_INSTRUCTIONS
from sarm2_gym.reward.testing import tiny_model

SIZE = 40
TASK = BENCHMARK_INSTRUCTIONS[1]
OTHER_TASK = BENCHMARK_INSTRUCTIONS[2]


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


def _demo(length: int, seed: int) -> RolloutEpisode:
    """A demonstration of another task whose frames darken as it goes, without a progress
    column (so the adapter falls back to the linear label)."""
    ep = _rollout(1.0, length=length, seed=seed)
    images = {c: (255 - v).astype(np.uint8) for c, v in ep.images.items()}
    return RolloutEpisode(
        task=OTHER_TASK, state=ep.state, actions=ep.actions, success=True, images=images
    )


def _demo_mse(model: torch.nn.Module, demos: list[RolloutEpisode]) -> float:
    errors = []
    for d in demos:
        pred = model.predict_episode(d.images, d.state, OTHER_TASK)
        linear = np.linspace(0.0, 1.0, len(d.state))
        errors.append(np.mean((np.asarray(pred.steps_to_go) - (1.0 - linear)) ** 2))
    return float(np.mean(errors))


def test_adaptation_mixes_demonstrations_into_every_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Half of every batch comes from the demonstrations (their linear label where they carry
    no progress): the adapted model fits them, unlike one adapted on the rollouts alone."""
    rm1 = tiny_model(image_size=SIZE, seed=0)
    rollouts = annotate_rollouts(
        [_rollout(f, seed=i) for i, f in enumerate((1.0, 0.4, 0.7))], privileged_annotator
    )
    demos = [_demo(20, seed=10 + i) for i in range(3)]
    config = AdaptationConfig(steps=150, batch_size=16, lr=3e-3, demo_fraction=0.25)
    import sarm2_gym.reward.adaptation as adaptation

    drawn: list[int] = []  # task id of every frame drawn
    build = adaptation.build_sample

    def counting(*args: object, **kwargs: object) -> object:
        drawn.append(int(kwargs["task_id"]))  # type: ignore[call-overload]
        return build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(adaptation, "build_sample", counting)
    mixed = SARM2Adapter(rm1, config, window=1, demonstrations=demos).adapt(rollouts, None)
    other = rm1.task_id(OTHER_TASK)
    per_batch = np.array(drawn).reshape(150, 16) == other
    assert config.demo_frames == 4 and (per_batch.sum(axis=1) == 4).all()
    monkeypatch.setattr(adaptation, "build_sample", build)
    alone = SARM2Adapter(rm1, config, window=1).adapt(rollouts, None)
    assert _demo_mse(mixed.model, demos) < 0.5 * _demo_mse(alone.model, demos)
    assert _mse(mixed.model, rollouts) < 0.3 * _mse(rm1, rollouts)  # the rollouts still fit


def test_adaptation_names_the_demonstration_it_cannot_train_on() -> None:
    demo = _demo(12, seed=0)
    small = RolloutEpisode(
        task=OTHER_TASK, state=demo.state, actions=demo.actions, success=True,
        images={c: v[:, :16, :16] for c, v in demo.images.items()},
    )  # fmt: skip
    adapter = SARM2Adapter(
        tiny_model(image_size=SIZE), AdaptationConfig(steps=1), demonstrations=[demo, small]
    )
    rollouts = annotate_rollouts([_rollout(0.5)], privileged_annotator)
    with pytest.raises(ValueError, match="demonstration 1: camera 'top': images must be 40x40"):
        adapter.adapt(rollouts, None)
    with pytest.raises(ValueError, match=r"demo_fraction must be in \[0, 1\)"):
        AdaptationConfig(demo_fraction=1.0)


def test_load_demonstrations_keeps_progress_and_the_first_episodes(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "ds", episodes=4)
    demos = load_demonstrations(root, max_episodes=3)
    assert len(demos) == 3
    assert [d.meta["dataset_episode"] for d in demos] == [0, 1, 2]
    assert all(d.images is not None and d.progress is not None for d in demos)
    assert all(d.progress.shape == (len(d.state),) for d in demos)  # type: ignore[union-attr]
    # A real robot's episode: its progress column is a placeholder, not a target.
    from sarm2_gym.data import LeRobotDatasetWriter

    real = synthetic_episode(20, seed=1, task=INSTRUCTIONS[0])
    real.meta["privileged_progress"] = False
    with LeRobotDatasetWriter(tmp_path / "real", fps=10) as writer:
        writer.add_episode(real, task_index=0)
    (loaded,) = load_demonstrations(tmp_path / "real")
    assert loaded.progress is None and loaded.meta["dataset_episode"] == 0
    with pytest.raises(ValueError, match="max_episodes must be >= 1"):
        load_demonstrations(root, max_episodes=0)
