"""IOT.collect_sensor_data: drop directory, a real HTTP server, the real Mosquitto broker, dedup."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from geo_infer_ops.data import load_source
from geo_infer_ops.modules.iot import collect_sensor_data
from geo_infer_ops.orchestration import WorkflowOrchestrator

BROKER = ("127.0.0.1", 1883)


@pytest.fixture(scope="module")
def weather():
    """Real hourly readings from the bundled NYC airport weather."""
    return load_source("weather")


def _records(frame):
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def test_directory_drop_files_are_read_once(tmp_path, weather):
    drops = tmp_path / "drops"
    drops.mkdir()
    weather.iloc[:50].rename(columns={"sensor_id": "station", "timestamp": "obs"}).to_csv(
        drops / "a.csv", index=False
    )
    (drops / "b.json").write_text(json.dumps(_records(weather.iloc[40:80])))  # 10 overlap with a.csv
    weather.iloc[100:110].to_parquet(drops / "c.parquet")
    (drops / "notes.txt.bak").write_text("ignored")
    (drops / "broken.csv").write_text("no,useful\ncolumns,here\n")
    dataset = tmp_path / "out" / "readings.geoparquet"
    source = {"type": "directory", "path": str(drops)}

    first = collect_sensor_data(
        source=source, dataset=str(dataset), columns={"station": "sensor_id", "obs": "timestamp"}
    )
    assert first["collected"] == 90 and first["received"] == 100 and first["rejected"] == 1
    assert first["dataset"] == str(dataset) and dataset.exists()
    data = first["data"]
    assert list(data.columns[:4]) == ["sensor_id", "timestamp", "latitude", "longitude"]
    assert str(data.crs) == "EPSG:4326" and len(data) == 90
    assert not data.duplicated(["sensor_id", "timestamp"]).any()
    assert sorted(p.name for p in (drops / "processed").iterdir()) == ["a.csv", "b.json", "c.parquet"]
    assert [p.name for p in (drops / "failed").iterdir()] == ["broken.csv"]

    again = collect_sensor_data(source=source, dataset=str(dataset))
    assert again["collected"] == 0 and len(again["data"]) == 90

    expected = weather.iloc[list(range(80)) + list(range(100, 110))].sort_values(["sensor_id", "timestamp"])
    assert data["timestamp"].tolist() == expected["timestamp"].tolist()
    assert np.allclose(data["temperature"], expected["temperature"].astype(float), rtol=1e-6, equal_nan=True)


def test_dedup_across_collections_keeps_the_latest(tmp_path, weather):
    drops = tmp_path / "drops"
    drops.mkdir()
    dataset = tmp_path / "d.geoparquet"
    source = {"type": "directory", "path": str(drops), "name": "airports"}
    weather.iloc[:30].to_csv(drops / "first.csv", index=False)
    assert collect_sensor_data(source=source, dataset=str(dataset))["collected"] == 30

    corrected = weather.iloc[20:40].copy()
    corrected["temperature"] = corrected["temperature"] + 1.0  # a re-sent, corrected batch
    corrected.to_csv(drops / "first.csv", index=False)  # same name as the processed file
    second = collect_sensor_data(source=source, dataset=str(dataset))
    assert (second["collected"], second["updated"]) == (10, 10)
    data = second["data"]
    assert len(data) == 40 and not data.duplicated(["sensor_id", "timestamp"]).any()
    key = weather.iloc[25][["sensor_id", "timestamp"]]
    row = data[(data["sensor_id"] == key["sensor_id"]) & (data["timestamp"] == key["timestamp"])]
    assert row["temperature"].item() == pytest.approx(float(weather.iloc[25]["temperature"]) + 1.0)
    assert len(list((drops / "processed").iterdir())) == 2


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, object] = {}

    def do_GET(self):
        body = self.routes.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Handler.routes
    finally:
        server.shutdown()
        server.server_close()
        _Handler.routes.clear()


def test_http_json_endpoint(tmp_path, weather, http_server):
    url, routes = http_server
    routes["/list"] = _records(weather.iloc[:25])
    routes["/wrapped"] = {"meta": {"n": 20}, "data": {"readings": _records(weather.iloc[15:35])}}
    dataset = tmp_path / "http.geoparquet"

    first = collect_sensor_data(source={"type": "http", "url": url + "/list"}, dataset=str(dataset))
    assert first["collected"] == 25
    second = collect_sensor_data(
        source={"type": "http", "url": url + "/wrapped", "records_key": "data.readings"}, dataset=str(dataset)
    )
    assert (second["collected"], second["updated"]) == (10, 10)
    assert len(second["data"]) == 35 and second["data"]["sensor_id"].nunique() >= 1

    with pytest.raises(ValueError, match="records_key"):
        collect_sensor_data(
            source={"type": "http", "url": url + "/wrapped", "records_key": "nope"}, dataset=str(dataset)
        )
    with pytest.raises(ConnectionError, match="404"):
        collect_sensor_data(source={"type": "http", "url": url + "/missing"}, dataset=str(dataset))


def _broker_listening() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(BROKER) == 0


@pytest.fixture(scope="module")
def mosquitto():
    """The real Mosquitto broker on 127.0.0.1:1883, started as a daemon when it is not listening."""
    if not _broker_listening():
        exe = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
        )
        if exe is None:
            if os.environ.get("CI"):
                pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 and is not installed")
            pytest.skip("the mosquitto broker is not installed (apt-get install mosquitto)")
        subprocess.run([exe, "-d", "-p", str(BROKER[1])], check=False)
        for _ in range(50):
            if _broker_listening():
                break
            time.sleep(0.1)
    if not _broker_listening():
        if os.environ.get("CI"):
            pytest.fail("Mosquitto could not be reached on 127.0.0.1:1883")
        pytest.skip("Mosquitto could not be started on 127.0.0.1:1883")
    return BROKER


def _publisher():
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(*BROKER)
    client.loop_start()
    return client


def test_mqtt_retained_readings_one_or_a_list_per_message(tmp_path, weather, mosquitto):
    base = f"gio-test/{uuid.uuid4().hex[:8]}"
    records = _records(weather.iloc[300:312])
    messages = {f"{base}/single/{i}": records[i] for i in range(4)}  # one reading per message
    messages[f"{base}/batch/0"] = records[4:8]  # a list per message
    messages[f"{base}/batch/1"] = records[6:12]  # overlapping list
    client = _publisher()
    try:
        for topic, payload in messages.items():
            client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)
        client.publish(f"{base}/noise", b"not json", qos=1, retain=True).wait_for_publish(5)
        result = collect_sensor_data(
            source={
                "type": "mqtt",
                "host": "127.0.0.1",
                "port": 1883,
                "topic": f"{base}/#",
                "max_messages": len(messages),
                "wait_seconds": 10,
            },
            dataset=str(tmp_path / "mqtt.geoparquet"),
        )
    finally:
        for topic in [*messages, f"{base}/noise"]:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
    assert result["collected"] == 12
    data = result["data"]
    expected = weather.iloc[300:312].sort_values(["sensor_id", "timestamp"])
    assert data["timestamp"].tolist() == expected["timestamp"].tolist()
    assert data["sensor_id"].tolist() == expected["sensor_id"].tolist()


def test_mqtt_live_messages_until_max_messages(tmp_path, weather, mosquitto):
    topic = f"gio-test/{uuid.uuid4().hex[:8]}/live"
    batch = _records(weather.iloc[500:506])
    box: dict = {}
    worker = threading.Thread(
        target=lambda: box.update(
            collect_sensor_data(
                source={"type": "mqtt", "topic": topic, "max_messages": 3, "wait_seconds": 20},
                dataset=str(tmp_path / "live.geoparquet"),
            )
        )
    )
    worker.start()
    client = _publisher()
    try:
        # Publish until the collector (subscribed at some moment we cannot see) has its 3 messages;
        # the same batch arrives several times and is deduplicated.
        while worker.is_alive():
            client.publish(topic, json.dumps(batch), qos=1).wait_for_publish(5)
            worker.join(0.1)
    finally:
        client.loop_stop()
        client.disconnect()
    assert box["collected"] == 6 and box["received"] == 18 and len(box["data"]) == 6


def test_mqtt_wait_seconds_with_no_messages(tmp_path, mosquitto):
    result = collect_sensor_data(
        source={
            "type": "mqtt",
            "topic": f"gio-test/{uuid.uuid4().hex}/quiet",
            "max_messages": 5,
            "wait_seconds": 0.5,
        },
        dataset=str(tmp_path / "quiet.geoparquet"),
    )
    assert result["collected"] == 0 and len(result["data"]) == 0


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("drops/", "source must be a mapping"),
        ({"path": "x"}, "source.type"),
        ({"type": "ftp"}, "source.type"),
        ({"type": "directory"}, "source.path"),
        ({"type": "directory", "path": "/nonexistent/gio"}, "source.path"),
        ({"type": "http"}, "source.url"),
        ({"type": "http", "url": "ftp://example.org"}, "source.url"),
        ({"type": "http", "url": "http://127.0.0.1:9", "timeout": 0}, "source.timeout"),
        ({"type": "mqtt", "host": "127.0.0.1"}, "source.topic"),
        ({"type": "mqtt", "topic": "t", "port": "1883"}, "source.port"),
        ({"type": "mqtt", "topic": "t", "max_messages": 0}, "source.max_messages"),
        ({"type": "mqtt", "topic": "t", "wait_seconds": -1}, "source.wait_seconds"),
        ({"type": "mqtt", "topic": "t", "brokr": "x"}, "source.brokr"),
    ],
)
def test_bad_source_config_names_the_field(tmp_path, source, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        collect_sensor_data(source=source, dataset=str(tmp_path / "x.geoparquet"))


def test_unreachable_broker_is_a_connection_error(tmp_path):
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:9"):
        collect_sensor_data(
            source={"type": "mqtt", "topic": "t", "port": 9, "wait_seconds": 1},
            dataset=str(tmp_path / "x.geoparquet"),
        )


def test_no_source_reads_the_inbox_or_says_how_to_configure(home, weather):
    with pytest.raises(ValueError, match="iot/inbox") as info:
        collect_sensor_data()
    assert "source" in str(info.value) and "'type': 'mqtt'" in str(info.value)
    inbox = home / "iot" / "inbox"
    assert inbox.is_dir()
    weather.iloc[:12].to_csv(inbox / "drop.csv", index=False)
    result = collect_sensor_data()
    assert result["collected"] == 12
    assert result["dataset"] == str(home / "iot" / "inbox.geoparquet")
    # empty inbox, existing dataset: nothing new, the dataset as it is
    again = collect_sensor_data()
    assert again["collected"] == 0 and len(again["data"]) == 12


def test_spec_collection_workflow_with_validation(settings, weather):
    inbox = settings.home / "iot" / "inbox"
    inbox.mkdir(parents=True)
    sample = weather[weather["timestamp"] < pd.Timestamp("2013-01-08", tz="UTC")]
    sample.to_csv(inbox / "week1.csv", index=False)
    pd.concat([sample.iloc[:10], sample.iloc[:10]]).to_json(
        inbox / "resent.json", orient="records", date_format="iso"
    )
    result = WorkflowOrchestrator(settings=settings).execute_workflow(
        {
            "name": "real_time_monitoring",
            "steps": [
                {
                    "name": "sensor_data_collection",
                    "module": "IOT",
                    "action": "collect_sensor_data",
                    "timeout": 300,
                },
                {
                    "name": "data_validation",
                    "module": "DATA",
                    "action": "validate_sensor_data",
                    "dependencies": ["sensor_data_collection"],
                },
            ],
        }
    )
    assert result["status"] == "succeeded", result
    collected = result["outputs"]["sensor_data_collection"]
    assert collected["collected"] == len(sample)
    assert collected["dataset"] == str(settings.home / "iot" / "inbox.geoparquet")
    quality = result["outputs"]["data_validation"]["quality"]
    assert quality["readings_in"] == len(sample) and quality["duplicates"] == 0
    assert 0.9 < quality["data_quality_score"] <= 1
