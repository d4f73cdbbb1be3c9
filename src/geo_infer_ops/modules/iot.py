"""IOT: collect sensor readings from a drop directory, an HTTP JSON endpoint or an MQTT topic.

``IOT.collect_sensor_data`` pulls what a configured source has now, appends it to a local
GeoParquet dataset (deduplicated on ``(sensor_id, timestamp)``, the latest reading winning) and
returns the whole dataset. Run it on a schedule (``schedule: every 15m``) to keep the dataset
growing; every downstream step sees the sensor-table contract of ``_common``.

Sources (the ``source`` parameter, a mapping with a ``type``):

- ``{'type': 'directory', 'path': ...}``: every CSV / JSON / GeoJSON / Parquet file in the folder
  is read once and then moved to its ``processed/`` subfolder (unreadable files to ``failed/``).
- ``{'type': 'http', 'url': ..., 'records_key': ...}``: one GET; the body is a JSON list of
  readings, ``{records_key: [...]}`` (a dotted path works) or a GeoJSON FeatureCollection.
- ``{'type': 'mqtt', 'host': '127.0.0.1', 'port': 1883, 'topic': ..., 'max_messages': N,
  'wait_seconds': s}``: subscribe with paho-mqtt 2.x and collect JSON payloads (one reading or a
  list per message) until N messages arrived or s seconds passed.

Without a source the drop directory ``$GEO_INFER_OPS_HOME/iot/inbox`` is read.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from geo_infer_ops import action

__all__ = ["collect_sensor_data", "default_inbox"]

_SOURCE_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "directory": {"path": str, "name": str, "processed_dir": str},
    "http": {
        "url": str,
        "records_key": str,
        "name": str,
        "timeout": (int, float),
        "headers": dict,
        "params": dict,
    },
    "mqtt": {
        "host": str,
        "port": int,
        "topic": (str, list),
        "max_messages": int,
        "wait_seconds": (int, float),
        "qos": int,
        "username": str,
        "password": str,
        "client_id": str,
        "name": str,
        "keepalive": int,
    },
}
_REQUIRED = {"directory": ("path",), "http": ("url",), "mqtt": ("topic",)}
_DROP_SUFFIXES = {".csv", ".tsv", ".json", ".geojson", ".jsonl", ".ndjson", ".parquet", ".geoparquet", ".pq"}
_DATASET_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _home(ctx: Any) -> Path:
    if ctx is not None and getattr(ctx, "artifacts", None) is not None:
        return Path(ctx.artifacts.root).parent
    from ..settings import Settings

    return Settings().home


def default_inbox(ctx: Any = None) -> Path:
    """The drop directory read when no source is configured: ``$GEO_INFER_OPS_HOME/iot/inbox``."""
    return _home(ctx) / "iot" / "inbox"


def _check_source(source: Any) -> dict[str, Any]:
    types = ", ".join(repr(t) for t in _SOURCE_KEYS)
    if not isinstance(source, Mapping):
        raise ValueError(
            f"source must be a mapping with a 'type' ({types}), "
            "e.g. {'type': 'directory', 'path': 'drops/'}; "
            f"got {type(source).__name__}"
        )
    kind = source.get("type")
    if kind not in _SOURCE_KEYS:
        raise ValueError(f"source.type must be one of {types}; got {kind!r}")
    allowed = _SOURCE_KEYS[kind]
    for key, value in source.items():
        if key == "type":
            continue
        if key not in allowed:
            raise ValueError(
                f"source.{key}: unknown key for a {kind!r} source; allowed: type, {', '.join(allowed)}"
            )
        expected = allowed[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            names = " or ".join(
                t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))
            )
            raise ValueError(f"source.{key} must be {names}; got {value!r}")
    for key in _REQUIRED[kind]:
        if not source.get(key):
            raise ValueError(f"source.{key} is required for a {kind!r} source")
    config = dict(source)
    if kind == "http" and not re.match(r"^https?://", config["url"]):
        raise ValueError(f"source.url must start with http:// or https://; got {config['url']!r}")
    if kind == "mqtt":
        config.setdefault("host", "127.0.0.1")
        config.setdefault("port", 1883)
        config.setdefault("max_messages", 100)
        config.setdefault("wait_seconds", 10)
        config.setdefault("qos", 0)
        config.setdefault("keepalive", 60)
        if not 0 < config["port"] < 65536:
            raise ValueError(f"source.port must be 1..65535; got {config['port']}")
        if config["max_messages"] < 1:
            raise ValueError(f"source.max_messages must be at least 1; got {config['max_messages']}")
        if config["wait_seconds"] <= 0:
            raise ValueError(f"source.wait_seconds must be positive; got {config['wait_seconds']}")
        if config["qos"] not in (0, 1, 2):
            raise ValueError(f"source.qos must be 0, 1 or 2; got {config['qos']}")
        topics = config["topic"] if isinstance(config["topic"], list) else [config["topic"]]
        if not topics or not all(isinstance(t, str) and t for t in topics):
            raise ValueError(
                f"source.topic must be a topic string or a list of them; got {config['topic']!r}"
            )
    if kind == "http":
        config.setdefault("timeout", 30)
        if config["timeout"] <= 0:
            raise ValueError(f"source.timeout must be positive; got {config['timeout']}")
    return config


def _source_name(config: Mapping[str, Any]) -> str:
    if config.get("name"):
        raw = config["name"]
    elif config["type"] == "directory":
        raw = Path(config["path"]).expanduser().resolve().name or "directory"
    elif config["type"] == "http":
        from urllib.parse import urlsplit

        parts = urlsplit(config["url"])
        raw = f"http-{parts.hostname}-{parts.path.strip('/')}"
    else:
        topic = config["topic"] if isinstance(config["topic"], str) else config["topic"][0]
        raw = f"mqtt-{topic}"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._-")
    return name or config["type"]


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def _drop_files(folder: Path) -> list[Path]:
    files = []
    for entry in sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime, p.name)):
        if not entry.is_file() or entry.name.startswith((".", "~")):
            continue
        if entry.suffix.lower() in _DROP_SUFFIXES:
            files.append(entry)
    return files


def _read_directory(
    config: Mapping[str, Any], columns: Any, log: Any
) -> tuple[list[Any], list[Path], list[Path]]:
    from .data import read_raw_table, to_sensor_table

    folder = Path(config["path"]).expanduser()
    if not folder.is_dir():
        raise ValueError(f"source.path: {folder} is not a directory")
    tables, done, failed = [], [], []
    for file in _drop_files(folder):
        try:
            table = to_sensor_table(read_raw_table(file), columns=columns, origin=str(file))
        except (ValueError, OSError, KeyError, TypeError) as exc:
            log.warning("cannot read drop file %s (moved to failed/): %s", file, exc)
            failed.append(file)
            continue
        tables.append(table)
        done.append(file)
    return tables, done, failed


def _read_http(config: Mapping[str, Any], columns: Any) -> list[Any]:
    import httpx

    from .data import records_to_frame, to_sensor_table

    url = config["url"]
    try:
        response = httpx.get(
            url,
            timeout=config["timeout"],
            headers=config.get("headers"),
            params=config.get("params"),
            follow_redirects=True,
        )
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise ConnectionError(
            f"GET {url} answered {exc.response.status_code}: {exc.response.text[:200]}"
        ) from exc
    except httpx.HTTPError as exc:
        raise ConnectionError(f"GET {url} failed: {exc!r}") from exc
    try:
        payload = response.json()
    except ValueError as exc:
        raise ValueError(
            f"GET {url}: the body is not JSON ({exc}); it starts {response.text[:80]!r}"
        ) from None
    frame = records_to_frame(payload, config.get("records_key"))
    if len(frame) == 0:
        return []
    return [to_sensor_table(frame, columns=columns, origin=f"GET {url}")]


def _read_mqtt(config: Mapping[str, Any], columns: Any, log: Any) -> tuple[list[Any], int]:
    import json

    import paho.mqtt.client as mqtt

    from .data import records_to_frame, to_sensor_table

    topics = config["topic"] if isinstance(config["topic"], list) else [config["topic"]]
    payloads: list[Any] = []
    rejected = 0
    done = threading.Event()
    state: dict[str, Any] = {"error": None, "messages": 0}
    lock = threading.Lock()

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            state["error"] = f"the broker refused the connection: {reason_code}"
            done.set()
            return
        client.subscribe([(t, config["qos"]) for t in topics])

    def on_message(client, userdata, message):
        nonlocal rejected
        if not message.payload:  # an empty retained message clears a topic: nothing to read
            return
        try:
            payload = json.loads(message.payload)
        except (ValueError, UnicodeDecodeError):
            with lock:
                rejected += 1
            log.warning("MQTT %s: payload is not JSON, ignored: %r", message.topic, message.payload[:80])
            return
        with lock:
            payloads.append(payload)
            state["messages"] += 1
            if state["messages"] >= config["max_messages"]:
                done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.get("client_id", ""))
    if config.get("username"):
        client.username_pw_set(config["username"], config.get("password"))
    client.on_connect = on_connect
    client.on_message = on_message
    host, port = config["host"], config["port"]
    try:
        client.connect(host, port, keepalive=config["keepalive"])
    except OSError as exc:
        raise ConnectionError(
            f"cannot connect to the MQTT broker at {host}:{port} ({exc}); start one (e.g. `mosquitto -d`) "
            "or fix source.host / source.port"
        ) from exc
    client.loop_start()
    try:
        done.wait(float(config["wait_seconds"]))
    finally:
        client.disconnect()
        client.loop_stop()
    if state["error"]:
        raise ConnectionError(f"MQTT {host}:{port}: {state['error']}")
    log.info("MQTT %s:%s %s: %d messages (%d not JSON)", host, port, topics, len(payloads), rejected)

    records: list[Any] = []
    for payload in payloads:
        if isinstance(payload, list):
            records.extend(payload)
        elif isinstance(payload, Mapping) and payload.get("type") in {"Feature", "FeatureCollection"}:
            records.append(payload)
        else:
            records.append(payload)
    frames = []
    plain = [
        r for r in records if isinstance(r, Mapping) and r.get("type") not in {"Feature", "FeatureCollection"}
    ]
    geo = [r for r in records if isinstance(r, Mapping) and r.get("type") in {"Feature", "FeatureCollection"}]
    if plain:
        frames.append(to_sensor_table(records_to_frame(plain), columns=columns, origin=f"MQTT {topics}"))
    for item in geo:
        frames.append(to_sensor_table(records_to_frame(item), columns=columns, origin=f"MQTT {topics}"))
    rejected += sum(1 for r in records if not isinstance(r, Mapping))
    return frames, rejected


# --------------------------------------------------------------------------------------------
# The local dataset
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(dataset: Path) -> Iterator[None]:
    """One writer per dataset: a lock within the process and an advisory file lock across processes."""
    with _LOCKS_GUARD:
        lock = _DATASET_LOCKS.setdefault(str(dataset), threading.Lock())
    with lock:
        dataset.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        with open(dataset.with_name(dataset.name + ".lock"), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _read_dataset(dataset: Path) -> Any:
    import geopandas as gpd

    if not dataset.exists():
        return None
    return gpd.read_parquet(dataset)


def _merge(existing: Any, new: list[Any]) -> tuple[Any, int, int]:
    """(merged table, new keys, replaced keys); the last reading of a (sensor_id, timestamp) wins."""
    import pandas as pd

    from ._common import SENSOR_COLUMNS, to_geodataframe

    keys = ["sensor_id", "timestamp"]
    new = [t for t in new if len(t)]
    if not new:
        return existing, 0, 0
    parts = ([existing] if existing is not None and len(existing) else []) + new
    merged = pd.concat(
        [pd.DataFrame(p.drop(columns="geometry", errors="ignore")) for p in parts],
        ignore_index=True,
        sort=False,
    )
    before = 0 if existing is None else len(existing)
    merged = merged.drop_duplicates(keys, keep="last")
    added = len(merged) - before
    incoming = pd.concat([pd.DataFrame(t[keys]) for t in new], ignore_index=True).drop_duplicates()
    replaced = len(incoming) - added
    ordered = [*SENSOR_COLUMNS, *[c for c in merged.columns if c not in SENSOR_COLUMNS]]
    merged = merged[ordered].sort_values(keys, kind="stable").reset_index(drop=True)
    return to_geodataframe(merged), added, replaced


def _write_dataset(table: Any, dataset: Path) -> None:
    tmp = dataset.with_name(f".{dataset.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, dataset)


def _move(file: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file.name
    if target.exists():
        target = (
            folder / f"{file.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{time.time_ns() % 10**9}{file.suffix}"
        )
    shutil.move(str(file), str(target))


def _empty_table() -> Any:
    import pandas as pd

    from ._common import to_geodataframe

    return to_geodataframe(
        pd.DataFrame(
            {
                "sensor_id": pd.Series(dtype=str),
                "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
                "latitude": pd.Series(dtype="float64"),
                "longitude": pd.Series(dtype="float64"),
            }
        )
    )


class _NullLog:
    def __getattr__(self, name: str) -> Any:
        import logging

        return getattr(logging.getLogger("geo_infer_ops.modules.iot"), name)


@action("IOT", "collect_sensor_data")
def collect_sensor_data(
    source: dict[str, Any] | None = None,
    dataset: str | None = None,
    columns: dict[str, str] | None = None,
    ctx: Any = None,
) -> dict[str, Any]:
    """Collect readings from a drop directory, HTTP JSON or MQTT into a local GeoParquet dataset.

    source: {'type': 'directory', 'path': ...} | {'type': 'http', 'url': ..., 'records_key': ...} |
    {'type': 'mqtt', 'host': '127.0.0.1', 'port': 1883, 'topic': ..., 'max_messages': N,
    'wait_seconds': s}; default: the drop directory $GEO_INFER_OPS_HOME/iot/inbox.
    dataset: the GeoParquet file to append to (default $GEO_INFER_OPS_HOME/iot/<source name>.geoparquet).
    columns: {incoming column: sensor_id|timestamp|latitude|longitude|variable} renames.
    Readings are deduplicated on (sensor_id, timestamp), the latest winning. Returns
    {"data": the whole dataset, "collected": new rows, "dataset": path, ...}.
    """
    log = ctx.log if ctx is not None else _NullLog()
    if columns is not None and not isinstance(columns, Mapping):
        raise ValueError("columns must be a mapping {incoming column: sensor_table_column}")
    configured = source is not None
    if source is None:
        inbox = default_inbox(ctx)
        config = {"type": "directory", "path": str(inbox), "name": "inbox"}
    else:
        config = _check_source(source)
    name = _source_name(config)
    if dataset is not None and not isinstance(dataset, (str, Path)):
        raise ValueError(f"dataset must be a path to a .geoparquet file; got {dataset!r}")
    target = Path(dataset).expanduser() if dataset else _home(ctx) / "iot" / f"{name}.geoparquet"

    if not configured:
        inbox = Path(config["path"])
        has_files = inbox.is_dir() and bool(_drop_files(inbox))
        if not has_files and not target.exists():
            inbox.mkdir(parents=True, exist_ok=True)
            raise ValueError(
                "IOT.collect_sensor_data has no source configured and nothing to collect: the drop directory "
                f"{inbox} is empty and there is no dataset at {target} yet. Drop CSV/JSON/Parquet files of "
                "readings into that directory, or give the step a source parameter: "
                "{'type': 'directory', 'path': ...}, {'type': 'http', 'url': ...} or "
                "{'type': 'mqtt', 'host': '127.0.0.1', 'port': 1883, 'topic': ...}"
            )

    started = time.perf_counter()
    done_files: list[Path] = []
    failed_files: list[Path] = []
    rejected = 0
    if config["type"] == "directory":
        tables, done_files, failed_files = _read_directory(config, columns, log)
    elif config["type"] == "http":
        tables = _read_http(config, columns)
    else:
        tables, rejected = _read_mqtt(config, columns, log)
    received = sum(len(t) for t in tables)

    with _locked(target):
        existing = _read_dataset(target)
        merged, added, replaced = _merge(existing, tables)
        if merged is None:
            merged = _empty_table()
        if added or replaced:
            _write_dataset(merged, target)
    # Files are moved only once their readings are safely in the dataset.
    if config["type"] == "directory":
        folder = Path(config["path"]).expanduser()
        processed = (
            Path(config["processed_dir"]).expanduser()
            if config.get("processed_dir")
            else folder / "processed"
        )
        for file in done_files:
            _move(file, processed)
        for file in failed_files:
            _move(file, folder / "failed")

    elapsed = time.perf_counter() - started
    log.info(
        "collected %d readings from %s (%d new, %d updated) into %s: %d rows, %d sensors, %.2fs",
        received,
        name,
        added,
        replaced,
        target,
        len(merged),
        merged["sensor_id"].nunique() if len(merged) else 0,
        elapsed,
    )
    if ctx is not None:
        ctx.metric("collected_readings", added)
        if elapsed > 0:
            ctx.metric("data_ingestion_rate", received / elapsed)
    return {
        "data": merged,
        "collected": int(added),
        "updated": int(replaced),
        "received": int(received),
        "rejected": int(rejected + len(failed_files)),
        "files": [str(f) for f in done_files],
        "dataset": str(target),
        "source": name,
    }
