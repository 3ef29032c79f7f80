"""Where models compute: device names, the CLI's --device, and (on a machine with a CUDA GPU)
training and scoring on the GPU against the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from loraport.device import ENV, module_device, resolve_device, to_device, use_device
from loraport.errors import LoraportError

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


@no_gpu
def test_auto_is_the_cpu_and_a_missing_gpu_is_an_error(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert resolve_device() == resolve_device("auto") == "cpu"
    with pytest.raises(LoraportError, match="'cuda': torch sees no CUDA GPU"):
        resolve_device("cuda")


def test_device_names_are_checked(monkeypatch):
    for bad in ("tpu", "cpu:1", "cuda:x", ""):
        with pytest.raises(LoraportError, match=r"use auto, cpu, cuda, cuda:N or mps|CUDA GPU"):
            resolve_device(bad)
    monkeypatch.setenv(ENV, "tpu")
    with pytest.raises(LoraportError, match="'tpu'"):
        resolve_device()
    with use_device("cpu"):  # an explicit block wins over the environment
        assert resolve_device() == "cpu"
        with use_device(None):
            assert resolve_device() == "cpu"


def test_to_device_moves_tensors_only():
    batch = to_device({"input_ids": torch.ones(2, 3, dtype=torch.long), "use_cache": False}, "cpu")
    assert batch["use_cache"] is False and batch["input_ids"].device.type == "cpu"
    assert module_device(torch.nn.Linear(2, 2)).type == "cpu"
    assert module_device(torch.nn.ReLU()).type == "cpu"


@no_gpu
def test_cli_device_errors_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from loraport.cli.main import app

    out = tmp_path / "out"
    commands = (
        ["train", "--base", "tiny-llama-y", "--task", "math_add", "--out", out],
        ["eval", "--base", "tiny-llama-y", "--task", "math_add", "--limit", "2"],
        ["port", "--adapter", tmp_path, "--target-base", "tiny-llama-y", "--out", out, "--method", "align"],
        ["bench", Path(__file__).parents[1] / "studies" / "quick.yaml", "--out", out],
        ["demo", "--out", out],
    )
    for args in commands:
        for device in ("cuda", "tpu"):
            res = CliRunner().invoke(app, [str(a) for a in (*args, "--device", device)])
            assert res.exit_code == 2, (args, res.output)
            assert f"device {device!r}" in res.output and res.output.strip().count("\n") == 0, res.output
            assert not out.exists()


@needs_gpu
def test_training_on_the_gpu_starts_where_the_cpu_does(mini_zoo):
    from loraport.models import load_model
    from loraport.tasks import get_task
    from loraport.train import Recipe, train_on_items

    recipe = Recipe(rank=4, alpha=8, epochs=3, examples=16, batch=8, lr=1e-2)
    items = get_task("math_add").items("train", 16)
    runs = {}
    for device in ("cpu", "cuda"):
        model, tok, _ = load_model(mini_zoo["y"], device=device)
        assert module_device(model).type == device
        runs[device] = train_on_items(model, tok, items, recipe, progress=False)
    cpu, gpu = runs["cpu"], runs["cuda"]
    # the same LoRA initialisation and data: the first loss agrees to float32 rounding
    assert gpu.losses[0] == pytest.approx(cpu.losses[0], rel=1e-4)
    assert gpu.losses[-1] == pytest.approx(cpu.losses[-1], rel=2e-2)
    for name, f in gpu.modules.items():  # factors come back to the CPU, ready to save
        assert f.A.device.type == "cpu" and f.B.device.type == "cpu"
        assert torch.allclose(f.B @ f.A, cpu.modules[name].B @ cpu.modules[name].A, atol=1e-3)


@needs_gpu
def test_scoring_on_the_gpu_matches_the_cpu(mini_zoo):
    from loraport.evaluate.generate import continuation_logprobs, generate
    from loraport.models import load_model

    pairs = [("The sky is", " blue"), ("2 + 2 =", " 4"), ("Q: color of grass? A:", " green")]
    out = {}
    for device in ("cpu", "cuda"):
        model, tok, _ = load_model(mini_zoo["y"], device=device)
        out[device] = (
            continuation_logprobs(model, tok, pairs),
            generate(model, tok, [p for p, _ in pairs], max_new_tokens=4),
        )
    for (lc, nc), (lg, ng) in zip(out["cpu"][0], out["cuda"][0], strict=True):
        assert nc == ng and lg == pytest.approx(lc, abs=1e-3)
    assert len(out["cuda"][1]) == 3 and all(isinstance(s, str) for s in out["cuda"][1])
