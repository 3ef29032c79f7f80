"""`--mlflow`: a study's parameters, aggregate and per-cell metrics and report files, logged to a
local MLflow file store with the real MLflow client and read back through it."""

from __future__ import annotations

import pytest
from tests.report.test_reference_headline import TOPK, hand_made_run
from typer.testing import CliRunner

from loraport.cli.main import app
from loraport.report.tracking import metric_name

mlflow = pytest.importorskip("mlflow")


def logged_runs(store):
    client = mlflow.MlflowClient(tracking_uri=store.resolve().as_uri())
    exp = client.get_experiment_by_name("loraport/hand")
    return client, client.search_runs([exp.experiment_id])


def test_report_logs_params_metrics_and_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = hand_made_run(tmp_path / "run")
    store = tmp_path / "mlruns"
    res = CliRunner().invoke(app, ["report", str(run), "--mlflow", str(store)])
    assert res.exit_code == 0, res.output
    assert "logged to MLflow" in res.output

    client, runs = logged_runs(store)
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED" and r.info.run_name == "hand"
    params = r.data.params
    assert params["study.name"] == "hand" and params["study.n_anchors"] == "[2]"
    assert params["study.seeds"] == "[0, 1]" and params["recipe.rank"] == "16"
    m = r.data.metrics
    # the numbers of test_reference_headline's hand-made study
    assert m["headline/best_learned_minus_mean_points"] == pytest.approx(25.0)
    assert m["headline/best_learned_minus_mean_gap"] == pytest.approx(0.5)
    assert m[metric_name("gap_recovered", TOPK, "all", "N2")] == pytest.approx(2 / 3)
    assert m["task/math_sum_more/oracle_y"] == pytest.approx(0.8)
    cells = {k: v for k, v in m.items() if k.startswith("cell/")}
    assert len(cells) == len(list((run / "records").glob("*.json")))
    assert cells["cell/code_paren__global_ridge__all__N2__s0/accuracy"] == pytest.approx(0.9)
    names = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"report.md", "report.html", "summary.json", "run.json", "figures"} <= names
    assert {a.path for a in client.list_artifacts(r.info.run_id, "figures")} >= {"figures/cost_quality.png"}


def test_metric_names_keep_only_what_mlflow_accepts():
    assert metric_name("gap_recovered", "distill[init=global_ridge]", "all", "N8") == (
        "gap_recovered/distill_init_global_ridge_/all/N8"
    )
    assert metric_name("cell", "code_paren@2shot__mean") == "cell/code_paren_2shot__mean"
