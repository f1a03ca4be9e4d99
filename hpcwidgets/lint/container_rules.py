"""Rules about containers: Apptainer and Charliecloud commands in a job (GPU flags, binds, images and where they
come from, the runtime's own environment variables), and launchers that start ranks themselves (mpirun, a DeepSpeed
hostfile) around or inside a container.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
import shlex
from types import SimpleNamespace
from typing import Any, Iterator

from ..errors import ParseError
from ..parse.lexer import lex_script
from ..parse.script import c_script_in, launch_words, shell_c_script, shell_script_text
from ..spec._words import Verbatim
from ..spec.common import Bind, bind_destination, list_items
from ..spec.profile import (ARCH_ALIASES, ARCH_IMAGE_HINTS, GPU_TOOLS, arch_name, arch_named_files,
                             gpu_type_vendor, image_arches, image_vendor)
from ..spec.slurm import node_range
from . import Context, Fix, rule
from .catalogue import (INSTANCE_SCHEME, MPI_LAUNCHERS, RANK_LAUNCHERS, _Inner, _code_in_order, _flag_in_a_variable,
                        _holds_reference, _only_sets_up, _script_env, _shell_c_script, _simple_commands,
                        accelerate_path, apptainer_env, as_int, as_run, cached, containers, each_component, env_flag,
                        fix_for, in_job_component, insert_after, job_component_steps, job_nodes, one_node_job,
                        other_launches, own_gpu_request, profile_vendor, python_code, resources_from_command_line,
                        run_words, shell_script_word, simple_commands, step_gpu_types, step_tasks, steps, tasks_per_node,
                        with_chain)
from .network import _gpu_types, _mpirun_options, _mpirun_split, host_and_image_mpi, mpi_family


#: signs in a script that its GPUs are AMD ones: a ROCm image or module, ROCm's variables, an Instinct gres type,
#: the GPU partitions and modules of LUMI (whose GPUs are all AMD: small-g, standard-g, dev-g, lumi-* modules)
_AMD_SIGNS = re.compile(r"rocm|\b(?:ROCR|HIP)_VISIBLE_DEVICES\b|\bMIOPEN_|\bHSA_[A-Z_]+=|[:=]mi[123]\d\d[a-z]?\b"
                        r"|--partition[= ](?:small|standard|dev)-g\b|-p\s*(?:small|standard|dev)-g\b|\blumi-", re.I)


def gpu_vendor(ctx: Context) -> str:
    """The GPU vendor by the profile (:func:`profile_vendor`); where it cannot tell, the one the job's GPU type names
    when that is AMD or Intel (``--gres=gpu:pvc:1``, ``--gpus=mi250:8``: Intel GPUs take neither --nv nor --rocm),
    else "amd" when the script shows signs of AMD GPUs (a ROCm image, ``ROCR_VISIBLE_DEVICES``), else "nvidia"."""
    vendor = profile_vendor(ctx)
    if vendor:
        return vendor
    named = {gpu_type_vendor(t) for t in _gpu_types(ctx)}
    if named in ({"amd"}, {"intel"}):
        return named.pop()
    return "amd" if shows_amd(ctx) else "nvidia"


def shows_amd(ctx: Context) -> bool:
    """Whether the script itself shows AMD GPUs (see :data:`_AMD_SIGNS`), whatever the profile says."""
    return cached(ctx, "shows_amd", lambda: _AMD_SIGNS.search(ctx.parsed.source) is not None)


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
    return cached(ctx, "pulls", lambda: _commands_of(ctx, ("apptainer.pull", "charliecloud.pull")))


def builds(ctx: Context) -> list[tuple[Any, Any]]:
    """``(command, model)`` for each ``apptainer build`` (``singularity build``) the script runs, from any source."""
    return cached(ctx, "builds", lambda: _commands_of(ctx, ("apptainer.build",)))


def _commands_of(ctx: Context, kinds: tuple[str, ...]) -> list[tuple[Any, Any]]:
    """``(command, model)`` for the script's commands the models read as one of ``kinds`` (those that do not parse
    are left to the rules that say why)."""
    from ..parse.argv import parse_argv, recognise
    out = []
    for cmd in simple_commands(ctx):
        words = _past_srun(cmd.argv)
        found = recognise([str(v) for v in words])
        if found is None or found[0].cls.kind not in kinds:
            continue
        try:
            out.append((cmd, parse_argv(words).model))
        except ParseError:
            continue
    return out


def _past_srun(argv: Any) -> Any:
    """A command's words from the program srun (or a wrapper such as ``time``) starts on: ``srun -n1 apptainer pull
    …`` is a pull all the same, run once per task."""
    texts = [str(v) for v in argv]
    tail = run_words(texts)
    return argv[len(texts) - len(tail):] if tail and [str(t) for t in tail] == texts[len(texts) - len(tail):] \
        else argv


def is_guarded(ctx: Context, cmd: Any) -> bool:
    """True when a command only runs after a test (``[ -f X ] || cmd``, ``test -e X || cmd``)."""
    code = simple_commands(ctx)
    idx = code.index(cmd)
    return idx > 0 and code[idx - 1].joined_by in ("||", "&&")


APPTAINER_FLAGS = re.compile(r"^(--nv|--nvccli|--rocm|--bind|-B|--mount|--cleanenv|-e|--contain|-c|--containall|-C|"
                             r"--no-home|--home|-H|--env|--env-file|--cwd|--pwd|--writable-tmpfs|--overlay|--fakeroot)(=|$)")


@rule("HPC201", "gpu-not-passed-to-container", "error",
      summary="GPUs are requested but the container runs without --nv (NVIDIA) or --rocm (AMD)",
      why="Without the flag the container sees no GPU driver: PyTorch silently falls back to the CPU (or fails "
          "with 'no CUDA GPUs are available') while the GPUs you were charged for sit idle. When another container "
          "step of the job has the flag, a step without it is most likely a CPU-only helper (tar, a compile) and is "
          "only advice (HPC220), unless it starts a distributed launcher or shows GPU work (nvidia-smi, python -c "
          "calling torch.cuda.is_available() or jax.devices(): these pre-flight checks fail without the flag); so is "
          "a step whose program only shows something (cowsay, echo, a --version, python -c that only imports and "
          "prints versions), which sites whose every job must ask for a GPU show as a first container job. --nv "
          "written after the image is HPC203. "
          "APPTAINER_NV=1 (SINGULARITY_NV=1) exported before the step counts as --nv, and so does a CDI device "
          "naming a GPU (--device nvidia.com/gpu=all, SingularityCE 4's OCI mode). AMD GPUs (the profile's "
          "gpu_vendor, a GPU type such as mi250, or a script that shows ROCm) are left alone: ROCm images carry their "
          "own libraries and the container sees the host's /dev/kfd and /dev/dri, so sites such as LUMI run them "
          "without --rocm. So are Intel GPUs (the profile's gpu_vendor, or a type such as pvc or max_1550), which "
          "take neither flag: the container sees them as the host's /dev/dri, and the image brings Intel's runtime.",
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
        shown = gpu_work_shown(ctx, step, c)
        if step.chain.launcher is None and not shown and (other is not None or gpu_free_program(ctx, step, c)):
            continue  # a CPU helper (tar, compile) beside a step with the flag, or a program without GPU work: HPC220
        start = _instance_of(ctx, step, c)
        if start is not None:
            # exec/run instance://NAME joins the running instance: the GPUs are set up (or not) when it starts
            if start.line not in reported:
                reported.add(start.line)
                # the flag goes after "instance start" as it does after exec (none for the old instance.start)
                fix = None if shows_amd(ctx) else insert_after(ctx, f"add {flag} to the instance start",
                                                               start.start_word, [flag])
                yield (start.line, f"{_who(ctx)} requests GPUs but the instance {start.name} is started without {flag}, "
                                   f"so {c.binary} {c.action} instance://{start.name} on line {step.line} sees no GPU; "
                                   f"add {flag} to {start.binary} instance start", fix)
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
        beside = f" ({shown}; the step on line {other} has {flag}, but each container needs its own)" \
            if shown and other is not None else ""
        yield (step.line, f"{_who(ctx)} requests GPUs but {c.binary} {c.action} runs without {flag}: no GPU is visible "
                          f"inside the container; add {flag}{where}{beside}", fix)


def _who(ctx: Context) -> str:
    """What asks for the resources a step runs with: the job, or in a heterogeneous job the component the step runs
    in (``ctx`` is the view of that component)."""
    if not ctx.parsed.heterogeneous:
        return "the job"
    return f"component {getattr(ctx, 'component', 0)} of the heterogeneous job, where this step runs,"


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


@dataclasses.dataclass(frozen=True)
class InstanceStart:
    """``apptainer instance start [options] IMAGE NAME`` (``singularity instance.start`` of old)."""

    line: int
    binary: str
    name: str          # resolved through the script's variables
    gpu_flag: str      # the --nv, --rocm or --nvccli it is started with ("" for none)
    #: the option words before the image, as written (a word of the lexer, with its place); () for the old
    #: ``instance.start``, which Singularity 2 read with its own parser
    options: tuple[Any, ...] = ()
    #: the lexer word ``start`` of ``instance start``, where options can be inserted (None for ``instance.start``)
    start_word: Any = None


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
            # the words the line runs end the command as written: as many from the end are the lexer's words
            written = cmd.words[len(cmd.words) - len(rest):] if words[1] == "instance" else ()
            if [str(w.value) for w in written] != rest:
                written = ()
            before = len(cmd.words) - len(rest) - 1
            start = cmd.words[before] if written and before > 0 and str(cmd.words[before].value) == "start" \
                and str(cmd.words[before - 1].value) == "instance" else None
            out.append(InstanceStart(cmd.line, words[0].rsplit("/", 1)[-1], name,
                                     next((w.partition("=")[0] for w in rest if w.partition("=")[0] in GPU_FLAGS), ""),
                                     _instance_options(tuple(written)), start))
        return out
    return cached(ctx, "instance_starts", make)


#: options of exec/run/shell that instance start does not have (apptainer's action_flags.go registers them for
#: the actions alone), so their one-dash spelling is not one of its long options written wrong
_ACTIONS_ONLY = frozenset({"pid", "cwd", "pwd", "shell", "vm", "vm-ram", "vm-cpu", "vm-ip", "vm-err"})
#: their short options (-p: --pid, -s: --shell)
_ACTIONS_ONLY_SHORT = frozenset({"p", "s"})


def _instance_options(words: tuple[Any, ...]) -> tuple[Any, ...]:
    """The option words an ``instance start`` has before its image: up to the first word that is neither an option
    nor the value of one (``--bind /data``; ``-bind /data`` too, whose value was meant so)."""
    out = []
    i = 0
    while i < len(words) and str(words[i].value).startswith("-"):
        out.append(words[i])
        i += 2 if _takes_next_word(str(words[i].value)) else 1
    return tuple(out)


def _takes_next_word(option: str) -> bool:
    """Whether an apptainer option word takes the next word as its value: ``--bind`` and ``-B`` do, ``--bind=X``,
    ``-B/data`` and ``--nv`` do not, a cluster does when it ends with an option that takes one (``-eB``), and a
    long option written with the wrong number of dashes is read as it was meant (``-bind /data``)."""
    long, short = _apptainer_options()
    dashes = len(option) - len(option.lstrip("-"))
    name, eq, _ = option[dashes:].partition("=")
    if eq:
        return False
    if dashes != 1 or (len(name) > 1 and name in long):
        return long.get(name) == "value"
    for k, letter in enumerate(name):
        kind = short.get("-" + letter, "")
        if kind != "switch":
            return kind == "value" and k == len(name) - 1
    return False


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


@rule("HPC236", "instance-under-two-names", "info",
      summary="an instance is started with singularity and used or stopped with apptainer (or the other way round): "
              "that finds it only where singularity is Apptainer's own compatibility command",
      why="Apptainer installs singularity as another name for itself, and then both names see the same instances. "
          "Where SingularityCE (or a Singularity older than the rename) is installed beside Apptainer, the two are "
          "separate programs that keep their instances apart (Apptainer under ~/.apptainer/instances, Singularity "
          "under ~/.singularity/instances): apptainer exec instance://NAME then does not find the instance "
          "singularity instance start made ('no instance found'), and an instance stop under the other name stops "
          "nothing. The same script works on one cluster and fails on the next; one name for all of it costs "
          "nothing. Read like the other instance rules: the start is the last instance start of that NAME before "
          "the line.",
      fix="Write the same program for the instance's start, for exec/run/shell instance://NAME and for its stop "
          "(apptainer, where the site has it).",
      bad="""#!/bin/bash
#SBATCH --cpus-per-task=4
singularity instance start "$SCRATCH/images/db_16.2.sif" db
apptainer exec instance://db psql -c 'SELECT 1'
singularity instance stop db
""",
      good="""#!/bin/bash
#SBATCH --cpus-per-task=4
apptainer instance start "$SCRATCH/images/db_16.2.sif" db
apptainer exec instance://db psql -c 'SELECT 1'
apptainer instance stop db
""")
def _instance_under_two_names(ctx: Context) -> Iterator[Any]:
    seen: set[int] = set()
    for step, c in containers(ctx):
        start = _instance_of(ctx, step, c) if c.kind == "apptainer.run" else None
        if start is None or step.line in seen or c.binary.rsplit("/", 1)[-1] == start.binary:
            continue
        seen.add(step.line)
        yield (step.line, f"the instance {start.name} is started with {start.binary} (line {start.line}) and joined "
                          f"here with {c.binary} {c.action} instance://{start.name}: that finds it only where "
                          f"{'singularity' if 'singularity' in (start.binary, c.binary) else start.binary} is "
                          "Apptainer's compatibility name; where Singularity and Apptainer are separate installations "
                          "each keeps its own instances and this fails ('no instance found'); use one program for "
                          "both")
    for line, binary, names in _instance_stops(ctx):
        starts = [s for s in instance_starts(ctx) if s.line < line and (names is None or s.name in names)]
        latest = {s.name: s for s in starts}  # the last start of each name before the stop
        for start in latest.values():
            if start.binary != binary and line not in seen:
                seen.add(line)
                yield (line, f"{binary} instance stop is to stop the instance {start.name}, which {start.binary} "
                             f"started (line {start.line}): where Singularity and Apptainer are separate "
                             f"installations {binary} does not see it, and it keeps running; stop it with "
                             f"{start.binary} instance stop")


def _instance_stops(ctx: Context) -> list[tuple[int, str, frozenset[str] | None]]:
    """``(line, program, names)`` for each ``apptainer``/``singularity`` ``instance stop`` (or ``instance.stop``)
    of the script; ``names`` None for --all (-a). Names with a pattern (``llm*``) are left out."""
    out = []
    for cmd in simple_commands(ctx):
        words = run_words([str(v) for v in cmd.argv])
        binary = words[0].rsplit("/", 1)[-1] if words else ""
        if binary not in ("apptainer", "singularity") or len(words) < 2:
            continue
        if words[1:3] == ["instance", "stop"]:
            rest = words[3:]
        elif words[1] == "instance.stop":
            rest = words[2:]
        else:
            continue
        names: set[str] = set()
        everything, k = False, 0
        while k < len(rest):
            option = rest[k].partition("=")[0]
            if option in ("-a", "--all"):
                everything = True
            elif option in ("-s", "--signal", "-t", "--timeout", "-u", "--user") and "=" not in rest[k]:
                k += 1
            elif not rest[k].startswith("-"):
                names.add(ctx.parsed.resolve(rest[k], cmd.line))
            k += 1
        names = {n for n in names if not any(ch in n for ch in "*?[")}
        if everything or names:
            out.append((cmd.line, binary, None if everything else frozenset(names)))
    return out


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
    moves it (adding one more would write it twice). So is one that writes it with one dash (-nv), left to HPC233,
    whose fix adds the missing dash.
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
                # no start in the script: nothing to say; -nv on the start: HPC233 says so
                return start is None or bool(start.gpu_flag) or any("--" + name in GPU_FLAGS
                                                         for _, name in _misdashed(start.options, _ACTIONS_ONLY))
            return c.gpu or _gpu_flag_from_env(ctx, s) or _flag_in_a_variable(c)  # c.gpu: a CDI GPU device too
        with_flag = [s.line for s, c in runs if has_gpus(s, c) or _gpu_flag_after_image(s) or _left_to_hpc233(s, c)
                     or _gpu_flag_misspelled(s, c)]
        with_flag += [c.line for c in _code_lines_with_gpu_container(ctx) if c.line not in with_flag]
        out = []
        for step, c in runs:
            if has_gpus(step, c) or _left_to_hpc233(step, c) or _gpu_flag_misspelled(step, c) \
                    or (_gpu_flag_after_image(step) and step.line in moved):
                continue
            other = next((line for line in with_flag if line != step.line), None)
            out.append((step, c, flag, other))
        return out
    return cached(ctx, "steps_without_gpu_flag", make)


def _gpu_flag_misspelled(step: Any, c: Any) -> bool:
    """A GPU flag misspelled among the container's options (--nvcli): HPC234 names it, and its fix corrects it."""
    long, short = _apptainer_options()
    return any("--" + close in GPU_FLAGS for _, _, close in _unknown_options(_option_words(step, c), long, short))


def _left_to_hpc233(step: Any, c: Any) -> bool:
    """--nv/--rocm/--nvccli written with one dash (-nv) or three among the container's options, or an option taking
    a value written so (-bind /data IMG: the reader takes /data for the image, and the rest is misread): HPC233 says so."""
    long, _ = _apptainer_options()
    return any("--" + name in GPU_FLAGS or long[name] == "value" for _, name in misdashed_options(step, c))


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


#: programs that never touch a GPU and only show something: what a first container job runs to see that the
#: container works (cowsay, echo, cat /etc/os-release). A helper that moves data (tar, cp) is advice only beside a
#: step with --nv (HPC220): in a job where no step has the flag, the flag was most likely forgotten everywhere
GPU_FREE_TOOLS = frozenset({"cowsay", "fortune", "echo", "printf", "cat", "ls", "date", "hostname", "uname", "whoami",
                            "id", "env", "printenv", "pwd", "true", "sleep", "head", "tail", "wc", "du", "df"})

#: options that make a program print a fact about itself and exit
_SELF_REPORT = ("--version", "-V", "-version", "--help", "-h")

#: attributes that hold a version (torch.__version__, sys.version, torch.version.cuda: CUDA's version at build time)
_VERSION_ATTRS = frozenset({"__version__", "version", "VERSION", "version_info"})


def gpu_free_program(ctx: Context, step: Any, c: Any) -> str:
    """Why the program an ``apptainer exec`` step runs plainly does no GPU work ("" when it may): a tool of
    :data:`GPU_FREE_TOOLS` (also every command of a ``bash -c`` script), a program asked only for ``--version`` or
    ``--help`` (not a GPU tool such as nvidia-smi, which --nv brings into the container), or ``python -c`` code that
    only imports modules and prints their versions. Anything else, a runscript or an instance's step is taken to use
    the GPUs the job asks for."""
    if c.action != "exec" or _instance_of(ctx, step, c) is not None:
        return ""
    prog = [str(w) for w in step.chain.program]
    if not prog:
        return ""
    if shell_c_script(prog) is not None:
        inner = [[str(w) for w in cmd.argv] for cmd in _simple_commands(_shell_c_script(step.command))]
        return "its commands use no GPU" if inner and all(_gpu_free_words(w) for w in inner) else ""
    return _gpu_free_words(prog)


#: programs that ask the driver about the GPUs: --nv (--rocm) is what brings them and the driver into the container
GPU_QUERY_TOOLS = frozenset({"nvidia-smi", "rocm-smi", "amd-smi", "rocminfo", "deviceQuery"})

#: calls that ask a framework for its GPUs (jax.devices(), tf.config.list_physical_devices("GPU"),
#: torch.cuda.device_count()); any call through a ``cuda`` attribute counts too
_DEVICE_QUERIES = frozenset({"devices", "local_devices", "device_count", "list_physical_devices",
                             "list_logical_devices", "is_gpu_available", "gpu_device_name", "get_device_name",
                             "get_device_properties"})

#: a device named as text: torch.device("cuda"), tensor.to("cuda:0")
_GPU_DEVICE_TEXT = re.compile(r"(?:cuda|gpu)(?::\d+)?", re.IGNORECASE)


def gpu_work_shown(ctx: Context, step: Any, c: Any) -> str:
    """Why the program an ``apptainer exec`` step runs evidently uses the GPU ("" when it does not show it): a
    GPU query tool (nvidia-smi, rocm-smi), also among the commands of a ``bash -c`` script, or ``python -c`` code
    that asks for the GPUs (torch.cuda.is_available(), jax.devices()) or puts work on one. The opposite test is
    :func:`gpu_free_program`; a step that shows GPU work needs the flag whatever the job's other steps do."""
    if c.action != "exec" or _instance_of(ctx, step, c) is not None:
        return ""
    prog = [str(w) for w in step.chain.program]
    if prog and shell_c_script(prog) is not None:
        inner = [[str(w) for w in cmd.argv] for cmd in _simple_commands(_shell_c_script(step.command))]
        return next((reason for words in inner if (reason := _gpu_work_words(words))), "")
    return _gpu_work_words(prog)


def _gpu_work_words(words: list[str]) -> str:
    """:func:`gpu_work_shown` for one command's words."""
    if not words:
        return ""
    name = words[0].rsplit("/", 1)[-1]
    if name in GPU_QUERY_TOOLS or name.startswith("nvidia-"):
        return f"{name} queries the GPU driver"
    if name == "ray" and words[1:2] == ["start"] and not any(re.fullmatch(r"--num-gpus(?:=0)?", w) for w in words):
        return "ray start offers the GPUs it sees to the Ray cluster, here none, so Ray puts no GPU work on this node"
    code = python_code(words)
    call = _gpu_call(code) if code is not None else ""
    return f"python -c calls {call}, which needs the GPU" if call else ""


def _gpu_call(code: str) -> str:
    """The first call in Python ``code`` that asks for or uses a GPU, as written (``torch.cuda.is_available()``),
    or ""."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        dotted = ast.unparse(node.func)
        parts = re.split(r"\W+", dotted)
        on_device = any(isinstance(a, ast.Constant) and isinstance(a.value, str) and _GPU_DEVICE_TEXT.fullmatch(a.value)
                        for a in node.args)
        if "cuda" in parts or parts[-1] in _DEVICE_QUERIES or on_device:
            return f"{dotted}()"
    return ""


def _gpu_free_words(words: list[str]) -> str:
    """:func:`gpu_free_program` for one command's words."""
    if not words or any("$(" in w or "`" in w for w in words):
        return ""  # a command substitution runs a program of its own
    name = words[0].rsplit("/", 1)[-1]
    if name in GPU_FREE_TOOLS:
        return f"{name} uses no GPU"
    if len(words) == 2 and words[1] in _SELF_REPORT and not name.startswith(("nvidia-", "rocm-")):
        return f"{name} {words[1]} uses no GPU"
    code = python_code(words)
    if code is not None and len(words) == 3 and _prints_versions(code):
        return "python -c only imports and prints versions, which needs no GPU"
    return ""


def _prints_versions(code: str) -> bool:
    """Whether Python ``code`` only imports modules and prints constants, modules or their versions
    (``import torch; print(torch.__version__)``). A call to anything but print, torch.cuda.is_available() among
    them, is GPU work as far as this can tell."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False

    def plain(node: ast.AST) -> bool:
        if isinstance(node, ast.JoinedStr):
            return all(plain(v.value) if isinstance(v, ast.FormattedValue) else True for v in node.values)
        if isinstance(node, ast.Attribute):
            chain = []
            while isinstance(node, ast.Attribute):
                chain.append(node.attr)
                node = node.value
            return isinstance(node, ast.Name) and bool(_VERSION_ATTRS.intersection(chain))
        return isinstance(node, (ast.Constant, ast.Name))

    def harmless(stmt: ast.stmt) -> bool:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return True
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print" \
            and all(plain(a) for a in call.args) and all(plain(k.value) for k in call.keywords)
    return bool(tree.body) and all(harmless(stmt) for stmt in tree.body)


#: bind sources that hold every user's home directory (the home's real path is not in the script)
_HOME_ROOTS = ("", "/home", "/home/$USER", "/u", "/users", "/Users")


def _covered_by_bind(ctx: Context, step: Any, c: Any, path: str) -> bool:
    """Whether a bind mounts something at ``path`` in the container of ``step``: ``--bind "$HOME/project"``, a
    directory holding the home (``-B /home``), a bind whose destination is the folder (``-B "$PWD:$HOME"``), or the
    same in APPTAINER_BIND/SINGULARITY_BIND as the apptainer process gets them
    (:func:`~hpcwidgets.lint.shell.environment_binds`; ch-run reads no such variable)."""
    from .shell import environment_binds
    line = step.line
    binds = [*getattr(c, "binds", ()), *(b for _, _, b in environment_binds(ctx, step, c))]
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
                    ctx, step, c, path.replace("${HOME}", "$HOME").replace("~", "$HOME", 1)):
                continue
            flag = "--containall" if c.containall else "--contain" if c.contain else "--no-home"
            yield (step.line, f"{path} is in the host's home directory, which {flag} leaves out of the container: the "
                              f"step fails with 'No such file or directory'; bind it in (--bind \"{path.rsplit('/', 1)[0]}\") "
                              f"or drop {flag}")
            break


#: variables that name the host's own folders: ch-run shows none of them unless they are bound in
_HOST_FOLDER = re.compile(r"^\$\{?(HOME|SCRATCH|WORK|PROJECT|STORE|PWD|SLURM_SUBMIT_DIR|SLURM_TMPDIR)\b\}?(/|$)|^~(/|$)")

#: a home directory written out: /home/NAME (a user's home on the host: images seldom keep files under /home) and
#: ~NAME (bash expands it to NAME's home on the host); /scratch/… and /project/… could be folders of the image
_HOME_WRITTEN = re.compile(r"^/home/[^/]+(/|$)|^~[A-Za-z_][A-Za-z0-9_.-]*(/|$)")

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
      summary="ch-run runs a file from a host folder it does not mount, cds into one (-c), or runs a relative path "
              "without --cd",
      why="ch-run shows the container only what is bound in: the host's /tmp, and $HOME (at /home/$USER) only with "
          "--home since Charliecloud 0.31 (e.g. in Debian 12; 0.30 and older mounted it by default). A path under "
          "$SCRATCH or $PWD, expanded by the batch shell, does not exist inside, and neither does a home directory "
          "written out (/home/NAME/…, ~/…, ~NAME/…); -c/--cd into such a folder stops ch-run before the command "
          "starts (\"can't cd to …\"). Without -c/--cd the command starts in the image's /, whatever the current "
          "directory is, so a relative train.py is looked for as /train.py. The step stops at once with 'No such file "
          "or directory'. Other literal paths (/scratch/…, /project/…) are left alone: the image may hold them.",
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
        if c.kind != "charliecloud.run" or ch_run_options_after_image(step.words) is not None:
            continue  # without -- ch-run reads the command's options as its own: HPC239 says so first
        cd = ctx.parsed.resolve(str(c.cd), step.line) if c.cd else ""
        home = _host_folder(cd, c)
        if home is not None and not _seen_inside(ctx, step, c, cd, home):
            bound = next((b.dst for b in c.binds if b.dst and ctx.parsed.resolve(str(b.src), step.line) == cd), "")
            fix = f"it is bound at {bound}: cd there (-c {bound})" if bound else \
                f"bind it in and cd there (ch-run -b {_bind_word(cd)} -c /mnt/0 …)"
            yield (step.line, f"-c {cd} is a host folder ch-run does not mount{_HOME_NOTE if home else ''}: ch-run stops "
                              f"at once with \"can't cd to {cd}\"; {fix}")
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
            home = _host_folder(path, c)
            if home is None or _seen_inside(ctx, step, c, path, home):
                continue
            yield (step.line, f"{path} is in a host folder ch-run does not mount{_HOME_NOTE if home else ''}: bind it "
                              f"in and use the path inside (ch-run -b {_bind_word(path.rsplit('/', 1)[0] or path)} "
                              "… /mnt/0/…)")
            break


_HOME_NOTE = " (Charliecloud 0.31 and later mount $HOME only with --home)"


@rule("HPC239", "ch-run-command-without-double-dash", "error",
      summary="a ch-run without -- between the image and the command, whose command has options (-c, --epochs …): "
              "ch-run takes them as its own",
      why="ch-run reads its arguments with GNU argp, which takes an option wherever it stands until a -- ends the "
          "options. Written ch-run IMAGE python train.py --epochs 10, the --epochs is ch-run's: it stops with "
          "\"unrecognized option '--epochs'\" before the container starts. Worse, an option ch-run knows is used "
          "quietly: python -c 'code' becomes ch-run's --cd (\"can't cd to code\"), -b 64 a bind, -w a writable "
          "image, --set-env=… changes the container's environment, and the program never sees them. The usage line "
          "says so: ch-run [OPTION...] IMAGE -- CMD [ARG...].",
      fix="Put -- between the image and the command: ch-run IMAGE -- python train.py --epochs 10 (the fix does so).",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
srun ch-run /scratch/images/trainer.sqfs python /opt/train.py --epochs 10
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
srun ch-run /scratch/images/trainer.sqfs -- python /opt/train.py --epochs 10
""")
def _ch_run_without_double_dash(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if c.kind != "charliecloud.run":
            continue
        found = ch_run_options_after_image(step.words)
        if found is None:
            continue
        image, taken = found
        own = [w for w in taken if w.split("=", 1)[0] in _ch_run_value_options() | _ch_run_switches()]
        what = (f"ch-run uses {own[0]} itself ({_CH_RUN_MEANS.get(own[0].split('=', 1)[0], 'one of its options')}) "
                f"and the program never sees it") if own else f"ch-run {_refuses(taken[0])} before the container starts"
        fix = insert_after(ctx, "put -- between the image and the command", image, ["--"])
        yield (step.line, f"ch-run takes options wherever they stand until a --, and this one has no -- after its image "
                          f"{image.raw}: {', '.join(taken[:3])} {'is' if len(taken) == 1 else 'are'} read as ch-run's; "
                          f"{what}; put -- between the image and the command", fix)


def _refuses(word: str) -> str:
    """How ch-run (argp) refuses an option it does not know: a long one by name; a word with one dash is read as a
    cluster of short options (-in is -i -n), of which it names the first it lacks."""
    if word.startswith("--"):
        return f"stops with \"unrecognized option '{word.split('=', 1)[0]}'\""
    switches = _ch_run_switches() | _ch_run_value_options()
    for k, letter in enumerate(word[1:], 1):
        if f"-{letter}" not in switches:
            return f"reads {word} as one-letter options and stops at -{letter} (\"invalid option -- '{letter}'\")"
        if f"-{letter}" in _ch_run_value_options():
            return f"reads {word} as one-letter options, -{letter} taking the rest as its value"
    return f"reads {word} as its own one-letter options"


#: what an option of ch-run's does when a command's option is taken for it
_CH_RUN_MEANS = {"-c": "--cd: it changes into that folder", "--cd": "it changes into that folder",
                 "-b": "--bind: it binds the word after it", "--bind": "it binds the word after it",
                 "-w": "--write: the image is mounted writable", "--write": "the image is mounted writable",
                 "-u": "--uid", "-g": "--gid", "-j": "--join", "-t": "--private-tmp", "-s": "--storage",
                 "-m": "--mount", "-v": "--verbose", "-q": "--quiet", "-V": "--version: it prints its version and "
                 "exits", "--set-env": "it changes the container's environment", "--unset-env": "it removes variables "
                 "from the container's environment"}


@functools.lru_cache(maxsize=None)
def _ch_run_value_options() -> frozenset[str]:
    """ch-run's options that take the word after them as their value (written without ``=``)."""
    from ..parse.argv import _option_table
    from ..spec.charliecloud import ChRun
    table = _option_table(ChRun)
    return frozenset(flag for flag, fields in table.items()
                     if flag != "--set-env" and any(f.base_type is not bool for f in fields)) | ChRun.other_value_options


@functools.lru_cache(maxsize=None)
def _ch_run_switches() -> frozenset[str]:
    from ..parse.argv import _option_table
    from ..spec.charliecloud import ChRun
    return frozenset(_option_table(ChRun)) - _ch_run_value_options() | ChRun.other_switch_options


def ch_run_options_after_image(words: Any) -> tuple[Any, list[str]] | None:
    """For a command that runs ch-run with no ``--`` after its image: the image's word and the words after the
    command's name that ch-run reads as its own options (GNU argp takes options anywhere before ``--``); None when
    there is a ``--``, no such word, or no ch-run. Options between the image and the command's name are ch-run's and
    meant so. A word that a variable holds (``$ARGS``) is not counted: its value is unknown."""
    texts = [str(w.value) for w in words]
    start = next((k for k, t in enumerate(texts) if t.rsplit("/", 1)[-1] == "ch-run"), None)
    if start is None:
        return None
    takes = _ch_run_value_options()
    k = start + 1
    while k < len(texts):
        text = texts[k]
        if text == "--":
            return None
        if text.startswith("-") and text != "-":
            short_attached = not text.startswith("--") and len(text) > 2
            k += 2 if text in takes and not short_attached else 1
            continue
        break
    if k >= len(texts) or "--" in texts[k + 1:]:
        return None  # a -- ends ch-run's options: what stands before it (-b after the image too) is meant for ch-run
    image = words[k]
    k += 1
    while k < len(texts) and texts[k].startswith("-") and texts[k] != "-":
        short_attached = not texts[k].startswith("--") and len(texts[k]) > 2
        k += 2 if texts[k] in takes and not short_attached else 1  # ch-run's own, between the image and the command
    taken = [t for t, w in zip(texts[k + 1:], words[k + 1:]) if t.startswith("-") and t != "-" and "$" not in w.raw]
    return (image, taken) if taken else None


def _host_folder(path: str, c: Any) -> bool | None:
    """Whether a path ch-run ``c`` gets is on the host only: True for a home directory ($HOME, ~, ~NAME, /home/NAME),
    False for another host folder ($SCRATCH, $PWD …), None for a path the image may hold itself. With --no-home
    (Charliecloud 0.30 and older) ch-run shows the image's own /home unaltered, so /home/NAME is the image's there."""
    m = _HOST_FOLDER.match(path)
    if m is not None:
        return m.group(1) in (None, "HOME")
    if not _HOME_WRITTEN.match(path) or (path.startswith("/home/") and "--no-home" in c.extra):
        return None
    return True


def _bind_word(folder: str) -> str:
    """``-b``'s value binding a host folder at /mnt/0, written so that bash gives ch-run the host path: quoted, but a
    ``~`` bash must expand is left outside the quotes (``~/proj`` as ``"$HOME/proj"``, ``~bob/proj`` unquoted)."""
    if folder.startswith("~"):
        if folder[1:2] in ("", "/"):
            return f'"$HOME{folder[1:]}:/mnt/0"'
        return f"{folder}:/mnt/0"
    return f'"{folder}:/mnt/0"'


def _seen_inside(ctx: Context, step: Any, c: Any, path: str, home: bool) -> bool:
    """Whether a host path exists in ch-run's container all the same: a bind puts something there, or it is in the
    home directory and --home mounts it (at /home/$USER, where a /home/NAME or ~ path of the user's own lands). A
    bind of "$HOME/proj" covers ~/proj/… too: bash gives both the same value."""
    if home and c.home:
        return True
    path = _BRACED.sub(r"$\1", path)
    spellings = {path, re.sub(r"^~(?=/|$)", "$HOME", path), re.sub(r"^\$HOME(?=/|$)", "~", path)}
    return any(_covered_by_bind(ctx, step, c, p) for p in spellings)


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


@rule("HPC223", "clean-environment-hides-task-rank", "error",
      summary="srun starts several tasks in a container with --cleanenv/--containall (or ch-run --unset-env='*'), which "
              "drops SLURM_PROCID; or the container's bash -c script reads a Slurm variable such a container leaves "
              "out",
      why="--cleanenv (and --containall) start the container with almost none of the host's variables (Apptainer "
          "passes only TERM and the proxy settings): SLURM_PROCID, "
          "SLURM_LOCALID, SLURM_NTASKS and an exported MASTER_ADDR do not reach a program that srun starts once per "
          "task, so every task takes itself for rank 0 of 1 (or stops asking for them). An MPI program started so "
          "(srun --mpi=pmix, an MPI module or image) loses the PMI_* and PMIX_* variables through which srun's plugin "
          "connects the ranks: each starts as a singleton. --cleanenv is often added to keep a host MPI module out "
          "of the container; Apptainer never passes the host's LD_LIBRARY_PATH anyway. torchrun inside the "
          "container is not affected: it gets its settings on its command line and sets the workers' own. "
          "Charliecloud's ch-run --unset-env='*' (or SLURM*, PMI*) does the same to the tasks srun starts. In a job "
          "of any size, a Slurm variable the container's own shell expands (bash -c '… $SLURM_ARRAY_TASK_ID') is "
          "empty under --cleanenv or --containall: every array task gets the same, empty value.",
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
    if getattr(ctx, "component", 0) == 0:  # (these look at every step of the script, once)
        yield from _slurm_variables_inside_a_clean_container(ctx)
        yield from _charliecloud_unset_everything(ctx)
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
        mpi = _mpi_shown(ctx, step)
        if mpi:
            yield (step.line, f"srun starts {tasks} MPI ranks in the container with {flag} ({mpi}), which passes "
                              "only TERM and the proxy settings in: the MPI library inside gets none of the PMI_* and "
                              "PMIX_* variables srun sets for each task to connect the ranks (nor SLURM_PROCID), so "
                              f"each starts alone, as rank 0 of 1; drop {flag} (Apptainer never passes the host's "
                              "LD_LIBRARY_PATH, so a host MPI module's libraries stay out without it)")
            continue
        yield (step.line, f"srun starts {tasks} tasks in the container with {flag}, which drops SLURM_PROCID, "
                          "SLURM_LOCALID and the other per-task variables: each task sees itself as rank 0; drop "
                          f"{flag} or pass them with --env (inside srun bash -c '…')")


#: a Slurm variable that the container's own shell expands: $SLURM_X in a single-quoted script, \$SLURM_X in a
#: double-quoted one
_SLURM_INSIDE = {"'": re.compile(r"\$\{?(SLURM_[A-Z0-9_]+)"), '"': re.compile(r"\\\$\{?(SLURM_[A-Z0-9_]+)")}


def _slurm_variables_inside_a_clean_container(ctx: Context) -> Iterator[Any]:
    """HPC223 for the script of bash -c in a container started with --cleanenv or --containall: a Slurm variable its
    shell expands ($SLURM_ARRAY_TASK_ID) is empty there, in a job of any size."""
    for step, c in containers(ctx):
        if c.kind != "apptainer.run" or not (c.cleanenv or c.containall):
            continue
        word = _script_word_in_container(step)
        if word is None or word.raw[:1] not in _SLURM_INSIDE:
            continue
        passed = {str(e.name) for e in c.env} | {v.name.split("ENV_", 1)[-1] for v in ctx.parsed.variables
                                                  if v.exported and v.name.startswith(("APPTAINERENV_", "SINGULARITYENV_"))}
        names = [n for n in dict.fromkeys(_SLURM_INSIDE[word.raw[0]].findall(word.raw)) if n not in passed]
        if names:
            flag = "--cleanenv" if c.cleanenv else "--containall"
            first = names[0]
            yield (step.line, f"{', '.join('$' + n for n in names)} in the container's bash -c script "
                              f"{'is' if len(names) == 1 else 'are'} empty there: {flag} keeps the host's variables "
                              f"out, Slurm's too; pass {'it' if len(names) == 1 else 'them'} in with --env "
                              f"{first}=\"${first}\" (or let the batch shell fill {'it' if len(names) == 1 else 'them'} "
                              "in, outside single quotes)")


def _script_word_in_container(step: Any) -> Any:
    """The word of the step's command line that holds the script of a bash -c the container runs (after its image),
    as written; None when there is none, or when the whole container command is itself inside an outer bash -c
    (srun bash -c 'apptainer exec … IMAGE bash -c "…"'), whose quoting the step's words do not show."""
    program = [str(w) for w in step.chain.program]
    at = c_script_in(program)
    if at is None:
        return None
    words = list(step.command.words)
    start = next((k for k, w in enumerate(words) if str(w.value).rsplit("/", 1)[-1] in ("apptainer", "singularity")),
                 None)
    if start is None:
        return None
    return next((w for w in words[start + 1:] if str(w.value) == program[at]), None)


def _charliecloud_unset_everything(ctx: Context) -> Iterator[Any]:
    """HPC223 for ch-run --unset-env='*' (or SLURM*, PMI*) under srun with several tasks: the ranks lose what srun set
    for each of them."""
    for step, c in containers(ctx):
        if c.kind != "charliecloud.run" or step.chain.srun is None:
            continue
        dropped = [g for g in c.unset_env if isinstance(g, str) and re.fullmatch(r"['\"]?(?:\*|SLURM_?\*|PMIX?_?\*)['\"]?", g)]
        tasks = step_tasks(ctx, step)
        if not dropped or tasks < 2:
            continue
        mpi = _mpi_shown(ctx, step)
        what = ("the PMI_* and PMIX_* variables srun sets for each task to connect the ranks, so each MPI rank "
                "starts alone, as rank 0 of 1" if mpi else "SLURM_PROCID and the other per-task variables, so each "
                "task sees itself as rank 0")
        yield (step.line, f"ch-run --unset-env={dropped[0]} removes, in each of the {tasks} tasks srun starts, {what}; "
                          "unset only what must go (--unset-env=NAME for each), or pass the rank back with --set-env")


#: a module, spack package or image that holds an MPI (openmpi/5.0.3, OpenMPI-4.1.6, cray-mpich, intel-mpi, hpcx)
_MPI_NAME = re.compile(r"(?i)mpi|mpich|mvapich|hpcx")


def _mpi_shown(ctx: Context, step: Any) -> str:
    """What shows that ``step`` starts MPI ranks ("" when nothing does): srun's --mpi (or SLURM_MPI_TYPE) naming a
    plugin, an MPI module the script loads before it, or an image named for MPI."""
    srun = step.chain.srun
    plugin = str(srun.mpi) if srun is not None and srun.mpi else _script_env(ctx, step, "SLURM_MPI_TYPE") or ""
    plugin = plugin.strip("'\"")
    if plugin and plugin != "none":
        return f"--mpi={plugin}" if srun is not None and srun.mpi else f"SLURM_MPI_TYPE={plugin}"
    module = next((name for name, line in ctx.parsed.modules if line < step.line and _MPI_NAME.search(name)), "")
    if module:
        return f"module {module}"
    c = step.chain.container
    image = ctx.parsed.resolve(str(c.image), step.line).rsplit("/", 1)[-1] if c is not None and c.image else ""
    return f"image {image}" if _MPI_NAME.search(image) else ""


@rule("HPC220", "container-step-without-gpu-flag", "info",
      summary="a container step of a GPU job runs without --nv/--rocm while another step has it, or runs a program "
              "that uses no GPU",
      why="Without the flag that step sees no GPU. That is right for a CPU-only helper step (unpacking data with "
          "tar, compiling), and as another step of the job passes the GPUs in, this is probably one; if the step "
          "does use the GPU, it silently runs on the CPU. It is right too for a program that only shows something "
          "(cowsay, echo, a --version, python -c that only imports and prints versions): some sites make every job "
          "ask for a GPU, and their first container example is such a step. (A step that starts a distributed "
          "launcher such as torchrun without the flag is still HPC201, and so is one that shows GPU work, such as "
          "nvidia-smi, python -c calling torch.cuda.is_available() or jax.devices(), or ray start (a Ray node "
          "offers the GPUs it sees), whatever the other steps do, and any other program on its own.)",
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
        if step.chain.launcher is not None or gpu_work_shown(ctx, step, c):
            continue  # a launcher, or a program that shows GPU work: HPC201 whatever the other steps do
        prog = str(step.chain.program[0]) if c.action == "exec" and step.chain.program else \
            {"run": "the image's runscript", "shell": "a shell", "test": "the image's tests"}.get(c.action, "its command")
        if other is not None:
            yield (step.line, f"{c.binary} {c.action} runs {prog} without {flag}, so it sees no GPU; the container step "
                              f"on line {other} passes the GPUs in, so this is probably a CPU-only helper step (fine); "
                              f"add {flag} if it should use the GPU")
        elif (reason := gpu_free_program(ctx, step, c)):
            yield (step.line, f"{c.binary} {c.action} runs {prog} without {flag}, so it sees no GPU; {reason} (fine, "
                              f"the job's GPUs stay unused by this step); add {flag} if it should use the GPU")


def _gpus_come_with_partition(ctx: Context) -> bool:
    """Without a profile, whether the job's partition is named as a GPU one (gpu-a100): some sites (TACC's GPU
    queues) hand out a whole GPU node with the partition alone. A profile describes GPUs requested with gres."""
    names = [n.strip().lower() for n in str(ctx.job.partition or "").split(",") if n.strip()]
    return ctx.profile is None and any("gpu" in n for n in names)


#: a share of a GPU (gres.html: MPS and sharding) or a GPU asked for per task through TRES (--tres-per-task=gres/gpu:1)
_SHARED_GPU = re.compile(r"(?:^|[,=/])(?:shard|mps|gpu)(?::|$)")


def _gpu_share_asked(ctx: Context) -> bool:
    """Whether the job asks for a GPU in a way the GPU fields do not hold: a share of one (--gres=shard:2,
    --gres=mps:50) or --tres-per-task=gres/gpu:1 (kept as written). The step then sees a GPU, and --nv finds it."""
    job = ctx.job
    others = job.other_gres if isinstance(job.other_gres, (tuple, list)) else (job.other_gres,)
    if any(_SHARED_GPU.search(str(g)) for g in others if g):
        return True
    return any(str(d).startswith("--tres-per-task") and "gres/gpu" in str(d) for d in job.extra_directives)


def _gpus_come_with_the_node(ctx: Context) -> bool:
    """Whether ``--exclusive`` gives the job GPUs: it is allocated all CPUs and generic resources of its nodes
    (sbatch(1)), so on a GPU node it holds the GPUs without asking; with a profile, only on a partition it says has
    GPUs."""
    if ctx.job.exclusive is not True:
        return False
    part = ctx.profile.entry_for(ctx.job) if ctx.profile is not None else None
    return ctx.profile is None or (part is not None and bool(part.gpus_per_node))


@rule("HPC202", "gpu-flag-without-gpus", "warning",
      summary="--nv/--rocm/--nvccli is used but the job requests no GPU",
      why="On a node without a GPU allocation the flag only produces driver warnings; usually the GPU request "
          "(--gres=gpu:N) was forgotten, and the training runs on the CPU. An instance started with the flag "
          "(apptainer instance start --nv) is reported at its start, where its exec/run instance:// steps get their "
          "GPU setup from. Without a profile it is not reported on a "
          "partition named as a GPU one (gpu-a100): some sites give a whole GPU node with the partition alone. An "
          "--exclusive job is allocated all the generic resources of its nodes, GPUs among them (with a profile: on "
          "a partition with GPUs), so --nv in its batch shell finds them; but a step srun starts there gets only "
          "the GPUs it asks for itself (srun(1), --gres: not those 'implicitly requested when a job is "
          "exclusive'), which is reported. A share of a GPU (--gres=shard:N, --gres=mps:N) or "
          "--tres-per-task=gres/gpu:N counts as a GPU request. "
          "A script that asks for no resources at all (no node, task, CPU, GPU, memory or other gres count: a "
          "command on its own, or a job whose resources are all given on sbatch's command line, as HPC521 reads it "
          "too) says nothing about GPUs either way, and is left alone.",
      fix="Request GPUs (--gres=gpu:N or --gpus-per-node=N), or drop --nv for CPU work.",
      catalogue=(6,),
      bad="""#!/bin/bash
#SBATCH --partition=cpu
#SBATCH --cpus-per-task=8
apptainer exec --nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nv pytorch_2.3.sif python train.py
""")
@each_component
def _gpu_flag_no_gpus(ctx: Context) -> Iterator[Any]:
    job = ctx.job
    if resources_from_command_line(job):
        return  # no resource asked for: the GPUs may come from sbatch's command line, or this is a command on its own
    zero = 0 in (job.gpus_per_node, job.gpus, job.gpus_per_task)  # --gres=gpu:0: none, whatever the partition
    if job.gpus_on_each_node or (_gpus_come_with_partition(ctx) and not zero) or _gpu_share_asked(ctx):
        return
    exclusive = _gpus_come_with_the_node(ctx) and not zero
    for line, flag, srun, what in _gpu_flag_users(ctx):
        if not exclusive and ctx.parsed.heterogeneous:
            # a heterogeneous job: name the component the step runs in, and the ones that have GPUs
            here = getattr(ctx, "component", 0)
            with_gpus = [k for k in _components_with_gpus(ctx) if k != here]
            elsewhere = (f" (component {with_gpus[0]} has GPUs: srun --het-group={with_gpus[0]} runs the step "
                         f"there)" if with_gpus else "")
            yield line, (f"{flag} is set{what} but component {here} of the heterogeneous job, where this step runs, "
                         f"requests no GPU{elsewhere}; add --gres=gpu:N to component {here} or drop {flag}")
        elif not exclusive and srun is not None and own_gpu_request(srun):
            # the step asks for GPUs (Frontier's srun --gpus-per-task=1): right only where the job has whole nodes
            yield line, (f"{flag} is set{what} and this srun step asks for GPUs, but the job requests none: a step "
                         "is given only what the job holds, so where nodes are shared it fails ('Invalid generic "
                         "resource (gres) specification'); ask for the GPUs in the job's #SBATCH lines (or, on a "
                         "site that gives whole nodes with their GPUs, add #SBATCH --exclusive, or lint with that site's --profile)")
        elif not exclusive:
            yield line, f"{flag} is set{what} but the job requests no GPU; add --gres=gpu:N or drop {flag}"
        elif srun is not None and not own_gpu_request(srun):
            # srun(1) --gres: a step gets the job's GRES "except those implicitly requested when a job is exclusive"
            yield line, (f"{flag} is set{what} but this srun step gets no GPU: the --exclusive job holds its nodes' "
                         "GPUs, but a step is given only GPUs it asks for; add --gpus-per-node=N (or --gres=gpu:N) to "
                         "srun or to the job")


def _components_with_gpus(ctx: Context) -> list[int]:
    """The components of a heterogeneous job that ask for GPUs, each read from its own #SBATCH lines (also from the
    view of a later component, whose ``ctx.job`` is that component alone)."""
    def make() -> list[int]:
        from ..parse.script import read_script
        lines: dict[int, list[str]] = {}
        for d in ctx.parsed.directives:
            text = ctx.parsed.lines[d.line - 1]
            if d.applied and text not in lines.get(d.component, []):
                lines.setdefault(d.component, []).append(text)
        found = []
        for component, directives in sorted(lines.items()):
            try:
                job = read_script("\n".join(["#!/bin/bash", *directives, "true", ""])).job
            except ParseError:
                continue
            if job.gpus_on_each_node or job.gpus or job.gpus_per_task:
                found.append(component)
        return found
    return cached(ctx, "components_with_gpus", make)


def _gpu_flag_users(ctx: Context) -> list[tuple[int, str, Any, str]]:
    """The commands of the job's component that pass GPUs into a container, in order: ``(line, flag, srun, what)``
    for each apptainer exec/run/shell with --nv, --nvccli or --rocm, and each ``instance start`` with one (the
    instance holds the GPU setup its exec/run instance:// steps use), where ``srun`` is the step's srun model (None in
    the batch shell) and ``what`` names the instance for the message."""
    out = []
    for step in job_component_steps(ctx):
        c = step.chain.container
        if c is not None and c.kind == "apptainer.run" and (c.nv or c.nvccli or c.rocm):
            flag = "--nv" if c.nv else "--nvccli" if c.nvccli else "--rocm"
            out.append((step.line, flag, step.chain.srun, ""))
    by_line = {s.line: s for s in steps(ctx)}
    for start in instance_starts(ctx):
        step = by_line.get(start.line)  # srun … apptainer instance start: a step; in the batch shell: none
        # the batch shell runs in the first component of a heterogeneous job
        here = in_job_component(ctx, step) if step is not None else not getattr(ctx, "component", 0)
        if not start.gpu_flag or not here:
            continue
        out.append((start.line, start.gpu_flag, step.chain.srun if step is not None else None,
                    f" on {start.binary} instance start {start.name}"))
    return sorted(out, key=lambda item: item[0])


@rule("HPC203", "flags-after-image", "error",
      summary="Apptainer options written after the image name",
      why="Everything after the image is handed to the program, so apptainer never sees the option: --nv after "
          "the image means no GPU, --bind after it means no bind, and the program may choke on the unknown flag. "
          "(Only option words where exec expects the program's name are reported: the program's own options are "
          "meant to be there. The arguments of apptainer run go to the image's runscript, which may take options of "
          "its own, so there only the words no runscript takes in that form are reported, at the start of the "
          "arguments: --nv, --nvccli or --rocm (with GPUs or without: the container gets none, on AMD GPUs too, "
          "where HPC201 asks for no flag), and "
          "-B/--bind or --overlay with a host path, such as --bind /scratch/data:/data, with which the job runs "
          "without its data; a server's --bind 0.0.0.0:8000 is left alone, and no fix is offered.) Where the "
          "profile says whose GPUs the job gets, a misplaced flag of the other vendor (--nv or --nvccli on AMD "
          "GPUs, --rocm on NVIDIA ones) is not moved as written, which would only give HPC218: the message and the "
          "fix put the site's flag before the image instead.",
      fix="Move the options before the image: apptainer exec --nv --bind SRC:DST IMAGE program … (the flag of the "
          "site's GPUs where the profile names them: --rocm for AMD, --nv for NVIDIA).",
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
    yield from _run_flags_after_image(ctx)
    for step in steps(ctx):
        c = step.chain.container
        # run: every word after the image is the runscript's argument ("-c configs/x.yaml" is its own option);
        # exec: only option words where the program's name belongs, right after the image, are misplaced
        if c is None or c.kind != "apptainer.run" or c.action != "exec" or step.chain.launcher is not None:
            continue
        if misdashed_options(step, c):
            continue  # -bind /data IMG: the reader took the bind for the image; HPC233 names the cause
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
        written = " ".join(moved)
        wrong, right = _other_vendor_flag(ctx, moved)
        if wrong:  # the site's flag goes before the image, not the one written (HPC218 would report that)
            moved = [w for w in moved if w not in _GPU_FLAGS_OF[_VENDOR_OF_FLAG[wrong]]]
            if not getattr(c, right.lstrip("-")):
                moved.append(right)
        fixed = parse_argv([c.binary, c.action, *moved, c.image]).model
        merged = c.replace(**{f.name: (getattr(c, f.name) + getattr(fixed, f.name)) if f.is_tuple else
                              (getattr(fixed, f.name) or getattr(c, f.name))
                              for f in c.field_specs() if f.info.role == "option"})
        if not program and step.chain.launcher is None:
            continue
        chain = type(step.chain)(step.chain.srun, merged, step.chain.launcher, tuple(program), step.chain.notes)
        if wrong:
            yield (step.line, f"{written} comes after the image {c.image}, so it is passed to the program, not to "
                              f"{c.binary}; and {wrong} is for {_VENDOR_NAMES[_VENDOR_OF_FLAG[wrong]]} GPUs, while the "
                              f"GPUs of {_vendor_place(ctx)} are {_VENDOR_NAMES[profile_vendor(ctx)]}: use {right} "
                              "before the image", fix_for(ctx, f"use {right} before the image", step, chain))
            continue
        yield (step.line, f"{' '.join(moved)} comes after the image {c.image}, so it is passed to the program, not to "
                          f"{c.binary}; move it before the image", fix_for(ctx, "move the options before the image", step, chain))


#: Apptainer's GPU flags by vendor (--nvccli sets NVIDIA's GPUs up too), the vendor each flag is for, and how
#: messages name a vendor
_GPU_FLAGS_OF = {"nvidia": ("--nv", "--nvccli"), "amd": ("--rocm",)}
_VENDOR_OF_FLAG = {flag: vendor for vendor, flags in _GPU_FLAGS_OF.items() for flag in flags}
_VENDOR_NAMES = {"nvidia": "NVIDIA", "amd": "AMD"}


def _other_vendor_flag(ctx: Context, words: list[str]) -> tuple[str, str]:
    """``(flag, site's flag)`` when ``words`` hold a GPU flag of the other vendor than the one whose GPUs the job
    gets by the profile (:func:`profile_vendor`: NVIDIA or AMD), e.g. ``("--nv", "--rocm")`` on an AMD site;
    ``("", "")`` otherwise (no profile, or one that names Intel GPUs, none, or cannot tell)."""
    vendor = profile_vendor(ctx)
    if vendor not in _GPU_FLAGS_OF:
        return "", ""
    wrong = next((w for w in words if _VENDOR_OF_FLAG.get(w, vendor) != vendor), "")
    return (wrong, _GPU_FLAGS_OF[vendor][0]) if wrong else ("", "")


#: the options after the image of apptainer run that only Apptainer takes in that form: no runscript's own (a
#: server's --bind 0.0.0.0:8000, a trainer's -B 32 are not paths, so they are left alone)
_RUN_GPU_FLAGS = ("--nv", "--nvccli", "--rocm")
_RUN_PATH_OPTIONS = ("-B", "--bind", "--overlay", "-o")


def _path_like(word: str) -> bool:
    """A host path as a bind or an overlay names it: /scratch/data, $SCRATCH/x, ~/data, ./x (each item of a
    SRC[:DST[:OPTS]],… list: every source and destination must be one)."""
    items = [piece for item in word.split(",") for piece in item.split(":")[:2]]
    return bool(items) and all(re.match(r"(?:/|\$|~|\.{1,2}/)", piece) for piece in items if piece) \
        and bool(items[0])


def _run_flags_after_image(ctx: Context) -> Iterator[Any]:
    """HPC203 for apptainer run: its words after the image go to the runscript, so only those no runscript takes in
    that form are reported, where they stand at the start of the arguments: --nv, --nvccli, --rocm (as for exec,
    HPC201 then leaves the step alone: the flag is there, only misplaced) and -B/--bind or --overlay with a host
    path. No fix: the runscript's own arguments are the person's to sort."""
    for step in steps(ctx):
        c = step.chain.container
        if c is None or c.kind != "apptainer.run" or c.action != "run" or step.chain.launcher is not None:
            continue
        words = [str(w) for w in (getattr(c, "command", ()) or step.chain.program)]
        moved: list[str] = []
        k = 0
        while k < len(words):
            word = words[k]
            name, eq, value = word.partition("=")
            if word in _RUN_GPU_FLAGS:
                moved.append(word)
                k += 1
            elif name in _RUN_PATH_OPTIONS and (value if eq else k + 1 < len(words)) \
                    and _path_like(value if eq else words[k + 1]):
                moved.append(word if eq else f"{word} {words[k + 1]}")
                k += 1 if eq else 2
            else:
                break  # the runscript's own arguments from here on
        if not moved:
            continue
        kinds = {m.split()[0].partition("=")[0] for m in moved}
        wrong, right = _other_vendor_flag(ctx, moved)
        # --rocm: a ROCm image still reaches AMD GPUs through the host's /dev, so what is lost is what the flag binds
        # (where the profile's vendor is AMD; the other vendor's flag is named as a lost GPU flag)
        gpu_parts = (("the GPUs", _RUN_GPU_FLAGS),) if wrong else (
            ("the GPUs", ("--nv", "--nvccli")), ("the host's ROCm libraries and tools that --rocm binds", ("--rocm",)))
        parts = [what for what, flags in (*gpu_parts, ("these binds", ("-B", "--bind")),
                                          ("the overlay", ("--overlay", "-o"))) if kinds & set(flags)]
        lost = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
        if wrong:
            how = (f"{wrong} is for {_VENDOR_NAMES[_VENDOR_OF_FLAG[wrong]]} GPUs, while the GPUs of "
                   f"{_vendor_place(ctx)} are {_VENDOR_NAMES[profile_vendor(ctx)]}: use {right} before the image"
                   + (", and move the rest there too" if kinds - set(_RUN_GPU_FLAGS) else ""))
        else:
            how = "move it before the image"
        yield (step.line, f"{' '.join(moved)} comes after the image {c.image}, so {c.binary} run hands it to the "
                          f"image's runscript as an argument, and the container runs without {lost}; {how}")


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


def as_bash_passes(ctx: Context, value: Any, line: int) -> str:
    """A path word as the runtime gets it, the script's variables substituted: a ``~`` bash expands (unquoted at a
    word's start, ``-B ~/data``; or where a variable is set, ``R=~``, as
    :meth:`~hpcwidgets.parse.script.ParsedScript.resolve` reads it) is written ``$HOME``, so a ``~`` the value still
    starts with is a literal one, quoted where it is written (``"~/x.sif"``, ``R="~"``): a folder named ``~`` in the
    current directory, not the home folder."""
    return ctx.parsed.resolve(str(_bash_tilde(value)), line)


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
          "reported; $HOME bound somewhere else, or with --no-home, --contain, --containall or Charliecloud, is.) "
          "Apptainer reads APPTAINER_BIND (and APPTAINER_BINDPATH, SINGULARITY_BIND, SINGULARITY_BINDPATH) as "
          "--bind, so export APPTAINER_BIND=/ is the same bind, reported at the line that sets it.",
      fix="Bind only the directories the job needs, e.g. --bind \"$SCRATCH/data:/data:ro\".",
      catalogue=(9,),
      bad="""#!/bin/bash
apptainer exec --bind /:/host pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
apptainer exec --bind "$SCRATCH/data:/data:ro" pytorch_2.3.sif python train.py
""")
def _broad_bind(ctx: Context) -> Iterator[Any]:
    seen: set[tuple[int, str]] = set()
    for step, c in containers(ctx):
        for line, message in _broad_binds_of(ctx, step, c):
            if (line, message) not in seen:  # an exported APPTAINER_BIND reaches every step: reported once, at it
                seen.add((line, message))
                yield line, message


def _broad_binds_of(ctx: Context, step: Any, c: Any) -> Iterator[tuple[int, str]]:
    """HPC204's findings for one container. Each bind's host path is read as the runtime gets it
    (:func:`as_bash_passes`): an unquoted ``~`` (``-B ~``, or ``R=~`` then ``-B $R``) is the home folder, a quoted
    one (``-B "~"``, ``R="~"``) a folder named ``~`` in the current directory, which HPC219 reports."""
    binds = getattr(c, "binds", ())
    for shown, b in zip(_bash_binds(binds), _bash_binds(binds, home="$HOME")):  # shown: the ~ as written
        src = as_bash_passes(ctx, b.src, step.line)
        if not src or src.startswith("~"):
            continue  # a variable the script leaves empty (a placeholder), or a quoted ~: no home folder, let alone /
        src = src.rstrip("/") or "/"
        if src in HOME_BINDS and _mounts_home(c):
            dst = as_bash_passes(ctx, b.dst, step.line).rstrip("/")
            if not dst or dst in HOME_BINDS:
                continue  # Apptainer mounts $HOME there anyway: the bind changes nothing
            # named as the line runs it: Apptainer or Singularity mount the home by default, ch-run with --home
            program = str(getattr(c, "binary", "")).rsplit("/", 1)[-1]
            mounts, keep_out = (("ch-run --home", "drop --home") if c.kind == "charliecloud.run" else
                                ({"apptainer": "Apptainer", "singularity": "Singularity"}.get(program, program),
                                 "add --no-home"))
            flag = "-b" if c.kind == "charliecloud.run" else "--bind"
            yield (step.line, f"{flag} {shown.to_token()} puts your whole home directory (keys, tokens, ~/.local) in "
                              f"the container a second time, at {dst}; {mounts} already mounts $HOME: bind only the "
                              f"directories the job needs, and {keep_out} to keep the rest out")
            continue
        if src in BROAD_BINDS:
            flag = "-b" if c.kind == "charliecloud.run" else "--bind"
            yield (step.line, f"{flag} {shown.to_token()} exposes {BROAD_BINDS[src]} inside the container; bind only "
                              "the directories the job needs")
    from .shell import environment_binds
    for name, line, b in environment_binds(ctx, step, c):  # APPTAINER_BIND=/ (or SINGULARITY_BIND): read as --bind
        src = as_bash_passes(ctx, b.src, step.line)
        if not src or src.startswith("~"):
            continue  # a variable the script leaves empty, or a quoted ~ (a folder of that name)
        src = src.rstrip("/") or "/"
        if src in HOME_BINDS and _mounts_home(c):
            dst = as_bash_passes(ctx, b.dst, step.line).rstrip("/")
            if dst and dst not in HOME_BINDS:
                yield (line, f"{name} binds {b.to_token()}, which the runtime reads as --bind: it puts your whole home "
                             f"directory (keys, tokens, ~/.local) in the container a second time, at {dst}; bind only "
                             "the directories the job needs")
        elif src in BROAD_BINDS:
            yield (line, f"{name} binds {b.to_token()}, which the runtime reads as --bind: it exposes "
                         f"{BROAD_BINDS[src]} inside the container; bind only the directories the job needs")


@rule("HPC205", "charliecloud-bind-destination", "info",
      summary="ch-run binds to a destination that may not exist in the read-only image",
      why="ch-run cannot create a bind destination in a read-only image (a SquashFS file, or a directory without "
          "-w or -W/--write-fake, which make it writable and let ch-run create the destination); the run stops with "
          "'can't bind: destination not found'. Images built by ch-image have /mnt/0 … /mnt/9 for this.",
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
        if c.kind != "charliecloud.run" or getattr(c, "write", False) or _write_fake(c) or b.mode:
            continue  # (a bind with ':ro' is HPC219's: ch-run has no bind modes)
        dst = str(b.dst or b.src)
        if not re.match(r"^/mnt/\d(/|$)", dst):
            # shown as written: \$ is a dollar the batch shell left for an inner sh -c
            token, shown = b.to_token().replace("\\$", "$"), dst.replace("\\$", "$")
            yield (step.line, f"-b {token}: {shown} must already exist in the read-only image; bind to /mnt/0 … "
                              "/mnt/9 or create it in the Dockerfile")


def _write_fake(c: Any) -> bool:
    """Whether a ch-run has -W/--write-fake (a tmpfs over the image, where a bind creates its destination)."""
    return any(str(w) == "--write-fake" or str(w).startswith(("--write-fake=", "-W"))
               for w in list_items(getattr(c, "extra", ())))


#: the user's own home directory: $HOME, ~, /home/$USER (a literal /home/NAME may be a site folder such as
#: /home/software, so it is not counted)
_HOME_PATH = re.compile(r"^(\$HOME|\$\{HOME\}|~)(/|$)"
                        r"|^/home/(\$USER|\$\{USER\}|\$LOGNAME|\$\{LOGNAME\}|\$\(whoami\)|\$\(id -un\))(/|$)")


def _under_home(path: str) -> bool:
    return bool(_HOME_PATH.match(path))


#: folders of a home directory that sites make links to other storage: the Digital Research Alliance of Canada's
#: ~/scratch, ~/projects and ~/nearline, NASA's ~/nobackup, ~/work and ~/project elsewhere
_LINKED_HOME_FOLDER = re.compile(r"^(?:\$HOME|\$\{HOME\}|~|/home/[^/]+)/(?:scratch|projects?|nearline|nobackup\w*|work)"
                                 r"(?:/|$)")


def _in_home_storage(path: str) -> bool:
    """Whether ``path`` is under the user's home directory (:func:`_under_home`) and on its storage, with its quota:
    not in one of the folders sites link to scratch or project storage (~/scratch, ~/projects/def-…)."""
    return _under_home(path) and not _LINKED_HOME_FOLDER.match(path)


#: a literal /home/NAME/… path (group 1: /home/NAME); NAME as user names are written (lower case, digits, _ . -)
_LITERAL_HOME = re.compile(r"^(/home/[a-z_][a-z0-9_.-]*)/")

#: /home/NAME folders that sites use for shared storage rather than a user's home (/home/software, /home/share)
_SHARED_HOME_FOLDERS = frozenset({
    "apps", "app", "common", "containers", "data", "datasets", "group", "groups", "images", "lab", "labs", "local",
    "models", "modules", "opt", "packages", "proj", "project", "projects", "public", "scratch", "share", "shared",
    "singularity", "apptainer", "soft", "software", "sw", "tools", "work"})


def _literal_home(ctx: Context, path: str) -> str | None:
    """The home directory (``/home/NAME``) a literal path is in (``/home/alice/containers/x.sif``): most sites keep
    their users' homes at /home/NAME. None for a path elsewhere, for a /home folder sites use for shared storage
    (/home/software, /home/share …), and, with a profile, for a folder its storage settings (scratch, image_dir,
    cache_dir, node_local, the examples' image or data_dir) place under /home: that site's storage lives there."""
    m = _LITERAL_HOME.match(path)
    if m is None or m.group(1).rsplit("/", 1)[-1] in _SHARED_HOME_FOLDERS:
        return None
    if ctx.profile is not None:
        examples = getattr(ctx.profile, "examples", None)
        folders = [getattr(ctx.profile, name, "") for name in ("scratch", "image_dir", "cache_dir", "node_local")]
        folders += [getattr(examples, name, "") for name in ("image", "data_dir")]
        if any(str(f) == m.group(1) or str(f).startswith(m.group(1) + "/") for f in folders):
            return None
    return m.group(1)


def _home_note(ctx: Context, path: str) -> tuple[str, str] | None:
    """How HPC206 says where ``path`` (as :func:`as_bash_passes` gives it) is, and the doubt that goes at the end of
    its message: "under $HOME" for $HOME or /home/$USER; for a literal /home/NAME path (:func:`_literal_home`) a home
    directory by its name, with the note that a site may keep project storage there; None elsewhere, also for a
    path that starts with a quoted ``~`` (a folder named ``~``: HPC219 says so)."""
    if path.startswith("~"):
        return None
    if _under_home(path):
        return ("under $HOME", "") if _in_home_storage(path) else None
    home = _literal_home(ctx, path) if not _LINKED_HOME_FOLDER.match(path) else None
    if home is None:
        return None
    return f"in {home}, by its name a home directory", f" (if {home} is project storage on this site, ignore this)"


def _shown(ctx: Context, value: str, line: int) -> str:
    """A path as messages show it: ``value`` with the script's variables substituted
    (:meth:`~hpcwidgets.parse.script.ParsedScript.resolve`), in the spelling of an assignment that starts with a ~
    (IMG=~/containers/x.sif shows ~/containers/x.sif, as the script writes it; resolve gives $HOME/…)."""
    written = ctx.parsed.resolve_written(value, line)
    return written if written.startswith("~") else ctx.parsed.resolve(value, line)


@rule("HPC206", "image-in-home", "warning",
      summary="a container image is stored under $HOME",
      why="Images are gigabytes and home directories have small quotas (and are often slow, backed-up NFS): the "
          "pull fails half-way or fills the quota, and every job reads the image over the slowest file system. "
          "A container that mpirun or mpiexec on the host starts (mpiexec -np 64 singularity exec IMAGE …) counts "
          "too: there every rank on every node opens the image. The path is read through the script's variables, "
          "also one set with a ~ (IMG=~/containers/x.sif: bash expands a ~ at the start of an assignment's value). "
          "Most sites keep their users' homes at /home/NAME, so a literal /home/alice/… path counts as well, with a "
          "note that it may be project storage; /home folders sites use for shared storage (/home/software, "
          "/home/share, /home/projects …) are left alone, and so are the folders of a home that sites link to "
          "scratch or project storage (~/scratch, ~/projects/def-…, ~/nearline, ~/nobackup, ~/work) and, with a "
          "cluster profile, a folder its storage settings (scratch, image_dir, cache_dir, node_local) place under "
          "/home.",
      fix="Keep images on scratch or project storage, e.g. $SCRATCH/images/pytorch_24.05.sif (with a profile, the "
          "message names its image_dir).",
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
    images = _site_folder(ctx, "image_dir")
    for step, c in containers(ctx):
        home = _home_note(ctx, as_bash_passes(ctx, c.image, step.line))
        if home:
            image = _shown(ctx, str(c.image), step.line)
            yield (step.line, f"the image {image} is {home[0]} (small quota, slow); keep images on scratch, e.g. "
                              f"{images}{home[1]}")
    for line, launcher, c in host_mpirun_containers(ctx):
        home = _home_note(ctx, as_bash_passes(ctx, c.image, line))
        if home:
            image = _shown(ctx, str(c.image), line)
            yield (line, f"the image {image} is {home[0]} (small quota, slow), and every rank {launcher} starts "
                         f"opens it; keep images on scratch, e.g. {images}{home[1]}")
    for cmd, model in pulls(ctx):
        given = getattr(model, "dir", "") or getattr(model, "dest", "") or ""
        written = str(given)
        home = _home_note(ctx, as_bash_passes(ctx, given, cmd.line))
        if home:
            target = _shown(ctx, written, cmd.line)
            yield (cmd.line, f"the image is pulled into {target}, {home[0]} (small quota); pull into scratch, e.g. "
                             f"--dir \"{images}\"{home[1]}")


def host_mpirun_containers(ctx: Context) -> list[tuple[int, str, Any]]:
    """``(line, launcher, container model)`` for each container an MPI launcher in the batch shell starts
    (``mpiexec -np 12 singularity exec IMAGE …``), also in functions, loops and ``bash -c`` scripts: the reader makes
    no step of these, as mpirun is no layer of the models."""
    from ..parse.argv import parse_chain
    read = {s.command for s in steps(ctx)}
    out = []
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = launch_words([str(v) for v in cmd.argv])
        if cmd in read or not words or words[0].rsplit("/", 1)[-1] not in MPI_LAUNCHERS:
            continue
        # the values as the lexer gives them, where they end the command as written: an unquoted ~ stays Verbatim
        values = list(cmd.argv)[len(cmd.argv) - len(words):]
        given = values if [str(v) for v in values] == words else words
        try:
            chain = parse_chain(given[1 + _mpirun_split(words[1:])[1]:], source_line=cmd.line)
        except ParseError:
            continue  # a container command the models cannot read: the rules that read it say why
        if chain.srun is None and chain.container is not None:
            out.append((cmd.line, words[0], chain.container))
    return out


def _site_folder(ctx: Context, name: str, binary: str = "apptainer") -> str:
    """Where the site keeps images (``image_dir``) or the Apptainer cache (``cache_dir``): the profile's folder,
    or without a profile one under $SCRATCH (``$SCRATCH/.singularity/cache`` for singularity's cache)."""
    if ctx.profile is not None:
        return str(getattr(ctx.profile, name))
    return "$SCRATCH/images" if name == "image_dir" else f"$SCRATCH/.{binary}/cache"


CACHE_VARS = ("APPTAINER_CACHEDIR", "SINGULARITY_CACHEDIR")


def cache_vars(binary: str) -> tuple[str, ...]:
    """The cache variables a runtime reads: Apptainer both names, ``singularity`` only SINGULARITY_CACHEDIR
    (SingularityCE ignores APPTAINER_CACHEDIR; Apptainer's singularity command reads it as well)."""
    return ("SINGULARITY_CACHEDIR",) if binary == "singularity" else CACHE_VARS


@rule("HPC207", "apptainer-cache-in-home", "warning",
      summary="an image is fetched from a registry with the Apptainer cache (or its temporary folder) left in or "
              "set to $HOME, or built with its temporary folder set there",
      why="apptainer pull, apptainer exec/run docker://… and apptainer build … docker://… store every downloaded "
          "layer (and the converted image) in APPTAINER_CACHEDIR, which defaults to $HOME/.apptainer/cache "
          "($HOME/.singularity/cache for singularity): a few images fill the home quota and later jobs fail to "
          "write anything. APPTAINER_TMPDIR (SINGULARITY_TMPDIR) set under $HOME does the same while the image is "
          "unpacked and built there, even with --disable-cache. A build from a definition file, a sandbox or a local "
          "image (apptainer build --fakeroot app.sif app.def) uses the temporary folder as much: the image's whole "
          "root file system is assembled there, uncompressed, so it is reported there too (build's own --tmpdir "
          "takes the variable's place). With neither set, Apptainer uses TMPDIR (apptainer-build(1): the temporary "
          "folder defaults to /tmp, TMPDIR overrides that, and APPTAINER_TMPDIR overrides both), so TMPDIR under "
          "$HOME is reported as well. A folder mktemp makes counts where mktemp makes it "
          "(APPTAINER_TMPDIR=$(mktemp -d \"$HOME/build.XXXX\"), mktemp -d -p \"$HOME\" or --tmpdir=\"$HOME\": "
          "mktemp(1) makes its TEMPLATE in the -p or --tmpdir folder, else in $TMPDIR).",
      fix="export APPTAINER_CACHEDIR=\"$SCRATCH/.apptainer/cache\" before fetching the image (and APPTAINER_TMPDIR, "
          "or build's --tmpdir, likewise: a folder on scratch made with mkdir -p); with a profile, the message names "
          "its cache_dir and scratch.",
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
        elsewhere = f"point it at scratch, e.g. {_site_folder(ctx, 'cache_dir', model.binary)}"
        if model.cachedir or any(n in names for n, _ in cmd.assignments):
            written = str(model.cachedir or "")
            if _in_home_storage(ctx.parsed.resolve(written, cmd.line)):
                value = _shown(ctx, written, cmd.line)
                yield cmd.line, f"{model.env_name('APPTAINER_CACHEDIR')}={value} is under $HOME; {elsewhere}"
            continue
        var = next((v for v in (ctx.parsed.variable(n, cmd.line) for n in names) if v is not None), None)
        if var is None:
            yield (cmd.line, _default_cache_message(ctx, f"{model.binary} pull", model.binary, cmd.line))
        elif _in_home_storage(_folder_named(ctx, str(var.value), cmd.line)[0]):
            reported.add(var.line)
            yield var.line, f"{var.name}={var.value} is under $HOME (small quota); {elsewhere}"
    defaulted: set[str] = set()
    for use in registry_uses(ctx):
        if use.no_cache:
            continue
        env = dict(use.env)
        names = cache_vars(use.binary)
        elsewhere = f"point it at scratch, e.g. {_site_folder(ctx, 'cache_dir', use.binary)}"
        own = next((n for n in names if n in env), None)
        if own is not None:
            if _in_home_storage(_folder_named(ctx, env[own], use.line)[0]):
                yield use.line, f"{own}={env[own]} is under $HOME; {elsewhere}"
            continue
        var = next((v for v in (ctx.parsed.variable(n, use.line) for n in names) if v is not None), None)
        if var is None:
            if use.binary not in defaulted:  # one finding for the steps that all use the default cache
                defaulted.add(use.binary)
                yield use.line, _default_cache_message(ctx, use.what, use.binary, use.line) + _others_default(
                    ctx, use, names)
        elif var.line not in reported and _in_home_storage(_folder_named(ctx, str(var.value), use.line)[0]):
            reported.add(var.line)
            yield var.line, f"{var.name}={var.value} is under $HOME (small quota); {elsewhere}"
    yield from _tmpdir_home(ctx)


def _tmp_vars(binary: str) -> tuple[str, ...]:
    """The temporary-folder variables a runtime reads, named as :func:`cache_vars` names the cache's."""
    return tuple(name.replace("CACHEDIR", "TMPDIR") for name in cache_vars(binary))


def _scratch_folder(ctx: Context) -> str:
    """Where to point a temporary folder, in a message: on the profile's scratch when there is a profile."""
    return f"a folder under {ctx.profile.scratch}" if ctx.profile is not None else "a folder on scratch"


#: the output of a command substitution: $(…) or `…`
_SUBSTITUTION = re.compile(r"\$\((?!\()(.*)\)|`(.*)`", re.S)

#: mktemp's default template: what it makes when given none
_MKTEMP_TEMPLATE = "tmp.XXXXXXXXXX"


def mktemp_path(text: str) -> str | None:
    """Where ``text``, the output of ``mktemp`` (``$(mktemp -d -p "$HOME")``, ``"$(mktemp -d "$HOME/b.XXXX")"``), makes
    its file or folder, as the script writes it (``$HOME/tmp.XXXXXXXXXX``); None for any other text, or when the
    folder is the environment's $TMPDIR. GNU mktemp(1): -p DIR and --tmpdir=DIR make the TEMPLATE (tmp.XXXXXXXXXX
    without one) in DIR; --tmpdir without DIR, and no TEMPLATE at all, make it in $TMPDIR (else /tmp); -t in $TMPDIR
    if set, else in -p's DIR, else /tmp; a TEMPLATE alone is a path of its own (relative to the working folder)."""
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1]
    m = _SUBSTITUTION.fullmatch(text)
    if m is None:
        return None
    try:
        words = shlex.split(m.group(1) if m.group(1) is not None else m.group(2))
    except ValueError:
        return None
    if not words or words[0].rsplit("/", 1)[-1] != "mktemp":
        return None
    folder: str | None = None  # -p DIR, --tmpdir=DIR
    in_tmpdir = t_option = False
    template = None
    k = 1
    while k < len(words):
        word = words[k]
        if word == "--":
            template = words[k + 1] if k + 1 < len(words) else None
            break
        if word.startswith("--"):
            name, eq, given = word.partition("=")
            if name == "--tmpdir":
                in_tmpdir, folder = True, (given or None) if eq else None
            elif name == "--suffix" and not eq:
                k += 1
        elif word.startswith("-") and len(word) > 1:
            letters = word[1:]
            for j, letter in enumerate(letters):
                if letter == "t":
                    t_option = True
                elif letter == "p":
                    if j + 1 < len(letters):
                        folder = letters[j + 1:]
                    else:
                        k += 1
                        folder = words[k] if k < len(words) else None
                    in_tmpdir = True
                    break
        else:
            template = word
        k += 1
    if t_option:
        return None  # $TMPDIR comes first, and the job's environment may set it
    if template is None or in_tmpdir:
        return f"{folder or '$TMPDIR'}/{template or _MKTEMP_TEMPLATE}"
    return template


def _folder_named(ctx: Context, value: str, line: int) -> tuple[str, bool]:
    """The folder ``value`` names, with the script's variables substituted, and whether mktemp makes it there (the
    value is its output, also through a variable: T=$(mktemp -d -p "$HOME"); APPTAINER_TMPDIR=$T)."""
    made = mktemp_path(ctx.parsed.resolve_written(value, line))
    return (ctx.parsed.resolve(made, line), True) if made is not None else (ctx.parsed.resolve(value, line), False)


def _tmpdir_home(ctx: Context) -> Iterator[Any]:
    """HPC207 for APPTAINER_TMPDIR (SINGULARITY_TMPDIR) set under $HOME before a pull, a build or a run of a registry
    image: the layers are unpacked and the image is built there, whatever the cache holds. A build from a definition
    file, a sandbox or a local image uses it as much: the image's whole root file system is assembled there
    (apptainer build: the temporary folder must hold the entire image, uncompressed). build's own --tmpdir comes
    first."""
    unpacks = "unpacks the image's layers and builds the image there"
    uses = [(cmd.line, f"{model.binary} pull", model.binary, {n: str(w.value) for n, w in cmd.assignments}, None,
             unpacks) for cmd, model in pulls(ctx) if model.kind == "apptainer.pull"]
    uses += [(use.line, use.what, use.binary, dict(use.env), None, unpacks) for use in registry_uses(ctx)
             if not use.output]  # exec and run: the builds follow
    for cmd, model in builds(ctx):
        ref = ctx.parsed.resolve(str(model.source), cmd.line)
        registry = ref.startswith(REGISTRY_SCHEMES)
        what = f"{model.binary} build … {ref.split('://')[0]}://…" if registry else f"{model.binary} build"
        uses.append((cmd.line, what, model.binary, {n: str(w.value) for n, w in cmd.assignments},
                     _build_tmpdir(model), unpacks if registry else "assembles the image's whole root file system "
                     "there, uncompressed"))
    reported: set[int] = set()  # one finding per assignment
    for line, what, binary, env, option, does in sorted(uses, key=lambda u: u[0]):
        own = _tmp_vars(binary)
        found = (line, "--tmpdir", option) if option is not None \
            else _set_for(ctx, line, env, own) or _set_for(ctx, line, env, ("TMPDIR",))
        if found is None:
            continue
        at, name, value = found
        folder, made = _folder_named(ctx, value, line)
        if at not in reported and _in_home_storage(folder):
            reported.add(at)
            fallback = name == "TMPDIR"  # what the runtime uses when its own variable is unset
            when = f", and with {own[0]} unset" if fallback else ":"
            fix = f"export {own[0]} to" if fallback else "point it at"
            where = f"makes the folder {folder}, under $HOME" if made else "is under $HOME"
            yield (at, f"{name}={value} {where} (small quota){when} {what} {does}; {fix} "
                       f"{_scratch_folder(ctx)} (made with mkdir -p)")


def _others_default(ctx: Context, use: Any, names: tuple[str, ...]) -> str:
    """`` (so do the steps on lines …)`` for the later registry steps of ``use``'s binary that use the default cache
    too ("" when none)."""
    later = [u.line for u in registry_uses(ctx) if u.binary == use.binary and u.line != use.line and not u.no_cache
             and not any(n in dict(u.env) for n in names)
             and all(ctx.parsed.variable(n, u.line) is None for n in names)]
    if not later:
        return ""
    return f" (so do the steps on line{'s' if len(later) > 1 else ''} {', '.join(map(str, later))})"


def _set_for(ctx: Context, line: int, env: dict[str, str], names: tuple[str, ...]) -> tuple[int, str, str] | None:
    """Where and to what the first of the variables ``names`` is set for the command at ``line``: before it on its
    line (``env``: NAME=value apptainer pull …), or by an assignment above it; None when by neither."""
    here = next((n for n in names if n in env), None)
    if here is not None:
        return line, here, env[here]
    var = next((v for v in (ctx.parsed.variable(n, line) for n in names) if v is not None), None)
    return (var.line, var.name, str(var.value)) if var is not None else None


def _build_tmpdir(model: Any) -> str | None:
    """The folder a build's own --tmpdir names (it takes the place of APPTAINER_TMPDIR), None without one."""
    extra = [str(e) for e in model.extra]
    for k, word in enumerate(extra):
        if word == "--tmpdir" and k + 1 < len(extra):
            return extra[k + 1]
        if word.startswith("--tmpdir="):
            return word.partition("=")[2]
    return None


def _default_cache_message(ctx: Context, what: str, binary: str, line: int) -> str:
    name = "SINGULARITY_CACHEDIR" if binary == "singularity" else "APPTAINER_CACHEDIR"
    tmp = name.replace("CACHEDIR", "TMPDIR")
    cache = _site_folder(ctx, "cache_dir", binary)
    text = f"{what} downloads the image's layers into $HOME/.{binary}/cache by default (home quota)"
    if any(ctx.parsed.variable(n, line) is not None for n in (tmp, "APPTAINER_TMPDIR", "SINGULARITY_TMPDIR")):
        text += f"; export {name}=\"{cache}\" first"
    else:  # the image is also unpacked and converted in /tmp, often small on compute nodes
        text += (f" and builds it in $TMPDIR or /tmp (often small); export {name}=\"{cache}\" "
                 f"first, and {tmp} to {_scratch_folder(ctx)} (made with mkdir -p)")
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
        out = []
        for step, c in containers(ctx):
            ref = ctx.parsed.resolve(str(c.image), step.line)
            if c.kind != "apptainer.run" or not ref.startswith(REGISTRY_SCHEMES):
                continue
            out.append(RegistryUse(step.line, f"{c.binary} {c.action} {ref.split('://')[0]}://…", c.binary, ref,
                                   no_cache="--disable-cache" in (str(e) for e in c.extra), env=tuple(step.env)))
        for cmd, model in builds(ctx):
            ref = ctx.parsed.resolve(str(model.source), cmd.line)
            if ref.startswith(REGISTRY_SCHEMES):
                out.append(RegistryUse(cmd.line, f"{model.binary} build … {ref.split('://')[0]}://…", model.binary, ref,
                                       str(model.output), is_guarded(ctx, cmd), "--disable-cache" in model.extra,
                                       tuple((n, str(w.value)) for n, w in cmd.assignments)))
        return sorted(out, key=lambda u: u.line)
    return cached(ctx, "registry_uses", make)


#: a container run written anywhere in a script, also where the reader sees no step (a command in a variable, a
#: function's "$@"): apptainer/singularity exec, run, shell or instance start, ch-run, podman-hpc run
_RUNS_AN_IMAGE = re.compile(r"\b(?:apptainer|singularity)\b[^\n;|&]*?\s(?:exec|run|shell|instance)\b|\bch-run\b"
                            r"|\bpodman-hpc\s+run\b")


@rule("HPC208", "pull-every-job", "warning",
      summary="the job script pulls, builds or runs its image from a registry every time it runs",
      why="A pull (or apptainer build … docker://…) downloads and converts gigabytes on the compute node at every "
          "run (and every array task): minutes of charged time, registry rate limits, and a different image if the "
          "tag moved. apptainer exec/run docker://… does the same behind the scenes: every run asks the registry "
          "and converts the image again unless the cache still holds it. A job that runs no container is taken for "
          "a build job, run once to make the image, and its pulls and builds are left alone.",
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
    # a job that runs no container is there to make the image (a build job, run once): its pulls are its purpose
    runs_one = any(True for _ in containers(ctx)) or bool(_RUNS_AN_IMAGE.search(ctx.parsed.source))
    for cmd, model in pulls(ctx) if runs_one else ():
        if not is_guarded(ctx, cmd):
            yield (cmd.line, "the image is pulled on every run of the job; pull it once beforehand or guard the pull "
                             "with [ -f IMAGE ] || …")
    uses = registry_uses(ctx)
    fetched: set[str] = set()
    for use in uses:
        if use.output:
            if not use.guarded and runs_one:
                yield (use.line, f"{use.binary} build makes {use.output} from {use.ref} on every run of the job "
                                 "(download and conversion on the compute node); build it once beforehand or guard "
                                 f"the build with [ -e {use.output} ] || …")  # (-e: a --sandbox is a folder)
            continue
        if use.ref in fetched:
            continue  # one finding per image: its first step, naming the others
        fetched.add(use.ref)
        how = (f"each run downloads {use.ref} and converts it to SIF again (--disable-cache)" if use.no_cache else
               f"each run asks the registry for {use.ref}, and downloads and converts it to SIF again unless it is "
               "cached (or when the tag moved)")
        yield (use.line, f"{use.what} fetches the image while the job runs{_also_on(uses, use)}: {how}; pull it once "
                         f"into a .sif file ({use.binary} pull IMAGE.sif {use.ref}) and run that")


def _also_on(uses: Any, use: Any) -> str:
    """`` (and for the steps on lines 18, 22)`` naming the later steps that fetch ``use``'s image too ("" when none)."""
    later = [u.line for u in uses if u.ref == use.ref and not u.output and u.line != use.line]
    if not later:
        return ""
    return f" (and so do the steps on line{'s' if len(later) > 1 else ''} {', '.join(map(str, later))})"


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
          "so results cannot be reproduced (and a new CUDA may not match the cluster's driver). The images of "
          "Apptainer and Charliecloud are read, and those of the runtimes the models have no layer for: Shifter "
          "(shifter --image=docker:NAME:TAG, the --image option its Slurm plugin adds to sbatch and srun, shifterimg "
          "pull), podman-hpc (run, shared-run, pull; not a name the script builds or tags itself), enroot import and "
          "pyxis's --container-image.",
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
    from .other_runtimes import image_tag, registry_images
    for line, image, where in registry_images(ctx):
        if image_tag(image, where) == "latest":
            yield (line, f"{image} ({where}) uses the moving :latest tag; pin a version (or a @sha256 digest) so the "
                         "job can be reproduced")


@rule("HPC211", "untagged-image", "warning",
      summary="a registry image is referenced without a tag",
      why="Without a tag the registry serves :latest, which moves: the environment changes under the script. "
          "Shifter's image gateway, podman, enroot and pyxis take :latest for a name without a tag too, so their "
          "images are read as HPC210 reads them.",
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
    from .other_runtimes import image_tag, registry_images
    for line, image, where in registry_images(ctx):
        if image_tag(image, where) == "":
            yield line, f"{image} ({where}) has no tag, so the moving :latest is used; pin a version tag or a digest"


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
    one_node = one_node_job(ctx)
    for step, c in containers(ctx):
        prog = [str(w) for w in step.chain.program]
        if prog and prog[0].rsplit("/", 1)[-1] not in RANK_LAUNCHERS:
            prog = _rank_launch_in_script(step.chain.program)  # bash -c "source …/bashrc && mpirun -np 72 …"
        if not prog or prog[0].rsplit("/", 1)[-1] not in RANK_LAUNCHERS or _launches_no_ranks(prog[1:]):
            continue
        if not in_job_component(ctx, step):
            continue  # another component's nodes: their count is not in the model
        srun = step.chain.srun
        spread = srun is not None and (node_range(srun.nodes) or (1, 1))[1] > 1  # srun --nodes=2 of its own
        if one_node and not spread and (srun is None or tasks_per_node(ctx, step) == 1):
            continue  # all ranks in one container on one node: the fully contained model works
        inside = f"{_site_runner(ctx, c)} program"
        yield (step.line, f"{prog[0]} runs inside the container; launch the ranks from the host with "
                          f"srun --mpi=pmix (or pmi2, whichever the image's MPI supports) … {inside}")
    if not one_node:
        yield from _deepspeed_launcher_inside(ctx)


def _rank_launch_in_script(program: Any) -> list[str]:
    """The words of the first MPI launcher (mpirun, mpiexec …) the ``bash -c`` script of a container's ``program``
    runs, past the wrappers before it; [] when it runs none (or there is no such script)."""
    words = [str(w) for w in program]
    at = c_script_in(words)
    text = shell_script_text(program[at]) if at is not None else None
    try:
        code = lex_script(text).code if text else ()
    except ParseError:
        return []
    for cmd in _simple_commands(code):
        launch = launch_words([str(v) for v in cmd.argv])
        if launch and launch[0].rsplit("/", 1)[-1] in RANK_LAUNCHERS:
            return launch
    return []


def _site_runner(ctx: Context, c: Any) -> str:
    """How advice starts a step's container: ``ch-run IMAGE --`` for Charliecloud, else ``PROGRAM exec IMAGE`` with
    the program the line runs (apptainer, singularity), or, where the profile says the site has no such program,
    the one it has (a SingularityCE site's singularity), as HPC414 advises."""
    if c.kind == "charliecloud.run":
        return "ch-run IMAGE --"
    program = str(c.binary).rsplit("/", 1)[-1]
    if ctx.profile is not None and program in ("apptainer", "singularity"):
        from .profile_rules import site_has_program
        if not site_has_program(ctx.profile, program):
            program = next((p for p in ("apptainer", "singularity") if site_has_program(ctx.profile, p)), program)
    return f"{program} exec IMAGE"


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
            start = _site_runner(ctx, step.chain.container).replace("IMAGE", "…")
            yield (launch.line, f"deepspeed --hostfile runs inside the container and starts the other nodes itself "
                                f"({runner}): the command it sends each host (the container's python -u -m "
                                "deepspeed.launcher.launch) runs there outside the container, and the image rarely "
                                f"has {runner} at all; start one deepspeed per node instead: srun --ntasks-per-node=1 bash -c "
                                f"'{start} deepspeed --no_ssh "
                                "--node_rank=$SLURM_NODEID --hostfile … --master_addr=$head_node …'")
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


@rule("HPC141", "hostfile-written-once-per-task", "error",
      summary="a hostfile (or host list) for deepspeed or horovodrun --gloo is written by srun hostname in a job of "
              "several tasks per node, so it names each node once per task",
      why="srun runs its command once per task, so srun hostname in a job of 4 tasks per node prints each node's "
          "name 4 times, and a hostfile written from it lists every node once per task. srun --ntasks-per-node=1 "
          "alone does not help: srun takes the job's task count (SLURM_NTASKS) as its --ntasks, which wins, and "
          "Slurm says \"can't honor --ntasks-per-node set to 1 … Ignoring --ntasks-per-node\". DeepSpeed's launcher "
          "(deepspeed --hostfile or -H, accelerate's --deepspeed_hostfile with its pdsh launcher) reads the hostfile "
          "before it starts anything and refuses a host named twice: 'Hostfile contains multiple entries for HOST, "
          "unable to proceed with launching'. horovodrun --hostfile (and -H) takes one '<hostname> slots=<slots>' per "
          "host, and with Gloo it gives each line its own slots and numbers their local ranks from 0 again, so the "
          "workers crowd onto the nodes listed first, several on one GPU. Left alone: the file piped through sort -u "
          "or uniq, an srun of one task per node (srun --ntasks=N with N the job's nodes, or a step of --nodes=N "
          "--ntasks-per-node=1, which newer Slurm versions honour), horovodrun without --gloo (with MPI the ranks' "
          "local numbers come from mpirun), and mpirun's hostfiles and machinefiles, where one line for each rank is "
          "the usual way to give a node its slots (Open MPI adds the slots of repeated lines and, under Slurm, holds "
          "a node to the slots the allocation gives it).",
      fix="Write the file once per node: scontrol show hostnames \"$SLURM_JOB_NODELIST\" | sed 's/$/ slots=4/' > "
          "hostfile, or run one task per node with the count said too: srun --ntasks-per-node=1 "
          "--ntasks=\"$SLURM_NNODES\" hostname -s | sed 's/$/ slots=4/' > hostfile.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
srun hostname -s | sed 's/$/ slots=4/' > hostfile.txt
deepspeed --hostfile hostfile.txt train.py --deepspeed --deepspeed_config ds.json
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/$/ slots=4/' > hostfile.txt
deepspeed --hostfile hostfile.txt train.py --deepspeed --deepspeed_config ds.json
""")
def _hostfile_once_per_task(ctx: Context) -> Iterator[Any]:
    if ctx.parsed.heterogeneous:
        return  # the job's counts are its first component's only
    writes = _host_writes(ctx)
    reported: set[int] = set()
    for line, reader, option, value in _hostfile_readers(ctx):
        if reader == "horovodrun" and option in ("-H", "--hosts"):  # a host list, built in a variable
            found = _host_list_per_task(ctx, value, line)
            if found is None:
                continue
            at, shown, per_node, source = found
            step, what = None, f"the host list {value}"
        else:
            path = ctx.parsed.resolve(value.strip("'\""), line)
            mine = [w for w in writes if w[1] == path and w[0] < line]
            if not mine or mine[-1][2] is None:
                continue  # the last write before the launch is not srun's (or the file is not written here)
            at, _, step = mine[-1]
            if _edited_between(ctx, path, at, line):
                continue  # a later command drops the repeats (sort -u FILE -o FILE) or may rewrite the file
            per_node = _tasks_on_a_node(ctx, step)
            if per_node is None:
                continue
            shown, what, source = " ".join(str(w.value) for w in step.command.words), value, step
        if at in reported:
            continue
        reported.add(at)
        alone = " (--ntasks-per-node=1 alone is ignored: srun takes the job's task count as its --ntasks)" \
            if re.search(r"--(?:n)?tasks-per-node[= ]1\b", shown) else ""
        if reader == "horovodrun":
            result = (f"horovodrun --gloo {option} {value} (line {line}) gives each line its own slots and numbers its "
                      "local ranks from 0 again, so the workers crowd onto the nodes listed first, several on one GPU")
        else:
            result = (f"{reader} {option} {value} (line {line}) stops before it starts anything ('Hostfile contains "
                      "multiple entries for HOST, unable to proceed with launching')")
        nodes = _nodes_fixed(ctx)
        count = str(nodes) if nodes else '"$SLURM_NNODES"'
        program = " ".join(str(w) for w in source.chain.program)
        fix = None
        srun = step.chain.srun if step is not None else None
        if srun is not None and srun.ntasks is None and srun.ntasks_per_node is None and srun.nodes is None:
            chain = type(step.chain)(srun.replace(ntasks_per_node=1, ntasks=nodes or "$SLURM_NNODES"),
                                     step.chain.container, step.chain.launcher, step.chain.program, step.chain.notes)
            fix = fix_for(ctx, "run srun hostname once per node", step, chain)
        yield (at, f"{shown} runs once per task ({per_node} on a node), so {what} names each node once per task"
                   f"{alone}: {result}; list each node once: scontrol show hostnames \"$SLURM_JOB_NODELIST\", or "
                   f"srun --ntasks-per-node=1 --ntasks={count} {program}", fix)


#: a command that drops repeated lines: sort -u (--unique), uniq, awk '!seen[$0]++'
_DEDUPES = re.compile(r"\bsort\b[^|;&\n]*?\s(?:-[A-Za-z]*u[A-Za-z]*|--unique)\b|\buniq\b|!\s*\w+\[\$\w*\]\s*\+\+")
#: what prints a node's own name in a bash -c script: hostname, uname -n, $SLURMD_NODENAME
_NODE_NAME = re.compile(r"\bhostname\b|\buname\s+(?:-[A-Za-z]*n|--nodename)\b|\$\{?SLURMD_NODENAME\b")


def _prints_node_name(program: list[str]) -> bool:
    """Whether a step's program prints the name of the node each task runs on (``hostname -s``, ``uname -n``,
    ``bash -c 'echo $(hostname) slots=4'``)."""
    if not program:
        return False
    name = program[0].rsplit("/", 1)[-1]
    if name == "hostname":
        return True
    if name == "uname":
        return any(re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*|--nodename", w) for w in program[1:])
    at = c_script_in(program)
    return at is not None and _NODE_NAME.search(program[at]) is not None


def _host_writes(ctx: Context) -> list[tuple[int, str, Any]]:
    """Every file a pipeline of the script writes (> FILE, >> FILE, tee FILE), in order: ``(line, path as
    resolved, step)``, where step is the srun step at the head of the pipeline that prints its node's name once per
    task with nothing after it that drops repeats, else None."""
    by_command = {id(s.command): s for s in steps(ctx) if s.chain.srun is not None}
    out: list[tuple[int, str, Any]] = []
    pipeline: list[Any] = []
    for cmd in (c for c in _simple_commands(ctx.parsed.lexed.code) if not isinstance(c, _Inner)):
        pipeline.append(cmd)
        if cmd.joined_by in ("|", "|&"):
            continue
        head, pipeline = pipeline, []
        step = by_command.get(id(head[0]))
        if step is not None and (not _prints_node_name([str(w) for w in step.chain.program])
                                 or any(_DEDUPES.search(c.text) for c in head[1:])):
            step = None
        for c in head:
            targets = [str(r.target.value) for r in c.redirects if r.op in (">", ">>", ">|") and r.target is not None
                       and r.fd in (None, 1)]
            argv = [str(w) for w in c.argv]
            if argv and argv[0] == "tee":
                targets += [w for w in argv[1:] if not w.startswith("-")]
            for target in targets:
                out.append((c.line, ctx.parsed.resolve(target, c.line), step if c is head[-1] or argv[:1] == ["tee"]
                            else None))
    return out


#: commands that keep every line of a file they read or change (a hostfile they name keeps its repeats)
_KEEP_LINES = frozenset({"cat", "head", "tail", "wc", "ls", "echo", "printf", "sed", "cp", "chmod", "cut", "tr",
                         "paste", "column", "nl", "tee", "test", "[", "rm"})


def _edited_between(ctx: Context, path: str, start: int, end: int) -> bool:
    """Whether a command after line ``start`` and before ``end`` drops the repeated lines of the file ``path``
    (sort -u FILE, uniq FILE) or may rewrite it: one that names the file, or a script named for it
    (python edit_hostfile.py for hostfile.txt), other than those that keep every line (cat, sed …)."""
    name = path.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if not start < cmd.line < end:
            continue
        words = [ctx.parsed.resolve(str(w), cmd.line) for w in cmd.argv]
        text = " ".join(words)
        if name not in text and (len(stem) < 3 or stem not in text):
            continue
        if _DEDUPES.search(text) or not words or words[0].rsplit("/", 1)[-1] not in _KEEP_LINES:
            return True
    return False


def _hostfile_readers(ctx: Context) -> list[tuple[int, str, str, str]]:
    """``(line, launcher, option, value)`` for each hostfile DeepSpeed's launcher reads (deepspeed --hostfile/-H,
    accelerate launch --deepspeed_hostfile where it runs DeepSpeed's multi-node launcher), and each hostfile or host
    list of horovodrun --gloo."""
    out: list[tuple[int, str, str, str]] = []
    for launch in other_launches(ctx):
        opts = launch.options
        if launch.name == "deepspeed":
            option = next((o for o in ("--hostfile", "-H") if opts.get(o)), "")
        else:
            machines = launch.number(ctx, "--num_machines")
            once = machines is not None and machines > 1 and accelerate_path(launch, machines) == "once"
            option = "--deepspeed_hostfile" if once and opts.get("--deepspeed_hostfile") else ""
        if option:
            out.append((launch.line, launch.name.split()[0], option, opts[option]))
    for line, launcher, options in _rank_launches(ctx):
        if launcher.rsplit("/", 1)[-1] != "horovodrun" or "--gloo" not in options:
            continue
        for option in ("--hostfile", "-hostfile", "-H", "--hosts"):
            if options.get(option):
                out.append((line, "horovodrun", option, options[option]))
    return sorted(out)


def _tasks_on_a_node(ctx: Context, step: Any) -> int | None:
    """How many tasks of an srun step run on one node when that is more than one and the layout is known (the job's
    or the step's nodes, or tasks per node, are given); else None. A step of --nodes=N --ntasks-per-node=1 without
    --ntasks is taken at its word (newer Slurm versions honour it; 22.05 lets the job's task count win)."""
    srun, job = step.chain.srun, ctx.job
    if srun.ntasks_per_node == 1 and srun.nodes is not None and srun.ntasks is None:
        return None
    if srun.ntasks is not None and not isinstance(srun.ntasks, int):
        # a count in a variable: the job's node count is one task per node; another is read through the script
        if re.fullmatch(r"\$\{?SLURM_(?:NNODES|JOB_NUM_NODES)\}?", str(srun.ntasks).strip("'\"")):
            return None
        count = as_int(ctx, srun.ntasks, getattr(step, "line", 0))
        if count is None:
            return None
        step = SimpleNamespace(chain=SimpleNamespace(srun=srun.replace(ntasks=count)))
    if job.nodes is None and srun.nodes is None and not isinstance(job.ntasks_per_node, int) \
            and srun.ntasks_per_node is None:
        return None  # tasks without a node count: Slurm may give each task a node of its own
    per_node = tasks_per_node(ctx, step)
    return per_node if isinstance(per_node, int) and per_node > 1 else None


def _nodes_fixed(ctx: Context) -> int | None:
    """The job's node count when it is one number (--nodes=2, not a range), else None."""
    span = node_range(ctx.job.nodes) if ctx.job.nodes is not None else None
    return span[0] if span is not None and span[0] == span[1] else None


def _host_list_per_task(ctx: Context, value: str, line: int) -> tuple[int, str, int, Any] | None:
    """``(line, the srun command, tasks per node, the srun read as a step)`` for a host list in a variable (``-H "$HOSTS"``) that the script builds from
    ``$(srun hostname …)`` with several tasks on a node and nothing that drops repeats; else None."""
    m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value.strip("'\""))
    if m is None:
        return None
    values = [v for v in ctx.parsed.variables if v.name == m.group(1) and v.line < line]
    if not values:
        return None
    text = str(values[-1].value)
    sub = re.search(r"\$\(\s*(srun\b[^|)]*)(.*?)\)", text)
    if sub is None or _DEDUPES.search(sub.group(2)):
        return None
    from ..parse.argv import parse_chain
    try:
        words = shlex.split(sub.group(1))
        chain = parse_chain(words, source_line=values[-1].line)
    except (ValueError, ParseError):
        return None
    if chain.srun is None or not _prints_node_name([str(w) for w in chain.program]):
        return None
    per_node = _tasks_on_a_node(ctx, SimpleNamespace(chain=chain))
    if per_node is None:
        return None
    return values[-1].line, " ".join(words), per_node, SimpleNamespace(chain=chain)


@rule("HPC137", "rank-launcher-hosts-not-from-the-job", "warning",
      summary="mpirun or horovodrun names its hosts in the script (-H node01:4,node02:4, a hostfile the job does not "
              "write) instead of taking the job's nodes",
      why="A host list written into the script names the nodes of some earlier job, not the ones Slurm gives this "
          "one. horovodrun starts its workers over ssh on exactly the hosts -H lists: on nodes this job does not own "
          "(beside other users' jobs, outside its limits), or on hosts it cannot reach. mpirun under Slurm takes "
          "its hosts from the allocation unless told otherwise; a fixed list makes Open MPI stop on the hosts "
          "outside the allocation, and MPICH's Hydra reach them over ssh. localhost, a list in a variable or "
          "built by the job, and a job pinned to its nodes with --nodelist are left alone. (A host list with fewer "
          "slots than horovodrun's -np is HPC140.)",
      fix="Build the list in the job from its own nodes: hosts=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | "
          "sed 's/$/:4/' | paste -sd,) and horovodrun -H \"$hosts\", or leave the hosts out and let mpirun (or srun "
          "--mpi=pmix) take them from the allocation.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
horovodrun -np 8 -H gpu01:4,gpu02:4 python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/$/:4/' | paste -sd,)
horovodrun -np 8 -H "$hosts" python train.py
""")
def _rank_launcher_hosts(ctx: Context) -> Iterator[Any]:
    if any(re.match(r"(?:--nodelist|-w)\b", str(d)) for d in ctx.job.extra_directives):
        return  # the job names its nodes itself: a matching host list is deliberate
    for line, launcher, options in _rank_launches(ctx):
        for option, value in options.items():
            given = ctx.parsed.resolve(value.strip("'\""), line)
            if not given or given.startswith("<("):
                continue  # a process substitution (<(scontrol show hostnames)): the job's own command writes it
            if option in _HOST_LIST_OPTIONS:
                hosts = [h.partition(":")[0] for h in given.split(",")]
                if "$" in given or "`" in given or all(h in ("", "localhost", "127.0.0.1") for h in hosts):
                    continue
                yield (line, f"{launcher} {option} {value} names fixed hosts, not the nodes Slurm gives this job: the "
                             "ranks start on nodes the job does not own, or cannot start at all; build the list in the "
                             "job (hosts=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | sed 's/$/:N/' | paste "
                             "-sd,)) or leave it out and let the launcher take the allocation")
            elif option in _HOST_FILE_OPTIONS and job_nodes(ctx) > 1:
                if "$" in given.replace("$SLURM_JOB_ID", "").replace("${SLURM_JOB_ID}", "") \
                        or _written_by_the_script(ctx, value, given, line):
                    continue  # a name the job makes, or a file the script writes
                yield (line, f"{launcher} {option} {value}: the script does not write {given} from the job's nodes, "
                             "so the ranks start on whatever hosts it lists; write it in the job (scontrol show "
                             f"hostnames \"$SLURM_JOB_NODELIST\" > {value}) or leave it out and let the launcher take "
                             "the allocation")


@rule("HPC140", "horovodrun-more-processes-than-slots", "error",
      summary="horovodrun asks for more processes (-np) than the slots its host list gives (-H HOST:SLOTS,…), so it "
              "stops at start (Gloo, Open MPI) or crowds the extra ranks onto the hosts (MPICH, Intel MPI)",
      why="horovodrun places its -np processes on the slots -H (--hosts) lists, SLOTS for each HOST:SLOTS. With too "
          "few slots in all it cannot place them: with Gloo (horovodrun --gloo, or a Horovod built without MPI) it "
          "stops before starting any ('Requested more processes (N) than there are available slots (M)'); with MPI "
          "(the default of a Horovod built with it) it runs mpirun -np N -H LIST, which Open MPI and IBM Spectrum "
          "MPI refuse ('There are not enough slots available in the system'), while MPICH's and Intel MPI's mpirun "
          "(given -ppn SLOTS -hosts LIST) go round the hosts again and place more ranks on each than its slots, "
          "which the job's tasks on that host need not match. Reported as an error since the usual Horovod builds "
          "(Gloo, or MPI from Open MPI) stop there. Checked on a list written out and on one the job builds from its nodes with "
          "sed (sed 's/$/:1/' after scontrol show hostnames, on a job whose node count is fixed): a job with 2 tasks "
          "per node and :1 per host has half the slots it needs. Left alone: more processes than slots asked for "
          "on purpose with --mpi-args=\"--oversubscribe\" (and no --gloo, which ignores it).",
      fix="Give each host as many slots as the job has tasks on it (sed 's/$/:4/' for 4 tasks per node, or "
          ":$SLURM_NTASKS_PER_NODE), so that the slots add up to -np; or lower -np to the slots.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/$/:1/' | paste -sd,)
horovodrun -np 8 -H "$hosts" python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
hosts=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed 's/$/:4/' | paste -sd,)
horovodrun -np 8 -H "$hosts" python train.py
""")
def _horovodrun_short_of_slots(ctx: Context) -> Iterator[Any]:
    for line, launcher, options in _rank_launches(ctx):
        short = _too_few_horovod_slots(ctx, line, launcher, options)
        if short:
            yield line, short


#: a sed substitution that appends a slot count to each host name (sed 's/$/:4/', sed -z 's/\n/\:1,/g'): group 1
_SED_SLOTS = re.compile(r"\bsed\b[^|;&]*?\bs([/|#,])[^/|#,]*\1\\?:(\d+)\b")

#: what names the job's nodes in a command that lists them (scontrol show hostnames "$SLURM_JOB_NODELIST")
_JOB_NODES = re.compile(r"\$\{?SLURM_(?:JOB_)?NODELIST\b|scontrol\s+show\s+hostnames?\b|\bsrun\b[^|]*\bhostname\b")


def _too_few_horovod_slots(ctx: Context, line: int, launcher: str, options: dict[str, str]) -> str:
    """horovodrun asked for more processes (-np, --num-proc) than the slots its host list gives (-H, --hosts:
    HOST:SLOTS,…, written out, or built by the job with a sed that appends :SLOTS to each of its nodes): the message,
    or "" when the counts are fine or not known. Horovod assigns its ranks to the listed slots and stops when they
    are too few (Gloo: 'Requested more processes (N) than there are available slots (M)'); with MPI it hands -np
    and -H to mpirun, and Open MPI refuses more processes than slots ('not enough slots available')."""
    if launcher.rsplit("/", 1)[-1] != "horovodrun":
        return ""
    if "--gloo" not in options and "--oversubscribe" in options.get("--mpi-args", ""):
        return ""  # mpirun told to place more processes than slots
    np_option = next((o for o in ("-np", "--num-proc") if options.get(o)), "")
    host_option = next((o for o in ("-H", "--hosts") if options.get(o)), "")
    processes = as_int(ctx, options[np_option], line) if np_option and host_option else None
    if not processes:
        return ""
    written = options[host_option].strip("'\"")
    given = ctx.parsed.resolve(written, line)
    if "$" not in given and "`" not in given:
        counts = [h.partition(":")[2] for h in given.split(",")]
        if not all(c.isdigit() for c in counts):
            return ""
        per_host, slots = [int(c) for c in counts], sum(int(c) for c in counts)
        how = f"{len(counts)} host{'s' if len(counts) > 1 else ''}"
    else:
        built = _slots_the_job_builds(ctx, written, line)
        if built is None:
            return ""
        per_node, nodes, at = built
        per_host, slots = [per_node] * nodes, per_node * nodes
        where = "the job's node" if nodes == 1 else f"each of the job's {nodes} nodes"
        how = f"the list line {at} builds, :{per_node} after {where}"
    if processes <= slots:
        return ""
    per_task = ctx.job.ntasks_per_node if isinstance(ctx.job.ntasks_per_node, int) else None
    advice = f"give each host the job's {per_task} tasks per node as its slots (:{per_task})" \
        if per_task and min(per_host) < per_task else "list more hosts or slots"
    return (f"horovodrun {np_option} {options[np_option]} asks for {processes} processes, but {host_option} "
            f"{options[host_option]} gives {slots} slot{'s' if slots > 1 else ''} ({how}): horovodrun stops at start "
            f"('Requested more processes ({processes}) than there are available slots ({slots})' with Gloo; with MPI, "
            f"Open MPI's mpirun refuses too: 'not enough slots available'; MPICH's and Intel MPI's place more ranks "
            f"on each host than its slots); {advice}, or lower {np_option}")


def _slots_the_job_builds(ctx: Context, written: str, line: int) -> tuple[int, int, int] | None:
    """``(slots per node, nodes, line)`` for a host list held in a variable (``$NODE_LIST``) that the script builds
    from the job's nodes with a sed that appends the same ``:SLOTS`` to each, when the job's node count is fixed;
    None for anything else (a loop, another tool, a node count Slurm chooses)."""
    m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", written)
    if m is None:
        return None
    values = [v for v in ctx.parsed.variables if v.name == m.group(1) and v.line < line]
    text = " ".join(str(v.value) for v in values)
    counts = {int(c.group(2)) for c in _SED_SLOTS.finditer(text)}
    if len(counts) != 1 or not _JOB_NODES.search(text):
        return None
    span = node_range(ctx.job.nodes) if ctx.job.nodes is not None else None
    nodes = span[0] if span is not None and span[0] == span[1] else 1 if one_node_job(ctx) else None
    if not nodes:
        return None
    at = next(v.line for v in values if _SED_SLOTS.search(str(v.value)))
    return counts.pop(), nodes, at


#: the options of mpirun (Open MPI, MPICH Hydra, Intel MPI) and horovodrun that name hosts, and hostfiles
_HOST_LIST_OPTIONS = frozenset({"-H", "--host", "-host", "--hosts", "-hosts"})
_HOST_FILE_OPTIONS = frozenset({"--hostfile", "-hostfile", "--machinefile", "-machinefile", "-f",
                                "--default-hostfile", "-default-hostfile"})
#: horovodrun's options that take no value (any other option before the program takes the next word)
_HOROVODRUN_SWITCHES = frozenset({"--gloo", "--mpi", "--jsrun", "--verbose", "--disable-cache", "--check-build",
                                  "-cb", "--elastic", "--reset-limit", "--blacklist-cooldown-range", "--timeline-mark-cycles",
                                  "--no-stall-check", "--autotune", "--hierarchical-allreduce",
                                  "--hierarchical-allgather", "-v", "--version", "-h", "--help"})


def _rank_launches(ctx: Context) -> list[tuple[int, str, dict[str, str]]]:
    """Every mpirun-like launcher and horovodrun the script runs (in the batch shell, a ``bash -c`` script or a
    container), with its own options as ``{option: value}``; once per line."""
    seen: set[int] = set()
    out: list[tuple[int, str, dict[str, str]]] = []
    found = [(cmd.line, launch_words([str(w) for w in cmd.argv])) for cmd in _simple_commands(ctx.parsed.lexed.code)]
    found += [(step.line, [str(w) for w in step.chain.program]) for step, _ in containers(ctx)]
    for line, words in found:
        if not words or line in seen:
            continue
        name = words[0].rsplit("/", 1)[-1]
        if name == "horovodrun":
            options = _horovodrun_options(words[1:])
        elif name in MPI_LAUNCHERS:
            options = _mpirun_options(words[1:])
        else:
            continue
        seen.add(line)
        out.append((line, words[0], options))
    return out


def _horovodrun_options(words: list[str]) -> dict[str, str]:
    """horovodrun's options before the program, ``{option: value}`` (a switch: "")."""
    out: dict[str, str] = {}
    i = 0
    while i < len(words) and words[i].startswith("-"):
        option, eq, value = words[i].partition("=")
        if not eq and option not in _HOROVODRUN_SWITCHES:
            i += 1
            value = words[i] if i < len(words) else ""
        out[option] = value
        i += 1
    return out


def _written_by_the_script(ctx: Context, given: str, path: str, launch: int) -> bool:
    """Whether a line of the script other than the launch's (``launch``) may write the file ``given`` (as written,
    or its resolved ``path``): after > or >>, by tee, or named on a line of cp, mv, ln, a python helper, echo,
    printf, cat, sed or awk."""
    names = {given, given.strip("'\""), path, path.rsplit("/", 1)[-1]}
    # a variable that holds the name (HF=hosts.txt; … > "$HF")
    names |= {ref for v in ctx.parsed.variables if v.value.strip("'\"") in names
              for ref in (f"${v.name}", f"${{{v.name}}}")}
    pattern = "|".join(re.escape(n) + (r"(?!\w)" if n.startswith("$") else r"\b")
                       for n in sorted(names, key=len, reverse=True) if n)
    writes = re.compile(r"(?:>[>|]?|\btee(?:\s+-a)?)\s*[\"']?(?:\S*/)?(?:" + pattern + r")"
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
        if step.chain.container is not None and prog and (prog[0].rsplit("/", 1)[-1] in RANK_LAUNCHERS
                                                          or _rank_launch_in_script(step.chain.program)):
            continue  # the launcher is the container's program (or its bash -c's): HPC214 says so, and its fix covers this
        launcher = _rank_launcher(step)
        tasks = step_tasks(ctx, step)
        if launcher is not None and tasks > 1:
            yield (step.line, f"srun starts {tasks} tasks and each runs {launcher}: {tasks} separate MPI jobs on the same "
                              f"CPUs; use srun --mpi=pmix without {launcher}, or {launcher} without srun")


@rule("HPC215", "mpirun-around-container", "info",
      summary="mpirun on the host starts the container ranks inside a Slurm job",
      why="This is Apptainer's hybrid model, and it works when the host's MPI is built with Slurm support and "
          "matches the MPI in the image (the same implementation, a compatible version): mpirun then reads the "
          "allocation as srun does. When either is not so, the ranks start on one node, or fail to connect, and "
          "the message names neither; srun --mpi=pmix starts the ranks itself, as the allocation says, with no host "
          "MPI to match (only the image's MPI must have PMIx support).",
      fix="Use srun --mpi=pmix apptainer exec IMAGE ./program (--mpi=pmi2 for an image with MPICH, Intel MPI or "
          "MVAPICH).",
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
        words = launch_words([str(v) for v in cmd.argv])  # past time -p, env A=1 …
        if words and words[0].rsplit("/", 1)[-1] in MPI_LAUNCHERS and \
                any(w.rsplit("/", 1)[-1] in ("apptainer", "singularity", "ch-run") for w in words[1:]) and \
                host_and_image_mpi(ctx, cmd) is None:  # a mismatch the names show is HPC144's error
            # the MPICH family (MPICH, Intel MPI, MVAPICH) speaks PMI-2 to srun; Open MPI's recent releases PMIx
            plugin = "pmi2" if mpi_family(" ".join(words[1:])) == "MPICH" else "pmix"
            yield cmd.line, (f"{words[0]} on the host starts the container ranks: this works only while the host's MPI "
                             f"has Slurm support and matches the image's; srun --mpi={plugin} starts them from the "
                             "allocation with no host MPI to match")


@rule("HPC216", "nvccli-without-writable-layer", "error",
      summary="singularity --nvccli without --writable where singularity is SingularityCE",
      why="--nvccli has nvidia-container-cli set up the GPU libraries in the container. SingularityCE allows it an "
          "ordinary user in one way only: without setuid, in a user namespace, and then only with --writable (a "
          "writable sandbox folder, not a SIF image); a setuid installation refuses it outright ('nvidia-container-cli "
          "not allowed in setuid mode'), and a user namespace without --writable stops with 'nvidia-container-cli "
          "requires --writable with user namespace/fakeroot'. Either way the step ends before the program starts. "
          "Both runtimes add --writable-tmpfs for it themselves, so that is not the fix. Apptainer installs "
          "singularity as a second name for itself, so the command's name does not tell which runtime it is: the "
          "profile does (its runtimes list apptainer or singularity, not both), else the last module named "
          "apptainer… or singularity… (singularityce, singularity-ce) the script loads before the step. When neither "
          "tells, nothing is reported: a script that calls singularity often runs on an Apptainer site.",
      fix="Use --nv in place of --nvccli: it binds the host's driver libraries and needs no writable container.",
      catalogue=(18,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
module load singularityce/4.1
singularity exec --nvccli pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
module load singularityce/4.1
singularity exec --nv pytorch_2.3.sif python train.py
""")
def _nvccli(ctx: Context) -> Iterator[Any]:
    for step, c in containers(ctx):
        if c.kind != "apptainer.run" or not c.nvccli_needs_writable:
            continue
        why = _singularity_is_singularityce(ctx, step.line)
        if why:
            chain = with_chain(step.chain, container=c.replace(nvccli=False, nv=True))
            yield (step.line, f"singularity here is SingularityCE or Singularity 3, not Apptainer ({why}): it runs "
                              "--nvccli for an ordinary user only in a user namespace with --writable on a sandbox "
                              "folder, and refuses it in a setuid installation, so this step stops before the program "
                              "starts; use --nv in place of --nvccli",
                   fix_for(ctx, "use --nv in place of --nvccli", step, chain))


def _singularity_is_singularityce(ctx: Context, line: int) -> str:
    """Why the ``singularity`` command on ``line`` is SingularityCE rather than Apptainer's link to itself, or ""
    when it is Apptainer or nothing tells (see HPC216)."""
    if ctx.profile is not None:
        runtimes = set(ctx.profile.runtimes)
        if runtimes & {"apptainer", "singularity"} == {"singularity"}:
            return f"the profile {ctx.profile.name} lists singularity, not apptainer"
        if runtimes & {"apptainer", "singularity"} == {"apptainer"}:
            return ""
    loaded = [name for name, at in ctx.parsed.modules if at < line and name.lower().startswith(("apptainer", "singularity"))]
    if loaded:
        return f"the module {loaded[-1]} is loaded" if loaded[-1].lower().startswith("singularity") else ""
    return ""


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
          "and the framework sees no GPU. Whose GPUs the job gets comes from the profile; without one, a GPU type "
          "the job names that says the other vendor (--gres=gpu:mi250:1 with --nv) is HPC238, a warning.",
      fix="Use the flag of the site's GPUs: --nv for NVIDIA, --rocm for AMD (neither for Intel).",
      catalogue=(27,), profile="generic",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=12:00:00
module load apptainer
apptainer exec --rocm pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=12:00:00
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


@rule("HPC238", "gpu-flag-against-gpu-type", "warning",
      summary="--nv in a job that asks for AMD GPUs by type (--gres=gpu:mi250:1), or --rocm in one that asks for "
              "NVIDIA GPUs (--gpus=a100:2), where no profile says whose GPUs the site has",
      why="--nv binds NVIDIA's driver libraries and --rocm AMD's ROCm ones (Apptainer's nvliblist.conf and "
          "rocmliblist.conf); on the other vendor's nodes the flag finds nothing to bind. --rocm on NVIDIA GPUs "
          "leaves a CUDA framework without its driver: torch.cuda.is_available() is False and the job runs on the "
          "CPU. --nv on AMD GPUs binds nothing either: a ROCm image still reaches the GPUs through the host's /dev, "
          "but not with --contain or --containall, and the flag misleads whoever reads the script. The job's GPU "
          "type (--gres=gpu:TYPE:N, --gpus=TYPE:N, --gpus-per-node=TYPE:N, --gpus-per-task=TYPE:N, or a GPU model "
          "its --constraint asks for; a step's own srun --gres or --gpus* type for that step) names the vendor, read "
          "with the patterns the profiles use for gres type names (mi250, mi100: AMD; a100, h100, v100: NVIDIA). A warning, not HPC218's error: a site names its gres types in its "
          "own gres.conf, so the name is strong evidence, not the site's word. With a profile that says whose GPUs "
          "the job gets, HPC218 judges the flag instead; Intel types (pvc) and names the patterns do not know are "
          "left alone.",
      fix="Use the flag of the GPUs the job asks for: --rocm for AMD (mi250, mi100), --nv for NVIDIA (a100, h100); "
          "lint with the site's profile (--profile) to have the site's vendor checked.",
      catalogue=(27,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:mi250:1
#SBATCH --time=01:00:00
apptainer exec --nv pytorch_rocm6.2.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:mi250:1
#SBATCH --time=01:00:00
apptainer exec --rocm pytorch_rocm6.2.sif python train.py
""")
@each_component
def _flag_against_gpu_type(ctx: Context) -> Iterator[Any]:
    if profile_vendor(ctx):
        return  # the profile tells (HPC218), or says the GPUs are Intel ones
    job_types = _gpu_types(ctx)
    for step, c in containers(ctx):
        if c.kind != "apptainer.run" or not in_job_component(ctx, step):
            continue
        # a step that names GPU types of its own (srun --gres=gpu:mi250:1) gets those, whatever the job's are
        own = step_gpu_types(step.chain.srun)
        types = own or job_types
        named = {gpu_type_vendor(t) for t in types}
        if len(named) != 1 or (vendor := named.pop()) not in _GPU_FLAGS_OF:
            continue
        right = _GPU_FLAGS_OF[vendor][0]
        wrong = next((f for f in GPU_FLAGS if getattr(c, f.lstrip("-"), False) is True
                      and _VENDOR_OF_FLAG[f] != vendor), "")
        if not wrong:
            continue
        flags = {f.lstrip("-"): False for f in GPU_FLAGS} | {right.lstrip("-"): True}
        chain = with_chain(step.chain, container=c.replace(**flags))
        # an image whose name says it is built for the flag's vendor: the type or the flag may be the mistake
        build = _image_build(ctx.parsed.resolve(str(c.image), step.line))
        fix = None if build == _VENDOR_OF_FLAG[wrong] else fix_for(ctx, f"use {right}", step, chain)
        doubt = f" (the image's name says {_BUILD_NAMES[build]}: if the GPUs are {_VENDOR_NAMES[build]}, the type " \
                "is what to correct)" if fix is None and build else ""
        if vendor == "nvidia":
            result = (f"without {right} the container gets none of NVIDIA's driver libraries, so the framework finds "
                      "no GPU (PyTorch: torch.cuda.is_available() is False) and the job runs on the CPU")
        else:
            result = (f"{wrong} binds nothing for them, and a ROCm image reaches them only through the host's /dev, "
                      "which --contain and --containall leave out")
        yield (step.line, f"{wrong} is for {_VENDOR_NAMES[_VENDOR_OF_FLAG[wrong]]} GPUs, but the "
                          f"{'step' if own else 'job'} asks for "
                          f"{types[0]} GPUs, which are {_VENDOR_NAMES[vendor]}: {result}; use {right}{doubt}", fix)


def _vendor_place(ctx: Context) -> str:
    """Where the vendor comes from: the profile, or its partition when that has its own vendor."""
    part = ctx.profile.entry_for(ctx.job)
    if part is not None and getattr(part, "gpu_vendor", "") and part.has_gpus:
        return f"{part.where()} of {ctx.profile.name}"
    return ctx.profile.name


def _image_build(ref: str, registry: bool = False) -> str:
    """The vendor whose GPUs the framework in an image is built for, by its name: "nvidia" for a CUDA build
    (NVIDIA's registry nvcr.io/nvidia/, or cuda in the name or tag), "amd" for a ROCm build, "" when it does not
    say. The reading is the one ``profile check`` applies to a profile's example image source
    (:func:`hpcwidgets.spec.profile.image_vendor`). A registry reference (``docker://…``, or ``registry`` for
    ch-image's, which has no scheme) counts whole; of a file only its name (a folder called cuda says nothing of the
    image in it). A $NAME the script does not set says nothing either."""
    name = ref if registry or "://" in ref else ref.rsplit("/", 1)[-1]
    return image_vendor(re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "", name))


#: how messages name a vendor's build, and the build to use on a vendor's GPUs
_BUILD_NAMES = {"nvidia": "a CUDA build", "amd": "a ROCm build"}
_BUILD_FOR = {"nvidia": "a CUDA build (docker://nvcr.io/nvidia/pytorch:TAG)",
              "amd": "a ROCm build (docker://rocm/pytorch:TAG)"}


def _known_gpu_vendor(ctx: Context) -> tuple[str, str]:
    """``(vendor, how it is known)`` of the GPUs the job gets, NVIDIA or AMD: by the profile (:func:`profile_vendor`,
    which reads the job's partition), else by the GPU type the job names (mi250, a100); ``("", "")`` when neither
    tells (no profile, Intel GPUs, a type the patterns do not know)."""
    vendor = profile_vendor(ctx)
    if vendor in _VENDOR_NAMES:
        return vendor, f"the GPUs of {_vendor_place(ctx)} are {_VENDOR_NAMES[vendor]}"
    if vendor:
        return "", ""
    types = _gpu_types(ctx)
    named = {gpu_type_vendor(t) for t in types}
    if len(named) == 1 and (found := named.pop()) in _VENDOR_NAMES:
        return found, f"the job asks for {types[0]} GPUs, which are {_VENDOR_NAMES[found]}"
    return "", ""


@rule("HPC237", "image-for-other-gpu-vendor", "warning",
      summary="the image is built for the other GPU vendor: a CUDA image on AMD GPUs (or with --rocm), a ROCm image "
              "on NVIDIA GPUs (or with --nv)",
      why="A framework is built for one vendor's GPUs. PyTorch's CUDA builds (NVIDIA's NGC images nvcr.io/nvidia/…, "
          "tags such as 2.3.1-cuda12.1-cudnn8-runtime) load NVIDIA's driver, which AMD nodes do not have; its ROCm "
          "builds (rocm/pytorch, tags with rocm) need AMD's ROCm runtime and GPUs, though they answer through the "
          "same torch.cuda calls. On the other vendor's GPUs torch.cuda.is_available() is False: the job trains on "
          "the CPU while the GPUs it was charged for idle, and nothing fails. Whose GPUs the job gets comes from the "
          "profile (the job's partition, else the site), else from the GPU type the job names (--gpus=mi250:1), "
          "else from the step's flag (--rocm for AMD, --nv or --nvccli for NVIDIA). An image is read by its name, as "
          "profile check reads the profile's example image source (nvcr.io/nvidia/ or cuda in it: CUDA; rocm: "
          "ROCm; of a file only its name, not its folder), so a name that says neither (pytorch_24.05.sif) is left "
          "alone. A step is judged only where it uses GPUs (the job asks for some, or the step passes a GPU flag), "
          "since a CUDA build also runs on CPUs; a pull (or a build from a registry) is judged whenever the "
          "vendor is known from the profile or the GPU type, as it fetches the image for that site's GPUs.",
      fix="Use a build of the framework for the GPUs the job gets, with their flag: a ROCm build "
          "(docker://rocm/pytorch:TAG) and --rocm on AMD GPUs, a CUDA build (docker://nvcr.io/nvidia/pytorch:TAG, "
          "pytorch/pytorch:…-cuda…) and --nv on NVIDIA GPUs.",
      catalogue=(27, 16),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --rocm "$SCRATCH/images/pytorch_2.3.1-cuda12.1.sif" python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --rocm "$SCRATCH/images/pytorch_rocm6.2.sif" python train.py
""")
@each_component
def _image_for_other_vendor(ctx: Context) -> Iterator[Any]:
    vendor, known = _known_gpu_vendor(ctx)
    fetched = _fetched_images(ctx)
    for step, c in containers(ctx):
        ref = ctx.parsed.resolve(str(c.image), step.line)
        build, origin = _image_build(ref), ""
        if not build and "://" not in ref:  # a file the script pulls: its source tells
            line, source, build = fetched.get(ref.rsplit("/", 1)[-1], (0, "", ""))
            origin = f" (pulled from {source} on line {line})" if build else ""
        if not build:
            continue
        flag = next((f"--{name}" for name in ("nv", "nvccli", "rocm") if getattr(c, name, False) is True), "")
        srun = step.chain.srun
        gpus = bool(flag) or bool(ctx.job.gpus_on_each_node and in_job_component(ctx, step)) \
            or (srun is not None and own_gpu_request(srun))
        gets, how = (vendor, known) if vendor else \
            (_VENDOR_OF_FLAG.get(flag, ""), f"{flag} is for {_VENDOR_NAMES.get(_VENDOR_OF_FLAG.get(flag, ''), '')} GPUs")
        if not gpus or not gets or build == gets:
            continue
        name = ref if "://" in ref else ref.rsplit("/", 1)[-1]
        use = f"use {_BUILD_FOR[gets]}" + ("" if vendor else
                                          f", or the flag of {_VENDOR_NAMES[build]} GPUs if the job has those")
        yield (step.line, f"{name}{origin} is {_BUILD_NAMES[build]}, but {how}: the framework in it finds no GPU "
                          f"(PyTorch: torch.cuda.is_available() is False) and the job runs on the CPU; {use}")
    if not vendor:
        return
    for line, ref, build in sorted(set(fetched.values())):
        if build != vendor:
            yield (line, f"{ref} is {_BUILD_NAMES[build]}, but {known}: the framework in it will find no GPU there "
                         f"(PyTorch: torch.cuda.is_available() is False); fetch {_BUILD_FOR[vendor]}")


def _fetched_images(ctx: Context) -> dict[str, tuple[int, str, str]]:
    """The images the script pulls (or builds from a registry) whose source names a vendor's build, by the name of
    the file written: ``{"pytorch_24.05.sif": (line, "docker://nvcr.io/nvidia/pytorch:24.05-py3", "nvidia")}``. A pull
    without a file name writes NAME_TAG.sif, as apptainer pull does; ch-image pull names an image of its own."""
    out: dict[str, tuple[int, str, str]] = {}
    for cmd, model in pulls(ctx) + builds(ctx):
        source = str(getattr(model, "source", "") or "")
        ref = ctx.parsed.resolve(source, cmd.line) if source else ""
        pulled = getattr(model, "action", "") == "pull" or model.kind == "charliecloud.pull"
        if not ref or not (pulled or ref.startswith(REGISTRY_SCHEMES)):
            continue  # a build from a definition file or a local image
        build = _image_build(ref, registry=True)
        if not build:
            continue
        written = str(getattr(model, "dest", "") or getattr(model, "output", "") or "")
        if not written:
            name, _, tag = ref.split("://", 1)[-1].rsplit("/", 1)[-1].partition(":")
            written = f"{name}_{tag or 'latest'}.sif"
        out[ctx.parsed.resolve(written, cmd.line).rsplit("/", 1)[-1]] = (cmd.line, ref, build)
    return out


#: the tools Apptainer binds from the host into the container with a GPU flag (the binaries its nvliblist.conf and
#: rocmliblist.conf list; nvidia-container-cli brings nvidia-smi for --nvccli)
_FLAG_TOOLS = {"nv": ("nvidia-smi",), "nvccli": ("nvidia-smi",), "rocm": ("rocm-smi", "rocminfo")}


def _tool_for(vendor: str) -> str:
    """What to run instead on a vendor's GPUs, from :data:`~hpcwidgets.spec.profile.GPU_TOOLS`: its first tool, with
    its other system management tools (``*-smi``, which show the GPUs as nvidia-smi does) as alternatives:
    ``rocm-smi (or amd-smi)``."""
    first, *others = GPU_TOOLS[vendor]
    others = [tool for tool in others if tool.endswith("-smi")]
    return f"{first} (or {' or '.join(others)})" if others else first


@rule("HPC417", "other-vendor-gpu-tool", "warning",
      summary="a GPU tool of the other vendor: nvidia-smi on a site whose GPUs are AMD, rocm-smi or amd-smi on an "
              "NVIDIA one",
      why="nvidia-smi comes with NVIDIA's driver, rocm-smi, amd-smi and rocminfo with AMD's ROCm: a node with the "
          "other vendor's GPUs has no such program, so the line fails with 'command not found' (exit 127; under set "
          "-e the job stops there, after its time in the queue) and the check it was meant for never happens. Whose "
          "GPUs the job gets comes from the profile (the job's partition, else the site; Intel GPUs and profiles "
          "that name no vendor are left alone), so the rule needs one. In a container it fails as well: Apptainer's "
          "GPU flag binds the host's tool in (--nv and --nvccli: nvidia-smi, from Apptainer's nvliblist.conf; "
          "--rocm: rocm-smi and rocminfo, from rocmliblist.conf), which these nodes do not have; images do not "
          "ship nvidia-smi (it belongs to the driver), and a ROCm image's own rocm-smi finds no AMD driver on an "
          "NVIDIA node. A command whose failure the script expects is left "
          "alone: nvidia-smi || true, rocm-smi || nvidia-smi, if nvidia-smi; then …, and any script that asks for the "
          "tool (command -v, which, type, hash), as one written for both vendors does.",
      fix="Run the tool of the site's GPUs: rocm-smi (or amd-smi) on AMD GPUs, nvidia-smi on NVIDIA ones (in a "
          "container with its flag: --rocm binds rocm-smi, --nv nvidia-smi); a script meant for both can run the "
          "one it finds: command -v nvidia-smi >/dev/null && nvidia-smi || rocm-smi.",
      catalogue=(27,), profile="generic",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00
rocm-smi
python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00
nvidia-smi
python train.py
""")
def _other_vendor_tool(ctx: Context) -> Iterator[Any]:
    vendor = profile_vendor(ctx)
    if vendor not in GPU_TOOLS:
        return
    other = "amd" if vendor == "nvidia" else "nvidia"
    tools = tuple(t for t in GPU_TOOLS[other] if t in ctx.parsed.source and not _looked_for(ctx, t))
    if not tools:
        return
    names, place = _VENDOR_NAMES[vendor], _vendor_place(ctx)
    items = list(_simple_commands(ctx.parsed.lexed.code))
    for i, item in enumerate(items):
        cmd, before = getattr(item, "cmd", item), getattr(items[i - 1], "cmd", items[i - 1]) if i else None
        if cmd.joined_by == "||" or (before is not None and before.joined_by == "||"):
            continue  # nvidia-smi || true, rocm-smi || nvidia-smi: the script copes without the tool
        tool, inside = _tool_run(item)
        if tool not in tools:
            continue
        if inside is None:
            yield (item.line, f"{tool} is not on the nodes of {place}, whose GPUs are {names}: the line fails ('command "
                              f"not found', exit 127; under set -e the job stops there); use {_tool_for(vendor)}")
            continue
        flags = [f"--{n}" for n in _FLAG_TOOLS if getattr(inside, n, False) is True and tool in _FLAG_TOOLS[n]]
        right = _GPU_FLAGS_OF[vendor][0]
        instead = (f"use {right} and {_FLAG_TOOLS[right.lstrip('-')][0]}, which {right} binds"
                   if inside.kind == "apptainer.run" else f"use {_tool_for(vendor)}")
        if flags:
            yield (item.line, f"{flags[0]} binds the host's {tool} into the container, but the nodes of {place}, whose "
                              f"GPUs are {names}, have none: the line fails ('command not found', exit 127; under set "
                              f"-e the job stops there); {instead}")
        else:
            yield (item.line, f"{tool} in the container needs {_VENDOR_NAMES[other]}'s GPU driver, which the nodes of "
                              f"{place} (GPUs: {names}) do not have: the line fails (no such program in the image, or "
                              f"no driver for it; under set -e the job stops there); {instead}")


def _looked_for(ctx: Context, tool: str) -> bool:
    """Whether the script asks for ``tool`` before it relies on it: ``command -v``, ``which``, ``type`` or ``hash``
    naming it, or ``if``/``while`` running it as a test."""
    name = re.escape(tool)
    pattern = (rf"(?:\bcommand\s+-[vV]|\bwhich|\btype(?:\s+-[a-zA-Z]+)?|\bhash)\s+['\"]?(?:\S*/)?{name}\b"
               rf"|\b(?:if|elif|while|until)\s+(?:!\s*)?(?:\S*/)?{name}\b")
    return re.search(pattern, ctx.parsed.source) is not None


def _tool_run(item: Any) -> tuple[str, Any]:
    """The program a simple command runs, as a name (past srun, time, env and the other wrappers, and past a
    container), and the container it runs in (None on the host). A command of the ``bash -c`` script a container
    runs is in that container."""
    from ..parse.argv import parse_chain

    def chain_of(words: list[str]) -> Any:
        try:
            return parse_chain(launch_words(words))
        except ParseError:
            return None

    words = [str(w) for w in item.argv]
    chain = chain_of(words)
    inside = None
    if isinstance(item, _Inner):
        outer = chain_of([str(w) for w in item.outer.argv])
        inside = outer.container if outer is not None else None
    if inside is None and chain is not None and chain.container is not None:
        inside = chain.container
    program = launch_words([str(w) for w in chain.program]) if chain is not None else words
    return (program[0].rsplit("/", 1)[-1] if program else ""), inside


#: container fields whose problems other rules report (HPC216, HPC218), and the command, which the
#: parser moves to the inner layers
_CONTAINER_FIELDS_ELSEWHERE = ("command", "nvccli", "nv", "rocm")


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
            found += _quoted_tilde_through_a_variable(ctx, b, step.line)
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


def _quoted_tilde_through_a_variable(ctx: Context, b: Any, line: int) -> list[tuple[str, str]]:
    """A bind whose host or container path is a variable set with a quoted ``~`` (``R="~"``, then ``-B $R:/h``):
    bash expands no ``~`` in a variable's value, so the runtime gets a path named ``~`` (HPC204 then reads no home
    folder in it). A ``~`` bash does expand there (``R=~``) reads as ``$HOME`` and is fine."""
    out = []
    for name, words in (("src", "the bind's host path"), ("dst", "the bind's container path")):
        written = getattr(b, name, "") or ""
        if "$" not in str(written) or isinstance(written, Verbatim):
            continue
        given = ctx.parsed.resolve(str(written), line)
        if given.startswith("~") and given[1:2] in ("", "/"):
            out.append((f"binds.{name}", f"{written} holds {given!r}, and the '~' is quoted where it is set, so bash "
                                         f"does not expand it: the path names a folder called ~ in the current "
                                         f"directory, not your home; set it unquoted or write $HOME{given[1:]}"))
    return out


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


def _apptainer_options(model: Any = None) -> tuple[dict[str, str], dict[str, str]]:
    """What each option of apptainer exec/run/shell/test (or of ``model``'s subcommand: pull, build) takes, "switch"
    or "value", by long name (``nv`` → switch, ``bind`` → value) and by short option (``-e`` → switch, ``-B`` →
    value): from the model's fields and its lists of the options it has no field for."""
    from ..spec.apptainer import ApptainerRun
    model = model or ApptainerRun
    long: dict[str, str] = {}
    short: dict[str, str] = {}
    named = [(f.info.spellings, "switch" if f.base_type is bool else "value") for f in model.field_specs()]
    named += [(model.other_value_options, "value"), (model.other_switch_options, "switch")]
    for spellings, kind in named:
        for option in spellings:
            if option.startswith("--"):
                long[option[2:]] = kind
            else:
                short[option] = kind
    return long, short


def _pflag_reading(word: str, short: dict[str, str]) -> str:
    """What apptainer (cobra/pflag) makes of a word of short options, letter by letter: a switch, then the next;
    an option that takes a value takes the rest of the word; an unknown letter stops the command."""
    read = []
    for k, letter in enumerate(word[1:], start=2):
        kind = short.get("-" + letter, "")
        if not kind:
            if not read:
                return f"stops at once with \"unknown shorthand flag: '{letter}' in {word}\""
            return (f"reads {' '.join(read)}, then stops with \"unknown shorthand flag: '{letter}' in {word}\"")
        if kind == "value":
            value = word[k:]
            taken = f"-{letter} with the value {value}" if value else f"-{letter} with the next word as its value"
            return f"reads {' '.join(read + [taken])}"
        read.append("-" + letter)
    return f"reads {' '.join(read)}"


@rule("HPC233", "single-dash-long-option", "error",
      summary="an apptainer/singularity long option written with one dash (-nv for --nv) or with three (---nv)",
      why="Apptainer and Singularity 3 and later read options with cobra/pflag, where one dash starts short options, "
          "one letter each: -nv is -n (--net) and -v, and the action commands have no -v, so the command stops with "
          "\"unknown shorthand flag: 'v' in -nv\" before the container starts (apptainer's cmd/internal/cli/"
          "action_flags.go). A word whose letters all are short options (-ipc: --ipc, --pid, --contain) runs with "
          "options nobody asked for, and one that reaches an option taking a value (-containall: --contain, then "
          "--overlay with the value ntainall) fails on that value. Three dashes or more (---nvccli) stop the command "
          "too, with \"bad flag syntax: ---nvccli\". The options of instance start are read the same way.",
      fix="Write long options with two dashes: --nv, --bind, --containall.",
      catalogue=(8,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
singularity exec -nv pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
singularity exec --nv pytorch_2.3.sif python train.py
""")
def _single_dash_long_option(ctx: Context) -> Iterator[Any]:
    _, short = _apptainer_options()
    found = [(c.binary, short, word, name) for step, c in containers(ctx) for word, name in misdashed_options(step, c)]
    instance_short = {k: v for k, v in short.items() if k[1:] not in _ACTIONS_ONLY_SHORT}
    found += [(start.binary, instance_short, word, name) for start in instance_starts(ctx)
              for word, name in _misdashed(start.options, _ACTIONS_ONLY)]
    for binary, letters, word, name in found:
        text = str(word.value)
        dashes = len(text) - len(text.lstrip("-"))
        tail = text[dashes + len(name):]
        line = ctx.parsed.lines[word.line - 1]
        at = word.col - 1
        fix = Fix(f"write --{name}", word.line, word.line, text=line[:at] + "--" + line[at + dashes:]) \
            if word.raw == text and line[at:at + len(text)] == text else None
        if dashes == 1:
            reading = f"{binary} reads one dash as short options, one letter each, so it " \
                      f"{_pflag_reading(text.partition('=')[0], letters)}"
        else:
            reading = f"{binary} stops at once with \"bad flag syntax: {text}\" (a long option takes two dashes)"
        yield word.line, f"{text} is not --{name}: {reading}; write --{name}{tail}", fix


def misdashed_options(step: Any, c: Any) -> list[tuple[Any, str]]:
    """``(word, name)`` for each long option of an apptainer/singularity step written with one dash (``-nv``) or with
    three or more (``---nvccli``)."""
    return _misdashed(_option_words(step, c)) if c.kind == "apptainer.run" else []


def _misdashed(words: Any, not_here: frozenset[str] = frozenset()) -> list[tuple[Any, str]]:
    """``(word, name)`` for the option words that are a long option (not one of ``not_here``) written with other
    than two dashes."""
    long, _ = _apptainer_options()
    out = []
    for word in words:
        text = str(word.value)
        dashes = len(text) - len(text.lstrip("-"))
        name = text[dashes:].partition("=")[0]
        if dashes and dashes != 2 and len(name) > 1 and name in long and name not in not_here:
            out.append((word, name))
    return out


@rule("HPC234", "unknown-apptainer-option", "error",
      summary="an apptainer/singularity option that no Apptainer or SingularityCE version has (--nvcli for --nvccli)",
      why="Apptainer and SingularityCE read options with cobra/pflag, which refuses an option the command does not "
          "have: exec, run, shell, test, instance start, pull and build stop with \"unknown flag: --nvcli\" (or "
          "\"unknown shorthand flag: 'x' in -x\") before anything starts, so the job fails at once. Only options "
          "that no version has are reported: the tables hold the options of Apptainer 1.x and of SingularityCE 3 "
          "and 4 (cmd/internal/cli/action_flags.go, pull.go and build.go of both projects, and the release notes of "
          "the later Apptainers), the hidden and deprecated ones included. Options written between the program and "
          "its subcommand are read as apptainer's own (--debug, --quiet, --silent, --verbose, --nocolor, -c/--config "
          "FILE, --build-config): an option of exec written there (apptainer --nv exec …) stops the command the same "
          "way. An option written with one dash or three (-nv) is HPC233's; a word that comes from a variable is not "
          "read.",
      fix="Correct the spelling (the message names the option when one is close), or remove the option; "
          "apptainer exec --help lists the ones your version has.",
      catalogue=(8,),
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nvcli --writable-tmpfs pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
apptainer exec --nvccli --writable-tmpfs pytorch_2.3.sif python train.py
""")
def _unknown_apptainer_option(ctx: Context) -> Iterator[Any]:
    from ..spec.apptainer import ApptainerBuild, ApptainerPull
    found = [(c.binary, c.action, _apptainer_options(), _option_words(step, c))
             for step, c in containers(ctx) if c.kind == "apptainer.run"]
    found += [(start.binary, "instance start", _apptainer_options(), start.options) for start in instance_starts(ctx)]
    models = {"apptainer.pull": ApptainerPull, "apptainer.build": ApptainerBuild}
    for cmd, kind, start in _subcommands(ctx, tuple(models)):
        found.append((str(cmd.argv[0]).rsplit("/", 1)[-1], kind.split(".")[1], _apptainer_options(models[kind]),
                      cmd.words[start:]))
    for binary, action, (long, short), words in found:
        for word, name, close in _unknown_options(words, long, short):
            text = str(word.value)
            line = ctx.parsed.lines[word.line - 1]
            at = word.col - 1
            subject, refused, tail = _refusal(text, name, short)
            fix = None
            if close and word.raw == text and line[at:at + len(text)] == text:
                fix = Fix(f"write --{close}", word.line, word.line, text=line[:at] + f"--{close}{tail}"
                          + line[at + len(text):])
            hint = f"did you mean --{close}{tail}?" if close else \
                f"remove it, or see {binary} {action} --help for the options your version has"
            yield (word.line, f"{subject} is not an option of {binary} {action} in any Apptainer or SingularityCE "
                              f"version: {binary} {action} stops at once with {refused}; {hint}", fix)
    yield from _unknown_global_options(ctx)


def _refusal(text: str, name: str, short: dict[str, str]) -> tuple[str, str, str]:
    """``(subject, refusal, tail)`` for an option word pflag refuses: the option named, the error it stops with,
    and the ``=value`` written after a long option's name."""
    if text.startswith("--"):
        return text, f'"unknown flag: --{name}"', text[2 + len(name):]
    letter = _first_unknown_letter(text, short)
    subject = f"-{letter}" + (f" (in {text})" if len(name) > 1 else "")
    return subject, f'"unknown shorthand flag: \'{letter}\' in {text}"', ""


def _unknown_global_options(ctx: Context) -> Iterator[Any]:
    """HPC234 for the options written between apptainer/singularity and its subcommand that are not its own
    (``apptainer --nv exec …``): the command stops before the subcommand is read."""
    from ..parse.argv import GLOBAL_SWITCHES, GLOBAL_VALUE_OPTIONS
    from ..spec.apptainer import ApptainerBuild, ApptainerPull, ApptainerRun
    long = {o[2:]: "switch" for o in GLOBAL_SWITCHES if o.startswith("--")}
    long.update({o[2:]: "value" for o in GLOBAL_VALUE_OPTIONS if o.startswith("--")})
    short = {o: "switch" for o in GLOBAL_SWITCHES if not o.startswith("--")}
    short.update({o: "value" for o in GLOBAL_VALUE_OPTIONS if not o.startswith("--")})
    models = {"apptainer.run": ApptainerRun, "apptainer.instance": ApptainerRun, "apptainer.pull": ApptainerPull,
              "apptainer.build": ApptainerBuild}
    for binary, sub, kind, words in _options_before_subcommand(ctx):
        sub_long = _apptainer_options(models[kind])[0] if kind in models else {}
        for word, name, _ in _unknown_options(words, long, short):
            text = str(word.value)
            subject, refused, _ = _refusal(text, name, short)
            where = f"write it after {sub} ({binary} {sub} {text} …)" if text.startswith("--") and name in sub_long \
                else f"remove it, or see {binary} --help for {binary}'s own options"
            yield (word.line, f"{subject} is written before {sub}, where only {binary}'s own options go (--debug, "
                              f"--quiet, -c FILE …): {binary} stops at once with {refused}; {where}")


def _options_before_subcommand(ctx: Context) -> list[tuple[str, str, str, list[Any]]]:
    """``(binary, subcommand, kind, words)`` for each apptainer/singularity command, at the top level or launched
    (``srun … apptainer -d exec …``), with option words between the program and its subcommand: those words."""
    from ..parse.argv import global_option_words, recognise
    out = []
    for cmd in simple_commands(ctx):
        words = list(cmd.words)
        texts = [str(w.value) for w in words]
        at = next((i for i, t in enumerate(texts) if t.rsplit("/", 1)[-1] in ("apptainer", "singularity")), None)
        if at is None:
            continue
        k = at + 1
        while k < len(texts):  # past apptainer's own options, and any other option word
            known = global_option_words([texts[at]] + texts[k:])
            if not known and not texts[k].startswith("-"):
                break
            k += known or 1
        found = recognise([texts[at]] + texts[k:]) if k > at + 1 else None
        if found is not None:
            sig = found[0]
            out.append((texts[at].rsplit("/", 1)[-1], " ".join(sig.words[1:]), sig.cls.kind, words[at + 1:k]))
    return out


def _subcommands(ctx: Context, kinds: tuple[str, ...]) -> list[tuple[Any, str, int]]:
    """``(command, kind, start)`` for the top-level commands that are apptainer/singularity subcommands of ``kinds``
    (``apptainer.pull``, ``apptainer.build``), global options between the program and the subcommand included;
    ``start`` is the index of the word after the subcommand."""
    from ..parse.argv import recognise
    out = []
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        found = recognise(words) if len(words) > 2 else None
        if found is not None and found[0].cls.kind in kinds and words[0].rsplit("/", 1)[-1] in ("apptainer",
                                                                                                "singularity"):
            out.append((cmd, found[0].cls.kind, found[1]))
    return out


def _unknown_options(words: Any, long: dict[str, str], short: dict[str, str]) -> list[tuple[Any, str, str]]:
    """``(word, name, close)`` for each option word pflag refuses: a long option not in ``long`` (``--nvcli``), or a
    word of short options with a letter not in ``short`` that is no long option written with one dash (HPC233's);
    ``close`` is the one known long option the name is close to ("" when none or several are). Up to ``--``; a word
    written with a variable is not read, and the value of an option that takes the next word is skipped."""
    import difflib
    out = []
    i = 0
    while i < len(words):
        word, text = words[i], str(words[i].value)
        i += 1
        if text == "--":
            break
        dashes = len(text) - len(text.lstrip("-"))
        name, eq, _ = text[dashes:].partition("=")
        if not dashes or not name or "$" in word.raw or "`" in word.raw:
            continue
        if dashes == 2:
            if name in long:
                if long[name] == "value" and not eq:
                    i += 1  # --bind /data: its value
                continue
            near = difflib.get_close_matches(name, list(long), n=2, cutoff=0.8)
            out.append((word, name, near[0] if len(near) == 1 else ""))
        elif dashes == 1 and not (len(name) > 1 and name in long):
            letters = [short.get("-" + letter, "") for letter in name]
            end = next((k for k, kind in enumerate(letters) if kind != "switch"), len(letters))
            if end < len(letters) and not letters[end]:
                near = difflib.get_close_matches(name, [n for n in long if len(n) > 1], n=2, cutoff=0.8)
                out.append((word, name, near[0] if len(near) == 1 else ""))
            elif end == len(letters) - 1 and not eq:
                i += 1  # -B /data, -eB /data: the last letter takes the next word
    return out


def _first_unknown_letter(word: str, short: dict[str, str]) -> str:
    """The letter of a word of short options (``-ex``) at which pflag stops: the first it does not know."""
    return next((letter for letter in word[1:] if short.get("-" + letter) != "switch"), word[1:2])


def _option_words(step: Any, c: Any) -> list[Any]:
    """The words of a container step between its action (exec, run …) and its image, as written."""
    words = list(step.command.words)
    at = next((i for i, w in enumerate(words) if str(w.value).rsplit("/", 1)[-1] == c.binary), None)
    if at is None:
        return []
    at = next((i for i in range(at + 1, len(words)) if str(words[i].value) == c.action), None)
    if at is None:
        return []
    end = next((i for i in range(at + 1, len(words)) if str(words[i].value) == str(c.image)), len(words))
    return words[at + 1:end]


# -- CPU architecture (the profile's cpu_arch) ------------------------------------------------------------------

def _site_arch(ctx: Context) -> str:
    """The CPU architecture of the nodes the job runs on, by the profile (its partition's, else the site's); "" without
    a profile or where it does not say."""
    if ctx.profile is None:
        return ""
    return cached(ctx, "site_arch", lambda: str(ctx.profile.arch_for(ctx.job) or ""))


def _arch_place(ctx: Context, arch: str) -> str:
    """How messages name the nodes: ``the nodes of partition grace of isambard3 are aarch64 (Arm)``."""
    part = ctx.profile.entry_for(ctx.job)
    where = f"{part.where()} of {ctx.profile.name}" if part is not None else ctx.profile.name
    return f"the nodes of {where} are {arch}{' (Arm)' if arch == 'aarch64' else ''}"


def _asked_arch(model: Any) -> tuple[str, str]:
    """The architecture a pull or build asks for, ``(as written, as Slurm names it)``: --arch ARCH (--arch=ARCH) or
    --platform OS/ARCH[/VARIANT] among its other options; ``("", "")`` when it asks for none. A name the profile does
    not know (arm, 386) is returned with "" as the second item; a $NAME is left alone."""
    words = [str(w) for w in list_items(getattr(model, "extra", ()))]
    for i, word in enumerate(words):
        flag, eq, value = word.partition("=")
        if flag not in ("--arch", "--platform"):
            continue
        value = value if eq else (words[i + 1] if i + 1 < len(words) else "")
        if value and "$" not in value:
            return f"{flag} {value}", arch_name(value) or ("" if flag == "--platform" else "?")
    return "", ""


@rule("HPC418", "pull-for-other-arch", "warning",
      summary="apptainer pull (or build) --arch/--platform asks for an image of another CPU architecture than the "
              "nodes' (amd64 on Arm nodes, arm64 on x86_64 ones)",
      why="apptainer pull and build fetch the image for the architecture --arch (or SingularityCE's --platform) names, "
          "and without it for the machine they run on (the Apptainer pull reference: pull --arch arm --arch-variant 6 "
          "… docker://alpine). Docker and Apptainer call x86_64 amd64 and aarch64 arm64; Slurm's Arch= (scontrol "
          "show node) and the profile's cpu_arch use the kernel's names. An image for another architecture does not "
          "run on the nodes: every program in it stops with 'exec format error' (the kernel cannot execute another "
          "architecture's binaries; sites rarely install the qemu emulation that would). --arch amd64, copied from "
          "an x86 cluster's instructions, is the usual way this happens on an NVIDIA Grace or GH200 (aarch64) site. "
          "The nodes' architecture comes from the profile (the job's partition, else the site), so the rule needs "
          "one with cpu_arch (the examples use generic with cpu_arch = \"aarch64\"). A value held in a variable is "
          "not judged.",
      fix="Leave --arch out, so the pull takes the nodes' own architecture, or name theirs (--arch arm64 on aarch64 "
          "nodes, --arch amd64 on x86_64 ones). Where the image is meant for other nodes than this job's, pull it "
          "where it runs.",
      profile="generic",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --time=00:30:00
module load apptainer
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f "$SCRATCH/images/ngc.sif" ] || apptainer pull --arch amd64 "$SCRATCH/images/ngc.sif" docker://nvcr.io/nvidia/pytorch:24.05-py3
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --time=00:30:00
module load apptainer
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f "$SCRATCH/images/ngc.sif" ] || apptainer pull --arch arm64 "$SCRATCH/images/ngc.sif" docker://nvcr.io/nvidia/pytorch:24.05-py3
""")
def _pull_for_other_arch(ctx: Context) -> Iterator[Any]:
    arch = _site_arch(ctx)
    if not arch:
        return
    for cmd, model in pulls(ctx) + builds(ctx):
        written, asked = _asked_arch(model)
        if not written or asked == arch:
            continue
        what = f"the {asked} image" if asked and asked != "?" else f"an image for {written.split(' ', 1)[1]}"
        name = ARCH_ALIASES[arch][0]
        yield (cmd.line, f"{model.binary} {model.action} {written} fetches {what}, but {_arch_place(ctx, arch)}: its "
                         f"programs stop there with 'exec format error'; leave {written.split(' ', 1)[0]} out (the "
                         f"pull then takes the node's own architecture) or write --arch {name}")


@rule("HPC419", "image-without-arch-build", "warning",
      summary="the script pulls or runs an image that has no build for the nodes' CPU architecture "
              "(docker://pytorch/pytorch on Arm nodes)",
      why="A registry image is built for one CPU architecture or several (a manifest list); apptainer pull and exec "
          "take the build for the node they run on. Some widely used images have x86_64 (amd64) builds only: "
          "pytorch/pytorch on Docker Hub publishes linux/amd64 and nothing else (the requests for arm64 builds, "
          "pytorch/pytorch#145716 and #157139, are open). On aarch64 nodes (NVIDIA Grace, GH200) the pull finds no "
          "image for the node or fetches the amd64 one, whose programs then stop with 'exec format error'. Only "
          "images whose builds are known are judged (hpcwidgets.spec.profile.IMAGE_ARCHES); an image the table does "
          "not list is left alone, as is a pull that names its --arch (HPC418's). The nodes' architecture comes from "
          "the profile (the job's partition, else the site), so the rule needs one with cpu_arch (the examples use "
          "generic with cpu_arch = \"aarch64\").",
      fix="Use an image built for the nodes' architecture: on Arm nodes NVIDIA's NGC PyTorch image "
          "(docker://nvcr.io/nvidia/pytorch:24.05-py3, built for arm64 and amd64; it runs on the CPU too), or your "
          "site's own image. docker manifest inspect IMAGE (or the registry's tag page) lists the architectures of "
          "a tag.",
      profile="generic",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --time=00:30:00
module load apptainer
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f "$SCRATCH/images/pytorch_2.3.1.sif" ] || apptainer pull "$SCRATCH/images/pytorch_2.3.1.sif" docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --time=00:30:00
module load apptainer
export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"
[ -f "$SCRATCH/images/pytorch_24.05.sif" ] || apptainer pull "$SCRATCH/images/pytorch_24.05.sif" docker://nvcr.io/nvidia/pytorch:24.05-py3
""")
def _image_without_arch_build(ctx: Context) -> Iterator[Any]:
    arch = _site_arch(ctx)
    if not arch:
        return
    refs = [(s.line, ctx.parsed.resolve(str(c.image), s.line)) for s, c in containers(ctx) if c.image]
    for cmd, model in pulls(ctx) + builds(ctx):
        source = str(getattr(model, "source", "") or "")
        if source and not _asked_arch(model)[0]:
            ref = ctx.parsed.resolve(source, cmd.line)
            refs.append((cmd.line, ref if "://" in ref or model.kind != "charliecloud.pull" else f"docker://{ref}"))
    seen: set[tuple[int, str]] = set()
    for line, ref in refs:
        built = image_arches(ref) if ref.startswith("docker://") else ()
        if not built or arch in built or (line, ref) in seen:
            continue
        seen.add((line, ref))
        yield (line, f"{ref.split('://', 1)[-1]} has builds for {', '.join(built)} only, but {_arch_place(ctx, arch)}: "
                     "the pull finds no image for them, or its programs stop with 'exec format error'; use an image "
                     f"built for {arch}{ARCH_IMAGE_HINTS.get(arch, '')}")


#: words in a script that show it picks its downloads by the machine's architecture: uname -m, arch, bash's
#: HOSTTYPE/MACHTYPE, Docker's TARGETARCH/TARGETPLATFORM, Python's platform.machine()
_PICKS_ARCH = re.compile(r"uname\s+-[a-z]*[mp]|\$\(\s*arch\s*\)|`\s*arch\s*`|\b(?:HOSTTYPE|MACHTYPE|TARGETARCH|"
                         r"TARGETPLATFORM|BUILDPLATFORM)\b|platform\.machine")


def arch_downloads(commands: Any, source: str, arch: str) -> Iterator[tuple[int, str, str, str]]:
    """The files for another CPU architecture than ``arch`` that ``commands`` (simple commands, or :class:`_Inner`)
    name in their words or assignments (:func:`~hpcwidgets.spec.profile.arch_named_files`): ``(line, file name, what it
    is, its architecture)``, each file once. None where ``source`` picks files by the machine's architecture
    (:data:`_PICKS_ARCH`: a case on $(uname -m) names the files of every architecture)."""
    if not arch or _PICKS_ARCH.search(source):
        return
    seen: set[str] = set()
    for item in commands:
        words = [str(w) for w in getattr(item, "argv", ())] + [str(v) for _, v in getattr(item, "assignments", ())]
        for name, kind, built in arch_named_files(" ".join(words)):
            if built != arch and name not in seen:
                seen.add(name)
                yield item.line, name, kind, built


#: what each kind of file does when it is for another architecture
_WRONG_ARCH_EFFECT = {"a Python wheel": "pip refuses it ('is not a supported wheel on this platform')",
                      "a conda installer": "the installer's programs stop with 'exec format error'",
                      "a Debian package": "dpkg refuses it ('package architecture … does not match system')",
                      "an RPM package": "rpm refuses it ('is intended for a different architecture')"}


def arch_download_message(name: str, kind: str, built: str, place: str, arch: str) -> str:
    """The message for a file for another architecture: what it is, what happens, what to use."""
    fix = {"a Python wheel": f"install by name and version (pip install torch==VERSION), so pip picks the {arch} wheel",
           "a conda installer": "download the installer named for the machine: …-Linux-$(uname -m).sh"}.get(
        kind, f"use the package built for {arch}" + (f" (_{ARCH_ALIASES[arch][0]}.deb)" if kind == "a Debian package"
                                                      and arch != "ppc64le" else ""))
    return f"{name} is {kind} built for {built}, but {place}: {_WRONG_ARCH_EFFECT[kind]}; {fix}"


@rule("HPC420", "download-for-other-arch", "warning",
      summary="the script installs a wheel, a conda installer or a .deb/.rpm built for another CPU architecture than "
              "the nodes' (x86_64 files on Arm nodes)",
      why="Binary packages are built for one CPU architecture and say which in their file names: a wheel's platform "
          "tag (…-manylinux2014_x86_64.whl, …-linux_aarch64.whl), the conda installers' names "
          "(Miniconda3-latest-Linux-x86_64.sh, Miniforge3-Linux-aarch64.sh), Debian's _amd64.deb/_arm64.deb and "
          "RPM's .x86_64.rpm/.aarch64.rpm. On nodes of another architecture pip refuses the wheel ('is not a "
          "supported wheel on this platform'), dpkg and rpm refuse the package, and the installer's programs stop "
          "with 'exec format error', after the job's wait in the queue. Such lines come from instructions written "
          "for x86 clusters and break on NVIDIA Grace and GH200 (aarch64) sites. A script that picks its files by "
          "the machine ($(uname -m), HOSTTYPE, a case on arch) is left alone. The nodes' architecture comes from "
          "the profile (the job's partition, else the site), so the rule needs one with cpu_arch (the examples use "
          "generic with cpu_arch = \"aarch64\").",
      fix="Let the tool pick the build: pip install torch==2.3.0 (pip chooses the wheel for the machine; with "
          "--index-url for CUDA builds), Miniforge3-$(uname)-$(uname -m).sh for conda, apt-get install NAME for "
          "Debian packages; or name the file built for the nodes (aarch64, arm64 in Debian's names).",
      profile="generic",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --time=00:30:00
wget https://github.com/conda-forge/miniforge/releases/download/24.3.0-0/Miniforge3-Linux-x86_64.sh
bash Miniforge3-Linux-x86_64.sh -b -p "$SCRATCH/conda"
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --time=00:30:00
wget "https://github.com/conda-forge/miniforge/releases/download/24.3.0-0/Miniforge3-$(uname)-$(uname -m).sh"
bash "Miniforge3-$(uname)-$(uname -m).sh" -b -p "$SCRATCH/conda"
""")
def _download_for_other_arch(ctx: Context) -> Iterator[Any]:
    arch = _site_arch(ctx)
    if not arch:
        return
    place = _arch_place(ctx, arch)
    for line, name, kind, built in arch_downloads(_simple_commands(ctx.parsed.lexed.code), ctx.parsed.source, arch):
        yield line, arch_download_message(name, kind, built, place, arch)
