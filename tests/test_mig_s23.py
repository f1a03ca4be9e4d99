"""MIG slices and whole-node-only sites.

* The multi-node example takes a partition of whole GPUs before one of MIG slices (several torchrun workers of a node
  cannot share slices: a CUDA process enumerates one slice only); on a site with MIG partitions only it runs one
  worker per node on one slice; on a partition of both it asks for the whole GPUs by name
  (ClusterProfile.multi_node_partition, examples._multi_node).
* HPC142 (error): several workers or tasks of a node shown the same several slices. HPC143 (info): one slice per task,
  several tasks on a node (fine alone, slow or refused as one NCCL process group).
* HPC513 reports a GPU or MIG slice named by its UUID.
* A site whose every GPU partition gives whole nodes: the one-GPU examples say they pay for the whole node (HPC415,
  which stays), and ``profile check`` notes the site's shape (whole_node_default_note).
* HPC406 counts in the singular where there is one.
"""

from __future__ import annotations

import re

import pytest

from hpcwidgets.examples import examples
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile, profile_from_toml
from hpcwidgets.spec.profile import (Partition, is_mig_type, job_mig_types, mig_size, whole_node_default_note,
                                     whole_node_warnings)
from hpcwidgets.spec.slurm import SlurmJob

HEAD = '''name = "{name}"
login_host = "login.mig.example.org"
scheduler_version = "23.11"
runtimes = ["apptainer"]
scratch = "/scratch/$USER"
image_dir = "/scratch/$USER/images"
cache_dir = "/scratch/$USER/.apptainer/cache"
gpu_vendor = "nvidia"
default_partition = "cpu"
default_gpu_partition = "{default_gpu}"

[modules]
apptainer = "apptainer/1.3"

[[partitions]]
name = "cpu"
max_time = "3-00:00:00"
cpus_per_node = 256
mem_per_node = "500G"
is_default = true
'''
WHOLE = '''
[[partitions]]
name = "gpu"
max_time = "2-00:00:00"
max_nodes = {nodes}
cpus_per_node = 128
mem_per_node = "1000G"
gpus_per_node = 4
gpu_types = ["a100"]
'''
MIG = '''
[[partitions]]
name = "mig"
max_time = "1-00:00:00"
max_nodes = {nodes}
cpus_per_node = 128
mem_per_node = "500G"
gpus_per_node = 14
gpu_types = [{types}]
'''


def _site(name: str, default_gpu: str = "gpu", whole_nodes: int | None = 8, mig_nodes: int = 4,
          types: str = '"1g.10gb"'):
    text = HEAD.format(name=name, default_gpu=default_gpu)
    if whole_nodes is not None:
        text += WHOLE.format(nodes=whole_nodes)
    return profile_from_toml(text + MIG.format(nodes=mig_nodes, types=types))


def _warnings(script: str, profile) -> list[str]:
    return [f.format() for f in lint(script, profile) if f.severity != "info"]


def _directive(script: str, flag: str) -> str:
    found = re.search(rf"^#SBATCH --{flag}=(\S+)$", script, re.M)
    return found.group(1) if found else ""


# ------------------------------------------------------------------------------------------------
# the MIG helpers
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, mig", [("1g.10gb", True), ("3g.40gb", True), ("nvidia_a100_80gb_pcie_1g.10gb", True),
                                       ("mig-2g.20gb", True), ("a100", False), ("h100_80gb", False), ("", False),
                                       (None, False)])
def test_is_mig_type(name, mig):
    assert is_mig_type(name) is mig


def test_mig_size_ranks_slices():
    assert max(["1g.10gb", "3g.40gb", "2g.20gb"], key=mig_size) == "3g.40gb"
    assert mig_size("a100") == (0, 0)


def test_a_partition_is_mig_only_when_every_type_it_lists_is_a_slice():
    assert Partition(name="m", gpus_per_node=14, gpu_types=("1g.10gb", "3g.40gb")).mig_only
    mixed = Partition(name="x", gpus_per_node=7, gpu_types=("a100", "1g.10gb"))
    assert not mixed.mig_only and mixed.whole_gpu_types() == ("a100",)
    assert not Partition(name="u", gpus_per_node=4).mig_only          # no types: nothing says slices
    assert not Partition(name="c", gpus_per_node=0, gpu_types=("1g.10gb",)).mig_only


def test_the_slice_types_of_a_job():
    site = _site("t")
    assert job_mig_types(site, SlurmJob(partition="mig", gpus_per_node=2)) == ("1g.10gb",)   # from the partition
    assert job_mig_types(site, SlurmJob(partition="gpu", gpus_per_node=2)) == ()
    assert job_mig_types(None, SlurmJob(gpu_type="3g.40gb", gpus_per_node=1)) == ("3g.40gb",)  # named
    assert job_mig_types(site, SlurmJob(partition="mig", gpu_type="a100", gpus_per_node=1)) == ()
    assert job_mig_types(None, SlurmJob(gpus_per_node=2)) == ()


# ------------------------------------------------------------------------------------------------
# B1: the multi-node example
# ------------------------------------------------------------------------------------------------
def test_whole_gpus_win_over_a_mig_partition_that_allows_more_nodes():
    site = _site("t", default_gpu="mig", whole_nodes=2, mig_nodes=8)
    assert site.multi_node_partition(2).name == "gpu"
    script = examples(site)["multi-node-torchrun"].render()
    assert _directive(script, "partition") == "gpu" and "--nproc-per-node=4" in script
    # neither allows the nodes: best_partitions' order (the most nodes), as on a site without MIG
    assert _site("t", whole_nodes=1, mig_nodes=1).multi_node_partition(3).name == "gpu"


def test_where_only_slices_allow_the_nodes_one_worker_per_node_runs_on_them():
    site = _site("migonly", default_gpu="mig", whole_nodes=1, mig_nodes=4)
    assert site.multi_node_partition(2).name == "mig"
    ex = examples(site)["multi-node-torchrun"]
    script = ex.render()
    assert _directive(script, "partition") == "mig" and _directive(script, "nodes") == "2"
    assert _directive(script, "gres") == "gpu:1g.10gb:1" and "--nproc-per-node=1" in script
    assert "one worker per node, on one 1g.10gb slice each" in ex.description
    assert "For one worker per GPU on whole GPUs, use partition gpu, which allows 1 node." in ex.description
    assert not _codes(script, site) and not _codes(script, site, "HPC143")
    assert _warnings(script, site) == []


def test_a_site_of_mig_partitions_only_runs_one_worker_per_node_on_one_slice():
    site = _site("allmig", default_gpu="mig", whole_nodes=None, mig_nodes=4, types='"1g.10gb", "3g.40gb"')
    ex = examples(site)["multi-node-torchrun"]
    script = ex.render()
    assert _directive(script, "partition") == "mig" and _directive(script, "nodes") == "2"
    assert _directive(script, "gres") == "gpu:3g.40gb:1"          # the largest slice, named
    assert "--nproc-per-node=1" in script
    assert ex.description.startswith("2 nodes × 1 process on partition mig")
    assert "one worker per node, on one 3g.40gb slice each" in ex.description
    found = lint(script, site)
    assert not [f for f in found if f.code in ("HPC142", "HPC143")]
    assert _warnings(script, site) == []


def test_the_default_gpu_partition_of_slices_keeps_the_one_slice_examples():
    site = _site("migdef", default_gpu="mig")
    ex = examples(site)
    single = ex["single-gpu"].render()
    assert _directive(single, "partition") == "mig"
    assert ex["single-gpu"].description.startswith("One MIG slice (1g.10gb, a part of a GPU) on partition mig")
    assert _directive(ex["multi-node-torchrun"].render(), "partition") == "gpu"
    for name, example in ex.items():
        assert _warnings(example.render(), site) == [], name


def test_a_partition_of_whole_gpus_and_slices_is_asked_for_its_whole_gpus_by_name():
    site = profile_from_toml(HEAD.format(name="mixed", default_gpu="gpu") + '''
[[partitions]]
name = "gpu"
max_time = "2-00:00:00"
max_nodes = 8
cpus_per_node = 128
mem_per_node = "1000G"
gpus_per_node = 7
gpu_types = ["a100", "1g.10gb"]
gpus_per_type = ["a100:3", "1g.10gb:7"]
''')
    ex = examples(site)["multi-node-torchrun"]
    script = ex.render()
    assert _directive(script, "gres") == "gpu:a100:3" and "--nproc-per-node=3" in script
    assert "has whole GPUs and MIG slices (1g.10gb): the job asks for a100 by name" in ex.description
    assert _warnings(script, site) == []


def test_a_site_without_mig_keeps_its_multi_node_partition():
    for name in ("generic", "midway3", "local"):
        profile = load_profile(name)
        parts = list(profile.gpu_partitions())
        assert not any(p.mig_only for p in parts)
        from hpcwidgets.spec.profile import best_partitions
        default = profile.default(gpu=True) or profile.default()
        pool = parts or list(profile.partitions)
        pool.sort(key=lambda p: p is not default)
        assert profile.multi_node_partition(2) is best_partitions(pool, nodes=2, by="nodes")[0]


# ------------------------------------------------------------------------------------------------
# B2: HPC142 and HPC143
# ------------------------------------------------------------------------------------------------
JOB = "#!/bin/bash\n#SBATCH --partition={part}\n{resources}#SBATCH --time=01:00:00\n"


def _codes(text: str, profile=None, code: str = "HPC142") -> list:
    return [f for f in lint(text, profile) if f.code == code]


def test_torchrun_over_two_named_slices_is_an_error():
    text = JOB.format(part="mig", resources="#SBATCH --gres=gpu:1g.10gb:2\n#SBATCH --cpus-per-task=8\n") + \
        "torchrun --standalone --nproc-per-node=2 train.py\n"
    [finding] = _codes(text)
    assert finding.severity == "error" and finding.line == 6
    assert "torchrun starts 2 workers on a node of 2 MIG slices (1g.10gb)" in finding.message
    # the same with a p2p switch: the enumeration is the problem, not the transport
    assert _codes(text.replace("torchrun", "export NCCL_P2P_DISABLE=1\ntorchrun"))


def test_the_partition_says_the_slices_when_the_job_names_no_type():
    site = _site("t")
    text = JOB.format(part="mig", resources="#SBATCH --gres=gpu:2\n#SBATCH --cpus-per-task=8\n") + \
        "torchrun --standalone --nproc-per-node=2 train.py\n"
    assert _codes(text, site)
    assert not _codes(text)                                     # without the profile nothing says they are slices
    assert not _codes(text.replace("--partition=mig", "--partition=gpu"), site)


def test_several_tasks_shown_the_same_slices_are_an_error():
    text = JOB.format(part="mig", resources="#SBATCH --gres=gpu:1g.10gb:4\n#SBATCH --ntasks-per-node=4\n") + \
        "srun python train_ddp.py\n"
    [finding] = _codes(text)
    assert "srun starts 4 tasks on a node of 4 MIG slices (1g.10gb) and binds no slice to each" in finding.message


@pytest.mark.parametrize("resources, command", [
    ("#SBATCH --gres=gpu:a100:2\n", "torchrun --standalone --nproc-per-node=2 train.py\n"),      # whole GPUs
    ("#SBATCH --gres=gpu:1g.10gb:1\n", "python train.py\n"),                                     # one slice
    ("#SBATCH --gres=gpu:1g.10gb:2\n", "torchrun --standalone --nproc-per-node=1 train.py\n"),    # one worker
    ("#SBATCH --gres=gpu:1g.10gb:2\n#SBATCH --ntasks-per-node=2\n",                              # picks its own
     "srun bash -c 'CUDA_VISIBLE_DEVICES=$(cut -d, -f$((SLURM_LOCALID+1)) <<< \"$CUDA_VISIBLE_DEVICES\") python t.py'\n"),
])
def test_hpc142_leaves_alone(resources, command):
    assert not _codes(JOB.format(part="mig", resources=resources) + command)


def test_one_worker_on_one_slice_is_hpc108s_not_hpc142s():
    text = JOB.format(part="mig", resources="#SBATCH --gres=gpu:1g.10gb:1\n") + \
        "torchrun --standalone --nproc-per-node=2 train.py\n"
    assert not _codes(text) and _codes(text, code="HPC108")


def test_one_slice_per_task_on_a_node_is_advice():
    text = JOB.format(part="mig", resources="#SBATCH --ntasks=2\n#SBATCH --gpus-per-task=1g.10gb:1\n") + \
        "srun python train_ddp.py\n"
    [finding] = _codes(text, code="HPC143")
    assert finding.severity == "info" and "each on its own MIG slice (1g.10gb" in finding.message
    assert not _codes(text)
    # a total beside the per-task count still binds one slice to each task
    total = text.replace("#SBATCH --ntasks=2\n", "#SBATCH --ntasks=2\n#SBATCH --gpus=1g.10gb:2\n")
    assert _codes(total, code="HPC143") and not _codes(total)
    # one task per node: nothing to say
    spread = text.replace("#SBATCH --ntasks=2\n", "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n")
    assert not _codes(spread, code="HPC143")
    # whole GPUs, one per task: nothing to say
    assert not _codes(text.replace("1g.10gb:1", "a100:1"), code="HPC143")


# ------------------------------------------------------------------------------------------------
# J1: HPC513 and a GPU named by UUID
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, what", [
    ("MIG-GPU-a7449be4-8516-9501-f69d-1e5841e103ce/13/0", "MIG slice"),
    ("MIG-e7aa6185-06d5-53e9-a4d9-00f7670f741e", "MIG slice"),
    ("GPU-8932f937-d72c-4106-c12f-20bd9faed9f6", "GPU"),
])
def test_a_fixed_device_uuid_is_reported(value, what):
    text = JOB.format(part="mig", resources="#SBATCH --gres=gpu:1g.10gb:1\n") + \
        f"export CUDA_VISIBLE_DEVICES={value}\npython train.py\n"
    [finding] = _codes(text, code="HPC513")
    assert f"names a {what} by its UUID" in finding.message and finding.line == 5


def test_slurms_own_value_is_not_a_fixed_uuid():
    text = JOB.format(part="mig", resources="#SBATCH --gres=gpu:1g.10gb:1\n") + \
        "export CUDA_VISIBLE_DEVICES=$SLURM_JOB_GPUS\npython train.py\n"
    assert not [f for f in _codes(text, code="HPC513") if "UUID" in f.message]


# ------------------------------------------------------------------------------------------------
# B4: a site whose every GPU partition gives whole nodes
# ------------------------------------------------------------------------------------------------
ALPS = '''name = "alps"
runtimes = ["apptainer"]
scratch = "$SCRATCH"
image_dir = "$SCRATCH/images"
cache_dir = "$SCRATCH/.apptainer/cache"
gpu_vendor = "nvidia"
default_partition = "normal"
default_gpu_partition = "normal"

[[partitions]]
name = "normal"
max_time = "1-00:00:00"
max_nodes = 2
cpus_per_node = 288
mem_per_node = "460000M"
gpus_per_node = 4
is_default = true
whole_nodes = true
'''


def test_the_one_gpu_examples_say_they_pay_for_the_whole_node():
    site = profile_from_toml(ALPS)
    ex = examples(site)
    for name in ("single-gpu", "array-sweep", "charliecloud"):
        assert "gives every job whole nodes and bills them, and no partition of alps that shares nodes fits this " \
               "job: it pays for the whole node" in ex[name].description, name
        assert "(HPC415)" in ex[name].description
        codes = {f.code for f in lint(ex[name].render(), site) if f.severity != "info"}
        assert codes == {"HPC415"}, (name, codes)
    assert "HPC415" in ex["jupyter"].description
    assert "multi-node-torchrun uses every GPU" not in ex["jupyter"].description   # it asks for none
    multi = ex["multi-node-torchrun"]
    assert "whole nodes" not in multi.description and _warnings(multi.render(), site) == []


def test_profile_check_notes_a_site_without_a_partition_that_shares_gpu_nodes():
    site = profile_from_toml(ALPS)
    note = whole_node_default_note(site)
    assert note.startswith("partition normal, the site's only GPU partition, gives every job whole nodes")
    assert "1 of a node's 4 GPUs pays for the whole node" in note and "HPC415" in note
    # HPC415 is what the note and the descriptions announce
    assert whole_node_warnings(site, SlurmJob(partition="normal", gpus_per_node=1))
    # a partition that shares nodes: the examples move there, and the old note (or none) applies
    shared = profile_from_toml(ALPS.replace('is_default = true\nwhole_nodes = true\n',
                                            'is_default = true\nwhole_nodes = true\n\n[[partitions]]\nname = '
                                            '"shared"\nmax_time = "1-00:00:00"\ncpus_per_node = 288\nmem_per_node = '
                                            '"460000M"\ngpus_per_node = 4\n'))
    assert "the site's only GPU partition" not in whole_node_default_note(shared)
    assert _directive(examples(shared)["single-gpu"].render(), "partition") == "shared"
    for name in ("midway3", "generic", "local"):
        assert whole_node_default_note(load_profile(name)) == ""


# ------------------------------------------------------------------------------------------------
# J6: HPC406 in the singular
# ------------------------------------------------------------------------------------------------
def test_hpc406_counts_one_task_and_one_cpu_in_the_singular():
    site = profile_from_toml(HEAD.format(name="t", default_gpu="") .replace('default_gpu_partition = ""\n', ""))
    one_task = "#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n" \
               "#SBATCH --cpus-per-task=300\n#SBATCH --time=01:00:00\nsrun --cpus-per-task=300 ./app\n"
    [finding] = _codes(one_task, site, "HPC406")
    assert finding.message.startswith("1 task per node × 300 CPUs per task = 300 CPUs per node")
    one_cpu = "#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=300\n" \
              "#SBATCH --time=01:00:00\nsrun ./app\n"
    [finding] = _codes(one_cpu, site, "HPC406")
    assert finding.message.startswith("300 tasks per node × 1 CPU per task = 300 CPUs per node")
