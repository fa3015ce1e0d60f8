"""A managed Paddle-Lite optimizer: ``paddle_lite_opt`` in a tool environment inside the store.

The ``paddlelite`` wheels exist for Python <= 3.10 only (and the module refuses other Python
versions), so picozoo finds an older interpreter on the machine, creates a virtual environment
with it in ``<cache>/tools/paddlelite-<version>-cp<XY>/`` and installs a pinned ``paddlelite``
there. No environment of the user's is modified. The interpreter comes from, in order:
``--lite-python`` / ``Settings.lite_python`` (``$PICOZOO_LITE_PYTHON``), a working
``python3.7``, ``python3.10`` ... ``python3.8`` on PATH (pyenv's inactive shims fail and are
skipped), then pyenv's installed versions (``$(pyenv root)/versions/X/bin/python``, or
``~/.pyenv/versions``; 3.7 first). Python 3.7 comes first because its wheel is the stable
paddlelite 2.12; 2.13rc0 (3.8-3.10) crashed here on a model 2.12 optimizes.

The environment is built in a staging folder and renamed into place; its ``.complete`` marker
is written last, so a half-built one is never used (``cache prune`` removes a crashed one).
It also holds a pinned numpy (:data:`picozoo.runtime.lite.NUMPY`), which the x86 parity check
and ``--engine lite`` need to run a ``.nb`` there; an environment made before (its marker names
no numpy) is rebuilt from scratch the next time it is needed.

>>> pinned_paddlelite((3, 7)), pinned_paddlelite((3, 10)), pinned_paddlelite((3, 11))
('2.12', '2.13rc0', None)
>>> tool_name("2.12", (3, 7))
'paddlelite-2.12-cp37'
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolchainError
from ..hub.store import Store, move_into_place
from ..runtime.lite import env_python, numpy_pin

#: The paddlelite version installed for each Python (2.12 is the last stable release; it has
#: wheels up to cp37; 2.13rc0 has cp38-cp310). Measured on linux x86_64.
PINS: dict[tuple[int, int], str] = {
    (3, 6): "2.12",
    (3, 7): "2.12",
    (3, 8): "2.13rc0",
    (3, 9): "2.13rc0",
    (3, 10): "2.13rc0",
}
MARKER = ".complete"
OPT_SCRIPT = "paddle_lite_opt"
INSTALL_HINT = (
    "install a Python 3.7-3.10 (e.g. `pyenv install 3.10`, or your system's python3.10 package) "
    "and pass it with --lite-python / PICOZOO_LITE_PYTHON, or give a paddle_lite_opt with "
    "--opt-bin"
)
_PROBE = "import sys, venv; print('%d.%d' % sys.version_info[:2])"


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: tuple[int, int]


def pinned_paddlelite(version: tuple[int, int]) -> str | None:
    """The paddlelite version picozoo installs for Python ``version``; None: no wheel."""
    return PINS.get(version)


def tool_name(paddlelite: str, version: tuple[int, int]) -> str:
    return f"paddlelite-{paddlelite}-cp{version[0]}{version[1]}"


def probe(python: str | os.PathLike[str]) -> Interpreter | None:
    """The interpreter at ``python`` (a path or a name on PATH) when it runs and has ``venv``."""
    found = shutil.which(str(python))
    if found is None:
        return None
    try:
        proc = subprocess.run(
            [found, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    major, _, minor = proc.stdout.strip().partition(".")
    if proc.returncode != 0 or not (major.isdigit() and minor.isdigit()):
        return None
    return Interpreter(Path(found), (int(major), int(minor)))


def _pyenv_pythons() -> Iterator[Path]:
    root: Path | None = None
    if shutil.which("pyenv"):
        try:
            out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
            root = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            root = None
    if root is None:
        root = Path.home() / ".pyenv"
    versions = root / "versions"
    if not versions.is_dir():
        return

    def release(p: Path) -> tuple[int, ...]:
        return tuple(int(x) if x.isdigit() else -1 for x in p.name.split(".")[:3])

    def preferred(p: Path) -> tuple[bool, tuple[int, ...]]:  # stable 2.12 first, then newest
        minor = release(p)[:2]
        return (len(minor) == 2 and PINS.get((minor[0], minor[1])) == "2.12", release(p))

    for d in sorted(versions.iterdir(), key=preferred, reverse=True):
        if (d / "bin" / "python").is_file():
            yield d / "bin" / "python"


def find_interpreter(python: str | None = None) -> Interpreter:
    """An interpreter a paddlelite wheel supports: ``python`` (``--lite-python``) when given,
    else the first working one on PATH (``python3.10`` ... ``python3.7``), else pyenv's.
    Raises :class:`ToolchainError` (a MissingDependencyError, exit 11) saying what to install."""
    if python:
        found = probe(python)
        if found is None:
            raise ToolchainError(
                f"--lite-python {python}: not a working Python interpreter with venv",
                hint=INSTALL_HINT,
            )
        if pinned_paddlelite(found.version) is None:
            raise ToolchainError(
                f"--lite-python {python} is Python {found.version[0]}.{found.version[1]}: "
                "paddlelite has wheels for Python 3.6-3.10 only",
                hint=INSTALL_HINT,
            )
        return found
    # the stable 2.12 (cp37) first: 2.13rc0 (cp38-cp310) crashed (SIGSEGV) here on a small
    # legacy model that 2.12 optimizes
    candidates: list[str | Path] = [f"python3.{m}" for m in (7, 10, 9, 8)]
    candidates += list(_pyenv_pythons())
    for c in candidates:
        found = probe(c)
        if found is not None and pinned_paddlelite(found.version) is not None:
            return found
    raise ToolchainError(
        "no Python 3.7-3.10 interpreter found for paddle_lite_opt (paddlelite has no wheel "
        "for newer Pythons)",
        hint=INSTALL_HINT,
    )


def ensure_lite_opt(
    store: Store, python: str | None = None, progress: Callable[[str], None] | None = None
) -> tuple[Path, str]:
    """The ``paddle_lite_opt`` of the managed tool environment (created when missing) and the
    pinned ``paddlelite`` version in it."""
    interp = find_interpreter(python)
    version = pinned_paddlelite(interp.version)
    assert version is not None
    final = store.tool_dir(tool_name(version, interp.version))
    opt = final / OPT_SCRIPT
    if env_python(final) is not None and opt.is_file():
        return opt, version
    if final.exists():  # damaged, or made before numpy was part of it: build it again
        if progress and (final / MARKER).is_file():
            progress(f"{final} has no {numpy_pin()} (needed to run a .nb): rebuilding it")
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"creating the Paddle-Lite tool environment {final} (paddlelite=={version})")
    staging = store.staging_dir(final.parent)
    try:
        _build(interp, version, staging)
        move_into_place(staging, final, MARKER)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return opt, version


def _build(interp: Interpreter, version: str, staging: Path) -> None:
    venv = staging / "venv"
    steps = [
        [str(interp.path), "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            *("-m", "pip", "install", "-q", f"paddlelite=={version}", numpy_pin()),
        ],
    ]
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.SubprocessError) as e:
            raise ToolchainError(f"cannot run {cmd[0]}: {e}", hint=INSTALL_HINT) from e
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ToolchainError(
                f"creating the Paddle-Lite tool environment failed: {tail[0][:300]}",
                hint="run by hand to see the full output: " + " ".join(cmd),
            )
    # the venv's own scripts name the staging path in their #! line: call them through the
    # venv's python, found relative to this wrapper, so the folder can be renamed
    wrapper = staging / OPT_SCRIPT
    wrapper.write_text(
        f'#!/bin/sh\nd=$(dirname "$0")\nexec "$d/venv/bin/python" "$d/venv/bin/{OPT_SCRIPT}" "$@"\n'
    )
    wrapper.chmod(0o755)
    (staging / MARKER).write_text(f"paddlelite=={version}\n{numpy_pin()}\n")


def find_tool_python(store: Store) -> Path | None:
    """The Python of a complete tool environment in ``store`` (with numpy), or None; nothing
    is created."""
    tools = store.tool_dir("x").parent
    for env in sorted(tools.glob("paddlelite-*")) if tools.is_dir() else []:
        found = env_python(env)
        if found is not None:
            return found
    return None
