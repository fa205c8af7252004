"""Settings: WAYLINE_* variables over wayline.toml over defaults."""

import subprocess
import sys


def test_toml_then_environment(tmp_path):
    (tmp_path / "wayline.toml").write_text('database_url = "sqlite:///from-toml.db"\nport = 9000\n'
                                           '[limits]\nmax_event_bytes = 2048\n')
    code = ("from wayline.config import Settings; s = Settings(); "
            "print(s.database_url, s.port, s.limits.max_event_bytes, s.limits.ingest_rate_per_s)")
    env = {"PATH": "/usr/bin:/bin", "WAYLINE_PORT": "9100", "WAYLINE_LIMITS__INGEST_RATE_PER_S": "5"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["sqlite:///from-toml.db", "9100", "2048", "5.0"]
