"""The whole HTTP API fuzzed from its own OpenAPI document (schemathesis): no request, however
malformed, gets a server error; every answer is documented (status, media type, body schema);
methods a path does not serve get 405; and every error is RFC 9457 problem+json.

This is the smoke version (SQLite, a few examples per operation). `make fuzz` runs the same checks
with many more examples per operation on both databases (WAYLINE_FUZZ_EXAMPLES).
Not checked: that the API accepts every request its document allows. Some rules are not in the
document: values that must name something that exists (a namespace code, a dataset), and bodies
read and validated by the handlers themselves, which the document does not describe.
"""

from __future__ import annotations

import os

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

EXAMPLES = int(os.environ.get("WAYLINE_FUZZ_EXAMPLES", "4"))
DATABASES = os.environ.get("WAYLINE_FUZZ_DATABASES", "sqlite").split(",")


@schemathesis.check
def problem_details(ctx, response, case):
    """Every 4xx and 5xx answer is application/problem+json with RFC 9457's members."""
    if response.status_code < 400:
        return
    ctype = (response.headers.get("content-type") or [""])[0]
    assert ctype.split(";")[0] == "application/problem+json", f"{response.status_code} answered as {ctype!r}"
    body = orjson.loads(response.content)
    assert body.get("status") == response.status_code, body
    assert isinstance(body.get("type"), str) and isinstance(body.get("title"), str), body
    for e in body.get("errors", []):
        assert isinstance(e.get("pointer"), str) and isinstance(e.get("detail"), str), body


CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance, checks.unsupported_method,
          problem_details]


@pytest.mark.parametrize("db_url", DATABASES, indirect=True)  # the suite's databases, narrowed: SQLite unless told
def test_the_api_answers_every_request_as_documented(app, runtime):
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {runtime.admin_key}"}
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 90  # the whole API, not an empty document

    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 10, database=None,
                  suppress_health_check=list(HealthCheck))
        def answers_as_documented(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            answers_as_documented()
        except Exception as exc:
            raise AssertionError(f"{op.label}: {exc}") from exc
