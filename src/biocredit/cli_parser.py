"""The command line's grammar: its commands and their options (the run options generated
from :class:`~biocredit.training.config.RunConfig`), usage errors in one line, every default in
``--help``, and the library's option names as this command line's flags (:func:`as_flags`)."""

from __future__ import annotations

import argparse
import re

from . import rules
from .training import OPTIMIZERS
from .training.config import run_options


def exit_code(exit_: SystemExit) -> int:
    """argparse's exit as a return code (2 for a usage error)."""
    return exit_.code if isinstance(exit_.code, int) else 2


# The library names an option in its messages between backquotes, as Python would pass it
# (`init_from`, `task=regress`, `overwrite=True`); the command line shows its flag instead.
FLAGS = {"out_dir": "--out"}    # option names -> flags (OneLineParser adds every option's)


def as_flags(message: str) -> str:
    """``message`` with each option it names as this command line's flag: ``--name``,
    ``--name value``, or for ``name=True`` the flag alone; an option the command line
    does not have stays as written."""
    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if name not in FLAGS:
            return match.group(0)
        return FLAGS[name] if value in (None, "True") else f"{FLAGS[name]} {value}"
    return re.sub(r"`(\w+)(?:=([^`]*))?`", flag, message)


def shows_default(default) -> bool:
    """Whether ``--help`` has a default to show: not for flags or options without one (0 is
    shown)."""
    return not (default is None or default is False or default is argparse.SUPPRESS
                or default in ([], ""))


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` shows every option's default (unless its help states it, or there is
    none to show)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not shows_default(action.default) or \
                not action.option_strings or action.nargs == 0:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument (``--help`` shows the usage)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        if not kwargs.get("help") and shows_default(kwargs.get("default")) and \
                kwargs.get("action") not in ("store_true", "store_false"):
            # (argparse shows no default for an option without help)
            kwargs["help"] = "default: %(default)s"
        action = super().add_argument(*args, **kwargs)
        if action.option_strings:
            FLAGS.setdefault(action.dest, action.option_strings[0])
        return action

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``biocredit`` command line (``args.command`` names the command)."""
    parser = OneLineParser(
        prog="biocredit",
        description="Train networks with feedback alignment and its relatives; compare them "
                    "with back-propagation.")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_train, add_compare, add_report, add_bench, add_reproduce):
        add(sub)
    sub.add_parser("rules", help="list the learning rules")
    sub.add_parser("models", help="list the model families")
    return parser


def add_train(sub) -> None:
    train = sub.add_parser("train", help="train one rule and write a run folder")
    train.add_argument("--rule", default="dfa", help=f"one of: {', '.join(rules.available())}")
    add_run_options(train)


def add_compare(sub) -> None:
    compare = sub.add_parser("compare", help="train several rules on the same model, data "
                                             "and seed and print a table")
    compare.add_argument("--rules", default="bp,fa,dfa", help="comma-separated rule names")
    compare.add_argument("--baseline", metavar="RULE",
                         help="with --seeds: each rule's test error is compared with this "
                              "rule's (a rule as given in --rules), seed by seed, by a paired "
                              "t-test (default: the first rule)")
    add_run_options(compare)
    compare.add_argument("--no-report", action="store_true",
                         help="do not write report.md / report.html at the end")
    compare.add_argument("--tsne-size", type=int, default=500,
                         help="test examples in the report's t-SNE plots (0: no t-SNE)")


def add_report(sub) -> None:
    report = sub.add_parser("report", help="write report.md and a self-contained report.html "
                                           "(with PNG figures) comparing run folders")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders (a compare folder stands for all its runs)")
    report.add_argument("--out", help="folder for the report (default: the runs' common "
                                      "parent, or the run folder itself for one run)")
    report.add_argument("--tsne-size", type=int, default=500,
                        help="test examples in the t-SNE plots (0: no t-SNE)")
    report.add_argument("--title", help="the report's title")


def add_bench(sub) -> None:
    bench = sub.add_parser("bench", help="time one training step per rule")
    bench.add_argument("--rules", default="bp,fa,dfa",
                       help="comma-separated rules, each with its options as in compare "
                            "(e.g. kp,kp:fused=true)")
    bench.add_argument("--model", default="mlp:4x800:tanh",
                       help="a built-in model spec or FILE.py:FUNCTION (see train --help)")
    bench.add_argument("--taps", default="",
                       help="direct rules in your own model: comma-separated module names")
    bench.add_argument("--batch-size", type=int, default=128)
    bench.add_argument("--steps", type=int, default=50)
    bench.add_argument("--warmup", type=int, default=10)
    bench.add_argument("--input-shape", default="1x28x28", help="one example, e.g. 1x28x28")
    bench.add_argument("--classes", type=int, default=10)
    bench.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    bench.add_argument("--device", default="auto",
                       help="cpu, cuda, cuda:N, mps or auto (CUDA when available)")
    bench.add_argument("--amp", action="store_true",
                       help="steps under bf16 autocast (the plain-PyTorch floor too)")
    bench.add_argument("--compile", action="store_true",
                       help="torch.compile every model (the plain-PyTorch floor too); the "
                            "warm-up steps pay the compilation")
    bench.add_argument("--json", help="also write the results to this file")
    bench.add_argument("--baseline", metavar="FILE",
                       help="an earlier bench --json result (same model, batch, device, amp, "
                            "compile): print each rule's step time and ratio to torch, then "
                            "and now, and the change")


def add_reproduce(sub) -> None:
    reproduce = sub.add_parser(
        "reproduce", help="run one of the papers' experiments, or all of them, and judge "
                          "the papers' claims (no name: list them)",
        description="Run a preset (or all) at a budget: smoke (seconds, stand-in data), "
                    "short (a quick look: minutes a preset) or paper (the paper's data, "
                    "settings, epochs and at least 3 seeds). Finished steps are not run "
                    "again (--force to rerun); a step stopped part-way continues from its "
                    "last finished epochs. Other flags are appended to every command (a "
                    "later flag wins).")
    reproduce.add_argument("name", nargs="?", help="a preset name, or all")
    reproduce.add_argument("extra", nargs=argparse.REMAINDER,
                           help="--budget smoke|short|paper, --out DIR, --force, --dry-run "
                                "(print each setting with its source, the commands and the "
                                "claims), --publish DIR (all: also write REPRODUCTION.md with "
                                "its figures there), --document-only (all: write the document "
                                "from what has finished, run nothing), --jobs N (each step's "
                                "runs N at a time), then flags for the commands")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of ``train`` and ``compare``: those :func:`run_options` generates from
    :class:`RunConfig`, then the command line's own."""
    for keywords in run_options().values():
        p.add_argument(*keywords.pop("flags"), **keywords)
    p.add_argument("-O", "--rule-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a rule option, e.g. feedback_scale=0.1 (or RULE.KEY=VALUE for one "
                        "rule only); repeatable")
    p.add_argument("--seeds", help="run several seeds: a count N (the N seeds from --seed) or "
                                   "a list 0,1,2; every run is kept, tables show mean ± std")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="with several runs (compare, --seeds): run N at once, each in its "
                        "own process with its share of the CPU threads")
    p.add_argument("--out", help="run folder (default: a new folder under runs/, named by the "
                                 "run and its start time)")
    p.add_argument("--overwrite", action="store_true",
                   help="clear --out first if it holds another run")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last finished epoch (with it: "
                        "only --epochs, --device, --jobs, --quiet)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1; got {text!r}")
    return value


def reproduce_options(extra: list[str]):
    """``reproduce``'s own flags, wherever they stand among the flags for the commands."""
    from .experiments.presets import BUDGETS
    p = OneLineParser(prog="biocredit reproduce", add_help=False)
    p.add_argument("--budget", choices=BUDGETS, default="short")
    p.add_argument("--out")
    p.add_argument("--publish")
    p.add_argument("--force", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--document-only", action="store_true")
    p.add_argument("--jobs", type=positive_int, default=1)
    return p.parse_known_args(extra)
