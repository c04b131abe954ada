from __future__ import annotations

import numpy as np
import pytest
import torch

from sarm2_gym.algos.spiral import (
    PrivilegedProgressLabeler,
    RolloutEpisode,
    annotate_from_progress,
    convert_discount,
)
from sarm2_gym.algos.spiral.buffer import ChunkReplayBuffer
from sarm2_gym.algos.spiral.config import GAMMA_10HZ, SPIRALConfig
from sarm2_gym.algos.spiral.labeling import (
    labels_from_steps_to_go,
    query_frames,
    smooth_steps_to_go,
)
from sarm2_gym.algos.spiral.networks import CriticEnsemble, ResidualActor, best_of_kappa
from sarm2_gym.algos.spiral.targets import (
    chunk_transitions,
    critic_targets,
    frame_to_transition_rewards,
    mc_returns,
)
from sarm2_gym.algos.vla.rabc import rabc_deltas, rabc_weights


def test_residual_is_bounded_by_its_scale() -> None:
    actor = ResidualActor(
        feature_dim=6, chunk_size=3, action_dim=4, hidden=(16, 16), output_scale=0.1
    )
    out = actor(torch.randn(8, 6) * 1e4, torch.randn(8, 3, 4) * 1e4)
    assert out.shape == (8, 3, 4)
    assert out.abs().max() <= 0.1
    with torch.no_grad():
        for p in actor.parameters():
            p.mul_(50.0)  # even a saturated network cannot exceed the bound
    out = actor(torch.randn(8, 6), torch.randn(8, 3, 4))
    assert out.abs().max() <= 0.1 and out.abs().max() > 0.09


def test_fresh_residual_is_near_zero() -> None:
    actor = ResidualActor(6, 3, 4, (16, 16), 0.1)
    assert actor(torch.randn(5, 6), torch.randn(5, 3, 4)).abs().max() < 1e-2


def test_critic_target_matches_a_hand_computed_example() -> None:
    # Episode of L = 4 rows, per-frame labeller rewards r_t = P_t - P_{t-1} (r_0 = 0):
    frame_rewards = np.array([0.0, 0.1, 0.2, 0.3])
    rewards = frame_to_transition_rewards(frame_rewards)  # reward following each row
    assert rewards.tolist() == [0.1, 0.2, 0.3, 0.0]
    gamma, h = 0.5, 2
    chunk_return, nxt, done = chunk_transitions(rewards, h, gamma)
    # R_0 = 0.1 + 0.5*0.2; R_1 = 0.2 + 0.5*0.3; R_2 = 0.3 + 0.5*0 (episode ends inside the chunk)
    assert chunk_return == pytest.approx([0.2, 0.35, 0.3, 0.0])
    assert nxt.tolist() == [2, 3, 3, 3]
    assert done.tolist() == [False, False, True, True]
    mc = mc_returns(4, gamma, terminal=0.8)  # p_ep * gamma^(L-1-t)
    assert mc == pytest.approx([0.1, 0.2, 0.4, 0.8])
    next_q = torch.tensor([1.0, 2.0, 5.0, 5.0])  # min over the target ensemble at s_{t+H}
    y, td = critic_targets(
        torch.tensor(chunk_return, dtype=torch.float32),
        torch.tensor(done, dtype=torch.float32),
        next_q,
        torch.tensor(mc, dtype=torch.float32),
        gamma,
        h,
        mc_weight=0.5,
    )
    # TD: R + gamma^H (1 - d) Q' -> 0.2 + 0.25*1, 0.35 + 0.25*2, then no bootstrap after done
    assert td.tolist() == pytest.approx([0.45, 0.85, 0.3, 0.0])
    assert y.tolist() == pytest.approx([0.275, 0.525, 0.35, 0.4])
    y_mc, _ = critic_targets(
        torch.zeros(1), torch.zeros(1), torch.ones(1), torch.full((1,), 0.7), gamma, h, 1.0
    )
    y_td, _ = critic_targets(
        torch.zeros(1), torch.zeros(1), torch.ones(1), torch.full((1,), 0.7), gamma, h, 0.0
    )
    assert y_mc.item() == pytest.approx(0.7) and y_td.item() == pytest.approx(0.25)


def test_replay_samples_chunk_windows_with_edge_padding() -> None:
    buf = ChunkReplayBuffer(feature_dim=2, action_dim=1, chunk_size=3, gamma=1.0)
    feats = np.arange(10, dtype=np.float32).reshape(5, 2)
    actions = np.arange(5, dtype=np.float32)[:, None]
    buf.add_episode(
        feats, actions, np.array([0, 1, 1, 1, 1.0]), terminal=1.0, info={"source": "demo"}
    )
    buf.add_episode(feats[:2] + 100, actions[:2] + 100, np.zeros(2), terminal=0.0)
    sample = buf.sample(64, np.random.default_rng(0))
    starts = sample.features[:, 0].long()
    for i, s in enumerate(starts.tolist()):
        if s < 100:  # first episode: frame index s // 2
            t = s // 2
            want = [min(t + k, 4) for k in range(3)]
            assert sample.actions[i, :, 0].tolist() == want
            assert sample.next_features[i, 0].item() == 2 * min(t + 3, 4)
            assert sample.done[i].item() == float(t + 3 >= 5)
            assert sample.chunk_return[i].item() == pytest.approx(min(3, 4 - t))
        else:
            assert sample.mc_return[i].item() == 0.0 and sample.done[i].item() == 1.0
    tensors, meta = buf.state()
    restored = ChunkReplayBuffer(2, 1, 3, 1.0)
    restored.load_state(tensors, meta)
    again = restored.sample(64, np.random.default_rng(0))
    assert torch.equal(again.actions, sample.actions) and restored.episodes == buf.episodes


def test_episode_chunks_pair_each_chunk_with_the_return_that_followed() -> None:
    buf = ChunkReplayBuffer(feature_dim=1, action_dim=1, chunk_size=2, gamma=0.5)
    buf.add_episode(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), terminal=0.0)
    feats = np.arange(4, dtype=np.float32)[:, None]
    # frame progress 0, 0.2, 0.6, 0.6: transition rewards 0.2, 0.4, 0, 0 (spec §1.8)
    buf.add_episode(feats, feats + 10, np.array([0.0, 0.2, 0.4, 0.0]), terminal=1.0)
    features, actions, realized = buf.episode_chunks(1, mc_weight=0.25)
    assert features[:, 0].tolist() == [0, 1, 2, 3]
    assert actions[:, :, 0].tolist() == [[10, 11], [11, 12], [12, 13], [13, 13]]
    dense = np.array([0.2 + 0.5 * 0.4, 0.4, 0.0, 0.0])  # discounted reward to the end
    mc = 0.5 ** np.array([3, 2, 1, 0])  # success discounted from the last frame
    np.testing.assert_allclose(realized, 0.25 * mc + 0.75 * dense)


def test_best_of_kappa_picks_the_argmax_of_min_q() -> None:
    min_q = torch.tensor([[0.1, 0.9, 0.3], [2.0, -1.0, 1.5]])
    candidates = torch.arange(2 * 3 * 2 * 1, dtype=torch.float32).view(2, 3, 2, 1)
    chunks, chosen = best_of_kappa(min_q, candidates)
    assert chosen.tolist() == [1, 0]
    assert torch.equal(chunks[0], candidates[0, 1]) and torch.equal(chunks[1], candidates[1, 0])
    with pytest.raises(ValueError):
        best_of_kappa(min_q[:, :2], candidates)


def test_critic_ensemble_members_differ_and_ignore_untrained_latents() -> None:
    critic = CriticEnsemble(5, feature_dim=4, chunk_size=2, action_dim=3, hidden=(16,))
    f, a = torch.randn(6, 4), torch.randn(6, 2, 3)
    q = critic(f, torch.zeros(6, 2, 3), a)
    assert q.shape == (5, 6) and q.std(dim=0).min() > 0
    assert torch.equal(critic(f, torch.randn(6, 2, 3), a), q)  # zero-initialised latent weights
    assert torch.equal(critic.min_q(f, torch.zeros(6, 2, 3), a), q.min(0).values)


def test_discount_conversion_and_preset() -> None:
    assert convert_discount(0.9995, 30, 10) == pytest.approx(0.9995**3)
    assert pytest.approx(0.9995**30) == GAMMA_10HZ**10  # same discount per second
    cfg = SPIRALConfig()
    assert (cfg.mc_weight, cfg.beta_bc, cfg.n_critics, cfg.kappa, cfg.tau) == (
        0.5,
        30.0,
        5,
        4,
        0.005,
    )
    assert (cfg.actor_lr, cfg.critic_lr, cfg.batch_size, cfg.gradient_steps) == (
        1e-4,
        1e-4,
        16,
        10_000,
    )
    assert cfg.actor_output_scale == 0.1
    assert SPIRALConfig.paper().critic_hidden == (1024, 1024, 1024)
    assert SPIRALConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="mc_weight"):
        SPIRALConfig(mc_weight=1.5)


def test_smoothing_and_reward_math() -> None:
    assert query_frames(7, 3).tolist() == [0, 3, 6]
    assert query_frames(8, 3).tolist() == [0, 3, 6, 7]
    # trailing mean over 2 samples, then a running minimum (steps-to-go never rises)
    assert smooth_steps_to_go(np.array([1.0, 0.6, 0.8, 0.2]), 2).tolist() == pytest.approx(
        [1.0, 0.8, 0.7, 0.5]
    )
    lab = labels_from_steps_to_go(np.array([0, 2]), np.array([0.8, 0.4]), 3, window=1)
    assert lab.progress.tolist() == pytest.approx([0.2, 0.4, 0.6])
    assert lab.reward.tolist() == pytest.approx([0.0, 0.2, 0.2])  # r_0 = 0, clipped at 0


def test_privileged_labeler_is_an_oracle_of_the_same_math() -> None:
    progress = np.array([0.0, 0.2, 0.1, 0.5, 1.0])
    ep = RolloutEpisode("t", np.zeros((5, 14)), np.zeros((5, 14)), True, progress=progress)
    lab = PrivilegedProgressLabeler(frame_gap=1, window=1).label(ep)
    assert lab.progress.tolist() == pytest.approx(
        [0.0, 0.2, 0.2, 0.5, 1.0]
    )  # dips are not rewarded
    assert lab.reward.sum() == pytest.approx(1.0) and (lab.reward >= 0).all()
    with pytest.raises(ValueError, match="privileged progress"):
        PrivilegedProgressLabeler().label(
            RolloutEpisode("t", np.zeros((2, 14)), np.zeros((2, 14)), False)
        )


def test_simulated_annotation_follows_the_segment_protocol() -> None:
    p = np.r_[np.linspace(0, 0.3, 10), np.linspace(0.3, 0.1, 5), np.linspace(0.1, 1.0, 5)]
    ann = annotate_from_progress(p, window=5)
    labels = [s.label for s in ann.segments]
    assert "mistake" in labels and labels[-1] == "fast"
    assert ann.final_progress == pytest.approx(1.0) and ann.catastrophic is None
    crash = np.r_[np.linspace(0, 0.8, 10), np.zeros(10)]
    ann = annotate_from_progress(crash, window=5)
    assert ann.catastrophic == 10.0 and ann.final_progress == pytest.approx(0.8)


def test_rabc_weights_follow_the_spec() -> None:
    assert rabc_deltas(np.array([0.0, 0.5, 1.0]), 1).tolist() == [0.5, 0.5, 0.0]
    p = np.array([0.0, 0.1, 0.3, 0.2, 0.25, np.nan])
    (w,) = rabc_weights([p], chunk_size=1, kappa=0.05)
    r = rabc_deltas(p, 1)  # [0.1, 0.2, -0.1, 0.05, nan, nan]
    finite = r[np.isfinite(r)]
    mu, sigma = max(finite.mean(), 0.0), finite.std()
    soft = np.clip((0.05 - (mu - 2 * sigma)) / (4 * sigma + 1e-6), 0, 1)
    assert w.tolist() == pytest.approx([1.0, 1.0, 0.0, soft, 1.0, 1.0])
