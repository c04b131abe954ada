"""A deadline watchdog: calls ``on_timeout`` once when :meth:`Watchdog.feed` stops being called.

One thread waits on a condition variable until the current deadline, so the trip latency is the
deadline plus thread wake-up jitter (well under a millisecond on an idle machine), not a polling
interval.

Example:
    >>> import time
    >>> stopped = []
    >>> dog = Watchdog(0.05, lambda: stopped.append(True))
    >>> dog.start(); dog.feed(); time.sleep(0.2)
    >>> stopped, dog.trips, dog.tripped
    ([True], 1, True)
    >>> dog.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Watchdog"]

_log = logging.getLogger(__name__)


class Watchdog:
    """Trips when no :meth:`feed` arrives within ``timeout_s`` of the previous one.

    The watchdog is disarmed until the first :meth:`feed`; after a trip it stays disarmed and
    :attr:`tripped` stays ``True`` until :meth:`clear`, so the owner can refuse further commands.

    Args:
        timeout_s: Deadline in seconds.
        on_timeout: Called from the watchdog thread on a trip (e.g. ``robot.stop``). Exceptions
            are logged, not raised.
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        timeout_s: float,
        on_timeout: Callable[[], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self._on_timeout = on_timeout
        self._clock = clock
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._fed_at = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.tripped = False
        self.trips = 0
        self.last_trip_delay_s: float | None = None
        """Seconds from the last feed to the moment ``on_timeout`` was called, for the last trip."""

    def start(self) -> None:
        """Start the watchdog thread (idempotent)."""
        with self._cond:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="sarm2-watchdog", daemon=True)
            self._thread.start()

    def feed(self) -> None:
        """Arm the watchdog (or push its deadline back) by ``timeout_s`` from now."""
        with self._cond:
            self._fed_at = self._clock()
            self._deadline = self._fed_at + self.timeout_s
            self._cond.notify()

    def disarm(self) -> None:
        """Stop watching until the next :meth:`feed` (e.g. while the robot is homing)."""
        with self._cond:
            self._deadline = None
            self._cond.notify()

    def clear(self) -> None:
        """Reset the latched :attr:`tripped` flag."""
        with self._cond:
            self.tripped = False

    def close(self) -> None:
        """Stop the thread; the watchdog cannot be restarted."""
        with self._cond:
            self._closed = True
            self._deadline = None
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - self._clock()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                fed_at = self._fed_at
                self._deadline = None
                self.tripped = True
                self.trips += 1
                # Call out without the lock, so feed()/disarm() never wait on a slow stop().
                self._cond.release()
                called_at = self._clock()
                try:
                    self._on_timeout()
                except Exception:
                    _log.exception("watchdog on_timeout callback failed")
                finally:
                    self._cond.acquire()
                self.last_trip_delay_s = called_at - fed_at
                _log.warning(
                    "watchdog: no command for %.3f s (deadline %.3f s), robot stopped",
                    self.last_trip_delay_s,
                    self.timeout_s,
                )
