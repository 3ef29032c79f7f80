"""The study runner: resumable after kill -9, executor-independent, reports rebuilt from records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from loraport.bench import load_study, run_study
from loraport.bench.runner import previous_runs
from loraport.cli.main import app


def results(run_dir: Path) -> dict:
    """summary.json without the run's own provenance (executor, wall time, what was computed) and
    the measured costs (wall seconds differ between runs; steps and tokens are checked elsewhere)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("provenance")
    costs = summary.pop("costs")
    for row in [*costs["methods"], costs["oracle"]]:
        row.pop("seconds")
        row.pop("relative_seconds", None)
    summary["costs"] = costs
    return summary


def finished(run_dir):
    cache = run_dir / "cache"
    if not cache.is_dir():
        return {}
    return {
        p: p.stat().st_mtime_ns
        for sub in ("adapters", "evals")
        if (cache / sub).is_dir()
        for p in (cache / sub).iterdir()
        if not p.name.startswith(".")
    }


def test_outputs_and_plan(full_run):
    assert (full_run / "report.md").is_file() and (full_run / "summary.json").is_file()
    assert {p.name for p in (full_run / "figures").iterdir()} == {
        "gap_vs_n.png",
        "k_sweep.png",
        "per_task.png",
        "cost_quality.png",
    }
    summary = json.loads((full_run / "summary.json").read_text())
    cells = summary["provenance"]["cells"]
    assert cells == {"train": 10, "teach": 0, "port": 20, "distill": 0, "control": 0, "eval": 26}
    assert "topk_global_ridge[k=3] at N=2: K exceeds N" in summary["provenance"]["skipped"]
    # a choice task's records keep each item's answer letter and the task's chance accuracy
    rec = json.loads((full_run / "records" / "sci_which__base_y.json").read_text())
    kept = rec["scorers"]["loglik_choice"]
    assert len(kept["answers"]) == len(kept["ids"]) and set(kept["answers"]) <= set("ABCD")
    assert 0 < rec["chance"] < 1 and "sci_which" in summary["choice"]["tasks"]
    report = (full_run / "report.md").read_text()
    for section in (
        "## Headline",
        "## Main table",
        "## Method × N",
        "## K sweep",
        "## Per-task winners",
        "## Failure modes",
    ):
        assert section in report


def test_a_run_killed_with_sigkill_resumes_without_recomputing(mini_study, full_run, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-c",
        "from loraport.cli.main import app; app()",
        "bench",
        str(mini_study),
        "--out",
        str(out),
        "--threads",
        "1",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(finished(out)) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    workers = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert workers, "the run had no worker processes"
    deadline = time.time() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a worker outlived the killed run"
    before = finished(out)
    assert before, "the run was killed before it finished anything"
    run_study(load_study(mini_study), out, threads=1, progress=False, log=lambda s: None)
    after = finished(out)
    assert all(after[p] == t for p, t in before.items()), "a finished cell was recomputed"
    meta = json.loads((out / "run.json").read_text())
    total = sum(meta["cells"].values())
    assert sum(meta["computed"].values()) == total - len(before)
    assert not [p for p in (out / "cache" / "adapters").iterdir() if p.name.startswith(".")]
    assert results(out) == results(full_run)
    # and a third run computes nothing; run.json keeps both invocations (the killed one wrote none)
    run_study(load_study(mini_study), out, threads=1, progress=False, log=lambda s: None)
    meta3 = json.loads((out / "run.json").read_text())
    assert sum(meta3["computed"].values()) == 0
    first, second = meta3["runs"]
    assert first["seconds"] == meta["seconds"] and first["computed"] == meta["computed"]
    assert sum(second["computed"].values()) == 0
    assert meta3["seconds_total"] == round(first["seconds"] + second["seconds"], 1)


def test_run_history_reads_an_older_run_json(tmp_path):
    old = tmp_path / "run.json"
    old.write_text(json.dumps({"seconds": 12.5, "stage_seconds": {"train": 10.0}, "computed": {"train": 3}}))
    (run,) = previous_runs(old)
    assert (
        run["seconds"] == 12.5 and run["computed"] == {"train": 3} and run["stage_seconds"] == {"train": 10.0}
    )
    old.write_text("{not json")
    assert previous_runs(old) == [] and previous_runs(tmp_path / "none.json") == []


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_a_pool_of_workers_gives_the_same_numbers(mini_study, full_run, tmp_path):
    out = tmp_path / "pool"
    run_study(load_study(mini_study), out, workers=2, threads=1, progress=False, log=lambda s: None)
    assert json.loads((full_run / "run.json").read_text())["workers"] == 1
    assert json.loads((out / "run.json").read_text())["workers"] == 2
    assert results(out) == results(full_run)


def test_ray_executor_gives_the_same_numbers(mini_study, full_run, tmp_path):
    out = tmp_path / "ray"
    run_study(load_study(mini_study), out, executor="ray", threads=1, progress=False, log=lambda s: None)
    assert json.loads((out / "run.json").read_text())["executor"] == "ray"
    assert results(out) == results(full_run)


def test_report_rebuilds_an_identical_summary(full_run):
    before = (full_run / "summary.json").read_bytes()
    (full_run / "summary.json").unlink()
    (full_run / "report.md").unlink()
    r = CliRunner().invoke(app, ["report", str(full_run)])
    assert r.exit_code == 0, r.output
    assert (full_run / "summary.json").read_bytes() == before and (full_run / "report.md").is_file()


def test_a_shared_cache_serves_another_run(mini_study, full_run, tmp_path):
    out = tmp_path / "second"
    run_study(
        load_study(mini_study), out, cache=full_run / "cache", threads=1, progress=False, log=lambda s: None
    )
    assert sum(json.loads((out / "run.json").read_text())["computed"].values()) == 0
    assert not (out / "cache").exists()
    assert results(out) == results(full_run)


def test_dry_run_computes_nothing(mini_study, tmp_path):
    r = CliRunner().invoke(app, ["bench", str(mini_study), "--out", str(tmp_path / "d"), "--dry-run"])
    assert r.exit_code == 0 and "train: 10 cells, 0 cached, 10 to compute" in r.output
    assert not (tmp_path / "d").exists()


def test_dry_run_on_a_fresh_machine_builds_no_zoo_base(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "empty"))
    quick = Path(__file__).parents[2] / "studies" / "quick.yaml"
    r = CliRunner().invoke(app, ["bench", str(quick), "--out", str(tmp_path / "d"), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "not built yet" not in r.output  # the pair ships with the package
    assert "train: 22 cells, 0 cached, 22 to compute" in r.output
    assert not (tmp_path / "empty" / "zoo").exists() and not (tmp_path / "d").exists()


def test_a_bad_worker_count_fails_before_any_work(mini_study, tmp_path):
    r = CliRunner().invoke(app, ["bench", str(mini_study), "--out", str(tmp_path / "w"), "--workers", "0"])
    assert r.exit_code != 0 and "workers=0: need an integer >= 1" in r.output
    assert not (tmp_path / "w").exists()


def test_per_domain_pools_report_their_anchors_and_the_topk_choices(mini_spec, full_run, tmp_path):
    """A pool of one domain's anchors beside the whole pool: the report's cross-domain section names
    the anchors each pool drew and the K anchors each Top-K port chose out of them."""
    spec = mini_spec(
        tmp_path,
        name="mini-pools",
        methods={"topk_global_ridge": {"k": [2]}},
        n_anchors=[2, 3],
        pools={"all": "all", "math": "math"},  # math: math_add and math_sub, so no N=3 there
    )
    out = tmp_path / "run"
    lines: list[str] = []  # under pytest stdout is no terminal: progress comes as log lines
    run_study(load_study(spec), out, threads=1, cache=full_run / "cache", progress=True, log=lines.append)
    computed = json.loads((out / "run.json").read_text())["computed"]
    for kind, n in computed.items():
        if n:
            assert f"{kind}: {n} cells to compute" in lines
            done = [x for x in lines if x.startswith(f"{kind} ") and "/" in x.split()[1]]
            assert len(done) == n and done[-1].startswith(f"{kind} {n}/{n} ") and "elapsed" in done[-1]
    records = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    ported = [r for r in records if r["condition"] == "method"]
    assert len(ported) == (2 + 1) * 2 * 2  # (N for all + N for math) x seeds x held-out tasks
    for r in ported:
        assert len(r["topk_selected"]) == 2 and set(r["topk_selected"]) <= set(r["anchors"])
        if r["pool"] == "math":
            assert set(r["anchors"]) == {"math_add", "math_sub"}
    report = (out / "report.md").read_text()
    assert "## Cross-domain anchor pools" in report and "Anchor selections (pool, seed: anchors)" in report
    assert "## Top-K selection log" in report
    table = report.split("The K anchors each Top-K port chose (seed 0;")[1].split("\n\n")[1].splitlines()
    assert table[0] == "| task | variant | all (N=3) | math (N=2) |"
    largest = {"all": 3, "math": 2}
    seed0 = {
        (r["task"], r["pool"]): ", ".join(r["topk_selected"])
        for r in ported
        if r["seed"] == 0 and r["n_anchors"] == largest[r["pool"]]
    }
    assert len(table) == 2 + 2  # header, rule, one row per held-out task
    for row in table[2:]:
        task, _, on_all, on_math = (c.strip() for c in row.strip("|").split("|"))
        assert (on_all, on_math) == (seed0[(task, "all")], seed0[(task, "math")])
    # N=2 uses every anchor of the math pool but not of `all`, whose table says so only for N=3.
    assert "At N = 3 every anchor of the pool is used" in report


def test_a_cell_out_of_memory_beside_others_runs_again_alone(tmp_path, monkeypatch):
    import _oom_cells

    from loraport.bench import executors
    from loraport.bench.plan import Cell

    monkeypatch.setenv("LORAPORT_TEST_MARKS", str(tmp_path))
    monkeypatch.setattr(executors, "run_cell", _oom_cells.run_cell)
    runner = executors.LocalRunner(workers=2, threads=1)
    done: list[dict] = []
    try:
        runner.map([Cell("eval", k, (), {}) for k in ("a", "big", "b")], None, done.append)
    finally:
        runner.close()
    assert sorted(r["key"] for r in done) == ["a", "b", "big"]  # reported once each, none failed
    assert all(r["error"] is None for r in done)
    assert [r["key"] for r in done if r.get("retried_alone")] == ["big"]
    assert len(list(tmp_path.glob("big.*"))) == 2


def test_running_out_of_torch_memory_fails_the_cell_not_the_study(tmp_path, monkeypatch):
    import torch

    from loraport.bench import cells
    from loraport.bench.plan import Cell
    from loraport.bench.store import Store

    class Greedy:
        done = None

        def run(self, cell, store):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 818.00 MiB.")

    monkeypatch.setattr(cells.CELL_KINDS, "get", lambda kind: Greedy())
    res = cells.run_cell(Cell("port", "k1", (), {}, "port t spanfit"), Store(tmp_path))
    assert res["oom"] and res["error"].startswith("port t spanfit: out of cpu memory (CUDA out of memory.")
