"""`loraport demo`: a port study on the embedded zoo, offline (or the synthetic machinery check)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from loraport.cli.common import DeviceOpt, console, friendly

STUDIES = ("starter", "quick", "demo")


@friendly
def demo(
    study: str = typer.Option(
        "starter",
        "--study",
        help="Shipped study: starter (2 held-out tasks, math and code; 3 anchors, one method per rung, the "
        "controls, 1 seed: under ten minutes on 2 CPU cores), quick (8 anchors, N 4/8, K 2/4, 2 seeds) or "
        "demo (the full headline study: every method, N 4/8/16, K 2/4/8, 3 seeds, all held-out "
        "tasks).",
    ),
    out: Path = typer.Option(
        None, "--out", help="Run folder (resumable); default runs/demo (runs/demo-synthetic)."
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        help="Cells side by side in worker processes (default 1; see `loraport bench --help`).",
    ),
    synthetic: bool = typer.Option(
        False, "--synthetic", help="Instead: the 30-second weight-space check on synthetic anchors."
    ),
    device: str | None = DeviceOpt,
) -> None:
    """Build the zoo, train anchors and oracles, port held-out adapters, write the report."""
    if synthetic:
        from loraport.demo import run_demo

        out = out or Path("runs/demo-synthetic")
        summary = run_demo(out, log=lambda s: console.print(s, highlight=False, markup=False))
        console.print((out / "report.md").read_text(), highlight=False, markup=False)
        console.print(
            f"wrote {out}/report.md, summary.json, records.jsonl ({summary['provenance']['seconds']} s)"
        )
        return
    from loraport.bench import load_study, run_study
    from loraport.cli.bench import print_headline
    from loraport.errors import LoraportError

    if study not in STUDIES:
        raise LoraportError(f"--study {study!r}: shipped studies are {', '.join(STUDIES)}")
    path = resources.files("loraport.bench").joinpath("studies", f"{study}.yaml")
    out = out or Path("runs/demo")
    run_study(
        load_study(path),
        out,
        workers=workers,
        device=device,
        log=lambda s: console.print(s, highlight=False, markup=False),
    )
    text = (out / "report.md").read_text()
    table = text[text.find("## Main table") : text.find("Method cells:")].strip()
    console.print(table, highlight=False, markup=False)
    print_headline(out)
