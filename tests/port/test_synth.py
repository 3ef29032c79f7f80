"""Prompts from a few examples (port.synth, port.prompt_filters): each filter on constructed text,
the eval-overlap check, the bad-input errors of --examples, the study plan of an `examples` option,
and the synthesis end to end on the shipped tiny zoo target."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from loraport.cli.main import app
from loraport.errors import MethodError
from loraport.port import get_method
from loraport.port.prompt_filters import PromptFilter, has_skeleton, jaccard, shingles, skeleton
from loraport.port.prompts import eval_prompts, read_examples
from loraport.port.synth import (
    charge,
    common_head,
    common_tail,
    contexts,
    separator,
    shots_that_fit,
    synthesize_prompts,
)
from loraport.port.teacher import Answers
from loraport.tasks import get_task

TASK = "math_sum_more"
EXAMPLES = [
    "ben has 3 apples, tom has 4 more. how many in all? ",
    "liz has 32 pens, bob has 2 more. how many in all? ",
    "ann has 20 keys, max has 20 more. how many in all? ",
]


def test_the_skeleton_is_the_words_every_example_shares_in_order_with_numbers_as_slots():
    assert skeleton(EXAMPLES) == ["has", "0", "has", "0", "more.", "how", "many", "in", "all?"]
    assert has_skeleton("kim has 7 cups, joe has 12 more. how many in all?", skeleton(EXAMPLES))
    assert not has_skeleton("kim has 7 cups, joe has 12 fewer. how many left?", skeleton(EXAMPLES))
    assert not has_skeleton("how many in all? kim has 7 cups, joe has 1 more.", skeleton(EXAMPLES))
    assert skeleton(["red fish", "blue sky", "green tea"]) == []  # nothing shared: no format check
    assert has_skeleton("anything at all", [])


def test_near_duplicates_by_word_bigram_jaccard():
    a = shingles("liz has 32 pens, bob has 2 more. how many in all?")
    assert jaccard(a, shingles("Liz  has 32 pens, bob has 2 more. how many in all?")) == 1.0
    one_number = jaccard(a, shingles("liz has 32 pens, bob has 3 more. how many in all?"))
    assert 0.6 < one_number < 0.9  # a different item of a procedural task: kept at 0.9
    assert jaccard(shingles("word"), shingles("word")) == 1.0  # one-word prompts compare unigrams


def _filter(**kw) -> PromptFilter:
    return PromptFilter.from_examples(EXAMPLES, **kw)


def test_each_filter_drops_what_it_names():
    f = _filter(example_nll=[2.0, 2.5, 3.0], evals={"kim has 1 cups, joe has 2 more. how many in all? "})
    lengths = [len(e) for e in EXAMPLES]
    assert f.bounds == (0.5 * min(lengths), 1.5 * max(lengths))
    assert f.max_nll == pytest.approx(3.0 + math.log(2))
    good = "sue has 9 hats, kim has 5 more. how many in all? "
    assert f.reason(None) == "unfinished" and f.reason("   ") == "unfinished"
    assert f.reason("has 1 more?", 1.0) == "length"
    assert f.reason("sue has 9 hats and kim has 5 hats. which is more? x", 1.0) == "format"
    assert f.reason(good, 3.0 + math.log(2) + 0.01) == "perplexity"
    assert f.reason(good, None) == "perplexity"  # no score under the model: not shown to be plausible
    assert f.reason("kim  has 1 cups, joe has 2 more. how many in all?", 1.0) == "eval overlap"
    assert f.reason(EXAMPLES[1], 1.0) == "duplicate"  # a copy of an example is not new
    assert f.reason(good, 3.0) is None
    assert f.reason(good.upper().lower(), 3.0) == "duplicate"  # nor a copy of a kept prompt
    assert f.reason("sue has 9 hats, kim has 6 more. how many in all? ", 3.0) is None
    assert _filter().reason(good, None) is None  # without example scores: no perplexity check


def test_the_overlap_check_is_the_one_every_prompt_set_gets():
    leak = get_task(TASK).items("eval", 1)[0].prompt
    evals = eval_prompts(TASK, 300, 0)
    assert " ".join(leak.split()) in evals
    f = _filter(evals=set(evals))
    assert f.reason(leak, None) == "eval overlap"


def test_listing_separators_edges_and_shots():
    assert separator(["a b", "c"]) == "\n"
    assert separator(["a\nb", "c"]) == "\n\n"
    assert separator(["a\n\nb", "c"]) == "\n###\n"
    assert common_tail(["# h(n): x\n", "# g(k): y \n"]) == "\n"
    assert common_tail(EXAMPLES) == " " and common_head(EXAMPLES) == ""
    ctx = contexts(["a", "b", "c", "d"], 3, seed=0, sep="\n", k=2)
    assert ctx == contexts(["a", "b", "c", "d"], 3, seed=0, sep="\n", k=2)  # seeded
    assert all(len(c.splitlines()) == 2 and c.endswith("\n") for c in ctx)
    assert shots_that_fit([10, 20, 30], sep_tokens=1, budget=20, window=1000) == 3
    assert shots_that_fit([10, 20, 30], sep_tokens=1, budget=20, window=60) == 1  # 30 + 1 + 20 + 1
    with pytest.raises(MethodError, match="context window"):
        shots_that_fit([10, 20, 30], sep_tokens=1, budget=50, window=60)


def test_read_examples_needs_three_prompts_and_names_the_bad_line(tmp_path):
    ok = tmp_path / "ok.jsonl"
    ok.write_text("".join(json.dumps({"prompt": p, "answer": "7"}) + "\n" for p in EXAMPLES))
    assert read_examples(ok) == EXAMPLES  # labels are allowed and ignored
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in EXAMPLES[:2]))
    with pytest.raises(MethodError, match=r"few.jsonl: has 2 prompt\(s\); .* at least 3"):
        read_examples(few)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a"}) + "\n" + json.dumps({"text": "b"}) + "\n")
    with pytest.raises(MethodError, match=r"bad.jsonl:2: needs a non-empty string field 'prompt'"):
        read_examples(bad)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"prompt": "a"}', '{"prompt": "b"}'], "has 2 prompt(s)"),
        (['{"prompt": "a"}', "not json", '{"prompt": "c"}'], "few.jsonl:2: not JSON"),
        (['{"prompt": "a"}', '{"prompt": "b"}', '{"q": "c"}'], "few.jsonl:3: needs a non-empty"),
    ],
)
def test_the_cli_turns_bad_examples_into_one_line_and_a_failing_exit(tmp_path, lines, message):
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(
        app,
        ["port", "--adapter", str(get_adapter(tmp_path)), "--target-base", "tiny-llama-y", "--out",
         str(tmp_path / "o"), "--method", "distill", "--source-base", "tiny-qwen2-x", "--examples", str(few)],
    )  # fmt: skip
    assert res.exit_code != 0
    assert message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def get_adapter(tmp_path):
    """A zero LoRA on the shipped tiny X (the CLI loads the adapter before reading the examples)."""
    import torch

    from loraport.adapters import LowRank, save_adapter
    from loraport.arch import arch_for
    from loraport.models import load_config

    if (tmp_path / "x0").is_dir():
        return tmp_path / "x0"
    cfg = load_config("tiny-qwen2-x")
    zero = {
        m.name: LowRank(torch.zeros(m.shape[0], 2), torch.zeros(2, m.shape[1]))
        for m in arch_for(cfg).modules()
    }
    return save_adapter(
        tmp_path / "x0", zero, rank=2, alpha=4.0, base_model="tiny-qwen2-x", num_layers=cfg.num_hidden_layers
    )


def test_examples_option_is_typed_off_by_default_and_plans_its_own_teacher_cell():
    from loraport.bench.plan import make_plan
    from loraport.bench.spec import Study

    assert "examples" not in get_method("distill").options()  # default: existing keys unchanged
    assert get_method("distill", examples=8).options()["examples"] == 8
    # without examples, how prompts would be synthesized is left out: the plain variant's key
    assert get_method("distill", synthesis="infill").options() == get_method("distill").options()
    assert get_method("distill", examples=8, synthesis="infill").options()["synthesis"] == "infill"
    with pytest.raises(MethodError, match="option examples"):
        get_method("distill", examples=2)
    with pytest.raises(MethodError, match="exceed prompts"):
        get_method("distill", prompts=16, examples=32)
    with pytest.raises(MethodError, match="option synthesizer"):
        get_method("distill", synthesizer="teacher")

    def teach_cells(options):
        study = Study(
            name="few",
            source="base-x",
            target="base-y",
            anchors=["math_add", "math_mul"],
            heldout=[TASK],
            methods={"distill": options},
            n_anchors=[2],
            eval={"n": 10},
        )
        return {
            c.key: c.params for c in make_plan(study, {"base-x": "fp-x", "base-y": "fp-y"}).by_kind("teach")
        }

    plain, few, by_x = (
        teach_cells({}),
        teach_cells({"examples": 8}),
        teach_cells({"examples": 8, "synthesizer": "source"}),
    )
    infilled = teach_cells({"examples": 8, "synthesis": "infill"})
    assert len({*plain, *few, *by_x, *infilled}) == 4  # each prompt source is its own teacher cell
    (p_plain,), (p_few,), (p_x,), (p_in,) = plain.values(), few.values(), by_x.values(), infilled.values()
    assert "synth_base" not in p_plain and "examples" not in p_plain
    assert (p_few["examples"], p_few["synth_base"], p_x["synth_base"]) == (8, "base-y", "base-x")
    assert (p_few["synthesis"], p_in["synthesis"]) == ("listing", "infill")


def test_synthesis_end_to_end_on_the_tiny_zoo_target():
    """The shipped tiny Y writes corpus-like lines, so from five such examples it writes new ones
    the filter keeps; the result repeats with the seed, and every kept prompt passes the filter."""
    examples = [
        "bluds live in reefs.",
        "sulms are big.",
        "snoks have tails.",
        "melds have 2 legs.",
        "klads eat grass.",
    ]
    leak = "olts are gold."
    syn = synthesize_prompts("tiny-llama-y", examples, 12, seed=0, evals={leak})
    kept = syn.prompts[len(examples) :]
    assert syn.prompts[: len(examples)] == examples and 1 <= len(kept) <= 12 - len(examples)
    assert syn.stats["kept"] == len(kept) and syn.stats["written"] >= len(kept)
    assert len(kept) + sum(syn.stats["dropped"].values()) <= syn.stats["written"]
    assert leak not in kept and not set(kept) & set(examples) and len(set(kept)) == len(kept)
    lo, hi = syn.stats["length_bounds"]
    assert all(lo <= len(p) <= hi and p == p.strip() for p in kept)
    assert syn.generated_tokens > 0 and syn.seconds > 0
    again = synthesize_prompts("tiny-llama-y", examples, 12, seed=0, evals={leak})
    assert again.prompts == syn.prompts  # seeded sampling
    answers = charge(Answers(["p"], ["a"], 5, 1.0, {}), syn)
    assert answers.generated_tokens == 5 + syn.generated_tokens
    assert answers.provenance["synthesis"]["kept"] == len(kept)


def _port(tmp_path, *extra: str):
    return CliRunner().invoke(
        app,
        ["port", "--adapter", str(get_adapter(tmp_path)), "--target-base", "tiny-llama-y", "--out",
         str(tmp_path / "o"), "--method", "distill", "--source-base", "tiny-qwen2-x", "--steps", "1",
         "--option", "prompts=8", "--option", "max_new_tokens=4", *extra],
    )  # fmt: skip


def test_distill_from_examples_through_the_cli_records_the_synthesis(tmp_path):
    from loraport.adapters import load_adapter

    few = tmp_path / "few.jsonl"
    lines = ["bluds live in reefs.", "sulms are big.", "snoks have tails.", "melds have 2 legs."]
    few.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in lines))
    res = _port(tmp_path, "--examples", str(few))
    assert res.exit_code == 0, res.output
    prov = load_adapter(tmp_path / "o").provenance
    syn = prov["teacher"]["synthesis"]
    assert syn["examples"] == 4 and syn["asked"] == 8 and syn["synthesizer"] == "tiny-llama-y"
    assert prov["cost"]["prompts"] == 4 + syn["kept"]
    res = _port(tmp_path, "--examples", str(few), "--option", "synthesizer=source", "--force")
    assert res.exit_code == 0, res.output
    assert load_adapter(tmp_path / "o").provenance["teacher"]["synthesis"]["synthesizer"] == "tiny-qwen2-x"


def test_examples_that_are_eval_items_are_refused(tmp_path):
    few = tmp_path / "few.jsonl"
    prompts = [*EXAMPLES[:2], get_task(TASK).items("eval", 1)[0].prompt]
    few.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    res = _port(tmp_path, "--examples", str(few), "--task", TASK)
    assert res.exit_code != 0 and "eval item" in res.output and not (tmp_path / "o").exists()
    res = _port(tmp_path, "--examples", str(few), "--prompts", str(few))
    assert res.exit_code != 0 and "not both" in res.output


def test_a_study_teach_cell_with_examples_synthesizes_and_charges_the_cost(tmp_path):
    """The teach cell of a distill variant with `examples` (bench.cells) runs end to end: a few of
    the task's train prompts, the rest written by the target, answered by X + its adapter."""
    from loraport.bench.cells import run_cell
    from loraport.bench.plan import make_plan
    from loraport.bench.spec import Study
    from loraport.bench.store import Store
    from loraport.port.prompts import task_prompts

    study = Study(
        name="few",
        source="tiny-qwen2-x",
        target="tiny-llama-y",
        anchors=["math_add", "math_mul"],
        heldout=[TASK],
        methods={"distill": {"examples": 4, "prompts": 12, "max_new_tokens": 4}},
        n_anchors=[2],
        eval={"n": 20},
    )
    (cell,) = make_plan(study, {"tiny-qwen2-x": "fp-x", "tiny-llama-y": "fp-y"}).by_kind("teach")
    store = Store(tmp_path / "run")
    (x_key,) = cell.deps
    store.adapter(x_key).parent.mkdir(parents=True)
    get_adapter(tmp_path).rename(store.adapter(x_key))
    res = run_cell(cell, store, threads=1)
    assert res["error"] is None, res["error"]
    answers = Answers.load(store.teach(cell.key))
    syn = answers.provenance["synthesis"]
    assert answers.prompts[:4] == task_prompts(TASK, 4, seed=1)
    assert len(answers.prompts) == 4 + syn["kept"] <= 12 and syn["synthesizer"] == "tiny-llama-y"
    assert not set(map(" ".join, map(str.split, answers.prompts))) & set(eval_prompts(TASK, 20, 0))


def test_infill_slots_are_the_variable_words_and_numbers():
    from loraport.port.synth_infill import graft, slot_words

    text = "ben has 3 apples, tom has 4 more. how many in all? "
    parts, slots = slot_words(text, skeleton(EXAMPLES))
    assert "".join(parts) == text  # the whitespace is kept
    assert [parts[i] for i in slots] == ["ben", "3", "apples,", "tom", "4"]
    code = "# h(n): n plus 72 then times 12\n"
    parts, slots = slot_words(code, ["#", "0", "then", "times", "0"])
    assert [parts[i] for i in slots] == ["n", "plus", "72", "12"]  # h(n): is mixed: it stays
    assert graft("apples,", " books and more") == "books,"
    assert graft("apples,", " 12 books") is None  # a number for a word: refused
    assert graft("72", "905.") == "905" and graft("72", "") is None


def test_infill_synthesis_on_the_tiny_zoo_keeps_the_template():
    """The tiny Y cannot write a held-out task's prompts from a listing, but rewriting the
    examples' variable words it keeps many, each with the examples' skeleton."""
    from loraport.port.prompts import task_prompts

    examples = task_prompts(TASK, 6, seed=1)
    syn = synthesize_prompts("tiny-llama-y", examples, 24, seed=0, mode="infill")
    kept = syn.prompts[6:]
    assert syn.stats["mode"] == "infill" and len(kept) >= 6
    assert all(has_skeleton(p, skeleton(examples)) and p.endswith("? ") for p in kept)
    assert not set(kept) & set(examples)
    assert synthesize_prompts("tiny-llama-y", examples, 24, seed=0, mode="infill").prompts == syn.prompts
    with pytest.raises(MethodError, match="synthesis mode"):
        synthesize_prompts("tiny-llama-y", examples, 24, seed=0, mode="paraphrase")
