"""The GPU nodes' own size in a partition that mixes big CPU nodes with smaller GPU nodes.

A catch-all partition (``all``) of 20 CPU nodes with 128 CPUs / 1500G and 4 GPU nodes with 64 CPUs / 500G / 4 GPUs:
``cpus_per_node``/``mem_per_node`` are the largest node's, so without ``gpu_node_cpus``/``gpu_node_mem`` a GPU job
asking for 1500G passed the checks although no node has both, and Slurm left it pending for ever.
"""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.profiles import profile_from_toml, profile_to_toml
from hpcwidgets.run import detect
from hpcwidgets.spec.profile import check_job
from hpcwidgets.spec.slurm import SlurmJob


def partition_line(name: str, nodes: str, total: int, **extra: str) -> str:
    fields = {"PartitionName": name, "AllowGroups": "ALL", "AllowAccounts": "ALL", "AllowQos": "ALL",
              "Default": "YES", "MaxNodes": "UNLIMITED", "MaxTime": "2-00:00:00", "MaxCPUsPerNode": "UNLIMITED",
              "MaxMemPerNode": "UNLIMITED", "Nodes": nodes, "State": "UP", "TotalNodes": str(total), **extra}
    return " ".join(f"{k}={v}" for k, v in fields.items()) + "\n"


def node_lines(prefix: str, count: int, cpus: int, mem_mib: int, gres: str, partition: str = "all") -> str:
    return "".join(f"NodeName={prefix}{i:02d} Arch=x86_64 CPUAlloc=0 CPUEfctv={cpus} CPUTot={cpus} Gres={gres} "
                   f"RealMemory={mem_mib} AllocMem=0 State=IDLE Partitions={partition}\n" for i in range(1, count + 1))


CPU_NODES = node_lines("c", 20, 128, 1536000, "(null)")   # 1500G
GPU_NODES = node_lines("g", 4, 64, 512000, "gpu:a100:4")  # 500G
MIXED = (partition_line("all", "c[01-20],g[01-04]", 24), CPU_NODES + GPU_NODES)


def detected(partitions: str, nodes: str, notes: list[str] | None = None):
    return detect.profile_from_scontrol(partitions, nodes, name="mixed", login_host="login.example.org",
                                        notes=notes)


@pytest.fixture
def site():
    return detected(*MIXED)


def messages(site, **job) -> list[str]:
    return [f"{p.field}: {p.message}" for p in check_job(site, SlurmJob(partition="all", **job))]


# -- detection -----------------------------------------------------------------------------------------------
def test_detect_fills_the_gpu_nodes_size_of_a_mixed_partition(site):
    part = site.partition("all")
    assert (part.cpus_per_node, part.mem_per_node) == (128, "1500G")
    assert (part.gpu_node_cpus, part.gpu_node_mem, part.gpu_nodes) == (64, "500G", 4)
    assert "GPU nodes have at most 64 CPUs and 500G" in part.description
    assert site.problems() == []


def test_detect_caps_the_gpu_nodes_size_like_the_largest_node():
    parts = partition_line("all", "c[01-20],g[01-04]", 24, MaxCPUsPerNode="48", MaxMemPerNode="409600")
    part = detected(parts, CPU_NODES + GPU_NODES).partition("all")
    assert (part.cpus_per_node, part.mem_per_node) == (48, "400G")
    assert (part.gpu_node_cpus, part.gpu_node_mem) == (None, "")  # capped to the same size: nothing to add


def test_detect_leaves_the_fields_empty_when_gpu_nodes_are_not_smaller():
    all_gpu = detected(partition_line("gpu", "g[01-04]", 4), node_lines("g", 4, 64, 512000, "gpu:a100:4", "gpu"))
    cpu_only = detected(partition_line("cpu", "c[01-20]", 20), node_lines("c", 20, 128, 1536000, "(null)", "cpu"))
    as_big = detected(partition_line("all", "c[01-20],g[01-04]", 24),
                      CPU_NODES + node_lines("g", 4, 128, 1536000, "gpu:a100:4"))
    for part in (all_gpu.partition("gpu"), cpu_only.partition("cpu"), as_big.partition("all")):
        assert (part.gpu_node_cpus, part.gpu_node_mem) == (None, ""), part.name
    assert as_big.partition("all").gpu_nodes == 4


def test_detect_fills_only_the_smaller_of_cpus_and_memory():
    part = detected(partition_line("all", "c[01-20],g[01-04]", 24),
                    CPU_NODES + node_lines("g", 4, 128, 512000, "gpu:a100:4")).partition("all")
    assert (part.gpu_node_cpus, part.gpu_node_mem) == (None, "500G")


# -- the job checks -------------------------------------------------------------------------------------------
def test_gpu_job_over_the_gpu_nodes_memory_names_the_gpu_nodes(site):
    assert messages(site, gpus_per_node=4, mem="1500G") == [
        "mem: 1500G per node is more than the GPU nodes of partition all have (500G); ask for at most 500G"]
    assert messages(site, mem="1500G") == []  # the CPU nodes have it


@pytest.mark.parametrize("gpus", [{"gpus_per_node": 4}, {"gpus": 4}, {"gpus_per_task": 4, "ntasks": 1}])
def test_every_way_of_asking_for_gpus_gets_the_gpu_nodes(site, gpus):
    found = messages(site, cpus_per_task=128, **gpus)
    assert found and "but the GPU nodes of partition all have 64;" in found[0]
    assert messages(site, cpus_per_task=128) == []


def test_memory_per_cpu_and_per_gpu_over_the_gpu_nodes_are_caught(site):
    per_cpu = messages(site, gpus_per_node=4, cpus_per_task=64, mem_per_cpu="10G")
    assert per_cpu == ["mem_per_cpu: 10G per CPU × 64 CPUs per node = 640G, more than the GPU nodes of partition "
                       "all have (500G); ask for at most 8000M per CPU"]
    per_gpu = messages(site, gpus_per_node=4, mem_per_gpu="200G")
    assert per_gpu == ["mem_per_gpu: 200G per GPU × 4 GPUs per node = 800G, more than the GPU nodes of partition "
                       "all have (500G); ask for at most 125G per GPU"]
    assert messages(site, cpus_per_task=64, mem_per_cpu="10G") == []


def test_whole_node_memory_of_a_gpu_job_is_the_gpu_nodes(site):
    limited = site.replace(partitions=(site.partition("all").replace(max_mem_per_job="1T"),))
    found = messages(limited, gpus_per_node=4, nodes=3, mem="0")
    assert found == ["mem: --mem=0 (all of the GPU node's 500G) × 3 nodes = 1500G for the job, but partition all "
                     "allows at most 1T per job; ask for at most 349525M per node"]
    assert messages(limited, gpus_per_node=4, nodes=2, mem="0") == []  # 2 × 500G fits, 2 × 1500G would not
    assert "all of the node's 1500G" in messages(limited, nodes=2, mem="0")[0]


def test_profile_mistakes_in_the_gpu_nodes_size_are_reported(site):
    part = site.partition("all")
    bigger = site.replace(partitions=(part.replace(gpu_node_cpus=256, gpu_node_mem="2T"),))
    found = {p.field: p.message for p in bigger.problems()}
    assert "raise cpus_per_node to 256, or lower gpu_node_cpus" in found["partitions.gpu_node_cpus"]
    assert "raise mem_per_node to 2T, or lower gpu_node_mem" in found["partitions.gpu_node_mem"]
    unreadable = site.replace(partitions=(part.replace(gpu_node_mem="lots"),))
    assert [p.field for p in unreadable.problems()] == ["partitions.gpu_node_mem"]
    cpu_only = site.replace(default_gpu_partition="", partitions=(
        part.replace(gpus_per_node=0, gpu_types=(), gpu_nodes=None),))
    assert sorted(p.field for p in cpu_only.problems()) == ["partitions.gpu_node_cpus", "partitions.gpu_node_mem"]


# -- TOML, profile show and lint ------------------------------------------------------------------------------
def test_toml_round_trip_keeps_the_gpu_nodes_size(site):
    text = profile_to_toml(site)
    assert 'gpu_node_mem = "500G"' in text and "gpu_node_cpus = 64" in text
    assert profile_from_toml(text) == site
    plain = profile_from_toml('name = "s"\ngpu_vendor = "nvidia"\n[[partitions]]\nname = "all"\ncpus_per_node = 128\n'
                              'mem_per_node = "1500G"\ngpus_per_node = 4\ngpu_node_cpus = 64\ngpu_node_mem = "500G"\n')
    assert (plain.partition("all").gpu_node_cpus, plain.partition("all").gpu_node_mem) == (64, "500G")


def test_detect_show_and_lint_on_the_command_line(site, tmp_path, monkeypatch, capsys):
    real = detect.detect_profile
    texts = {detect.PARTITIONS_ARGV: MIXED[0], detect.NODES_ARGV: MIXED[1], detect.VERSION_ARGV: "slurm 23.11.4\n",
             detect.CONFIG_ARGV: "MpiDefault = pmix\n", detect.QOS_ARGV: ""}
    monkeypatch.setattr(detect, "detect_profile", lambda name, notes: real(
        name, notes=notes, runner=lambda argv: texts[tuple(argv)], which=lambda program: None,
        login_host=lambda: "login.example.org"))
    path = tmp_path / "mixed.toml"
    assert main(["profile", "detect", "--name", "mixed", "-o", str(path)]) == 0
    assert main(["profile", "show", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "gpu_node_cpus = 64" in shown and 'gpu_node_mem = "500G"' in shown
    job = tmp_path / "train.sbatch"
    job.write_text("#!/bin/bash\n#SBATCH --partition=all\n#SBATCH --gres=gpu:4\n#SBATCH --mem=1500G\n"
                   "#SBATCH --time=01:00:00\nexport PYTHONNOUSERSITE=1\n"
                   "srun apptainer exec --nv img.sif python train.py\n")
    assert main(["lint", "--profile", str(path), str(job)]) == 1
    out = capsys.readouterr().out
    assert "HPC405" in out and "the GPU nodes of partition all have (500G)" in out
    job.write_text(job.read_text().replace("--mem=1500G", "--mem=400G"))
    assert main(["lint", "--profile", str(path), str(job)]) == 0, capsys.readouterr().out


def test_form_hint_names_the_gpu_nodes_size(site):
    from hpcwidgets.widgets.state import limits_note
    assert limits_note(site, SlurmJob(partition="all", gpus_per_node=2), "mem") == "partition all: 500G per GPU node"
    assert limits_note(site, SlurmJob(partition="all", gpus_per_node=2), "cpus_per_task") == \
        "partition all: 64 CPUs per GPU node"
    assert limits_note(site, SlurmJob(partition="all"), "mem") == "partition all: 1500G per node"


# -- examples ------------------------------------------------------------------------------------------------
def test_examples_on_a_site_whose_gpus_are_only_in_a_mixed_partition_fit_its_gpu_nodes():
    """The examples size GPU jobs from the GPU nodes (16 CPUs, 64G here), not from the partition's big CPU nodes:
    every example passes the profile check on them."""
    from hpcwidgets.examples import examples
    site = detected(partition_line("all", "c[01-20],g[01-04]", 24),
                    CPU_NODES + node_lines("g", 4, 16, 65536, "gpu:a100:4"))
    part = site.partition("all")
    assert (part.gpu_node_cpus, part.gpu_node_mem) == (16, "64G")
    shown = examples(site)
    for name in ("single-gpu", "multi-node-torchrun", "array-sweep", "charliecloud"):
        job = shown[name].model.job
        assert job.gpus_on_each_node, name
        assert check_job(site, job) == [], name
    multi = shown["multi-node-torchrun"].model.job
    assert multi.cpus_per_task <= 16 and multi.mem == "64G"
