"""A job script → :class:`~hpcwidgets.spec.workflow.Workflow` (the inverse of ``render_workflow``).

The main step is the last launch in the script with a launcher or a container (``torchrun``,
``apptainer exec``), else its last launch (``srun``), else its last real command, provided the model
can write it back as it was: alone on its line (not part of a pipeline or an ``&&`` list), without
``exec``/``time``/``!`` before it or a here-document. What the model has a place for is read into
it: directives, modules, exports, the image preparation
``[ -f IMG ] || apptainer pull …``, a job-array sweep, the head-node line, but only when the
renderer would write it in the same order relative to everything else (a ``module load`` after
``module purge`` stays where it is). Everything else is kept verbatim, in place: lines before the
step become the job's set-up lines, lines after it the workflow's ``after`` lines. A script keeps its
own shell options (``SlurmJob.fail_fast``); the lines the renderer writes itself (its comments, its
prologue where it writes it) are recognised in a generated script and not duplicated, so ``render(parse(s))`` is a
fixed point after one round, and running ``s`` and ``render(parse(s))`` makes the same calls. The job also keeps the
script's layout (:mod:`hpcwidgets.parse.layout`): rendered without edits, the model gives back ``s`` itself, and an
edit changes the lines of the fields edited.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from ..errors import ParseError
from ..spec import comments as rendered
from ..spec._words import Verbatim
from ..spec.charliecloud import USER_COMMENT, USER_LINE
from ..spec.common import EnvVar
from ..spec.slurm import STEP, Comment, shebang_program
from ..spec.torchrun import HEAD_NODE_LINE, HEAD_NODE_VAR
from ..spec.workflow import SweepAxis, grid_picks
from .argv import GLOBAL_OPTIONS, parse_argv, recognise
from .lexer import LIST_OPERATORS, Command, compound_body, remember_last
from .script import LEGACY_LAUNCH, ParsedScript, Step, launch_words, read_script, runs_in_a_shell

#: the renderer's header line and step comment begin so (:mod:`hpcwidgets.spec.comments`, imported as
#: ``rendered``); a script read back is rendered without them when it had none
GENERATED_BY = "# " + rendered.GENERATED_BY
STEP_COMMENT = "# " + rendered.STEP
#: the fail-fast lines the template writes (``SlurmJob.fail_fast``)
_PROLOGUE_LINES = ("set -eo pipefail", "set -u")
#: a hand-written first line that asks for what a fail-fast prologue does → the ``fail_fast`` it becomes
_OWN_PROLOGUE = {"set -eo pipefail": "errexit", "set -euo pipefail": "strict", "set -e -u -o pipefail": "strict",
                 "set -eu -o pipefail": "strict"}
_SWEEP_ARRAY = re.compile(r"([a-z_][a-z0-9_]*)_values=\((.*)\)")
#: commands that are never the step: messages and looks at the node, the shell's own state, control flow, files
#: moved around the work, and Slurm's tools (``sbatch "$0"`` resubmits the job; it is not the job's work)
_NOISE = frozenset({
    "echo", "printf", "date", "hostname", "nvidia-smi", "env", "printenv", "pwd", "true", "false", "sleep",
    "cd", "source", ".", "set", "export", "module", "ml", "conda", "mamba", "micromamba", "trap", "umask", "ulimit",
    "declare", "typeset", "readonly", "local", "unset", "shopt", "mapfile", "readarray", "read", "shift", "let",
    "alias", "pushd", "popd",
    "!", "exec", "time", "nohup", "command", "exit", "return", "break", "continue", ":", "[", "test", "wait", "kill",
    "mkdir", "rm", "cp", "ls", "mv", "ln", "touch", "chmod", "rsync", "scp", "tar", "gzip", "gunzip", "unzip", "zip",
    "du", "df", "find", "sync", "sbcast",
    "sbatch", "scontrol", "squeue", "sacct", "seff", "sinfo", "scancel"})


# Where the renderer writes what it reads into the model, in script order. A line is read into the
# model only when that keeps the order of everything around it (see _keep_order); otherwise it stays
# verbatim in its place, so re-rendering a script never moves one command past another.
MODULES, USER, EXPORTS, VERBATIM, PREPARE, SWEEP, HEAD = range(7)


@dataclass
class _Entry:
    """One set-up command (or block of lines) before the step: what it is and its original text."""

    rank: int                       # where the renderer would write it (VERBATIM: in place)
    text: list[str]                 # its lines as written, for when it stays verbatim
    payload: Any = None             # what it becomes in the model when read: module names, EnvVars, a model…
    generated: list[str] = field(default_factory=list)  # the renderer's own comment above it
    argv: tuple[str, ...] = ()      # a simple command's words (values)
    comment: str = ""               # the comment at the end of its line; for a comment line, the comment itself


@dataclass
class _Reading:
    """What the walk over the script has read so far."""

    entries: list[_Entry] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    skip_until: int = 0                     # lines already read as part of a block (a guarded pull, a sweep)
    #: a set-up comment worded like one the renderer writes above a block, with its line: it is the renderer's own
    #: only where the renderer itself would write it (see :meth:`settle`)
    maybe_generated: tuple[int, str] | None = None

    def settle(self, line: int = 0, written: tuple[str, ...] = ()) -> list[str]:
        """The waiting comment as the renderer's own (``[comment]``, left out of the set-up lines) when it is one
        the renderer writes above the block starting at ``line`` (``written``), on the line right above it;
        otherwise it is a person's comment, kept in its place among the set-up lines (``[]``)."""
        held, self.maybe_generated = self.maybe_generated, None
        if held is None:
            return []
        at, text = held
        if at == line - 1 and text in written:
            return [text]
        self.entries.append(_Entry(-1, [text], comment=text))
        return []


def _classify(cmd: Command, cmds: Any, i: int) -> _Entry:
    """What a set-up command is to the model."""
    text = cmd.text if cmd.joined_by else cmd.text.rstrip("\n")  # a list may go on after a newline (||⏎)
    stripped = text.strip()
    verbatim = [_dedent(text)]
    names = [str(w.value) for w in cmd.words]
    modules = _module_list(cmd)
    if modules is not None and not cmd.joined_by:
        return _Entry(MODULES, verbatim, modules)
    if stripped in (HEAD_NODE_LINE, f"export {HEAD_NODE_VAR}"):  # the renderer's own (head -n 1 stays as written)
        return _Entry(HEAD, verbatim, stripped)
    if stripped == USER_LINE:
        return _Entry(USER, verbatim, stripped)
    m = _SWEEP_ARRAY.fullmatch(stripped)
    if m and i + 1 < len(cmds):
        sweep = _read_sweep(m, cmds[i + 1:])
        if sweep is not None:
            last = sweep[-1]
            return _Entry(SWEEP, verbatim + [_dedent(c.text.rstrip("\n")) for c in cmds[i + 1:]
                                             if c.line <= last and c.kind != "blank"], sweep)
    if names and names[0] == "export" and cmd.assignments and len(cmd.assignments) == len(names) - 1 \
            and not cmd.joined_by:
        return _Entry(EXPORTS, verbatim, [EnvVar(n, w.value) for n, w in cmd.assignments])
    guarded = _read_prepare(cmd, cmds[i + 1:] if i + 1 < len(cmds) else ())
    if guarded is not None:
        model, last = guarded
        lines = [_dedent(text.rstrip("\n"))] + [_dedent(c.text.rstrip("\n")) for c in cmds[i + 1:]
                                               if c.line <= last and c.kind != "blank"]
        return _Entry(PREPARE, lines, (model, last))
    fromhost = _read_fromhost(cmd)
    if fromhost is not None:
        return _Entry(PREPARE, verbatim, (fromhost, cmd.end_line))
    return _Entry(VERBATIM, verbatim, argv=tuple(str(w) for w in cmd.argv) if not cmd.joined_by else ())


def _read_fromhost(cmd: Command) -> Any:
    """``ch-fromhost --nvidia IMAGE_DIR``, the one preparation the renderer writes unguarded (it runs every job:
    the libraries follow the node's driver) → the model, else None."""
    words = [w.value for w in cmd.words]
    if cmd.joined_by or cmd.assignments or not words or str(words[0]).rsplit("/", 1)[-1] != "ch-fromhost" \
            or any(isinstance(w, Verbatim) for w in words):
        return None
    try:
        model = parse_argv([str(w) for w in words]).model
    except ParseError:
        return None
    return model if model.kind == "charliecloud.fromhost" else None


def _module_list(cmd: Command) -> tuple[str, ...] | None:
    names = [str(w.value) for w in cmd.words]
    if cmd.assignments or any(isinstance(w.value, Verbatim) for w in cmd.words):
        return None
    if names[:2] in (["module", "load"], ["module", "add"]) and len(names) == 3 and not names[2].startswith("-"):
        return (names[2],)  # one module: the template writes one load per line (a b on one line stays)
    return None


def _keep_order(entries: list[_Entry], allowed: set[int]) -> None:
    """Leave verbatim every entry whose reading would move it past another command.

    The renderer writes modules, then the ch-run user line, exports, the verbatim set-up lines,
    preparations, the sweep and the head node. A forward pass keeps a rank only when no
    earlier command has a later rank; a backward pass then turns back into text any read block
    followed by a command the renderer would write before it.
    """
    top = MODULES
    for e in entries:
        if e.rank == VERBATIM:
            top = max(top, VERBATIM)
        elif e.rank not in allowed or e.rank < top:
            e.rank = VERBATIM
            top = max(top, VERBATIM)
        else:
            top = e.rank
    low = HEAD + 1
    for e in reversed(entries):
        if e.rank > low:
            e.rank = VERBATIM
        low = min(low, e.rank)


def require_shell(text: str, path: str = "") -> None:
    """Refuse a job script sbatch runs with another interpreter (Python, R, csh …: its ``#!`` line): its ``#SBATCH``
    lines are comments of that language, and a model written back as a bash script would run the program's own
    lines as shell commands."""
    if not runs_in_a_shell(text):
        raise ParseError(f"this job script runs with {shebang_program(text)} (its #! line), not a shell, so it cannot be "
                         "read into a model and written back; hpcwidgets lint still checks its #SBATCH lines",
                         1, 1, path)


def parse_script(text: str, path: str = "") -> Any:
    """Read a job script into a Workflow. Only :class:`~hpcwidgets.errors.ParseError` is raised."""
    from ..spec.workflow import Workflow
    require_shell(text, path)
    try:
        parsed = read_script(text, path)
    except ParseError as exc:
        raise handed_over(text, path) or exc from None
    return workflow_from(parsed, Workflow)


def handed_over(text: str, path: str) -> ParseError | None:
    """The error for a script whose bash header hands the file to another program (``exec julia "$0"``, ``exit``
    before Julia or R code) when the text after it is no shell: it cannot be read into a model and written back, which
    a message about the other language's syntax would not say. None for any other script."""
    from .script import reachable_text
    reachable = reachable_text(text)
    if reachable == text:
        return None
    line = len(reachable.rstrip("\n").split("\n"))
    return ParseError(f"this job script's shell part ends on line {line} (exec or exit), and what follows is not shell "
                      "(another program's code, which bash never reads), so it cannot be read into a model and "
                      "written back; hpcwidgets lint checks its #SBATCH lines and the shell lines before it", line, 1,
                      path)


def _generated_title(parsed: ParsedScript) -> tuple[str, int]:
    """The title comment above the renderer's "Generated by" line, and that comment's line (0 if none)."""
    cmds = parsed.lexed.commands
    for i, cmd in enumerate(cmds):
        if cmd.kind == "comment" and cmd.text.lstrip().startswith(GENERATED_BY) and i > 0:
            prev = cmds[i - 1]
            if prev.kind == "comment":
                from ..render.script import script_title
                title = prev.text.strip()[1:].strip()
                return ("" if title == script_title("", parsed.job.job_name) else title), prev.line
    return "", 0


def _alone(cmd: Command, code: tuple[Command, ...]) -> bool:
    """True when ``cmd`` is the only command on its lines: not part of a pipeline or a ``&&``/``;`` list,
    which the model cannot hold (re-rendering the step alone would drop the rest)."""
    return not cmd.joined_by and all(other is cmd for other in _same_lines(cmd, code))


def _inline_env_ok(env: Any) -> bool:
    """``NAME=value`` before a command can become an export only when its value refers to nothing the
    set-up lines might define (exports are written above them)."""
    return all(not isinstance(v, Verbatim) and "$" not in str(v) for _, v in env)


def _main_step(parsed: ParsedScript, workflow_cls: Any) -> Step | None:
    """The launch the workflow's step is read from: the last one that runs something (``apptainer exec
    IMAGE`` alone does not: such a line stays verbatim in its place rather than become a step with nothing
    to run), and among those the last with a launcher or a container: a later ``srun`` of a utility
    (``srun dcgmi profile --resume``, a clean-up) is then one of the lines after the step, still in its place.

    Only a launch the model can write back as it was is taken: alone on its line, without words the
    model has no place for (``exec``, ``time``, ``env A=1``, ``!``, a here-document), one program (not an srun of
    several, see :func:`_several_programs`) and not the deprecated ``python -m torch.distributed.launch``, whose
    options torchrun does not all accept.
    """
    plain = None
    for step in reversed(parsed.steps):
        taken = _as_written(parsed, step, workflow_cls)
        if taken is not None and (taken.chain.launcher is not None or taken.chain.container is not None):
            return taken
        plain = plain or taken
    return plain


def _as_written(parsed: ParsedScript, step: Step, workflow_cls: Any) -> Step | None:
    """``step`` as the workflow can hold it, or None when the model cannot write it back as it was.

    An unquoted expansion that bash may split (``$ARGS``, ``${MODULE}`` with an unknown value) is kept as
    written (:class:`Verbatim`, not quoted) when it is one of the program's own arguments; in an option of
    ``srun``, the container or the launcher, the model would quote it into one word, so the launch is not taken.
    """
    cmd = step.command
    words = [str(w.value) for w in cmd.words]
    if step.in_compound or step.wrapper or any(w in LEGACY_LAUNCH for w in words[:3]) or _several_programs(step):
        return None
    if not _alone(cmd, parsed.lexed.code) or launch_words(words) != words or \
            any(r.heredoc is not None for r in cmd.redirects) or not _inline_env_ok(step.env):
        return None
    if any(b in GLOBAL_OPTIONS.get(a.rsplit("/", 1)[-1], ()) for a, b in zip(words, words[1:])):
        return None  # singularity -s exec …: the model has no place for the program's own options
    chain = step.chain
    if any(parsed.may_split(w, step.line) for w in cmd.words):
        chain = _split_words_kept(parsed, step)
        if chain is None:
            return None
    trial = workflow_cls(srun=chain.srun, container=chain.container, launcher=chain.launcher,
                         program=tuple(chain.program) if chain.launcher is None else ())
    return replace(step, chain=chain) if trial.runs_something() else None


def _several_programs(step: Step) -> bool:
    """Whether the step is an srun of several programs, each with its own options (``srun -n1 server : -n4 client``,
    a heterogeneous step): srun takes every ``:`` word among its arguments for the start of the next one, and the
    step model holds one program."""
    return step.chain.srun is not None and ":" in [str(w.value) for w in step.command.words]


def _split_words_kept(parsed: ParsedScript, step: Step) -> Any:
    """The step's chain with its program arguments that bash may split kept as written, or None when such
    a word is not one of them (it is an option of an outer layer, or the script or program itself), unless
    the layer read it as options (``apptainer exec $nv IMG``: kept as written among its other options)."""
    chain = step.chain
    args = tuple(chain.launcher.args) if chain.launcher is not None else tuple(chain.program)[1:]
    words = step.command.words[len(step.command.words) - len(args):] if args else ()
    if tuple(str(w.value) for w in words) != tuple(str(a) for a in args):
        return None  # the arguments are not the command's last words as written: leave it alone
    expanded = set(chain.expanded)  # an option word from a variable ($nv), kept as written by the layer that read it
    if any(parsed.may_split(w, step.line) and w.raw not in expanded
           for w in step.command.words[:len(step.command.words) - len(args)]):
        return None
    kept = tuple(Verbatim(w.raw) if parsed.may_split(w, step.line) else a for w, a in zip(words, args))
    if chain.launcher is not None:
        return replace(chain, launcher=chain.launcher.replace(args=kept))
    return replace(chain, program=(chain.program[0], *kept))


def _plain_program(parsed: ParsedScript) -> tuple[Command, tuple[Any, ...]] | None:
    """Without a launch: the last simple command that does real work (``python train.py``) and its words as
    the model holds them, when it can hold them as written.

    A program argument bash may split (``$ARGS``) is kept as written, and redirections (``> log 2>&1``) follow
    the arguments, as for a launch. When the last command that works cannot be held (``deepspeed … | tee log``,
    a here-document, a program name from a variable), no earlier line is taken in its place: ``cat hostfile``
    or ``pip install`` is no step, and every line stays as written.
    """
    code = parsed.lexed.code
    functions = _functions(parsed)
    for cmd in reversed(code):
        if not _works(cmd, functions):
            continue
        if cmd.kind == "compound" or recognise([str(w.value) for w in cmd.words]) is not None:
            return None  # a loop of runs (for lr in …; do python train.py …), a launch the reader could not take
        if not _alone(cmd, code):
            if all(other.name in _NOISE or other.name in _FILTERS for other in _same_lines(cmd, code)):
                continue  # nvidia-smi | tee gpus.log: a look at the node, not the work
            return None
        if isinstance(cmd.words[0].value, Verbatim) or parsed.may_split(cmd.words[0], cmd.line) or \
                any(r.heredoc is not None for r in cmd.redirects) or \
                not _inline_env_ok([(n, w.value) for n, w in cmd.assignments]) or \
                any(_PLACEHOLDER.fullmatch(w.raw) for w in cmd.words):
            return None  # a template's {cmd} (batchspawner fills it in before bash reads it) stays as written too
        words = [Verbatim(w.raw) if parsed.may_split(w, cmd.line) else w.value for w in cmd.words]
        return cmd, (*words, *_redirect_words(cmd))
    return None


def _works(cmd: Command, functions: dict[str, list[Command]], at: int = -1, calling: frozenset[str] = frozenset()) \
        -> bool:
    """Whether ``cmd`` runs a program that does real work: not a message, a check, a look at the node or a file,
    the set-up of the shell's environment (``eval "$(conda shell.bash hook)"``), a one-liner (``python -c``,
    ``perl -e`` on one line, or in a function the script calls) or the image's preparation (``apptainer pull``, which the reader takes into the model); for a loop
    or an ``if``, whether a command in it does. A launch the reader could not take (``apptainer exec "${OPTS[@]}" …``)
    works. A wrapper (``time``, ``nohup``, ``exec``, ``env A=1``) works when what it runs does. A function definition
    runs nothing where it stands; a call of one of the script's ``functions`` (see :func:`_functions`) works when the
    body it runs does, so ``makehostfile > hostfile`` is set-up and ``train_model`` is work. ``at`` is where (the
    offset of) the call being followed into a body is, which decides the definition a call there runs; ``calling``
    names the functions on the way there (a function that calls itself is followed once)."""
    if cmd.kind == "compound":
        return not _FUNCTION.match(cmd.text) and \
            any(_works(inner, functions, at, calling) for inner in compound_body(cmd))
    if cmd.kind != "simple" or not cmd.words:
        return False
    words = launch_words([w.value for w in cmd.words])  # past time, nohup, exec, env A=1 …: what they run
    name = str(words[0]) if words else ""
    # code after python -c over several lines at the top level is the job's program written out (work); in a
    # function the script calls, a helper's (makehostfile)
    if not words or name in _NOISE or name in _FILTERS or (
            (cmd.line == cmd.end_line or calling) and _one_liner([str(w) for w in words])):
        return False
    if name == "eval":
        return not all(_SUBSTITUTION.fullmatch(w.raw) for w in cmd.words[len(cmd.words) - len(words) + 1:])
    at = cmd.offset if at < 0 else at
    body = _called(functions, name, at)
    if body is not None:
        return name not in calling and \
            any(_works(inner, functions, at, calling | {name}) for inner in compound_body(body))
    known = recognise([str(w) for w in words])
    return known is None or known[0].cls.kind not in (*_PREPARE_KINDS, "apptainer.inspect", "charliecloud.fromhost")


#: a function definition (``name() {``, ``function name {``) and the name it defines
_FUNCTION = re.compile(r"\s*(?:function\s+([^\s(]+)|([\w.:-]+)\s*\(\s*\))")
#: one command substitution as a word: ``eval "$(conda shell.bash hook)"`` runs the shell code a tool prints, which
#: sets up the shell (a hook, ``ssh-agent``'s variables); ``eval "$CMD"`` runs the command the script built
_SUBSTITUTION = re.compile(r'"?(?:\$\(.*\)|`.*`)"?', re.S)


def _functions(parsed: ParsedScript) -> dict[str, list[Command]]:
    """The shell functions the script defines (outside any other command): name → its definitions, in order."""
    out: dict[str, list[Command]] = {}
    for cmd in parsed.lexed.code:
        m = _FUNCTION.match(cmd.text) if cmd.kind == "compound" else None
        if m is not None:
            out.setdefault(m.group(1) or m.group(2), []).append(cmd)
    return out


def _called(functions: dict[str, list[Command]], name: str, at: int) -> Command | None:
    """The definition a call of ``name`` at offset ``at`` of the script runs: the last one before it (bash knows no
    other there). None when the script has defined no such function by then: ``name`` is a program."""
    above = [d for d in functions.get(name, ()) if d.offset + len(d.text) <= at]
    return above[-1] if above else None


def _one_liner(words: list[str]) -> bool:
    """Whether ``words`` run code written out on the command line (``python -c``, ``perl -e``): a look at the node
    (``python -c "import torch; print(torch.cuda.is_available())"``) or a helper that computes a value (``perl -e
    … > hostfile``). A job's work is in its programs and scripts."""
    program = words[0].rsplit("/", 1)[-1]
    flag = "c" if re.fullmatch(r"python[\d.]*", program) else "eE" if program == "perl" else ""
    for word in words[1:] if flag else ():
        if not re.fullmatch(r"-[A-Za-z]+", word):
            return False  # the script or module (python train.py), or an option's value: a program that runs
        if word[-1] in flag:
            return True
    return False


def _same_lines(cmd: Command, code: tuple[Command, ...]) -> list[Command]:
    """The commands sharing ``cmd``'s lines: its pipeline or ``&&`` list. The script's top-level commands follow
    each other in order, so those are next to it: found by the first lines, not by walking every command (a script
    of thousands of steps asks once per step)."""
    starts = _first_lines(code)
    end = bisect_right(starts, cmd.end_line)
    out = []
    k = end - 1
    while k >= 0 and code[k].end_line >= cmd.line:
        out.append(code[k])
        k -= 1
    return out[::-1]


@remember_last
def _first_lines(code: tuple[Command, ...]) -> list[int]:
    """The first line of each of ``code``'s commands."""
    return [c.line for c in code]


#: programs that only pass on or show what another one prints, or show or write a file (``cat $HOSTFILE``,
#: ``cat > config.yaml <<EOF``, ``sed -i … config``): no work of their own
_FILTERS = {"tee", "grep", "sed", "awk", "head", "tail", "cat", "sort", "uniq", "wc", "cut", "tr", "column", "less"}


#: a placeholder another program fills in before the script runs (batchspawner's {cmd}, {{srun}})
_PLACEHOLDER = re.compile(r"\{\{?\w+\}\}?")


def _redirect_words(cmd: Command) -> list[str]:
    return [Verbatim(r.raw) for r in cmd.redirects if r.heredoc is None]


def workflow_from(parsed: ParsedScript, workflow_cls: Any, *, job_only: bool = False, layout: bool = True,
                  user_line: bool = False) -> Any:
    """The model of a read script. With ``job_only`` every command stays a line of the job, as written (for a
    :class:`~hpcwidgets.spec.slurm.SlurmJob` form): only modules and exports are read. With ``layout`` the job keeps
    the script's layout (:class:`~hpcwidgets.spec.slurm.ScriptLayout`), for a model written back as the whole script
    it was read from (not for a part of one, such as a Jupyter job's). A whole script read into a job has its lines
    from its first real work on as the job's ``commands`` and those before as its set-up lines (see
    :func:`_commands_start`); a part of one (a Jupyter job's lines before its server) is all set-up. With
    ``user_line``, a job read alone takes the ch-run user line (:data:`~hpcwidgets.spec.charliecloud.USER_LINE`) as
    the renderer's, not as a set-up line: a Jupyter job that runs ch-run writes it above its exports."""
    require_shell(parsed.source, parsed.path)
    commands_from = _commands_start(parsed) if job_only and layout else 0
    try:
        model, step_lines, absorbed = _workflow_from(parsed, workflow_cls, job_only, with_step=not job_only,
                                                     commands_from=commands_from, user_line=user_line)
    except _StepStaysText:
        model, step_lines, absorbed = _workflow_from(parsed, workflow_cls, job_only, with_step=False,
                                                     user_line=user_line)
    if not layout:
        return model
    from .layout import with_layout
    return with_layout(parsed, model, step_lines, absorbed)


class _StepStaysText(Exception):
    """The step's ``NAME=value`` prefix cannot become an export (other commands run before or after the step):
    read the step as a line instead."""


def _workflow_from(parsed: ParsedScript, workflow_cls: Any, job_only: bool, with_step: bool,
                   commands_from: int = 0, user_line: bool = False) -> tuple[Any, tuple[int, int], tuple[Command, ...]]:
    """The model, the lines of the step read into it ((0, 0): none) and the fail-fast lines the template writes.
    ``commands_from``: with ``job_only``, the line from which on the script's lines are the job's ``commands``, kept
    as written (0: none are)."""
    job = parsed.job
    title, title_line = _generated_title(parsed)
    generated = _generated(parsed)
    step = _main_step(parsed, workflow_cls) if with_step else None
    fields = {f.name for f in workflow_cls.field_specs()}
    values: dict[str, Any] = {}
    step_lines: tuple[int, int] = (0, 0)
    inline: tuple[tuple[str, Any], ...] = ()
    step_comment = ""  # the step line's own trailing comment (python train.py  # why)
    # the comments on and among the #SBATCH lines are kept with their directives (see _directive_comments), but for
    # the renderer's own (its title and "Generated by" line, which it writes again)
    own = [(line, c) for line, c in parsed.directive_comments
           if line != title_line and not c.text.startswith(GENERATED_BY)]
    comments: list[Comment] = [c for _, c in own]
    taken = {line for line, _ in own}
    if step is not None:
        chain = step.chain
        values.update(srun=chain.srun, container=chain.container, launcher=chain.launcher)
        tail = _redirect_words(step.command)
        if chain.launcher is not None:
            values["launcher"] = chain.launcher.replace(args=tuple(chain.launcher.args) + tuple(tail)) if tail else chain.launcher
        elif chain.program or tail:
            values["program"] = tuple(chain.program) + tuple(tail)
        inline = tuple(step.env)
        step_lines = (step.line, step.end_line)
        step_comment = step.command.comment
    elif with_step:
        found = _plain_program(parsed)
        if found is not None:
            plain, values["program"] = found
            inline = tuple((n, w.value) for n, w in plain.assignments)
            step_lines = (plain.line, plain.end_line)
            step_comment = plain.comment

    fail_fast, absorbed = _fail_fast(parsed, generated)
    # the template writes the prologue again; the comments on its lines go on its first line
    comments += [Comment(cmd.comment, "fail_fast") for cmd in absorbed if cmd.comment]
    r = _Reading()
    # a comment the renderer writes above a block it owns is dropped only when it sits right above that block, the
    # block is read into the model and the renderer writes that very comment there; anywhere else it stays, so a
    # person's comment worded like one is kept and a second round changes nothing
    previous = None  # the code command before this one: whether this one goes on its list (see _goes_on)
    cmds = parsed.lexed.commands
    for i, cmd in enumerate(cmds):
        prologue = any(cmd is a for a in absorbed)  # the template writes it again
        if cmd.line <= r.skip_until or prologue or (step_lines[0] and step_lines[0] <= cmd.line <= step_lines[1]):
            if r.maybe_generated is not None:
                held = r.maybe_generated[1] if generated else ""
                r.settle(cmd.line, _step_comments(values, held) if cmd.line == step_lines[0] else ())
            previous = cmd if cmd.is_code else previous
            continue
        in_setup = not (step_lines[0] and cmd.line > step_lines[1]) and not 0 < commands_from <= cmd.line
        text = cmd.text if cmd.joined_by and cmd.is_code else cmd.text.rstrip("\n")
        stripped = text.strip()
        if cmd.kind == "blank" and not in_setup and job_only and r.after and r.after[-1] \
                and not (previous is not None and previous.joined_by in LIST_OPERATORS):
            r.after.append("")  # a job's commands: a blank line ends one (see _paragraphs)
        if cmd.kind in ("shebang", "blank"):
            continue
        if cmd.kind == "directive":
            if parsed.first_command and cmd.line > parsed.first_command:  # sbatch ignores it: kept, so lint says so
                r.settle()
                (r.entries.append(_Entry(VERBATIM, [stripped])) if in_setup else r.after.append(text))
            continue
        if cmd.kind == "comment":
            if cmd.line in taken:
                continue
            if previous is not None and previous.joined_by in LIST_OPERATORS and (r.entries if in_setup else r.after):
                # a comment inside a list (a && ⏎ # why ⏎ b): it stays between the two, on its own line
                if in_setup:
                    r.entries[-1].rank = VERBATIM
                    r.entries[-1].text[-1] += cmd.text
                else:
                    r.after[-1] += cmd.text
                continue
            header = not parsed.first_command or cmd.line < parsed.first_command  # where the renderer writes its own
            if cmd.line == title_line or header and stripped.startswith(GENERATED_BY):
                continue
            r.settle()  # a comment follows it: the one waiting is not right above a block
            if in_setup and stripped.startswith(rendered.LINE_STARTS):
                r.maybe_generated = (cmd.line, stripped)
            elif in_setup:
                # a comment keeps its place among the set-up lines, or goes with the line below it into the model
                r.entries.append(_Entry(-1, [stripped], comment=stripped))
            else:
                r.after.append(text)
            continue
        if not cmd.is_code:
            continue
        continues = _goes_on(previous, cmd)
        previous = cmd
        if not in_setup:
            if continues and r.after:
                r.after[-1] = _continue(r.after[-1], text)  # the rest of a pipeline or list stays on its line
            else:
                r.after.append(text)
            continue
        if continues and r.entries:
            r.entries[-1].rank = VERBATIM
            r.entries[-1].text[-1] = _continue(r.entries[-1].text[-1], text)
            continue
        entry = _classify(cmd, cmds, i) if cmd.kind == "simple" else _Entry(VERBATIM, [_dedent(text)])
        entry.generated = r.settle(cmd.line, _renderer_comment(entry)) if r.maybe_generated else []
        entry.comment = cmd.comment
        if entry.rank in (SWEEP, PREPARE):
            r.skip_until = entry.payload[-1]
        r.entries.append(entry)
    r.settle()

    launcher = values.get("launcher")
    allowed = {MODULES, EXPORTS} | ({USER} if job_only and user_line else set())
    if not job_only:
        allowed |= {PREPARE, SWEEP}
        if launcher is not None and launcher.uses_head_node:
            allowed.add(HEAD)
        if values.get("container") is not None and values["container"].kind.startswith("charliecloud"):
            allowed.add(USER)
    _keep_order([e for e in r.entries if e.rank >= 0], allowed)

    setup: list[str] = []
    modules: list[str] = []
    exports: list[EnvVar] = []
    prepare: list[Any] = []
    sweep: tuple[str, tuple[str, ...], tuple[Any, ...]] = ("", (), ())
    last: _Entry | None = None  # the last command kept as a set-up line
    above: list[str] = []  # the comment lines right above this entry, which go with it when the model holds it
    for e in r.entries:
        if e.rank == -1 and e.comment:
            setup += e.text
            above.append(e.comment)
            continue
        if e.rank == MODULES or e.rank == EXPORTS and not {v.name for v in exports} & {v.name for v in e.payload}:
            name = e.payload[0] if e.rank == MODULES else e.payload[0].name
            comments += _line_comments(above, e.comment, f"modules:{name}" if e.rank == MODULES else f"env:{name}")
            del setup[len(setup) - len(above):]
        above = []
        if e.rank in (-1, VERBATIM):
            setup += e.generated + e.text
            if e.rank == VERBATIM:
                last = e
        elif e.rank == MODULES:
            modules += e.payload
        elif e.rank == EXPORTS and {v.name for v in exports} & {v.name for v in e.payload}:
            setup += e.generated + e.text  # exported again: a model exports a name once, so the second stays a line
        elif e.rank == EXPORTS:
            exports += e.payload
        elif e.rank == PREPARE:
            model = e.payload[0]
            # a "mkdir -p DIR" right before a pull with --dir: the renderer writes it with the pull
            folder = getattr(model, "dir", "") or ""
            if folder and last is not None and setup and setup[-1] == last.text[-1] \
                    and last.argv == ("mkdir", "-p", folder):
                setup.pop()
                del setup[len(setup) - len(last.generated):]  # the block's comment sat above its mkdir
            prepare.append(model)
        elif e.rank == SWEEP:
            sweep = e.payload[:3]
    if step_comment:
        comments.append(Comment(step_comment, STEP))  # the renderer writes the step alone: its comment stays on it
    if inline:
        if any(e.rank == VERBATIM and not e.text[0].startswith("#") for e in r.entries) \
                or any(line.strip() and not line.strip().startswith("#") for line in r.after):
            raise _StepStaysText  # the prefix applies to the step alone, not to the lines above or after it
        exports += [EnvVar(n, v) for n, v in inline]
    job = job.replace(comments=tuple(comments)) if comments else job
    job = _no_gpu_as_written(parsed, job).replace(setup=tuple(setup), modules=tuple(modules), fail_fast=fail_fast,
                                                  shell=_shell(parsed))
    if job_only:
        return job.replace(env=tuple(job.env) + tuple(exports), commands=_paragraphs(r.after)), step_lines, absorbed
    out: dict[str, Any] = {"job": job, "title": title, "exports": tuple(exports), "prepare": tuple(prepare),
                           "sweep_name": sweep[0], "sweep_values": sweep[1], "sweep_grid": sweep[2]}
    out.update(values)
    if r.after:
        out["after"] = tuple(r.after)
    _move_env_fields(out)
    return workflow_cls(**{k: v for k, v in out.items() if k in fields}), step_lines, absorbed


def _commands_start(parsed: ParsedScript) -> int:
    """The line where the commands of a script read into a job begin (0: it has none): its first command that does
    real work (:func:`_works`: a launch, a program, an install; not a module load, an export, a ``mkdir`` or a
    message), from the start of the list or pipeline it is part of and with the comment lines right above it.

    ``SlurmJob.setup`` is what runs before the job's steps: a set-up line added to a job read back (``sbatch --from
    job.sh --set setup=…``, the form's Set-up box) then goes before its work, not after it."""
    code = parsed.lexed.code
    functions = _functions(parsed)
    start = None
    for i, cmd in enumerate(code):
        if start is None or not _goes_on(code[i - 1], cmd):
            start = cmd
        if _works(cmd, functions):
            break
    else:
        return 0
    line = start.line
    for cmd in reversed([c for c in parsed.lexed.commands if c.line < line]):
        if cmd.kind != "comment" or cmd.end_line < line - 1:
            break
        line = cmd.line
    return line


def _paragraphs(lines: list[str]) -> tuple[str, ...]:
    """A job's commands from its lines as read, "" where a blank line stood: each run of lines between blank lines is
    one command (a comment stays with the line below it). The renderer writes each command apart, a blank line
    between, so the job written without its layout keeps the script's blocks and reads back the same."""
    out: list[str] = []
    block: list[str] = []
    for line in [*lines, ""]:
        if line:
            block.append(line)
        elif block:
            out.append("\n".join(block))
            block = []
    return tuple(out)


def _no_gpu_as_written(parsed: ParsedScript, job: Any) -> Any:
    """``job`` with its request for no GPU (``--gpus-per-node=0``, ``--gres=gpu:0``) kept as the directive it was:
    the model's 0 writes no line, and where a site's job_submit plugin gives every job a GPU unless told otherwise,
    that line is how a job asks for none. (The linter reads the 0 from the script itself.)"""
    asked = parsed.directive("gpus_per_node")
    if asked is None or job.gpus_per_node != 0:
        return job
    blank = type(job)()
    kept = f"{asked.flag}={asked.value}"
    comments = tuple(c.replace(at=f"extra_directives:{kept}") if c.at == "gpus_per_node" else c for c in job.comments)
    return job.replace(gpus_per_node=blank.gpus_per_node, gpu_type=blank.gpu_type, gpu_flag=blank.gpu_flag,
                       other_gres=blank.other_gres, extra_directives=(*job.extra_directives, kept), comments=comments)


def _step_comments(values: dict[str, Any], generated: str = "") -> tuple[str, ...]:
    """The comments the renderer writes above the step whose layers ``values`` holds: the one of the step as read,
    and, for a step in a container, the one of a model that holds what the container runs as its command (as a form
    may), which names the layers up to the container. In a script hpcwidgets wrote, the description of the step
    right above it (``generated``) is the renderer's too: it described the step it wrote, which may since have been
    edited by hand, or which the reader takes back as another model (an invalid one it cannot rebuild exactly)."""
    if generated.startswith(STEP_COMMENT):
        return (generated,)
    from ..render.workflow import describe_step
    from ..spec.workflow import Workflow
    read = Workflow(srun=values.get("srun"), container=values.get("container"), launcher=values.get("launcher"),
                    program=values.get("program", ()))
    models = [read] if read.container is None else [read, Workflow(srun=read.srun, container=read.container)]
    return tuple("# " + describe_step(w) for w in models)


def _renderer_comment(entry: _Entry) -> tuple[str, ...]:
    """The comment the renderer writes above the block ``entry`` is read into (none: ``()``): a preparation, a
    sweep, the head-node line or the ch-run user line, and a pull's ``mkdir -p DIR``, which it writes first."""
    if entry.rank == PREPARE:
        text = rendered.PREPARE.get(entry.payload[0].kind, "")
    elif entry.rank == SWEEP:
        text = rendered.sweep([entry.payload[0], *(axis.name for axis in entry.payload[2])])
    elif entry.rank == HEAD and entry.payload == HEAD_NODE_LINE:
        text = rendered.HEAD_NODE
    elif entry.rank == USER:
        text = USER_COMMENT
    elif entry.rank == VERBATIM and len(entry.argv) == 3 and entry.argv[:2] == ("mkdir", "-p"):
        text = rendered.PULL
    else:
        return ()
    return ("# " + text,) if text else ()


def _line_comments(above: list[str], end: str, at: str) -> list[Comment]:
    """The comments of a line the model writes itself (``at``, see :class:`~hpcwidgets.spec.slurm.Comment`): the
    comment lines right above it, and the one at its end."""
    return [Comment(text, at, above=True) for text in above] + ([Comment(end, at)] if end else [])


def _generated(parsed: ParsedScript) -> bool:
    """Whether hpcwidgets wrote the script (its "Generated by" comment): its prologue is then the template's own."""
    return any(c.kind == "comment" and c.text.lstrip().startswith(GENERATED_BY) for c in parsed.lexed.commands)


def readback_notes(text: str, model: Any, edited: Iterable[str] = ()) -> tuple[str, ...]:
    """What a person should know after the job script ``text`` was read into ``model`` (by ``parse_script``,
    ``parse_job`` or ``parse_jupyter_job``): where the script the model writes back differs from it on purpose.
    The command line prints each note (``workflow``/``sbatch``/``jupyter-job --from``) and the forms show them
    after Load, so nothing a reader changes goes unsaid. None for a model that holds no job or was saved as JSON.
    ``edited`` names the fields about to be edited, as ``--set`` names them (``container.image``, ``container``
    for the whole layer): the notes that matter only to such an edit (:func:`edit_notes`) come with the others
    then, and not on every read."""
    job = model if getattr(model, "kind", "") == "slurm.job" else getattr(model, "job", None)
    if job is None or text.lstrip().startswith("{"):
        return ()
    parsed = read_script(text)  # once, for every note
    notes = [_line_ends_note(text), _nounset_note(parsed, job), *_gpu_directive_notes(parsed)]
    if getattr(model, "kind", "") == "workflow":
        notes += [_kept_step_note(step) for step in parsed.steps if not step.in_compound]
        unread = unread_launch(parsed, model)
        if unread is not None and not _kept_step_note(unread[0]):
            step, why = unread
            notes.append(f"line {step.line}: {_excerpt(' '.join(w.raw for w in step.command.words))} is kept as "
                         f"written, as a set-up line, not read as the step: {why}")
    notes += _edit_notes(parsed, model, edited)
    if getattr(model, "kind", "") == "jupyter.job":
        from .jupyter import left_out_note, replaced_server_note
        notes += [replaced_server_note(parsed), left_out_note(parsed)]
    return tuple(n for n in notes if n)


def edit_notes(text: str, model: Any, edited: Iterable[str]) -> tuple[str, ...]:
    """What a person should know about editing the fields ``edited`` (as ``--set`` names them) of ``model``, read
    from the job script ``text``: the notes :func:`readback_notes` gives only for such an edit, for a form to show
    when the edit is made (its Load said the others). The script is read only when an edit has a note to check."""
    edited = tuple(edited)
    if not edits_container(model, edited) or text.lstrip().startswith("{"):
        return ()
    return tuple(n for n in _edit_notes(read_script(text), model, edited) if n)


def edits_container(model: Any, edited: Iterable[str]) -> bool:
    """Whether ``edited`` changes the container of the workflow ``model`` (the layer, or one of its fields)."""
    return getattr(model, "kind", "") == "workflow" and any(
        path == "container" or path.startswith("container.") for path in edited)


def _edit_notes(parsed: ParsedScript, model: Any, edited: Iterable[str]) -> list[str]:
    """The notes on editing ``edited`` of ``model``, read from ``parsed`` (see :func:`edit_notes`), "" where a
    note has nothing to say."""
    return [_one_container_note(parsed, model)] if edits_container(model, edited) else []


def _line_ends_note(text: str) -> str:
    """A script with Windows line ends (CRLF) is written back with Unix ones, which sbatch needs ("DOS line breaks"
    refused): its layout is not kept. "" otherwise."""
    if "\r\n" not in text:
        return ""
    return ("the script has Windows line ends (CRLF), which sbatch refuses; it is written back with Unix line ends, "
            "in the layout hpcwidgets writes")


def _gpu_directive_notes(parsed: ParsedScript) -> list[str]:
    """What the GPU fields do not hold of the script's GPU lines (see ``_read_gpus`` in parse/script.py): an earlier
    ``--gres``, which sbatch ignores, and a ``--gres=gpu:N`` beside ``--gpus-per-node``, kept as written. Both lines
    stay in the script as written."""
    read = [d for d in parsed.directives if d.applied and not d.component and d.flag in ("--gres", "--gpus-per-node")]
    gres = [d for d in read if d.flag == "--gres"]
    per_node = [d for d in read if d.flag == "--gpus-per-node"]
    notes = [f"line {d.line}: --gres={d.value} is kept as written, but sbatch ignores it: it keeps only the last "
             f"--gres (line {gres[-1].line}: --gres={gres[-1].value}), which is what the model holds"
             for d in gres[:-1]]
    if gres and per_node and any(item.split(":")[0] == "gpu" for item in gres[-1].value.split(",")):
        notes.append(f"line {gres[-1].line}: --gres={gres[-1].value} is kept as written beside --gpus-per-node="
                     f"{per_node[-1].value} (line {per_node[-1].line}), which GPUs per node holds; Slurm takes the GPU "
                     "count of the --gres line, so keep one of the two (hpcwidgets lint says more)")
    return notes


def _kept_step_note(step: Step) -> str:
    """Why a launch that looks like the step is kept as a line of text rather than read into the step's fields
    (srun, container, launcher, program), so that a person knows to edit it there. "" for any other launch."""
    where = f"line {step.line}: {_excerpt(' '.join(w.raw for w in step.command.words))} is kept as written, as text"
    if _several_programs(step):
        return (f"{where}: its srun runs several programs at once, each with its own options after a ':' (a "
                "heterogeneous step), and the step's fields hold one program; edit the line itself")
    if step.wrapper:
        return (f"{where}: the launch inside its {step.wrapper} script is not taken apart into the step's fields "
                "(srun, container, launcher, program), as the script may do more than start it; edit the line itself")
    return ""


def unread_launch(parsed: ParsedScript, model: Any) -> tuple[Step, str] | None:
    """For a workflow read from ``parsed`` that holds no step (no launcher, container or program): the last launch
    with a container or a launcher that the reader kept as written among the script's lines, and why it did (in
    words that name the fix, where there is one); None when the model holds a step or the script has no such launch.
    A step given to such a model runs after that line, which then runs the work a second time."""
    if getattr(model, "kind", "") != "workflow" or model.launcher is not None or model.program or \
            model.container is not None:
        return None
    kept = [s for s in parsed.steps if s.chain.container is not None or s.chain.launcher is not None]
    if not kept:
        return None
    step = kept[-1]
    return step, _why_kept(parsed, step)


def _why_kept(parsed: ParsedScript, step: Step) -> str:
    """Why the reader kept the launch ``step`` as written (see :func:`_as_written`), as a reason with its fix."""
    cmd = step.command
    words = [str(w.value) for w in cmd.words]
    if step.in_compound:
        return "it runs inside an if, a loop or a function, which the step's fields cannot hold"
    if step.wrapper:
        return f"it runs inside a {step.wrapper} script, which the step's fields cannot hold"
    if launch_words(words) != words:
        return f"{words[0]} stands before it, which the step's fields have no place for"
    if not _alone(cmd, parsed.lexed.code):
        return "it shares its line with other commands (a list or a pipeline), which the step's fields cannot hold"
    if any(r.heredoc is not None for r in cmd.redirects):
        return "it reads a here-document, which the step's fields cannot hold"
    split = next((w.raw for w in cmd.words if parsed.may_split(w, step.line)), None)
    if split is not None:
        return (f"{split} is an unquoted expansion that bash may split into several words (or drop when empty), "
                f"and the step's fields would pass it as one word; quote it (\"{split}\") to have the line read "
                "as the step")
    return "the step's fields cannot write it back as it was written"


def _one_container_note(parsed: ParsedScript, model: Any) -> str:
    """A workflow holds one step's container: where the script runs other steps in a container too (a Ray cluster's
    head and workers, then the server on it), say that an edit of the container fields changes the held step alone,
    so that the steps do not end up on different images without a word. "" otherwise."""
    held = _main_step(parsed, type(model)) if getattr(model, "container", None) is not None else None
    if held is None or held.chain.container is None:
        return ""
    others = [str(step.line) for step in parsed.steps if step.chain.container is not None and step.line != held.line]
    if not others:
        return ""
    where = f"line {others[0]}" if len(others) == 1 else f"lines {', '.join(others[:-1])} and {others[-1]}"
    return (f"line {held.line}: the container fields (--set container.…, the form's Container) hold the container "
            f"of this step only; the script runs other steps in a container too ({where}), which keep theirs as "
            f"written: an image or option changed there changes line {held.line} alone, so change the other lines "
            "to match where they should run the same")


def _excerpt(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"


def _nounset_note(parsed: ParsedScript, job: Any) -> str:
    """A hand-written ``set -euo pipefail`` becomes the template's prologue, which sets ``-u`` only after the module
    loads the model read (Lmod's ``module`` fails under ``set -u``): those loads now run without it. "" otherwise."""
    if job.fail_fast != "strict" or not job.modules or _generated(parsed) or _laid_out(job):
        return ""
    mode, absorbed = _fail_fast(parsed, generated=False)
    if mode != "strict":
        return ""
    first = absorbed[0]
    return (f"the script's {_without_comment(first)} (line {first.line}) is written back as "
            "set -eo pipefail, then the module loads, then set -u: the module command (Lmod) can fail under set -u, "
            "so the module loads run without it; every line after them still stops at an unset variable")


def _laid_out(job: Any) -> bool:
    """Whether ``job`` is written in the layout of the script it was read from (whose own lines then stay)."""
    return job.layout is not None and job.layout.intact


def _shell(parsed: ParsedScript) -> str:
    """The program and options of the script's ``#!`` line (``/bin/bash -l`` stays a login shell);
    bash when there is none, as sbatch scripts are written for."""
    first = parsed.lexed.commands[0] if parsed.lexed.commands else None
    if first is None or first.kind != "shebang":
        return "/bin/bash"
    return first.text.split("\n", 1)[0][2:].strip() or "/bin/bash"


def _fail_fast(parsed: ParsedScript, generated: bool) -> tuple[str, tuple[Command, ...]]:
    """The script's fail-fast mode, and the lines that set it (then written by the template).

    A generated script says it with the template's own lines, read only where the template writes
    them (:func:`_rendered_prologue`): the same line further down is one of the job's set-up lines,
    and must stay below the commands it follows. Another script gets the template's prologue only
    when its first command asks for the same (``set -euo pipefail``); otherwise its shell options
    stay its own (``off``), since ``set -e`` or ``set -u`` can stop a script that was never written
    for them.
    """
    code = parsed.lexed.code
    if generated:
        return _rendered_prologue(code)
    mode = _OWN_PROLOGUE.get(_without_comment(code[0])) if code and _plain(code[0]) else None
    return (mode, (code[0],)) if mode is not None else ("off", ())


def _rendered_prologue(code: tuple[Command, ...]) -> tuple[str, tuple[Command, ...]]:
    """``set -eo pipefail`` as the first command, then the module loads, then ``set -u``: where the
    template writes the prologue (strict), or its first line alone (errexit)."""
    errexit, nounset = _PROLOGUE_LINES
    if not code or not _plain(code[0]) or _without_comment(code[0]) != errexit:
        return "off", ()
    for cmd in code[1:]:
        if _plain(cmd) and _without_comment(cmd) == nounset:
            return "strict", (code[0], cmd)
        if not _plain(cmd) or _module_list(cmd) is None:
            break
    return "errexit", (code[0],)


def _without_comment(cmd: Command) -> str:
    """A ``set`` line's words without the comment at its end (``set -euo pipefail  # why``: ``set -euo pipefail``)."""
    return " ".join(cmd.text.split("#", 1)[0].split())


def _plain(cmd: Command) -> bool:
    """A simple command alone on its line (not part of a pipeline or a list)."""
    return cmd.kind == "simple" and not cmd.joined_by


def _goes_on(previous: Any, cmd: Any) -> bool:
    """Whether ``cmd`` is the rest of the list ``previous`` started: after &&, || or a pipe, or after & or ; on
    the same line (a & b); a command on the line after ``a &`` is one of its own."""
    if previous is None or not previous.joined_by:
        return False
    return previous.joined_by in LIST_OPERATORS or previous.end_line == cmd.line


def _continue(line: str, text: str) -> str:
    """``line`` (ending with an operator such as ``&&`` or ``|``) followed by the next command's text."""
    return line + text if line[-1:].isspace() or text[:1].isspace() or not text else line + " " + text


def _dedent(text: str) -> str:
    """A set-up command's text as the model keeps it: without the indentation of its first line. Its lines keep their
    ends (a blank at the end of a line inside a quoted string over several lines, or of a here-document's line, is
    part of what runs); a command of one line loses the blanks after it, but for one a backslash quotes (``echo a\\``
    and a blank pass ``a`` and that blank)."""
    first, newline, rest = text.partition("\n")
    if newline:
        return first.lstrip() + newline + rest
    line = first.strip()
    if line != first.lstrip() and (len(line) - len(line.rstrip("\\"))) % 2 == 1:
        line += first.lstrip()[len(line)]  # the blank the backslash quotes (stripped, the backslash would join lines)
    return line


def _array_values(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``NAME_values=(…)`` → (NAME, the values), or None when a value is not plain data (``$(ls)``, a glob)."""
    from .lexer import lex_script
    m = _SWEEP_ARRAY.fullmatch(text)
    if not m:
        return None
    try:
        inner = lex_script("x " + m.group(2))
    except ParseError:
        return None
    words = [w.value for c in inner.code for w in c.words][1:]
    if any(isinstance(w, Verbatim) for w in words):
        return None
    return m.group(1), tuple(words)


def _read_sweep(m: re.Match[str],
                rest: tuple[Command, ...] | list[Command]) -> tuple[str, tuple[str, ...], Any, int] | None:
    """The renderer's sweep lines, starting at the list ``m`` matched → (name, values, further axes, last line).

    A single variable is picked by ``$SLURM_ARRAY_TASK_ID``; a grid's variables by the arithmetic
    :func:`~hpcwidgets.render.workflow.grid_lines` writes, exactly (any other index stays as written).
    """
    first = _array_values(m.group(0))
    if first is None:
        return None
    nxt = [c for c in rest if c.kind != "blank"]
    axes = [first]
    while nxt and not nxt[0].joined_by and (more := _array_values(nxt[0].text.strip())) is not None:
        axes.append(more)
        nxt = nxt[1:]
    picks = [f"{name}=${{{name}_values[$SLURM_ARRAY_TASK_ID]}}" for name, _ in axes[:1]] if len(axes) == 1 \
        else grid_picks(axes)
    if len(nxt) < len(picks) or any(c.text.strip() != pick for c, pick in zip(nxt, picks)):
        return None
    last = nxt[len(picks) - 1].end_line
    echo = nxt[len(picks)] if len(nxt) > len(picks) else None
    if echo is not None and not echo.joined_by and _is_sweep_echo(echo.text.strip(), [name for name, _ in axes]):
        last = echo.end_line
    return axes[0][0], axes[0][1], tuple(SweepAxis(name, values) for name, values in axes[1:]), last


def _is_sweep_echo(text: str, names: list[str]) -> bool:
    """The renderer's echo of the values a task took (for one variable, any echo of the task's own)."""
    if len(names) == 1:
        return text.startswith('echo "array task $SLURM_ARRAY_TASK_ID:')
    return text == 'echo "array task $SLURM_ARRAY_TASK_ID: ' + " ".join(f"{n}=${n}" for n in names) + '"'


#: what the reader takes into ``prepare`` (the image made before the step)
_PREPARE_KINDS = frozenset({"apptainer.pull", "apptainer.build", "charliecloud.convert", "charliecloud.pull",
                            "charliecloud.build", "charliecloud.import"})


def _read_prepare(cmd: Command, rest: Any) -> tuple[Any, int] | None:
    """``[ -f X ] || apptainer pull …`` (the renderer's guarded preparation) → (model, last line)."""
    if cmd.joined_by != "||" or not cmd.words or cmd.words[0].value != "[" or not rest:
        return None
    nxt = rest[0]
    words = [w.value for w in nxt.words]
    if not words or recognise(words) is None:
        return None
    try:
        model = parse_argv(words, env={n: w.value for n, w in nxt.assignments}).model
    except ParseError:
        return None
    if model.kind not in _PREPARE_KINDS:
        return None
    return model, nxt.end_line


def _move_env_fields(out: dict[str, Any]) -> None:
    """Exports that a preparation command or the container renders itself (APPTAINER_CACHEDIR) go back into it."""
    exports = list(out.get("exports", ()))
    for key in ("prepare", "container"):
        models = list(out.get(key) or ()) if key == "prepare" else ([out[key]] if out.get(key) is not None else [])
        changed = []
        for model in models:
            updates = {}
            for f in model.field_specs():
                if f.info.env:
                    env = model.env_name(f.info.env)  # singularity pull: SINGULARITY_CACHEDIR
                    hit = next((e for e in exports if e.name == env), None)
                    if hit is not None:
                        updates[f.name] = True if f.base_type is bool else hit.value
                        exports.remove(hit)
            changed.append(model.replace(**updates) if updates else model)
        if key == "prepare":
            out["prepare"] = tuple(changed)
        elif changed:
            out["container"] = changed[0]
    out["exports"] = tuple(exports)
