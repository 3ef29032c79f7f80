"""distill's label-free teacher signals (port.teacher_signal): self-consistency drops prompts whose
samples disagree and keeps stable answers; contrastive-excess weights are higher where the adapter
changes X's prediction, carried to Y's tokens by characters; unit weights train exactly as plain
imitation; the options leave existing plans' keys alone."""

from __future__ import annotations

import pytest
import torch

from loraport.adapters import LowRank, load_adapter, save_adapter
from loraport.arch import arch_for
from loraport.errors import MethodError
from loraport.models import load_model
from loraport.models.chat import chat_format
from loraport.port import get_method
from loraport.port.distill import distill_port
from loraport.port.prompts import task_prompts
from loraport.port.teacher import Answers, encodable_items, teach
from loraport.port.teacher_signal import (
    Excess,
    char_spans,
    contrastive_excess,
    excess_by_item,
    excess_key,
    majority_answers,
    map_weights,
    self_consistent,
    token_weights,
)
from loraport.train import Recipe, train_lora
from loraport.train.lora import train_on_items

TASK = "math_sum_more"
RECIPE = Recipe(rank=2, alpha=4, epochs=1, examples=16, batch=8, lr=0.05)


@pytest.fixture(scope="module")
def kit(mini_zoo, tmp_path_factory):
    """The mini zoo's X adapter for TASK, a zero adapter (ΔW = 0) on X, and greedy teacher answers."""
    root = tmp_path_factory.mktemp("signal")
    x, y = str(mini_zoo["x"]), str(mini_zoo["y"])
    train_lora(x, TASK, RECIPE, out=root / "x", progress=False)
    model, _, _ = load_model(x)
    zero = {
        m.name: LowRank(torch.zeros(m.shape[0], 2), torch.zeros(2, m.shape[1]))
        for m in arch_for(model.config).modules()
    }
    save_adapter(
        root / "zero", zero, rank=2, alpha=4.0, base_model=x, num_layers=model.config.num_hidden_layers
    )
    answers = teach(x, root / "x", task_prompts(TASK, 12, seed=1), max_new_tokens=6)
    return {"root": root, "x": x, "y": y, "adapter": root / "x", "zero": root / "zero", "answers": answers}


def test_majority_needs_more_than_half_of_the_samples():
    won = majority_answers([["12", " 12 ", "7"], ["1", "2", "3"], ["4", "4", "5", "5"], ["", "", "3"]])
    assert won == ["12", None, None, None]  # a tie is no majority; an empty answer never wins


def test_self_consistency_keeps_stable_answers_and_drops_disagreeing_prompts(kit):
    a = kit["answers"]
    # near-zero temperature: every sample is the greedy answer, so nothing is dropped
    cold = self_consistent(kit["x"], kit["adapter"], a, k=3, temperature=1e-4, seed=0)
    kept = [(p, ans) for p, ans in zip(a.prompts, a.answers, strict=True) if ans.strip()]
    assert list(zip(cold.prompts, cold.answers, strict=True)) == kept
    rec = cold.provenance["self_consistency"]
    assert rec["kept"] == len(kept) and rec["prompts"] == len(a.prompts)
    assert cold.generated_tokens > a.generated_tokens and cold.seconds >= a.seconds
    # a huge temperature samples near-uniform tokens: samples disagree and prompts are dropped
    hot = self_consistent(kit["x"], kit["adapter"], a, k=3, temperature=100.0, seed=0)
    assert len(hot.prompts) < len(kept) // 2
    again = self_consistent(kit["x"], kit["adapter"], a, k=3, temperature=100.0, seed=0)
    assert again.prompts == hot.prompts and again.answers == hot.answers  # seeded


def test_weights_are_carried_to_the_target_tokens_by_characters():
    # X splits "123" as "12" | "3" with weights 2 and 0.5; Y as "1" | "23"
    assert map_weights([(0, 2), (2, 3)], [2.0, 0.5], [(0, 1), (1, 3)], fallback=1.0) == [2.0, 1.25]
    # a character no X token covers takes the fallback; an empty Y span too
    assert map_weights([(1, 2)], [3.0], [(0, 2), (2, 2)], fallback=1.0) == [2.0, 1.0]


def test_char_spans_reproduce_the_text(kit):
    for base in ("x", "y"):
        _, tok, _ = load_model(kit[base])
        text = " 1234 + 56"
        ids = tok(text, add_special_tokens=False)["input_ids"]
        spans = char_spans(tok, text, ids)
        assert spans is not None and len(spans) == len(ids)
        assert "".join(text[s:e] for s, e in spans).strip() == text.strip()


def test_excess_is_zero_without_an_adapter_and_weights_follow_it(kit):
    a = kit["answers"]
    flat = contrastive_excess(kit["x"], kit["zero"], a)
    assert all(abs(v) < 1e-5 for e in flat for v in e.values)
    excess = contrastive_excess(kit["x"], kit["adapter"], a)
    assert any(v > 0.1 for e in excess for v in e.values)  # the adapter changes X's predictions
    _, tok, _ = load_model(kit["y"])
    items = encodable_items(tok, a)
    # ΔW = 0: every weight is 1 (plain imitation)
    ones = token_weights(tok, items, excess_by_item(a, flat), floor=0.25)
    assert all(w == pytest.approx(1.0) for row in ones for w in row)
    by_item = excess_by_item(a, excess)
    weights = token_weights(tok, items, by_item, floor=0.25)
    flat_w = [w for row in weights for w in row]
    assert sum(flat_w) / len(flat_w) == pytest.approx(1.0, abs=1e-9) and len(set(flat_w)) > 1
    n_end = len(chat_format(tok).answer_end)
    for it, w in zip(items, weights, strict=True):
        # the heaviest Y token covers the X token with the largest excess
        ex = by_item[excess_key(it.prompt, it.answer)]
        xs, xe = ex.spans[max(range(len(ex.values)), key=ex.values.__getitem__)]
        ids = tok(it.answer, add_special_tokens=False)["input_ids"]
        ys, ye = char_spans(tok, it.answer, ids)[max(range(len(ids)), key=w[: len(w) - n_end].__getitem__)]
        assert ys < xe and xs < ye


def test_a_token_the_adapter_made_likely_weighs_more_than_one_x_writes_anyway(kit):
    """A constructed case: one answer, X's tokens with excess 3 on the first and 0 on the rest."""
    _, tok_x, _ = load_model(kit["x"])
    _, tok_y, _ = load_model(kit["y"])
    answer = " 1234"
    ids = tok_x(answer, add_special_tokens=False)["input_ids"]
    spans = char_spans(tok_x, answer, ids)
    values = [3.0] + [0.0] * (len(ids) - 1)
    a = Answers(["2 + 3 ="], [answer], len(ids), 0.0)
    items = a.items()
    w = token_weights(tok_y, items, excess_by_item(a, [Excess(spans, values)]), floor=0.25)[0]
    y_ids = tok_y(answer, add_special_tokens=False)["input_ids"]
    y_spans = char_spans(tok_y, answer, y_ids)
    first_x_end = spans[0][1]
    hot = [i for i, (s, e) in enumerate(y_spans) if e > s and e <= first_x_end]
    cold = [i for i, (s, e) in enumerate(y_spans) if s >= first_x_end]
    assert hot and cold and min(w[i] for i in hot) > max(w[i] for i in cold)
    # no offsets from X: one sequence-level weight on every token
    w_seq = token_weights(tok_y, items, excess_by_item(a, [Excess(None, values)]), floor=0.25)[0]
    assert w_seq == pytest.approx([1.0] * len(w_seq))


def test_unit_weights_train_as_plain_imitation(kit):
    model, tok, _ = load_model(kit["y"])
    items = encodable_items(tok, kit["answers"])
    recipe = Recipe(rank=2, alpha=4, lr=5e-3, batch=4, examples=len(items), epochs=1, max_length=512)
    plain = train_on_items(model, tok, items, recipe, progress=False, steps=3)
    n_end = len(chat_format(tok).answer_end)
    ones = [[1.0] * (len(tok(it.answer, add_special_tokens=False)["input_ids"]) + n_end) for it in items]
    weighted = train_on_items(model, tok, items, recipe, progress=False, steps=3, weights=ones)
    assert weighted.losses == pytest.approx(plain.losses, rel=1e-4)
    for m, f in plain.modules.items():
        assert torch.allclose(weighted.modules[m].dense(), f.dense(), atol=1e-5)


def test_distill_with_both_signals_records_them(kit):
    method = get_method("distill", consistency=3, temperature=1e-4, weighting="excess")
    answers, signal = method.signal(kit["x"], kit["adapter"], kit["answers"], seed=0)
    assert "self_consistency" in answers.provenance and len(signal["excess"]) == len(answers.prompts)
    out = distill_port(kit["y"], answers, kit["root"] / "d", steps=2, rank=2, alpha=4, **signal)
    prov = load_adapter(out).provenance
    assert prov["signal"]["weighting"] == "excess" and prov["signal"]["max_weight"] > 1
    assert prov["teacher"]["self_consistency"]["k"] == 3


def test_the_options_are_typed_and_off_by_default():
    assert get_method("distill").options() == {
        "prompts": 512,
        "prompt_seed": 1,
        "max_new_tokens": 64,
        "init": "zero",
        "steps": 60,
        "seconds": None,
        "lr": 5e-3,
    }  # as before the options existed: cache keys of existing plans stay the same
    on = get_method("distill", consistency=5, weighting="excess").options()
    assert on["consistency"] == 5 and on["weighting"] == "excess"
    with pytest.raises(MethodError, match=r"option temperature: .*set consistency"):
        get_method("distill", temperature=1.0)
    with pytest.raises(MethodError, match="option weighting"):
        get_method("distill", weighting="entropy")
    with pytest.raises(MethodError, match="option consistency"):
        get_method("distill", consistency=1)


def test_a_study_plans_each_signal_as_its_own_distill_cell_on_the_same_teacher():
    from loraport.bench.plan import make_plan
    from loraport.bench.spec import Study

    def cells(options):
        study = Study(
            name="signal",
            source="base-x",
            target="base-y",
            anchors=["math_add", "math_mul"],
            heldout=[TASK],
            methods={"distill": options},
            n_anchors=[2],
            seeds=[0],
            eval={"n": 10},
        )
        plan = make_plan(study, {"base-x": "fp-x", "base-y": "fp-y"})
        teach = {c.key for c in plan.by_kind("teach")}
        return teach, {c.label: c.key for c in plan.by_kind("distill")}

    teach0, plain = cells({})
    teach1, voted = cells({"consistency": 5})
    teach2, weighted = cells({"weighting": "excess", "weight_floor": 0.5})
    assert teach0 == teach1 == teach2  # one teacher-answers cell serves every variant
    keys = [set(c.values()) for c in (plain, voted, weighted)]
    assert all(len(k) == 1 for k in keys) and len(set.union(*keys)) == 3
    assert "distill[consistency=5]" in " ".join(voted)
    assert "weighting=excess" in " ".join(weighted)
