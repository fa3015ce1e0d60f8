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


def test_the_test_command_installs_the_constraints_then_lints_types_and_tests() -> None:
    """Every install of the test command takes constraints.txt; lint and types run before the
    tests; pytest is the last command of .ci/run, so its exit code (5: no test) is CI's."""
    test_cmd = setup_commands()[1]
    steps = [s.strip() for s in test_cmd.split("&&")]
    installs = [s for s in steps if s.startswith("pip install")]
    assert installs and all("-c constraints.txt" in s for s in installs), installs
    checks = ["ruff check picozoo tests benchmarks", "ruff format --check picozoo tests benchmarks"]
    assert steps[-4:] == [*checks, "mypy", "pytest"]
    run = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in run
    assert run.rstrip().splitlines()[-1].strip() == test_cmd


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_constraints_pin_every_package_the_test_install_names() -> None:
    """Each requirement of the [test] extra (through [all]), the base dependencies, and the two
    --no-deps packages has an exact version in constraints.txt, which its range admits."""
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def requirements(extra: str) -> list[Requirement]:
        out = []
        for text in extras[extra]:
            req = Requirement(text)
            if req.name == project["name"]:
                out += [r for e in sorted(req.extras) for r in requirements(e)]
            else:
                out.append(req)
        return out

    pins = _pins()
    wanted = [Requirement(r) for r in project["dependencies"]] + requirements("test")
    wanted += [Requirement("rapid-layout==0.2.1"), Requirement("pnnx")]
    for req in wanted:
        version = pins.get(canonicalize_name(req.name))
        assert version is not None, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(version, prereleases=True), f"{req} vs =={version}"
