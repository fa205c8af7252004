"""Smoke test of bench/profile.py (`wayline bench profile`): a tiny build, lookups and the JSON it prints."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "profile.py"


def _bench():
    spec = importlib.util.spec_from_file_location("wayline_bench_profile", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_profile_bench_small_run(tmp_path, capsys):
    bench = _bench()
    n = 300
    db = tmp_path / "profiles.db"
    rc = bench.main(["--profiles", str(n), "--lookups", "200", "--explain-lookups", "50", "--chunk", "300",
                     "--json", "--db", str(db)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0, out
    assert not db.exists()  # removed without --keep

    gen = bench.Generator(7)
    sizes = [gen.size(i) for i in range(n)]
    assert set(sizes) == {2, 3, 4}  # graphs of 2-4 identities
    assert out["profiles"] == n
    assert out["records"] == 3 * n and out["failed_records"] == 0 and out["duplicates"] == 0
    assert out["identities"] == sum(sizes) == out["expected"]["identities"]
    assert out["graphs"] == n == out["expected"]["graphs"]
    assert out["store"]["fragments"] == 3 * n  # 3 fragments per profile, from 2 datasets
    assert out["store"]["view_rows"] == n
    assert out["store"]["links"] == sum(s - 1 for s in sizes)  # each graph is a tree here
    assert out["store"]["graph_events"] == sum(1 for s in sizes if s > 2)  # sizes 3 and 4 merge two graphs
    assert out["consistent"] is True
    assert out["lookup"]["lookups"] == 200 and out["lookup"]["identity_mismatches"] == 0
    assert out["lookup_explain"]["view_differs_from_merge_on_read"] == 0
    assert 0 < out["lookup_p50_ms"] <= out["lookup_p99_ms"]
    assert 0 < out["lookup_explain_p50_ms"] <= out["lookup_explain_p99_ms"]
    assert out["build_seconds"] > 0 and out["ingest_records_per_s"] > 0
    assert out["db_bytes_per_profile"] > 0 and abs(out["db_bytes"] / n - out["db_bytes_per_profile"]) < 1
    assert out["backend"] == "sqlite" and "skipped" in out["postgresql"]
    assert set(out["meets_targets"]) == {"lookup_p99_ms", "ingest_records_per_s", "build_seconds_per_million"}
    assert out["machine"]["cores"] >= 1 and out["machine"]["sqlite"]


def test_profile_bench_pregenerated_units_build_the_same_store(tmp_path, capsys):
    import tempfile

    bench = _bench()
    args = ["--profiles", "300", "--lookups", "50", "--explain-lookups", "10", "--chunk", "300", "--json",
            "--no-table-sizes"]
    leftovers = set(Path(tempfile.gettempdir()).glob("wayline-bench-feed-*"))
    assert bench.main([*args, "--db", str(tmp_path / "a.db")]) == 0
    alongside = json.loads(capsys.readouterr().out)
    assert bench.main([*args, "--db", str(tmp_path / "b.db"), "--pregenerate"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["consistent"] is True and before["records"] == 900
    assert before["store"] == alongside["store"]  # the same units, whether read from a file or a pipe
    assert (before["build"]["generator"], alongside["build"]["generator"]) == ("before the clock", "alongside")
    assert before["build"]["generate_s"] > 0 and "generate_s" not in alongside["build"]
    assert (before["build"]["generator_nice"], alongside["build"]["generator_nice"]) == (None, 19)
    assert set(Path(tempfile.gettempdir()).glob("wayline-bench-feed-*")) == leftovers  # the file is removed


def test_the_generator_alongside_runs_below_the_benchmark_s_priority():
    """`--generator-nice`: the load generator takes the cores the server leaves."""
    import os
    import time

    bench = _bench()
    feed = bench.Feed(300, 300, 7, nice=5)
    try:
        assert feed.next()  # it runs and sends units
        want = min(os.getpriority(os.PRIO_PROCESS, 0) + 5, 19)
        deadline = time.monotonic() + 10
        while (got := os.getpriority(os.PRIO_PROCESS, feed.proc.pid)) != want and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == want
    finally:
        feed.close()


def test_generator_is_deterministic_and_records_are_realistic():
    bench = _bench()
    a, b = bench.Generator(7), bench.Generator(7)
    for i in (0, 1, 2, 12345):
        assert a.crm(i) == b.crm(i) and a.loyalty_a(i) == b.loyalty_a(i) and a.loyalty_b(i) == b.loyalty_b(i)
        for rec in (a.crm(i), a.loyalty_a(i), a.loyalty_b(i)):
            assert 150 <= len(json.dumps(rec, separators=(",", ":"))) <= 700
    assert [bench.Generator(8).email(i) for i in range(20)] != [a.email(i) for i in range(20)]  # seeded
    assert len(a.ecid(3)) == 38 and a.ecid(3).isdigit()
