"""Cluster profiles: a site described as data, and pure checks of a job against it.

A :class:`ClusterProfile` says what a cluster offers (partitions with their limits, GPU vendor and
types, module names, scratch and node-local paths, the login host, the container runtimes) so the
same lessons, forms and linters serve many sites. Profiles are stored as TOML files; loading and the
search path live in :mod:`hpcwidgets.profiles`, detection from a live Slurm in
:mod:`hpcwidgets.run.detect`. This module is pure: no I/O.

Rules a profile follows besides the field types (each broken rule is one :class:`Problem`): partition
names are unique and at most one is marked ``is_default`` (agreeing with ``default_partition``);
``default_gpu_partition`` names a partition with GPUs; times are Slurm times and a partition's
``default_time`` is neither longer than its ``max_time`` nor unlimited (``UNLIMITED``/``0``) when
``max_time`` is finite; ``mem_per_node`` is a positive Slurm size, as are the memory per CPU or GPU
(``def_mem_per_cpu`` not above ``max_mem_per_cpu``, ``def_mem_per_gpu`` only with GPUs); the CPUs per GPU
(``def_cpus_per_gpu``, ``max_cpus_per_gpu``) only with GPUs, the default not above the maximum; the GPU nodes' own size
(``gpu_node_cpus``, ``gpu_node_mem``) needs GPUs and is not above ``cpus_per_node``/``mem_per_node``; ``login_port``
is a port number, ``jump_host`` what ``ssh -J`` takes (``[user@]host[:port]``, hops joined by commas) and ``tunnel``
one of the Jupyter tunnel's forms (``login``, ``node``); ``account`` is letters, digits and ``_ . + - @`` (IDRIS
Jean Zay accounts look like ``abc@v100``); a ``[modules]`` purpose one typo away from a well-known one
(:data:`KNOWN_MODULE_PURPOSES`, e.g. ``apptainr``) is reported, since as written no job would load that module;
other purposes (``hdf5``, ``gcc``) are free. ``job_env`` holds ``NAME=value`` items (a ``[job_env]`` table in TOML) with
valid variable names, each once; ``container_binds`` holds ``SRC[:DST[:MODE]]`` binds checked as the Apptainer model's
are, with absolute paths (or a $VARIABLE), never ``/``, no container path twice. A partition's ``qos``,
``constraint`` and ``account`` are names of their kind, ``allowed_qos`` lists QOS names once each and holds the
partition's ``qos`` when both are set; an entry with
``slurm_partition = false`` (nodes a job selects by QOS and constraint, as on NERSC Perlmutter) sets at least one
of ``qos``/``constraint``, and no two such entries set the same pair; ``max_mem_per_job`` is a Slurm size;
``mpi_default`` is an MPI plugin srun names (``none``, ``pmi2``, ``pmix``, ``pmix_vN``, ``cray_shasta``). A GPU count
that is itself wrong (``-4``, text) is that one problem: the rules that need to know whether the partition has GPUs
(its GPU types, its per-GPU settings, ``default_gpu_partition``) leave it alone (:attr:`Partition.gpu_count_known`).

Which entry a job runs on (:meth:`ClusterProfile.entry_for`, and the limits :func:`check_job` applies): the
partition it names; without ``--partition``, the entry that is not a Slurm partition whose ``qos`` and
``constraint`` the job asks for; else, on a site whose submit filter routes jobs by constraint
(``constraint_selects_partition``, IDRIS Jean Zay), the partition whose ``constraint`` the job asks for; else, for
a job that asks for GPUs on a site that routes those to its GPU partition (``gpu_jobs_to_default_gpu_partition``,
as IDRIS Jean Zay does), the default GPU partition; else the default entry, unless that is selected by
QOS/constraint and the job asks for a different QOS or constraint (then the limits are unknown and not checked).
A partition that lists GPU types takes only those; one that lists none takes any (:meth:`Partition.offers_gpu_type`).

QOS (``[[qos]]``, :class:`Qos`): names listed once each, in any case (Slurm keeps them in lower case); a QOS's
``max_time`` and ``min_time`` are Slurm times, the minimum a finite one and not above the maximum, and its
``min_nodes`` not above its ``max_nodes``; when any are listed, every QOS a partition names (``qos``,
``allowed_qos``) is among them, since a job check reports any other as unknown; with ``qos_required`` there is a
QOS to choose from. A job must stay within both its partition's limits and its QOS's (resource_limits.html): the
lower time, node and GPU limit applies. Hints offer only the QOS that set limits of their own (or the partition's
own ``qos``): one listed by name only is usually special-purpose, such as a reservation's. The QOS flags that let
a QOS go past a partition's limits (PartitionTimeLimit, PartitionMaxNodes, PartitionMinNodes), partition QOS
(slurm.conf ``QOS=``) and the OverPartQOS order between the two, and limits per user or account are not modelled.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..errors import Problem, ProfileError, ValidationError
from ._meta import Spec, opt
from .apptainer import IMAGE_SOURCES, ApptainerRun
from .argv import env_assignments
from .charliecloud import ChRun
from .common import _VARIABLE as _ENV_NAME  # a variable name (letters, digits, _; not a digit first, not _ alone)
from .common import Bind, EnvVar, bind_destination, jump_host_field, login_port_field
from .jupyter import TUNNEL_THROUGH_LOGIN, TUNNEL_TO_NODE
from .slurm import GPU_COUNTS, SlurmJob, gpu_total, whole_count
from .ssh import jump_host_problem, login_host_problem
from .units import UNLIMITED, format_mem, format_time, is_number, parse_mem, parse_time

RUNTIMES = ("apptainer", "singularity", "charliecloud")
GPU_VENDORS = ("nvidia", "amd", "intel", "none")
#: CPU architectures as Slurm names them (``scontrol show node``: Arch=, the nodes' ``uname -m``)
CPU_ARCHES = ("x86_64", "aarch64", "ppc64le")
#: other names of each architecture: Docker's and Apptainer's (--platform linux/amd64, pull --arch arm64; Go's names),
#: Debian's package suffixes (_amd64.deb, _arm64.deb, _ppc64el.deb) and other common spellings
ARCH_ALIASES = {"x86_64": ("amd64", "x86-64", "x64"), "aarch64": ("arm64", "arm64v8", "armv8"),
                "ppc64le": ("ppc64el", "powerpc64le")}
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_MODULE = re.compile(r"[A-Za-z0-9_.+/@-]+")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
#: Slurm account names: like partition names, plus "@" (IDRIS Jean Zay charges "abc@v100", "abc@a100").
_ACCOUNT = re.compile(r"[A-Za-z0-9_.+@-]+")
#: Slurm --constraint values: features joined with & | , (and brackets, counts, ! as Slurm allows), no spaces.
_CONSTRAINT = re.compile(r"[A-Za-z0-9_.+\-&|,:*\[\]()!]+")
#: Well-known module purposes: the runtimes the examples load, and common others. A purpose one typo away
#: from one of these (``apptainr``) is reported; any other purpose (``gcc``, ``hdf5``) is accepted.
KNOWN_MODULE_PURPOSES = ("apptainer", "singularity", "charliecloud", "cuda", "rocm", "mpi", "python")

#: Slurm's partition states (``scontrol show partition``: State=): only UP takes and starts jobs. DRAIN and INACTIVE
#: refuse new jobs; DOWN queues them but starts none (slurm.conf(5), PartitionName State=).
PARTITION_STATES = ("UP", "DOWN", "DRAIN", "INACTIVE")
#: what a job sent to a partition in each state that is not UP meets
_STATE_EFFECT = {"DRAIN": "Slurm refuses new jobs there", "INACTIVE": "Slurm refuses new jobs there",
                 "DOWN": "Slurm queues jobs there but starts none until it is UP again"}
#: a partition's GPU vendor: the profile's choices, plus "mixed" for a partition whose nodes have GPUs of both
#: vendors (the job's GPU type then tells which)
PARTITION_GPU_VENDORS = ("nvidia", "amd", "intel", "mixed")
#: gres type names of AMD Instinct GPUs (mi100, mi210, mi250, mi250x, mi300a, mi300x …) or their gfx targets
AMD_GPU_TYPE = re.compile(r"(amd_?)?(mi\d{2,3}[a-z]?|instinct\w*|gfx\d+[a-z]?)", re.IGNORECASE)
#: gres type names of Intel GPUs as sites write them: Data Center GPU Max (pvc at TAMU ACES, pvc128g at TU Darmstadt,
#: max_1100, intel_max_1550, intel_xt1550), Arc (ARC770, arc_a770, a770) and Data Center GPU Flex (flex170)
INTEL_GPU_TYPE = re.compile(r"intel\w*|pvc\w*|ponte_?vecchio\w*|(?:gpu_?)?max_?\d{3,4}\w*|arc(?:_?a?\d{3}\w*)?"
                            r"|a(?:310|380|580|750|770)\w*|flex_?\d{2,3}\w*", re.IGNORECASE)
#: gres type names of NVIDIA GPUs: models (a100, v100s, h100_80gb, l40s, t4, gv100gl, rtx6000, titanrtx, 2080ti), with
#: a vendor prefix (nvidia_a100_80gb_pcie, tesla_v100) or a size suffix (v100-32g), and architectures (volta, ampere)
NVIDIA_GPU_TYPE = re.compile(r"(?:nvidia_?|tesla_?)?(?:[abhklptv]\d{1,4}[a-z]?|g[abhpv]\d{3}[a-z]*|rtx\w*|gtx\w*"
                             r"|titan\w*|quadro\w*|geforce\w*|[1-4]0[5-9]0(?:ti|super)?|kepler|maxwell|pascal|volta"
                             r"|turing|ampere|ada|lovelace|hopper|blackwell|tesla)(?:[_.-][\w.-]*)?", re.IGNORECASE)
#: NVIDIA MIG slices as gres types name them (1g.10gb, 3g.40gb, nvidia_a100_80gb_pcie_1g.10gb, mig-2g.20gb): parts of
#: a GPU
MIG_GPU_TYPE = re.compile(r"(?:^|[_-])\d+g\.\d+gb$", re.IGNORECASE)
#: a gres type that names an NVIDIA model MIG can split and a memory size (a100_10g, h100-20gb): some sites name
#: slices so (NJIT's Wulver: a100_10g, a100_20g, a100_40g of 80 GB A100s), others whole GPUs (a100_80g)
_MEMORY_NAMED = re.compile(r"(?:nvidia_)?(a100|a800|a30|h100|h800|h200|gh200|b200)[_-](\d{1,3})gb?", re.IGNORECASE)
#: GB of the smallest whole GPU of each of those models: a name with less memory than that is a slice; a100_40g
#: (a whole 40 GB A100, or a slice of an 80 GB one) is taken for the whole GPU
_WHOLE_GPU_GB = {"a100": 40, "a800": 40, "a30": 24, "h100": 80, "h800": 80, "h200": 141, "gh200": 96, "b200": 180}
#: partition names that say they are for trials (gputest, gpudev, dev-g, devel, debug, testing, interactive): short
#: limits, few nodes, sometimes the login nodes; never the partition examples or a detected default should use
TRIAL_PARTITION = re.compile(r"test|dev|debug|interactive", re.IGNORECASE)

#: the most CPUs a new job gives each worker it starts (torchrun's, one per GPU): enough for PyTorch's data loader
#: workers; a GPU node with fewer CPUs per GPU shares its CPUs out among its GPUs (:meth:`Partition.cpus_for_workers`)
CPUS_PER_WORKER = 8

#: the MPI plugins srun names (srun --mpi=list; slurm.conf MpiDefault): pmix_v3, pmix_v4 … are versions of pmix
MPI_PLUGIN = re.compile(r"none|pmi2|pmix(?:_v\d+)?|cray_shasta")

#: Slurm releases whose srun does not take --cpus-per-task from the job allocation: from 22.05 until
#: 23.11 restored the old behaviour (SLURM_CPUS_PER_TASK is read again), i.e. 22.05 to 23.02.
_SRUN_NO_INHERIT = ((22, 5), (23, 11))


def gpu_type_vendor(gpu_type: str) -> str:
    """The vendor a gres type name says: ``amd`` (mi250), ``intel`` (pvc, max_1100), ``nvidia`` (a100, 1g.10gb);
    "" for a name none of the patterns knows (a site's own name such as ``fast``): its vendor is then a guess."""
    if AMD_GPU_TYPE.fullmatch(gpu_type):
        return "amd"
    if INTEL_GPU_TYPE.fullmatch(gpu_type):
        return "intel"  # before NVIDIA: Arc's a770 would look like an NVIDIA A-series model
    if NVIDIA_GPU_TYPE.fullmatch(gpu_type) or MIG_GPU_TYPE.search(gpu_type):
        return "nvidia"
    return ""


def is_mig_type(gpu_type: Any) -> bool:
    """Whether a gres type names an NVIDIA MIG slice (1g.10gb, nvidia_a100_80gb_pcie_3g.40gb, a100_10g), a part of a
    GPU: a CUDA process enumerates one slice only, however many it is shown, and slices have no peer-to-peer path
    (CUDA IPC) between them, so one process group cannot spread its workers over several slices of a node."""
    return isinstance(gpu_type, str) and (bool(MIG_GPU_TYPE.search(gpu_type)) or _sliced_memory(gpu_type) > 0)


def _sliced_memory(gpu_type: str) -> int:
    """The GB of a slice named by its model and memory (``a100_10g`` → 10), less than any whole GPU of the model
    has; 0 for any other name."""
    m = _MEMORY_NAMED.fullmatch(gpu_type)
    if m is None:
        return 0
    gb = int(m.group(2))
    return gb if 0 < gb < _WHOLE_GPU_GB[m.group(1).lower()] else 0


def mig_size(gpu_type: str) -> tuple[int, int]:
    """A MIG slice's compute slices and memory in GB (``3g.40gb`` → (3, 40); ``a100_10g``, which names no compute
    slices, → (0, 10)), to rank slices; (0, 0) for another name."""
    if not isinstance(gpu_type, str):
        return (0, 0)
    m = re.search(r"(\d+)g\.(\d+)gb$", gpu_type, re.IGNORECASE)
    return (int(m.group(1)), int(m.group(2))) if m else (0, _sliced_memory(gpu_type))


def srun_gets_job_cpus(model: Any, job: Any = None) -> Any:
    """``model`` (a workflow) whose srun leaves --cpus-per-task to the job, with the job's count (``job``'s when given)
    given to srun again: srun of Slurm 22.05–23.02 does not take it from the job. What a profile does where its Slurm
    is one of those or not known (:meth:`ClusterProfile.place`), and the command line without a profile."""
    srun = getattr(model, "srun", None)
    cpus = getattr(job if job is not None else getattr(model, "job", None), "cpus_per_task", None)
    if srun is None or getattr(srun, "cpus_per_task", 0) is not None or cpus.__class__ is not int:
        return model
    return model.replace(srun=srun.replace(cpus_per_task=cpus))


def _str(value: Any) -> str:
    """The value when it is text, else "" (a wrong type is already reported by the generic checks)."""
    return value if isinstance(value, str) else ""


def _tup(value: Any) -> tuple:
    return value if isinstance(value, tuple) else ()


def _time_problem(field: str, label: str, value: str) -> list[Problem]:
    if not isinstance(value, str) or not value:
        return []
    try:
        parse_time(value)
    except ValueError as exc:
        return [Problem(field, f"{label}: {exc}")]
    return []


def _limit(value: str) -> int | None:
    """Seconds for a time limit; None for no limit (empty, UNLIMITED, infinite) or unreadable text."""
    if not isinstance(value, str) or not value:
        return None
    try:
        seconds = parse_time(value)
    except ValueError:
        return None
    return None if seconds == UNLIMITED else seconds


def _mem(value: str) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_mem(value)
    except ValueError:
        return None


def _path_problems(field: str, label: str, value: str) -> list[Problem]:
    value = _str(value)
    if value.startswith("~"):
        return []  # a path field: the generic check says to write $HOME instead
    if value and not (value.startswith("/") or value.startswith("$")):
        return [Problem(field, f"{label} {value!r} must be an absolute path or start with a variable such as $SCRATCH")]
    return []


class _SiteLimits(Spec):
    """A table of limits as sites write them (a partition, a QOS): :meth:`from_dict` also takes the values a site's
    own files and Slurm's output write where their meaning is plain (:func:`_lenient`)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Also takes the values a site's own files and Slurm's output write where their meaning is plain
        (:func:`_lenient`), and refuses the ambiguous ones with the fix; every problem of the table is raised at
        once, with those of the other values."""
        if not isinstance(data, dict):
            return super().from_dict(data)
        values: dict[str, Any] = {}
        problems: list[Problem] = []
        for name, value in data.items():
            try:
                fixed = _lenient(name, value)
            except ValueError as exc:
                problems.append(Problem(name, str(exc)))
                continue
            if fixed is not _LEAVE_OUT:
                values[name] = fixed
        try:
            model = super().from_dict(values)
        except ValidationError as exc:
            raise ValidationError(problems + list(exc.problems), subject=exc.subject) from None
        if problems:
            raise ValidationError(problems, subject=cls.kind)
        return model


@dataclass(frozen=True)
class Partition(_SiteLimits):
    """A Slurm partition (queue) with the limits a job must stay within.

    Node sizes describe the largest node of the partition, so a check never rejects a job that some
    node could run; a partition that mixes big CPU nodes with smaller GPU nodes also says the size of its
    largest GPU node (``gpu_node_cpus``, ``gpu_node_mem``), which is the most a job that asks for GPUs can
    get. With ``slurm_partition = False`` the entry is not a Slurm partition but the nodes a
    job gets with the entry's ``qos``/``constraint`` (``name`` is then only a label).
    """

    kind = "profile.partition"
    file_noun = "a [[partitions]] table (name = …, max_time = … on the lines under it)"

    name: str = opt("", label="Partition name", role="internal", placeholder="gpu",
                    help="The name given to sbatch --partition.")
    description: str = opt("", label="Description", role="internal",
                           help="One line for people choosing a partition, e.g. 'A100 nodes, 4 GPUs each'.")
    max_time: str = opt("", label="Maximum time", role="internal", placeholder="1-12:00:00",
                        help="The longest --time a job may ask for (Slurm notation); empty or UNLIMITED for no limit.")
    default_time: str = opt("", label="Default time", role="internal", placeholder="01:00:00",
                            help="The time limit a job gets when it asks for none; empty when the site sets none.")
    max_nodes: int | None = opt(None, label="Maximum nodes", role="internal", minimum=1,
                                help="The most nodes one job may use on this partition; leave it out (empty) for no limit.")
    cpus_per_node: int | None = opt(None, label="CPUs per node", role="internal", minimum=1,
                                    help="CPUs on each node as Slurm counts them (hardware threads where hyper-threading is on, the "
                                         "unit of --cpus-per-task; the largest node if they differ); leave it out "
                                         "(empty) if unknown.")
    threads_per_core: int | None = opt(None, label="Threads per core", role="internal", minimum=1,
                                       help="Hardware threads of each core (Slurm's ThreadsPerCore): 2 where "
                                            "hyper-threading (SMT) is on, so cpus_per_node counts two CPUs a core; 1 "
                                            "where it is off. A job with --hint=nomultithread or --threads-per-core=1 "
                                            "then uses one CPU of each core it holds (half the node's CPUs at 2). "
                                            "Leave it out if unknown (the nodes differ, or nobody said).")
    mem_per_node: str = opt("", label="Memory per node", role="internal", placeholder="187G",
                            help="Memory a job can ask for on one node (Slurm's RealMemory), e.g. 187G or 3900M; empty if unknown.")
    gpus_per_node: int = opt(0, label="GPUs per node", role="internal", minimum=0,
                             help="GPUs on each node (the most any node has); 0 for a CPU-only partition.")
    gpu_types: tuple[str, ...] = opt((), label="GPU types", role="internal", placeholder="a100",
                                     help="GPU type names as the site's gres spells them (gpu:TYPE:N), e.g. v100, a100; "
                                          "empty when the gres names no type.")
    is_default: bool = opt(False, label="Default partition", role="internal",
                           help="Slurm uses this partition when a job names none.")
    slurm_partition: bool = opt(True, label="Is a Slurm partition", role="internal",
                                help="false for an entry that is not a Slurm partition but nodes a job selects with "
                                     "this entry's qos and/or constraint (NERSC Perlmutter: -q regular -C gpu); its "
                                     "name is then only a label and jobs get no --partition.")
    qos: str = opt("", label="QOS", role="internal", placeholder="qos_gpu",
                   help="The QOS (sbatch --qos) a job on this entry requests when it sets none; empty to leave it "
                        "to the site.")
    allowed_qos: tuple[str, ...] = opt((), label="Allowed QOS", role="internal", placeholder="normal",
                                       help="The QOS a job may use in this partition (slurm.conf AllowQos), e.g. "
                                            "[\"normal\", \"long\"]; Slurm rejects a job with another --qos. "
                                            "Empty: any QOS.")
    constraint: str = opt("", label="Constraint", role="internal", placeholder="gpu",
                          help="Node features (sbatch --constraint) a job on this entry requests when it sets none, "
                               "e.g. gpu or v100-32g; empty for none.")
    account: str = opt("", label="Account", role="internal", placeholder="abc@a100",
                       help="The account jobs on this entry are charged to (sbatch --account), in place of the "
                            "top-level account; empty to use that one.")
    max_cpus_per_job: int | None = opt(None, label="Maximum CPUs per job", role="internal", minimum=1,
                                       help="The most CPUs one job may use in total (all its nodes together); leave "
                                            "it out for no per-job limit.")
    max_mem_per_job: str = opt("", label="Maximum memory per job", role="internal", placeholder="40G",
                               help="The most memory one job may use in total (all its nodes together), e.g. "
                                    "40G; empty for no per-job limit.")
    max_gpus_per_job: int | None = opt(None, label="Maximum GPUs per job", role="internal", minimum=1,
                                       help="The most GPUs one job may use in total (all its nodes together); leave "
                                            "it out for no per-job limit.")
    state: str = opt("", label="State", role="internal", choices=PARTITION_STATES,
                     help="Slurm's State of the partition: empty or UP when it takes jobs; DRAIN and INACTIVE refuse "
                          "new jobs, DOWN queues them but starts none. The check reports jobs sent there; examples "
                          "and hints leave it out.")
    restricted: bool = opt(False, label="Restricted", role="internal",
                           help="true when only some accounts or groups may use it (Slurm's AllowAccounts, "
                                "AllowGroups) or it is hidden (Hidden=YES): the examples, hints and a detected "
                                "default GPU partition avoid it.")
    gpu_vendor: str = opt("", label="GPU vendor", role="internal", choices=PARTITION_GPU_VENDORS,
                          help="The vendor of this partition's GPUs where it differs from the profile's gpu_vendor "
                               "(a site with NVIDIA and AMD partitions); mixed when its nodes have both (the job's "
                               "GPU type then tells). Empty: the profile's.")
    cpu_arch: str = opt("", label="CPU architecture", role="internal", placeholder="aarch64",
                        help="The CPU architecture of this partition's nodes where it differs from the profile's "
                             "cpu_arch (a site with x86_64 nodes and NVIDIA Grace nodes): x86_64, aarch64 or "
                             "ppc64le, as Slurm's Arch= names it. Empty: the profile's (leave it empty too where "
                             "the partition's nodes differ).")
    gpus_per_type: tuple[str, ...] = opt((), label="GPUs per type", role="internal", placeholder="a100:3",
                                         help="The most GPUs of one type a single node has, as TYPE:N (a100:3, "
                                              "1g.10gb:21), for types that differ from gpus_per_node; a request "
                                              "for gpu:TYPE:N is checked against it. Empty: gpus_per_node.")
    gpu_nodes: int | None = opt(None, label="Nodes with GPUs", role="internal", minimum=1,
                                help="How many of its nodes have GPUs when not all do (a CPU partition that also "
                                     "spans GPU nodes); a GPU job gets at most these. Leave it out when all do.")
    gpu_node_cpus: int | None = opt(None, label="CPUs of the GPU nodes", role="internal", minimum=1,
                                    help="CPUs of the largest node that has GPUs, only when the partition also has "
                                         "bigger nodes without GPUs (a catch-all partition); a job that asks for "
                                         "GPUs is checked against it. Leave it out otherwise: cpus_per_node then "
                                         "holds for every job.")
    gpu_node_mem: str = opt("", label="Memory of the GPU nodes", role="internal", placeholder="500G",
                            help="Memory a job can ask for on the largest node that has GPUs, only when the "
                                 "partition also has bigger nodes without GPUs, e.g. 500G; a job that asks for "
                                 "GPUs is checked against it. Empty otherwise: mem_per_node then holds for "
                                 "every job.")
    def_mem_per_cpu: str = opt("", label="Default memory per CPU", role="internal", placeholder="7150M",
                               help="Memory per CPU a job gets when it asks for no memory (Slurm's DefMemPerCPU, the "
                                    "partition's or else the cluster's), e.g. 7150M; empty when the site sets none.")
    def_mem_per_node: str = opt("", label="Default memory per node", role="internal", placeholder="32000M",
                                help="Memory per node a job gets when it asks for no memory (Slurm's DefMemPerNode, "
                                     "the partition's or else the cluster's), e.g. 32000M; empty when the site sets "
                                     "none. Slurm keeps one default per partition: set this or def_mem_per_cpu, not "
                                     "both.")
    max_mem_per_cpu: str = opt("", label="Maximum memory per CPU", role="internal", placeholder="7150M",
                               help="The most memory per CPU (Slurm's MaxMemPerCPU), e.g. 7150M: Slurm gives a job "
                                    "that asks for more per CPU more CPUs per task, and bills it for them. Empty for "
                                    "no limit.")
    def_mem_per_gpu: str = opt("", label="Default memory per GPU", role="internal", placeholder="29440M",
                               help="Memory per GPU a job that asks for GPUs but no memory gets (Slurm's DefMemPerGPU, "
                                    "in the partition's JobDefaults), e.g. 29440M; empty when the site sets none.")
    def_cpus_per_gpu: int | None = opt(None, label="Default CPUs per GPU", role="internal", minimum=1,
                                       help="CPUs per GPU a job that asks for GPUs gets when it sets neither "
                                            "--cpus-per-task nor --cpus-per-gpu (Slurm's DefCpuPerGPU, in the "
                                            "partition's JobDefaults or the cluster's), e.g. 8; leave it out when "
                                            "the site sets none.")
    max_cpus_per_gpu: int | None = opt(None, label="Maximum CPUs per GPU", role="internal", minimum=1,
                                       help="The most CPUs a job may ask for with each GPU, as the site's "
                                            "documentation states it (CSC Puhti: 10 cores per GPU). Slurm has no "
                                            "setting for it (sites enforce it on submission), so detection cannot "
                                            "read it. Leave it out for no limit.")
    whole_nodes: bool = opt(False, label="Whole nodes only", role="internal",
                            help="true when every job gets whole nodes and is billed for them (Slurm's "
                                 "OverSubscribe=EXCLUSIVE; LUMI's standard-g): a job that asks for part of a node "
                                 "is warned, and told which partitions share nodes.")

    def describe(self) -> str:
        return f"partition {self.name or '(unnamed)'}"

    @property
    def is_slurm_partition(self) -> bool:
        """False for an entry selected by QOS/constraint instead of by --partition."""
        return self.slurm_partition is not False

    def selector(self) -> str:
        """The sbatch options that put a job on this entry, e.g. ``--partition=gpu`` or ``--qos=regular --constraint=gpu``."""
        words = [f"--partition={self.name}"] if self.is_slurm_partition else []
        words += [f"--{flag}={value}" for flag, value in (("qos", _str(self.qos)), ("constraint", _str(self.constraint)))
                  if value]
        return " ".join(words)

    def label(self) -> str:
        """The name as lists of alternatives show it: ``gpu``, or ``regular (--qos=regular --constraint=gpu)``."""
        return self.name if self.is_slurm_partition else f"{self.name} ({self.selector()})"

    def where(self) -> str:
        """How messages name the entry: ``partition gpu`` or ``regular (--qos=regular --constraint=gpu)``."""
        return f"partition {self.name}" if self.is_slurm_partition else self.label()

    def mem_per_job_mib(self) -> int | None:
        """The per-job memory limit in MiB, None when there is none."""
        return _mem(self.max_mem_per_job)

    @property
    def gpu_type(self) -> str:
        """The first GPU type name, or "" (convenience for single-type partitions)."""
        return self.gpu_types[0] if self.gpu_types else ""

    @property
    def has_gpus(self) -> bool:
        return isinstance(self.gpus_per_node, int) and self.gpus_per_node > 0

    @property
    def gpu_count_known(self) -> bool:
        """Whether ``gpus_per_node`` holds a count the checks can judge (a whole number, 0 or more). A value already
        reported as wrong (-4, "four", None for one a file left unreadable) says nothing about the partition's GPUs,
        so the checks that need to know whether it has any leave it alone: the wrong value is the one problem."""
        count = self.gpus_per_node
        return isinstance(count, int) and not isinstance(count, bool) and count >= 0

    @property
    def takes_jobs(self) -> bool:
        """False for a partition whose State is DOWN, DRAIN or INACTIVE: a job sent there does not run."""
        return _str(self.state).upper() in ("", "UP")

    def state_effect(self) -> str:
        """What a job meets on a partition that takes no jobs ("" when it takes them)."""
        return "" if self.takes_jobs else f"{self.where()} is {self.state}: {_STATE_EFFECT[self.state]}"

    @property
    def for_production(self) -> bool:
        """Takes jobs, is open to everyone and is not named for tests or development (gputest, dev-g)."""
        return self.takes_jobs and self.restricted is not True and not TRIAL_PARTITION.search(_str(self.name))

    def gpus_of_type(self, gpu_type: str) -> int:
        """The most GPUs of ``gpu_type`` one node has: its ``gpus_per_type`` entry, else ``gpus_per_node``."""
        for entry in _tup(self.gpus_per_type):
            name, _, count = _str(entry).rpartition(":")
            if name == gpu_type and is_number(count):
                return int(count)
        return self.gpus_per_node if isinstance(self.gpus_per_node, int) else 0

    def offers_gpu_type(self, gpu_type: str) -> bool:
        """Whether a job may ask this partition for GPUs of ``gpu_type``. A partition that lists no GPU types takes
        any: the profile does not know the type names (its author left them out), which is not the same as
        forbidding them (LUMI's ``--gres=gpu:mi250:8`` on a profile that says only 8 GPUs per node). A partition
        that lists its types takes only those."""
        types = _tup(self.gpu_types)
        return self.has_gpus and (not types or gpu_type in types)

    @property
    def mig_only(self) -> bool:
        """Whether the partition's GPUs are all MIG slices: it has GPUs and every type it lists (``gpu_types``) is a
        slice (:func:`is_mig_type`). False where it lists no type (nothing says they are slices)."""
        types = [t for t in _tup(self.gpu_types) if isinstance(t, str)]
        return self.has_gpus and bool(types) and all(is_mig_type(t) for t in types)

    def whole_gpu_types(self) -> tuple[str, ...]:
        """The types it lists that are whole GPUs, not MIG slices (a100 of a partition that lists a100 and
        1g.10gb)."""
        return tuple(t for t in _tup(self.gpu_types) if isinstance(t, str) and not is_mig_type(t))

    def max_seconds(self) -> int | None:
        """The time limit in seconds, None when there is none."""
        return _limit(self.max_time)

    def mem_mib(self, gpus: bool = False) -> int | None:
        """Memory per node in MiB (with ``gpus``, of the nodes a job that asks for GPUs gets: :meth:`mem_for`),
        None when unknown."""
        return _mem(self.mem_for(gpus))

    def cpus_for(self, gpus: bool) -> int | None:
        """CPUs of the largest node a job can run on: for a job that asks for GPUs (``gpus``), of the largest node
        with GPUs where the profile says it is smaller (``gpu_node_cpus``), else ``cpus_per_node``."""
        own = self.gpu_node_cpus
        if gpus and self.has_gpus and isinstance(own, int) and not isinstance(own, bool) and own > 0:
            return own
        return self.cpus_per_node

    def cpus_usable(self, gpus: bool, one_per_core: bool = False, per_core: int | None = None) -> int | None:
        """The CPUs one job can use on the largest node it can run on (:meth:`cpus_for`): with ``one_per_core`` (the
        job asks for one thread per core: --hint=nomultithread, --threads-per-core=1, :func:`one_thread_per_core`)
        on nodes with ``threads_per_core`` above 1, one CPU of each core, since Slurm gives such a job whole cores
        and leaves their other threads idle; with ``per_core`` (the CPUs of a core the job may use,
        :func:`job_cpus_per_core`: --ntasks-per-core × --cpus-per-task) below the threads per core, that many of
        each core; else all of them."""
        cpus, threads = self.cpus_for(gpus), _positive(self.threads_per_core)
        most = 1 if one_per_core else _positive(per_core)
        if most and threads and most < threads and _positive(cpus):
            return cpus // threads * most
        return cpus

    def cpus_for_workers(self, workers: int, nodes: int = 1, unknown: int = 0) -> int:
        """The ``--cpus-per-task`` of one task per node that starts ``workers`` workers (torchrun starts one per GPU;
        the single-GPU examples ask for one), on each of ``nodes`` nodes, as the shipped examples and the workflow
        form ask for it: each worker gets up to :data:`CPUS_PER_WORKER` CPUs, or the CPUs of a GPU node
        (:meth:`cpus_for`) shared out among its GPUs where that is less (at least 1; a partition without GPUs shares
        nothing out); together at most the node's CPUs, and within the partition's ``max_cpus_per_job`` shared out
        over the nodes. 0 for no workers.

        ``unknown`` is the CPUs per worker where the partition does not say its CPUs (``cpus_per_node`` left out),
        the only case where the two callers differ. The examples pass 4: each is a script the lessons run and
        discuss, whose ``--cpus-per-task`` feeds PyTorch's data loader, and 4 per GPU is a modest share that GPU
        nodes commonly have. The form keeps 0 (the result is then 0: no ``--cpus-per-task``, so Slurm's default): what it
        fills in is a value the person sees and may submit unread, and a number the profile does not back could
        ask for more than a node has."""
        if not isinstance(workers, int) or workers < 1:
            return 0
        node = _positive(self.cpus_for(True))  # the GPU nodes' (a catch-all may mix in bigger ones without GPUs)
        if node is None:
            per_worker = unknown
        else:
            share = self.gpus_per_node if self.has_gpus else 1
            per_worker = max(1, min(CPUS_PER_WORKER, node // share))
        if per_worker < 1:
            return 0
        cpus = per_worker * workers if node is None else min(per_worker * workers, node)
        limit = _positive(self.max_cpus_per_job)
        return max(1, min(cpus, limit // max(nodes, 1))) if limit else cpus

    def mem_for(self, gpus: bool) -> str:
        """Memory (as written) of the largest node a job can run on: for a job that asks for GPUs, that of the
        largest node with GPUs where the profile says it (``gpu_node_mem``), else ``mem_per_node``."""
        if gpus and self.has_gpus and _mem(self.gpu_node_mem):
            return self.gpu_node_mem
        return self.mem_per_node

    def mem_to_ask(self, wanted_mib: int, share: int = 1, nodes: int = 1, gpus: bool = False) -> str:
        """The ``--mem`` a new job asks for (the shipped examples, ``jupyter-job --profile``): ``wanted_mib``, or on
        smaller nodes (with ``gpus``, the GPU nodes) the node's memory divided by ``share``, and within the
        partition's per-job limit divided over ``nodes``; "" (no --mem: the site's default) where the profile does
        not say the nodes' memory, as on a cluster whose slurm.conf sets none, where Slurm grants no --mem at all."""
        node = self.mem_mib(gpus)
        if node is None:
            return ""
        wanted_mib = max(1, min(wanted_mib, node // max(share, 1)))  # never 0: --mem=0 claims the whole node
        per_job = self.mem_per_job_mib()
        if per_job:
            wanted_mib = min(wanted_mib, per_job // max(nodes, 1))
        return format_mem(wanted_mib)

    def _check(self) -> list[Problem]:
        out: list[Problem] = []
        if not self.name:
            out.append(Problem("name", "a partition needs a name (what sbatch --partition takes)"))
        elif isinstance(self.name, str) and not _NAME.fullmatch(self.name):
            out.append(Problem("name", f"{self.name!r} is not a partition name (letters, digits, _ . + -)"))
        out += _time_problem("max_time", "maximum time", self.max_time)
        out += _time_problem("default_time", "default time", self.default_time)
        limit, default = _limit(self.max_time), _limit(self.default_time)
        if limit is not None and default is not None and default > limit:
            out.append(Problem("default_time", f"default time {self.default_time} is longer than the maximum "
                                               f"{self.max_time}; lower it to at most {self.max_time}"))
        if limit is not None and _str(self.default_time) and default is None and _str(self.max_time):
            if _time_problem("default_time", "", self.default_time) == []:
                out.append(Problem("default_time", f"default time {self.default_time} means no limit, but the "
                                                   f"maximum is {self.max_time}; set a default of at most {self.max_time}"))
        _node_size(out, "mem_per_node", self.mem_per_node, "memory per node",
                   "the memory a job can use on one node, e.g. 187G, or leave it empty if unknown")
        out += self._gpu_node_problems()
        out += self._mem_default_problems()
        out += self._cpus_per_gpu_problems()
        types = _tup(self.gpu_types)
        for t in types:
            if isinstance(t, str) and not re.fullmatch(r"[A-Za-z0-9_.-]+", t):
                out.append(Problem("gpu_types", f"{t!r} is not a GPU type name (letters, digits, _ . -)"))
        if types and not self.has_gpus and self.gpu_count_known:
            out.append(Problem("gpu_types", "GPU types are listed but GPUs per node is 0; set GPUs per node or remove the types"))
        if len(set(types)) != len(types):
            out.append(Problem("gpu_types", "a GPU type is listed twice; list each once"))
        if _str(self.qos) and not _NAME.fullmatch(self.qos):
            out.append(Problem("qos", f"{self.qos!r} is not a QOS name (letters, digits, _ . + -)"))
        out += self._allowed_qos_problems()
        if _str(self.constraint) and not _CONSTRAINT.fullmatch(self.constraint):
            out.append(Problem("constraint", f"{self.constraint!r} is not a constraint (node features such as gpu or "
                                             "v100-32g, joined with & | , and no spaces)"))
        if _str(self.account) and not _ACCOUNT.fullmatch(self.account):
            out.append(Problem("account", f"{self.account!r} is not an account name (letters, digits, _ . + - @)"))
        if self.slurm_partition is False and not _str(self.qos) and not _str(self.constraint):
            out.append(Problem("slurm_partition", f"entry {self.name or '(unnamed)'} is not a Slurm partition, so jobs "
                                                  "select it by QOS or constraint: set qos and/or constraint, or remove "
                                                  "slurm_partition = false"))
        for entry in _tup(self.gpus_per_type):
            m = re.fullmatch(r"([A-Za-z0-9_.-]+):(\d+)", _str(entry))
            if not m or int(m.group(2)) < 1:
                out.append(Problem("gpus_per_type", f"{entry!r} is not TYPE:N (a GPU type and how many one node has, "
                                                    "e.g. a100:3)"))
            elif m.group(1) not in types:
                out.append(Problem("gpus_per_type", f"{m.group(1)!r} in {entry!r} is not one of the GPU types; add it "
                                                    "to gpu_types or remove the entry"))
        if _str(self.max_mem_per_job):
            try:
                size = parse_mem(self.max_mem_per_job)
            except ValueError as exc:
                out.append(Problem("max_mem_per_job", str(exc)))
            else:
                if size <= 0:
                    out.append(Problem("max_mem_per_job", f"maximum memory per job {self.max_mem_per_job!r} is not a "
                                                          "limit; write a size such as 40G, or leave it empty"))
        out += _arch_problems("cpu_arch", self.cpu_arch)
        return out

    def _allowed_qos_problems(self) -> list[Problem]:
        """QOS names, each once; the entry's own ``qos`` among them, since Slurm would reject every job it fills in."""
        allowed = [q for q in _tup(self.allowed_qos) if isinstance(q, str)]
        out = [Problem("allowed_qos", f"{q!r} is not a QOS name (letters, digits, _ . + -)")
               for q in allowed if not _NAME.fullmatch(q)]
        if len(set(allowed)) != len(allowed):
            out.append(Problem("allowed_qos", "a QOS is listed twice; list each once"))
        if allowed and _str(self.qos) and self.qos not in allowed:
            out.append(Problem("qos", f"QOS {self.qos!r} is not among the allowed QOS ({', '.join(allowed)}), so Slurm "
                                      "rejects the jobs it is filled into; use one of them, or add it to allowed_qos"))
        return out

    def _cpus_per_gpu_problems(self) -> list[Problem]:
        """CPUs per GPU belong to a partition with GPUs, and the default is not above the maximum: with it above,
        every GPU job that asks for no CPUs would break the site's own rule."""
        out: list[Problem] = []
        default, most = _positive(self.def_cpus_per_gpu), _positive(self.max_cpus_per_gpu)
        if not self.has_gpus:
            for field, value in (("def_cpus_per_gpu", default), ("max_cpus_per_gpu", most)):
                if value and self.gpu_count_known:
                    out.append(Problem(field, f"{field} is set but the partition has no GPUs (GPUs per node is 0); "
                                              "remove it, or set GPUs per node"))
        elif default and most and default > most:
            out.append(Problem("def_cpus_per_gpu", f"default CPUs per GPU {default} is more than the maximum {most}; "
                                                   f"lower it to at most {most}"))
        return out

    def _mem_default_problems(self) -> list[Problem]:
        """Memory per CPU, node or GPU: positive sizes; a default per CPU above the maximum per CPU (Slurm would raise
        the CPUs of every job that asks for no memory); a default per CPU and one per node together (a partition
        has one or the other: slurm.conf(5) makes DefMemPerCPU and DefMemPerNode exclusive); a default per GPU
        needs GPUs."""
        out: list[Problem] = []
        default = _node_size(out, "def_mem_per_cpu", self.def_mem_per_cpu, "default memory per CPU",
                             "the memory per CPU a job gets when it asks for none, e.g. 7150M, or leave it empty")
        per_node = _node_size(out, "def_mem_per_node", self.def_mem_per_node, "default memory per node",
                              "the memory per node a job gets when it asks for none, e.g. 32000M, or leave it empty")
        if default and per_node:
            out.append(Problem("def_mem_per_node", f"def_mem_per_cpu ({self.def_mem_per_cpu}) and def_mem_per_node "
                                                   f"({self.def_mem_per_node}) are both set, but Slurm keeps one "
                                                   "default per partition (DefMemPerCPU or DefMemPerNode); keep the "
                                                   "one scontrol show partition prints"))
        most = _node_size(out, "max_mem_per_cpu", self.max_mem_per_cpu, "maximum memory per CPU",
                          "the most memory per CPU a job may ask for, e.g. 7150M, or leave it empty for no limit")
        if default and most and default > most:
            out.append(Problem("def_mem_per_cpu", f"default memory per CPU {self.def_mem_per_cpu} is more than the "
                                                  f"maximum {self.max_mem_per_cpu}; lower it to at most "
                                                  f"{self.max_mem_per_cpu}"))
        _node_size(out, "def_mem_per_gpu", self.def_mem_per_gpu, "default memory per GPU",
                   "the memory per GPU a job gets when it asks for none, e.g. 29440M, or leave it empty")
        if _str(self.def_mem_per_gpu) and not self.has_gpus and self.gpu_count_known:
            out.append(Problem("def_mem_per_gpu", "def_mem_per_gpu is set but the partition has no GPUs (GPUs per "
                                                  "node is 0); remove it, or set GPUs per node"))
        return out

    def _gpu_node_problems(self) -> list[Problem]:
        """The GPU nodes' own size must belong to a partition with GPUs and not exceed its largest node: both say
        the profile is wrong (swapped values, or a partition whose GPUs were left out)."""
        out: list[Problem] = []
        cpus, mem = self.gpu_node_cpus, _str(self.gpu_node_mem)
        has_cpus = isinstance(cpus, int) and not isinstance(cpus, bool) and cpus > 0
        size = _node_size(out, "gpu_node_mem", mem, "memory of the GPU nodes",
                          "the memory a job can use on the largest GPU node, e.g. 500G, or leave it empty")
        if not self.has_gpus:
            for field, value in (("gpu_node_cpus", has_cpus), ("gpu_node_mem", bool(mem))):
                if value and self.gpu_count_known:
                    out.append(Problem(field, f"{field} is set but the partition has no GPUs (GPUs per node is "
                                              "0); remove it, or set GPUs per node"))
            return out
        largest = _positive(self.cpus_per_node)  # (one below 1 is reported as such, and compared with nothing)
        if has_cpus and largest and cpus > largest:
            out.append(Problem("gpu_node_cpus", f"the GPU nodes' {cpus} CPUs are more than CPUs per node "
                                                f"({largest}), which is the partition's largest node; raise "
                                                f"cpus_per_node to {cpus}, or lower gpu_node_cpus"))
        node_mem = self.mem_mib()
        if size and node_mem and size > node_mem:
            out.append(Problem("gpu_node_mem", f"the GPU nodes' {mem} is more than memory per node "
                                               f"({self.mem_per_node}), which is the partition's largest node; "
                                               f"raise mem_per_node to {mem}, or lower gpu_node_mem"))
        return out


#: a partition's memory fields: Slurm sizes, where slurm.conf writes a whole number of MB (RealMemory=257400)
_MEM_FIELDS = ("mem_per_node", "gpu_node_mem", "max_mem_per_job", "def_mem_per_cpu", "def_mem_per_node",
               "max_mem_per_cpu", "def_mem_per_gpu")
#: a partition's and a QOS's count fields (whole numbers)
_COUNT_FIELDS = ("max_nodes", "cpus_per_node", "threads_per_core", "gpus_per_node", "max_cpus_per_job",
                 "max_gpus_per_job", "gpu_nodes",
                 "gpu_node_cpus", "min_nodes", "max_gpus", "def_cpus_per_gpu", "max_cpus_per_gpu")
#: the fields where Slurm's UNLIMITED (scontrol: MaxNodes=UNLIMITED, DefMemPerNode=UNLIMITED) means "none": left out
_UNLIMITED_MEANS_NONE = ("max_nodes", "max_cpus_per_job", "max_gpus_per_job", "max_mem_per_job", "def_mem_per_cpu",
                         "def_mem_per_node", "max_mem_per_cpu", "def_mem_per_gpu", "max_gpus", "def_cpus_per_gpu",
                         "max_cpus_per_gpu")
#: :func:`_lenient`'s answer for a value that means the field's default (no limit)
_LEAVE_OUT = object()


def _lenient(name: str, value: Any) -> Any:
    """A partition's (or a QOS's) ``value`` for field ``name`` as the model holds it, where a profile file may write it another
    way whose meaning is plain: memory as a whole number of MB (``mem_per_node = 257400``, as slurm.conf writes
    RealMemory), a count as digits with spaces around them or as a whole float (``4.0``), and UNLIMITED for a
    limit (:data:`_LEAVE_OUT`). Raises ``ValueError`` with the fix for a value that could mean two things: a bare
    number for a time (Slurm reads minutes, people often mean hours), a fraction of a count or of MB. Any other
    value is returned as it is, for the generic checks."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("UNLIMITED", "INFINITE") and name in _UNLIMITED_MEANS_NONE:
        return _LEAVE_OUT
    if name in _MEM_FIELDS:
        if isinstance(value, int):
            return f"{value}M"
        if isinstance(value, float):
            raise ValueError(f"{value!r} is not a whole number, and Slurm sizes are whole: write whole MB as "
                             f"slurm.conf does, or a size with its unit in quotes, e.g. \"{round(value * 1024)}M\" "
                             f"for {value!r}G")
    elif name in ("max_time", "default_time", "min_time") and isinstance(value, (int, float)):
        whole = int(value) if float(value).is_integer() else None
        if whole is None:
            raise ValueError(f"{value!r} is not a Slurm time; write it in quotes as D-HH:MM:SS, e.g. \"1-12:00:00\"")
        raise ValueError(f"a bare number is ambiguous as a time limit: write \"{whole}\" in quotes for {whole} "
                         f"minutes (as Slurm reads it) or \"{whole}:00:00\" for {whole} hours")
    elif name in _COUNT_FIELDS:
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            return int(value.strip())
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{value!r} is not a whole number; write a count such as {int(value)}")
            return int(value)
    return value


def _node_size(out: list[Problem], field: str, text: Any, what: str, fix: str) -> int | None:
    """A node's memory as written in the profile, in MiB; a problem added to ``out`` for text that is not a
    positive Slurm size (None then, and for empty text)."""
    if not _str(text):
        return None
    try:
        size = parse_mem(text)
    except ValueError as exc:
        out.append(Problem(field, str(exc)))
        return None
    if size <= 0:
        out.append(Problem(field, f"{what} {text!r} is not a node size; write {fix}"))
        return None
    return size


@dataclass(frozen=True)
class Qos(_SiteLimits):
    """A Slurm QOS (sbatch --qos) and the limits it sets on each job, as ``sacctmgr show qos`` lists them: MaxWall,
    and the nodes and GPUs of MaxTRESPerJob and MinTRESPerJob.

    Slurm applies these besides the partition's limits: a job must fit both, so the lower time and node limits
    win (resource_limits.html: a QOS cannot raise a partition's MaxTime or MaxNodes unless it has the
    PartitionTimeLimit or PartitionMaxNodes flag, which this model leaves out).
    """

    kind = "profile.qos"
    file_noun = "a [[qos]] table (name = …, max_time = … on the lines under it)"

    name: str = opt("", label="QOS name", role="internal", placeholder="standard",
                    help="The name given to sbatch --qos (Slurm matches it in any case).")
    description: str = opt("", label="Description", role="internal",
                           help="One line for people choosing a QOS, e.g. 'short test jobs, at most 4 nodes'.")
    max_time: str = opt("", label="Maximum time", role="internal", placeholder="24:00:00",
                        help="The longest --time a job with this QOS may ask for (MaxWall, Slurm notation); empty or "
                             "UNLIMITED for no limit.")
    min_time: str = opt("", label="Minimum time", role="internal", placeholder="24:00:00",
                        help="The shortest --time a job with this QOS may ask for, as the site's documentation "
                             "states it (ARCHER2's long: 24 hours). Slurm's QOS has no such setting (sacctmgr lists "
                             "MaxWall, not a minimum), so sites enforce it when a job is submitted and detection "
                             "cannot read it. Empty for none.")
    max_nodes: int | None = opt(None, label="Maximum nodes", role="internal", minimum=1,
                                help="The most nodes one job with this QOS may use (MaxTRESPerJob node=N); leave it "
                                     "out for no limit.")
    min_nodes: int | None = opt(None, label="Minimum nodes", role="internal", minimum=1,
                                help="The fewest nodes a job with this QOS must use (MinTRESPerJob node=N), as QOS for "
                                     "large jobs set (ARCHER2's largescale); leave it out for none.")
    max_gpus: int | None = opt(None, label="Maximum GPUs per job", role="internal", minimum=1,
                               help="The most GPUs one job with this QOS may use in total (MaxTRESPerJob "
                                    "gres/gpu=N); leave it out for no limit.")

    def describe(self) -> str:
        return f"QOS {self.name or '(unnamed)'}"

    def max_seconds(self) -> int | None:
        """The time limit in seconds, None when there is none."""
        return _limit(self.max_time)

    def min_seconds(self) -> int | None:
        """The shortest time a job may ask for, in seconds; None when there is no minimum."""
        return _limit(self.min_time)

    def sets_limits(self) -> bool:
        """Whether the QOS sets any limit of its own. One listed by name only (ARCHER2's reservation, whose limits
        are the reservation's) is usually special-purpose, so hints do not offer it as a QOS a job fits."""
        return any(v is not None for v in (self.max_seconds(), self.min_seconds(), _positive(self.max_nodes),
                                           _positive(self.min_nodes), _positive(self.max_gpus)))

    def _check(self) -> list[Problem]:
        out: list[Problem] = []
        if not self.name:
            out.append(Problem("name", "a QOS needs a name (what sbatch --qos takes)"))
        elif isinstance(self.name, str) and not _NAME.fullmatch(self.name):
            out.append(Problem("name", f"{self.name!r} is not a QOS name (letters, digits, _ . + -)"))
        out += _time_problem("max_time", f"maximum time of {self.describe()}", self.max_time)
        out += self._min_time_problems()
        low, high = _positive(self.min_nodes), _positive(self.max_nodes)
        if low and high and low > high:
            out.append(Problem("min_nodes", f"{self.describe()}: minimum nodes {low} is more than maximum nodes {high}, "
                                            f"so no job could use it; lower min_nodes or raise max_nodes"))
        return out

    def _min_time_problems(self) -> list[Problem]:
        """A Slurm time that is a real minimum (not UNLIMITED or 0, which Slurm reads as no limit) and not above
        ``max_time``."""
        out = _time_problem("min_time", f"minimum time of {self.describe()}", self.min_time)
        if out or not _str(self.min_time):
            return out
        low, high = self.min_seconds(), self.max_seconds()
        if low is None:
            return [Problem("min_time", f"{self.describe()}: minimum time {self.min_time!r} means no limit in Slurm; "
                                        "write the shortest time a job may ask for (e.g. \"24:00:00\"), or leave "
                                        "min_time out")]
        if high is not None and low > high:
            return [Problem("min_time", f"{self.describe()}: minimum time {self.min_time} is longer than maximum time "
                                        f"{self.max_time}, so no job could use it; lower min_time or raise max_time")]
        return []


@dataclass(frozen=True)
class Module(Spec):
    """Which environment module provides something on this site (``module load NAME``)."""

    kind = "profile.module"
    file_noun = "a [modules] table (one purpose = \"module name\" per line under it)"

    purpose: str = opt("", label="Purpose", role="internal", placeholder="apptainer",
                       help="What the module provides: a container runtime that jobs load (apptainer, singularity, "
                            "charliecloud), or another module the site has (cuda, mpi), which nothing loads.")
    name: str = opt("", label="Module", role="internal", placeholder="apptainer/1.3",
                    help="The name given to module load, e.g. apptainer or cuda/12.1.")

    def _check(self) -> list[Problem]:
        out = []
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", _str(self.purpose)):
            out.append(Problem("purpose", f"{self.purpose!r} is not a purpose key (a word such as apptainer, cuda or mpi)"))
        if not _MODULE.fullmatch(_str(self.name)):
            out.append(Problem("name", f"{self.name!r} is not a module name (e.g. apptainer or cuda/12.1)"))
        purpose = _str(self.purpose)
        if purpose and purpose not in KNOWN_MODULE_PURPOSES:
            import difflib
            near = difflib.get_close_matches(purpose.lower(), KNOWN_MODULE_PURPOSES, n=1, cutoff=0.75)
            if near:
                out.append(Problem("purpose", f"module purpose {purpose!r} looks like a typo of {near[0]!r}; write "
                                              f"{near[0]!r} (as written, no job loads this module)"))
        return out


@dataclass(frozen=True)
class ExampleSettings(Spec):
    """Site values the example workflows and lessons fill in."""

    kind = "profile.examples"
    file_noun = "an [examples] table (image = …, data_dir = … on the lines under it)"

    image: str = opt("", label="Example image", role="internal", path=True,
                     placeholder="$SCRATCH/images/pytorch_24.05.sif",
                     help="The container image the examples run: a .sif file, a sandbox or a Charliecloud image directory.")
    data_dir: str = opt("", label="Example data directory", role="internal", path=True, placeholder="$SCRATCH/data",
                        help="Where the examples read their input data.")
    workdir: str = opt("", label="Example working directory", role="internal", path=True, placeholder="$SCRATCH/work",
                       help="Where the examples write outputs and checkpoints.")
    image_source: str = opt("", label="Example image source", role="internal",
                            placeholder="docker://rocm/pytorch:rocm6.2_ubuntu22.04_py3.10_pytorch_release_2.3.0",
                            help="Where the examples pull their .sif image from (docker://, oras:// or library://, "
                                 "with a pinned tag). Empty: a PyTorch image for the GPU vendor (NVIDIA's NGC image, "
                                 "AMD's ROCm image, else the official pytorch/pytorch image, a CUDA build that also "
                                 "runs on the CPU).")

    def _check(self) -> list[Problem]:
        out: list[Problem] = []
        for name, label in (("image", "example image"), ("data_dir", "example data directory"),
                            ("workdir", "example working directory")):
            value = _str(getattr(self, name))
            if name == "image" and "://" in value:
                continue  # docker://, oras:// references are fine for Apptainer
            out += _path_problems(name, label, value)
        return out + _source_problems(_str(self.image_source))


def _source_problems(source: str) -> list[Problem]:
    """A pull source needs a scheme and a pinned tag: ``:latest`` (or no tag) changes under a running workshop."""
    if not source:
        return []
    if not source.startswith(IMAGE_SOURCES):
        return [Problem("image_source", f"{source!r} needs a scheme: docker://, oras:// or library://, e.g. "
                                        "docker://nvcr.io/nvidia/pytorch:24.05-py3")]
    name = source.split("://", 1)[-1].rsplit("/", 1)[-1]
    if "@" not in name and name.partition(":")[2] in ("", "latest"):
        return [Problem("image_source", f"{source!r} is not pinned: name a version tag (repo:24.05) or a digest "
                                        "(repo@sha256:…) so every job gets the same image")]
    return []


#: each GPU vendor's command-line tools, which come with its driver on the node (so not on the other vendor's nodes):
#: the first is the one to run instead of the other vendor's
GPU_TOOLS = {"nvidia": ("nvidia-smi",), "amd": ("rocm-smi", "amd-smi", "rocminfo")}

#: a CUDA build's tag as PyTorch's wheels spell it (torch2.3-cu121, py3.11-cu118)
_CU_TAG = re.compile(r"(?<![a-z])cu1\d\d?(?![\d.])")


def image_vendor(source: str) -> str:
    """The GPU vendor an image reference is built for, as its name tells: ``nvidia`` for NGC's (nvcr.io/nvidia/…)
    and CUDA builds (pytorch/pytorch:2.3.1-cuda12.1-…, …-cu121), ``amd`` for ROCm builds (rocm/pytorch:…); "" when
    the name does not say (pytorch/pytorch:latest, a site's own image)."""
    lowered = source.lower()
    if "nvcr.io/nvidia/" in lowered or "cuda" in lowered or _CU_TAG.search(lowered):
        return "nvidia"
    return "amd" if "rocm" in lowered else ""


def arch_name(word: str) -> str:
    """The CPU architecture a name means, as Slurm names it (:data:`CPU_ARCHES`), in any case: ``aarch64`` for
    aarch64 or arm64 (Docker's, Apptainer's and Debian's name), ``x86_64`` for amd64; a ``--platform`` value's
    middle part (``linux/arm64/v8``). "" for any other name (arm, 386, s390x, $ARCH)."""
    lowered = _str(word).strip().lower()
    if lowered.startswith("linux/"):
        lowered = lowered.split("/")[1]
    return next((arch for arch in CPU_ARCHES if lowered == arch or lowered in ARCH_ALIASES[arch]), "")


def _arch_problems(field: str, value: Any) -> list[Problem]:
    """A CPU architecture as Slurm's Arch= names it, or empty; another name of one (arm64) says which to write."""
    if not isinstance(value, str) or not value or value in CPU_ARCHES:
        return []  # (a value that is not text is reported by the generic checks)
    meant = arch_name(value)
    if meant:
        return [Problem(field, f"{value!r} is another name for {meant}; write {field} = \"{meant}\", as Slurm's Arch= "
                               "(uname -m on the node) names it")]
    return [Problem(field, f"{value!r} is not a CPU architecture: write x86_64, aarch64 or ppc64le, as scontrol show "
                           "node prints Arch= for the nodes, or leave it out when unknown")]


#: container images published for some CPU architectures only, by repository (with its registry: Docker Hub's as
#: docker.io/OWNER/NAME), with the architectures their tags have builds for. Only images whose builds are known go
#: here. pytorch/pytorch publishes linux/amd64 builds only (no tag has an arm64 or ppc64le build; the requests for
#: arm64, pytorch/pytorch#145716 and #157139, are open): on Arm nodes (NVIDIA Grace, GH200) apptainer pull finds no
#: image for the node, or the image's programs fail with "exec format error". NVIDIA's NGC PyTorch image is published
#: for linux/amd64 and linux/arm64 (NVIDIA Grace and GH200 sites such as CSCS Alps run it), none for ppc64le.
IMAGE_ARCHES = {"docker.io/pytorch/pytorch": ("x86_64",), "nvcr.io/nvidia/pytorch": ("x86_64", "aarch64")}


def image_repository(ref: str) -> str:
    """The repository an image reference names, with its registry, in lower case: ``docker://pytorch/pytorch:2.3.1``
    and ``pytorch/pytorch@sha256:…`` give ``docker.io/pytorch/pytorch``, ``ubuntu:24.04`` ``docker.io/library/ubuntu``,
    ``nvcr.io/nvidia/pytorch:24.05-py3`` itself without the tag. "" for another scheme (oras://, library://, a file)."""
    text = _str(ref).strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme.lower() != "docker":
            return ""
    text = text.split("@", 1)[0]
    last = text.rsplit("/", 1)
    text = "/".join(last[:-1] + [last[-1].split(":", 1)[0]])
    parts = [p for p in text.lower().split("/") if p]
    if not parts or any("$" in p for p in parts):
        return ""
    if len(parts) == 1 or not ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = ["docker.io"] + (["library"] if len(parts) == 1 else []) + parts
    if parts[0] in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        parts[0] = "docker.io"
    return "/".join(parts)


def image_arches(ref: str) -> tuple[str, ...]:
    """The CPU architectures an image has builds for, where :data:`IMAGE_ARCHES` knows them; () when unknown."""
    return IMAGE_ARCHES.get(image_repository(ref), ())


#: file names that say the CPU architecture they are built for, with what they are: Python wheels
#: (…-manylinux2014_x86_64.whl, …-linux_aarch64.whl), the conda installers (Miniconda3-latest-Linux-x86_64.sh,
#: Miniforge3-Linux-aarch64.sh, Mambaforge-…, Anaconda3-…), Debian packages (…_amd64.deb) and RPMs (….x86_64.rpm)
_ARCH_FILES = (
    ("a Python wheel", re.compile(r"[\w.+!%-]*linux\w*?_(x86_64|aarch64|ppc64le)\.whl\b")),
    ("a conda installer", re.compile(r"(?:Mini(?:conda|forge)|Mambaforge|Anaconda)[\w.+-]*-Linux-"
                                     r"(x86_64|aarch64|ppc64le)\.sh\b")),
    ("a Debian package", re.compile(r"[\w.+~%-]+_(amd64|arm64|ppc64el)\.deb\b")),
    ("an RPM package", re.compile(r"[\w.+~%-]+\.(x86_64|aarch64|ppc64le)\.rpm\b")),
)


def arch_named_files(text: str) -> list[tuple[str, str, str]]:
    """The files named in ``text`` whose names say the CPU architecture they are built for, in order: ``(file name,
    what it is, architecture as Slurm names it)``, e.g. ``("Miniforge3-Linux-x86_64.sh", "a conda installer",
    "x86_64")``. A name built from ``$(uname -m)`` says no architecture and is not listed."""
    found = [(m.start(), m.group(0), kind, arch_name(m.group(1)))
             for kind, pattern in _ARCH_FILES for m in pattern.finditer(_str(text))]
    return [(name.rsplit("/", 1)[-1], kind, arch) for _, name, kind, arch in sorted(found)]


def _image_arch_problems(arch: str, source: str) -> list[Problem]:
    """An example image source known to have no build for the site's CPU architecture (:data:`IMAGE_ARCHES`)."""
    built = image_arches(source)
    if not arch or not built or arch in built:
        return []
    return [Problem("examples.image_source", f"{source} has builds for {', '.join(built)} only, but the site's nodes "
                                             f"are {arch}: apptainer pull finds no image for them (or its programs "
                                             "fail with 'exec format error'); use an image built for "
                                             f"{arch}{ARCH_IMAGE_HINTS.get(arch, '')}")]


#: an image built for an architecture, for messages that ask for one
ARCH_IMAGE_HINTS = {"aarch64": ", such as docker://nvcr.io/nvidia/pytorch:24.05-py3 (NVIDIA's NGC PyTorch, built for "
                               "arm64 and amd64; it runs on the CPU too)"}


def _vendor_problems(vendor: str, source: str) -> list[Problem]:
    """An example image built for the other GPU vendor: PyTorch then sees no GPU and trains on the CPU."""
    built_for = image_vendor(source)
    if vendor == "amd" and built_for == "nvidia":
        return [Problem("examples.image_source", f"{source} is a CUDA build, but the GPU vendor is amd: PyTorch in it "
                                                 "sees no AMD GPU; use a ROCm build such as docker://rocm/pytorch:TAG")]
    if vendor == "nvidia" and built_for == "amd":
        return [Problem("examples.image_source", f"{source} is a ROCm build, but the GPU vendor is nvidia: PyTorch in "
                                                 "it sees no NVIDIA GPU; use a CUDA build such as "
                                                 "docker://nvcr.io/nvidia/pytorch:TAG")]
    return []


def _shown_value(value: Any, bare: bool = False) -> str:
    """A value read from a file as TOML writes it, short; a list says it is one ("a list [...]") unless ``bare``."""
    from ._toml import scalar
    try:
        text = scalar(value)
    except TypeError:
        text = repr(value)
    text = text if len(text) <= 50 else text[:47] + "…"
    return f"a list {text}" if isinstance(value, (list, tuple)) and not bare else text


def _kind_of(value: Any) -> str:
    """What kind of TOML value ``value`` is, for a message: text, a number, a list …"""
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return "a list" if isinstance(value, (list, tuple)) else "a table" if isinstance(value, dict) else "a value"


def _module_value_problem(purpose: Any, value: Any) -> str:
    """What is wrong with ``purpose = value`` in ``[modules]`` when the value is not text, and how to write it."""
    key = purpose if isinstance(purpose, str) and re.fullmatch(r"[A-Za-z0-9_-]+", purpose) else f'"{purpose}"'
    example = "cuda/12.1" if key == "cuda" else f"{key}/1.0" if isinstance(purpose, str) else "name/1.0"
    if isinstance(value, (list, tuple)):
        return (f"{key} = {_shown_value(value, bare=True)} is a list, but each [modules] key names one module: "
                f"write {key} = \"{example}\" (one module name per key; give another module a key of its own)")
    if isinstance(value, dict):
        return (f"[modules.{key}] is a table, but each [modules] key names one module: write {key} = \"{example}\" "
                "under [modules] instead")
    return f"{key} = {_shown_value(value)} is not a module name: write it in quotes, e.g. {key} = \"{example}\""


def _job_env_items(table: dict[Any, Any]) -> list[Any]:
    """The ``[job_env]`` table of a profile file as the field holds it: one ``NAME=value`` text per key. A whole
    number is the text it reads as (``NCCL_IB_TIMEOUT = 22``); a key that cannot be a variable's name, and a value of
    another kind (a list, a table, true), raise :class:`ValidationError` saying how to write it, each problem of
    field ``job_env[I]`` for the I-th key of the table (so a profile file's reader can say its line)."""
    problems, items = [], []
    for i, (name, value) in enumerate(table.items()):
        field = f"job_env[{i}]"
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            problems.append(Problem(field, f"[job_env] key {name!r} is not a variable name (letters, digits and "
                                           "_, not starting with a digit); correct it"))
        elif isinstance(value, int) and not isinstance(value, bool):
            items.append(f"{name}={value}")
        elif isinstance(value, str):
            items.append(f"{name}={value}")
        else:
            shown = _shown_value(value, bare=True)
            problems.append(Problem(field, f"[job_env] {name} = {shown} is {_kind_of(value)}, but a variable's "
                                           f"value is one text: write it in quotes, e.g. {name} = \"value\""))
    if problems:
        raise ValidationError(problems)
    return items


def _site_var(item: Any) -> EnvVar | None:
    """One ``job_env`` item as a variable; None when it is not one (:func:`_job_env_problems` says why)."""
    if not isinstance(item, str) or "=" not in item:
        return None
    var = EnvVar(*item.split("=", 1))
    return None if var.problems() else var


def _site_bind(item: Any) -> Bind | None:
    """One ``container_binds`` item as a bind; None when it is not one (:func:`_bind_problems` says why)."""
    if not isinstance(item, str) or not item or _bind_problems(item):
        return None
    return Bind.from_token(item)


def _destination(bind: Bind) -> str:
    """Where ``bind`` appears in the container, without a trailing slash (``/data/`` and ``/data`` are one place)."""
    return bind_destination(bind).rstrip("/") or "/"


def _job_env_problems(items: Any) -> list[Problem]:
    """What is wrong with the ``job_env`` items, each problem of field ``job_env[I]`` for the I-th item (a name set
    twice: the second time), so a profile file's reader can say its line."""
    out: list[Problem] = []
    names: list[str] = []
    for i, item in enumerate(_tup(items)):
        field = f"job_env[{i}]"
        if not isinstance(item, str):
            continue  # a value of another type: the generic check reports it
        name, eq, value = item.partition("=")
        if not eq:
            out.append(Problem(field, f"{item!r} has no value; write NAME=value in a list, or NAME = \"value\" "
                                      "under [job_env]"))
            continue
        if not _ENV_NAME.fullmatch(name):
            out.append(Problem(field, f"{name!r} is not a variable name (letters, digits and _, not starting with a "
                                      f"digit), so no job can export it; correct it in {item!r}"))
            continue
        out += [Problem(field, p.message) for p in EnvVar(name, value).problems()]
        if name in names and names.count(name) == 1:
            out.append(Problem(field, f"{name} is set more than once; keep one value"))
        names.append(name)
    return out


def _bind_problems(item: str) -> list[Problem]:
    """What is wrong with one ``container_binds`` item (``SRC``, ``SRC:DST``, ``SRC:DST:ro``), as the Apptainer
    model's binds are checked, and for a folder of the host every job would get: absolute paths (or a $VARIABLE),
    never / itself."""
    if not item.strip():
        return [Problem("container_binds", "an empty bind; write SRC, SRC:DST or SRC:DST:ro")]
    if "," in item:
        return [Problem("container_binds", f"{item!r}: one bind per item (SRC, SRC:DST or SRC:DST:ro); list several "
                                           "binds as separate texts")]
    bind = Bind.from_token(item)
    out = [Problem("container_binds", f"{item!r}: {p.message}") for p in bind.problems()]
    src, dst = _str(bind.src), _str(bind.dst)
    if src.startswith("~") or dst.startswith("~"):
        pass  # the generic check of a bind's paths says to write $HOME
    elif src and not src.startswith(("/", "$")):
        out.append(Problem("container_binds", f"{item!r}: the host path must be absolute (or start with a variable "
                                              "such as $SCRATCH)"))
    elif (src and not src.rstrip("/")) or (dst and not dst.rstrip("/")):
        out.append(Problem("container_binds", f"{item!r} binds / (the whole host, or over the whole image, "
                                              "whose own files it would hide); bind only the folders jobs need"))
    return out


def _with_binds(container: Any, binds: tuple[Bind, ...]) -> Any:
    """``container`` with the site's ``binds`` first, but those whose destination it binds already; a ch-run
    container gets them without a mode (ch-run has none)."""
    own = getattr(container, "binds", None)
    if not binds or not isinstance(own, tuple):
        return container
    have = {_destination(b) for b in own if isinstance(b, Bind)}
    added = []
    for b in binds:
        if _destination(b) in have:
            continue
        have.add(_destination(b))
        added.append(b.replace(mode="") if isinstance(container, ChRun) and b.mode else b)
    return container.replace(binds=(*added, *own)) if added else container


#: the programs of each container runtime, and the module purposes that may provide them (first named wins)
RUNTIME_PURPOSES = {"apptainer": ("apptainer",), "singularity": ("singularity", "apptainer"),
                    "ch-run": ("charliecloud",), "ch-image": ("charliecloud",), "ch-convert": ("charliecloud",),
                    "ch-fromhost": ("charliecloud",), "charliecloud": ("charliecloud",)}


def _runtime_program(profile: "ClusterProfile", runtime: str) -> str:
    """The program a job calls to run an image with ``runtime``: ch-run for Charliecloud, the site's name for
    Apptainer (``apptainer_binary``), singularity for Singularity."""
    if runtime == "charliecloud":
        return "ch-run"
    if runtime == "apptainer":
        return _str(profile.apptainer_binary) or "apptainer"
    return runtime


@dataclass(frozen=True)
class ClusterProfile(Spec):
    """Everything site-specific a job needs: partitions and limits, paths, modules, runtimes."""

    kind = "profile"

    name: str = opt("", label="Profile name", role="internal", placeholder="midway3",
                    help="Short name used to select the profile (the TOML file's name without .toml).")
    description: str = opt("", label="Description", role="internal",
                           help="One or two sentences on the site, shown when choosing a profile.")
    login_host: str = opt("", label="Login host", role="internal", placeholder="login.example.edu",
                          help="The host you ssh to (used to print SSH tunnel commands for JupyterLab).")
    login_port: int | None = login_port_field("The login host's ssh port when it is not 22 (ULHPC: 8022); the "
                                              "tunnel command then says ssh -p PORT. Leave it out for 22.")
    jump_host: str = jump_host_field("A host ssh must go through to reach the login host (ssh -J, ProxyJump): "
                                     "[user@]host[:port], hops joined by commas; empty for none.")
    tunnel: str | None = opt(None, label="Jupyter tunnel", role="internal",
                             choices=(TUNNEL_THROUGH_LOGIN, TUNNEL_TO_NODE),
                             help="The Jupyter tunnel's form at this site, which the examples, jupyter-job, the "
                                  "Jupyter form and make lab start from (one job's own choice wins: jupyter-job --tunnel, the "
                                  "form's Tunnel field, make lab's --tunnel or HPCW_TUNNEL): "
                                  "login, ssh to the login host, which forwards to the compute node's port; node, "
                                  "ssh to the compute node itself through the login host (ssh -J), for sites whose "
                                  "login nodes cannot reach compute nodes' ports but let you ssh to a node running "
                                  "your job (pam_slurm_adopt). Leave it out for login.")
    scheduler_version: str = opt("", label="Slurm version", role="internal", placeholder="22.05",
                                 help="Slurm release (major.minor); srun of 22.05–23.02 does not inherit --cpus-per-task. "
                                      "Empty if unknown (then it is always passed again).")
    mpi_default: str = opt("", label="Slurm MpiDefault", role="internal", placeholder="pmix",
                           help="The MPI plugin srun uses when a step names none (slurm.conf MpiDefault; scontrol show "
                                "config | grep MpiDefault): none, pmi2, pmix or pmix_vN. Open MPI 5 ranks started by "
                                "srun without --mpi need pmix. Empty if unknown (then nothing is checked).")
    runtimes: tuple[str, ...] = opt(("apptainer",), label="Container runtimes", role="internal", choices=RUNTIMES,
                                    help="Runtimes the site provides: apptainer, singularity, charliecloud.")
    runtimes_render_only: tuple[str, ...] = opt((), label="Render-only runtimes", role="internal", choices=RUNTIMES,
                                                advanced=True,
                                                help="Runtimes whose commands are shown but not run here (not installed on "
                                                     "this machine); lessons print these commands instead of executing them, and "
                                                     "lint reports a script calling them (HPC416).")
    apptainer_binary: str = opt("apptainer", label="Apptainer program", role="internal",
                                choices=("apptainer", "singularity"),
                                help="The program name: apptainer, or singularity on older installations.")
    modules: tuple[Module, ...] = opt((), label="Modules", role="internal",
                                      help="The module (module load NAME) that provides each container runtime; in "
                                           "TOML a [modules] table such as apptainer = \"apptainer/1.3\". Jobs load "
                                           "only the runtimes' keys (apptainer, singularity, charliecloud), and lint "
                                           "(HPC409) checks a script loads them, and takes a table that names them "
                                           "for the runtime modules the site has (HPC414 reports a script loading "
                                           "module apptainer where the table names only singularity's); any other key "
                                           "(cuda, mpi) is loaded by nothing and only names a module the site has, for "
                                           "the slides check.")
    scratch: str = opt("$SCRATCH", label="Scratch", role="internal", path=True, placeholder="/scratch/$USER",
                       help="Large shared work space visible from every node (not backed up).")
    node_local: str = opt("$TMPDIR", label="Node-local storage", role="internal", path=True,
                          placeholder="/scratch/local/$USER",
                          help="Fast disk on each compute node for temporary files during a job.")
    image_dir: str = opt("$SCRATCH/images", label="Image directory", role="internal", path=True,
                         help="Where container images are kept (on scratch: images are large).")
    cache_dir: str = opt("$SCRATCH/.apptainer/cache", label="Apptainer cache", role="internal", path=True,
                         help="APPTAINER_CACHEDIR: keep it on scratch, the default under $HOME fills home quotas.")
    job_env: tuple[str, ...] = opt((), label="Job environment", role="internal",
                                   placeholder="NCCL_SOCKET_IFNAME=ib0",
                                   help="Variables every job written for the site exports, such as the network "
                                        "interfaces NCCL must use between nodes (LUMI: NCCL_SOCKET_IFNAME = "
                                        "\"hsn0,hsn1,hsn2,hsn3\") or a cache that belongs on node-local disk "
                                        "(MIOPEN_USER_DB_PATH = \"/tmp/$USER-miopen\"); in TOML a [job_env] table, "
                                        "one NAME = \"value\" per line, as the profile is written back (a list of "
                                        "\"NAME=value\" texts is read too). A value is one word: $NAME "
                                        "references expand when the job runs, nothing else does. The examples, the "
                                        "workflow form and --profile (workflow, sbatch, jupyter-job) export them "
                                        "after the job's own exports, leaving out a name the job already sets; a "
                                        "job read back from a script gets none.")
    container_binds: tuple[str, ...] = opt((), label="Container binds", role="internal",
                                           placeholder="/project:/project:ro",
                                           help="Host folders every container step written for the site binds "
                                                "(Apptainer --bind, Charliecloud -b): SRC, SRC:DST or SRC:DST:ro, "
                                                "for storage the runtime does not mount by itself (LUMI mounts "
                                                "neither /scratch/PROJECT nor /project/PROJECT into containers). "
                                                "They come before the step's own binds, so those win: a destination "
                                                "the step binds already is left out. ch-run has no bind modes (an "
                                                ":ro is left off for it) and needs DST to exist in a read-only "
                                                "image (create it in the image, RUN mkdir -p DST). A job read back "
                                                "from a script gets none.")
    gpu_vendor: str = opt("none", label="GPU vendor", role="internal", choices=GPU_VENDORS,
                          help="nvidia (apptainer --nv), amd (--rocm), intel (neither flag) or none.")
    cpu_arch: str = opt("", label="CPU architecture", role="internal", placeholder="x86_64",
                        help="The CPU architecture of the site's compute nodes, as Slurm's Arch= names it (scontrol "
                             "show node; uname -m on a node): x86_64, aarch64 (Arm: NVIDIA Grace and GH200, "
                             "Isambard 3, CSCS Alps) or ppc64le; a partition's own cpu_arch replaces it there. The "
                             "examples then pull an image built for it, and lint reports downloads and images built "
                             "for another one (HPC418-HPC420, HPC710, HPC711). Empty: unknown, nothing is checked.")
    default_partition: str = opt("", label="Default partition", role="internal",
                                 help="Partition for jobs that name none (must be one of the partitions).")
    default_gpu_partition: str = opt("", label="Default GPU partition", role="internal",
                                     help="Partition the GPU examples use (must have GPUs).")
    gpu_jobs_to_default_gpu_partition: bool = opt(
        False, label="GPU jobs go to the default GPU partition", role="internal",
        help="true when the site sends a job that asks for GPUs and names no partition to its default GPU partition "
             "(IDRIS Jean Zay): such a job is then checked against default_gpu_partition, not default_partition.")
    constraint_selects_partition: bool = opt(
        False, label="A constraint selects the partition", role="internal",
        help="true when the site sends a job that names no partition but a --constraint to the partition whose "
             "constraint it is (IDRIS Jean Zay: -C a100 runs on gpu_p5, -C h100 on gpu_p6), as a site's submit "
             "filter does; plain Slurm keeps such a job in the default partition. The job is then checked against "
             "that partition.")
    account: str = opt("", label="Account", role="internal",
                       help="Default allocation to charge (sbatch --account); empty to let Slurm choose. A "
                            "partition's own account replaces it for jobs on that partition.")
    account_required: bool = opt(False, label="Account required", role="internal",
                                 help="true when the site rejects a job that names no account (LUMI, Alliance "
                                      "clusters): the profile check then reports such a job.")
    partitions: tuple[Partition, ...] = opt((), label="Partitions", role="internal",
                                            help="The partitions and their limits; in TOML one [[partitions]] table each.")
    partitions_complete: bool = opt(True, label="Partitions complete", role="internal",
                                    help="false when the profile lists only some of the site's partitions (owner, "
                                         "condo or hidden ones left out): a job naming a partition not listed is "
                                         "then a warning, not an error.")
    qos: tuple[Qos, ...] = opt((), label="QOS", role="internal",
                               help="The QOS jobs may name (sbatch --qos) and the limits each sets on one job; in "
                                    "TOML one [[qos]] table each. When any are listed, a job naming another QOS is "
                                    "reported. Empty: QOS limits are not checked.")
    qos_required: bool = opt(False, label="QOS required", role="internal",
                             help="true when the site rejects a job that names no QOS (ARCHER2, Cirrus: --qos=standard "
                                  "and others): the profile check then reports such a job and names the QOS to "
                                  "choose from.")
    examples: ExampleSettings = opt(ExampleSettings(), label="Example settings", role="internal",
                                    help="Image, data and working directory the example workflows use on this site.")

    def describe(self) -> str:
        return f"profile {self.name or '(unnamed)'}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Also accepts ``modules`` as a mapping ``{purpose: module}`` (the TOML table form). A value there that is
        not one module name (a list, a table), or ``modules`` that is neither that table nor a list of modules, is a
        :class:`ValidationError` saying how to write it (``modules[I].name`` for the I-th key of the table)."""
        modules = data.get("modules") if isinstance(data, dict) else None
        if isinstance(modules, dict) and "kind" not in modules:
            problems = [Problem(f"modules[{i}].name", _module_value_problem(purpose, name))
                        for i, (purpose, name) in enumerate(modules.items()) if not isinstance(name, str)]
            if problems:
                raise ValidationError(problems)
            data = {**data, "modules": [{"purpose": k, "name": v} for k, v in modules.items()]}
        elif modules is not None and not (isinstance(modules, (list, tuple))
                                          and all(isinstance(m, (dict, Module)) for m in modules)):
            raise ValidationError([Problem("modules", f"{_shown_value(modules, bare=True)} is "
                                                      f"{_kind_of(modules)}, but modules is a table: write [modules] "
                                                      "on a line of its own and one purpose = \"module\" per line "
                                                      "under it, e.g. apptainer = \"apptainer/1.3\"")])
        job_env = data.get("job_env") if isinstance(data, dict) else None
        if isinstance(job_env, dict) and "kind" not in job_env:
            data = {**data, "job_env": _job_env_items(job_env)}
        return super().from_dict(data)

    # -- look-ups ----------------------------------------------------------------------------
    def partition_names(self) -> list[str]:
        return [p.name for p in _tup(self.partitions) if isinstance(p, Partition)]

    def partition(self, name: str) -> Partition:
        """The partition called ``name``; raises :class:`ProfileError` listing the valid names."""
        for p in _tup(self.partitions):
            if isinstance(p, Partition) and p.name == name:
                return p
        valid = ", ".join(self.partition_names()) or "(none defined)"
        raise ProfileError(f"{self.name or 'this profile'} has no partition {name!r}; valid partitions: {valid}")

    def slurm_partition_names(self) -> list[str]:
        """The names a job may give to --partition (entries selected by QOS/constraint are left out)."""
        return [p.name for p in _tup(self.partitions) if isinstance(p, Partition) and p.is_slurm_partition]

    def qos_named(self, name: str) -> Qos | None:
        """The QOS the profile lists as ``name`` (in any case, as Slurm matches QOS names), None when it lists none
        such."""
        wanted = _str(name).lower()
        return next((q for q in _tup(self.qos) if isinstance(q, Qos) and _str(q.name).lower() == wanted), None) \
            if wanted else None

    def qos_names(self) -> list[str]:
        """The names of the QOS the profile lists ([[qos]] tables); when there are any, a job may name no other."""
        return [q.name for q in _tup(self.qos) if isinstance(q, Qos) and _str(q.name)]

    def qos_choices(self) -> list[str]:
        """The QOS names to offer a job: those the profile lists, else those its partitions name."""
        listed = self.qos_names()
        if listed:
            return listed
        named = [n for p in _tup(self.partitions) if isinstance(p, Partition)
                 for n in (_str(p.qos), *_tup(p.allowed_qos)) if isinstance(n, str) and n]
        return list(dict.fromkeys(named))

    def gpu_partitions(self) -> tuple[Partition, ...]:
        return tuple(p for p in _tup(self.partitions) if isinstance(p, Partition) and p.has_gpus)

    def account_for(self, part: Partition | None) -> str:
        """The account a job on ``part`` is charged to: the partition's own, else the top-level one."""
        own = _str(getattr(part, "account", "")) if part is not None else ""
        return own or _str(self.account)

    def job_fields(self, part: Partition | None) -> dict[str, str]:
        """The :class:`SlurmJob` fields that put a job on ``part``: ``partition`` (empty for an entry that is
        not a Slurm partition), ``qos``, ``constraint`` and ``account``. With ``None``: only the account."""
        if part is None:
            return {"partition": "", "qos": "", "constraint": "", "account": _str(self.account)}
        return {"partition": part.name if part.is_slurm_partition else "", "qos": _str(part.qos),
                "constraint": _str(part.constraint), "account": self.account_for(part)}

    def entry_for(self, job: SlurmJob) -> Partition | None:
        """The entry a job runs on: the partition it names (the first, if several), else the entry its
        --qos/--constraint select (:meth:`selected_by`), else the default one unless the job's QOS or
        constraint contradicts a default that is not a Slurm partition. None when unknown."""
        names = [n.strip() for n in _str(job.partition).split(",") if n.strip()]
        if names:
            return next((p for p in _tup(self.partitions) if isinstance(p, Partition) and p.is_slurm_partition
                         and p.name == names[0]), None)
        if _partition_kept_as_written(job):
            return None  # the job names one, on a line the model could not read (--partition=<YOUR PARTITION>)
        chosen = self.selected_by(job)
        if chosen is not None:
            return chosen
        if self.routes_to_gpu_partition(job):
            return self.default(gpu=True)
        part = self.default()
        if part is not None and not part.is_slurm_partition and _contradicts(part, job):
            return None
        return part

    def routes_to_gpu_partition(self, job: SlurmJob) -> bool:
        """True when the site sends ``job`` (GPUs, no --partition) to the default GPU partition
        (``gpu_jobs_to_default_gpu_partition``)."""
        return (self.gpu_jobs_to_default_gpu_partition is True and not _str(job.partition).strip()
                and bool(_well_typed(job).gpus_on_each_node) and self.default(gpu=True) is not None)

    def selected_by(self, job: SlurmJob) -> Partition | None:
        """The entry that is not a Slurm partition whose qos and constraint the job asks for (each the entry
        sets must equal the job's), the most specific one when several match; else, on a site where a constraint
        selects the partition (``constraint_selects_partition``), the partition whose constraint the job asks for
        (of several, the first that allows the job's QOS); None when none does."""
        return self._selected_by_qos_or_constraint(job) or self._selected_by_constraint(job)

    def _selected_by_constraint(self, job: SlurmJob) -> Partition | None:
        wanted = _str(job.constraint).strip()
        if self.constraint_selects_partition is not True or not wanted:
            return None
        named = [p for p in _tup(self.partitions) if isinstance(p, Partition) and p.is_slurm_partition
                 and _str(p.constraint) == wanted]
        return next((p for p in named if _allows_qos(p, _str(job.qos))), named[0] if named else None)

    def _selected_by_qos_or_constraint(self, job: SlurmJob) -> Partition | None:
        best, score = None, 0
        for p in _tup(self.partitions):
            if not isinstance(p, Partition) or p.is_slurm_partition:
                continue
            wanted = [(_str(p.qos), _str(job.qos)), (_str(p.constraint), _str(job.constraint))]
            if any(mine != theirs for mine, theirs in wanted if mine):
                continue
            count = sum(1 for mine, _ in wanted if mine)
            if count > score:
                best, score = p, count
        return best

    def fill_job(self, job: SlurmJob) -> SlurmJob:
        """``job`` with the QOS, constraint and account of the entry it runs on (:meth:`entry_for`) filled in
        where the job leaves them empty."""
        part = self.entry_for(job)
        if part is None:
            return job.replace(account=job.account or _str(self.account)) if _str(self.account) else job
        fields = self.job_fields(part)
        changes = {k: fields[k] for k in ("qos", "constraint", "account") if fields[k] and not getattr(job, k)}
        return job.replace(**changes) if changes else job

    def place_job(self, job: SlurmJob) -> SlurmJob:
        """``job`` with what the site needs to run it filled in where the job leaves it empty, as the examples
        and the Jupyter job do: a job that names no partition (and whose QOS/constraint select no entry) gets the
        entry it runs on, or the default GPU partition when it asks for GPUs and that entry has none; then the
        QOS, constraint and account of its entry (:meth:`fill_job`). Values the job sets are kept."""
        if not _str(job.partition).strip() and self.selected_by(job) is None:
            part = self.entry_for(job)
            if _well_typed(job).gpus_on_each_node and (part is None or not part.has_gpus):
                part = self.default(gpu=True) or part
            if part is not None:
                changes = {k: v for k, v in self.job_fields(part).items() if v and not getattr(job, k)}
                job = job.replace(**changes) if changes else job
        return self.fill_job(job)

    def default(self, gpu: bool = False) -> Partition | None:
        """The partition a job lands in without --partition (or the default GPU partition)."""
        name = self.default_gpu_partition if gpu else self.default_partition
        parts = [p for p in _tup(self.partitions) if isinstance(p, Partition)]
        if not name and not gpu:
            name = next((p.name for p in parts if p.is_default), "")
        if not name and gpu:
            ranked = best_partitions(self.gpu_partitions())
            return ranked[0] if ranked else None
        return next((p for p in parts if p.name == name), None)

    def part_of_node_partition(self, part: Partition | None, *, gpus: int = 1,
                               cpus_per_task: int | None = None) -> Partition | None:
        """The partition for a one-node job that uses part of a node of ``part``: ``gpus`` GPUs per node (none where
        ``part`` has no GPUs) and ``cpus_per_task`` CPUs for its one task (Slurm's default when None). That is
        ``part`` itself, unless it gives every job whole nodes and bills them and a partition that shares nodes fits
        the job: then the one HPC415 names (:func:`partition_sharing_nodes`). None for ``part`` None. The examples
        and the lessons choose their one-GPU jobs' partition with it."""
        if part is None:
            return None
        job = SlurmJob(**self.job_fields(part), gpus_per_node=gpus if part.has_gpus else 0,
                       cpus_per_task=cpus_per_task)
        return partition_sharing_nodes(self, part, job) or part

    def multi_node_partition(self, nodes: int = 2) -> Partition | None:
        """The partition for a job of ``nodes`` nodes that runs one worker per GPU: of the GPU partitions (of all,
        on a site without GPUs), the best for production that allows ``nodes`` nodes, then the one with the most nodes
        (:func:`best_partitions`; the default GPU partition, or the default one, wins a tie); of those that allow
        ``nodes`` nodes, a partition of whole GPUs before one whose GPUs are all MIG slices
        (:attr:`Partition.mig_only`): several workers of a node cannot share its slices, so a job there runs one
        worker per node. The multi-node example chooses its partition with it. None without partitions."""
        parts = list(self.gpu_partitions()) or [p for p in _tup(self.partitions) if isinstance(p, Partition)]
        default = self.default(gpu=True) or self.default()
        parts.sort(key=lambda p: p is not default)
        ranked = best_partitions(parts, nodes=nodes, by="nodes")

        def fits(p: Partition) -> bool:
            return not (isinstance(p.max_nodes, int) and 0 < p.max_nodes < nodes)
        # stable: best_partitions' order where these keys (its first ones, then MIG) are equal
        ranked.sort(key=lambda p: (not p.for_production, p.gpu_nodes is not None, not fits(p), p.mig_only))
        return ranked[0] if ranked else None

    def arch_of(self, part: Partition | None) -> str:
        """The CPU architecture of ``part``'s nodes: its own ``cpu_arch``, else the profile's; "" when unknown."""
        own = _str(getattr(part, "cpu_arch", "")) if part is not None else ""
        arch = own or _str(self.cpu_arch)
        return arch if arch in CPU_ARCHES else ""

    def arch_for(self, job: SlurmJob) -> str:
        """The CPU architecture of the nodes ``job`` runs on: that of the entry it runs on (:meth:`entry_for`), else
        the profile's (:meth:`site_arch`); "" when unknown."""
        part = self.entry_for(job)
        return self.arch_of(part) if part is not None else self.site_arch()

    def site_arch(self) -> str:
        """The CPU architecture of the site's nodes: the profile's ``cpu_arch``, else the one every partition names;
        "" when unknown, or when the partitions differ."""
        own = self.arch_of(None)
        if own:
            return own
        found = {self.arch_of(p) for p in _tup(self.partitions) if isinstance(p, Partition)}
        return found.pop() if len(found) == 1 else ""

    def vendor_of(self, part: Partition | None) -> str:
        """The GPU vendor of ``part``: its own ``gpu_vendor`` (``mixed`` included), else the profile's."""
        own = _str(getattr(part, "gpu_vendor", "")) if part is not None else ""
        return own or _str(self.gpu_vendor)

    def vendor_for(self, job: SlurmJob) -> str:
        """The vendor of the GPUs ``job`` gets: that of the entry it runs on (:meth:`entry_for`), the profile's when
        that entry has no GPUs. On a ``mixed`` partition the job's GPU type tells (:func:`gpu_type_vendor`; a name it does
        not know: nvidia); "" when it names none, as the vendor is then unknown."""
        part = self.entry_for(job)
        if part is None or not part.has_gpus:
            return _str(self.gpu_vendor)
        vendor = self.vendor_of(part)
        if vendor != "mixed":
            return vendor
        gpu_type = _str(_well_typed(job).gpu_type)
        return (gpu_type_vendor(gpu_type) or "nvidia") if gpu_type else ""

    def module(self, purpose: str) -> str:
        """The module name for a purpose (``apptainer``, ``cuda``, …), or "" when the site needs none."""
        return next((m.name for m in _tup(self.modules) if isinstance(m, Module) and m.purpose == purpose), "")

    def runtime_module(self, program: str) -> str:
        """The module that provides a container program (``apptainer``, ``singularity``, ``ch-run`` …), or ""
        (``singularity`` falls back to the apptainer module, which also installs that command)."""
        purposes = RUNTIME_PURPOSES.get(program.rsplit("/", 1)[-1], ())
        return next((name for name in (self.module(p) for p in purposes) if name), "")

    def runnable_runtimes(self) -> tuple[str, ...]:
        """The container runtimes the profile's cluster runs: those of ``runtimes`` that ``runtimes_render_only`` does
        not list (a render-only runtime's commands are shown and checked, not run: the practice cluster lists
        Apptainer so, as only Charliecloud is installed there)."""
        shown_only = set(_tup(self.runtimes_render_only))
        return tuple(r for r in _tup(self.runtimes) if r not in shown_only)

    def runnable_runtime(self) -> str:
        """The container runtime a new job of this profile uses (the examples, the workflow form): the first its
        cluster runs (:meth:`runnable_runtimes`); where every runtime it lists is render-only, the first listed (its
        commands are then what a job can show); ``apptainer`` for a profile that lists none."""
        return next(iter(self.runnable_runtimes() or _tup(self.runtimes)), "apptainer")

    def render_only_runtime(self, program: str) -> str:
        """The runtime that would provide the container program ``program`` (``apptainer``, ``singularity``,
        ``ch-run`` …; a path is read by its last part) where the profile lists it as render-only and lists no other
        runtime that provides it: the cluster does not have the program. "" when the cluster runs it, and for a
        program the profile says nothing about (a runtime it does not list at all is lint's HPC414; a program that is
        not a container runtime's is left alone). Apptainer also installs ``singularity``, so a profile
        that renders Apptainer only and lists no Singularity has neither."""
        providers = RUNTIME_PURPOSES.get(_str(program).rsplit("/", 1)[-1], ())
        listed = [r for r in providers if r in _tup(self.runtimes)]
        shown_only = _tup(self.runtimes_render_only)
        return listed[0] if listed and all(r in shown_only for r in listed) else ""

    def render_only_message(self, program: str, fix: str = "") -> str:
        """Why a job that runs the container program ``program`` cannot run on this profile's cluster
        (:meth:`render_only_runtime`: its runtime is render-only here), ending with what to do; "" when nothing stops
        it as far as the profile tells. The message names both ways the job stops after its wait in the queue, as it
        cannot tell which the script takes: the batch shell says "PROGRAM: command not found" (exit status 127; "No
        such file or directory" for a path), and a step srun starts fails with "slurmstepd: error: execve():
        PROGRAM: No such file or directory" (exit code 2), as the practice cluster shows. ``fix`` says what to do in
        the caller's terms (the form names its Container control); without it, the program of the runtime the cluster
        runs, or to run without a container where it runs none."""
        runtime = self.render_only_runtime(program)
        if not runtime:
            return ""
        if not fix:
            runs = self.runnable_runtimes()
            fix = (f"use {runs[0]} in its place, the runtime the cluster runs ({_runtime_program(self, runs[0])} runs "
                   "its images)" if runs else
                   "run the program without a container, or use the profile of a cluster that has the runtime")
        name = _str(program).rsplit("/", 1)[-1]
        what = runtime if name == _runtime_program(self, runtime) else f"{runtime}, which provides {name},"
        shell_says = "No such file or directory" if "/" in _str(program) else "command not found"
        return (f"{what} is not installed on the cluster of profile {self.name} (it lists {runtime} as render-only: "
                f"its commands are shown, not run), so this job would stop after its wait in the queue: the batch "
                f"shell says '{program}: {shell_says}', and a step srun starts fails with 'execve(): {program}: No "
                f"such file or directory'; {fix}")

    def version_tuple(self) -> tuple[int, int] | None:
        m = _VERSION.fullmatch(_str(self.scheduler_version).strip())
        return (int(m.group(1)), int(m.group(2))) if m else None

    def site_env(self) -> tuple[EnvVar, ...]:
        """The variables of ``job_env`` as :class:`EnvVar`, each name once (the first); items the profile check
        reports (no ``=``, a name that is no variable's) are left out."""
        out: dict[str, EnvVar] = {}
        for item in _tup(self.job_env):
            var = _site_var(item)
            if var is not None:
                out.setdefault(var.name, var)
        return tuple(out.values())

    def site_binds(self) -> tuple[Bind, ...]:
        """The binds of ``container_binds`` as :class:`Bind`, each destination once (the first); items the profile
        check reports are left out."""
        out: dict[str, Bind] = {}
        for item in _tup(self.container_binds):
            bind = _site_bind(item)
            if bind is not None:
                out.setdefault(_destination(bind), bind)
        return tuple(out.values())

    def with_site_env(self, model: Any) -> Any:
        """``model`` (a Slurm job, or a model holding one: a workflow, a Jupyter job) with what every job of the
        site needs: the ``job_env`` variables exported (a workflow's go with its exports, a Jupyter job's and a plain
        job's with the job's own), and the ``container_binds`` bound in its container (before the container's own
        binds, so that a bind of the job inside a site folder stays visible). What the model sets wins: a variable
        it exports or its container sets already, and a bind of a destination it binds already, are left out, so
        placing a model twice changes nothing more. An Apptainer container that starts with a clean environment
        (--cleanenv, --containall) would not see the exported variables: it is given each with --env NAME="$NAME"."""
        env, binds = self.site_env(), self.site_binds()
        if not env and not binds:
            return model
        if isinstance(model, SlurmJob):
            taken = {e.name for e in model.env if isinstance(e, EnvVar)}
            new = tuple(e for e in env if e.name not in taken)
            return model.replace(env=(*model.env, *new)) if new else model
        job = getattr(model, "job", None)
        if not isinstance(job, SlurmJob):
            return model
        container = getattr(model, "container", None)
        exports = getattr(model, "exports", None)
        taken = {str(e.name) for e in (*job.env, *(exports or ())) if isinstance(e, EnvVar)}
        for layer in (*(getattr(model, "prepare", ()) or ()), container):
            if isinstance(layer, Spec):
                taken |= {name for name, _ in env_assignments(layer)}
        inside = {str(e.name) for e in getattr(container, "env", ()) or () if isinstance(e, EnvVar)}
        new = tuple(e for e in env if e.name not in taken | inside)
        changes: dict[str, Any] = {}
        if new and isinstance(exports, tuple):
            changes["exports"] = (*exports, *new)
        elif new:
            changes["job"] = job.replace(env=(*job.env, *new))
        if container is not None:
            placed = _with_binds(container, binds)
            if new and isinstance(placed, ApptainerRun) and (placed.cleanenv is True or placed.containall is True):
                placed = placed.replace(env=(*placed.env, *(EnvVar(e.name, f"${e.name}") for e in new)))
            if placed is not container:
                changes["container"] = placed
        return model.replace(**changes) if changes else model

    def place(self, model: Any, *, as_written: bool = False) -> Any:
        """``model`` (a Slurm job, or a model holding one: a workflow, a Jupyter job) made ready for this site
        where it leaves things open, the way the shipped examples are: the job placed (:meth:`place_job`);
        Apptainer commands named as the site runs them (``apptainer_binary``: SingularityCE has no
        ``apptainer``); the module of each container runtime the layers use loaded; srun given the job's
        --cpus-per-task where the site's Slurm does not pass it on (22.05–23.02). What the model sets stays.
        ``as_written`` keeps the container programs as they are, for a model read back from a script: the
        person wrote ``apptainer`` there, and lint's HPC414 says when the site has no such program. Without it the
        site's ``job_env`` and ``container_binds`` are added too (:meth:`with_site_env`); a script read back is the
        person's, and gets neither."""
        if isinstance(model, SlurmJob):
            job = self.place_job(model)
            return job if as_written else self.with_site_env(job)
        if not isinstance(getattr(model, "job", None), SlurmJob):
            return model
        if not as_written:
            model = self.with_site_env(model)
        job = self.place_job(model.job)
        changes: dict[str, Any] = {}
        site_binary = (lambda layer: layer) if as_written else self._site_binary
        container = getattr(model, "container", None)
        if container is not None:
            changes["container"] = container = site_binary(container)
        prepare = tuple(site_binary(p) for p in getattr(model, "prepare", ()) or ())
        if prepare:
            changes["prepare"] = prepare
        programs = [getattr(layer, "binary", None) or getattr(layer, "program", "")
                    for layer in (container, *prepare) if layer is not None]
        loaded = {str(m).split("/", 1)[0] for m in job.modules}
        wanted = [m for m in dict.fromkeys(self.runtime_module(str(p)) for p in programs) if m]
        missing = tuple(m for m in wanted if m.split("/", 1)[0] not in loaded)
        changes["job"] = job.replace(modules=(*job.modules, *missing)) if missing else job
        if self.srun_needs_cpus_per_task():
            again = srun_gets_job_cpus(model, changes["job"])
            if again is not model:
                changes["srun"] = again.srun
        return model.replace(**changes)

    def _site_binary(self, layer: Any) -> Any:
        """An ``apptainer`` command renamed ``singularity`` on a site that only has SingularityCE."""
        if getattr(layer, "binary", None) == "apptainer" and self.apptainer_binary == "singularity":
            return layer.replace(binary="singularity")
        return layer

    def srun_needs_cpus_per_task(self) -> bool:
        """True when srun must be given --cpus-per-task again (Slurm 22.05–23.02, or the version is unknown)."""
        v = self.version_tuple()
        if v is None:
            return True
        return _SRUN_NO_INHERIT[0] <= v < _SRUN_NO_INHERIT[1]

    # -- invariants ------------------------------------------------------------------------------
    def _check(self) -> list[Problem]:
        out: list[Problem] = []
        if not self.name:
            out.append(Problem("name", "a profile needs a name (e.g. the site's cluster name)"))
        elif isinstance(self.name, str) and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            out.append(Problem("name", f"{self.name!r} is not a profile name (letters, digits, _ . -, as in a file name)"))
        if _str(self.login_host) and login_host_problem(self.login_host, in_profile=True):
            out.append(Problem("login_host", login_host_problem(self.login_host, in_profile=True)))
        if _str(self.jump_host) and jump_host_problem(self.jump_host):
            out.append(Problem("jump_host", jump_host_problem(self.jump_host)))
        if _str(self.scheduler_version) and not _VERSION.fullmatch(self.scheduler_version.strip()):
            out.append(Problem("scheduler_version", f"{self.scheduler_version!r} is not a Slurm version; write "
                                                    "major.minor such as 22.05 or 23.11"))
        if _str(self.mpi_default) and not MPI_PLUGIN.fullmatch(self.mpi_default):
            out.append(Problem("mpi_default", f"{self.mpi_default!r} is not an MPI plugin of srun; write what scontrol "
                                              "show config says for MpiDefault: none, pmi2, pmix, pmix_v4 …"))
        runtimes = _tup(self.runtimes)
        if not self.runtimes:
            out.append(Problem("runtimes", "list at least one container runtime (apptainer, singularity or charliecloud)"))
        if len(set(runtimes)) != len(runtimes):
            out.append(Problem("runtimes", "a runtime is listed twice; list each once"))
        extra = [r for r in _tup(self.runtimes_render_only) if r not in runtimes]
        if extra:
            out.append(Problem("runtimes_render_only", f"{', '.join(extra)} is not among the runtimes; "
                                                       "add it to runtimes or remove it here"))
        if "singularity" in runtimes and "apptainer" not in runtimes and self.apptainer_binary == "apptainer":
            out.append(Problem("apptainer_binary", "the site lists singularity only; set the Apptainer program "
                                                   "to singularity"))
        purposes = [m.purpose for m in _tup(self.modules) if isinstance(m, Module)]
        dups = sorted({p for p in purposes if purposes.count(p) > 1})
        if dups:
            out.append(Problem("modules", f"more than one module for {', '.join(dups)}; keep one per purpose"))
        for name in ("scratch", "node_local", "image_dir", "cache_dir"):
            out += _path_problems(name, self.field_spec(name).info.label, getattr(self, name))
        out += _job_env_problems(self.job_env)
        binds = [item for item in _tup(self.container_binds) if isinstance(item, str)]
        for item in binds:
            out += _bind_problems(item)
        places = [_destination(b) for b in map(_site_bind, binds) if b is not None]
        twice = sorted({d for d in places if places.count(d) > 1})
        if twice:
            out.append(Problem("container_binds", f"{', '.join(twice)} is bound more than once; keep one bind for "
                                                  "each container path"))
        if _str(self.account) and not _ACCOUNT.fullmatch(self.account):
            out.append(Problem("account", f"{self.account!r} is not an account name (letters, digits, _ . + - @)"))
        out += self._partition_checks()
        out += self._qos_checks()
        if isinstance(self.examples, ExampleSettings):
            out += _vendor_problems(_str(self.gpu_vendor), _str(self.examples.image_source))
        out += _arch_problems("cpu_arch", self.cpu_arch)
        if isinstance(self.examples, ExampleSettings):
            out += _image_arch_problems(self.site_arch(), _str(self.examples.image_source))
        return out

    def _partition_checks(self) -> list[Problem]:
        out: list[Problem] = []
        parts = [p for p in _tup(self.partitions) if isinstance(p, Partition)]
        names = [p.name for p in parts if isinstance(p.name, str)]
        # whether every partition's name can be read: a list of partitions the file left unreadable (None), or a
        # partition whose name is (each has its own problem), may hold the one a default names, so a default that
        # names none of the others is then no second problem
        listed = isinstance(self.partitions, tuple) and len(names) == len(parts)
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            out.append(Problem("partitions", f"partition {', '.join(dups)} is defined more than once; "
                                             "partition names must be unique"))
        valid = ", ".join(dict.fromkeys(names)) or "(no partitions defined)"
        if listed and self.default_partition and self.default_partition not in names:
            out.append(Problem("default_partition", f"{self.default_partition!r} is not one of the partitions; "
                                                    f"use one of: {valid}"))
        defaults = [p.name for p in parts if p.is_default is True and isinstance(p.name, str)]
        if len(defaults) > 1:
            out.append(Problem("partitions", f"{', '.join(defaults)} are all marked as the default; mark only one"))
        if defaults and self.default_partition in names and self.default_partition != defaults[0]:
            out.append(Problem("default_partition", f"default partition is {self.default_partition!r} but partition "
                                                    f"{defaults[0]!r} is marked is_default; make them agree"))
        gpu_names = [p.name for p in self.gpu_partitions()]
        if self.gpu_jobs_to_default_gpu_partition is True and not self.default_gpu_partition:
            hint = f"one of: {', '.join(gpu_names)}" if gpu_names else "a partition with GPUs"
            out.append(Problem("default_gpu_partition", "GPU jobs go to the default GPU partition "
                                                        "(gpu_jobs_to_default_gpu_partition = true), but none is "
                                                        f"named; set default_gpu_partition to {hint}"))
        if self.default_gpu_partition:
            named = next((p for p in parts if p.name == self.default_gpu_partition), None)
            if named is None:
                if listed:
                    out.append(Problem("default_gpu_partition", f"{self.default_gpu_partition!r} is not one of the "
                                                                f"partitions; use one of: {valid}"))
            elif self.default_gpu_partition not in gpu_names and named.gpu_count_known:
                # (a GPU count already reported as wrong is that partition's problem, not the default's)
                hint = f"use one with GPUs: {', '.join(gpu_names)}" if gpu_names else "no partition has GPUs"
                out.append(Problem("default_gpu_partition", f"partition {self.default_gpu_partition!r} has no GPUs; {hint}"))
        selectors = [(_str(p.qos), _str(p.constraint)) for p in parts if not p.is_slurm_partition]
        same = sorted({p.name for p in parts if not p.is_slurm_partition
                       and selectors.count((_str(p.qos), _str(p.constraint))) > 1})
        if same:
            out.append(Problem("partitions", f"entries {', '.join(same)} are selected by the same qos and constraint; "
                                             "give each a different qos or constraint"))
        if gpu_names and self.gpu_vendor == "none":
            out.append(Problem("gpu_vendor", f"partitions {', '.join(gpu_names)} have GPUs but the GPU vendor is none; "
                                             "set it to nvidia, amd or intel"))
        return out

    def _qos_checks(self) -> list[Problem]:
        """QOS names listed once each (in any case: Slurm keeps them in lower case); a partition's qos and
        allowed_qos among them when any are listed, since a job check reports every other QOS as unknown; a QOS to
        choose from where one is required."""
        out: list[Problem] = []
        names = self.qos_names()
        lowered = [n.lower() for n in names]
        dups = sorted({n for n in names if lowered.count(n.lower()) > 1})
        if dups:
            out.append(Problem("qos", f"QOS {', '.join(dups)} is listed more than once (Slurm matches QOS names in "
                                      "any case); keep one [[qos]] table each"))
        if names:
            for p in _tup(self.partitions):
                if not isinstance(p, Partition):
                    continue
                missing = [n for n in dict.fromkeys((_str(p.qos), *_tup(p.allowed_qos)))
                           if isinstance(n, str) and n and n.lower() not in lowered]
                if missing:
                    out.append(Problem("partitions", f"partition {p.name} names QOS {', '.join(missing)}, which no "
                                                     f"[[qos]] table lists; add a table for each (its name alone if "
                                                     f"it sets no limits), or correct the name (listed: "
                                                     f"{', '.join(names)})"))
        if self.qos_required is True and not self.qos_choices():
            out.append(Problem("qos_required", "qos_required = true, but no QOS is listed to choose from; add a "
                                               "[[qos]] table for each QOS jobs may name"))
        return out


def best_partitions(parts: Any, *, nodes: int = 1, by: str = "time") -> list[Partition]:
    """``parts`` best first for a job of ``nodes`` nodes: partitions for production (:attr:`Partition.for_production`:
    taking jobs, open to all, not a test or development partition) first, then those whose every node has GPUs (no
    ``gpu_nodes``: not a catch-all that spans CPU nodes), then those that allow ``nodes`` nodes; then, with ``by =
    "time"``, the longest time limit and the most nodes, with ``by = "nodes"`` the most nodes and the longest time.
    Equal partitions keep their order. Detection picks the default GPU partition with it, the examples their
    partitions when the profile names none that fits."""
    def key(p: Partition) -> tuple:
        seconds = p.max_seconds()
        time = -(seconds if seconds is not None else float("inf"))
        most = -(p.max_nodes if isinstance(p.max_nodes, int) and p.max_nodes > 0 else float("inf"))
        small = isinstance(p.max_nodes, int) and 0 < p.max_nodes < nodes
        order = (time, most) if by == "time" else (most, time)
        return (not p.for_production, p.gpu_nodes is not None, small, *order)
    return sorted((p for p in _tup(tuple(parts)) if isinstance(p, Partition)), key=key)


# ------------------------------------------------------------------------------------------------
# Checking a job against a profile
# ------------------------------------------------------------------------------------------------
def job_gpu_types(job: SlurmJob) -> tuple[str, ...]:
    """The GPU types a job names, however it asks for them: ``--gres=gpu:a100:4`` or ``--gpus-per-node=a100:4``
    (its ``gpu_type``), several types on each node (``--gpus-per-node=a100:2,v100:1``), ``--gpus=a100:8`` or
    ``--gpus-per-task=a100:1``; () for a request that names none (``--gres=gpu:4``)."""
    types = [_str(job.gpu_type)]
    for value in (job.gpus_per_node, job.gpus, job.gpus_per_task):
        if isinstance(value, str) and GPU_COUNTS.fullmatch(value):
            types += [item.rpartition(":")[0] for item in value.split(",")]
    return tuple(dict.fromkeys(t for t in types if t))


def job_mig_types(profile: ClusterProfile | None, job: SlurmJob) -> tuple[str, ...]:
    """The MIG slice types a job's GPUs are: the types it names where each is a slice (``--gres=gpu:1g.10gb:2``);
    for a job that names no type, those of the partition it goes to where that lists slices only
    (:attr:`Partition.mig_only`). () for whole GPUs, a mix, or where nothing says."""
    job = _well_typed(job)
    named = job_gpu_types(job)
    if named:
        return named if all(is_mig_type(t) for t in named) else ()
    part = profile.entry_for(job) if profile is not None else None
    return tuple(t for t in _tup(part.gpu_types) if isinstance(t, str)) if part is not None and part.mig_only else ()


#: --hint values that keep tasks to one thread per core (srun(1), --hint: "one thread per core" for compute_bound
#: and memory_bound, "don't use extra threads with in-core multi-threading" for nomultithread; each sets
#: --threads-per-core=1)
_ONE_THREAD_HINTS = ("nomultithread", "compute_bound", "memory_bound")


def one_thread_per_core(options: Any, hints: bool = True) -> bool | None:
    """Whether sbatch or srun options (``SlurmJob.extra_directives``, ``Srun.extra``: ``--hint=nomultithread``,
    ``--hint nomultithread`` or the two words as items) keep the tasks to one hardware thread per core: True for
    ``--hint=nomultithread`` (or compute_bound, memory_bound) and ``--threads-per-core=1``, False for
    ``--hint=multithread`` and ``--threads-per-core`` above 1, None when they say nothing (the last one written
    wins). On nodes with two threads per core such a job holds whole cores and uses one CPU of each, so a node
    gives it half its CPUs (sbatch(1), --threads-per-core; a later srun takes the job's value from
    SLURM_THREADS_PER_CORE). With ``hints`` False only --threads-per-core counts: the option whose value a job's
    steps are documented to inherit."""
    words: list[str] = []
    for item in options if isinstance(options, (list, tuple)) else ():
        if isinstance(item, str):
            words += item.replace("=", " ", 1).split() if item.startswith("--") else [item]
    found: bool | None = None
    for i, word in enumerate(words[:-1]):
        value = words[i + 1].strip("'\"")
        if word == "--hint" and hints:
            given = [h.strip().lower() for h in value.split(",")]
            if any(h in _ONE_THREAD_HINTS for h in given):
                found = True
            elif "multithread" in given:
                found = False
        elif word == "--threads-per-core" and value.isdigit():
            found = int(value) <= 1
    return found


def ntasks_per_core(options: Any) -> int | None:
    """The ``--ntasks-per-core`` that sbatch or srun options (as :func:`one_thread_per_core` reads them) give, the
    last one written; None where they give none, or no whole number above 0."""
    words: list[str] = []
    for item in options if isinstance(options, (list, tuple)) else ():
        if isinstance(item, str):
            words += item.replace("=", " ", 1).split() if item.startswith("--") else [item]
    found: int | None = None
    for i, word in enumerate(words[:-1]):
        value = words[i + 1].strip("'\"")
        if word == "--ntasks-per-core" and value.isdigit() and int(value) > 0:
            found = int(value)
    return found


def job_cpus_per_core(job: SlurmJob) -> int | None:
    """The most CPUs of each core ``job`` may use, where its options limit them (None where they do not): 1 for one
    thread per core (:func:`one_thread_per_core`); --ntasks-per-core × --cpus-per-task, since a core takes at most
    that many of its tasks and Slurm hands out whole cores ("Slurm may allocate more cpus than what was requested in
    order to respect this option", sbatch(1)): on nodes of two threads per core, --ntasks-per-core=1 with tasks of
    one CPU leaves a thread of each core idle. Compare with the partition's ``threads_per_core``
    (:meth:`Partition.cpus_usable`)."""
    if one_thread_per_core(job.extra_directives) is True:
        return 1
    per_core = ntasks_per_core(job.extra_directives)
    per_task = whole_count(job.cpus_per_task) if job.cpus_per_task is not None else 1
    return per_core * per_task if per_core and per_task else None  # a count in a variable: unknown


def _tasks_per_node(job: SlurmJob) -> int:
    if job.ntasks_per_node:
        return job.ntasks_per_node
    if job.ntasks:
        return -(-job.ntasks // job.node_count)
    return 1


def _cpus_asked(job: SlurmJob, gpus: int) -> tuple[int, str, str]:
    """CPUs the job asks for on each node, how (for messages) and the field that says it: GPUs × --cpus-per-gpu,
    else tasks per node × --cpus-per-task (1 each when unset)."""
    if job.cpus_per_gpu and gpus:
        return (job.cpus_per_gpu * gpus, f"{_count(gpus, 'GPU')} × {_count(job.cpus_per_gpu, 'CPU')} per GPU",
                "cpus_per_gpu")
    tasks = _tasks_per_node(job)
    field = "cpus_per_task" if job.cpus_per_task else "ntasks_per_node" if job.ntasks_per_node else "ntasks"
    return (tasks * (job.cpus_per_task or 1),
            f"{_count(tasks, 'task')} per node × {_count(job.cpus_per_task or 1, 'CPU')} per task", field)


def _cpus_held(part: Partition, job: SlurmJob, gpus: int) -> tuple[int, str]:
    """CPUs the job holds on each node, and how the partition's default made them ("" when it did not): what it asks
    for (:func:`_cpus_asked`), or for a job with GPUs that sets neither --cpus-per-task nor --cpus-per-gpu, the
    partition's DefCpuPerGPU × its GPUs where that is more (slurm.conf(5), DefCpuPerGPU)."""
    cpus = _cpus_asked(job, gpus)[0]
    default = _positive(part.def_cpus_per_gpu)
    if gpus and default and not job.cpus_per_task and not job.cpus_per_gpu and default * gpus > cpus:
        return default * gpus, f"DefCpuPerGPU {default} × {_count(gpus, 'GPU')}"
    return cpus, ""


def _cpus_per_gpu_problem(profile: ClusterProfile, part: Partition, job: SlurmJob, where: str, gpus: int, cpus: int,
                          how: str, field: str) -> list[Problem]:
    """More CPUs per GPU than the partition allows (``max_cpus_per_gpu``, a site rule such as CSC Puhti's 10 cores
    per GPU), however the job asks for them: --cpus-per-gpu, or its CPUs per node (tasks × --cpus-per-task) over its
    GPUs per node. A job that asks for no CPUs has one per task (or the partition's default), within any limit."""
    most = _positive(part.max_cpus_per_gpu)
    if not most or cpus <= most * gpus:
        return []
    roomier = _others(profile, lambda p: not _positive(p.max_cpus_per_gpu) or cpus <= p.max_cpus_per_gpu * gpus,
                      part, job, gpus=True)
    hint = f", or use a partition that allows more: {roomier}" if roomier else ""
    if field == "cpus_per_gpu":
        return [Problem(field, f"--cpus-per-gpu={job.cpus_per_gpu} is more than the {most} CPUs per GPU {where} "
                               f"allows; ask for --cpus-per-gpu={most} or fewer{hint}")]
    tasks = _tasks_per_node(job)
    per_task = most * gpus // tasks
    fix = (f"--cpus-per-task={per_task}" + (f" with {tasks} tasks per node" if tasks > 1 else "")
           if per_task else f"at most {most * gpus} tasks per node")
    asked = f"--cpus-per-task={job.cpus_per_task}" if tasks == 1 and job.cpus_per_task else f"{how} = {cpus} CPUs"
    return [Problem(field, f"{asked} with {_count(gpus, 'GPU')} per node is {cpus / gpus:g} CPUs per GPU, more than "
                           f"the {most} per GPU {where} allows; ask for at most {most * gpus} CPUs per node: "
                           f"{fix}{hint}")]


def _spread(job: SlurmJob, gpus: bool = False) -> bool:
    """Whether Slurm chooses the node count: the job names none and counts its tasks (or GPUs) for the whole
    job, so they go on as many nodes as they need (sbatch(1), -N: "enough nodes to satisfy the requested resources
    as expressed by per-job specification options, e.g. -n, -c and --gpus"; -n: one task per node by default, as
    many as fit). GPUs per node do not fix the node count: every node the tasks take gets them. With ``gpus`` only
    GPUs counted for the whole job (--gpus without --gpus-per-node) count."""
    if job.nodes or job.ntasks_per_node:
        return False
    gpus_in_total = not job.gpus_per_node and bool(gpu_total(job.gpus))
    return gpus_in_total if gpus else bool(job.ntasks) or gpus_in_total


def _job_gpus(job: SlurmJob) -> int:
    """GPUs the whole job asks for: --gpus, or --gpus-per-task × --ntasks."""
    return gpu_total(job.gpus) or (gpu_total(job.gpus_per_task) or 0) * (whole_count(job.ntasks) or 1)


def _spread_by(job: SlurmJob) -> str:
    """What spreads a job that names no --nodes over nodes, for messages: its tasks, its GPUs, or both."""
    gpus = bool(job.gpus or job.gpus_per_node or job.gpus_per_task)
    tasks = bool(job.ntasks or job.ntasks_per_node)
    return "tasks and GPUs" if gpus and tasks else "GPUs" if gpus else "tasks"


def least_nodes(job: SlurmJob, part: Partition | None = None) -> int:
    """The fewest nodes ``job`` runs on: its --nodes (the MIN of a MIN-MAX range), else the nodes its counts for the
    whole job need. Without --nodes Slurm allocates "enough nodes to satisfy the requested resources as expressed by
    per-job specification options, e.g. -n, -c and --gpus" (sbatch(1), -N), and may give more. A node holds at most
    --ntasks-per-node tasks (with --ntasks a maximum per node, sbatch(1)) and --gpus-per-node GPUs; on ``part``, whose
    node sizes the profile knows, also only the tasks of --cpus-per-task its CPUs fit, and its GPUs. --gpus-per-node
    does not fix the node count: every node the tasks take gets that many GPUs."""
    if job.nodes is not None:
        return job.node_count
    node_cpus = _positive(part.cpus_usable(bool(job.gpus_on_each_node), per_core=job_cpus_per_core(job))) \
        if part is not None else None
    node_gpus = gpu_total(job.gpus_per_node) or (part.gpus_of_type(_str(job.gpu_type)) if part is not None else 0)
    per_task, per_gpu = whole_count(job.cpus_per_task) or 1, whole_count(job.cpus_per_gpu)
    gpus_per_task = gpu_total(job.gpus_per_task)
    tasks = _nodes_for(whole_count(job.ntasks), whole_count(job.ntasks_per_node),
                       node_cpus // per_task if node_cpus else 0,
                       node_gpus // gpus_per_task if gpus_per_task else 0)
    gpus = _nodes_for(gpu_total(job.gpus), node_gpus, node_cpus // per_gpu if node_cpus and per_gpu else 0)
    return max(tasks, gpus)


def _nodes_for(units: int, *most_per_node: int) -> int:
    """Nodes that hold ``units`` at the lowest of ``most_per_node`` each; a limit of 0 (unknown, or less than one
    unit fits a node, which other checks report) is left out, and with none left one node holds them all."""
    limits = [n for n in most_per_node if n > 0]
    return -(-units // min(limits)) if units > 0 and limits else 1


def _others(profile: ClusterProfile, keep, part: Partition | None, job: SlurmJob, gpus: bool = False,
            typed: bool = True) -> str:
    """Partitions to suggest instead of ``part`` (None: the job names none the profile lists): those ``keep``
    accepts that take jobs, allow the job's --qos and, for a job that asks for GPUs (``gpus``), have GPUs of the
    types it names (a hint must not lead to the next error; with ``typed`` False, any GPUs). Restricted ones (some
    accounts or groups only) are left out, as most users are refused there, unless ``part`` is restricted too: its
    user belongs to some lab and may choose among its partitions, but the profile cannot tell which lab each serves,
    so those are shown marked "(restricted)"."""
    return _labels(_other_entries(profile, keep, part, job, gpus, typed))


def _other_entries(profile: ClusterProfile, keep, part: Partition | None, job: SlurmJob, gpus: bool = False,
                   typed: bool = True) -> list[Partition]:
    """The partitions :func:`_others` names, in the profile's order."""
    member = part is not None and part.restricted is True
    types = job_gpu_types(job) if gpus and typed else ()
    return [p for p in _tup(profile.partitions)
            if isinstance(p, Partition) and (part is None or p.name != part.name) and p.takes_jobs
            and (p.has_gpus or not gpus) and all(p.offers_gpu_type(t) for t in types)
            and (member or p.restricted is not True) and _allows_qos(p, _str(job.qos)) and keep(p)]


def _labels(parts: list[Partition]) -> str:
    """Partitions as a hint lists them: ``small-g, gpu (restricted)``."""
    return ", ".join(p.label() + (" (restricted)" if p.restricted is True else "") for p in parts)


def _types_offered(profile: ClusterProfile) -> str:
    """The GPU types the profile's partitions list, for a hint: "GPU type a100", "a GPU type of a100, h100"."""
    types = sorted({t for p in profile.gpu_partitions() for t in _tup(p.gpu_types) if isinstance(t, str)})
    if len(types) == 1:
        return f"GPU type {types[0]}"
    return f"a GPU type of {', '.join(types)}" if types else "any GPU type"


def _allows_qos(part: Partition, qos: str) -> bool:
    """Whether a job with QOS ``qos`` may run in ``part``: no QOS, or the partition allows any or names it (Slurm
    matches QOS names in any case)."""
    allowed = {q.lower() for q in _tup(part.allowed_qos) if isinstance(q, str)}
    return not qos or not allowed or qos.lower() in allowed


def _contradicts(part: Partition, job: SlurmJob) -> bool:
    """True when the job asks for another QOS or constraint than the entry sets (so it runs elsewhere)."""
    return any(mine and theirs and mine != theirs for mine, theirs in
               ((_str(part.qos), _str(job.qos)), (_str(part.constraint), _str(job.constraint))))


def _account_problem(profile: ClusterProfile, job: SlurmJob) -> list[Problem]:
    if profile.account_required is not True or _str(job.account):
        return []
    account = profile.account_for(profile.entry_for(job))
    fix = (f"add --account={account} (#SBATCH --account={account})" if account else
           "add --account=PROJECT with your project's account (sacctmgr show associations user=$USER lists them)")
    return [Problem("account", f"{profile.name} rejects a job that names no account; {fix}")]


def _qos_problems(profile: ClusterProfile, job: SlurmJob) -> list[Problem]:
    """A --qos the profile does not list (with the listed name it is closest to), and no --qos on a site that
    requires one (``qos_required``), naming the QOS to choose from."""
    asked, names = _str(job.qos), profile.qos_names()
    if asked:
        if not names or profile.qos_named(asked) is not None:
            return []
        import difflib
        by_lower = {n.lower(): n for n in names}
        near = difflib.get_close_matches(asked.lower(), list(by_lower), n=1, cutoff=0.6)
        guess = f" (did you mean {by_lower[near[0]]}?)" if near else ""
        return [Problem("qos", f"{profile.name} has no QOS {asked!r}{guess}: Slurm refuses the job ('Invalid qos "
                               f"specification'); use one of: {', '.join(names)}")]
    if profile.qos_required is not True:
        return []
    part = profile.entry_for(job)
    choices = [n for n in profile.qos_choices() if part is None or _allows_qos(part, n)]
    fits = [n for n in choices
            if (q := profile.qos_named(n)) is None or (_suggestable(q, part) and _qos_fits(q, job, part))]
    offered = [q for n in choices if (q := profile.qos_named(n)) is not None and _suggestable(q, part)]
    if not fits and offered:
        # every QOS it may use has a limit the job is over: name the one it misses by least, and how to fit it
        nearest = min(offered, key=lambda q: (len(_qos_misfits(q, job, part)), _qos_overshoot(q, job, part)))
        return [Problem("qos", f"{profile.name} rejects a job that names no QOS, and the job fits none of the QOS it "
                               f"may use here; the nearest is {_qos_summary(nearest)}: ask for "
                               f"{' and '.join(_qos_misfits(nearest, job, part))}, and add --qos={nearest.name}")]
    shown = ", ".join(_qos_summary(profile.qos_named(n)) or n for n in fits or choices)
    return [Problem("qos", f"{profile.name} rejects a job that names no QOS; add --qos with one of: {shown}")]


def _qos_summary(qos: Qos | None) -> str:
    """A QOS and its limits for a list of choices: ``short (at most 00:20:00, at most 4 nodes)``; "" for None."""
    if qos is None:
        return ""
    fewest, most, gpus = _positive(qos.min_nodes), _positive(qos.max_nodes), _positive(qos.max_gpus)
    limits = [f"at least {qos.min_time}" if qos.min_seconds() is not None else "",
              f"at most {qos.max_time}" if qos.max_seconds() is not None else "",
              f"{fewest}-{most} nodes" if fewest and most else f"at least {fewest} nodes" if fewest
              else f"at most {most} nodes" if most else "",
              f"at most {gpus} GPUs" if gpus else ""]
    shown = ", ".join(w for w in limits if w)
    return f"{qos.name} ({shown})" if shown else qos.name


def _partition_kept_as_written(job: SlurmJob) -> bool:
    """Whether a directive the model keeps as written names the partition (a line with words it could not read,
    ``--partition=<YOUR PARTITION>``): the job names a partition, which one is unknown."""
    return any(str(d).split("=", 1)[0].split(" ", 1)[0] in ("--partition", "-p") for d in _tup(job.extra_directives))


def check_job(profile: ClusterProfile, job: SlurmJob) -> list[Problem]:
    """Problems with running ``job`` on the site ``profile`` describes (empty list: it fits).

    Field names in the problems are the job's, so a form can show each next to its control. Limits the
    profile leaves empty (unknown) are not checked. Values the job itself cannot parse are left to
    ``job.problems()``.

    The limits are those of the entry the job runs on: each partition it names (a job listing several
    runs in whichever starts it first, so it must fit each); without --partition, the entry that is not a
    Slurm partition its --qos/--constraint select; else, for a GPU job on a site that routes those to its
    default GPU partition, that partition; else the default entry (not when the job's QOS or constraint
    points away from a default that is selected by QOS/constraint: its limits are then unknown).

    The job's QOS (its --qos, else the ``qos`` of that entry) adds its own limits where the profile lists it
    (``[[qos]]``): Slurm applies both, so for time, nodes and GPUs per job the lower limit is checked and the
    message names whose it is. A --qos the profile does not list, and none where the site requires one
    (``qos_required``), are problems of field ``qos``.
    """
    job = _well_typed(job)
    out: list[Problem] = _account_problem(profile, job) + _qos_problems(profile, job)
    if not profile.partition_names():
        return out
    if job.partition:
        names = [n.strip() for n in job.partition.split(",") if n.strip()]
        slurm = profile.slurm_partition_names()
        unknown = [n for n in names if n not in slurm]
        selected = [p for p in profile.partitions if isinstance(p, Partition) and not p.is_slurm_partition
                    and p.name in unknown]
        # a profile that lists only some partitions may lack the job's: job_warnings says so, its limits are unknown
        if unknown and (profile.partitions_complete is not False or selected):
            if slurm:
                usable = _others(profile, lambda p: p.is_slurm_partition, None, job) or ", ".join(slurm)
                msg = f"{profile.name} has no partition {', '.join(map(repr, unknown))}; use one of: {usable}"
            else:
                msg = (f"{profile.name} has no partition {', '.join(map(repr, unknown))}; its jobs name no partition "
                       "but select nodes by QOS and constraint")
            for p in selected:
                msg += f"; for {p.name}, remove --partition and use {p.selector()}"
            if not slurm and not selected:
                msg += f": {', '.join(p.label() for p in profile.partitions)}"
            return out + [Problem("partition", msg)]
        for name in names:
            if name in slurm:
                out += _check_in(profile, profile.partition(name), job, explicit=True)
        return _dedupe(out)
    if _partition_kept_as_written(job):
        return out  # it names a partition the model could not read (lint's HPC310 says so): its limits are unknown
    chosen = profile.selected_by(job)
    if chosen is not None:
        where = chosen.label() if not chosen.is_slurm_partition else (
            f"{chosen.where()} (where {profile.name} sends jobs with --constraint={chosen.constraint} that name no "
            "partition)")
        return _dedupe(out + _check_in(profile, chosen, job, explicit=False, where=where))
    if profile.routes_to_gpu_partition(job):
        part = profile.default(gpu=True)
        where = f"{part.where()} (the default GPU partition, where {profile.name} sends GPU jobs that name none)"
        return _dedupe(out + _check_in(profile, part, job, explicit=False, where=where))
    part = profile.default()
    if part is None:
        if job.gpus_on_each_node and not profile.default_partition:
            gpu = _others(profile, lambda p: True, None, job, gpus=True)
            if gpu:
                out.append(Problem("partition", f"the job asks for GPUs but names no partition and {profile.name} has "
                                                f"no default; set the partition to one with GPUs: {gpu}"))
        return out
    if not part.is_slurm_partition:
        if _contradicts(part, job):
            return out  # the job's QOS/constraint send it elsewhere: limits unknown
        where = f"{part.label()} (the default, as the job selects no other)"
        return _dedupe(out + _check_in(profile, part, job, explicit=False, where=where))
    return _dedupe(out + _check_in(profile, part, job, explicit=False))


def job_warnings(profile: ClusterProfile, job: SlurmJob) -> list[Problem]:
    """What :func:`check_job` lets pass but may still go wrong: the job names a partition that a profile listing
    only some (``partitions_complete = false``) does not list, so its limits are not checked (field ``partition``);
    the job sets no ``--time`` on an entry whose default time limit is shorter than its maximum (or than no limit),
    so Slurm stops it after the default (field ``time``); memory Slurm adjusts (:func:`_memory_warnings`, fields
    ``mem_per_cpu`` and ``mem``). Field names are the job's, as in check_job."""
    job = _well_typed(job)
    if not profile.partition_names():
        return []
    out: list[Problem] = []
    names = [n.strip() for n in _str(job.partition).split(",") if n.strip()]
    unlisted = [n for n in names if n not in profile.partition_names()]
    if unlisted and profile.partitions_complete is False:
        slurm = profile.slurm_partition_names()
        listed = _others(profile, lambda p: p.is_slurm_partition, None, job) or ", ".join(slurm)
        out.append(Problem("partition", f"the profile {profile.name} lists only some of the site's partitions "
                                        f"(partitions_complete = false) and not {', '.join(map(repr, unlisted))}, so "
                                        f"the job's limits there are not checked; unless it is a partition only some "
                                        f"accounts may use (your lab's) or a hidden one, check the name (listed: "
                                        f"{listed})"))
    parts = [p for p in _tup(profile.partitions) if isinstance(p, Partition) and p.is_slurm_partition
             and p.name in names] if names else [profile.entry_for(job)]
    for part in parts:
        if part is None or not part.takes_jobs or (job.gpus_on_each_node and not part.has_gpus):
            continue  # the job does not run there at all, as check_job says
        default, limit = _limit(part.default_time), part.max_seconds()
        if not job.time and default is not None and (limit is None or default < limit):
            most = f"whose maximum is {part.max_time}" if limit is not None else "which has no maximum"
            out.append(Problem("time", f"the job sets no --time, so Slurm stops it after {format_time(default)}, the "
                                       f"default time limit of {part.where()} ({most}); add --time with the time the "
                                       f"job needs"))
        out += _memory_warnings(part, job)
    return _dedupe(out)


def node_share(part: Partition, job: SlurmJob) -> tuple[int, str] | None:
    """The memory (MiB) of one node of ``part`` that ``job``'s part of the node comes with, and what that part is
    ("its 8 of a node's 32 CPUs"): the larger of its CPUs' and its GPUs' share of the node. None where the profile
    does not say the nodes' memory or CPUs, or where no node holds the job (more CPUs or GPUs than a node has: that
    error is said, not its memory)."""
    gpus = job.gpus_on_each_node
    cpus = _cpus_held(part, job, gpus)[0]
    node_cpus, node_mem = part.cpus_for(bool(gpus)), part.mem_mib(bool(gpus))
    shares = [(cpus / node_cpus, f"its {cpus} of a node's {node_cpus} CPUs")] if node_cpus else []
    if gpus and part.gpus_per_node:
        shares.append((gpus / part.gpus_per_node, f"its {gpus} of a node's {part.gpus_per_node} GPUs"))
    if not node_mem or not shares:
        return None
    fraction, what = max(shares)
    return None if fraction > 1 else (int(node_mem * fraction), what)


def _share_text(mib: int) -> str:
    """A node share as --mem writes it, in whole GiB from 1G up (46G, not 47872M)."""
    return format_mem(mib // 1024 * 1024 if mib >= 1024 else max(mib, 1))


def share_mem(part: Partition, job: SlurmJob) -> str:
    """The ``--mem`` that gives ``job`` its share of a node of ``part`` (:func:`node_share`), as HPC413 suggests it;
    "" where the profile cannot tell."""
    found = node_share(part, job)
    return _share_text(found[0]) if found else ""


def _memory_warnings(part: Partition, job: SlurmJob) -> list[Problem]:
    """Where Slurm adjusts a job's memory instead of refusing it: ``--mem-per-cpu`` above the partition's
    MaxMemPerCPU (field ``mem_per_cpu``), and no memory request where the partition's default per GPU (for a job with
    GPUs), else per CPU, else per node gives the job less than half its share of a node (field ``mem``)."""
    out: list[Problem] = []
    gpus = job.gpus_on_each_node
    cpus, by_default = _cpus_held(part, job, gpus)
    node_cpus = part.cpus_for(bool(gpus))
    per_cpu, most = _mem(job.mem_per_cpu), _mem(part.max_mem_per_cpu)
    if per_cpu and most and per_cpu > most:
        # sbatch(1), --mem-per-cpu: above MaxMemPerCPU it is taken as memory per task, and --cpus-per-task is set so
        # that the CPUs per task × the lowered memory per CPU give it; slurm.conf(5): the higher CPU count may then
        # make the job fail
        asked = job.cpus_per_task or 1
        need = -(-per_cpu * asked // most)
        if asked == 1:
            effect = (f"Slurm takes it as memory per task and raises the CPUs per task to {need} to give each task "
                      f"that much, so the job is billed for {need} times the CPUs")
        else:
            effect = (f"Slurm takes it as memory per task and changes --cpus-per-task={asked} to cover it, so the job "
                      f"gets (and is billed for) other CPUs than it asks for")
        tasks = _tasks_per_node(job)
        if node_cpus and tasks * need > node_cpus and not job.cpus_per_gpu:
            effect += (f"; {tasks} tasks × {need} CPUs is more than a node's {node_cpus} CPUs, so the job may be "
                       f"refused")
        out.append(Problem("mem_per_cpu", f"--mem-per-cpu={job.mem_per_cpu} is more than the {part.max_mem_per_cpu} "
                                          f"per CPU {part.where()} allows (MaxMemPerCPU): {effect}; ask for "
                                          f"--mem-per-cpu={part.max_mem_per_cpu} or less, with --cpus-per-task={need} "
                                          f"if each task needs {format_mem(per_cpu * asked)}"))
    if _str(job.mem) or _str(job.mem_per_cpu) or _str(job.mem_per_gpu) or job.exclusive is True:
        return out
    node_mem = part.mem_mib(bool(gpus))
    per_gpu, default_per_cpu = _mem(part.def_mem_per_gpu), _mem(part.def_mem_per_cpu)
    default_per_node = _mem(part.def_mem_per_node)
    if gpus and per_gpu:  # a GPU job's default is per GPU where the partition sets one
        default, how = per_gpu * gpus, f"DefMemPerGPU {part.def_mem_per_gpu} × {_count(gpus, 'GPU')}"
    elif default_per_cpu:
        default, how = default_per_cpu * cpus, f"DefMemPerCPU {part.def_mem_per_cpu} × {_count(cpus, 'CPU')}"
        how += f" ({by_default})" if by_default else ""
    elif default_per_node:  # the same for any job, whatever its CPUs
        default, how = default_per_node, "DefMemPerNode"
    else:
        return out
    found = node_share(part, job)
    if found is None:
        return out
    share, what = found
    if default * 2 < share:
        share_text = _share_text(share)
        out.append(Problem("mem", f"the job asks for no memory, so Slurm gives it {how} = {format_mem(default)} per "
                                  f"node on {part.where()}: less than half of the {share_text} that {what} come "
                                  f"with (of {format_mem(node_mem)}); add --mem with what the job needs, e.g. "
                                  f"--mem={share_text}"))
    return out


def whole_node_warnings(profile: ClusterProfile, job: SlurmJob) -> list[Problem]:
    """A job that asks for part of a node on a partition that gives every job whole nodes and bills them
    (``whole_nodes``: Slurm's OverSubscribe=EXCLUSIVE, LUMI's standard-g): Slurm runs it, but the rest of each node
    sits idle on the job's bill. Part of a node is fewer GPUs per node than the partition's nodes have; on a partition
    without GPUs and for a job without --exclusive, fewer than half a node's CPUs (half: on nodes with two threads per
    core that is every core), or with no CPU request, --mem under half a node's memory. The field is the option that
    asks for the part (``partition`` for no GPUs on a GPU partition); the message names the partitions of the same
    kind that share nodes and allow the job's node count."""
    job = _well_typed(job)
    names = [n.strip() for n in _str(job.partition).split(",") if n.strip()]
    parts = [p for p in _tup(profile.partitions) if isinstance(p, Partition) and p.is_slurm_partition
             and p.name in names] if names else [profile.entry_for(job)]
    out: list[Problem] = []
    for part in parts:
        gpus = job.gpus_on_each_node
        if part is None or part.whole_nodes is not True or not part.takes_jobs or (gpus and not part.has_gpus):
            continue  # check_job says a job does not run there at all
        asked = _part_of_node(part, job, gpus)
        if asked is None:
            continue
        field, what, whole = asked
        shared = _labels(sharing_partitions(profile, part, job))
        other = f", or use a partition that shares nodes: {shared}" if shared else ""
        out.append(Problem(field, f"{part.where()} gives every job whole nodes and bills them "
                                  f"(OverSubscribe=EXCLUSIVE): the job asks for {what}, and pays for the whole node; "
                                  f"{whole}{other}"))
    return _dedupe(out)


def sharing_partitions(profile: ClusterProfile, part: Partition, job: SlurmJob) -> list[Partition]:
    """The partitions that share nodes where ``job``, which asks for part of a node of the whole-node partition
    ``part``, can go instead, in the profile's order (HPC415 names them): of the same kind as ``part`` (GPUs or
    none), not whole-node, for production (taking jobs, open to all, not for tests or development), allowing the
    job's node count, its --qos and the GPU types it names."""
    job = _well_typed(job)
    nodes = job.node_count
    return _other_entries(profile, lambda p: p.whole_nodes is not True and p.for_production
                          and p.has_gpus == part.has_gpus and (_positive(p.max_nodes) or nodes) >= nodes,
                          part, job, gpus=bool(job.gpus_on_each_node))


def partition_sharing_nodes(profile: ClusterProfile, part: Partition | None, job: SlurmJob) -> Partition | None:
    """Where ``job`` should run instead of ``part`` when it asks for part of a node there and ``part`` gives every
    job whole nodes and bills them (what HPC415 reports): the best (:func:`best_partitions`, longest time first) of
    :func:`sharing_partitions`. None when ``part`` shares nodes, takes no jobs, the job uses whole nodes there, or no
    other partition fits. The examples pick their one-GPU jobs' partition with it."""
    job = _well_typed(job)
    gpus = job.gpus_on_each_node
    if part is None or part.whole_nodes is not True or not part.takes_jobs or (gpus and not part.has_gpus):
        return None
    if _part_of_node(part, job, gpus) is None:
        return None
    ranked = best_partitions(sharing_partitions(profile, part, job), nodes=job.node_count)
    return ranked[0] if ranked else None


def whole_node_default_note(profile: ClusterProfile) -> str:
    """A note for ``hpcwidgets profile check`` when the default GPU partition gives every job whole nodes and bills
    them while another GPU partition shares nodes: a job that names no partition and asks for one GPU pays for a
    whole node (HPC415). Not an error (a site may mean it: most of its GPU jobs use whole nodes). Also when no GPU
    partition that takes jobs shares nodes (CSCS Alps): every one-GPU job pays for a whole node there, the examples'
    too, which lint warns about (HPC415) and their descriptions say. "" otherwise."""
    part = profile.default(gpu=True)
    if part is None or not part.has_gpus or part.whole_nodes is not True:
        return ""
    job = SlurmJob(**profile.job_fields(part), gpus_per_node=1)
    shared = partition_sharing_nodes(profile, part, job)
    gpu_parts = [p for p in profile.gpu_partitions() if p.takes_jobs]
    if shared is None and gpu_parts and all(p.whole_nodes is True for p in gpu_parts):
        which = (f"partition {part.name}, the site's only GPU partition, gives" if len(gpu_parts) == 1 else
                 f"every GPU partition ({_labels(gpu_parts)}) gives")
        return (f"{which} every job whole nodes and bills them (whole_nodes = true): a job that asks for 1 of a "
                f"node's {part.gpus_per_node} GPUs pays for the whole node, and lint warns about it (HPC415). The "
                "examples' one-GPU jobs (single-gpu, array-sweep, charliecloud) do so too, and their descriptions say "
                "it; multi-node-torchrun uses every GPU of its nodes. If a partition shares nodes, set whole_nodes = "
                "false on it")
    if shared is None:
        return ""
    named = "default_gpu_partition" if _str(profile.default_gpu_partition) else "the default GPU partition"
    return (f"{named} {part.name} gives every job whole nodes and bills them (whole_nodes = true), while "
            f"{shared.where()} shares nodes: a job that names no partition and asks for 1 of a node's "
            f"{part.gpus_per_node} GPUs pays for the whole node (HPC415 reports it); the examples' one-GPU jobs use "
            f"{shared.name}. If most GPU jobs on the site use part of a node, set default_gpu_partition = "
            f"\"{shared.name}\"")


def _part_of_node(part: Partition, job: SlurmJob, gpus: int) -> tuple[str, str, str] | None:
    """``(field, what the job asks for, how to use the whole node)`` when ``job`` asks for part of a node of
    ``part`` (:func:`whole_node_warnings`), else None."""
    if part.has_gpus:
        have = part.gpus_of_type(job.gpu_type) if _str(job.gpu_type) else part.gpus_per_node
        if gpus >= have:
            return None
        field = "gpus_per_node" if job.gpus_per_node else "gpus" if job.gpus else \
            "gpus_per_task" if job.gpus_per_task else "partition"
        what = f"{gpus} of the {have} GPUs of each node" if gpus else f"none of the {have} GPUs of each node"
        return field, what, f"ask for all {have} GPUs of each node (--gpus-per-node={have}) and use them"
    if job.exclusive is True:
        return None  # it says it takes the whole node: its program may use every CPU it finds there
    node_cpus = _positive(part.cpus_per_node)
    if job.cpus_per_task or job.ntasks_per_node or job.ntasks:
        cpus, _, field = _cpus_asked(job, 0)
        if node_cpus and cpus * 2 < node_cpus:
            return (field, f"{cpus} of the {node_cpus} CPUs of each node",
                    "ask for CPUs for the whole node (tasks per node × CPUs per task) and use them")
        return None
    asked, node_mem = _mem(job.mem), part.mem_mib()
    if asked and node_mem and asked * 2 < node_mem:
        return ("mem", f"--mem={job.mem} of the {part.mem_per_node} of each node",
                "give the job work for a whole node")
    return None


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


#: the GPU counts that may be typed text (``--gpus=a100:8``, ``--gpus-per-node=a100:2,v100:1``): kept by
#: :func:`_well_typed`, as :func:`~hpcwidgets.spec.slurm.gpu_total` counts them and :func:`job_gpu_types` names them
_TYPED_GPU_FIELDS = ("gpus_per_node", "gpus", "gpus_per_task")


def _well_typed(job: SlurmJob) -> SlurmJob:
    """The job with values of the wrong type blanked (``job.problems()`` reports those), so checks never raise. GPU
    counts written with their types (``a100:8``) are kept."""
    fixes: dict[str, Any] = {}
    for f in job.field_specs():
        value = getattr(job, f.name)
        if f.is_tuple or value is None:
            continue
        if f.name in _TYPED_GPU_FIELDS and isinstance(value, str) and GPU_COUNTS.fullmatch(value):
            continue
        if f.base_type is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            fixes[f.name] = None
        elif f.base_type is str and not isinstance(value, str):
            fixes[f.name] = ""
    return dataclasses.replace(job, **fixes) if fixes else job


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: list[Problem] = []
    for p in problems:
        if p not in seen:
            seen.append(p)
    return seen


def _check_in(profile: ClusterProfile, part: Partition, job: SlurmJob, explicit: bool, where: str = "") -> list[Problem]:
    out: list[Problem] = []
    where = where or f"partition {part.name}" + ("" if explicit else " (the default, as the job names no partition)")
    gpus = job.gpus_on_each_node
    if not part.takes_jobs:
        usable = _others(profile, lambda p: True, part, job, gpus=bool(gpus))
        fix = f"; use a partition that takes jobs: {usable}" if usable else "; ask the site when it will be UP again"
        out.append(Problem("partition", f"the job will not run: {where} takes no jobs (State={part.state}: "
                                        f"{_STATE_EFFECT[part.state]}){fix}"))
    # QOS: the job's, else the one the entry fills in (with neither, the account's default QOS, which is unknown here)
    qos = _str(job.qos) or _str(part.qos)
    unlisted = bool(_str(job.qos) and profile.qos_names() and profile.qos_named(job.qos) is None)
    if not _allows_qos(part, qos) and not unlisted:  # a QOS the profile does not list: _qos_problems says so
        allowed = ", ".join(part.allowed_qos)
        elsewhere = _others(profile, lambda p: True, part, job.replace(qos=qos), gpus=bool(gpus))
        hint = f", or use a partition that allows {qos}: {elsewhere}" if elsewhere else ""
        out.append(Problem("qos", f"{where} does not allow QOS {qos} (it allows {allowed}): Slurm refuses the job "
                                  f"('Invalid qos specification') or holds it pending ('Job's QOS not permitted to use "
                                  f"this partition'); ask for one of them with --qos{hint}"))
    # the limits of that QOS, where the profile lists it (a site that requires --qos fills in none)
    limits = profile.qos_named(qos) if _str(job.qos) or profile.qos_required is not True else None
    qos_where = "" if limits is None else f"QOS {limits.name}" + (
        "" if _str(job.qos) else f" (the QOS of {part.where()}, as the job names no --qos)")
    # time: the lower of the partition's and the QOS's limit (Slurm applies both)
    asked = _seconds(job.time)
    limit, limit_text, limit_where = part.max_seconds(), part.max_time, where
    if limits is not None and limits.max_seconds() is not None and (limit is None or limits.max_seconds() < limit):
        limit, limit_text, limit_where = limits.max_seconds(), limits.max_time, qos_where
    if asked is not None and limit is not None and (asked == UNLIMITED or asked > limit):
        if limit_where == where:
            longer = _others(profile, lambda p: p.max_seconds() is None or
                             (asked != UNLIMITED and p.max_seconds() >= asked), part, job, gpus=bool(gpus))
            hint = f", or use a partition that allows it: {longer}" if longer else ""
        else:
            hint = _qos_hint(profile, part, job, limits)
        shown = f"--time={job.time} (no limit)" if asked == UNLIMITED else job.time
        out.append(Problem("time", f"{shown} is over the {limit_text} limit of {limit_where}; ask for at most "
                                   f"{limit_text}{hint}"))  # the limit as the site writes it
    shortest = limits.min_seconds() if limits is not None else None
    if shortest is not None and asked is not None and asked != UNLIMITED and asked < shortest:
        out.append(Problem("time", f"{qos_where} is for jobs of at least {limits.min_time}, and the job asks for "
                                   f"--time={job.time}; ask for --time={limits.min_time} or more"
                                   f"{_qos_hint(profile, part, job, limits)}"))
    # nodes: the lower of the partition's and the QOS's limit, and the fewest the QOS takes
    most, most_where = part.max_nodes, where
    qos_most = _positive(limits.max_nodes) if limits is not None else None
    if qos_most and not (most and most <= qos_most):
        most, most_where = qos_most, qos_where
    needed = least_nodes(job, part)
    if job.nodes and most and job.nodes > most:
        hint = _qos_hint(profile, part, job, limits) if most_where != where else ""
        out.append(Problem("nodes", f"{job.nodes} nodes is more than {most_where} allows ({most}); "
                                    f"ask for at most {most}{hint}"))
    elif job.nodes is None and most and needed > most and (most_where != where or least_nodes(job) > most):
        # spread over too many nodes by the partition's node sizes alone: the CPU and GPU checks below say why
        hint = _qos_hint(profile, part, job, limits) if most_where != where else ""
        what = _spread_by(job)
        out.append(Problem("nodes", f"the job names no --nodes, and its {what} need at least {needed} nodes, "
                                    f"more than {most_where} allows ({most}); ask for fewer {what}, or more of "
                                    f"them on each node{hint}"))
    elif gpus and job.nodes and isinstance(part.gpu_nodes, int) and part.has_gpus and job.nodes > part.gpu_nodes:
        out.append(Problem("nodes", f"{job.nodes} nodes with GPUs is more than {where} has: only {part.gpu_nodes} of "
                                    f"its nodes have GPUs; ask for at most {part.gpu_nodes}"))
    fewest = _positive(limits.min_nodes) if limits is not None else None
    if fewest and needed < fewest:
        asks = f"may get only {_count(needed, 'node')}" if _nodes_picked(job, part) else \
            f"asks for {_count(needed, 'node')}"
        out.append(Problem("nodes", f"{qos_where} is for jobs of at least {fewest} nodes, and the job {asks}; ask for "
                                    f"--nodes={fewest} or more{_qos_hint(profile, part, job, limits)}"))
    # GPUs
    gpu_field = "gpus_per_node" if job.gpus_per_node else ("gpus" if job.gpus else "gpus_per_task")
    typed = job.gpu_type in _tup(part.gpu_types) and bool(_tup(part.gpus_per_type))
    if gpus and not part.has_gpus:
        with_gpus = _others(profile, lambda p: True, part, job, gpus=True)
        other_types = "" if with_gpus else _others(profile, lambda p: True, part, job, gpus=True, typed=False)
        fix = (f"use a GPU partition: {with_gpus}" if with_gpus else
               f"use a GPU partition: {other_types}, with {_types_offered(profile)} or no GPU type (no partition it "
               f"may use has {' or '.join(job_gpu_types(job))} GPUs)" if other_types else
               "remove the GPU request, or ask the site for access to a GPU partition" if profile.gpu_partitions() else
               f"{profile.name} has no GPU partition; remove the GPU request")
        out.append(Problem("partition" if explicit else gpu_field,
                           f"the job asks for GPUs but {where} has none; {fix}"))
    elif gpus and gpus > part.gpus_per_node and _spread(job) and not job.gpus_per_node \
            and (gpu_total(job.gpus_per_task) or 0) <= part.gpus_per_node:
        # GPUs in total (or per task) with no node count: Slurm takes as many nodes as they need
        needed = _nodes_for(_job_gpus(job), part.gpus_per_node)
        if part.max_nodes and needed > part.max_nodes:
            out.append(Problem(gpu_field, f"{_job_gpus(job)} GPUs need {needed} nodes of {where} "
                                          f"({part.gpus_per_node} GPUs each), more than it allows ({part.max_nodes}); "
                                          f"ask for at most {part.max_nodes * part.gpus_per_node} GPUs"))
    elif typed and gpus > part.gpus_of_type(job.gpu_type):
        most = part.gpus_of_type(job.gpu_type)
        bigger = _others(profile, lambda p: p.offers_gpu_type(job.gpu_type) and p.gpus_of_type(job.gpu_type) >= gpus,
                         part, job, gpus=True)
        hint = f", or use a partition with more: {bigger}" if bigger else ""
        out.append(Problem(gpu_field, f"{gpus} {job.gpu_type} GPUs per node is more than any node of {where} has "
                                      f"({most}); ask for at most {most} per node{hint}"))
    elif gpus and gpus > part.gpus_per_node and not typed:
        bigger = _others(profile, lambda p: p.gpus_per_node >= gpus, part, job, gpus=True)
        hint = f", or use a partition with more GPUs per node: {bigger}" if bigger else ""
        more_nodes = " (spread them over more nodes)" if job.gpus else ""
        out.append(Problem(gpu_field, f"{gpus} GPUs per node is more than the nodes of {where} have "
                                      f"({part.gpus_per_node}); ask for at most {part.gpus_per_node} per node"
                                      f"{more_nodes}{hint}"))
    for gpu_type in job_gpu_types(job) if part.has_gpus else ():
        if part.offers_gpu_type(gpu_type):
            continue
        msg = f"GPU type {gpu_type!r} is not available in {where}; use one of: {', '.join(part.gpu_types)}"
        with_type = _others(profile, lambda p: gpu_type in p.gpu_types, part, job, gpus=True)
        if with_type:
            msg += f" (partitions with {gpu_type}: {with_type})"
        out.append(Problem("gpu_type", msg))
    # CPUs per node
    cpus, how, cpu_field = _cpus_asked(job, gpus)
    unit = job.cpus_per_gpu if cpu_field == "cpus_per_gpu" else (job.cpus_per_task or 1)
    # a job with GPUs gets only the partition's GPU nodes, which may be smaller than its largest (CPU) node
    node_cpus = part.cpus_for(bool(gpus))
    cpu_nodes = "GPU nodes" if node_cpus != part.cpus_per_node else "nodes"
    most = job_cpus_per_core(job)
    usable, per_core = part.cpus_usable(bool(gpus), per_core=most), ""
    if usable != node_cpus:  # one thread per core, or tasks per core: a node gives the job some CPUs of each core
        if one_thread_per_core(job.extra_directives):
            why = "the job keeps to one thread per core, --hint=nomultithread or --threads-per-core=1: one CPU"
        else:
            tasks = ntasks_per_core(job.extra_directives) or 0
            why = (f"--ntasks-per-core={tasks} with {_count(whole_count(job.cpus_per_task) or 1, 'CPU')} per task: "
                   f"a core takes at most {_count(tasks, 'task')}, so the job uses {_count(most or 0, 'CPU')}")
        per_core = (f" usable ({why} of each core, {usable} of {node_cpus} at {part.threads_per_core} threads per "
                    f"core)")
        node_cpus = usable
    found = len(out)
    if node_cpus and cpus > node_cpus and _spread(job, gpus=cpu_field == "cpus_per_gpu") and unit <= node_cpus:
        # tasks (or GPUs) counted for the whole job, no node count: Slurm spreads them over the nodes they need;
        # only one task's (or one GPU's) CPUs must fit on a node
        kind = "GPU" if cpu_field == "cpus_per_gpu" else "task"
        units = cpus // unit * job.node_count
        needed = _nodes_for(units, node_cpus // unit)
        if part.max_nodes and needed > part.max_nodes:  # the units of the whole job, not of a node
            out.append(Problem(cpu_field, f"{_count(units, kind)} × {_count(unit, 'CPU')} per {kind} need {needed} "
                                          f"{cpu_nodes} of {where} ({node_cpus} CPUs each{per_core}), more than it "
                                          f"allows "
                                          f"({part.max_nodes}); ask for fewer {kind}s or CPUs"))
        # Slurm fills each node with as many as fit: the checks per GPU and memory per CPU below are of such a node
        cpus = node_cpus // unit * unit
        how = f"{_count(cpus // unit, kind)}{'' if kind == 'GPU' else ' per node'} × {_count(unit, 'CPU')} per {kind}"
    elif node_cpus and cpus > node_cpus:
        out.append(Problem(cpu_field, f"{how} = {cpus} CPUs per node, but the {cpu_nodes} of {where} have "
                                      f"{node_cpus}{per_core}; lower the tasks per node or CPUs per task "
                                      f"(or use more nodes)"))
    if gpus and len(out) == found:  # CPUs that fit no node: one problem is enough
        out += _cpus_per_gpu_problem(profile, part, job, where, gpus, cpus, how, cpu_field)
    # memory per node
    mem_text = part.mem_for(bool(gpus))
    node_mem = _mem(mem_text)
    mem_nodes = "GPU nodes" if mem_text != part.mem_per_node else "nodes"
    if node_mem is not None:
        asked_mem = _mem(job.mem)
        if asked_mem:  # 0 means "all of the node's memory"
            if asked_mem > node_mem:
                out.append(Problem("mem", f"{_with_unit(job.mem)} per node is more than the {mem_nodes} of {where} "
                                          f"have ({mem_text}); ask for at most {format_mem(node_mem)}"))
        per_cpu = _mem(job.mem_per_cpu)
        if per_cpu and per_cpu * cpus > node_mem:
            out.append(Problem("mem_per_cpu", f"{_with_unit(job.mem_per_cpu)} per CPU × {cpus} CPUs per node = "
                                              f"{format_mem(per_cpu * cpus)}, more than the {mem_nodes} of {where} "
                                              f"have ({mem_text}); ask for at most "
                                              f"{format_mem(node_mem // cpus)} per CPU"))
        per_gpu = _mem(job.mem_per_gpu)
        if per_gpu and gpus and per_gpu * gpus > node_mem:
            out.append(Problem("mem_per_gpu", f"{_with_unit(job.mem_per_gpu)} per GPU × {gpus} GPUs per node = "
                                              f"{format_mem(per_gpu * gpus)}, more than the {mem_nodes} of {where} "
                                              f"have ({mem_text}); ask for at most "
                                              f"{format_mem(node_mem // gpus)} per GPU"))
    out += _per_job(profile, part, job, where, cpus=cpus, cpu_field=cpu_field, gpus=gpus, gpu_field=gpu_field,
                    limits=limits, qos_where=qos_where)
    return out


def _with_unit(mem: Any) -> str:
    """A memory request as a message shows it: a bare number with Slurm's unit for it, megabytes (460000 MB)."""
    text = str(mem)
    return f"{text} MB" if text.isdigit() else text


def _seconds(time: str) -> int | None:
    """A job's --time in seconds (UNLIMITED for no limit); None when it sets none or Slurm could not read it."""
    if not time:
        return None
    try:
        return parse_time(time)
    except ValueError:
        return None


def _positive(count: Any) -> int | None:
    """A limit that is a count above 0, else None (no limit)."""
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None


def _job_gpus_total(job: SlurmJob, part: Partition | None) -> int:
    """GPUs the whole job uses at least: --gpus, or --gpus-per-task × --ntasks, else its GPUs on each node × the
    fewest nodes it runs on (:func:`least_nodes`; where Slurm picks the node count it may give more)."""
    return gpu_total(job.gpus) or gpu_total(job.gpus_per_task) * whole_count(job.ntasks) \
        or job.gpus_on_each_node * least_nodes(job, part)


def _gpus_by_nodes(job: SlurmJob, part: Partition | None) -> bool:
    """Whether the job's GPUs in total are only the least it gets: GPUs on each node of nodes Slurm picks, more than
    one (:func:`least_nodes`), not GPUs counted for the whole job."""
    return not (gpu_total(job.gpus) or gpu_total(job.gpus_per_task) * whole_count(job.ntasks)) \
        and _nodes_picked(job, part)


def _nodes_picked(job: SlurmJob, part: Partition | None) -> bool:
    """Whether the job names no --nodes and its counts need more than one node: their number is only a least."""
    return job.nodes is None and least_nodes(job, part) > 1


def _qos_fits(qos: Qos, job: SlurmJob, part: Partition | None) -> bool:
    """Whether ``job`` is within the time, node and GPU limits of ``qos``, on ``part``."""
    return not _qos_misfits(qos, job, part)


def _qos_misfits(qos: Qos, job: SlurmJob, part: Partition | None) -> list[str]:
    """The limits of ``qos`` (time, nodes, GPUs) that ``job`` on ``part`` is outside, each as what to ask for
    instead ("--time=24:00:00 or less (not 30:00:00)"); empty when it fits. A job that sets no --time is not held to a
    minimum time: its time limit is the partition's default, which the profile may not know. Nodes and GPUs are the
    least the job gets (:func:`least_nodes`)."""
    out = []
    asked, most, least = _seconds(job.time), qos.max_seconds(), qos.min_seconds()
    if asked is not None and most is not None and (asked == UNLIMITED or asked > most):
        out.append(f"--time={qos.max_time} or less (not {job.time})")
    if asked is not None and least is not None and asked != UNLIMITED and asked < least:
        out.append(f"--time={qos.min_time} or more (not {job.time})")
    nodes, fewest, most_nodes = least_nodes(job, part), _positive(qos.min_nodes), _positive(qos.max_nodes)
    picked = _nodes_picked(job, part)
    if most_nodes and nodes > most_nodes:
        out.append(f"fewer {_spread_by(job)} (they need at least {nodes} nodes, it allows {most_nodes})" if picked else
                   f"--nodes={most_nodes} or fewer (not {nodes})")
    if fewest and nodes < fewest:
        out.append(f"--nodes={fewest} or more (not {'at least ' if picked else ''}{nodes})")
    gpus, most_gpus = _job_gpus_total(job, part), _positive(qos.max_gpus)
    if most_gpus and gpus > most_gpus:
        out.append(f"at most {most_gpus} GPUs in total (not {'at least ' if _gpus_by_nodes(job, part) else ''}{gpus})")
    return out


def _qos_overshoot(qos: Qos, job: SlurmJob, part: Partition | None) -> float:
    """How far ``job`` is outside the limits of ``qos``, summed as fractions of each limit (60 h against 48 h is 0.25,
    against 24 h 1.5): of two QOS it misses by as many limits, the one it misses by less is the nearer."""
    def over(asked: float | None, limit: float | None) -> float:
        return max(0.0, asked / limit - 1) if asked and limit and asked > 0 else 0.0
    asked = _seconds(job.time)
    time = float("inf") if asked == UNLIMITED and qos.max_seconds() is not None else over(asked, qos.max_seconds())
    return (time + over(least_nodes(job, part), _positive(qos.max_nodes))
            + over(_job_gpus_total(job, part), _positive(qos.max_gpus)))


def _suggestable(qos: Qos, part: Partition | None) -> bool:
    """Whether hints may offer ``qos``: one that sets limits of its own, or the QOS ``part`` fills in (the site's
    ordinary QOS there, such as a ``normal`` without limits). A QOS listed by name only is usually special-purpose
    (ARCHER2's reservation), not one a job can simply switch to."""
    own = _str(part.qos).lower() if part is not None else ""
    return qos.sets_limits() or bool(own and _str(qos.name).lower() == own)


def _qos_hint(profile: ClusterProfile, part: Partition, job: SlurmJob, current: Qos | None) -> str:
    """", or use a QOS whose limits it fits: --qos=long", naming the other QOS the profile lists that ``part`` allows,
    that hints may offer (:func:`_suggestable`) and whose limits the job is within; "" when there is none."""
    fits = [q.name for q in _tup(profile.qos) if isinstance(q, Qos) and q is not current and _str(q.name)
            and _allows_qos(part, q.name) and _suggestable(q, part) and _qos_fits(q, job, part)]
    return f", or use a QOS whose limits it fits: {', '.join(f'--qos={n}' for n in fits)}" if fits else ""


def _per_job(profile: ClusterProfile, part: Partition, job: SlurmJob, where: str, *, cpus: int, cpu_field: str,
             gpus: int, gpu_field: str, limits: Qos | None = None, qos_where: str = "") -> list[Problem]:
    """The limits on a whole job (all nodes together): the partition's CPUs and memory, and the lower of its and the
    job's QOS's (``limits``, named ``qos_where``) GPUs. The job's nodes are the fewest it runs on (:func:`least_nodes`):
    where Slurm picks more, its totals only grow."""
    out: list[Problem] = []
    nodes = least_nodes(job, part)
    count = f"at least {nodes}" if _nodes_picked(job, part) else f"{nodes}"
    many = f" on {count} nodes" if nodes > 1 else ""
    # CPUs in total: --ntasks takes precedence over --ntasks-per-node (sbatch(1))
    if job.ntasks and not (job.cpus_per_gpu and gpus):
        total_cpus = job.ntasks * (job.cpus_per_task or 1)
    else:
        total_cpus = cpus * nodes
    limit = part.max_cpus_per_job if isinstance(part.max_cpus_per_job, int) and part.max_cpus_per_job > 0 else None
    if limit and total_cpus > limit:
        others = _others(profile, lambda p: (p.max_cpus_per_job is None or p.max_cpus_per_job >= total_cpus)
                         and p.has_gpus == bool(gpus), part, job, gpus=bool(gpus))
        hint = f", or use {others}" if others else ""
        out.append(Problem(cpu_field, f"the job uses {total_cpus} CPUs{many}, but {where} allows at most {limit} per "
                                      f"job; ask for at most {limit} CPUs in total{hint}"))
    # GPUs in total
    total_gpus = _job_gpus_total(job, part)
    limit, limit_where, hint = _positive(part.max_gpus_per_job), where, ""
    qos_most = _positive(limits.max_gpus) if limits is not None else None
    if qos_most and not (limit and limit <= qos_most):
        limit, limit_where, hint = qos_most, qos_where, _qos_hint(profile, part, job, limits)
    if limit and total_gpus > limit:
        least = _gpus_by_nodes(job, part)
        fewer = f" (its tasks need {count} nodes, each with {gpus} GPUs: ask for fewer tasks or fewer GPUs per node)" \
            if least else ""
        out.append(Problem(gpu_field, f"the job uses {'at least ' if least else ''}{total_gpus} GPUs{many}, but "
                                      f"{limit_where} allows at most {limit} per job; ask for at most {limit} GPUs in "
                                      f"total{fewer}{hint}"))
    # memory in total
    job_mem = part.mem_per_job_mib()
    if job_mem is not None and job_mem > 0:
        asked = _mem(job.mem)
        mem_text = part.mem_for(bool(gpus))  # a GPU job's nodes are the GPU nodes, maybe smaller than the largest
        node_mem = _mem(mem_text)
        node = "GPU node" if mem_text != part.mem_per_node else "node"
        candidates = []
        if asked:
            shown = _with_unit(job.mem)
            candidates.append(("mem", asked * nodes, f"{shown} per node × {count} nodes" if nodes > 1 else shown))
        elif asked == 0 and node_mem:  # --mem=0: all of each node's memory
            candidates.append(("mem", node_mem * nodes, f"--mem=0 (all of the {node}'s {mem_text})"
                               + (f" × {count} nodes" if nodes > 1 else "")))
        per_cpu = _mem(job.mem_per_cpu)
        if per_cpu:
            candidates.append(("mem_per_cpu", per_cpu * total_cpus,
                               f"{_with_unit(job.mem_per_cpu)} per CPU × {total_cpus} CPUs"))
        per_gpu = _mem(job.mem_per_gpu)
        if per_gpu and total_gpus:
            candidates.append(("mem_per_gpu", per_gpu * total_gpus,
                               f"{_with_unit(job.mem_per_gpu)} per GPU × {total_gpus} GPUs"))
        for field, total, how in candidates:
            if total <= job_mem:
                continue
            if field == "mem":
                most = format_mem(job_mem // nodes) + (" per node" if nodes > 1 else "")
            elif field == "mem_per_cpu":
                most = format_mem(job_mem // max(total_cpus, 1)) + " per CPU"
            else:
                most = format_mem(job_mem // max(total_gpus, 1)) + " per GPU"
            out.append(Problem(field, f"{how} = {format_mem(total)} for the job, but {where} allows at most "
                                      f"{part.max_mem_per_job} per job; ask for at most {most}"))
    return out
