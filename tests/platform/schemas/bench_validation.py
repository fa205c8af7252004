"""Measure compiled validation: µs per record, valid and invalid, and with the registry lookup.

    .venv/bin/python -m tests.platform.schemas.bench_validation [N]

Prints JSON. The schema is a typical experience-event schema: the ExperienceEvent class with Web
Details, Commerce Details, Orchestration eventID and a tenant field group; the record is a page view
with an identityMap, page details and two tenant fields.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
GROUPS = ["https://ns.adobe.com/xdm/context/experienceevent-web",
          "https://ns.adobe.com/xdm/context/experienceevent-commerce",
          "https://ns.adobe.com/experience/campaign/orchestration/eventid"]
RECORD = {"_id": "0f8c2f8e-6a5b-4c1e-9f1e-3b2f4c5d6e7f", "timestamp": "2026-11-30T10:00:00.123Z",
          "eventType": "web.webpagedetails.pageViews",
          "identityMap": {"ECID": [{"id": "12345678901234567890123456789012345678", "primary": True,
                                    "authenticatedState": "ambiguous"}]},
          "web": {"webPageDetails": {"name": "home", "URL": "https://shop.example/", "pageViews": {"value": 1}},
                  "webReferrer": {"URL": "https://search.example/?q=shoes"}},
          "_wayline": {"points": 12, "tier": "gold"}}
INVALID = {**RECORD, "timestamp": "yesterday", "web": {"webPageDetails": {"pageViews": {"value": "1"}}},
           "_wayline": {"points": "12", "tier": "tin"}}


def _time(fn: Any, record: Any, n: int) -> float:
    fn(record)
    start = time.perf_counter()
    for _ in range(n):
        fn(record)
    return (time.perf_counter() - start) / n * 1e6


def main(n: int = 100_000) -> dict[str, Any]:
    from wayline.config import Settings
    from wayline.kernel import tenancy
    from wayline.migrations import migrate
    from wayline.runtime import Runtime

    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    migrate(url)
    rt = Runtime(Settings(database_url=url, secret_key="bench", _env_file=None))
    rt.bootstrap()
    reg = rt.platform.schemas

    def unit(conn: Any) -> tuple[str, str]:
        sandbox = tenancy.get_sandbox(conn, "prod").id
        fg, _ = reg.create(conn, sandbox_id=sandbox, tenant_id="wayline", actor="bench", kind="fieldgroup", body={
            "title": "Loyalty", "meta:intendedToExtend": [EVENT],
            "properties": {"_wayline": {"type": "object", "properties": {
                "points": {"type": "integer", "minimum": 0}, "tier": {"type": "string", "enum": ["gold", "silver"]}}}}})
        schema, _ = reg.create(conn, sandbox_id=sandbox, tenant_id="wayline", actor="bench", kind="schema", body={
            "title": "Web events", "allOf": [{"$ref": EVENT}, *({"$ref": g} for g in GROUPS), {"$ref": fg["$id"]}]})
        return sandbox, schema["$id"]

    sandbox, uri = rt.store.run(unit)
    compiled = reg.compiled(sandbox, uri)
    assert compiled.validate(RECORD) == [] and compiled.validate(INVALID)
    out = {
        "records": n,
        "valid_us_per_record": round(_time(compiled.validate, RECORD, n), 2),
        "valid_with_registry_lookup_us_per_record": round(
            _time(lambda r: reg.compiled(sandbox, uri).validate(r), RECORD, n), 2),
        "invalid_us_per_record": round(_time(compiled.validate, INVALID, max(1, n // 20)), 2),
        "violations_in_invalid_record": len(compiled.validate(INVALID)),
    }
    rt.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
