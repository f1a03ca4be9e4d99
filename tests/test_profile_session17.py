"""Profile rules real sites document that profiles could not say before (audit a2, §4): CPUs per GPU (CSC Puhti allows
at most 10 cores per GPU; Slurm's DefCpuPerGPU gives a GPU job its CPUs when it asks for none) and partitions that
give every job whole nodes (LUMI's standard-g, Slurm's OverSubscribe=EXCLUSIVE).

``tests/data/clusters/lumi-like`` is composed, not captured: its partitions follow LUMI's partition page (standard and
standard-g "allocatable by node", small, small-g and dev-g "allocatable by resources") and its records the layout of
``scontrol --oneliner show partition`` / ``show node`` (OverSubscribe=EXCLUSIVE as src/api/partition_info.c prints a
partition whose jobs never share a node; JobDefaults=DefCpuPerGPU=7,DefMemPerGPU=61440 as job_defaults_str() prints
them). The DefCpuPerGPU and DefMemPerCPU values there are illustrative.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.errors import ProfileError
from hpcwidgets.lint import lint, rules
from hpcwidgets.profiles import load_profile, profile_from_toml, profile_to_toml
from hpcwidgets.run.detect import profile_from_scontrol
from hpcwidgets.spec.profile import Partition, check_job, job_warnings, whole_node_warnings
from hpcwidgets.spec.slurm import SlurmJob

CLUSTERS = Path(__file__).parent / "data" / "clusters"

#: CSC Puhti's GPU partitions as its docs describe them: 40 cores and 4 V100 per node, at most 10 cores per GPU
PUHTI = """
name = "puhti"
gpu_vendor = "nvidia"
default_partition = "small"
default_gpu_partition = "gpu"

[[partitions]]
name = "small"
max_time = "3-00:00:00"
cpus_per_node = 40
mem_per_node = "382G"
is_default = true

[[partitions]]
name = "gpu"
max_time = "3-00:00:00"
max_nodes = 20
cpus_per_node = 40
mem_per_node = "382G"
gpus_per_node = 4
gpu_types = ["v100"]
max_cpus_per_gpu = 10
"""


def puhti(**gpu_fields):
    site = profile_from_toml(PUHTI)
    return site.replace(partitions=tuple(p.replace(**gpu_fields) if p.name == "gpu" else p for p in site.partitions))


def lumi_like(notes: list[str] | None = None, config_text: str = ""):
    folder = CLUSTERS / "lumi-like"
    return profile_from_scontrol((folder / "partitions.txt").read_text(), (folder / "nodes.txt").read_text(),
                                 name="lumi-like", config_text=config_text, notes=notes)


def job(**fields) -> SlurmJob:
    return SlurmJob(time="02:00:00", **fields)


def script(*directives: str, body: str = "srun python train.py") -> str:
    return "\n".join(["#!/bin/bash", *(f"#SBATCH {d}" for d in directives), "#SBATCH --time=02:00:00", body, ""])


def found(text: str, code: str, profile) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# -- the profile keys ------------------------------------------------------------------------------------------
def test_cpus_per_gpu_and_whole_nodes_round_trip_through_toml():
    site = puhti(def_cpus_per_gpu=8, whole_nodes=True)
    gpu = site.partition("gpu")
    assert (gpu.def_cpus_per_gpu, gpu.max_cpus_per_gpu, gpu.whole_nodes) == (8, 10, True)
    assert profile_from_toml(profile_to_toml(site)) == site


def test_unlimited_cpus_per_gpu_means_no_limit():
    site = profile_from_toml(PUHTI.replace("max_cpus_per_gpu = 10", 'max_cpus_per_gpu = "UNLIMITED"'))
    assert site.partition("gpu").max_cpus_per_gpu is None


@pytest.mark.parametrize("key", ["def_cpus_per_gpu", "max_cpus_per_gpu"])
def test_cpus_per_gpu_needs_gpus(key):
    text = PUHTI.replace('is_default = true', f'is_default = true\n{key} = 8')
    with pytest.raises(ProfileError) as exc:
        profile_from_toml(text)
    assert f"{key} is set but the partition has no GPUs" in str(exc.value)


def test_default_cpus_per_gpu_above_the_maximum_is_a_profile_mistake():
    with pytest.raises(ProfileError) as exc:
        profile_from_toml(PUHTI.replace("max_cpus_per_gpu = 10", "max_cpus_per_gpu = 10\ndef_cpus_per_gpu = 12"))
    assert "default CPUs per GPU 12 is more than the maximum 10; lower it to at most 10" in str(exc.value)


# -- CPUs per GPU: the check --------------------------------------------------------------------------------------
def test_cpus_per_task_over_the_limit_of_one_gpu():
    (problem,) = check_job(puhti(), job(partition="gpu", gpus_per_node=1, cpus_per_task=16))
    assert problem.field == "cpus_per_task"
    assert problem.message == ("--cpus-per-task=16 with 1 GPU per node is 16 CPUs per GPU, more than the 10 per GPU "
                               "partition gpu allows; ask for at most 10 CPUs per node: --cpus-per-task=10")


def test_tasks_per_gpu_are_counted_on_the_node():
    site = puhti()
    (problem,) = check_job(site, job(partition="gpu", gpus_per_node=2, ntasks_per_node=2, cpus_per_task=12))
    assert "2 tasks per node × 12 CPUs per task = 24 CPUs with 2 GPUs per node is 12 CPUs per GPU" in problem.message
    assert problem.message.endswith("ask for at most 20 CPUs per node: --cpus-per-task=10 with 2 tasks per node")
    # one task per GPU, asked for with --gpus-per-task: the same count
    (same,) = check_job(site, job(partition="gpu", ntasks_per_node=2, gpus_per_task=1, cpus_per_task=12))
    assert "12 CPUs per GPU" in same.message


def test_cpus_per_gpu_over_the_limit():
    (problem,) = check_job(puhti(), job(partition="gpu", gpus_per_node=2, cpus_per_gpu=12))
    assert problem.field == "cpus_per_gpu"
    assert problem.message == ("--cpus-per-gpu=12 is more than the 10 CPUs per GPU partition gpu allows; ask for "
                               "--cpus-per-gpu=10 or fewer")


def test_more_tasks_than_cpus_allowed_asks_for_fewer_tasks():
    (problem,) = check_job(puhti(), job(partition="gpu", gpus_per_node=1, ntasks_per_node=12))
    assert problem.field == "ntasks_per_node"
    assert problem.message.endswith("ask for at most 10 CPUs per node: at most 10 tasks per node")


def test_jobs_within_the_limit_pass():
    site = puhti()
    for fine in (job(partition="gpu", gpus_per_node=1, cpus_per_task=10),
                 job(partition="gpu", gpus_per_node=4, ntasks_per_node=4, cpus_per_task=10),
                 job(partition="gpu", gpus_per_node=4, cpus_per_gpu=10),
                 job(partition="gpu", gpus_per_node=1),  # no CPUs asked for: one, or the site's default
                 job(partition="small", cpus_per_task=40)):  # no GPUs: the limit is per GPU
        assert check_job(site, fine) == [], fine


def test_a_job_over_the_nodes_cpus_gets_one_problem():
    problems = check_job(puhti(), job(partition="gpu", gpus_per_node=1, cpus_per_task=64))
    assert [p.field for p in problems] == ["cpus_per_task"]
    assert "but the nodes of partition gpu have 40" in problems[0].message


def test_a_partition_without_the_limit_is_named():
    site = puhti()
    roomy = site.partition("gpu").replace(name="gpu-big", max_cpus_per_gpu=None, cpus_per_node=64)
    site = site.replace(partitions=(*site.partitions, roomy))
    (problem,) = check_job(site, job(partition="gpu", gpus_per_node=1, cpus_per_task=16))
    assert problem.message.endswith("--cpus-per-task=10, or use a partition that allows more: gpu-big")


def test_lint_reports_cpus_per_gpu_as_hpc406_at_the_cpus_line():
    text = script("--account=project_2001234", "--partition=gpu", "--gres=gpu:v100:1", "--cpus-per-task=20")
    ((line, message),) = found(text, "HPC406", puhti())
    assert line == 5 and "20 CPUs per GPU, more than the 10 per GPU partition gpu allows" in message
    assert not found(text.replace("=20", "=10"), "HPC406", puhti())


# -- the default CPUs per GPU -------------------------------------------------------------------------------------
def test_a_gpu_job_that_asks_for_no_cpus_gets_the_default_and_nothing_is_reported():
    site = puhti(def_cpus_per_gpu=10)
    text = script("--partition=gpu", "--gres=gpu:v100:1")
    assert not [f for f in lint(text, site) if f.code.startswith("HPC4") and f.code not in ("HPC411",)]
    assert check_job(site, job(partition="gpu", gpus_per_node=1)) == []


def test_default_memory_counts_the_default_cpus_per_gpu():
    # DefMemPerCPU 1G × 1 CPU would be a small default beside a quarter of 382G; DefCpuPerGPU 10 gives 10G of it
    site = puhti(def_mem_per_cpu="1G", def_cpus_per_gpu=10)
    (warning,) = [p for p in job_warnings(site, job(partition="gpu", gpus_per_node=1)) if p.field == "mem"]
    assert "DefMemPerCPU 1G × 10 CPUs (DefCpuPerGPU 10 × 1 GPU) = 10G per node" in warning.message
    # with 9G per CPU the default (90G) is most of the GPU's share (95G): nothing to say
    site = puhti(def_mem_per_cpu="9G", def_cpus_per_gpu=10)
    assert not [p for p in job_warnings(site, job(partition="gpu", gpus_per_node=1)) if p.field == "mem"]
    # a job that asks for its own CPUs does not get the default
    asks = job(partition="gpu", gpus_per_node=1, cpus_per_task=2)
    assert "× 2 CPUs = 18G" in next(p.message for p in job_warnings(site, asks) if p.field == "mem")


# -- whole-node partitions ----------------------------------------------------------------------------------------
def test_one_gpu_on_a_whole_node_partition_pays_for_the_node_and_hears_of_small_g():
    (problem,) = whole_node_warnings(lumi_like(), job(partition="standard-g", gpus_per_node=1))
    assert problem.field == "gpus_per_node"
    assert problem.message == (
        "partition standard-g gives every job whole nodes and bills them (OverSubscribe=EXCLUSIVE): the job asks for "
        "1 of the 8 GPUs of each node, and pays for the whole node; ask for all 8 GPUs of each node "
        "(--gpus-per-node=8) and use them, or use a partition that shares nodes: small-g")


def test_whole_nodes_used_in_full_are_fine():
    site = lumi_like()
    for fine in (job(partition="standard-g", nodes=4, gpus_per_node=8, ntasks_per_node=8, cpus_per_task=7),
                 job(partition="standard-g", gpus=16),  # two nodes' worth, on as many nodes as they need
                 job(partition="standard", nodes=2, ntasks_per_node=128),  # every core of nodes with two threads each
                 job(partition="standard", nodes=2),  # asks for nothing: gets, and may use, the whole node
                 job(partition="standard", ntasks=1, exclusive=True),  # says it takes the node
                 job(partition="small-g", gpus_per_node=1),  # shares nodes
                 job(partition="small", ntasks=4)):
        assert whole_node_warnings(site, fine) == [], fine


def test_part_of_a_cpu_node_is_its_cpus_or_else_its_memory():
    site = lumi_like()
    (cpus,) = whole_node_warnings(site, job(partition="standard", ntasks=16))
    assert cpus.field == "ntasks" and "asks for 16 of the 256 CPUs of each node" in cpus.message
    assert cpus.message.endswith("use a partition that shares nodes: small")
    (mem,) = whole_node_warnings(site, job(partition="standard", mem="8G"))
    assert mem.field == "mem" and "asks for --mem=8G of the 224G of each node" in mem.message


def test_no_gpus_on_a_whole_gpu_node_is_part_of_it():
    (problem,) = whole_node_warnings(lumi_like(), job(partition="standard-g", ntasks_per_node=56))
    assert problem.field == "partition" and "asks for none of the 8 GPUs of each node" in problem.message


def test_a_partition_too_small_for_the_job_is_not_offered():
    # small-g takes at most 2 nodes here (4 on LUMI): a 4-node job of one GPU each is told to use whole nodes only
    (problem,) = whole_node_warnings(lumi_like(), job(partition="standard-g", nodes=4, gpus_per_node=1))
    assert problem.message.endswith("(--gpus-per-node=8) and use them")


def test_lint_warns_hpc415_at_the_gpu_line():
    text = script("--account=project_465000000", "--partition=standard-g", "--nodes=1", "--gres=gpu:mi250:2")
    ((line, message),) = found(text, "HPC415", lumi_like())
    assert line == 5 and "2 of the 8 GPUs of each node" in message
    assert not found(text.replace("gpu:mi250:2", "gpu:mi250:8"), "HPC415", lumi_like())
    assert not found(text.replace("standard-g", "small-g"), "HPC415", lumi_like())
    assert not found(text, "HPC415", None)


def test_the_rules_examples_on_a_site_with_a_whole_node_partition():
    # no shipped profile has one: the examples need a site such as this (the generic profile and LUMI's two)
    site = load_profile("generic")
    site = site.replace(partitions=(*site.partitions, Partition(
        name="standard-g", max_time="2-00:00:00", cpus_per_node=112, mem_per_node="480G", gpus_per_node=8,
        whole_nodes=True), Partition(name="small-g", max_time="3-00:00:00", max_nodes=4, cpus_per_node=112,
                                     mem_per_node="480G", gpus_per_node=8)))
    rule = rules()["HPC415"]
    assert [f.code for f in lint(rule.bad, site)] == ["HPC415"]
    assert lint(rule.good, site) == []


# -- detection ------------------------------------------------------------------------------------------------------
def test_detection_reads_whole_nodes_and_the_default_cpus_per_gpu():
    site = lumi_like()
    assert [p.name for p in site.partitions if p.whole_nodes] == ["standard", "standard-g"]
    assert "whole nodes only (OverSubscribe=EXCLUSIVE)" in site.partition("standard-g").description
    assert site.partition("small-g").def_cpus_per_gpu == 7
    assert site.partition("standard-g").def_cpus_per_gpu is None
    assert site.partition("small").def_cpus_per_gpu is None  # no GPUs: a default per GPU says nothing
    assert all(p.max_cpus_per_gpu is None for p in site.partitions)  # a site rule, not a Slurm setting
    assert profile_from_toml(profile_to_toml(site)) == site


@pytest.mark.parametrize("config", ["JobDefaults              = DefCpuPerGPU=4,DefMemPerGPU=8000\n",
                                    "DefCpuPerGPU            = 4\n"])
def test_the_clusters_default_cpus_per_gpu_fills_a_partition_that_sets_none(config):
    site = lumi_like(config_text=config)
    assert site.partition("standard-g").def_cpus_per_gpu == 4
    assert site.partition("small-g").def_cpus_per_gpu == 7  # its own wins


def test_older_slurm_says_shared_exclusive():
    text = (CLUSTERS / "lumi-like" / "partitions.txt").read_text().replace("OverSubscribe=", "Shared=")
    site = profile_from_scontrol(text, (CLUSTERS / "lumi-like" / "nodes.txt").read_text(), name="old")
    assert [p.name for p in site.partitions if p.whole_nodes] == ["standard", "standard-g"]
