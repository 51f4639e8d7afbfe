"""Procrustes / Gram against CKA / KD only with the *teacher* as the replicate.

Each ``results.json`` given is one ``geokd reproduce glue`` report of the same plan under another
teacher fine-tune seed. Within a report, seeds are paired (same data order, same initialisation);
across reports the unit is the teacher: the test here is a paired t-test over the teachers' mean
scores (n = number of reports), Holm-adjusted over the comparisons printed, which is what "does
the lead survive another teacher" asks.

    python results/glue-cpu-teacher-seed/across_teachers.py --task stsb --setting L3-init \\
        results/glue-cpu-init/results.json results/glue-cpu-teacher-seed/results.json \\
        results/glue-cpu-teacher-seed-2/results.json results/glue-cpu-teacher-seed-3/results.json \\
        results/glue-cpu-teacher-seed-4/results.json
    python results/glue-cpu-teacher-seed/across_teachers.py --setting L3-H192 results/glue-cpu-narrow/results.json \
        results/glue-cpu-narrow-teacher-seed-3/results.json results/glue-cpu-narrow-teacher-seed-4/results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geokd_core.experiments.glue import BASELINES, METHOD_BY_NAME, TARGETS, TASK_LABEL
from geokd_core.stats import holm, mean_std, paired_ttest


def teacher_scores(path: Path, task: str, setting: str) -> tuple[int, float, dict[str, dict[int, float]]]:
    """(teacher seed, teacher dev score, {method: {seed: dev score}}) of one report's table, scores ×100."""
    report = json.loads(path.read_text())
    teacher_seed = next(r["seed"] for r in report["runs"] if r["task"] == task and r["phase"] == "teacher")
    table = next(t for t in report["tables"] if t["setting"] == setting)
    column = next(c for c in table["columns"] if c.startswith(f"{TASK_LABEL[task]} "))
    scores = {row["method"]: {int(k): v for k, v in row["entries"][column]["seeds"].items()}
              for row in table["rows"] if column in row["entries"]}
    return teacher_seed, table["teacher"][column], scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="results.json, one per teacher seed")
    parser.add_argument("--task", default="stsb")
    parser.add_argument("--setting", default="L3-init")
    args = parser.parse_args()
    teachers = [teacher_scores(p, args.task, args.setting) for p in args.reports]
    methods = [m for m in METHOD_BY_NAME if all(m in s for _, _, s in teachers)]

    # (mean, std) over seeds of each method, per teacher: the table's cells and the test's samples.
    stats = [{m: mean_std(list(by_method[m].values())) for m in methods} for _, _, by_method in teachers]

    print("| teacher seed | teacher | " + " | ".join(METHOD_BY_NAME[m].label for m in methods) + " |")
    print("|---|---:|" + "---:|" * len(methods))
    for (seed, score, by_method), st in zip(teachers, stats, strict=True):
        cells = [f"{st[m][0]:.1f} ± {st[m][1]:.1f} (n={len(by_method[m])})" for m in methods]
        print(f"| {seed} | {score:.1f} | " + " | ".join(cells) + " |")

    rows = []
    for target in TARGETS:
        for baseline in BASELINES:
            if target not in methods or baseline not in methods:
                continue
            per_teacher = [st[target][0] for st in stats]
            base = [st[baseline][0] for st in stats]
            _, p, diff = paired_ttest(per_teacher, base)
            pairs = [(s[target][k], s[baseline][k]) for _, _, s in teachers for k in s[target] if k in s[baseline]]
            deltas = ", ".join(f"{a - b:+.2f}" for a, b in zip(per_teacher, base, strict=True))
            rows.append((f"{METHOD_BY_NAME[target].label} − {METHOD_BY_NAME[baseline].label}", deltas, diff, p,
                         f"{sum(a > b for a, b in pairs)}/{len(pairs)}"))
    print("\n| comparison | Δ per teacher | mean Δ over teachers | p (paired over teachers) | Holm p | seeds ahead |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, deltas, diff, p, ahead), p_holm in zip(rows, holm([r[3] for r in rows]), strict=True):
        print(f"| {name} | {deltas} | {diff:+.2f} | {p:.3f} | {p_holm:.3f} | {ahead} |")


if __name__ == "__main__":
    main()
