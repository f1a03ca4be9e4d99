"""The corpus of realistic job scripts: exact expected error/warning codes per script."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpcwidgets.lint import lint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CORPUS = Path(__file__).parent / "data" / "corpus"
EXPECTED: dict[str, list[str]] = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))["expected"]
SCRIPTS = sorted(p.name for p in CORPUS.glob("*.sh"))


def test_corpus_size_and_balance() -> None:
    assert len(SCRIPTS) >= 30
    assert set(SCRIPTS) == set(EXPECTED), "every corpus script needs an entry in expected.toml (and only those)"
    correct = [n for n in SCRIPTS if not EXPECTED[n]]
    broken = [n for n in SCRIPTS if EXPECTED[n]]
    assert len(correct) >= 12 and len(broken) >= 12
    assert all(n.startswith("ok_") for n in correct) and all(n.startswith("bad_") for n in broken)


@pytest.mark.parametrize("name", SCRIPTS)
def test_corpus_script(name: str) -> None:
    text = (CORPUS / name).read_text(encoding="utf-8")
    found = lint(text, path=name)
    got = sorted({f.code for f in found if f.severity != "info"})
    assert got == sorted(EXPECTED[name]), "\n".join(f.format() for f in found)
    assert all(f.path == name and f.line >= 1 for f in found)


@pytest.mark.parametrize("profile", [None, "generic", "local", "midway3"])
def test_linting_the_corpus_never_raises(profile) -> None:
    for name in SCRIPTS:
        text = (CORPUS / name).read_text(encoding="utf-8")
        findings = lint(text, profile, path=name)
        assert isinstance(findings, list)
        # also line by line prefixes: half-written scripts in an editor
        lines = text.splitlines(keepends=True)
        for n in range(0, len(lines), 3):
            assert isinstance(lint("".join(lines[:n]), profile), list)
