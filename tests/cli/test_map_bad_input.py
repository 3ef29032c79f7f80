"""Bad maps and adapters a map cannot port: one line naming the file and field, exit 2, nothing
written. And `loraport map verify`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.cli.test_bad_input import assert_fails, run

from loraport.adapters.synthetic import synthetic_adapter
from loraport.models import load_config


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "cache"))  # where verified maps are noted


@pytest.fixture(scope="module")
def fitted(anchor_set, tmp_path_factory) -> Path:
    m = tmp_path_factory.mktemp("fitted") / "map"
    res = run("fit", "--anchors", anchor_set, "--method", "pertensor_ridge", "--out", m)
    assert res.exit_code == 0, res.output
    return m


@pytest.fixture()
def mapdir(fitted, tmp_path) -> Path:
    m = tmp_path / "map"
    shutil.copytree(fitted, m)
    return m


def port(m: Path, adapter: Path, target: Path, out: Path):
    return run("port", "--map", m, "--adapter", adapter, "--target-base", target, "--out", out)


def test_good_map_ports_and_verifies(mapdir, anchor_set, tiny_models, tmp_path):
    res = port(mapdir, anchor_set.parent / "x" / "held", tiny_models["llama"], tmp_path / "o")
    assert res.exit_code == 0, res.output
    res = run("map", "verify", mapdir, "--anchors", anchor_set)
    assert res.exit_code == 0 and res.output.startswith("ok: pertensor_ridge") and "12 anchor" in res.output


def test_truncated_map(mapdir, anchor_set, tiny_models, tmp_path):
    f = mapdir / "map.safetensors"
    f.write_bytes(f.read_bytes()[:-1000])
    out = tmp_path / "o"
    res = port(mapdir, anchor_set.parent / "x" / "held", tiny_models["llama"], out)
    assert_fails(res, str(f), "tensors.bytes", "re-fit", out=out)
    assert_fails(run("map", "verify", mapdir), "tensors.bytes")


def test_edited_map_tensors(mapdir, anchor_set, tiny_models, tmp_path):
    f = mapdir / "map.safetensors"
    data = bytearray(f.read_bytes())
    data[-2000] ^= 0x40  # one bit in the packed factors: the same size, different content
    f.write_bytes(bytes(data))
    out = tmp_path / "o"
    res = port(mapdir, anchor_set.parent / "x" / "held", tiny_models["llama"], out)
    assert_fails(res, str(f), "tensors.sha256", out=out)
    assert_fails(run("map", "verify", mapdir), "tensors.sha256")


def test_edited_map_header(mapdir, anchor_set, tiny_models, tmp_path):
    f = mapdir / "map.json"
    meta = json.loads(f.read_text())
    meta["options"]["ridge"] = 0.5
    f.write_text(json.dumps(meta))
    out = tmp_path / "o"
    res = port(mapdir, anchor_set.parent / "x" / "held", tiny_models["llama"], out)
    assert_fails(res, str(f), "content_sha256", out=out)


@pytest.mark.parametrize("fmt,needle", [("loraport-map/1", "re-fit"), ("loraport-map/3", "loraport-map/2")])
def test_map_of_another_format_version(mapdir, anchor_set, tiny_models, tmp_path, fmt, needle):
    f = mapdir / "map.json"
    meta = json.loads(f.read_text())
    meta["format"] = fmt
    f.write_text(json.dumps(meta))
    out = tmp_path / "o"
    res = port(mapdir, anchor_set.parent / "x" / "held", tiny_models["llama"], out)
    assert_fails(res, str(f), "format", needle, out=out)


def test_old_map_folder_says_how_to_refit(anchor_set, tiny_models, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "map.json").write_text(json.dumps({"format": "loraport-map/1", "method": "global_ridge"}))
    (old / "state.safetensors").write_bytes(b"\0" * 16)
    out = tmp_path / "o"
    res = port(old, anchor_set.parent / "x" / "held", tiny_models["llama"], out)
    assert_fails(
        res, "map.json", "format", "loraport fit --anchors ANCHORS.yaml --method global_ridge", out=out
    )


def test_adapter_of_another_source_base(mapdir, anchor_set, tiny_models, tmp_path):
    out = tmp_path / "o"
    adapter = anchor_set.parent / "y" / "held"  # a Llama adapter into a Qwen2 → Llama map
    assert_fails(port(mapdir, adapter, tiny_models["llama"], out), str(adapter), "expects", out=out)


def test_map_for_another_target_base(mapdir, anchor_set, tiny_models, tmp_path):
    out = tmp_path / "o"
    res = port(mapdir, anchor_set.parent / "x" / "held", tiny_models["gemma3"], out)
    assert_fails(res, str(mapdir / "map.json"), "fingerprints.target.arch", out=out)


def test_adapter_with_modules_the_map_lacks(tiny_models, tmp_path):
    cx, cy = load_config(str(tiny_models["qwen2"])), load_config(str(tiny_models["llama"]))
    pairs = []
    for i in range(3):  # anchors adapt q and v only
        synthetic_adapter(cx, tmp_path / "x" / f"t{i}", seed=i, roles=("q", "v"), task=f"t{i}")
        synthetic_adapter(cy, tmp_path / "y" / f"t{i}", seed=9 + i, roles=("q", "v"), task=f"t{i}")
        pairs.append({"task": f"t{i}", "source": f"x/t{i}", "target": f"y/t{i}"})
    spec = {
        "source_base": str(tiny_models["qwen2"]),
        "target_base": str(tiny_models["llama"]),
        "pairs": pairs,
    }
    (tmp_path / "anchors.yaml").write_text(json.dumps(spec))
    assert (
        run(
            "fit", "--anchors", tmp_path / "anchors.yaml", "--method", "mean", "--out", tmp_path / "m"
        ).exit_code
        == 0
    )
    full = synthetic_adapter(cx, tmp_path / "full", seed=50)  # all 7 projections
    out = tmp_path / "o"
    res = port(tmp_path / "m", full, tiny_models["llama"], out)
    assert_fails(res, str(full), "no data in the map", "source_modules", out=out)
    only_q = synthetic_adapter(cx, tmp_path / "only_q", seed=51, roles=("q",))
    res = port(tmp_path / "m", only_q, tiny_models["llama"], out)
    assert_fails(res, str(only_q), "adapts no", "source_modules", out=out)
