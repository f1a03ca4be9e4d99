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
    from ..parse.lexer import lex_script
    from ..parse.workflow import require_shell
    from ..spec.names import spoken, spoken_list
    allowed = tuple(allowed)
    require_shell(text)  # a Python job script pasted here: say so, not a shell syntax error in its Python
    code = lex_script(text).code
    if len(code) != 1:
        if not code:
            raise ParseError(f"there is no command to load; paste {spoken_list(allowed)}", 0)
        raise ParseError(f"this form holds one command, and the text has {len(code)}: paste only "
                         f"{spoken_list(allowed)}, or load a whole job script into the Workflow or Slurm form",
                         code[1].line, code[1].col)
    cmd = code[0]
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
    if not isinstance(parsed.model, allowed):
        inner = _launched(parsed.model, allowed)
        if inner:  # srun apptainer exec …: the line as copied from a job script
            raise ParseError(f"this is an srun command that runs {inner}: paste the command without srun and its "
                             "options (this form builds the command srun runs), or load the whole line into the "
                             "Workflow form, which keeps srun", cmd.line, cmd.col)
        raise ParseError(f"this is {spoken(parsed.model)}; this form holds {spoken_list(allowed)}", cmd.line, cmd.col)
    return parsed.model


def _launched(model: Any, allowed: tuple[type, ...]) -> str:
    """What an srun model runs, named, when it is a command this form holds ("" otherwise)."""
    from ..parse.argv import parse_argv
    from ..spec.names import spoken
    inner = getattr(model, "command", ())
    if not inner or isinstance(inner, str):
        return ""
    try:
        found = parse_argv([str(w) for w in inner]).model
    except ParseError:
        return ""
    return spoken(found) if isinstance(found, allowed) else ""


def parse_deffile(text: str) -> Any:
    from ..parse.buildfiles import parse_deffile as read
    return read(text)


def parse_jupyter(text: str) -> Any:
    """A Jupyter job script (see :func:`hpcwidgets.parse.parse_jupyter_job`)."""
    from ..parse import parse_jupyter_job
    return parse_jupyter_job(text)
