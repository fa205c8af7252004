"""The backbone's operations surface: parked keys and replay over HTTP and the CLI, status, the worker."""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from typer.testing import CliRunner

from wayline.cli import app as cli
from wayline.kernel import outbox


def test_parked_keys_are_listed_per_sandbox_and_replayed(client, runtime, other_sandbox_key):
    broken = {"on": True}
    applied = []

    def handler(conn, m):
        if broken["on"]:
            raise RuntimeError("downstream says no")
        applied.append((m.key, m.seq))

    runtime.backbone.subscribe("test-consumer", "test", handler, max_attempts=2)
    sandbox = client.get("/sandbox").json()["sandbox"]["id"]
    key = outbox.ordering_key(sandbox, "Email", "ann@example.com")
    runtime.store.run(lambda c: outbox.add(c, stream="test", key=key, type="t", payload={}, now_ms=1))
    runtime.backbone.run_until_idle()
    items = client.get("/backbone/parked").json()["items"]
    assert [(i["key"], i["attempts"]) for i in items] == [(key, 2)] and "downstream says no" in items[0]["error"]
    other = {"Authorization": f"Bearer {other_sandbox_key}"}
    assert client.get("/backbone/parked", headers=other).json()["items"] == []
    r = client.post("/backbone/parked/replay", json={"consumer": "test-consumer", "key": key}, headers=other)
    assert r.status_code == 404
    status = client.get("/backbone/status").json()
    (sub,) = [s for s in status["subscriptions"] if s["consumer"] == "test-consumer"]
    assert sub["parked"] == 1 and sub["lag"] == 0
    broken["on"] = False
    r = client.post("/backbone/parked/replay", json={"consumer": "test-consumer", "key": key})
    assert r.json() == {"replayed": 1, "parked": False, "found": True}
    assert applied == [(key, 1)]
    assert client.get("/backbone/parked").json()["items"] == []
    assert 'wayline_backbone_parked_keys{consumer="test-consumer"} 0.0' in client.get("/metrics").text


def test_backbone_cli_status_and_parked(db_url, monkeypatch, runtime):
    from wayline.kernel import tables as t

    monkeypatch.setenv("WAYLINE_DATABASE_URL", db_url)
    runtime.store.run(lambda c: c.execute(t.parked.insert().values(
        consumer="c1", stream="s", key="sbx|Email|x", seq=3, message_id=9, attempts=5, error="boom", parked_ms=1)))
    runner = CliRunner()
    r = runner.invoke(cli, ["backbone", "status", "--json"])
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.output)["timers"]["pending"] == 0
    r = runner.invoke(cli, ["backbone", "parked"])
    assert r.exit_code == 0 and "sbx|Email|x" in r.output and "boom" in r.output
    r = runner.invoke(cli, ["backbone", "replay", "--consumer", "nobody", "--key", "k"])
    assert r.exit_code == 1 and "no parked key" in r.output
    n = runtime.store.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(t.parked)).scalar())
    assert n == 1


def test_backbone_cli_prune(db_url, monkeypatch, runtime):
    from wayline.kernel import tables as t
    from wayline.kernel import timers

    monkeypatch.setenv("WAYLINE_DATABASE_URL", db_url)
    old = runtime.store.run(lambda c: timers.schedule(c, stream="s", key="k", type="t", payload={}, due_ms=1,
                                                      now_ms=1))
    runtime.store.run(lambda c: c.execute(t.timers.update().values(fired_ms=2, lateness_ms=1)))
    runtime.store.run(lambda c: outbox.add(c, stream="nobody-reads-this", key="k", type="t", payload={}, now_ms=1))
    runner = CliRunner()
    r = runner.invoke(cli, ["backbone", "prune", "--hours", "0"])
    assert r.exit_code == 2 and "above 0" in r.output
    r = runner.invoke(cli, ["backbone", "prune"])
    assert r.exit_code == 0, r.output
    assert "deleted 0 message(s) and 1 fired timer(s)" in r.output
    left = runtime.store.read_sync(lambda c: (c.execute(sa.select(sa.func.count()).select_from(t.timers)).scalar(),
                                              c.execute(sa.select(sa.func.count()).select_from(t.outbox)).scalar()))
    assert left == (0, 1) and old is not None  # the unsubscribed stream keeps its message
    monkeypatch.setenv("WAYLINE_BACKBONE_RETENTION_HOURS", "0")
    r = runner.invoke(cli, ["backbone", "prune"])
    assert r.exit_code == 0 and "retention is off" in r.output
