"""Pull and hashing throughput on loopback: picozoo vs curl and sha256sum, side by side.

Builds a ~200 MB random file, serves it from a real HTTP server in a subprocess
(tests/support/http_server.py, the same one the tests use), then, interleaved for each repeat:

* ``picozoo.fetch.pull`` of an artifact pointing at that file into a fresh temp cache
  (streamed to ``.part``, sha256 while streaming, lock file, atomic rename), vs
  ``curl -s -o`` of the same URL;
* ``picozoo.atomic.sha256_file`` vs ``sha256sum`` on the same file (page cache warm for both).

Prints medians and ratios (picozoo / reference; 1.0 = as fast, >1 = slower).

    python benchmarks/bench_pull.py [--size-mb 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # support.*: needs nothing beyond [all]

from support.store import pull  # noqa: E402

from picozoo.atomic import sha256_file  # noqa: E402
from picozoo.hub.registry import Artifact  # noqa: E402

URL_PATH = "bench/random-200mb.bin"


def make_file(path: Path, size_mb: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(1 << 20))


def start_server(root: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "http_server.py"), str(root)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit("server did not start")
    return proc, url


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("curl") or not shutil.which("sha256sum"):
        raise SystemExit("needs curl and sha256sum on PATH")

    work = Path(tempfile.mkdtemp(prefix="picozoo-bench-"))
    try:
        src = work / "srv" / URL_PATH
        make_file(src, args.size_mb)
        size = src.stat().st_size
        server, url = start_server(work / "srv")
        art = Artifact("bench", "weights", f"https://paddledet.bj.bcebos.com/{URL_PATH}")
        expected = sha256_file(src)
        results: dict[str, list[float]] = {k: [] for k in ("pull", "curl", "hash", "sha256sum")}
        try:
            # warm-up: page cache, server, and picozoo's one-time imports (requests)
            subprocess.run(["curl", "-s", "-o", os.devnull, f"{url}/{URL_PATH}"], check=True)
            pull(art, cache_dir=work / "cache-warm", mirrors=url)
            shutil.rmtree(work / "cache-warm")
            for i in range(args.repeats):
                cache = work / f"cache-{i}"
                out = work / f"curl-{i}.bin"

                def do_pull(cache: Path = cache) -> None:
                    pull(art, cache_dir=cache, mirrors=url)

                def do_curl(out: Path = out) -> None:
                    subprocess.run(["curl", "-s", "-o", str(out), f"{url}/{URL_PATH}"], check=True)

                order = [("pull", do_pull), ("curl", do_curl)]
                for name, fn in order if i % 2 == 0 else order[::-1]:
                    results[name].append(timed(fn))
                assert out.stat().st_size == size
                assert sha256_file(pull(art, cache_dir=cache, offline=True)) == expected
                shutil.rmtree(cache)
                out.unlink()
                hashers = [
                    ("hash", lambda: sha256_file(src)),
                    ("sha256sum", lambda: subprocess.run(
                        ["sha256sum", str(src)], check=True, capture_output=True)),
                ]  # fmt: skip
                for name, fn in hashers if i % 2 == 0 else hashers[::-1]:
                    results[name].append(timed(fn))
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = size / 1e6
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"file: {mb:.0f} MB random bytes, loopback HTTP server (subprocess), "
          f"{args.repeats} interleaved repeats, medians")  # fmt: skip
    print(f"{'what':<32}{'median s':>10}{'MB/s':>10}")
    rows = [
        ("picozoo pull (download+sha256)", "pull"),
        ("curl -s -o", "curl"),
        ("picozoo sha256_file", "hash"),
        ("sha256sum", "sha256sum"),
    ]
    for label, k in rows:
        print(f"{label:<32}{med[k]:>10.3f}{mb / med[k]:>10.0f}")
    print(f"ratio pull / curl       = {med['pull'] / med['curl']:.2f}  (time; 1.00 = as fast)")
    print(f"ratio hash / sha256sum  = {med['hash'] / med['sha256sum']:.2f}  (time; 1.00 = as fast)")
    both = med["curl"] + med["sha256sum"]
    print(
        f"ratio pull / (curl + sha256sum) = {med['pull'] / both:.2f}  "
        "(curl neither hashes nor verifies; this is the like-for-like pair)"
    )
    print(f"load average during run: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
