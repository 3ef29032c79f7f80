"""How far two scorers (or a scorer and a model judge) agree on the same items, and how much a
headline accuracy moves if the other one is used.

    from loraport.scorers.agreement import Scores, agreement, agreement_by, headline_shifts
    a = Scores.of(result, "numeric_strict")          # an EvalResult, its records, or a bench record
    b = Scores.of(result, "judge:smollm2-135m-instruct")
    agreement(a, b).line()
    # numeric_strict vs judge:…: n=100 agree 0.850 κ 0.700 PABAK 0.700 AC1 0.701 McNemar 10/5 p=0.302 ...
    table = agreement_by(records, "numeric_strict", "judge:…", by="condition")  # bench records
    headline_shifts(table, contrasts=[("procedure", "plain")])

The 2×2 table counts items by (A correct?, B correct?); an `invalid` verdict (no parseable answer,
or a judge's verdict that is neither yes nor no) counts as not correct, as it does in the headline
accuracy, and each side's invalid count is reported next to the table. Reported:

- observed agreement p_o and Cohen's κ = (p_o − p_e)/(1 − p_e), p_e from each side's marginals
  (statsmodels); κ is None when p_e = 1 (both sides give one constant verdict: undefined);
- PABAK = 2·p_o − 1 and Gwet's AC1 = (p_o − p_e′)/(1 − p_e′), p_e′ = 2π(1 − π), π the mean of
  the two "correct" rates: unlike κ they stay high when nearly every item is correct or wrong and
  the sides agree (the "kappa paradox");
- McNemar's test on the discordant counts (A-only, B-only): the exact binomial test (statsmodels),
  valid at any count, p = 1 when there is no discordant item; a small p says one side is
  systematically more lenient, not merely noisy;
- the shift acc_B − acc_A: how far an accuracy moves when B replaces A;
- compliance: of the items A marks invalid, the share B marks correct (A an extractor, B a judge:
  answers the extractor could not read but the judge accepts, the format bias of seed 004).

Numbers only; no model, no torch (the report reads these from stored records).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from loraport.errors import TaskError


@dataclass(frozen=True)
class Scores:
    """One scorer's verdicts on a set of items, by item id."""

    scorer: str
    correct: dict[str, bool]
    invalid: dict[str, bool]

    @classmethod
    def of(cls, source: Any, scorer: str) -> Scores:
        """The verdicts of `scorer` in `source`: a bench record (a dict with "scorers", as
        bench.runner writes it), an EvalResult, or a sequence of evaluate Records."""
        if isinstance(source, Mapping):
            return cls._of_record(source, scorer)
        rows = getattr(source, "records", source)
        picked = [r for r in rows if r.scorer == scorer]
        if not picked:
            have = sorted({r.scorer for r in rows})
            raise TaskError(f"no verdicts of scorer {scorer!r} (scored: {', '.join(have) or 'none'})")
        return cls._build(scorer, [(r.id, bool(r.correct), r.status == "invalid") for r in picked])

    @classmethod
    def _of_record(cls, record: Mapping[str, Any], scorer: str) -> Scores:
        name = record.get("name", "record")
        if "scorers" not in record:
            why = record.get("missing", "no scorers")
            raise TaskError(f"record {name!r} has no verdicts ({why})")
        if scorer not in record["scorers"]:
            have = ", ".join(sorted(record["scorers"]))
            raise TaskError(f"record {name!r} has no verdicts of scorer {scorer!r} (scored: {have})")
        col = record["scorers"][scorer]
        invalid = col.get("invalid") or [0] * len(col["ids"])
        rows = zip(col["ids"], col["correct"], invalid, strict=True)
        return cls._build(scorer, [(i, bool(c), bool(v)) for i, c, v in rows])

    @classmethod
    def _build(cls, scorer: str, rows: Sequence[tuple[str, bool, bool]]) -> Scores:
        correct = {i: c for i, c, _ in rows}
        if len(correct) < len(rows):
            seen: set[str] = set()
            dup = next(i for i, _, _ in rows if i in seen or seen.add(i))
            raise TaskError(f"scorer {scorer!r} scored item {dup!r} more than once")
        return cls(scorer, correct, {i: v for i, _, v in rows})

    def prefixed(self, prefix: str) -> Scores:
        """The same verdicts with ids `prefix/id` (to pool several records without clashes)."""
        return Scores(
            self.scorer,
            {f"{prefix}/{i}": c for i, c in self.correct.items()},
            {f"{prefix}/{i}": v for i, v in self.invalid.items()},
        )

    def merged(self, other: Scores) -> Scores:
        return Scores(self.scorer, {**self.correct, **other.correct}, {**self.invalid, **other.invalid})


@dataclass(frozen=True)
class Agreement:
    """Two scorers on the same n items. Table: rows A correct / wrong, columns B correct / wrong."""

    a: str
    b: str
    n: int
    both: int  # A correct, B correct
    a_only: int  # A correct, B wrong
    b_only: int  # A wrong, B correct
    neither: int
    invalid_a: int
    invalid_b: int
    observed: float
    kappa: float | None
    pabak: float
    ac1: float | None
    mcnemar_p: float
    acc_a: float
    acc_b: float
    shift: float  # acc_b − acc_a
    compliance: float | None  # of A's invalid items, the share B marks correct (None: none invalid)
    compliance_n: int  # A's invalid items

    @property
    def table(self) -> list[list[int]]:
        return [[self.both, self.a_only], [self.b_only, self.neither]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for logs and reports."""

        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        comp = f"; compliance {f(self.compliance)} of {self.compliance_n} invalid" if self.invalid_a else ""
        return (
            f"{self.a} vs {self.b}: n={self.n} agree {self.observed:.3f} κ {f(self.kappa)} "
            f"PABAK {self.pabak:.3f} AC1 {f(self.ac1)} McNemar {self.a_only}/{self.b_only} "
            f"p={self.mcnemar_p:.3g}; acc {self.acc_a:.3f} → {self.acc_b:.3f} ({self.shift:+.3f}); "
            f"invalid {self.invalid_a}/{self.invalid_b}{comp}"
        )


def table_stats(both: int, a_only: int, b_only: int, neither: int) -> dict[str, float | None]:
    """observed, kappa, pabak, ac1 and mcnemar_p of a 2×2 table of counts (see the module docstring)."""
    import numpy as np
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.inter_rater import cohens_kappa

    n = both + a_only + b_only + neither
    if n == 0:
        raise TaskError("agreement needs at least one item")
    observed = (both + neither) / n
    pa, pb = (both + a_only) / n, (both + b_only) / n  # each side's rate of "correct"
    p_e = pa * pb + (1 - pa) * (1 - pb)
    table = np.array([[both, a_only], [b_only, neither]], dtype=float)
    # p_e == 1: both sides constant and equal, κ = 0/0; statsmodels would return nan with warnings
    kappa = None if p_e >= 1 - 1e-12 else float(cohens_kappa(table, return_results=False))
    pi = (pa + pb) / 2
    p_e1 = 2 * pi * (1 - pi)  # ≤ 0.5, so AC1 is always defined
    ac1 = (observed - p_e1) / (1 - p_e1)
    mcnemar_p = 1.0 if a_only + b_only == 0 else float(mcnemar(table, exact=True).pvalue)
    return {
        "observed": observed,
        "kappa": kappa,
        "pabak": 2 * observed - 1,
        "ac1": ac1,
        "mcnemar_p": min(1.0, mcnemar_p),
    }


def check_same_items(a: Scores, b: Scores) -> None:
    """A one-line TaskError unless `a` and `b` scored exactly the same item ids."""
    only_a, only_b = set(a.correct) - set(b.correct), set(b.correct) - set(a.correct)
    if only_a or only_b:
        parts = [
            f"{len(ids)} only under {s!r} (e.g. {min(ids)!r})"
            for s, ids in ((a.scorer, only_a), (b.scorer, only_b))
            if ids
        ]
        raise TaskError(
            f"scorers {a.scorer!r} and {b.scorer!r} did not score the same items: {'; '.join(parts)}"
        )


def agreement(a: Scores, b: Scores) -> Agreement:
    """The agreement of `a` and `b`, which must have scored the same items."""
    check_same_items(a, b)
    ids = sorted(a.correct)
    cells = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    for i in ids:
        cells[(a.correct[i], b.correct[i])] += 1
    both, a_only, b_only, neither = (cells[k] for k in cells)
    n = len(ids)
    bad = [i for i in ids if a.invalid[i]]
    return Agreement(
        a=a.scorer,
        b=b.scorer,
        n=n,
        both=both,
        a_only=a_only,
        b_only=b_only,
        neither=neither,
        invalid_a=len(bad),
        invalid_b=sum(b.invalid[i] for i in ids),
        **table_stats(both, a_only, b_only, neither),  # type: ignore[arg-type]
        acc_a=(both + a_only) / n,
        acc_b=(both + b_only) / n,
        shift=(b_only - a_only) / n,
        compliance=sum(b.correct[i] for i in bad) / len(bad) if bad else None,
        compliance_n=len(bad),
    )


def agreement_by(
    sources: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    a: str,
    b: str,
    *,
    by: str | Callable[[Mapping[str, Any]], str] = "name",
) -> dict[str, Agreement]:
    """Agreement of scorers `a` and `b` per condition, in first-seen order.

    `sources` is either a mapping condition -> source (anything `Scores.of` reads: an EvalResult,
    its records, a bench record), or a list of bench records grouped by the record field `by` (or
    `by(record)`): "name" gives one table per cell, "condition" pools a condition's cells across
    tasks (items keyed by record name and id, so they never clash). Records a study could not
    compute (they carry "missing") are left out; a record that lacks either scorer is an error."""
    pooled: dict[str, tuple[Scores, Scores]] = {}
    if isinstance(sources, Mapping):
        for group, src in sources.items():
            pooled[str(group)] = (Scores.of(src, a), Scores.of(src, b))
    else:
        for record in sources:
            if "missing" in record:
                continue
            group = by(record) if callable(by) else str(record.get(by, "?"))
            name = str(record.get("name", group))
            sa, sb = Scores.of(record, a).prefixed(name), Scores.of(record, b).prefixed(name)
            if group in pooled:
                sa, sb = pooled[group][0].merged(sa), pooled[group][1].merged(sb)
            pooled[group] = (sa, sb)
    if not pooled:
        raise TaskError(f"no computed records to compare {a!r} and {b!r} on")
    return {group: agreement(sa, sb) for group, (sa, sb) in pooled.items()}


def headline_shifts(
    table: Mapping[str, Agreement], contrasts: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """How the headline numbers move when scorer B replaces scorer A.

    Per condition: acc under A, under B, and the shift. Per contrast (x, y): the difference
    acc(x) − acc(y) under A and under B, and its shift. `max_abs_shift` is the largest |shift| over
    the contrasts when there are any (a study's headline is its differences), else over the
    conditions."""
    unknown = [c for pair in contrasts for c in pair if c not in table]
    if unknown:
        raise TaskError(f"contrast names unknown condition {unknown[0]!r} (have: {', '.join(table)})")
    conditions = [
        {"condition": c, "acc_a": ag.acc_a, "acc_b": ag.acc_b, "shift": ag.shift} for c, ag in table.items()
    ]
    rows = []
    for x, y in contrasts:
        delta_a = table[x].acc_a - table[y].acc_a
        delta_b = table[x].acc_b - table[y].acc_b
        rows.append(
            {"contrast": f"{x} − {y}", "delta_a": delta_a, "delta_b": delta_b, "shift": delta_b - delta_a}
        )
    pool = rows or conditions
    return {
        "conditions": conditions,
        "contrasts": rows,
        "max_abs_shift": max(abs(r["shift"]) for r in pool),
    }
