"""Chat templates: resolved per tokenizer, applied the same way in training, generation and scoring."""

from __future__ import annotations

import shutil

import pytest
import torch

from loraport.errors import ModelLoadError
from loraport.evaluate.generate import continuation_logprobs, generate
from loraport.models import load_model, load_tokenizer
from loraport.models.chat import chat_format, resolve_chat, use_chat_template
from loraport.tasks import Item
from loraport.train.data import encode_examples

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def chat_model(mini_zoo, tmp_path_factory):
    """The mini zoo's Y with three turn tokens added and a chat template in its tokenizer config."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("chat") / "y-chat"
    shutil.copytree(mini_zoo["y"], out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>", "<|end|>"]})
    tok.chat_template = TEMPLATE
    tok.save_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(out)
    return out


def test_auto_takes_the_tokenizers_template_and_its_end_of_turn(chat_model):
    tok = load_tokenizer(chat_model)
    fmt = chat_format(tok)
    end = tok.convert_tokens_to_ids("<|end|>")
    assert fmt.active and fmt.source == "tokenizer" and fmt.digest
    assert fmt.answer_end == (end,) and set(fmt.stop_ids) == {end, tok.eos_token_id}
    assert fmt.render("2+3=") == "<|user|>2+3=<|end|><|assistant|>"


def test_none_and_templateless_models_get_raw_prompts(chat_model, mini_zoo):
    with use_chat_template("none"):
        assert not chat_format(load_tokenizer(chat_model)).active
    plain = chat_format(load_tokenizer(mini_zoo["y"]))  # the zoo has no template: auto means raw
    assert not plain.active and plain.render("2+3=") == "2+3=" and plain.digest == ""


def test_training_targets_end_with_the_end_of_turn_token(chat_model):
    tok = load_tokenizer(chat_model)
    end = tok.convert_tokens_to_ids("<|end|>")
    ((ids, n_prompt),) = encode_examples(tok, [Item("a", "2+3=", "5", "numeric_flexible")], 64, "test")
    prompt_ids = tok("<|user|>2+3=<|end|><|assistant|>", add_special_tokens=False)["input_ids"]
    assert ids[:n_prompt] == prompt_ids and ids[-1] == end
    assert tok.decode(ids[n_prompt:-1]) == "5"
    with use_chat_template("none"):
        ((raw, n_raw),) = encode_examples(
            load_tokenizer(chat_model), [Item("a", "2+3=", "5", "numeric_flexible")], 64, "t"
        )
    assert raw[-1] == tok.eos_token_id and n_raw < n_prompt


def test_generation_and_loglik_see_the_same_rendered_prompt(chat_model, monkeypatch):
    model, tok, _ = load_model(chat_model)
    end = tok.convert_tokens_to_ids("<|end|>")
    seen = {}
    real_generate = model.generate

    def spy(**kw):
        seen.update(kw)
        return real_generate(**kw)

    monkeypatch.setattr(model, "generate", spy)
    generate(model, tok, ["2+3="], max_new_tokens=3)
    rendered = tok("<|user|>2+3=<|end|><|assistant|>", add_special_tokens=False)["input_ids"]
    assert seen["input_ids"][0, -len(rendered) :].tolist() == rendered
    assert end in seen["eos_token_id"] and tok.eos_token_id in seen["eos_token_id"]
    # The log-likelihood scorer conditions on the same rendered context (answer without its leading space).
    ((lp, n),) = continuation_logprobs(model, tok, [("2+3=", " 5")])
    ids = torch.tensor([[*rendered, *tok("5", add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    expect = sum(float(logp[len(rendered) - 1 + i, t]) for i, t in enumerate(ids[0, len(rendered) :]))
    assert n == ids.shape[1] - len(rendered) and lp == pytest.approx(expect, abs=1e-4)


def test_generation_stops_at_the_end_of_turn_token(chat_model):
    """A model whose head always prefers <|end|> stops after one token, and the text is empty."""
    model, tok, _ = load_model(chat_model)
    end = tok.convert_tokens_to_ids("<|end|>")
    with torch.no_grad():
        head = model.get_output_embeddings()
        head.weight.zero_()
        if getattr(head, "bias", None) is not None:
            head.bias.zero_()
        head.weight[end] = 1.0  # logits = hidden · e_end ... make <|end|> win for any hidden state
        model.model.norm.weight.fill_(0.0)
        model.model.norm.weight[0] = 1.0
    assert generate(model, tok, ["2+3=", "7"], max_new_tokens=5) == ["", ""]


def test_family_template_where_the_checkpoint_has_none(tiny_models, tmp_path):
    """A Gemma-3 checkpoint without a template gets the family's documented turn format under
    `family`, and raw prompts under `auto`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(
        models.WordLevel(
            {
                "<pad>": 0,
                "<bos>": 1,
                "<eos>": 2,
                "<start_of_turn>": 3,
                "<end_of_turn>": 4,
                "[UNK]": 5,
                "hi": 6,
                "user": 7,
                "model": 8,
            },
            unk_token="[UNK]",
        )
    )
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    from loraport.models import load_config

    assert not resolve_chat(tok, load_config(tiny_models["gemma3"]), "auto").active  # a base model: raw
    fmt = resolve_chat(tok, load_config(tiny_models["gemma3"]), "family")
    assert fmt.source == "family:gemma3"
    assert fmt.render("hi") == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert fmt.answer_end == (4,) and set(fmt.stop_ids) == {4, 2}


def test_a_template_that_fails_to_render_is_one_line(chat_model):
    tok = load_tokenizer(chat_model)
    tok.chat_template = "{% for m in messages %}{{ m['content'] | no_such_filter }}{% endfor %}"
    with pytest.raises(ModelLoadError) as err:
        resolve_chat(tok, None, "auto")
    assert "chat template failed to render" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="chat_template: 'chatml' is not one of auto, family, none"):
        resolve_chat(tok, None, "chatml")
