"""Wrap a robosuite task (``Lift``, through robosuite's ``GymWrapper``) and train SB3 PPO on it.

Needs the ``[robosuite]`` extra (``pip install -e ".[robosuite]"``). The agentview camera is
mapped to the model's ``top`` camera and the robot's eye-in-hand view to a wrist camera; the
reward model gets no state (robosuite's proprioception is not our 14-d bimanual state).

    python examples/wrap_robosuite_lift.py [--timesteps 2048] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse

from stable_baselines3 import PPO

import sarm2_gym  # noqa: F401  (picks a headless GL backend before MuJoCo loads)
from sarm2_gym.wrappers import SARM2LoggingCallback, SARM2Reward, load_reward_model


def make_lift(image_size: int) -> object:
    """Make robosuite Lift with camera observations, a Gymnasium env with Dict observations."""
    import robosuite
    from robosuite.wrappers import GymWrapper

    env = robosuite.make(
        "Lift",
        robots="Panda",
        has_renderer=False,
        has_offscreen_renderer=True,
        use_camera_obs=True,
        camera_names=["agentview", "robot0_eye_in_hand"],
        camera_heights=image_size,
        camera_widths=image_size,
        horizon=200,
        control_freq=20,
    )
    keys = ["agentview_image", "robot0_eye_in_hand_image", "robot0_proprio-state"]
    return GymWrapper(env, keys=keys, flatten_obs=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=2048)
    parser.add_argument("--n-steps", type=int, default=256, help="PPO rollout length")
    parser.add_argument(
        "--checkpoint", default=None, help="SARM2 checkpoint dir (default: packaged)"
    )
    parser.add_argument("--logdir", default="runs/lift_sarm2")
    args = parser.parse_args()

    model = load_reward_model(args.checkpoint)
    env = SARM2Reward(
        make_lift(model.config.image_size),  # type: ignore[arg-type]
        model,
        instruction="lift the red cube",
        camera_keys={"top": "agentview_image", "right_wrist": "robot0_eye_in_hand_image"},
        state_key=None,
        missing_cameras="zeros",
    )
    agent = PPO(
        "MultiInputPolicy",
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
