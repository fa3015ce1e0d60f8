"""README and CI agree: `.ci/run` runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_commands() -> list[str]:
    """The bash blocks of the README's "Set up" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_first_command_installs_and_runs_the_main_job() -> None:
    first = setup_commands()[0]
    assert "pip install '.[all]'" in first
    assert "picozoo pull picodet-s-416" in first
    assert "picozoo bench picodet-s-416" in first


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_cmd = setup_commands()[1]
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert test_cmd in ci_lines, f".ci/run does not run {test_cmd!r}"
    assert test_cmd.endswith("pytest")
