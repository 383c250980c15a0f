"""Reports over run folders: figures (PNG), ``report.md`` and a self-contained
``report.html``.

>>> from biocredit.report import write_report
>>> files = write_report(["runs/demo/bp", "runs/demo/fa", "runs/demo/dfa"])  # doctest: +SKIP
>>> files.html                                                              # doctest: +SKIP
PosixPath('runs/demo/report.html')

Nothing here prints; figures are drawn with matplotlib's Agg canvas (no display needed).
"""

from .build import ReportFiles, default_out_dir, write_report
from .colors import rule_color
from .runs import RunRecord, expand_run_dirs, load_trained, read_run

__all__ = ["ReportFiles", "RunRecord", "default_out_dir", "expand_run_dirs", "load_trained",
           "read_run", "rule_color", "write_report"]
