"""The one YAML loader of picozoo: strict, bounded, for files an attacker may have written.

Every YAML picozoo reads (``registry.yaml``, an ``infer_cfg.yml`` inside a pulled tarball or
given with ``--config``) goes through :func:`strict_yaml`, which refuses what those files
never need and an attacker would use: anchors and aliases (the "billion laughs" bomb: 978
bytes of ``label_list: [*a8]`` expand to 9**8 strings when walked), nesting deeper than
:data:`MAX_YAML_DEPTH`, duplicate keys (the second would silently win) and non-finite
numbers (``.nan``, ``.inf``, ``1e999``). :func:`read_text` reads the file first: a regular
file only (a FIFO would block forever, a device never end), at most ``max_bytes``, UTF-8.

Both raise :class:`StrictYamlError` (a ``ValueError``) with a one-line ``problem``; the
caller names the file and picks the error (and exit code) that fits where it came from.

>>> strict_yaml("a: 1\\nb: [2, 3]")
{'a': 1, 'b': [2, 3]}
>>> strict_yaml("a: &x [1]\\nb: *x")
Traceback (most recent call last):
...
picozoo.yaml_strict.StrictYamlError: not valid YAML at line 1: anchors and aliases (&, *) are \
not allowed
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

#: Deepest nesting accepted (registry.yaml and infer_cfg.yml need 4).
MAX_YAML_DEPTH = 32


class StrictYamlError(ValueError):
    """A YAML text or file refused by :func:`strict_yaml` / :func:`read_text`."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def read_text(path: Path, *, max_bytes: int) -> str:
    """The text of ``path``: a regular file (opened without blocking, so a FIFO is refused,
    not waited on) of at most ``max_bytes`` bytes, in UTF-8.

    >>> read_text(Path("/dev/null"), max_bytes=10)
    Traceback (most recent call last):
    ...
    picozoo.yaml_strict.StrictYamlError: not a regular file (a character device)
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise StrictYamlError(f"cannot read: {e.strerror or e}") from e
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise StrictYamlError(f"not a regular file ({_kind(mode)})")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise StrictYamlError(f"cannot read: {e.strerror or e}") from e
    finally:
        os.close(fd)
    if len(raw) > max_bytes:
        size = f"{max_bytes >> 20} MiB" if max_bytes >= 1 << 20 else f"{max_bytes >> 10} KiB"
        raise StrictYamlError(f"larger than {size}, refusing")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StrictYamlError(f"not UTF-8 text (byte {e.start})") from e


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a file")


def strict_yaml(text: str) -> Any:
    """Parse ``text`` refusing anchors/aliases, deep nesting, duplicate keys and non-finite
    numbers (see the module docstring); :class:`StrictYamlError` names the line.

    >>> strict_yaml("a: 1\\na: 2")
    Traceback (most recent call last):
    ...
    picozoo.yaml_strict.StrictYamlError: not valid YAML at line 2: duplicate key 'a'
    """
    import yaml

    loader = _strict_loader()(text)
    try:
        return loader.get_single_data()
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or (str(e) if isinstance(e, ValueError) else "")
        detail = f": {' '.join(problem.split())}" if problem else ""
        raise StrictYamlError(f"not valid YAML{where}{detail}") from e
    finally:
        loader.dispose()


def load_file(path: Path, *, max_bytes: int) -> Any:
    """:func:`strict_yaml` of :func:`read_text`."""
    return strict_yaml(read_text(path, max_bytes=max_bytes))


_LOADER: list[type] = []


def _strict_loader() -> type:
    """A ``yaml.SafeLoader`` subclass with the refusals of :func:`strict_yaml` (made once)."""
    if _LOADER:
        return _LOADER[0]
    import yaml
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError

    class StrictLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ComposerError(
                    None, None, "anchors and aliases (&, *) are not allowed", event.start_mark
                )
            self.depth += 1
            try:
                if self.depth > MAX_YAML_DEPTH:
                    raise ComposerError(
                        None, None, f"nested deeper than {MAX_YAML_DEPTH}", event.start_mark
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in getattr(node, "value", ()):
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_float(self, node: Any) -> float:
            value = super().construct_yaml_float(node)
            if not math.isfinite(value):
                raise ConstructorError(
                    None, None, f"non-finite number {node.value!r}", node.start_mark
                )
            return value

    StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)
    _LOADER.append(StrictLoader)
    return StrictLoader
