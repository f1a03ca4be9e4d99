"""A whole containerized job: every layer composed, outermost first.

    Slurm job  →  srun step  →  container (Apptainer | Charliecloud)  →  torchrun  →  program

A :class:`Workflow` holds one model per layer and leaves composition to the renderer
(:mod:`hpcwidgets.render.workflow`): the step's argument vector is srun's words, then the
container's words with its command replaced by the launcher's words (or the plain ``program``).
Nothing here builds shell text, so every value still goes through the quoting contract.

Use :meth:`Workflow.single_node`, :meth:`Workflow.multi_node`, :meth:`Workflow.sweep` and
:meth:`Workflow.grid` to get the correct patterns without remembering them (one torchrun per node,
the head node resolved on the host, ``--nv``/``--rocm`` when GPUs are requested, ``--cpus-per-task``
passed again to srun).
Cross-layer advice (GPU count vs ``--nproc-per-node`` and the like) is the linter's job;
:meth:`Workflow._check` reports only what makes the composition meaningless.
"""

from __future__ import annotations

import math
import operator
import re
import shlex
from itertools import chain
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import Problem, UnknownFieldError
from ._meta import Spec, opt
from ._words import Verbatim
from .apptainer import ApptainerBuild, ApptainerPull, ApptainerRun
from .charliecloud import ChConvert, ChFromhost, ChImageBuild, ChImageImport, ChImagePull, ChRun
from .common import Bind, EnvVar
from .slurm import HETJOB_SEPARATORS, SlurmJob, Srun, array_task_ids, binds_per_task, gpu_total, node_range
from .torchrun import DEFAULT_RDZV_PORT, HEAD_NODE_VAR, Torchrun
from .units import is_number

#: container models a workflow can run its step in
CONTAINERS = (ApptainerRun, ChRun)
#: commands a workflow may run first, in the batch shell (image downloads, conversions)
PREPARE = (ApptainerPull, ApptainerBuild, ChImagePull, ChImageBuild, ChImageImport, ChConvert, ChFromhost)
GPU_VENDORS = ("nvidia", "amd", "intel", "none")
RUNTIMES = ("apptainer", "singularity", "charliecloud")

_SHELL_NAME = re.compile(r"[a-z_][a-z0-9_]*")
#: Slurm's per-task variables, which only each task can expand
_PER_TASK_REF = re.compile(r"\$\{?(SLURM_(?:PROCID|LOCALID|NODEID))\b")
#: such a reference the batch shell expands: its ``$`` not escaped as ``\$`` (the quoting contract's literal dollar)
_EXPANDED_PER_TASK_REF = re.compile(r"(?<!\\)" + _PER_TASK_REF.pattern)


def _per_task_problems(program: tuple[Any, ...]) -> list[Problem]:
    """A typed word of a step's program that names a task's own number ($SLURM_PROCID, $SLURM_LOCALID,
    $SLURM_NODEID) for the batch shell to expand: it does so once, before srun starts the tasks, and every task gets
    task 0's number. A script read back keeps its words as written (:class:`Verbatim`); lint's HPC502 reads those."""
    out = []
    for k, word in enumerate(program):
        found = None if isinstance(word, Verbatim) else _EXPANDED_PER_TASK_REF.search(str(word))
        if found is None:
            continue
        name = found.group(1)
        shell = k >= 2 and str(program[k - 1]) == "-c" and str(program[k - 2]).rsplit("/", 1)[-1] in ("bash", "sh")
        fix = (f"write \\${name} in the -c script, so that each task's shell expands it (what you type is text, "
               "except $NAME, which the batch shell expands)" if shell else
               f"read it in the program (os.environ['{name}']), or run it through bash -c '… \\${name} …'")
        out.append(Problem("program", f"${name} is expanded once by the batch shell, before srun starts the tasks, "
                                      f"so every task gets task 0's number; {fix}"))
    return out


#: a reference to a lower-case variable (the script's own; the environment's are upper-case), not the literal \$.
#: The look-behind comes after the ``$`` so the pattern begins with a literal, which re scans for in C: led by the
#: look-behind it tried every position of the text, a search eight times slower on a step's words
_LOWER_REF = re.compile(r"\$(?<!\\\$)(?:\{([a-z_][a-z0-9_]*)[}:#%/^,\[-]|([a-z_][a-z0-9_]*)(?![A-Za-z0-9_]))")
#: a set-up line that may define variables this model cannot see (sourcing a file, eval)
_OPAQUE_SETUP = re.compile(r"(?:^|[;&|(\s])(?:source|\.|eval)\s")


#: the fields a workflow's checks read first, fetched in one call
_LAYERS = operator.attrgetter("container", "srun", "launcher", "program", "exports")
_PREPARE = frozenset(PREPARE)
_ENVVAR = frozenset({EnvVar})
_NAME, _VALUE, _PATHS, _WORDS = (operator.attrgetter("name"), operator.attrgetter("value"),
                                 operator.attrgetter("src", "dst"), operator.itemgetter(1))
#: isinstance(x, EnvVar) and isinstance(x, Bind) as functions filter() calls in C
_is_envvar, _is_bind = EnvVar.__instancecheck__, Bind.__instancecheck__

#: the container field that makes a vendor's GPUs visible inside (Apptainer's --nv, --rocm); Intel's need none
GPU_FLAGS = {"nvidia": "nv", "amd": "rocm"}


def with_gpus(container: Any, gpus: int, vendor: str) -> Any:
    """The container with the GPU flag its runtime needs for ``vendor`` when ``gpus`` > 0.

    Apptainer: ``--nv`` for NVIDIA, ``--rocm`` for AMD, neither for Intel. Charliecloud has no
    flag (the driver libraries are injected into the image once with ``ch-fromhost --nvidia``).
    """
    flag = GPU_FLAGS.get(vendor)
    if isinstance(container, ApptainerRun) and gpus > 0 and flag:
        return container.replace(**{flag: True})
    return container


def gpu_vendor_of(profile: Any, *models: Any) -> str:
    """Whose GPU flag a workflow's container follows. With a profile: the vendor of the GPUs the job of the first of
    ``models`` gets there (the profile's ``vendor_for``: its partition's ``gpu_vendor``, else the profile's; lint's
    HPC218 reads the same), so a job on a site's AMD partition follows --rocm though the profile's vendor is NVIDIA.
    Without a profile, or where it cannot tell (a partition with both vendors and a job that names no GPU type): AMD
    when a container of ``models`` says --rocm (a script written for an AMD site, as loaded or as edited), else
    NVIDIA."""
    if profile is not None:
        job = next((m.job for m in models if isinstance(getattr(m, "job", None), SlurmJob)), None)
        vendor_for = getattr(profile, "vendor_for", None)
        vendor = vendor_for(job) if job is not None and callable(vendor_for) else getattr(profile, "gpu_vendor", "")
        if vendor and isinstance(vendor, str):
            return vendor
    rocm = any(getattr(getattr(m, "container", None), "rocm", False) for m in models)
    return "amd" if rocm else "nvidia"


#: the job's fields that choose where it runs and so whose GPUs it gets: the partition, the entry a QOS or constraint
#: selects on a site without user partitions, the GPU type on a partition with both vendors
_WHERE = operator.attrgetter("partition", "qos", "constraint", "gpu_type")


def follow(before: Any, after: Any, given: Iterable[str] = (), gpu_vendor: str = "nvidia") -> dict[str, Any]:
    """The values that keep a workflow's layers in step with its job after an edit turned ``before`` into ``after``,
    by the path ``--set`` and the model's problems use (``{"launcher.nnodes": "3"}``): the form and the command
    line both apply them, so one edit gives one script.

    GPUs per node flows into torchrun's ``nproc_per_node`` and the container's GPU flag (:data:`GPU_FLAGS`): that of
    ``gpu_vendor`` (the vendor of the GPUs the job gets after the edit, :func:`gpu_vendor_of`) on when the job has
    GPUs, off when it has none, and the other vendor's flag off. A move to where the other vendor's GPUs are (another
    partition, QOS, constraint or GPU type, the GPUs kept) switches a container that holds the other vendor's flag
    over the same way. Nodes flows into torchrun's ``nnodes``. A path in ``given`` (or under one: ``launcher`` given
    whole) was set by the person and wins. A launcher count that is no plain number is kept too: ``$SLURM_NNODES``,
    ``gpu`` or ``1:4`` in a loaded script follows the allocation already (or was chosen on purpose), and a number in
    its place would change a line the person did not touch. A layer without the field (no launcher, ch-run's
    container) is skipped. The title (path ``title``) keeps the counts it states true: a number of nodes or GPUs that
    was the job's becomes the new one (:func:`title_counts`), unless the title is given too.
    """
    old, new = getattr(before, "job", None), getattr(after, "job", None)
    if not isinstance(old, SlurmJob) or not isinstance(new, SlurmJob):
        return {}
    out: dict[str, Any] = {}
    gpus, nodes = new.gpus_per_node, new.nodes
    counted = isinstance(gpus, int) and not isinstance(gpus, bool) and gpus >= 0
    if counted and gpus != old.gpus_per_node:
        if gpus > 0:
            out["launcher.nproc_per_node"] = str(gpus)
        out.update(_gpu_flags(after, gpus, gpu_vendor))
    elif counted and gpus > 0 and _WHERE(old) != _WHERE(new):
        out.update(_gpu_flags(after, gpus, gpu_vendor, moved=True))
    if counted and gpus > 0 and gpus != old.gpus_per_node and isinstance(old.gpus_per_node, int):
        out.update(_per_task_gpus_follow(after, old, gpus))
    if nodes != old.nodes and isinstance(nodes, int) and nodes > 0:
        out["launcher.nnodes"] = str(nodes)
        out.update(_task_counts_follow(after, old, nodes))
    elif nodes != old.nodes and isinstance(nodes, str) and (span := node_range(nodes)) is not None \
            and 1 <= span[0] < span[1]:
        out["launcher.nnodes"] = "$SLURM_NNODES"  # Slurm picks the count in the range as the job starts
    given = tuple(given)
    if nodes != old.nodes:
        out.update(_rendezvous_follows(after, old.node_count, new.node_count, given))
    out = {path: value for path, value in out.items() if _may_follow(after, path, given)}
    title = str(getattr(after, "title", "") or "")
    if title and "title" not in given:
        kept = title_counts(title, old, new, getattr(before, "launcher", None))
        if kept != title and refused_edit(after, "title", kept) is None:
            out["title"] = kept
    return out


#: a count a title states: "2 nodes", "1 node", "one GPU", "8 GPUs"
_TITLE_COUNT = re.compile(r"\b(\d+|one) (nodes?|GPUs?)\b")
#: what makes a title's GPU count the count on each node, before it ("2 nodes × 4 GPUs", "2 nodes x 4 GPUs") or after
#: it ("4 GPUs per node", "4 GPUs each", "4 GPUs/node")
_PER_NODE_BEFORE = re.compile(r"(?:×|\bx|\*)\s*$")
_PER_NODE_AFTER = re.compile(r"\s*(?:per node|each|on each node|a node|/\s*node)\b")


def _count(value: Any) -> int | None:
    """``value`` when it is a plain whole number (not a switch), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _title_numbers(job: SlurmJob, launcher: Any = None) -> dict[str, int | None]:
    """The job's counts a title may state: nodes, GPUs on each node and GPUs in all (None where not a plain number).
    A count the job leaves unset is, with a ``launcher`` given, torchrun's number for it (``--nnodes``,
    ``--nproc-per-node``), which followed the job's last one: in a form, a count typed over passes through empty."""
    nodes, per_node = _count(job.nodes), _count(job.gpus_per_node)
    if launcher is not None:
        if nodes is None and _unset(job.nodes) and str(getattr(launcher, "nnodes", "")).strip().isdigit():
            nodes = int(str(launcher.nnodes).strip())
        nproc = str(getattr(launcher, "nproc_per_node", "")).strip()
        if per_node is None and _unset(job.gpus_per_node) and _unset(job.gpus) and nproc.isdigit():
            per_node = int(nproc)
    total = nodes * per_node if nodes is not None and per_node is not None else _count(job.gpus)
    return {"node": nodes, "per node": per_node, "GPU": total}


def title_counts(title: str, before: SlurmJob, after: SlurmJob, launcher: Any = None) -> str:
    """``title`` kept true after its job changed from ``before`` to ``after``: a number of nodes or GPUs it states
    that was the job's ("Distributed training on 2 nodes" of a 2-node job) becomes the job's new one ("on 4 nodes");
    a number that was not the job's (a title written by hand about something else) stays as written. A GPU count is
    the job's GPUs on each node where the title says so ("2 nodes × 4 GPUs", "4 GPUs per node") or where only that
    count matches it, else the GPUs in all ("on 8 GPUs" of 2 nodes × 4). ``launcher`` is the workflow's torchrun
    before the edit, whose numbers stand in for a count ``before`` leaves unset (:func:`_title_numbers`)."""
    old, new = _title_numbers(before, launcher), _title_numbers(after)

    def kept(m: re.Match) -> str:
        number, noun = m.group(1), m.group(2).rstrip("s")
        said = 1 if number == "one" else int(number)
        which = noun
        if noun == "GPU" and said == old["per node"] and (
                said != old["GPU"] or _PER_NODE_BEFORE.search(title, 0, m.start()) or
                _PER_NODE_AFTER.match(title, m.end())):
            which = "per node"
        was, now = old[which], new[which]
        span = node_range(after.nodes) if which == "node" and isinstance(after.nodes, str) else None
        if span is not None and 1 <= span[0] < span[1] and was is not None and said == was:
            return f"{span[0]}-{span[1]} nodes"  # a range the job now asks for: Slurm picks the count in it
        if was is None or said != was or now is None or now < 1 or now == was:
            return m.group(0)
        return f"{now} {noun}{'s' if now > 1 else ''}"

    return _TITLE_COUNT.sub(kept, title)


def _gpu_flags(after: Any, gpus: int, vendor: str, moved: bool = False) -> dict[str, bool]:
    """The container's GPU flags for ``gpus`` on ``vendor``'s GPUs by path: the vendor's on when there are GPUs (off
    when none), each other vendor's off where ``after``'s container holds it. ``moved`` (the job went elsewhere, its
    GPUs kept): only when the container holds another vendor's flag, so a flag left off on purpose stays off. Nothing
    for a vendor without a flag (Intel) or unknown, as before, nor for a container whose options are held in a
    variable (``apptainer exec "${OPTS[@]}" …``), which may hold the flag already."""
    flag = GPU_FLAGS.get(vendor)
    if flag is None:
        return {}
    box = getattr(after, "container", None)
    if any("$" in str(word) for word in getattr(box, "extra", ()) or ()):
        return {}  # options held in a variable ("${OPTS[@]}") may hold the GPU flag: a second one is not ours to add
    others = {f"container.{f}": False for f in GPU_FLAGS.values() if f != flag and getattr(box, f, False) is True}
    if moved and not others:
        return {}
    return {f"container.{flag}": gpus > 0, **others}


#: the rendezvous of one node and of several, as :meth:`Workflow.single_node` and :meth:`Workflow.multi_node` write it
_ONE_NODE_RENDEZVOUS = {"launcher.standalone": True, "launcher.rdzv_backend": "", "launcher.rdzv_endpoint": "",
                        "launcher.rdzv_id": ""}
_MULTI_NODE_RENDEZVOUS = {"launcher.standalone": False, "launcher.rdzv_backend": "c10d",
                          "launcher.rdzv_endpoint": f"${HEAD_NODE_VAR}:{DEFAULT_RDZV_PORT}",
                          "launcher.rdzv_id": "$SLURM_JOB_ID"}


def _rendezvous_follows(after: Any, was: int, now: int, given: tuple[str, ...]) -> dict[str, Any]:
    """A job grown from one node to several, or back: torchrun's rendezvous as the pattern for that many nodes
    writes it (--standalone; c10d at the head node with the job's id), and srun to start one launcher on each node.
    Only a rendezvous written as the other pattern writes it follows (one the person wrote otherwise, or any of whose
    options they gave, stays); the srun layer is added when the job had none."""
    launcher = getattr(after, "launcher", None)
    if not isinstance(launcher, Torchrun) or (was > 1) == (now > 1) or any(
            g == "launcher" or g in _ONE_NODE_RENDEZVOUS for g in given):
        return {}
    mine, theirs = (_ONE_NODE_RENDEZVOUS, _MULTI_NODE_RENDEZVOUS) if now > 1 else \
        (_MULTI_NODE_RENDEZVOUS, _ONE_NODE_RENDEZVOUS)
    if any(getattr(launcher, path.split(".")[1]) != value for path, value in mine.items()):
        return {}
    out: dict[str, Any] = dict(theirs)
    if now > 1:
        # --master-port/--master-addr did nothing beside --standalone and are refused beside c10d: they go
        out.update({path: None if path.endswith("port") else "" for path in _IGNORED_BY_C10D
                    if getattr(launcher, path.split(".")[1], "")})
    if now > 1 and getattr(after, "srun", None) is None and "srun" not in given:
        out["srun"] = Srun(ntasks_per_node=1)
    return out


#: torchrun's options of the static rendezvous, which neither --standalone nor c10d reads
_IGNORED_BY_C10D = ("launcher.master_port", "launcher.master_addr")


def _per_task_gpus_follow(after: Any, old: SlurmJob, gpus: int) -> dict[str, Any]:
    """GPUs counted per task where each node runs one task (``--gpus-per-task=8`` beside ``--gpus-per-node=8``, the
    job's or srun's): that count is the node's, and follows GPUs per node (else the job keeps asking for the old
    count per node, or srun binds the old count to each launcher)."""
    out: dict[str, Any] = {}
    one_per_node = old.ntasks_per_node == 1 or (isinstance(old.ntasks, int) and old.ntasks == old.nodes)
    if one_per_node and old.gpus_per_task == old.gpus_per_node:
        out["job.gpus_per_task"] = gpus
    srun = getattr(after, "srun", None)
    if srun is not None and srun.gpus_per_task == old.gpus_per_node and (
            srun.ntasks_per_node == 1 or (srun.ntasks_per_node is None and one_per_node)):
        out["srun.gpus_per_task"] = gpus
    return out


def _task_counts_follow(after: Any, old: SlurmJob, nodes: int) -> dict[str, Any]:
    """A task count that was a whole number of tasks on each of the old nodes (``--ntasks=4`` on 4 nodes, the job's
    or srun's, without a count per node of its own) keeps that number on each of the new nodes: srun would otherwise
    start the old count on fewer nodes (two launchers a node) or leave new nodes without a task."""
    out: dict[str, Any] = {}
    if not isinstance(old.nodes, int) or old.nodes < 1:
        return out
    for path, layer in (("job", old), ("srun", getattr(after, "srun", None))):
        tasks = getattr(layer, "ntasks", None)
        per_node = getattr(layer, "ntasks_per_node", None)
        if isinstance(tasks, int) and not isinstance(tasks, bool) and tasks % old.nodes == 0 and \
                (per_node is None or tasks == per_node * old.nodes) and (path == "job" or layer.nodes is None):
            out[f"{path}.ntasks"] = nodes * (tasks // old.nodes)
    return out


def _may_follow(model: Any, path: str, given: tuple[str, ...]) -> bool:
    """Whether the field at ``path`` (``layer.field``) exists in ``model``, was not given by the person and holds
    a value a followed one may replace (a switch, or a count that is a plain number or empty)."""
    if any(path == g or path.startswith(g + ".") for g in given):
        return False
    if path == "srun":  # the step layer, added where there was none
        return getattr(model, "srun", None) is None
    attr, name = path.split(".")
    layer = getattr(model, attr, None)
    if not isinstance(layer, Spec) or name not in {f.name for f in type(layer).field_specs()}:
        return False
    value = getattr(layer, name)
    if path in _IGNORED_BY_C10D:
        return True  # (emptied only by the move from --standalone to c10d, where it did nothing and is refused)
    return isinstance(value, bool) or str(value).strip().isdigit() or not str(value).strip() \
        or value in _MULTI_NODE_RENDEZVOUS.values()  # (the pattern's own text, which the other one replaces)


def followed(before: Any, after: Any, given: Iterable[str] = (), gpu_vendor: str = "nvidia") -> Any:
    """``after`` with the values :func:`follow` gives applied (the command line's way; a form sets its controls)."""
    changes: dict[str, dict[str, Any]] = {}
    own: dict[str, Any] = {}  # the workflow's own fields (its title)
    for path, value in follow(before, after, given, gpu_vendor).items():
        attr, _, name = path.partition(".")
        if name:
            changes.setdefault(attr, {})[name] = value
        else:
            own[attr] = value
    if not changes and not own:
        return after
    return after.replace(**own, **{attr: getattr(after, attr).replace(**fields) for attr, fields in changes.items()})


#: the fields of a model of layers that it holds but never writes (by the model's kind and the dotted path), with why
#: and where what was meant goes instead: a value given there would otherwise be lost without a word
NOT_WRITTEN = {
    ("workflow", "job.commands"): (
        "a workflow writes no commands of its job: it writes its step from its layers; give the step's program "
        "with --program 'python train.py' (or --launcher 'torchrun …', --container 'apptainer exec …', --srun "
        "'srun …'), lines to run before the step with --set job.setup='…' and lines after it with --after '…'; a "
        "job of your own commands alone is hpcwidgets sbatch --commands '…'"),
}

#: why a workflow read back from a script without hpcwidgets' header does not write a title, and what to do instead
HEADERLESS_TITLE = (
    "the title is the first line of the header hpcwidgets writes at the top of its own scripts, and this job was read "
    "from a script without that header (a script of your own), which is written back in its own layout, still "
    "without one: the title would not appear; write it as a comment at the top of that script instead (a script read "
    "back keeps its comments as written)")


def refused_edit(model: Any, path: str, value: Any) -> str | None:
    """Why ``model`` refuses ``value`` at the dotted field ``path`` (``job.commands``, ``title``,
    ``container.image``) and what to do instead, or None when it takes it. An edit refused here would be lost or
    misplaced without a word: the model would not write it (:data:`NOT_WRITTEN`; a title where the script read back
    has no header of hpcwidgets', see :class:`~hpcwidgets.spec.slurm.ScriptLayout`), or would write it somewhere it
    changes what runs (an image, or another runtime on the forms' Container switch ``container.runtime``, for a step
    that runs in a running instance). The command line (``--set``, options) and the forms' controls both ask, so an
    edit is refused alike wherever it is made. An empty value is never refused: it asks for nothing to be written."""
    if not value:
        return None
    kind = getattr(model, "kind", "")
    if (kind, path) in NOT_WRITTEN:
        return NOT_WRITTEN[kind, path]
    if (kind, path) == ("workflow", "title"):
        layout = getattr(getattr(model, "job", None), "layout", None)
        return HEADERLESS_TITLE if layout is not None and layout.intact and not layout.header else None
    if path == "container.image":
        return _leaves_instance(model, str(value))
    instance = _instance_of(model)
    if path == "container.runtime" and instance is not None and value not in ("apptainer", "singularity"):
        # the forms' Container switch (none, apptainer, charliecloud): another runtime cannot run in the instance
        name, step, started = instance
        instead = "no container here would run the step on the host" if value == "none" else \
            f"{value} here would run the step in a fresh container of its own"
        if not started:
            return (f"the step runs in the running instance {name} ({step}), and no line before the step starts it "
                    f"by that name ('… instance start … IMAGE {name}'): {instead}, outside that instance; to run the "
                    f"step another way, edit its line ({step}) and read the script again")
        return (f"the step runs in the running instance {name} ({step}), which its '{started} … IMAGE {name}' line "
                f"starts: {instead}, outside that instance (which would still be started and stopped, unused); to run "
                f"the step another way, edit the script's instance lines ({started}, {step}, instance stop) "
                f"together and read it again")
    return None


def moved_out_of_instance(before: Any, after: Any) -> str | None:
    """Why an edit that gives ``before`` a whole container layer anew (the command line's ``--container '…'``, ``''``
    for none, or ``--set container=…``), making ``after``, is refused: the step ran in a running instance and the new
    layer runs it elsewhere (on the host, in ch-run, in a fresh container of another image); :func:`refused_edit` says
    why in the words it uses for the same edit made field by field. None when the step stays in its instance or did
    not run in one."""
    old = getattr(before, "container", None)
    if not str(getattr(old, "image", "")).startswith("instance://"):
        return None
    new = getattr(after, "container", None)
    if new is None:
        return refused_edit(before, "container.runtime", "none")
    if getattr(new, "kind", "") != getattr(old, "kind", ""):
        return refused_edit(before, "container.runtime", str(new.kind).split(".")[0])
    return refused_edit(before, "container.image", str(new.image))


#: the program word of a line that starts an instance, as written (``apptainer``, ``singularity``, a path to either)
_INSTANCE_PROGRAM = r"(?<![^\s;&|(])((?:[^\s;&|()'\"]*/)?(?:apptainer|singularity))"


def _instance_of(model: Any) -> tuple[str, str, str] | None:
    """For a workflow whose step runs in a running instance (``apptainer exec instance://NAME``), the instance's
    name, the step's own command words (``apptainer run instance://srv``), those of the script's line that starts
    the instance (``apptainer instance start``, or ``instance run``, which also runs its runscript; "" when the lines
    before the step have none), so that a refusal quotes the commands the script uses. The line is the last that
    starts an instance of that name, quoted with the program it names, which may be the other name of the step's
    (``singularity instance start`` for an ``apptainer exec`` step). None for a step in no instance."""
    container = getattr(model, "container", None)
    image = str(getattr(container, "image", ""))
    if not image.startswith("instance://"):
        return None
    name, binary = image.removeprefix("instance://"), getattr(container, "binary", "apptainer")
    starts = re.compile(rf"{_INSTANCE_PROGRAM}\s+instance\s+(start|run)\s.*?(?<![\w.-]){re.escape(name)}(?![\w.-])")
    lines = (str(line) for line in getattr(getattr(model, "job", None), "setup", ()))
    found = None
    for line in lines:  # the last one before the step, as lint reads it: the instance the step joins
        found = starts.search(line) or found
    started = f"{found.group(1)} instance {found.group(2)}" if found else ""
    return name, f"{binary} {getattr(container, 'action', 'exec')} {image}", started


def _leaves_instance(model: Any, image: str) -> str | None:
    """Why ``image`` is refused for a workflow whose step runs in a running instance (:func:`_instance_of`): the
    step would run in a fresh container of that image, outside the instance, which is still started from its old
    image (and stopped, and served from, as before). The image to change is the one on the line that starts the
    instance. None for any other container or image."""
    instance = _instance_of(model)
    if instance is None or image.startswith("instance://"):
        return None
    name, step, started = instance
    if not started:
        return (f"the step runs in the running instance {name} ({step}), and no line before the step starts it by "
                f"that name ('… instance start … IMAGE {name}'): an image here would run the step in a fresh container "
                f"of {image} instead, outside that instance; to change the instance's image, change it where the "
                f"instance is started")
    return (f"the step runs in the running instance {name} ({step}), whose image is the one its '{started} … IMAGE "
            f"{name}' line names: an image here would run the step in a fresh container of {image} instead, outside "
            f"that instance (which is still started from its own image, with the options given there, such as --nv); "
            f"to change the image, change it on that {started} line")


def make_container(runtime: str, image: str, binds: Iterable[Bind] = (), **fields: Any) -> Any:
    """An empty-command container model for ``runtime`` (apptainer, singularity or charliecloud)."""
    if runtime == "charliecloud":
        return ChRun(image=image, binds=tuple(binds), **fields)
    if runtime in ("apptainer", "singularity"):
        return ApptainerRun(binary=runtime, action="exec", image=image, binds=tuple(binds), **fields)
    raise ValueError(f"unknown container runtime {runtime!r}; use one of: {', '.join(RUNTIMES)}")


def _job(job: SlurmJob | None, fields: dict[str, Any]) -> SlurmJob:
    base = job if job is not None else SlurmJob()
    valid = [f.name for f in SlurmJob.field_specs()]
    for name in fields:
        if name not in valid:
            raise UnknownFieldError("SlurmJob", name, valid)
    return base.replace(**fields) if fields else base


def _bad_name(name: str) -> bool:
    """Whether ``name`` cannot be a swept variable: the renderer writes it into the script as code."""
    return not isinstance(name, str) or not _SHELL_NAME.fullmatch(name) or name == HEAD_NODE_VAR


def _name_problem(field: str, name: str) -> Problem:
    return Problem(field, f"{name!r}: use a lower-case shell name such as lr or seed "
                          f"(not {HEAD_NODE_VAR}; upper-case names are the environment's)")


def grid_picks(axes: Sequence[tuple[str, Sequence[Any]]]) -> list[str]:
    """The lines that give each variable of a grid its value by the task id, the first varying fastest:
    ``lr=${lr_values[SLURM_ARRAY_TASK_ID % 3]}``, ``batch_size=${batch_size_values[SLURM_ARRAY_TASK_ID / 3 % 2]}``
    (bash evaluates an indexed array's subscript as arithmetic). The renderer writes them; the reader knows a
    grid by them."""
    out, stride = [], 1
    for name, values in axes:
        by = f" / {stride}" if stride > 1 else ""
        out.append(f"{name}=${{{name}_values[SLURM_ARRAY_TASK_ID{by} % {len(values)}]}}")
        stride *= len(values)
    return out


@dataclass(frozen=True)
class SweepAxis(Spec):
    """One more variable of a grid sweep: the array tasks run every combination of its values with the others'."""

    kind = "sweep.axis"

    name: str = opt(label="Variable", role="internal", placeholder="batch_size",
                    help="A lower-case shell variable set from its values by $SLURM_ARRAY_TASK_ID; refer to it as "
                         "$NAME in the program's arguments.")
    values: tuple[str, ...] = opt((), label="Values", role="internal", placeholder="32 64",
                                  help="Every value this variable takes, each combined with every value of the others.")

    @property
    def array(self) -> str:
        """The shell array holding the values (``batch_size`` → ``batch_size_values``)."""
        return f"{self.name}_values"

    def to_token(self) -> str:
        """``batch_size: 32 64``, as a form's line holds it (a value with a blank or a quote in quotes)."""
        return f"{self.name}: " + " ".join(shlex.quote(str(v)) for v in self.values)

    @classmethod
    def from_token(cls, text: str) -> "SweepAxis":
        """The variable of a line ``NAME: value value …`` (values split like shell words). A line without the
        colon is kept as a name with no values, which :meth:`problems` then explains."""
        name, colon, values = str(text).partition(":")
        try:
            words = tuple(shlex.split(values)) if colon else ()
        except ValueError:
            words = (values.strip(),)
        return cls(name.strip(), words)

    def _check(self) -> list[Problem]:
        out = []
        if _bad_name(self.name):
            out.append(_name_problem("name", self.name))
        if not self.values:
            out.append(Problem("values", f"list the values of {self.name or 'this variable'} after a colon, "
                                         f"e.g. {self.name or 'batch_size'}: 32 64"))
        return out


@dataclass(frozen=True)
class Workflow(Spec):
    """A Slurm job whose step runs a program, optionally under srun, in a container, via torchrun."""

    kind = "workflow"

    title: str = opt("", label="Title", role="internal", placeholder="Train on 2 nodes",
                     help="A one-line description written at the top of the script.")
    job: SlurmJob = opt(SlurmJob(), label="Slurm job", role="internal",
                        help="Resources (#SBATCH directives), modules, exported variables and set-up lines.")
    srun: Srun | None = opt(None, label="Job step (srun)", role="internal", placeholder="srun --ntasks-per-node=1",
                            help="Launch the step with srun (needed on several nodes); empty: it runs in the batch shell.")
    container: ApptainerRun | ChRun | None = opt(
        None, label="Container", role="internal", placeholder="apptainer exec --nv image.sif",
        help="Run the step inside an Apptainer or Charliecloud image; its command is filled in from the launcher or program.")
    launcher: Torchrun | None = opt(None, label="Launcher (torchrun)", role="internal",
                                    placeholder="torchrun --standalone --nproc-per-node=gpu train.py",
                                    help="Start one worker per GPU with torchrun; empty: run the program directly.")
    program: tuple[str, ...] = opt((), label="Program", role="internal", placeholder="python train.py --epochs 10",
                                   help="What runs when there is no launcher: the program and its arguments, one word each.")
    prepare: tuple[ApptainerPull | ApptainerBuild | ChImagePull | ChImageBuild | ChImageImport | ChConvert | ChFromhost, ...] = opt(
        (), label="Preparation", role="internal", placeholder="apptainer pull image.sif docker://pytorch/pytorch",
        help="Commands run first in the batch shell, e.g. pull the image only if it is missing.")
    exports: tuple[EnvVar, ...] = opt((), label="Step variables", role="internal",
                                      help="Variables exported before the step, e.g. APPTAINERENV_OMP_NUM_THREADS=1 or "
                                           "APPTAINER_CACHEDIR=$SCRATCH/.apptainer.")
    after: tuple[str, ...] = opt((), label="Lines after the step", role="internal", advanced=True,
                                 placeholder='cp -r "$OUTPUT" "$HOME/results/"',
                                 help="Shell lines run after the step, written as they are (e.g. copy results back). "
                                      "A script read back keeps its own lines here.")
    sweep_name: str = opt("", label="Swept variable", role="internal", placeholder="lr",
                          help="For job arrays: a shell variable set from the list below by $SLURM_ARRAY_TASK_ID; "
                               "refer to it as $NAME in the program's arguments.")
    sweep_values: tuple[str, ...] = opt((), label="Swept values", role="internal", placeholder="0.1 0.03 0.01",
                                        help="One value per array task, in task-id order (task 0 takes the first).")
    sweep_grid: tuple[SweepAxis, ...] = opt(
        (), label="Further swept variables", role="internal", placeholder="batch_size: 32 64",
        help="For a grid: more variables, each with its values; the array runs every combination, the swept "
             "variable above varying fastest (task 0: every first value; task 1: its second value).")

    def describe(self) -> str:
        name = self.title or self.job.job_name if isinstance(self.job, SlurmJob) else self.title
        return f"workflow {name}" if name else "workflow"

    # -- structure ---------------------------------------------------------------------------
    def layers(self) -> tuple[Spec, ...]:
        """The command layers present, outermost first (srun, container, launcher)."""
        return tuple(x for x in (self.srun, self.container, self.launcher) if x is not None)

    def runs_something(self) -> bool:
        """True when the innermost layer has something to run."""
        return bool(self.launcher or self.program or (self.container is not None and self._container_runs_alone()))

    def _runs_own_lines(self) -> bool:
        """True when the script's own lines run commands: a script read back whose work the model cannot
        hold as a step (a pipeline, a loop) keeps it there, and that is not "nothing to run"."""
        lines = (*getattr(self.job, "setup", ()), *self.after) if isinstance(self.job, SlurmJob) else self.after
        return any(str(line).strip() and not str(line).lstrip().startswith("#") for line in lines)

    def _container_runs_alone(self) -> bool:
        c = self.container
        if isinstance(c, ApptainerRun):
            return bool(c.command) or c.action in ("run", "shell", "test")
        return bool(getattr(c, "command", ()))

    @property
    def sweep_array(self) -> str:
        """The shell array holding the swept values (``lr`` → ``lr_values``)."""
        return f"{self.sweep_name}_values" if self.sweep_name else ""

    @property
    def sweep_size(self) -> int:
        """How many array tasks the sweep needs: the product of every swept variable's number of values."""
        return len(self.sweep_values) * math.prod(len(a.values) for a in self.sweep_grid if isinstance(a, SweepAxis))

    # -- validation ----------------------------------------------------------------------------
    def problems(self) -> list[Problem]:
        out = super().problems()
        if self.container is not None and not getattr(self.container, "command", ()) and (self.launcher or self.program):
            # the empty command is filled in from the launcher/program when the step is composed
            out = [p for p in out if p.field != "container.command"]
        return out

    def _check(self) -> list[Problem]:
        out: list[Problem] = []
        job = self.job
        if not isinstance(job, SlurmJob):
            return out  # the generic type check already said so
        container, srun, launcher, program, exports = _LAYERS(self)
        names = [*map(_NAME, filter(_is_envvar, exports))]
        seen = {*map(_NAME, filter(_is_envvar, job.env))}
        if len({*names, *seen}) < len(names) + len(seen):  # a name exported twice (the sets are built in C)
            for name in sorted({n for i, n in enumerate(names) if n in seen or n in names[:i]}):
                out.append(Problem("exports", f"{name} is exported more than once; keep one value"))
        if container is not None and not isinstance(container, CONTAINERS):
            out.append(Problem("container", f"expected an ApptainerRun or ChRun, got {type(container).__name__}"))
            return out
        if not _PREPARE.issuperset(map(type, self.prepare)):  # the usual steps are of the models' own classes
            for item in self.prepare:
                if not isinstance(item, PREPARE):
                    names = ", ".join(c.__name__ for c in PREPARE)
                    out.append(Problem("prepare", f"{type(item).__name__} cannot be a preparation step; use one of {names}"))
        if launcher is not None and program:
            out.append(Problem("program", "both a launcher and a program are set; the launcher runs the training script, "
                                          "so move the program's script and arguments into the launcher, or remove the launcher"))
        command = container.command if container is not None else ()
        if command and str(command[0]).startswith("-"):
            # apptainer exec says so among its own problems (container.command)
            if not (container.kind == "apptainer.run" and container.action == "exec"):
                out.append(Problem("container.command", f"{command[0]} comes after the image, so it is passed to the "
                                                        "program, not to the container runtime; put it before the image "
                                                        f"(… {command[0]} IMAGE)"))
        elif command and (launcher is not None or program):
            what = "launcher" if launcher is not None else "program"
            out.append(Problem("container.command", f"the container has its own command and a {what} is set too; "
                                                    f"the {what} becomes the container's command: clear container.command"))
        if isinstance(srun, Srun) and srun.command:
            out.append(Problem("srun.command", "in a workflow srun launches the container, launcher or program; "
                                               "clear srun.command and set those instead"))
        if isinstance(container, ApptainerRun) \
                and container.action in ("shell", "test") and (launcher is not None or program):
            out.append(Problem("container.action", f"apptainer {container.action} runs no command; use exec"))
        # a launcher or a program always runs something: the finer reading is for a workflow with neither
        if not (launcher or program) and not self.runs_something() and not self._runs_own_lines():
            if container is not None:
                out.append(Problem("program", "the container has nothing to run: set a launcher (torchrun) or a program "
                                              "such as python train.py"))
            else:
                out.append(Problem("program", "nothing to run: set a program (e.g. python train.py), a launcher or a container"))
        if isinstance(launcher, Torchrun) and isinstance(srun, Srun):
            out += self._launch_problems(launcher, srun, job)
        if isinstance(srun, Srun) and program and "SLURM_" in "".join(map(str, program)):
            out += _per_task_problems(tuple(program))
        # no sweep: none of the sweep's checks applies
        sweep = self._sweep_problems() if self.sweep_name or self.sweep_values or self.sweep_grid else []
        out += sweep
        if not sweep and not (self.sweep_grid and
                              any(not isinstance(a, SweepAxis) or a.problems() for a in self.sweep_grid)):
            out += self._unset_problems()  # a broken sweep is reported as such, not as its unset variables
        return out

    def _unset_problems(self) -> list[Problem]:
        """A lower-case ``$name`` in the step that nothing in the script sets: under ``set -u`` the job stops there
        (unbound variable), e.g. after a sweep was switched off but ``--lr "$lr"`` stayed."""
        if self.job.fail_fast != "strict":
            return []
        found = [(field, m) for field, text in self._step_texts() for m in _LOWER_REF.finditer(text)]
        if not found:
            return []
        setup = "\n".join(str(line) for line in self.job.setup)
        if _OPAQUE_SETUP.search(setup):
            return []  # a sourced file or eval may set anything
        known = {self.sweep_name, *(a.name for a in self.sweep_grid if isinstance(a, SweepAxis)),
                 *(e.name for e in (*self.exports, *self.job.env) if isinstance(e, EnvVar))}
        if self.launcher is not None and self.launcher.uses_head_node:
            known.add(HEAD_NODE_VAR)
        out = []
        for field, m in found:
            name = m.group(1) or m.group(2)
            if name in known or re.search(rf"(?:\b{name}=|\bfor\s+{name}\b|\bread\b[^\n;]*\b{name}\b)", setup):
                continue
            known.add(name)  # once per name
            out.append(Problem(field, f"nothing in the script sets ${name}, so the job stops there (set -u: unbound "
                                      f"variable); set it in a set-up line ({name}=…), export it, or sweep it"))
        return out

    def _step_word_groups(self) -> list[tuple[str, Any]]:
        """The words the step passes on that may refer to variables, by field: the program, the launcher's
        script and arguments, the container's command, environment and binds, and the exported values."""
        groups: list[tuple[str, Any]] = [("program", self.program)]
        launcher, c = self.launcher, self.container
        if isinstance(launcher, Torchrun):
            groups.append(("launcher.args", (launcher.script, *launcher.args)))
        if c is not None:  # (each list is built in C: the values of the variables, the paths of the binds)
            groups.append(("container.command", getattr(c, "command", ()) or ()))
            groups.append(("container.env", [*map(_VALUE, filter(_is_envvar, getattr(c, "env", ()) or ()))]))
            groups.append(("container.binds", [*chain.from_iterable(map(_PATHS, filter(_is_bind, getattr(c, "binds", ()) or ())))]))
        groups.append(("exports", [*map(_VALUE, filter(_is_envvar, self.exports))]))
        return groups

    def _step_texts(self) -> Iterable[tuple[str, str]]:
        """The step's words that refer to lower-case variables, joined per field; a verbatim word read from a
        script is left to the script's own logic (it is looked for only when a field holds a reference at all)."""
        groups = self._step_word_groups()
        try:
            if not _LOWER_REF.search("\n".join(chain.from_iterable(map(_WORDS, groups)))):
                return  # the usual step: no word refers to a lower-case variable (one search, not one per field)
        except TypeError:
            pass  # a word of another type: the fields are read one by one below
        for field, words in groups:
            try:
                text = "\n".join(words)
            except TypeError:
                text = "\n".join(w for w in words if isinstance(w, str))  # the generic check reports the rest
            if "$" in text and _LOWER_REF.search(text):
                yield field, "\n".join(w for w in words if w.__class__ is str)

    def _launchers_own_gpus(self) -> bool:
        """Each torchrun launcher sees GPUs of its own: --gpus-per-task (srun's, else the job's) binds each task's
        GPUs to it (--gpu-bind=per_task, unless another binding is given), and the launcher starts no more workers
        than those GPUs, so launchers on one node never share one."""
        srun = self.srun
        own = gpu_total(srun.gpus_per_task) or gpu_total(self.job.gpus_per_task)
        if not own or not binds_per_task(srun.gpu_bind):
            return False
        nproc = str(self.launcher.nproc_per_node or "")
        return nproc in ("gpu", "auto") or (is_number(nproc) and int(nproc) <= own)

    def _launch_problems(self, launcher: Torchrun, srun: Srun, job: SlurmJob) -> list[Problem]:
        """torchrun started by srun: its --nnodes against the nodes srun starts one launcher on, several launchers per
        node, and a node rank the batch shell expands once (lint's HPC101 and HPC502 for a script; here so that a
        workflow never renders them)."""
        out: list[Problem] = []
        own = srun.ntasks_per_node is not None
        per_node = srun.ntasks_per_node if own else job.ntasks_per_node  # srun inherits the job's
        inherited = self._inherited_tasks(srun, job)
        if inherited:
            # srun -n wins over --ntasks-per-node, and srun reads the job's SLURM_NTASKS as its -n
            field = "job.ntasks" if isinstance(job.ntasks, int) else "job.ntasks_per_node"
            out.append(Problem(field, f"srun takes the job's task count (SLURM_NTASKS={inherited}) as its --ntasks, "
                                      "which wins over its own --ntasks-per-node=1, so it starts several torchrun "
                                      "launchers on each node on the same GPUs; set the job's --ntasks-per-node=1 "
                                      "(torchrun starts one worker per GPU)"))
        elif per_node in (None, 1):
            # one launcher per node (several are lint's HPC101/HPC112); a task count places them otherwise
            if not launcher.standalone and srun.ntasks is None and job.ntasks is None:
                out += self._node_count_problems(launcher, srun, job)
        elif isinstance(per_node, int) and per_node > 1 and srun.ntasks is None and not self._launchers_own_gpus():
            field, whose, taken = ("srun.ntasks_per_node", "", "") if own else \
                ("job.ntasks_per_node", "the job's ", " (it takes the job's --ntasks-per-node)")
            out.append(Problem(field, f"srun starts {per_node} torchrun launchers on each node{taken} and each starts "
                                      f"its own workers on the same GPUs; use {whose}--ntasks-per-node=1 (torchrun "
                                      "starts one worker per GPU)"))
        found = _PER_TASK_REF.search(str(launcher.node_rank)) if launcher.node_rank else None
        if found:
            out.append(Problem("launcher.node_rank", f"--node-rank={launcher.node_rank}: the batch shell expands "
                                                     f"${found.group(1)} once, before srun starts the tasks, so every "
                                                     "node gets rank 0; leave --node-rank empty and use the c10d "
                                                     "rendezvous, which numbers the nodes itself"))
        return out

    @staticmethod
    def _inherited_tasks(srun: Srun, job: SlurmJob) -> int:
        """The job's task count when srun, asking for one task per node but no --ntasks, takes it as its own and so
        starts more than one task on some node; 0 otherwise (also when the counts are not plain numbers)."""
        nodes = job.nodes
        if srun.ntasks_per_node != 1 or srun.ntasks is not None or srun.nodes is not None or nodes.__class__ is not int:
            return 0
        per_node = job.ntasks_per_node
        tasks = job.ntasks if job.ntasks.__class__ is int else \
            per_node * nodes if per_node.__class__ is int else 0
        return tasks if tasks > nodes else 0

    def _node_count_problems(self, launcher: Torchrun, srun: Srun, job: SlurmJob) -> list[Problem]:
        """torchrun's --nnodes against the nodes srun starts one launcher on, one per node (a job changed to 3 nodes
        that keeps --nnodes=2 hangs or rejects a launcher)."""
        nodes = job.nodes
        if srun.nodes is None and nodes.__class__ is int and launcher.nnodes == str(nodes):
            return []  # the usual launch: --nnodes is the job's node count, written as a number
        if any(str(d).strip() in HETJOB_SEPARATORS for d in job.extra_directives):
            return []  # a heterogeneous job: the model holds its first component's nodes only
        nnodes = launcher.nnodes_int if isinstance(launcher.nnodes, str) else None
        span = (srun.nodes, srun.nodes) if isinstance(srun.nodes, int) else node_range(nodes)
        if not str(launcher.nnodes).strip() and span is not None and span[0] > 1 and srun.ntasks is None \
                and not launcher.options_out_of_sight:
            count = span[0] if span[0] == span[1] else "$SLURM_NNODES"
            return [Problem("launcher.nnodes", f"torchrun has no --nnodes, so it takes 1, but srun starts it on each of "
                                               f"the job's {nodes} nodes: each node trains alone; set --nnodes={count} "
                                               "and the c10d rendezvous at the head node ($head_node:29500)")]
        if nnodes is not None and span is not None and span[0] < span[1] and span[0] >= 1 and srun.ntasks is None \
                and str(launcher.nnodes).strip().isdigit():
            return [Problem("launcher.nnodes", f"torchrun --nnodes={launcher.nnodes} is fixed, but the job asks for "
                                               f"{span[0]}-{span[1]} nodes and srun starts one launcher on each node "
                                               "it gets; use --nnodes=$SLURM_NNODES, the count the job got")]
        if nnodes is None or span is None or span[0] <= nnodes <= span[1] or span[0] < 1:
            return []  # (a node count below 1 is the job's own problem: advice built on it would mislead)
        nodes = span[0] if span[0] == span[1] else f"{span[0]}-{span[1]}"
        return [Problem("launcher.nnodes", f"torchrun --nnodes={launcher.nnodes} but srun starts one launcher on each of "
                                           f"the job's {nodes} nodes: the rendezvous "
                                           f"{'waits forever' if nnodes > span[1] else 'rejects the extra launchers'}; "
                                           + (f"use --nnodes={span[0]} (or $SLURM_NNODES, which follows the job)"
                                              if span[0] == span[1] else "use --nnodes=$SLURM_NNODES, which follows the job"))]

    def _sweep_problems(self) -> list[Problem]:
        if self.sweep_grid:
            return self._grid_problems()
        out: list[Problem] = []
        if not self.sweep_name:
            if self.sweep_values:
                out.append(Problem("sweep_name", "name the swept variable (e.g. lr) so the program can use $lr"))
            return out
        if _bad_name(self.sweep_name):
            out.append(_name_problem("sweep_name", self.sweep_name))
        if not self.sweep_values:
            out.append(Problem("sweep_values", "list one value per array task, e.g. 0.1 0.03 0.01"))
            return out
        if not self.job.array:
            out.append(Problem("job.array", f"a sweep over {len(self.sweep_values)} values needs a job array: "
                                            f"--array=0-{len(self.sweep_values) - 1}"))
            return out
        ids = array_task_ids(self.job.array)
        if ids is None:
            return out  # the job reports the malformed spec
        if not self._sweep_is_used(self.sweep_name):
            out.append(Problem("sweep_name", f"nothing in the step uses ${self.sweep_name}, so every array task runs "
                                             f"the same thing; pass it to the program (e.g. --{self.sweep_name} "
                                             f"\"${self.sweep_name}\") or remove the sweep"))
        if ids and max(ids) >= len(self.sweep_values):
            out.append(Problem("job.array", f"array task {max(ids)} has no value: there are {len(self.sweep_values)} "
                                            f"values (tasks 0-{len(self.sweep_values) - 1}); "
                                            f"use --array=0-{len(self.sweep_values) - 1} or add values"))
        return out

    def _grid_problems(self) -> list[Problem]:
        """A grid: the first variable is ``sweep_name``, the others are ``sweep_grid``; task i runs combination i."""
        if not self.sweep_name:
            return [Problem("sweep_name", "a grid starts from the swept variable: set sweep_name and sweep_values "
                                          "(e.g. lr with 0.1 0.01), or move the first of sweep_grid there")]
        axes = [a for a in self.sweep_grid if isinstance(a, SweepAxis)]  # others: the generic check said so
        out: list[Problem] = []
        if _bad_name(self.sweep_name):
            out.append(_name_problem("sweep_name", self.sweep_name))
        if not self.sweep_values:
            out.append(Problem("sweep_values", f"list the values of {self.sweep_name}, e.g. 0.1 0.03 0.01"))
        out += self._grid_name_problems(axes)
        if out or len(axes) < len(self.sweep_grid) or any(_bad_name(a.name) or not a.values for a in axes):
            return out  # the axes' own checks report their names and values
        total = self.sweep_size
        sizes = " × ".join(str(n) for n in (len(self.sweep_values), *(len(a.values) for a in axes)))
        names = " × ".join((self.sweep_name, *(a.name for a in axes)))
        if not self.job.array:
            return [Problem("job.array", f"a grid of {total} combinations ({names}: {sizes}) needs a job array: "
                                         f"--array=0-{total - 1}")]
        ids = array_task_ids(self.job.array)
        if ids is None:
            return out  # the job reports the malformed spec
        # tasks past the last combination run earlier ones again (the picks wrap around); a rerun of some
        # combinations (--array=3,4 after those two failed) runs each once and is fine, as with one swept variable
        again = sorted({i for i in ids if i >= total})
        if again:
            throttle = self.job.array[self.job.array.index("%"):] if "%" in self.job.array else ""
            many = len(again) > 1
            shown = ", ".join(map(str, again[:4])) + (", …" if len(again) > 4 else "")
            repeated = ", ".join(map(str, [i % total for i in again][:4])) + (", …" if len(again) > 4 else "")
            out.append(Problem("job.array", f"--array={self.job.array} does not run each of the {total} combinations "
                                            f"({names}: {sizes}) once: task i takes combination i, so "
                                            f"task{'s' if many else ''} {shown} run{'' if many else 's'} "
                                            f"combination{'s' if many else ''} {repeated} again; "
                                            f"use --array=0-{total - 1}{throttle}"))
        for field, name in (("sweep_name", self.sweep_name), *(("sweep_grid", a.name) for a in axes)):
            if not self._sweep_is_used(name):
                out.append(Problem(field, f"nothing in the step uses ${name}, so tasks that differ only in {name} run "
                                          f"the same thing; pass it to the program (e.g. --{name} \"${name}\") "
                                          "or remove it from the grid"))
        return out

    def _grid_name_problems(self, axes: list[SweepAxis]) -> list[Problem]:
        """Names that clash: a variable swept twice, or one named like another's list of values
        (``lr_values`` would overwrite the list ``lr`` picks from)."""
        names = [self.sweep_name, *(a.name for a in axes)]
        out = []
        for name in sorted({n for i, n in enumerate(names) if n in names[:i]}):
            out.append(Problem("sweep_grid", f"{name} is swept more than once; give each variable its own name "
                                             "(or put all its values in one list)"))
        for name in names:
            if f"{name}_values" in names:
                out.append(Problem("sweep_grid", f"{name}_values is the list that holds the values of {name}; "
                                                 f"give the variable {name}_values another name"))
        return out

    def _sweep_is_used(self, name: str) -> bool:
        """Whether the swept variable ``name`` reaches the step: a reference in its words (a bind too), an exported
        value, or the job's own lines."""
        name = re.escape(name)
        ref = re.compile(rf"\$(?:{name}(?![A-Za-z0-9_])|\{{{name}[}}:#%/^,@\[-])")
        words = [w for _, group in self._step_word_groups() for w in group] + [*self.after, *self.job.setup]
        return any(ref.search(str(w)) for w in words)

    # -- constructors ----------------------------------------------------------------------------
    @classmethod
    def single_node(cls, script: str, args: Sequence[str] = (), *, container: Any = None, image: str = "",
                    runtime: str = "apptainer", binds: Iterable[Bind] = (), gpus_per_node: int = 0,
                    gpu_vendor: str = "nvidia", torchrun: bool | None = None, nproc_per_node: int | None = None,
                    python: str = "python", use_srun: bool = False, pass_cpus_per_task: bool = True,
                    title: str = "", prepare: Iterable[Any] = (), exports: Iterable[EnvVar] = (),
                    job: SlurmJob | None = None, **job_fields: Any) -> "Workflow":
        """One node: ``python SCRIPT ARGS`` (one GPU or none) or ``torchrun --standalone`` (several GPUs).

        ``container`` is a template (an ``ApptainerRun``/``ChRun`` without a command), or give ``image``
        (with ``runtime`` and ``binds``). GPUs are requested per node and the container gets ``--nv``
        (NVIDIA) or ``--rocm`` (AMD). ``job_fields`` are :class:`SlurmJob` fields (``partition``, ``time``…).
        """
        gpus = int(gpus_per_node or 0)
        slurm = _job(job, {"nodes": 1, **job_fields, **({"gpus_per_node": gpus} if gpus else {})})
        use_torchrun = gpus > 1 if torchrun is None else torchrun
        launcher = program = None
        if use_torchrun:
            launcher = Torchrun.single_node(nproc_per_node or gpus or 1, script, tuple(args))
            slurm = slurm if slurm.ntasks_per_node or slurm.ntasks else slurm.replace(ntasks_per_node=1)
        else:
            program = (python, script, *args)
        srun = None
        if use_srun:
            srun = Srun(ntasks=1, cpus_per_task=slurm.cpus_per_task if pass_cpus_per_task else None)
        box = container if container is not None else (make_container(runtime, image, binds) if image else None)
        if box is not None:
            box = with_gpus(box, gpus, gpu_vendor)
        return cls(title=title, job=slurm, srun=srun, container=box, launcher=launcher, program=program or (),
                   prepare=tuple(prepare), exports=tuple(exports))

    @classmethod
    def multi_node(cls, script: str, args: Sequence[str] = (), *, nodes: int, gpus_per_node: int = 0,
                   nproc_per_node: int | None = None, container: Any = None, image: str = "", runtime: str = "apptainer",
                   binds: Iterable[Bind] = (), gpu_vendor: str = "nvidia", port: int = DEFAULT_RDZV_PORT,
                   pass_cpus_per_task: bool = True, title: str = "", prepare: Iterable[Any] = (),
                   exports: Iterable[EnvVar] = (), job: SlurmJob | None = None, **job_fields: Any) -> "Workflow":
        """The correct multi-node torchrun pattern.

        One srun task per node (``--ntasks-per-node=1`` on the job and on srun), each starting one
        torchrun that runs ``--nproc-per-node`` = GPUs per node workers; the c10d rendezvous at
        ``$head_node:29500`` (resolved on the host before the step) with ``--rdzv-id=$SLURM_JOB_ID``.
        ``cpus_per_task`` (all the CPUs torchrun's workers share on a node) is passed to srun again
        because srun of Slurm 22.05–23.02 does not inherit it (``pass_cpus_per_task=False`` to omit).
        """
        gpus = int(gpus_per_node or 0)
        fields = {"nodes": nodes, "ntasks_per_node": 1, **job_fields}
        if gpus:
            fields["gpus_per_node"] = gpus
        slurm = _job(job, fields)
        srun = Srun(ntasks_per_node=1, cpus_per_task=slurm.cpus_per_task if pass_cpus_per_task else None)
        launcher = Torchrun.multi_node(nodes, nproc_per_node or gpus or 1, script, tuple(args), port=port)
        box = container if container is not None else (make_container(runtime, image, binds) if image else None)
        if box is not None:
            box = with_gpus(box, gpus, gpu_vendor)
        return cls(title=title, job=slurm, srun=srun, container=box, launcher=launcher,
                   prepare=tuple(prepare), exports=tuple(exports))

    @classmethod
    def sweep(cls, name: str, values: Sequence[str], script: str, args: Sequence[str] = (), *, flag: str = "",
              max_parallel: int | None = None, **single_node: Any) -> "Workflow":
        """A job array where task *i* runs the single-node workflow with ``--NAME values[i]``.

        The batch script sets ``NAME=${NAME_values[$SLURM_ARRAY_TASK_ID]}`` on the host, and the
        program receives ``--NAME "$NAME"`` (``flag`` overrides the option's spelling).
        """
        return cls.grid([(name, values)], script, args, flags={name: flag} if flag else None,
                        max_parallel=max_parallel, **single_node)

    @classmethod
    def grid(cls, axes: Mapping[str, Sequence[Any]] | Sequence[tuple[str, Sequence[Any]]], script: str,
             args: Sequence[str] = (), *, flags: Mapping[str, str] | None = None, max_parallel: int | None = None,
             **single_node: Any) -> "Workflow":
        """A job array running every combination of several variables' values, one combination per task.

        ``axes`` are (name, values) pairs in order, e.g. ``{"lr": [0.1, 0.01], "batch_size": [32, 64]}``: the
        first varies fastest (task 0: lr=0.1 batch_size=32, task 1: lr=0.01 batch_size=32, task 2: lr=0.1
        batch_size=64…). The array is ``--array=0-(product - 1)`` and the program receives ``--NAME "$NAME"``
        for each variable (``flags`` maps a name to another spelling of its option).
        """
        items = axes.items() if isinstance(axes, Mapping) else axes
        pairs = [(str(name), tuple(str(v) for v in values)) for name, values in items]
        if not pairs:
            raise ValueError("a sweep needs at least one variable and its values, e.g. {'lr': [0.1, 0.01]}")
        flags = flags or {}
        options = [w for name, _ in pairs for w in (flags.get(name) or f"--{name.replace('_', '-')}", f"${name}")]
        total = math.prod(len(values) for _, values in pairs)
        single_node.setdefault("output", "%x-%A_%a.out")
        array = f"0-{max(total - 1, 0)}" + (f"%{max_parallel}" if max_parallel else "")
        wf = cls.single_node(script, (*args, *options), array=array, **single_node)
        (name, values), rest = pairs[0], pairs[1:]
        return wf.replace(sweep_name=name, sweep_values=values,
                          sweep_grid=tuple(SweepAxis(n, vals) for n, vals in rest))
