from __future__ import annotations

import numpy as np
import pytest
from reward_helpers import CAMERAS, INSTRUCTIONS, make_model, random_episode

from sarm2_gym.reward import PredictionBatch, SARM2RewardModel, StreamingScorer
from sarm2_gym.reward.labels import value_frame_indices


def _assert_same(a: PredictionBatch, b: PredictionBatch) -> None:
    np.testing.assert_allclose(a.steps_to_go, b.steps_to_go, atol=1e-5)
    np.testing.assert_allclose(a.progress, b.progress, atol=1e-5)
    np.testing.assert_allclose(a.primitive_probs, b.primitive_probs, atol=1e-5)
    np.testing.assert_allclose(a.group_probs, b.group_probs, atol=1e-5)
    np.testing.assert_array_equal(a.primitive, b.primitive)


def test_streaming_equals_offline_episode_scoring() -> None:
    model: SARM2RewardModel = make_model().eval()
    length = 23  # > n_obs_steps * frame_gap = 8: covers both layouts and the ring wrap-around
    episodes = [random_episode(length, seed=s) for s in (0, 1)]
    tasks = [INSTRUCTIONS[0], INSTRUCTIONS[1]]
    offline = [model.predict_episode(f, s, t) for (f, s), t in zip(episodes, tasks, strict=True)]
    scorer = StreamingScorer(model, num_envs=2, task=tasks)
    for t in range(length):
        images = {c: np.stack([episodes[e][0][c][t] for e in range(2)]) for c in CAMERAS}
        scorer.push(images, np.stack([episodes[e][1][t] for e in range(2)]))
        online = scorer.score()
        for e in range(2):
            row = PredictionBatch(
                *(getattr(online, k)[e : e + 1] for k in PredictionBatch.__dataclass_fields__)
            )
            ref = PredictionBatch(
                *(getattr(offline[e], k)[t : t + 1] for k in PredictionBatch.__dataclass_fields__)
            )
            _assert_same(row, ref)


def test_reset_starts_a_new_anchor_and_subsets_work() -> None:
    model = make_model().eval()
    first, second = random_episode(12, seed=2), random_episode(9, seed=3)
    scorer = StreamingScorer(model, num_envs=3, task=INSTRUCTIONS[0])
    for t in range(12):  # env 1 only
        scorer.push({c: first[0][c][t : t + 1] for c in CAMERAS}, first[1][t : t + 1], [1])
    scorer.reset([1])
    assert scorer.steps.tolist() == [0, 0, 0]
    for t in range(9):
        scorer.push({c: second[0][c][t : t + 1] for c in CAMERAS}, second[1][t : t + 1], [1])
    ref = model.predict_episode(second[0], second[1], INSTRUCTIONS[0], indices=[8])
    _assert_same(scorer.score([1]), ref)
    with pytest.raises(RuntimeError, match="no frames"):
        scorer.score([0, 1])


def test_push_validates_inputs() -> None:
    model = make_model().eval()
    scorer = StreamingScorer(model, num_envs=2, task=INSTRUCTIONS[0])
    frames, state = random_episode(2, seed=0)
    with pytest.raises(ValueError, match="2 frames per camera for 1 envs"):
        scorer.push(frames, state, [0])
    with pytest.raises(ValueError, match="missing camera"):
        scorer.push({"top": frames["top"]}, state)
    with pytest.raises(ValueError, match="NaN"):
        scorer.push(frames, np.full((2, 14), np.nan, np.float32))
    with pytest.raises(IndexError):
        scorer.reset([2])
    with pytest.raises(ValueError, match="unknown task"):
        StreamingScorer(model, num_envs=1, task="fly to the moon")


def test_predict_batch_equals_single_predictions() -> None:
    model = make_model().eval()
    eps = [random_episode(n, seed=n) for n in (3, 11, 20)]
    tasks = [INSTRUCTIONS[i % 2] for i in range(3)]
    batch = model.predict_batch([f for f, _ in eps], [s for _, s in eps], tasks)
    assert len(batch) == 3
    for i, ((f, s), task) in enumerate(zip(eps, tasks, strict=True)):
        single = model.predict(f, s, task)
        assert batch[i].primitive_name == single.primitive_name
        assert batch[i].progress == pytest.approx(single.progress, abs=1e-5)
        assert single.progress == pytest.approx(1 - single.steps_to_go)
        assert single.primitive_probs.shape == (22,) and single.group_probs.shape == (8,)


def test_lazy_encoding_encodes_only_layout_frames_once() -> None:
    model = make_model().eval()
    cfg = model.config
    length = 41
    frames, state = random_episode(length, seed=5)
    offline = model.predict_episode(frames, state, INSTRUCTIONS[0])
    encoded: list[int] = []
    original = model.encode_images

    def counting(images: np.ndarray) -> object:
        encoded.append(len(images))
        return original(images)

    model.encode_images = counting  # type: ignore[method-assign]
    scorer = StreamingScorer(model, num_envs=1, task=INSTRUCTIONS[0])
    needed: set[int] = set()
    for t in range(length):
        calls = len(encoded)
        scorer.push({c: frames[c][t : t + 1] for c in CAMERAS}, state[t : t + 1])
        assert len(encoded) == calls  # pushing never encodes
        if t % cfg.frame_gap == 0:  # query every frame gap, as the wrappers do
            before = sum(encoded)
            online = scorer.score()
            lay = value_frame_indices(t, n_obs_steps=cfg.n_obs_steps, frame_gap=cfg.frame_gap)
            new = set(lay.tolist()) - needed
            needed |= new
            # Only the layout's frames not seen before are encoded, all cameras in one call.
            assert sum(encoded) - before == len(new) * len(CAMERAS)
            ref = PredictionBatch(
                *(getattr(offline, k)[t : t + 1] for k in PredictionBatch.__dataclass_fields__)
            )
            _assert_same(online, ref)
    assert scorer.frames_encoded == len(needed)
    # Strided queries touch only every frame_gap-th frame once the history is full.
    assert len(needed) < length / cfg.frame_gap + cfg.n_obs_steps + 2
    scorer.score()  # a repeated query encodes nothing new
    assert scorer.frames_encoded == len(needed)
