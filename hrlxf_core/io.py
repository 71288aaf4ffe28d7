"""Atomic file writes and checked parquet reads.

Why: a killed run must never leave a half-written file that a later run trusts, and a broken
input must produce an error that names the file and the field, not a polars stack trace.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl


class DataFileError(ValueError):
    """A data file that is missing, unreadable or does not match its contract."""

    def __init__(self, path: Path | str, message: str, field: str | None = None) -> None:
        self.path = str(path)
        self.field = field
        where = f"{path}" + (f" (field {field!r})" if field else "")
        super().__init__(f"{where}: {message}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file next to ``path``, fsync it, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes it owner-only; data files are shared with readers
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (lineage of data and weight files)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.write_parquet(tmp, compression="zstd", statistics=True))


def write_text_atomic(text: str, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_dir_atomic(final_dir: Path, files: Mapping[str, Callable[[Path], None]]) -> None:
    """Write several files into a temp directory, then rename it to ``final_dir`` in one step.

    A reader sees either no ``final_dir`` or all of its files; never a part of them.
    """
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".tmp", dir=final_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; data dirs are shared with readers
        for name, write in files.items():
            write(tmp / name)
        os.replace(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_parquet_checked(
    path: Path, schema: Mapping[str, pl.DataType] | None = None, optional: set[str] | None = None
) -> pl.DataFrame:
    """Read a parquet file; a missing/corrupt file or a missing/mistyped column names the field.
    Columns in ``optional`` may be absent (an older readable version); when present they are checked."""
    if not path.exists():
        raise DataFileError(path, "file is missing")
    try:
        df = pl.read_parquet(path)
    except Exception as exc:  # polars raises several error types for truncated/corrupt files
        raise DataFileError(path, f"not a readable parquet file ({type(exc).__name__}: {exc})") from exc
    if schema is not None:
        for name, dtype in schema.items():
            if name not in df.columns:
                if optional and name in optional:
                    continue
                raise DataFileError(path, "column is missing", field=name)
            if df.schema[name] != dtype:
                raise DataFileError(path, f"column has dtype {df.schema[name]}, expected {dtype}", field=name)
    return df
