"""What every comparison run shares: held-out seeds, eval envs, TinyVLA evaluation, result records.

Seed ranges never overlap: demonstrations use reset seeds ``0, 1, ...`` (``sarm2 collect``),
SPIRAL rounds use ``seed * 100_000 + 1_000 * round + env index`` and PPO its own seeded envs, while
evaluation uses :data:`EVAL_SEED_START` onwards, so no method is evaluated on a scene it trained on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import gymnasium as gym

from sarm2_gym.algos.common.evaluation import EvalResult, Predictor, evaluate_success
from sarm2_gym.algos.common.io import atomic_write_json
from sarm2_gym.algos.vla import TinyVLA, VLAController
from sarm2_gym.algos.vla.policy import render_size_for, wrap_env_for_policy

__all__ = [
    "EVAL_SEED_START",
    "RESULT_FILE",
    "RunResult",
    "eval_seeds",
    "evaluate_on_task",
    "evaluate_vla",
    "fresh_latent_seed",
    "fresh_latent_success",
    "load_result",
    "make_task_env",
    "task_instruction",
]

EVAL_SEED_START: Final[int] = 1_000_000
RESULT_FILE: Final[str] = "result.json"
STOCHASTIC_EVAL_SEED: Final[int] = 7_000_000  # + run seed: latents of the fresh-latent evaluations


def fresh_latent_seed(run_seed: int) -> int:
    """Seed of the latent generator a run's fresh-latent evaluations draw from.

    Every fresh-latent evaluation of the run with seed ``run_seed`` (BC, each SPIRAL round, and
    the deployment ablations of its checkpoints) starts from this generator, so the same policy
    deployed the same way gives the same number.
    """
    return STOCHASTIC_EVAL_SEED + run_seed


def eval_seeds(n: int = 50) -> list[int]:
    """The ``n`` held-out evaluation seeds."""
    return list(range(EVAL_SEED_START, EVAL_SEED_START + n))


@dataclass
class RunResult:
    """One method x task x seed run.

    Attributes:
        method: ``"bc"``, ``"rabc"``, ``"spiral"``, ``"spiral_alpha0"``, ``"ppo_sparse"``, ...
        task: Env id.
        seed: Run seed.
        env_steps: Environment steps used for training (evaluation excluded).
        demos: Demonstrations used.
        success_rate: Success on the held-out seeds at the end.
        wall_seconds: Training + evaluation wall-clock of the whole run (all calls).
        curve: Per round/checkpoint ``{"env_steps", "rollouts", "success_rate"}`` (if any).
        eval: The final :class:`EvalResult` as a dict.
        extra: Method-specific details.
    """

    method: str
    task: str
    seed: int
    env_steps: int
    demos: int
    success_rate: float
    wall_seconds: float
    curve: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> RunResult:
        """Write ``out/result.json`` atomically; returns the record as read back (JSON types)."""
        atomic_write_json(Path(out) / RESULT_FILE, asdict(self))
        saved = load_result(out)
        assert saved is not None
        return saved


def fresh_latent_success(result: dict[str, Any]) -> float | None:
    """A finished run's success with fresh latents per chunk (from its ``result.json`` dict).

    BC / RA-BC store it as ``extra["stochastic_eval"]``, SPIRAL on every curve point as
    ``success_rate_stochastic`` (the last point is the final policy; newer runs keep that final
    evaluation as ``extra["stochastic_eval"]`` too). ``None`` where the run did not measure it
    (PPO, or a run without the fresh-latent evaluation).
    """
    if "stochastic_eval" in result.get("extra", {}):
        return float(result["extra"]["stochastic_eval"]["success_rate"])
    curve = result.get("curve") or [{}]
    rate = curve[-1].get("success_rate_stochastic")
    return None if rate is None else float(rate)


def load_result(out: str | Path) -> RunResult | None:
    """The result of a finished run in ``out``, or ``None`` (not finished)."""
    path = Path(out) / RESULT_FILE
    if not path.is_file():
        return None
    return RunResult(**json.loads(path.read_text()))


def make_task_env(
    task: str,
    policy: Any,
    image_size: int | None = None,
    obs_mode: str = "rgb",
    max_episode_steps: int | None = None,
) -> gym.Env:
    """One env of ``task`` as the comparison runs use it, holding what ``policy`` reads.

    ``gym.make(task)`` at ``image_size`` (its time limit overridden if given), wrapped by
    :func:`~sarm2_gym.algos.vla.policy.wrap_env_for_policy`. ``image_size=None``: the side of
    the frames the policy was cloned from (:func:`~sarm2_gym.algos.vla.policy.render_size_for`,
    which also warns when a given side differs from it).
    """
    size = render_size_for(policy, image_size)
    kwargs: dict[str, Any] = {"obs_mode": obs_mode, "image_size": size}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return wrap_env_for_policy(gym.make(task, **kwargs), policy)


def evaluate_on_task(
    predictor: Predictor,
    task: str,
    seeds: list[int],
    *,
    image_size: int | None = None,
    obs_mode: str = "rgb",
    n_envs: int = 2,
    max_episode_steps: int | None = None,
    deterministic: bool = True,
    videos: str | Path | None = None,
    video_episodes: str = "all",
) -> EvalResult:
    """Success of ``predictor`` on ``task`` from the given reset seeds (sparse-reward env).

    ``deterministic`` is passed to ``predict``: for the chunk policies here ``True`` draws the
    same latents for every chunk, ``False`` fresh ones (as a flow-matching VLA is deployed).
    ``videos``: a folder for one video per episode, or per ``video_episodes`` (``"failures"``,
    ``"successes"``; see :func:`evaluate_success`). The envs give the observations the
    predictor's policy reads (e.g. past states; see
    :func:`~sarm2_gym.algos.vla.policy.wrap_env_for_policy`) at ``image_size`` (``None``: the
    side of the frames its policy was cloned from; see :func:`make_task_env`).
    """
    return evaluate_success(
        predictor,
        lambda: make_task_env(task, predictor, image_size, obs_mode, max_episode_steps),
        seeds,
        n_envs=n_envs,
        deterministic=deterministic,
        videos=videos,
        video_episodes=video_episodes,
    )


def evaluate_vla(
    policy: TinyVLA,
    task: str,
    run_seed: int,
    *,
    eval_episodes: int = 50,
    image_size: int | None = None,
    n_envs: int = 2,
    max_episode_steps: int | None = None,
    fresh_latents: bool = False,
    latent_temperature: float = 1.0,
) -> tuple[EvalResult, EvalResult | None]:
    """A TinyVLA on the held-out seeds with fixed latents and, if asked, fresh ones per chunk.

    The fresh-latent evaluation draws from :func:`fresh_latent_seed` of ``run_seed``, so every
    evaluation of the same policy by a run with that seed gives the same number. The envs render
    at ``image_size`` (``None``: as :func:`make_task_env` chooses).

    Returns:
        ``(fixed, fresh)``; ``fresh`` is ``None`` unless ``fresh_latents``.
    """
    instruction = task_instruction(task, policy)
    seeds = eval_seeds(eval_episodes)
    env: dict[str, Any] = {
        "image_size": image_size, "n_envs": n_envs, "max_episode_steps": max_episode_steps
    }  # fmt: skip
    controller = VLAController(policy, instruction, seed=run_seed, temperature=latent_temperature)
    fixed = evaluate_on_task(controller, task, seeds, **env)
    if not fresh_latents:
        return fixed, None
    sampler = VLAController(
        policy, instruction, seed=fresh_latent_seed(run_seed), temperature=latent_temperature
    )
    return fixed, evaluate_on_task(sampler, task, seeds, deterministic=False, **env)


def task_instruction(task: str, policy: TinyVLA) -> str:
    """The instruction of ``task``: the policy's only one, else read from the env."""
    if len(policy.instructions) == 1:
        return policy.instructions[0]
    env = gym.make(task, obs_mode="state")
    try:
        return str(env.unwrapped.instruction)  # type: ignore[attr-defined]
    finally:
        env.close()
