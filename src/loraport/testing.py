"""Small, deterministic model checkpoints for tests, demos and the embedded zoo.

    from loraport.testing import build_tiny_model
    path = build_tiny_model("qwen2", tmp / "x", hidden_size=64, num_layers=2, num_heads=4,
                            num_kv_heads=2, intermediate_size=128)

`build_tiny_model` writes a random-initialised transformers checkpoint (config.json, generation
config and safetensors weights; no tokenizer, no download). The same arguments and seed give
bit-identical weights. `write_llama_gguf` exports a llama checkpoint to a small GGUF file with a
byte-level tokenizer, so the GGUF path can be tested without the real downloads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loraport.errors import ModelLoadError, closest
from loraport.io import atomic_dir

__all__ = ["TINY_FAMILIES", "build_tiny_model", "write_llama_gguf"]

# family -> (model_type, config keys fixed for that family). `head_dim` marks families whose config
# carries an explicit head_dim (it may differ from hidden_size // num_heads there).
TINY_FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {"model_type": "llama", "head_dim": True},
    "mistral": {"model_type": "mistral", "head_dim": True, "extra": {"sliding_window": None}},
    "qwen2": {"model_type": "qwen2", "head_dim": False},
    "qwen3": {"model_type": "qwen3", "head_dim": True},
    "gemma": {"model_type": "gemma", "head_dim": True},
    "gemma2": {"model_type": "gemma2", "head_dim": True, "query_scale": True},
    "gemma3": {"model_type": "gemma3_text", "head_dim": True, "query_scale": True},
    "phi3": {"model_type": "phi3", "head_dim": False},
}
_ALIASES = {"gemma3_text": "gemma3"}


def build_tiny_model(
    family: str,
    out_dir: str | Path,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    vocab_size: int = 256,
    head_dim: int | None = None,
    tie_word_embeddings: bool | None = None,
    max_position_embeddings: int = 1024,
    seed: int = 0,
    force: bool = False,
    **config_overrides: Any,
) -> Path:
    """Write a random-initialised causal-LM checkpoint of `family` to `out_dir` and return it.

    Families: llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3 (text-only, model_type
    gemma3_text) and phi3. `head_dim` defaults to hidden_size // num_heads and is written to the
    config wherever the family has the field (qwen2 and phi3 derive it and must divide evenly).
    `tie_word_embeddings` defaults to the family's own default. Special token ids default to
    pad 0, bos 1, eos 2 so they fit small vocabularies. Extra keyword arguments go to the config.
    The folder is written atomically; an existing `out_dir` raises unless `force`.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    family = _ALIASES.get(family, family)
    if family not in TINY_FAMILIES:
        raise ModelLoadError(
            f"unknown tiny model family {family!r}{closest(family, TINY_FAMILIES)}; "
            f"valid: {', '.join(sorted(TINY_FAMILIES))}"
        )
    spec = TINY_FAMILIES[family]
    if num_heads <= 0 or num_kv_heads <= 0 or num_heads % num_kv_heads:
        raise ValueError(
            f"num_heads ({num_heads}) must be a positive multiple of num_kv_heads ({num_kv_heads})"
        )
    derived = hidden_size // num_heads
    if head_dim is None:
        if hidden_size % num_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}; give head_dim"
            )
        head_dim = derived
    if not spec["head_dim"] and (head_dim != derived or hidden_size % num_heads):
        raise ValueError(
            f"{family} derives head_dim = hidden_size // num_heads ({hidden_size} // {num_heads}); "
            f"head_dim={head_dim} is not possible for this family"
        )
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for rotary embeddings, got {head_dim}")

    kwargs: dict[str, Any] = {
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "intermediate_size": intermediate_size,
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position_embeddings,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if spec["head_dim"]:
        kwargs["head_dim"] = head_dim
    if spec.get("query_scale"):
        kwargs["query_pre_attn_scalar"] = head_dim
    if family == "phi3":
        kwargs["original_max_position_embeddings"] = max_position_embeddings
    kwargs.update(spec.get("extra", {}))
    if tie_word_embeddings is not None:
        kwargs["tie_word_embeddings"] = tie_word_embeddings
    kwargs.update(config_overrides)
    config = AutoConfig.for_model(spec["model_type"], **kwargs)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    with atomic_dir(out_dir, force=force) as tmp:
        model.save_pretrained(tmp)
    return Path(out_dir)


def _permute_qk(weights: Any, n_head: int) -> Any:
    """llama.cpp's rotary permutation of q/k rows (what transformers undoes when reading a GGUF)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_llama_gguf(
    checkpoint: str | Path,
    out_path: str | Path,
    *,
    qtype: str = "F32",
    name: str = "tiny-llama",
    chat_template: str | None = None,
    add_bos: bool = False,
) -> Path:
    """Export a llama checkpoint (e.g. from `build_tiny_model("llama", ...)`) to a GGUF file.

    Weight matrices are stored as `qtype` ("F32", "F16" or "Q8_0"; Q8_0 needs row lengths that
    are multiples of 32); norms stay F32. When the vocabulary has at least 259 entries a byte-level
    tokenizer is embedded: ids 0..2 are <pad>, <s>, <|endoftext|> (eos), ids 3..258 the 256 bytes, then up to four
    merged pairs (he, in, th, Ġt), the rest unused control tokens; `add_bos` is its
    `tokenizer.ggml.add_bos_token` flag. The file is written atomically (temporary sibling, then rename).
    """
    import gguf
    import numpy as np
    from safetensors.numpy import load_file
    from transformers import AutoConfig
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    checkpoint = Path(checkpoint)
    config = AutoConfig.from_pretrained(checkpoint, local_files_only=True)
    if config.model_type != "llama":
        raise ValueError(
            f"{checkpoint}: write_llama_gguf handles llama checkpoints, not {config.model_type!r}"
        )
    quant = {"F32": None, "F16": None, "Q8_0": gguf.GGMLQuantizationType.Q8_0}
    if qtype not in quant:
        raise ValueError(f"qtype must be one of {sorted(quant)}, got {qtype!r}")

    state: dict[str, np.ndarray] = {}
    for file in sorted(checkpoint.glob("*.safetensors")):
        state.update(load_file(file))
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.head_dim

    def hf_to_gguf(hf: str) -> str:
        if hf == "model.embed_tokens.weight":
            return "token_embd.weight"
        if hf == "model.norm.weight":
            return "output_norm.weight"
        if hf == "lm_head.weight":
            return "output.weight"
        parts = hf.split(".")  # model.layers.{i}.{block}.{proj}.weight
        i, rest = parts[2], ".".join(parts[3:])
        table = {
            "input_layernorm.weight": "attn_norm.weight",
            "post_attention_layernorm.weight": "ffn_norm.weight",
            "self_attn.q_proj.weight": "attn_q.weight",
            "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight",
            "self_attn.o_proj.weight": "attn_output.weight",
            "mlp.gate_proj.weight": "ffn_gate.weight",
            "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight",
        }
        if rest not in table:
            raise ValueError(f"{checkpoint}: tensor {hf} has no GGUF name in write_llama_gguf")
        return f"blk.{i}.{table[rest]}"

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.writing")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    rope_theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta") or getattr(
        config, "rope_theta", 10000.0
    )
    writer.add_rope_freq_base(float(rope_theta))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if qtype == "F32" else gguf.LlamaFileType.MOSTLY_F16)

    if config.vocab_size >= 259:
        spelling = bytes_to_unicode()
        tokens = ["<pad>", "<s>", "<|endoftext|>"] + [spelling[b] for b in range(256)]
        merges = [("h", "e"), ("i", "n"), ("t", "h"), ("Ġ", "t")][: config.vocab_size - len(tokens)]
        tokens += ["".join(pair) for pair in merges]
        types = [3, 3, 3] + [1] * (len(tokens) - 3)
        tokens += [f"<unused{i}>" for i in range(config.vocab_size - len(tokens))]
        types += [3] * (config.vocab_size - len(types))
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_scores([0.0] * len(tokens))
        if merges:
            writer.add_token_merges([" ".join(pair) for pair in merges])
        writer.add_pad_token_id(0)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_add_bos_token(add_bos)
        if chat_template is not None:
            writer.add_chat_template(chat_template)

    for hf_name in sorted(state, key=_tensor_order):
        data = state[hf_name].astype(np.float32)
        gg_name = hf_to_gguf(hf_name)
        if gg_name.endswith("attn_q.weight"):
            data = _permute_qk(data, n_head)
        elif gg_name.endswith("attn_k.weight"):
            data = _permute_qk(data, n_kv)
        if data.ndim == 1 or qtype == "F32":
            writer.add_tensor(gg_name, np.ascontiguousarray(data))
        elif qtype == "F16":
            writer.add_tensor(gg_name, np.ascontiguousarray(data.astype(np.float16)))
        else:
            packed = gguf.quants.quantize(np.ascontiguousarray(data), quant[qtype])
            writer.add_tensor(gg_name, packed, raw_dtype=quant[qtype])
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def _tensor_order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    layer = int(parts[2]) if len(parts) > 2 and parts[1] == "layers" and parts[2].isdigit() else -1
    return (layer, name)


def write_run_meta(root: str | Path, study: Any, plan: Any) -> Path:
    """The run.json of a study run made by hand (records written by a test, nothing computed), so
    that `build_report(root)` can render it: the study, its plan's fingerprints and skipped cells, and
    empty provenance. Returns the path written."""
    import json

    meta = {
        "study": study.model_dump(mode="json"),
        "loraport_version": "test",
        "python": "3",
        "torch": None,
        "bases": plan.fingerprints,
        "executor": "local",
        "workers": 1,
        "device": "cpu",
        "seconds": 0.0,
        "stage_seconds": {},
        "cells": {},
        "computed": {},
        "skipped": plan.skipped,
    }
    path = Path(root) / "run.json"
    path.write_text(json.dumps(meta))
    return path
