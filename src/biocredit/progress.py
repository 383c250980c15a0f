"""A progress bar for :func:`biocredit.training.run`'s ``progress``: one tqdm bar per epoch,
on stderr, shown only when stderr is a terminal (never into a file or a pipe)."""

from __future__ import annotations

import sys


class ProgressBar:
    """A tqdm bar per epoch (on stderr, when it is a terminal and ``enabled``), labelled
    ``"LABEL epoch N"``, with the mean loss so far; :meth:`close` ends the current one."""

    def __init__(self, label: str, enabled: bool):
        self.label, self.bar = label, None
        self.enabled = enabled and _is_terminal(sys.stderr)

    def __call__(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm
        if self.bar is None or self.bar.desc != f"{self.label} epoch {epoch}":
            self.close()
            self.bar = tqdm(total=steps, desc=f"{self.label} epoch {epoch}", leave=False,
                            file=sys.stderr, dynamic_ncols=True)
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(loss=f"{loss:.4f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):     # a replaced or closed stream
        return False
