"""Text → model for the builders' Load action (pure; every failure is a ParseError with a line).

Scripts go through the project's parser (:func:`hpcwidgets.parse.parse_script`); a single
command through the argument reader. Nothing here is specific to widgets except the choice of
which model a builder can hold.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import ParseError


def parse_workflow(text: str) -> Any:
    """A job script read into a :class:`~hpcwidgets.spec.workflow.Workflow` (unmodelled lines kept in place)."""
    from ..parse import parse_script
    return parse_script(text)


def parse_job(text: str) -> Any:
    """A job script read into a :class:`~hpcwidgets.spec.slurm.SlurmJob` (see :func:`hpcwidgets.parse.parse_job`)."""
    from ..parse import parse_job as read
    return read(text)


def parse_command(text: str, allowed: Iterable[type]) -> Any:
    """One command line read into a model that must be one of ``allowed`` classes."""
    from ..parse.argv import parse_argv
    from ..parse.lexer import lex_command
    cmd = lex_command(text)
    words = [w.value for w in cmd.words]
    env = {name: w.value for name, w in cmd.assignments}
    if cmd.redirects:
        raise ParseError(f"this form holds one command without redirections; {cmd.redirects[0].raw!r} cannot be "
                         "kept: remove it here and write it in the job script (the workflow form keeps it)", cmd.line)
    parsed = parse_argv(words, env=env, source_line=cmd.line)
    kept = {parsed.model.env_name(f.info.env) for f in parsed.model.field_specs() if f.info.env}
    lost = [name for name in env if name not in kept]
    if lost:
        raise ParseError(f"{lost[0]}=… before the command is not one of its settings, so this form cannot keep it; "
                         "export it in the job script instead (the workflow form reads it as an export)", cmd.line)
    allowed = tuple(allowed)
    if not isinstance(parsed.model, allowed):
        names = ", ".join(sorted({getattr(c, "kind", c.__name__) for c in allowed}))
        raise ParseError(f"this is a {parsed.model.kind} command; this form holds {names}", cmd.line, cmd.col)
    return parsed.model


def parse_deffile(text: str) -> Any:
    from ..parse.buildfiles import parse_deffile as read
    return read(text)


def parse_jupyter(text: str) -> Any:
    """A Jupyter job script (see :func:`hpcwidgets.parse.parse_jupyter_job`)."""
    from ..parse import parse_jupyter_job
    return parse_jupyter_job(text)
