"""The rule catalogue: the helpers the rules share, and the modules that hold the rules.

Each rule is a function registered by its ``@rule(...)`` call, which carries its code, texts and examples. The rules
live in topical modules, imported at the end of this one (importing a module registers its rules): :mod:`.launch`,
:mod:`.container_rules`, :mod:`.directives`, :mod:`.profile_rules`, :mod:`.shell`, :mod:`.parallel_steps`,
:mod:`.jupyter`, :mod:`.environment`, :mod:`.network`, :mod:`.devices` and :mod:`.other_runtimes`. This module holds
the helpers that rules in more than one of them use; a helper only one module's rules use lives in that module. A new rule module imports
its helpers from here and is added to the imports at the end.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import operator
import re
from typing import Any, Iterator

from ..errors import ParseError
from ..parse.lexer import compound_body, lex_script
from ..parse.script import (_gpu_item, branch_conditions, c_script_in, launch_words, python_module,
                            shell_script_text)
from ..spec._meta import Spec
from ..spec._words import Verbatim
from ..spec.argv import model_words
from ..spec.common import ARRAY_WORD, kept_reference
from ..spec.profile import Partition, least_nodes
from ..spec.slurm import TYPED_DASHES, binds_per_task, gpu_total, node_range
from . import Context, Fix


# --------------------------------------------------------------------------------------------
# helpers shared by rules

def step_words(chain: Any) -> tuple[list[str], list[int]]:
    """The full argument vector of a step rebuilt from its layers, and where a continuation line may
    begin: at each layer and before each of its option groups, as a rendered script breaks them.

    Built from the inside out: each layer's words come from :func:`~hpcwidgets.spec.argv.model_words`
    with the layers inside it as its command (ch-run then writes its ``--``). Outer layers only put
    words in front, so group starts are kept counted from the end until the vector is complete.
    """
    words = list(chain.program)
    ends = [len(words)] if words else []
    layers = [(chain.launcher, False), (chain.container, True), (chain.srun, True)]
    for layer, wraps in layers:
        if layer is None:
            continue
        argv, starts, lead = model_words(layer, rest=words) if wraps else model_words(layer)
        if not wraps:
            argv = argv + words
        own = len(argv) - len(words) if wraps else len(argv)
        ends += [len(argv) - s for s in starts if s < own and s != lead]
        words = argv
        ends.append(len(words))
    return words, sorted({len(words) - e for e in ends})


#: a torchrun option written with underscores (--nproc_per_node), as torch before 2.0 only reads them
_UNDERSCORE_OPTION = re.compile(r"--[a-z]+_[a-z_]+(?:=|$)")


def _keep_torchrun_spelling(step: Any, words: list[Any]) -> list[Any]:
    """The fixed command with torchrun's options spelled as the user spelled them: a script written with
    --nproc_per_node keeps underscores (torchrun before 2.0 rejects --nproc-per-node)."""
    if not any(_UNDERSCORE_OPTION.match(str(w.value)) for w in step.command.words):
        return words
    from ..spec.torchrun import Torchrun
    table = {f.info.flag: a for f in Torchrun.field_specs() for a in f.info.aliases if "_" in a and f.info.flag}
    start = next((i for i, w in enumerate(words) if str(w).rsplit("/", 1)[-1] == "torchrun"), None)
    if start is None:
        return words
    out = list(words)
    for i in range(start + 1, len(out)):
        text = str(out[i])
        if not text.startswith("-"):
            break  # the training script: its own arguments follow
        flag, eq, value = text.partition("=")
        if flag in table:
            out[i] = type(out[i])(table[flag] + eq + value)
    return out


def step_fix(description: str, step: Any, chain: Any, before: tuple[str, ...] = ()) -> Fix:
    words, groups = step_words(chain)
    words = _keep_torchrun_spelling(step, words)
    env = tuple(f"{k}={v}" for k, v in step.env)
    start, end, cols = _command_span(step)
    return Fix(description, start, end, tuple(env) + tuple(words), None, before,
               tuple(g + len(env) for g in groups), cols)


def _command_span(step: Any) -> tuple[int, int, tuple[int, int]]:
    """Where the step's own words are: first line, last line and the columns of their start and end.

    A fix rewrites only them: ``exec``/``time`` before, redirections, the rest of a pipeline, a
    comment and here-document bodies after stay as written. The whole lines when the words cannot be
    placed (a word that starts on another line than the command).
    """
    cmd = step.command
    words = list(cmd.words)
    if not words:
        return step.line, step.end_line, (0, 0)
    launch = len(words) - len(launch_words([str(w.value) for w in words]))
    first = words[launch] if launch < len(words) else words[0]
    start_col = first.col
    if step.env and cmd.assignments:
        name, value = cmd.assignments[0]
        start_col = value.col - len(name) - 1  # NAME=value before the command: the fix writes it again
        first = value
    last = words[-1]
    end_line = last.line + last.raw.count("\n")
    end_col = (last.col + len(last.raw)) if "\n" not in last.raw else len(last.raw.rsplit("\n", 1)[1]) + 1
    if first.line != cmd.line or start_col < 1:
        return step.line, step.end_line, (0, 0)
    return cmd.line, end_line, (start_col, end_col)


#: a reference to one variable: $NAME, ${NAME}, ${NAME:-default}
_COUNT_REFERENCE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\})")


def as_int(ctx: Context, value: Any, line: int) -> int | None:
    """A number, also through the script's variables and the job's own Slurm variables."""
    if isinstance(value, int):
        return value
    text = ctx.parsed.resolve(str(value), line)
    if re.fullmatch(r"\d+", text):
        return int(text)
    job = ctx.job
    # without --nodes the job's node count is Slurm's choice; it is known to be 1 only where nothing asks for more
    nodes = job.nodes or (1 if job_nodes(ctx) == 1 else None)
    known = {
        "SLURM_NTASKS_PER_NODE": job.ntasks_per_node,
        "SLURM_NNODES": nodes,
        "SLURM_JOB_NUM_NODES": nodes,
        "SLURM_GPUS_ON_NODE": job.gpus_on_each_node or None,
        "SLURM_CPUS_PER_TASK": job.cpus_per_task,
        "SLURM_NTASKS": job.ntasks,
    }
    arithmetic = _COUNT_ARITHMETIC.fullmatch(text.strip('"'))
    if arithmetic is not None:  # $((SLURM_NNODES * 8)): the product of the job's counts and plain numbers
        return None if heterogeneous(ctx) else _evaluate(arithmetic.group(1), known)
    # $NAME, ${NAME}, or ${NAME:-default}, whose default only counts where the job leaves NAME unset
    m = _COUNT_REFERENCE.fullmatch(text)
    if m is not None and (m.group(1) or m.group(2)) not in known:
        # a variable set to such a reference, which the reader keeps as written (NGPU=${SLURM_GPUS_ON_NODE:-1})
        m = _COUNT_REFERENCE.fullmatch(ctx.parsed.resolve_written(text, line))
    if heterogeneous(ctx):
        return None  # the job's own variables describe more than the first component the model holds
    value = known.get(m.group(1) or m.group(2)) if m else None
    # a count the job holds as text (--nodes=2-4) is no single number
    return value if value.__class__ is int else None


#: a count written as bash arithmetic: $(( … ))
_COUNT_ARITHMETIC = re.compile(r"\$\(\((.+)\)\)", re.S)


def _evaluate(expression: str, known: dict[str, Any]) -> int | None:
    """The value of a bash arithmetic ``expression`` of whole numbers, + - * / and the job's counts in ``known``
    (``SLURM_NNODES * 8``, ``$SLURM_NNODES*$SLURM_GPUS_ON_NODE``); None for anything else or a count not known."""
    def value(node: ast.AST) -> int | None:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name):
            held = known.get(node.id)
            return held if held.__class__ is int else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)):
            left, right = value(node.left), value(node.right)
            if left is None or right is None or (isinstance(node.op, ast.FloorDiv) and right == 0):
                return None
            return {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                    ast.FloorDiv: operator.floordiv}[type(node.op)](left, right)
        return None
    text = re.sub(r"\$\{?([A-Za-z_]\w*)\}?", r"\1", expression).replace("/", "//")  # (bash divides whole numbers)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None
    return value(tree.body)


def job_tasks(ctx: Context) -> int | None:
    """The job's task count (``SLURM_NTASKS``), which srun inherits as its own ``--ntasks``: None where the #SBATCH
    lines name no task count (or one in a variable). A node range counts as one node here; without --nodes, the
    nodes the job needs at least (:func:`job_nodes`)."""
    nodes = ctx.job.nodes
    held = job_cpus(ctx, nodes=nodes if isinstance(nodes, int) else job_nodes(ctx) if nodes is None else 1)
    return held.tasks if held is not None and held.named else None


#: #SBATCH options with which Slurm counts a job's tasks from the CPUs of its nodes, not from --ntasks and
#: --ntasks-per-node
_TASKS_BY_NODE_CPUS = ("--ntasks-per-core", "--ntasks-per-socket", "--ntasks-per-gpu", "--ntasks-per-tres")


@dataclasses.dataclass(frozen=True)
class JobCpus:
    """The tasks and CPUs a job's #SBATCH lines give it, as Slurm counts them."""

    tasks: int                # SLURM_NTASKS
    cpus_per_task: int | None  # --cpus-per-task (1 when not given); None when it is not a number
    named: bool               # the lines name the task count (--ntasks, --ntasks-per-node), not Slurm's default
    counted: str              # how the tasks were counted, for messages ("--ntasks-per-node=4 × 2 nodes")
    by_node_cpus: bool        # --exclusive or tasks per core, socket or GPU: the count follows the nodes' CPUs


def job_cpus(ctx: Context, nodes: int | None = None) -> JobCpus | None:
    """What the job holds by its #SBATCH lines on ``nodes`` nodes (by default the most its --nodes allows); None
    where a count is held in a variable or the node count cannot be read.

    Without a task count Slurm gives the job as many tasks as its CPUs hold tasks of --cpus-per-task
    (src/common/env.c): one per node, or more where a task's CPUs leave part of a core, which Slurm hands out whole:
    on nodes of two threads per core, two for a one-CPU task. The threads per core are those the profile says for
    the job's partition (:func:`threads_per_core`); where it does not say them they may be two, which holds the
    most."""
    job = ctx.job
    if nodes is None:
        span = node_range(job.nodes) if job.nodes is not None else (1, 1)
        if span is None:
            return None
        nodes = span[1]
    per_task = 1 if job.cpus_per_task is None else job.cpus_per_task if isinstance(job.cpus_per_task, int) else None
    by_node_cpus = job.exclusive is True or any(d.applied and d.flag.partition("=")[0] in _TASKS_BY_NODE_CPUS
                                                for d in ctx.parsed.directives)
    on = f" × {nodes} nodes" if nodes > 1 else ""
    if job.ntasks is not None or job.ntasks_per_node is not None:
        if isinstance(job.ntasks, int):
            return JobCpus(job.ntasks, per_task, True, f"--ntasks={job.ntasks}", by_node_cpus)
        if job.ntasks is None and isinstance(job.ntasks_per_node, int):
            return JobCpus(job.ntasks_per_node * nodes, per_task, True, f"--ntasks-per-node={job.ntasks_per_node}{on}",
                           by_node_cpus)
        return None
    known = threads_per_core(ctx)
    threads = known or 2  # unknown: maybe two, which holds the most
    per_node = -(-per_task // threads) * threads // per_task if per_task else 1
    if per_node == 1:
        said = ""
    elif known is None:
        said = ", two on a node of two threads per core"
    else:
        said = f", {per_node} on a node of {threads} threads per core (the profile's)"
    return JobCpus(per_node * nodes, per_task, False,
                   "no --ntasks: one task per node" + (f", {nodes} nodes" if nodes > 1 else "") + said, by_node_cpus)


#: the job's node count as Slurm gives it to the batch script
_JOB_NODE_COUNT = re.compile(r"\$\{?(?:SLURM_JOB_NUM_NODES|SLURM_NNODES)\}?")


def tasks_per_node(ctx: Context, step: Any, part: Partition | None = None) -> int | None:
    """How many copies of the step's command run on each node, on the fewest nodes the job may get
    (:func:`job_nodes`, on the profile's partition ``part`` where given): the most one node holds.

    srun inside a job inherits ``SLURM_NTASKS`` as ``--ntasks`` (seen on Slurm 22.05), and a task count
    wins over ``--ntasks-per-node``: ``srun --ntasks-per-node=1`` in a job of 2 nodes × 4 tasks still
    starts 4 tasks per node unless ``--ntasks`` is given too.
    """
    srun = step.chain.srun
    if srun is None:
        return 1
    nodes = max(srun.nodes if isinstance(srun.nodes, int) else job_nodes(ctx, part), 1)
    if isinstance(srun.ntasks, int):
        return -(-srun.ntasks // nodes)
    if srun.nodes is None and _JOB_NODE_COUNT.fullmatch(str(srun.ntasks or "").strip("\"'")):
        return 1  # srun --ntasks="$SLURM_JOB_NUM_NODES": one task on each of the job's nodes
    inherited = job_tasks(ctx)
    if isinstance(srun.ntasks_per_node, int):
        if inherited is not None and inherited > srun.ntasks_per_node * nodes:
            return -(-inherited // nodes)
        return srun.ntasks_per_node
    if inherited is not None:
        return -(-inherited // nodes)
    return 1


def job_nodes(ctx: Context, part: Partition | None = None) -> int:
    """Nodes the job runs on at least (:func:`~hpcwidgets.spec.profile.least_nodes`): the MIN of a
    ``--nodes=MIN-MAX`` range; without --nodes what the job's counts for the whole job need: --ntasks over
    --ntasks-per-node (which is then a maximum per node, sbatch(1)), and --gpus over --gpus-per-node (as sbatch counts
    them, HPC307). On a profile's partition ``part`` also what its nodes' CPUs and GPUs hold; without one, node sizes
    are unknown. Slurm may still give a job without --nodes more nodes than that."""
    return least_nodes(ctx.job, part)


def threads_per_core(ctx: Context) -> int | None:
    """The hardware threads of each core of the nodes the job runs on, as the profile says them for its partition
    (``threads_per_core``, Slurm's ThreadsPerCore: 2 with hyper-threading); None without a profile, or where it does
    not say them. Slurm hands out whole cores, so a rule that counts CPUs in cores uses this where it is known, and
    where it is not, the count that holds the most (two threads a core, on most sites that have more than one)."""
    if ctx.profile is None:
        return None
    part = ctx.profile.entry_for(ctx.job)
    known = getattr(part, "threads_per_core", None)
    return known if isinstance(known, int) and not isinstance(known, bool) and known >= 1 else None


def profile_vendor(ctx: Context) -> str:
    """The vendor of the GPUs the job gets by the profile: that of the partition it runs on (a site may have NVIDIA
    and AMD partitions), else the profile's; "" without a profile, or where the profile cannot tell (a partition
    with both vendors and a job that names no GPU type)."""
    if ctx.profile is None:
        return ""
    return cached(ctx, "profile_vendor", lambda: str(ctx.profile.vendor_for(ctx.job) or ""))


def cached(ctx: Context, key: str, make: Any) -> Any:
    """A value computed once per linted script (rules share look-ups such as the job's problems)."""
    store = ctx.__dict__.setdefault("_cache", {})
    if key not in store:
        store[key] = make()
    return store[key]


LEGACY_NOTE = "python -m torch.distributed.launch is deprecated; use torchrun"


def steps(ctx: Context) -> tuple[Any, ...]:
    """The script's launch steps that run for the job its #SBATCH lines ask for (see :func:`runs_for_job`), with
    ``python -m torch.distributed.launch`` read as a launcher also when it runs under srun or in a container (the
    reader only does that at the top level)."""
    return cached(ctx, "steps", lambda: tuple(_upgrade(s) for s in ctx.steps if runs_for_job(ctx, s)))


#: an ``if`` condition that compares two counts: ``[ "$SLURM_NNODES" -gt 1 ]``, ``[[ $N == 1 ]]``, ``test …``,
#: ``(( SLURM_NNODES > 1 ))``, each maybe after ``!``
_OPERAND = r'"?(\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-[^}\s"]*)?\}|[0-9]+)"?'
_COMPARISON = rf"{_OPERAND}\s+(-eq|-ne|-gt|-ge|-lt|-le|==?|!=)\s+{_OPERAND}"
_TEST = re.compile(rf"\[\s+{_COMPARISON}\s+\]|\[\[\s+{_COMPARISON}\s+\]\]|test\s+{_COMPARISON}")
_NAME_OR_COUNT = r"\$?\{?([A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}?"
_ARITHMETIC = re.compile(rf"\(\(\s*{_NAME_OR_COUNT}\s*(==|!=|>=?|<=?)\s*{_NAME_OR_COUNT}\s*\)\)")
_COMPARE = {"-eq": int.__eq__, "==": int.__eq__, "=": int.__eq__, "-ne": int.__ne__, "!=": int.__ne__,
            "-gt": int.__gt__, ">": int.__gt__, "-ge": int.__ge__, ">=": int.__ge__,
            "-lt": int.__lt__, "<": int.__lt__, "-le": int.__le__, "<=": int.__le__}


_CASE = re.compile(r"case (\S+) in (.+)")


def _case_matches(ctx: Context, subject: str, patterns: str, line: int) -> bool | None:
    """Whether a ``case`` item's patterns (``1``, ``2|3``, ``[2-9]``, ``*``) match SUBJECT, a count the job fixes;
    None where the count is not known or a pattern is not plain glob text (a variable, a quote around glob
    characters)."""
    if len(subject) > 1 and subject[0] == subject[-1] == '"':
        subject = subject[1:-1]   # "$SLURM_NNODES": the same number
    value = as_int(ctx, subject, line)
    words = [w.strip() for w in patterns.split("|")]
    if "*" in words:
        return True               # matches whatever the subject is, known or not
    if value is None:
        return None
    for word in words:
        if any(c in word for c in "$`\\") or not word:
            return None
        if word[0] == word[-1] and word[0] in "'\"" and len(word) > 1:
            word = word[1:-1]
            if any(c in word for c in "*?["):
                return None       # quoted: the characters are literal, which fnmatch cannot be told
        elif any(c in word for c in "'\""):
            return None
        if fnmatch.fnmatchcase(str(value), word):
            return True
    return False


def condition_holds(ctx: Context, condition: str, line: int) -> bool | None:
    """Whether an ``if`` condition holds for the job its #SBATCH lines ask for, when it compares counts the job
    fixes (``[ "$SLURM_NNODES" -gt 1 ]`` in a job with ``--nodes=1``: it does not; see :func:`as_int` for the
    variables known), or a ``case`` item's patterns match such a count (``case $SLURM_NNODES in 1``); None for any
    other condition, or counts not known."""
    case = _CASE.fullmatch(condition)
    if case is not None:
        return _case_matches(ctx, case.group(1), case.group(2), line)
    text = condition.strip().rstrip(";").strip()
    negate = text.startswith("! ")
    text = text[2:].strip() if negate else text
    m = _TEST.fullmatch(text)
    if m is not None:
        left, op, right = (g for g in m.groups() if g is not None)
    else:
        m = _ARITHMETIC.fullmatch(text)
        if m is None:
            return None
        left, op, right = m.groups()
        left, right = (g if g.isdigit() else f"${g}" for g in (left, right))  # (( N > 1 )) reads N's value
    a, b = as_int(ctx, left, line), as_int(ctx, right, line)
    if a is None or b is None:
        return None
    return _COMPARE[op](a, b) != negate


def runs_for_job(ctx: Context, step: Any) -> bool:
    """False for a step in a branch of an ``if`` that cannot run for the job the #SBATCH lines ask for: under a
    condition on its counts that does not hold (``if [ "$SLURM_NNODES" -gt 1 ]`` in a one-node job), or in the
    branch after one that does; likewise after such a test and ``&&`` (after one that holds and ``||``). Such a
    branch is for another size of job (a script that adapts to --nodes given on sbatch's command line); judged
    against this one, its launch would draw findings that do not apply."""
    for condition, must in step_conditions(ctx, step):
        held = condition_holds(ctx, condition, step.line)
        if held is not None and held != must:
            return False
    return True


def step_conditions(ctx: Context, step: Any) -> tuple[tuple[str, bool], ...]:
    """The conditions a step runs under, as :func:`~hpcwidgets.parse.script.branch_conditions` gives them."""
    read = cached(ctx, "compounds_read", dict)
    # where the command's first word is: a command read from a block may start with the blanks that stand for the
    # syntax before it on its line (``1) torchrun …`` in a case item), which lie outside the item's commands
    text = step.command.text
    offset = step.command.offset + len(text) - len(text.lstrip())
    return branch_conditions(ctx.parsed.lexed.commands, offset, read)


def exclusive(ctx: Context, step: Any, other: Any) -> bool:
    """Whether two steps never both run: they sit in branches of one ``if`` or ``case`` that exclude each other
    (``then`` and ``else``; two items of a ``case``), or after a test and ``&&`` and after the same test and ``||``."""
    mine = step_conditions(ctx, step)
    return any((condition, not must) in mine for condition, must in step_conditions(ctx, other))


def _upgrade(step: Any) -> Any:
    chain = step.chain
    prog = [str(w) for w in chain.program]
    prog = (python_module(prog) or (prog, ()))[0]  # python -u -m torch.distributed.launch
    if chain.launcher is not None or len(prog) < 3 or prog[1] != "-m" or prog[2] != "torch.distributed.launch" \
            or not prog[0].rsplit("/", 1)[-1].startswith("python"):
        return step
    from ..errors import ParseError
    from ..parse.argv import parse_argv
    try:
        launcher = parse_argv(["torchrun", *prog[3:]]).model
    except ParseError:
        return step
    new = type(chain)(chain.srun, chain.container, launcher, (), chain.notes + (LEGACY_NOTE,))
    return dataclasses.replace(step, chain=new)


def is_legacy(step: Any) -> bool:
    return LEGACY_NOTE in step.chain.notes


def fix_for(ctx: Context, description: str, step: Any, chain: Any, before: tuple[str, ...] = ()) -> Fix | None:
    """The fix that turns ``step`` into ``chain``.

    When ``chain`` only adds options to one layer of the step (``--nv`` to the container, ``--gpus-per-task=4``
    to srun, ``--nnodes=2`` to torchrun), the fix inserts them into the line as written and changes no other
    character (:func:`insertion_fix`): the user's spelling (``-B``, ``-e``, ``-H``), order and layout stay, and
    so do words a rebuild could not write back (``-B $PWD``, ``/usr/bin/apptainer``). Otherwise ``step_fix``
    rebuilds the step from its model, or None when that would change what it does: the deprecated launcher (ranks
    are passed differently), a step read from inside ``bash -c "…"`` (the other commands there and the per-task
    expansion would be lost), an unquoted ``$VAR`` that bash splits into several words (quoting it would make one
    word), or a program written with its path (``/usr/local/bin/torchrun`` would become ``torchrun``), or one read
    past a wrapper after srun or a container (``srun env -u X torchrun``: no layer holds ``env -u X``)."""
    # an insertion needs no rebuild, so neither a $VAR bash may split nor a program written with its path stops
    # it; a step read from bash -c "…", through a variable or past a wrapper (or the deprecated launcher) keeps
    # the checks below, as do lines to put above the step
    if not (before or is_legacy(step) or step.wrapper or step.looked_through or step.through):
        inserted = insertion_fix(ctx, description, step, chain)
        if inserted is not None:
            return inserted
    if is_legacy(step) or step.wrapper or step.looked_through or \
            any(" is written as " in note for note in step.chain.notes):
        return None
    if any(ctx.parsed.may_split(w, step.line) for w in step.command.words):
        return None  # quoting it would make one word: keep the line as written
    return step_fix(description, step, chain, before)


#: the layers of a step, by the kind of the model that reads them
_LAYER_OF_KIND = {"slurm.srun": "srun", "apptainer.run": "container", "charliecloud.run": "container",
                  "torchrun": "launcher"}
_LAYERS = ("srun", "container", "launcher")

#: a word an insertion writes as it is: nothing in it that bash reads specially
_BARE_WORD = re.compile(r"[A-Za-z0-9_./:=,+@%^-]+")
#: a word an insertion writes in double quotes: such text and $NAME or ${NAME} references, which expand there
_DOUBLE_QUOTED_WORD = re.compile(r"(?:[A-Za-z0-9_./:=,+@%^ -]|\$(?:[A-Za-z_]\w*|\{[A-Za-z_]\w*\}))+", re.ASCII)


def insertion_fix(ctx: Context, description: str, step: Any, chain: Any) -> Fix | None:
    """A fix that writes the options ``chain`` adds to one layer of ``step`` into the step's line and leaves every
    other character as written, or None when ``chain`` does more than add options (or the words cannot be placed).

    A switch (``--nv``) goes right after the layer's command word (``srun``, ``torchrun``, ``apptainer exec`` or
    ``run`` past any options of the program itself, as in ``apptainer --debug exec``, ``ch-run``); an option with a
    value (``--bind DIR``, ``--gpus-per-task=4``) at the end of the layer's options, before its image (srun: the
    command it starts), where the model adds it (a bind added last stays last); each tries the other place when its
    own does not give ``chain``. The insertion is made only when the words of the command as written, read again
    with the new ones in place, give exactly ``chain``: the changed layer as the fix wants it, the others as they
    were. That also makes it safe where a rebuild is withheld (``$VAR`` that bash may split, a program written with
    its path): those words stay as they are. A layer read from inside ``bash -c "…"`` has no word of the command to
    insert after (the word would land inside the string): None, as for options the model writes in another form
    than an added word (``--bind a,b`` where ``-B a`` stands)."""
    from ..parse.argv import parse_chain
    changed = [name for name in _LAYERS if getattr(step.chain, name) != getattr(chain, name)]
    if len(changed) != 1 or tuple(step.chain.program) != tuple(chain.program):
        return None
    layer = changed[0]
    old, new = getattr(step.chain, layer), getattr(chain, layer)
    if old is None or new is None:
        return None
    added = _added_words(model_words(old)[0], model_words(new)[0])
    if not added or not str(added[0]).startswith("-"):
        return None
    if layer == "launcher":
        added = _keep_torchrun_spelling(step, ["torchrun", *added])[1:]  # as torchrun's other options are spelled
    written = _written_words(added)
    if written is None:
        return None
    text, values = written
    words = list(step.command.words)
    have = [w.value for w in words]
    cut = len(have) - len(launch_words([str(v) for v in have]))
    try:
        as_written = parse_chain(have[cut:], source_line=step.command.line)
    except ParseError:
        return None
    if getattr(as_written, layer) != old:
        return None  # the step's layer is not the one its words give (read from bash -c "…", a variable, a wrapper)
    points = _insertion_points(have, cut, layer)
    if len(added) > 1 or "=" in str(added[0]):
        points.reverse()  # an option with a value: at the end of the options first
    for at in points:
        try:
            fixed = parse_chain(have[cut:at] + values + have[at:], source_line=step.command.line)
        except ParseError:
            continue
        if getattr(fixed, layer) != new or tuple(fixed.program) != tuple(as_written.program) or any(
                getattr(fixed, other) != getattr(as_written, other) for other in _LAYERS if other != layer):
            continue
        line_no, line = _line_with(ctx, words, at, text)
        if line is not None:
            return Fix(description, line_no, line_no, text=line)
    return None


def insert_after(ctx: Context, description: str, word: Any, options: list[str]) -> Fix | None:
    """A fix that writes ``options`` right after the lexer word ``word`` of a command (``start`` of ``apptainer
    instance start``) and changes nothing else on its line; None when the words cannot be written plainly or the
    word cannot be placed. The caller makes sure options belong there."""
    written = _written_words(options)
    if written is None or word is None:
        return None
    line_no, line = _line_with(ctx, [word], 1, written[0])
    return Fix(description, line_no, line_no, text=line) if line is not None else None


def _added_words(old: list[Any], new: list[Any]) -> list[Any]:
    """The words ``new`` has in one run where ``old`` has none, all others the same and in order ([] otherwise)."""
    import difflib
    ops = [op for op in difflib.SequenceMatcher(a=[str(w) for w in old], b=[str(w) for w in new],
                                                autojunk=False).get_opcodes() if op[0] != "equal"]
    if len(ops) != 1 or ops[0][0] != "insert":
        return []
    return list(new[ops[0][3]:ops[0][4]])


def _written_words(words: list[Any]) -> tuple[str, list[Any]] | None:
    """How ``words`` (in the value language) are written on a command line, and their values as the script reader
    reads that text back; None for a word this cannot write plainly or in double quotes."""
    from ..parse.lexer import lex_command
    out = []
    for word in words:
        text = str(word)
        if isinstance(word, Verbatim) or _BARE_WORD.fullmatch(text):
            out.append(text)
        elif _DOUBLE_QUOTED_WORD.fullmatch(text):
            out.append(f'"{text}"')
        else:
            return None
    joined = " ".join(out)
    try:
        read = lex_command("x " + joined)  # after a command word: NAME=value is an argument there
    except ParseError:
        return None
    values = [w.value for w in read.words[1:]]
    if len(values) != len(words) or read.redirects:
        return None
    return joined, values


def _insertion_points(values: list[Any], cut: int, layer: str) -> list[int]:
    """Where options of ``layer`` may be inserted among the command's words ``values`` (its launch starting at
    ``cut``): right after the layer's command word, and before its image (srun: the command it starts)."""
    from ..parse.argv import parse_argv, recognise
    at = cut
    while at < len(values):
        found = recognise([str(v) for v in values[at:]])
        if found is None:
            return []
        try:
            parsed = parse_argv(values[at:])
        except ParseError:
            return []
        kind = _LAYER_OF_KIND.get(parsed.model.kind)
        if kind is None:
            return []
        after = at + found[1]  # the word after apptainer exec, apptainer --debug exec, srun, torchrun
        rest = len(values) - len(parsed.tail)
        if kind == layer:
            points = [after]
            image = str(getattr(parsed.model, "image", "") or "")
            if kind == "srun" and rest > after:
                points.append(rest)
            elif image and after < rest - 1 and str(values[rest - 1]) == image:
                points.append(rest - 1)
            return points
        if kind == "launcher" or not parsed.tail:
            return []
        at = rest
    return []


def _line_with(ctx: Context, words: list[Any], at: int, text: str) -> tuple[int, str | None]:
    """The line of the command's word before ``at`` with `` text`` written right after that word, and its number;
    the line is None when the word cannot be placed in the source (it spans lines, or its columns do not hold it).
    The line is the script's as given: a Windows line end (CR) and a byte-order mark, which the reader drops, stay."""
    lines = ctx.parsed.lines
    if not 0 < at <= len(words):
        return 0, None
    prev = words[at - 1]
    if "\n" in prev.raw or not 0 < prev.line <= len(lines):
        return 0, None
    line = lines[prev.line - 1]
    end = prev.col - 1 + len(prev.raw)
    if prev.col < 1 or line[prev.col - 1:end] != prev.raw:
        return 0, None
    given = (ctx.text or ctx.parsed.source).split("\n")
    raw = given[prev.line - 1] if prev.line <= len(given) else ""
    mark = "\ufeff" if raw.startswith("\ufeff") and not line.startswith("\ufeff") else ""
    cr = "\r" if raw.endswith("\r") and not line.endswith("\r") else ""
    if raw != mark + line + cr:
        return 0, None
    return prev.line, f"{mark}{line[:end]} {text}{line[end:]}{cr}"


def with_chain(chain: Any, **layers: Any) -> Any:
    values = {"srun": chain.srun, "container": chain.container, "launcher": chain.launcher,
              "program": chain.program, "notes": chain.notes}
    values.update(layers)
    return type(chain)(**values)


#: where a job keeps files on each node's own disk: the variables sites point at a per-node folder, and the
#: folders that are local to every node; what the batch shell writes there exists on the first node only (HPC523),
#: and a folder named there is each node's own (HPC502)
NODE_LOCAL = re.compile(r"\$\{?(?:SLURM_TMPDIR|TMPDIR|TMP|LOCAL_?SCRATCH|LSCRATCH)(?::?[-=][^}]*)?\}?(?=/|$)"
                        r"|(?:/tmp|/dev/shm|/var/tmp|/lscratch|/localscratch|/local|/scratch/local)(?=/|$)")


def simple_commands(ctx: Context) -> tuple[Any, ...]:
    """Top-level simple commands (compound commands are opaque units in the lexer)."""
    return cached(ctx, "simple", lambda: tuple(c for c in ctx.parsed.lexed.code if c.kind == "simple"))


def held_commands(ctx: Context) -> tuple[Any, ...]:
    """Top-level commands whose words a variable holds, as bash splits them (``$LAUNCHER train.py`` with
    ``LAUNCHER="accelerate launch …"``), that start no step the models read (those are in :func:`steps`)."""
    return tuple(h for h in ctx.parsed.held_commands if not h.in_compound)


def run_words(words: list[str]) -> list[str]:
    """The words of the command a line runs: past ``time``, ``exec``, ``env A=1`` and the other wrappers the parser
    reads past, and past ``srun`` with its options, read by the srun model (which knows the ones that take a
    value), and the wrappers after it."""
    from ..errors import ParseError
    from ..parse.argv import parse_argv
    words = launch_words(words)
    if words and words[0].rsplit("/", 1)[-1] == "srun":
        try:
            return launch_words([str(w) for w in parse_argv(words).model.command])
        except ParseError:
            return []
    return words


def all_words(cmd: Any) -> list[Any]:
    """Every word of a command, assignment values included."""
    return [w for _, w in cmd.assignments] + list(cmd.words)


_REF_AT = re.compile(r"\{?([A-Za-z_][A-Za-z0-9_]*)")

#: a variable named without $ in arithmetic (``$((SLURM_NODEID + 1))``); not a number's digits or a $NAME
_ARITH_NAME = re.compile(r"(?<![\w$#{])([A-Za-z_][A-Za-z0-9_]*)")


def expanded_refs(raw: str) -> list[tuple[str, bool]]:
    """Parameter references bash expands in a word's source text, as ``(name, in_double_quotes)``.

    Text in single quotes and backslash-escaped dollars are literal. ``$$NAME`` yields ``("$$", …)``
    (the shell's process id followed by text).
    """
    if "$" not in raw:
        return []
    out: list[tuple[str, bool]] = []
    i, n, in_dq = 0, len(raw), False
    while i < n:
        c = raw[i]
        if c == "\\":
            i = _past_parens(raw, i + 2) if raw.startswith("$(", i + 1) else i + 2  # \$( … ): each task's
            continue
        if c == "'" and not in_dq:
            j = raw.find("'", i + 1)
            i = n if j < 0 else j + 1
            continue
        if c == '"':
            in_dq = not in_dq
        elif raw.startswith("((", i):  # $(( … )) or (( … )): bare names there are variables too
            end = raw.find("))", i + 2)
            body = raw[i + 2:end] if end > 0 else ""
            out += [(m.group(1), in_dq) for m in _ARITH_NAME.finditer(body)]
        elif c == "$":
            if raw.startswith("$$", i):
                if i + 2 < n and (raw[i + 2].isalpha() or raw[i + 2] in "_{"):
                    out.append(("$$", in_dq))
                i += 2
                continue
            m = _REF_AT.match(raw, i + 1)
            if m:
                out.append((m.group(1), in_dq))
        i += 1
    return out


def _past_parens(raw: str, at: int) -> int:
    """The index just past the ``)`` that closes the ``(`` at ``at`` (the end of ``raw`` when none does)."""
    depth = 0
    for k in range(at, len(raw)):
        depth += {"(": 1, ")": -1}.get(raw[k], 0)
        if depth == 0:
            return k + 1
    return len(raw)


def is_literal(value: Any) -> bool:
    """A value written out in the script (no variable or command substitution in it)."""
    return isinstance(value, str) and not isinstance(value, Verbatim) and not re.search(r"(?<!\\)\$", value)


def containers(ctx: Context) -> list[tuple[Any, Any]]:
    """``(step, container model)`` for every step with a container layer."""
    return [(s, s.chain.container) for s in steps(ctx) if s.chain.container is not None]


def multi_node(ctx: Context, launcher: Any = None) -> bool:
    if job_nodes(ctx) > 1:
        return True
    n = launcher.nnodes_int if launcher is not None else None
    return n is not None and n > 1


def one_node_job(ctx: Context) -> bool:
    """The job is held to a single node: --nodes=1 (or 1-1), or nothing that could spread it over more."""
    job = ctx.job
    span = node_range(job.nodes)
    if job.nodes is not None:
        return span is not None and span[1] == 1
    tasks, per_node = job.ntasks, job.ntasks_per_node
    if isinstance(tasks, int) and tasks > 1:
        return isinstance(per_node, int) and per_node >= tasks
    return tasks is None or isinstance(tasks, int)


#: the image of exec/run that joins a running instance (apptainer exec instance://NAME …)
INSTANCE_SCHEME = "instance://"


def heterogeneous(ctx: Context) -> bool:
    """A heterogeneous job (``#SBATCH hetjob`` between components): ``ctx.job`` is only its first component."""
    return ctx.parsed.heterogeneous


#: the job fields that ask for resources (nodes, tasks, CPUs, GPUs, memory, other generic resources)
RESOURCE_FIELDS = ("nodes", "ntasks", "ntasks_per_node", "cpus_per_task", "cpus_per_gpu", "gpus_per_node", "gpus",
                   "gpus_per_task", "mem", "mem_per_cpu", "mem_per_gpu", "other_gres")


def resources_from_command_line(job: Any) -> bool:
    """Whether a job script asks for no resources at all (none of :data:`RESOURCE_FIELDS`, not even a count of 0 such
    as --gres=gpu:0): they then come from sbatch's command line (``sbatch -N 2 --gres=gpu:4 job.sh``), which the script
    does not show, so a rule that holds what the script uses against what it asks for has nothing to go on."""
    return all(getattr(job, field) in (None, "", ()) for field in RESOURCE_FIELDS)


def written_option(flag: str, value: Any) -> str:
    """An option and its value as sbatch and srun read them: ``--nodes=2``, but ``-N 2`` for a short option, whose
    ``=`` getopt would keep in the value (``-N=2`` is the node count ``=2``)."""
    return f"{flag}={value}" if flag.startswith("--") else f"{flag} {value}"


#: srun's option naming the components of a heterogeneous job a step runs in (pack-group: its old name)
_HET_GROUP_OPTIONS = ("--het-group", "--pack-group")


def het_groups(step: Any) -> str | None:
    """The ``--het-group`` value of a step's srun as written ("" when none is given), or None when the step
    cannot be placed in one component: srun's ``:`` syntax (one step over several components)."""
    srun = step.chain.srun
    if srun is None:
        return ""
    if ":" in [str(w.value) for w in step.command.words]:
        return None
    extra = [str(e) for e in srun.extra]
    value = ""
    for i, word in enumerate(extra):
        name, eq, rest = word.partition("=")
        if name in _HET_GROUP_OPTIONS:
            value = rest if eq else (extra[i + 1] if i + 1 < len(extra) else "")
    return value


def in_job_component(ctx: Context, step: Any) -> bool:
    """Whether the job's counts (``ctx.job``: nodes, tasks, GPUs) describe where ``step`` runs.

    Always in an ordinary job. In a heterogeneous job ``ctx.job`` is its first component (0): a step in
    the batch shell runs there, and so does ``srun`` without ``--het-group`` (Slurm's default) or with
    ``--het-group=0``. In the view of a later component (:class:`ComponentContext`, ``ctx.job`` is that
    component) the steps with ``--het-group=K`` run there. A step over several components (``0,1``, ``0-1``,
    srun's ``:`` syntax) or in one named by a variable (``$GROUP``) cannot be judged from one component's counts.
    """
    if not heterogeneous(ctx):
        return True
    groups = het_groups(step)
    component = getattr(ctx, "component", 0)
    return groups is not None and groups.strip() in (("", "0") if component == 0 else (str(component),))


def job_component_steps(ctx: Context) -> tuple[Any, ...]:
    """The steps the job's node, task and GPU counts describe (every step, except in a heterogeneous job)."""
    return cached(ctx, "job_component_steps", lambda: tuple(s for s in steps(ctx) if in_job_component(ctx, s)))


@dataclasses.dataclass
class ComponentContext(Context):
    """What a rule sees of a later component of a heterogeneous job: ``job`` is that component (read from its
    own ``#SBATCH`` lines) and :func:`in_job_component` holds for the steps srun starts there
    (``--het-group=K``), so a rule that compares steps with the job's counts judges them by their own."""

    component: int = 0


def component_views(ctx: Context) -> tuple[ComponentContext, ...]:
    """One :class:`ComponentContext` for each later component of a heterogeneous job (none otherwise).

    The reader models the first component; the others' directives are kept as written, so each component's
    job is read from its own ``#SBATCH`` lines on their own (a component sbatch would refuse is left out:
    its directives' own rules say why)."""
    def make() -> tuple[ComponentContext, ...]:
        if not heterogeneous(ctx) or isinstance(ctx, ComponentContext):
            return ()
        from ..parse.script import read_script
        lines: dict[int, list[str]] = {}
        for d in ctx.parsed.directives:
            if d.applied and d.component and ctx.parsed.lines[d.line - 1] not in lines.get(d.component, []):
                lines.setdefault(d.component, []).append(ctx.parsed.lines[d.line - 1])
        views = []
        for component, directives in sorted(lines.items()):
            try:
                job = read_script("\n".join(["#!/bin/bash", *directives, "true", ""])).job
            except ParseError:
                continue
            parsed = dataclasses.replace(ctx.parsed, job=job)
            views.append(ComponentContext(parsed, profile=ctx.profile, path=ctx.path, text=ctx.text,
                                          component=component))
        return tuple(views)
    return cached(ctx, "component_views", make)


def each_component(check: Any) -> Any:
    """A rule that compares steps with the job's counts, run over every component of a heterogeneous job: first
    as written (``ctx.job`` is the first component), then once per later component for the steps srun starts
    there (``srun --het-group=1 …`` runs in component 1's allocation, with its GPUs and tasks). A line the first
    run already reported is not reported again."""
    def run(ctx: Context) -> Iterator[Any]:
        reported: set[int] = set()
        for item in check(ctx):
            reported.add(item[0])
            yield item
        for view in component_views(ctx):
            own = {line for s in job_component_steps(view) for line in range(s.line, s.end_line + 1)}
            for item in check(view):
                if item[0] in own and item[0] not in reported:
                    yield item
    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


def own_task_gpus(ctx: Context, step: Any) -> int | None:
    """The GPUs each task of an srun step has to itself. --gpus-per-task (srun's own, or the job's, which srun
    takes from SLURM_GPUS_PER_TASK) implies --gpu-bind=per_task (srun(1), since Slurm 21.08): each task sees
    only its own GPUs, numbered from 0, so launchers in different tasks never share one. None without it, or
    when a --gpu-bind of srun's (or else the job's) binds the GPUs another way (none, closest, map_gpu …)."""
    srun = step.chain.srun
    if srun is None:
        return None
    bind = srun.gpu_bind or next((d.value for d in reversed(ctx.parsed.directives)
                                  if d.flag == "--gpu-bind" and d.applied and not d.component), "")
    if not binds_per_task(bind):
        return None
    return gpu_total(srun.gpus_per_task) or inherited_per_task(ctx, step)


#: ``accelerate launch`` options that take no value (every other option takes one)
_ACCELERATE_SWITCHES = frozenset({
    "--cpu", "--multi_gpu", "--tpu", "--use_deepspeed", "--use_fsdp", "--use_megatron_lm", "--use_xpu", "--ipex",
    "--mps", "-m", "--module", "--no_python", "--debug", "-q", "--quiet", "--same_network", "--downcast_bf16",
    "--enable_cpu_affinity", "--tpu_use_cluster", "--tpu_use_sudo"})

#: ``deepspeed`` (launcher) options that take no value
_DEEPSPEED_SWITCHES = frozenset({
    "--module", "--no_python", "--no_local_rank", "--no_ssh", "--no_ssh_check", "--force_multi", "--save_pid",
    "--elastic_training", "--bind_cores_to_rank"})


def _launcher_options(args: list[str], switches: frozenset[str]) -> dict[str, str]:
    """A launcher's own options up to its script, as ``--name_with_underscores`` → value ("" for a switch)."""
    out: dict[str, str] = {}
    _options_end(args, switches, out)
    return out


def _options_end(args: list[str], switches: frozenset[str], found: dict[str, str] | None = None) -> int:
    """Where a launcher's own options end in ``args``: the index of its script (or of ``--``), each option read
    on the way into ``found``."""
    i = 0
    while i < len(args):
        word = args[i]
        if not word.startswith("-") or word == "--":
            break
        name, eq, value = word.partition("=")
        if name.startswith("--"):
            name = "--" + name[2:].replace("-", "_")
        if eq or name in switches:
            i += 1
        else:
            value, i = (args[i + 1] if i + 1 < len(args) else ""), i + 2
        if found is not None:
            found[name] = value
    return i


def python_module_words(words: list[Any]) -> tuple[list[str], str]:
    """``words`` with the interpreter's own options read past when they run a module (``python3 -u -X dev -m
    MODULE ARGS`` → ``[python3, -m, MODULE, ARGS…]``, the spelling the launcher and server checks look for), and
    how the words up to the module are written, for messages (``python3 -u -X dev -m MODULE``; "" when ``words``
    run no module). Every check that finds a launcher or server run as ``python -m MODULE`` reads it through this,
    so ``-u``, ``-O``, ``-X …``, ``-W …`` never hide it."""
    written = [str(w) for w in words]
    plain = (python_module(written) or (written, ()))[0]
    plain = [str(w) for w in plain]
    if len(plain) < 3 or plain[1] != "-m" or not _PYTHON.fullmatch(plain[0].rsplit("/", 1)[-1]):
        return plain, ""
    # the module's arguments are the last words of both spellings
    return plain, " ".join(written[:len(written) - (len(plain) - 3)])


def _launcher_call(words: list[str]) -> tuple[str, list[str]] | None:
    """``("accelerate launch" | "deepspeed", its arguments)`` when ``words`` (past ``exec``, ``env A=1`` …) start
    one of these launchers, else None. ``python -u -m accelerate.commands.launch`` (any interpreter options) is
    read as ``accelerate launch`` (:func:`python_module_words`)."""
    words = python_module_words(launch_words([str(w) for w in words]))[0]
    if not words:
        return None
    prog = words[0].rsplit("/", 1)[-1]
    if prog == "accelerate" and words[1:2] == ["launch"]:
        return "accelerate launch", words[2:]
    if prog == "accelerate-launch":
        return "accelerate launch", words[1:]
    if prog.startswith("python") and words[1:3] == ["-m", "accelerate.commands.launch"]:
        return "accelerate launch", words[3:]
    if prog == "deepspeed":
        return "deepspeed", words[1:]
    return None


@dataclasses.dataclass(frozen=True)
class OtherLaunch:
    """An ``accelerate launch`` or ``deepspeed`` command, which the reader keeps as a program (it has no model
    for them): where it runs and its own options."""

    line: int
    name: str                 # "accelerate launch" or "deepspeed"
    options: dict[str, str]   # --name_with_underscores → value; a \\$ the task expands (bash -c '…') reads as $
    step: Any = None          # the step that runs it (srun, a container, a bash -c script there), None: batch shell
    script_args: tuple[str, ...] = ()  # the words after the training script: the script's, not the launcher's

    def number(self, ctx: Context, name: str) -> int | None:
        """An option's value as a number, also through the script's and the job's variables; None when not
        given or not known."""
        return as_int(ctx, self.options[name], self.line) if self.options.get(name) else None

    def machines(self, ctx: Context) -> int | None:
        """accelerate's --num_machines as a number: 1 when it is not given and no config file may give it
        (accelerate's default), None when not known."""
        if "--num_machines" in self.options:
            return self.number(ctx, "--num_machines")
        return None if "--config_file" in self.options else 1

    @property
    def srun(self) -> Any:
        return self.step.chain.srun if self.step is not None else None

    @property
    def placed_by_hand(self) -> bool:
        """srun -w NODE … & (one of several steps that together make the launch): not one step over the job."""
        srun = self.srun
        return srun is not None and (self.step.command.joined_by == "&" or any(
            str(e).partition("=")[0] in ("-w", "--nodelist") for e in srun.extra))


def other_launches(ctx: Context) -> tuple[OtherLaunch, ...]:
    """Every ``accelerate launch`` and ``deepspeed`` the script starts: as a step's program (after srun, in a
    container), in a step's ``bash -c`` script, or as a plain command of the batch shell."""
    def make() -> tuple[OtherLaunch, ...]:
        found: list[OtherLaunch] = []
        for step in steps(ctx):
            calls = [_launcher_call(list(step.chain.program))]
            if calls[0] is None:
                calls = [_launcher_call(list(c.argv)) for c in _simple_commands([step.command])
                         if isinstance(c, _Inner)]
            for call in calls:
                if call is not None:
                    found.append(_other_launch(step.line, call, step))
        for cmd in (*simple_commands(ctx), *held_commands(ctx)):
            call = _launcher_call(list(cmd.argv))
            if call is not None:
                found.append(_other_launch(cmd.line, call, None))
        return tuple(sorted(found, key=lambda o: o.line))
    return cached(ctx, "other_launches", make)


def _other_launch(line: int, call: tuple[str, list[str]], step: Any) -> OtherLaunch:
    name, args = call
    switches = _ACCELERATE_SWITCHES if name == "accelerate launch" else _DEEPSPEED_SWITCHES
    options = {k: v.replace("\\$", "$") for k, v in _launcher_options(args, switches).items()}
    return OtherLaunch(line, name, options, step, tuple(args[_options_end(args, switches) + 1:]))


#: accelerate options that choose DeepSpeed (besides --use_deepspeed): its own settings
_DEEPSPEED_OPTIONS = re.compile(r"--(?:deepspeed_|zero_stage$|zero3_|offload_|gradient_accumulation_steps$|"
                                r"gradient_clipping$)")


def accelerate_path(launch: OtherLaunch, machines: int | None) -> str:
    """How ``accelerate launch`` starts the processes of several machines, as accelerate's launch command chooses:
    "per_machine" (torch's launcher, or DeepSpeed's with --deepspeed_multinode_launcher standard or nossh: one
    launch on every machine, each with its own --machine_rank), "once" (DeepSpeed's multi-node launcher, pdsh by
    default, or MPI or slurm: one launch starts every machine), or "" when a config file may decide."""
    opts = launch.options
    config = "--config_file" in opts
    if "--use_deepspeed" in opts:
        if machines is not None and machines <= 1:
            return "per_machine"   # one machine: DeepSpeed runs under torch's launcher
        chosen = opts.get("--deepspeed_multinode_launcher")
        if chosen is None:
            return "" if config else "once"
        return "per_machine" if chosen in ("standard", "nossh") else "once"
    if any(o in opts for o in ("--multi_gpu", "--use_fsdp", "--use_megatron_lm")):
        return "per_machine"   # the command line wins over the config file's distributed type
    if config or any(_DEEPSPEED_OPTIONS.match(o) for o in opts):
        return ""
    return "per_machine"   # accelerate's own default without a config file: torch's launcher


#: a host name that each node works out for itself: $(hostname …), `hostname`, $HOSTNAME, $SLURMD_NODENAME.
#: In a value read from a bash -c script, ``\$`` is a dollar the batch shell left for each task to expand.
_OWN_HOST = re.compile(r"\$\(\s*(?:\S*/)?hostname\b[^)]*\)|`\s*(?:\S*/)?hostname\b[^`]*`"
                       r"|\\\$\{?(?:HOSTNAME|SLURMD_NODENAME|SLURM_TOPOLOGY_ADDR)\}?")

#: ``\$(hostname)`` or ``\`hostname\``` in a double-quoted bash -c script: left for each task to run
_ESCAPED_HOSTNAME = re.compile(r"\\(?:\$\(|`)\s*(?:\S*/)?hostname")


#: rendezvous settings written in a bash -c script, and a value there that differs from task to task
#: (JAX's jax.distributed.initialize takes its coordinator as --coordinator_address in most training scripts, or
#: from JAX_COORDINATOR_ADDRESS)
_RDZV_SETTING = (r"(?P<setting>--(?:rdzv[-_]endpoint|master[-_](?:addr|port)|rdzv[-_]id|main[-_]process[-_](?:ip|port)"
                 r"|coordinator[-_]address)[= ]|\b(?:MASTER_ADDR|MASTER_PORT|JAX_COORDINATOR_ADDRESS)=)")

_PER_TASK_VALUE = r"[\"']?[^\s;&|]*?(?P<value>{d}\(\(\s*RANDOM|{d}\{{?RANDOM\b|{d}\(\s*(?:shuf|hostname)\b[^)]*\)?|`\s*hostname" \
                  r"|{d}\{{?(?:HOSTNAME|SLURMD_NODENAME)\b)"

#: in a single-quoted script every $ is the task's; in a double-quoted one only an escaped \$ (or \`) is
_PER_TASK_SINGLE = re.compile(_RDZV_SETTING + _PER_TASK_VALUE.format(d=r"\$"))

_PER_TASK_DOUBLE = re.compile(_RDZV_SETTING + _PER_TASK_VALUE.replace("`", r"\\`").format(d=r"\\\$"))


def _per_task_rendezvous_text(ctx: Context, step: Any) -> str:
    """The message for a rendezvous setting that each task of a multi-node srun bash -c works out for itself
    (MASTER_ADDR=$(hostname), a port from $RANDOM, --rdzv-id=$RANDOM), or ""."""
    word = shell_script_word(step)
    if word is None or step.chain.srun is None or _step_nodes(ctx, step) < 2:
        return ""
    raw = word.raw
    m = (_PER_TASK_SINGLE if raw.startswith("'") else _PER_TASK_DOUBLE).search(raw)
    if m is None:
        return ""
    setting = m.group("setting").rstrip("= ")
    what = "host" if re.search(r"ADDR|addr|endpoint|_ip", setting) and "RANDOM" not in m.group("value") \
        and "shuf" not in m.group("value") else "value"
    if what == "host":
        value = m.group("value").replace("\\", "")
        value += ")" if value.startswith("$(") and not value.endswith(")") else "`" if value.startswith("`") else ""
        return (f"{setting} is set inside the bash -c script from {value}, which each "
                "task works out on its own node: every node names itself as the rendezvous host and the job hangs; "
                "resolve the head node once before srun (export head_node=$(scontrol show hostnames "
                "\"$SLURM_JOB_NODELIST\" | sed -n 1p)) and use \"$head_node\" inside the bash -c script")
    return (f"{setting} takes a random value inside the bash -c script, so each node draws its own and they never "
            "meet at one rendezvous (the job hangs); draw it once before srun (port=$((RANDOM % 20000 + 20000))), export "
            "it and use \"$port\" inside the script, or use $SLURM_JOB_ID as the run id")


def step_tasks(ctx: Context, step: Any) -> int:
    """How many tasks an srun step starts in all: its --ntasks, else its nodes × its tasks per node."""
    srun = step.chain.srun
    if srun is not None and isinstance(srun.ntasks, int):
        return srun.ntasks
    return _step_nodes(ctx, step) * (tasks_per_node(ctx, step) or 1)


def shell_script_word(step: Any) -> Any:
    """The word holding the script of a ``bash -c`` (or ``sh -c``) in a step, wherever it sits (after srun, in a
    container), or None."""
    return _shell_c_word(step.command.words)


def _shell_c_word(words: Any) -> Any:
    """The script word of ``bash -c`` (or ``bash -lc``, ``sh -ec`` …) among a command's ``words``, or None."""
    at = c_script_in([w.value for w in words])
    return words[at] if at is not None else None


def _step_nodes(ctx: Context, step: Any) -> int:
    """How many nodes an srun step runs on: its own --nodes, at most its --ntasks, else the job's nodes
    (1 when it names a node list: it is then placed by hand)."""
    srun = step.chain.srun
    if srun is None:
        return 1
    if not isinstance(srun.nodes, int) and any(str(e).partition("=")[0] in ("-w", "--nodelist") for e in srun.extra):
        return 1
    nodes = srun.nodes if isinstance(srun.nodes, int) else job_nodes(ctx)
    return min(nodes, srun.ntasks) if isinstance(srun.ntasks, int) else nodes


def _per_task_endpoint(ctx: Context, step: Any) -> str:
    """The message for a launcher in a bash -c script whose --rdzv-endpoint/--master-addr each task works out
    as its own host name, or ""."""
    launcher = step.chain.launcher
    if not step.wrapper or launcher is None or launcher.standalone or not multi_node(ctx, launcher):
        return ""
    for name in ("rdzv_endpoint", "master_addr"):
        value = str(getattr(launcher, name) or "")
        host = value.rsplit(":", 1)[0] if name == "rdzv_endpoint" and value.count(":") == 1 else value
        if not _OWN_HOST.fullmatch(host.strip()):
            continue
        raw = step.wrapper_word.raw if step.wrapper_word is not None else ""
        if raw.startswith('"') and not host.startswith("\\$") and not _ESCAPED_HOSTNAME.search(raw):
            continue  # "…$(hostname)…": the batch shell runs it once, on the first node
        shown = value.replace("\\$", "$")
        return (f"--{name.replace('_', '-')}={shown} is expanded by each task on its own node, so every node names "
                "itself as the rendezvous host and the job hangs; resolve the head node once before srun (export "
                "head_node=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | sed -n 1p)) and use \"$head_node\" "
                "inside the bash -c script")
    return ""


#: srun options that ask for GPUs (or other generic resources, which then replace the job's) for the step itself
_STEP_GPU_OPTIONS = ("--gres", "--gpus", "-G", "--gpus-per-node", "--gpus-per-task", "--gpus-per-socket",
                     "--ntasks-per-gpu")


def own_gpu_request(srun: Any) -> bool:
    """Whether an srun line asks for GPUs (or generic resources) of its own, instead of taking the job's."""
    if getattr(srun, "gpus_per_task", None) is not None:
        return True
    return any(str(e).partition("=")[0] in _STEP_GPU_OPTIONS or str(e).startswith("-G") for e in srun.extra)


def step_gpu_types(srun: Any) -> tuple[str, ...]:
    """The GPU types an srun line names for its own step (``--gres=gpu:mi250:1``, ``-G a100:2``,
    ``--gpus-per-task=h100:1``), in order, once each; () where it names none (it takes the job's GPUs, or asks for
    a count only)."""
    if srun is None:
        return ()
    found: list[str] = []
    words = [str(e) for e in srun.extra]
    values = [str(srun.gpus_per_task)] if isinstance(srun.gpus_per_task, str) else []
    for k, word in enumerate(words):
        flag, eq, value = word.partition("=")
        if not eq and k + 1 < len(words):
            value = words[k + 1]  # -G a100:1: the value is the next word
        if flag == "--gres":  # each gpu item as sbatch reads it (gpu:a100 is one a100)
            found += [parts[1] for parts in map(_gpu_item, value.split(","))
                      if parts[0] == "gpu" and len(parts) == 3 and parts[2].isdigit()]
        elif flag in ("--gpus", "-G", "--gpus-per-node", "--gpus-per-task"):
            values.append(value)
    for value in values:
        for item in value.split(","):
            kind, _, count = item.rpartition(":")
            if kind and count.isdigit() and not kind.isdigit():
                found.append(kind)
    return tuple(dict.fromkeys(found))


def inherited_per_task(ctx: Context, step: Any) -> int | None:
    """The job's --gpus-per-task a step takes as its own: sbatch exports SLURM_GPUS_PER_TASK and srun reads it
    as --gpus-per-task (srun(1), input environment), so a step gets that many GPUs for each of its tasks, not the
    node's. None for a step in the batch shell (it holds the job's GPUs on its node), one that asks for GPUs
    itself, or a job that counts its GPUs otherwise as well (per node, in total)."""
    srun, job = step.chain.srun, ctx.job
    if srun is None or own_gpu_request(srun) or job.gpus_per_node or job.gpus:
        return None
    return gpu_total(job.gpus_per_task) or None


def inherited_gpus(ctx: Context, step: Any) -> int | None:
    """The GPUs on each node of a step that takes the job's --gpus-per-task (:func:`inherited_per_task`): that
    count for each of its tasks there, so ``srun --ntasks=1`` in a job of --gpus-per-task=1 gets one GPU."""
    per_task = inherited_per_task(ctx, step)
    tasks = tasks_per_node(ctx, step)
    return per_task * tasks if per_task and tasks else None


#: an interpreter's name: python, python3, python3.11
_PYTHON = re.compile(r"python[0-9.]*")


def _flag_in_a_variable(c: Any) -> bool:
    """Whether the container has an option word kept as written from a variable (``nv="--nv"`` set in an ``if``,
    then ``singularity exec $nv …``; an array of options, ``"${OPTS[@]}"``), or an array whose elements the reader
    cannot see where the image is read: either may be the GPU flag, so no rule may say the flag is missing."""
    return any(kept_reference(e) for e in c.extra) or bool(ARRAY_WORD.fullmatch(str(c.image)))


MPI_LAUNCHERS = ("mpirun", "mpiexec", "orterun", "mpiexec.hydra")

#: launchers that start ranks themselves (over ssh or mpirun): inside one container they reach no other node
RANK_LAUNCHERS = (*MPI_LAUNCHERS, "horovodrun")


def _script_env(ctx: Context, step: Any, name: str) -> str | None:
    """The value the script gives ``name`` for the step's command: before it (NAME=value cmd), else exported above."""
    own = dict(step.env).get(name)
    if own is not None:
        return own
    var = ctx.parsed.variable(name, step.line)
    return str(var.value) if var is not None and var.exported else None


def _srun_export(srun: Any) -> list[str] | None:
    """The entries of an srun step's --export list (the last one given), None without one: srun then passes its
    whole environment."""
    words = [str(e) for e in srun.extra] if srun is not None else []
    found = None
    for i, word in enumerate(words):
        if word.startswith("--export="):
            found = word.partition("=")[2]
        elif word == "--export" and i + 1 < len(words):
            found = words[i + 1]
    return None if found is None else [e.strip().strip("'\"") for e in found.split(",")]


def apptainer_env(ctx: Context, step: Any, name: str) -> str | None:
    """The value of ``name`` in the environment of the process that runs the step's apptainer, None when unset:
    the script's (:func:`_script_env`) as far as srun --export passes it on. srun(1): NONE, or a list with
    neither ALL nor the name, keeps it back; NAME=value in the list sets it, and with ALL the caller's value wins."""
    value = _script_env(ctx, step, name)
    listed = _srun_export(step.chain.srun)
    if listed is None:
        return value
    given = dict(e.split("=", 1) for e in listed if "=" in e)
    names = {e for e in listed if "=" not in e}
    if name in names or any(e.upper() == "ALL" for e in names):
        return value if value is not None else given.get(name)
    return given.get(name)


#: the flags of ApptainerRun that Apptainer also takes from the environment, as APPTAINER_<FLAG> (SINGULARITY_<FLAG>
#: in older scripts): the flag's name in capitals with _ for -, as ``apptainer exec --help`` lists them
#: ([$APPTAINER_CONTAINALL])
_ENV_FLAGS = ("cleanenv", "contain", "containall", "no_home", "nv", "nvccli", "rocm", "writable", "writable_tmpfs",
              "fakeroot")

#: the values Go's strconv.ParseBool takes for true, which Apptainer's boolean flags use
_TRUE = ("1", "t", "T", "TRUE", "true", "True")


def env_flag(ctx: Context, step: Any, flag: str) -> str:
    """The variable that turns an Apptainer flag on for the step (APPTAINER_CONTAINALL=1 exported above it, or
    given before it), "" when none does. APPTAINER_ wins over SINGULARITY_, as in Apptainer."""
    for prefix in ("APPTAINER_", "SINGULARITY_"):
        name = prefix + flag.upper()
        value = apptainer_env(ctx, step, name)
        if value is not None:
            return name if value.strip().strip("'\"") in _TRUE else ""
    return ""


def as_run(ctx: Context, step: Any, c: Any) -> Any:
    """The step's Apptainer layer as Apptainer runs it: its flags, and those the environment turns on
    (:func:`env_flag`); a flag given on the command line is not turned off by the environment."""
    on = {flag: True for flag in _ENV_FLAGS if not getattr(c, flag) and env_flag(ctx, step, flag)}
    return c.replace(**on) if on else c


SETUP_ONLY = ("source", ".", "export", "module", "ml", "cd", "conda", "mamba", "micromamba", "activate", "spack")

#: the subcommands of the package managers above that only change the environment of the process: conda run
#: runs the work itself, and conda/spack install or env create write files that outlast the container
_ENV_ONLY_SUBCOMMANDS = {"conda": ("activate", "deactivate"), "mamba": ("activate", "deactivate"),
                         "micromamba": ("activate", "deactivate"), "spack": ("load", "unload", "env")}


#: the name of a file sourced to set up an environment (env.sh, bin/activate, ~/.bashrc, setup_vars.sh, …); a file
#: named otherwise (run_job.sh, train.sh) may be the work itself, run in the sourcing shell
_SETUP_FILE = re.compile(r"(?i)env|activate|setup|profile|rc(?:\.\w+)?$|modules?|vars|init|conda|spack|paths?|config")


def _only_sets_up(words: list[str]) -> bool:
    """Whether a command (its words) only changes its own process's environment (source, module load, conda activate).
    A sourced file counts only by a set-up name (env.sh, activate, .bashrc): ``source run_job.sh`` may do the work."""
    if not words or words[0] not in SETUP_ONLY:
        return False
    if words[0] in ("source", ".") and len(words) > 1 and not _SETUP_FILE.search(words[1].rsplit("/", 1)[-1]):
        return False
    subcommands = _ENV_ONLY_SUBCOMMANDS.get(words[0])
    if subcommands is None:
        return True
    if words[0] == "spack" and words[1:2] == ["env"]:
        return words[2:3] in (["activate"], ["deactivate"])
    return words[1:2] != [] and words[1] in subcommands


def _holds_reference(value: Any, task_expands: bool = False) -> bool:
    """Whether a field's value refers to a variable, so its checks cannot be judged here. ``\\$X`` is the literal
    text, which can be judged, except where each task's shell expands it (``task_expands``: srun bash -c '…')."""
    found = (lambda text: "$" in text) if task_expands else _REFERENCE.search
    items = value if isinstance(value, tuple) else (value,)
    return any(found(str(getattr(i, "src", "")) + str(getattr(i, "dst", "")) + str(getattr(i, "value", "")))
               if isinstance(i, Spec) else isinstance(i, str) and found(i) for i in items)


#: a $ that is not the escaped literal \$
_REFERENCE = re.compile(r"(?<!\\)\$")


def _component_problems(ctx: Context, problems_of: Any) -> list[tuple[Any, int, Any]]:
    """``(view, line, problem)`` for the problems ``problems_of(job)`` finds in each later component of a
    heterogeneous job, at the line of the component's directive that sets the field (else its first)."""
    out = []
    for view, (_, line_of) in zip(component_views(ctx), job_components(ctx)[1:]):
        for p in problems_of(view.job):
            field = p.field.split(".", 1)[0]
            out.append((view, line_of("gpus_per_node" if field == "other_gres" else field), p))
    return out


def _in_component(view: Any, problem: Any) -> str:
    return f"component {view.component} of the heterogeneous job: " + problem.message.replace("the job", "the component")


def _first_directive_line(ctx: Context) -> int:
    return ctx.parsed.directives[0].line if ctx.parsed.directives else 1


def job_components(ctx: Context) -> list[tuple[Any, Any]]:
    """``(job, line_of)`` for the job and, in a heterogeneous job, each later component: its model (read from its
    own #SBATCH lines) and a function from a field to the line of the directive that sets it there."""
    out: list[tuple[Any, Any]] = [(ctx.job, ctx.parsed.directive_line)]
    for view in component_views(ctx):
        own = [d for d in ctx.parsed.directives if d.applied and d.component == view.component]

        def line_of(field: str, own: list[Any] = own) -> int:
            return next((d.line for d in reversed(own) if d.field == field), own[0].line if own else 1)
        out.append((view.job, line_of))
    return out


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


_TYPOGRAPHIC_DASH = re.compile(f"[{TYPED_DASHES}]")


def _typographic_option(raw: str) -> bool:
    """Whether a word is an option typed with a typographic dash: at its start (``–-time``) or in its name
    (``--cpus−per-task``); the value after ``=`` is the program's business."""
    name = raw.split("=", 1)[0]
    return bool(name) and (name[0] in TYPED_DASHES or (name[0] == "-" and bool(_TYPOGRAPHIC_DASH.search(name))))


#: signal numbers a --signal or trap may name, by their name without SIG
_SIGNAL_NUMBERS = {"1": "HUP", "2": "INT", "3": "QUIT", "10": "USR1", "12": "USR2", "15": "TERM"}


def _signal_name(text: str) -> str:
    name = text.strip().upper()
    name = name[3:] if name.startswith("SIG") else name
    return _SIGNAL_NUMBERS.get(name, name)


def traps_for(ctx: Context, signal: str) -> list[Any]:
    """The script's ``trap HANDLER SIGNAL…`` commands that name ``signal`` (by name, SIG-name or number), in order;
    ``handler_of`` gives each one's handler ("-" resets the signal, "" ignores it)."""
    return [cmd for cmd in simple_commands(ctx) for words in [[str(v) for v in cmd.argv]]
            if len(words) >= 3 and words[0] == "trap" and any(_signal_name(w) == signal for w in words[2:])]


def handler_of(trap: Any) -> str:
    """The handler a ``trap`` command sets (its first argument)."""
    return str(trap.argv[1])


def trap_handler_code(trap: Any) -> tuple[Any, ...]:
    """The commands of the handler a ``trap HANDLER SIGNAL…`` command sets, lexed as bash reads the handler when
    the signal arrives (their lines count from the handler's first); () when it cannot be lexed or none is set."""
    if len(trap.words) < 3:
        return ()
    # the word as written: its value marks the $ of '… "$pid"' literal (\$), and lexed again it would name no variable
    raw = trap.words[1].raw
    text = raw[1:-1] if len(raw) > 1 and raw[0] == raw[-1] and raw[0] in "'\"" else raw
    try:
        return tuple(lex_script(text).code)
    except ParseError:
        return ()


def trap_handler_commands(ctx: Context, trap: Any) -> list[tuple[int, list[str]]]:
    """``(line, words)`` of each simple command the handler of ``trap`` (a ``trap HANDLER SIGNAL…`` command) runs
    when the signal arrives, in order: the handler lexed as bash reads it then (its commands at the trap's line), and
    after a command that calls one of the script's functions (``trap cleanup USR1``, ``trap 'stop 143' TERM``) the
    commands of that function's body at their own lines, and of the functions it calls in turn. Commands of a
    ``bash -c`` script are left out: they run in a shell of their own. Empty when the handler cannot be lexed."""
    handler = trap_handler_code(trap)
    functions, code = _functions(ctx), _code_in_order(ctx)
    out: list[tuple[int, list[str]]] = []

    def take(commands: Any, line: int | None, called: frozenset[str]) -> None:
        for cmd in _simple_commands(commands):
            if isinstance(cmd, _Inner):
                continue
            words = [str(v) for v in cmd.argv]
            out.append((line or cmd.line, words))
            name = words[0] if words else ""
            if name in functions and name not in called:  # a function that calls itself is read once
                take(compound_body(code[functions[name]][0]), None, called | {name})
    take(handler, trap.line, frozenset())
    return out


def _batch_signal(ctx: Context, *, batch: bool = True) -> tuple[Any, str] | None:
    """The job's ``--signal`` directive and its signal's name when it goes to the batch shell (``B:SIG@TIME``), or
    with ``batch=False`` when it goes to the job's steps only (no ``B:``); else None."""
    found = None
    for d in ctx.parsed.directives:
        if d.applied and not getattr(d, "component", 0) and d.flag == "--signal":
            m = re.fullmatch(r"(?:([RB]{1,2}):)?([A-Za-z0-9]+)(?:@\d+)?", str(d.value).strip())
            found = (d, _signal_name(m.group(2))) if m and ("B" in (m.group(1) or "")) == batch else None
    return found


#: the words that start a loop: a step started in the background there starts again on every pass
_LOOP_WORDS = ("for", "while", "until", "select")


_FUNCTION_DEF = re.compile(r"\s*(?:function\s+([^\s(]+)|([A-Za-z_][\w.:-]*)\s*\(\s*\))")


#: from Slurm 23.11 srun takes the job's --cpus-per-task again (SLURM_CPUS_PER_TASK), which implies --exact
_CPUS_INHERITED_SINCE = (23, 11)


def _code_in_order(ctx: Context) -> tuple[tuple[Any, bool, int], ...]:
    """Every command the script runs, in source order (a compound, then the commands of its body), each with
    whether it sits in a loop and where the compound holding it is in this order (-1 at the top level)."""
    out: list[tuple[Any, bool, int]] = []

    def walk(commands: Any, in_loop: bool, parent: int) -> None:
        for cmd in commands:
            if not cmd.is_code:
                continue
            out.append((cmd, in_loop, parent))
            if cmd.kind == "compound":
                loop = in_loop or (bool(cmd.words) and str(cmd.words[0].value) in _LOOP_WORDS)
                walk(compound_body(cmd), loop, len(out) - 1)

    def make() -> tuple[tuple[Any, bool, int], ...]:
        walk(ctx.parsed.lexed.code, False, -1)
        return tuple(out)
    return cached(ctx, "code_in_order", make)


def is_wait(cmd: Any) -> bool:
    """A ``wait`` builtin: where the batch shell waits for what it started in the background."""
    return cmd.kind == "simple" and bool(cmd.words) and str(cmd.words[0].value) == "wait"


def _function_name(cmd: Any) -> str | None:
    """The name a compound command defines as a function; None for any other command."""
    m = _FUNCTION_DEF.match(cmd.text) if cmd.kind == "compound" else None
    return None if m is None else m.group(1) or m.group(2)


def _functions(ctx: Context) -> dict[str, int]:
    """The script's functions: name → where the definition is in :func:`_code_in_order` (a later one replaces it)."""
    def make() -> dict[str, int]:
        code = _code_in_order(ctx)
        return {name: i for i, (cmd, _, _) in enumerate(code) if (name := _function_name(cmd)) is not None}
    return cached(ctx, "functions", make)


def _is_monitor(step: Any) -> bool:
    """A step that runs a monitor which never ends (srun nvidia-smi dmon), not a container or a launcher."""
    return step.chain.container is None and step.chain.launcher is None \
        and _never_ends([str(w) for w in step.chain.program])


def _never_ends(words: list[str]) -> bool:
    """Whether a step's program runs until it is killed: a monitor that repeats (nvidia-smi dmon/pmon or -l/--loop,
    watch), tail -f, sleep infinity."""
    if not words:
        return False
    program, args = words[0].rsplit("/", 1)[-1], words[1:]
    if program == "nvidia-smi":
        if any(a in ("dmon", "pmon") for a in args):
            return not any(a == "-c" or a.startswith(("-c=", "--count")) for a in args)  # dmon -c 10: ten samples
        return any(re.fullmatch(r"-l(?:ms)?(?:=?\d+)?|--loop(?:-ms)?(?:=\d+)?", a) for a in args)
    if program == "watch":
        return True
    if program == "tail":
        return any(re.fullmatch(r"-[A-Za-z]*[fF][A-Za-z]*|--follow(?:=\w+)?", a) for a in args)
    return program == "sleep" and args[:1] == ["infinity"]


_REGISTRY_PASSWORD = re.compile(r"^(APPTAINER|SINGULARITY)(ENV)?_DOCKER_PASSWORD$|^(DOCKER|REGISTRY|NGC)_PASSWORD$")


_TOKEN_NAME = re.compile(r"^(APPTAINERENV_|SINGULARITYENV_)?([A-Z0-9_]*(API_KEY|_TOKEN|TOKEN|SECRET|SECRET_KEY|"
                         r"ACCESS_KEY|PASSWORD))$")


#: a value given as the default of a parameter expansion: ${NAME:-default}, ${NAME-default}, ${NAME:=default}
_DEFAULT_VALUE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?[-=](.+)\}")


#: what every user of the cluster can see of a job: its owner's name and id (squeue, ls -l), the job's id and name,
#: the node it runs on
_PUBLIC_PART = (r"\$\{?(?:USER|LOGNAME|UID|SLURM_JOB_?ID|SLURM_JOB_NAME|SLURM_JOB_USER|SLURM_JOB_UID|HOSTNAME|"
                r"SLURMD_NODENAME|SLURM_SUBMIT_HOST)\}?|\$\((?:whoami|id -un|id -u|hostname(?: -[sf])?)\)")
_GUESSABLE = re.compile(rf"(?:{_PUBLIC_PART}|[\w.@:+-])*(?:{_PUBLIC_PART})(?:{_PUBLIC_PART}|[\w.@:+-])*")


def guessable_token(value: str) -> bool:
    """Whether a token is made of what every user of the cluster can see (``$USER``, ``${USER}-$SLURM_JOB_ID``,
    ``$(whoami)``) and plain characters: anyone can work it out."""
    text = str(value)
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return _GUESSABLE.fullmatch(text) is not None


#: what to say of a token made of public parts
GUESSABLE_TOKEN = ("is made of what every user of the cluster can see (your user name, the job's id and node: squeue "
                   "shows them), so anyone can work it out and use the server as you; make a random one when the job "
                   "runs: JUPYTER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')")


#: a value that stands for a key still to be filled in (YOUR_WANDB_API_KEY, your_token_here, <api-key>, xxxx,
#: changeme): no secret is written, and the program's login fails until it is replaced
_SECRET_PLACEHOLDER = re.compile(r"(?i)(?:your|my|insert|enter|put|add|paste|replace)(?:[_.-][\w.-]*)?|[\w.-]*[_-](?:here|goes)"
                                 r"|<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\}|x{3,}|\*{3,}|\.{3}|…|changeme|placeholder|todo|tbd|"
                                 r"none|null|dummy|redacted")


def _secret_message(name: str, value: str) -> str | None:
    """What to say about ``name=value`` written in the script, or None when it holds no secret. Jupyter's
    token is a password to a shell as you, so any fixed one counts (even a short one); the value
    Jupyter jobs should pass, a token the job makes when it runs (``JUPYTER_TOKEN="$tok"``), is no literal."""
    m = _TOKEN_NAME.match(name)
    text = str(value)
    default = _DEFAULT_VALUE.fullmatch(text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text)
    if m and default and not _REGISTRY_PASSWORD.match(name):
        written = default.group(1)
        if len(written) >= 2 and written[0] == written[-1] and written[0] in "'\"":
            written = written[1:-1]
        if "$" not in written and "`" not in written and len(written) >= 8:
            return (f"{name} holds a secret written in the script, as the default of ${{…:-…}}: it is used whenever "
                    "the variable is not set, and anyone who reads the script has it; log in once or source a private "
                    "file instead")
    if m and m.group(2) == "JUPYTER_TOKEN" and guessable_token(value):
        return f"{name}={value}: the Jupyter token {GUESSABLE_TOKEN}"
    if not m or _REGISTRY_PASSWORD.match(name) or not is_literal(value) or _SECRET_PLACEHOLDER.fullmatch(value):
        return None
    if m.group(2) == "JUPYTER_TOKEN":
        if not value:
            return None  # empty: Jupyter makes a random token itself
        return (f"{name} holds a fixed Jupyter token written in the script: anyone who reads the script (in git, in "
                "Slurm's records) can use the server as you; leave it unset (Jupyter makes a random one) or make one "
                "when the job runs: JUPYTER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')")
    if len(value) < 8:
        return None
    return f"{name} holds a secret written in the script; log in once or source a private file instead"


class _Inner:
    """A simple command read from the ``bash -c`` script of ``outer``: its own words, assignments and
    redirections, reported at ``outer``'s line (which a fix must not rewrite)."""

    def __init__(self, cmd: Any, outer: Any) -> None:
        self.cmd, self.outer = cmd, outer
        self.line, self.argv, self.assignments, self.redirects = outer.line, cmd.argv, cmd.assignments, cmd.redirects


def _shell_c_script(cmd: Any) -> Any:
    """The commands of the script a ``bash -c``/``sh -c`` in ``cmd`` runs (after srun, in a container …), lexed;
    () when there is none or it cannot be read."""
    word = _shell_c_word(cmd.words)
    text = shell_script_text(word.value) if word is not None else None
    try:
        return lex_script(text).code if text else ()
    except ParseError:
        return ()


def _simple_commands(commands: Any, outer: Any = None) -> Iterator[Any]:
    """The simple commands of a script, also those inside functions, loops and ``if``s and in the scripts of
    ``bash -c '…'`` (as :class:`_Inner`), in order."""
    for cmd in commands:
        if cmd.kind == "compound":
            yield from _simple_commands(compound_body(cmd), outer)
        elif cmd.kind == "simple":
            yield cmd if outer is None else _Inner(cmd, outer)
            yield from _simple_commands(_shell_c_script(cmd), outer or cmd)


def python_code(words: list[str]) -> str | None:
    """The code of the first ``python -c CODE`` among ``words`` (``python3 -u -c …`` too), or None."""
    for i, word in enumerate(words):
        if not _PYTHON.fullmatch(word.rsplit("/", 1)[-1]):
            continue
        j = i + 1
        while j < len(words) and re.fullmatch(r"-[A-Za-z]+", words[j]):
            if words[j].endswith("c"):
                return words[j + 1] if j + 1 < len(words) else None
            j += 2 if words[j] in ("-W", "-X") else 1
        return None
    return None


def ast_name(node: ast.AST) -> str:
    """The name a Python expression ends in: ``Trainer`` for ``pl.Trainer`` or ``Trainer``; "" for anything else."""
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""

