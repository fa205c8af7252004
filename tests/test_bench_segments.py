"""Smoke test of bench/segments.py (`wayline bench segments`): a tiny run and the JSON it prints."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "segments.py"


def test_segments_bench_small_run(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("wayline_bench_segments", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    rc = bench.main(["--profiles", "400", "--changes", "40", "--streaming-definitions", "30", "--json",
                     "--db", str(tmp_path / "s.db")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    assert out["profiles"] == 400 and out["streaming_changes"] == 40
    per = out["batch_per_definition"]
    assert len(per) == 10 and all(0 <= v["profiles"] <= 400 for v in per.values())
    # the generator gives every tier, country and event kind: no definition selects nobody or everyone
    assert all(0 < v["profiles"] < 400 for v in per.values()), per
    assert 0 < out["streaming_eval_only_p50_us"] <= out["streaming_eval_only_p99_us"]
    assert 0 < out["streaming_p50_us"] <= out["streaming_p99_us"]
