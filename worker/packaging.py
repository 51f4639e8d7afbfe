"""Files in and out of a run directory: checkpoint tars and the artifacts a finished job publishes."""

from __future__ import annotations

import math
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def extract_checkpoint(tar_path: Path, out_dir: Path) -> Path:
    """Unpack an uploaded checkpoint into ``out_dir`` (members are ``checkpoints/last/...``).

    The ``data`` filter refuses absolute paths, ``..`` and links that leave ``out_dir``: the tar
    came over the network.
    """
    with tarfile.open(tar_path) as tar:
        tar.extractall(out_dir, filter="data")
    return out_dir / "checkpoints" / "last"


def zip_dir(src: Path, dest_zip: Path) -> Path:
    """Zip the directory ``src`` into ``dest_zip`` (members relative to ``src``)."""
    base = dest_zip.with_suffix("")
    return Path(shutil.make_archive(str(base), "zip", root_dir=src))


def collect_artifacts(out_dir: Path, declared: Mapping[str, Path], staging: Path) -> dict[str, Path]:
    """Name → file to upload: declared directories zipped as ``<name>.zip``, files as themselves,
    plus the model card (``student/README.md`` → ``model_card.md``), ``results.json`` and
    ``metrics.jsonl`` when the run wrote them.
    """
    staging.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, path in declared.items():
        path = Path(path)
        if path.is_dir():
            files[f"{name}.zip"] = zip_dir(path, staging / f"{name}.zip")
        elif path.is_file():
            files[path.name] = path
    card = out_dir / "student" / "README.md"
    if card.is_file():
        files.setdefault("model_card.md", card)
    for extra in ("results.json", "metrics.jsonl"):
        if (out_dir / extra).is_file():
            files.setdefault(extra, out_dir / extra)
    return files


def json_safe(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Final metrics with NaN/inf replaced by None (strict JSON has no NaN)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        elif isinstance(v, int | float | str | bool) or v is None:
            out[k] = v
        else:
            try:
                f = float(v)
                out[k] = f if math.isfinite(f) else None
            except (TypeError, ValueError):
                out[k] = str(v)
    return out
