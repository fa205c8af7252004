"""The crash harness, small: 3 rounds of SIGKILL against real worker processes, then count.

The full run is `make chaos` (25 rounds per backend); tests/chaos/harness.py says how it works.
"""

from __future__ import annotations

import random

import pytest

from tests.chaos import harness


def smoke_options() -> harness.Options:
    return harness.Options(rounds=3, messages=400, keys=30, mean_unit=5, timers=30, timer_window_ms=1000,
                           kill_min_s=0.3, kill_max_s=1.0, lease_ms=1000, drain_timeout_s=30.0,
                           seed=random.randrange(1_000_000))


def assert_survived(r: dict) -> None:
    info = {k: v for k, v in r.items() if k not in ("events",)}
    assert r["kills"] == 3, info
    assert r["drained"], info
    assert r["accepted_messages"] == r["planned_messages"] and r["produced_twice"] == 0, info
    assert (r["lost"], r["duplicates"], r["out_of_order_keys"]) == (0, 0, 0), info
    assert (r["unknown_effects"], r["mismatched_effects"]) == (0, 0), info
    assert r["applied"] == r["accepted"] == r["effects"], info
    tm = r["timers"]
    assert tm["planned"] == tm["scheduled"] == tm["due"] == tm["fired_once"], info
    assert (tm["fired_twice"], tm["not_fired"]) == (0, 0), info
    assert r["ok"], info


def test_the_embedded_installation_loses_and_repeats_nothing_when_killed():
    assert_survived(harness.run_sqlite(smoke_options()))


@pytest.mark.postgres
def test_postgresql_and_nats_workers_lose_and_repeat_nothing_when_killed(postgres_server):
    why = harness.nats_unavailable()
    if why:
        pytest.skip(f"PostgreSQL + NATS crash smoke skipped: {why}")
    r = harness.run_postgres_nats(smoke_options(), admin_url=postgres_server)
    assert r["nats_restarts"] == 1 and r["db_connections_terminated"] > 0, r
    assert_survived(r)
