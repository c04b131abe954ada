"""Running picklable jobs on Ray actors, results in submission order (``[distributed]`` extra).

Ray is optional: nothing here imports it until a pool is started. Each actor keeps its own state
between jobs (e.g. the envs it built), so per-job setup is paid once per actor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["init_ray", "ray_map"]

J = TypeVar("J")
R = TypeVar("R")


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to a Ray cluster (``address``) or start a local one (``"local"`` / ``None``).

    Raises:
        ImportError: With the install hint when Ray is missing.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('Ray is not installed: pip install "sarm2-gym[distributed]"') from exc
    if ray.is_initialized():
        return
    if address in (None, "local"):
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


class _Worker:
    """A Ray actor that applies one function to jobs; module-level state survives across jobs."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def run(self, job: Any) -> Any:
        return self.fn(job)


def ray_map(
    fn: Callable[[J], R], jobs: Iterable[J], num_workers: int, address: str | None = None
) -> Iterator[R]:
    """Apply ``fn`` to ``jobs`` on ``num_workers`` Ray actors, yielding results in job order.

    Args:
        fn: A module-level (importable) function.
        jobs: Picklable job descriptions.
        num_workers: Actors to start (one CPU each).
        address: Ray cluster address; ``None`` or ``"local"`` starts a local cluster.
    """
    import ray
    from ray.util import ActorPool

    init_ray(address)
    actor_cls = ray.remote(num_cpus=1)(_Worker)
    actors = [actor_cls.remote(fn) for _ in range(num_workers)]
    try:
        pool = ActorPool(actors)
        yield from pool.map(lambda actor, job: actor.run.remote(job), list(jobs))
    finally:
        for actor in actors:
            ray.kill(actor)  # type: ignore[arg-type]
