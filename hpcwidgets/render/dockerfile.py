"""Build recipes as text: a Dockerfile for ``ch-image build`` and a definition file for ``apptainer build``.

Both renderers are pure. :mod:`hpcwidgets.parse.buildfiles` reads the same text back, and a
model in canonical form (each line stripped, no blank first or last line in a section) survives
render → parse unchanged.
"""

from __future__ import annotations

from ..errors import Problem, ValidationError
from ..spec._words import Verbatim
from ..spec.apptainer import DEF_SECTIONS, DefFile
from ..spec.charliecloud import Dockerfile
from .quote import assignment, is_name

#: indentation of section bodies in a definition file and of continuation lines in a Dockerfile
INDENT = "    "

#: the order sections are written in a definition file (the order apptainer runs them in)
DEF_ORDER = DEF_SECTIONS


def render_dockerfile(d: Dockerfile) -> str:
    """The Dockerfile text: the verbatim lines before ``FROM``, ``FROM``, then one instruction per line
    (continued with ``\\``; an instruction whose text is :class:`Verbatim`, a heredoc, exactly as kept)."""
    lines = [*d.before, ""] if d.before else []
    lines.append(f"FROM {d.from_.strip()}")
    for item in d.instructions:
        if isinstance(item.text, Verbatim):
            lines.append(f"{item.op} {item.text}")
            continue
        parts = item.text.split("\n")
        lines.append(f"{item.op} {parts[0]}".rstrip() + (" \\" if len(parts) > 1 else ""))
        for k, part in enumerate(parts[1:], start=2):
            lines.append(INDENT + part + (" \\" if k < len(parts) else ""))
    return "\n".join(lines) + "\n"


def render_deffile(d: DefFile) -> str:
    """The definition file text: earlier stages (verbatim), the header, each non-empty ``%section``,
    then the sections kept verbatim.

    ``%environment`` lines are ``export NAME=value`` with the value quoted by the contract
    (``$NAME`` expands when the container starts); ``%labels`` lines are ``NAME value``.
    """
    out = [*d.before, ""] if d.before else []
    out.append(f"Bootstrap: {d.bootstrap}")
    if d.from_:
        out.append(f"From: {d.from_}")
    out += [f"{h.name}: {h.value}".rstrip() for h in d.header]
    for section in DEF_ORDER:
        body = _body(d, section)
        if not body:
            continue
        out.append("")
        out.append(f"%{section}")
        # %help is text apptainer run-help shows as written, so it is not indented like the shell sections
        out += body if section == "help" else [INDENT + line if line else "" for line in body]
    if d.extra:
        out.append("")
        out += d.extra
    return "\n".join(out) + "\n"


def _body(d: DefFile, section: str) -> list[str]:
    value = getattr(d, section)
    if section == "environment":
        bad = [v.name for v in value if not is_name(v.name)]
        if bad:
            raise ValidationError([Problem("environment", f"{n!r} is not a valid variable name (letters, digits, _; "
                                                          "not starting with a digit); rename it") for n in bad],
                                  subject="apptainer.def")
        return [f"export {assignment(v.name, v.value)}" for v in value]
    if section == "labels":
        return [f"{v.name} {v.value}".rstrip() for v in value]
    if section == "help":
        return value.split("\n") if value else []
    return list(value)
