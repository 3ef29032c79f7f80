"""A ported adapter opens with PEFT's AutoPeftModelForCausalLM alone: adapter_config.json names a
base PEFT can load (the checkpoint folder a loraport name resolves to), and loraport's own name for
the base stays in the provenance."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from peft import PeftModel
from tests.conftest import make_anchor_set
from transformers import AutoModelForCausalLM

from loraport.adapters import load_adapter
from loraport.api import port
from loraport.models import MODEL_SOURCES

NAME = "test-autopeft-target"

LOAD_ALONE = """
import sys, torch
from peft import AutoPeftModelForCausalLM
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    torch.save(model(ids).logits, sys.argv[2])
assert not [m for m in sys.modules if m.startswith("loraport")]
"""


def test_a_ported_adapter_opens_with_autopeft_alone(tiny_models, tmp_path):
    target = tiny_models["llama"]
    if NAME not in MODEL_SOURCES:  # a registered name, as the zoo's and the real checkpoints' are
        MODEL_SOURCES.add(NAME, lambda: str(target))
    anchors = make_anchor_set(tmp_path, tiny_models["qwen2"], target, 4, rank=4)
    out = port(tmp_path / "x" / "held", NAME, tmp_path / "ported", anchors=anchors, method="global_ridge")

    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(target.resolve())
    ours = load_adapter(out)
    assert ours.provenance["base_model_spec"] == NAME and ours.base_model == NAME

    logits = tmp_path / "logits.pt"
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_ALONE, str(out), str(logits)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # nothing relative to the folder the port ran in
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = base(ids).logits.clone()
        expected = PeftModel.from_pretrained(base, out).eval()(ids).logits
    alone = torch.load(logits)
    assert torch.allclose(alone, expected, atol=1e-5)
    assert (alone - before).abs().max() > 1e-4  # the adapter is applied, not just loaded
