"""A job that counts its tasks or GPUs for the whole job and names no node count: Slurm takes as many nodes as
they need (sbatch -n: "one task per node" by default, as many as fit), so the partition's per-node size alone
does not make it wrong. Only what cannot be spread (one task's CPUs, one task's GPUs, --gpus-per-node) or a node
count over the partition's limit is."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec import SlurmJob
from hpcwidgets.spec.profile import check_job

LOCAL = load_profile("local")  # two nodes of 2 CPUs and 2 GPUs, partition debug


def problems(**job: object) -> list[str]:
    return [f"{p.field}: {p.message}" for p in check_job(LOCAL, SlurmJob(partition="debug", **job))]


@pytest.mark.parametrize("job", [
    dict(ntasks=4, gpus_per_task=1),          # four one-GPU tasks: two nodes
    dict(gpus=4, cpus_per_gpu=1),             # four GPUs in total: two nodes
    dict(ntasks=4),                           # four one-CPU tasks
])
def test_job_wide_counts_without_nodes_spread_over_the_nodes_they_need(job):
    assert problems(**job) == []


@pytest.mark.parametrize("job, field", [
    (dict(nodes=1, ntasks=4, gpus_per_task=1), "gpus_per_task"),   # one node named: 4 GPUs on a 2-GPU node
    (dict(ntasks=1, cpus_per_task=4), "cpus_per_task"),            # one task's CPUs cannot be split
    (dict(ntasks=1, gpus_per_task=3), "gpus_per_task"),            # nor one task's GPUs
    (dict(ntasks_per_node=4), "ntasks_per_node"),                  # a per-node count is per node
    (dict(gpus_per_node=4, ntasks=2), "gpus_per_node"),
])
def test_what_cannot_be_spread_is_still_an_error(job, field):
    found = problems(**job)
    assert any(p.startswith(field + ":") for p in found), found


def test_more_nodes_than_the_partition_allows_is_an_error_that_says_how_many():
    limit = LOCAL.partition("debug").max_nodes
    assert limit, "the local profile must cap its nodes for this test"
    cpus = LOCAL.partition("debug").cpus_per_node
    found = problems(ntasks=cpus * limit + 1)
    assert any(" need " in p and f"more than it allows ({limit})" in p for p in found), found


def test_lint_and_the_script_it_reads_agree():
    script = """#!/bin/bash
#SBATCH --partition=debug
#SBATCH --time=00:10:00
#SBATCH --ntasks=4
#SBATCH --gpus-per-task=1
srun ch-run -b "$PWD:/mnt/0" -c /mnt/0 img -- python train.py
"""
    assert not [f for f in lint(script, "local") if f.code in ("HPC403", "HPC406")]
    assert {f.code for f in lint(script.replace("--ntasks=4", "--ntasks=4\n#SBATCH --nodes=1"), "local")} >= {
        "HPC403", "HPC406"}
