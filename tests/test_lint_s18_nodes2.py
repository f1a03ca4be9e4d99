"""Session 18: the nodes Slurm picks for a job that names no --nodes, in the profile checks and HPC136.

sbatch(1), -N: "If -N is not specified, the default behavior is to allocate enough nodes to satisfy the requested
resources as expressed by per-job specification options, e.g. -n, -c and --gpus"; --gpus-per-node: GPUs "on each node
included in the job's resource allocation". So ``-n 64 --gpus-per-node=4`` on nodes of 32 CPUs runs on at least 2
nodes and holds at least 8 GPUs, which per-job GPU limits must see.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import Context, lint
from hpcwidgets.lint.catalogue import job_nodes, steps, tasks_per_node
from hpcwidgets.parse.script import read_script
from hpcwidgets.profiles import profile_from_toml
from hpcwidgets.spec.profile import least_nodes

#: one GPU partition of 8 nodes × 32 CPUs × 4 GPUs; QOS small allows 4 GPUs per job, big 16
SITE = """
name = "gsite"
gpu_vendor = "nvidia"
default_partition = "gpu"
[[partitions]]
name = "gpu"
is_default = true
max_time = "2-00:00:00"
max_nodes = 8
cpus_per_node = 32
mem_per_node = "500G"
gpus_per_node = 4
[[qos]]
name = "small"
max_gpus = 4
[[qos]]
name = "big"
max_gpus = 16
"""


@pytest.fixture(scope="module")
def site():
    return profile_from_toml(SITE)


def job(*directives: str, step: str = "srun ./app") -> str:
    return "#!/bin/bash\n#SBATCH --time=00:05:00\n" + "".join(f"#SBATCH {d}\n" for d in directives) + step + "\n"


def found(text: str, code: str, profile) -> list[str]:
    return [f.message for f in lint(text, profile) if f.code == code]


# --- least_nodes: the fewest nodes a job runs on ------------------------------------------------------------------

@pytest.mark.parametrize("directives, on_partition, counts_only", [
    (("-n 64", "--gpus-per-node=4"), 2, 1),          # 64 one-CPU tasks on nodes of 32 CPUs
    (("-n 16", "--gpus-per-node=4"), 1, 1),
    (("-n 16", "-c 8"), 4, 1),                        # 4 tasks of 8 CPUs fill a node
    (("-n 8", "--gpus-per-task=1"), 2, 1),            # 4 GPUs a node
    (("--gpus=8",), 2, 1),
    (("--gpus=8", "--cpus-per-gpu=16"), 4, 1),        # 2 GPUs' CPUs fill a node
    (("--ntasks=8", "--ntasks-per-node=2"), 4, 4),    # at most 2 a node, whatever the node's size
    (("-N 1", "-n 64", "--gpus-per-node=4"), 1, 1),   # a node count given is taken as it is
    (("-N 2-6", "-n 256"), 2, 2),                     # a range: its least
    (("-n 16", "-c 64"), 1, 1),                       # a task bigger than a node: HPC406 says it never fits
])
def test_least_nodes_counts_what_the_partitions_nodes_hold(site, directives, on_partition, counts_only):
    spec = read_script(job(*directives)).job
    assert least_nodes(spec, site.entry_for(spec)) == on_partition
    assert least_nodes(spec) == counts_only == job_nodes(Context(read_script(job(*directives))))


def test_tasks_per_node_on_a_partition_is_the_most_its_node_holds(site):
    ctx = Context(read_script(job("-n 64", "--gpus-per-node=4")), site)
    step, = steps(ctx)
    assert tasks_per_node(ctx, step) == 64
    assert tasks_per_node(ctx, step, site.entry_for(ctx.job)) == 32


# --- GPUs per job (HPC403): the least the job gets ----------------------------------------------------------------

def test_gpus_per_node_on_the_nodes_slurm_picks_count_towards_the_qos_limit(site):
    message, = found(job("--qos=small", "-n 64", "--gpus-per-node=4"), "HPC403", site)
    assert message.startswith("the job uses at least 8 GPUs on at least 2 nodes, but QOS small allows at most 4 per "
                              "job; ask for at most 4 GPUs in total (its tasks need at least 2 nodes, each with 4 GPUs")
    assert message.endswith("or use a QOS whose limits it fits: --qos=big")


def test_gpus_on_a_node_count_given_are_exact(site):
    message, = found(job("--qos=small", "-N 2", "-n 64", "--gpus-per-node=4"), "HPC403", site)
    assert message.startswith("the job uses 8 GPUs on 2 nodes, but QOS small")
    message, = found(job("--qos=small", "-n 8", "--gpus-per-task=1"), "HPC403", site)
    assert message.startswith("the job uses 8 GPUs on at least 2 nodes,")  # counted for the whole job: not "at least"


@pytest.mark.parametrize("directives", [
    ("--qos=small", "-n 32", "--gpus-per-node=4"),    # 32 tasks fit one node: 4 GPUs
    ("--qos=big", "-n 64", "--gpus-per-node=4"),      # 8 GPUs, within 16
    ("--qos=small", "-N 1", "-n 16", "--gpus-per-node=4"),
])
def test_jobs_within_the_gpu_limit_are_left_alone(site, directives):
    assert not found(job(*directives), "HPC403", site)


def test_a_job_held_to_one_node_is_reported_for_its_cpus_not_its_gpus(site):
    text = job("--qos=small", "-N 1", "-n 64", "--gpus-per-node=4")
    assert not found(text, "HPC403", site)
    message, = found(text, "HPC406", site)
    assert "64 tasks per node × 1 CPU per task = 64 CPUs per node" in message


def test_the_nearest_qos_names_the_least_gpus(site):
    required = profile_from_toml(SITE.replace('default_partition = "gpu"', 'default_partition = "gpu"\n'
                                                                         'qos_required = true'))
    message, = found(job("-n 320", "--gpus-per-node=4"), "HPC408", required)
    # both miss by their GPU limit; big (16) by less than small (4)
    assert "the nearest is big (at most 16 GPUs): ask for at most 16 GPUs in total (not at least 40)" in message


# --- node counts over the limit where Slurm picks them -------------------------------------------------------------

def test_tasks_held_to_a_few_a_node_over_the_partitions_nodes_are_reported(site):
    message, = found(job("--ntasks=40", "--ntasks-per-node=4"), "HPC408", site)
    assert message.startswith("the job names no --nodes, and its tasks need at least 10 nodes, more than "
                              "partition gpu")   # it asks for no GPUs: the message names only the tasks
    assert not found(job("--ntasks=32", "--ntasks-per-node=4"), "HPC408", site)  # 8 nodes: the most it allows


def test_tasks_over_the_partitions_nodes_are_counted_as_tasks_not_per_node(site):
    """The spread message named all 256 tasks "per node"."""
    message, = found(job("-n 320", "--gpus-per-node=4"), "HPC406", site)
    assert message.startswith("320 tasks × 1 CPU per task need 10 nodes of partition gpu")
    assert "per node" not in message.split(" need ")[0]
    message, = found(job("-p gpu", "-n 256", "--gpus-per-node=4"), "HPC406", "generic")
    assert message.startswith("256 tasks × 1 CPU per task need 8 nodes of partition gpu (32 CPUs each), more than it "
                              "allows (4)")


# --- HPC136: tasks per node where Slurm picks the nodes -----------------------------------------------------------

TRAIN = "srun python train.py"


def test_hpc136_says_up_to_where_slurm_picks_the_nodes():
    """a3 min/m06b: -n 16 with 4 GPUs a node and no node count."""
    message, = found(job("-p gpu", "-n 16", "--gpus-per-node=4", step=TRAIN), "HPC136", "generic")
    assert message.startswith("srun starts up to 16 tasks per node on the nodes Slurm picks, one GPU worker each")
    assert "--cpus-per-task=8" in message


def test_hpc136_counts_the_tasks_a_node_of_the_partition_holds():
    message, = found(job("-p gpu", "-n 64", "--gpus-per-node=4", step=TRAIN), "HPC136", "generic")
    assert message.startswith("srun starts up to 32 tasks per node on the nodes Slurm picks")


@pytest.mark.parametrize("directives, tasks", [
    (("-p gpu", "-N 1", "-n 16", "--gpus-per-node=4"), 16),
    (("-p gpu", "--ntasks-per-node=4", "--gpus-per-node=4"), 4),   # one node, Slurm's default
])
def test_hpc136_keeps_an_exact_count_where_the_nodes_are_known(directives, tasks):
    message, = found(job(*directives, step=TRAIN), "HPC136", "generic")
    assert message.startswith(f"srun starts {tasks} tasks per node, one GPU worker each")


def test_hpc136_is_quiet_where_the_tasks_ask_for_cpus():
    assert not found(job("-p gpu", "-n 16", "-c 8", "--gpus-per-node=4", step=TRAIN), "HPC136", "generic")


def test_of_two_qos_missed_by_one_limit_the_nearer_is_the_one_missed_by_less(tmp_path):
    """A 60-hour job fits neither a 24-hour nor a 48-hour QOS: the 48-hour one needs the smaller change."""
    path = tmp_path / "site.toml"
    path.write_text('name = "qsite"\nqos_required = true\n[[partitions]]\nname = "standard"\nis_default = true\n'
                    'max_time = "3-00:00:00"\ncpus_per_node = 128\nallowed_qos = ["standard", "long"]\n'
                    '[[qos]]\nname = "standard"\nmax_time = "24:00:00"\n'
                    '[[qos]]\nname = "long"\nmax_time = "48:00:00"\n', encoding="utf-8")
    from hpcwidgets.lint import lint
    text = "#!/bin/bash\n#SBATCH --nodes=8\n#SBATCH --time=60:00:00\nsrun ./a\n"
    message, = [f.message for f in lint(text, str(path)) if f.code == "HPC408"]
    assert "the nearest is long" in message and "--time=48:00:00 or less (not 60:00:00)" in message
