"""Comparison runs with shared budgets: BC, RA-BC, SPIRAL (+ alpha ablations), filtered BC, PPO.

Each runner trains one method on one task with one seed into its own folder, evaluates it on the
held-out seeds (:func:`eval_seeds`) and writes ``result.json``; each can be re-run after being
killed and picks up where it stopped (a finished folder is returned as is).
"""

from __future__ import annotations

from sarm2_gym.algos.baselines.common import (
    EVAL_SEED_START,
    RunResult,
    eval_seeds,
    fresh_latent_seed,
    fresh_latent_success,
    load_result,
)
from sarm2_gym.algos.baselines.filtered_bc import FilteredBCRunConfig, run_filtered_bc
from sarm2_gym.algos.baselines.ppo import PPORunConfig, run_ppo
from sarm2_gym.algos.baselines.runners import (
    SPIRALRunConfig,
    run_bc,
    run_spiral,
    spiral_method_name,
    with_alpha,
)

__all__ = [
    "EVAL_SEED_START",
    "FilteredBCRunConfig",
    "PPORunConfig",
    "RunResult",
    "SPIRALRunConfig",
    "eval_seeds",
    "fresh_latent_seed",
    "fresh_latent_success",
    "load_result",
    "run_bc",
    "run_filtered_bc",
    "run_ppo",
    "run_spiral",
    "spiral_method_name",
    "with_alpha",
]
