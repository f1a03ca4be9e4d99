"""Rules about what a job's programs need from the node and the hub: the GPU each task of a step sees and the one it
asks for, the NVIDIA driver libraries a Charliecloud image directory made by the job lacks, and the credentials a
JupyterHub single-user server gets from the hub through the job's environment.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import ast
import posixpath
import re
from typing import Any, Callable, Iterator

from ..errors import ParseError
from ..parse.script import launch_words
from ..spec.charliecloud import image_format
from ..spec.slurm import gpu_total, node_range
from . import Context, rule
from .catalogue import (_Inner, _PYTHON, _simple_commands, ast_name, cached, each_component, inherited_gpus,
                        inherited_per_task, job_component_steps, own_gpu_request, profile_vendor, python_code, python_module_words,
                        run_words, simple_commands, steps, tasks_per_node)
from .container_rules import shows_amd
from .parallel_steps import staged_to
from .shell import PRINTERS, VISIBLE_DEVICES_VARS


# --------------------------------------------------------------------------------------------
# HPC133: the device picked by local rank where each task sees one GPU

@rule("HPC133", "device-by-local-rank-with-one-gpu-per-task", "error",
      summary="each task sees only its own GPU (--gpus-per-task=1, --gpu-bind=single:1), but the step picks the "
              "device by local rank (cuda:$SLURM_LOCALID, set_device(SLURM_LOCALID), "
              "CUDA_VISIBLE_DEVICES=$SLURM_LOCALID)",
      why="--gpus-per-task=N implies --gpu-bind=per_task:N, and --ntasks-per-gpu implies --gpu-bind=single (srun(1)): "
          "Slurm then gives each task of a step its own GPU, which the task sees as device 0 (where device cgroups "
          "confine the tasks it is the only GPU they have). A program that picks cuda:$SLURM_LOCALID, or calls "
          "torch.cuda.set_device with the local rank, works in the task of local rank 0 only: the others ask for "
          "device 1, 2, … and stop with 'CUDA error: invalid device ordinal'. Setting CUDA_VISIBLE_DEVICES to the "
          "local rank replaces the value Slurm gave the task: with the GPUs confined the number names a GPU the task "
          "cannot reach; without, it names a GPU of the node by its number there, which may be another task's or "
          "another job's. Only a step of two or more tasks on a node is reported (Slurm ignores the binding for one "
          "task), and only where the script shows the choice: in the script of srun bash -c '…' or in python -c "
          "code, where each task expands or reads its own SLURM_LOCALID (or a LOCAL_RANK set from it there), or in "
          "a wrapper script the job writes with a here-document and srun runs in front of the program (the "
          "select_gpu script of AMD sites, which is right when every task sees all of the node's GPUs).",
      fix="Use device 0 in each task (cuda:0, or local_rank % torch.cuda.device_count()) and leave "
          "CUDA_VISIBLE_DEVICES as Slurm sets it; or, if every task should see all of the node's GPUs, ask for them "
          "per node (--gpus-per-node=N or --gres=gpu:N) without --gpus-per-task or a per-task --gpu-bind.",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --gpus-per-task=1
srun bash -c 'python train.py --device cuda:$SLURM_LOCALID --rank $SLURM_PROCID'
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --gpus-per-task=1
srun bash -c 'python train.py --device cuda:0 --rank $SLURM_PROCID'
""")
@each_component
def _device_by_local_rank(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        srun = step.chain.srun
        if srun is None or not (ctx.job.gpus_on_each_node or own_gpu_request(srun)):
            continue
        binding = one_gpu_each(ctx, step)
        per_node = _tasks_sharing_a_node(ctx, step)
        if not binding or per_node < 2:
            continue
        pick = _local_rank_pick(step) or _written_wrapper_pick(ctx, step)
        if pick is None:
            continue
        text, mask = pick
        others = "1" if per_node == 2 else f"1-{per_node - 1}"
        if mask:
            yield (step.line, f"each task of this step is given its own GPU ({binding}) and srun starts {per_node} "
                              f"tasks on a node, but the step sets {text} over the value Slurm gave each task: "
                              "where Slurm confines the tasks to their GPUs, a task's GPU is device 0 and the tasks "
                              f"of local rank {others} find no GPU; elsewhere the local rank names a GPU of the node "
                              f"by its number, which may be another task's or another job's; leave {mask} as Slurm "
                              "sets it")
        else:
            yield (step.line, f"each task of this step sees only its own GPU ({binding}), as device 0, and srun "
                              f"starts {per_node} tasks on a node, but the step picks the device by local rank "
                              f"({text}): the tasks of local rank {others} ask for a GPU they do not have (CUDA "
                              "error: invalid device ordinal); use cuda:0 (or local_rank % "
                              "torch.cuda.device_count()), or give every task all of the node's GPUs with "
                              "--gpus-per-node and no per-task binding")


def written_files(ctx: Context) -> list[tuple[str, int, str]]:
    """The files the batch script writes from a here-document (``cat << EOF > select_gpu``, ``cat > f <<'EOF'``,
    ``tee f << EOF``), in order: ``(file as resolved, line, its text)``. In a here-document whose delimiter is not
    quoted, ``\\$`` becomes the ``$`` the file holds, and the ``$`` of an unescaped ``$NAME`` or ``${NAME}``, which the
    batch shell fills in as it writes the file, becomes a NUL: the callers tell the two apart by it."""
    def make() -> list[tuple[str, int, str]]:
        from .submitted import _stdin_heredoc, _written_file
        out = []
        for cmd in _simple_commands(ctx.parsed.lexed.code):
            if isinstance(cmd, _Inner) or str(cmd.name).rsplit("/", 1)[-1] not in ("cat", "tee"):
                continue
            doc, file = _stdin_heredoc(cmd), _written_file(cmd)
            if doc is None or file is None or doc.heredoc is None:
                continue
            text = doc.heredoc
            if doc.expands:
                text = re.sub(r"(?<!\\)\$(?=[A-Za-z_{])", "\x00", text).replace("\\$", "$")
            out.append((_file_key(ctx.parsed.resolve(file, cmd.line)), cmd.line, text))
        return out
    return cached(ctx, "devices_written_files", make)


def _file_key(path: str) -> str:
    return posixpath.normpath(path)


#: a variable set from another one in a wrapper's text: ``NAME=$OTHER`` (maybe exported, quoted), its two names
_WRAPPER_SETS = re.compile(r"(?m)^[ \t]*(?:export[ \t]+)?([A-Za-z_]\w*)=[\"']?\$\{?([A-Za-z_]\w*)\}?[\"']?[ \t]*(?:[;#]|$)")


def _written_wrapper_pick(ctx: Context, step: Any) -> tuple[str, str] | None:
    """HPC133 for a wrapper the batch script writes with a here-document and srun runs in front of the program
    (the select_gpu script of AMD sites: ``export ROCR_VISIBLE_DEVICES=\\$SLURM_LOCALID`` then ``exec \\$*``): the
    variable it sets from the local rank, as :func:`_local_rank_pick` gives it; None when the step runs no such file."""
    found = wrapper_written(ctx, step)
    if found is None:
        return None
    written, line, text = found
    local = {"SLURM_LOCALID"}   # the wrapper's names for the local rank (LOCAL_RANK=$SLURM_LOCALID)
    for m in _WRAPPER_SETS.finditer(text):
        name, value = m.groups()
        if name in VISIBLE_DEVICES_VARS and value in local:
            return f"{name}=${value} in {written} (written on line {line})", name
        if value in local:
            local.add(name)
    return None


def wrapper_written(ctx: Context, step: Any) -> tuple[str, int, str] | None:
    """The wrapper script a step runs in front of its program when the batch script wrote it with a here-document
    before the step (``srun ./select_gpu ./app``, ``srun bash w.sh python t.py``): ``(the name as the step writes it,
    the line of the command that wrote it, its text as :func:`written_files` gives it)``; None for any other step."""
    program = [str(w) for w in step.chain.program]
    at = 1 if program and program[0].rsplit("/", 1)[-1] in ("bash", "sh") else 0
    # the program's first word (its script's, after bash), or a word the reader read past before the container the
    # step starts (srun ./select_gpu singularity exec IMAGE …)
    names = program[at:at + 1] if len(program) > at + 1 else []
    names += [w for w in step.looked_through if w.startswith(("./", "/", "$")) or "/" in w]
    for name in names:
        target = _file_key(ctx.parsed.resolve(name, step.line))
        found = next(((name, line, text) for file, line, text in reversed(written_files(ctx))
                      if line < step.line and file == target), None)
        if found is not None:
            return found
    return None


def srun_wrappers(ctx: Context) -> Iterator[tuple[Any, str, int, str]]:
    """Each wrapper the batch script writes with a here-document and an srun step then runs (:func:`wrapper_written`),
    once per written file: ``(the first step that runs it, its name as that step writes it, the line that wrote it,
    its text)``. HPC502 and HPC524 judge the text; each reports a file once however many steps run it."""
    seen: set[int] = set()
    for step in steps(ctx):
        found = wrapper_written(ctx, step) if step.chain.srun is not None else None
        if found is not None and found[1] not in seen:
            seen.add(found[1])
            yield (step, *found)


def one_gpu_each(ctx: Context, step: Any) -> str:
    """How Slurm comes to bind one GPU to each task of srun ``step``, as the script says it
    (``--gpus-per-task=1 on line 4``); "" when it does not: no binding (every task sees all the step's GPUs), a binding
    of another kind (``none``, ``closest``, ``map_gpu`` …) or more than one GPU per task. srun takes the job's
    --gpu-bind, --gpus-per-task and --ntasks-per-gpu from the variables sbatch sets (SLURM_GPU_BIND …); its own
    options win."""
    srun = step.chain.srun
    component = getattr(ctx, "component", 0)
    directives = [d for d in ctx.parsed.directives if d.applied and d.component == component]

    def job_option(flag: str) -> tuple[str, str]:
        d = next((d for d in reversed(directives) if d.flag == flag), None)
        return (str(d.value), f"{flag}={d.value} on line {d.line}") if d is not None else ("", "")

    bind, said = (str(srun.gpu_bind), f"srun --gpu-bind={srun.gpu_bind}") if srun.gpu_bind else job_option("--gpu-bind")
    kinds = [k for k in bind.split(",") if k and k != "verbose"]
    if kinds:
        kind, _, count = kinds[0].partition(":")
        return said if kind == "single" or (kind == "per_task" and count.strip() == "1") else ""
    if srun.gpus_per_task is not None:
        return f"srun --gpus-per-task={srun.gpus_per_task}" if gpu_total(srun.gpus_per_task) == 1 else ""
    per_gpu = _srun_value(srun, "--ntasks-per-gpu")
    if per_gpu:
        return f"srun --ntasks-per-gpu={per_gpu}, which implies --gpu-bind=single:{per_gpu}"
    inherited = inherited_per_task(ctx, step)
    if inherited is not None:
        return job_option("--gpus-per-task")[1] if inherited == 1 else ""
    per_gpu, where = job_option("--ntasks-per-gpu")
    if per_gpu and not own_gpu_request(srun):
        return f"{where}, which implies --gpu-bind=single:{per_gpu}"
    return ""


def _srun_value(srun: Any, flag: str) -> str:
    """The value of an srun option the model keeps as written (``--ntasks-per-gpu=2`` or ``--ntasks-per-gpu 2``)."""
    extra = [str(e) for e in srun.extra]
    value = ""
    for i, word in enumerate(extra):
        name, eq, rest = word.partition("=")
        if name == flag:
            value = rest if eq else (extra[i + 1] if i + 1 < len(extra) else "")
    return value


def _tasks_sharing_a_node(ctx: Context, step: Any) -> int:
    """How many tasks of srun ``step`` run on each node when the job or the step fixes where they go (tasks per node,
    or one number of nodes); 0 when Slurm places them (``--ntasks=8`` alone may give 8 nodes one task each)."""
    srun = step.chain.srun
    placed = any(isinstance(getattr(layer, "ntasks_per_node", None), int)
                 or (getattr(layer, "nodes", None) is not None and len(set(node_range(layer.nodes) or (0, 1))) == 1)
                 for layer in (ctx.job, srun))
    return (tasks_per_node(ctx, step) or 0) if placed else 0


#: the commands that set variables from their arguments (``export NAME=value``), not for one command
_DECLARERS = ("export", "declare", "typeset", "local", "readonly")
#: a reference each task's shell expands, in the script of a bash -c as the reader gives it: ``\\$NAME``, ``\\${NAME}``
_TASK_REFERENCE = re.compile(r"\\\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")
#: a CUDA device named by such a reference: ``cuda:\\$SLURM_LOCALID``
_CUDA_BY_REFERENCE = re.compile(r"cuda:" + _TASK_REFERENCE.pattern)
#: the name a local-rank reference in python -c code becomes when the code is read (bash puts a number there)
_SHELL_RANK = "_local_rank_from_the_shell"


def _local_rank_pick(step: Any) -> tuple[str, str] | None:
    """Where the command of ``step`` picks its GPU by the task's local rank: ``(what, "")`` for a device
    (``cuda:$SLURM_LOCALID``, ``torch.cuda.set_device(…)`` in python -c), ``(what, NAME)`` for a visible-devices
    variable NAME set to it; None when the script shows no such choice.

    Only a local rank each task expands or reads itself counts: in the script of ``srun bash -c '…'`` (also a
    LOCAL_RANK set there from SLURM_LOCALID), and in python -c code reading the environment. A ``$SLURM_LOCALID`` the
    batch shell expands is 0 in every task, which is right here (HPC502 reports the mistake it usually is)."""
    local = {"SLURM_LOCALID"}       # the names each task's shell holds its local rank in
    exported = {"SLURM_LOCALID"}    # those of them the programs it starts see
    for cmd in _simple_commands([step.command]):
        if not isinstance(cmd, _Inner):
            if not step.wrapper and step.chain.launcher is None:  # srun python -c '…' (a launcher runs no -c code)
                found = _python_pick(python_code([str(w) for w in step.chain.program]), exported)
                if found:
                    return found
            continue
        words = [str(v) for v in cmd.argv]
        declares = cmd.cmd.name in _DECLARERS
        exports = cmd.cmd.name == "export" or (cmd.cmd.name in ("declare", "typeset") and "-x" in words[1:])
        given = set(exported)       # what this command's program sees: the exports, and NAME=value before it
        for name, word in cmd.assignments:
            reference = _whole_reference(str(word.value))
            if name in VISIBLE_DEVICES_VARS and reference in local:
                return f"{name}=${reference}", name
            if words and not declares:
                if reference in local:
                    given.add(name)
            elif reference in local:
                local.add(name)
                if exports:
                    exported.add(name)
            else:
                local.discard(name)
                exported.discard(name)
        if cmd.cmd.name == "export":
            exported |= local & set(words[1:])  # export LOCAL_RANK, after LOCAL_RANK=$SLURM_LOCALID
        if not words or words[0].rsplit("/", 1)[-1] in PRINTERS:
            continue
        for word in words:
            m = _CUDA_BY_REFERENCE.search(word)
            if m and (m.group(1) or m.group(2)) in local:
                return m.group(0).replace("\\$", "$"), ""
        code = python_code(words)
        if code is not None:
            code = _TASK_REFERENCE.sub(lambda m: _SHELL_RANK if (m.group(1) or m.group(2)) in local else m.group(0),
                                       code)
            found = _python_pick(code, given)
            if found:
                return found
    return None


def _whole_reference(value: str) -> str:
    """The variable a value each task's shell expands is (``\\$SLURM_LOCALID``), "" for any other value."""
    m = _TASK_REFERENCE.fullmatch(value)
    return (m.group(1) or m.group(2)) if m else ""


def _python_pick(code: str | None, environment: set[str]) -> tuple[str, str] | None:
    """Where Python ``code`` picks a GPU by the local rank it reads from one of the ``environment`` variables (or
    that the shell put in as :data:`_SHELL_RANK`), also through the names it assigns it to: ``set_device(rank)``,
    ``torch.device("cuda", rank)``, ``f"cuda:{rank}"``, ``model.cuda(rank)``, or CUDA_VISIBLE_DEVICES set to it.
    An expression that also asks for the GPU count (``rank % torch.cuda.device_count()``) is right wherever the GPUs
    are bound, and not reported."""
    if not code:
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    ranks = {_SHELL_RANK}
    # names that hold the GPU count (n = torch.cuda.device_count()): a rank taken modulo one of them is right too
    counts = {"device_count"} | {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                                 and any(ast_name(n) == "device_count" for n in ast.walk(node.value))
                                 for t in node.targets if isinstance(t, ast.Name)}

    def reads_rank(node: ast.AST) -> bool:
        inside = list(ast.walk(node))
        return (any(_environment_name(n) in environment or (isinstance(n, ast.Name) and n.id in ranks) for n in inside)
                and not any(ast_name(n) in counts for n in inside))

    def shown(node: ast.AST) -> str:
        text = ast.get_source_segment(code, node) or ""
        return text if len(text) <= 80 else text[:77] + "..."

    grown = True
    while grown:
        grown = False
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None or not reads_rank(node.value):
                continue
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name) and target.id not in ranks:
                    ranks.add(target.id)
                    grown = True
                mask = _environment_name(target)
                if mask in VISIBLE_DEVICES_VARS:
                    return shown(node), mask
    for node in ast.walk(tree):
        if _picks_device(node, reads_rank):
            return shown(node), ""
    return None


def _picks_device(node: ast.AST, reads_rank: Callable[[ast.AST], bool]) -> bool:
    """Whether ``node`` names a CUDA device by what ``reads_rank`` says holds the local rank."""
    if isinstance(node, ast.Call):
        name, args = ast_name(node.func), node.args
        if name in ("set_device", "cuda") and args and reads_rank(args[0]):
            return True
        if name == "device" and len(args) >= 2 and _text_of(args[0]) == "cuda" and reads_rank(args[1]):
            return True
        if name == "format" and isinstance(node.func, ast.Attribute) and _text_of(node.func.value).startswith("cuda:"):
            return any(reads_rank(a) for a in args)
    if isinstance(node, ast.JoinedStr) and node.values and _text_of(node.values[0]).startswith("cuda:"):
        return reads_rank(node)
    if isinstance(node, ast.BinOp) and _text_of(node.left).startswith("cuda:"):
        return reads_rank(node.right)
    return False


def _environment_name(node: ast.AST) -> str:
    """The variable ``node`` reads from (or, as a target, writes to) the environment: ``os.environ["X"]``,
    ``os.environ.get("X")``, ``os.getenv("X")``; "" for anything else."""
    if isinstance(node, ast.Subscript) and ast_name(node.value) == "environ":
        return _text_of(node.slice)
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if ast_name(func) == "getenv" or (isinstance(func, ast.Attribute) and func.attr == "get"
                                          and ast_name(func.value) == "environ"):
            return _text_of(node.args[0])
    return ""


def _text_of(node: ast.AST) -> str:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""


# --------------------------------------------------------------------------------------------
# HPC142, HPC143: MIG slices shared by the workers of one process group

#: what the two rules say of MIG slices, as the NVIDIA documents and NCCL's maintainers state it
_MIG_FACTS = ("a CUDA process enumerates one MIG slice only (CUDA_VISIBLE_DEVICES: 'only single MIG instance "
              "enumeration is supported'), and slices have no peer-to-peer path (CUDA IPC) between them")


def _mig_step(ctx: Context, step: Any) -> tuple[str, int, int] | None:
    """``(slice types, slices per node, tasks per node)`` of a step whose job's GPUs are MIG slices
    (:func:`~hpcwidgets.spec.profile.job_mig_types`: the job's types, or its partition's in the profile), None for
    any other step. A step whose own words set CUDA_VISIBLE_DEVICES picks its slices itself and is None too."""
    from ..spec.profile import job_mig_types
    from .launch import step_gpus
    types = job_mig_types(ctx.profile, ctx.job)
    if not types:
        return None
    srun = step.chain.srun
    if srun is not None and not (ctx.job.gpus_on_each_node or own_gpu_request(srun)):
        return None
    said = [str(w.value) for w in step.command.words] + [str(getattr(step.wrapper_word, "value", "") or "")]
    if any(name == "CUDA_VISIBLE_DEVICES" for name, _ in step.env) or any("CUDA_VISIBLE_DEVICES=" in w for w in said):
        return None
    have = step_gpus(step) or (inherited_gpus(ctx, step) if srun is not None else None) or ctx.job.gpus_on_each_node
    if not isinstance(have, int) or have < 1:
        return None
    return ", ".join(types), have, tasks_per_node(ctx, step) or 1


def _slice_each(ctx: Context, step: Any) -> str:
    """How one slice comes to be bound to each task of srun ``step`` (:func:`one_gpu_each`), also where the job
    asks for one GPU per task beside a count of another kind (``--gpus=1g.10gb:2 --gpus-per-task=1g.10gb:1``): srun
    is given SLURM_GPUS_PER_TASK all the same. "" when nothing binds them."""
    said = one_gpu_each(ctx, step)
    per_task = ctx.job.gpus_per_task
    if not said and per_task and gpu_total(per_task) == 1 and not own_gpu_request(step.chain.srun):
        said = f"the job's --gpus-per-task={per_task}"
    return said


@rule("HPC142", "several-mig-slices-per-process-group", "error",
      summary="the workers of one node share several MIG slices: torchrun --nproc-per-node above 1, or several tasks "
              "per node without one slice bound to each, in a job whose GPUs are MIG slices",
      why="A MIG slice (1g.10gb, 3g.40gb …; a100_10g where a site names slices by their memory, less than any "
          "whole GPU of the model has) is a part of a GPU that Slurm hands out as a GPU of its own. A CUDA "
          "process enumerates one slice only, however many CUDA_VISIBLE_DEVICES names (the CUDA documentation: "
          "'only single MIG instance enumeration is supported'), so torch.cuda.device_count() is 1 in each of them. "
          "torchrun's workers all see the node's slices, and so do the tasks of a step that binds no slice to each: "
          "the worker that asks for cuda:LOCAL_RANK above 0 stops with 'invalid device ordinal', and workers that "
          "all take cuda:0 share the first slice, which NCCL refuses ('Duplicate GPU detected') while the other "
          "slices sit idle. Slices also have no peer-to-peer path between them (no CUDA IPC, no NVLink), and NCCL "
          "long did not support several slices in one communicator (its newest releases join them over shared "
          "memory only, behind a switch). The job's GPUs are slices when the type it asks for is one, or when it "
          "names none and its partition in the profile lists only slices. A step that sets CUDA_VISIBLE_DEVICES "
          "itself is left alone.",
      fix="Train on whole GPUs (a partition without MIG), one worker per GPU; on MIG slices run one worker per slice "
          "as its own job, or one task per slice with --gpus-per-task=TYPE:1 (HPC143 says what that still lacks), "
          "or --nproc-per-node=1 with one slice per node.",
      bad="""#!/bin/bash
#SBATCH --partition=mig
#SBATCH --gres=gpu:1g.10gb:2
#SBATCH --cpus-per-task=8
#SBATCH --time=01:00:00
torchrun --standalone --nproc-per-node=2 train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:a100:2
#SBATCH --cpus-per-task=8
#SBATCH --time=01:00:00
torchrun --standalone --nproc-per-node=2 train.py
""")
@each_component
def _several_mig_slices(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        found = _mig_step(ctx, step)
        if found is None:
            continue
        types, have, tasks = found
        launcher = step.chain.launcher
        nproc = str(getattr(launcher, "nproc_per_node", "") or "") if launcher is not None else ""
        if nproc.isdigit() and int(nproc) > 1 and have > 1 and tasks <= 1:
            yield (step.line, f"torchrun starts {nproc} workers on a node of {have} MIG slices ({types}), but "
                              f"{_MIG_FACTS}: every worker sees the first slice only, so the workers past local rank 0 "
                              "find no device of their own (invalid device ordinal, or NCCL's 'Duplicate GPU "
                              "detected' where they share cuda:0); train on whole GPUs, or run one worker per slice "
                              "(--nproc-per-node=1 on one slice per node)")
        elif step.chain.srun is not None and tasks > 1 and have > 1 and not _slice_each(ctx, step):
            yield (step.line, f"srun starts {tasks} tasks on a node of {have} MIG slices ({types}) and binds no slice "
                              f"to each, so every task is shown all {have} slices; but {_MIG_FACTS}: every task uses the "
                              "first slice, the others sit idle, and tasks of one process group fail in NCCL "
                              "('Duplicate GPU detected'); give each task its own slice (--gpus-per-task=1 with "
                              "--gres or --gpus of the slice type) or train on whole GPUs")


@rule("HPC143", "process-group-over-mig-slices", "info",
      summary="several tasks of a node each have their own MIG slice: if they are one process group (NCCL), their "
              "slices cannot reach each other except over host memory",
      why="With one slice bound to each task (--gpus-per-task=1, --gpu-bind=single:1) every task sees its own slice "
          "as device 0, which is how MIG is meant to be used for independent runs. Tasks that train one model "
          "together are another matter: slices have no peer-to-peer path (no CUDA IPC, no NVLink), NCCL before its "
          "newest releases refuses two ranks on slices of one GPU ('Duplicate GPU detected'; NCCL identifies the "
          "parent GPU), and the newest join them over shared memory only, behind NCCL_MULTI_RANK_GPU_ENABLE=1, "
          "more slowly than a whole GPU would train alone. Whether the tasks are one process group the script does "
          "not say, so this is advice.",
      fix="For one model, train on whole GPUs (a partition without MIG), or on one slice; keep one slice per task "
          "for runs that are independent of each other.",
      bad="""#!/bin/bash
#SBATCH --partition=mig
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --gpus-per-task=1g.10gb:1
#SBATCH --time=01:00:00
srun python train_ddp.py
""",
      good="""#!/bin/bash
#SBATCH --partition=mig
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-task=1g.10gb:1
#SBATCH --time=01:00:00
srun python train_ddp.py
""")
@each_component
def _process_group_over_mig(ctx: Context) -> Iterator[Any]:
    for step in job_component_steps(ctx):
        found = _mig_step(ctx, step)
        if found is None or step.chain.srun is None:
            continue
        types, _, tasks = found
        binding = _slice_each(ctx, step)
        if tasks > 1 and binding:
            yield (step.line, f"srun starts up to {tasks} tasks on a node, each on its own MIG slice ({types}; "
                              f"{binding}): right for independent runs, but if they train one model together, NCCL "
                              "cannot use peer-to-peer between slices, refuses two ranks on slices of one GPU before "
                              "its newest releases, and joins them over shared memory only after them; train one "
                              "model on whole GPUs")


# --------------------------------------------------------------------------------------------
# HPC229: a Charliecloud image directory made by the job, run on GPUs without the driver libraries

#: ch-fromhost options that put host files into the image: the driver libraries (--nvidia), or files named on the
#: command line, in a file or by a command (the ways a site injects its driver by hand); --cray-mpi alone does not
_INJECTING = ("--nvidia", "-c", "--cmd", "-f", "--file", "-p", "--path")
#: ch-run options of later releases that add devices (CDI specifications: the driver libraries too) as it starts
_RUN_TIME_DEVICES = ("-d", "--devices", "--device", "--cdi", "--cdi-dirs")
#: the extensions ch-tar2dir takes off a tarball's name to name the directory it unpacks it into
_TARBALL_SUFFIX = re.compile(r"(?:\.tar(?:\.\w+)?|\.t\wz)$")


@rule("HPC229", "charliecloud-gpu-image-without-driver", "error",
      summary="a GPU job makes a Charliecloud image directory (ch-convert, ch-tar2dir, tar -x) and runs ch-run on it "
              "without ch-fromhost --nvidia",
      why="ch-run (0.40 and earlier) has no GPU flag: the NVIDIA driver libraries (libcuda.so and the others "
          "nvidia-container-cli lists) must be in the image, and ch-fromhost --nvidia copies them from the host into "
          "an image directory ('run after ch-convert and before ch-run', ch-fromhost(1)). A directory the job has "
          "just unpacked or converted has none, so CUDA finds no driver: the program stops, or quietly runs on the "
          "CPU. Reported only for a directory the job makes itself: an existing directory or a SquashFS image may "
          "have had its libraries injected earlier, which the script cannot show; nor on AMD GPUs, whose driver is in "
          "the kernel.",
      fix="Run ch-fromhost --nvidia on the directory after it is made and before ch-run (on every node where each "
          "node unpacks its own copy: srun --ntasks-per-node=1 ch-fromhost --nvidia DIR).",
      catalogue=(6,),
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:1
img=/tmp/$SLURM_JOB_ID/pytorch
ch-convert "$SCRATCH/images/pytorch_2.3.tar.gz" "$img"
ch-run -b "$SCRATCH/data:/mnt/0" "$img" -- python /opt/train.py --data /mnt/0
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:1
img=/tmp/$SLURM_JOB_ID/pytorch
ch-convert "$SCRATCH/images/pytorch_2.3.tar.gz" "$img"
ch-fromhost --nvidia "$img"
ch-run -b "$SCRATCH/data:/mnt/0" "$img" -- python /opt/train.py --data /mnt/0
""")
def _image_without_driver(ctx: Context) -> Iterator[Any]:
    if profile_vendor(ctx) not in ("", "nvidia") or shows_amd(ctx):
        return
    made = _made_image_directories(ctx)
    if not made:
        return
    injected = _injected_directories(ctx)
    reported: set[str] = set()
    for step in steps(ctx):
        c = step.chain.container
        if c is None or c.kind != "charliecloud.run" or not c.image:
            continue
        if not (ctx.job.gpus_on_each_node or (step.chain.srun is not None and own_gpu_request(step.chain.srun))):
            continue
        if any(str(w).partition("=")[0] in _RUN_TIME_DEVICES for w in c.extra):
            continue
        image = _directory_key(ctx.parsed.resolve(str(c.image), step.line))
        making = [(line, how, srun) for line, key, how, srun in made if key == image and line <= step.line]
        if not making or image in reported:
            continue
        line, how, srun = making[-1]
        if any(key == image and line <= at <= step.line for at, key in injected):
            continue
        reported.add(image)
        run = "srun --ntasks-per-node=1 ch-fromhost --nvidia" if srun else "ch-fromhost --nvidia"
        named = f'"{c.image}"' if re.search(r"[$\s]", str(c.image)) else str(c.image)
        yield (step.line, f"ch-run runs {c.image} on GPUs, but it is a directory this job has just made ({how}, "
                          f"line {line}) and no ch-fromhost --nvidia put the host's NVIDIA driver libraries into it: "
                          "ch-run adds none itself, so CUDA finds no driver and the program stops or runs on the "
                          f"CPU; add {run} {named} after line {line}")


def _made_image_directories(ctx: Context) -> list[tuple[int, str, str, bool]]:
    """The image directories the batch script makes, as ``(line, directory, how, under srun)``: ``ch-convert`` to a
    directory, ``ch-tar2dir TARBALL DIR`` (into DIR/NAME), ``tar -x … -C DIR``. Only a command the script always runs
    counts: one in an ``if``, a loop or a function, or after ``||`` (``[ -d "$img" ] || ch-convert …``), may find the
    directory made, and injected, by an earlier job."""
    from ..parse.argv import parse_argv
    out = []
    code = simple_commands(ctx)
    for i, cmd in enumerate(code):
        before = code[i - 1] if i else None
        if before is not None and (before.joined_by == "||"
                                   or (before.joined_by == "&&" and before.name in ("[", "test"))):
            continue
        written = launch_words([str(v) for v in cmd.argv])
        under_srun = bool(written) and written[0].rsplit("/", 1)[-1] == "srun"
        words = run_words(written)
        program = words[0].rsplit("/", 1)[-1] if words else ""
        directory, how = "", ""
        if program == "ch-convert":
            try:
                model = parse_argv(words).model
            except ParseError:
                continue
            output = ctx.parsed.resolve(str(model.output), cmd.line)
            if (model.output_format or image_format(output)) == "dir":
                directory, how = output, "ch-convert"
        elif program == "ch-tar2dir":
            operands = [w for w in words[1:] if not w.startswith("-")]
            if len(operands) == 2:
                name = _TARBALL_SUFFIX.sub("", operands[0].rstrip("/").rsplit("/", 1)[-1])
                directory, how = f"{ctx.parsed.resolve(operands[1], cmd.line)}/{name}", "ch-tar2dir"
        elif program == "tar":
            target = staged_to(words)
            if target:
                directory, how = ctx.parsed.resolve(target, cmd.line), "tar -x"
        if directory:
            out.append((cmd.line, _directory_key(directory), how, under_srun))
    return out


def _injected_directories(ctx: Context) -> list[tuple[int, str]]:
    """``(line, directory)`` for every ``ch-fromhost`` that injects files into an image directory, wherever it runs
    (in an ``if``, under srun, in a bash -c script)."""
    out = []
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = run_words(launch_words([str(v) for v in cmd.argv]))
        if len(words) < 2 or words[0].rsplit("/", 1)[-1] != "ch-fromhost":
            continue
        if any(w.partition("=")[0] in _INJECTING for w in words[1:-1]):
            out.append((cmd.line, _directory_key(ctx.parsed.resolve(words[-1], cmd.line))))
    return out


def _directory_key(path: str) -> str:
    """A directory's path written one way: without doubled or trailing slashes."""
    return re.sub(r"/+", "/", path).rstrip("/") or "/"


# --------------------------------------------------------------------------------------------
# HPC609: a JupyterHub single-user server in a job that drops the hub's variables

#: the programs that start a JupyterHub single-user server (batchspawner's wrapper runs jupyterhub-singleuser)
_SINGLEUSER_PROGRAMS = ("jupyterhub-singleuser", "batchspawner-singleuser")
_SINGLEUSER_MODULES = ("jupyterhub.singleuser", "batchspawner.singleuser")
#: the variables jupyterhub-singleuser takes its API token from (JPY_API_TOKEN: the old name, still read)
_TOKEN_VARIABLES = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
#: commands that name a program without starting it
_NOT_STARTING = ("echo", "printf", ":", "which", "type", "command", "hash", "whereis", "ls", "test", "[")


@rule("HPC609", "jupyterhub-server-without-hub-variables", "error",
      summary="a JupyterHub single-user server (batchspawner) runs in a job whose #SBATCH --export drops "
              "JUPYTERHUB_API_TOKEN",
      why="batchspawner submits the job with the hub's variables in sbatch's environment (JUPYTERHUB_API_TOKEN, "
          "JUPYTERHUB_API_URL, JUPYTERHUB_SERVICE_PREFIX …), and its own template keeps them with "
          "#SBATCH --export={{keepvars}}. --export=NONE passes only the SLURM_* variables, and an --export list "
          "without ALL only the variables it names, so the server finds no token and stops at once with "
          "'JUPYTERHUB_API_TOKEN env is required to run jupyterhub-singleuser. Did you launch it manually?'; the hub "
          "waits for it until its start timeout. unset SLURM_EXPORT_ENV (HPC516) does not help: the batch shell "
          "itself lacks the variables.",
      fix="Keep batchspawner's #SBATCH --export={{keepvars}} line in the template (or --export=ALL), or add "
          "JUPYTERHUB_API_TOKEN and the other JUPYTERHUB_* variables to the --export list.",
      bad="""#!/bin/bash
#SBATCH --job-name=spawner-jupyterhub
#SBATCH --export=NONE
#SBATCH --time=04:00:00
batchspawner-singleuser jupyterhub-singleuser --ip=0.0.0.0
""",
      good="""#!/bin/bash
#SBATCH --job-name=spawner-jupyterhub
#SBATCH --export={{keepvars}}
#SBATCH --time=04:00:00
batchspawner-singleuser jupyterhub-singleuser --ip=0.0.0.0
""")
def _hub_variables_dropped(ctx: Context) -> Iterator[Any]:
    export = next((d for d in reversed(ctx.parsed.directives) if d.flag == "--export" and d.applied
                   and not d.component), None)
    if export is None:
        return
    value = str(export.value).strip()
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items or any(mark in value for mark in ("{", "$")):
        return  # a template's placeholder ({{keepvars}}), or text sbatch takes as it is
    if any(item.upper() == "ALL" or item.partition("=")[0] in _TOKEN_VARIABLES for item in items):
        return
    if any(v.name in _TOKEN_VARIABLES for v in ctx.parsed.variables):
        return  # the script gives the server its token itself
    server = _singleuser_server(ctx)
    if server is None:
        return
    line, name = server
    passes = ("only the SLURM_* variables" if items[0].upper() in ("NONE", "NIL")
              else "only the SLURM_* variables and those it names")
    yield (export.line, f"--export={value} passes {passes} into the job, but {name} (line {line}) is a JupyterHub "
                        "single-user server, which gets its token and the hub's address from the environment the hub "
                        "gave sbatch: it stops with 'JUPYTERHUB_API_TOKEN env is required to run "
                        "jupyterhub-singleuser'; keep batchspawner's --export={{keepvars}} (or ALL), or add "
                        "JUPYTERHUB_API_TOKEN and the other JUPYTERHUB_* variables to the list")


def _singleuser_server(ctx: Context) -> tuple[int, str] | None:
    """Where the script starts a JupyterHub single-user server, with its program as written there (also in a
    container, under srun, in an ``if`` or a bash -c script); None when it starts none."""
    if "singleuser" not in ctx.parsed.source:
        return None
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = [str(v) for v in cmd.argv]
        if not words or words[0].rsplit("/", 1)[-1] in _NOT_STARTING:
            continue
        for i, word in enumerate(words):
            base = word.rsplit("/", 1)[-1]
            if base in _SINGLEUSER_PROGRAMS:
                return cmd.line, base
            plain, written = python_module_words(words[i:]) if _PYTHON.fullmatch(base) else ([], "")
            if written and plain[2] in _SINGLEUSER_MODULES:  # python -u -m jupyterhub.singleuser too
                return cmd.line, f"python -m {plain[2]}"
    return None
