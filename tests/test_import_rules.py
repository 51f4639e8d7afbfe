"""The layering rules of docs/DESIGN.md, checked on the source (static imports) and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(package: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


def _offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{f} imports {m}"
        for f, m in _imported_modules(package)
        if any(m == x or m.startswith(x + ".") for x in forbidden)
    )


def test_core_imports_no_service_package() -> None:
    assert _offenders("geokd_core", ("api", "worker", "dashboard", "fastapi", "sqlmodel", "celery", "streamlit")) == []


def test_dashboard_talks_http_only() -> None:
    assert _offenders("dashboard", ("api", "worker", "sqlmodel", "sqlalchemy", "torch", "celery")) == []


def test_api_never_imports_torch_or_engine() -> None:
    bad = ("torch", "transformers", "worker.tasks", "geokd_core.train", "geokd_core.losses", "geokd_core.run")
    assert _offenders("api", bad) == []


def test_light_modules_do_not_load_torch_at_run_time() -> None:
    code = (
        "import sys, geokd_core.spec, geokd_core.events, geokd_core.settings;"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
