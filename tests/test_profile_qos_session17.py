"""Session 17 follow-ups on QOS in profiles (audit a4): a QOS listed by name only is not offered as a fix (WA2), a
QOS's minimum time (min_time, ARCHER2's long: M5), and a --constraint that selects the partition on a site whose
submit filter routes by it (constraint_selects_partition, IDRIS Jean Zay: FP4)."""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ProfileError
from hpcwidgets.lint import lint
from hpcwidgets.profiles import profile_from_toml
from hpcwidgets.spec.profile import ClusterProfile, Partition, Qos, check_job
from hpcwidgets.spec.slurm import SlurmJob

#: ARCHER2 as its QoS table has it: long is for jobs of 24 to 48 hours, reservation is listed by name only
ARCHER2 = ClusterProfile(
    name="archer2", qos_required=True, default_partition="standard",
    partitions=(Partition(name="standard", is_default=True, max_time="2-00:00:00", max_nodes=5860,
                          allowed_qos=("standard", "short", "long", "largescale", "reservation")),),
    qos=(Qos(name="standard", max_time="24:00:00", max_nodes=1024),
         Qos(name="short", max_time="00:20:00", max_nodes=32),
         Qos(name="long", min_time="24:00:00", max_time="48:00:00", max_nodes=64),
         Qos(name="largescale", max_time="12:00:00", min_nodes=1025, max_nodes=5860), Qos(name="reservation")))

#: Jean Zay: V100 by default (and for GPU jobs), A100 and H100 partitions a job reaches with -C a100 / -C h100
JEANZAY = ClusterProfile(
    name="jeanzay", gpu_vendor="nvidia", default_partition="cpu_p1", default_gpu_partition="gpu_p13",
    gpu_jobs_to_default_gpu_partition=True, constraint_selects_partition=True,
    partitions=(Partition(name="cpu_p1", is_default=True, max_time="100:00:00", cpus_per_node=40),
                Partition(name="gpu_p13", max_time="100:00:00", cpus_per_node=40, gpus_per_node=4,
                          qos="qos_gpu-t3", allowed_qos=("qos_gpu-t3", "qos_gpu-t4")),
                Partition(name="gpu_p5", max_time="20:00:00", cpus_per_node=64, gpus_per_node=8, gpu_types=("a100",),
                          constraint="a100", qos="qos_gpu_a100-t3", allowed_qos=("qos_gpu_a100-t3",)),
                Partition(name="gpu_p6", max_time="100:00:00", cpus_per_node=96, gpus_per_node=4, gpu_types=("h100",),
                          constraint="h100", account="abc@h100", qos="qos_gpu_h100-t3",
                          allowed_qos=("qos_gpu_h100-t3", "qos_gpu_h100-t4"))),
    qos=(Qos(name="qos_gpu-t3", max_time="20:00:00"), Qos(name="qos_gpu-t4", max_time="100:00:00", max_gpus=16),
         Qos(name="qos_gpu_a100-t3", max_time="20:00:00"), Qos(name="qos_gpu_h100-t3", max_time="20:00:00"),
         Qos(name="qos_gpu_h100-t4", max_time="100:00:00", max_gpus=16)))


def messages(profile: ClusterProfile, **job: object) -> list[str]:
    return [p.message for p in check_job(profile, SlurmJob(**job))]


def test_the_sites_are_valid():
    assert ARCHER2.problems() == [] and JEANZAY.problems() == []


# ------------------------------------------------------------------------------------------------
# WA2: a QOS listed by name only is accepted but never offered
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("job, offered", [
    (dict(qos="standard", time="30:00:00", nodes=2), "--qos=long"),
    (dict(qos="standard", time="01:00:00", nodes=2000), "--qos=largescale"),
    (dict(qos="short", time="00:30:00", nodes=2), "--qos=standard"),
])
def test_a_qos_listed_by_name_only_is_not_offered_as_a_fix(job, offered):
    message, = messages(ARCHER2, **job)
    assert offered in message and "reservation" not in message


def test_a_job_that_names_no_qos_is_offered_only_qos_with_limits_it_fits():
    message, = messages(ARCHER2, time="01:00:00", nodes=2)
    assert "standard (at most 24:00:00, at most 1024 nodes)" in message and "short" not in message
    assert "reservation" not in message and "long" not in message  # an hour is under long's 24 h minimum


def test_a_qos_listed_by_name_only_is_still_accepted():
    assert messages(ARCHER2, qos="reservation", time="30:00:00", nodes=2) == []


def test_when_every_qos_is_listed_by_name_only_the_choices_are_all_named():
    site = ARCHER2.replace(qos=(Qos(name="standard"), Qos(name="reservation")))
    message, = messages(site, time="01:00:00")
    assert "add --qos with one of: standard, reservation" in message


def test_the_partitions_own_qos_is_offered_even_without_limits():
    # a site whose ordinary QOS (normal, the partition's) sets no limits and whose short QOS does
    site = ClusterProfile(name="site", default_partition="cpu",
                          partitions=(Partition(name="cpu", is_default=True, max_time="2-00:00:00", qos="normal"),),
                          qos=(Qos(name="normal"), Qos(name="short", max_time="01:00:00"), Qos(name="special")))
    message, = messages(site, qos="short", time="03:00:00")
    assert message.endswith("use a QOS whose limits it fits: --qos=normal")


# ------------------------------------------------------------------------------------------------
# M5: a QOS's minimum time
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("qos, field, words", [
    (Qos(name="long", min_time="1 day"), "min_time", "minimum time of QOS long"),
    (Qos(name="long", min_time="UNLIMITED"), "min_time", "means no limit in Slurm"),
    (Qos(name="long", min_time="0"), "min_time", "means no limit in Slurm"),
    (Qos(name="long", min_time="2-00:00:00", max_time="24:00:00"), "min_time", "lower min_time or raise max_time"),
])
def test_a_minimum_time_names_its_problem_and_the_fix(qos, field, words):
    problems = qos.problems()
    assert [p.field for p in problems] == [field] and words in problems[0].message


@pytest.mark.parametrize("qos", [Qos(name="long", min_time="24:00:00", max_time="48:00:00"),
                                 Qos(name="long", min_time="24:00:00"),
                                 Qos(name="long", min_time="1-00:00:00", max_time="1-00:00:00")])
def test_a_minimum_within_the_maximum_is_valid(qos):
    assert qos.problems() == []


def test_a_bare_number_for_the_minimum_is_refused_with_both_readings():
    with pytest.raises(ProfileError, match='"24" in quotes for 24 minutes'):
        profile_from_toml('name = "x"\n[[qos]]\nname = "long"\nmin_time = 24\n')


def test_a_job_under_the_minimum_is_told_the_minimum_and_the_qos_it_fits():
    message, = messages(ARCHER2, qos="long", time="12:00:00", nodes=2)
    assert message == ("QOS long is for jobs of at least 24:00:00, and the job asks for --time=12:00:00; ask for "
                       "--time=24:00:00 or more, or use a QOS whose limits it fits: --qos=standard")


@pytest.mark.parametrize("time", ["24:00:00", "1-12:00:00", "48:00:00"])
def test_a_job_within_the_minimum_and_maximum_is_clean(time):
    assert messages(ARCHER2, qos="long", time=time, nodes=2) == []


def test_a_job_without_time_is_not_held_to_the_minimum():
    # its limit is the partition's default time, which the profile does not know here
    assert messages(ARCHER2, qos="long", nodes=2) == []


def test_a_short_job_over_the_limit_of_its_qos_is_not_sent_to_a_qos_whose_minimum_it_misses():
    message, = messages(ARCHER2, qos="short", time="00:30:00", nodes=2)
    assert "--qos=standard" in message and "--qos=long" not in message


def test_the_minimum_shows_in_the_choices_for_a_job_without_qos():
    message, = messages(ARCHER2, time="30:00:00", nodes=2)
    assert "long (at least 24:00:00, at most 48:00:00, at most 64 nodes)" in message


def test_lint_reports_the_minimum_as_hpc402():
    text = "#!/bin/bash\n#SBATCH --qos=long\n#SBATCH --time=12:00:00\n#SBATCH --nodes=2\nsrun ./a.out\n"
    found = [(f.code, f.line) for f in lint(text, ARCHER2) if f.code.startswith("HPC40")]
    assert found == [("HPC402", 3)]


# ------------------------------------------------------------------------------------------------
# FP4: a constraint selects the partition where the site routes by it
# ------------------------------------------------------------------------------------------------
def test_a_constraint_selects_the_partition_that_names_it():
    job = SlurmJob(constraint="h100", qos="qos_gpu_h100-t3", gpus_per_node=4, cpus_per_task=24)
    assert JEANZAY.entry_for(job).name == "gpu_p6"
    assert check_job(JEANZAY, job) == []


def test_the_selected_partitions_limits_are_checked_and_named_with_why():
    message, = messages(JEANZAY, constraint="h100", qos="qos_gpu_h100-t3", gpus_per_node=4, cpus_per_task=100)
    assert ("partition gpu_p6 (where jeanzay sends jobs with --constraint=h100 that name no partition) have 96"
            in message)


def test_the_selected_partition_fills_in_its_qos_and_account():
    job = JEANZAY.place_job(SlurmJob(constraint="h100", gpus_per_node=1))
    assert (job.partition, job.qos, job.account) == ("", "qos_gpu_h100-t3", "abc@h100")


def test_without_the_routing_a_constraint_does_not_select_a_partition():
    site = JEANZAY.replace(constraint_selects_partition=False)
    job = SlurmJob(constraint="h100", qos="qos_gpu_h100-t3", gpus_per_node=4)
    assert site.entry_for(job).name == "gpu_p13"
    assert any("does not allow QOS qos_gpu_h100-t3" in m for m in messages(site, **vars(job)))


@pytest.mark.parametrize("job, entry", [
    (dict(partition="gpu_p13", constraint="h100"), "gpu_p13"),  # a named partition wins
    (dict(constraint="v100-32g", gpus_per_node=1), "gpu_p13"),  # no partition names it: the GPU default
    (dict(constraint="a100&ib", gpus_per_node=1), "gpu_p13"),   # an expression is not the partition's constraint
    (dict(constraint="a100"), "gpu_p5"),
])
def test_which_partition_a_constrained_job_gets(job, entry):
    assert JEANZAY.entry_for(SlurmJob(**job)).name == entry


def test_of_several_partitions_with_the_constraint_the_one_that_allows_the_qos_is_chosen():
    second = Partition(name="gpu_p6_dev", max_time="02:00:00", gpus_per_node=4, constraint="h100",
                       qos="qos_gpu_h100-dev", allowed_qos=("qos_gpu_h100-dev",))
    site = JEANZAY.replace(partitions=(*JEANZAY.partitions, second),
                           qos=(*JEANZAY.qos, Qos(name="qos_gpu_h100-dev", max_time="02:00:00")))
    assert site.problems() == []
    assert site.entry_for(SlurmJob(constraint="h100", qos="qos_gpu_h100-dev")).name == "gpu_p6_dev"
    assert site.entry_for(SlurmJob(constraint="h100", qos="qos_gpu_h100-t3")).name == "gpu_p6"


def test_an_entry_selected_by_qos_and_constraint_comes_first():
    perlmutter = ClusterProfile(
        name="perlmutter", default_partition="debug", constraint_selects_partition=True,
        partitions=(Partition(name="debug", slurm_partition=False, qos="debug", constraint="gpu", is_default=True,
                              max_time="00:30:00", gpus_per_node=4),
                    Partition(name="regular", slurm_partition=False, qos="regular", constraint="gpu",
                              max_time="2-00:00:00", gpus_per_node=4)))
    assert perlmutter.entry_for(SlurmJob(qos="regular", constraint="gpu")).name == "regular"


def test_lint_checks_the_idris_h100_script_against_the_h100_partition():
    text = ("#!/bin/bash\n#SBATCH -A vno@h100\n#SBATCH -C h100\n#SBATCH --ntasks-per-node=1\n"
            "#SBATCH --gpus-per-node=4\n#SBATCH --nodes=1\n#SBATCH --qos=qos_gpu_h100-t3\n#SBATCH --time=05:00:00\n"
            "#SBATCH --cpus-per-task=24\nsrun python train.py\n")
    assert [f.code for f in lint(text, JEANZAY) if f.code.startswith("HPC4")] == []
