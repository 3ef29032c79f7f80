"""The embedded zoo: specs as data, content addresses, atomic cached builds, two real tokenizers."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from loraport.errors import ModelLoadError
from loraport.models import load_model
from loraport.models.resolve import folder_fingerprint
from loraport.zoo import get_spec, zoo_specs
from loraport.zoo.build import MARKER, build, build_many
from loraport.zoo.tokenizer import build_tokenizer


def test_default_pair_differs_in_every_way_the_study_needs():
    x, y = get_spec("tiny-qwen2-x"), get_spec("tiny-llama-y")
    assert (x.role, y.role) == ("source", "target")
    assert x.family != y.family and x.tokenizer != y.tokenizer and x.seed != y.seed
    for key in ("hidden_size", "num_hidden_layers"):
        assert x.config[key] != y.config[key]
    gqa = x.config["num_key_value_heads"] < x.config["num_attention_heads"]
    mha = y.config["num_key_value_heads"] == y.config["num_attention_heads"]
    assert gqa and mha
    tiers = [s for s in zoo_specs().values() if s.family == "llama"]
    assert len({s.config["hidden_size"] for s in tiers}) >= 3


def test_digest_changes_with_the_spec_only():
    y = get_spec("tiny-llama-y")
    assert y.digest() == get_spec("tiny-llama-y").digest()
    assert y.with_overrides(steps=5).digest() != y.digest()
    assert y.folder().name.startswith("tiny-llama-y-")


def test_unknown_zoo_name_suggests_the_closest():
    with pytest.raises(ModelLoadError, match="tiny-llama-y"):
        get_spec("tiny-lama-y")


def test_tokenizers_are_genuinely_different_and_lossless():
    lines = ["zorbs are red. zorbs have 6 legs.", "def f(x): return x*3+1  # f(2) is 7"] * 200
    chars = build_tokenizer("bytes", lines)
    bpe = build_tokenizer("bpe", lines, 300)
    text = "zorbs are red. def f(x): return x*3+1  # 13 cups?"
    for tok in (chars, bpe):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert (tok.pad_token_id, tok.eos_token_id) == (0, 1)
    assert len(bpe(text)["input_ids"]) < len(chars(text)["input_ids"]) == len(text)
    assert [t for t in bpe.convert_ids_to_tokens(bpe("13")["input_ids"])] == ["1", "3"]  # digits split


def test_build_is_cached_atomic_and_loadable(mini_zoo, tmp_path, monkeypatch):
    for _key, folder in mini_zoo.items():
        record = json.loads((folder / MARKER).read_text())
        assert record["spec"]["pretrain"]["steps"] == 4 and record["parameters"] > 100_000
        model, tok, _ref = load_model(folder)
        assert tok is not None and model.config.vocab_size == len(tok)
    assert not [p for p in mini_zoo["y"].parent.iterdir() if p.name.endswith(".tmp")]
    # a second build is a cache hit: same folder, untouched
    monkeypatch.setenv("LORAPORT_CACHE", str(mini_zoo["y"].parent.parent))
    spec = get_spec("tiny-llama-y").with_overrides(steps=4).model_copy(update={"corpus_lines": 1500})
    mtime = (mini_zoo["y"] / MARKER).stat().st_mtime_ns
    assert build(spec, progress=False) == mini_zoo["y"]
    assert (mini_zoo["y"] / MARKER).stat().st_mtime_ns == mtime


def test_build_is_deterministic_in_parallel_and_on_any_thread_count(mini_zoo, tmp_path, monkeypatch):
    """Building side by side in worker processes, with another thread count around, gives the very
    weights of the one-at-a-time fixture build."""
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path))
    specs = [
        get_spec(name).with_overrides(steps=4).model_copy(update={"corpus_lines": 1500})
        for name in ("tiny-qwen2-x", "tiny-llama-y")
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folders = build_many(specs, workers=2, progress=False)
    finally:
        torch.set_num_threads(threads)
    for key, again in zip(("x", "y"), folders, strict=True):
        assert again != mini_zoo[key] and json.loads((again / MARKER).read_text())["threads"] == 2
        a = load_file(mini_zoo[key] / "model.safetensors")
        b = load_file(again / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        # the build record (with its build time) is not part of the model's content address
        assert folder_fingerprint(again) == folder_fingerprint(mini_zoo[key])
