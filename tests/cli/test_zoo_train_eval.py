"""`loraport zoo|tasks|train|eval` end to end on the mini zoo, and their bad-input errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from loraport.cli.main import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_tasks_and_zoo_listing():
    r = run("tasks", "list", "--role", "heldout")
    assert r.exit_code == 0 and "math_sum_more" in r.output and "code_string" not in r.output
    r = run("zoo", "list")
    assert r.exit_code == 0 and "tiny-qwen2-x" in r.output and "tiny-llama-l" in r.output
    r = run("zoo", "path", "tiny-llama-y")
    assert r.exit_code == 0 and r.output.strip().endswith("shipped/tiny-llama-y")  # package data
    r = run("zoo", "path", "tiny-llama-s")
    assert r.exit_code == 0 and r.output.strip().endswith("shipped/tiny-llama-s")  # the tiers ship too


def test_unknown_zoo_name_is_one_line_exit_2():
    r = run("zoo", "path", "tiny-lama-y")
    assert r.exit_code == 2 and "did you mean 'tiny-llama-y'" in r.output and r.output.count("\n") == 1


def test_train_then_eval_with_the_adapter(mini_zoo, tmp_path):
    out = tmp_path / "ad"
    r = run(
        "train",
        "--base",
        mini_zoo["y"],
        "--task",
        "math_add",
        "--out",
        out,
        "--examples",
        8,
        "--epochs",
        2,
        "--batch",
        8,
        "--rank",
        4,
    )
    assert r.exit_code == 0, r.output
    assert (out / "adapter_model.safetensors").is_file() and (out / "checkpoints" / "epoch-2").is_dir()
    r = run(
        "eval",
        "--base",
        mini_zoo["y"],
        "--adapter",
        out,
        "--task",
        "math_add",
        "--limit",
        4,
        "--out",
        tmp_path / "e.jsonl",
    )
    assert r.exit_code == 0, r.output
    assert "numeric_flexible" in r.output and "numeric_strict" in r.output
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    head = json.loads(lines[0])
    assert len(lines) == 1 + 2 * 4 and head["provenance"]["adapter"]["path"] == str(out)


def test_train_bad_input(mini_zoo, tmp_path):
    r = run("train", "--base", mini_zoo["y"], "--task", "math_ad", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "unknown task 'math_ad'" in r.output
    r = run("train", "--base", mini_zoo["y"], "--task", "math_add", "--out", tmp_path / "o", "--rank", 0)
    assert r.exit_code == 2 and "recipe field rank" in r.output
    r = run("train", "--base", tmp_path / "nope", "--task", "math_add", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "nope" in r.output
    assert not list(tmp_path.iterdir())


def test_a_jsonl_task_folder_trains_and_evaluates(mini_zoo, tmp_path):
    task = tmp_path / "capitals"
    task.mkdir()
    rows = [
        {"prompt": f"echo {w}: ", "answer": w, "scorer": "exact_match"}
        for w in ("red", "blue", "green", "pink")
    ]
    (task / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n")
    (task / "eval.jsonl").write_text(json.dumps(rows[3]) + "\n")
    r = run(
        "train",
        "--base",
        mini_zoo["y"],
        "--task",
        task,
        "--out",
        tmp_path / "ad",
        "--examples",
        3,
        "--epochs",
        1,
        "--batch",
        3,
        "--rank",
        2,
    )
    assert r.exit_code == 0, r.output
    r = run("eval", "--base", mini_zoo["y"], "--adapter", tmp_path / "ad", "--task", task, "--limit", 1)
    assert r.exit_code == 0 and "exact_match" in r.output
    (task / "eval.jsonl").write_text(
        '{"prompt": "echo red: ", "answer": "red", "scorer": "exact_match"}\n{oops\n'
    )
    r = run("eval", "--base", mini_zoo["y"], "--task", task)
    assert r.exit_code == 2 and "eval.jsonl, line 2: malformed JSON" in r.output


def test_demo_names_its_studies():
    r = run("demo", "--study", "nope")
    assert r.exit_code == 2 and "shipped studies are starter, quick, demo" in r.output


def test_errors_keep_square_brackets(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\nsource: a\ntarget: b\nanchors: [math_add]\nheldout: [math_add]\nmethods: {mean: {}}\n"
    )
    r = run("bench", study, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "held-out task 'math_add' is also an anchor" in r.output
    r = run("train", "--base", "[x]", "--task", "math_add", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "'[x]'" in r.output
