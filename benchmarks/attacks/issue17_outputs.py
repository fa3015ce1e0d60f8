"""Issue 17, outputs and processes: the output writer against devices, FIFOs and symlinks (item
1), thread counts (11), signals to ``bench`` (12), ``convert --out`` names (13), and the one
error path (14, 15: a cache that is a file, non-finite durations, a full disk).

Outputs a scenario chooses live in the lab's ``scratch/`` (as ``--out`` does for a user), so
the harness' "0 bytes outside the cache" still watches everything else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

#: A saved result to re-render (committed with the docs).
RESULT = Path(__file__).resolve().parents[2] / "docs" / "bench-example.json"


def register(suite: ModuleType) -> None:
    scenario, Verdict = suite.scenario, suite.Verdict

    def show(lab: Any, out: Path, **kw: Any) -> Any:
        return lab.picozoo("report", "show", str(RESULT), "--format", "md", "--out", str(out), **kw)

    # -- item 1: the output writer never renames over what is not a regular file -------------
    @scenario("report --out onto a character device", 1, issue=17)
    def out_char_device(lab: Any) -> Any:
        node, how = device(lab, "null", 3)
        r = show(lab, node)
        kept = stat.S_ISCHR(os.stat(node).st_mode)
        return Verdict(r, frozenset({0}), kept, f"{how}; still a device: {kept}")

    @scenario("report --out a symlink to /proc/self/fd/1", 1, issue=17)
    def out_proc_stdout(lab: Any) -> Any:
        link = lab.scratch / "stdout"
        link.symlink_to("/proc/self/fd/1")
        r = show(lab, link)
        ok = link.is_symlink() and r.stdout.startswith("| Model |")
        return Verdict(r, frozenset({0}), ok, f"link kept, report on stdout: {ok}")

    @scenario("report --out a symlink to a file", 1, issue=17)
    def out_symlink_file(lab: Any) -> Any:
        runs = lab.scratch / "runs"
        runs.mkdir()
        (runs / "today.md").write_text("old\n")
        link = lab.scratch / "latest.md"
        link.symlink_to(runs / "today.md")
        r = show(lab, link)
        ok = link.is_symlink() and (runs / "today.md").read_text().startswith("| Model |")
        return Verdict(r, frozenset({0}), ok, f"written through, link kept: {ok}")

    @scenario("report --out a FIFO with a reader", 1, issue=17)
    def out_fifo_reader(lab: Any) -> Any:
        fifo = lab.scratch / "fifo"
        os.mkfifo(fifo)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
        reader.start()
        r = show(lab, fifo, timeout=30)
        reader.join(10)
        ok = stat.S_ISFIFO(os.lstat(fifo).st_mode) and b"".join(got).startswith(b"| Model |")
        return Verdict(r, frozenset({0}), ok, f"still a FIFO, the reader got the report: {ok}")

    @scenario("report --out a FIFO nobody reads", 1, issue=17)
    def out_fifo_no_reader(lab: Any) -> Any:
        fifo = lab.scratch / "fifo"
        os.mkfifo(fifo)
        r = show(lab, fifo, timeout=30)
        ok = r.rc is not None and stat.S_ISFIFO(os.lstat(fifo).st_mode)
        return Verdict(r, frozenset({2}), ok, f"{r.seconds:.1f} s, no hang, still a FIFO")

    @scenario("report --out a full device (ENOSPC)", 14, issue=17)
    def out_dev_full(lab: Any) -> Any:
        node, how = device(lab, "full", 7)
        r = show(lab, node)
        kept = stat.S_ISCHR(os.stat(node).st_mode)
        return Verdict(r, frozenset({12}), kept, f"{how}; still a device: {kept}")

    # -- item 11: thread counts are bounded -------------------------------------------------
    def threads(command: str) -> Any:
        def run(lab: Any) -> Any:
            model = tiny_model(lab)
            args = {
                "bench": ("bench", str(model)),
                "infer": ("infer", str(model), str(model)),
                "eval": ("eval", str(model), "--coco", str(lab.root)),
            }[command]
            r = lab.picozoo(*args, "--threads", "100000", timeout=30)
            return Verdict(r, frozenset({2}), r.seconds < 15, f"{r.seconds:.1f} s")

        return run

    for _command in ("bench", "infer", "eval"):
        scenario(f"{_command} --threads 100000", 11, issue=17)(threads(_command))

    # -- item 12: signals reach the bench worker --------------------------------------------
    def signalled(signum: int, expect: int, *, ignored: bool = False) -> Any:
        def run(lab: Any) -> Any:
            model = tiny_model(lab)
            out = lab.scratch / "r.md"
            args = ("bench", str(model), "--min-time", "120", "--warmup", "1", "--out", str(out))
            r, workers_left, note = signal_bench(suite, lab, args, signum, ignored=ignored)
            ok = not workers_left and not out.exists()
            return Verdict(r, frozenset({expect}), ok, f"{note}; worker left: {workers_left}")

        return run

    scenario("SIGTERM to bench while measuring", 12, quick=False, issue=17)(
        signalled(signal.SIGTERM, 143)
    )
    scenario("SIGINT to bench while measuring", 12, quick=False, issue=17)(
        signalled(signal.SIGINT, 130)
    )
    scenario("SIGINT to a background bench (SIGINT ignored)", 12, quick=False, issue=17)(
        signalled(signal.SIGINT, 130, ignored=True)
    )

    # -- item 13: convert --out names -------------------------------------------------------
    @scenario("two convert X.onnx --to mnn --out o", 13, quick=False, issue=17)
    def convert_collide(lab: Any) -> Any:
        from support.tiny_detector import build_tiny_detector

        folder = lab.root / "onnx"
        folder.mkdir()
        a = build_tiny_detector(folder / "a.onnx", seed=0)
        b = build_tiny_detector(folder / "b.onnx", seed=1)
        out = lab.scratch / "o"
        out.mkdir()
        (out / "a.mnn").write_bytes(b"the user's own file")
        r1 = lab.picozoo("convert", str(a), "--to", "mnn", "--out", str(out), timeout=120)
        r = lab.picozoo("convert", str(b), "--to", "mnn", "--out", str(out), timeout=120)
        lab.picozoo("convert", str(b), "--to", "mnn", "--out", str(out), timeout=120)  # again
        mnn = sorted(p.name for p in out.glob("*.mnn"))
        kept = (out / "a.mnn").read_bytes() == b"the user's own file"
        ok = r1.rc == 0 and kept and len(mnn) == 3 and "b.mnn" in mnn
        return Verdict(r, frozenset({0}), ok, f"{mnn}; the user's a.mnn kept: {kept}")

    # -- items 14/15: one line instead of a traceback ---------------------------------------
    @scenario("PICOZOO_CACHE is a file", 14, issue=17)
    def cache_is_file(lab: Any) -> Any:
        f = lab.scratch / "not-a-folder"
        f.write_text("x")
        r = lab.picozoo("cache", "ls", env={"PICOZOO_CACHE": str(f)})
        return Verdict(r, frozenset({2, 12}), f.read_text() == "x")

    def convert_on(options: str) -> Any:
        def run(lab: Any) -> Any:
            model = tiny_model(lab)
            with tmpfs(lab.cache, options) as how:
                r = lab.picozoo("convert", str(model), "--to", "mnn", timeout=120)
            return Verdict(r, frozenset({12}), not how.startswith("cannot"), how)

        return run

    scenario("convert onto a full cache disk (ENOSPC)", 14, issue=17)(convert_on("size=24k"))
    scenario("convert onto a read-only cache (EROFS)", 14, issue=17)(convert_on("ro,size=1m"))

    for _option, _value, _item in (("--timeout", "nan", 14), ("--min-time", "nan", 15),
                                   ("--min-time", "inf", 15)):  # fmt: skip
        scenario(f"bench {_option} {_value}", _item, issue=17)(non_finite(suite, _option, _value))


def device(lab: Any, name: str, minor: int) -> tuple[Path, str]:
    """A character device node ``scratch/NAME`` with ``/dev/NAME``'s numbers (1, ``minor``),
    made with mknod (root); else a symlink to ``/dev/NAME``. Never the system's own node: a
    writer that renames over its ``--out`` (as picozoo once did) would replace it."""
    node = lab.scratch / name
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        return node, f"mknod c 1 {minor}"
    except PermissionError:
        node.symlink_to(f"/dev/{name}")
        return node, f"symlink to /dev/{name} (not root: no mknod)"


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[str]:
    """A tmpfs mounted at ``path`` with ``options`` for the ``with`` body (root); yields how,
    or ``cannot mount ...`` (the scenario is then skipped)."""
    path.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True, check=False).returncode:
        yield "cannot mount a tmpfs (needs root)"
        return
    try:
        yield f"tmpfs {options}"
    finally:
        subprocess.run(["umount", str(path)], check=False)


def tiny_model(lab: Any) -> Path:
    """A tiny PicoDet-shaped ONNX in the lab (outside the cache, written before the run)."""
    from support.tiny_detector import build_tiny_detector

    path = lab.root / "models" / "tiny.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build_tiny_detector(path)
    return Path(path)


def non_finite(suite: ModuleType, option: str, value: str) -> Any:
    def run(lab: Any) -> Any:
        r = lab.picozoo("bench", str(tiny_model(lab)), option, value, timeout=30)
        return suite.Verdict(r, frozenset({2}), r.seconds < 15, f"{r.seconds:.1f} s")

    return run


def bench_workers(cache: Path) -> list[int]:
    """Pids of ``picozoo.bench.worker`` processes started for this lab (their environment
    names its cache)."""
    pids = []
    needle = f"PICOZOO_CACHE={cache}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"picozoo.bench.worker" in cmdline and needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def signal_bench(
    suite: ModuleType, lab: Any, args: tuple[str, ...], signum: int, *, ignored: bool
) -> tuple[Any, list[int], str]:
    """Start ``picozoo *args``, wait for its worker, send ``signum`` to picozoo alone (not its
    group: as ``kill PID`` does), and reap it. ``ignored``: start it with SIGINT ignored, as a
    shell starts a background job. Returns (the run, workers still alive 1 s later, a note)."""
    lab.begin()

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    t0 = time.perf_counter()
    with open(lab.scratch / "out.txt", "w+b") as out, open(lab.scratch / "err.txt", "w+b") as err:
        proc = subprocess.Popen(
            suite._command(args),
            stdout=out,
            stderr=err,
            env=lab.env,
            cwd=lab.root,
            preexec_fn=ignore_sigint if ignored else None,
        )
        deadline = time.monotonic() + 60
        while not bench_workers(lab.cache) and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # the worker is measuring
        sent = time.perf_counter()
        proc.send_signal(signum)
        try:
            rc: int | None = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        seconds = time.perf_counter() - t0
        ended = time.perf_counter() - sent
        time.sleep(1.0)
        left = bench_workers(lab.cache)
        for pid in left:  # never leave one behind, held or not
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        out.seek(0)
        err.seek(0)
        run = suite.Run(
            tuple(args),
            rc,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            seconds,
            0.0,
        )
    (lab.scratch / "out.txt").unlink()
    (lab.scratch / "err.txt").unlink()
    lab.runs.append(run)
    return run, left, f"ended {ended:.1f} s after the signal"


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it through benchmarks/attack_suite.py -k NAME")
