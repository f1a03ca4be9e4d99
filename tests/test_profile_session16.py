"""Session 16: what real clusters' profiles need to say (EPCC Cirrus slurm.conf, ARIS, LUMI).

A partition with GPUs but no GPU types takes any typed request; memory per CPU and per GPU (DefMemPerCPU,
MaxMemPerCPU, DefMemPerGPU) are held, detected and linted (HPC412, HPC413); values are read leniently where their
meaning is plain and refused with the fix where they are ambiguous.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import ProfileError
from hpcwidgets.lint import lint
from hpcwidgets.parse.script import read_script
from hpcwidgets.profiles import load_profile, profile_from_toml, profile_to_toml
from hpcwidgets.run.detect import detect_from_saved, profile_from_scontrol
from hpcwidgets.spec.profile import ClusterProfile, Partition, check_job, job_gpu_types
from hpcwidgets.spec.slurm import SlurmJob

DATA = Path(__file__).resolve().parent / "data" / "profiles"


def codes(findings) -> list[str]:
    return [f.code for f in findings if f.severity != "info"]


def lumi(**gpu) -> ClusterProfile:
    """LUMI as a site author writes it without knowing the gres type names: 8 GPUs per node, nothing more."""
    return ClusterProfile(name="lumi", gpu_vendor="amd", default_partition="standard",
                          partitions=(Partition("standard", cpus_per_node=128, mem_per_node="224G", is_default=True),
                                      Partition("standard-g", cpus_per_node=56, mem_per_node="480G",
                                                gpus_per_node=8, **gpu)))


def script(*directives: str, body: str = "srun python train.py") -> str:
    return "#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives) + "#SBATCH --time=02:00:00\n" + body + "\n"


# ------------------------------------------------------------------------------------------------
# GPU types: unknown to the profile is not forbidden
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("request_", ["--gres=gpu:mi250:8", "--gpus-per-node=mi250:8", "--gpus=mi250:16",
                                      "--gpus-per-task=mi250:1"])
def test_a_partition_without_gpu_types_takes_any_typed_request(request_: str) -> None:
    text = script("--partition=standard-g", "--nodes=2", request_, "--ntasks-per-node=8")
    assert "HPC404" not in codes(lint(text, lumi()))
    assert check_job(lumi(), read_script(text).job) == []


@pytest.mark.parametrize("request_, line", [("--gres=gpu:mi100:8", 3), ("--gpus-per-node=mi100:4", 3),
                                            ("--gpus=mi100:16", 3), ("--gpus-per-task=mi100:1", 3)])
def test_a_partition_that_lists_types_still_refuses_another(request_: str, line: int) -> None:
    site = lumi(gpu_types=("mi250",))
    text = script("--partition=standard-g", request_, "--ntasks-per-node=8", "--nodes=2")
    found = [f for f in lint(text, site) if f.code == "HPC404"]
    # the finding is at the GPU request that names the type, whichever option it is
    assert [(f.line, f.severity) for f in found] == [(line, "error")]
    assert "'mi100' is not available in partition standard-g; use one of: mi250" in found[0].message
    assert "HPC404" not in codes(lint(text.replace("mi100", "mi250"), site))


def test_every_type_of_a_several_type_request_is_checked() -> None:
    site = lumi(gpu_types=("mi250",))
    job = SlurmJob(partition="standard-g", gpus_per_node="mi250:2,mi100:1")
    assert job_gpu_types(job) == ("mi250", "mi100")
    assert [p.message.split(";")[0] for p in check_job(site, job)] == [
        "GPU type 'mi100' is not available in partition standard-g"]


def test_the_hint_names_partitions_that_list_the_type() -> None:
    site = ClusterProfile(name="s", gpu_vendor="nvidia", partitions=(
        Partition("gpu", gpus_per_node=4, gpu_types=("v100",)),
        Partition("ampere", gpus_per_node=4, gpu_types=("a100",)), Partition("any", gpus_per_node=4)))
    problems = check_job(site, SlurmJob(partition="gpu", gpus_per_node=1, gpu_type="a100"))
    assert problems[0].message.endswith("(partitions with a100: ampere)")
    assert check_job(site, SlurmJob(partition="any", gpus_per_node=1, gpu_type="a100")) == []


def test_detection_fills_types_from_the_gres_and_leaves_untyped_gpus_open() -> None:
    profile = detect_from_saved(DATA / "cirrus", "cirrus", notes=[])
    gpu = profile.partition("gpu")
    assert gpu.gpu_types == ("GV100GL",) and not gpu.offers_gpu_type("a100") and gpu.offers_gpu_type("GV100GL")
    untyped = profile_from_scontrol("PartitionName=g Nodes=n1 State=UP MaxTime=1:00:00\n",
                                    "NodeName=n1 CPUTot=8 RealMemory=64000 Gres=gpu:4 Partitions=g\n", notes=[])
    assert untyped.partition("g").gpu_types == () and untyped.partition("g").offers_gpu_type("mi250")


# ------------------------------------------------------------------------------------------------
# memory per CPU and per GPU: the fields
# ------------------------------------------------------------------------------------------------
CIRRUS_MEM = '''name = "cirrus"
gpu_vendor = "nvidia"

[[partitions]]
name = "standard"
cpus_per_node = 36
mem_per_node = 257400
def_mem_per_cpu = 7150
max_mem_per_cpu = "7150M"

[[partitions]]
name = "gpu"
cpus_per_node = 40
mem_per_node = "385180M"
gpus_per_node = 4
def_mem_per_cpu = "9628M"
max_mem_per_cpu = "9628M"
'''


def cirrus() -> ClusterProfile:
    return profile_from_toml(CIRRUS_MEM)


def test_memory_per_cpu_is_read_and_written_back() -> None:
    site = cirrus()
    standard = site.partition("standard")
    assert (standard.mem_per_node, standard.def_mem_per_cpu, standard.max_mem_per_cpu) == ("257400M", "7150M", "7150M")
    assert profile_from_toml(profile_to_toml(site)) == site


@pytest.mark.parametrize("keys, message", [
    ('def_mem_per_cpu = "8G"\nmax_mem_per_cpu = "4G"', "default memory per CPU 8G is more than the maximum 4G; "
                                                       "lower it to at most 4G"),
    ('def_mem_per_gpu = "20G"', "def_mem_per_gpu is set but the partition has no GPUs"),
    ('max_mem_per_cpu = "4 GB"', "is not a Slurm memory size"),
    ('def_mem_per_cpu = "0"', "default memory per CPU '0' is not a node size"),
])
def test_memory_per_cpu_problems_name_the_fix(keys: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        profile_from_toml(f'name = "s"\n\n[[partitions]]\nname = "cpu"\n{keys}\n')
    assert message in str(info.value)


def test_detection_reads_memory_per_cpu_from_the_cirrus_slurm_conf() -> None:
    # tests/data/profiles/cirrus: the partition lines of EPCC's slurm.conf (DefMemPerCPU=7150 MaxMemPerCPU=7150 …)
    profile = detect_from_saved(DATA / "cirrus", "cirrus", notes=[])
    got = {p.name: (p.def_mem_per_cpu, p.max_mem_per_cpu, p.def_mem_per_gpu) for p in profile.partitions}
    assert got["standard"] == ("7150M", "7150M", "")
    assert got["gpu"] == ("9628M", "9628M", "")
    assert got["highmem"] == ("27639M", "27639M", "")


# a partition as `scontrol show partition` printed it on a site with DefMemPerGPU (public issue thread quoting
# scontrol output: JobDefaults=DefMemPerGPU=20480 beside DefMemPerCPU=100)
GPU_PARTITION = """PartitionName=cemp_gpu_p
   AllowGroups=ALL AllowAccounts=ALL AllowQos=cemp_gpu
   AllocNodes=ALL Default=NO QoS=N/A
   DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO
   MaxNodes=UNLIMITED MaxTime=5-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED
   Nodes=supergpu06
   PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO
   OverTimeLimit=NONE PreemptMode=GANG,SUSPEND
   State=UP TotalCPUs=240 TotalNodes=1 SelectTypeParameters=NONE
   JobDefaults=DefMemPerGPU=20480
   DefMemPerCPU=100 MaxMemPerNode=UNLIMITED
   TRES=cpu=220,mem=1988645M,node=1,billing=220,gres/gpu=2
"""
GPU_NODE = "NodeName=supergpu06 CPUTot=240 RealMemory=1988645 Gres=gpu:2 Partitions=cemp_gpu_p\n"


def test_detection_reads_def_mem_per_gpu_from_job_defaults() -> None:
    part = profile_from_scontrol(GPU_PARTITION, GPU_NODE, notes=[]).partition("cemp_gpu_p")
    assert (part.def_mem_per_gpu, part.def_mem_per_cpu, part.max_mem_per_cpu) == ("20G", "100M", "")


def test_a_partition_without_its_own_memory_per_cpu_takes_the_clusters() -> None:
    parts = ("PartitionName=open Nodes=n1 State=UP DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED\n"
             "PartitionName=pernode Nodes=n1 State=UP DefMemPerNode=32000 MaxMemPerNode=64000\n")
    nodes = "NodeName=n1 CPUTot=64 RealMemory=256000 Partitions=open,pernode\n"
    # `scontrol show config | grep -i mempercpu`, as a site's documentation prints it
    config = "DefMemPerCPU            = 4000\nMaxMemPerCPU            = 31250\n"
    profile = profile_from_scontrol(parts, nodes, config_text=config, notes=[])
    assert (profile.partition("open").def_mem_per_cpu, profile.partition("open").max_mem_per_cpu) == ("4000M", "31250M")
    # a partition that sets memory per node does not take the cluster's per CPU: the two are exclusive
    assert (profile.partition("pernode").def_mem_per_cpu, profile.partition("pernode").max_mem_per_cpu) == ("", "")
    assert profile_from_scontrol(parts, nodes, notes=[]).partition("open").def_mem_per_cpu == ""


# ------------------------------------------------------------------------------------------------
# HPC412: --mem-per-cpu above MaxMemPerCPU
# ------------------------------------------------------------------------------------------------
def test_mem_per_cpu_above_the_maximum_is_a_warning_at_its_line() -> None:
    text = script("--partition=standard", "--ntasks=1", "--mem-per-cpu=16G")
    found = [f for f in lint(text, cirrus()) if f.code == "HPC412"]
    assert [(f.line, f.severity) for f in found] == [(4, "warning")]
    message = found[0].message
    assert message.startswith("--mem-per-cpu=16G is more than the 7150M per CPU partition standard allows")
    assert "raises the CPUs per task to 3" in message       # 16384M over 7150M per CPU: 3 CPUs
    assert message.endswith("ask for --mem-per-cpu=7150M or less, with --cpus-per-task=3 if each task needs 16G")


def test_mem_per_cpu_above_the_maximum_with_cpus_per_task_and_a_full_node() -> None:
    text = script("--partition=standard", "--ntasks-per-node=10", "--cpus-per-task=2", "--mem-per-cpu=14000M")
    message = next(f.message for f in lint(text, cirrus()) if f.code == "HPC412")
    assert "changes --cpus-per-task=2 to cover it" in message
    assert "10 tasks × 4 CPUs is more than a node's 36 CPUs, so the job may be refused" in message
    assert "with --cpus-per-task=4 if each task needs 28000M" in message


@pytest.mark.parametrize("directive", ["--mem-per-cpu=7150M", "--mem-per-cpu=4G", "--mem=200G"])
def test_memory_within_the_maximum_per_cpu_is_left_alone(directive: str) -> None:
    assert "HPC412" not in codes(lint(script("--partition=standard", directive), cirrus()))


def test_no_maximum_per_cpu_no_warning() -> None:
    site = cirrus().replace(partitions=tuple(p.replace(max_mem_per_cpu="") for p in cirrus().partitions))
    assert "HPC412" not in codes(lint(script("--partition=standard", "--mem-per-cpu=16G"), site))


# ------------------------------------------------------------------------------------------------
# HPC413: no memory request, and a default far below the job's share of a node
# ------------------------------------------------------------------------------------------------
def test_a_gpu_job_with_one_cpu_and_no_memory_is_warned() -> None:
    text = script("--partition=gpu", "--gres=gpu:1")
    found = [f for f in lint(text, cirrus()) if f.code == "HPC413"]
    assert [(f.line, f.severity) for f in found] == [(2, "warning")]   # at --partition: no memory line to point at
    assert found[0].message == (
        "the job asks for no memory, so Slurm gives it DefMemPerCPU 9628M × 1 CPU = 9628M per node on partition gpu: "
        "less than half of the 94G that its 1 of a node's 4 GPUs come with (of 385180M); add --mem with what the job "
        "needs, e.g. --mem=94G")


@pytest.mark.parametrize("directives", [
    ("--partition=gpu", "--gres=gpu:1", "--mem=90G"),
    ("--partition=gpu", "--gres=gpu:1", "--mem-per-gpu=90G"),
    ("--partition=gpu", "--gres=gpu:1", "--cpus-per-task=10"),     # 10 × 9628M: the GPU's share of the node
    ("--partition=gpu", "--gres=gpu:1", "--exclusive"),
    ("--partition=standard", "--ntasks=1"),                         # a CPU's share is what DefMemPerCPU gives
    ("--partition=standard", "--ntasks-per-node=36"),
])
def test_jobs_with_memory_or_their_share_are_left_alone(directives: tuple[str, ...]) -> None:
    assert "HPC413" not in codes(lint(script(*directives), cirrus()))


def test_a_diagnostics_only_job_needs_no_memory() -> None:
    assert "HPC413" not in codes(lint(script("--partition=gpu", "--gres=gpu:1", body="nvidia-smi"), cirrus()))


def test_def_mem_per_gpu_is_the_default_of_a_gpu_job() -> None:
    site = cirrus().replace(partitions=tuple(p.replace(def_mem_per_gpu="90G") if p.name == "gpu" else p
                                             for p in cirrus().partitions))
    assert "HPC413" not in codes(lint(script("--partition=gpu", "--gres=gpu:1"), site))
    small = site.replace(partitions=tuple(p.replace(def_mem_per_gpu="8G") if p.name == "gpu" else p
                                          for p in site.partitions))
    message = next(f.message for f in lint(script("--partition=gpu", "--gres=gpu:2"), small) if f.code == "HPC413")
    assert "DefMemPerGPU 8G × 2 GPUs = 16G per node" in message


# ------------------------------------------------------------------------------------------------
# lenient values, consistently
# ------------------------------------------------------------------------------------------------
def partition_with(line: str) -> Partition:
    return profile_from_toml(f'name = "s"\ngpu_vendor = "nvidia"\n\n[[partitions]]\nname = "gpu"\n'
                             f'gpus_per_node = 4\n{line}\n').partitions[0]


@pytest.mark.parametrize("line, field, value", [
    ("mem_per_node = 257400", "mem_per_node", "257400M"),       # slurm.conf's RealMemory, in MB
    ("gpu_node_mem = 1000", "gpu_node_mem", "1000M"),
    ("max_mem_per_job = 40960", "max_mem_per_job", "40960M"),
    ('cpus_per_node = " 36 "', "cpus_per_node", 36),
    ("max_nodes = 4.0", "max_nodes", 4),
    ('max_nodes = "UNLIMITED"', "max_nodes", None),              # scontrol's MaxNodes=UNLIMITED: no limit
    ('max_mem_per_cpu = "UNLIMITED"', "max_mem_per_cpu", ""),
])
def test_unambiguous_values_are_read(line: str, field: str, value) -> None:
    assert getattr(partition_with(line), field) == value


@pytest.mark.parametrize("line, message", [
    ("max_time = 48", 'a bare number is ambiguous as a time limit: write "48" in quotes for 48 minutes (as Slurm '
                      'reads it) or "48:00:00" for 48 hours'),
    ("default_time = 1.5", "1.5 is not a Slurm time; write it in quotes as D-HH:MM:SS"),
    ("mem_per_node = 257.4", 'write whole MB as slurm.conf does, or a size with its unit in quotes, e.g. "263578M" '
                             'for 257.4G'),
    ("max_nodes = 2.5", "2.5 is not a whole number; write a count such as 2"),
])
def test_ambiguous_values_are_refused_with_the_fix(line: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        partition_with(line)
    assert message in str(info.value)


def test_profile_check_lists_every_problem_at_once(tmp_path: Path, capsys) -> None:
    site = tmp_path / "site.toml"
    site.write_text('name = "site"\n\n[[partitions]]\nname = "cpu"\nmax_time = 48\nmem_per_node = 257.4\n'
                    'cpus_per_node = "many"\ndef_mem_per_cpu = "8G"\nmax_mem_per_cpu = "4G"\n')
    assert main(["profile", "check", str(site)]) == 2
    err = capsys.readouterr().err
    assert "(4 problems)" in err
    for key, line in (("max_time", 5), ("mem_per_node", 6), ("cpus_per_node", 7), ("def_mem_per_cpu", 8)):
        assert f"line {line}, partition 'cpu': partitions" in err and key in err


def test_shipped_profiles_stay_valid_and_say_their_memory_per_cpu() -> None:
    for name in ("generic", "local", "midway3"):
        load_profile(name)
    caslake = load_profile("midway3").partition("caslake")
    assert (caslake.def_mem_per_cpu, caslake.max_mem_per_cpu) == ("1G", "3900M")


def test_typed_gpus_in_total_count_as_gpus_and_hints_offer_the_type() -> None:
    generic = load_profile("generic")                 # partition gpu lists a100; the default, cpu, has no GPUs
    text = "#!/bin/bash\n#SBATCH --gpus={}\n#SBATCH --time=1:00:00\npython train.py\n"
    found = [f.message for f in lint(text.format("a100:1"), generic) if f.code == "HPC407"]
    assert found and found[0].endswith("use a GPU partition: gpu")
    found = [f.message for f in lint(text.format("p100:1"), generic) if f.code == "HPC407"]
    assert found and found[0].endswith("use a GPU partition: gpu, with GPU type a100 or no GPU type (no partition it "
                                       "may use has p100 GPUs)")
