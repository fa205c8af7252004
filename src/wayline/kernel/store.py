"""Database access: one engine, units of work, dialect helpers.

Writes run as units of work (a function taking a Connection) on dedicated writer threads. Each
writer drains every unit queued at that moment and commits them in one transaction, each unit in
its own savepoint (group commit): a failing unit rolls back alone, and concurrent requests share
one fsync. SQLite gets one writer (`BEGIN IMMEDIATE`), PostgreSQL a few. Reads run on a small
thread pool. No transaction is ever held across an await.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("wayline.store")

T = TypeVar("T")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSON documents: TEXT on SQLite, JSONB on PostgreSQL.
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def now_ms() -> int:
    return int(time.time() * 1000)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class RawJSON(str):
    """JSON text already serialised (e.g. by a size check): stored as is by insert_ignore."""


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


CHECKPOINT_EVERY_S = 0.25
STATEMENT_CACHE = 512  # prepared statements kept per SQLite connection (Python's default: 128)
WAL_AUTOCHECKPOINT_PAGES = 50_000  # ~200 MB of WAL before a commit checkpoints itself (SQLite's default: 1,000)


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    db = sa.engine.make_url(url).database
    return None if not db or db == ":memory:" or db.startswith("file::memory:") else db


def make_engine(url: str, *, synchronous: str = "NORMAL", pool_size: int = 8, mmap_mb: int = 0) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            json_serializer=_dumps,
            json_deserializer=orjson.loads,
            # Statements are prepared once per connection and shape, then found in this cache.
            connect_args={"check_same_thread": False, "timeout": 30, "cached_statements": STATEMENT_CACHE},
            pool_size=pool_size,
            max_overflow=8,
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's begin event emit BEGIN itself, so writers can say IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")
            if mmap_mb:
                cur.execute(f"PRAGMA mmap_size={int(mmap_mb) << 20}")
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")  # see Store._checkpoint_loop
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()
            from wayline.kernel.expr.sql import install_sqlite_functions

            install_sqlite_functions(dbapi_conn)  # what compiled segment conditions need (regex)

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return sa.create_engine(
        url,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=8,
        pool_pre_ping=True,
    )


_trash: queue.SimpleQueue[Any] = queue.SimpleQueue()
_reaper: threading.Thread | None = None


def discard(*objs: Any) -> None:
    """Free `objs` on a thread of its own instead of the caller's.

    A writer's unit of ingestion leaves tens of thousands of small objects behind (graphs, rows,
    events). Freeing them when the unit's function returns costs the writer ~5 % of its interpreter
    time, just before the commit; handed over here, they are freed while the writer waits for the
    commit, which runs without the interpreter lock."""
    global _reaper
    if _reaper is None:
        _reaper = threading.Thread(target=_reap, name="wl-reaper", daemon=True)
        _reaper.start()
    _trash.put(objs)


def _reap() -> None:
    get = _trash.get
    while True:
        get()  # dropped at once: its objects are freed on this thread


class _Unit:
    __slots__ = ("args", "fn", "future", "loop")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: Any, loop: Any) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.loop = loop


def _resolve(units: list[tuple[_Unit, bool, Any]]) -> None:
    for unit, ok, value in units:
        fut = unit.future
        if fut.done():  # the awaiting task was cancelled; the work itself is committed
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


class Store:
    """The one database of an installation, shared by every product."""

    def __init__(self, url: str, *, synchronous: str = "NORMAL", writers: int | None = None,
                 readers: int = 4, max_group: int = 256, mmap_mb: int = 0) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, synchronous=synchronous, pool_size=max(8, readers + 4), mmap_mb=mmap_mb)
        self.dialect: str = self.engine.dialect.name
        self._writers = writers if writers is not None else (1 if self.is_sqlite else 4)
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="wl-read")
        self._lock = threading.Lock()
        self.group_sizes: list[int] = []  # observed group sizes, for metrics and benchmarks
        self.commit_s = 0.0  # time spent committing groups, for benchmarks (summed over writer threads)
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self.checkpoints = 0  # background WAL checkpoints that copied something

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    # -- synchronous access (CLI, migrations, tests, the writer threads themselves) --------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on the calling thread (BEGIN IMMEDIATE on SQLite)."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one unit of work in its own transaction on the calling thread."""
        with self.transaction() as conn:
            return fn(conn, *args)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        with self.engine.connect() as conn, conn.begin():
            return fn(conn, *args)

    # -- asynchronous access (the API) -----------------------------------------------------------

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a unit of work on a writer thread; returns once it is committed."""
        self._ensure_writers()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Unit(fn, args, fut, loop))
        return await fut

    def write_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Like write(), from a thread without an event loop."""
        self._ensure_writers()
        fut: Future[T] = Future()
        self._queue.put(_Unit(fn, args, fut, None))
        return fut.result()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_sync, fn, *args)

    def _ensure_writers(self) -> None:
        if len(self._threads) == self._writers:
            return
        with self._lock:
            if self.is_sqlite and self._checkpointer is None and _sqlite_file(self.url) is not None:
                self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="wl-checkpoint",
                                                      daemon=True)
                self._checkpointer.start()
            while len(self._threads) < self._writers:
                t = threading.Thread(target=self._writer_loop, name=f"wl-write-{len(self._threads)}",
                                     daemon=True)
                t.start()
                self._threads.append(t)

    def _writer_loop(self) -> None:
        conn: Connection | None = None
        while True:
            unit = self._queue.get()
            if unit is None:
                break
            group = [unit]
            stop = False
            while len(group) < self._max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            if conn is None or conn.closed:
                conn = self.engine.connect()
                if self.is_sqlite:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            done = self._commit_group(conn, group)
            if conn.invalidated:
                conn.close()
                conn = None
            self._deliver(done)
            # Let go of the finished units before waiting for the next: whoever awaited a unit then
            # holds its last reference and frees its arguments (a request's records) in its own thread,
            # not this one at the start of the next unit (measured: 6 % of the writer's GIL time).
            unit = nxt = group = done = None  # type: ignore[assignment]
            if stop:
                break
        if conn is not None:
            conn.close()

    def _commit_group(self, conn: Connection, group: list[_Unit]) -> list[tuple[_Unit, bool, Any]]:
        done: list[tuple[_Unit, bool, Any]] = []
        try:
            with conn.begin():
                if len(group) == 1:
                    u = group[0]
                    try:
                        done.append((u, True, u.fn(conn, *u.args)))
                    except BaseException as exc:  # rolled back with the transaction
                        done.append((u, False, exc))
                        raise
                else:
                    # Raw SAVEPOINTs: SQLAlchemy's begin_nested() costs several times the statement.
                    for u in group:
                        conn.exec_driver_sql("SAVEPOINT wl_unit")
                        try:
                            value = u.fn(conn, *u.args)
                        except Exception as exc:
                            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT wl_unit")
                            conn.exec_driver_sql("RELEASE SAVEPOINT wl_unit")
                            done.append((u, False, exc))
                        else:
                            conn.exec_driver_sql("RELEASE SAVEPOINT wl_unit")
                            done.append((u, True, value))
                committing = time.perf_counter()
        except Exception as exc:
            if len(group) == 1:
                return done if done else [(group[0], False, exc)]
            # The commit itself failed: nothing of the group is stored. Say so to every unit.
            return [(u, False, exc) for u in group]
        self.commit_s += time.perf_counter() - committing
        self.group_sizes.append(len(group))
        if len(self.group_sizes) > 10_000:
            del self.group_sizes[:5_000]
        return done

    @staticmethod
    def _deliver(done: list[tuple[_Unit, bool, Any]]) -> None:
        by_loop: dict[Any, list[tuple[_Unit, bool, Any]]] = {}
        for item in done:
            unit = item[0]
            if unit.loop is None:
                if item[1]:
                    unit.future.set_result(item[2])
                else:
                    unit.future.set_exception(item[2])
            else:
                by_loop.setdefault(unit.loop, []).append(item)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # loop closed: nobody is waiting any more
                pass

    def _checkpoint_loop(self) -> None:
        """SQLite: copy the WAL into the database on a thread of its own, so the writer need not.

        A commit that finds the WAL longer than `wal_autocheckpoint` pages checkpoints on the writer
        thread, in the middle of ingestion (with random-key indexes, a unit of 1,000 profile records
        dirties thousands of pages: measured 13 % of the build at 200,000 profiles). Here a PASSIVE
        checkpoint runs every CHECKPOINT_EVERY_S on its own connection; sqlite3 releases the GIL
        while it copies, so it uses the second core, and it never blocks the writer or readers. The
        writer keeps a far higher autocheckpoint as a ceiling in case this thread falls behind."""
        import sqlite3

        path = _sqlite_file(self.url)
        try:
            conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            log.warning("no background checkpoints: cannot open %s", path, exc_info=True)
            return
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_EVERY_S):
                try:
                    _busy, _frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    log.debug("background checkpoint failed", exc_info=True)
                    continue
                if done > 0:
                    self.checkpoints += 1
        finally:
            conn.close()

    def close(self) -> None:
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
            self._checkpointer = None
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        self._readers.shutdown(wait=True)
        self.engine.dispose()


class Coalescer:
    """Merges concurrent calls into one unit of work: `fn(conn, items) -> one result per item`.

    Calls made in the same event-loop iteration are stored together (one unit, one statement set)
    instead of one unit each. If the merged unit fails, each call is retried alone, so one bad call
    cannot fail the others.
    """

    def __init__(self, store: Store, fn: Callable[[Connection, list[Any]], list[Any]]) -> None:
        self.store = store
        self.fn = fn
        self._pending: list[tuple[list[Any], asyncio.Future[list[Any]]]] = []

    async def submit(self, items: list[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((items, fut))
        return await fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        asyncio.ensure_future(self._run(batch))

    async def _run(self, batch: list[tuple[list[Any], asyncio.Future[list[Any]]]]) -> None:
        if len(batch) > 1:
            merged = [x for items, _ in batch for x in items]
            try:
                results = await self.store.write(self.fn, merged)
            except Exception:
                pass
            else:
                i = 0
                for items, fut in batch:
                    if not fut.done():
                        fut.set_result(results[i:i + len(items)])
                    i += len(items)
                return
        for items, fut in batch:
            try:
                result = await self.store.write(self.fn, items)
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)


# -- dialect helpers ----------------------------------------------------------------------------

_INSERT_SQL: dict[tuple[Any, ...], str] = {}


def row_chunks(rows: Sequence[T], width: int, *, shapes: bool = True) -> Iterator[Sequence[T]]:
    """`rows` cut into chunks of a few fixed sizes, for multi-row statements of `width` parameters a row.

    A statement's text is parsed and planned each time a connection first meets it (and again when
    it has fallen out of the statement cache), and a multi-row INSERT of a length not seen before is
    a new text: preparing a 333-row INSERT took 0.9 ms here on SQLite, more than running it. So
    chunks are a power of two long: the largest that fits ~30,000 parameters, at most 512 rows, for
    as long as the rows last, then the binary digits of what remains (333 = 256 + 64 + 8 + 4 + 1):
    about ten shapes per statement, prepared once per connection.

    `shapes=False` (for PostgreSQL) keeps the largest chunks only, the rest in one: there each
    statement is also a round trip to the server, and the power-of-two cut would send up to ten
    where one did (the backbone benchmark's inbox writes of varying size take this path).
    """
    largest = 1 << min(9, (30_000 // max(1, width)).bit_length() - 1)
    start, n = 0, len(rows)
    while start < n:
        left = n - start
        size = largest if left >= largest or not shapes else 1 << (left.bit_length() - 1)
        yield rows[start:start + size]
        start += size


def in_list(conn: Connection) -> str:
    """`IN` over one parameter holding a list (see `list_param`): the same statement text for any
    number of values, so it is prepared once (an IN list of n markers is a new statement for each n)."""
    return "IN (SELECT value FROM json_each(?))" if conn.dialect.name == "sqlite" else "= ANY(%s)"


_RAW_SQL: dict[tuple[str, str], str] = {}


def raw_sql(conn: Connection, template: str) -> str:
    """Raw SQL for either database from one text: `?` markers (psycopg's `%s` on PostgreSQL), and
    where `{}` stands, an IN over one list parameter (`in_list`, `list_param`), so that the text is
    the same for any number of values and prepared once. Cached per dialect: building Core
    statements on the hot paths (ingestion, streaming segmentation) costs more than running them."""
    key = (conn.dialect.name, template)
    sql = _RAW_SQL.get(key)
    if sql is None:
        sql = template if key[0] == "sqlite" else template.replace("?", "%s")
        sql = _RAW_SQL[key] = sql.replace("{}", in_list(conn))
    return sql


def json_column(v: Any) -> Any:
    """A JSON column's value read with raw SQL: text on SQLite, already decoded by psycopg on PostgreSQL."""
    return orjson.loads(v) if isinstance(v, (str, bytes)) else v


def fetch_rows(conn: Connection, sql: str, params: Any) -> list[Any]:
    """The rows of a raw query (SQLite's markers there, psycopg's on PostgreSQL), for the writer's hottest
    reads. On SQLite they come straight from the driver's cursor, in the connection's transaction:
    plain tuples, without SQLAlchemy's execution context per call and `Row` per row."""
    if conn.dialect.name == "sqlite":
        return conn.connection.driver_connection.execute(sql, params).fetchall()  # type: ignore[union-attr]
    return conn.exec_driver_sql(sql, params).all()


def list_param(conn: Connection, values: Sequence[Any]) -> Any:
    """The parameter `in_list` expects: a JSON array on SQLite, a list (an array) on PostgreSQL."""
    return _dumps(list(values)) if conn.dialect.name == "sqlite" else list(values)


def insert_ignore(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]],
                  conflict: Sequence[str], *, returning: bool = True) -> list[tuple[Any, ...]]:
    """INSERT … ON CONFLICT DO NOTHING on both databases; returns the conflict keys of the new rows
    (with `returning=False`, nothing: the caller does not need to know, and fetching costs).

    This is the ingestion hot path, so it skips SQLAlchemy's statement machinery (building and
    executing a Core statement cost ~150 µs a call here, more than the insert): one multi-row
    INSERT … RETURNING per chunk, its SQL text cached per shape, JSON columns serialised with orjson.
    RETURNING rather than row counts, because executemany row counts are not reliable across drivers.
    """
    if not rows:
        return []
    dialect = conn.dialect.name
    cols = tuple(rows[0].keys())
    json_cols = {c for c in cols if isinstance(table.c[c].type, sa.JSON)}
    mark = "?" if dialect == "sqlite" else "%s"
    out: list[tuple[Any, ...]] = []
    for part in row_chunks(rows, len(cols), shapes=dialect == "sqlite"):
        key = (dialect, table.name, cols, tuple(conflict), len(part), returning)
        sql = _INSERT_SQL.get(key)
        if sql is None:
            one = "(" + ", ".join(mark + ("::jsonb" if dialect == "postgresql" and c in json_cols else "")
                                  for c in cols) + ")"
            sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES {', '.join([one] * len(part))} "
                   f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
                   + (f" RETURNING {', '.join(conflict)}" if returning else ""))
            _INSERT_SQL[key] = sql
        params: list[Any] = []
        for r in part:
            for c in cols:
                v = r[c]
                if c in json_cols and v is not None and not isinstance(v, RawJSON):
                    v = _dumps(v)
                params.append(v)
        cur = conn.exec_driver_sql(sql, tuple(params))
        if returning:
            out += [tuple(x) for x in cur.all()]
    return out


def upsert_many(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str],
                update: Sequence[str]) -> None:
    """INSERT … ON CONFLICT DO UPDATE for many rows, raw SQL cached per shape (see insert_ignore)."""
    if not rows:
        return
    cols = tuple(rows[0].keys())
    json_cols = {c for c in cols if isinstance(table.c[c].type, sa.JSON)}
    write_rows(conn, table, cols, [tuple(_dumps(v) if c in json_cols and v is not None and not isinstance(v, RawJSON)
                                         else v for c in cols for v in (r[c],)) for r in rows],
               conflict=conflict, update=update)


def write_rows(conn: Connection, table: sa.Table, cols: Sequence[str], rows: Sequence[Sequence[Any]], *,
               conflict: Sequence[str], update: Sequence[str] = (), widen: tuple[str, str] | None = None) -> None:
    """`insert_ignore(returning=False)` (no `update`) or `upsert_many` for rows given as tuples in
    the order of `cols`, JSON columns already serialised to text: for the hottest writes, which
    build their rows as tuples rather than as dicts to be flattened (measured ~1 us a row less).

    `widen` names a (first, last) pair of columns that, on a conflict, grow to cover both the stored
    span and the new one (the earlier first, the later last) instead of being replaced."""
    if not rows:
        return
    dialect = conn.dialect.name
    cols = tuple(cols)
    for part in row_chunks(rows, len(cols), shapes=dialect == "sqlite"):
        key = (dialect, table.name, cols, tuple(conflict), tuple(update), widen, len(part), "rows")
        sql = _INSERT_SQL.get(key)
        if sql is None:
            mark = "?" if dialect == "sqlite" else "%s"
            one = "(" + ", ".join(mark + ("::jsonb" if dialect == "postgresql" and isinstance(table.c[c].type, sa.JSON)
                                          else "") for c in cols) + ")"
            sets = [f"{c} = excluded.{c}" for c in update]
            if widen is not None:
                least, greatest = ("min", "max") if dialect == "sqlite" else ("least", "greatest")
                first, last = widen
                sets += [f"{first} = {least}({table.name}.{first}, excluded.{first})",
                         f"{last} = {greatest}({table.name}.{last}, excluded.{last})"]
            action = ("DO UPDATE SET " + ", ".join(sets)) if sets else "DO NOTHING"
            sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES {', '.join([one] * len(part))} "
                   f"ON CONFLICT ({', '.join(conflict)}) {action}")
            _INSERT_SQL[key] = sql
        params: list[Any] = []
        for r in part:
            params += r
        conn.exec_driver_sql(sql, tuple(params))


def upsert(conn: Connection, table: sa.Table, row: dict[str, Any], conflict: Sequence[str],
           update: Sequence[str]) -> None:
    dialect_insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    stmt = dialect_insert(table).values(**row)
    stmt = stmt.on_conflict_do_update(index_elements=list(conflict),
                                      set_={c: stmt.excluded[c] for c in update})
    conn.execute(stmt)
