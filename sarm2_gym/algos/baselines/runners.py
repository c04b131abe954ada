"""Resumable comparison runs of BC, RA-BC and SPIRAL (and its alpha ablations) on one task.

Every runner writes into its own output folder and can be re-run after being killed: BC resumes
from its last snapshot, SPIRAL from its last finished round (the per-round evaluations already
recorded in ``curve.json`` are kept), and a folder with ``result.json`` is a finished run that is
returned as is. A benchmark script loops over tasks x methods x seeds calling these.

Evaluation deploys the policy with fixed latents (``deterministic=True``: the same latents for every
chunk) and, where asked, once more with fresh latents per chunk, which is how a flow-matching VLA
runs (``eval_stochastic``); the two can differ by tens of points on 50 seeds.

Budgets: BC and RA-BC use demonstrations only (0 env steps). SPIRAL variants start from the same
BC checkpoint and use ``timesteps`` env steps of rollouts; SB3 PPO (:mod:`.ppo`) gets the same
``timesteps``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
from stable_baselines3.common.env_util import make_vec_env

from sarm2_gym.algos.baselines.common import (
    RunResult,
    eval_seeds,
    evaluate_on_task,
    evaluate_vla,
    fresh_latent_seed,
    load_result,
)
from sarm2_gym.algos.common.io import LATEST_FILE, atomic_write_json, read_json
from sarm2_gym.algos.spiral import SPIRAL, SPIRALConfig
from sarm2_gym.algos.spiral.labeling import RolloutLabeler
from sarm2_gym.algos.spiral.persistence import CHECKPOINT_DIR
from sarm2_gym.algos.vla import BCConfig, TinyVLA, train_bc
from sarm2_gym.algos.vla.checkpoint import read_vla_config
from sarm2_gym.algos.vla.policy import render_size_for, wrap_env_for_policy

if TYPE_CHECKING:
    from sarm2_gym.reward.adaptation import SARM2Adapter

__all__ = [
    "SPIRALRunConfig",
    "run_bc",
    "run_spiral",
    "spiral_method_name",
    "with_alpha",
]


def run_bc(
    config: BCConfig,
    task: str,
    *,
    eval_episodes: int = 50,
    image_size: int | None = None,
    n_eval_envs: int = 2,
    text_encoder: Any = None,
    progress_bar: bool = False,
    max_episode_steps: int | None = None,
    eval_stochastic: bool = False,
    latent_temperature: float = 1.0,
    record: Mapping[str, Any] | None = None,
) -> RunResult:
    """Train (or resume) BC / RA-BC and evaluate the policy on held-out seeds.

    The policy acts as :class:`~sarm2_gym.algos.vla.controller.VLAController` deploys it by
    default (deterministic latents, the checkpoint's ``n_action_steps``). With
    ``eval_stochastic`` it is evaluated a second time with fresh latents per chunk; that result
    goes to ``extra["stochastic_eval"]``. Both evaluations scale the latents by
    ``latent_temperature`` (recorded in ``extra``). ``record``: JSON-able facts the caller
    wants kept in ``extra`` (e.g. which demonstrations); a finished run is returned as it was
    recorded. The evaluation envs render at ``image_size`` (``None``: the side of the
    demonstrations' frames).
    """
    done = load_result(config.out)
    if done is not None:
        return done
    start = time.perf_counter()
    out = train_bc(config, resume=True, text_encoder=text_encoder, progress_bar=progress_bar)
    result, fresh = evaluate_vla(
        TinyVLA.from_pretrained(out), task, config.seed, eval_episodes=eval_episodes,
        image_size=image_size, n_envs=n_eval_envs, max_episode_steps=max_episode_steps,
        fresh_latents=eval_stochastic, latent_temperature=latent_temperature,
    )  # fmt: skip
    extra: dict[str, Any] = {} if fresh is None else {"stochastic_eval": fresh.to_dict()}
    summary = read_json(Path(out) / "bc_summary.json", "BC summary")
    run = RunResult(
        method="rabc" if config.rabc else "bc",
        task=task,
        seed=config.seed,
        env_steps=0,
        demos=int(summary["episodes"]),
        success_rate=result.success_rate,
        wall_seconds=time.perf_counter() - start,
        eval=result.to_dict(),
        extra={
            "bc": summary,
            "rabc": config.rabc,
            "latent_temperature": latent_temperature,
            **extra,
            **(record or {}),
        },
    )
    return run.save(config.out)


@dataclass(frozen=True, slots=True, kw_only=True)
class SPIRALRunConfig:
    """A SPIRAL comparison run.

    Args:
        task: Env id.
        base_policy: TinyVLA checkpoint (the BC policy every variant starts from).
        out: Output folder (``checkpoints/``, ``tb/``, ``curve.json``, ``result.json``).
        timesteps: Env-step budget of all rounds together.
        spiral: SPIRAL hyper-parameters (``mc_weight`` 0 / 1 give the dense-only and sparse-only
            ablations).
        seed: Run seed.
        n_envs: Parallel rollout envs.
        image_size: Camera size of the envs (``None``: the side of the frames the base policy's
            demonstrations were recorded at, else 96).
        offline_data: Demonstrations for an offline phase before the first round (stage 2b).
        offline_steps: Updates of the offline phase (default: the config's ``gradient_steps``).
        offline_episodes: Use only the first this many demonstrations of ``offline_data`` (e.g.
            the ones the base policy was cloned from; ``None``: all).
        eval_episodes: Held-out evaluation episodes after every round.
        n_eval_envs: Envs of the evaluation.
        max_rounds: Stop after this many rounds even if ``timesteps`` is not used up (``None``:
            rounds until the budget is spent).
        eval_round0: Evaluate the policy before the first update (round 0 of the curve). This is
            not the base policy :func:`run_bc` evaluates: before any update SPIRAL executes the
            best of kappa base chunks (each plus a near-zero residual) chosen by its untrained
            critics, a selection that alone can change the success rate.
        max_episode_steps: Override of the task's time limit (rollouts and evaluation).
        eval_stochastic: Evaluate every round a second time with fresh latents per chunk
            (best-of-kappa as in the rollouts), recorded as ``success_rate_stochastic``.
        adapt_steps: Reward-model adaptation (spec §2.1 stage 2a): after the first round, fine-tune
            the SARM2 labeller this many steps on that round's rollouts annotated from the
            simulator's progress (:class:`~sarm2_gym.reward.adaptation.SARM2Adapter`), and label
            every rollout with the result from then on. 0: no adaptation.
        adapt_demos: Pretraining demonstrations mixed into the adaptation (half of every batch,
            as the paper mixes in its pretraining data; ``None``: the rollouts alone).
        adapt_demo_episodes: Use only the first this many demonstrations of ``adapt_demos``
            (``None``: all).
    """

    task: str
    base_policy: str
    out: str
    timesteps: int
    spiral: SPIRALConfig = field(default_factory=SPIRALConfig)
    seed: int = 0
    n_envs: int = 2
    image_size: int | None = None
    offline_data: str | None = None
    offline_steps: int | None = None
    offline_episodes: int | None = None
    eval_episodes: int = 50
    n_eval_envs: int = 2
    max_rounds: int | None = None
    eval_round0: bool = True
    max_episode_steps: int | None = None
    eval_stochastic: bool = False
    adapt_steps: int = 0
    adapt_demos: str | None = None
    adapt_demo_episodes: int | None = None

    def __post_init__(self) -> None:
        if self.adapt_steps < 0:
            raise ValueError(f"adapt_steps must be >= 0, got {self.adapt_steps}")
        if not self.adapt_steps:
            self._refuse_set(
                ("adapt_demos", "adapt_demo_episodes"),
                "with adapt_steps 0: there is no adaptation to mix demonstrations into (set "
                "adapt_steps, or drop the option)",
            )
        elif self.adapt_demos is None:
            self._refuse_set(("adapt_demo_episodes",), "without adapt_demos")
        if self.offline_data is None:
            self._refuse_set(
                ("offline_steps", "offline_episodes"),
                "without offline_data: there is no offline phase to configure (pass the "
                "demonstrations, or drop the option)",
            )

    def _refuse_set(self, names: tuple[str, ...], why: str) -> None:
        """Raise if any of ``names`` is set: they configure something this run does not do."""
        given = [n for n in names if getattr(self, n) is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} set {why}")


RoundCallback = Callable[[dict[str, Any]], None]


def spiral_method_name(
    config: SPIRALConfig, *, offline: bool = False, adapted: bool = False, mixed: bool = False
) -> str:
    """``"spiral"``, or ``"spiral_alpha0"`` / ``"spiral_alpha1"`` for the ablations.

    ``offline`` (a run with an offline phase before its first round) appends ``"_offline"``,
    ``adapted`` (a run that adapts its reward model after the first round) ``"_adapted"``, and
    ``mixed`` (that adaptation mixes in demonstrations) ``"_mixed"`` after it.
    """
    name = "spiral" if config.mc_weight == 0.5 else f"spiral_alpha{config.mc_weight:g}"
    return name + "_offline" * offline + "_adapted" * adapted + "_mixed" * (adapted and mixed)


@contextmanager
def _latents_from(policy: Any, seed: int) -> Iterator[None]:
    """Draw ``policy``'s stochastic deployment latents from a generator seeded with ``seed``.

    The run's own latent stream is put back afterwards, so an evaluation never changes the
    rollouts that follow it (a run resumed after its evaluation equals one that never stopped).
    """
    saved = policy.rng
    policy.rng = torch.Generator().manual_seed(seed)
    try:
        yield
    finally:
        policy.rng = saved


def _reward_adapter(config: SPIRALRunConfig, labeler: RolloutLabeler) -> SARM2Adapter | None:
    """The SARM2 adapter ``config.adapt_steps`` asks for (``None`` for no adaptation)."""
    if not config.adapt_steps:
        return None
    from sarm2_gym.algos.spiral.labeling import RewardModelLabeler
    from sarm2_gym.reward.adaptation import AdaptationConfig, SARM2Adapter, load_demonstrations

    if not isinstance(labeler, RewardModelLabeler):
        raise ValueError(
            f"adapt_steps fine-tunes a SARM2 labeller, not a {type(labeler).__name__}: label "
            "with a SARM2 model, or set adapt_steps to 0"
        )
    return SARM2Adapter(
        labeler.model,
        AdaptationConfig(steps=config.adapt_steps, seed=config.seed),
        frame_gap=labeler.frame_gap,
        window=labeler.window,
        demonstrations=(
            ()
            if config.adapt_demos is None
            else functools.partial(
                load_demonstrations, config.adapt_demos, config.adapt_demo_episodes
            )
        ),
    )


def _wrap_for_spiral(env: gym.Env, vla: Any, spiral: SPIRALConfig) -> gym.Env:
    """``env`` with what the base policy and SPIRAL's critics read (``make_vec_env`` keywords)."""
    return wrap_env_for_policy(env, vla, spiral)


def run_spiral(
    config: SPIRALRunConfig,
    labeler: RolloutLabeler,
    progress_bar: bool = False,
    on_round: RoundCallback | None = None,
) -> RunResult:
    """Run (or resume) SPIRAL round by round, evaluating on held-out seeds after every round.

    Round 0 of the curve (if ``config.eval_round0``) is the success of SPIRAL's policy before
    any update (after the offline phase, if any). ``on_round(point)`` is called after every
    recorded curve point (e.g. to refresh a report while a long run goes on).
    """
    done = load_result(config.out)
    if done is not None:
        return done
    out = Path(config.out)
    curve_path = out / "curve.json"
    state: dict[str, Any] = {"curve": [], "wall_seconds": 0.0}
    if curve_path.is_file():
        state = read_json(curve_path, "curve")
    start = time.perf_counter() - float(state["wall_seconds"])
    base_config = read_vla_config(config.base_policy)
    # Warns where the rollouts would render at another size than the base policy's demos.
    env_kwargs: dict[str, Any] = {"image_size": render_size_for(base_config, config.image_size)}
    if config.max_episode_steps is not None:
        env_kwargs["max_episode_steps"] = config.max_episode_steps
    env = make_vec_env(
        config.task, n_envs=config.n_envs, seed=config.seed, env_kwargs=env_kwargs,
        wrapper_class=functools.partial(_wrap_for_spiral, vla=base_config, spiral=config.spiral),
    )  # fmt: skip
    ckpt = out / CHECKPOINT_DIR
    adapter = _reward_adapter(config, labeler)
    if (ckpt / LATEST_FILE).is_file():
        model = SPIRAL.load(
            ckpt,
            env=env,
            reward_model=labeler,
            checkpoint_dir=ckpt,
            tensorboard_log=str(out / "tb"),
            reward_adapter=adapter,
        )
    else:
        model = SPIRAL(
            config.base_policy, env, labeler, config=config.spiral, seed=config.seed,
            checkpoint_dir=ckpt, tensorboard_log=str(out / "tb"), reward_adapter=adapter,
        )  # fmt: skip
    seeds = eval_seeds(config.eval_episodes)

    def evaluate() -> None:
        if any(p["round"] == model.round for p in state["curve"]):
            return  # evaluated before the run was killed
        eval_start = time.perf_counter()
        res = evaluate_on_task(
            model, config.task, seeds, image_size=config.image_size, n_envs=config.n_eval_envs,
            max_episode_steps=config.max_episode_steps,
        )  # fmt: skip
        rollouts = sum(1 for e in model.replay.episodes if e.get("source") == "rollout")
        successes = sum(
            1 for e in model.replay.episodes if e.get("source") == "rollout" and e.get("success")
        )
        point = {
            "round": model.round,
            "env_steps": model.num_timesteps,
            "rollouts": rollouts,
            "rollout_successes": successes,
            "offline_updates": model.offline_updates,
            "success_rate": res.success_rate,
        }
        # How well the critics predicted this round's own rollouts before training on them.
        last = model.history[-1] if model.history else {}
        if last.get("round") == model.round - 1 and "critic_heldout_spearman" in last:
            point["critic_heldout_spearman"] = last["critic_heldout_spearman"]
        # The latest round's episodes in full (stages included) become the result's ``eval``
        # and ``extra["stochastic_eval"]``, as BC's do; earlier rounds keep their rates only.
        episodes: dict[str, Any] = {"fixed": res.to_dict()}
        if config.eval_stochastic:
            with _latents_from(model.policy, fresh_latent_seed(config.seed)):
                fresh = evaluate_on_task(
                    model, config.task, seeds, image_size=config.image_size,
                    n_envs=config.n_eval_envs, max_episode_steps=config.max_episode_steps,
                    deterministic=False,
                )  # fmt: skip
            point["success_rate_stochastic"] = fresh.success_rate
            episodes["fresh"] = fresh.to_dict()
        state["last_eval"] = episodes
        point["eval_seconds"] = time.perf_counter() - eval_start
        point["wall_seconds"] = time.perf_counter() - start
        state["curve"].append(point)
        state["wall_seconds"] = time.perf_counter() - start
        atomic_write_json(curve_path, state)
        if on_round is not None:
            on_round(point)

    def more_rounds() -> bool:
        if config.max_rounds is not None and model.round >= config.max_rounds:
            return False
        return model.num_timesteps < config.timesteps

    if config.offline_data and model.offline_updates == 0 and model.round == 0:
        model.add_demonstrations(config.offline_data, config.offline_episodes)
        model.learn_offline(config.offline_steps)
    if config.eval_round0 or model.round > 0:
        evaluate()
    name = spiral_method_name(
        config.spiral,
        offline=config.offline_data is not None,
        adapted=config.adapt_steps > 0,
        mixed=config.adapt_demos is not None,
    )
    while more_rounds():
        model.learn(
            config.timesteps - model.num_timesteps, reset_num_timesteps=False, max_rounds=1,
            tb_log_name=name, progress_bar=progress_bar,
        )  # fmt: skip
        state["wall_seconds"] = time.perf_counter() - start
        atomic_write_json(curve_path, state)  # the round's time counts even if killed in eval
        evaluate()
    env.close()
    if not state["curve"]:
        raise ValueError("the run recorded no evaluation (no rounds and eval_round0=False)")
    final = state["curve"][-1]
    # Absent from a run evaluated before whole evaluations were kept (then resumed to its end).
    last_eval = state.get("last_eval", {})
    fresh_episodes = {"stochastic_eval": last_eval["fresh"]} if "fresh" in last_eval else {}
    run = RunResult(
        method=name,
        task=config.task,
        seed=config.seed,
        env_steps=model.num_timesteps,
        demos=sum(1 for e in model.replay.episodes if e.get("source") == "demo"),
        success_rate=float(final["success_rate"]),
        wall_seconds=time.perf_counter() - start,
        curve=list(state["curve"]),
        eval=last_eval.get("fixed", {}),
        extra={"spiral": config.spiral.to_dict(), "history": model.history, **fresh_episodes},
    )
    return run.save(out)


def with_alpha(config: SPIRALRunConfig, alpha: float, out: str) -> SPIRALRunConfig:
    """The same run with ``mc_weight = alpha`` into another folder (the alpha ablations)."""
    return replace(config, spiral=replace(config.spiral, mc_weight=alpha), out=out)
