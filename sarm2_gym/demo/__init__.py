"""The ``sarm2 demo`` main job: SARM2 on FoldShorts, then one SPIRAL round, as an HTML report."""

from __future__ import annotations

from sarm2_gym.demo.job import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
