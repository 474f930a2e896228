"""The embedded default: no Telegram account and no Kafka, the emitter writes Avro files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emitter.demo_source import demo_group
from emitter.file_sink import read_group


def test_run_without_kafka_writes_avro_files_once(tmp_path: Path) -> None:
    """`emitter run` with nothing configured uses the demo source and the file sink; a rerun adds nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMITTER_", "TELEGRAM_"))}
    cmd = [sys.executable, "-m", "emitter.cli", "run", "--demo-limit", "120", "--demo-history", "100"]
    cmd += ["--demo-rate", "500", "--demo-groups", "1"]
    for _ in range(2):
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    records = list(read_group(tmp_path / "data", "default", demo_group(1).id))
    new = [r["message_id"] for r in records if r["event_type"] == "NEW"]
    assert new == list(range(1, 121))
    assert "published 0 events" in proc.stderr.splitlines()[-1]
