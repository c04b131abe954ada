"""Policy commands: ``bc`` (TinyVLA BC / RA-BC), ``spiral``, ``ppo`` and ``eval-policy``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from sarm2_gym.cli._app import app

__all__ = ["bc_command", "eval_policy_command", "ppo_command", "spiral_command"]


@app.command("bc")
def bc_command(
    data: list[Path] = typer.Option(..., "--data", help="LeRobot dataset dir (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Output checkpoint folder."),
    rabc: str | None = typer.Option(
        None,
        "--rabc",
        help="RA-BC progress source: a SARM2 reward-model dir, 'sarm_progress' (each dataset's "
        "sarm_progress.parquet) or 'privileged' (oracle ablation). Default: plain BC.",
    ),
    steps: int = typer.Option(10_000, "--steps", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    warmup_steps: int = typer.Option(
        500,
        "--warmup-steps",
        min=0,
        help="Linear learning-rate warm-up before the cosine decay (fine-tuning with --init "
        "may want fewer).",
    ),
    flow_samples: int = typer.Option(
        1, "--flow-samples", min=1, help="Flow-matching (noise, time) pairs per sample."
    ),
    ema_decay: float = typer.Option(
        0.0,
        "--ema-decay",
        help="Export an exponential moving average of the weights with this decay, e.g. 0.999 "
        "(default 0: the last iterate).",
    ),
    random_shift: int = typer.Option(
        4,
        "--random-shift",
        min=0,
        help="Random-shift augmentation of the CNN's frames, in pixels (0: none). Each camera "
        "is shifted on its own, so a fixed camera's absolute positions blur at this scale.",
    ),
    past_end: str = typer.Option(
        "masked",
        "--past-end",
        help="Chunk steps past an episode's end: 'masked' (left out of the loss) or 'hold' "
        "(trained to hold still, as the episode's final row does).",
    ),
    max_episodes: int | None = typer.Option(
        None, "--max-episodes", help="First N episodes per --data dataset."
    ),
    val_episodes: int = typer.Option(
        0,
        "--val-episodes",
        min=0,
        help="Hold out the last N episodes of each --data dataset and log the policy's flow "
        "loss and chunk error on them (and on as many training frames) to TensorBoard and "
        "validation.json (default 0: none).",
    ),
    val_every: int = typer.Option(500, "--val-every", min=1, help="Steps between them."),
    extra_data: list[Path] = typer.Option(
        [],
        "--extra-data",
        help="A dataset used whole, beside --data (repeatable; --max-episodes does not apply), "
        "e.g. a policy's own successful rollouts.",
    ),
    init: Path | None = typer.Option(
        None,
        "--init",
        help="Fine-tune this TinyVLA checkpoint (its architecture and normalisation are kept; "
        "no model options then).",
    ),
    chunk_size: int | None = typer.Option(
        None, "--chunk-size", min=1, help="Actions per chunk (default 10 = 1 s)."
    ),
    image_encoder: str | None = typer.Option(
        None, "--image-encoder", help="cnn (default) or efficientnet_lite0."
    ),
    image_size: int | None = typer.Option(None, "--image-size", help="Encoder input side."),
    n_action_steps: int | None = typer.Option(
        None, "--n-action-steps", min=1, help="Actions executed per chunk (default: all)."
    ),
    past_states: int | None = typer.Option(
        None,
        "--past-states",
        min=0,
        help="Past robot states the policy reads (default 0: none); its envs are then wrapped "
        "in PastStates, as every evaluation here does.",
    ),
    past_state_stride: int | None = typer.Option(
        None, "--past-state-stride", min=1, help="Steps between those past states (default 1)."
    ),
    model_json: str | None = typer.Option(
        None,
        "--model",
        help='TinyVLAConfig fields as JSON, e.g. \'{"d_model": 64, "flow_hidden": 128}\' '
        '(sizes of a smaller network) or \'{"head_cameras": ["top"]}\' (the action head '
        "also reads the top camera's image features directly); an option above that is given "
        "wins.",
    ),
    seed: int = typer.Option(0, "--seed"),
    save_every: int = typer.Option(500, "--save-every", min=1),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    device: str = typer.Option("cpu", "--device", help="Torch device to train on (cpu, cuda)."),
) -> None:
    """Train TinyVLA by behaviour cloning (RA-BC with --rabc); resumable with --resume."""
    from sarm2_gym.algos.common.io import CheckpointError
    from sarm2_gym.algos.vla import BCConfig, TinyVLAConfig, train_bc

    try:
        fields = json.loads(model_json) if model_json else {}
        if not isinstance(fields, dict):
            raise ValueError("--model must be a JSON object of TinyVLAConfig fields")
        given = {
            "chunk_size": chunk_size,
            "image_encoder": image_encoder,
            "image_size": image_size,
            "n_action_steps": n_action_steps,
            "past_states": past_states,
            "past_state_stride": past_state_stride,
        }
        fields.update({k: v for k, v in given.items() if v is not None})
        if fields.get("image_encoder") == "efficientnet_lite0":  # before validation: needs them
            fields.update(image_feature_dim=1280, image_size=fields.get("image_size", 96))
        model = TinyVLAConfig.from_dict(fields)
        config = BCConfig(
            data=tuple(str(p) for p in data),
            out=str(out),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            warmup_steps=warmup_steps,
            flow_samples=flow_samples,
            ema_decay=ema_decay,
            random_shift=random_shift,
            past_end=past_end,
            max_episodes=max_episodes,
            val_episodes=val_episodes,
            val_every=val_every,
            extra_data=tuple(str(p) for p in extra_data),
            init=None if init is None else str(init),
            rabc=rabc,
            seed=seed,
            save_every=save_every,
            device=device,
            model=model,
        )
        path = train_bc(config, resume=resume)
    except (ValueError, CheckpointError, FileNotFoundError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun rank 0 reports
        typer.echo(f"policy written to {path}")


def _labeler(spec: str) -> object:
    from sarm2_gym.algos.spiral import PrivilegedProgressLabeler, RewardModelLabeler

    if spec == "privileged":
        return PrivilegedProgressLabeler()
    if spec == "sarm2":  # the packaged model, as gym.make(..., reward="sarm2") uses
        from sarm2_gym.wrappers.factory import load_reward_model

        return RewardModelLabeler(load_reward_model(None))
    return RewardModelLabeler.from_pretrained(spec)


TASK_HELP = "Gymnasium env id (SARM2-CleanWhiteboard-v0, or any registered env) or task short name."


def resolve_env_id(task: str) -> str:
    """The Gymnasium id of ``--task``: a registered id as given, a benchmark short name resolved.

    Raises:
        typer.BadParameter: Naming the available benchmark tasks, for anything else.
    """
    import gymnasium as gym

    import sarm2_gym.envs  # noqa: F401  (registers the benchmark's envs)
    from sarm2_gym.envs.registry import task_by_id

    if task in gym.registry:
        return task
    try:
        return task_by_id(task).env_id
    except ValueError as exc:
        raise typer.BadParameter(
            f"{exc} (or any registered Gymnasium id)", param_hint="--task"
        ) from exc


@app.command("spiral")
def spiral_command(
    policy: Path = typer.Option(..., "--policy", help="Base TinyVLA checkpoint (from `sarm2 bc`)."),
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    out: Path = typer.Option(..., "--out", help="Run folder (resumed if it holds a run)."),
    timesteps: int = typer.Option(..., "--timesteps", min=1, help="Env-step budget of all rounds."),
    labeler: str = typer.Option(
        ...,
        "--labeler",
        help="Reward model: 'sarm2' (packaged), a SARM2 checkpoint dir, or 'privileged' "
        "(simulator progress: an oracle for ablations, not SARM2).",
    ),
    rollouts_per_round: int = typer.Option(100, "--rollouts-per-round", min=1),
    gradient_steps: int = typer.Option(10_000, "--gradient-steps", min=0),
    alpha: float = typer.Option(
        0.5, "--alpha", help="MC weight: 0.5 SPIRAL, 0 dense-only, 1 sparse-only."
    ),
    latent_temperature: float = typer.Option(
        1.0,
        "--latent-temperature",
        min=0.0,
        help="Scale of every latent SPIRAL draws (rollouts, deployment, updates): z = T * N(0, I).",
    ),
    frozen_image_features: str | None = typer.Option(
        None,
        "--frozen-image-features",
        help="'efficientnet_lite0': the actor and critics also read each camera's frozen "
        "ImageNet-pretrained features (default: the base policy's features only).",
    ),
    frozen_image_size: int = typer.Option(
        64, "--frozen-image-size", min=32, help="Input side of --frozen-image-features (px)."
    ),
    critic_privileged_state: bool = typer.Option(
        False,
        "--critic-privileged-state",
        help="The critics (not the residual actor) also read the simulator's object state: "
        "asymmetric actor-critic, a diagnostic for the benchmark's simulated tasks only.",
    ),
    offline_data: Path | None = typer.Option(
        None, "--offline-data", help="Demos for offline SPIRAL first."
    ),
    offline_episodes: int | None = typer.Option(
        None, "--offline-episodes", min=1, help="Only the first N episodes of --offline-data."
    ),
    n_envs: int = typer.Option(2, "--n-envs", min=1),
    image_size: int | None = typer.Option(
        None,
        "--image-size",
        min=16,
        help="Frame side the envs render at (default: that of the base policy's "
        "demonstrations, else 96).",
    ),
    eval_episodes: int = typer.Option(50, "--eval-episodes", min=1),
    fresh_latents_eval: bool = typer.Option(
        True,
        "--fresh-latents-eval/--fixed-latents-eval-only",
        help="Evaluate every round with fresh latents per chunk (as deployed) as well as with "
        "fixed ones.",
    ),
    adapt_steps: int = typer.Option(
        0,
        "--adapt-steps",
        min=0,
        help="Fine-tune the SARM2 labeller this many steps on the first round's rollouts, "
        "annotated from the simulator's progress, and label with it from then on (0: never).",
    ),
    adapt_demos: Path | None = typer.Option(
        None,
        "--adapt-demos",
        help="Demonstrations mixed into the adaptation, half of every batch (the paper mixes "
        "in its pretraining data); without it the adaptation fits the rollouts alone.",
    ),
    adapt_demo_episodes: int | None = typer.Option(
        None, "--adapt-demo-episodes", min=1, help="Only the first N episodes of --adapt-demos."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run SPIRAL rounds (collect -> label -> update), evaluating after every round; resumable."""
    task = resolve_env_id(task)
    from sarm2_gym.algos.baselines import SPIRALRunConfig, run_spiral
    from sarm2_gym.algos.spiral import SPIRALConfig

    try:
        config = SPIRALRunConfig(
            task=task,
            base_policy=str(policy),
            out=str(out),
            timesteps=timesteps,
            spiral=SPIRALConfig(
                mc_weight=alpha,
                latent_temperature=latent_temperature,
                frozen_image_features=frozen_image_features,
                frozen_image_size=frozen_image_size,
                critic_privileged_state=critic_privileged_state,
                rollouts_per_round=rollouts_per_round,
                gradient_steps=gradient_steps,
            ),
            seed=seed,
            n_envs=n_envs,
            image_size=image_size,
            offline_data=None if offline_data is None else str(offline_data),
            offline_episodes=offline_episodes,
            eval_episodes=eval_episodes,
            eval_stochastic=fresh_latents_eval,
            adapt_steps=adapt_steps,
            adapt_demos=None if adapt_demos is None else str(adapt_demos),
            adapt_demo_episodes=adapt_demo_episodes,
        )
        result = run_spiral(config, _labeler(labeler), progress_bar=True)  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    for point in result.curve:
        steps, rate = point["env_steps"], point["success_rate"]
        fresh = point.get("success_rate_stochastic")
        rates = f"{rate:.2f}" if fresh is None else f"{fresh:.2f} (fixed latents {rate:.2f})"
        typer.echo(f"round {point['round']}: {steps} steps, success {rates}")


@app.command("ppo")
def ppo_command(
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    reward: str = typer.Option(
        "sparse",
        "--reward",
        help="sparse, sarm2, sarm2:<checkpoint dir>, or privileged (the simulator's progress as "
        "dense rewards: an oracle for development runs).",
    ),
    timesteps: int = typer.Option(..., "--timesteps", min=1),
    out: Path = typer.Option(..., "--out"),
    n_envs: int = typer.Option(2, "--n-envs", min=1),
    obs_mode: str = typer.Option(
        "rgb", "--obs-mode", help="rgb (as the VLA) or state (privileged)."
    ),
    image_size: int = typer.Option(64, "--image-size", min=36),
    eval_episodes: int = typer.Option(50, "--eval-episodes", min=1),
    query_every: int | None = typer.Option(
        None,
        "--reward-query-every",
        min=1,
        help="sarm2 rewards: query the reward model every N steps (default: its frame gap; "
        "`sarm2 spiral` labels its rollouts at every frame, 1).",
    ),
    smoothing_window: int | None = typer.Option(
        None,
        "--reward-smoothing-window",
        min=1,
        help="Dense rewards: readings averaged before the progress increase is rewarded "
        "(default 5, as `sarm2 spiral`'s labels).",
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train SB3 PPO with the sparse or the SARM2 dense reward and evaluate it."""
    task = resolve_env_id(task)
    from sarm2_gym.algos.baselines import PPORunConfig, run_ppo

    try:
        config = PPORunConfig(
            task=task,
            out=str(out),
            timesteps=timesteps,
            reward=reward,
            reward_options={
                k: v
                for k, v in (("query_every", query_every), ("smoothing_window", smoothing_window))
                if v is not None
            },
            seed=seed,
            n_envs=n_envs,
            obs_mode=obs_mode,
            image_size=image_size,
            eval_episodes=eval_episodes,
        )
        result = run_ppo(config, progress_bar=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{result.method}: success {result.success_rate:.2f} after {result.env_steps} steps")


@app.command("eval-policy")
def eval_policy_command(
    policy: Path = typer.Option(..., "--policy", help="TinyVLA checkpoint or SPIRAL run folder."),
    task: str = typer.Option(..., "--task", help=TASK_HELP),
    episodes: int = typer.Option(50, "--episodes", min=1),
    image_size: int | None = typer.Option(
        None,
        "--image-size",
        min=16,
        help="Frame side the env renders at (default: that of the policy's demonstrations, "
        "else 96).",
    ),
    n_envs: int = typer.Option(2, "--n-envs", min=1),
    seed: int = typer.Option(0, "--seed", help="Seed of the fresh latents (--latents fresh)."),
    latents: str = typer.Option(
        "fresh",
        "--latents",
        help="'fresh': new latent noise for every chunk, as a flow-matching VLA is deployed; "
        "'fixed': the same noise for every chunk (predict(deterministic=True)).",
    ),
    n_action_steps: int | None = typer.Option(
        None, "--n-action-steps", min=1, help="Actions per chunk (default: the checkpoint's)."
    ),
    max_episode_steps: int | None = typer.Option(
        None, "--max-episode-steps", min=1, help="Override the task's time limit."
    ),
    kappa: int | None = typer.Option(
        None,
        "--kappa",
        min=1,
        help="SPIRAL only: latents per chunk of best-of-kappa (default: the run's; 1: no choice "
        "by the critic).",
    ),
    residual: bool = typer.Option(
        True,
        "--residual/--no-residual",
        help="SPIRAL only: --no-residual executes the base policy's chunks (still chosen by the "
        "critic among --kappa latents).",
    ),
    temperature: float | None = typer.Option(
        None,
        "--latent-temperature",
        min=0.0,
        help="Scale of the latent noise (z = T * N(0, I)); below 1 the flow head samples closer "
        "to its most typical chunk. Default: a SPIRAL run's own, 1 for a TinyVLA.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Also write the whole evaluation here as JSON: per episode its seed, success, "
        "length, final progress, and the last and furthest stage it reached.",
    ),
    videos: Path | None = typer.Option(
        None,
        "--videos",
        help="Also write every episode to this folder as SEED_success.mp4 / SEED_failure.mp4: "
        "the cameras over a bar of the task's progress and current primitive.",
    ),
    videos_of: str = typer.Option(
        "all", "--videos-of", help="With --videos: 'all', 'failures' or 'successes'."
    ),
) -> None:
    """Success rate of a TinyVLA (or a SPIRAL run, best-of-kappa) on the held-out seeds.

    ``--kappa`` and ``--no-residual`` take a SPIRAL policy apart: ``--kappa 1 --no-residual`` is
    its base policy, ``--kappa 1`` the residual without the critic's choice, ``--no-residual``
    the critic's choice among base chunks. ``--latent-temperature`` works for both kinds.
    """
    from sarm2_gym.algos.common.evaluation import VIDEO_EPISODES, Predictor

    task = resolve_env_id(task)
    if latents not in ("fresh", "fixed"):
        raise typer.BadParameter(f"--latents must be 'fresh' or 'fixed', got {latents!r}")
    if videos_of not in VIDEO_EPISODES:
        raise typer.BadParameter(f"--videos-of must be one of {VIDEO_EPISODES}, got {videos_of!r}")
    if out is not None and out.is_dir():  # say so before the evaluation, not after it
        raise typer.BadParameter(f"--out must name a JSON file, {out} is a folder")
    from sarm2_gym.algos.baselines.common import eval_seeds, evaluate_on_task, task_instruction
    from sarm2_gym.algos.common.io import CheckpointError
    from sarm2_gym.algos.spiral import SPIRAL, PrivilegedProgressLabeler
    from sarm2_gym.algos.vla import TinyVLA, VLAController

    is_vla = (policy / "config.json").is_file()
    if is_vla and (kappa is not None or not residual):
        raise typer.BadParameter("--kappa and --no-residual need a SPIRAL run, not a TinyVLA")
    try:  # acting needs no labeller; the oracle one only fills SPIRAL's argument
        vla = TinyVLA.from_pretrained(policy) if is_vla else None
        spiral = None if is_vla else SPIRAL.load(policy, reward_model=PrivilegedProgressLabeler())
    except CheckpointError as exc:
        raise typer.BadParameter(f"--policy: {exc}") from exc
    predictor: Predictor
    if vla is not None:
        predictor = VLAController(
            vla, task_instruction(task, vla), n_action_steps=n_action_steps, seed=seed,
            temperature=1.0 if temperature is None else temperature,
        )  # fmt: skip
    else:
        assert spiral is not None
        spiral.policy.rng.manual_seed(seed)
        spiral.policy.set_deployment(kappa=kappa, residual=residual, temperature=temperature)
        predictor = spiral
    result = evaluate_on_task(
        predictor, task, eval_seeds(episodes), image_size=image_size, n_envs=n_envs,
        max_episode_steps=max_episode_steps, deterministic=latents == "fixed", videos=videos,
        video_episodes=videos_of,
    )  # fmt: skip
    summary = {
        "success_rate": result.success_rate,
        "latents": latents,
        **({"kappa": kappa} if kappa is not None else {}),
        **({} if residual else {"residual": False}),
        **({} if temperature is None else {"latent_temperature": temperature}),
        "steps_per_second": result.steps_per_second,
    }
    typer.echo(json.dumps(summary))
    if out is not None:
        from sarm2_gym.algos.common.io import atomic_write_json

        atomic_write_json(out, {**summary, "policy": str(policy), "task": task, **result.to_dict()})
