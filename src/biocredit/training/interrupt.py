"""Stopping a run cleanly: SIGINT/SIGTERM ask the training loop to stop after its current
step; the loop raises :class:`RunInterrupted`, and the run writes what it has.

A second signal while the first is pending stops at once (``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_pending: list[int] = []   # the signal that asked to stop, if any


class RunInterrupted(RuntimeError):
    """The run stopped on a signal (``signum``) after a finished step."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT)."""
        return 128 + self.signum


def request_stop(signum: int = signal.SIGINT) -> None:
    """Ask the running training loop to stop after its current step."""
    if not _pending:
        _pending.append(signum)


def check_stop() -> None:
    """Raise :class:`RunInterrupted` if a stop was asked for (the loop calls this)."""
    if _pending:
        raise RunInterrupted(_pending[0])


def pending_stop() -> int | None:
    """The signal that asked to stop, if one did."""
    return _pending[0] if _pending else None


def clear_stop() -> None:
    _pending.clear()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call :func:`request_stop` (a second one raises
    ``KeyboardInterrupt``); the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _pending:
            raise KeyboardInterrupt
        request_stop(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    clear_stop()
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        clear_stop()
