"""The shared training loop of SARM2, its ablations and the baselines (``sarm2 train-rm``).

Phases (spec §1.5, §1.7): SARM2 first pretrains its stage estimator (primitive cross-entropy),
then trains everything jointly (steps-to-go MSE + routing auxiliary loss + 0.25 x primitive and
group cross-entropy). Each phase uses AdamW with a linear warmup and a cosine decay; gradients
are clipped. Features of every frame come from the frozen encoder once, via the feature cache
(:mod:`.frames`). The run directory holds TensorBoard logs (``train/...``, ``val/...``),
checkpoints every ``checkpoint_every`` steps (:mod:`.train_state`) and ``summary.json``; the
final model is saved into the output directory itself, so it loads with ``from_pretrained``.

``resume=True`` continues from the latest checkpoint bit for bit: same weights, optimizer
moments, learning rate (a pure function of the step), sampler and torch RNG states.

Data parallel (``torch.distributed``, DDP): launched by ``torchrun``, e.g.
``torchrun --nproc_per_node 2 -m sarm2_gym.cli train-rm --data ... --out ...``, every rank runs
this loop (gloo on CPU, NCCL with one GPU per rank). Rank 0 extracts missing features first while
the others wait on a barrier, then they read the cache. Every rank draws the same *global* batch
of ``batch_size`` samples (same sampler seed) and assembles only its shard, so the ranks together
see exactly the single-process batch; DDP all-reduces the gradients, and per-rank losses are
weighted by shard size so the update is the size-weighted mean over the global batch. The losses
that are not plain per-sample means (masked means over a varying number of valid positions, the
routing auxiliary losses) make a 2-rank run differ from a 1-process run by float-rounding-sized
amounts at first (``tests/scaling/test_ddp.py`` states the tolerance). Rank 0 alone writes
TensorBoard scalars (losses averaged over ranks), checkpoints (with every rank's torch RNG state,
so a resumed run with the same number of ranks continues bit for bit) and the final model.

Example (see ``tests/reward/test_training.py`` for a runnable one)::

    result = train_reward_model(["data/train"], "runs/sarm2", options=TrainOptions(steps=2000))
    result.model.predict(frames, state, "folding shorts")
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sarm2_gym.common.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    distributed_session,
    gather_objects,
    main_first,
    shard,
    shard_weight,
    wrap_ddp,
)
from sarm2_gym.reward.config import SARM2Config
from sarm2_gym.reward.encoders.base import ImageEncoder, TextEncoder
from sarm2_gym.reward.frames import (
    DEFAULT_CACHE_DIR,
    FrameTable,
    load_frame_table,
    missing_labels,
)
from sarm2_gym.reward.kinds import (
    SARMv1Labels,
    TrainableModel,
    batch_losses,
    build_model,
    kind_config,
    load_model,
    phases,
    save_model,
    score_batch,
)
from sarm2_gym.reward.sampling import (
    TARGETS,
    BatchSampler,
    TrainBatch,
    check_labels,
    frame_targets,
    query_batches,
    split_episodes,
)
from sarm2_gym.reward.train_state import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["TrainOptions", "TrainResult", "train_reward_model", "validate"]

_MAX_VAL_EPISODES = 64  # bound validation cost


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainOptions:
    """Run settings (model hyper-parameters live in :class:`SARM2Config`).

    Args:
        kind: Model kind, one of :data:`~sarm2_gym.reward.kinds.MODEL_KINDS`.
        steps: Total optimizer steps (default: the config's ``stage_steps + value_steps``).
        seed: Seed of initialisation, split and sampling (default: ``config.seed``).
        target: ``"progress"`` (privileged progress) or ``"linear"`` (paper's demo label).
        batch_size: Samples per step (default: ``config.batch_size``).
        checkpoint_every: Steps between checkpoints.
        val_every: Steps between validations (0 = only at the end).
        log_every: Steps between TensorBoard scalars.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        num_workers: Feature-extraction processes.
        cache_dir: Feature cache root.
        progress: Show progress bars.
        stop_after: Stop after this global step as if killed (tests); the run stays resumable.
    """

    kind: str = "sarm2"
    steps: int | None = None
    seed: int | None = None
    target: str = "progress"
    batch_size: int | None = None
    checkpoint_every: int = 500
    val_every: int = 500
    log_every: int = 25
    device: str = "cpu"
    num_workers: int = 1
    cache_dir: str = str(DEFAULT_CACHE_DIR)
    progress: bool = True
    stop_after: int | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run produced.

    Attributes:
        model: The trained model (eval mode).
        out: Output directory (the final model's checkpoint when ``finished``).
        steps: Global steps done.
        wall_clock_s: Training wall-clock over all sessions (feature extraction excluded).
        finished: False when stopped early by ``stop_after``.
        val: Last validation metrics.
    """

    model: TrainableModel
    out: Path
    steps: int
    wall_clock_s: float
    finished: bool
    val: dict[str, float]


def _device(name: str, dist: DistInfo | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and dist is not None and dist.enabled:
        return torch.device("cuda", dist.local_rank)  # one GPU per rank
    return device


def _rank_seed(seed: int, rank: int) -> int:
    """Torch seed of a data-parallel rank > 0 (dropout masks must differ between shards)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


class _LossModule(nn.Module):
    """The model plus its loss: the module DDP wraps (its forward is what DDP synchronises)."""

    def __init__(self, model: TrainableModel, labels: SARMv1Labels | None) -> None:
        super().__init__()
        self.model = model
        self.labels = labels

    def forward(self, tb: TrainBatch, phase: str) -> dict[str, torch.Tensor]:
        return batch_losses(self.model, tb, phase, self.labels)


def _extend_instructions(config: SARM2Config, table: FrameTable) -> SARM2Config:
    new = [t for t in table.tasks if t not in config.instructions]
    return config.replace(instructions=(*config.instructions, *new)) if new else config


def validate(
    model: nn.Module, table: FrameTable, ids: Sequence[int], targets: np.ndarray
) -> dict[str, float]:
    """Steps-to-go MSE at query frames (every frame gap) and primitive accuracy."""
    if not ids:
        return {}
    cfg: SARM2Config = model.config  # type: ignore[assignment]
    err, hit, count = [], 0, 0
    for tb in query_batches(table, list(ids)[:_MAX_VAL_EPISODES], cfg, targets):
        scores = score_batch(model, tb)
        rows = tb.rows[:, cfg.n_obs_steps]
        err.append((scores.steps_to_go - targets[rows]) ** 2)
        if scores.primitive is not None:
            hit += int((scores.primitive == table.act_pri[rows]).sum())
            count += len(rows)
    out = {"value_mse": float(np.concatenate(err).mean())}
    if count:
        out["primitive_acc"] = hit / count
    return out


def _settings(options: TrainOptions, config: SARM2Config, data: Sequence[str]) -> dict[str, Any]:
    keep = ("kind", "steps", "seed", "target", "batch_size")
    return {
        **{k: getattr(options, k) for k in keep},
        "config": config.to_dict(),
        "data": [str(Path(d).resolve()) for d in data],
    }


def train_reward_model(
    data: Sequence[str | Path],
    out: str | Path,
    config: SARM2Config | None = None,
    *,
    options: TrainOptions | None = None,
    resume: bool = False,
    image_encoder: ImageEncoder | None = None,
    text_encoder: TextEncoder | None = None,
) -> TrainResult:
    """Train a reward model of ``options.kind`` on LeRobot datasets.

    Args:
        data: Training dataset directories.
        out: Output directory: the final model, plus ``train/`` (logs, checkpoints, summary).
        config: Model configuration (default :class:`SARM2Config`); tasks in the data that it
            does not list are appended to its instructions.
        options: Run settings.
        resume: Continue from the latest checkpoint in ``out`` (required if one exists).
        image_encoder: Frozen image encoder instance (default: the one the config names).
        text_encoder: Text encoder (default: the one the config names).

    Raises:
        FileExistsError: If ``out`` holds a run and ``resume`` is False.
        ValueError: If a resumed run's settings differ from the checkpoint's.
    """
    options = options or TrainOptions()
    config = config or SARM2Config()
    seed = config.seed if options.seed is None else options.seed
    config = config.replace(seed=seed)
    if options.batch_size:
        config = config.replace(batch_size=options.batch_size)
    out = Path(out)
    run_dir = out / "train"
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None and not resume:
        raise FileExistsError(f"{out} already holds a training run; pass resume=True (--resume)")

    device = _device(options.device)
    with distributed_session("nccl" if device.type == "cuda" else "gloo") as dist:
        if config.batch_size < dist.world_size:
            raise ValueError(
                f"batch size {config.batch_size} is smaller than the {dist.world_size} ranks"
            )
        torch.manual_seed(seed)
        check_labels(  # data from elsewhere may lack act_pri / stage / progress: say so first
            missing_labels([str(d) for d in data]),
            primitives=options.kind.startswith("sarm2")
            and kind_config(options.kind, config).stage_estimator,
            stages=options.kind == "sarm_v1",
            target=options.target,
        )
        with main_first(dist):  # rank 0 fills the feature cache, the other ranks then read it
            table = load_frame_table(
                [str(d) for d in data],
                config,
                cache_dir=options.cache_dir,
                image_encoder=image_encoder,
                num_workers=options.num_workers,
                progress=options.progress and dist.is_main,
            )
        config = _extend_instructions(config, table)
        settings = _settings(options, config, [str(d) for d in data])
        train_ids, val_ids = split_episodes(table, config.val_fraction, seed)
        targets = frame_targets(table, options.target)
        if text_encoder is None:
            from sarm2_gym.reward.encoders import build_text_encoder

            text_encoder = build_text_encoder(config)
        model, labels = build_model(
            options.kind, config, table, train_ids, text_encoder, options.target
        )
        model.to(_device(options.device, dist))
        if dist.rank:
            torch.manual_seed(_rank_seed(seed, dist.rank))
        loop = _Loop(
            model, labels, table, train_ids, val_ids, targets, options, run_dir, settings, dist
        )
        if ckpt is not None:
            loop.restore(ckpt)
        return loop.run(out)


class _Loop:
    """Mutable state of one training session (kept out of ``train_reward_model``)."""

    def __init__(
        self,
        model: TrainableModel,
        labels: SARMv1Labels | None,
        table: FrameTable,
        train_ids: list[int],
        val_ids: list[int],
        targets: np.ndarray,
        options: TrainOptions,
        run_dir: Path,
        settings: dict[str, Any],
        dist: DistInfo,
    ) -> None:
        self.model, self.labels, self.table = model, labels, table
        self.dist = dist
        # What the step calls: DDP around (model + loss) under torchrun, else the same module.
        self.net = wrap_ddp(_LossModule(model, labels), dist)
        self.val_ids, self.targets, self.options = val_ids, targets, options
        self.run_dir, self.settings = run_dir, settings
        self.cfg: SARM2Config = model.config
        self.phases = phases(options.kind, self.cfg, options.steps)
        self.total = sum(p.steps for p in self.phases)
        # SARM v1: one sampler per task, used round robin (one task model per step).
        groups = [train_ids]
        if options.kind == "sarm_v1":
            groups = [[i for i in train_ids if table.episodes[i].task == t] for t in table.tasks]
            groups = [g for g in groups if g]
        seed = self.cfg.seed
        self.samplers = [
            BatchSampler(table, g, self.cfg, targets, seed=seed + 1000 * k)
            for k, g in enumerate(groups)
        ]
        self.step, self.phase_index, self.elapsed = 0, 0, 0.0
        self.optimizer = self._optimizer(self.phases[0])
        self.val: dict[str, float] = {}

    def _optimizer(self, phase: Any) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(),
            lr=phase.lr,
            weight_decay=phase.weight_decay,
            betas=self.cfg.adam_betas,
            eps=self.cfg.adam_eps,
        )

    def restore(self, ckpt: Path) -> None:
        meta = json.loads((ckpt / "training_state.json").read_text())
        if meta["settings"] != self.settings:
            raise ValueError(f"{ckpt} was written by a run with other settings; use another --out")
        self.optimizer = self._optimizer(self.phases[int(meta["phase"])])
        state = load_checkpoint(ckpt, self.model, self.optimizer, rank=self.dist.rank)
        self.step, self.phase_index, self.elapsed = state.step, state.phase, state.elapsed_s
        for sampler, s in zip(self.samplers, state.samplers, strict=True):
            sampler.load_state_dict(s)

    def _phase_step(self) -> int:
        return self.step - sum(p.steps for p in self.phases[: self.phase_index])

    def _checkpoint(self) -> None:
        rngs = gather_objects(torch.get_rng_state(), self.dist)  # collective: every rank
        if not self.dist.is_main:
            return
        state = TrainingState(
            self.step,
            self.phase_index,
            self.elapsed,
            [s.state_dict() for s in self.samplers],
            self.settings,
        )
        save_checkpoint(self.run_dir, self.model, self.optimizer, state, rng_states=rngs)

    def _train_step(self) -> dict[str, float]:
        phase = self.phases[self.phase_index]
        lr = phase.lr_at(self._phase_step(), self.cfg.warmup_start_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        size = self.cfg.batch_size
        part = shard(size, self.dist) if self.dist.enabled else None
        tb = self.samplers[self.step % len(self.samplers)].sample(size, part)
        self.net.train()
        losses = self.net(tb, phase.name)
        # 1.0 for one process; else this rank's share, so DDP's mean is the global batch mean.
        weight = 1.0 if part is None else shard_weight(part, size, self.dist)
        self.optimizer.zero_grad(set_to_none=True)
        (losses["total"] if weight == 1.0 else losses["total"] * weight).backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return {**{k: float(v.detach()) * weight for k, v in losses.items()}, "lr": lr}

    def run(self, out: Path) -> TrainResult:
        from torch.utils.tensorboard import SummaryWriter

        opts, main = self.options, self.dist.is_main
        writer = (
            SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step or None) if main else None
        )
        bar = tqdm(
            total=self.total,
            initial=self.step,
            desc=f"train {opts.kind}",
            disable=not opts.progress or not main,
        )
        stop = self.total if opts.stop_after is None else min(opts.stop_after, self.total)
        try:
            while self.step < stop:
                if self._phase_step() >= self.phases[self.phase_index].steps:
                    self.phase_index += 1  # next phase: a fresh optimizer (spec §1.5 -> §1.7)
                    self.optimizer = self._optimizer(self.phases[self.phase_index])
                t0 = time.perf_counter()
                logs = self._train_step()
                self.elapsed += time.perf_counter() - t0
                self.step += 1
                bar.update(1)
                if self.step % opts.log_every == 0 or self.step == 1:
                    logs = all_reduce_mean(logs, self.dist)  # global-batch losses
                    if writer is not None:
                        for k, v in logs.items():
                            writer.add_scalar(f"train/{k}", v, self.step)
                    bar.set_postfix(
                        loss=f"{logs['total']:.4f}", phase=self.phases[self.phase_index].name
                    )
                if opts.val_every and self.step % opts.val_every == 0 and main:
                    self._validate(writer)
                if self.step % opts.checkpoint_every == 0 or self.step == stop:
                    self._checkpoint()
        finally:
            bar.close()
        finished = self.step >= self.total
        if finished and main:
            self._validate(writer)
            save_model(self.model, out)
            summary = {
                "steps": self.step,
                "wall_clock_s": self.elapsed,
                "val": self.val,
                "settings": self.settings,
                "world_size": self.dist.world_size,
            }
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if writer is not None:
            writer.close()
        barrier(self.dist)  # the final model is on disk before any rank loads it
        self.val = broadcast_object(self.val, self.dist)
        model = load_model(out) if finished else self.model.eval()
        return TrainResult(model, out, self.step, self.elapsed, finished, self.val)

    def _validate(self, writer: Any) -> None:
        self.val = validate(self.model, self.table, self.val_ids, self.targets)
        for k, v in self.val.items():
            writer.add_scalar(f"val/{k}", v, self.step)
