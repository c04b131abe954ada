"""A policy remembers the frame size of the demonstrations it was cloned from, and envs made for
it render at that size (a policy fed frames resized from another size fails without an error)."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from sarm2_gym.algos.baselines.common import make_task_env
from sarm2_gym.algos.vla import TinyVLA, TinyVLAConfig, train_bc
from sarm2_gym.algos.vla.data import load_demos
from sarm2_gym.algos.vla.policy import DEFAULT_RENDER_SIZE, render_size_for
from sarm2_gym.data.episode import CAMERA_NAMES

from .helpers import IMAGE, REACH_ID, FakeText, record_demos, tiny_bc_config


def test_load_demos_reads_the_recorded_frame_size_before_resizing(
    reach_demos: Path, tmp_path: Path
) -> None:
    demos = load_demos([reach_demos], cameras=CAMERA_NAMES, image_size=16, max_episodes=1)
    assert demos.inputs["top"].shape[1:] == (16, 16, 3)  # resized for the encoder...
    assert demos.frame_size == IMAGE  # ...but recorded at the dataset's size
    larger = record_demos(tmp_path / "larger", 1, image_size=IMAGE + 8)
    mixed = load_demos([reach_demos, larger], cameras=CAMERA_NAMES, image_size=16, max_episodes=1)
    assert mixed.frame_size is None  # no one size to render at
    unused = load_demos(
        [reach_demos, larger],
        cameras=CAMERA_NAMES,
        image_size=16,
        episode_ranges=[range(1), range(0)],
    )
    assert unused.frame_size == IMAGE  # a dataset none of whose episodes is loaded has no say


def test_bc_records_the_demonstrations_frame_size(tmp_path: Path) -> None:
    recorded = IMAGE + 8
    demos = record_demos(tmp_path / "demos", 2, image_size=recorded)
    out = train_bc(
        tiny_bc_config(demos, tmp_path / "bc", steps=2),
        text_encoder=FakeText(),
        progress_bar=False,
    )
    policy = TinyVLA.from_pretrained(out)
    assert policy.config.image_size == IMAGE  # the encoder's input...
    assert policy.config.demo_frame_size == recorded  # ...is not what the demos were recorded at
    env = make_task_env(REACH_ID, policy)
    assert env.observation_space["top"].shape == (recorded, recorded, 3)
    # fine-tuned on frames of another side, the policy records that side
    tuned = train_bc(
        tiny_bc_config(
            record_demos(tmp_path / "other", 2), tmp_path / "tuned", steps=2, init=str(out),
            model=TinyVLAConfig(),
        ),
        progress_bar=False,
    )  # fmt: skip
    assert TinyVLA.from_pretrained(tuned).config.demo_frame_size == IMAGE


def test_render_size_follows_the_policy_and_warns_when_told_otherwise() -> None:
    cloned_at_32 = TinyVLAConfig(demo_frame_size=32)
    assert render_size_for(cloned_at_32) == 32
    # found through whatever runs the policy, as SPIRAL runs its base policy
    assert render_size_for(SimpleNamespace(base_policy=SimpleNamespace(config=cloned_at_32))) == 32
    assert render_size_for(TinyVLAConfig()) == DEFAULT_RENDER_SIZE  # an older checkpoint
    assert TinyVLAConfig.from_dict({}).demo_frame_size is None  # whose config lacks the field
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert render_size_for(cloned_at_32, 32) == 32
        assert render_size_for(TinyVLAConfig(), 48) == 48
    with pytest.warns(UserWarning, match="rendering at 48 px for a policy cloned from 32-pixel"):
        assert render_size_for(cloned_at_32, 48) == 48
    with pytest.raises(ValueError, match="demo_frame_size"):
        TinyVLAConfig(demo_frame_size=0)


def test_the_lookahead_planner_simulates_at_the_policys_frame_size() -> None:
    from sarm2_gym.algos.baselines.lookahead import SimulatedLookahead

    from .helpers import INSTRUCTION, tiny_vla

    cloned = tiny_vla(demo_frame_size=IMAGE + 8)
    planner = SimulatedLookahead(cloned, INSTRUCTION, REACH_ID)
    assert planner.sim.unwrapped.size == IMAGE + 8  # type: ignore[attr-defined]
    older = SimulatedLookahead(tiny_vla(), INSTRUCTION, REACH_ID)  # no recorded size
    assert older.sim.unwrapped.size == DEFAULT_RENDER_SIZE  # type: ignore[attr-defined]
