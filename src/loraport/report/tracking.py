"""Log a study run to MLflow: the study's parameters, its aggregate and per-cell metrics, and the
report files as artifacts. Reads the run folder only (run.json, summary.json, records/, report
files), like the report itself.

    loraport bench studies/quick.yaml --out runs/q --mlflow ./mlruns    # after the run
    loraport report runs/q --mlflow http://mlflow.example:5000           # an existing run

    from loraport.report.tracking import log_to_mlflow
    run_id = log_to_mlflow("runs/q", "./mlruns")

Needs `pip install 'loraport[mlflow]'` (the mlflow-skinny client). A local folder or `file:` URI
is MLflow's file store, which MLflow 3 keeps in maintenance mode behind MLFLOW_ALLOW_FILE_STORE;
asking for one here sets that variable.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from loraport.bench.metrics import accuracy
from loraport.errors import LoraportError

ARTIFACTS = ("report.md", "report.html", "summary.json", "run.json")
BATCH = 900  # MLflow takes at most 1000 metrics per log_batch call


def metric_name(*parts: Any) -> str:
    """An MLflow metric or parameter name: parts joined by '/', each character MLflow refuses
    (only letters, digits, _ - . space : / are allowed) replaced by '_'."""
    return "/".join(re.sub(r"[^A-Za-z0-9_\-. :]", "_", str(p)) for p in parts)


def study_params(meta: dict[str, Any]) -> dict[str, str]:
    """The study's parameters, flat: what it computed (the study YAML) and where it ran."""
    study = meta["study"]
    params: dict[str, Any] = {f"study.{k}": v for k, v in study.items() if k != "recipe"}
    params |= {f"recipe.{k}": v for k, v in (study.get("recipe") or {}).items()}
    params |= {
        f"run.{k}": meta.get(k) for k in ("loraport_version", "torch", "device", "executor", "workers")
    }
    return {
        metric_name(k): (v if isinstance(v, str) else json.dumps(v, sort_keys=True))[:6000]
        for k, v in params.items()
    }


def study_metrics(summary: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, float]:
    """Headline, per-task baselines, every aggregate (gap recovered per variant, pool and N) and every
    cell's accuracy (one per record, by its name)."""
    out: dict[str, float] = {}
    if summary.get("best"):
        out["headline/best_gap_recovered"] = summary["best"]["gap_recovered"]
    ref = summary.get("best_minus_mean_points")
    if ref:
        out["headline/best_learned_minus_mean_points"] = ref["points"]
    if summary.get("best_learned_minus_mean") is not None:
        out["headline/best_learned_minus_mean_gap"] = summary["best_learned_minus_mean"]
    if summary.get("teacher_ceiling"):
        out["headline/teacher_ceiling"] = summary["teacher_ceiling"]["gap_recovered"]
    out["headline/usable_tasks"] = len(summary.get("usable_tasks", []))
    for task, row in summary.get("tasks", {}).items():
        for k in ("base_y", "oracle_y", "teacher", "oracle_minus_base"):
            if row.get(k) is not None:
                out[metric_name("task", task, k)] = row[k]
    for r in [*summary.get("aggregates", []), *summary.get("control_aggregates", [])]:
        name = (r["variant"], r["pool"], f"N{r['n_anchors']}")
        if r["gap_recovered"] is not None:
            out[metric_name("gap_recovered", *name)] = r["gap_recovered"]
        if r.get("std") is not None:  # a name of its own: a file store keeps "a/b" as file b in folder a
            out[metric_name("gap_recovered_std", *name)] = r["std"]
    for rec in records:
        a = accuracy(rec)
        if a is not None:
            out[metric_name("cell", rec["name"], "accuracy")] = a
    return {k: float(v) for k, v in out.items()}


def log_to_mlflow(run_dir: str | Path, uri: str, experiment: str | None = None) -> str:
    """Log the run folder's study to the MLflow tracking server or store at `uri`, in the
    experiment `experiment` (default: "loraport/<study name>"); returns the MLflow run id."""
    try:
        import mlflow
        from mlflow.entities import Metric, Param
    except ImportError as exc:
        raise LoraportError("--mlflow needs the MLflow client: pip install 'loraport[mlflow]'") from exc
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file():
        raise LoraportError(f"{run_dir}: no summary.json to log (run `loraport report {run_dir}` first)")
    meta = json.loads((run_dir / "run.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(p.read_text()) for p in sorted((run_dir / "records").glob("*.json"))]
    if "://" not in uri:  # a local folder: MLflow's file store
        uri = Path(uri).resolve().as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    client = mlflow.MlflowClient(tracking_uri=uri)
    name = experiment or f"loraport/{meta['study']['name']}"
    found = client.get_experiment_by_name(name)
    exp_id = found.experiment_id if found else client.create_experiment(name)
    run = client.create_run(
        exp_id,
        run_name=meta["study"]["name"],
        tags={
            "loraport.run_dir": str(run_dir.resolve()),
            "loraport.study_kind": meta["study"].get("kind", "port"),
        },
    )
    run_id = run.info.run_id
    try:
        params = [Param(k, v) for k, v in study_params(meta).items()]
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in study_metrics(summary, records).items()]
        for i in range(0, len(params), 90):  # at most 100 params per call
            client.log_batch(run_id, params=params[i : i + 90])
        for i in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + BATCH])
        for f in ARTIFACTS:
            if (run_dir / f).is_file():
                client.log_artifact(run_id, str(run_dir / f))
        if (run_dir / "figures").is_dir():
            client.log_artifacts(run_id, str(run_dir / "figures"), "figures")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    return run_id
