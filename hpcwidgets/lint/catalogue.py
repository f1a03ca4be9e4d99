"""The rule catalogue. Each rule's docstring-free metadata lives in its ``@rule`` call."""

from __future__ import annotations

import re
from typing import Any, Iterator

from ..spec.torchrun import DEFAULT_RDZV_PORT, HEAD_NODE_VAR
from . import Context, Fix, rule

HEAD_NODE_LINE = f'{HEAD_NODE_VAR}=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
NODELIST_VARS = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")


# --------------------------------------------------------------------------------------------
# helpers shared by rules

def step_words(chain: Any) -> tuple[list[str], list[int]]:
    """The full argument vector of a step rebuilt from its layers, and where each layer starts."""
    from ..parse.argv import Chain  # noqa: F401  (type only)
    words: list[str] = []
    groups: list[int] = []
    for layer in (chain.srun, chain.container, chain.launcher):
        if layer is not None:
            groups.append(len(words))
            words += _layer_argv(layer)
    if chain.program:
        groups.append(len(words))
        words += list(chain.program)
    return words, groups


def _layer_argv(model: Any) -> list[str]:
    """argv of one layer without its nested command (the render layer's generic walk, inlined
    here because the linter may not import the renderer; both read the same metadata)."""
    out: list[str] = []
    positional: list[str] = []
    rest: list[str] = []
    for f in model.field_specs():
        value = getattr(model, f.name)
        role = f.info.role
        if role in ("program", "subcommand"):
            out += str(value).split()
        elif role == "option" and not f.info.env:
            out += _option(f, value)
        elif role == "positional" and value not in ("", None):
            positional.append(value)
        elif role == "rest":
            rest += list(value)
    tail = getattr(model, "_argv_tail", None)
    if model.kind == "charliecloud.run":
        rest = ["--"] + rest
    elif tail is not None:
        rest = list(tail()) + rest
    return out + positional + rest


def _option(f: Any, value: Any) -> list[str]:
    from ..spec.common import Bind, EnvVar
    if value in (None, "", False, ()):
        return []
    if value is True:
        return [f.info.flag]
    items = value if f.is_tuple else (value,)
    if not f.info.flag:
        return [str(i) for i in items]
    out: list[str] = []
    for item in items:
        if isinstance(item, Bind) and item.needs_mount_syntax() and f.info.flag == "--bind":
            spec = f"type=bind,src={item.src},dst={item.dst or item.src}" + (",ro" if item.mode == "ro" else "")
            out += ["--mount", spec]
            continue
        token = item.to_token() if isinstance(item, (Bind, EnvVar)) else str(item)
        out += [f.info.flag, token] if f.info.style == "space" else [f"{f.info.flag}={token}"]
    return out


def step_fix(description: str, step: Any, chain: Any, before: tuple[str, ...] = ()) -> Fix:
    words, groups = step_words(chain)
    env = tuple(f"{k}={v}" for k, v in step.env)
    return Fix(description, step.line, step.end_line, tuple(env) + tuple(words), None, before,
               tuple(g + len(env) for g in groups))


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
    if m and known.get(m.group(1)) is not None:
        return int(known[m.group(1)])  # type: ignore[arg-type]
    return None


def tasks_per_node(ctx: Context, step: Any) -> int | None:
    """How many copies of the step's command run on each node."""
    srun = step.chain.srun
    if srun is None:
        return 1
    job = ctx.job
    if isinstance(srun.ntasks_per_node, int):
        return srun.ntasks_per_node
    nodes = srun.nodes if isinstance(srun.nodes, int) else (job.nodes if isinstance(job.nodes, int) else 1)
    if isinstance(srun.ntasks, int):
        return -(-srun.ntasks // max(nodes, 1))
    if isinstance(job.ntasks_per_node, int):
        return job.ntasks_per_node
    if isinstance(job.ntasks, int):
        return -(-job.ntasks // max(nodes, 1))
    return 1


def job_nodes(ctx: Context) -> int:
    return ctx.job.nodes if isinstance(ctx.job.nodes, int) else 1


def gpu_vendor(ctx: Context) -> str:
    return getattr(ctx.profile, "gpu_vendor", "nvidia") or "nvidia"


# --------------------------------------------------------------------------------------------
# distributed launch

@rule("HPC101", "torchrun-oversubscribes", "error",
      summary="srun starts several torchrun launchers per node, each starting its own workers",
      why="torchrun already starts --nproc-per-node workers; with --ntasks-per-node=G as well, every node runs "
          "G×G processes on G GPUs: GPUs are oversubscribed, ranks disagree and the run fails with "
          "'Address already in use' or hangs.",
      fix="Start one torchrun per node: srun --ntasks-per-node=1 (the job may keep more tasks), and "
          "--nproc-per-node equal to the GPUs per node.",
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
srun --ntasks-per-node=1 apptainer exec --nv img.sif torchrun --nnodes=2 --nproc-per-node=4 \\
  --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" --rdzv-id="$SLURM_JOB_ID" train.py
""")
def _oversubscribe(ctx: Context) -> Iterator[Any]:
    for step in ctx.steps:
        launcher = step.chain.launcher
        if launcher is None or step.chain.srun is None:
            continue
        per_node = tasks_per_node(ctx, step)
        nproc = as_int(ctx, launcher.nproc_per_node, step.line)
        if launcher.nproc_per_node in ("gpu", "auto"):
            nproc = ctx.job.gpus_on_each_node or None
        if per_node and per_node > 1 and (nproc is None or nproc >= 1):
            gpus = ctx.job.gpus_on_each_node
            workers = f"{per_node}×{nproc}={per_node * nproc}" if nproc else f"{per_node}× the workers"
            msg = (f"srun starts {per_node} torchrun launchers on each node and each starts "
                   f"--nproc-per-node={launcher.nproc_per_node} workers: {workers} processes per node"
                   + (f" for {gpus} GPUs" if gpus else "")
                   + "; use srun --ntasks-per-node=1 so torchrun starts one worker per GPU")
            srun = step.chain.srun.replace(ntasks_per_node=1, ntasks=None)
            new_nproc = str(gpus) if gpus else launcher.nproc_per_node
            if launcher.nproc_per_node.startswith("$") and "NTASKS" in launcher.nproc_per_node and gpus:
                new_nproc = str(gpus)
            chain = type(step.chain)(srun, step.chain.container, launcher.replace(nproc_per_node=new_nproc),
                                     step.chain.program, step.chain.notes)
            yield step.line, msg, step_fix("start one torchrun per node (srun --ntasks-per-node=1)", step, chain)


@rule("HPC102", "rendezvous-node-list", "error",
      summary="the rendezvous endpoint is a node list, not the head node",
      why="$SLURM_JOB_NODELIST and $SLURM_STEP_NODELIST hold compressed lists such as gpu[01-02]; torchrun "
          "cannot connect to that, so the nodes never meet and the job hangs until its time limit.",
      fix="Resolve the first node on the host before the step: "
          "head_node=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1), then "
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
def _nodelist_endpoint(ctx: Context) -> Iterator[Any]:
    for step in ctx.steps:
        launcher = step.chain.launcher
        if launcher is None or not launcher.rdzv_endpoint:
            continue
        endpoint = ctx.parsed.resolve(launcher.rdzv_endpoint, step.line)
        hit = next((v for v in NODELIST_VARS if f"${v}" in endpoint or "${" + v + "}" in endpoint), None)
        if hit is None:
            continue
        port = endpoint.rsplit(":", 1)[1] if ":" in endpoint and endpoint.rsplit(":", 1)[1].isdigit() else str(DEFAULT_RDZV_PORT)
        chain = type(step.chain)(step.chain.srun, step.chain.container,
                                 launcher.replace(rdzv_endpoint=f"${HEAD_NODE_VAR}:{port}",
                                                  rdzv_backend=launcher.rdzv_backend or "c10d"),
                                 step.chain.program, step.chain.notes)
        has_head = ctx.parsed.variable(HEAD_NODE_VAR, step.line) is not None
        yield (step.line, f"--rdzv-endpoint uses ${hit}, a node list (e.g. gpu[01-02]), not one host; "
                          f"resolve the head node on the host with scontrol show hostnames and use $head_node:{port}",
               step_fix("rendezvous at the head node resolved on the host", step, chain,
                        () if has_head else (HEAD_NODE_LINE,)))


@rule("HPC110", "multi-node-launch-without-srun", "error",
      summary="a multi-node job starts its distributed launcher in the batch shell, without srun",
      why="The batch script runs only on the first node. A launcher started there never reaches the other nodes, "
          "so the rendezvous waits for nodes that never come.",
      fix="Start the launcher with srun --ntasks-per-node=1 so one copy runs on every node.",
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
    for step in ctx.steps:
        if step.chain.launcher is None or step.chain.srun is not None:
            continue
        from ..spec.slurm import Srun
        chain = type(step.chain)(Srun(ntasks_per_node=1), step.chain.container, step.chain.launcher,
                                 step.chain.program, step.chain.notes)
        yield (step.line, f"this job has {job_nodes(ctx)} nodes but the launcher runs in the batch shell, on the first "
                          "node only; start it with srun --ntasks-per-node=1",
               step_fix("launch on every node with srun --ntasks-per-node=1", step, chain))


# --------------------------------------------------------------------------------------------
# containers

APPTAINER_FLAGS = re.compile(r"^(--nv|--nvccli|--rocm|--bind|-B|--mount|--cleanenv|-e|--contain|-c|--containall|-C|"
                             r"--no-home|--home|-H|--env|--env-file|--cwd|--pwd|--writable-tmpfs|--overlay|--fakeroot)(=|$)")


@rule("HPC201", "gpu-not-passed-to-container", "error",
      summary="GPUs are requested but the container runs without --nv (NVIDIA) or --rocm (AMD)",
      why="Without the flag the container sees no GPU driver: PyTorch silently falls back to the CPU (or fails "
          "with 'no CUDA GPUs are available') while the GPUs you were charged for sit idle.",
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
def _gpu_flag_missing(ctx: Context) -> Iterator[Any]:
    if not ctx.job.gpus_on_each_node:
        return
    vendor = gpu_vendor(ctx)
    if vendor in ("intel", "none"):
        return
    flag = "--rocm" if vendor == "amd" else "--nv"
    for step in ctx.steps:
        c = step.chain.container
        if c is None or c.kind != "apptainer.run" or c.nv or c.rocm or c.nvccli:
            continue
        chain = type(step.chain)(step.chain.srun, c.replace(**{flag.lstrip("-"): True}), step.chain.launcher,
                                 step.chain.program, step.chain.notes)
        yield (step.line, f"the job requests GPUs but {c.binary} {c.action} runs without {flag}: no GPU is visible "
                          f"inside the container; add {flag}", step_fix(f"add {flag}", step, chain))


@rule("HPC202", "gpu-flag-without-gpus", "warning",
      summary="--nv/--rocm is used but the job requests no GPU",
      why="On a node without a GPU allocation the flag only produces driver warnings; usually the GPU request "
          "(--gres=gpu:N) was forgotten, and the training runs on the CPU.",
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
def _gpu_flag_no_gpus(ctx: Context) -> Iterator[Any]:
    if ctx.job.gpus_on_each_node:
        return
    for step in ctx.steps:
        c = step.chain.container
        if c is not None and c.kind == "apptainer.run" and (c.nv or c.rocm):
            flag = "--nv" if c.nv else "--rocm"
            yield step.line, f"{flag} is set but the job requests no GPU; add --gres=gpu:N or drop {flag}"


@rule("HPC203", "flags-after-image", "error",
      summary="Apptainer options written after the image name",
      why="Everything after the image is handed to the program, so apptainer never sees the option: --nv after "
          "the image means no GPU, --bind after it means no bind, and the program may choke on the unknown flag.",
      fix="Move the options before the image: apptainer exec --nv --bind SRC:DST IMAGE program …",
      catalogue=(8,),
      bad="""#!/bin/bash
apptainer exec pytorch_2.3.sif --nv python train.py
""",
      good="""#!/bin/bash
apptainer exec --nv pytorch_2.3.sif python train.py
""")
def _flags_after_image(ctx: Context) -> Iterator[Any]:
    from ..parse.argv import parse_argv
    for step in ctx.steps:
        c = step.chain.container
        if c is None or c.kind != "apptainer.run":
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
                          f"{c.binary}; move it before the image", step_fix("move the options before the image", step, chain))


# --------------------------------------------------------------------------------------------
# Slurm directives

@rule("HPC501", "directive-after-command", "error",
      summary="#SBATCH line after the first command: sbatch ignores it",
      why="sbatch stops reading directives at the first command, so the resource request silently does not "
          "happen (the job gets the defaults: often one CPU, no GPU, a short time limit).",
      fix="Move every #SBATCH line up, directly under the #!/bin/bash line.",
      catalogue=(13,),
      bad="""#!/bin/bash
module load apptainer
#SBATCH --gres=gpu:1
apptainer exec --nv img.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
module load apptainer
apptainer exec --nv img.sif python train.py
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


#: SlurmJob problems → stable codes
PROBLEM_CODES = {
    "time": "HPC301", "mem": "HPC302", "mem_per_cpu": "HPC302", "mem_per_gpu": "HPC302",
    "cpus_per_gpu": "HPC303", "array": "HPC304", "output": "HPC305", "error": "HPC305", "chdir": "HPC305",
    "job_name": "HPC306", "gpus_per_node": "HPC307", "gpu_type": "HPC307", "gpus": "HPC307",
}
