"""The demo job end to end on tiny models, and its report checked in a real headless Chromium."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sarm2_gym.demo import DemoConfig, run_demo
from sarm2_gym.reward.testing import tiny_model
from tests.algos.helpers import tiny_vla

TASK = "SARM2-CleanWhiteboard-v0"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    tiny_model(96).save_pretrained(root / "rm")
    tiny_vla(instructions=("clean whiteboard WITH whiteboard eraser",)).save_pretrained(
        root / "vla"
    )
    config = DemoConfig(
        task=TASK,
        reward_model=str(root / "rm"),
        base_policy=str(root / "vla"),
        spiral_rollouts=2,
        spiral_updates=5,
        eval_episodes=2,
        max_steps=30,
    )
    return run_demo(root / "out", config, progress=False)


def test_demo_writes_a_complete_report(report: Path) -> None:
    html = report.read_text()
    folder = report.parent
    for name in ("expert", "clumsy"):
        assert (folder / f"{name}.webm").stat().st_size > 1000
        assert (folder / f"{name}_progress.png").stat().st_size > 1000
        assert f"{name}.webm" in html and f"{name}_progress.png" in html
    assert "after 1 SPIRAL round" in html and "Spearman" in html
    assert list((folder / "tensorboard").rglob("events.out.tfevents*"))


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report: Path) -> None:
    assert CHROMIUM, (
        "Debian's chromium is needed for the browser test (scripts/quickstart.sh installs it)"
    )
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        # The video decodes and its clock advances: it plays.
        page.wait_for_function(
            "() => { const v = document.querySelector('video');"
            " return v && v.readyState >= 2 && !v.paused && v.currentTime > 0.3; }",
            timeout=30_000,
        )
        assert page.evaluate("document.querySelector('video').videoWidth") > 0
        plot = page.locator("img").first
        plot.scroll_into_view_if_needed()
        assert plot.is_visible()
        assert page.evaluate("document.querySelector('img').naturalWidth") > 100
        shot = np.asarray(Image.open(io.BytesIO(plot.screenshot())).convert("L"), dtype=float)
        browser.close()
    assert not errors, errors
    # A rendered plot has axes, curves and bands: far from a blank (uniform) image.
    assert shot.std() > 20 and (shot < 128).mean() > 0.01
