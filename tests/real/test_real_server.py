"""Robot server and client in one process: auth, malformed input, limits, leases, reconnect."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from sarm2_gym.real.client import RemoteRobot
from sarm2_gym.real.dummy import HOME_STATE, KinematicRobot
from sarm2_gym.real.errors import (
    RobotAuthError,
    RobotError,
    RobotTimeoutError,
    UnsafeCommandError,
)
from sarm2_gym.real.protocol import _mac
from sarm2_gym.real.server import RobotServer

TOKEN = "s3cret-token-0123456789abcdef"


@pytest.fixture
def served() -> Iterator[tuple[RobotServer, KinematicRobot]]:
    robot = KinematicRobot(image_size=96)
    server = RobotServer(robot, TOKEN, port=0, max_message_bytes=1_000_000)
    server.start()
    try:
        yield server, robot
    finally:
        server.shutdown()


def client(server: RobotServer, token: str = TOKEN, timeout_s: float = 1.0) -> RemoteRobot:
    return RemoteRobot(server.endpoint, token, timeout_s=timeout_s)


def raw_request(endpoint: str, frames: list[bytes], wait_ms: int = 500) -> list[bytes] | None:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        if sock.poll(wait_ms):
            return sock.recv_multipart()
        return None
    finally:
        sock.close()


def test_observe_act_home(served) -> None:
    server, robot = served
    remote = client(server)
    remote.connect()
    assert remote.config.name == "sim-bimanual"
    remote.home()
    obs = remote.observe()
    assert set(obs.images) == {"top", "left_wrist", "right_wrist"}
    assert obs.images["top"].shape == (96, 96, 3) and obs.images["top"].dtype == np.uint8
    np.testing.assert_allclose(obs.state, HOME_STATE)
    assert set(obs.timestamps) >= {"top", "state"}
    target = obs.state.copy()
    target[0] += 0.02
    remote.act(target)
    assert remote.last_violations == ()
    np.testing.assert_allclose(robot.state, target)
    remote.close()


def test_wrong_token_refused(served) -> None:
    server, robot = served
    intruder = client(server, token="not-the-token-at-all-0000")
    with pytest.raises(RobotAuthError, match="refused the token"):
        intruder.connect()
    with pytest.raises(RobotAuthError):
        intruder.act(HOME_STATE)
    intruder.close()
    assert robot.targets == []
    assert server.stats()["requests"]["auth_failures"] >= 2
    good = client(server)
    good.connect()  # the server is still fine
    good.close()


def test_malformed_and_oversized_messages_do_not_crash_the_server(served) -> None:
    server, robot = served
    ep = server.endpoint
    # Garbage, one frame.
    reply = raw_request(ep, [b"\x00garbage"])
    assert reply is not None and json.loads(reply[0])["body"]["code"] == "protocol"
    # Garbage, two frames (fails authentication: never parsed).
    reply = raw_request(ep, [b"{}", b"x" * 32])
    assert reply is not None and json.loads(reply[0])["body"]["code"] == "auth"
    # Properly signed but not JSON.
    key = TOKEN.encode()
    reply = raw_request(ep, [b"\xff\xfe", _mac(key, b"\xff\xfe", [])])
    assert reply is not None and "malformed" in json.loads(reply[0])["body"]["message"]
    # Signed, valid JSON, but an array that lies about its size.
    head = json.dumps(
        {
            "proto": "sarm2-robot",
            "v": 1,
            "type": "act",
            "id": 1,
            "body": {},
            "arrays": [{"name": "target", "dtype": "float64", "shape": [14]}],
        }
    ).encode()
    reply = raw_request(ep, [head, _mac(key, head, [b"x" * 8]), b"x" * 8])
    assert reply is not None and json.loads(reply[0])["body"]["code"] == "protocol"
    # Over the total-size limit in small frames: refused with an error reply.
    reply = raw_request(ep, [b"{}", b"m" * 32, *([b"z" * 100_000] * 12)])
    assert reply is not None and "oversized" in json.loads(reply[0])["body"]["message"]
    # One frame over ZeroMQ's MAXMSGSIZE: the peer is dropped, no reply.
    assert raw_request(ep, [b"{}", b"m" * 32, b"z" * 2_000_000], wait_ms=300) is None
    assert robot.targets == []
    stats = server.stats()["requests"]
    assert stats["malformed"] >= 3 and stats["auth_failures"] >= 1
    good = client(server)
    good.connect()
    good.home()
    assert good.observe().state.shape == (14,)
    good.close()


def test_nan_and_out_of_limit_targets_never_reach_the_robot(served) -> None:
    server, robot = served
    remote = client(server)
    remote.connect()
    remote.home()
    state = remote.observe().state
    bad = state.copy()
    bad[4] = np.nan
    with pytest.raises(UnsafeCommandError, match="NaN"):
        remote.act(bad)
    far = state.copy()
    far[0:3] = [5.0, -5.0, -1.0]
    remote.act(far)
    assert "workspace" in remote.last_violations
    assert len(robot.targets) == 1
    sent = robot.targets[0]
    assert np.all(np.isfinite(sent))
    assert np.linalg.norm(sent[0:3] - state[0:3]) <= 0.06 + 1e-9
    assert remote.status()["violations"]["nonfinite"] == 1
    remote.close()


def test_one_session_moves_the_robot_others_may_stop_it(served) -> None:
    server, robot = served
    first, second = client(server), client(server)
    first.connect()
    first.home()
    with pytest.raises(RobotError, match="in use"):
        second.connect()
    second.stop()  # anyone may stop the robot
    assert robot.stop_times
    assert second.observe().state.shape == (14,)  # and watch it
    first.close()  # releases the lease
    second.connect()
    second.close()


def test_timeout_then_reconnect_to_a_restarted_server() -> None:
    robot = KinematicRobot(image_size=16)
    server = RobotServer(robot, TOKEN, port=0)
    server.start()
    port = server.port
    remote = RemoteRobot(server.endpoint, TOKEN, timeout_s=0.3)
    remote.connect()
    remote.home()
    server.shutdown()
    with pytest.raises(RobotTimeoutError, match="did not answer 'observe'"):
        remote.observe()
    restarted = RobotServer(robot, TOKEN, port=port)
    restarted.start()
    try:
        remote.connect()  # same client object, fresh socket, new server process state
        remote.home()
        assert remote.observe().state.shape == (14,)
    finally:
        remote.close()
        restarted.shutdown()
