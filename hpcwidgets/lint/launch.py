"""Rules about distributed launch: torchrun, accelerate, DeepSpeed and Lightning started by srun on the job's
nodes, and the rendezvous (head node, port, node count) that lets their processes find each other.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Any, Callable, Iterator

from ..parse.lexer import DECLARATION_BUILTINS
from ..parse.script import launch_words
from ..spec._words import Verbatim
from ..spec.slurm import gpu_total, node_range, Srun
from ..spec.torchrun import DEFAULT_RDZV_PORT, HEAD_NODE_LINE, HEAD_NODE_VAR
from ..spec.units import is_number
from . import Context, Fix, rule
from .catalogue import (MPI_LAUNCHERS, NODE_LOCAL, _ACCELERATE_SWITCHES, _DEEPSPEED_SWITCHES, _PYTHON, _holds_reference,
                        _Inner, _launcher_call, _launcher_options, _per_task_endpoint, _per_task_rendezvous_text,
                        _shell_c_script, _simple_commands, _step_nodes, accelerate_path, all_words, as_int, ast_name,
                        cached, each_component, exclusive, expanded_refs, fix_for, held_commands, heterogeneous,
                        in_job_component, inherited_gpus, inherited_per_task, is_legacy, job_component_steps, job_cpus,
                        job_nodes,
                        job_tasks, multi_node, other_launches, own_task_gpus, python_code, python_module_words,
                        shell_script_word, simple_commands, step_tasks, steps, tasks_per_node, with_chain)
from .devices import one_gpu_each


NODELIST_VARS = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")

#: a reference to a node list (a compressed one: gpu[01-02])
_NODELIST_REF = re.compile(r"\$\{?(?:" + "|".join(NODELIST_VARS) + r")\}?")


def count_fix(ctx: Context, description: str, step: Any, chain: Any, before: tuple[str, ...] = ()) -> Fix | None:
    """``fix_for`` for a rule that compares a step with the job's counts: none in a heterogeneous job, where
    those counts are one component's and the model of the job is not the whole of it."""
    if heterogeneous(ctx):
        return None
    return fix_for(ctx, description, step, chain, before)


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
        msg += _inherited_task_count(ctx, step.chain.srun)
        msg += "; " + advice
        yield step.line, msg, count_fix(ctx, advice, step, chain) if fixable else None
    yield from _accelerate_launchers_per_node(ctx)


def _inherited_task_count(ctx: Context, srun: Any) -> str:
    """Why an srun that says --ntasks-per-node=1 still starts several tasks per node: it takes the job's task count
    (SLURM_NTASKS) as its --ntasks, which wins over --ntasks-per-node ("" for any other srun)."""
    if not (isinstance(srun.ntasks_per_node, int) and srun.ntasks_per_node == 1) or srun.ntasks is not None:
        return ""
    tasks = job_tasks(ctx) or 0
    count = f" (SLURM_NTASKS={tasks})" if tasks > 1 else ""
    return (f"; srun takes the job's task count{count} as its --ntasks, which wins over its own "
            "--ntasks-per-node=1")


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


#: the GPUs of the node a task runs on, as Slurm gives them
_GPU_COUNT_VAR = re.compile(r"\$\{?(?:SLURM_GPUS_ON_NODE|SLURM_GPUS_PER_NODE)\}?")


def _one_launcher_per_node(ctx: Context, step: Any, per_node: int) -> tuple[Any, str, bool]:
    """HPC101's remedy: one launcher per node, with the node's GPUs and the CPUs its launchers had. Returns the
    changed chain, the advice (which names every option the chain changes, so the message and --fix agree) and
    whether the chain may replace the step."""
    launcher, gpus = step.chain.launcher, ctx.job.gpus_on_each_node
    nodes = _step_nodes(ctx, step)  # srun -N1 -n4: one launcher on the step's one node, not the job's
    # a launch that follows the job's size (--nnodes=$SLURM_NNODES) gets a task count that follows it too, so the
    # script still works when it is submitted with another -N
    follows = "$" in str(launcher.nnodes or "") and step.chain.srun.nodes is None
    srun = step.chain.srun.replace(ntasks_per_node=1, ntasks="$SLURM_JOB_NUM_NODES" if follows else nodes)
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
    # the node's GPU count as Slurm gives it ($SLURM_GPUS_ON_NODE) is kept: it is right whatever the job asks for
    kept = _GPU_COUNT_VAR.fullmatch(str(launcher.nproc_per_node or "").strip("\"'"))
    new_nproc = launcher.nproc_per_node if kept else str(gpus) if gpus else launcher.nproc_per_node
    chain = type(step.chain)(srun, step.chain.container, launcher.replace(nproc_per_node=new_nproc),
                             step.chain.program, step.chain.notes)
    # a run in the background or on GPUs picked by hand (CUDA_VISIBLE_DEVICES=1 srun … &) is one of
    # several sharing the node: giving it every GPU and CPU would make them queue one after another
    shared_node = step.command.joined_by == "&" or "CUDA_VISIBLE_DEVICES" in dict(step.env)
    whole = not per_task or bool(gpus)  # GPUs per task and no count of the node's: the fix cannot be whole
    fixable = whole and not shared_node
    advice = (f"start one torchrun per node: use srun --ntasks={srun.ntasks} --ntasks-per-node=1 so torchrun starts one "
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
                          f"{same_rank}{_inherited_task_count(ctx, launch.srun)}; start one launcher per node: "
                          f"srun --ntasks={nodes} --ntasks-per-node=1, "
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
        port = endpoint.rsplit(":", 1)[1] if ":" in endpoint and is_number(endpoint.rsplit(":", 1)[1]) else str(DEFAULT_RDZV_PORT)
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


#: an accelerate config file named for DeepSpeed (ds_zero3.yaml, deepspeed_multinode.yaml, zero2.yaml): its
#: multi-node launcher (pdsh by default) starts the other machines from the first one
_DEEPSPEED_CONFIG = re.compile(r"(?i)(^|[^a-z])(ds|deepspeed|zero[0-9]?)([^a-z]|$)")

#: programs that start work on other nodes themselves (besides srun)
_REMOTE_STARTERS = ("srun", "mpirun", "mpiexec", "pdsh", "clush", "ssh")


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
          "accelerate launch only when nothing else in the script starts work on the other nodes. Nor is a torchrun "
          "for one node (--standalone, --nnodes=1) in a script whose other launches srun starts on every node: a "
          "check of the data or a baseline before the multi-node run.",
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
        nodes = job_nodes(ctx)
        if _one_node_check(ctx, step):
            continue
        srun = Srun(ntasks=_one_per_node(ctx, nodes), ntasks_per_node=1)
        how = f"srun{f' --ntasks={nodes}' if srun.ntasks else ''} --ntasks-per-node=1"
        chain = type(step.chain)(srun, step.chain.container, step.chain.launcher, step.chain.program, step.chain.notes)
        # the fix writes srun where the launch starts, after the wrappers: one that sets how a process runs
        # (numactl -C 0-3, taskset, nice) would then apply to srun, not to the tasks it starts elsewhere
        fix = None if _pins_the_process(step) else count_fix(ctx, f"launch on every node with {how}", step, chain)
        yield (step.line, f"this job has {nodes} nodes but the launcher runs in the batch shell, on the first node "
                          f"only; start it with {how}", fix)
    yield from _other_launchers_on_first_node(ctx)
    yield from _ray_on_first_node(ctx)


def _one_node_check(ctx: Context, step: Any) -> bool:
    """Whether ``step``, a launcher in the batch shell, is for one node by its own options (torchrun --standalone,
    --nnodes=1) in a job whose other steps start work on all its nodes with srun (a check of the data, a baseline,
    before the multi-node run): a step of one node on purpose. Not where those steps run only when it does not
    (the other branch of its if)."""
    launcher = step.chain.launcher
    if not (getattr(launcher, "standalone", False) or str(getattr(launcher, "nnodes", "") or "") in ("1", "1:1")):
        return False
    return any(other.chain.srun is not None and other.chain.launcher is not None and not exclusive(ctx, step, other)
               for other in steps(ctx) if other is not step)


def _one_per_node(ctx: Context, nodes: int) -> int | None:
    """The --ntasks an srun of one task per node on ``nodes`` nodes must say: srun takes the job's task count as its
    --ntasks, which wins over --ntasks-per-node, so a job of several tasks per node needs the count said too (None
    when the job has no more tasks than nodes)."""
    return nodes if (job_tasks(ctx) or 0) > nodes else None


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
          "that may give it) makes the start fail. An SGLang server over several nodes (--nnodes above 1) meets at "
          "its --dist-init-addr, where 127.0.0.1 or localhost hangs alike.",
      fix="Use the head node resolved on the host: head_node=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | "
          "sed -n 1p) and --rdzv-endpoint=\"$head_node:29500\" (for the static rendezvous --master-addr=\"$head_node\", "
          "a host only: its port is --master-port's).",
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
        # --master-addr names the host of the static rendezvous only (c10d ignores it: HPC105)
        names = ("rdzv_endpoint", "master_addr") if launcher.rdzv_backend in ("", "static") else ("rdzv_endpoint",)
        for name in names:
            value = ctx.parsed.resolve(str(getattr(launcher, name) or ""), step.line)
            host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
            if host in LOCAL_HOSTS:
                nodes = max(job_nodes(ctx), launcher.nnodes_int or 0)
                yield _local_rendezvous(ctx, step, launcher, name, value, nodes)
                break
    yield from _sglang_local_address(ctx)
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


def _local_rendezvous(ctx: Context, step: Any, launcher: Any, name: str, value: str, nodes: int) -> Any:
    """HPC103 for --rdzv-endpoint (or the static rendezvous's --master-addr) at localhost: the fix names the head
    node in the option's own form, HOST:PORT for the endpoint and the host alone for --master-addr, whose port is
    --master-port's."""
    hangs = f"--{name.replace('_', '-')}={value} on a {nodes}-node launch: every node meets only itself and the job hangs"
    head = () if ctx.parsed.variable(HEAD_NODE_VAR, step.line) is not None else (HEAD_NODE_LINE,)
    if name == "master_addr":
        chain = with_chain(step.chain, launcher=launcher.replace(master_addr=f"${HEAD_NODE_VAR}"))
        return (step.line, f"{hangs}; use the head node, resolved with scontrol show hostnames: "
                           "--master-addr=\"$head_node\" (a host only: the port is --master-port's)",
                fix_for(ctx, "--master-addr at the head node resolved on the host", step, chain, head))
    port = value.rsplit(":", 1)[1] if ":" in value else str(DEFAULT_RDZV_PORT)
    chain = with_chain(step.chain, launcher=launcher.replace(
        rdzv_endpoint=f"${HEAD_NODE_VAR}:{port}", rdzv_backend=launcher.rdzv_backend or "c10d", master_addr=""))
    return (step.line, f"{hangs}; use the head node ($head_node:{port}) resolved with scontrol show hostnames",
            fix_for(ctx, "rendezvous at the head node resolved on the host", step, chain, head))


@rule("HPC138", "rendezvous-variable-never-set", "warning",
      summary="the rendezvous host or port is a variable (MASTER_ADDR, MASTER_PORT) that nothing in the script sets "
              "before the launch expands it",
      why="Slurm does not set MASTER_ADDR or MASTER_PORT (nor any variable a script names for its rendezvous): the "
          "job has them only when the shell sbatch was run from exported them, since sbatch hands the job that "
          "shell's environment (--export=ALL, its default). Submitted from a fresh login they are empty, and torchrun "
          "gets a rendezvous without a host or port (an endpoint of ':' has no port number, and torchrun stops at "
          "once); submitted from a shell left over from another job, the nodes "
          "meet at that job's address. Left alone when the script may set the variable some way this cannot follow: "
          "it names the variable other than by expanding it (an assignment, read, export, a ${VAR:-default}, "
          "--export=VAR=…), or it sources a file, evals text or exports names it computes. Slurm's own variables "
          "(SLURM_*) and bash's (HOSTNAME) are other rules' business. An assignment on the launch's own line "
          "(MASTER_PORT=29500 srun torchrun … \"$MASTER_ADDR:$MASTER_PORT\", or srun --export=ALL,MASTER_PORT=29500) "
          "does not count: bash expands the command's words before such assignments take effect (Bash manual, "
          "Simple Command Expansion), so the launch gets it empty; it does reach each task's own shell, so "
          "srun bash -c '… $MASTER_PORT …' is right. Besides torchrun's options, MASTER_ADDR and MASTER_PORT "
          "are followed into any program's arguments (--dist-url tcp://$MASTER_ADDR:$MASTER_PORT, deepspeed's "
          "--master_addr).",
      fix="Set them in the script, before the launch: export MASTER_ADDR=$(scontrol show hostnames "
          "\"$SLURM_JOB_NODELIST\" | head -n 1) and export MASTER_PORT=29500.",
      catalogue=(2,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_PORT=29500
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" train.py
""")
def _rendezvous_variable_unset(ctx: Context) -> Iterator[Any]:
    if _may_set_any_variable(ctx):
        return
    launched = set()
    for step in steps(ctx):
        launcher = step.chain.launcher
        if launcher is None:
            continue
        launched.add(step.line)
        here = _set_on_the_line(step.command)
        for option in ("rdzv_endpoint", "master_addr", "master_port"):
            value = str(getattr(launcher, option, None) or "")
            unset = _unset_refs(ctx, value, here)
            if unset:
                host = {"rdzv_endpoint": value.rsplit(":", 1)[0], "master_addr": value}.get(option, "")
                shown = value.replace("\\$", "$")  # a reference each task expands (srun bash -c '…') reads as written
                yield step.line, _unset_message(f"--{option.replace('_', '-')}={shown}", unset, _plain_refs(host))
    # another program given the two well-known names (--dist-url tcp://$MASTER_ADDR:$MASTER_PORT, deepspeed's
    # --master_addr): other names may be the program's own business
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner) or cmd.line in launched or not cmd.words or cmd.name in _NOT_A_PROGRAM:
            continue
        here = _set_on_the_line(cmd)
        words = [str(w.value) for w in cmd.words]
        for before, value in zip(["", *words], words):
            unset = [(name, how) for name, how in _unset_refs(ctx, value, here) if name in _RENDEZVOUS_NAMES]
            if unset:
                shown = value.replace("\\$", "$")
                what = f"{before} {shown}" if before.startswith("-") and "=" not in before else shown
                yield cmd.line, _unset_message(what, unset, ["MASTER_ADDR"])
                break


#: the rendezvous variables every launcher's documentation names (torch.distributed's env:// init reads them)
_RENDEZVOUS_NAMES = ("MASTER_ADDR", "MASTER_PORT")

#: commands that hand a value to no program: printing, testing and declaring it
_NOT_A_PROGRAM = frozenset({"echo", "printf", ":", "[", "[[", "test", *DECLARATION_BUILTINS})


def _set_on_the_line(cmd: Any) -> dict[str, str]:
    """The variables ``cmd`` sets for the program it starts, by name, with how: ``NAME=value`` before it, or in
    srun's ``--export=…,NAME=value``. The batch shell expands the command's words before either takes effect."""
    found = {name: "an assignment before the command" for name, _ in cmd.assignments
             if cmd.name not in DECLARATION_BUILTINS}
    words = [str(w.value) for w in cmd.words]
    for flag, value in zip(words, [*words[1:], ""]):
        listed = flag[len("--export="):] if flag.startswith("--export=") else value if flag == "--export" else ""
        for item in listed.split(","):
            name = item.split("=", 1)[0]
            if "=" in item and name not in found:
                found[name] = "srun's --export"
    return found


def _unset_refs(ctx: Context, value: str, here: dict[str, str]) -> list[tuple[str, str]]:
    """The variables ``value`` expands that the job does not have there, as (name, how the line sets it, or "" when
    nothing sets it). A variable set only on the line itself is empty where the batch shell expands it, but right
    where each task's shell does (``srun bash -c '… $MASTER_ADDR …'``, written ``\\$`` here)."""
    found = []
    for name in dict.fromkeys(_plain_refs(value)):
        if _named_otherwise(ctx, name, here.get(name, "")):
            continue
        if name in here and not re.search(rf"(?<!\\)\$\{{?{name}\b", value):
            continue  # only each task's shell expands it, after srun has put it in the task's environment
        found.append((name, here.get(name, "")))
    return found


def _unset_message(what: str, unset: list[tuple[str, str]], host: list[str]) -> str:
    """HPC138's message for ``what`` (``--rdzv-endpoint=…``, a program's word) and its unset variables; ``host`` names
    the variables that stand for a host (their fix is the head node, the others' a port)."""
    setting = "; ".join(f"export {name}=" + (_HEAD_NODE_COMMAND if name in host else str(DEFAULT_RDZV_PORT))
                        for name, _ in unset)
    same = [(name, how) for name, how in unset if how]
    never = [name for name, how in unset if not how]
    parts = []
    if never:
        names = " and ".join(f"${name}" for name in never)
        parts.append(f"nothing in the script sets {names}, and Slurm does not either, so the job has only what the "
                     "shell you ran sbatch from exported (sbatch passes its environment on), and from a fresh login "
                     "that is nothing")
    if same:
        names = " and ".join(f"${name}" for name, _ in same)
        hows = " and ".join(dict.fromkeys(how for _, how in same))
        parts.append(f"{names} {'is' if len(same) == 1 else 'are'} set on this same command line ({hows}), but bash "
                     "expands the command's words before such assignments take effect (Bash manual, Simple Command "
                     f"Expansion), so {'it is' if len(same) == 1 else 'they are'} empty here")
    them, its = ("it", "its") if len(unset) == 1 else ("them", "their")
    own = f" on a line of {its} own" if same else ""
    return f"{what}: {'; '.join(parts)}; set {them}{own} before the launch: {setting}"


def _plain_refs(text: str) -> list[str]:
    """The names ``text`` expands as a plain ``$NAME`` or ``${NAME}``, in order (not ``${NAME:-default}``, which
    has a value when the variable is unset)."""
    return [m.group(1) or m.group(2) for m in _PLAIN_REF.finditer(text)]


#: a plain ``$NAME`` or ``${NAME}`` (not ``${NAME:-default}``, which gives a value when the variable is unset)
_PLAIN_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

#: variables bash or Slurm set in every job: not a rendezvous variable a script forgot
_SET_IN_EVERY_JOB = re.compile(r"SLURM_\w+|SLURMD_\w+|HOSTNAME|HOME|USER|RANDOM|PWD")

#: the command that gives the job's first node, for the message
_HEAD_NODE_COMMAND = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'


def _named_otherwise(ctx: Context, name: str, on_the_line: str = "") -> bool:
    """Whether the script may give ``name`` a value: it names it other than by a plain expansion (an assignment,
    ``read``, ``export NAME``, ``${NAME:-x}``, ``--export=NAME=…``, a comment), or bash or Slurm set it. The one
    naming ``on_the_line`` (how the launch's own line sets it, see :func:`_set_on_the_line`) does not count."""
    if _SET_IN_EVERY_JOB.fullmatch(name):
        return True
    source = ctx.parsed.source
    mentions = len(re.findall(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", source))
    expansions = len(re.findall(rf"\$(?:{name}(?![A-Za-z0-9_])|\{{{name}\}})", source))
    return mentions - (1 if on_the_line else 0) > expansions


def _may_set_any_variable(ctx: Context) -> bool:
    """Whether the script runs code that may set variables it does not name: it sources a file (``source``,
    ``.``), evals text, or exports or declares names it computes (``export $(cat .env | xargs)``)."""
    def make() -> bool:
        for cmd in _simple_commands(ctx.parsed.lexed.code):
            words = [str(w) for w in cmd.argv]
            if not words:
                continue
            if words[0] in ("source", ".", "eval"):
                return True
            if words[0] in ("export", "declare", "typeset", "readonly", "local") \
                    and any("$" in w.split("=", 1)[0] for w in words[1:]):
                return True  # a name computed when the script runs
        return False
    return cached(ctx, "may_set_any_variable", make)


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


@rule("HPC116", "same-rank-on-every-node", "error",
      summary="srun starts the launcher on several nodes with one fixed --node-rank, or none (or one accelerate "
              "--machine_rank, or none; or one SGLang --node-rank)",
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
        late = _written_after_script(launcher.args, ("--node-rank", "--node_rank")) if missing else ""
        if late:
            yield (step.line, f"torchrun: {late} comes after {launcher.script or 'the script'}, so torchrun passes it "
                              "to the script and every node takes rank 0; move it before the script (with "
                              "$SLURM_NODEID in srun bash -c '…'), or use the c10d rendezvous, which numbers the nodes "
                              "itself")
            continue
        if missing:
            yield step.line, f"torchrun: {missing[0]}"  # no --node-rank: every node takes the default, 0
            continue
        if is_number(rank):
            yield (step.line, f"srun starts torchrun on {nodes} nodes, each with --node-rank={rank}: every node claims "
                              "the same rank and the job hangs; use the c10d rendezvous (no --node-rank) or "
                              "srun bash -c '… --node-rank=$SLURM_NODEID …'")
    yield from _accelerate_same_rank(ctx)
    yield from _sglang_same_rank(ctx)


def _sglang_local_address(ctx: Context) -> Iterator[Any]:
    """HPC103 for an SGLang server of several nodes (--nnodes above 1) whose --dist-init-addr is this node itself."""
    for server in _servers(ctx):
        if server.engine != "sglang":
            continue
        count = server.sizes.get("nnodes", ("", ""))[1]
        value = ctx.parsed.resolve(server.sizes.get("dist_init", ("", ""))[1].strip("\"'"), server.line)
        host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
        if is_number(count) and int(count) > 1 and host in LOCAL_HOSTS:
            option = server.sizes["dist_init"][0]
            yield (server.line, f"{server.name} --nnodes {count} meets at {option} {value}, which every node reads as "
                                "itself: the nodes never find each other and the servers wait until they time out; "
                                "give the head node resolved on the host: head_node=$(scontrol show hostnames "
                                f"\"$SLURM_JOB_NODELIST\" | head -n 1), then {option} \"$head_node:5000\"")


def _sglang_same_rank(ctx: Context) -> Iterator[Any]:
    """HPC116 for an SGLang server srun starts on several nodes with one --node-rank number for all."""
    for server in _servers(ctx):
        step = server.step
        if server.engine != "sglang" or step is None or step.chain.srun is None or not in_job_component(ctx, step):
            continue
        nodes = _step_nodes(ctx, step)
        rank = server.sizes.get("node_rank", ("", ""))[1].strip("\"'")
        if nodes >= 2 and is_number(rank):
            yield (server.line, f"srun starts {server.name} on {nodes} nodes, each with --node-rank {rank}: every node "
                                "claims the same rank and the servers wait for the missing ones until they time out; "
                                "let each node take its own: srun bash -c '… --node-rank \"$SLURM_NODEID\" …'")


def _accelerate_same_rank(ctx: Context) -> Iterator[Any]:
    """HPC116 for accelerate launch started by srun on several nodes, once per machine: one --machine_rank number
    for all (ignored only by --rdzv_backend c10d), none at all, or none beside one --config_file every node reads
    (whose one machine_rank every node then takes)."""
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
        if is_number(number):
            if opts.get("--rdzv_backend", "static") == "static":
                yield (step.line, f"srun starts accelerate launch on {nodes} nodes, each with --machine_rank {number}: "
                                  "every node claims the same rank and the job hangs; let each node take its own: "
                                  "srun bash -c 'accelerate launch … --machine_rank \"$SLURM_NODEID\" …'")
        elif rank is None and machines is not None and machines > 1 and "--config_file" in opts:
            # (path "" too: the file may choose the launcher, but started on every node it is one per machine)
            config = ctx.parsed.resolve(opts["--config_file"], step.line)
            if "$" not in config and not NODE_LOCAL.match(config) and opts.get("--rdzv_backend", "static") == "static":
                # one file for every node (a name with $SLURM_NODEID in it, or one on each node's own disk written
                # there by an earlier step, may hold each node's own rank)
                yield (step.line, f"srun starts accelerate launch --num_machines {machines} on {nodes} nodes, each "
                                  f"reading --config_file {config} and no --machine_rank: every node takes the file's "
                                  "one machine_rank, so the static rendezvous waits for the ranks nobody claims and "
                                  "the job hangs (unless the file sets rdzv_backend: c10d); pass each node's rank on "
                                  "the command line, which wins over the file: srun bash -c 'accelerate launch … "
                                  "--machine_rank \"$SLURM_NODEID\" …'")
        elif rank is None and path == "per_machine" and machines is not None and machines > 1:
            late = _written_after_script(launch.script_args, ("--machine_rank", "--machine-rank"))
            if late:
                yield (step.line, f"srun starts accelerate launch --num_machines {machines} on {nodes} nodes, and its "
                                  f"{late} comes after the training script, so accelerate passes it to the script and "
                                  "takes no rank itself; move it before the script: srun bash -c 'accelerate launch … "
                                  "--machine_rank \"$SLURM_NODEID\" train.py …'")
                continue
            yield (step.line, f"srun starts accelerate launch --num_machines {machines} on {nodes} nodes without "
                              "--machine_rank: without a config file accelerate stops at once (int(None): TypeError), "
                              + _saved_config_rank(opts.get("--rdzv_backend", "static"))
                              + "; pass each node's rank on the command line, which needs no such file: srun bash "
                                "-c 'accelerate launch … --machine_rank \"$SLURM_NODEID\" …'")


def _written_after_script(script_args: Any, names: tuple[str, ...]) -> str:
    """The rank option (``--node-rank=$SLURM_NODEID``) written among the script's own arguments, as written ("" when
    it is not there): the launcher never sees it, and that is the cause to name rather than "no rank"."""
    words = [str(w).replace("\\$", "$") for w in script_args]  # as the task expands it inside bash -c "…"
    for k, word in enumerate(words):
        name, eq, _ = word.partition("=")
        if name in names:
            return word if eq or k + 1 == len(words) else f"{word} {words[k + 1]}"
    return ""


def _saved_config_rank(backend: str) -> str:
    """What HPC116 says of a saved default config, whose one machine_rank every node then takes: the static
    rendezvous waits for the ranks nobody claims; c10d numbers the nodes itself and ignores it (it is torchrun's
    --node-rank, HPC105), so there the job runs, as long as the file is there."""
    if backend == "static":
        return "and a saved default config gives every node the file's one rank, so the job hangs"
    return (f"and it runs only where a saved default config (~/.cache/huggingface/accelerate) supplies a rank (the "
            f"same on every node, which does no harm, as the {backend} rendezvous numbers the nodes itself): the job "
            "then depends on a file in your home that the script does not show, and breaks where it is missing")


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
      summary="--node-rank / --master-addr / --master-port given where the rendezvous at --rdzv-endpoint ignores them",
      why="The c10d rendezvous assigns node ranks itself and meets at --rdzv-endpoint, so torchrun silently ignores "
          "all three. The static rendezvous (torchrun's default backend, without --rdzv-backend) meets at "
          "--rdzv-endpoint too when it is given, and then ignores --master-addr and --master-port (it still reads "
          "each node's --node-rank). Ignored options only mislead whoever reads the script, and whoever edits "
          "them to move the rendezvous.",
      fix="Remove the ignored options: with c10d all three (keep --rdzv-backend=c10d --rdzv-endpoint=\"$head_node:29500\"); "
          "with the static rendezvous --master-addr and --master-port.",
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
        ignored = launcher.ignored_options() if launcher is not None else ()
        if not ignored:
            continue
        given = [f"--{n.replace('_', '-')}" for n in ignored]
        c10d = launcher.rdzv_backend == "c10d"
        chain = with_chain(step.chain, launcher=launcher.replace(**{n: None if n == "master_port" else ""
                                                                    for n in ignored}))
        by = ("the c10d rendezvous (it assigns ranks itself)" if c10d else
              "the static rendezvous, torchrun's default backend, which meets at --rdzv-endpoint")
        yield (step.line, f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} ignored by {by}; remove "
                          f"{'it' if len(given) == 1 else 'them'}",
               fix_for(ctx, f"remove options {'the c10d' if c10d else 'the static'} rendezvous ignores", step, chain))


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
        fixed_master = not launcher.rdzv_endpoint and is_number(master) and int(master) != 0
        # (no rendezvous option at all is not reported: torchrun before 2.11 took port 29500 then, but newer
        # releases pick a free port on one node by themselves, and the image's version is not in the script)
        if not ((is_number(port) and int(port) != 0) or fixed_master):
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


@rule("HPC107", "gpus-per-node-variable", "error",
      summary="$SLURM_GPUS_PER_NODE used as a number",
      why="SLURM_GPUS_PER_NODE repeats the request as written: with a typed request it is 'a100:4', not 4, and "
          "it is unset for --gres requests, so --nproc-per-node=$SLURM_GPUS_PER_NODE breaks. Reported where the "
          "value reaches something that reads a number: a program's option or argument, arithmetic, or a variable "
          "later used so or exported (the programs then read it). Printing it (echo, printf), testing it as text "
          "([[ $SLURM_GPUS_PER_NODE == *:* ]]), "
          "passing it back to --gpus-per-node, and reducing a typed value to its count (${SLURM_GPUS_PER_NODE#*:}, "
          "${SLURM_GPUS_PER_NODE//a100:/}, cut -d: -f2, awk -F: '{print $NF}') are fine, and a variable the script "
          "also gives the count alone (in the other branch of such a test) is taken as handled. With an untyped "
          "--gpus-per-node=4 the value is 4, and the mirror mistake is reported instead: awk -F: '{print $2}' (or "
          "cut -s -d: -f2) of 4 is empty, as 4 has no colon (cut without -s passes it through whole).",
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
        yield from _count_split_off(ctx, job.gpus_per_node)  # --gpus-per-node=4: the variable is 4
        return
    if per_node:
        why = f"is {job.gpu_type}:{job.gpus_per_node} here (the request names a GPU type), not a number"
    elif ctx.parsed.directives:
        why = "is set only when the job asks for GPUs with --gpus-per-node, which its #SBATCH lines do not, so it is empty here"
    else:
        why = "may hold a type (a100:4) or be unset"
    for line, holder, since in _gpus_per_node_uses(ctx, typed=per_node):
        through = "" if not holder else f" (exported as ${holder})" if line == since else \
            f" (through ${holder}, set from it on line {since})"
        yield (line, f"$SLURM_GPUS_PER_NODE{through} {why}; use $SLURM_GPUS_ON_NODE, the number of GPUs on this node")


#: a parameter expansion that reduces a typed value to its count: ${V#*:}, ${V##*:}, ${V//a100:/}, ${V/*:/}
_TYPE_STRIPPED = re.compile(r"\$\{SLURM_GPUS_PER_NODE(?:##?\*:|//?[^}/]*:/?)\}")

#: a command substitution that splits the value at a colon with cut or awk (echo $V | cut -d: -f2,
#: awk -F: '{print $NF}' <<< "$V"); group "split" is the cut or awk command
_COLON_SPLIT = re.compile(r"\$\((?=[^()]*\$\{?SLURM_GPUS_PER_NODE\b)[^()]*?"
                          r"(?P<split>\b(?:cut\b[^()|]*-[a-z]*d\s*['\"]?:|awk\b[^()|]*-F\s*['\"]?:)[^()|]*)\)")

#: the field a cut or awk command picks: -f2, -f 2, print $2, print $NF
_FIELD = re.compile(r"(?:-[a-z]*f\s*['\"]?|print\s+\$)(\d+|NF)\b")

#: commands that only show a value, and the operators that test one as text
_SHOWS = frozenset({"echo", "printf"})
_TEXT_TESTS = frozenset({"==", "=", "!=", "=~"})

#: an option that takes a GPU request as written, type and all (srun --gpus-per-node=$SLURM_GPUS_PER_NODE)
_REQUEST_OPTION = re.compile(r"--(?:gpus-per-node|gpus)=|--gres=gpu:")


def _gpus_per_node_uses(ctx: Context, typed: bool) -> Iterator[tuple[int, str, int]]:
    """Where the value of $SLURM_GPUS_PER_NODE reaches something that reads a number, as (line, the variable it
    came through or "", the line that variable was set on). Assignments are followed (N=$SLURM_GPUS_PER_NODE, then
    N used, or exported for the programs to read), and a variable the script also gives the count alone is taken as
    handled (the two branches of ``if [[ $SLURM_GPUS_PER_NODE == *:* ]]``). With a ``typed`` request, a reduction to
    the count is no use."""
    held: dict[str, int] = {}   # variable -> the line it was given the whole value on
    counted: set[str] = set()   # variables given the count alone somewhere
    found: list[tuple[int, str, int]] = []

    def whole(raw: str) -> list[str]:
        """What in ``raw`` expands to the whole value: "" for the variable itself, else the variable holding it."""
        if typed:
            raw = _COLON_SPLIT.sub("", _TYPE_STRIPPED.sub("", raw))
        names = [name for name, _ in expanded_refs(raw)]
        return ([""] if "SLURM_GPUS_PER_NODE" in names else []) + [n for n in names if n in held]

    for cmd in _simple_commands(ctx.parsed.lexed.code):
        inner = getattr(cmd, "cmd", cmd)   # a command of a bash -c script is read with its own words
        for name, value in cmd.assignments:
            sources = whole(value.raw)
            if sources and "$((" in value.raw:
                found += [(cmd.line, s, held.get(s, 0)) for s in sources]   # arithmetic on it
            elif sources:
                held[name] = held.get(sources[0], cmd.line) if sources[0] else cmd.line
            elif "SLURM_GPUS_PER_NODE" in value.raw:
                counted.add(name)
        argv = [str(v) for v in inner.argv]
        if argv[:1] == ["export"]:
            # exported, the value reaches every program the job starts (export N=$SLURM_GPUS_PER_NODE, export N)
            found += [(cmd.line, name, held[name]) for name in (w.split("=", 1)[0] for w in argv[1:]) if name in held]
        if not argv or argv[0] in _SHOWS or argv[0] in DECLARATION_BUILTINS \
                or (argv[0] in ("[", "[[", "test") and _TEXT_TESTS.intersection(argv)):
            continue
        # the words of a bash -c script come back in the value language, each task's $ written \$
        raws = [w.raw.replace("\\$", "$") if inner is not cmd else w.raw for w in inner.words]
        for i, raw in enumerate(raws):
            option = raws[i - 1] if i else ""
            if typed and argv[0] == "srun" and (_REQUEST_OPTION.match(raw) or option in ("--gpus-per-node", "--gpus")):
                continue  # srun takes the request back as written, type and all
            found += [(cmd.line, s, held.get(s, 0)) for s in whole(raw)]
    for line, holder, since in dict.fromkeys(found):
        if holder not in counted:
            yield line, holder, since


def _count_split_off(ctx: Context, count: int) -> Iterator[Any]:
    """HPC107 for an untyped request (--gpus-per-node=4): a split at the colon that takes the second field gives an
    empty count (awk -F: '{print $2}', cut -s -d: -f2), since 4 has no colon."""
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        for raw in [w.raw for w in all_words(getattr(cmd, "cmd", cmd))]:
            for match in _COLON_SPLIT.finditer(raw):
                split = match.group("split")
                field = _FIELD.search(split)
                number = field.group(1) if field else ""
                whole_line = split.startswith("cut") and not re.search(r"\s-[a-z]*s", split)
                if not is_number(number) or int(number) < 2 or whole_line:
                    continue  # $NF, the first field and cut without -s give the 4 itself
                yield (cmd.line, f"{match.group(0)} is empty: the request --gpus-per-node={count} names no GPU type, "
                                 f"so $SLURM_GPUS_PER_NODE is {count}, with no colon to split at; use "
                                 "$SLURM_GPUS_ON_NODE, the number of GPUs on this node")
                break


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
        step = launch.step
        if launch.name != "deepspeed" or (step is not None and not in_job_component(ctx, step)):
            continue
        if launch.srun is not None and (tasks_per_node(ctx, step) or 1) > 1:
            continue  # several launchers per node: HPC117 says it
        have = (step_gpus(step) if step is not None else None) or ctx.job.gpus_on_each_node
        asked = launch.number(ctx, "--num_gpus")
        if have and asked is not None and asked > have:
            yield (launch.line, f"deepspeed --num_gpus {asked} starts {asked} processes on each node, which has "
                                f"{have} GPU{'s' if have > 1 else ''}: deepspeed does not check, so the ranks beyond "
                                f"{have} ask for GPUs that are not there (invalid device ordinal); use --num_gpus {have}")
    for launch, processes, machines, have in _accelerate_counts(ctx):  # (several launchers a node: HPC101's)
        each = processes // machines
        if each <= have:
            continue
        plural = "s" if have > 1 else ""
        beyond = (f"the processes beyond {have} share GPUs or find none (invalid device ordinal)")
        if machines > 1:
            yield (launch.line, f"--num_processes {processes} with --num_machines {machines} starts {each} processes on "
                                f"each machine, which has {have} GPU{plural}: {beyond}; --num_processes counts the "
                                f"processes of all machines together: use --num_processes {machines * have}")
        else:
            yield (launch.line, f"accelerate launch --num_processes {processes} starts {processes} processes on a node "
                                f"with {have} GPU{plural}: {beyond}; use --num_processes {have}")


#: how a command starts an inference server that splits one model over GPUs: python -m MODULE, or PROGRAM
#: SUBCOMMAND (``sglang serve`` is SGLang's newer name for its launcher) → the engine
_SERVER_MODULES = {"sglang.launch_server": "sglang", "vllm.entrypoints.openai.api_server": "vllm",
                   "vllm.entrypoints.api_server": "vllm"}
_SERVER_COMMANDS = {("sglang", "serve"): "sglang", ("vllm", "serve"): "vllm"}

#: each engine's spellings of its tensor-, pipeline- and data-parallel sizes and of its node count. SGLang's argparse
#: takes --tp for --tp-size and --dp for --dp-size (unambiguous prefixes, the spellings of SGLang's own docs), but
#: refuses --pp, which --pp-max-micro-batch-size shares; vLLM has -tp, -pp, -dp and, for its launch over several
#: nodes, --nnodes/-n. SGLang's --base-gpu-id is the first GPU its ranks take (server_args.py: "The base GPU ID to
#: start allocating GPUs from"); vLLM's --data-parallel-size-local is "Number of data parallel replicas to run on
#: this node", and --data-parallel-rank makes the process one replica (arg_utils.py). SGLang's --gpu-id-step is "The
#: delta between consecutive GPU IDs that are used": rank r of a node takes GPU --base-gpu-id + r × step.
_PARALLEL_SIZES = {
    "sglang": {"tp": ("--tp-size", "--tensor-parallel-size", "--tp"), "pp": ("--pp-size", "--pipeline-parallel-size"),
               "dp": ("--dp-size", "--data-parallel-size", "--dp"), "base": ("--base-gpu-id",),
               "step": ("--gpu-id-step",), "nnodes": ("--nnodes",),
               # and where its nodes meet: this node's rank, the address of rank 0's (--nccl-init-addr: its old name)
               "node_rank": ("--node-rank",), "dist_init": ("--dist-init-addr", "--nccl-init-addr")},
    "vllm": {"tp": ("--tensor-parallel-size", "-tp"), "pp": ("--pipeline-parallel-size", "-pp"),
             "dp": ("--data-parallel-size", "-dp"), "dp_local": ("--data-parallel-size-local", "-dpl"),
             "dp_rank": ("--data-parallel-rank", "-dpn"), "nnodes": ("--nnodes", "-n"),
             "backend": ("--distributed-executor-backend",), "dp_address": ("--data-parallel-address", "-dpa"),
             "headless": ("--headless",)},
}

#: SGLang's switch that runs its data-parallel ranks inside the tensor-parallel group (DP attention): they then take
#: no GPUs of their own (data_parallel_controller.py launches one tensor-parallel group instead of --dp of them)
_DP_ATTENTION = "--enable-dp-attention"


@dataclasses.dataclass(frozen=True)
class _Server:
    """An SGLang or vLLM server the script starts: where, and the parallel sizes its command line gives."""

    line: int
    engine: str                        # "sglang" or "vllm"
    name: str                          # the words that start it, for messages: "python3 -m sglang.launch_server"
    sizes: dict[str, tuple[str, str]]  # "tp", "pp", "dp", "nnodes" … → (the option as written, its value)
    step: Any = None                   # the step that runs it (srun, a container), None: the batch shell
    dp_attention: bool = False         # SGLang's --enable-dp-attention
    #: the CUDA_VISIBLE_DEVICES the script gives it, as written and the GPUs it shows; None: Slurm's
    visible: tuple[str, int] | None = None


def _server_call(words: list[Any]) -> tuple[str, str, list[str]] | None:
    """``(engine, name, its arguments)`` when ``words`` (past ``exec``, ``uv run`` and the other wrappers) start an
    SGLang or vLLM server, else None."""
    words, written = python_module_words(launch_words([str(w) for w in words]))
    if len(words) > 2 and _PYTHON.fullmatch(words[0].rsplit("/", 1)[-1]) and words[1] == "-m" \
            and words[2] in _SERVER_MODULES:
        return _SERVER_MODULES[words[2]], written, words[3:]  # named as written: python -u -m vllm…
    engine = _SERVER_COMMANDS.get((words[0].rsplit("/", 1)[-1], words[1])) if len(words) > 1 else None
    return (engine, " ".join(words[:2]), words[2:]) if engine else None


def _parallel_sizes(engine: str, args: list[str]) -> dict[str, tuple[str, str]]:
    """The parallel sizes and node count the arguments give, by kind; the last one given wins, as with argparse.
    vLLM's parser reads an option's underscores as dashes (--tensor_parallel_size)."""
    found: dict[str, tuple[str, str]] = {}
    for i, word in enumerate(args):
        written, eq, value = word.partition("=")
        name = "--" + written[2:].replace("_", "-") if engine == "vllm" and written.startswith("--") else written
        kind = next((k for k, names in _PARALLEL_SIZES[engine].items() if name in names), None)
        if kind is not None:
            found[kind] = (written, value if eq else (args[i + 1] if i + 1 < len(args) else ""))
    return found


def _servers(ctx: Context) -> tuple[_Server, ...]:
    """Every SGLang and vLLM server the script starts: as a step's program (after srun, in a container), in a
    step's ``bash -c`` script, or as a plain command of the batch shell."""
    def server(line: int, words: list[Any], step: Any,
               settings: Callable[[], list[tuple[str, str]]]) -> _Server | None:
        call = _server_call(words)
        if call is None:
            return None  # (most commands: the settings before them are looked up only for a server)
        given = settings() + _env_wrapper_settings([str(w) for w in words])
        return _Server(line, call[0], call[1], _parallel_sizes(call[0], call[2]), step, _DP_ATTENTION in call[2],
                       _visible_devices(ctx, line, given))

    def make() -> tuple[_Server, ...]:
        found: list[_Server | None] = []
        for step in steps(ctx):
            # srun gives a step's tasks the CUDA_VISIBLE_DEVICES of the step's GPUs: a value set before it is Slurm's
            def around(step: Any = step) -> list[tuple[str, str]]:
                outside = [] if step.chain.srun is not None else [*_exported(ctx, step.line), *step.env]
                return outside + [(e.name, str(e.value)) for e in getattr(step.chain.container, "env", ()) or ()]
            one = server(step.line, list(step.chain.program), step, around)
            found += [one] if one is not None else [
                server(step.line, list(c.argv), step,
                       lambda c=c, around=around: around() + _inner_exports(c) + _own_settings(c))
                for c in _simple_commands([step.command]) if isinstance(c, _Inner)]
        stepped = {(step.command.line, step.command.col) for step in steps(ctx)}
        # the batch shell's commands, and those of the bash -c (sh -c) scripts it runs itself
        plain = [c for top in simple_commands(ctx)
                 for c in ([top] if (top.line, top.col) in stepped else _simple_commands([top]))]
        for cmd in (*plain, *held_commands(ctx)):
            found.append(server(cmd.line, list(cmd.argv), None, lambda cmd=cmd: [
                *_exported(ctx, cmd.line), *(_inner_exports(cmd) if isinstance(cmd, _Inner) else ()),
                *_own_settings(cmd)]))
        return tuple(sorted((s for s in found if s is not None), key=lambda s: s.line))
    return cached(ctx, "inference_servers", make)


def _own_settings(cmd: Any) -> list[tuple[str, str]]:
    """The ``NAME=value`` words before a command's program (``CUDA_VISIBLE_DEVICES=0,1 vllm serve …``)."""
    return [(n, str(w.value)) for n, w in getattr(cmd, "assignments", ())]


def _inner_exports(inner: _Inner) -> list[tuple[str, str]]:
    """CUDA_VISIBLE_DEVICES as a ``bash -c`` script exports it before ``inner``, one of its commands (``bash -c
    "export CUDA_VISIBLE_DEVICES=0,1; vllm serve …"``): an ``export`` (or ``declare -x``) on the script's own level
    before it, the last one winning."""
    out: list[tuple[str, str]] = []
    script = _shell_c_script(inner.outer)
    here = (inner.cmd.line, inner.cmd.col, inner.cmd.text)
    if not any((cmd.line, cmd.col, cmd.text) == here for cmd in script):
        return out  # in a compound of the script, or in a bash -c of its own: not looked into
    for cmd in script:
        if (cmd.line, cmd.col, cmd.text) == here:
            break
        words = [str(w.value) for w in cmd.words] if cmd.kind == "simple" else []
        if words[:1] == ["export"] or words[:2] in (["declare", "-x"], ["typeset", "-x"]):
            out += [(n, str(w.value)) for n, w in cmd.assignments if n == "CUDA_VISIBLE_DEVICES"]
    return out


def _exported(ctx: Context, line: int) -> list[tuple[str, str]]:
    """CUDA_VISIBLE_DEVICES as the batch shell exports it before ``line``, as ``[(name, value)]`` ([] when not)."""
    var = ctx.parsed.variable("CUDA_VISIBLE_DEVICES", line)
    return [(var.name, str(var.value))] if var is not None and var.exported else []


def _env_wrapper_settings(words: list[str]) -> list[tuple[str, str]]:
    """The ``NAME=value`` words of the wrappers before a program (``env CUDA_VISIBLE_DEVICES=0,1 vllm serve …``)."""
    program = launch_words(words)
    wrappers = words[:len(words) - len(program)] if words[len(words) - len(program):] == program else []
    pairs = [w.partition("=") for w in wrappers]
    return [(name, value) for name, eq, value in pairs if eq and re.fullmatch(r"[A-Za-z_]\w*", name)]


def _visible_devices(ctx: Context, line: int, settings: list[tuple[str, str]]) -> tuple[str, int] | None:
    """``("CUDA_VISIBLE_DEVICES=0,1", 2)`` for the last CUDA_VISIBLE_DEVICES of ``settings`` (outermost first) that is
    a list the script fixes: the GPUs it shows are its entries up to the first that names no GPU, where CUDA stops
    reading it (CUDA_VISIBLE_DEVICES=0,2,-1,1 shows two). None when it is not set, or only known when the job runs."""
    values = [value for name, value in settings if name == "CUDA_VISIBLE_DEVICES"]
    if not values:
        return None
    value = ctx.parsed.resolve(values[-1], line).strip("'\"")
    if "$" in value or "`" in value:
        return None
    shown = 0
    for entry in value.split(","):
        if not re.fullmatch(r"\d+|(?:GPU|MIG)-[\w/-]+", entry.strip()):
            break
        shown += 1
    return (f"CUDA_VISIBLE_DEVICES={values[-1]}", shown) if shown else None


def _job_gpus(ctx: Context) -> tuple[int | None, int | None, int | None]:
    """``(GPUs per node, GPUs in all, nodes)`` as far as the job's #SBATCH lines fix them (None: not known). A job
    that counts its GPUs two ways (--gpus with --gpus-per-task) is left unknown, as are GPUs per node of --gpus over
    several nodes (Slurm need not spread them evenly) and the nodes of a job that names no --nodes but a task count
    or GPUs in all (Slurm picks as many as those need)."""
    job = ctx.job
    if job.nodes is not None:
        span = node_range(job.nodes)
        nodes = span[0] if span is not None and span[0] == span[1] else None
    else:
        nodes = 1 if job.ntasks is None and not job.gpus else None
    asked = [v for v in (job.gpus_per_node, job.gpus, job.gpus_per_task) if v not in (None, "", 0)]
    if len(asked) != 1 or not gpu_total(asked[0]):
        return None, None, nodes
    if job.gpus:
        total = gpu_total(job.gpus)
        return (total if nodes == 1 else None), total, nodes
    per_node: int | None = gpu_total(job.gpus_per_node)
    if not per_node:
        tasks = job.ntasks_per_node if isinstance(job.ntasks_per_node, int) else \
            (job.ntasks if isinstance(job.ntasks, int) else 1) if nodes == 1 and job.ntasks_per_node is None else None
        per_node = gpu_total(job.gpus_per_task) * tasks if tasks else None
    return per_node, (per_node * nodes if per_node and nodes else None), nodes


def _size(ctx: Context, server: _Server, kind: str, default: int = 1) -> int | None:
    """A parallel size (or SGLang's first GPU, with ``default`` 0) as a number: ``default`` when not given, None
    when it is not a number the script fixes (a value the job works out when it runs, "$SLURM_GPUS_ON_NODE", is
    left to it) or a size of 0."""
    if kind not in server.sizes:
        return default
    text = ctx.parsed.resolve(server.sizes[kind][1], server.line)
    return int(text) if re.fullmatch(r"\d+", text) and (int(text) > 0 or not default) else None


def _sizes_text(ctx: Context, server: _Server, *kinds: str) -> str:
    """The options as written (``--tp 32 --nnodes $SLURM_JOB_NUM_NODES``), a value from a variable with its
    number (``(2)``)."""
    out = []
    for kind in kinds:
        if kind in server.sizes:
            written, value = server.sizes[kind]
            number = _size(ctx, server, kind) if kind != "nnodes" else as_int(ctx, value, server.line)
            out.append(f"{written} {value}" + (f" ({number})" if number is not None and str(number) != value else ""))
    return " ".join(out)


@rule("HPC139", "parallel-size-over-gpus", "error",
      summary="an SGLang or vLLM server's tensor × pipeline (× data) parallel size is larger than the GPUs it has",
      why="SGLang (python -m sglang.launch_server, sglang serve) runs one rank per GPU: --tp-size (--tp) × --pp-size "
          "ranks over --nnodes nodes, tp × pp / nnodes on each node, each given the GPU of its local rank counted "
          "from --base-gpu-id (0 unless given), --gpu-id-step apart (1 unless given: with tp ranks on a node the "
          "highest is base + (tp − 1) × step, which must be below the GPUs the node has), and --dp-size (--dp) "
          "copies of them side by side unless "
          "--enable-dp-attention runs the data-parallel ranks inside the tensor-parallel group; ranks beyond the "
          "node's GPUs are given GPU numbers the node does not have and the server stops at start-up. "
          "vLLM (vllm serve, python -m vllm.entrypoints.openai.api_server) needs --tensor-parallel-size × "
          "--pipeline-parallel-size GPUs for each of its --data-parallel-size replicas (--data-parallel-size-local "
          "of them on this node; one with --data-parallel-rank): on one node, those of its node; over several nodes, "
          "those of the Ray cluster the job starts on them, at most all of the job's GPUs; with --nnodes (its launch "
          "without Ray), its share on each node. Without a Ray cluster over the nodes (no ray start in the script, in "
          "any form, nor a script named for it such as start_ray_cluster.sh, nor RAY_ADDRESS; no --headless or "
          "--data-parallel-address, no --distributed-executor-backend external_launcher) vLLM has its own node's GPUs "
          "only, in a job of any size: it starts a Ray of its own there (or runs every rank there with "
          "--distributed-executor-backend mp), as vLLM's guide to serving over several nodes says a Ray cluster, or "
          "its --nnodes launch, must join them first. With fewer it stops at start-up ('The number of required GPUs "
          "exceeds the total number of available GPUs in the placement group'; 'local_world_size … must be less than "
          "or equal to the number of visible devices'). A server started with CUDA_VISIBLE_DEVICES=0,1 (before it in "
          "the batch shell, or inside its step: srun sets a step's own; also set or exported before it in a bash -c "
          "or sh -c script, bash -c \"CUDA_VISIBLE_DEVICES=0,1 python -m sglang.launch_server …\") sees those GPUs "
          "only. Reported only where the "
          "sizes are numbers (written, or set in the script) and the #SBATCH lines (the step's srun, or "
          "CUDA_VISIBLE_DEVICES) fix the GPUs: a size the job works out when it runs (--tp \"$SLURM_GPUS_ON_NODE\") "
          "is left alone, and so is a job whose GPUs are counted two ways. A model for which SGLang turns DP "
          "attention on itself (DeepSeek V3.2) is measured as written: say --enable-dp-attention.",
      fix="Fit the sizes to the GPUs: SGLang --tp = GPUs per node × --nnodes (tp × pp with --pp-size, over --dp "
          "replicas, from --base-gpu-id); vLLM --tensor-parallel-size = GPUs per node and --pipeline-parallel-size = "
          "nodes (over a Ray cluster on the job's nodes, or with --nnodes), over its data-parallel replicas; or ask for "
          "more GPUs per node, or more nodes, or show the server more of them.",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --time=04:00:00
python -m sglang.launch_server --model-path meta-llama/Llama-3.1-70B-Instruct --tp 8 --port 30000
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --time=04:00:00
python -m sglang.launch_server --model-path meta-llama/Llama-3.1-70B-Instruct --tp 4 --port 30000
""")
def _parallel_size_over_gpus(ctx: Context) -> Iterator[Any]:
    if heterogeneous(ctx):
        return  # each component has GPUs of its own, and the model of the job holds the first one's
    per_node, total, nodes = _job_gpus(ctx)
    for server in _servers(ctx):
        tp, pp = _size(ctx, server, "tp"), _size(ctx, server, "pp")
        # data-parallel replicas on this node, each of tp × pp GPUs
        if server.engine == "sglang":
            dp = 1 if server.dp_attention else _size(ctx, server, "dp")
            dp_all, base, step = dp, _size(ctx, server, "base", default=0), _size(ctx, server, "step")
        else:
            dp_all, base, step = _size(ctx, server, "dp"), 0, 1
            dp = 1 if "dp_rank" in server.sizes else _size(ctx, server, "dp_local") if "dp_local" in server.sizes \
                else dp_all
        nnodes = as_int(ctx, server.sizes["nnodes"][1], server.line) if "nnodes" in server.sizes else 1
        if not tp or not pp or not dp or not dp_all or base is None or not step or not nnodes \
                or tp * pp * dp == 1 and not base:
            continue
        srun = server.step.chain.srun if server.step is not None else None
        own = (step_gpus(server.step) or inherited_gpus(ctx, server.step)) if srun is not None else None
        have, has = (own, "this step has") if own else (per_node or 0, "the job has")
        # CUDA_VISIBLE_DEVICES limits it when it shows fewer GPUs than the job (or the step) has
        shown = server.visible if server.visible and (not have or server.visible[1] < have) else None
        if shown is not None:
            have, has = shown[1], f"{shown[0]} shows it"
        seen = shown is not None
        gpus = f"{have} GPU{'s' if have > 1 else ''}"
        said = f"{server.name} " \
            + _sizes_text(ctx, server, 'tp', 'pp', 'dp', 'dp_local', 'dp_rank', 'base', 'step', 'nnodes')
        said += f" {_DP_ATTENTION}" if server.dp_attention else ""
        if server.engine == "sglang":
            # SGLang's own split (_calculate_rank_ranges): pipeline stages over the nodes, then tensor ranks
            tp_here, pp_here = tp // max(nnodes // pp, 1), max(pp // nnodes, 1)
            on_node = pp_here * tp_here
            ranks = dp * on_node
            # a node's GPU numbers (scheduler processes): base + pipeline stage × tp_here + tensor rank × step, each
            # data-parallel replica on after the one before it (tp × pp × step on)
            highest = base + (dp - 1) * on_node * step + (pp_here - 1) * tp_here + (tp_here - 1) * step
            if have and step > 1 and highest >= have:
                where = f"each of its {nnodes} nodes" if nnodes > 1 else "its node"
                missing = "it does not see" if seen else "the node does not have"
                numbers = ", ".join(str(base + k * step) for k in range(min(ranks, 3)))
                numbers += f", … up to GPU {highest}" if ranks > 3 else ""
                yield (server.line, f"{said} starts {ranks} rank{'s' if ranks > 1 else ''} on {where}, one GPU each, "
                                    f"numbered {numbers} (--gpu-id-step {step} apart), but {has} {gpus}"
                                    f"{'' if seen else ' per node'}: GPU {highest} is a number {missing} and the "
                                    f"server stops at start-up; the highest GPU, --base-gpu-id + (ranks - 1) × "
                                    f"--gpu-id-step, must be below {have}: use a smaller --gpu-id-step or "
                                    "--base-gpu-id, fewer ranks, or ask for more GPUs")
            elif have and base + ranks > have:
                where = f"each of its {nnodes} nodes" if nnodes > 1 else "its node"
                start = f" from GPU {base}" if base else ""
                copies = f" ({dp} data-parallel replicas of {on_node})" if dp > 1 else ""
                beyond = f"the ranks past GPU {have - 1}" if base else f"the ranks beyond {have}"
                missing = "it does not see" if seen else "the node does not have"
                yield (server.line, f"{said} starts {ranks} rank{'s' if ranks > 1 else ''} on {where}{start}{copies}, "
                                    f"one GPU each, but {has} "
                                    f"{gpus}{'' if seen else ' per node'}: {beyond} are given GPU numbers {missing} and "
                                    "the server stops at start-up; "
                                    + _fit_advice(server, (have - base) * nnodes, pp, dp, _room(nnodes, base)))
            elif not have and total and tp * pp * dp > total:
                yield (server.line, f"{said} starts {tp * pp * dp} ranks, one GPU each, but the job has {total} GPUs "
                                    "in all: the server stops at start-up; " + _fit_advice(server, total, pp, dp, " in all"))
            continue
        world, on_node = tp * pp * dp, -(-tp * pp * dp // nnodes)
        # its share of each node (--nnodes), of the job's one node, or of this node's data-parallel replicas
        local = "dp_local" in server.sizes or "dp_rank" in server.sizes
        by_node = bool(have) and (nnodes > 1 or nodes == 1 or local or seen)
        sizes = "tensor × pipeline parallel size" + (f" × {dp} data-parallel replicas" if dp > 1 else "")
        if by_node and on_node > have:
            spread = f" over --nnodes {nnodes}: {on_node} on each node" if nnodes > 1 else ""
            on = "" if seen else f" on {'each' if nnodes > 1 else 'its'} node"
            yield (server.line, f"{said} needs {world} GPUs ({sizes}){spread}, but {has} {gpus}{on}: vLLM stops at "
                                "start-up (it finds fewer GPUs than ranks); "
                                + _fit_advice(server, have * nnodes, pp, dp, _room(nnodes, 0)))
        elif not by_node and total and tp * pp * dp_all > total:  # one vLLM over the job's nodes, through Ray
            sizes = "tensor × pipeline parallel size" + (f" × {dp_all} data-parallel replicas" if dp_all > 1 else "")
            yield (server.line, f"{said} needs {tp * pp * dp_all} GPUs ({sizes}), but the job has {total} in all (a "
                                "Ray cluster over its nodes has no more): vLLM stops at start-up (the required GPUs "
                                "exceed those available); " + _fit_advice(server, total, pp, dp_all, " in all"))
        elif not by_node and have and world > have and not _reaches_other_nodes(ctx, server):
            # no Ray cluster over the job's nodes: vLLM starts a Ray of its own, on its node alone (or, with the mp
            # backend and no --nnodes, runs every rank on its node)
            backend = ctx.parsed.resolve(server.sizes.get("backend", ("", ""))[1], server.line).strip("'\"")
            then = "with --distributed-executor-backend mp and no --nnodes vLLM runs every rank on this node and " \
                "stops at start-up (it finds fewer GPUs than ranks)" if backend == "mp" else \
                "vLLM then starts a Ray of its own on this node alone and stops at start-up (the required GPUs " \
                "exceed those in its placement group)"
            yield (server.line, f"{said} needs {world} GPUs ({sizes}), but {has} {gpus} on its node, and no "
                                "Ray cluster joins the job's nodes (the script runs no ray start and sets "
                                f"no RAY_ADDRESS): {then}; start a Ray cluster "
                                "over the nodes first (ray start --head on the first node, ray start --address=HEAD:6379 "
                                "on the others, each with srun … --block &), or run vLLM on every node without Ray "
                                "(--nnodes N --node-rank R --master-addr HEAD, --headless on all but the first)")


#: a shell script the job runs whose name says it starts a Ray cluster (start_ray_cluster.sh, ray-workers.sh)
_RAY_SCRIPT = re.compile(r"(?i)[^/\s]*ray[^/\s]*\.(?:sh|bash)")


def _reaches_other_nodes(ctx: Context, server: _Server) -> bool:
    """Whether a vLLM server can use GPUs beyond its own node's: the script starts a Ray cluster (ray start, in
    any form: srun, a container, a bash -c script, a function; or a script whose name says it does, such as
    start_ray_cluster.sh) or points at one (RAY_ADDRESS), or the server runs vLLM's own launch over several nodes
    (--headless, --data-parallel-address) or one torchrun or another launcher starts
    (--distributed-executor-backend external_launcher)."""
    if any(kind in server.sizes for kind in ("headless", "dp_address")):
        return True
    if "backend" in server.sizes and ctx.parsed.resolve(server.sizes["backend"][1], server.line).strip("'\"") \
            == "external_launcher":
        return True
    return _ray_in_the_script(ctx)


def _ray_in_the_script(ctx: Context) -> bool:
    """Whether the script starts a Ray cluster or points at one: see :func:`_reaches_other_nodes`."""
    def make() -> bool:
        for cmd in (*_simple_commands(ctx.parsed.lexed.code), *ctx.parsed.held_commands):
            words = [str(w) for w in cmd.argv]
            if any(w.rsplit("/", 1)[-1] == "ray" and words[k + 1:k + 2] == ["start"] for k, w in enumerate(words)) \
                    or any(_RAY_SCRIPT.fullmatch(w.rsplit("/", 1)[-1]) for w in words) \
                    or any(name == "RAY_ADDRESS" for name, _ in getattr(cmd, "assignments", ())):
                return True
        return False
    return cached(ctx, "ray_in_the_script", make)


def _room(nnodes: int, base: int) -> str:
    """Where the GPUs of :func:`_fit_advice` are, for its advice: " of its 2 nodes", " from GPU 2 on", or ""."""
    return (f" of its {nnodes} nodes" if nnodes > 1 else "") + (f" from GPU {base} on" if base else "")


def _fit_advice(server: _Server, room: int, pp: int, dp: int, where: str) -> str:
    """What HPC139 advises: the tensor-parallel size that fits ``room`` GPUs over the pipeline stages and the
    data-parallel replicas; or more GPUs."""
    if room < 1:
        return "use a lower --base-gpu-id (the GPUs are numbered from 0) or ask for more GPUs"
    tp_name = server.sizes["tp"][0] if "tp" in server.sizes else _PARALLEL_SIZES[server.engine]["tp"][0]
    each = room // dp
    if each < pp or each % pp:
        fewer = "pipeline stages or data-parallel replicas" if dp > 1 else "pipeline stages"
        return f"use fewer {fewer} (there are {room} GPUs for them) or ask for more GPUs"
    return f"use {tp_name} {each // pp} to fit the {room} GPU{'s' if room > 1 else ''}{where}, or ask for more GPUs"


@rule("HPC120", "more-tasks-than-gpus", "warning",
      summary="srun starts more Python tasks per node than the job has GPUs per node",
      why="A program that runs one process per GPU under srun (PyTorch Lightning, DDP with SLURM_LOCALID or "
          "LOCAL_RANK as the device) takes each task for one GPU: with more tasks than GPUs the extra ranks ask for a "
          "device that is not there (invalid device ordinal) or crowd onto the same GPU. Not reported when each "
          "task asks for its own GPUs (--gpus-per-task), or when the job leaves the tasks on each node to Slurm "
          "(--ntasks alone, or a node range). --ntasks with --ntasks-per-node and no --nodes puts at most that many "
          "tasks on a node, on as many nodes as they need (sbatch(1)): it is measured at that most.",
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
        # --ntasks with --ntasks-per-node and no --nodes: the per-node count is a maximum, Slurm picks the nodes
        most = ctx.job.nodes is None and srun.nodes is None and ctx.job.ntasks is not None
        starts = "may start up to" if most else "starts"
        if tasks > have:
            yield (step.line, f"srun {starts} {tasks} tasks per node on {have} GPU{'s' if have > 1 else ''} per node: "
                              f"with one process per GPU the tasks beyond {have} find no GPU of their own (invalid "
                              f"device ordinal) or share one; use --ntasks-per-node={have}")


@rule("HPC136", "gpu-workers-on-default-cpus", "warning",
      summary="several GPU workers run on a node, but the job leaves CPUs per task at Slurm's default of one",
      why="Without --cpus-per-task (or --cpus-per-gpu) a task gets one CPU (sbatch(1): 'the controller will just try "
          "to allocate one processor per task'), and a GPU does not bring CPUs of its own unless the site sets "
          "DefCpuPerGPU. torchrun --nproc-per-node=4 in a job of one task then runs its four workers, and each one's "
          "DataLoader processes, on that one CPU (one core at most); srun with four tasks of one GPU each gives every "
          "worker one CPU for itself and its loaders. The same holds for accelerate launch (--num_processes, the "
          "total over --num_machines; --multi_gpu alone starts one worker per GPU) and deepspeed --num_gpus (workers "
          "on each node). The GPUs wait for data. Reported with a profile whose partition "
          "says how many CPUs its GPU nodes have (then the fix asks for the GPUs' share of them); without one, the "
          "site's own default (DefCpuPerGPU) is unknown and nothing is said, as with a profile whose partition sets "
          "def_cpus_per_gpu (the job has those). The share asked for is at most the partition's max_cpus_per_gpu. Not "
          "reported for an --exclusive job, which holds every CPU of its nodes. A job with a task count and no node "
          "count runs on the nodes Slurm picks: its tasks per node are the most one of the partition's nodes holds "
          "(by its CPUs and GPUs), and the message says 'up to'.",
      fix="Ask for CPUs for the workers: #SBATCH --cpus-per-task=N, N the CPUs of all the workers of one task "
          "(torchrun, accelerate launch, deepspeed: its workers' GPUs' share of the node's CPUs; one task per GPU: "
          "one GPU's share).",
      profile="generic",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --time=12:00:00
torchrun --standalone --nnodes=1 --nproc-per-node=4 train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --time=12:00:00
#SBATCH --cpus-per-task=32
torchrun --standalone --nnodes=1 --nproc-per-node=4 train.py
""")
@each_component
def _gpu_workers_on_default_cpus(ctx: Context) -> Iterator[Any]:
    job = ctx.job
    gpus = job.gpus_on_each_node
    held = job_cpus(ctx)
    share = _cpus_per_gpu_share(ctx)
    if not gpus or not share or job.cpus_per_task is not None or job.cpus_per_gpu or held is None \
            or held.by_node_cpus or _default_cpus_per_gpu(ctx) or any(d.applied and d.flag.partition("=")[0] == "--mincpus" for d in ctx.parsed.directives):
        return
    part = ctx.profile.entry_for(job)  # the share of its CPUs is known: the tasks a node holds are too
    for line, srun, launcher, each, tasks in _worker_launches(ctx, gpus, part):
        if srun is not None and srun.cpus_per_task is not None:
            continue  # the step asks for its own CPUs
        if launcher:
            # the batch shell holds the job's CPUs on its node; a task srun starts holds one
            # (a task count Slurm works out itself, more than one where a task's CPUs leave part of a core, as on
            # nodes of two threads per core, is still one CPU's worth each)
            cpus = 1 if srun is not None or not held.named else max(held.tasks // max(job_nodes(ctx, part), 1), 1)
            if each <= cpus or share * each <= cpus:
                continue  # as many CPUs as workers, or the node has no more to give them
            said = (f"{launcher} starts {each} workers on this node with the {cpus} CPU{'s' if cpus > 1 else ''} "
                    f"Slurm gives by default (one per task): all {each} and their data loaders share "
                    f"{'it' if cpus == 1 else 'them'}")
        else:
            # a task count with no node count: Slurm picks the nodes, and a node holds at most ``tasks`` of them
            if share * each <= 1:
                continue  # one CPU for each GPU on the node: the default is all there is to give a task
            picked = job.nodes is None and srun.nodes is None and (job.ntasks is not None or srun.ntasks is not None)
            where = "up to {} tasks per node on the nodes Slurm picks" if picked else "{} tasks per node"
            said = (f"srun starts {where.format(tasks)}, one GPU worker each, and each task has Slurm's default of "
                    "one CPU: every worker and its data loader share one core")
        per_task = share * each
        share_of = f"{share} for each of its {each} GPUs" if each > 1 else "the CPUs of one GPU"
        yield (line, f"{said}; ask for CPUs for them, e.g. #SBATCH --cpus-per-task={per_task} ({share_of}, "
                     "the node's CPUs shared out among its GPUs)", _cpus_per_task_fix(ctx, per_task))
        return  # one finding per job: the directive serves every step


def _worker_launches(ctx: Context, gpus: int, part: Any) -> list[tuple[int, Any, str, int, int]]:
    """``(line, srun, launcher, workers per task, tasks per node)`` of each launch that runs several GPU workers on
    a node, in order: torchrun's and srun's tasks of Python (:func:`_gpu_workers`; launcher "" for the tasks), and
    accelerate launch and deepspeed in one task per node or in the batch shell (:func:`_other_launch_workers`).
    Tasks per node are the most a node of the profile's partition ``part`` holds (:func:`tasks_per_node`)."""
    out = []
    for step in job_component_steps(ctx):
        workers = _gpu_workers(ctx, step, gpus, part)
        if workers is not None:
            out.append((step.line, step.chain.srun, "torchrun" if step.chain.launcher is not None else "", *workers))
    for launch in other_launches(ctx):
        if launch.step is not None and (not in_job_component(ctx, launch.step)
                                        or (tasks_per_node(ctx, launch.step, part) or 1) > 1):
            continue  # several launchers per node: HPC101 (accelerate) and HPC117 (deepspeed) say it
        each = _other_launch_workers(ctx, launch, gpus)
        if each is not None and each > 1:
            out.append((launch.line, launch.srun, launch.name, each, 1))
    return sorted(out, key=lambda found: found[0])


def _other_launch_workers(ctx: Context, launch: Any, gpus: int) -> int | None:
    """The GPU workers an accelerate launch or deepspeed starts on its node, as HPC108 reads them: deepspeed's
    --num_gpus (every host gets that many); accelerate's --num_processes, the total over --num_machines, and with
    --multi_gpu alone one per GPU the node has (accelerate's default without a config file: every GPU it sees).
    None when the command does not say (a --config_file, CPU or TPU workers, deepspeed's --include/--exclude)."""
    opts = launch.options
    if launch.name == "deepspeed":
        return None if "--include" in opts or "--exclude" in opts else launch.number(ctx, "--num_gpus")
    if "--cpu" in opts or "--tpu" in opts:
        return None
    machines = launch.machines(ctx)
    if "--num_processes" not in opts:
        return gpus if "--multi_gpu" in opts and machines == 1 else None
    processes = launch.number(ctx, "--num_processes")
    return processes // machines if processes and machines else None


def _gpu_workers(ctx: Context, step: Any, gpus: int, part: Any) -> tuple[int, int] | None:
    """``(workers per task, tasks per node)`` of a step that runs several GPU workers on a node (of the profile's
    partition ``part``): torchrun's --nproc-per-node in one task per node, or srun's tasks each running Python; None
    otherwise."""
    launcher = step.chain.launcher
    tasks = tasks_per_node(ctx, step, part) or 1
    if launcher is not None:
        if tasks > 1 or launcher.nproc_per_node == "cpu":
            return None  # several launchers per node are HPC101's
        nproc = gpus if launcher.nproc_per_node in ("gpu", "auto") else as_int(ctx, launcher.nproc_per_node, step.line)
        return (nproc, 1) if nproc is not None and nproc > 1 else None
    prog = [str(w) for w in step.chain.program]
    if step.chain.srun is None or tasks < 2 or not prog or not _PYTHON.fullmatch(prog[0].rsplit("/", 1)[-1]):
        return None
    return 1, tasks


def _cpus_per_gpu_share(ctx: Context) -> int:
    """The CPUs of one GPU's share of a GPU node of the partition the job runs on, by the profile (0: unknown), at
    most the partition's max_cpus_per_gpu (a site's rule, checked by HPC406)."""
    part = ctx.profile.entry_for(ctx.job) if ctx.profile is not None else None
    cpus = (part.gpu_node_cpus or part.cpus_per_node) if part is not None else None
    share = cpus // part.gpus_per_node if cpus and part.gpus_per_node else 0
    most = part.max_cpus_per_gpu if part is not None else None
    return min(share, most) if share and isinstance(most, int) and most > 0 else share


def _default_cpus_per_gpu(ctx: Context) -> bool:
    """Whether the partition the job runs on gives a GPU job CPUs per GPU by default (DefCpuPerGPU, by the
    profile): then a job that asks for none has them, not one per task."""
    part = ctx.profile.entry_for(ctx.job) if ctx.profile is not None else None
    return part is not None and bool(part.def_cpus_per_gpu)


def _cpus_per_task_fix(ctx: Context, cpus: int) -> Fix | None:
    """``#SBATCH --cpus-per-task=CPUS`` after the job's last #SBATCH line (none in a heterogeneous job, whose
    components each have their own lines)."""
    lines = [d.line for d in ctx.parsed.directives if d.applied]
    if heterogeneous(ctx) or not lines:
        return None
    last = max(lines)
    return Fix(f"ask for {cpus} CPUs per task", last, last,
               text=f"{ctx.parsed.lines[last - 1]}\n#SBATCH --cpus-per-task={cpus}")


@rule("HPC121", "lightning-devices-vs-tasks", "error",
      summary="a Lightning trainer's devices or num_nodes differ from the step's tasks per node or nodes",
      why="Under srun, PyTorch Lightning starts no processes of its own: every Slurm task is one process, and it "
          "checks that devices equals SLURM_NTASKS_PER_NODE and num_nodes equals SLURM_NNODES. When they differ it "
          "stops at start-up ('You set devices=4 in Lightning, but the number of tasks per node configured in SLURM "
          "--ntasks-per-node=1 does not match'; older versions wait for processes that never come), and with "
          "--ntasks but no --ntasks-per-node it refuses to start ('Use --ntasks-per-node'). Where Slurm binds one "
          "GPU to each task (--gpus-per-task=1, --gpu-bind=single:1), every process sees one GPU and Lightning, "
          "asked for devices=4 of them, stops too ('You requested gpu: [0, 1, 2, 3] But your machine only has: "
          "[0]'). Read from the "
          "trainer's settings on the command line: LightningCLI's --trainer.devices and Hydra's (NeMo's) "
          "trainer.devices=; a script's own --devices, --gpus and --num_nodes (as Trainer.add_argparse_args made "
          "them) where the script shows Lightning (the word lightning in it: a module, an environment, an image, a "
          "comment); and Trainer(…) or Fabric(…) called with numbers in python -c code or a here-document the step "
          "runs. devices='auto', -1, a list or a variable are left alone: their count depends on the node.",
      fix="One task per GPU: --ntasks-per-node equal to trainer.devices (and --gres=gpu:N to match), and --nodes "
          "equal to trainer.num_nodes. The message says which number to change: the one that differs from the "
          "job's GPUs per node.",
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
        settings = _lightning_settings(ctx, step, prog)
        if not settings:
            continue
        per_node, option = ((srun.ntasks_per_node, "srun --ntasks-per-node") if isinstance(srun.ntasks_per_node, int)
                            else (ctx.job.ntasks_per_node, "--ntasks-per-node"))
        devices = settings.get("devices")
        if devices is not None and isinstance(per_node, int) and devices[1] != per_node:
            yield (step.line, f"{devices[0]} under {'' if option.startswith('srun') else 'srun with '}{option}="
                              f"{per_node}: Lightning runs one process per Slurm task and stops at start-up (devices "
                              "must equal the tasks per node); " + _which_to_change(ctx, devices, per_node, option))
        elif devices is not None and devices[1] > 1 and (bound := one_gpu_each(ctx, step)):
            # each task sees its own GPU alone (CUDA_VISIBLE_DEVICES of one), and Lightning asks it for devices GPUs
            yield (step.line, f"{devices[0]} but each task sees only its own GPU ({bound} binds one to each): "
                              f"Lightning asks every process for {devices[1]} GPUs and stops at start-up ('You "
                              f"requested gpu: [0, 1, …] But your machine only has: [0]'); ask for the GPUs per node "
                              f"(--gpus-per-node={devices[1]}) instead, so that every task sees the node's GPUs and "
                              "Lightning gives each process its own")
        elif devices is not None and not isinstance(per_node, int) and isinstance(ctx.job.ntasks, int) \
                and ctx.job.ntasks > 1 and not isinstance(srun.ntasks, int):
            yield (step.line, f"{devices[0]} with --ntasks={ctx.job.ntasks} and no --ntasks-per-node: Lightning refuses "
                              f"to start under srun without SLURM_NTASKS_PER_NODE; use --ntasks-per-node={devices[1]} "
                              "with --nodes instead of --ntasks")
        nodes = next((n for n in (srun.nodes, ctx.job.nodes) if isinstance(n, int)), None)
        num_nodes = settings.get("num_nodes")
        if num_nodes is not None and nodes is not None and num_nodes[1] != nodes:
            written = num_nodes[0]
            yield (step.line, f"{written} under srun on {nodes} node{'s' if nodes > 1 else ''}: Lightning checks "
                              "num_nodes against the step's nodes (SLURM_NNODES) and stops at start-up; use "
                              f"{_respelled(written, nodes)}")


def _which_to_change(ctx: Context, devices: tuple[str, int], per_node: int, option: str) -> str:
    """The advice for a trainer's ``devices`` that differ from the step's tasks per node (set by ``option``, srun's or
    the job's): change the number that differs from the job's GPUs per node; both ways when that cannot tell."""
    gpus = ctx.job.gpus_on_each_node
    if gpus and devices[1] == gpus:
        return f"the job has {gpus} GPUs per node: use {option}={gpus}, one task per GPU"
    if gpus and per_node == gpus:
        return f"the job has {gpus} GPUs per node, one per task: use {_respelled(devices[0], gpus)}"
    if gpus:
        return f"the job has {gpus} GPUs per node: use {option}={gpus} and {_respelled(devices[0], gpus)}"
    return f"use {option}={devices[1]}, one task per GPU (or {_respelled(devices[0], per_node)})"


def _respelled(written: str, value: int) -> str:
    """A setting as written (``--trainer.devices=2``, ``devices=2``) with ``value`` in place of its number."""
    return f"{written[:written.rindex('=') + 1]}{value}"


#: a Lightning trainer setting on the command line: LightningCLI's --trainer.devices=4 / --trainer.devices 4, and
#: Hydra's trainer.devices=4 (with + or ++ to add or force it), as NeMo and lightning-hydra-template take them
_TRAINER_SETTING = re.compile(r"(?:--|\+{0,2})trainer\.(devices|num_nodes|gpus)(?:=(.*))?")

#: a script's own options named as Lightning's Trainer.add_argparse_args names them (Lightning 1.x), read only in a
#: script that shows Lightning: elsewhere --devices or --gpus may mean anything
_SCRIPT_SETTING = re.compile(r"--(devices|num_nodes|gpus)(?:=(.*))?")

#: the Lightning classes whose devices and num_nodes the Slurm check compares (the Trainer's strategy and Fabric's
#: launcher both call SLURMEnvironment.validate_settings)
_LIGHTNING_CLASSES = ("Trainer", "Fabric")


def _lightning_settings(ctx: Context, step: Any, prog: list[str]) -> dict[str, tuple[str, int]]:
    """``devices`` and ``num_nodes`` (``gpus``, Lightning 1.x's name, read as devices) that the step gives a Lightning
    trainer as whole numbers, each with its words as written: on the command line, or in the python -c code or the
    here-document the step's Python runs."""
    shows_lightning = "lightning" in ctx.parsed.source.lower()
    out = _trainer_settings(prog[1:], _SCRIPT_SETTING if shows_lightning else None)
    code = python_code(prog)
    if code is None and (len(prog) == 1 or prog[1] == "-"):
        code = next((r.heredoc for r in step.command.redirects if r.heredoc is not None), None)
    for name, found in _code_settings(code).items():
        out.setdefault(name, found)
    if "gpus" in out:
        out.setdefault("devices", out["gpus"])
        del out["gpus"]
    return out


def _trainer_settings(args: list[str], own: re.Pattern[str] | None = None) -> dict[str, tuple[str, int]]:
    """``devices``, ``num_nodes`` and ``gpus`` given to the trainer as whole numbers, each with its words as written;
    ``auto``, ``-1`` (every GPU) and device lists are left out: their count depends on the node. ``own`` also reads
    the script's own options of those names."""
    out: dict[str, tuple[str, int]] = {}
    for i, word in enumerate(args):
        m = _TRAINER_SETTING.fullmatch(word) or (own.fullmatch(word) if own is not None else None)
        if m is None:
            continue
        value, text = m.group(2), word
        if value is None:
            if not word.startswith("--") or i + 1 >= len(args):
                continue  # Hydra's form always has '='
            value, text = args[i + 1], f"{word}={args[i + 1]}"
        if is_number(value) and int(value) > 0:
            out[m.group(1)] = (text, int(value))
    return out


def _code_settings(code: str | None) -> dict[str, tuple[str, int]]:
    """``devices``, ``num_nodes`` and ``gpus`` given as whole numbers to a ``Trainer(…)`` or ``Fabric(…)`` call in
    Python ``code``, each as written (``devices=4``); {} when the code cannot be read or names none."""
    if not code:
        return {}
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return {}
    out: dict[str, tuple[str, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast_name(node.func) in _LIGHTNING_CLASSES:
            for kw in node.keywords:
                value = kw.value.value if isinstance(kw.value, ast.Constant) else None
                if kw.arg in ("devices", "num_nodes", "gpus") and type(value) is int and value > 0:
                    out.setdefault(kw.arg, (f"{kw.arg}={value}", value))
    return out


@rule("HPC109", "fewer-workers-than-gpus", "warning",
      summary="torchrun (or accelerate launch) starts fewer workers per node than the job has GPUs per node",
      why="Each worker drives one GPU; the extra GPUs are allocated (and charged) but stay idle. accelerate launch "
          "starts --num_processes / --num_machines processes on each machine.",
      fix="Set --nproc-per-node to the GPUs per node (accelerate: --num_processes to machines × GPUs per node), or "
          "request fewer GPUs.",
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
    yield from _idle_accelerate_gpus(ctx)


def _idle_accelerate_gpus(ctx: Context) -> Iterator[Any]:
    """HPC109 for accelerate launch: --num_processes over --num_machines below the GPUs of each machine (one launcher
    a node; HPC108 reports the other way, with the same reading of the counts)."""
    for launch, processes, machines, have in _accelerate_counts(ctx):
        each = processes // machines
        if 0 < each < have and not (machines > 1 and processes == have):  # (one machine's GPUs as the total: HPC118)
            over = f" with --num_machines {machines}" if machines > 1 else ""
            yield (launch.line, f"--num_processes {processes}{over} starts {each} process{'es' if each > 1 else ''} on "
                                f"each machine, leaving {have - each} of its {have} GPUs idle; use --num_processes "
                                f"{machines * have} (machines × GPUs per node), or request {each}")


def _accelerate_counts(ctx: Context) -> Iterator[tuple[Any, int, int, int]]:
    """Each accelerate launch, one launcher a node, whose process and machine counts and GPUs per node are known:
    ``(launch, --num_processes, --num_machines, GPUs of each node)``. Not where it picks GPUs or none (--gpu_ids,
    --cpu, --tpu)."""
    for launch in other_launches(ctx):
        step, opts = launch.step, launch.options
        if launch.name != "accelerate launch" or (step is not None and not in_job_component(ctx, step)):
            continue
        if launch.srun is not None and (tasks_per_node(ctx, step) or 1) > 1:
            continue
        have = (step_gpus(step) if step is not None else None) or ctx.job.gpus_on_each_node
        processes, machines = launch.number(ctx, "--num_processes"), launch.machines(ctx)
        if have and processes and machines and not any(o in opts for o in ("--cpu", "--gpu_ids", "--tpu")):
            yield launch, processes, machines, have


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
          "are that component's. A launcher a loop starts on one node per pass, in the background "
          "(for node in …; do srun -N1 -w \"$node\" torchrun … & done; wait), is left alone: every pass adds one.)",
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
        yield from _fixed_nnodes_in_a_node_range(ctx)
        return
    for step in job_component_steps(ctx):
        launcher = step.chain.launcher
        if launcher is None or launcher.standalone or _started_per_pass(ctx, step):
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


def _fixed_nnodes_in_a_node_range(ctx: Context) -> Iterator[Any]:
    """HPC112 for a job that asks for a range of nodes (--nodes=2-4) and a torchrun that srun starts on each of them
    with one fixed --nnodes: Slurm picks the count in the range when the job starts, and the launchers started are
    that many."""
    span = node_range(ctx.job.nodes) if isinstance(ctx.job.nodes, str) else None
    if span is None or span[0] == span[1] or span[0] < 1:
        return
    for step in job_component_steps(ctx):
        launcher, srun = step.chain.launcher, step.chain.srun
        if launcher is None or launcher.standalone or srun is None or srun.nodes is not None \
                or srun.ntasks is not None or tasks_per_node(ctx, step) != 1 or _started_per_pass(ctx, step):
            continue
        nnodes = as_int(ctx, launcher.nnodes, step.line) if launcher.nnodes and ":" not in launcher.nnodes else None
        if nnodes is None:
            continue  # a range (2:4), $SLURM_NNODES or a value out of sight: it follows the allocation
        outcome = ("on more, the rendezvous rejects the extra launchers" if nnodes == span[0] else
                   "on fewer, it waits forever for the missing ones" if nnodes == span[1] else
                   "on fewer it waits forever, on more it rejects the extra launchers")
        yield (step.line, f"--nnodes={launcher.nnodes} is fixed, but the job asks for {span[0]}-{span[1]} nodes and srun "
                          f"starts one launcher on each node Slurm gives it: {outcome}; use "
                          "--nnodes=\"$SLURM_NNODES\", the count the job got")


def _started_per_pass(ctx: Context, step: Any) -> bool:
    """Whether a loop (or GNU parallel, xargs -P) starts ``step`` again beside its earlier starts (``for node in …; do
    srun -N1 -w "$node" torchrun … & done; wait``): the launchers that join the rendezvous are then those of every
    pass, a number the step's own nodes do not give."""
    from .parallel_steps import background_steps
    return any(b.step.command.offset == step.command.offset and (b.in_loop or b.several) and b.side_by_side
               for b in background_steps(ctx))


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
                rdzv_id="$SLURM_JOB_ID"), srun=srun.replace(ntasks_per_node=1, ntasks=_one_per_node(ctx, nodes)))
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
