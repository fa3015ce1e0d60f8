"""The CLI surface: help texts, list/show output, one-line errors and exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from picozoo.cli import COMMANDS, cli


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess (exit codes + stream separation)."""
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def all_commands() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, f"{' '.join([*path, name])} failed to load"
                walk(sub, [*path, name])

    walk(cli, [])
    return paths


def test_every_command_has_help_with_an_example() -> None:
    paths = all_commands()
    assert {p[0] for p in paths if p} == set(COMMANDS)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example: picozoo" in result.output, (
            f"`picozoo {' '.join(path)} --help` has no example"
        )
        assert "not implemented" not in result.output


@pytest.mark.slow
def test_help_and_list_import_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from picozoo.cli import main\n"
        "for argv in (['--help'], ['list', '--format', 'csv']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "heavy = {'paddle', 'paddle2onnx', 'onnx', 'onnxruntime', 'onnxsim', 'pandas',\n"
        "         'matplotlib', 'requests', 'numpy'}\n"
        "print(sorted(heavy & set(sys.modules)), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_list_formats() -> None:
    r = run("list", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 33
    s416 = next(x for x in rows if x["id"] == "picodet-s-416")
    assert (s416["map"], s416["params_m"], s416["latency_cpu_ms"]) == (32.5, 1.18, 6.6)

    r = run("list", "--family", "picodet", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [t["id"] for t in table][:2] == ["picodet-xs-320", "picodet-xs-416"]
    assert len(table) == 10

    r = run("list", "--format", "md", "--filter", "map>=39", "--filter", "cpu<30", "--sort", "-map")
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("| Model | Input size | mAP 0.5:0.95")
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["picodet-l-416"]

    r = run("list", "--family", "picodet", "--sort", "cpu", "--format", "json")
    lat = [x["latency_cpu_ms"] for x in json.loads(r.stdout) if x["latency_cpu_ms"] is not None]
    assert lat == sorted(lat) and len(lat) == 9

    r = run("list")
    assert r.returncode == 0 and "picodet-legacy-r18-640" in r.stdout and "YOLOv5s" not in r.stderr


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["show", "picodet-s416"], 2, "did you mean 'picodet-s-416'"),
        (["list", "--filter", "speed>3"], 2, "unknown filter field 'speed'"),
        (["list", "--filter", "map>high"], 2, "is not a number"),
        (["list", "--family", "yolo"], 2, "unknown family 'yolo'"),
        (["list", "--sort", "colour"], 2, "unknown sort field"),
        (["bench", "--bogus"], 2, "No such option '--bogus'"),  # click's usage errors too
        (["infer"], 2, "Missing argument 'MODEL|PATH'"),
        (["list", "--format", "xml"], 2, "Invalid value for '--format'"),
        (["cache", "rm", "--all", "--cache"], 2, "Option '--cache' requires an argument"),
    ],
)
@pytest.mark.slow
def test_bad_input_gives_one_line_error(args: list[str], code: int, text: str) -> None:
    r = run(*args)
    assert r.returncode == code
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("picozoo: error: ") and text in lines[0]


@pytest.mark.slow
def test_broken_registry_entry_one_line_error(tmp_path: Path) -> None:
    from picozoo.hub.registry import packaged_registry_path

    data = yaml.safe_load(packaged_registry_path().read_text())
    data["models"][3]["artifacts"][1]["kind"] = "checkpoint"
    bad = tmp_path / "broken.yaml"
    bad.write_text(yaml.safe_dump(data))
    for args, env in (
        (["--registry", str(bad), "list"], None),
        (["list"], {**__import__("os").environ, "PICOZOO_REGISTRY": str(bad)}),
    ):
        r = run(*args, env=env)
        assert r.returncode == 3
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1
        assert str(bad) in lines[0]
        assert "entry 'picodet-s-416', field 'artifacts[1].kind'" in lines[0]
        assert "unknown kind 'checkpoint'" in lines[0]


def test_debug_shows_traceback() -> None:
    import os

    r = run("show", "nope", env={**os.environ, "PICOZOO_DEBUG": "1"})
    assert r.returncode == 2 and "Traceback" in r.stderr


@pytest.mark.slow
def test_show_json(tmp_path: Path) -> None:
    import os

    r = run(
        "show",
        "picodet-s-416",
        "--format",
        "json",
        env={**os.environ, "PICOZOO_CACHE": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["id"] == "picodet-s-416" and info["input_size"] == [416, 416]
    assert info["claims"]["latency_ms"] == {"cpu": 6.6, "lite": 15.2}
    assert "i7-10750H" in info["latency_conditions"]["cpu"]
    kinds = {a["kind"]: a for a in info["artifacts"]}
    assert kinds["inference"]["url"].endswith("/deploy/Inference/picodet_s_416_coco_lcnet.tar")
    assert not kinds["inference"]["cached"] and kinds["inference"]["sha256"] is None
    r = run("show", "picodet-s-416", env={**os.environ, "PICOZOO_CACHE": str(tmp_path)})
    assert r.returncode == 0 and "lite-fp16" in r.stdout


def test_main_in_process_leaves_the_library_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    """``main`` prints library notes only while a command runs: called in-process (a notebook,
    a test) it does not leave a stderr handler on the ``picozoo`` logger behind."""
    import logging

    from picozoo.cli import main

    logger = logging.getLogger("picozoo")
    before = list(logger.handlers)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert logger.handlers == before
    logger.info("a note")
    assert capsys.readouterr().err == ""
