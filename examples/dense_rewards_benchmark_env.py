"""Dense SARM2 rewards on a benchmark task: what the agent gets, step by step.

``gym.make(id, reward="sarm2")`` wraps the task with the packaged SARM2 model; the env's own
sparse reward stays in ``info["sparse_reward"]`` and the model's reading in ``info["sarm2"]``.
Here the scripted expert drives the robot so the progress reading has something to follow.

    python examples/dense_rewards_benchmark_env.py [--task SARM2-CleanWhiteboard-v0]
        [--checkpoint DIR] [--steps 80]
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import sarm2_gym  # noqa: F401  (registers the envs)
from sarm2_gym.envs import expert_for


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="SARM2-CleanWhiteboard-v0")
    parser.add_argument(
        "--checkpoint", default=None, help="SARM2 checkpoint dir (default: packaged)"
    )
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args()

    reward = "sarm2" if args.checkpoint is None else f"sarm2:{args.checkpoint}"
    env = gym.make(args.task, reward=reward)
    env.reset(seed=0)
    expert = expert_for(args.task)
    expert.reset(env.unwrapped, seed=0)
    dense_return = 0.0
    for t in range(args.steps):
        _, reward_t, terminated, truncated, info = env.step(expert.act().action)
        dense_return += float(reward_t)
        reading = info["sarm2"]
        if t % 10 == 0 or terminated:
            print(
                f"step {t:3d}  reward {reward_t:+.3f}  model progress {reading['progress']:.2f} "
                f"({reading['primitive_name']})  true progress {info['progress']:.2f} "
                f"(stage {info['stage']})  sparse {info['sparse_reward']:.0f}"
            )
        if terminated or truncated:
            break
    print(f"dense return {dense_return:.3f}, success {info['is_success']}")
    env.close()


if __name__ == "__main__":
    main()
