"""The learning-PC side of the robot server: :class:`RemoteRobot` is a :class:`RobotInterface`.

It uses a ZeroMQ DEALER socket, so a request that times out never wedges the socket (as a plain
REQ socket would). After a timeout the socket is thrown away and a fresh one connects on the
next request, so nothing queued during an outage (a stale ``act``) is delivered late; replies
are matched to requests by id and stale ones dropped.

Example:
    See :mod:`sarm2_gym.real.server`.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any

import numpy as np
import zmq

from sarm2_gym.real.auth import as_key
from sarm2_gym.real.config import RobotConfig
from sarm2_gym.real.errors import (
    RobotAuthError,
    RobotConnectionError,
    RobotError,
    RobotProtocolError,
    RobotTimeoutError,
    UnsafeCommandError,
    WatchdogTrippedError,
)
from sarm2_gym.real.interface import RobotObservation
from sarm2_gym.real.protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    REPLY_TYPES,
    Message,
    decode,
    encode,
    peek_unauthenticated_error,
)

__all__ = ["RemoteRobot"]

_ERRORS: dict[str, type[RobotError]] = {
    "auth": RobotAuthError,
    "protocol": RobotProtocolError,
    "unsafe": UnsafeCommandError,
    "watchdog": WatchdogTrippedError,
    "robot": RobotError,
}


class RemoteRobot:
    """A robot served by :class:`~sarm2_gym.real.server.RobotServer`, possibly on another machine.

    Args:
        endpoint: ``tcp://host:port`` of the server.
        token: The server's shared token.
        timeout_s: Deadline of every request except ``home``.
        home_timeout_s: Deadline of ``home`` (a real arm may take seconds to get there).
        max_message_bytes: Largest accepted reply.

    Attributes:
        server_info: The server's ``hello`` reply (config, schema), after :meth:`connect`.
        last_violations: Safety limits the server hit on the last :meth:`act`.
    """

    def __init__(
        self,
        endpoint: str,
        token: str | bytes,
        *,
        timeout_s: float = 2.0,
        home_timeout_s: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self._key = as_key(token)
        self.timeout_s = float(timeout_s)
        self.home_timeout_s = float(home_timeout_s)
        self.max_message_bytes = int(max_message_bytes)
        self.session = uuid.uuid4().hex
        self.server_info: dict[str, Any] = {}
        self.last_violations: tuple[str, ...] = ()
        self._ids = itertools.count(1)
        self._ctx = zmq.Context()
        self._sock: zmq.Socket[bytes] | None = None
        # The env's watchdog may call stop() from its own thread; sockets are not thread-safe.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ RobotInterface

    def connect(self) -> None:
        """Check the server (schema version, token) and claim the robot."""
        self.server_info = self.request("hello").body
        self.request("connect")

    @property
    def instruction(self) -> str:
        """The task instruction the server reports (a simulated task's), or ``""``."""
        return str(self.server_info.get("instruction", ""))

    @property
    def config(self) -> RobotConfig:
        """The server's robot config (after :meth:`connect`)."""
        if not self.server_info:
            raise RobotConnectionError("not connected: call connect() first")
        return RobotConfig.from_dict(self.server_info["config"])

    def observe(self) -> RobotObservation:
        """Fetch images, state, timestamps and extras."""
        reply = self.request("observe")
        images = {
            name.removeprefix("image."): arr
            for name, arr in reply.arrays.items()
            if name.startswith("image.")
        }
        if "state" not in reply.arrays:
            raise RobotProtocolError("observe reply without a state")
        return RobotObservation(
            images=images,
            state=reply.arrays["state"],
            timestamps=dict(reply.body.get("timestamps", {})),
            extras=dict(reply.body.get("extras", {})),
        )

    def act(self, target: np.ndarray) -> None:
        """Send an absolute target; the server filters it through its safety layer."""
        arr = np.asarray(target, dtype=np.float64)
        reply = self.request("act", arrays={"target": arr})
        self.last_violations = tuple(reply.body.get("violations", ()))

    def home(self, seed: int | None = None) -> None:
        """Home the robot (blocks up to ``home_timeout_s``)."""
        self.request("home", {"seed": seed}, timeout_s=self.home_timeout_s)

    def stop(self) -> None:
        """Stop the robot now."""
        self.request("stop")

    def close(self) -> None:
        """Stop the robot, give up control, and close the socket. Never raises."""
        try:
            if self._sock is not None:
                self.request("release", timeout_s=min(self.timeout_s, 1.0))
        except RobotError:
            pass  # the server may be gone; its watchdog stops the robot anyway
        with self._lock:
            self._drop_socket()
        self._ctx.term()

    # ------------------------------------------------------------------ extras

    def status(self) -> dict[str, Any]:
        """The server's counters: requests, safety violations, watchdog trips."""
        return self.request("status").body

    def ping(self) -> float:
        """Return the server's wall clock (``time.time()``)."""
        return float(self.request("ping").body["time"])

    def request(
        self,
        kind: str,
        body: dict[str, Any] | None = None,
        *,
        arrays: dict[str, np.ndarray] | None = None,
        timeout_s: float | None = None,
    ) -> Message:
        """Send one request and wait for its reply.

        Raises:
            RobotTimeoutError: No reply within the deadline (the socket is then replaced).
            RobotAuthError: The server refused the token.
            UnsafeCommandError, WatchdogTrippedError, RobotProtocolError, RobotError: The
                server's error reply, as the matching exception.
        """
        timeout_ms = int(1000 * (self.timeout_s if timeout_s is None else timeout_s))
        rid = next(self._ids)
        msg = Message(kind, rid, {"session": self.session, **(body or {})}, arrays or {})
        frames = encode(msg, self._key)
        with self._lock:
            sock = self._socket()
            # IMMEDIATE: wait for a live connection instead of queueing to a dead server.
            if not sock.poll(timeout_ms, zmq.POLLOUT):
                self._drop_socket()
                raise self._timeout(kind, timeout_ms)
            sock.send_multipart(frames, copy=False)
            reply = self._receive(sock, rid, kind, timeout_ms)
        if reply.type == "error":
            code = str(reply.body.get("code", "robot"))
            raise _ERRORS.get(code, RobotError)(f"robot server: {reply.body.get('message', '')}")
        return reply

    # ------------------------------------------------------------------ socket handling

    def _receive(self, sock: zmq.Socket[bytes], rid: int, kind: str, timeout_ms: int) -> Message:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        remaining = timeout_ms
        deadline = _now_ms() + timeout_ms
        while remaining > 0:
            if poller.poll(remaining):
                frames = sock.recv_multipart()
                reply = self._parse(frames)
                if reply.request_id in (rid, -1):
                    return reply
                # A late reply to an earlier, timed-out request: drop it.
            remaining = deadline - _now_ms()
        self._drop_socket()
        raise self._timeout(kind, timeout_ms)

    def _parse(self, frames: list[bytes]) -> Message:
        try:
            return decode(frames, self._key, max_bytes=self.max_message_bytes, expect=REPLY_TYPES)
        except RobotAuthError:
            err = peek_unauthenticated_error(frames)
            if err is not None:
                raise RobotAuthError(
                    f"robot server at {self.endpoint} refused the token (wrong token file?)"
                ) from None
            raise

    def _timeout(self, kind: str, timeout_ms: int) -> RobotTimeoutError:
        return RobotTimeoutError(
            f"robot server at {self.endpoint} did not answer {kind!r} within "
            f"{timeout_ms / 1000:.1f} s: server down, network lost, or robot driver hung "
            "(the server's watchdog stops the robot when commands stop arriving)"
        )

    def _socket(self) -> zmq.Socket[bytes]:
        if self._sock is None:
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None


def _now_ms() -> int:
    return int(time.monotonic() * 1000)
