"""Put known jobs and events into a REAL API through its public routes (submit + worker protocol).

The dashboard tests then read them back through the dashboard, so every number a page shows
can be checked against what was sent here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

SYNTH_LOSSES = ("procrustes", "gram")
SYNTH_SEEDS = (0, 1)
SYNTH_STEPS = 20  # per (loss, seed) run, logged every 5 steps
GRAM_K = 200  # distill probe Gram size: above the 128 display limit, so downsampling is exercised


@dataclass
class Seeded:
    synthetic_id: str
    distill_ids: list[str]
    queued_id: str
    names: dict[str, str] = field(default_factory=dict)


def _gram(k: int, rng: np.random.Generator, noise: float) -> list[list[float]]:
    x = rng.normal(size=(k, 8)) + noise * rng.normal(size=(k, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return (x @ x.T).round(3).tolist()


class Seeder:
    def __init__(self, base_url: str, admin_key: str, worker_token: str) -> None:
        self.http = httpx.Client(base_url=base_url + "/api/v1", timeout=30.0)
        self.user = {"Authorization": f"Bearer {admin_key}"}
        self.worker = {"Authorization": f"Bearer {worker_token}"}

    def submit(self, spec: dict[str, Any]) -> str:
        r = self.http.post("/jobs", json=spec, headers=self.user)
        r.raise_for_status()
        return r.json()["id"]

    def run(self, job_id: str, events: list[dict[str, Any]], summary: dict[str, float]) -> None:
        """Claim, post ``events`` in batches, finish SUCCEEDED (exactly what a worker does)."""
        r = self.http.post(f"/worker/jobs/{job_id}/claim", json={"worker": "seed:1"}, headers=self.worker)
        r.raise_for_status()
        lease = r.json()["lease"]
        # Gram events go one per request: two 200×200 pairs would pass the API's 1 MB body limit.
        small = [e for e in events if e["type"] != "gram"]
        batches = [small[i:i + 200] for i in range(0, len(small), 200)] + [[e] for e in events if e["type"] == "gram"]
        for batch in batches:
            self.http.post(f"/worker/jobs/{job_id}/events", json={"lease": lease, "events": batch},
                           headers=self.worker).raise_for_status()
        self.http.post(f"/worker/jobs/{job_id}/finish", json={"lease": lease, "status": "SUCCEEDED",
                                                                "summary": summary},
                       headers=self.worker).raise_for_status()


def synthetic_value(loss: str, seed: int, step: int) -> float:
    """The loss curve the seeder posts for a synthetic run (decays from 1 + seed/10)."""
    return (1.0 + seed / 10) * math.exp(-step / 10) + (0.1 if loss == "gram" else 0.2)


def distill_spec(name: str, feature: str | None, alpha: float, seed: int) -> dict[str, Any]:
    return {"name": name, "kind": "distill", "teacher": {"model": "prajjwal1/bert-tiny"},
            "student": {"config": {"num_layers": 2, "hidden_size": 64, "num_heads": 2}},
            "data": {"source": "glue", "task": "rte"},
            "loss": {"feature": feature, "alpha": alpha}, "train": {"seed": seed, "max_steps": 30}}


# The final dev MCC the seeder reports per (loss, α, seed): the Compare test recomputes stats from it.
DISTILL_RESULTS: dict[tuple[str, float, int], float] = {
    ("procrustes", 0.5, 0): 0.42, ("procrustes", 0.5, 1): 0.47, ("procrustes", 0.5, 2): 0.44,
    ("cka", 0.5, 0): 0.40, ("cka", 0.5, 1): 0.41, ("cka", 0.5, 2): 0.45,
}


def seed_api(base_url: str, admin_key: str, worker_token: str) -> Seeded:
    s = Seeder(base_url, admin_key, worker_token)
    rng = np.random.default_rng(0)

    syn = s.submit({"name": "demo-synthetic", "kind": "synthetic",
                    "synthetic": {"n": 64, "d_teacher": 16, "d_student": 4, "steps": SYNTH_STEPS,
                                  "losses": list(SYNTH_LOSSES), "seeds": list(SYNTH_SEEDS), "log_every": 5}})
    events: list[dict[str, Any]] = [{"type": "log", "step": 0, "data": {"level": "INFO", "message": "seeded run"}}]
    offset = 0
    for loss in SYNTH_LOSSES:
        for seed in SYNTH_SEEDS:
            for step in range(0, SYNTH_STEPS + 1, 5):
                events.append({"type": "metric", "step": offset + step, "data": {"values": {
                    f"synthetic/{loss}/seed{seed}/loss": synthetic_value(loss, seed, step),
                    f"synthetic/{loss}/seed{seed}/preserved_pairs": 100.0 + step,
                }}})
            for step in (offset, offset + SYNTH_STEPS):
                events.append({"type": "gram", "step": step, "data": {
                    "layer": f"{loss}/seed{seed}", "teacher": _gram(16, rng, 0.0), "student": _gram(16, rng, 0.5)}})
            offset += SYNTH_STEPS + 1
    events.append({"type": "progress", "step": offset, "data": {"step": offset, "total_steps": offset}})
    s.run(syn, events, {f"synthetic/{loss}/seed{seed}/preserved_pairs": 120.0 + seed
                        for loss in SYNTH_LOSSES for seed in SYNTH_SEEDS})

    distill_ids = []
    for (feature, alpha, seed), mcc in DISTILL_RESULTS.items():
        job = s.submit(distill_spec(f"{feature}-a{alpha:g}-s{seed}", feature, alpha, seed))
        events = []
        for step in range(0, 31, 10):
            events.append({"type": "metric", "step": step, "data": {"values": {
                "train/loss": 2.0 / (1 + step), "train/ce": 1.0 / (1 + step), "train/kd": 0.6 / (1 + step),
                "train/feature": 0.4 / (1 + step), "align/s1-t2/cka": 0.5 + step / 100,
                "align/s1-t2/procrustes": 1.0 - step / 100, "align/s2-t4/cka": 0.4 + step / 100,
                "align/s2-t4/procrustes": 1.1 - step / 100,
            }}})
        for step in (10, 30):
            events.append({"type": "gram", "step": step, "data": {"layer": "s1-t2", "teacher": _gram(GRAM_K, rng, 0),
                                                                  "student": _gram(GRAM_K, rng, 0.3)}})
        events.append({"type": "layer_similarity", "step": 30, "data": {
            "metric": "cka", "teacher_layers": [1, 2], "student_layers": [1, 2],
            "matrix": [[0.9, 0.5], [0.4, 0.8]]}})
        events.append({"type": "eval", "step": 30, "data": {"split": "dev", "task": "rte", "metrics": {"mcc": mcc}}})
        events.append({"type": "progress", "step": 30, "data": {"step": 30, "total_steps": 30}})
        s.run(job, events, {"eval/mcc": mcc, "train/loss": 2.0 / 31})
        distill_ids.append(job)

    queued = s.submit(distill_spec("waiting-job", "procrustes", 0.2, 0))
    return Seeded(syn, distill_ids, queued)
