"""Which local paths a spec may name: everything must lie under the configured roots.

Imported by the API, so no torch / transformers here. A model reference that is not an existing
local path and looks like ``org/name`` is a hub id and passes; data paths are always local.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from geokd_core.errors import SpecError
from geokd_core.spec import JobSpec

# Hugging Face repo ids: "name" or "org/name", letters, digits, '-', '_', '.', at most 96 chars per part.
_HUB_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_HUB_ID = re.compile(rf"^{_HUB_PART}(/{_HUB_PART})?$")


@dataclass
class Problem:
    """One reason a spec cannot run: ``loc`` is the field path (like pydantic's), ``msg`` says why."""

    loc: list[str | int]
    msg: str

    def to_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg}


def looks_like_hub_id(s: str) -> bool:
    """``bert-base-uncased`` or ``org/name``; never an absolute, home, ``./`` or ``..`` path.

    >>> looks_like_hub_id("prajjwal1/bert-tiny"), looks_like_hub_id("../models/x"), looks_like_hub_id("/abs")
    (True, False, False)
    """
    if not s or s.startswith(("/", "~", ".", "\\")) or ".." in s or "--" in s or s.endswith("."):
        return False
    return bool(_HUB_ID.match(s))


def _inside(p: Path, root: Path) -> bool:
    return p == root or p.is_relative_to(root)


def resolve_under_roots(path: str, roots: list[Path] | None) -> Path:
    """The real (symlink-free) absolute path of ``path``, which must exist under one of ``roots``.

    A relative path is tried under each root in order, then under the working directory. Symlinks
    and ``..`` are resolved first, so a link or ``..`` pointing out of every root is refused.
    ``roots=None`` means unrestricted (local CLI use): only existence is checked.

    Raises:
        SpecError: the path escapes the roots, or does not exist.
    """
    raw = Path(path).expanduser()
    candidates = [raw] if raw.is_absolute() else [*(Path(r) / raw for r in roots or []), Path.cwd() / raw]
    real_roots = [Path(r).expanduser().resolve() for r in roots] if roots is not None else None
    outside: Path | None = None
    for cand in candidates:
        real = cand.resolve()
        if real_roots is None or any(_inside(real, r) for r in real_roots):
            if real.exists():
                return real
        elif outside is None and (real.exists() or raw.is_absolute() or ".." in raw.parts):
            outside = real
    if outside is not None:
        allowed = ", ".join(str(r) for r in real_roots or []) or "(none configured)"
        raise SpecError(f"{path!r} resolves to {outside}, outside the allowed roots: {allowed}")
    where = f" under {', '.join(str(r) for r in roots)}" if roots else ""
    raise SpecError(f"{path!r} does not exist{where}")


def _check(problems: list[Problem], loc: list[str | int], path: str, roots: list[Path] | None) -> Path | None:
    try:
        return resolve_under_roots(path, roots)
    except SpecError as exc:
        problems.append(Problem(loc, str(exc)))
        return None


def _gguf_name_ok(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and not name.startswith("~")


def spec_path_problems(
    spec: JobSpec, *, data_roots: list[Path] | None, model_roots: list[Path] | None
) -> list[Problem]:
    """Every local path of the spec that is missing or outside its roots (``None`` = unrestricted).

    Checked: ``data.path``, ``data.eval_path``, ``data.eval_sets.*``, ``teacher.model``,
    ``student.model`` (local unless it looks like a hub id and no such local path exists), and
    ``gguf_file`` (a relative name inside the model directory).
    """
    problems: list[Problem] = []
    data = spec.data
    if data is not None:
        if data.path:
            _check(problems, ["data", "path"], data.path, data_roots)
        if data.eval_path:
            _check(problems, ["data", "eval_path"], data.eval_path, data_roots)
        for name, p in data.eval_sets.items():
            _check(problems, ["data", "eval_sets", name], p, data_roots)
    for role in ("teacher", "student"):
        ref = getattr(spec, role)
        if ref is None or ref.model is None:
            continue
        if ref.gguf_file is not None and not _gguf_name_ok(ref.gguf_file):
            problems.append(Problem([role, "gguf_file"], f"{ref.gguf_file!r} must be a relative file name inside the model directory"))
            continue
        try:
            model_dir = resolve_under_roots(ref.model, model_roots)
        except SpecError as exc:
            if looks_like_hub_id(ref.model) and "does not exist" in str(exc):
                continue  # a hub id: downloaded at run time
            problems.append(Problem([role, "model"], str(exc)))
            continue
        if ref.gguf_file is not None:
            _check(problems, [role, "gguf_file"], str(model_dir / ref.gguf_file), model_roots)
    return problems


def resolved_spec(spec: JobSpec, *, data_roots: list[Path] | None, model_roots: list[Path] | None) -> JobSpec:
    """A copy of ``spec`` with every local path made absolute (so the engine's cwd does not matter).

    Raises:
        SpecError: the first problem of :func:`spec_path_problems`.
    """
    problems = spec_path_problems(spec, data_roots=data_roots, model_roots=model_roots)
    if problems:
        p = problems[0]
        raise SpecError(f"{'.'.join(map(str, p.loc))}: {p.msg}")
    out = spec.model_copy(deep=True)
    if out.data is not None:
        d = out.data
        d.path = str(resolve_under_roots(d.path, data_roots)) if d.path else None
        d.eval_path = str(resolve_under_roots(d.eval_path, data_roots)) if d.eval_path else None
        d.eval_sets = {k: str(resolve_under_roots(v, data_roots)) for k, v in d.eval_sets.items()}
    for role in ("teacher", "student"):
        ref = getattr(out, role)
        if ref is not None and ref.model is not None:
            with contextlib.suppress(SpecError):  # a hub id (spec_path_problems accepted it)
                ref.model = str(resolve_under_roots(ref.model, model_roots))
    return out
