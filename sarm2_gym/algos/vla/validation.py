"""Held-out measurements of a behaviour-cloning run: does longer training overfit?

BC's training loss keeps falling for as long as it trains; whether the policy still fits
demonstrations it has not seen as well is a separate question.
:class:`BCProbe` is a fixed set of samples with fixed random draws; :func:`bc_metrics` measures
a policy on it:

* ``flow_loss``: the flow-matching BC loss (the training objective), with the probe's own fixed
  noise and flow times, so two measurements differ only by the weights;
* ``chunk_mse``: the mean squared error, in the policy's normalised action units, between the
  chunk the policy samples from a fixed latent per sample and the demonstration's chunk (padded
  steps excluded). It is what deployment executes; drawn from one latent per sample, it mixes
  the spread of the policy's samples with its precision.

Neither predicts success on the env well (``docs/results/bc_held_out.md``: the held-out flow
loss halves from 6,000 to 18,000 steps while the chunk error stays level, and neither orders
policies by success); they show overfitting, they do not replace evaluating the policy.

BC measures the same two numbers on a probe of training frames of the same size, so the gap
between held-out and training values shows overfitting as it opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from sarm2_gym.algos.common.io import CheckpointError, atomic_write_json, read_json
from sarm2_gym.algos.vla.data import DemoData
from sarm2_gym.algos.vla.tiny_vla import TinyVLA

__all__ = ["METRICS", "BCProbe", "ValidationLog", "bc_metrics", "held_out_ranges"]

METRICS: Final[tuple[str, ...]] = ("flow_loss", "chunk_mse")
_BATCH: Final[int] = 128


def held_out_ranges(num_episodes: list[int], n: int) -> list[range]:
    """The last ``n`` episodes of each dataset (training keeps the ``range.start`` before them).

    Args:
        num_episodes: Episodes each dataset holds.
        n: Episodes to hold out per dataset (>= 1).

    Raises:
        ValueError: If ``n`` is below 1 or a dataset holds no more than ``n`` episodes (nothing
            would be left to train on).
    """
    if n < 1:
        raise ValueError(f"held-out episodes must be >= 1, got {n}")
    short = [i for i, count in enumerate(num_episodes) if count <= n]
    if short:
        raise ValueError(
            f"cannot hold out {n} episodes per dataset: dataset(s) {short} hold only "
            f"{[num_episodes[i] for i in short]}, which would leave nothing to train on"
        )
    return [range(count - n, count) for count in num_episodes]


@dataclass(frozen=True)
class BCProbe:
    """A fixed set of samples, measured with the same noise and flow times every time.

    Attributes:
        name: Prefix of the metrics' names (e.g. ``"heldout"``).
        demos: The data the samples come from.
        index: Global frame indices of the samples, ``(N,)``.
        seed: Seed of the probe's noise, flow times and latents.
    """

    name: str
    demos: DemoData
    index: np.ndarray
    seed: int = 0

    @classmethod
    def spread(cls, name: str, demos: DemoData, max_frames: int, seed: int = 0) -> BCProbe:
        """A probe over ``max_frames`` frames spread evenly over ``demos`` (all if fewer).

        Raises:
            ValueError: If ``max_frames`` is below 1.
        """
        if max_frames < 1:
            raise ValueError(f"a probe needs at least one frame, got max_frames={max_frames}")
        n = demos.num_frames
        index = (
            np.arange(n)
            if n <= max_frames
            else np.unique(np.linspace(0, n - 1, max_frames).round().astype(np.int64))
        )
        return cls(name, demos, index, seed)


@torch.no_grad()
def bc_metrics(policy: TinyVLA, probe: BCProbe) -> dict[str, float]:
    """``{"<probe>/flow_loss": ..., "<probe>/chunk_mse": ...}`` of ``policy`` on ``probe``.

    The policy is measured in eval mode and left in the mode it came in. The probe's generator
    is re-seeded on every call, so the draws are the same from one measurement to the next, and
    no other random stream is touched (a run that measures trains exactly as one that does not).
    """
    was_training = policy.training
    policy.eval()
    cfg = policy.config
    generator = torch.Generator().manual_seed(probe.seed)
    sums = dict.fromkeys(METRICS, 0.0)
    steps_total = 0.0
    try:
        for start in range(0, len(probe.index), _BATCH):
            index = probe.index[start : start + _BATCH]
            batch = probe.demos.batch(index, cfg.chunk_size, cfg.past_states, cfg.past_state_stride)
            b = len(index)
            # Encoded once for both measurements (unshifted, so no draw from the generator).
            feats = policy.features_from_inputs(batch.inputs, batch.task_ids.to(policy.device))
            loss = policy.bc_loss(batch, generator=generator, features=feats)
            sums["flow_loss"] += float(loss) * b
            noise = torch.randn((b, cfg.chunk_size, cfg.action_dim), generator=generator)
            sampled = policy.sample_normalized_actions(feats, noise)
            target = policy.chunk_targets(batch)
            valid = (~batch.action_pad.to(policy.device)).to(sampled.dtype)[..., None]
            sums["chunk_mse"] += float((((sampled - target) ** 2) * valid).sum())
            steps_total += float(valid.sum()) * cfg.action_dim
    finally:
        policy.train(was_training)
    return {
        f"{probe.name}/flow_loss": sums["flow_loss"] / len(probe.index),
        f"{probe.name}/chunk_mse": sums["chunk_mse"] / max(steps_total, 1.0),
    }


class ValidationLog:
    """A run's measurements, one row per measured step, rewritten atomically after each.

    A resumed run keeps the rows up to the step its snapshot holds and drops later ones: a
    killed run may have measured after its last snapshot, and the resumed run measures those
    steps again (with the same weights, so with the same numbers).

    Args:
        path: The JSON file (``{"rows": [{"step": ..., "<probe>/<metric>": ...}, ...]}``).
        keep_through: Last step whose rows are kept from an existing file (0: a fresh run,
            which starts an empty log).

    Raises:
        CheckpointError: If an existing file is not such a log.
    """

    def __init__(self, path: str | Path, keep_through: int) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []
        if keep_through and self.path.exists():
            rows = read_json(self.path, "BC validation log").get("rows")
            if not isinstance(rows, list) or not all(
                isinstance(r, dict) and "step" in r for r in rows
            ):
                raise CheckpointError(f"{self.path} is not a BC validation log (no 'rows')")
            self.rows = [r for r in rows if r["step"] <= keep_through]

    def append(self, step: int, metrics: dict[str, float]) -> None:
        """Add the measurements of ``step`` and rewrite the file."""
        self.rows.append({"step": step, **metrics})
        atomic_write_json(self.path, {"rows": self.rows})

    def summary(self, key: str = "heldout/chunk_mse") -> dict[str, Any]:
        """The last row and the row with the lowest ``key`` (``None`` before any row).

        "Best" means lowest ``key`` only: the held-out chunk error did not order CleanWhiteboard
        policies by their success (docs/results/bc_held_out.md), so it is no checkpoint choice.
        """
        if not self.rows:
            return {"last": None, "best_step": None, "best": None}
        best = min(self.rows, key=lambda r: r[key])
        return {"last": self.rows[-1], "best_step": best["step"], "best": best}
