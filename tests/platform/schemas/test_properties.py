"""Property: validate() is [] exactly when both validators accept, and its pointers point into the record.

Records are built from a composed schema's fields (valid values for each type, enum, format,
pattern and range), then corrupted at random places: a value of the wrong type, an unknown key, a
removed key.
"""

from __future__ import annotations

import copy
from typing import Any

import fastjsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wayline.platform.schemas import standard
from wayline.platform.schemas.compiled import CompiledSchema, compile_schema
from wayline.platform.schemas.compose import Resolver, compose_schema
from wayline.platform.schemas.model import PROFILE_CLASS, Resource

CUSTOM_FG = "https://acme.example/fieldgroups/custom"
CUSTOM = Resource(CUSTOM_FG, "fieldgroup", {
    "$id": CUSTOM_FG, "title": "Custom", "meta:intendedToExtend": [PROFILE_CLASS],
    "properties": {"_wayline": {"type": "object", "properties": {
        "code": {"type": "string", "minLength": 2, "maxLength": 4},
        "score": {"type": "number", "minimum": -5, "maximum": 5},
        "level": {"type": "integer", "enum": [1, 2, 3]},
        "visits": {"type": "array", "items": {"type": "object", "required": ["at"], "properties": {
            "at": {"type": "string", "format": "date-time"}, "page": {"type": "string", "format": "uri"}}}},
        "counters": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "born": {"type": "string", "format": "date"},
    }}},
})
GROUPS = [standard.FG_IDENTITY_MAP, standard.FG_PERSON, standard.FG_PERSONAL_CONTACT, standard.FG_CONSENTS,
          standard.FG_PUSH, standard.FG_SEGMENTS, standard.FG_TEST_PROFILE, standard.FG_EXT_AUDIT, CUSTOM_FG]


def _compiled() -> CompiledSchema:
    uri = "https://acme.example/schemas/p"
    body = {"$id": uri, "title": "p", "allOf": [{"$ref": PROFILE_CLASS}, *({"$ref": g} for g in GROUPS)]}
    c = compose_schema(Resolver(overrides={CUSTOM_FG: CUSTOM}), Resource(uri, "schema", body))
    return compile_schema(uri=uri, version=1, title="p", class_uri=c.class_uri, behavior=c.behavior,
                          profile_enabled=False, json_schema=c.json_schema)


COMPILED = _compiled()
FORMAT_VALUES = {
    "date-time": st.sampled_from(["2026-01-02T03:04:05Z", "2024-02-29T23:59:59.5+01:00", "1999-12-31t00:00:00z"]),
    "date": st.sampled_from(["2024-02-29", "1970-01-01"]),
    "email": st.sampled_from(["a@b.c", "ann.lee@shop.example"]),
    "uri": st.sampled_from(["https://shop.example/p?q=1", "mailto:a@b.c"]),
}
WRONG = st.sampled_from([123, -1.5, "text", True, None, [], {}, [1], {"k": "v"}, 2.0, "2026-13-01T00:00:00Z"])


def valid(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "string":
        if "format" in node:
            return FORMAT_VALUES[node["format"]]
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True)
        return st.text(min_size=node.get("minLength", 0), max_size=node.get("maxLength", 6))
    if kind == "integer":
        return st.integers(node.get("minimum", -10**6), node.get("maximum", 10**6))
    if kind == "number":
        return st.floats(node.get("minimum", -1e6), node.get("maximum", 1e6), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(valid(node["items"]), max_size=2)
    if isinstance(node.get("additionalProperties"), dict):
        return st.dictionaries(st.text(min_size=1, max_size=3), valid(node["additionalProperties"]), max_size=2)
    props = node.get("properties", {})
    required = node.get("required", [])
    return st.fixed_dictionaries({k: valid(props[k]) for k in required},
                                 optional={k: valid(v) for k, v in props.items() if k not in required})


def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += places(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += places(v, (*path, i))
    return out


def _container(record: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        record = record[part]
    return record


@st.composite
def records(draw: st.DrawFn) -> Any:
    record = draw(valid(COMPILED.json_schema))
    for _ in range(draw(st.integers(0, 3))):
        spots = places(record)
        path = draw(st.sampled_from(spots))
        how = draw(st.sampled_from(["wrong", "unknown", "remove"]))
        target = _container(record, path)
        if how == "unknown" and isinstance(target, dict):
            target[draw(st.sampled_from(["zzz", "nickname", "_other"]))] = copy.deepcopy(draw(WRONG))
        elif path and how == "remove" and isinstance(_container(record, path[:-1]), dict):
            del _container(record, path[:-1])[path[-1]]
        elif path:
            _container(record, path[:-1])[path[-1]] = copy.deepcopy(draw(WRONG))
    return record


def resolves(record: Any, ptr: str) -> bool:
    if ptr == "":
        return True
    node = record
    for raw in ptr[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_validate_agrees_with_both_validators_and_points_into_the_record(record):
    violations = COMPILED.validate(record)
    try:
        COMPILED._fast(record)
        fast_ok = True
    except fastjsonschema.JsonSchemaValueException:
        fast_ok = False
    slow_ok = next(iter(COMPILED._slow.iter_errors(record)), None) is None
    assert fast_ok == slow_ok
    assert (violations == []) == fast_ok
    for v in violations:
        assert resolves(record, v["pointerToViolation"]), v
        assert set(v) == {"pointerToViolation", "schemaLocation", "keyword", "message"}


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_uncorrupted_records_are_valid(data):
    assert COMPILED.validate(data.draw(valid(COMPILED.json_schema))) == []
