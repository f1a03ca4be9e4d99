"""Rules that check a job against a cluster profile: partitions and their limits (time, GPUs, memory, CPUs,
nodes, CPUs per GPU), whole-node partitions, the QOS and theirs, GPU types, and the modules a site provides its
container runtime in. They find nothing without a profile.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from ..parse.script import _module_names
from . import Context, Fix, rule
from .catalogue import (MPI_LAUNCHERS, _first_directive_line, _in_component, _shell_c_script, _simple_commands, cached,
                        component_views, job_components, run_words, simple_commands)
from .directives import _runs_only_diagnostics

#: the options a problem may be about where the job sets its field with another field's option: the GPU type is
#: written in the GPU request, --gres=gpu:a100:1, --gpus-per-node=a100:2, --gpus=a100:8 or --gpus-per-task=a100:1
_OPTIONS_OF = {"gpu_type": ("gpus_per_node", "gpus", "gpus_per_task")}


def _option_of(job: Any, field: str) -> str:
    """The field whose option a problem about ``field`` is shown at: the field itself, or for the GPU type the GPU
    request of ``job`` that names it."""
    options = _OPTIONS_OF.get(field)
    if not options:
        return field
    return next((f for f in options if getattr(job, f, None)), options[0])


def profile_findings(ctx: Context) -> dict[str, list[tuple[int, str]]]:
    """The limits the profile sets, its partitions' and its QOS's (:func:`~hpcwidgets.spec.profile.check_job`), as
    ``{code: [(line, message)]}``."""
    def make() -> dict[str, list[tuple[int, str]]]:
        if ctx.profile is None or not ctx.parsed.directives:
            return {}
        from ..spec.profile import check_job
        return _by_code(ctx, lambda job: check_job(ctx.profile, job), lambda p: _profile_code(p.field, p.message))
    return cached(ctx, "profile_problems", make)


#: the rule of each field :func:`~hpcwidgets.spec.profile.job_warnings` reports
_WARNING_CODES = {"partition": "HPC410", "time": "HPC411", "mem_per_cpu": "HPC412", "mem": "HPC413"}


def profile_warnings(ctx: Context) -> dict[str, list[tuple[int, str]]]:
    """What may still go wrong on the site (:func:`~hpcwidgets.spec.profile.job_warnings`): HPC410 for a partition
    a partial profile does not list, HPC411 for a job stopped at its partition's default time limit, HPC412 for
    --mem-per-cpu above MaxMemPerCPU, HPC413 for a job left with a small default memory."""
    def make() -> dict[str, list[tuple[int, str]]]:
        if ctx.profile is None or not ctx.parsed.directives:
            return {}
        from ..spec.profile import job_warnings
        # a later component's time and memory are left alone: whether it takes the first one's options is not known
        # here, and a warning that may be false is worse than none
        return _by_code(ctx, lambda job: [p for p in job_warnings(ctx.profile, job)
                                          if job is ctx.job or p.field == "partition"],
                        lambda p: _WARNING_CODES[p.field])
    return cached(ctx, "profile_warnings", make)


def _by_code(ctx: Context, problems_of: Any, code_of: Any) -> dict[str, list[tuple[int, str]]]:
    """``problems_of(job)`` for the job and for each later component of a heterogeneous job (one that names no
    partition gets the default, as --partition is not passed on from one component to the next:
    heterogeneous_jobs.html lists the options that are), by ``code_of(problem)``, each at the line of the option it
    is about; without that option, at the --partition line (else the first directive, or the component's)."""
    out: dict[str, list[tuple[int, str]]] = {}
    default = ctx.parsed.directive_line("partition", _first_directive_line(ctx))
    for p in problems_of(ctx.job):
        line = ctx.parsed.directive_line(_option_of(ctx.job, p.field), default)
        out.setdefault(code_of(p), []).append((line, p.message))
    for view, (_, line_of) in zip(component_views(ctx), job_components(ctx)[1:]):
        for p in problems_of(view.job):
            out.setdefault(code_of(p), []).append((line_of(_option_of(view.job, p.field)), _in_component(view, p)))
    return out


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
            "qos": "HPC408",  # a QOS the partition does not allow or the profile does not list, or none where required
            }.get(field, "HPC408")


def _profile_rule(code: str) -> Any:
    def check(ctx: Context) -> Iterator[Any]:
        yield from profile_findings(ctx).get(code, [])
    check.__name__ = f"_profile_{code}"
    return check


_profile_rule_specs = [
    ("HPC401", "unknown-partition", "the partition does not exist on this cluster (or takes no jobs)",
     "sbatch rejects the job: 'invalid partition specified'. A partition whose State is DRAIN or INACTIVE refuses "
     "new jobs, and one that is DOWN queues them but starts none. (A profile that lists only some of the site's "
     "partitions, partitions_complete = false, cannot tell: a partition it does not list is HPC410, a warning.)",
     "Use one of the partitions the profile lists that takes jobs (the message leaves out those only some accounts "
     "or groups may use).",
     "#SBATCH --partition=gpu-large\n#SBATCH --gres=gpu:1\n", "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n"),
    ("HPC402", "time-over-partition-limit", "the time limit is longer than the partition (or the job's QOS) allows, "
                                            "or shorter than the QOS takes",
     "The job is rejected, or stays pending forever with reason PartitionTimeLimit (QOSMaxWallDurationPerJobLimit "
     "over the MaxWall of its QOS: the QOS it names, else the one the profile's partition fills in). Slurm applies "
     "both limits, so the lower one counts; the message names it. A QOS the site keeps for long jobs (the profile's "
     "min_time, ARCHER2's long: at least 24 hours) refuses a shorter one when it is submitted.",
     "Ask for at most the lower of the two limits, or use a partition or QOS with a longer one; under a QOS's "
     "minimum, ask for more time or use a QOS the job fits (the message names them).",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=3-00:00:00\n",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=1-00:00:00\n"),
    ("HPC403", "too-many-gpus-per-node", "more GPUs per node than the partition's nodes have (or per job than it or the "
                                         "job's QOS allows)",
     "No node can satisfy the request: the job never starts ('Requested node configuration is not available'). "
     "Over a per-job GPU limit (the partition's, or the gres/gpu of the QOS's MaxTRESPerJob, reason QOSMaxGRESPerJob) "
     "the job is rejected or pends forever. A job that names no --nodes gets as many nodes as its tasks need "
     "(sbatch(1), -N), each with its --gpus-per-node: its GPUs are counted on the fewest nodes its tasks fit (the "
     "nodes' CPUs, --ntasks-per-node), as 'at least'.",
     "Ask for at most the partition's GPUs per node and use more nodes for more GPUs; stay within the GPUs per job "
     "of the partition and the QOS, or use a QOS that allows more.",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:8\n", "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:4\n"),
    ("HPC404", "unknown-gpu-type", "a GPU type the partition does not have",
     "The request (--gres=gpu:TYPE:N, --gpus-per-node, --gpus or --gpus-per-task with a TYPE) names a gres type no "
     "node offers: the job is rejected or never starts. Only partitions whose profile lists their GPU types are "
     "checked: one that lists none takes any type, as the profile does not know the names.",
     "Use one of the partition's GPU types, or leave the type out (gpu:N).",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:v100:1\n", "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:a100:1\n"),
    ("HPC405", "memory-over-node", "more memory per node than the partition's nodes have (or per job than it allows)",
     "No node is large enough, or the job is over the partition's memory per job: it never starts.",
     "Ask for at most the node's memory (or --mem=0 for all of it), and in total at most the memory per job.",
     "#SBATCH --partition=cpu\n#SBATCH --mem=1T\n", "#SBATCH --partition=cpu\n#SBATCH --mem=200G\n"),
    ("HPC406", "cpus-over-node", "more CPUs per node than the partition's nodes have (or per job or per GPU than it "
                                 "allows)",
     "Tasks per node × CPUs per task does not fit on any node, or the job is over the partition's CPUs per job: "
     "it never starts. A job that names no node count and no tasks per node has its --ntasks spread by Slurm over "
     "as many nodes as they need (sbatch(1), -N), with or without --gpus-per-node: it is reported only when they "
     "need more nodes than the partition allows. Sites that share GPU nodes out by GPU allow only so many CPUs with "
     "each GPU (CSC Puhti: 10 cores; the profile's max_cpus_per_gpu): more, by --cpus-per-gpu or by the CPUs per "
     "node over the GPUs per node, takes cores the node's other GPUs need, which the site's rules forbid (its "
     "submit filter may refuse the job). Where the profile says a partition's threads per core (threads_per_core, "
     "2 with hyper-threading), Slurm hands out whole cores: a job that keeps to one thread per core "
     "(--hint=nomultithread, --threads-per-core=1) uses one CPU of each, and with --ntasks-per-core=N a core takes "
     "at most N tasks, N × --cpus-per-task of its CPUs (sbatch(1): Slurm may allocate more CPUs than requested to "
     "respect it), so 256 one-CPU tasks with --ntasks-per-core=1 need 256 cores, two nodes of 128 cores × 2 "
     "threads. Where it does not say them, all of a node's CPUs count.",
     "Lower the tasks per node or CPUs per task, or spread the tasks over more nodes; stay within the CPUs per job "
     "and the CPUs per GPU.",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --cpus-per-task=64\n",
     "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --cpus-per-task=16\n"),
    ("HPC407", "gpus-on-cpu-partition", "GPUs are requested on a partition without GPUs",
     "The partition has no GPU nodes: the job is rejected or waits forever. Each component of a heterogeneous "
     "job is checked: one that names no partition gets the default, whatever the others name.",
     "Submit to a GPU partition (the profile lists them), or drop the GPU request.",
     "#SBATCH --partition=cpu\n#SBATCH --gres=gpu:1\n", "#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n"),
    ("HPC408", "over-partition-limit", "more nodes than the partition or the QOS allows (or another site limit: fewer "
                                       "nodes than the QOS takes, a QOS the partition does not allow or the profile "
                                       "does not list, no --qos or --account where the site requires one)",
     "The job is rejected or pends forever with reason PartitionNodeLimit (QOSMaxNodePerJobLimit over the nodes of "
     "its QOS's MaxTRESPerJob; a QOS with DenyOnLimit makes sbatch fail with 'Job violates accounting/QOS policy'). "
     "A QOS for large jobs (MinTRESPerJob node=N, ARCHER2's largescale) holds smaller ones. A partition that allows "
     "only some QOS (slurm.conf AllowQos, the profile's allowed_qos) refuses a job with another one, also the QOS "
     "the profile fills in: sbatch fails with 'Invalid qos specification', or the job pends with reason 'Job's QOS "
     "not permitted to use this partition'; a QOS the site does not have fails the same way (the profile lists its "
     "QOS in [[qos]] tables). A site whose profile sets qos_required (ARCHER2) or account_required (LUMI) rejects a "
     "job that names none. A job without --nodes is held to these limits with the fewest nodes its counts need "
     "(--ntasks over --ntasks-per-node, --gpus over --gpus-per-node, and the partition's node sizes).",
     "Ask for at most the lower of the partition's and the QOS's maximum number of nodes, and at least the QOS's "
     "minimum; use a QOS the profile lists and the partition allows (--qos), as the message names them; name your "
     "QOS (--qos) and account (--account) where the site requires them; where the job fits none of the QOS it may "
     "use, the message names the nearest one and the limits to change to fit it.",
     "#SBATCH --partition=gpu\n#SBATCH --nodes=8\n#SBATCH --gres=gpu:1\n",
     "#SBATCH --partition=gpu\n#SBATCH --nodes=4\n#SBATCH --gres=gpu:1\n"),
]

for _code, _name, _summary, _why, _fix, _bad, _good in _profile_rule_specs:
    _time = "" if "--time" in _bad else "#SBATCH --time=02:00:00\n"  # as every job should (HPC411)
    _run = "srun python train.py\n" if "--nodes" in _bad else "python train.py\n"  # on every node it asks for (HPC552)
    rule(_code, _name, "error", summary=_summary, why=_why, fix=_fix, catalogue=(12,), profile="generic",
         bad="#!/bin/bash\n" + _bad + _time + _run,
         good="#!/bin/bash\n" + _good + _time + _run)(_profile_rule(_code))


@rule("HPC410", "partition-not-in-profile", "warning",
      summary="the partition is not one the profile lists, and the profile lists only some of the site's partitions",
      why="A profile detected by someone outside a lab, or written by hand, leaves out the partitions only some "
          "accounts or groups may use (owner and condo partitions) and hidden ones; partitions_complete = false "
          "says so. The job may be right, but none of its limits can be checked, and a misspelt name makes sbatch "
          "fail with 'invalid partition specified' after the script is written. (With a complete profile an "
          "unknown partition is HPC401, an error.)",
      fix="Check the name: sinfo --summarize lists the partitions you may use. If it is right, add the partition to "
          "the profile to have the job's limits checked.",
      catalogue=(12,), profile="midway3",
      bad="#!/bin/bash\n#SBATCH --partition=gpu-smithlab\n#SBATCH --gres=gpu:1\n#SBATCH --mem=40G\n"
          "#SBATCH --time=02:00:00\npython train.py\n",
      good="#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --mem=40G\n#SBATCH --time=02:00:00\n"
           "python train.py\n")
def _partition_not_listed(ctx: Context) -> Iterator[Any]:
    yield from profile_warnings(ctx).get("HPC410", [])


@rule("HPC411", "default-time-limit", "warning",
      summary="no --time, on a partition whose default time limit is shorter than its maximum: the job is stopped "
              "after the default",
      why="A job that asks for no time limit gets the partition's DefaultTime (slurm.conf), not its MaxTime. Sites "
          "often set it short, an hour or less, so that people say what they need: a training run is then killed "
          "('DUE TO TIME LIMIT') long before it ends, after its wait in the queue. Not reported for a script that "
          "only runs quick checks (nvidia-smi, hostname), nor for a later component of a heterogeneous job.",
      fix="Add --time with the time the job needs, at most the partition's maximum (a shorter limit may also start "
          "sooner).",
      catalogue=(12,), profile="generic",
      bad="#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\npython train.py\n",
      good="#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=12:00:00\npython train.py\n")
def _default_time_limit(ctx: Context) -> Iterator[Any]:
    if any(d.field == "time" and d.component == 0 for d in ctx.parsed.directives):
        return  # an --time sbatch refuses or ignores (empty, after the first command): its own rule says so
    if not _runs_only_diagnostics(ctx):  # nvidia-smi, hostname: done long before any default limit
        yield from profile_warnings(ctx).get("HPC411", [])


@rule("HPC412", "mem-per-cpu-over-max", "warning",
      summary="--mem-per-cpu is above the partition's MaxMemPerCPU: Slurm gives each task more CPUs, and bills them",
      why="Sites that share a node's memory out by CPU set MaxMemPerCPU (slurm.conf, or the partition's line in "
          "scontrol show partition). Slurm does not refuse a job that asks for more per CPU: it takes the value as "
          "memory per task and raises --cpus-per-task until the CPUs' shares cover it (sbatch(1), --mem-per-cpu). "
          "The job is billed for those CPUs, an explicit --cpus-per-task is changed, and tasks that no longer fit on "
          "a node make the job fail (slurm.conf(5), MaxMemPerCPU).",
      fix="Ask for at most MaxMemPerCPU per CPU, and for the CPUs per task the memory needs (--cpus-per-task), so "
          "the job script says what the job gets.",
      catalogue=(12,), profile="midway3",
      bad="#!/bin/bash\n#SBATCH --partition=caslake\n#SBATCH --mem-per-cpu=16G\n#SBATCH --time=02:00:00\n"
          "python train.py\n",
      good="#!/bin/bash\n#SBATCH --partition=caslake\n#SBATCH --cpus-per-task=5\n#SBATCH --mem-per-cpu=3900M\n"
           "#SBATCH --time=02:00:00\npython train.py\n")
def _mem_per_cpu_over_max(ctx: Context) -> Iterator[Any]:
    yield from profile_warnings(ctx).get("HPC412", [])


@rule("HPC413", "small-default-memory", "warning",
      summary="no memory request, on a partition whose default memory per CPU (or GPU, or node) leaves the job less "
              "than half its share of a node",
      why="A job that asks for no memory gets DefMemPerCPU × its CPUs (DefMemPerGPU × its GPUs where the partition "
          "sets that; a GPU job that asks for no CPUs has DefCpuPerGPU × its GPUs where the site sets that), or, on "
          "a partition that sets DefMemPerNode instead (the profile's def_mem_per_node; slurm.conf(5) allows one of "
          "the two), that much on each node whatever its CPUs, not the "
          "node's memory. Sites often set the default low, 1G or 2G per CPU, and a GPU job with "
          "one or two CPUs then has a few GB of host memory beside a GPU that came with a quarter of the node's: "
          "loading the data or the model is killed by the out-of-memory handler ('oom-kill event', 'Killed'), after "
          "the job waited in the queue. Not reported for --exclusive jobs, nor for a later component of a "
          "heterogeneous job, nor on a partition whose nodes have fewer GPUs or CPUs than the job asks for per node "
          "(HPC403 and HPC406 report that).",
      fix="Ask for the memory the job needs with --mem (at most the node's), or --mem-per-gpu.",
      catalogue=(12,), profile="midway3",
      bad="#!/bin/bash\n#SBATCH --partition=caslake\n#SBATCH --cpus-per-task=8\n#SBATCH --time=02:00:00\n"
          "python train.py\n",
      good="#!/bin/bash\n#SBATCH --partition=caslake\n#SBATCH --cpus-per-task=8\n#SBATCH --mem=24G\n"
           "#SBATCH --time=02:00:00\npython train.py\n")
def _small_default_memory(ctx: Context) -> Iterator[Any]:
    if not _runs_only_diagnostics(ctx):  # nvidia-smi, hostname: a few MB are enough
        yield from profile_warnings(ctx).get("HPC413", [])


@rule("HPC415", "part-of-whole-node", "warning",
      summary="the job asks for part of a node on a partition that gives every job whole nodes, and bills them",
      why="Some partitions allocate whole nodes only (Slurm's OverSubscribe=EXCLUSIVE, the profile's whole_nodes; "
          "LUMI's standard-g and standard): Slurm runs a job that asks for one GPU of eight, or a few CPUs, but gives "
          "it the whole node and bills the whole node, while the rest of it sits idle. Sites keep other partitions "
          "for such jobs (LUMI: small-g and small), which share nodes and bill only what a job asks for. A job with "
          "--exclusive on a partition without GPUs is left alone: its program may use every CPU it finds. Where no "
          "partition of the kind shares nodes (CSCS Alps: every GPU node is given whole), the warning stays: the job "
          "still pays for the whole node, and only using the rest of it (one task per GPU, several runs at once) "
          "turns that into work; `hpcwidgets profile check` notes such a site, and the examples' one-GPU jobs there "
          "say that they pay for the whole node.",
      fix="Use the partition that shares nodes (the message names it), or make the job use whole nodes: all of "
          "each node's GPUs (one task per GPU), or on a partition without GPUs, CPUs for every core.",
      catalogue=(12,),
      bad="#!/bin/bash\n#SBATCH --account=project_465000000\n#SBATCH --partition=standard-g\n#SBATCH --nodes=1\n"
          "#SBATCH --gpus-per-node=1\n#SBATCH --time=02:00:00\nsrun python train.py\n",
      good="#!/bin/bash\n#SBATCH --account=project_465000000\n#SBATCH --partition=small-g\n#SBATCH --nodes=1\n"
           "#SBATCH --gpus-per-node=1\n#SBATCH --time=02:00:00\nsrun python train.py\n")
def _part_of_whole_node(ctx: Context) -> Iterator[Any]:
    if ctx.profile is None or not ctx.parsed.directives:
        return
    from ..spec.profile import whole_node_warnings
    yield from _by_code(ctx, lambda job: whole_node_warnings(ctx.profile, job), lambda p: "HPC415").get("HPC415", [])


def _same_module(loaded: str, wanted: str) -> bool:
    """``module load apptainer`` loads the default of apptainer/1.3.4, and apptainer/1.3.4 is an apptainer."""
    a, b = loaded.split("/", 1)[0], wanted.split("/", 1)[0]
    return a == b and (loaded == wanted or "/" not in loaded or "/" not in wanted)


#: words that run the command after them (their own options skipped)
def _program_run(cmd: Any) -> str:
    """The program a simple command runs (its basename), past ``time``, ``env A=1`` and ``srun [options]``."""
    words = run_words([str(w.value) for w in cmd.words])
    return words[0].rsplit("/", 1)[-1] if words else ""


def _program_word(cmd: Any) -> str:
    """The program a simple command runs as written (``/share/apps/singularity/bin/singularity``), past the same
    wrappers as :func:`_program_run`; past ``mpirun [options]`` to the container program it starts."""
    words = run_words([str(w.value) for w in cmd.words])
    if words and words[0].rsplit("/", 1)[-1] in MPI_LAUNCHERS:
        return next((w for w in words[1:] if w.rsplit("/", 1)[-1] in ("apptainer", "singularity", "ch-run")),
                    words[0])
    return words[0] if words else ""


def _path_names(ctx: Context, program: str, module: str, line: int) -> bool:
    """Whether the script puts a folder named for ``program`` or its ``module`` on PATH before ``line``
    (``export PATH=/share/apps/singularity/bin:$PATH``): it then finds the program itself, as a module would."""
    names = {program.lower(), module.split("/", 1)[0].lower()}
    for v in ctx.parsed.variables:
        if v.name != "PATH" or v.line >= line:
            continue
        for folder in str(v.value).split(":"):
            parts = {p.lower() for p in folder.split("/") if p}
            if parts & names or any(p.startswith(tuple(n + "-" for n in names)) for p in parts):
                return True
    return False


@rule("HPC409", "runtime-module-not-loaded", "warning",
      summary="the container runtime is used but the module the site provides it in is not loaded first",
      why="On sites where Apptainer or Charliecloud comes as an environment module, a batch job starts without it: "
          "the step fails at once with 'apptainer: command not found' (under srun, each task with 'slurmstepd: "
          "error: execve(): apptainer: No such file or directory') after the job has waited in the queue. A "
          "program called by its path (/share/apps/singularity/bin/singularity exec …) is not looked up in PATH, so "
          "it is not reported; nor is one after a PATH the script extends, before the call, with a folder named for "
          "the program or its module (export PATH=/opt/apptainer/bin:$PATH), which does what the module would. A "
          "PATH extended with another folder ($HOME/.local/bin) still is: such folders hold the user's own tools, "
          "rarely a container runtime. A module named for the program (module load singularity/3.6.1 before "
          "singularity) counts as loading it; one named for another runtime that the profile's [modules] table "
          "does not list (module load apptainer where the site's module is singularity) does not, and the fix loads "
          "the profile's module in its place. The rule reads only what the profile's [modules] table names: "
          "without a runtime module there it says nothing. A program the script of srun bash -c '…' runs is looked "
          "up on the PATH the batch shell passes on, so it needs the module loaded in the batch shell too, unless "
          "that script loads it before the call.",
      fix="module load the runtime's module (the profile names it) before the first command that uses it, or call "
          "the program by its full path.",
      catalogue=(12,), profile="midway3",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --mem=40G
apptainer exec --nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --mem=40G
module load apptainer
apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _runtime_module(ctx: Context) -> Iterator[Any]:
    if ctx.profile is None or not ctx.parsed.directives:
        return  # a command typed at the prompt, where the module may well be loaded: only batch jobs start clean
    reported: set[str] = set()
    for cmd, outer, loaded in _with_shell_scripts(simple_commands(ctx)):
        program = _program_run(cmd)
        if program in MPI_LAUNCHERS:  # mpirun [options] apptainer exec …: the ranks run the container program
            program = next((name for name in (str(w.value).rsplit("/", 1)[-1] for w in cmd.words[1:])
                            if ctx.profile.runtime_module(name)), program)
        wanted = ctx.profile.runtime_module(program)
        if not wanted or wanted in reported:
            continue
        if "/" in _program_word(cmd) or _path_names(ctx, program, wanted, outer.line):
            continue  # called by its path (never looked up in PATH), or from a folder the script puts on PATH
        if any((_same_module(name, wanted) or _same_module(name, program)) and line < outer.line
               for name, line in (*ctx.parsed.modules, *((name, 0) for name in loaded))):
            continue  # the profile's module, or one named for the program (singularity/3.6.1 for singularity)
        reported.add(wanted)
        stray = _unknown_module(ctx, _RUNTIME_MODULE_NAMES, outer.line)
        fix = _module_swap_fix(ctx, *stray, wanted) if stray is not None else None
        if stray is not None and fix is not None:  # module load apptainer where the site's is singularity
            yield (outer.line, f"{program} comes from the module {wanted} on this cluster, and the script loads "
                               f"{stray[0]} (line {stray[1]}) in its place, a module the profile {ctx.profile.name} "
                               f"does not list: unless that module provides {program} too, the job stops with "
                               f"'{not_found_error(cmd, program)}'; load {wanted} in place of {stray[0]}", fix)
            continue
        inside = "" if cmd is outer else " (in the script of its bash -c)"
        yield (outer.line, f"{program} comes from the module {wanted} on this cluster, and the script does not load it "
                           f"before line {outer.line}{inside}: the job stops with '{not_found_error(cmd, program)}'; "
                           f"add module load {wanted} above it", _load_module_fix(ctx, outer, wanted))


def _with_shell_scripts(commands: Any) -> Iterator[tuple[Any, Any, tuple[str, ...]]]:
    """Each command as ``(command, command, ())``, followed by the commands of the script its ``bash -c`` runs
    (``srun bash -c 'apptainer exec …'``) as ``(inner command, outer command, modules the script loads before it)``:
    a program there is looked up on the PATH the batch shell passes on, unless the script loads a module first."""
    for cmd in commands:
        yield cmd, cmd, ()
        loaded: list[str] = []
        for inner in _shell_c_script(cmd):
            if inner.kind != "simple":
                continue
            yield inner, cmd, tuple(loaded)
            loaded += _module_names(inner) or []  # module load/add, ml: as the script reader reads them


#: the names a container runtime's module goes by: the runtimes' and their programs'
_RUNTIME_MODULE_NAMES = ("apptainer", "singularity", "charliecloud", "ch-run")


def _module_swap_fix(ctx: Context, module: str, line: int, wanted: str) -> Fix | None:
    """The ``module load`` line of ``module`` rewritten to load ``wanted`` instead, when ``module`` is written once on
    its line; None otherwise."""
    if line > len(ctx.parsed.lines):
        return None
    text = ctx.parsed.lines[line - 1]
    found = list(re.finditer(r"(?<![\w./-])" + re.escape(module) + r"(?![\w./-])", text))
    if len(found) != 1:
        return None
    at = found[0]
    return Fix(f"load {wanted} in place of {module}", line, line, text=text[:at.start()] + wanted + text[at.end():])


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


#: the programs that run .sif images, by the runtime of the profile's ``runtimes`` that provides them. Charliecloud's
#: ch-run is left out: it needs no privileges, so people install it themselves where the site does not (the lessons
#: do), and a profile without it says nothing about it.
SIF_PROGRAMS = {"apptainer": "apptainer", "singularity": "singularity"}


def site_has_program(profile: Any, program: str) -> bool:
    """Whether the site of ``profile`` has the container program ``program``: apptainer where the profile lists
    Apptainer under that name (``apptainer_binary``: SingularityCE sites name theirs singularity), singularity where
    it lists Apptainer or Singularity (Apptainer installs singularity as a second name); neither where the runtimes
    that would install it are render-only (:meth:`~hpcwidgets.spec.profile.ClusterProfile.render_only_runtime`)."""
    if profile.render_only_runtime(program):
        return False
    runtimes = set(profile.runtimes)
    if program == "apptainer":
        return "apptainer" in runtimes and profile.apptainer_binary == "apptainer"
    return bool(runtimes & {"apptainer", "singularity"})


def _checked_for(ctx: Context, program: str) -> bool:
    """Whether the script asks whether ``program`` is there (command -v, which, type, hash), or loads a module named
    for it that may exist (:func:`_unknown_module` says when the profile rules that out): it then knows better than
    the profile."""
    if re.search(r"\b(?:command\s+-v|which|type(?:\s+-\w+)*|hash)\s+" + re.escape(program) + r"\b", ctx.parsed.source):
        return True
    return any(name.split("/", 1)[0] == program for name, _ in ctx.parsed.modules) \
        and _unknown_module(ctx, program) is None


#: the [modules] purposes of the container runtimes (the modules jobs load)
RUNTIME_MODULE_PURPOSES = ("apptainer", "singularity", "charliecloud")


def site_runtime_modules(profile: Any) -> tuple[str, ...]:
    """The modules the profile's ``[modules]`` table names for the container runtimes (``apptainer``,
    ``singularity``, ``charliecloud`` keys); () where it names none. Only a table that names them says which
    runtime modules the site has: an empty or absent one (no modules, or not known) says nothing."""
    return tuple(m.name for m in getattr(profile, "modules", ()) or ()
                 if getattr(m, "purpose", "") in RUNTIME_MODULE_PURPOSES and getattr(m, "name", ""))


def _unknown_module(ctx: Context, program: str | tuple[str, ...], before: int = 0) -> tuple[str, int] | None:
    """The first ``module load`` of a module named for ``program`` (``module load apptainer`` for apptainer) that the
    profile says the site does not have, as (name, line): its ``[modules]`` table names the runtime modules
    (:func:`site_runtime_modules`) and none of its modules is that one. None when the profile names no runtime
    module (it does not know), or names this one under any key. ``program`` may be several names; ``before``, a line
    the load must come before."""
    names = (program,) if isinstance(program, str) else program
    runtime_modules = site_runtime_modules(ctx.profile)
    if not runtime_modules:
        return None
    listed = [m.name for m in getattr(ctx.profile, "modules", ()) or () if getattr(m, "name", "")]
    for name, line in ctx.parsed.modules:
        if name.split("/", 1)[0] in names and not any(_same_module(name, known) for known in listed) \
                and (not before or line < before):
            return name, line
    return None


#: the container programs a profile may list as render-only (installed by a runtime in ``runtimes_render_only``):
#: the SIF runners and Charliecloud's, whose absence the profile then states outright
RENDER_ONLY_PROGRAMS = ("apptainer", "singularity", "ch-run", "ch-image", "ch-convert", "ch-fromhost")


#: the code of the rule about a container program whose runtime the profile lists as render-only (callers that leave
#: that finding out, as the lessons' tables and the form do, test this code, not the message's words)
RENDER_ONLY_RULE = "HPC416"


def _missing_programs(ctx: Context) -> list[tuple[Any, str, bool]]:
    """The container programs the script calls by name (apptainer, singularity, ch-run …; after an MPI launcher too)
    that the profile says its cluster does not have, once each, as ``(command, program, render_only)``:
    ``render_only`` where a runtime the profile lists in ``runtimes_render_only`` would provide it (HPC416), else the
    profile lists no runtime that installs it under that name (HPC414). Left out: a program called by its path (the
    person's own installation) and one the script looks for or loads a module for that may exist
    (:func:`_checked_for`)."""
    def find() -> list[tuple[Any, str, bool]]:
        out: list[tuple[Any, str, bool]] = []
        if ctx.profile is None:
            return out
        seen: set[str] = set()
        watched = (*SIF_PROGRAMS, *RENDER_ONLY_PROGRAMS)
        for cmd in _simple_commands(ctx.parsed.lexed.code):
            words = run_words([str(w) for w in cmd.argv])
            if words and words[0].rsplit("/", 1)[-1] in MPI_LAUNCHERS:  # mpirun [options] apptainer exec …
                words = words[next((i for i, w in enumerate(words) if w in watched), len(words)):]
            program = words[0] if words else ""
            if program not in watched or program in seen or _checked_for(ctx, program):
                continue
            if ctx.profile.render_only_runtime(program):
                out.append((cmd, program, True))
            elif program in SIF_PROGRAMS and not site_has_program(ctx.profile, program):
                out.append((cmd, program, False))
            else:
                continue
            seen.add(program)
        return out
    return cached(ctx, "missing_container_programs", find)


def _with_module_load(ctx: Context, program: str, message: str, fix: Fix | None) -> tuple[str, Fix | None]:
    """``message`` and ``fix`` of HPC414 or HPC416, told first of a ``module load`` named for ``program`` that the
    profile's ``[modules]`` table rules out (:func:`_unknown_module`): that load fails as well, and the fix then loads
    the site's module in its place where the profile names one."""
    unknown = _unknown_module(ctx, program)
    if unknown is None:
        return message, fix
    message = _unknown_module_message(ctx, program, *unknown) + message + _site_module_advice(ctx, program, unknown[0])
    return message, _site_module_fix(ctx, program, *unknown) or fix


@rule("HPC414", "runtime-not-on-site", "warning",
      summary="the script calls apptainer (or singularity) where the profile says the site has no such program",
      why="The profile's runtimes and apptainer_binary say which of the two the cluster has. A SingularityCE site "
          "(runtimes = [\"singularity\"], apptainer_binary = \"singularity\") has no apptainer command: Apptainer "
          "installs singularity as a second name, not the other way round; a site that lists neither has no "
          "program to run a SIF image. The step then stops with 'apptainer: command not found' (under srun: "
          "'slurmstepd: error: execve(): apptainer: No such file or directory') after the job has waited in the "
          "queue. Not reported for a program called by its path (your own installation), nor when "
          "the script looks for it (command -v) or loads a module named for it that may exist: a [modules] table "
          "that names the site's runtime modules and not this one (module load apptainer where it names only "
          "singularity) says the load fails too, and then it is reported, with a fix that loads the site's "
          "module; an empty or absent [modules] table says nothing about modules. A runtime the profile does list, "
          "but in runtimes_render_only, is HPC416's. The examples need the profile of such a site (no shipped "
          "profile lacks Apptainer).",
      fix="Call the program the site has: singularity exec … in place of apptainer exec … (the same commands and "
          "options; Singularity reads SINGULARITYENV_ and SINGULARITY_BIND where Apptainer reads APPTAINERENV_ and "
          "APPTAINER_BIND). The fix writes singularity for apptainer, one line at a time, unless the script sets "
          "APPTAINER_ or APPTAINERENV_ variables, which would need renaming too. Where the site has neither, run "
          "the image with the runtime it has, or install Apptainer yourself.",
      catalogue=(12,),
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00
module load singularity
srun apptainer exec --nv pytorch.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00
module load singularity
srun singularity exec --nv pytorch.sif python train.py
""")
def _runtime_not_on_site(ctx: Context) -> Iterator[Any]:
    for cmd, program, render_only in _missing_programs(ctx):
        if not render_only:
            message, fix = _with_module_load(ctx, program, _not_listed_message(ctx.profile, program, cmd),
                                             _rename_runtime_fix(ctx, cmd, program))
            yield cmd.line, message, fix


@rule(RENDER_ONLY_RULE, "render-only-runtime", "warning",
      summary="the script calls a container program of a runtime the profile lists as render-only (its commands "
              "are shown and checked here, not run)",
      why="A profile's runtimes_render_only names runtimes the cluster does not have although their commands may "
          "be written, shown and checked for it: the practice cluster on this machine lists Apptainer so and runs "
          "its containers with Charliecloud. Such a step cannot run there. In the batch shell bash finds no "
          "apptainer on PATH and the line fails with 'command not found' (exit status 127, Bash manual, Command "
          "Search and Execution); under srun each task fails to start ('slurmstepd: error: execve(): apptainer: No "
          "such file or directory', exit code 2, as on the practice cluster). Either way only after the job has "
          "waited in the queue. Apptainer's second name, singularity, goes with it unless the profile lists "
          "SingularityCE as well, and ch-run (ch-image, ch-convert) goes with a render-only Charliecloud. Not "
          "reported for a program called by its path, nor when the script looks for it (command -v) or loads a "
          "module named for it that may exist. A runtime the profile does not list at all is HPC414's. On the "
          "practice cluster every Apptainer example gets this warning by design: switch it off there with "
          "hpcwidgets lint --ignore HPC416 or '# hpcw: disable-file=HPC416'.",
      fix="Run the step with the runtime the cluster runs, which the message names: ch-run reads an image "
          "directory or a SquashFS file, not a SIF (ch-run(1): ch-run [OPTION...] IMAGE -- CMD), so the image is "
          "converted first (ch-convert). Where the cluster runs SingularityCE, the fix writes singularity for "
          "apptainer (the same commands and options), unless the script sets APPTAINER_ or APPTAINERENV_ "
          "variables. Or submit the job on a cluster that has the runtime.",
      catalogue=(12,), profile="local",
      bad="""#!/bin/bash
#SBATCH --partition=debug
#SBATCH --time=00:10:00
srun apptainer exec /var/tmp/hpcw-images/trainer.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=debug
#SBATCH --time=00:10:00
srun ch-run -b "$PWD:/mnt/0" -c /mnt/0 /var/tmp/hpcw-images/trainer -- python train.py
""")
def _render_only_runtime(ctx: Context) -> Iterator[Any]:
    for cmd, program, render_only in _missing_programs(ctx):
        if render_only:
            message, fix = _with_module_load(ctx, program, ctx.profile.render_only_message(program),
                                             _rename_runtime_fix(ctx, cmd, program))
            yield cmd.line, message, fix


def _unknown_module_message(ctx: Context, program: str, module: str, line: int) -> str:
    """The start of HPC414's message where the script loads a module named for ``program`` that the profile's
    ``[modules]`` table does not name (:func:`_unknown_module`)."""
    names = ", ".join(site_runtime_modules(ctx.profile))
    return (f"module load {module} (line {line}) names a module the profile {ctx.profile.name} does not list (its "
            f"container runtime modules: {names}), so the load fails too and does not put {program} on PATH; ")


def _site_module_name(ctx: Context, program: str) -> tuple[str, str]:
    """The program the site has in place of ``program`` and the module the profile names for it: ("singularity",
    its module) where apptainer is missing and singularity is there, else ("", "")."""
    other = "singularity" if program == "apptainer" and site_has_program(ctx.profile, "singularity") else ""
    wanted = ctx.profile.runtime_module(other) if other else ""
    return (other, wanted) if wanted else ("", "")


def _site_module_advice(ctx: Context, program: str, module: str) -> str:
    """The end of HPC414's message about a module the site lacks: which module to load instead, when known."""
    other, wanted = _site_module_name(ctx, program)
    return f"; and load {wanted} (the profile's module for {other}) in place of {module}" if wanted else ""


def _site_module_fix(ctx: Context, program: str, module: str, line: int) -> Fix | None:
    """The ``module load`` line of ``module`` rewritten to load the module of the program the site has in place of
    ``program`` (singularity's where apptainer is missing), when the profile names one and the module's name is
    written once on its line; None otherwise. (The call itself is renamed by the next round's fix.)"""
    wanted = _site_module_name(ctx, program)[1]
    return _module_swap_fix(ctx, module, line, wanted) if wanted else None


#: the variables only Apptainer reads (SingularityCE reads SINGULARITYENV_ and SINGULARITY_BIND): a script that sets
#: them needs them renamed too, which is the person's to do, so the program's name is then not changed alone
_APPTAINER_VARIABLES = re.compile(r"\bAPPTAINER(?:ENV)?_[A-Z_]")


def _rename_runtime_fix(ctx: Context, cmd: Any, program: str) -> Fix | None:
    """``singularity`` written for ``apptainer`` on the line of ``cmd``, where the site has singularity (the same
    commands and options): only for the program's own unquoted word on one line, and not in a script that sets
    APPTAINER_* or APPTAINERENV_* variables (renaming the command alone would leave them unread)."""
    if program != "apptainer" or not site_has_program(ctx.profile, "singularity") \
            or _APPTAINER_VARIABLES.search(ctx.parsed.source):
        return None
    # a command inside bash -c '…' has no words of the script's own to rewrite: no fix there
    word = next((w for w in getattr(cmd, "words", ()) if str(w.value) == program), None)
    if word is None or word.raw != program or word.line > len(ctx.parsed.lines):
        return None
    line = ctx.parsed.lines[word.line - 1]
    at = word.col - 1
    if line[at:at + len(program)] != program:
        return None
    return Fix("call singularity, the site's name for it", word.line, word.line,
               text=line[:at] + "singularity" + line[at + len(program):])


def not_found_error(cmd: Any, program: str) -> str:
    """The error a command whose ``program`` is not on PATH stops with: slurmstepd's where srun starts the program
    itself (each task fails to start; exit code 2), bash's where the batch shell, or a shell srun starts
    (``srun bash -c '…'``), looks it up (exit status 127)."""
    argv = [str(w) for w in getattr(cmd, "argv", ())] if not hasattr(cmd, "outer") else []
    if argv and argv[0].rsplit("/", 1)[-1] == "srun" and program != "srun":
        return f"slurmstepd: error: execve(): {program}: No such file or directory"
    return f"{program}: command not found"


def _not_listed_message(profile: Any, program: str, cmd: Any = None) -> str:
    """What HPC414 says of ``program`` where the profile lists no runtime that installs it under that name."""
    runtimes = ", ".join(profile.runtimes) or "none"
    named = f", under the name {profile.apptainer_binary}" if "apptainer" in profile.runtimes \
        and profile.apptainer_binary != "apptainer" else ""
    other = "singularity" if site_has_program(profile, "singularity") else ""
    advice = f"call {other}, the site's name for it (the same commands and options)" if other else \
        "run the image with the site's runtime, or install Apptainer yourself"
    return (f"{program} is not on this cluster: the profile {profile.name} says it has {runtimes}{named}, so the "
            f"step stops with '{not_found_error(cmd, program)}'; {advice}")
