"""The attack suite (benchmarks/attack_suite.py) as tests: every scenario must be held, i.e.
refused with its documented exit code and one error line, with nothing written outside the
cache. Scenarios taking 2 s or more are marked slow; the harness itself is tested first (it
must be able to see a scenario that is not held)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SUITE_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "attack_suite.py"


def _load_suite() -> ModuleType:
    spec = importlib.util.spec_from_file_location("attack_suite", SUITE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["attack_suite"] = module
    spec.loader.exec_module(module)
    return module


suite = _load_suite()


def _param(s: object) -> object:
    # every scenario runs the real CLI in a subprocess (0.5-2 s): the full tier runs them all,
    # `benchmarks/attack_suite.py --quick` is the quick look
    return pytest.param(s, marks=[pytest.mark.slow], id=s.name)  # type: ignore[attr-defined]


@pytest.mark.parametrize("scenario", [_param(s) for s in suite.SCENARIOS])
def test_scenario_is_held(scenario, tmp_path: Path) -> None:
    outcome = suite.run_scenario(scenario, tmp_path)
    if outcome.note.startswith("cannot mount"):
        pytest.skip(outcome.note)
    assert outcome.held, outcome.describe()
    assert outcome.bytes_outside == 0 and outcome.touched_outside == []


def test_every_issue_9_item_has_a_scenario() -> None:
    assert {s.item for s in suite.SCENARIOS if s.issue == 9} == set(range(1, 16))
    assert len({s.name for s in suite.SCENARIOS}) == len(suite.SCENARIOS)


def _fake(fn) -> object:
    return suite.Scenario("fake", 0, True, fn)


def test_harness_counts_bytes_written_outside_the_cache(tmp_path: Path) -> None:
    def attack(lab):
        run = lab.picozoo("--version")
        with open(lab.victim, "ab") as f:  # what a followed symlink would do
            f.write(b"x" * 100)
        (lab.outside / "new.bin").write_bytes(b"y" * 50)
        (lab.cache / "inside.bin").parent.mkdir(parents=True, exist_ok=True)
        (lab.cache / "inside.bin").write_bytes(b"z" * 1000)  # inside the cache: not counted
        return suite.Verdict(run, frozenset({0}))

    outcome = suite.run_scenario(_fake(attack), tmp_path)
    assert outcome.exit_code == 0
    assert outcome.bytes_outside == 150
    assert outcome.touched_outside == ["outside/new.bin", "outside/victim.txt"]
    assert not outcome.held


@pytest.mark.slow
def test_harness_fails_tracebacks_wrong_codes_and_time_limits(tmp_path: Path) -> None:
    def wrong_code(lab):  # exit 2 with a one-line error, where 3 is documented
        return suite.Verdict(lab.picozoo("show", "no-such-model"), frozenset({3}))

    def crash(lab):  # PICOZOO_DEBUG=1 prints the traceback of any error
        run = lab.picozoo("show", "no-such-model", env={"PICOZOO_DEBUG": "1"})
        return suite.Verdict(run, frozenset({2}))

    def hang(lab):
        return suite.Verdict(lab.picozoo("list", timeout=0.01), frozenset({0}))

    outcomes = [
        suite.run_scenario(_fake(fn), tmp_path / fn.__name__) for fn in (wrong_code, crash, hang)
    ]
    assert [o.exit_code for o in outcomes] == [2, 2, None]
    assert [o.stderr for o in outcomes][:2] == ["1 error line", "traceback"]
    assert not any(o.held for o in outcomes)
    table = suite.markdown(outcomes)
    assert table.count("**FAILED**") == 3 and "0/3 held" in table


@pytest.mark.slow
def test_main_exits_1_when_a_scenario_is_not_held(monkeypatch, capsys) -> None:
    def refused_as_documented(lab):
        return suite.Verdict(lab.picozoo("show", "no-such-model"), frozenset({2}))

    monkeypatch.setattr(suite, "SCENARIOS", [_fake(refused_as_documented)])
    assert suite.main([]) == 0
    assert "1/1 held" in capsys.readouterr().out
    monkeypatch.setattr(suite, "SCENARIOS", [_fake(lambda lab: suite.Verdict(
        lab.picozoo("show", "no-such-model"), frozenset({3})))])  # fmt: skip
    assert suite.main([]) == 1
