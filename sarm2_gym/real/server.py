"""The robot server: puts any :class:`RobotInterface` on the network behind a ZeroMQ ROUTER socket.

Run it on the robot PC; :class:`~sarm2_gym.real.client.RemoteRobot` is the other end. The server
always drives its robot through a :class:`~sarm2_gym.real.safety.SafeRobot`, so the safety
limits and the watchdog live next to the hardware and no client can bypass them: a learning PC
that crashes, hangs or loses the network has its robot stopped within the watchdog deadline.

Requests are served one at a time. One client at a time may *move* the robot: the first session
that sends ``connect``/``act``/``home`` owns it until it sends ``release`` or stays silent for
``lease_s``; others may still observe, query status, and send ``stop`` (a remote e-stop).
Malformed, oversized or unauthenticated messages get an error reply (or, above ZeroMQ's
``MAXMSGSIZE``, a dropped connection) and never stop the server.

Example:
    >>> from sarm2_gym.real.dummy import KinematicRobot
    >>> from sarm2_gym.real.client import RemoteRobot
    >>> server = RobotServer(KinematicRobot(image_size=8), token="x" * 32, port=0)
    >>> server.start()
    >>> robot = RemoteRobot(server.endpoint, token="x" * 32)
    >>> robot.connect(); robot.home()
    >>> robot.observe().state.shape
    (14,)
    >>> robot.close(); server.shutdown()
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from typing import Any, Final

import numpy as np
import zmq

from sarm2_gym.real.auth import as_key
from sarm2_gym.real.config import STATE_DIM, RobotConfig, default_robot_config
from sarm2_gym.real.errors import (
    RobotAuthError,
    RobotError,
    RobotProtocolError,
    UnsafeCommandError,
    WatchdogTrippedError,
)
from sarm2_gym.real.interface import RobotInterface, resize_nearest
from sarm2_gym.real.protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    Message,
    decode,
    encode,
    error_reply,
    unsigned_auth_error,
)
from sarm2_gym.real.safety import SafeRobot

__all__ = ["RobotServer"]

_log = logging.getLogger(__name__)

_MOTION: Final[frozenset[str]] = frozenset({"connect", "act", "home"})
_LOOPBACK: Final[frozenset[str]] = frozenset({"127.0.0.1", "localhost", "::1"})


def _json_scalars(data: dict[str, Any]) -> dict[str, Any]:
    """Keep the JSON-able scalar entries of ``data`` (numpy scalars unwrapped, NaN dropped)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool | int | str) or (
            isinstance(value, float) and math.isfinite(value)
        ):
            out[str(key)] = value
    return out


class RobotServer:
    """Serve a robot over ZeroMQ.

    Args:
        robot: The robot; wrapped in a :class:`SafeRobot` unless it already is one.
        token: Shared secret (>= 16 characters) keying every message's HMAC.
        config: Robot config (limits, cameras, image size); the shipped simulated-robot config
            by default.
        host: Interface to bind. Loopback by default; bind another address only on a network
            you trust, and keep the token secret.
        port: TCP port; 0 picks a free one (see :attr:`endpoint` after :meth:`bind`).
        max_message_bytes: Larger requests are refused (and ZeroMQ drops peers that send a
            larger frame).
        resize_images: Resize camera images to ``config.image_size`` before sending (saves
            bandwidth; the Gym env would resize them anyway).
        lease_s: How long a silent owning session keeps the robot to itself.
    """

    def __init__(
        self,
        robot: RobotInterface,
        token: str | bytes,
        *,
        config: RobotConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        resize_images: bool = True,
        lease_s: float = 5.0,
    ) -> None:
        self.config = config or default_robot_config()
        self.robot = robot if isinstance(robot, SafeRobot) else SafeRobot(robot, self.config)
        self._key = as_key(token)
        self.host, self.port = host, int(port)
        self.max_message_bytes = int(max_message_bytes)
        self.resize_images = resize_images
        self.lease_s = float(lease_s)
        self.counters: Counter[str] = Counter()
        self._ctx = zmq.Context()
        self._sock: zmq.Socket[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner: str | None = None
        self._owner_seen = 0.0
        if host not in _LOOPBACK:
            _log.warning(
                "robot server binds %s: reachable from the network (token-protected)", host
            )

    @property
    def endpoint(self) -> str:
        """``tcp://host:port`` that clients connect to (valid after :meth:`bind`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    def bind(self) -> str:
        """Bind the socket (port 0: a free one) and return :attr:`endpoint`."""
        if self._sock is not None:
            return self.endpoint
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        if ":" in self.host:
            sock.setsockopt(zmq.IPV6, 1)
        if self.port == 0:
            self.port = sock.bind_to_random_port(
                f"tcp://{self.host}" if ":" not in self.host else f"tcp://[{self.host}]"
            )
        else:
            sock.bind(self.endpoint)
        self._sock = sock
        return self.endpoint

    def serve_forever(self) -> None:
        """Connect the robot and answer requests until :meth:`shutdown` (or Ctrl-C)."""
        self.bind()
        assert self._sock is not None
        self.robot.connect()
        _log.info("robot server listening on %s", self.endpoint)
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(50):
                    continue
                frames = self._sock.recv_multipart()
                identity, payload = frames[0], frames[1:]
                reply = self._handle(payload)
                try:
                    self._sock.send_multipart([identity, *reply], flags=zmq.NOBLOCK)
                except zmq.Again:  # the peer is gone or not reading; it will time out
                    self.counters["replies_dropped"] += 1
        finally:
            try:
                self.robot.close()
            finally:
                self._sock.close(linger=0)
                self._sock = None
                self._ctx.term()

    def start(self) -> None:
        """Bind, then serve in a daemon thread (for tests, notebooks, benchmarks)."""
        self.bind()
        self._thread = threading.Thread(
            target=self.serve_forever, name="sarm2-robot-server", daemon=True
        )
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving, stop and close the robot."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Request counters plus the safety layer's and watchdog's counters."""
        out = self.robot.stats()
        out["requests"] = dict(self.counters)
        return out

    # ------------------------------------------------------------------ request handling

    def _handle(self, frames: list[bytes]) -> list[bytes | memoryview]:
        try:
            msg = decode(frames, self._key, max_bytes=self.max_message_bytes)
        except RobotAuthError:
            self.counters["auth_failures"] += 1
            _log.warning("refused a message that failed authentication")
            return list(unsigned_auth_error(-1))
        except RobotProtocolError as exc:
            self.counters["malformed"] += 1
            _log.warning("refused a malformed message: %s", exc)
            return encode(error_reply(-1, "protocol", str(exc)), self._key)
        self.counters[msg.type] += 1
        try:
            reply = self._dispatch(msg)
        except UnsafeCommandError as exc:
            reply = error_reply(msg.request_id, "unsafe", str(exc))
        except WatchdogTrippedError as exc:
            reply = error_reply(msg.request_id, "watchdog", str(exc))
        except RobotProtocolError as exc:
            reply = error_reply(msg.request_id, "protocol", str(exc))
        except RobotError as exc:
            reply = error_reply(msg.request_id, "robot", str(exc))
        except Exception as exc:  # a driver bug must not take the server down
            _log.exception("robot call %r failed", msg.type)
            reply = error_reply(msg.request_id, "robot", f"{type(exc).__name__}: {exc}")
        if reply.type == "error":
            self.counters[f"error_{reply.body['code']}"] += 1
        return encode(reply, self._key)

    def _claim(self, msg: Message) -> None:
        """Give the robot to the requesting session unless another one holds it."""
        session = str(msg.body.get("session", ""))
        now = time.monotonic()
        owner_alive = self._owner is not None and now - self._owner_seen < self.lease_s
        if owner_alive and session != self._owner:
            raise RobotError("robot is in use by another client session (it holds a lease)")
        if self._owner != session:
            _log.info("session %s now controls the robot", session[:8])
        self._owner, self._owner_seen = session, now

    def _dispatch(self, msg: Message) -> Message:
        kind, rid = msg.type, msg.request_id
        if kind in _MOTION:
            self._claim(msg)
        elif msg.body.get("session") == self._owner:
            self._owner_seen = time.monotonic()
        body: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        if kind == "hello":
            body = {
                "server": "sarm2-gym robot server",
                "schema": SCHEMA_VERSION,
                "config": self.config.to_dict(),
                "instruction": str(getattr(self.robot.robot, "instruction", "")),
            }
        elif kind == "observe":
            obs = self.robot.observe()
            for cam, img in obs.images.items():
                arr = np.asarray(img, dtype=np.uint8)
                arrays[f"image.{cam}"] = (
                    resize_nearest(arr, self.config.image_size) if self.resize_images else arr
                )
            arrays["state"] = np.asarray(obs.state, dtype=np.float64)
            body = {
                "timestamps": _json_scalars(obs.timestamps),
                "extras": _json_scalars(obs.extras),
            }
        elif kind == "act":
            target = msg.arrays.get("target")
            if target is None or target.shape != (STATE_DIM,):
                raise RobotProtocolError(f"act needs a 'target' array of shape ({STATE_DIM},)")
            self.robot.act(target)
            result = self.robot.last_result
            body = {"violations": list(result.violations) if result else []}
        elif kind == "home":
            seed = msg.body.get("seed")
            self.robot.home(seed if isinstance(seed, int) else None)
        elif kind in ("stop", "release"):
            self.robot.stop()
            if kind == "release" and msg.body.get("session") == self._owner:
                self._owner = None
        elif kind == "status":
            body = self.stats()
        elif kind == "ping":
            body = {"time": time.time()}
        return Message("reply", rid, body, arrays)
