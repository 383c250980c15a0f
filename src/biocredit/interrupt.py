"""Stopping a run cleanly: SIGINT/SIGTERM ask the training loop to stop after its current
step; the loop raises :class:`RunInterrupted`, and the run writes what it has.

During set-up (:func:`at_once`: building a model, loading data) there is no step to finish:
a signal stops at once, raising :class:`Interrupted`. So does a second signal while the first
is pending. Either way the exit code is 128 + the signal's number (130, 143).

The signals the handlers caught are kept (:func:`take_caught`), so that a host that called
the command line in its own process (a test, a notebook) can pass them on to its own
handlers once the run has stopped cleanly (:func:`pass_on`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_pending: list[int] = []   # the signal that asked to stop, if any
_caught: list[int] = []    # the signals the handlers caught (see take_caught)
_at_once: list[bool] = []  # non-empty within at_once(): a signal stops at once


class RunInterrupted(RuntimeError):
    """The run stopped on a signal (``signum``) after a finished step."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT)."""
        return 128 + self.signum


class Interrupted(KeyboardInterrupt):
    """A signal that stopped at once: during set-up, or a second one."""

    def __init__(self, signum: int, during: str = ""):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}{during}")

    @property
    def exit_code(self) -> int:
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
def at_once() -> Iterator[None]:
    """Set-up (building a model, a user's ``build`` included, loading data): within the
    block a signal that :func:`stop_on_signals` catches raises :class:`Interrupted` at once
    instead of waiting for a training step to end; a stop already asked for raises on
    entry."""
    if _pending:
        raise Interrupted(_pending[0], " during set-up")
    _at_once.append(True)
    try:
        yield
    finally:
        _at_once.pop()


def take_caught() -> list[int]:
    """The signals the handlers of :func:`stop_on_signals` caught since the last call."""
    caught = list(_caught)
    _caught.clear()
    return caught


def pass_on(signums: list[int]) -> None:
    """Deliver each of ``signums`` (once each) to the handler installed now, the one that was
    there before the run: Python's default raises ``KeyboardInterrupt`` for SIGINT, the
    system's ends the process for SIGTERM, a host's own handler does what it does."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in dict.fromkeys(signums):
        signal.raise_signal(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call :func:`request_stop` (a second one, or one
    within :func:`at_once`, raises :class:`Interrupted`); the previous handlers come back
    afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _caught.append(signum)
        if _pending:
            raise Interrupted(signum, " (a second signal)")
        if _at_once:
            request_stop(signum)        # (so the steps after set-up stop too)
            raise Interrupted(signum, " during set-up")
        request_stop(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    clear_stop()
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        clear_stop()
