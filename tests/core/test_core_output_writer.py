"""The output writer (picozoo.atomic.write_output) against what a user's ``--out`` may be: a
new path, a file, a symlink, a character device, a FIFO, a folder; and the store's atomic
writer, which never renames over what is not a regular file (issue 17, item 1).

Devices are nodes made here with mknod, never the system's ``/dev/null`` or ``/dev/full``: a
writer that renames over its target (the bug) would replace them for the whole machine."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from picozoo.atomic import atomic_write_bytes, write_output
from picozoo.errors import ExitCode, TamperedStoreError

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "docs" / "bench-example.json"


def test_a_new_path_and_a_file_are_written_atomically(tmp_path: Path) -> None:
    assert write_output(tmp_path / "new" / "r.md", b"one") == tmp_path / "new" / "r.md"
    write_output(tmp_path / "new" / "r.md", b"two")
    assert (tmp_path / "new" / "r.md").read_bytes() == b"two"
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["r.md"]  # no temp file left


def test_a_symlink_is_written_through_and_kept(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "today.md").write_bytes(b"old")
    link = tmp_path / "latest.md"
    link.symlink_to("runs/today.md")
    assert write_output(link, b"new") == (tmp_path / "runs" / "today.md").resolve()
    assert link.is_symlink() and (tmp_path / "runs" / "today.md").read_bytes() == b"new"
    dangling = tmp_path / "next.md"
    dangling.symlink_to("runs/tomorrow.md")
    write_output(dangling, b"made")  # as `> link` does: the target is created
    assert dangling.is_symlink() and (tmp_path / "runs" / "tomorrow.md").read_bytes() == b"made"


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_character_device_is_written_in_place_never_replaced(tmp_path: Path) -> None:
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    write_output(node, b"x" * 100_000)
    st = os.lstat(node)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    full = tmp_path / "full"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full: every write ENOSPC
    with pytest.raises(OSError) as e:
        write_output(full, b"x")
    assert e.value.errno == errno.ENOSPC and stat.S_ISCHR(os.lstat(full).st_mode)


def test_a_fifo_with_a_reader_gets_the_bytes_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    deadline = time.monotonic() + 10
    while True:  # the reader may not have opened it yet
        try:
            write_output(fifo, b"y" * 300_000)  # more than a pipe buffer
            break
        except OSError as e:
            assert e.errno == errno.ENXIO and time.monotonic() < deadline
            time.sleep(0.02)
    reader.join(10)
    assert got == [b"y" * 300_000] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_fifo_nobody_reads_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(OSError, match="no process is reading this FIFO") as e:
        write_output(fifo, b"x")
    assert e.value.errno == errno.ENXIO and time.monotonic() - t0 < 2
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="this is a folder"):
        write_output(tmp_path, b"x")
    assert tmp_path.is_dir()


def test_the_store_writer_never_renames_over_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "ref.json"
    os.mkfifo(fifo)
    with pytest.raises(TamperedStoreError, match="not a regular file"):
        atomic_write_bytes(fifo, b"{}")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["ref.json"]


def _show(out: Path, *, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    """``report show --out OUT``; a report that cannot be written is saved aside in
    ``OUT``'s folder's ``aside/`` (its ``$TMPDIR``)."""
    cmd = [sys.executable, "-m", "picozoo", "report", "show", str(RESULT), "--format", "md"]
    aside = out.parent / "aside"
    aside.mkdir(exist_ok=True)
    return subprocess.run(
        [*cmd, "--out", str(out)], stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, timeout=120, check=False, env={**os.environ, "TMPDIR": str(aside)},
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_report_out_onto_a_device_node_keeps_the_node(tmp_path: Path) -> None:
    node = tmp_path / "dev"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    r = _show(node)  # /dev/full: ENOSPC, exit 12, the report saved aside
    assert r.returncode == ExitCode.DISK and stat.S_ISCHR(os.lstat(node).st_mode), r.stderr
    assert r.stderr.count("picozoo: error:") == 1 and "No space left on device" in r.stderr
    os.unlink(node)
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    r = _show(node)
    assert r.returncode == 0 and stat.S_ISCHR(os.lstat(node).st_mode), r.stderr


@pytest.mark.slow
def test_report_out_to_proc_self_fd_1_writes_stdout(tmp_path: Path) -> None:
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    r = _show(link)  # stdout is a pipe
    assert r.returncode == 0 and r.stdout.startswith("| Model |") and link.is_symlink()
    with open(tmp_path / "f.txt", "w") as f:  # stdout is a file: written in place
        r = _show(link, stdout=f.fileno())
    assert r.returncode == 0 and (tmp_path / "f.txt").read_text().startswith("| Model |")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aside", "f.txt", "stdout"]


@pytest.mark.slow
def test_report_out_to_a_fifo_nobody_reads_says_so(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = _show(fifo)
    assert r.returncode == ExitCode.USAGE and "no process is reading this FIFO" in r.stderr
    assert "Traceback" not in r.stderr and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (saved,) = (tmp_path / "aside").iterdir()
    assert saved.read_text().startswith("| Model |") and f"saved in {saved}" in r.stderr
