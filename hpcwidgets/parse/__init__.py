"""Shell text and job scripts → models (the inverse of :mod:`hpcwidgets.render`).

* :func:`parse_script`: a whole sbatch script → :class:`~hpcwidgets.spec.workflow.Workflow`;
* :func:`parse_command`: one command line → the model of its outermost command;
* :func:`read_script`: the richer reading the linter uses (directives with lines, variables, steps);
* :func:`parse_job` and :func:`parse_jupyter_job`: a script read into a job alone (the forms' Load and the
  CLI's ``--from`` use them).

Only :class:`~hpcwidgets.errors.ParseError` (with line and column) is raised for bad input; text of another type
(a file's path, bytes, None) is one too, saying what to pass instead.
"""

from __future__ import annotations

import os
from typing import Any


def script_text_problem(value: Any, function: str, *, models: bool = False, cli: str = "hpcwidgets parse FILE") -> str:
    """Why ``value`` cannot be given to ``function`` (``"lint()"``), which takes a script's text (``models``: or a
    model), and what to pass instead (``cli``: the command that takes a file): the message of its caller's error."""
    takes = "the script's text (str) or a model" if models else "the script's text (str)"
    if isinstance(value, os.PathLike):
        return (f"{function} takes {takes}, not a file's path: read the file first, "
                f"{function[:-1]}Path({os.fspath(value)!r}).read_text()), or give the file to the command line "
                f"({cli})")
    if isinstance(value, (bytes, bytearray)):
        return f"{function} takes {takes}, not bytes: decode them first, {function[:-1]}data.decode())"
    if isinstance(value, dict) and models:
        return (f"{function} takes {takes}, not a dict: build the model from it first, "
                f"{function[:-1]}Workflow.from_dict(data)) (or the model class of its \"kind\")")
    shown = "None" if value is None else f"{type(value).__name__} {_short(value)}"
    return f"{function} takes {takes}, got {shown}; a file's text is Path(NAME).read_text()"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _require_text(text: Any, function: str) -> None:
    if not isinstance(text, str):
        from ..errors import ParseError
        raise ParseError(script_text_problem(text, function))


def parse_command(text: str) -> Any:
    """One command (continuation lines allowed), e.g. ``apptainer exec --nv img.sif python t.py``."""
    _require_text(text, "parse_command()")
    from .argv import parse_argv
    from .lexer import lex_command
    cmd = lex_command(text)
    if not cmd.words:
        from ..errors import ParseError
        raise ParseError("no command found: only assignments or redirections", cmd.line, cmd.col)
    return parse_argv([w.value for w in cmd.words], env={n: w.value for n, w in cmd.assignments},
                      source_line=cmd.line).model


def as_read(text: str) -> str:
    """A script's text as the model readers take it, as the command line reads a file: a leading byte-order mark
    dropped and Windows (or old Mac) line ends made ``\n``, so that no ``\r`` ends up in a word (``train.py\r``) and
    the ``#!`` line is the first. The linter reads the text as it is, to report both (HPC314, HPC315)."""
    # (files.decode_text does the same for a file; the parse layer imports no files, see README's architecture)
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def parse_script(text: str, path: str = "") -> Any:
    """A whole job script → Workflow (what it does; unmodelled lines kept verbatim, in place)."""
    _require_text(text, "parse_script()")
    from .workflow import parse_script as _parse
    return _parse(as_read(text), path)


def read_script(text: str, path: str = "") -> Any:
    """A job script read as the linter reads it: directives with their lines, variables, launch steps."""
    _require_text(text, "read_script()")
    from .script import read_script as _read
    return _read(text, path)


def parse_job(text: str, path: str = "") -> Any:
    """A job script read into a :class:`~hpcwidgets.spec.slurm.SlurmJob`: directives, the module loads and
    exports at its top, the lines before its first real work (a launch, a program, an install) as set-up lines and
    the rest as its commands, each kept in order as written (nothing is dropped)."""
    _require_text(text, "parse_job()")
    from ..errors import ParseError
    from ..spec.workflow import Workflow
    from .workflow import handed_over, require_shell, workflow_from
    text = as_read(text)
    require_shell(text, path)
    try:
        parsed = read_script(text, path)
    except ParseError as exc:
        raise handed_over(text, path) or exc from None
    return workflow_from(parsed, Workflow, job_only=True)


def parse_jupyter_job(text: str, path: str = "") -> Any:
    """A Jupyter job script hpcwidgets wrote → JupyterJob: its directives and modules, the container and
    server settings of its start line, and its tunnel (see :mod:`hpcwidgets.parse.jupyter`)."""
    _require_text(text, "parse_jupyter_job()")
    from .jupyter import parse_jupyter_job as _parse
    from .workflow import require_shell
    text = as_read(text)
    require_shell(text, path)  # a Python job script: say so, not a shell syntax error in its Python
    return _parse(text, path)


__all__ = ["parse_command", "parse_job", "parse_jupyter_job", "parse_script", "read_script"]
