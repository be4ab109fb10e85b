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
import json
import math
import os
import re
import struct
import sys
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .model.errors import LoadError

__all__ = ["main", "info_dict", "CliError", "number_in", "prepare_out_folder", "reading", "load_input",
           "user_path", "refuse_same_file", "validate_options", "only_files"]

DEBUG_ENV = "LUCID3D_DEBUG"  # =1: Python warnings, library chatter and full tracebacks are shown

COMMANDS = ("info", "convert", "screenshot", "demo", "gui", "train-segmenter", "segment", "stats",
            "capture", "fit", "render", "evaluate")


class CliError(Exception):
    """A usage problem with a one-line message (printed as ``error: ...``, exit 2)."""


# Option values --------------------------------------------------------------------------------
def number_in(kind: type, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` for a finite number within bounds; argparse turns the error into one
    line naming the option (``argument --minutes: must be in [0, 100000], got -1``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'a whole number' if kind is int else 'a number'}: {text!r}") from None
        bad = not math.isfinite(value) or (value <= lo if lo_open else value < lo) or \
            (value >= hi if hi_open else value > hi)
        if bad:
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(f"must be in {left}{lo:g}, {hi:g}{right}, got {text}")
        return value

    return parse


def validate_options(cfg: Any, options: dict[str, str]) -> None:
    """A plugin Config's validate() after options were set on it: a bad field is named by the
    option that set it (``--patch: ...``), any other by its Config name."""
    check = getattr(cfg, "validate", None)
    if check is None:
        return
    try:
        check()
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise LoadError(options.get(field, field), problem or str(exc)) from None


# Paths the user gave --------------------------------------------------------------------------
_TEMP_FILE = re.compile(r"^\.(?P<stem>.+)\.[A-Za-z0-9_]{8}\.part(?P<suffix>.*)$")  # atomic_path's mkstemp
_TEMP_DIR = re.compile(r"^\.(?P<name>.+)\.\d+\.[0-9a-f]{8}\.partial$")  # capture's folder


def user_path(path: str | os.PathLike) -> str:
    """The path the user asked for behind one of our hidden temporary names (``.x.nii.ab12cd34.part.nii.gz``
    -> ``x.nii.gz``; ``.DIR.123.0badf00d.partial/...`` -> ``DIR/...``); any other path unchanged."""
    parts, changed = list(Path(path).parts), False
    for i, part in enumerate(parts):
        if m := _TEMP_DIR.match(part):
            parts[i], changed = m["name"], True
        elif m := _TEMP_FILE.match(part):
            suffix = m["suffix"]
            parts[i], changed = m["stem"] + ("." + suffix.rsplit(".", 1)[-1] if suffix else ""), True
    return str(Path(*parts)) if changed else str(path)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_same_file(out: str | os.PathLike, **others: str | os.PathLike | None) -> None:
    """LoadError if the output ``out`` is the same file as another path the user gave (also
    through symbolic links or relative paths); ``others`` maps an option name to its path."""
    for option, other in others.items():
        if other is not None and _same(Path(out), Path(other)):
            raise LoadError(out, f"is also the --{option.replace('_', '-')} file: refusing to overwrite it")


def prepare_out_folder(out: str | os.PathLike, *, inputs: Sequence[str | os.PathLike] = (), what: str = "output",
                       ours: Callable[[Path], bool] | None = None, overwrite: bool = False) -> Path:
    """Check a folder a command is about to write, before any work: never write over a user's folder.

    The folder must be new or empty, or, with ``overwrite``, hold nothing but an earlier output of
    the same command (``ours(folder)`` says so: a checkpoint of the same method, a render's PNGs).
    It may not be, lie inside, or contain one of ``inputs``; its parent must exist. Returns the path.
    Raises LoadError naming ``out``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LoadError(out, "exists and is not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise LoadError(out, f"the folder {parent} does not exist")
    for inp in map(Path, inputs):
        try:
            o, i = out.resolve(), inp.resolve()
        except OSError:
            continue
        if o == i or o.is_relative_to(i) or i.is_relative_to(o):
            raise LoadError(out, "refusing to write into an input (or a folder holding one)")
    if out.is_dir() and any(out.iterdir()):
        if ours is None:  # a command that never overwrites
            raise LoadError(out, "exists and is not empty: refusing to overwrite; choose a new folder")
        if not ours(out):
            raise LoadError(out, f"is a folder that holds something other than a {what}: refusing to write into "
                                 "it; give a new or empty folder")
        if not overwrite:
            raise LoadError(out, f"already holds a {what}: add --overwrite to replace it")
    return out


def only_files(folder: Path, allowed: Callable[[str], bool]) -> bool:
    """True if every entry of ``folder`` is a regular file whose name ``allowed`` accepts
    (our own hidden temporary files too: a crash may have left one)."""
    for entry in folder.iterdir():
        if not entry.is_file() or entry.is_symlink():
            return False
        if not (allowed(entry.name) or _TEMP_FILE.match(entry.name)):
            return False
    return True


# What a hostile file makes a reader raise besides LoadError: bad input, said as such with the
# path. Anything else (TypeError, AttributeError, ...) is a bug and reported as one.
_UNREADABLE = (ValueError, OverflowError, KeyError, IndexError, EOFError, struct.error, zlib.error, RuntimeError)


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Blame ``path`` for what a reader raises while reading it: one line naming the file."""
    try:
        yield
    except LoadError:
        raise
    except MemoryError:
        raise LoadError(path, "too large for this machine's memory") from None
    except OSError as exc:
        raise LoadError(path, f"cannot be read ({exc.strerror or exc})") from None
    except _UNREADABLE as exc:
        raise LoadError(path, f"cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None


def load_input(path: str | os.PathLike, **kwargs: Any) -> Any:
    """``viewer.io.load_path`` with every failure one LoadError naming ``path``."""
    from .io import load_path

    with reading(path):
        return load_path(path, **kwargs)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, as for every other failure
        raise CliError(f"{self.prog}: {message}")


def info_dict(data: Any) -> dict[str, Any]:
    """What ``main.py info`` prints for a loaded Volume, LabelMap, Mesh, PointCloud or ViewSet;
    ``outside_files`` lists files its header pulled in from outside the opened file's folder."""
    out = _info(data)
    outside = (getattr(data, "meta", None) or {}).get("outside_files")
    if outside:
        out["outside_files"] = [str(p) for p in outside]
    return out


def _info(data: Any) -> dict[str, Any]:
    from .model import LabelMap, Mesh, PointCloud, ViewSet, Volume

    if isinstance(data, ViewSet):
        splits = {name: len(data.split(name)) for name in data.splits}
        sizes = sorted({(f.camera.width, f.camera.height) for f in data.frames})
        return {"kind": "viewset", "frames": len(data.frames), "splits": splits,
                "image_sizes": [list(s) for s in sizes], "background": list(data.background),
                "n_points": data.points.n_points if data.points is not None else 0,
                "camera_bounds": data.bounds()}

    if isinstance(data, (Volume, LabelMap)):
        vol = data if isinstance(data, Volume) else Volume(data.array, data.affine)
        st = vol.stats()
        out: dict[str, Any] = {
            "kind": "volume", "shape": list(vol.shape), "spacing": [round(s, 6) for s in vol.spacing],
            "affine": [[float(x) for x in row] for row in vol.affine], "axcodes": vol.axcodes,
            "dtype": str(vol.array.dtype), "min": st["min"], "max": st["max"],
        }
        if isinstance(data, Volume):
            if data.modality:
                out["modality"] = data.modality
            for key in ("frames", "note", "format"):
                if key in data.meta:
                    out[key] = data.meta[key]
            if "series" in data.meta and len(data.meta["series"]) > 1:
                out["series"] = data.meta["series"]
        return out
    if isinstance(data, Mesh):
        return {"kind": "mesh", "n_points": data.n_points, "n_faces": data.n_faces,
                "bounds": data.bounds(), "has_uv": data.uv is not None,
                "has_texture": data.texture is not None}
    if isinstance(data, PointCloud):
        return {"kind": "points", "n_points": data.n_points, "bounds": data.bounds(),
                "has_colors": data.colors is not None}
    raise TypeError(type(data).__name__)


def _cmd_info(args: argparse.Namespace) -> int:
    data = load_input(args.path, as_labels=args.labels)
    print(json.dumps(info_dict(data)))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .io import save_nifti
    from .model import Volume

    out = Path(args.output)
    if not (out.name.endswith(".nii") or out.name.endswith(".nii.gz")):
        raise LoadError(out, "the output must end in .nii or .nii.gz")
    refuse_same_file(out, input=args.input)
    data = load_input(args.input, as_labels=args.labels)
    if not isinstance(data, Volume) and not hasattr(data, "table"):
        raise LoadError(args.input, "only volumes can be converted to NIfTI")
    src = Path(args.input)
    if src.is_dir() and out.resolve().is_relative_to(src.resolve()):
        raise LoadError(out, "refusing to write into the input folder")
    save_nifti(data, out, protect=[src])
    note = data.meta.get("note")
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH between 16 and 8192, got {text!r}") from None


def _cmd_screenshot(args: argparse.Namespace) -> int:
    from .io import atomic_path
    from .model import ImageLayer, Scene, layer_for
    from .resources import volume_presets, window_level_presets

    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise LoadError(out, "the output must be a .png file")
    for p in list(args.paths) + list(args.labels or []):
        refuse_same_file(out, input=p)
    scene = Scene()
    for p in args.paths:
        scene.add(layer_for(load_input(p)))
    for p in args.labels or []:
        scene.add(layer_for(load_input(p, as_labels=True)))
    images = [l for l in scene if isinstance(l, ImageLayer)]
    wl_presets, vr_presets = window_level_presets(), volume_presets()
    view = args.view or ("axial" if scene.reference_image() is not None else "3d")
    for layer in images:
        if args.preset:
            if args.preset in wl_presets:
                layer.window, layer.level = wl_presets[args.preset]
            elif args.preset in vr_presets:
                layer.render_mode = args.preset
            else:
                raise CliError(f"unknown preset {args.preset!r}; choose from "
                               f"{', '.join(list(wl_presets) + list(vr_presets))}")
        if args.window is not None:
            layer.window = args.window
        if args.level is not None:
            layer.level = args.level
        if view == "3d" and layer.render_mode == "off":
            layer.render_mode = "ct_bone" if layer.data.modality == "CT" else "mr_default"
    if args.cursor:
        scene.cursor = np.array(args.cursor, float)
    from .render.offscreen import render_scene

    img = render_scene(scene, view, args.size)
    from PIL import Image

    with atomic_path(out, protect=list(args.paths) + list(args.labels or [])) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    from .ui.app import run_app

    if args.command == "demo":
        return run_app(demo=args.name)
    return run_app(paths=list(args.paths or []), labels=list(args.labels or []))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="main.py", description="Lucid3D: view scans, meshes and point clouds.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    g = sub.add_parser("gui", help="open the window (default)")
    g.add_argument("paths", nargs="*", help="files or DICOM folders to open")
    g.add_argument("--labels", action="append", metavar="PATH", help="open a volume as a label layer")
    d = sub.add_parser("demo", help="open the window on a built-in demo scene")
    d.add_argument("name", nargs="?", default="default", choices=("default", "segmentation", "brain", "rendering"),
                   help="default: CT phantom + labels + textured globe; segmentation: two phantom "
                        "cases for training; brain: MNI152 T1 with grey/white matter; rendering: a "
                        "specular capture of a textured globe with its mesh, for neural rendering")
    d.add_argument("--labels", action="append", help=argparse.SUPPRESS)

    i = sub.add_parser("info", help="print what a file holds, as JSON")
    i.add_argument("path")
    i.add_argument("--labels", action="store_true", help="read the volume as labels")

    c = sub.add_parser("convert", help="write any volume (a DICOM folder too) as NIfTI")
    c.add_argument("input")
    c.add_argument("-o", "--output", required=True, help="OUTPUT.nii.gz")
    c.add_argument("--labels", action="store_true", help="store as a label map")

    s = sub.add_parser("screenshot", help="render a view offscreen to a PNG (no display needed)")
    s.add_argument("paths", nargs="+")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--view", choices=("axial", "coronal", "sagittal", "3d"))
    s.add_argument("--size", type=_size, default=(512, 512), help="WxH, default 512x512")
    s.add_argument("--preset", help="window/level preset (brain, subdural, bone, lung, abdomen, "
                   "soft_tissue, ...) or a volume-rendering preset for --view 3d (ct_bone, ct_soft, mip)")
    s.add_argument("--window", type=number_in(float, 0, 1e9, lo_open=True), help="window width (> 0)")
    s.add_argument("--level", type=number_in(float, -1e9, 1e9), help="window centre")
    s.add_argument("--labels", action="append", metavar="MASK", help="label volume drawn over the image")
    s.add_argument("--cursor", type=number_in(float, -1e9, 1e9), nargs=3, metavar=("R", "A", "S"),
                   help="crosshair / slice position in RAS mm (default: the volume's centre)")
    for module in _command_modules():
        module.add_parsers(sub)
    return p


def _command_modules():
    from . import cli_capture, cli_fit, cli_seg, cli_train

    return (cli_seg, cli_train, cli_capture, cli_fit)


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
    handlers = {"info": _cmd_info, "convert": _cmd_convert, "screenshot": _cmd_screenshot,
                "gui": _cmd_gui, "demo": _cmd_gui}
    for module in _command_modules():
        handlers.update(module.HANDLERS)
    return handlers[args.command](args)
