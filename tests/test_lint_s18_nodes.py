"""Session 18: the node count of a job that leaves it to Slurm (audit a3, FP1 and FP2).

sbatch(1), -N: "If -N is not specified, the default behavior is to allocate enough nodes to satisfy the requested
resources as expressed by per-job specification options, e.g. -n, -c and --gpus"; --ntasks-per-node: "If used with
the --ntasks option, the --ntasks option will take precedence and the --ntasks-per-node will be treated as a maximum
count of tasks per node". So --ntasks=4 --ntasks-per-node=2 without --nodes is at least 2 nodes of at most 2 tasks.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import Context, lint
from hpcwidgets.lint.catalogue import as_int, job_nodes, job_tasks, steps, tasks_per_node
from hpcwidgets.parse.script import read_script


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


def job(*directives: str, step: str = "srun python train.py") -> str:
    return "#!/bin/bash\n#SBATCH --time=00:05:00\n" + "".join(f"#SBATCH {d}\n" for d in directives) + step + "\n"


def context(text: str) -> Context:
    return Context(read_script(text))


# --- the job's node count (catalogue.job_nodes) and what follows from it ----------------------------------------

@pytest.mark.parametrize("directives, nodes", [
    (("--ntasks=4", "--ntasks-per-node=2"), 2),    # at least 2 nodes of at most 2 tasks
    (("--ntasks=5", "--ntasks-per-node=2"), 3),
    (("--ntasks=2", "--ntasks-per-node=4"), 1),
    (("--gpus=8", "--gpus-per-node=4"), 2),       # as HPC307 counts them
    (("--ntasks=4", "--ntasks-per-node=2", "--nodes=3"), 3),  # a node count given is taken as it is
    (("--nodes=1-4", "--ntasks=8", "--ntasks-per-node=2"), 1),  # a range: its least
    (("--ntasks=8",), 1),                       # nothing says how many a node holds
    ((), 1),
])
def test_job_nodes_is_the_least_the_job_can_run_on(directives, nodes):
    assert job_nodes(context(job(*directives))) == nodes


def test_tasks_per_node_of_a_job_that_leaves_the_nodes_to_slurm_is_the_most_a_node_holds():
    ctx = context(job("--ntasks=4", "--ntasks-per-node=2"))
    step, = steps(ctx)
    assert tasks_per_node(ctx, step) == 2 and job_tasks(ctx) == 4


def test_slurm_nnodes_is_unknown_where_slurm_picks_more_than_one_node():
    text = job("--ntasks=4", "--ntasks-per-node=2")
    assert as_int(context(text), "$SLURM_NNODES", 6) is None
    assert as_int(context(job("--nodes=2", "--ntasks=4")), "$SLURM_NNODES", 6) == 2
    assert as_int(context(job("--ntasks=4")), "${SLURM_JOB_NUM_NODES}", 6) == 1  # nothing asks for a second node


# --- HPC120: more tasks per node than GPUs per node ----------------------------------------------------------------

@pytest.mark.parametrize("step", ["srun python train.py",
                                  "srun -n ${SLURM_NTASKS} -N ${SLURM_NNODES} python train.py"])
def test_ntasks_with_ntasks_per_node_and_no_nodes_is_not_read_as_one_node(step):
    """a3 FP1 (min/m03, m03b; KAUST's jax/G4N2p4.slurm): 4 tasks, at most 2 a node, 2 GPUs a node."""
    assert not found(job("--ntasks=4", "--ntasks-per-node=2", "--gpus-per-node=2", step=step), "HPC120")
    assert not found(job("--ntasks=4", "--tasks-per-node=2", "--gpus=4", "--gpus-per-node=2", step=step), "HPC120")


def test_with_the_nodes_given_the_job_is_left_alone_as_before():
    assert not found(job("--nodes=2", "--ntasks=4", "--ntasks-per-node=2", "--gpus-per-node=2"), "HPC120")


def test_more_tasks_on_a_node_than_its_gpus_is_still_reported_when_slurm_picks_the_nodes():
    (line, message), = found(job("--ntasks=8", "--ntasks-per-node=4", "--gpus-per-node=2"), "HPC120")
    assert line == 6
    assert message.startswith("srun may start up to 4 tasks per node on 2 GPUs per node")
    assert message.endswith("use --ntasks-per-node=2")


def test_a_node_count_that_puts_all_tasks_on_one_node_is_still_reported():
    (_, message), = found(job("--nodes=1", "--ntasks=4", "--ntasks-per-node=4", "--gpus-per-node=2"), "HPC120")
    assert message.startswith("srun starts 4 tasks per node on 2 GPUs per node")
    (_, message), = found(job("--ntasks-per-node=4", "--gpus-per-node=2"), "HPC120")  # one node: Slurm's default
    assert message.startswith("srun starts 4 tasks per node")


def test_hpc307_and_hpc120_agree_on_the_same_job():
    text = job("--ntasks=4", "--tasks-per-node=2", "--gpus=4", "--gpus-per-node=2")
    assert not found(text, "HPC307") and not found(text, "HPC120")
    text = job("--nodes=1", "--ntasks=4", "--gpus=4", "--gpus-per-node=2")  # 4 GPUs at 2 a node on 1 node
    assert found(text, "HPC307")


# --- HPC406 with a profile: tasks that do not fit a node ---------------------------------------------------------

@pytest.mark.parametrize("directives", [
    ("-p gpu", "-N 1", "-n 64", "--gpus-per-node=4"),     # held to one node of 32 CPUs
    ("-p gpu", "-n 64", "--ntasks-per-node=64", "--gpus-per-node=4"),
])
def test_tasks_held_to_too_few_nodes_are_an_error(directives):
    (_, message), = found(job(*directives, step="srun ./app"), "HPC406", "generic")
    assert "64 tasks per node × 1 CPU per task = 64 CPUs per node" in message


def test_tasks_that_need_more_nodes_than_the_partition_has_are_an_error():
    """256 tasks of one CPU need 8 nodes of 32 CPUs; partition gpu allows 4."""
    (_, message), = found(job("-p gpu", "-n 256", "--gpus-per-node=4", step="srun ./app"), "HPC406", "generic")
    assert "partition gpu" in message


def test_tasks_spread_by_slurm_without_gpus_are_left_alone():
    assert not found(job("-p gpu", "-n 64", step="srun ./app"), "HPC406", "generic")
    assert not found(job("-p cpu", "-n 128", step="srun ./app"), "HPC406", "generic")


# --- with the change to spec/profile.py: FP2 (HPC406) and a4 F7 (HPC408) -------------------------------------------

@pytest.mark.parametrize("directives", [
    ("-p gpu", "-n 64", "--gpus-per-node=4"),            # a3 FP2, min/m06c: 2 nodes of 32 CPUs, of the 4 allowed
    ("-p gpu", "-n 64", "--gres=gpu:4"),
    ("-p gpu", "-n 16", "-c 4", "--gpus-per-node=4"),
])
def test_gpus_per_node_do_not_hold_the_tasks_to_one_node(directives):
    assert not found(job(*directives, step="srun ./app"), "HPC406", "generic")


def test_tasks_spread_over_more_nodes_than_the_partition_allows_name_the_nodes_needed():
    (_, message), = found(job("-p gpu", "-n 256", "--gpus-per-node=4", step="srun ./app"), "HPC406", "generic")
    assert "256 tasks × 1 CPU per task need 8 nodes of partition gpu (32 CPUs each), more than it allows (4)" in message


def test_cpus_per_gpu_with_gpus_per_node_are_still_per_node():
    (_, message), = found(job("-p gpu", "-n 8", "--gpus-per-node=4", "--cpus-per-gpu=16", step="srun ./app"),
                          "HPC406", "generic")
    assert "4 GPUs × 16 CPUs per GPU = 64 CPUs per node" in message


#: ARCHER2-like (a4 min/qos_site.toml): QOS standard up to 24 h and 32 nodes, short up to 20 min and 4 nodes
QOS_SITE = """
name = "arch"
qos_required = true
gpu_vendor = "nvidia"
default_partition = "standard"
[[partitions]]
name = "standard"
is_default = true
max_time = "2-00:00:00"
max_nodes = 64
cpus_per_node = 128
mem_per_node = "256G"
allowed_qos = ["standard", "short"]
[[partitions]]
name = "gpu"
max_time = "2-00:00:00"
gpus_per_node = 4
cpus_per_node = 40
mem_per_node = "384G"
max_cpus_per_gpu = 10
[[qos]]
name = "standard"
max_time = "24:00:00"
max_nodes = 32
[[qos]]
name = "short"
max_time = "00:20:00"
max_nodes = 4
"""


@pytest.fixture
def qos_site():
    from hpcwidgets.profiles import profile_from_toml
    return profile_from_toml(QOS_SITE)


def test_tasks_spread_by_slurm_are_held_to_cpus_per_gpu_on_a_full_node(qos_site):
    """80 tasks go on 2 nodes of 40 CPUs: 10 CPUs for each of a node's 4 GPUs, within max_cpus_per_gpu."""
    assert not found(job("-p gpu", "--qos=standard", "-n 80", "--gpus-per-node=4", step="srun ./app"), "HPC406",
                     qos_site)


def test_a_job_that_fits_no_qos_is_told_the_nearest_and_what_to_change(qos_site):
    """a4 F7 (min/qos_none_fits.sbatch): 40 nodes for 30 hours fit neither standard nor short."""
    text = "#!/bin/bash\n#SBATCH --partition=standard\n#SBATCH --nodes=40\n#SBATCH --time=30:00:00\nsrun hostname\n"
    (_, message), = found(text, "HPC408", qos_site)
    assert "the job fits none of the QOS it may use here; the nearest is standard (at most 24:00:00, at most 32 " \
           "nodes): ask for --time=24:00:00 or less (not 30:00:00) and --nodes=32 or fewer (not 40), and add " \
           "--qos=standard" in message
    assert "short" not in message


def test_the_nearest_qos_is_the_one_with_fewest_limits_exceeded(qos_site):
    text = "#!/bin/bash\n#SBATCH --partition=standard\n#SBATCH --nodes=40\n#SBATCH --time=00:10:00\nsrun hostname\n"
    (_, message), = found(text, "HPC408", qos_site)
    assert message.endswith("the nearest is standard (at most 24:00:00, at most 32 nodes): ask for --nodes=32 or "
                            "fewer (not 40), and add --qos=standard")


@pytest.mark.parametrize("time, offered", [("00:10:00", ["standard", "short"]), ("02:00:00", ["standard"])])
def test_a_job_that_fits_some_qos_is_offered_only_those(qos_site, time, offered):
    text = f"#!/bin/bash\n#SBATCH --partition=standard\n#SBATCH --nodes=2\n#SBATCH --time={time}\nsrun hostname\n"
    (_, message), = found(text, "HPC408", qos_site)
    shown = message.split("add --qos with one of: ", 1)[1]
    assert [item.split(" (", 1)[0] for item in shown.split("), ")] == offered
