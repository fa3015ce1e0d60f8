"""Paddle -> Paddle-Lite ``.nb`` for ARM, through ``paddle_lite_opt``.

The optimizer is taken from, in order: ``--opt-bin`` / ``Settings.lite_opt``
(``$PICOZOO_LITE_OPT``; an executable), the ``paddlelite`` Python module
(``from paddlelite.lite import Opt``), ``paddle_lite_opt`` on PATH. Paddle-Lite reads only the
legacy ``model.pdmodel`` format (what upstream tarballs hold). There is no ARM runtime here, so
a ``.nb`` gets no parity check (its provenance says so).

>>> lite_command(Path("/bin/paddle_lite_opt"), Path("m/model.pdmodel"), Path("m/model.pdiparams"),
...              Path("out/model"), fp16=True)  # doctest: +NORMALIZE_WHITESPACE
['/bin/paddle_lite_opt', '--model_file=m/model.pdmodel', '--param_file=m/model.pdiparams',
 '--optimize_out_type=naive_buffer', '--optimize_out=out/model', '--valid_targets=arm',
 '--enable_fp16=true']
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import sha256_file
from ..errors import ConversionError, ToolchainError
from ..native import exit_status, run_native
from ..paddle_dir import PaddleModel
from .cached import Recipe

ENV_OPT = "PICOZOO_LITE_OPT"
OPT_NAME = "paddle_lite_opt"
NB_FILE = "model.nb"
INSTALL_HINT = (
    "pip install paddlelite (wheels exist for Python <= 3.10 only), or build/download "
    f"{OPT_NAME} and put it on PATH or pass --opt-bin / set {ENV_OPT}"
)


@dataclass(frozen=True)
class OptTool:
    """The Paddle-Lite optimizer to use: an executable, or the ``paddlelite`` module."""

    kind: str  # "binary" or "module"
    path: Path | None
    version: str

    def identity(self) -> str:
        """What goes into the cache key: the module version, or the binary's sha256."""
        if self.kind == "module":
            return f"paddlelite=={self.version}"
        assert self.path is not None
        return f"{self.path.name}@sha256:{sha256_file(self.path)[:16]}"


def find_opt_tool(opt_bin: str | None = None) -> OptTool:
    """Locate the optimizer (``opt_bin``: an executable's path or name, from ``--opt-bin`` or
    ``Settings.lite_opt``) or raise :class:`ToolchainError` saying how to get one.

    >>> find_opt_tool("/nonexistent/paddle_lite_opt")
    Traceback (most recent call last):
    ...
    picozoo.errors.ToolchainError: paddle_lite_opt not found or not executable: \
/nonexistent/paddle_lite_opt (give the path of an executable paddle_lite_opt with --opt-bin or \
PICOZOO_LITE_OPT)
    """
    if opt_bin:
        path = Path(opt_bin).expanduser()
        resolved = shutil.which(str(path)) if not path.is_file() else str(path)
        if resolved is None or not os.access(resolved, os.X_OK):
            raise ToolchainError(
                f"{OPT_NAME} not found or not executable: {opt_bin}",
                hint=f"give the path of an executable {OPT_NAME} with --opt-bin or {ENV_OPT}",
            )
        return OptTool("binary", Path(resolved), "")
    try:
        from importlib import metadata

        from paddlelite.lite import Opt  # noqa: F401

        return OptTool("module", None, metadata.version("paddlelite"))
    except Exception:
        pass
    found = shutil.which(OPT_NAME)
    if found:
        return OptTool("binary", Path(found), "")
    raise ToolchainError(
        "the Paddle-Lite optimizer (paddle_lite_opt) is not available", hint=INSTALL_HINT
    )


def lite_command(
    binary: Path, model_file: Path, params_file: Path, out_prefix: Path, *, fp16: bool
) -> list[str]:
    """The ``paddle_lite_opt`` command line; it writes ``<out_prefix>.nb``."""
    return [
        str(binary),
        f"--model_file={model_file}",
        f"--param_file={params_file}",
        "--optimize_out_type=naive_buffer",
        f"--optimize_out={out_prefix}",
        "--valid_targets=arm",
        f"--enable_fp16={'true' if fp16 else 'false'}",
    ]


def run_opt(tool: OptTool, files: PaddleModel, out_prefix: Path, *, fp16: bool) -> Path:
    """Run the optimizer; return the ``.nb`` it wrote.

    >>> run_opt(find_opt_tool(), find_paddle_model(Path("m")), Path("out/model"),
    ...         fp16=False)  # doctest: +SKIP
    PosixPath('out/model.nb')
    """
    if files.format != "legacy" or files.params_file is None:
        raise ConversionError(
            f"{files.model_file}: Paddle-Lite needs model.pdmodel + model.pdiparams",
            hint="use the upstream inference tarball, or re-export with FLAGS_enable_pir_api=0",
        )
    if tool.kind == "module":  # native code that can crash: in a child process
        run_native(
            "picozoo.convert.to_lite:run_module",
            tool=OPT_NAME,
            subject=str(files.model_file),
            files=files,
            out_prefix=out_prefix,
            fp16=fp16,
        )
    else:
        assert tool.path is not None
        cmd = lite_command(tool.path, files.model_file, files.params_file, out_prefix, fp16=fp16)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except OSError as e:
            raise ToolchainError(f"cannot run {tool.path}: {e}", hint=INSTALL_HINT) from e
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ConversionError(
                f"{OPT_NAME} failed ({exit_status(proc.returncode)}): {tail[0][:300]}",
                hint="run the command by hand to see its full output: " + " ".join(cmd),
            )
    nb = out_prefix.with_name(out_prefix.name + ".nb")
    if not nb.is_file() or nb.stat().st_size == 0:
        raise ConversionError(
            f"{OPT_NAME} finished but wrote no {nb.name}",
            hint="check the optimizer's output; nothing was cached",
        )
    return nb


def run_module(files: PaddleModel, out_prefix: Path, fp16: bool) -> None:
    """Paddle-Lite's ``Opt`` through the ``paddlelite`` module (run in a child process)."""
    from paddlelite.lite import Opt

    opt = Opt()
    opt.set_model_file(str(files.model_file))
    opt.set_param_file(str(files.params_file))
    opt.set_model_type("naive_buffer")
    opt.set_valid_places("arm")
    opt.set_optimize_out(str(out_prefix))
    if fp16:
        if not hasattr(opt, "enable_fp16"):
            raise ToolchainError(
                "this paddlelite module cannot write FP16 models",
                hint="pip install a newer paddlelite (>= 2.10)",
            )
        opt.enable_fp16()
    opt.run()


def lite_recipe(tool: OptTool, *, fp16: bool) -> Recipe:
    """The Paddle-Lite recipe for :mod:`picozoo.convert.cached` (the key holds the optimizer's
    identity: the module version, or the binary's sha256).

    >>> r = lite_recipe(OptTool("module", None, "2.14"), fp16=True)
    >>> r.output_file, r.tools, r.options["fp16"]
    ('model.nb', {'paddle_lite_opt': 'paddlelite==2.14'}, True)
    """
    options = {"target": "lite", "fp16": fp16, "valid_targets": "arm"}
    tools = {"paddle_lite_opt": tool.identity()}
    produce = functools.partial(_produce, tool, tools, fp16=fp16)
    return Recipe("lite", NB_FILE, options, tools, produce)


def _produce(
    tool: OptTool, tools: dict[str, str], files: PaddleModel, staging: Path, *, fp16: bool
) -> dict[str, Any]:
    nb = run_opt(tool, files, staging / "model", fp16=fp16)
    if nb.name != NB_FILE:
        nb.replace(staging / NB_FILE)
    return {
        "tools": {**tools, "kind": tool.kind, "path": str(tool.path or "")},
        "parity": None,
        "parity_note": "no ARM runtime here: a .nb cannot be run for a parity check",
    }
