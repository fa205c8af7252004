"""Records decided in prepare workers (`prepare_pool`): real worker processes, the same decisions as
deciding them in the server process, and nothing lost when a worker dies. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

from tests.platform.profiling import ids, pdg_default, person, profile, purchase, put, setup_profiles
from wayline.kernel.problems import Problem
from wayline.platform import contracts, identity, merging, profiles
from wayline.platform.prepare_pool import PreparePool, prepare_inline

T1 = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def pool():
    p = PreparePool(1, min_bytes=0)
    p.start("records")
    yield p
    p.close()


def _records() -> list[Any]:
    return [
        person("ok-1", T1, ids(CRMID="c-1", Email="Ann@Example.com"), person={"name": {"firstName": "Ann"}}),
        person("ok-2", T1, ids(Email="b@x.io", Phone="+331"), _wayline={"points": 3, "tags": ["a"]}),
        person("later-ns", T1, {"Loyalty": [{"id": "L-1", "primary": True}], "Email": [{"id": "l@x.io"}]}),
        person("bad-ecid", T1, {"ECID": [{"id": "1" * 37}]}),
        person("bad-type", T1, ids(Email="c@x.io"), _wayline={"points": "many"}),
        {"identityMap": ids(Email="d@x.io"), "extSourceSystemAudit": {"lastUpdatedDate": T1}},  # no _id
        person("huge", T1, ids(Email="e@x.io"), person={"name": {"firstName": "x" * 102_400}}),  # 413
        "not an object",
        person("nul", T1, ids(Email="f@x.io"), person={"name": {"firstName": "a\u0000b"}}),
        person("tags", T1, ids(Email="g@x.io"), _wayline={"tags": ["t"] * 501}),  # fragment array limit
        person("no-ids", T1, {}),
    ]


def _setup(client, runtime) -> tuple[Any, Any, dict[str, identity.Namespace]]:
    s = setup_profiles(client)
    sandbox = runtime.store.read_sync(lambda c: c.exec_driver_sql("SELECT id FROM sandboxes").scalar_one())
    dataset = runtime.platform.dataset(sandbox, s.crm)
    return s, dataset, runtime.platform.namespaces(sandbox)


def _decided(d: Any) -> Any:
    """What a decision says, without its transaction id (new for every decision)."""
    if isinstance(d, Problem):
        return ("problem", d.status, d.slug, d.title, d.detail, d.errors, d.extra)
    return ("prepared", d.dataset, d.entity, d.ok, d.violations, d.record_id, d.ts_ms, d.batch_id, d.raw,
            d.blob, d.identity_fields, d.time_series)


def test_a_worker_decides_every_record_as_the_server_process_does(client, runtime, pool):
    _, dataset, nss = _setup(client, runtime)
    compiled = runtime.platform.compiled_for(dataset)
    limits = runtime.settings.limits
    payload = orjson.dumps(_records())
    here = prepare_inline(dataset, compiled, payload, limits, batch_id="b-1")
    there = asyncio.run(pool.prepare(dataset, compiled, payload, limits, namespaces=nss, batch_id="b-1"))
    assert [_decided(d) for d in there] == [_decided(d) for d in here]
    kinds = [("problem", d.status) if isinstance(d, Problem) else d.ok for d in here]
    assert kinds == [True, True, True, True, False, False, ("problem", 413), False, False, True, True]
    assert len({d.xaction_id for d in there if not isinstance(d, Problem)}) == 10  # each its own
    # the identity rules ran in the worker: what passed carries its identities, as the writer
    # would have found them; what did not (or needs a namespace the worker has not seen) is left
    # to the writer, which decides against the namespaces of its own transaction
    for h, t in zip(here, there):
        if isinstance(h, Problem) or not h.ok:
            continue
        found, violations = profiles.record_rules(h, nss, limits)
        assert t.identities == (None if violations else found)
        # and, with the identities, the fragment the writer makes of the record where there is none
        assert t.fragment == (None if violations else profiles.new_fragment_text(h))
        assert h.fragment is None  # inline, the writer works it out
    by_id = {d.record_id: d for d in there if not isinstance(d, Problem)}
    assert [f.ident for f in by_id["ok-1"].identities] == [identity.Ident("CRMID", "c-1"),
                                                         identity.Ident("Email", "ann@example.com")]
    made = merging.upsert(None, dataset_id=dataset.id, ns="CRMID", value="c-1", ts_ms=0, record_id="ok-1",
                          body=profiles._normalised(by_id["ok-1"].entity)).body
    assert orjson.loads(by_id["ok-1"].fragment) == made
    assert made["identityMap"]["Email"] == [{"id": "ann@example.com", "primary": False}]  # normalised
    assert by_id["later-ns"].identities is None and by_id["bad-ecid"].identities is None
    assert by_id["tags"].identities is None and by_id["no-ids"].identities is None


def test_records_decided_in_a_worker_are_stored_as_inline_ones(client, runtime, pool):
    s, dataset, nss = _setup(client, runtime)
    pdg_default(client)
    payload = orjson.dumps(_records())
    compiled = runtime.platform.compiled_for(dataset)
    decided = asyncio.run(pool.prepare(dataset, compiled, payload, runtime.settings.limits, namespaces=nss))
    # a namespace created after the worker's copy was taken: its record is still accepted
    r = client.post("/identity/namespaces", json={"code": "Loyalty", "name": "Loyalty card", "idType": "CROSS_DEVICE"})
    assert r.status_code == 201, r.text
    stored = asyncio.run(runtime.platform.store_records(dataset.sandbox_id,
                                                        [d for d in decided if not isinstance(d, Problem)]))
    outcome = [(s.record_id, s.ok, [v["keyword"] for v in s.violations]) for s in stored]
    assert outcome == [("ok-1", True, []), ("ok-2", True, []), ("later-ns", True, []),
                       ("bad-ecid", False, ["identity"]), ("bad-type", False, ["type"]),
                       (None, False, ["required"]), (None, False, ["type"]), (None, False, ["storage"]),
                       ("tags", False, ["maxItems"]), ("no-ids", False, ["identity"])]
    p = profile(client, "Loyalty", "L-1").json()
    assert sorted(i["namespace"]["code"] for i in p["identities"]) == ["Email", "Loyalty"]
    assert profile(client, "Email", "ann@example.com").json()["entity"]["person"]["name"] == {"firstName": "Ann"}
    failed = client.get(f"/datasets/{s.crm}/failures").json()["items"]
    assert sorted(f["recordId"] or "" for f in failed) == ["", "", "", "bad-ecid", "bad-type", "no-ids", "tags"]


def test_workers_run_below_the_server_s_priority():
    """The writer, ingestion's serial part, gets a core before the workers (`prepare_nice`)."""
    here = os.nice(0)
    p = PreparePool(1, nice=5)
    try:
        p.start("records", "views")
        for kind in ("records", "views"):
            assert p._pools[kind].submit(os.nice, 0).result(timeout=30) == min(here + 5, 19)
    finally:
        p.close()
    from wayline.config import Settings
    assert Settings(_env_file=None).prepare_nice == 8


def test_a_record_decided_in_a_worker_is_parsed_only_where_its_entity_is_read(client, runtime, pool):
    """The server process does not parse what a worker decided: a record that makes a new fragment is
    stored (its change names the entity's fields) without its entity being parsed; one that updates a
    stored fragment is parsed by the writer, and both store what the inline path stores."""
    _, dataset, nss = _setup(client, runtime)
    pdg_default(client)
    compiled = runtime.platform.compiled_for(dataset)
    limits = runtime.settings.limits
    first = [person("n-1", T1, ids(CRMID="n-1", Email="n1@x.io"), person={"name": {"firstName": "Nia"}})]
    decided = asyncio.run(pool.prepare(dataset, compiled, orjson.dumps(first), limits, namespaces=nss))
    (p,) = decided
    assert {f.name for f in dataclasses.fields(p)} <= set(vars(p)) | {"entity"}  # a whole Prepared
    assert p.keys == ("_id", "identityMap", "extSourceSystemAudit", "person") and p.fragment is not None
    assert "_entity" not in vars(p)
    stored = asyncio.run(runtime.platform.store_records(dataset.sandbox_id, decided))
    assert [x.ok for x in stored] == [True]
    assert "_entity" not in vars(p)  # a new fragment: written from the worker's JSON, never parsed here
    change = _last_change(runtime)
    assert change["fields"] == ["extSourceSystemAudit", "identityMap", "person"]
    # a second record of the same fragment, in another request: the writer merges it into the stored one
    later = [person("n-2", T2, ids(CRMID="n-1"), person={"name": {"lastName": "Berg"}})]
    (q,) = asyncio.run(pool.prepare(dataset, compiled, orjson.dumps(later), limits, namespaces=nss))
    assert q.fragment is not None and "_entity" not in vars(q)
    assert asyncio.run(runtime.platform.store_records(dataset.sandbox_id, [q]))[0].ok
    assert "_entity" in vars(q) and q.entity == orjson.loads(q.blob)
    assert profile(client, "CRMID", "n-1").json()["entity"]["person"]["name"] == {"firstName": "Nia", "lastName": "Berg"}


def _last_change(runtime) -> dict[str, Any]:
    got = runtime.store.read_sync(lambda c: c.exec_driver_sql(
        f"SELECT payload FROM outbox WHERE type = '{contracts.PROFILE_CHANGED}' ORDER BY id DESC LIMIT 1").scalar_one())
    return orjson.loads(got) if isinstance(got, str) else got  # (JSONB arrives parsed)


def test_the_records_route_answers_the_same_with_and_without_workers(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    svc = runtime.platform

    def post(prefix: str) -> list[dict[str, Any]]:
        recs = [person(f"{prefix}-{i}", T1, ids(CRMID=f"{prefix}-c{i}", Email=f"{prefix}{i}@X.io"),
                       _wayline={"points": i if i % 7 else "bad"}) for i in range(200)]
        # later records of the same fragments in the same request, newer and older than the first
        recs += [person(f"{prefix}-u{i}", T2 if i % 2 else "2025-12-31T00:00:00Z", ids(CRMID=f"{prefix}-c{i}"),
                        person={"name": {"firstName": f"N{i}"}}, _wayline={"points": -i}) for i in range(1, 20)]
        body = orjson.dumps(recs)
        assert len(body) > 32_768  # large enough for a worker
        r = client.post(f"/datasets/{s.crm}/records", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 207, r.text
        return [{k: v for k, v in item.items() if k not in ("xactionId", "recordId", "failedRecordId")}
                for item in r.json()["results"]]

    inline_pool, svc.prepare_pool = svc.prepare_pool, PreparePool(1)
    svc.prepare_pool.start("records", "views")
    try:
        by_worker = post("wk")
        assert "records" in svc.prepare_pool._pools  # the worker pool did the work
    finally:
        svc.prepare_pool.close()
        svc.prepare_pool = PreparePool(0)
    by_server = post("sv")
    inline_pool.close()
    assert by_worker == by_server
    assert sum(1 for r in by_worker if r.get("validation") == "failed") == 29
    assert profile(client, "Email", "wk3@x.io").json()["entity"]["_wayline"] == {"points": -3}
    assert profile(client, "Email", "wk4@x.io").json()["entity"]["_wayline"] == {"points": 4}

    def stored(prefix: str) -> dict[str, Any]:  # fragments and views, the prefix taken out
        rows = runtime.store.read_sync(lambda c: c.exec_driver_sql(
            "SELECT 'f', i.value, f.body FROM profile_fragments f JOIN identities i ON i.id = f.identity_id "
            "UNION ALL SELECT 'v', i.value, v.body FROM profile_view v JOIN identities i ON i.id = v.key").all())
        return {(kind, value.replace(prefix, "")): orjson.dumps(body).decode().replace(prefix, "")
                if isinstance(body, dict) else body.replace(prefix, "")
                for kind, value, body in rows if value.startswith(prefix)}
    by_worker_rows, by_server_rows = stored("wk"), stored("sv")
    assert len(by_worker_rows) == 2 * 173  # a fragment and a view per profile (two only from a later record)
    assert by_worker_rows == by_server_rows


def test_bad_payloads_are_the_same_problems_from_a_worker(client, runtime, pool):
    _, dataset, nss = _setup(client, runtime)
    compiled = runtime.platform.compiled_for(dataset)
    limits = runtime.settings.limits
    for payload, slug in ((b'[{"_id": ', "malformed-json"), (b'{"_id": "a"}', "bad-message"), (b"", "malformed-json")):
        with pytest.raises(Problem) as inline:
            prepare_inline(dataset, compiled, payload, limits)
        with pytest.raises(Problem) as worker:
            asyncio.run(pool.prepare(dataset, compiled, payload, limits, namespaces=nss))
        assert inline.value.slug == worker.value.slug == slug
        assert (inline.value.status, inline.value.detail) == (worker.value.status, worker.value.detail)


def test_a_dead_worker_loses_nothing_the_request_is_decided_here(client, runtime):
    _, dataset, nss = _setup(client, runtime)
    compiled = runtime.platform.compiled_for(dataset)
    limits = runtime.settings.limits
    payload = orjson.dumps(_records())
    pool = PreparePool(1, min_bytes=0)
    pool.start("records")
    try:
        first = asyncio.run(pool.prepare(dataset, compiled, payload, limits, namespaces=nss))
        executor = pool._pools["records"]
        for proc in list(executor._processes.values()):
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
        again = asyncio.run(pool.prepare(dataset, compiled, payload, limits, namespaces=nss))
        assert [_decided(d) for d in again] == [_decided(d) for d in first]
        assert all(d.identities is None for d in again if not isinstance(d, Problem))  # decided here
        assert "records" not in pool._pools  # the broken pool is gone; the next request starts a new one
        third = asyncio.run(pool.prepare(dataset, compiled, payload, limits, namespaces=nss))
        assert all(d.identities is None for d in third if not isinstance(d, Problem))  # here: it is starting
        assert pool._pools["records"] is not executor
        pool.start("records")
        fourth = asyncio.run(pool.prepare(dataset, compiled, payload, limits, namespaces=nss))
        assert [d.identities for d in fourth if not isinstance(d, Problem)] == [
            d.identities for d in first if not isinstance(d, Problem)]  # by the new worker
        assert [_decided(d) for d in fourth] == [_decided(d) for d in first]
        assert [_decided(d) for d in third] == [_decided(d) for d in first]
    finally:
        pool.close()


def test_small_payloads_and_no_processes_stay_in_the_server_process(client, runtime):
    _, dataset, _ = _setup(client, runtime)
    svc = runtime.platform
    before = svc.prepare_pool
    svc.prepare_pool = PreparePool(1)
    try:
        small = asyncio.run(svc.prepare_many(dataset, orjson.dumps(_records()[:2])))
        assert [d.ok for d in small] == [True, True] and not svc.prepare_pool._pools
        assert all(d.identities is None for d in small)  # the writer runs the identity rules
        svc.prepare_pool = PreparePool(0, min_bytes=0)
        assert not svc.prepare_pool.wanted(10**6)
        assert [d.ok for d in asyncio.run(svc.prepare_many(dataset, orjson.dumps(_records()[:2])))] == [True, True]
    finally:
        svc.prepare_pool.close()
        svc.prepare_pool = before


class _CountingPool(PreparePool):
    """A real pool that counts the units of views it was given (and merged in its worker)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.view_units = 0

    def merge_views(self, groups, policy):
        self.view_units += 1
        return super().merge_views(groups, policy)


T2, T3 = "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"


def _view_units() -> list[list[dict[str, Any]]]:
    """Units that update stored fragments out of order (attribute times kept per leaf), join stored
    graphs, add events, and send union fields from several fragments."""
    return [
        [person("a1", T2, ids(CRMID="a", Email="a@x.io"), person={"name": {"firstName": "Ann"}},
                _wayline={"points": 1, "tags": ["x"]}),
         person("b1", T1, ids(CRMID="b"), person={"gender": "female"})],
        [person("a2", T1, ids(CRMID="a"), person={"name": {"firstName": "Old", "lastName": "Lee"}},
                _wayline={"points": 9}),  # older than a1: only lastName is new
         person("b2", T3, ids(CRMID="b", Phone="+331"), person={"name": {"firstName": "Bea"}}),
         person("c1", T2, ids(Phone="+331", Email="a@x.io"), _wayline={"tags": ["y", "z"]})],  # joins a and b
        [person("a3", T3, ids(CRMID="a"), _wayline={"points": 5}),
         person("d1", T1, ids(Email="d@x.io"), person={"gender": "male"})],
    ]


def _views(runtime) -> dict[int, Any]:
    return runtime.store.read_sync(lambda c: {r[0]: (r[1], r[2]) for r in c.exec_driver_sql(
        "SELECT key, body, event_count FROM profile_view")})


@contextmanager
def _serving(runtime, pool: PreparePool, *kinds: str) -> Iterator[PreparePool]:
    """The service uses `pool` (its workers of `kinds` up) for the block, then its own again."""
    svc = runtime.platform
    before, svc.prepare_pool = svc.prepare_pool, pool
    pool.start(*kinds)
    try:
        yield pool
    finally:
        pool.close()
        svc.prepare_pool = before


def _equal_to_a_rebuild(client, runtime) -> None:
    """The stored views equal every view merged from scratch by the writer itself."""
    stored = _views(runtime)
    runtime.profiles.rebuild(sandbox_id=client.get("/sandbox").json()["sandbox"]["id"], chunk=1)
    assert _views(runtime) == stored


def test_views_merged_in_a_worker_equal_views_merged_here(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    with _serving(runtime, _CountingPool(1, min_views=1), "views") as pool:
        for unit in _view_units():
            r = client.post(f"/datasets/{s.crm}/records", json=unit)
            assert r.status_code == 200 and r.json().get("validation") != "failed", r.text
        put(client, s.events, purchase("e1", T2, ids(Email="d@x.io"), total=3.0))
        assert pool.view_units == 4 and list(pool._pools) == ["views"]
    assert len(_views(runtime)) == 2
    ann = profile(client, "CRMID", "a").json()
    assert ann["entity"]["person"]["name"] == {"firstName": "Bea", "lastName": "Lee"}
    assert ann["entity"]["_wayline"] == {"points": 5, "tags": ["y", "z"]}
    assert profile(client, "Email", "d@x.io").json()["eventCount"] == 1
    _equal_to_a_rebuild(client, runtime)


def test_a_batch_files_views_are_merged_in_a_worker(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    lines = b"".join(orjson.dumps(r) + b"\n" for unit in _view_units() for r in unit)
    with _serving(runtime, _CountingPool(1, min_views=1), "views") as pool:
        b = client.post("/batches", json={"datasetId": s.crm, "inputFormat": {"format": "json"}}).json()
        r = client.put(f"/batches/{b['id']}/datasets/{s.crm}/files/people.json", content=lines,
                       headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        r = client.post(f"/batches/{b['id']}", params={"action": "COMPLETE", "wait": "true"})
        assert r.status_code == 200 and r.json()["status"] == "success", r.text
        assert pool.view_units == 1  # one chunk
    assert profile(client, "CRMID", "a").json()["entity"]["_wayline"] == {"points": 5, "tags": ["y", "z"]}
    _equal_to_a_rebuild(client, runtime)


def test_a_rebuild_merged_in_a_worker_equals_one_merged_by_the_writer(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    for unit in _view_units():
        put(client, s.crm, *unit)
    sandbox = client.get("/sandbox").json()["sandbox"]["id"]

    def rebuilt(pool: PreparePool | None) -> dict[int, Any]:
        runtime.store.write_blocking(lambda c: c.exec_driver_sql("DELETE FROM profile_view"))
        before, runtime.profiles.prepare_pool = runtime.profiles.prepare_pool, pool
        try:
            runtime.profiles.rebuild(sandbox_id=sandbox, chunk=500)
        finally:
            runtime.profiles.prepare_pool = before
        return _views(runtime)

    counting = _CountingPool(1, min_views=1)
    counting.start("views")
    try:
        in_worker = rebuilt(counting)
        assert counting.view_units == 1 and list(counting._pools) == ["views"]
    finally:
        counting.close()
    assert len(in_worker) == 2
    assert in_worker == rebuilt(None)


def test_a_dead_worker_loses_no_view_they_are_merged_here(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    with _serving(runtime, _CountingPool(1, min_views=1), "views") as pool:
        units = _view_units()
        put(client, s.crm, *units[0])
        executor = pool._pools["views"]
        for proc in list(executor._processes.values()):
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
        put(client, s.crm, *units[1])  # merged here
        assert "views" not in pool._pools
        put(client, s.crm, *units[2])  # merged here too while a new worker starts
        assert pool._pools["views"] is not executor and pool.view_units == 2
        pool.start("views")
        put(client, s.crm, person("e1", T3, ids(Email="e@x.io")))  # by the new worker
        assert pool.view_units == 3
    assert profile(client, "Email", "a@x.io").json()["entity"]["person"]["name"] == {"firstName": "Bea",
                                                                                    "lastName": "Lee"}
    _equal_to_a_rebuild(client, runtime)


def test_a_stuck_worker_is_ended_and_its_work_done_here(client, runtime):
    """A worker that answers nothing (stopped) holds up neither a request nor the writer, which holds
    its transaction while it waits for views: past the timeout the work is done in the server and
    the stuck worker is ended."""
    s, dataset, nss = _setup(client, runtime)
    pdg_default(client)
    compiled = runtime.platform.compiled_for(dataset)
    limits = runtime.settings.limits
    stopped = []
    try:
        with _serving(runtime, _CountingPool(1, min_bytes=0, min_views=1, timeout_s=1.0), "records", "views") as pool:
            units = _view_units()
            put(client, s.crm, *units[0])
            first = asyncio.run(pool.prepare(dataset, compiled, orjson.dumps(_records()), limits, namespaces=nss))
            stuck = dict(pool._pools)
            for executor in stuck.values():
                for proc in executor._processes.values():
                    os.kill(proc.pid, signal.SIGSTOP)
                    stopped.append(proc)
            put(client, s.crm, *units[1])  # its records decided and its views merged here, each after a second
            assert not pool._pools  # both stuck pools dropped
            pool.start("records", "views")
            again = asyncio.run(pool.prepare(dataset, compiled, orjson.dumps(_records()), limits, namespaces=nss))
            assert [_decided(d) for d in again] == [_decided(d) for d in first]
            assert pool._pools["records"] is not stuck["records"]  # a new worker decided these
            for proc in stopped:
                proc.join(10)
                assert not proc.is_alive()  # ended, not left behind stopped
            stopped.clear()
            put(client, s.crm, *units[2])  # a new view worker
            assert pool._pools["views"] is not stuck["views"] and pool.view_units == 3
    finally:
        for proc in stopped:  # (only if the test failed before they were seen ended)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
    _equal_to_a_rebuild(client, runtime)


_SERVER = """
import sys
from wayline.platform.prepare_pool import PreparePool
pool = PreparePool(1, min_bytes=0)
pool.start("records")  # the worker is up
ex = pool._pools["records"]
print(*[p.pid for p in ex._processes.values()], flush=True)
sys.stdin.read()
"""


def test_a_killed_server_leaves_no_worker_behind():
    import subprocess
    import sys
    import time

    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        (pid,) = map(int, server.stdout.readline().split())
        assert _running(pid)
        server.kill()
        server.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not _running(pid):
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the worker outlived its server by 20 s")
    finally:
        if server.poll() is None:
            server.kill()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopted it, maybe late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
