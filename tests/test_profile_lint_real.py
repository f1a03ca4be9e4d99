"""Lint of a job against profiles of real clusters (auditor A2, session 15): hints that leave out partitions only
some accounts may use, a profile that lists only some partitions, a QOS the partition does not allow, a job stopped
at its partition's default time limit, and findings at the line of the option they are about.

The profiles and scripts are in tests/data/profiles/lint/: EPCC Cirrus (detected from its public slurm.conf, then
corrected as detection now reads AllowQos), a small site with an owner partition, and a hand-written NCC-like site.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.profile import Partition, check_job, job_warnings
from hpcwidgets.spec.slurm import SlurmJob

pytestmark = pytest.mark.usefixtures("isolated_profiles")  # see conftest.py

DATA = Path(__file__).parent / "data" / "profiles" / "lint"


def profile(name: str):
    return load_profile(DATA / f"{name}.toml")


def script(name: str) -> str:
    return (DATA / f"{name}.sbatch").read_text()


def found(text: str, site, *, info: bool = False) -> list[tuple[int, str, str, str]]:
    """``(line, severity, code, message)`` of each finding of the HPC4xx (profile) rules."""
    return [(f.line, f.severity, f.code, f.message) for f in lint(text, site)
            if f.code.startswith("HPC4") and (info or f.severity != "info")]


def codes(text: str, site) -> list[str]:
    return [code for _, _, code, _ in found(text, site)]


def with_lab_partitions(site):
    """The owner site with a longer open partition and a second lab's partition."""
    extra = (Partition("long", max_time="10-00:00:00", gpus_per_node=4, gpu_types=("a100",)),
             Partition("gpu-jonelab", max_time="14-00:00:00", gpus_per_node=4, gpu_types=("a100",), restricted=True))
    return site.replace(partitions=site.partitions + extra)


# ------------------------------------------------------------------------------------------------
# 1.3: hints leave out restricted partitions


def test_time_hint_leaves_out_a_partition_only_a_lab_may_use():
    [(line, severity, code, message)] = found(script("owner_time"), profile("owner"))
    assert (line, severity, code) == (4, "error", "HPC402")
    assert message == "3-00:00:00 is over the 2-00:00:00 limit of partition gpu; ask for at most 2-00:00:00"
    site = with_lab_partitions(profile("owner"))
    [(_, _, _, message)] = found(script("owner_time"), site)
    assert message.endswith("or use a partition that allows it: long")


def test_a_lab_member_is_offered_restricted_partitions_marked_as_such():
    site = with_lab_partitions(profile("owner"))
    job = SlurmJob(partition="gpu-smithlab", gpus_per_node=1, gpu_type="a100", time="9-00:00:00")
    [problem] = check_job(site, job)
    assert problem.message.endswith("or use a partition that allows it: long, gpu-jonelab (restricted)")


def test_unknown_partition_hint_lists_open_partitions_that_allow_the_qos():
    # tds and gpu-tds are AllowGroups=w01,z04; standard and highmem do not allow QOS gpu
    [(line, severity, code, message)] = found(script("cirrus_ownpart"), profile("cirrus"))
    assert (line, severity, code) == (3, "error", "HPC401")
    assert message == "cirrus has no partition 'mylab-gpu'; use one of: gpu"
    without_qos = script("cirrus_ownpart").replace("#SBATCH --qos=gpu\n", "")
    assert found(without_qos, profile("cirrus"))[0][3].endswith("use one of: standard, highmem, gpu")


def test_gpus_on_a_cpu_partition_suggest_only_open_gpu_partitions():
    [problem] = check_job(profile("cirrus"), SlurmJob(partition="standard", gpus_per_node=1, time="01:00:00"))
    assert problem.message.endswith("use a GPU partition: gpu")
    only_lab = profile("owner").replace(partitions=tuple(
        p.replace(is_default=False, restricted=True) if p.name == "gpu" else p for p in profile("owner").partitions)
        + (Partition("cpu", max_time="1-00:00:00"),), default_partition="", default_gpu_partition="")
    [problem] = check_job(only_lab, SlurmJob(partition="cpu", gpus_per_node=1, time="01:00:00"))
    assert problem.message.endswith("remove the GPU request, or ask the site for access to a GPU partition")


# ------------------------------------------------------------------------------------------------
# 1.4 / 2.4: a profile that lists only some partitions


def test_unlisted_partition_is_a_warning_when_the_profile_is_partial():
    partial = profile("cirrus").replace(partitions_complete=False)
    [(line, severity, code, message)] = found(script("cirrus_ownpart"), partial)
    assert (line, severity, code) == (3, "warning", "HPC410")
    assert "lists only some of the site's partitions (partitions_complete = false) and not 'mylab-gpu'" in message
    assert message.endswith("check the name (listed: gpu)")
    assert check_job(partial, SlurmJob(partition="mylab-gpu", time="01:00:00")) == []


def test_a_partial_profile_still_checks_the_partitions_it_lists():
    partial = profile("cirrus").replace(partitions_complete=False)
    assert codes(script("cirrus_gpu_v100"), partial) == ["HPC404"]
    both = script("cirrus_gpu_v100").replace("--partition=gpu", "--partition=gpu,mylab-gpu")
    assert sorted(codes(both, partial)) == ["HPC404", "HPC410"]
    assert codes(script("cirrus_gpu_ok"), partial) == []


def test_a_complete_profile_keeps_unknown_partitions_an_error():
    assert codes(script("cirrus_ownpart"), profile("cirrus")) == ["HPC401"]
    assert job_warnings(profile("cirrus"), SlurmJob(partition="mylab-gpu", time="01:00:00")) == []


def test_a_qos_entry_named_as_partition_stays_an_error_in_a_partial_profile():
    site = profile("cirrus").replace(partitions_complete=False, partitions=profile("cirrus").partitions + (
        Partition("premium", slurm_partition=False, qos="premium"),))
    [problem] = check_job(site, SlurmJob(partition="premium", time="01:00:00"))
    assert problem.message.endswith("for premium, remove --partition and use --qos=premium")


# ------------------------------------------------------------------------------------------------
# 2.1: a QOS the partition does not allow


def test_qos_the_partition_does_not_allow_is_an_error_at_the_qos_line():
    text = script("cirrus_gpu_ok").replace("--qos=gpu", "--qos=standard")
    [(line, severity, code, message)] = found(text, profile("cirrus"))
    assert (line, severity, code) == (4, "error", "HPC408")
    assert message.startswith("partition gpu does not allow QOS standard (it allows gpu, short, long, largescale, "
                              "reservation, lowpriority): Slurm refuses the job ('Invalid qos specification')")
    assert message.endswith("ask for one of them with --qos")


def test_qos_names_match_in_any_case_and_no_qos_is_not_judged():
    assert codes(script("cirrus_gpu_ok").replace("--qos=gpu", "--qos=GPU"), profile("cirrus")) == []
    assert codes(script("cirrus_gpu_ok").replace("#SBATCH --qos=gpu\n", ""), profile("cirrus")) == []


def test_qos_hint_names_partitions_that_allow_it():
    [problem] = check_job(profile("cirrus"), SlurmJob(partition="highmem", qos="standard", time="01:00:00"))
    assert problem.field == "qos"
    assert problem.message.endswith("or use a partition that allows standard: standard")


def test_the_qos_a_partition_fills_in_is_checked_too():
    site = profile("owner").replace(partitions=(Partition("gpu", is_default=True, qos="normal",
                                                          allowed_qos=("gpu",)),))
    [problem] = check_job(site, SlurmJob(partition="gpu", time="01:00:00"))
    assert problem.message.startswith("partition gpu does not allow QOS normal (it allows gpu)")
    assert check_job(site, SlurmJob(partition="gpu", qos="gpu", time="01:00:00")) == []


# ------------------------------------------------------------------------------------------------
# 2.2: no --time on a partition with a shorter default


def test_no_time_on_a_partition_with_a_short_default_is_a_warning():
    [(line, severity, code, message)] = found(script("cirrus_gpu_notime"), profile("cirrus"))
    assert (line, severity, code) == (3, "warning", "HPC411")
    assert message == ("the job sets no --time, so Slurm stops it after 01:00:00, the default time limit of partition "
                       "gpu (which has no maximum); add --time with the time the job needs")
    tds = script("cirrus_gpu_notime").replace("--partition=gpu", "--partition=gpu-tds")
    assert "stops it after 00:10:00" in found(tds, profile("cirrus"))[0][3]


def test_default_time_warning_against_a_finite_maximum_and_on_the_default_partition():
    text = script("owner_time").replace("#SBATCH --time=3-00:00:00\n", "")
    [(_, _, code, message)] = found(text, profile("owner"))
    assert code == "HPC411" and "(whose maximum is 2-00:00:00)" in message
    unnamed = text.replace("#SBATCH --partition=gpu\n", "")
    assert codes(unnamed, profile("owner")) == ["HPC411"]  # the default partition, gpu


def test_no_default_time_warning_when_it_cannot_matter():
    assert codes(script("cirrus_gpu_ok"), profile("cirrus")) == []  # --time given
    quick = "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --qos=gpu\n#SBATCH --gres=gpu:1\nnvidia-smi\nhostname\n"
    assert codes(quick, profile("cirrus")) == []
    same = profile("owner").replace(partitions=tuple(p.replace(default_time=p.max_time)
                                                     for p in profile("owner").partitions))
    assert job_warnings(same, SlurmJob(partition="gpu")) == []
    unset = profile("owner").replace(partitions=tuple(p.replace(default_time="") for p in profile("owner").partitions))
    assert job_warnings(unset, SlurmJob(partition="gpu")) == []


def test_no_default_time_warning_where_another_finding_says_more():
    # GPUs on a partition without them: the job does not run there at all (HPC407)
    cpu = "#!/bin/bash\n#SBATCH --partition=standard\n#SBATCH --gres=gpu:1\npython train.py\n"
    assert codes(cpu, profile("cirrus")) == ["HPC407"]
    # an --time sbatch refuses (empty) or ignores (after the first command) is its own rule's business
    notime = script("cirrus_gpu_notime")
    empty = notime.replace("#SBATCH --gres=gpu:1\n", "#SBATCH --gres=gpu:1\n#SBATCH --time=\n")
    late = notime + "#SBATCH --time=1:00:00\n"
    for text in (empty, late):
        assert "HPC411" not in codes(text, profile("cirrus"))


# ------------------------------------------------------------------------------------------------
# §3.9: each finding at the line of the option it is about


def test_gpu_type_finding_points_at_the_gpu_request():
    [(line, _, code, _)] = found(script("ncc_a100_on_mig"), profile("ncc"))
    assert (line, code) == (4, "HPC404")  # --gres on line 4, -p on line 6
    [(line, _, code, _)] = found(script("cirrus_gpu_v100"), profile("cirrus"))
    assert (line, code) == (9, "HPC404")
    typed = "#!/bin/bash\n#SBATCH -p ug-gpu-small\n#SBATCH -t 1:00:00\n#SBATCH --gpus-per-node=a100:1\npython x.py\n"
    assert [(f[0], f[2]) for f in found(typed, profile("ncc"))] == [(4, "HPC404")]


OPTIONS = """#!/bin/bash
#SBATCH --nodes={nodes}
#SBATCH --partition=ug-gpu-small
#SBATCH --time={time}
#SBATCH --gres=gpu:1g.10gb:{gpus}
#SBATCH --cpus-per-task={cpus}
#SBATCH --mem={mem}
#SBATCH --qos=short
python x.py
"""
FITS = dict(nodes=1, time="1:00:00", gpus=1, cpus=4, mem="8G")


@pytest.mark.parametrize("change, code, line", [
    (dict(nodes=2), "HPC408", 2),
    (dict(time="3-00:00:00"), "HPC402", 4),
    (dict(gpus=8), "HPC403", 5),
    (dict(cpus=65), "HPC406", 6),
    (dict(mem="600G"), "HPC405", 7),
])
def test_each_limit_finding_points_at_its_option(change, code, line):
    assert codes(OPTIONS.format(**FITS), profile("ncc")) == []
    assert [(f[2], f[0]) for f in found(OPTIONS.format(**{**FITS, **change}), profile("ncc"))] == [(code, line)]


def test_partition_and_qos_findings_point_at_their_options():
    ncc = profile("ncc")
    qos_site = ncc.replace(partitions=tuple(p.replace(allowed_qos=("long",)) for p in ncc.partitions))
    assert [(f[2], f[0]) for f in found(OPTIONS.format(**FITS), qos_site)] == [("HPC408", 8)]
    unknown = OPTIONS.format(**FITS).replace("ug-gpu-small", "ug-gpu-big")
    assert [(f[2], f[0]) for f in found(unknown, profile("ncc"))] == [("HPC401", 3)]


def test_gpu_type_in_a_later_component_points_at_its_gpu_request():
    text = ("#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --time=1:00:00\n#SBATCH hetjob\n"
            "#SBATCH --partition=ug-gpu-small\n#SBATCH --time=1:00:00\n#SBATCH --gres=gpu:a100:1\npython x.py\n")
    [(line, _, code, message)] = found(text, profile("ncc"))
    assert (line, code) == (7, "HPC404")
    assert message.startswith("component 1 of the heterogeneous job: GPU type 'a100' is not available")
