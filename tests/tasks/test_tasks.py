"""The task suite: registry shape, determinism, train/eval disjointness, item validity, the
knowledge base and corpus, and the user-task loaders with their errors."""

from __future__ import annotations

import json
import re

import pytest

from loraport.errors import TaskError
from loraport.tasks import (
    CHOICE_SCORERS,
    KB,
    KNOWN_SCORERS,
    check_disjoint,
    get_task,
    kb_sentences,
    list_tasks,
    load_datasets_task,
    load_jsonl_task,
    pretraining_corpus,
    warn_if_small,
)
from loraport.tasks.base import LETTERS, GeneratedTask, split_of
from loraport.tasks.kb import KIND_RELATIONS

ALL = list_tasks()
BY_DOMAIN = {d: list_tasks(domain=d) for d in ("math", "code", "science")}


# ---------------------------------------------------------------- registry


def test_counts_and_roles():
    # few-shot variants (math_add@2shot) are registered on first use, e.g. by test_fewshot
    anchors, heldout, procedural = (
        [n for n in list_tasks(role=r) if "@" not in n] for r in ("anchor", "heldout", "procedural")
    )
    assert len(anchors) >= 16
    assert len(heldout) >= 6
    for domain, names in BY_DOMAIN.items():
        assert len([n for n in names if get_task(n).role == "heldout"]) >= 2, domain
        assert len([n for n in names if get_task(n).role == "anchor"]) >= 4, domain
    assert len(procedural) >= 3  # tasks with a procedure block (tasks.procedure)
    assert sorted(anchors + heldout + procedural) == ALL


@pytest.mark.parametrize("name", ALL)
def test_task_metadata(name):
    task = get_task(name)
    assert task.description and "\n" not in task.description
    assert set(task.scorers) <= KNOWN_SCORERS
    primary = {"math": "numeric_flexible", "code": "code_exec", "science": "choice_letter"}
    assert task.scorer == primary[task.domain]
    if task.domain == "science":
        assert "loglik_choice" in task.alt_scorers
    if task.domain == "math":
        assert "numeric_strict" in task.alt_scorers
    if task.role == "heldout":  # near some anchors of its own domain, but not one of them
        assert task.related
        for other in task.related:
            assert get_task(other).role == "anchor" and get_task(other).domain == task.domain


def test_unknown_task_suggests_closest():
    with pytest.raises(TaskError, match="did you mean 'math_add'"):
        get_task("math_addd")


# ---------------------------------------------------------------- determinism and splits


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name):
    task = get_task(name)
    for split in ("train", "eval"):
        a = task.items(split, 40, seed=0)
        assert a == task.items(split, 40, seed=0)
        assert [i.prompt for i in a] != [i.prompt for i in task.items(split, 40, seed=1)]
        assert len(a) == 40 and len({i.prompt for i in a}) == 40
        assert len({i.id for i in a}) == 40
        assert all(i.scorer == task.scorer for i in a)


@pytest.mark.parametrize("name", ALL)
def test_train_eval_disjoint(name):
    check_disjoint(get_task(name), n_train=2000, n_eval=500)


def test_check_disjoint_catches_overlap():
    # Every key lands in one split, so a task that puts the same prompt under two keys overlaps.
    def sampler(rng):
        return _fake_draft(f"k{int(rng.integers(1000))}")

    task = GeneratedTask(
        name="leaky",
        domain="other",
        role="anchor",
        description="d",
        scorers=("exact_match",),
        sampler=sampler,
    )
    with pytest.raises(TaskError, match=r"task 'leaky'.*'same prompt'"):
        check_disjoint(task, n_train=1, n_eval=1)


def _fake_draft(key):
    from loraport.tasks.base import Draft

    return Draft("same prompt", "x", key)


def test_split_partition_is_stable_and_roughly_thirty_percent():
    keys = [f"k{i}" for i in range(5000)]
    share = sum(split_of(k, "salt") == "eval" for k in keys) / len(keys)
    assert 0.27 < share < 0.33
    assert [split_of(k, "salt") for k in keys[:50]] == [split_of(k, "salt") for k in keys[:50]]


def test_bad_requests():
    task = get_task("math_add")
    with pytest.raises(TaskError, match="split 'test'"):
        task.items("test", 3)
    with pytest.raises(TaskError, match="non-negative"):
        task.items("train", -1)
    assert task.items("eval", 0) == []


# ---------------------------------------------------------------- item validity


@pytest.mark.parametrize("name", ALL)
def test_lengths(name):
    task = get_task(name)
    items = task.items("train", 300) + task.items("eval", 300)
    answer_max = {"math": 4, "science": 1, "code": 40}[task.domain]
    for it in items:
        assert 0 < len(it.prompt) <= 90, it.prompt  # short enough for the zoo's 128-byte windows
        assert 0 < len(it.answer) <= answer_max, it.answer
        assert len(it.prompt) + len(it.completion()) <= 128


@pytest.mark.parametrize("name", BY_DOMAIN["math"])
def test_math_answers(name):
    for it in get_task(name).items("eval", 300):
        assert re.fullmatch(r"\d+", it.answer)
        assert it.prompt.endswith("? ")
        numbers = re.findall(r"\d+", it.meta["expr"])
        assert all(n in re.findall(r"\d+", it.prompt) for n in numbers)


@pytest.mark.parametrize("name", BY_DOMAIN["code"])
def test_code_reference_answers_pass_their_tests(name):
    for it in get_task(name).items("train", 150) + get_task(name).items("eval", 150):
        assert it.answer.startswith(f"def {it.entry_point}(")
        assert it.tests.count("assert ") >= 4
        exec(it.answer + "\n" + it.tests, {})  # trusted: generated by us
        wrong = f"def {it.entry_point}(*args): return 0\n"
        with pytest.raises(AssertionError):
            exec(wrong + it.tests, {})


@pytest.mark.parametrize("name", BY_DOMAIN["science"])
def test_choice_answers_match_the_knowledge_base(name):
    for it in get_task(name).items("train", 200) + get_task(name).items("eval", 200):
        assert it.answer in LETTERS[: len(it.choices)]
        assert len(set(it.choices)) == len(it.choices) >= 3
        for letter, choice in zip(LETTERS, it.choices, strict=False):
            assert f"{choice} ({letter})" in it.prompt
        m = it.meta
        if m.get("reverse"):  # which entity has the property
            truth = [KB.lookup(c, m["relation"]) == m["value"] for c in it.choices]
        else:
            truth = [c == KB.lookup(m["subject"], m["relation"]) for c in it.choices]
        assert truth.count(True) == 1
        assert LETTERS[truth.index(True)] == it.answer
        assert it.completion() == f"{it.choices[truth.index(True)]} ({it.answer})"
        assert it.meta["question"] in it.prompt


def test_science_eval_entities_are_shared_and_never_trained():
    entity_tasks = [n for n in BY_DOMAIN["science"] if n != "sci_kind_facts"]
    train = {i.meta["subject"] for n in entity_tasks for i in get_task(n).items("train", 300)}
    evals = {i.meta["subject"] for n in entity_tasks for i in get_task(n).items("eval", 300)}
    assert train and evals and not train & evals


# ---------------------------------------------------------------- knowledge base and corpus


def test_knowledge_base_is_fixed_and_consistent():
    assert len(KB.kinds) == 32 and len(KB.entities) == 300
    assert set(KB.kinds).isdisjoint(KB.entities)
    ent = KB.entity_names[0]
    kind = KB.lookup(ent, "kind")
    for rel in KIND_RELATIONS:
        assert KB.lookup(ent, rel) == KB.lookup(kind, rel)
    sentences = list(kb_sentences())
    assert sentences == list(kb_sentences())
    assert len(sentences) == len(set(sentences))
    assert f"{ent} are {KB.lookup(ent, 'color')}." in sentences
    stated = [e for e in KB.entity_names if KB.states_inherited(e)]
    assert 0.35 < len(stated) / len(KB.entity_names) < 0.65


def test_pretraining_corpus():
    lines = pretraining_corpus(3000, seed=0)
    assert lines == pretraining_corpus(3000, seed=0)
    assert lines != pretraining_corpus(3000, seed=1)
    assert len(lines) == 3000 and max(map(len, lines)) <= 120
    text = "\n".join(lines)
    assert "how many" not in text and "A) " not in text and "?" not in text
    assert not any(line.startswith("# ") for line in lines)
    facts = set(kb_sentences())
    assert sum(any(s + " " in line + " " for s in facts) for line in lines[:300]) > 60
    assert any(line.startswith("def ") for line in lines)
    assert any(" plus " in line for line in lines)
    # no held-out code composition appears: "(x+3)*2", "max(xs)*2+1", "x*2 if x>5 else x+1"
    assert "then times" not in text
    for held_out in (
        r"\([a-z]+[+-]\d+\)\*",
        r"\)\*\d+[+-]\d",
        r"\*\d+ if ",
        r" if [a-z]+[<>=]+\d+ else [a-z]",
    ):
        assert not re.search(held_out, text), held_out
    with pytest.raises(TaskError, match="unknown corpus sources"):
        pretraining_corpus(3, mix={"poems": 1.0})


# ---------------------------------------------------------------- user tasks


def _write(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


MC = {"prompt": "2+2? A) 3 B) 4", "answer": "B", "scorer": "choice_letter", "choices": ["3", "4"]}


def test_load_jsonl_task(tmp_path):
    train = _write(
        tmp_path / "mytask_train.jsonl",
        [{"prompt": f"q{i}", "answer": i, "scorer": "numeric_flexible", "extra": 1} for i in range(5)],
    )
    evals = _write(
        tmp_path / "mytask_eval.jsonl",
        [
            {"prompt": f"e{i}", "answer": str(i), "scorer": "numeric_flexible", "id": f"x{i}"}
            for i in range(3)
        ],
    )
    task = load_jsonl_task(train, evals)
    assert task.name == "mytask" and task.domain == "math" and task.role == "heldout"
    assert task.scorers == ("numeric_flexible", "numeric_strict")
    assert task.available("train") == 5 and task.available("eval") == 3
    items = task.items("eval", 10)
    assert sorted(i.id for i in items) == ["x0", "x1", "x2"]
    assert task.items("train", 3, seed=4) == task.items("train", 3, seed=4)
    assert {i.answer for i in task.items("train", 5)} == {"0", "1", "2", "3", "4"}
    assert task.items("train", 5)[0].meta["extra"] == 1
    check_disjoint(task)


def test_load_jsonl_choice_and_code(tmp_path):
    code = {"prompt": "# f(x): x plus 1\n", "answer": "def f(x): return x+1", "scorer": "code_exec"}
    code |= {"tests": "assert f(1) == 2\n", "entry_point": "f"}
    task = load_jsonl_task(
        _write(tmp_path / "train.jsonl", [code]),
        _write(tmp_path / "eval.jsonl", [code | {"prompt": "# f(y): y plus 1\n"}]),
        name="c",
    )
    assert task.domain == "code" and task.items("eval", 1)[0].entry_point == "f"
    task = load_jsonl_task(
        _write(tmp_path / "t.jsonl", [MC]), _write(tmp_path / "e.jsonl", [MC | {"prompt": "1+1? A) 3 B) 2"}])
    )
    assert task.scorers == ("choice_letter", "loglik_choice")
    assert task.items("train", 1)[0].choices == ("3", "4")


@pytest.mark.parametrize(
    ("lines", "pattern"),
    [
        (
            ['{"prompt": "a", "answer": "1", "scorer": "exact_match"}', "{not json"],
            r"t\.jsonl, line 2: malformed JSON",
        ),
        ([{"prompt": "a", "scorer": "exact_match"}], r"t\.jsonl, line 1: missing field 'answer'"),
        (
            [{"prompt": "a", "answer": "1", "scorer": "numeric_flex"}],
            r"line 1: unknown scorer 'numeric_flex'.*valid:",
        ),
        (
            [{"prompt": "a", "answer": "A", "scorer": "choice_letter"}],
            r"line 1: scorer 'choice_letter' needs 'choices'",
        ),
        ([MC | {"answer": "C"}], r"line 1: answer 'C' is not one of the choice letters AB"),
        (
            [{"prompt": "a", "answer": "x", "scorer": "code_exec"}],
            r"line 1: scorer 'code_exec' needs 'tests'",
        ),
        ([{"prompt": 3, "answer": "1", "scorer": "exact_match"}], r"line 1: field 'prompt' must be a string"),
        (["[1, 2]"], r"line 1: expected a JSON object"),
        (
            [MC, {"prompt": "b", "answer": "1", "scorer": "exact_match"}],
            r"line 2: scorer 'exact_match' differs",
        ),
        ([MC | {"id": "a"}, MC | {"id": "a", "prompt": "z"}], r"line 2: duplicate id 'a'"),
        ([], r"t\.jsonl: no items"),
    ],
)
def test_jsonl_errors(tmp_path, lines, pattern):
    train = _write(tmp_path / "t.jsonl", lines)
    evals = _write(tmp_path / "e.jsonl", [MC | {"prompt": "other"}])
    with pytest.raises(TaskError, match=pattern) as err:
        load_jsonl_task(train, evals)
    assert "\n" not in str(err.value)


def test_jsonl_overlap_and_missing_file(tmp_path):
    train = _write(tmp_path / "t.jsonl", [MC])
    evals = _write(tmp_path / "e.jsonl", [MC | {"prompt": "  2+2?   A) 3 B) 4 "}])
    with pytest.raises(
        TaskError, match=r"task 'quiz': eval item at .*e\.jsonl, line 1 repeats a train prompt"
    ):
        load_jsonl_task(train, evals, name="quiz")
    with pytest.raises(TaskError, match=r"nope\.jsonl: file not found"):
        load_jsonl_task(tmp_path / "nope.jsonl", evals)


def test_custom_scorer_set(tmp_path):
    rec = {"prompt": "a", "answer": "1", "scorer": "my_judge"}
    train, evals = _write(tmp_path / "t.jsonl", [rec]), _write(tmp_path / "e.jsonl", [rec | {"prompt": "b"}])
    with pytest.raises(TaskError, match="unknown scorer 'my_judge'"):
        load_jsonl_task(train, evals)
    task = load_jsonl_task(train, evals, scorers=KNOWN_SCORERS | {"my_judge"})
    assert task.scorer == "my_judge" and task.domain == "other"


def test_warn_if_small():
    with pytest.warns(UserWarning, match="task 'math_add': only 120 eval items"):
        assert warn_if_small(get_task("math_add"), 120)
    assert not warn_if_small("math_add", 300)


def test_load_datasets_task(tmp_path):
    datasets = pytest.importorskip("datasets")
    row = {"prompt": "", "answer": "B", "scorer": "choice_letter", "choices": ["x", "y"], "tests": None}
    train = [row | {"prompt": f"t{i} A) x B) y"} for i in range(4)]
    test = [row | {"prompt": f"v{i} A) x B) y", "answer": "A"} for i in range(2)]
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(train), "test": datasets.Dataset.from_list(test)}
    )
    dd.save_to_disk(str(tmp_path / "quiz"))
    task = load_datasets_task(tmp_path / "quiz")
    assert task.name == "quiz" and task.domain == "science" and set(CHOICE_SCORERS) == set(task.scorers)
    assert task.available("train") == 4 and {i.answer for i in task.items("eval", 5)} == {"A"}

    bad = datasets.DatasetDict({"train": datasets.Dataset.from_list(train)})
    bad.save_to_disk(str(tmp_path / "noeval"))
    with pytest.raises(TaskError, match=r"needs splits 'train' and 'eval' \(or 'test'\)"):
        load_datasets_task(tmp_path / "noeval")
    broken = [{"prompt": "p", "scorer": "exact_match"}]
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(broken), "eval": datasets.Dataset.from_list(broken)}
    ).save_to_disk(str(tmp_path / "broken"))
    with pytest.raises(TaskError, match=r"broken \[train\] row 1: missing field 'answer'"):
        load_datasets_task(tmp_path / "broken")
    with pytest.raises(TaskError, match="folder not found"):
        load_datasets_task(tmp_path / "absent")
