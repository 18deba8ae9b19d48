"""What produced an artefact: recorded beside it, and checked before it is resumed or reused.

Traces, scored rows, evaluation results and run directories each record a provenance: the rlt version, the models
(path and a fingerprint of their weights), the data (source, adapter, columns, framing, split) and the settings
that change what is written (reward coefficients, temperatures, sampling). Before a stage appends to or resumes
an artefact it compares the recorded `settings` with its own: a difference is an error naming every setting that
differs, never a silent mix. Rows are keyed by content (`content_key`), not by position, so rows of questions
outside the current data are told apart too.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rlt.data import DataError

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
_SAMPLED_BLOCKS, _BLOCK = 16, 1 << 16


def content_key(*parts: str) -> str:
    """A short key of a row's content (e.g. question and solution): the same text gives the same key anywhere."""
    return hashlib.sha256("\x1f".join(part.strip() for part in parts).encode()).hexdigest()[:16]


def rlt_version() -> str:
    try:
        return version("rlt")
    except PackageNotFoundError:
        return "unknown"


def model_fingerprint(path: str) -> str | None:
    """A fingerprint of a local model's weights: file names, sizes and 16 sampled 64 KiB blocks of each weight file
    (training changes every block, so sampling is enough, and a 15 GB model is read in milliseconds). None for a
    Hub id that is not a local directory: its name is its identity."""
    root = Path(path)
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(f for f in root.iterdir() if f.suffix in _WEIGHT_SUFFIXES):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with file.open("rb") as f:
            for i in range(_SAMPLED_BLOCKS):
                f.seek(size * i // _SAMPLED_BLOCKS)
                digest.update(f.read(_BLOCK))
    return digest.hexdigest()[:16]


def model_identity(spec: str) -> str:
    """What a model is, for comparison: its weights' fingerprint, or the Hub id when it is not local."""
    from rlt.models import resolve

    return model_fingerprint(resolve(spec)) or spec


def file_digest(path: str | Path) -> str:
    """A short digest of a file's bytes: which rows or traces an artefact was made from."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def read_record(path: Path) -> dict | None:
    """The provenance recorded in `path`, or None when there is none."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def sidecar(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".provenance.json")


def describe(kind: str, settings: dict, **recorded) -> dict:
    """A provenance: `settings` are compared on reuse; everything else is kept on record."""
    return {"kind": kind, "rlt_version": rlt_version(), "settings": settings, **recorded}


def write_record(path: Path, provenance: dict) -> None:
    """Write a JSON record (a provenance, an evaluation's results) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(provenance, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def check_settings(path: Path, provenance: dict, what: str, remedy: str) -> None:
    """Refuse to reuse `what` when the provenance recorded in `path` has other settings than `provenance`."""
    if not path.exists():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg}); {remedy}") from None
    differ = setting_differences(recorded, provenance)
    if differ:
        raise DataError(f"{what} was produced with other settings ({'; '.join(differ)}); {remedy}")


def setting_differences(recorded: dict, provenance: dict) -> list[str]:
    """Each setting with another value in `provenance` than in the `recorded` one, as "key: old then, new now".
    Only what both record: a setting an older rlt did not record (or this one no longer does) cannot be compared."""
    old, new = _flat(recorded.get("settings", {})), _flat(_plain(provenance["settings"]))
    return [f"{key}: {old[key]!r} then, {new[key]!r} now" for key in sorted(old.keys() & new.keys())
            if old[key] != new[key]]  # fmt: skip


def _flat(settings: dict, prefix: str = "") -> dict:
    """Nested settings as dotted keys (`data.holdout`), so that a difference names the one value that differs."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _plain(value):
    """Settings as JSON reads them back (tuples as lists, paths as strings), so a comparison is like with like."""
    return json.loads(json.dumps(value, default=str))
