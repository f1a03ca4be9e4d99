"""Rules about how the ranks of a job find each other: the MPI start-up interface srun offers Open MPI, the slots
mpirun counts, where an ipyparallel controller listens, the port a rendezvous server binds, and the NCCL settings
that decide which network the GPUs talk over.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from ..parse.script import launch_words
from ..spec.units import is_number
from . import Context, rule
from .catalogue import (MPI_LAUNCHERS, _PYTHON, _Inner, _script_env, _simple_commands, cached, component_views, containers,
                        env_flag, heterogeneous, job_cpus, job_nodes, simple_commands, step_tasks, steps)
from .directives import _DIAGNOSTICS


# --------------------------------------------------------------------------------------------
# what the script sets, and which MPI it shows

#: the options that hand a container or an MPI launcher NAME=value pairs (apptainer --env, ch-run --set-env,
#: Open MPI's -x, srun's --export list)
_ENV_OPTIONS = ("--env", "--set-env", "-x", "--export")
_CONTAINER_ENV = re.compile(r"^(?:APPTAINERENV_|SINGULARITYENV_)")


def _settings(ctx: Context, name: str) -> list[tuple[int, str]]:
    """Where the script gives ``name`` a value, as ``(line, value)``: an assignment or export in the batch shell
    (or in a ``bash -c`` script it runs), APPTAINERENV_NAME, and NAME=value after --env, --set-env, -x or srun
    --export. Commands inside an ``if``, a loop or a function are left out: a branch may set it for a case the rule
    cannot see (a one-node run)."""
    def make() -> list[tuple[int, str]]:
        out = []
        for cmd in _simple_commands(simple_commands(ctx)):
            for key, word in cmd.assignments:
                if _CONTAINER_ENV.sub("", key) == name:
                    out.append((cmd.line, str(word.value)))
            words = [str(w) for w in cmd.argv]
            for i, word in enumerate(words):
                option, eq, value = word.partition("=")
                if option not in _ENV_OPTIONS:
                    continue
                value = value if eq else (words[i + 1] if i + 1 < len(words) else "")
                for item in value.split(","):
                    key, eq, given = item.partition("=")
                    if eq and _CONTAINER_ENV.sub("", key) == name:
                        out.append((cmd.line, given))
        return out
    return cached(ctx, f"network_settings_{name}", make)


def _bare(value: str) -> str:
    return value.strip().strip("'\"").strip()


def _spans_nodes(ctx: Context) -> int:
    """The most nodes one component of the job surely has (the MIN of a range, or as many as --ntasks needs at
    --ntasks-per-node): more than 1 for a multi-node job."""
    job = ctx.job
    needed = -(-job.ntasks // job.ntasks_per_node) if job.nodes is None and isinstance(job.ntasks, int) \
        and isinstance(job.ntasks_per_node, int) and job.ntasks_per_node > 0 else 1
    return max([job_nodes(ctx), needed, *(job_nodes(view) for view in component_views(ctx))])


#: an Open MPI in a module or image name, with its major version when the name has one: openmpi/5.0.3,
#: OpenMPI/4.1.5-GCC-12.3.0, openmpi5, ompi-5.0, mpi_app_openmpi5.0.3.sif
_OPEN_MPI = re.compile(r"(?i)(?:open[-_]?mpi|(?<![a-z])ompi)(?:[-_/:.]?v?(\d+)(?![\d]))?")
#: MPIs other than Open MPI in a module or image name
_OTHER_MPI = re.compile(r"(?i)mpich|mvapich|intel[-_]?mpi|(?<![a-z])impi(?![a-z])|oneapi[-_]?mpi|cray[-_]?mpich")


#: an MPI launcher started by the step's command (srun … mpirun, or in the script of a bash -c it runs)
_MPI_LAUNCH = re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, MPI_LAUNCHERS)) + r")(?![\w.-])")
#: what unloads every package spack load loaded
_SPACK_UNLOAD_ALL = re.compile(r"^\s*spack\s+unload\s+(?:.*\s)?(?:-a|--all)\b")


def _names(ctx: Context, line: int | None = None) -> list[tuple[str, str]]:
    """The names that show which MPI the job uses when the command on ``line`` runs (at the script's end when
    None): ``("module", name)`` for each module loaded then (see :func:`_modules_loaded`) and ``("spack", spec)``
    for each package spec ``spack load`` loaded after the last ``module purge`` before it (a spack load survives a
    purge, but a script that purges then sets up the MPI it means to use) or ``spack unload --all``;
    ``("image", reference)`` for each image it runs (resolved through the script's variables)."""
    def make() -> list[tuple[str, str]]:
        end = len(ctx.parsed.lines) + 1 if line is None else line
        code = [cmd for cmd in simple_commands(ctx) if cmd.line < end]
        purged = max((cmd.line for cmd in code if _module_change([str(w) for w in cmd.argv])[2]
                      or _SPACK_UNLOAD_ALL.match(ctx.parsed.lines[cmd.line - 1])), default=0)
        out = [("module", name) for name in _modules_loaded(code)]
        out += [("spack", spec) for cmd in code if cmd.line > purged
                for spec in _spack_loaded([str(w) for w in cmd.argv])]
        out += [("image", ctx.parsed.resolve(str(c.image), s.line)) for s, c in containers(ctx) if c.image]
        return out
    return cached(ctx, f"network_mpi_names_{line}", make)


def _modules_loaded(code: Any) -> list[str]:
    """The modules that the ``module``/``ml`` commands of ``code`` (top-level simple commands, in order) leave
    loaded: a purge unloads all, unload and swap take a module out by its name (openmpi for openmpi/5.0.3), and a
    load replaces a loaded module of the same name, as Lmod's one-name rule does (module swap openmpi/5.0.3
    openmpi/4.1.6, and module load openmpi/4.1.6 after openmpi/5.0.3, both leave Open MPI 4)."""
    loaded: list[str] = []
    for cmd in code:
        unloads, loads, purge = _module_change([str(w) for w in cmd.argv])
        if purge:
            loaded = []
        gone = {_module_name(n) for n in unloads + loads}
        loaded = [n for n in loaded if _module_name(n) not in gone] + loads
    return loaded


def _module_name(module: str) -> str:
    """A module's name without its version: openmpi of openmpi/5.0.3 (Lmod's name/version layout)."""
    return module.rsplit("/", 1)[0] if "/" in module else module


#: module subcommands, by what they do to the loaded modules
_MODULE_LOADS = ("load", "add", "try-load", "try-add")
_MODULE_UNLOADS = ("unload", "rm", "del", "remove")
_MODULE_SWAPS = ("swap", "switch", "sw")
#: ml subcommands that neither load nor unload (ml NAME alone loads NAME, ml -NAME unloads it)
_ML_OTHER = frozenset({"list", "av", "avail", "spider", "show", "save", "restore", "help", "keyword", "whatis",
                       "savelist", "describe", "is-loaded", "is-avail", "use", "unuse", "reset", "update", "refresh"})


def _module_change(words: list[str]) -> tuple[list[str], list[str], bool]:
    """What a ``module``/``ml`` command does to the loaded modules: ``(unloaded, loaded, purges)``. ``ml A -B``
    loads A and unloads B; ``module swap A B`` unloads A and loads B (with one module, it replaces the loaded one of
    its name). Any other command changes nothing."""
    if not words or words[0] not in ("module", "ml"):
        return [], [], False
    # module's own options (-q, --force) go before the subcommand; ml writes an unload as -NAME
    args = [w for w in words[1:] if not w.startswith("--" if words[0] == "ml" else "-")]
    sub, rest = (args[0], args[1:]) if args else ("", [])
    if sub == "purge":
        return [], [], True
    if sub in _MODULE_LOADS:
        return [], rest, False
    if sub in _MODULE_UNLOADS:
        return rest, [], False
    if sub in _MODULE_SWAPS:
        return (rest[:1], rest[1:2], False) if len(rest) >= 2 else (rest, rest, False)
    if words[0] == "ml" and sub and sub not in _ML_OTHER:
        return [w[1:] for w in args if w.startswith("-")], [w for w in args if not w.startswith("-")], False
    return [], [], False


def _spack_loaded(words: list[str]) -> list[str]:
    """The package specs of ``spack load [options] SPEC…`` (openmpi@5.0.3 of ``openmpi@5.0.3 %gcc``): the words
    that name a package, not its compiler (%gcc), dependencies (^ucx), variants (+cuda, fabrics=ucx) or options."""
    if words[:2] != ["spack", "load"]:
        return []
    out, skip = [], False
    for word in words[2:]:
        if skip or word == "--only":
            skip = word == "--only"
            continue
        if re.match(r"[A-Za-z]", word) and "=" not in word.partition("@")[0]:
            out.append(word)
    return out


def _open_mpi_major(name: str) -> int | None:
    """The Open MPI major version a name shows (0 for Open MPI of no stated version), None for no Open MPI. A spack
    spec's version follows an @ (openmpi@5.0.3, openmpi@=5.0.3, openmpi@5:)."""
    name = re.sub(r"@=?", "/", name)
    m = _OPEN_MPI.search(name)
    if m is None:
        return None
    return int(m.group(1)) if m.group(1) else 0


# --------------------------------------------------------------------------------------------
# HPC127: Open MPI 5 started by srun --mpi=pmi2

@rule("HPC127", "open-mpi-5-under-pmi2", "error",
      summary="srun --mpi=pmi2 (or SLURM_MPI_TYPE=pmi2) starts ranks of Open MPI 5, which has no PMI-2 support",
      why="Open MPI 5.0 and later dropped PMI-1 and PMI-2: under srun they need Slurm's PMIx plugin. Given pmi2, "
          "each task finds no PMIx server and starts as a singleton (Open MPI prints 'No PMIx server was reachable, "
          "but a PMI1/2 was detected … singletons will be started'): N copies of rank 0 of 1, which never talk to "
          "each other. The job usually ends without an error, having done the same work N times. Reported only where "
          "the script shows Open MPI 5 (a module such as openmpi/5.0.3, spack load openmpi@5.0.3, or an image named "
          "for it; what it loads after its last module purge): MPICH, Intel MPI and Open MPI 4 built with PMI-2 work "
          "with pmi2.",
      fix="Start the ranks with srun --mpi=pmix (srun --mpi=list shows the plugins the site has), and remove "
          "SLURM_MPI_TYPE=pmi2; or start them with Open MPI's own mpirun in the batch shell.",
      catalogue=(17,),
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=32
module load openmpi/5.0.3
srun --mpi=pmi2 ./solver
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=32
module load openmpi/5.0.3
srun --mpi=pmix ./solver
""")
def _open_mpi_5_under_pmi2(ctx: Context) -> Iterator[Any]:
    reported: set[int] = set()
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is None:
            continue
        plugin, line = _mpi_plugin(ctx, step)
        if plugin != "pmi2" or line in reported:
            continue
        shown = _open_mpi_5_ranks(ctx, step)
        if not shown:
            continue
        reported.add(line)
        how = "srun --mpi=pmi2" if srun.mpi else "SLURM_MPI_TYPE=pmi2"
        yield (line, f"{how} starts the ranks through PMI-2, which Open MPI 5 ({shown}) no longer supports: each "
                     "task starts as a singleton, rank 0 of 1, and the ranks never talk to each other (usually with no "
                     "error); "
                     "use srun --mpi=pmix (srun --mpi=list shows the site's plugins)")


def _mpi_plugin(ctx: Context, step: Any) -> tuple[str, int]:
    """The MPI plugin the srun of ``step`` names (--mpi, else SLURM_MPI_TYPE as the script sets it) and the line to
    change for it: the step's, or that of the SLURM_MPI_TYPE assignment. ("", step line) when it names none: srun
    then uses the site's MpiDefault."""
    plugin = str(step.chain.srun.mpi)
    if plugin:
        return plugin, step.line
    var = ctx.parsed.variable("SLURM_MPI_TYPE", step.line)
    own = dict(step.env).get("SLURM_MPI_TYPE") is not None
    return _bare(_script_env(ctx, step, "SLURM_MPI_TYPE") or ""), var.line if var is not None and not own else step.line


def _open_mpi_5_ranks(ctx: Context, step: Any) -> str:
    """What shows that srun starts the ranks of an Open MPI 5 program in ``step`` ("" when nothing does): not for one
    task (a singleton anyway), nor for srun … mpirun (also in a container's bash -c), where mpirun starts the ranks
    (HPC119)."""
    if step_tasks(ctx, step) == 1 or _MPI_LAUNCH.search(step.command.text):
        return ""
    return _open_mpi_5(ctx, step)


def _open_mpi_5(ctx: Context, step: Any) -> str:
    """What shows that the ranks of ``step`` link Open MPI 5 or later ("" when nothing does): the image the step runs
    when its name says which MPI it has, else a module the script loads."""
    c = step.chain.container
    if c is not None and c.image:
        image = ctx.parsed.resolve(str(c.image), step.line)
        major = _open_mpi_major(image)
        if major is not None or _OTHER_MPI.search(image):
            return f"image {image}" if major is not None and major >= 5 else ""
    for kind, name in _names(ctx, step.line):
        major = _open_mpi_major(name) if kind != "image" else None
        if major is not None and major >= 5:
            return f"module {name}" if kind == "module" else f"spack load {name}"
    return ""


# --------------------------------------------------------------------------------------------
# HPC144: the host's mpirun is of another MPI family than the image's

#: the two MPI families whose launchers and libraries work together: Open MPI (and NVIDIA's HPC-X, built on it), and
#: MPICH with the MPIs that share its ABI (Intel MPI, MVAPICH, Cray MPICH)
_OPEN_MPI_FAMILY = re.compile(_OPEN_MPI.pattern + r"|(?i:hpc-?x)")


def mpi_family(name: str) -> str:
    """The MPI family a module, spack spec or image name shows: "Open MPI", "MPICH", or "" when it shows neither."""
    if _OPEN_MPI_FAMILY.search(name):
        return "Open MPI"
    return "MPICH" if _OTHER_MPI.search(name) else ""


def host_and_image_mpi(ctx: Context, cmd: Any) -> tuple[str, str, str, str] | None:
    """For an mpirun (mpiexec …) on the host that starts a container, when the MPI the script loads on the host and
    the one the image's name shows are of different families: ``(host family, what shows it, image family,
    image)``; None otherwise."""
    words = launch_words([str(v) for v in cmd.argv])
    if not words or words[0].rsplit("/", 1)[-1] not in MPI_LAUNCHERS:
        return None
    _options, at = _mpirun_split(words[1:])
    program = words[1 + at:]
    runtime = next((k for k, w in enumerate(program) if w.rsplit("/", 1)[-1] in ("apptainer", "singularity")), None)
    if runtime is None or len(program) < runtime + 3 or program[runtime + 1] not in ("exec", "run"):
        return None
    from ..errors import ParseError
    from ..parse.argv import parse_argv
    try:
        image = str(parse_argv(program[runtime:]).model.image)
    except ParseError:  # a command the reader cannot model is left to the other rules
        return None
    image = ctx.parsed.resolve(image, cmd.line).rsplit("/", 1)[-1]
    inside = mpi_family(image)
    host = [(mpi_family(name), f"{'module' if kind == 'module' else 'spack load'} {name}")
            for kind, name in _names(ctx, cmd.line) if kind != "image" and mpi_family(name)]
    if not inside or not host or host[-1][0] == inside:
        return None
    return host[-1][0], host[-1][1], inside, image


@rule("HPC144", "host-mpi-differs-from-image-mpi", "error",
      summary="mpirun on the host (Open MPI, or an MPICH-family MPI) starts container ranks whose image has the other "
              "family's MPI",
      why="In Apptainer's hybrid model the host's mpirun starts the ranks, and the MPI library inside the image "
          "connects them through the launcher's own protocol. Open MPI (and HPC-X, built on it) and the MPICH family "
          "(MPICH, Intel MPI, MVAPICH, Cray MPICH, which share one ABI) do not speak each other's: an MPICH program "
          "started by Open MPI's mpirun finds no launcher it knows and starts as a singleton, rank 0 of 1, in every "
          "task, so the job runs N copies of one rank (or stops in MPI_Init). Which MPI each side has is read from "
          "names: the last MPI module (or spack load) of the script before the line, and the image's file name "
          "(mpich, openmpi, ompi, impi, intel-mpi, mvapich, hpcx); where either name says nothing, nothing is "
          "reported.",
      fix="Load a host MPI of the image's family (for an MPICH image: mpich, cray-mpich or intel-mpi; for an Open MPI "
          "image: openmpi of the same major version), or start the ranks with srun --mpi=pmix (or --mpi=pmi2 for an "
          "MPICH image), which needs no host MPI at all.",
      catalogue=(17,),
      bad="""#!/bin/bash
#SBATCH --ntasks=8
module load openmpi/4.1.6
mpirun -n 8 apptainer exec solver_mpich-4.1.sif /opt/app/solver
""",
      good="""#!/bin/bash
#SBATCH --ntasks=8
module load mpich/4.1.2
mpirun -n 8 apptainer exec solver_mpich-4.1.sif /opt/app/solver
""")
def _host_mpi_differs(ctx: Context) -> Iterator[Any]:
    for cmd in _simple_commands(ctx.parsed.lexed.code):   # also in functions, loops and ifs
        if isinstance(cmd, _Inner):
            continue
        found = host_and_image_mpi(ctx, cmd)
        if found is None:
            continue
        host, shown, inside, image = found
        named = {"Open MPI": "Open MPI", "MPICH": "an MPICH-family MPI"}
        other, plugin = ("mpich, cray-mpich or intel-mpi", "pmi2") if inside == "MPICH" else \
            ("openmpi of the image's major version", "pmix")
        launcher = launch_words([str(v) for v in cmd.argv])[0].rsplit("/", 1)[-1]
        yield cmd.line, (f"the host's {launcher} is {named[host]} ({shown}), but the image {image} has {named[inside]}: "
                         f"its ranks do not understand this launcher and each starts alone, as rank 0 of 1; load a "
                         f"host MPI of the image's family ({other}), or start the ranks with srun --mpi={plugin}")


# --------------------------------------------------------------------------------------------
# HPC135: Open MPI 5 started by srun under a site default that is not PMIx

def _not_an_mpi_program(step: Any) -> bool:
    """A step that runs a system tool (srun hostname, srun mkdir -p …): it links no MPI, so no PMIx is missed."""
    program = [str(w) for w in step.chain.program]
    return bool(program) and step.chain.container is None and step.chain.launcher is None \
        and program[0].rsplit("/", 1)[-1] in _SYSTEM_TOOLS


#: programs a step runs that link no MPI library: the quick looks at the nodes HPC320 knows, and files handled on each
_SYSTEM_TOOLS = _DIAGNOSTICS | frozenset({"sleep", "du", "ls", "mkdir", "rm", "cp", "mv", "ln", "touch", "chmod",
                                          "tar", "rsync", "find", "numactl"})


@rule("HPC135", "open-mpi-5-under-site-mpi-default", "error",
      summary="srun starts ranks of Open MPI 5 without --mpi, and the site's MpiDefault (the profile's mpi_default) "
              "is not pmix",
      why="An srun that names no MPI plugin (no --mpi, no SLURM_MPI_TYPE) uses slurm.conf's MpiDefault, which is none "
          "unless the site changes it. Under none or pmi2 no PMIx server runs, and Open MPI 5, which needs one under "
          "srun (it dropped PMI-1 and PMI-2), starts each task as a singleton, rank 0 of 1: N copies of the program "
          "that never talk to each other, with no error for a plain srun (open-mpi/ompi#13523). Reported only with a "
          "profile that gives mpi_default, and where the script shows Open MPI 5 as HPC127 reads it (a module, spack "
          "load or the image's name); a step that names pmi2 itself is HPC127's, and one that runs a system tool (srun "
          "hostname, srun mkdir …) links no MPI and is left alone.",
      fix="Start the ranks with srun --mpi=pmix (srun --mpi=list shows the site's plugins), or export "
          "SLURM_MPI_TYPE=pmix before srun.",
      catalogue=(17,),
      profile="local",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
module load openmpi/5.0.3
srun ./solver
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
module load openmpi/5.0.3
srun --mpi=pmix ./solver
""")
def _open_mpi_5_under_site_default(ctx: Context) -> Iterator[Any]:
    default = str(getattr(ctx.profile, "mpi_default", "") or "")
    if not default or default.startswith("pmix"):
        return
    for step in steps(ctx):
        if step.chain.srun is None or _mpi_plugin(ctx, step)[0] or _not_an_mpi_program(step):
            continue
        shown = _open_mpi_5_ranks(ctx, step)
        if shown:
            yield (step.line, f"srun names no MPI plugin, so it uses the site's MpiDefault={default} ({ctx.profile.name} "
                              f"profile), which starts no PMIx server: the ranks of Open MPI 5 ({shown}) each start as "
                              "a singleton, rank 0 of 1, and never talk to each other (with no error); use srun "
                              "--mpi=pmix")


# --------------------------------------------------------------------------------------------
# HPC128: mpirun -np N above the job's tasks

#: mpirun's (Open MPI's and Hydra's) options that take one value, and those that take two (--mca NAME VALUE)
_MPIRUN_VALUE = frozenset({
    "-x", "--map-by", "-map-by", "--rank-by", "-rank-by", "--bind-to", "-bind-to", "-H", "--host", "-host",
    "--hostfile", "-hostfile", "--machinefile", "-machinefile", "-f", "--npernode", "-npernode", "-N", "--ppn",
    "-ppn", "-perhost", "--npersocket", "-npersocket", "--output-filename", "-output-filename", "--prefix", "-prefix",
    "--wdir", "-wdir", "--wd", "-wd", "--path", "-path", "-genvlist", "-envlist", "-bootstrap", "-launcher", "-iface",
    "--rankfile", "-rf", "--cpus-per-proc", "-cpus-per-proc", "--cpus-per-rank", "--personality", "--timeout",
    "--preload-files", "--tune", "--app", "-configfile", "--output", "--stdin", "--runtime-options", "--display"})
_MPIRUN_TWO_VALUES = frozenset({"--mca", "-mca", "--gmca", "-gmca", "--prtemca", "--pmixmca", "-genv", "-env"})
_NP = ("-np", "--np", "-n", "--n")
#: what lets mpirun start more ranks than the job has tasks: its own slots (a host list or file), or oversubscribing
_OWN_SLOTS = frozenset({"-H", "--host", "-host", "--hostfile", "-hostfile", "--machinefile", "-machinefile", "-f",
                        "--rankfile", "-rf", "--default-hostfile", "-default-hostfile"})


def _mpirun_options(words: list[str]) -> dict[str, str]:
    """mpirun's own options (those before the program) as ``{option: value}`` (a switch: ""), the rank count under
    "-np" however it was spelt (-n 4, -np=4, --np 4, -n4). An option this table does not know is read as a switch,
    so a value after it ends the options early: a rank count after it is missed, never the program's own -n read."""
    return _mpirun_split(words)[0]


def _mpirun_split(words: list[str]) -> tuple[dict[str, str], int]:
    """:func:`_mpirun_options` and the index of the program's first word in ``words``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or word == "-":
            break  # the program
        option, eq, value = word.partition("=")
        if option in _NP or re.fullmatch(r"-n\d+", word):
            if re.fullmatch(r"-n\d+", word):
                value, eq = word[2:], "="
            elif not eq:
                i += 1
                value = words[i] if i < len(words) else ""
            out["-np"] = value
        elif option in _MPIRUN_VALUE and not eq:
            i += 1
            out[option] = words[i] if i < len(words) else ""
        elif option in _MPIRUN_TWO_VALUES and not eq:
            i += 2
            out[option] = ""
        else:
            out[option] = value
        i += 1
    return out, i


def _mpiruns(ctx: Context) -> list[tuple[int, str, list[str], Any]]:
    """The mpirun/mpiexec commands the batch shell runs itself (not under srun: HPC119 covers those): their line,
    the launcher as written, the words after it, and the container step it runs in (None on the host). At the top
    level, in an ``if``, a loop or a function, in a ``bash -c`` script, and as the command of a container."""
    out: list[tuple[int, str, list[str], Any]] = []
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        if isinstance(cmd, _Inner) and launch_words([str(w) for w in cmd.outer.argv])[:1] == ["srun"]:
            continue
        words = launch_words([str(w) for w in cmd.argv])
        if words and words[0].rsplit("/", 1)[-1] in MPI_LAUNCHERS:
            out.append((cmd.line, words[0], words[1:], None))
    for step, c in containers(ctx):
        program = [str(w) for w in step.chain.program]
        if step.chain.srun is None and program and program[0].rsplit("/", 1)[-1] in MPI_LAUNCHERS:
            out.append((step.line, program[0], program[1:], step))
    return out


def _job_slots(ctx: Context) -> tuple[int, str] | None:
    """The most tasks the job can have by its #SBATCH lines, with how they were counted; None where they cannot be
    told (a heterogeneous job, a count in a variable, an --exclusive job without --ntasks, which has a task for each
    CPU of its nodes, tasks counted per core, socket or GPU)."""
    held = None if heterogeneous(ctx) else job_cpus(ctx)
    return (held.tasks, held.counted) if held is not None and not held.by_node_cpus else None


def _shows_open_mpi(ctx: Context, launcher: str, step: Any) -> bool | None:
    """True when the script shows Open MPI (a module or spack load, the image the launcher runs in, the launcher's
    path, an OMPI_MCA_ setting), False when it shows only another MPI (MPICH, Intel MPI: their Hydra launcher does
    not count slots), None when it shows none."""
    names = [name for kind, name in _names(ctx) if kind != "image"]
    if step is not None and step.chain.container.image:
        names.append(ctx.parsed.resolve(str(step.chain.container.image), step.line))
    names.append(launcher)
    if any(_open_mpi_major(n) is not None for n in names) or "OMPI_MCA_" in ctx.parsed.source:
        return True
    return False if any(_OTHER_MPI.search(n) for n in names) else None


@rule("HPC128", "mpirun-ranks-beyond-the-job-tasks", "warning",
      summary="mpirun -np N asks for more ranks than the job has tasks (#SBATCH --ntasks, or one per node)",
      why="Inside a Slurm job, mpirun takes its slots from the job's tasks (SLURM_TASKS_PER_NODE), not its CPUs: a "
          "job without --ntasks has as many tasks as its CPUs hold tasks of --cpus-per-task, so one task, one slot, "
          "per node for --cpus-per-task=8 (two for a one-CPU task on a node of two threads per core, as Slurm hands "
          "out whole cores: the count follows the threads_per_core the profile gives the job's partition, and takes "
          "two where it gives none; a partition that hands out whole nodes gives a task for each of their CPUs, "
          "and there the job is fine). Open MPI then "
          "refuses to start: 'There are not enough slots available in the system to satisfy the 8 slots that were "
          "requested by the application'. MPICH and Intel MPI start the ranks anyway, crowded onto the CPUs of the "
          "tasks the job has. Where the script shows Open MPI (a module, a spack load, an image or the launcher's "
          "path named for it) the message quotes Open MPI's error. Not reported with --oversubscribe, --map-by …:OVERSUBSCRIBE, a "
          "host list or hostfile, a rank count in a variable, for an --exclusive job (a task for each CPU of its "
          "nodes), in an Apptainer container with a clean environment (mpirun there does not see the job), or in a "
          "script that shows only MPICH or Intel MPI.",
      fix="Ask the job for the ranks as tasks (#SBATCH --ntasks=8, with --cpus-per-task for each rank's threads), or "
          "leave out -np and let mpirun start one rank per task.",
      catalogue=(17,),
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --cpus-per-task=8
#SBATCH --time=01:00:00
mpirun -np 8 ./solver
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=8
#SBATCH --time=01:00:00
mpirun -np 8 ./solver
""")
def _ranks_beyond_tasks(ctx: Context) -> Iterator[Any]:
    found = _mpiruns(ctx)
    slots = _job_slots(ctx) if found else None
    if slots is None or re.search(r"(?i)oversubscribe|SLURM_TASKS_PER_NODE=", ctx.parsed.source):
        return
    tasks, counted = slots
    for line, launcher, words, step in found:
        options = _mpirun_options(words)
        given = ctx.parsed.resolve(options.get("-np", ""), line)
        if not is_number(given) or int(given) <= tasks or _OWN_SLOTS & set(options):
            continue
        if step is not None and _hides_slurm(ctx, step):
            continue
        shows = _shows_open_mpi(ctx, launcher, step)
        if shows is False:
            continue
        n = int(given)
        flag = next((w.partition("=")[0] if not re.fullmatch(r"-n\d+", w) else "-n" for w in words
                     if w.partition("=")[0] in _NP or re.fullmatch(r"-n\d+", w)), "-np")
        of_tasks = f"{tasks} task{'s' if tasks > 1 else ''}"
        if shows:
            what = ("Open MPI takes its slots from the job's tasks and stops with 'There are not enough slots "
                    f"available in the system to satisfy the {n} slots'")
        else:
            what = ("Open MPI takes its slots from the job's tasks and stops with 'not enough slots available'; "
                    f"MPICH and Intel MPI crowd the {n} ranks onto the CPUs of {of_tasks}")
        yield (line, f"{launcher} {flag} {n} asks for {n} ranks but the job has {of_tasks} ({counted}): {what}; ask "
                     f"the job for them (#SBATCH --ntasks={n}, with --cpus-per-task for threads) or leave out {flag}")


def _hides_slurm(ctx: Context, step: Any) -> bool:
    """An Apptainer container with a clean environment (--cleanenv, --containall, or their variables): mpirun in it
    does not see the job's SLURM_* variables and counts the node's cores as its slots."""
    c = step.chain.container
    return c.kind == "apptainer.run" and bool(c.cleanenv or c.containall or env_flag(ctx, step, "cleanenv")
                                              or env_flag(ctx, step, "containall"))


# --------------------------------------------------------------------------------------------
# HPC134: mpirun ranks per node beyond the GPUs per node

#: mpirun's options that set the ranks per node themselves (Open MPI's -npernode/-N, Hydra's -ppn/-perhost)
_PER_NODE = ("--npernode", "-npernode", "-N", "--ppn", "-ppn", "-perhost")


def _ranks_per_node(ctx: Context, options: dict[str, str], line: int) -> tuple[int, str] | None:
    """How many ranks an mpirun in the job starts on a node, and why: its own -npernode (-ppn …), else one per task
    slot (--ntasks-per-node, or fewer when -np asks for fewer ranks); None when it cannot be told (a map, a host
    list, a count in a variable)."""
    if _OWN_SLOTS & set(options) or any(k in options for k in ("--map-by", "-map-by", "--rankfile", "-rf")):
        return None
    given = next((options[k] for k in _PER_NODE if k in options), None)
    if given is not None:
        value = ctx.parsed.resolve(given, line)
        return (int(value), f"its {next(k for k in _PER_NODE if k in options)} {value}") if is_number(value) else None
    per_node = ctx.job.ntasks_per_node
    if not isinstance(per_node, int):
        return None
    ranks = ctx.parsed.resolve(options.get("-np", ""), line)
    if is_number(ranks) and int(ranks) < per_node:
        return int(ranks), f"-np {ranks}"
    return per_node, f"one per task slot, --ntasks-per-node={per_node}"


@rule("HPC134", "mpirun-ranks-beyond-gpus", "warning",
      summary="mpirun starts more Python ranks per node than the job has GPUs per node",
      why="Inside a Slurm job mpirun places its ranks on the job's task slots (--ntasks-per-node of them on each node) "
          "unless told otherwise. A Python program that gives each rank one GPU by its rank on the node (Horovod's "
          "hvd.local_rank(), DDP's LOCAL_RANK, mpi4py with cuda.set_device) then has ranks beyond the node's GPUs: "
          "they stop with 'invalid device ordinal' or crowd onto a GPU another rank uses. The same mistake under srun "
          "is HPC120's. Not reported when each task asks for its own GPUs (--gpus-per-task) or the ranks are placed "
          "by a map, host list or rankfile.",
      fix="Ask for as many tasks per node as GPUs (--ntasks-per-node=4 with --gres=gpu:4), or pass mpirun -npernode "
          "with the GPUs per node.",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:4
mpirun -np 16 singularity exec --nv horovod.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
mpirun -np 8 singularity exec --nv horovod.sif python train.py
""")
def _mpirun_ranks_beyond_gpus(ctx: Context) -> Iterator[Any]:
    gpus = ctx.job.gpus_on_each_node
    if not gpus or ctx.job.gpus_per_task or heterogeneous(ctx):
        return
    for line, launcher, words, step in _mpiruns(ctx):
        options, start = _mpirun_split(words)
        rest = words[start:]
        if not any(_PYTHON.fullmatch(w.rsplit("/", 1)[-1]) for w in rest[:12]):
            continue  # not a Python program (a solver that may use the GPUs its own way)
        found = _ranks_per_node(ctx, options, line)
        if found is None or found[0] <= gpus:
            continue
        ranks, why = found
        yield (line, f"{launcher} starts {ranks} ranks per node ({why}) on {gpus} GPU{'s' if gpus > 1 else ''} per "
                     f"node: with one process per GPU (hvd.local_rank(), LOCAL_RANK) the ranks beyond {gpus} find no "
                     f"GPU of their own (invalid device ordinal) or share one; ask for --ntasks-per-node={gpus}, or "
                     f"pass {launcher} -npernode {gpus}")


# --------------------------------------------------------------------------------------------
# HPC129: an ipyparallel controller on loopback, engines on other nodes

#: a setting that makes the controller listen beyond loopback (or passes the controller arguments that may)
_CONTROLLER_IP = re.compile(r"(?i)^--(?:\w+\.)*(?:ip|engine[-_]ip|controller[-_]ip|client[-_]ip"
                            r"|controller[-_]args|ipcontroller[-_]args)$")
#: the same set in a config file the script writes, or a profile it does not make itself
_IP_IN_CONFIG = re.compile(r"(?:IPController|HubFactory|Cluster)\.(?:engine_|controller_)?ip\b|controller_args")
#: an engine launcher that starts engines on other nodes (ipcluster --engines=MPI, Slurm, SSH …)
_REMOTE_ENGINES = re.compile(r"(?i)mpi|slurm|ssh|pbs|sge|lsf|htcondor|batch")


def _ipyparallel_commands(ctx: Context) -> Iterator[tuple[int, list[str]]]:
    """Each command's words; a command in the script of ``srun bash -c '…'`` after the words of that srun (so an
    ipengine there counts as started by srun)."""
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        words = launch_words([str(w) for w in cmd.argv])
        if words and isinstance(cmd, _Inner):
            outer = launch_words([str(w) for w in cmd.outer.argv])
            if outer and outer[0].rsplit("/", 1)[-1] in ("srun", *MPI_LAUNCHERS):
                words = outer + words
        if words:
            yield cmd.line, words


def _options(words: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            key, eq, value = word.partition("=")
            out[key] = value if eq else (words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("-")
                                         else "")
    return out


def _remote_engines(words: list[str]) -> bool:
    """``ipcluster start|engines`` with an engine launcher that places engines on other nodes."""
    for key, value in _options(words).items():
        if key == "--engines" or key.endswith(".engine_launcher_class"):
            return bool(_REMOTE_ENGINES.search(value))
    return False


@rule("HPC129", "ipyparallel-controller-on-loopback", "warning",
      summary="A multi-node job starts ipyparallel engines on other nodes, but ipcontroller listens on 127.0.0.1",
      why="ipcontroller (and the controller ipcluster starts) listens on the loopback interface unless told "
          "otherwise, and writes tcp://127.0.0.1:… into ipcontroller-engine.json. Engines srun or mpiexec starts on "
          "the other nodes read that file, connect to their own node and never register: the client waits for them "
          "until the job's time limit. (Not reported when the script gives the controller --ip, --engine-ip or "
          "--IPController.ip=…, writes c.IPController.ip into a profile, or uses a --profile it did not create, "
          "whose config may set it.)",
      fix="Let the controller listen on the node's network: ipcontroller --ip='*' (on a trusted cluster network) "
          "or put c.IPController.ip = '*' into the profile's ipcontroller_config.py.",
      bad="""#!/bin/bash
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=16
#SBATCH --time=02:00:00
profile=job_${SLURM_JOB_ID}
ipython profile create --parallel --profile="$profile"
ipcontroller --profile="$profile" &
sleep 10
srun ipengine --profile="$profile" &
sleep 30
python analysis.py --profile "$profile"
""",
      good="""#!/bin/bash
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=16
#SBATCH --time=02:00:00
profile=job_${SLURM_JOB_ID}
ipython profile create --parallel --profile="$profile"
ipcontroller --ip='*' --profile="$profile" &
sleep 10
srun ipengine --profile="$profile" &
sleep 30
python analysis.py --profile "$profile"
""")
def _controller_on_loopback(ctx: Context) -> Iterator[Any]:
    source = ctx.parsed.source
    if "ipcontroller" not in source and "ipcluster" not in source or _spans_nodes(ctx) < 2 \
            or _IP_IN_CONFIG.search(source):
        return
    makes_profile = re.search(r"\bipython3?\s+profile\s+create\b", source) is not None
    controllers, engines = [], []
    for line, words in _ipyparallel_commands(ctx):
        name = words[0].rsplit("/", 1)[-1]
        sub = words[1] if len(words) > 1 else ""
        if name == "ipcontroller" or (name == "ipcluster" and sub == "start"):
            controllers.append((line, words))
        if name == "ipcluster" and sub in ("start", "engines") and _remote_engines(words):
            engines.append((line, f"ipcluster {sub} --engines"))
        elif name in ("srun", *MPI_LAUNCHERS) and "ipengine" in [w.rsplit("/", 1)[-1] for w in words[1:]]:
            if name == "srun" and _one_node_srun(words):
                continue
            engines.append((line, name))
    if not engines:
        return
    for line, words in controllers:
        options = _options(words)
        if any(_CONTROLLER_IP.match(key) for key in options):
            continue
        if ("--profile" in options or "--profile-dir" in options) and not makes_profile:
            continue  # a profile made before the job: its ipcontroller_config.py may set the address
        where, how = engines[0]
        name = "ipcontroller" if words[0].rsplit("/", 1)[-1] == "ipcontroller" else "the controller ipcluster starts"
        yield (line, f"{name} listens on 127.0.0.1 (its default), but {how} on line {where} starts engines on the "
                     f"job's other nodes: they read tcp://127.0.0.1:… from ipcontroller-engine.json, connect to their "
                     "own node and never register, and the client waits until the time limit; start it with "
                     "--ip='*' (on a trusted network) or set c.IPController.ip = '*' in the profile")


def _one_node_srun(words: list[str]) -> bool:
    """``srun -N1 …`` / ``srun --nodes=1 …``: a step held to one node (the engines may share the controller's)."""
    for i, word in enumerate(words[1:], 1):
        option, eq, value = word.partition("=")
        if option in ("-N", "--nodes"):
            value = value if eq else (words[i + 1] if i + 1 < len(words) else "")
            return value == "1"
        if re.fullmatch(r"-N1", word):
            return True
    return False


# --------------------------------------------------------------------------------------------
# HPC130: a rendezvous port in the ephemeral range

#: Linux's default net.ipv4.ip_local_port_range: the source ports outgoing connections are given
EPHEMERAL = (32768, 60999)
#: the variables and options that name the port a rendezvous server listens on
_PORT_VARIABLES = ("MASTER_PORT", "PET_MASTER_PORT")
_PORT_OPTIONS = ("--master-port", "--master_port", "--main_process_port", "--main-process-port")
_ENDPOINT_OPTIONS = ("--rdzv-endpoint", "--rdzv_endpoint")
_ARITH = re.compile(r"^\$\(\((.*)\)\)$", re.S)
#: the same sum written for expr: $(expr 45000 + $SLURM_JOB_ID % 10000)
_EXPR = re.compile(r"^\$\(\s*expr\s+(.*)\)$", re.S)
_SHUF = re.compile(r"^\$\(\s*shuf\s+(?:-n\s*1\s+)?-i\s*(\d+)-(\d+)(?:\s+-n\s*1)?\s*\)$")
_REF = re.compile(r"^\$\{?([A-Za-z_]\w*)\}?$")
#: ${NAME:-value} and ${NAME-value}: the value when the script does not set NAME
_DEFAULT = re.compile(r"^\$\{([A-Za-z_]\w*):?-([^{}$`'\"\s]*)\}$")
#: the last N digits of the job id, $(echo -n $SLURM_JOBID | tail -c N) (without -n the newline is one of the N):
#: a number below 10**N, as SLURM_JOB_ID % 10**N is
_LAST_DIGITS = re.compile(r"\$\(\s*echo\s+(-n\s+)?\"?\$\{?SLURM_JOB_?ID\}?\"?\s*\|\s*tail\s+-c\s*(\d+)\s*\)")
#: X % M + B and B + X % M, spaces removed (X a variable, with or without $ and braces, or a parenthesised
#: expression such as ((RANDOM<<15)|RANDOM))
_REMAINDER = r"\(?(?:\$?\{?[A-Za-z_]\w*\}?|\((?:[^()]|\([^()]*\))*\))%(\d+)\)?"
_MODULUS_FIRST = re.compile(_REMAINDER + r"\+(\d+)")
_BASE_FIRST = re.compile(r"(\d+)\+" + _REMAINDER)
#: a parenthesised sum or product of numbers inside an arithmetic expansion
_CONSTANT = re.compile(r"\((\d+(?:[-+*]\d+)+)\)")


def _port_range(text: str) -> tuple[int, int] | None:
    """The ports a value can be: a number, ``$((X % M + B))`` (either order, with or without parentheses: B to
    B+M-1) or the same sum given to expr, where X may be the job id's last digits (``$(echo -n $SLURM_JOBID | tail
    -c 4)``), ``$(shuf -i A-B -n 1)``; None for anything else."""
    text = _bare(text)
    if is_number(text):
        return int(text), int(text)
    m = _SHUF.match(text)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = _ARITH.match(text) or _EXPR.match(text)
    if not m:
        return None
    expr = _LAST_DIGITS.sub(lambda d: f"SLURM_JOB_ID%{10 ** (int(d.group(2)) - (0 if d.group(1) else 1))}",
                            m.group(1))
    expr = re.sub(r"\s+", "", expr).replace("\\*", "*")
    expr = _CONSTANT.sub(lambda c: str(_constant(c.group(1))), expr)  # RANDOM % (50000 - 30000 + 1) + 30000
    m = _MODULUS_FIRST.fullmatch(expr)
    if m:
        modulus, base = int(m.group(1)), int(m.group(2))
    else:
        m = _BASE_FIRST.fullmatch(expr)
        if not m:
            return None
        base, modulus = int(m.group(1)), int(m.group(2))
    return (base, base + modulus - 1) if modulus > 0 else None


def _constant(expr: str) -> int:
    """The value of sums and products of whole numbers (``50000-30000+1``), as bash's arithmetic gives it."""
    total = 0
    for sign, term in re.findall(r"([-+]?)(\d+(?:\*\d+)*)", expr):
        product = 1
        for factor in term.split("*"):
            product *= int(factor)
        total += -product if sign == "-" else product
    return total


def _followed(ctx: Context, text: str, line: int) -> tuple[int, str]:
    """A value that is only a reference to a variable of the script, followed to the assignment that gives it
    (``--master_port=$PORT`` with ``PORT=$((…))``): that assignment's line and value. A reference with a default
    (``${PORT:-45678}``, ``MASTER_PORT=${MASTER_PORT:-45678}``) gives the default when the script has not set the
    variable above it (the job's environment may still set it: the default is what the script itself names)."""
    for _ in range(4):
        bare = _bare(text)
        m = _REF.match(bare) or _DEFAULT.match(bare)
        var = ctx.parsed.variable(m.group(1), line) if m else None
        if var is None:
            if m is not None and m.re is _DEFAULT:
                text = m.group(2)
            break
        line, text = var.line, str(var.value)
    return line, text


def _ports(ctx: Context) -> Iterator[tuple[int, str, str]]:
    """Every rendezvous port the script names: ``(line, what, value)``, following a port held in a variable to
    the line that sets it."""
    for name in _PORT_VARIABLES:
        for line, value in _settings(ctx, name):
            line, value = _followed(ctx, value, line)
            yield line, name, value
    for cmd in _simple_commands(simple_commands(ctx)):
        words = [str(w) for w in cmd.argv]
        if "--standalone" in words:
            continue  # torchrun --standalone makes its own rendezvous on a free port and ignores the ports given
        for i, word in enumerate(words):
            option, eq, value = word.partition("=")
            if option not in _PORT_OPTIONS and option not in _ENDPOINT_OPTIONS:
                continue
            value = value if eq else (words[i + 1] if i + 1 < len(words) else "")
            if option in _ENDPOINT_OPTIONS:
                if ":" not in value:
                    continue  # no port: torchrun's 29400
                value = value.rsplit(":", 1)[1]
            line, value = _followed(ctx, value, cmd.line)
            yield line, option, value


@rule("HPC130", "rendezvous-port-in-ephemeral-range", "info",
      summary="MASTER_PORT or the rendezvous port (--rdzv-endpoint, --master-port, --main_process_port) lies in "
              "Linux's ephemeral port range, 32768–60999",
      why="Linux gives every outgoing connection on a node a source port from 32768–60999 (net.ipv4."
          "ip_local_port_range). A rendezvous server that binds a port in that range now and then finds it taken "
          "by some other connection and fails with 'The server socket has failed to listen … EADDRINUSE'; on busy "
          "nodes this happens at random and cannot be reproduced (NVIDIA/enroot#243: MASTER_PORT=$((SLURM_JOB_ID % "
          "16384 + 49152)), whose ports fall in the range nearly three times in four). A computed port is reported when "
          "at least half of the values it can take lie in the range.",
      fix="Pick a port below 32768: 29500, or one per job such as $((10000 + SLURM_JOB_ID % 20000)).",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:54321" \\
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
def _ephemeral_port(ctx: Context) -> Iterator[Any]:
    reported: set[int] = set()
    low, high = EPHEMERAL
    for line, what, value in _ports(ctx):
        span = _port_range(value)
        if span is None or line in reported:
            continue
        inside = max(0, min(span[1], high) - max(span[0], low) + 1)
        if 2 * inside < span[1] - span[0] + 1:
            continue  # most of the ports it can be are outside the range
        reported.add(line)
        if span[0] == span[1]:
            ports = f"port {span[0]}, inside"
        else:
            share = round(100 * inside / (span[1] - span[0] + 1))
            ports = f"ports {span[0]}–{span[1]}, {'all' if share == 100 else f'{share}% of them'} inside"
        yield (line, f"{what} gives the rendezvous {ports} Linux's ephemeral range {low}–{high}, which outgoing "
                     "connections on the node also use: now and then the port is taken and the server fails with "
                     "EADDRINUSE; pick one below 32768 (29500, or $((10000 + SLURM_JOB_ID % 20000)))")


# --------------------------------------------------------------------------------------------
# HPC131, HPC132: NCCL told to use loopback, or to leave out its fast transports

@rule("HPC131", "nccl-socket-interface-loopback", "error",
      summary="NCCL_SOCKET_IFNAME=lo (or GLOO_SOCKET_IFNAME, TP_SOCKET_IFNAME) in a job of more than one node",
      why="NCCL picks the loopback interface only when told to, or when a node has no other. With "
          "NCCL_SOCKET_IFNAME=lo (or =lo) every rank advertises 127.0.0.1, so ranks on the other nodes connect to "
          "their own node: NCCL's start-up hangs until its timeout, or fails. The line is often copied from a "
          "one-node example, where it does no harm. GLOO_SOCKET_IFNAME (Gloo, PyTorch's CPU backend) and "
          "TP_SOCKET_IFNAME (TensorPipe, torch.distributed.rpc) choose the interface of those libraries the same way.",
      fix="Delete the line (NCCL finds the interfaces itself), or name the interface the nodes share "
          "(NCCL_SOCKET_IFNAME=ib0, or ^lo,docker to leave those out).",
      bad="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
export NCCL_SOCKET_IFNAME=lo
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \\
  --rdzv-id="$SLURM_JOB_ID" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
export NCCL_SOCKET_IFNAME=ib0
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \\
  --rdzv-id="$SLURM_JOB_ID" train.py
""")
def _nccl_loopback(ctx: Context) -> Iterator[Any]:
    nodes = _spans_nodes(ctx)
    if nodes < 2:
        return
    for variable, library in _SOCKET_INTERFACE.items():
        for line, value in _settings(ctx, variable):
            if _bare(value) in ("lo", "=lo"):
                yield (line, f"{variable}={_bare(value)} makes {library} talk over loopback, which reaches only the "
                             f"node itself: in this job of {nodes} nodes the ranks cannot reach each other and "
                             f"{library}'s start-up hangs or fails; delete the line, or name the interface the nodes "
                             "share (ib0)")


#: the variables that choose the network interface of a communication library, by the library
_SOCKET_INTERFACE = {"NCCL_SOCKET_IFNAME": "NCCL", "GLOO_SOCKET_IFNAME": "Gloo", "TP_SOCKET_IFNAME": "TensorPipe"}


#: data-centre GPUs whose peer-to-peer path (NVLink, or PCIe P2P) works: consumer cards such as the RTX 4090 have
#: none, and there NCCL_P2P_DISABLE=1 is the documented workaround (accelerate asks for it)
_P2P_GPUS = re.compile(r"(?i)^(?:nvidia[-_])?(?:[a-z]+[-_])?(?:v100|a100|a800|h100|h200|h800|h20|gh200|b100|b200|gb200)"
                       r"(?![0-9])[-_a-z0-9]*$")


#: GPU models a node feature may name (--constraint=a100): NVIDIA's data-centre and consumer cards and AMD's Instinct
#: cards, with a size or form factor after them (a100_80gb, h100-sxm); features such as gpu, ampere or nvme name none
_GPU_MODEL = re.compile(r"(?i)(?:nvidia[-_]|amd[-_]|tesla[-_])?"
                        r"(?:k20|k40|k80|p4|p40|p100|v100s?|t4|a2|a10|a16|a30|a40|a100|a800|h20|h100|h200|h800|gh200"
                        r"|b100|b200|gb200|l4|l40s?|rtx[-_]?a?\d{4}(?:ti)?|gtx[-_]?\d{3,4}(?:ti)?|titan[-_]?[a-z]*"
                        r"|mi\d{2,3}[a-z]?)"
                        r"(?:[-_](?:sxm\d?|pcie|nvl|\d+gb?))*")


def _gpu_types(ctx: Context) -> tuple[str, ...]:
    """The GPU types the job may get: the one it names (--gres=gpu:a100:4, --gpus=h100:8), else the GPU models its
    --constraint asks for (a100, or any of a100|h100), else its partition's by the profile; () when unknown."""
    named = str(ctx.job.gpu_type or "")
    if named:
        return (named,)
    for value in (ctx.job.gpus, ctx.job.gpus_per_task):  # --gpus=h100:8, --gpus-per-task=a100:1
        kind, _, count = str(value or "").rpartition(":")
        if kind and is_number(count) and not kind.isdigit():
            return (kind,)
    by_features = _constraint_models(str(ctx.job.constraint or ""))
    if by_features:
        return by_features
    part = ctx.profile.entry_for(ctx.job) if ctx.profile is not None else None
    types = tuple(part.gpu_types) if part is not None else ()
    return types[:1] if len(types) == 1 else ()


def _constraint_models(constraint: str) -> tuple[str, ...]:
    """The GPU models a --constraint holds the job to: the one model among features joined by & (a100&ib), or every
    choice of features joined by | when each is a model (v100|a100). () for anything else: a feature that names no
    model (gpu|a100 may be any GPU), both operators, or Slurm's brackets, parentheses and counts."""
    if not constraint or re.search(r"[][()*,]", constraint) or ("&" in constraint and "|" in constraint):
        return ()
    terms = [t.strip() for t in re.split(r"[&|]", constraint)]
    models = tuple(dict.fromkeys(t for t in terms if _GPU_MODEL.fullmatch(t)))
    if "|" in constraint:
        return models if len(models) == len(set(terms)) else ()
    return models if len(models) == 1 else ()


@rule("HPC132", "nccl-debugging-switch-left-on", "warning",
      summary="NCCL_IB_DISABLE=1 in a multi-node job, or NCCL_P2P_DISABLE=1 in a job on several data-centre GPUs "
              "(A100, H100 …) of a node",
      why="NCCL's documentation lists both under its debugging variables, which 'should not be used in production nor "
          "retained in scripts': keeping them set 'may result in sub-optimal behavior, crashes, or hangs'. "
          "NCCL_IB_DISABLE=1 sends the traffic between nodes over TCP sockets instead of InfiniBand or RoCE, many "
          "times slower (on a site without either it changes nothing; nor where the script sends NCCL's traffic "
          "through libfabric's OFI plugin, FI_PROVIDER=efa or cxi, NCCL_NET_PLUGIN, which it leaves alone, so it is "
          "not reported there). NCCL_P2P_DISABLE=1 sends the traffic between "
          "the GPUs of a node through host memory instead of NVLink or PCIe peer-to-peer. On consumer GPUs (RTX 4090 "
          "and others) NCCL finds no peer-to-peer path by itself, and some of their drivers needed the setting to work "
          "around hangs, so it is reported only for a job whose GPU "
          "type (--gres=gpu:a100:4, --constraint=a100 or 'a100|h100', or the partition's by the profile) is a "
          "data-centre one.",
      fix="Delete the line; if NCCL hangs without it, report the fault to the site (with NCCL_DEBUG=INFO output) "
          "rather than keep the workaround.",
      bad="""#!/bin/bash
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
export NCCL_IB_DISABLE=1
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=4 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \\
  --rdzv-id="$SLURM_JOB_ID" train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
export NCCL_DEBUG=WARN
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes=4 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" \\
  --rdzv-id="$SLURM_JOB_ID" train.py
""")
def _nccl_debugging_switches(ctx: Context) -> Iterator[Any]:
    nodes = _spans_nodes(ctx)
    # traffic through the OFI net plugin (libfabric: AWS EFA, HPE Slingshot's cxi), which NCCL_IB_DISABLE leaves alone
    ofi = any(_settings(ctx, name) for name in ("FI_PROVIDER", "NCCL_NET_PLUGIN")) or any(
        re.search(r"(?i)ofi|libfabric", value) for _, value in _settings(ctx, "NCCL_NET"))
    if nodes > 1 and not ofi:
        for line, value in _settings(ctx, "NCCL_IB_DISABLE"):
            if _bare(value) == "1":
                yield (line, f"NCCL_IB_DISABLE=1 sends the traffic between this job's {nodes} nodes over TCP sockets "
                             "instead of InfiniBand or RoCE, many times slower; NCCL's docs call it a debugging "
                             "switch not to keep in scripts: delete the line")
    gpus = ctx.job.gpus_on_each_node
    types = _gpu_types(ctx)
    if gpus > 1 and types and all(_P2P_GPUS.match(t) for t in types):
        gpu_type = " or ".join(types)
        for line, value in _settings(ctx, "NCCL_P2P_DISABLE"):
            if _bare(value) == "1":
                yield (line, f"NCCL_P2P_DISABLE=1 makes the {gpus} {gpu_type} GPUs of each node exchange data through "
                             "host memory instead of NVLink or PCIe peer-to-peer, several times slower; NCCL's docs "
                             "call it a debugging switch not to keep in scripts: delete the line")
