"""`wayline ingest` and `wayline failures`, run in-process against the test database."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from tests.platform.conftest import event
from wayline.cli import app

runner = CliRunner()


@pytest.fixture
def cli(db_url, runtime, monkeypatch, tmp_path):
    """Run `wayline …` against the test database; returns the result (output = stdout + stderr)."""
    monkeypatch.chdir(tmp_path)  # no wayline.toml of the developer's is read
    monkeypatch.delenv("WAYLINE_CONFIG", raising=False)
    monkeypatch.setenv("WAYLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("WAYLINE_LOG_LEVEL", "warning")
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str) -> Any:
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def write_jsonl(path, records: list[Any]) -> Any:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def test_ingest_loads_a_jsonl_file_as_a_batch_visible_in_the_api(cli, client, dataset, tmp_path):
    f = write_jsonl(tmp_path / "events.jsonl", [event(i) for i in range(5_000)])
    r = cli("ingest", f, "--dataset", dataset["id"], "--batch-size", "500")
    assert r.exit_code == 0, r.output
    assert "success" in r.output and "5,000 records" in r.output
    assert "process" in r.output and "upload" in r.output  # the progress bars' final state
    (batch,) = client.get("/batches", params={"datasetId": dataset["id"]}).json()["items"]
    assert batch["status"] == "success" and batch["counts"]["ok"] == 5_000
    assert batch["inputFormat"] == {"format": "json", "isMultiLineJson": False}
    assert client.get(f"/catalog/dataSets/{dataset['id']}").json()["counts"]["records"] == 5_000


def test_ingest_csv_with_mappings_and_parquet(cli, client, dataset, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_file = tmp_path / "events.csv"
    csv_file.write_text("id,when,kind,pts\nc1,2026-11-30T10:00:00Z,web.webpagedetails.pageViews,3\n")
    r = cli("ingest", csv_file, "-d", dataset["id"], "--map", "id=_id", "--map", "when=timestamp",
            "--map", "kind=eventType", "--map", "pts=_wayline.points")
    assert r.exit_code == 0, r.output
    buf = io.BytesIO()
    pq.write_table(pa.table({"_id": ["p1"], "timestamp": ["2026-11-30T10:00:00Z"],
                             "eventType": ["commerce.purchases"]}), buf)
    (tmp_path / "events.data").write_bytes(buf.getvalue())
    r = cli("ingest", tmp_path / "events.data", "-d", dataset["id"], "--format", "parquet")
    assert r.exit_code == 0, r.output
    got = {i["recordId"]: i["record"] for i in client.get(f"/datasets/{dataset['id']}/records").json()["items"]}
    assert got["c1"]["_wayline"] == {"points": 3} and "p1" in got


def test_partial_and_failed_batches_and_the_failures_commands(cli, client, dataset, tmp_path):
    f = write_jsonl(tmp_path / "mixed.jsonl", [event(1), event(2, _wayline={"points": "many"})])
    r = cli("ingest", f, "--dataset", dataset["id"])
    assert r.exit_code == 0 and "partial" in r.output and "warning" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not json\n")
    r = cli("ingest", bad, "--dataset", dataset["id"])
    assert r.exit_code == 1 and "failed" in r.output and "not valid JSON" in r.output

    r = cli("failures", "list", "--dataset", dataset["id"])
    assert r.exit_code == 0, r.output
    items = client.get(f"/datasets/{dataset['id']}/failures").json()["items"]
    assert len(items) == 2
    for item in items:
        assert str(item["id"]) in r.output
    assert "/_wayline/points" in r.output

    fid = next(i["id"] for i in items if i.get("recordId") == "evt-2")
    assert client.put(f"/datasets/{dataset['id']}/failures/{fid}", json=event(2)).status_code == 200
    r = cli("failures", "replay", "--dataset", dataset["id"], "--id", fid)
    assert r.exit_code == 0 and "replayed 1 of 1" in r.output, r.output
    r = cli("failures", "replay", "--dataset", dataset["id"])
    assert r.exit_code == 0 and "1 still failing" in r.output
    r = cli("failures", "list", "--dataset", dataset["id"], "--status", "replayed")
    assert str(fid) in r.output
    assert client.get(f"/catalog/dataSets/{dataset['id']}").json()["counts"]["records"] == 2


def test_cli_mistakes_are_reported(cli, dataset, tmp_path):
    f = write_jsonl(tmp_path / "e.jsonl", [event(1)])
    r = cli("ingest", f, "--dataset", "ds_nope")
    assert r.exit_code == 1 and "does not exist" in r.output
    r = cli("ingest", f, "--dataset", dataset["id"], "--sandbox", "nowhere")
    assert r.exit_code == 1 and "nowhere" in r.output
    r = cli("ingest", f, "--dataset", dataset["id"], "--map", "nonsense")
    assert r.exit_code == 2
    odd = tmp_path / "e.xml"
    odd.write_text("<x/>")
    assert cli("ingest", odd, "--dataset", dataset["id"]).exit_code == 2
    assert cli("ingest", tmp_path / "missing.jsonl", "--dataset", dataset["id"]).exit_code == 2
    r = cli("ingest", f, "--dataset", dataset["id"], "--format", "json", "--map", "a=b")
    assert r.exit_code == 1 and "mapping" in r.output
    assert cli("failures", "list", "--dataset", "ds_nope").exit_code == 1
    assert cli("failures", "list", "--dataset", dataset["id"], "--status", "odd").exit_code == 2
    assert cli("failures", "replay", "--dataset", dataset["id"], "--id", "999999").exit_code == 1


def test_an_unmigrated_database_gets_advice_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WAYLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    f = write_jsonl(tmp_path / "e.jsonl", [event(1)])
    r = runner.invoke(app, ["ingest", str(f), "--dataset", "ds_x"])
    assert r.exit_code == 1 and "wayline migrate" in r.output
