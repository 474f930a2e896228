"""Documentation that matches the code."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from emitter.codec import MESSAGE_SCHEMA_FILE, PREVIOUS_SCHEMA_DIR, Schema
from emitter.tgdata import TgData

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_reference_matches_the_settings() -> None:
    """The README's configuration tables are exactly what dev/config-reference prints from the models."""
    reference = runpy.run_path(str(ROOT / "dev" / "config-reference"))["reference"]()
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n", readme.index("<!-- config-reference:start")) + 1
    end = readme.index("<!-- config-reference:end -->")
    assert readme[start:end].strip() == reference.strip()


def test_readme_first_lines_give_run_and_test() -> None:
    """The README opens with the two commands that work on a fresh machine."""
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:6])
    assert "make run" in head
    assert "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_schema_versions_name_each_fingerprint() -> None:
    """The README's "Schema versions" names the fingerprint of the current schema and of the kept previous one,
    so a schema change that forgets the consumer notes fails here."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Schema versions") : readme.index("## Configuration")]
    files = [MESSAGE_SCHEMA_FILE, *sorted(PREVIOUS_SCHEMA_DIR.glob("*.avsc"))]
    assert len(files) >= 2
    for file in files:
        assert f"`{Schema.load(file).fingerprint.hex()}`" in section, file.name


def test_readme_lists_every_public_tgdata_call() -> None:
    """Each public method of TgData is named in README's library section."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Using it as a library: `TgData`", 1)[1]
    section = section.split("\n## ", 1)[0]
    calls = [name for name, value in vars(TgData).items() if callable(value) and not name.startswith("_")]
    assert len(calls) > 10
    missing = [name for name in calls if not re.search(rf"(`|tg\.){name}[`(]", section)]
    assert missing == []
