"""Results of the synthetic experiment: summary statistics, results.json, results.md, the figure.

Pure functions of the run history the runner keeps (and checkpoints) and of the rank-d_s
reference (``geokd_core.synthetic.reference``), so a resumed job writes the same tables as an
uninterrupted one.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from geokd_core.spec import SyntheticSpec

Reference = dict[str, dict[str, Any]]  # str(seed) -> rank_floor(...)


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _by_loss(history: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in history["runs"]:
        if rec["steps"]:
            out.setdefault(rec["loss"], []).append(rec)
    return out


def summarize(history: dict[str, Any], reference: Reference | None = None) -> dict[str, dict[str, Any]]:
    """Per loss, statistics over seeds of the last logged step (and of step 0 for reference)."""
    out: dict[str, dict[str, Any]] = {}
    for name, recs in _by_loss(history).items():
        final_loss = _mean_std([r["loss_values"][-1] for r in recs])
        kept = _mean_std([float(r["preserved_pairs"][-1]) for r in recs])
        frac = _mean_std([r["preserved_fraction"][-1] for r in recs])
        ratios = [r["loss_values"][-1] / r["loss_values"][0] for r in recs if r["loss_values"][0] > 0]
        floors = [reference[str(r["seed"])]["floor_loss"][name] for r in recs] if reference else []
        floors = [f for f in floors if f is not None]
        out[name] = {
            "seeds": [r["seed"] for r in recs],
            "final_step": recs[0]["steps"][-1],
            "final_loss_mean": final_loss[0],
            "final_loss_std": final_loss[1],
            "floor_loss_mean": statistics.fmean(floors) if floors else None,
            "loss_ratio_mean": statistics.fmean(ratios) if ratios else None,
            "preserved_pairs_mean": kept[0],
            "preserved_pairs_std": kept[1],
            "preserved_fraction_mean": frac[0],
            "preserved_fraction_std": frac[1],
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


REFERENCE_ROWS = {"pca": "PCA truncation: optimum of procrustes, cka, orthproj",
                  "gram_optimum": "lifted truncation: optimum of gram"}


def _ref_stats(reference: Reference, key: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Mean ± std over seeds of the pairs kept by one optimal student (``pca`` or ``gram_optimum``)."""
    kept = _mean_std([float(r[key]["kept"]) for r in reference.values()])
    frac = _mean_std([r[key]["fraction"] for r in reference.values()])
    return kept, frac


def markdown_table(syn: SyntheticSpec, summary: dict[str, dict[str, Any]], reference: Reference | None) -> str:
    """The results table (one row per loss, mean ± std over seeds; the PCA reference last)."""
    lines = [
        f"| loss | final loss | rank-{syn.d_student} floor | ε-orthogonal pairs kept | kept fraction | at init |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        floor = "n/a" if s["floor_loss_mean"] is None else f"{s['floor_loss_mean']:.3g}"
        lines.append(
            f"| {name} | {s['final_loss_mean']:.3g} ± {s['final_loss_std']:.1g} | {floor} "
            f"| {s['preserved_pairs_mean']:,.0f} ± {s['preserved_pairs_std']:,.0f} "
            f"| {s['preserved_fraction_mean']:.4f} ± {s['preserved_fraction_std']:.4f} "
            f"| {s['init_fraction_mean']:.3f} |"
        )
    for key, label in REFERENCE_ROWS.items() if reference else ():
        (k, ks), (f, fs) = _ref_stats(reference, key)
        lines.append(f"| *reference: {label}* | | | {k:,.0f} ± {ks:,.0f} | {f:.4f} ± {fs:.4f} | |")
    return "\n".join(lines)


def results_markdown(syn: SyntheticSpec, history: dict[str, Any], reference: Reference | None = None) -> str:
    summary = summarize(history, reference)
    teacher = statistics.fmean(s["teacher_pairs_mean"] for s in summary.values()) if summary else 0.0
    total = syn.n * (syn.n - 1) // 2
    return "\n".join([
        "# Synthetic experiment: ε-orthogonal pairs preserved by each loss",
        "",
        f"Teacher: n = {syn.n} random unit vectors in d_t = {syn.d_teacher} dims; "
        f"{teacher:,.0f} of {total:,} pairs (mean over seeds) are ε-orthogonal (|cos| < {syn.eps}). "
        f"Student: {syn.n} × {syn.d_student} trainable matrix from random unit rows, Adam lr {syn.lr}, "
        f"{syn.steps} steps; seeds {syn.seeds}. A pair is kept when it is ε-orthogonal in the teacher "
        "and in the (centered) student. Mean ± std over seeds at the last step. The floor is the "
        f"smallest value the loss can reach with d_s = {syn.d_student} (its value at the "
        "exact rank-d_s minimiser, see `geokd_core/synthetic/reference.py`); the reference rows count the "
        "pairs those optimal students keep.",
        "",
        markdown_table(syn, summary, reference),
        "",
        f"Reproduce: `{reproduce_command(syn)}`",
        "",
    ])


def plot_preserved(syn: SyntheticSpec, history: dict[str, Any], path: Path, reference: Reference | None = None) -> None:
    """Kept fraction vs step (left) and the loss's distance to its floor (right), per loss."""
    # The object API with an Agg canvas: no pyplot, no global backend switch in library code.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_p, ax_l = fig.subplots(1, 2)
    for name, recs in _by_loss(history).items():
        steps = recs[0]["steps"]
        recs = [r for r in recs if r["steps"] == steps]
        cols = list(zip(*(r["preserved_fraction"] for r in recs), strict=True))
        (line,) = ax_p.plot(steps, [sum(c) / len(c) for c in cols], label=name)
        if len(recs) > 1:
            ax_p.fill_between(steps, [min(c) for c in cols], [max(c) for c in cols], color=line.get_color(), alpha=0.2)
        # Excess over the floor, relative to the initial excess: comparable across loss scales.
        floor = [(reference[str(r["seed"])]["floor_loss"][name] if reference else None) or 0.0 for r in recs]
        gaps = [[max((v - f) / max(r["loss_values"][0] - f, 1e-12), 1e-8) for v in r["loss_values"]]
                for r, f in zip(recs, floor, strict=True)]
        ax_l.plot(steps, [sum(c) / len(c) for c in zip(*gaps, strict=True)], label=name, color=line.get_color())
    for (key, label), style in zip(REFERENCE_ROWS.items(), ("--", ":"), strict=True) if reference else ():
        ax_p.axhline(_ref_stats(reference, key)[1][0], color="black", linestyle=style, linewidth=1,
                     label=label.split(":")[0])
    ax_p.set(xlabel="step", ylabel="fraction of ε-orthogonal teacher pairs kept",
             title=f"n={syn.n}, d_t={syn.d_teacher}, d_s={syn.d_student}, ε={syn.eps}")
    ylabel = "(loss − floor) / (initial loss − floor)" if reference else "loss / initial loss"
    ax_l.set(xlabel="step", ylabel=ylabel, yscale="log",
             title=f"excess over the rank-{syn.d_student} floor (mean over seeds)")
    for ax in (ax_p, ax_l):
        ax.grid(alpha=0.3)
    ax_p.legend()
    fig.savefig(path, dpi=120)


def write_results(out_dir: Path, syn: SyntheticSpec, history: dict[str, Any],
                  reference: Reference | None = None) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and ``preserved_pairs.png``; return them by name."""
    paths = {name: out_dir / name for name in ("results.json", "results.md", "preserved_pairs.png")}
    payload = {
        "experiment": "synthetic",
        "config": syn.model_dump(mode="json"),
        "reproduce": reproduce_command(syn),
        "summary": summarize(history, reference),
        "pca_reference": reference,
        "runs": history["runs"],
        "elapsed_s": round(float(history.get("elapsed_s", 0.0)), 2),
    }
    paths["results.json"].write_text(json.dumps(payload, indent=1) + "\n")
    paths["results.md"].write_text(results_markdown(syn, history, reference))
    plot_preserved(syn, history, paths["preserved_pairs.png"], reference)
    return paths
