"""The Submit form's logic (pure: no streamlit, no HTTP).

Form widgets are keyed by the dotted spec path they fill (``loss.alpha``), so a validation error
whose ``loc`` is ``["body", "loss", "alpha"]`` lands under the widget that made it. Keys starting
with ``ui.`` are form-only choices (which student source, which seeds).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

ALPHA_GRID: tuple[float, ...] = tuple(round(0.2 * i, 1) for i in range(6))  # 0, 0.2, …, 1 (the paper's)
NO_FEATURE = "none (KD only)"

# The demo: the paper's synthetic experiment at a size a laptop CPU finishes in seconds.
DEFAULTS: dict[str, Any] = {
    "name": "demo-synthetic",
    "kind": "synthetic",
    "teacher.model": "",
    "ui.student_source": "config",
    "student.model": "",
    "student.config.num_layers": 3,
    "student.config.hidden_size": 384,
    "student.config.num_heads": 12,
    "student.init_from_teacher.layers": "0, 2, 4",
    "data.source": "glue",
    "data.task": "rte",
    "data.path": "",
    "data.max_train_examples": 0,
    "loss.feature": "procrustes",
    "loss.alpha": 0.5,
    "loss.gamma": 1.0,
    "loss.kd_kind": "forward_kl",
    "loss.temperature": 2.0,
    "loss.layer_map": "uniform",
    "loss.pairs": "",
    "train.epochs": 3.0,
    "train.max_steps": 0,
    "train.batch_size": 32,
    "train.lr": 5e-5,
    "train.gram_every": 50,
    "ui.seeds": "0",
    "synthetic.n": 256,
    "synthetic.d_teacher": 64,
    "synthetic.d_student": 16,
    "synthetic.eps": 0.1,
    "synthetic.steps": 200,
    "synthetic.losses": ["procrustes", "gram", "cka"],
    "synthetic.seeds": "0, 1",
}


def parse_int_list(text: str) -> list[int]:
    """``"0, 1,2"`` → ``[0, 1, 2]``; raises ValueError naming the bad item."""
    out = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(int(item))
        except ValueError:
            raise ValueError(f"{item!r} is not an integer") from None
    return out


def parse_pairs(text: str) -> list[list[int]]:
    """``"1:2, 2:4"`` → ``[[1, 2], [2, 4]]`` (student layer : teacher layer)."""
    pairs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            s, t = (int(x) for x in item.split(":"))
        except ValueError:
            raise ValueError(f"{item!r} is not `student:teacher`") from None
        pairs.append([s, t])
    return pairs


def build_spec(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]], list[int]]:
    """Form values → (spec dict, local parse errors by path, seeds).

    Only the sections the chosen ``kind`` uses are written, so the YAML view stays short.
    For non-synthetic kinds the seeds become one job each (``train.seed``).
    """
    v = {**DEFAULTS, **values}
    errors: dict[str, list[str]] = {}

    def ints(path: str) -> list[int]:
        try:
            return parse_int_list(str(v[path]))
        except ValueError as exc:
            errors.setdefault(path, []).append(str(exc))
            return []

    spec: dict[str, Any] = {"name": v["name"], "kind": v["kind"]}
    if v["kind"] == "synthetic":
        spec["synthetic"] = {k: v[f"synthetic.{k}"] for k in ("n", "d_teacher", "d_student", "eps", "steps")}
        spec["synthetic"]["losses"] = list(v["synthetic.losses"])
        spec["synthetic"]["seeds"] = ints("synthetic.seeds")
        return spec, errors, spec["synthetic"]["seeds"]

    if v["kind"] != "finetune":
        spec["teacher"] = {"model": v["teacher.model"] or None}
    source = v["ui.student_source"]
    if source == "model":
        spec["student"] = {"model": v["student.model"] or None}
    elif source == "init_from_teacher":
        spec["student"] = {"init_from_teacher": {"layers": ints("student.init_from_teacher.layers")}}
    else:
        spec["student"] = {"config": {k: v[f"student.config.{k}"] for k in ("num_layers", "hidden_size",
                                                                              "num_heads")}}
    data: dict[str, Any] = {"source": v["data.source"]}
    if v["data.source"] == "glue":
        data["task"] = v["data.task"]
    if v["data.path"]:
        data["path"] = v["data.path"]
    if v["data.max_train_examples"]:
        data["max_train_examples"] = int(v["data.max_train_examples"])
    spec["data"] = data
    feature = None if v["loss.feature"] in (NO_FEATURE, None, "") else v["loss.feature"]
    loss: dict[str, Any] = {"feature": feature}
    loss.update({k: v[f"loss.{k}"] for k in ("alpha", "gamma", "kd_kind", "temperature", "layer_map")})
    if v["loss.layer_map"] == "explicit" or str(v["loss.pairs"]).strip():
        try:
            loss["pairs"] = parse_pairs(str(v["loss.pairs"]))
        except ValueError as exc:
            errors.setdefault("loss.pairs", []).append(str(exc))
    spec["loss"] = loss
    train: dict[str, Any] = {k: v[f"train.{k}"] for k in ("epochs", "batch_size", "lr")}
    if v["train.max_steps"]:
        train["max_steps"] = int(v["train.max_steps"])
    if v["train.gram_every"]:
        train["gram_every"] = int(v["train.gram_every"])
    spec["train"] = train
    seeds = ints("ui.seeds") or [0]
    spec["train"]["seed"] = seeds[0]
    return spec, errors, seeds


def with_seed(spec: Mapping[str, Any], seed: int, n_seeds: int) -> dict[str, Any]:
    """A copy of a non-synthetic ``spec`` for one seed (name suffixed when there are several)."""
    out = copy.deepcopy(dict(spec))
    out.setdefault("train", {})["seed"] = seed
    if n_seeds > 1:
        out["name"] = f"{spec['name']}-s{seed}"
    return out


def sweep_specs(spec: Mapping[str, Any], alphas: Sequence[float], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """One spec per (α, seed), named ``<name>-a<α>-s<seed>`` and tagged for the Compare page."""
    out = []
    for alpha in alphas:
        for seed in seeds:
            s = copy.deepcopy(dict(spec))
            s.setdefault("loss", {})["alpha"] = float(alpha)
            s.setdefault("train", {})["seed"] = int(seed)
            s["name"] = f"{spec['name']}-a{alpha:g}-s{seed}"
            s["tags"] = {**(spec.get("tags") or {}), "sweep": str(spec["name"]), "alpha": f"{alpha:g}",
                         "seed": str(seed)}
            out.append(s)
    return out


def idempotency_key(spec: Mapping[str, Any], nonce: str) -> str:
    """Same spec + same form session → same key, so a double click submits one job."""
    payload = json.dumps(spec, sort_keys=True, default=str) + nonce
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


# ---- validation errors → fields ------------------------------------------------------------------
def loc_path(loc: Iterable[Any]) -> str:
    """FastAPI's ``["body", "loss", "alpha"]`` → ``loss.alpha`` (``""`` for the whole spec)."""
    return ".".join(str(x) for x in loc if x != "body")


def clean_message(msg: str) -> str:
    """Drop pydantic's ``Value error, `` prefix: the user needs the sentence, not the class."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def errors_by_path(problems: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Group ``[{"loc": [...], "msg": ...}]`` by dotted path."""
    out: dict[str, list[str]] = {}
    for p in problems:
        out.setdefault(loc_path(p.get("loc") or []), []).append(clean_message(str(p.get("msg", ""))))
    return out


def messages_for(errors: Mapping[str, list[str]], path: str) -> list[str]:
    """Messages for a field: its own path or anything below it (``loss.pairs.0.1`` → ``loss.pairs``)."""
    return [m for p, msgs in errors.items() if p == path or p.startswith(path + ".") for m in msgs]


def unclaimed(errors: Mapping[str, list[str]], fields: Iterable[str], exact: Iterable[str] = ()) -> list[str]:
    """Messages no shown field claims, prefixed with their path (shown above the form).

    Args:
        errors: ``errors_by_path`` output.
        fields: paths of the shown fields (each also claims the paths below it).
        exact: container paths a field claims only as such (``loss`` for the layer-map field).
    """
    fields, exact = list(fields), set(exact)
    return [f"{p}: {m}" if p else m for p, msgs in errors.items()
            if p not in exact and not any(p == f or p.startswith(f + ".") for f in fields) for m in msgs]


def to_yaml(spec: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(spec), sort_keys=False, default_flow_style=None)


def from_yaml(text: str) -> dict[str, Any]:
    """Parse the YAML editor; raises ValueError with the parser's message."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("a job spec must be a mapping at the top level")
    return data
