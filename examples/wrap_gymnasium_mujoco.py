"""Wrap an env we did not write — Gymnasium's MuJoCo ``Pusher-v5`` — and train SB3 PPO on it.

Pusher's observation is a state vector, so the reward model reads the rendered frame
(``camera_keys={"top": "render"}``), feeds no state (``state_key=None``), and gets the task in
words (``instruction=``). The policy itself still learns from the state vector.

    python examples/wrap_gymnasium_mujoco.py [--timesteps 2048] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from stable_baselines3 import PPO

import sarm2_gym  # noqa: F401  (picks a headless GL backend before MuJoCo loads)
from sarm2_gym.wrappers import RENDER, SARM2LoggingCallback, SARM2Reward, load_reward_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=2048)
    parser.add_argument("--n-steps", type=int, default=256, help="PPO rollout length")
    parser.add_argument(
        "--checkpoint", default=None, help="SARM2 checkpoint dir (default: packaged)"
    )
    parser.add_argument("--logdir", default="runs/pusher_sarm2")
    args = parser.parse_args()

    model = load_reward_model(args.checkpoint)
    size = model.config.image_size
    env = gym.make(
        "Pusher-v5", render_mode="rgb_array", width=size, height=size, max_episode_steps=100
    )
    env = SARM2Reward(
        env,
        model,
        instruction="push the object to the goal",
        camera_keys={"top": RENDER},
        state_key=None,
        missing_cameras="repeat",
        env_reward_weight=0.1,  # keep a little of Pusher's own shaped reward
    )
    agent = PPO(
        "MlpPolicy",
        env,
        n_steps=args.n_steps,
        batch_size=min(64, args.n_steps),
        seed=0,
        tensorboard_log=args.logdir,
    )
    agent.learn(total_timesteps=args.timesteps, callback=SARM2LoggingCallback(), tb_log_name="ppo")
    print(f"trained {agent.num_timesteps} steps; TensorBoard logs in {args.logdir}")
    env.close()  # free the GL context before interpreter teardown


if __name__ == "__main__":
    main()
