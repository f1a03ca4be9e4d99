"""The rule catalogue. Each rule's docstring-free metadata lives in its ``@rule`` call."""

from __future__ import annotations

import dataclasses
import re
import shlex
from typing import Any, Iterator

from ..errors import ParseError
from ..parse.lexer import compound_body, first_command_line, lex_script
from ..parse.script import c_script_in, launch_words, python_module, shell_c_script, shell_script_text
from ..spec._meta import Spec
from ..spec._words import Verbatim, passed_text
from ..spec.argv import model_words
from ..spec.common import ARRAY_WORD, Bind, bind_destination, kept_reference
from ..spec.jupyter import server_start
from ..spec.slurm import (SBATCH_ALIASES, SBATCH_OPTIONS, STRAY_DIRECTIVE, TYPED_DASH, TYPED_DASHES, array_task_ids,
                          binds_per_task, gpu_total, keyboard_option, node_range, sbatch_long_option, sbatch_option,
                          SlurmJob, Srun)
from ..spec.torchrun import DEFAULT_RDZV_PORT, HEAD_NODE_LINE, HEAD_NODE_VAR
from . import Context, Fix, rule

NODELIST_VARS = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
#: a reference to a node list (a compressed one: gpu[01-02])
_NODELIST_REF = re.compile(r"\$\{?(?:" + "|".join(NODELIST_VARS) + r")\}?")


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


def as_int(ctx: Context, value: Any, line: int) -> int | None:
    """A number, also through the script's variables and the job's own Slurm variables."""
    if isinstance(value, int):
        return value
    text = ctx.parsed.resolve(str(value), line)
    if re.fullmatch(r"\d+", text):
        return int(text)
    job = ctx.job
    known = {
        "SLURM_NTASKS_PER_NODE": job.ntasks_per_node,
        "SLURM_NNODES": job.nodes or 1,
        "SLURM_JOB_NUM_NODES": job.nodes or 1,
        "SLURM_GPUS_ON_NODE": job.gpus_on_each_node or None,
        "SLURM_CPUS_PER_TASK": job.cpus_per_task,
        "SLURM_NTASKS": job.ntasks,
    }
    m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", text)
    if heterogeneous(ctx):
        return None  # the job's own variables describe more than the first component the model holds
    value = known.get(m.group(1)) if m else None
    # a count the job holds as text (--nodes=2-4) is no single number
    return value if value.__class__ is int else None


def job_tasks(ctx: Context) -> int | None:
    """The job's task count (``SLURM_NTASKS``), which srun inherits as its own ``--ntasks``."""
    job = ctx.job
    nodes = job.nodes if isinstance(job.nodes, int) else 1
    if isinstance(job.ntasks, int):
        return job.ntasks
    if isinstance(job.ntasks_per_node, int):
        return job.ntasks_per_node * nodes
    return None


def tasks_per_node(ctx: Context, step: Any) -> int | None:
    """How many copies of the step's command run on each node.

    srun inside a job inherits ``SLURM_NTASKS`` as ``--ntasks`` (seen on Slurm 22.05), and a task count
    wins over ``--ntasks-per-node``: ``srun --ntasks-per-node=1`` in a job of 2 nodes × 4 tasks still
    starts 4 tasks per node unless ``--ntasks`` is given too.
    """
    srun = step.chain.srun
    if srun is None:
        return 1
    job = ctx.job
    nodes = srun.nodes if isinstance(srun.nodes, int) else (job.nodes if isinstance(job.nodes, int) else 1)
    nodes = max(nodes, 1)
    if isinstance(srun.ntasks, int):
        return -(-srun.ntasks // nodes)
    inherited = job_tasks(ctx)
    if isinstance(srun.ntasks_per_node, int):
        if inherited is not None and inherited > srun.ntasks_per_node * nodes:
            return -(-inherited // nodes)
        return srun.ntasks_per_node
    if inherited is not None:
        return -(-inherited // nodes)
    return 1


def job_nodes(ctx: Context) -> int:
    """Nodes the job runs on: at least the MIN of a ``--nodes=MIN-MAX`` range."""
    return ctx.job.node_count


#: signs in a script that its GPUs are AMD ones: a ROCm image or module, ROCm's variables, an Instinct gres type,
#: the GPU partitions and modules of LUMI (whose GPUs are all AMD: small-g, standard-g, dev-g, lumi-* modules)
_AMD_SIGNS = re.compile(r"rocm|\b(?:ROCR|HIP)_VISIBLE_DEVICES\b|\bMIOPEN_|\bHSA_[A-Z_]+=|[:=]mi[123]\d\d[a-z]?\b"
                        r"|--partition[= ](?:small|standard|dev)-g\b|-p\s*(?:small|standard|dev)-g\b|\blumi-", re.I)


def profile_vendor(ctx: Context) -> str:
    """The vendor of the GPUs the job gets by the profile: that of the partition it runs on (a site may have NVIDIA
    and AMD partitions), else the profile's; "" without a profile, or where the profile cannot tell (a partition
    with both vendors and a job that names no GPU type)."""
    if ctx.profile is None:
        return ""
    return cached(ctx, "profile_vendor", lambda: str(ctx.profile.vendor_for(ctx.job) or ""))


def gpu_vendor(ctx: Context) -> str:
    """The GPU vendor by the profile (:func:`profile_vendor`); where it cannot tell, "amd" when the script shows
    signs of AMD GPUs (a ROCm image, ``--gpus-per-node=mi250:8``, ``ROCR_VISIBLE_DEVICES``), else "nvidia"."""
    vendor = profile_vendor(ctx)
    if vendor:
        return vendor
    return "amd" if shows_amd(ctx) else "nvidia"


def shows_amd(ctx: Context) -> bool:
    """Whether the script itself shows AMD GPUs (see :data:`_AMD_SIGNS`), whatever the profile says."""
    return cached(ctx, "shows_amd", lambda: _AMD_SIGNS.search(ctx.parsed.source) is not None)


def cached(ctx: Context, key: str, make: Any) -> Any:
    """A value computed once per linted script (rules share look-ups such as the job's problems)."""
    store = ctx.__dict__.setdefault("_cache", {})
    if key not in store:
        store[key] = make()
    return store[key]


LEGACY_NOTE = "python -m torch.distributed.launch is deprecated; use torchrun"


def steps(ctx: Context) -> tuple[Any, ...]:
    """The script's launch steps, with ``python -m torch.distributed.launch`` read as a launcher also
    when it runs under srun or in a container (the reader only does that at the top level)."""
    return cached(ctx, "steps", lambda: tuple(_upgrade(s) for s in ctx.steps))


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
    """``step_fix``, or None when rebuilding the step from its model would change what it does: the
    deprecated launcher (ranks are passed differently), a step read from inside ``bash -c "…"`` (the
    other commands there and the per-task expansion would be lost), an unquoted ``$VAR`` that bash
    splits into several words (quoting it would make one word), or a program written with its path
    (``/usr/local/bin/torchrun`` would become ``torchrun``), or one read past a wrapper after srun or a
    container (``srun env -u X torchrun``: no layer holds ``env -u X``)."""
    if is_legacy(step) or step.wrapper or step.looked_through or \
            any(" is written as " in note for note in step.chain.notes):
        return None
    if any(ctx.parsed.may_split(w, step.line) for w in step.command.words):
        return None  # quoting it would make one word: keep the line as written
    return step_fix(description, step, chain, before)


def with_chain(chain: Any, **layers: Any) -> Any:
    values = {"srun": chain.srun, "container": chain.container, "launcher": chain.launcher,
              "program": chain.program, "notes": chain.notes}
    values.update(layers)
    return type(chain)(**values)


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


def raw_text(cmd: Any) -> str:
    return " ".join(w.raw for w in all_words(cmd))


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


def image_refs(ctx: Context) -> list[tuple[int, str]]:
    """Every image the script runs or pulls, resolved through its variables: ``(line, reference)``."""
    def make() -> list[tuple[int, str]]:
        out = [(s.line, ctx.parsed.resolve(str(c.image), s.line)) for s, c in containers(ctx) if c.image]
        for cmd, model in pulls(ctx):
            src = getattr(model, "source", "")
            if src:
                out.append((cmd.line, ctx.parsed.resolve(str(src), cmd.line)))
        return out
    return cached(ctx, "images", make)


def pulls(ctx: Context) -> list[tuple[Any, Any]]:
    """``(command, model)`` for ``apptainer pull`` / ``ch-image pull`` commands at the top level."""
    def make() -> list[tuple[Any, Any]]:
        from ..errors import ParseError
        from ..parse.argv import parse_argv, recognise
        out = []
        for cmd in simple_commands(ctx):
            words = [str(v) for v in cmd.argv]
            found = recognise(words)
            if found is None or found[0].cls.kind not in ("apptainer.pull", "charliecloud.pull"):
                continue
            try:
                out.append((cmd, parse_argv(cmd.argv).model))
            except ParseError:
                continue
        return out
    return cached(ctx, "pulls", make)


def is_guarded(ctx: Context, cmd: Any) -> bool:
    """True when a command only runs after a test (``[ -f X ] || cmd``, ``test -e X || cmd``)."""
    code = simple_commands(ctx)
    idx = code.index(cmd)
    return idx > 0 and code[idx - 1].joined_by in ("||", "&&")


def multi_node(ctx: Context, launcher: Any = None) -> bool:
    if job_nodes(ctx) > 1:
        return True
    n = launcher.nnodes_int if launcher is not None else None
    return n is not None and n > 1


def heterogeneous(ctx: Context) -> bool:
    """A heterogeneous job (``#SBATCH hetjob`` between components): ``ctx.job`` is only its first component."""
    return ctx.parsed.heterogeneous


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


def count_fix(ctx: Context, description: str, step: Any, chain: Any, before: tuple[str, ...] = ()) -> Fix | None:
    """``fix_for`` for a rule that compares a step with the job's counts: none in a heterogeneous job, where
    those counts are one component's and the model of the job is not the whole of it."""
    if heterogeneous(ctx):
        return None
    return fix_for(ctx, description, step, chain, before)


# --------------------------------------------------------------------------------------------
# distributed launch

@rule("HPC101", "torchrun-oversubscribes", "error",
      summary="srun starts several torchrun (or accelerate launch) launchers per node, each starting its own workers",
      why="torchrun already starts --nproc-per-node workers, and each launcher numbers its own workers LOCAL_RANK "
          "0, 1, …: with several launchers on a node they all pick the same GPUs (GPU 0 for every LOCAL_RANK 0) while "
          "the others stay idle. With --ntasks-per-node=G as well as --nproc-per-node=G, every node runs G×G processes "
          "on G GPUs: GPUs are oversubscribed and the run fails with 'Address already in use', runs out of memory or "
          "hangs. python -m torch.distributed.launch is torchrun under its old name, and accelerate launch "
          "starts one machine's processes (--num_processes / --num_machines) through torchrun's code: the same "
          "happens with them (with accelerate the launchers of a node also share one --machine_rank when it is "
          "$SLURM_NODEID). Not reported when each task has GPUs of its own: --gpus-per-task implies "
          "--gpu-bind=per_task, so each launcher sees only its own task's GPUs (a launcher that starts more "
          "workers than those is reported; one that starts fewer leaves GPUs idle, HPC109), and for accelerate "
          "also --gpu_ids or CUDA_VISIBLE_DEVICES; nor when DeepSpeed's multi-node launcher starts the machines.",
      fix="Start one launcher per node: srun --ntasks=NODES --ntasks-per-node=1 (srun inherits the job's task "
          "count, SLURM_NTASKS, which otherwise wins over --ntasks-per-node; the job may keep more tasks), and "
          "--nproc-per-node equal to the GPUs per node (accelerate: --num_machines=NODES and --num_processes = "
          "NODES × GPUs per node). In a job of --gpus-per-task, give that one task the node's GPUs "
          "(srun --gpus-per-task=GPUS_PER_NODE): srun takes the job's count per task, SLURM_GPUS_PER_TASK, too.",
      catalogue=(1, 28),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun apptainer exec --nv img.sif torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d \\
  --rdzv-endpoint="$head_node:29500" --rdzv-id="$SLURM_JOB_ID" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun --ntasks=2 --ntasks-per-node=1 apptainer exec --nv img.sif torchrun --nnodes=2 --nproc-per-node=4 \\
  --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" --rdzv-id="$SLURM_JOB_ID" train.py
""")
@each_component
def _oversubscribe(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or step.chain.srun is None:
            continue
        per_node = tasks_per_node(ctx, step)
        own = own_task_gpus(ctx, step)
        nproc = as_int(ctx, launcher.nproc_per_node, step.line)
        if launcher.nproc_per_node in ("gpu", "auto"):
            nproc = own or ctx.job.gpus_on_each_node or None  # one worker per GPU the launcher sees
        if not per_node or per_node < 2 or (nproc is not None and nproc < 1):
            continue
        if own and (nproc is None or nproc <= own):
            continue  # each launcher sees only its own task's GPUs: none are shared (HPC109 reports idle ones)
        chain, advice, fixable = _one_launcher_per_node(ctx, step, per_node)
        msg = (_launchers_on_own_gpus(launcher, per_node, own) if own
               else _launchers_share_gpus(launcher, per_node, nproc, ctx.job.gpus_on_each_node))
        if isinstance(step.chain.srun.ntasks_per_node, int) and step.chain.srun.ntasks_per_node == 1:
            msg += "; srun inherits the job's task count, so its --ntasks-per-node=1 alone is not enough"
        msg += "; " + advice
        yield step.line, msg, count_fix(ctx, advice, step, chain) if fixable else None
    yield from _accelerate_launchers_per_node(ctx)


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


def _launchers_share_gpus(launcher: Any, per_node: int, nproc: int | None, gpus: int) -> str:
    """HPC101's account of launchers that all see the node's GPUs: each numbers its workers from LOCAL_RANK 0."""
    workers = (f"{per_node}×{nproc}={per_node * nproc} processes per node" if nproc
               else f"{per_node} times the processes per node that one launcher starts")
    if not launcher.nproc_per_node:  # given where the reader cannot see it ("${DIST[@]}"), or torchrun's default
        return (f"srun starts {per_node} torchrun launchers on each node and each starts its own workers: {workers}; "
                f"every launcher numbers its own workers from LOCAL_RANK 0, so the {per_node} launchers on a node "
                "share the same GPUs")
    local = ("LOCAL_RANK 0" if nproc == 1 else f"LOCAL_RANK 0-{nproc - 1}") if nproc else "from LOCAL_RANK 0"
    shared = ("GPU 0" if nproc == 1 else f"GPUs 0-{nproc - 1}") if nproc else "GPU 0 upwards"
    return (f"srun starts {per_node} torchrun launchers on each node and each starts "
            f"--nproc-per-node={launcher.nproc_per_node} workers: {workers}"
            + (f" for {gpus} GPUs" if gpus else "")
            + f"; every launcher numbers its own workers {local}, so the {per_node} launchers on a node "
              f"share the same GPU{'s' if nproc != 1 else ''} ({shared})"
            + (f" while the other {gpus - nproc} stay idle" if gpus and nproc and gpus > nproc else ""))


def _launchers_on_own_gpus(launcher: Any, per_node: int, own: int) -> str:
    """HPC101's account of launchers in tasks of their own GPUs that start more workers than those GPUs."""
    plural = "s" if own > 1 else ""
    return (f"srun starts {per_node} torchrun launchers on each node, each in a task that sees only its own {own} "
            f"GPU{plural} (--gpus-per-task binds them per task), and each starts "
            f"--nproc-per-node={launcher.nproc_per_node} workers: the workers beyond {own} of every launcher find "
            f"no GPU of their own (invalid device ordinal)")


def _one_launcher_per_node(ctx: Context, step: Any, per_node: int) -> tuple[Any, str, bool]:
    """HPC101's remedy: one launcher per node, with the node's GPUs and the CPUs its launchers had. Returns the
    changed chain, the advice (which names every option the chain changes, so the message and --fix agree) and
    whether the chain may replace the step."""
    launcher, gpus = step.chain.launcher, ctx.job.gpus_on_each_node
    nodes = _step_nodes(ctx, step)  # srun -N1 -n4: one launcher on the step's one node, not the job's
    srun = step.chain.srun.replace(ntasks_per_node=1, ntasks=nodes)
    # GPUs counted per task (srun's own --gpus-per-task, or the job's, which srun takes from
    # SLURM_GPUS_PER_TASK) would leave the one launcher a single task's GPUs: it gets the node's
    per_task = step.chain.srun.gpus_per_task is not None or inherited_per_task(ctx, step) is not None
    if per_task:
        srun = srun.replace(gpus_per_task=gpus or None)
    # the one launcher gets the CPUs its launchers shared, for its workers (srun's own value, else the
    # job's), but never more than the job holds on a node: srun refuses a step that asks for more
    cpus = step.chain.srun.cpus_per_task
    if cpus is None:
        cpus = ctx.job.cpus_per_task
    if cpus is None:
        cpus = 1  # each launcher had srun's default of one CPU (and its --mem-per-cpu): keep them all
    if cpus.__class__ is int and cpus > 0:
        held = ctx.job.cpus_per_task * ctx.job.ntasks_per_node if isinstance(ctx.job.cpus_per_task, int) \
            and isinstance(ctx.job.ntasks_per_node, int) else None
        srun = srun.replace(cpus_per_task=min(cpus * per_node, held) if held else cpus * per_node)
    new_nproc = str(gpus) if gpus else launcher.nproc_per_node
    chain = type(step.chain)(srun, step.chain.container, launcher.replace(nproc_per_node=new_nproc),
                             step.chain.program, step.chain.notes)
    # a run in the background or on GPUs picked by hand (CUDA_VISIBLE_DEVICES=1 srun … &) is one of
    # several sharing the node: giving it every GPU and CPU would make them queue one after another
    shared_node = step.command.joined_by == "&" or "CUDA_VISIBLE_DEVICES" in dict(step.env)
    whole = not per_task or bool(gpus)  # GPUs per task and no count of the node's: the fix cannot be whole
    fixable = whole and not shared_node
    advice = (f"start one torchrun per node: use srun --ntasks={nodes} --ntasks-per-node=1 so torchrun starts one "
              f"worker per GPU, with --nproc-per-node={new_nproc if gpus else 'the GPUs per node'}")
    more = [f"--gpus-per-task={gpus or 'GPUS_PER_NODE'} (all the node's GPUs for its one task)"] \
        if per_task and not shared_node else []
    if fixable and srun.cpus_per_task != step.chain.srun.cpus_per_task:
        more.append(f"--cpus-per-task={srun.cpus_per_task} (the CPUs its launchers had)")
    if more:
        advice += "; give that srun " + " and ".join(more)
    return chain, advice, fixable


def _picks_gpus(step: Any) -> bool:
    """The step hands out GPUs itself: CUDA_VISIBLE_DEVICES before it or in its bash -c script."""
    return "CUDA_VISIBLE_DEVICES" in dict(step.env) or any("CUDA_VISIBLE_DEVICES" in w.raw for w in step.command.words)


def _accelerate_launchers_per_node(ctx: Context) -> Iterator[Any]:
    """HPC101 for accelerate launch: each launcher starts one machine's processes, numbered from LOCAL_RANK 0,
    so several launchers on a node share its first GPUs. Not when each task gets GPUs of its own (--gpu_ids,
    --gpus-per-task, CUDA_VISIBLE_DEVICES), on CPUs, or when DeepSpeed's own launcher starts the machines."""
    if ctx.job.gpus_per_task:
        return
    for launch in other_launches(ctx):
        step, opts = launch.step, launch.options
        if launch.name != "accelerate launch" or launch.srun is None or not in_job_component(ctx, step):
            continue
        per_node = tasks_per_node(ctx, step) or 1
        machines = launch.machines(ctx)
        if per_node < 2 or accelerate_path(launch, machines) == "once" or getattr(launch.srun, "gpus_per_task", None) \
                or "--gpu_ids" in opts or "--cpu" in opts or _picks_gpus(step):
            continue
        processes = launch.number(ctx, "--num_processes")
        each = processes // machines if processes and machines else None
        gpus, nodes = ctx.job.gpus_on_each_node, _step_nodes(ctx, step)
        if each:
            started = (f"each starts its own {each} process{'es' if each > 1 else ''} (--num_processes {processes} / "
                       f"--num_machines {machines}): {per_node}×{each}={per_node * each} processes per node"
                       + (f" for {gpus} GPUs" if gpus else ""))
        else:
            started = "each starts the processes of a whole machine"
        rank = opts.get("--machine_rank", "")
        same_rank = ("; all launchers of a node also claim the same --machine_rank (" + rank + ")"
                     if "SLURM_NODEID" in rank else "")
        yield (step.line, f"srun starts {per_node} accelerate launchers on each node and {started}; every launcher "
                          "numbers its processes from LOCAL_RANK 0, so the launchers of a node share the same GPUs"
                          f"{same_rank}; start one launcher per node: srun --ntasks={nodes} --ntasks-per-node=1, "
                          f"with --num_machines {nodes}"
                          + (f" and --num_processes {nodes * gpus} (the total over all machines)" if gpus else ""))


@rule("HPC102", "rendezvous-node-list", "error",
      summary="the rendezvous endpoint (or accelerate's --main_process_ip) is a node list, not the head node",
      why="$SLURM_JOB_NODELIST and $SLURM_STEP_NODELIST hold compressed lists such as gpu[01-02]; torchrun "
          "cannot connect to that, so the nodes never meet and the job hangs until its time limit. accelerate "
          "launch passes --main_process_ip to torchrun as the rendezvous host, with the same result. So does the "
          "first element of an array assigned one quoted list, nodes_array=(\"$nodes\") with nodes=$(scontrol show "
          "hostnames …): the quotes make the whole list one element.",
      fix="Resolve the first node on the host before the step: "
          "head_node=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | sed -n 1p), then "
          "--rdzv-endpoint=\"$head_node:29500\".",
      catalogue=(2,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=$SLURM_STEP_NODELIST:29500 train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""")
@each_component
def _nodelist_endpoint(ctx: Context) -> Iterator[Any]:
    for step in steps(ctx):
        launcher = step.chain.launcher
        whole = next((f"--{name.replace('_', '-')} uses {found}" for name in ("rdzv_endpoint", "master_addr")
                      if launcher is not None and getattr(launcher, name, "")
                      for found in [_whole_list_element(ctx, str(getattr(launcher, name)), step.line)] if found), None)
        if whole is not None:
            yield step.line, whole
            continue
        if launcher is None or not launcher.rdzv_endpoint:
            continue
        endpoint = ctx.parsed.resolve(launcher.rdzv_endpoint, step.line)
        hit = next((v for v in NODELIST_VARS if f"${v}" in endpoint or "${" + v + "}" in endpoint), None)
        if hit is None or "scontrol" in endpoint:
            continue
        port = endpoint.rsplit(":", 1)[1] if ":" in endpoint and endpoint.rsplit(":", 1)[1].isdigit() else str(DEFAULT_RDZV_PORT)
        chain = type(step.chain)(step.chain.srun, step.chain.container,
                                 launcher.replace(rdzv_endpoint=f"${HEAD_NODE_VAR}:{port}",
                                                  rdzv_backend=launcher.rdzv_backend or "c10d"),
                                 step.chain.program, step.chain.notes)
        has_head = ctx.parsed.variable(HEAD_NODE_VAR, step.line) is not None
        yield (step.line, f"--rdzv-endpoint uses ${hit}, a node list (e.g. gpu[01-02]), not one host; "
                          f"resolve the head node on the host with scontrol show hostnames and use $head_node:{port}",
               fix_for(ctx, "rendezvous at the head node resolved on the host", step, chain,
                        () if has_head else (HEAD_NODE_LINE,)))
    for launch, kind, value in _accelerate_hosts(ctx):
        if kind == "nodelist":
            yield (launch.line, f"--main_process_ip {value} is a node list (e.g. gpu[01-02]), not one host, and accelerate "
                                "hands it to torchrun as the rendezvous host: the nodes never meet; resolve the head node "
                                "on the host with scontrol show hostnames and pass it")


#: an array assigned one double-quoted expansion (``nodes_array=("$nodes")``): one element, the whole value
_ONE_QUOTED_ELEMENT = re.compile(r'\(\s*"\$\{?([A-Za-z_]\w*)\}?"\s*\)')
#: a reference to a variable or to the first element of an array (``$head_node``, ``${nodes_array[0]}``)
_FIRST_ELEMENT_REF = re.compile(r"\$\{([A-Za-z_]\w*)(\[0\])?\}|\$([A-Za-z_]\w*)")
#: a value that is the job's whole host list, one host per line, or its compressed form
_HOST_LIST = re.compile(r'\$\(\s*scontrol\s+show\s+hostnames?\s+[^|;&`)]*\)|"?' + _NODELIST_REF.pattern + '"?')


def _whole_list_element(ctx: Context, text: str, line: int, depth: int = 4) -> str | None:
    """How ``text`` uses an array element that holds the whole node list, also through variables
    (``head_node=${nodes_array[0]}``), and why (the array's assignment), or None. Only the form the reader is
    sure of: the array's one element is a quoted expansion of a variable assigned ``$(scontrol show hostnames
    …)`` (nothing piped after it) or ``$SLURM_JOB_NODELIST``. Unquoted, ``nodes_array=($nodes)`` splits it
    into one host per element, and element 0 is the head node."""
    for m in _FIRST_ELEMENT_REF.finditer(text):
        name = m.group(1) or m.group(3)
        var = ctx.parsed.variable(name, line)
        if var is None:
            continue
        one = _ONE_QUOTED_ELEMENT.fullmatch(str(var.value).strip())
        listed = ctx.parsed.variable(one.group(1), var.line) if one else None
        if listed is not None and _HOST_LIST.fullmatch(str(listed.value).strip()):
            return (f"${{{name}[0]}}, the whole node list, not its first host: {name}=(\"${one.group(1)}\") (line "
                    f"{var.line}) makes one element of all of ${one.group(1)} (line {listed.line}), so the nodes never "
                    f"meet; write {name}=(${one.group(1)}) without the quotes (one host per element)")
        if not one and not m.group(2) and depth > 0:
            found = _whole_list_element(ctx, str(var.value), var.line, depth - 1)
            if found is not None:
                return found
    return None


def _accelerate_hosts(ctx: Context) -> Iterator[tuple[Any, str, str]]:
    """accelerate launches over several machines whose --main_process_ip (the rendezvous host) cannot work:
    ``(launch, kind, value)`` with kind "nodelist" ($SLURM_JOB_NODELIST), "local" (localhost, 127.0.0.1) or
    "missing" (not given, and no config file may give it)."""
    if job_nodes(ctx) < 2:
        return
    for launch in other_launches(ctx):
        machines = launch.number(ctx, "--num_machines")
        if launch.name != "accelerate launch" or machines is None or machines < 2 \
                or (launch.step is not None and not in_job_component(ctx, launch.step)):
            continue
        path = accelerate_path(launch, machines)
        if launch.srun is None and path == "per_machine":
            continue  # HPC110: started in the batch shell, the other machines never start at all
        value = launch.options.get("--main_process_ip")
        if value is None:
            if path == "per_machine" and "--config_file" not in launch.options:
                yield launch, "missing", ""
            continue
        host = ctx.parsed.resolve(value, launch.line)
        if any(f"${v}" in host or "${" + v + "}" in host for v in NODELIST_VARS) and "scontrol" not in host:
            yield launch, "nodelist", value
        elif host.strip("\"'") in LOCAL_HOSTS:
            yield launch, "local", value


#: ``accelerate launch`` options that take no value (every other option takes one)
_ACCELERATE_SWITCHES = frozenset({
    "--cpu", "--multi_gpu", "--tpu", "--use_deepspeed", "--use_fsdp", "--use_megatron_lm", "--use_xpu", "--ipex",
    "--mps", "-m", "--module", "--no_python", "--debug", "-q", "--quiet", "--same_network", "--downcast_bf16",
    "--enable_cpu_affinity", "--tpu_use_cluster", "--tpu_use_sudo"})
#: ``deepspeed`` (launcher) options that take no value
_DEEPSPEED_SWITCHES = frozenset({
    "--module", "--no_python", "--no_local_rank", "--no_ssh", "--no_ssh_check", "--force_multi", "--save_pid",
    "--elastic_training", "--bind_cores_to_rank"})
#: an accelerate config file named for DeepSpeed (ds_zero3.yaml, deepspeed_multinode.yaml, zero2.yaml): its
#: multi-node launcher (pdsh by default) starts the other machines from the first one
_DEEPSPEED_CONFIG = re.compile(r"(?i)(^|[^a-z])(ds|deepspeed|zero[0-9]?)([^a-z]|$)")
#: programs that start work on other nodes themselves (besides srun)
_REMOTE_STARTERS = ("srun", "mpirun", "mpiexec", "pdsh", "clush", "ssh")


def _launcher_options(args: list[str], switches: frozenset[str]) -> dict[str, str]:
    """A launcher's own options up to its script, as ``--name_with_underscores`` → value ("" for a switch)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        word = args[i]
        if not word.startswith("-") or word == "--":
            break
        name, eq, value = word.partition("=")
        if name.startswith("--"):
            name = "--" + name[2:].replace("-", "_")
        if eq or name in switches:
            out[name] = value
            i += 1
        else:
            out[name] = args[i + 1] if i + 1 < len(args) else ""
            i += 2
    return out


def _batch_shell_launchers(ctx: Context) -> list[tuple[int, str, list[str]]]:
    """``accelerate launch`` and ``deepspeed`` started in the batch shell (not by srun), on the host or in a
    container: ``(line, launcher, its arguments)``."""
    found: dict[int, tuple[int, str, list[str]]] = {}
    candidates = [(cmd.line, [str(v) for v in cmd.argv]) for cmd in simple_commands(ctx)]
    candidates += [(s.line, [str(w) for w in s.chain.program]) for s in steps(ctx)
                   if s.chain.srun is None and s.chain.launcher is None]
    candidates += [(h.line, [str(w) for w in h.argv]) for h in held_commands(ctx)]
    for line, words in candidates:
        call = _launcher_call(words)
        if call is not None:
            found[line] = (line, *call)
    return [found[k] for k in sorted(found)]


def _launcher_call(words: list[str]) -> tuple[str, list[str]] | None:
    """``("accelerate launch" | "deepspeed", its arguments)`` when ``words`` (past ``exec``, ``env A=1`` …) start
    one of these launchers, else None."""
    words = launch_words([str(w) for w in words])
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
    return OtherLaunch(line, name, options, step)


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


def _starts_elsewhere(ctx: Context) -> bool:
    """The script runs something that starts work on other nodes (srun, mpirun, pdsh, ssh …) somewhere."""
    return any(str(w.value).rsplit("/", 1)[-1] in _REMOTE_STARTERS
               for cmd in ctx.parsed.lexed.code for w in all_words(cmd))


def _other_launchers_on_first_node(ctx: Context) -> Iterator[Any]:
    """HPC110 for accelerate and deepspeed, only where the launch cannot reach the other nodes."""
    nodes = job_nodes(ctx)
    for line, name, args in _batch_shell_launchers(ctx):
        if name == "deepspeed":
            opts = _launcher_options(args, _DEEPSPEED_SWITCHES)
            if "--no_ssh" in opts:
                yield (line, f"this job has {nodes} nodes but deepspeed --no_ssh runs in the batch shell and starts the "
                             "workers of the first node only; start it on every node with srun --ntasks-per-node=1 "
                             "(each with its own --node_rank)")
                continue
            if "--hostfile" in opts or "-H" in opts:
                continue  # deepspeed starts the other nodes itself (pdsh, or the --launcher it is given)
            asked = as_int(ctx, opts.get("--num_nodes", ""), line) or 0
            if asked > 1:
                yield (line, f"deepspeed --num_nodes={opts['--num_nodes']} without --hostfile finds no other nodes and "
                             "stops ('Num nodes is >1 but no extra nodes available via hostfile'); write the job's "
                             "nodes to a hostfile (scontrol show hostnames) and pass --hostfile")
            elif not _starts_elsewhere(ctx):
                yield (line, f"this job has {nodes} nodes but deepspeed without --hostfile runs on the first node only "
                             "(it finds no hostfile and uses the local GPUs); write the job's nodes to a hostfile "
                             "(scontrol show hostnames) and pass --hostfile")
            continue
        opts = _launcher_options(args, _ACCELERATE_SWITCHES)
        mode = opts.get("--deepspeed_multinode_launcher", "")
        machines = as_int(ctx, opts.get("--num_machines", ""), line)
        deepspeed = "--use_deepspeed" in opts or any(o.startswith("--deepspeed") for o in opts) \
            or bool(_DEEPSPEED_CONFIG.search(opts.get("--config_file", "").rsplit("/", 1)[-1]))
        per_node = "--multi_gpu" in opts or "--use_fsdp" in opts or mode in ("standard", "nossh")
        # options on the command line override the config file: --num_machines=N (N > 1) or --machine_rank
        # there say one launch per machine, which only srun starts; a config file alone may choose DeepSpeed
        said_here = (machines is not None and machines > 1) or ("--machine_rank" in opts and machines is None)
        if not per_node and (deepspeed or ("--config_file" in opts and not said_here)):
            continue  # DeepSpeed's multi-node launcher (pdsh by default) may start the other nodes itself
        if "--machine_rank" in opts and machines is None:
            yield (line, f"this job has {nodes} nodes but accelerate launch --machine_rank runs in the batch shell, "
                         "on the first node only: the other machines never start, so the job hangs; start it on "
                         "every node with srun --ntasks-per-node=1, each with its own --machine_rank "
                         "(srun bash -c '… --machine_rank=$SLURM_NODEID …')")
            continue
        if machines is not None and machines > 1:
            yield (line, f"accelerate launch --num_machines={opts['--num_machines']} runs in the batch shell, on the "
                         "first node only: each call starts one machine's processes, so the other machines never join "
                         "and the job hangs; start it on every node with srun --ntasks-per-node=1, each with its own "
                         "--machine_rank (srun bash -c '… --machine_rank=$SLURM_NODEID …')")
        elif not _starts_elsewhere(ctx):
            others = f"{nodes - 1} node{'s' if nodes > 2 else ''}"
            yield (line, f"this job has {nodes} nodes but accelerate launch runs in the batch shell, on the first node "
                         f"only, and nothing starts work on the other {others}; start it on every node with "
                         f"srun --ntasks-per-node=1 and --num_machines={nodes}, or ask for one node")


def lost_continuations(ctx: Context) -> set[int]:
    """The lines HPC504 reports: a command cut short by a missing backslash, whose next line runs on its own.
    What that line seems to do is an accident, so rules about it would only add a wrong fix."""
    from . import rules as all_rules
    return cached(ctx, "lost_continuations", lambda: {f.line for f in all_rules()["HPC504"].check(ctx)})


@rule("HPC110", "multi-node-launch-without-srun", "error",
      summary="a multi-node job starts its distributed launcher in the batch shell, without srun",
      why="The batch script runs only on the first node. A launcher started there never reaches the other nodes, "
          "so the rendezvous waits for nodes that never come (torchrun, python -m torch.distributed.run, "
          "accelerate launch --num_machines=N) or the other nodes sit idle (a Ray cluster whose every ray start runs "
          "in the batch shell has the first node only). accelerate launch and deepspeed are "
          "reported only when they cannot start the other nodes themselves: not with DeepSpeed's multi-node "
          "launcher (deepspeed --hostfile; accelerate with DeepSpeed options or a config file named for DeepSpeed, "
          "such as ds_zero3.yaml; another config file only when the command line itself does not ask for several "
          "machines with --num_machines=N or --machine_rank, which override the file), and a one-machine "
          "accelerate launch only when nothing else in the script starts work on the other nodes.",
      fix="Start the launcher with srun --ntasks-per-node=1 so one copy runs on every node (accelerate: each with "
          "its own --machine_rank; deepspeed: or give it a --hostfile of the job's nodes).",
      catalogue=(21,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""")
def _no_srun(ctx: Context) -> Iterator[Any]:
    if job_nodes(ctx) < 2:
        return
    for step in steps(ctx):
        if step.chain.launcher is None or step.chain.srun is not None or step.line in lost_continuations(ctx):
            continue
        chain = type(step.chain)(Srun(ntasks_per_node=1), step.chain.container, step.chain.launcher,
                                 step.chain.program, step.chain.notes)
        # the fix writes srun where the launch starts, after the wrappers: one that sets how a process runs
        # (numactl -C 0-3, taskset, nice) would then apply to srun, not to the tasks it starts elsewhere
        fix = None if _pins_the_process(step) else \
            count_fix(ctx, "launch on every node with srun --ntasks-per-node=1", step, chain)
        yield (step.line, f"this job has {job_nodes(ctx)} nodes but the launcher runs in the batch shell, on the first "
                          "node only; start it with srun --ntasks-per-node=1", fix)
    yield from _other_launchers_on_first_node(ctx)
    yield from _ray_on_first_node(ctx)


#: wrappers that set how the process they start runs (CPUs, memory nodes, priority)
_PINNING_WRAPPERS = frozenset({"numactl", "taskset", "nice", "ionice"})


def _pins_the_process(step: Any) -> bool:
    """Whether the step's command starts with a wrapper of :data:`_PINNING_WRAPPERS` before its launch."""
    words = [str(w.value) for w in step.command.words]
    before = words[:len(words) - len(launch_words(words))]
    return any(w.rsplit("/", 1)[-1] in _PINNING_WRAPPERS for w in before)


def _ray_on_first_node(ctx: Context) -> Iterator[Any]:
    """HPC110 for Ray: every ``ray start`` of a multi-node job runs in the batch shell, so only the first node is
    in the cluster (the usual pattern starts the head and each worker with srun --nodes=1 --ntasks=1 -w NODE)."""
    nodes = job_nodes(ctx)
    here, stepped = [], False
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        at = next((i for i in range(len(words) - 1) if words[i].rsplit("/", 1)[-1] == "ray"
                   and words[i + 1] == "start"), None)
        if at is None:
            continue
        if any(w.rsplit("/", 1)[-1] in ("srun", "ssh", "pdsh", *MPI_LAUNCHERS) for w in words[:at]):
            stepped = True
        else:
            here.append(cmd.line)
    if here and not stepped:
        yield (here[0], f"this job has {nodes} nodes but ray start runs only in the batch shell, on the first node: the "
                        "other nodes never join the cluster; start the head and each worker with srun --nodes=1 "
                        "--ntasks=1 -w NODE ray start … --block &")


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


#: torchrun reads any option it was not given from PET_<OPTION> (e.g. PET_RDZV_ENDPOINT)
_ENDPOINT_FROM_ENV = ("PET_RDZV_ENDPOINT", "PET_MASTER_ADDR")


def _launch_nodes(ctx: Context, launcher: Any, line: int) -> int | None:
    """torchrun's --nnodes as a number, also through the script's and the job's variables."""
    n = launcher.nnodes_int
    if n is None and launcher.nnodes and ":" not in launcher.nnodes:
        n = as_int(ctx, launcher.nnodes, line)
    return n


def _no_endpoint(ctx: Context, step: Any, launcher: Any) -> Any:
    """The finding for a launch over several nodes that names no rendezvous host at all, or None. --master-addr
    names it for the static rendezvous only: torchrun's other backends (c10d) read --rdzv-endpoint alone and,
    without one, meet at localhost (torch warns "master_addr is only used for static rdzv_backend")."""
    static = launcher.rdzv_backend in ("", "static")
    if launcher.rdzv_endpoint or (launcher.master_addr and static) or (_launch_nodes(ctx, launcher, step.line) or 1) < 2 \
            or launcher.options_out_of_sight:
        return None
    if any(ctx.parsed.variable(name, step.line) is not None for name in _ENDPOINT_FROM_ENV):
        return None
    if launcher.master_addr:
        return _master_addr_with_c10d(ctx, step, launcher)
    port = launcher.master_port if static and launcher.master_port else DEFAULT_RDZV_PORT
    chain = with_chain(step.chain, launcher=launcher.replace(
        rdzv_backend="c10d" if static else launcher.rdzv_backend, rdzv_endpoint=f"${HEAD_NODE_VAR}:{port}",
        rdzv_id=launcher.rdzv_id or "$SLURM_JOB_ID", node_rank=None, master_port=None))
    has_head = ctx.parsed.variable(HEAD_NODE_VAR, step.line) is not None
    default = "--master-addr defaults to 127.0.0.1" if static else "the endpoint defaults to localhost"
    return (step.line, f"--nnodes={launcher.nnodes} without --rdzv-endpoint: {default}, so every node meets only "
                       f"itself and the job hangs; use the head node ($head_node:{port}) resolved with "
                       "scontrol show hostnames",
            fix_for(ctx, "rendezvous at the head node resolved on the host", step, chain, () if has_head else (HEAD_NODE_LINE,)))


def _master_addr_with_c10d(ctx: Context, step: Any, launcher: Any) -> Any:
    """HPC103 for --master-addr/--master-port with the c10d rendezvous and no --rdzv-endpoint: the host given is
    ignored; the fix moves it (and the port) into --rdzv-endpoint."""
    backend = launcher.rdzv_backend
    host = str(launcher.master_addr)
    local = ctx.parsed.resolve(host, step.line) in LOCAL_HOSTS
    port = launcher.master_port if launcher.master_port else DEFAULT_RDZV_PORT
    endpoint = f"${HEAD_NODE_VAR}:{port}" if local else f"{host}:{port}"
    chain = with_chain(step.chain, launcher=launcher.replace(
        rdzv_endpoint=endpoint, rdzv_id=launcher.rdzv_id or "$SLURM_JOB_ID", master_addr="", master_port=None,
        node_rank=""))
    has_head = not local or ctx.parsed.variable(HEAD_NODE_VAR, step.line) is not None
    shown = host.replace("\\$", "$")  # a reference each task expands (srun bash -c '…') reads as written
    use = f"$head_node:{port}, with the head node resolved by scontrol show hostnames" if local else f"{shown}:{port}"
    return (step.line, f"--master-addr={shown} is ignored by the {backend} rendezvous (torchrun reads it for the static "
                       f"one only), and without --rdzv-endpoint {backend} meets at localhost: every node meets only "
                       f"itself and the job hangs; use --rdzv-endpoint={use}",
            fix_for(ctx, "rendezvous endpoint at the --master-addr host", step, chain,
                    () if has_head else (HEAD_NODE_LINE,)))


@rule("HPC103", "rendezvous-localhost-multi-node", "error",
      summary="a multi-node launch rendezvouses at localhost, or names no host (torchrun then uses localhost)",
      why="Every node resolves localhost to itself, so each node waits at its own private rendezvous for peers "
          "that never arrive: the job hangs until its time limit. Without --rdzv-endpoint (or --master-addr for "
          "the static rendezvous) torchrun uses localhost (127.0.0.1), so leaving it out has the same effect; "
          "--master-addr given with --rdzv-backend=c10d is ignored (torch reads it for the static rendezvous only), "
          "so it does not help. accelerate launch over several machines passes --main_process_ip to torchrun as "
          "the rendezvous host: localhost there hangs the same way, and leaving it out (with no --config_file "
          "that may give it) makes the start fail.",
      fix="Use the head node resolved on the host: head_node=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | "
          "sed -n 1p) and --rdzv-endpoint=\"$head_node:29500\".",
      catalogue=(2,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=localhost:29500 train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""")
@each_component
def _localhost_multi(ctx: Context) -> Iterator[Any]:
    for step in steps(ctx):
        if not in_job_component(ctx, step) and not (step.chain.launcher is not None
                                                      and (step.chain.launcher.nnodes_int or 0) > 1):
            continue  # another component's nodes: only torchrun's own --nnodes says it spans several
        launcher = step.chain.launcher
        if launcher is None or launcher.standalone:
            continue
        missing = _no_endpoint(ctx, step, launcher)
        if missing is not None:
            yield missing
            continue
        if not multi_node(ctx, launcher):
            continue
        for name in ("rdzv_endpoint", "master_addr"):
            value = ctx.parsed.resolve(str(getattr(launcher, name) or ""), step.line)
            host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
            if host in LOCAL_HOSTS:
                port = value.rsplit(":", 1)[1] if ":" in value else str(DEFAULT_RDZV_PORT)
                chain = with_chain(step.chain, launcher=launcher.replace(
                    rdzv_endpoint=f"${HEAD_NODE_VAR}:{port}", rdzv_backend=launcher.rdzv_backend or "c10d",
                    master_addr=""))
                has_head = ctx.parsed.variable(HEAD_NODE_VAR, step.line) is not None
                fix = fix_for(ctx, "rendezvous at the head node resolved on the host", step, chain,
                              () if has_head else (HEAD_NODE_LINE,)) if name == "rdzv_endpoint" else None
                yield (step.line, f"--{name.replace('_', '-')}={value} on a {max(job_nodes(ctx), launcher.nnodes_int or 0)}-node "
                                  f"launch: every node meets only itself and the job hangs; use the head node "
                                  f"($head_node:{port}) resolved with scontrol show hostnames", fix)
                break
    for launch, kind, value in _accelerate_hosts(ctx):
        machines = launch.options["--num_machines"]
        if kind == "local":
            yield (launch.line, f"--main_process_ip {value} with --num_machines {machines}: every node looks for the "
                                "rendezvous on itself and the job hangs; pass the head node resolved on the host with "
                                "scontrol show hostnames (export head_node=… before srun)")
        elif kind == "missing":
            yield (launch.line, f"accelerate launch --num_machines {machines} without --main_process_ip: the machines "
                                "have no host to meet at (without a config file accelerate hands torchrun the endpoint "
                                "'None:PORT' and the start fails; a saved default config gives every job its one fixed "
                                "address); pass the head node resolved on the host with scontrol show hostnames")


@rule("HPC104", "head-node-in-container", "error",
      summary="the head node is looked up with scontrol inside the container",
      why="Container images rarely contain scontrol or the Slurm configuration, so the lookup fails or returns "
          "nothing and the rendezvous endpoint is empty.",
      fix="Resolve the head node in the batch script, on the host, before srun: "
          "head_node=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | sed -n 1p), and pass \"$head_node:29500\".",
      catalogue=(2,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
srun apptainer exec --nv img_2.3.sif bash -c 'torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500 train.py'
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun apptainer exec --nv img_2.3.sif torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d \\
  --rdzv-endpoint="$head_node:29500" train.py
""")
def _head_in_container(ctx: Context) -> Iterator[Any]:
    for cmd in simple_commands(ctx):
        words = [str(w.value) for w in cmd.words]
        start = next((i for i, w in enumerate(words) if w.rsplit("/", 1)[-1] in ("apptainer", "singularity", "ch-run")), None)
        if start is None:
            continue
        for w in cmd.words[start + 1:]:
            raw = w.raw
            # only the head node's lookup (scontrol show hostnames): other scontrol calls there are HPC222's
            if re.search(r"scontrol\s+show\s+hostnames?\b", raw) and (raw.lstrip().startswith("'") or "\\$(" in raw):
                yield (cmd.line, "scontrol runs inside the container (the quotes delay it until then), where it is usually "
                                 "missing; resolve head_node on the host before srun and pass \"$head_node:29500\"")
                break


#: a host name that each node works out for itself: $(hostname …), `hostname`, $HOSTNAME, $SLURMD_NODENAME.
#: In a value read from a bash -c script, ``\$`` is a dollar the batch shell left for each task to expand.
_OWN_HOST = re.compile(r"\$\(\s*(?:\S*/)?hostname\b[^)]*\)|`\s*(?:\S*/)?hostname\b[^`]*`"
                       r"|\\\$\{?(?:HOSTNAME|SLURMD_NODENAME|SLURM_TOPOLOGY_ADDR)\}?")
#: ``\$(hostname)`` or ``\`hostname\``` in a double-quoted bash -c script: left for each task to run
_ESCAPED_HOSTNAME = re.compile(r"\\(?:\$\(|`)\s*(?:\S*/)?hostname")


#: rendezvous settings written in a bash -c script, and a value there that differs from task to task
_RDZV_SETTING = (r"(?P<setting>--(?:rdzv[-_]endpoint|master[-_](?:addr|port)|rdzv[-_]id|main[-_]process[-_](?:ip|port))"
                 r"[= ]|\b(?:MASTER_ADDR|MASTER_PORT)=)")
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


@rule("HPC115", "rendezvous-host-per-node", "error",
      summary="the rendezvous host (or port, or run id) is worked out by each task inside srun bash -c '…'",
      why="Text inside srun bash -c '…' (or behind \\$ in double quotes) is expanded by every task on its own node, so "
          "$(hostname), $HOSTNAME or $SLURMD_NODENAME give each node its own name: every node waits at its own "
          "rendezvous for peers that never arrive, and the job hangs until the rendezvous times out. The same goes "
          "for MASTER_ADDR=$(hostname) there, and for a port or run id drawn from $RANDOM: each node draws its "
          "own. In the batch script itself the same expansion is harmless: it runs once, on the first node.",
      fix="Resolve the head node once in the batch script, export it, and let each task use it: export head_node=$(scontrol "
          "show hostnames \"$SLURM_JOB_NODELIST\" | sed -n 1p), then srun bash -c 'torchrun … "
          "--rdzv-endpoint=\"$head_node:29500\" …'.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
srun bash -c 'torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$(hostname):29500 train.py'
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
export head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun bash -c 'torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py'
""")
def _host_per_node(ctx: Context) -> Iterator[Any]:
    for step in steps(ctx):
        found = _per_task_endpoint(ctx, step) or _per_task_rendezvous_text(ctx, step)
        if found:
            yield step.line, found


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


@rule("HPC116", "same-rank-on-every-node", "error",
      summary="srun starts the launcher on several nodes with one fixed --node-rank, or none (or one accelerate "
              "--machine_rank, or none)",
      why="Every node's launcher claims the same rank: the rendezvous waits for the ranks nobody claims (or two "
          "claim rank 0) and the job hangs until it times out. Leaving --node-rank out of torchrun's static "
          "rendezvous (its default without --rdzv-backend=c10d) does the same: every node takes rank 0. A fixed "
          "rank only fits a launch placed on one node (srun -N1 -w NODE … --node-rank=1 &). accelerate launch "
          "hands --machine_rank to torchrun as --node-rank, with its own static rendezvous by default; without "
          "--machine_rank (and no --config_file that may give it) it stops at start, or takes the one rank of a "
          "saved default config on every node (the static rendezvous then hangs; c10d numbers the nodes itself).",
      fix="Let each node take its own rank: srun bash -c '… --node-rank=$SLURM_NODEID …' (single quotes), or use the "
          "c10d rendezvous, which numbers the nodes itself (--rdzv-backend=c10d --rdzv-endpoint=\"$head_node:29500\").",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --node-rank=0 --master-addr="$head_node" --master-port=29500 train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""")
@each_component
def _same_rank(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        nodes = _step_nodes(ctx, step)
        if step.chain.srun is None or nodes < 2:
            continue
        launcher = step.chain.launcher
        static = launcher is not None and not launcher.standalone and launcher.rdzv_backend in ("", "static")
        rank = str(launcher.node_rank or "").strip() if static else ""  # c10d ignores --node-rank (HPC105)
        missing = [p.message for p in launcher.problems() if p.field == "node_rank"] if static and not rank else []
        if missing:
            yield step.line, f"torchrun: {missing[0]}"  # no --node-rank: every node takes the default, 0
            continue
        if rank.isdigit():
            yield (step.line, f"srun starts torchrun on {nodes} nodes, each with --node-rank={rank}: every node claims "
                              "the same rank and the job hangs; use the c10d rendezvous (no --node-rank) or "
                              "srun bash -c '… --node-rank=$SLURM_NODEID …'")
    yield from _accelerate_same_rank(ctx)


def _accelerate_same_rank(ctx: Context) -> Iterator[Any]:
    """HPC116 for accelerate launch started by srun on several nodes, once per machine: one --machine_rank number
    for all (ignored only by --rdzv_backend c10d), or none at all (no config file that may give it)."""
    for launch in other_launches(ctx):
        step = launch.step
        if launch.name != "accelerate launch" or launch.srun is None or not in_job_component(ctx, step):
            continue
        nodes, opts = _step_nodes(ctx, step), launch.options
        machines = launch.machines(ctx)
        path = accelerate_path(launch, machines)
        if nodes < 2 or path == "once":
            continue
        rank = opts.get("--machine_rank")
        number = rank.strip("\"'") if rank is not None else ""
        if number.isdigit():
            if opts.get("--rdzv_backend", "static") == "static":
                yield (step.line, f"srun starts accelerate launch on {nodes} nodes, each with --machine_rank {number}: "
                                  "every node claims the same rank and the job hangs; let each node take its own: "
                                  "srun bash -c 'accelerate launch … --machine_rank \"$SLURM_NODEID\" …'")
        elif rank is None and path == "per_machine" and machines is not None and machines > 1 \
                and "--config_file" not in opts:
            yield (step.line, f"srun starts accelerate launch --num_machines {machines} on {nodes} nodes without "
                              "--machine_rank: without a config file accelerate stops at once (int(None): TypeError), "
                              + _saved_config_rank(opts.get("--rdzv_backend", "static"))
                              + "; let each node take its own: srun bash -c 'accelerate launch … --machine_rank "
                                "\"$SLURM_NODEID\" …'")


def _saved_config_rank(backend: str) -> str:
    """What HPC116 says of a saved default config, whose one machine_rank every node then takes: the static
    rendezvous waits for the ranks nobody claims; c10d numbers the nodes itself and ignores it (it is torchrun's
    --node-rank, HPC105), so there the job runs, as long as the file is there."""
    if backend == "static":
        return "and a saved default config gives every node the file's one rank, so the job hangs"
    return (f"and only a saved default config (~/.cache/huggingface/accelerate) lets it run: every node then takes "
            f"the file's one rank, which the {backend} rendezvous ignores as it numbers the nodes itself")


@rule("HPC117", "deepspeed-started-on-every-node", "error",
      summary="srun starts the deepspeed launcher on every node (it starts the other nodes itself, or without a "
              "hostfile trains each node alone)",
      why="The deepspeed launcher reads the hostfile and starts the workers of every node itself (over pdsh/ssh, or "
          "with its own srun for --launcher slurm). Started by srun on each node, it does that once per node: the "
          "ranks are launched several times over and collide. Without a hostfile each copy uses only its own node's "
          "GPUs (master 127.0.0.1), so every node trains a separate copy of the model that never meets the others. "
          "Only --no_ssh is meant to run once per node.",
      fix="Run deepspeed once, in the batch shell, with the job's nodes in a hostfile (scontrol show hostnames); or "
          "keep srun and give each node's copy --no_ssh --node_rank=$SLURM_NODEID.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/$/ slots=4/' > hostfile
srun deepspeed --num_gpus 4 --num_nodes 2 --hostfile hostfile train.py --deepspeed ds.json
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/$/ slots=4/' > "hostfile-$SLURM_JOB_ID"
deepspeed --num_gpus 4 --num_nodes 2 --hostfile "hostfile-$SLURM_JOB_ID" train.py --deepspeed ds.json
""")
@each_component
def _deepspeed_per_node(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        srun = step.chain.srun
        if srun is None:
            continue
        tasks = step_tasks(ctx, step)
        if tasks < 2:
            continue
        word = shell_script_word(step)
        text = word.raw if word is not None else " ".join(str(w) for w in step.chain.program)
        m = re.search(r"(?:^|[\s;&'\"(])deepspeed\s+(.*)", text)
        if m is None or re.search(r"--no[-_]ssh\b", m.group(1)):
            continue
        yield step.line, _deepspeed_copies(ctx, step, tasks, m.group(1))


def _deepspeed_copies(ctx: Context, step: Any, tasks: int, args: str) -> str:
    """What the deepspeed launcher started by each of ``tasks`` srun tasks does, as its runner decides: with a
    hostfile each copy starts the workers of every host in it; without one (and no /job/hostfile) each copy finds
    only its own node's GPUs and trains alone with 127.0.0.1 as its master."""
    fix = ("; run deepspeed once in the batch shell with a hostfile, or give each copy --no_ssh "
           "--node_rank=$SLURM_NODEID (inside srun bash -c '…', so that each task expands it)")
    if re.search(r"(?:^|\s)(?:--hostfile\b|-H\b)", args):
        return (f"srun starts the deepspeed launcher {tasks} times, and each reads the hostfile and starts the workers "
                f"of every node in it itself: every rank is launched {tasks} times over and the copies collide{fix}")
    if re.search(r"--num[-_]nodes[= ]+[\"']?(?:[2-9]|[1-9][0-9])", args):
        return (f"srun starts the deepspeed launcher {tasks} times without --hostfile: each copy finds no other node "
                f"and stops ('Num nodes is >1 but no extra nodes available via hostfile'){fix}")
    nodes = _step_nodes(ctx, step)
    alone = (f"srun starts the deepspeed launcher {tasks} times without --hostfile: each copy finds no hostfile and "
             "trains alone on the GPUs of its own node, with 127.0.0.1 as master")
    if nodes < 2:
        return f"{alone}: the {tasks} copies share the same GPUs and port; start deepspeed once (srun --ntasks=1)"
    shared = f"; the {-(-tasks // nodes)} copies on each node also share its GPUs and port" if tasks > nodes else ""
    return f"{alone}, so the {nodes} nodes never communicate{shared}{fix}"


@rule("HPC118", "accelerate-processes-per-machine", "warning",
      summary="accelerate launch --num_processes counts one machine's GPUs, but it is the total over all machines",
      why="accelerate divides --num_processes among the --num_machines: with 2 machines of 4 GPUs, "
          "--num_processes 4 starts 2 processes on each, and half the GPUs sit idle (the world size is not what "
          "the batch size was planned for).",
      fix="Give the total: --num_processes = machines × GPUs per machine (8 for 2 × 4).",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
srun bash -c 'accelerate launch --multi_gpu --num_machines 2 --num_processes 4 --machine_rank $SLURM_NODEID \
  --main_process_ip n1 --main_process_port 29500 train.py'
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
srun bash -c 'accelerate launch --multi_gpu --num_machines 2 --num_processes 8 --machine_rank $SLURM_NODEID \
  --main_process_ip n1 --main_process_port 29500 train.py'
""")
@each_component
def _accelerate_per_machine(ctx: Context) -> Iterator[Any]:
    gpus = ctx.job.gpus_on_each_node
    if not isinstance(gpus, int) or not gpus:
        return
    for step in job_component_steps(ctx):
        word = shell_script_word(step)
        text = word.raw if word is not None else " ".join(str(w) for w in step.chain.program)
        if not re.search(r"\baccelerate(?:-launch|\s+launch)\b", text):
            continue
        machines = re.search(r"--num[-_]machines[= ]+[\"']?([^\s\"';]+)", text)
        processes = re.search(r"--num[-_]processes[= ]+[\"']?([^\s\"';]+)", text)
        if machines is None or processes is None:
            continue
        m, n = (as_int(ctx, found.group(1).replace("\\$", "$"), step.line) for found in (machines, processes))
        if m is not None and m > 1 and n == gpus:  # one machine's GPUs given as the total
            yield (step.line, f"--num_processes {n} with --num_machines {m} starts {n // m} process"
                              f"{'es' if n // m > 1 else ''} on each machine, which has {gpus} GPUs: "
                              f"--num_processes is the total over all machines; use --num_processes {m * gpus}")


@rule("HPC105", "static-options-with-c10d", "warning",
      summary="--node-rank / --master-addr / --master-port given with the c10d rendezvous",
      why="The c10d rendezvous assigns node ranks itself and meets at --rdzv-endpoint; torchrun silently ignores "
          "these static-backend options, so they only mislead whoever reads the script.",
      fix="Remove --node-rank, --master-addr and --master-port and keep --rdzv-backend=c10d --rdzv-endpoint=\"$head_node:29500\".",
      catalogue=(3,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=1 --node-rank=0 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""")
def _static_with_c10d(ctx: Context) -> Iterator[Any]:
    for step in steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or launcher.rdzv_backend not in ("", "c10d") or not launcher.rdzv_endpoint:
            continue
        given = [f"--{n.replace('_', '-')}" for n in ("node_rank", "master_addr", "master_port")
                 if getattr(launcher, n) not in ("", None)]
        if given:
            chain = with_chain(step.chain, launcher=launcher.replace(node_rank="", master_addr="", master_port=None))
            yield (step.line, f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} ignored by the c10d rendezvous "
                              f"(it assigns ranks itself); remove {'it' if len(given) == 1 else 'them'}",
                   fix_for(ctx, "remove options the c10d rendezvous ignores", step, chain))


def _one_node_launch(ctx: Context, step: Any, launcher: Any) -> bool:
    """True only when the launch certainly spans one node: the job has one node (not a MIN-MAX range
    that may grow) and torchrun's --nnodes is 1 (or left at its default), not MIN:MAX or a variable."""
    nodes = ctx.job.nodes
    if nodes is not None and node_range(nodes) != (1, 1):
        return False
    if _step_nodes(ctx, step) > 1:
        return False  # srun -N 8 … torchrun: the step spans more nodes than the job's directives say
    text = str(launcher.nnodes or "")
    if not text:
        return True
    text = ctx.parsed.resolve(text, step.line)
    lo, _, hi = text.partition(":")
    if hi and lo != hi:
        return False  # elastic: MIN:MAX
    return as_int(ctx, lo, step.line) == 1


def _elastic_on_this_node(ctx: Context, step: Any, launcher: Any, endpoint: str) -> bool:
    """An elastic ``--nnodes=1:N`` whose rendezvous is on this node (localhost) in a one-node job: no other
    node can ever join it, so it is a one-node launch."""
    nodes = ctx.job.nodes
    lo = ctx.parsed.resolve(str(launcher.nnodes or ""), step.line).partition(":")[0]
    return endpoint.rsplit(":", 1)[0] in ("localhost", "127.0.0.1") and lo == "1" and _step_nodes(ctx, step) == 1 \
        and (nodes is None or node_range(nodes) == (1, 1))


@rule("HPC106", "single-node-fixed-port", "warning",
      summary="a single-node torchrun uses a fixed rendezvous port instead of --standalone",
      why="Two single-node jobs placed on the same node both try to bind the same port; the second fails with "
          "'Address already in use'. --standalone picks a free port for each job. Not reported for a job that "
          "holds its node with --exclusive (--exclusive=user still lets your other jobs in), unless the launch "
          "runs in the background, beside others of the same job.",
      fix="On one node use torchrun --standalone --nnodes=1 --nproc-per-node=N (no --rdzv-* options).",
      catalogue=(4,),
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:2
torchrun --nnodes=1 --nproc-per-node=2 --rdzv-backend=c10d --rdzv-endpoint=localhost:29500 train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:2
torchrun --standalone --nnodes=1 --nproc-per-node=2 train.py
""")
@each_component
def _single_node_port(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or launcher.standalone:
            continue
        endpoint = ctx.parsed.resolve(str(launcher.rdzv_endpoint or ""), step.line)
        if not _one_node_launch(ctx, step, launcher) and not _elastic_on_this_node(ctx, step, launcher, endpoint):
            continue
        port = endpoint.rsplit(":", 1)[1] if ":" in endpoint else ""
        # a port the script computes ($((20000 + SLURM_JOB_ID % 10000)), ${SLURM_JOB_ID: -4}, $(shuf …)) or takes
        # from elsewhere differs from job to job: only a number (also through the script's variables) is fixed
        master = ctx.parsed.resolve(str(launcher.master_port), step.line).strip() \
            if launcher.master_port is not None else ""
        fixed_master = not launcher.rdzv_endpoint and master.isdigit() and int(master) != 0
        # (no rendezvous option at all is not reported: torchrun before 2.11 took port 29500 then, but newer
        # releases pick a free port on one node by themselves, and the image's version is not in the script)
        if not ((port.isdigit() and int(port) != 0) or fixed_master):
            continue  # port 0 is what --standalone does itself: the system picks a free port
        if ctx.job.exclusive and step.command.joined_by != "&":
            continue  # --exclusive: no other job shares the node, and this launch is the job's only one at a time
        chain = with_chain(step.chain, launcher=launcher.replace(
            standalone=True, nnodes="1", rdzv_backend="", rdzv_endpoint="", rdzv_id="", master_addr="",
            master_port=None, node_rank=""))
        second = "another launch this job starts beside it" if ctx.job.exclusive else "a second job on the same node"
        message = (f"a one-node torchrun with the fixed port {port or master}: {second} fails with "
                   "'Address already in use'; use --standalone, which picks a free port")
        if not _one_node_launch(ctx, step, launcher):
            yield step.line, message   # elastic (--nnodes=1:2): the user's to rewrite, not a fixer's
            continue
        yield step.line, message, count_fix(ctx, "use torchrun --standalone on one node", step, chain)


@rule("HPC107", "gpus-per-node-variable", "warning",
      summary="$SLURM_GPUS_PER_NODE used as a number",
      why="SLURM_GPUS_PER_NODE repeats the request as written: with a typed request it is 'a100:4', not 4, and "
          "it is unset for --gres requests, so --nproc-per-node=$SLURM_GPUS_PER_NODE breaks. (With an untyped "
          "--gpus-per-node=4 it is 4, and fine.)",
      fix="Use $SLURM_GPUS_ON_NODE (always a number: the GPUs allocated on this node) or write the number.",
      catalogue=(5,),
      bad="""#!/bin/bash
#SBATCH --gpus-per-node=a100:4
torchrun --standalone --nnodes=1 --nproc-per-node="$SLURM_GPUS_PER_NODE" train.py
""",
      good="""#!/bin/bash
#SBATCH --gpus-per-node=a100:4
torchrun --standalone --nnodes=1 --nproc-per-node="$SLURM_GPUS_ON_NODE" train.py
""")
def _gpus_per_node_var(ctx: Context) -> Iterator[Any]:
    job = ctx.job
    per_node = job.gpu_flag == "gpus-per-node" and isinstance(job.gpus_per_node, int) and job.gpus_per_node > 0
    if per_node and not job.gpu_type:
        return  # --gpus-per-node=4: the variable is 4, the number the job asked for
    if per_node:
        why = f"is {job.gpu_type}:{job.gpus_per_node} here (the request names a GPU type), not a number"
    elif ctx.parsed.directives:
        why = "is set only when the job asks for GPUs with --gpus-per-node, which its #SBATCH lines do not, so it is empty here"
    else:
        why = "may hold a type (a100:4) or be unset"
    for cmd in ctx.parsed.lexed.code:
        if any(name == "SLURM_GPUS_PER_NODE" for w in all_words(cmd) for name, _ in expanded_refs(w.raw)):
            yield (cmd.line, f"$SLURM_GPUS_PER_NODE {why}; use $SLURM_GPUS_ON_NODE, the number of GPUs on this node")


def _nproc_vs_gpus(ctx: Context) -> Iterator[tuple[Any, int, int]]:
    gpus = ctx.job.gpus_on_each_node
    if not gpus:
        return
    for step in job_component_steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or launcher.nproc_per_node in ("", "gpu", "auto", "cpu"):
            continue
        if (tasks_per_node(ctx, step) or 1) > 1:
            continue  # HPC101 reports the real problem
        nproc = as_int(ctx, launcher.nproc_per_node, step.line)
        have = step_gpus(step) or inherited_gpus(ctx, step) or gpus
        if nproc is not None and nproc != have:
            yield step, nproc, have


#: a GPU request on srun's own line: --gres=gpu[:type]:N or --gpus-per-node=[type:]N
_STEP_GPUS = re.compile(r"--(?:gres=gpu(?::[^:,=\s]+)?:|gpus-per-node=(?:[^:,=\s]+:)?)(\d+)$")


def step_gpus(step: Any) -> int | None:
    """The GPUs per node an srun step asks for on its own line (it then sees only those), or None."""
    srun = step.chain.srun
    words = [str(e) for e in srun.extra] if srun is not None else []
    joined = [a + "=" + b if a in ("--gres", "--gpus-per-node") and b else a
              for a, b in zip(words, [*words[1:], ""])]
    found = [int(m.group(1)) for w in joined for m in [_STEP_GPUS.match(w)] if m]
    if found:
        return found[-1]
    per_task = getattr(srun, "gpus_per_task", None)
    tasks = getattr(srun, "ntasks_per_node", None)
    return per_task * (tasks if isinstance(tasks, int) else 1) if isinstance(per_task, int) else None


#: srun options that ask for GPUs (or other generic resources, which then replace the job's) for the step itself
_STEP_GPU_OPTIONS = ("--gres", "--gpus", "-G", "--gpus-per-node", "--gpus-per-task", "--gpus-per-socket",
                     "--ntasks-per-gpu")


def own_gpu_request(srun: Any) -> bool:
    """Whether an srun line asks for GPUs (or generic resources) of its own, instead of taking the job's."""
    if getattr(srun, "gpus_per_task", None) is not None:
        return True
    return any(str(e).partition("=")[0] in _STEP_GPU_OPTIONS or str(e).startswith("-G") for e in srun.extra)


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


@rule("HPC108", "more-workers-than-gpus", "error",
      summary="torchrun (accelerate launch, deepspeed) starts more workers per node than the job has GPUs per node",
      why="Workers beyond the GPU count share GPUs (or crash with an invalid device ordinal when the script uses "
          "LOCAL_RANK as the device), so the run is slower or fails. accelerate launch starts --num_processes / "
          "--num_machines processes on each machine (--num_processes is the total over all machines), and deepspeed "
          "--num_gpus N starts N on every host without checking how many GPUs it has. A step gets the GPUs it asks "
          "for: srun takes the job's --gpus-per-task (sbatch exports SLURM_GPUS_PER_TASK) for each of its own "
          "tasks, so srun --ntasks=1 in a job of --gpus-per-task=1 has one GPU however many the node holds.",
      fix="Set --nproc-per-node to the GPUs per node (--gres=gpu:N), or request more GPUs (accelerate: "
          "--num_processes = machines × GPUs per node; deepspeed: --num_gpus = GPUs per node); give a step of one "
          "task per node in a job of --gpus-per-task the node's GPUs with srun --gpus-per-task=N.",
      catalogue=(7,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:2
torchrun --standalone --nnodes=1 --nproc-per-node=4 train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:4
torchrun --standalone --nnodes=1 --nproc-per-node=4 train.py
""")
@each_component
def _too_many_workers(ctx: Context) -> Iterator[Any]:
    job = ctx.job
    for step, nproc, gpus in _nproc_vs_gpus(ctx):
        if nproc <= gpus:
            continue
        plural = "s" if gpus > 1 else ""
        per_task = inherited_per_task(ctx, step)
        if step_gpus(step) is None and per_task and gpus < job.gpus_on_each_node:
            # one task per node here (several are HPC101's): it takes the job's per-task count, not the node's
            chain = with_chain(step.chain, srun=step.chain.srun.replace(gpus_per_task=nproc))
            fix = count_fix(ctx, f"give the step's one task per node --gpus-per-task={nproc}", step, chain) \
                if nproc <= job.gpus_on_each_node else None
            yield (step.line, f"--nproc-per-node={nproc} but this step gets {gpus} GPU{plural} per node: srun takes "
                              f"the job's --gpus-per-task={job.gpus_per_task} (sbatch exports SLURM_GPUS_PER_TASK) for "
                              f"its one task per node, so the workers beyond {gpus} find no GPU (invalid device "
                              f"ordinal); give srun --gpus-per-task={nproc}", fix)
            continue
        if step_gpus(step) is not None:
            yield (step.line, f"--nproc-per-node={nproc} but srun asks for {gpus} GPU{plural} per node for this step, "
                              f"so its workers see only {gpus}; give srun --gres=gpu:{nproc} (or drop it: the step "
                              f"then sees the job's GPUs), or use --nproc-per-node={gpus}")
            continue
        if job.gpus_per_task and not job.gpus_per_node:
            # per task, not per node: which of the two was meant is the user's call, so no fix
            yield (step.line, f"--nproc-per-node={nproc} but --gpus-per-task={job.gpus_per_task} gives the job {gpus} "
                              f"GPU{plural} per node ({job.gpus_per_task} for each of its tasks there); if each node "
                              f"should have {nproc}, ask for --gpus-per-node={nproc}, else use --nproc-per-node={gpus}")
            continue
        if job.gpus and not job.gpus_per_node:
            yield (step.line, f"--nproc-per-node={nproc} but --gpus={job.gpus} is the job's total, about {gpus} GPU{plural} "
                              f"per node; ask for --gpus-per-node={nproc} (or use --nproc-per-node={gpus})")
            continue
        chain = with_chain(step.chain, launcher=step.chain.launcher.replace(nproc_per_node=str(gpus)))
        yield (step.line, f"--nproc-per-node={nproc} but the job has {gpus} GPU{plural} per node; "
                          f"use --nproc-per-node={gpus}", count_fix(ctx, f"--nproc-per-node={gpus}", step, chain))
    yield from _other_launchers_vs_gpus(ctx)


def _other_launchers_vs_gpus(ctx: Context) -> Iterator[Any]:
    """HPC108 for accelerate launch (--num_processes is the total over --num_machines) and deepspeed --num_gpus
    (which deepspeed gives every host without checking the GPUs there)."""
    for launch in other_launches(ctx):
        step, opts = launch.step, launch.options
        if step is not None and not in_job_component(ctx, step):
            continue
        if launch.srun is not None and (tasks_per_node(ctx, step) or 1) > 1:
            continue  # several launchers per node: HPC101 (accelerate) and HPC117 (deepspeed) say it
        have = (step_gpus(step) if step is not None else None) or ctx.job.gpus_on_each_node
        if not have:
            continue
        plural = "s" if have > 1 else ""
        if launch.name == "deepspeed":
            asked = launch.number(ctx, "--num_gpus")
            if asked is not None and asked > have:
                yield (launch.line, f"deepspeed --num_gpus {asked} starts {asked} processes on each node, which has "
                                    f"{have} GPU{plural}: deepspeed does not check, so the ranks beyond {have} ask for "
                                    f"GPUs that are not there (invalid device ordinal); use --num_gpus {have}")
            continue
        processes, machines = launch.number(ctx, "--num_processes"), launch.machines(ctx)
        if not processes or not machines or any(o in opts for o in ("--cpu", "--gpu_ids", "--tpu")):
            continue
        each = processes // machines
        if each <= have:
            continue
        beyond = (f"the processes beyond {have} share GPUs or find none (invalid device ordinal)")
        if machines > 1:
            yield (launch.line, f"--num_processes {processes} with --num_machines {machines} starts {each} processes on "
                                f"each machine, which has {have} GPU{plural}: {beyond}; --num_processes counts the "
                                f"processes of all machines together: use --num_processes {machines * have}")
        else:
            yield (launch.line, f"accelerate launch --num_processes {processes} starts {processes} processes on a node "
                                f"with {have} GPU{plural}: {beyond}; use --num_processes {have}")


@rule("HPC120", "more-tasks-than-gpus", "warning",
      summary="srun starts more Python tasks per node than the job has GPUs per node",
      why="A program that runs one process per GPU under srun (PyTorch Lightning, DDP with SLURM_LOCALID or "
          "LOCAL_RANK as the device) takes each task for one GPU: with more tasks than GPUs the extra ranks ask for a "
          "device that is not there (invalid device ordinal) or crowd onto the same GPU. Not reported when each "
          "task asks for its own GPUs (--gpus-per-task), or when the job leaves the number of nodes to Slurm.",
      fix="Set --ntasks-per-node to the GPUs per node (--gres=gpu:4 with --ntasks-per-node=4), or request more GPUs.",
      catalogue=(7,),
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:4
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
srun python train.py
""")
@each_component
def _more_tasks_than_gpus(ctx: Context) -> Iterator[Any]:
    gpus = ctx.job.gpus_on_each_node
    if not gpus or ctx.job.gpus_per_task:
        return
    for step in job_component_steps(ctx):
        srun = step.chain.srun
        prog = [str(w) for w in step.chain.program]
        if srun is None or step.chain.launcher is not None or getattr(srun, "gpus_per_task", None) \
                or not prog or not _PYTHON.fullmatch(prog[0].rsplit("/", 1)[-1]):
            continue
        placed = any(isinstance(getattr(layer, "ntasks_per_node", None), int)
                     or (getattr(layer, "nodes", None) is not None and len(set(node_range(layer.nodes) or (0, 1))) == 1)
                     for layer in (ctx.job, srun))
        if not placed:
            continue  # --ntasks=8 alone, or --nodes=1-2: Slurm may spread the tasks over several nodes
        tasks, have = tasks_per_node(ctx, step) or 1, step_gpus(step) or gpus
        if tasks > have:
            yield (step.line, f"srun starts {tasks} tasks per node on {have} GPU{'s' if have > 1 else ''} per node: "
                              f"with one process per GPU the tasks beyond {have} find no GPU of their own (invalid "
                              f"device ordinal) or share one; use --ntasks-per-node={have}")


@rule("HPC121", "lightning-devices-vs-tasks", "error",
      summary="a Lightning trainer's devices or num_nodes differ from the step's tasks per node or nodes",
      why="Under srun, PyTorch Lightning starts no processes of its own: every Slurm task is one process, and it "
          "checks that devices equals SLURM_NTASKS_PER_NODE and num_nodes equals SLURM_NNODES. When they differ it "
          "stops at start-up ('You set devices=4 in Lightning, but the number of tasks per node configured in SLURM "
          "--ntasks-per-node=1 does not match'; older versions wait for processes that never come), and with "
          "--ntasks but no --ntasks-per-node it refuses to start ('Use --ntasks-per-node'). Read from the "
          "trainer's settings on the command line: LightningCLI's --trainer.devices and Hydra's (NeMo's) "
          "trainer.devices=.",
      fix="One task per GPU: --ntasks-per-node equal to trainer.devices (and --gres=gpu:N to match), and --nodes "
          "equal to trainer.num_nodes.",
      catalogue=(7,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
srun python train.py fit --trainer.devices=4 --trainer.num_nodes=2
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
srun python train.py fit --trainer.devices=4 --trainer.num_nodes=2
""")
@each_component
def _lightning_devices_vs_tasks(ctx: Context) -> Iterator[Any]:
    if ctx.job.job_name in ("bash", "interactive"):
        return  # Lightning's own way out: under these job names it does not take the job for a Slurm launch
    for step in job_component_steps(ctx):
        srun = step.chain.srun
        prog = [str(w) for w in step.chain.program]
        if srun is None or step.chain.launcher is not None or not prog \
                or not _PYTHON.fullmatch(prog[0].rsplit("/", 1)[-1]):
            continue  # torchrun or accelerate start the processes themselves: Lightning then does not read Slurm's
        settings = _trainer_settings(prog[1:])
        if not settings:
            continue
        per_node = next((n for n in (srun.ntasks_per_node, ctx.job.ntasks_per_node) if isinstance(n, int)), None)
        devices = settings.get("devices")
        if devices is not None and per_node is not None and devices[1] != per_node:
            yield (step.line, f"{devices[0]} under srun with --ntasks-per-node={per_node}: Lightning runs one process "
                              f"per Slurm task and stops at start-up (devices must equal the tasks per node); "
                              f"use --ntasks-per-node={devices[1]}, one task per GPU")
        elif devices is not None and per_node is None and isinstance(ctx.job.ntasks, int) and ctx.job.ntasks > 1 \
                and not isinstance(srun.ntasks, int):
            yield (step.line, f"{devices[0]} with --ntasks={ctx.job.ntasks} and no --ntasks-per-node: Lightning refuses "
                              f"to start under srun without SLURM_NTASKS_PER_NODE; use --ntasks-per-node={devices[1]} "
                              "with --nodes instead of --ntasks")
        nodes = next((n for n in (srun.nodes, ctx.job.nodes) if isinstance(n, int)), None)
        num_nodes = settings.get("num_nodes")
        if num_nodes is not None and nodes is not None and num_nodes[1] != nodes:
            written = num_nodes[0]
            yield (step.line, f"{written} under srun on {nodes} node{'s' if nodes > 1 else ''}: Lightning checks "
                              "num_nodes against the step's nodes (SLURM_NNODES) and stops at start-up; use "
                              f"{written[:written.rindex('=') + 1]}{nodes}")


#: a Lightning trainer setting on the command line: LightningCLI's --trainer.devices=4 / --trainer.devices 4, and
#: Hydra's trainer.devices=4 (with + or ++ to add or force it), as NeMo and lightning-hydra-template take them
_TRAINER_SETTING = re.compile(r"(?:--|\+{0,2})trainer\.(devices|num_nodes)(?:=(.*))?")


def _trainer_settings(args: list[str]) -> dict[str, tuple[str, int]]:
    """``devices`` and ``num_nodes`` given to the trainer as whole numbers, each with its words as written;
    ``auto``, ``-1`` (every GPU) and device lists are left out: their count depends on the node."""
    out: dict[str, tuple[str, int]] = {}
    for i, word in enumerate(args):
        m = _TRAINER_SETTING.fullmatch(word)
        if m is None:
            continue
        value, text = m.group(2), word
        if value is None:
            if not word.startswith("--") or i + 1 >= len(args):
                continue  # Hydra's form always has '='
            value, text = args[i + 1], f"{word}={args[i + 1]}"
        if value.isdigit() and int(value) > 0:
            out[m.group(1)] = (text, int(value))
    return out


@rule("HPC109", "fewer-workers-than-gpus", "warning",
      summary="torchrun starts fewer workers per node than the job has GPUs per node",
      why="Each worker drives one GPU; the extra GPUs are allocated (and charged) but stay idle.",
      fix="Set --nproc-per-node to the GPUs per node, or request fewer GPUs.",
      catalogue=(7,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:4
torchrun --standalone --nnodes=1 --nproc-per-node=2 train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:2
torchrun --standalone --nnodes=1 --nproc-per-node=2 train.py
""")
@each_component
def _too_few_workers(ctx: Context) -> Iterator[Any]:
    for step, nproc, gpus in _nproc_vs_gpus(ctx):
        if nproc < gpus:
            yield step.line, f"--nproc-per-node={nproc} leaves {gpus - nproc} of the {gpus} GPUs per node idle; use --nproc-per-node={gpus} or request {nproc}"
    yield from _idle_task_gpus(ctx)


def _idle_task_gpus(ctx: Context) -> Iterator[Any]:
    """HPC109 for srun steps of several launchers per node, each in a task with GPUs of its own (HPC101 leaves
    those alone when no GPU is shared): a launcher with fewer workers than its task's GPUs leaves the rest idle."""
    for step in job_component_steps(ctx):
        launcher, own = step.chain.launcher, own_task_gpus(ctx, step)
        if launcher is None or not own or (tasks_per_node(ctx, step) or 1) < 2:
            continue
        nproc = as_int(ctx, launcher.nproc_per_node, step.line)
        if nproc is not None and 0 < nproc < own:
            yield (step.line, f"--nproc-per-node={nproc} leaves {own - nproc} of the {own} GPUs of each task idle "
                              f"(each launcher runs in a task of its own GPUs, --gpus-per-task={own}); use "
                              f"--nproc-per-node={own} or request --gpus-per-task={nproc}")


@rule("HPC111", "deprecated-launcher", "info",
      summary="python -m torch.distributed.launch is deprecated",
      why="PyTorch replaced it with torchrun, which sets LOCAL_RANK in the environment instead of passing "
          "--local-rank to the script, restarts failed workers and supports the c10d rendezvous.",
      fix="Use torchrun with the same options and read the rank from os.environ['LOCAL_RANK'] in the script.",
      catalogue=(21,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:2
python -m torch.distributed.launch --nproc_per_node=2 train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:2
torchrun --standalone --nnodes=1 --nproc-per-node=2 train.py
""")
def _legacy(ctx: Context) -> Iterator[Any]:
    for step in steps(ctx):
        if is_legacy(step):
            yield step.line, "python -m torch.distributed.launch is deprecated; use torchrun (it sets LOCAL_RANK in the environment)"


@rule("HPC112", "nnodes-differs-from-job", "error",
      summary="torchrun --nnodes (accelerate --num_machines, deepspeed --num_nodes) differs from the number of "
              "launchers srun starts (one per node in a correct job) or the job's nodes",
      why="The rendezvous waits until --nnodes launchers have joined, wherever they run: with more than srun starts "
          "(tasks per node × nodes) it hangs; with fewer, the extra launchers are rejected and fail. accelerate "
          "launch hands --num_machines to torchrun as --nnodes, with the same result; without --num_machines (or a "
          "config file) it is one machine, so started on several nodes it runs a separate training on each. "
          "deepspeed --num_nodes takes the first hosts of its hostfile: more than the job has gives a smaller run than planned (or reaches hosts "
          "outside the job), and without a hostfile deepspeed stops ('Num nodes is >1 but no extra nodes available "
          "via hostfile'). (In a heterogeneous job only steps in its first component are judged: the job's counts "
          "are that component's.)",
      fix="Write --nnodes=$SLURM_NNODES or the job's --nodes value (accelerate: --num_machines; deepspeed: "
          "--num_nodes).",
      catalogue=(7, 21),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=4 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes="$SLURM_NNODES" --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
""")
@each_component
def _nnodes_mismatch(ctx: Context) -> Iterator[Any]:
    if not isinstance(ctx.job.nodes, int):
        return
    for step in job_component_steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or launcher.standalone:
            continue
        nnodes = as_int(ctx, launcher.nnodes, step.line) if launcher.nnodes and ":" not in launcher.nnodes else launcher.nnodes_int
        srun = step.chain.srun
        if srun is None and job_nodes(ctx) > 1:
            continue  # HPC110: the launcher runs on the first node only
        nodes = srun.nodes if srun is not None and isinstance(srun.nodes, int) else (ctx.job.nodes if srun is not None else 1)
        ntasks = as_int(ctx, srun.ntasks, step.line) if srun is not None and srun.ntasks is not None else None
        if nnodes is not None and ntasks is not None and ntasks < nnodes <= nodes and tasks_per_node(ctx, step) == 1:
            # srun --ntasks caps the launchers: a job grown to more nodes keeps starting the old number
            yield (step.line, f"--nnodes={launcher.nnodes} but srun --ntasks={srun.ntasks} starts only {ntasks} torchrun "
                              f"launcher{'s' if ntasks != 1 else ''}: the rendezvous waits forever for the others; use "
                              f"srun --ntasks={nnodes}, or --ntasks=\"$SLURM_NNODES\" so it follows the job")
            continue
        hidden = any(ctx.parsed.may_split(w, step.line) for w in step.command.words) or launcher.options_out_of_sight \
            or ctx.parsed.variable("PET_NNODES", step.line) is not None  # torchrun $ARGS: options out of sight
        if nnodes is None and not launcher.nnodes and nodes > 1 and tasks_per_node(ctx, step) == 1 and not hidden:
            chain = with_chain(step.chain, launcher=launcher.replace(nnodes=str(nodes)))
            yield (step.line, f"torchrun has no --nnodes, so it takes 1 (1:1), but srun starts it on {nodes} nodes: the "
                              f"launchers beyond the first cannot join and the job hangs; use --nnodes={nodes}",
                   count_fix(ctx, f"--nnodes={nodes}", step, chain))
            continue
        if nnodes is None or nnodes == nodes:
            continue
        # the rendezvous counts launchers (agents), not hosts: srun starts tasks per node × nodes of them
        per_node = tasks_per_node(ctx, step) if srun is not None else 1
        if per_node is None:
            continue
        agents = per_node * nodes
        if nnodes == agents:
            continue  # as many launchers as --nnodes waits for: the rendezvous completes (HPC101 says the rest)
        where = f"{nodes} node{'s' if nodes > 1 else ''}"
        if per_node > 1:
            # HPC101 reports the launchers per node; its fix (one per node) makes --nnodes={nodes} right
            yield (step.line, f"--nnodes={launcher.nnodes} but srun starts {agents} torchrun launchers ({per_node} on "
                              f"each of {where}); the rendezvous "
                              f"{'waits forever' if nnodes > agents else 'rejects the extra launchers'}; start one "
                              f"launcher per node and use --nnodes={nodes}")
            continue
        chain = with_chain(step.chain, launcher=launcher.replace(nnodes=str(nodes)))
        yield (step.line, f"--nnodes={launcher.nnodes} but the launcher runs on {where} (one launcher each); "
                          f"the rendezvous {'waits forever' if nnodes > nodes else 'rejects the extra launchers'}; "
                          f"use --nnodes={nodes}", count_fix(ctx, f"--nnodes={nodes}", step, chain))
    yield from _accelerate_machines_mismatch(ctx)
    yield from _deepspeed_nodes_mismatch(ctx)


def _accelerate_machines_mismatch(ctx: Context) -> Iterator[Any]:
    """HPC112 for accelerate launch started once per machine: --num_machines is torchrun's --nnodes."""
    for launch in other_launches(ctx):
        machines = launch.machines(ctx) if launch.name == "accelerate launch" else None  # 1 when it is not given
        if launch.name != "accelerate launch" or machines is None or launch.placed_by_hand \
                or accelerate_path(launch, machines) != "per_machine":
            continue
        if launch.srun is None:
            if job_nodes(ctx) > 1 or machines <= 1:
                continue  # HPC110: the batch shell starts the first node's machine only
            yield (launch.line, f"accelerate launch --num_machines {machines} runs once, on this job's one node: the "
                                f"rendezvous waits for {machines} machines and the job hangs; use --num_machines 1, or "
                                f"ask for {machines} nodes and start it on each with srun --ntasks-per-node=1")
            continue
        if not in_job_component(ctx, launch.step):
            continue
        nodes, per_node = _step_nodes(ctx, launch.step), tasks_per_node(ctx, launch.step) or 1
        if machines in (nodes, nodes * per_node):
            continue  # as many launchers as it waits for (HPC101 reports several on a node)
        if "--num_machines" not in launch.options:
            yield (launch.line, f"accelerate launch without --num_machines (or a config file) runs as one machine, and "
                                f"srun starts it on {nodes} nodes: {nodes} separate trainings, each on its own node's "
                                f"GPUs, that never exchange gradients; use --num_machines {nodes} with --machine_rank "
                                "and --main_process_ip (the head node)")
            continue
        started = f"{nodes * per_node} accelerate launchers ({per_node} on each of {nodes} nodes)" if per_node > 1 \
            else f"accelerate launch on {nodes} node{'s' if nodes > 1 else ''} (one launcher each)"
        outcome = "waits forever for the missing ones" if machines > nodes * per_node \
            else "has no place for the launchers beyond it, which fail"
        yield (launch.line, f"--num_machines {machines} but srun starts {started}: the rendezvous {outcome}; use "
                            f"--num_machines {nodes}" + (" with one launcher per node" if per_node > 1 else ""))


def _deepspeed_nodes_mismatch(ctx: Context) -> Iterator[Any]:
    """HPC112 for deepspeed --num_nodes larger than the job's nodes."""
    nodes = job_nodes(ctx)
    for launch in other_launches(ctx):
        asked = launch.number(ctx, "--num_nodes")
        if launch.name != "deepspeed" or asked is None or asked <= nodes \
                or (launch.step is not None and not in_job_component(ctx, launch.step)):
            continue
        where = f"the job has {nodes} node{'s' if nodes > 1 else ''}"
        if "--hostfile" not in launch.options and "-H" not in launch.options:
            if nodes > 1 and launch.srun is None:
                continue  # HPC110 says it: no hostfile, so no other node
            yield (launch.line, f"deepspeed --num_nodes {asked} without --hostfile finds no other node and stops ('Num "
                                f"nodes is >1 but no extra nodes available via hostfile'); {where}: use "
                                f"--num_nodes {nodes}" + (" with a hostfile of its nodes" if nodes > 1 else ""))
            continue
        yield (launch.line, f"deepspeed --num_nodes {asked} but {where}: deepspeed takes the first {asked} hosts of "
                            f"its hostfile, so a hostfile of the job's nodes gives a run on {nodes} (not the {asked} it "
                            "was planned for) and hosts beyond them are outside the job; use --num_nodes "
                            f"{nodes} (or $SLURM_NNODES)")


@rule("HPC113", "standalone-on-several-nodes", "error",
      summary="torchrun --standalone is started on several nodes",
      why="--standalone makes a private rendezvous on each node, so every node trains its own separate copy of "
          "the model: the nodes never communicate and results are silently wrong (and overwrite each other).",
      fix="Use --rdzv-backend=c10d --rdzv-endpoint=\"$head_node:29500\" --rdzv-id=\"$SLURM_JOB_ID\" across nodes.",
      catalogue=(4, 21),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
srun torchrun --standalone --nproc-per-node=1 train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
srun torchrun --standalone --nproc-per-node=1 train.py
""")
@each_component
def _standalone_multi(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or not launcher.standalone or step.chain.srun is None:
            continue
        srun = step.chain.srun
        nodes = srun.nodes if isinstance(srun.nodes, int) else job_nodes(ctx)
        if nodes > 1:
            chain = with_chain(step.chain, launcher=launcher.replace(
                standalone=False, nnodes=str(nodes), rdzv_backend="c10d", rdzv_endpoint=f"${HEAD_NODE_VAR}:{DEFAULT_RDZV_PORT}",
                rdzv_id="$SLURM_JOB_ID"), srun=srun.replace(ntasks_per_node=1, ntasks=None))
            has_head = ctx.parsed.variable(HEAD_NODE_VAR, step.line) is not None
            yield (step.line, f"--standalone on {nodes} nodes: each node trains alone; use the c10d rendezvous at the head node",
                   count_fix(ctx, "one rendezvous for all nodes", step, chain, () if has_head else (HEAD_NODE_LINE,)))


#: torchrun problems other rules report (HPC102/103/105/113), or that torchrun itself only ignores
_LAUNCHER_FIELDS_ELSEWHERE = ("standalone", "rdzv_endpoint", "rdzv_backend", "rdzv_id", "node_rank", "master_addr",
                              "master_port")


@rule("HPC114", "launcher-command-check", "error",
      summary="the torchrun command fails its own checks (a worker count that is not a number, no script, "
              "python or a container program given as the script, options that exclude each other)",
      why="torchrun stops with a usage error before any worker starts, after the job has waited in the queue.",
      fix="Follow the message: give --nproc-per-node a number (or gpu, cpu, auto), name the training script (torchrun "
          "… train.py, not torchrun … python train.py: torchrun starts Python itself unless --no-python is given), and "
          "keep one of two options that exclude each other.",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:4
srun torchrun --standalone --nproc-per-node=four train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:4
srun torchrun --standalone --nproc-per-node=4 train.py
""")
def _launcher_check(ctx: Context) -> Iterator[Any]:
    for step in steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or is_legacy(step):
            continue
        # in srun bash -c '…' a \$NAME is the task's to expand; elsewhere it is the text $NAME itself, which no
        # other rule reports
        wrapped = shell_script_word(step) is not None
        literal = launcher.literal_references()
        for p in launcher.problems():
            root = p.field.split(".", 1)[0]
            if p in literal:
                if wrapped:
                    continue
            elif root in _LAUNCHER_FIELDS_ELSEWHERE or _holds_reference(getattr(launcher, root, ""), wrapped):
                continue
            where = f" (--{root.replace('_', '-')})" if root and root not in ("script", "extra") else ""
            message = f"torchrun{where}: {p.message}"
            lines = ctx.parsed.lines
            if root == "script" and step.end_line < len(lines) and lines[step.end_line][:1] in (" ", "\t") \
                    and lines[step.end_line].strip():
                message += (f"; line {step.end_line + 1} is indented like the rest of this command: "
                            f"line {step.end_line} may have lost its trailing backslash")
            yield step.line, message
        found = _python_as_script(launcher)
        if found:
            yield step.line, found


#: an interpreter's name: python, python3, python3.11
_PYTHON = re.compile(r"python[0-9.]*")


#: programs that are no Python file, which torchrun would hand to Python as the training script
_PROGRAMS_NOT_SCRIPTS = frozenset({"apptainer", "singularity", "ch-run", "bash", "sh", "srun"})


def _python_as_script(launcher: Any) -> str:
    """The message for ``torchrun … python train.py`` or ``torchrun … singularity exec IMG python3 train.py`` (a
    program where the training script goes, without --no-python), or ""."""
    script = str(launcher.script or "")
    program = script.rsplit("/", 1)[-1]
    if launcher.no_python or getattr(launcher, "module", False):
        return ""
    args = " ".join(str(a) for a in launcher.args)
    runs = f"each worker runs python -u {script} {args}".rstrip()
    if _PYTHON.fullmatch(program):
        return (f"torchrun starts the training script with Python itself, so '{script}' is taken as the script: "
                f"{runs} and fails (can't open file '{script}'); drop {script}: torchrun … {args or 'train.py'}")
    if program in _PROGRAMS_NOT_SCRIPTS:
        inside = (" start torchrun inside the container instead (apptainer exec --nv IMAGE torchrun … train.py), or"
                  if program in ("apptainer", "singularity", "ch-run") else "")
        return (f"torchrun hands its script to Python, so the program '{script}' is taken for a Python file: {runs} "
                f"and fails (can't open file '{script}');{inside} give --no-python so that each worker runs the "
                "command itself")
    return ""


#: the host sbatch was run on (a login node, as a rule): no process of the job runs there
_SUBMIT_HOST = re.compile(r"\$\{?SLURM_SUBMIT_HOST\}?")


@rule("HPC122", "master-addr-not-the-head-node", "error",
      summary="the rendezvous host (MASTER_ADDR, --master-addr, --rdzv-endpoint, --main_process_ip) is "
              "$SLURM_SUBMIT_HOST, or MASTER_ADDR is a node list",
      why="SLURM_SUBMIT_HOST is the host sbatch was run on, usually a login node: no process of the job runs or "
          "listens there, so the ranks wait to meet it until the rendezvous times out (or the job's time runs "
          "out). A MASTER_ADDR of $SLURM_JOB_NODELIST is a compressed list such as gpu[01-02], no host name at all "
          "(for torchrun's own options that is HPC102). Programs started by srun (Lightning, torch.distributed with "
          "env://) read the exported MASTER_ADDR.",
      fix="Use the first node of the job, resolved on the host: "
          "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1).",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
export MASTER_ADDR=$SLURM_SUBMIT_HOST
export MASTER_PORT=29500
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_PORT=29500
srun python train.py
""")
def _master_addr_not_head_node(ctx: Context) -> Iterator[Any]:
    said = "SLURM_SUBMIT_HOST is the host sbatch ran on (a login node), where no process of the job listens"
    exported = re.search(r"^\s*export\s+(?:[\w-]+\s+)*MASTER_ADDR\b", ctx.parsed.source, re.MULTILINE) is not None
    for var in ctx.parsed.variables:
        if var.name != "MASTER_ADDR" or isinstance(var.value, Verbatim) or not (var.exported or exported):
            continue  # a MASTER_ADDR the script does not export reaches no program (a launch that uses it: below)
        value = ctx.parsed.resolve(str(var.value), var.line)
        if _SUBMIT_HOST.search(value):
            yield var.line, (f"MASTER_ADDR={var.value}: {said}, so the ranks never meet; use the job's first node: "
                             'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)')
        elif _NODELIST_REF.fullmatch(value.strip("\"'")) and job_nodes(ctx) > 1:
            yield var.line, (f"MASTER_ADDR={var.value} is the job's node list in Slurm's compressed form (gpu[01-02]), "
                             "no host name, so the ranks cannot reach it; use the first node: "
                             'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)')
    for step in steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or launcher.kind != "torchrun":
            continue
        for option, value in (("--rdzv-endpoint", launcher.rdzv_endpoint), ("--master-addr", launcher.master_addr)):
            if value and _SUBMIT_HOST.search(ctx.parsed.resolve(str(value), step.line)):
                yield step.line, f"{option}={value}: {said}, so the nodes never meet; use the job's first node"
    for launch in other_launches(ctx):
        host = launch.options.get("--main_process_ip", "")
        if host and _SUBMIT_HOST.search(ctx.parsed.resolve(host, launch.line)):
            yield launch.line, f"--main_process_ip {host}: {said}, so the machines never meet; use the job's first node"


# --------------------------------------------------------------------------------------------
# containers

APPTAINER_FLAGS = re.compile(r"^(--nv|--nvccli|--rocm|--bind|-B|--mount|--cleanenv|-e|--contain|-c|--containall|-C|"
                             r"--no-home|--home|-H|--env|--env-file|--cwd|--pwd|--writable-tmpfs|--overlay|--fakeroot)(=|$)")


@rule("HPC201", "gpu-not-passed-to-container", "error",
      summary="GPUs are requested but the container runs without --nv (NVIDIA) or --rocm (AMD)",
      why="Without the flag the container sees no GPU driver: PyTorch silently falls back to the CPU (or fails "
          "with 'no CUDA GPUs are available') while the GPUs you were charged for sit idle. When another container "
          "step of the job has the flag, a step without it is most likely a CPU-only helper (tar, a compile) and is "
          "only advice (HPC220), unless it starts a distributed launcher; --nv written after the image is HPC203. "
          "APPTAINER_NV=1 (SINGULARITY_NV=1) exported before the step counts as --nv, and so does a CDI device "
          "naming a GPU (--device nvidia.com/gpu=all, SingularityCE 4's OCI mode). AMD GPUs (the profile's "
          "gpu_vendor, or a script that shows ROCm) are left alone: ROCm images carry their own libraries and the "
          "container sees the host's /dev/kfd and /dev/dri, so sites such as LUMI run them without --rocm.",
      fix="Add --nv for NVIDIA GPUs or --rocm for AMD GPUs to apptainer exec/run (Charliecloud: inject the driver "
          "once with ch-fromhost --nvidia IMAGE_DIR). Intel GPUs need neither flag.",
      catalogue=(6, 27),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv pytorch_2.3.sif python train.py
""")
@each_component
def _gpu_flag_missing(ctx: Context) -> Iterator[Any]:
    reported: set[int] = set()
    for step, c, flag, other in _steps_without_gpu_flag(ctx):
        if other is not None and step.chain.launcher is None:
            continue  # another step has the flag: a CPU helper (tar, compile), HPC220 says so
        start = _instance_of(ctx, step, c)
        if start is not None:
            # exec/run instance://NAME joins the running instance: the GPUs are set up (or not) when it starts
            if start.line not in reported:
                reported.add(start.line)
                yield (start.line, f"the job requests GPUs but the instance {start.name} is started without {flag}, "
                                   f"so {c.binary} {c.action} instance://{start.name} on line {step.line} sees no GPU; "
                                   f"add {flag} to {start.binary} instance start")
            continue
        chain = type(step.chain)(step.chain.srun, c.replace(**{flag.lstrip("-"): True}), step.chain.launcher,
                                 step.chain.program, step.chain.notes)
        # "apptainer run IMG --nv": after the image, the flag goes to the runscript (HPC203 leaves run alone)
        late = flag in [str(w) for w in getattr(c, "command", ()) or step.chain.program]
        where = f" ({flag} after the image is passed to the runscript, not to {c.binary}: it belongs before " \
                "the image)" if late else ""
        # no fix where it cannot be whole (the options after the image would stay there) or where the script
        # shows AMD GPUs against the profile's word (which of the two is wrong is the user's call)
        fix = None if late or shows_amd(ctx) else fix_for(ctx, f"add {flag}", step, chain)
        yield (step.line, f"the job requests GPUs but {c.binary} {c.action} runs without {flag}: no GPU is visible "
                          f"inside the container; add {flag}{where}", fix)


#: the container options that make the GPUs visible
GPU_FLAGS = ("--nv", "--rocm", "--nvccli")
#: the variables that set them for every apptainer/singularity command (Apptainer reads both prefixes)
_GPU_FLAG_VARS = tuple(f"{prefix}_{name}" for prefix in ("APPTAINER", "SINGULARITY") for name in ("NV", "NVCCLI", "ROCM"))


def _gpu_flag_from_env(ctx: Context, step: Any) -> bool:
    """Whether APPTAINER_NV=1 (or a sibling) is exported before the step or set on its command line,
    which turns the flag on."""
    own = dict(step.env)
    for name in _GPU_FLAG_VARS:
        var = ctx.parsed.variable(name, step.line)
        value = own[name] if name in own else (var.value if var is not None and var.exported else "")
        if str(value).strip("'\"").lower() in ("1", "true", "yes", "on"):
            return True
    return False

INSTANCE_SCHEME = "instance://"


@dataclasses.dataclass(frozen=True)
class InstanceStart:
    """``apptainer instance start [options] IMAGE NAME`` (``singularity instance.start`` of old)."""

    line: int
    binary: str
    name: str          # resolved through the script's variables
    gpu: bool          # started with --nv, --rocm or --nvccli


def instance_starts(ctx: Context) -> list[InstanceStart]:
    """Every ``instance start`` of the script, in order."""
    def make() -> list[InstanceStart]:
        out = []
        for cmd in ctx.parsed.lexed.code:
            if cmd.kind != "simple":
                continue
            words = run_words([str(v) for v in cmd.argv])
            if len(words) < 2 or words[0].rsplit("/", 1)[-1] not in ("apptainer", "singularity"):
                continue
            if words[1:3] == ["instance", "start"]:
                rest = words[3:]
            elif words[1] == "instance.start":
                rest = words[2:]
            else:
                continue
            positional = [w for w in rest if not w.startswith("-")]
            if not positional:
                continue
            name = ctx.parsed.resolve(positional[-1], cmd.line)
            out.append(InstanceStart(cmd.line, words[0].rsplit("/", 1)[-1], name,
                                     any(w.partition("=")[0] in GPU_FLAGS for w in rest)))
        return out
    return cached(ctx, "instance_starts", make)


def _instance_of(ctx: Context, step: Any, c: Any) -> InstanceStart | None:
    """The ``instance start`` a step joins with ``instance://NAME`` (the last one before it), or None."""
    image = ctx.parsed.resolve(str(c.image), step.line)
    if not image.startswith(INSTANCE_SCHEME):
        return None
    name = image[len(INSTANCE_SCHEME):]
    found = None
    for start in instance_starts(ctx):
        if start.name == name and start.line < step.line:
            found = start
    return found
#: the options of APPTAINER_FLAGS that take no value
_APPTAINER_SWITCHES = ("--nv", "--nvccli", "--rocm", "--cleanenv", "-e", "--contain", "-c", "--containall", "-C",
                       "--no-home", "--writable-tmpfs", "--fakeroot")


def _gpu_flag_after_image(step: Any) -> bool:
    """--nv/--rocm/--nvccli among the apptainer options written after the image (HPC203 reads them so)."""
    words = [str(w) for w in step.chain.program]
    i = 0
    while i < len(words) and APPTAINER_FLAGS.match(words[i]):
        if words[i] in GPU_FLAGS:
            return True
        switch = "=" in words[i] or words[i] in _APPTAINER_SWITCHES
        i += 1 if switch else 2  # --bind SRC:DST --nv: skip the option's value
    return False


def _steps_without_gpu_flag(ctx: Context) -> list[tuple[Any, Any, str, int | None]]:
    """Apptainer steps of a GPU job that run without the vendor's GPU flag: ``(step, container, flag, line)``,
    where ``line`` is that of another container step that has a GPU flag (None when no step has one).

    A step whose --nv sits after the image is left to HPC203: the flag is there, only misplaced, and its fix
    moves it (adding one more would write it twice).
    """
    def make() -> list[tuple[Any, Any, str, int | None]]:
        if not ctx.job.gpus_on_each_node:
            return []
        if gpu_vendor(ctx) != "nvidia":
            return []  # AMD: the image's ROCm and the host's /dev suffice; Intel needs no flag
        flag = "--nv"
        from . import rules as all_rules
        moved = {f.line for f in all_rules()["HPC203"].check(ctx)}
        runs = [(s, c) for s, c in containers(ctx) if c.kind == "apptainer.run" and in_job_component(ctx, s)]

        def has_gpus(s: Any, c: Any) -> bool:
            if ctx.parsed.resolve(str(c.image), s.line).startswith(INSTANCE_SCHEME):
                start = _instance_of(ctx, s, c)
                return start is None or start.gpu  # no start in the script: nothing to say
            return c.gpu or _gpu_flag_from_env(ctx, s) or _flag_in_a_variable(c)  # c.gpu: a CDI GPU device too
        with_flag = [s.line for s, c in runs if has_gpus(s, c) or _gpu_flag_after_image(s)]
        with_flag += [c.line for c in _code_lines_with_gpu_container(ctx) if c.line not in with_flag]
        out = []
        for step, c in runs:
            if has_gpus(step, c) or (_gpu_flag_after_image(step) and step.line in moved):
                continue
            other = next((line for line in with_flag if line != step.line), None)
            out.append((step, c, flag, other))
        return out
    return cached(ctx, "steps_without_gpu_flag", make)


def _code_lines_with_gpu_container(ctx: Context) -> list[Any]:
    """Commands the reader sees no step in that run a container with a GPU flag: ``mpirun -n 4 singularity exec --nv
    …`` (mpirun is no layer of the models), so that a step beside them without the flag reads as a CPU helper."""
    step_lines = {s.line for s in steps(ctx)}
    out = []
    for cmd, _, _ in _code_in_order(ctx):
        if cmd.kind != "simple" or cmd.line in step_lines:
            continue
        words = [str(v) for v in cmd.argv]
        at = next((k for k, w in enumerate(words) if w.rsplit("/", 1)[-1] in ("apptainer", "singularity")), None)
        if at is not None and words[at + 1:at + 2] in (["exec"], ["run"]) and any(w in GPU_FLAGS for w in words[at:]):
            out.append(cmd)
    return out


def _flag_in_a_variable(c: Any) -> bool:
    """Whether the container has an option word kept as written from a variable (``nv="--nv"`` set in an ``if``,
    then ``singularity exec $nv …``; an array of options, ``"${OPTS[@]}"``), or an array whose elements the reader
    cannot see where the image is read: either may be the GPU flag, so no rule may say the flag is missing."""
    return any(kept_reference(e) for e in c.extra) or bool(ARRAY_WORD.fullmatch(str(c.image)))


#: bind sources that hold every user's home directory (the home's real path is not in the script)
_HOME_ROOTS = ("", "/home", "/home/$USER", "/u", "/users", "/Users")


def _covered_by_bind(ctx: Context, c: Any, path: str, line: int) -> bool:
    """Whether a bind mounts something at ``path`` in the container: ``--bind "$HOME/project"``, a directory
    holding the home (``-B /home``), a bind whose destination is the folder (``-B "$PWD:$HOME"``), or the
    same in APPTAINER_BIND/SINGULARITY_BIND."""
    binds = list(getattr(c, "binds", ()))
    for name in ("APPTAINER_BIND", "SINGULARITY_BIND", "APPTAINER_BINDPATH", "SINGULARITY_BINDPATH"):
        var = ctx.parsed.variable(name, line)
        if var is not None and var.exported:
            binds += [Bind.from_token(part) for part in str(var.value).split(",") if part]
    for b in binds:
        # where the bind appears in the container: -B "$PWD:$HOME" gives the contained step a $HOME
        target = ctx.parsed.resolve(bind_destination(b), line).rstrip("/")
        if target in _HOME_ROOTS or path == target or path.startswith(target + "/"):
            return True
    return False


@rule("HPC221", "home-file-in-contained-container", "error",
      summary="--contain/--containall/--no-home, but the step runs a file from the host's $HOME",
      why="--contain and --containall give the container an empty home directory, and --no-home mounts none: a "
          "script or file named under $HOME (expanded by the batch shell to the host's /home/… path) is not there, "
          "and the step stops at once with 'No such file or directory'.",
      fix="Bind the directory in at the same path (--bind \"$HOME/project\"), or at a path of its own "
          "(--bind \"$HOME/project:/project\" and python /project/train.py), or drop the containment flag.",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv --containall pytorch_2.3.sif python "$HOME/project/train.py"
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv --containall --bind "$HOME/project:/project" pytorch_2.3.sif python /project/train.py
""")
def _home_file_contained(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if c.kind != "apptainer.run" or c.home or not c.hides_home:
            continue
        if not (c.contain or c.containall) and any(w.value == "cd" for cmd in simple_commands(ctx)
                                                    if cmd.line < step.line for w in cmd.words[:1]):
            continue  # --no-home still mounts the current directory, which a cd may have made the project's
        launcher = step.chain.launcher
        words = [launcher.script, *launcher.args] if launcher is not None else [*step.chain.program, *c.command]
        for word in words:
            path = ctx.parsed.resolve(str(word), step.line)
            if path.startswith("-") and "=" in path:
                path = path.split("=", 1)[1]  # --config=$HOME/cfg.yaml
            if not _under_home(path) or _covered_by_bind(
                    ctx, c, path.replace("${HOME}", "$HOME").replace("~", "$HOME", 1), step.line):
                continue
            flag = "--containall" if c.containall else "--contain" if c.contain else "--no-home"
            yield (step.line, f"{path} is in the host's home directory, which {flag} leaves out of the container: the "
                              f"step fails with 'No such file or directory'; bind it in (--bind \"{path.rsplit('/', 1)[0]}\") "
                              f"or drop {flag}")
            break


#: variables that name the host's own folders: ch-run shows none of them unless they are bound in
_HOST_FOLDER = re.compile(r"^\$\{?(HOME|SCRATCH|WORK|PROJECT|STORE|PWD|SLURM_SUBMIT_DIR|SLURM_TMPDIR)\b\}?(/|$)|^~(/|$)")
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: programs whose first plain argument is a script file
_INTERPRETER = re.compile(r"^(python[0-9.]*|bash|sh|Rscript|julia|perl)$")


def _script_argument(program: list[str]) -> str | None:
    """The script an interpreter runs (``python -u train.py`` → ``train.py``); None for ``-m``/``-c`` or none."""
    if not program or not _INTERPRETER.match(program[0].rsplit("/", 1)[-1]):
        return None
    for word in program[1:]:
        if word in ("-m", "-c", "-e", "-"):
            return None
        if not word.startswith("-"):
            return word
    return None


@rule("HPC224", "charliecloud-host-path", "error",
      summary="ch-run runs a file from a host folder it does not mount, or a relative path without --cd",
      why="ch-run shows the container only what is bound in: the host's /tmp, and $HOME (recent Charliecloud, e.g. "
          "0.31 in Debian 12, only with --home; old releases mounted it by default). A path under $SCRATCH or $PWD, "
          "expanded by the batch shell, does not exist inside; and the command starts in the image's / whatever the "
          "current directory is (without -c/--cd), so a relative train.py is looked for as /train.py. The step stops at "
          "once with 'No such file or directory'.",
      fix="Bind the folder in and use the path inside: ch-run -b \"$PWD:/mnt/0\" -c /mnt/0 IMAGE -- python train.py "
          "(most images have /mnt/0 … /mnt/9 for binds).",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
cd "$SCRATCH/project"
ch-run "$SCRATCH/images/trainer.sqfs" -- python train.py --data "$SCRATCH/data"
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
ch-run -b "$SCRATCH/project:/mnt/0" -b "$SCRATCH/data:/mnt/1" -c /mnt/0 "$SCRATCH/images/trainer.sqfs" -- \\
  python train.py --data /mnt/1
""")
def _charliecloud_host_path(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if c.kind != "charliecloud.run":
            continue
        launcher = step.chain.launcher
        program = [str(w) for w in (step.chain.program or c.command)]
        script = str(launcher.script) if launcher is not None else _script_argument(program)
        if not script and program and program[0].startswith(("./", "../")):
            script = program[0]  # ./run.sh
        if script and not c.cd and not script.startswith(("/", "$", "~")) and "=" not in script:
            yield (step.line, f"ch-run starts the command in the image's /, not in the current directory: {script} is "
                              f"looked for as /{script.removeprefix('./')}; bind its folder and cd there "
                              f"(ch-run -b \"$PWD:/mnt/0\" -c /mnt/0 …)")
            continue
        words = [launcher.script, *launcher.args] if launcher is not None else program
        for word in words:
            path = ctx.parsed.resolve(str(word), step.line)
            if path.startswith("-") and "=" in path:
                path = path.split("=", 1)[1]  # --data=$SCRATCH/data
            m = _HOST_FOLDER.match(path)
            home = m is not None and m.group(1) in (None, "HOME")
            if not m or (home and c.home) or _covered_by_bind(ctx, c, _BRACED.sub(r"$\1", path), step.line):
                continue
            yield (step.line, f"{path} is in a host folder ch-run does not mount"
                              + (" (Charliecloud 0.31 mounts $HOME only with --home)" if home else "")
                              + f": bind it in and use the path inside (ch-run -b \"{path.rsplit('/', 1)[0] or path}:/mnt/0\" "
                                "… /mnt/0/…)")
            break


#: Slurm's commands, which belong on the host
_SLURM_COMMANDS = ("srun", "sbatch", "salloc", "scontrol", "squeue", "scancel", "sacct")


@rule("HPC222", "slurm-command-in-container", "error",
      summary="a Slurm command (srun, scontrol …) runs inside the container",
      why="Images rarely contain Slurm's commands, its configuration or its authentication (munge), so the command "
          "is not found or cannot reach the controller; an srun that did run there would start a new step from "
          "inside one task. Slurm's commands belong on the host: srun before the container, not after the image.",
      fix="Put srun first: srun … apptainer exec … IMAGE torchrun …; resolve host names on the host before srun.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
apptainer exec pytorch_2.3.sif srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
srun apptainer exec pytorch_2.3.sif python train.py
""")
def _slurm_in_container(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        inner = [str(w) for w in (getattr(c, "command", ()) or step.chain.program)]
        program = inner[0].rsplit("/", 1)[-1] if inner else ""
        given = any(re.search(r"slurm|munge", str(b.src)) for b in getattr(c, "binds", ()))
        at = shell_c_script(inner)
        if at is not None:  # apptainer exec IMG bash -c '… || scontrol requeue …': the script the container runs
            try:
                code = lex_script(inner[at]).code
            except ParseError:
                code = ()
            inside = [str(x.argv[0]).rsplit("/", 1)[-1] for x in _simple_commands(code) if x.argv]
            program = next((p for p in inside if p in _SLURM_COMMANDS), program)
        if program in _SLURM_COMMANDS and not given:  # binding /etc/slurm and munge in is how sites allow it
            yield (step.line, f"{program} runs inside the container, where Slurm's commands and configuration are "
                              f"usually missing; run it on the host ({program} before {getattr(c, 'binary', 'ch-run')})")


@rule("HPC223", "clean-environment-hides-task-rank", "warning",
      summary="srun starts several tasks in a container with --cleanenv/--containall, which drops SLURM_PROCID",
      why="--cleanenv (and --containall) start the container with almost none of the host's variables: SLURM_PROCID, "
          "SLURM_LOCALID, SLURM_NTASKS and an exported MASTER_ADDR do not reach a program that srun starts once per "
          "task, so every task takes itself for rank 0 of 1 (or stops asking for them). torchrun inside the "
          "container is not affected: it gets its settings on its command line and sets the workers' own.",
      fix="Drop --cleanenv for this step, or pass what the program reads per task: srun bash -c 'apptainer exec "
          "--cleanenv --env RANK=$SLURM_PROCID,LOCAL_RANK=$SLURM_LOCALID,WORLD_SIZE=$SLURM_NTASKS IMAGE python train.py'.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
srun apptainer exec --nv --cleanenv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
srun apptainer exec --nv pytorch_2.3.sif python train.py
""")
@each_component
def _clean_env_per_task(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        c, srun = step.chain.container, step.chain.srun
        if srun is None or c is None or c.kind != "apptainer.run" or not (c.cleanenv or c.containall) \
                or step.chain.launcher is not None or shell_script_word(step) is not None:
            continue
        tasks = step_tasks(ctx, step)
        passed = [str(e.name) for e in c.env] + [v.name for v in ctx.parsed.variables if v.exported]
        if tasks < 2 or any(re.search(r"RANK|PROCID", name) for name in passed):
            continue
        flag = "--cleanenv" if c.cleanenv else "--containall"
        yield (step.line, f"srun starts {tasks} tasks in the container with {flag}, which drops SLURM_PROCID, "
                          "SLURM_LOCALID and the other per-task variables: each task sees itself as rank 0; drop "
                          f"{flag} or pass them with --env (inside srun bash -c '…')")


@rule("HPC220", "container-step-without-gpu-flag", "info",
      summary="one container step of a GPU job runs without --nv/--rocm while another step has it",
      why="Without the flag that step sees no GPU. That is right for a CPU-only helper step (unpacking data with "
          "tar, compiling), and as another step of the job passes the GPUs in, this is probably one; if the step "
          "does use the GPU, it silently runs on the CPU. (A step that starts a distributed launcher such as "
          "torchrun without the flag is still HPC201.)",
      fix="Nothing for a CPU-only step; add --nv (NVIDIA) or --rocm (AMD) if it should use the GPU.",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
export PYTHONNOUSERSITE=1
apptainer exec "$SCRATCH/images/pytorch_24.05.sif" tar -xf "$SCRATCH/data.tar" -C "$TMPDIR"
apptainer exec --nv "$SCRATCH/images/pytorch_24.05.sif" python train.py --data "$TMPDIR"
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
export PYTHONNOUSERSITE=1
tar -xf "$SCRATCH/data.tar" -C "$TMPDIR"
apptainer exec --nv "$SCRATCH/images/pytorch_24.05.sif" python train.py --data "$TMPDIR"
""")
@each_component
def _gpu_flag_on_other_step(ctx: Context) -> Iterator[Any]:
    for step, c, flag, other in _steps_without_gpu_flag(ctx):
        if other is None or step.chain.launcher is not None:
            continue
        prog = str(step.chain.program[0]) if c.action == "exec" and step.chain.program else \
            {"run": "the image's runscript", "shell": "a shell", "test": "the image's tests"}.get(c.action, "its command")
        yield (step.line, f"{c.binary} {c.action} runs {prog} without {flag}, so it sees no GPU; the container step "
                          f"on line {other} passes the GPUs in, so this is probably a CPU-only helper step (fine); "
                          f"add {flag} if it should use the GPU")


def _gpus_come_with_partition(ctx: Context) -> bool:
    """Without a profile, whether the job's partition is named as a GPU one (gpu-a100): some sites (TACC's GPU
    queues) hand out a whole GPU node with the partition alone. A profile describes GPUs requested with gres."""
    names = [n.strip().lower() for n in str(ctx.job.partition or "").split(",") if n.strip()]
    return ctx.profile is None and any("gpu" in n for n in names)


@rule("HPC202", "gpu-flag-without-gpus", "warning",
      summary="--nv/--rocm is used but the job requests no GPU",
      why="On a node without a GPU allocation the flag only produces driver warnings; usually the GPU request "
          "(--gres=gpu:N) was forgotten, and the training runs on the CPU. Without a profile it is not reported on a "
          "partition named as a GPU one (gpu-a100): some sites give a whole GPU node with the partition alone.",
      fix="Request GPUs (--gres=gpu:N or --gpus-per-node=N), or drop --nv for CPU work.",
      catalogue=(6,),
      bad="""#!/bin/bash
#SBATCH --partition=cpu
apptainer exec --nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv pytorch_2.3.sif python train.py
""")
@each_component
def _gpu_flag_no_gpus(ctx: Context) -> Iterator[Any]:
    job = ctx.job
    zero = 0 in (job.gpus_per_node, job.gpus, job.gpus_per_task)  # --gres=gpu:0: none, whatever the partition
    if job.gpus_on_each_node or (_gpus_come_with_partition(ctx) and not zero):
        return
    for step in job_component_steps(ctx):
        c = step.chain.container
        if c is not None and c.kind == "apptainer.run" and (c.nv or c.rocm):
            flag = "--nv" if c.nv else "--rocm"
            yield step.line, f"{flag} is set but the job requests no GPU; add --gres=gpu:N or drop {flag}"


@rule("HPC203", "flags-after-image", "error",
      summary="Apptainer options written after the image name",
      why="Everything after the image is handed to the program, so apptainer never sees the option: --nv after "
          "the image means no GPU, --bind after it means no bind, and the program may choke on the unknown flag. "
          "(Only option words where exec expects the program's name are reported: the program's own options, and "
          "every argument of apptainer run, which go to the image's runscript, are meant to be there.)",
      fix="Move the options before the image: apptainer exec --nv --bind SRC:DST IMAGE program …",
      catalogue=(8,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec pytorch_2.3.sif --nv python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _flags_after_image(ctx: Context) -> Iterator[Any]:
    from ..parse.argv import parse_argv
    for step in steps(ctx):
        c = step.chain.container
        # run: every word after the image is the runscript's argument ("-c configs/x.yaml" is its own option);
        # exec: only option words where the program's name belongs, right after the image, are misplaced
        if c is None or c.kind != "apptainer.run" or c.action != "exec" or step.chain.launcher is not None:
            continue
        program = list(step.chain.program)
        moved: list[str] = []
        while program and APPTAINER_FLAGS.match(str(program[0])):
            flag = str(program.pop(0))
            moved.append(flag)
            needs_value = "=" not in flag and flag not in ("--nv", "--nvccli", "--rocm", "--cleanenv", "-e", "--contain",
                                                          "-c", "--containall", "-C", "--no-home", "--writable-tmpfs",
                                                          "--fakeroot")
            if needs_value and program:
                moved.append(program.pop(0))
        if not moved:
            continue
        fixed = parse_argv([c.binary, c.action, *moved, c.image]).model
        merged = c.replace(**{f.name: (getattr(c, f.name) + getattr(fixed, f.name)) if f.is_tuple else
                              (getattr(fixed, f.name) or getattr(c, f.name))
                              for f in c.field_specs() if f.info.role == "option"})
        if not program and step.chain.launcher is None:
            continue
        chain = type(step.chain)(step.chain.srun, merged, step.chain.launcher, tuple(program), step.chain.notes)
        yield (step.line, f"{' '.join(moved)} comes after the image {c.image}, so it is passed to the program, not to "
                          f"{c.binary}; move it before the image", fix_for(ctx, "move the options before the image", step, chain))


BROAD_BINDS = {"/": "the whole file system", "$HOME": "your whole home directory", "${HOME}": "your whole home directory",
               "~": "your whole home directory", "/etc": "the host's /etc", "/home": "every user's home directory",
               "/root": "root's home directory"}


def _bash_binds(binds: Any, home: str = "~") -> list[Any]:
    """Binds as bash hands them to the runtime. A bind word that starts with an unquoted ``~`` (bash
    expands it; the parser keeps such a word whole, as Verbatim) is split into its binds, its leading
    ``~`` written as ``home``; a ``~`` after ``:`` or ``,`` stays literal, as bash leaves it."""
    out: list[Any] = []
    for b in binds:
        src = b.src if isinstance(b, Bind) else ""
        if isinstance(src, Verbatim) and src[:1] == "~" and src[1:2] in ("", "/", ":", ",") and not b.dst and not b.mode:
            out += [Bind.from_token(home + item[1:] if i == 0 else item) for i, item in enumerate(str(src).split(","))]
        else:
            out.append(b)
    return out


def _binds(ctx: Context) -> Iterator[tuple[Any, Any, Any]]:
    for step, c in containers(ctx):
        for b in _bash_binds(getattr(c, "binds", ())):
            yield step, c, b


HOME_BINDS = ("$HOME", "${HOME}", "~")


def _mounts_home(c: Any) -> bool:
    """Whether the runtime mounts the home directory anyway: Apptainer does by default (not with --no-home,
    --contain, --containall or --home elsewhere), ch-run only with --home."""
    if c.kind == "charliecloud.run":
        return getattr(c, "home", False) is True
    return c.kind == "apptainer.run" and not (c.hides_home or c.home)


@rule("HPC204", "over-broad-bind", "warning",
      summary="a bind mount exposes /, /etc or a whole home directory",
      why="Binding / or /etc over the image replaces the container's own files (libraries, passwd, certificates) "
          "with the host's; binding all of $HOME exposes keys and tokens and lets host packages in ~/.local leak in. "
          "(Apptainer mounts $HOME at its own path by default, so --bind $HOME alone changes nothing and is not "
          "reported; $HOME bound somewhere else, or with --no-home, --contain, --containall or Charliecloud, is.)",
      fix="Bind only the directories the job needs, e.g. --bind \"$SCRATCH/data:/data:ro\".",
      catalogue=(9,),
      bad="""#!/bin/bash
apptainer exec --bind /:/host pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
apptainer exec --bind "$SCRATCH/data:/data:ro" pytorch_2.3.sif python train.py
""")
def _broad_bind(ctx: Context) -> Iterator[Any]:
    for step, c, b in _binds(ctx):
        src = ctx.parsed.resolve(str(b.src), step.line)
        if not src:
            continue  # a variable the script leaves empty (a placeholder): it names no folder, let alone /
        src = src.rstrip("/") or "/"
        if src in HOME_BINDS and _mounts_home(c):
            dst = ctx.parsed.resolve(str(b.dst), step.line).rstrip("/")
            if not dst or dst in HOME_BINDS:
                continue  # Apptainer mounts $HOME there anyway: the bind changes nothing
            yield (step.line, f"--bind {b.to_token()} puts your whole home directory (keys, tokens, ~/.local) in the "
                              f"container a second time, at {dst}; Apptainer already mounts $HOME: bind only the "
                              "directories the job needs, and add --no-home to keep the rest out")
            continue
        if src in BROAD_BINDS:
            flag = "-b" if c.kind == "charliecloud.run" else "--bind"
            yield step.line, f"{flag} {b.to_token()} exposes {BROAD_BINDS[src]} inside the container; bind only the directories the job needs"


@rule("HPC205", "charliecloud-bind-destination", "info",
      summary="ch-run binds to a destination that may not exist in the read-only image",
      why="ch-run cannot create a bind destination in a read-only image (a SquashFS file, or a directory without "
          "-w); the run stops with 'can't bind: destination not found'. Images built by ch-image have /mnt/0 … /mnt/9 for this.",
      fix="Bind to /mnt/0 … /mnt/9 (e.g. -b \"$SCRATCH/data:/mnt/0\"), or create the directory in the Dockerfile (RUN mkdir -p /data).",
      catalogue=(9,),
      bad="""#!/bin/bash
ch-run -b "$SCRATCH/data:/data" "$SCRATCH/images/trainer.sqfs" -- python /opt/app/train.py
""",
      good="""#!/bin/bash
ch-run -b "$SCRATCH/data:/mnt/0" "$SCRATCH/images/trainer.sqfs" -- python /opt/app/train.py
""")
def _ch_bind_dst(ctx: Context) -> Iterator[Any]:
    for step, c, b in _binds(ctx):
        if c.kind != "charliecloud.run" or getattr(c, "write", False):
            continue
        dst = str(b.dst or b.src)
        if not re.match(r"^/mnt/\d(/|$)", dst):
            # shown as written: \$ is a dollar the batch shell left for an inner sh -c
            token, shown = b.to_token().replace("\\$", "$"), dst.replace("\\$", "$")
            yield (step.line, f"-b {token}: {shown} must already exist in the read-only image; bind to /mnt/0 … "
                              "/mnt/9 or create it in the Dockerfile")


#: the user's own home directory: $HOME, ~, /home/$USER (a literal /home/NAME may be a site folder such as
#: /home/software, so it is not counted)
_HOME_PATH = re.compile(r"^(\$HOME|\$\{HOME\}|~)(/|$)"
                        r"|^/home/(\$USER|\$\{USER\}|\$LOGNAME|\$\{LOGNAME\}|\$\(whoami\)|\$\(id -un\))(/|$)")


def _under_home(path: str) -> bool:
    return bool(_HOME_PATH.match(path))


@rule("HPC206", "image-in-home", "warning",
      summary="a container image is stored under $HOME",
      why="Images are gigabytes and home directories have small quotas (and are often slow, backed-up NFS): the "
          "pull fails half-way or fills the quota, and every job reads the image over the slowest file system.",
      fix="Keep images on scratch or project storage, e.g. $SCRATCH/images/pytorch_24.05.sif.",
      catalogue=(10,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv "$HOME/images/pytorch_24.05.sif" python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv "$SCRATCH/images/pytorch_24.05.sif" python train.py
""")
def _image_home(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        image = ctx.parsed.resolve(str(c.image), step.line)
        if _under_home(image):
            yield step.line, f"the image {image} is under $HOME (small quota, slow); keep images on scratch, e.g. $SCRATCH/images"
    for cmd, model in pulls(ctx):
        target = ctx.parsed.resolve(str(getattr(model, "dir", "") or getattr(model, "dest", "") or ""), cmd.line)
        if _under_home(target):
            yield cmd.line, f"the image is pulled into {target}, under $HOME (small quota); pull into scratch, e.g. --dir \"$SCRATCH/images\""


CACHE_VARS = ("APPTAINER_CACHEDIR", "SINGULARITY_CACHEDIR")


def cache_vars(binary: str) -> tuple[str, ...]:
    """The cache variables a runtime reads: Apptainer both names, ``singularity`` only SINGULARITY_CACHEDIR
    (SingularityCE ignores APPTAINER_CACHEDIR; Apptainer's singularity command reads it as well)."""
    return ("SINGULARITY_CACHEDIR",) if binary == "singularity" else CACHE_VARS


@rule("HPC207", "apptainer-cache-in-home", "warning",
      summary="an image is fetched from a registry with the Apptainer cache left in (or set to) $HOME",
      why="apptainer pull, apptainer exec/run docker://… and apptainer build … docker://… store every downloaded "
          "layer (and the converted image) in APPTAINER_CACHEDIR, which defaults to $HOME/.apptainer/cache "
          "($HOME/.singularity/cache for singularity): a few images fill the home quota and later jobs fail to "
          "write anything.",
      fix="export APPTAINER_CACHEDIR=\"$SCRATCH/.apptainer/cache\" before fetching the image (and APPTAINER_TMPDIR "
          "likewise).",
      catalogue=(10,),
      bad="""#!/bin/bash
[ -f "$SCRATCH/pytorch_24.05.sif" ] ||
  apptainer pull "$SCRATCH/pytorch_24.05.sif" docker://nvcr.io/nvidia/pytorch:24.05-py3
""",
      good="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f "$SCRATCH/pytorch_24.05.sif" ] ||
  apptainer pull "$SCRATCH/pytorch_24.05.sif" docker://nvcr.io/nvidia/pytorch:24.05-py3
""")
def _cache_home(ctx: Context) -> Iterator[Any]:
    reported: set[int] = set()  # one finding per assignment that points the cache at $HOME
    for cmd, model in pulls(ctx):
        if model.kind != "apptainer.pull" or model.disable_cache:
            continue  # --disable-cache: no layers are kept
        names = cache_vars(model.binary)
        if model.cachedir or any(n in names for n, _ in cmd.assignments):
            value = ctx.parsed.resolve(str(model.cachedir or ""), cmd.line)
            if _under_home(value):
                yield cmd.line, f"{model.env_name('APPTAINER_CACHEDIR')}={value} is under $HOME; point it at scratch"
            continue
        var = next((v for v in (ctx.parsed.variable(n, cmd.line) for n in names) if v is not None), None)
        if var is None:
            yield (cmd.line, _default_cache_message(ctx, f"{model.binary} pull", model.binary, cmd.line))
        elif _under_home(ctx.parsed.resolve(str(var.value), cmd.line)):
            reported.add(var.line)
            yield var.line, f"{var.name}={var.value} is under $HOME (small quota); point it at scratch"
    for use in registry_uses(ctx):
        if use.no_cache:
            continue
        env = dict(use.env)
        names = cache_vars(use.binary)
        own = next((n for n in names if n in env), None)
        if own is not None:
            if _under_home(ctx.parsed.resolve(env[own], use.line)):
                yield use.line, f"{own}={env[own]} is under $HOME; point it at scratch"
            continue
        var = next((v for v in (ctx.parsed.variable(n, use.line) for n in names) if v is not None), None)
        if var is None:
            yield use.line, _default_cache_message(ctx, use.what, use.binary, use.line)
        elif var.line not in reported and _under_home(ctx.parsed.resolve(str(var.value), use.line)):
            reported.add(var.line)
            yield var.line, f"{var.name}={var.value} is under $HOME (small quota); point it at scratch"


def _default_cache_message(ctx: Context, what: str, binary: str, line: int) -> str:
    name = "SINGULARITY_CACHEDIR" if binary == "singularity" else "APPTAINER_CACHEDIR"
    tmp = name.replace("CACHEDIR", "TMPDIR")
    text = f"{what} downloads the image's layers into $HOME/.{binary}/cache by default (home quota)"
    if any(ctx.parsed.variable(n, line) is not None for n in (tmp, "APPTAINER_TMPDIR", "SINGULARITY_TMPDIR")):
        text += f"; export {name}=\"$SCRATCH/.{binary}/cache\" first"
    else:  # the image is also unpacked and converted in /tmp, often small on compute nodes
        text += (f" and builds it in $TMPDIR or /tmp (often small); export {name}=\"$SCRATCH/.{binary}/cache\" "
                 f"first, and {tmp} to a folder on scratch (made with mkdir -p)")
    if binary == "singularity" and ctx.parsed.variable("APPTAINER_CACHEDIR", line) is not None:
        text += " (SingularityCE ignores APPTAINER_CACHEDIR; Apptainer's singularity reads both)"
    return text


#: image references a container runtime fetches from a registry when the job runs
REGISTRY_SCHEMES = ("docker://", "oras://", "library://", "shub://")


@dataclasses.dataclass(frozen=True)
class RegistryUse:
    """A command of the job that fetches an image from a registry while the job runs, other than a pull:
    ``apptainer exec|run|shell docker://…`` or ``apptainer build OUT docker://…``."""

    line: int
    what: str                  # "apptainer exec docker://…", for messages
    binary: str
    ref: str                   # the registry reference, resolved through the script's variables
    output: str = ""           # the image a build writes ("" for exec/run)
    guarded: bool = False      # [ -f OUT ] || apptainer build …
    no_cache: bool = False     # --disable-cache
    env: tuple[tuple[str, str], ...] = ()   # NAME=value written before the command


def registry_uses(ctx: Context) -> list[RegistryUse]:
    """Container steps that run a registry image, and top-level builds from one (see :class:`RegistryUse`)."""
    def make() -> list[RegistryUse]:
        from ..errors import ParseError
        from ..parse.argv import parse_argv, recognise
        out = []
        for step, c in containers(ctx):
            ref = ctx.parsed.resolve(str(c.image), step.line)
            if c.kind != "apptainer.run" or not ref.startswith(REGISTRY_SCHEMES):
                continue
            out.append(RegistryUse(step.line, f"{c.binary} {c.action} {ref.split('://')[0]}://…", c.binary, ref,
                                   no_cache="--disable-cache" in (str(e) for e in c.extra), env=tuple(step.env)))
        for cmd in simple_commands(ctx):
            words = [str(v) for v in cmd.argv]
            found = recognise(words)
            if found is None or found[0].cls.kind != "apptainer.build":
                continue
            try:
                model = parse_argv(cmd.argv).model
            except ParseError:
                continue
            ref = ctx.parsed.resolve(str(model.source), cmd.line)
            if ref.startswith(REGISTRY_SCHEMES):
                out.append(RegistryUse(cmd.line, f"{model.binary} build … {ref.split('://')[0]}://…", model.binary, ref,
                                       str(model.output), is_guarded(ctx, cmd), "--disable-cache" in words,
                                       tuple((n, str(w.value)) for n, w in cmd.assignments)))
        return sorted(out, key=lambda u: u.line)
    return cached(ctx, "registry_uses", make)


@rule("HPC208", "pull-every-job", "warning",
      summary="the job script pulls, builds or runs its image from a registry every time it runs",
      why="A pull (or apptainer build … docker://…) downloads and converts gigabytes on the compute node at every "
          "run (and every array task): minutes of charged time, registry rate limits, and a different image if the "
          "tag moved. apptainer exec/run docker://… does the same behind the scenes: every run asks the registry "
          "and converts the image again unless the cache still holds it.",
      fix="Pull once on a login node and run the .sif file, or guard the pull: "
          "[ -f IMAGE.sif ] || apptainer pull IMAGE.sif docker://…",
      catalogue=(10, 31),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
apptainer pull --force "$SCRATCH/pytorch_24.05.sif" docker://nvcr.io/nvidia/pytorch:24.05-py3
apptainer exec --nv "$SCRATCH/pytorch_24.05.sif" python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f "$SCRATCH/pytorch_24.05.sif" ] ||
  apptainer pull "$SCRATCH/pytorch_24.05.sif" docker://nvcr.io/nvidia/pytorch:24.05-py3
apptainer exec --nv "$SCRATCH/pytorch_24.05.sif" python train.py
""")
def _pull_every_job(ctx: Context) -> Iterator[Any]:
    for cmd, model in pulls(ctx):
        if not is_guarded(ctx, cmd):
            yield (cmd.line, "the image is pulled on every run of the job; pull it once beforehand or guard the pull "
                             "with [ -f IMAGE ] || …")
    for use in registry_uses(ctx):
        if use.output:
            if not use.guarded:
                yield (use.line, f"{use.binary} build makes {use.output} from {use.ref} on every run of the job "
                                 "(download and conversion on the compute node); build it once beforehand or guard "
                                 f"the build with [ -f {use.output} ] || …")
            continue
        how = (f"each run downloads {use.ref} and converts it to SIF again (--disable-cache)" if use.no_cache else
               f"each run asks the registry for {use.ref}, and downloads and converts it to SIF again unless it is "
               "cached (or when the tag moved)")
        yield (use.line, f"{use.what} fetches the image while the job runs: {how}; pull it once into a .sif file "
                         f"({use.binary} pull IMAGE.sif {use.ref}) and run that")


def _tagless(ref: str) -> bool:
    if "://" not in ref:
        return False
    scheme, _, rest = ref.partition("://")
    if scheme not in ("docker", "oras", "library") or not rest or "$" in rest:
        return False
    last = rest.rsplit("/", 1)[-1]
    return ":" not in last and "@" not in last


@rule("HPC210", "latest-tag", "warning",
      summary="an image is referenced by its :latest tag",
      why=":latest moves whenever the publisher pushes: the same script gives a different environment next month, "
          "so results cannot be reproduced (and a new CUDA may not match the cluster's driver).",
      fix="Pin a version tag (pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime, nvcr.io/nvidia/pytorch:24.05-py3) "
          "or a digest (@sha256:…). The linter does not guess which version you meant.",
      catalogue=(15,),
      bad="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f pytorch.sif ] || apptainer pull pytorch.sif docker://pytorch/pytorch:latest
""",
      good="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f pytorch.sif ] || apptainer pull pytorch.sif docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime
""")
def _latest(ctx: Context) -> Iterator[Any]:
    for line, ref in image_refs(ctx):
        if re.search(r":latest(\b|$)", ref) and "://" in ref:
            yield line, f"{ref} uses the moving :latest tag; pin a version (or a @sha256 digest) so the job can be reproduced"


@rule("HPC211", "untagged-image", "warning",
      summary="a registry image is referenced without a tag",
      why="Without a tag the registry serves :latest, which moves: the environment changes under the script.",
      fix="Add a version tag or a digest: docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime.",
      catalogue=(31,),
      bad="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f pytorch.sif ] || apptainer pull pytorch.sif docker://pytorch/pytorch
""",
      good="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f pytorch.sif ] || apptainer pull pytorch.sif docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime
""")
def _untagged(ctx: Context) -> Iterator[Any]:
    for line, ref in image_refs(ctx):
        if _tagless(ref):
            yield line, f"{ref} has no tag, so the moving :latest is used; pin a version tag or a digest"


@rule("HPC212", "latest-image-file", "info",
      summary="the image file's name says it was pulled from :latest",
      why="apptainer pull names files NAME_TAG.sif, so pytorch_latest.sif came from a moving tag: nobody can tell "
          "(or re-create) which version the results were produced with.",
      fix="Pull a pinned tag (the file is then named e.g. pytorch_2.3.1-cuda12.1-cudnn8-runtime.sif) and record it.",
      catalogue=(15,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv /path/to/pytorch_latest.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv /path/to/pytorch_2.3.1.sif python train.py
""")
def _latest_file(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        image = ctx.parsed.resolve(str(c.image), step.line)
        if "://" not in image and re.search(r"_latest(-[^/]*)?\.(sif|simg|sqfs)$", image):
            yield step.line, f"{image.rsplit('/', 1)[-1]} was pulled from :latest, so its version is unknown; pull and name a pinned tag"


_CPU_IMAGE = re.compile(r"(^|[-_.:/])cpu([-_.]|$)", re.IGNORECASE)


@rule("HPC213", "cpu-image-for-gpu-work", "error",
      summary="a CPU-only image is used for a GPU job",
      why="An image built for CPUs (tags like …-cpu) has no CUDA build of the framework: with --nv and GPUs "
          "allocated, training silently runs on the CPU while the GPUs idle.",
      fix="Use the image's CUDA (or ROCm) variant, e.g. pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime.",
      catalogue=(16,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv "$SCRATCH/images/pytorch_2.3.1-cpu.sif" python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv "$SCRATCH/images/pytorch_2.3.1-cuda12.1.sif" python train.py
""")
@each_component
def _cpu_image(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        gpu = (ctx.job.gpus_on_each_node and in_job_component(ctx, step)) or getattr(c, "nv", False) \
            or getattr(c, "rocm", False)
        name = ctx.parsed.resolve(str(c.image), step.line).rsplit("/", 1)[-1]
        if gpu and _CPU_IMAGE.search(name):
            yield step.line, f"{name} looks like a CPU-only build but the job uses GPUs; use the CUDA/ROCm variant of the image"


MPI_LAUNCHERS = ("mpirun", "mpiexec", "orterun", "mpiexec.hydra")
#: launchers that start ranks themselves (over ssh or mpirun): inside one container they reach no other node
RANK_LAUNCHERS = (*MPI_LAUNCHERS, "horovodrun")
#: mpirun options that print something and start no ranks
MPI_NO_LAUNCH = ("--version", "-V", "-version", "--help", "-h", "-help", "--check-build", "-cb")


def _launches_no_ranks(args: list[str]) -> bool:
    """``mpirun --version`` / ``-V`` / ``--help``: the flag among mpirun's own options (before the program)."""
    for word in args:
        if word in MPI_NO_LAUNCH:
            return True
        if not word.startswith("-") and not word.isdigit():
            return False  # the program (or an option's value): what follows is not mpirun's
    return False


def _one_node_job(ctx: Context) -> bool:
    """The job is held to a single node: --nodes=1 (or 1-1), or nothing that could spread it over more."""
    job = ctx.job
    span = node_range(job.nodes)
    if job.nodes is not None:
        return span is not None and span[1] == 1
    tasks, per_node = job.ntasks, job.ntasks_per_node
    if isinstance(tasks, int) and tasks > 1:
        return isinstance(per_node, int) and per_node >= tasks
    return tasks is None or isinstance(tasks, int)


@rule("HPC214", "mpi-launched-in-container", "error",
      summary="mpirun/mpiexec (or horovodrun, or DeepSpeed's multi-node launcher) runs inside the container of a job "
              "that may span several nodes",
      why="An MPI launcher inside one container cannot start ranks on other nodes through Slurm and uses the "
          "image's MPI, not the host's fabric-aware one: ranks hang or run over slow TCP. deepspeed --hostfile "
          "starts the other nodes over pdsh/ssh (or mpirun): the command it sends each host runs there outside the "
          "container, with the container's Python path, and images rarely have pdsh at all, so the job fails after "
          "its wait in the queue. Not reported: a job "
          "held to one node (--nodes=1), where all ranks run inside one container over shared memory (the "
          "\"fully contained\" model vendors document, which works), and mpirun --version / --help, which "
          "start no ranks.",
      fix="Launch from the host (hybrid model): srun --mpi=pmix apptainer exec IMAGE ./program, with the "
          "container's MPI matching the host's. deepspeed: start one copy per node, srun --ntasks-per-node=1 bash -c "
          "'apptainer exec IMAGE deepspeed --no_ssh --node_rank=$SLURM_NODEID --hostfile … --master_addr=$head_node …' "
          "(accelerate: --deepspeed_multinode_launcher standard, one accelerate launch per node).",
      catalogue=(17,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=32
apptainer exec mpi_app_1.0.sif mpirun -n 64 /opt/app/solver
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=32
srun --mpi=pmix apptainer exec mpi_app_1.0.sif /opt/app/solver
""")
@each_component
def _mpi_inside(ctx: Context) -> Iterator[Any]:
    one_node = _one_node_job(ctx)
    for step, c in containers(ctx):
        prog = [str(w) for w in step.chain.program]
        if not prog or prog[0].rsplit("/", 1)[-1] not in RANK_LAUNCHERS or _launches_no_ranks(prog[1:]):
            continue
        if not in_job_component(ctx, step):
            continue  # another component's nodes: their count is not in the model
        srun = step.chain.srun
        spread = srun is not None and (node_range(srun.nodes) or (1, 1))[1] > 1  # srun --nodes=2 of its own
        if one_node and not spread and (srun is None or tasks_per_node(ctx, step) == 1):
            continue  # all ranks in one container on one node: the fully contained model works
        inside = "ch-run IMAGE -- program" if c.kind == "charliecloud.run" else f"{c.binary} exec IMAGE program"
        yield (step.line, f"{prog[0]} runs inside the container; launch the ranks from the host with "
                          f"srun --mpi=pmix (or pmi2, whichever the image's MPI supports) … {inside}")
    if not one_node:
        yield from _deepspeed_launcher_inside(ctx)


def _deepspeed_launcher_inside(ctx: Context) -> Iterator[Any]:
    """HPC214 for DeepSpeed's multi-node launcher run inside a container: deepspeed --hostfile (pdsh by default, or
    --launcher openmpi/mpich/impi/mvapich), and accelerate launch --use_deepspeed over several machines with a
    --deepspeed_hostfile. Not for one launch per node (--no_ssh, accelerate's standard or nossh launcher) or
    deepspeed --launcher slurm."""
    for launch in other_launches(ctx):
        step, opts = launch.step, launch.options
        if step is None or step.chain.container is None or not in_job_component(ctx, step):
            continue
        if launch.name == "deepspeed":
            runner = opts.get("--launcher", "pdsh").lower()
            if "--no_ssh" in opts or runner == "slurm" or ("--hostfile" not in opts and "-H" not in opts):
                continue  # without a hostfile deepspeed runs on this node only
            yield (launch.line, f"deepspeed --hostfile runs inside the container and starts the other nodes itself "
                                f"({runner}): the command it sends each host (the container's python -u -m "
                                "deepspeed.launcher.launch) runs there outside the container, and the image rarely "
                                f"has {runner} at all; start one deepspeed per node instead: srun --ntasks-per-node=1 bash -c "
                                "'apptainer exec … deepspeed --no_ssh --node_rank=$SLURM_NODEID --hostfile … "
                                "--master_addr=$head_node …'")
            continue
        machines = launch.number(ctx, "--num_machines")
        if machines is not None and machines > 1 and accelerate_path(launch, machines) == "once" \
                and "--deepspeed_hostfile" in opts:
            runner = opts.get("--deepspeed_multinode_launcher", "pdsh")
            yield (launch.line, f"accelerate launch --use_deepspeed --num_machines {machines} runs DeepSpeed's "
                                f"multi-node launcher ({runner}) inside the container: the command it sends each host "
                                "runs there outside the container, and the image rarely has "
                                f"{runner}; use --deepspeed_multinode_launcher standard and start accelerate on every "
                                "node with srun --ntasks-per-node=1 (each with its own --machine_rank)")


def _rank_launcher(step: Any) -> str | None:
    """The MPI launcher (mpirun, mpiexec, horovodrun) a step runs after its srun, directly, in its container or
    in a ``bash -c`` script, when it starts ranks; else None."""
    for cmd in _simple_commands([step.command]):
        words = [str(v) for v in cmd.argv]
        start = 1 if words[:1] and words[0].rsplit("/", 1)[-1] == "srun" else 0
        at = next((i for i in range(start, len(words)) if words[i].rsplit("/", 1)[-1] in RANK_LAUNCHERS), None)
        if at is not None and not _launches_no_ranks(words[at + 1:]):
            return words[at]
    return None


@rule("HPC126", "deepspeed-hostfile-not-from-the-job", "warning",
      summary="deepspeed --hostfile names a file the job does not write from its own node list",
      why="The deepspeed launcher starts workers on every host the hostfile lists (over ssh or pdsh), whatever nodes "
          "Slurm gave the job. A hostfile written once by hand names the nodes of some earlier job: the workers then "
          "run on nodes this job does not own (beside other users' jobs, outside its limits and accounting), or "
          "cannot be reached, and a job of fewer nodes than the file lists waits for hosts it never gets.",
      fix="Write the hostfile in the job from its own nodes: scontrol show hostnames \"$SLURM_JOB_NODELIST\" | sed "
          "'s/$/ slots=4/' > \"hostfile-$SLURM_JOB_ID\", then deepspeed --hostfile \"hostfile-$SLURM_JOB_ID\".",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
deepspeed --num_gpus 4 --num_nodes 2 --hostfile config/hostfile train.py --deepspeed ds.json
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/$/ slots=4/' > "hostfile-$SLURM_JOB_ID"
deepspeed --num_gpus 4 --num_nodes 2 --hostfile "hostfile-$SLURM_JOB_ID" train.py --deepspeed ds.json
""")
def _hostfile_not_from_the_job(ctx: Context) -> Iterator[Any]:
    if job_nodes(ctx) < 2:
        return  # one node: a fixed "localhost slots=8" is the usual, right hostfile
    for launch in other_launches(ctx):
        if launch.name != "deepspeed":
            continue
        given = launch.options.get("--hostfile") or launch.options.get("-H")
        if not given:
            continue
        path = ctx.parsed.resolve(given.strip("'\""), launch.line)
        if "$" in path.replace("$SLURM_JOB_ID", "").replace("${SLURM_JOB_ID}", "") \
                or path in ("/job/hostfile",) or _written_by_the_script(ctx, given, path, launch.line):
            continue  # a name the job makes (a variable, its id), DeepSpeed's default, or a file the script writes
        yield (launch.line, f"deepspeed --hostfile {given}: the script does not write {path} from the job's nodes, so "
                            "the launcher starts workers on whatever hosts it lists, which need not be (all) the nodes "
                            "Slurm gave this job; write it in the job: scontrol show hostnames \"$SLURM_JOB_NODELIST\" "
                            f"| sed 's/$/ slots=N/' > {given}")


def _written_by_the_script(ctx: Context, given: str, path: str, launch: int) -> bool:
    """Whether a line of the script other than the launch's (``launch``) may write the file ``given`` (as written,
    or its resolved ``path``): after > or >>, by tee, or named on a line of cp, mv, ln, a python helper, echo,
    printf, cat, sed or awk."""
    names = {given, given.strip("'\""), path, path.rsplit("/", 1)[-1]}
    pattern = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True) if n)
    writes = re.compile(r"(?:>>?|\btee(?:\s+-a)?)\s*[\"']?(?:\S*/)?(?:" + pattern + r")\b"
                        r"|\b(?:cp|mv|ln|install|python3?|echo|printf|cat|sed|awk)\b[^\n]*(?:" + pattern + r")")
    return any(writes.search(line) for k, line in enumerate(ctx.parsed.lines, 1) if k != launch)


@rule("HPC119", "mpi-launcher-per-task", "error",
      summary="srun starts several tasks and each one runs mpirun (or mpiexec, horovodrun)",
      why="srun runs its command once per task, so N tasks start N separate MPI launchers: N worlds that do not know "
          "each other, each starting its own ranks on the same CPUs (srun -n 2 bash -c 'mpirun -n 2 ./main' is "
          "four processes in two unrelated MPI_COMM_WORLDs).",
      fix="Let one of the two start the ranks: srun --mpi=pmix IMAGE/program alone (srun is the MPI launcher), or "
          "mpirun alone in the batch shell (no srun around it).",
      catalogue=(17,),
      bad="""#!/bin/bash
#SBATCH --ntasks=4
srun mpirun -n 4 apptainer exec mpi_app_1.0.sif /opt/app/solver
""",
      good="""#!/bin/bash
#SBATCH --ntasks=4
srun --mpi=pmix apptainer exec mpi_app_1.0.sif /opt/app/solver
""")
@each_component
def _mpi_launcher_per_task(ctx: Context) -> Iterator[Any]:
    for step in steps(ctx):
        if step.chain.srun is None or not in_job_component(ctx, step):
            continue
        prog = [str(w) for w in step.chain.program]
        if step.chain.container is not None and prog and prog[0].rsplit("/", 1)[-1] in RANK_LAUNCHERS:
            continue  # the launcher is the container's program: HPC214 says so, and its fix covers this
        launcher = _rank_launcher(step)
        tasks = step_tasks(ctx, step)
        if launcher is not None and tasks > 1:
            yield (step.line, f"srun starts {tasks} tasks and each runs {launcher}: {tasks} separate MPI jobs on the same "
                              f"CPUs; use srun --mpi=pmix without {launcher}, or {launcher} without srun")


@rule("HPC215", "mpirun-around-container", "info",
      summary="mpirun on the host starts the container ranks inside a Slurm job",
      why="It works when the host MPI matches the container's, but srun --mpi=pmix places and binds the ranks "
          "exactly as the allocation says and needs no hostfile.",
      fix="Use srun --mpi=pmix apptainer exec IMAGE ./program.",
      catalogue=(17,),
      bad="""#!/bin/bash
#SBATCH --ntasks=8
mpirun -n 8 apptainer exec mpi_app_1.0.sif /opt/app/solver
""",
      good="""#!/bin/bash
#SBATCH --ntasks=8
srun --mpi=pmix apptainer exec mpi_app_1.0.sif /opt/app/solver
""")
def _mpirun_host(ctx: Context) -> Iterator[Any]:
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        if words and words[0].rsplit("/", 1)[-1] in MPI_LAUNCHERS and \
                any(w.rsplit("/", 1)[-1] in ("apptainer", "singularity", "ch-run") for w in words[1:]):
            yield cmd.line, f"{words[0]} starts the container ranks; inside Slurm prefer srun --mpi=pmix, which follows the allocation"


@rule("HPC216", "nvccli-without-writable-layer", "error",
      summary="singularity --nvccli without a writable layer",
      why="nvidia-container-cli writes the driver libraries into the container, so under SingularityCE (and "
          "Singularity 3) it fails on a read-only SIF image before the program starts. Apptainer 1.1 and later "
          "adds --writable-tmpfs by itself, so apptainer --nvccli is not reported.",
      fix="Add --writable-tmpfs (or use --nv, which needs no writable layer).",
      catalogue=(18,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
singularity exec --nvccli pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
singularity exec --nvccli --writable-tmpfs pytorch_2.3.sif python train.py
""")
def _nvccli(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if c.kind == "apptainer.run" and c.nvccli_needs_layer:
            chain = with_chain(step.chain, container=c.replace(writable_tmpfs=True))
            yield (step.line, "singularity --nvccli needs a writable layer; add --writable-tmpfs",
                   fix_for(ctx, "add --writable-tmpfs", step, chain))


@rule("HPC225", "nvccli-contained-without-visible-devices", "error",
      summary="--nvccli with --contain or --containall, and NVIDIA_VISIBLE_DEVICES unset: no GPU in the container",
      why="With --nvccli, nvidia-container-cli sets up the GPUs. Without containment every GPU of the host is passed; "
          "with --contain (which --containall includes) the container gets a minimal /dev holding only the GPUs "
          "that NVIDIA_VISIBLE_DEVICES names, and none when it is unset: Apptainer prints a warning and the "
          "program runs on the CPU. The variable is read where apptainer starts (under srun: what its --export "
          "passes on); it is not passed into the container, so --env cannot set it. Containment set through the "
          "environment (APPTAINER_CONTAINALL=1, APPTAINER_CONTAIN=1) counts as the flag.",
      fix="export NVIDIA_VISIBLE_DEVICES (all, or the indexes or UUIDs of the GPUs to pass) before the command, "
          "or pass it with srun --export=ALL,NVIDIA_VISIBLE_DEVICES=all, or use --nv instead of --nvccli.",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nvccli --containall pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
export NVIDIA_VISIBLE_DEVICES=all
apptainer exec --nvccli --containall pytorch_2.3.sif python train.py
""")
def _nvccli_contained(ctx: Context) -> Iterator[Any]:
    for step, written in containers(ctx):
        if written.kind != "apptainer.run":
            continue
        c = as_run(ctx, step, written)
        if not c.nvccli or not (c.contain or c.containall):
            continue
        value = apptainer_env(ctx, step, "NVIDIA_VISIBLE_DEVICES")
        if value is not None and value.strip("'\"") not in ("", "void", "none"):
            continue
        how = next((f"--{flag}" if getattr(written, flag) else f"{env_flag(ctx, step, flag)} set"
                    for flag in ("containall", "contain") if getattr(c, flag)))
        held = value is None and _script_env(ctx, step, "NVIDIA_VISIBLE_DEVICES") is not None
        yield (step.line, f"--nvccli with {how} passes only the GPUs NVIDIA_VISIBLE_DEVICES names, and it is not "
                          + ("passed on here: srun --export leaves it out, so the container sees no GPU; add "
                             "NVIDIA_VISIBLE_DEVICES to srun's --export list (or ALL)" if held else
                             "set here: the container sees no GPU; export NVIDIA_VISIBLE_DEVICES=all (or the GPUs "
                             "to pass) before the command, or use --nv"))


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


def _only_sets_up(words: list[str]) -> bool:
    """Whether a command (its words) only changes its own process's environment (source, module load, conda activate)."""
    if not words or words[0] not in SETUP_ONLY:
        return False
    subcommands = _ENV_ONLY_SUBCOMMANDS.get(words[0])
    if subcommands is None:
        return True
    if words[0] == "spack" and words[1:2] == ["env"]:
        return words[2:3] in (["activate"], ["deactivate"])
    return words[1:2] != [] and words[1] in subcommands


_SHELLS = ("bash", "sh", "zsh", "ksh", "dash", "$SHELL", "${SHELL}")
_SHELL_SWITCHES = ("-l", "-i", "--login", "-il", "-li", "--norc", "--noprofile")


def _interactive_shell(ctx: Context, step: Any, c: Any, prog: list[str]) -> bool:
    """Whether a batch job's container step starts a shell with nothing to run (``apptainer shell IMG``, ``exec IMG
    bash``) and no input given to it (a redirection, a here-document or a pipe into it). Commands typed at a prompt
    (no #SBATCH line: a tutorial's snippet) are left alone: there the shell is the point."""
    if not ctx.parsed.directives:
        return False
    if getattr(c, "action", "") == "shell" and not c.command:
        pass
    elif not prog or prog[0].rsplit("/", 1)[-1] not in _SHELLS or any(a not in _SHELL_SWITCHES for a in prog[1:]):
        return False
    if any(r.op.startswith("<") for r in step.command.redirects):
        return False
    code = list(ctx.parsed.lexed.code)
    at = next((i for i, cmd in enumerate(code) if cmd.offset == step.command.offset), None)
    return not (at and code[at - 1].joined_by in ("|", "|&"))


@rule("HPC217", "container-used-only-for-setup", "error",
      summary="a container only runs set-up (source, activate, module, export); the next command runs on the host",
      why="Each apptainer exec is a separate process: an environment set up inside it disappears when it exits, "
          "so the real work that follows runs on the host, without the container's software.",
      fix="Run the set-up and the work in the same container: apptainer exec IMAGE bash -c 'source env.sh && python train.py'.",
      catalogue=(26,),
      bad="""#!/bin/bash
apptainer exec pytorch_2.3.sif source /opt/env.sh
python train.py
""",
      good="""#!/bin/bash
apptainer exec pytorch_2.3.sif bash -c 'source /opt/env.sh && python train.py'
""")
def _setup_only(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        prog = [str(w) for w in step.chain.program]
        if step.chain.launcher is None and _interactive_shell(ctx, step, c, prog):
            yield (step.line, "this starts an interactive shell in the container: in a batch job it reads no input and "
                              "exits at once, and the commands after it run on the host; give the container the "
                              "commands (apptainer exec IMAGE bash -c 'source env.sh && python train.py')")
            continue
        if step.chain.launcher is not None or not prog:
            continue
        first = prog[0]
        if first in ("bash", "sh", "/bin/bash", "/bin/sh") and shell_c_script(prog) is not None:
            cmds = [[str(v) for v in c.argv] for c in _simple_commands(_shell_c_script(step.command))]
            if cmds and all(_only_sets_up(x) for x in cmds):
                first = cmds[0][0]
            else:
                continue
        elif not _only_sets_up(prog):
            continue
        yield (step.line, f"the container only runs {first}: what it sets up is gone when it exits, and the following "
                          "commands run on the host; run set-up and work in one container (bash -c '… && python train.py')")


@rule("HPC218", "wrong-gpu-vendor-flag", "error",
      summary="--nv on an AMD site or --rocm on an NVIDIA site",
      why="The flag binds the driver libraries of one vendor; on the other vendor's GPUs nothing useful is bound "
          "and the framework sees no GPU.",
      fix="Use the flag of the site's GPUs: --nv for NVIDIA, --rocm for AMD (neither for Intel).",
      catalogue=(27,), profile="generic",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
module load apptainer
apptainer exec --rocm pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
module load apptainer
apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _wrong_vendor(ctx: Context) -> Iterator[Any]:
    vendor = profile_vendor(ctx)
    if vendor not in ("nvidia", "amd"):
        return
    wrong, right = ("rocm", "nv") if vendor == "nvidia" else ("nv", "rocm")
    for step, c in containers(ctx):
        if c.kind == "apptainer.run" and getattr(c, wrong):
            chain = with_chain(step.chain, container=c.replace(**{wrong: False, right: True}))
            # a script that shows AMD GPUs (a ROCm image) on an NVIDIA profile: either may be wrong, so no fix
            amd_script = vendor == "nvidia" and shows_amd(ctx)
            yield (step.line, f"--{wrong} on {_vendor_place(ctx)}, whose GPUs are {vendor.upper() if vendor == 'amd' else 'NVIDIA'}; "
                              f"use --{right}", None if amd_script else fix_for(ctx, f"use --{right}", step, chain))


def _vendor_place(ctx: Context) -> str:
    """Where the vendor comes from: the profile, or its partition when that has its own vendor."""
    part = ctx.profile.entry_for(ctx.job)
    if part is not None and getattr(part, "gpu_vendor", "") and part.has_gpus:
        return f"{part.where()} of {ctx.profile.name}"
    return ctx.profile.name


#: container fields whose problems other rules report (HPC216, HPC218), and the command, which the
#: parser moves to the inner layers
_CONTAINER_FIELDS_ELSEWHERE = ("command", "nvccli", "nv", "rocm")


def _holds_reference(value: Any, task_expands: bool = False) -> bool:
    """Whether a field's value refers to a variable, so its checks cannot be judged here. ``\\$X`` is the literal
    text, which can be judged, except where each task's shell expands it (``task_expands``: srun bash -c '…')."""
    found = (lambda text: "$" in text) if task_expands else _REFERENCE.search
    items = value if isinstance(value, tuple) else (value,)
    return any(found(str(getattr(i, "src", "")) + str(getattr(i, "dst", "")) + str(getattr(i, "value", "")))
               if isinstance(i, Spec) else isinstance(i, str) and found(i) for i in items)


#: a $ that is not the escaped literal \$
_REFERENCE = re.compile(r"(?<!\\)\$")


@rule("HPC219", "container-command-check", "warning",
      summary="the container command fails its own checks (an image it cannot read, options that contradict each other)",
      why="The runtime stops before the program starts (ch-run cannot open a SIF file or write into a SquashFS "
          "image), or silently ignores one of two options that contradict each other.",
      fix="Follow the message: use an image the runtime reads, and keep one of two contradicting options.",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
srun ch-run --write /scratch/images/pytorch.sqfs -- python /opt/app/train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
srun ch-run /scratch/images/pytorch.sqfs -- python /opt/app/train.py
""")
def _container_check(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if not c.image:
            continue  # a cut-off command ("apptainer exec --nv" then a lost backslash): HPC504 says why
        c = _as_bash_passes(c)
        if "$" in str(c.image) and not isinstance(c.image, Verbatim):
            c = c.replace(image=ctx.parsed.resolve(str(c.image), step.line))  # IMG=…sqfs; ch-run "$IMG"
        found: list[tuple[str, str]] = []
        for p in c.problems():
            root = p.field.split(".", 1)[0]
            if root in _CONTAINER_FIELDS_ELSEWHERE or (root == "binds" and "." in p.field and not p.field.endswith(".mode")):
                continue  # binds: one by one, below (ch-run's "no bind modes" is the runtime's own, here)
            if root not in ("image", "write") and not p.field.endswith(".mode") and _holds_reference(getattr(c, root, ""), shell_script_word(step) is not None):
                continue  # a $NAME is only known when the job runs (the image's kind shows in its name)
            found.append((p.field, p.message))
        for b in getattr(c, "binds", ()):
            for p in b.problems():
                if "$" not in str(getattr(b, p.field.split(".", 1)[0], "")):
                    found.append((f"binds.{p.field}", p.message))
        program = getattr(c, "binary", "") or getattr(c, "program", "") or c.kind.split(".")[0]
        for field, message in found:
            if ("'~' is not expanded in a quoted word" in message or "must be absolute" in message) and \
                    any(f == field and "'~' is not expanded here" in m for f, m in found):
                continue  # the same '~' said twice (the generic path check and the bind's own), or its consequence
            where = f" ({_field_words(c, field)})" if field else ""
            message = _VERBATIM_REPR.sub(r"\1", message)
            yield step.line, f"{program}{where}: {message}"
    for cmd, model in _fromhost_commands(ctx):
        image = ctx.parsed.resolve(str(model.image), cmd.line) if "$" in str(model.image) else model.image
        for p in model.replace(image=image).problems():
            if p.field == "image" and model.image:
                message = _VERBATIM_REPR.sub(r"\1", p.message)
                yield cmd.line, f"ch-fromhost (the image): {message}"


def _fromhost_commands(ctx: Context) -> list[tuple[Any, Any]]:
    """``(command, model)`` for each top-level ``ch-fromhost`` the reader can read."""
    from ..parse.argv import parse_argv
    out = []
    for cmd in simple_commands(ctx):
        if cmd.argv and str(cmd.argv[0]).rsplit("/", 1)[-1] == "ch-fromhost":
            try:
                out.append((cmd, parse_argv(cmd.argv).model))
            except ParseError:
                continue  # an option the reader does not know: nothing to judge
    return out


#: what a container problem is about, in words (never the model's field names)
_FIELD_WORDS = {"image": "the image", "binds": "the binds", "binds.src": "the bind's host path",
                "binds.dst": "the bind's container path", "binds.mode": "the bind's mode"}
#: ``Verbatim('…')`` in a message: the value as written, without the parser's wrapper
_VERBATIM_REPR = re.compile(r"Verbatim\(('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\)")


def _field_words(c: Any, field: str) -> str:
    if field in _FIELD_WORDS:
        return _FIELD_WORDS[field]
    root = field.split(".", 1)[0]
    try:
        info = c.field_spec(root).info
    except Exception:
        return root.replace("_", "-")
    return info.flag or (info.label or root).lower()


def _bash_tilde(value: Any) -> Any:
    """A word bash hands over with its unquoted leading ``~`` expanded (the parser keeps such a word
    Verbatim), written ``$HOME…``; anything else unchanged."""
    if isinstance(value, Verbatim) and value[:1] == "~" and value[1:2] in ("", "/"):
        return "$HOME" + value[1:]
    return value


def _as_bash_passes(c: Any) -> Any:
    """The container model with the values bash expands before the runtime sees them: ``~/img.sif`` and
    ``-B ~/data:/data`` (unquoted) reach it as ``$HOME/…``; ``"~/…"``, ``--bind=~/…`` and a ``~`` after
    ``:`` stay literal (and the model reports those)."""
    changes: dict[str, Any] = {}
    for f in c.field_specs():
        value = getattr(c, f.name)
        if f.name == "binds" and isinstance(value, tuple):
            new = tuple(_bash_binds(value, home="$HOME"))
        elif isinstance(value, str):
            new = _bash_tilde(value)
        elif isinstance(value, tuple) and f.name not in ("command", "extra"):
            new = tuple(_bash_tilde(v) if isinstance(v, str) else v for v in value)
        else:
            continue
        if new is not value and new != value or type(new) is not type(value):
            changes[f.name] = new
    return c.replace(**changes) if changes else c


# --------------------------------------------------------------------------------------------
# Slurm directives

@rule("HPC501", "directive-after-command", "error",
      summary="#SBATCH line after the first command: sbatch ignores it",
      why="sbatch stops reading directives at the first command, so the resource request silently does not "
          "happen (the job gets the defaults: often one CPU, no GPU, a short time limit).",
      fix="Move every #SBATCH line up, directly under the #!/bin/bash line.",
      catalogue=(13,),
      bad="""#!/bin/bash
module load cuda
#SBATCH --gres=gpu:1
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
module load cuda
python train.py
""")
def _late_directive(ctx: Context) -> Iterator[Any]:
    first = ctx.parsed.first_command
    seen: set[int] = set()
    for d in ctx.parsed.directives:
        if d.applied or d.line in seen:
            continue
        seen.add(d.line)
        yield (d.line, f"#SBATCH {d.flag} comes after the first command (line {first}), so sbatch ignores it; "
                       "move it above the first command")


#: SlurmJob problems → stable codes (by the field the problem is about)
PROBLEM_CODES = {
    "time": "HPC301", "mem": "HPC302", "mem_per_cpu": "HPC302", "mem_per_gpu": "HPC302",
    "cpus_per_gpu": "HPC303", "array": "HPC304", "output": "HPC305", "error": "HPC305", "chdir": "HPC305",
    "job_name": "HPC306", "gpus_per_node": "HPC307", "gpu_type": "HPC307", "gpus": "HPC307",
    "nodes": "HPC308", "ntasks": "HPC308", "ntasks_per_node": "HPC308", "cpus_per_task": "HPC308",
    "gpus_per_task": "HPC308",
}
#: any other SlurmJob problem
OTHER_JOB_PROBLEM = "HPC399"
#: SlurmJob fields read from the script body, not from #SBATCH lines: their own rules report them
NOT_DIRECTIVES = ("modules",)
#: the job model's message for a $VAR in a directive (sbatch does not expand it), whatever the field
UNEXPANDED = "not read by the shell"


def job_findings(ctx: Context) -> dict[str, list[tuple[int, str]]]:
    """The job's own problems (from its directives), by code, at the directive's line."""
    def make() -> dict[str, list[tuple[int, str]]]:
        out: dict[str, list[tuple[int, str]]] = {}
        if not ctx.parsed.directives:
            return out
        for p in ctx.job.problems() + ctx.job.advice():   # advice: what sbatch takes but is better otherwise
            field = p.field.split(".", 1)[0]
            if field in NOT_DIRECTIVES:
                continue  # from the script body, not an #SBATCH line: reported at its own line (HPC510)
            if field in ("output", "error", "chdir") and "'~' is not expanded" in p.message:
                continue  # HPC311 reports a ~ in an #SBATCH path, in the directive's own words
            if field == "extra_directives" and (STRAY_DIRECTIVE in p.message or TYPED_DASH in p.message):
                continue  # a word that is not an option: HPC310 (or HPC515 for a typographic dash) reports it
            code = "HPC305" if UNEXPANDED in p.message else PROBLEM_CODES.get(field, OTHER_JOB_PROBLEM)
            # the other items of a --gres are on its line; an option the model keeps as written (--signal=…) on
            # the line that gives it; every other field's on the directive that set it
            line = _extra_directive_line(ctx, p.message) if field == "extra_directives" else None
            line = line or ctx.parsed.directive_line("gpus_per_node" if field == "other_gres" else field,
                                                     _first_directive_line(ctx))
            out.setdefault(code, []).append((line, p.message))
        for view, line, p in _component_problems(ctx, lambda job: job.problems() + job.advice()):
            field = p.field.split(".", 1)[0]
            if UNEXPANDED in p.message or field in NOT_DIRECTIVES or (
                    field == "extra_directives" and (STRAY_DIRECTIVE in p.message or TYPED_DASH in p.message)):
                continue  # reported for every component by their own rules
            out.setdefault(PROBLEM_CODES.get(field, OTHER_JOB_PROBLEM), []).append((line, _in_component(view, p)))
        unexpanded = _unexpanded_directives(ctx, out.get("HPC305", []))
        if unexpanded:
            out["HPC305"] = sorted(out.get("HPC305", []) + unexpanded)
            # the same value's other complaint ('$N' is not a count) says less than why it is wrong: HPC305 alone
            lines = {line for line, _ in unexpanded}
            for code in [c for c in out if c != "HPC305"]:
                out[code] = [(line, m) for line, m in out[code] if not (line in lines and "$" in m)]
                if not out[code]:
                    del out[code]
        return out
    return cached(ctx, "job_problems", make)


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


def _extra_directive_line(ctx: Context, message: str) -> int | None:
    """The line of the job's (first component's) directive a problem with a kept-as-written option names at its
    start (``--signal=USR1@60s: …``); None when no directive gives that option."""
    option = re.split(r"[=:\s]", message, maxsplit=1)[0]
    return next((d.line for d in ctx.parsed.directives if d.applied and not d.component
                 and sbatch_long_option(d.flag) == option), None)


#: a reference the shell would expand: $NAME, ${…}, $(…), $1
_DIRECTIVE_REF = re.compile(r"\$(?:\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*|\(|[0-9])")
#: options whose value is free text, where "$5" is a price or a label, not the script's fifth argument
_FREE_TEXT_OPTIONS = ("--comment",)


def _unexpanded_directives(ctx: Context, reported: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """HPC305 for the #SBATCH values with a $VARIABLE that the job model does not report itself: the options it
    holds no field for (--dependency, --export, --signal, --nodelist, --begin, --container …), counts (--nodes=$N),
    a directive a later one overrides, and every directive of a heterogeneous job's later components. A reference
    written in single quotes or after a backslash is meant as text (sbatch keeps it so) and not reported, nor is
    ``$5`` in a free-text option such as --comment (a price, not the script's fifth argument)."""
    out: list[tuple[int, str]] = []
    for d in ctx.parsed.directives:
        refs = [m for m in _DIRECTIVE_REF.finditer(d.value)
                if not (m.group(0)[1:].isdigit() and sbatch_long_option(d.flag) in _FREE_TEXT_OPTIONS)]
        ref = refs[0] if refs else None
        if not d.applied or ref is None or not _DIRECTIVE_REF.search(_unquoted_text(ctx.parsed.lines[d.line - 1])):
            continue
        if any(line == d.line and _reported_value(message) in d.value for line, message in reported):
            continue  # the job model's own message for this value
        option = f"{d.flag}={d.value}" if d.flag.startswith("--") else f"{d.flag} {d.value}"
        out.append((d.line, f"#SBATCH {option}: #SBATCH lines are not read by the shell, so {ref.group(0)} is not "
                            "expanded; write the value itself, or give the option on the sbatch command line, where "
                            "the shell expands it"))
    return out


def _reported_value(message: str) -> str:
    """The value a job model's message quotes at its start (``'$HOME/x': #SBATCH lines are …``)."""
    head = message.split(": #SBATCH lines", 1)[0]
    return head[1:-1] if len(head) > 1 and head[0] == head[-1] and head[0] in "'\"" else head


def _unquoted_text(line: str) -> str:
    """An #SBATCH line without what bash would keep literal: single-quoted text and backslash-escaped characters."""
    return re.sub(r"'[^']*'|\\.", "", line)


def _first_directive_line(ctx: Context) -> int:
    return ctx.parsed.directives[0].line if ctx.parsed.directives else 1


def _job_rule(code: str) -> Any:
    def check(ctx: Context) -> Iterator[Any]:
        yield from job_findings(ctx).get(code, [])
    check.__name__ = f"_job_{code}"
    return check


_job_rule_specs = [
    ("HPC301", "bad-time-format", "error", "the --time limit is not in a format Slurm reads",
     "sbatch rejects the job (or, for a bare number, reads minutes where hours were meant).",
     "Write M, M:S, H:M:S, D-H, D-H:M or D-H:M:S, e.g. --time=01:30:00 or --time=2-00:00:00.", (12,),
     "#SBATCH --time=2h\n", "#SBATCH --time=02:00:00\n"),
    ("HPC302", "bad-memory-request", "error", "a memory request with a bad unit, or two memory options at once",
     "sbatch rejects units such as Gi or GiB (16GB and 16gb are fine), fractions such as 1.5G, and --mem, "
     "--mem-per-cpu and --mem-per-gpu exclude each other: the submission fails.",
     "Use a whole number with K, M, G or T, optionally followed by B (16G or 16GB), and only one of the three "
     "memory options.", (12,),
     "#SBATCH --mem=16GiB\n", "#SBATCH --mem=16G\n"),
    ("HPC303", "cpus-per-gpu-with-cpus-per-task", "error", "--cpus-per-gpu together with --cpus-per-task",
     "Slurm refuses the combination: the job is rejected at submission.",
     "Keep one: --cpus-per-task for CPUs per process, or --cpus-per-gpu.", (14,),
     "#SBATCH --gres=gpu:2\n#SBATCH --cpus-per-task=8\n#SBATCH --cpus-per-gpu=4\n",
     "#SBATCH --gres=gpu:2\n#SBATCH --cpus-per-gpu=4\n"),
    ("HPC304", "bad-array-spec", "error", "the --array value is not an index specification",
     "sbatch rejects the job.", "Write indexes like 0-15, 1,3,5, 0-15:4, optionally with %N to limit concurrency: 0-15%4.",
     (12,), "#SBATCH --array=1..10\n", "#SBATCH --array=1-10\n"),
    ("HPC305", "unexpanded-directive-value", "error", "an #SBATCH value uses $VARIABLE or ~, which sbatch does not expand",
     "#SBATCH lines are read by sbatch, not by the shell: --output=$HOME/logs/x.out names a folder literally "
     "called '$HOME' under the submission folder, which does not exist, so the log is lost. The same holds for "
     "every option: "
     "--dependency=afterok:$JOB is refused, --export=ALL,DATA=$HOME/data hands the job the text '$HOME/data'.",
     "Use a fixed path or sbatch's patterns (%u user, %x job name, %j job id), e.g. --output=logs/%x-%j.out; give "
     "an option whose value the shell must compute on the sbatch command line (sbatch --dependency=afterok:$JOB).",
     (12, 13), "#SBATCH --output=$HOME/logs/%j.out\n", "#SBATCH --output=logs/%x-%j.out\n"),
    ("HPC306", "job-name-with-spaces", "warning", "the job name contains spaces",
     "The name is used in %x output patterns and by squeue/sacct: spaces make file names awkward and break scripts "
     "that parse those listings.", "Use - or _ instead of spaces.", (),
     '#SBATCH --job-name="my training run"\n', "#SBATCH --job-name=my-training-run\n"),
    ("HPC307", "inconsistent-gpu-request", "error", "the GPU request contradicts itself",
     "GPUs in total that the GPUs per node and the node count cannot make (--gpus=4 at 2 per node on one node, "
     "--gpus=3 at 2 per node), or a GPU type without a count, is rejected or gives a different allocation than "
     "intended.", "Ask for GPUs one way: --gres=gpu[:type]:N per node (or --gpus=N in total), or make the total "
     "the nodes × the GPUs per node.",
     (12,), "#SBATCH --nodes=1\n#SBATCH --gres=gpu:2\n#SBATCH --gpus=4\n", "#SBATCH --nodes=1\n#SBATCH --gres=gpu:2\n"),
    ("HPC308", "bad-count", "error", "a node, task or CPU count is not a positive whole number, or the tasks do not fit",
     "sbatch rejects the job, or (ntasks larger than nodes × tasks per node) refuses to place it. With fewer tasks "
     "than nodes it lowers the nodes to the tasks; on one node, --ntasks below --ntasks-per-node wins (the latter is "
     "a maximum), so the job gets fewer tasks than its srun steps or Lightning expect.",
     "Write whole numbers of at least 1, and keep --nodes ≤ --ntasks ≤ --nodes × --ntasks-per-node.", (12,),
     "#SBATCH --nodes=0\n", "#SBATCH --nodes=1\n"),
    ("HPC399", "other-directive-problem", "error", "another #SBATCH value Slurm would reject",
     "sbatch refuses the job at submission (for example an unknown --mail-type).",
     "Correct the value as the message says.", (12,),
     "#SBATCH --mail-type=SOMETIMES\n", "#SBATCH --mail-type=END,FAIL\n"),
]

for _code, _name, _sev, _summary, _why, _fix, _cat, _bad, _good in _job_rule_specs:
    rule(_code, _name, _sev, summary=_summary, why=_why, fix=_fix, catalogue=_cat,
         bad="#!/bin/bash\n" + _bad + "python train.py\n",
         good="#!/bin/bash\n" + _good + "python train.py\n")(_job_rule(_code))


@rule("HPC310", "unreadable-directive", "error",
      summary="an #SBATCH line that sbatch cannot read",
      why="A missing value, a word that is not an option or an open quote makes sbatch stop with an error "
          "(or take the next option as the value).",
      fix="Write one option per #SBATCH line as --name=value.",
      catalogue=(12, 13),
      bad="""#!/bin/bash
#SBATCH --partition
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
srun python train.py
""")
def _unreadable(ctx: Context) -> Iterator[Any]:
    # an option typed with a typographic dash: HPC515 says what is wrong with it and fixes it
    typed = {i for i, text in enumerate(ctx.parsed.lines, start=1) if text.startswith("#SBATCH")
             and any(_typographic_option(word) for word in text.split()[1:])}
    for line, message in ctx.parsed.problems:
        if line not in typed:
            yield line, message


@rule("HPC309", "srun-cpus-per-task-not-inherited", "warning",
      summary="srun does not get --cpus-per-task again (Slurm 22.05–23.02 do not pass it on)",
      why="From Slurm 22.05 until 23.11, srun no longer takes --cpus-per-task from the job: each task gets one CPU, "
          "so data loaders and OpenMP threads crawl on a single core.",
      fix="Pass it to the step: srun --cpus-per-task=\"$SLURM_CPUS_PER_TASK\" …, or export "
          "SRUN_CPUS_PER_TASK=\"$SLURM_CPUS_PER_TASK\" before srun. (Not needed from Slurm 23.11: set the profile's "
          "scheduler_version.)",
      catalogue=(14,),
      bad="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
srun --cpus-per-task=8 python train.py
""")
def _srun_cpus(ctx: Context) -> Iterator[Any]:
    if ctx.profile is not None and not ctx.profile.srun_needs_cpus_per_task():
        return
    het = heterogeneous(ctx)
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is None or srun.cpus_per_task is not None:
            continue
        cpus = ctx.job.cpus_per_task if in_job_component(ctx, step) else _components_cpus(ctx, step)
        if not isinstance(cpus, int) or cpus <= 1:
            continue
        if ctx.parsed.variable("SRUN_CPUS_PER_TASK", step.line) or any(n == "SRUN_CPUS_PER_TASK" for n, _ in step.env):
            continue
        own = [str(e).partition("=")[0] for e in srun.extra]
        if "--cpus-per-gpu" in own or "--overlap" in own or _is_monitor(step):
            continue  # sized by GPU (srun refuses that with --cpus-per-task); a monitor or shell beside the others
        over = _step_tasks_over_job(ctx, step)
        if over is not None:  # more tasks than the job's: each gets its share of the job's CPUs
            total = _job_cpus(ctx)[2]  # type: ignore[index]  # known: the step was measured against it
            if ctx.profile is None or ctx.profile.version_tuple() is None or over > total or total // over <= 1:
                continue  # HPC322's (the step may not start), or no CPUs to share out
            cpus, had = total // over, f"srun -n {over} shares the job's {total} CPUs, {total // over} a task,"
        else:
            had = f"the job has --cpus-per-task={cpus}"
        # no fix in a heterogeneous job (its components may ask for different counts), nor for a step run in the
        # background or with --exact: one of several sharing the job's CPUs, which would then wait for each other
        shared = het or step.command.joined_by == "&" or "--exact" in own
        yield (step.line, f"{had} but srun on Slurm 22.05–23.02 gives each task one CPU; "
                          f"pass --cpus-per-task={cpus} to srun (or export SRUN_CPUS_PER_TASK)",
               # written in after "srun" alone: the rest of the line stays exactly as it was
               None if shared else _insert_after_srun(ctx, step, f"--cpus-per-task={cpus}"))


def _components_cpus(ctx: Context, step: Any) -> int | None:
    """The --cpus-per-task every component of a heterogeneous job's step asks for, when they all ask for
    the same number (``srun --het-group=0,1`` over two components of -c 32), else None."""
    groups = het_groups(step) or ""
    wanted: set[int] = set()
    for part in groups.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return None
        wanted.update(range(int(lo), int(hi if dash else lo) + 1))
    values = set()
    for k in wanted:
        found = None
        for d in ctx.parsed.directives:
            if d.applied and d.field == "cpus_per_task" and d.component == k:
                found = d.value
        values.add(found)
    if len(values) != 1:
        return None
    value = values.pop()
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _insert_after_srun(ctx: Context, step: Any, option: str) -> Fix | None:
    """A fix that writes ``option`` right after the step's ``srun`` word and changes nothing else on the
    line (safe whatever follows: ``bash -c "…"``, ``$CMD``, redirections)."""
    words = step.command.words
    srun = next((w for w in words if str(w.value) == "srun" or str(w.value).endswith("/srun")), None)
    if srun is None or "\n" in srun.raw or srun.line > len(ctx.parsed.lines):
        return None
    line = ctx.parsed.lines[srun.line - 1]
    at = srun.col - 1 + len(srun.raw)
    if line[srun.col - 1:at] != srun.raw:
        return None
    return Fix(f"pass {option} to srun", srun.line, srun.line, text=f"{line[:at]} {option}{line[at:]}")


def _job_cpus(ctx: Context) -> tuple[int, int, int] | None:
    """(tasks, CPUs per task, CPUs) the job is given, when its #SBATCH lines fix them: no --exclusive (the whole
    node), no --overcommit, no --cpus-per-gpu or --mincpus (CPUs counted another way), not heterogeneous."""
    job = ctx.job
    tasks = job_tasks(ctx)
    per_task = job.cpus_per_task if job.cpus_per_task is not None else 1
    if tasks is None or not isinstance(per_task, int) or job.exclusive or job.cpus_per_gpu is not None \
            or heterogeneous(ctx) or any(d.applied and d.flag in ("-O", "--overcommit", "--mincpus")
                                         for d in ctx.parsed.directives):
        return None
    return tasks, per_task, tasks * per_task


def _step_tasks_over_job(ctx: Context, step: Any) -> int | None:
    """The task count an srun step asks for with -n/--ntasks when it is more than the job's, else None."""
    srun = step.chain.srun
    found = _job_cpus(ctx)
    if srun is None or srun.ntasks is None or found is None:
        return None
    n = as_int(ctx, srun.ntasks, step.line)
    return n if n is not None and n > found[0] else None


@rule("HPC322", "step-asks-for-more-cpus-than-the-job", "error",
      summary="srun -n N starts more tasks than the job asked for, and the CPUs they need are more than the job has",
      why="A step cannot use more CPUs than the job's allocation: the job's #SBATCH --ntasks and --cpus-per-task "
          "fix how many it gets. srun -n 4 in a job of --ntasks=1 --cpus-per-task=8 asks for 4 tasks; each takes "
          "the job's --cpus-per-task (23.11 and later, and 21.08 and earlier), so the step wants 32 CPUs of 8 and "
          "srun stops with "
          "'Unable to create step … More processors requested than permitted'. (Slurm 22.05–23.02 give each such "
          "task one CPU instead. Slurm hands out whole cores, so on nodes with two threads a core a task of one CPU "
          "holds two, and a step that fits in those is not reported.)",
      fix="Ask the job for the tasks the step starts (#SBATCH --ntasks=4 --cpus-per-task=2), or give each task its "
          "share of the job's CPUs: srun -n 4 --cpus-per-task=2 ….",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:4
srun -n 4 apptainer exec --nv img_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=2
#SBATCH --gres=gpu:4
srun --cpus-per-task=2 apptainer exec --nv img_2.3.sif python train.py
""")
def _step_outgrows_job(ctx: Context) -> Iterator[Any]:
    version = ctx.profile.version_tuple() if ctx.profile is not None else None
    for step in steps(ctx):
        n = _step_tasks_over_job(ctx, step)
        if n is None:
            continue
        tasks, per_task, cpus = _job_cpus(ctx)  # type: ignore[misc]  # known: the step was measured against it
        srun = step.chain.srun
        own = as_int(ctx, srun.cpus_per_task, step.line) if srun.cpus_per_task is not None else None
        inherits = version is None or not (22, 5) <= version < _CPUS_INHERITED_SINCE  # 22.05–23.02 do not
        each = own if own is not None else (per_task if inherits else 1)
        # Slurm hands out whole cores: on nodes with two threads a core, a task of an odd CPU count gets one more
        if n * each <= tasks * (per_task + per_task % 2):
            continue
        job = f"the job's {tasks} task{'s' if tasks > 1 else ''}" + (f" × {per_task} CPUs" if per_task > 1 else "")
        if own is None and per_task > 1:
            how = (f"srun gives each task the job's --cpus-per-task={per_task} (every Slurm but 22.05–23.02, which "
                   f"give each task one CPU), so the step asks for {n * per_task} CPUs of the job's {cpus}")
        else:
            how = f"the step asks for {n * each} CPUs of the job's {cpus}"
        share = cpus // n
        hint = f"or give each task its share (srun -n {n} --cpus-per-task={share})" if share >= 1 \
            else "or start fewer tasks"
        fix = None
        if own is None and share >= 1 and step.command.joined_by != "&":
            fix = _insert_after_srun(ctx, step, f"--cpus-per-task={share}")
        yield (step.line, f"srun -n {n} starts more tasks than {job}: {how}, and srun stops with 'More processors "
                          f"requested than permitted'; ask the job for them (#SBATCH --ntasks={n}) {hint}", fix)


@rule("HPC323", "more-threads-than-cpus", "warning",
      summary="OMP_NUM_THREADS (or MKL_NUM_THREADS) is set above the CPUs each task has (--cpus-per-task)",
      why="Slurm confines each task to the CPUs it asked for (its cgroup, and the CPU binding of srun): with "
          "--cpus-per-task=8 and OMP_NUM_THREADS=32, 32 threads take turns on 8 CPUs. OpenMP and MKL code run much "
          "slower oversubscribed (threads spin waiting for each other), and the job looks busy while it crawls.",
      fix="Follow the job's count: export OMP_NUM_THREADS=\"$SLURM_CPUS_PER_TASK\" (or ask for as many CPUs as "
          "threads: --cpus-per-task=32).",
      bad="""#!/bin/bash
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=8
export OMP_NUM_THREADS=32
srun --cpus-per-task=8 ./solver
""",
      good="""#!/bin/bash
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=8
export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"
srun --cpus-per-task=8 ./solver
""")
def _more_threads_than_cpus(ctx: Context) -> Iterator[Any]:
    cpus = ctx.job.cpus_per_task
    if not isinstance(cpus, int) or ctx.job.exclusive or heterogeneous(ctx):
        return  # no count of the job's own (or the whole node): nothing to compare with
    for var in ctx.parsed.variables:
        value = str(var.value).strip("'\"")
        if var.name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") and var.exported and value.isdigit() \
                and int(value) > cpus:
            yield (var.line, f"{var.name}={value} but each task has {cpus} CPU{'s' if cpus > 1 else ''} "
                             f"(--cpus-per-task={cpus}): {value} threads take turns on {cpus}, and oversubscribed "
                             f"OpenMP code crawls; export {var.name}=\"$SLURM_CPUS_PER_TASK\"")


@rule("HPC318", "array-tasks-share-a-log", "warning",
      summary="a job array writes every task's output to the same file",
      why="An --output (or --error) pattern without %a, %j or %J names one file for all tasks: they write over each "
          "other and the log of a failed task is lost. (%A alone is the array's id, the same for every task.) An "
          "array run one task at a time (--array=1-30%1) with --open-mode=append keeps one log of the chain, on "
          "purpose, and is not reported.",
      fix="Put the task in the name: --output=%x-%A_%a.out.",
      bad="""#!/bin/bash
#SBATCH --array=0-9
#SBATCH --output=sweep.log
python train.py --task "$SLURM_ARRAY_TASK_ID"
""",
      good="""#!/bin/bash
#SBATCH --array=0-9
#SBATCH --output=sweep_%A_%a.log
python train.py --task "$SLURM_ARRAY_TASK_ID"
""")
def _array_shared_log(ctx: Context) -> Iterator[Any]:
    ids = array_task_ids(ctx.job.array) if isinstance(ctx.job.array, str) and ctx.job.array else None
    if not ctx.job.array or (ids is not None and len(ids) < 2):
        return  # no array, or an array of one task: nothing to write over
    if str(ctx.job.array).endswith("%1") and any(d.applied and d.flag == "--open-mode" and d.value == "append"
                                                for d in ctx.parsed.directives):
        return  # one task at a time, each appending: one log of the chain, on purpose
    for name in ("output", "error"):
        pattern = str(getattr(ctx.job, name) or "")
        if not pattern or pattern == "/dev/null" or re.search(r"%(?:\d*)[ajJ]", pattern) or "$" in pattern:
            continue  # ($SLURM_ARRAY_TASK_ID there is HPC305's: sbatch writes it as it stands, and %a is the fix)
        yield (ctx.parsed.directive_line(name), f"--{name}={pattern} is the same file for every task of the array: "
                                                "they write over each other; add %a (e.g. "
                                                f"--{name}={_with_task(pattern)})")


def _with_task(pattern: str) -> str:
    """``pattern`` with the array task in its name (sweep.log → sweep_%A_%a.log)."""
    head, dot, ext = pattern.rpartition(".")
    if dot and "/" not in ext:
        return f"{head}{'_%a' if '%A' in head else '_%A_%a'}.{ext}"
    return pattern + ("_%a" if "%A" in pattern else "_%A_%a")


#: a time limit in Slurm's M:S form (minutes:seconds) of under five minutes: 1:30, 2:00, 0:45
_MINUTES_SECONDS = re.compile(r"([0-4]):([0-5][0-9])")


@rule("HPC320", "time-in-minutes-and-seconds", "warning",
      summary="--time=1:30 is one minute and thirty seconds, not an hour and a half",
      why="Slurm reads a time with one colon as MINUTES:SECONDS (and rounds the seconds up to a minute), so "
          "--time=2:00 gives the job two minutes: it is killed long before a training run ends, after its wait in "
          "the queue. Only limits under five minutes are reported; a short test job may mean it.",
      fix="Write hours as H:MM:SS: --time=1:30:00 for an hour and a half (or --time=90, in minutes).",
      bad="""#!/bin/bash
#SBATCH --time=1:30
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=1:30:00
python train.py
""")
def _minutes_and_seconds(ctx: Context) -> Iterator[Any]:
    for job, line_of in job_components(ctx):
        time = job.time
        m = _MINUTES_SECONDS.fullmatch(time) if isinstance(time, str) else None
        if m is None:
            continue
        line = line_of("time")
        hours = f"{m.group(1)}:{m.group(2)}:00"
        text = ctx.parsed.lines[line - 1]
        fix = Fix(f"--time={hours}", line, line, text=text.replace(time, hours, 1)) if text.count(time) == 1 else None
        yield (line, f"--time={time} is {int(m.group(1))} min {int(m.group(2))} s (Slurm reads M:S); for "
                     f"{int(m.group(1))} h {int(m.group(2))} min write --time={hours}", fix)


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


@rule("HPC319", "memory-without-unit", "warning",
      summary="--mem (or --mem-per-cpu/--mem-per-gpu) is a number under 100 without a unit, which Slurm reads as megabytes",
      why="Slurm's default unit is megabytes: --mem=32 asks for 32 MB, and the job is killed for running out of "
          "memory as soon as Python loads its libraries (or the site rejects it). From 100 on a value may well "
          "mean megabytes (--mem-per-cpu=500), and a comment that says MB is taken at its word.",
      fix="Write the unit: --mem=32G.",
      bad="""#!/bin/bash
#SBATCH --mem=32
python train.py
""",
      good="""#!/bin/bash
#SBATCH --mem=32G
python train.py
""")
def _memory_without_unit(ctx: Context) -> Iterator[Any]:
    lines = ctx.parsed.lines
    for job, line_of in job_components(ctx):
        for name in ("mem", "mem_per_cpu", "mem_per_gpu"):
            value = str(getattr(job, name) or "").strip()
            line = line_of(name)
            said = lines[line - 1] if 0 < line <= len(lines) else ""
            # under 100 MB is too little for any Python job; more may be meant (--mem-per-cpu=500 # megabytes)
            if value.isdigit() and 0 < int(value) < 100 and not re.search(r"(?i)\bMB\b|mega|\bMiB\b", said):
                flag = "--" + name.replace("_", "-")
                yield (line, f"{flag}={value} has no unit, so Slurm reads {value} megabytes; "
                             f"write {flag}={value}G if you meant gigabytes")


@rule("HPC311", "tilde-in-directive", "error",
      summary="an #SBATCH path starts with ~",
      why="sbatch does not expand ~ in directives: the output goes to a directory literally named '~' (which "
          "usually does not exist, so the job fails at start and its log is lost).",
      fix="Write a relative path (relative to the submission directory) or an absolute one; %u is the user name.",
      catalogue=(13,),
      bad="""#!/bin/bash
#SBATCH --output=~/logs/%x-%j.out
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --output=logs/%x-%j.out
srun python train.py
""")
def _tilde(ctx: Context) -> Iterator[Any]:
    for d in ctx.parsed.directives:
        if d.applied and d.field in ("output", "error", "chdir") and str(d.value).startswith("~"):
            yield d.line, f"{d.flag}={d.value}: sbatch does not expand ~; write a relative or absolute path"


#: options of srun (and salloc) that sbatch does not have: they belong on the srun line of the step
SRUN_ONLY_OPTIONS = frozenset({
    "--mpi", "--cpu-bind", "--label", "--kill-on-bad-exit", "--multi-prog", "--accel-bind", "--pty", "--exact",
    "--overlap", "--whole", "--unbuffered", "--relative", "--task-prolog", "--task-epilog", "--prolog", "--epilog",
    "--bcast", "--send-libs", "--compress", "--preserve-env", "--disable-status", "--quit-on-interrupt",
    "--slurmd-debug", "--het-group", "--jobid", "--external-launcher", "--x11"})


def _spelling_variants(flag: str) -> set[str]:
    """Options one slip away from ``flag``: ``_`` for ``-`` and upper case (as a whole), then one
    character missing, extra, or two neighbours swapped. Never a different letter (--cpu-bind is not
    --gpu-bind, --mpi is not --tmp)."""
    base = "--" + flag[2:].replace("_", "-").lower()
    out = {base}
    body = base[2:]
    letters = "abcdefghijklmnopqrstuvwxyz-"
    for i in range(len(body) + 1):
        out.update("--" + body[:i] + c + body[i:] for c in letters)   # one missing
        if i < len(body):
            out.add("--" + body[:i] + body[i + 1:])                 # one extra
        if i + 1 < len(body):
            out.add("--" + body[:i] + body[i + 1] + body[i] + body[i + 2:])  # two swapped
    return out


def _unknown_directives(ctx: Context) -> Iterator[tuple[Any, str, str, str]]:
    """Applied directives whose option sbatch does not have: ``(directive, flag, what it is, detail)``
    where what it is is ``srun`` (an srun option; detail: its name), ``ambiguous`` (the beginning of
    several options; detail: them), ``slip`` (detail: the option it is a slip of) or ``unknown``. An
    alias sbatch keeps (--tasks-per-node) and an unambiguous prefix (--tasks) are options sbatch has
    (HPC317 reports the prefix)."""
    for d in ctx.parsed.directives:
        if not d.applied or d.field or sbatch_option(d.flag):
            continue
        flag = d.flag
        if not flag.startswith("--"):
            yield d, flag, "unknown", ""
            continue
        normal = "--" + flag[2:].replace("_", "-").lower()
        if normal in SRUN_ONLY_OPTIONS:
            yield d, flag, "srun", normal
            continue
        several = sorted(o for o in SBATCH_OPTIONS if o.startswith(flag))
        if len(flag) > 3 and len(several) > 1:
            yield d, flag, "ambiguous", ", ".join(several)
            continue
        close = sorted({SBATCH_ALIASES.get(o, o) for o in _spelling_variants(flag) if o in SBATCH_OPTIONS})
        if len(close) == 1:
            yield d, flag, "slip", close[0]
        else:
            yield d, flag, "unknown", ""


#: a comment that looks like a directive: ``#WORD --option``
_SENTINEL_LIKE = re.compile(r"^#([A-Za-z]{4,8})[ \t]+-")


def _misspelled_sentinel(word: str) -> bool:
    """``SBTACH``, ``SBACTH``, ``SBATC``, ``sbatch``: a slip of SBATCH (which sbatch reads case and letter exact)."""
    upper = word.upper()
    if word == "SBATCH":
        return False
    import difflib
    return upper == "SBATCH" or sorted(upper) == sorted("SBATCH") or \
        difflib.SequenceMatcher(None, upper, "SBATCH").ratio() >= 0.8


@rule("HPC321", "misspelled-sbatch-sentinel", "error",
      summary="a line meant as an #SBATCH directive is misspelled (#SBTACH, #sbatch, SBATCH without its #), so "
              "sbatch ignores it",
      why="sbatch reads only lines that start exactly with #SBATCH; any other spelling is an ordinary comment. The "
          "options on it are silently dropped: the job runs with the default time, memory or account, and nothing "
          "says why. (A space after the # or a second #, as in # SBATCH or ##SBATCH, is the usual way to switch a "
          "line off on purpose, and is left alone.)",
      fix="Write #SBATCH exactly (upper case, no space).",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
#SBTACH --time=02:00:00
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00
python train.py
""")
def _sentinel(ctx: Context) -> Iterator[Any]:
    first = first_command_line(ctx.parsed.lexed)
    for number, text in enumerate(ctx.parsed.lines, start=1):
        if first and number >= first:
            break
        m = _SENTINEL_LIKE.match(text)
        if m and _misspelled_sentinel(m.group(1)):
            fixed = "#SBATCH" + text[m.end(1):]
            yield (number, f"#{m.group(1)} is not #SBATCH, so sbatch ignores this line and its options; write #SBATCH",
                   Fix("write #SBATCH", number, number, text=fixed))
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        if words[:1] == ["SBATCH"] and len(words) > 1 and words[1].startswith("-") and cmd.line == cmd.end_line:
            text = ctx.parsed.lines[cmd.line - 1]
            at = len(text) - len(text.lstrip())
            yield (cmd.line, f"SBATCH {words[1]} has lost its #: bash runs it as a command (SBATCH: command not "
                             "found), and sbatch reads no #SBATCH line after it; write #SBATCH",
                   Fix("write #SBATCH", cmd.line, cmd.line, text=text[:at] + "#" + text[at:]))


@rule("HPC312", "misspelled-sbatch-option", "error",
      summary="an #SBATCH option sbatch does not have: a slip of one it has, or an srun option",
      why="sbatch refuses the whole job at submission (\"unrecognized option\"), and a script that is only "
          "ever submitted by a tool or a pipeline fails far from where the typo is. Options such as --mpi and "
          "--cpu-bind exist only for srun: they belong on the srun line of the step.",
      fix="Write the option as sbatch spells it (sbatch --help lists them); move srun's own options to the srun "
          "line (srun --mpi=pmix …).",
      bad="""#!/bin/bash
#SBATCH --ntask-per-node=1
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --ntasks-per-node=1
srun python train.py
""")
def _misspelled_option(ctx: Context) -> Iterator[Any]:
    for d, flag, kind, close in _unknown_directives(ctx):
        if kind == "srun":
            yield (d.line, f"{flag} is an srun option, not an sbatch one (sbatch refuses the job); pass it to srun "
                           f"on the step's line instead (srun {close}=… program)")
            continue
        if kind == "ambiguous":
            yield (d.line, f"{flag} is the beginning of several sbatch options ({close}), so sbatch refuses the job "
                           "as ambiguous; write the option's full name")
            continue
        if kind != "slip":
            continue
        yield (d.line, f"{flag} is not an sbatch option (sbatch refuses the job); did you mean {close}?",
               _rename_option(ctx, d.line, flag, close))


def _rename_option(ctx: Context, line: int, flag: str, name: str) -> Fix | None:
    """A fix writing ``name`` for the option ``flag`` on directive line ``line`` (None when it is not there)."""
    lines = ctx.parsed.lines
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    pattern = rf"(?<![\w-]){re.escape(flag)}(?![\w-])"
    if not re.search(pattern, text):
        return None
    return Fix(f"write {name}", line, line, text=re.sub(pattern, name, text, count=1))


@rule("HPC313", "unknown-sbatch-option", "info",
      summary="an #SBATCH option that Slurm's sbatch does not have",
      why="Unless a plugin of your site adds it, sbatch refuses the job (\"unrecognized option\").",
      fix="Check the spelling against sbatch --help on your cluster; if the site documents the option, keep it "
          "and suppress this finding (# hpcw: disable=HPC313).",
      bad="""#!/bin/bash
#SBATCH --gpus-on-each-node=2
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --gpus-per-node=2
srun python train.py
""")
def _unknown_option(ctx: Context) -> Iterator[Any]:
    for d, flag, kind, _ in _unknown_directives(ctx):
        if kind == "unknown" and not _typographic_option(flag):   # a typographic dash: HPC515
            yield d.line, f"{flag} is not an option of Slurm's sbatch: fine only if your site adds it; check the spelling"


@rule("HPC317", "abbreviated-sbatch-option", "info",
      summary="an #SBATCH option written as an abbreviation of its name (or #SBATCH packjob, the old name of hetjob)",
      why="sbatch accepts any unambiguous beginning of an option's name (--tasks is --tasks-per-node, i.e. "
          "--ntasks-per-node), so the job may ask for something else than it reads (--tasks is not --ntasks), "
          "and a later Slurm that adds another option with the same beginning refuses the job as ambiguous. "
          "Likewise sbatch still reads #SBATCH packjob between the components of a heterogeneous job, but warns that "
          "the name is deprecated.",
      fix="Write the option's full name (sbatch --help lists them), and #SBATCH hetjob for packjob.",
      bad="""#!/bin/bash
#SBATCH --tasks=1
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --ntasks-per-node=1
srun python train.py
""")
def _abbreviated_option(ctx: Context) -> Iterator[Any]:
    from ..errors import ParseError
    from ..parse.lexer import directive_words
    first = ctx.parsed.first_command
    for cmd in ctx.parsed.lexed.directives:
        if first and cmd.line >= first:
            continue
        try:
            words = [w.value for w in directive_words(cmd)]
        except ParseError:
            continue
        if words == ["packjob"]:
            yield (cmd.line, "#SBATCH packjob is the deprecated name of the separator between the components of a "
                             "heterogeneous job (sbatch warns); write #SBATCH hetjob",
                   _rename_option(ctx, cmd.line, "packjob", "hetjob"))
    for d in ctx.parsed.directives:
        flag = d.flag
        if not d.applied or not flag.startswith("--") or flag in SBATCH_OPTIONS:
            continue  # (a prefix is read into its field too: d.field says which)
        full = sbatch_long_option(flag)
        if not full:
            continue
        name = SBATCH_ALIASES.get(full, full)
        means = f"{full}, i.e. {name}" if name != full else full
        other = "--n" + flag[2:]
        if sbatch_long_option(other) and SBATCH_ALIASES.get(sbatch_long_option(other), sbatch_long_option(other)) != name:
            means += f", not {sbatch_long_option(other)}"
        yield d.line, f"sbatch reads {flag} as {means}; write {name} in full", _rename_option(ctx, d.line, flag, name)


# --------------------------------------------------------------------------------------------
# the script file itself: what sbatch refuses before reading any directive

@rule("HPC314", "windows-line-endings", "error",
      summary="the script has Windows (CRLF) line endings",
      why="sbatch refuses the script: \"Batch script contains DOS line breaks (\\r\\n) instead of expected UNIX "
          "line breaks (\\n)\". Run by bash, every line would end in an invisible carriage return ($'\\r': "
          "command not found, file names with a stray character).",
      fix="Convert the file to Unix line endings (dos2unix job.sh, or sed -i 's/\\r$//' job.sh) and set the "
          "editor to save with LF line endings.",
      bad="#!/bin/bash\r\n#SBATCH --time=01:00:00\r\nsrun python train.py\r\n",
      good="#!/bin/bash\n#SBATCH --time=01:00:00\nsrun python train.py\n")
def _windows_line_ends(ctx: Context) -> Iterator[Any]:
    text = ctx.text
    at = text.find("\r\n")
    if at < 0:
        return
    count = text.count("\r\n")
    fix = Fix("convert the line endings to LF (as dos2unix does)", 1, text.count("\n") + 1,
              text=text.replace("\r\n", "\n"))
    yield (text.count("\n", 0, at) + 1,
           f"the file has Windows line endings (\\r\\n, on {count} line{'s' if count > 1 else ''}): sbatch refuses it "
           f"(\"Batch script contains DOS line breaks\"); convert it with dos2unix {shlex.quote(ctx.path or 'FILE')} "
           "and save with LF line endings", fix)


@rule("HPC315", "no-shebang-line", "error",
      summary="a batch script whose first line does not start with #!",
      why="sbatch refuses the script (\"This does not look like a batch script. The first line must start with #! "
          "followed by the path to an interpreter\"). The #! must be the very first two characters: a blank line, "
          "a space or a byte-order mark before it is enough.",
      fix="Make #!/bin/bash the first line of the file, above the #SBATCH lines.",
      bad="""#SBATCH --time=01:00:00
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
srun python train.py
""")
def _no_shebang(ctx: Context) -> Iterator[Any]:
    text = ctx.text
    if text.startswith("#!") or not text.strip():
        return  # an empty file: HPC316
    lines = text.split("\n")
    if text.startswith("\ufeff"):
        if text.startswith("\ufeff#!") or ctx.parsed.directives:
            yield (1, "the file starts with a UTF-8 byte-order mark (BOM, often added by Windows editors): sbatch reads "
                      "it as part of the first line and refuses the script (the first line must start with #!); "
                      "remove it", Fix("remove the byte-order mark", 1, 1, text=lines[0][1:]))
        return
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    if lines[first].lstrip().startswith("#!"):
        where = "a space" if first == 0 else ("a blank line" if first == 1 else f"{first} blank lines")
        yield (1, f"{where} before the #! line: sbatch refuses the script (\"This does not look like a batch "
                  "script\"; #! must be the first two characters of the file); remove it",
               Fix("start the file with its #! line", 1, first + 1, text=lines[first].lstrip()))
        return
    if not ctx.parsed.directives:
        return  # commands without #! or #SBATCH lines: a snippet typed at a prompt, not a batch script
    yield (1, "the first line does not start with #! (e.g. #!/bin/bash): sbatch refuses the script (\"This does not "
              "look like a batch script\"); add #!/bin/bash as the first line",
           Fix("add #!/bin/bash as the first line", 1, 1, text="#!/bin/bash\n" + lines[0]))


@rule("HPC316", "empty-script", "error",
      summary="the script is empty (or only blank lines)",
      why="sbatch refuses it (\"Batch script is empty!\", \"Batch script contains only whitespace!\"): usually the "
          "file was saved before it was written, or a tool wrote it to another name.",
      fix="Write the job into the file: #!/bin/bash, the #SBATCH lines, then the commands.",
      bad="",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
srun python train.py
""")
def _empty_script(ctx: Context) -> Iterator[Any]:
    if ctx.text.strip():
        return
    if ctx.text:
        yield 1, "the file holds only whitespace: sbatch refuses it (\"Batch script contains only whitespace!\")"
    else:
        yield 1, "the file is empty: sbatch refuses it (\"Batch script is empty!\")"


# --------------------------------------------------------------------------------------------
# cluster profile

def profile_findings(ctx: Context) -> dict[str, list[tuple[int, str]]]:
    def make() -> dict[str, list[tuple[int, str]]]:
        out: dict[str, list[tuple[int, str]]] = {}
        if ctx.profile is None or not ctx.parsed.directives:
            return out
        from ..spec.profile import check_job
        for p in check_job(ctx.profile, ctx.job):
            code = _profile_code(p.field, p.message)
            default = ctx.parsed.directive_line("partition", _first_directive_line(ctx))
            out.setdefault(code, []).append((ctx.parsed.directive_line(p.field, default), p.message))
        # each later component: one that names no partition gets the default, as --partition is not passed on from
        # one component to the next (heterogeneous_jobs.html lists the options that are)
        for view, line, p in _component_problems(ctx, lambda job: check_job(ctx.profile, job)):
            out.setdefault(_profile_code(p.field, p.message), []).append((line, _in_component(view, p)))
        return out
    return cached(ctx, "profile_problems", make)


def _profile_code(field: str, message: str) -> str:
    if field == "partition" and ("has no partition" in message or message.startswith("the job will not run")):
        return "HPC401"
    # GPUs where there are none: on the partition, or the job names none and the profile has no default.
    # Any other problem of a job that names no partition (time, memory, CPUs on the default one) goes by field.
    if message.startswith("the job asks for GPUs but") or "no GPU partition" in message:
        return "HPC407"
    return {"time": "HPC402", "gpus_per_node": "HPC403", "gpus": "HPC403", "gpus_per_task": "HPC403",
            "gpu_type": "HPC404", "mem": "HPC405", "mem_per_cpu": "HPC405", "mem_per_gpu": "HPC405",
            "cpus_per_task": "HPC406", "ntasks_per_node": "HPC406", "ntasks": "HPC406", "cpus_per_gpu": "HPC406",
            "nodes": "HPC408", "account": "HPC408",  # account: the profile's account_required
            }.get(field, "HPC408")


def _profile_rule(code: str) -> Any:
    def check(ctx: Context) -> Iterator[Any]:
        yield from profile_findings(ctx).get(code, [])
    check.__name__ = f"_profile_{code}"
    return check


_profile_rule_specs = [
    ("HPC401", "unknown-partition", "the partition does not exist on this cluster (or takes no jobs)",
     "sbatch rejects the job: 'invalid partition specified'. A partition whose State is DRAIN or INACTIVE refuses "
     "new jobs, and one that is DOWN queues them but starts none.",
     "Use one of the partitions the profile lists that takes jobs.",
     "#SBATCH --partition=gpu-large\n#SBATCH --gres=gpu:1\n", "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n"),
    ("HPC402", "time-over-partition-limit", "the time limit is longer than the partition allows",
     "The job is rejected, or stays pending forever with reason PartitionTimeLimit.",
     "Ask for at most the partition's maximum, or use a partition with a longer limit.",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=3-00:00:00\n",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=1-00:00:00\n"),
    ("HPC403", "too-many-gpus-per-node", "more GPUs per node than the partition's nodes have (or per job than it allows)",
     "No node can satisfy the request: the job never starts ('Requested node configuration is not available'). "
     "Over a per-job GPU limit the job is rejected or pends forever.",
     "Ask for at most the partition's GPUs per node and use more nodes for more GPUs; stay within its GPUs per job.",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:8\n", "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:4\n"),
    ("HPC404", "unknown-gpu-type", "a GPU type the partition does not have",
     "The request names a gres type no node offers: the job is rejected or never starts.",
     "Use one of the partition's GPU types, or leave the type out (gpu:N).",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:v100:1\n", "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:a100:1\n"),
    ("HPC405", "memory-over-node", "more memory per node than the partition's nodes have (or per job than it allows)",
     "No node is large enough, or the job is over the partition's memory per job: it never starts.",
     "Ask for at most the node's memory (or --mem=0 for all of it), and in total at most the memory per job.",
     "#SBATCH --partition=cpu\n#SBATCH --mem=1T\n", "#SBATCH --partition=cpu\n#SBATCH --mem=200G\n"),
    ("HPC406", "cpus-over-node", "more CPUs per node than the partition's nodes have (or per job than it allows)",
     "Tasks per node × CPUs per task does not fit on any node, or the job is over the partition's CPUs per job: "
     "it never starts.",
     "Lower the tasks per node or CPUs per task, or spread the tasks over more nodes; stay within the CPUs per job.",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --cpus-per-task=64\n",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --cpus-per-task=16\n"),
    ("HPC407", "gpus-on-cpu-partition", "GPUs are requested on a partition without GPUs",
     "The partition has no GPU nodes: the job is rejected or waits forever. Each component of a heterogeneous "
     "job is checked: one that names no partition gets the default, whatever the others name.",
     "Submit to a GPU partition (the profile lists them), or drop the GPU request.",
     "#SBATCH --partition=cpu\n#SBATCH --gres=gpu:1\n", "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n"),
    ("HPC408", "over-partition-limit", "more nodes than the partition allows (or another site limit, such as a "
                                       "required --account)",
     "The job is rejected or pends forever with reason PartitionNodeLimit. A site whose profile sets "
     "account_required rejects a job that names no account.",
     "Ask for at most the partition's maximum number of nodes; name your account (--account) where the site "
     "requires one.",
     "#SBATCH --partition=gpu\n#SBATCH --nodes=8\n#SBATCH --gres=gpu:1\n",
     "#SBATCH --partition=gpu\n#SBATCH --nodes=4\n#SBATCH --gres=gpu:1\n"),
]

for _code, _name, _summary, _why, _fix, _bad, _good in _profile_rule_specs:
    rule(_code, _name, "error", summary=_summary, why=_why, fix=_fix, catalogue=(12,), profile="generic",
         bad="#!/bin/bash\n" + _bad + "python train.py\n",
         good="#!/bin/bash\n" + _good + "python train.py\n")(_profile_rule(_code))




def _same_module(loaded: str, wanted: str) -> bool:
    """``module load apptainer`` loads the default of apptainer/1.3.4, and apptainer/1.3.4 is an apptainer."""
    a, b = loaded.split("/", 1)[0], wanted.split("/", 1)[0]
    return a == b and (loaded == wanted or "/" not in loaded or "/" not in wanted)


#: words that run the command after them (their own options skipped)
def _program_run(cmd: Any) -> str:
    """The program a simple command runs (its basename), past ``time``, ``env A=1`` and ``srun [options]``."""
    words = run_words([str(w.value) for w in cmd.words])
    return words[0].rsplit("/", 1)[-1] if words else ""


@rule("HPC409", "runtime-module-not-loaded", "warning",
      summary="the container runtime is used but the module the site provides it in is not loaded first",
      why="On sites where Apptainer or Charliecloud comes as an environment module, a batch job starts without it: "
          "the step fails at once with 'apptainer: command not found' after the job has waited in the queue.",
      fix="module load the runtime's module (the profile names it) before the first command that uses it.",
      catalogue=(12,), profile="midway3",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
apptainer exec --nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
module load apptainer
apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _runtime_module(ctx: Context) -> Iterator[Any]:
    if ctx.profile is None or not ctx.parsed.directives:
        return  # a command typed at the prompt, where the module may well be loaded: only batch jobs start clean
    reported: set[str] = set()
    for cmd in simple_commands(ctx):
        program = _program_run(cmd)
        if program in MPI_LAUNCHERS:  # mpirun [options] apptainer exec …: the ranks run the container program
            program = next((name for name in (str(w.value).rsplit("/", 1)[-1] for w in cmd.words[1:])
                            if ctx.profile.runtime_module(name)), program)
        wanted = ctx.profile.runtime_module(program)
        if not wanted or wanted in reported:
            continue
        if any(_same_module(name, wanted) and line < cmd.line for name, line in ctx.parsed.modules):
            continue
        reported.add(wanted)
        yield (cmd.line, f"{program} comes from the module {wanted} on this cluster, and the script does not load it "
                         f"before line {cmd.line}: the job stops with '{program}: command not found'; add "
                         f"module load {wanted} above it", _load_module_fix(ctx, cmd, wanted))


def _load_module_fix(ctx: Context, cmd: Any, module: str) -> Fix:
    """``module load MODULE`` on its own line above the statement that holds ``cmd`` (above the ``[ -f … ] ||``
    a download is joined to, not between them)."""
    code = list(ctx.parsed.lexed.code)
    k = next(i for i, c in enumerate(code) if c is cmd)
    while k > 0 and code[k - 1].joined_by:
        k -= 1
    line = code[k].line
    first = ctx.parsed.lines[line - 1]
    indent = first[: len(first) - len(first.lstrip())]
    return Fix(f"load the module {module} first", line, line, text=f"{indent}module load {module}\n{first}")


# --------------------------------------------------------------------------------------------
# container environment (kept here: it reads the whole script's variables)

USERSITE_VARS = ("PYTHONNOUSERSITE", "APPTAINERENV_PYTHONNOUSERSITE", "SINGULARITYENV_PYTHONNOUSERSITE")


@rule("HPC209", "host-user-site-packages", "info",
      summary="Python in the container can import packages from the host's ~/.local",
      why="Apptainer mounts $HOME by default, and Python adds ~/.local/lib/pythonX.Y/site-packages to its path: "
          "packages you once installed with pip --user on the host shadow the image's versions.",
      fix="export PYTHONNOUSERSITE=1 (it reaches the container), or run with --no-home / --containall and explicit binds.",
      catalogue=(11,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
export PYTHONNOUSERSITE=1
apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _user_site(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if c.kind != "apptainer.run" or c.home:
            continue
        run = as_run(ctx, step, c)  # APPTAINER_NO_HOME=1 or APPTAINER_CONTAINALL=1 exported keep $HOME out too
        if run.hides_home:
            continue
        prog = [str(w) for w in step.chain.program]
        pythonish = step.chain.launcher is not None or (prog and prog[0].rsplit("/", 1)[-1].startswith("python"))
        if not pythonish:
            continue
        # --cleanenv passes none of the host's variables but the APPTAINERENV_ ones into the container
        names = tuple(n for n in USERSITE_VARS if n != "PYTHONNOUSERSITE") if run.cleanenv else USERSITE_VARS
        if any(ctx.parsed.variable(n, step.line + 1) for n in names) or \
                any(n in names for n, _ in step.env) or any(str(e.name) == "PYTHONNOUSERSITE" for e in c.env):
            continue
        setting = ("export APPTAINERENV_PYTHONNOUSERSITE=1 (--cleanenv keeps PYTHONNOUSERSITE itself out)"
                   if run.cleanenv else "export PYTHONNOUSERSITE=1")
        yield (step.line, "$HOME is mounted, so packages in the host's ~/.local can shadow the image's; "
                          f"{setting} or use --no-home")


# --------------------------------------------------------------------------------------------
# shell slips

PER_TASK_VARS = ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID")
_PRINTERS = ("echo", "printf", ":")


@rule("HPC502", "per-task-variable-expanded-once", "error",
      summary="$SLURM_PROCID / $SLURM_LOCALID / $SLURM_NODEID expanded by the batch shell",
      why="The batch script runs once, as task 0 of the first node: it replaces the variable before srun starts "
          "the tasks, so every task receives 0 (all ranks claim rank 0, all use GPU 0). Inside srun bash -c \"…\" "
          "the double quotes expand it just as early.",
      fix="Let each task expand it: srun bash -c 'python train.py --rank \"$SLURM_PROCID\"' (single quotes), or "
          "read the variable inside the program (os.environ['SLURM_PROCID']).",
      catalogue=(22,),
      bad="""#!/bin/bash
#SBATCH --ntasks=4
srun bash -c "python train.py --rank $SLURM_PROCID"
""",
      good="""#!/bin/bash
#SBATCH --ntasks=4
srun bash -c 'python train.py --rank "$SLURM_PROCID"'
""")
def _per_task(ctx: Context) -> Iterator[Any]:
    if job_nodes(ctx) < 2 and not any(w.rsplit("/", 1)[-1] in ("srun", *MPI_LAUNCHERS) for cmd in simple_commands(ctx)
                                      for w in [str(v) for v in cmd.argv][:3]):
        return  # one node and no step that starts tasks: the batch shell is the only task, its value the right one
    if job_tasks(ctx) == 1 and _one_task_everywhere(ctx):
        return  # one task: the batch shell's value is that task's
    for cmd in ctx.parsed.lexed.code:
        # a case/if/for head in the batch shell (case $SLURM_LOCALID in …) is evaluated once, as task 0
        if cmd.kind != "compound" or not re.match(r"\s*(?:case|if|elif|while|until|for)\b", cmd.text):
            continue
        head = cmd.text.split("\n", 1)[0]
        hits = sorted({name for name, _ in expanded_refs(head) if name in PER_TASK_VARS})
        if hits:
            yield cmd.line, (f"{', '.join('$' + h for h in hits)} is read once by the batch shell (as task 0), so this "
                             "branch is the same for every task; let each task choose (srun bash -c '…' or in the "
                             "program)")
    for cmd in simple_commands(ctx):
        if cmd.name in _PRINTERS:
            continue
        hits = sorted({name for w in all_words(cmd) for name, _ in expanded_refs(w.raw) if name in PER_TASK_VARS})
        if not hits or _only_ignored_node_rank(ctx, cmd) or _set_again_per_task(ctx, cmd):
            continue
        names = ", ".join(f"${h}" for h in hits)
        words = [str(v) for v in cmd.argv]
        if words and words[0] == "srun" and any(w in ("bash", "sh", "/bin/bash", "/bin/sh") for w in words):
            yield cmd.line, (f"{names} is inside double quotes, so the batch shell expands it once (to 0) before srun "
                             "starts the tasks; use single quotes around the bash -c script")
        else:
            yield cmd.line, (f"{names} is expanded once by the batch shell (task 0), so every task gets the same value; "
                             f"let each task read it (srun bash -c '…${hits[0]}…' or os.environ in the program)")


def _one_task_everywhere(ctx: Context) -> bool:
    """Whether every step of a one-task job runs one task: no srun of its own -n or --ntasks-per-node above 1, no
    MPI launcher (mpirun -np 4 starts tasks of its own)."""
    for cmd in simple_commands(ctx):
        if any(w.rsplit("/", 1)[-1] in MPI_LAUNCHERS for w in [str(v) for v in cmd.argv][:3]):
            return False
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is not None and any(v is not None and v != 1 for v in (srun.ntasks, srun.ntasks_per_node, srun.nodes)):
            return False
    return not heterogeneous(ctx)


#: a per-task variable, and the option that a reference right after it gives its value to
_PER_TASK_REF = re.compile(r"\$\{?(?:" + "|".join(PER_TASK_VARS) + r")\b")
_NODE_RANK_BEFORE = re.compile(r"--node[-_]rank(?:=|\s+)[\"']?$")


def _only_ignored_node_rank(ctx: Context, cmd: Any) -> bool:
    """Whether the per-task variables of ``cmd`` reach only ``--node-rank`` of torchrun launches whose rendezvous
    is not static, on the line itself or through the variable it assigns (``LAUNCHER="torchrun --node_rank=$SLURM_NODEID
    … --rdzv_backend c10d"``, then ``srun $LAUNCHER``): torch/distributed/run.py reads the node rank for the static
    backend alone (c10d numbers the nodes itself), so the same value on every node changes nothing (HPC105 says
    to remove the option)."""
    using = [s for s in steps(ctx)
             if s.line == cmd.line or any(at == cmd.line for _, at in s.through)]
    if not using or not all(_node_rank_ignored(ctx, s) for s in using):
        return False
    words = all_words(cmd)
    if sum(len(_PER_TASK_REF.findall(w.raw)) for w in words) \
            < sum(name in PER_TASK_VARS for w in words for name, _ in expanded_refs(w.raw)):
        return False  # a name in arithmetic, (( SLURM_NODEID )): not a --node-rank value
    for k, w in enumerate(words):
        for m in _PER_TASK_REF.finditer(w.raw):
            before = w.raw[:m.start()]
            if _NODE_RANK_BEFORE.search(before):
                continue
            if before.strip("\"'") or k == 0 or words[k - 1].raw not in ("--node-rank", "--node_rank"):
                return False
    return True


def _node_rank_ignored(ctx: Context, step: Any) -> bool:
    """Whether the step is a torchrun launch whose rendezvous backend is one the script names and not static."""
    launcher = step.chain.launcher
    if launcher is None or launcher.kind != "torchrun":
        return False
    backend = ctx.parsed.resolve(str(launcher.rdzv_backend or ""), step.line).strip("'\" ")
    return backend not in ("", "static") and "$" not in backend  # "": torchrun's default, static


def _set_again_per_task(ctx: Context, cmd: Any) -> bool:
    """Whether ``cmd`` only assigns per-task variables to names (``export NODE_RANK=$SLURM_PROCID``) that every
    other command sets again before it reads them, and that every later srun sets again when they are exported
    (``srun bash -c "export NODE_RANK=\\$SLURM_PROCID; torchrun --node-rank=\\$NODE_RANK …"``): each task then
    uses its own value and the batch shell's is never read."""
    if cmd.kind != "simple" or (cmd.words and (cmd.name != "export" or len(cmd.words) != 1 + len(cmd.assignments))):
        return False
    names = {n for n, w in cmd.assignments if any(m in PER_TASK_VARS for m, _ in expanded_refs(w.raw))}
    if not names:
        return False
    set_again = False
    for other in ctx.parsed.lexed.code:
        if other is cmd or other.kind in ("comment", "directive", "shebang", "blank"):
            continue
        for name in names:
            refs = [m.start() for m in re.finditer(r"\$\{?" + name + r"\b", other.text)]
            sets = [m.start() for m in re.finditer(r"(?<![\w$])" + name + r"=", other.text)]
            if refs and (not sets or sets[0] > refs[0]):
                return False
            exported = cmd.name == "export" or any(v.name == name and v.exported for v in ctx.parsed.variables)
            if exported and other.line > cmd.line and re.search(r"\bsrun\b", other.text) and not sets:
                return False
            set_again = set_again or bool(sets) and other.line > cmd.line
    return set_again


#: an upper-case name (NPROC, BS) or a lower-case one with an underscore (num_gpus): a variable, not a program
_VARIABLE_NAME = re.compile(r"[A-Z][A-Z0-9_]*|[a-z_][a-z0-9]*_[a-z0-9_]*")
#: commands that do take ``=`` as an argument (``test "$a" = b``, ``echo =====``): never a slip
_TAKES_EQUALS = frozenset({"echo", "printf", "print", "test", "[", "[[", "let", "alias", "declare", "typeset", "local",
                           "export", "readonly", "eval", "exec", "set", "unset", "source", ".", "read", "expr", "bc",
                           "awk", "gawk", "sed", "grep", "logger", "printenv", "env", "command", "builtin", ":",
                           "true", "false", "R"})
#: a value that runs as no command: a number, an arithmetic expansion, a quoted text without expansions
_NO_COMMAND = re.compile(r"[0-9]+(?:\.[0-9]*)?|\$\(\(.*\)\)|'[^']*'|\"[^\"$`\\]*\"")


@rule("HPC520", "spaces-around-assignment", "error",
      summary="NAME = value: spaces around = make bash run NAME as a command instead of assigning it",
      why="Bash assigns only NAME=value written as one word. With a space before the = (NAME = value, NAME =value) "
          "it runs a command called NAME with the rest as its arguments: 'NAME: command not found', exit 127, and "
          "under set -e the job stops there, after its time in the queue; without set -e the script goes on with "
          "NAME unset (an empty --num_processes, a default batch size). With a space after it only (NAME= 4) bash "
          "sets NAME to an empty string for a command called 4. Python-style settings copied into a job script "
          "(num_gpus = 4) are the usual source. A command the script defines as a function, test, [ and [[, let, "
          "(( )), alias and declare take their = as an argument and are not reported; NAME= before a real command "
          "(IFS= read -r line) is not either, only before a number or a quoted text.",
      fix="Remove the spaces around =: NAME=value (the fix does so when the line is one assignment and nothing "
          "else).",
      bad="""#!/bin/bash
#SBATCH --nodes=2
set -e
NUM_PROCESSES = $((SLURM_NNODES * 4))
srun python train.py --num-processes "$NUM_PROCESSES"
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
set -e
NUM_PROCESSES=$((SLURM_NNODES * 4))
srun python train.py --num-processes "$NUM_PROCESSES"
""")
def _spaced_assignment(ctx: Context) -> Iterator[Any]:
    if not ctx.parsed.directives and not ctx.parsed.source.startswith("#!"):
        return  # no #! line and no #SBATCH: maybe no shell script at all (key = value is TOML's, or Python's)
    functions = _functions(ctx)
    for cmd, _, _ in _code_in_order(ctx):
        found = _spaced(cmd, functions)
        if found is None:
            continue
        name, value, written = found
        fix = _spaced_fix(ctx, cmd, name, value)
        runs = f"{name} as a command" if not cmd.assignments else f"{value} as a command, with {name} empty"
        advice = (f"remove the spaces: {name}={value}" if " " not in value else
                  f"remove the spaces and quote the value: {name}=\"{value}\"" if not re.search(r"[\"'$`\\]", value)
                  else "remove the spaces and write the value as one word")
        yield (cmd.line, f"{written} is no assignment: bash runs {runs} ('command not found', exit 127; under set -e "
                         f"the job stops here) and {name} stays unset; {advice}", fix)


def _spaced(cmd: Any, functions: dict[str, int]) -> tuple[str, str, str] | None:
    """``(NAME, value, as written)`` for a command that reads as a spaced assignment (``NAME = value``,
    ``NAME =value``, ``NAME= 4``), else None."""
    if cmd.kind != "simple" or not cmd.words:
        return None
    words = cmd.words
    if len(cmd.assignments) == 1 and not cmd.name == "export" and len(words) == 1:  # NAME= 4
        name, empty = cmd.assignments[0]
        if empty.raw == "" and _VARIABLE_NAME.fullmatch(name) and _NO_COMMAND.fullmatch(words[0].raw):
            return name, words[0].raw, f"{name}= {words[0].raw}"
        return None
    if cmd.assignments or len(words) < 2 or words[0].quoted or words[0].raw in functions:
        return None
    name, second = words[0].raw, words[1].raw
    if name in _TAKES_EQUALS or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return None
    if second == "=" and (_VARIABLE_NAME.fullmatch(name) or re.fullmatch(r"[a-z]+", name)):
        value = " ".join(w.raw for w in words[2:])
        return name, value, f"{name} = {value}".rstrip()
    if second.startswith("=") and _VARIABLE_NAME.fullmatch(name):
        value = " ".join([second[1:]] + [w.raw for w in words[2:]]).strip()
        return name, value, f"{name} {' '.join(w.raw for w in words[1:])}"
    return None


def _spaced_fix(ctx: Context, cmd: Any, name: str, value: str) -> Fix | None:
    """The line with ``NAME=value`` in place of the command, when that is one plain assignment: the command on
    one line, no redirection, and the value one word (``NAME = a b`` would run b with NAME set)."""
    words = cmd.words
    pieces = [w.raw for w in words[1:]] if not cmd.assignments else [words[0].raw]
    single = len(pieces) <= 1 or (len(pieces) == 2 and pieces[0] == "=")
    if not single or cmd.redirects or cmd.end_line != cmd.line or any("\n" in w.raw for w in words):
        return None
    line = ctx.parsed.lines[cmd.line - 1]
    last = words[-1]
    end = last.col - 1 + len(last.raw)
    return Fix(f"remove the spaces around = ({name}={value})", cmd.line, cmd.line,
               text=line[:cmd.col - 1] + f"{name}={value}" + line[end:])


#: Slurm variables sbatch sets only when the job asks for the option named beside each (sbatch(1), "OUTPUT
#: ENVIRONMENT VARIABLES": "Only set if the --cpus-per-task option is specified" and the like; seen on Slurm 22.05),
#: with the test on the job model that says it does. SLURM_GPUS_PER_NODE is HPC107's; memory variables are left
#: out (a site's DefMemPerCPU sets SLURM_MEM_PER_CPU for every job), and so is SLURM_ARRAY_TASK_ID (arrays are
#: often asked for on the command line: sbatch --array=0-9 job.sh)
_SET_ONLY_WITH: dict[str, tuple[str, Any]] = {
    "SLURM_CPUS_PER_TASK": ("--cpus-per-task", lambda job: job.cpus_per_task is not None),
    "SLURM_NTASKS_PER_NODE": ("--ntasks-per-node", lambda job: job.ntasks_per_node is not None),
    "SLURM_CPUS_PER_GPU": ("--cpus-per-gpu", lambda job: job.cpus_per_gpu is not None),
    "SLURM_GPUS_PER_TASK": ("--gpus-per-task", lambda job: bool(job.gpus_per_task)),
    "SLURM_GPUS": ("--gpus", lambda job: bool(job.gpus)),
    "SLURM_MEM_PER_GPU": ("--mem-per-gpu", lambda job: bool(job.mem_per_gpu)),
    "SLURM_GPUS_ON_NODE": ("GPUs (--gres=gpu:N, --gpus-per-node …)", lambda job: bool(job.gpus_on_each_node
                                                                                     or job.gpus or job.gpus_per_task)),
    "SLURM_JOB_GPUS": ("GPUs (--gres=gpu:N, --gpus-per-node …)", lambda job: bool(job.gpus_on_each_node
                                                                                 or job.gpus or job.gpus_per_task)),
}
#: the job fields that ask for resources: a script that sets none takes them all from the sbatch command line
_RESOURCES = ("nodes", "ntasks", "ntasks_per_node", "cpus_per_task", "cpus_per_gpu", "gpus_per_node", "gpus",
              "gpus_per_task", "mem", "mem_per_cpu", "mem_per_gpu")
#: a reference that copes with an unset variable (${NAME:-1}, ${NAME-1}, ${NAME:+…}, ${NAME:?message}, ${#NAME}), or
#: a test that reads it ([ -n "$NAME" ], [ "$NAME" != "" ], [[ $NAME ]], test "x$NAME" = x, [[ -v NAME ]])
_COPES_WITH_UNSET = (r"\$\{{#?{name}(?::?[-=+?]|#|%|/)|-v\s+[\"']?{name}\b"
                     r"|(?:\[\[?|\btest\s)[^\]\n;&|]*\$\{{?{name}\b")


@rule("HPC521", "slurm-variable-not-set", "warning",
      summary="a Slurm variable that sbatch sets only for an option the job does not ask for ($SLURM_CPUS_PER_TASK "
              "without --cpus-per-task)",
      why="sbatch sets SLURM_CPUS_PER_TASK only when the job asks for --cpus-per-task (SLURM_NTASKS_PER_NODE only with "
          "--ntasks-per-node, SLURM_GPUS_PER_NODE only with --gpus-per-node, not with --gres, SLURM_MEM_PER_NODE only "
          "with --mem, SLURM_ARRAY_TASK_ID only in a job array …). Without the option the reference expands to "
          "nothing: OMP_NUM_THREADS= is empty, --workers $SLURM_CPUS_PER_TASK leaves the option without its value "
          "(argparse stops the program), and under set -u the script stops at once with 'unbound variable'. "
          "Scripts copied from another job, or edited to drop a directive, do this. An option given on the sbatch "
          "command line (sbatch -c 8 job.sh) does set it: then the finding does not apply.",
      fix="Ask for the option in an #SBATCH line (#SBATCH --cpus-per-task=8), or give the reference a default: "
          "${SLURM_CPUS_PER_TASK:-1}.",
      bad="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
python train.py --workers "$SLURM_CPUS_PER_TASK"
""",
      good="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
python train.py --workers "$SLURM_CPUS_PER_TASK"
""")
def _slurm_variable_not_set(ctx: Context) -> Iterator[Any]:
    job, source = ctx.job, ctx.parsed.source
    if heterogeneous(ctx) or not any(getattr(job, f) for f in _RESOURCES):
        return  # no resource asked for in the script: they come from the sbatch command line, which it does not show
    unset = {}
    for name, (option, asks) in _SET_ONLY_WITH.items():
        if name not in source or asks(job) or any(v.name == name for v in ctx.parsed.variables):
            continue
        kept = " ".join(str(d) for d in job.extra_directives)
        if "tres" in kept or "gpu" in kept or option.split()[0].lstrip("-") in kept:
            continue  # an option the model keeps as written (--tres-per-task=cpu:8 sets SLURM_CPUS_PER_TASK too)
        if re.search(_COPES_WITH_UNSET.format(name=name), source):
            continue  # the script knows it may be unset
        unset[name] = option
    if not unset:
        return
    seen: set[str] = set()
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner) or cmd.name in _PRINTERS:
            continue  # a bash -c script runs in the step, which srun's own options may give the variable
        names = [n for w in all_words(cmd) for n, _ in expanded_refs(w.raw) if n in unset and n not in seen]
        for name in dict.fromkeys(names):
            seen.add(name)
            option = unset[name]
            add = f"ask for {option}" if " " in option else f"add #SBATCH {option}=…"
            yield (cmd.line, f"${name} is set only when the job asks for {option}, which this script does not: here "
                             f"it expands to nothing (under set -u the script stops: unbound variable); {add}, or "
                             f"write ${{{name}:-…}} with a default (unless you give it on the sbatch command line)")



#: ``$0``, ``${0}``, ``$BASH_SOURCE``, ``${BASH_SOURCE[0]}``: the path the script runs from
_SCRIPT_PATH = r"\$\{?(?:0|BASH_SOURCE(?:\[[^\]]*\])?)\}?"
#: uses of the script's path that look for files next to it: its directory (dirname, also of a
#: readlink -f / realpath, or ${0%/*}), a cd into it, or a path joined onto it ("$0"/../data).
#: Running the script itself again (sbatch "$0", sbatch ${BASH_SOURCE[0]}) is fine: the spool copy is the script.
_SCRIPT_DIR = re.compile(
    r"(?<![\w-])(?:dirname|cd|pushd)\s+(?:--\s+)?[\"']?(?:\$\(\s*(?:readlink\s+-[A-Za-z]*f[A-Za-z]*|realpath)\s+[\"']?)?"
    + _SCRIPT_PATH
    + r"|\$\{(?:0|BASH_SOURCE(?:\[[^\]]*\])?)%%?/"
    + r"|" + _SCRIPT_PATH + r"[\"']?/")


#: a script that knows whether Slurm runs it: the script's own location is then only its fallback outside a job
_OUTSIDE_SLURM_FALLBACK = re.compile(r"\bSLURM_SUBMIT_DIR\b|\bSLURM_JOB_?ID\b")


@rule("HPC503", "script-location-in-batch-job", "error",
      summary="$(dirname \"$0\") or BASH_SOURCE used to find files next to the batch script",
      why="sbatch runs a copy of the script from Slurm's spool directory (e.g. /var/spool/slurmd/job123/), so "
          "$0 and BASH_SOURCE point there: files 'next to the script' are not found. Only the script's directory "
          "counts (dirname, cd, ${0%/*}, \"$0\"/…): running the script itself again (sbatch \"$0\" in a requeue "
          "handler) is fine, as the spool copy is the same script, and so is the script's location as the fallback "
          "for a run outside Slurm (${SLURM_SUBMIT_DIR:-$(dirname \"$0\")}, or an if that tests $SLURM_SUBMIT_DIR "
          "or $SLURM_JOB_ID).",
      fix="Use $SLURM_SUBMIT_DIR (the directory sbatch was run from) or an absolute path.",
      catalogue=(23,),
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
cd "$(dirname "$0")"
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
cd "$SLURM_SUBMIT_DIR"
python train.py
""")
def _script_dir(ctx: Context) -> Iterator[Any]:
    if not ctx.parsed.directives:
        return
    def through_variables(raw: str, line: int, used: set[int], depth: int = 4) -> str:
        """``raw`` with the script's variables written in as assigned, command substitutions included (the
        lines of the assignments it used go into ``used``)."""
        def sub(m: re.Match[str]) -> str:
            var = ctx.parsed.variable(m.group(1) or m.group(2), line)
            if var is None or depth <= 0:
                return m.group(0)
            used.add(var.line)
            return through_variables(str(var.value), var.line, used, depth - 1)
        return re.sub(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))", sub, raw) if "$" in raw else raw

    reported: set[int] = set()
    for cmd in ctx.parsed.lexed.code:
        if _OUTSIDE_SLURM_FALLBACK.search(cmd.text) and (cmd.kind == "compound" or "SLURM_SUBMIT_DIR" in cmd.text):
            continue  # ${SLURM_SUBMIT_DIR:-$(dirname "$0")}, or an if that uses $0 only when not run by Slurm
        hits = [w for w in all_words(cmd) if _SCRIPT_DIR.search(w.raw)]
        if not hits and not _SCRIPT_DIR.search(raw_text(cmd)):
            # through the script's variables: SELF=$(readlink -f "$0"); cd "$(dirname "$SELF")", unless the
            # assignment itself was reported (DIR=$(dirname "$0"); source "$DIR/env.sh": once, at DIR=)
            for w in all_words(cmd):
                used: set[int] = set()
                text = through_variables(w.raw, cmd.line, used)
                if _SCRIPT_DIR.search(text) and not used & reported and "SLURM_SUBMIT_DIR" not in text:
                    hits.append(w)
            if not hits:
                continue
        if cmd.kind == "simple" and not cmd.words and cmd.assignments and not any(
                re.search(rf"\$\{{?{name}\b", ctx.parsed.source[cmd.offset + len(cmd.text):])
                for name, _ in cmd.assignments):
            continue  # SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd) copied in but never used: nothing is looked up
        reported.add(cmd.line)
        yield (hits[0].line if hits else cmd.line,
               "sbatch runs a copy of the script from its spool directory, so $0 / BASH_SOURCE do not "
               "point next to your script; use $SLURM_SUBMIT_DIR")


@rule("HPC504", "missing-line-continuation", "error",
      summary="a line of a continued command lost its trailing backslash",
      why="Without the backslash the command ends at that line: it runs without the options below, and the "
          "next line ('--bind …', '--nproc-per-node …') runs as a command of its own and fails. Reported for a line "
          "that starts with an option, and for an indented line right after a command whose earlier lines end in "
          "a backslash (apptainer exec --nv \\ / \"$IMG\" / torchrun …: the container gets no command, and the "
          "program then runs on the host). The script of a multi-line srun bash -c '…' is read the same way.",
      fix="End every line of the command except the last with a backslash (and no space after it).",
      catalogue=(24,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv
  --bind "$SCRATCH/data:/data" pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv \\
  --bind "$SCRATCH/data:/data" pytorch_2.3.sif python train.py
""")
def _lost_backslash(ctx: Context) -> Iterator[Any]:
    yield from _option_lines(simple_commands(ctx), _same_line)
    lines = ctx.parsed.lines
    yield from _blank_after_backslash(ctx, lines)
    cut_off = {s.line: c for s, c in containers(ctx)
               if c.kind == "apptainer.run" and getattr(c, "action", "") == "exec" and c.image
               and not s.chain.program and s.chain.launcher is None}
    yield from _lost_backslash_before_command(ctx.parsed.lexed.code, lines, cut_off, _same_line)
    for step in steps(ctx):  # the script of srun bash -c '…' loses its backslashes the same way
        inner = _inner_script(shell_script_word(step))
        if inner is not None:
            lexed, outer = inner
            yield from _option_lines(tuple(c for c in lexed.code if c.kind == "simple"), outer)
            yield from _lost_backslash_before_command(lexed.code, lexed.source.split("\n"), {}, outer)


def _blank_after_backslash(ctx: Context, lines: Any) -> Iterator[Any]:
    """A line whose last word is a backslash and a blank (``"$IMG" \\␠``): the backslash escapes the blank, so the
    command ends there with a one-blank argument, and the indented (or option) line below runs on its own."""
    for cmd, _, _ in _code_in_order(ctx):
        if cmd.kind != "simple" or not cmd.words:
            continue
        last = cmd.words[-1]
        if not re.fullmatch(r"(?:[^\\]|\\.)*\\[ \t]", last.raw) or "\n" in last.raw or last.line >= len(lines):
            continue
        text, below = lines[last.line - 1], lines[last.line]
        end = last.col - 1 + len(last.raw)
        if text[end:].strip() or not below.strip() or not (below[:1].isspace() or below.lstrip().startswith("-")):
            continue  # something follows on the line, or the next line starts a command of its own
        yield (last.line, f"line {last.line} ends with a backslash and then a blank: the backslash escapes the blank, "
                          f"not the end of the line, so the command ends here (with ' ' as its last argument) and "
                          f"line {last.line + 1} runs as a command of its own; delete the blank after the backslash",
               Fix("delete the blank after the backslash", last.line, last.line, text=text.rstrip()))


def _same_line(line: int) -> int:
    return line


def _option_lines(code: tuple[Any, ...], outer: Any) -> Iterator[Any]:
    """Commands that start with an option: the line before lost its backslash (``outer`` maps a line number
    of ``code`` to the script's)."""
    for i, cmd in enumerate(code):
        name = str(cmd.name)
        if len(name) > 1 and name.startswith("-") and not cmd.assignments:
            prev = code[i - 1] if i > 0 else None
            where = ""
            if prev is not None:
                last = outer(prev.end_line)
                commented = _BACKSLASH_COMMENT.search(prev.text.rstrip("\n").rsplit("\n", 1)[-1])
                where = (f" (on line {last} a comment follows the backslash, so it escapes a space, not the end of "
                         "the line: move the comment off the command)" if commented
                         else f" (line {last} needs a trailing \\)")
            yield (outer(cmd.line),
                   f"this line starts with the option {name}: the previous command ended without a backslash{where}")


#: a backslash, blanks, then a comment: ``--num_processes=4 \ # all GPUs`` (the backslash escapes the blank)
_BACKSLASH_COMMENT = re.compile(r"\\[ \t]+#")


def _inner_script(word: Any) -> tuple[Any, Any] | None:
    """The script of a ``bash -c`` word that spans lines, lexed, and a map from its line numbers to the outer
    script's; None when it is one line or not one quoted string (its lines then match the word's source)."""
    from ..errors import ParseError
    from ..parse.lexer import lex_script
    from ..parse.script import shell_script_text
    raw = word.raw if word is not None else ""
    if "\n" not in raw:
        return None
    if len(raw) > 1 and raw[0] == raw[-1] == "'" and raw.count("'") == 2:
        text: str | None = raw[1:-1]
    else:
        text = shell_script_text(Verbatim(raw), keep_lines=True)
    if text is None:
        return None
    try:
        lexed = lex_script(text)
    except ParseError:
        return None
    return lexed, lambda k: word.line + k - 1



def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _lost_backslash_before_command(code: Any, lines: Any, cut_off: dict[int, Any], outer: Any) -> Iterator[Any]:
    """An indented line right after a command whose lines ended in ``\\`` up to the one before it: the
    backslash of that line was lost (``apptainer exec --nv \\`` / ``  "$IMG"`` / ``  torchrun …``). Also after a
    one-line ``apptainer exec IMAGE`` with no command (``cut_off``: such containers by line), which cannot run on
    its own. ``outer`` maps a line number of ``code`` to the script's."""
    for prev, cmd in zip(code, code[1:]):
        if cmd.kind != "simple" or not cmd.words or prev.joined_by or str(cmd.name).startswith("-"):
            continue  # joined by && or |, or an option line (reported above)
        last = prev.line
        while last <= len(lines) and lines[last - 1].rstrip().endswith("\\"):
            last += 1
        if cmd.line != last + 1 or cmd.line > len(lines) or not (last > prev.line or prev.line in cut_off):
            continue
        if lines[last - 1].split(" #", 1)[0].rstrip().endswith(("&", ";", "|")):
            continue  # the command was ended on purpose (cmd &, cmd;)
        if _indent(lines[cmd.line - 1]) <= _indent(lines[prev.line - 1]):
            continue  # starts a new command at the same depth as the one before
        box = cut_off.get(prev.line)
        why = f"; {box.binary} exec on line {outer(prev.line)} has the image but no command" if box is not None else ""
        yield (outer(cmd.line), f"this line is indented like a continuation of the command above, but line {outer(last)} "
                                f"does not end with a backslash, so {cmd.name} runs as a command of its own{why}; "
                                f"end line {outer(last)} with \\")


@rule("HPC505", "double-dollar", "error",
      summary="$$NAME: the shell's process id followed by text, not the variable",
      why="$$ is the process id, so $$SCRATCH becomes something like 12345SCRATCH: paths point nowhere.",
      fix="Write $NAME (or ${NAME}).",
      catalogue=(25,),
      bad="""#!/bin/bash
mkdir -p $$SCRATCH/output
""",
      good="""#!/bin/bash
mkdir -p "$SCRATCH/output"
""")
def _double_dollar(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        if any(name == "$$" for w in all_words(cmd) for name, _ in expanded_refs(w.raw)):
            m = re.search(r"\$\$\{?([A-Za-z_][A-Za-z0-9_]*)", raw_text(cmd))
            shown = f"$${m.group(1)}" if m else "$$NAME"
            yield cmd.line, f"{shown} is the process id followed by text; write ${shown[2:].lstrip('{')}"


#: what a person writes for the shell to expand: $(…), `…`, ${X:-y} and the other ${X…} operators, ${UPPER} and $NAME
#: (a lower-case ${name} and ${a.b}, ${now:%Y}, ${oc.env:X} are Hydra/OmegaConf interpolations, meant to stay literal)
_SHELL_TEXT = re.compile(r"\$\(|`[A-Za-z_][^`]*`|\$\{[A-Za-z_][A-Za-z0-9_]*(?::[-=+?]|[-=+?%#/^,\[])|\$\{[A-Z_][A-Z0-9_]*\}"
                         r"|\$[A-Za-z_][A-Za-z0-9_]*")
#: programs whose arguments are data to them: text in single quotes reaches them as written
_TAKES_DATA = re.compile(r"(?:python[0-9.]*|torchrun|accelerate|deepspeed|apptainer|singularity|ch-run|srun|mpirun|mpiexec)")
#: the program an argument is for: the innermost of these before it
_RECEIVER = re.compile(r"python[0-9.]*|torchrun|accelerate|deepspeed|mpirun|mpiexec|ch-run|apptainer|singularity")
#: a short-option cluster that takes code as its value (bash -c, bash -lc, python -c): that code is expanded later
_CODE_OPTION = re.compile(r"-[A-Za-z]*c[A-Za-z]*")


def _single_quoted(raw: str) -> list[tuple[int, int]]:
    """Start and end indexes of the '…' pieces of a word's source (not inside "…", not $'…')."""
    out, i, double = [], 0, False
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            double = not double
        elif c == "'" and not double:
            end = raw.find("'", i + 1)
            if end < 0:
                break
            if not raw[i - 1:i] == "$":
                out.append((i, end))
            i = end + 1
            continue
        i += 1
    return out


@rule("HPC514", "shell-text-in-single-quotes", "warning",
      summary="a program's argument holds $NAME, $(…) or ${X:-y} in single quotes, so it receives the text itself",
      why="Single quotes keep everything literal: python train.py --out '$SCRATCH/run' writes into a folder named "
          "$SCRATCH under the working directory, and --data '$(pwd)/data' asks for a folder named $(pwd). The job "
          "runs, with the wrong paths or values. Scripts of srun bash -c '…' and python -c '…' are expanded later on "
          "purpose and are not reported, nor are Hydra/OmegaConf interpolations such as '${now:%Y-%m-%d}'.",
      fix="Use double quotes (\"$SCRATCH/run\"). In a form, a field expands only $NAME and ${NAME}: set anything "
          "else in a set-up line (LR=${LR:-0.1}) and pass $LR.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
python train.py --output-dir '$SCRATCH/run'
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
python train.py --output-dir "$SCRATCH/run"
""")
def _shell_text_in_single_quotes(ctx: Context) -> Iterator[Any]:
    seen: set[int] = set()
    for cmd in (*simple_commands(ctx), *(step.command for step in steps(ctx))):
        if id(cmd) in seen:
            continue
        seen.add(id(cmd))
        words = cmd.words
        if not words or not _TAKES_DATA.fullmatch(str(words[0].value).rsplit("/", 1)[-1]):
            continue
        hits = []
        for prev, word in zip((None, *words), words):
            if "'" not in word.raw or ("$" not in word.raw and "`" not in word.raw):
                continue
            if prev is not None and _CODE_OPTION.fullmatch(str(prev.raw)):
                continue  # bash -c '…', python -c '…': code, expanded when it runs
            if _ch_run_expands_it(words, word):
                continue  # ch-run --set-env='PATH=/opt/bin:$PATH': ch-run expands it, as documented
            for start, end in _single_quoted(word.raw):
                if _SHELL_TEXT.search(word.raw, start + 1, end):
                    hits.append((word, start, end))
        if not hits:
            continue
        word, start, end = hits[0]
        text = word.raw[start + 1:end]
        before = [str(w.value).rsplit("/", 1)[-1] for w in words[:words.index(word)]]
        name = next((b for b in reversed(before) if _RECEIVER.fullmatch(b)), before[0])
        yield (word.line, f"'{text}' is in single quotes, so {name} receives the text {text} itself; use double "
                          f"quotes (\"{text}\") for the shell to expand it", _double_quote_fix(ctx, hits))


def _ch_run_expands_it(words: list[Any], word: Any) -> bool:
    """Whether ``word`` is a ch-run ``--set-env=NAME=…`` (without --env-no-expand) whose every ``$`` starts a
    ':'-separated item that is only a variable name: ch-run itself replaces such an item by the variable's value
    in the container (after a bare --set-env, the image's), which is why Charliecloud's manual single-quotes it."""
    at = words.index(word)
    values = [str(w.value) for w in words]
    runs = [k for k in range(at) if values[k].rsplit("/", 1)[-1] == "ch-run"]
    if not runs:
        return False
    options = values[runs[-1] + 1:]
    end = options.index("--") if "--" in options else len(options)
    if at - runs[-1] - 1 >= end or "--env-no-expand" in options[:end]:
        return False
    text = passed_text(word.raw)
    assignment = text[len("--set-env="):] if text.startswith("--set-env=") else ""
    if "=" not in assignment:
        return False
    items = assignment.split("=", 1)[1].split(":")
    return all(item.count("$") == (_CH_RUN_LOOKUP.fullmatch(item) is not None) for item in items)


#: a --set-env item ch-run replaces by a variable's value: $ and a name, nothing else
_CH_RUN_LOOKUP = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


def _double_quote_fix(ctx: Context, hits: list[tuple[Any, int, int]]) -> Fix | None:
    """The line with the single-quoted pieces in double quotes, when they are on one line and hold nothing that
    double quotes would read differently (a quote or a backslash)."""
    line_no = hits[0][0].line
    line = ctx.parsed.lines[line_no - 1]
    edits = []
    for word, start, end in hits:
        at = word.col - 1
        inner = word.raw[start + 1:end]
        if word.line != line_no or "\n" in word.raw or line[at:at + len(word.raw)] != word.raw or any(c in inner for c in '"\\'):
            return None
        edits.append((at + start, at + end))
    for a, b in reversed(edits):
        line = f'{line[:a]}"{line[a + 1:b]}"{line[b + 1:]}'
    return Fix("put the expansions in double quotes", line_no, line_no, text=line)


_LAUNCH_BLOCKING = re.compile(r"(^|[^A-Za-z0-9_])CUDA_LAUNCH_BLOCKING=[\"']?1\b")


#: dashes a word processor or a slide puts where a hyphen was typed (en dash, em dash, minus sign)
#: quotes a word processor puts where straight quotes were typed
_TYPOGRAPHIC_QUOTES = {"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"}


_TYPOGRAPHIC = re.compile(f"[{TYPED_DASHES}{''.join(_TYPOGRAPHIC_QUOTES)}]")
_TYPOGRAPHIC_DASH = re.compile(f"[{TYPED_DASHES}]")


def _typographic_option(raw: str) -> bool:
    """Whether a word is an option typed with a typographic dash: at its start (``–-time``) or in its name
    (``--cpus−per-task``); the value after ``=`` is the program's business."""
    name = raw.split("=", 1)[0]
    return bool(name) and (name[0] in TYPED_DASHES or (name[0] == "-" and bool(_TYPOGRAPHIC_DASH.search(name))))


def _straight(raw: str) -> str:
    return "".join(_TYPOGRAPHIC_QUOTES.get(c, c) for c in raw)


@rule("HPC515", "typographic-dash-or-quote", "error",
      summary="an option starts with an en or em dash, or a word is wrapped in curly quotes (text copied from slides)",
      why="Slides, PDFs and word processors turn -- into an en dash (–) and straight quotes into curly ones (“ ”). "
          "Neither means anything to bash, sbatch or the programs: –-nodes=2 is an argument, not an option (sbatch "
          "stops, apptainer takes it for the image), #!/bin/bash –l runs no shell at all, and “$SCRATCH/data” "
          "is a path with quote marks in its name.",
      fix="Type the dashes and quotes again on the keyboard: --nodes=2, -l, \"$SCRATCH/data\".",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
srun \u2013-ntasks=1 apptainer exec --nv pytorch_2.3.sif python train.py --data \u201c$SCRATCH/data\u201d
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
srun --ntasks=1 apptainer exec --nv pytorch_2.3.sif python train.py --data "$SCRATCH/data"
""")
def _typographic(ctx: Context) -> Iterator[Any]:
    from ..errors import ParseError
    from ..parse.lexer import directive_words
    if not _TYPOGRAPHIC.search(ctx.parsed.source):
        return  # most scripts: nothing to look at word by word
    lines = ctx.parsed.lines
    bad: dict[int, list[tuple[int, str, str]]] = {}  # line -> (column, as written, as typed on a keyboard)
    if lines and lines[0].startswith("#!"):
        for m in re.finditer(rf"(?<=\s)[{TYPED_DASHES}]\S*", lines[0]):
            bad.setdefault(1, []).append((m.start() + 1, m.group(0), keyboard_option(m.group(0))))
    words: list[Any] = []
    for cmd in ctx.parsed.lexed.commands:
        if cmd.kind == "directive":
            try:
                words += directive_words(cmd)
            except ParseError:
                continue
        elif cmd.is_code:
            words += all_words(cmd)
    for w in words:
        raw = str(w.raw)
        if _typographic_option(raw):
            bad.setdefault(w.line, []).append((w.col, raw.split("=", 1)[0], keyboard_option(raw.split("=", 1)[0])))
        elif raw[:1] in _TYPOGRAPHIC_QUOTES or raw[-1:] in _TYPOGRAPHIC_QUOTES:
            bad.setdefault(w.line, []).append((w.col, raw, _straight(raw)))
    for line_no, items in sorted(bad.items()):
        written, typed = items[0][1], items[0][2]
        what = ("starts with a typographic dash, not a hyphen, so it is not an option" if written[0] in TYPED_DASHES
                else "has a typographic dash in its name, so no program knows the option" if written[0] == "-"
                else "is wrapped in typographic quotes, which the shell keeps as part of the value")
        text = lines[line_no - 1]
        for col, old, new in sorted(items, reverse=True):
            if text[col - 1:col - 1 + len(old)] != old:
                text = ""
                break
            text = text[:col - 1] + new + text[col - 1 + len(old):]
        fix = Fix("type the dashes and quotes on the keyboard", line_no, line_no, text=text) if text else None
        more = f" (and {len(items) - 1} more on this line)" if len(items) > 1 else ""
        yield line_no, f"{written} {what}; write {typed}{more} (copied from slides or a document?)", fix


@rule("HPC506", "cuda-launch-blocking", "warning",
      summary="CUDA_LAUNCH_BLOCKING=1 left on in a job",
      why="It makes every CUDA kernel launch wait for the previous one: a debugging switch that slows training "
          "several times over.",
      fix="Remove it (set it only while debugging a CUDA error).",
      catalogue=(29,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
export CUDA_LAUNCH_BLOCKING=1
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
python train.py
""")
def _launch_blocking(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        names = [n for n, w in cmd.assignments if n.endswith("CUDA_LAUNCH_BLOCKING") and str(w.value) == "1"]
        if names or _LAUNCH_BLOCKING.search(raw_text(cmd)):
            yield cmd.line, "CUDA_LAUNCH_BLOCKING=1 serialises every kernel launch and slows training; remove it"


#: what makes ``conda activate`` work in a script: conda's shell hook or conda.sh, an activate script, a shell
#: start-up file that runs conda init's lines
_CONDA_SETUP = re.compile(r"\b(?:conda|mamba|micromamba)(?:\.exe)?\s+shell\b|conda\.sh\b|/activate\b|\.bashrc\b"
                          r"|\.bash_profile\b|\.profile\b")
#: modules that set conda up when loaded (site Anaconda, Miniforge … modules)
_CONDA_MODULE = re.compile(r"(?i)conda|mamba|miniforge|python")


@rule("HPC512", "conda-activate-without-setup", "info",
      summary="conda activate in a batch script that never sets conda up",
      why="conda activate is a shell function that conda init adds to interactive shells; a batch script is not "
          "one, so unless a module loaded before sbatch exported that function (some site modules do), conda stops "
          "with 'Run conda init before conda activate' and the job runs with the wrong Python (or stops under set -e).",
      fix="Set conda up first: eval \"$(conda shell.bash hook)\" (or source the conda.sh of your installation, or "
          "load the site's conda module), then conda activate ENV.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
conda activate myenv
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
eval "$(conda shell.bash hook)"
conda activate myenv
python train.py
""")
def _conda_activate(ctx: Context) -> Iterator[Any]:
    shebang = ctx.parsed.source.split("\n", 1)[0]
    if shebang.startswith("#!") and re.search(r"\s-\w*[li]|--login", shebang):
        return  # a login or interactive shell reads the start-up files where conda init wrote its lines
    if any(_CONDA_MODULE.search(name) for name, _ in ctx.parsed.modules):
        return
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        if words[:2] != ["conda", "activate"]:
            if _CONDA_SETUP.search(cmd.text):
                return
            continue
        yield (cmd.line, "conda activate needs conda's shell function, which a batch script does not define itself: "
                         "unless your environment exports it, conda stops with 'Run conda init before conda activate'; "
                         "add eval \"$(conda shell.bash hook)\" before it")
        return


#: the variables that name the GPUs a program may use: Slurm sets CUDA_VISIBLE_DEVICES (and, on AMD GPUs,
#: ROCR_VISIBLE_DEVICES) to the allocated ones; HIP_VISIBLE_DEVICES narrows ROCm's further
VISIBLE_DEVICES_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


@rule("HPC513", "fixed-visible-gpus", "warning",
      summary="CUDA_VISIBLE_DEVICES (or ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES) is set to a fixed list that is "
              "not the job's GPUs",
      why="Slurm sets CUDA_VISIBLE_DEVICES (on AMD GPUs also ROCR_VISIBLE_DEVICES) to the GPUs it allocated. A fixed "
          "list of another size hides GPUs the job pays for (0 of 4) or names GPUs the job does not have, which then "
          "fail to initialise; HIP_VISIBLE_DEVICES narrows what ROCm shows in the same way. A list of the right size "
          "fails too when it names the node's GPUs by their numbers on the node (4,5,6,7): device cgroups show the "
          "job its own GPUs numbered from 0. And on a node shared with other jobs, where a site does not confine "
          "jobs to their GPUs, 0,1 may be another job's (reported when the profile says the nodes have more GPUs).",
      fix="Remove the line and let Slurm's value stand (or request as many GPUs as the program uses).",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:4
export CUDA_VISIBLE_DEVICES=0
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:4
python train.py
""")
def _fixed_visible_gpus(ctx: Context) -> Iterator[Any]:
    gpus = ctx.job.gpus_on_each_node
    if not isinstance(gpus, int) or not gpus:
        return
    for name in VISIBLE_DEVICES_VARS:
        exports = [v for v in ctx.parsed.variables if v.name == name and v.exported]
        if len(exports) > 1:
            continue  # set again and again: one GPU per background run (export CUDA_VISIBLE_DEVICES=1; python … &)
        for var in exports:
            value = str(var.value).strip("'\"")
            if not re.fullmatch(r"\d+(?:,\d+)*", value):
                continue
            ids = [int(k) for k in value.split(",")]
            listed = len(ids)
            set_by = "Slurm already sets it to the allocated GPUs" if name != "HIP_VISIBLE_DEVICES" else \
                "Slurm hands the program the allocated GPUs without it"
            if listed != gpus:
                yield (var.line, f"{name}={value} names {listed} GPU{'s' if listed > 1 else ''} but the job "
                                 f"requests {gpus} per node: {set_by}; remove the line")
            elif max(ids) >= gpus:
                yield (var.line, f"{name}={value} names GPU {max(ids)}, but where Slurm confines the job to its "
                                 f"GPUs (device cgroups) they are numbered 0-{gpus - 1}, so the program finds no such "
                                 f"GPU; {set_by}: remove the line")
            elif not ctx.job.exclusive and _node_gpus(ctx) > gpus:
                yield (var.line, f"{name}={value} names GPUs by number, but the job has {gpus} of the node's "
                                 f"{_node_gpus(ctx)}: where Slurm does not confine it (no device cgroups) these may be "
                                 f"another job's GPUs; {set_by}: remove the line")


def _node_gpus(ctx: Context) -> int:
    """The GPUs of each node of the partition the job runs on, by the profile (0 when unknown)."""
    part = ctx.profile.entry_for(ctx.job) if ctx.profile is not None else None
    return part.gpus_per_node if part is not None and isinstance(part.gpus_per_node, int) else 0


#: pip's --no-index (local wheels only: --find-links DIR or the site's wheelhouse), up to the command's end
_NO_INDEX = re.compile(r"^[^;&|\n]*?\s--no-index\b")
_INSTALL = re.compile(r"(^|[\s'\"(;&|])(pip3?|python3?\s+-m\s+pip|conda|mamba|micromamba)\s+install\b")


_EXPORT_ENV_SET = re.compile(r"^\s*(?:unset\s+(?:-v\s+)?SLURM_EXPORT_ENV\b|(?:export\s+)?SLURM_EXPORT_ENV=)", re.MULTILINE)


@rule("HPC516", "export-none-reaches-srun", "warning",
      summary="#SBATCH --export=NONE also empties the environment of every srun step",
      why="sbatch hands --export=NONE on to the job as SLURM_EXPORT_ENV=NONE, and srun reads that variable as its own "
          "--export. So the steps start without what the script set up before them: the module loads (apptainer: "
          "command not found), exported variables (APPTAINER_CACHEDIR, MASTER_PORT) and the activated environment. "
          "Sites that recommend --export=NONE (to keep the login shell's environment out) pair it with "
          "unset SLURM_EXPORT_ENV.",
      fix="Add unset SLURM_EXPORT_ENV after the #SBATCH lines (or give srun --export=ALL).",
      bad="""#!/bin/bash
#SBATCH --export=NONE
#SBATCH --gres=gpu:1
module load apptainer
srun apptainer exec --nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --export=NONE
#SBATCH --gres=gpu:1
unset SLURM_EXPORT_ENV
module load apptainer
srun apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _export_none_reaches_srun(ctx: Context) -> Iterator[Any]:
    export = next((d for d in ctx.parsed.directives if d.flag == "--export" and d.applied and not d.component), None)
    if export is None or export.value.split(",", 1)[0].upper() != "NONE":
        return
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is None or any(str(e).startswith("--export") for e in srun.extra):
            continue
        if _EXPORT_ENV_SET.search("\n".join(ctx.parsed.lines[:step.line - 1])):
            return
        lines = ctx.parsed.lines
        first = lines[step.line - 1]
        indent = first[:len(first) - len(first.lstrip())]
        fix = Fix("unset SLURM_EXPORT_ENV before the step", step.line, step.line,
                  text=f"{indent}unset SLURM_EXPORT_ENV  # --export=NONE is for the batch shell, not the steps\n{first}")
        yield (step.line, f"--export=NONE (line {export.line}) reaches this srun as SLURM_EXPORT_ENV=NONE: the step "
                          "starts without the module loads and exports above it; add unset SLURM_EXPORT_ENV after "
                          "the #SBATCH lines", fix)
        return


@rule("HPC507", "install-at-job-start", "warning",
      summary="packages are installed with pip/conda every time the job runs",
      why="Installing at job start downloads and resolves packages on a compute node on every run: slow, fragile "
          "when the index is unreachable, and the versions drift between runs. (pip install --no-index from a local "
          "wheelhouse, e.g. into a virtual environment in $SLURM_TMPDIR as some sites document, downloads nothing "
          "and is not reported.)",
      fix="Install once into the image (a %post section or RUN line) or into an environment prepared beforehand, "
          "with pinned versions.",
      catalogue=(31,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
pip install --user wandb transformers
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
python train.py
""")
def _install(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        if cmd.name in _PRINTERS:
            continue
        m = _INSTALL.search(raw_text(cmd))
        if m and m.group(2).startswith(("pip", "python")) and _NO_INDEX.search(raw_text(cmd)[m.end():]):
            continue  # from local wheels only (--no-index): nothing is downloaded
        if m:
            yield cmd.line, f"{m.group(2).split()[0]} install runs on every job; install once into the image or a prepared environment"


#: ``${NAME[$SLURM_ARRAY_TASK_ID]}``, optionally shifted (``${NAME[$SLURM_ARRAY_TASK_ID-1]}``)
_BY_TASK_ID = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\[\s*\$?\{?SLURM_ARRAY_TASK_ID\}?\s*(?:([-+])\s*(\d+))?\s*\]\}")
_ARRAY_LITERAL = re.compile(r"\((.*)\)", re.S)


#: a write to a shell variable: ``NAME=``, ``NAME+=``, ``NAME[i]=``, ``NAME[i]+=`` (group 2: the index, group 3: ``+``)
_VAR_WRITE = re.compile(r"(?:^|(?<=[\s;&|(){}!]))([A-Za-z_][A-Za-z0-9_]*)(\[[^\]\n]*\])?(\+?)=")
#: commands that fill an array from their input or arguments (readarray/mapfile NAME, read -a NAME, unset NAME)
_ARRAY_FILLERS = re.compile(r"(?:^|[\s;&|(){}!])(readarray|mapfile|read|unset)\b([^;&|\n]*)")
#: ``{1..9}``, ``{01..10..2}``, ``{a..e}``: a bash sequence expression
_BRACE_SEQ = re.compile(r"(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?|([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d+))?")


def _array_writes(ctx: Context) -> set[str]:
    """Names the script changes other than by a plain top-level ``NAME=(…)``: appended to (``+=``),
    assigned by index (``NAME[i]=``), filled by readarray/mapfile/read -a, unset, or assigned inside a
    loop, an if or a function (their length is then known only when the job runs)."""
    def make() -> set[str]:
        out: set[str] = set()
        for cmd in ctx.parsed.lexed.code:
            text = cmd.text
            for m in _VAR_WRITE.finditer(text):
                if cmd.kind != "simple" or m.group(2) or m.group(3):
                    out.add(m.group(1))
            for m in _ARRAY_FILLERS.finditer(text):
                words = [w for w in m.group(2).split() if not w.startswith(("-", "<", ">"))]
                if m.group(1) == "read":
                    opts = re.findall(r"(?:^|\s)-([A-Za-z]*a)\s*([A-Za-z_][A-Za-z0-9_]*)", m.group(2))
                    out.update(name for _, name in opts)
                else:
                    out.update(re.sub(r"\[.*", "", w.strip("'\"")) for w in words)
        return out
    return cached(ctx, "array_writes", make)


def _brace_count(word: str) -> int | None:
    """How many words bash's brace expansion makes of an unquoted ``word`` (``lr{1,2}`` → 2, ``{0..9}`` → 10,
    ``{a,b}{1..3}`` → 6); None when it cannot tell."""
    depth, start = 0, -1
    for i, c in enumerate(word):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth:
                continue
            inner, rest = word[start + 1:i], word[i + 1:]
            parts, level, last = [], 0, 0
            for j, d in enumerate(inner):
                level += (d == "{") - (d == "}")
                if d == "," and level == 0:
                    parts.append(inner[last:j])
                    last = j + 1
            parts.append(inner[last:])
            seq = _BRACE_SEQ.fullmatch(inner)
            if len(parts) > 1:
                counts = [_brace_count(p) for p in parts]
                if any(n is None for n in counts):
                    return None
                here = sum(counts)  # type: ignore[arg-type]
            elif seq:
                lo, hi, step = (int(seq.group(1)), int(seq.group(2)), seq.group(3)) if seq.group(1) is not None \
                    else (ord(seq.group(4)), ord(seq.group(5)), seq.group(6))
                step_n = abs(int(step)) if step else 1
                here = abs(hi - lo) // (step_n or 1) + 1
            elif "{" in inner:
                return None  # {a{1,2}}: the outer braces stay, the inner expand; not worth guessing
            else:
                continue  # {x} or {}: bash keeps it as written, try braces further on
            after = _brace_count(rest)
            return None if after is None else here * after
    return None if depth else 1


def _literal_arrays(ctx: Context) -> dict[str, tuple[int, int]]:
    """Shell arrays written out as literals and never changed afterwards: name → (number of values, line).

    Brace expressions count as bash expands them (``({0..9})`` is ten values). An array that is appended
    to, assigned by index, filled by readarray, or assigned in a loop is left out: its length is known only
    when the job runs.
    """
    import shlex
    out: dict[str, tuple[int, int]] = {}
    changed = _array_writes(ctx)
    for v in ctx.parsed.variables:
        m = _ARRAY_LITERAL.fullmatch(str(v.value).strip())
        if v.name in changed or not m or "$" in m.group(1) or "`" in m.group(1) \
                or any(c in m.group(1) for c in "*?["):
            out.pop(v.name, None)  # computed (from a file, a glob, a command): its length is unknown
            continue
        body = m.group(1)
        try:
            words = shlex.split(body, comments=True)
        except ValueError:
            out.pop(v.name, None)
            continue
        if "{" in body:
            if any(q in body for q in "'\"\\"):
                out.pop(v.name, None)  # quoted braces stay as written, unquoted ones expand: not worth guessing
                continue
            counts = [_brace_count(w) for w in words]
            if any(n is None for n in counts):
                out.pop(v.name, None)
                continue
            out[v.name] = (sum(counts), v.line)  # type: ignore[arg-type]
            continue
        out[v.name] = (len(words), v.line)
    return out


@rule("HPC508", "array-task-without-value", "error",
      summary="job-array tasks index past the end of the list they take their value from",
      why="Bash arrays count from 0. With --array=1-3 over a list of three values, task 3 reads past the end and "
          "gets an empty value (the program runs with a missing argument or its default), and the first value "
          "is never used. Line numbers count from 1: with --array=0-9, task 0 asks sed -n \"${SLURM_ARRAY_TASK_ID}p\" "
          "(or awk NR==…, head -n … | tail -1) for line 0 and gets nothing.",
      fix="Make the array indexes match the list: --array=0-(N-1) for N values of a bash array, --array=1-N for N "
          "lines of a file (or shift the index in the script).",
      bad="""#!/bin/bash
#SBATCH --array=1-3
LRS=(0.1 0.01 0.001)
python train.py --lr "${LRS[$SLURM_ARRAY_TASK_ID]}"
""",
      good="""#!/bin/bash
#SBATCH --array=0-2
LRS=(0.1 0.01 0.001)
python train.py --lr "${LRS[$SLURM_ARRAY_TASK_ID]}"
""")
def _array_past_end(ctx: Context) -> Iterator[Any]:
    spec = ctx.job.array
    ids = array_task_ids(spec) if isinstance(spec, str) and spec else None
    if not ids:
        return
    arrays = _literal_arrays(ctx)
    for number, line in enumerate(ctx.parsed.lines, start=1):
        if line.lstrip().startswith("#"):
            continue
        for m in _BY_TASK_ID.finditer(line):
            name, sign, shift = m.group(1), m.group(2), int(m.group(3) or 0)
            if name not in arrays or arrays[name][1] > number:
                continue
            n = arrays[name][0]
            offset = -shift if sign == "-" else shift
            missing = [i for i in ids if not 0 <= i + offset < n]
            if not missing:
                continue
            if n == 0:
                yield number, f"--array={spec}: {name} has no values, so every task gets an empty value"
                continue
            past = [i for i in missing if i + offset >= n]
            before = [i for i in missing if i + offset < 0]
            said = []
            if past:
                said.append(f"task{'s' if len(past) > 1 else ''} {_shown(past)} index past {name}, which has "
                            f"{n} value{'s' if n != 1 else ''} (indexes 0-{n - 1}), and get{'' if len(past) > 1 else 's'} "
                            "an empty value")
            if before:
                said.append(f"task{'s' if len(before) > 1 else ''} {_shown(before)} read{'' if len(before) > 1 else 's'} "
                            f"{name}[{before[0] + offset}], a negative index that bash counts from the end of the list")
            # the task ids that reach a value: never below 0, which sbatch would refuse
            lo, hi = max(0, -offset), n - 1 - offset
            throttle = spec[spec.index("%"):] if "%" in spec else ""  # keep the throttle
            advice = f"use --array={lo}-{hi}{throttle}" if hi >= lo else f"change the index shift so it stays within 0-{n - 1}"
            yield number, f"--array={spec}: {'; '.join(said)}; {advice}"
    if 0 in ids:
        yield from _line_zero(ctx, spec)


def _task_id_names(ctx: Context) -> set[str]:
    """SLURM_ARRAY_TASK_ID and the script's variables that are only a copy of it (ID=$SLURM_ARRAY_TASK_ID)."""
    out = {"SLURM_ARRAY_TASK_ID"}
    for v in ctx.parsed.variables:
        m = re.fullmatch(r"[\"']?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?[\"']?", str(v.value).strip())
        if m and m.group(1) in out:
            out.add(v.name)
    return out


def _line_lookups(names: set[str]) -> list[tuple[str, re.Pattern[str]]]:
    """Commands that take line number $ID of a file, counting from 1: (the command, its pattern)."""
    ref = r"\$(?:\{(?:" + "|".join(map(re.escape, sorted(names))) + r")\}|(?:" + \
        "|".join(map(re.escape, sorted(names))) + r")\b)"
    return [
        # sed -n "${ID}p", sed -n ${ID}p, sed "${ID}q;d", sed -n "${ID}{p;q}"
        ("sed", re.compile(r"(?<![\w-])sed\b[^|;&\n]*?[\s'\"]" + r"[\"']?" + ref + r"[\"']?\s*[pqd{]")),
        # awk "NR==$ID", awk 'NR=='$ID, awk "NR == ${ID} {print}"; not awk "NR==$ID+1", which adds the 1
        ("awk", re.compile(r"(?<![\w-])awk\b[^|;&\n]*?NR\s*==\s*['\"]?\s*" + ref + r"(?!['\"]?\s*\+)")),
        # head -n $ID file | tail -1 (or tail -n 1)
        ("head", re.compile(r"(?<![\w-])head\s+(?:-n\s*|-)[\"']?" + ref + r"[\"']?[^|;&\n]*\|\s*tail\s+(?:-n\s*)?-?1\b")),
    ]


_AWK_VAR = re.compile(r"(?<![\w-])awk\b[^|;&\n]*?-v\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)=['\"]?(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)")


def _line_zero(ctx: Context, spec: str) -> Iterator[Any]:
    """HPC508 for a 0-based array whose task id is used as a line number (sed, awk, head | tail count from 1)."""
    names = _task_id_names(ctx)
    lookups = _line_lookups(names)
    m = re.fullmatch(r"0-(\d+)((?::\d+)?)((?:%\d+)?)", spec)
    advice = (f"use --array=1-{int(m.group(1)) + 1}{m.group(2)}{m.group(3)}" if m and not m.group(2)
              else "number the tasks from 1, or look up line $((SLURM_ARRAY_TASK_ID + 1))")
    for number, line in enumerate(ctx.parsed.lines, start=1):
        if line.lstrip().startswith("#") or number < ctx.parsed.first_command:
            continue
        what = next((name for name, pattern in lookups if pattern.search(line)), None)
        if what is None:
            for am in _AWK_VAR.finditer(line):
                var = am.group(2).strip("${}")
                if var in names and re.search(r"NR\s*==\s*" + re.escape(am.group(1)) + r"\b(?!\s*\+)",
                                              line[am.end():]):
                    what = "awk"
                    break
        if what is None:
            continue
        yield (number, f"--array={spec} starts at task 0, but {what} counts lines from 1: task 0 asks for line 0 and "
                       f"gets nothing (sed even stops with 'invalid usage of line address 0'); {advice}")


def _shown(ids: list[int]) -> str:
    """The first few task ids of a list, for a message."""
    return ", ".join(map(str, ids[:4])) + (", …" if len(ids) > 4 else "")


_SUBMIT_DIR = re.compile(r"^\$(?:\{SLURM_SUBMIT_DIR\}|SLURM_SUBMIT_DIR\b)/?")


def _same_dir(path: str) -> str:
    """A directory name as the job's working directory sees it: ``./logs/``, ``$SLURM_SUBMIT_DIR/logs`` → ``logs``."""
    path = _SUBMIT_DIR.sub("", path.strip().strip("'\""))
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/") or ("/" if path.startswith("/") else "")


@rule("HPC509", "log-directory-created-by-the-job", "error",
      summary="the script creates the directory its --output/--error log goes to, which is too late",
      why="Slurm opens the job's log before the first line of the script runs, and it does not create a missing "
          "directory: the job fails at launch (JobLaunchFailure, exit code 0:53 on Slurm 22.05), leaves no log, "
          "and the script's mkdir never runs. It only works once the directory already exists.",
      fix="Create the directory before submitting (mkdir -p logs && sbatch job.sh; hpcwidgets submit does it "
          "for you) and drop the mkdir from the script, or write the log into the working directory itself "
          "(--output=%x-%j.out).",
      bad="""#!/bin/bash
#SBATCH --output=logs/%x-%j.out
mkdir -p logs
python train.py
""",
      good="""#!/bin/bash
#SBATCH --output=logs/%x-%j.out
python train.py
""")
def _log_dir_made_by_job(ctx: Context) -> Iterator[Any]:
    import posixpath
    logs: dict[str, tuple[str, str]] = {}  # directory -> (field, flag)
    for name, flag in (("output", "--output"), ("error", "--error")):
        value = getattr(ctx.job, name, "")
        folder = _same_dir(posixpath.dirname(value)) if isinstance(value, str) and value else ""
        if folder and folder not in logs and "%" not in folder and "$" not in folder:
            logs[folder] = (name, flag)
    if not logs:
        return
    moved = False  # after a cd, a relative mkdir makes another folder than the log's
    for cmd in ctx.parsed.lexed.code:
        words = [str(w) for w in cmd.argv]
        if words and words[0] in ("cd", "pushd"):
            moved = True
        if not words or posixpath.basename(words[0]) != "mkdir":
            continue
        parents = any(w.startswith("-") and not w.startswith("--") and "p" in w or w == "--parents" for w in words[1:])
        made = [_same_dir(ctx.parsed.resolve(w, cmd.line)) for w in words[1:] if not w.startswith("-")]
        for folder, (name, flag) in logs.items():
            if moved and not folder.startswith("/"):
                continue
            if any(m == folder or (parents and m.startswith(folder + "/")) for m in made):
                yield (ctx.parsed.directive_line(name, cmd.line),
                       f"{flag} writes into {folder}/, which this script creates on line {cmd.line}: Slurm opens the "
                       f"log before the script runs, so when {folder}/ is missing the job fails at launch without a "
                       f"log; create it before submitting (mkdir -p {folder}) and drop the mkdir here")


@rule("HPC510", "bad-module-name", "error",
      summary="module load names something that cannot be a module",
      why="Module names are NAME or NAME/VERSION (letters, digits and _ . + - @). A name written another way "
          "(cuda=12.1, a space inside quotes) matches no module: module load fails, and the job goes on without "
          "the software it needs. Names held in the script's own variables are checked as they are set; names "
          "known only when the job runs are not checked.",
      fix="Write the module as module avail / module spider shows it, e.g. module load cuda/12.1.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
module load cuda=12.1
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
module load cuda/12.1
python train.py
""")
def _bad_module(ctx: Context) -> Iterator[Any]:
    for name, line in ctx.parsed.modules:
        names = [name]
        via = ""
        if "$" in name or "`" in name:
            value = ctx.parsed.resolve(name, line)
            if "$" in value or "`" in value:
                continue  # known only when the job runs
            names, via = value.split(), f" {name}"  # the script sets it: check what it holds
        for n in names:
            for p in SlurmJob(modules=(n,)).problems():
                if p.field.split(".", 1)[0] == "modules":
                    yield line, f"module load{via}: {p.message}"


#: signal numbers a --signal or trap may name, by their name without SIG
_SIGNAL_NUMBERS = {"1": "HUP", "2": "INT", "3": "QUIT", "10": "USR1", "12": "USR2", "15": "TERM"}
#: programs that run a job's long work: the batch shell waits for them in the foreground
_LONG_RUNNERS = ("srun", "mpirun", "mpiexec", "apptainer", "singularity", "ch-run", "torchrun", "accelerate",
                 "deepspeed")


def _signal_name(text: str) -> str:
    name = text.strip().upper()
    name = name[3:] if name.startswith("SIG") else name
    return _SIGNAL_NUMBERS.get(name, name)


def _batch_signal(ctx: Context, *, batch: bool = True) -> tuple[Any, str] | None:
    """The job's ``--signal`` directive and its signal's name when it goes to the batch shell (``B:SIG@TIME``), or
    with ``batch=False`` when it goes to the job's steps only (no ``B:``); else None."""
    found = None
    for d in ctx.parsed.directives:
        if d.applied and not getattr(d, "component", 0) and d.flag == "--signal":
            m = re.fullmatch(r"(?:([RB]{1,2}):)?([A-Za-z0-9]+)(?:@\d+)?", str(d.value).strip())
            found = (d, _signal_name(m.group(2))) if m and ("B" in (m.group(1) or "")) == batch else None
    return found


@rule("HPC511", "signal-trap-foreground-step", "warning",
      summary="a trap waits for a --signal=B:… warning while the job's step runs in the foreground",
      why="--signal=B:USR1@60 sends the signal to the batch shell only, and bash runs a trap only once the "
          "foreground command it is waiting for has exited. With the step in the foreground (srun python train.py), "
          "the handler (checkpoint, requeue, copy results back) runs only after the step ends, which is when the "
          "time limit kills the whole job: the warning is lost. The wait builtin, in contrast, returns as soon as a "
          "trapped signal arrives.",
      fix="Start the step in the background and wait for it: srun python train.py & wait (the handler then runs as "
          "soon as the signal arrives). A handler that only tells the program to checkpoint (scancel --signal=USR1, "
          "kill, a STOP file) must be followed by waiting again, as wait returns when the trap runs: HPC529.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py &
wait
""")
def _trap_behind_foreground(ctx: Context) -> Iterator[Any]:
    found = _batch_signal(ctx)
    if found is None:
        return
    directive, signal = found
    code = ctx.parsed.lexed.code
    trap = None
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        if not words or words[0] != "trap" or len(words) < 3 or words[1] in ("-", "") or words[1].startswith("-"):
            continue
        if any(_signal_name(w) == signal for w in words[2:]):
            trap = cmd
    if trap is None:
        return
    for i, cmd in enumerate(code):
        if cmd.line <= trap.line or cmd.kind != "simple" or not cmd.words:
            continue
        words = [str(v) for v in cmd.argv]
        launch = launch_words(words) or words
        name = launch[0].rsplit("/", 1)[-1] if launch else ""
        if name not in _LONG_RUNNERS and not _PYTHON.fullmatch(name):
            continue
        j = i
        while j < len(code) - 1 and code[j].joined_by in ("|", "|&"):
            j += 1  # a pipeline runs in the background only when its last command is followed by &
        if code[j].joined_by == "&":
            continue
        sig = directive.value
        yield (cmd.line, f"#SBATCH --signal={sig} (line {directive.line}) sends {signal} to the batch shell, but {name} "
                         f"runs in the foreground: bash runs the trap of line {trap.line} only after {name} exits, so "
                         f"the handler never runs before the time limit kills the job; start it in the background "
                         f"and wait for it ({name} … & then wait)")
        return


@rule("HPC517", "signal-misses-the-batch-shell", "warning",
      summary="--signal without B: while the batch shell traps the signal, or with no job step to receive it",
      why="Without B:, Slurm sends the --signal warning to the job's steps (what srun started) and not to the batch "
          "shell: a trap in the script never runs, so the checkpoint or requeue it was written for never happens; and "
          "a job whose work runs in the batch shell (python train.py without srun) has no step, so nothing receives "
          "the warning at all.",
      fix="Send it to the batch shell with #SBATCH --signal=B:USR1@120 when the script traps it (and start the step "
          "in the background, then wait: HPC511); or run the program as a step (srun python train.py) so it gets "
          "the signal itself (not behind torchrun, accelerate or deepspeed, whose agent dies of USR1: HPC123).",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=USR1@120
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py &
wait
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
trap 'scontrol requeue "$SLURM_JOB_ID"' USR1
srun python train.py &
wait
""")
def _signal_misses_batch_shell(ctx: Context) -> Iterator[Any]:
    found = _batch_signal(ctx, batch=False)
    if found is None:
        return
    directive, signal = found
    commands = list(simple_commands(ctx))
    trap = next((cmd for cmd in commands for words in [[str(v) for v in cmd.argv]]
                 if len(words) >= 3 and words[0] == "trap" and not words[1].startswith("-")
                 and any(_signal_name(w) == signal for w in words[2:])), None)
    sig = str(directive.value).strip()
    if trap is not None:
        lines = ctx.parsed.lines
        text = lines[directive.line - 1]
        fixed = re.sub(r"(--signal[= ])(?:R:)?", lambda m: m.group(1) + ("RB:" if "R:" in m.group(0) else "B:"),
                       text, count=1)
        fix = Fix("send the signal to the batch shell (B:)", directive.line, directive.line, text=fixed) \
            if fixed != text else None
        prefix = "RB:" if sig.startswith("R:") else "B:"
        yield (directive.line, f"--signal={sig} goes to the job's steps, not to the batch shell, so the trap of line "
                               f"{trap.line} never runs; write --signal={prefix}{sig.split(':')[-1]}", fix)
        return
    launches = [cmd for cmd in commands for words in [[str(v) for v in cmd.argv]]
                if words and words[0].rsplit("/", 1)[-1] in ("srun", *MPI_LAUNCHERS)]
    if not launches:
        yield (directive.line, f"--signal={sig} goes to the job's steps, and this job starts none (its commands run in "
                               "the batch shell), so nothing receives the warning; run the program with srun, or use "
                               "B: and forward the signal from a trap")


# --------------------------------------------------------------------------------------------
# secrets and Jupyter


# --------------------------------------------------------------------------------------------
# steps side by side (srun … &)

#: the words that start a loop: a step started in the background there starts again on every pass
_LOOP_WORDS = ("for", "while", "until", "select")
#: commands that end at once: after the last background step they give the steps no time to run
_QUICK_COMMANDS = frozenset({"echo", "printf", "true", ":", "date", "hostname", "cd", "export", "set", "unset", "mkdir",
                             "cp", "mv", "rm", "ln", "touch", "ls", "env", "module", "ml", "source", ".", "pwd", "exit",
                             "sync"})
_FUNCTION_DEF = re.compile(r"\s*(?:function\s+([^\s(]+)|([A-Za-z_][\w.:-]*)\s*\(\s*\))")
#: the options of GNU parallel and xargs that say how many commands run at once (xargs runs one without them)
_SLOT_OPTIONS = {"parallel": ("-j", "--jobs", "-P", "--max-procs"), "xargs": ("-P", "--max-procs")}
#: GNU parallel's input separators: the words after them are its input, not the command
_PARALLEL_INPUTS = (":::", "::::", ":::+", "::::+")
#: before Slurm 20.11 steps shared the job's CPUs unless they asked for --exclusive ones
_WHOLE_STEPS_SINCE = (20, 11)
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


def _is_wait(cmd: Any) -> bool:
    return cmd.kind == "simple" and bool(cmd.words) and str(cmd.words[0].value) == "wait"


@dataclasses.dataclass(frozen=True)
class BackgroundStep:
    """An srun step started beside the batch shell: in the background (``srun … &``, also at the end of a pipeline;
    a function that runs srun, or a ``( … )`` / ``{ …; }`` group holding it, run with ``&``), or by GNU parallel or
    ``xargs``, which start the srun of their command once for each input."""

    step: Any
    index: int          # where the command that starts it is in :func:`_code_in_order`
    in_loop: bool       # started again on every pass of a loop
    side_by_side: bool  # another background step (or its own next pass) starts before a wait
    start: Any          # that command: the srun line, the function call, the group, the parallel or xargs line
    how: str            # that command as messages name it: "srun … &", "run_one … &", "( … ) &", "xargs -P 8"
    several: bool       # parallel or xargs -P runs it several times at once
    detached: bool      # the batch shell goes on at once (&); parallel and xargs in the foreground wait for theirs


def background_steps(ctx: Context) -> tuple[BackgroundStep, ...]:
    """The srun steps started beside the batch shell, in source order of what starts them. They run side by side
    when another start comes before a wait of the same shell (a wait inside ``( … ) &`` waits only for what that
    subshell started), when a loop starts them again with no wait right after them in its body, or when parallel
    or xargs -P starts several at once."""
    def make() -> tuple[BackgroundStep, ...]:
        code = _code_in_order(ctx)
        out: list[BackgroundStep] = []
        pending: dict[int, list[list[int]]] = {}  # shell → the entries of each start there since its last wait
        for i, (cmd, in_loop, _) in enumerate(code):
            shell = _shell_of(ctx, i)
            if _is_wait(cmd):
                pending[shell] = []
                continue
            found = _start_at(ctx, i)
            if found is None:
                continue
            how, run, several, detached = found
            after = _next_in_body(ctx, _pipeline_end(ctx, i))
            waited = after is not None and _is_wait(code[after][0])
            entries = list(range(len(out), len(out) + len(run)))
            out += [BackgroundStep(step, i, in_loop, several or (in_loop and not waited), cmd, how, several, detached)
                    for step in run]
            if not detached:
                continue
            started = pending.setdefault(shell, [])
            started.append(entries)
            if len(started) > 1:
                for k in (k for group in started for k in group):
                    out[k] = dataclasses.replace(out[k], side_by_side=True)
        return tuple(out)
    return cached(ctx, "background_steps", make)


def _start_at(ctx: Context, i: int) -> tuple[str, list[Any], bool, bool] | None:
    """What the command at ``i`` starts beside the batch shell: how messages name it, the srun steps, whether they
    run several at once (parallel, xargs -P) and whether the shell goes on at once (&); None when it starts none."""
    cmd = _code_in_order(ctx)[i][0]
    tool = _tool_run(ctx, i, frozenset())
    if tool is not None:
        how, run, several = tool
        detached = _backgrounded(ctx, i)
        return (f"{how} … &" if detached else how, run, several, detached) if run and (several or detached) else None
    if not _backgrounded(ctx, i) or _function_name(cmd) is not None:
        return None
    run = _runs_within(ctx, i, frozenset()) if cmd.kind == "compound" else _runs(ctx, i, frozenset())
    return (_start_name(cmd, i in _srun_steps_at(ctx)), run, False, True) if run else None


def _start_name(cmd: Any, srun: bool) -> str:
    """How messages name a command run with &: srun … &, ( … ) &, { …; } &, for … &, run_one … & (a function)."""
    if srun:
        return "srun … &"
    group = {"(": "( … ) &", "{": "{ …; } &"}.get(cmd.text.lstrip()[:1]) if cmd.kind == "compound" else None
    return group or f"{cmd.words[0].value if cmd.words else ''} … &"


def _subtree_ends(ctx: Context) -> tuple[int, ...]:
    """For each command of :func:`_code_in_order`, the index just past its body (its own index + 1 for a simple
    command): the order is depth first, so a compound's body is the run of commands right after it."""
    def make() -> tuple[int, ...]:
        code = _code_in_order(ctx)
        ends = [i + 1 for i in range(len(code))]
        for i in reversed(range(len(code))):
            if code[i][2] >= 0:
                ends[code[i][2]] = max(ends[code[i][2]], ends[i])
        return tuple(ends)
    return cached(ctx, "subtree_ends", make)


def _next_in_body(ctx: Context, i: int) -> int | None:
    """The command after the one at ``i`` in the same body (past the body of a compound), None when it is the last."""
    code, ends = _code_in_order(ctx), _subtree_ends(ctx)
    after = ends[i]
    return after if after < len(code) and code[after][2] == code[i][2] else None


def _pipeline_end(ctx: Context, i: int) -> int:
    """The last command of the pipeline the command at ``i`` starts (srun … | tee log &): it says how it runs."""
    code = _code_in_order(ctx)
    while code[i][0].joined_by in ("|", "|&"):
        after = _next_in_body(ctx, i)
        if after is None:
            break
        i = after
    return i


def _backgrounded(ctx: Context, i: int) -> bool:
    """Whether the command at ``i`` runs with & (the shell goes on at once), alone or as part of a pipeline."""
    return _code_in_order(ctx)[_pipeline_end(ctx, i)][0].joined_by == "&"


def _shell_of(ctx: Context, i: int) -> int:
    """The group run in the background (``( … ) &``) that holds the command at ``i``, -1 for the batch shell: a wait
    waits only for what its own shell started."""
    code = _code_in_order(ctx)
    parent = code[i][2]
    while parent >= 0 and not _backgrounded(ctx, parent):
        parent = code[parent][2]
    return parent


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


def _srun_steps_at(ctx: Context) -> dict[int, list[Any]]:
    """The script's srun steps by where their command is in :func:`_code_in_order`."""
    def make() -> dict[int, list[Any]]:
        where = {(c.line, c.col): i for i, (c, _, _) in enumerate(_code_in_order(ctx))}
        out: dict[int, list[Any]] = {}
        for step in steps(ctx):
            at = where.get((step.command.line, step.command.col))
            if step.chain.srun is not None and at is not None:
                out.setdefault(at, []).append(step)
        return out
    return cached(ctx, "srun_steps_at", make)


def _runs(ctx: Context, i: int, seen: frozenset[str]) -> list[Any]:
    """The srun steps the simple command at ``i`` runs: its own, those of the function it calls (and of the
    functions that one calls; ``seen`` stops a function that calls itself), or those parallel or xargs starts."""
    own = _srun_steps_at(ctx).get(i)
    if own:
        return own
    cmd = _code_in_order(ctx)[i][0]
    name = str(cmd.words[0].value) if cmd.kind == "simple" and cmd.words else ""
    if name in _functions(ctx):
        return [] if name in seen else _runs_within(ctx, _functions(ctx)[name], seen | {name})
    tool = _tool_run(ctx, i, seen)
    return tool[1] if tool is not None else []


def _runs_within(ctx: Context, i: int, seen: frozenset[str]) -> list[Any]:
    """The srun steps the body of the compound at ``i`` runs (a function defined there runs none until called)."""
    code, ends = _code_in_order(ctx), _subtree_ends(ctx)
    out: list[Any] = []
    j = i + 1
    while j < ends[i]:
        if _function_name(code[j][0]) is not None:
            j = ends[j]
            continue
        out += _runs(ctx, j, seen)
        j += 1
    return out


def _tool_run(ctx: Context, i: int, seen: frozenset[str]) -> tuple[str, list[Any], bool] | None:
    """GNU parallel or xargs at ``i`` given srun (or a function that runs it) as its command: how messages name
    it, the steps, and whether it runs several at once (xargs only with -P N, N ≠ 1; parallel unless -j 1).
    None for any other command."""
    cmd = _code_in_order(ctx)[i][0]
    if cmd.kind != "simple":
        return None
    words = launch_words(_split_words(ctx, cmd))
    tool = words[0].rsplit("/", 1)[-1] if words else ""
    if tool not in _SLOT_OPTIONS:
        return None
    for k in range(1, len(words)):
        if tool == "parallel" and words[k] in _PARALLEL_INPUTS:
            return None
        commands = _tool_commands(ctx, tool, words[k:], cmd.line)
        if not commands:
            continue
        run: list[Any] = []
        for argv in commands:
            if argv[0] in _functions(ctx):
                run += [] if argv[0] in seen else _runs_within(ctx, _functions(ctx)[argv[0]], seen | {argv[0]})
            else:
                run += _tool_step(cmd, argv)
        slots = _slots(tool, words[1:k])
        several = slots != "1" if tool == "parallel" else slots not in (None, "1")
        return (tool if slots is None else f"{tool} {'-j' if tool == 'parallel' else '-P'} {slots}"), run, several
    return None


#: a word that is one parameter reference ($NAME, ${NAME}): unquoted, bash splits its value into words
_WHOLE_REF = re.compile(r"\$(?:[A-Za-z_]\w*|\{[A-Za-z_]\w*\})")


def _split_words(ctx: Context, cmd: Any) -> list[str]:
    """A command's words as bash runs them: an unquoted ``$NAME`` the script sets (``parallel="parallel -j 8"``,
    ``$parallel …``) becomes the words of its value."""
    out: list[str] = []
    for w in cmd.words:
        value = ctx.parsed.resolve(w.raw, cmd.line) if not w.quoted and _WHOLE_REF.fullmatch(w.raw) else w.raw
        out += value.split() if value != w.raw else [str(w.value)]
    return out


def _tool_commands(ctx: Context, tool: str, words: list[str], line: int) -> list[list[str]]:
    """The srun lines (or calls of the script's functions) a parallel or xargs command runs when its command starts
    at ``words[0]``: srun written out (up to parallel's ::: input), or one word holding a command line
    (``parallel "$srun ./task {}"``, ``sh -c 'srun …'``); none when the word starts neither."""
    name = words[0].rsplit("/", 1)[-1]
    if name == "srun":
        cut = next((k for k, w in enumerate(words) if tool == "parallel" and w in _PARALLEL_INPUTS), len(words))
        return [words[:cut]]
    if tool == "parallel" and words[0] in _functions(ctx):  # export -f job; parallel job ::: … (xargs execs programs)
        return [words[:1]]
    if not re.search(r"\s", words[0]):
        return []
    try:
        script = lex_script(ctx.parsed.resolve(words[0], line))
    except ParseError:
        return []
    found = [launch_words([str(v) for v in c.argv]) for c in script.code if c.kind == "simple"]
    return [w for w in found if w and (w[0].rsplit("/", 1)[-1] == "srun" or w[0] in _functions(ctx))]


def _tool_step(cmd: Any, argv: list[str]) -> list[Any]:
    """The step of an srun line parallel or xargs runs, read as the script's own steps are (none when it cannot be)."""
    from ..parse.argv import parse_chain
    from ..parse.script import Step
    try:
        chain = parse_chain(argv, source_line=cmd.line)
    except ParseError:
        return []
    return [Step(cmd, chain, tuple((n, w.value) for n, w in cmd.assignments))]


def _slots(tool: str, options: list[str]) -> str | None:
    """The value parallel's -j (xargs' -P) is given among ``options``, None when it is not."""
    for k, word in enumerate(options):
        for opt in _SLOT_OPTIONS[tool]:
            if word == opt and k + 1 < len(options):
                return options[k + 1]
            if opt.startswith("--") and word.startswith(opt + "="):
                return word.partition("=")[2]
            if not opt.startswith("--") and word.startswith(opt) and len(word) > len(opt):
                return word[len(opt):]
    return None


def _exported(ctx: Context, step: Any, name: str) -> bool:
    """Whether ``name`` is set for the step: before its command, or exported by the script above it."""
    var = ctx.parsed.variable(name, step.line)
    return name in dict(step.env) or (var is not None and var.exported)


def _held_to_one_node(ctx: Context) -> bool:
    """The job's own lines hold it to one node: --nodes=1, or all its tasks on one (--ntasks=4 --ntasks-per-node=4).
    A script that names no count may be given one on sbatch's command line."""
    job = ctx.job
    if job.nodes is not None:
        span = node_range(job.nodes)
        return span is not None and span[1] == 1
    tasks, per_node = job.ntasks, job.ntasks_per_node
    return isinstance(tasks, int) and isinstance(per_node, int) and per_node >= tasks


def _missing_share(ctx: Context, step: Any) -> list[str]:
    """What a step leaves to its default of the whole node: "CPUs" without --exact (or -c, --exclusive, which imply
    it), "GPUs" without a GPU request of its own in a job with GPUs. Nothing for an --overlap step (it shares)."""
    srun = step.chain.srun
    own = {str(e).partition("=")[0] for e in srun.extra}
    if "--overlap" in own or _exported(ctx, step, "SLURM_OVERLAP"):
        return []
    version = ctx.profile.version_tuple() if ctx.profile is not None else None
    exact = "--exact" in own or "--exclusive" in own or srun.cpus_per_task is not None \
        or any(_exported(ctx, step, n) for n in ("SLURM_EXACT", "SLURM_EXCLUSIVE", "SRUN_CPUS_PER_TASK"))
    # the job's --cpus-per-task reaches srun from 23.11 (an unknown version may be one of those)
    inherited = ctx.job.cpus_per_task is not None and (version is None or version >= _CPUS_INHERITED_SINCE)
    missing = [] if exact or inherited else ["CPUs"]
    if ctx.job.gpus_on_each_node and not own_gpu_request(srun) and inherited_per_task(ctx, step) is None \
            and not _exported(ctx, step, "SLURM_STEP_GRES"):
        missing.append("GPUs")
    return missing


@rule("HPC518", "parallel-steps-run-one-after-another", "warning",
      summary="job steps started side by side (srun … &, GNU parallel, xargs -P) each take the whole node, so they "
              "run one after another",
      why="Since Slurm 20.11 a step without --exact is given every CPU of the job on its nodes, and a step that asks "
          "for no GPUs of its own gets every GPU the job has (srun(1), --exact and --gres). Steps do not share them "
          "(unless --overlap), so the second srun … & waits until the first ends ('step creation temporarily "
          "disabled'): four seeds started together take four times as long, and may hit the time limit. The same "
          "holds for a function that runs srun, or a ( … ) or { …; } group holding it, run with &, and for the srun "
          "that GNU parallel or xargs -P starts several times at once. Reported for a job its #SBATCH lines hold "
          "to one node; -c/--cpus-per-task and --exclusive imply --exact, and from Slurm 23.11 so does the job's "
          "own --cpus-per-task.",
      fix="Give each step its share: srun --exact -n 1 -c 4 --gpus=1 … & (the CPUs and GPUs of one run), then wait; "
          "under GNU parallel or xargs -P the same: parallel -j 4 srun --exact -n 1 -c 4 ./task {} ::: *.in.",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --gres=gpu:4
for seed in 0 1 2 3; do
  srun -n 1 apptainer exec --nv img_2.3.sif python train.py --seed "$seed" &
done
wait
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:4
for seed in 0 1 2 3; do
  srun --exact -n 1 -c 4 --gpus=1 apptainer exec --nv img_2.3.sif python train.py --seed "$seed" &
done
wait
""")
def _steps_one_after_another(ctx: Context) -> Iterator[Any]:
    version = ctx.profile.version_tuple() if ctx.profile is not None else None
    if heterogeneous(ctx) or not _held_to_one_node(ctx) or (version is not None and version < _WHOLE_STEPS_SINCE):
        return  # several nodes (or a count given on sbatch's command line): steps may land on different ones
    reported: set[tuple[int, int]] = set()  # a function's step, called several times, is reported once
    for b in background_steps(ctx):
        where = (b.step.line, b.step.command.col)
        if not b.side_by_side or where in reported or (_is_monitor(b.step) and not b.several):
            continue  # a monitor that never ends blocks the others for good: HPC522's
        missing = _missing_share(ctx, b.step)
        if not missing:
            continue
        reported.add(where)
        what = " and ".join(f"all the {m}" for m in missing)
        without = " and ".join({"CPUs": "--exact", "GPUs": "a GPU count of its own (--gpus=1)"}[m] for m in missing)
        gpu = " --gpus=1" if ctx.job.gpus_on_each_node else ""
        amp = " &" if b.how == "srun … &" else ""
        yield (b.step.line, f"{_how_started(b)}, but without {without} each step takes {what} of the job's node, so "
                            f"the steps run one after another (step creation temporarily disabled); give each its "
                            f"share, e.g. srun --exact -n 1 -c N{gpu} …{amp}")


def _how_started(b: BackgroundStep) -> str:
    """How a step comes to run beside others, for HPC518's message; the line of what starts it when that is
    elsewhere (a function's srun, started by the call)."""
    started = "on every pass of the loop" if b.in_loop else "beside the others"
    if b.how == "srun … &":
        return f"srun … & starts a step in the background {started}"
    at = f" (line {b.start.line})" if b.start.line != b.step.line else ""
    if b.several:
        return f"{b.how}{at} runs this srun several times at once"
    return f"{b.how}{at} starts this step in the background {started}"


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


@rule("HPC522", "monitor-step-blocks-the-job", "error",
      summary="a monitor started as a background srun step (srun nvidia-smi dmon &) holds the job's resources "
              "for good, so a later srun step never starts",
      why="A step without --overlap takes every CPU of the job on its node (without --exact) and every GPU the job "
          "has (when it asks for none itself), and steps do not share them. A monitor such as nvidia-smi dmon, "
          "nvidia-smi -l 30, watch or tail -f never ends, so the training step after it waits ('step creation "
          "temporarily disabled') until the job's time runs out.",
      fix="Start the monitor with srun --overlap (it then shares the resources), or without srun: nvidia-smi dmon "
          "… & in the batch shell watches the first node.",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gres=gpu:4
srun nvidia-smi dmon -s u -d 30 > gpu_util.log &
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gres=gpu:4
srun --overlap nvidia-smi dmon -s u -d 30 > gpu_util.log &
srun python train.py
""")
def _monitor_step_blocks(ctx: Context) -> Iterator[Any]:
    if heterogeneous(ctx):
        return
    later = [s for s in steps(ctx) if s.chain.srun is not None]
    for b in background_steps(ctx):
        step = b.step
        if b.several or not _is_monitor(step):
            continue
        missing = _missing_share(ctx, step)
        blocked = next((s for s in later if s.line > step.line and s is not step), None)
        if not missing or blocked is None:
            continue
        program = " ".join(str(w) for w in step.chain.program[:2])
        fix = None
        words = step.command.words
        if words and str(words[0].value) == "srun" and step.line == step.end_line and not b.in_loop:
            text = ctx.parsed.lines[step.line - 1]
            at = words[0].col - 1 + len(words[0].raw)
            fix = Fix("run the monitor with srun --overlap", step.line, step.line,
                      text=text[:at] + " --overlap" + text[at:])
        yield (step.line, f"srun {program} … never ends and holds the job's {' and '.join(missing)} (a step without "
                          f"--overlap takes them all), so the srun on line {blocked.line} waits for it until the job's "
                          "time runs out; start the monitor with srun --overlap, or without srun", fix)


#: where a job keeps files on each node's own disk: the variables sites point at a per-node folder, and the
#: folders that are local to every node; what the batch shell writes there exists on the first node only
_NODE_LOCAL = re.compile(r"\$\{?(?:SLURM_TMPDIR|TMPDIR|TMP|LOCAL_?SCRATCH|LSCRATCH)\}?(?=/|$)"
                         r"|(?:/tmp|/dev/shm|/var/tmp|/lscratch|/localscratch|/local|/scratch/local)(?=/|$)")
#: commands that fill a folder with data (their destination is read from their words)
_STAGERS = frozenset({"cp", "rsync", "mv", "tar", "unzip"})


def _staged_to(words: list[str]) -> str | None:
    """The destination a cp/rsync/mv, tar -x -C, unzip -d, apptainer pull/build or ch-convert writes to, as
    written; None for any other command, or when the destination is the current folder."""
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program in ("cp", "rsync", "mv"):
        for k, w in enumerate(words[1:-1], 1):
            if w in ("-t", "--target-directory"):
                return words[k + 1]
        target = next((w.partition("=")[2] for w in words if w.startswith("--target-directory=")), None)
        plain = [w for w in words[1:] if not w.startswith("-")]
        return target if target is not None else (plain[-1] if len(plain) >= 2 else None)
    if program == "tar":
        flags = words[1] if len(words) > 1 and not words[1].startswith("-") else ""  # tar xzf: old-style letters
        if not ("x" in flags or "--extract" in words or "--get" in words
                or any(re.fullmatch(r"-[A-Za-z]*x[A-Za-z]*", w) for w in words)):
            return None
        for k, w in enumerate(words):
            if w in ("-C", "--directory") and k + 1 < len(words):
                return words[k + 1]
            if w.startswith("--directory="):
                return w.partition("=")[2]
        return None
    if program == "unzip":
        return next((words[k + 1] for k in range(len(words) - 1) if words[k] == "-d"), None)
    if program in ("apptainer", "singularity", "ch-convert"):
        try:
            from ..parse.argv import parse_argv
            model = parse_argv(words).model
        except ParseError:
            return None
        dest = getattr(model, "dest", None) or getattr(model, "dir", None) or getattr(model, "output", None)
        return str(dest) if dest and getattr(model, "action", "build") in ("pull", "build") else None
    return None


def _node_local_key(dest: str, source: str) -> str | None:
    """What a later step has to name to read what was written to ``dest`` (resolved), when that is node-local:
    the per-node folder's variable ($SLURM_TMPDIR: every job has its own), else the folder's first entry
    (/tmp/imagenet; /tmp/data.tar for cp data.tar /tmp); None when ``dest`` is not node-local."""
    m = _NODE_LOCAL.match(dest)
    if m is None:
        return None
    root = m.group(0)
    if root.startswith("$"):
        return "$" + root.strip("${}")
    first = dest[len(root):].strip("/").split("/", 1)[0] or source.rstrip("/").rsplit("/", 1)[-1]
    return f"{root}/{first}" if first else None


def _names_key(text: str, key: str) -> bool:
    if key.startswith("$"):
        return re.search(r"\$\{?" + re.escape(key[1:]) + r"\b", text) is not None
    return re.search(re.escape(key) + r"(?![\w.-])", text) is not None


@rule("HPC523", "node-local-copy-on-first-node-only", "error",
      summary="data or an image copied to node-local storage ($SLURM_TMPDIR, /tmp) by the batch script, then read by "
              "a step on several nodes: only the first node has it",
      why="The batch script runs on the first node of the job alone, so cp, rsync, tar -x -C, unzip -d, "
          "apptainer pull or ch-convert there write into that node's $SLURM_TMPDIR, $TMPDIR, /tmp or /dev/shm. "
          "Every other node has its own, empty, local disk: the tasks there fail with 'No such file or directory' "
          "(or an image that is not found) as soon as the srun step reads the copy.",
      fix="Run the copy once on every node: srun --ntasks=\"$SLURM_JOB_NUM_NODES\" --ntasks-per-node=1 tar -xf "
          "data.tar -C \"$SLURM_TMPDIR\" (sbcast copies one file to every node), or read the data and the image from "
          "shared storage.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
tar -xf "$SCRATCH/imagenet.tar" -C "$SLURM_TMPDIR"
srun apptainer exec --nv -B "$SLURM_TMPDIR" img_2.3.sif python train.py --data "$SLURM_TMPDIR/imagenet"
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 tar -xf "$SCRATCH/imagenet.tar" -C "$SLURM_TMPDIR"
srun apptainer exec --nv -B "$SLURM_TMPDIR" img_2.3.sif python train.py --data "$SLURM_TMPDIR/imagenet"
""")
def _copied_to_first_node(ctx: Context) -> Iterator[Any]:
    if job_nodes(ctx) < 2 or heterogeneous(ctx):
        return
    code = _code_in_order(ctx)
    wide = [s for s in steps(ctx) if s.chain.srun is not None and _step_nodes(ctx, s) > 1]
    made: list[str] = []  # the node-local folders a mkdir in the batch shell made (a fix would need them too)
    for i, (cmd, _, parent) in enumerate(code):
        if cmd.kind != "simple" or not cmd.words or _in_function(code, parent):
            continue
        words = launch_words([str(w.value) for w in cmd.words])
        if not words or words[0].rsplit("/", 1)[-1] in ("srun", "sbcast"):
            continue
        resolved = [ctx.parsed.resolve(w, cmd.line) for w in words]
        if words[0] == "mkdir":
            made += [k for w in resolved[1:] if (k := _node_local_key(w, "")) is not None]
            continue
        dest = _staged_to(resolved)
        plain = [w for w in resolved[1:] if not w.startswith("-")]
        key = _node_local_key(dest, plain[0] if plain else "") if dest else None
        if key is None:
            continue
        reader = next((s for s in wide if s.line > cmd.line and _step_reads(ctx, s, key)), None)
        if reader is None:
            continue
        what = "the image" if words[0].rsplit("/", 1)[-1] in ("apptainer", "singularity", "ch-convert") else "the copy"
        yield (cmd.line, f"{words[0]} writes to {dest} from the batch script, which runs on the first node only, but "
                         f"the srun step on line {reader.line} reads it on {_step_nodes(ctx, reader)} nodes: the others "
                         f"have nothing there; make {what} on every node (srun --ntasks=\"$SLURM_JOB_NUM_NODES\" "
                         "--ntasks-per-node=1 …) or use shared storage",
               _stage_fix(ctx, cmd, words, key, made, _joined_to_previous(code, i)))


def _in_function(code: Any, parent: int) -> bool:
    """Whether the command whose holder sits at ``parent`` in :func:`_code_in_order` is in a function's body."""
    while parent >= 0:
        holder, _, parent_up = code[parent]
        if _function_name(holder) is not None:
            return True
        parent = parent_up
    return False


def _step_reads(ctx: Context, step: Any, key: str) -> bool:
    """Whether a step names the node-local ``key``: in its words, through the script's variables, or in a variable
    the batch shell exports before it."""
    text = " ".join(ctx.parsed.resolve(str(w.value), step.line) for w in all_words(step.command))
    if _names_key(text, key):
        return True
    return any(v.exported and v.line < step.line and _names_key(ctx.parsed.resolve(v.value, v.line), key)
               for v in ctx.parsed.variables)


def _joined_to_previous(code: Any, i: int) -> bool:
    """Whether the command at ``i`` in :func:`_code_in_order` runs after ``|``, ``&&`` or ``||``."""
    parent = code[i][2]
    before = next((c for c, _, p in reversed(code[:i]) if p == parent), None)
    return before is not None and before.joined_by in ("|", "&&", "||")


def _stage_fix(ctx: Context, cmd: Any, words: list[str], key: str, made: list[str], joined: bool) -> Fix | None:
    """srun … in front of a one-line copy the batch shell runs on its own (not in a pipeline or an && chain, no
    wrapper before it, no mkdir of the same folder that would stay on the first node)."""
    first = cmd.words[0]
    if words[0] not in _STAGERS or str(first.value) != words[0] or key in made or cmd.line != cmd.end_line \
            or cmd.joined_by in ("|", "&&", "||", "&") or joined or cmd.assignments:
        return None
    line = ctx.parsed.lines[cmd.line - 1]
    at = first.col - 1
    if line[at:at + len(first.raw)] != first.raw:
        return None
    return Fix("run the copy once on every node", cmd.line, cmd.line,
               text=line[:at] + 'srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 ' + line[at:])


#: commands that end well whatever happened before them: after the last step they set the job's exit status to 0
_ALWAYS_WELL = frozenset({"echo", "printf", "date", "hostname", "true", ":", "sync", "pwd", "env", "printenv", "sleep",
                          "ls", "du", "df", "nvidia-smi", "seff", "sacct", "sstat", "squeue", "scontrol", "module",
                          "ml", "conda", "deactivate", "cd", "free", "uptime", "whoami", "id", "uname", "exit"})
#: errexit turned on: set -e, set -eu, set -o errexit, set -Eeuo pipefail …
_ERREXIT = re.compile(r"^\s*set\s+(?:-[A-Za-z]*e[A-Za-z]*\b|.*-o\s+errexit\b)", re.MULTILINE)


@rule("HPC527", "failed-step-hidden-by-last-command", "info",
      summary="the job's state comes from its last command (echo done), so a failed training step still ends "
              "COMPLETED",
      why="Slurm takes the batch script's exit status as the job's, and a script without set -e returns the status of "
          "its last command. After srun python train.py fails, an echo \"done\" (or date, or ls) below it exits 0: "
          "sacct shows COMPLETED, the email says so, and the jobs that wait with --dependency=afterok start on "
          "results that were never written.",
      fix="Add set -e near the top (the job then stops at the first command that fails), or end the step with "
          "|| exit $? to pass its status on.",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
srun python train.py
echo "finished at $(date)"
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
set -e
srun python train.py
echo "finished at $(date)"
""")
def _status_of_the_last_command(ctx: Context) -> Iterator[Any]:
    text = ctx.parsed.source
    first = text.split("\n", 1)[0]
    if _ERREXIT.search(text) or re.search(r"^#!\S+(?:\s+\S+)*\s+-[A-Za-z]*e", first) \
            or re.search(r"\btrap\b[^\n]*\bERR\b|\$\?|PIPESTATUS", text):
        return  # errexit, a trap on errors, or a script that reads statuses itself
    top = [c for c in ctx.parsed.lexed.code if c.is_code]
    runs = [s for s in steps(ctx) if not s.in_compound and s.command.joined_by not in ("&", "||", "&&", "|")]
    if not runs:
        return
    last = max(runs, key=lambda s: s.end_line)
    after = [c for c in top if c.line > last.end_line]
    if not after or any(c.kind != "simple" or not c.words for c in after):
        return
    names = [str(c.words[0].value).rsplit("/", 1)[-1] for c in after]
    if any(n not in _ALWAYS_WELL for n in names) or "exit" in names:
        return  # a command that may fail (its status is the job's then), or an exit of the script's own
    end = last.end_line
    said = ctx.parsed.lines[end - 1] if end <= len(ctx.parsed.lines) else ""
    fix = None
    if "#" not in said and not said.rstrip().endswith("\\") and "<<" not in last.command.text \
            and (last.command.joined_by or "") in ("", ";"):
        fix = Fix("pass the step's exit status on", end, end, text=said.rstrip() + " || exit $?")
    yield (last.line, f"the job's state is the exit status of its last command ({names[-1]} on line {after[-1].line}, "
                      f"which succeeds), so when this step fails the job still ends COMPLETED and --dependency=afterok "
                      "jobs start anyway; add set -e near the top, or || exit $? after the step", fix)


#: runtimes that start their own workers on the job's tasks: the Python program that uses them runs once
_OTHER_RUNTIMES = re.compile(r"\b(?:ipcluster|ipengine|ipcontroller|ray\s+start|dask[-_](?:worker|scheduler|mpi)"
                             r"|dask\s+(?:worker|scheduler))\b")
#: python run as a tool rather than as the job's program (pip, a one-liner, a build): its first words
_PYTHON_TOOL = re.compile(r"(?:-c|-V|--version|\S*setup\.py|-m ?(?:pip|venv|ensurepip|pytest|json\.tool|http\.server))"
                          r"(?: .*)?")


@rule("HPC528", "tasks-without-srun", "info",
      summary="the job asks for several tasks on a node, but its Python program runs once, in the batch shell, "
              "without srun",
      why="The batch script is one process on the first node; only srun (or an MPI launcher) starts the job's tasks. "
          "python train.py there runs once (with all the CPUs and GPUs the job has on that node, which suits a "
          "program that starts its own workers, such as TensorFlow's MirroredStrategy). But a program that reads "
          "Slurm's variables to find its peers (PyTorch Lightning's SLURM environment, anything built on SLURM_NTASKS "
          "and SLURM_PROCID) sees a world of N ranks in which only rank 0 exists: it waits for the others until the "
          "time limit.",
      fix="Start one process per task with srun (srun python train.py, with --ntasks-per-node as the program's "
          "devices), or, for a program that starts its own workers (torch.multiprocessing, a DataLoader pool), ask "
          "for one task with several CPUs: --ntasks-per-node=1 --cpus-per-task=N.",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
apptainer exec --nv -B "$SCRATCH" lightning_2.4.sif python train.py --devices 4
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
srun apptainer exec --nv -B "$SCRATCH" lightning_2.4.sif python train.py --devices 4
""")
def _tasks_without_srun(ctx: Context) -> Iterator[Any]:
    tasks, nodes = job_tasks(ctx), job_nodes(ctx)
    if tasks is None or tasks <= max(nodes, 1) or heterogeneous(ctx):
        return  # one task per node at most: the batch shell is the task of the first
    if _OTHER_RUNTIMES.search(ctx.parsed.source):
        return  # ipyparallel, Ray or Dask start their own workers in the job's tasks
    code = _code_in_order(ctx)
    last = None
    for cmd, _, parent in code:
        if cmd.kind != "simple" or not cmd.words or _in_function(code, parent):
            continue
        words = launch_words([str(v) for v in cmd.argv])
        name = words[0].rsplit("/", 1)[-1] if words else ""
        if name in ("srun", *RANK_LAUNCHERS) or any(w.rsplit("/", 1)[-1] in ("srun", *RANK_LAUNCHERS) for w in words):
            return  # the script starts its tasks (or ranks) itself somewhere
        if cmd.joined_by == "&":
            continue
        program = _batch_shell_program(ctx, cmd, words)
        if program and re.fullmatch(r"python[0-9.]*", program[0].rsplit("/", 1)[-1]) \
                and not _PYTHON_TOOL.fullmatch(" ".join(program[1:3])):
            last = (cmd, program)
    if last is None:
        return
    cmd, program = last
    per_node = -(-tasks // max(nodes, 1))
    yield (cmd.line, f"the job asks for {per_node} tasks per node, but {' '.join(program[:2])} runs once, in the batch "
                     f"shell; if it finds its peers through Slurm's variables (PyTorch Lightning does) it waits for "
                     f"{per_node - 1} ranks that never start: start it with srun (one process per task), or ask for "
                     "--ntasks-per-node=1 and --cpus-per-task if it starts its own workers")


def _batch_shell_program(ctx: Context, cmd: Any, words: list[str]) -> list[str]:
    """The program a batch-shell command runs: its own words, or those inside the container it starts; empty for
    a launcher (torchrun, accelerate … start processes of their own)."""
    step = next((s for s in steps(ctx) if s.command is cmd), None)
    if step is None:
        return words
    if step.chain.srun is not None or step.chain.launcher is not None:
        return []
    return [str(w) for w in step.chain.program]


#: what a trap handler may do that ends the job anyway (so a script that ends right after it loses nothing)
_ENDS_THE_JOB = re.compile(r"\bscontrol\s+requeue\b|\bexit\b|\bscancel\b(?![^;|&]*--signal)|\bsbatch\b")


@rule("HPC529", "wait-returns-when-the-trap-runs", "error",
      summary="a trap for the --signal=B:… warning only tells the step to checkpoint, and the script's one wait "
              "then returns, so the job ends and the step is killed before it can",
      why="bash's wait returns as soon as a trapped signal arrives (bash(1): 'the reception of a signal for which a "
          "trap has been set will cause the wait builtin to return immediately … after which the trap is executed'). "
          "With srun … & and a single wait at the end, the trap runs (kill -USR1, scancel --signal, touch STOP), "
          "then the script reaches its end: the job ends with it, and Slurm kills the step that was about to save "
          "its checkpoint. A trap that requeues, resubmits or exits ends the job on purpose and is not reported.",
      fix="Wait again until the step has ended: wait \"$pid\"; while kill -0 \"$pid\" 2>/dev/null; do wait \"$pid\"; "
          "done (with pid=$! after srun … &).",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@300
trap 'echo "time is nearly up"; kill -USR1 "$pid"' USR1
srun python train.py &
pid=$!
wait
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@300
trap 'echo "time is nearly up"; kill -USR1 "$pid"' USR1
srun python train.py &
pid=$!
wait "$pid"
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
""")
def _wait_returns_at_the_trap(ctx: Context) -> Iterator[Any]:
    found = _batch_signal(ctx)
    if found is None:
        return
    _, signal = found
    handlers = [str(cmd.argv[1]) for cmd in simple_commands(ctx) if len(cmd.argv) >= 3
                and str(cmd.argv[0]) == "trap" and any(_signal_name(str(w)) == signal for w in cmd.argv[2:])]
    functions, code = _functions(ctx), _code_in_order(ctx)
    handlers = [code[functions[h.strip()]][0].text if h.strip() in functions else h for h in handlers]
    if not handlers or any(_ENDS_THE_JOB.search(h) for h in handlers):
        return  # no trap for it (HPC517's), or a handler that ends the job anyway
    top = [c for c in ctx.parsed.lexed.code if c.is_code]
    waits = [k for k, c in enumerate(top) if _is_wait(c)]
    if not waits or not any(b.detached for b in background_steps(ctx)):
        return
    last = waits[-1]
    if any(c.kind != "simple" or not c.words or str(c.words[0].value) not in _QUICK_COMMANDS for c in top[last + 1:]) \
            or (last > 0 and _is_wait(top[last - 1])):
        return  # the script goes on after the wait (a loop that polls), or waits twice: it waits again
    yield (top[last].line, f"the trap for SIG{signal} only tells the step to stop, and this wait returns as soon as "
                           "the trap has run: the script ends here, the job with it, and Slurm kills the step before it "
                           "has saved anything; wait again until the step has ended (while kill -0 \"$pid\"; do wait "
                           "\"$pid\"; done)")


@rule("HPC519", "background-steps-without-wait", "error",
      summary="steps or programs started in the background (srun … &, python … &, or a function or ( … ) group "
              "running srun with &) with no wait before the script ends",
      why="A job ends when its batch script ends: Slurm then releases the allocation and kills the steps still "
          "running. srun … & returns at once, so without wait the steps are killed seconds after they start, and "
          "the job still shows COMPLETED, without results. A function that runs srun, or a ( … ) or { …; } group "
          "holding it, run with & returns at once as well, and so does a program the script starts with & itself "
          "(for f in *.fq; do salmon quant … & done). GNU parallel and xargs wait for the steps they start "
          "(unless they are run with & themselves). A monitor (nvidia-smi dmon … &) is meant to end with the job.",
      fix="Write wait after the background steps (before the script's last lines).",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=2
srun --exact -n 1 python a.py &
srun --exact -n 1 python b.py &
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=2
srun --exact -n 1 python a.py &
srun --exact -n 1 python b.py &
wait
""")
def _background_without_wait(ctx: Context) -> Iterator[Any]:
    # steps started inside ( … ) & belong to that group's start, which the batch shell has to wait for
    background = [b for b in background_steps(ctx) if b.detached and _shell_of(ctx, b.index) < 0]
    background += _plain_background(ctx, {b.index for b in background})
    if not background:
        return
    background.sort(key=lambda b: b.index)
    code = _code_in_order(ctx)
    first = min(b.index for b in background)
    if any(_is_wait(c) and _shell_of(ctx, k) < 0 for k, (c, _, _) in enumerate(code) if k >= first) \
            or _waits_elsewhere(ctx):
        return
    last = max(background, key=lambda b: b.index).start
    top = [c for c in ctx.parsed.lexed.code if c.is_code]
    holder = next((k for k, c in enumerate(top) if c.offset <= last.offset < c.offset + len(c.text)), None)
    if holder is None or _function_name(top[holder]) is not None \
            or not all(c.kind == "simple" and (not c.words or str(c.words[0].value) in _QUICK_COMMANDS)
                       for c in top[holder + 1:]):
        return  # something runs after them (a foreground step, a loop that polls): they may be meant to end with it
    starts = {b.index: b.how for b in background}
    count = len(starts)
    if set(starts.values()) == {"srun … &"}:
        started = (f"{count} steps" if count > 1 else "a step") + " in the background (srun … &)"
    elif all(getattr(b, "plain", False) for b in background):
        started = " and ".join(dict.fromkeys(starts.values())) + " in the background"
        if any(b.in_loop for b in background):
            started += " on every pass of the loop"
    else:  # a group or a function may hold several steps, or one of two
        started = "steps in the background with " + " and ".join(dict.fromkeys(starts.values()))
    end = top[holder].end_line
    text = ctx.parsed.lines[end - 1] if end <= len(ctx.parsed.lines) else ""
    indent = " " * _indent(ctx.parsed.lines[top[holder].line - 1])
    fix = None if text.rstrip().endswith("\\") else Fix("wait for the background steps", end, end,
                                                        text=f"{text}\n{indent}wait")
    what = "programs" if all(getattr(b, "plain", False) for b in background) else "steps"
    yield (background[0].start.line,
           f"the script starts {started} and ends without wait: the job ends with its "
           f"script, and Slurm kills the {what} still running, so they leave no results (the job shows COMPLETED); "
           "add wait after them", fix)


#: programs started with & to watch the job while it runs (or to pass time): killed at its end on purpose
_WATCHERS = frozenset({"nvidia-smi", "rocm-smi", "amd-smi", "watch", "tail", "sleep", "top", "htop", "vmstat", "iostat",
                       "dstat", "free", "sar", "mpstat", "pidstat", "gpustat", "nvtop", "dcgmi", "ps", "date", "echo"})


@dataclasses.dataclass(frozen=True)
class PlainBackground:
    """A program the batch shell starts with & that is no srun step (``salmon quant … &``), for HPC519."""

    index: int       # where it is in :func:`_code_in_order`
    start: Any       # the command
    how: str         # as messages name it: "salmon … &"
    in_loop: bool
    plain: bool = True


def _plain_background(ctx: Context, steps_at: set[int]) -> list[PlainBackground]:
    """The batch shell's own programs run with & (not srun steps, not a watcher such as nvidia-smi dmon &, not in
    a function or a ( … ) & group): the job's end kills them just the same."""
    code = _code_in_order(ctx)
    out = []
    for i, (cmd, in_loop, parent) in enumerate(code):
        if cmd.kind != "simple" or not cmd.words or i in steps_at or not _backgrounded(ctx, i) \
                or _shell_of(ctx, i) >= 0 or _in_function(code, parent) or _start_at(ctx, i) is not None:
            continue
        words = launch_words([str(w.value) for w in cmd.words])
        if not words or words[0].rsplit("/", 1)[-1] in _WATCHERS or _never_ends(words):
            continue
        out.append(PlainBackground(i, cmd, f"{words[0].rsplit('/', 1)[-1]} … &", in_loop))
    return out


def _waits_elsewhere(ctx: Context) -> bool:
    """A wait the script may run later than it reads: in a function (called after the steps) or a trap."""
    top = [c for c in ctx.parsed.lexed.code if c.is_code]
    for cmd, _, _ in _code_in_order(ctx):
        trap = cmd.kind == "simple" and bool(cmd.words) and str(cmd.words[0].value) == "trap"
        if trap and re.search(r"\bwait\b", cmd.text):
            return True
        if _is_wait(cmd):
            holder = next((c for c in top if c.offset <= cmd.offset < c.offset + len(c.text)), None)
            if holder is not None and _FUNCTION_DEF.match(holder.text):
                return True
    return False



_REGISTRY_PASSWORD = re.compile(r"^(APPTAINER|SINGULARITY)(ENV)?_DOCKER_PASSWORD$|^(DOCKER|REGISTRY|NGC)_PASSWORD$")
_LOGIN = re.compile(r"\b(login|registry\s+login)\b")


@rule("HPC601", "registry-password-in-script", "error",
      summary="a container registry password is written in the script",
      why="Job scripts are copied to Slurm's spool, kept in sacct records, shared and committed to git; a password "
          "on a command line is also visible to every user in ps.",
      fix="Log in once interactively (apptainer registry login / --docker-login), or keep "
          "APPTAINER_DOCKER_PASSWORD in a file only you can read and source it.",
      catalogue=(19,),
      bad="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
export APPTAINER_DOCKER_USERNAME='$oauthtoken'
export APPTAINER_DOCKER_PASSWORD=nvapi-0123456789abcdef
[ -f pt.sif ] || apptainer pull pt.sif docker://nvcr.io/nvidia/pytorch:24.05-py3
""",
      good="""#!/bin/bash
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
source "$HOME/.config/ngc-credentials.sh"
[ -f pt.sif ] || apptainer pull pt.sif docker://nvcr.io/nvidia/pytorch:24.05-py3
""")
def _registry_password(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        for name, w in cmd.assignments:
            if _REGISTRY_PASSWORD.match(name) and is_literal(w.value) and str(w.value):
                yield cmd.line, f"{name} holds a password written in the script; keep it in a private file or log in interactively"
        words = [str(v) for v in cmd.argv]
        if _LOGIN.search(" ".join(words)):
            for i, word in enumerate(words):
                value = None
                if word in ("-p", "--password") and i + 1 < len(words):
                    value = words[i + 1]
                elif word.startswith("--password="):
                    value = word.partition("=")[2]
                if value is not None and is_literal(value):
                    yield cmd.line, "a registry password is written on the command line; use --password-stdin from a private file or an interactive login"
                    break


_TOKEN_NAME = re.compile(r"^(APPTAINERENV_|SINGULARITYENV_)?([A-Z0-9_]*(API_KEY|_TOKEN|TOKEN|SECRET|SECRET_KEY|"
                         r"ACCESS_KEY|PASSWORD))$")


def _secret_message(name: str, value: str) -> str | None:
    """What to say about ``name=value`` written in the script, or None when it holds no secret. Jupyter's
    token is a password to a shell as you, so any fixed one counts (even a short one); the value
    Jupyter jobs should pass, a token the job makes when it runs (``JUPYTER_TOKEN="$tok"``), is no literal."""
    m = _TOKEN_NAME.match(name)
    if not m or _REGISTRY_PASSWORD.match(name) or not is_literal(value):
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


@rule("HPC602", "api-token-in-script", "error",
      summary="an API key or token (W&B, Hugging Face, cloud, a fixed Jupyter token) is written in the script",
      why="The script is copied to Slurm's spool, kept in job records, shared with colleagues and committed to git: "
          "the key leaks with it.",
      fix="Keep it out of the script: log in once (wandb login, huggingface-cli login stores it in your home), or "
          "source a file only you can read.",
      catalogue=(30,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
export WANDB_API_KEY=0123456789abcdef0123456789abcdef01234567
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
source "$HOME/.config/wandb.env"
python train.py
""")
def _api_token(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        for name, w in cmd.assignments:
            message = _secret_message(name, w.value)
            if message:
                yield cmd.line, message
        words = [str(v) for v in cmd.argv]
        for i, word in enumerate(words):
            key, eq, value = word.partition("=")
            if eq and i > 0 and words[i - 1] in ("--env", "--set-env") and _secret_message(key, value):
                yield cmd.line, f"{key} is passed with its value on the command line; use --env-file with a private file"
        if len(words) >= 3 and words[0] == "wandb" and words[1] == "login" and is_literal(words[-1]) \
                and not words[-1].startswith("-") and len(words[-1]) >= 8:
            yield cmd.line, "wandb login with the key on the command line; run wandb login once interactively instead"
        if words[:2] in (["huggingface-cli", "login"], ["hf", "login"]) and "--token" in words:
            idx = words.index("--token")
            if idx + 1 < len(words) and is_literal(words[idx + 1]):
                yield cmd.line, "the Hugging Face token is written on the command line; log in once interactively instead"


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


def _jupyter_commands(ctx: Context) -> list[tuple[Any, list[str]]]:
    """Every command that starts a Jupyter server (``jupyter lab``, ``python -m jupyterlab`` …, also after a
    container or launcher, in a function or an ``if``, and in a ``bash -c`` script, where jobs often start it):
    the command and its words from the server's program on."""
    def make() -> list[tuple[Any, list[str]]]:
        source = ctx.parsed.source
        if "jupyter" not in source and "notebook" not in source and "nbclassic" not in source:
            return []  # most scripts: no server to look for (python -m notebook has no "jupyter")
        out = []
        for cmd in _simple_commands(ctx.parsed.lexed.code):
            words = [str(v) for v in cmd.argv]
            at = server_start(words)
            if at is not None:
                out.append((cmd, words[at:]))
        return out
    return cached(ctx, "jupyter_commands", make)


#: jupyter_server's aliases that take a value (``--port-retries 0`` sets ServerApp.port_retries); its other
#: options without a dot (``--no-browser``) are switches
_JUPYTER_ALIASES = {"--ip": "ServerApp.ip", "--port": "ServerApp.port", "--port-retries": "ServerApp.port_retries",
                    "--notebook-dir": "ServerApp.root_dir"}


def _jupyter_settings(words: list[str]) -> list[tuple[str, str, str]]:
    """The settings on a Jupyter command line as traitlets reads them: ``(option as written, Class.trait, value)``
    for ``--Class.trait=value``, ``--Class.trait value`` and the aliases in either form."""
    out = []
    i = 0
    while i < len(words):
        key, eq, value = words[i].partition("=")
        trait = _JUPYTER_ALIASES.get(key) or (key[2:] if key.startswith("--") and "." in key else "")
        if trait and not eq and i + 1 < len(words) and not words[i + 1].startswith("-"):
            i += 1
            value, eq = words[i], " "  # the space form: --ServerApp.token ''
        if trait and eq:
            out.append((key, trait, value))
        i += 1
    return out


#: the settings that hold the server's token or password
_SECRET_TRAIT = re.compile(r"^(ServerApp|NotebookApp|IdentityProvider|PasswordIdentityProvider)\."
                           r"(token|password|hashed_password)$")


@rule("HPC603", "jupyter-without-token", "error",
      summary="JupyterLab on a compute node with its token (and password) switched off",
      why="Compute nodes are reachable by every user of the cluster: a server without a token gives anyone a shell "
          "as you, with your files and allocation.",
      fix="Keep Jupyter's random token (the default), or pass one through JUPYTER_TOKEN from a private file; "
          "bind to the node's own name rather than 0.0.0.0.",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
jupyter lab --no-browser --ip=0.0.0.0 --port=8888 --ServerApp.port_retries=0 --ServerApp.token=''
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _no_token(ctx: Context) -> Iterator[Any]:
    for cmd, words in _jupyter_commands(ctx):
        settings = _jupyter_settings(words)
        empty = [key for key, trait, value in settings
                 if _SECRET_TRAIT.match(trait) and trait.endswith(".token") and value in ("", "''", '""')]
        if empty:
            everywhere = any(trait == "ServerApp.ip" and value in ("0.0.0.0", "*") for _, trait, value in settings)
            yield (cmd.line, f"{empty[0]} is empty: anyone on the cluster"
                             f"{' (and on every network the node is on: --ip=0.0.0.0)' if everywhere else ''} can use this "
                             "server as you; keep the token")


@rule("HPC604", "jupyter-port-retries", "warning",
      summary="JupyterLab may move to another port than the one the tunnel command uses",
      why="When the port is taken Jupyter silently tries the next ones (port_retries defaults to 50), so the "
          "printed ssh -L command points at a port where nothing (or someone else's server) listens.",
      fix="Pass --ServerApp.port_retries=0 (Jupyter then fails loudly) and choose a free port in the script.",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
port=8888
echo "ssh -N -L 8888:$(hostname -s):$port login.cluster.example.edu"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port="$port"
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
port=8888
echo "ssh -N -L 8888:$(hostname -s):$port login.cluster.example.edu"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port="$port" --ServerApp.port_retries=0
""")
def _port_retries(ctx: Context) -> Iterator[Any]:
    for cmd, words in _jupyter_commands(ctx):
        settings = _jupyter_settings(words)
        retries = [value for _, trait, value in settings if trait in ("ServerApp.port_retries", "NotebookApp.port_retries")]
        if retries and retries[-1] != "0":
            yield cmd.line, f"port_retries={retries[-1]} lets Jupyter move to another port than the tunnel uses; set it to 0"
        elif not retries and any(trait in ("ServerApp.port", "NotebookApp.port") for _, trait, _ in settings):
            yield (cmd.line, "without --ServerApp.port_retries=0 Jupyter silently moves to another port when this one is "
                             "taken, and the tunnel points at the wrong port")


#: the remote end of an ssh tunnel: -L [ADDRESS:]PORT:HOST:HOSTPORT (HOSTPORT is the port on the compute node)
_TUNNEL_PART = r"(?:\$\([^)]*\)|[^\s:\"'])+"
_TUNNEL_FORWARD = re.compile(rf"\bssh\b.*?\s-L\s*(?:{_TUNNEL_PART}:)?{_TUNNEL_PART}:({_TUNNEL_PART}):([^\s\"']+)")
#: the addresses a server bound to them answers on the node itself only
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


@rule("HPC608", "jupyter-tunnel-misses-the-server", "error",
      summary="the ssh tunnel the job prints forwards to another port (or address) than the Jupyter server listens on",
      why="The printed ssh -L LOCAL:NODE:PORT command is what the user runs on their laptop; when PORT is not the "
          "server's --port (a random $port in the tunnel, a fixed --port=8888 on the server, or no --port at all: "
          "Jupyter's default is 8888), the browser reaches nothing, or another user's server on that node. The same when "
          "the tunnel goes to the node's name while the server listens on localhost, its default without --ip: ssh "
          "reports 'connect failed: Connection refused'.",
      fix="Use one variable for both: port=$(shuf -i 8000-9999 -n 1), then ssh -N -L $port:$node:$port in the message "
          "and jupyter lab --port=\"$port\" --ServerApp.port_retries=0.",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
port=$(shuf -i 8000-9999 -n 1)
echo "ssh -N -L $port:$(hostname -s):$port login.cluster.example.edu"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
port=$(shuf -i 8000-9999 -n 1)
echo "ssh -N -L $port:$(hostname -s):$port login.cluster.example.edu"
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port="$port" --ServerApp.port_retries=0
""")
def _tunnel_port_differs(ctx: Context) -> Iterator[Any]:
    servers = _jupyter_commands(ctx)
    if not servers:
        return
    tunnels = []
    for k, line in enumerate(ctx.parsed.lines, 1):
        if line.lstrip().startswith("#"):
            continue
        for m in _TUNNEL_FORWARD.finditer(line):
            port = re.sub(r"\$\{(\w+)\}", r"$\1", m.group(2))
            tunnels.append((k, port, ctx.parsed.resolve(port, k), m.group(1)))
    if not tunnels:
        return
    for cmd, words in servers:
        settings = _jupyter_settings(words)
        ips = [value.strip("'\"") for _, trait, value in settings if trait in ("ServerApp.ip", "NotebookApp.ip")]
        if (not ips or ips[-1] in _LOOPBACK) and all(host not in _LOOPBACK for *_, host in tunnels):
            line, _, _, host = tunnels[0]
            server = f"--ip={ips[-1]}" if ips else "no --ip (Jupyter's default is localhost)"
            yield (cmd.line, f"the tunnel printed on line {line} goes to {host} on the node's network, but the server "
                             f"listens on the node's loopback only ({server}): the connection is refused; start it "
                             "with --ip=\"$(hostname -s)\" (or tunnel to localhost through the node: ssh -J LOGIN -L "
                             "PORT:localhost:PORT NODE)")
            continue
        ports = [value for _, trait, value in settings if trait in ("ServerApp.port", "NotebookApp.port")]
        written = re.sub(r"\$\{(\w+)\}", r"$\1", ports[-1]) if ports else "8888"
        port = ctx.parsed.resolve(written, cmd.line)
        if any(p == port or raw == written for _, raw, p, _ in tunnels):
            continue
        line, raw, _, _ = tunnels[0]
        server = f"--port={written}" if ports else "no --port (Jupyter's default, 8888)"
        hint = f' (--port="{raw}")' if raw.startswith("$") else ""
        yield (cmd.line, f"the tunnel printed on line {line} forwards to port {raw} on the node, but the server listens "
                         f"on {server}: the browser reaches nothing there; use the same port in both{hint}")


@rule("HPC605", "xdg-runtime-dir-unusable", "info",
      summary="XDG_RUNTIME_DIR points at a directory the job cannot use (a problem for Jupyter before 2019)",
      why="/run/user/UID exists only for a login session (not on compute nodes under Slurm). Jupyter with jupyter_core "
          "older than 4.5 (June 2019) kept its runtime files there and failed with 'Permission denied: /run/user/…'; "
          "newer versions ignore XDG_RUNTIME_DIR (they use JUPYTER_RUNTIME_DIR or their data folder), but other "
          "programs of the job may still try the folder.",
      fix="Point it at a private directory made by the job: export XDG_RUNTIME_DIR=$(mktemp -d).",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
export XDG_RUNTIME_DIR=/run/user/$(id -u)
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
XDG_RUNTIME_DIR=$(mktemp -d)
export XDG_RUNTIME_DIR
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"  # the log will show the token
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _xdg(ctx: Context) -> Iterator[Any]:
    for cmd in ctx.parsed.lexed.code:
        for name, w in cmd.assignments:
            if name == "XDG_RUNTIME_DIR" and w.raw.strip("'\"").startswith("/run/user"):
                yield cmd.line, ("XDG_RUNTIME_DIR=/run/user/… exists only for login sessions; Jupyter before jupyter_core "
                                 "4.5 (2019) fails there, and other programs may: use a directory the job makes (mktemp -d)")


@rule("HPC606", "jupyter-token-on-command-line", "error",
      summary="Jupyter's token or password is given on its command line",
      why="Every user of the node can read a running program's command line (ps -eo args, /proc/PID/cmdline): a token "
          "there lets anyone on a shared node use the server, and so your account, files and allocation.",
      fix="Pass the token through the environment, which only you can read: export JUPYTER_TOKEN (made when the job "
          "runs) before the server starts, and leave --ServerApp.token out; keep a password in a config file only you "
          "can read (jupyter server password).",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0 --ServerApp.token="$token"
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
JUPYTER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
export JUPYTER_TOKEN
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _token_on_command_line(ctx: Context) -> Iterator[Any]:
    for cmd, words in _jupyter_commands(ctx):
        for key, trait, value in _jupyter_settings(words):
            if _SECRET_TRAIT.match(trait) and value not in ("", "''", '""'):
                what = "token" if trait.endswith(".token") else "password"
                yield (cmd.line, f"{key} puts the server's {what} on the command line, which ps shows to every user of "
                                 "the node; pass the token through JUPYTER_TOKEN instead (export it before the server "
                                 "starts)" + ("" if what == "token" else ", or keep the password in a config file only "
                                                                        "you can read"))
                break


#: what ``umask``/``chmod`` write when others may no longer read: an octal mode whose last digit has no read
#: bit (``077``, ``0600``), or symbolic clauses taking ``r`` from others (``go-rwx``, ``o-r``, ``a-r``, ``go=``)
_OCTAL_MODE = re.compile(r"^[0-7]{1,4}$")
_SYMBOLIC_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*)$")


def _others_cannot_read(mode: str, *, umask: bool = False) -> bool:
    """True when ``mode`` (a chmod mode, or with ``umask`` a umask) leaves others without read access."""
    if _OCTAL_MODE.match(mode):
        last = int(mode[-1])
        return bool(last & 4) if umask else not last & 4
    if umask and mode.startswith("-S"):
        return False
    for clause in mode.split(","):
        m = _SYMBOLIC_CLAUSE.match(clause)
        if not m:
            continue
        who, op, perms = m.group(1) or "a", m.group(2), m.group(3)
        if ("o" in who or "a" in who) and ((op == "-" and "r" in perms) or (op == "=" and "r" not in perms)):
            return True
    return False


def _stderr_file(cmd: Any) -> str | None:
    """Where a command's standard error goes when a redirection sends it to a file: the file's name,
    ``"/dev/null"``, or None when it stays on the job's log."""
    stdout = stderr = None
    for r in cmd.redirects:
        target = str(r.target.value)
        if r.op in ("&>", "&>>", ">&") and r.fd is None and not target.isdigit():
            stdout = stderr = target
        elif r.op in (">", ">>", ">|") and r.fd in (None, 1):
            stdout = target
        elif r.op in (">", ">>", ">|") and r.fd == 2:
            stderr = target
        elif r.op == ">&" and r.fd == 2 and target == "1":
            stderr = stdout
    return stderr


#: the line HPC607's fix writes: the files Slurm opened for the job's output made private (when they are files:
#: run by hand, the script's output is a terminal)
_PRIVATE_LOG = ('for hpcw_fd in 1 2; do if [[ -f /proc/$$/fd/$hpcw_fd ]]; then chmod go-rwx "/proc/$$/fd/$hpcw_fd"; '
                "fi; done  # the log will hold Jupyter's token")


@rule("HPC607", "jupyter-token-in-readable-log", "warning",
      summary="JupyterLab prints its token into a log that other users may read",
      why="Jupyter writes the URL with the token it made (…/lab?token=…) to its error output: in a batch job that is the "
          "job's log, which Slurm creates with the permissions of the shell you submitted from (umask 022: readable by "
          "everyone). Anyone who can open the folder it is in (a shared project or scratch folder) reads the token "
          "and can use the server as you. Jupyter prints no token it did not make, so a token passed in "
          "JUPYTER_TOKEN or a password set with jupyter server password never reaches the log.",
      fix="Make the log private before the server starts (chmod go-rwx \"/proc/$$/fd/1\" \"/proc/$$/fd/2\" changes the "
          "files Slurm opened for the job's output), or make the token in the job and export it as JUPYTER_TOKEN; "
          "a file the server's output is redirected to needs umask 077 first.",
      catalogue=(20,),
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
#SBATCH --output=/project/lab/jupyter-%j.log
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
#SBATCH --output=/project/lab/jupyter-%j.log
chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"
jupyter lab --no-browser --ip="$(hostname -s)" --port=8888 --ServerApp.port_retries=0
""")
def _token_in_readable_log(ctx: Context) -> Iterator[Any]:
    servers = _jupyter_commands(ctx)
    if not servers:
        return
    chmod_private = umask_private_from = log_file = None
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = [str(v) for v in cmd.argv]
        if any(name in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE") or name.endswith("ENV_JUPYTER_TOKEN")
               for name, _ in cmd.assignments) or any(w in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE")
                                                      for w in words[1:2] if words[0] == "export"):
            return  # a token Jupyter did not make: it prints "?token=..." instead
        if words[:1] == ["chmod"] and any(_others_cannot_read(w) for w in words[1:]):
            chmod_private = chmod_private or cmd.line
        if words[:1] == ["umask"] and len(words) > 1 and umask_private_from is None \
                and _others_cannot_read(words[-1], umask=True):
            umask_private_from = cmd.line
        if words == ["exec"] and _stderr_file(cmd) not in (None, "/dev/null"):
            log_file = (_stderr_file(cmd), umask_private_from is not None)
    for cmd, words in servers:
        if any(_SECRET_TRAIT.match(trait) for _, trait, _ in _jupyter_settings(words)):
            continue  # its own token or password (HPC603/HPC606 say what is wrong with that)
        target = _stderr_file(cmd)
        if target is None and isinstance(cmd, _Inner):
            target = _stderr_file(cmd.outer)   # bash -c '…' > log 2>&1
        if target == "/dev/null":
            continue
        if target is None and log_file is not None:
            target, private = log_file
            if not private:
                yield (cmd.line, f"the server writes the URL with its token into {target} (the script's exec "
                                 "redirection), created readable by others: run umask 077 before that exec")
            continue
        if target is not None:
            if umask_private_from is None or umask_private_from > cmd.line:
                yield (cmd.line, f"the server writes the URL with its token into {target}, which is created "
                                 "readable by others (umask 022); run umask 077 first, or export JUPYTER_TOKEN")
            continue
        job = ctx.job
        to_stdout = any(r.op == ">&" and r.fd == 2 and str(r.target.value) == "1" for r in cmd.redirects)
        if str((job.output if to_stdout else job.error or job.output) or "") == "/dev/null":
            continue  # #SBATCH --output=/dev/null (or --error): the job's log is nowhere to read
        if chmod_private is None:
            if isinstance(cmd, _Inner):
                yield (cmd.line, "the server in this bash -c script prints the URL with its token into the job's "
                                 "log, which Slurm creates readable by others unless you submitted with umask 077; "
                                 'make it private first: chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2"')
                return
            first = ctx.parsed.lines[cmd.line - 1]
            indent = first[:len(first) - len(first.lstrip())]
            fix = Fix("make the job's log private before the server starts", cmd.line, cmd.line,
                      text=f"{indent}{_PRIVATE_LOG}\n{first}")
            yield (cmd.line, "the server prints the URL with its token into the job's log, which Slurm creates "
                             "readable by others unless you submitted with umask 077; make it private first: "
                             'chmod go-rwx "/proc/$$/fd/1" "/proc/$$/fd/2" (or export a JUPYTER_TOKEN you make)', fix)
            return


# the rules about the environment that reaches the program live in their own module (it uses the helpers above)
from . import environment  # noqa: E402,F401  (importing it registers its rules)
