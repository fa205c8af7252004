"""The `wayline` command against a real database."""

from __future__ import annotations

import sqlalchemy as sa
from typer.testing import CliRunner

from wayline.cli import app

runner = CliRunner()


def test_migrate_sandboxes_and_keys(db_url, monkeypatch):
    monkeypatch.setenv("WAYLINE_DATABASE_URL", db_url)
    r = runner.invoke(app, ["migrate"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["sandboxes", "create", "dev"])
    assert r.exit_code == 0 and "dev" in r.output
    r = runner.invoke(app, ["sandboxes", "create", "dev"])
    assert r.exit_code == 1 and "exists" in r.output
    r = runner.invoke(app, ["keys", "create", "--sandbox", "dev", "--role", "ingest"])
    assert r.exit_code == 0
    key = r.output.strip()
    assert key.startswith("wl_")
    r = runner.invoke(app, ["keys", "create", "--sandbox", "nope", "--role", "ingest"])
    assert r.exit_code == 1 and "does not exist" in r.output
    r = runner.invoke(app, ["keys", "create", "--sandbox", "dev", "--role", "god"])
    assert r.exit_code == 1 and "role" in r.output.lower()

    from wayline.kernel.store import Store
    from wayline.kernel.tenancy import KeyVerifier

    store = Store(db_url)
    try:
        principal = KeyVerifier(store).verify_sync(key)
        assert principal.sandbox_name == "dev" and principal.role == "ingest"
        hashes = store.read_sync(lambda c: c.execute(sa.text("SELECT hash FROM api_keys")).scalars().all())
        assert key not in hashes
    finally:
        store.close()


def test_log_lines_go_to_the_stderr_of_the_moment(capsys):
    # Loggers are cached for the life of the process; the stream they were configured with may be
    # replaced and closed (pytest's capture does after a CLI test), and a later warning must not fail.
    import io
    import sys

    import structlog

    from wayline.config import Settings
    from wayline.runtime import configure_logging

    before, first = sys.stderr, io.StringIO()
    sys.stderr = first
    try:
        configure_logging(Settings(_env_file=None))
        log = structlog.get_logger("wayline.test")
        log.warning("into the first stream")
    finally:
        sys.stderr = before
    first.close()
    log.warning("into the second stream")
    assert "into the second stream" in capsys.readouterr().err
