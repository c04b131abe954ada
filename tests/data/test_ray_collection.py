"""Recording on a local Ray cluster gives exactly the episodes a single process records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sarm2_gym.data import LeRobotDataset
from sarm2_gym.data.generation import collect

ENV = "SARM2-CleanWhiteboard-v0"


@pytest.fixture()
def local_ray() -> Iterator[None]:
    import ray

    yield
    ray.shutdown()


def test_ray_collection_equals_single_process(tmp_path: Path, local_ray: None) -> None:
    single = collect([ENV], 3, tmp_path / "single", quality="mixed", seed=11, progress=False)
    on_ray = collect(
        [ENV],
        3,
        tmp_path / "ray",
        quality="mixed",
        seed=11,
        progress=False,
        num_workers=2,
        ray_address="local",
    )
    a, b = LeRobotDataset(single), LeRobotDataset(on_ray)
    assert a.num_episodes == b.num_episodes == 3
    for i in range(3):
        ea, eb = a.episode(i), b.episode(i)
        assert ea.meta == eb.meta
        for key in ea.frames:
            np.testing.assert_array_equal(ea.frames[key], eb.frames[key], err_msg=key)
