"""The packaged registry: completeness against the upstream READMEs, and validation errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from picozoo.errors import RegistryError, UnknownArtifactError, UnknownModelError
from picozoo.hub.registry import (
    ARTIFACT_KINDS,
    Conditions,
    load_registry,
    packaged_registry_path,
    parse_registry,
)

UPSTREAM = Path(__file__).resolve().parents[1] / "data" / "upstream"
REPO_REGISTRY = Path(__file__).resolve().parents[2] / "registry.yaml"
URL = re.compile(r"https?://paddledet\.bj\.bcebos\.com/[^\s)\]\"'<>|]+")


def upstream_urls(name: str) -> set[str]:
    return set(URL.findall((UPSTREAM / name).read_text(encoding="utf-8")))


@pytest.mark.parametrize("readme", ["picodet_README_en.md", "picodet_legacy_README.md"])
def test_every_upstream_artifact_url_is_in_registry_byte_for_byte(readme: str) -> None:
    urls = upstream_urls(readme)
    assert len(urls) > 30  # the extraction itself works
    text = REPO_REGISTRY.read_text(encoding="utf-8")
    registered = {a.url for a in load_registry(REPO_REGISTRY).artifacts()}
    missing = sorted(u for u in urls if u not in registered)
    assert not missing, f"not in registry.yaml: {missing}"
    # byte-for-byte: the raw YAML text holds each URL exactly as upstream spells it
    assert all(f'"{u}"' in text for u in urls)


def test_reference_copies_match_shared_when_available() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip("../shared/reference is not beside this checkout")
    for name in ("picodet_README_en.md", "picodet_legacy_README.md"):
        assert (UPSTREAM / name).read_bytes() == (shared / name).read_bytes()


def test_main_family_has_all_nine_models_with_every_artifact_kind() -> None:
    reg = load_registry()
    main = [m for m in reg.models if m.family == "picodet" and not m.quantized]
    expected = {f"picodet-{v}-{s}" for v in ("xs", "s", "m", "l") for s in (320, 416)}
    assert {m.id for m in main} == expected | {"picodet-l-640"}
    want = {
        "weights",
        "log",
        "config",
        "inference",
        "inference-nopp",
        "onnx",
        "onnx-nopp",
        "lite-fp32",
        "lite-fp16",
    }
    for m in main:
        assert set(m.kinds) == want, m.id
        assert m.claims.latency_ms.keys() == {"cpu", "lite"}
    # the row with the missing '|' upstream still has its real Lite FP32 link
    l640 = reg.get("picodet-l-640")
    assert l640.artifact("lite-fp32").url.endswith(
        "/deploy/paddlelite/picodet_l_640_coco_lcnet.tar"
    )
    assert l640.claims.flops_g == 16.81 and l640.claims.latency_ms["cpu"] == 62.5


def test_quantized_legacy_and_reference_rows() -> None:
    reg = load_registry()
    q = reg.get("picodet-s-416-quant")
    assert q.quantized and q.base_model == "picodet-s-416" and q.claims.map == 31.5
    assert {"weights", "inference", "inference-nopp", "lite-int8", "lite-int8-nopp"} <= set(q.kinds)
    legacy = [m for m in reg.models if m.family == "picodet-legacy"]
    assert len(legacy) == 12 and reg.families["picodet-legacy"].legacy
    assert reg.get("picodet-legacy-lcnet-1.5x-416").has("lite-fp16")
    other = [m for m in reg.models if m.family == "other"]
    assert len(other) == 11 and all(not m.artifacts for m in other)
    assert reg.get("yolov5s-640").claims.latency_ms == {"ncnn": 78.05}
    assert "i7-10750H" in reg.families["picodet"].latency["cpu"]


def test_latency_claims_carry_their_conditions_as_data() -> None:
    """How each latency claim was measured, as the comparisons need it: the picodet CPU
    claims are Paddle Inference, 12 threads, fp32, models without post-processing (the
    family's text says so too); every model of the family carries them."""
    reg = load_registry()
    cpu = Conditions(engine="paddle", threads=12, precision="fp32", postprocess=False)
    assert reg.families["picodet"].conditions["cpu"] == cpu
    text = reg.families["picodet"].latency["cpu"]
    assert "Paddle Inference" in text and "12 threads" in text and "without post" in text
    s416 = reg.get("picodet-s-416")
    assert s416.claims.conditions["cpu"] == cpu
    assert s416.claims.to_dict()["conditions"]["cpu"] == {
        "engine": "paddle", "threads": 12, "precision": "fp32", "postprocess": False,
    }  # fmt: skip
    assert reg.get("yolov5s-640").claims.conditions["ncnn"].threads == 4
    # a family without conditions: claims written as before (no "conditions" key)
    assert "conditions" not in parse_registry(_minimal(), "m.yaml").get("m-1").claims.to_dict()


@pytest.mark.slow
def test_all_kinds_are_in_the_vocabulary_and_ids_unique() -> None:
    reg = load_registry()
    ids = [m.id for m in reg.models]
    assert len(ids) == len(set(ids))
    assert {a.kind for a in reg.artifacts()} <= set(ARTIFACT_KINDS)


def test_packaged_registry_is_the_repo_file() -> None:
    assert packaged_registry_path().read_bytes() == REPO_REGISTRY.read_bytes()


def test_unknown_model_suggests_close_ids() -> None:
    with pytest.raises(UnknownModelError) as e:
        load_registry().get("picodet-s416")
    assert "picodet-s-416" in e.value.suggestions
    assert "did you mean" in str(e.value)


def test_unknown_artifact_lists_available() -> None:
    with pytest.raises(UnknownArtifactError, match=r"available: .*weights"):
        load_registry().get("picodet-legacy-s-320").artifact("inference")


def _minimal() -> dict:
    return {
        "families": {"f": {"title": "F"}},
        "models": [
            {
                "id": "m-1",
                "family": "f",
                "input_size": [320, 320],
                "claims": {"map": 1.0},
                "artifacts": [{"kind": "weights", "url": "https://h.example/a.pdparams"}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("mutate", "entry", "field"),
    [
        (
            lambda d: d["models"][0]["artifacts"][0].update(kind="weight"),
            "m-1",
            "artifacts[0].kind",
        ),
        (lambda d: d["models"][0]["artifacts"][0].update(url="ftp:/x"), "m-1", "artifacts[0].url"),
        (
            lambda d: d["models"][0]["artifacts"][0].update(sha256="abc"),
            "m-1",
            "artifacts[0].sha256",
        ),
        (lambda d: d["models"][0]["artifacts"][0].update(size=-1), "m-1", "artifacts[0].size"),
        (lambda d: d["models"][0].update(input_size=[320]), "m-1", "input_size"),
        (lambda d: d["models"][0].update(family="nope"), "m-1", "family"),
        (lambda d: d["models"][0].update(claims={"map": "high"}), "m-1", "claims.map"),
        (lambda d: d["models"][0].update(colour="red"), "m-1", "colour"),
        (
            lambda d: d["families"]["f"].update(conditions={"cpu": {"threads": 0}}),
            "f",
            "conditions.cpu.threads",
        ),
        (
            lambda d: d["families"]["f"].update(conditions={"cpu": {"postprocess": "no"}}),
            "f",
            "conditions.cpu.postprocess",
        ),
        (
            lambda d: d["families"]["f"].update(conditions={"cpu": {"device": "x"}}),
            "f",
            "device",
        ),
        (lambda d: d["models"].append(dict(d["models"][0])), "m-1", "id"),
    ],
)
def test_malformed_entry_names_file_entry_and_field(mutate, entry: str, field: str) -> None:
    data = _minimal()
    mutate(data)
    with pytest.raises(RegistryError) as e:
        parse_registry(data, "my.yaml")
    assert (e.value.path, e.value.entry, e.value.field) == ("my.yaml", entry, field)
    assert str(e.value).startswith(f"my.yaml: entry {entry!r}, field {field!r}: ")
    assert "\n" not in str(e.value)


def test_minimal_registry_parses_and_bad_yaml_is_reported(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_minimal()))
    assert load_registry(good).get("m-1").artifact("weights").filename == "a.pdparams"
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n  - id: x\n")
    with pytest.raises(RegistryError, match=r"bad\.yaml: not valid YAML at line \d+"):
        load_registry(bad)
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")


# -- hostile registry files (issue 9, items 12-13) ---------------------------------------------
def _alias_bomb(levels: int = 9) -> str:
    """A 583-byte registry whose nested aliases expand to 9**9 strings when traversed."""
    nest = ['&a0 ["lol"' + ', "lol"' * 8 + "]"]
    nest += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    models = "models:\n  - {id: m, family: f, input_size: [320, 320]}\n"
    return f"schema: 1\nfamilies:\n  f:\n    title: F\n    source: [{', '.join(nest)}]\n{models}"


def _limit_memory() -> None:  # a regression must fail the test, not the machine
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_yaml_alias_bomb_is_refused_in_well_under_a_second(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb())
    assert bomb.stat().st_size < 739
    t0 = time.perf_counter()
    with pytest.raises(RegistryError, match=r"line 5: anchors and aliases .* not allowed"):
        load_registry(bomb)
    assert time.perf_counter() - t0 < 0.5
    r = subprocess.run(
        [sys.executable, "-m", "picozoo", "--registry", str(bomb), "list"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert r.returncode == 3, r.stderr
    assert r.stderr.count("\n") == 1 and "anchors and aliases" in r.stderr


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: &x 1\nb: 2\n", r"line 1: anchors and aliases"),  # an anchor alone is refused too
        ("a: [" * 40 + "]" * 40 + "\n", r"line 1: nested deeper than 32"),
        ("schema: 1\nschema: 1\n", r"line 2: duplicate key 'schema'"),
        ("models:\n  - {id: a, id: b}\n", r"line 2: duplicate key 'id'"),
        ("claims: {map: .nan}\n", r"line 1: non-finite number '.nan'"),
        ("claims: {map: -.Inf}\n", r"line 1: non-finite number '-.Inf'"),
        ("claims: {map: 1.0e+999}\n", r"line 1: non-finite number '1.0e\+999'"),
        ("n: " + "9" * 5000 + "\n", r"not valid YAML: Exceeds the limit"),
    ],
)
def test_strict_yaml_refusals_name_the_line(tmp_path: Path, text: str, problem: str) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    with pytest.raises(RegistryError, match=problem) as e:
        load_registry(p)
    assert "\n" not in str(e.value) and e.value.exit_code == 3


def test_oversized_and_non_utf8_registries_are_refused(tmp_path: Path) -> None:
    from picozoo.hub.registry import MAX_REGISTRY_BYTES

    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_REGISTRY_BYTES + 1))
    with pytest.raises(RegistryError, match="larger than 4 MiB"):
        load_registry(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"schema: 1\n# caf\xe9\n")
    with pytest.raises(RegistryError, match=r"not UTF-8 text \(byte 15\)"):
        load_registry(latin)


def test_non_finite_claims_are_refused_when_parsed_from_data() -> None:
    data = _minimal()
    data["models"][0]["claims"] = {"map": float("nan")}
    with pytest.raises(RegistryError, match="finite non-negative number, got nan") as e:
        parse_registry(data, "my.yaml")
    assert e.value.field == "claims.map"
    data["models"][0]["claims"] = {"latency_ms": {"cpu": float("inf")}}
    with pytest.raises(RegistryError, match="got inf"):
        parse_registry(data, "my.yaml")
    data["models"][0]["claims"] = {"params_m": 10**400}  # too large for a float
    with pytest.raises(RegistryError, match="finite non-negative number, got 1000"):
        parse_registry(data, "my.yaml")


@pytest.mark.parametrize(
    "url",
    [
        "https://paddledet.bj.bcebos.com/../../etc/passwd",
        "https://paddledet.bj.bcebos.com/models/../../etc/passwd",
        "https://paddledet.bj.bcebos.com/models/%2e%2e/%2E%2E/etc/passwd",
        "https://paddledet.bj.bcebos.com/models/..%5c..%5cwin.ini",
        "https://paddledet.bj.bcebos.com/models/..",
    ],
)
def test_urls_leaving_the_host_root_are_refused_at_load(url: str) -> None:
    data = _minimal()
    data["models"][0]["artifacts"][0]["url"] = url
    with pytest.raises(RegistryError) as e:
        parse_registry(data, "my.yaml")
    assert (e.value.entry, e.value.field) == ("m-1", "artifacts[0].url")
    assert e.value.exit_code == 3


def test_urls_are_normalised_at_load() -> None:
    data = _minimal()
    data["models"][0]["artifacts"][0]["url"] = "https://h.example/a/./b/../c//d.pdparams"
    art = parse_registry(data).get("m-1").artifact("weights")
    assert art.url == "https://h.example/a/c/d.pdparams" and art.url_path == "a/c/d.pdparams"
    # URLs already in normal form are kept byte for byte (the pins file is keyed by them)
    assert all(
        a.url == u
        for a, u in zip(load_registry().artifacts(), _raw_urls(REPO_REGISTRY), strict=True)
    )


def _raw_urls(path: Path) -> list[str]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [a["url"] for m in raw["models"] for a in m.get("artifacts", [])]
