"""Shared-token handling for the robot server and client.

The token is a random secret shared by the robot PC and the learning PC through a file (copy it
with ``scp``); it keys the HMAC of every message (:mod:`sarm2_gym.real.protocol`) and never
crosses the network.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "robot.token"
    >>> token = write_token_file(path)
    >>> load_token(path) == token, len(token)
    (True, 64)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sarm2_gym.real.protocol import MIN_TOKEN_LENGTH

__all__ = ["as_key", "generate_token", "load_token", "write_token_file"]


def generate_token() -> str:
    """Return a new random token (256 bits, hex)."""
    return secrets.token_hex(32)


def as_key(token: str | bytes) -> bytes:
    """Validate a token and return it as HMAC key bytes.

    Raises:
        ValueError: If it is shorter than :data:`~sarm2_gym.real.protocol.MIN_TOKEN_LENGTH`.
    """
    key = token.encode() if isinstance(token, str) else bytes(token)
    if len(key) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"token must be at least {MIN_TOKEN_LENGTH} characters; create one with "
            "sarm2_gym.real.auth.write_token_file or `sarm2 robot-server --token-file NEW_FILE`"
        )
    return key


def load_token(path: str | Path) -> str:
    """Read a token file (surrounding whitespace ignored).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the token is too short.
    """
    token = Path(path).read_text(encoding="utf-8").strip()
    as_key(token)
    return token


def write_token_file(path: str | Path) -> str:
    """Create ``path`` holding a new token, readable by its owner only, and return the token.

    Raises:
        FileExistsError: If ``path`` exists (a token is never overwritten by accident).
    """
    token = generate_token()
    # O_EXCL: never clobber an existing token; 0o600: other users cannot read it.
    fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token
