"""Helpers for the lesson notebooks: pictures drawn from the models, short real runs, portable text.

The lessons in ``notebooks/`` call these so the notebooks hold prose and calls, never logic:

* :func:`example` / :func:`portable` give a shipped example with the installed payload path
  replaced by a placeholder, so saved outputs do not depend on where hpcwidgets is installed;
* :func:`launch_plan` reads a :class:`~hpcwidgets.spec.workflow.Workflow` (or a script) and says how
  many launchers and workers each node gets; :func:`process_tree` draws it;
* :func:`stage_to_node_local` adds to a workflow the lines that copy its data set to a folder of the job's own on
  the node's disk (removed when the job ends), and the bind that reads it there; :func:`torchrun_reads` says
  what this machine's torchrun makes of its options (both spellings of ``--nproc-per-node``);
* :func:`layer_diagram` draws the layers of a workflow (Slurm job → srun → container → torchrun → program);
* :func:`train_locally` and :func:`scaling_run` run the payload scripts on this machine's CPU;
  :func:`loss_plot` and :func:`scaling_plot` draw their results;
* :func:`job_head` and :func:`site_job` give a hand-written job's top (or its model) that fits the site: partition,
  account, QOS, memory where the default is small, the module of the site's container program; so an example shows
  only its own mistake, and :func:`findings_table` leaves out what the practice cluster's render-only Apptainer adds;
  :func:`multi_node_partition` is the partition the multi-node example uses;
* :func:`gpu_site` gives the profile a lesson about GPUs writes for (the generic one where the site has none);
  :func:`gpu_vendor`, :func:`gpu_flag` and :func:`gpu_fields` give the GPU flag of the site's GPUs (``--nv``,
  ``--rocm`` or none), :func:`container_exec` the start of a GPU job's container command with the site's program
  and that flag, and :func:`site_image` the Apptainer image the site's examples use; :func:`command` writes a
  hand-written script's line with a model's words (a container's, srun's) in it;
* :func:`practice_target` decides where a lesson may really submit jobs, and :func:`run_example`
  submits one, waits for it and returns what a lesson may print (state, losses, ranks, nodes): never
  job ids, times or paths.

Pictures are written as PNG files (fixed size, no timestamp in the metadata) so notebooks reference
them from Markdown and their saved outputs stay the same from run to run. matplotlib is imported
only by the drawing functions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import HpcWidgetsError, RunError

#: what the installed payload directory is shown as in lesson output
PAYLOAD_PLACEHOLDER = "/path/to/hpcwidgets/payload"
#: the payload variable the examples export
_PAYLOAD_VAR = "HPCW_PAYLOAD"
#: the variable a staged job keeps its own node-local folder in
_JOB_LOCAL = "job_local"
# not anchored at line starts: several processes share the job log, and a line may follow another
# process's unfinished one (torchrun's log lines, srun's) on the same physical line
_EPOCH = re.compile(r"(?<![\w])epoch=(\d+) loss=([0-9.]+) val_acc=([0-9.]+)")
_RANK = re.compile(r"(?<![\w])rank=(\d+) world_size=(\d+) local_rank=(\d+) host=(\S+)")
_PNG_META = {"Software": None}
COLOURS = {"slurm": "#d9e7f5", "srun": "#e4f0d8", "container": "#fbe5c8", "launcher": "#f3d9ec",
           "program": "#ffffff", "bad": "#f8c9c4", "good": "#cfe8cf"}


# ------------------------------------------------------------------------------------------------
# portable text
# ------------------------------------------------------------------------------------------------
def portable_text(text: str) -> str:
    """``text`` with this installation's payload directory replaced by :data:`PAYLOAD_PLACEHOLDER`."""
    from ..examples import payload_dir
    return text.replace(payload_dir(), PAYLOAD_PLACEHOLDER)


def portable(model: Any) -> Any:
    """A copy of a workflow (or any model with ``exports``) whose payload export shows the placeholder."""
    exports = getattr(model, "exports", None)
    if not exports:
        return model
    from ..spec.common import EnvVar
    new = tuple(EnvVar(e.name, PAYLOAD_PLACEHOLDER) if e.name == _PAYLOAD_VAR else e for e in exports)
    return model.replace(exports=new)


def example(name: str, profile: Any = "generic", *, real: bool = False, **changes: Any) -> Any:
    """The shipped example ``name`` for ``profile`` as a model.

    ``real=False`` (for showing) replaces the payload path by the placeholder; ``real=True`` keeps it
    (for submitting). ``changes`` are passed to the model's ``replace`` (e.g. ``title=…``).
    """
    from ..examples import examples
    found = examples(profile)
    if name not in found:
        raise HpcWidgetsError(f"no example called {name!r}; the examples are: {', '.join(found)}")
    model = found[name].model
    if changes:
        model = model.replace(**changes)
    return model if real else portable(model)


def with_program_args(model: Any, **options: str) -> Any:
    """A workflow whose training script gets ``--NAME VALUE`` replaced (or added) for each option.

    ``with_program_args(wf, epochs="5")`` turns ``--epochs 20`` into ``--epochs 5`` wherever the
    script's arguments live (the program or the launcher)."""
    def change(args: Sequence[str]) -> tuple[str, ...]:
        words = list(args)
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if flag in words:
                i = words.index(flag)
                if i + 1 < len(words):
                    words[i + 1] = str(value)
                else:
                    words.append(str(value))
            else:
                words += [flag, str(value)]
        return tuple(words)
    if model.launcher is not None:
        return model.replace(launcher=model.launcher.replace(args=change(model.launcher.args)))
    if model.program:
        prog = tuple(model.program)
        return model.replace(program=prog[:2] + change(prog[2:]))
    raise HpcWidgetsError("the workflow runs neither a launcher nor a program, so it has no script arguments to change")


def stage_to_node_local(workflow: Any, archive: str, site: Any, *, folder: str = "data", at: str = "") -> Any:
    """``workflow`` with its data set staged on the node's own disk: before the step the job unpacks ``archive``
    (one file on scratch, e.g. a tar of many small files) into ``folder`` in a folder of its own under the
    profile's ``node_local`` directory (``…/$SLURM_JOB_ID``), the container gets that copy at ``at`` (read-only
    with Apptainer) and the program reads it there (``--data-dir``).

    Reading one large file from the shared file system and many small ones from a local disk is what makes
    staging pay. The folder is the job's own because two jobs of one user often share a node (the tasks of an
    array): in one per-user folder, one job's ``tar`` would rewrite files the other is reading. A ``trap … EXIT``
    set before the copy removes it when the job ends, also when ``set -e`` stops the job at a failing command, so
    copies do not pile up on the node's disk.

    ``at`` defaults to ``/data`` for Apptainer and to the first free ``/mnt/N`` for Charliecloud, whose read-only
    image cannot create a new mount point. The batch shell runs on the job's first node only, so a job of several
    nodes makes (and removes) its copy on each of them, with one task per node
    (``srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 tar …``: lint's HPC523)."""
    from ..profiles import load_profile
    from ..render.quote import quote
    from ..spec.common import Bind
    prof = load_profile(site) if isinstance(site, str) else site
    nodes = str(workflow.job.nodes or "1").strip()
    every = "" if nodes == "1" else 'srun --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 '
    box = workflow.container
    if box is None:
        raise HpcWidgetsError("the workflow runs no container, so there is no bind to add: point the program at "
                              "the node-local copy itself")
    charliecloud = box.kind == "charliecloud.run"
    if not at and charliecloud:
        taken = {b.dst or b.src for b in box.binds}
        at = next((d for d in (f"/mnt/{i}" for i in range(10)) if d not in taken), "")
        if not at:
            raise HpcWidgetsError("the container already binds /mnt/0 … /mnt/9; pass at= a directory the image has")
    at = at or "/data"
    local = f"${_JOB_LOCAL}/{folder}"
    job = workflow.job.replace(setup=(
        *workflow.job.setup,
        _job_local_line(prof.node_local.rstrip("/")),
        f"trap '{every}rm -rf \"${_JOB_LOCAL}\"' EXIT",
        f"{every}mkdir -p {quote(local)}",
        f"{every}tar -xf {quote(archive)} -C {quote(local)}"))
    bind = Bind(local, at, "" if charliecloud else "ro")
    staged = workflow.replace(job=job, container=box.replace(binds=(*box.binds, bind)))
    return with_program_args(staged, data_dir=at)


def _job_local_line(root: str) -> str:
    """``job_local=ROOT/$SLURM_JOB_ID``, with /tmp where ROOT is a variable the job may not have (``$TMPDIR``, the
    generic profile's): Slurm does not set TMPDIR (sites may), and the scripts run with ``set -u``, which stops at
    an unset one."""
    from ..render.quote import assignment, is_plain
    m = re.fullmatch(r"\$\{?([A-Za-z_]\w*)\}?(/.*)?", root)
    if m is None or not is_plain(m.group(2) or "/"):
        return assignment(_JOB_LOCAL, f"{root}/$SLURM_JOB_ID")
    return f'{_JOB_LOCAL}="${{{m.group(1)}:-/tmp}}{m.group(2) or ""}/$SLURM_JOB_ID"'


def show(model_or_text: Any) -> None:
    """Print a model's rendering (or text) with the payload path made portable."""
    from ..render import render
    text = model_or_text if isinstance(model_or_text, str) else render(model_or_text)
    print(portable_text(text).rstrip("\n"))


def site_modules(site: Any) -> tuple[str, ...]:
    """The modules a job on ``site`` loads to have its container program (none where it is on PATH)."""
    name = site.runtime_module(site.apptainer_binary)
    return (name,) if name else ()


def module_note(site: Any, runtime: str = "apptainer") -> str:
    """What a learner loads on ``site`` to have ``runtime``: its module, or why there is none. A profile that
    renders a runtime's commands only (the practice cluster's Apptainer) says so, rather than "on PATH", since
    typing those commands there finds no such program. Apptainer's commands run as the site names its program
    (``apptainer_binary``): on a SingularityCE site, the note is about ``singularity`` and its module."""
    if runtime == "apptainer":
        runtime = site.apptainer_binary or runtime
    if runtime in site.runtimes_render_only:
        return f"(none: {runtime} is not installed on this cluster; its commands are only shown and checked here)"
    if runtime not in site.runtimes:
        return f"(none: the profile lists no {runtime} on this cluster)"
    return site.runtime_module(runtime) or f"(none: {runtime} is on PATH)"


def site_partition(site: Any, *, gpu: bool = False) -> str:
    """The partition a lesson's job names on ``site``: the default GPU partition for a GPU job."""
    part = _site_entry(site, gpu)
    return part.name if part is not None else ""


def _site_entry(site: Any, gpu: bool, gpus: int = 1) -> Any:
    """The partition of a lesson's job: the default GPU partition for a job with ``gpus`` per node, unless it gives
    every job whole nodes and bills them and another fits the job (the one HPC415 names, as the examples choose:
    :meth:`~hpcwidgets.spec.profile.ClusterProfile.part_of_node_partition`); else the default partition."""
    part = site.default(gpu=True) if gpu else None
    if part is None:
        return site.default()
    return site.part_of_node_partition(part, gpus=gpus)


def has_gpus(site: Any) -> bool:
    """Whether ``site`` has a partition with GPUs, where a lesson's GPU job can run."""
    return site.default(gpu=True) is not None


def gpu_site(site: Any) -> Any:
    """The profile a lesson about GPUs writes its examples for: ``site`` where it has GPUs, else the generic profile
    (NVIDIA A100s), saying so in a printed line. On a site without GPUs every GPU job is refused (HPC407), and the
    lesson's examples would show that error in place of the mistake each one teaches."""
    if has_gpus(site):
        return site
    from ..profiles import load_profile
    print(f"{site.name} has no GPU partition: the GPU examples below are written for the generic profile, a site "
          "with NVIDIA GPUs")
    return load_profile("generic")


def gpu_vendor(site: Any) -> str:
    """The vendor of the GPUs a lesson's GPU job gets on ``site`` (the job :func:`site_job` and :func:`job_head` write
    with ``gpus``): the vendor lint reads for HPC201 and HPC218 (the profile's ``vendor_for``: the partition's own
    ``gpu_vendor``, else the profile's). ``nvidia`` where the profile cannot tell (a partition with both vendors, and
    a job that names no GPU type), the vendor the workflow constructors then choose."""
    return site.vendor_for(site_job(site, gpus=1)) or "nvidia"


def gpu_fields(site: Any) -> dict[str, bool]:
    """The :class:`~hpcwidgets.spec.apptainer.ApptainerRun` field that gives a container the GPUs of ``site``'s GPU job
    (:func:`gpu_vendor`): ``{"nv": True}`` for NVIDIA, ``{"rocm": True}`` for AMD, ``{}`` for Intel GPUs or none, which
    take no flag. A lesson writes ``hw.ApptainerRun(…, **lessons.gpu_fields(site))``."""
    from ..spec.workflow import GPU_FLAGS
    flag = GPU_FLAGS.get(gpu_vendor(site))
    return {flag: True} if flag else {}


def gpu_flag(site: Any) -> str:
    """The option of :func:`gpu_fields` as a command writes it: ``--nv``, ``--rocm``, or "" (no flag)."""
    return " ".join(f"--{name}" for name in gpu_fields(site))


def container_exec(site: Any, action: str = "exec") -> str:
    """How a hand-written GPU job starts its container on ``site``: the site's container program
    (``apptainer_binary``: HPC414 on a site that has only ``singularity``), ``action`` and the flag of the site's
    GPUs (:func:`gpu_flag`: HPC218 for the other vendor's), e.g. ``singularity exec --rocm``. The image and the
    command follow."""
    return " ".join(word for word in (site.apptainer_binary or "apptainer", action, gpu_flag(site)) if word)


def site_image(site: Any) -> str:
    """The image a lesson's Apptainer command runs on ``site``: the profile's example image (``examples.image``, the
    one the shipped examples pull) when it is a SIF file, else the file the examples would pull for the site's GPUs
    and CPUs into its ``image_dir`` (the vendor's PyTorch image: a ROCm build on AMD sites, NGC's on Arm nodes:
    :func:`~hpcwidgets.examples.default_image`). The practice cluster's example image is a Charliecloud directory, so
    its Apptainer commands show the SIF file next to it."""
    import posixpath
    from ..examples import default_image
    from ..spec.apptainer import ApptainerPull
    from ..spec.charliecloud import image_format
    image = site.examples.image
    if image and image_format(image) == "sif":
        return image
    if site.examples.image_source:
        name = ApptainerPull(source=site.examples.image_source).default_dest()
    else:
        name = default_image(gpu_vendor(site), _site_arch(site))[1]
    return posixpath.join(site.image_dir, name)


def _site_arch(site: Any) -> str:
    """The CPU architecture of the nodes a lesson's jobs use on ``site`` (its default GPU partition, else its default
    one; else the site's), "" where the profile does not say."""
    part = site.default(gpu=True) or site.default()
    return site.arch_of(part) or site.site_arch()


def command(*parts: Any) -> str:
    """One line of a hand-written script, ending in a newline: each of ``parts`` a word (``"mpirun"``, a number) or a
    command model (an :class:`~hpcwidgets.spec.apptainer.ApptainerRun`, a :class:`~hpcwidgets.spec.slurm.Srun` …)
    given as its words, all quoted as the renderer quotes them. A lesson writes ``lessons.command("mpirun", "-np", 8,
    box)`` so the container's words are the model's (the site's program, GPU flag and image), not typed again."""
    from ..render.quote import join
    from ..spec._meta import Spec
    from ..spec.argv import argv
    words: list[str] = []
    for part in parts:
        if isinstance(part, Spec):
            words += argv(part)
        elif isinstance(part, (str, int)) and not isinstance(part, bool):
            words.append(str(part))
        else:
            raise HpcWidgetsError(f"lessons.command takes words and command models, not {type(part).__name__} "
                                  f"{part!r}: give it as text, or the model it was made from")
    if not words:
        raise HpcWidgetsError("lessons.command needs at least one word or command model")
    return join(words) + "\n"


def site_pull(site: Any) -> Any:
    """The :class:`~hpcwidgets.spec.apptainer.ApptainerPull` that makes :func:`site_image` on ``site``, as the shipped
    examples pull it: from the profile's ``examples.image_source``, else the PyTorch image of the site's GPUs (a ROCm
    build on AMD sites) built for its nodes (NGC's on Arm nodes, which pytorch/pytorch has no build for), with the
    site's program and cache folder."""
    import posixpath
    from ..examples import default_image
    from ..spec.apptainer import ApptainerPull
    image = site_image(site)
    source = site.examples.image_source or default_image(gpu_vendor(site), _site_arch(site))[0]
    return ApptainerPull(binary=site.apptainer_binary, dir=posixpath.dirname(image), dest=posixpath.basename(image),
                         source=source, cachedir=site.cache_dir)


def multi_node_partition(site: Any, nodes: int = 2) -> Any:
    """The partition a job of ``nodes`` nodes uses on ``site``, chosen as the shipped multi-node example chooses it
    (:meth:`~hpcwidgets.spec.profile.ClusterProfile.multi_node_partition`: of the GPU partitions, the best for
    production that allows ``nodes`` nodes, whole GPUs before MIG slices, the default winning a tie). So a lesson, the
    example and an exercise on the same job name the same partition. None for a profile without partitions."""
    return site.multi_node_partition(nodes)


def site_mem(site: Any, job: Any) -> str:
    """The ``--mem`` a job (a :class:`~hpcwidgets.spec.slurm.SlurmJob`, or a script's text) asks for on ``site`` where
    the memory its partition gives by default would leave it less than half its share of a node (lint's HPC413: a
    small DefMemPerCPU), else "" (the default is enough, or the job names its memory). The value is that share, the
    one HPC413 suggests (:func:`~hpcwidgets.spec.profile.share_mem`)."""
    from ..spec.profile import job_warnings, share_mem
    if isinstance(job, str):
        from ..parse import parse_job
        job = parse_job(job)
    if not any(p.field == "mem" for p in job_warnings(site, job)):
        return ""
    part = site.entry_for(job)
    return share_mem(part, job) if part is not None else ""


def site_job(site: Any, *, gpus: int = 0, part: Any = None, **fields: Any) -> Any:
    """A :class:`~hpcwidgets.spec.slurm.SlurmJob` that fits ``site``, the model of :func:`job_head`'s lines: on ``part``
    (by default the GPU partition when ``gpus`` per node are requested, else the default one) with the account, QOS
    and constraint the profile names for it (:meth:`~hpcwidgets.spec.profile.ClusterProfile.job_fields`), ``gpus``
    per node (none on a site without GPUs, as :func:`job_head`), the module of the site's container program, then
    ``fields`` (they win; a ``time`` over the partition's limit is lowered to it: HPC402), and ``--mem`` where the
    partition's default memory would be too small for the job (:func:`site_mem`)."""
    from ..spec.slurm import SlurmJob
    from ..spec.units import format_time, parse_time
    gpus = gpus if has_gpus(site) else 0     # a GPU request there is only refused (HPC407)
    part = part if part is not None else _site_entry(site, gpus > 0, gpus)
    placed = {key: value for key, value in site.job_fields(part).items() if value}
    limit = part.max_seconds() if part is not None else None
    if fields.get("time") and limit is not None and parse_time(str(fields["time"])) > limit:
        fields = {**fields, "time": format_time(limit)}
    job = SlurmJob(**{**placed, **({"gpus_per_node": gpus} if gpus else {}), "modules": site_modules(site), **fields})
    if job.mem or job.mem_per_cpu or job.mem_per_gpu:
        return job
    mem = site_mem(site, job)
    return job.replace(mem=mem) if mem else job


def job_head(site: Any, *options: str, gpus: int = 0) -> str:
    """The top of a hand-written job script that fits ``site``: ``#!/bin/bash``, the partition (a GPU partition when
    ``gpus`` per node are requested, which a site without GPUs gets none of: :func:`has_gpus`) with the account,
    QOS and constraint the profile's entry for it names (:meth:`~hpcwidgets.spec.profile.ClusterProfile.job_fields`:
    HPC408 where an account is required), its default time limit when it has one (a job that sets none is stopped there: HPC411), each of ``options`` as an ``#SBATCH``
    line, ``--mem`` where the partition's default memory is too small for the job (:func:`site_mem`, HPC413), and
    the module that provides the site's container program (its ``apptainer_binary``: HPC409). A lesson's example
    built on it, calling that program (``site.apptainer_binary``), shows the one mistake it is about, and no other."""
    lines = ["#!/bin/bash"]
    gpus = gpus if has_gpus(site) else 0
    part = _site_entry(site, gpus > 0, gpus)
    fields = site.job_fields(part)
    lines += [f"#SBATCH --{key}={fields[key]}" for key in ("partition", "account", "qos", "constraint") if fields[key]]
    if part is not None and part.default_time and not any(o.startswith(("--time", "-t")) for o in options):
        lines.append(f"#SBATCH --time={part.default_time}")
    lines += [f"#SBATCH {o}" for o in options]
    if gpus:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    if not any(o.startswith("--mem") for o in options):
        mem = site_mem(site, "\n".join(lines) + "\n")
        lines += [f"#SBATCH --mem={mem}"] if mem else []
    lines += [f"module load {name}" for name in site_modules(site)]
    return "\n".join(lines) + "\n"


def render_only(finding: Any) -> bool:
    """Whether ``finding`` is lint's HPC416 (:data:`~hpcwidgets.lint.profile_rules.RENDER_ONLY_RULE`): a container
    program of a runtime the profile lists as render-only, as the practice cluster lists Apptainer (it shows
    Apptainer's commands and runs Charliecloud's). Every Apptainer example of a lesson gets that finding on such a
    cluster, whatever mistake it teaches."""
    from ..lint.profile_rules import RENDER_ONLY_RULE
    return getattr(finding, "code", "") == RENDER_ONLY_RULE


def findings_shown(findings: Iterable[Any]) -> list[Any]:
    """The findings a lesson's table shows: all but HPC416's about a render-only runtime (:func:`render_only`)."""
    return [f for f in findings if not render_only(f)]


def findings_table(findings: Iterable[Any], title: str = "") -> None:
    """Print findings one per line: ``line  severity  CODE  message`` (and ``fix available``), under ``title``
    when given (two tables in one cell stay apart).

    HPC416's findings (a runtime the profile lists as render-only) are left out, with one line under the table
    that says so: on the practice cluster every Apptainer example would repeat that warning, and the table is there
    for the mistake the example teaches."""
    every = list(findings)
    rows = findings_shown(every)
    hidden = len(rows) < len(every)
    if title:
        print(f"{title}:")
    if not rows:
        print("no findings")
    for f in rows:
        fix = "  [fix available]" if getattr(f, "fix", None) is not None else ""
        print(f"line {f.line:>2}  {f.severity:<7} {f.code}  {portable_text(f.message)}{fix}")
    if hidden:
        from ..lint.profile_rules import RENDER_ONLY_RULE
        print(f"(not shown: {RENDER_ONLY_RULE}, a container runtime this cluster's profile lists as render-only: "
              "its commands are shown and checked here, not run)")


# ------------------------------------------------------------------------------------------------
# how many processes a launch starts
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LaunchPlan:
    """How a workflow's step spreads over the nodes (read from the models, not from running it)."""

    nodes: int
    launchers_per_node: int        # processes srun starts on each node (each one a torchrun, or the program)
    workers_per_launcher: int      # processes each torchrun starts (1 without a launcher)
    gpus_per_node: int
    launcher_on_every_node: bool = True   # False: no srun, the batch shell starts it once on the first node

    @property
    def workers_per_node(self) -> int:
        return self.launchers_per_node * self.workers_per_launcher

    @property
    def oversubscribed(self) -> bool:
        return bool(self.gpus_per_node) and self.workers_per_node > self.gpus_per_node

    def summary(self) -> str:
        where = "each of" if self.launcher_on_every_node else "only the first of"
        return (f"{where} {self.nodes} node(s): {self.launchers_per_node} launcher(s) × "
                f"{self.workers_per_launcher} worker(s) = {self.workers_per_node} process(es) "
                f"for {self.gpus_per_node} GPU(s)")


def _number(value: Any, job: Any, default: int) -> int:
    """A count from a model field: a literal, or one of the Slurm variables the job fixes."""
    if value in (None, ""):
        return default
    text = str(value)
    if text.isdigit():
        return int(text)
    gpus = _gpus_per_node(job)
    known = {"SLURM_NTASKS_PER_NODE": job.ntasks_per_node, "SLURM_NNODES": job.nodes,
             "SLURM_JOB_NUM_NODES": job.nodes, "SLURM_GPUS_ON_NODE": gpus, "SLURM_GPUS_PER_NODE": gpus}
    name = text.strip("${}")
    got = known.get(name)
    if got not in (None, ""):
        return int(str(got).split("-")[0]) if str(got).split("-")[0].isdigit() else default
    return default


def _gpus_per_node(job: Any) -> int:
    for value in (job.gpus_per_node,):
        if value not in (None, "", 0):
            text = str(value).rsplit(":", 1)[-1]
            if text.isdigit():
                return int(text)
    return 0


def launch_plan(source: Any) -> LaunchPlan:
    """The :class:`LaunchPlan` of a Workflow, or of a job script's text (parsed first)."""
    from ..parse import parse_script
    wf = parse_script(source) if isinstance(source, str) else source
    job = wf.job
    nodes = _number(job.nodes, job, 1)
    gpus = _gpus_per_node(job)
    if wf.srun is not None:
        per_node = wf.srun.ntasks_per_node or job.ntasks_per_node
        if not per_node and (wf.srun.ntasks or job.ntasks):
            total = int(wf.srun.ntasks or job.ntasks)
            per_node = max(1, total // max(nodes, 1))
        launchers, everywhere = _number(per_node, job, 1), True
    else:
        launchers, everywhere = 1, nodes == 1
    workers = _number(wf.launcher.nproc_per_node, job, 1) if wf.launcher is not None else 1
    return LaunchPlan(nodes, launchers, workers, gpus, everywhere)


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG without a timestamp or version in its metadata, then close it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata=_PNG_META)
    _plt().close(fig)
    return out


def _layer_words(layer: Any) -> str:
    from ..spec.argv import argv
    words = argv(layer.replace(command=()) if hasattr(layer, "command") else layer)
    text = " ".join(words)
    return text if len(text) <= 70 else text[:67] + "…"


def layers(workflow: Any) -> list[tuple[str, str, str]]:
    """``(kind, title, words)`` for each layer of a workflow, outermost first (what the diagram draws)."""
    job = workflow.job
    directives = [f"--nodes={job.nodes}" if job.nodes else "",
                  f"--ntasks-per-node={job.ntasks_per_node}" if job.ntasks_per_node else "",
                  f"--gres=gpu:{job.gpus_per_node}" if job.gpus_per_node else "",
                  f"--time={job.time}" if job.time else ""]
    out = [("slurm", "Slurm job (sbatch)", " ".join(d for d in directives if d) or "#SBATCH …")]
    if workflow.srun is not None:
        out.append(("srun", "job step (srun)", _layer_words(workflow.srun)))
    if workflow.container is not None:
        name = "Charliecloud" if workflow.container.kind == "charliecloud.run" else "Apptainer"
        out.append(("container", f"container ({name})", _layer_words(workflow.container)))
    if workflow.launcher is not None:
        out.append(("launcher", "launcher (torchrun)", _layer_words(workflow.launcher)))
        program = ["python", workflow.launcher.script, *workflow.launcher.args]
    else:
        program = list(workflow.program)
    text = " ".join(program)
    out.append(("program", "program", text if len(text) <= 70 else text[:67] + "…"))
    return out


def layer_diagram(workflow: Any, path: str | os.PathLike[str], title: str = "") -> Path:
    """Nested boxes, one per layer of ``workflow``, each labelled with its own words."""
    from matplotlib.patches import FancyBboxPatch
    plt = _plt()
    rows = layers(workflow)
    n = len(rows)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.95 * n))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 10 * n + 2)
    ax.axis("off")
    top_all = 10 * n + 1
    for i, (kind, name, words) in enumerate(rows):
        left, top, bottom = 2.5 * i, top_all - 9.0 * i, 0.6 * i
        box = FancyBboxPatch((left, bottom), 100 - 2 * left, top - bottom, boxstyle="round,pad=0.2",
                             facecolor=COLOURS[kind], edgecolor="#555555", linewidth=1.2)
        ax.add_patch(box)
        ax.text(left + 1.5, top - 2.6, name, fontsize=11, fontweight="bold", va="center")
        ax.text(left + 1.5, top - 6.0, words, fontsize=9, family="monospace", va="center", parse_math=False)
    if title:
        ax.set_title(title, fontsize=12)
    fig.tight_layout()
    return save_figure(fig, path)


def process_tree(plans: Sequence[tuple[str, LaunchPlan]], path: str | os.PathLike[str]) -> Path:
    """Draw, per plan, the nodes with their launchers and workers; oversubscribed nodes in red."""
    plt = _plt()
    from matplotlib.patches import Rectangle
    fig, axes = plt.subplots(1, len(plans), figsize=(6.5 * len(plans), 5.2), squeeze=False)
    for ax, (title, plan) in zip(axes[0], plans):
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.axis("off")
        ax.set_title(title, fontsize=12)
        width = 96 / plan.nodes
        for node in range(plan.nodes):
            x0 = 2 + node * width
            starts = plan.launcher_on_every_node or node == 0
            bad = plan.oversubscribed and starts
            ax.add_patch(Rectangle((x0, 4), width - 3, 80, facecolor=COLOURS["bad" if bad else "slurm"],
                                   edgecolor="#555555"))
            label = f"node {node + 1}: {plan.gpus_per_node} GPU(s)"
            if starts:
                label += f", {plan.workers_per_node} processes"
            ax.text(x0 + 1, 80, label, fontsize=9, va="top", fontweight="bold")
            if not starts:
                ax.text(x0 + (width - 3) / 2, 44, "nothing starts here", ha="center", fontsize=9, style="italic")
                continue
            lw = (width - 5) / plan.launchers_per_node
            for k in range(plan.launchers_per_node):
                lx = x0 + 1 + k * lw
                ax.add_patch(Rectangle((lx, 46), lw - 1, 20, facecolor=COLOURS["launcher"], edgecolor="#555555"))
                ax.text(lx + (lw - 1) / 2, 56, "torchrun" if plan.workers_per_launcher > 1 or plan.launchers_per_node == 1
                        else "launcher", ha="center", va="center", fontsize=8 if plan.launchers_per_node > 2 else 9)
                ww = (lw - 1) / plan.workers_per_launcher
                for j in range(plan.workers_per_launcher):
                    wx = lx + j * ww
                    ax.add_patch(Rectangle((wx + 0.2, 10), max(ww - 0.6, 0.4), 26, facecolor=COLOURS["program"],
                                           edgecolor="#888888"))
                    ax.plot([lx + (lw - 1) / 2, wx + ww / 2], [46, 36], color="#888888", linewidth=0.7)
            ax.text(x0 + (width - 3) / 2, 6, "workers (python train.py)", ha="center", fontsize=8)
        ax.text(50, 92, plan.summary(), ha="center", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def loss_plot(curves: Mapping[str, Sequence[float]], path: str | os.PathLike[str], *,
              ylabel: str = "training loss", title: str = "") -> Path:
    """One line per named curve, epochs on the x axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), list(values), marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def scaling_plot(results: Mapping[int, float], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Bars of samples per second against the number of processes (measured numbers live only here)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    procs = sorted(results)
    ax.bar([str(p) for p in procs], [results[p] for p in procs], color="#6a9fd4")
    ax.set_xlabel("processes (torchrun --nproc-per-node)")
    ax.set_ylabel("training samples per second")
    ax.set_title(title or "Throughput on this machine's CPU")
    fig.tight_layout()
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# real runs on this machine
# ------------------------------------------------------------------------------------------------
def _payload(name: str) -> str:
    from .. import payload
    return str(payload.path(name))


def _read_metrics(directory: Path) -> dict:
    target = directory / "metrics.json"
    if not target.is_file():
        raise RunError(f"the run wrote no metrics.json in {directory}; see the output above for its error")
    return json.loads(target.read_text(encoding="utf-8"))


def train_locally(epochs: int = 10, lr: float = 0.05, seed: int = 0, *, threads: int = 1,
                  timeout: float = 300) -> dict:
    """Run the payload ``train.py`` in a subprocess on this machine's CPU; return its metrics."""
    with tempfile.TemporaryDirectory(prefix="hpcw-lesson-") as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONNOUSERSITE": "1"}
        argv = [sys.executable, _payload("train.py"), "--epochs", str(epochs), "--lr", str(lr), "--seed", str(seed),
                "--device", "cpu", "--output-dir", tmp]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode != 0:
            raise RunError(f"train.py failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
        return _read_metrics(Path(tmp))


def scaling_run(processes: Sequence[int] = (1, 2), epochs: int = 3, *, timeout: float = 300) -> dict[int, dict]:
    """``torchrun --standalone --nproc-per-node N ddp_train.py`` on the CPU for each N; metrics per N.

    The global batch grows with N (the batch size is per process), so samples per second is the number
    to compare; losses are comparable only for the same N.
    """
    out: dict[int, dict] = {}
    for n in processes:
        with tempfile.TemporaryDirectory(prefix="hpcw-lesson-") as tmp:
            # TMPDIR: torchrun's own log folders (torchelastic_*) go into the folder removed after the run
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1", "TMPDIR": tmp}
            argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                    f"--nproc-per-node={n}", _payload("ddp_train.py"), "--epochs", str(epochs),
                    "--device", "cpu", "--output-dir", tmp]
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
            if proc.returncode != 0:
                raise RunError(f"torchrun with {n} process(es) failed (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[-800:]}")
            metrics = _read_metrics(Path(tmp))
            metrics["ranks"] = sorted(int(m.group(1)) for m in _RANK.finditer(proc.stdout))
            out[n] = metrics
    return out


def torchrun_reads(*options: str) -> dict[str, Any]:
    """What this machine's torchrun makes of ``options``: the values its own argument parser
    (``torch.distributed.run``) reads from them that differ from its defaults, by name
    (``torchrun_reads("--nproc_per_node=4")`` → ``{"nproc_per_node": "4"}``).

    A lesson shows with it which spellings the installed PyTorch accepts; an option it does not know raises
    ``HpcWidgetsError`` with torchrun's own message instead of exiting the kernel."""
    from torch.distributed.run import get_args_parser

    def refuse(message: str) -> None:
        raise HpcWidgetsError(f"this machine's torchrun does not read {' '.join(options)}: {message}")

    parser = get_args_parser()
    parser.error = refuse  # type: ignore[method-assign]  # argparse would print and exit
    defaults = vars(parser.parse_args(["train.py"]))
    read = vars(parser.parse_args([*options, "train.py"]))
    return {name: value for name, value in read.items() if value != defaults.get(name)}


def decreasing(values: Sequence[float]) -> bool:
    """True when the last value is below the first (a training run that learned something)."""
    return len(values) >= 2 and values[-1] < values[0]


def run_command(model: Any, *, timeout: float = 300, cwd: str | os.PathLike[str] | None = None,
                image: str = "") -> str:
    """Run a command model (e.g. a :class:`~hpcwidgets.spec.charliecloud.ChRun`) on this machine and return
    its standard output; ``RunError`` with its standard error when it fails.

    The argument vector comes from the render layer, so what runs is exactly what the lesson shows, except
    for ``image``: given, it replaces the model's image, so a lesson can show the path of the learner's site
    and run the image this machine has. ``USER`` is set when missing (``ch-run`` needs it). Runs through
    :func:`hpcwidgets.run.container.run_container`."""
    from ..run.container import run_container
    if image:
        model = model.replace(image=image)
    return run_container(model, on_line=lambda line: None, cwd=cwd, timeout=timeout, merge_stderr=False).output


def charliecloud_image(profile: Any = "local") -> str:
    """The Charliecloud image directory a lesson can run here, or "" (with no ch-run, or no image yet)."""
    from ..profiles import load_profile
    if shutil.which("ch-run") is None:
        return ""
    prof = load_profile(profile) if isinstance(profile, str) else profile
    candidates = [prof.examples.image, load_profile("local").examples.image]
    for image in candidates:
        if image and Path(image).is_dir() and (Path(image) / "bin").exists():
            return image
    return ""


@dataclass(frozen=True)
class Target:
    """Where a lesson's real jobs go: a profile whose partitions the reachable Slurm has, or nowhere."""

    profile: str
    slurm: bool
    container: bool
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.slurm and self.container


def _partitions() -> set[str]:
    from ..run.practice_cluster import client_env
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=15,
                              env=client_env())
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()} if proc.returncode == 0 else set()


def _has_partitions(profile: str, parts: set[str]) -> bool:
    """Whether the reachable Slurm (``parts``) has every partition of ``profile``."""
    from ..profiles import load_profile
    names = load_profile(profile).slurm_partition_names()  # entries selected by QOS/constraint are not partitions
    return bool(names) and all(n in parts for n in names)


def practice_target(profile: str = "generic", *, site_jobs: bool = False) -> Target:
    """Where a lesson's real jobs go: the practice cluster (profile ``local``) when it is up; with ``site_jobs``,
    first the lesson's own ``profile`` when the reachable Slurm has its partitions. ``ok`` is False, with the
    reason, where neither fits.

    ``site_jobs`` is off unless asked for: on a real site the examples are GPU jobs charged to the allocation (up to
    two nodes for lesson 09), and the first one pulls the example image, so running a lesson's cells must not start
    them unannounced. Jobs need the example image too: for the ``local`` profile that is the Charliecloud trainer
    image.
    """
    from ..profiles import load_profile
    from ..run.slurm import available
    from ..run.practice_cluster import client_env
    if not available(client_env()):
        return Target(profile, False, False, "no Slurm answers here (start the practice cluster with "
                                             "`hpcwidgets practice-cluster up`, or run this on your cluster)")
    parts = _partitions()
    own_site = profile != "local" and _has_partitions(profile, parts)
    chosen = next((name for name in ((profile, "local") if site_jobs else ("local",)) if _has_partitions(name, parts)),
                  "")
    if not chosen:
        if own_site:
            return Target(profile, True, False, f"the Slurm here has the partitions of profile {profile!r}; the lesson "
                                                "submits its jobs there only when you set site_jobs = True (real GPU "
                                                "jobs on your allocation)")
        return Target(profile, False, False, f"the Slurm here has partitions {', '.join(sorted(parts)) or '(none)'}, "
                                             f"none of profile {profile!r}'s")
    prof = load_profile(chosen)
    runtime = next((r for r in prof.runtimes if r not in prof.runtimes_render_only), "")
    image = prof.examples.image
    if runtime == "charliecloud":
        if shutil.which("ch-run") is None:
            return Target(chosen, True, False, "ch-run is not installed here")
        if not image or not Path(image).is_dir():
            return Target(chosen, True, False, f"the example image {image or '(none)'} is not built yet "
                                               "(`hpcwidgets practice-cluster up` builds it)")
    elif shutil.which(runtime or "apptainer") is None:
        module = prof.module(runtime or "apptainer")
        return Target(chosen, True, False, f"{runtime or 'apptainer'} is not on PATH here" + (
            f": load its module (module load {module}) before starting JupyterLab" if module else ""))
    if chosen != profile:
        return Target(chosen, True, True, f"real jobs run on the practice cluster, with profile {chosen!r}: the "
                                          f"scripts shown for {profile!r} are not the ones submitted")
    return Target(chosen, True, True, "")


@dataclass(frozen=True)
class RunResult:
    """What a lesson may print about a finished job: nothing that changes from run to run."""

    state: str
    losses: tuple[float, ...] = ()
    world_size: int = 0
    ranks: tuple[int, ...] = ()
    nodes: tuple[str, ...] = ()
    output_tail: str = field(default="", repr=False)
    lr: str = ""
    nodelist: str = ""             # Slurm's node list expression, e.g. n[1-2]

    @property
    def learned(self) -> bool:
        return decreasing(self.losses)


def _result_from_output(state: str, text: str) -> RunResult:
    losses = tuple(float(m.group(2)) for m in _EPOCH.finditer(text))
    ranks = [m for m in _RANK.finditer(text)]
    world = max((int(m.group(2)) for m in ranks), default=0)
    nodes = tuple(sorted({m.group(4) for m in ranks}))
    lr = re.search(r"--lr[ =](\S+)", text)
    return RunResult(state, losses, world, tuple(sorted(int(m.group(1)) for m in ranks)), nodes,
                     "\n".join(text.splitlines()[-15:]), lr.group(1) if lr else "")


def run_job(model_or_text: Any, *, timeout: float = 240, workdir: str | os.PathLike[str] | None = None) -> RunResult:
    """Submit a workflow (or script text) to the reachable Slurm, wait, and read its output.

    The job runs in ``workdir`` and leaves its output file there; without one it runs in a temporary
    directory that is removed once the output is read (the result keeps its last lines), so a lesson
    run again and again does not fill ``/tmp``. A job that does not finish within ``timeout`` seconds
    is cancelled and reported as ``TIMEOUT``.
    """
    from ..render import render
    text = model_or_text if isinstance(model_or_text, str) else render(model_or_text)
    if workdir is not None:
        where = Path(workdir)
        where.mkdir(parents=True, exist_ok=True)
        return _run_in(text, where, timeout)
    # a cancelled job may still be writing its log while the directory goes: ignore what cannot be removed
    with tempfile.TemporaryDirectory(prefix="hpcw-lesson-job-", ignore_cleanup_errors=True) as tmp:
        return _run_in(text, Path(tmp), timeout)


def _run_in(text: str, where: Path, timeout: float) -> RunResult:
    from ..run.practice_cluster import client_env
    from ..run.slurm import submit
    env = client_env()
    extra = {"SLURM_CONF": env["SLURM_CONF"]} if env.get("SLURM_CONF") else {}
    if not env.get("USER"):
        # sbatch exports the submitting environment; ch-run refuses to start without USER
        import getpass
        extra["USER"] = getpass.getuser()
    job = submit(text, env=extra or None, cwd=where)
    try:
        state = job.wait(timeout=timeout)
    except RunError:
        job.cancel()
        state = "TIMEOUT"
    try:
        output = job.output()
    except RunError:
        output = ""
    try:
        nodelist = job.info().nodes
    except RunError:
        nodelist = ""
    return dataclasses.replace(_result_from_output(state, output), nodelist=nodelist)


def run_example(name: str, target: Target, **program_args: str) -> RunResult:
    """Submit the shipped example ``name`` for ``target.profile`` (script options changed by
    ``program_args``, e.g. ``epochs="4"``) and wait for it."""
    model = example(name, target.profile, real=True)
    if program_args:
        model = with_program_args(model, **program_args)
    return run_job(model)


__all__ = ["COLOURS", "PAYLOAD_PLACEHOLDER", "charliecloud_image", "command", "container_exec", "decreasing", "example",
           "findings_shown", "findings_table", "gpu_fields", "gpu_flag", "gpu_vendor", "job_head", "launch_plan",
           "LaunchPlan", "layer_diagram", "layers", "loss_plot", "module_note", "multi_node_partition", "portable",
           "portable_text", "practice_target", "process_tree", "render_only", "run_command", "run_example", "run_job",
           "RunResult", "save_figure", "scaling_plot", "scaling_run", "show", "site_image", "site_job", "site_pull",
           "site_mem", "site_modules", "site_partition", "stage_to_node_local", "Target", "torchrun_reads",
           "train_locally", "with_program_args"]
