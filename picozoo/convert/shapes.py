"""Input shapes: parse ``--input-size NAME=...``, resolve unknown dims, fix them in an ONNX graph.

>>> parse_input_shapes(["image=1,3,416,416", "scale_factor=1,2"])
{'image': [1, 3, 416, 416], 'scale_factor': [1, 2]}
>>> resolve_shape("image", [-1, 3, -1, -1], None, (320, 320), batch=1)
[1, 3, 320, 320]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError

BATCH_DIM = "batch"


def parse_input_shapes(specs: Iterable[str]) -> dict[str, list[int]]:
    """``["name=d0,d1,..."]`` -> ``{name: [d0, d1, ...]}`` (several names may share one string
    separated by ``;``)."""
    shapes: dict[str, list[int]] = {}
    for spec in specs:
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            name, sep, dims = part.partition("=")
            try:
                values = [int(d) for d in dims.replace("x", ",").split(",")]
            except ValueError:
                values = []
            if not sep or not name.strip() or not values or any(v <= 0 for v in values):
                raise UsageError(
                    f"bad --input-size {part!r}",
                    hint="use NAME=D0,D1,... with positive integers, e.g. image=1,3,416,416",
                )
            shapes[name.strip()] = values
    return shapes


def resolve_shape(
    name: str,
    dims: list[int],
    override: list[int] | None,
    image_size: tuple[int, int] | None,
    *,
    batch: int,
) -> list[int]:
    """A concrete shape for input ``name`` whose declared dims are ``dims`` (-1 = unknown).

    Unknown dim 0 becomes ``batch``; unknown H and W of a 4-D input come from ``image_size``.
    """
    if override is not None:
        if dims and len(override) != len(dims):
            raise UsageError(
                f"--input-size {name}: {len(override)} dims given, the model's input has "
                f"{len(dims)} ({_fmt(dims)})",
                hint=f"give {len(dims)} comma-separated sizes",
            )
        return list(override)
    out: list[int] = []
    for i, d in enumerate(dims):
        if d > 0:
            out.append(d)
        elif i == 0:
            out.append(batch)
        elif len(dims) == 4 and i in (2, 3) and image_size is not None:
            out.append(image_size[i - 2])
        else:
            raise UsageError(
                f"input {name!r} has an unknown size in dim {i} ({_fmt(dims)})",
                hint=f"give it with --input-size {name}="
                + ",".join(str(x if x > 0 else 1) for x in dims),
            )
    return out


def plan_inputs(
    declared: dict[str, list[int]],
    overrides: dict[str, list[int]] | None,
    image_size: tuple[int, int] | None,
    *,
    dynamic_batch: bool,
) -> dict[str, list[int]]:
    """A concrete shape (batch 1) for every declared input, after the ``--input-size``
    ``overrides``; checks the overrides name real inputs and ``dynamic_batch`` is possible.

    >>> plan_inputs({"image": [-1, 3, -1, -1]}, None, (64, 64), dynamic_batch=True)
    {'image': [1, 3, 64, 64]}
    >>> plan_inputs({"image": [1, 3, 64, 64]}, None, None, dynamic_batch=True)
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: --dynamic-batch: input(s) image have a fixed batch size \
(drop --dynamic-batch; this model was exported with a fixed batch)
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise UsageError(
            f"--input-size names unknown input(s) {', '.join(unknown)}",
            hint=f"the model's inputs are: {', '.join(declared)}",
        )
    if dynamic_batch:
        fixed0 = [n for n, d in declared.items() if d and d[0] > 0]
        if fixed0:
            raise UsageError(
                f"--dynamic-batch: input(s) {', '.join(fixed0)} have a fixed batch size",
                hint="drop --dynamic-batch; this model was exported with a fixed batch",
            )
    return {
        n: resolve_shape(n, d, overrides.get(n), image_size, batch=1) for n, d in declared.items()
    }


def nms_dynamic_batch_error() -> UsageError:
    """``--dynamic-batch`` on a model that ends in NMS (refused)."""
    return UsageError(
        "--dynamic-batch: the model ends in multiclass_nms3, which paddle2onnx 2.1.0 "
        "converts for one image at a time (its outputs would mix the images of a batch)",
        hint="drop --dynamic-batch, or convert the model without post-processing "
        "(--no-postprocess)",
    )


def program_has_nms(model_file: Path) -> bool:
    """True when a Paddle program (``model.pdmodel`` or ``model.json``) has a
    ``multiclass_nms`` op: its op types are plain strings in both formats, so this reads the
    bytes (no Paddle), before any conversion work."""
    return b"multiclass_nms" in Path(model_file).read_bytes()


def choose_batch(
    declared: dict[str, list[int]],
    requested: bool | None,
    *,
    overridden: bool,
    nms: bool,
) -> tuple[bool, str]:
    """Whether the batch dim of the ONNX inputs stays symbolic, and why.

    ``requested``: ``--dynamic-batch`` (True), ``--fixed-batch`` (False) or neither (None:
    follow the Paddle model -- symbolic when every input was exported with a dynamic batch,
    unless ``--input-size`` fixed the shapes (``overridden``) or the model ends in NMS
    (``nms``), which paddle2onnx 2.1.0 converts for one image at a time).

    >>> choose_batch({"image": [-1, 3, 416, 416], "scale_factor": [-1, 2]}, None,
    ...              overridden=False, nms=False)
    (True, 'exported with a dynamic batch')
    >>> choose_batch({"image": [-1, 3, 416, 416]}, None, overridden=False, nms=True)
    (False, 'multiclass_nms3 converts for batch 1 only (paddle2onnx 2.1.0)')
    >>> choose_batch({"image": [1, 3, 416, 416]}, None, overridden=False, nms=False)
    (False, 'exported with a fixed batch')
    """
    if requested is True:
        if nms:
            raise nms_dynamic_batch_error()
        return True, "--dynamic-batch"
    if requested is False:
        return False, "--fixed-batch"
    if overridden:
        return False, "--input-shape"
    if nms:
        return False, "multiclass_nms3 converts for batch 1 only (paddle2onnx 2.1.0)"
    if declared and all(d and d[0] < 0 for d in declared.values()):
        return True, "exported with a dynamic batch"
    return False, "exported with a fixed batch"


def order_inputs(model: Any, names: list[str]) -> None:
    """Reorder the graph inputs of an ``onnx.ModelProto`` to ``names`` (the Paddle model's
    feed order); inputs not named keep their relative order after them.

    >>> import onnx  # doctest: +SKIP
    >>> m = onnx.helper.make_model(onnx.helper.make_graph([], "g", [
    ...     onnx.helper.make_tensor_value_info("scale_factor", 1, [1, 2]),
    ...     onnx.helper.make_tensor_value_info("image", 1, [1, 3, 8, 8])], []))  # doctest: +SKIP
    >>> order_inputs(m, ["image", "scale_factor"])  # doctest: +SKIP
    >>> [i.name for i in m.graph.input]  # doctest: +SKIP
    ['image', 'scale_factor']
    """
    rank = {n: i for i, n in enumerate(names)}
    current = list(model.graph.input)
    wanted = sorted(current, key=lambda v: rank.get(v.name, len(rank)))
    if [v.name for v in wanted] == [v.name for v in current]:
        return
    copies = []
    for v in wanted:
        c = type(v)()
        c.CopyFrom(v)
        copies.append(c)
    del model.graph.input[:]
    model.graph.input.extend(copies)


def onnx_input_dims(model: Any) -> dict[str, list[int]]:
    """``{input name: dims}`` of an ``onnx.ModelProto`` (-1 for symbolic/unknown dims)."""
    inits = {t.name for t in model.graph.initializer}
    result: dict[str, list[int]] = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        result[inp.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    return result


def fix_onnx_inputs(model: Any, shapes: dict[str, list[int]], *, dynamic_batch: bool) -> None:
    """Write ``shapes`` into the graph inputs (dim 0 symbolic ``batch`` with ``dynamic_batch``).

    Intermediate shapes are cleared so shape inference recomputes them; output shapes too when
    a fixed input dim changed (they were computed for the old size).
    """
    changed = False
    for inp in model.graph.input:
        if inp.name not in shapes:
            continue
        dims = inp.type.tensor_type.shape.dim
        while len(dims) < len(shapes[inp.name]):
            dims.add()
        for i, size in enumerate(shapes[inp.name]):
            changed |= dims[i].HasField("dim_value") and dims[i].dim_value != size
            dims[i].Clear()
            if i == 0 and dynamic_batch:
                dims[i].dim_param = BATCH_DIM
            else:
                dims[i].dim_value = size
    del model.graph.value_info[:]
    if changed:
        for out in model.graph.output:
            for d in out.type.tensor_type.shape.dim:
                d.Clear()


def _fmt(dims: list[int]) -> str:
    return "[" + ", ".join(str(d) if d > 0 else "?" for d in dims) + "]"
