"""Every bad input named in the issue: a one-line error naming the file/field/value, a non-zero exit,
and no output folder left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from loraport.cli.main import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def work(anchor_set, tmp_path) -> Path:
    root = tmp_path / "set"
    shutil.copytree(anchor_set.parent, root)
    return root


def port_args(work: Path, tiny_models, adapter: Path, out: Path, *extra: str):
    return (
        "port",
        "--adapter",
        adapter,
        "--anchors",
        work / "anchors.yaml",
        "--method",
        "global_ridge",
        "--target-base",
        tiny_models["llama"],
        "--out",
        out,
        *extra,
    )


def assert_fails(res, *needles: str, out: Path | None = None):
    assert res.exit_code != 0, res.output
    text = res.output.strip()
    assert text.startswith("error:") and len(text.splitlines()) <= 2, text  # one line (rich may wrap once)
    for n in needles:
        assert n in text.replace("\n", " "), (n, text)
    if out is not None:
        assert not out.exists()
        assert not [
            p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")
        ]  # no temp leftovers


def test_good_port_works(work, tiny_models, tmp_path):
    out = tmp_path / "ok"
    res = run(*port_args(work, tiny_models, work / "x" / "held", out))
    assert res.exit_code == 0, res.output
    assert (out / "adapter_model.safetensors").is_file()


def test_missing_safetensors(work, tiny_models, tmp_path):
    (work / "x" / "held" / "adapter_model.safetensors").unlink()
    out = tmp_path / "o"
    assert_fails(
        run(*port_args(work, tiny_models, work / "x" / "held", out)),
        "adapter_model.safetensors",
        "missing",
        out=out,
    )


def test_truncated_safetensors(work, tiny_models, tmp_path):
    f = work / "x" / "held" / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    out = tmp_path / "o"
    assert_fails(run(*port_args(work, tiny_models, work / "x" / "held", out)), str(f), out=out)


def test_config_disagrees_with_weights(work, tiny_models, tmp_path):
    cfg = work / "x" / "held" / "adapter_config.json"
    d = json.loads(cfg.read_text())
    d["r"] = 8
    cfg.write_text(json.dumps(d))
    out = tmp_path / "o"
    assert_fails(
        run(*port_args(work, tiny_models, work / "x" / "held", out)), "adapter_config.json", "r=8", out=out
    )


def test_shapes_do_not_fit_the_base(work, tiny_models, tmp_path):
    # A Llama adapter offered as the Qwen2 source input.
    out = tmp_path / "o"
    assert_fails(run(*port_args(work, tiny_models, work / "y" / "held", out)), "expects", out=out)


def test_nan_weights(work, tiny_models, tmp_path):
    f = work / "x" / "held" / "adapter_model.safetensors"
    t = load_file(f)
    key = sorted(t)[0]
    t[key][0, 0] = float("nan")
    save_file(t, f)
    out = tmp_path / "o"
    assert_fails(run(*port_args(work, tiny_models, work / "x" / "held", out)), "NaN or Inf", key, out=out)


def test_inf_in_an_anchor(work, tiny_models, tmp_path):
    f = work / "y" / "t2" / "adapter_model.safetensors"
    t = load_file(f)
    key = sorted(t)[-1]
    t[key][0, 0] = float("inf")
    save_file(t, f)
    out = tmp_path / "o"
    assert_fails(run(*port_args(work, tiny_models, work / "x" / "held", out)), "NaN or Inf", "t2", out=out)


def _edit_anchors(work: Path, fn) -> None:
    path = work / "anchors.yaml"
    d = yaml.safe_load(path.read_text())
    fn(d)
    path.write_text(yaml.safe_dump(d))


def test_duplicate_tasks(work, tiny_models, tmp_path):
    _edit_anchors(work, lambda d: d["pairs"].append(dict(d["pairs"][0])))
    out = tmp_path / "o"
    assert_fails(
        run(*port_args(work, tiny_models, work / "x" / "held", out)),
        "anchors.yaml",
        "duplicate task 't0'",
        out=out,
    )


def test_mismatched_tasks(work, tiny_models, tmp_path):
    def swap(d):
        d["pairs"][0]["target"] = "y/t1"

    _edit_anchors(work, swap)
    out = tmp_path / "o"
    assert_fails(run(*port_args(work, tiny_models, work / "x" / "held", out)), "pair 't0'", "'t1'", out=out)


def test_too_few_anchors(work, tiny_models, tmp_path):
    _edit_anchors(work, lambda d: d.update(pairs=d["pairs"][:1]))
    out = tmp_path / "o"
    assert_fails(run(*port_args(work, tiny_models, work / "x" / "held", out)), "at least 2", out=out)


def test_k_larger_than_n(work, tiny_models, tmp_path):
    out = tmp_path / "map"
    res = run(
        "fit", "--anchors", work / "anchors.yaml", "--method", "topk_global_ridge", "--k", "9", "--out", out
    )
    assert_fails(res, "k=9", "6 anchors", out=out)


def test_unknown_method_suggests(work, tiny_models, tmp_path):
    out = tmp_path / "map"
    res = run("fit", "--anchors", work / "anchors.yaml", "--method", "global_rigde", "--out", out)
    assert_fails(res, "global_rigde", "did you mean 'global_ridge'", out=out)


def test_unknown_method_option(work, tmp_path):
    out = tmp_path / "map"
    res = run(
        "fit", "--anchors", work / "anchors.yaml", "--method", "mean", "--option", "ridge=1", "--out", out
    )
    assert_fails(res, "'mean'", "ridge", out=out)


def test_target_model_cannot_be_loaded(work, tmp_path):
    out = tmp_path / "o"
    res = run(
        "port",
        "--adapter",
        work / "x" / "held",
        "--anchors",
        work / "anchors.yaml",
        "--method",
        "mean",
        "--target-base",
        tmp_path / "no-such-model",
        "--out",
        out,
    )
    assert_fails(res, "no-such-model", out=out)


def test_target_base_of_other_shapes(work, tiny_models, tmp_path):
    out = tmp_path / "o"
    res = run(
        "port",
        "--adapter",
        work / "x" / "held",
        "--anchors",
        work / "anchors.yaml",
        "--method",
        "mean",
        "--target-base",
        tiny_models["gemma3"],
        "--out",
        out,
    )
    assert_fails(res, "differ in shape", out=out)


def test_existing_output_needs_force(work, tiny_models, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_fails(run(*port_args(work, tiny_models, work / "x" / "held", out)), "exists", "--force")
    assert (out / "keep.txt").read_text() == "mine"
    res = run(*port_args(work, tiny_models, work / "x" / "held", out, "--force"))
    assert (
        res.exit_code == 0
        and (out / "adapter_model.safetensors").is_file()
        and not (out / "keep.txt").exists()
    )


def test_pickled_weights_refused_without_flag(work, tiny_models, tmp_path):
    d = work / "x" / "held"
    torch.save(load_file(d / "adapter_model.safetensors"), d / "adapter_model.bin")
    (d / "adapter_model.safetensors").unlink()
    out = tmp_path / "o"
    assert_fails(run(*port_args(work, tiny_models, d, out)), "adapter_model.bin", "--allow-pickle", out=out)
    res = run(*port_args(work, tiny_models, d, out, "--allow-pickle"))
    assert res.exit_code == 0, res.output


def test_invalid_anchors_yaml_names_the_line(work, tiny_models, tmp_path):
    (work / "anchors.yaml").write_text("source_base: a\ntarget_base: b\npairs: [\n  - {task: x\n")
    out = tmp_path / "o"
    assert_fails(
        run(*port_args(work, tiny_models, work / "x" / "held", out)), "anchors.yaml", "line", out=out
    )


def test_unknown_anchors_field_suggests(work, tiny_models, tmp_path):
    _edit_anchors(work, lambda d: d.update(target_bse=d.pop("target_base")))
    out = tmp_path / "o"
    assert_fails(run(*port_args(work, tiny_models, work / "x" / "held", out)), "target_bse", out=out)


def test_fit_then_port_via_map_and_inspect(work, tiny_models, tmp_path):
    m = tmp_path / "map"
    assert (
        run("fit", "--anchors", work / "anchors.yaml", "--method", "pertensor_ridge", "--out", m).exit_code
        == 0
    )
    out = tmp_path / "o"
    res = run(
        "port",
        "--adapter",
        work / "x" / "held",
        "--map",
        m,
        "--target-base",
        tiny_models["llama"],
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    res = run("inspect", out, "--json")
    info = json.loads(res.output)
    assert info["provenance"]["method"] == "pertensor_ridge" and info["rank"] == 4
    assert set(info["norms"]) == {"0", "1", "2"}  # three Llama layers
