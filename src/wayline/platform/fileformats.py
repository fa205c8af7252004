"""Streaming parsers for batch files: JSON Lines, JSON documents, CSV and Parquet.

A parser takes a file as an iterable of byte parts (as stored in `batch_files`, or read from disk)
and yields one `Item` per record, never the whole file's records at once. A part of the file that
cannot be parsed becomes an item with `violations` (and the original text in `raw` when there is
text), so it is kept in failed records like any invalid record: nothing accepted is dropped.

The number of items a file yields depends only on its bytes, never on the schema: batch
processing checkpoints by item position and must find the same position again when it resumes.
"""

from __future__ import annotations

import base64
import codecs
import csv
import datetime as dt
import decimal
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from wayline.platform.fieldpaths import Path, TypeAt, coerce, parse_path, set_path

FORMATS = ("json", "csv", "parquet")
RAW_KEEP = 1_048_576  # text kept in `raw` per failed item; the whole file stays in the batch anyway
MAX_DOCUMENT_BYTES = 64 * 1_048_576  # a multi-line JSON file is parsed whole: bigger ones are refused
SPOOL_BYTES = 64 * 1_048_576  # a Parquet file needs random access: spooled to disk past this size



@dataclass(slots=True)
class Item:
    """One record read from a file; `violations` when it could not be read as a record."""

    entity: Any = None
    raw: str | None = None
    violations: list[dict[str, Any]] | None = None
    error: str | None = None  # a file-wide problem, reported once in the batch's errors
    pos: int = 0  # bytes of the file consumed once this item is read (for progress)


@dataclass(frozen=True)
class InputFormat:
    format: str
    multiline: bool = False
    mapping: dict[str, Path] = field(default_factory=dict)


def violation(message: str, keyword: str = "format", pointer: str = "") -> dict[str, Any]:
    return {"pointerToViolation": pointer, "schemaLocation": "#", "keyword": keyword, "message": message}


def _cap(text: str) -> str:
    return text if len(text) <= RAW_KEEP else text[:RAW_KEEP]


# -- JSON -------------------------------------------------------------------------------------------

def json_lines(name: str, parts: Iterable[bytes]) -> Iterator[Item]:
    """JSON Lines: one record per line; blank lines are not records. The first bad line of a file
    also goes into the batch's errors (with a hint when the file looks like another format)."""
    buf, pos, lineno, reported = b"", 0, 0, False
    first = True
    for part in parts:
        if first and part:
            first = False
            if part[:4] == b"PAR1":
                yield _whole_file(name, f"file {name!r} is a Parquet file, not JSON Lines; create the batch "
                                        "with inputFormat.format=parquet", None, len(part))
                return
        buf += part
        lines = buf.split(b"\n")
        buf = lines.pop()
        for line in lines:
            lineno += 1
            pos += len(line) + 1
            item = _json_line(name, lineno, line, pos, reported)
            if item is not None:
                reported = reported or item.error is not None
                yield item
    if buf:
        item = _json_line(name, lineno + 1, buf, pos + len(buf), reported)
        if item is not None:
            yield item


def _json_line(name: str, lineno: int, line: bytes, pos: int, reported: bool) -> Item | None:
    line = line.strip()
    if not line:
        return None
    try:
        return Item(entity=orjson.loads(line), pos=pos)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if lineno == 1 and line[:1] in (b"[", b"{"):
            hint = "; the file looks like one multi-line JSON document: set inputFormat.isMultiLineJson=true"
        msg = f"line {lineno} of {name!r} is not valid JSON: {exc.msg} (column {exc.colno}){hint}"
        return Item(raw=_cap(line.decode("utf-8", "replace")), violations=[violation(msg)], pos=pos,
                    error=None if reported else msg)


def json_document(name: str, parts: Iterable[bytes]) -> Iterator[Item]:
    """A multi-line JSON file: an array of records, or one record. The document is read whole (a JSON
    array has no record boundaries to stream on); the upload size limit bounds it."""
    buf, size = bytearray(), 0
    for part in parts:
        size += len(part)
        if size > MAX_DOCUMENT_BYTES:
            yield _whole_file(name, f"file {name!r} is over {MAX_DOCUMENT_BYTES} bytes, too large to read as one "
                                    "JSON document; send JSON Lines (isMultiLineJson=false) or smaller files",
                              None, size)
            return
        buf += part
    data = bytes(buf)
    if not data.strip():
        return
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        msg = f"file {name!r} is not a JSON document: {exc.msg} at line {exc.lineno} column {exc.colno}"
        first = data.lstrip().split(b"\n", 1)[0]
        try:
            if isinstance(orjson.loads(first), dict):
                msg += "; it looks like JSON Lines: set inputFormat.isMultiLineJson=false"
        except orjson.JSONDecodeError:
            pass
        if data[:4] == b"PAR1":
            msg = f"file {name!r} is a Parquet file, not JSON; create the batch with inputFormat.format=parquet"
            yield _whole_file(name, msg, None, len(data))
            return
        yield _whole_file(name, msg, data.decode("utf-8", "replace"), len(data))
        return
    records = doc if isinstance(doc, list) else [doc]
    n = max(1, len(records))
    for i, rec in enumerate(records):
        yield Item(entity=rec, pos=len(data) * (i + 1) // n)


def _whole_file(name: str, msg: str, raw: str | None, pos: int) -> Item:
    if raw is not None and len(raw) > RAW_KEEP:
        msg += f" (the first {RAW_KEEP} characters are kept here; the whole file stays in the batch)"
    return Item(raw=_cap(raw) if raw is not None else None, violations=[violation(msg)], error=msg, pos=pos)


# -- CSV --------------------------------------------------------------------------------------------

def csv_rows(name: str, parts: Iterable[bytes], mapping: dict[str, Path], type_at: TypeAt) -> Iterator[Item]:
    """CSV with a header row. Each mapped column (or, without a mapping, each column read as a dotted
    path) is put at its field path; an empty cell is absent; cells are coerced to the schema's type."""
    state = {"pos": 0, "bad": None}

    def lines() -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        tail = ""
        for part in parts:
            if state["pos"] == 0 and part[:4] == b"PAR1":
                state["bad"] = f"file {name!r} is a Parquet file, not CSV; use inputFormat.format=parquet"
                return
            try:
                text = tail + decoder.decode(part)
            except UnicodeDecodeError as exc:
                state["bad"] = (f"file {name!r} is not UTF-8 text (byte {state['pos'] + exc.start} of the "
                                "remaining part cannot be decoded); is the format right?")
                return
            chunk = text.split("\n")
            tail = chunk.pop()
            for line in chunk:
                state["pos"] += len(line) + 1
                yield line + "\n"
        tail += decoder.decode(b"", final=True)
        if tail:
            state["pos"] += len(tail)
            yield tail

    reader = csv.reader(lines())
    try:
        header = next(reader, None)
        if header is None:
            if state["bad"]:
                yield _whole_file(name, state["bad"], None, state["pos"])
            return
        header = [h.strip() for h in header]
        columns, missing = _columns(header, mapping)
        problem = (f"mapping names column(s) {', '.join(map(repr, missing))} that file {name!r} does not "
                   f"have (its header: {', '.join(header)})") if missing else None
        missing_v = [violation(problem, "mapping")] if problem else []
        rowno = 1
        for row in reader:
            rowno += 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            record: dict[str, Any] = {}
            for i, path in columns:
                cell = row[i] if i < len(row) else ""
                if cell != "":
                    set_path(record, path, coerce(cell, type_at(path)))
            bad = list(missing_v)
            if len(row) != len(header):
                bad.append(violation(f"row {rowno} of {name!r} has {len(row)} cells; the header has {len(header)}"))
            yield Item(entity=record, violations=bad or None, pos=state["pos"], error=problem)
            problem = None  # a file-wide problem goes into the batch's errors once
    except csv.Error as exc:
        yield _whole_file(name, f"file {name!r} is not readable CSV from byte {state['pos']}: {exc}", None,
                          state["pos"])
        return
    if state["bad"]:
        yield _whole_file(name, state["bad"], None, state["pos"])


def _columns(header: list[str], mapping: dict[str, Path]) -> tuple[list[tuple[int, Path]], list[str]]:
    if not mapping:
        out = []
        for i, col in enumerate(header):
            try:
                out.append((i, parse_path(col)))
            except ValueError:
                out.append((i, (col,)))
        return out, []
    index = {col: i for i, col in enumerate(header)}
    return ([(index[c], p) for c, p in mapping.items() if c in index], [c for c in mapping if c not in index])


# -- Parquet ----------------------------------------------------------------------------------------

def parquet_rows(name: str, parts: Iterable[bytes], mapping: dict[str, Path], batch_rows: int = 1_000
                 ) -> Iterator[Item]:
    """Parquet, read one row batch at a time: structs become objects, timestamps ISO 8601 strings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        size = 0
        for part in parts:
            spool.write(part)
            size += len(part)
        spool.seek(0)
        try:
            pf = pq.ParquetFile(spool)
        except (pa.ArrowException, OSError, ValueError) as exc:
            yield _whole_file(name, f"file {name!r} is not a readable Parquet file: {exc}", None, size)
            return
        total = max(1, pf.metadata.num_rows)
        convert = {f.name: _converter(f.type) for f in pf.schema_arrow}
        paths = {f.name: (mapping.get(f.name) if mapping else _column_path(f.name)) for f in pf.schema_arrow}
        done = 0
        try:
            for rb in pf.iter_batches(batch_size=batch_rows):
                for row in rb.to_pylist():
                    done += 1
                    record: dict[str, Any] = {}
                    for col, value in row.items():
                        path = paths.get(col)
                        if path is None or value is None:
                            continue
                        value = convert[col](value)
                        if value is not None:
                            set_path(record, path, value)
                    yield Item(entity=record, pos=size * done // total)
        except (pa.ArrowException, OSError, ValueError) as exc:
            yield _whole_file(name, f"file {name!r} could not be read past row {done}: {exc}", None, size)


def _column_path(col: str) -> Path:
    try:
        return parse_path(col)
    except ValueError:
        return (col,)


def _converter(ty: Any) -> Callable[[Any], Any]:
    """A function turning a value of arrow type `ty` (as to_pylist gives it) into JSON."""
    import pyarrow as pa

    t = pa.types
    if t.is_struct(ty):
        subs = [(ty.field(i).name, _converter(ty.field(i).type)) for i in range(ty.num_fields)]
        return lambda v: {k: c(v[k]) for k, c in subs if v.get(k) is not None}
    if t.is_map(ty):
        kc, vc = _converter(ty.key_type), _converter(ty.item_type)
        return lambda v: {str(kc(k)): vc(x) for k, x in v}
    if t.is_list(ty) or t.is_large_list(ty) or t.is_fixed_size_list(ty):
        ic = _converter(ty.value_type)
        return lambda v: [ic(x) if x is not None else None for x in v]
    if t.is_dictionary(ty):
        return _converter(ty.value_type)
    if t.is_timestamp(ty):
        return _iso_datetime
    if t.is_date(ty) or t.is_time(ty):
        return lambda v: v.isoformat()
    if t.is_decimal(ty):
        return lambda v: int(v) if v == v.to_integral_value() else float(v)
    if t.is_binary(ty) or t.is_large_binary(ty) or t.is_fixed_size_binary(ty):
        return lambda v: base64.b64encode(v).decode()
    if t.is_duration(ty):
        return lambda v: v.total_seconds() if isinstance(v, dt.timedelta) else v
    return _plain


def _plain(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):  # NaN has no JSON form: absent
        return None
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v


def _iso_datetime(v: Any) -> Any:
    if not isinstance(v, dt.datetime):  # out-of-range values come back as ints; keep them visible
        return v
    v = v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)
    return v.isoformat().replace("+00:00", "Z")


# -- dispatch ---------------------------------------------------------------------------------------

def read_items(fmt: InputFormat, name: str, parts: Iterable[bytes], type_at: TypeAt | None = None
               ) -> Iterator[Item]:
    """The records of one file in the batch's input format."""
    if fmt.format == "json":
        return json_document(name, parts) if fmt.multiline else json_lines(name, parts)
    if fmt.format == "csv":
        return csv_rows(name, parts, fmt.mapping, type_at or (lambda _p: None))
    if fmt.format == "parquet":
        return parquet_rows(name, parts, fmt.mapping)
    raise ValueError(f"unknown format {fmt.format!r}")
