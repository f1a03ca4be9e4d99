"""Apply the linter's mechanical fixes to script text.

Fixes are data (:class:`hpcwidgets.lint.Fix`); turning them into text needs the quoting contract,
so it lives here, above both the linter and the renderer. Fixes are applied one at a time and the
script is linted again after each, so overlapping fixes (two rules on one step) compose.
"""

from __future__ import annotations

from typing import Any

from .lint import Finding, Fix, lint
from .render.command import wrap
from .render.quote import quote

MAX_ROUNDS = 25


def fix_text(fix: Fix, indent: str = "") -> str:
    """The replacement lines for one fix (no trailing newline)."""
    if fix.text is not None:
        return fix.text
    env = []
    words = list(fix.words)
    while words and "=" in words[0] and words[0].split("=", 1)[0].isidentifier() and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        env.append(f"{name}={quote(value)}")
    quoted = env + [quote(w) for w in words]
    body = wrap(quoted, group_starts=set(fix.groups), indent=indent + "  ")
    lines = [indent + line for line in fix.before] + [indent + body]
    return "\n".join(lines)


def apply_fix(text: str, fix: Fix) -> str:
    lines = text.split("\n")
    start, end = fix.start - 1, fix.end - 1
    if not (0 <= start <= end < len(lines)):
        raise ValueError(f"fix for lines {fix.start}-{fix.end} does not fit a {len(lines)}-line script")
    first = lines[start]
    indent = first[: len(first) - len(first.lstrip())]
    # keep a trailing comment of the last line (e.g. a suppression) on the new last line
    replacement = fix_text(fix, indent).split("\n")
    return "\n".join(lines[:start] + replacement + lines[end + 1:])


def fix_script(text: str, profile: Any = None, *, path: str = "") -> tuple[str, list[Finding]]:
    """Apply every available fix; return the new text and the findings that were fixed."""
    fixed: list[Finding] = []
    for _ in range(MAX_ROUNDS):
        findings = [f for f in lint(text, profile, path=path) if f.fix is not None]
        if not findings:
            break
        finding = findings[0]
        new = apply_fix(text, finding.fix)  # type: ignore[arg-type]
        if new == text:
            break
        fixed.append(finding)
        text = new
    return text, fixed
