"""Segmentation benchmark: batch evaluation of 10 definitions, streaming evaluation of 100.

    wayline bench segments --json [--profiles 1000000]

Its own generator fills the stored profiles (`profile_view`, one identity per profile) and the
experience events of a fraction of them directly in the tables, in the shape ingestion leaves them
(building them through ingestion is what `wayline bench profile` measures). Then:

- batch: the 10 representative definitions below (attributes, lists, strings, dates, event windows
  and aggregates) each evaluated over every profile by `segments.run_evaluation`, the code the
  daily job and `POST /segment/jobs` run (compiled SQL, membership written, qualification events
  emitted);
- streaming: 100 continuous definitions; for random profiles, the backbone handler's work for one
  profile change that can affect all of them (`Streaming.apply`: read memberships, the stored
  profile and its events, evaluate, write), in a transaction that is rolled back; and the
  evaluation alone (100 compiled definitions on one in-memory profile).

Prints one JSON object: profiles, batch_seconds_10_definitions (and per definition),
streaming_p50_us, streaming_p99_us, streaming_eval_only_p50_us / p99_us, plus machine facts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
FGS = ["https://ns.adobe.com/xdm/context/identitymap", "https://ns.adobe.com/xdm/context/profile-person-details",
       "https://ns.adobe.com/xdm/context/profile-personal-details"]
FG_COMMERCE = "https://ns.adobe.com/xdm/context/experienceevent-commerce"
DAY = 86_400_000

BATCH_DEFINITIONS = [
    '_wayline.points >= 500',
    '_wayline.tier = "gold" and homeAddress.countryCode in ["FR", "DE"]',
    'homeAddress.countryCode notIn ["US", "GB"] and _wayline.points < 100',
    'personalEmail.address.endsWith("@example.com")',
    'person.name.lastName.startsWith("M")',
    'person.birthDate.getMonth() = 3',
    '_wayline.since occurs <= 30 days before now',
    'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now].count() > 0',
    'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > 100',
    'select X from xEvent where X.eventType = "web.webpagedetails.pageViews"',
]


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def streaming_definitions(n: int) -> list[str]:
    """n continuous definitions: variations on the batch ones (thresholds, countries, windows)."""
    countries = ["FR", "DE", "US", "GB", "IT", "ES", "NL", "BE"]
    out = []
    for i in range(n):
        k = i % 10
        if k == 0:
            out.append(f"_wayline.points >= {50 * (i // 10 + 1)}")
        elif k == 1:
            out.append(f'_wayline.tier = "gold" and homeAddress.countryCode = "{countries[i % 8]}"')
        elif k == 2:
            out.append(f'homeAddress.countryCode in ["{countries[i % 8]}", "{countries[(i + 3) % 8]}"]')
        elif k == 3:
            out.append(f'personalEmail.address.endsWith("@{["example.com", "mail.test"][i % 2]}")')
        elif k == 4:
            out.append(f'person.name.lastName.startsWith("{"ABCDEFGHIJKLM"[i % 13]}")')
        elif k == 5:
            out.append(f"person.birthDate.getMonth() = {i % 12 + 1}")
        elif k == 6:
            out.append(f"_wayline.since occurs <= {i // 10 + 5} days before now")
        elif k == 7:
            out.append(f'xEvent[eventType = "commerce.purchases" and timestamp occurs <= {i // 10 + 3} days '
                       f'before now].count() > 0')
        elif k == 8:
            out.append(f'xEvent[eventType = "commerce.purchases"].sum(commerce.order.priceTotal) > {20 * (i // 10)}')
        else:
            out.append('_wayline.points >= 10 and not (homeAddress.countryCode = "US") or _wayline.tier = "silver"')
    return out


def setup(rt: Any, key: str) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from wayline.kernel import tenancy
    from wayline.runtime import build_app

    base = "/schemaregistry/tenant"
    tenant = rt.settings.tenant_id

    def ok(r: Any) -> Any:
        assert r.status_code in (200, 201), r.text
        return r.json()

    with TestClient(build_app(rt)) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        fg = ok(c.post(f"{base}/fieldgroups", json={
            "title": "Loyalty", "type": "object", "meta:intendedToExtend": [PROFILE_CLASS],
            "definitions": {"l": {"properties": {f"_{tenant}": {"type": "object", "properties": {
                "points": {"type": "integer"}, "tier": {"type": "string"},
                "since": {"type": "string", "format": "date-time"}}}}}},
            "allOf": [{"$ref": "#/definitions/l"}]}))
        ps = ok(c.post(f"{base}/schemas", json={"title": "People", "type": "object", "meta:class": PROFILE_CLASS,
                                               "allOf": [{"$ref": g} for g in (PROFILE_CLASS, *FGS, fg["$id"])]}))
        ok(c.patch(f"{base}/schemas/{ps['meta:altId']}", json={"meta:immutableTags": ["union"]}))
        es = ok(c.post(f"{base}/schemas", json={"title": "Events", "type": "object", "meta:class": EVENT_CLASS,
                                               "allOf": [{"$ref": EVENT_CLASS}, {"$ref": FG_COMMERCE}]}))
        ok(c.patch(f"{base}/schemas/{es['meta:altId']}", json={"meta:immutableTags": ["union"]}))
        crm = ok(c.post("/catalog/dataSets", json={"name": "crm", "schemaRef": {"id": ps["$id"]},
                                                    "profileEnabled": True}))
        evs = ok(c.post("/catalog/dataSets", json={"name": "events", "schemaRef": {"id": es["$id"]},
                                                    "profileEnabled": True}))
        ok(c.post("/config/mergePolicies", json={
            "name": "stitched", "schema": {"name": "_xdm.context.profile"}, "default": True,
            "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}}))
    sandbox = rt.store.read_sync(tenancy.get_sandbox, rt.settings.default_sandbox)
    return {"sandbox": sandbox.id, "crm": crm["id"], "events": evs["id"]}


COUNTRIES = ["FR", "DE", "US", "GB", "IT", "ES", "NL", "BE"]
LAST = ["Martin", "Bernard", "Dubois", "Miller", "Smith", "Garcia", "Muller", "Rossi", "Lopez", "Moreau"]


def fill(db: Path, ids: dict[str, Any], n: int, now_ms: int, seed: int) -> dict[str, int]:
    """Stored profiles (pdg view: key = identity id = graph id) and events, written directly."""
    rnd = random.Random(seed)
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    sandbox, crm, evds = ids["sandbox"], ids["crm"], ids["events"]
    events = 0
    chunk = 20_000
    for start in range(1, n + 1, chunk):
        view, idents, recs, index = [], [], [], []
        for key in range(start, min(n + 1, start + chunk)):
            email = f"p{key}@{'example.com' if key % 3 else 'mail.test'}"
            body = {
                "identityMap": {"Email": [{"id": email, "primary": True}]},
                "person": {"name": {"firstName": "Ann", "lastName": LAST[key % 10]},
                           "birthDate": f"19{60 + key % 40}-{key % 12 + 1:02d}-{key % 28 + 1:02d}"},
                "personalEmail": {"address": email},
                "homeAddress": {"countryCode": COUNTRIES[rnd.randrange(8)], "city": "Lyon"},
                "_wayline": {"points": rnd.randrange(1000), "tier": rnd.choice(["gold", "silver", "bronze"]),
                             "since": _iso(now_ms - rnd.randrange(120) * DAY)},
            }
            view.append((sandbox, key, "bench@1", orjson.dumps(body).decode(), 0, now_ms))
            n_ev = rnd.choice([0, 0, 0, 1, 2, 3])
            idents.append((key, sandbox, "Email", email, key, now_ms, now_ms, n_ev))
            for e in range(n_ev):
                ts = now_ms - rnd.randrange(30) * DAY - rnd.randrange(DAY)
                kind = rnd.choice(["commerce.purchases", "web.webpagedetails.pageViews"])
                ev = {"_id": f"e{key}-{e}", "timestamp": _iso(ts), "eventType": kind,
                      "identityMap": {"Email": [{"id": email, "primary": True}]}}
                if kind == "commerce.purchases":
                    ev["commerce"] = {"order": {"priceTotal": round(rnd.random() * 200, 2)}}
                recs.append((sandbox, evds, f"e{key}-{e}", ts, orjson.dumps(ev).decode(), now_ms))
                index.append((key, 1, ts, evds, f"e{key}-{e}"))
                events += 1
        con.executemany("INSERT INTO profile_view (sandbox_id, key, policy, body, event_count, updated_ms) "
                        "VALUES (?, ?, ?, ?, ?, ?)", view)
        con.executemany("INSERT INTO identities (id, sandbox_id, ns, value, graph_id, first_seen_ms, last_seen_ms, "
                        "event_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", idents)
        con.executemany("INSERT INTO records (sandbox_id, dataset_id, record_id, ts_ms, body, received_ms) "
                        "VALUES (?, ?, ?, ?, ?, ?)", recs)
        con.executemany("INSERT INTO profile_records (identity_id, is_event, ts_ms, dataset_id, record_id) "
                        "VALUES (?, ?, ?, ?, ?)", index)
        con.commit()
    # the stored profiles follow the default policy: stamp them with it, as ingestion would
    stamp = con.execute("SELECT id || '@' || version FROM merge_policies WHERE is_default").fetchone()[0]
    con.execute("UPDATE profile_view SET policy = ?", (stamp,))
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return {"profiles": n, "events": events}


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def create_definitions(rt: Any, sandbox: str, texts: list[str], *, continuous: bool) -> list[str]:
    from wayline.kernel.store import now_ms
    from wayline.platform import segments

    out = []
    for i, text in enumerate(texts):
        body = {"name": f"{'stream' if continuous else 'batch'} {i}",
                "expression": {"type": "PQL", "format": "pql/text", "value": text},
                "evaluationInfo": {"batch": {"enabled": not continuous}, "continuous": {"enabled": continuous}}}
        d = rt.store.write_blocking(lambda c, b=body: segments.create(
            c, registry=rt.platform.schemas, sandbox_id=sandbox, body=b, actor="bench", limits=rt.settings.limits,
            now=now_ms()))
        out.append(d.id)
    rt.segments.catalog.forget(sandbox)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wayline bench segments", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--profiles", type=int, default=1_000_000)
    p.add_argument("--streaming-definitions", type=int, default=100)
    p.add_argument("--changes", type=int, default=2_000, help="profile changes measured for streaming")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--db", type=Path, default=None, help="SQLite file (default: a temporary directory)")
    args = p.parse_args(argv)

    from wayline.config import Settings
    from wayline.kernel.expr import interp
    from wayline.runtime import Runtime

    tmp = tempfile.TemporaryDirectory(prefix="wl-bench-seg-")
    db = args.db or Path(tmp.name) / "bench.db"
    settings = Settings(database_url=f"sqlite:///{db}", log_level="warning", segments_daily_at="")
    rt = Runtime(settings)
    rt.migrate()
    key = rt.bootstrap()
    ids = setup(rt, key)
    sandbox = ids["sandbox"]
    now_ms = rt.clock.now_ms()
    t0 = time.perf_counter()
    filled = fill(db, ids, args.profiles, now_ms, args.seed)
    fill_s = time.perf_counter() - t0
    log(f"filled {filled['profiles']:,} profiles and {filled['events']:,} events in {fill_s:.1f}s")

    # -- batch
    from wayline.platform import segments

    batch_ids = create_definitions(rt, sandbox, BATCH_DEFINITIONS, continuous=False)
    per: dict[str, Any] = {}
    t0 = time.perf_counter()

    def run(c: Any) -> dict[str, Any]:
        return segments.run_evaluation(c, catalog=rt.segments.catalog, sandbox_id=sandbox, segment_ids=batch_ids,
                                       now=rt.clock.now_ms(), max_events=rt.settings.limits.max_events_per_profile)
    counts = rt.store.write_blocking(run)
    batch_s = time.perf_counter() - t0
    for sid, text in zip(batch_ids, BATCH_DEFINITIONS):
        per[text] = {"seconds": counts[sid]["seconds"], "profiles": counts[sid]["profiles"]}
    log(f"batch: 10 definitions in {batch_s:.1f}s")
    t0 = time.perf_counter()
    rt.store.write_blocking(run)  # the next daily run: everyone still in moves realized -> existing
    rerun_s = time.perf_counter() - t0
    log(f"batch again: {rerun_s:.1f}s")

    # -- streaming
    stream_texts = streaming_definitions(args.streaming_definitions)
    create_definitions(rt, sandbox, stream_texts, continuous=True)
    rnd = random.Random(args.seed)
    handler = rt.segments.streaming
    times: list[float] = []
    eval_times: list[float] = []
    keys = [rnd.randrange(1, args.profiles + 1) for _ in range(args.changes)]
    fields = {"_wayline", "person", "homeAddress", "personalEmail"}
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(now_ms / 1000, UTC)

    def one(c: Any, k: int) -> None:
        compiled = [x for x in rt.segments.catalog.get(c, sandbox) if x.d.continuous]
        start = time.perf_counter()
        handler.apply(c, sandbox, k, {"fragment", "event"}, fields, [], ("Email", f"p{k}"))
        times.append((time.perf_counter() - start) * 1e6)
        body = c.exec_driver_sql("SELECT body FROM profile_view WHERE key = ?", (k,)).scalar_one()
        profile = orjson.loads(body) if isinstance(body, str) else body
        evs = segments.profiles.events_of_key(c, k, graph=True, max_events=5000)
        ctx = interp.Context(profile=profile, events=evs, now=when)
        start = time.perf_counter()
        for x in compiled:
            x.fn(ctx)
        eval_times.append((time.perf_counter() - start) * 1e6)
        raise _Rollback()

    for k in keys[:50]:  # warm caches
        try:
            rt.store.run(one, k)
        except _Rollback:
            pass
    times.clear()
    eval_times.clear()
    for k in keys:
        try:
            rt.store.run(one, k)
        except _Rollback:
            pass
    result = {
        "profiles": args.profiles, "events": filled["events"], "fill_seconds": round(fill_s, 1),
        "batch_seconds_10_definitions": round(batch_s, 2), "batch_seconds_10_definitions_rerun": round(rerun_s, 2),
        "batch_per_definition": per,
        "streaming_definitions": args.streaming_definitions, "streaming_changes": len(times),
        "streaming_p50_us": round(pct(times, 0.5), 1), "streaming_p99_us": round(pct(times, 0.99), 1),
        "streaming_eval_only_p50_us": round(pct(eval_times, 0.5), 1),
        "streaming_eval_only_p99_us": round(pct(eval_times, 0.99), 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version},
        "db_bytes": db.stat().st_size,
    }
    rt.close()
    if not args.json:
        log(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(orjson.dumps(result).decode())
    return 0


class _Rollback(Exception):
    """Ends a measured unit without keeping its writes."""


if __name__ == "__main__":
    raise SystemExit(main())
