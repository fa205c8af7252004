"""Profile-store benchmark: identity stitching at ingestion, and merged-profile lookups.

    wayline bench profile --json            (or: python bench/profile.py --json)

Builds `--profiles` profiles (default 1,000,000) in a fresh SQLite file (a temporary directory, or
`--db PATH`), then looks profiles up by a random identity and reports latency, ingestion rate and
size. Everything but generating the records runs in this process, on the product's own code paths:

  setup     through the HTTP API (an in-process client over `wayline.runtime.build_app`): a custom
            CRMID namespace, a loyalty field group, a profile schema (union), two profile-enabled
            datasets (`crm`, `loyalty`) and a default merge policy stitching on the identity graph
            (pdg, timestampOrdered);
  build     units of about `--chunk` records, generated in a child process (this script with
            `--feed`) and received as a client would send them to `POST /datasets/{id}/records`:
            one JSON array of records per dataset (so that making test data does not compete with
            ingestion for this interpreter's lock). Each array goes to
            `PlatformService.prepare_many(dataset, body)`, as that route does: arrays of 32 KiB
            and more are parsed, validated and pass the identity rules in a prepare worker process
            (`prepare_pool`; `WAYLINE_PREPARE_PROCESSES=0` keeps everything in this process), then
            `Store.write(ingestion.store_prepared(...))` on the store's writer (records +
            `profiles.apply`: stitching, fragments, view, outbox; the views merged in a view worker
            with `views=` the same pool, as the server's intake does). The next unit is received and
            prepared while the writer stores the last one, as a client that sends its next request
            before the last is answered; the writer takes one unit at a time (`--inflight 2` queues
            two, which the writer then commits as one group, as it does for the API; measured
            slower, see bench/README.md). `--pregenerate` generates every unit into a temporary
            file before the clock starts and reads them from it, so that the generator does not
            share the machine's cores with the server while it ingests, as a load generator on
            another machine would not. By default the generator runs alongside at the lowest CPU
            priority (`--generator-nice 19`): it gets the cores the server leaves, and its ~10 % of a
            core no longer delays the writer; `--generator-nice 0` runs it as an equal;
  lookups   `ProfileService.profile(...)` awaited one at a time on the event loop, for a random
            identity of a random built profile, under the default (pdg) policy: the stored merged
            view is read; then `explain=True` lookups, which merge on read.

Data, deterministic for a `--seed`: profile i has 3 records (3 fragments) from 2 datasets and a
graph of 2, 3 or 4 identities (25 / 35 / 40 %):

  crm      primary CRMID + Email; name, birth date, gender, email, home address, tier;
  loyaltyB size 2: primary CRMID + Email; size 3: primary Phone; size 4: primary ECID (38 digits) +
           Phone and a push token; points, tier;
  loyaltyA primary Email (+ Phone for sizes 3 and 4); mobile phone, points, tier, tags, last name.

Unit k holds loyaltyB of profile window k, crm of window k-1 and loyaltyA of window k-2, so for sizes
3 and 4 the loyaltyA record really merges two stored graphs ({CRMID, Email} + {Phone[, ECID]}).
A quarter of the emails come in mixed case (ingestion normalises them). Bodies are 200-650 bytes of
JSON (crm ~600, loyaltyA ~380, loyaltyB ~310).

Checks (exit code 1 when one fails): identities and graphs in the store equal the generator's; every
lookup answers the profile's identities; the explain (merge-on-read) entity equals the stored view.

`--profile-dir DIR` runs pyinstrument over the build phase (main thread: generating, preparing; the
writer thread: storing) and writes DIR/build-{main,writer}.{txt,html} and DIR/build-hotspots.json
(self and inclusive times, overall and inside `store_prepared` and `profiles.apply`). Profiled
figures are slower: use them for where time goes. `--postgres-url URL` (an admin URL) runs the same
in a database created for the run and dropped at the end; skipped by default.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import itertools
import json
import os
import random
import secrets
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGETS = {"lookup_p99_ms": 5.0, "ingest_records_per_s": 10_000, "build_seconds_per_million": 300.0}
PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
FG_IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
FG_PERSON = "https://ns.adobe.com/xdm/context/profile-person-details"
FG_CONTACT = "https://ns.adobe.com/xdm/context/profile-personal-details"
FG_PUSH = "https://ns.adobe.com/xdm/context/profile-push-notification-details"
FG_EXT_AUDIT = "https://ns.adobe.com/xdm/common/external-source-system-audit-details"
SIZES = ((2, 25), (3, 35), (4, 40))  # graph size, percent of profiles


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _sibling(name: str) -> Any:
    """Another script of bench/ (the profiler helpers and machine info live in ingest.py)."""
    mod = sys.modules.get(f"wayline_bench_{name}")
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(f"wayline_bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# ================================================================================================
# The generator
# ================================================================================================

_MASK = (1 << 64) - 1
FIRST = ("Ann", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko", "Liam",
         "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wen", "Yusuf")
LAST = ("Smith", "Garcia", "Muller", "Rossi", "Dubois", "Nowak", "Silva", "Jensen", "Kowalski", "Tanaka",
        "Okafor", "Novak", "Larsen", "Moreau", "Fischer", "Costa", "Ivanova", "Haddad", "Byrne", "Lindqvist")
CITIES = (("Lyon", "69002", "FR"), ("Porto", "4000-123", "PT"), ("Leeds", "LS1 4AP", "GB"),
          ("Austin", "78701", "US"), ("Osaka", "530-0001", "JP"), ("Graz", "8010", "AT"),
          ("Bergen", "5003", "NO"), ("Gdansk", "80-001", "PL"))
TIERS = ("bronze", "silver", "gold", "platinum")
TAGS = ("newsletter", "app-user", "store-visitor", "vip", "returns", "gift-card", "sms-opt-in", "b2b")
GENDERS = ("male", "female", "not_specified", "non_specific")
BASE_MS = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)


def mix(x: int) -> int:
    """splitmix64: a cheap, well-spread hash of an integer (deterministic across runs and processes)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Generator:
    """Profile i's records and identities, computed from (seed, i) alone."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def h(self, i: int) -> int:
        return mix(i * 0x1F123BB5 + self.seed * 0x5851F42D4C957F2D)

    def size(self, i: int) -> int:
        pct = self.h(i) % 100
        acc = 0
        for size, share in SIZES:
            acc += share
            if pct < acc:
                return size
        return SIZES[-1][0]

    # identity values (as stored: emails normalised)
    @staticmethod
    def crmid(i: int) -> str:
        return f"C{i:09d}"

    def email(self, i: int) -> str:
        h = self.h(i)
        return f"{FIRST[h % len(FIRST)]}.{LAST[(h >> 8) % len(LAST)]}.{i}@example.com".lower()

    @staticmethod
    def phone(i: int) -> str:
        return f"+1{2_000_000_000 + i}"

    def ecid(self, i: int) -> str:
        return f"{self.h(i) % 10**19:019d}{i:019d}"

    def identities(self, i: int) -> list[tuple[str, str]]:
        """The identities of profile i's graph."""
        out = [("CRMID", self.crmid(i)), ("Email", self.email(i))]
        size = self.size(i)
        if size >= 3:
            out.append(("Phone", self.phone(i)))
        if size == 4:
            out.append(("ECID", self.ecid(i)))
        return out

    def _email_as_sent(self, i: int) -> str:
        h = self.h(i)
        e = f"{FIRST[h % len(FIRST)]}.{LAST[(h >> 8) % len(LAST)]}.{i}@example.com"
        return e if (h >> 16) % 4 == 0 else e.lower()  # a quarter arrive in mixed case

    # records
    def crm(self, i: int) -> dict[str, Any]:
        h = self.h(i)
        first, last = FIRST[h % len(FIRST)], LAST[(h >> 8) % len(LAST)]
        city, postcode, cc = CITIES[(h >> 20) % len(CITIES)]
        email = self._email_as_sent(i)
        ts = BASE_MS + (h >> 24) % (180 * 86_400_000)
        return {
            "_id": f"crm-{i}",
            "identityMap": {"CRMID": [{"id": self.crmid(i), "primary": True, "authenticatedState": "authenticated"}],
                            "Email": [{"id": email}]},
            "person": {"name": {"firstName": first, "lastName": last, "fullName": f"{first} {last}"},
                       "birthDate": f"{1950 + (h >> 32) % 55}-{1 + (h >> 40) % 12:02d}-{1 + (h >> 44) % 28:02d}",
                       "gender": GENDERS[(h >> 48) % 4]},
            "personalEmail": {"address": email.lower(), "primary": True, "status": "active"},
            "homeAddress": {"street1": f"{1 + (h >> 12) % 300} Market Street", "city": city, "postalCode": postcode,
                            "countryCode": cc},
            "_wayline": {"tier": TIERS[(h >> 52) % 4]},
            "extSourceSystemAudit": {"createdBy": "crm-sync", "lastUpdatedDate": iso(ts)},
        }

    def loyalty_a(self, i: int) -> dict[str, Any]:
        h = mix(self.h(i) + 1)
        size = self.size(i)
        im: dict[str, Any] = {"Email": [{"id": self._email_as_sent(i), "primary": True}]}
        rec: dict[str, Any] = {"_id": f"loya-{i}", "identityMap": im}
        if size >= 3:
            im["Phone"] = [{"id": self.phone(i)}]
            rec["mobilePhone"] = {"number": self.phone(i), "primary": True, "status": "active"}
        ts = BASE_MS + h % (365 * 86_400_000)
        rec["person"] = {"name": {"lastName": LAST[(h >> 8) % len(LAST)]}}
        rec["_wayline"] = {"points": int(h >> 40) % 50_000, "tier": TIERS[(h >> 20) % 4],
                           "tags": sorted({TAGS[(h >> s) % len(TAGS)] for s in (24, 28, 32)})}
        rec["extSourceSystemAudit"] = {"createdBy": "loyalty", "lastUpdatedDate": iso(ts)}
        return rec

    def loyalty_b(self, i: int) -> dict[str, Any]:
        h = mix(self.h(i) + 2)
        size = self.size(i)
        if size == 2:
            im = {"CRMID": [{"id": self.crmid(i), "primary": True}], "Email": [{"id": self._email_as_sent(i)}]}
        elif size == 3:
            im = {"Phone": [{"id": self.phone(i), "primary": True}]}
        else:
            im = {"ECID": [{"id": self.ecid(i), "primary": True, "authenticatedState": "ambiguous"}],
                  "Phone": [{"id": self.phone(i)}]}
        ts = BASE_MS + h % (365 * 86_400_000)
        rec: dict[str, Any] = {"_id": f"loyb-{i}", "identityMap": im,
                               "_wayline": {"points": int(h >> 40) % 50_000, "tier": TIERS[(h >> 20) % 4]},
                               "extSourceSystemAudit": {"createdBy": "loyalty-app", "lastUpdatedDate": iso(ts)}}
        if size == 4:
            rec["pushNotificationDetails"] = [{"token": f"{h:016x}{i:08x}", "platform": ("apns", "fcm")[h % 2],
                                               "appID": "com.example.loyalty", "denylisted": False}]
        return rec

    def expected(self, n: int) -> dict[str, Any]:
        sizes = {2: 0, 3: 0, 4: 0}
        for i in range(n):
            sizes[self.size(i)] += 1
        return {"identities": sum(k * v for k, v in sizes.items()), "graphs": n,
                "graph_sizes": {str(k): v for k, v in sizes.items()}}


def units(n: int, chunk: int) -> tuple[int, int]:
    """(profiles per window, number of units): window k's three record kinds land in units k..k+2."""
    w = max(1, chunk // 3)
    windows = (n + w - 1) // w
    return w, windows + 2 if windows else 0


def unit_records(gen: Generator, k: int, w: int, n: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """Unit k: loyaltyB of window k, crm of window k-1, loyaltyA of window k-2 (in that order)."""

    def window(j: int) -> range:
        return range(max(0, j * w), min(n, (j + 1) * w)) if j >= 0 else range(0)

    return [("loyalty", [gen.loyalty_b(i) for i in window(k)]),
            ("crm", [gen.crm(i) for i in window(k - 1)]),
            ("loyalty", [gen.loyalty_a(i) for i in window(k - 2)])]


class Feed:
    """Units of records generated in a child process (this script with `--feed`), arriving here as
    JSON, one document per unit, as a client would send them: the main process only parses and
    prepares them, as the API does, and generating test data does not compete with ingestion for
    this process's interpreter lock. A reader thread keeps a few units ahead."""

    def __init__(self, profiles: int, chunk: int, seed: int, ahead: int = 4, *, from_file: Path | None = None,
                 nice: int = 0) -> None:
        """`from_file`: the units were generated into that file beforehand (`generate_file`) and are
        read from it, so that generating them does not compete with ingestion for the cores. `nice`:
        the generator child runs at that much lower a CPU priority (`--generator-nice`)."""
        import queue
        import subprocess
        import threading

        self.proc: Any = None
        self.file: Any = None
        if from_file is None:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--feed", "--profiles", str(profiles),
                 "--chunk", str(chunk), "--seed", str(seed), "--generator-nice", str(nice)],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        else:
            self.file = from_file.open("rb")
        self.units: queue.Queue[list[tuple[str, bytes]] | None] = queue.Queue(maxsize=ahead)
        self.reader = threading.Thread(target=self._read, name="bench-feed", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        out = self.proc.stdout if self.proc is not None else self.file
        assert out is not None
        try:
            parts: list[tuple[str, bytes]] = []
            while n := out.read(1):
                if n == b"\0":
                    self.units.put(parts)
                    parts = []
                    continue
                name = out.read(n[0]).decode()
                parts.append((name, out.read(int.from_bytes(out.read(4), "little"))))
        finally:
            self.units.put(None)

    def next(self) -> list[tuple[str, bytes]]:
        unit = self.units.get()
        if unit is None:
            code = self.proc.wait() if self.proc is not None else "the file ended"
            raise RuntimeError(f"the record generator stopped early ({code})")
        return unit

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def generate_file(path: Path, profiles: int, chunk: int, seed: int) -> float:
    """Every unit generated into `path` (the `--feed` format) by the generator child; returns seconds."""
    import subprocess

    t = time.perf_counter()
    with path.open("wb") as out:
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--feed", "--profiles", str(profiles),
                        "--chunk", str(chunk), "--seed", str(seed), "--generator-nice", "0"], stdout=out,
                       stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def feed_main(profiles: int, chunk: int, seed: int) -> int:
    """The child of `Feed`: every unit's parts on stdout, each a dataset name and its records as one
    JSON array (length-prefixed), a zero byte after the unit's last part."""
    import orjson

    gen = Generator(seed)
    w, n_units = units(profiles, chunk)
    out = sys.stdout.buffer
    try:
        for k in range(n_units):
            for name, records in unit_records(gen, k, w, profiles):
                doc = orjson.dumps(records)
                out.write(len(name).to_bytes(1, "little") + name.encode() + len(doc).to_bytes(4, "little"))
                out.write(doc)
            out.write(b"\0")  # end of the unit
        out.flush()
    except BrokenPipeError:  # the benchmark stopped reading: it is done or failed
        pass
    return 0


# ================================================================================================
# Setup through the API
# ================================================================================================

def _ok(r: Any, *codes: int) -> Any:
    if r.status_code not in (codes or (200, 201)):
        raise RuntimeError(f"setup: {r.request.method} {r.request.url.path} answered {r.status_code}: {r.text}")
    return r.json()


def setup(rt: Any, key: str) -> dict[str, Any]:
    """Namespace, field group, schema, two datasets and the default pdg merge policy; returns ids."""
    from fastapi.testclient import TestClient

    from wayline.kernel import tenancy
    from wayline.runtime import build_app

    tenant = rt.settings.tenant_id
    base = "/schemaregistry/tenant"
    with TestClient(build_app(rt), raise_server_exceptions=True) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        _ok(client.post("/identity/namespaces", json={"code": "CRMID", "name": "CRM id", "idType": "CROSS_DEVICE"}))
        fg = _ok(client.post(f"{base}/fieldgroups", json={
            "title": "Loyalty", "type": "object", "meta:intendedToExtend": [PROFILE_CLASS],
            "definitions": {"l": {"properties": {f"_{tenant}": {"type": "object", "properties": {
                "points": {"type": "integer"}, "tier": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}}}}}}},
            "allOf": [{"$ref": "#/definitions/l"}]}))
        ps = _ok(client.post(f"{base}/schemas", json={
            "title": "People", "type": "object", "meta:class": PROFILE_CLASS,
            "allOf": [{"$ref": g} for g in (PROFILE_CLASS, FG_IDENTITY_MAP, FG_PERSON, FG_CONTACT, FG_PUSH,
                                            FG_EXT_AUDIT, fg["$id"])]}))
        _ok(client.patch(f"{base}/schemas/{ps['meta:altId']}", json={"meta:immutableTags": ["union"]}))
        crm = _ok(client.post("/catalog/dataSets", json={"name": "crm", "schemaRef": {"id": ps["$id"]},
                                                          "profileEnabled": True}))
        loy = _ok(client.post("/catalog/dataSets", json={"name": "loyalty", "schemaRef": {"id": ps["$id"]},
                                                          "profileEnabled": True}))
        pol = _ok(client.post("/config/mergePolicies", json={
            "name": "stitched", "schema": {"name": "_xdm.context.profile"}, "default": True,
            "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}}), 201)
    sandbox = rt.store.read_sync(tenancy.get_sandbox, rt.settings.default_sandbox)
    return {"sandbox_id": sandbox.id, "crm": crm["id"], "loyalty": loy["id"], "policy": pol["id"],
            "schema": ps["$id"]}


# ================================================================================================
# Measuring
# ================================================================================================

def thread_written_bytes(tid: int) -> int | None:
    """Bytes a thread of this process has written (Linux's /proc/<pid>/task/<tid>/io), or None."""
    try:
        with open(f"/proc/{os.getpid()}/task/{tid}/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return None


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


@dataclass
class Options:
    profiles: int = 1_000_000
    chunk: int = 1_000
    lookups: int = 20_000
    explain_lookups: int = 2_000
    inflight: int = 1
    seed: int = 7
    profile_dir: Path | None = None
    table_sizes: bool = True
    pregenerate: bool = False  # generate every unit into a file before the clock starts
    generator_nice: int = 19  # the generator child's CPU priority below this process's


@dataclass
class BuildStats:
    records: int = 0
    failed: int = 0
    duplicates: int = 0
    receive_s: float = 0.0  # waiting for the generator process
    prepare_s: float = 0.0  # from a unit received to it decided (in a prepare worker: the wait for it)
    store_s: list[float] = field(default_factory=list)  # writer time per unit (inside the transaction)
    store_cpu_s: float = 0.0
    write_s: float = 0.0  # from a unit handed to the store to its answer back: store_s + commit + hand-overs
    commit_s: float = 0.0  # the writer's commits
    progress: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, records stored)
    generate_s: float | None = None  # --pregenerate: generating the units, before the clock
    written_bytes: int | None = None  # what the writer thread wrote (its WAL frames), where the OS tells
    first_problem: str | None = None


class WriterProfiler:
    """pyinstrument on the store's writer thread, started and stopped by units of work on that thread."""

    def __init__(self, ingest: Any) -> None:
        self.prof = ingest.new_profiler()
        self.session: Any = None

    def start(self, store: Any) -> None:
        store.write_blocking(lambda _c: self.prof.start())

    def stop(self, store: Any) -> None:
        def stop(_c: Any) -> None:
            self.session = self.prof.stop()

        store.write_blocking(stop)


async def build(rt: Any, ids: dict[str, Any], opts: Options) -> tuple[BuildStats, float]:

    from wayline.kernel.store import now_ms
    from wayline.platform import ingestion

    platform = rt.platform
    if platform.prepare_pool.processes:  # a running server's workers: started before the clock starts
        platform.prepare_pool.start("records", "views")
    sandbox_id = ids["sandbox_id"]
    datasets = {"crm": platform.dataset(sandbox_id, ids["crm"]), "loyalty": platform.dataset(sandbox_id, ids["loyalty"])}
    limits = rt.settings.limits
    _, n_units = units(opts.profiles, opts.chunk)
    stats = BuildStats()
    feed_file: Path | None = None
    if opts.pregenerate:
        fd, name = tempfile.mkstemp(prefix="wayline-bench-feed-", suffix=".bin")
        os.close(fd)
        feed_file = Path(name)
        stats.generate_s = generate_file(feed_file, opts.profiles, opts.chunk, opts.seed)
        log(f"generated the units into {feed_file} in {stats.generate_s:.1f} s ({feed_file.stat().st_size:,} bytes)")
    pending: set[asyncio.Task[Any]] = set()
    commit_before = rt.store.commit_s
    writer_tid = rt.store.write_blocking(lambda _c: threading.get_native_id())
    written_before = thread_written_bytes(writer_tid)
    t0 = time.perf_counter()
    step = max(1, n_units // 20)

    def store_unit(conn: Any, prepared: list[Any]) -> tuple[list[Any], float]:
        s, c = time.perf_counter(), time.thread_time()
        out = ingestion.store_prepared(conn, sandbox_id, prepared, now_ms(), limits, views=platform.prepare_pool)
        stats.store_cpu_s += time.thread_time() - c  # the writer thread's CPU: steadier than its wall time
        return out, time.perf_counter() - s

    async def write(prepared: list[Any], k: int) -> None:
        w0 = time.perf_counter()
        stored, took = await rt.store.write(store_unit, prepared)
        stats.write_s += time.perf_counter() - w0
        stats.store_s.append(took)
        for s in stored:
            if not s.ok:
                stats.failed += 1
                if stats.first_problem is None:
                    stats.first_problem = f"{s.record_id}: {s.violations}"
            elif s.duplicate:
                stats.duplicates += 1
            else:
                stats.records += 1
        stats.progress.append((time.perf_counter() - t0, stats.records))
        if k % step == 0 or k == n_units - 1:
            el = time.perf_counter() - t0
            log(f"  unit {k + 1}/{n_units}: {stats.records:,} records in {el:.1f} s "
                f"({stats.records / max(el, 1e-9):,.0f}/s)")

    feed = Feed(opts.profiles, opts.chunk, opts.seed, from_file=feed_file, nice=opts.generator_nice)
    try:
        for k in range(n_units):
            g0 = time.perf_counter()
            parts = feed.next()
            g1 = time.perf_counter()
            prepared: list[Any] = []
            for got in await asyncio.gather(*(platform.prepare_many(datasets[name], doc)
                                             for name, doc in parts if doc != b"[]")):
                prepared += got
            g2 = time.perf_counter()
            stats.receive_s += g1 - g0
            stats.prepare_s += g2 - g1
            bad = [p for p in prepared if not isinstance(p, ingestion.Prepared)]
            if bad:
                raise RuntimeError(f"a generated record was refused: {bad[0]}")
            while len(pending) >= opts.inflight:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for d in done:
                    d.result()
                pending -= done
            pending.add(asyncio.create_task(write(prepared, k)))
            await asyncio.sleep(0)  # hand the unit to the writer now: the next is prepared while it is stored
    finally:
        feed.close()
        if feed_file is not None:
            feed_file.unlink(missing_ok=True)
    await asyncio.gather(*pending)
    stats.commit_s = rt.store.commit_s - commit_before
    written = thread_written_bytes(writer_tid)
    if written is not None and written_before is not None:
        stats.written_bytes = written - written_before
    return stats, time.perf_counter() - t0


async def lookups(rt: Any, ids: dict[str, Any], opts: Options, n: int, *, explain: bool,
                  rng: random.Random) -> dict[str, Any]:
    from wayline.kernel.problems import Problem
    from wayline.platform.identity import Ident

    gen = Generator(opts.seed)
    svc = rt.profiles
    sandbox_id = ids["sandbox_id"]
    lat: list[float] = []
    mismatches = 0
    examples: list[str] = []
    view_differs = 0
    checked_view = 0
    by_ns: dict[str, int] = {}
    namespaces = sorted({ns for i in range(min(opts.profiles, 1000)) for ns, _ in gen.identities(i)})
    for j in range(n):
        # a namespace at random, then a profile that has an identity in it, at random
        want = namespaces[rng.randrange(len(namespaces))]
        while True:
            i = rng.randrange(opts.profiles)
            members = gen.identities(i)
            found = [v for ns, v in members if ns == want]
            if found:
                break
        ns, value = want, found[0]
        by_ns[ns] = by_ns.get(ns, 0) + 1
        t = time.perf_counter()
        try:
            out = await svc.profile(sandbox_id=sandbox_id, ident=Ident(ns, value), explain=explain)
        except Problem as p:
            lat.append((time.perf_counter() - t) * 1000.0)
            mismatches += 1
            if len(examples) < 5:
                examples.append(f"profile {i} by {ns}:{value}: {p.status} {p.detail}")
            continue
        lat.append((time.perf_counter() - t) * 1000.0)
        got = sorted((x["namespace"]["code"], x["id"]) for x in out["identities"])
        if got != sorted(members):
            mismatches += 1
            if len(examples) < 5:
                examples.append(f"profile {i} by {ns}:{value}: identities {got}, expected {sorted(members)}")
        if explain and j < 200:  # merge on read must give what the stored view holds
            checked_view += 1
            stored = await svc.profile(sandbox_id=sandbox_id, ident=Ident(ns, value))
            if stored["entity"] != out["entity"]:
                view_differs += 1
    lat.sort()
    return {"lookups": n, "p50_ms": round(percentile(lat, 50), 3), "p90_ms": round(percentile(lat, 90), 3),
            "p99_ms": round(percentile(lat, 99), 3), "max_ms": round(lat[-1], 3) if lat else None,
            "mean_ms": round(sum(lat) / len(lat), 3) if lat else None, "by_namespace": by_ns,
            "identity_mismatches": mismatches, "mismatch_examples": examples,
            **({"view_checked": checked_view, "view_differs_from_merge_on_read": view_differs} if explain else {})}


def store_counts(rt: Any) -> dict[str, int]:
    import sqlalchemy as sa

    def q(c: Any) -> dict[str, int]:
        def one(sql: str) -> int:
            return int(c.execute(sa.text(sql)).scalar() or 0)

        return {"identities": one("SELECT count(*) FROM identities"),
                "graphs": one("SELECT count(DISTINCT graph_id) FROM identities"),
                "links": one("SELECT count(*) FROM identity_links"),
                "fragments": one("SELECT count(*) FROM profile_fragments"),
                "view_rows": one("SELECT count(*) FROM profile_view"),
                "records_stored": one("SELECT count(*) FROM records"),
                "graph_events": one("SELECT count(*) FROM graph_events"),
                "outbox_messages": one("SELECT count(*) FROM outbox")}

    return rt.store.read_sync(q)


def sqlite_size(path: Path, table_sizes: bool) -> dict[str, Any]:
    """Checkpoint the WAL (TRUNCATE) on a connection of our own, then the bytes on disk."""
    con = sqlite3.connect(str(path), timeout=60)
    try:
        busy, log_frames, done = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        out: dict[str, Any] = {"checkpoint": {"busy": busy, "wal_frames": log_frames, "checkpointed": done}}
        if table_sizes:
            t = time.perf_counter()
            rows = con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
            out["objects_bytes"] = {name: int(b) for name, b in rows if b and b >= 1 << 16}
            out["dbstat_s"] = round(time.perf_counter() - t, 2)
    finally:
        con.close()
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    out["db_bytes"] = sum(f.stat().st_size for f in files if f.exists())
    return out


def postgres_size(rt: Any) -> dict[str, Any]:
    import sqlalchemy as sa

    def q(c: Any) -> dict[str, Any]:
        total = int(c.execute(sa.text("SELECT pg_database_size(current_database())")).scalar())
        rows = c.execute(sa.text(
            "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC")).all()
        return {"db_bytes": total, "objects_bytes": {r[0]: int(r[1]) for r in rows if r[1] >= 1 << 16}}

    return rt.store.read_sync(q)


# ================================================================================================
# pyinstrument reports
# ================================================================================================

def write_profile_reports(out_dir: Path, main_session: Any, writer_session: Any) -> dict[str, Any]:
    from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer

    ingest = _sibling("ingest")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"profiler": "pyinstrument",
                               "clock": os.environ.get("WAYLINE_BENCH_PROFILE_CLOCK", "wall")}
    for name, session in (("main", main_session), ("writer", writer_session)):
        if session is None or session.root_frame() is None:
            continue
        text = ConsoleRenderer(unicode=False, color=False, show_all=False, timeline=False,
                               short_mode=False).render(session)
        (out_dir / f"build-{name}.txt").write_text(text)
        (out_dir / f"build-{name}.html").write_text(HTMLRenderer().render(session))
        summary[name] = ingest.tally_session(session).report(top=25)
    if writer_session is not None and writer_session.root_frame() is not None:
        for func, file in (("store_prepared", "platform/ingestion.py"), ("apply", "platform/profiles.py")):
            summary[f"inside {func}"] = subtree_report(ingest, writer_session, func, file)
    (out_dir / "build-hotspots.json").write_text(json.dumps(summary, indent=1))
    return summary


def subtree_report(ingest: Any, session: Any, func: str, file_suffix: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive times of the frames below `func` (of a file ending in `file_suffix`)."""
    tally = ingest.Tally()
    root = session.root_frame(trim_stem=False)

    def walk(frame: Any, stack: list[Any] | None) -> None:
        if frame.is_synthetic:
            return
        me = (frame.function or "?", frame.file_path or "?", frame.line_no or 0)
        if stack is None and frame.function == func and (frame.file_path or "").endswith(file_suffix):
            stack = []
        here = None if stack is None else stack + [me]
        if here is not None:
            tally.add(here, frame.total_self_time)
        for child in frame.children:
            walk(child, here)

    walk(root, None)
    rep = tally.report(top=top)
    return {"total_s": rep["total_s"], "layers": rep["layers"], "self": rep["self"], "inclusive": rep["inclusive"]}


# ================================================================================================
# A run on one database
# ================================================================================================

async def run_on(rt: Any, ids: dict[str, Any], opts: Options, sqlite_path: Path | None) -> dict[str, Any]:
    from wayline.runtime import tune_gc

    tune_gc(rt.settings)  # as `wayline run` does
    ingest = _sibling("ingest") if opts.profile_dir else None
    main_prof = writer_prof = None
    if ingest is not None:
        writer_prof = WriterProfiler(ingest)
        await asyncio.to_thread(writer_prof.start, rt.store)
        main_prof = ingest.new_profiler()
        main_prof.start()
    log(f"build: {opts.profiles:,} profiles, {3 * opts.profiles:,} records, units of ~{opts.chunk} records")
    cpu0 = time.process_time()
    stats, build_s = await build(rt, ids, opts)
    cpu = time.process_time() - cpu0
    out: dict[str, Any] = {}
    if ingest is not None:
        main_session = main_prof.stop()
        await asyncio.to_thread(writer_prof.stop, rt.store)
        out["profile_reports"] = str(opts.profile_dir)
        hot = write_profile_reports(opts.profile_dir, main_session, writer_prof.session)
        out["hotspots"] = {k: {"self": v["self"][:10], "inclusive": v["inclusive"][:16]}
                           for k, v in hot.items() if isinstance(v, dict) and "self" in v}
        log(f"pyinstrument reports in {opts.profile_dir}")
    gen = Generator(opts.seed)
    expected = gen.expected(opts.profiles)
    counts = store_counts(rt)
    size = await asyncio.to_thread(sqlite_size, sqlite_path, opts.table_sizes) if sqlite_path else postgres_size(rt)
    log(f"built in {build_s:.1f} s: {stats.records:,} records ({stats.records / build_s:,.0f}/s); "
        f"{counts['identities']:,} identities in {counts['graphs']:,} graphs; {size['db_bytes'] / 1e6:,.1f} MB")
    rng = random.Random(opts.seed + 1)
    gc.collect()
    log(f"lookups: {opts.lookups:,} (stored view), then {opts.explain_lookups:,} with explain (merge on read)")
    view = await lookups(rt, ids, opts, opts.lookups, explain=False, rng=rng)
    explain = await lookups(rt, ids, opts, opts.explain_lookups, explain=True, rng=rng)
    # the last 20% of units: the rate once the store is large
    prog = stats.progress
    cut = prog[max(0, int(len(prog) * 0.8) - 1)] if prog else (0.0, 0)
    steady = ((prog[-1][1] - cut[1]) / (prog[-1][0] - cut[0])) if prog and prog[-1][0] > cut[0] else None
    deciles: list[float | None] = []
    if len(prog) >= 10:  # records per second in each tenth of the build (by units)
        marks = [(0.0, 0)] + [prog[round(len(prog) * d / 10) - 1] for d in range(1, 11)]
        deciles = [round((b[1] - a[1]) / (b[0] - a[0]), 1) if b[0] > a[0] else None
                   for a, b in itertools.pairwise(marks)]
    st = sorted(stats.store_s)
    n = opts.profiles
    consistent = (stats.records == 3 * n and stats.failed == 0 and counts["identities"] == expected["identities"]
                  and counts["graphs"] == expected["graphs"] and view["identity_mismatches"] == 0
                  and explain["identity_mismatches"] == 0 and explain.get("view_differs_from_merge_on_read", 0) == 0)
    out.update({
        "profiles": n, "records": stats.records, "failed_records": stats.failed, "duplicates": stats.duplicates,
        "build_seconds": round(build_s, 2),
        "ingest_records_per_s": round(stats.records / build_s, 1) if build_s > 0 else None,
        "ingest_records_per_s_steady": round(steady, 1) if steady else None,
        "lookup_p50_ms": view["p50_ms"], "lookup_p99_ms": view["p99_ms"],
        "lookup_explain_p50_ms": explain["p50_ms"], "lookup_explain_p99_ms": explain["p99_ms"],
        "db_bytes": size["db_bytes"], "db_bytes_per_profile": round(size["db_bytes"] / n, 1) if n else None,
        "identities": counts["identities"], "graphs": counts["graphs"],
        "expected": expected, "consistent": consistent,
        "build": {"units": len(stats.store_s), "records_per_unit": 3 * units(n, opts.chunk)[0],
                  "inflight": opts.inflight, "process_cpu_s": round(cpu, 2),
                  "generator": "before the clock" if opts.pregenerate else "alongside",
                  "generator_nice": None if opts.pregenerate else opts.generator_nice,
                  **({"generate_s": round(stats.generate_s, 1)} if stats.generate_s is not None else {}),
                  "receive_s": round(stats.receive_s, 2), "prepare_s": round(stats.prepare_s, 2),
                  "store_s": round(sum(st), 2),
                  # minus store_s: the commits and the hand-overs between the loop and the writer
                  "write_s": round(stats.write_s, 2), "commit_s": round(stats.commit_s, 2),
                  # the writer's WAL bytes: what the store's B-trees cost in pages, whatever the machine's speed
                  "writer_written_bytes_per_record": (round(stats.written_bytes / max(stats.records, 1))
                                                      if stats.written_bytes is not None else None),
                  "store_cpu_us_per_record": round(stats.store_cpu_s / stats.records * 1e6, 1) if stats.records else None,
                  "store_us_per_record": round(sum(st) / stats.records * 1e6, 1) if stats.records else None,
                  "store_ms_per_unit_p50": round(percentile(st, 50) * 1000, 2),
                  "store_ms_per_unit_p99": round(percentile(st, 99) * 1000, 2),
                  "records_per_s_by_decile": deciles,
                  "mean_commit_group": round(sum(rt.store.group_sizes) / len(rt.store.group_sizes), 2)
                  if rt.store.group_sizes else None,
                  **({"first_problem": stats.first_problem} if stats.first_problem else {})},
        "store": counts, "size": size, "lookup": view, "lookup_explain": explain,
    })
    return out


def headline(result: dict[str, Any]) -> dict[str, Any]:
    per_million = result["build_seconds"] * 1_000_000 / result["profiles"] if result.get("profiles") else None
    result["build_seconds_per_million"] = round(per_million, 1) if per_million else None
    result["meets_targets"] = {
        "lookup_p99_ms": result["lookup_p99_ms"] < TARGETS["lookup_p99_ms"],
        "ingest_records_per_s": (result["ingest_records_per_s"] or 0) >= TARGETS["ingest_records_per_s"],
        "build_seconds_per_million": per_million is not None and per_million < TARGETS["build_seconds_per_million"],
    }
    return result


def make_runtime(url: str) -> tuple[Any, str]:
    from wayline.config import Settings
    from wayline.runtime import Runtime

    settings = Settings(database_url=url, secret_key="bench-" + secrets.token_hex(8), log_level="warning",
                        api_key_cache_seconds=60.0, _env_file=None)
    rt = Runtime(settings)
    rt.migrate()
    key = rt.bootstrap()
    if not key:
        rt.close()
        raise RuntimeError("the database was not fresh (bootstrap made no admin key)")
    return rt, key


def run_backend(url: str, opts: Options, sqlite_path: Path | None) -> dict[str, Any]:
    t = time.perf_counter()
    rt, key = make_runtime(url)
    try:
        ids = setup(rt, key)
        log(f"setup ({'sqlite' if sqlite_path else 'postgresql'}) in {time.perf_counter() - t:.1f} s")
        result = asyncio.run(run_on(rt, ids, opts, sqlite_path))
    finally:
        rt.close()
    result["backend"] = "sqlite" if sqlite_path else "postgresql"
    return headline(result)


# ================================================================================================
# main
# ================================================================================================

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = Options()
    p = argparse.ArgumentParser(prog="wayline bench profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print only the JSON object on stdout (one line)")
    p.add_argument("--profiles", type=int, default=d.profiles, help=f"profiles to build (default {d.profiles:,})")
    p.add_argument("--chunk", type=int, default=d.chunk, help=f"records per unit of work (default {d.chunk})")
    p.add_argument("--lookups", type=int, default=d.lookups, help=f"lookups of the stored view (default {d.lookups:,})")
    p.add_argument("--explain-lookups", type=int, default=None,
                   help="lookups with explain=True, merged on read (default: lookups / 10)")
    p.add_argument("--inflight", type=int, default=d.inflight,
                   help=f"units queued to the writer at once; 2 overlaps preparing and storing (default {d.inflight})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"generator seed (default {d.seed})")
    p.add_argument("--db", type=Path, default=None, metavar="PATH",
                   help="SQLite file to build (must not exist; default: in a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards (its path goes to stderr)")
    p.add_argument("--no-table-sizes", action="store_true", help="skip the per-table sizes (SQLite dbstat scan)")
    p.add_argument("--postgres-url", default="", metavar="URL",
                   help="also run on PostgreSQL, in a database created (and dropped) on the server of this admin URL")
    p.add_argument("--postgres-only", action="store_true", help="with --postgres-url: skip SQLite")
    p.add_argument("--pregenerate", action="store_true",
                   help="generate every unit into a temporary file before the build's clock starts, so that the "
                        "generator does not share the cores with the server while it ingests (as a load "
                        "generator on another machine); by default it runs alongside")
    p.add_argument("--generator-nice", type=int, default=d.generator_nice, metavar="N",
                   help="run the generator alongside at N lower CPU priority (default %(default)s: it takes the "
                        "cores the server leaves, as a load generator that must not slow the server it "
                        "measures; 0: the same priority as the server)")
    p.add_argument("--feed", action="store_true", help=argparse.SUPPRESS)  # the generator child (Feed)
    p.add_argument("--profile-dir", type=Path, default=None, metavar="DIR",
                   help="pyinstrument over the build phase (main + writer thread); reports into DIR")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.feed:
        if args.generator_nice > 0:
            os.nice(min(19, args.generator_nice))  # (the generator child lowers its own priority)
        return feed_main(args.profiles, args.chunk, args.seed)
    if args.profiles < 1 or args.chunk < 3 or args.inflight < 1 or args.lookups < 1:
        log("--profiles, --lookups and --inflight are at least 1, --chunk at least 3")
        return 2
    explain_n = max(1, args.explain_lookups if args.explain_lookups is not None else args.lookups // 10)
    opts = Options(profiles=args.profiles, chunk=args.chunk, lookups=args.lookups, explain_lookups=explain_n,
                   inflight=args.inflight, seed=args.seed, table_sizes=not args.no_table_sizes,
                   profile_dir=args.profile_dir.resolve() if args.profile_dir else None,
                   pregenerate=args.pregenerate, generator_nice=max(0, min(19, args.generator_nice)))
    if args.postgres_only and not args.postgres_url:
        log("--postgres-only needs --postgres-url")
        return 2
    # main() may run inside another process (the smoke test): what it changes globally is put back.
    policy = asyncio.get_event_loop_policy()
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    import structlog

    configured = structlog.is_configured()
    if not configured:  # log to stderr: stdout carries only the JSON
        from wayline.config import Settings
        from wayline.runtime import configure_logging

        configure_logging(Settings(log_level="warning", _env_file=None))
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    try:
        return _main(args, opts)
    finally:
        asyncio.set_event_loop_policy(policy)
        gc.set_threshold(*threshold)
        if not frozen:
            gc.unfreeze()
        if not configured:
            structlog.reset_defaults()


def _main(args: argparse.Namespace, opts: Options) -> int:
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    result: dict[str, Any] = {}
    tmp = None
    if not args.postgres_only:
        if args.db is not None:
            path = args.db.resolve()
            if path.exists():
                log(f"{path} exists; --db names a file to create")
                return 2
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(tempfile.mkdtemp(prefix="wayline-bench-profile-"))
            path = tmp / "wayline.db"
        log(f"SQLite: {path}")
        try:
            result = run_backend(f"sqlite:///{path}", opts, path)
        finally:
            if args.keep:
                log(f"kept: {path}")
            elif tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    f.unlink(missing_ok=True)
    if args.postgres_url:
        pg_opts = Options(**{**opts.__dict__, "profile_dir": None})
        with _sibling("ingest").PostgresDatabase(args.postgres_url) as db_url:
            log(f"PostgreSQL: database {db_url.rsplit('/', 1)[-1].split('?')[0]}")
            pg = run_backend(db_url, pg_opts, None)
        if args.postgres_only:
            result = pg
        else:
            result["postgresql"] = pg
    else:
        result["postgresql"] = {"skipped": "pass --postgres-url (a PostgreSQL admin URL) to run it"}
    result["targets"] = TARGETS
    result["machine"] = _sibling("ingest").machine()
    result["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    ok = result.get("consistent", True) and result.get("postgresql", {}).get("consistent", True)
    if not ok:
        log("INCONSISTENT: the store does not hold what was ingested (see expected, store, lookup)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
