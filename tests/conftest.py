from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import sarm2_gym  # noqa: F401  (selects the headless GL backend before mujoco loads)


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)
