r"""Can SPIRAL's critics rank chunks at one state? -> docs/results/spiral_chunk_ranking.md.

Best-of-kappa and the residual actor's gradient both follow the critic ensemble's order of the
candidate chunks *at one state* (spec §2.2). The round tables' rho pools every state, so it mostly
measures how far an episode has come. This benchmark measures the order at one state directly.

For each finished SPIRAL run (``ROOT/<task>/spiral/seed<k>``), on held-out seeds:

1. Run the final policy as deployed (fresh latents) and keep its actions. At every branch step
   (``--branch-steps``, chunk boundaries), draw ``--candidates`` latents and form the policy's total
   chunks (base chunk + residual) and every critic's Q of each, as deployment does.
2. For every candidate, reset the env to the same seed, replay the kept actions up to the branch
   step (MuJoCo is deterministic on one machine; the replay is checked against the kept progress),
   execute the candidate chunk, then let the deployed policy finish the episode. Every candidate's
   continuation draws the same latents (common random numbers); ``--continuations`` such draws per
   candidate show how much of the outcome the chunk decides and how much the continuation.
3. Score each branch with the quantity the critics are trained to estimate: the blended target
   ``alpha * success * gamma^(L-1-t) + (1 - alpha) * sum_h gamma^h r_{t+h+1}`` with the dense
   rewards ``r`` of the privileged-progress labeller (the oracle labels of
   ``--labeler privileged``), plus the episode's success and the progress the chunk itself made.
   For a run labelled by a reward model this is the truth its critics' target approximates.

The page reports, per run: within-state Spearman of min-Q with the realised value; what the
critics' pick gains over a random candidate, against what the best candidate gains, naively and
cross-validated (chosen on one continuation draw, valued on the others: the naive best also
collects the luck of its draw); whether candidates with similar chunks have similar values; how
much the candidates' values differ at one state against how much one candidate's continuations
differ; how reproducible the candidates' order at one state is from one continuation draw to
another (the most any critic's order could agree with one draw); the same for the progress of the
next :data:`BRANCH_WINDOW` steps, a short horizon with less of the continuation in it; and the
Spearman pooled over all states.

``--refits`` fits fresh critic ensembles on each run's own replay buffer (saved with its last
checkpoint) by other recipes (:data:`REFITS`: more updates, regression on realised returns,
standardised actions, progress over a short horizon as the target, the branch states of other
episodes as data with several actions per state) and scores them on the same branch states and
candidates, which the records keep (features and chunks), with no new simulation.

``--lookahead-episodes N`` runs N held-out episodes in which every chunk is chosen among the run's
own kappa candidates by simulation instead of by the critics: each candidate is executed from the
current state in a second env and followed by the deployed policy for ``--lookahead-horizon``
steps, and the one with the most privileged progress at the end runs. It bounds what best-of-kappa
could reach with a critic that ranks as well as a short look ahead (the deployed policy runs on
the same seeds beside it).

Resumable: every branch state is one JSON file under ``--out``; finished ones are skipped.

Usage:
    python benchmarks/spiral_chunk_ranking.py --root DATA --task CleanWhiteboard --seeds 0 1 \
        --out DATA/chunk_ranking --doc docs/results/spiral_chunk_ranking.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.utils import polyak_update
from tqdm import tqdm, trange

from sarm2_gym.algos.baselines.common import eval_seeds
from sarm2_gym.algos.common.chunking import batch_observation
from sarm2_gym.algos.common.io import atomic_write_json
from sarm2_gym.algos.common.latents import draw_latents
from sarm2_gym.algos.spiral import SPIRAL, PrivilegedProgressLabeler
from sarm2_gym.algos.spiral.labeling import labels_from_steps_to_go, query_frames
from sarm2_gym.algos.spiral.networks import CriticEnsemble
from sarm2_gym.algos.spiral.persistence import CHECKPOINT_DIR
from sarm2_gym.algos.spiral.targets import (
    critic_targets,
    frame_to_transition_rewards,
    mc_returns,
)
from sarm2_gym.algos.vla.policy import wrap_env_for_policy
from sarm2_gym.common.files import atomic_write
from sarm2_gym.envs.registry import env_ids_by_name
from sarm2_gym.reward.metrics import spearman

TASK_IDS = env_ids_by_name()
REFERENCE_LATENT_SEED = 31_000_000  # + 1000 * run seed + episode: the kept rollouts' latents
CANDIDATE_LATENT_SEED = 32_000_000  # + branch key: the candidates' latents
CONTINUATION_LATENT_SEED = 33_000_000  # + branch key * 16 + draw: shared by all candidates
LOOKAHEAD_LATENT_SEED = 34_000_000  # + branch key: candidates and lookahead continuations
BRANCH_WINDOW = 60  # rows of reward in a branch's "progress60" (the lookahead's horizon + chunk)
SHORT_HORIZON_KEYS = ("progress60", "chunk_gain", "length")  # what a truncated branch records
VALUE_NAMES = {  # what the page values candidates by, after the records' kind
    "target": "realised value",
    "progress60": f"progress over the next {BRANCH_WINDOW} steps",
}


@dataclass(frozen=True)
class Refit:
    """A recipe to fit a fresh critic ensemble on a finished run's replay buffer.

    ``target`` ``"td"`` is the run's own update (blended target bootstrapped through the target
    critics and the run's final actor, the run's batch size), for ``factor`` times as many
    updates as the run made; ``"mc"`` regresses every member on the realised blended return
    that followed each chunk in the buffer (no bootstrapping), ``updates`` of ``batch_size``;
    ``"chunk"`` regresses on the chunk's own discounted reward, what the chunk itself did with no
    continuation in it, so its order at one state should follow the progress each candidate made.

    ``"progress"`` regresses on the progress the labeller's rewards add up to over the ``window``
    rows from the chunk's first (to the episode's end at most): a short horizon, as the lookahead
    scores candidates, with far less of the continuation's noise than the return to the end.

    ``branch_share`` > 0 draws that share of every batch from this benchmark's own branch states
    instead: several candidate chunks executed from one state, each with its realised value
    (``"mc"``) or its progress over :data:`BRANCH_WINDOW` rows (``"progress"``), the mean over its
    continuations; data with several actions per state, which a rollout buffer (one action per
    state) lacks. Cross-fitted by held-out episode parity: the critics that score a state's
    candidates never saw any branch of that episode. ``centred`` (branch data only) takes each
    state's mean off its candidates' values, so the critics learn nothing but how the chunk
    changes the value at a state: the order best-of-kappa needs, and nothing else.
    """

    target: str
    what: str
    factor: float = 1.0
    updates: int = 0
    batch_size: int = 0
    scaled: bool = False  # actions standardised per dimension (replay mean and std) for the critic
    branch_share: float = 0.0  # share of every batch from the other episodes' branch candidates
    window: int = 0  # rows of reward a "progress" target adds up
    centred: bool = False  # branch values minus their state's mean (branch_share 1 only)

    @property
    def branch_value(self) -> str:
        """The branch records' key that values a candidate as this recipe's target does."""
        return "progress60" if self.target == "progress" else "target"


REFITS: dict[str, Refit] = {
    "td_same": Refit("td", "the run's own recipe and number of updates, fresh initialisation"),
    "td_x4": Refit("td", "the run's own recipe, four times the updates", factor=4.0),
    "mc": Refit(
        "mc",
        "regression on the realised blended return, 10,000 updates of 256 chunks",
        updates=10_000,
        batch_size=256,
    ),
    "mc_scaled": Refit(
        "mc",
        "the same, actions standardised per dimension (replay mean and std) before the critic",
        updates=10_000,
        batch_size=256,
        scaled=True,
    ),
    "chunk": Refit(
        "chunk",
        "regression on the chunk's own discounted reward (no return after it), 10,000 updates "
        "of 256 chunks",
        updates=10_000,
        batch_size=256,
    ),
    "td_scaled": Refit(
        "td",
        "the run's own recipe and number of updates, actions standardised per dimension",
        scaled=True,
    ),
    "progress60": Refit(
        "progress",
        "regression on the progress made over the 60 steps from the chunk's first (the chunk and "
        "the lookahead's 50 after it), 10,000 updates of 256 chunks",
        updates=10_000,
        batch_size=256,
        window=BRANCH_WINDOW,
    ),
    "mc_branches": Refit(
        "mc",
        "regression as 'mc', half of every batch from the branch candidates of the other half of "
        "the held-out episodes (several actions per state; cross-fitted by episode)",
        updates=10_000,
        batch_size=256,
        branch_share=0.5,
    ),
    "branches": Refit(
        "mc",
        "regression on the branch candidates of the other half of the held-out episodes alone "
        "(cross-fitted by episode), 10,000 updates of 256",
        updates=10_000,
        batch_size=256,
        branch_share=1.0,
    ),
    "progress60_branches": Refit(
        "progress",
        "regression as 'progress60', half of every batch from the branch candidates of the other "
        "half of the held-out episodes, valued by the same 60-step progress (cross-fitted)",
        updates=10_000,
        batch_size=256,
        window=BRANCH_WINDOW,
        branch_share=0.5,
    ),
    "branches_progress60": Refit(
        "progress",
        "regression on the 60-step progress of the branch candidates of the other half of the "
        "held-out episodes alone (cross-fitted by episode), 10,000 updates of 256",
        updates=10_000,
        batch_size=256,
        window=BRANCH_WINDOW,
        branch_share=1.0,
    ),
    "branches_centred": Refit(
        "progress",
        "regression as 'branches_progress60' with each state's mean taken off its candidates' "
        "60-step progress: only how the chunk changes it at one state is learned",
        updates=10_000,
        batch_size=256,
        window=BRANCH_WINDOW,
        branch_share=1.0,
        centred=True,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, required=True, help="--root of benchmarks/spiral.py.")
    p.add_argument("--task", required=True, choices=sorted(TASK_IDS))
    p.add_argument("--method", default="spiral", help="SPIRAL method folder under the task.")
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    p.add_argument("--episodes", type=int, default=10, help="Held-out seeds per run.")
    p.add_argument(
        "--branch-steps",
        nargs="*",
        type=int,
        default=[20, 60, 100, 140, 180],
        help="Steps at which candidates branch (multiples of the chunk length).",
    )
    p.add_argument("--candidates", type=int, default=8, help="Candidate latents per state.")
    p.add_argument("--continuations", type=int, default=2, help="Continuation draws per chunk.")
    p.add_argument(
        "--continuation-steps",
        type=int,
        default=None,
        help="Stop every branch this many steps after the branch step instead of at the episode's "
        f"end (at least {BRANCH_WINDOW + 10}): the records then hold the progress of the next "
        f"{BRANCH_WINDOW} steps and of the chunk only, and the page is about that progress.",
    )
    p.add_argument(
        "--refits",
        nargs="*",
        default=[],
        choices=sorted(REFITS),
        help="Critic ensembles fitted again on each run's own replay buffer and scored on the "
        "same branch states (no simulation): "
        + "; ".join(f"{k}: {v.what}" for k, v in REFITS.items()),
    )
    p.add_argument(
        "--lookahead-episodes",
        type=int,
        default=0,
        help="Also run this many held-out episodes choosing every chunk by simulating each "
        "candidate --lookahead-horizon steps ahead (a perfect short-horizon critic).",
    )
    p.add_argument("--lookahead-horizon", type=int, default=50, help="Steps after the chunk.")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--threads", type=int, default=1, help="Torch threads.")
    p.add_argument("--out", type=Path, required=True, help="Folder of the branch records.")
    p.add_argument("--doc", type=Path, default=Path("docs/results/spiral_chunk_ranking.md"))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--command", default="", help="Command line quoted in the report.")
    p.add_argument("--note", default="", help="Paragraph printed under the title.")
    args = p.parse_args(argv)
    if args.continuation_steps is not None and args.continuation_steps < BRANCH_WINDOW + 10:
        p.error(
            f"--continuation-steps {args.continuation_steps}: the progress over {BRANCH_WINDOW} "
            f"steps needs at least {BRANCH_WINDOW + 10} (a chunk beyond, for the labeller)"
        )
    return args


@dataclass
class Trajectory:
    """One episode: the actions stepped, privileged progress after reset and after every step."""

    actions: list[np.ndarray]
    progress: list[float]
    success: bool
    observations: dict[int, dict[str, np.ndarray]]  # kept at the requested steps only

    @property
    def length(self) -> int:
        """Steps taken."""
        return len(self.actions)


def play(
    env: gym.Env,
    model: SPIRAL,
    reset_seed: int,
    latent_seed: int,
    prefix: Sequence[np.ndarray] = (),
    chunk: np.ndarray | None = None,
    keep_at: Sequence[int] = (),
    max_steps: int | None = None,
) -> Trajectory:
    """Replay ``prefix``, execute ``chunk``, then let the deployed policy finish the episode.

    ``max_steps`` stops the episode early (after that many steps in all).

    The policy plans a new chunk every ``n_action_steps`` steps, drawing fresh latents from a
    generator seeded with ``latent_seed`` (as :meth:`ResidualChunkPolicy.plan` deploys).
    """
    policy = model.policy
    policy.rng = torch.Generator().manual_seed(latent_seed)
    obs, info = env.reset(seed=reset_seed)
    traj = Trajectory([], [float(info["progress"])], False, {})
    scripted = [*prefix, *(chunk if chunk is not None else ())]
    queue: list[np.ndarray] = []
    done = False
    while not done:
        t = traj.length
        if t in keep_at:
            traj.observations[t] = {k: np.array(v) for k, v in obs.items()}
        if t < len(scripted):
            action = np.asarray(scripted[t], dtype=np.float32)
        else:
            if not queue:
                batched, _ = batch_observation(obs)
                planned = policy.plan(batched, deterministic=False)[0]
                queue = list(planned[: policy.n_action_steps])
            action = queue.pop(0)
        obs, _, terminated, truncated, info = env.step(action)
        traj.actions.append(action)
        traj.progress.append(float(info["progress"]))
        traj.success = bool(info["is_success"])
        done = terminated or truncated or (max_steps is not None and traj.length >= max_steps)
    return traj


def realised_values(traj: Trajectory, step: int, gamma: float, alpha: float) -> dict[str, float]:
    """What the critics estimate for the chunk at ``step``, measured on one finished episode.

    Besides the blended target, ``"progress60"`` is what the ``progress60`` refit regresses on:
    the labeller's rewards of the :data:`BRANCH_WINDOW` rows from ``step`` added up (the progress
    of the chunk and the steps after it), far less of the continuation's noise than the return to
    the end.

    The dense rewards are the privileged-progress labeller's (spec §1.8 smoothing and clipping)
    for the frames before each step, shifted to the reward that follows each row, as SPIRAL's
    buffer stores them. One difference from the buffer, kept so the recorded values can be
    computed again: a rollout in the buffer also holds the final observation as a last row
    (:mod:`~sarm2_gym.algos.spiral.rollouts`), so its labels reach the last step's progress and its
    MC exponent counts one row more (a factor ``gamma``). Here the episode ends at the frame the
    last action was taken in, which leaves the last step's reward out of the dense return.
    """
    length = traj.length  # rows 0..L-1, one per action
    progress = np.asarray(traj.progress[:length])  # the frame each row acted on
    labeller = PrivilegedProgressLabeler()
    idx = query_frames(length, labeller.frame_gap)
    labels = labels_from_steps_to_go(idx, 1.0 - progress[idx], length, labeller.window)
    rewards = frame_to_transition_rewards(labels.reward)[step:]
    dense = float(np.sum(gamma ** np.arange(rewards.size) * rewards))
    mc = float(mc_returns(length, gamma, float(traj.success))[step])
    return {
        "target": alpha * mc + (1.0 - alpha) * dense,
        "progress60": float(np.sum(rewards[:BRANCH_WINDOW])),
        "dense_return": dense,
        "success": float(traj.success),
        "final_progress": traj.progress[-1],
        "length": float(length),
    }


def branch_key(seed: int, episode: int, step: int) -> int:
    return (seed * 1000 + episode) * 1000 + step


def evaluate_run(args: argparse.Namespace, seed: int) -> None:
    """Every branch state of one run (skipping finished ones)."""
    folder = args.root / args.task / args.method / f"seed{seed}"
    if not (folder / "result.json").is_file():
        print(f"[{folder}] not finished; skipped", flush=True)
        return
    out = args.out / args.task / args.method / f"seed{seed}"
    todo = {
        episode: [
            s for s in args.branch_steps if not (out / f"ep{episode:02d}_t{s:03d}.json").exists()
        ]
        for episode in range(args.episodes)
    }
    if not any(todo.values()):  # e.g. a later call for the refits or the lookahead only
        return
    model = SPIRAL.load(folder / CHECKPOINT_DIR, reward_model=PrivilegedProgressLabeler())
    h = model.policy.chunk_shape[0]
    bad = [s for s in args.branch_steps if s % h]
    if bad:
        raise ValueError(f"branch steps {bad} are not multiples of the chunk length {h}")
    env = wrap_env_for_policy(gym.make(TASK_IDS[args.task], image_size=args.image_size), model)
    try:
        for episode, reset_seed in enumerate(eval_seeds(args.episodes)):
            if not todo[episode]:
                continue
            reference = play(
                env, model, reset_seed, REFERENCE_LATENT_SEED + 1000 * seed + episode,
                keep_at=todo[episode],
            )  # fmt: skip
            for step in todo[episode]:
                if step not in reference.observations:  # the episode ended before it
                    atomic_write_json(
                        out / f"ep{episode:02d}_t{step:03d}.json",
                        {"episode": episode, "step": step, "reached": False},
                    )
                    continue
                _branch(args, model, env, seed, episode, reset_seed, reference, step, out)
    finally:
        env.close()


def _branch(
    args: argparse.Namespace,
    model: SPIRAL,
    env: gym.Env,
    seed: int,
    episode: int,
    reset_seed: int,
    reference: Trajectory,
    step: int,
    out: Path,
) -> None:
    policy, cfg = model.policy, model.config
    key = branch_key(seed, episode, step)
    batched, _ = batch_observation(reference.observations[step])
    with torch.no_grad():
        features = policy.encode(batched)
        gen = torch.Generator().manual_seed(CANDIDATE_LATENT_SEED + key)
        noise = draw_latents((1, args.candidates, *policy.chunk_shape), gen, cfg.latent_temperature)
        chunks, min_q = policy.candidates(features, noise)
        f = features.repeat_interleave(args.candidates, dim=0)
        every_q = policy.critic(f, noise[0], chunks[0])  # (N_Q, K)
    start = time.perf_counter()
    branches: list[list[dict[str, float]]] = []
    prefix = reference.actions[:step]
    truncate = args.continuation_steps
    for k in tqdm(range(args.candidates), desc=f"seed {seed} ep {episode} t {step}", leave=False):
        runs = []
        for c in range(args.continuations):
            traj = play(
                env, model, reset_seed, CONTINUATION_LATENT_SEED + key * 16 + c,
                prefix=prefix, chunk=chunks[0, k].numpy(),
                max_steps=None if truncate is None else step + truncate,
            )  # fmt: skip
            if not np.allclose(traj.progress[: step + 1], reference.progress[: step + 1]):
                raise RuntimeError(
                    f"replaying episode {episode} to step {step} did not reproduce its progress: "
                    "the env is not deterministic here, so branches would not share a state"
                )
            values = realised_values(traj, step, cfg.gamma, cfg.mc_weight)
            end = min(step + policy.chunk_shape[0], traj.length)
            values["chunk_gain"] = traj.progress[end] - traj.progress[step]
            if truncate is not None:  # the return to the end and the success were not seen
                values = {k: values[k] for k in SHORT_HORIZON_KEYS}
            runs.append(values)
        branches.append(runs)
    atomic_write_json(
        out / f"ep{episode:02d}_t{step:03d}.json",
        {
            "episode": episode,
            "step": step,
            "reached": True,
            "continuation_steps": truncate,  # None: to the episode's end
            "progress": reference.progress[step],
            "reference_success": reference.success,
            # what any critic needs to rank these candidates again, without the simulator
            "features": features[0].tolist(),
            "chunks": chunks[0].tolist(),  # (K, H, A) env units
            "min_q": min_q[0].tolist(),
            "q": every_q.T.tolist(),  # (K, N_Q)
            "branches": branches,  # (K, C) dicts
            "wall_seconds": time.perf_counter() - start,
        },
    )
    print(json.dumps({"seed": seed, "episode": episode, "step": step}), flush=True)


# ------------------------------------------------------------------------------------ lookahead
def lookahead_episode(
    args: argparse.Namespace,
    model: SPIRAL,
    envs: tuple[gym.Env, gym.Env],
    seed: int,
    episode: int,
    reset_seed: int,
) -> dict[str, Any]:
    """One episode choosing each chunk among the run's kappa candidates by simulation.

    At every decision the candidates (drawn as deployment draws them) are each executed in a
    second env from the current state (the episode replayed) and followed by the deployed
    policy for ``--lookahead-horizon`` steps, all with the same continuation latents; the one
    with the most privileged progress at the end (1 once successful) is executed in the episode.
    The continuation's generator is seeded with the candidates' seed, so its first draw repeats
    the candidates' latents (at the state after each chunk); every candidate gets the same
    continuation, so this favours none of them.
    """
    policy, cfg = model.policy, model.config
    main, sim = envs
    h = policy.chunk_shape[0]
    actions: list[np.ndarray] = []
    obs, info = main.reset(seed=reset_seed)
    progress = [float(info["progress"])]
    done = success = False
    agree = decisions = 0
    while not done:
        key = branch_key(seed, episode, len(actions))
        batched, _ = batch_observation(obs)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(LOOKAHEAD_LATENT_SEED + key)
            noise = draw_latents((1, cfg.kappa, *policy.chunk_shape), gen, cfg.latent_temperature)
            chunks, min_q = policy.candidates(policy.encode(batched), noise)
        scores = []
        for k in range(cfg.kappa):
            ahead = play(
                sim, model, reset_seed, LOOKAHEAD_LATENT_SEED + key, prefix=actions,
                chunk=chunks[0, k].numpy(), max_steps=len(actions) + h + args.lookahead_horizon,
            )  # fmt: skip
            if not np.isclose(ahead.progress[len(actions)], progress[-1]):
                raise RuntimeError(
                    f"replaying episode {episode} to step {len(actions)} did not reproduce it: "
                    "the env is not deterministic here"
                )
            scores.append(1.0 if ahead.success else ahead.progress[-1])
        best = int(np.argmax(scores))
        decisions += 1
        agree += int(best == int(min_q[0].argmax()))
        for action in chunks[0, best, : policy.n_action_steps].numpy():
            obs, _, terminated, truncated, info = main.step(action)
            actions.append(action)
            progress.append(float(info["progress"]))
            success = bool(info["is_success"])
            done = terminated or truncated
            if done:
                break
    return {
        "episode": episode,
        "success": success,
        "length": len(actions),
        "decisions": decisions,
        "critics_agree": agree / max(decisions, 1),
    }


def lookahead_run(args: argparse.Namespace, seed: int) -> None:
    """``--lookahead-episodes`` episodes of one run, with the deployed policy on the same seeds."""
    folder = args.root / args.task / args.method / f"seed{seed}"
    out = (
        args.out / args.task / args.method / f"seed{seed}" / f"lookahead_h{args.lookahead_horizon}"
    )
    todo = [
        (e, s)
        for e, s in enumerate(eval_seeds(args.lookahead_episodes))
        if not (out / f"ep{e:02d}.json").exists()
    ]
    if not todo or not (folder / "result.json").is_file():
        return
    model = SPIRAL.load(folder / CHECKPOINT_DIR, reward_model=PrivilegedProgressLabeler())

    def make() -> gym.Env:
        return wrap_env_for_policy(gym.make(TASK_IDS[args.task], image_size=args.image_size), model)

    envs = (make(), make())
    try:
        for episode, reset_seed in tqdm(todo, desc=f"seed {seed} lookahead"):
            start = time.perf_counter()
            record = lookahead_episode(args, model, envs, seed, episode, reset_seed)
            deployed = play(
                envs[0], model, reset_seed, REFERENCE_LATENT_SEED + 1000 * seed + episode
            )
            record["deployed_success"] = deployed.success
            record["wall_seconds"] = time.perf_counter() - start
            atomic_write_json(out / f"ep{episode:02d}.json", record)
            print(json.dumps({"seed": seed, **record}), flush=True)
    finally:
        for env in envs:
            env.close()


def _lookahead_table(args: argparse.Namespace, seeds: Sequence[int]) -> list[str]:
    """Success choosing by simulation against the deployed policy on the same seeds (if run)."""
    found = {}
    for seed in seeds:
        folder = args.out / args.task / args.method / f"seed{seed}"
        for path in sorted(folder.glob("lookahead_h*/ep*.json")):
            horizon = int(path.parent.name.removeprefix("lookahead_h"))
            found.setdefault(horizon, {}).setdefault(seed, []).append(json.loads(path.read_text()))
    if not found:
        return []
    lines = [
        "",
        "### Chunks chosen by simulation: a perfect short-horizon critic",
        "",
        "Held-out episodes in which every chunk is chosen among the run's kappa candidates "
        "(drawn as deployed) by executing each from the current state in a second env and "
        "following it with the deployed policy for H more steps; the one with the most "
        "privileged progress at the end is executed. The deployed policy (the critics' choice) "
        "runs on the same seeds. Critics agree = how often the critics' pick was the simulated "
        "best (chance: 1 / kappa).",
        "",
        "| H (steps) | seed | episodes | success, chosen by simulation | success, as deployed | "
        "critics agree | min per episode (both) |",
        "|---|---|---|---|---|---|---|",
    ]
    for horizon, by_seed in sorted(found.items()):
        for seed, records in sorted(by_seed.items()):
            n = len(records)
            chosen = sum(r["success"] for r in records)
            deployed = sum(r["deployed_success"] for r in records)
            agree = np.mean([r["critics_agree"] for r in records])
            minutes = np.mean([r["wall_seconds"] for r in records]) / 60
            lines.append(
                f"| {horizon} | {seed} | {n} | {chosen} / {n} | {deployed} / {n} | {agree:.2f} "
                f"| {minutes:.1f} |"
            )
    return lines


# ------------------------------------------------------------------------------------ refits
def branch_samples(
    records: Sequence[dict[str, Any]], key: str = "target", centred: bool = False
) -> tuple[torch.Tensor, ...]:
    """``(features (N, F), chunks (N, H, A), values (N,))``: every candidate of ``records``.

    A candidate's value is its continuations' mean of ``key`` (``"target"``: the realised value,
    ``"progress60"``: the progress over :data:`BRANCH_WINDOW` rows); ``centred`` takes the mean
    over the state's candidates off.
    """
    features, chunks, values = [], [], []
    for r in records:
        candidates = torch.tensor(r["chunks"])  # (K, H, A)
        features.append(torch.tensor(r["features"])[None].expand(candidates.shape[0], -1))
        chunks.append(candidates)
        try:
            v = torch.tensor([np.mean([b[key] for b in runs]) for runs in r["branches"]])
        except KeyError:
            raise ValueError(
                f"branch state {r['episode']}:{r['step']} has no '{key}' (recorded by an older "
                "version of this benchmark): delete its records and run it again"
            ) from None
        values.append(v - v.mean() if centred else v)
    return torch.cat(features), torch.cat(chunks), torch.cat(values).float()


def windowed_progress(
    rewards: torch.Tensor, episodes: Sequence[dict[str, Any]], window: int
) -> torch.Tensor:
    """Per stored row: the sum of the next ``window`` rewards of its episode (its progress).

    ``rewards`` are the replay's per-row rewards, ``episodes`` its episode records.
    """
    rewards = rewards.double().numpy()
    out = np.zeros_like(rewards)
    for ep in episodes:
        start, n = int(ep["start"]), int(ep["length"])
        cum = np.concatenate([[0.0], np.cumsum(rewards[start : start + n])])
        i = np.arange(n)
        out[start : start + n] = cum[np.minimum(i + window, n)] - cum[i]
    return torch.from_numpy(out).float()


def refit_critic(
    model: SPIRAL,
    recipe: Refit,
    seed: int,
    desc: str = "refit",
    branches: tuple[torch.Tensor, ...] | None = None,
) -> tuple[CriticEnsemble, Callable[[torch.Tensor], torch.Tensor]]:
    """A fresh critic ensemble fitted on ``model``'s replay buffer by ``recipe``.

    ``branches`` (:func:`branch_samples`) supply the ``recipe.branch_share`` of every batch.

    Returns:
        The critics and the map from env-unit chunks to what they read.
    """
    if recipe.branch_share and (branches is None or recipe.target not in ("mc", "progress")):
        raise ValueError("a recipe with branch_share needs target 'mc' or 'progress' and branches")
    if recipe.branch_share and recipe.target == "progress" and recipe.window != BRANCH_WINDOW:
        raise ValueError(f"branch records hold the progress over {BRANCH_WINDOW} rows only")
    if recipe.centred and recipe.branch_share != 1.0:
        raise ValueError("centred values are for recipes on branch data alone")
    p, cfg = model.policy, model.config
    h, a = p.chunk_shape
    stored = model.replay.state()[0]  # every stored row, episodes in order
    rows = stored["replay.actions"]  # (N, A)
    mean, std = rows.mean(dim=0), rows.std(dim=0).clamp_min(1e-2)

    def reads(chunk: torch.Tensor) -> torch.Tensor:
        return (chunk - mean) / std if recipe.scaled else chunk

    torch.manual_seed(seed)
    critic = CriticEnsemble(cfg.n_critics, p.base.feature_dim, h, a, cfg.critic_hidden)
    target = copy.deepcopy(critic).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        critic.parameters(), lr=cfg.critic_lr, weight_decay=cfg.weight_decay
    )
    rng = np.random.default_rng(seed)
    latent_rng = torch.Generator().manual_seed(seed)
    if recipe.target in ("mc", "chunk", "progress"):
        parts = [
            model.replay.episode_chunks(i, cfg.mc_weight) for i in range(len(model.replay.episodes))
        ]
        features = torch.cat([f for f, _, _ in parts])
        actions = torch.cat([c for _, c, _ in parts])
        if recipe.target == "chunk":
            realised = stored["replay.chunk_return"].float()
        elif recipe.target == "progress":
            realised = windowed_progress(
                stored["replay.rewards"], model.replay.episodes, recipe.window
            )
        else:
            realised = torch.from_numpy(np.concatenate([r for _, _, r in parts])).float()
        updates, batch_size = recipe.updates, recipe.batch_size
    else:
        updates, batch_size = int(recipe.factor * model._n_updates), cfg.batch_size
    for _ in trange(updates, desc=desc, leave=False):
        if recipe.target in ("mc", "chunk", "progress"):
            n_branch = round(batch_size * recipe.branch_share)
            idx = torch.from_numpy(rng.integers(0, features.shape[0], size=batch_size - n_branch))
            f, chunk, y = features[idx], reads(actions[idx]), realised[idx]
            if n_branch:
                assert branches is not None  # checked above
                b_f, b_chunk, b_y = branches
                jdx = torch.from_numpy(rng.integers(0, b_f.shape[0], size=n_branch))
                f = torch.cat([f, b_f[jdx]])
                chunk = torch.cat([chunk, reads(b_chunk[jdx])])
                y = torch.cat([y, b_y[jdx]])
        else:
            batch = model.replay.sample(batch_size, rng)
            f, chunk = batch.features, reads(batch.actions)
            with torch.no_grad():
                z_next = draw_latents((f.shape[0], h, a), latent_rng, cfg.latent_temperature)
                a_next, _ = p.total_chunks(batch.next_features, z_next)
                q_next = target.min_q(batch.next_features, z_next, reads(a_next))
                y, _ = critic_targets(
                    batch.chunk_return, batch.done, q_next, batch.mc_return, cfg.gamma, h,
                    cfg.mc_weight,
                )  # fmt: skip
        q = critic(f, torch.zeros_like(chunk), chunk)
        loss = (q - y[None]).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.grad_clip)
        optimizer.step()
        if recipe.target == "td":
            polyak_update(critic.parameters(), target.parameters(), cfg.tau)
    return critic.eval(), reads


def refit_run(args: argparse.Namespace, seed: int, name: str) -> None:
    """Fit critics again by recipe ``name`` and record their min-Q at every branch state."""
    out = args.out / args.task / args.method / f"seed{seed}"
    path = out / f"refit_{name}.json"
    records = _load(args, seed)
    if path.is_file() or not records:
        return
    folder = args.root / args.task / args.method / f"seed{seed}"
    model = SPIRAL.load(folder / CHECKPOINT_DIR, reward_model=PrivilegedProgressLabeler())
    recipe = REFITS[name]
    # Branch data is cross-fitted: the critics that score an episode's states saw none of its
    # branches (two folds by episode parity); other recipes fit once and score every state.
    folds = [(records, records)]
    if recipe.branch_share:
        folds = [
            (
                [r for r in records if r["episode"] % 2 != k],
                [r for r in records if r["episode"] % 2 == k],
            )
            for k in (0, 1)
        ]
    fitted, min_q = 0.0, {}
    for k, (train, scored) in enumerate(folds):
        start = time.perf_counter()
        critic, reads = refit_critic(
            model, recipe, seed + 100 * k, desc=f"seed {seed} refit {name} ({k + 1}/{len(folds)})",
            branches=branch_samples(train, recipe.branch_value, recipe.centred)
            if recipe.branch_share
            else None,
        )  # fmt: skip
        fitted += time.perf_counter() - start
        with torch.no_grad():
            for r in scored:
                chunks = reads(torch.tensor(r["chunks"]))
                f = torch.tensor(r["features"])[None].expand(chunks.shape[0], -1)
                min_q[f"{r['episode']}:{r['step']}"] = critic.min_q(
                    f, torch.zeros_like(chunks), chunks
                ).tolist()
    atomic_write_json(path, {"recipe": name, "fit_seconds": fitted, "min_q": min_q})
    print(json.dumps({"seed": seed, "refit": name, "fit_seconds": round(fitted)}), flush=True)


# ------------------------------------------------------------------------------------ report
def fmt(x: Any, digits: int = 3) -> str:
    """A table cell: a dash for nothing, ``mean (count)`` for a within-state mean."""
    if x is None:
        return "–"
    if isinstance(x, tuple):
        return f"{x[0]:.2f} ({x[1]})"
    return f"{x:.{digits}f}"


def _load(args: argparse.Namespace, seed: int) -> list[dict[str, Any]]:
    folder = args.out / args.task / args.method / f"seed{seed}"
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("ep*_t*.json"))]
    records = [r for r in records if r["reached"]]
    if len({r.get("continuation_steps") for r in records}) > 1:
        raise ValueError(
            f"{folder} mixes branches of different lengths (--continuation-steps, or none: to "
            "the episode's end): keep each kind in its own --out"
        )
    return records


def _continuation_steps(by_seed: dict[int, list[dict[str, Any]]]) -> int | None:
    """How far the records' branches ran after the branch step (``None``: to the episode's end)."""
    found = {r.get("continuation_steps") for rs in by_seed.values() for r in rs}
    if len(found) > 1:
        raise ValueError(f"the seeds' branches have different lengths: {sorted(map(str, found))}")
    return found.pop() if found else None


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """The project's Spearman, ``None`` where either side is constant (nothing to order)."""
    rho = spearman(x, y)
    return None if np.isnan(rho) else rho


def summarise(
    records: list[dict[str, Any]],
    deployed_kappa: int,
    min_q: dict[str, list[float]] | None = None,
    value_key: str = "target",
) -> dict[str, Any]:
    """Per-run statistics over branch states (see the module docstring).

    ``min_q`` (``"episode:step"`` -> candidates' min-Q) scores the candidates with other critics
    than the run's own (a refit). ``value_key`` is what a candidate is valued by: ``"target"``,
    the realised value, or ``"progress60"``, what branches cut short by ``--continuation-steps``
    are valued by; with the latter the statistics of success are ``None`` (none was seen).
    """
    within, within_success, within_gain = [], [], []
    pick_gain, best_gain, pick_gain_k, best_gain_k = [], [], [], []
    pick_succ, mean_succ, best_succ = [], [], []
    between_sd, continuation_sd, q_sd = [], [], []
    pooled_q, pooled_v = [], []
    q_state_means: list[float] = []
    smooth: list[float] = []
    best_gain_cv: list[float] = []
    best_success_cv: list[float] = []
    finished = value_key == "target"  # branches cut short saw no success
    within_p60: list[float] = []
    repeat: list[float] = []  # the order of one continuation draw against another's
    repeat_p60: list[float] = []
    between_sd_p60, continuation_sd_p60 = [], []
    for r in records:
        q = np.asarray(r["min_q"] if min_q is None else min_q[f"{r['episode']}:{r['step']}"])
        target = np.array([[b[value_key] for b in runs] for runs in r["branches"]])  # (K, C)
        success = np.array(
            [[b["success"] if finished else 0.0 for b in runs] for runs in r["branches"]]
        )
        gain = np.array([[b["chunk_gain"] for b in runs] for runs in r["branches"]])
        v, s = target.mean(axis=1), success.mean(axis=1)
        p60 = (
            np.array([[b["progress60"] for b in runs] for runs in r["branches"]])
            if "progress60" in r["branches"][0][0]
            else None
        )
        if p60 is not None:
            rho = _spearman(q, p60.mean(axis=1))
            if rho is not None:
                within_p60.append(rho)
            between_sd_p60.append(p60.mean(axis=1).std())
        for store, draws in ((repeat, target), (repeat_p60, p60)):
            if draws is None:
                continue
            found = [
                _spearman(draws[:, i], draws[:, j])
                for i in range(draws.shape[1])
                for j in range(i + 1, draws.shape[1])
            ]
            pairs = [x for x in found if x is not None]
            if pairs:
                store.append(float(np.mean(pairs)))
        for store, y in ((within, v), (within_success, s), (within_gain, gain.mean(axis=1))):
            if store is within_success and not finished:
                continue
            rho = _spearman(q, y)
            if rho is not None:
                store.append(rho)
        if target.shape[1] > 1:
            # Chosen on one continuation draw, valued on the others: the gain a perfect ranking
            # could bring, without the luck of the draw it was chosen on.
            cv, cv_success = [], []
            for c in range(target.shape[1]):
                rest = np.delete(target, c, axis=1).mean(axis=1)
                chosen = int(np.argmax(target[:, c]))
                cv.append(rest[chosen] - rest.mean())
                cv_success.append(np.delete(success, c, axis=1).mean(axis=1)[chosen])
            best_gain_cv.append(float(np.mean(cv)))
            if finished:
                best_success_cv.append(float(np.mean(cv_success)))
        pick = int(np.argmax(q))
        pick_gain.append(v[pick] - v.mean())
        best_gain.append(v.max() - v.mean())
        k = min(deployed_kappa, q.size)  # the deployed choice: among the first kappa candidates
        pick_k = int(np.argmax(q[:k]))
        pick_gain_k.append(v[pick_k] - v[:k].mean())
        best_gain_k.append(v[:k].max() - v[:k].mean())
        if finished:
            pick_succ.append(s[pick])
            mean_succ.append(s.mean())
            best_succ.append(s.max())
        between_sd.append(v.std())
        if "chunks" in r:  # are candidates with similar chunks worth similar values?
            c = np.asarray(r["chunks"]).reshape(q.size, -1)
            i, j = np.triu_indices(q.size, k=1)
            rho = _spearman(np.linalg.norm(c[i] - c[j], axis=1), np.abs(v[i] - v[j]))
            if rho is not None:
                smooth.append(rho)
        if target.shape[1] > 1:  # one draw per candidate says nothing about continuations
            continuation_sd.append(target.std(axis=1).mean())
            if p60 is not None:
                continuation_sd_p60.append(p60.std(axis=1).mean())
        q_sd.append(q.std())
        q_state_means.append(float(q.mean()))
        pooled_q += q.tolist()
        pooled_v += v.tolist()

    def within_mean(values: list[float]) -> tuple[float, int] | None:
        return (float(np.mean(values)), len(values)) if values else None

    return {
        "states": len(records),
        "within_rho_progress60": within_mean(within_p60),
        "repeat_rho": within_mean(repeat),
        "repeat_rho_progress60": within_mean(repeat_p60),
        "between_sd_progress60": float(np.mean(between_sd_p60)) if between_sd_p60 else None,
        "continuation_sd_progress60": float(np.mean(continuation_sd_p60))
        if continuation_sd_p60
        else None,
        "within_rho": (float(np.mean(within)), len(within)) if within else None,
        "within_rho_success": (float(np.mean(within_success)), len(within_success))
        if within_success
        else None,
        "within_rho_chunk_gain": (float(np.mean(within_gain)), len(within_gain))
        if within_gain
        else None,
        "smoothness_rho": (float(np.mean(smooth)), len(smooth)) if smooth else None,
        "pooled_rho": _spearman(np.asarray(pooled_q), np.asarray(pooled_v)),
        "pick_gain": float(np.mean(pick_gain)),
        "best_gain": float(np.mean(best_gain)),
        "best_gain_cv": float(np.mean(best_gain_cv)) if best_gain_cv else None,
        "best_success_cv": float(np.mean(best_success_cv)) if best_success_cv else None,
        "pick_gain_k": float(np.mean(pick_gain_k)),
        "best_gain_k": float(np.mean(best_gain_k)),
        "pick_success": float(np.mean(pick_succ)) if pick_succ else None,
        "mean_success": float(np.mean(mean_succ)) if mean_succ else None,
        "best_success": float(np.mean(best_succ)) if best_succ else None,
        "between_sd": float(np.mean(between_sd)),
        "continuation_sd": float(np.mean(continuation_sd)) if continuation_sd else None,
        "q_sd_within": float(np.mean(q_sd)),
        "q_sd_between_states": float(np.std(q_state_means)),
    }


def _plot(
    args: argparse.Namespace, by_seed: dict[int, list[dict[str, Any]]], value_key: str
) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for seed, records in by_seed.items():
        qs, vs, qp, vp = [], [], [], []
        for r in records:
            q = np.asarray(r["min_q"])
            v = np.array([np.mean([b[value_key] for b in runs]) for runs in r["branches"]])
            qs += (q - q.mean()).tolist()
            vs += (v - v.mean()).tolist()
            qp += q.tolist()
            vp += v.tolist()
        axes[0].scatter(qs, vs, s=6, alpha=0.5, label=f"seed {seed}")
        axes[1].scatter(qp, vp, s=6, alpha=0.5, label=f"seed {seed}")
    axes[0].set(
        title="At one state (both centred on the state's mean)",
        xlabel="min-Q - state mean",
        ylabel=f"{VALUE_NAMES[value_key]} - state mean",
    )
    axes[1].set(title="Pooled over states", xlabel="min-Q", ylabel=VALUE_NAMES[value_key])
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = args.doc.with_suffix(".png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _refit_table(
    args: argparse.Namespace,
    rows: list[tuple[int, int, dict[str, Any]]],
    by_seed: dict[int, list[dict[str, Any]]],
    value_key: str,
) -> list[str]:
    """The same states scored by critics fitted again on each run's replay (if any were)."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for seed in by_seed:
        folder = args.out / args.task / args.method / f"seed{seed}"
        for path in sorted(folder.glob("refit_*.json")):
            record = json.loads(path.read_text())
            found.setdefault(record["recipe"], {})[seed] = record
    if not found:
        return []
    seeds = [s for s, _, _ in rows]
    kappas = {s: k for s, k, _ in rows}
    lines = [
        "",
        "### Critics fitted again on each run's own replay buffer",
        "",
        "Fresh critic ensembles (the run's architecture) fitted offline on the replay buffer the "
        "run ended with (its rollouts and their oracle rewards; recipes with branch data also or "
        "only on the branch states above, of the other half of the episodes), then scored on the "
        "same branch states and candidates as above; no new simulation. Cells: "
        + " / ".join(f"seed {s}" for s in seeds)
        + ".",
        "",
    ]
    value = VALUE_NAMES[value_key]
    finished = value_key == "target"  # branches cut short saw no success

    def within(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda m: f"{m[key][0]:.2f}" if m[key] else "–"

    every: list[tuple[str, Callable[[dict[str, Any]], str], bool]] = [  # as in write_report
        (f"Spearman(min-Q, {value}) at one state", within("within_rho"), False),
        (
            "Spearman(min-Q, progress the chunk made) at one state",
            within("within_rho_chunk_gain"),
            False,
        ),
        (
            f"Spearman(min-Q, {VALUE_NAMES['progress60']}) at one state",
            within("within_rho_progress60"),
            True,
        ),
        (f"pick - mean {value}", lambda m: f"{m['pick_gain']:.3f}", False),
        (f"best - mean {value} (cross-validated)", lambda m: fmt(m["best_gain_cv"]), False),
        (
            "success of the pick (mean of all: "
            + (" / ".join(f"{m['mean_success']:.2f}" for _, _, m in rows) if finished else "")
            + ")",
            lambda m: f"{m['pick_success']:.2f}",
            True,
        ),
        ("spread of min-Q at one state", lambda m: f"{m['q_sd_within']:.4f}", False),
    ]
    columns = [(label, cell) for label, cell, full in every if finished or not full]
    lines += [
        "| critics | " + " | ".join(c for c, _ in columns) + " | fit time (min) |",
        "|---|" + "---|" * (len(columns) + 1),
    ]

    def cells(stats: dict[int, dict[str, Any]], fit: dict[int, float] | None) -> str:
        def join(f: Callable[[dict[str, Any]], str]) -> str:
            return " / ".join(f(stats[s]) if s in stats else "–" for s in seeds)

        minutes = (
            "–"
            if fit is None
            else " / ".join(f"{fit[s] / 60:.1f}" if s in fit else "–" for s in seeds)
        )
        return " | ".join(join(f) for _, f in columns) + f" | {minutes}"

    lines.append(
        "| the run's own (as deployed) | " + cells({s: m for s, _, m in rows}, None) + " |"
    )
    for name, by in found.items():
        stats = {s: summarise(by_seed[s], kappas[s], r["min_q"], value_key) for s, r in by.items()}
        fit = {s: float(r["fit_seconds"]) for s, r in by.items()}
        lines.append(f"| {name}: {REFITS[name].what} | " + cells(stats, fit) + " |")
    return lines


def write_report(args: argparse.Namespace) -> str:
    by_seed = {s: _load(args, s) for s in args.seeds}
    by_seed = {s: r for s, r in by_seed.items() if r}
    continuation_steps = _continuation_steps(by_seed)
    value_key = "target" if continuation_steps is None else "progress60"
    value = VALUE_NAMES[value_key]
    rows = []
    for seed, records in by_seed.items():
        result = json.loads(
            (args.root / args.task / args.method / f"seed{seed}" / "result.json").read_text()
        )
        kappa = int(result["extra"]["spiral"]["kappa"])
        rows.append((seed, kappa, summarise(records, kappa, value_key=value_key)))

    expected = len(args.seeds) * args.episodes * len(args.branch_steps)
    done = sum(
        len(list((args.out / args.task / args.method / f"seed{s}").glob("ep*_t*.json")))
        for s in args.seeds
    )
    lines = [
        f"# Can SPIRAL's critics rank chunks at one state? {args.task}",
        "",
        *(
            [
                f"> **PARTIAL RESULTS**: {done} of {expected} branch states are done; rerun the "
                "command below to continue.",
                "",
            ]
            if done < expected
            else []
        ),
        f"Final policies of `benchmarks/spiral.py` runs (`{args.root.name}`, method "
        f"`{args.method}`), on the first {args.episodes} held-out seeds. At steps "
        f"{', '.join(map(str, args.branch_steps))} of each deployed episode, {args.candidates} "
        "candidate chunks (base chunk + residual, fresh latents) are each executed from the same "
        "simulator state (the episode replayed), then the deployed policy "
        + (
            "finishes the episode, "
            if value_key == "target"
            else f"runs on to {continuation_steps} steps after the branch step, "
        )
        + f"{args.continuations} times with latents shared by all candidates. "
        + (
            "Realised value = the critics' own target measured on that episode: alpha * success "
            "* gamma^(L-1-t) + (1 - alpha) * discounted dense return of the privileged-progress "
            "labeller, up to the frame of the last action (the buffer's rollouts also hold the "
            "final observation; `benchmarks/spiral_chunk_ranking.py` documents the difference). "
            if value_key == "target"
            else f"The candidates are valued by the {value}: the privileged-progress labeller's "
            f"rewards of the {BRANCH_WINDOW} rows from the branch step added up, what "
            "`--refits progress60` regresses on (the branches do not run to the episode's end, "
            "so no success or return to the end is measured). "
        )
        + "Within-state numbers are means over states; the number of states with any spread is "
        "in brackets.",
        "",
        *([args.note, ""] if args.note else []),
        "| | " + " | ".join(f"seed {s}" for s, _, _ in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    # Rows marked True need branches run to the episode's end (success, and the 60-step
    # progress beside a page that values by something else); a page of branches cut short
    # leaves them out.
    every: list[tuple[str, Callable[[dict[str, Any]], str], bool]] = [
        ("branch states", lambda m: str(m["states"]), False),
        (f"Spearman(min-Q, {value}) at one state", lambda m: fmt(m["within_rho"]), False),
        (
            "Spearman(min-Q, success rate) at one state",
            lambda m: fmt(m["within_rho_success"]),
            True,
        ),
        (
            "Spearman(min-Q, progress the chunk made) at one state",
            lambda m: fmt(m["within_rho_chunk_gain"]),
            False,
        ),
        (
            f"Spearman(min-Q, {VALUE_NAMES['progress60']}) at one state",
            lambda m: fmt(m["within_rho_progress60"]),
            True,
        ),
        (
            f"Spearman(one continuation draw's {value}, another's) at one state: how "
            "reproducible the candidates' order is, the most a critic could follow",
            lambda m: fmt(m["repeat_rho"]),
            False,
        ),
        (
            f"the same for the {VALUE_NAMES['progress60']}",
            lambda m: fmt(m["repeat_rho_progress60"]),
            True,
        ),
        (f"Spearman(min-Q, {value}) pooled over states", lambda m: fmt(m["pooled_rho"]), False),
        (
            "Spearman(distance between two candidates' chunks, difference of their values) at "
            "one state",
            lambda m: fmt(m["smoothness_rho"]),
            False,
        ),
        (
            f"{value} of the critics' pick - candidates' mean",
            lambda m: fmt(m["pick_gain"], 4),
            False,
        ),
        (
            f"{value} of the best candidate - candidates' mean",
            lambda m: fmt(m["best_gain"], 4),
            False,
        ),
        (
            "the same, best chosen on one continuation draw and valued on the other",
            lambda m: fmt(m["best_gain_cv"], 4),
            False,
        ),
        (
            "the same among the deployed kappa (pick / best)",
            lambda m: f"{fmt(m['pick_gain_k'], 4)} / {fmt(m['best_gain_k'], 4)}",
            False,
        ),
        (
            "success: critics' pick / all candidates / the most successful (in brackets: the "
            "best value on one draw, its success on the other)",
            lambda m: (
                f"{m['pick_success']:.2f} / {m['mean_success']:.2f} / "
                f"{m['best_success']:.2f} ({fmt(m['best_success_cv'], 2)})"
            ),
            True,
        ),
        (
            f"spread of candidates' {value} at one state (std)",
            lambda m: fmt(m["between_sd"], 4),
            False,
        ),
        (
            "spread of one candidate's continuations (std)",
            lambda m: fmt(m["continuation_sd"], 4),
            False,
        ),
        (
            f"spread of candidates' {VALUE_NAMES['progress60']} at one state (std) / of one "
            "candidate's continuations",
            lambda m: (
                f"{fmt(m['between_sd_progress60'], 4)} / {fmt(m['continuation_sd_progress60'], 4)}"
            ),
            True,
        ),
        ("spread of min-Q at one state (std)", lambda m: fmt(m["q_sd_within"], 4), False),
        (
            "spread of min-Q's state means (std)",
            lambda m: fmt(m["q_sd_between_states"], 4),
            False,
        ),
    ]
    finished = value_key == "target"  # branches cut short saw no success
    table = [(label, cell) for label, cell, full in every if finished or not full]
    for label, cell in table:
        lines.append(f"| {label} | " + " | ".join(cell(m) for _, _, m in rows) + " |")
    lines += _refit_table(args, rows, by_seed, value_key)
    lines += _lookahead_table(args, args.seeds)
    plot = _plot(args, by_seed, value_key) if by_seed else None
    walls = [r["wall_seconds"] for records in by_seed.values() for r in records]
    lines += [
        "",
        *([f"![min-Q against {value}]({plot.name})", ""] if plot else []),
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} torch thread(s); "
        f"{np.mean(walls) / 60 if walls else 0:.1f} min per branch state on average.",
        "",
        "## Command",
        "",
        "```bash",
        args.command
        or f"python benchmarks/spiral_chunk_ranking.py --root DATA --task {args.task} "
        f"--seeds {' '.join(map(str, args.seeds))} --episodes {args.episodes} "
        f"--branch-steps {' '.join(map(str, args.branch_steps))} "
        f"--candidates {args.candidates} --continuations {args.continuations} "
        + ("" if continuation_steps is None else f"--continuation-steps {continuation_steps} ")
        + f"--out OUT --doc {args.doc}",
        "```",
        "",
    ]
    text = "\n".join(lines)
    atomic_write(args.doc, lambda tmp: tmp.write_text(text))  # a killed run leaves the old page
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.report_only:
        for seed in args.seeds:
            evaluate_run(args, seed)
            for name in args.refits:
                refit_run(args, seed, name)
            if args.lookahead_episodes:
                lookahead_run(args, seed)
    write_report(args)
    print(f"wrote {args.doc}", flush=True)


if __name__ == "__main__":
    main()
