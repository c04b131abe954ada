from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import record_demos, register_reach


@pytest.fixture(scope="session")
def reach_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six expert episodes of the fake reaching task, as a LeRobot dataset."""
    register_reach()
    return record_demos(tmp_path_factory.mktemp("demos") / "reach", 6)


@pytest.fixture(autouse=True)
def _registered() -> None:
    register_reach()
