"""Rows on disk that nothing loses: JSONL appended whole line by whole line, a torn last line (a kill mid-write) cut
off on reading, and files replaced atomically. Traces, scores and a training run's completions all keep their rows
here, so that the modules writing them need not import one another."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from rlt.data import DataError
from rlt.provenance import sidecar, write_record

logger = logging.getLogger(__name__)


def recover_jsonl(path: Path) -> list[dict]:
    """Rows already written; a torn last line (a kill mid-write) is cut off the file first."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        logger.warning(
            "%s: dropping a torn last line (%d bytes) left by an interrupted run", path, len(data) - len(complete)
        )
        with path.open("r+b") as f:
            f.truncate(len(complete))
    rows = []
    for lineno, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg}); refusing to append to a corrupt file") from e
    return rows


class JsonlAppender:
    """Appends whole lines with single O_APPEND writes; `sync` makes them durable."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, row: dict) -> None:
        os.write(self.fd, (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def write_rows(path: Path, rows: list[dict], provenance: dict | None = None) -> None:
    """Write rows as Parquet (`.parquet`) or JSONL, replacing the file atomically: readers see the old or the new
    file, never half of one. `provenance` goes beside it (`sidecar`)."""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pandas as pd

        pd.DataFrame(rows).to_parquet(tmp, index=False)
    else:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    if provenance is not None:
        write_record(sidecar(path), provenance)
