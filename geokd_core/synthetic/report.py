"""Results of the synthetic experiment: summary statistics, results.json, results.md, the figure.

Pure functions of the run history the runner keeps (and checkpoints), so a resumed job writes
byte-identical tables to an uninterrupted one.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from geokd_core.spec import SyntheticSpec


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _ratio(final: float, init: float) -> float | None:
    return final / init if init > 0 else None


def summarize(history: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per loss, statistics over seeds of the last logged step (and of step 0 for reference)."""
    by_loss: dict[str, list[dict[str, Any]]] = {}
    for rec in history["runs"]:
        if rec["steps"]:
            by_loss.setdefault(rec["loss"], []).append(rec)
    out: dict[str, dict[str, Any]] = {}
    for name, recs in by_loss.items():
        final_loss = [r["loss_values"][-1] for r in recs]
        kept = [float(r["preserved_pairs"][-1]) for r in recs]
        frac = [r["preserved_fraction"][-1] for r in recs]
        ratios = [x for x in (_ratio(r["loss_values"][-1], r["loss_values"][0]) for r in recs) if x is not None]
        out[name] = {
            "seeds": [r["seed"] for r in recs],
            "final_step": recs[0]["steps"][-1],
            "final_loss_mean": _mean_std(final_loss)[0],
            "final_loss_std": _mean_std(final_loss)[1],
            "loss_ratio_mean": statistics.fmean(ratios) if ratios else None,
            "preserved_pairs_mean": _mean_std(kept)[0],
            "preserved_pairs_std": _mean_std(kept)[1],
            "preserved_fraction_mean": _mean_std(frac)[0],
            "preserved_fraction_std": _mean_std(frac)[1],
            "init_fraction_mean": statistics.fmean(r["preserved_fraction"][0] for r in recs),
            "teacher_pairs_mean": statistics.fmean(float(r["teacher_pairs"]) for r in recs),
        }
    return out


def final_metrics(history: dict[str, Any]) -> dict[str, float]:
    """The job summary: ``<loss>/final_loss``, ``<loss>/preserved_pairs``, ``<loss>/preserved_fraction``."""
    metrics: dict[str, float] = {}
    for name, s in summarize(history).items():
        metrics[f"{name}/final_loss"] = s["final_loss_mean"]
        metrics[f"{name}/preserved_pairs"] = s["preserved_pairs_mean"]
        metrics[f"{name}/preserved_fraction"] = s["preserved_fraction_mean"]
    return metrics


def reproduce_command(syn: SyntheticSpec) -> str:
    return (
        f"geokd synthetic --n {syn.n} --d-teacher {syn.d_teacher} --d-student {syn.d_student} "
        f"--eps {syn.eps} --steps {syn.steps} --lr {syn.lr} --log-every {syn.log_every} "
        f"--seeds {','.join(map(str, syn.seeds))} --losses {','.join(syn.losses)}"
    )


def markdown_table(syn: SyntheticSpec, summary: dict[str, dict[str, Any]]) -> str:
    """The results table (one row per loss, mean ± std over seeds)."""
    lines = [
        "| loss | final loss | final / initial loss | ε-orthogonal pairs kept | kept fraction | fraction at init |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        ratio = "n/a" if s["loss_ratio_mean"] is None else f"{s['loss_ratio_mean']:.3g}"
        lines.append(
            f"| {name} | {s['final_loss_mean']:.3g} ± {s['final_loss_std']:.2g} | {ratio} "
            f"| {s['preserved_pairs_mean']:,.0f} ± {s['preserved_pairs_std']:,.0f} "
            f"| {s['preserved_fraction_mean']:.3f} ± {s['preserved_fraction_std']:.3f} "
            f"| {s['init_fraction_mean']:.3f} |"
        )
    return "\n".join(lines)


def results_markdown(syn: SyntheticSpec, history: dict[str, Any]) -> str:
    summary = summarize(history)
    teacher = statistics.fmean(s["teacher_pairs_mean"] for s in summary.values()) if summary else 0.0
    total = syn.n * (syn.n - 1) // 2
    return "\n".join([
        "# Synthetic experiment: ε-orthogonal pairs preserved by each loss",
        "",
        f"Teacher: n = {syn.n} random unit vectors in d_t = {syn.d_teacher} dims; "
        f"{teacher:,.0f} of {total:,} pairs (mean over seeds) are ε-orthogonal (|cos| < {syn.eps}). "
        f"Student: {syn.n} × {syn.d_student} trainable matrix from random unit rows, Adam lr {syn.lr}, "
        f"{syn.steps} steps; seeds {syn.seeds}. A pair is kept when it is ε-orthogonal in the teacher "
        "and in the (centered) student. Mean ± std over seeds at the last step.",
        "",
        markdown_table(syn, summary),
        "",
        f"Reproduce: `{reproduce_command(syn)}`",
        "",
    ])


def plot_preserved(syn: SyntheticSpec, history: dict[str, Any], path: Path) -> None:
    """Kept fraction vs step (left) and loss relative to its initial value (right), per loss."""
    # The object API with an Agg canvas: no pyplot, no global backend switch in library code.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_p, ax_l = fig.subplots(1, 2)
    by_loss: dict[str, list[dict[str, Any]]] = {}
    for rec in history["runs"]:
        by_loss.setdefault(rec["loss"], []).append(rec)
    for name, recs in by_loss.items():
        steps = recs[0]["steps"]
        recs = [r for r in recs if r["steps"] == steps]
        cols = list(zip(*(r["preserved_fraction"] for r in recs), strict=True))
        mean = [sum(c) / len(c) for c in cols]
        (line,) = ax_p.plot(steps, mean, label=name)
        if len(recs) > 1:
            ax_p.fill_between(steps, [min(c) for c in cols], [max(c) for c in cols], color=line.get_color(), alpha=0.2)
        rel = [[v / r["loss_values"][0] for v in r["loss_values"]] for r in recs if r["loss_values"][0] > 0]
        if rel:
            rel_mean = [max(sum(c) / len(c), 1e-8) for c in zip(*rel, strict=True)]
            ax_l.plot(steps, rel_mean, label=name, color=line.get_color())
    ax_p.set(xlabel="step", ylabel="fraction of ε-orthogonal teacher pairs kept",
             title=f"n={syn.n}, d_t={syn.d_teacher}, d_s={syn.d_student}, ε={syn.eps}")
    ax_l.set(xlabel="step", ylabel="loss / initial loss", yscale="log", title="loss (mean over seeds)")
    ax_p.grid(alpha=0.3)
    ax_l.grid(alpha=0.3)
    ax_p.legend()
    fig.savefig(path, dpi=120)


def write_results(out_dir: Path, syn: SyntheticSpec, history: dict[str, Any]) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and ``preserved_pairs.png``; return them by name."""
    paths = {name: out_dir / name for name in ("results.json", "results.md", "preserved_pairs.png")}
    payload = {
        "experiment": "synthetic",
        "config": syn.model_dump(mode="json"),
        "reproduce": reproduce_command(syn),
        "summary": summarize(history),
        "runs": history["runs"],
        "elapsed_s": round(float(history.get("elapsed_s", 0.0)), 2),
    }
    paths["results.json"].write_text(json.dumps(payload, indent=1) + "\n")
    paths["results.md"].write_text(results_markdown(syn, history))
    plot_preserved(syn, history, paths["preserved_pairs.png"])
    return paths
