"""Step results, stored by reference under the home directory.

A DataFrame becomes Parquet, a GeoDataFrame GeoParquet, a numpy array ``.npy``,
and a dict or list that holds frames becomes a *bundle*: a folder with one file
per frame and a ``manifest.json`` for the rest. Anything else that is JSON goes
inline into the state store when it is small (so that a thousand tiny steps do
not pay for a thousand files), or to a ``.json`` file when it is not. Objects that
are none of these are pickled, as a last resort, and say so in their format.

Large data therefore never travels through the scheduler or the database: a
downstream step receives a reference and loads it when it asks for the input.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .errors import ArtifactError

_BUNDLE_KEY = "$artifact"
_UNNAMED_SERIES = "__series__"  # the column of a Series without a name (Parquet columns need one)


@dataclass(frozen=True)
class StoredResult:
    """Where a step's result went: inline JSON text, or an artifact file/folder."""

    inline: str | None = None
    artifact_id: str | None = None
    format: str | None = None
    path: str | None = None
    size_bytes: int = 0

    @property
    def is_inline(self) -> bool:
        return self.artifact_id is None

    def to_record(self, run_id: str, step: str, created_at: float) -> dict[str, Any]:
        return {
            "id": self.artifact_id,
            "run_id": run_id,
            "step": step,
            "format": self.format,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "created_at": created_at,
        }


_NULL = StoredResult(inline="null")


def _type_path(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_geodataframe(value: Any) -> bool:
    return _type_path(value).startswith("geopandas.") and type(value).__name__ == "GeoDataFrame"


def _is_dataframe(value: Any) -> bool:
    return _type_path(value).startswith("pandas.") and type(value).__name__ in ("DataFrame", "Series")


def _is_ndarray(value: Any) -> bool:
    return _type_path(value) == "numpy.ndarray"


def _is_frame_like(value: Any) -> bool:
    return _is_geodataframe(value) or _is_dataframe(value) or _is_ndarray(value)


def _json_default(value: Any) -> Any:
    """Plain JSON for the scalar types that analysis code returns all the time."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    module = type(value).__module__
    if (module == "numpy" or module.startswith("numpy.")) and hasattr(value, "tolist"):
        return value.tolist()
    if module.startswith("pandas") and hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value: Any) -> str | None:
    """JSON text of ``value``, or None when it is not plain data."""
    try:
        return json.dumps(value, default=_json_default, allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError, OverflowError):
        return None


def _contains_frames(value: Any, depth: int = 0) -> bool:
    if depth > 4:
        return False
    if _is_frame_like(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_frames(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_frames(v, depth + 1) for v in value)
    return False


class ArtifactStore:
    """Files of step results under ``root/<run_id>/<step>...``."""

    def __init__(self, root: str | Path, inline_max_bytes: int = 64 * 1024) -> None:
        self.root = Path(root)
        self.inline_max_bytes = inline_max_bytes

    def step_dir(self, run_id: str, step: str) -> Path:
        """A folder a step may write its own files into (reports, figures)."""
        path = self.root / run_id / _safe(step)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    # -- save -----------------------------------------------------------------
    def save(self, run_id: str, step: str, value: Any) -> StoredResult:
        """Store a step's result and return where it went."""
        if value is None:
            return _NULL
        if not _contains_frames(value):
            text = to_json(value)
            if text is not None and len(text) <= self.inline_max_bytes:
                return StoredResult(inline=text)
        artifact_id = uuid.uuid4().hex
        # no dot in the stem: ``with_suffix`` would cut 'DATA.load-1a2b' down to 'DATA' + suffix
        base = self.root / run_id / f"{_safe(step).replace('.', '_')}-{artifact_id[:8]}"
        base.parent.mkdir(parents=True, exist_ok=True)
        try:
            fmt, path = self._write(base, value)
        except Exception as exc:
            raise ArtifactError(
                f"could not store the result of step {step!r} ({type(value).__name__}): {exc}"
            ) from exc
        return StoredResult(
            artifact_id=artifact_id,
            format=fmt,
            path=str(path.relative_to(self.root)),
            size_bytes=_size(path),
        )

    def _write(self, base: Path, value: Any) -> tuple[str, Path]:
        if _is_frame_like(value):
            return self._write_frame(base, value)
        if _contains_frames(value):
            folder = base.with_suffix(".bundle")
            tmp = folder.with_name(folder.name + ".tmp")
            tmp.mkdir(parents=True, exist_ok=True)
            manifest = self._bundle(tmp, value, [0])
            _atomic_write_text(tmp / "manifest.json", json.dumps(manifest, default=_json_default))
            os.replace(tmp, folder)
            return "bundle", folder
        text = to_json(value)
        if text is not None:
            path = base.with_suffix(".json")
            _atomic_write_text(path, text)
            return "json", path
        path = base.with_suffix(".pkl")
        _atomic_write_bytes(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        return "pickle", path

    def _write_frame(self, base: Path, value: Any) -> tuple[str, Path]:
        if _is_geodataframe(value):
            path = base.with_suffix(".geoparquet")
            tmp = path.with_name(path.name + ".tmp")
            value.to_parquet(tmp)
            os.replace(tmp, path)
            return "geoparquet", path
        if _is_dataframe(value):
            fmt = "parquet"
            if type(value).__name__ == "Series":
                value = value.to_frame(name=value.name if value.name is not None else _UNNAMED_SERIES)
                fmt = "parquet-series"
            path = base.with_suffix(".parquet")
            tmp = path.with_name(path.name + ".tmp")
            value.to_parquet(tmp)
            os.replace(tmp, path)
            return fmt, path
        import numpy as np

        path = base.with_suffix(".npy")
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, value, allow_pickle=False)
        os.replace(tmp, path)
        return "npy", path

    def _bundle(self, folder: Path, value: Any, counter: list[int]) -> Any:
        if _is_frame_like(value):
            counter[0] += 1
            fmt, path = self._write_frame(folder / f"part-{counter[0]}", value)
            return {_BUNDLE_KEY: path.name, "format": fmt}
        if isinstance(value, Mapping):
            return {"$dict": [[k, self._bundle(folder, v, counter)] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return {
                "$list": [self._bundle(folder, v, counter) for v in value],
                "tuple": isinstance(value, tuple),
            }
        if to_json(value) is None:
            raise ArtifactError(f"a {type(value).__name__} inside a result is neither a frame nor JSON")
        return {"$value": value}

    # -- load -----------------------------------------------------------------
    def load(self, stored: StoredResult) -> Any:
        if stored.is_inline:
            return json.loads(stored.inline) if stored.inline is not None else None
        path = self.root / str(stored.path)
        if not path.exists():
            raise ArtifactError(
                f"artifact {stored.artifact_id} is missing at {path}; it was deleted or the home "
                "directory moved (GEO_INFER_OPS_HOME)"
            )
        return self._read(stored.format or "", path)

    def _read(self, fmt: str, path: Path) -> Any:
        if fmt == "geoparquet":
            import geopandas

            return geopandas.read_parquet(path)
        if fmt in ("parquet", "parquet-series"):
            import pandas

            frame = pandas.read_parquet(path)
            if fmt != "parquet-series":
                return frame
            series = frame.iloc[:, 0]
            return series.rename(None) if series.name == _UNNAMED_SERIES else series
        if fmt == "npy":
            import numpy as np

            return np.load(path, allow_pickle=False)
        if fmt == "json":
            return json.loads(path.read_text(encoding="utf-8"))
        if fmt == "pickle":
            with path.open("rb") as fh:
                return pickle.load(fh)
        if fmt == "bundle":
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
            return self._unbundle(path, manifest)
        raise ArtifactError(f"unknown artifact format {fmt!r} at {path}")

    def _unbundle(self, folder: Path, node: Any) -> Any:
        if _BUNDLE_KEY in node:
            return self._read(node["format"], folder / node[_BUNDLE_KEY])
        if "$dict" in node:
            return {k: self._unbundle(folder, v) for k, v in node["$dict"]}
        if "$list" in node:
            items = [self._unbundle(folder, v) for v in node["$list"]]
            return tuple(items) if node.get("tuple") else items
        return node["$value"]

    def delete_run(self, run_id: str) -> int:
        """Remove every file of a run; returns bytes freed."""
        folder = self.run_dir(run_id)
        freed = _size(folder) if folder.exists() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return freed


_stores: dict[tuple[str, int], ArtifactStore] = {}


def artifact_store(root: str, inline_max_bytes: int) -> ArtifactStore:
    """The artifact store of a folder, made once per process (steps ask for it every time)."""
    key = (root, inline_max_bytes)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = ArtifactStore(root, inline_max_bytes)
    return store


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return cleaned.strip(".") or "step"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
