"""Stopping a run cleanly: moved to :mod:`biocredit.interrupt` (below the models, which stop
a user's model builder at once too); the names stay importable from here."""

from ..interrupt import (Interrupted, RunInterrupted, at_once, check_stop, clear_stop,
                         pass_on, pending_stop, request_stop, stop_on_signals, take_caught)

__all__ = ["Interrupted", "RunInterrupted", "at_once", "check_stop", "clear_stop", "pass_on",
           "pending_stop", "request_stop", "stop_on_signals", "take_caught"]
