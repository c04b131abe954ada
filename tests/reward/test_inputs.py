from __future__ import annotations

import numpy as np
import pytest
from reward_helpers import INSTRUCTIONS, random_episode

from sarm2_gym.reward import SARM2RewardModel


@pytest.fixture
def episode() -> tuple[dict[str, np.ndarray], np.ndarray]:
    return random_episode(6, seed=0)


def test_predict_restores_training_mode(model: SARM2RewardModel, episode) -> None:
    model.train()
    model.predict(*episode, INSTRUCTIONS[0])
    assert model.training


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f, s: ({k: v for k, v in f.items() if k != "left_wrist"}, s), "missing camera"),
        (lambda f, s: ({**f, "top": f["top"][:, :32, :32]}, s), "must be 40x40, got 32x32"),
        (lambda f, s: ({**f, "top": f["top"].astype(np.float32)}, s), "must be uint8"),
        (lambda f, s: ({**f, "top": f["top"][..., 0]}, s), r"\(T, H, W, 3\)"),
        (lambda f, s: ({**f, "top": f["top"][:3]}, s), "different numbers of frames"),
        (lambda f, s: (f, s[:, :7]), r"state must be \(6, 14\)"),
        (
            lambda f, s: (f, np.where(np.arange(6)[:, None] == 4, np.nan, s)),
            r"NaN or inf at frame\(s\) \[4\]",
        ),
    ],
    ids=[
        "missing-camera",
        "wrong-size",
        "wrong-dtype",
        "wrong-rank",
        "unequal-lengths",
        "state-shape",
        "nan-state",
    ],
)
def test_bad_inputs_raise_clear_errors(model: SARM2RewardModel, episode, damage, message) -> None:
    frames, state = damage(*episode)
    with pytest.raises(ValueError, match=message):
        model.predict(frames, state, INSTRUCTIONS[0])


def test_unknown_task_and_adding_it(model: SARM2RewardModel, episode, fake_text) -> None:
    with pytest.raises(ValueError, match=r"unknown task instruction 'stack the cups'.*knows"):
        model.predict(*episode, "stack the cups")
    model.add_instructions(["stack the cups"], fake_text)
    assert model.instructions[-1] == "stack the cups"
    assert model.instruction_embeddings.shape == (3, 8)
    assert 0.0 <= model.predict(*episode, "stack the cups").progress <= 1.0


def test_bad_indices(model: SARM2RewardModel, episode) -> None:
    with pytest.raises(ValueError, match="indices"):
        model.predict_episode(*episode, INSTRUCTIONS[0], indices=[6])
