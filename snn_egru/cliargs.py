"""What every command line of the project shares (torch-free, Lava-free, cheap to import).

Layer: core of snn_egru (torch-free; what spinnaker2_backend and lava_procs may import).

- :class:`ArgumentParser`: ``argparse`` with one-line errors (``PROG: error: MESSAGE (see
  PROG --help)``, exit status 2), no abbreviated options (``--plot`` never silently means
  ``--plot-dir``), and default values shown in the help.
- checked value types (:func:`int_at_least`, :func:`float_in`, ...): a bad value fails while
  the arguments are parsed, before any work starts, with a message naming the flag the user
  typed.
- :func:`add_hidden_alias`: old spellings of a flag that keep working without being shown.
- :func:`run_main`: calls a command and turns user mistakes into one line on stderr and exit
  status 2 (``--verbose`` shows the traceback), a closed pipe (``report | head``) into a quiet
  exit, Ctrl-C into 130.
- :func:`load_npy`, :func:`load_inputs`: a ``.npy`` file given on the command line (the
  ``--inputs`` of every command that runs a network), refused in one line naming the flag.
- :func:`flag_message`: rewrites the Python keyword names in a library message
  (``max_units_per_pe=12``) into the flags of the command line (``--max-units-per-pe 12``).
- :func:`atomic_path` / :func:`write_text_atomic`: write a result file whole or not at all
  (a temporary file renamed over the target), so a full disk or an interrupt never leaves a
  half-written report or model, and never damages the file it was to replace;
  :func:`npz_bytes`: an ``.npz`` made in memory (numpy's own file writing leaks a
  ``ZipFile`` that prints a traceback when the disk is full).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from snn_egru.errors import UserError

__all__ = [
    "ArgumentParser",
    "HelpFormatter",
    "add_hidden_alias",
    "add_seconds_option",
    "atomic_path",
    "check_finite",
    "check_output",
    "choice_with_aliases",
    "config_differences",
    "float_in",
    "flag_message",
    "guard_run_folder",
    "int_at_least",
    "load_inputs",
    "load_npy",
    "new_file",
    "npz_bytes",
    "parse_comma_list",
    "run_main",
    "stop_on_sigterm",
    "storage_fault",
    "Terminated",
    "user_error_types",
    "write_text_atomic",
]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One-paragraph descriptions wrapped to the terminal, texts with line breaks (epilogs
    with examples) as written; ``(default: X)`` added to every option's help."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" not in text
            and "default" not in text
            and action.default is not argparse.SUPPRESS
            and action.option_strings
            and action.nargs != 0
            and action.default is not None
        ):
            text += " (default: %(default)s)"
        return text


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line and which never abbreviates."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # noqa: D102 - argparse API
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def parse_or_status(self, argv: Any = None) -> argparse.Namespace | int:
        """``parse_args``, but a mistake returns exit status 2 (after its one line) instead
        of raising ``SystemExit`` (``--help`` still exits), so ``main()`` returns it."""
        try:
            return self.parse_args(argv)
        except SystemExit as stop:
            if stop.code == 2:
                return 2
            raise


# --------------------------------------------------------------------------- value types
def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(minimum: int, *, maximum: int | None = None) -> Callable[[str], int]:
    """An ``argparse`` type: an integer ``>= minimum`` (and ``<= maximum``)."""

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """An ``argparse`` type: a finite number in the interval given (``None``: unbounded)."""

    def parse(text: str) -> float:
        value = float(_number(text, float))
        bad = (
            low is not None
            and (value <= low if low_open else value < low)
            or high is not None
            and (value >= high if high_open else value > high)
        )
        if bad:
            left = "(" if low_open or low is None else "["
            right = ")" if high_open or high is None else "]"
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            raise argparse.ArgumentTypeError(f"must lie in {left}{lo}, {hi}{right}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def choice_with_aliases(aliases: dict[str, str]) -> Callable[[str], str]:
    """An ``argparse`` type mapping old spellings to the current ones (use with ``choices``)."""

    def parse(text: str) -> str:
        return aliases.get(text, text)

    parse.__name__ = "choice"
    return parse


def new_file(suffix: str) -> Callable[[str], str]:
    """An ``argparse`` type: a file name ending in ``suffix`` that is not a folder."""

    def parse(text: str) -> str:
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(
                f"{text} is a folder; give a file name ending in {suffix}"
            )
        if not text.lower().endswith(suffix):
            raise argparse.ArgumentTypeError(f"give a file name ending in {suffix}, not {text!r}")
        return text

    parse.__name__ = "file"
    return parse


def add_hidden_alias(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *names: str, dest: str, **kw: Any
) -> None:
    """Old spellings ``names`` of the option stored in ``dest``, accepted but not shown."""
    parser.add_argument(*names, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kw)


def add_seconds_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    help: str,
    *,
    aliases: tuple[str, ...] = (),
) -> None:
    """An optional duration ``flag`` in seconds (> 0; unset: ``None``), with old spellings
    ``aliases`` accepted but not shown (:func:`add_hidden_alias`)."""
    seconds = float_in(0, low_open=True)
    parser.add_argument(flag, type=seconds, default=None, metavar="SECONDS", help=help)
    if aliases:
        dest = flag.lstrip("-").replace("-", "_")
        add_hidden_alias(parser, *aliases, dest=dest, type=seconds)


def check_finite(values: Any, what: str) -> None:
    """Raise a :class:`UserError` when a floating-point array ``values`` holds NaN or inf
    (naming the first bad row): no backend can run them, and the reference would write NaN
    logits silently."""
    import numpy as np

    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating) or values.size == 0:
        return
    finite = np.isfinite(values)
    if finite.all():
        return
    bad = np.argwhere(~finite)
    first = tuple(int(i) for i in bad[0])
    kind = "NaN" if np.isnan(values[first]) else "infinite"
    raise UserError(
        f"{what} holds {len(bad)} NaN or infinite values (the first, {kind}, at index "
        f"{first[0] if len(first) == 1 else first}; array shape {values.shape}): replace them "
        "with finite numbers"
    )


#: What ``--inputs`` takes, in the messages of every command that runs a network.
INPUTS_HINT = "a .npy of token ids (T,) or feature vectors (T, I)"


def load_npy(path: str | os.PathLike, flag: str, *, hint: str = INPUTS_HINT) -> Any:
    """The array that ``numpy.save`` wrote to ``path`` (given with ``flag``); a missing file,
    a folder, another suffix or an unreadable file is a :class:`UserError` naming ``flag``
    (``hint`` says what the file should hold). Pickles are refused."""
    import numpy as np

    p = os.fspath(path)
    if os.path.isdir(p):
        raise UserError(f"{flag} {p} is a folder, not a file ({hint})")
    if not os.path.exists(p):
        raise UserError(f"no {flag.lstrip('-')} file at {p} ({hint})")
    if not p.endswith(".npy"):
        raise UserError(f"{flag} takes a .npy file (numpy.save), got {os.path.basename(p)}")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as err:
        raise UserError(f"{flag} {p} is not a readable .npy array ({err})") from None


def load_inputs(path: str | os.PathLike, artifact: Any = None, *, flag: str = "--inputs") -> Any:
    """``flag``'s array of network inputs (:func:`load_npy`), finite; with an ``artifact``,
    also checked to be what it takes (token ids (T,) or feature vectors (T, I)) and not
    empty. Without one (a batch of samples) only the file and the values are checked."""
    inputs = load_npy(path, flag)
    what = f"{flag} {os.fspath(path)}"
    if artifact is not None:
        try:
            artifact.layer_inputs(inputs)
        except ValueError as err:
            raise UserError(f"{what}: {err}") from None
        if inputs.shape[0] < 1:
            raise UserError(f"{what} holds no inputs")
    check_finite(inputs, what)
    return inputs


def check_output(
    path: str | os.PathLike, flag: str, *, folder: bool = False, overwrite: bool | None = None
) -> None:
    """Check before any work that ``path`` (a file, or a ``folder``) can be written.

    Missing folders are created by the command (as for ``--out``) only under a folder that
    exists other than the filesystem root (``--verbose`` logs it); a path under a file, under
    a folder that cannot be written, or a new folder at the root is refused here. With
    ``overwrite`` given (the command's ``--overwrite``), an existing file is refused unless
    it is True: a command replaces a file the user already has only when asked to.
    """
    if overwrite is False and not folder and os.path.exists(path):
        raise UserError(f"{flag} {path} exists: pass --overwrite to replace it")
    target = os.path.abspath(path)
    first_missing = target if folder else os.path.dirname(target)
    ancestor = first_missing
    while not os.path.exists(ancestor):
        first_missing, ancestor = ancestor, os.path.dirname(ancestor)
    if ancestor == first_missing:  # the folder exists
        if not os.path.isdir(ancestor):
            raise UserError(f"{flag} {path}: {ancestor} is a file, not a folder")
        if not os.access(ancestor, os.W_OK):
            raise UserError(f"{flag} {path}: cannot write in {ancestor}; give a writable folder")
        return
    if not os.path.isdir(ancestor):
        raise UserError(f"{flag} {path}: {ancestor} is a file, not a folder")
    if os.path.dirname(ancestor) == ancestor:
        raise UserError(
            f"{flag} {path}: {first_missing} does not exist; create it first (new folders "
            "are made only under an existing folder other than the filesystem root)"
        )
    if not os.access(ancestor, os.W_OK):
        raise UserError(f"{flag} {path}: cannot create folders in {ancestor}; give a writable one")
    # debug, not info: a user mistake found later must still be the only line printed
    logging.getLogger("snn_egru").debug("%s: will create the folder %s", flag, first_missing)


# --------------------------------------------------------------------------- writing files
@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Write ``path`` whole or not at all: yields a temporary path in the same folder (same
    suffix, so ``np.save`` / ``savefig`` / ``torch.save`` treat it alike) that is renamed
    over ``path`` when the block ends normally (``os.replace``: atomic on one file system).

    When the block raises (a full disk, an interrupt) the temporary file is removed and
    ``path`` is left as it was: the earlier file byte-identical, or no file at all, never a
    half-written one that a re-run would take for a result.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - the folder itself went away
            pass
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """``Path(path).write_text(text)``, whole or not at all (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def npz_bytes(**arrays: Any) -> bytes:
    """``numpy.savez_compressed`` into memory. Saving to a file directly leaves numpy's
    ``ZipFile`` unclosed when a write fails (a full disk), and its ``__del__`` later prints
    a traceback ("Exception ignored in: ZipFile.__del__"); write these bytes instead."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


# --------------------------------------------------------------------------- run folders
#: Files of a training run folder that a new run would replace.
RUN_FILES = ("best.pt", "last.pt", "metrics.csv", "metrics.jsonl", "summary.json")


def guard_run_folder(
    out_dir: str | os.PathLike, *, resume: bool, overwrite: bool, flag: str = "--out"
) -> None:
    """Refuse to start a training run that would replace an earlier one silently.

    A folder holding checkpoints or metrics is continued with ``resume`` (from its
    ``last.pt``) or replaced with ``overwrite`` (a warning names what goes); otherwise this
    raises a :class:`~snn_egru.errors.UserError` naming both ways.
    """
    from pathlib import Path

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file; give a folder for the run")
    if resume and overwrite:
        raise UserError("give --resume (continue) or --overwrite (start again), not both")
    present = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        if not (out / "last.pt").exists():
            # a run stopped before its first checkpoint leaves metrics but nothing to resume
            again = "pass --overwrite to start it again" if present else "drop --resume"
            raise UserError(f"--resume: there is no {out / 'last.pt'} to continue; {again}")
        return
    if not present:
        return
    if not overwrite:
        if "last.pt" not in present:  # stopped before its first checkpoint: nothing to resume
            raise UserError(
                f"{out / present[0]} is from an earlier run that stopped before its first "
                f"checkpoint: pass --overwrite to start again, or give another {flag}"
            )
        what = next((n for n in ("best.pt", "last.pt") if n in present), present[0])
        raise UserError(
            f"{out / what} is from an earlier run: pass --resume to continue it, --overwrite to "
            f"replace it, or give another {flag}"
        )
    logging.getLogger("snn_egru").warning(
        "--overwrite: replacing the run in %s (%s)", out, ", ".join(present)
    )
    for name in present:
        (out / name).unlink()


# --------------------------------------------------------------------------- messages
#: Python keyword names in library messages -> the flag a user of a command line types.
_KEYWORD_FLAGS = {
    "max_units_per_pe": "--max-units-per-pe",
    "pes_per_layer": "--pes-per-layer",
    "record_steps": "--record-steps",
    "input_source": "--input-source",
    "weight_format": "--weight-format",
    "clock_mhz": "--clock-mhz",
    "chips": "--chips",
    "num_steps": "--steps",
    "tick_us": "--tick-us",
}


def flag_message(message: str) -> str:
    """``message`` with Python keyword names (``max_units_per_pe=12``, ``record_steps <= 3``,
    ``weight format 'event'``) written as command-line flags (``--max-units-per-pe 12``)."""
    text = " ".join(str(message).split())
    # "chips=3 (--chips 3)" already names the flag: keep one of the two
    text = re.sub(r"\bchips=(\d+) \(--chips \1\)", r"--chips \1", text)
    for name, flag in _KEYWORD_FLAGS.items():
        text = re.sub(rf"\b{name}\s*=\s*'?([\w.]+)'?", rf"{flag} \1", text)
        text = re.sub(rf"\b{name}\s*(<=|>=|<|>)\s*", rf"{flag} \1 ", text)
        text = re.sub(rf"\b{name} must\b", f"{flag} must", text)
    text = re.sub(r"\bweight format '(\w+)'", r"--weight-format \1", text)
    # the model's API advice (an untied decoder) has no flag: the CLI way is the sizes
    text = re.sub(
        r"\bor tie_weights=False\b",
        "or give --embedding-size equal to the last hidden size",
        text,
    )
    return text


# --------------------------------------------------------------------------- running
def user_error_types(extra: Iterable[tuple[str, str]] = ()) -> tuple[type[BaseException], ...]:
    """Exception classes that are user mistakes (printed as one line, exit status 2).

    Only modules already imported are consulted: a class of a module that was never imported
    cannot have been raised (and importing torch just to print an error would cost seconds).
    """
    types: list[type[BaseException]] = [
        UserError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    ]
    for module, name in (
        ("snn_egru.artifact", "ArtifactError"),
        ("spinnaker2_backend.mapping", "MappingError"),
        ("spinnaker2_backend.mapping.fit", "MappingError"),
        ("snn_egru.training.common", "CheckpointError"),
        ("snn_egru.data.text", "DataNotFoundError"),
        *extra,
    ):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(getattr(loaded, name, None), type):
            types.append(getattr(loaded, name))
    return tuple(types)


#: errno values of a file that cannot be written where it was asked for: the user picks
#: another place (exit 2).
_UNWRITABLE = {
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the name is too long",
}
#: errno values of a storage fault outside the user's choice of path (exit 1, with the cause).
_STORAGE_FAULTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EFBIG: "the file is too large for the file system",
    errno.EIO: "an input/output error of the device",
}
#: What torch.save / PyTorchStreamWriter says when the file cannot be written.
_TORCH_WRITE_FAILURES = ("PytorchStreamWriter failed", "cannot be opened", "Parent directory")


def storage_fault(err: BaseException) -> tuple[str, int] | None:
    """``(one line, exit status)`` for an error writing a file (``None`` for other errors).

    A path that cannot be written (read-only, no permission, a file where a folder is
    expected) is the user's to change: status 2, the line names the folder. A full disk or a
    device error is not: status 1, the line names the cause. Both say what to do.
    """
    if isinstance(err, OSError) and err.errno in {**_UNWRITABLE, **_STORAGE_FAULTS}:
        path = err.filename or ""
        if err.errno in (errno.ENOTDIR, errno.EEXIST) and not _writing_under_a_file(path):
            return None  # a missing / misplaced input: the command's own message says it
        folder = os.path.dirname(os.path.abspath(path)) if path else "the output folder"
        if err.errno in _UNWRITABLE:
            reason = _UNWRITABLE[err.errno]
            if err.errno in (errno.ENOTDIR, errno.EEXIST):
                folder = _file_in_the_way(path) or folder
                return (
                    f"cannot write {path}: {folder} is a file, not a folder; "
                    "give an output path under a folder",
                    2,
                )
            return (
                f"cannot write {path}: {reason} ({folder}); give an output folder you can write to",
                2,
            )
        reason = _STORAGE_FAULTS[err.errno]
        where = f"{path}: {reason} (in {folder})" if path else f"an output file: {reason}"
        return (
            f"cannot write {where}; free space on that disk or give an output path on "
            "another disk, then run the command again",
            1,
        )
    if type(err) is RuntimeError and any(t in str(err) for t in _TORCH_WRITE_FAILURES):
        cause = err.__cause__ or err.__context__
        if isinstance(cause, OSError):
            return storage_fault(cause)
        text = " ".join(str(err).split())
        return (
            f"cannot write a checkpoint ({text}); check that the output folder exists, is "
            "writable and has free space, then run the command again",
            1,
        )
    return None


def _file_in_the_way(path: str) -> str | None:
    """The first part of ``path`` that is a file (so nothing can be created under it)."""
    here = os.path.abspath(path)
    parts = []
    while True:
        parts.append(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    for part in reversed(parts[1:]):
        if os.path.isfile(part):
            return part
    return None


def _writing_under_a_file(path: str) -> bool:
    return bool(path) and _file_in_the_way(path) is not None


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the exit flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it stops as after Ctrl-C: the code that
    saves a checkpoint or cleans up on an interrupt runs for a ``kill`` too."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


_TERMINATE = _terminate


def stop_on_sigterm() -> Any:
    """Turn SIGTERM into :class:`Terminated` (main thread only); returns the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    return signal.signal(signal.SIGTERM, _TERMINATE)


def run_main(
    func: Callable[[], int | None],
    *,
    prog: str,
    verbose: bool,
    user_errors: tuple[type[BaseException], ...] | None = None,
) -> int:
    """Run ``func`` (a command), returning its exit status.

    User mistakes (:func:`user_error_types`) print ``PROG: error: MESSAGE`` as one line on
    stderr and return 2; with ``verbose`` they raise (traceback). A closed stdout pipe ends
    quietly (status 0: the reader asked for no more), Ctrl-C returns 130.
    """
    previous = stop_on_sigterm()
    try:
        status = int(func() or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except Terminated:
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except Exception as err:
        types = user_errors if user_errors is not None else user_error_types()
        if not verbose and (fault := storage_fault(err)) is not None:
            line, status = fault
            print(f"{prog}: error: {line}", file=sys.stderr)
            return status
        if verbose or not isinstance(err, types):
            raise
        message = flag_message(str(err)) or type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if previous is not None and previous is not _TERMINATE:
            import signal

            signal.signal(signal.SIGTERM, previous)


def parse_comma_list(
    text: str,
    convert: Callable[[str], Any],
    *,
    empty: str,
    invalid: Callable[[str], str],
    refuse: Callable[[str, Any], str | None] = lambda item, value: None,
    repeated: str | None = None,
) -> tuple[Any, ...]:
    """``text`` split at commas (blank parts dropped), each part ``convert``-ed: a tuple of
    values. A :class:`UserError` with the message ``empty`` when there is no part,
    ``invalid(part)`` for a part ``convert`` refuses (``ValueError``), ``refuse(part,
    value)`` when that returns a message, and ``repeated`` for a value given twice (``None``:
    a repeat is dropped, the first kept)."""
    items = [part.strip() for part in str(text).split(",") if part.strip()]
    if not items:
        raise UserError(empty)
    values = []
    for item in items:
        try:
            value = convert(item)
        except ValueError:
            raise UserError(invalid(item)) from None
        complaint = refuse(item, value)
        if complaint is not None:
            raise UserError(complaint)
        values.append(value)
    unique = tuple(dict.fromkeys(values))
    if repeated is not None and len(unique) != len(values):
        raise UserError(repeated)
    return unique


def config_differences(stored: Any, expected: Any, *, skip: Iterable[str] = ()) -> list[str]:
    """``"field stored (now expected)"`` for every field of two config dataclasses that
    differs (nested dataclasses field by field; tuples equal lists)."""
    skipped = set(skip)
    out: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        for f in dataclasses.fields(b):
            if f.name in skipped:
                continue
            x, y = getattr(a, f.name, None), getattr(b, f.name)
            if dataclasses.is_dataclass(x) and dataclasses.is_dataclass(y):
                walk(x, y, f"{prefix}{f.name}.")
            elif (list(x) if isinstance(x, tuple) else x) != (
                list(y) if isinstance(y, tuple) else y
            ):
                out.append(f"{prefix}{f.name} {x!r} (now {y!r})")

    walk(stored, expected, "")
    return out
