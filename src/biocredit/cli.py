"""The ``biocredit`` command line: it parses the commands (the run options themselves are
declared on :class:`~biocredit.training.config.RunConfig`), calls the library (comparisons
and seed sweeps: :mod:`biocredit.training.compare`), and prints the tables."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
from pathlib import Path

import torch

from . import distributed, losses, models, rules
from .tracebacks import one_line, user_code
from .models import INITS, INJECTION_POINTS
from .training import OPTIMIZERS, TrainingDiverged, benchmark, run
from .training.compare import (RUN_RECORD, Comparison, baseline_rule, run_comparison,
                               run_seeds)
from .training.seeds import parse_seeds
from .training.folder import unique_folder
from .training.interrupt import RunInterrupted, pass_on, stop_on_signals, take_caught
from .training.sweep import Outcome, Sweep, Task
from .training.config import RunConfig, run_options
from .training.results import read_json, slug, write_json


def main(argv: list[str] | None = None, *, pass_on_signals: bool | None = None) -> int:
    """Run one command; every failure ends in one line on stderr and a non-zero exit code
    (a Python traceback only with ``--debug``): 2 for a bad command line or input, 1 for an
    error in the user's own code (a model file), a diverged or failed run, or an internal
    error, 128 + the signal's number for SIGINT / SIGTERM.

    ``pass_on_signals`` (default: when ``argv`` is given, that is when a host calls this in
    its own process, a test or a notebook, rather than as the ``biocredit`` command): a
    SIGINT or SIGTERM that stopped the command is, once the command has stopped cleanly,
    passed on to the handler installed before it, so the host stops too (Python's default
    raises ``KeyboardInterrupt`` for SIGINT, the system's ends the process for SIGTERM)."""
    if pass_on_signals is None:
        pass_on_signals = argv is not None
    if not pass_on_signals:
        return _main(sys.argv[1:] if argv is None else list(argv))
    take_caught()                               # (signals of earlier commands are not ours)
    code = _main(list(argv) if argv is not None else sys.argv[1:])
    caught = take_caught()
    if caught:
        pass_on(caught)
    return code


def _main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:                 # --help, or a usage error (one line)
        return exit_code(exit_)
    args.argv = argv
    # Under torchrun every rank meets the same errors: rank 0 tells them; the others say
    # only what may be theirs alone (an internal error), naming their rank.
    rank = os.environ.get("RANK", "0") if distributed.launched_in_parallel() else "0"

    def say(message: str, own: bool = False) -> None:
        if rank == "0" or own:
            print(f"biocredit: {'' if rank == '0' else f'rank {rank}: '}{message}",
                  file=sys.stderr)

    try:
        if distributed.launched_in_parallel():
            join_process_group(args)
        return args.func(args)
    except TrainingDiverged as err:
        say(f"training diverged: {err}. What was written so far is kept.")
        return 1
    except RunInterrupted as err:
        say(str(err))
        return err.exit_code
    except KeyboardInterrupt as err:       # a signal during set-up, a second one, Ctrl-C
        say(str(err) or "interrupted")
        return getattr(err, "exit_code", 130)
    except BrokenPipeError:               # `biocredit … | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        if args.debug:
            raise
        where = user_code(err)
        needed = out_of_memory(err)
        if needed is not None:
            say(f"out of memory: {needed}; try a smaller --batch-size (or a smaller model)")
        elif isinstance(err, (ValueError, OSError)) and not where:
            say(f"error: {one_line(err)}")
            return 2
        elif where:
            say(f"error in {where}: {type(err).__name__}: {one_line(err)} (run again with "
                "--debug for the traceback)")
        else:
            say(f"internal error: {type(err).__name__}: {one_line(err)} (run again with "
                "--debug for the traceback, and please report it)", own=True)
        return 1
    finally:
        distributed.stop()


def join_process_group(args) -> None:
    """Under ``torchrun``: join its process group for one data-parallel ``train``; ranks
    other than 0 stay quiet (rank 0 prints and writes)."""
    if args.command != "train":
        raise ValueError(f"torchrun starts data-parallel training: biocredit train; for "
                         f"{args.command}, run one process (compare and reproduce take --jobs)")
    if getattr(args, "jobs", 1) != 1:
        raise ValueError("--jobs runs several single-process runs; under torchrun leave it out")
    if not distributed.start_from_environment().writer:
        args.quiet = True
        sys.stdout = open(os.devnull, "w")


def exit_code(exit_: SystemExit) -> int:
    """argparse's exit as a return code (2 for a usage error)."""
    return exit_.code if isinstance(exit_.code, int) else 2


def out_of_memory(err: BaseException) -> str | None:
    """What an out-of-memory error needed (``"… tried to allocate 313.6 GB on the CPU"``),
    or ``None`` for another error."""
    import re
    text = str(err)
    cpu = re.search(r"can't allocate memory: you tried to allocate (\d+) bytes", text)
    if cpu:
        return f"it needed {int(cpu.group(1)) / 1e9:,.1f} GB more on the CPU"
    if isinstance(err, torch.OutOfMemoryError) or "out of memory" in text.lower():
        gpu = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", text)
        device = "the GPU" if "cuda" in text.lower() or "gpu" in text.lower() else "the device"
        return f"it needed {gpu.group(1)} more on {device}" if gpu else \
            f"{device} ran out ({one_line(err)[:200]})"
    return None


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
                not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument (``--help`` shows the usage)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        if not kwargs.get("help") and shows_default(kwargs.get("default")):
            # (argparse shows no default for an option without help)
            kwargs["help"] = "default: %(default)s"
        return super().add_argument(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="biocredit",
        description="Train networks with feedback alignment and its relatives; compare them "
                    "with back-propagation.")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one rule and write a run folder")
    train.add_argument("--rule", default="dfa", help=f"one of: {', '.join(rules.available())}")
    add_run_options(train)
    train.set_defaults(func=cmd_train)

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
    compare.set_defaults(func=cmd_compare)

    report = sub.add_parser("report", help="write report.md and a self-contained report.html "
                                           "(with PNG figures) comparing run folders")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders (a compare folder stands for all its runs)")
    report.add_argument("--out", help="folder for the report (default: the runs' common "
                                      "parent, or the run folder itself for one run)")
    report.add_argument("--tsne-size", type=int, default=500,
                        help="test examples in the t-SNE plots (0: no t-SNE)")
    report.add_argument("--title", help="the report's title")
    report.set_defaults(func=cmd_report)

    bench = sub.add_parser("bench", help="time one training step per rule")
    bench.add_argument("--rules", default="bp,fa,dfa")
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
    bench.set_defaults(func=cmd_bench)

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
    reproduce.set_defaults(func=cmd_reproduce)

    for name, helptext, func in (("rules", "list the learning rules", cmd_rules),
                                 ("models", "list the model families", cmd_models)):
        p = sub.add_parser(name, help=helptext)
        p.set_defaults(func=func)
    return parser


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of ``train`` and ``compare``: the :class:`RunConfig` fields that are
    options (declared there, with their help, type and default), and the command line's
    own, in the order ``--help`` shows them. (Over 60 lines: one flat list of
    declarations, the command line's own options between the generated ones.)"""
    fields = run_options()

    def field_options(*names: str) -> None:
        for name in names:
            p.add_argument("--" + name.replace("_", "-"), **fields.pop(name))

    field_options("model", "data", "data_dir")
    p.add_argument("--no-download", action="store_true",
                   help="never download a missing dataset")
    field_options("normalize", "validation", "train_size", "test_size", "task")
    p.add_argument("--loss", help=f"one of: {', '.join(losses.available())} (default: ce, "
                                  "or reconstruction for autoencoders)")
    p.add_argument("--strategy", help="general rule: s1, s2 or s3 (Flam-Shepherd)")
    p.add_argument("--aux-errors", action="store_true",
                   help="each hidden layer learns from its own auxiliary error (dfa, general)")
    p.add_argument("--off-class-factor", type=float,
                   help="hinge loss: weight of the off-class terms (default 1)")
    field_options("epochs", "stop_train_error", "freeze", "init_from", "adversarial",
                  "batch_size", "optimizer", "lr", "momentum", "weight_decay")
    p.add_argument("--init", choices=INITS, default="uniform",
                   help="forward weights: uniform ±1/√fan_in, xavier, or zero (Nøkland)")
    p.add_argument("--init-scale", type=float, metavar="OMEGA",
                   help="MLPs: draw the uniform init from U(-OMEGA, OMEGA) (Lillicrap's "
                        "small-weight experiment)")
    p.add_argument("--forward-density", type=float, default=1.0,
                   help="fraction of forward connections kept (fixed random masks)")
    field_options("taps")
    p.add_argument("--inject-at", choices=INJECTION_POINTS,
                   help="where direct feedback enters a block: its output (after pooling, "
                        "as Nøkland) or its activation (before pooling, as the DKP authors); "
                        "default: the model's own")
    p.add_argument("--feedback-density", type=float,
                   help="fraction of feedback connections kept (rules with feedback)")
    p.add_argument("--feedback-init",
                   help="feedback matrices: uniform, gaussian, orthogonal, or b1..b7 "
                        "(Flam-Shepherd's structured matrices)")
    p.add_argument("--dropout-input", type=float, default=0.0, help="fraction of inputs dropped")
    p.add_argument("--dropout-hidden", type=float, default=0.0,
                   help="fraction of hidden units dropped")
    p.add_argument("-O", "--rule-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a rule option, e.g. feedback_scale=0.1 (or RULE.KEY=VALUE for one "
                        "rule only); repeatable")
    field_options("seed")
    p.add_argument("--seeds", help="run several seeds: a count N (the N seeds from --seed) or "
                                   "a list 0,1,2; every run is kept, tables show mean ± std")
    field_options("device")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="with several runs (compare, --seeds): run N at once, each in its "
                        "own process with its share of the CPU threads")
    field_options("probe_size", "log_every_steps", "train_error", "compile", "amp",
                  "divergence_factor")
    p.add_argument("--out", help="run folder (default: a new folder under runs/, named by the "
                                 "run and its start time)")
    p.add_argument("--overwrite", action="store_true",
                   help="clear --out first if it holds another run")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last finished epoch (with it: "
                        "only --epochs, --device, --jobs, --quiet)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    if fields:
        raise AssertionError(f"RunConfig options not on the command line: {', '.join(fields)}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1; got {text!r}")
    return value


def parse_rule_options(rule: str, pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs for ``rule``: ``RULE.KEY=VALUE`` pairs of other rules are skipped,
    and a plain ``KEY`` the rule does not have is skipped too (it may be another rule's)."""
    options = {}
    accepted = rules.get(rule).defaults
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"a rule option is KEY=VALUE; got {pair!r}")
        target, dot, key = key.rpartition(".")
        if dot and target != rule:
            continue
        if not dot and key not in accepted:
            continue
        options[key] = option_value(text)
    return options


def check_rule_options(names: list[str], pairs: list[str]) -> None:
    """Every plain option must belong to at least one of the rules, and every
    ``RULE.KEY`` option to a rule of the run that has ``KEY``."""
    for pair in pairs:
        key, sep, _ = pair.partition("=")
        if not sep:
            raise ValueError(f"-O {pair}: a rule option is KEY=VALUE or RULE.KEY=VALUE")
        target, dot, name = key.rpartition(".")
        if not dot and not any(key in rules.get(n).defaults for n in names):
            raise ValueError(f"no rule among {', '.join(names)} has the option {key!r}")
        if dot and target not in names:
            raise ValueError(f"-O {pair}: {target!r} is not a rule of this run "
                             f"({', '.join(names)})")
        if dot and name not in rules.get(target).defaults:
            valid = ", ".join(sorted(rules.get(target).defaults)) or "none"
            raise ValueError(f"-O {pair}: rule {target!r} has no option {name!r}; its "
                             f"options: {valid}")


def flag_options(args) -> list[str]:
    """The rule flags as ``KEY=VALUE`` options (each applies to the rules that have it)."""
    values = {"feedback_density": args.feedback_density, "feedback_init": args.feedback_init,
              "strategy": args.strategy, "aux_errors": True if args.aux_errors else None}
    return [f"{key}={json.dumps(value)}" for key, value in values.items() if value is not None]


def parse_rule_spec(spec: str) -> tuple[str, dict]:
    """``RULE[:KEY=VALUE...]``, e.g. ``general:strategy=s2:aux_errors=true``."""
    name, *pairs = spec.split(":")
    rules.get(name)
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"in {spec!r}: options are KEY=VALUE; got {pair!r}")
        options[key] = option_value(text)
    return name, options


def option_value(text: str):
    """A JSON value (number, true, null, {...}) where it parses, else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_from(args, spec: str) -> RunConfig:
    rule, spec_options = parse_rule_spec(spec)
    model_options = {"init": args.init, "dropout_input": args.dropout_input,
                     "dropout_hidden": args.dropout_hidden}
    if args.forward_density != 1.0:
        model_options["forward_density"] = args.forward_density
    if args.inject_at:
        model_options["inject_at"] = args.inject_at
    if args.init_scale is not None:
        model_options["init_scale"] = args.init_scale
    loss_options = {} if args.off_class_factor is None else \
        {"off_class_factor": args.off_class_factor}
    named = parse_rule_options(rule, [p for p in args.rule_option
                                      if p.partition("=")[0].startswith(rule + ".")])
    clash = sorted(k for k in named.keys() & spec_options.keys()
                   if named[k] != spec_options[k])
    if clash:
        raise ValueError(f"{spec} sets {', '.join(clash)} to another value than -O "
                         f"{rule}.{clash[0]}; set it in one place")
    fields = {name: getattr(args, name) for name in run_options()}
    return RunConfig(**{
        **fields, "rule": rule, "label": spec,
        "rule_options": {**parse_rule_options(rule, args.rule_option + flag_options(args)),
                         **spec_options},
        "model_options": model_options, "loss_options": loss_options,
        "download": not args.no_download, "train_size": args.train_size or None,
        "test_size": args.test_size or None,
        "loss": args.loss or {"autoencoder": "reconstruction", "regress": "mse"}.get(args.task,
                                                                                     "ce")})


class ProgressBar:
    """A tqdm bar per epoch (on stderr, when it is a terminal: never into a file or a pipe);
    the library itself never prints."""

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


def train_one(config: RunConfig, out: Path, quiet: bool, dataset=None, *,
              resume: bool = False, overwrite: bool = False) -> dict:
    bar = ProgressBar(config.rule, enabled=not quiet)

    def on_epoch(row):
        bar.close()
        if not quiet:
            angles = ", ".join("-" if a is None else f"{a:.1f}" for a in row["angle_deg"])
            print(f"{config.rule} epoch {row['epoch']}: loss {row['train_loss']:.4f}  "
                  f"train error {row['train_error']:.4f}  test error {row['test_error']:.4f}  "
                  f"angle to BP [{angles}]°  {row['seconds']:.1f}s "
                  f"(+{row['overhead_seconds']:.1f}s evaluation and files)", file=sys.stderr)
    try:
        return run(config, out, dataset=dataset, progress=bar, on_epoch=on_epoch,
                   resume=resume, overwrite=overwrite)
    finally:
        bar.close()


RESUME_FLAGS = {"--resume", "--epochs", "--device", "--quiet", "--debug", "--jobs"}


def given_flags(argv: list[str]) -> set[str]:
    """The options written on the command line (not their values), an abbreviation of a
    resume flag (``--epo``) as the flag (argparse has already refused ambiguous ones)."""
    flags = {t.split("=")[0] for t in argv
             if t.startswith("-") and len(t) > 1 and not (t[1].isdigit() or t[1] == ".")}
    return {next((f for f in RESUME_FLAGS if f.startswith(flag)), flag)
            if flag.startswith("--") and flag not in RESUME_FLAGS else flag for flag in flags}


def resumed(args, command: str):
    """The arguments of the run in ``args.resume``, as first given (from its ``run.json``),
    with this command line's ``--epochs``, ``--device`` and ``--quiet``; ``None`` for a
    single training run (its ``config.json`` is enough)."""
    folder = Path(args.resume)
    given = given_flags(args.argv)
    extra = sorted(given - RESUME_FLAGS - {"--no-report", "--tsne-size"})
    if extra:
        raise ValueError(f"--resume continues a run as it was made; only --epochs, --device, "
                         f"--jobs and --quiet may go with it (got {', '.join(extra)})")
    if not folder.is_dir():
        raise FileNotFoundError(f"--resume {folder}: no such run folder")
    record_path = folder / RUN_RECORD
    if not record_path.is_file():
        if command == "train" and (folder / "config.json").is_file():
            return None
        raise ValueError(f"--resume {folder}: it holds no biocredit {command} run (no "
                         f"{RUN_RECORD}" + (" or config.json)" if command == "train" else ")"))
    record = read_json(record_path)
    argv = record.get("argv") if isinstance(record, dict) else None
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or \
            record.get("command") not in ("train", "compare"):
        raise ValueError(f"{record_path} is not a biocredit run record (corrupt?)")
    if record["command"] != command:
        raise ValueError(f"--resume {folder}: it holds a {record['command']} run; resume "
                         f"it with biocredit {record['command']} --resume {folder}")
    try:
        if argv[:1] != [command]:
            raise SystemExit(2)
        with contextlib.redirect_stderr(io.StringIO()):
            again = build_parser().parse_args(argv)
    except SystemExit:
        raise ValueError(f"{record_path}: its command line is not one of biocredit "
                         f"{command} (corrupt?)") from None
    for flag, name in (("--epochs", "epochs"), ("--device", "device")):
        if flag in given and getattr(args, name) != getattr(again, name):
            argv = argv + [flag, str(getattr(args, name))]  # so a later --resume keeps it
    for flag, name in (("--epochs", "epochs"), ("--device", "device"), ("--quiet", "quiet"),
                       ("--no-report", "no_report"), ("--tsne-size", "tsne_size"),
                       ("--jobs", "jobs")):
        if flag in given:
            setattr(again, name, getattr(args, name))
    again.argv, again.resume, again.out, again.overwrite = argv, str(folder), str(folder), False
    again.run_id = record.get("run_id")
    return again


def resume_single(args) -> int:
    """``train --resume DIR`` for a one-seed run: its ``config.json`` says everything."""
    from .report.runs import run_config
    folder = Path(args.resume)
    saved = read_json(folder / "config.json")
    if not isinstance(saved, dict):
        raise ValueError(f"{folder / 'config.json'} does not hold a run's config (corrupt?)")
    given = given_flags(args.argv)
    config = run_config(saved, args.device if "--device" in given else
                        saved.get("device", "cpu"), str(folder / "config.json"))
    if "--epochs" in given:
        config.epochs = args.epochs
    with stop_on_signals():
        summary = run_interruptible(config, folder, args.quiet, "train", resume=True)
    report_run(summary, folder)
    return 0


def run_interruptible(config: RunConfig, folder: Path, quiet: bool, command: str,
                      resume_dir: Path | None = None, **options) -> dict:
    """:func:`train_one`, saying how to resume when a signal stops it."""
    try:
        return train_one(config, folder, quiet, **options)
    except RunInterrupted as err:
        where = resume_dir or folder
        err.args = (f"{err}; the run in {folder} can continue from epoch "
                    f"{epochs_done(folder)}: biocredit {command} --resume {where}",)
        raise


def epochs_done(folder: Path) -> int:
    try:
        return read_json(folder / "summary.json").get("resume_epoch", 0)
    except (OSError, ValueError):
        return 0


def report_run(summary: dict, folder: Path, name: str | None = None) -> None:
    errors = ", ".join(f"{key.replace('_', ' ')} {summary[key]:.4f}"
                       for key in ("test_error", "train_error") if summary.get(key) is not None)
    overhead = summary.get("overhead_seconds") or 0.0
    share = overhead / (overhead + summary["seconds"]) if overhead else 0.0
    print(f"{name or summary['rule']}: {errors or 'no epoch finished'}, "
          f"{summary['seconds']:.1f}s training + {overhead:.1f}s evaluation and files ({100 * share:.0f}%) -> {folder}")


def default_out(base: str) -> Path:
    return unique_folder(f"runs/{base}")


def cmd_train(args) -> int:
    if args.resume:
        again = resumed(args, "train")
        if again is None:
            return resume_single(args)
        args = again
    check_rule_options([parse_rule_spec(args.rule)[0]], args.rule_option + flag_options(args))
    seeds = parse_seeds(args.seeds, args.seed)
    config_from(args, args.rule).validate()
    out = Path(args.out) if args.out else default_out(
        f"{slug(args.rule)}-{slug(args.data)}-{slug(args.model)}-s{args.seed}"
        + (f"-n{len(seeds)}" if len(seeds) > 1 else ""))
    out = Path(distributed.from_writer(str(out)))     # under torchrun: rank 0's folder
    resume = bool(args.resume)
    if len(seeds) == 1:
        with stop_on_signals():
            summary = run_interruptible(config_from(args, args.rule), out, args.quiet, "train",
                                        resume=resume, overwrite=args.overwrite)
        report_run(summary, out)
        print_transport(summary)
        return 0

    def run_here(task: Task) -> dict:
        summary = run_interruptible(task.config, task.folder, args.quiet, "train", out,
                                    resume=resume)
        report_run(summary, task.folder, task.name)
        return summary

    ended = run_seeds(config_from(args, args.rule), seeds, out, run_here, name=args.rule,
                      jobs=args.jobs, on_done=sweep_reporter(args.jobs, args.quiet),
                      resume=resume, overwrite=args.overwrite, argv=args.argv,
                      run_id=getattr(args, "run_id", None), reraise=args.debug)
    if ended.statistics is not None:
        if ended.summaries:
            print_transport(ended.summaries[-1])
        marked = args.rule + "".join(f" ({m})" for m in ended.marks)
        print(format_table({marked: ended.statistics}))
    if ended.sweep.interrupted is not None:
        raise resumable(ended.sweep.interrupted, out, "train")
    return sweep_exit(ended.sweep, "seeds")


def print_transport(summary: dict) -> None:
    transport = summary.get("weight_transport")
    if transport:
        print(f"weight transport: {transport['free']} of "
              f"{transport['free'] + transport['transport']} parameters learn without it"
              + (f"; the rule's feedback carries {transport['rule_note']}"
                 if transport["rule_note"] else ""))


def cmd_compare(args) -> int:
    if args.resume:
        args = resumed(args, "compare")
    specs = [n.strip() for n in args.rules.split(",") if n.strip()]
    if not specs:
        raise ValueError("--rules needs at least one rule name")
    if len(set(specs)) != len(specs):
        raise ValueError("--rules names a rule twice; give the copies different options")
    baseline_rule(args.baseline, specs)
    if args.tsne_size < 0:
        raise ValueError(f"--tsne-size is a number of test examples (0: no t-SNE); got "
                         f"{args.tsne_size}")
    check_rule_options([parse_rule_spec(s)[0] for s in specs],
                       args.rule_option + flag_options(args))
    configs = {spec: config_from(args, spec) for spec in specs}
    for spec, config in configs.items():
        try:
            config.validate()
        except ValueError as err:
            raise (ValueError(f"{spec}: {err}") if spec != config.rule else err) from None
    seeds = parse_seeds(args.seeds, args.seed)
    out = Path(args.out) if args.out else default_out(
        f"compare-{slug(args.data)}-{slug(args.model)}-s{args.seed}")
    resume = bool(args.resume)

    def run_here(task: Task, dataset) -> dict:
        return run_interruptible(task.config, task.folder, args.quiet, "compare", out,
                                 dataset=dataset, resume=resume)

    ended = run_comparison(configs, seeds, out, run_here, baseline=args.baseline,
                           jobs=args.jobs, on_done=sweep_reporter(args.jobs, args.quiet),
                           resume=resume, overwrite=args.overwrite, argv=args.argv,
                           run_id=getattr(args, "run_id", None), reraise=args.debug)
    if ended.runs:
        show_comparison(args, out, ended)
    if ended.sweep.interrupted is not None:
        raise resumable(ended.sweep.interrupted, out, "compare")
    return sweep_exit(ended.sweep, "comparison")


def show_comparison(args, out: Path, ended: Comparison) -> None:
    """A comparison's table (several seeds: with the paired differences), where its runs
    are, and its report (unless ``--no-report``)."""
    marked = {spec: spec + (f" ({ended.marks[spec]})" if spec in ended.marks else "")
              for spec in ended.rules}
    print(format_table({marked[s]: v for s, v in ended.rules.items()}))
    for line in format_paired(ended.paired) if ended.paired is not None else []:
        print(line)
    print(f"runs written to {out}")
    from .report.runs import finished_an_epoch
    folders = ended.folders
    reported = [f for f in folders.values() if finished_an_epoch(f)]
    if len(reported) < len(folders) and not args.no_report:
        print("the report leaves out " + ", ".join(
            name for name, f in folders.items() if f not in reported)
              + ": no epoch finished", file=sys.stderr)
    if not args.no_report and reported:
        from .report import write_report
        files = write_report(reported, out, tsne_size=args.tsne_size, comparison=ended.record)
        print(f"report written to {files.html} (and {files.markdown.name})")


def sweep_reporter(jobs: int, quiet: bool):
    """What a sweep prints as each run ends: a diverged or failed run (the others go on);
    with worker processes and without ``--quiet``, also each finished run's line."""
    def on_done(outcome: Outcome) -> None:
        if outcome.status in ("diverged", "failed"):
            print(f"biocredit: {outcome.task.name} {outcome.status}: {outcome.message}; "
                  "going on with the others", file=sys.stderr)
        elif jobs > 1 and not quiet and outcome.status == "completed":
            report_run(outcome.summary, outcome.task.folder, outcome.task.name)
    return on_done


def resumable(stopped: RunInterrupted, out: Path, command: str) -> RunInterrupted:
    """``stopped``, saying how to continue the sweep in ``out``."""
    if "--resume" not in str(stopped):
        stopped.args = (f"{stopped}; the runs in {out} can continue: biocredit {command} "
                        f"--resume {out}",)
    return stopped


def sweep_exit(sweep: Sweep, what: str) -> int:
    """1 when a run failed (after the others finished), :class:`TrainingDiverged` when
    every run diverged, else 0."""
    failed = [o.task.name for o in sweep.outcomes if o.status == "failed"]
    if failed:
        print(f"biocredit: {len(failed)} run(s) of the {what} failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    if sweep.outcomes and all(o.status == "diverged" for o in sweep.outcomes):
        raise TrainingDiverged(f"every run of the {what} diverged")
    return 0


def minus(text: str) -> str:
    """``text`` with its hyphen-minus signs as minus signs (−), as in the tables."""
    return text.replace("-", "−")


def format_paired(paired: dict, alpha: float = 0.05) -> list[str]:
    """One line per rule: its mean paired difference from the baseline ± the standard
    error, the paired t-test, and what it says at ``alpha`` (see
    :func:`~biocredit.training.seeds.paired_differences`)."""
    base, lines = paired["baseline"], []
    for rule, d in paired["rules"].items():
        head = f"{rule} − {base}:"
        left = d["left_out"]
        gone = (f" (seed{'s' if len(left) > 1 else ''} {', '.join(map(str, left))} left out: "
                f"a run of {rule} or {base} failed or diverged)") if left else ""
        if d["n"] == 0:
            lines.append(f"{head} no seed where both finished{gone}")
            continue
        if d["n"] == 1:
            lines.append(f"{head} {minus(format(d['mean'], '+.4f'))} on the one seed both "
                         f"finished{gone} — too few paired seeds for a p-value (2 needed)")
            continue
        t = d["t"]
        t_text = minus(f"{t:.2f}") if math.isfinite(t) else ("∞" if t > 0 else "−∞")
        if d["p"] < alpha:
            verdict = (f"significant at {alpha:g}: {rule}'s test error is "
                       f"{'lower' if d['mean'] < 0 else 'higher'}")
        else:
            verdict = f"not significant at {alpha:g}"
        lines.append(f"{head} {minus(format(d['mean'], '+.4f'))} ± {d['se']:.4f} (mean ± "
                     f"standard error of the paired differences over {d['n']} seeds; paired "
                     f"t = {t_text}, {d['df']} df, p = {d['p']:.2g}, two-sided) — "
                     f"{verdict}{gone}")
    return lines


def cmd_report(args) -> int:
    from .report import write_report
    files = write_report(args.runs, args.out, tsne_size=args.tsne_size, title=args.title)
    print(files.table)
    print(f"report written to {files.html} (and {files.markdown.name})")
    return 0


def format_table(summaries: dict[str, dict]) -> str:
    """One row per rule: a run's summary, or :func:`seed_statistics` over several seeds
    (shown as mean ± std, with the range of the test error)."""
    width = max(8, *(len(name) for name in summaries))
    several = any("test_error" in s and isinstance(s["test_error"], dict)
                  for s in summaries.values())
    if several:
        header = f"{'rule':<{width}} {'seeds':>5} {'test error':>17} {'(min-max)':>15} " \
                 f"{'train error':>17} {'time (s)':>9} {'angle to BP (°)':>16}"
    else:
        header = f"{'rule':<{width}} {'test error':>10} {'train error':>11} {'time (s)':>9} " \
                 f"{'angle to BP (°)':>16}"
    lines = [header, "-" * len(header)]
    for name, s in summaries.items():
        if several:
            def pm(key, digits=4):
                v = s.get(key)
                return "-" if v is None else f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}"
            test = s["test_error"]
            angle = s.get("mean_angle_deg")
            lines.append(f"{name:<{width}} {test['n']:>5} {pm('test_error'):>17} "
                         f"{test['min']:.4f}-{test['max']:.4f} {pm('train_error'):>17} "
                         f"{s['seconds']['mean']:>9.1f} "
                         f"{'-' if angle is None else pm('mean_angle_deg', 1):>16}")
            continue
        def value(key, digits=4):
            return "-" if s.get(key) is None else f"{s[key]:.{digits}f}"
        lines.append(f"{name:<{width}} {value('test_error'):>10} {value('train_error'):>11} "
                     f"{value('seconds', 1):>9} {value('mean_angle_deg', 1):>16}")
    return "\n".join(lines)


def cmd_bench(args) -> int:
    names = [n.strip() for n in args.rules.split(",") if n.strip()]
    try:
        shape = tuple(int(d) for d in args.input_shape.split("x"))
    except ValueError:
        raise ValueError(f"--input-shape is like 1x28x28; got {args.input_shape!r}") from None
    result = benchmark(names, args.model, batch_size=args.batch_size, steps=args.steps,
                       warmup=args.warmup, input_shape=shape, num_classes=args.classes,
                       optimizer=args.optimizer, device=args.device, amp=args.amp,
                       compile=args.compile, taps=[t for t in args.taps.split(",") if t])
    print(f"{args.model}, batch {args.batch_size}, {result['device']}"
          f"{', bf16 autocast' if args.amp else ''}{', compiled' if args.compile else ''}, "
          f"{result['threads']} threads, median of {args.steps} steps")
    width = max(8, *map(len, result["rules"]))
    print(f"{'rule':<{width}} {'step (ms)':>10} {'x BP':>6} {'x torch':>8} {'floor':>6} "
          f"{'GFLOP/s':>8} {'saved MB':>9}" + (f" {'peak MB':>8}" if "cuda" in result["device"]
                                                else ""))
    for name, r in result["rules"].items():
        floor = "-" if r["floor_ratio"] is None else f"{r['floor_ratio']:.2f}"
        gflops = "-" if r["gflops"] is None else f"{r['gflops']:.1f}"
        print(f"{name:<{width}} {r['step_ms']:>10.2f} {r['ratio_to_bp']:>6.2f} "
              f"{r['ratio_to_torch']:>8.2f} {floor:>6} {gflops:>8} {r['saved_mb']:>9.2f}"
              + (f" {r['peak_mb']:>8.1f}" if "peak_mb" in r else ""))
    print("floor: the rule's arithmetic (MACs per example from the layer shapes) over BP's; "
          "saved MB: what autograd keeps for the backward pass")
    if args.json:
        write_json(args.json, result)
    return 0


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


def with_jobs(jobs: int):
    """Run a preset's step, its runs in ``jobs`` processes (``--jobs`` changes no result, so
    it is not part of the step's recorded command)."""
    def runner(argv: list[str]) -> int:        # (reproduce's own main passes signals on)
        return main(argv + ["--jobs", str(jobs)] if jobs > 1 and argv[0] in ("train", "compare")
                    else argv, pass_on_signals=False)
    return runner


def cmd_reproduce(args) -> int:
    from .experiments import PRESETS, preset
    from .experiments.suite import is_done, missing_data, run_preset
    if args.name is None:
        for p in PRESETS.values():
            print(f"{p.name:<30} {p.description} ({len(p.claims)} claims)")
        return 0
    try:
        options, extra = reproduce_options(args.extra)
    except SystemExit as exit_:
        return exit_code(exit_)
    chosen = list(PRESETS.values()) if args.name == "all" else [preset(args.name)]
    listed = chosen
    if args.name == "all":                   # presets too slow for this budget are left out
        chosen = [p for p in chosen if options.budget in p.budgets]
    root = Path(options.out or (f"runs/reproduction-{options.budget}" if args.name == "all"
                                else f"runs/{args.name}"))
    if not options.dry_run and not options.document_only:
        try:                    # every step's settings, before any folder exists
            for p in chosen:
                for step in p.steps:
                    check_step(p.command(step, options.budget,
                                         str(root / p.name if args.name == "all" else root),
                                         extra))
        except SystemExit as exit_:             # a usage error in a step: argparse said it
            return exit_code(exit_)
    failed = []
    for p in chosen:
        folder = root / p.name if args.name == "all" else root
        if options.dry_run:
            print(dry_run(p, options.budget, folder, extra))
            continue
        if options.document_only:
            continue
        why_not = missing_data(p, options.budget, extra)
        if why_not:
            print(f"biocredit: {why_not}", file=sys.stderr)
            failed.append(p.name)
            continue
        print(f"== {p.name}: {p.description}" + (f"\npaper: {p.paper}" if p.paper else ""))
        if not options.force and is_done(p, options.budget, folder, extra):
            print(f"(finished already in {folder}; --force runs it again)")
        else:
            def announce(argv, skipped):
                print(("(finished already) " if skipped else "") + "biocredit " + " ".join(argv))
                sys.stdout.flush()
            record = run_preset(p, options.budget, folder, with_jobs(options.jobs), extra,
                                options.force, announce)
            if record.get("exit_code") in (130, 143):       # Ctrl-C or SIGTERM: stop here
                print(f"biocredit: {p.name} interrupted; the same command continues after "
                      "the steps that finished", file=sys.stderr)
                return record["exit_code"]
            if record["status"] != "done":
                failed.append(p.name)
                print(f"{p.name} failed at step {record['failed_step']}; going on")
                continue
        verdicts = folder / "verdicts.md"
        if verdicts.is_file():
            print(verdicts.read_text().split("\n", 2)[2])
    if args.name == "all" and not options.dry_run:
        from .experiments.document import write_reproduction
        command = " ".join(["biocredit reproduce all --budget", options.budget,
                            *(["--out", options.out] if options.out else []), *extra,
                            *(["--publish", options.publish] if options.publish else [])])
        files = write_reproduction(listed, root, options.budget, command, options.publish)
        print("reproduction written to " + ", ".join(str(f) for f in files))
    if failed:
        print(f"biocredit: {len(failed)} preset(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def check_step(argv: list[str]) -> None:
    """A preset step's command line, parsed, and each of its runs' settings validated (as
    ``train`` and ``compare`` do before they make a folder); a ``ValueError`` naming what
    is wrong, or argparse's ``SystemExit`` for a usage error."""
    args = build_parser().parse_args(argv)
    if args.command not in ("train", "compare"):
        return
    specs = [args.rule] if args.command == "train" else \
        [s.strip() for s in args.rules.split(",") if s.strip()]
    check_rule_options([parse_rule_spec(s)[0] for s in specs],
                       args.rule_option + flag_options(args))
    parse_seeds(args.seeds, args.seed)
    for spec in specs:
        config_from(args, spec).validate()


def dry_run(p, budget: str, folder: Path, extra) -> str:
    """A preset's settings (each traced to the paper or to our choice), its command lines at
    ``budget`` and its claims, as Markdown."""
    from .experiments.preset import settings_rows
    from .report.markdown import markdown_table
    lines = [f"## {p.name}: {p.description}", ""]
    if p.settings:
        lines += [markdown_table(settings_rows(p)), ""]
    lines += [f"Commands at the {budget} budget:", "", "```"]
    lines += ["biocredit " + " ".join(p.command(step, budget, str(folder), extra))
              for step in p.steps]
    lines += ["```", ""]
    lines += [f"- claim: `{c.statement}` — “{c.quote}” ({c.source})" for c in p.claims]
    if p.cost:
        lines.append(f"- cost at the paper budget: {p.cost}")
    return "\n".join(lines) + "\n"


def cmd_rules(args) -> int:
    width = max(len(name) for name in rules.available())
    for name in rules.available():
        cls = rules.get(name)
        opts = ", ".join(f"{k}={v!r}" for k, v in cls.defaults.items())
        print(f"{name:<{width}} {cls.summary}" + (f"  [options: {opts}]" if opts else ""))
    return 0


def cmd_models(args) -> int:
    print("mlp:DEPTHxWIDTH:ACTIVATION   e.g. mlp:2x800:tanh; activations: "
          + ", ".join(sorted(models.ACTIVATIONS)))
    print("FILE.py:FUNCTION             your own model: FUNCTION(input_shape, num_classes) "
          "returns an nn.Module (direct rules: biocredit.Tap() in it, or --taps)")
    print(f"{'model':<24} {'params (1x28x28)':>17} {'params (3x32x32)':>17}")
    for name in models.available():
        if name != "mlp":
            counts = [f"{models.parameter_count(name, shape, 10):,}"
                      for shape in ((1, 28, 28), (3, 32, 32))]
            print(f"{name:<24} {counts[0]:>17} {counts[1]:>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
