"""What the first bytes of each artifact kind must look like, so that an HTML error page, a JSON
error or a compressed body answered with ``200`` is refused before it is cached or pinned.

The checks are deliberately lenient (a genuine file always passes) and look only at the first
:data:`HEAD_BYTES` bytes: a tarball starts with a valid tar header (or gzip/bzip2/xz magic),
an ``.onnx`` file with ONNX ``ModelProto`` protobuf fields, a ``.pdparams`` checkpoint with a
pickle (protocol 2 to 5) header, a ``.yml``/``.log`` file with text that is not markup; any
other file must at least not be empty or an HTML page.

>>> check_head("x.onnx", b"\\x08\\x07\\x12\\x07pytorch", "application/octet-stream")
>>> check_head("x.onnx", b"<!DOCTYPE html><html>...", "text/html; charset=utf-8")
Traceback (most recent call last):
...
picozoo.errors.WrongContentError: got an HTML page (Content-Type: text/html; charset=utf-8), \
not an ONNX model (protobuf) (...)
>>> describe(b"\\x1f\\x8b\\x08\\x00")
'gzip-compressed data'
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable

from ..errors import WrongContentError

#: How many leading bytes the checks look at (a smaller file is checked whole).
HEAD_BYTES = 1024

_GZIP = b"\x1f\x8b"
_COMPRESSED = (_GZIP, b"BZh", b"\xfd7zXZ\x00")
#: ``ModelProto`` field number -> protobuf wire type (0 varint, 2 length-delimited).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_MARKUP = ("<!doctype", "<html", "<head", "<body", "<?xml", "<error", "<!--")


def check_head(filename: str, head: bytes, content_type: str | None) -> None:
    """Raise :class:`WrongContentError` unless ``head`` (the first bytes of a download of
    ``filename``) can be that kind of file; ``content_type`` is only reported.

    >>> check_head("a.tar", b"", None)
    Traceback (most recent call last):
    ...
    picozoo.errors.WrongContentError: got an empty body (no Content-Type), not a tar archive (...)
    """
    expected, ok = expectation(filename)
    if head and ok(head):
        return
    seen = f"Content-Type: {content_type}" if content_type else "no Content-Type"
    raise WrongContentError(
        f"got {describe(head)} ({seen}), not {expected}",
        hint="the server answered with something else than the file (an error page or a "
        "compressed body?); nothing was cached or pinned: try another --mirror/PICOZOO_MIRROR",
    )


def expectation(filename: str) -> tuple[str, Callable[[bytes], bool]]:
    """(what the file must be, a check of its first bytes) for an artifact file name.

    >>> expectation("picodet_s_416_coco_lcnet.pdparams")[0]
    'a pickled checkpoint (.pdparams)'
    """
    name = filename.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "a gzip-compressed tar archive", lambda h: h.startswith(_GZIP)
    if name.endswith(".tar"):
        return "a tar archive", _is_tar
    if name.endswith(".onnx"):
        return "an ONNX model (protobuf)", _is_onnx
    if name.endswith((".pdparams", ".pdopt", ".pkl")):
        return "a pickled checkpoint (.pdparams)", _is_pickle
    if name.endswith((".yml", ".yaml")):
        return "YAML text", _is_text
    if name.endswith((".log", ".txt", ".json")):
        return "a text file", _is_text
    return "a model file", lambda h: not _is_markup(h)


def describe(head: bytes) -> str:
    """A few words on what ``head`` looks like, for error messages.

    >>> describe(b"  <html><body>404</body></html>"), describe(b"\\x80\\x04\\x95")
    ('an HTML page', 'a pickle')
    """
    if not head:
        return "an empty body"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "an HTML page"
    if text.startswith(b"<"):
        return "an XML/markup document"
    if text.startswith((b"{", b"[")):
        return "a JSON document"
    if head.startswith(_GZIP):
        return "gzip-compressed data"
    if head.startswith(_COMPRESSED):
        return "compressed data"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    if _is_pickle(head):
        return "a pickle"
    if _is_tar(head):
        return "a tar archive"
    if _is_text(head):
        return "text"
    return f"{len(head)}+ bytes of binary data"


def _is_markup(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:32].lower()
    return text.startswith(tuple(m.encode() for m in _MARKUP))


def _is_text(head: bytes) -> bool:
    """Text without NUL bytes that is not HTML/XML (YAML and logs never start with ``<``)."""
    return b"\x00" not in head and not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _is_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _is_tar(head: bytes) -> bool:
    if head.startswith(_COMPRESSED):  # `.tar` files are sometimes compressed; unpack decides
        return True
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head[: tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _is_onnx(head: bytes) -> bool:
    """Every top-level protobuf field in ``head`` is a ``ModelProto`` field of the right wire
    type (a field cut off by the end of ``head`` is fine)."""
    pos, fields = 0, 0
    while pos < len(head):
        tag, pos = _varint(head, pos)
        if tag is None:
            break
        if _ONNX_FIELDS.get(tag >> 3) != tag & 7:
            return False
        value, pos = _varint(head, pos)
        if value is None:
            break
        if tag & 7 == 2:
            pos += value
        fields += 1
    return fields > 0


def _varint(buf: bytes, pos: int) -> tuple[int | None, int]:
    """(value, next position), or (None, len) when ``buf`` ends inside the varint."""
    value = shift = 0
    while pos < len(buf) and shift < 64:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None, len(buf)
