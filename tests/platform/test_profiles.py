"""Identity graph and merged profiles through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from tests.platform.profiling import ids, pdg_default, person, profile, purchase, put, setup_profiles
from wayline.platform import tables as t

T1, T2, T3 = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"


def _outbox(runtime) -> list[dict]:
    rows = runtime.store.read_sync(lambda c: c.execute(sa.text(
        "SELECT payload FROM outbox WHERE stream = 'platform.profiles' ORDER BY id")).scalars().all())
    import orjson
    return [r if isinstance(r, dict) else orjson.loads(r) for r in rows]


def test_records_stitch_into_one_profile_merged_by_time(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("c1", T1, ids(CRMID="crm-1", Email="Ann@Example.com"),
                              person={"name": {"firstName": "Ann", "lastName": "Old"}}, _wayline={"tier": "gold"}))
    put(client, s.loyalty, person("l1", T2, ids(Email="ann@example.com", Phone="+331"),
                                  person={"name": {"lastName": "New"}}, _wayline={"points": 5}))
    by_email = profile(client, "Email", "ANN@example.com")
    assert by_email.status_code == 200, by_email.text
    p = by_email.json()
    assert p["entity"]["person"]["name"] == {"firstName": "Ann", "lastName": "New"}
    assert p["entity"]["_wayline"] == {"tier": "gold", "points": 5}
    assert "_id" not in p["entity"]
    assert sorted(i["namespace"]["code"] for i in p["identities"]) == ["CRMID", "Email", "Phone"]
    by_phone = profile(client, "Phone", "+331").json()
    assert by_phone["profileId"] == p["profileId"] and by_phone["entity"] == p["entity"]
    # identityMap entries of both fragments are united, not taken from one
    im = p["entity"]["identityMap"]
    assert [x["id"] for x in im["CRMID"]] == ["crm-1"] and [x["id"] for x in im["Phone"]] == ["+331"]
    assert [x["id"] for x in im["Email"]] == ["ann@example.com"]  # normalised by ingestion
    # explain: which fragment gave each attribute
    ex = profile(client, "CRMID", "crm-1", explain="true").json()
    assert ex["entity"] == p["entity"]
    assert ex["explanation"]["/person/name/lastName"]["datasetId"] == s.loyalty
    assert ex["explanation"]["/person/name/firstName"]["datasetId"] == s.crm
    assert ex["explanation"]["/person/name/firstName"]["identity"] == {"namespace": {"code": "CRMID"}, "id": "crm-1"}
    assert ex["fragmentCount"] == 2
    # fields= keeps only what was asked for
    only = profile(client, "Email", "ann@example.com", fields="person.name.lastName,_wayline.points").json()
    assert only["entity"] == {"person": {"name": {"lastName": "New"}}, "_wayline": {"points": 5}}


def test_without_a_default_policy_nothing_is_stitched(client):
    s = setup_profiles(client)
    put(client, s.crm, person("c1", T1, ids(CRMID="crm-1", Email="ann@example.com"), person={"gender": "female"}))
    put(client, s.loyalty, person("l1", T2, ids(Email="ann@example.com"), _wayline={"points": 5}))
    # the graph is still built ...
    g = client.get("/identity/graph", params={"namespace": "Email", "id": "ann@example.com"}).json()
    assert g["size"] == 2
    # ... but a profile is only its own identity's fragments
    assert profile(client, "Email", "ann@example.com").json()["entity"] == {
        "_wayline": {"points": 5}, "identityMap": {"Email": [{"id": "ann@example.com", "primary": True}]},
        "extSourceSystemAudit": {"lastUpdatedDate": T2}}
    crm = profile(client, "CRMID", "crm-1").json()["entity"]
    assert crm["person"] == {"gender": "female"} and "_wayline" not in crm
    # an explicit pdg policy stitches on read
    pid = client.post("/config/mergePolicies", json={
        "name": "pdg", "schema": {"name": "_xdm.context.profile"}, "identityGraph": {"type": "pdg"},
        "attributeMerge": {"type": "timestampOrdered"}}).json()["id"]
    merged = profile(client, "CRMID", "crm-1", mergePolicyId=pid).json()["entity"]
    assert merged["person"] == {"gender": "female"} and merged["_wayline"] == {"points": 5}


def test_dataset_precedence_beats_time(client):
    s = setup_profiles(client)
    pdg_default(client, attributeMerge={"type": "dataSetPrecedence", "order": [s.crm, s.loyalty]})
    put(client, s.crm, person("c1", T1, ids(Email="b@x.io"), person={"gender": "female"}, _wayline={"tier": "gold"}))
    put(client, s.loyalty, person("l1", T3, ids(Email="b@x.io", CRMID="9"), person={"gender": "male"},
                                  _wayline={"points": 1}))
    e = profile(client, "CRMID", "9", explain="true").json()
    assert e["entity"]["person"]["gender"] == "female"  # crm first, although older
    assert e["entity"]["_wayline"] == {"tier": "gold", "points": 1}  # only loyalty has points
    assert e["explanation"]["/_wayline/points"]["datasetId"] == s.loyalty
    # switching the policy to time order changes the answer for the stored view as well
    pol = client.get("/config/mergePolicies").json()["items"][0]
    r = client.patch(f"/config/mergePolicies/{pol['id']}", json={"attributeMerge": {"type": "timestampOrdered"}})
    assert r.status_code == 200, r.text
    assert profile(client, "Email", "b@x.io").json()["entity"]["person"]["gender"] == "male"


def test_bad_identities_fail_the_record_and_keep_it(client):
    s = setup_profiles(client)
    bad = [
        person("u1", T1, {"Nope": [{"id": "x"}]}),
        person("u2", T1, {"ECID": [{"id": "1" * 37}]}),
        person("u3", T1, {"Email": [{"id": "null"}]}),
        person("u4", T1, {"Email": [{"id": ""}]}),
        person("u5", T1, {"CRMID": [{"id": str(i)} for i in range(21)]}),
        person("u6", T1, {"Email": [{"id": "a" * 1025}]}),
        person("u7", T1, {}),
        person("u8", T1, ids(Email="ok@x.io"), _wayline={"tags": ["t"] * 501}),
        person("u9", T1, ids(Email="ok2@x.io"), _wayline={"tags": [""] * 501}),  # the shortest such JSON
    ]
    out = put(client, s.crm, *bad, status=207)
    assert out["failed"] == len(bad)
    msgs = {r["recordId"]: r["violations"] for r in out["results"]}
    assert "Nope" in msgs["u1"][0]["message"] and msgs["u1"][0]["pointerToViolation"].startswith("/identityMap/Nope")
    assert "38" in msgs["u2"][0]["message"]
    assert msgs["u5"][0]["message"] and "20" in msgs["u5"][0]["message"]
    assert msgs["u8"][0]["keyword"] == "maxItems" and msgs["u9"][0]["keyword"] == "maxItems"
    failures = client.get(f"/datasets/{s.crm}/failures").json()["items"]
    assert len(failures) == len(bad)
    # nothing of them reached the graph or the records
    assert client.get(f"/datasets/{s.crm}/records").json()["items"] == []
    assert client.get("/identity/graph", params={"namespace": "Email", "id": "ok@x.io"}).status_code == 404
    # synchronous validation answers 400 with the identity violation
    r = client.post(f"/datasets/{s.crm}/records?syncValidation=true", json=person("u9", T1, {"ECID": [{"id": "x"}]}))
    assert r.status_code == 400 and r.json()["violations"][0]["keyword"] == "identity"
    # a correction and a replay brings the record in
    fid = next(f["id"] for f in failures if f["recordId"] == "u2")
    r = client.put(f"/datasets/{s.crm}/failures/{fid}", json=person("u2", T1, {"ECID": [{"id": "1" * 38}]}))
    assert r.status_code in (200, 204), r.text
    r = client.post(f"/datasets/{s.crm}/failures/replay", json={"ids": [fid]})
    assert r.status_code == 200 and r.json()["replayed"] == 1, r.text
    assert profile(client, "ECID", "1" * 38).status_code == 200


def test_unknown_namespace_and_missing_profile_in_lookups(client):
    setup_profiles(client)
    r = profile(client, "Nope", "x")
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "query:/entityIdNS"
    assert profile(client, "Email", "nobody@x.io").status_code == 404
    r = client.get("/profiles", params={"entityIdNS": "Email"})
    assert r.status_code in (400, 422)


def test_custom_namespaces(client):
    r = client.post("/identity/namespaces", json={"code": "LoyaltyId", "name": "Loyalty", "idType": "CROSS_DEVICE"})
    assert r.status_code == 201 and r.json()["id"] >= 1_000_000 and r.json()["custom"] is True
    assert client.post("/identity/namespaces", json={"code": "LoyaltyId", "name": "again",
                                                     "idType": "CROSS_DEVICE"}).status_code == 409
    assert client.post("/identity/namespaces", json={"code": "Email", "name": "x", "idType": "EMAIL"}).status_code in (409, 422)
    bad = client.post("/identity/namespaces", json={"code": "ok", "name": "x", "idType": "SPACESHIP"})
    assert bad.status_code == 422 and any(e["pointer"] == "/idType" for e in bad.json()["errors"])
    codes = [n["code"] for n in client.get("/identity/namespaces").json()["items"]]
    assert codes[:2] == ["ECID", "Email"] and "LoyaltyId" in codes and "GAID" in codes
    assert client.get("/identity/namespaces/LoyaltyId").json()["idType"] == "CROSS_DEVICE"
    assert client.get("/identity/namespaces/nope").status_code == 404


def test_graph_limit_removes_the_oldest_visibly(client, runtime):
    runtime.settings.limits.identity_graph_limit = 3
    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("a", T1, ids(CRMID="1", Email="a@x.io")))
    put(client, s.crm, person("b", T2, ids(CRMID="1", Phone="+1")))
    put(client, s.crm, person("c", T3, ids(CRMID="1", ECID="2" * 38)))
    g = client.get("/identity/graph", params={"namespace": "CRMID", "id": "1"}).json()
    assert g["size"] == 3
    assert {m["namespace"]["code"] for m in g["members"]} == {"CRMID", "Phone", "ECID"}
    evict = [e for e in g["events"] if e["kind"] == "evict"]
    assert evict and evict[0]["detail"]["identities"] == [{"namespace": "Email", "id": "a@x.io"}]
    # the evicted identity stands alone, with its own data
    alone = client.get("/identity/graph", params={"namespace": "Email", "id": "a@x.io"}).json()
    assert alone["size"] == 1 and alone["graphId"] != g["graphId"]
    changes = [m for m in _outbox(runtime) if "overflow" in m["changes"]]
    assert changes


def test_experience_events_of_a_profile_across_its_graph(client):
    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("c1", T1, ids(CRMID="7", Email="e@x.io")))
    put(client, s.events, *[purchase(f"p{i}", f"2026-01-0{i + 1}T00:00:00Z",
                                     ids(Email="e@x.io") if i % 2 else ids(CRMID="7"), total=i) for i in range(5)])
    r = client.get("/profiles/events", params={"entityIdNS": "Email", "entityId": "e@x.io", "limit": 2}).json()
    assert [e["recordId"] for e in r["items"]] == ["p0", "p1"] and r["next"]
    r2 = client.get("/profiles/events", params={"entityIdNS": "Email", "entityId": "e@x.io", "limit": 2,
                                                 "cursor": r["next"]}).json()
    assert [e["recordId"] for e in r2["items"]] == ["p2", "p3"]
    win = client.get("/profiles/events", params={"entityIdNS": "CRMID", "entityId": "7",
                                                  "start": "2026-01-02T00:00:00Z", "end": "2026-01-04T00:00:00Z"}).json()
    assert [e["recordId"] for e in win["items"]] == ["p1", "p2"]
    assert win["items"][0]["entity"]["commerce"]["order"]["priceTotal"] == 1
    p = profile(client, "CRMID", "7").json()
    assert p["eventCount"] == 5 and p["eventsOverLimit"] is False
    bad = client.get("/profiles/events", params={"entityIdNS": "CRMID", "entityId": "7", "start": "yesterday"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["pointer"] == "query:/start"
    assert client.get("/profiles/events", params={"entityIdNS": "CRMID", "entityId": "7",
                                                   "cursor": "nonsense"}).status_code == 400


def test_event_limit_is_flagged_not_dropped(client, runtime):
    runtime.settings.limits.max_events_per_profile = 3
    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.events, *[purchase(f"p{i}", f"2026-01-0{i + 1}T00:00:00Z", ids(Email="f@x.io")) for i in range(5)])
    p = profile(client, "Email", "f@x.io").json()
    assert p["eventCount"] == 5 and p["eventsOverLimit"] is True
    r = client.get("/profiles/events", params={"entityIdNS": "Email", "entityId": "f@x.io"}).json()
    assert len(r["items"]) == 5


def test_privacy_delete_of_a_profile_leaves_nothing(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("c1", T1, ids(CRMID="5", Email="d@x.io"), person={"gender": "male"}))
    put(client, s.loyalty, person("l1", T2, ids(Email="d@x.io", Phone="+5")))
    put(client, s.events, purchase("p1", T2, ids(Phone="+5")))
    put(client, s.crm, person("other", T1, ids(Email="keep@x.io")))
    r = client.delete("/profiles", params={"entityIdNS": "Phone", "entityId": "+5"})
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == {"identities": 3, "fragments": 2, "records": 2, "events": 1}
    for ns, v in (("CRMID", "5"), ("Email", "d@x.io"), ("Phone", "+5")):
        assert profile(client, ns, v).status_code == 404
        assert client.get("/identity/graph", params={"namespace": ns, "id": v}).status_code == 404

    def left(c):
        return {name: c.execute(sa.select(sa.func.count()).select_from(tbl)).scalar_one()
                for name, tbl in (("identities", t.identities), ("fragments", t.profile_fragments),
                                  ("records", t.records), ("index", t.profile_records), ("view", t.profile_view),
                                  ("links", t.identity_links))}
    assert runtime.store.read_sync(left) == {"identities": 1, "fragments": 1, "records": 1, "index": 1, "view": 1,
                                             "links": 0}
    assert profile(client, "Email", "keep@x.io").status_code == 200
    audit = client.get("/audit", params={"resourceType": "profile"}).json()["items"][0]
    assert audit["action"] == "privacy-delete" and "d@x.io" not in str(audit)
    assert _outbox(runtime)[-1]["changes"] == ["delete"]
    assert client.delete("/profiles", params={"entityIdNS": "Phone", "entityId": "+5"}).status_code == 404


def test_deleting_an_identity_splits_its_graph(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    # Email -- CRMID -- Phone: CRMID is the bridge
    put(client, s.crm, person("a", T1, ids(CRMID="9", Email="s@x.io"), person={"gender": "male"}))
    put(client, s.loyalty, person("b", T2, ids(Phone="+9", CRMID="9"), _wayline={"points": 3}))
    before = profile(client, "Email", "s@x.io").json()
    assert before["entity"]["_wayline"] == {"points": 3}
    r = client.delete("/identity/graph", params={"namespace": "CRMID", "id": "9"})
    assert r.status_code == 200 and r.json()["remainingGraphs"] == 2, r.text
    e = client.get("/identity/graph", params={"namespace": "Email", "id": "s@x.io"}).json()
    p = client.get("/identity/graph", params={"namespace": "Phone", "id": "+9"}).json()
    assert e["size"] == 1 and p["size"] == 1 and e["graphId"] != p["graphId"]
    # CRMID was the primary identity of record "a": that fragment went with it
    assert profile(client, "Email", "s@x.io").status_code == 404
    assert profile(client, "Phone", "+9").json()["entity"]["_wayline"] == {"points": 3}


def test_profile_changes_go_on_the_bus(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("a", T1, ids(Email="m@x.io")))
    put(client, s.crm, person("b", T1, ids(CRMID="m")))
    put(client, s.loyalty, person("c", T2, ids(CRMID="m", Email="m@x.io")))
    put(client, s.events, purchase("p", T2, ids(CRMID="m")))
    msgs = _outbox(runtime)
    assert [m["changes"] for m in msgs] == [["fragment"], ["fragment"], ["fragment", "link"], ["event"]]
    merged = msgs[2]
    assert len({m["profileId"] for m in msgs[:2]}) == 2
    assert merged["previousProfileIds"] and set(merged["previousProfileIds"]) | {merged["profileId"]} == \
        {msgs[0]["profileId"], msgs[1]["profileId"]}
    assert msgs[3]["profileId"] == merged["profileId"]
    from wayline.platform.contracts import parse
    assert all(parse("platform.profile.changed", m).sandboxId for m in msgs)


def test_duplicate_records_change_nothing(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    rec = person("a", T1, ids(Email="dup@x.io"), _wayline={"points": 1})
    put(client, s.crm, rec)
    n = len(_outbox(runtime))
    out = put(client, s.crm, rec)
    assert out["results"][0]["duplicate"] is True
    assert len(_outbox(runtime)) == n


def test_merge_policies_crud_and_one_default(client):
    s = setup_profiles(client)
    a = pdg_default(client)
    b = pdg_default(client, name="second")
    items = {p["id"]: p for p in client.get("/config/mergePolicies").json()["items"]}
    assert items[b["id"]]["default"] is True and items[a["id"]]["default"] is False
    bad = client.post("/config/mergePolicies", json={
        "name": "", "schema": {"name": "nope"}, "identityGraph": {"type": "x"},
        "attributeMerge": {"type": "dataSetPrecedence", "order": ["ds_nope"]}})
    assert bad.status_code == 422
    assert {e["pointer"] for e in bad.json()["errors"]} == {"/name", "/schema/name", "/identityGraph/type",
                                                           "/attributeMerge/order/0"}
    r = client.put(f"/config/mergePolicies/{a['id']}", json={
        "name": "precedence", "schema": {"name": "_xdm.context.profile"}, "identityGraph": {"type": "none"},
        "attributeMerge": {"type": "dataSetPrecedence", "order": [s.loyalty, s.crm]}})
    assert r.status_code == 200 and r.json()["attributeMerge"]["order"] == [s.loyalty, s.crm]
    assert r.json()["version"] == items[a["id"]]["version"] + 1
    assert client.delete(f"/config/mergePolicies/{a['id']}").status_code == 204
    assert client.get(f"/config/mergePolicies/{a['id']}").status_code == 404
    audit = client.get("/audit", params={"resourceType": "mergePolicy"}).json()["items"]
    assert {x["action"] for x in audit} >= {"create", "update", "delete"}


def test_profile_cli_get_explain_graph_and_rebuild(client, db_url, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from wayline.cli import app

    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("c1", T1, ids(CRMID="c-1", Email="ann@example.com"), person={"gender": "female"}))
    put(client, s.loyalty, person("l1", T2, ids(Email="ann@example.com"), _wayline={"points": 7}))
    put(client, s.events, purchase("p1", T2, ids(Email="ann@example.com")))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WAYLINE_CONFIG", raising=False)
    monkeypatch.setenv("WAYLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("WAYLINE_LOG_LEVEL", "warning")
    monkeypatch.setenv("COLUMNS", "220")
    run = CliRunner()
    r = run.invoke(app, ["profile", "get", "--ns", "Email", "--id", "ANN@example.com", "--explain"])
    assert r.exit_code == 0, r.output
    assert "/person/gender" in r.output and "female" in r.output and s.crm in r.output
    assert "/_wayline/points" in r.output and s.loyalty in r.output and "1 event(s)" in r.output
    r = run.invoke(app, ["profile", "get", "--ns", "CRMID", "--id", "c-1", "--json", "--fields", "_wayline"])
    assert r.exit_code == 0 and '"points": 7' in r.output and "gender" not in r.output
    r = run.invoke(app, ["profile", "graph", "--ns", "CRMID", "--id", "c-1"])
    assert r.exit_code == 0 and "ann@example.com" in r.output and "2 identities" in r.output
    r = run.invoke(app, ["profile", "get", "--ns", "Email", "--id", "nobody@x.io"])
    assert r.exit_code == 1 and "Profile not found" in r.output
    r = run.invoke(app, ["profile", "rebuild"])
    assert r.exit_code == 0 and "rebuilt" in r.output


def test_segmentation_sees_only_the_newest_events_beyond_the_limit(client, runtime):
    from wayline.platform import profiles
    from wayline.platform.identity import Ident

    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.events, *[purchase(f"p{i}", f"2026-01-0{i + 1}T00:00:00Z", ids(Email="g@x.io")) for i in range(5)])
    sandbox = client.get("/sandbox").json()["sandbox"]["id"]

    def q(c):
        eff = profiles.default_policy(c, sandbox)
        return profiles.segmentation_events(c, sandbox, Ident("Email", "g@x.io"), eff, max_events=3)
    assert [e["_id"] for e in runtime.store.read_sync(q)] == ["p2", "p3", "p4"]


def test_concurrent_writers_stitch_one_consistent_graph(client, runtime):
    """Units on several writer threads (PostgreSQL has four) linking one chain of identities."""
    import asyncio
    import random

    from wayline.kernel.store import now_ms
    from wayline.platform import ingestion

    s = setup_profiles(client)
    pdg_default(client)
    svc = runtime.platform
    dataset = svc.dataset(client.get("/sandbox").json()["sandbox"]["id"], s.crm)
    recs = [person(f"r{k}", f"2026-01-{k % 28 + 1:02d}T00:00:00Z", ids(CRMID=f"c{k}", Phone=f"+{k + 1}"),
                   _wayline={"points": k}) for k in range(24)]
    recs += [person(f"q{k}", T1, ids(Phone=f"+{k + 1}", CRMID=f"c{k + 1}")) for k in range(23)]
    random.Random(7).shuffle(recs)
    prepared = [p for p in svc.prepare_records(dataset, recs)]

    async def go():
        await asyncio.gather(*(runtime.store.write(
            lambda c, p=p: ingestion.store_prepared(c, "", [p], now_ms(), svc.limits)) for p in prepared))
    asyncio.run(go())
    g = client.get("/identity/graph", params={"namespace": "CRMID", "id": "c0"}).json()
    assert g["size"] == 48
    p = profile(client, "Phone", "+24").json()
    assert p["profileId"] == g["graphId"]
    assert p["entity"] == profile(client, "CRMID", "c3", explain="true").json()["entity"]
    sandbox = client.get("/sandbox").json()["sandbox"]["id"]
    view = runtime.store.read_sync(lambda c: c.execute(sa.select(t.profile_view.c.key, t.profile_view.c.body)
                                                       .where(t.profile_view.c.sandbox_id == sandbox)).all())
    assert len(view) == 1 and str(view[0].key) == g["graphId"]


def test_one_change_event_names_the_fields_of_every_record_of_the_unit(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    # one request, one unit: two records of one person with different fields, then a merge into it
    put(client, s.crm, person("f1", T1, ids(CRMID="31", Email="f@x.io"), person={"gender": "male"}),
        person("f2", T2, ids(CRMID="31"), _wayline={"points": 4}))
    events = [m for m in _outbox(runtime) if m["recordId"] in ("f1", "f2")]
    assert len(events) == 1 and events[0]["recordId"] == "f2"
    assert {"person", "_wayline", "identityMap"} <= set(events[0]["fields"])
    put(client, s.loyalty, person("g1", T1, ids(Phone="+31"), homeAddress={"city": "Lyon"}),
        person("g2", T2, ids(Phone="+31", Email="f@x.io"), personalEmail={"address": "f@x.io"}))
    merged = [m for m in _outbox(runtime) if m["recordId"] in ("g1", "g2")]
    assert len(merged) == 1 and "link" in merged[0]["changes"]
    assert {"homeAddress", "personalEmail"} <= set(merged[0]["fields"])


def test_profile_changes_are_ordered_per_identity_by_keys_that_sort_by_first_sight(client, runtime):
    """The profile stream's ordering key: the sandbox and the identity the change came through, led
    by the identity's id, so that keys sort by first sight (a new identity's messages append to the
    outbox's key index). Per key, sequence numbers count 1, 2, 3…; a privacy delete's messages keep
    the deleted identity's key, and the identity seen again later is a new key, numbered from 1."""
    s = setup_profiles(client)
    pdg_default(client)

    def messages() -> list[tuple[str, int, dict]]:
        import orjson
        rows = runtime.store.read_sync(lambda c: c.execute(sa.text(
            "SELECT key, seq, payload FROM outbox WHERE stream = 'platform.profiles' ORDER BY id")).all())
        return [(k, q, p if isinstance(p, dict) else orjson.loads(p)) for k, q, p in rows]

    def identity_id(ns: str, value: str) -> int:
        return runtime.store.read_sync(lambda c: c.execute(sa.select(t.identities.c.id).where(
            t.identities.c.ns == ns, t.identities.c.value == value)).scalar_one())

    sandbox = client.get("/sandbox").json()["sandbox"]["id"]
    put(client, s.crm, person("z", T1, ids(Email="Zed@x.io")))  # first seen: the smallest id
    put(client, s.crm, person("a", T1, ids(Email="amy@x.io")))
    put(client, s.crm, person("a2", T2, ids(Email="amy@x.io"), person={"gender": "female"}))
    put(client, s.loyalty, person("b", T2, ids(Phone="+7", Email="amy@x.io")))  # through Phone: its own key
    zed, amy, phone = identity_id("Email", "zed@x.io"), identity_id("Email", "amy@x.io"), identity_id("Phone", "+7")
    assert zed < amy < phone
    got = messages()
    assert [(k, q) for k, q, _ in got] == [
        (f"{sandbox}|{zed:015d}|Email|zed@x.io", 1), (f"{sandbox}|{amy:015d}|Email|amy@x.io", 1),
        (f"{sandbox}|{amy:015d}|Email|amy@x.io", 2), (f"{sandbox}|{phone:015d}|Phone|+7", 1)]
    assert sorted(k for k, _, _ in got) == [k for k, _, _ in got]  # first sight order is key order
    # a privacy delete: its message keeps the key of the identity it came through
    assert client.delete("/profiles", params={"entityIdNS": "Email", "entityId": "zed@x.io"}).status_code == 200
    key, seq, payload = messages()[-1]
    assert (key, seq, payload["changes"]) == (f"{sandbox}|{zed:015d}|Email|zed@x.io", 2, ["delete"])
    # seen again: a new identity, a new key, numbered from 1 (consumers' marks of the old key do not apply)
    put(client, s.crm, person("z2", T3, ids(Email="zed@x.io")))
    again = identity_id("Email", "zed@x.io")
    assert again > phone
    assert [(k, q) for k, q, _ in messages()[-1:]] == [(f"{sandbox}|{again:015d}|Email|zed@x.io", 1)]
    # deleting one identity of a graph splits it: the remaining part's change is keyed by its own identity
    assert client.delete("/identity/graph", params={"namespace": "Email", "id": "amy@x.io"}).status_code == 200
    tail = [(k, q, p["changes"]) for k, q, p in messages()[-2:]]
    assert tail == [(f"{sandbox}|{phone:015d}|Phone|+7", 2, ["unlink"]), (f"{sandbox}|{amy:015d}|Email|amy@x.io", 3, ["delete"])]


def test_a_record_with_a_nul_is_kept_as_failed_and_the_rest_of_the_request_stored(client):
    # PostgreSQL stores no NUL in jsonb: such a record becomes a failed record of its own (escaped),
    # on both databases, small requests and ones large enough for a prepare worker alike
    s = setup_profiles(client)
    for n in (2, 200):
        records = [person(f"r{n}-{i}", "2026-01-01T00:00:00Z", ids(Email=f"m{n}-{i}@x.io"),
                          person={"name": {"lastName": "x" * 300}}) for i in range(n)]
        records[1]["person"]["name"]["firstName"] = "A\u0000"
        r = client.post(f"/datasets/{s.crm}/records", json=records)
        assert r.status_code == 207, r.text
        body = r.json()
        assert (body["accepted"], body["failed"]) == (n - 1, 1), r.text
        assert body["results"][1]["validation"] == "failed", r.text
        assert body["results"][1]["violations"][0]["keyword"] == "storage", r.text
        assert profile(client, "Email", f"m{n}-0@x.io").status_code == 200
        assert profile(client, "Email", f"m{n}-1@x.io").status_code == 404
    failed = client.get(f"/datasets/{s.crm}/failures").json()["items"]
    assert len(failed) == 2 and all("u0000" in f["raw"] for f in failed)
