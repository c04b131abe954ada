"""Wire format: signing, versioning, strict array decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sarm2_gym.real.auth import as_key, load_token, write_token_file
from sarm2_gym.real.errors import RobotAuthError, RobotProtocolError
from sarm2_gym.real.protocol import (
    Message,
    _mac,
    decode,
    encode,
    peek_unauthenticated_error,
    unsigned_auth_error,
)

KEY = b"k" * 32


def frames_bytes(frames: list) -> list[bytes]:
    return [bytes(f) for f in frames]


def signed(header: dict, *buffers: bytes) -> list[bytes]:
    raw = json.dumps(header).encode()
    return [raw, _mac(KEY, raw, buffers), *buffers]


def header(**overrides: object) -> dict:
    base = {"proto": "sarm2-robot", "v": 1, "type": "observe", "id": 3, "body": {}, "arrays": []}
    return base | overrides


def test_round_trip_all_dtypes() -> None:
    arrays = {
        "img": np.arange(96 * 96 * 3, dtype=np.uint8).reshape(96, 96, 3),
        "state": np.linspace(0, 1, 14),
        "f32": np.ones((2, 3), np.float32),
        "flag": np.array([True, False]),
        "scalar": np.array(5, dtype=np.int64),
        "empty": np.zeros((0, 3), np.float32),
    }
    msg = decode(frames_bytes(encode(Message("act", 42, {"a": [1, "x"]}, arrays), KEY)), KEY)
    assert (msg.type, msg.request_id, msg.body) == ("act", 42, {"a": [1, "x"]})
    for name, arr in arrays.items():
        np.testing.assert_array_equal(msg.arrays[name], arr)
        assert msg.arrays[name].dtype == arr.dtype


def test_wrong_key_and_tampering_are_auth_errors() -> None:
    frames = frames_bytes(encode(Message("act", 1, {}, {"t": np.zeros(14)}), KEY))
    with pytest.raises(RobotAuthError):
        decode(frames, b"x" * 32)
    tampered = [*frames[:2], frames[2][:-1] + b"\x01"]
    with pytest.raises(RobotAuthError):
        decode(tampered, KEY)
    # Moving bytes across frame boundaries must not keep the MAC valid.
    shifted = [frames[0] + frames[2][:8], frames[1], frames[2][8:]]
    with pytest.raises(RobotAuthError):
        decode(shifted, KEY)


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([b"only one frame"], "malformed"),
        ([b"x" * 10] * 40, "malformed"),
        (signed(header(v=2)), "schema version 2"),
        (signed(header(proto="other")), "not a sarm2-robot"),
        (signed(header(type="reboot")), "unexpected message type"),
        (signed(header(id="3")), "bad id"),
        (signed(header(arrays=[{"name": "a", "dtype": "object", "shape": [1]}]), b"x"), "spec"),
        (
            signed(header(arrays=[{"name": "a", "dtype": "uint8", "shape": [5]}]), b"x"),
            "do not match",
        ),
        (
            signed(header(arrays=[{"name": "a", "dtype": "uint8", "shape": [-1]}]), b"x"),
            "bad shape",
        ),
        (signed(header(arrays=[])), None),
    ],
)
def test_malformed_messages(frames: list[bytes], match: str | None) -> None:
    if match is None:
        assert decode(frames, KEY).type == "observe"
        return
    with pytest.raises(RobotProtocolError, match=match):
        decode(frames, KEY)


def test_bad_json_after_valid_mac() -> None:
    raw = b"{not json"
    with pytest.raises(RobotProtocolError, match="malformed header"):
        decode([raw, _mac(KEY, raw, [])], KEY)


def test_oversized_refused_before_mac() -> None:
    frames = frames_bytes(encode(Message("act", 1, {}, {"t": np.zeros(1000)}), KEY))
    with pytest.raises(RobotProtocolError, match="oversized"):
        decode(frames, KEY, max_bytes=1000)


def test_nan_cannot_hide_in_the_json_body() -> None:
    with pytest.raises(ValueError):
        encode(Message("act", 1, {"x": float("nan")}), KEY)


def test_unsigned_auth_error_is_recognised() -> None:
    err = peek_unauthenticated_error(unsigned_auth_error(-1))
    assert err is not None and err.body["code"] == "auth"
    assert peek_unauthenticated_error(signed(header(type="error", body={"code": "robot"}))) is None


def test_token_files(tmp_path) -> None:
    path = tmp_path / "t.token"
    token = write_token_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_token(path) == token
    with pytest.raises(FileExistsError):
        write_token_file(path)
    with pytest.raises(ValueError, match="at least"):
        as_key("short")
