"""SARM2 fine-tuned on annotated rollouts: SPIRAL's reward-model adaptation (spec §2.1 stage 2a).

SPIRAL calls a :class:`~sarm2_gym.algos.spiral.adaptation.RewardModelAdapter` once, after its
first round, with that round's rollouts annotated (spec §2.3: segments turned into a progress
curve per rollout). :class:`SARM2Adapter` is that adapter for :class:`SARM2RewardModel`: it
fine-tunes a copy of the model (RM1 -> RM2) to regress ``1 - progress`` of the annotated curves
at uniformly drawn frames of the rollouts, with the value model's own loss (MSE plus the MMoE
routing terms). Why it matters: a model trained on demonstrations has seen the ways a task goes
right, not the ways a policy fails, and can rate a failed rollout as nearly done.

The stage estimator stays frozen: rollouts carry no primitive labels, and the value head reads
its predicted primitives, which the adaptation should not shift. A frozen image encoder's
features are computed once per rollout frame; a trainable CNN encoder is fine-tuned with the
value model.

The paper mixes pretraining data into the fine-tuning (about 50 % of it, by a third-party
reading, spec §2.1): given ``demonstrations`` (:func:`load_demonstrations`), a share
``AdaptationConfig.demo_fraction`` of every batch is drawn from them, their targets ``1 -`` their
privileged progress (the packaged model's training target) or the linear ``t / (L - 1)`` label
where an episode has no progress column. We read "50 %" as half of every batch: with 50 rollouts
and a few dozen demonstrations, half of the demonstrations' frames would be a different share
for every task. Without demonstrations the adapter fits the rollouts alone, which can pull the
model away from what it knew of demonstrations.

Example:
    >>> from sarm2_gym.reward.testing import tiny_model
    >>> adapter = SARM2Adapter(tiny_model(image_size=40), AdaptationConfig(steps=2))
    >>> adapter.config.steps
    2
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from sarm2_gym.reward.batch import RewardBatch, build_sample
from sarm2_gym.reward.inputs import check_frames, check_state
from sarm2_gym.reward.labels import steps_to_go
from sarm2_gym.reward.model import SARM2RewardModel

if TYPE_CHECKING:
    from sarm2_gym.algos.spiral.adaptation import AnnotatedRollout
    from sarm2_gym.algos.spiral.labeling import RewardModelLabeler, RolloutEpisode

__all__ = ["AdaptationConfig", "SARM2Adapter", "load_demonstrations"]


@dataclass(frozen=True)
class AdaptationConfig:
    """How long and how fast RM1 is fine-tuned into RM2.

    Args:
        steps: Optimiser steps.
        batch_size: Query frames per step, drawn uniformly over all rollout frames.
        lr: AdamW learning rate (small: the model keeps what it learned from demonstrations).
        weight_decay: AdamW weight decay.
        grad_clip: Gradient-norm clip.
        seed: Seeds the frame draws.
        demo_fraction: Share of every batch drawn from the pretraining demonstrations, when the
            adapter is given any (rounded to whole frames; the rest comes from the rollouts).
    """

    steps: int = 500
    batch_size: int = 32
    lr: float = 3e-5
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    demo_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(
                "steps and batch_size must be >= 1 and lr > 0, got "
                f"steps={self.steps}, batch_size={self.batch_size}, lr={self.lr}"
            )
        if not 0.0 <= self.demo_fraction < 1.0:
            raise ValueError(
                f"demo_fraction must be in [0, 1) (rollouts fill the rest of a batch), "
                f"got {self.demo_fraction}"
            )

    @property
    def demo_frames(self) -> int:
        """Frames of every batch drawn from the demonstrations (when there are any)."""
        return round(self.batch_size * self.demo_fraction)


@dataclass(frozen=True)
class _Prepared:
    """One annotated rollout or demonstration, ready to sample from."""

    frames: dict[str, np.ndarray]  # camera -> (L, F) features or (L, H, W, 3) uint8 images
    state: np.ndarray  # (L, S) float32
    steps_to_go: np.ndarray  # (L,) float32, 1 - annotated progress
    task_id: int


class SARM2Adapter:
    """Fine-tunes a SARM2 model on annotated rollouts and labels with the result (RM2).

    Implements :class:`~sarm2_gym.algos.spiral.adaptation.RewardModelAdapter`.

    Args:
        model: RM1, the model SPIRAL labelled its first round with (left unchanged).
        config: Fine-tuning budget.
        frame_gap: Query gap of the labeller returned (as SPIRAL's other labeller).
        window: Smoothing window of the labeller returned.
        progress: Show a progress bar while fine-tuning.
        demonstrations: Pretraining episodes mixed into every batch (see the module doc), or a
            function that loads them (called by each :meth:`adapt`, so that a run which only
            :meth:`restore` s never holds their frames); their frames must suit the model as
            the rollouts' do.
    """

    def __init__(
        self,
        model: SARM2RewardModel,
        config: AdaptationConfig | None = None,
        *,
        frame_gap: int = 1,
        window: int = 5,
        progress: bool = False,
        demonstrations: (Sequence[RolloutEpisode] | Callable[[], Sequence[RolloutEpisode]]) = (),
    ) -> None:
        self.model = model
        self.config = config or AdaptationConfig()
        self.frame_gap = frame_gap
        self.window = window
        self.progress = progress
        self.demonstrations = demonstrations
        self.losses: list[float] = []  # value MSE per step of the last adaptation

    def adapt(
        self, rollouts: Sequence[AnnotatedRollout], out_dir: Path | None
    ) -> RewardModelLabeler:
        """Fine-tune a copy of the model on ``rollouts``; save it into ``out_dir`` if given.

        Raises:
            ValueError: No rollouts, a rollout or demonstration without camera frames, or
                frames, state or an instruction the model cannot take.
        """
        if not rollouts:
            raise ValueError("no annotated rollouts to adapt the reward model on")
        cfg = self.config
        model = copy.deepcopy(self.model)
        pools = [
            _FramePool([
                self._prepare(model, r.episode, r.progress, f"rollout {i}")
                for i, r in enumerate(rollouts)
            ])
        ]  # fmt: skip
        sizes = [cfg.batch_size]
        source = self.demonstrations
        demonstrations = source() if callable(source) else source
        if demonstrations and cfg.demo_frames:
            pools.append(
                _FramePool([
                    self._prepare(model, d, d.progress, f"demonstration {i}")
                    for i, d in enumerate(demonstrations)
                ])
            )  # fmt: skip
            sizes = [cfg.batch_size - cfg.demo_frames, cfg.demo_frames]
        trainable = self._trainable(model)
        optimiser = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(cfg.seed)
        model.train()
        if model.stage is not None:
            model.stage.eval()  # frozen: no dropout noise in the primitives the value head reads
        self.losses = []
        bar = tqdm(range(cfg.steps), desc="adapt reward model", disable=not self.progress)
        for _ in bar:
            samples = []
            for pool, size in zip(pools, sizes, strict=True):
                for r, idx in pool.draw(rng, size):
                    samples.append(
                        build_sample(
                            r.frames, r.state, idx, config=model.config, task_id=r.task_id,
                            steps_to_go=r.steps_to_go,
                        )
                    )  # fmt: skip
            out = model(RewardBatch.collate(samples).to(model.device))
            assert out.losses is not None  # targets were given
            optimiser.zero_grad(set_to_none=True)
            out.losses.total.backward()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            optimiser.step()
            self.losses.append(float(out.losses.value.detach()))
            bar.set_postfix(mse=f"{self.losses[-1]:.4f}")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
        if out_dir is not None:
            model.save_pretrained(out_dir)
        return self._labeler(model)

    def restore(self, out_dir: Path) -> RewardModelLabeler:
        """The labeller of the model an earlier :meth:`adapt` saved into ``out_dir``."""
        return self._labeler(SARM2RewardModel.from_pretrained(out_dir))

    def _labeler(self, model: SARM2RewardModel) -> RewardModelLabeler:
        from sarm2_gym.algos.spiral.labeling import RewardModelLabeler

        return RewardModelLabeler(model, frame_gap=self.frame_gap, window=self.window)

    @staticmethod
    def _trainable(model: SARM2RewardModel) -> list[torch.nn.Parameter]:
        """Every parameter but the stage estimator's, which is frozen (see the module doc)."""
        frozen = set() if model.stage is None else {id(p) for p in model.stage.parameters()}
        params = []
        for p in model.parameters():
            keep = id(p) not in frozen
            p.requires_grad_(keep)
            if keep:
                params.append(p)
        return params

    @staticmethod
    def _prepare(
        model: SARM2RewardModel, ep: RolloutEpisode, progress: np.ndarray | None, name: str
    ) -> _Prepared:
        """Check one episode and encode its frames once (frozen encoders).

        ``progress``: the target curve (``None``: the linear label); ``name`` names the episode
        in errors.
        """
        cfg = model.config
        if ep.images is None:
            raise ValueError(f"{name} has no camera frames: collect with images kept")
        try:
            length = check_frames(ep.images, cfg.camera_names, cfg.image_size)
            state = check_state(ep.state, length, cfg.state_dim)
            task_id = model.task_id(ep.task)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from err
        if progress is not None and progress.shape != (length,):
            raise ValueError(f"{name}: {progress.shape} progress targets for {length} frames")
        targets = steps_to_go(length, None if progress is None else np.clip(progress, 0.0, 1.0))
        if model.cnn is not None:  # trained with the value model: keep the images
            frames = {c: np.asarray(ep.images[c]) for c in cfg.camera_names}
        else:
            with torch.no_grad():
                frames = {
                    c: model.encode_images(np.asarray(ep.images[c])).float().cpu().numpy()
                    for c in cfg.camera_names
                }
        return _Prepared(frames, state, targets, task_id)


class _FramePool:
    """Episodes to draw query frames from, uniformly over all their frames.

    A long (failed) rollout weighs by its length.
    """

    def __init__(self, episodes: list[_Prepared]) -> None:
        self.episodes = episodes
        lengths = np.array([len(e.steps_to_go) for e in episodes], dtype=np.float64)
        self.p = lengths / lengths.sum()

    def draw(self, rng: np.random.Generator, size: int) -> list[tuple[_Prepared, int]]:
        """``size`` (episode, frame index) pairs."""
        picks = rng.choice(len(self.episodes), size=size, p=self.p)
        out = []
        for k in picks:
            ep = self.episodes[int(k)]
            out.append((ep, int(rng.integers(len(ep.steps_to_go)))))
        return out


def load_demonstrations(
    dataset: str | Path, max_episodes: int | None = None
) -> list[RolloutEpisode]:
    """The first ``max_episodes`` episodes (all by default) of a LeRobot dataset, to mix in.

    Each keeps its ``progress`` column where it is the simulator's (the adapter uses the linear
    label where it is not: see :meth:`RolloutEpisode.from_episode`).

    Raises:
        ValueError: If the dataset has no episodes or ``max_episodes`` is below 1.
    """
    from sarm2_gym.algos.spiral.labeling import RolloutEpisode
    from sarm2_gym.data.reader import LeRobotDataset

    if max_episodes is not None and max_episodes < 1:
        raise ValueError(f"max_episodes must be >= 1 or None, got {max_episodes}")
    ds = LeRobotDataset(dataset)
    if ds.num_episodes == 0:
        raise ValueError(f"{dataset} holds no episodes to mix into the adaptation")
    count = ds.num_episodes if max_episodes is None else min(max_episodes, ds.num_episodes)
    return [RolloutEpisode.from_episode(ds.episode(i), dataset_episode=i) for i in range(count)]
