"""Fixtures for the reward-model tests (helpers live in ``reward_helpers``)."""

from __future__ import annotations

import pytest
import torch
from reward_helpers import INSTRUCTIONS, FakeTextEncoder, make_model

from sarm2_gym.reward import SARM2RewardModel
from sarm2_gym.reward.encoders.text import TextEmbeddings, compute_text_embeddings

# Tests share 2 CPU cores with other work; tiny models gain nothing from threads.
torch.set_num_threads(1)


@pytest.fixture
def fake_text() -> FakeTextEncoder:
    return FakeTextEncoder()


@pytest.fixture
def model() -> SARM2RewardModel:
    return make_model().eval()


@pytest.fixture
def text_embeddings() -> TextEmbeddings:
    return compute_text_embeddings(FakeTextEncoder(8), INSTRUCTIONS)
