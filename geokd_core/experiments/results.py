"""The runs store (``results/<exp>/runs.jsonl``) and the report built from it.

One JSON line per finished run: the cell's coordinates, spec hash, job id, status, wall time,
the job's summary metrics and its primary (metric, value). The file is append-only, so an
interrupted reproduction loses nothing; the latest line of a spec hash wins. A cell is looked up
by its spec hash, which is how re-running skips what is done (and how the α run of seed 0 serves
as the main run of seed 0).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geokd_core import stats
from geokd_core.experiments.plan import Cell, Method


class RunStore:
    """Append-only JSONL of run records, indexed by spec hash."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._by_hash: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self._by_hash[rec["spec_hash"]] = rec

    def get(self, spec_hash: str) -> dict[str, Any] | None:
        return self._by_hash.get(spec_hash)

    def done(self, spec_hash: str) -> dict[str, Any] | None:
        """The record of a SUCCEEDED run, else None (failed runs are run again)."""
        rec = self._by_hash.get(spec_hash)
        return rec if rec is not None and rec.get("status") == "SUCCEEDED" else None

    def add(self, record: Mapping[str, Any]) -> None:
        rec = dict(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(rec, sort_keys=True, allow_nan=False) + "\n")
            f.flush()
        self._by_hash[rec["spec_hash"]] = rec

    def records(self) -> list[dict[str, Any]]:
        return list(self._by_hash.values())


def make_record(cell: Cell, job: Mapping[str, Any], metric_key: str, wall_s: float | None,
                replaces: str | None = None) -> dict[str, Any]:
    """A run record from the finished job (``JobPublic``) of ``cell``; ``metric_key`` e.g. ``dev/mcc``.

    ``replaces``: the job id of an earlier SUCCEEDED run of the same spec whose outputs were lost.
    """
    summary = {k: v for k, v in (job.get("summary") or {}).items() if isinstance(v, int | float) and math.isfinite(v)}
    rec = {**cell.meta(), "spec_hash": cell.spec_hash, "job_id": str(job.get("id")), "status": job.get("status"),
           "error": job.get("error"), "metric": metric_key.split("/", 1)[-1], "metric_key": metric_key,
           "value": summary.get(metric_key), "metrics": summary, "wall_s": wall_s}
    return rec if replaces is None else {**rec, "replaces": replaces}


# ---- aggregation ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One column of a results table: the runs of ``task`` scored by ``metrics[key]``."""

    label: str
    task: str
    key: str
    scale: float = 1.0  # GLUE fractions are shown ×100


def cell_values(cells: Iterable[Cell], store: RunStore, key: str) -> dict[tuple[str, str, str], dict[int, float]]:
    """(task, setting, method) → {seed: metrics[key]} over the cells that have a SUCCEEDED run."""
    out: dict[tuple[str, str, str], dict[int, float]] = {}
    for c in cells:
        rec = store.done(c.spec_hash)
        v = (rec or {}).get("metrics", {}).get(key) if rec else None
        if isinstance(v, int | float) and math.isfinite(v):
            out.setdefault((c.task, c.setting, c.method), {})[c.seed] = float(v)
    return out


def _values(cells: Sequence[Cell], store: RunStore, col: Column) -> dict[tuple[str, str], dict[int, float]]:
    """(setting, method) → {seed: value} for the column's task and key."""
    got = cell_values([c for c in cells if c.task == col.task], store, col.key)
    return {(s, m): {seed: v * col.scale for seed, v in vals.items()} for (_, s, m), vals in got.items()}


def fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def table(cells: Sequence[Cell], store: RunStore, columns: Sequence[Column], setting: str,
          methods: Sequence[Method], teacher_row: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One setting's table: rows = methods, columns = ``columns``; each entry mean ± std over seeds."""
    rows = []
    vals = {col.label: _values(cells, store, col) for col in columns}
    for m in methods:
        entries = {}
        for col in columns:
            seeds = vals[col.label].get((setting, m.name), {})
            mean, std = stats.mean_std(list(seeds.values()))
            entries[col.label] = {"mean": mean, "std": std, "n": len(seeds), "seeds": seeds}
        rows.append({"method": m.name, "label": m.label, "entries": entries})
    return {"setting": setting, "columns": [c.label for c in columns], "rows": rows, "teacher": dict(teacher_row or {})}


def significance(cells: Sequence[Cell], store: RunStore, columns: Sequence[Column], setting: str,
                 pairs: Sequence[tuple[str, str]], n_boot: int = 10000) -> list[dict[str, Any]]:
    """Paired (by seed) t-tests of each (target, baseline) in ``pairs`` per column."""
    out = []
    for col in columns:
        vals = _values(cells, store, col)
        for target, base in pairs:
            a, b = vals.get((setting, target), {}), vals.get((setting, base), {})
            seeds = sorted(set(a) & set(b))
            if not seeds:
                continue
            x, y = [a[s] for s in seeds], [b[s] for s in seeds]
            t, p, diff = stats.paired_ttest(x, y)
            lo, hi = stats.bootstrap_ci([u - v for u, v in zip(x, y, strict=True)], n=n_boot, seed=0)
            out.append({"setting": setting, "column": col.label, "target": target, "baseline": base,
                        "n": len(seeds), "mean_diff": diff, "t": t, "p": p, "ci95": [lo, hi]})
    return out


def with_holm(tests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``tests`` with ``p_holm``: each p-value Holm-adjusted over every test of the report."""
    adjusted = stats.holm([t["p"] for t in tests])
    return [{**t, "p_holm": p} for t, p in zip(tests, adjusted, strict=True)]


def paired_tests(cells: Sequence[Cell], store: RunStore, columns: Sequence[Column], settings: Sequence[str],
                 pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """A report's tests: ``significance`` for every setting, Holm-adjusted over all of them."""
    return with_holm([x for s in settings for x in significance(cells, store, columns, s, pairs)])


def _num(x: float, spec: str) -> str:
    return "nan" if math.isnan(x) else format(x, spec)


def markdown(title: str, tables: Sequence[Mapping[str, Any]], tests: Sequence[Mapping[str, Any]],
             setting_labels: Mapping[str, str], notes: Sequence[str] = ()) -> str:
    """The report: one table per student setting (paper layout), then one table of the paired tests."""
    lines = [f"# {title}", ""]
    lines += [f"{n}" for n in notes] + ([""] if notes else [])
    for tb in tables:
        cols = tb["columns"]
        lines += [f"### Student `{tb['setting']}`: {setting_labels.get(tb['setting'], tb['setting'])}", "",
                  "| method | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        if tb["teacher"]:
            lines.append("| *teacher* | " + " | ".join(
                fmt(tb["teacher"].get(c, math.nan), math.nan) for c in cols) + " |")
        for row in tb["rows"]:
            cells = [fmt(row["entries"][c]["mean"], row["entries"][c]["std"]) for c in cols]
            lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
        ns = sorted({row["entries"][c]["n"] for row in tb["rows"] for c in cols})
        lines += ["", f"mean ± std over seeds (seeds per cell: {', '.join(map(str, ns))}).", ""]
    if tests:
        m = sum(math.isfinite(s["p"]) for s in tests)
        lines += ["### Paired significance", "",
                  "Same seeds paired; Δ = mean per-seed difference (points), 95 % bootstrap CI of Δ, two-sided "
                  f"paired t-test; Holm p adjusted over the {m} tests of this report (family-wise error): a "
                  "difference is significant at 5 % when Holm p ≤ 0.05.", "",
                  "| student | column | comparison | Δ | 95 % CI | t | p | Holm p | n |",
                  "|---|---|---|---:|---|---:|---:|---:|---:|"]
        for s in tests:
            lo, hi = s["ci95"]
            lines.append(
                f"| {s['setting']} | {s['column']} | {s['target']} − {s['baseline']} | {s['mean_diff']:+.2f} |"
                f" [{_num(lo, '+.2f')}, {_num(hi, '+.2f')}] | {_num(s['t'], '.2f')} | {_num(s['p'], '.3f')} |"
                f" {_num(s.get('p_holm', math.nan), '.3f')} | {s['n']} |")
        lines.append("")
    return "\n".join(lines)


def json_safe(obj: Any) -> Any:
    """NaN/inf → None, recursively (results.json is strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_report(out_dir: Path, md: str, payload: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``results.md`` and ``results.json`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, js_path = out_dir / "results.md", out_dir / "results.json"
    md_path.write_text(md)
    js_path.write_text(json.dumps(json_safe(payload), indent=2, sort_keys=True, allow_nan=False))
    return md_path, js_path
