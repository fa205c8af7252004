"""Streaming-ingestion benchmark: synthetic experience events over HTTP into a real server.

    wayline bench ingest --json            (or: python bench/ingest.py --json)

The server runs in a subprocess (uvicorn, uvloop + httptools, one worker) so client and server do not
share a GIL, on a free loopback port, against a fresh SQLite file in a temporary directory (and, when
WAYLINE_BENCH_POSTGRES_URL or WAYLINE_TEST_POSTGRES_URL is set, against a freshly created PostgreSQL
database that is dropped at the end). The harness creates an experience-event schema, a dataset and an
inlet per phase through the API, then drives two phases with an aiohttp client:

  batched   POST /collection/batch/{inlet}, `--batch-size` messages per request, `--batch-concurrency`
            connections;
  single    POST /collection/{inlet}, one message per request, `--concurrency` connections.

Each phase has a short warm-up, then runs for `--seconds`. Latency is measured per request (send to last
byte of the answer). Afterwards the dataset's record count (GET /catalog/dataSets/{id}) must equal the
number of records the server acknowledged. One JSON object goes to stdout; everything else to stderr.

`--py-spy DIR` samples the unprofiled server with py-spy during each measured window (the thread holding
the GIL). `--profile DIR` runs each phase on its own server under pyinstrument (the event-loop thread and
every store writer thread) and writes DIR/<backend>-<phase>-{loop,writer}.{txt,html} plus a hot-spot
summary; profiled figures are slower, so use them for shares of time, not for throughput.
`--server-gc` and `--server-workers` are experiments on the harness's server only (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
XED = "application/vnd.adobe.xed-full+json;version=1"
TARGETS = {"records_per_s_batched": 20_000, "requests_per_s_single": 2_000, "p99_ms": 50.0}


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ================================================================================================
# The server side: a subprocess that migrates, bootstraps and serves (optionally under pyinstrument)
# ================================================================================================

def serve_main() -> None:
    """Entry of the server subprocess. Settings come from WAYLINE_* variables set by the parent."""
    import uvicorn

    from wayline.config import Settings
    from wayline.runtime import Runtime, configure_logging

    port = int(os.environ["WAYLINE_BENCH_PORT"])
    workers = int(os.environ.get("WAYLINE_BENCH_WORKERS", "1"))
    profile_dir = os.environ.get("WAYLINE_BENCH_PROFILE") or None
    settings = Settings()
    configure_logging(settings)
    rt = Runtime(settings)
    rt.migrate()
    key = rt.bootstrap()
    # The admin key goes to the parent on stdout; afterwards stdout is stderr so nothing can block.
    sys.stdout.write(f"BENCH_ADMIN_KEY={key or ''}\n")
    sys.stdout.flush()
    os.dup2(2, 1)
    common = {"host": "127.0.0.1", "port": port, "loop": "uvloop", "http": "httptools", "log_level": "warning",
              "access_log": False, "lifespan": "on"}

    if workers > 1:  # experiment: several API processes on one database (each with its own writer)
        rt.close()
        uvicorn.run("ingest:worker_app", factory=True, app_dir=str(Path(__file__).resolve().parent),
                    workers=workers, **common)
        return

    app = bench_app(rt)
    writer_sessions: list[Any] = []
    loop_profiler = None
    if profile_dir:
        from wayline.kernel.store import Store

        original = Store._writer_loop

        def profiled_writer_loop(self: Any) -> None:
            prof = new_profiler()
            prof.start()
            try:
                original(self)
            finally:
                writer_sessions.append(prof.stop())

        Store._writer_loop = profiled_writer_loop  # type: ignore[method-assign]
        loop_profiler = new_profiler()
        loop_profiler.start()
    tune_gc()
    uvicorn.run(app, workers=1, **common)
    loop_session = loop_profiler.stop() if loop_profiler is not None else None
    rt.close()  # joins the writer threads, which stops their profilers
    if profile_dir:
        write_profiles(Path(profile_dir), loop_session, writer_sessions)


def worker_app() -> Any:
    """The app of one worker process (uvicorn --workers), for the multi-process experiment."""
    from wayline.config import Settings
    from wayline.runtime import Runtime, configure_logging

    settings = Settings()
    configure_logging(settings)
    app = bench_app(Runtime(settings))
    tune_gc()
    return app


def tune_gc() -> None:
    """`default` does what `wayline run` does (runtime.tune_gc, per the gc_tuning setting); `off` leaves
    Python's collector as it is; `freeze` and `tuned` are the harness's experiments."""
    import gc

    server_gc = os.environ.get("WAYLINE_BENCH_SERVER_GC", "default")
    if server_gc == "default":
        from wayline.config import Settings
        from wayline.runtime import tune_gc as product_tune_gc

        product_tune_gc(Settings())
    if server_gc in ("freeze", "tuned"):
        gc.collect()
        gc.freeze()
    if server_gc == "tuned":
        gc.set_threshold(20_000, 20, 20)
    # Another experiment: how long a thread may hold the GIL while another waits (Python's default 5 ms).
    interval = os.environ.get("WAYLINE_BENCH_SWITCH_INTERVAL_MS")
    if interval:
        sys.setswitchinterval(float(interval) / 1000.0)


def bench_app(rt: Any) -> Any:
    """The product's app (runtime.build_app) plus two harness-only routes and a GC timer."""
    import gc
    import threading

    from wayline.runtime import build_app

    app = build_app(rt)
    # Time spent in the cyclic garbage collector (it runs in whichever thread allocates, holding the GIL).
    gc_stats: dict[str, Any] = {"s": 0.0, "collections": [0, 0, 0], "t0": 0.0}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_stats["t0"] = time.perf_counter()
        else:
            gc_stats["s"] += time.perf_counter() - gc_stats["t0"]
            gc_stats["collections"][info["generation"]] += 1

    gc.callbacks.append(on_gc)

    async def threads() -> dict[str, Any]:
        """Native thread ids and names, so the parent can attribute /proc CPU time to threads."""
        sizes = list(getattr(rt.store, "group_sizes", []) or [])
        return {"pid": os.getpid(),
                "threads": {str(t.native_id): t.name for t in threading.enumerate()},
                "group_sizes": {"count": len(sizes), "mean": (sum(sizes) / len(sizes)) if sizes else 0.0,
                                "max": max(sizes) if sizes else 0},
                "gc": {"s": round(gc_stats["s"], 4), "collections": list(gc_stats["collections"])}}

    async def reset() -> dict[str, Any]:
        sizes = getattr(rt.store, "group_sizes", None)
        if isinstance(sizes, list):
            sizes.clear()
        gc_stats.update(s=0.0, collections=[0, 0, 0])
        return {"ok": True}

    # Harness-only routes on the harness's own app instance (the product's code is untouched).
    app.add_api_route("/_bench/threads", threads, methods=["GET"])
    app.add_api_route("/_bench/reset", reset, methods=["POST"])
    return app


# -- profile reports ---------------------------------------------------------------------------------

def new_profiler() -> Any:
    """A pyinstrument profiler for the calling thread.

    It samples wall-clock time (pyinstrument's default), so a thread's waits show up where they happen:
    the event loop's idle time and GIL waits as self time of asyncio's `run`, the writer's idle time as
    `SimpleQueue.get`. WAYLINE_BENCH_PROFILE_CLOCK=cpu samples the thread's CPU clock instead (waits left
    out), at a much higher overhead that inflates call-heavy code; prefer `--py-spy` for CPU shares.
    """
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    if os.environ.get("WAYLINE_BENCH_PROFILE_CLOCK", "wall") == "cpu":
        get_stack_sampler().timer_func = time.thread_time
    return Profiler(interval=0.001, async_mode="disabled")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


Frame = tuple[str, str, int]  # function, file, line

# Where self time goes, by layer: the first rule that matches, from the innermost frame outwards.
# Built-in (C) frames only match by name; otherwise they count for their caller's layer.
_LAYERS: list[tuple[str, Any]] = [
    ("waiting: event loop idle (epoll) or GIL", lambda f, file: f == "run" and file.endswith("asyncio/runners.py")),
    ("waiting: writer idle (queue)", lambda f, file: f in ("SimpleQueue.get", "get") and
     (file == "<built-in>" or file.endswith("queue.py"))),
    ("database driver (sqlite3 / psycopg, C)", lambda f, file: (file == "<built-in>" and
     f.startswith(("Cursor.", "Connection."))) or "psycopg/" in file or "sqlite3/" in file),
    ("SQLAlchemy", lambda f, file: "sqlalchemy/" in file),
    ("schema validation (fastjsonschema + formats)", lambda f, file: file == "<string>" or "fastjsonschema" in file
     or "platform/schemas/" in file),
    ("JSON (orjson)", lambda f, file: file == "<built-in>" and f in ("loads", "dumps")),
    ("metrics (prometheus)", lambda f, file: "prometheus_client/" in file or "kernel/metrics.py" in file),
    ("wayline: ingestion, handlers, auth", lambda f, file: "wayline/" in file),
    ("FastAPI / Starlette / pydantic", lambda f, file: any(x in file for x in ("fastapi/", "starlette/", "pydantic"))),
    ("uvicorn / httptools", lambda f, file: "uvicorn/" in file or "httptools" in file),
    ("asyncio / threads", lambda f, file: any(x in file for x in ("asyncio/", "uvloop", "threading.py", "queue.py",
                                                                 "concurrent/"))),
]


def layer_of(stack: list[Frame]) -> str:
    for func, file, _ in reversed(stack):
        for name, match in _LAYERS:
            if match(func, file):
                return name
        if file != "<built-in>" and not file.startswith("<thread>") and "bench/ingest.py" not in file:
            break
    for func, file, _ in reversed(stack):
        for name, match in _LAYERS:
            if match(func, file):
                return name
    return "other"


class Tally:
    """Self time, inclusive time and time per layer of sampled stacks (root first)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.self_t: dict[str, float] = {}
        self.incl: dict[str, float] = {}
        self.layers: dict[str, float] = {}

    @staticmethod
    def name(frame: Frame) -> str:
        func, file, line = frame
        return f"{func} ({_short(file)}:{line})" if file != "<built-in>" else f"{func} (built-in)"

    def add(self, stack: list[Frame], weight: float) -> None:
        if weight <= 0 or not stack:
            return
        self.total += weight
        names = [self.name(f) for f in stack]
        self.self_t[names[-1]] = self.self_t.get(names[-1], 0.0) + weight
        for n in set(names):
            self.incl[n] = self.incl.get(n, 0.0) + weight
        layer = layer_of(stack)
        self.layers[layer] = self.layers.get(layer, 0.0) + weight

    def merge(self, other: Tally) -> None:
        self.total += other.total
        for mine, theirs in ((self.self_t, other.self_t), (self.incl, other.incl), (self.layers, other.layers)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0.0) + v

    def report(self, top: int = 30, unit: str = "s") -> dict[str, Any]:
        def ranked(d: dict[str, float], n: int) -> list[dict[str, Any]]:
            items = sorted(d.items(), key=lambda kv: kv[1], reverse=True)[:n]
            return [{"function": k, unit: round(v, 3), "share": round(v / (self.total or 1e-9), 4)} for k, v in items]

        busy = self.total - sum(v for k, v in self.layers.items() if k.startswith("waiting"))
        return {"total_" + unit: round(self.total, 3), "busy_share": round(busy / (self.total or 1e-9), 4),
                "layers": {k: round(v / (self.total or 1e-9), 4)
                           for k, v in sorted(self.layers.items(), key=lambda kv: kv[1], reverse=True)},
                "self": ranked(self.self_t, top), "inclusive": ranked(self.incl, top * 2)}


def tally_session(session: Any) -> Tally:
    """A pyinstrument session as a Tally (each real frame's own time, with the stack above it)."""
    tally = Tally()
    root = session.root_frame(trim_stem=False) if session is not None else None
    if root is None:
        return tally

    def walk(frame: Any, stack: list[Frame]) -> None:
        if frame.is_synthetic:
            return
        here = stack + [(frame.function or "?", frame.file_path or "?", frame.line_no or 0)]
        tally.add(here, frame.total_self_time)
        for child in frame.children:
            walk(child, here)

    walk(root, [])
    return tally


def write_profiles(out: Path, loop_session: Any, writer_sessions: list[Any]) -> None:
    from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer

    out.parent.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"profiler": "pyinstrument",
                               "clock": os.environ.get("WAYLINE_BENCH_PROFILE_CLOCK", "wall")}
    sessions = [("loop", loop_session)] + [(f"writer{i}" if len(writer_sessions) > 1 else "writer", s)
                                           for i, s in enumerate(writer_sessions)]
    everything = Tally()
    for name, session in sessions:
        if session is None or session.root_frame() is None:
            continue
        text = ConsoleRenderer(unicode=False, color=False, show_all=False, timeline=False,
                               short_mode=False).render(session)
        Path(f"{out}-{name}.txt").write_text(text)
        Path(f"{out}-{name}.html").write_text(HTMLRenderer().render(session))
        tally = tally_session(session)
        summary[name] = tally.report()
        everything.merge(tally)
    summary["all_threads"] = everything.report(top=40)
    Path(f"{out}-hotspots.json").write_text(json.dumps(summary, indent=1))


# -- py-spy (external sampler: no overhead in the server; only samples of the thread holding the GIL) ----

_PYSPY_FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


def py_spy_binary() -> str | None:
    import shutil

    return os.environ.get("WAYLINE_BENCH_PY_SPY") or shutil.which("py-spy")


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    exe = py_spy_binary()
    if exe is None:
        log("  py-spy not found (install it or set WAYLINE_BENCH_PY_SPY); no py-spy profile")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "200",
           "--format", "raw", "--output", str(out), "--function", "--threads"]
    # Default: only the thread holding the GIL. WAYLINE_BENCH_PY_SPY_ARGS="--idle --native" shows every thread
    # with C frames (native stacks need py-spy to pause the process at each sample).
    extra = os.environ.get("WAYLINE_BENCH_PY_SPY_ARGS", "--gil").split()
    cmd += extra if "--native" in extra else [*extra, "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_py_spy(path: Path) -> dict[str, Any]:
    """Tallies of a py-spy raw (collapsed) file, overall and per thread, in samples."""
    overall = Tally()
    per_thread: dict[str, Tally] = {}
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        stack: list[Frame] = []
        thread = "?"
        for part in body.split(";"):
            m = _PYSPY_FRAME.match(part)
            if m and not part.startswith("thread (") and not part.startswith("process "):
                stack.append((m.group(1), m.group(2), int(m.group(3))))
            elif part.startswith("thread ("):
                thread = part.split(":", 1)[-1].strip().strip('"') or part
        overall.add(stack, float(count))
        per_thread.setdefault(thread, Tally()).add(stack, float(count))
    out = {"profiler": "py-spy " + os.environ.get("WAYLINE_BENCH_PY_SPY_ARGS", "--gil"),
           "all_threads": overall.report(top=40, unit="samples")}
    out["threads"] = {t: round(v.total / (overall.total or 1e-9), 4) for t, v in per_thread.items()}
    return out


# ================================================================================================
# The client side
# ================================================================================================

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `wayline` API process (this file with --serve) on a free loopback port."""

    def __init__(self, database_url: str, workdir: Path, profile: Path | None = None,
                 server_gc: str = "default", workers: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({
            "WAYLINE_DATABASE_URL": database_url,
            "WAYLINE_SECRET_KEY": "bench-" + secrets.token_hex(8),
            "WAYLINE_CONFIG": str(workdir / "no-such-wayline.toml"),
            "WAYLINE_LOG_LEVEL": "warning",
            "WAYLINE_LIMITS__INGEST_RATE_PER_S": "1000000000",
            "WAYLINE_LIMITS__INGEST_BURST": "1000000000",
            "WAYLINE_BENCH_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        })
        env["WAYLINE_BENCH_SERVER_GC"] = server_gc
        env["WAYLINE_BENCH_WORKERS"] = str(workers)
        if profile is not None:
            env["WAYLINE_BENCH_PROFILE"] = str(profile)
        else:
            env.pop("WAYLINE_BENCH_PROFILE", None)
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"], cwd=workdir,
                                     env=env, stdout=subprocess.PIPE, stderr=None, text=True)
        self.admin_key: str | None = None
        self.database_name = database_url.rsplit("/", 1)[-1].split("?")[0] if database_url.startswith("postgres") else ""

    def start(self, timeout: float = 60.0) -> str | None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the child has migrated and bootstrapped
        if not line.startswith("BENCH_ADMIN_KEY="):
            self.stop()
            raise RuntimeError(f"the server did not start (said {line!r}); see stderr")
        self.admin_key = line.split("=", 1)[1].strip() or None
        deadline = time.monotonic() + timeout
        import urllib.request

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see stderr")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self.admin_key
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the server did not answer /healthz in time")

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pids(self) -> list[int]:
        """The server process and its children (uvicorn's worker processes, with --server-workers)."""
        out = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                out.append(int(stat.parent.name))
        return out

    def db_cpu(self) -> float:
        """CPU seconds of the PostgreSQL backends serving this run's database (0 on SQLite)."""
        if not self.database_name:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        needle = f" {self.database_name} ".encode()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if needle not in cmdline.read_bytes():
                    continue
                fields = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def cpu(self) -> dict[str, float]:
        """CPU seconds per native thread id of the server (from /proc), plus the process total."""
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = {}
        total = 0.0
        pids = self.pids()
        for pid in pids:
            base = Path(f"/proc/{pid}/task")
            for task in base.iterdir() if base.exists() else []:
                try:
                    stat = (task / "stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                secs = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
                name = task.name if len(pids) == 1 else f"worker {pid} thread {task.name}"
                out[name] = secs
                total += secs
        out["total"] = total
        out["database"] = self.db_cpu()
        return out


# -- synthetic events ----------------------------------------------------------------------------------

PAGES = [("home", "https://shop.example.com/"), ("search", "https://shop.example.com/search?q=boots"),
         ("product", "https://shop.example.com/p/trail-boot-42"), ("cart", "https://shop.example.com/cart"),
         ("checkout", "https://shop.example.com/checkout")]
EVENT_TYPES = ["web.webpagedetails.pageViews", "commerce.productViews", "commerce.productListAdds",
               "commerce.checkouts", "commerce.purchases"]


@dataclass
class EventShape:
    """Which parts of an event the schema allows (decided from what the registry accepted)."""

    tenant: str = "_wayline"
    web: bool = True
    commerce: bool = True
    product_list: bool = True
    identity_map: bool = True
    environment: bool = False


def event_template(i: int, shape: EventShape) -> dict[str, Any]:
    """One realistic experience event with placeholders for the id and time."""
    name, url = PAGES[i % len(PAGES)]
    etype = EVENT_TYPES[i % len(EVENT_TYPES)]
    e: dict[str, Any] = {"_id": "@@ID@@", "timestamp": "@@TS@@", "eventType": etype}
    if shape.identity_map:
        e["identityMap"] = {"ECID": [{"id": f"{(i * 7919) % 10**12:038d}", "primary": True,
                                      "authenticatedState": "ambiguous"}],
                            "Email": [{"id": f"shopper{i % 5000}@example.com", "primary": False,
                                       "authenticatedState": "authenticated"}]}
    if shape.web:
        e["web"] = {"webPageDetails": {"name": name, "URL": url, "pageViews": {"value": 1}},
                    "webReferrer": {"URL": "https://www.example.org/ref", "type": "external"}}
    if shape.commerce and etype.startswith("commerce."):
        action = etype.split(".", 1)[1]
        e["commerce"] = {action: {"value": 1}}
        if action == "purchases":
            e["commerce"]["order"] = {"purchaseID": f"ord-{i}", "currencyCode": "EUR", "priceTotal": 59.9}
    if shape.product_list and etype.startswith("commerce."):
        e["productListItems"] = [{"SKU": f"SKU-{i % 97:04d}", "name": "Trail boot", "quantity": 1 + i % 3,
                                  "priceTotal": 59.9, "currencyCode": "EUR"}]
    if shape.environment:
        e["environment"] = {"type": "browser", "browserDetails": {"name": "Firefox", "version": "133"}}
    e[shape.tenant] = {"loyaltyTier": ["gold", "silver", "bronze"][i % 3], "sessionNumber": 1 + i % 20,
                       "channelName": "web"}
    return e


class Messages:
    """Pre-serialised message templates; each message gets a fresh `_id` and the current time."""

    def __init__(self, schema_id: str, dataset_id: str, shape: EventShape, tag: str, n: int = 60) -> None:
        import orjson

        ref = {"id": schema_id, "contentType": XED}
        self.templates = []
        for i in range(n):
            msg = {"header": {"schemaRef": ref, "datasetId": dataset_id, "imsOrgId": "bench",
                              "source": {"name": "wayline-bench"}},
                   "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": event_template(i, shape)}}
            self.templates.append(orjson.dumps(msg))
        self.tag = tag
        self.n = 0

    def one(self, ts: bytes) -> bytes:
        self.n += 1
        tpl = self.templates[self.n % len(self.templates)]
        return tpl.replace(b"@@ID@@", f"{self.tag}-{self.n}".encode(), 1).replace(b"@@TS@@", ts, 1)

    def batch(self, size: int, ts: bytes) -> bytes:
        return b'{"messages":[' + b",".join(self.one(ts) for _ in range(size)) + b"]}"


def now_iso() -> bytes:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()


# -- API setup -------------------------------------------------------------------------------------------

class ApiError(RuntimeError):
    pass


async def api(session: Any, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
    async with session.request(method, path, json=body) as r:
        text = await r.text()
        if r.status not in ok:
            raise ApiError(f"{method} {path} -> {r.status}: {text[:800]}")
        return json.loads(text) if text else None


FG_WEB = "https://ns.adobe.com/xdm/context/experienceevent-web"
FG_COMMERCE = "https://ns.adobe.com/xdm/context/experienceevent-commerce"
FG_IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"


async def create_event_schema(session: Any, tenant_id: str) -> tuple[str, EventShape]:
    """An experience-event schema: the class, standard web / commerce / identityMap field groups and a
    tenant field group (`_<tenant>`: loyalty tier, session number, channel).

    A standard field group the registry refuses is left out (and so are its fields from the events).
    """
    tenant = f"_{tenant_id}"
    tag = secrets.token_hex(3)
    tenant_fg = await api(session, "POST", "/schemaregistry/tenant/fieldgroups", {
        "title": f"Bench loyalty fields {tag}", "type": "object", "meta:intendedToExtend": [EVENT_CLASS],
        "definitions": {"loyalty": {"properties": {tenant: {"type": "object", "properties": {
            "loyaltyTier": {"type": "string", "enum": ["gold", "silver", "bronze"]},
            "sessionNumber": {"type": "integer", "minimum": 0},
            "channelName": {"type": "string", "maxLength": 64}}}}}},
        "allOf": [{"$ref": "#/definitions/loyalty"}],
    })
    standard = [("web", FG_WEB), ("commerce", FG_COMMERCE), ("identity_map", FG_IDENTITY_MAP)]
    attempts = [standard, standard[:2], []]
    last: Exception | None = None
    for groups in attempts:
        refs = [{"$ref": EVENT_CLASS}, {"$ref": tenant_fg["$id"]}] + [{"$ref": uri} for _, uri in groups]
        try:
            schema = await api(session, "POST", "/schemaregistry/tenant/schemas", {
                "title": f"Bench web events {tag} {len(groups)}", "type": "object", "meta:class": EVENT_CLASS,
                "description": "wayline bench ingest", "allOf": refs,
            })
        except ApiError as exc:
            last = exc
            log(f"  schema with {[g for g, _ in groups]} refused: {str(exc)[:300]}")
            continue
        used = {g for g, _ in groups}
        shape = EventShape(tenant=tenant, web="web" in used, commerce="commerce" in used,
                           product_list="commerce" in used, identity_map=True)  # identityMap is in the class too
        return schema["$id"], shape
    raise ApiError(f"the registry refused every experience-event schema: {last}")


async def create_target(session: Any, schema_id: str, name: str) -> tuple[str, str]:
    ds = await api(session, "POST", "/catalog/dataSets", {"name": name, "schemaRef": {"id": schema_id,
                                                                                      "contentType": XED}})
    inlet = await api(session, "POST", "/collection/inlets", {"name": name, "datasetId": ds["id"]})
    return ds["id"], inlet["id"]


_FIELDS = {"web": "web", "commerce": "commerce", "productListItems": "product_list", "identityMap": "identity_map",
           "environment": "environment"}


async def probe(session: Any, messages: Messages, inlet_id: str) -> list[dict[str, Any]]:
    """Send one message with syncValidation: [] when it is stored, else its violations (or raise)."""
    body = messages.one(now_iso())
    async with session.post(f"/collection/{inlet_id}?syncValidation=true", data=body) as r:
        text = await r.text()
        if r.status == 200:
            return []
        if r.status == 400:
            data = json.loads(text)
            if data.get("violations"):
                return data["violations"]
        raise ApiError(f"the probe event was refused ({r.status}): {text[:1500]}")


async def probed_messages(session: Any, schema_id: str, shape: EventShape, dataset_id: str, inlet_id: str,
                          phase: str) -> tuple[Messages, int]:
    """Messages whose probe validates; a top-level field the schema does not know is left out.

    Returns the messages and the number of records the probes stored (a benchmark of failed records
    would measure nothing, so a probe that keeps failing stops the run).
    """
    for _ in range(4):
        messages = Messages(schema_id, dataset_id, shape, tag=f"{phase}-{uuid.uuid4().hex[:8]}")
        violations = await probe(session, messages, inlet_id)
        if not violations:
            return messages, 1
        dropped = False
        for v in violations:
            parts = (v.get("pointerToViolation") or "").strip("/").split("/")
            attr = _FIELDS.get(parts[0]) if parts else None
            if attr and getattr(shape, attr):
                setattr(shape, attr, False)
                dropped = True
                log(f"  the schema refuses /{parts[0]} ({v.get('message')}); events leave it out")
        if not dropped:
            break
    raise ApiError(f"the probe event does not validate: {violations}")


# -- load ------------------------------------------------------------------------------------------------

@dataclass
class PhaseResult:
    name: str
    requests: int = 0
    records_acknowledged: int = 0  # accepted, valid and new, measured window only
    records_failed_validation: int = 0
    duplicates: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    warmup_acknowledged: int = 0
    client_cpu_s: float = 0.0
    server_cpu: dict[str, Any] = field(default_factory=dict)
    group_sizes: dict[str, Any] = field(default_factory=dict)
    gc: dict[str, Any] = field(default_factory=dict)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def _count_answer(kind: str, status: int, data: bytes, res: PhaseResult) -> int:
    """Acknowledged records in one answer; tallies failures, duplicates and errors into `res`."""
    import orjson

    if kind == "single":
        if status != 200:
            res.errors[str(status)] = res.errors.get(str(status), 0) + 1
            return 0
        body = orjson.loads(data)
        if body.get("validation") == "failed":
            res.records_failed_validation += 1
            return 0
        if body.get("duplicate"):
            res.duplicates += 1
            return 0
        return 1
    if status != 207:
        res.errors[str(status)] = res.errors.get(str(status), 0) + 1
        return 0
    acked = 0
    for item in orjson.loads(data)["responses"]:
        st = item.get("status")
        if st != 200:
            res.errors[f"item-{st}"] = res.errors.get(f"item-{st}", 0) + 1
        elif item.get("validation") == "failed":
            res.records_failed_validation += 1
        elif item.get("duplicate"):
            res.duplicates += 1
        else:
            acked += 1
    return acked


async def drive(session: Any, kind: str, url: str, messages: Messages, *, seconds: float, warmup: float,
                concurrency: int, batch_size: int, server: Server, py_spy_out: Path | None = None) -> PhaseResult:
    import aiohttp

    res = PhaseResult(kind)
    start_at = time.perf_counter() + warmup
    stop_at = start_at + seconds
    ts_cache = [0.0, now_iso()]

    def ts() -> bytes:
        t = time.monotonic()
        if t - ts_cache[0] > 0.05:
            ts_cache[0], ts_cache[1] = t, now_iso()
        return ts_cache[1]  # type: ignore[return-value]

    async def worker() -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            body = messages.one(ts()) if kind == "single" else messages.batch(batch_size, ts())
            measuring = t0 >= start_at
            try:
                async with session.post(url, data=body) as r:
                    data = await r.read()
                    status = r.status
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:  # a result, not a crash
                res.errors[type(exc).__name__] = res.errors.get(type(exc).__name__, 0) + 1
                await asyncio.sleep(0.01)
                continue
            t1 = time.perf_counter()
            acked = _count_answer(kind, status, data, res)
            if measuring:
                res.requests += 1
                res.latencies.append(t1 - t0)
                res.records_acknowledged += acked
            else:
                res.warmup_acknowledged += acked
            if status == 429:
                await asyncio.sleep(1.0)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    # Snapshot CPU counters when the measured window opens and when the last request has finished.
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    cpu0, ru0 = server.cpu(), resource.getrusage(resource.RUSAGE_SELF)
    await api(session, "POST", "/_bench/reset")
    spy = start_py_spy(server.proc.pid, seconds, py_spy_out) if py_spy_out is not None else None
    t_start = time.perf_counter()
    await asyncio.gather(*tasks)
    t_end = time.perf_counter()
    cpu1, ru1 = server.cpu(), resource.getrusage(resource.RUSAGE_SELF)
    if spy is not None:
        await asyncio.get_running_loop().run_in_executor(None, spy.wait)
    res.elapsed_s = t_end - t_start
    res.client_cpu_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    res.server_cpu = {"cpu0": cpu0, "cpu1": cpu1}
    after = await api(session, "GET", "/_bench/threads")
    res.group_sizes = after.get("group_sizes", {})
    res.gc = after.get("gc", {})
    return res


def summarise(res: PhaseResult, threads: dict[str, str], pid: int) -> dict[str, Any]:
    lat = sorted(res.latencies)
    ms = [x * 1000 for x in lat]
    cpu0, cpu1 = res.server_cpu.get("cpu0", {}), res.server_cpu.get("cpu1", {})
    per_thread: dict[str, float] = {}
    for tid, secs in cpu1.items():
        if tid in ("total", "database"):
            continue
        delta = secs - cpu0.get(tid, 0.0)
        if delta < 0.01:
            continue
        name = "event-loop (main)" if tid == str(pid) else threads.get(tid, f"thread {tid}")
        per_thread[name] = round(per_thread.get(name, 0.0) + delta / max(res.elapsed_s, 1e-9), 3)
    server_total = cpu1.get("total", 0.0) - cpu0.get("total", 0.0)
    records = res.records_acknowledged
    out = {
        "requests": res.requests,
        "records_acknowledged": records,
        "records_failed_validation": res.records_failed_validation,
        "duplicates": res.duplicates,
        "errors": res.errors,
        "elapsed_s": round(res.elapsed_s, 3),
        "requests_per_s": round(res.requests / res.elapsed_s, 1) if res.elapsed_s else 0.0,
        "records_per_s": round(records / res.elapsed_s, 1) if res.elapsed_s else 0.0,
        "latency_ms": {"p50": round(percentile(ms, 50), 2), "p90": round(percentile(ms, 90), 2),
                       "p99": round(percentile(ms, 99), 2), "p999": round(percentile(ms, 99.9), 2),
                       "max": round(ms[-1], 2) if ms else None, "mean": round(sum(ms) / len(ms), 2) if ms else None},
        "server_cpu_cores": round(server_total / max(res.elapsed_s, 1e-9), 3),
        # PostgreSQL only: CPU of the database's backend processes (not part of server_cpu_*).
        "database_cpu_cores": round((cpu1.get("database", 0.0) - cpu0.get("database", 0.0))
                                    / max(res.elapsed_s, 1e-9), 3),
        "server_cpu_cores_by_thread": per_thread,
        "server_cpu_us_per_record": round(server_total / records * 1e6, 1) if records else None,
        "server_cpu_us_per_request": round(server_total / res.requests * 1e6, 1) if res.requests else None,
        "client_cpu_cores": round(res.client_cpu_s / max(res.elapsed_s, 1e-9), 3),
        "commit_group_size": res.group_sizes,
        # Wall time the server spent in the garbage collector (holding the GIL), as a share of the window.
        "gc": {**res.gc, "share_of_window": round(res.gc.get("s", 0.0) / max(res.elapsed_s, 1e-9), 4)},
    }
    return out


@dataclass
class Options:
    seconds: float = 10.0
    warmup: float = 1.5
    concurrency: int = 64
    batch_concurrency: int = 8
    batch_size: int = 100
    phases: tuple[str, ...] = ("batched", "single")
    profile: Path | None = None
    py_spy: Path | None = None
    server_gc: str = "default"
    server_workers: int = 1


async def run_phase_on(server: Server, key: str, opts: Options, backend: str, phase: str,
                       schema: tuple[str, EventShape] | None, tenant_id: str) -> tuple[dict[str, Any], tuple[str, EventShape]]:
    import aiohttp

    conc = opts.batch_concurrency if phase == "batched" else opts.concurrency
    connector = aiohttp.TCPConnector(limit=conc + 2, limit_per_host=conc + 2, ttl_dns_cache=None)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(server.base, connector=connector, headers=headers, timeout=timeout,
                                     skip_auto_headers=("User-Agent",)) as session:
        if schema is None:
            schema = await create_event_schema(session, tenant_id)
        schema_id, shape = schema
        dataset_id, inlet_id = await create_target(session, schema_id, f"bench {phase} {secrets.token_hex(2)}")
        messages, probe_acked = await probed_messages(session, schema_id, shape, dataset_id, inlet_id, phase)
        info = await api(session, "GET", "/_bench/threads")
        url = f"/collection/batch/{inlet_id}" if phase == "batched" else f"/collection/{inlet_id}"
        log(f"  {phase}: {conc} connections, {opts.seconds:g} s (+{opts.warmup:g} s warm-up)"
            + (f", {opts.batch_size} messages per request" if phase == "batched" else ""))
        spy_out = opts.py_spy / f"{backend}-{phase}.pyspy.txt" if opts.py_spy else None
        res = await drive(session, phase, url, messages, seconds=opts.seconds, warmup=opts.warmup,
                          concurrency=conc, batch_size=opts.batch_size, server=server, py_spy_out=spy_out)
        info = await api(session, "GET", "/_bench/threads") or info
        summary = summarise(res, info.get("threads", {}), info.get("pid", server.proc.pid))
        counts = (await api(session, "GET", f"/catalog/dataSets/{dataset_id}")).get("counts", {})
        summary["dataset"] = {"id": dataset_id, "inlet": inlet_id, "counts": counts,
                              "acknowledged_total": res.records_acknowledged + res.warmup_acknowledged + probe_acked}
        summary["concurrency"] = conc
        if phase == "batched":
            summary["batch_size"] = opts.batch_size
        if spy_out is not None:
            summary["py_spy"] = read_py_spy(spy_out)
            if summary["py_spy"]:
                Path(str(spy_out).replace(".pyspy.txt", ".pyspy.json")).write_text(json.dumps(summary["py_spy"],
                                                                                              indent=1))
        log(f"  {phase}: {summary['requests_per_s']:,.0f} req/s, {summary['records_per_s']:,.0f} records/s, "
            f"p50 {summary['latency_ms']['p50']} ms, p99 {summary['latency_ms']['p99']} ms, "
            f"server CPU {summary['server_cpu_cores']} cores {summary['server_cpu_cores_by_thread']}, "
            f"client CPU {summary['client_cpu_cores']}")
        return summary, schema


async def run_backend(backend: str, database_url: str, workdir: Path, opts: Options) -> dict[str, Any]:
    """Run the phases against one database; one server for all phases, or one per phase when profiling."""
    phases: dict[str, Any] = {}
    schema: tuple[str, EventShape] | None = None
    tenant_id = "wayline"
    server: Server | None = None
    admin_key: str | None = None
    try:
        for phase in opts.phases:
            if server is None:
                prof = opts.profile / f"{backend}-{phase}" if opts.profile else None
                server = Server(database_url, workdir, profile=prof, server_gc=opts.server_gc,
                                workers=opts.server_workers)
                key = server.start()
                if key:
                    admin_key = key
                assert admin_key, "no admin key: the database was not fresh"
            phases[phase], schema = await run_phase_on(server, admin_key, opts, backend, phase, schema, tenant_id)
            if opts.profile:
                server.stop()
                server = None
                phases[phase]["profile"] = read_hotspots(opts.profile / f"{backend}-{phase}")
    finally:
        if server is not None:
            server.stop()
    return figures(backend, phases, opts)


def read_hotspots(prefix: Path, top: int = 12) -> dict[str, Any]:
    """The pyinstrument summary of one phase, cut to the top entries for the JSON result."""
    path = Path(f"{prefix}-hotspots.json")
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    out: dict[str, Any] = {"profiler": data.get("profiler"), "clock": data.get("clock"), "files": str(prefix) + "-*"}
    for thread, d in data.items():
        if isinstance(d, dict):
            out[thread] = {"total_s": d.get("total_s"), "busy_share": d.get("busy_share"), "layers": d.get("layers"),
                           "self": d["self"][:top], "inclusive": d["inclusive"][:top]}
    return out


def figures(backend: str, phases: dict[str, Any], opts: Options) -> dict[str, Any]:
    b, s = phases.get("batched"), phases.get("single")
    stored = sum(p["dataset"]["counts"].get("records", 0) for p in phases.values())
    acked = sum(p["dataset"]["acknowledged_total"] for p in phases.values())
    out: dict[str, Any] = {"backend": backend}
    if b:
        out.update(records_per_s_batched=b["records_per_s"], requests_per_s_batched=b["requests_per_s"],
                   p50_ms_batched=b["latency_ms"]["p50"], p99_ms_batched=b["latency_ms"]["p99"])
    if s:
        out.update(requests_per_s_single=s["requests_per_s"], p50_ms=s["latency_ms"]["p50"],
                   p99_ms=s["latency_ms"]["p99"])
    out.update(records_stored=stored, records_acknowledged=acked, stored_equals_acknowledged=stored == acked,
               profiled=opts.profile is not None, server_gc=opts.server_gc, server_workers=opts.server_workers,
               phases=phases)
    return out


# -- PostgreSQL ------------------------------------------------------------------------------------------

def postgres_admin_url() -> str | None:
    return os.environ.get("WAYLINE_BENCH_POSTGRES_URL") or os.environ.get("WAYLINE_TEST_POSTGRES_URL") or None


def _pg_engine(url: str) -> Any:
    import sqlalchemy as sa

    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def _with_db(url: str, db: str) -> str:
    head, _, tail = url.partition("?")
    return head.rsplit("/", 1)[0] + "/" + db + (("?" + tail) if tail else "")


class PostgresDatabase:
    """A freshly created database on the server of `admin_url`, dropped on exit."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"wl_bench_{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str:
        import sqlalchemy as sa

        eng = _pg_engine(self.admin_url)
        with eng.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
        eng.dispose()
        return _with_db(self.admin_url, self.name)

    def __exit__(self, *exc: object) -> None:
        import sqlalchemy as sa

        eng = _pg_engine(self.admin_url)
        with eng.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        eng.dispose()


# -- main ------------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    import sqlite3

    return {"cores": cores, "cpu": model, "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "os": platform.platform()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="wayline bench ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print only the JSON object on stdout")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase (default 10)")
    p.add_argument("--warmup", type=float, default=1.5, help="warm-up seconds per phase (default 1.5)")
    p.add_argument("--concurrency", type=int, default=64, help="connections of the single phase (default 64)")
    p.add_argument("--batch-concurrency", type=int, default=8, help="connections of the batched phase (default 8)")
    p.add_argument("--batch-size", type=int, default=100, help="messages per batch request (default 100)")
    p.add_argument("--phases", default="batched,single", help="comma-separated: batched,single")
    p.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL even when its URL is set")
    p.add_argument("--postgres-only", action="store_true", help="skip SQLite")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="profile the server with pyinstrument, one server per phase; reports go to DIR")
    p.add_argument("--py-spy", type=Path, default=None, metavar="DIR", dest="py_spy",
                   help="sample the (unprofiled) server with py-spy --gil during each measured window into DIR")
    p.add_argument("--server-gc", choices=("default", "off", "freeze", "tuned"), default="default",
                   help="experiment: gc.freeze() in the server after start-up (freeze), and fewer collections (tuned)")
    p.add_argument("--server-workers", type=int, default=1,
                   help="experiment: uvicorn worker processes (each with its own store writer); default 1")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve_main()
        return 0
    phases = tuple(x.strip() for x in args.phases.split(",") if x.strip())
    bad = [x for x in phases if x not in ("batched", "single")]
    if bad or not phases:
        log(f"unknown phase(s) {bad}; use batched and/or single")
        return 2
    opts = Options(seconds=args.seconds, warmup=args.warmup, concurrency=args.concurrency,
                   batch_concurrency=args.batch_concurrency, batch_size=args.batch_size, phases=phases,
                   profile=args.profile.resolve() if args.profile else None,
                   py_spy=args.py_spy.resolve() if args.py_spy else None, server_gc=args.server_gc,
                   server_workers=args.server_workers)
    for d in (opts.profile, opts.py_spy):
        if d:
            d.mkdir(parents=True, exist_ok=True)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    result: dict[str, Any] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="wayline-bench-") as tmp:
        work = Path(tmp)
        if not args.postgres_only:
            log(f"SQLite: {work / 'wayline.db'}")
            result = asyncio.run(run_backend("sqlite", f"sqlite:///{work / 'wayline.db'}", work, opts))
            ok = ok and result["stored_equals_acknowledged"]
        pg_url = None if args.no_postgres else postgres_admin_url()
        if pg_url:
            with PostgresDatabase(pg_url) as db_url:
                log(f"PostgreSQL: database {db_url.rsplit('/', 1)[-1].split('?')[0]}")
                pg = asyncio.run(run_backend("postgresql", db_url, work, opts))
            ok = ok and pg["stored_equals_acknowledged"]
            if args.postgres_only:
                result = pg
            else:
                result["postgresql"] = pg
        elif not args.no_postgres:
            log("PostgreSQL skipped: set WAYLINE_BENCH_POSTGRES_URL (or WAYLINE_TEST_POSTGRES_URL) to an admin URL")
    result["targets"] = {k: v for k, v in TARGETS.items()}
    result["meets_targets"] = {
        "records_per_s_batched": result.get("records_per_s_batched", 0) >= TARGETS["records_per_s_batched"],
        "requests_per_s_single": result.get("requests_per_s_single", 0) >= TARGETS["requests_per_s_single"],
        "p99_ms": result.get("p99_ms", float("inf")) < TARGETS["p99_ms"],
    }
    result["machine"] = machine()
    # Other work on the machine lowers every figure: the load averages say how quiet it was.
    result["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["duration_s"] = opts.seconds
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    if not ok:
        log("MISMATCH: stored records differ from acknowledged records")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
