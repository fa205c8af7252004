"""The batch file parsers: records out of bytes, streamed; unreadable parts kept as failures."""

from __future__ import annotations

import datetime as dt
import decimal
import io

import orjson
import pytest

from wayline.kernel.problems import Problem
from wayline.platform.fieldpaths import check_mapping, coerce, parse_path, set_path, type_lookup
from wayline.platform.fileformats import InputFormat, read_items


def parts(data: bytes, size: int = 7) -> list[bytes]:
    """The bytes cut into small parts, so records straddle part boundaries."""
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def items(fmt: InputFormat, data: bytes, type_at=None, size: int = 7):
    return list(read_items(fmt, "f", parts(data, size), type_at))


JSONL = InputFormat("json")


def test_json_lines_across_part_boundaries_skips_blank_lines_and_keeps_bad_lines_raw():
    data = b'{"_id": "a", "n": 1}\n\n  \r\n{"_id": "b"}\nnot json\n[1, 2]\n{"_id": "c"}'
    got = items(JSONL, data)
    assert [i.entity for i in got] == [{"_id": "a", "n": 1}, {"_id": "b"}, None, [1, 2], {"_id": "c"}]
    bad = got[2]
    assert bad.raw == "not json"
    assert bad.violations[0]["keyword"] == "format" and "line 5" in bad.violations[0]["message"]
    assert bad.error and "line 5" in bad.error  # the first bad line of a file is also a batch error
    assert got[-1].pos == len(data)
    assert [i.pos for i in got] == sorted(i.pos for i in got)


def test_json_lines_reports_only_the_first_bad_line_as_a_batch_error():
    got = items(JSONL, b"x\ny\nz\n")
    assert [i.raw for i in got] == ["x", "y", "z"]
    assert [bool(i.error) for i in got] == [True, False, False]


def test_a_pretty_printed_document_read_as_json_lines_gets_a_hint():
    data = b'[\n  {"_id": "a"}\n]\n'
    first = items(JSONL, data)[0]
    assert "isMultiLineJson=true" in first.error


def test_multiline_json_array_single_document_and_garbage():
    fmt = InputFormat("json", multiline=True)
    got = items(fmt, b'[\n {"_id": "a"},\n {"_id": "b"}\n]')
    assert [i.entity for i in got] == [{"_id": "a"}, {"_id": "b"}]
    assert [i.entity for i in items(fmt, b'{\n "_id": "x"\n}')] == [{"_id": "x"}]
    assert items(fmt, b"  \n") == []
    (bad,) = items(fmt, b'{"_id": "a"}\n{"_id": "b"}\n')
    assert bad.entity is None and bad.raw == '{"_id": "a"}\n{"_id": "b"}\n'
    assert "not a JSON document" in bad.error and "isMultiLineJson=false" in bad.error


def test_a_json_document_too_large_to_parse_whole_is_refused_with_advice(monkeypatch):
    from wayline.platform import fileformats

    monkeypatch.setattr(fileformats, "MAX_DOCUMENT_BYTES", 20)
    (bad,) = items(InputFormat("json", multiline=True), orjson.dumps([{"_id": str(i)} for i in range(5)]))
    assert bad.entity is None and "isMultiLineJson=false" in bad.error


def test_parquet_bytes_in_a_json_batch_are_named_as_parquet():
    (bad,) = items(JSONL, b"PAR1\x00\x01\x02garbage")
    assert bad.raw is None and "Parquet" in bad.error and "format=parquet" in bad.error


# -- paths, mapping, coercion ------------------------------------------------------------------------

def test_paths_parse_and_build_nested_objects_and_arrays():
    assert parse_path("identityMap.Email[0].id") == ("identityMap", "Email", 0, "id")
    assert parse_path("a") == ("a",)
    for bad in ("", "a..b", "a.[0]", "[0]", "a[x]"):
        with pytest.raises(ValueError):
            parse_path(bad)
    rec: dict = {}
    set_path(rec, ("person", "name", "firstName"), "Ann")
    set_path(rec, ("identityMap", "Email", 0, "id"), "ann@example.com")
    set_path(rec, ("identityMap", "Email", 0, "primary"), True)
    set_path(rec, ("tags", 1), "b")
    assert rec == {"person": {"name": {"firstName": "Ann"}},
                   "identityMap": {"Email": [{"id": "ann@example.com", "primary": True}]}, "tags": [None, "b"]}


def test_a_mapping_is_checked_entry_by_entry():
    assert check_mapping({"e": "personalEmail.address"}) == {"e": ("personalEmail", "address")}
    with pytest.raises(Problem) as exc:
        check_mapping({"a": "x..y", "b": "p", "c": "p.q"})
    assert exc.value.status == 422
    assert {e.pointer for e in exc.value.errors} == {"/mapping/a", "/mapping/c"}
    with pytest.raises(Problem):
        check_mapping(["not", "an", "object"])


SCHEMA = {
    "definitions": {"loyalty": {"properties": {"points": {"type": "integer"}, "vip": {"type": "boolean"}}}},
    "properties": {
        "loyalty": {"$ref": "#/definitions/loyalty"},
        "price": {"type": ["number", "null"]},
        "person": {"type": "object", "allOf": [{"properties": {"age": {"type": "integer"}}}]},
        "identityMap": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "object", "properties": {"primary": {"type": "boolean"}}}}},
    },
}


def test_types_are_found_through_refs_allof_maps_and_arrays():
    at = type_lookup(SCHEMA)
    assert at(("loyalty", "points")) == "integer"
    assert at(("loyalty", "vip")) == "boolean"
    assert at(("price",)) == "number"
    assert at(("person", "age")) == "integer"
    assert at(("identityMap", "ECID", 0, "primary")) == "boolean"
    assert at(("nowhere", "x")) is None
    assert type_lookup(None)(("a",)) is None


def test_cells_are_coerced_when_they_read_as_the_type_and_kept_as_strings_otherwise():
    assert coerce("42", "integer") == 42
    assert coerce("4.5", "number") == 4.5
    assert coerce("4", "number") == 4
    assert coerce("TRUE", "boolean") is True and coerce("no", "boolean") is False
    assert coerce("many", "integer") == "many"  # the schema check then names the field
    assert coerce("maybe", "boolean") == "maybe"
    assert coerce("007", None) == "007"


# -- CSV ---------------------------------------------------------------------------------------------

def test_csv_with_a_mapping_builds_nested_typed_records_and_empty_cells_are_absent():
    data = ("\ufeffid,when,first,pts,vip,email\n"
            "e1,2026-01-01T00:00:00Z,Ann,12,yes,ann@example.com\n"
            'e2,2026-01-02T00:00:00Z,"Bo, Jr",,,\n'
            "e3,2026-01-03T00:00:00Z,Cy,lots,no,c@example.com\n").encode()
    mapping = check_mapping({"id": "_id", "when": "timestamp", "first": "person.name.firstName",
                             "pts": "loyalty.points", "vip": "loyalty.vip", "email": "identityMap.Email[0].id"})
    got = items(InputFormat("csv", mapping=mapping), data, type_lookup(SCHEMA), size=5)
    assert [i.violations for i in got] == [None, None, None]
    assert got[0].entity == {"_id": "e1", "timestamp": "2026-01-01T00:00:00Z",
                             "person": {"name": {"firstName": "Ann"}}, "loyalty": {"points": 12, "vip": True},
                             "identityMap": {"Email": [{"id": "ann@example.com"}]}}
    assert got[1].entity == {"_id": "e2", "timestamp": "2026-01-02T00:00:00Z",
                             "person": {"name": {"firstName": "Bo, Jr"}}}
    assert got[2].entity["loyalty"] == {"points": "lots", "vip": False}


def test_csv_without_a_mapping_reads_column_names_as_paths():
    data = b"_id,person.name.lastName\nx,Doe\n"
    (item,) = items(InputFormat("csv"), data)
    assert item.entity == {"_id": "x", "person": {"name": {"lastName": "Doe"}}}


def test_csv_rows_of_the_wrong_width_and_missing_mapped_columns_fail_with_reasons():
    data = b"a,b\n1,2,3\n4,5\n"
    got = items(InputFormat("csv", mapping=check_mapping({"a": "x", "zz": "y"})), data)
    assert len(got) == 2
    assert {v["keyword"] for v in got[0].violations} == {"format", "mapping"}
    assert [v["keyword"] for v in got[1].violations] == ["mapping"]
    assert got[0].error and "'zz'" in got[0].error and got[1].error is None
    assert got[1].entity == {"x": "4"}


def test_binary_content_in_a_csv_batch_is_a_clear_file_error():
    (bad,) = items(InputFormat("csv"), b"a,b\n\xff\xfe\x00\x01", size=100)
    assert bad.entity is None and "not UTF-8" in bad.error
    (par,) = items(InputFormat("csv"), b"PAR1\x00\x00")
    assert "Parquet" in par.error


# -- Parquet -----------------------------------------------------------------------------------------

def parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=2)
    return buf.getvalue()


def test_parquet_structs_lists_maps_timestamps_and_nulls():
    import pyarrow as pa

    table = pa.table({
        "_id": ["p1", "p2", "p3"],
        "timestamp": pa.array([dt.datetime(2026, 1, 1, 12, 0, 0), dt.datetime(2026, 1, 2, 0, 0, 0, 500_000), None],
                              pa.timestamp("ms")),
        "person": pa.array([{"name": {"firstName": "Ann"}, "age": 30}, {"name": None, "age": None}, None],
                           pa.struct([("name", pa.struct([("firstName", pa.string())])), ("age", pa.int32())])),
        "tags": [["a", "b"], [], None],
        "attrs": pa.array([[("k", 1)], None, None], pa.map_(pa.string(), pa.int64())),
        "born": pa.array([dt.date(1990, 5, 1), None, None], pa.date32()),
        "price": pa.array([decimal.Decimal("9.50"), decimal.Decimal(3), None], pa.decimal128(5, 2)),
    })
    got = items(InputFormat("parquet"), parquet_bytes(table), size=64)
    assert [i.violations for i in got] == [None, None, None]
    assert got[0].entity == {"_id": "p1", "timestamp": "2026-01-01T12:00:00Z",
                             "person": {"name": {"firstName": "Ann"}, "age": 30}, "tags": ["a", "b"],
                             "attrs": {"k": 1}, "born": "1990-05-01", "price": 9.5}
    assert got[1].entity == {"_id": "p2", "timestamp": "2026-01-02T00:00:00.500000Z", "person": {}, "tags": [],
                             "price": 3}
    assert got[2].entity == {"_id": "p3"}
    assert got[-1].pos > 0


def test_parquet_columns_follow_a_mapping():
    import pyarrow as pa

    table = pa.table({"id": ["m1"], "mail": ["m@example.com"], "ignored": [1]})
    mapping = check_mapping({"id": "_id", "mail": "personalEmail.address"})
    (item,) = items(InputFormat("parquet", mapping=mapping), parquet_bytes(table))
    assert item.entity == {"_id": "m1", "personalEmail": {"address": "m@example.com"}}


def test_a_file_that_is_not_parquet_is_one_failure_naming_the_file():
    (bad,) = items(InputFormat("parquet"), orjson.dumps({"_id": "x"}))
    assert bad.entity is None and "not a readable Parquet file" in bad.error
