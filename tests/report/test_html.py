"""report.html: self-contained, the same tables as report.md, figures inline, sample items per task,
sortable in a real browser (headless Chromium, Debian's `chromium`; skipped where it is missing)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.report.test_reference_headline import GR, hand_made_run

from loraport.report.figures import pareto_front
from loraport.report.html import markdown_to_html

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None)


def with_samples(run: Path) -> Path:
    """Give every record two sample items, as the runner writes them."""
    for p in (run / "records").glob("*.json"):
        r = json.loads(p.read_text())
        who = r.get("variant") or r["condition"]
        r["samples"] = [
            {
                "id": f"{r['task']}-{i}",
                "prompt": f"<prompt {i} of {r['task']}>",
                "prediction": f"answer of {who}",
                "extracted": None,
                "answer": str(i),
                "correct": i == 0,
                "status": "ok" if i == 0 else "wrong",
            }
            for i in range(2)
        ]
        p.write_text(json.dumps(r))
    return run


@pytest.fixture
def report(tmp_path) -> Path:
    from loraport.report import build_report

    run = with_samples(hand_made_run(tmp_path / "run"))
    build_report(run)
    return run


def test_pareto_front_known_answer():
    # (cost, quality): b beats a (cheaper and better); d costs more than c for the same quality
    pts = [(1.0, 0.1), (0.5, 0.2), (2.0, 0.6), (3.0, 0.6), (0.1, 0.0)]
    assert pareto_front(pts) == [4, 1, 2]


def test_markdown_tables_become_sortable_html_tables():
    md = "# T\n\ntext **bold** `code`\n\n| a | b |\n|---|---|\n| 1 | <x> |\n\n- item\n"
    out = markdown_to_html(md)
    assert '<h1 id="t">T</h1>' in out and "<strong>bold</strong>" in out and "<code>code</code>" in out
    assert '<table class="sortable"><thead><tr>' in out and "<td>&lt;x&gt;</td>" in out
    assert "<li>item</li>" in out


def test_html_has_the_reports_tables_figures_samples_and_provenance(report):
    page = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    md_tables = md.count("\n|---")
    tasks = 3
    assert page.count('<table class="sortable">') == md_tables + tasks  # + one sample table per task
    figures = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert len(re.findall(r'<img alt="[a-z_]+\.png" src="data:image/png;base64,', page)) == len(figures) == 4
    assert "http://" not in page and "https://" not in page  # self-contained
    for heading in ("Headline", "Main table", "Top-K selection log", "Per-task samples", "Provenance"):
        assert f">{heading}</h2>" in page, heading
    assert page.index("Per-task samples") < page.index(">Provenance</h2>")
    # a task's drill-down: prompt, reference, then base Y / oracle / teacher / mean first / methods
    samples = page.split("math_sum_more: 2 items")[1].split("</details>")[0]
    heads = re.findall(r"<th>([^<]+)</th>", samples)
    assert heads == [
        "item",
        "prompt",
        "reference",
        "base Y",
        "oracle",
        "teacher X",
        "mean",
        GR,
        "topk_global_ridge[k=2]",
    ]
    assert "&lt;prompt 0 of math_sum_more&gt;" in samples and "answer of global_ridge" in samples
    assert "✓ correct" in samples and "✗ wrong" in samples
    assert "code_paren (unusable)" in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package")
def test_html_renders_and_sorts_in_headless_chromium(report, tmp_path):
    page = (report / "report.html").resolve()
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    common += ["--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}"]
    # table 1 is "Method × N"; sort it by its N=2 column
    dom = subprocess.run(
        [*common, "--dump-dom", f"{page.as_uri()}#sort=1,1"], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)[1]
    assert 'data-sortable="ready"' in body
    assert 'data-figures="4"' in body  # every inline figure decoded
    sorted_col = re.search(r'data-sorted="([^"]*)"', body)[1].split("|")
    values = [float(v.split(" ")[0]) for v in sorted_col]
    assert values == sorted(values) and len(values) == 3
    assert dom.stdout.count("<table") >= 10
    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
    if os.environ.get("LORAPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["LORAPORT_SCREENSHOT"])
