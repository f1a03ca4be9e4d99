"""QOS in cluster profiles: the [[qos]] tables and qos_required, the job checks against QOS limits (and their lint
codes), and reading the QOS from sacctmgr during detection."""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ProfileError, RunError
from hpcwidgets.lint import lint
from hpcwidgets.profiles import profile_from_toml
from hpcwidgets.run import detect
from hpcwidgets.spec.profile import ClusterProfile, Partition, Qos, check_job
from hpcwidgets.spec.slurm import SlurmJob

# ------------------------------------------------------------------------------------------------
# sites
# ------------------------------------------------------------------------------------------------
#: Jean Zay-like: one V100 partition that allows 100 h, the QOS cut that down (qos_gpu-t3 is the partition's default)
JEANZAY = ClusterProfile(
    name="jeanzay", gpu_vendor="nvidia", default_partition="gpu_p13", default_gpu_partition="gpu_p13",
    partitions=(Partition(name="gpu_p13", max_time="100:00:00", max_nodes=128, cpus_per_node=40, gpus_per_node=4,
                          qos="qos_gpu-t3", allowed_qos=("qos_gpu-t3", "qos_gpu-t4", "qos_gpu-dev")),),
    qos=(Qos(name="qos_gpu-t3", max_time="20:00:00", max_gpus=512),
         Qos(name="qos_gpu-t4", max_time="100:00:00", max_gpus=16),
         Qos(name="qos_gpu-dev", max_time="02:00:00", max_gpus=32)))

#: ARCHER2-like: a job must name a QOS; the partition allows 2 days, the QOS less; largescale takes only big jobs
ARCHER2 = ClusterProfile(
    name="archer2", qos_required=True, default_partition="standard",
    partitions=(Partition(name="standard", is_default=True, max_time="2-00:00:00", max_nodes=5860,
                          allowed_qos=("standard", "short", "long", "largescale")),),
    qos=(Qos(name="standard", max_time="24:00:00", max_nodes=1024), Qos(name="short", max_time="00:20:00", max_nodes=4),
         Qos(name="long", max_time="48:00:00", max_nodes=64),
         Qos(name="largescale", max_time="12:00:00", min_nodes=1025, max_nodes=5860)))


def messages(profile: ClusterProfile, **job: object) -> list[str]:
    return [p.message for p in check_job(profile, SlurmJob(**job))]


def fields(profile: ClusterProfile, **job: object) -> list[str]:
    return [p.field for p in check_job(profile, SlurmJob(**job))]


# ------------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------------
def test_the_example_sites_are_valid():
    assert JEANZAY.problems() == [] and ARCHER2.problems() == []


@pytest.mark.parametrize("qos, field, words", [
    (Qos(), "name", "a QOS needs a name"),
    (Qos(name="gpu t3"), "name", "is not a QOS name"),
    (Qos(name="short", max_time="20 min"), "max_time", "maximum time of QOS short"),
    (Qos(name="largescale", min_nodes=1025, max_nodes=64), "min_nodes", "lower min_nodes or raise max_nodes"),
])
def test_a_qos_names_its_problem_and_the_fix(qos, field, words):
    problems = qos.problems()
    assert [p.field for p in problems] == [field] and words in problems[0].message


def test_qos_tables_read_from_toml_take_what_sacctmgr_and_sites_write():
    site = profile_from_toml('name = "x"\n[[partitions]]\nname = "standard"\n\n[[qos]]\nname = "standard"\n'
                             'max_time = "1-00:00:00"\nmax_nodes = "1024"\nmax_gpus = "UNLIMITED"\n')
    assert site.qos == (Qos(name="standard", max_time="1-00:00:00", max_nodes=1024),)


def test_a_bare_number_time_in_a_qos_table_is_refused_with_the_fix():
    with pytest.raises(ProfileError) as info:
        profile_from_toml('name = "x"\n[[qos]]\nname = "short"\nmax_time = 20\n')
    assert "qos[0].max_time" in str(info.value) and '"20:00:00" for 20 hours' in str(info.value)


def test_qos_names_are_listed_once_in_any_case():
    site = JEANZAY.replace(qos=(*JEANZAY.qos, Qos(name="QOS_GPU-T3")))
    assert [(p.field, "listed more than once" in p.message) for p in site.problems()] == [("qos", True)]


def test_a_partition_naming_a_qos_no_table_lists_is_a_profile_problem():
    part = JEANZAY.partitions[0].replace(allowed_qos=("qos_gpu-t3", "qos_gpu-t4", "qos_gpu-dev", "qos_gpu-t5"))
    problems = JEANZAY.replace(partitions=(part,)).problems()
    assert len(problems) == 1 and problems[0].field == "partitions"
    assert "partition gpu_p13 names QOS qos_gpu-t5" in problems[0].message and "add a table" in problems[0].message
    # the partition's names in another case are the same QOS
    upper = JEANZAY.partitions[0].replace(qos="QOS_GPU-T3", allowed_qos=("QOS_GPU-T3", "qos_gpu-t4"))
    assert JEANZAY.replace(partitions=(upper,)).problems() == []


def test_qos_required_needs_a_qos_to_choose_from():
    site = ARCHER2.replace(qos=(), partitions=(ARCHER2.partitions[0].replace(allowed_qos=()),))
    assert [p.field for p in site.problems()] == ["qos_required"]
    # the partitions' QOS are choices too
    assert site.replace(partitions=(site.partitions[0].replace(qos="standard"),)).problems() == []


# ------------------------------------------------------------------------------------------------
# checking a job
# ------------------------------------------------------------------------------------------------
def test_a_job_over_the_time_of_the_qos_it_names_is_told_that_limit_and_a_qos_that_fits():
    assert messages(JEANZAY, partition="gpu_p13", qos="qos_gpu-t3", time="30:00:00", gpus_per_node=4) == [
        "30:00:00 is over the 20:00:00 limit of QOS qos_gpu-t3; ask for at most 20:00:00, or use a QOS whose limits "
        "it fits: --qos=qos_gpu-t4"]


def test_without_qos_the_partitions_qos_sets_the_limit():
    assert messages(JEANZAY, partition="gpu_p13", time="30:00:00", gpus_per_node=4) == [
        "30:00:00 is over the 20:00:00 limit of QOS qos_gpu-t3 (the QOS of partition gpu_p13, as the job names no "
        "--qos); ask for at most 20:00:00, or use a QOS whose limits it fits: --qos=qos_gpu-t4"]


def test_over_both_limits_only_the_lower_is_reported():
    # the QOS's 20 h is lower than the partition's 100 h: one message, and no QOS fits 120 h
    assert messages(JEANZAY, partition="gpu_p13", time="120:00:00", gpus_per_node=4) == [
        "120:00:00 is over the 20:00:00 limit of QOS qos_gpu-t3 (the QOS of partition gpu_p13, as the job names no "
        "--qos); ask for at most 20:00:00"]
    # the partition's 2 days are lower than a QOS without MaxWall: the partition's message, as before
    site = ARCHER2.replace(qos=(*ARCHER2.qos[:3], Qos(name="largescale", min_nodes=1025)))
    assert messages(site, partition="standard", qos="largescale", nodes=2000, time="3-00:00:00") == [
        "3-00:00:00 is over the 2-00:00:00 limit of partition standard; ask for at most 2-00:00:00"]


@pytest.mark.parametrize("job", [
    dict(partition="gpu_p13", qos="qos_gpu-t4", time="90:00:00", gpus_per_node=4, nodes=4),
    dict(partition="gpu_p13", time="20:00:00", gpus_per_node=4, nodes=2),
    dict(partition="gpu_p13", qos="QOS_GPU-DEV", time="01:00:00", gpus_per_node=4, nodes=8),  # any case
])
def test_jobs_within_their_qos_are_left_alone(job):
    assert messages(JEANZAY, **job) == []


def test_gpus_over_the_qos_per_job_limit():
    assert messages(JEANZAY, partition="gpu_p13", qos="qos_gpu-t4", time="30:00:00", gpus_per_node=4, nodes=5) == [
        "the job uses 20 GPUs on 5 nodes, but QOS qos_gpu-t4 allows at most 16 per job; ask for at most 16 GPUs in "
        "total"]
    assert fields(JEANZAY, partition="gpu_p13", qos="qos_gpu-t4", gpus=20, time="01:00:00") == ["gpus"]


def test_a_lower_partition_gpu_limit_is_the_one_reported():
    part = JEANZAY.partitions[0].replace(max_gpus_per_job=8)
    assert messages(JEANZAY.replace(partitions=(part,)), partition="gpu_p13", qos="qos_gpu-t4", gpus_per_node=4,
                    nodes=5, time="01:00:00") == [
        "the job uses 20 GPUs on 5 nodes, but partition gpu_p13 allows at most 8 per job; ask for at most 8 GPUs in "
        "total"]


def test_nodes_over_the_qos_limit_and_under_its_minimum():
    assert messages(ARCHER2, partition="standard", qos="short", time="00:10:00", nodes=8) == [
        "8 nodes is more than QOS short allows (4); ask for at most 4, or use a QOS whose limits it fits: "
        "--qos=standard, --qos=long"]
    assert messages(ARCHER2, partition="standard", qos="largescale", time="01:00:00", nodes=2) == [
        "QOS largescale is for jobs of at least 1025 nodes, and the job asks for 2 nodes; ask for --nodes=1025 or "
        "more, or use a QOS whose limits it fits: --qos=standard, --qos=long"]
    assert messages(ARCHER2, partition="standard", qos="largescale", time="01:00:00", nodes=2000) == []


def test_a_qos_the_profile_does_not_list_is_one_problem_with_the_closest_name():
    assert messages(JEANZAY, partition="gpu_p13", qos="qos_gpu-t5", time="01:00:00", gpus_per_node=1) == [
        "jeanzay has no QOS 'qos_gpu-t5' (did you mean qos_gpu-t4?): Slurm refuses the job ('Invalid qos "
        "specification'); use one of: qos_gpu-t3, qos_gpu-t4, qos_gpu-dev"]
    message, = messages(JEANZAY, partition="gpu_p13", qos="premium", time="01:00:00", gpus_per_node=1)
    assert "has no QOS 'premium': Slurm refuses" in message


def test_a_site_that_requires_a_qos_names_the_ones_the_job_fits():
    assert messages(ARCHER2, partition="standard", time="01:00:00", nodes=2) == [
        "archer2 rejects a job that names no QOS; add --qos with one of: standard (at most 24:00:00, at most 1024 "
        "nodes), long (at most 48:00:00, at most 64 nodes)"]
    assert messages(ARCHER2, partition="standard", qos="standard", time="01:00:00", nodes=2) == []


def test_without_qos_tables_nothing_changes():
    site = JEANZAY.replace(qos=())
    assert messages(site, partition="gpu_p13", qos="anything", time="30:00:00", gpus_per_node=4) == [
        "partition gpu_p13 does not allow QOS anything (it allows qos_gpu-t3, qos_gpu-t4, qos_gpu-dev): Slurm refuses "
        "the job ('Invalid qos specification') or holds it pending ('Job's QOS not permitted to use this partition'); "
        "ask for one of them with --qos"]
    assert messages(site, partition="gpu_p13", time="30:00:00", gpus_per_node=4) == []


# ------------------------------------------------------------------------------------------------
# lint
# ------------------------------------------------------------------------------------------------
def script(*directives: str) -> str:
    return "#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives) + "srun python train.py\n"


def codes(text: str, profile: ClusterProfile) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in lint(text, profile, select="HPC401,HPC402,HPC403,HPC408")]


def test_lint_reports_qos_limits_under_the_partition_codes_at_the_option():
    text = script("--partition=gpu_p13", "--qos=qos_gpu-t3", "--gres=gpu:4", "--nodes=5", "--time=30:00:00")
    assert codes(text, JEANZAY) == [("HPC402", 6)]
    text = script("--partition=gpu_p13", "--qos=qos_gpu-t4", "--gres=gpu:4", "--nodes=5", "--time=30:00:00")
    assert codes(text, JEANZAY) == [("HPC403", 4)]
    text = script("--partition=standard", "--qos=short", "--nodes=8", "--time=00:10:00")
    assert codes(text, ARCHER2) == [("HPC408", 4)]


def test_lint_reports_an_unknown_or_missing_qos_at_the_qos_or_partition_line():
    assert codes(script("--partition=gpu_p13", "--qos=qos_gpu-t5", "--gres=gpu:1", "--time=01:00:00"),
                 JEANZAY) == [("HPC408", 3)]
    assert codes(script("--partition=standard", "--nodes=2", "--time=01:00:00"), ARCHER2) == [("HPC408", 2)]


@pytest.mark.parametrize("profile, directives", [
    (JEANZAY, ("--partition=gpu_p13", "--qos=qos_gpu-t4", "--gres=gpu:4", "--nodes=4", "--time=30:00:00")),
    (JEANZAY, ("--partition=gpu_p13", "--gres=gpu:4", "--time=20:00:00")),
    (ARCHER2, ("--partition=standard", "--qos=largescale", "--nodes=2048", "--time=12:00:00")),
    (ARCHER2, ("--partition=standard", "--qos=short", "--nodes=4", "--time=00:20:00")),
])
def test_lint_leaves_jobs_within_their_qos_alone(profile, directives):
    assert codes(script(*directives), profile) == []


# ------------------------------------------------------------------------------------------------
# detection
# ------------------------------------------------------------------------------------------------
#: `sacctmgr -nP show qos format=Name,MaxWall,MaxTRESPerJob,MinTRESPerJob,Flags` on an ARCHER2-like site: sacctmgr
#: keeps names in lower case, prints MaxWall as [D-]HH:MM:SS and TRES as name=count joined by commas
SACCTMGR_QOS = """\
normal||||
standard|1-00:00:00|node=1024||DenyOnLimit
short|00:20:00|node=4||DenyOnLimit
long|2-00:00:00|node=64||DenyOnLimit,PartitionTimeLimit
largescale|12:00:00|node=5860|node=1025|DenyOnLimit
gpu-t4|4-04:00:00|cpu=160,gres/gpu=16,node=4||DenyOnLimit,NoDecay
"""

PARTITIONS = ("PartitionName=standard AllowGroups=ALL AllowAccounts=ALL AllowQos=standard,short,long,largescale "
              "Default=YES QoS=N/A DefaultTime=00:10:00 MaxNodes=UNLIMITED MaxTime=2-00:00:00 MinNodes=0 "
              "Nodes=nid[001000-001003] State=UP TotalCPUs=512 TotalNodes=4\n")


def test_sacctmgr_output_becomes_qos_tables_and_flags_are_noted():
    notes: list[str] = []
    found = detect.parse_sacctmgr_qos(SACCTMGR_QOS, notes)
    assert found == (Qos(name="normal"), Qos(name="standard", max_time="1-00:00:00", max_nodes=1024),
                     Qos(name="short", max_time="00:20:00", max_nodes=4),
                     Qos(name="long", max_time="2-00:00:00", max_nodes=64),
                     Qos(name="largescale", max_time="12:00:00", max_nodes=5860, min_nodes=1025),
                     Qos(name="gpu-t4", max_time="4-04:00:00", max_nodes=4, max_gpus=16))
    assert len(notes) == 1 and "QOS long (PartitionTimeLimit) may let jobs go past" in notes[0]


def test_sacctmgr_lines_of_another_shape_are_noted_not_guessed():
    notes: list[str] = []
    assert detect.parse_sacctmgr_qos("      Name     MaxWall\nnormal||||\n", notes) == (Qos(name="normal"),)
    assert notes == ["sacctmgr lines not read as Name|MaxWall|MaxTRES|MinTRES|Flags: Name     MaxWall"]


def _runner(qos_reply: object):
    replies = {detect.PARTITIONS_ARGV: PARTITIONS, detect.NODES_ARGV: "", detect.VERSION_ARGV: "slurm 23.11.4\n",
               detect.CONFIG_ARGV: "MpiDefault = pmix\n"}

    def run(argv: list[str]) -> str:
        if tuple(argv) == detect.QOS_ARGV:
            if isinstance(qos_reply, Exception):
                raise qos_reply
            return str(qos_reply)
        return replies[tuple(argv)]
    return run


def test_detection_reads_the_qos_limits_when_sacctmgr_answers():
    site = detect.detect_profile("a2", runner=_runner(SACCTMGR_QOS), which=lambda program: None,
                                 login_host=lambda: "login.example.org")
    assert site.qos_named("largescale").min_nodes == 1025 and site.problems() == []
    assert [p.field for p in check_job(site, SlurmJob(partition="standard", qos="short", nodes=8))] == ["nodes"]


def test_detection_without_an_accounting_database_carries_on_with_a_note():
    # what the practice cluster's sacctmgr answers: it has no slurmdbd
    failure = RunError("sacctmgr --noheader --parsable2 show qos format=Name,MaxWall,MaxTRESPerJob,MinTRESPerJob,"
                       "Flags failed (exit 1): You are not running a supported accounting_storage plugin\nOnly "
                       "'accounting_storage/slurmdbd' is supported.", list(detect.QOS_ARGV), 1)
    notes: list[str] = []
    site = detect.detect_profile("practice", runner=_runner(failure), which=lambda program: None,
                                 login_host=lambda: "login.example.org", notes=notes)
    assert site.qos == () and site.partition_names() == ["standard"]
    note, = [n for n in notes if "QOS limits were not read" in n]
    assert "not running a supported accounting_storage plugin" in note and "Only" not in note


def test_detection_from_saved_output_reads_qos_txt(tmp_path):
    (tmp_path / "partitions.txt").write_text(PARTITIONS)
    notes: list[str] = []
    assert detect.detect_from_saved(tmp_path, notes=notes).qos == ()
    assert any("has no qos.txt" in n and "sacctmgr --noheader --parsable2 show qos" in n for n in notes)
    (tmp_path / "qos.txt").write_text(SACCTMGR_QOS)
    assert detect.detect_from_saved(tmp_path).qos_named("short").max_nodes == 4


def test_a_qos_table_survives_writing_the_profile_back_and_its_typos_are_located(tmp_path):
    from hpcwidgets.errors import ProfileError
    from hpcwidgets.profiles import profile_from_toml, profile_to_toml
    text = ('name = "q"\nqos_required = true\n\n[[partitions]]\nname = "standard"\nmax_time = "2-00:00:00"\n\n'
            '[[qos]]\nname = "standard"\nmax_time = "24:00:00"\nmax_nodes = 64\n\n'
            '[[qos]]\nname = "short"\nmax_time = "00:20:00"\nmax_nodes = 4\n')
    site = profile_from_toml(text)
    again = profile_from_toml(profile_to_toml(site))
    assert again.qos == site.qos and [q.name for q in again.qos] == ["standard", "short"]
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text.replace("max_nodes = 4", "max_nodez = 4").replace('"24:00:00"', '"a day"'))
    message = str(err.value)
    assert "line 16, QOS 'short': a QOS has no key 'max_nodez' (did you mean 'max_nodes'?)" in message
    assert "line 10, QOS 'standard': " in message
