"""``picozoo convert`` and ``picozoo inspect``: thin click layers over picozoo.convert/modelinfo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import PicozooError, UsageError
from .common import (
    MODEL_OR_PATH,
    AliasOption,
    App,
    echo_json,
    format_option,
    info,
    postprocess_option,
    store_options,
)

CONVERT_EPILOG = """\b
Example: picozoo convert picodet-s-416 --to onnx --no-postprocess
Example: picozoo convert --to onnx --no-postprocess      (every model you have pulled)
Example: picozoo convert ./my_inference_dir --input-size 320x320 --out ./onnx
Example: picozoo convert picodet-s-416 --no-postprocess --to lite --precision fp16
Example: picozoo convert picodet-s-416 --to lite --opt-bin ./paddle_lite_opt
Example: picozoo convert picodet-s-416 --no-postprocess --to openvino
Example: picozoo convert picodet-s-416 --no-postprocess --to ncnn --pnnx-bin ./pnnx
Example: picozoo convert ./model.onnx --to mnn --precision fp16
"""

INSPECT_EPILOG = """\b
Example: picozoo inspect model.onnx
Example: picozoo inspect picodet-s-416 --no-postprocess --format json
"""


@click.command("convert", epilog=CONVERT_EPILOG)
@click.argument("targets", nargs=-1, metavar=f"[{MODEL_OR_PATH}]...")
@click.option(
    "--to",
    "to",
    type=click.Choice(["onnx", "lite", "openvino", "mnn", "ncnn"]),
    default="onnx",
    show_default=True,
    help="onnx: paddle2onnx + onnxsim + parity check; lite: Paddle-Lite .nb for ARM, and an "
    "x86 .nb of the same model checked against Paddle Inference; openvino/mnn/ncnn: from the "
    "ONNX, parity-checked against ONNX Runtime.",
)
@postprocess_option(True, "Convert the tarball exported with post-processing (NMS), or without it.")
@click.option("--opset", type=int, default=11, show_default=True, help="ONNX opset.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also copy the outputs (and provenance) into this directory.",
)
@click.option(
    "--input-size",
    "input_size",
    cls=AliasOption,
    aliases=["--input-shape"],
    multiple=True,
    metavar="HxW|NAME=D0,D1,...",
    help="Fix the input size: HxW for PicoDet's image input (batch 1), or an input's whole "
    "shape, e.g. image=1,3,416,416 (repeatable).",
)
@click.option(
    "--dynamic-batch",
    "dynamic_flag",
    is_flag=True,
    help="Keep the batch dimension of the ONNX inputs symbolic [default: symbolic when the "
    "Paddle model was exported with a dynamic batch and has no NMS, else 1].",
)
@click.option(
    "--fixed-batch",
    "fixed_flag",
    is_flag=True,
    help="Fix the batch dimension of the ONNX inputs at 1 (excludes --dynamic-batch).",
)
@click.option("--fp16", is_flag=True, hidden=True, help="Old spelling of --precision fp16.")
@click.option(
    "--opt-bin",
    metavar="PATH",
    help="Lite: paddle_lite_opt executable [env: PICOZOO_LITE_OPT].",
)
@click.option(
    "--lite-python",
    metavar="PYTHON",
    help="Lite: the Python 3.7-3.10 of the managed paddle_lite_opt environment, created in the "
    "cache when no --opt-bin is given [env: PICOZOO_LITE_PYTHON; default: python3.10..3.7 on "
    "PATH, then pyenv's].",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "bf16", "int8"]),
    default=None,
    help="lite (fp32|fp16), openvino (fp32|fp16|bf16), mnn (fp32|fp16|int8), ncnn (fp32|fp16) "
    "[default: fp32]. "
    "Reduced precisions report their error and detection agreement instead of failing.",
)
@click.option(
    "--pnnx-bin",
    metavar="PATH",
    help="NCNN: the pnnx executable [default: the one of `pip install --no-deps pnnx`, or "
    "pnnx on PATH].",
)
@format_option("table", "json")
@store_options()
def convert_cmd(
    app: App,
    targets: tuple[str, ...],
    to: str,
    postprocess: bool,
    opset: int,
    no_simplify: bool,
    out_dir: Path | None,
    input_size: tuple[str, ...],
    dynamic_flag: bool,
    fixed_flag: bool,
    fp16: bool,
    opt_bin: str | None,
    lite_python: str | None,
    precision: str | None,
    pnnx_bin: str | None,
    fmt: str,
) -> None:
    """Convert Paddle inference models to ONNX (proved by a parity check), Paddle-Lite, or
    from the ONNX to OpenVINO, MNN or NCNN (each proved against ONNX Runtime).

    MODEL is a model id (its inference tarball is pulled if missing) or a directory holding a
    Paddle inference model; --to openvino|mnn|ncnn also take an .onnx file. With no MODEL,
    every model you have pulled anything of is converted (its tarball is pulled when missing).
    ONNX inputs keep the Paddle model's feed order. Prints the output path(s); progress goes
    to stderr.
    """
    from ..convert import convert
    from ..convert.lite_parity import parity_line
    from ..convert.run import copy_out
    from ..convert.shapes import parse_input_shapes
    from ..convert.sources import select_args
    from ..convert.to_lite import kernel_report
    from ..targets import resolve_arg

    if dynamic_flag and fixed_flag:
        raise UsageError(
            "--dynamic-batch and --fixed-batch exclude each other", hint="give one of them"
        )
    dynamic_batch = True if dynamic_flag else False if fixed_flag else None
    shapes = parse_input_shapes(map(_named_size, input_size)) or None
    args = select_args(targets, app.store, app.registry, postprocess=postprocess, progress=info)
    done: list[dict[str, Any]] = []
    failed: list[str] = []
    for arg in args:
        try:
            result = convert(
                app.store,
                resolve_arg(arg, app.registry),
                to=to,
                postprocess=postprocess,
                opset=opset,
                simplify=not no_simplify,
                input_shape=shapes,
                dynamic_batch=dynamic_batch,
                fp16=fp16,
                opt_bin=opt_bin or app.settings.lite_opt,
                precision=precision,
                pnnx_bin=pnnx_bin,
                progress=info,
                lite_python=lite_python or app.settings.lite_python,
            )
        except PicozooError as e:
            if len(args) == 1:
                raise
            info(f"{arg}: error: {e}")  # keep going with the other models
            failed.append(arg)
            continue
        if result.cached:
            info(f"{result.label}: cached ({result.path.parent.name})")
        if to == "lite":
            report = kernel_report(dict(result.provenance.converter or {}))
            if report:
                info(f"{result.label}: {result.path.name}: {report}")
            parity = parity_line(result.provenance.parity)
            info(f"{result.label}: {parity or result.provenance.parity_note or 'no parity check'}")
        copied = copy_out(result, out_dir, source=Path(arg)) if out_dir is not None else None
        done.append(
            {"target": arg, **result.to_dict(), "copied_to": str(copied) if copied else None}
        )
        if fmt == "table":
            click.echo(str(copied or result.path))
    if fmt == "json":
        echo_json(done)
    if failed:
        raise PicozooError(
            f"{len(failed)} of {len(args)} conversions failed: {', '.join(failed)}",
            hint="see the error lines above; the others were converted",
        )


def _named_size(spec: str) -> str:
    """``--input-size HxW`` as the whole shape of PicoDet's ``image`` input (batch 1);
    ``NAME=D0,D1,...`` as it is.

    >>> _named_size("320x256"), _named_size("320"), _named_size("x=1,2")
    ('image=1,3,320,256', 'image=1,3,320,320', 'x=1,2')
    """
    dims = spec.lower().split("x")
    if "=" in spec or not all(d.isdigit() for d in dims) or len(dims) > 2:
        return spec  # parse_input_shapes says what is wrong with it
    return "image=1,3," + ",".join(dims * 2 if len(dims) == 1 else dims)


@click.command("inspect", epilog=INSPECT_EPILOG)
@click.argument("target", metavar=MODEL_OR_PATH)
@postprocess_option(
    True, "MODEL: use the model converted/exported with post-processing, or without it."
)
@format_option("table", "json")
@store_options()
def inspect_cmd(app: App, target: str, postprocess: bool, fmt: str) -> None:
    """Inputs, outputs, op histogram, parameter count and FLOPs of an ONNX or Paddle model.

    MODEL uses what the cache has (its newest converted ONNX, upstream's ONNX, its inference
    directory), else pulls upstream's ONNX (or its inference tarball) first.
    """
    from ..convert.inspect_target import resolve_inspect_target
    from ..modelinfo import FLOPS_CONVENTION, inspect_model
    from ..targets import resolve_arg

    path = resolve_inspect_target(
        app.store,
        resolve_arg(target, app.registry),
        postprocess=postprocess,
        progress=info,
    )
    model_info = inspect_model(path)
    if fmt == "json":
        echo_json(model_info.to_dict())
        return
    d = model_info.to_dict()
    lines = [
        f"model:   {d['path']} ({d['format']}" + (f", opset {d['opset']})" if d["opset"] else ")")
    ]
    for title in ("inputs", "outputs"):
        lines.append(f"{title}:")
        lines += [f"  {t['name']}  {t['dtype']}  {t['shape']}" for t in d[title]]
    lines.append(f"params:  {d['params']:,}")
    lite = d.get("lite")
    if lite is not None:  # a .nb, read as data: nothing of it is run
        kernels = ", ".join(f"{n} {k}" for k, n in lite["kernels"].items())
        target = "/".join(lite["targets"])
        lines.append(f"lite:    optimizer {lite['opt_version']}, target {target}, "
                     f"{lite['fp16_kernels']} FP16 kernels ({kernels})")  # fmt: skip
        dtypes = ", ".join(f"{n} {t}" for t, n in lite["param_dtypes"].items())
        lines.append(f"weights: {lite['weight_tensors']} tensors ({dtypes}), "
                     f"{lite['param_bytes']:,} bytes")  # fmt: skip
        lines.append("FLOPs:   not computed for a Paddle-Lite .nb")
    else:
        lines.append(f"FLOPs:   {d['flops']:,} ({d['flops'] / 1e9:.3f} G)")
        lines.append(f"         {FLOPS_CONVENTION}")
    lines.append("ops:")
    lines += [f"  {name:<24} {count}" for name, count in d["op_histogram"].items()]
    click.echo("\n".join(lines))
