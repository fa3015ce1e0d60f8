"""The attack suite: every hostile input of issue 9, run against the real ``picozoo`` CLI.

Each scenario is a small function that builds its hostile input in a fresh temp folder (a
loopback HTTP server, a crafted file, a planted symlink, a registry), runs the real
``python -m picozoo ...`` with a fresh cache there, and judges the outcome:

* **held**: the exit code is the documented one for the refusal (or 0 where the right outcome
  is to survive, e.g. decode a gzip body, restart a spliced resume), stderr has exactly one
  ``picozoo: error:`` line and no traceback, the scenario's own check passed (nothing pinned,
  the victim untouched, time and memory bounded...), and **0 bytes were written outside the
  cache**;
* **FAILED** otherwise.

"Outside the cache" is every file under the scenario's temp root except ``cache/`` and
``scratch/`` (the subprocess's ``$TMPDIR`` and ``$HOME``, where a rescued report may go):
the mirror, the registry, the model folders, and the sentinel files planted symlinks point
to. New files count their size, grown files their growth, and a file rewritten, truncated or
removed counts as touched. Subprocesses run with ``RLIMIT_FSIZE`` = 1 GiB (and an address
space limit where a scenario allocates), so an attack that is not held fails the scenario, not
the machine.

    python benchmarks/attack_suite.py              # every scenario, markdown table on stdout
    python benchmarks/attack_suite.py -k pins -k tar --json out.json
    python benchmarks/attack_suite.py --quick      # only the scenarios that take < 2 s

Exit status 1 if any scenario is not held.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from support.artifacts import (  # noqa: E402
    INFER_CFG,
    make_inference_dir,
    make_inference_tarball,
    make_pdparams,
    make_tarball,
    publish,
)
from support.http_server import serve_directory  # noqa: E402

from picozoo.atomic import sha256_file  # noqa: E402
from picozoo.hub.registry import Artifact, Registry, load_registry  # noqa: E402

MODEL = "picodet-s-416"
GIB = 1 << 30
#: Runs ``python -m picozoo`` after setting umask 022, RLIMIT_FSIZE and (if not 0) RLIMIT_AS
#: from argv[1:3] (a launcher instead of ``preexec_fn``, which is unsafe with server threads).
LAUNCHER = """\
import atexit, os, resource, runpy, sys
def _peak():  # the process's own peak RSS: wait4's ru_maxrss also counts the memory of the
    # parent the child was vforked from, before exec (hundreds of MB inside pytest)
    out = os.environ.get("ATTACK_SUITE_RSS_FILE")
    if out:
        with open("/proc/self/status") as f:
            kb = next((ln.split()[1] for ln in f if ln.startswith("VmHWM:")), "")
        with open(out, "w") as f:
            f.write(kb)
atexit.register(_peak)
os.umask(0o022)
fsize, space = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
if space:
    resource.setrlimit(resource.RLIMIT_AS, (space, space))
sys.argv = ["picozoo", *sys.argv[3:]]
runpy.run_module("picozoo", run_name="__main__", alter_sys=True)
"""


# -- running the CLI ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One finished ``picozoo`` process (``rc`` None: killed at its time limit)."""

    args: tuple[str, ...]
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float

    @property
    def error_lines(self) -> int:
        return sum(1 for line in self.stderr.splitlines() if line.startswith("picozoo: error:"))

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr

    @property
    def stderr_shape(self) -> str:
        """``traceback``, or how many error lines (and other lines, e.g. retry notices)."""
        if self.traceback:
            return "traceback"
        others = len(self.stderr.splitlines()) - self.error_lines
        shape = f"{self.error_lines} error line" + ("s" * (self.error_lines != 1))
        return shape + (f" + {others} other" if others else "")


def _command(args: tuple[str, ...], address_space: int | None = None) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, str(GIB), str(address_space or 0), *args]


_REGISTRY: list[Registry] = []


def registry() -> Registry:
    """The packaged registry, loaded once."""
    if not _REGISTRY:
        _REGISTRY.append(load_registry())
    return _REGISTRY[0]


class Lab:
    """A scenario's temp root: ``cache/``, ``outside/`` (sentinels), ``mirror/``, ``scratch/``,
    and the before/after accounting of bytes written outside the cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "cache"
        self.outside = root / "outside"
        self.mirror = root / "mirror"
        self.scratch = root / "scratch"
        for d in (self.outside, self.mirror, self.scratch / "home"):
            d.mkdir(parents=True, exist_ok=True)
        self.victim = self.outside / "victim.txt"
        self.victim.write_bytes(b"VICTIM: must never be written by picozoo\n" * 64)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
        self.env.update(
            PICOZOO_CACHE=str(self.cache),
            PICOZOO_RETRIES="2",
            PICOZOO_BACKOFF="0.1",
            PICOZOO_TIMEOUT="10",
            TMPDIR=str(self.scratch),
            HOME=str(self.scratch / "home"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            COLUMNS="200",
        )
        self._before: dict[str, tuple[str, int, str]] | None = None
        self.runs: list[Run] = []

    # accounting
    @property
    def began(self) -> bool:
        return self._before is not None

    def begin(self) -> None:
        """Snapshot everything outside the cache (called before the first command)."""
        if self._before is None:
            self._before = self._snapshot()

    def outside_changes(self) -> tuple[int, list[str]]:
        """(bytes written outside the cache, paths created/changed/removed there)."""
        before = self._before or {}
        after = self._snapshot()
        written, touched = 0, []
        for rel, now in after.items():
            old = before.get(rel)
            if old == now:
                continue
            touched.append(rel)
            grown = now[1] - old[1] if old is not None else now[1]
            written += grown if grown > 0 else now[1]  # rewritten in place: all its bytes
        touched += [rel for rel in before if rel not in after]
        return written, sorted(touched)

    def _snapshot(self) -> dict[str, tuple[str, int, str]]:
        out: dict[str, tuple[str, int, str]] = {}
        skip = {self.cache, self.scratch}
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if here / d not in skip]
            for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
                p = here / name
                rel = p.relative_to(self.root).as_posix()
                st = p.lstat()
                if p.is_symlink():
                    out[rel] = ("link", 0, os.readlink(p))
                elif p.is_file():
                    out[rel] = ("file", st.st_size, sha256_file(p) if st.st_size < 64 << 20 else "")
        return out

    # running
    def picozoo(
        self,
        *args: str,
        env: dict[str, str | None] | None = None,
        timeout: float = 60.0,
        address_space: int | None = None,
    ) -> Run:
        """Run ``python -m picozoo *args`` here; measures wall time and peak RSS. ``env``
        adds variables (None: remove one, e.g. to get picozoo's default retries)."""
        self.begin()
        cmd = _command(args, address_space)
        t0 = time.perf_counter()
        peak_file = Path(tempfile.mkstemp(prefix="attack-rss-")[1])
        env = {**(env or {}), "ATTACK_SUITE_RSS_FILE": str(peak_file)}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=err,
                env={k: v for k, v in {**self.env, **env}.items() if v is not None},
                cwd=self.root,
            )
            rc, rss = _wait(proc, t0 + timeout)
            own = peak_file.read_text().strip() if peak_file.exists() else ""
            peak_file.unlink(missing_ok=True)
            rss = int(own) / 1024 if own.isdigit() else rss
            seconds = time.perf_counter() - t0
            out.seek(0)
            err.seek(0)
            run = Run(
                tuple(args),
                rc,
                out.read().decode(errors="replace"),
                err.read().decode(errors="replace"),
                seconds,
                rss,
            )
        self.runs.append(run)
        return run

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``picozoo *args`` in the background (for races); output is discarded."""
        self.begin()
        return subprocess.Popen(
            _command(args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.root,
        )

    # fixtures
    def artifact(self, kind: str, model: str = MODEL) -> Artifact:
        return registry().get(model).artifact(kind)

    def publish_inference(self, *, nbytes: int = 4096) -> Path:
        """A good inference tarball of MODEL in the mirror; returns its path there."""
        art = self.artifact("inference")
        src = make_inference_dir(self.root / "build" / "src", nbytes=nbytes)
        tar = make_inference_tarball(src, self.root / "build" / art.filename)
        return publish(art, tar, self.mirror)

    def store(self) -> Any:
        from picozoo.hub.store import Store
        from picozoo.settings import Settings

        return Store(Settings(cache_dir=self.cache))

    def pinned(self, url: str) -> Any:
        """The pin of ``url`` in the cache's pins file (None if none or unreadable)."""
        try:
            return self.store().pins().get(url)
        except Exception:
            return None

    def cache_holds(self, needle: bytes) -> bool:
        files = (p for p in self.cache.rglob("*") if p.is_file() and not p.is_symlink())
        return self.cache.exists() and any(needle in p.read_bytes() for p in files)

    def cache_disk_mb(self) -> float:
        if not self.cache.exists():
            return 0.0
        blocks = sum(p.lstat().st_blocks for p in self.cache.rglob("*"))
        return blocks * 512 / 1e6


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int | None, float]:
    """Reap ``proc`` (killing it at ``deadline``): (exit code or None, peak RSS in MB)."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024
        if time.perf_counter() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return None, usage.ru_maxrss / 1024
        time.sleep(0.02)


# -- a scripted hostile HTTP server -------------------------------------------------------------
Respond = Callable[[BaseHTTPRequestHandler, int], None]


@contextmanager
def hostile_server(respond: Respond) -> Iterator[tuple[str, list[str], threading.Event]]:
    """Serve on 127.0.0.1; ``respond(handler, n)`` writes the whole reply to the n-th request.

    Yields (base URL, the request lines seen, an event set when the server stops)."""
    seen: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                n = len(seen)
                seen.append(f"{self.path} {self.headers.get('Range') or ''}".strip())
            with contextlib.suppress(OSError):
                respond(self, n)
            self.close_connection = True

        do_HEAD = do_GET

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen, stop
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def reply(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    send: int | None = None,
) -> None:
    """Write a reply; ``Content-Length`` is ``len(body)`` unless given, ``send`` cuts the body."""
    h.send_response(status)
    hdrs = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    for k, v in hdrs.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body[:send] if send is not None else body)
    h.wfile.flush()


# -- crafted files ------------------------------------------------------------------------------
def tiny_onnx() -> bytes:
    """A valid one-node ONNX model (Identity)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return bytes(onnx.helper.make_model(graph).SerializeToString())


def nested_tuple_pickle(levels: int = 32) -> bytes:
    """A 285-byte pickle: ``numpy.dtype(t)`` where ``t`` is a tuple DAG ``(t', t')`` nested
    ``levels`` deep via the memo, i.e. 2**levels leaves when walked or printed."""
    body = b"cnumpy\ndtype\n)q\x00" + b"0h\x00h\x00\x86q\x00" * levels + b"\x85R"
    return b"\x80\x02}X\x01\x00\x00\x00w" + body + b"s."


def huge_buffer_pickle() -> bytes:
    """A ~100-byte pickle of ``{"w": numpy._frombuffer(3_000_000_000, "f4", (750_000_000,))}``:
    the buffer is an int, so ``bytes(buf)`` would conjure 3 GB of zeros."""
    dtype = b"cnumpy\ndtype\nX\x02\x00\x00\x00f4\x85R"
    args = (
        b"(\x8a\x05" + (3_000_000_000).to_bytes(5, "little") + dtype
        + b"J" + (750_000_000).to_bytes(4, "little") + b"\x85X\x01\x00\x00\x00Ct"
    )  # fmt: skip
    return b"\x80\x02}X\x01\x00\x00\x00wcnumpy.core.numeric\n_frombuffer\n" + args + b"Rs."


def _inference_members(top: str) -> list[dict[str, Any]]:
    """The members of a plausible inference tarball (for ``make_tarball``)."""
    return [
        {"name": top, "type": tarfile.DIRTYPE, "mode": 0o755},
        {"name": f"{top}/model.pdmodel", "data": b"\x08\x01" * 64},
        {"name": f"{top}/infer_cfg.yml", "data": INFER_CFG.format(size=416).encode()},
        {"name": f"{top}/model.pdiparams", "data": b"\x00" * 256},
    ]


def _top(art: Artifact) -> str:
    return art.filename.removesuffix(".tar")


def gzip_bomb(dest: Path, top: str, unpacked: int = 2 * GIB) -> Path:
    """A ~2 MB gzip-compressed tar whose ``model.pdiparams`` is ``unpacked`` bytes of zeros,
    built in well under a second (1 MiB deflate blocks after full flushes are identical)."""
    prefix = b""
    for spec in _inference_members(top)[:-1]:  # all but model.pdiparams, which is the bomb
        data = spec.get("data", b"")
        ti = tarfile.TarInfo(spec["name"])
        ti.type, ti.mode, ti.size = spec.get("type", tarfile.REGTYPE), 0o755, len(data)
        prefix += ti.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % tarfile.BLOCKSIZE)
    big = tarfile.TarInfo(f"{top}/model.pdiparams")
    big.size, big.mode = unpacked, 0o644
    prefix += big.tobuf(tarfile.GNU_FORMAT)
    chunk = bytes(1 << 20)
    tail = bytes(2 * tarfile.BLOCKSIZE)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    crc = zlib.crc32(prefix)
    with open(dest, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        f.write(c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH))
        block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
        f.write(block * (unpacked // len(chunk)))
        crc = _crc_zeros(crc, unpacked)
        f.write(c.compress(tail) + c.flush())
        crc = zlib.crc32(tail, crc)
        total = len(prefix) + unpacked + len(tail)
        f.write(crc.to_bytes(4, "little") + (total & 0xFFFFFFFF).to_bytes(4, "little"))
    return dest


def _crc_zeros(crc: int, n: int) -> int:
    chunk = bytes(1 << 20)
    for _ in range(n // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return crc


def sparse_tar(dest: Path, top: str, size: int = 20 * GIB) -> Path:
    """A ~10 KB GNU tar (``tar -S``) whose sparse ``model.pdiparams`` is ``size`` bytes."""
    src = dest.parent / "sparse-src"
    (src / top).mkdir(parents=True, exist_ok=True)
    for spec in _inference_members(top)[1:]:
        (src / spec["name"]).write_bytes(spec.get("data", b""))
    with open(src / top / "model.pdiparams", "wb") as f:
        f.truncate(size)
    subprocess.run(["tar", "-cSf", str(dest), "-C", str(src), top], check=True)
    shutil.rmtree(src)
    return dest


def registry_text(url: str, claims: str = "{map: 1.0}") -> str:
    return (
        "schema: 1\nfamilies: {f: {title: F}}\nmodels:\n"
        f"  - {{id: m, family: f, input_size: [320, 320], claims: {claims}, "
        f"artifacts: [{{kind: weights, url: '{url}'}}]}}\n"
    )


def alias_bomb() -> str:
    rows = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    pairs = zip("abcdefgh", "bcdefghi", strict=True)
    rows += [f"&{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in pairs]
    return (
        "schema: 1\nfamilies:\n  f:\n    title: F\n    source: [" + ", ".join(rows) + "]\n"
        "models:\n  - {id: m, family: f, input_size: [320, 320]}\n"
    )


# -- scenarios ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What a scenario saw: its decisive run, the exit codes that count as held, and its own
    check (``ok``) with a note."""

    run: Run
    expect: frozenset[int]
    ok: bool = True
    note: str = ""


@dataclass(frozen=True)
class Scenario:
    name: str
    item: int  #: the item of the issue that listed the attack
    quick: bool  #: takes < 2 s
    fn: Callable[[Lab], Verdict]
    issue: int = 9  #: 9: the download side; 17: infer, eval, reports, outputs, processes


SCENARIOS: list[Scenario] = []


def scenario(
    name: str, item: int, *, quick: bool = True, issue: int = 9
) -> Callable[[Callable[[Lab], Verdict]], Callable[[Lab], Verdict]]:
    def register(fn: Callable[[Lab], Verdict]) -> Callable[[Lab], Verdict]:
        SCENARIOS.append(Scenario(name, item, quick, fn, issue))
        return fn

    return register


def _pull(lab: Lab, *extra: str, mirror: str | None = None, **kw: Any) -> Run:
    return lab.picozoo("pull", MODEL, "--mirror", mirror or lab.mirror.as_uri(), *extra, **kw)


# item 1: malformed pins
def _malformed_pin(value: Any, expect: int = 3) -> Callable[[Lab], Verdict]:
    def run(lab: Lab) -> Verdict:
        lab.publish_inference()
        lab.cache.mkdir()
        lock = lab.cache / "picozoo.lock"
        url = lab.artifact("inference").url
        lock.write_text(json.dumps({"version": 1, "artifacts": {url: {"sha256": value,
                                                                       "size": 10}}}))  # fmt: skip
        before = lock.read_bytes()
        r = _pull(lab)
        same = lock.read_bytes() == before
        note = "pins file unchanged" if same else "pins file was rewritten"
        if expect == 6:
            note += "; upper-case hex is read case-insensitively, so the pin holds"
        return Verdict(r, frozenset({expect}), same, note)

    return run


scenario("malformed pin (upper-case hex)", 1)(_malformed_pin("AB" * 32, expect=6))
for _label, _value in {"63 chars": "a" * 63, "65 chars": "a" * 65, "non-string": 12345}.items():
    scenario(f"malformed pin ({_label})", 1)(_malformed_pin(_value))


# item 2: HTML error pages and gzip bodies
@scenario("HTML page answered 200 for .onnx", 2)
def html_for_onnx(lab: Lab) -> Verdict:
    page = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n" * 20

    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        reply(h, 200, page, headers={"Content-Type": "text/html; charset=utf-8"})

    with hostile_server(respond) as (url, _seen, _stop):
        r = _pull(lab, "-a", "onnx", mirror=url)
    pinned = lab.pinned(lab.artifact("onnx").url)
    return Verdict(r, frozenset({5}), pinned is None, "the page was pinned" if pinned else "")


@scenario("gzip Content-Encoding body", 2)
def gzip_body(lab: Lab) -> Verdict:
    model = tiny_onnx()
    body = gzip.compress(model, mtime=0)

    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        reply(h, 200, body, headers={"Content-Encoding": "gzip",
                                     "Content-Type": "application/octet-stream"})  # fmt: skip

    with hostile_server(respond) as (url, _seen, _stop):
        r = _pull(lab, "-a", "onnx", mirror=url)
    pin = lab.pinned(lab.artifact("onnx").url)
    good = hashlib.sha256(model).hexdigest()
    if r.rc == 0:
        ok = pin is not None and pin.sha256 == good
        return Verdict(r, frozenset({0, 5}), ok, "decoded" if ok else "compressed bytes pinned")
    return Verdict(r, frozenset({0, 5}), pin is None, "refused" if pin is None else "pinned")


# item 3: Content-Range total change, short Content-Length
def _log_text(n: int, tag: str) -> bytes:
    line = f"[{tag}] epoch loss 0.1234 lr 0.01 map 30.1\n".encode()
    return (line * (n // len(line) + 1))[:n]


@scenario("Content-Range total changes on resume", 3)
def range_total_changes(lab: Lab) -> Verdict:
    first, second = _log_text(256 << 10, "v1"), _log_text(512 << 10, "v2")

    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        rng = h.headers.get("Range")
        if n == 0:  # v1, cut after 64 KiB
            reply(h, 200, first, headers={"ETag": '"v1"'}, send=64 << 10)
        elif rng and rng.startswith("bytes="):  # a splice: v2's tail, v2's total, v1's ETag
            start = int(rng[6:].split("-")[0])
            reply(h, 206, second[start:], headers={
                "ETag": '"v1"', "Content-Range": f"bytes {start}-{len(second) - 1}/{len(second)}"
            })  # fmt: skip
        else:
            reply(h, 200, second, headers={"ETag": '"v2"'})

    with hostile_server(respond) as (url, seen, _stop):
        r = _pull(lab, "-a", "log", mirror=url)
    pin = lab.pinned(lab.artifact("log").url)
    whole = {hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()}
    if r.rc == 0:
        ok = pin is not None and pin.sha256 in whole
        return Verdict(r, frozenset({0, 4}), ok, "restarted" if ok else "a splice was pinned")
    return Verdict(r, frozenset({0, 4}), pin is None, f"{len(seen)} requests")


@scenario("short Content-Length (body cut)", 3)
def short_body(lab: Lab) -> Verdict:
    body = _log_text(128 << 10, "short")

    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        reply(h, 200, body, send=len(body) - 100)  # announces 128 KiB, sends 100 bytes less

    with hostile_server(respond) as (url, seen, _stop):
        r = _pull(lab, "-a", "log", mirror=url, env={"PICOZOO_BACKOFF": "0"})
    pinned = lab.pinned(lab.artifact("log").url) is not None
    return Verdict(r, frozenset({4}), not pinned, f"{len(seen)} requests" + (", pinned" * pinned))


# item 4: drip
@scenario("1 byte/s drip with PICOZOO_MIN_SPEED", 4, quick=False)
def drip(lab: Lab) -> Verdict:
    body = _log_text(100_000, "drip")

    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for i in range(len(body)):
            h.wfile.write(body[i : i + 1])
            h.wfile.flush()
            if stop.wait(1.0):
                return

    env = {"PICOZOO_MIN_SPEED": "1000", "PICOZOO_MIN_SPEED_TIME": "2", "PICOZOO_TIMEOUT": "5",
           "PICOZOO_RETRIES": "2", "PICOZOO_BACKOFF": "0"}  # fmt: skip
    with hostile_server(respond) as (url, seen, stop):
        r = _pull(lab, "-a", "log", mirror=url, env=env, timeout=90)
    ok = r.seconds < 30
    return Verdict(r, frozenset({4}), ok, f"{len(seen)} attempts in {r.seconds:.0f} s")


# item 5: unreachable hosts
#: picozoo's own retry settings (5 retries, 0.5 s first back-off), as a user gets them
DEFAULT_RETRIES: dict[str, str | None] = {"PICOZOO_RETRIES": None, "PICOZOO_BACKOFF": None}


@scenario("DNS failure (.invalid host)", 5)
def dns_failure(lab: Lab) -> Verdict:
    r = _pull(lab, mirror="http://picozoo-attack.invalid/pp", env=DEFAULT_RETRIES, timeout=60)
    ok = r.seconds < 10 and "picozoo-attack.invalid" in r.stderr
    return Verdict(r, frozenset({4}), ok, "" if ok else "slow, or the host is not named")


@scenario("connection refused (nothing listening)", 5)
def connection_refused(lab: Lab) -> Verdict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _pull(lab, mirror=f"http://127.0.0.1:{port}/pp", env=DEFAULT_RETRIES, timeout=60)
    ok = r.seconds < 10 and "refused" in r.stderr.lower()
    return Verdict(r, frozenset({4}), ok, "" if ok else "slow, or the cause is not shown")


# item 6: unpack size caps
@scenario("sparse tar with a 20 GiB member", 6)
def sparse_member(lab: Lab) -> Verdict:
    art = lab.artifact("inference")
    tar = sparse_tar(lab.root / "build" / art.filename, _top(art))
    publish(art, tar, lab.mirror)
    r = _pull(lab, timeout=120)
    mb = lab.cache_disk_mb()
    return Verdict(r, frozenset({5}), mb < 50, f"{tar.stat().st_size // 1024} KB tar, "
                   f"cache uses {mb:.1f} MB")  # fmt: skip


@scenario("tar.gz bomb (2 MB -> 2 GiB)", 6, quick=False)
def targz_bomb(lab: Lab) -> Verdict:
    art = lab.artifact("inference")
    lab.mirror.joinpath(art.url_path).parent.mkdir(parents=True, exist_ok=True)
    bomb = gzip_bomb(lab.mirror / art.url_path, _top(art))
    r = _pull(lab, timeout=180)
    mb = lab.cache_disk_mb()
    return Verdict(r, frozenset({5}), mb < 50, f"{bomb.stat().st_size / 1e6:.1f} MB archive, "
                   f"cache uses {mb:.1f} MB")  # fmt: skip


# item 7: checkpoints
def _verify_checkpoint(lab: Lab, data: bytes, address_space: int) -> Verdict:
    art = lab.artifact("weights")
    src = lab.root / "build" / art.filename
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(data)
    publish(art, src, lab.mirror)
    r = _pull(lab, "-a", "weights")
    if r.rc != 0:  # refused at download time: as good
        return Verdict(r, frozenset({5, 6}), True, "refused by pull")
    r = lab.picozoo("verify", MODEL, "--deep", timeout=60, address_space=address_space)
    ok = r.seconds < 5 and r.peak_rss_mb < 400
    return Verdict(r, frozenset({6}), ok, f"{len(data)}-byte pickle, verify --deep "
                   f"{r.seconds:.1f} s, peak RSS {r.peak_rss_mb:.0f} MB")  # fmt: skip


@scenario("nested-tuple pickle (.pdparams)", 7, quick=False)
def nested_pickle(lab: Lab) -> Verdict:
    return _verify_checkpoint(lab, nested_tuple_pickle(), address_space=GIB)


@scenario("pickle declaring a 3 GB buffer", 7, quick=False)
def huge_buffer(lab: Lab) -> Verdict:
    return _verify_checkpoint(lab, huge_buffer_pickle(), address_space=6 * GIB)


# item 8: permissions
@scenario("unpacked folder permissions", 8)
def permissions(lab: Lab) -> Verdict:
    lab.publish_inference()
    r = _pull(lab)
    closed = []
    for sub in ("blobs", "unpacked", "files"):
        for p in (lab.cache / sub).rglob("*"):
            mode = p.lstat().st_mode
            need = 0o005 if p.is_dir() else 0o004
            if not p.is_symlink() and mode & need != need:
                closed.append(f"{p.relative_to(lab.cache)} {oct(mode & 0o777)}")
    note = f"not readable by others: {closed[0]}" if closed else "others can read everything"
    return Verdict(r, frozenset({0}), not closed, note)


# item 9: planted symlinks
def _plant(lab: Lab, link: Path) -> None:
    lab.publish_inference()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(lab.victim)


@scenario("symlink planted at the mutex path", 9)
def symlink_mutex(lab: Lab) -> Verdict:
    _plant(lab, lab.store().mutex_path(lab.artifact("inference").url))
    return Verdict(_pull(lab), frozenset({6}))


@scenario("symlink planted at the .part path", 9)
def symlink_part(lab: Lab) -> Verdict:
    """With resume validators beside it, so a download that follows the link appends to it."""
    art = lab.artifact("inference")
    part = lab.store().part_path(art.url)
    _plant(lab, part)
    with serve_directory(lab.mirror) as srv:
        src = f"{srv.url}/{art.url_path}"
        with urllib.request.urlopen(urllib.request.Request(src, method="HEAD")) as head:
            etag = head.headers["ETag"]
        meta = part.with_name(part.name + ".json")
        meta.write_text(json.dumps({"source": src, "etag": etag}))
        r = _pull(lab, mirror=srv.url)
    return Verdict(r, frozenset({6}))


# item 10: cache rm --all during a download
@scenario("cache rm --all during a download", 10, quick=False)
def rm_during_download(lab: Lab) -> Verdict:
    tar = lab.publish_inference(nbytes=600_000)
    size = tar.stat().st_size
    part = lab.store().part_path(lab.artifact("inference").url)
    with serve_directory(lab.mirror) as srv:
        srv.rate = size / 4  # ~4 s
        pull = lab.spawn("pull", MODEL, "--mirror", srv.url)
        deadline = time.monotonic() + 15
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        rm = lab.picozoo("cache", "rm", "--all")
        _, err = pull.communicate(timeout=120)
        sent = srv.total_bytes(lab.artifact("inference").url_path)
    entry = lab.store().lookup(lab.artifact("inference"))
    ok = pull.returncode == 0 and entry is not None and entry.sha256 == sha256_file(tar)
    note = f"pull exit {pull.returncode}, {sent}/{size} bytes sent"
    if pull.returncode:
        note += f": {err.decode(errors='replace').strip().splitlines()[-1:]}"
    return Verdict(rm, frozenset({0}), ok and sent == size, note)


# item 11: read-only cache
@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[bool]:
    """A tmpfs mounted at ``path`` with ``options`` (e.g. ``size=16k``, ``ro,size=64k``) for the
    ``with`` body, as root; yields False where mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True).returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextmanager
def read_only_dir(path: Path) -> Iterator[str]:
    """Make ``path`` a read-only folder for the ``with`` body; yields how: a read-only tmpfs
    mounted there (as root, where permissions do not stop writes), else ``chmod 555``."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        cmd = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)]
        if subprocess.run(cmd, capture_output=True, check=False).returncode == 0:
            try:
                yield "ro tmpfs"
            finally:
                subprocess.run(["umount", str(path)], check=False)
            return
        yield "cannot mount (root ignores chmod)"
        return
    path.chmod(0o555)
    try:
        yield "chmod 555"
    finally:
        path.chmod(0o755)


@scenario("read-only cache", 11)
def read_only_cache(lab: Lab) -> Verdict:
    lab.publish_inference()
    with read_only_dir(lab.cache) as how:
        r = _pull(lab)
    return Verdict(r, frozenset({12}), not how.startswith("cannot"), how)


# items 12-13: hostile registries
def _registry(lab: Lab, text: str) -> Path:
    p = lab.root / "registry.yaml"
    p.write_text(text)
    return p


@scenario("YAML alias bomb registry", 12)
def yaml_bomb(lab: Lab) -> Verdict:
    reg = _registry(lab, alias_bomb())
    r = lab.picozoo("--registry", str(reg), "list", timeout=60, address_space=GIB)
    return Verdict(r, frozenset({3}), r.seconds < 1.5, f"{reg.stat().st_size}-byte registry")


ESCAPE_URL = "https://paddledet.bj.bcebos.com/models/../../secret.pdparams"


def _escape_setup(lab: Lab) -> tuple[Path, Path]:
    (lab.mirror / "pp" / "models").mkdir(parents=True, exist_ok=True)  # so '..' can resolve
    make_pdparams(lab.mirror / "secret.pdparams")
    with open(lab.mirror / "secret.pdparams", "ab") as f:
        f.write(b"SECRET-OUTSIDE-THE-MIRROR")
    return _registry(lab, registry_text(ESCAPE_URL)), lab.mirror / "pp"


@scenario("'..' URL with a file:// mirror", 13)
def dotdot_file(lab: Lab) -> Verdict:
    reg, pp = _escape_setup(lab)
    r = lab.picozoo("--registry", str(reg), "pull", "m", "-a", "weights", "--mirror", pp.as_uri())
    leaked = lab.cache_holds(b"SECRET-OUTSIDE-THE-MIRROR")
    return Verdict(r, frozenset({3}), not leaked, "the file was cached" if leaked else "")


@scenario("'..' URL with an http mirror", 13)
def dotdot_http(lab: Lab) -> Verdict:
    reg, _pp = _escape_setup(lab)
    with serve_directory(lab.mirror) as srv:
        r = lab.picozoo("--registry", str(reg), "pull", "m", "-a", "weights",
                        "--mirror", f"{srv.url}/pp")  # fmt: skip
        asked = sorted(srv.stats.requests)
    return Verdict(r, frozenset({3}), not asked, f"server asked for {asked}" if asked else "")


@scenario("duplicate YAML keys", 13)
def duplicate_keys(lab: Lab) -> Verdict:
    text = registry_text("https://h.example/a.pdparams").replace("{id: m,", "{id: m, id: n,")
    r = lab.picozoo("--registry", str(_registry(lab, text)), "list")
    return Verdict(r, frozenset({3}))


@scenario(".nan claim", 13)
def nan_claim(lab: Lab) -> Verdict:
    text = registry_text("https://h.example/a.pdparams", claims="{map: .nan}")
    r = lab.picozoo("--registry", str(_registry(lab, text)), "list")
    return Verdict(r, frozenset({3}))


# item 14: redirects, bad settings, odd tar members, unwritable output
@scenario("redirect to file://", 14)
def redirect_to_file(lab: Lab) -> Verdict:
    secret = lab.outside / "secret.tar"
    shutil.copyfile(lab.publish_inference(), secret)
    with open(secret, "ab") as f:
        f.write(b"SECRET-OUTSIDE-THE-MIRROR")

    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        reply(h, 302, headers={"Location": secret.as_uri()})

    with hostile_server(respond) as (url, _seen, _stop):
        r = _pull(lab, mirror=url)
    leaked = lab.cache_holds(b"SECRET-OUTSIDE-THE-MIRROR")
    return Verdict(r, frozenset({4, 5}), not leaked, "followed" if leaked else "")


@scenario("redirect loop", 14)
def redirect_loop(lab: Lab) -> Verdict:
    def respond(h: BaseHTTPRequestHandler, n: int) -> None:
        reply(h, 302, headers={"Location": h.path})

    with hostile_server(respond) as (url, seen, _stop):
        r = _pull(lab, mirror=url, env={"PICOZOO_BACKOFF": "0"})
    return Verdict(r, frozenset({4}), r.seconds < 20, f"{len(seen)} requests")


def _bad_timeout(value: str) -> Callable[[Lab], Verdict]:
    return lambda lab: Verdict(_pull(lab, env={"PICOZOO_TIMEOUT": value}), frozenset({2}))


for _t in ("0", "-1", "inf", "abc"):
    scenario(f"PICOZOO_TIMEOUT={_t}", 14)(_bad_timeout(_t))


def _odd_tar(extra: list[dict[str, Any]]) -> Callable[[Lab], Verdict]:
    def run(lab: Lab) -> Verdict:
        art = lab.artifact("inference")
        top = _top(art)
        members = _inference_members(top) + [
            {**m, "name": f"{top}/{m['name']}", "linkname": f"{top}/d" if "linkname" in m else ""}
            for m in extra
        ]
        (lab.root / "build").mkdir(exist_ok=True)
        publish(art, make_tarball(lab.root / "build" / art.filename, members), lab.mirror)
        return Verdict(_pull(lab), frozenset({5}))

    return run


scenario("tar hard link to a directory", 14)(
    _odd_tar([{"name": "d", "type": tarfile.DIRTYPE, "mode": 0o755},
              {"name": "l", "type": tarfile.LNKTYPE, "linkname": "d"}])
)  # fmt: skip
scenario("tar file then a child of it", 14)(
    _odd_tar([{"name": "a", "data": b"file"}, {"name": "a/b", "data": b"child"}])
)


@scenario("unwritable --out", 14)
def unwritable_out(lab: Lab) -> Verdict:
    result = ROOT / "docs" / "bench-example.json"
    ro = lab.outside / "read-only"
    with read_only_dir(ro) as how:
        r = lab.picozoo("report", "show", str(result), "--report", "md", "--out", str(ro / "r.md"))
    return Verdict(r, frozenset({2, 12}), not how.startswith("cannot"), how)


# item 15: ONNX external data
@scenario("ONNX external data symlinked out of the model folder", 15)
def onnx_external_symlink(lab: Lab) -> Verdict:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(1024, dtype="float32"), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024])],
        initializer=[w],
    )
    folder = lab.root / "model"
    folder.mkdir()
    onnx.save_model(
        helper.make_model(graph),
        str(folder / "model.onnx"),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    secret = lab.outside / "secret.bin"
    os.replace(folder / "weights.bin", secret)
    (folder / "weights.bin").symlink_to(secret)
    r = lab.picozoo("inspect", str(folder / "model.onnx"), timeout=120)
    return Verdict(r, frozenset({2, 5, 6}))


# -- more scenarios: benchmarks/attacks/*.py ----------------------------------------------------
def _load_scenario_modules() -> None:
    """Each ``benchmarks/attacks/*.py`` defines ``register(suite)``, which adds its scenarios
    with ``suite.scenario(...)`` (this module is passed in, so that running this file as a
    script and importing it share one ``SCENARIOS``)."""
    import importlib.util

    this = sys.modules[__name__]
    for path in sorted((ROOT / "benchmarks" / "attacks").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"attacks_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.register(this)


_load_scenario_modules()


# -- running and reporting ----------------------------------------------------------------------
@dataclass
class Outcome:
    scenario: str
    item: str  #: issue.item, e.g. "9.14"
    exit_code: int | None
    expected: list[int]
    stderr: str
    bytes_outside: int
    touched_outside: list[str] = field(default_factory=list)
    seconds: float = 0.0
    held: bool = False
    note: str = ""

    def describe(self) -> str:
        return (
            f"{self.scenario}: exit {self.exit_code} (expected {self.expected}), stderr "
            f"{self.stderr}, {self.bytes_outside} bytes outside the cache "
            f"{self.touched_outside or ''}, {self.note}"
        )


def _signalled(run: Run) -> bool:
    """Ended by a signal (130: SIGINT, 143: SIGTERM) and said so in its one last line, which
    is not an error line (``picozoo: interrupted ...``, ``picozoo: terminated ...``)."""
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("picozoo: ")]
    said = ("picozoo: interrupted", "picozoo: terminated")
    return (
        run.rc in (130, 143)
        and run.error_lines == 0
        and sum(ln.startswith(said) for ln in lines) == 1
    )


def run_scenario(s: Scenario, root: Path) -> Outcome:
    """Run one scenario in ``root`` (a fresh empty folder) and judge it."""
    lab = Lab(root)
    try:
        v = s.fn(lab)
    except Exception as e:  # a broken setup is a failed scenario, never a crash of the suite
        v = Verdict(Run((), None, "", "", 0, 0), frozenset(), False, f"setup failed: {e!r}")
    written, touched = lab.outside_changes() if lab.began else (0, [])
    run = v.run
    one_line = not run.traceback and (run.rc == 0 or run.error_lines == 1 or _signalled(run))
    held = run.rc in v.expect and one_line and v.ok and written == 0 and not touched
    note = v.note if run.rc is not None or not run.args else f"killed at {run.seconds:.0f} s"
    first_error = next((ln for ln in run.stderr.splitlines() if "error:" in ln), "")
    if not held and first_error:
        note = f"{note}; {first_error[:160]}".strip("; ")
    return Outcome(
        s.name,
        f"{s.issue}.{s.item}",
        run.rc,
        sorted(v.expect),
        run.stderr_shape,
        written,
        touched,
        round(sum(r.seconds for r in lab.runs), 2),
        held,
        note,
    )


def markdown(outcomes: list[Outcome]) -> str:
    rows = [
        "| issue.item | scenario | exit (expected) | stderr | bytes outside cache | s | verdict "
        "| note |",
        "|--:|---|---|---|--:|--:|---|---|",
    ]
    for o in outcomes:
        exp = "/".join(map(str, o.expected))
        code = "killed" if o.exit_code is None else str(o.exit_code)
        touched = f" ({len(o.touched_outside)} files touched)" if o.touched_outside else ""
        note = o.note.replace("|", "/")
        rows.append(
            f"| {o.item} | {o.scenario} | {code} ({exp}) | {o.stderr} | {o.bytes_outside}"
            f"{touched} | {o.seconds:.1f} | {'held' if o.held else '**FAILED**'} | {note} |"
        )
    held = sum(o.held for o in outcomes)
    total = sum(o.bytes_outside for o in outcomes)
    rows.append(f"\n{held}/{len(outcomes)} held; {total} bytes written outside the cache.")
    return "\n".join(rows)


def selected(patterns: list[str], quick: bool) -> list[Scenario]:
    out = [s for s in SCENARIOS if not quick or s.quick]
    if patterns:
        out = [s for s in out if any(p.lower() in s.name.lower() for p in patterns)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", dest="patterns", action="append", default=[], metavar="TEXT",
                    help="only scenarios whose name contains TEXT (repeatable)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="only the scenarios that take < 2 s")
    ap.add_argument("--json", metavar="FILE", help="also write the outcomes as JSON")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args(argv)
    chosen = selected(args.patterns, args.quick)
    if args.list:
        for s in chosen:
            print(f"{s.issue}.{s.item:<2}  {'quick' if s.quick else 'slow '}  {s.name}")
        return 0
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="picozoo-attack-") as tmp:
        for i, s in enumerate(chosen):
            o = run_scenario(s, Path(tmp) / f"s{i:02d}")
            print(f"{'held  ' if o.held else 'FAILED'} {o.scenario} ({o.seconds:.1f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
            outcomes.append(o)
    print(markdown(outcomes))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    return 0 if all(o.held for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
