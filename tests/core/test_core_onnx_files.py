"""ONNX external data is checked before onnx/onnxruntime read it (issue 9, item 15): real
models saved by onnx, with real symlinks planted next to them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.needs import needs

from picozoo.errors import ModelFileError
from picozoo.onnx_files import check_external_data, external_locations

pytestmark = needs("onnx")


def make_model(folder: Path, location: str = "weights.bin") -> Path:
    """model.onnx (y = x + w) whose initializer ``w`` is stored in ``folder/location``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w = numpy_helper.from_array(np.full((1, 4), 2.0, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "model.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location=location, size_threshold=0
    )
    return path


def relocate(path: Path, location: str) -> None:
    """Point the external data of ``path`` at ``location`` (bytes written as they are)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    path.write_bytes(model.SerializeToString())


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside every model folder, holding what an attacker wants read."""
    p = tmp_path / "outside" / "secret.bin"
    p.parent.mkdir()
    p.write_bytes(np.full((1, 4), 7.0, np.float32).tobytes())
    return p


def test_self_contained_and_inside_external_data_pass(tmp_path: Path) -> None:
    import onnx

    path = make_model(tmp_path / "m")
    assert external_locations(path) == [("w", "weights.bin")]
    check_external_data(path)
    (tmp_path / "m" / "data").mkdir()
    os.replace(tmp_path / "m" / "weights.bin", tmp_path / "m" / "data" / "w.bin")
    (tmp_path / "m" / "alias.bin").symlink_to("data/w.bin")  # a link that stays inside is fine
    relocate(path, "alias.bin")
    check_external_data(path)
    from picozoo.modelinfo import inspect_model

    assert inspect_model(path).params == 4
    plain = tmp_path / "plain.onnx"
    onnx.save_model(onnx.load(str(path)), str(plain))  # data embedded again
    assert external_locations(plain) == []
    check_external_data(plain)


@pytest.mark.slow
def test_symlink_next_to_the_model_is_refused_everywhere(tmp_path: Path, secret: Path) -> None:
    import onnx
    from onnx import numpy_helper

    path = make_model(tmp_path / "m")
    (tmp_path / "m" / "weights.bin").unlink()
    (tmp_path / "m" / "weights.bin").symlink_to(secret)
    # the threat: onnx itself follows the link and reads the outside file
    leaked = numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0])
    assert leaked.tolist() == [[7.0, 7.0, 7.0, 7.0]]
    expected = rf"tensor 'w' keeps its data in 'weights.bin', which resolves outside .*{secret}"
    with pytest.raises(ModelFileError, match=expected):
        check_external_data(path)
    from picozoo.modelinfo import inspect_model

    with pytest.raises(ModelFileError, match="resolves outside"):
        inspect_model(path)
    pytest.importorskip("onnxruntime")
    from picozoo.runtime import load

    with pytest.raises(ModelFileError, match="resolves outside"):
        load("onnxruntime", path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    r = subprocess.run(
        [sys.executable, "-m", "picozoo", "inspect", str(path)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.count("\n") == 1 and "resolves outside the model's folder" in r.stderr


def test_verify_deep_reports_a_planted_link_next_to_a_cached_onnx(
    tmp_path: Path, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.artifacts import publish
    from support.store import pull, store_at

    from picozoo.hub.registry import load_registry
    from picozoo.hub.verify import verify_cache

    monkeypatch.delenv("PICOZOO_OFFLINE", raising=False)
    reg = load_registry()
    art = reg.get("picodet-s-416").artifact("onnx")
    publish(art, make_model(tmp_path / "src"), tmp_path / "mirror")
    cache = tmp_path / "cache"
    pull(art, cache_dir=cache, mirrors=(tmp_path / "mirror").as_uri())
    store = store_at(cache)
    entry = store.lookup(art)
    assert entry is not None
    assert verify_cache(store, reg, deep=True).problems[0].message.endswith("does not exist")
    (entry.blob.parent / "weights.bin").symlink_to(secret)  # next to the blob verify reads
    problems = verify_cache(store, reg, deep=True).problems
    assert [p.kind for p in problems] == ["onnx"]
    assert "'weights.bin', which resolves outside the model's folder" in problems[0].message


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("../outside/secret.bin", "leaves the model's folder"),
        ("/etc/passwd", "is an absolute path"),
        ("", "is empty"),
        ("linked/secret.bin", "resolves outside"),  # through a symlinked folder
        ("missing.bin", "does not exist"),
        ("fifo", "is not a regular file"),
    ],
)
def test_bad_locations_are_refused(tmp_path: Path, secret: Path, location: str, why: str) -> None:
    path = make_model(tmp_path / "m")
    (tmp_path / "m" / "linked").symlink_to(secret.parent)
    os.mkfifo(tmp_path / "m" / "fifo")
    relocate(path, location)
    with pytest.raises(ModelFileError, match=why):
        check_external_data(path)


def test_tensors_in_constants_subgraphs_and_functions_are_found(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def external(name: str, location: str) -> Any:
        t = numpy_helper.from_array(np.zeros(2, np.float32), name)
        onnx.external_data_helper.set_external_data(t, location=location)
        t.data_location = TensorProto.EXTERNAL
        t.ClearField("raw_data")
        return t

    const = helper.make_node("Constant", [], ["c"], value=external("c", "const.bin"))
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["b"], value=external("b", "../branch.bin"))],
        "then",
        [],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    if_node = helper.make_node("If", ["cond"], ["o"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph(
        [const, if_node],
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])],
        initializer=[external("i", "init.bin")],
    )
    fn = helper.make_function(
        "local", "f", [], ["z"],
        [helper.make_node("Constant", [], ["z"], value=external("z", "fn.bin"))],
        [helper.make_opsetid("", 13)],
    )  # fmt: skip
    model = helper.make_model(graph, functions=[fn])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    assert sorted(external_locations(path)) == [
        ("b", "../branch.bin"),
        ("b", "../branch.bin"),  # then and else branch
        ("c", "const.bin"),
        ("i", "init.bin"),
        ("z", "fn.bin"),
    ]
    for name in ("const.bin", "init.bin", "fn.bin"):
        (tmp_path / name).write_bytes(bytes(8))
    with pytest.raises(ModelFileError, match=r"'\.\./branch\.bin', which leaves"):
        check_external_data(path)


def test_not_a_protobuf_is_left_to_onnx(tmp_path: Path) -> None:
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"\x08\x07garbage")
    assert external_locations(garbage) == []
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    check_external_data(empty)


def test_convert_extra_requires_an_onnx_with_the_cve_2024_5187_fix() -> None:
    import tomllib
    from packaging.requirements import Requirement
    from packaging.version import Version

    root = Path(__file__).resolve().parents[2]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    onnx_req = next(Requirement(r) for r in extras["convert"] if r.startswith("onnx>"))
    assert not onnx_req.specifier.contains(Version("1.16.1"))
    assert onnx_req.specifier.contains(Version("1.16.2"))
