"""Paddle -> Paddle-Lite ``.nb`` for ARM, through ``paddle_lite_opt``.

The optimizer is taken from, in order: ``--opt-bin`` / ``Settings.lite_opt``
(``$PICOZOO_LITE_OPT``; an executable), the ``paddlelite`` Python module
(``from paddlelite.lite import Opt``), ``paddle_lite_opt`` on PATH, then the managed tool
environment in the store (:mod:`.lite_toolchain`: a pinned paddlelite in a venv of a Python
3.7-3.10 found on the machine). Paddle-Lite reads only the
legacy ``model.pdmodel`` format (what upstream tarballs hold). There is no ARM runtime here, so
a ``.nb`` gets no parity check (its provenance says so). What the optimizer did is read back
from the ``.nb`` (:func:`nb_kernels`: the kernel of every op, ``op/alias/target/precision/layout``
as a string): an FP16 conversion must hold FP16 kernels, or it fails.

>>> nb_kernels(b"\\x02\\x00v2.12\\x00..conv2d/def/4/5/1..fc/def/4/1/1..feed/def/1/4/2")
{'version': 'v2.12', 'kernels': {'arm/fp16': 1, 'arm/float': 1, 'host/any': 1}, 'fp16_kernels': 1}

>>> lite_command(Path("/bin/paddle_lite_opt"), Path("m/model.pdmodel"), Path("m/model.pdiparams"),
...              Path("out/model"), fp16=True)  # doctest: +NORMALIZE_WHITESPACE
['/bin/paddle_lite_opt', '--model_file=m/model.pdmodel', '--param_file=m/model.pdiparams',
 '--optimize_out_type=naive_buffer', '--optimize_out=out/model', '--valid_targets=arm',
 '--enable_fp16=true']
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import sha256_file
from ..errors import ConversionError, ToolchainError
from ..native import exit_status, run_native
from ..paddle_dir import PaddleModel
from .cached import Recipe
from .sources import Progress

if TYPE_CHECKING:
    from ..hub.store import Store

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

    kind: str  # "binary", "module" or "managed" (the store's tool environment; an executable)
    path: Path | None
    version: str

    def identity(self) -> str:
        """What goes into the cache key: the module version, or the binary's sha256."""
        if self.kind in ("module", "managed"):
            return f"paddlelite=={self.version}"
        assert self.path is not None
        return f"{self.path.name}@sha256:{sha256_file(self.path)[:16]}"


def find_opt_tool(
    opt_bin: str | None = None,
    store: Store | None = None,
    lite_python: str | None = None,
    progress: Progress | None = None,
) -> OptTool:
    """Locate the optimizer (``opt_bin``: an executable's path or name, from ``--opt-bin`` or
    ``Settings.lite_opt``) or raise :class:`ToolchainError` saying how to get one. With a
    ``store``, the last resort is its managed tool environment (created when missing, with
    ``lite_python`` or an interpreter found on the machine; see :mod:`.lite_toolchain`).

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
    if store is not None:
        from .lite_toolchain import ensure_lite_opt

        path, version = ensure_lite_opt(store, lite_python, progress)
        return OptTool("managed", path, version)
    raise ToolchainError(
        "the Paddle-Lite optimizer (paddle_lite_opt) is not available", hint=INSTALL_HINT
    )


def lite_command(
    binary: Path,
    model_file: Path,
    params_file: Path,
    out_prefix: Path,
    *,
    fp16: bool,
    target: str = "arm",
) -> list[str]:
    """The ``paddle_lite_opt`` command line; it writes ``<out_prefix>.nb``."""
    return [
        str(binary),
        f"--model_file={model_file}",
        f"--param_file={params_file}",
        "--optimize_out_type=naive_buffer",
        f"--optimize_out={out_prefix}",
        f"--valid_targets={target}",
        f"--enable_fp16={'true' if fp16 else 'false'}",
    ]


def run_opt(
    tool: OptTool, files: PaddleModel, out_prefix: Path, *, fp16: bool, target: str = "arm"
) -> Path:
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
            places=target,
        )
    else:
        assert tool.path is not None
        cmd = lite_command(
            tool.path, files.model_file, files.params_file, out_prefix, fp16=fp16, target=target
        )
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


def run_module(files: PaddleModel, out_prefix: Path, fp16: bool, places: str = "arm") -> None:
    """Paddle-Lite's ``Opt`` through the ``paddlelite`` module (run in a child process)."""
    from paddlelite.lite import Opt

    opt = Opt()
    opt.set_model_file(str(files.model_file))
    opt.set_param_file(str(files.params_file))
    opt.set_model_type("naive_buffer")
    opt.set_valid_places(places)
    opt.set_optimize_out(str(out_prefix))
    if fp16:
        if not hasattr(opt, "enable_fp16"):
            raise ToolchainError(
                "this paddlelite module cannot write FP16 models",
                hint="pip install a newer paddlelite (>= 2.10)",
            )
        opt.enable_fp16()
    opt.run()


def lite_recipe(tool: OptTool, *, fp16: bool, side_python: Path | None = None) -> Recipe:
    """The Paddle-Lite recipe for :mod:`picozoo.convert.cached` (the key holds the optimizer's
    identity: the module version, or the binary's sha256). With ``side_python`` (the managed
    tool environment's Python, with numpy) an x86 ``.nb`` is built beside the ARM one and
    proved against Paddle Inference (:mod:`.lite_parity`); without it the ``.nb`` gets no
    parity check and its provenance says why.

    >>> r = lite_recipe(OptTool("module", None, "2.14"), fp16=True)
    >>> r.output_file, r.tools, r.options["fp16"], r.siblings
    ('model.nb', {'paddle_lite_opt': 'paddlelite==2.14'}, True, ())
    """
    from .lite_parity import X86_NB

    options: dict[str, Any] = {"target": "lite", "fp16": fp16, "valid_targets": "arm"}
    tools = {"paddle_lite_opt": tool.identity()}
    if side_python is not None:
        options["x86_parity"] = True
    produce = functools.partial(_produce, tool, tools, fp16=fp16, side_python=side_python)
    siblings = (X86_NB,) if side_python is not None else ()
    return Recipe("lite", NB_FILE, options, tools, produce, siblings)


#: Paddle-Lite's TargetType and PrecisionType enums (lite/api/paddle_place.h), as in a .nb
TARGETS = {"0": "unk", "1": "host", "2": "x86", "3": "cuda", "4": "arm", "5": "opencl"}
PRECISIONS = {"0": "unk", "1": "float", "2": "int8", "3": "int32", "4": "any", "5": "fp16"}
PRECISIONS.update({"6": "bool", "7": "int64", "8": "int16"})
_KERNEL = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*/[A-Za-z0-9_]+/(\d{1,2})/(\d{1,2})/(\d{1,2})(?!\d)")
_VERSION = re.compile(rb"v\d+\.\d+[0-9a-z.\-]*")


def nb_kernels(data: bytes) -> dict[str, Any]:
    """The optimizer's version and the kernels of a ``.nb`` counted by ``target/precision``
    (each op's kernel is stored as ``op/alias/target/precision/layout``): read by
    :func:`picozoo.naive_buffer.read_nb`, else (not a ``.nb`` it can parse) by a scan of the
    bytes for kernel strings."""
    from ..errors import ModelFileError
    from ..naive_buffer import read_nb

    try:
        nb = read_nb(data)
    except ModelFileError:
        pass
    else:
        places = nb.places
        fp16 = sum(n for k, n in places.items() if k.endswith("/fp16"))
        return {"version": nb.opt_version, "kernels": places, "fp16_kernels": fp16}
    counts: dict[str, int] = {}
    for target, precision, _layout in _KERNEL.findall(data):
        t, p = target.decode(), precision.decode()
        if t not in TARGETS or p not in PRECISIONS:
            continue
        name = f"{TARGETS[t]}/{PRECISIONS[p]}"
        counts[name] = counts.get(name, 0) + 1
    version = _VERSION.search(data[:64])
    return {
        "version": version.group().decode() if version else None,
        "kernels": counts,
        "fp16_kernels": sum(n for k, n in counts.items() if k.endswith("/fp16")),
    }


def _produce(
    tool: OptTool,
    tools: dict[str, str],
    files: PaddleModel,
    staging: Path,
    *,
    fp16: bool,
    side_python: Path | None = None,
) -> dict[str, Any]:
    nb = run_opt(tool, files, staging / "model", fp16=fp16)
    if nb.name != NB_FILE:
        nb.replace(staging / NB_FILE)
    found = nb_kernels((staging / NB_FILE).read_bytes())
    if fp16 and found["kernels"] and not found["fp16_kernels"]:
        raise ConversionError(
            f"{OPT_NAME} was asked for FP16 but the .nb holds no FP16 kernel "
            f"({_kernel_summary(found)})",
            hint="use a paddlelite >= 2.10 built with FP16 (the pinned wheels are)",
        )
    env = {"env": str(side_python.parent.parent.parent)} if side_python is not None else {}
    fields: dict[str, Any] = {
        "tools": {**tools, "kind": tool.kind, "path": str(tool.path or ""), **env},
        "converter": found,
    }
    if side_python is None:
        return {
            **fields,
            "parity": None,
            "parity_note": "no ARM runtime here, and no Paddle-Lite tool environment to run an "
            "x86 .nb in (--opt-bin given): no parity check",
        }
    from .lite_parity import PROVES, X86_NB, check_lite_parity

    x86 = run_opt(tool, files, staging / "model.x86", fp16=False, target="x86")
    if x86.name != X86_NB:
        x86.replace(staging / X86_NB)
    from ..naive_buffer import read_nb_file

    x86_kernels = read_nb_file(staging / X86_NB).places
    parity = check_lite_parity(files, staging / X86_NB, side_python)
    parity["x86_kernels"] = x86_kernels
    return {**fields, "parity": parity, "parity_note": f"x86 parity: {PROVES}"}


def _kernel_summary(found: dict[str, Any]) -> str:
    kernels = found.get("kernels") or {}
    return ", ".join(f"{n} {k}" for k, n in sorted(kernels.items(), key=lambda kv: -kv[1])) or (
        "no kernels found"
    )


def kernel_report(converter: dict[str, Any] | None) -> str | None:
    """One line for stderr: what precision the .nb's kernels run in.

    >>> kernel_report({"kernels": {"arm/fp16": 159, "host/any": 17}, "fp16_kernels": 159})
    '159 FP16 kernels of 176 (159 arm/fp16, 17 host/any)'
    """
    if not converter or "kernels" not in converter:
        return None
    total = sum(converter["kernels"].values())
    return f"{converter['fp16_kernels']} FP16 kernels of {total} ({_kernel_summary(converter)})"
