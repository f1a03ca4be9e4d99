"""Ready-made example jobs, filled in from a cluster profile.

``examples("midway3")`` returns the workshop's jobs for that site: the partition, GPUs per node,
CPUs and memory that fit its nodes, the example image, scratch paths, modules and the GPU flag
its vendor needs all come from the profile, so one set of lessons serves every site.

========================  ===================================================================
``single-gpu``            one GPU, ``python train.py`` in the container
``multi-node-torchrun``   two nodes, one torchrun per node (srun), c10d rendezvous at the head node
``array-sweep``           a job array; each task trains with its own learning rate
``charliecloud``          the single-node job with ``ch-run`` under ``srun``
``jupyter``               JupyterLab on a compute node, reached through an SSH tunnel
========================  ===================================================================

**Where the training scripts come from.** The examples train with the payload scripts shipped in
this package (:mod:`hpcwidgets.payload`: ``train.py``, ``ddp_train.py``). The rendered script
exports ``HPCW_PAYLOAD`` set to the installed payload directory *at render time* and binds it
into the container read-only (at ``/payload`` for Apptainer, at ``/mnt/0`` for Charliecloud, whose
read-only images already have the mount points ``/mnt/0`` … ``/mnt/9``). Render the examples on
the machine that runs them (the cluster where hpcwidgets is installed, or the practice cluster
here), so the path is valid there. The scripts train on scikit-learn's bundled digits, so no data
download is needed; results go to the profile's example work directory (bound at ``/output`` or
``/mnt/1``), one folder per job.

**Image.** The profile's ``examples.image``, pulled (when it is a ``.sif`` file that is missing) from
``examples.image_source`` or, without one, from the PyTorch image for the site's GPU vendor
(:data:`EXAMPLE_IMAGES`): a CUDA build would leave an AMD GPU unused.

**Runtime.** Apptainer on sites that run it; on sites where Apptainer is only rendered (the
``local`` practice cluster) the examples run with Charliecloud, which is installed there.
"""

from __future__ import annotations

import posixpath
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from .spec.apptainer import ApptainerPull, ApptainerRun
from .spec.charliecloud import ChConvert, ChFromhost, ChRun, image_format
from .spec.common import Bind, EnvVar
from .spec.profile import ClusterProfile, Partition, image_arches, mig_size
from .spec.units import format_mem, format_time, parse_time
from .spec.workflow import Workflow

#: where the example image comes from when the profile names no ``examples.image_source``, by GPU vendor, with
#: the file name it gets when the profile names no ``examples.image``; pinned, never :latest. A CUDA build sees no
#: AMD GPU (PyTorch then trains on the CPU while the job holds the GPU), so AMD sites get AMD's ROCm build. PyTorch
#: publishes no CPU-only image: other sites get the official pytorch/pytorch runtime image, a CUDA build that also
#: runs on the CPU and is much smaller than NGC's.
EXAMPLE_IMAGES = {
    "nvidia": ("docker://nvcr.io/nvidia/pytorch:24.05-py3", "pytorch_24.05.sif"),
    "amd": ("docker://rocm/pytorch:rocm6.2_ubuntu22.04_py3.10_pytorch_release_2.3.0", "pytorch_rocm6.2.sif"),
    "other": ("docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", "pytorch_2.3.1.sif"),
}
#: the NVIDIA source (the shipped profiles' sites run NVIDIA GPUs)
EXAMPLE_IMAGE_SOURCE = EXAMPLE_IMAGES["nvidia"][0]
#: the image (by its EXAMPLE_IMAGES key) that replaces one with no build for the nodes' CPU architecture: on Arm nodes
#: NGC's, built for arm64 too; a CUDA build like pytorch/pytorch's, so it also runs on nodes without GPUs (it is larger)
ARCH_IMAGES = {"aarch64": "nvidia"}
#: the learning rates the array sweep tries, one per task
SWEEP_LEARNING_RATES = ("0.1", "0.05", "0.02", "0.01")
PAYLOAD_VAR = "HPCW_PAYLOAD"
#: the login host the Jupyter example's tunnel names when the profile has none (a host name, so the job is valid)
LOGIN_HOST_PLACEHOLDER = "LOGIN-HOST"
#: container paths of the payload directory and the output directory, per runtime
MOUNTS = {"apptainer": ("/payload", "/output"), "charliecloud": ("/mnt/0", "/mnt/1")}


@dataclass(frozen=True)
class Example:
    """One example job: a name, a sentence on what it shows, and its model."""

    name: str
    description: str
    model: Any  # a Workflow or a JupyterJob

    def render(self) -> str:
        """The complete job script (the model is validated first)."""
        from .render import render
        return render(self.model)


# ------------------------------------------------------------------------------------------------
# site values
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Site:
    profile: ClusterProfile
    runtime: str                 # apptainer | singularity | charliecloud
    payload_dir: str
    part_vendor: str = ""        # the GPU vendor of the partition the example uses, when it has its own
    part_arch: str = ""          # the CPU architecture of the partition the example uses, when it has its own

    @property
    def charliecloud(self) -> bool:
        return self.runtime == "charliecloud"

    @property
    def vendor(self) -> str:
        return self.part_vendor or self.profile.gpu_vendor

    @property
    def arch(self) -> str:
        """The CPU architecture of the nodes the example runs on ("" when the profile does not say)."""
        return self.part_arch or self.profile.site_arch()

    def on(self, part: Partition | None) -> "_Site":
        """The site as a job on ``part`` sees it: with that partition's GPU vendor (flag and image follow it), or
        the profile's where the partition has none of its own or both vendors."""
        vendor = self.profile.vendor_of(part) if part is not None and part.has_gpus else ""
        return dataclasses.replace(self, part_vendor="" if vendor == "mixed" else vendor,
                                   part_arch=self.profile.arch_of(part) if part is not None else "")

    def gpu_partition(self) -> Partition | None:
        """The default GPU partition; on a site without GPUs the default partition (the sizes then fit it)."""
        return self.profile.default(gpu=True) or self.profile.default()

    def part_of_node_partition(self) -> Partition | None:
        """The partition of a one-node job that uses part of a node (one GPU; on a site without GPUs, a few CPUs):
        the default GPU partition (:meth:`gpu_partition`), unless that one gives every job whole nodes and bills
        them and a partition that shares nodes fits the job: then that one, the partition HPC415 names
        (:meth:`ClusterProfile.part_of_node_partition`), asked with the CPUs the examples give one worker."""
        part = self.gpu_partition()
        if part is None:
            return None
        return self.profile.part_of_node_partition(part, gpus=1, cpus_per_task=_cpus_for_workers(part))

    def sharing_note(self, part: Partition | None) -> str:
        """A sentence for a job that :meth:`part_of_node_partition` moved off the default GPU partition."""
        default = self.gpu_partition()
        if part is None or default is None or part is default:
            return ""
        kind = "the default GPU partition" if default.has_gpus else "the default partition"
        where = default.where()
        return (f" {where[:1].upper()}{where[1:]} ({kind}) gives every job whole nodes and bills them, so this "
                f"job, which uses part of a node, runs on {part.where()}, which shares nodes.")

    def multi_node_partition(self, nodes: int) -> Partition | None:
        """The GPU partition (on a site without GPUs: any partition) that suits a job of ``nodes`` nodes best, whole
        GPUs before MIG slices (:meth:`ClusterProfile.multi_node_partition`)."""
        return self.profile.multi_node_partition(nodes)

    def whole_node_note(self, job: Any) -> str:
        """A sentence for a job that asks for part of a node where it pays for the whole node: its partition gives
        every job whole nodes and no partition that shares nodes fits it (:meth:`part_of_node_partition` found none),
        so lint warns about it (HPC415, :func:`~hpcwidgets.spec.profile.whole_node_warnings`); "" for any other."""
        from .spec.profile import whole_node_warnings
        part = self.profile.entry_for(job)
        if part is None or not whole_node_warnings(self.profile, job):
            return ""
        where = part.where()
        return (f" {where[:1].upper()}{where[1:]} gives every job whole nodes and bills them, and no partition of "
                f"{self.profile.name} that shares nodes fits this job: it pays for the whole node while it uses part "
                "of it, and lint warns about that (HPC415), as about every such job there"
                + ("; multi-node-torchrun uses every GPU of its nodes." if job.gpus_on_each_node else "."))

    def modules(self, runtime: str | None = None) -> tuple[str, ...]:
        name = self.profile.runtime_module(runtime or self.runtime)
        return (name,) if name else ()

    def image_source(self) -> str:
        """Where the .sif image is pulled from: the profile's own source, else the one for its GPU vendor and CPU
        architecture (:meth:`_default_image`)."""
        return self.profile.examples.image_source or self._default_image()[0]

    def _default_image(self) -> tuple[str, str]:
        """The image (source, file name) for the site's GPU vendor and CPU architecture (:func:`default_image`)."""
        return default_image(self.vendor, self.arch)

    def _arch_note(self) -> str:
        """A sentence for nodes that the vendor's image has no build for: which image the example pulls instead and
        why, or what to set where none is known ("" on x86_64 nodes and where the profile does not say)."""
        usual, source = EXAMPLE_IMAGES.get(self.vendor, EXAMPLE_IMAGES["other"])[0], self.image_source()
        nodes = f"The nodes are {self.arch}{' (Arm)' if self.arch == 'aarch64' else ''}"
        if not self.arch or self.arch == "x86_64":
            return ""
        if source != usual:
            return (f" {nodes} and {usual} has no build for them, so the image is pulled from {source}, which is "
                    "built for arm64 and amd64 (a CUDA build, so it also runs on the CPU); set examples.image_source "
                    "in the profile to use another.")
        # the architectures the image has builds for, where they are known (spec.profile.IMAGE_ARCHES: NGC's and
        # pytorch/pytorch's; AMD's ROCm image is not listed, so on other nodes the example says to check it)
        built = image_arches(source)
        if built and self.arch not in built:
            return (f" {nodes} and {source} has no build for them (apptainer pull finds none): set "
                    f"examples.image_source in the profile to an image built for {self.arch}.")
        if not built:
            return (f" {nodes}: check that {source} has a build for them (where it has none apptainer pull fails, or "
                    "the image's programs stop with 'exec format error'), or set examples.image_source in the profile.")
        return ""

    def source_note(self) -> str:
        """A sentence for sites whose image source is a stand-in (no vendor image, no source in the profile), or
        whose nodes the vendor's image has no build for (:meth:`_arch_note`)."""
        if self.profile.examples.image_source or not self.prepare():
            return ""
        if self._arch_note() or self.vendor in ("nvidia", "amd"):
            return self._arch_note()
        what = "PyTorch for Intel GPUs (XPU)" if self.vendor == "intel" else "your site's CPU image"
        return (f" The image is pulled from {EXAMPLE_IMAGES['other'][0]}, a CUDA build that runs on the CPU; set "
                f"examples.image_source in the profile to {what}.")

    def image(self, runtime: str | None = None) -> str:
        image = self.profile.examples.image or posixpath.join(self.profile.image_dir, self._default_file())
        if (runtime or self.runtime) == "charliecloud" and image_format(image) in ("sif", "registry"):
            # ch-run cannot read SIF: the Charliecloud lesson converts the image to SquashFS next to it
            stem = posixpath.splitext(posixpath.basename(image))[0]
            return posixpath.join(self.profile.image_dir, f"{stem}.sqfs")
        return image

    def _default_file(self) -> str:
        """The image's file name when the profile names none: the vendor image's, or one derived from the
        profile's own source (as apptainer pull derives it)."""
        if self.profile.examples.image_source:
            return ApptainerPull(source=self.profile.examples.image_source).default_dest()
        return self._default_image()[1]

    def binds(self, runtime: str | None = None) -> tuple[Bind, ...]:
        charlie = (runtime or self.runtime) == "charliecloud"
        payload_dst, output_dst = MOUNTS["charliecloud" if charlie else "apptainer"]
        return (Bind(f"${PAYLOAD_VAR}", payload_dst, "" if charlie else "ro"),
                Bind(self.workdir, output_dst))

    def container(self, runtime: str | None = None) -> Any:
        rt = runtime or self.runtime
        if rt == "charliecloud":
            return ChRun(image=self.image(rt), binds=self.binds(rt))
        return ApptainerRun(binary=self.profile.apptainer_binary if rt == "apptainer" else rt, action="exec",
                            image=self.image(rt), binds=self.binds(rt))

    def title(self, text: str, gpus: int, runtime: str | None = None) -> str:
        """The script's title line; for GPUs on NVIDIA nodes with Charliecloud it also says the one step ch-run
        cannot do (it has no GPU flag): without the driver libraries in the image PyTorch trains on the CPU."""
        if (runtime or self.runtime) == "charliecloud" and self.vendor == "nvidia" and gpus:
            return (f"{text}. NVIDIA GPUs: ch-run has no GPU flag; inject the host's driver libraries into the "
                    "image directory with ch-fromhost --nvidia")
        return text

    def script(self, name: str, runtime: str | None = None) -> str:
        payload_dst = MOUNTS["charliecloud" if (runtime or self.runtime) == "charliecloud" else "apptainer"][0]
        return f"{payload_dst}/{name}"

    def output_dir(self, runtime: str | None = None) -> str:
        return MOUNTS["charliecloud" if (runtime or self.runtime) == "charliecloud" else "apptainer"][1] + "/$SLURM_JOB_ID"

    @property
    def workdir(self) -> str:
        return self.profile.examples.workdir or posixpath.join(self.profile.scratch, "work")

    def prepare(self, runtime: str | None = None) -> tuple[Any, ...]:
        rt = runtime or self.runtime
        image = self.image(rt)
        if rt == "charliecloud" or not image.endswith(".sif"):
            return ()
        return (ApptainerPull(binary=self.profile.apptainer_binary, dir=posixpath.dirname(image),
                              dest=posixpath.basename(image), source=self.image_source(),
                              cachedir=self.profile.cache_dir),)

    def exports(self) -> tuple[EnvVar, ...]:
        # PYTHONNOUSERSITE: packages in the host's ~/.local must not shadow the image's (Apptainer mounts $HOME)
        return (EnvVar(PAYLOAD_VAR, self.payload_dir), EnvVar("PYTHONNOUSERSITE", "1"))

    def setup(self) -> tuple[str, ...]:
        from .render.quote import quote
        return (f"mkdir -p {quote(self.workdir)}",)

    def srun_cpus(self) -> bool:
        return self.profile.srun_needs_cpus_per_task()

    def job_fields(self, part: Partition | None) -> dict[str, str]:
        """partition, qos, constraint and account that put a job on ``part`` (see ClusterProfile.job_fields)."""
        return self.profile.job_fields(part)


def default_image(vendor: str, arch: str = "") -> tuple[str, str]:
    """The image (source, file name) the examples pull where the profile names no ``examples.image_source``: the one
    for the GPU ``vendor`` (:data:`EXAMPLE_IMAGES`); where that one has no build for the nodes' CPU architecture
    ``arch`` (:func:`~hpcwidgets.spec.profile.image_arches`), the one :data:`ARCH_IMAGES` names for it (on aarch64
    nodes NGC's PyTorch image, built for arm64 too). The lessons pull the same (:func:`hpcwidgets.lessons.site_pull`)."""
    image = EXAMPLE_IMAGES.get(vendor, EXAMPLE_IMAGES["other"])
    built = image_arches(image[0])  # every architecture it has builds for, where that is known
    if arch in ARCH_IMAGES and built and arch not in built:
        return EXAMPLE_IMAGES[ARCH_IMAGES[arch]]
    return image


def _where(part: Partition | None) -> str:
    return part.where() if part is not None else "partition (default)"


#: CPUs per worker where the profile does not say its nodes' CPUs (:meth:`Partition.cpus_for_workers` says why)
_CPUS_WHEN_UNKNOWN = 4


def _cpus_for_workers(part: Partition | None, workers: int = 1, nodes: int = 1) -> int:
    """--cpus-per-task of a task starting ``workers`` workers on each of ``nodes`` nodes of ``part``: the rule the
    workflow form follows too (:meth:`Partition.cpus_for_workers`), with 4 per worker where the CPUs are unknown."""
    if part is None:
        return _CPUS_WHEN_UNKNOWN * max(workers, 1)
    return part.cpus_for_workers(workers, nodes=nodes, unknown=_CPUS_WHEN_UNKNOWN)


def _per_job_cap(value: int, part: Partition | None, what: str, nodes: int = 1) -> int:
    """``value`` (per node), lowered so ``nodes`` nodes stay within the partition's per-job limit of ``what``."""
    limit = getattr(part, f"max_{what}_per_job", None) if part is not None else None
    if isinstance(limit, int) and limit > 0:
        return max(1, min(value, limit // max(nodes, 1)))
    return value


def _fit_time(wanted: str, part: Partition | None) -> str:
    limit = part.max_seconds() if part is not None else None
    seconds = parse_time(wanted)
    return format_time(min(seconds, limit)) if limit is not None else wanted


def _fit_mem(wanted_mib: int, part: Partition | None, share: int = 1, nodes: int = 1, gpus: bool = False) -> str:
    """``wanted_mib`` fitted to ``part`` (:meth:`Partition.mem_to_ask`); as asked where no partition is known."""
    return part.mem_to_ask(wanted_mib, share, nodes, gpus) if part is not None else format_mem(wanted_mib)


def _resolve(profile: str | ClusterProfile) -> ClusterProfile:
    if isinstance(profile, ClusterProfile):
        return profile
    from .profiles import load_profile
    return load_profile(profile)


def payload_dir() -> str:
    """The installed payload directory (what ``$HPCW_PAYLOAD`` is set to in the rendered scripts)."""
    from . import payload
    return str(payload.path("train.py").parent)


# ------------------------------------------------------------------------------------------------
# the examples
# ------------------------------------------------------------------------------------------------
def _single_gpu(site: _Site) -> Example:
    part = site.part_of_node_partition()
    site = site.on(part)
    gpus = 1 if part is not None and part.has_gpus else 0
    wf = Workflow.single_node(
        site.script("train.py"), ("--epochs", "20", "--output-dir", site.output_dir()),
        container=site.container(), gpus_per_node=gpus, gpu_vendor=site.vendor,
        title=site.title("Train a small model on one GPU in a container", gpus),
        prepare=site.prepare(), exports=site.exports(),
        job_name="single-gpu", **site.job_fields(part),
        cpus_per_task=_cpus_for_workers(part),
        mem=_fit_mem(32 * 1024, part, share=max(part.gpus_per_node, 1) if part else 1, gpus=bool(gpus)),
        time=_fit_time("01:00:00", part), output="%x-%j.out", modules=site.modules(), setup=site.setup())
    what = "One GPU" if gpus else "No GPU (the site's profile lists none): the CPU"
    if gpus and part.mig_only:
        what = f"One MIG slice ({'/'.join(part.gpu_types)}, a part of a GPU)"
    return Example("single-gpu", f"{what} on {_where(part)}: python train.py in "
                                 f"the container ({site.runtime}), results in {site.workdir}/JOBID."
                                 f"{site.sharing_note(part)}{site.whole_node_note(wf.job)}{site.source_note()}", wf)


def _multi_node_gpus(part: Partition | None, nodes: int) -> tuple[str, int]:
    """``(GPU type to name, GPUs per node)`` of the multi-node job on ``part``: every GPU of a node (within the
    partition's per-job limit), untyped; on a partition of MIG slices one slice, the largest (a CUDA process sees one
    slice only, so a node runs one worker); on one that has whole GPUs and slices, its whole GPUs by name (an untyped
    request may be given slices)."""
    if part is None or not part.has_gpus:
        return "", 0
    if part.mig_only:
        return max(part.gpu_types, key=mig_size), 1
    whole = part.whole_gpu_types()
    if whole and len(whole) < len(part.gpu_types):
        kind = max(whole, key=part.gpus_of_type)
        return kind, _per_job_cap(part.gpus_of_type(kind), part, "gpus", nodes=nodes)
    return "", _per_job_cap(part.gpus_per_node, part, "gpus", nodes=nodes)


def _mig_notes(site: _Site, part: Partition | None, nodes: int, gpu_type: str) -> str:
    """What the multi-node description says of MIG slices: why a partition of slices runs one worker per node (and
    where whole GPUs are, on fewer nodes), or why one of whole GPUs and slices names its whole GPUs."""
    if part is not None and part.mig_only:
        whole = [p for p in site.profile.gpu_partitions() if not p.mig_only and p.for_production]
        elsewhere = (f" For one worker per GPU on whole GPUs, use {whole[0].where()}, which allows "
                     f"{whole[0].max_nodes} node{'s' if whole[0].max_nodes != 1 else ''}."
                     if whole and isinstance(whole[0].max_nodes, int) and 0 < whole[0].max_nodes < nodes else "")
        return (f" The GPUs of {part.where()} are MIG slices ({', '.join(part.gpu_types)}): a CUDA process sees one "
                "slice only, and slices have no peer-to-peer path between them, so one torchrun cannot spread its "
                f"workers over several; this job starts one worker per node, on one {gpu_type} slice each (on whole "
                f"GPUs the same script starts one worker per GPU).{elsewhere}")
    if gpu_type:
        slices = [t for t in part.gpu_types if t not in part.whole_gpu_types()]
        return (f" {part.where()[:1].upper()}{part.where()[1:]} has whole GPUs and MIG slices "
                f"({', '.join(slices)}): the job asks for {gpu_type} by name, so its workers get whole GPUs.")
    return ""


def _multi_node(site: _Site) -> Example:
    part = site.multi_node_partition(2)
    site = site.on(part)
    # a site whose every partition allows one node gets the same job on one node (and is told so)
    nodes = min(2, part.max_nodes) if part is not None and isinstance(part.max_nodes, int) and part.max_nodes > 0 else 2
    gpu_type, gpus = _multi_node_gpus(part, nodes)
    per_node = gpus or 2
    mig = part is not None and part.mig_only
    out = site.output_dir()
    wf = Workflow.multi_node(
        site.script("ddp_train.py"), ("--epochs", "20", "--output-dir", out, "--checkpoint-dir", f"{out}/checkpoints"),
        nodes=nodes, gpus_per_node=gpus, nproc_per_node=per_node, container=site.container(), gpu_vendor=site.vendor,
        pass_cpus_per_task=site.srun_cpus(),
        title=site.title(f"Distributed training on {nodes} node{'s' if nodes > 1 else ''}: one torchrun per node", gpus),
        prepare=site.prepare(), exports=site.exports(),
        job_name="multi-node", **site.job_fields(part), **({"gpu_type": gpu_type} if gpu_type else {}),
        cpus_per_task=_cpus_for_workers(part, per_node, nodes),
        # one slice of a MIG node: the memory of its share of the node, as the single-GPU job asks
        mem=_fit_mem(128 * 1024, part, share=max(part.gpus_per_node, 1) if mig else 1, nodes=nodes, gpus=bool(gpus)),
        time=_fit_time("02:00:00", part), output="%x-%j.out",
        modules=site.modules(), setup=site.setup())
    fewer = "" if nodes == 2 else (f" No partition of {site.profile.name} allows 2 nodes ({_where(part)} allows "
                                   f"{nodes}), so this job uses {nodes}; the same script runs on more nodes where a "
                                   "partition allows them.")
    each = "one worker, on the node's MIG slice" if mig else "one worker per GPU"
    return Example("multi-node-torchrun",
                   f"{nodes} node{'s' if nodes > 1 else ''} × {per_node} process{'es' if per_node > 1 else ''} on "
                   f"{_where(part)}: srun starts one torchrun per node, which starts {each}; the c10d rendezvous runs "
                   f"at the first node ($head_node, resolved on the host).{fewer}"
                   f"{_mig_notes(site, part, nodes, gpu_type)}{site.source_note()}", wf)


def _array_sweep(site: _Site) -> Example:
    part = site.part_of_node_partition()
    site = site.on(part)
    gpus = 1 if part is not None and part.has_gpus else 0
    wf = Workflow.sweep(
        "lr", SWEEP_LEARNING_RATES, site.script("train.py"), ("--epochs", "20", "--output-dir", site.output_dir()),
        container=site.container(), gpus_per_node=gpus, gpu_vendor=site.vendor,
        title=site.title("A learning-rate sweep: one array task per value", gpus), exports=site.exports(),
        job_name="lr-sweep", **site.job_fields(part),
        cpus_per_task=_cpus_for_workers(part),
        mem=_fit_mem(32 * 1024, part, share=max(part.gpus_per_node, 1) if part else 1, gpus=bool(gpus)),
        time=_fit_time("00:30:00", part), modules=site.modules(), setup=site.setup())
    return Example("array-sweep", f"A job array of {len(SWEEP_LEARNING_RATES)} tasks; task i trains with learning rate "
                                  f"number i of {', '.join(SWEEP_LEARNING_RATES)} (picked on the host by "
                                  "$SLURM_ARRAY_TASK_ID and passed as --lr). Pull the image first (single-gpu does) "
                                  f"so the tasks do not all download it at once.{site.sharing_note(part)}"
                                  f"{site.whole_node_note(wf.job)}", wf)


def _charliecloud(site: _Site) -> Example:
    part = site.part_of_node_partition()
    site = site.on(part)
    gpus = 1 if part is not None and part.has_gpus else 0
    container, prepare = site.container("charliecloud"), ()
    nvidia = site.vendor == "nvidia" and gpus
    if nvidia and image_format(container.image) == "squash":
        # ch-fromhost writes the host's driver libraries into the image, so it needs a directory: unpacked once
        # next to the SquashFS file, the libraries injected on the GPU node each run (they follow its driver)
        unpacked = posixpath.splitext(container.image)[0]
        prepare = (ChConvert(input=container.image, output=unpacked), ChFromhost(nvidia=True, image=unpacked))
        container = container.replace(image=unpacked)
    wf = Workflow.single_node(
        site.script("train.py", "charliecloud"), ("--epochs", "20", "--output-dir", site.output_dir("charliecloud")),
        container=container, gpus_per_node=gpus, gpu_vendor=site.vendor, use_srun=True,
        pass_cpus_per_task=site.srun_cpus(), prepare=prepare,
        title=site.title("Train in a Charliecloud container under srun", gpus, "charliecloud"),
        exports=site.exports(), job_name="charliecloud", **site.job_fields(part), cpus_per_task=_cpus_for_workers(part),
        mem=_fit_mem(32 * 1024, part, share=max(part.gpus_per_node, 1) if part else 1, gpus=bool(gpus)),
        time=_fit_time("01:00:00", part), output="%x-%j.out", modules=site.modules("charliecloud"), setup=site.setup())
    note = ""
    if prepare:
        note = (" On NVIDIA nodes ch-run has no GPU flag: the job unpacks the SquashFS image into a directory once "
                "and injects the host's driver libraries there with ch-fromhost --nvidia.")
    elif nvidia:
        note = (" On NVIDIA nodes, inject the driver libraries into the image directory with ch-fromhost --nvidia "
                "IMAGE_DIR (ch-run has no GPU flag).")
    if "charliecloud" not in site.profile.runtimes:
        note += (f" The profile lists no Charliecloud for {site.profile.name} (runtimes: "
                 f"{', '.join(site.profile.runtimes) or 'none'}): shown for comparison.")
    note += site.sharing_note(part) + site.whole_node_note(wf.job)
    return Example("charliecloud", f"srun starts ch-run, which runs python train.py in the unprivileged "
                                   f"Charliecloud image {site.image('charliecloud')}.{note}", wf)


def _jupyter(site: _Site) -> Example | None:
    try:
        from .spec.jupyter import JupyterJob
    except ImportError:  # the JupyterJob model is optional in partial installs
        return None
    from .spec.slurm import SlurmJob
    part = site.profile.default()
    box = None
    if not site.charliecloud:
        box = ApptainerRun(binary=site.profile.apptainer_binary, action="exec", image=site.image())
    cpus = min(2, part.cpus_per_node) if part is not None and part.cpus_per_node else 2
    job = SlurmJob(job_name="jupyter", **site.job_fields(part), cpus_per_task=cpus, output="jupyter-%j.log",
                   modules=site.modules() if box is not None else ())
    # without a login host the tunnel cannot be known: a visible placeholder, never a host that looks real
    login = JupyterJob.login_fields(site.profile)
    model = JupyterJob(job=job, container=box, **dict(login, login_host=login["login_host"] or LOGIN_HOST_PLACEHOLDER))
    # time and memory by the model's own rules, the ones `hpcwidgets jupyter-job --profile` follows: the example and
    # the command ask for the same on every site
    model = model.fit_time(site.profile).fit_mem(site.profile)
    where = f"in the image {site.image()}" if box is not None else "from the jupyter on PATH"
    note = "" if site.profile.login_host else (
        f" The profile names no login_host, so the tunnel command says {LOGIN_HOST_PLACEHOLDER}: replace it with the "
        "host you ssh to, or set login_host in the profile.")
    return Example("jupyter", f"JupyterLab on a compute node of {_where(part)} "
                              f"{where}; the job log prints the ssh tunnel command and the URL with a fresh token."
                              f"{note}{site.whole_node_note(model.job)}", model)


_BUILDERS: tuple[Callable[[_Site], Example | None], ...] = (_single_gpu, _multi_node, _array_sweep, _charliecloud, _jupyter)


def examples(profile: str | ClusterProfile = "generic") -> dict[str, Example]:
    """The example jobs for a site: ``profile`` is a profile name, a ``.toml`` path or a loaded profile."""
    site = _Site(_resolve(profile), "", payload_dir())
    site = _Site(site.profile, site.profile.runnable_runtime(), site.payload_dir)
    out: dict[str, Example] = {}
    for build in _BUILDERS:
        ex = build(site)
        if ex is not None:
            # what every job of the site needs (job_env, container_binds): as place() adds it to a new job
            out[ex.name] = dataclasses.replace(ex, model=site.profile.with_site_env(ex.model))
    return out


__all__ = ["ARCH_IMAGES", "EXAMPLE_IMAGES", "EXAMPLE_IMAGE_SOURCE", "Example", "LOGIN_HOST_PLACEHOLDER", "PAYLOAD_VAR",
           "SWEEP_LEARNING_RATES", "default_image", "examples", "payload_dir"]


from ._callable import make_callable as _make_callable  # noqa: E402

_make_callable(__name__, "examples")
