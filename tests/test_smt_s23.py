"""Threads per core, the rest: --ntasks-per-core in the profile check (HPC406, the nodes a job needs) and in HPC322,
and the rules that counted two threads a core (the default task count of HPC128, HPC518's cores) following the
profile's threads_per_core where it says them and keeping their count where it does not."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint, rules
from hpcwidgets.lint.directives import _cores_for_tasks
from hpcwidgets.profiles import profile_from_toml
from hpcwidgets.spec.profile import (ClusterProfile, check_job, job_cpus_per_core, job_warnings, least_nodes,
                                     ntasks_per_core)
from hpcwidgets.spec.slurm import SlurmJob


def _site(threads: int | None, *, cpus: int = 256, max_nodes: int | None = None, extra: str = "") -> ClusterProfile:
    """A site of one CPU partition of ``cpus`` CPUs per node (128 cores × 2 threads by default), with the given
    threads per core (None: the profile does not say them)."""
    lines = f"threads_per_core = {threads}\n" if threads else ""
    lines += f"max_nodes = {max_nodes}\n" if max_nodes else ""
    return profile_from_toml('name = "smt"\nscheduler_version = "23.11"\ndefault_partition = "cpu"\n'
                             f'[[partitions]]\nname = "cpu"\ncpus_per_node = {cpus}\nmem_per_node = "500G"\n'
                             f'max_time = "3-00:00:00"\n{lines}{extra}')


def _codes(script: str, site: ClusterProfile | None, code: str) -> list[str]:
    return [f.message for f in lint(script, site) if f.code == code]


# ------------------------------------------------------------------------------------------------
# reading --ntasks-per-core
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, expected", [
    (("--ntasks-per-core=1",), 1),
    (("--ntasks-per-core", "2"), 2),
    (("--ntasks-per-core 1",), 1),
    (("--ntasks-per-core=1", "--ntasks-per-core=2"), 2),  # the last one wins
    (("--ntasks-per-core=0",), None),
    (("--ntasks-per-core=$N",), None),
    (("--ntasks-per-node=1",), None),
    ((), None),
    (None, None),
])
def test_ntasks_per_core_reads_the_options(options, expected):
    assert ntasks_per_core(options) == expected


def test_the_cpus_of_a_core_a_job_may_use():
    assert job_cpus_per_core(SlurmJob(extra_directives=("--hint=nomultithread",))) == 1
    assert job_cpus_per_core(SlurmJob(extra_directives=("--ntasks-per-core=1",))) == 1
    assert job_cpus_per_core(SlurmJob(cpus_per_task=2, extra_directives=("--ntasks-per-core=1",))) == 2
    assert job_cpus_per_core(SlurmJob(extra_directives=("--ntasks-per-core=2",))) == 2
    assert job_cpus_per_core(SlurmJob()) is None
    assert job_cpus_per_core(SlurmJob(cpus_per_task="$N", extra_directives=("--ntasks-per-core=1",))) is None
    part = _site(2).partition("cpu")
    assert part.cpus_usable(False, per_core=1) == 128
    assert part.cpus_usable(False, per_core=2) == part.cpus_usable(False, per_core=8) == 256
    assert part.cpus_usable(False, one_per_core=True) == 128
    assert _site(None).partition("cpu").cpus_usable(False, per_core=1) == 256  # threads per core unknown


# ------------------------------------------------------------------------------------------------
# the profile check: one task per core on nodes of two threads a core
# ------------------------------------------------------------------------------------------------
S06 = ("#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --nodes=1\n#SBATCH --ntasks=256\n#SBATCH --ntasks-per-core=1\n"
       "#SBATCH --mem=400G\n#SBATCH --time=01:00:00\nsrun ./mpi_app\n")


def test_one_task_per_core_needs_a_core_for_each_one_cpu_task():
    found = _codes(S06, _site(2), "HPC406")
    assert len(found) == 1
    assert "256 CPUs per node" in found[0] and "128 usable" in found[0] and "--ntasks-per-core=1" in found[0]
    assert "128 of 256 at 2 threads per core" in found[0]
    # the profile does not say the threads per core, or says 1: every CPU is a core, the tasks fit
    assert _codes(S06, _site(None), "HPC406") == []
    assert _codes(S06, _site(1), "HPC406") == []


@pytest.mark.parametrize("change", [
    ("--ntasks=256\n", "--ntasks=128\n"),                                    # one core each: 128 cores
    ("--ntasks-per-core=1\n", "--ntasks-per-core=2\n"),                      # two tasks a core
    ("--ntasks-per-core=1\n", "--ntasks-per-core=1\n#SBATCH --nodes=2\n"),   # the last --nodes wins: two nodes
])
def test_one_task_per_core_that_fits_is_not_reported(change):
    assert _codes(S06.replace(*change), _site(2), "HPC406") == []


def test_tasks_of_two_cpus_fill_a_core_each():
    script = S06.replace("--ntasks=256\n", "--ntasks=128\n#SBATCH --cpus-per-task=2\n")
    assert _codes(script, _site(2), "HPC406") == []
    assert len(_codes(script.replace("--ntasks=128", "--ntasks=129"), _site(2), "HPC406")) == 1


def test_one_task_per_core_spreads_tasks_over_more_nodes():
    job = SlurmJob(partition="cpu", ntasks=256, extra_directives=("--ntasks-per-core=1",), time="01:00:00")
    assert least_nodes(job, _site(2).partition("cpu")) == 2
    assert least_nodes(job, _site(None).partition("cpu")) == 1
    assert least_nodes(job.replace(extra_directives=()), _site(2).partition("cpu")) == 1
    # a partition of one node at most: the job cannot run there
    one_node = _site(2, max_nodes=1)
    problems = check_job(one_node, job)
    assert any(p.field == "ntasks" and "128 CPUs each" in p.message and "one CPU of each core" not in p.message
               and "--ntasks-per-core=1" in p.message for p in problems), problems
    assert check_job(_site(None, max_nodes=1), job) == []


# ------------------------------------------------------------------------------------------------
# HPC322: a step of one task per core
# ------------------------------------------------------------------------------------------------
STEP = ("#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --nodes=1\n#SBATCH --ntasks=64\n{job}#SBATCH --mem=100G\n"
        "#SBATCH --time=01:00:00\nsrun {step}-n 128 ./mpi_app\n")


@pytest.mark.parametrize("job, step, whose", [
    ("#SBATCH --ntasks-per-core=1\n", "", "the job's, which srun inherits"),
    ("", "--ntasks-per-core=1 ", "the step's own"),
    ("", "--ntasks-per-core 1 ", "the step's own"),
])
def test_hpc322_counts_a_core_for_each_task_of_one_task_per_core(job, step, whose):
    script = STEP.format(job=job, step=step)
    found = _codes(script, _site(2), "HPC322")
    assert len(found) == 1 and whose in found[0] and "128 cores of 2 threads, 256 of the job's CPUs" in found[0]
    # where cores may have one thread only the count in CPUs holds: 128 one-CPU tasks fit in 64 cores of two
    assert _codes(script, _site(None), "HPC322") == []
    assert _codes(script, None, "HPC322") == []


def test_hpc322_leaves_a_step_of_tasks_that_share_cores():
    assert _codes(STEP.format(job="", step=""), _site(2), "HPC322") == []
    assert _codes(STEP.format(job="", step="--ntasks-per-core=2 "), _site(2), "HPC322") == []


@pytest.mark.parametrize("n, each, per_core, threads, cores", [
    (128, 1, 1, 2, 128),   # one task per core
    (4, 3, 1, 2, 8),       # a task of 3 CPUs takes two whole cores of its own
    (4, 2, 1, 2, 4),
    (4, 1, 2, 2, 2),       # two tasks share a core
    (4, 1, 2, 4, 2),       # two tasks a core use two of its four threads
    (3, 1, 1, 1, 3),
])
def test_cores_a_step_of_tasks_per_core_takes(n, each, per_core, threads, cores):
    assert _cores_for_tasks(n, each, per_core, threads) == cores


# ------------------------------------------------------------------------------------------------
# the default task count (HPC128) and HPC518 follow the profile's threads per core
# ------------------------------------------------------------------------------------------------
MPIRUN = ("#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --nodes=1\n{cpus}#SBATCH --mem=10G\n#SBATCH --time=01:00:00\n"
          "module load openmpi/4.1\nmpirun -np {n} ./solver\n")


def test_the_default_task_count_follows_the_threads_per_core():
    # a job without --ntasks has as many tasks as its CPUs hold: a core of two threads holds two one-CPU tasks
    two = MPIRUN.format(cpus="", n=2)
    assert _codes(two, _site(2), "HPC128") == []
    assert _codes(two, _site(None), "HPC128") == []   # unknown: maybe two
    assert _codes(two, None, "HPC128") == []
    found = _codes(two, _site(1, cpus=128), "HPC128")  # one thread a core: one task
    assert len(found) == 1 and "has 1 task (no --ntasks: one task per node)" in found[0]
    # four threads a core: four tasks of one CPU, two of two CPUs
    four = _site(4, cpus=256)
    assert _codes(MPIRUN.format(cpus="", n=4), four, "HPC128") == []
    found = _codes(MPIRUN.format(cpus="", n=5), four, "HPC128")
    assert len(found) == 1 and "4 on a node of 4 threads per core" in found[0]
    assert _codes(MPIRUN.format(cpus="#SBATCH --cpus-per-task=2\n", n=2), four, "HPC128") == []
    assert len(_codes(MPIRUN.format(cpus="#SBATCH --cpus-per-task=2\n", n=3), four, "HPC128")) == 1


STEPS = ("#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=3\n"
         "#SBATCH --mem=10G\n#SBATCH --time=01:00:00\n"
         "for seed in 0 1; do\n  srun --exact -n 1 -c 2 ./task \"$seed\" &\ndone\nwait\n")


def test_hpc518_counts_cores_of_the_profiles_threads():
    # 3 CPUs, two steps of 2: on cores of two threads the job holds two cores (4 CPUs), one for each step
    assert _codes(STEPS, _site(2), "HPC518") == []
    assert _codes(STEPS, _site(None), "HPC518") == []
    # one thread a core: 3 CPUs hold one step of 2 at a time
    found = _codes(STEPS, _site(1, cpus=128), "HPC518")
    assert len(found) == 1 and "holds 3 CPUs" in found[0]


# ------------------------------------------------------------------------------------------------
# HPC413 with a default memory per node
# ------------------------------------------------------------------------------------------------
def test_hpc413_says_and_counts_the_default_memory_per_node():
    why = rules()["HPC413"].why
    assert "DefMemPerNode" in why and "def_mem_per_node" in why
    site = _site(None, cpus=64, extra='def_mem_per_node = "4G"\n')
    job = SlurmJob(partition="cpu", nodes=1, ntasks=1, cpus_per_task=32, time="01:00:00")
    warnings = [w for w in job_warnings(site, job) if w.field == "mem"]
    assert len(warnings) == 1 and "DefMemPerNode" in warnings[0].message
    assert [w for w in job_warnings(site, job.replace(mem="200G")) if w.field == "mem"] == []
