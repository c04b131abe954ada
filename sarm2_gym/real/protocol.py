"""Wire format of the robot server: versioned JSON headers, raw numpy frames, HMAC on everything.

A message is a list of ZeroMQ frames::

    [header, mac, array_0, array_1, ...]

* ``header``: UTF-8 JSON object ``{"proto": "sarm2-robot", "v": SCHEMA_VERSION, "type": str,
  "id": int, "body": {...}, "arrays": [{"name", "dtype", "shape"}, ...]}``. ``body`` holds
  JSON scalars/lists/dicts only; ``arrays`` describes the raw frames that follow, in order.
* ``mac``: HMAC-SHA256, keyed with the shared token, over the header and every array frame,
  each prefixed with its 8-byte length (so frame boundaries cannot be shifted).
* ``array_i``: the C-contiguous bytes of one numpy array; dtypes are whitelisted and
  ``shape x itemsize`` must match the frame length exactly.

Nothing is ever unpickled: arrays are rebuilt with :func:`numpy.frombuffer` from a whitelisted
dtype. The MAC is checked before the header is parsed, so an unauthenticated peer can make the
server parse nothing but the frame count and sizes. The token itself never crosses the wire.
There is no encryption and no replay protection: on an untrusted network, tunnel the port (SSH)
or keep the server on loopback (the default).

Example:
    >>> import numpy as np
    >>> key = b"0123456789abcdef0123456789abcdef"
    >>> frames = encode(Message("act", 7, {}, {"target": np.zeros(14)}), key)
    >>> msg = decode(frames, key)
    >>> msg.type, msg.request_id, msg.arrays["target"].shape
    ('act', 7, (14,))
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from sarm2_gym.real.errors import RobotAuthError, RobotProtocolError

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MIN_TOKEN_LENGTH",
    "PROTOCOL_NAME",
    "REPLY_TYPES",
    "REQUEST_TYPES",
    "SCHEMA_VERSION",
    "Message",
    "decode",
    "encode",
    "error_reply",
    "peek_unauthenticated_error",
    "unsigned_auth_error",
]

PROTOCOL_NAME: Final[str] = "sarm2-robot"
SCHEMA_VERSION: Final[int] = 1
"""Bumped on any incompatible change of the header or of a message body."""

REQUEST_TYPES: Final[frozenset[str]] = frozenset(
    {"hello", "connect", "observe", "act", "home", "stop", "status", "ping", "release"}
)
REPLY_TYPES: Final[frozenset[str]] = frozenset({"reply", "error"})

DEFAULT_MAX_MESSAGE_BYTES: Final[int] = 16 * 1024 * 1024
"""Largest accepted message; 3 cameras of 480x640x3 are 2.8 MB."""
MAX_ARRAYS: Final[int] = 32
MAX_HEADER_BYTES: Final[int] = 64 * 1024
MIN_TOKEN_LENGTH: Final[int] = 16

_DTYPES: Final[frozenset[str]] = frozenset(
    {"uint8", "int32", "int64", "float32", "float64", "bool"}
)
_MAC_BYTES: Final[int] = 32


@dataclass
class Message:
    """One decoded message.

    Args:
        type: Request type (:data:`REQUEST_TYPES`) or ``"reply"`` / ``"error"``.
        request_id: Correlates a reply with its request.
        body: JSON-able payload.
        arrays: Named numpy arrays sent as raw frames.
    """

    type: str
    request_id: int
    body: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _mac(key: bytes, header: bytes, buffers: Sequence[bytes | memoryview]) -> bytes:
    h = hmac.new(key, digestmod=hashlib.sha256)
    for part in (header, *buffers):
        h.update(struct.pack("<Q", len(part)))
        h.update(part)
    return h.digest()


def encode(msg: Message, key: bytes) -> list[bytes | memoryview]:
    """Serialise and sign a message.

    Args:
        msg: The message; body values must be JSON-able (no NaN), arrays of whitelisted dtypes.
        key: The shared token.

    Returns:
        Frames for ``socket.send_multipart``.
    """
    specs = []
    buffers: list[bytes | memoryview] = []
    for name, value in msg.arrays.items():
        arr = np.ascontiguousarray(value)
        if arr.dtype.name not in _DTYPES:
            raise TypeError(f"array {name!r}: dtype {arr.dtype} is not sendable")
        specs.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)})
        buffers.append(arr.reshape(-1).view(np.uint8).data)
    header = {
        "proto": PROTOCOL_NAME,
        "v": SCHEMA_VERSION,
        "type": msg.type,
        "id": int(msg.request_id),
        "body": msg.body,
        "arrays": specs,
    }
    header_bytes = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    return [header_bytes, _mac(key, header_bytes, buffers), *buffers]


def error_reply(request_id: int, code: str, message: str) -> Message:
    """Build an ``error`` reply; ``code`` is one of auth/protocol/version/unsafe/watchdog/robot."""
    return Message("error", request_id, {"code": code, "message": message})


def _check_sizes(frames: Sequence[bytes], max_bytes: int) -> None:
    if len(frames) < 2 or len(frames) > 2 + MAX_ARRAYS:
        raise RobotProtocolError(f"malformed message: {len(frames)} frames")
    total = sum(len(f) for f in frames)
    if total > max_bytes:
        raise RobotProtocolError(f"oversized message: {total} bytes > limit {max_bytes}")
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise RobotProtocolError(f"oversized header: {len(frames[0])} bytes")


def decode(
    frames: Sequence[bytes],
    key: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    expect: frozenset[str] = REQUEST_TYPES,
) -> Message:
    """Verify and parse a message.

    Args:
        frames: Received frames (without any ZeroMQ routing identity).
        key: The shared token.
        max_bytes: Largest accepted total size.
        expect: Accepted message types.

    Returns:
        The message; its arrays are read-only views of the received frames.

    Raises:
        RobotAuthError: The MAC does not match (wrong token, or tampering).
        RobotProtocolError: Anything else that is wrong: sizes, JSON, schema version, types,
            dtypes, shapes.
    """
    _check_sizes(frames, max_bytes)
    header_bytes, mac, buffers = frames[0], frames[1], frames[2:]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(key, header_bytes, buffers)):
        raise RobotAuthError("authentication failed: wrong token or corrupted message")
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RobotProtocolError(f"malformed header: {exc}") from None
    if not isinstance(header, dict) or header.get("proto") != PROTOCOL_NAME:
        raise RobotProtocolError("malformed header: not a sarm2-robot message")
    if header.get("v") != SCHEMA_VERSION:
        raise RobotProtocolError(
            f"schema version {header.get('v')!r} is not supported (this side speaks "
            f"{SCHEMA_VERSION}); install the same sarm2-gym version on both machines"
        )
    kind, rid, body, specs = (header.get(k) for k in ("type", "id", "body", "arrays"))
    if kind not in expect:
        raise RobotProtocolError(f"unexpected message type {kind!r}")
    if not isinstance(rid, int) or not isinstance(body, dict) or not isinstance(specs, list):
        raise RobotProtocolError("malformed header: bad id, body or arrays")
    if len(specs) != len(buffers):
        raise RobotProtocolError(f"header lists {len(specs)} arrays but {len(buffers)} follow")
    return Message(str(kind), rid, body, _arrays(specs, buffers))


def _arrays(specs: list[Any], buffers: Sequence[bytes]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for spec, buf in zip(specs, buffers, strict=True):
        if not isinstance(spec, dict):
            raise RobotProtocolError("malformed array spec")
        name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
        if not isinstance(name, str) or dtype not in _DTYPES or not isinstance(shape, list):
            raise RobotProtocolError(f"malformed array spec {spec!r}")
        if not all(isinstance(d, int) and d >= 0 for d in shape) or len(shape) > 8:
            raise RobotProtocolError(f"array {name!r}: bad shape {shape!r}")
        dt = np.dtype(dtype)
        if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != len(buf):
            raise RobotProtocolError(
                f"array {name!r}: {len(buf)} bytes do not match {dtype} {tuple(shape)}"
            )
        out[name] = np.frombuffer(buf, dtype=dt).reshape(shape)
    return out


def peek_unauthenticated_error(frames: Sequence[bytes]) -> Message | None:
    """Read an unsigned ``error`` reply (the server cannot sign for a peer with a wrong token).

    Only used by the client to turn a server's "authentication failed" into a clear exception
    instead of a timeout; never trusted for anything else.
    """
    if len(frames) != 2 or frames[1] != b"" or len(frames[0]) > MAX_HEADER_BYTES:
        return None
    try:
        header = json.loads(frames[0])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("type") != "error":
        return None
    body = header.get("body")
    if not isinstance(body, dict) or body.get("code") != "auth":
        return None
    rid = header.get("id")
    return Message("error", rid if isinstance(rid, int) else -1, body)


def unsigned_auth_error(request_id: int) -> list[bytes]:
    """Frames of the unsigned ``auth`` error reply (see :func:`peek_unauthenticated_error`)."""
    header = {
        "proto": PROTOCOL_NAME,
        "v": SCHEMA_VERSION,
        "type": "error",
        "id": request_id,
        "body": {"code": "auth", "message": "authentication failed: wrong token"},
        "arrays": [],
    }
    return [json.dumps(header, separators=(",", ":")).encode(), b""]
