"""Segments: definitions, streaming and batch evaluation, membership, previews, exports."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa

from tests.platform.profiling import ids, pdg_default, person, profile, purchase, put, setup_profiles
from wayline.kernel.problems import Problem

T1, T2, T3 = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"


def seg(client, pql: str, *, continuous: bool = False, batch: bool = True, status: int = 201, **extra):
    r = client.post("/segment/definitions", json={
        "name": pql[:40], "expression": {"type": "PQL", "format": "pql/text", "value": pql},
        "evaluationInfo": {"batch": {"enabled": batch}, "continuous": {"enabled": continuous}},
        "schema": {"name": "_xdm.context.profile"}, **extra})
    assert r.status_code == status, r.text
    return r.json()


def qualifications(runtime) -> list[dict]:
    rows = runtime.store.read_sync(lambda c: c.execute(sa.text(
        "SELECT payload FROM outbox WHERE stream = 'platform.segments' ORDER BY id")).scalars().all())
    return [r if isinstance(r, dict) else orjson.loads(r) for r in rows]


def members(client, segment_id: str, **params) -> dict[str, str]:
    r = client.get(f"/segment/definitions/{segment_id}/members", params=params)
    assert r.status_code == 200, r.text
    return {m["identity"]["id"]: m["status"] for m in r.json()["items"]}


def test_definitions_are_checked_before_they_are_saved(client, runtime):
    setup_profiles(client)
    pdg_default(client)
    bad = seg(client, '_wayline.points >= ', status=422)
    assert bad["errors"][0]["pointer"] == "/expression/value" and "line 1" in bad["errors"][0]["detail"]
    unknown = seg(client, '_wayline.nope = 1', status=422)
    assert "nope" in unknown["errors"][0]["detail"]
    wrong = seg(client, 'person.name.firstName > 5', status=422)
    assert wrong["errors"][0]["pointer"] == "/expression/value"
    assert seg(client, 'inSegment("seg_nope")', status=422)["errors"]
    r = client.post("/segment/definitions", json={"name": "x", "expression": {"type": "SQL", "value": "1"}})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/expression/type"
    a = seg(client, '_wayline.points >= 5')
    b = seg(client, f'inSegment("{a["id"]}") and person.gender = "female"')
    assert b["dependencies"] == [a["id"]] and "C10" in b["labels"]
    # a cycle through inSegment is refused
    r = client.patch(f"/segment/definitions/{a['id']}",
                     json={"expression": {"type": "PQL", "format": "pql/text", "value": f'inSegment("{b["id"]}")'}})
    assert r.status_code == 422 and "cycle" in r.json()["title"].lower()
    # a segment in use cannot be deleted
    assert client.delete(f"/segment/definitions/{a['id']}").status_code == 409
    runtime.settings.limits.max_continuous_segments = 0
    r = seg(client, '_wayline.points >= 1', continuous=True, status=422)
    assert r["errors"][0]["pointer"] == "/evaluationInfo/continuous/enabled"
    runtime.settings.limits.max_segments = 2
    assert seg(client, '_wayline.points >= 1', status=422)["title"] == "Too many segments"


def test_streaming_segments_follow_profile_changes(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    gold = seg(client, '_wayline.points >= 5', continuous=True)
    buyers = seg(client, 'xEvent[eventType = "commerce.purchases"].count() > 1', continuous=True)
    put(client, s.crm, person("a1", T1, ids(Email="ann@x.io"), _wayline={"points": 3}))
    runtime.backbone.run_until_idle()
    assert members(client, gold["id"]) == {}
    put(client, s.crm, person("a2", T2, ids(Email="ann@x.io"), _wayline={"points": 7}))
    runtime.backbone.run_until_idle()
    assert members(client, gold["id"]) == {"ann@x.io": "realized"}
    q = qualifications(runtime)
    assert [(x["segmentId"], x["status"]) for x in q] == [(gold["id"], "realized")]
    assert q[0]["identity"] == {"namespace": "Email", "id": "ann@x.io"}
    # the profile shows its membership
    sm = profile(client, "Email", "ann@x.io").json()["entity"]["segmentMembership"]["ups"]
    assert sm[gold["id"]]["status"] == "realized"
    put(client, s.events, purchase("p1", T2, ids(Email="ann@x.io")))
    runtime.backbone.run_until_idle()
    assert members(client, buyers["id"]) == {}
    put(client, s.events, purchase("p2", T3, ids(Email="ann@x.io")))
    runtime.backbone.run_until_idle()
    assert members(client, buyers["id"]) == {"ann@x.io": "realized"}
    put(client, s.crm, person("a3", T3, ids(Email="ann@x.io"), _wayline={"points": 1}))
    runtime.backbone.run_until_idle()
    assert members(client, gold["id"]) == {}
    assert members(client, gold["id"], status="exited") == {"ann@x.io": "exited"}
    assert [x["status"] for x in qualifications(runtime) if x["segmentId"] == gold["id"]] == ["realized", "exited"]
    # a privacy delete exits every segment
    client.delete("/profiles", params={"entityIdNS": "Email", "entityId": "ann@x.io"})
    runtime.backbone.run_until_idle()
    assert members(client, buyers["id"]) == {}


def test_streaming_segments_of_segments_see_the_same_changes_moves(client, runtime):
    """One profile change re-evaluates dependants after what they depend on, and they see its new
    membership (the handler shares one evaluation context until a membership moves)."""
    s = setup_profiles(client)
    pdg_default(client)
    female = seg(client, 'person.gender = "female"', continuous=True)
    gold = seg(client, '_wayline.points >= 5', continuous=True)
    gold_women = seg(client, f'inSegment("{gold["id"]}") and inSegment("{female["id"]}")', continuous=True)
    not_gold = seg(client, f'not inSegment("{gold["id"]}")', continuous=True)
    put(client, s.crm, person("a1", T1, ids(Email="eve@x.io"), person={"gender": "female"}, _wayline={"points": 7}))
    runtime.backbone.run_until_idle()
    assert {k: members(client, x["id"]) for k, x in [("f", female), ("g", gold), ("gw", gold_women),
                                                         ("ng", not_gold)]} == {
        "f": {"eve@x.io": "realized"}, "g": {"eve@x.io": "realized"}, "gw": {"eve@x.io": "realized"}, "ng": {}}
    put(client, s.crm, person("a2", T2, ids(Email="eve@x.io"), person={"gender": "female"}, _wayline={"points": 1}))
    runtime.backbone.run_until_idle()
    assert members(client, gold["id"]) == {} and members(client, gold_women["id"]) == {}
    assert members(client, not_gold["id"]) == {"eve@x.io": "realized"}
    assert members(client, female["id"]) == {"eve@x.io": "existing"}
    moves = [(x["segmentId"], x["status"]) for x in qualifications(runtime)]
    assert moves.count((gold_women["id"], "realized")) == 1 and moves.count((gold_women["id"], "exited")) == 1
    assert (not_gold["id"], "exited") not in moves


def test_merged_profiles_keep_their_memberships(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    gold = seg(client, '_wayline.points >= 5', continuous=True)
    put(client, s.crm, person("a", T1, ids(CRMID="1"), _wayline={"points": 9}))
    runtime.backbone.run_until_idle()
    put(client, s.loyalty, person("b", T2, ids(Email="m@x.io")))
    put(client, s.loyalty, person("c", T2, ids(Email="m@x.io", CRMID="1")))
    runtime.backbone.run_until_idle()
    rows = client.get(f"/segment/definitions/{gold['id']}/members").json()["items"]
    assert len(rows) == 1 and rows[0]["status"] in ("realized", "existing")
    assert rows[0]["profileId"] == profile(client, "Email", "m@x.io").json()["profileId"]
    assert [x["status"] for x in qualifications(runtime)] == ["realized"]  # no exit and re-entry for a merge


def test_batch_jobs_segment_of_segments_preview_and_export(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    for n, (pts, gender) in enumerate([(1, "male"), (6, "female"), (8, "male"), (9, "female")]):
        put(client, s.crm, person(f"r{n}", T1, ids(Email=f"p{n}@x.io"), _wayline={"points": pts},
                                  person={"gender": gender}))
    gold = seg(client, '_wayline.points >= 5')
    women = seg(client, f'inSegment("{gold["id"]}") and person.gender = "female"')
    r = client.post("/segment/jobs?wait=true", json={"segments": [{"segmentId": "*"}]})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "SUCCEEDED" and job["counts"][gold["id"]]["realized"] == 3
    assert job["counts"][women["id"]]["profiles"] == 2 and job["durationMs"] is not None
    assert client.get(f"/segment/jobs/{job['id']}").json()["status"] == "SUCCEEDED"
    assert members(client, women["id"]) == {"p1@x.io": "realized", "p3@x.io": "realized"}
    # the next run: still in → existing; someone drops out → exited
    put(client, s.crm, person("r1b", T2, ids(Email="p1@x.io"), _wayline={"points": 2}))
    runtime.segments.evaluate(sandbox_id=client.get("/sandbox").json()["sandbox"]["id"], segment_ids=None)
    assert members(client, women["id"], status="realized,existing,exited") == {"p1@x.io": "exited",
                                                                                "p3@x.io": "existing"}
    # preview of an unsaved definition
    pv = client.post("/segment/preview", json={"expression": {"type": "PQL", "format": "pql/text",
                                                               "value": 'person.gender = "male"'}}).json()
    assert pv["count"] == 2 and len(pv["sample"]) == 2
    bad = client.post("/segment/preview", json={"expression": {"value": "person.gender ="}})
    assert bad.status_code == 422
    # exports
    e = client.post("/segment/exports", json={"segmentId": gold["id"], "format": "jsonl",
                                              "fields": ["_wayline.points"]})
    assert e.status_code == 201, e.text
    lines = [orjson.loads(x) for x in client.get(e.json()["file"]).content.splitlines()]
    assert sorted(x["entity"]["_wayline"]["points"] for x in lines) == [8, 9]
    c = client.post("/segment/exports", json={"segmentId": gold["id"], "format": "csv",
                                              "fields": ["_wayline.points", "person.gender"]}).json()
    text = client.get(c["file"]).text.splitlines()
    assert text[0].startswith("profileId,namespace,id,status") and len(text) == 3
    assert client.post("/segment/jobs", json={"segments": [{"segmentId": "seg_nope"}]}).status_code == 404
    assert client.post("/segment/jobs", json={"segments": []}).status_code == 422
    assert client.get(f"/segment/definitions/{gold['id']}/members", params={"status": "gone"}).status_code == 400


def test_batch_runs_count_who_entered_and_left_with_and_without_events(client, runtime):
    """A batch-only definition has its moves counted by the database; one that is also continuous
    has them fetched, to send their qualification events. Both count the same."""
    s = setup_profiles(client)
    pdg_default(client)
    for n, pts in enumerate([1, 6, 8, 9]):
        put(client, s.crm, person(f"r{n}", T1, ids(Email=f"p{n}@x.io"), _wayline={"points": pts}))
    runtime.backbone.run_until_idle()
    batch_only = seg(client, '_wayline.points >= 5')
    both = seg(client, '_wayline.points >= 5', continuous=True)
    sandbox = client.get("/sandbox").json()["sandbox"]["id"]
    ids_ = [batch_only["id"], both["id"]]

    def run() -> list[tuple[int, int, int]]:
        counts = runtime.segments.evaluate(sandbox_id=sandbox, segment_ids=ids_)["counts"]
        return [(counts[i]["entered"], counts[i]["left"], counts[i]["profiles"]) for i in ids_]

    assert run() == [(3, 0, 3), (3, 0, 3)]
    put(client, s.crm, person("r1b", T2, ids(Email="p1@x.io"), _wayline={"points": 2}),
        person("r3b", T2, ids(Email="p3@x.io"), _wayline={"points": 1}))
    assert run() == [(0, 2, 1), (0, 2, 1)]  # no stream ran: the batch run moves both definitions
    put(client, s.crm, person("r1c", T3, ids(Email="p1@x.io"), _wayline={"points": 7}))
    assert run() == [(1, 0, 2), (1, 0, 2)]  # back in from exited
    assert run() == [(0, 0, 2), (0, 0, 2)]
    moves = [(x["status"], x["identity"]["id"]) for x in qualifications(runtime) if x["segmentId"] == both["id"]]
    assert sorted(moves) == sorted([("realized", "p1@x.io"), ("realized", "p2@x.io"), ("realized", "p3@x.io"),
                                    ("exited", "p1@x.io"), ("exited", "p3@x.io"), ("realized", "p1@x.io")])
    assert not [x for x in qualifications(runtime) if x["segmentId"] == batch_only["id"]]


def test_segments_cli_evaluates_with_progress(client, runtime, db_url, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from wayline.cli import app

    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("r", T1, ids(Email="c@x.io"), _wayline={"points": 7}))
    gold = seg(client, '_wayline.points >= 5')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WAYLINE_CONFIG", raising=False)
    monkeypatch.setenv("WAYLINE_DATABASE_URL", db_url)
    monkeypatch.setenv("WAYLINE_LOG_LEVEL", "warning")
    monkeypatch.setenv("COLUMNS", "200")
    r = CliRunner().invoke(app, ["segments", "evaluate", "--all"])
    assert r.exit_code == 0, r.output
    assert gold["id"] in r.output and "SUCCEEDED" in r.output
    assert members(client, gold["id"]) == {"c@x.io": "realized"}
    r = CliRunner().invoke(app, ["segments", "evaluate", "seg_nope"])
    assert r.exit_code == 1


def test_daily_batch_run_is_a_durable_timer(client, runtime):
    from wayline.kernel.clock import VirtualClock
    from wayline.kernel.store import now_ms
    from wayline.kernel.tables import timers

    clock = VirtualClock(now_ms())
    runtime.clock = runtime.backbone.clock = runtime.segments.clock = clock
    runtime.segments.streaming.now_ms = clock.now_ms

    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("r", T1, ids(Email="d@x.io"), _wayline={"points": 7}))
    gold = seg(client, '_wayline.points >= 5')
    pending = runtime.store.read_sync(lambda c: c.execute(sa.select(timers.c.due_ms).where(
        timers.c.stream == "platform.segment-schedule", timers.c.fired_ms.is_(None))).scalars().all())
    assert len(pending) == 1
    seg(client, '_wayline.points >= 6')  # still one schedule per sandbox
    assert runtime.store.read_sync(lambda c: c.execute(sa.select(sa.func.count()).select_from(timers).where(
        timers.c.stream == "platform.segment-schedule")).scalar_one()) == 1
    runtime.backbone.advance(pending[0] - runtime.clock.now_ms() + 1)
    runtime.backbone.run_until_idle()
    assert members(client, gold["id"]) == {"d@x.io": "realized"}
    again = runtime.store.read_sync(lambda c: c.execute(sa.select(timers.c.due_ms).where(
        timers.c.stream == "platform.segment-schedule", timers.c.fired_ms.is_(None))).scalars().all())
    assert len(again) == 1 and again[0] > pending[0]


def test_export_is_refused_when_a_policy_is_violated(client, runtime):
    s = setup_profiles(client)
    pdg_default(client)
    put(client, s.crm, person("r", T1, ids(Email="e@x.io"), _wayline={"points": 7}))
    r = client.put(f"/dulepolicy/fieldLabels/{__import__('urllib.parse').parse.quote(s.profile_schema, safe='')}",
                   json={"labels": {"/_wayline/points": ["C2"]}})
    assert r.status_code in (200, 201), r.text
    gold = seg(client, '_wayline.points >= 5')
    assert set(gold["labels"]) == {"C2", "C10"}
    runtime.segments.evaluate(sandbox_id=client.get("/sandbox").json()["sandbox"]["id"], segment_ids=None)
    # no enabled policy yet: the export goes through
    assert client.post("/segment/exports", json={"segmentId": gold["id"]}).status_code == 201
    core = client.get("/dulepolicy/policies/core").json()
    items = core["items"] if isinstance(core, dict) else core
    export_policy = next(p for p in items if any("exportToThirdParty" in a for a in p["marketingActionRefs"]))
    r = client.patch(f"/dulepolicy/policies/core/{export_policy['id']}", json={"status": "ENABLED"})
    assert r.status_code == 200, r.text
    refused = client.post("/segment/exports", json={"segmentId": gold["id"], "marketingAction": "exportToThirdParty"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["violatedPolicies"][0]["id"] == export_policy["id"]
    # another action that no enabled policy forbids is fine
    assert client.post("/segment/exports", json={"segmentId": gold["id"],
                                                 "marketingAction": "analytics"}).status_code == 201


def test_governance_evaluates_segments_as_entities(client):
    s = setup_profiles(client)
    pdg_default(client)
    gold = seg(client, '_wayline.points >= 5')
    r = client.post("/dulepolicy/marketingActions/core/exportToThirdParty/constraints",
                    json=[{"entityType": "segment", "entityId": gold["id"]}])
    assert r.status_code == 200, r.text
    assert "C10" in r.json()["duleLabels"]
    r = client.post("/dulepolicy/marketingActions/core/exportToThirdParty/constraints",
                    json=[{"entityType": "segment", "entityId": "seg_nope"}])
    assert r.status_code == 404
    assert s.crm


def test_a_job_whose_evaluation_fails_is_failed_with_its_error(client, runtime, monkeypatch):
    from wayline.platform import segments

    setup_profiles(client)
    sandbox = client.get("/sandbox").json()["sandbox"]["id"]
    with pytest.raises(Problem):  # a definition that is not there: a problem, kept on the job
        runtime.segments.evaluate(sandbox_id=sandbox, segment_ids=["seg_nope"])

    def boom(*_a, **_kw):
        raise RuntimeError("the evaluation broke")

    monkeypatch.setattr(segments, "run_evaluation", boom)
    with pytest.raises(RuntimeError):
        runtime.segments.evaluate(sandbox_id=sandbox, segment_ids=None)
    jobs = runtime.store.read_sync(lambda c: c.exec_driver_sql(
        "SELECT status, errors FROM segment_jobs ORDER BY created_ms, id").all())
    assert [j[0] for j in jobs] == ["failed", "failed"]
    errors = [orjson.loads(j[1]) if isinstance(j[1], str) else j[1] for j in jobs]
    assert any(e[0].get("title") and "seg_nope" in e[0]["detail"] for e in errors), errors
    assert [{"detail": "the evaluation broke"}] in errors
