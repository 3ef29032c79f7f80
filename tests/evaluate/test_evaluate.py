"""Evaluation: greedy generation with stop rules, log-likelihood ranking against known preferences,
per-item records, adapters merged exactly as PEFT applies them."""

from __future__ import annotations

import math

import pytest
import torch

from loraport.evaluate import EvalResult, continuation_logprobs, evaluate, evaluate_items, generate
from loraport.evaluate.generate import shared_prefix_length
from loraport.models import load_model
from loraport.tasks import Item, get_task
from loraport.testing import build_tiny_model
from loraport.train import Recipe, train_lora


def biased_model(folder, favour: dict[str, float]):
    """A zoo model whose next-token distribution is fixed: logits = a bias vector (the hidden state
    is multiplied by zero), so every preference is known exactly."""
    model, tok, _ = load_model(folder)
    hidden, vocab = model.config.hidden_size, len(tok)
    head = torch.nn.Linear(hidden, vocab, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for text, value in favour.items():
            (tid,) = tok(text, add_special_tokens=False)["input_ids"]
            head.bias[tid] = value
    model.lm_head = head.to(model.device)
    return model, tok, torch.log_softmax(head.bias.detach().cpu(), -1)


def test_loglik_ranking_follows_known_preferences(mini_zoo):
    model, tok, logp = biased_model(mini_zoo["y"], {" x": 6.0, " y": 3.0})
    pairs = [("q", " x"), ("q", " y"), ("q", " x y"), ("q", " zz")]
    got = continuation_logprobs(model, tok, pairs)
    for (_, cont), (lp, n) in zip(pairs, got, strict=True):
        ids = tok(cont, add_special_tokens=False)["input_ids"]
        assert n == len(ids) and lp == pytest.approx(float(logp[ids].sum()), abs=1e-4)
    item = Item("i1", "what? ", "B", "loglik_choice", choices=("y", "x", "zz"), meta={"question": "what?"})
    res = evaluate_items(model, tok, [item], ["loglik_choice"], task="t")
    (rec,) = res.records
    assert rec.extracted == "B" and rec.correct and rec.prediction == "x"


def test_uniform_model_prefers_fewer_tokens(mini_zoo):
    model, tok, _ = biased_model(mini_zoo["y"], {})
    (a, na), (b, nb) = continuation_logprobs(model, tok, [("q", "ab"), ("q", "abcdef")])
    v = len(tok)
    assert a == pytest.approx(-na * math.log(v), abs=1e-3) and b == pytest.approx(-nb * math.log(v), abs=1e-3)


@pytest.mark.parametrize(("favour", "expected"), [("x", "x" * 7), ("<eos>", ""), ("\n", "")])
def test_greedy_generation_stops_at_eos_newline_or_budget(mini_zoo, favour, expected):
    model, tok, _ = biased_model(mini_zoo["y"], {favour: 9.0})
    assert generate(model, tok, ["a", "a longer prompt"], max_new_tokens=7) == [expected, expected]


def test_batched_generation_equals_one_at_a_time(mini_zoo):
    model, tok, _ = load_model(mini_zoo["x"])
    prompts = [it.prompt for it in get_task("math_add").items("eval", 5)] + ["# f(x): x plus 1\n"]
    batched = generate(model, tok, prompts, max_new_tokens=12, batch=4)
    single = [generate(model, tok, [p], max_new_tokens=12)[0] for p in prompts]
    assert batched == single


def test_records_summary_and_roundtrip(mini_zoo, tmp_path):
    res = evaluate(mini_zoo["y"], "sci_color", n=6)
    assert res.scorers() == ["choice_letter", "loglik_choice"]
    s = res.summary()
    assert s["choice_letter"]["n"] == s["loglik_choice"]["n"] == 6
    assert all(r.status in ("ok", "invalid") for r in res.records)
    back = EvalResult.load(res.save(tmp_path / "e.jsonl"))
    assert back.records == res.records and back.summary() == s
    assert back.provenance["base"]["fingerprint"] and back.provenance["n"] == 6


def test_empty_code_output_is_invalid_before_any_program_runs(mini_zoo):
    model, tok, _ = biased_model(mini_zoo["y"], {"<eos>": 9.0})
    items = get_task("code_affine").items("eval", 2)
    res = evaluate_items(model, tok, items, ["code_exec"], task="code_affine")
    assert [r.correct for r in res.records] == [False, False]
    assert all(r.status == "invalid" for r in res.records)  # empty output: no program


def test_code_items_are_run_in_the_sandbox(mini_zoo, monkeypatch):
    """One passing and one failing program go through evaluate_items into the sandbox: the
    verdicts come from running them (the memo of earlier verdicts is emptied first)."""
    import loraport.evaluate.run as run_mod
    import loraport.scorers.code as code

    model, tok, _ = biased_model(mini_zoo["y"], {"<eos>": 9.0})
    items = get_task("code_affine").items("eval", 2)
    good = items[0].answer
    bad = items[1].answer.replace(items[1].meta["body"], items[1].meta["body"] + "+1")
    assert bad != items[1].answer
    monkeypatch.setattr(run_mod, "generate", lambda *a, **k: [good, bad])
    monkeypatch.setattr(code, "_VERDICTS", {})
    ran: list[str] = []

    def spy(sources, **kw):
        ran.extend(sources)
        return real_run_many(sources, **kw)

    real_run_many = code.run_many
    monkeypatch.setattr(code, "run_many", spy)
    res = evaluate_items(model, tok, items, ["code_exec"], task="code_affine")
    assert len(ran) == 2
    assert [r.correct for r in res.records] == [True, False]
    assert [r.status for r in res.records] == ["ok", "ok"]  # the wrong program ran and failed
    assert [r.prediction for r in res.records] == [good, bad]


def test_merged_adapter_matches_peft(mini_zoo, tmp_path):
    from peft import PeftModel

    out = train_lora(
        mini_zoo["y"],
        "math_add",
        Recipe(rank=4, alpha=8, epochs=1, examples=8, batch=8, lr=5e-2),
        out=tmp_path / "a",
        progress=False,
    )
    from loraport.evaluate import merge_adapter

    ids = torch.tensor([[5, 9, 12, 30, 7]])
    ours, _, _ = load_model(mini_zoo["y"])
    ids = ids.to(ours.device)
    merge_adapter(ours, out)
    peft = PeftModel.from_pretrained(load_model(mini_zoo["y"])[0], str(out))
    with torch.no_grad():
        a, b = ours(input_ids=ids).logits, peft(input_ids=ids).logits
    base = load_model(mini_zoo["y"])[0](input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, base, atol=1e-4)


def test_generation_budget_follows_answers_unless_given(mini_zoo):
    model, tok, _ = biased_model(mini_zoo["y"], {"x": 9.0})
    items = get_task("math_add").items("eval", 2)  # answers are at most 2 digits: budget 2*1.25+4 = 6
    default = evaluate_items(model, tok, items, ["exact_match"], task="math_add")
    wide = evaluate_items(model, tok, items, ["exact_match"], task="math_add", max_new=11)
    assert {r.prediction for r in default.records} == {"x" * 6}
    assert {r.prediction for r in wide.records} == {"x" * 11}


def test_shared_prefix_length_leaves_every_prompt_a_token_of_its_own():
    p = list(range(40))
    assert shared_prefix_length([[*p, 1, 2], [*p, 3]]) == 40
    assert shared_prefix_length([p, [*p, 7]]) == 39  # the shorter keeps its last token
    assert shared_prefix_length([[*p[:20], 1], [*p[:20], 2]]) == 0  # under MIN_SHARED_PREFIX
    assert shared_prefix_length([[*p, 1], p[:10] + [5] * 40]) == 0
    assert shared_prefix_length([[*p, 1]]) == 0


def _spy_cache(model, monkeypatch) -> list[bool]:
    """Records, per model.generate call, whether a prefix cache was handed in."""
    seen: list[bool] = []
    real = model.generate

    def spy(**kw):
        seen.append(any(k in kw for k in ("cache", "past_key_values")))
        return real(**kw)

    monkeypatch.setattr(model, "generate", spy)
    return seen


def _prefix_model(which, mini_zoo, tmp_path):
    """A zoo model and tokenizer, or (`gemma3`) a tiny Gemma-3 whose sliding window (24) is shorter
    than a two-shot prompt, read with the zoo's Y tokenizer."""
    if which == "gemma3":
        from loraport.models import load_tokenizer

        folder = build_tiny_model(
            "gemma3",
            tmp_path / "g3",
            hidden_size=64,
            num_layers=3,
            num_heads=2,
            num_kv_heads=1,
            intermediate_size=128,
            vocab_size=640,
            sliding_window=24,
            seed=3,
        )
        model, _, _ = load_model(folder)
        tok = load_tokenizer(mini_zoo["y"])
        return model, tok
    model, tok, _ = load_model(mini_zoo[which])
    return model, tok


@pytest.mark.parametrize("which", ["x", "y", "gemma3"])
def test_shared_prefix_generation_equals_full_prompts(mini_zoo, tmp_path, monkeypatch, which):
    """Few-shot prompts share their shots: generating from one cached prefix gives the texts that
    full prompts give (byte-level Qwen2 X, BPE Llama Y, and Gemma-3 with a sliding window shorter
    than the prompts), in batches of uneven length."""
    model, tok = _prefix_model(which, mini_zoo, tmp_path)
    prompts = [it.prompt for it in get_task("math_add@2shot").items("eval", 7)]
    assert shared_prefix_length(tok(prompts, add_special_tokens=False)["input_ids"]) >= 32
    full = generate(model, tok, prompts, max_new_tokens=10, batch=3, share_prefix=False)
    seen = _spy_cache(model, monkeypatch)
    shared = generate(model, tok, prompts, max_new_tokens=10, batch=3)
    assert any(full)  # the models say something, so equal texts mean something
    assert seen == [True, True, True] and shared == full


@pytest.mark.parametrize("which", ["x", "y", "gemma3"])
def test_shared_prefix_loglik_equals_full_rows(mini_zoo, tmp_path, monkeypatch, which):
    """Log-likelihoods of answers after two-shot contexts: with the shots run once and continued
    from their cache, the same sums and token counts as full rows, in batches of uneven length."""
    from loraport.train import loss

    model, tok = _prefix_model(which, mini_zoo, tmp_path)
    items = get_task("math_add@2shot").items("eval", 5)
    pairs = [(it.prompt, " " + a) for it in items for a in (it.answer, it.answer + "1", "7")]
    full = continuation_logprobs(model, tok, pairs, batch=4, share_prefix=False)
    prefixes: list[int] = []
    real = loss._hidden

    def spy(lm, ids, mask, prefix):
        prefixes.append(prefix)
        return real(lm, ids, mask, prefix)

    monkeypatch.setattr(loss, "_hidden", spy)
    shared = continuation_logprobs(model, tok, pairs, batch=4)
    assert len(prefixes) == 4 and min(prefixes) >= 32
    for (a, na), (b, nb) in zip(full, shared, strict=True):
        assert na == nb and b == pytest.approx(a, abs=1e-3)
