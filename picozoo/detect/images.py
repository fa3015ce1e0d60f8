"""The files ``infer`` and ``eval`` read: regular files only, images sized from their header
before they are decoded, and output names that never overwrite an input.

* :func:`open_regular` opens a user's input (an image, an annotation JSON, an
  ``infer_cfg.yml``) only when it is a regular file after following symlinks: a FIFO would
  block forever, ``/dev/zero`` never ends, a directory is not a file. One
  :class:`~picozoo.errors.UsageError` line (exit 2) says what the path is instead.
* :func:`image_files` reads a directory as the image files in it.
* :func:`image_size` reads the width and height from the header (Pillow, which decodes no
  pixel for it); :func:`check_pixels` refuses an image above the pixel cap
  (``PICOZOO_MAX_PIXELS``, default 100 MP) before OpenCV allocates anything: a 875 KB PNG can
  declare 30000 x 30000 pixels (2.7 GB decoded).
* :func:`output_paths`: ``<out>/<stem><suffix>`` per image (the input's format), made unique
  (``<stem>-2.png``...) so that two inputs never share an output and no output is one of the
  inputs.

>>> import tempfile; d = Path(tempfile.mkdtemp())
>>> (d / "a.png").write_bytes(b"x") and (d / "notes.txt").write_bytes(b"y")
1
>>> [p.name for p in image_files([d])]
['a.png']
>>> [p.name for p in output_paths([d / "a.png", d / "b" / "a.png"], d / "out")]
['a.png', 'a-2.png']
>>> [p.name for p in output_paths([d / "a.png"], d)]  # a.png is the input: never overwritten
['a-2.png']
>>> open_regular(Path("/dev/zero"), "image")
Traceback (most recent call last):
...
picozoo.errors.UsageError: /dev/zero is a character device, not a regular file (give an image file)
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ..errors import UsageError

#: What a directory given to ``infer`` contributes: the files OpenCV decodes, by suffix.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".pbm", ".pgm",
     ".ppm", ".pnm", ".jp2"}
)  # fmt: skip
DEFAULT_MAX_PIXELS = 100_000_000
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def stat_regular(path: Path, what: str) -> os.stat_result:
    """``os.stat(path)`` (symlinks followed) when it is a regular file, else a one-line
    :class:`UsageError` naming what it is (``what``: "image", "annotation file"...)."""
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise UsageError(f"no such {what}: {path}", hint="check the path") from e
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}",
                         hint="check the path and its permissions") from e  # fmt: skip
    if not stat.S_ISREG(st.st_mode):
        article = "an" if what[0] in "aeiou" else "a"
        raise UsageError(f"{path} is {_kind(st.st_mode)}, not a regular file",
                         hint=f"give {article} {what} file")  # fmt: skip
    return st


def open_regular(path: Path, what: str) -> IO[bytes]:
    """Open ``path`` for reading when it is a regular file (see :func:`stat_regular`).

    The file is opened non-blocking and checked again on the open descriptor, so a FIFO
    swapped in after the check cannot block the open either.
    """
    stat_regular(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror or e}",
                         hint="check the path and its permissions") from e  # fmt: skip
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"{path} is {_kind(mode)}, not a regular file",
                             hint=f"give a regular {what} file")  # fmt: skip
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, what: str, limit: int, setting: str = "") -> bytes:
    """The bytes of the regular file ``path``; more than ``limit`` bytes, or none, is refused
    (``setting``: the variable that raises the limit, for the hint)."""
    with open_regular(path, what) as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise UsageError(f"cannot read {what} {path}: {e.strerror or e}",
                             hint="check the file") from e  # fmt: skip
    if not data:
        raise UsageError(f"{path} is empty", hint=f"give a non-empty {what} file")
    if len(data) > limit:
        raise UsageError(
            f"{path} is larger than {limit} bytes, the {what} size limit",
            hint=f"set {setting} to read larger files" if setting else "give a smaller file",
        )
    return data


def image_files(paths: Sequence[Path]) -> list[Path]:
    """``paths`` with each directory replaced by its image files (by suffix, sorted, hidden
    files skipped; not recursive), and each glob pattern that names no file (``imgs/*.jpg``,
    quoted so the shell passes it on; ``*``, ``?``, ``[...]``, ``**`` recursive) by the image
    files it matches. Every path must exist; a directory without images, or a pattern that
    matches none, is refused (exit 2)."""
    out: list[Path] = []
    for path in paths:
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except OSError:
            if _is_glob(path):
                out += _glob_images(path)
                continue
            is_dir = False  # stat_regular says what is wrong when the file is read
        if not is_dir:
            out.append(path)
            continue
        try:
            found = sorted(
                p for p in path.iterdir()
                if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
            )  # fmt: skip
        except OSError as e:
            raise UsageError(f"cannot list {path}: {e.strerror or e}",
                             hint="check the folder's permissions") from e  # fmt: skip
        if not found:
            raise UsageError(f"{path} holds no image file ({', '.join(sorted(IMAGE_SUFFIXES))})",
                             hint="give image files or a folder of them")  # fmt: skip
        out += found
    return out


def _is_glob(path: Path) -> bool:
    return any(c in str(path) for c in "*?[")


def _glob_images(pattern: Path) -> list[Path]:
    """The image files (by suffix, sorted) a glob pattern matches; none is refused.

    >>> _glob_images(Path("/nonexistent/*.jpg"))
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: /nonexistent/*.jpg matches no image file (give image files, a \
folder of them, or a quoted pattern such as 'imgs/*.jpg')
    """
    import glob

    found = sorted(
        Path(p) for p in glob.glob(os.path.expanduser(str(pattern)), recursive=True)
        if Path(p).suffix.lower() in IMAGE_SUFFIXES and not os.path.isdir(p)
    )  # fmt: skip
    if not found:
        raise UsageError(f"{pattern} matches no image file",
                         hint="give image files, a folder of them, or a quoted pattern such "
                         "as 'imgs/*.jpg'")  # fmt: skip
    return found


def image_size(f: IO[bytes], path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` from the header of the image open at ``f`` (Pillow reads the
    header only; no pixel is decoded). Refuses a file Pillow cannot size."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    f.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                width, height = im.size
    except Image.DecompressionBombError as e:  # more than twice Pillow's own limit
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(found[1]) / 1e6:.0f} MP" if found else "its size"
        raise UsageError(
            f"{path}: {pixels} is more than the limit of {max_pixels / 1e6:g} MP",
            hint="downscale the image, or raise PICOZOO_MAX_PIXELS",
        ) from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise UsageError(f"{path}: not an image picozoo can read (its header is not JPEG, PNG, "
                         "BMP, WebP, TIFF or another format Pillow knows)",
                         hint="give a JPEG or PNG") from e  # fmt: skip
    finally:
        f.seek(0)
    return int(width), int(height)


def check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image of more than ``max_pixels`` pixels (one line, exit 2).

    >>> check_pixels(Path("big.png"), 30000, 30000, 100_000_000)
    Traceback (most recent call last):
    ...
    picozoo.errors.UsageError: big.png: 30000 x 30000 pixels (900 MP) is more than the limit \
of 100 MP (downscale the image, or raise PICOZOO_MAX_PIXELS)
    """
    if width <= 0 or height <= 0:
        raise UsageError(f"{path}: {width} x {height} pixels", hint="give a non-empty image")
    if width * height > max_pixels:
        raise UsageError(
            f"{path}: {width} x {height} pixels ({width * height / 1e6:.0f} MP) is more than "
            f"the limit of {max_pixels / 1e6:g} MP",
            hint="downscale the image, or raise PICOZOO_MAX_PIXELS",
        )


def output_suffix(path: Path) -> str:
    """The drawn image keeps its input's format (as upstream's ``visualize`` saves it under the
    input's name): ``.png`` stays ``.png``; a name without an image suffix is drawn as JPEG.

    >>> output_suffix(Path("a.PNG")), output_suffix(Path("b.jpeg")), output_suffix(Path("c"))
    ('.png', '.jpeg', '.jpg')
    """
    suffix = path.suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ".jpg"


def output_paths(images: Sequence[Path], out_dir: Path) -> list[Path]:
    """Where each image's drawing goes: ``out_dir/<stem><suffix>`` (the input's format, see
    :func:`output_suffix`), then ``<stem>-2<suffix>``... for a name another image has taken
    or that is one of the inputs (same file, by device and inode), so no output overwrites an
    input or another output."""
    inputs = set()
    for p in images:
        try:
            st = os.stat(p)
            inputs.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    used: set[str] = set()
    out = []
    for p in images:
        n, suffix = 1, output_suffix(p)
        while True:
            name = f"{p.stem}{suffix}" if n == 1 else f"{p.stem}-{n}{suffix}"
            if name.casefold() not in used and not _is_one_of(out_dir / name, inputs):
                break
            n += 1
        used.add(name.casefold())
        out.append(out_dir / name)
    return out


def _is_one_of(path: Path, files: set[tuple[int, int]]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in files
