"""The student's model card (``README.md`` next to its weights): spec, metrics, versions, seed, git SHA."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from geokd_core.spec import JobSpec


def git_sha(cwd: Path | None = None) -> str | None:
    """The commit of the geokd source tree, when it is a git checkout (else None)."""
    here = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for pkg in ("geokd", "torch", "transformers", "tokenizers"):
        try:
            found[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return found


def render_model_card(spec: JobSpec, metrics: dict[str, float], extra: dict[str, Any]) -> str:
    """Markdown with YAML front matter (the Hub's model-card convention)."""
    front = {"library_name": "transformers", "tags": ["geokd", "knowledge-distillation", spec.kind.value]}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {spec.name}", ""]
    teacher = spec.teacher.model if spec.teacher else None
    lines += [f"Trained by geokd (`kind: {spec.kind.value}`)" + (f" from teacher `{teacher}`." if teacher else "."), ""]
    lines += ["## Results", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items())]
    lines += ["", "## Training", ""]
    lines += [f"- {k}: `{v}`" for k, v in extra.items()]
    lines += [f"- seed: `{spec.train.seed}`", f"- git SHA: `{git_sha() or 'unknown'}`"]
    lines += [f"- {k}: `{v}`" for k, v in versions().items()]
    lines += ["", "## Job spec", "", "```yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)


def write_model_card(path: Path, spec: JobSpec, metrics: dict[str, float], extra: dict[str, Any]) -> Path:
    path.write_text(render_model_card(spec, metrics, extra))
    return path
