"""The command line: the GUI, and headless commands that use the same loaders and views.

``python main.py [PATH...]`` opens the window; ``python main.py demo`` opens the demo scene;
``info``, ``convert`` and ``screenshot`` run without any display. Every failure prints one line,
``error: PATH: what is wrong``, on stderr and exits with status 2: PATH is what the user typed
(never one of our hidden temporary files), or the option at fault. Options are checked by the
parser before any file is opened; folders a command writes go through ``prepare_out_folder``
(new or empty; an earlier output of the same kind only with ``--overwrite``). On the headless
commands Python warnings, library logging and what C/C++ libraries print on stderr are hidden;
a bug (not bad input) prints ``error: internal error (...)`` naming the file its traceback was
written to. ``LUCID3D_DEBUG=1`` shows all of it, the traceback included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Iterator, Sequence


from ..model.errors import LoadError
from .common import DEBUG_ENV, CliError, Parser, user_path

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS = ("info", "convert", "screenshot", "demo", "gui", "train-segmenter", "segment", "stats",
            "train-classifier", "classify", "train-detector", "detect",
            "capture", "fit", "pretrain", "render", "evaluate", "export-mesh", "plugins")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="main.py", description="Lucid3D: view scans, meshes and point clouds.")
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    for module in _command_modules():
        module.add_parsers(sub)
    return p


def _command_modules():
    from . import capture, export_mesh, files, fit, lesions, methods, pretrain, stats, train

    # the order `main.py --help` lists them in: viewing, segmentation, lesions, rendering, plugins
    return (files, stats, train, lesions, capture, fit, pretrain, export_mesh, methods)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_error_line(exc: OSError) -> str:
    """``PATH: reason`` for an OSError, naming the user's path even when a temporary file failed."""
    reason = exc.strerror or _one_line(str(exc)) or type(exc).__name__
    if exc.filename is not None:
        return f"{user_path(os.fsdecode(exc.filename))}: {reason}"
    return reason


def _internal_error(exc: BaseException) -> str:
    """The one line for a bug: what it was, and where its full traceback went."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if os.environ.get(DEBUG_ENV) == "1":
        print(text, file=sys.stderr, end="")
        where = "above"
    else:
        try:
            fd, where = tempfile.mkstemp(prefix="lucid3d-traceback-", suffix=".txt")
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        except OSError:
            where = f"not saved; run with {DEBUG_ENV}=1 to see it"
    return f"internal error ({type(exc).__name__}: {_one_line(str(exc))[:300]}); traceback: {where}"


@contextlib.contextmanager
def _quiet_native_stderr(enabled: bool) -> Iterator[None]:
    """Send what C/C++ libraries print on file descriptor 2 (ITK, VTK, libpng, ffmpeg chatter)
    to a scratch file, while Python's own stderr (our error line, progress bars) still reaches
    the terminal. Only when sys.stderr is the process's real stderr (not under a test's capture)."""
    if not enabled or sys.stderr is not sys.__stderr__ or os.environ.get(DEBUG_ENV) == "1":
        yield
        return
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    # unbuffered underneath: a Ctrl-C handler may print while a progress bar is mid-write, and a
    # BufferedWriter refuses such a reentrant call
    import io

    real = io.TextIOWrapper(io.FileIO(saved, "w"), encoding=sys.stderr.encoding, errors="backslashreplace",
                            line_buffering=True, write_through=True)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        old = sys.stderr
        sys.stderr = real
        try:
            yield
        finally:
            real.flush()
            sys.stderr = old
            os.dup2(saved, 2)
            real.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure is one line ``error: ...`` on stderr and exit status 2
    (130 after Ctrl-C). A bug prints one line naming where its traceback was written
    (``LUCID3D_DEBUG=1`` prints the traceback itself and lets warnings and library chatter through)."""
    import logging
    import warnings

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["gui", *argv]
    headless = argv[0] not in ("gui", "demo")
    debug = os.environ.get(DEBUG_ENV) == "1"
    with warnings.catch_warnings(), _quiet_native_stderr(headless):
        if headless and not debug:  # library warnings are not the user's business on the CLI
            warnings.filterwarnings("ignore")
            logging.disable(logging.ERROR)
        try:
            return _run(argv)
        except LoadError as exc:
            msg = f"{user_path(exc.path)}: {exc.reason}"
        except CliError as exc:
            msg = _one_line(str(exc))
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except MemoryError:
            msg = "not enough memory"
        except OSError as exc:
            msg = _os_error_line(exc)
        except SystemExit as exc:  # --help
            return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
        except Exception as exc:  # a bug: one line, the traceback kept where it can be found
            msg = _internal_error(exc)
        finally:
            if headless and not debug:
                logging.disable(logging.NOTSET)
        print(f"error: {msg}", file=sys.stderr)
        return 2


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "screenshot" and args.preset and (args.window is not None or args.level is not None):
        raise CliError("main.py screenshot: use --preset or --window/--level, not both")
    handlers = {}
    for module in _command_modules():
        handlers.update(module.HANDLERS)
    return handlers[args.command](args)
