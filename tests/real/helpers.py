"""Helpers of the real-robot tests: ``sarm2 robot-server`` in another process, on a fake task."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FAKE_ENV_ID = "fake_bimanual:FakeBimanual-v0"
_LISTEN = re.compile(r"serving .* on (tcp://\S+)")
_LAUNCH = (
    "import sys; from sarm2_gym.cli._app import app; "
    "import sarm2_gym.cli.real_commands; sys.exit(app(prog_name='sarm2'))"
)


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    endpoint: str
    token: str
    token_file: Path
    log: Path

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to clean up (a crash or a pulled cable)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_server(tmp: Path, *extra: str, port: int = 0, timeout: float = 60.0) -> ServerProcess:
    """Run ``sarm2 robot-server`` in a subprocess and wait until it listens."""
    token_file = tmp / "robot.token"
    log = tmp / f"server-{time.monotonic_ns()}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    args = list(extra) or ["--sim", FAKE_ENV_ID]
    cmd = [sys.executable, "-c", _LAUNCH, "robot-server", *args]
    cmd += ["--port", str(port), "--token-file", str(token_file)]
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp, env=env
        )
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = _LISTEN.search(line)
        if match:
            token = token_file.read_text().strip()
            return ServerProcess(proc, match.group(1), token, token_file, log)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"robot server did not start:\n{log.read_text()}")
