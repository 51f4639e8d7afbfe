"""Low-level readers for TSV / CSV / JSONL files that report every problem as file:line: reason.

GLUE TSVs are read with ``QUOTE_NONE`` semantics (a line is split on tabs, a ``"`` is an ordinary
character) because their fields contain bare quotes; lines are split on ``\\n`` only because
``str.splitlines`` would also break on characters such as U+2028 inside a sentence. A UTF-8 BOM
(MRPC's header) is dropped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from geokd_core.errors import DataError

Row = tuple[int, dict[str, Any]]  # (1-based line number, column -> value)


def read_bytes(path: str | Path) -> bytes:
    """The whole file, or a DataError saying why it cannot be read (missing, a directory, ...)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{p}: is a directory, expected a file") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not data.strip():
        raise DataError(f"{p}: file is empty")
    return data


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-empty line (1-based, ``\\r`` and BOM stripped)."""
    raw = read_bytes(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        if not chunk:
            continue
        try:
            yield number, chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def read_tsv_rows(path: str | Path, *, header: bool) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """Split a TSV file on tabs without any quote handling (``csv.QUOTE_NONE``).

    Returns:
        ``(header_columns or None, [(line_number, fields), ...])``.
    """
    lines = iter_lines(path)
    columns: list[str] | None = None
    if header:
        first = next(lines, None)
        if first is None:
            raise DataError(f"{path}: file is empty")
        columns = [c.strip() for c in first[1].split("\t")]
    rows = [(n, text.split("\t")) for n, text in lines]
    if not rows:
        raise DataError(f"{path}: no data rows")
    return columns, rows


def _tsv_records(path: str | Path) -> list[Row]:
    columns, rows = read_tsv_rows(path, header=True)
    assert columns is not None
    out: list[Row] = []
    for n, fields in rows:
        if len(fields) != len(columns):
            raise DataError(f"{path}:{n}: expected {len(columns)} tab-separated fields, found {len(fields)}")
        out.append((n, dict(zip(columns, fields, strict=True))))
    return out


def _csv_records(path: str | Path) -> list[Row]:
    text = read_bytes(path).decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        columns = next(reader)
    except StopIteration:
        raise DataError(f"{path}: file is empty") from None
    except csv.Error as exc:
        raise DataError(f"{path}:1: {exc}") from None
    columns = [c.strip() for c in columns]
    out: list[Row] = []
    try:
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(columns):
                raise DataError(
                    f"{path}:{reader.line_num}: expected {len(columns)} comma-separated fields, found {len(fields)}"
                )
            out.append((reader.line_num, dict(zip(columns, fields, strict=True))))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: {exc}") from None
    if not out:
        raise DataError(f"{path}: no data rows")
    return out


def read_jsonl(path: str | Path) -> list[Row]:
    """One JSON object per line; a line that is not an object is an error."""
    out: list[Row] = []
    for n, text in iter_lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, found {type(obj).__name__}")
        out.append((n, obj))
    if not out:
        raise DataError(f"{path}: no data rows")
    return out


def read_records(path: str | Path) -> list[Row]:
    """Rows of a TSV (header + tabs, no quoting), CSV (header, standard quoting) or JSONL file.

    The format follows the extension: ``.tsv``/``.txt`` → TSV, ``.csv`` → CSV, ``.jsonl``/``.json``
    → JSON Lines.
    """
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected a file")
    if not p.exists():
        raise DataError(f"{p}: file not found")
    suffix = p.suffix.lower()
    if suffix in (".tsv", ".txt"):
        return _tsv_records(path)
    if suffix == ".csv":
        try:
            return _csv_records(path)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .tsv, .csv or .jsonl")


def require(path: str | Path, line: int, row: dict[str, Any], column: str) -> Any:
    """``row[column]`` or a DataError naming the file, line and the columns that do exist."""
    if column not in row or row[column] is None:
        raise DataError(f"{path}:{line}: missing column {column!r} (found {sorted(row)})")
    return row[column]
