"""`loraport fewstep`: bad arguments are one-line errors with exit code 2, before any work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from loraport.cli.main import app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "0"], "error: k must be an integer ≥ 1 (got 0)"),
        (["--credit", "vec"], "error: unknown credit 'vec' (credits: backprop, dfa, transfer)"),
        (["--lr", "-1"], "error: step sizes must be > 0"),
        ([], "not a run directory (no run.json)"),
    ],
)
def test_bad_fewstep_arguments(tmp_path, args, message):
    res = CliRunner().invoke(app, ["fewstep", str(tmp_path / "no-run"), *args])
    assert res.exit_code == 2
    out = res.output.strip()
    assert message in out and len(out.splitlines()) == 1
