from __future__ import annotations

import os
from collections.abc import Callable

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


def _said(output: str) -> str:
    return " ".join(output.replace("│", " ").split())


@pytest.fixture
def said() -> Callable[[str], str]:
    """What a CLI said, with rich's error box and line wrapping taken out.

    Rich wraps an error inside its box at the terminal's width, so a message that names a long
    temporary path can break anywhere; tests look for phrases in this form instead.
    """
    return _said
