"""Studies per device: CPU cells keep their keys, GPU cells are keyed apart, and (on a machine with
a CUDA GPU) a study with every method runs there reproducibly."""

from __future__ import annotations

import json

import pytest
import torch

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_bench_keys_cpu_cells_as_before_and_gpu_cells_apart(mini_study):
    from loraport.bench import load_study
    from loraport.bench.plan import make_plan

    study = load_study(mini_study)
    fps = {study.source: "a" * 64, study.target: "b" * 64}
    cpu, default, gpu = make_plan(study, fps, "cpu"), make_plan(study, fps), make_plan(study, fps, "cuda:1")
    assert set(cpu.cells) == set(default.cells)
    assert not set(cpu.cells) & set(gpu.cells)
    assert len(cpu.cells) == len(gpu.cells)
    assert {c.params["device"] for c in gpu.cells.values()} == {"cuda:1"}
    assert {c.params["device"] for c in cpu.cells.values()} == {"cpu"}
    # every GPU there is keyed alike: cuda:0 and cuda:1 cells share the cache
    assert set(make_plan(study, fps, "cuda").cells) == set(gpu.cells)


@needs_gpu
def test_a_study_on_the_gpu_is_reproducible(behaviour_spec, tmp_path):
    """Every method (anchor maps, align, spanfit, distill) and both controls, twice from empty caches:
    the same per-item results, keyed apart from the CPU's."""
    from loraport.bench import load_study, run_study

    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        run_study(load_study(behaviour_spec), out, device="cuda", progress=False, log=lambda s: None)
        meta = json.loads((out / "run.json").read_text())
        assert meta["device"] == "cuda"
        recs = {p.stem: json.loads(p.read_text()) for p in (out / "records").glob("*.json")}
        assert recs and not [n for n, r in recs.items() if "missing" in r]
        runs.append({n: r["scorers"] for n, r in recs.items()})
    assert runs[0] == runs[1]
