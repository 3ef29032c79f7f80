"""docs/results.md, generated from every committed `results/*/summary.json` (never edited by hand,
so its numbers cannot drift from the records they were computed from).

    python -m loraport.report.results              # rewrite docs/results.md
    python -m loraport.report.results --check      # exit 1 if docs/results.md is out of date

A study's folder under results/ holds what `loraport bench` wrote (run.json, records/,
summary.json, report.md, figures/); `loraport report results/<study>` rebuilds its summary and
report from the records. Adding a folder adds a section here. Imports no torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loraport.bench.metrics import floors_at_chance
from loraport.report.headline import best_minus_mean_points

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "results"
OUT = ROOT / "docs" / "results.md"


def _f(x: float | None, digits: int = 3, sign: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _pm(gap: float | None, std: float | None) -> str:
    return f"{_f(gap)} ± {'n/a' if std is None else f'{std:.3f}'}"


def _wall(meta: dict[str, Any]) -> str:
    """The run's wall time: the one invocation's, or the sum over a resumed run's invocations
    (run.json's `runs`), with the computing ones counted."""
    runs = meta.get("runs") or []
    if len(runs) <= 1:
        text = f"{meta.get('seconds')} s wall"
    else:
        computing = [r for r in runs if any((r.get("computed") or {}).values())]
        text = (
            f"{meta.get('seconds_total')} s wall over {len(runs)} invocations, "
            f"{len(computing)} of which computed cells"
        )
    return text + _from_cache(meta, runs)


def _from_cache(meta: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """How many of the plan's cells the recorded invocations did not compute: an invocation that
    is interrupted writes no run.json entry, and a shared cache holds other studies' cells, so the
    recorded wall time covers only the rest."""
    total = sum((meta.get("cells") or {}).values())
    entries = runs or [meta]
    computed = sum(sum((r.get("computed") or {}).values()) for r in entries)
    if not total or computed >= total:
        return ""
    return (
        f", computing {computed} of its {total} cells; the other {total - computed} were already in "
        "its cache (from interrupted invocations, which run.json does not record, or from other studies), "
        "their times in the records"
    )


def _ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"{ci[0]:.3f} … {ci[1]:.3f}"


def load_summaries(results_dir: Path = RESULTS) -> list[tuple[str, dict[str, Any]]]:
    """(folder name, summary) for every results/<folder>/summary.json, sorted by folder."""
    return [
        (p.parent.name, json.loads(p.read_text())) for p in sorted(Path(results_dir).glob("*/summary.json"))
    ]


def kind_of(summary: dict[str, Any]) -> str:
    """The study kind a summary.json was written by (a port study's carries no `kind`)."""
    return summary.get("kind", "port")


def kind_section(results_dir: Path, folder: str, summary: dict[str, Any]) -> list[str]:
    """The docs/results.md section of a study of another kind than `port`: its kind's `results`
    (from run.json and summary.json), or its `findings` lines under a heading."""
    from loraport.bench.kinds import STUDY_KINDS

    run = Path(results_dir) / folder / "run.json"
    meta = json.loads(run.read_text()) if run.is_file() else {"study": {"name": summary.get("study", folder)}}
    kind = STUDY_KINDS.get(kind_of(summary))
    if kind.results is not None:
        return [*kind.results(folder, meta, summary), ""]
    lines = summary.get("findings") or ["(no findings recorded)"]
    return [f"## {folder}", "", *[f"- {line}" for line in lines], ""]


def provenance_line(folder: str, meta: dict[str, Any]) -> str:
    """Where and how long a study ran, and where its records are, from its run.json."""
    return (
        f"Run on {meta.get('device') or 'cpu'} (torch {meta.get('torch')}, {_wall(meta)}). "
        f"Records, report and figures: [`results/{folder}/`](../results/{folder}/report.md)."
    )


def top_n(summary: dict[str, Any]) -> int | None:
    """The largest N of the study (the N its headline and tables use)."""
    ns = summary["provenance"]["study"].get("n_anchors") or []
    return max(ns) if ns else None


def headline(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The reference headline (report.headline) at the study's largest N, pool `all`; a summary
    written by a newer report carries it, an older one is computed here the same way."""
    if "best_minus_mean_points" in summary:
        return summary["best_minus_mean_points"]
    n = top_n(summary)
    return None if n is None else best_minus_mean_points(summary["per_task_method"], summary["tasks"], n)


def _task_order(tasks: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(tasks, key=lambda t: (tasks[t]["domain"], t))


def _overview(studies: list[tuple[str, dict[str, Any]]]) -> list[str]:
    L = [
        "| study | source → target | device | usable held-out tasks | items per task | seeds | best method (N) "
        "| gap_recovered | best learned − mean (acc. points) | teacher ceiling |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for folder, s in studies:
        st = s["provenance"]["study"]
        best = s.get("best")
        h = headline(s)
        ceiling = s.get("teacher_ceiling")
        L.append(
            f"| [{st['name']}](#{folder}) | {st['source']} → {st['target']} | "
            f"{s['provenance'].get('device') or 'cpu'} | {len(s['usable_tasks'])} of {len(s['tasks'])} | "
            f"{st['eval']['n']} | {len(st['seeds'])} | "
            + (f"{best['variant']} ({best['n_anchors']})" if best else "—")
            + f" | {_pm(best['gap_recovered'], best['std']) if best else '—'} | "
            f"{_f(h['points'], 1, sign=True) if h else '—'} | "
            f"{_f(ceiling['gap_recovered']) if ceiling else '—'} |"
        )
    return L


def _study_section(folder: str, s: dict[str, Any]) -> list[str]:
    st = s["provenance"]["study"]
    prov = s["provenance"]
    n = top_n(s)
    tasks = s["tasks"]
    usable = s["usable_tasks"]
    L = [
        f"## {folder}",
        "",
        f"Study `{st['name']}`: {st['source']} (X) → {st['target']} (Y); "
        f"{len(st['anchors'])} anchor tasks, held out {', '.join(st['heldout'])}; "
        f"N ∈ {{{', '.join(map(str, st['n_anchors']))}}}, seeds {st['seeds']}, {st['eval']['n']} eval items "
        f"per task, usable when oracle − base ≥ {100 * st['usable_threshold']:g} points"
        + (
            " (base Y counted as at least chance on choice tasks: `base_reference: chance`). "
            if floors_at_chance(st)
            else ". "
        )
        + provenance_line(folder, prov),
        "",
    ]
    best = s.get("best")
    h = headline(s)
    if best:
        L.append(
            f"- Best method: **{best['variant']}** at N={best['n_anchors']} recovers "
            f"**{_pm(best['gap_recovered'], best['std'])}** of the oracle's gain (gap_recovered; mean ± std "
            f"over seeds; 95% CI {_ci(best['ci95'])}) over {len(usable)} usable held-out tasks."
        )
    if h:
        L.append(
            f"- Best learned method minus the mean baseline: **{h['points']:+.1f} accuracy points** (per task, "
            f"the best learned method's accuracy minus mean's, averaged over {', '.join(h['tasks'])}; "
            f"N={h['n_anchors']}, seeds {h['seeds']})."
        )
    if s.get("best_learned_minus_mean") is not None:
        L.append(
            f"- Best learned method's aggregate gap_recovered minus mean's: "
            f"{s['best_learned_minus_mean']:+.3f} (fraction of the oracle's gain)."
        )
    ceiling = s.get("teacher_ceiling")
    if ceiling:
        L.append(
            f"- Teacher ceiling (X + X adapter's own accuracy, as gap_recovered): {ceiling['gap_recovered']:.3f}."
        )
    curve = [p for p in s.get("oracle_curve") or [] if p["gap_recovered"] is not None]
    if curve:
        L.append(
            "- The oracle itself, trained on labels, after "
            + ", ".join(f"{p['relative_steps']:.0%} of its steps: {p['gap_recovered']:.3f}" for p in curve)
            + " (gap_recovered; the reference for the cost curve)."
        )
    L += ["", "Held-out tasks (accuracy with each task's primary scorer):", ""]
    L += [
        "| domain | task | base Y | Y oracle | oracle − base (points) | teacher X | usable | best method at N="
        + str(n)
        + " (accuracy, gap_recovered) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in _task_order(tasks):
        row = tasks[t]
        cells = {
            k: v
            for k, v in s["per_task_method"].get(t, {}).items()
            if k.endswith(f"|all|N{n}") and ":" not in k.split("|")[0]
        }
        if cells:
            k, v = max(cells.items(), key=lambda kv: kv[1]["gap_recovered"])
            winner = f"{k.split('|')[0]} ({v['acc']:.3f}, {v['gap_recovered']:+.2f})"
        else:
            winner = "—"
        gap = row["oracle_minus_base"]
        L.append(
            f"| {row['domain']} | {t} | {_f(row['base_y'])} | {_f(row['oracle_y'])} | "
            f"{'—' if gap is None else f'{100 * gap:+.1f}'} | {_f(row['teacher'])} | "
            f"{'yes' if row['usable'] else 'no: ' + row['why_unusable']} | {winner} |"
        )
    rows = [r for r in s["aggregates"] if r["pool"] == "all" and r["n_anchors"] == n]
    if rows:
        cost = {(c["variant"], c["pool"], c["n_anchors"]): c for c in s.get("costs", {}).get("methods", [])}
        L += [
            "",
            f"Methods at N={n}, pool `all` (aggregate gap_recovered: per seed the mean over the usable tasks, "
            f"then mean ± std over seeds; cost per port relative to training the oracle):",
            "",
            "| method | data it saw | gap_recovered | 95% CI | × oracle time | steps |",
            "|---|---|---|---|---|---|",
        ]
        for r in sorted(
            rows, key=lambda r: (r["method"] != "mean", -(r["gap_recovered"] or -9), r["variant"])
        ):
            c = cost.get((r["variant"], "all", n))
            L.append(
                f"| {r['variant']} | {', '.join(c['data']) if c else '—'} | {_pm(r['gap_recovered'], r['std'])} | "
                f"{_ci(r['ci95'])} | {_f(c and c['relative_seconds'], 2)} | "
                f"{'—' if not c else round(c['steps'])} |"
            )
    controls = [c for c in s.get("controls", []) if c["pool"] == "all"]
    if controls:
        losers = sorted({f"{c['of']} ({c['control']})" for c in controls if not c["beats_control"]})
        L += [
            "",
            f"Controls ({len(controls)} method × control pairs): "
            + (
                "every method beats its controls."
                if not losers
                else f"every method beats its controls except {', '.join(losers)}."
            ),
        ]
    return [*L, ""]


def render_results(results_dir: Path = RESULTS) -> str:
    """The text of docs/results.md for the summaries under results_dir."""
    every = load_summaries(results_dir)
    studies = [(f, s) for f, s in every if kind_of(s) == "port"]
    L = [
        "# Results",
        "",
        "<!-- Generated by `python -m loraport.report.results` from results/*/summary.json. Do not edit. -->",
        "",
        "Every number on this page comes from a study's `summary.json` under `results/`, which "
        "`loraport report results/<study>` rebuilds from the study's stored records. "
        "gap_recovered = (accuracy of Y + port − accuracy of Y) / (accuracy of Y + oracle − accuracy of Y), "
        "where the oracle is a LoRA trained on Y with labels; only usable tasks (oracle − base at or above "
        "the study's threshold) enter the aggregates.",
        "",
        "## Overview",
        "",
        *_overview(studies),
        "",
    ]
    for folder, s in studies:
        L += _study_section(folder, s)
    others = [(f, s) for f, s in every if kind_of(s) != "port"]
    if others:
        L += [
            "# Other study kinds",
            "",
            "Studies that ask another question than how much of an adapter's gain a port recovers; each "
            "section is written by its kind from the study's run.json and summary.json.",
            "",
        ]
    for folder, s in others:
        L += kind_section(results_dir, folder, s)
    return "\n".join(L).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loraport.report.results", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--results", type=Path, default=RESULTS, help="folder of study folders (default: results/)"
    )
    ap.add_argument("--out", type=Path, default=OUT, help="the page to write (default: docs/results.md)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out is out of date")
    args = ap.parse_args(argv)
    text = render_results(args.results)
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python -m loraport.report.results", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} from {len(load_summaries(args.results))} summaries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
