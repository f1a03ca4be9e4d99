"""Rules about steps side by side: ``srun … &``, GNU parallel and xargs, and what the batch shell does while they
run (wait, traps, monitors, node-local copies, the job's exit status), and tasks no step starts.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import re
from typing import Any, Iterator

from ..errors import ParseError
from ..parse.argv import parse_chain
from ..parse.lexer import compound_body, lex_script
from ..parse.script import c_script_in, launch_words, shell_script_text
from ..spec.slurm import node_range
from . import Context, Fix, rule
from .catalogue import (INSTANCE_SCHEME, NODE_LOCAL, RANK_LAUNCHERS, _CPUS_INHERITED_SINCE, _FUNCTION_DEF, _Inner, _batch_signal,
                        _script_env,
                        _code_in_order, _function_name, _functions, _indent, _is_monitor, _never_ends,
                        _simple_commands, _step_nodes, all_words, cached, heterogeneous, inherited_per_task, is_wait,
                        job_cpus, job_nodes, job_tasks, one_node_job, own_gpu_request, python_module_words, steps,
                        threads_per_core, trap_handler_commands, traps_for)
from .shell import PRINTERS, every_command, runs_unread_code, starts_steps


#: commands that end at once: after the last background step they give the steps no time to run
_QUICK_COMMANDS = frozenset({"echo", "printf", "true", ":", "date", "hostname", "cd", "export", "set", "unset", "mkdir",
                             "cp", "mv", "rm", "ln", "touch", "ls", "env", "module", "ml", "source", ".", "pwd", "exit",
                             "sync"})


#: the options of GNU parallel and xargs that say how many commands run at once (xargs runs one without them)
_SLOT_OPTIONS = {"parallel": ("-j", "--jobs", "-P", "--max-procs"), "xargs": ("-P", "--max-procs")}

#: GNU parallel's input separators: the words after them are its input, not the command
_PARALLEL_INPUTS = (":::", "::::", ":::+", "::::+")

#: before Slurm 20.11 steps shared the job's CPUs unless they asked for --exclusive ones
_WHOLE_STEPS_SINCE = (20, 11)


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
            if is_wait(cmd):
                pending[shell] = []
                continue
            found = _start_at(ctx, i)
            if found is None:
                continue
            how, run, several, detached = found
            after = _next_in_body(ctx, _pipeline_end(ctx, i))
            waited = after is not None and is_wait(code[after][0])
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


def _steps_at(ctx: Context) -> dict[int, list[Any]]:
    """The script's launch steps (with srun, or a container or launcher the batch shell runs itself) by where their
    command is in :func:`_code_in_order`."""
    def make() -> dict[int, list[Any]]:
        where = {(c.line, c.col): i for i, (c, _, _) in enumerate(_code_in_order(ctx))}
        out: dict[int, list[Any]] = {}
        for step in steps(ctx):
            at = where.get((step.command.line, step.command.col))
            if at is not None:
                out.setdefault(at, []).append(step)
        return out
    return cached(ctx, "steps_at", make)


def _srun_steps_at(ctx: Context) -> dict[int, list[Any]]:
    """The script's srun steps by where their command is in :func:`_code_in_order`."""
    def make() -> dict[int, list[Any]]:
        found = {i: [s for s in run if s.chain.srun is not None] for i, run in _steps_at(ctx).items()}
        return {i: run for i, run in found.items() if run}
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


def _overlaps(ctx: Context, step: Any) -> bool:
    """Whether the step shares the resources of the others (srun --overlap, or SLURM_OVERLAP exported)."""
    return any(str(e).partition("=")[0] == "--overlap" for e in step.chain.srun.extra) \
        or _exported(ctx, step, "SLURM_OVERLAP")


def _missing_share(ctx: Context, step: Any) -> list[str]:
    """What a step leaves to its default of the whole node: "CPUs" without --exact (or -c, --exclusive, which imply
    it), "GPUs" without a GPU request of its own in a job with GPUs. Nothing for an --overlap step (it shares)."""
    srun = step.chain.srun
    own = {str(e).partition("=")[0] for e in srun.extra}
    if _overlaps(ctx, step):
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
      summary="job steps started side by side (srun … &, GNU parallel, xargs -P) each take the whole node, or need "
              "more CPUs together than the job holds, so they run one after another",
      why="Since Slurm 20.11 a step without --exact is given every CPU of the job on its nodes, and a step that asks "
          "for no GPUs of its own gets every GPU the job has (srun(1), --exact and --gres). Steps do not share them "
          "(unless --overlap), so the second srun … & waits until the first ends ('step creation temporarily "
          "disabled'): four seeds started together take four times as long, and may hit the time limit. The same "
          "holds for a function that runs srun, or a ( … ) or { …; } group holding it, run with &, and for the srun "
          "that GNU parallel or xargs -P starts several times at once. Reported for a job its #SBATCH lines hold "
          "to one node; -c/--cpus-per-task and --exclusive imply --exact, and from Slurm 23.11 so does the job's "
          "own --cpus-per-task. Steps that do take only their share still cannot use more CPUs than the job holds: "
          "eight srun -n 1 … & in a job of one task and one CPU run one at a time. Steps placed one per node by name "
          "(-w \"${nodes[$i]}\", or in a loop over the job's nodes: a head and its workers) are left alone. A job "
          "of one GPU runs such steps one at a time even with --gpus=1 each: only srun --overlap lets them share "
          "it (Slurm 22.05 on the practice cluster).",
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
        if not b.side_by_side or where in reported or (_runs_until_stopped(b.step) and not b.several):
            continue  # a monitor or a server never ends, so it blocks the others for good: HPC522's
        if _one_step_per_node(ctx, b):
            continue  # one step per node, each placed by name (Ray's and Dask's templates): in a one-node job the
            #           loop over the other nodes runs no step at all
        missing = _missing_share(ctx, b.step)
        if not missing:
            room = _room_for_one_step(ctx, b.step)
            if room is not None:
                reported.add(where)
                held, needs = room
                yield (b.step.line, f"{_how_started(b)}, but the job holds {held} CPU{'s' if held > 1 else ''} and "
                                    f"each step needs {needs}, so the steps run one at a time (step creation "
                                    "temporarily disabled); ask the job for the CPUs of the steps that should run at "
                                    "once (#SBATCH --ntasks=N with -c for each)")
            continue
        reported.add(where)
        what = " and ".join(f"all the {m}" for m in missing)
        without = " and ".join({"CPUs": "--exact", "GPUs": "a GPU count of its own (--gpus=1)"}[m] for m in missing)
        amp = " &" if b.how == "srun … &" else ""
        if "GPUs" in missing and ctx.job.gpus_on_each_node == 1:
            # one GPU: steps with --gpus=1 each still take it in turn; only --overlap lets them share it
            yield (b.step.line, f"{_how_started(b)}, but the job has one GPU and each step takes {what} of its node, "
                                f"so the steps run one after another (step creation temporarily disabled), and "
                                f"would with --gpus=1 each too; to run them together on the one GPU start each with "
                                f"srun --overlap …{amp} (they share its memory), or ask the job for a GPU per step")
            continue
        gpu = " --gpus=1" if ctx.job.gpus_on_each_node else ""
        yield (b.step.line, f"{_how_started(b)}, but without {without} each step takes {what} of the job's node, so "
                            f"the steps run one after another (step creation temporarily disabled); give each its "
                            f"share, e.g. srun --exact -n 1 -c N{gpu} …{amp}")


#: #SBATCH options that give the job CPUs in other ways than tasks × --cpus-per-task (besides those job_cpus knows)
_OTHER_CPU_COUNTS = ("--exclusive", "--cpus-per-gpu", "--mincpus", "--overcommit", "-O")


def _room_for_one_step(ctx: Context, step: Any) -> tuple[int, int] | None:
    """``(CPUs the job holds, CPUs one step needs)`` when the job cannot run two such steps at once, counted in CPUs
    and in whole cores alike (of the threads per core the profile says for the job's partition, else two, which
    hold the most); None when it can, or when its CPUs cannot be told from its #SBATCH lines. A step with --exact
    (or -c) takes only its own CPUs, but steps cannot use more than the job holds: in a job of one task and one CPU
    they queue one behind the other."""
    srun = step.chain.srun
    held = job_cpus(ctx, nodes=1)  # HPC518 looks at jobs held to one node
    if held is None or held.by_node_cpus or _overlaps(ctx, step) \
            or any(d.applied and d.flag.partition("=")[0] in _OTHER_CPU_COUNTS for d in ctx.parsed.directives):
        return None
    tasks = held.tasks if held.named else 1  # without a task count: one task, of which a step may take a share
    per_task = held.cpus_per_task
    step_tasks = srun.ntasks if srun.ntasks is not None else 1
    step_cpus = srun.cpus_per_task if srun.cpus_per_task is not None else per_task
    if not all(isinstance(v, int) and v > 0 for v in (tasks, per_task, step_tasks, step_cpus)):
        return None
    held, needs = tasks * per_task, step_tasks * step_cpus
    # Slurm hands out whole cores, to the job and to each step: two steps must not fit in the cores either (cores
    # of the profile's threads per core; where it does not say them, two)
    threads = threads_per_core(ctx) or 2
    cores_held, cores_needed = tasks * -(-per_task // threads), step_tasks * -(-step_cpus // threads)
    return (held, needs) if held < 2 * needs and cores_held < 2 * cores_needed else None


#: what a loop over the job's nodes names in its head (for node in $(scontrol show hostnames …), i < SLURM_NNODES)
_OVER_THE_NODES = re.compile(r"hostnames|NODELIST|NNODES|NUM_NODES")


def _one_step_per_node(ctx: Context, b: BackgroundStep) -> bool:
    """Whether srun places the step on a node it names (-w/--nodelist) as one of a set of steps, one per node (a
    cluster's head and workers): the node is picked from a list by index (``${nodes[$i]}``), or the loop that starts
    the step goes over the job's nodes. Steps on different nodes take nothing from each other; -w naming the same
    node for every step (a loop over seeds) still queues them."""
    written = _node_option(ctx, b.step, "-w", "--nodelist")
    if not written:
        return False
    line = b.step.line
    # where the node comes from (-w "$head" with head=${nodes[0]}): an element of a list, or the job's nodes
    if any("[" in text or _OVER_THE_NODES.search(text) for text in written):
        return True
    code = _code_in_order(ctx)
    parent = code[b.index][2] if b.in_loop else -1
    while parent >= 0:
        head = code[parent][0].text.split("\n", 1)[0]
        # the head with the values of the names it reads (i <= worker_num, worker_num=$((SLURM_JOB_NUM_NODES - 1)))
        values = [v.value for name in re.findall(r"[A-Za-z_]\w*", head)
                  for v in [ctx.parsed.variable(name, line)] if v is not None]
        if _OVER_THE_NODES.search(" ".join([head, *map(str, values)])):
            return True
        parent = code[parent][2]
    return False


def _node_option(ctx: Context, step: Any, short: str, long: str) -> list[str]:
    """The values of the step's srun option ``short``/``long`` (-w/--nodelist, -x/--exclude) as the script writes
    them, its variables replaced by the text they are given (-w "$head" with head=${nodes[0]} gives
    ``${nodes[0]}``)."""
    srun = step.chain.srun
    extra = [str(w) for w in (srun.extra if srun is not None and isinstance(srun.extra, tuple) else ())]
    values = [extra[k + 1] if w in (short, long) and k + 1 < len(extra) else w.partition("=")[2] or w[2:]
              for k, w in enumerate(extra) if w in (short, long) or w.startswith((short, long + "="))]
    return [ctx.parsed.resolve_written(v, step.line) for v in values]


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


#: programs that serve until they are stopped, with the subcommands that make them serve (None: any)
_SERVERS: dict[str, tuple[str, ...] | None] = {
    "vllm": ("serve",), "ollama": ("serve",), "jupyter": ("lab", "notebook", "server"), "jupyter-lab": None,
    "jupyter-notebook": None, "jupyter-server": None, "tensorboard": None, "mlflow": ("server", "ui"),
    "dask": ("scheduler", "worker"), "dask-scheduler": None, "dask-worker": None, "text-generation-launcher": None}

#: Python modules that serve until they are stopped, run as python -m MODULE
_SERVER_MODULES = frozenset({"vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server",
                             "sglang.launch_server", "jupyterlab", "notebook", "tensorboard.main"})

#: the subcommands of the Jupyter servers (the word right after jupyter lab, notebook or server), which list, stop or
#: set up servers, or build JupyterLab, and exit: those of jupyter_server's ServerApp, notebook's NotebookApp and
#: JupyterLab's LabApp
_JUPYTER_SUBCOMMANDS = frozenset({"list", "stop", "password", "extension", "build", "clean", "path", "paths",
                                  "workspace", "workspaces", "licenses"})

#: options that make a server print something and exit instead of serving, besides --help and --version (which
#: every one of them reads, or refuses as unknown, and exits): -h for help (but mlflow server's -h is --host),
#: Jupyter's fuller help and config file, TensorBoard's version, full help and --inspect of event files (which
#: prints their digests), the text-generation-launcher's -V
_PRINTING_OPTIONS = {"jupyter": ("-h", "--help-all", "--generate-config"),
                     "tensorboard": ("-h", "--helpfull", "--version_tb", "--inspect"),
                     "text-generation-launcher": ("-h", "-V")}


def _server_names() -> str:
    """The servers :func:`_server` recognises, as HPC522's, HPC538's and HPC539's texts name them (one list for all),
    and what of theirs only prints and exits."""
    names = ["ray start --block"]
    names += [f"{name} {'/'.join(subcommands)}" if subcommands else name for name, subcommands in _SERVERS.items()]
    names += [f"python -m {module}" for module in sorted(_SERVER_MODULES)]
    return (", ".join(names) + "; not with --help or --version, nor jupyter server list or stop, jupyter lab build "
            "and Jupyter's other subcommands, which print or do something and exit")


@rule("HPC522", "monitor-step-blocks-the-job", "error",
      summary="a step that never ends by itself, started in the background (srun nvidia-smi dmon &, srun ray start "
              "--block &, srun vllm serve &), holds the job's resources for good, so a later srun step on its node "
              "never starts",
      why="A step without --overlap takes every CPU of the job on its node (without --exact) and every GPU the job "
          "has (when it asks for none itself), and steps do not share them. A monitor (nvidia-smi dmon, nvidia-smi "
          f"-l 30, watch, tail -f) or a server ({_server_names()}) never ends, so a later srun step on the same node "
          "waits ('step creation temporarily disabled') until the job's time runs out. Not reported when either "
          "step has --overlap (srun(1): such a step shares with all others), when the later step is placed on other "
          "nodes (by name with -w or -x, or with -r/--relative on other nodes of the allocation), when the step "
          "takes only its own CPUs and GPUs, when no srun step follows (a driver in the batch shell), when the "
          "later step is in another branch of the same if or case, when the server is told to stop by itself "
          "(dask scheduler --idle-timeout, dask worker --lifetime, jupyter lab "
          "--ServerApp.shutdown_no_activity_timeout=N) or held to a time (srun --time, timeout), or when the script "
          "has ended the step before the later one, itself or in a function it calls there (cleanup() { kill "
          "\"$PID\"; }; cleanup; a trap cleanup EXIT runs only at the script's end): wait for it, kill $PID "
          "(PID=$! after srun … &; also kill $(cat FILE) after echo $! > FILE, kill %1, kill $(jobs -p) or pkill -P "
          "$$, the batch shell's children; pkill -f PATTERN when srun's command line matches the pattern, as pkill "
          "signals every matching process on the node: pkill -f 'vllm serve'; killall srun) with "
          "TERM, HUP, QUIT or KILL, which srun turns into SIGKILL for its tasks (kill -INT only makes srun print "
          "their state, unless srun has --quit-on-interrupt), kill 0 or kill -- -$$ (the batch script leads a "
          "process group of its own, which holds srun … &), or scancel $SLURM_JOB_ID.N of its step; a server stopped by "
          "its own means when it runs on the batch shell's node (its srun held there, or a job of one node): ray stop "
          "for ray start --block (ray stop ends the Ray processes of the node it runs on, no other, and ray start "
          "--block exits once they are gone), apptainer or singularity instance stop NAME (or --all) for a server run "
          "with exec instance://NAME (an instance has a PID namespace of its own, which exec joins, and all of it "
          "ends with the instance). A Ray worker on another node (srun -w NODE ray start --address HEAD --block &) "
          "ends too when the batch shell's ray stop ends the cluster's head (started on the batch shell's node): "
          "without the head's GCS its raylet exits after RAY_gcs_rpc_server_reconnect_timeout_s (60 s by default), "
          "so a later step there waits about a minute, not to the job's end; a worker whose head runs elsewhere "
          "keeps running.",
      fix="Start the monitor or server with srun --overlap (it then shares the resources), or give the later step "
          "--overlap; stop a server the later step does not need first (kill \"$PID\"; wait \"$PID\"); a monitor "
          "can also run without srun: nvidia-smi dmon … & in the batch shell watches the first node.",
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
def _step_never_ends_blocks(ctx: Context) -> Iterator[Any]:
    if heterogeneous(ctx):
        return
    later = [s for s in steps(ctx) if s.chain.srun is not None]
    for b in background_steps(ctx):
        step = b.step
        what = _runs_until_stopped(step)
        if b.several or what is None or _held_to_a_time(step):
            continue  # (a step with a time of its own ends then: a later step waits that long, not to the job's end)
        missing = _missing_share(ctx, step)
        blocked = next((s for s in later if s.line > step.line and s is not step and not _overlaps(ctx, s)
                        and not _on_other_nodes(ctx, step, s) and not _gone_before(ctx, b, s)), None)
        if not missing or blocked is None:
            continue
        fix = None
        words = step.command.words
        if words and str(words[0].value) == "srun" and words[0].line == step.line and not b.in_loop:
            text = ctx.parsed.lines[step.line - 1]
            at = words[0].col - 1 + len(words[0].raw)
            fix = Fix("run the step with srun --overlap", step.line, step.line,
                      text=text[:at] + " --overlap" + text[at:])
        yield (step.line, f"srun {what} … never ends by itself and holds the job's {' and '.join(missing)} on its "
                          f"node (a step without --overlap takes them all), so the srun on line {blocked.line} waits "
                          "for it until the job's time runs out; start this step with srun --overlap (or the later "
                          "one)", fix)


def _gone_before(ctx: Context, b: BackgroundStep, later: Any) -> bool:
    """Whether the background step ``b`` no longer runs when the ``later`` step starts: the two are in different
    branches of one if or case, or the batch shell ends ``b`` on the way from one to the other."""
    at = _step_index(ctx, later)
    return at is not None and (_never_both(ctx, b.index, at) or _ended_between(ctx, b, at))


def _step_index(ctx: Context, step: Any) -> int | None:
    """Where the command of an srun step is in :func:`_code_in_order`."""
    return next((i for i, run in _srun_steps_at(ctx).items() if any(s is step for s in run)), None)


def _ancestors(ctx: Context, i: int) -> list[int]:
    """The command at ``i`` and the compounds holding it, innermost first, ending in -1 (the script itself)."""
    code, out = _code_in_order(ctx), [i]
    while out[-1] >= 0:
        out.append(code[out[-1]][2])
    return out


#: the keywords that start the parts of an if (the condition before the first then runs in any case)
_IF_PARTS = re.compile(r"(?<![^\s;&|()])(then|elif|else)(?![^\s;&|()])")
#: the end of a case item (;& and ;;& go on into the next one)
_CASE_ITEM_END = re.compile(r";;(?!&)")


def _never_both(ctx: Context, i: int, j: int) -> bool:
    """Whether the commands at ``i`` and ``j`` (``i`` first) are in different branches of one ``if`` (a then or
    else part, and any part after it) or of one ``case`` (two items), so that a run reaches at most one of them."""
    up_i, up_j = _ancestors(ctx, i), _ancestors(ctx, j)
    common = next(a for a in up_i if a in up_j)
    if common < 0 or common in (i, j):
        return False
    head = _code_in_order(ctx)[common][0]
    keyword = str(head.words[0].value) if head.words else ""
    if keyword not in ("if", "case"):
        return False
    syntax = _own_syntax(ctx, common)
    first, second = (_start_in(ctx, up[up.index(common) - 1]) for up in (up_i, up_j))
    if keyword == "case":
        return bool(_CASE_ITEM_END.search(syntax, first, second))
    parts = [m.group(1) for m in _IF_PARTS.finditer(syntax, 0, first)]
    return bool(parts) and parts[-1] in ("then", "else") and bool(_IF_PARTS.search(syntax, first, second))


def _start_in(ctx: Context, k: int) -> int:
    """Where the command at ``k`` starts, counted from the start of the compound that holds it (its text begins
    with its holder's syntax blanked out)."""
    code = _code_in_order(ctx)
    cmd, holder = code[k][0], code[code[k][2]][0]
    return cmd.offset + len(cmd.text) - len(cmd.text.lstrip()) - holder.offset


def _own_syntax(ctx: Context, p: int) -> str:
    """The text of the compound at ``p`` with only its own syntax left (if, then, else, fi; case patterns and ;;),
    the commands of its body and comments blanked, at the same offsets."""
    code, source = _code_in_order(ctx), ctx.parsed.source
    holder = code[p][0]
    chars = list(source[holder.offset:holder.offset + len(holder.text)])
    for cmd, _, parent in code:
        if parent != p:
            continue
        for n, ch in enumerate(cmd.text, start=cmd.offset - holder.offset):
            if 0 <= n < len(chars) and chars[n] == ch:
                chars[n] = " "
    return re.sub(r"(?:^|(?<=\s))#[^\n]*", lambda m: " " * len(m.group(0)), "".join(chars))


#: the signals srun ends its step on (srun_job.c: TERM, HUP and QUIT become SIGKILL for the tasks; a KILLed srun
#: leaves its shepherd process to cancel the step). One INT only makes srun print the tasks' state, and others
#: (USR1 …) go on to the tasks, which may catch them.
_ENDS_THE_STEP = frozenset({"TERM", "15", "HUP", "1", "QUIT", "3", "KILL", "9"})

#: a word that holds the PIDs of the shell's background jobs: $(jobs -p), `jobs -pr`
_JOBS_P = r"\s*jobs\s+-[a-z]*p[a-z]*(?:\s+-[a-z]+)*\s*"
_JOBS_PIDS = re.compile(rf"\$\({_JOBS_P}\)|`{_JOBS_P}`")

#: the step of the job scancel names: $SLURM_JOB_ID.2, ${SLURM_JOBID}.$STEP
_OWN_STEP = re.compile(r"\$\{?SLURM_JOB_?ID\}?\.(\d+)?\S*")


def _ended_between(ctx: Context, b: BackgroundStep, at: int) -> bool:
    """Whether the batch shell surely ends the background step ``b`` before it reaches the command at ``at``: on
    every way there it runs a command that does (:func:`_ends_the_step`), or calls a function of the script that
    does (cleanup() { kill "$PID"; }; cleanup). A trap (trap cleanup EXIT) runs only when the script ends."""
    code = _code_in_order(ctx)
    if _shell_of(ctx, b.index) >= 0:
        return False  # a wait or kill of the batch shell does not reach what a ( … ) & group starts
    pids = _saved_pids(ctx, b)
    holders = set(_ancestors(ctx, b.index)[1:])
    # only a command every way from the step to ``at`` runs
    return any(_ends_the_step(ctx, b, k, code[k][0], pids, frozenset()) for k in range(b.index + 1, at)
               if code[k][2] in holders and not _joined_to_previous(code, k))


def _saved_pids(ctx: Context, b: BackgroundStep) -> dict[str, int]:
    """The variables that hold the PID of what ``b`` starts (:func:`_pid_names`). $! of srun … | tee log & is
    tee's PID, so a pipeline has none (kill %1 and a plain wait reach every command of it)."""
    return _pid_names(ctx, b.index) if _pipeline_end(ctx, b.index) == b.index else {}


def _ends_the_step(ctx: Context, b: BackgroundStep, k: int, cmd: Any, pids: dict[str, int],
                   called: frozenset[str]) -> bool:
    """Whether ``cmd``, which the batch shell runs at ``k`` (the command there, or one of the function it calls
    there), ends the background step ``b``: it waits for it (wait, wait $PID), kills its srun (kill $PID with PID=$!
    after it, kill $(cat FILE) with echo $! > FILE, kill %N, kill $(jobs -p), pkill -P $$, pkill -f PATTERN,
    killall srun; see :data:`_ENDS_THE_STEP`), kills the batch shell's process group, which srun … & belongs to
    (kill 0, kill -- -$$), or cancels its step (scancel $SLURM_JOB_ID.N).
    ``b`` may also be a program the batch shell runs itself with & (``vllm serve … &``, ``apptainer exec … &``:
    no srun, see :func:`_endless_in_background`), which a kill reaches directly and no scancel of a step does.
    ``called`` holds the functions on the way, so that one calling itself is read once."""
    if cmd.kind != "simple" or not cmd.words:
        return False
    name = str(cmd.words[0].value)
    targets = [re.sub("[\"']", "", w.raw) for w in cmd.words[1:]]
    srun = b.step.chain.srun if b.step is not None else None
    # a wait for $! of a function or a ( … ) group waits for its srun, but a kill of that PID or of the shell's
    # children reaches srun only when the shell started srun itself
    plain = b.how == "srun … &" or srun is None
    # a program bash runs with & (no job control) ignores INT and QUIT (bash(1), SIGNALS); srun handles both
    interrupt = srun is not None and any(str(e) == "--quit-on-interrupt" for e in srun.extra)
    ignored = () if srun is not None else ("QUIT", "3")
    if name == "wait":
        return not targets or any(_names_the_step(ctx, b, k, t, pids) for t in targets)
    if name == "kill":
        signalled = _kill_targets(targets, interrupt, ignored)
        return any(_SHELLS_GROUP.fullmatch(t) for t in signalled) \
            or (plain and any(_names_the_step(ctx, b, k, t, pids) for t in signalled))
    if name == "pkill":
        return _pkill_ends(ctx, b, k, targets, plain, interrupt, ignored)
    if name == "killall":
        return _killall_ends(b, targets, interrupt, ignored)
    if name == "scancel":
        return srun is not None and _cancels_step(ctx, b, targets)
    if _stops_the_server(ctx, b, cmd, _code_in_order(ctx)[k][0].line):
        return True
    if name in _functions(ctx) and _functions(ctx)[name] < k and name not in called:  # defined by then
        return any(_ends_the_step(ctx, b, k, body, pids, called | {name}) for body in _surely_run_in(ctx, name))
    return False


#: the options of apptainer (singularity) instance stop that take a value (-s SIGNAL, -t SECONDS, -u USER)
_INSTANCE_STOP_VALUES = frozenset({"-s", "--signal", "-t", "--timeout", "-u", "--user"})

#: a node name that is the batch shell's own: the first of the job's nodes (${nodes[0]}, as Ray's template picks its
#: head), $(hostname), $SLURMD_NODENAME
_BATCH_NODE = re.compile(r".*\[0\]\}?|\$\(\s*hostname(?:\s+-s)?\s*\)|`\s*hostname(?:\s+-s)?\s*`|\$\{?SLURMD_NODENAME\}?")


def _stops_the_server(ctx: Context, b: BackgroundStep, cmd: Any, line: int) -> bool:
    """Whether ``cmd``, which the batch shell runs itself at ``line`` (there, or in a function it calls there), stops
    what ``b`` serves by the server's own means: ``ray stop`` stops the Ray processes of its node, and ``ray start
    --block`` then exits (it watches them); ``apptainer instance stop NAME`` (``singularity`` too, ``--all``/``-a``, or
    a pattern NAME matches) ends a program run with ``exec``/``run instance://NAME``, since an instance has a PID
    namespace of its own, which exec joins, and the kernel ends every process in it once the instance's first one is
    gone. Both act on the node they run on, so they end what runs on the batch shell's node
    (:func:`_on_the_batch_node`). A Ray worker on another node (``ray start --address … --block``) ends too when the
    ray stop stops the cluster's head there (:func:`_ray_head_on_the_batch_node`): its raylet exits once it has not
    reached the head's GCS for RAY_gcs_rpc_server_reconnect_timeout_s (60 s by default, Ray's fault tolerance
    docs), and ray start --block with it; a later step on its node waits that long, not to the job's end."""
    if cmd.kind != "simple" or not cmd.words:
        return False
    words = launch_words([str(w.value) for w in cmd.words])
    name = words[0].rsplit("/", 1)[-1] if words else ""
    if name in ("apptainer", "singularity") and (words[1:3] == ["instance", "stop"] or words[1:2] == ["instance.stop"]):
        return _on_the_batch_node(ctx, b) \
            and _instance_stop_reaches(ctx, b, words[3:] if words[1] == "instance" else words[2:], cmd.line)
    if name not in ("ray", "apptainer", "singularity") or "stop" not in words:
        return False  # (srun ray stop: a step of its own runs on the step's nodes, and may wait for the server's CPUs)
    try:
        chain = parse_chain(words, source_line=cmd.line) if name != "ray" else None
    except ParseError:
        return False
    program = launch_words([str(w) for w in chain.program]) if chain is not None else words
    if [w.rsplit("/", 1)[-1] if k == 0 else w for k, w in enumerate(program[:2])] != ["ray", "stop"]:
        return False
    served = _runs_until_stopped(b.step) if b.step is not None else _serves([str(w.value) for w in b.start.words])
    if served != "ray start --block":
        return False
    return _on_the_batch_node(ctx, b) or (not _RAY_HEAD.search(" ".join(_started_words(b)))
                                          and _ray_head_on_the_batch_node(ctx, line))


#: ray start of a cluster's head (ray start --head …), in a command's words joined by spaces
_RAY_HEAD = re.compile(r"\bray\s+start\b[^;&|\n]*\s--head\b")


def _started_words(b: BackgroundStep) -> list[str]:
    """The words of what ``b`` runs: its step's program, or the command the batch shell runs with & (no step)."""
    if b.step is not None:
        return [str(w) for w in b.step.chain.program]
    return [str(w.value) for w in b.start.words]


def _ray_head_on_the_batch_node(ctx: Context, before: int) -> bool:
    """Whether the script starts a Ray cluster's head on the batch shell's node before line ``before``: ``ray start
    --head`` that the batch shell runs itself (in the foreground, whose processes stay behind, or with --block and
    &), or srun … ray start --head --block & held to the batch shell's node (:func:`_on_the_batch_node`). A ray stop
    in the batch shell then stops the head's GCS, which every worker of the cluster needs."""
    for b in background_steps(ctx):
        if b.start.line < before and b.step is not None and b.step.chain.srun is not None \
                and _runs_until_stopped(b.step) == "ray start --block" \
                and _RAY_HEAD.search(" ".join(_started_words(b))) and _on_the_batch_node(ctx, b):
            return True
    code, stepped = _code_in_order(ctx), _steps_at(ctx)
    for k, (cmd, _, parent) in enumerate(code):
        if cmd.kind != "simple" or cmd.line >= before or _in_function(code, parent):
            continue
        if any(s.chain.srun is not None for s in stepped.get(k, ())):
            continue  # an srun step: above when it serves in the background; in the foreground it ends with ray start
        words = launch_words([str(w.value) for w in cmd.words])
        if words and words[0].rsplit("/", 1)[-1] not in ("echo", "printf") and _RAY_HEAD.search(" ".join(words)):
            return True  # (echo "ray start --head …" only says so)
    return False


def _instance_stop_reaches(ctx: Context, b: BackgroundStep, args: list[str], line: int) -> bool:
    """Whether ``instance stop`` with these arguments stops the instance ``b``'s program runs in (``exec
    instance://NAME``): --all (-a) stops every instance of the user, a NAME (a pattern: ``llm*``) the ones it
    matches."""
    container = b.step.chain.container if b.step is not None else None
    image = str(getattr(container, "image", "") or "")
    if not image.startswith(INSTANCE_SCHEME):
        return False
    running = ctx.parsed.resolve(image[len(INSTANCE_SCHEME):], b.step.line)
    k, names = 0, []
    while k < len(args):
        word = args[k]
        option = word.partition("=")[0]
        if option in ("-a", "--all") and word.partition("=")[2].lower() not in ("false", "0"):
            return True
        if option in _INSTANCE_STOP_VALUES and "=" not in word:
            k += 2
            continue
        if not word.startswith("-"):
            names.append(ctx.parsed.resolve(word, line))
        k += 1
    return any(n == running or ("$" not in n and "$" not in running and fnmatch.fnmatchcase(running, n))
               for n in names)


def _on_the_batch_node(ctx: Context, b: BackgroundStep) -> bool:
    """Whether what ``b`` starts runs on the node of the batch shell: a program the batch shell runs itself, an srun
    step of a job of one node, or one held to a node that is the batch shell's (-w "$head_node" with
    head_node=${nodes[0]}, -w "$(hostname)")."""
    srun = b.step.chain.srun if b.step is not None else None
    if srun is None or one_node_job(ctx):
        return True
    named = _node_option(ctx, b.step, "-w", "--nodelist")
    return len(named) == 1 and _step_nodes(ctx, b.step) == 1 and bool(_BATCH_NODE.fullmatch(named[0].strip("\"'")))


def _surely_run_in(ctx: Context, name: str) -> list[Any]:
    """The commands every call of the script's function ``name`` runs: those of its { …; } body's own level, not
    after && or || (a ( … ) body is a subshell, whose wait waits for none of the batch shell's steps)."""
    code, ends = _code_in_order(ctx), _subtree_ends(ctx)
    at = _functions(ctx)[name]
    body = next((j for j in range(at + 1, ends[at]) if code[j][2] == at), None)
    if body is None or not code[body][0].text.lstrip().startswith("{"):
        return []
    return [code[j][0] for j in range(body + 1, ends[body]) if code[j][2] == body and not _joined_to_previous(code, j)]


def _until_next_start(ctx: Context, start: int) -> Iterator[int]:
    """The commands after the one at ``start`` in its body, up to the next one the batch shell runs in the
    background (from there on, $! is the PID of that one)."""
    k = _next_in_body(ctx, start)
    while k is not None and not _backgrounded(ctx, k):
        yield k
        k = _next_in_body(ctx, k)


#: a word that is $!, quoted or not
_LAST_PID = re.compile(r"\"?\$(?:!|\{!\})\"?")


def _pid_names(ctx: Context, start: int) -> dict[str, int]:
    """The variables the batch shell saves the PID of the command at ``start`` in (PID=$!, pids+=($!)) before it
    starts another in the background, with where each is set."""
    code = _code_in_order(ctx)
    return {name: k for k in _until_next_start(ctx, start) for name, word in code[k][0].assignments
            if re.fullmatch(rf"\(?{_LAST_PID.pattern}\)?", word.raw)}


#: a word that reads a file: $(cat FILE), $(< FILE), `cat FILE`
_READS_FILE = re.compile(r"\$\(\s*(?:cat\s+|<\s*)([^\s()`]+)\s*\)|`\s*cat\s+([^\s`]+)\s*`")

#: redirections that write a file anew (>>, which appends, keeps what is in it)
_OVERWRITES = (">", ">|", "&>")


def _holds_the_pid(ctx: Context, b: BackgroundStep, k: int, file: str) -> bool:
    """Whether ``file`` holds the PID of what ``b`` starts when the command at ``k`` reads it: right after starting
    it, the batch shell wrote $! there (echo $! > server.pid, printf '%s' "$!" >> pids), and nothing wrote the file
    anew since. As with a variable, a pipeline's $! is its last command's PID (:func:`_saved_pids`)."""
    if _pipeline_end(ctx, b.index) != b.index:
        return False
    code = _code_in_order(ctx)
    wanted = ctx.parsed.resolve(file, code[k][0].line)

    def writes(j: int, ops: tuple[str, ...]) -> bool:
        cmd = code[j][0]
        return any(r.op in ops and ctx.parsed.resolve(str(r.target.value), cmd.line) == wanted for r in cmd.redirects)

    def saves_the_pid(j: int) -> bool:  # echo $! > FILE, printf '%s\n' "$!" >> FILE
        words = code[j][0].words
        return code[j][0].kind == "simple" and bool(words) and str(words[0].value) in ("echo", "printf") \
            and any(_LAST_PID.fullmatch(w.raw) for w in words[1:]) and writes(j, (*_OVERWRITES, ">>"))
    written = [j for j in _until_next_start(ctx, b.index) if j < k and saves_the_pid(j)]
    return bool(written) and not any(writes(j, _OVERWRITES) for j in range(written[-1] + 1, k))


def _names_the_step(ctx: Context, b: BackgroundStep, k: int, target: str, pids: dict[str, int]) -> bool:
    """Whether a wait or kill at ``k`` given ``target`` reaches the srun of ``b``: a variable holding its PID (not
    set to anything else since), a file holding it read with $(cat FILE) (:func:`_holds_the_pid`), $(jobs -p), %%
    or %+ with no job started since, or %N with N its job number."""
    read = _READS_FILE.fullmatch(target)
    if read:
        return _holds_the_pid(ctx, b, k, read.group(1) or read.group(2))
    m = re.fullmatch(r"\$\{?([A-Za-z_]\w*)(?:\[[@*]\])?\}?", target)
    if m:
        name = m.group(1)
        return name in pids and not any(n == name and not re.match(rf"\s*{name}\+=", c.text)
                                        for c, _, _ in _code_in_order(ctx)[pids[name] + 1:k] for n, _ in c.assignments)
    if _JOBS_PIDS.fullmatch(target):
        return True
    started = [j for j in range(b.index + 1, k) if _started_job(ctx, j)]
    if target in ("%%", "%+"):
        return not started
    number = _job_number(ctx, b.index)
    return number is not None and target == f"%{number}"


def _started_job(ctx: Context, j: int) -> bool:
    """Whether the command at ``j`` ends a pipeline the batch shell runs in the background (a job of its own)."""
    return _code_in_order(ctx)[j][0].joined_by == "&" and _shell_of(ctx, j) < 0


def _job_number(ctx: Context, i: int) -> int | None:
    """The batch shell's job number of what the command at ``i`` starts (kill %N): one more than the jobs started
    since the last wait; None when a loop starts some of them."""
    code = _code_in_order(ctx)
    last_wait = max((j for j in range(i) if is_wait(code[j][0]) and _shell_of(ctx, j) < 0), default=-1)
    earlier = [j for j in range(last_wait + 1, i) if _started_job(ctx, j)]
    return None if any(code[j][1] for j in [*earlier, i]) else len(earlier) + 1


def _kill_targets(words: list[str], interrupt_ends: bool = False, ignored: tuple[str, ...] = ()) -> list[str]:
    """What a kill with these arguments signals, when the signal ends an srun step (:data:`_ENDS_THE_STEP`, and INT
    as well for an srun with --quit-on-interrupt; TERM when none is given) and is not one of the ``ignored``;
    nothing for another signal, kill -0 (a test) or kill -l (a list). Like bash, only the first -SIGNAL is one: a
    -N after it is a process group."""
    signal, k, seen = "TERM", 0, False
    while k < len(words) and words[k].startswith("-") and len(words[k]) > 1:
        word = words[k]
        if word == "--":
            k += 1
            break
        if word in ("-l", "-L"):
            return []
        if word in ("-s", "-n"):
            signal, k, seen = (words[k + 1] if k + 1 < len(words) else ""), k + 2, True
        elif re.fullmatch(r"-s[A-Za-z]\w*|-n\d+", word):  # -sKILL, -n9
            signal, k, seen = word[2:], k + 1, True
        elif not seen:
            signal, k, seen = word[1:], k + 1, True
        else:
            break
    return words[k:] if _ends_a_step(signal, interrupt_ends, ignored) else []


def _ends_a_step(signal: str, interrupt_ends: bool, ignored: tuple[str, ...] = ()) -> bool:
    """Whether srun ends its step when it gets ``signal`` (TERM, SIGTERM, 15: :data:`_ENDS_THE_STEP`), or an INT
    that ``interrupt_ends`` (srun --quit-on-interrupt); never for a signal the program has ``ignored``."""
    name = signal.upper().removeprefix("SIG")
    return name not in ignored and (name in _ENDS_THE_STEP or (interrupt_ends and name in ("INT", "2")))


#: the batch shell's process group (kill 0, kill -- -$$): Slurm makes the batch script the leader of a group of its
#: own, and bash without job control starts what it runs with & in that same group, srun … & included
_SHELLS_GROUP = re.compile(r"0|-\$(?:\$|\{\$\})")

#: pkill's options that take a value and pick processes in another way than by their name (each may leave srun out;
#: -u or -U with the job's own user does not: see :data:`_OWN_USER`)
_PKILL_SELECTORS = frozenset({"-g", "--pgroup", "-G", "--group", "-s", "--session", "-t", "--terminal", "-u",
                              "--euid", "-U", "--uid", "--ns", "--nslist", "--cgroup", "-r", "--runstates"})

#: pkill's options that change neither which processes it picks nor the signal (-f, -x and -i change how the pattern
#: is matched: see :func:`_pkill_ends`)
_PKILL_FLAGS = frozenset({"-f", "--full", "-x", "--exact", "-i", "--ignore-case", "-e", "--echo", "-c", "--count",
                          "-A", "--ignore-ancestors"})

#: the options of pkill and killall that pick processes by their user
_USER_OPTIONS = frozenset({"-u", "--euid", "-U", "--uid", "--user"})

#: the job's own user, as a script names it ($USER, $(whoami), $(id -u)): all of srun's processes are its
_OWN_USER = re.compile(r"\$\{?(?:USER|LOGNAME|UID|EUID)\}?|\$\((?:whoami|id\s+-u|id\s+-un|id\s+-nu)\)")

#: a signal given as an option of its own (-9, -KILL, -SIGTERM), which pkill and killall read among their options
_SIGNAL_OPTION = re.compile(r"-(?:\d+|[A-Z][A-Z0-9+-]*)")


def _process_words(b: BackgroundStep) -> list[str]:
    """The command line of the process the batch shell started for ``b`` on its node, as the script writes it: its
    srun (also one a function or a ( … ) group runs), or the program it runs itself with &."""
    srun = b.step is not None and b.step.chain.srun is not None
    return [str(w.value) for w in (b.step.command.words if srun else b.start.words)]


def _process_name(words: list[str]) -> str:
    """The name of the process that runs ``words`` (what pkill and killall match without -f): its program's file
    name, past wrappers that exec it (nohup, env)."""
    return (launch_words(words) or [""])[0].rsplit("/", 1)[-1]


def _pkill_ends(ctx: Context, b: BackgroundStep, k: int, words: list[str], plain: bool, interrupt_ends: bool,
                ignored: tuple[str, ...] = ()) -> bool:
    """Whether pkill at ``k`` with these arguments ends the srun the batch shell started for ``b`` (or the program
    it runs itself with &), with a signal that ends the step (TERM when none is given; see :func:`_kill_targets`).
    pkill picks every process on the node that meets all of its criteria: the shell's children (-P $$, which holds
    srun only when the shell started it itself, ``plain``), the PID in a file (-F FILE, :func:`_holds_the_pid`),
    the user (-u $USER), and a pattern, an extended regular expression that must match the process's name (its
    whole command line with -f; the whole of it with -x). pkill -f "vllm serve" thus stops srun vllm serve … &, on
    whatever node its tasks run, but pkill -f "python.*vllm" leaves it (srun's command line has no python). An
    option that picks processes in another way (-g, -t, -n, -v …) may leave it out."""
    signal, pattern, parent, pidfile, used = "TERM", None, False, None, set()
    at = 0
    while at < len(words):
        word = words[at]
        option, eq, value = word.partition("=") if word.startswith("--") else (word[:2], "", word[2:])
        if option in ("-P", "--parent", "--signal", "-F", "--pidfile") or option in _PKILL_SELECTORS:
            if not eq and not value:
                value, at = (words[at + 1] if at + 1 < len(words) else ""), at + 1
            if option in ("-P", "--parent"):
                parent = any(re.fullmatch(r"\$(?:\$|\{\$\})", p) for p in value.split(","))
                if not parent:
                    return False  # the children of another process
            elif option == "--signal":
                signal = value
            elif option in ("-F", "--pidfile"):
                pidfile = value
            elif not (option in _USER_OPTIONS and _OWN_USER.fullmatch(value)):
                return False
        elif word in _PKILL_FLAGS or re.fullmatch(r"-[fxieAc]{2,}", word):
            used |= {word} if word.startswith("--") else {f"-{c}" for c in word[1:]}
        elif _SIGNAL_OPTION.fullmatch(word):
            signal = word[1:]
        elif word.startswith("-") or pattern is not None:
            return False
        else:
            pattern = word
        at += 1
    if not _ends_a_step(signal, interrupt_ends, ignored) or ((parent or pidfile is not None) and not plain) \
            or (pidfile is not None and not _holds_the_pid(ctx, b, k, pidfile)):
        return False
    if pattern is None:
        return parent or pidfile is not None  # pkill with nothing to pick processes by is refused
    full = bool(used & {"-f", "--full"})
    # without -f, the name the kernel keeps: 15 characters at most
    process = " ".join(_process_words(b)) if full else _process_name(_process_words(b))[:15]
    flags = re.IGNORECASE if used & {"-i", "--ignore-case"} else 0
    try:
        found = (re.fullmatch if used & {"-x", "--exact"} else re.search)(pattern, process, flags)
    except re.error:
        return False
    return found is not None


def _killall_ends(b: BackgroundStep, words: list[str], interrupt_ends: bool, ignored: tuple[str, ...] = ()) -> bool:
    """Whether killall with these arguments ends the srun the batch shell started for ``b`` (or the program it runs
    itself with &): one of the names it is given is the process's name (killall srun; with -r, an extended regular
    expression that matches it; -I ignores case), with a signal that ends the step (TERM when none is given). An
    option that picks processes in another way (-o, -y, -n; -u with another user) may leave it out, and -i asks on a
    terminal a batch job does not have."""
    signal, names, regex, flags = "TERM", [], False, 0
    at, options = 0, True
    while at < len(words):
        word = words[at]
        option, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if not options or not word.startswith("-") or word == "-":
            names.append(word)
        elif word == "--":
            options = False
        elif option in ("-s", "--signal", "-u", "--user", "-o", "--older-than", "-y", "--younger-than", "-n", "--ns",
                        "-Z", "--context"):
            if not eq:
                value, at = (words[at + 1] if at + 1 < len(words) else ""), at + 1
            if option in ("-s", "--signal"):
                signal = value
            elif not (option in _USER_OPTIONS and _OWN_USER.fullmatch(value)):
                return False
        elif word in ("-r", "--regexp"):
            regex = True
        elif word in ("-I", "--ignore-case"):
            flags = re.IGNORECASE
        elif word in ("-e", "--exact", "-q", "--quiet", "-w", "--wait", "-v", "--verbose", "-g", "--process-group"):
            pass  # -g kills the process group of what it finds: the batch shell's, srun … & with it
        elif _SIGNAL_OPTION.fullmatch(word):
            signal = word[1:]
        else:
            return False
        at += 1
    if not _ends_a_step(signal, interrupt_ends, ignored):
        return False
    process = _process_name(_process_words(b))
    try:
        return any((re.search(name, process, flags) if regex else re.fullmatch(re.escape(name), process, flags))
                   is not None for name in names)
    except re.error:
        return False


#: the signals scancel --signal sends a step's tasks that end them (their default action), by name and number
_SCANCEL_ENDS = frozenset({"KILL", "9", "TERM", "15", "INT", "2", "HUP", "1", "QUIT", "3"})


def _cancels_step(ctx: Context, b: BackgroundStep, words: list[str]) -> bool:
    """Whether scancel with these arguments cancels the step of ``b``: $SLURM_JOB_ID.N with N its step number (any
    N when that cannot be counted), without --signal, or with a signal that ends a program unless it catches it to go
    on: KILL, TERM, INT, HUP, QUIT (scancel --signal=TERM is how a server is asked to shut down cleanly)."""
    signal = next((words[k + 1] if w in ("-s", "--signal") and k + 1 < len(words) else w.partition("=")[2]
                   for k, w in enumerate(words) if w in ("-s", "--signal") or w.startswith("--signal=")), None)
    if signal is not None and signal.upper().removeprefix("SIG") not in _SCANCEL_ENDS:
        return False
    number = _step_number(ctx, b.index)
    return any(m.group(1) is None or number is None or int(m.group(1)) == number
               for w in words for m in [_OWN_STEP.fullmatch(w)] if m)


def _step_number(ctx: Context, i: int) -> int | None:
    """The number of the step the srun at ``i`` starts ($SLURM_JOB_ID.N): the count of srun steps before it, when
    each of them is an srun line of the script's top level (one step, surely started); None otherwise."""
    code = _code_in_order(ctx)
    before = [j for j in range(i) if _runs(ctx, j, frozenset())]
    if any(code[j][2] >= 0 or j not in _srun_steps_at(ctx) or _joined_to_previous(code, j) for j in before):
        return None
    return len(before)


def _runs_until_stopped(step: Any) -> str | None:
    """How messages name the step's program when it runs until it is stopped: a monitor (nvidia-smi dmon, watch,
    tail -f; not in a container or under a launcher), or a server (:func:`_serves`), also in a container; None for
    any other step."""
    program = [str(w) for w in step.chain.program]
    if _is_monitor(step):
        return " ".join(program[:2])
    return _serves(program) if step.chain.launcher is None else None


def _serves(words: list[str]) -> str | None:
    """How messages name the server ``words`` start (:func:`_server`), also behind a wrapper (uv run, conda run)
    or in a bash -c script; None when they start none."""
    # a bash -c script, also behind a container the models do not read (${CONTAINER_CMD} exec img bash -c '…')
    script = c_script_in(words)
    if script is None:
        return _server(launch_words(words))
    text = shell_script_text(words[script])
    try:
        commands = lex_script(text).code if text is not None else ()
    except ParseError:
        return None
    return next((found for c in commands if c.kind == "simple"
                 for found in [_server(launch_words([str(v) for v in c.argv]))] if found), None)


def _server(words: list[str]) -> str | None:
    """How messages name the server ``words`` start (``ray start --block``, ``vllm serve``, ``python -m
    sglang.launch_server``), None when they start none: ray start returns at once unless --block keeps it, and a
    server told to stop by itself after a while (:func:`_stops_by_itself`) ends like any other program."""
    if not words:
        return None
    name = words[0].rsplit("/", 1)[-1]
    found: str | None = None
    args: list[str] = []  # the words after the server's name (after vllm serve, python -m MODULE)
    if name == "ray":
        found = "ray start --block" if words[1:2] == ["start"] and "--block" in words else None
        args = words[2:]
    elif re.fullmatch(r"python[\d.]*", name):
        # past the interpreter's own options (python -u -X dev -m MODULE), named as written
        plain, written = python_module_words(words)
        module = plain[2] if written else ""
        found = written if module in _SERVER_MODULES else None
        args = plain[3:]
    elif name in _SERVERS:
        wanted = _SERVERS[name]
        found = name if wanted is None else f"{name} {words[1]}" if words[1:2] and words[1] in wanted else None
        args = words[1:] if wanted is None else words[2:]
    if found is None or _stops_by_itself(found, words) or _only_prints(found, args):
        return None
    return found


def _is_jupyter(server: str) -> bool:
    """Whether the ``server`` (as :func:`_server` names it) is a Jupyter server: jupyter lab, jupyter-notebook,
    python -m jupyterlab …"""
    return "jupyter" in server or server.endswith("-m notebook")


def _only_prints(server: str, args: list[str]) -> bool:
    """Whether the words after the ``server``'s name (``args``) make it print something or do a task and exit instead
    of serving: a Jupyter subcommand (jupyter server list, jupyter lab build; :data:`_JUPYTER_SUBCOMMANDS`), or an
    option for its help or version before any -- (:data:`_PRINTING_OPTIONS`; vllm serve --help=ModelConfig too)."""
    if _is_jupyter(server) and args[:1] and args[0] in _JUPYTER_SUBCOMMANDS:
        return True
    family = "jupyter" if _is_jupyter(server) else "tensorboard" if "tensorboard" in server else server
    others = () if server.startswith("mlflow") else ("-h",)  # mlflow server -h is its --host
    printing = {"--help", "--version", *_PRINTING_OPTIONS.get(family, others)}
    return any(w in printing or w.startswith("--help=") for w in itertools.takewhile(lambda w: w != "--", args))


#: the Jupyter servers' option that shuts them down after that many seconds with no kernel or terminal running
#: and no activity (0, the default, never)
_JUPYTER_IDLE_SHUTDOWN = ("--ServerApp.shutdown_no_activity_timeout", "--NotebookApp.shutdown_no_activity_timeout")


def _stops_by_itself(server: str, words: list[str]) -> bool:
    """Whether the options in ``words`` make the ``server`` (as :func:`_server` names it) stop by itself: the Dask
    scheduler after --idle-timeout without work, a Dask worker at the end of its --lifetime (unless
    --lifetime-restart starts it again), a Jupyter server idle for shutdown_no_activity_timeout seconds; not with a
    time of 0, which turns them off. (srun's --quit-on-interrupt is no such option: one SIGINT then ends the step.)"""
    if "dask" in server:
        options: tuple[str, ...] = ("--idle-timeout",) if "scheduler" in server else ("--lifetime",)
        if "--lifetime-restart" in words:
            return False
    elif _is_jupyter(server):
        options = _JUPYTER_IDLE_SHUTDOWN
    else:
        return False
    for k, word in enumerate(words):
        option, eq, value = word.partition("=")
        if option in options:
            value = value if eq else words[k + 1] if k + 1 < len(words) else ""
            if value and not re.fullmatch(r"0+(?:\.0*)?\s*[A-Za-z]*", value):
                return True
    return False


def _on_other_nodes(ctx: Context, step: Any, other: Any) -> bool:
    """Whether srun places the two steps on different nodes: -w names a node for each, written differently
    (-w "$head" and -w "${nodes[$i]}": in a job of one node, the loop over the other nodes starts no step), one
    names with -w a node the other leaves out with -x, or -r/--relative starts each on other nodes of the
    allocation."""
    named = [_node_option(ctx, s, "-w", "--nodelist") for s in (step, other)]
    left_out = [_node_option(ctx, s, "-x", "--exclude") for s in (step, other)]
    if all(named) and not set(named[0]) & set(named[1]):
        return True
    first, second = _relative_nodes(ctx, step), _relative_nodes(ctx, other)
    if first is not None and second is not None and (first[1] < second[0] or second[1] < first[0]):
        return True
    return bool(set(named[0]) & set(left_out[1]) or set(named[1]) & set(left_out[0]))


def _relative_nodes(ctx: Context, step: Any) -> tuple[int, float] | None:
    """The nodes of the allocation a step with -r N/--relative=N runs on, by their place in it: N up to N plus its
    node count less one (srun(1): the step begins at node N); up to its task count when it names no node count, to
    the end without either. None without -r, or with one the script's text does not give as a number."""
    written = _node_option(ctx, step, "-r", "--relative")
    if not written or not written[-1].isdigit():
        return None
    srun, start = step.chain.srun, int(written[-1])
    span = node_range(srun.nodes) if isinstance(srun.nodes, str) else None  # --nodes=1-2: at most 2
    count: float = srun.nodes if isinstance(srun.nodes, int) else span[1] if span is not None \
        else srun.ntasks if isinstance(srun.ntasks, int) else float("inf")
    return start, start + count - 1



#: commands after a server that only tidy up or report, not the job's work (a job may run them once it is stopped);
#: print is ksh's and zsh's echo, written for a message in scripts carried over from those shells
_AFTERWORDS = _QUICK_COMMANDS | frozenset({"kill", "pkill", "killall", "wait", "scancel", "sleep", "trap", "cat",
                                           "tail", "seff", "sacct", "sstat", "squeue", "scontrol", "nvidia-smi", "du",
                                           "df", "conda", "deactivate", "print", "logger"})


@rule("HPC538", "server-in-the-foreground", "warning",
      summary="a server that never ends by itself runs in the foreground (srun vllm serve …, vllm serve …, "
              "apptainer exec img.sif vllm serve …; no &), and the script's work comes after it, so the batch shell "
              "does not get there",
      why="The batch shell runs its lines one after another and goes on only when a command has ended. A server "
          f"({_server_names()}) serves until it is stopped, so in the foreground (with srun, in the batch shell "
          "itself, or in a container: apptainer exec img.sif vllm serve …, ch-run img -- vllm serve …) it holds "
          "the batch shell on that line: the srun steps and programs below it (the client, the training, the "
          "analysis) start only after something else stops the server (a Jupyter user's Shut Down, a Dask "
          "client's shutdown from another job), and otherwise never, while the job runs to its time limit. A "
          "server as the job's last command (srun jupyter lab, ollama serve) is what a server job is for, and is "
          "left alone, as is one held to a time (srun --time, timeout 2h srun …, srun timeout 2h …, timeout 2h "
          "jupyter lab), one told to stop by itself when idle (dask scheduler --idle-timeout, dask worker "
          "--lifetime, jupyter lab --ServerApp.shutdown_no_activity_timeout=N), one run with exec (the batch shell "
          "ends there), and tidying up after it (echo, rm, kill, scancel; stopping the instance it ran in with "
          "apptainer instance stop, Ray with ray stop, or Jupyter with jupyter server stop).",
      fix="Start the server in the background (srun --overlap … &, or vllm serve … & in the batch shell), wait until "
          "it answers (until curl -sf http://localhost:8000/health; do sleep 10; done), run the work, then stop the "
          "server (kill \"$PID\"; wait \"$PID\", with PID=$! after the server's line); or run the server as a job "
          "of its own.",
      bad="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
srun vllm serve meta-llama/Llama-3.1-8B-Instruct
srun python run_eval.py --base-url http://localhost:8000/v1
""",
      good="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
srun --overlap vllm serve meta-llama/Llama-3.1-8B-Instruct &
SERVER_PID=$!
until curl -sf http://localhost:8000/health; do sleep 10; done
srun --overlap python run_eval.py --base-url http://localhost:8000/v1
kill "$SERVER_PID"
wait "$SERVER_PID"
""")
def _server_in_the_foreground(ctx: Context) -> Iterator[Any]:
    code = _code_in_order(ctx)
    for i, (cmd, _, _) in enumerate(code):
        found = _foreground_server(ctx, i)
        if found is None:
            continue
        what, step = found
        work = next((k for k in range(i + 1, len(code)) if _does_work(ctx, k) and not _never_both(ctx, i, k)
                     and not _in_function(code, code[k][2]) and _shell_of(ctx, k) < 0), None)
        if work is None:
            continue
        later = code[work][0]
        name = "the srun step" if work in _srun_steps_at(ctx) \
            else launch_words([str(w.value) for w in later.words])[0].rsplit("/", 1)[-1]
        srun = step is not None and step.chain.srun is not None
        start = "srun --overlap … &" if srun else f"{what} … &"
        # a server answers once it has loaded (a model may take minutes); a monitor has nothing to wait for
        ready = "" if step is not None and _is_monitor(step) else ", wait until it answers,"
        yield (cmd.line, f"{what} … runs in the foreground and never ends by itself, so the batch script stays on "
                         f"this line: {name} on line {later.line} starts only after something else stops the server, "
                         f"and otherwise never (the job runs to its time limit); start the server with {start}{ready} "
                         "and stop it when the work is done (kill \"$PID\"; wait \"$PID\")")


def _foreground_server(ctx: Context, i: int) -> tuple[str, Any] | None:
    """What the command at ``i`` serves, as messages name it (``srun vllm serve``, ``apptainer exec … vllm serve``,
    ``jupyter lab``), and its step (None for a program the batch shell runs without srun or a container), when the
    batch shell itself runs it in the foreground and it never ends by itself; None for any other command. Left
    out: a command in the background, in a pipeline (grep -m 1 ready may end it), after && or || (a test decides),
    in a function (called when?) or run with exec (the shell never comes back), and a server held to a time."""
    code = _code_in_order(ctx)
    cmd, _, parent = code[i]
    if _backgrounded(ctx, i) or _shell_of(ctx, i) >= 0 or _in_function(code, parent) \
            or cmd.joined_by in ("|", "|&") or _joined_to_previous(code, i):
        return None
    return _server_at(ctx, i)


def _server_at(ctx: Context, i: int) -> tuple[str, Any] | None:
    """What the simple command at ``i`` serves, as messages name it (``srun vllm serve``, ``apptainer exec … vllm
    serve``, ``jupyter lab``; a monitor too when srun runs it), and its step (None for a program the batch shell
    runs without srun or a container), when it never ends by itself; None for any other command, one run with
    exec (the shell never comes back) and one held to a time."""
    cmd = _code_in_order(ctx)[i][0]
    if cmd.kind != "simple" or not cmd.words:
        return None
    words = [str(w.value) for w in cmd.words]
    launch = launch_words(words)
    if not launch or "exec" in (w.rsplit("/", 1)[-1] for w in words[:len(words) - len(launch)]) or _timed(words):
        return None
    step = next(iter(_steps_at(ctx).get(i, ())), None)
    if step is None:
        what = _serves(words)
        return (what, None) if what is not None else None
    what = _runs_until_stopped(step)
    if what is None or _held_to_a_time(step):
        return None
    if step.chain.srun is not None:
        return f"srun {what}", step
    runtime = launch[0].rsplit("/", 1)[-1]
    if runtime in ("apptainer", "singularity") and len(launch) > 1:
        runtime += f" {launch[1]}"  # apptainer exec, apptainer run
    return (f"{runtime} … {what}" if step.chain.container is not None else what), step


def _held_to_a_time(step: Any) -> bool:
    """Whether a step ends at a time of its own: srun -t/--time, or timeout before srun (or the container) or before
    its program."""
    srun = step.chain.srun
    if srun is not None and any(str(e).partition("=")[0] in ("-t", "--time") or re.fullmatch(r"-t\d\S*", str(e))
                                for e in srun.extra):
        return True
    return _timed([str(w.value) for w in step.command.words]) or _timed([str(w) for w in step.chain.program])


def _timed(words: list[str]) -> bool:
    """Whether a command runs what it starts under timeout (timeout 2h srun …, nice timeout 600 vllm serve …)."""
    return "timeout" in (w.rsplit("/", 1)[-1] for w in words[:len(words) - len(launch_words(words))])


#: commands that stop a server or a runtime once the work is done, tidying up as kill does: an Apptainer instance
#: (the one apptainer exec instance://NAME ran in), the Ray runtime of the node, a Jupyter server by its port
_STOPPERS = (("apptainer", "instance", "stop"), ("singularity", "instance", "stop"), ("ray", "stop"),
             ("jupyter", "server", "stop"), ("jupyter", "notebook", "stop"), ("jupyter-server", "stop"),
             ("jupyter-notebook", "stop"))


def _does_work(ctx: Context, k: int) -> bool:
    """Whether the command at ``k`` is part of the job's work: an srun step or a program that is no tidying up
    (:data:`_AFTERWORDS`, :data:`_STOPPERS`)."""
    cmd = _code_in_order(ctx)[k][0]
    if cmd.kind != "simple" or not cmd.words:
        return False
    words = launch_words([str(w.value) for w in cmd.words])
    if not words:
        return False
    name = words[0].rsplit("/", 1)[-1]
    stops = any((name, *words[1:len(stopper)]) == stopper for stopper in _STOPPERS)
    return k in _srun_steps_at(ctx) or not (name in _AFTERWORDS or stops)


#: commands that only check whether a server answers (until curl -sf …/health; do sleep 10; done), not work that
#: needs it
_PROBES = frozenset({"curl", "wget", "nc", "ncat", "netcat", "grep", "ss", "netstat", "lsof", "ping", "getent"})


@rule("HPC539", "wait-for-a-server-that-never-ends", "warning",
      summary="wait (or wait $SERVER_PID) waits for a server or monitor started in the background that never ends "
              "by itself (srun vllm serve … &, jupyter lab … &, nvidia-smi dmon … &), so the job runs on to its time "
              "limit after its work is done",
      why="wait without arguments returns once every program the batch shell started with & has ended (wait $PID "
          f"once that one has). A server ({_server_names()}) or a monitor (nvidia-smi dmon, nvidia-smi -l 30, watch, "
          "tail -f) runs until it is stopped, so the wait never returns: the work finished long ago, but the job "
          "stays on its nodes and GPUs (and is charged for them) until its time limit, and ends TIMEOUT instead of "
          "COMPLETED. A "
          "trap 'kill \"$PID\"' EXIT does not help: it runs when the script ends, which the wait keeps from "
          "happening. Left alone: a server the script stops before the wait (kill \"$PID\", kill %1, pkill -P $$, "
          "pkill -f 'vllm serve', kill $(cat FILE) after echo $! > FILE, "
          "scancel $SLURM_JOB_ID.N of its step, ray stop for ray start --block on the batch shell's node and for "
          "the workers of a head it ends, apptainer instance stop NAME for a "
          "server in instance://NAME, also in a function it calls there: as HPC522 reads them; a program "
          "the batch shell runs itself with & ignores kill -INT and -QUIT), a wait for the work only (wait "
          "\"$WORK_PID\", wait -n), a server disowned (disown: wait no longer waits for it), one told to stop by "
          "itself when idle (dask scheduler --idle-timeout, jupyter lab --ServerApp.shutdown_no_activity_timeout=N) "
          "or held to a time (timeout 2h vllm serve …, srun --time), and a job that is its server: before the wait "
          "only checks that it answers (curl), tidying up and monitors, the way a JupyterLab or vLLM job serves until "
          "its user cancels it. Work that stops the server itself (a Dask client's shutdown()) cannot be seen in the "
          "script; waiting for the work only says so.",
      fix="Wait for the work only, then stop the server: SERVER_PID=$! after the server's line, the work in the "
          "foreground (or WORK_PID=$! after it and wait \"$WORK_PID\"), then kill \"$SERVER_PID\"; wait "
          "\"$SERVER_PID\". Or stop it before the wait: kill \"$SERVER_PID\"; wait. A JupyterLab kept open for its user "
          "after the work can stop by itself once nobody uses it: --ServerApp.shutdown_no_activity_timeout=3600.",
      bad="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
vllm serve meta-llama/Llama-3.1-8B-Instruct &
until curl -sf http://localhost:8000/health; do sleep 10; done
python run_eval.py --base-url http://localhost:8000/v1
wait
""",
      good="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --gres=gpu:1
vllm serve meta-llama/Llama-3.1-8B-Instruct &
SERVER_PID=$!
until curl -sf http://localhost:8000/health; do sleep 10; done
python run_eval.py --base-url http://localhost:8000/v1
kill "$SERVER_PID"
wait
""")
def _wait_for_a_server(ctx: Context) -> Iterator[Any]:
    endless = _endless_in_background(ctx)
    code = _code_in_order(ctx)
    for k, (cmd, _, parent) in enumerate(code if endless else ()):
        if not is_wait(cmd) or _shell_of(ctx, k) >= 0 or _in_function(code, parent):
            continue
        waited = [(b, what) for b, what in endless if _waits_for(ctx, b, k)]
        work = _work_beside(ctx, k, [b for b, _ in endless], [b for b, _ in waited]) if waited else []
        if not work:
            continue  # none, or a job that is its server
        names = ", ".join(f"{label} (line {b.start.line})" for b, label in waited)
        itself = "never ends by itself" if len(waited) == 1 else "never end by themselves"
        pid = next(iter(_saved_pids(ctx, waited[0][0])), None) if len(waited) == 1 else None
        stop = f'kill "${pid}"' if pid else 'kill "$PID", with PID=$! after its line'
        trap = " (a trap on EXIT runs only when the script ends, which this wait keeps from happening)" \
            if traps_for(ctx, "EXIT") or traps_for(ctx, "0") else ""
        held = "nodes and GPUs" if ctx.job.gpus_on_each_node else "nodes"
        # a lab kept open for its user after the work can still end the job: when nobody has used it for a while
        idle = "; or let Jupyter stop by itself when idle (--ServerApp.shutdown_no_activity_timeout=3600)" \
            if any("jupyter" in label or "-m notebook" in label for _, label in waited) else ""
        yield (cmd.line, f"this wait waits for {names}, which {itself}, so it never returns: once the work is done "
                         f"the job stays here until its time limit, holding its {held}, and ends TIMEOUT{trap}; wait "
                         f"for the work only (wait \"$WORK_PID\"), then stop it ({stop}), or stop it before this "
                         f"wait{idle}", _stop_first_fix(ctx, k, waited, pid, work))


def _endless_in_background(ctx: Context) -> list[tuple[BackgroundStep, str]]:
    """The servers and monitors the batch shell starts with & that never end by themselves, each with how messages
    name it (``vllm serve … &``, ``serve … & running srun vllm serve``): srun … & (also an srun that a function or
    a ( … ) group run with & runs in its foreground), and the
    programs the batch shell runs itself (vllm serve … &, apptainer exec img.sif vllm serve … &, nvidia-smi dmon …
    &), which a :class:`BackgroundStep` then describes with no srun step (its step is the container's, or None).
    Left out: those a function starts (called when?) or a ( … ) & group starts with & (the batch shell's wait
    does not reach them), and those parallel or xargs start."""
    def make() -> list[tuple[BackgroundStep, str]]:
        code = _code_in_order(ctx)
        started: dict[int, list[BackgroundStep]] = {}
        for b in background_steps(ctx):
            if b.detached and not b.several:
                started.setdefault(b.index, []).append(b)
        out: list[tuple[BackgroundStep, str]] = []
        for i, (cmd, in_loop, parent) in enumerate(code):
            if not _backgrounded(ctx, i) or _in_subshell(ctx, i) or _in_function(code, parent):
                continue
            if any(b.how != "srun … &" for b in started.get(i, ())):
                out += [(b, f"{b.how} running srun {what}") for b in started[i]
                        for what in [_runs_until_stopped(b.step)]
                        if what and not _held_to_a_time(b.step) and not _backgrounded(ctx, _step_index(ctx, b.step))]
                continue
            found = _server_at(ctx, i) or _monitor_at(ctx, i)
            if found is None:
                continue
            what, step = found
            if step is not None and step.chain.srun is not None:
                out += [(b, f"{what} … &") for b in started.get(i, ())[:1]]
            else:
                out.append((BackgroundStep(step, i, in_loop, False, cmd, f"{what} … &", False, True), f"{what} … &"))
        return out
    return cached(ctx, "endless_in_background", make)


def _in_subshell(ctx: Context, i: int) -> bool:
    """Whether the command at ``i`` runs in a subshell of the batch shell: inside a ( … ) group, or a group run
    with & (what it starts with & is no child of the batch shell, whose wait does not wait for it)."""
    code = _code_in_order(ctx)
    return any(code[p][0].text.lstrip().startswith("(") or _backgrounded(ctx, p) for p in _ancestors(ctx, i)[1:-1])


def _monitor_at(ctx: Context, i: int) -> tuple[str, None] | None:
    """A monitor the batch shell runs itself at ``i`` (nvidia-smi dmon …, tail -f log; no srun, no container), as
    messages name it, unless it is held to a time (timeout 2h nvidia-smi dmon)."""
    cmd = _code_in_order(ctx)[i][0]
    if cmd.kind != "simple" or i in _steps_at(ctx):
        return None
    words = [str(w.value) for w in cmd.words]
    launch = launch_words(words)
    if not _never_ends(launch) or _timed(words):
        return None
    return " ".join([launch[0].rsplit("/", 1)[-1], *launch[1:2]]), None


def _waits_for(ctx: Context, b: BackgroundStep, k: int) -> bool:
    """Whether the wait at ``k`` waits for what ``b`` started, still running then: the wait names it (or nothing),
    and the batch shell has neither ended it (:func:`_ended_between`) nor disowned it on the way there, nor is the
    wait in another branch of an if or case."""
    code = _code_in_order(ctx)
    pids = _saved_pids(ctx, b)
    return b.index < k and not _never_both(ctx, b.index, k) \
        and _ends_the_step(ctx, b, k, code[k][0], pids, frozenset()) and not _ended_between(ctx, b, k) \
        and not any(_disowns(ctx, b, j, pids) for j in range(b.index + 1, k))


def _disowns(ctx: Context, b: BackgroundStep, j: int, pids: dict[str, int]) -> bool:
    """Whether the command at ``j`` is a disown of the batch shell that takes ``b``'s job off its list, so that no
    wait waits for it (disown -a or -r, the job by its PID or job spec, the current job without one; -h keeps it)."""
    cmd = _code_in_order(ctx)[j][0]
    if cmd.kind != "simple" or not cmd.words or str(cmd.words[0].value) != "disown" or _shell_of(ctx, j) >= 0:
        return False
    words = [re.sub("[\"']", "", w.raw) for w in cmd.words[1:]]
    options = "".join(w[1:] for w in words if w.startswith("-"))
    targets = [w for w in words if not w.startswith("-")]
    if "h" in options:
        return False
    return "a" in options or "r" in options \
        or any(_names_the_step(ctx, b, j, t, pids) for t in targets or ["%+"])


def _work_beside(ctx: Context, k: int, endless: list[BackgroundStep], waited: list[BackgroundStep]) -> list[int]:
    """Where the job's work is in :func:`_code_in_order`, run while the ``waited`` servers run and before the wait at
    ``k``: what the script runs after the first of them (an srun step, a program; not the ``endless`` servers
    themselves, nor checks that they answer or tidying up), and what it started with & before it. Empty for a job
    that is its server."""
    code, ends = _code_in_order(ctx), _subtree_ends(ctx)
    own = {j for b in endless for j in range(b.index, ends[_pipeline_end(ctx, b.index)])}
    first = min(b.index for b in waited)
    waits = [j for j in range(first) if is_wait(code[j][0]) and _shell_of(ctx, j) < 0]
    return [j for j in range(k) if j not in own and not _in_function(code, code[j][2]) and not _never_both(ctx, j, k)
            and (j > first or (_backgrounded(ctx, j) and not any(w > j for w in waits)))
            and _does_work(ctx, j) and not _only_checks(ctx, j)]


def _only_checks(ctx: Context, j: int) -> bool:
    """Whether the program the batch shell runs at ``j`` (itself or in a container; not with srun) only checks that
    a server answers (:func:`_checks`), also in a bash -c script, where it may also tidy up (timeout 600 bash -c
    'until curl …; do sleep 5; done')."""
    if j in _srun_steps_at(ctx):
        return False
    step = next(iter(_steps_at(ctx).get(j, ())), None)
    words = [str(w) for w in step.chain.program] if step is not None \
        else launch_words([str(w.value) for w in _code_in_order(ctx)[j][0].words])
    words = words[1:] if words[:1] == ["!"] else words  # while ! nc -z localhost 8000
    script = c_script_in(words)
    if script is None:
        return _checks(words)
    text = shell_script_text(words[script])
    try:
        commands = list(_simple_commands(lex_script(text).code)) if text is not None else []
    except ParseError:
        return False
    return bool(commands) and all(not launch or _checks(launch) or launch[0].rsplit("/", 1)[-1] in _AFTERWORDS
                                  for c in commands for launch in [launch_words([str(v) for v in c.argv])])


def _checks(words: list[str]) -> bool:
    """Whether a program only checks that a server answers: :data:`_PROBES`, or Jupyter's list of its running
    servers (jupyter notebook list, jupyter server list)."""
    name = words[0].rsplit("/", 1)[-1] if words else ""
    return name in _PROBES or (name.startswith("jupyter") and "list" in words[1:3])


def _stop_first_fix(ctx: Context, k: int, waited: list[tuple[BackgroundStep, str]], pid: str | None,
                    work: list[int]) -> Fix | None:
    """A kill of the server's saved PID on the line before the wait at ``k``, when that is surely right: one server,
    started once, its PID saved, the wait alone on its line, and all the work run in the foreground (so it is done
    by then; a kill there would cut short work still running in the background)."""
    cmd = _code_in_order(ctx)[k][0]
    text = ctx.parsed.lines[cmd.line - 1]
    if pid is None or waited[0][0].in_loop or text.strip() != cmd.text.strip() \
            or any(_backgrounded(ctx, j) for j in work):
        return None
    indent = text[:len(text) - len(text.lstrip())]
    return Fix("stop the server before the wait", cmd.line, cmd.line, text=f'{indent}kill "${pid}"\n{text}')


#: commands that fill a folder with data (their destination is read from their words)
_STAGERS = frozenset({"cp", "rsync", "mv", "tar", "unzip"})


def staged_to(words: list[str]) -> str | None:
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
    m = NODE_LOCAL.match(dest)
    if m is None:
        return None
    root = m.group(0)
    if root.startswith("$"):
        return "$" + re.match(r"\$\{?(\w+)", root).group(1)  # ${TMPDIR:-/tmp}: $TMPDIR
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
        # as written where the value is known only as the job runs (job_local="${TMPDIR:-/tmp}/…": its folder still
        # says where it is)
        resolved = [ctx.parsed.resolve_written(w, cmd.line) for w in words]
        if words[0] == "mkdir":
            made += [k for w in resolved[1:] if (k := _node_local_key(w, "")) is not None]
            continue
        dest = staged_to(resolved)
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
    text = " ".join(ctx.parsed.resolve_written(str(w.value), step.line) for w in all_words(step.command))
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
#: commands among them that report on the job (its accounting, its GPUs): an exit after a failed step must not skip them
_REPORTS = frozenset({"seff", "sacct", "sstat", "squeue", "scontrol", "nvidia-smi", "du", "df"})

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
    if any(_never_ends([str(v) for v in c.argv]) for c in after):
        return  # sleep infinity: the job never gets to end by itself, it ends TIMEOUT or CANCELLED
    end = last.end_line
    said = ctx.parsed.lines[end - 1] if end <= len(ctx.parsed.lines) else ""
    fix = None
    line = said.rstrip()
    joined = last.command.joined_by or ""
    if joined == ";" and line.endswith(";") and line.count(";") == 1:
        line, joined = line[:-1].rstrip(), ""  # srun python train.py;  (the ; ends the line, nothing follows it)
    if "#" not in said and not line.endswith("\\") and "<<" not in last.command.text and joined == "" \
            and not any(n in _REPORTS for n in names):
        # (an exit there would skip the report of the job's use, wanted most when the step failed)
        fix = Fix("pass the step's exit status on", end, end, text=line + " || exit $?")
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
          "and SLURM_PROCID) sees a world of N ranks in which only rank 0 exists: it waits for the others, and fails "
          "when PyTorch gives up on them (after 30 minutes by default) or the time limit comes first.",
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
    if starts_steps(ctx):
        return  # the script starts its tasks with srun somewhere (also through eval or a variable holding srun)
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
        if program and re.fullmatch(r"python[0-9.]*", program[0].rsplit("/", 1)[-1]):
            at = _past_interpreter_options(program)  # python -u train.py: the script, not -u
            if not _PYTHON_TOOL.fullmatch(" ".join(program[at:at + 2])):
                last = (cmd, program[:at + (2 if program[at:at + 1] == ["-m"] else 1)])
    if last is None:
        return
    cmd, program = last
    asked = (f"{ctx.job.ntasks_per_node} tasks per node" if isinstance(ctx.job.ntasks_per_node, int)
             else f"{tasks} tasks" + (f" on {nodes} nodes" if nodes > 1 else ""))
    yield (cmd.line, f"the job asks for {asked}, but {' '.join(program)} runs once, in the batch shell; if it "
                     f"finds its peers through Slurm's variables (PyTorch Lightning does) it waits for {tasks - 1} "
                     "ranks that never start: start it with srun (one process per task), or ask for "
                     "--ntasks-per-node=1 and --cpus-per-task if it starts its own workers")


def _past_interpreter_options(program: list[str]) -> int:
    """Where the interpreter's own options end in ``program`` (``python -u -X dev train.py`` → 3, the script's index;
    also that of -m, -c or another option such as --version): CPython's switches (-u, -O, -B …, clustered as -uB)
    and -X/-W with their value."""
    at = 1
    while at < len(program):
        word = program[at]
        if re.fullmatch(r"-[bBdEiIOPqRsSuvx]+", word):
            at += 1
        elif word in ("-X", "-W"):
            at += 2
        elif re.fullmatch(r"-[XW].+", word):
            at += 1
        else:
            break
    return min(at, len(program))


def _batch_shell_program(ctx: Context, cmd: Any, words: list[str]) -> list[str]:
    """The program a batch-shell command runs: its own words, or those inside the container it starts; empty for
    a launcher (torchrun, accelerate … start processes of their own)."""
    step = next((s for s in steps(ctx) if s.command is cmd), None)
    if step is None:
        return words
    if step.chain.srun is not None or step.chain.launcher is not None:
        return []
    return [str(w) for w in step.chain.program]


def _ends_the_job(words: list[str]) -> bool:
    """Whether a command of a trap's handler ends the job anyway, so that a script which ends right after the trap
    loses nothing: exit, a requeue (scontrol requeue or requeuehold), scancel when it sends no signal (--signal, -s),
    or sbatch (the job resubmits itself)."""
    words = launch_words(words)
    name = words[0].rsplit("/", 1)[-1] if words else ""
    if name == "scontrol":
        return any(w in ("requeue", "requeuehold") for w in words[1:])
    if name == "scancel":
        return not any(w.startswith(("--signal", "-s")) for w in words[1:])
    return name in ("exit", "sbatch")


#: what a script may still do after its last wait and end within moments: note the outcome, queue the next job
_ENDING_COMMANDS = _QUICK_COMMANDS | frozenset({"sbatch", "scontrol", "squeue", "sacct", "cat", "tail", "test", "["})


def _asks_to_checkpoint(handlers: list[list[str]]) -> bool:
    """Whether a trap's handler asks a program to save and stop without ending it: kill -USR1 (or USR2), or a stop
    file it touches. (kill -TERM ends a program that does not catch it anyway; kill -INT to a program the batch shell
    started with & is HPC531's.)"""
    for words in handlers:
        if words[:1] == ["touch"]:
            return True
        if words[:1] == ["kill"] and any(re.fullmatch(r"-(?:s\s*)?(?:SIG)?USR[12]|-(?:10|12)", w) for w in words[1:3]):
            return True
    return False


def _ends_soon(commands: list[Any]) -> bool:
    """Whether ``commands`` (what follows the script's last wait) end within moments: quick commands and sbatch, also
    in an if or case; not a loop (one that polls the step waits for it), a wait, or a program that works."""
    for cmd in commands:
        if cmd.kind == "compound":
            if re.match(r"\s*(?:while|until|for|select)\b", cmd.text):
                return False
            if not _ends_soon([c for c in compound_body(cmd) if c.is_code]):
                return False
        elif cmd.kind == "simple" and cmd.words and str(cmd.words[0].value) not in _ENDING_COMMANDS:
            return False
    return True


@rule("HPC529", "wait-returns-when-the-trap-runs", "error",
      summary="a trap for the --signal=B:… warning only tells the step to checkpoint, and the script's one wait "
              "then returns, so the job ends and the step is killed before it can",
      why="bash's wait returns as soon as a trapped signal arrives (bash(1): 'the reception of a signal for which a "
          "trap has been set will cause the wait builtin to return immediately … after which the trap is executed'). "
          "With srun … & and a single wait at the end, the trap runs (kill -USR1, scancel --signal, touch STOP), "
          "then the script reaches its end: the job ends with it, and Slurm kills the step that was about to save "
          "its checkpoint. The same for a program the batch shell starts itself (python train.py &): Slurm kills "
          "what is left of the job when the script ends. A trap that requeues, resubmits or exits ends the job on "
          "purpose and is not reported, nor one that waits for the step itself (kill -USR1 \"$pid\"; wait \"$pid\"). "
          "A resubmission after the wait (if [ ! -f DONE ]; then sbatch …; fi) does not make the step finish: it is "
          "reported.",
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
    traps = traps_for(ctx, signal)
    handlers = [words for trap in traps for _, words in trap_handler_commands(ctx, trap)]
    if not traps or any(_ends_the_job(words) or words[:1] == ["wait"] for words in handlers):
        return  # no trap for it (HPC517's), a handler that ends the job anyway, or one that waits for the step itself
    top = [c for c in ctx.parsed.lexed.code if c.is_code]
    waits = [k for k, c in enumerate(top) if is_wait(c)]
    # what the batch shell started beside itself: srun steps, or a program it runs itself (python train.py &), which
    # Slurm kills with the rest of the job as the script ends
    started = any(b.detached for b in background_steps(ctx)) or (_asks_to_checkpoint(handlers) and any(
        c.kind == "simple" and c.joined_by == "&" and c.words for c in top))
    if not waits or not started:
        return
    last = waits[-1]
    if not _ends_soon(top[last + 1:]) or (last > 0 and is_wait(top[last - 1])):
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
    if any(is_wait(c) and _shell_of(ctx, k) < 0 for k, (c, _, _) in enumerate(code) if k >= first) \
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
    for later in top[holder + 1:]:
        if later.line <= end:  # … & echo "two\nlines" on its line: the wait goes after that command, not inside it
            end = max(end, later.end_line)
    text = ctx.parsed.lines[end - 1] if end <= len(ctx.parsed.lines) else ""
    indent = " " * _indent(ctx.parsed.lines[top[holder].line - 1])
    # a plain wait returns when a trap for the --signal=B: warning runs: the fix for that script is HPC529's loop
    batch = _batch_signal(ctx)
    trapped = batch is not None and bool(traps_for(ctx, batch[1]))
    fix = None if text.rstrip().endswith("\\") or trapped else Fix("wait for the background steps", end, end,
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
        if is_wait(cmd):
            holder = next((c for c in top if c.offset <= cmd.offset < c.offset + len(c.text)), None)
            if holder is not None and _FUNCTION_DEF.match(holder.text):
                return True
    return False


# --------------------------------------------------------------------------------------------
# HPC534: a component of a heterogeneous job that no step runs in

#: srun's option naming the components a step runs in (pack-group: its old name), also shortened as srun's option
#: reader allows (--het=1), and its value as written
_HET_GROUP = re.compile(r"--(?:het|pack)(?:-(?:g(?:r(?:o(?:up?)?)?)?)?)?(?:=|\s+)[\"']?([^\s\"';&|)]*)")
#: a value of --het-group that names components: 1, 0,2 or 1-3
_GROUP_LIST = re.compile(r"\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*")
#: Slurm's variables of one component (SLURM_JOB_NODELIST_HET_GROUP_1), and the number of components
_COMPONENT_VARIABLE = re.compile(r"_(?:HET|PACK)_GROUP_(\d+)\b|\bSLURM_(?:HET|PACK)_SIZE\b")
#: programs that start work on other nodes without srun's --het-group: MPI launchers and remote shells
_OTHER_NODE_STARTERS = (*RANK_LAUNCHERS, "ssh", "pdsh", "clush", "pbsdsh")


@rule("HPC534", "heterogeneous-component-unused", "warning",
      summary="a later component of a heterogeneous job is never used: no srun --het-group (or srun … : …) starts a "
              "step in it",
      why="The batch script of a heterogeneous job runs on the first node of component 0, and srun starts a step in "
          "component 0 unless --het-group names others (--het-group=1, 0,1 or 1-2), or the step is written with srun's "
          "':' between the parts, which places them in components 0, 1, … in turn (Slurm's heterogeneous jobs page, "
          "'Launching Applications'). A component no step runs in holds its nodes, CPUs and memory for the whole job "
          "while nothing uses them, and the work meant for it runs squeezed into component 0 (a program told to use "
          "24 threads on the 2 CPUs there). Not reported when the script hands the component to srun in a way the "
          "linter cannot read (--het-group=$G, code in eval or another script), reads Slurm's variables for the "
          "components (SLURM_JOB_NODELIST_HET_GROUP_1, SLURM_HET_SIZE), or starts work with an MPI launcher or ssh.",
      fix="Start the component's work with srun --het-group=N … (in the background with & and a wait when several "
          "components work at once), or drop the component (everything from #SBATCH hetjob on) and ask for what the "
          "work needs in one.",
      bad="""#!/bin/bash
#SBATCH --time=02:00:00
#SBATCH --ntasks=1 --mem=16G
#SBATCH hetjob
#SBATCH --ntasks=16 --mem-per-cpu=2G
srun python coordinator.py
""",
      good="""#!/bin/bash
#SBATCH --time=02:00:00
#SBATCH --ntasks=1 --mem=16G
#SBATCH hetjob
#SBATCH --ntasks=16 --mem-per-cpu=2G
srun --het-group=0 python coordinator.py &
srun --het-group=1 python worker.py &
wait
""")
def _unused_component(ctx: Context) -> Iterator[Any]:
    if not heterogeneous(ctx):
        return
    used = _used_components(ctx)
    if used is None:
        return
    directives: dict[int, list[Any]] = {}
    for d in ctx.parsed.directives:
        if d.applied and d.component:
            directives.setdefault(d.component, []).append(d)
    for component, own in sorted(directives.items()):
        if component in used:
            continue
        asked = " ".join(f"{d.flag}={d.value}" if d.value else d.flag for d in own)
        yield (own[0].line, f"component {component} of the heterogeneous job ({asked}) is never used: the batch "
                            f"script runs in component 0, and srun starts its steps there unless --het-group (or "
                            f"srun … : …) names component {component}, so what it asks for sits idle for the whole "
                            f"job; start its work with srun --het-group={component} …, or drop the component")


def _used_components(ctx: Context) -> set[int] | None:
    """The components of a heterogeneous job that the script starts work in: 0 (the batch shell's), those srun's
    --het-group names wherever the script writes it (also in a variable's value or an eval), those the parts of an
    ``srun A : B`` take in turn, and those whose Slurm variables it reads. None when it cannot be told: a group
    given by a variable, code the linter does not read, the number of components read at run time, or work started
    on other nodes without srun."""
    commands = every_command(ctx)
    if runs_unread_code(ctx) or any(words[0].rsplit("/", 1)[-1] in _OTHER_NODE_STARTERS for _, words in commands):
        return None
    texts = [" ".join(w.raw for w in all_words(cmd.cmd if isinstance(cmd, _Inner) else cmd))
             for cmd in _simple_commands(ctx.parsed.lexed.code)]
    texts += [" ".join(str(a) for a in held.argv) for held in ctx.parsed.held_commands]
    used = {0}
    for text in texts:
        for m in _COMPONENT_VARIABLE.finditer(text):
            if m.group(1) is None:
                return None  # SLURM_HET_SIZE: the script goes over the components itself
            used.add(int(m.group(1)))
        for m in _HET_GROUP.finditer(text):
            if not _GROUP_LIST.fullmatch(m.group(1)):
                return None
            for part in m.group(1).split(","):
                first, _, last = part.partition("-")
                used.update(range(int(first), int(last or first) + 1))
    for _, words in commands:
        if words[0].rsplit("/", 1)[-1] == "srun":
            used.update(range(words.count(":") + 1))
    return used


# --------------------------------------------------------------------------------------------
# HPC548: ray start in a step, without --block

@rule("HPC548", "ray-start-step-without-block", "error",
      summary="srun starts ray start without --block: the command returns at once, the step ends, and Slurm ends the "
              "Ray processes it left running",
      why="ray start launches Ray's processes (the raylet, and on the head the GCS and dashboard) in the background "
          "and returns. Run by srun, that return ends the step, and Slurm then kills every process of the step, "
          "those in the background included: the cluster is gone a moment after it started, and the driver waits "
          "for nodes or stops with 'Could not find any running Ray instance'. In the batch shell itself (no srun) "
          "ray start is fine: its processes last as long as the batch script. --block keeps ray start in the "
          "foreground for as long as Ray runs, so the step lasts too; such a step never ends by itself, so it goes "
          "in the background (HPC522).",
      fix="Add --block and start the step in the background: srun -N1 -n1 -w \"$head\" ray start --head --block & "
          "(and the workers the same way), then wait for the cluster before the driver starts.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun -N1 -n1 -w "$head" ray start --head --port=6379
python driver.py --address "$head:6379"
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun -N1 -n1 -w "$head" ray start --head --port=6379 --block &
sleep 30
python driver.py --address "$head:6379"
""")
def _ray_start_without_block(ctx: Context) -> Iterator[Any]:
    if "ray" not in ctx.parsed.source:
        return
    for step in steps(ctx):
        if step.chain.srun is None:
            continue
        program = [str(w) for w in step.chain.program]
        at = next((k for k in range(len(program) - 1)
                   if program[k].rsplit("/", 1)[-1] == "ray" and program[k + 1] == "start"), None)
        if at is None or at > 1 or "--block" in program or any(w in ("-h", "--help") for w in program):
            continue
        yield (step.line, "ray start returns as soon as Ray's processes are running in the background, so this srun "
                          "step ends at once, and Slurm ends the processes it left behind: the Ray cluster is gone; "
                          "add --block and start the step in the background (srun … ray start … --block &)")


# --------------------------------------------------------------------------------------------
# HPC549: the file processes of several nodes find each other through is on node-local storage

#: a file the processes of a job find each other through, in a step's words: Dask's --scheduler-file (the scheduler
#: writes its address there, workers and the client read it) and a file:// rendezvous of torch.distributed
#: (init_method, --dist-url): every process opens the same file
_RENDEZVOUS_FILE = re.compile(r"(?<![\w-])--scheduler[-_]file(?:=|\s+)['\"]?([^\s'\"]+)"
                              r"|(?<![\w])file://(/[^\s'\"]*|\$[^\s'\"]*)")


#: a file or folder mktemp makes in $TMPDIR (else /tmp), as a command substitution: no template, or a template
#: without a folder that -t or --tmpdir (without a folder of its own) places there. A template of its own is made
#: in the current directory, -p DIR and --tmpdir=DIR in DIR: those are left as they are.
_MKTEMP = re.compile(r"\$\(\s*mktemp((?:\s+-[dqut]+|\s+--(?:directory|quiet|dry-run|tmpdir|suffix=[^\s)]+))*)"
                     r"(?:\s+([^\s)/-][^\s)/]*))?\s*\)")
_MADE_BY_MKTEMP = "${TMPDIR}/<mktemp>"


def _mktemp_where(m: re.Match) -> str:
    """A node-local :data:`_MKTEMP` substitution as the path it makes (for NODE_LOCAL to read), else as written."""
    options, template = m.group(1), m.group(2)
    if template is None or re.search(r"\s(?:-[dqu]*t|--tmpdir)\b", options):
        return _MADE_BY_MKTEMP
    return m.group(0)


@rule("HPC549", "node-local-rendezvous-file", "error",
      summary="processes on several nodes find each other through a file on node-local storage (/tmp, $TMPDIR, "
              "$SLURM_TMPDIR, a file $(mktemp) makes): Dask's --scheduler-file, a torch.distributed file:// rendezvous",
      why="Dask's scheduler writes its address into the --scheduler-file, and the workers and the client read it "
          "from there; torch.distributed's file:// init method (init_method, --dist-url) has every process open one "
          "file. Both work only where all the processes see the same file. Node-local storage is a separate disk on "
          "each node: the workers (or ranks) on the other nodes wait for a file that never appears on theirs, until "
          "their timeout, and the job holds its nodes for nothing.",
      fix="Put the file on storage every node sees: the submit directory, $SCRATCH or $HOME "
          "(--scheduler-file \"$SLURM_SUBMIT_DIR/scheduler-$SLURM_JOB_ID.json\"); for PyTorch, use an env:// or "
          "tcp://HEAD:PORT rendezvous instead of a file.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00
srun -N1 -n1 --overlap dask scheduler --scheduler-file /tmp/scheduler.json &
srun -N2 --ntasks-per-node=1 dask worker --scheduler-file /tmp/scheduler.json &
python analysis.py --scheduler-file /tmp/scheduler.json
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00
srun -N1 -n1 --overlap dask scheduler --scheduler-file "$SLURM_SUBMIT_DIR/scheduler.json" &
srun -N2 --ntasks-per-node=1 dask worker --scheduler-file "$SLURM_SUBMIT_DIR/scheduler.json" &
python analysis.py --scheduler-file "$SLURM_SUBMIT_DIR/scheduler.json"
""")
def _node_local_rendezvous_file(ctx: Context) -> Iterator[Any]:
    source = ctx.parsed.source
    if ("scheduler" not in source and "file://" not in source) or job_nodes(ctx) < 2:
        return
    reported: set[str] = set()
    for step in steps(ctx):
        if step.chain.srun is None or _step_nodes(ctx, step) < 2:
            continue
        text = " ".join(ctx.parsed.resolve_written(str(w.value), step.line) for w in all_words(step.command))
        for m in _RENDEZVOUS_FILE.finditer(_MKTEMP.sub(_mktemp_where, text)):
            path = m.group(1) or m.group(2)
            local = NODE_LOCAL.match(re.sub(r"\$\{(\w+):?[-=][^}]*\}", r"${\1}", path))  # ${TMPDIR:-/tmp}: $TMPDIR
            if local is None or path in reported:
                continue
            reported.add(path)
            what = "the Dask scheduler file" if m.group(1) else "the file:// rendezvous file"
            place = own = local.group(0)
            if path.startswith(_MADE_BY_MKTEMP):
                path, place, own = "$(mktemp)", "$TMPDIR, else /tmp, where mktemp makes it", "$TMPDIR and /tmp"
            yield (step.line, f"{what} {path} is on node-local storage ({place}), but this step runs on "
                              f"{_step_nodes(ctx, step)} nodes: each node has its own {own}, so the "
                              "processes on the others never find it and wait until they time out; put it on "
                              "storage every node sees (the submit directory, $SCRATCH)")


# --------------------------------------------------------------------------------------------
# HPC550: the job prints an attach command (srun --jobid) without --overlap

#: an srun command in printed text that joins a running job (--jobid=ID, --jobid ID), up to the end of its command
_ATTACH = re.compile(r"(?<![\w-])srun\s(?:[^|;&\n\"'`]*?\s)?--jobid(?:=|\s+)\S+[^|;&\n\"'`]*")


@rule("HPC550", "attach-command-without-overlap", "error",
      summary="the job prints the command to join it (srun --jobid=… --pty bash), or writes it to a file, without "
              "--overlap, while its own step holds the job's CPUs",
      why="Since Slurm 20.11 job steps do not share CPUs, memory or GPUs unless a step asks with --overlap. A job "
          "that keeps itself alive with a step (srun sleep infinity, or the training step) holds everything it was "
          "given, so srun --jobid=ID --pty bash from the login node does not start: it prints 'Requested nodes are "
          "busy' (or 'step creation temporarily disabled') and waits until that step ends. The command the job "
          "prints (to its log, or to a file such as ~/attach-$SLURM_JOB_ID.txt) is what people copy, so it has to "
          "carry --overlap.",
      fix="Print the command with --overlap: srun --jobid=\"$SLURM_JOB_ID\" --overlap --pty bash.",
      bad="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
echo "attach with: srun --jobid=$SLURM_JOB_ID --pty bash"
srun sleep infinity
""",
      good="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
echo "attach with: srun --jobid=$SLURM_JOB_ID --overlap --pty bash"
srun sleep infinity
""")
def _attach_without_overlap(ctx: Context) -> Iterator[Any]:
    if "--jobid" not in ctx.parsed.source:
        return
    holders = [s for s in steps(ctx) if s.chain.srun is not None and not _overlaps(ctx, s)]
    if not holders:
        return
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        text = _printed(cmd)
        if text is None:
            continue
        # the step that holds the job while someone attaches: one that starts after the command is printed, or one
        # already running in the background (a foreground step before it has ended by then)
        holder = next((s for s in holders if s.line > cmd.line and _lasts(s)), None) or \
            next((s for s in reversed(holders) if s.line < cmd.line and s.command.joined_by == "&"), None)
        if holder is None:
            continue
        for m in _ATTACH.finditer(text):
            if "--overlap" in m.group(0):
                continue
            shown = " ".join(m.group(0).split())
            yield (cmd.line, f"the command printed here, {shown}, starts a step in the running job without "
                             f"--overlap: the step on line {holder.line} holds the job's CPUs, so it waits ('Requested "
                             "nodes are busy') until that step ends; print it with --overlap",
                   _attach_fix(ctx, cmd))


def _lasts(step: Any) -> bool:
    """Whether a step runs long enough to be there when someone attaches: it is started in the background, only
    sleeps (srun sleep infinity, srun sleep 3600: it is there to hold the job), or runs the job's work, not a quick
    tool (srun mkdir, srun hostname)."""
    from .network import _SYSTEM_TOOLS
    program = [str(w) for w in step.chain.program]
    if step.command.joined_by == "&" or program[:1] == ["sleep"] or step.chain.container is not None \
            or step.chain.launcher is not None:
        return True
    return not program or program[0].rsplit("/", 1)[-1] not in _SYSTEM_TOOLS


def _printed(cmd: Any) -> str | None:
    """The text a command prints for its reader, to the job's log, the terminal or a file (``cat > ~/attach.txt <<EOF``):
    echo's and printf's words, or the here-document of a cat; None for any other command."""
    words = [str(v) for v in cmd.argv]
    if words and words[0] in PRINTERS:
        return " ".join(words[1:])
    if isinstance(cmd, _Inner) or words[:1] != ["cat"] or len(words) > 1:
        return None
    doc = next((r for r in cmd.redirects if r.op in ("<<", "<<-") and r.heredoc is not None), None)
    return doc.heredoc if doc is not None else None


def _attach_fix(ctx: Context, cmd: Any) -> Fix | None:
    """--overlap written after the --jobid option, when the printed command is on one line and --jobid once."""
    if isinstance(cmd, _Inner) or cmd.line != cmd.end_line:
        return None
    line = ctx.parsed.lines[cmd.line - 1]
    found = list(re.finditer(r"--jobid(?:=|\s+)[^\s\"'`]+", line))
    if len(found) != 1:
        return None
    at = found[0].end()
    return Fix("add --overlap to the printed srun command", cmd.line, cmd.line,
               text=line[:at] + " --overlap" + line[at:])


# --------------------------------------------------------------------------------------------
# HPC551: Ray workers join at another port than the head listens on

#: the port Ray's head listens on when ray start --head names none (ray start --help: "the port of the head ray
#: process", 6379)
_RAY_DEFAULT_PORT = "6379"


@rule("HPC551", "ray-worker-port-differs", "error",
      summary="ray start --address joins the Ray head at another port than ray start --head listens on",
      why="ray start --head listens for the cluster's nodes at --port (6379 when it is not given), and each worker "
          "node's ray start --address=HEAD:PORT connects there. At any other port nothing answers: the worker "
          "retries and gives up ('Unable to connect to GCS'), or, started with --block, waits, and the job goes on "
          "with the head's GPUs alone; a vLLM or SGLang server over several nodes then stops for want of GPUs, or "
          "waits for them until the job's time runs out.",
      fix="Give both the same port, from one variable: port=6379; ray start --head --port=\"$port\" and ray start "
          "--address=\"$head:$port\".",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun -N1 -n1 -w "$head" --overlap ray start --head --port=6379 --block &
sleep 10
srun -N1 -n1 --exclude="$head" --overlap ray start --address="$head:6380" --block &
sleep 10
python driver.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=01:00:00
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun -N1 -n1 -w "$head" --overlap ray start --head --port=6379 --block &
sleep 10
srun -N1 -n1 --exclude="$head" --overlap ray start --address="$head:6379" --block &
sleep 10
python driver.py
""")
def _ray_worker_port(ctx: Context) -> Iterator[Any]:
    if "ray" not in ctx.parsed.source:
        return
    heads: list[tuple[int, str]] = []
    workers: list[tuple[int, str, str]] = []
    for line, words in every_command(ctx):
        at = next((k for k in range(len(words) - 1) if words[k].rsplit("/", 1)[-1] == "ray"
                   and words[k + 1] == "start"), None)
        if at is None:
            continue
        options = _ray_options(words[at + 2:])
        if "--head" in options:
            heads.append((line, ctx.parsed.resolve(options.get("--port") or _RAY_DEFAULT_PORT, line)))
        elif options.get("--address"):
            address = ctx.parsed.resolve(options["--address"], line)
            if address.count(":") == 1:
                workers.append((line, address, address.rsplit(":", 1)[1]))
    ports = {port for _, port in heads if port.isdigit()}
    if len(ports) != 1:
        return  # no head, a port the script does not fix, or heads of several clusters
    port = ports.pop()
    head_line = heads[0][0]
    for line, address, joined in workers:
        if joined.isdigit() and joined != port:
            yield (line, f"ray start --address={address} joins at port {joined}, but the head on line {head_line} "
                         f"listens on {port}: this node never joins the cluster; use port {port} in both (one "
                         "variable for both)")


def _ray_options(words: list[str]) -> dict[str, str]:
    """ray start's options (``--port=6379``, ``--port 6379``, ``--head``) as ``{option: value}`` ("" for a switch)."""
    out: dict[str, str] = {}
    for k, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, eq, value = word.partition("=")
        if not eq and name in ("--port", "--address") and k + 1 < len(words):
            value = words[k + 1]
        out[name] = value.replace('"', "").replace("'", "")  # as the shell passes it: "$head:6379" is $head:6379
    return out


# --------------------------------------------------------------------------------------------
# HPC552: a job of several nodes that never starts anything beyond the first

#: what starts work on other nodes of the allocation (srun; MPI and other launchers over ssh, pdsh or their own
#: daemons; workflow tools that run srun themselves): any of these in the script, and the rule is silent
_REACHES_NODES = re.compile(r"(?<![\w./-])(?:" + "|".join(sorted(map(re.escape, {
    *RANK_LAUNCHERS, "srun", "salloc", "sbatch", "prterun", "deepspeed", "accelerate", "ray", "pdsh", "pdcp", "clush",
    "ssh", "parallel", "dask-mpi", "dask-ssh", "charmrun", "ibrun", "jsrun", "aprun", "torchx", "flux", "snakemake",
    "nextflow", "hq", "rlaunch", "spark-submit", "pbsdsh", "mpi4py",
    # a distributed launcher in the batch shell is HPC110's (it reaches no other node either)
    "torchrun", "torch.distributed.run", "torch.distributed.launch"}), key=len, reverse=True)) + r")(?![\w-])")


@rule("HPC552", "nodes-left-idle", "warning",
      summary="the job asks for several nodes, but nothing in it starts work beyond the first (no srun, mpirun or "
              "other launcher)",
      why="The batch script runs on the first node of the allocation only. Work reaches the other nodes only through "
          "something that starts it there: srun, or an MPI launcher (mpirun), or a tool that runs srun or ssh itself. "
          "A job that runs its program (python train.py, apptainer exec …) straight from the batch script uses one "
          "node and leaves the others idle for the whole run: they are charged to the account, count against the "
          "fair share, and stay out of other people's reach. A script that runs another script (bash run.sh), which "
          "may start srun itself, is left alone.",
      fix="Ask for one node (#SBATCH --nodes=1), or start the work on every node with srun (one task per node, or "
          "per GPU) or your MPI launcher.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --gres=gpu:4
#SBATCH --time=04:00:00
apptainer exec --nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --time=04:00:00
apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _nodes_left_idle(ctx: Context) -> Iterator[Any]:
    nodes = ctx.job.nodes
    if (not isinstance(nodes, (int, str)) or job_nodes(ctx) < 2 or heterogeneous(ctx)
            or (isinstance(nodes, str) and node_range(nodes) is None)):
        return
    code = ctx.parsed.lexed.code
    text = "\n".join(c.text for c in code)
    if _REACHES_NODES.search(text) or runs_unread_code(ctx):
        return  # (another script it runs, bash run.sh or ./launch.sh, may start srun in it)
    if not _simple_commands(code):
        return
    line = next((d.line for d in ctx.parsed.directives if d.applied and d.flag in ("--nodes", "-N")), None)
    if line is None:
        return  # nodes counted from other options (--ntasks over --ntasks-per-node): HPC307's
    yield line, (f"the job asks for {nodes} nodes, but nothing in it starts work beyond the first: the batch script "
                 "runs on the first node only, and no srun or MPI launcher reaches the others, which stay idle (and "
                 "are charged) for the whole run; ask for --nodes=1, or start the work with srun on every node")
