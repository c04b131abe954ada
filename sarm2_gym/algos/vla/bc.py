"""Behaviour cloning (and RA-BC) of TinyVLA, resumable bit-for-bit.

Output folder layout (``--out CKPT``)::

    CKPT/config.json, CKPT/model.safetensors   the trained policy (TinyVLA.from_pretrained); with
                                               ``ema_decay`` > 0, the EMA of its weights
    CKPT/train_state/step_XXXXXXXX/            resume snapshots: weights (and their EMA), AdamW
                                               state, RNG states
    CKPT/train_state/latest.json               points at the newest complete snapshot
    CKPT/tb/                                   TensorBoard events
    CKPT/bc_summary.json                       steps, final loss, wall-clock, steps/s
    CKPT/validation.json                       with ``val_episodes`` > 0: held-out and training
                                               probe metrics every ``val_every`` steps

A snapshot holds everything the next step depends on: model weights, optimizer moments, the
numpy generator that draws sample indices, the torch generator that draws flow noise, flow
times and image shifts, and the weights' moving average when one is kept. ``resume=True``
restores them, so a run killed at any point and resumed ends with exactly the weights of an
uninterrupted run.

Data parallel (``torch.distributed``, DDP, gloo on CPU): launched by ``torchrun``, e.g.
``torchrun --nproc_per_node 2 -m sarm2_gym.cli bc --data ... --out ...``, every rank runs this
loop. Every rank draws the same *global* batch of ``batch_size`` indices (same numpy generator)
and trains on its shard; losses are scaled so that DDP's gradient mean is the gradient of the
global batch's loss (RA-BC: the weighted mean uses the global batch's weight sum). Each rank has
its own torch generator (flow noise, times, image shifts; rank 0's is the single-process one), so
a 2-rank run draws other noise than one process and its loss curve agrees only statistically
(``tests/scaling/test_bc_ddp.py`` states the tolerance). Rank 0 alone writes TensorBoard (losses
averaged over ranks), snapshots (with every rank's generator, so a resumed run with the same
number of ranks continues bit for bit) and the policy.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from sarm2_gym.algos.common.io import (
    CheckpointError,
    atomic_save_tensors,
    atomic_write_json,
    generator_state,
    latest_snapshot,
    load_optimizer_state,
    load_tensors,
    numpy_rng_from_state,
    optimizer_state_tensors,
    read_json,
    set_generator_state,
    write_snapshot,
)
from sarm2_gym.algos.vla.checkpoint import read_vla_config
from sarm2_gym.algos.vla.config import TinyVLAConfig
from sarm2_gym.algos.vla.data import DemoData, load_demos
from sarm2_gym.algos.vla.ema import WeightEMA
from sarm2_gym.algos.vla.rabc import DEFAULT_KAPPA, rabc_weights
from sarm2_gym.algos.vla.targets import limits_to_tuple
from sarm2_gym.algos.vla.tiny_vla import TinyVLA
from sarm2_gym.algos.vla.validation import BCProbe, ValidationLog, bc_metrics, held_out_ranges
from sarm2_gym.common.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    distributed_session,
    gather_objects,
    main_first,
    shard,
    shard_weight,
    wrap_ddp,
)
from sarm2_gym.data.reader import LeRobotDataset

__all__ = ["PAST_END_MODES", "BCConfig", "train_bc"]

PAST_END_MODES = ("masked", "hold")

StepCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class BCConfig:
    """Behaviour-cloning run.

    Defaults: measured on the benchmark's CleanWhiteboard demos (default TinyVLA, 2 shared CPU
    cores), 400 steps at lr 3e-4 barely move the chunk error while 1,200 steps at 1e-3 with
    batch 64 cut it to a third of the mean-action error on a 3-episode subset; a from-scratch
    flow-matching policy needs ~10k such steps (about 30-40 min at ~5 steps/s with batch 64).

    Args:
        data: LeRobot dataset directories.
        out: Output folder (see the module docstring).
        steps: Optimizer steps in total.
        batch_size: Samples per step.
        lr: Peak AdamW learning rate (linear warm-up, then cosine to ``min_lr_ratio * lr``).
        weight_decay: AdamW weight decay.
        warmup_steps: Warm-up length.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        grad_clip: Global gradient-norm clip.
        random_shift: Random-shift augmentation of frames, in pixels (CNN encoder only; 0:
            none). Each camera's frame is shifted on its own, so a fixed camera's absolute
            image positions become noise at this scale: an object whose placement varies by
            fewer pixels than this is located only relative to what else that frame shows.
        flow_samples: Flow-matching (noise, time) pairs per sample and step (see
            :meth:`~sarm2_gym.algos.vla.tiny_vla.TinyVLA.bc_loss`).
        max_episodes: Use only the first N episodes of each dataset in ``data`` (e.g. to get a
            weaker base policy for SPIRAL).
        extra_data: More LeRobot datasets, used whole (``max_episodes`` does not apply), e.g. a
            policy's own successful rollouts beside the demonstrations it was cloned from.
        init: Start from this TinyVLA checkpoint's weights instead of a fresh model: its
            architecture, normalisation statistics and instructions are kept (fine-tuning), so
            ``model`` must be left at its default, and the data may hold only instructions the
            checkpoint knows. The optimizer starts fresh.
        rabc: Progress source for RA-BC weights (``None``: plain BC); see
            :func:`sarm2_gym.algos.vla.progress.episode_progress`.
        rabc_kappa: RA-BC threshold kappa.
        ema_decay: Keep an exponential moving average of the weights with this decay and export
            it as the policy instead of the last iterate (0: off, the last iterate). See
            :mod:`~sarm2_gym.algos.vla.ema`; 0.999 averages over about the last 1,000 steps.
        past_end: What BC does with the chunk steps that run past an episode's end.
            ``"masked"``: leaves them out of the loss, so what a policy does after the last
            recorded step (e.g. right after letting go, where a task's episode ends) is never
            trained. ``"hold"``: trains them towards the recorded final row repeated, holding
            still with the gripper as the episode ended.
        val_episodes: Hold out the last N episodes of each dataset in ``data`` (never trained
            on; ``max_episodes`` then takes the first N of the rest) and measure the policy
            on them every ``val_every`` steps, next to a probe of training frames of the same
            size (see :mod:`~sarm2_gym.algos.vla.validation`). 0: no held-out measurement.
        val_every: Steps between held-out measurements.
        val_frames: Frames per probe, spread evenly over its episodes.
        seed: Seeds model init, sampling, flow noise and augmentation.
        save_every: Steps between resume snapshots.
        log_every: Steps between TensorBoard scalars.
        model: TinyVLA architecture (instructions are filled in from the data).
        device: Torch device the policy trains on (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
            Batches are gathered on the CPU and moved; the random streams (sample indices, flow
            noise, times, image shifts) are drawn on the CPU whatever the device, so a run
            may resume on another device, agreeing with an uninterrupted run up to the float
            differences between devices (bit for bit on the same device).
    """

    data: tuple[str, ...]
    out: str
    steps: int = 10_000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    random_shift: int = 4
    flow_samples: int = 1
    max_episodes: int | None = None
    extra_data: tuple[str, ...] = ()
    init: str | None = None
    rabc: str | None = None
    rabc_kappa: float = DEFAULT_KAPPA
    ema_decay: float = 0.0
    past_end: str = "masked"
    val_episodes: int = 0
    val_every: int = 500
    val_frames: int = 512
    seed: int = 0
    save_every: int = 500
    log_every: int = 50
    model: TinyVLAConfig = field(default_factory=TinyVLAConfig)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("data must name at least one dataset")
        try:
            torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(f"device {self.device!r} is not a torch device: {exc}") from exc
        for name in (
            "steps",
            "batch_size",
            "save_every",
            "log_every",
            "flow_samples",
            "val_every",
            "val_frames",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.past_end not in PAST_END_MODES:
            raise ValueError(f"past_end must be one of {PAST_END_MODES}, got {self.past_end!r}")
        if self.val_episodes < 0:
            raise ValueError(f"val_episodes must be >= 0 (0: none), got {self.val_episodes}")
        if self.random_shift < 0:
            raise ValueError(f"random_shift must be >= 0 (0: none), got {self.random_shift}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}")

    def fingerprint(self) -> dict[str, Any]:
        """Fields a resumed run must share with the run it continues (``steps`` may grow)."""
        d = asdict(self)
        # Measuring does not change training: how often and on how many frames is free.
        for free in (
            "steps",
            "save_every",
            "log_every",
            "out",
            "device",
            "val_every",
            "val_frames",
        ):
            d.pop(free)
        # Runs without these resume whether or not they predate them.
        defaults = {f.name: f.default for f in fields(self)}
        for optional in ("ema_decay", "val_episodes", "past_end"):
            if d[optional] == defaults[optional]:
                d.pop(optional)
        d["data"] = [str(Path(p).resolve()) for p in self.data]
        d["extra_data"] = [str(Path(p).resolve()) for p in self.extra_data]
        if self.init is not None:
            d["init"] = str(Path(self.init).resolve())
        normalised: dict[str, Any] = json.loads(json.dumps(d))  # tuples -> lists, as stored
        return normalised


def learning_rate(step: int, config: BCConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr_ratio * lr`` (a pure function)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    frac = min((step - config.warmup_steps) / span, 1.0)
    floor = config.min_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


@dataclass
class _Run:
    """Everything that changes during training (what a snapshot stores)."""

    model: TinyVLA
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    generator: torch.Generator
    step: int = 0
    ema: WeightEMA | None = None

    @property
    def policy(self) -> TinyVLA:
        """What the run exports: the weights' moving average if it keeps one."""
        return self.model if self.ema is None else self.ema.model


def _feature_fn(config: BCConfig) -> Any:
    """Frozen-encoder features cached in the run folder (``None`` for an encoder trained here)."""
    m = config.model
    if m.image_encoder != "efficientnet_lite0":
        return None
    from sarm2_gym.algos.vla.progress import cached_frame_features

    return cached_frame_features(Path(config.out) / "feature_cache", m.image_size, m.cameras)


def _held_out(config: BCConfig) -> list[range] | None:
    """The held-out episodes of every ``data`` set (``None`` without ``val_episodes``)."""
    if not config.val_episodes:
        return None
    sizes = [LeRobotDataset(root).num_episodes for root in config.data]
    return held_out_ranges(sizes, config.val_episodes)


def _load_data(
    config: BCConfig, instructions: tuple[str, ...], held_out: list[range] | None
) -> DemoData:
    m = config.model
    limits: list[int | None] = [config.max_episodes] * len(config.data)
    if held_out is not None:  # training stops where the held-out episodes begin
        limits = [
            r.start if n is None else min(n, r.start) for n, r in zip(limits, held_out, strict=True)
        ]
    return load_demos(
        (*config.data, *config.extra_data),
        cameras=m.cameras,
        image_size=m.image_size,
        max_episodes=limits + [None] * len(config.extra_data),
        feature_fn=_feature_fn(config),
        instructions=instructions,
        privileged_state_dim=m.privileged_state_dim,
    )


def _probes(
    config: BCConfig, held_out: list[range], demos: DemoData, instructions: tuple[str, ...]
) -> list[BCProbe]:
    """The held-out probe and a training probe of the same size.

    Raises:
        ValueError: If the held-out episodes hold an instruction the training episodes do not
            (the policy has no embedding for it).
    """
    m = config.model
    val = load_demos(
        config.data,
        cameras=m.cameras,
        image_size=m.image_size,
        episode_ranges=held_out,
        feature_fn=_feature_fn(config),
        instructions=instructions,
        privileged_state_dim=m.privileged_state_dim,
    )
    unknown = val.instructions[len(instructions) :]
    if unknown:
        raise ValueError(
            f"the {config.val_episodes} held-out episode(s) per dataset hold instructions no "
            f"training episode has: {list(unknown)}; hold out fewer or mix the datasets' order"
        )
    heldout = BCProbe.spread("heldout", val, config.val_frames, seed=config.seed)
    train = BCProbe.spread("train_probe", demos, len(heldout.index), seed=config.seed)
    return [heldout, train]


def _check_device(device: str, dist: DistInfo) -> None:
    """Refuse a device this run cannot use, before any data is loaded."""
    kind = torch.device(device).type
    if kind == "cpu":
        return
    if dist.enabled:
        raise ValueError(f"data-parallel BC runs on the CPU (gloo); got device {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA device")


def _rank_seed(seed: int, rank: int) -> int:
    """Seed of a rank's torch generator (rank 0 keeps ``seed``: the single-process stream)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def _generator_key(rank: int) -> str:
    return "torch_generator" if rank == 0 else f"torch_generator_rank{rank}"


def _demo_control_limits(demos: DemoData) -> tuple[float, ...]:
    """The control limits of the envs the demonstrations come from (they must agree)."""
    from sarm2_gym.envs.registry import env_class

    if not demos.env_ids:
        raise ValueError(
            "a 'target' TinyVLA needs the env's control limits: the demonstrations name no env "
            "(set TinyVLAConfig.control_limits)"
        )
    limits = {}
    for env_id in demos.env_ids:
        try:
            limits[env_id] = limits_to_tuple(env_class(env_id).control_limits)
        except ValueError as exc:  # data from an env this library does not know
            raise ValueError(
                f"cannot look up the control limits of {env_id!r} ({exc}): set "
                "TinyVLAConfig.control_limits for a 'target' TinyVLA"
            ) from exc
    if len(set(limits.values())) > 1:
        raise ValueError(
            f"the demonstrations' envs have different control limits ({sorted(limits)}); a "
            "'target' TinyVLA converts with one set: train on tasks that share them"
        )
    return next(iter(limits.values()))


def _with_init_architecture(config: BCConfig) -> BCConfig:
    """``config`` with ``model`` read from its ``init`` checkpoint (fine-tuning keeps it)."""
    if config.init is None:
        return config
    default = TinyVLAConfig()
    given = [
        f.name for f in fields(default) if getattr(config.model, f.name) != getattr(default, f.name)
    ]
    if given:
        raise ValueError(
            f"init {config.init!r} fixes the architecture; leave these model fields at their "
            f"defaults: {given}"
        )
    return replace(config, model=read_vla_config(config.init))


def _initial_model(config: BCConfig, demos: DemoData, text_encoder: Any) -> TinyVLA:
    """A fresh TinyVLA fitted to the data's statistics, or the ``init`` checkpoint as it is."""
    if config.init is not None:
        model = TinyVLA.from_pretrained(config.init)
        unknown = demos.instructions[len(model.instructions) :]
        if unknown:
            raise ValueError(
                f"the data hold instructions the policy in {config.init} was not trained on: "
                f"{list(unknown)}"
            )
        if demos.frame_size is not None and demos.frame_size != model.config.demo_frame_size:
            # It now learns from these frames: envs made for the fine-tuned policy render so.
            model.config = replace(model.config, demo_frame_size=demos.frame_size)
        return model
    model_config = replace(
        config.model, instructions=demos.instructions, demo_frame_size=demos.frame_size
    )
    if model_config.action_space == "target" and not model_config.control_limits:
        model_config = replace(model_config, control_limits=_demo_control_limits(demos))
    model = TinyVLA.build(model_config, text_encoder)
    past = None
    if model_config.past_states:
        every = np.arange(demos.num_frames)
        past = demos.past_states(every, model_config.past_states, model_config.past_state_stride)
    model.fit_normalization(demos.state, demos.actions, past, demos.privileged_state)
    return model


def _new_run(config: BCConfig, demos: DemoData, text_encoder: Any, dist: DistInfo) -> _Run:
    torch.manual_seed(config.seed)  # every rank builds the same initial weights
    model = _initial_model(config, demos, text_encoder)
    model.to(config.device)  # before the optimizer is built over its parameters
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True
    )
    return _Run(
        model,
        optimizer,
        np.random.default_rng(config.seed),  # the global batch: the same on every rank
        torch.Generator().manual_seed(_rank_seed(config.seed, dist.rank)),
        ema=WeightEMA(model, config.ema_decay) if config.ema_decay else None,
    )


def _save_snapshot(run: _Run, config: BCConfig, dist: DistInfo) -> None:
    generators = gather_objects(generator_state(run.generator), dist)  # collective: every rank
    if not dist.is_main:
        return

    def write(tmp: Path) -> None:
        atomic_save_tensors(tmp / "model.safetensors", run.model.state_dict())
        if run.ema is not None:
            atomic_save_tensors(tmp / "ema.safetensors", run.ema.state_dict())
        opt_tensors, opt_meta = optimizer_state_tensors(run.optimizer, "adamw")
        gens = {_generator_key(r): g for r, g in enumerate(generators)}
        atomic_save_tensors(tmp / "optimizer.safetensors", {**opt_tensors, **gens})
        atomic_write_json(
            tmp / "state.json",
            {
                "step": run.step,
                "numpy_rng": run.rng.bit_generator.state,
                "optimizer": opt_meta,
                "model_config": run.model.config.to_dict(),
                "fingerprint": config.fingerprint(),
                "world_size": dist.world_size,
            },
        )

    write_snapshot(Path(config.out) / "train_state", f"step_{run.step:08d}", write)


def _restore_run(snapshot: Path, config: BCConfig, dist: DistInfo) -> _Run:
    state = read_json(snapshot / "state.json", "BC resume state")
    saved_world = int(state.get("world_size", 1))
    if saved_world != dist.world_size:
        raise CheckpointError(
            f"cannot resume {snapshot}: it was written by a run with {saved_world} process(es), "
            f"this one has {dist.world_size} (each rank's noise stream is part of the state)"
        )
    saved, now = state["fingerprint"], config.fingerprint()
    if saved != now:
        # Keys on either side: a field only one run sets (ema_decay) is a difference too.
        diff = sorted(k for k in {*saved, *now} if saved.get(k) != now.get(k))
        raise CheckpointError(
            f"cannot resume {snapshot}: the run was started with different {diff}"
        )
    model = TinyVLA(TinyVLAConfig.from_dict(state["model_config"]))
    model.load_state_dict(load_tensors(snapshot / "model.safetensors"), strict=True)
    model.to(config.device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True
    )
    tensors = load_tensors(snapshot / "optimizer.safetensors")
    load_optimizer_state(optimizer, tensors, state["optimizer"], "adamw")
    generator = torch.Generator()
    set_generator_state(generator, tensors[_generator_key(dist.rank)])
    ema = None
    if config.ema_decay:
        ema = WeightEMA(model, config.ema_decay)
        ema.load_state_dict(load_tensors(snapshot / "ema.safetensors", "BC weight average"))
    return _Run(
        model,
        optimizer,
        numpy_rng_from_state(state["numpy_rng"]),
        generator,
        int(state["step"]),
        ema,
    )


def _sample_weights(config: BCConfig, demos: DemoData, chunk_size: int) -> np.ndarray | None:
    if config.rabc is None:
        return None
    from sarm2_gym.algos.vla.progress import episode_progress

    progress = episode_progress(config.rabc, demos)
    weights = rabc_weights(progress, chunk_size, kappa=config.rabc_kappa)
    return np.concatenate(weights)


def _weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _check_ranks_agree(model: torch.nn.Module, dist: DistInfo) -> None:
    """Raise if the ranks of a data-parallel run ended with different weights."""
    digests = gather_objects(_weights_digest(model), dist)
    if len(set(digests)) > 1:
        raise RuntimeError(f"data-parallel ranks ended with different weights: {digests}")


class _BCLoss(torch.nn.Module):
    """The policy's BC loss as a module forward: what DDP wraps and synchronises."""

    def __init__(self, model: TinyVLA) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, weights: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
        return self.model.bc_loss(batch, weights, **kwargs)


def train_bc(
    config: BCConfig,
    *,
    resume: bool = False,
    text_encoder: Any = None,
    callback: StepCallback | None = None,
    progress_bar: bool = True,
) -> Path:
    """Train TinyVLA by (RA-)BC; returns the output folder (a loadable checkpoint).

    Args:
        config: The run.
        resume: Continue from the newest snapshot in ``config.out`` (error if ``False`` and one
            exists, so a finished or running experiment is never overwritten by accident).
        text_encoder: Sentence encoder for the instruction embeddings (default: packaged MiniLM).
        callback: Called as ``callback(step, metrics)`` after every optimizer step.
        progress_bar: Show a tqdm bar.

    Under ``torchrun`` the processes train one policy data parallel (see the module
    docstring); without it this is a plain single-process run.

    Raises:
        CheckpointError: If a snapshot exists without ``resume``, or does not match ``config``.
    """
    with distributed_session("gloo") as dist:
        if config.batch_size < dist.world_size:
            raise ValueError(
                f"batch size {config.batch_size} is smaller than the {dist.world_size} ranks"
            )
        _check_device(config.device, dist)
        return _train(
            config,
            dist,
            resume=resume,
            text_encoder=text_encoder,
            callback=callback,
            progress_bar=progress_bar,
        )


def _train(
    config: BCConfig,
    dist: DistInfo,
    *,
    resume: bool,
    text_encoder: Any,
    callback: StepCallback | None,
    progress_bar: bool,
) -> Path:
    config = _with_init_architecture(config)
    out = Path(config.out)
    snapshot = latest_snapshot(out / "train_state") if (out / "train_state").is_dir() else None
    if snapshot is not None and not resume:
        raise CheckpointError(
            f"{out} already holds a BC run; pass resume=True (--resume) or another --out"
        )

    # --- phase 1: data and model (fresh, or restored from the snapshot)
    run = _restore_run(snapshot, config, dist) if snapshot is not None else None
    # Instructions indexed first: a resumed run's, or the init checkpoint's (a fresh model
    # takes the data's own).
    known = run.model.instructions if run else config.model.instructions if config.init else ()
    held_out = _held_out(config)
    with main_first(dist):  # rank 0 fills a feature cache first, the other ranks then read it
        demos = _load_data(config, known, held_out)
    if run is None:
        run = _new_run(config, demos, text_encoder, dist)
    model, cfg = run.model, run.model.config
    weights = _sample_weights(config, demos, cfg.chunk_size)
    probes = []
    if held_out is not None and dist.is_main:  # rank 0 alone measures
        probes = _probes(config, held_out, demos, model.instructions)
    val_log = ValidationLog(out / "validation.json", keep_through=run.step) if probes else None
    net = wrap_ddp(_BCLoss(model), dist)
    part = shard(config.batch_size, dist)
    # 1.0 for one process; else this rank's share, so DDP's mean is the global batch mean.
    scale = shard_weight(part, config.batch_size, dist)

    # --- phase 2: optimisation loop
    main = dist.is_main
    writer = SummaryWriter(str(out / "tb"), purge_step=run.step or None) if main else None
    if writer is not None:
        writer.add_text("bc/config", str(asdict(config)), global_step=run.step)
    show = progress_bar and main
    bar = tqdm(total=config.steps, initial=run.step, disable=not show, desc="bc")
    start_step, start_time, loss_value = run.step, time.perf_counter(), float("nan")
    postfix: dict[str, str] = {}
    model.train()
    try:
        while run.step < config.steps:
            lr = learning_rate(run.step, config)
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            index = run.rng.integers(0, demos.num_frames, size=config.batch_size)
            local = index[part]
            batch = demos.batch(local, cfg.chunk_size, cfg.past_states, cfg.past_state_stride)
            w = None if weights is None else torch.from_numpy(weights[local])
            extra: dict[str, Any] = {}
            if weights is not None and dist.enabled:
                # The global weighted mean: every rank divides by the whole batch's weight sum
                # and DDP's mean over ranks is undone by the world size.
                extra["weight_total"] = float(weights[index].sum())
            loss = net(
                batch,
                w,
                generator=run.generator,
                shift=config.random_shift,
                flow_samples=config.flow_samples,
                mask_padding=config.past_end == "masked",
                **extra,
            )
            if dist.enabled:
                loss = loss * (dist.world_size if w is not None else scale)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            run.optimizer.step()
            run.step += 1
            if run.ema is not None:
                run.ema.update(model, run.step)
            metrics = {"loss": float(loss.detach())}
            if w is not None:
                metrics["rabc_weight_mean"] = float(w.mean())
            metrics = all_reduce_mean(metrics, dist)  # global batch loss / mean weight
            metrics.update(lr=lr, grad_norm=float(grad_norm))
            loss_value = metrics["loss"]
            if writer is not None and (
                run.step % config.log_every == 0 or run.step == config.steps
            ):
                for k, v in metrics.items():
                    writer.add_scalar(f"train/{k}", v, run.step)
            bar.update(1)
            postfix["loss"] = f"{loss_value:.4f}"
            bar.set_postfix(postfix, refresh=False)
            if val_log is not None and (
                run.step % config.val_every == 0 or run.step == config.steps
            ):
                measured = {k: v for p in probes for k, v in bc_metrics(run.policy, p).items()}
                val_log.append(run.step, measured)
                if writer is not None:
                    for k, v in measured.items():
                        writer.add_scalar(k, v, run.step)
                postfix["heldout_mse"] = f"{measured['heldout/chunk_mse']:.4f}"
                metrics.update(measured)  # the callback sees them too
            if run.step % config.save_every == 0 or run.step == config.steps:
                _save_snapshot(run, config, dist)
            if callback is not None and main:
                callback(run.step, metrics)
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    # --- phase 3: export the policy and a summary
    elapsed = time.perf_counter() - start_time
    model.eval()
    _check_ranks_agree(model, dist)  # DDP kept every rank's copy identical (no-op for one)
    if main:
        run.policy.save_pretrained(out)
        atomic_write_json(
            out / "bc_summary.json",
            {
                "steps": run.step,
                "final_loss": loss_value,
                "episodes": len(demos.episodes),
                "frames": demos.num_frames,
                "rabc": config.rabc,
                "ema_decay": config.ema_decay,
                "past_end": config.past_end,
                "random_shift": config.random_shift,
                "validation": None if val_log is None else val_log.summary(),
                "world_size": dist.world_size,
                "wall_seconds_this_call": elapsed,
                "steps_per_second": (run.step - start_step) / max(elapsed, 1e-9),
            },
        )
    barrier(dist)  # the policy is on disk before any rank returns (and may load it)
    return out
