"""Complete sbatch scripts: ``#SBATCH`` directives, a fail-fast prologue and the job's steps.

Scripts come from one Jinja2 template (``templates/job.sh.j2``) rendered with ``StrictUndefined``,
so a misspelled variable is an error, never an empty string. Every value that reaches a shell
word goes through :func:`hpcwidgets.render.quote.quote`.

The prologue is ``set -eo pipefail``, then the module loads, then ``set -u``: environment
modules (Lmod, Tcl modules) read unset variables, so ``-u`` is switched on only after them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterable

from ..spec.slurm import SlurmJob
from .command import option_words
from .quote import assignment, quote


@dataclass(frozen=True)
class Block:
    """A piece of the script body: shell text with an optional comment line above it."""

    text: str
    comment: str = ""


@functools.cache
def _environment() -> Any:
    import jinja2
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hpcwidgets", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, tabs, …) turned into spaces.

    For text written into a comment or an ``#SBATCH`` line: a line break there would end the
    comment and make the rest of the value a shell command.
    """
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(text))


def _directive_value(value: str) -> str:
    """sbatch reads directive values itself (no shell): quote only what its tokenizer would split or
    escape. Its backslash makes the next character literal even inside quotes, so it is doubled."""
    value = one_line(value)
    if re.search(r"[\s\"'#\\]", value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def directive_lines(job: SlurmJob) -> list[str]:
    """The options after ``#SBATCH``, in declaration order, GPUs written as ``--gres``."""
    out: list[str] = []
    for f in job.field_specs():
        value = getattr(job, f.name)
        if f.name == "gpus_per_node":
            if value:
                if job.gpu_flag == "gpus-per-node":
                    typed = f"{job.gpu_type}:{value}" if job.gpu_type else str(value)
                    out.append(f"--gpus-per-node={_directive_value(typed)}")
                else:
                    out.append(f"--gres={_directive_value(job.gres())}")
            continue
        if f.info.role != "option" or not f.info.flag:
            continue
        words = option_words(f, value)
        if not words:
            continue
        if value is True:
            out.append(words[0])
        else:
            flag, _, val = words[0].partition("=")
            out.append(f"{flag}={_directive_value(val)}")
    out += [one_line(d) for d in job.extra_directives]
    return out


def module_lines(job: SlurmJob) -> list[str]:
    """Module names, each one shell word by the quoting contract (a name never runs as code)."""
    return [quote(m) for m in job.modules]


def export_lines(job: SlurmJob, extra: Iterable[tuple[str, str]] = ()) -> list[str]:
    pairs = [(e.name, e.value) for e in job.env] + list(extra)
    return [assignment(name, value) for name, value in pairs]


def render_script(job: SlurmJob, blocks: Iterable[Block], *, title: str = "",
                  exports: Iterable[tuple[str, str]] = (), setup: Iterable[str] = ()) -> str:
    """Assemble the full script around ``blocks`` (the steps)."""
    from .. import __version__
    text = _environment().get_template("job.sh.j2").render(
        directives=directive_lines(job),
        title=one_line(title or (f"Slurm job {job.job_name}" if job.job_name else "Slurm job")),
        version=__version__,
        modules=module_lines(job),
        exports=export_lines(job, exports),
        setup=list(job.setup) + list(setup),
        blocks=list(blocks),
    )
    return re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"


def render_job(job: SlurmJob) -> str:
    """A Slurm job on its own: directives, prologue and its ``commands`` lines."""
    blocks = [Block(line) for line in job.commands]
    return render_script(job, blocks)

