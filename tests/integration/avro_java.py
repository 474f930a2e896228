"""dev/avro-java from tests: the Java Avro library's fingerprint and decoder, run as a subprocess."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "dev" / "avro-java"


def _run(args: list[str], stdin: str = "") -> str:
    done = subprocess.run([str(TOOL), *args], input=stdin, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"dev/avro-java {args[0]} failed ({done.returncode}): {done.stderr.strip()}"
    return done.stdout


def java_fingerprint(schema_file: Path) -> bytes:
    """SchemaNormalization.parsingFingerprint64, in the single-object header's byte order."""
    return bytes.fromhex(_run(["fingerprint", str(schema_file)]).strip())


def java_decode(values: Iterable[bytes], writer_schema: Path, reader_schema: Path | None = None) -> list[Any]:
    """Each value read by Java's GenericDatumReader, as the JSON its GenericData prints."""
    args = ["decode", "--writer-schema", str(writer_schema)]
    if reader_schema is not None:
        args += ["--reader-schema", str(reader_schema)]
    out = _run(args, "".join(v.hex() + "\n" for v in values))
    return [json.loads(line) for line in out.splitlines()]
