"""The ``biocredit`` command line: it parses the commands and calls the library. The run
options are generated from :class:`~biocredit.training.config.RunConfig`; comparisons and seed
sweeps are :mod:`biocredit.training.compare`'s (resumed from their stored :class:`Plan`),
reproductions :mod:`biocredit.experiments.suite`'s, tables :mod:`biocredit.training.tables`'."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

from . import distributed
from .progress import ProgressBar
from .cli_parser import as_flags, build_parser, exit_code, reproduce_options
from .tracebacks import one_line, out_of_memory, user_code
from .training import TrainingDiverged, benchmark, resolve_device, run
from .training.compare import Comparison, Plan, baseline_rule, read_plan, run_comparison, \
    run_seeds
from .training.bench import workload
from .training.bench_baseline import (check_workload, environment_warnings, format_comparison,
                                      load_baseline)
from .training.config import RunConfig
from .training.resume import stored_config
from .training.folder import CONFIG, RUN_RECORD, SUMMARY, read_file_or_none, unique_folder
from .interrupt import RunInterrupted, pass_on, stop_on_signals, take_caught
from .training.options import configs_from, rule_specs
from .training.results import write_json
from .training.seeds import parse_seeds
from .training.sweep import Outcome, Sweep, Task
from .training.tables import (epoch_line, format_benchmark, format_paired, format_table,
                              models_table, rules_table, run_line, transport_line)


def main(argv: list[str] | None = None, *, pass_on_signals: bool | None = None) -> int:
    """Run one command; every failure ends in one line on stderr and a non-zero exit code
    (a traceback only with ``--debug``): 2 for a bad command line or input, 1 for an error
    in the user's own code (a model file), a diverged or failed run, or an internal error,
    128 + the signal's number for SIGINT / SIGTERM. ``pass_on_signals`` (default: when
    ``argv`` is given, as a host does in its own process, a test or a notebook): a signal
    that stopped the command is passed on to the handler installed before it, once the
    command has stopped cleanly, so the host stops too."""
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
    args.argv = argv[argv.index(args.command):]     # (from the command on: what a run keeps)
    # Under torchrun every rank meets the same errors: rank 0 tells them; the others say
    # only what may be theirs alone (an internal error), naming their rank.
    rank = os.environ.get("RANK", "0") if distributed.launched_in_parallel() else "0"

    def say(message: str, own: bool = False) -> None:
        if rank == "0" or own:
            print(f"biocredit: {'' if rank == '0' else f'rank {rank}: '}{as_flags(message)}",
                  file=sys.stderr)

    try:
        if distributed.launched_in_parallel():
            join_process_group(args)
        return globals()[f"cmd_{args.command}"](args)
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
        return say_error(err, say)
    finally:
        distributed.stop()


def say_error(err: Exception, say) -> int:
    """An error in one line, and the exit code: 2 for bad input, else 1."""
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


def plan_of(args, command: str) -> Plan:
    """The runs a ``train`` or ``compare`` command line asks for, checked."""
    specs = [args.rule] if command == "train" else rule_specs(args.rules)
    shown, baseline = {"quiet": args.quiet, "jobs": args.jobs}, None
    if command == "compare":
        baseline = baseline_rule(args.baseline, specs)
        if args.tsne_size < 0:
            raise ValueError(f"--tsne-size is a number of test examples (0: no t-SNE); got "
                             f"{args.tsne_size}")
        shown.update(no_report=args.no_report, tsne_size=args.tsne_size)
    seeds = parse_seeds(args.seeds, args.seed)
    configs = configs_from(specs, vars(args), args.rule_option)
    return Plan(command, configs, seeds, baseline, shown, args.argv)


def train_one(config: RunConfig, out: Path, quiet: bool, command: str,
              resume_dir: Path | None = None, **options) -> dict:
    """One run, with a progress bar and a line per epoch (unless ``quiet``); when a signal
    stops it, saying how to resume."""
    bar = ProgressBar(config.rule, enabled=not quiet)

    def on_epoch(row):
        bar.close()
        if not quiet:
            print(epoch_line(config.rule, row), file=sys.stderr)
    try:
        return run(config, out, progress=bar, on_epoch=on_epoch, **options)
    except RunInterrupted as err:
        summary = read_file_or_none(out, SUMMARY) or {}
        err.args = (f"{err}; the run in {out} can continue from epoch "
                    f"{summary.get('resume_epoch', 0)}: biocredit {command} --resume "
                    f"{resume_dir or out}",)
        raise
    finally:
        bar.close()


RESUME_FLAGS = {"--resume", "--epochs", "--device", "--quiet", "--debug", "--jobs"}
SHOWN = {"quiet": False, "jobs": 1, "no_report": False, "tsne_size": 500}   # and their flags:
SHOWN_FLAGS = {"quiet": "--quiet", "jobs": "--jobs", "no_report": "--no-report",
               "tsne_size": "--tsne-size"}


def given_flags(argv: list[str]) -> set[str]:
    """The options written on the command line (not their values), an abbreviation of a
    resume flag (``--epo``) as the flag (argparse has already refused ambiguous ones)."""
    flags = {t.split("=")[0] for t in argv
             if t.startswith("-") and len(t) > 1 and not (t[1].isdigit() or t[1] == ".")}
    return {next((f for f in RESUME_FLAGS if f.startswith(flag)), flag)
            if flag.startswith("--") and flag not in RESUME_FLAGS else flag for flag in flags}


def resumed(args, command: str) -> Plan | None:
    """The plan stored in ``args.resume`` (its ``run.json``), with this command line's
    ``--epochs`` and ``--device`` and how to show the runs; ``None`` for a single training
    run (its ``config.json`` is enough)."""
    folder, given = Path(args.resume), given_flags(args.argv)
    extra = sorted(given - RESUME_FLAGS - set(SHOWN_FLAGS.values()))
    if extra:
        raise ValueError(f"--resume continues a run as it was made; only --epochs, --device, "
                         f"--jobs and --quiet may go with it (got {', '.join(extra)})")
    if not folder.is_dir():
        raise FileNotFoundError(f"--resume {folder}: no such run folder")
    if not (folder / RUN_RECORD).is_file():
        if command == "train" and (folder / CONFIG).is_file():
            return None
        raise ValueError(f"--resume {folder}: it holds no biocredit {command} run (no "
                         f"{RUN_RECORD}" + (" or config.json)" if command == "train" else ")"))
    plan = read_plan(folder)
    if plan.command != command:
        raise ValueError(f"--resume {folder}: it holds a {plan.command} run; resume it with "
                         f"biocredit {plan.command} --resume {folder}")
    plan = replayed(plan, folder) if plan.configs is None else plan
    if any(type(plan.options.get(k, v)) is not type(v) for k, v in SHOWN.items()):
        raise ValueError(f"{folder / RUN_RECORD}: its options are not a run's (corrupt?)")
    plan.change(**changes(args))
    plan.options = SHOWN | plan.options | {name: getattr(args, name) for name, flag
                                           in SHOWN_FLAGS.items() if flag in given}
    return plan


def changes(args) -> dict:
    """The ``--epochs`` and ``--device`` given with ``--resume``."""
    given = given_flags(args.argv)
    return {name: getattr(args, name) for name in ("epochs", "device") if f"--{name}" in given}


def replayed(plan: Plan, folder: Path) -> Plan:
    """The plan of a ``run.json`` from before plans were stored: its command line's."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            again = build_parser().parse_args(plan.argv)
    except SystemExit:
        raise ValueError(f"{folder / RUN_RECORD}: its command line is not one of biocredit "
                         f"{plan.command} (corrupt?)") from None
    again.argv = plan.argv
    old = plan_of(again, plan.command)
    old.run_id = plan.run_id
    return old


def resume_single(args) -> int:
    """``train --resume DIR`` for a one-seed run: its ``config.json`` says everything."""
    folder = Path(args.resume)
    config = stored_config(folder)
    for name, value in changes(args).items():
        setattr(config, name, value)
    with stop_on_signals():
        summary = train_one(config, folder, args.quiet, "train", resume=True)
    print(run_line(summary, folder))
    return 0


def sweep_reporter(jobs: int, quiet: bool):
    """What a sweep prints as each run ends: a diverged or failed run (the others go on);
    with worker processes and without ``--quiet``, also each finished run's line."""
    def on_done(outcome: Outcome) -> None:
        if outcome.status in ("diverged", "failed"):
            print(f"biocredit: {outcome.task.name} {outcome.status}: "
                  f"{as_flags(outcome.message)}; going on with the others", file=sys.stderr)
        elif jobs > 1 and not quiet and outcome.status == "completed":
            print(run_line(outcome.summary, outcome.task.folder, outcome.task.name))
    return on_done


def sweep_ended(sweep: Sweep, out: Path, command: str, what: str) -> int:
    """A stopped sweep's :class:`RunInterrupted`, saying how to continue it; else 1 when a
    run failed (after the others finished), :class:`TrainingDiverged` when every run
    diverged, else 0."""
    stopped = sweep.interrupted
    if stopped is not None:
        if "--resume" not in str(stopped):
            stopped.args = (f"{stopped}; the runs in {out} can continue: biocredit {command} "
                            f"--resume {out}",)
        raise stopped
    failed = [o.task.name for o in sweep.outcomes if o.status == "failed"]
    if failed:
        print(f"biocredit: {len(failed)} run(s) of the {what} failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    if sweep.outcomes and all(o.status == "diverged" for o in sweep.outcomes):
        raise TrainingDiverged(f"every run of the {what} diverged")
    return 0


def folder_of(args, plan: Plan) -> Path:
    """Where the runs go: the folder resumed, ``--out``, or a new one under ``runs/``."""
    return Path(args.resume or args.out or unique_folder(f"runs/{plan.folder_name()}"))


def cmd_train(args) -> int:
    plan = resumed(args, "train") if args.resume else plan_of(args, "train")
    if plan is None:
        return resume_single(args)
    (spec, config), = plan.configs.items()
    quiet, jobs, resume = plan.options["quiet"], plan.options["jobs"], bool(args.resume)
    out = Path(distributed.from_writer(str(folder_of(args, plan))))  # torchrun: rank 0's
    if len(plan.seeds) == 1:
        with stop_on_signals():
            summary = train_one(config, out, quiet, "train", resume=resume,
                                overwrite=args.overwrite)
        print(run_line(summary, out))
        print_transport(summary)
        return 0

    def run_here(task: Task) -> dict:
        summary = train_one(task.config, task.folder, quiet, "train", out, resume=resume)
        print(run_line(summary, task.folder, task.name))
        return summary

    ended = run_seeds(plan, out, run_here, jobs=jobs, on_done=sweep_reporter(jobs, quiet),
                      resume=resume, overwrite=args.overwrite, reraise=args.debug)
    if ended.statistics is not None:
        if ended.summaries:
            print_transport(ended.summaries[-1])
        marked = spec + "".join(f" ({m})" for m in ended.marks)
        print(format_table({marked: ended.statistics}))
    return sweep_ended(ended.sweep, out, "train", "seeds")


def print_transport(summary: dict) -> None:
    line = transport_line(summary)
    if line:
        print(line)


def cmd_compare(args) -> int:
    plan = resumed(args, "compare") if args.resume else plan_of(args, "compare")
    quiet, jobs, resume = plan.options["quiet"], plan.options["jobs"], bool(args.resume)
    out = folder_of(args, plan)

    def run_here(task: Task, dataset) -> dict:
        return train_one(task.config, task.folder, quiet, "compare", out, dataset=dataset,
                         resume=resume)

    ended = run_comparison(plan, out, run_here, jobs=jobs, on_done=sweep_reporter(jobs, quiet),
                           resume=resume, overwrite=args.overwrite, reraise=args.debug)
    if ended.runs:
        show_comparison(plan.options, out, ended)
    return sweep_ended(ended.sweep, out, "compare", "comparison")


def show_comparison(shown: dict, out: Path, ended: Comparison) -> None:
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
    if len(reported) < len(folders) and not shown["no_report"]:
        print("the report leaves out " + ", ".join(
            name for name, f in folders.items() if f not in reported)
              + ": no epoch finished", file=sys.stderr)
    if not shown["no_report"] and reported:
        from .report import write_report
        files = write_report(reported, out, tsne_size=shown["tsne_size"],
                             comparison=ended.record)
        print(f"report written to {files.html} (and {files.markdown.name})")


def cmd_report(args) -> int:
    from .report import write_report
    files = write_report(args.runs, args.out, tsne_size=args.tsne_size, title=args.title)
    print(files.table)
    print(f"report written to {files.html} (and {files.markdown.name})")
    return 0


def cmd_bench(args) -> int:
    names = [n.strip() for n in args.rules.split(",") if n.strip()]
    try:
        shape = tuple(int(d) for d in args.input_shape.split("x"))
    except ValueError:
        raise ValueError(f"--input-shape is like 1x28x28; got {args.input_shape!r}") from None
    options = dict(batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                   input_shape=shape, num_classes=args.classes, optimizer=args.optimizer,
                   device=args.device, amp=args.amp, compile=args.compile,
                   taps=[t for t in args.taps.split(",") if t])
    baseline = None
    if args.baseline:           # (checked before the timing: refused in a second, not minutes)
        baseline = load_baseline(args.baseline)
        check_workload(baseline, args.baseline, workload(
            args.model, **{**options, "device": resolve_device(args.device)}))
    result = benchmark(names, args.model, **options)
    print(format_benchmark(result))
    if args.json:
        write_json(args.json, result)
    if baseline is not None:
        for line in environment_warnings(baseline, result):
            print(f"biocredit: warning: {line}", file=sys.stderr)
        print(format_comparison(baseline, result, args.baseline))
    return 0


def with_jobs(jobs: int):
    """Run a preset's step, its runs in ``jobs`` processes (``--jobs`` changes no result, so
    it is not part of the step's recorded command)."""
    def runner(argv: list[str]) -> int:        # (reproduce's own main passes signals on)
        return main(argv + ["--jobs", str(jobs)] if jobs > 1 and argv[0] in ("train", "compare")
                    else argv, pass_on_signals=False)
    return runner


def cmd_reproduce(args) -> int:
    from .experiments import PRESETS, suite
    if args.name is None:
        for p in PRESETS.values():
            print(f"{p.name:<30} {p.description} ({len(p.claims)} claims)")
        return 0
    try:
        options, extra = reproduce_options(args.extra)
        listed, chosen = suite.choose(args.name, options.budget)
        root = suite.root_folder(args.name, options.budget, options.out)
        folders = {p.name: suite.preset_folder(root, p, args.name) for p in chosen}
        for p in [] if options.dry_run or options.document_only else chosen:
            for argv in suite.commands(p, options.budget, folders[p.name], extra):
                check_step(argv)        # every step's settings, before any folder exists
    except SystemExit as exit_:                 # a usage error: argparse said it
        return exit_code(exit_)
    if options.dry_run:
        for p in chosen:
            print(suite.describe(p, options.budget, folders[p.name], extra))
        return 0
    stopped, failed = (None, []) if options.document_only else suite.reproduce(
        chosen, folders, options.budget, with_jobs(options.jobs), extra, force=options.force,
        say=lambda text: print(text, flush=True),
        warn=lambda text: print(f"biocredit: {text}", file=sys.stderr))
    if stopped is not None:
        return stopped
    if args.name == "all":
        from .experiments.document import write_reproduction
        files = write_reproduction(listed, root, options.budget, suite.document_command(
            options.budget, options.out, extra, options.publish), options.publish)
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
    if args.command in ("train", "compare"):
        args.argv = argv
        plan_of(args, args.command)


def cmd_rules(args) -> int:
    print(rules_table())
    return 0


def cmd_models(args) -> int:
    print(models_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
