"""API rows → pandas DataFrames for the dashboard (pure: no streamlit, no HTTP).

Every function takes the JSON the REST API returns (see docs/DESIGN.md) and returns plain
DataFrames or dicts, so the pages stay thin and the shaping is unit-tested on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

# The loss terms of the training objective, in the order the legend should list them.
TRAIN_TERMS: dict[str, str] = {
    "train/loss": "total",
    "train/ce": "CE",
    "train/kd": "KD",
    "train/feature": "feature",
}
_ALIGN_RE = re.compile(r"^align/(?P<pair>[^/]+)/(?P<metric>[^/]+)$")
_SYNTH_RE = re.compile(r"^synthetic/(?P<loss>[^/]+)/seed(?P<seed>\d+)/(?P<metric>[^/]+)$")
# Summary keys worth showing as "the" metric of a job, most informative first.
_KEY_METRIC_HINTS: tuple[str, ...] = ("mcc", "accuracy", "f1", "rougeL", "rouge_l", "pearson", "spearman")

MetricsPayload = dict[str, Any]


# ---- metric series -------------------------------------------------------------------------------
def empty_metrics() -> MetricsPayload:
    """The payload of a job with no metrics yet (same shape as ``GET /jobs/{id}/metrics``)."""
    return {"series": {}, "last_step": None}


def merge_metrics(cache: MetricsPayload | None, update: Mapping[str, Any]) -> MetricsPayload:
    """Merge a ``?since=`` update into the cached series; a re-emitted step overwrites (resumes).

    Args:
        cache: the payload gathered so far (or None).
        update: ``{"series": {name: {"steps": [...], "values": [...]}}, "last_step": N}``.

    Returns:
        A new payload; each series sorted by step with one value per step.
    """
    base = cache or empty_metrics()
    merged: dict[str, dict[str, list]] = {}
    names = set(base["series"]) | set(update.get("series") or {})
    for name in names:
        points: dict[int, float] = {}
        for source in (base["series"].get(name), (update.get("series") or {}).get(name)):
            if source:
                points.update(zip(source["steps"], source["values"], strict=True))
        steps = sorted(points)
        merged[name] = {"steps": steps, "values": [points[s] for s in steps]}
    last = [x for x in (base.get("last_step"), update.get("last_step")) if x is not None]
    return {"series": merged, "last_step": max(last) if last else None}


def metrics_frame(payload: Mapping[str, Any]) -> pd.DataFrame:
    """Long-form frame of every series: columns ``step`` (int), ``series`` (str), ``value`` (float)."""
    parts = [
        pd.DataFrame({"step": s["steps"], "series": name, "value": s["values"]})
        for name, s in (payload.get("series") or {}).items()
        if s["steps"]
    ]
    if not parts:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "series": pd.Series(dtype=str),
                             "value": pd.Series(dtype="float64")})
    frame = pd.concat(parts, ignore_index=True)
    frame["step"] = frame["step"].astype("int64")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame


def train_terms(frame: pd.DataFrame) -> pd.DataFrame:
    """The loss terms only: columns ``step``, ``term`` (total / CE / KD / feature), ``value``."""
    rows = frame[frame["series"].isin(list(TRAIN_TERMS))].copy()
    rows["term"] = pd.Categorical(rows["series"].map(TRAIN_TERMS), categories=list(TRAIN_TERMS.values()))
    rows = rows.sort_values(["term", "step"], kind="stable")
    return rows[["step", "term", "value"]].reset_index(drop=True)


def alignment_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``align/<pair>/<metric>`` series split into columns ``step``, ``pair``, ``metric``, ``value``."""
    parts = frame["series"].str.extract(_ALIGN_RE)
    rows = pd.concat([frame[["step", "value"]], parts], axis=1).dropna(subset=["pair"])
    return rows[["step", "pair", "metric", "value"]].sort_values(["pair", "metric", "step"]).reset_index(
        drop=True
    )


def synthetic_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``synthetic/<loss>/seed<k>/<metric>`` split into ``step``, ``loss``, ``seed``, ``metric``, ``value``.

    The engine runs the (loss, seed) runs one after another on one global step counter, so
    ``run_step`` (steps since that run's first point) puts every run on a common x axis.
    """
    parts = frame["series"].str.extract(_SYNTH_RE)
    rows = pd.concat([frame[["step", "value"]], parts], axis=1).dropna(subset=["loss"])
    rows["seed"] = rows["seed"].astype("int64")
    rows["run_step"] = rows["step"] - rows.groupby(["loss", "seed"])["step"].transform("min")
    return rows[["step", "run_step", "loss", "seed", "metric", "value"]].sort_values(
        ["loss", "seed", "metric", "step"]
    ).reset_index(drop=True)


def stable_order(known: Iterable[Any], current: Iterable[Any]) -> list[Any]:
    """``current`` ordered as first seen: known items first (in their order), new ones appended.

    >>> stable_order(["b", "d"], ["a", "b", "c", "d"])
    ['b', 'd', 'a', 'c']
    """
    now = list(current)
    kept = [x for x in known if x in now]
    return kept + [x for x in now if x not in kept]


def series_frame(payload: Mapping[str, Any], name: str) -> pd.DataFrame:
    """One series as columns ``step``, ``value`` (empty when the job never logged it)."""
    s = (payload.get("series") or {}).get(name) or {"steps": [], "values": []}
    return pd.DataFrame({"step": pd.Series(s["steps"], dtype="int64"),
                         "value": pd.Series(s["values"], dtype="float64")})


# ---- jobs ----------------------------------------------------------------------------------------
def parse_time(value: str | None) -> datetime | None:
    """ISO-8601 from the API → aware datetime (naive strings are UTC, as the API stores them)."""
    if not value:
        return None
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def timing(job: Mapping[str, Any], now: datetime) -> tuple[float | None, float | None]:
    """(elapsed seconds, ETA seconds) of a job; ETA extrapolates the mean step time so far."""
    started = parse_time(job.get("started_at"))
    if started is None:
        return None, None
    end = parse_time(job.get("finished_at")) or now
    elapsed = max((end - started).total_seconds(), 0.0)
    progress = job.get("progress") or {}
    step, total = progress.get("step") or 0, progress.get("total_steps") or 0
    if job.get("status") != "RUNNING" or step <= 0 or total <= 0:
        return elapsed, None
    return elapsed, elapsed * max(total - step, 0) / step


def format_duration(seconds: float | None) -> str:
    """12 → ``12s``; 185 → ``3m 05s``; 3720 → ``1h 02m``; None → ``—``."""
    if seconds is None or seconds != seconds:  # NaN check without numpy
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def key_metric(summary: Mapping[str, Any] | None) -> tuple[str, float] | None:
    """The most informative final metric of a job: an eval score if any, else the last loss."""
    numeric = {k: float(v) for k, v in (summary or {}).items() if isinstance(v, int | float)}
    if not numeric:
        return None
    for hint in _KEY_METRIC_HINTS:
        for k in sorted(numeric):
            if k.split("/")[-1].lower() == hint.lower():
                return k, numeric[k]
    for k in ("train/loss", "loss"):
        if k in numeric:
            return k, numeric[k]
    first = sorted(numeric)[0]
    return first, numeric[first]


def progress_fraction(job: Mapping[str, Any]) -> float:
    """Fraction done in [0, 1]; a succeeded job is 1 even if its last step was not reported."""
    if job.get("status") == "SUCCEEDED":
        return 1.0
    p = job.get("progress") or {}
    step, total = p.get("step") or 0, p.get("total_steps") or 0
    return min(step / total, 1.0) if total > 0 else 0.0


def jobs_frame(items: Iterable[Mapping[str, Any]], now: datetime) -> pd.DataFrame:
    """The Jobs table: one row per job, newest first, with progress, elapsed/ETA and a key metric."""
    rows = []
    for job in items:
        elapsed, eta = timing(job, now)
        metric = key_metric(job.get("summary"))
        rows.append({
            "id": job["id"],
            "name": job.get("name") or "",
            "kind": job.get("kind") or "",
            "status": job.get("status") or "",
            "progress": progress_fraction(job),
            "elapsed": format_duration(elapsed),
            "eta": format_duration(eta),
            "metric": f"{metric[0]} = {metric[1]:.4g}" if metric else "",
            "owner": job.get("owner") or "",
            "attempt": job.get("attempt") or 0,
            "created": parse_time(job.get("created_at")),
        })
    columns = ["id", "name", "kind", "status", "progress", "elapsed", "eta", "metric", "owner", "attempt",
               "created"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


# ---- evals and logs ------------------------------------------------------------------------------
def evals_frame(items: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per eval event: ``step``, ``split``, ``task`` and one column per metric."""
    rows = [
        {"step": e.get("step", 0), "split": e.get("split", ""), "task": e.get("task") or "",
         **{k: v for k, v in (e.get("metrics") or {}).items()}}
        for e in items
    ]
    if not rows:
        return pd.DataFrame(columns=["step", "split", "task"])
    return pd.DataFrame(rows).sort_values(["step", "split", "task"], kind="stable").reset_index(drop=True)


def logs_text(lines: Iterable[Mapping[str, Any]]) -> str:
    """Log lines as ``HH:MM:SS LEVEL message`` text (ts may be epoch seconds or ISO)."""
    out = []
    for line in lines:
        ts = line.get("ts")
        if isinstance(ts, int | float):
            stamp = datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")
        elif isinstance(ts, str) and ts:
            stamp = (parse_time(ts) or datetime.now(UTC)).strftime("%H:%M:%S")
        else:
            stamp = "--:--:--"
        out.append(f"{stamp} {str(line.get('level', 'INFO')):<7} {line.get('message', '')}")
    return "\n".join(out)


# ---- runs for the Compare page -------------------------------------------------------------------
def last_values(payload: Mapping[str, Any]) -> dict[str, float]:
    """The last finite value of every series (the API serves NaN/inf as null)."""
    out = {}
    for name, s in (payload.get("series") or {}).items():
        finite = [v for v in s["values"] if v is not None and math.isfinite(v)]
        if finite:
            out[name] = float(finite[-1])
    return out


def runs_frame(jobs: Iterable[Mapping[str, Any]], finals: Mapping[str, Mapping[str, float]] | None = None
               ) -> pd.DataFrame:
    """One row per run: ``run``, ``job_id``, ``loss``, ``alpha``, ``seed`` and one column per metric.

    A distillation job is one run (loss = ``spec.loss.feature`` or ``kd-only``, its α and train seed).
    A synthetic job holds one run per (loss, seed), with metrics ``synthetic/<metric>``; its α is
    1 (the feature loss alone).
    ``finals`` (job id → last metric values) fills metrics the job summary lacks.

    Args:
        jobs: JobPublic dicts.
        finals: optional last values per job, from ``last_values``.
    """
    rows: list[dict[str, Any]] = []
    for job in jobs:
        values = {**((finals or {}).get(job["id"]) or {}), **(job.get("summary") or {})}
        values = {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
        spec = job.get("spec") or {}
        name = job.get("name") or job["id"][:8]
        if job.get("kind") == "synthetic":
            per_run: dict[tuple[str, int], dict[str, float]] = {}
            for key, v in values.items():
                m = _SYNTH_RE.match(key)
                if m:
                    # "synthetic/<metric>": a bare "loss" would clash with the loss-name column.
                    per_run.setdefault((m["loss"], int(m["seed"])), {})[f"synthetic/{m['metric']}"] = v
            rows.extend(
                {"run": f"{name} · {loss}/seed{seed}", "job_id": job["id"], "loss": loss, "alpha": 1.0,
                 "seed": seed, **metrics}
                for (loss, seed), metrics in sorted(per_run.items())
            )
            continue
        loss_spec = spec.get("loss") or {}
        rows.append({
            "run": name, "job_id": job["id"], "loss": loss_spec.get("feature") or "kd-only",
            "alpha": float(loss_spec.get("alpha", 0.5)), "seed": int((spec.get("train") or {}).get("seed", 0)),
            **values,
        })
    if not rows:
        return pd.DataFrame(columns=["run", "job_id", "loss", "alpha", "seed"])
    return pd.DataFrame(rows)


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The numeric metric columns of a runs frame (everything but the run identity)."""
    fixed = {"run", "job_id", "loss", "alpha", "seed"}
    return sorted(c for c in runs.columns if c not in fixed and pd.api.types.is_numeric_dtype(runs[c]))
