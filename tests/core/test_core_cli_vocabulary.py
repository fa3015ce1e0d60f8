"""One vocabulary across the CLI: one name per concept in every command's --help, the old
spellings still working as hidden aliases, and every usage error as one `picozoo: error:` line
with exit code 2 (run in-process through the real entry point, `picozoo.cli.main`)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from picozoo.cli import cli, main

ROOT = Path(__file__).resolve().parents[2]
SAVED = ROOT / "tests" / "data" / "bench-v0.1-standin-s416.json"

#: old spellings that work but --help does not show
HIDDEN = ("--report", "--cache-dir", "--input-shape", "--fp16", "[text|", "|text]", "|text|")


def commands() -> dict[str, click.Command]:
    """Every command and group, by its path (``""`` is the group itself)."""
    found: dict[str, click.Command] = {}

    def walk(cmd: click.Command, path: list[str]) -> None:
        found[" ".join(path)] = cmd
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])

    walk(cli, [])
    return found


COMMANDS = commands()
LEAVES = {p: c for p, c in COMMANDS.items() if not isinstance(c, click.Group)}


def picozoo(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``picozoo ARGS`` in this process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def assert_one_line_usage_error(code: int, out: str, err: str, *texts: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("picozoo: error: "), err
    assert "Usage:" not in err and "Try " not in err and out == ""
    for text in texts:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: p or "picozoo")
def test_a_bad_option_is_one_error_line(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = picozoo(capsys, *path.split(), "--no-such-option")
    assert_one_line_usage_error(code, out, err, "No such option '--no-such-option'")
    assert f"(see `{' '.join(['picozoo', *path.split()])} --help`)" in err


@pytest.mark.parametrize(
    "path",
    [p for p, c in LEAVES.items() if any(isinstance(a, click.Argument) and a.required
                                         for a in c.params)],
)  # fmt: skip
def test_a_missing_argument_is_one_error_line(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = picozoo(capsys, *path.split())
    assert_one_line_usage_error(code, out, err, "Missing argument")


@pytest.mark.parametrize(
    ("path", "option"),
    [
        (p, next(o.opts[0] for o in c.params if isinstance(o.type, click.Choice)))
        for p, c in LEAVES.items()
        if any(isinstance(o, click.Option) and isinstance(o.type, click.Choice) for o in c.params)
    ],
)
def test_a_bad_choice_is_one_error_line(
    path: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = picozoo(capsys, *path.split(), option, "no-such-choice")
    assert_one_line_usage_error(code, out, err, f"Invalid value for '{option}'", "is not one of")


def test_an_unknown_command_and_a_bad_type_are_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert_one_line_usage_error(*picozoo(capsys, "lsit"), "No such command 'lsit'")
    assert_one_line_usage_error(
        *picozoo(capsys, "bench", "m.onnx", "--threads", "zero"), "'--threads'", "not a valid"
    )


def test_help_shows_one_name_per_concept() -> None:
    runner = CliRunner()
    for path, cmd in COMMANDS.items():
        text = runner.invoke(cli, [*path.split(), "--help"]).output
        for old in HIDDEN:
            assert old not in text, f"`picozoo {path} --help` shows {old!r}"
        names = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
        assert "--report" not in names or "--format" in names
        if "--format" in names:
            assert "--format [table" in text or "--format [json" in text, (path, text)
        for p in cmd.params:
            if isinstance(p, click.Argument) and p.name in ("model", "models", "target",
                                                            "targets"):  # fmt: skip
                assert "MODEL|PATH" in (p.metavar or ""), (path, p.metavar)
    for path in ("convert", "inspect", "bench"):
        assert "--postprocess / --no-postprocess" in runner.invoke(cli, [path, "--help"]).output


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("bench", ["--report", "md"], ["--format", "md"]),
        ("report show", ["--report", "html"], ["--format", "html"]),
        ("report merge", ["--report", "csv"], ["--format", "csv"]),
        ("bench", ["--input-shape", "320x256"], ["--input-size", "320x256"]),
        ("convert", ["--input-shape", "image=1,3,8,8"], ["--input-size", "image=1,3,8,8"]),
        ("convert", ["--format", "text"], ["--format", "table"]),
        ("pull", ["--format", "text"], ["--format", "table"]),
        ("infer", ["--format", "text"], ["--format", "table"]),
        ("inspect", ["--format", "text"], ["--format", "table"]),
        ("mirror export", ["--format", "text"], ["--format", "table"]),
        ("verify", ["--format", "text"], ["--format", "table"]),
        ("", ["--cache-dir", "/c"], ["--cache", "/c"]),
    ],
)
def test_old_spellings_parse_as_the_new_ones(path: str, old: list[str], new: list[str]) -> None:
    cmd = COMMANDS[path]
    args = ["x", "y"] if path in ("report merge", "infer", "mirror export") else ["x"]
    if isinstance(cmd, click.Group):
        args = ["list"]
    parsed = [
        cmd.make_context(f"picozoo {path}", [*flags, *args], resilient_parsing=False).params
        for flags in (old, new)
    ]
    assert parsed[0] == parsed[1]


def test_postprocess_switch_keeps_each_commands_default() -> None:
    def postprocess(path: str, *flags: str) -> bool:
        return bool(COMMANDS[path].make_context(path, [*flags, "x"]).params["postprocess"])

    assert postprocess("bench") is False and postprocess("bench", "--postprocess") is True
    for path in ("convert", "inspect"):
        assert postprocess(path) is True and postprocess(path, "--no-postprocess") is False


@pytest.mark.slow
def test_old_and_new_spellings_give_the_same_output(capsys: pytest.CaptureFixture[str]) -> None:
    table = picozoo(capsys, "list", "--format", "table")
    assert table[0] == 0 and "picodet-s-416" in table[1]
    assert picozoo(capsys, "list", "--format", "text") == table
    new = picozoo(capsys, "report", "show", str(SAVED), "--format", "json")
    assert new[0] == 0 and json.loads(new[1])["schema"] == "picozoo.bench/1"
    assert picozoo(capsys, "report", "show", str(SAVED), "--report", "json") == new


def test_group_cache_and_its_old_name_select_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--cache DIR` before the command (and its old name --cache-dir) is the cache
    `mirror export` reads: nothing cached in an empty one."""
    for flag in ("--cache", "--cache-dir"):
        code, out, err = picozoo(
            capsys, flag, str(tmp_path / flag), "mirror", "export", str(tmp_path / "m"),
            "picodet-s-416",
        )  # fmt: skip
        assert code == 8 and out == "" and "nothing cached for picodet-s-416" in err


def test_lite_takes_precision_like_the_engines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--to lite --precision fp16` is the old `--fp16`; a precision Lite has not is refused
    before anything is pulled."""
    params = [
        COMMANDS["convert"].make_context("convert", ["x", *flags]).params
        for flags in (["--to", "lite", "--fp16"], ["--to", "lite", "--precision", "fp16"])
    ]
    assert params[0]["fp16"] and params[1]["precision"] == "fp16"
    code, out, err = picozoo(
        capsys, "convert", "picodet-s-416", "--to", "lite", "--precision", "int8", "--offline",
        "--cache", str(tmp_path / "c"),
    )  # fmt: skip
    assert code == 2 and out == "" and "--precision int8 is not available for lite" in err
    assert not (tmp_path / "c").exists()
