"""Shell text and job scripts → models (the inverse of :mod:`hpcwidgets.render`).

* :func:`parse_script`: a whole sbatch script → :class:`~hpcwidgets.spec.workflow.Workflow`;
* :func:`parse_command`: one command line → the model of its outermost command;
* :func:`read_script`: the richer reading the linter uses (directives with lines, variables, steps);
* :func:`parse_job` and :func:`parse_jupyter_job`: a script read into a job alone (the forms' Load and the
  CLI's ``--from`` use them).

Only :class:`~hpcwidgets.errors.ParseError` (with line and column) is raised for bad input.
"""

from __future__ import annotations

from typing import Any


def parse_command(text: str) -> Any:
    """One command (continuation lines allowed), e.g. ``apptainer exec --nv img.sif python t.py``."""
    from .argv import parse_argv
    from .lexer import lex_command
    cmd = lex_command(text)
    if not cmd.words:
        from ..errors import ParseError
        raise ParseError("no command found: only assignments or redirections", cmd.line, cmd.col)
    return parse_argv([w.value for w in cmd.words], env={n: w.value for n, w in cmd.assignments},
                      source_line=cmd.line).model


def parse_script(text: str, path: str = "") -> Any:
    """A whole job script → Workflow (what it does; unmodelled lines kept verbatim, in place)."""
    from .workflow import parse_script as _parse
    return _parse(text, path)


def read_script(text: str, path: str = "") -> Any:
    from .script import read_script as _read
    return _read(text, path)


def parse_job(text: str, path: str = "") -> Any:
    """A job script read into a :class:`~hpcwidgets.spec.slurm.SlurmJob`: directives, the module loads and
    exports at its top, and every other line kept in order as its set-up lines (nothing is dropped)."""
    from ..spec.workflow import Workflow
    from .workflow import require_shell, workflow_from
    require_shell(text, path)
    return workflow_from(read_script(text, path), Workflow, job_only=True)


def parse_jupyter_job(text: str, path: str = "") -> Any:
    """A Jupyter job script hpcwidgets wrote → JupyterJob: its directives and modules, the container and
    server settings of its start line, and its tunnel (see :mod:`hpcwidgets.parse.jupyter`)."""
    from .jupyter import parse_jupyter_job as _parse
    return _parse(text, path)


__all__ = ["parse_command", "parse_job", "parse_jupyter_job", "parse_script", "read_script"]
