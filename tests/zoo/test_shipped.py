"""The shipped zoo: the default pair loads from package data with no build, every file checked
against MANIFEST.json at load, and `zoo build --from-scratch` says per file whether a rebuild
matches."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loraport.cli.main import app
from loraport.errors import ModelLoadError
from loraport.io import sha256_file
from loraport.models import load_model, resolve_model
from loraport.models.resolve import folder_fingerprint
from loraport.zoo import build, get_spec, is_built, is_shipped, zoo_specs
from loraport.zoo import shipped as shipped_mod
from loraport.zoo.shipped import MANIFEST, SHIPPED_ROOT, compare_with_shipped, read_manifest, ship

build_mod = importlib.import_module("loraport.zoo.build")  # `loraport.zoo.build` is also a function
PAIR = ("tiny-qwen2-x", "tiny-llama-y")
RESULTS = Path(__file__).parents[2] / "results" / "zoo_quick_h200" / "run.json"


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def no_builds(tmp_path, monkeypatch):
    """An empty cache, and building a zoo model fails the test."""
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "cache"))

    def refuse(*args, **kwargs):
        raise AssertionError("a shipped zoo model was built")

    monkeypatch.setattr(build_mod, "_build_into", refuse)
    return tmp_path / "cache"


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch) -> Path:
    """The shipped zoo copied to a temporary folder that zoo names load from (to tamper with)."""
    root = tmp_path / "shipped"
    shutil.copytree(SHIPPED_ROOT, root)
    monkeypatch.setattr(shipped_mod, "SHIPPED_ROOT", root)
    return root


def test_the_default_pair_loads_from_the_shipped_files_with_no_build(no_builds):
    manifest = read_manifest()
    for name in PAIR:
        assert is_shipped(name) and is_built(name)
        ref = resolve_model(name)
        assert ref.path == SHIPPED_ROOT / name
        assert ref.fingerprint == manifest[name]["fingerprint"]
    model, tok, _ = load_model("tiny-llama-y")
    assert model.config.vocab_size == len(tok) == 640
    assert not (no_builds / "zoo").exists()
    r = cli("zoo", "build", *PAIR)
    assert r.exit_code == 0 and r.output.count("shipped, sha256 checked") == 2, r.output


def test_the_manifest_describes_the_shipped_bytes_and_the_committed_results():
    manifest = read_manifest()
    assert set(PAIR) <= set(manifest)
    for name, entry in manifest.items():
        folder = SHIPPED_ROOT / name
        assert {p.name for p in folder.iterdir()} == set(entry["files"])
        for fname, want in entry["files"].items():
            assert sha256_file(folder / fname) == want["sha256"], fname
        assert folder_fingerprint(folder) == entry["fingerprint"]
        assert entry["spec"] == get_spec(name).model_dump(mode="json")
    if RESULTS.is_file():  # the committed study was run on exactly these bases: its cache keys hold
        bases = json.loads(RESULTS.read_text())["bases"]
        assert {n: manifest[n]["fingerprint"] for n in bases} == bases


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("flip", "sha256"),
        ("truncate", "bytes"),
        ("delete", "missing"),
        ("extra", "not part of the shipped zoo"),
    ],
)
def test_a_tampered_shipped_file_is_a_one_line_error(shipped_copy, no_builds, damage, needle):
    folder = shipped_copy / "tiny-llama-y"
    weights = folder / "model.safetensors"
    if damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "delete":
        weights.unlink()
    else:
        weights = folder / "pytorch_model.bin"
        weights.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=needle) as exc:
        build("tiny-llama-y")
    assert str(weights) in str(exc.value) and "\n" not in str(exc.value)
    r = cli("zoo", "build", "tiny-llama-y")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and weights.name in r.output, r.output
    r = cli("eval", "--base", "tiny-llama-y", "--task", "math_add", "--limit", "2")
    assert r.exit_code == 2 and needle in r.output, r.output
    assert resolve_model("tiny-qwen2-x").path == shipped_copy / "tiny-qwen2-x"  # the other is fine
    assert not (no_builds / "zoo").exists()


def test_an_edited_spec_is_another_model_not_the_shipped_one():
    edited = get_spec("tiny-llama-y").with_overrides(steps=5)
    assert not is_shipped(edited) and is_shipped("tiny-llama-y")
    assert is_shipped("tiny-llama-s") and is_shipped("tiny-llama-l")  # the tiers ship too


def test_from_scratch_rebuilds_and_reports_per_file_whether_it_matches(mini_zoo, tmp_path, monkeypatch):
    # Stand-in for the real pair: ship the mini build of tiny-llama-y, then rebuild it from scratch.
    mini = get_spec("tiny-llama-y").with_overrides(steps=4).model_copy(update={"corpus_lines": 1500})
    monkeypatch.setitem(zoo_specs(), "tiny-llama-y", mini)
    monkeypatch.setenv("LORAPORT_CACHE", str(mini_zoo["y"].parent.parent))
    root = tmp_path / "shipped"
    ship(["tiny-llama-y"], root)
    assert (root / "tiny-llama-y" / "model.safetensors").read_bytes() == (
        mini_zoo["y"] / "model.safetensors"
    ).read_bytes()
    monkeypatch.setattr(shipped_mod, "SHIPPED_ROOT", root)
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "cache"))
    r = cli("zoo", "build", "tiny-llama-y")  # shipped: no build
    assert r.exit_code == 0 and "shipped, sha256 checked" in r.output and str(root) in r.output

    r = cli("zoo", "build", "--from-scratch", "tiny-llama-y")
    assert r.exit_code == 0, r.output
    rebuilt = mini.folder()
    assert rebuilt.is_relative_to(tmp_path / "cache") and str(rebuilt) in r.output
    assert (
        r.output.count("matches the shipped sha256") == 5
    )  # config, generation config, weights, tokenizer ×2
    assert "matches the shipped files byte for byte" in r.output

    # a shipped zoo made on another CPU: same build code, other floats
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["models"]["tiny-llama-y"]["files"]["model.safetensors"]["sha256"] = "0" * 64
    (root / MANIFEST).write_text(json.dumps(manifest))
    checks = {c.name: c.matches for c in compare_with_shipped("tiny-llama-y", rebuilt)}
    assert checks == {
        "config.json": True,
        "generation_config.json": True,
        "model.safetensors": False,
        "tokenizer.json": True,
        "tokenizer_config.json": True,
    }
    r = cli("zoo", "build", "--from-scratch", "tiny-llama-y")
    assert r.exit_code == 0, r.output
    assert "model.safetensors        differs: rebuilt" in r.output and "shipped 000000000000…" in r.output
    assert "1 of 5 files differ from the shipped ones" in r.output
    assert compare_with_shipped("tiny-llama-s", rebuilt) is None  # not in this manifest: nothing to compare
