"""Documentation that matches the code."""

from __future__ import annotations

import runpy
from pathlib import Path

from emitter.codec import MESSAGE_SCHEMA_FILE, PREVIOUS_SCHEMA_DIR, Schema

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
