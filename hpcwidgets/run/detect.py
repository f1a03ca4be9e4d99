"""Build a cluster profile from a live Slurm (``scontrol show partition`` / ``scontrol show node`` / ``sinfo``, and
the QOS limits from ``sacctmgr show qos`` where the site keeps accounting) or from those commands' output saved in a
folder (:func:`detect_from_saved`).

The commands run here (argv lists, timeouts); reading their text is done by pure functions
(:func:`parse_scontrol`, :func:`expand_hostlist`, :func:`parse_gres`, :func:`parse_sacctmgr_qos`,
:func:`profile_from_scontrol`)
that the tests feed with captured output. What Slurm cannot tell (scratch paths, module names, the
GPU vendor) keeps the model's defaults or a guess: review the result before sharing it, e.g.::

    python -m hpcwidgets.run.detect --name mysite -o ~/.config/hpcwidgets/profiles/mysite.toml
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping

from ..errors import ProfileError, RunError
from ..spec.profile import (AMD_GPU_TYPE, CPU_ARCHES, INTEL_GPU_TYPE, ClusterProfile, Partition, Qos, arch_name,
                             best_partitions, gpu_type_vendor, is_mig_type)
from ..spec.units import format_mem, parse_time

__all__ = ["detect_from_saved", "detect_profile", "expand_hostlist", "guess_gpu_vendor", "gpus_per_node",
           "login_host_name", "node_memory", "parse_gres", "parse_sacctmgr_qos", "parse_scontrol", "profile_from_scontrol", "real_host_name", "runtimes_from_programs",
           "scheduler_version_from", "mpi_default_from", "main"]

# --all: also the partitions that are hidden (Hidden=YES) or closed to the user's groups, and their nodes; without
# it a profile detected by one user lacks every other lab's partition, and lint calls those unknown
PARTITIONS_ARGV = ("scontrol", "--all", "--oneliner", "show", "partition")
NODES_ARGV = ("scontrol", "--all", "--oneliner", "show", "node")
VERSION_ARGV = ("sinfo", "--version")
CONFIG_ARGV = ("scontrol", "show", "config")
# -nP: no header, fields joined by "|" with none at the end; the limits a profile's [[qos]] holds, and the flags that
# let a QOS go past a partition's limits (sacctmgr(1), QOS format options)
QOS_ARGV = ("sacctmgr", "--noheader", "--parsable2", "show", "qos",
            "format=Name,MaxWall,MaxTRESPerJob,MinTRESPerJob,Flags")
#: the files :func:`detect_from_saved` reads, each the output of one command run on the cluster
SAVED_FILES = (("partitions.txt", PARTITIONS_ARGV), ("nodes.txt", NODES_ARGV), ("config.txt", CONFIG_ARGV),
               ("qos.txt", QOS_ARGV))
#: QOS flags that let a job go past its partition's MaxTime, MaxNodes or MinNodes, or put the QOS's limits before
#: a partition QOS's (resource_limits.html); profiles do not model them, so detection notes them
_PAST_PARTITION_FLAGS = ("PartitionTimeLimit", "PartitionMaxNodes", "PartitionMinNodes", "OverPartQOS")
RUNTIME_PROGRAMS = {"apptainer": "apptainer", "singularity": "singularity", "ch-run": "charliecloud"}

# A key starts a record field when it follows whitespace (or the start): values such as
# CfgTRES=cpu=2,mem=3900M carry '=' after commas, and OS=Linux 6.1 #1 SMP … carries spaces.
_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z][A-Za-z0-9_]*)=")
_UNSET = ("", "(null)", "NONE", "N/A", "n/a")


# ------------------------------------------------------------------------------------------------
# pure parsing
# ------------------------------------------------------------------------------------------------
def parse_scontrol(text: str, record_key: str) -> list[dict[str, str]]:
    """Records of ``scontrol show …`` output (multi-line or ``--oneliner``) as dicts of strings.

    A record starts at each ``record_key=`` (``PartitionName`` or ``NodeName``); values keep inner
    spaces (``OS=Linux 6.1.0 #1 SMP …``) and trailing whitespace is dropped.
    """
    records: list[dict[str, str]] = []
    matches = list(_KEY.finditer(text))
    current: dict[str, str] | None = None
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        key, value = m.group(1), text[m.end():end].strip()
        if key == record_key:
            current = {}
            records.append(current)
        if current is not None:
            current[key] = value
    return records


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets/parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def expand_hostlist(text: str) -> list[str]:
    """Slurm host-list notation to names: ``n[1-2],gpu[01-03,07]`` → n1, n2, gpu01, gpu02, gpu03, gpu07.

    Zero padding is kept (``[01-03]``) and several bracket groups multiply (``r[1-2]n[1-2]``).
    Raises ``ValueError`` for an unbalanced bracket or a range that runs backwards.
    """
    if text.strip() in _UNSET:
        return []
    names: list[str] = []
    for item in _split_top(text.strip()):
        names += _expand_one(item)
    return names


def _expand_one(item: str) -> list[str]:
    m = re.search(r"\[([^\[\]]*)\]", item)
    if not m:
        if "[" in item or "]" in item:
            raise ValueError(f"unbalanced brackets in host list {item!r}")
        return [item]
    head, tail = item[:m.start()], item[m.end():]
    out: list[str] = []
    for piece in m.group(1).split(","):
        piece = piece.strip()
        lo, _, hi = piece.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"{piece!r} in host list {item!r} is not a number or a range like 01-04")
        if not hi:
            numbers = [lo]
        else:
            if int(hi) < int(lo):
                raise ValueError(f"range {piece!r} in host list {item!r} runs backwards")
            width = len(lo)
            numbers = [str(n).zfill(width) for n in range(int(lo), int(hi) + 1)]
        for number in numbers:
            out += _expand_one(f"{head}{number}{tail}")
    return out


def parse_gres(text: str) -> dict[str, int]:
    """GPUs per type in a node's ``Gres=`` value; the type is "" when the gres names none.

    ``gpu:a100:4(S:0-1)`` → {"a100": 4}; ``gpu:2`` → {"": 2}; ``gpu:a100:2,gpu:v100:2`` → both;
    other resources (``shard:8``, ``mps:100``) and ``(null)`` are ignored.
    """
    out: dict[str, int] = {}
    if text.strip() in _UNSET:
        return out
    for item in _split_top(text):
        item = re.sub(r"\(.*\)$", "", item)          # socket affinity (S:0-1), index lists
        parts = item.split(":")
        if parts[0] != "gpu":
            continue
        if len(parts) == 1:
            gpu_type, count = "", "1"
        elif len(parts) == 2:
            gpu_type, count = ("", parts[1]) if parts[1].isdigit() else (parts[1], "1")
        else:
            gpu_type, count = parts[1], parts[2]
        m = re.match(r"\d+", count)
        if m:
            out[gpu_type] = out.get(gpu_type, 0) + int(m.group())
    return out


def guess_gpu_vendor(gpu_types: Iterable[str], has_gpus: bool, features: Iterable[str] = ()) -> str:
    """The GPU vendor the gres type names suggest (:func:`~hpcwidgets.spec.profile.gpu_type_vendor`: LUMI's
    ``mi250`` is ``amd``, TAMU's ``pvc`` ``intel``, ``a100`` ``nvidia``; a name it does not know counts as
    ``nvidia``, the common case), ``mixed`` when the types name more than one vendor, ``none`` without GPUs.
    Untyped GPUs are ``amd`` or ``intel`` when a node feature names such a GPU (``mi250``, ``rocm``; ``pvc``),
    else ``nvidia``. A guess: Slurm does not report the vendor (:func:`vendor_is_named` says when it is only one)."""
    types = [t for t in gpu_types if t]
    if not has_gpus:
        return "none"
    if types:
        vendors = {gpu_type_vendor(t) or "nvidia" for t in types}
        return vendors.pop() if len(vendors) == 1 else "mixed"
    return _feature_vendor(features) or "nvidia"


def _feature_vendor(features: Iterable[str]) -> str:
    """``amd`` or ``intel`` when a node feature names such a GPU; "" otherwise. Features are checked only for these
    two: CPU features (``intel``, ``skylake``, ``k8s``) look like too many things, so ``intel`` alone does not count."""
    features = list(features)
    if any(AMD_GPU_TYPE.fullmatch(f) or f.lower() == "rocm" for f in features):
        return "amd"
    if any(INTEL_GPU_TYPE.fullmatch(f) and not f.lower().startswith("intel") for f in features):
        return "intel"
    return ""


def vendor_is_named(gpu_types: Iterable[str], features: Iterable[str] = ()) -> bool:
    """Whether the vendor :func:`guess_gpu_vendor` gives rests on names it knows: every GPU type names its vendor,
    or, for untyped GPUs, a node feature does. False means the vendor is the ``nvidia`` fallback."""
    types = [t for t in gpu_types if t]
    if types:
        return all(gpu_type_vendor(t) for t in types)
    return bool(_feature_vendor(features))


def parse_tres(text: str) -> dict[str, str]:
    """A TRES list as sacctmgr prints it, ``cpu=64,gres/gpu=8,node=2`` → {"cpu": "64", "gres/gpu": "8", "node": "2"};
    {} for an empty one."""
    pairs = (item.partition("=") for item in _split_top(text) if "=" in item)
    return {key.strip().lower(): value.strip() for key, _, value in pairs}


def parse_sacctmgr_qos(text: str, notes: list[str] | None = None) -> tuple[Qos, ...]:
    """The QOS in ``sacctmgr -nP show qos format=Name,MaxWall,MaxTRESPerJob,MinTRESPerJob,Flags`` output
    (:data:`QOS_ARGV`), each with its MaxWall and the nodes and GPUs (``gres/gpu``, not a typed ``gres/gpu:a100``)
    of its per-job TRES limits. A QOS whose flags let jobs past a partition's limits, which profiles do not model, is
    noted in ``notes``, as is a line that is not five fields."""
    notes = notes if notes is not None else []
    found: list[Qos] = []
    odd: list[str] = []
    past: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 or not fields[0].strip():
            odd.append(line.strip())
            continue
        name, wall, most, least, flags = (f.strip() for f in fields)
        most_tres, least_tres = parse_tres(most), parse_tres(least)
        found.append(Qos(name=name, max_time=_time(wall), max_nodes=_int(most_tres.get("node")) or None,
                         min_nodes=_int(least_tres.get("node")) or None,
                         max_gpus=_int(most_tres.get("gres/gpu")) or None))
        shown = [f for f in _PAST_PARTITION_FLAGS if f.lower() in flags.lower().split(",")]
        if shown:
            past.append(f"{name} ({', '.join(shown)})")
    if odd:
        notes.append(f"sacctmgr lines not read as Name|MaxWall|MaxTRES|MinTRES|Flags: {'; '.join(odd[:3])}")
    if past:
        notes.append(f"QOS {', '.join(past)} may let jobs go past their partition's limits, which the profile does "
                     "not model: the profile check still holds such jobs to the partition's max_time and max_nodes")
    return tuple(found)


def scheduler_version_from(text: str) -> str:
    """``22.05`` from ``slurm 22.05.8`` (``sinfo --version``); "" when no version is found."""
    m = re.search(r"(\d+)\.(\d+)(?:\.\d+)?", text)
    return f"{int(m.group(1))}.{m.group(2)}" if m else ""


def mpi_default_from(text: str) -> str:
    """``pmix`` from ``MpiDefault = pmix`` in ``scontrol show config`` output; "" when it is not there or names no
    MPI plugin srun has (the profile then checks nothing against it)."""
    from ..spec.profile import MPI_PLUGIN
    value = _config_value(text, "MpiDefault")
    return value if MPI_PLUGIN.fullmatch(value) else ""


def _config_value(text: str, key: str) -> str:
    """The value of ``key`` in ``scontrol show config`` output (``SLURM_VERSION = 23.11.4``); "" when absent."""
    m = re.search(rf"^{key}\s*=\s*(\S+)", text, re.MULTILINE)
    return m.group(1) if m else ""


def _int(value: str | None) -> int | None:
    if value is None or not re.fullmatch(r"\d+", value.strip()):
        return None  # UNLIMITED, NONE, (null), …
    return int(value)


def _time(value: str | None) -> str:
    if value is None or value.strip() in _UNSET:
        return ""
    value = value.strip()
    try:
        parse_time(value)
    except ValueError:
        return ""
    return value


def _smallest(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def node_memory(record: Mapping[str, str]) -> int | None:
    """MiB a job can get on a node: RealMemory less MemSpecLimit (memory slurm.conf reserves for the system,
    never allocated to jobs). None when unknown: RealMemory 1 (or 0) is Slurm's default when memory is not
    configured, and such a node grants no --mem at all."""
    real = _int(record.get("RealMemory"))
    if real is None or real <= 1:
        return None
    usable = real - (_int(record.get("MemSpecLimit")) or 0)
    return usable if usable > 0 else None


def gpus_per_node(nodes_gres: Iterable[Mapping[str, int]]) -> int:
    """GPUs per node of a partition: the most full GPUs (all types of one node together) any one node has, never
    summed over different nodes. MIG slices are parts of a GPU, not GPUs: they count only in a partition that has
    no full GPUs (a node with 4 B200 and 12 slices is a 4-GPU node; a partition of A100 nodes with 3 each and one
    node cut into 21 slices has 3 per node, and gpus_per_type says 21 for the slice type)."""
    nodes_gres = list(nodes_gres)
    full = max((sum(n for t, n in g.items() if not is_mig_type(t)) for g in nodes_gres), default=0)
    return full or max((sum(g.values()) for g in nodes_gres), default=0)


def _largest(rec: Mapping[str, str], cpus: list[int | None], mems: list[int | None]) -> tuple[int | None, int | None]:
    """CPUs and MiB of the largest of some nodes of the partition ``rec`` (each the most any of them has), lowered
    to the partition's MaxCPUsPerNode / MaxMemPerNode; None when none of them says."""
    most_cpus = max((c for c in cpus if c), default=None)
    most_mem = max((m for m in mems if m), default=None)
    most_cpus = _smallest(most_cpus, _int(rec.get("MaxCPUsPerNode"))) if most_cpus else None
    mem_cap = _int(rec.get("MaxMemPerNode"))
    most_mem = _smallest(most_mem, mem_cap if mem_cap else None) if most_mem else None
    return most_cpus, most_mem


def _record_sizes(rec: Mapping[str, str]) -> tuple[int | None, int | None]:
    """CPUs and MiB per node from the partition record alone, for a partition whose node records are missing:
    TotalCPUs / TotalNodes (the average node; only when it divides evenly) capped by MaxCPUsPerNode, and
    MaxMemPerNode (more than that no job gets on a node)."""
    total_cpus, total_nodes = _int(rec.get("TotalCPUs")), _int(rec.get("TotalNodes"))
    average = total_cpus // total_nodes if total_cpus and total_nodes and total_cpus % total_nodes == 0 else None
    cpus = _smallest(average, _int(rec.get("MaxCPUsPerNode"))) if average else None
    return cpus, _int(rec.get("MaxMemPerNode")) or None


def _access(rec: Mapping[str, str]) -> tuple[list[str], tuple[str, ...]]:
    """Who may use a partition: what closes it to some users (AllowAccounts, AllowGroups other than ALL; Hidden=YES)
    as words for its description, and the QOS a job may use there (AllowQos; empty for ALL). AllowQos does not close
    the partition: every user may run there, with one of those QOS."""
    closed = [f"{key}={rec[key]}" for key in ("AllowAccounts", "AllowGroups")
              if rec.get(key, "ALL").strip().upper() not in ("ALL", *_UNSET)]
    if rec.get("Hidden", "NO").strip().upper() == "YES":
        closed.append("hidden (Hidden=YES)")
    qos = rec.get("AllowQos", "ALL").strip()
    allowed = () if qos.upper() in ("ALL", *_UNSET) else tuple(dict.fromkeys(_split_top(qos)))
    return closed, allowed


#: the memory a job gets per CPU or per GPU when it asks for none, and the most per CPU: the partition field and
#: Slurm's key (in a partition record, DefMemPerGPU is one of its JobDefaults)
_MEM_KEYS = (("def_mem_per_cpu", "DefMemPerCPU"), ("max_mem_per_cpu", "MaxMemPerCPU"),
             ("def_mem_per_gpu", "DefMemPerGPU"))


def _mem_per_cpu_or_gpu(rec: Mapping[str, str], config_text: str) -> dict[str, str]:
    """The partition's DefMemPerCPU, MaxMemPerCPU and DefMemPerGPU (MB) as Slurm sizes, each from its record, else
    the cluster's from ``scontrol show config`` text. A partition that sets a default or limit per node
    (DefMemPerNode=32000, MaxMemPerNode=…) does not take the cluster's per-CPU one: each pair is mutually
    exclusive (slurm.conf(5)). The default per node is kept too (``def_mem_per_node``): the partition's
    DefMemPerNode, else, for a partition that sets no default per CPU either, the cluster's. UNLIMITED and 0 mean
    none."""
    job_defaults = dict(item.partition("=")[::2] for item in _split_top(rec.get("JobDefaults", "")))
    per_node = {"DefMemPerCPU": "DefMemPerNode", "MaxMemPerCPU": "MaxMemPerNode"}
    out: dict[str, str] = {}
    for field, key in _MEM_KEYS:
        own = _int(rec.get(key)) or _int(job_defaults.get(key))
        if own is None and not _int(rec.get(per_node.get(key, ""))):
            own = _int(_config_value(config_text, key))
        if own:
            out[field] = format_mem(own)
    node_default = _int(rec.get("DefMemPerNode"))
    if not node_default and "def_mem_per_cpu" not in out:
        node_default = _int(_config_value(config_text, "DefMemPerNode"))
    if node_default and "def_mem_per_cpu" not in out:
        out["def_mem_per_node"] = format_mem(node_default)
    return out


def _threads_per_core(records: list[dict[str, str]]) -> int | None:
    """The ThreadsPerCore the partition's node records agree on (``scontrol show node``: 2 where hyper-threading is
    on); None when none says it or they differ (a job's CPUs per core would then depend on its node)."""
    found = {_int(r.get("ThreadsPerCore")) for r in records}
    return found.pop() if len(found) == 1 and None not in found else None


def _node_arches(records: list[dict[str, str]]) -> list[str]:
    """The CPU architectures the node records say (``Arch=``, as Slurm names them: x86_64, aarch64, ppc64le), each
    once, sorted; a node that has not registered yet (``Arch=(null)``) says none."""
    found = {r.get("Arch", "").strip() for r in records}
    return sorted(a for a in found if a and a not in _UNSET)


def _cpu_arch(records: list[dict[str, str]]) -> str:
    """The CPU architecture every node record of a partition says (Slurm's Arch=, one the profile knows); "" when
    they differ, none says it, or it is one the profile does not model (s390x)."""
    found = {arch_name(a) or a for a in _node_arches(records)}
    arch = found.pop() if len(found) == 1 else ""
    return arch if arch in CPU_ARCHES else ""


def _job_defaults(text: str) -> dict[str, str]:
    """The pairs of a ``JobDefaults`` value as scontrol prints it (``DefCpuPerGPU=8,DefMemPerGPU=40960``; ``(null)``
    when none are set), keyed in lower case since slurm.conf matches them in any case."""
    return {key.strip().lower(): value.strip() for key, _, value in
            (item.partition("=") for item in _split_top(text) if "=" in item)}


def _def_cpus_per_gpu(rec: Mapping[str, str], config_text: str) -> int | None:
    """The partition's DefCpuPerGPU (one of its JobDefaults), else the cluster's from ``scontrol show config`` text
    (its own JobDefaults line, or a line of its own); None when neither sets one."""
    own = _int(_job_defaults(rec.get("JobDefaults", "")).get("defcpupergpu"))
    cluster = _job_defaults(_config_value(config_text, "JobDefaults")).get("defcpupergpu") \
        or _config_value(config_text, "DefCpuPerGPU")
    return own or _int(cluster) or None


def _whole_nodes(rec: Mapping[str, str]) -> bool:
    """Whether the partition gives every job whole nodes: ``OverSubscribe=EXCLUSIVE`` (``Shared=EXCLUSIVE`` before
    Slurm 15.08), which scontrol prints for a partition whose jobs never share a node."""
    return (rec.get("OverSubscribe") or rec.get("Shared") or "").strip().upper() == "EXCLUSIVE"


def _partition(rec: Mapping[str, str], records: list[dict[str, str]],
               config_text: str = "") -> tuple[Partition, list[str]]:
    """The partition of one ``PartitionName=`` record and its nodes' records, and the GPU node features
    (``config_text``: ``scontrol show config``, for the cluster's memory per CPU)."""
    cpus = [_int(r.get("CPUEfctv")) or _int(r.get("CPUTot")) for r in records]
    threads = _threads_per_core(records)
    mems = [node_memory(r) for r in records]
    gres = [parse_gres(r.get("Gres", "")) for r in records]
    max_cpus, max_mem = _largest(rec, cpus, mems) if records else _record_sizes(rec)
    total_nodes = _int(rec.get("TotalNodes")) or (len(records) or None)
    gpus = gpus_per_node(gres)
    per_type: dict[str, int] = {}
    for g in gres:
        for t, n in g.items():
            if t:
                per_type[t] = max(per_type.get(t, 0), n)
    with_gpus = [r for r, g in zip(records, gres) if g]
    features = [f for r in with_gpus for f in _split_top(r.get("AvailableFeatures", "")) if f not in _UNSET]
    state = rec.get("State", "UP").upper()
    closed, allowed_qos = _access(rec)
    notes = list(closed)
    if threads is None and len({r.get("ThreadsPerCore") for r in records if r.get("ThreadsPerCore")}) > 1:
        notes.append("its nodes differ in threads per core (ThreadsPerCore), so threads_per_core is left out")
    arches = _node_arches(records)
    if len(arches) > 1:
        notes.append(f"its nodes differ in CPU architecture (Arch= {', '.join(arches)}), so cpu_arch is left out")
    if state != "UP":
        notes.append(f"State={state}")
    whole_nodes = _whole_nodes(rec)
    if whole_nodes:
        notes.append("whole nodes only (OverSubscribe=EXCLUSIVE)")
    gpu_nodes = len(with_gpus) if gpus and len(with_gpus) < len(records) else None
    gpu_cpus = gpu_mem = None
    if gpu_nodes:
        notes.append(f"{gpu_nodes} of its {len(records)} nodes have GPUs")
        gpu_cpus, gpu_mem = _largest(rec, [c for c, g in zip(cpus, gres) if g], [m for m, g in zip(mems, gres) if g])
        gpu_cpus = gpu_cpus if gpu_cpus and max_cpus and gpu_cpus < max_cpus else None
        gpu_mem = gpu_mem if gpu_mem and max_mem and gpu_mem < max_mem else None
        size = [f"{gpu_cpus} CPUs" if gpu_cpus else "", format_mem(gpu_mem) if gpu_mem else ""]
        if any(size):
            notes.append(f"its GPU nodes have at most {' and '.join(w for w in size if w)}")
    part = Partition(
        name=rec["PartitionName"],
        description="; ".join(notes),
        max_time=_time(rec.get("MaxTime")),
        default_time=_time(rec.get("DefaultTime")),
        max_nodes=_smallest(_int(rec.get("MaxNodes")), total_nodes),
        cpus_per_node=max_cpus,
        threads_per_core=threads,
        cpu_arch=_cpu_arch(records),
        mem_per_node=format_mem(max_mem) if max_mem else "",
        gpus_per_node=gpus,
        gpu_types=tuple(sorted(per_type)),
        gpus_per_type=tuple(f"{t}:{n}" for t, n in sorted(per_type.items()) if n != gpus),
        gpu_nodes=gpu_nodes,
        gpu_node_cpus=gpu_cpus,
        gpu_node_mem=format_mem(gpu_mem) if gpu_mem else "",
        state="" if state == "UP" else state if state in ("DOWN", "DRAIN", "INACTIVE") else "",
        allowed_qos=allowed_qos,
        restricted=bool(closed),
        is_default=rec.get("Default", "NO").upper() == "YES",
        whole_nodes=whole_nodes,
        def_cpus_per_gpu=_def_cpus_per_gpu(rec, config_text) if gpus else None,
        **_mem_per_cpu_or_gpu(rec, config_text),
    )
    return part, features


def _default_gpu(partitions: list[Partition], default: str, notes: list[str]) -> str:
    """The partition the GPU examples use: Slurm's default when it has GPUs and suits production work, else the
    best GPU partition (:func:`best_partitions`: UP, open to all, not a test partition, only GPU nodes, the
    longest time limit, then the most nodes). A choice that is none of these is noted."""
    gpu_parts = [p for p in partitions if p.has_gpus]
    if not gpu_parts:
        return ""
    slurm_default = next((p for p in gpu_parts if p.name == default), None)
    if slurm_default is not None and slurm_default.for_production and slurm_default.gpu_nodes is None:
        return slurm_default.name
    best = best_partitions(gpu_parts)[0]
    if not best.for_production or best.gpu_nodes is not None:
        why = best.description or "its name says it is for tests or development"
        notes.append(f"no GPU partition is UP, open to all and meant for production work; default_gpu_partition = "
                     f"{best.name!r} ({why}): check it, or set the partition your users should use")
    return best.name


def _vendors(partitions: list[Partition], default_gpu: str, features: dict[str, list[str]],
             notes: list[str]) -> tuple[str, list[Partition]]:
    """The profile's GPU vendor, and the partitions with their own vendor where the partitions differ (a site with
    NVIDIA and AMD partitions: each GPU partition then says its vendor)."""
    found = {p.name: guess_gpu_vendor(p.gpu_types, p.has_gpus, features.get(p.name, ())) for p in partitions
             if p.has_gpus}
    guessed = [f"{p.name} ({', '.join(p.gpu_types) or 'no GPU type'})" for p in partitions
               if p.has_gpus and not vendor_is_named(p.gpu_types, features.get(p.name, ()))]
    if guessed:
        notes.append(f"the GPU vendor of {', '.join(guessed)} is a guess (nvidia): Slurm does not report it, and no "
                     "GPU type name or node feature says it; set gpu_vendor to nvidia, amd or intel")
    kinds = set(found.values())
    if not kinds:
        return "none", partitions
    if len(kinds) == 1 and "mixed" not in kinds:
        return kinds.pop(), partitions
    plain = [v for v in found.values() if v != "mixed"]
    main = found.get(default_gpu, "mixed")
    if main == "mixed":
        main = max(plain, key=plain.count) if plain else "nvidia"
    notes.append("the GPU vendor differs by partition (" + ", ".join(f"{n}: {v}" for n, v in found.items())
                 + "): each GPU partition's gpu_vendor says which; check them")
    return main, [p.replace(gpu_vendor=found[p.name]) if p.name in found else p for p in partitions]


def _arches(partitions: list[Partition], mixed: list[str], notes: list[str]) -> tuple[str, list[Partition]]:
    """The profile's CPU architecture, and the partitions with their own where they differ: when every partition
    whose nodes say one says the same (and none mixes architectures) the profile's, and the partitions' left empty;
    else none for the profile and each partition keeps its own (a partition whose nodes differ has none)."""
    found = {p.name: p.cpu_arch for p in partitions if p.cpu_arch}
    kinds = set(found.values())
    if len(kinds) == 1 and not mixed:
        return kinds.pop(), [p.replace(cpu_arch="") for p in partitions]
    if len(kinds) > 1:
        notes.append("the CPU architecture differs by partition (" + ", ".join(f"{n}: {a}" for n, a in found.items())
                     + "): each partition's cpu_arch says which, and the profile names none")
    return "", partitions


def profile_from_scontrol(partitions_text: str, nodes_text: str, *, name: str = "detected",
                          version_text: str = "", config_text: str = "", qos_text: str = "", login_host: str = "",
                          runtimes: tuple[str, ...] = ("apptainer",), runtimes_render_only: tuple[str, ...] = (),
                          apptainer_binary: str = "apptainer", notes: list[str] | None = None) -> ClusterProfile:
    """A profile from ``scontrol show partition`` and ``scontrol show node`` text (pure).

    Per partition: the time limits, the node limit (MaxNodes, never more than the partition's nodes), its State,
    whether AllowAccounts/AllowGroups or Hidden=YES restrict it, and the QOS AllowQos lets jobs use (``allowed_qos``);
    node sizes as docs/profiles.md states them (from the partition record alone when no node record names it): CPUs
    and memory of the largest node (memory less MemSpecLimit, unknown when RealMemory is 1), lowered by
    MaxCPUsPerNode / MaxMemPerNode; the threads per core its nodes agree on (ThreadsPerCore; left out, with a note,
    where they differ); the memory a job gets per CPU, per node or per GPU when it asks for none and the most per
    CPU (DefMemPerCPU, DefMemPerNode, DefMemPerGPU in JobDefaults, MaxMemPerCPU; the cluster's from ``config_text``
    for a partition that sets none), and for a GPU partition the CPUs per GPU a job gets when it asks for none
    (DefCpuPerGPU in JobDefaults, else the cluster's); ``whole_nodes`` for OverSubscribe=EXCLUSIVE (a site's limit of CPUs per GPU is
    not a Slurm setting, so ``max_cpus_per_gpu`` stays empty); where a partition also has nodes without GPUs and its
    GPU nodes are smaller, ``gpu_node_cpus``/``gpu_node_mem`` the size of its largest GPU node (capped the same way); GPUs per node those
    of the node with the most full GPUs (MIG slices count on nodes that have nothing else), never summed over
    different nodes; ``gpus_per_type`` the most of each type one node has, where that differs. The GPU vendor
    cannot be read from Slurm: it is guessed per partition from the gres type names (:func:`guess_gpu_vendor`);
    check it. ``default_gpu_partition`` is chosen by :func:`_default_gpu`. The QOS and their per-job limits come
    from ``qos_text`` (:func:`parse_sacctmgr_qos`; none without it). What needs a person's review is appended to
    ``notes`` as sentences. Raises :class:`ProfileError` when the text holds no partition.
    """
    notes = notes if notes is not None else []
    part_records = parse_scontrol(partitions_text, "PartitionName")
    if not part_records:
        raise ProfileError("the scontrol output holds no PartitionName= records; run `scontrol show partition` "
                           "and check that Slurm is reachable (SLURM_CONF) and has partitions")
    nodes = {r["NodeName"]: r for r in parse_scontrol(nodes_text, "NodeName")}
    members: dict[str, list[str]] = {}
    for node_name, record in nodes.items():
        for part in _split_top(record.get("Partitions", "")):
            members.setdefault(part, []).append(node_name)

    partitions: list[Partition] = []
    features: dict[str, list[str]] = {}
    unsized: list[str] = []
    mixed: list[str] = []  # partitions whose nodes differ in CPU architecture
    for rec in part_records:
        pname = rec["PartitionName"]
        try:
            listed = expand_hostlist(rec.get("Nodes", ""))
        except ValueError as exc:
            raise ProfileError(f"partition {pname}: {exc}") from None
        names = list(dict.fromkeys(listed + members.get(pname, [])))
        records = [nodes[n] for n in names if n in nodes]
        part, features[pname] = _partition(rec, records, config_text)
        partitions.append(part)
        if len(_node_arches(records)) > 1:
            mixed.append(pname)
        if not records:
            unsized.append(pname)
    if unsized:
        notes.append(f"no node records for {', '.join(unsized)} (is the scontrol show node output missing?): their "
                     "GPUs are unknown, CPUs per node are TotalCPUs / TotalNodes (the average node) and memory is "
                     "MaxMemPerNode; check them")
    default = next((p.name for p in partitions if p.is_default), "")
    default_gpu = _default_gpu(partitions, default, notes)
    vendor, partitions = _vendors(partitions, default_gpu, features, notes)
    cpu_arch, partitions = _arches(partitions, mixed, notes)
    return ClusterProfile(
        name=name,
        description="Detected from Slurm: review the paths, modules, example settings and GPU vendor, "
                    "which Slurm does not report.",
        login_host=login_host,
        scheduler_version=scheduler_version_from(version_text or _config_value(config_text, "SLURM_VERSION")),
        mpi_default=mpi_default_from(config_text),
        runtimes=runtimes,
        runtimes_render_only=runtimes_render_only,
        apptainer_binary=apptainer_binary,
        gpu_vendor=vendor,
        cpu_arch=cpu_arch,
        default_partition=default,
        default_gpu_partition=default_gpu,
        partitions=tuple(partitions),
        qos=parse_sacctmgr_qos(qos_text, notes),
    )


def runtimes_from_programs(found: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """``(runtimes, runtimes_render_only, apptainer_binary)`` from the runtime programs found on PATH.

    ``apptainer`` (which also installs a ``singularity`` link) wins over ``singularity``; with no
    runtime found, Apptainer is listed as render-only so commands can still be shown.
    """
    found = set(found)
    runtimes: list[str] = []
    binary = "apptainer"
    if "apptainer" in found:
        runtimes.append("apptainer")
    elif "singularity" in found:
        runtimes.append("singularity")
        binary = "singularity"
    if "ch-run" in found:
        runtimes.append("charliecloud")
    if not runtimes:
        return ("apptainer",), ("apptainer",), binary
    return tuple(runtimes), (), binary


# ------------------------------------------------------------------------------------------------
# side effects
# ------------------------------------------------------------------------------------------------
# (subprocess, socket and shutil are imported where they are used: the CLI reads this module's help text at
# start-up, for every command)
def _run(argv: list[str], env: Mapping[str, str] | None, timeout: float) -> str:
    import subprocess

    from .practice_cluster import client_env  # SLURM_CONF of the practice cluster when none is set

    full_env = client_env({**os.environ, **(env or {})})
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env, check=False)
    except FileNotFoundError:
        raise RunError(f"{argv[0]} is not installed or not on PATH; run this on a login node of the cluster "
                       f"(or install slurm-client)", argv) from None
    except subprocess.TimeoutExpired:
        raise RunError(f"{' '.join(argv)} did not answer within {timeout:g} s; check that slurmctld is running "
                       f"and SLURM_CONF points at the cluster's slurm.conf", argv) from None
    if proc.returncode != 0:
        raise RunError(f"{' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}",
                       argv, proc.returncode, proc.stderr)
    return proc.stdout


def real_host_name(name: str) -> str:
    """``name`` when it names a host others can reach; "" for localhost, localhost.localdomain, ip6-localhost and
    loopback addresses (127.*, ::1), which is what ``socket.getfqdn()`` answers on a host whose /etc/hosts lists
    its name after localhost."""
    name = name.strip().rstrip(".")
    lowered = name.lower()
    if not name or lowered.split(".")[0] in ("localhost", "ip6-localhost", "ip6-loopback") \
            or lowered.startswith("127.") or lowered in ("::1", "0.0.0.0"):
        return ""
    return name


def login_host_name(fqdn: Callable[[], str] | None = None, hostname: Callable[[], str] | None = None) -> str:
    """This machine's name for the profile's login_host: the fully qualified name (``fqdn``, default
    ``socket.getfqdn``), else the host name (``hostname``, default ``socket.gethostname``) when that is a loopback
    name, else "" (then detection says how to set it)."""
    import socket
    return real_host_name((fqdn or socket.getfqdn)()) or real_host_name((hostname or socket.gethostname)())


def detect_profile(name: str = "detected", *, env: Mapping[str, str] | None = None, timeout: float = 30.0,
                   runner: Callable[[list[str]], str] | None = None,
                   which: Callable[[str], str | None] | None = None,
                   login_host: Callable[[], str] = login_host_name, notes: list[str] | None = None) -> ClusterProfile:
    """Build a profile from the Slurm this machine talks to.

    ``env`` adds variables for the Slurm commands (e.g. ``{"SLURM_CONF": "/path/slurm.conf"}``);
    ``runner``, ``which`` and ``login_host`` replace running a command, looking up a program and naming this
    host (for tests). What needs a person's review is appended to ``notes`` (see :func:`profile_from_scontrol`).
    Raises :class:`RunError` when a Slurm command is missing, fails or times out.
    """
    notes = notes if notes is not None else []
    run = runner or (lambda argv: _run(argv, env, timeout))
    partitions_text = run(list(PARTITIONS_ARGV))
    nodes_text = run(list(NODES_ARGV))
    version_text = run(list(VERSION_ARGV))
    config_text = run(list(CONFIG_ARGV))
    qos_text = _read_qos(run, notes)
    if which is None:
        import shutil
        path = (env or {}).get("PATH", os.environ.get("PATH", ""))
        which = lambda program: shutil.which(program, path=path)  # noqa: E731
    runtimes, render_only, binary = runtimes_from_programs(p for p in RUNTIME_PROGRAMS if which(p))
    host = login_host()
    if not host:
        notes.append("this machine has no host name other than localhost: set login_host in the profile to the "
                     "host your users ssh to (the Jupyter job's tunnel command names it)")
    return profile_from_scontrol(partitions_text, nodes_text, name=name, version_text=version_text,
                                 config_text=config_text, qos_text=qos_text, login_host=host, runtimes=runtimes,
                                 runtimes_render_only=render_only,
                                 apptainer_binary=binary, notes=notes)


def _read_qos(run: Callable[[list[str]], str], notes: list[str]) -> str:
    """``sacctmgr show qos`` output (:data:`QOS_ARGV`), or "" with a note where sacctmgr cannot answer: a cluster
    without an accounting database (the practice cluster has none) or without sacctmgr. Detection carries on: the
    profile then lists no QOS, and QOS limits are not checked."""
    try:
        return run(list(QOS_ARGV))
    except RunError as exc:
        reason = str(exc).splitlines()[0]
        notes.append(f"the QOS limits were not read ({reason}), so the profile lists no [[qos]]; where the site's QOS "
                     "limit jobs (MaxWall, nodes, GPUs), add them by hand (docs/profiles.md, QOS)")
        return ""


def saved_commands(sep: str = "\n") -> str:
    """The commands that save what :func:`detect_from_saved` reads, as a person types them, joined by ``sep``."""
    return sep.join(f"{' '.join(argv)} > {file_name}" for file_name, argv in SAVED_FILES)


#: the --from-dir option's help (``hpcwidgets profile detect`` and ``python -m hpcwidgets.run.detect``)
FROM_DIR_HELP = ("read Slurm output saved on the cluster from DIR instead of running Slurm here: "
                 + ", ".join(file_name for file_name, _ in SAVED_FILES) + " (only partitions.txt is needed), saved with: "
                 + saved_commands("; "))


def detect_from_saved(folder: str | os.PathLike[str], name: str = "detected", *,
                      notes: list[str] | None = None) -> ClusterProfile:
    """A profile from Slurm output saved on the cluster into ``folder`` (:data:`SAVED_FILES`: a colleague's
    output, or a docs page's), so detection needs no access to the cluster. ``partitions.txt`` is needed; without
    ``nodes.txt`` node sizes come from the partition records, without ``config.txt`` mpi_default and the Slurm
    version stay empty, without ``qos.txt`` the profile lists no QOS (each said in ``notes``). The runtimes and the login host are the cluster's login shell's
    business, which no saved output shows: they keep the defaults and a note says to set them. Raises
    :class:`ProfileError` for a folder or partitions.txt that is missing or unreadable."""
    notes = notes if notes is not None else []
    where = Path(os.fspath(folder)).expanduser()
    if not where.is_dir():
        raise ProfileError(f"{where} is not a folder; give the folder holding partitions.txt (and nodes.txt, "
                           f"config.txt), saved on the cluster with:\n{saved_commands()}")
    texts: dict[str, str] = {}
    for file_name, _ in SAVED_FILES:
        try:
            texts[file_name] = (where / file_name).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            texts[file_name] = ""
        except OSError as exc:
            raise ProfileError(f"cannot read {where / file_name}: {(exc.strerror or str(exc)).lower()}") from None
    if not texts["partitions.txt"].strip():
        raise ProfileError(f"{where} has no partitions.txt (or it is empty); save it on the cluster with:\n"
                           f"{saved_commands()}")
    if not texts["config.txt"].strip():
        notes.append(f"{where} has no config.txt: mpi_default and scheduler_version stay empty; save "
                     f"`{' '.join(CONFIG_ARGV)} > config.txt` on the cluster to fill them")
    if not texts["qos.txt"].strip():
        notes.append(f"{where} has no qos.txt: the profile lists no QOS limits; save `{' '.join(QOS_ARGV)} > qos.txt` "
                     "on the cluster (where it has an accounting database) to fill them")
    notes.append("saved Slurm output does not show the container runtimes or the login host: set runtimes "
                 "(runtimes = [\"singularity\"] and apptainer_binary = \"singularity\" on a site without Apptainer) "
                 "and login_host")
    return profile_from_scontrol(texts["partitions.txt"], texts["nodes.txt"], name=name,
                                 config_text=texts["config.txt"], qos_text=texts["qos.txt"], notes=notes)


def main(argv: list[str] | None = None) -> int:
    """``python -m hpcwidgets.run.detect [--name NAME] [--from-dir DIR] [-o FILE] [--force]``: print or save the
    TOML."""
    from ..errors import HpcWidgetsError
    from ..profiles import profile_to_toml, save_profile

    parser = argparse.ArgumentParser(prog="python -m hpcwidgets.run.detect",
                                     description="Build a cluster profile from the Slurm this machine talks to.")
    parser.add_argument("--name", default="detected", help="profile name (default: detected)")
    parser.add_argument("-o", "--output", help="write the TOML to this file instead of printing it")
    parser.add_argument("--force", action="store_true", help="replace the output file if it exists")
    parser.add_argument("--from-dir", metavar="DIR", help=FROM_DIR_HELP)
    args = parser.parse_args(argv)
    notes: list[str] = []
    try:
        if args.from_dir:
            profile = detect_from_saved(args.from_dir, args.name, notes=notes)
        else:
            profile = detect_profile(args.name, notes=notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if args.output:
            print(f"wrote {save_profile(profile, args.output, overwrite=args.force)}")
        else:
            sys.stdout.write(profile_to_toml(profile))
    except HpcWidgetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
