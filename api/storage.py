"""Files on disk: ``<artifact_dir>/<job_id>/<name>`` and the job's checkpoint tar.

Uploads are streamed to a temporary file and renamed into place, so a reader never sees half a
checkpoint and an interrupted upload leaves the previous one intact.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from geokd_core.settings import Settings

# Plain file names only: no separators, no leading dot, so a name can never leave the job folder.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHECKPOINT_NAME = ".checkpoint.tar"


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.resolved_artifact_dir() / job_id


def checkpoint_path(settings: Settings, job_id: str) -> Path:
    return job_dir(settings, job_id) / CHECKPOINT_NAME


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name)) and ".." not in name


async def save_stream(chunks: AsyncIterator[bytes], dest: Path) -> int:
    """Write ``chunks`` to ``dest`` atomically; returns the number of bytes written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".upload-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in chunks:
                fh.write(chunk)
                size += len(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


def zip_dir(src: Path) -> Path:
    """A zip of the directory ``src`` in a temp folder (the caller removes it)."""
    out = Path(tempfile.mkdtemp(prefix="geokd-zip-")) / src.name
    return Path(shutil.make_archive(str(out), "zip", root_dir=src))
