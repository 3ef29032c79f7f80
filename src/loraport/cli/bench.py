"""`loraport bench` and `loraport report`: run a study, rebuild its report."""

from __future__ import annotations

from pathlib import Path

import typer

from loraport.cli.common import DeviceOpt, console, friendly

MlflowOpt = typer.Option(
    None,
    "--mlflow",
    help="MLflow tracking URI (a server, or a local folder for MLflow's file store): log the study's "
    "parameters, metrics and report files there (needs loraport[mlflow]).",
)


@friendly
def bench(
    study: Path = typer.Argument(..., help="Study YAML (see studies/demo.yaml)."),
    out: Path = typer.Option(..., "--out", help="Run directory (resumable: re-run to continue)."),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: start a local Ray)."),
    threads: int = typer.Option(
        None, "--threads", help="torch threads per cell (default: cores / workers for local, 1 for ray)."
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        help="local: cells side by side, each in its own process with cores/N threads (default 1: "
        "in this process). Pays on many-core machines; on 2 cores it gains nothing.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan and what is cached; compute nothing."
    ),
    cache: Path = typer.Option(
        None, "--cache", help="Artifact cache shared between studies (default: OUT/cache)."
    ),
    device: str | None = DeviceOpt,
    mlflow: str | None = MlflowOpt,
) -> None:
    """Run a port study: train anchors and oracles, port, evaluate, write report.md/summary.json/figures."""
    from loraport.bench import load_study, run_study

    spec = load_study(study)
    summary = run_study(
        spec,
        out,
        executor=executor,
        address=address,
        threads=threads,
        workers=workers,
        dry_run=dry_run,
        cache=cache,
        device=device,
        log=lambda s: console.print(s, highlight=False, markup=False),
    )
    if summary is not None:
        print_headline(out)
        if mlflow:
            log_mlflow(out, mlflow)


def log_mlflow(run_dir: Path, uri: str) -> None:
    from loraport.report.tracking import log_to_mlflow

    run_id = log_to_mlflow(run_dir, uri)
    console.print(f"logged to MLflow at {uri}: run {run_id}", highlight=False, markup=False)


def print_headline(out: Path) -> None:
    text = (out / "report.md").read_text()
    start = text.find("## Headline")
    end = text.find("## Main table")
    console.print(text[start:end].strip(), highlight=False, markup=False)
    console.print(
        f"\nreport: {out / 'report.md'}  summary: {out / 'summary.json'}  figures: {out / 'figures'}",
        highlight=False,
    )


@friendly
def report(
    run_dir: Path = typer.Argument(..., help="A run directory written by `loraport bench`."),
    mlflow: str | None = MlflowOpt,
) -> None:
    """Rebuild report.md, report.html, summary.json and figures/ from the run's stored records alone."""
    from loraport.errors import LoraportError
    from loraport.report import build_report

    if not (run_dir / "run.json").is_file():
        raise LoraportError(f"{run_dir}: not a run directory (no run.json)")
    build_report(run_dir)
    console.print(
        f"rebuilt {run_dir / 'report.md'}, {run_dir / 'report.html'}, {run_dir / 'summary.json'}, "
        f"{run_dir / 'figures'}",
        highlight=False,
    )
    if mlflow:
        log_mlflow(run_dir, mlflow)
