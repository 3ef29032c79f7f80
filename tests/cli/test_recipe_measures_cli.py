"""`loraport recipe-measures`: a folder that is not a recipe_transfer run is a one-line error with exit
code 2, and nothing is written into it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from loraport.cli.main import app


def test_not_a_run_and_another_kind_are_one_line_errors(tmp_path):
    res = CliRunner().invoke(app, ["recipe-measures", str(tmp_path / "no-run")])
    assert res.exit_code == 2
    out = res.output.strip()
    assert "not a run directory (no run.json)" in out and len(out.splitlines()) == 1

    run = tmp_path / "port-run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"study": {"name": "q", "kind": "port"}}))
    res = CliRunner().invoke(app, ["recipe-measures", str(run)])
    assert res.exit_code == 2
    out = res.output.strip()
    assert "a port run; measures are for recipe_transfer runs" in out and len(out.splitlines()) == 1
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]
