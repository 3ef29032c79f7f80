"""report.html: the study report as one self-contained page (no network, figures inline), with the
same tables as report.md, sortable by any column, a per-task drill-down of sample items, and the
provenance. Built from report.md, summary.json's inputs and the records alone (no torch).

    from loraport.report.html import write_html
    write_html(run_dir, markdown_text, records)     # -> run_dir / "report.html"
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from loraport.bench.metrics import is_control
from loraport.io import atomic_file
from loraport.report.tables import task_order, variant_order

FIGURES = ("cost_quality.png", "gap_vs_n.png", "per_task.png", "k_sweep.png", "cost_curve.png")

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; cursor: pointer; white-space: nowrap; }
th.asc::after { content: " ▲"; } th.desc::after { content: " ▼"; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f4f4f4; padding: 0 3px; }
figure { display: inline-block; margin: .5em 1em .5em 0; } figure img { max-width: 640px; border: 1px solid #ddd; }
details { margin: .4em 0; } summary { cursor: pointer; font-weight: 600; }
pre { white-space: pre-wrap; margin: 0; max-width: 38em; font-size: 12px; }
.ok { color: #11772d; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
"""

# Click a header to sort its table by that column (numbers numerically, the rest as text); click
# again to reverse. The page marks itself ready so a headless browser can tell the script ran.
SCRIPT = r"""
function cellValue(row, i) {
  const text = (row.cells[i] ? row.cells[i].innerText : '').trim();
  const num = parseFloat(text.replace('−', '-').replace('+', ''));
  return isNaN(num) ? text.toLowerCase() : num;
}
function sortTable(table, i, th) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const asc = !th.classList.contains('asc');
  rows.sort((a, b) => {
    const x = cellValue(a, i), y = cellValue(b, i);
    if (typeof x === typeof y) { return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); }
    return (typeof x === 'number' ? -1 : 1) * (asc ? 1 : -1);
  });
  rows.forEach(r => body.appendChild(r));
  table.querySelectorAll('th').forEach(h => h.classList.remove('asc', 'desc'));
  th.classList.add(asc ? 'asc' : 'desc');
}
document.querySelectorAll('table.sortable').forEach(table => {
  table.querySelectorAll('th').forEach((th, i) => th.addEventListener('click', () => sortTable(table, i, th)));
});
document.body.dataset.sortable = 'ready';
// #sort=T,C sorts table T by column C on load and notes the column's new order (a headless check)
const asked = location.hash.match(/^#sort=(\d+),(\d+)$/);
if (asked) {
  const table = document.querySelectorAll('table.sortable')[+asked[1]];
  table.querySelectorAll('th')[+asked[2]].click();
  document.body.dataset.sorted = Array.from(table.tBodies[0].rows).map(r => r.cells[+asked[2]].innerText.trim()).join('|');
}
window.addEventListener('load', () => {
  document.body.dataset.figures = Array.from(document.images).filter(im => im.naturalWidth > 0).length;
});
"""


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def markdown_to_html(md: str) -> str:
    """The subset of Markdown the reports use: headings, pipe tables, bullet lists, paragraphs,
    **bold** and `code`. Tables become sortable HTML tables."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.match(r"^(#{1,4}) (.*)$", line):
            level, text = len(m[1]), m[2]
            out.append(f'<h{level} id="{_slug(text)}">{_inline(text)}</h{level}>')
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            head, rows = _cells(block[0]), [_cells(x) for x in block[2:]]
            out.append('<table class="sortable"><thead><tr>')
            out.append("".join(f"<th>{_inline(c)}</th>" for c in head))
            out.append("</tr></thead><tbody>")
            for r in rows:
                out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>")
            out.append("</tbody></table>")
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("|", "#", "- ")):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def _figures(folder: Path) -> str:
    shown = []
    for name in FIGURES:
        p = folder / name
        if p.is_file():
            data = base64.b64encode(p.read_bytes()).decode()
            shown.append(
                f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
                f"<figcaption>{name}</figcaption></figure>"
            )
    return "\n".join(['<h2 id="figures">Figures</h2>', *shown])


def _verdict(s: dict[str, Any]) -> str:
    if s["correct"]:
        return '<span class="ok">✓ correct</span>'
    return f'<span class="bad">✗ {html.escape(s["status"])}</span>'


def drill_down(records: list[dict[str, Any]], tasks: dict[str, dict[str, Any]], n_anchors: int) -> str:
    """Per task, a table of its sample items: the prompt and reference, then the output and verdict of
    base Y, the oracle, the teacher and every method at N=n_anchors (pool `all`, lowest seed)."""
    out = ['<h2 id="samples">Per-task samples</h2>']
    have = [r for r in records if r.get("samples")]
    if not have:
        out.append("<p>These records keep no sample items (they were written before records kept them).</p>")
        return "\n".join(out)
    out.append(
        "<p>The first items of each held-out task as every condition answered them (primary scorer; methods "
        f"at N={n_anchors}, pool <code>all</code>, lowest seed).</p>"
    )
    for task in task_order(tasks):
        rs = [r for r in have if r["task"] == task]
        conds: dict[str, dict[str, Any]] = {}
        for name in ("base_y", "oracle_y", "teacher"):
            rec = next((r for r in rs if r["condition"] == name), None)
            if rec:
                conds[{"base_y": "base Y", "oracle_y": "oracle", "teacher": "teacher X"}[name]] = rec
        methods = [
            r
            for r in rs
            if r["condition"] == "method"
            and r.get("pool") == "all"
            and r.get("n_anchors") == n_anchors
            and not is_control(r["variant"])
        ]
        for v in variant_order({r["variant"] for r in methods}):
            conds[v] = min((r for r in methods if r["variant"] == v), key=lambda r: r["seed"])
        if not conds:
            continue
        first = next(iter(conds.values()))["samples"]
        flag = "" if tasks[task]["usable"] else " (unusable)"
        out.append(f"<details><summary>{html.escape(task)}{flag}: {len(first)} items</summary>")
        out.append('<table class="sortable"><thead><tr><th>item</th><th>prompt</th><th>reference</th>')
        out.append("".join(f"<th>{html.escape(c)}</th>" for c in conds) + "</tr></thead><tbody>")
        for k, item in enumerate(first):
            row = [
                f"<td>{html.escape(item['id'])}</td>",
                f"<td><pre>{html.escape(item.get('prompt') or '')}</pre></td>",
                f"<td><pre>{html.escape(item.get('answer') or '')}</pre></td>",
            ]
            for rec in conds.values():
                s = next((x for x in rec["samples"] if x["id"] == item["id"]), None)
                if s is None and k < len(rec["samples"]):
                    s = rec["samples"][k]
                row.append(
                    "<td>—</td>"
                    if s is None
                    else f"<td>{_verdict(s)}<pre>{html.escape(s.get('prediction') or '')}</pre></td>"
                )
            out.append("<tr>" + "".join(row) + "</tr>")
        out.append("</tbody></table></details>")
    return "\n".join(out)


def write_html(
    run_dir: Path,
    markdown: str,
    records: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    n_anchors: int,
) -> Path:
    """Write run_dir/report.html: report.md's content as HTML, the figures inline, the per-task
    samples; one file that opens anywhere without network."""
    title = markdown.splitlines()[0].lstrip("# ") if markdown else "loraport report"
    body = markdown_to_html(markdown)
    extra = _figures(run_dir / "figures") + "\n" + drill_down(records, tasks, n_anchors)
    # the figures and samples go before the provenance, which stays last
    marker = '<h2 id="provenance">'
    body = body.replace(marker, extra + "\n" + marker) if marker in body else body + "\n" + extra
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )
    path = run_dir / "report.html"
    with atomic_file(path) as fh:
        fh.write(page)
    return path
