"""Deciding records in worker processes, so that a large request uses a second core.

The server is one interpreter lock: parsing and validating the next request and storing the last
one take turns on it (docs/benchmarks.md). A `PreparePool` runs the part of ingestion that needs
nothing but the request and a few cached definitions in other processes:

  parse the JSON array → `ingestion.prepare` each record (size, schema, `_id`, time)
                       → for profile records, the identity and fragment rules (`profiles.record_rules`)
                         and the fragment the record makes if it is the first (`new_fragment_text`)

and sends back a compact answer per record (its JSON bytes, its identities, that fragment's JSON),
which this process turns into the same `Prepared` objects as the inline path. The writer then skips
the identity rules of records that passed them in a worker, and writes a new fragment's JSON as
the worker made it. A worker never touches the database: the dataset, the
compiled schema's definition and the sandbox's namespaces travel with the request (the schema is
compiled once per worker and version).

What is decided here is decided exactly as inline (a test holds the two equal, record by record):
a worker's answer only saves work. A record whose identity rules fail in a worker is left for the
writer to decide against the namespaces of its own transaction, so a namespace created a moment ago
is never refused because a worker's copy did not have it yet (namespaces are only ever added).

Small requests stay inline (the round trip to a worker costs more than it saves), and so does
everything when `prepare_processes` is 0, and everything while a pool's first worker is starting
(about a second after the first large request, or after a pool was lost). If a worker dies, or
answers nothing for `TIMEOUT_S` (stuck), the request is decided inline, the pool's workers are ended
and a new pool is started for the next one.

The store's writer uses the pool too (`profiles.ViewMerger`): the stored views of a unit that touches
`MIN_VIEWS` profiles or more are merged by `merging.merged_json` in a view worker, from the fragments'
JSON text, while the writer writes the unit's other rows. View workers are separate from record
workers, so that the writer never waits behind the next request's records; a dead one means that
unit's views are merged by the writer.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from typing import Any

import orjson
import structlog

from wayline.config import Limits
from wayline.kernel.problems import FieldError, Problem
from wayline.platform import identity, ingestion, merging
from wayline.platform.datasets import Dataset

log = structlog.get_logger("wayline.ingestion")

MIN_BYTES = 32_768  # smaller payloads are decided inline: a worker round trip costs about 1 ms, what
# deciding ~60 records of a few hundred bytes costs here
MIN_VIEWS = 64  # fewer views are merged by the writer itself (a merge costs ~10-20 us)
TIMEOUT_S = 60.0  # a worker silent this long is taken for stuck: its work is done here, it is ended
START_TIMEOUT_S = 60.0  # `start` waits this long for a new worker's interpreter and imports


class PreparePool:
    """Worker processes that decide records (see the module's doc). `processes` 0: everything inline."""

    def __init__(self, processes: int, *, min_bytes: int = MIN_BYTES, min_views: int = MIN_VIEWS,
                 timeout_s: float = TIMEOUT_S, nice: int = 0) -> None:
        self.processes = max(0, processes)
        self.nice = nice  # added to the workers' nice value: the writer, serial, gets a core before them
        self.min_bytes, self.min_views, self.timeout_s = min_bytes, min_views, timeout_s
        # Records and views have their own workers: a unit's views, which the writer waits for, never
        # queue behind the next request's records.
        self._pools: dict[str, ProcessPoolExecutor] = {}
        self._up: dict[str, Future[bool]] = {}  # per kind: done once a worker has started
        self._lock = threading.Lock()

    def wanted(self, payload_bytes: int) -> bool:
        return self.processes > 0 and payload_bytes >= self.min_bytes

    def _executor(self, kind: str) -> ProcessPoolExecutor | None:
        """The workers of `kind` ("records" or "views") once one is up, else None. The first call starts
        them; until a worker has started (about a second: a new interpreter and its imports) callers
        do the work themselves, so that nothing waits for a process to start (the writer would wait
        holding its transaction)."""
        with self._lock:
            pool = self._pools.get(kind)
            if pool is None:
                # spawn: the parent runs threads (the store's writer), which fork would copy mid-flight
                pool = self._pools[kind] = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                    initargs=(self.nice,))
                self._up[kind] = pool.submit(_ready)
            up = self._up[kind]
        return pool if up.done() else None

    def start(self, *kinds: str) -> None:
        """Start the workers of `kinds` now and wait until one of each is up (the benchmark, tests).
        Starting is not being stuck: a new interpreter and its imports can take seconds on a busy
        machine, so this waits up to START_TIMEOUT_S whatever `timeout_s` says."""
        for kind in kinds:
            self._executor(kind)
        for kind in kinds:
            self._up[kind].result(timeout=max(self.timeout_s, START_TIMEOUT_S))

    async def prepare(self, dataset: Dataset, compiled: Any, payload: bytes, limits: Limits, *,
                      namespaces: dict[str, identity.Namespace] | None,
                      batch_id: str | None = None) -> list[ingestion.Prepared | Problem]:
        """Decide a JSON array of records of `dataset` in a worker. `namespaces` (profile datasets):
        the sandbox's namespaces, for the identity rules. Raises what the inline path raises for a
        payload that is not an array."""
        pool = self._executor("records")
        if pool is None:  # starting: this request is decided here
            return prepare_inline(dataset, compiled, payload, limits, batch_id=batch_id)
        task = _Task(dataset, _schema_spec(compiled), limits.model_dump(), namespaces, batch_id)
        try:
            answers = await asyncio.wait_for(asyncio.wrap_future(pool.submit(_decide, task, payload)),
                                             self.timeout_s)
        except (BrokenProcessPool, TimeoutError) as exc:
            log.warning("prepare_worker_lost", reason=_why(exc), dataset_id=dataset.id, records="decided inline")
            self._forget("records", pool)
            return prepare_inline(dataset, compiled, payload, limits, batch_id=batch_id)
        if isinstance(answers, tuple):  # the payload itself was refused
            raise _problem_from(answers)
        return _rebuild(answers, dataset, compiled, batch_id)

    # -- the stored view's merges (`profiles.ViewMerger`), from the store's writer ------------------

    def wants_views(self, n: int) -> bool:
        return self.processes > 0 and n >= self.min_views and self._executor("views") is not None

    def merge_views(self, groups: list[list[tuple[Any, ...]]], policy: merging.Policy) -> Callable[[], list[str]]:
        """Start `merging.merged_json(groups, policy)` in a worker; the function returned waits for
        it (or, if the worker died or is stuck, merges here: the writer holds its transaction while
        it waits, so it never waits longer than `timeout_s`)."""
        pool = self._executor("views")
        if pool is None:  # (dropped since `wants_views`)
            return lambda: merging.merged_json(groups, policy)
        lost: BaseException | None = None
        try:
            fut = pool.submit(merging.merged_json, groups, policy)
        except BrokenProcessPool as exc:
            fut, lost = None, exc

        def result() -> list[str]:
            nonlocal lost
            try:
                if fut is not None:
                    return fut.result(timeout=self.timeout_s)
            except (BrokenProcessPool, TimeoutError) as exc:
                lost = exc
            log.warning("prepare_worker_lost", reason=_why(lost), views=len(groups), merged="here")
            self._forget("views", pool)
            return merging.merged_json(groups, policy)
        return result

    def _forget(self, kind: str, pool: ProcessPoolExecutor) -> None:
        """Stop using `pool` (a worker died or is stuck): its workers are ended, the next task starts
        a new pool."""
        with self._lock:
            if self._pools.get(kind) is pool:
                del self._pools[kind], self._up[kind]
        for proc in list((getattr(pool, "_processes", None) or {}).values()):  # (no public way before 3.14)
            if proc.is_alive():
                proc.kill()  # a stuck worker does not leave by itself; a dead one is already gone
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pools, self._pools, self._up = list(self._pools.values()), {}, {}
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def _why(exc: BaseException | None) -> str:
    return "stuck" if isinstance(exc, TimeoutError) else "died"


def records_of(payload: bytes) -> list[Any]:
    """The records of a JSON array, or a 400 problem."""
    from wayline.kernel.web import parse_json

    records = parse_json(payload, records=True)
    if not isinstance(records, list):
        raise Problem(400, "bad-message", "Invalid records", "the records are a JSON array",
                      [FieldError("/", "expected an array of records", "array")])
    return records


def prepare_inline(dataset: Dataset, compiled: Any, payload: bytes, limits: Limits, *,
                   batch_id: str | None = None) -> list[ingestion.Prepared | Problem]:
    """The same decisions in this process (the identity rules are left to the writer)."""
    return ingestion.prepare_all(dataset, compiled, records_of(payload), limits, batch_id=batch_id)


# -- what travels --------------------------------------------------------------------------------

class _Task:
    __slots__ = ("batch_id", "dataset", "limits", "namespaces", "schema")

    def __init__(self, dataset: Dataset, schema: dict[str, Any], limits: dict[str, Any],
                 namespaces: dict[str, identity.Namespace] | None, batch_id: str | None) -> None:
        self.dataset, self.schema, self.limits = dataset, schema, limits
        self.namespaces, self.batch_id = namespaces, batch_id

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.dataset, self.schema, self.limits, self.namespaces, self.batch_id)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.dataset, self.schema, self.limits, self.namespaces, self.batch_id = state


def _schema_spec(compiled: Any) -> dict[str, Any]:
    """What `compile_schema` needs to build `compiled` again in a worker."""
    return {"uri": compiled.uri, "version": compiled.version, "title": compiled.title,
            "class_uri": compiled.class_uri, "behavior": compiled.behavior,
            "profile_enabled": compiled.profile_enabled, "json_schema": compiled.json_schema,
            "identities": compiled.identities, "alt_id": compiled.alt_id,
            "relationships": compiled.relationships}


# An answer per record, as plain tuples (pickled in C, rebuilt here without the dataset):
#   ("ok", xaction_id, record_id, ts_ms, blob, time_series, identities or None, fragment or None, keys)
#     keys: the entity's top-level keys (the entity itself is parsed from blob only where it is read)
#     identities: ((ns, value, primary, authenticated_state, pointer), ...) when the rules passed
#     fragment: the JSON of the fragment the record makes where there is none yet (see Prepared)
#   ("prepared", Prepared without its dataset)   a record decided invalid (rare: pickled whole)
#   ("problem", status, slug, title, detail, errors, extra)   a record refused (413)
# (A Problem is not pickled as such: an exception made with keyword arguments does not unpickle.)
def _problem_tuple(p: Problem) -> tuple[Any, ...]:
    return ("problem", p.status, p.slug, p.title, p.detail, [asdict(e) for e in p.errors], p.extra)


def _problem_from(t: tuple[Any, ...]) -> Problem:
    _, status, slug, title, detail, errors, extra = t
    return Problem(status, slug, title, detail, [FieldError(**e) for e in errors], extra=extra)


class _Decided(ingestion.Prepared):
    """A record decided in a worker. Its entity is parsed from `blob` the first time it is read: the
    writer of a record that makes a new fragment never reads it (the worker sent the fragment's JSON
    and the entity's keys), so the server process, whose interpreter lock the writer shares, spends
    nothing on it. Everything else is a `Prepared`."""

    @property  # type: ignore[override]
    def entity(self) -> Any:
        d = self.__dict__
        e = d.get("_entity")
        if e is None:
            e = d["_entity"] = orjson.loads(self.blob)  # type: ignore[arg-type]
        return e

    @entity.setter
    def entity(self, value: Any) -> None:
        self.__dict__["_entity"] = value

    def __repr__(self) -> str:  # (a repr, as asyncio's debug mode makes of a task's result, parses nothing)
        return (f"_Decided(dataset={self.dataset.id!r}, record_id={self.record_id!r}, "
                f"xaction_id={self.xaction_id!r}, ok={self.ok!r}, parsed={'_entity' in self.__dict__})")


def _rebuild(answers: list[tuple[Any, ...]], dataset: Dataset, compiled: Any,
             batch_id: str | None) -> list[ingestion.Prepared | Problem]:
    out: list[ingestion.Prepared | Problem] = []
    fields = compiled.identities if dataset.profile_enabled else None
    new, decided, found, ident = object.__new__, _Decided, identity.new_found, identity.new_ident
    for a in answers:
        kind = a[0]
        if kind == "ok":
            _, xid, rid, ts, blob, series, ids, frag, keys = a
            # every field of a Prepared set at once, without its __init__ (which would set the entity)
            p = new(decided)
            p.__dict__ = {"dataset": dataset, "xaction_id": xid, "ok": True, "violations": [], "record_id": rid,
                          "ts_ms": ts, "batch_id": batch_id, "raw": None, "blob": blob, "identity_fields": fields,
                          "time_series": series, "fragment": frag, "keys": keys,
                          "identities": None if ids is None else [
                              found((ident((ns, v)), pr, st, ptr)) for ns, v, pr, st, ptr in ids]}
            out.append(p)
        elif kind == "prepared":
            p = a[1]
            p.dataset = dataset
            out.append(p)
        else:
            out.append(_problem_from(a))
    return out


# -- the worker ----------------------------------------------------------------------------------

_compiled: dict[tuple[str, str, int], Any] = {}


def _init_worker(nice: int = 0) -> None:
    if nice:
        os.nice(nice)  # below the server: ingestion's serial part, the writer, gets a core first
    gc.set_threshold(100_000, 20, 20)  # as the server (runtime.tune_gc): it allocates the same way
    # A worker holds both ends of its task queue, so it would wait for tasks forever after the
    # server was killed: it watches the server instead and leaves with it.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_leave_with, args=(parent,), name="wl-prepare-parent", daemon=True).start()


def _leave_with(parent: Any) -> None:
    parent.join()  # returns when the server process has ended, however it ended
    os._exit(0)


def _ready() -> bool:
    """A worker's first task: what it runs imported, so that the server sends work only to a worker
    that can start on it."""
    from wayline.platform import profiles  # noqa: F401
    from wayline.platform.schemas.compiled import compile_schema  # noqa: F401

    return True


def _decide(task: _Task, payload: bytes) -> list[tuple[Any, ...]] | tuple[Any, ...]:
    from wayline.platform import profiles
    from wayline.platform.schemas.compiled import compile_schema

    dataset, spec = task.dataset, task.schema
    key = (dataset.sandbox_id, spec["uri"], spec["version"])
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = compile_schema(**spec)
    limits = Limits(**task.limits)
    try:
        records = records_of(payload)
    except Problem as p:
        return _problem_tuple(p)
    nss = task.namespaces if dataset.profile_enabled else None
    out: list[tuple[Any, ...]] = []
    prepare, new_id = ingestion.prepare, ingestion.new_xaction_id
    for rec in records:
        try:
            p = prepare(dataset, compiled, rec, limits, xaction_id=new_id(), batch_id=task.batch_id)
        except Problem as exc:
            out.append(_problem_tuple(exc))
            continue
        if not p.ok:
            p.dataset = None  # type: ignore[assignment]  # the caller has it
            out.append(("prepared", p))
            continue
        ids = frag = None
        if nss is not None:
            found, violations = profiles.record_rules(p, nss, limits)
            if not violations:
                ids = tuple((f.ident.ns, f.ident.value, f.primary, f.authenticated_state, f.pointer) for f in found)
                if not p.time_series:
                    frag = profiles.new_fragment_text(p)
        out.append(("ok", p.xaction_id, p.record_id, p.ts_ms, p.blob, p.time_series, ids, frag, tuple(p.entity)))
    return out
