"""How fast do `picozoo --help` and `picozoo list` start, next to a bare `python -c pass`?

Run:  python benchmarks/bench_startup.py [--repeat 20]

Prints the median wall time of each command (fresh process each time) and its ratio to the
bare interpreter start, measured side by side in one run (interleaved).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "picozoo --help": [sys.executable, "-m", "picozoo", "--help"],
    "picozoo list": [sys.executable, "-m", "picozoo", "list", "--format", "csv"],
    "picozoo show": [sys.executable, "-m", "picozoo", "show", "picodet-s-416", "--format", "json"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(args.repeat):
        for name, cmd in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["python -c pass"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:16s} median {med * 1000:7.1f} ms   ratio to bare python {med / base:5.2f}")


if __name__ == "__main__":
    main()
