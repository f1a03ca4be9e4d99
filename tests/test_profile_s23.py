"""Cluster profile gaps: one method for the partition of a part-of-node job (ClusterProfile.part_of_node_partition),
threads per core (Partition.threads_per_core, --hint=nomultithread / --threads-per-core=1 in the profile check and
HPC322), the default memory per node (DefMemPerNode, Partition.def_mem_per_node), job_env written back as a
[job_env] table, and the line of a [job_env] problem."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcwidgets.errors import ProfileError
from hpcwidgets.examples import examples
from hpcwidgets.lessons import site_job
from hpcwidgets.lint import lint
from hpcwidgets.profiles import SHIPPED_DIR, load_profile, profile_from_toml, profile_to_toml
from hpcwidgets.run.detect import profile_from_scontrol
from hpcwidgets.spec.profile import (ClusterProfile, Partition, check_job, job_warnings, least_nodes,
                                     one_thread_per_core, partition_sharing_nodes)
from hpcwidgets.spec.slurm import SlurmJob

ROOT = Path(__file__).resolve().parents[1]
TEST_PROFILES = sorted((ROOT / "tests" / "data" / "profiles").glob("*.toml"))
ALL_PROFILES = sorted(SHIPPED_DIR.glob("*.toml")) + TEST_PROFILES


def _site(text: str) -> ClusterProfile:
    return profile_from_toml('name = "s"\n' + text)


# ------------------------------------------------------------------------------------------------
# 1. the partition of a part-of-node job
# ------------------------------------------------------------------------------------------------
def test_a_whole_node_gpu_default_sends_a_one_gpu_job_to_the_sharing_partition():
    site = load_profile(ROOT / "tests/data/profiles/amd_whole_s22.toml")
    whole = site.default(gpu=True)
    assert whole.name == "gpu-whole" and whole.whole_nodes
    # the sharing partition with the longest time (gpu-dev is for development and shorter)
    assert site.part_of_node_partition(whole).name == "gpu-shared"
    # four GPUs use the whole node: it stays
    assert site.part_of_node_partition(whole, gpus=4) is whole
    assert site.part_of_node_partition(None) is None
    # the lessons' one-GPU job and the examples' single-GPU job ask the same method
    assert site_job(site, gpus=1).partition == "gpu-shared"
    assert "#SBATCH --partition=gpu-shared" in examples(site)["single-gpu"].render()


def test_a_whole_node_cpu_partition_counts_the_cpus_asked():
    site = _site('default_partition = "standard"\n'
                 '[[partitions]]\nname = "standard"\ncpus_per_node = 128\nmax_time = "2-00:00:00"\nwhole_nodes = true\n'
                 '[[partitions]]\nname = "small"\ncpus_per_node = 128\nmax_time = "3-00:00:00"\n')
    standard = site.partition("standard")
    assert site.part_of_node_partition(standard, cpus_per_task=8).name == "small"   # 8 of 128 CPUs
    assert site.part_of_node_partition(standard, cpus_per_task=128) is standard      # the whole node
    assert site.part_of_node_partition(standard) is standard  # no CPU request: nothing says it is part of a node


@pytest.mark.parametrize("path", ALL_PROFILES, ids=lambda p: p.stem)
def test_the_method_answers_as_the_sharing_lookup_does(path):
    site = load_profile(path)
    for part in site.partitions:
        for gpus in (1, 2):
            job = SlurmJob(**site.job_fields(part), gpus_per_node=gpus if part.has_gpus else 0, cpus_per_task=4)
            assert site.part_of_node_partition(part, gpus=gpus, cpus_per_task=4) is (
                partition_sharing_nodes(site, part, job) or part)


# ------------------------------------------------------------------------------------------------
# 2. threads per core
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, expected", [
    (("--hint=nomultithread",), True),
    (("--hint", "nomultithread"), True),
    (("--hint nomultithread",), True),
    (("--hint=compute_bound",), True),
    (("--threads-per-core=1",), True),
    (("--threads-per-core=2",), False),
    (("--hint=multithread",), False),
    (("--hint=nomultithread", "--hint=multithread"), False),   # the last one wins
    (("--exclusive", "--constraint=x"), None),
    ((), None),
])
def test_one_thread_per_core_reads_the_options(options, expected):
    assert one_thread_per_core(options) is expected


def test_hints_can_be_left_out():
    assert one_thread_per_core(("--hint=nomultithread",), hints=False) is None
    assert one_thread_per_core(("--threads-per-core=1",), hints=False) is True


SMT = _site('default_partition = "cpu"\n[[partitions]]\nname = "cpu"\ncpus_per_node = 128\nthreads_per_core = 2\n'
            'mem_per_node = "200G"\nmax_nodes = 8\nmax_time = "1-00:00:00"\n')


def test_one_thread_per_core_halves_a_nodes_cpus_in_the_profile_check():
    job = SlurmJob(nodes=1, ntasks_per_node=1, cpus_per_task=128, time="01:00:00")
    assert check_job(SMT, job) == []
    nomt = job.replace(extra_directives=("--hint=nomultithread",))
    problems = check_job(SMT, nomt)
    assert [p.field for p in problems] == ["cpus_per_task"]
    assert "have 64 usable" in problems[0].message and "2 threads per core" in problems[0].message
    assert check_job(SMT, nomt.replace(cpus_per_task=64)) == []
    # without threads_per_core the profile cannot say: nothing is reported
    plain = _site('default_partition = "cpu"\n[[partitions]]\nname = "cpu"\ncpus_per_node = 128\n')
    assert check_job(plain, nomt) == []


def test_one_thread_per_core_spreads_tasks_over_more_nodes():
    part = SMT.partition("cpu")
    job = SlurmJob(ntasks=4, cpus_per_task=64)
    assert least_nodes(job, part) == 2
    assert least_nodes(job.replace(extra_directives=("--threads-per-core=1",)), part) == 4


def _step_over_job(site: ClusterProfile | None, job_lines: str = "", step_options: str = "") -> list[str]:
    script = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=3\n"
              f"#SBATCH --time=01:00:00\n#SBATCH --mem=4G\n{job_lines}"
              f"srun -n 4 --cpus-per-task=1 {step_options}./a.out\n")
    return [f.message for f in lint(script, site) if f.code == "HPC322"]


def _cpu_site(threads: int | None) -> ClusterProfile:
    line = f"threads_per_core = {threads}\n" if threads else ""
    return _site('scheduler_version = "23.11"\ndefault_partition = "cpu"\n[[partitions]]\nname = "cpu"\n'
                 f'cpus_per_node = 64\nmem_per_node = "200G"\n{line}')


def test_hpc322_rounds_to_whole_cores_only_where_cores_may_have_two_threads():
    # 4 tasks of 1 CPU in a job of 3: on two-thread cores the job holds 4 CPUs (two cores), so it fits
    assert _step_over_job(None) == []
    assert _step_over_job(_cpu_site(None)) == []
    assert _step_over_job(_cpu_site(2)) == []
    found = _step_over_job(_cpu_site(1))
    assert len(found) == 1 and "the step asks for 4 CPUs of the job's 3" in found[0]


def test_hpc322_counts_cores_for_a_job_of_one_thread_per_core():
    # --threads-per-core=1 reaches the steps (SLURM_THREADS_PER_CORE): 4 cores asked, 3 held
    found = _step_over_job(None, "#SBATCH --threads-per-core=1\n")
    assert len(found) == 1 and "one core for each CPU" in found[0]
    # --hint alone: the steps may not keep to it, so the other threads may serve them: not an error
    assert _step_over_job(None, "#SBATCH --hint=nomultithread\n") == []


def test_hpc322_counts_a_steps_own_one_thread_per_core_where_cores_have_two_threads():
    found = _step_over_job(_cpu_site(2), step_options="--hint=nomultithread ")
    assert len(found) == 1 and "8 of the job's CPUs" in found[0]
    assert _step_over_job(_cpu_site(None), step_options="--hint=nomultithread ") == []  # may be one thread a core


def test_detection_reads_threads_per_core_where_the_nodes_agree():
    parts = ("PartitionName=a Nodes=n[1-2] Default=YES MaxTime=1-00:00:00 State=UP\n"
             "PartitionName=b Nodes=n3 MaxTime=1-00:00:00 State=UP\n"
             "PartitionName=c Nodes=n[1-3] MaxTime=1-00:00:00 State=UP\n")
    nodes = ("NodeName=n1 CPUTot=64 RealMemory=256000 ThreadsPerCore=2 Partitions=a,c\n"
             "NodeName=n2 CPUTot=64 RealMemory=256000 ThreadsPerCore=2 Partitions=a,c\n"
             "NodeName=n3 CPUTot=32 RealMemory=128000 ThreadsPerCore=1 Partitions=b,c\n")
    site = profile_from_scontrol(parts, nodes)
    by_name = {p.name: p for p in site.partitions}
    assert by_name["a"].threads_per_core == 2 and by_name["b"].threads_per_core == 1
    assert by_name["c"].threads_per_core is None and "differ in threads per core" in by_name["c"].description
    assert site.problems() == []
    assert profile_from_toml(profile_to_toml(site)) == site


# ------------------------------------------------------------------------------------------------
# 3. the default memory per node
# ------------------------------------------------------------------------------------------------
def test_detection_keeps_def_mem_per_node():
    parts = ("PartitionName=own Nodes=n1 Default=YES MaxTime=1-00:00:00 State=UP DefMemPerNode=32000\n"
             "PartitionName=cluster Nodes=n1 MaxTime=1-00:00:00 State=UP DefMemPerNode=UNLIMITED\n"
             "PartitionName=percpu Nodes=n1 MaxTime=1-00:00:00 State=UP DefMemPerCPU=2000\n")
    nodes = "NodeName=n1 CPUTot=64 RealMemory=256000 Partitions=own,cluster,percpu\n"
    site = profile_from_scontrol(parts, nodes, config_text="DefMemPerNode = 8000\n")
    got = {p.name: (p.def_mem_per_node, p.def_mem_per_cpu) for p in site.partitions}
    assert got == {"own": ("32000M", ""), "cluster": ("8000M", ""), "percpu": ("", "2000M")}
    assert site.problems() == []
    # a cluster default per CPU is not a default per node
    site = profile_from_scontrol(parts, nodes, config_text="DefMemPerCPU = 1000\n")
    got = {p.name: (p.def_mem_per_node, p.def_mem_per_cpu) for p in site.partitions}
    assert got == {"own": ("32000M", ""), "cluster": ("", "1000M"), "percpu": ("", "2000M")}


def test_a_default_per_cpu_and_per_node_together_is_a_profile_problem():
    with pytest.raises(ProfileError) as info:
        _site('[[partitions]]\nname = "p"\ndef_mem_per_cpu = "1G"\ndef_mem_per_node = "8G"\n')
    assert "line 5" in str(info.value) and "keeps one default per partition" in str(info.value)
    assert _site('[[partitions]]\nname = "p"\ndef_mem_per_node = "UNLIMITED"\n').partitions[0].def_mem_per_node == ""
    assert _site('[[partitions]]\nname = "p"\ndef_mem_per_node = 32000\n').partitions[0].def_mem_per_node == "32000M"


def test_a_small_default_per_node_is_warned_like_one_per_cpu():
    site = _site('gpu_vendor = "nvidia"\ndefault_partition = "gpu"\n[[partitions]]\nname = "gpu"\ncpus_per_node = 32\n'
                 'mem_per_node = "256G"\ngpus_per_node = 4\ndef_mem_per_node = "4G"\n')
    job = SlurmJob(gpus_per_node=2, cpus_per_task=16, time="01:00:00")
    warned = [p for p in job_warnings(site, job) if p.field == "mem"]
    assert len(warned) == 1 and "DefMemPerNode = 4G per node" in warned[0].message
    assert "--mem=128G" in warned[0].message  # half the node: its 2 of 4 GPUs, its 16 of 32 CPUs
    # a default that gives the job its share says nothing
    roomy = site.replace(partitions=(site.partitions[0].replace(def_mem_per_node="128G"),))
    assert [p for p in job_warnings(roomy, job) if p.field == "mem"] == []
    # lint reports it as HPC413
    script = "#!/bin/bash\n#SBATCH --gpus-per-node=2\n#SBATCH --cpus-per-task=16\n#SBATCH --time=01:00:00\nsrun ./a\n"
    assert "HPC413" in [f.code for f in lint(script, site)]


# ------------------------------------------------------------------------------------------------
# 4. job_env written as a [job_env] table; the round trip
# ------------------------------------------------------------------------------------------------
def test_job_env_is_written_as_a_table():
    site = load_profile("midway3").replace(job_env=("NCCL_IB_TIMEOUT=22", "MIOPEN_USER_DB_PATH=/tmp/$USER-miopen"))
    for comments in (True, False):
        text = profile_to_toml(site, comments=comments)
        assert "job_env = " not in text
        assert tomllib.loads(text)["job_env"] == {"NCCL_IB_TIMEOUT": "22", "MIOPEN_USER_DB_PATH": "/tmp/$USER-miopen"}
        assert profile_from_toml(text) == site


def test_items_no_table_can_hold_stay_a_list():
    site = load_profile("midway3").replace(job_env=("NOVALUE", "A=1", "A=2"))
    text = profile_to_toml(site, comments=False)
    assert tomllib.loads(text)["job_env"] == ["NOVALUE", "A=1", "A=2"]
    assert profile_from_toml(text, validate=False) == site


@pytest.mark.parametrize("path", ALL_PROFILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("comments", [True, False])
def test_every_shipped_and_test_profile_round_trips(path, comments):
    site = load_profile(path)
    assert profile_from_toml(profile_to_toml(site, comments=comments)) == site
    with_env = site.replace(job_env=("NCCL_SOCKET_IFNAME=hsn0,hsn1", "OMP_PROC_BIND=close"))
    assert profile_from_toml(profile_to_toml(with_env, comments=comments)) == with_env


_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(lambda n: n != "_")
_VALUES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_NAMES, _VALUES, max_size=5), st.booleans())
def test_any_job_env_round_trips(table, comments):
    site = load_profile("generic").replace(job_env=tuple(f"{k}={v}" for k, v in table.items()))
    assert profile_from_toml(profile_to_toml(site, comments=comments), validate=False) == site


# ------------------------------------------------------------------------------------------------
# 5. the line of a [job_env] problem
# ------------------------------------------------------------------------------------------------
def _problems(text: str) -> list[str]:
    with pytest.raises(ProfileError) as info:
        profile_from_toml(text)
    return str(info.value).splitlines()[1:]


def test_a_bad_key_or_value_under_job_env_names_its_line():
    lines = _problems('name = "s"\n\n[job_env]\nOK = "1"\n"1NCCL" = "x"\nA = ["x", "y"]\nB = "fine"\n')
    assert lines == [
        "  - line 5: [job_env] key '1NCCL' is not a variable name (letters, digits and _, not starting with a digit); "
        "correct it",
        '  - line 6: [job_env] A = ["x", "y"] is a list, but a variable\'s value is one text: write it in quotes, '
        'e.g. A = "value"']


def test_a_value_the_check_refuses_names_its_line():
    lines = _problems('name = "s"\n[job_env]\nA = "x"\nQ = "\\"quoted\\""\n[modules]\napptainer = "apptainer"\n')
    assert len(lines) == 1 and lines[0].startswith("  - line 4: job_env[1]: Q=\"quoted\": the quotes would be part")


def test_list_items_name_their_own_lines():
    lines = _problems('name = "s"\njob_env = ["NOVALUE", "A=1",\n  "A=2"]\n')
    assert lines[0].startswith("  - line 2: job_env[0]: 'NOVALUE' has no value")
    assert lines[1] == "  - line 3: job_env[2]: A is set more than once; keep one value"


def test_the_other_variables_are_still_read_and_checked():
    # a bad key is dropped, the rest are checked: the value with quotes in line 5 is reported too
    lines = _problems('name = "s"\n[job_env]\n"1X" = "a"\nB = "ok"\nC = "\\"q\\""\n')
    assert [line.split(":")[0] for line in lines] == ["  - line 3", "  - line 5"]


# ------------------------------------------------------------------------------------------------
# the practice cluster: one thread per core, as the local profile says
# ------------------------------------------------------------------------------------------------
@pytest.mark.real
def test_the_practice_cluster_refuses_the_step_lint_reports_with_the_local_profile(tmp_path):
    import os
    import subprocess

    from helpers import need, need_tool
    from hpcwidgets.run import detect
    from hpcwidgets.run import practice_cluster as pc

    need_tool("sbatch", "Slurm's client programs (apt-get install slurm-client)")
    status = pc.status()
    need(status.running, f"the practice cluster is not up (hpcwidgets practice-cluster up): {status}")
    env = {**os.environ, "SLURM_CONF": str(status.slurm_conf)}
    local = load_profile("local")
    detected = detect.detect_profile("local", env={"SLURM_CONF": str(status.slurm_conf)})
    assert [p.threads_per_core for p in detected.partitions] == [p.threads_per_core for p in local.partitions] == [1]
    # one task of one CPU, a step of two tasks: no core has a second thread to give it
    script = (f"#!/bin/bash\n#SBATCH --partition={pc.PARTITION}\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\n"
              "#SBATCH --cpus-per-task=1\n#SBATCH --time=00:01:00\n#SBATCH --mem=100M\n"
              f"#SBATCH --output={tmp_path}/step-%j.out\nsrun -n 2 --cpus-per-task=1 hostname\n")
    assert [f.code for f in lint(script, local) if f.severity == "error"] == ["HPC322"]
    assert [f.code for f in lint(script, local.replace(partitions=tuple(
        p.replace(threads_per_core=None) for p in local.partitions))) if f.severity == "error"] == []
    path = tmp_path / "job.sh"
    path.write_text(script)
    done = subprocess.run(["sbatch", "--parsable", "--wait", str(path)], capture_output=True, text=True, env=env,
                          timeout=180)
    job_id = done.stdout.strip().split(";")[0]
    try:
        out = (tmp_path / f"step-{job_id}.out").read_text()
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, env=env, timeout=30)
    assert "More processors requested than permitted" in out
