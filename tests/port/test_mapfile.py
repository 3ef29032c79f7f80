"""A fitted map is one self-contained folder: what it holds, that it ports on its own after being
moved without its anchors, and that every method's port through it stays within 1e-3 of the float64
port from the original anchors."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors import safe_open
from safetensors.torch import load_file
from tests.conftest import make_anchor_set

from loraport.adapters import load_adapter
from loraport.models import load_config
from loraport.port import METHODS, FittedMap, apply_map, fit_map, load_anchors
from loraport.port.mapfile import MAP_CARD, MAP_JSON, MAP_TENSORS, content_hash
from loraport.port.mapinfo import verify_map
from loraport.port.reference import reference_port, rel_error

ANCHOR_METHODS = [m for m in METHODS.names() if METHODS.get(m).scope in ("global", "pertensor")]
OPTS = {"topk_global_ridge": {"k": 3}, "topk_pertensor_ridge": {"k": 3}, "pertensor_mlp": {"steps": 100}}
BOUND = 1e-3  # the bound: relative Frobenius error of ΔW per module


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "cache"))  # where verified maps are noted


def _fit(anchors, method):
    spec = load_anchors(anchors)
    configs = load_config(spec.source_base), load_config(spec.target_base)
    return spec, fit_map(spec, method, *configs, options=OPTS.get(method, {}))


def test_map_folder_holds_provenance_packed_factors_and_a_card(anchor_set, tmp_path):
    spec, fm = _fit(anchor_set, "topk_global_ridge")
    folder = fm.save(tmp_path / "map")
    assert sorted(p.name for p in folder.iterdir()) == sorted([MAP_JSON, MAP_TENSORS, MAP_CARD])
    meta = json.loads((folder / MAP_JSON).read_text())
    assert meta["format"] == "loraport-map/2" and meta["content_sha256"] == content_hash(meta)
    assert meta["method"] == "topk_global_ridge" and meta["options"]["k"] == 3
    assert [a["task"] for a in meta["anchors"]] == spec.tasks
    assert all(len(a["source_sha256"]) == len(a["target_sha256"]) == 64 for a in meta["anchors"])
    assert len(meta["fingerprints"]["source"]["arch"]) == 64 and "loraport_version" in meta
    with safe_open(folder / MAP_TENSORS, framework="pt") as fh:  # plain safetensors, no pickle
        dtypes = {k: fh.get_slice(k).get_dtype() for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
    assert {d for k, d in dtypes.items() if k.endswith(("/QB", "/QA", "/Bt", "/A"))} == {"F16"}
    card = (folder / MAP_CARD).read_text()
    assert spec.source_base in card and "topk_global_ridge" in card and "N = 6" in card and "t5" in card


@pytest.mark.parametrize("method", ANCHOR_METHODS)
def test_packed_port_matches_the_float64_port_from_the_anchors(anchor_set, tmp_path, method):
    spec, fm = _fit(anchor_set, method)
    loaded = FittedMap.load(fm.save(tmp_path / "map"))
    for task in ("held", "t2"):
        src = anchor_set.parent / "x" / task
        out = load_adapter(apply_map(loaded, src, tmp_path / f"out-{task}"))
        ref = reference_port(fm, spec, src)
        worst = max(rel_error(out.lowrank(m), ref[m]) for m in ref)
        assert worst < BOUND, (method, task, worst)


def test_fused_target_modules_stay_within_the_bound(tiny_models, tmp_path):
    anchors = make_anchor_set(tmp_path / "set", tiny_models["qwen2"], tiny_models["phi3"], 5)
    spec, fm = _fit(anchors, "pertensor_ridge")
    out = load_adapter(apply_map(fm, tmp_path / "set" / "x" / "held", tmp_path / "o"))
    ref = reference_port(fm, spec, tmp_path / "set" / "x" / "held")
    assert any("qkv_proj" in m for m in ref)
    assert max(rel_error(out.lowrank(m), ref[m]) for m in ref) < BOUND


@pytest.mark.parametrize("method", ["mean", "pertensor_ridge", "topk_global_ridge"])
def test_moved_map_ports_identically_without_its_anchors(anchor_set, tmp_path, method):
    root = tmp_path / "set"
    shutil.copytree(anchor_set.parent, root)
    _, fm = _fit(root / "anchors.yaml", method)
    fm.save(tmp_path / "map")
    held = tmp_path / "held"
    shutil.copytree(root / "x" / "held", held)
    before = apply_map(FittedMap.load(tmp_path / "map"), held, tmp_path / "before")
    shutil.move(tmp_path / "map", tmp_path / "elsewhere" / "moved")
    shutil.rmtree(root)  # the anchors are gone
    after = apply_map(FittedMap.load(tmp_path / "elsewhere" / "moved"), held, tmp_path / "after")
    a, b = load_file(before / "adapter_model.safetensors"), load_file(after / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_mean_packs_no_source_anchors(anchor_set, tmp_path):
    _, fm = _fit(anchor_set, "mean")
    _, ridge = _fit(anchor_set, "global_ridge")
    a = fm.save(tmp_path / "mean") / MAP_TENSORS
    b = ridge.save(tmp_path / "ridge") / MAP_TENSORS
    assert fm.source_ranks == {} and a.stat().st_size < 0.7 * b.stat().st_size


def test_verify_checks_the_content_and_the_anchors(anchor_set, tmp_path):
    from loraport.port.mapfile import MapError

    root = tmp_path / "set"
    shutil.copytree(anchor_set.parent, root)
    _, fm = _fit(root / "anchors.yaml", "global_ridge")
    fm.save(tmp_path / "map")
    info = verify_map(tmp_path / "map", anchors=root / "anchors.yaml")
    assert info["anchors_checked"] == 12 and info["content_sha256"] == fm.content_sha256
    shutil.copytree(root / "y" / "t1", root / "y" / "t0", dirs_exist_ok=True)
    with pytest.raises(MapError, match=r"anchors\[0\].target_sha256"):
        verify_map(tmp_path / "map", anchors=root / "anchors.yaml")
    # A port needs no anchors, so the changed anchor does not affect it.
    assert apply_map(FittedMap.load(tmp_path / "map"), root / "x" / "held", tmp_path / "o").is_dir()


def test_a_map_is_hashed_until_it_passes_and_again_once_edited(anchor_set, tmp_path):
    from loraport.port.mapfile import MapError

    _, fm = _fit(anchor_set, "global_ridge")
    fm.save(tmp_path / "map")
    assert FittedMap.load(tmp_path / "map").tensors.verified  # hashed while written
    shutil.copytree(tmp_path / "map", tmp_path / "copy")
    copy = FittedMap.load(tmp_path / "copy")
    assert not copy.tensors.verified
    apply_map(copy, anchor_set.parent / "x" / "held", tmp_path / "o1")
    assert FittedMap.load(tmp_path / "copy").tensors.verified
    f = tmp_path / "copy" / MAP_TENSORS
    data = bytearray(f.read_bytes())
    data[-3] ^= 1
    f.write_bytes(bytes(data))  # same size, new mtime
    with pytest.raises(MapError, match=r"tensors\.sha256"):
        apply_map(FittedMap.load(tmp_path / "copy"), anchor_set.parent / "x" / "held", tmp_path / "o2")
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("method", ["global_ridge", "topk_pertensor_ridge"])
def test_a_port_reads_each_packed_tensor_once(anchor_set, tmp_path, method, monkeypatch):
    _, fm = _fit(anchor_set, method)
    loaded = FittedMap.load(fm.save(tmp_path / "map"))
    seen = []
    get = loaded.tensors.get
    monkeypatch.setattr(loaded.tensors, "get", lambda name: seen.append(name) or get(name))
    apply_map(loaded, anchor_set.parent / "x" / "held", tmp_path / "o")
    packed = [n for n in loaded.tensors.names() if not n.startswith("state/")]
    assert sorted(seen) == sorted(packed)  # every packed tensor, each once
    sides = [n[0] for n in seen]
    assert sides == sorted(sides)  # the source section ("s/..."), then the target section ("t/...")
