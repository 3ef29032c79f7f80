"""spanfit, distill, the teacher, prompts and the random control, on the mini zoo."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from loraport.adapters import LowRank, load_adapter
from loraport.cli.main import app
from loraport.device import module_device, to_device
from loraport.errors import MethodError
from loraport.models import load_config, load_model
from loraport.port import AnchorPair, AnchorsSpec, fit_map, port_weights
from loraport.port.apply import target_anchor_factors
from loraport.port.controls import random_like, random_port
from loraport.port.distill import distill_port
from loraport.port.prompts import check_disjoint_prompts, read_prompts, task_prompts
from loraport.port.spanfit import SpanHooks, _objective, fit_span_weights, spanfit_port
from loraport.port.teacher import Answers, encodable_items, teach
from loraport.tasks import get_task
from loraport.train import Recipe, train_lora
from loraport.train.data import collate, encode_examples

TASK = "math_sum_more"
RECIPE = Recipe(rank=2, alpha=4, epochs=1, examples=16, batch=8, lr=0.05)


@pytest.fixture(scope="module")
def kit(mini_zoo, tmp_path_factory):
    """Mini-zoo adapters: three anchor pairs, the held-out task's X adapter, its teacher answers."""
    root = tmp_path_factory.mktemp("behaviour")
    x, y = str(mini_zoo["x"]), str(mini_zoo["y"])
    pairs = []
    for t in ("math_add", "math_sub", "math_mul"):
        train_lora(x, t, RECIPE, out=root / "x" / t, progress=False)
        train_lora(y, t, RECIPE, out=root / "y" / t, progress=False)
        pairs.append(AnchorPair(task=t, source=root / "x" / t, target=root / "y" / t))
    train_lora(x, TASK, RECIPE, out=root / "x" / TASK, progress=False)
    answers = teach(x, root / "x" / TASK, task_prompts(TASK, 24, seed=1), max_new_tokens=6)
    spec = AnchorsSpec(source_base=x, target_base=y, pairs=pairs)
    return {"root": root, "x": x, "y": y, "spec": spec, "adapter": root / "x" / TASK, "answers": answers}


def test_task_prompts_never_repeat_eval_items():
    prompts = task_prompts(TASK, 200, seed=1)
    check_disjoint_prompts(prompts, TASK, n_eval=300)  # no error
    leak = get_task(TASK).items("eval", 3)[2].prompt
    with pytest.raises(MethodError, match="eval item"):
        check_disjoint_prompts([*prompts[:5], "  " + leak], TASK, n_eval=300)


def test_read_prompts_errors_name_the_line(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(MethodError, match=r"p.jsonl:2: needs a non-empty string field 'prompt'"):
        read_prompts(p)
    p.write_text('{"prompt": "a"}\nnot json\n')
    with pytest.raises(MethodError, match=r"p.jsonl:2: not JSON"):
        read_prompts(p)
    p.write_text('{"prompt": "a", "answer": "ignored"}\n')
    assert read_prompts(p) == ["a"]


def test_teacher_answers_round_trip(kit, tmp_path):
    a = kit["answers"]
    assert len(a.answers) == 24 and a.generated_tokens > 0 and a.seconds > 0
    back = Answers.load(a.save(tmp_path / "t.jsonl"))
    assert back.answers == a.answers and back.prompts == a.prompts
    assert back.generated_tokens == a.generated_tokens
    (tmp_path / "bad.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(MethodError, match="not a teacher-answers file"):
        Answers.load(tmp_path / "bad.jsonl")


def _loss_at(model, tok, items, anchors, w):
    pad = tok.pad_token_id
    ex = encode_examples(tok, items, 256, "t")
    hooks = SpanHooks(model, anchors, w)
    try:
        dev = module_device(model)
        return _objective(model, [to_device(collate(ex[i : i + 8], pad), dev) for i in range(0, len(ex), 8)])
    finally:
        hooks.remove()


@pytest.mark.parametrize("lr", [0.05, 500.0])
def test_spanfit_never_worse_than_its_ridge_start(kit, lr):
    fmap = fit_map(kit["spec"], "global_ridge", load_config(kit["x"]), load_config(kit["y"]))
    inputs = port_weights(fmap, kit["adapter"])
    w0 = next(iter(inputs.weights.values()))
    model, tok, _ = load_model(kit["y"])
    anchors = target_anchor_factors(fmap)
    items = encodable_items(tok, kit["answers"])
    w, rec = fit_span_weights(model, tok, items, anchors, w0, steps=15, lr=lr, batch=8)
    start = _loss_at(model, tok, items, anchors, w0)
    end = _loss_at(model, tok, items, anchors, w)
    assert end <= start + 1e-6
    assert rec["start_loss"] == pytest.approx(start, rel=1e-4)
    if rec["kept"].startswith("ridge"):
        assert torch.equal(w, w0.double())


def test_spanfit_on_a_large_vocabulary_fits_the_same_weights_from_answer_logits(kit, monkeypatch):
    """Where the vocabulary is large (here: the threshold lowered to the zoo's 640 tokens) spanfit's
    loss computes the output layer at answer positions only; the fit is the same up to rounding."""
    import loraport.port.spanfit as spanfit_mod
    import loraport.train.loss as loss_mod

    fmap = fit_map(kit["spec"], "global_ridge", load_config(kit["x"]), load_config(kit["y"]))
    w0 = next(iter(port_weights(fmap, kit["adapter"]).weights.values()))
    model, tok, _ = load_model(kit["y"])
    anchors = target_anchor_factors(fmap)
    items = encodable_items(tok, kit["answers"])
    full_w, full = fit_span_weights(model, tok, items, anchors, w0, steps=6, lr=0.05, batch=8)
    calls = []
    real_answer_loss = spanfit_mod.answer_batch_loss
    monkeypatch.setattr(loss_mod, "LARGE_VOCAB", 64)
    monkeypatch.setattr(spanfit_mod, "answer_batch_loss", lambda *a: calls.append(1) or real_answer_loss(*a))
    part_w, part = fit_span_weights(model, tok, items, anchors, w0, steps=6, lr=0.05, batch=8)
    assert calls, "the answer-position loss was not used"
    assert part["start_loss"] == pytest.approx(full["start_loss"], rel=1e-5)
    assert part["end_loss"] == pytest.approx(full["end_loss"], rel=1e-4)
    assert torch.allclose(part_w, full_w, atol=1e-4)


def test_spanfit_port_writes_a_combination_with_cost(kit):
    out = spanfit_port(
        kit["spec"],
        load_config(kit["x"]),
        load_config(kit["y"]),
        kit["adapter"],
        kit["answers"],
        kit["root"] / "spanfit",
        steps=5,
    )
    ad = load_adapter(out)
    cost = ad.provenance["cost"]
    assert ad.provenance["method"] == "spanfit"
    assert cost["steps"] == 5 and cost["generated_tokens"] == kit["answers"].generated_tokens
    assert cost["data"] == "anchors + unlabeled prompts" and cost["seconds"] > 0


def test_distill_budget_init_and_cost(kit):
    a = kit["answers"]
    zero = load_adapter(distill_port(kit["y"], a, kit["root"] / "d0", steps=3, rank=2, alpha=4))
    assert zero.provenance["init"] == "zero"
    assert zero.provenance["cost"]["steps"] == 3 and zero.provenance["cost"]["data"] == "unlabeled prompts"
    init = kit["root"] / "y" / "math_add"
    # lr tiny: the result stays at its init, so the init really is the starting point
    warm = load_adapter(distill_port(kit["y"], a, kit["root"] / "d1", init=init, steps=2, lr=1e-9))
    ref = load_adapter(init)
    for m in ref.modules:
        assert torch.allclose(warm.lowrank(m).dense(), ref.lowrank(m).dense(), atol=1e-5)
    timed = load_adapter(distill_port(kit["y"], a, kit["root"] / "d2", steps=10_000, seconds=0.01, rank=2))
    assert 1 <= timed.provenance["cost"]["steps"] < 10_000


def test_teacher_items_longer_than_a_training_recipe_still_teach(kit):
    """A few-shot prompt plus a reasoned answer outgrows the 256 tokens of a default recipe on a large
    vocabulary (two-shot prompts on Gemma-3); distill and spanfit take items up to the context."""
    from loraport.port.teacher import Answers

    a = kit["answers"]
    shots = " ".join(a.prompts[:8]) * 2  # a few hundred tokens of solved examples
    long = Answers([shots + p for p in a.prompts], a.answers, a.generated_tokens, a.seconds)
    model, tok, _ = load_model(kit["y"])
    items = encodable_items(tok, long)
    assert max(len(tok(it.prompt + it.answer)["input_ids"]) for it in items) > 256
    out = load_adapter(distill_port(kit["y"], long, kit["root"] / "dlong", steps=1, rank=2))
    assert out.provenance["cost"]["steps"] == 1
    fmap = fit_map(kit["spec"], "global_ridge", load_config(kit["x"]), load_config(kit["y"]))
    w0 = next(iter(port_weights(fmap, kit["adapter"]).weights.values()))
    _, rec = fit_span_weights(model, tok, items, target_anchor_factors(fmap), w0, steps=1, batch=8)
    assert rec["items"] == len(items)


def _port_distill(kit, out, *extra: str):
    """`loraport port --method distill` of the kit's X adapter for TASK, 2 steps, plus `extra`."""
    args = ["port", "--adapter", str(kit["adapter"]), "--target-base", kit["y"], "--out", str(out)]
    args += ["--method", "distill", "--task", TASK, "--steps", "2", *extra]
    return CliRunner().invoke(app, args)


def test_distill_cli_refuses_prompts_that_are_eval_items(kit, tmp_path):
    leak = get_task(TASK).items("eval", 1)[0].prompt
    (tmp_path / "p.jsonl").write_text(
        json.dumps({"prompt": "fine prompt "}) + "\n" + json.dumps({"prompt": leak}) + "\n"
    )
    res = _port_distill(kit, tmp_path / "o", "--prompts", str(tmp_path / "p.jsonl"))
    assert res.exit_code != 0
    assert "eval item" in res.output and not (tmp_path / "o").exists()


def test_distill_cli_with_global_ridge_init(kit, tmp_path):
    anchors = tmp_path / "anchors.yaml"
    anchors.write_text(
        "source_base: "
        + kit["x"]
        + "\ntarget_base: "
        + kit["y"]
        + "\npairs:\n"
        + "".join(
            f"  - {{task: {p.task}, source: {p.source}, target: {p.target}}}\n" for p in kit["spec"].pairs
        )
    )
    res = _port_distill(
        kit,
        tmp_path / "o",
        "--init",
        "global_ridge",
        "--anchors",
        str(anchors),
        "--option",
        "prompts=16",
        "--option",
        "max_new_tokens=4",
    )
    assert res.exit_code == 0, res.output
    prov = load_adapter(tmp_path / "o").provenance
    assert prov["init"]["method"] == "global_ridge" and prov["cost"]["steps"] == 2
    assert "anchors" in prov["cost"]["data"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".init-")] == []


def test_random_control_keeps_norms(kit, tmp_path):
    gen = torch.Generator().manual_seed(0)
    lr = LowRank(torch.randn(7, 2), torch.randn(2, 5))
    r = random_like(lr, gen)
    assert r.norm_sq() == pytest.approx(lr.norm_sq(), rel=1e-5)
    ref = kit["root"] / "y" / "math_add"
    out = load_adapter(random_port(ref, tmp_path / "r", seed=3))
    src = load_adapter(ref)
    assert out.modules == src.modules
    for m in src.modules:
        assert out.lowrank(m).norm_sq() == pytest.approx(src.lowrank(m).norm_sq(), rel=1e-4)
    assert out.provenance["cost"]["data"] == "none"


def test_anchor_methods_can_pair_layers_by_cka(kit):
    from loraport.port.align import cached_alignment, target_layer_map

    fmap = fit_map(kit["spec"], "pertensor_ridge", load_config(kit["x"]), load_config(kit["y"]), layers="cka")
    lmap = fmap.layer_map
    assert len(lmap) == 3 and lmap == sorted(lmap) and all(0 <= s < 4 for s in lmap)
    assert lmap == target_layer_map(cached_alignment(kit["x"], kit["y"]))


def _labelled(path, items) -> None:
    path.write_text(
        "".join(
            json.dumps({"prompt": it.prompt, "answer": it.answer, "scorer": it.scorer}) + "\n" for it in items
        )
    )


def test_port_your_own_adapter_with_prompts_and_a_labelled_eval_file(kit, tmp_path):
    """No registered task: the user's prompts, then base / port / teacher on the user's labelled items."""
    task = get_task(TASK)
    (tmp_path / "p.jsonl").write_text(
        "".join(json.dumps({"prompt": it.prompt}) + "\n" for it in task.items("train", 16, seed=5))
    )
    _labelled(tmp_path / "eval.jsonl", task.items("eval", 12, seed=0))
    args = ["port", "--adapter", str(kit["adapter"]), "--target-base", kit["y"], "--out", str(tmp_path / "o")]
    args += ["--method", "distill", "--source-base", kit["x"], "--steps", "2", "--option", "max_new_tokens=6"]
    res = CliRunner().invoke(
        app, [*args, "--prompts", str(tmp_path / "p.jsonl"), "--eval", str(tmp_path / "eval.jsonl")]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "loraport_eval.json").read_text())
    assert set(summary["conditions"]) == {"base", "port", "teacher"} and summary["n"] == 12
    assert all(c["scorer"] == "numeric_flexible" and c["n"] == 12 for c in summary["conditions"].values())
    assert "teacher ratio" in res.output and load_adapter(tmp_path / "o").provenance["items_used"] > 0


def test_port_your_own_refuses_prompts_that_are_in_the_eval_file(kit, tmp_path):
    items = get_task(TASK).items("eval", 4, seed=0)
    _labelled(tmp_path / "eval.jsonl", items)
    (tmp_path / "p.jsonl").write_text(
        json.dumps({"prompt": "fresh prompt"}) + "\n" + json.dumps({"prompt": items[2].prompt}) + "\n"
    )
    args = ["port", "--adapter", str(kit["adapter"]), "--target-base", kit["y"], "--out", str(tmp_path / "o")]
    args += ["--method", "distill", "--source-base", kit["x"], "--steps", "2"]
    res = CliRunner().invoke(
        app, [*args, "--prompts", str(tmp_path / "p.jsonl"), "--eval", str(tmp_path / "eval.jsonl")]
    )
    assert res.exit_code == 2 and "prompt 1" in res.output and "eval item" in res.output
    assert not (tmp_path / "o").exists()
    res = CliRunner().invoke(app, args)  # neither prompts nor a task
    assert res.exit_code == 2 and "needs --prompts" in res.output
