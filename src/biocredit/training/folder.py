"""A run folder: its run id, an exclusive lock while a run writes to it, the rule that a new
run never writes over another, and every file in it, written and read here only: the JSON
files (:func:`write_file`, :func:`read_file`), checksummed checkpoints and ``model.pt``.

A folder *holds a run* when it has any of :data:`RUN_MARKERS`. A new run refuses such a
folder unless told to overwrite it (which clears it first) or to resume it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .results import RunFolderError, read_json, read_jsonl, write_bytes_atomic, write_json, \
    write_jsonl

try:                                    # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:                     # pragma: no cover
    fcntl = None

CHECKPOINT = "checkpoint.ckpt"
LOCK = ".lock"
CONFIG, SUMMARY, METRICS, STEPS = "config.json", "summary.json", "metrics.jsonl", "steps.jsonl"
RUN_RECORD, SEEDS, COMPARISON = "run.json", "seeds.json", "comparison.json"
RUN_MARKERS = (RUN_RECORD, CONFIG, SUMMARY, METRICS, COMPARISON, SEEDS, CHECKPOINT)


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxxxx``: sorts by start time, unique by its random tail."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def holds_run(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in RUN_MARKERS)


MODEL = "model.pt"
REPORT_FILES = ("report.md", "report.html", "reconstructions.png", "reconstructions.npy",
                STEPS, MODEL, "verdicts.md", "reproduction.json", "step.json")


def is_ours(entry: Path) -> bool:
    """Whether overwriting a run may delete ``entry``: a file biocredit writes into run
    folders, a figure, or a folder that itself holds a run; never anything else."""
    if entry.is_dir() and not entry.is_symlink():
        return holds_run(entry)
    return entry.name in RUN_MARKERS or entry.name in REPORT_FILES or \
        (entry.suffix == ".png" and entry.parent.joinpath("report.md").exists())


def unique_folder(base: str | os.PathLike) -> Path:
    """``base-<timestamp>``, with ``-2``, ``-3``… appended if that exists already."""
    stem = f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = Path(stem), 1
    while candidate.exists():
        n += 1
        candidate = Path(f"{stem}-{n}")
    return candidate


def make_folder(folder: Path) -> None:
    """``mkdir -p``, with a one-line error naming the folder when the file system says no."""
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"{folder} is a file, not a folder; choose another `out_dir`")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"cannot create the run folder {folder}: "
                             f"{err.strerror or err}") from None


def prepare(folder: Path, *, overwrite: bool = False, resume: bool = False) -> None:
    """Make ``folder`` ready for a run: refuse it if it holds another run (unless
    ``overwrite``, which deletes the files and run folders biocredit wrote there, and
    nothing else; or ``resume``)."""
    if resume or not holds_run(folder):
        return
    if not overwrite:
        raise RunFolderError(f"{folder} holds {what_run(folder)}; pass `overwrite=True` to "
                             "replace it, `resume=True` to continue it, or choose another "
                             "`out_dir`")
    for entry in folder.iterdir():        # biocredit's own files only, never a user's
        if entry.name == LOCK or not is_ours(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def remove_if_unused(folder: Path) -> None:
    """Remove ``folder`` if it holds nothing but its lock file (a run that failed before
    writing anything)."""
    try:
        if {entry.name for entry in folder.iterdir()} <= {LOCK}:
            (folder / LOCK).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


_held: dict[str, list] = {}   # folder -> [file descriptor, depth] for the locks we hold


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    return missing


def remove_created(folder: Path, created: list[Path], lock_created: bool) -> None:
    """After a command failed: remove the lock file it created in ``folder`` when it wrote
    nothing there (no file of biocredit's beside a user's own), then the folders it created
    (deepest first), each only if empty."""
    try:
        if lock_created and not any(is_ours(entry) for entry in folder.iterdir()
                                    if entry.name != LOCK):
            (folder / LOCK).unlink()
        for candidate in created:
            candidate.rmdir()                   # only an empty folder goes
    except OSError:
        pass


@contextlib.contextmanager
def locked(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (its ``.lock`` file names the holder's PID).
    Re-entrant within a process; another process gets a :class:`RunFolderError`. When the
    block fails before biocredit wrote a file there, the lock file and the folders made for
    it go again (:func:`remove_created`): a failing command leaves nothing it created."""
    folder = Path(folder)
    created = missing_folders(folder)
    lock_created = not (folder / LOCK).exists()
    make_folder(folder)
    key = str(folder.resolve())
    if key in _held or fcntl is None:
        outermost = key not in _held
        _held.setdefault(key, [None, 0])[1] += 1
        try:
            yield
        except BaseException:
            _release(key)
            if outermost:
                remove_created(folder, created, lock_created and fcntl is not None)
            raise
        _release(key)
        return
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        remove_created(folder, created, False)
        raise RunFolderError(f"cannot write to the run folder {folder}: "
                             f"{err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunFolderError(f"{folder} is in use by another biocredit run (PID {holder}); "
                             "wait for it to finish or choose another `out_dir`") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = [fd, 1]
    try:
        yield
    except BaseException:
        if _held[key][1] == 1:                  # the outermost hold: clean up, then let go
            remove_created(folder, created, lock_created)
        _release(key)
        raise
    _release(key)


def _release(key: str) -> None:
    entry = _held[key]
    entry[1] -= 1
    if entry[1] == 0:
        del _held[key]
        if entry[0] is not None:
            os.close(entry[0])          # closing the descriptor releases the lock


# -- the JSON files -------------------------------------------------------------------------
# config.json (the run's config and id), summary.json, metrics.jsonl (a row per epoch),
# steps.jsonl (a row every k steps); run.json (a sweep's id and what it runs, see
# training.compare.Plan), seeds.json and comparison.json (a sweep's results). Each holds a
# JSON object, or a JSON object per line.
JSON_FILES = (CONFIG, SUMMARY, METRICS, STEPS, RUN_RECORD, SEEDS, COMPARISON)


def write_file(folder: str | os.PathLike, name: str, value: dict | list[dict]) -> None:
    """``value`` as the run-folder file ``name`` (one of :data:`JSON_FILES`), atomically."""
    if name not in JSON_FILES:
        raise ValueError(f"{name} is not a run folder's file")
    (write_jsonl if name.endswith(".jsonl") else write_json)(Path(folder) / name, value)


def read_file(folder: str | os.PathLike, name: str) -> Any:
    """The run-folder file ``name``: a JSON object (a ``.jsonl`` file: one per line). A
    damaged file is a :class:`RunFolderError` naming it, a missing one the ``OSError``."""
    if name not in JSON_FILES:
        raise ValueError(f"{name} is not a run folder's file")
    path = Path(folder) / name
    return read_jsonl(path) if name.endswith(".jsonl") else read_json(path, dict)


def what_run(folder: Path) -> str:
    """The run in ``folder`` in a few words: stopped after how many epochs, or finished."""
    summary = read_file_or_none(folder, SUMMARY)
    if not isinstance(summary, dict) or summary.get("epochs") is None:
        return "a run"
    done, total = epochs_recorded(folder), summary["epochs"]
    if summary.get("status") == "completed":
        return f"a finished run ({done} of {total} epochs)"
    return f"a run stopped after {done} of {total} epochs"


def read_file_or_none(folder: str | os.PathLike, name: str) -> Any:
    """:func:`read_file`, or ``None`` when the file is missing or damaged."""
    try:
        return read_file(folder, name)
    except (OSError, ValueError):
        return None


def epochs_recorded(folder: Path) -> int:
    """How many finished epochs ``metrics.jsonl`` and ``summary.json`` record (0 when
    neither says any; a file that cannot be read counts as saying none)."""
    counts = [0]
    try:
        counts.append(sum(1 for line in (folder / METRICS).read_text().splitlines()
                          if line.strip()))
    except (OSError, UnicodeDecodeError):
        pass
    summary = read_file_or_none(folder, SUMMARY)
    if summary is not None:
        counts += [v for v in (summary.get("epochs_completed"), summary.get("resume_epoch"))
                   if isinstance(v, int) and not isinstance(v, bool)]
    return max(counts)


# -- checkpoints ----------------------------------------------------------------------------
MAGIC = b"biocredit checkpoint 1\n"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """``payload`` (tensors, numbers, strings, lists, dicts) as ``MAGIC``, the SHA-256 of
    the ``torch.save`` bytes, then the bytes; written atomically."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    write_bytes_atomic(path, MAGIC + hashlib.sha256(data).digest() + data)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, verified against its checksum and
    loaded with ``weights_only=True`` on the CPU; anything else is a :class:`RunFolderError`
    naming the file (never a half-loaded state)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no checkpoint there (the run finished no epoch, "
                             "or it was written by an older biocredit)") from None
    except OSError as err:
        raise RunFolderError(f"cannot read the checkpoint {path}: "
                             f"{err.strerror or err}") from None
    head = len(MAGIC) + 32
    if not raw.startswith(MAGIC) or len(raw) <= head:
        raise RunFolderError(f"{path} is not a biocredit checkpoint (or it is truncated)")
    digest, data = raw[len(MAGIC):head], raw[head:]
    if hashlib.sha256(data).digest() != digest:
        raise RunFolderError(f"{path} is corrupt: its contents do not match its checksum")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:                     # a valid checksum over foreign bytes
        raise RunFolderError(f"{path} cannot be loaded ({type(err).__name__})") from None
    if not isinstance(payload, dict) or "epoch" not in payload:
        raise RunFolderError(f"{path} is not a biocredit checkpoint (no epoch in it)")
    return payload


# -- model.pt -------------------------------------------------------------------------------
# model.pt stays a plain ``torch.save`` of a state dict (``torch.load`` reads it), so its
# checksum cannot lead the bytes as the checkpoint's does: it is the same SHA-256, taken over
# the state's names, dtypes, shapes and tensor bytes, and rides in the state dict's metadata.
MODEL_DIGEST = "biocredit_sha256"


def state_digest(state: dict) -> str:
    """The SHA-256 (hex) of a state dict's contents: each entry's name, dtype, shape and
    bytes, in name order (metadata aside)."""
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        if not torch.is_tensor(value):
            h.update(f"{key}\0{type(value).__name__}\0{value!r}\n".encode())
            continue
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{key}\0{value.dtype}\0{tuple(value.shape)}\n".encode())
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def add_state_digest(state: dict) -> None:
    """Put :func:`state_digest` in ``state``'s metadata (``load_state_dict`` ignores it)."""
    root = state._metadata.setdefault("", {})  # type: ignore[attr-defined]
    root.pop(MODEL_DIGEST, None)
    root[MODEL_DIGEST] = state_digest(state)


RUN_ID_METADATA = "biocredit_run_id"


def save_model(net: torch.nn.Module, path: Path, run_id: str | None = None) -> None:
    """``model.pt``: the network's ``state_dict`` (feedback state included), atomically;
    the run's id and the SHA-256 of the weights (:func:`state_digest`) ride in the state
    dict's metadata (``load_state_dict`` ignores it)."""
    state = net.state_dict()
    if run_id is not None:
        state._metadata.setdefault("", {})[RUN_ID_METADATA] = run_id
    add_state_digest(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """The state dict a ``model.pt`` holds, on ``device``, checked against its checksum.
    A file that is not one is a :class:`RunFolderError` naming it; a missing file (or a
    folder) is the ``OSError``."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as err:
        state = type(err)
    if not isinstance(state, dict) or \
            not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        why = f" ({state.__name__})" if isinstance(state, type) else ""
        raise RunFolderError(f"{path} cannot be loaded: it is not a model.pt (a state dict "
                             "that torch.save wrote); it is another kind of file, truncated "
                             f"or corrupt{why}")
    check_state_digest(state, path)
    return state


def model_run_id(state) -> str | None:
    """The run id :func:`save_model` put in a ``model.pt``."""
    root = (getattr(state, "_metadata", None) or {}).get("")
    return root.get(RUN_ID_METADATA) if isinstance(root, dict) else None


def check_state_digest(state: dict, path: str | os.PathLike) -> None:
    """A :class:`RunFolderError` naming ``path`` when the loaded ``state`` differs from the
    checksum saved with it. A ``model.pt`` from before checksums (none in its metadata) is
    let through: it was checked by format only, as it always was."""
    root = (getattr(state, "_metadata", None) or {}).get("")
    saved = root.get(MODEL_DIGEST) if isinstance(root, dict) else None
    if saved is None:
        return
    if saved != state_digest(state):
        raise RunFolderError(f"{path} is corrupt: its weights do not match their checksum")
