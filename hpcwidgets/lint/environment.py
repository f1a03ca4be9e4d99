"""Rules about what reaches the program from outside its command line: the environment the batch shell, Slurm,
the container runtime and the launcher hand it (GPU visibility variables, temporary folders, modules, signals), and
where its host names and devices come from.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterator

from ..errors import ParseError
from ..parse.lexer import lex_script
from ..parse.script import c_script_in, shell_script_text
from ..spec.apptainer import env_prefix as container_env_prefix
from ..spec.common import Bind, bind_destination
from ..spec.slurm import gpu_total, is_shell, shebang_program
from . import Context, Fix, rule
from .catalogue import (_TOKEN_NAME, _Inner, _batch_signal, _code_in_order, _flag_in_a_variable, _only_sets_up, _per_task_endpoint,
                        _per_task_rendezvous_text, _signal_name, _simple_commands, _srun_export, apptainer_env,
                        as_run, cached, containers, fix_for, heterogeneous, inherited_gpus, job_nodes, other_launches,
                        own_gpu_request, own_task_gpus, profile_vendor, run_words, simple_commands, step_tasks,
                        steps, tasks_per_node, traps_for, with_chain)


# --------------------------------------------------------------------------------------------
# what reaches the program of a step

@dataclasses.dataclass(frozen=True)
class Setting:
    """A variable the program of a step is given, as the script sets it."""

    name: str
    value: str    # as written; in a step's bash -c script a reference each task expands reads \$NAME
    line: int
    own: bool     # set for this step alone (before its command, in its container options or bash -c script)


def _export_marks(ctx: Context) -> dict[str, int]:
    """The names an ``export NAME`` (``declare -x NAME``) without a value marks for export, with the line of the first
    mark: a plain ``NAME=value`` reaches the programs started after it too."""
    def make() -> dict[str, int]:
        marks: dict[str, int] = {}
        for cmd in simple_commands(ctx):
            words = [str(w) for w in cmd.argv]
            if words and (words[0] == "export" or (words[0] in ("declare", "typeset") and "-x" in words[1:])):
                for word in words[1:]:
                    if re.fullmatch(r"[A-Za-z_]\w*", word):
                        marks.setdefault(word, cmd.line)
        return marks
    return cached(ctx, "export_marks", make)


def _exported_above(ctx: Context, line: int) -> dict[str, Setting]:
    """The variables the batch shell has exported when it reaches ``line``, with their last top-level values (a
    variable once exported stays so when it is assigned again)."""
    marks = _export_marks(ctx)
    out: dict[str, Setting] = {}
    for v in ctx.parsed.variables:
        if v.line < line and (v.exported or v.name in out or marks.get(v.name, line) < line):
            out[v.name] = Setting(v.name, str(v.value), v.line, False)
    return out


def _step_settings(ctx: Context, step: Any) -> dict[str, Setting]:
    """What the program of ``step`` is given: the batch shell's exports above it, then what the step sets for
    itself (NAME=value before its command, ``--env`` and exported APPTAINERENV_NAME of its container, the exports
    and NAME=value prefixes of its ``bash -c`` script), the later winning as in bash."""
    out = _exported_above(ctx, step.line)
    for name, value in step.env:
        out[name] = Setting(name, str(value), step.line, True)
    c = step.chain.container
    if c is not None and c.kind == "apptainer.run":
        for prefix in ("SINGULARITYENV_", "APPTAINERENV_"):
            for name, s in list(out.items()):
                if name.startswith(prefix) and len(name) > len(prefix):
                    out[name[len(prefix):]] = Setting(name[len(prefix):], s.value, s.line, s.own)
        for e in c.env:
            out[str(e.name)] = Setting(str(e.name), str(e.value), step.line, True)
    for cmd in _simple_commands([step.command]):
        if not isinstance(cmd, _Inner):
            continue
        for name, word in cmd.assignments:
            if cmd.cmd.name in ("export", "declare", "typeset") or cmd.argv or name in out:
                out[name] = Setting(name, str(word.value), step.line, True)
    return out


# --------------------------------------------------------------------------------------------
# HPC123: a warning signal the launcher does not catch

#: signals a job asks for as a warning whose default action ends a process that does not catch them: torch's elastic
#: agent catches only TERM, INT, HUP and QUIT (torch/distributed/elastic/multiprocessing/api.py, PContext.start)
_ENDING_SIGNALS = ("USR1", "USR2")
#: what each launcher catches (accelerate launch: torch's agent for several processes, a plain wait for one)
_CAUGHT = {"torchrun": "only SIGTERM, SIGINT, SIGHUP and SIGQUIT", "deepspeed": "at most SIGINT and SIGTERM"}


@rule("HPC123", "warning-signal-kills-the-launcher", "warning",
      summary="--signal=USR1@… (no B:) reaches a step started by torchrun, accelerate launch or deepspeed, which do "
              "not catch it: the launcher dies at once",
      why="Without B:, Slurm sends the --signal warning to every process of the job's steps, the launcher among "
          "them: torch's elastic agent (torchrun, python -m torch.distributed.run, accelerate launch) "
          "catches only SIGTERM, SIGINT, SIGHUP and SIGQUIT, and deepspeed's launcher at most SIGINT and SIGTERM. "
          "SIGUSR1 and SIGUSR2 keep their default action, which ends the launcher, and the step ends with it: the "
          "checkpoint the warning was asked for never happens, and the job stops before its time limit. "
          "(torchrun --signals-to-handle, or TORCHELASTIC_SIGNALS_TO_HANDLE, of recent PyTorch makes it catch more "
          "signals; such a step is not reported. The agent takes a signal it catches as the end: it passes it on to "
          "the workers and stops them after its shutdown timeout, 30 s by default.)",
      fix="Send the warning to the batch shell, #SBATCH --signal=B:USR1@600, let a trap there leave a file the "
          "training loop checks (trap 'touch \"$SLURM_SUBMIT_DIR/STOP\"' USR1), start the step with & and wait for "
          "it until it has ended: wait returns as soon as the trap runs (HPC529).",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=12:00:00
#SBATCH --signal=USR1@600
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \\
  --rdzv-id="$SLURM_JOB_ID" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@600
trap 'touch "$SLURM_SUBMIT_DIR/STOP"' USR1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \\
  --rdzv-id="$SLURM_JOB_ID" train.py &
pid=$!
wait "$pid"
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
""")
def _signal_kills_launcher(ctx: Context) -> Iterator[Any]:
    found = _batch_signal(ctx, batch=False)
    if found is None:
        return
    directive, signal = found
    if signal not in _ENDING_SIGNALS:
        return
    if traps_for(ctx, signal):
        return  # the script means the batch shell to get it: HPC517 says to write B:
    for step in steps(ctx):
        if step.chain.srun is None:
            continue
        name = _launcher_without(ctx, step, signal)
        if not name:
            continue
        value = str(directive.value).strip()
        to_shell = ("RB:" if value.startswith("R:") else "B:") + value.split(":")[-1]
        catches = _CAUGHT.get(name, "at most SIGTERM, SIGINT, SIGHUP and SIGQUIT")
        yield (directive.line, f"--signal={value} has no B:, so Slurm sends SIG{signal} to the job's steps, where "
                               f"{name} (line {step.line}) gets it: it catches {catches}, so SIG{signal} ends it and "
                               "the step at once, and the checkpoint the warning is for never happens; send it to the "
                               f"batch shell (--signal={to_shell}) and let a trap there leave a file the training "
                               "loop checks (start the step with & and wait until it has ended)")
        return


def _launcher_without(ctx: Context, step: Any, signal: str) -> str:
    """The launcher ``step`` starts (torchrun, accelerate launch, deepspeed) when it does not catch ``signal``, ""
    when the step starts none or its torchrun is told to catch the signal (--signals-to-handle, or
    TORCHELASTIC_SIGNALS_TO_HANDLE given to the step)."""
    launcher = step.chain.launcher
    if launcher is not None and launcher.kind == "torchrun":
        setting = _step_settings(ctx, step).get("TORCHELASTIC_SIGNALS_TO_HANDLE")
        told = [setting.value] if setting is not None else []
        extra = [str(e) for e in launcher.extra]
        for i, word in enumerate(extra):
            flag, eq, value = word.partition("=")
            if flag in ("--signals-to-handle", "--signals_to_handle"):
                told.append(value if eq else (extra[i + 1] if i + 1 < len(extra) else ""))
        if any(signal in {_signal_name(part) for part in re.split(r"[,\s]+", value) if part} for value in told):
            return ""
        return "torchrun"
    return next((o.name for o in other_launches(ctx) if o.step is step), "")


# --------------------------------------------------------------------------------------------
# HPC124: a rendezvous host looked up through the node's own name

#: a node's address looked up through its own name: hostname -i / --ip-address, which hostname(1) says to avoid,
#: and Python's gethostbyname(gethostname()), which does the same
_NAME_LOOKUP = re.compile(r"(?<![\w$-])hostname(?:\s+-{1,2}[\w-]+)*?\s+(?:-i|--ip-address)(?![\w-])"
                          r"|gethostbyname\(\s*(?:socket\.)?gethostname\(\s*\)\s*\)")
_REFERENCE = re.compile(r"\$\{?([A-Za-z_]\w*)")
#: the variables that name the rendezvous host for programs and for torchrun (PET_<OPTION>)
_HOST_VARIABLES = ("MASTER_ADDR", "PET_MASTER_ADDR", "PET_RDZV_ENDPOINT")


def _name_lookup(ctx: Context, text: str, line: int, depth: int = 4) -> tuple[str, int] | None:
    """Where ``text`` takes a host from :data:`_NAME_LOOKUP`, also through the script's variables: the lookup as
    written and its line. None for a lookup each task of an srun bash -c makes itself (``\\$(hostname -i)``:
    HPC115 says why that fails)."""
    if "\\$(" in text or "\\`" in text:
        return None
    m = _NAME_LOOKUP.search(text)
    if m is not None:
        return m.group(0), line
    if depth <= 0:
        return None
    for ref in _REFERENCE.finditer(text):
        var = ctx.parsed.variable(ref.group(1), line)
        if var is not None:
            found = _name_lookup(ctx, str(var.value), var.line, depth - 1)
            if found is not None:
                return found
    return None


def _lookup_message(what: str, lookup: str, line: int, at: int) -> str:
    where = "" if line == at else f" (line {line})"
    return (f"{what} takes the rendezvous host from {lookup}{where}, the address the node's own name resolves to "
            "in /etc/hosts, which on many Debian and Ubuntu nodes is 127.0.1.1 (and may be several addresses): the "
            "other nodes cannot reach it, so the job hangs; use the head node's name (head_node=$(scontrol show "
            "hostnames \"$SLURM_JOB_NODELIST\" | head -n 1))")


@rule("HPC124", "rendezvous-host-from-hostname-i", "warning",
      summary="the rendezvous host of a multi-node launch comes from hostname -i (--ip-address)",
      why="hostname -i prints the addresses the node's own name resolves to, and hostname(1) says to avoid it: "
          "Debian and Ubuntu write 127.0.1.1 for the host name into /etc/hosts, and a name with several addresses "
          "gives them all. The other nodes then try to meet at a loopback address (or a list) and never reach the "
          "rendezvous: the job hangs until its time limit. Python's socket.gethostbyname(socket.gethostname()) "
          "looks the address up the same way. Reported for MASTER_ADDR, torchrun's --rdzv-endpoint and "
          "--master-addr, accelerate's --main_process_ip and deepspeed's --master_addr in a job of several nodes.",
      fix="Use the head node's name, which every node resolves to its address: head_node=$(scontrol show hostnames "
          "\"$SLURM_JOB_NODELIST\" | head -n 1), then --rdzv-endpoint=\"$head_node:29500\". (hostname -I lists "
          "the interfaces' own addresses, in no set order, so its first one need not be the one the others reach.)",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
head_node_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node_ip:29500" \\
  --rdzv-id="$SLURM_JOB_ID" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \\
  --rdzv-id="$SLURM_JOB_ID" train.py
""")
def _host_from_name_lookup(ctx: Context) -> Iterator[Any]:
    reported: set[int] = set()
    several = job_nodes(ctx) > 1
    if several:
        marks = _export_marks(ctx)
        for var in ctx.parsed.variables:
            if var.name in _HOST_VARIABLES and (var.exported or var.name in marks):
                found = _name_lookup(ctx, str(var.value), var.line)
                if found is not None and var.line not in reported:
                    reported.add(var.line)
                    yield var.line, _lookup_message(var.name, *found, var.line)
    for step in steps(ctx):
        launcher = step.chain.launcher
        values: list[tuple[str, str]] = []
        if _per_task_endpoint(ctx, step) or _per_task_rendezvous_text(ctx, step):
            continue  # each task works its own host out: HPC115 says why that fails
        if several:
            values += [(s.name, s.value) for s in _step_settings(ctx, step).values()
                       if s.own and s.name in _HOST_VARIABLES]
        if several and launcher is not None and launcher.kind == "torchrun" and not launcher.standalone:
            values += [("--rdzv-endpoint", str(launcher.rdzv_endpoint)), ("--master-addr", str(launcher.master_addr))]
        for what, value in values:
            found = _name_lookup(ctx, value, step.line) if value else None
            if found is not None and step.line not in reported:
                reported.add(step.line)
                yield step.line, _lookup_message(what, *found, step.line)
    for launch in other_launches(ctx):
        option = "--main_process_ip" if launch.name == "accelerate launch" else "--master_addr"
        value = launch.options.get(option, "")
        if not value or not several or launch.line in reported:
            continue
        found = _name_lookup(ctx, value, launch.line)
        if found is not None:
            reported.add(launch.line)
            yield launch.line, _lookup_message(f"{launch.name} {option}", *found, launch.line)


# --------------------------------------------------------------------------------------------
# HPC125: deepspeed --include/--exclude slots beyond the job's GPUs

@rule("HPC125", "deepspeed-slots-beyond-the-job", "error",
      summary="deepspeed --include/--exclude names GPU slots the job does not have (localhost:4,5,6,7 with 4 GPUs)",
      why="Where Slurm confines a job to its GPUs (device cgroups, as most sites do) they are the node's only ones, "
          "numbered from 0: a job of 4 GPUs per node has slots 0-3, whichever physical GPUs they are. deepspeed "
          "takes --include/--exclude slots as those numbers, so a slot at or beyond the count names no GPU: the "
          "launch stops at start (\"No slot '4' specified on host 'localhost'\", or no CUDA device). And with "
          "--include (or --exclude) deepspeed drops the CUDA_VISIBLE_DEVICES Slurm set and writes the slot numbers "
          "in its place, so on a node without device cgroups any slot list may name GPUs another job holds.",
      fix="Leave --include and --exclude out: deepspeed then takes the GPUs from the CUDA_VISIBLE_DEVICES Slurm set "
          "(runner.py turns it into --include localhost:…). Where device cgroups confine the job, slots 0 to the "
          "GPUs per node less one (--include localhost:0,1,2,3) also work.",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --time=04:00:00
deepspeed --include localhost:4,5,6,7 --master_port=29501 train.py --deepspeed ds.json
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --time=04:00:00
deepspeed --master_port=29501 train.py --deepspeed ds.json
""")
def _slots_beyond_job(ctx: Context) -> Iterator[Any]:
    if heterogeneous(ctx):
        return
    for launch in other_launches(ctx):
        if launch.name != "deepspeed":
            continue
        gpus = _gpus_seen(ctx, launch.step)
        if not gpus:
            continue
        for option in ("--include", "-i", "--exclude", "-e"):
            value = launch.options.get(option, "")
            resolved = ctx.parsed.resolve(value, launch.line)
            slots = _named_slots(resolved) if value else []
            beyond = sorted({s for s in slots if s >= gpus})
            if not beyond:
                continue
            names = ", ".join(str(s) for s in beyond)
            last = f"0-{gpus - 1}" if gpus > 1 else "0"
            stops = (f"deepspeed stops with \"No slot '{beyond[0]}' specified\"" if option in ("--exclude", "-e")
                     else "the workers find no such GPU and stop, or, on a node without device cgroups, may run on "
                          "another job's GPUs")
            advice = f"name slots {last}" if option in ("--exclude", "-e") else \
                f"leave {option} out (deepspeed then uses the GPUs Slurm gave the job) or name slots {last}"
            shown = value if resolved == value else f"{value} ({resolved})"
            yield (launch.line, f"deepspeed {option} {shown} names GPU slot{'s' if len(beyond) > 1 else ''} {names}, "
                                f"but the job has {gpus} GPU{'s' if gpus > 1 else ''} per node, which it sees as "
                                f"{last}: {stops}; {advice}")
            break


def _named_slots(value: str) -> list[int]:
    """The GPU slots a deepspeed --include/--exclude value names (``host:0,1@host2:2``); none when a part is not
    read as numbers (a reference the job fills in)."""
    out: list[int] = []
    for spec in value.strip("'\"").split("@"):
        _, colon, slots = spec.partition(":")
        if not colon:
            continue
        items = [s.strip() for s in slots.split(",")]
        if not all(re.fullmatch(r"\d+", s) for s in items):
            return []
        out += [int(s) for s in items]
    return out


def _gpus_seen(ctx: Context, step: Any) -> int | None:
    """How many GPUs the launch sees on its node when the script says so for sure: a step's own GPUs per task
    (--gpus-per-task), those the job gives each node (per node, or per task × tasks per node), or a total on one
    node. None when the count is spread by Slurm (--gpus=8 over several nodes) or the step asks for its own."""
    if step is not None and step.chain.srun is not None:
        own = own_task_gpus(ctx, step) or inherited_gpus(ctx, step)
        if own:
            return own
        if own_gpu_request(step.chain.srun):
            return None
    job = ctx.job
    if job.gpus_per_node:
        return gpu_total(job.gpus_per_node) or None
    if job.gpus and job.nodes == 1:
        return gpu_total(job.gpus) or None
    if job.gpus_per_task and isinstance(job.ntasks_per_node, int):
        return (gpu_total(job.gpus_per_task) * job.ntasks_per_node) or None
    return None


# --------------------------------------------------------------------------------------------
# HPC524: ROCR_VISIBLE_DEVICES with HIP_VISIBLE_DEVICES or CUDA_VISIBLE_DEVICES

#: what HIP reads after ROCR_VISIBLE_DEVICES, as indices into what that leaves (HIP's GPU isolation variables)
_HIP_INDEX_VARS = ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
#: a reference each task of an srun step expands to its own number: the local rank, or the global one
_PER_TASK = re.compile(r"\\\$\{?(SLURM_LOCALID|SLURM_PROCID)\}?")
#: the same reference expanded by the batch shell (in its own export, or in srun bash -c "…"): task 0's number, 0
_BATCH_PER_TASK = re.compile(r"\$\{?(SLURM_LOCALID|SLURM_PROCID)\}?")


@rule("HPC524", "rocr-and-hip-visible-devices", "error",
      summary="ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES (or CUDA_VISIBLE_DEVICES) both pick GPUs, so the second "
              "indexes what the first left",
      why="On AMD GPUs the ROCm runtime applies ROCR_VISIBLE_DEVICES first; HIP then applies HIP_VISIBLE_DEVICES (or "
          "CUDA_VISIBLE_DEVICES, which it reads as the same) to the GPUs left, renumbered from 0. Setting both to the "
          "task's GPU (ROCR_VISIBLE_DEVICES=$SLURM_LOCALID CUDA_VISIBLE_DEVICES=$SLURM_LOCALID) leaves every task "
          "one GPU, index 0, and then asks for index 1, 2, …: every task but the first of a node stops with 'No HIP "
          "GPUs are available'. A list longer than what ROCR_VISIBLE_DEVICES leaves fails too: the batch shell's "
          "export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID (which it expands once, to 0) with "
          "HIP_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 leaves one GPU, PyTorch stops with 'HIP_VISIBLE_DEVICES contains "
          "more devices than ROCR_VISIBLE_DEVICES', and other programs see that one GPU only. Not reported when the "
          "profile's GPUs are NVIDIA's (ROCR_VISIBLE_DEVICES does nothing there).",
      fix="Set only one of them: ROCR_VISIBLE_DEVICES=$SLURM_LOCALID alone (ROCm's advice on Linux), or only "
          "HIP_VISIBLE_DEVICES; or index the second into what the first leaves (HIP_VISIBLE_DEVICES=0). A list "
          "of all the job's GPUs needs neither: Slurm sets ROCR_VISIBLE_DEVICES to them.",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
srun bash -c 'export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID CUDA_VISIBLE_DEVICES=$SLURM_LOCALID; python worker.py'
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
srun bash -c 'export ROCR_VISIBLE_DEVICES=$SLURM_LOCALID; python worker.py'
""")
def _rocr_and_hip(ctx: Context) -> Iterator[Any]:
    if profile_vendor(ctx) not in ("", "amd"):
        return
    found = batch_shell_filters_twice(ctx)
    if found is not None:
        yield found
    step_lines = {s.line for s in steps(ctx)}
    for step in steps(ctx):
        found = _filtered_twice(ctx, _step_settings(ctx, step), step)
        if found is not None:
            yield found
    yield from _wrappers_filtering_twice(ctx)
    for cmd in simple_commands(ctx):
        if cmd.line in step_lines or not cmd.words or cmd.name in ("export", "declare", "typeset", "local", "readonly"):
            continue
        own = {n: Setting(n, str(w.value), cmd.line, True) for n, w in cmd.assignments}
        if own:  # ROCR_VISIBLE_DEVICES=1 HIP_VISIBLE_DEVICES=1 python x.py: set for a program of the batch shell
            found = _filtered_twice(ctx, {**_exported_above(ctx, cmd.line), **own}, None, cmd.line)
            if found is not None:
                yield found


def batch_shell_filters_twice(ctx: Context) -> tuple[int, str] | None:
    """HPC524's finding for the GPU variables the batch shell exports itself, or None. HPC513 leaves a fixed
    ROCR_VISIBLE_DEVICES to it then: the pair is the mistake, and its fix differs."""
    if profile_vendor(ctx) not in ("", "amd"):
        return None
    return cached(ctx, "batch_shell_filters_twice",
                  lambda: _filtered_twice(ctx, _exported_above(ctx, len(ctx.parsed.lines) + 1), None))


#: an assignment in a wrapper script: [export] NAME=value
_WRAPPER_SETTING = re.compile(r"^\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)=(\S*)", re.MULTILINE)


def _wrappers_filtering_twice(ctx: Context) -> Iterator[Any]:
    """HPC524 for a wrapper the script writes with a quoted here-document (``cat << 'EOF' > select_gpu``, LUMI's
    pattern) and runs under srun (``srun ./select_gpu python …``, ``srun ./select_gpu singularity exec …``): each task
    runs its lines, so ``$SLURM_LOCALID`` there is the task's own number. A value the batch shell filled in as it
    wrote the file (an unquoted here-document) is HPC502's."""
    from .devices import srun_wrappers
    for step, name, line, body in srun_wrappers(ctx):
        settings = {n: Setting(n, re.sub(r"\$(?=\{?SLURM_(?:LOCALID|PROCID)\b)", r"\\$", v), step.line, True)
                    for n, v in _WRAPPER_SETTING.findall(body) if "\x00" not in v}
        twice = _filtered_twice(ctx, settings, step)
        if twice is not None:
            yield line, twice[1] + f" (in {name.removeprefix('./')}, which srun runs on line {step.line})"


def _filtered_twice(ctx: Context, settings: dict[str, Setting], step: Any, at: int = 0) -> tuple[int, str] | None:
    """``(line, message)`` when ROCR_VISIBLE_DEVICES in ``settings`` leaves fewer GPUs than the first index HIP or
    CUDA_VISIBLE_DEVICES then asks for, or than a list of them names, or None. For a step (or a command at line
    ``at``), only a pair it sets at least one of itself is judged (the batch shell's own exports are judged once,
    with neither); in a step a per-task reference (``\\$SLURM_LOCALID``) stands for every task's number."""
    rocr = settings.get("ROCR_VISIBLE_DEVICES")
    if rocr is None:
        return None
    for name in _HIP_INDEX_VARS:
        hip = settings.get(name)
        if hip is None or ((step is not None or at) and not (rocr.own or hip.own)):
            continue
        left = _gpus_left(rocr.value, step)
        first, shown = _first_index(ctx, hip.value, step)
        listed = _listed(hip.value)
        if left is None or first is None or (first < left and listed <= left):
            continue
        line = step.line if step is not None else at or max(rocr.line, hip.line)
        rv, hv = rocr.value.replace("\\$", "$"), hip.value.replace("\\$", "$")
        each = "each task " if _PER_TASK.fullmatch(rocr.value.strip("'\"")) else ""
        once = ", which the batch shell expands once (to task 0's 0)," \
            if _BATCH_PER_TASK.fullmatch(rocr.value.strip("'\"")) else ""
        leaves = "one GPU, numbered 0" if left == 1 else f"{left} GPUs, numbered 0-{left - 1}"
        both = (f"ROCR_VISIBLE_DEVICES={rv} and {name}={hv} both pick GPUs, and ROCm applies {name} to the GPUs "
                f"ROCR_VISIBLE_DEVICES leaves, renumbered from 0: ROCR_VISIBLE_DEVICES={rv}{once} leaves {each}"
                f"{leaves}, so {name}={hv}")
        if first >= left:
            return line, (f"{both} names {shown}, a GPU that is not there ('No HIP GPUs are available'); set only "
                          f"ROCR_VISIBLE_DEVICES (or only {name})")
        sees = "GPU 0 only" if left == 1 else f"only the first {left}"
        stops = ("PyTorch stops with 'HIP_VISIBLE_DEVICES contains more devices than ROCR_VISIBLE_DEVICES' when it "
                 f"counts the GPUs, other programs see {sees}") if name == "HIP_VISIBLE_DEVICES" else \
            f"the program sees {sees}"
        return line, (f"{both} lists {listed} GPUs where there {'is' if left == 1 else 'are'} {left} ({stops}, and a "
                      f"launcher's other workers find no GPU); set only {name} (remove ROCR_VISIBLE_DEVICES={rv}: "
                      "Slurm sets it to the job's GPUs)")
    return None


def _listed(value: str) -> int:
    """How many GPUs a list of indices names (0 for anything else, a task's own number among them)."""
    value = value.strip("'\"")
    return len(value.split(",")) if re.fullmatch(r"\d+(?:,\d+)*", value) else 0


def _gpus_left(value: str, step: Any) -> int | None:
    """How many GPUs ROCR_VISIBLE_DEVICES leaves: the items of a list, one for a task's own number (or for the
    batch shell's, 0); None when not known."""
    value = value.strip("'\"")
    if re.fullmatch(r"[\w-]+(?:,[\w-]+)*", value) and "$" not in value:
        return len(value.split(","))
    if (step is not None and _PER_TASK.fullmatch(value)) or _BATCH_PER_TASK.fullmatch(value):
        return 1
    return None


def _first_index(ctx: Context, value: str, step: Any) -> tuple[int | None, str]:
    """The first index HIP/CUDA_VISIBLE_DEVICES names, and how the message says it. The runtimes stop reading the
    list at the first index that names no GPU, so only a missing first one leaves none (0,1,2,3 over one GPU still
    gives GPU 0, a list :func:`_filtered_twice` reports for its length). For a task's own number: the largest a task
    of the step gets (its tasks per node less one for the local rank, its tasks less one for the global one)."""
    value = value.strip("'\"")
    if re.fullmatch(r"\d+(?:,\d+)*", value):
        first = int(value.split(",")[0])
        return first, f"index {first}" + (" first" if "," in value else "")
    m = _PER_TASK.fullmatch(value)
    if step is None or m is None or step.chain.srun is None:
        return None, ""
    count = tasks_per_node(ctx, step) if m.group(1) == "SLURM_LOCALID" else step_tasks(ctx, step)
    if not count or count < 2:
        return None, ""
    where = "of a node " if m.group(1) == "SLURM_LOCALID" else ""
    return count - 1, f"index 1 to {count - 1} in every task but the first {where}".rstrip()


# --------------------------------------------------------------------------------------------
# containers: node-local paths, a clean environment, modules

#: the node-local folder of a job ($SLURM_TMPDIR, on /localscratch at the Alliance's clusters), which Apptainer
#: does not bind unless asked to
_APPTAINER_UNBOUND_LOCAL = re.compile(r"\$\{?SLURM_TMPDIR\}?(?![\w])(?:/[^\s'\";:,)]*)?|(?<![\w/])/localscratch(?:/[^\s'\";:,)]*)?")


def _apptainer_binds(ctx: Context, step: Any, c: Any) -> list[Bind]:
    """The binds a step's apptainer makes: its own --bind/--mount, and those of APPTAINER_BIND (or the other bind
    variables) the apptainer process is given (:func:`~hpcwidgets.lint.shell.environment_binds`)."""
    from .shell import environment_binds  # (lint.shell imports this module)
    return [*c.binds, *(b for _, _, b in environment_binds(ctx, step, c))]


def _bound(ctx: Context, step: Any, binds: list[Bind], path: str) -> bool:
    """Whether a bind (or the current folder a ``cd`` made, which Apptainer binds) shows ``path`` in the container at
    ``path`` itself: one whose container path holds it, or that binds a node-local folder at its own path
    (``-B /localscratch`` holds $SLURM_TMPDIR). ``-B "$SLURM_TMPDIR/data:/data"`` shows the data at /data only: a
    program handed $SLURM_TMPDIR/data finds nothing there."""
    for b in binds:
        dst = ctx.parsed.resolve(bind_destination(b), step.line).rstrip("/")
        same = str(b.dst or "") in ("", str(b.src))
        if dst and (path == dst or path.startswith(dst + "/") or (same and _APPTAINER_UNBOUND_LOCAL.search(dst))):
            return True
    for cmd in simple_commands(ctx):
        words = [str(w) for w in cmd.argv]
        if cmd.line < step.line and words[:1] in (["cd"], ["pushd"]) and len(words) > 1:
            here = ctx.parsed.resolve(words[1], cmd.line).rstrip("/")
            if path == here or path.startswith(here + "/") or _APPTAINER_UNBOUND_LOCAL.match(here):
                return True
    return False


def _container_words(step: Any, c: Any) -> list[str]:
    """What the program in the container is handed: its command (the launcher's script and arguments), the
    script of a ``bash -c`` there, the folder it starts in and the values of the variables given to it."""
    launcher = step.chain.launcher
    words = [str(w) for w in ([launcher.script, *launcher.args] if launcher is not None
                              else [*step.chain.program, *c.command])]
    if c.cwd:
        words.append(str(c.cwd))
    words += [str(e.value) for e in c.env]
    return words


@rule("HPC226", "node-local-folder-not-bound", "warning",
      summary="a path in $SLURM_TMPDIR (/localscratch) is handed to apptainer exec/run, which does not bind it",
      why="The batch shell expands $SLURM_TMPDIR to the node's local folder (/localscratch/… on the Alliance's "
          "clusters) before apptainer starts, but Apptainer binds only $HOME, the current folder, /tmp, /var/tmp, "
          "/proc, /sys and /dev by default, plus what the site lists as bind paths: the path does not exist in the "
          "container and the program stops with 'No such file or directory' after the job has waited in the queue. "
          "Not reported when a --bind (or APPTAINER_BIND) names the folder, or the script cd's into it first.",
      fix="Bind the folder at the same path: apptainer exec -B \"$SLURM_TMPDIR\" IMAGE ….",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --time=03:00:00
export PYTHONNOUSERSITE=1
tar -xf "$SCRATCH/imagenet_subset.tar" -C "$SLURM_TMPDIR"
apptainer exec --nv pytorch_23.10.sif python train.py --data "$SLURM_TMPDIR/imagenet_subset"
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --time=03:00:00
export PYTHONNOUSERSITE=1
tar -xf "$SCRATCH/imagenet_subset.tar" -C "$SLURM_TMPDIR"
apptainer exec --nv -B "$SLURM_TMPDIR" pytorch_23.10.sif python train.py --data "$SLURM_TMPDIR/imagenet_subset"
""")
def _node_local_not_bound(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if c.kind != "apptainer.run" or _flag_in_a_variable(c) or str(c.image).startswith("instance://"):
            continue  # options hidden in a variable may bind it; an instance got its binds when it started
        binds = _apptainer_binds(ctx, step, c)
        for word in _container_words(step, c):
            text = ctx.parsed.resolve(word, step.line).replace("\\$", "$")
            m = _APPTAINER_UNBOUND_LOCAL.search(text)
            if m is None or _bound(ctx, step, binds, m.group(0).rstrip("/")):
                continue
            root = "/localscratch" if m.group(0).startswith("/") else "$SLURM_TMPDIR"
            path = m.group(0).rstrip("/")
            elsewhere = next((b for b in binds if str(b.dst or "") not in ("", str(b.src)) and (
                path + "/").startswith(ctx.parsed.resolve(str(b.src), step.line).rstrip("/") + "/")), None)
            if elsewhere is not None:
                yield (step.line, f"{path} is bound at {bind_destination(elsewhere)} in the container (-B "
                                  f"{elsewhere.to_token()}), not at its own path: the program finds no such file or "
                                  f"folder at {path}; hand it the path in the container instead")
                break
            chain = with_chain(step.chain, container=c.replace(binds=(*c.binds, Bind(root))))
            yield (step.line, f"{m.group(0)} is in the job's node-local folder, which {c.binary} does not bind (by "
                              "default only $HOME, the current folder, /tmp, /var/tmp, /proc, /sys and /dev reach "
                              "the container, besides the bind paths a site adds): the program finds no such file or "
                              f"folder; bind it: {c.binary} {c.action} -B \"{root}\" …",
                   fix_for(ctx, f"bind {root} into the container", step, chain))
            break


#: variables a script exports for the program, which a clean environment keeps from it: where it keeps temporary
#: files, caches and configuration instead of under $HOME (the temporary folder, the XDG folders, Matplotlib's), and
#: the families of variables that only the libraries a program loads read, all by their prefix: the CUDA runtime's
#: (CUDA_MODULE_LOADING, CUDA_VISIBLE_DEVICES; not CUDA_HOME or CUDA_PATH, where the host's toolkit is), NCCL's,
#: PyTorch's (PYTORCH_CUDA_ALLOC_CONF, TORCH_HOME, TORCH_NCCL_…, TORCHINDUCTOR_…), Triton's, TensorFlow's, XLA's and
#: JAX's, OpenMP's and the BLAS libraries' (thread counts), Hugging Face's and Transformers', Weights & Biases', and
#: every Poetry setting (Poetry reads POETRY_<SETTING>: POETRY_VIRTUALENVS_PATH …), and Jupyter's (JUPYTER_TOKEN,
#: JUPYTER_RUNTIME_DIR: without them the server makes a token of its own, which is not the one the script saved). Variables the host's own commands
#: read as well (PATH, LD_LIBRARY_PATH, PYTHONPATH) are left out: a script sets them for those, with host paths.
_FOR_THE_PROGRAM = re.compile(r"TMPDIR|TMP|TEMP|XDG_(?:CACHE|CONFIG|DATA)_HOME|MPLCONFIGDIR"
                              r"|CUDA_(?!(?:HOME|PATH|ROOT|DIR|TOOLKIT_ROOT_DIR)$)[A-Z0-9_]+"
                              r"|(?:NCCL|PYTORCH|TORCH|TORCHINDUCTOR|TRITON|TF|XLA|JAX|OMP|MKL|OPENBLAS|NUMEXPR|HF"
                              r"|HUGGINGFACE|TRANSFORMERS|WANDB|POETRY|JUPYTER)_[A-Z0-9_]+")
_TEMP_VARIABLES = ("TMPDIR", "TMP", "TEMP")


@rule("HPC227", "clean-environment-drops-exports", "warning",
      summary="--containall/--cleanenv starts the program without variables the script exports for it (TMPDIR, "
              "HF_HOME, OMP_NUM_THREADS …)",
      why="--cleanenv (-e) and --containall (-C) start the container with none of the host's variables but TERM and "
          "the proxy settings (Apptainer's env/clean.go), so TMPDIR, HF_HOME, OMP_NUM_THREADS, NCCL_SOCKET_IFNAME or "
          "POETRY_VIRTUALENVS_PATH exported above the step never reach the program (poetry install then puts the "
          "environment under ~/.cache/pypoetry/virtualenvs, where a later step that gets the variable does not "
          "look). With TMPDIR that is worse under --containall: the "
          "program writes its temporary files to the container's own /tmp, a small in-memory folder (typically 64 MiB, "
          "apptainer.conf's 'sessiondir max size'), and stops with 'No space left on device'. Variables passed with --env, "
          "--env-file or APPTAINERENV_NAME (for singularity SINGULARITYENV_NAME, which Apptainer reads too) do reach "
          "it. Reported for the variables only the program's libraries read (CUDA_*, NCCL_*, PYTORCH_*, TORCH_*, "
          "TF_*, OMP_*, HF_*, TRANSFORMERS_*, WANDB_*, POETRY_*, JUPYTER_* …) and its temporary, cache and configuration folders; "
          "PATH, LD_LIBRARY_PATH and PYTHONPATH are left out, as a script sets them for the host's own commands.",
      fix="Pass them on: apptainer exec --containall --env TMPDIR=\"$TMPDIR\" -B \"$TMPDIR\" IMAGE … (or export "
          "APPTAINERENV_TMPDIR=\"$TMPDIR\"; with singularity SINGULARITYENV_TMPDIR, as SingularityCE ignores "
          "APPTAINERENV_); for the temporary files, --workdir on scratch gives the container a /tmp there.",
      bad="""#!/bin/bash
#SBATCH --cpus-per-task=24
#SBATCH --mem=64G
export TMPDIR="$SCRATCH/tmp"
apptainer exec --containall -B "$SCRATCH" pvactools_4.0.sif pvacseq run /data/my.vcf sample HLA-A*02:01 MHCflurry out
""",
      good="""#!/bin/bash
#SBATCH --cpus-per-task=24
#SBATCH --mem=64G
export TMPDIR="$SCRATCH/tmp"
apptainer exec --containall -B "$SCRATCH" --env TMPDIR="$TMPDIR" pvactools_4.0.sif pvacseq run /data/my.vcf sample \\
  HLA-A*02:01 MHCflurry out
""")
def _clean_env_drops_exports(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if c.kind != "apptainer.run" or c.env_file or _flag_in_a_variable(c):
            continue  # a file of variables, or options hidden in a variable, may pass them on
        run = as_run(ctx, step, c)
        if not (run.cleanenv or run.containall):
            continue
        dropped = [s for name, s in _exported_above(ctx, step.line).items()
                   if _FOR_THE_PROGRAM.fullmatch(name) and not _passed_on(ctx, step, c, name)]
        if not dropped:
            continue
        flag = "--containall" if run.containall else "--cleanenv"
        names = ", ".join(f"{s.name} (line {s.line})" for s in dropped)
        temp = next((s.name for s in dropped if s.name in _TEMP_VARIABLES), "")
        effect = ""
        if temp and run.containall:
            effect = (f": without {temp} it writes its temporary files to the container's own /tmp, a small in-memory "
                      "folder under --containall ('No space left on device')")
        elif temp:
            effect = f": without {temp} it writes its temporary files to /tmp instead"
        first = dropped[0].name
        them = "them" if len(dropped) > 1 else "it"
        exported = f"export {env_prefix(ctx, c.binary)}{first}=\"${first}\""
        # a secret on the command line is one every user of the node can read (ps): only through the environment
        how = (f"{exported} (not --env, which would put it on the command line ps shows)" if _TOKEN_NAME.match(first)
               else f"--env {first}=\"${first}\" (or {exported})")
        if first == "JUPYTER_TOKEN":
            effect = ": the server makes a token of its own, and the one the script saved is refused"
        yield (step.line, f"{flag} starts the program with none of the host's variables, so {names} "
                          f"{'never reach' if len(dropped) > 1 else 'never reaches'} it{effect}; pass {them} on with "
                          f"{how}")


def env_prefix(ctx: Context, binary: str) -> str:
    """The prefix that puts a variable into the container ``binary`` starts: APPTAINERENV_ for apptainer, and for
    singularity where the profile says the site runs Apptainer (whose singularity is apptainer under its old name);
    otherwise SINGULARITYENV_, as the singularity may be SingularityCE, which reads no APPTAINERENV_ variable
    (Apptainer reads both)."""
    prefix = container_env_prefix(binary)
    runtimes = set(ctx.profile.runtimes) if ctx.profile is not None else set()
    return "APPTAINERENV_" if runtimes & {"apptainer", "singularity"} == {"apptainer"} else prefix


def _passed_on(ctx: Context, step: Any, c: Any, name: str) -> bool:
    """Whether the exported ``name`` reaches the program of a clean container step after all (or never mattered):
    given with --env or APPTAINERENV_NAME, set again inside the container's command, kept from apptainer by srun's
    --export, or a temporary folder whose place --workdir or a bind onto /tmp already puts on disk."""
    listed = _srun_export(step.chain.srun)
    if name in {str(e.name) for e in c.env} or (listed is not None and not any(
            e.upper() == "ALL" or e.split("=", 1)[0] == name for e in listed)):
        return True
    if any(apptainer_env(ctx, step, prefix + name) is not None for prefix in ("APPTAINERENV_", "SINGULARITYENV_")):
        return True
    words = " ".join(_container_words(step, c))
    if re.search(rf"(?<![\w$]){name}=", words):
        return True
    if re.search(rf"\${{?{name}\b", " ".join([words, *(str(b.src) for b in c.binds)])):
        return True  # its value reaches the program as an argument, or through a bind (--cache-dir "$HF_HOME")
    if name not in _TEMP_VARIABLES:
        return False
    tmp_on_disk = any(ctx.parsed.resolve(bind_destination(b), step.line).rstrip("/") == "/tmp" for b in c.binds)
    return tmp_on_disk or any(str(e).partition("=")[0] in ("--workdir", "-W") for e in c.extra)


#: what sets the module command up: the module system's init file (Lmod, Environment Modules) or the start-up
#: files that source it, or modulecmd's own shell code
_MODULE_INIT = re.compile(r"(?:^|/)(?:\.?profile|\.?bashrc|\.bash_profile|bash\.bashrc)$|modules?\.sh$|lmod|Lmod"
                          r"|Modules/|/init/|z00_")
_MODULE_COMMANDS = ("module", "ml")
#: the shells bash runs a script of unchanged (it reads POSIX sh)
_POSIX_SHELLS = ("sh", "dash", "ash")


def _sets_up_modules(words: list[str]) -> bool:
    """Whether a command (its words) defines the module command: sources an init file, or evals modulecmd's code."""
    if not words:
        return False
    if words[0] in ("source", ".") and len(words) > 1:
        return _MODULE_INIT.search(words[1]) is not None
    return words[0] == "eval" and re.search(r"modulecmd|lmod|LMOD", " ".join(words[1:])) is not None


def _first_module_use(commands: list[list[str]]) -> str:
    """The first module/ml command (its words) of ``commands`` that runs before anything sets the module command
    up, "" when there is none."""
    for words in commands:
        if _sets_up_modules(words):
            return ""
        if words and words[0] in _MODULE_COMMANDS:
            return " ".join(words[:3])
    return ""


@rule("HPC228", "module-inside-container", "warning",
      summary="module (or ml) runs inside the container's bash -c script, where the host's module system does not work",
      why="module and ml are shell functions the module system's init file defines (/etc/profile.d/modules.sh, "
          "Lmod's init/bash), read by login shells; a bash -c started by apptainer exec or ch-run is none, so "
          "where nothing passes the function on it stops with 'module: command not found'. Where the host exports "
          "it (BASH_FUNC_module%%, or BASH_ENV naming the init file, which Apptainer passes on without --cleanenv) "
          "it calls the host's module tool and software tree, which are not in the image: it fails with 'No such "
          "file or directory' (tclsh, lmod) instead. Either way what it should load is missing. Not reported for "
          "a login shell (bash -lc) or after the script sources an init file.",
      fix="Put the software in the image, or initialise the image's own module system first: apptainer exec IMAGE "
          "bash -c 'source /etc/profile && module load gcc && ./run_model' (or bash -lc '…').",
      bad="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --time=01:00:00
singularity exec rhel7_1.0.sif bash -c "module load gcc/9.3 && ./run_model"
""",
      good="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --time=01:00:00
singularity exec rhel7_1.0.sif bash -c "source /etc/profile && module load gcc/9.3 && ./run_model"
""")
def _module_in_container(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        words = [str(w.value) for w in step.command.words]
        start = next((i for i, w in enumerate(words) if w.rsplit("/", 1)[-1] in ("apptainer", "singularity", "ch-run")),
                     None)
        at = c_script_in(words[start:]) if start is not None else None
        if at is None:
            continue
        shell = words[start:start + at]
        program = max((i for i, w in enumerate(shell) if w.rsplit("/", 1)[-1] in ("bash", "sh")), default=0)
        if any(re.fullmatch(r"-[a-z]*l[a-z]*|--login", w) for w in shell[program + 1:]):
            continue  # a login shell reads the image's /etc/profile, where its own module system may be set up
        text = shell_script_text(step.command.words[start + at].value)
        try:
            code = lex_script(text).code if text else ()
        except ParseError:
            continue
        commands = [[str(v) for v in x.argv] for x in _simple_commands(code)]
        if commands and all(_only_sets_up(x) for x in commands):
            continue  # the container runs set-up alone: HPC217 says why
        used = _first_module_use(commands)
        if used:
            binary = getattr(c, "binary", "") or "ch-run"
            name = shell[program].rsplit("/", 1)[-1]
            yield (step.line, f"{used} runs inside the container ({binary} … {name} -c), where the host's module "
                              "system does not work: module is a shell function of it, whose start-up files and "
                              "software tree are not in the image, so the step stops ('module: command not found', or "
                              "the host's module tool not found); "
                              "put the software in the image, or set the image's own module system up first (source "
                              "/etc/profile && module load …)")


# --------------------------------------------------------------------------------------------
# HPC525: module in a script another shell than bash runs

@rule("HPC525", "module-in-sh-script", "info",
      summary="module (or ml) in a job script that #!/bin/sh (or another shell than bash) runs, without setting the "
              "module system up; or source under #!/bin/sh",
      why="module and ml are shell functions. The module systems export them for bash (BASH_FUNC_module%%), which a "
          "batch job inherits. Where /bin/sh is bash (the RHEL family: Rocky, Alma, CentOS), bash started as sh "
          "still takes them up, so the script works there; but dash (/bin/sh on Debian and Ubuntu) and ksh do "
          "not, and a script that is not a login shell reads no start-up file that defines them: the job runs on "
          "with 'module: command not found' ('module: not found' under dash), without the software it loads. The "
          "script then works on one cluster and not the next. (zsh is left alone: it reads /etc/zshenv and "
          "~/.zshenv in every script.) The same holds for source (source venv/bin/activate, source ~/.bashrc) under "
          "#!/bin/sh: bash has it, dash only the POSIX spelling, . FILE.",
      fix="Start the script with #!/bin/bash (or #!/bin/bash -l, which also reads the start-up files), or set the "
          "module system up for that shell first (. /etc/profile).",
      bad="""#!/bin/sh
#SBATCH --job-name=test
#SBATCH --time=00:10:00
ml load python/3.8.2
python -V
""",
      good="""#!/bin/bash
#SBATCH --job-name=test
#SBATCH --time=00:10:00
ml load python/3.8.2
python -V
""")
def _module_in_sh(ctx: Context) -> Iterator[Any]:
    source = ctx.parsed.source
    program = shebang_program(source)
    first = source.split("\n", 1)[0]
    if not program or program in ("bash", "zsh") or not is_shell(program):
        return
    commands = [(cmd, [str(v) for v in cmd.argv]) for cmd, _, _ in _code_in_order(ctx) if cmd.kind == "simple"]
    if program in ("sh", "dash"):  # BusyBox ash and ksh have source; dash has only .
        sourced = next((cmd for cmd, words in commands if words[:1] == ["source"]), None)
        if sourced is not None:
            where = "unless /bin/sh is bash (the RHEL family), " if program == "sh" else ""
            yield (sourced.line, f"this script runs with {program} ({first.strip()}): source is bash's, and dash (/bin/sh "
                                 f"on Debian and Ubuntu) has none, so {where}this line stops with 'source: not found' "
                                 "and what it was to set up is missing; write . FILE, or start the script with "
                                 "#!/bin/bash")
            return
    if re.search(r"\s-\w*l|--login", first):
        return  # a login shell reads the start-up files that set the module system up
    # (zsh reads /etc/zshenv and ~/.zshenv in every script, where a module system may be set up)
    used = _first_module_use([words for _, words in commands])
    if not used:
        return
    line = next(cmd.line for cmd, words in commands if " ".join(words[:3]) == used)
    fix = None
    if program in _POSIX_SHELLS:  # a zsh or ksh script may use its own syntax: bash is no drop-in for it
        fixed = re.sub(rf"(?<=[/\s!]){re.escape(program)}(?=\s|$)", "bash", first, count=1)
        fix = Fix("run the script with bash", 1, 1, text=fixed) if fixed != first else None
    where = "unless /bin/sh is bash (the RHEL family), " if program == "sh" else ""
    yield (line, f"this script runs with {program} ({first.strip()}): the module system exports its functions for "
                 f"bash, so {where}'{used}' stops with 'not found' and the job runs without the software "
                 f"({program} running a batch script reads no start-up file that defines {used.split()[0]}); start "
                 "the script with #!/bin/bash (or source the module system's init file first)", fix)


# --------------------------------------------------------------------------------------------
# HPC546: a module that brings its own Python, loaded after an environment is activated

#: modules that put a python (or a Python they depend on) first on PATH: the site's Python and conda modules, and
#: framework modules built on a Python (EasyBuild's PyTorch/…, Spack's py-…)
_PYTHON_MODULE = re.compile(r"(?i)(?:cray-)?python\d*(?:[/-]|$)|(?:ana|mini)conda\d*(?:[/-]|$)|miniforge\d*(?:[/-]|$)"
                            r"|mambaforge(?:[/-]|$)|conda(?:[/-]|$)|(?:py)?torch(?:[/-]|$)|tensorflow(?:[/-]|$)"
                            r"|jax(?:[/-]|$)|py-\w")
#: the programs an activated environment is for, found on PATH
_ENV_PROGRAMS = re.compile(r"(?:python|pip)(?:\d+(?:\.\d+)?)?")


def _activates(words: list[str]) -> bool:
    """Whether a command activates a Python environment: source/. …/bin/activate (or conda's old source activate
    ENV), or conda/mamba/micromamba activate ENV."""
    if words[:1] in (["source"], ["."]) and len(words) > 1:
        return words[1].rstrip("/").endswith("/activate") or words[1] == "activate"
    return len(words) > 1 and words[0].rsplit("/", 1)[-1] in ("conda", "mamba", "micromamba") \
        and words[1] == "activate"


def _deactivates(words: list[str]) -> bool:
    return words[:1] == ["deactivate"] or (len(words) > 1 and words[1] == "deactivate"
                                           and words[0].rsplit("/", 1)[-1] in ("conda", "mamba", "micromamba"))


@rule("HPC546", "python-module-after-activate", "error",
      summary="a module with its own Python (python, anaconda, PyTorch …) is loaded after a virtual or conda "
              "environment is activated, so python and pip are the module's, not the environment's",
      why="Activating an environment puts its bin folder first on PATH; module load then puts the module's bin "
          "folder in front of it. From there on python, python3 and pip are the module's: the program runs without "
          "the packages installed in the environment (ModuleNotFoundError), or silently with the module's older "
          "versions of them, and pip install writes to the wrong place. The job works while it is written in one "
          "order and breaks when a line is moved. A module already loaded before the activation is not loaded again "
          "(Lmod and Environment Modules leave PATH as it is), so it is not reported; nor is a module loaded before "
          "an activation that comes after it.",
      fix="Load the modules first, then activate the environment (the environment was made from that Python, so "
          "it needs the module loaded anyway), or call the environment's own program (ENV/bin/python).",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
source ~/venvs/ml/bin/activate
module load python/3.11
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
module load python/3.11
source ~/venvs/ml/bin/activate
python train.py
""")
def _python_module_after_activate(ctx: Context) -> Iterator[Any]:
    if not any(_PYTHON_MODULE.match(name) for name, _ in ctx.parsed.modules):
        return  # the usual script: no such module at all
    loaded_at = {}  # module name (without its version) -> the line of its first load
    for name, line in ctx.parsed.modules:
        loaded_at.setdefault(name.split("/", 1)[0].lower(), line)
    activated = 0       # the line of the activation in force (0: none)
    shadowing: tuple[str, int, int] | None = None  # (module, its line, the activation's line)
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        if not words:
            continue
        if _activates(words):
            activated, shadowing = cmd.line, None
            continue
        if _deactivates(words):
            activated, shadowing = 0, None
            continue
        if activated and shadowing is None:
            for name, line in ctx.parsed.modules:
                if line == cmd.line and _PYTHON_MODULE.match(name) \
                        and loaded_at[name.split("/", 1)[0].lower()] > activated:
                    shadowing = (name, line, activated)
                    break
            continue
        if shadowing is None:
            continue
        program = run_words(words)
        if program and _ENV_PROGRAMS.fullmatch(program[0]):
            name, line, at = shadowing
            yield (line, f"module load {name} comes after the environment activated on line {at}: it puts the "
                         f"module's bin folder first on PATH, so {program[0]} on line {cmd.line} is the module's and "
                         "runs without the environment's packages; load the modules first, then activate the "
                         "environment")
            return


# --------------------------------------------------------------------------------------------
# HPC209: the host user's site-packages reach Python in the container

USERSITE_VARS = ("PYTHONNOUSERSITE", "APPTAINERENV_PYTHONNOUSERSITE", "SINGULARITYENV_PYTHONNOUSERSITE")
#: a container path that is the user's ~/.local (or a folder holding it): a bind there replaces the host's
_USER_SITE_FOLDER = re.compile(r"(?:~|\$HOME|\$\{HOME\}|/home/[^/]+)/\.local/?$")


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
        if any(_USER_SITE_FOLDER.match(str(b.dst or b.src)) for b in c.binds):
            continue  # a folder of the job's own bound over ~/.local: the host's packages are hidden
        prefix = env_prefix(ctx, c.binary)
        setting = (f"export {prefix}PYTHONNOUSERSITE=1 (--cleanenv keeps PYTHONNOUSERSITE itself out)"
                   if run.cleanenv else "export PYTHONNOUSERSITE=1")
        yield (step.line, "$HOME is mounted, so packages in the host's ~/.local can shadow the image's; "
                          f"{setting} or use --no-home")
