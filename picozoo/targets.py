"""What a command argument names: a file or folder on disk, or a model id of the registry.

One rule for every command: an argument is a path when it exists, contains a path separator,
starts with ``.`` or ``~``, or ends with a model file suffix; otherwise it is a model id or
one of upstream's file stems (``picodet_s_416_coco_lcnet``; unknown names fail with
suggestions).

>>> is_path_arg("picodet-s-416"), is_path_arg("x.onnx"), is_path_arg("./dir")
(False, True, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError
from .hub.registry import Model, Registry

#: Suffixes of model files picozoo reads.
MODEL_SUFFIXES = (".onnx", ".pdmodel", ".json", ".nb")


@dataclass(frozen=True)
class Target:
    """A resolved argument: exactly one of ``path`` and ``model`` is set. ``postprocess`` is
    what an upstream name asks for: False for a ``_non_postprocess`` stem, else None/True."""

    arg: str
    path: Path | None = None
    model: Model | None = None
    postprocess: bool | None = None

    @property
    def label(self) -> str:
        """A short name for tables: the model id, or the file/folder name."""
        if self.model is not None:
            return self.model.id
        assert self.path is not None
        if self.path.is_file() and self.path.suffix in (".pdmodel", ".json"):
            return self.path.parent.name
        return self.path.stem if self.path.suffix else self.path.name


def is_path_arg(arg: str) -> bool:
    """True when ``arg`` names a file or folder rather than a model id."""
    return (
        "/" in arg
        or os.sep in arg
        or arg.startswith((".", "~"))
        or arg.endswith(MODEL_SUFFIXES)
        or Path(arg).exists()
    )


def resolve_arg(arg: str, registry: Registry | None, *, must_exist: bool = True) -> Target:
    """Resolve one argument; a path that does not exist is a :class:`ModelFileError`.

    >>> from picozoo.hub.registry import load_registry
    >>> t = resolve_arg("picodet_s_416_coco_lcnet_non_postprocess", load_registry())
    >>> t.model.id, t.postprocess
    ('picodet-s-416', False)
    """
    if is_path_arg(arg) or registry is None:
        path = Path(arg).expanduser()
        if must_exist and not path.exists():
            raise ModelFileError(
                f"{arg}: no such file or directory",
                hint="give an existing model file/folder, or a model id (`picozoo list`)",
            )
        return Target(arg, path=path)
    model, postprocess = registry.resolve(arg)
    return Target(arg, model=model, postprocess=postprocess)
