"""Optional profile keys for facts real sites have (audit of Perlmutter, Rockfish, Jean Zay, LUMI, Great Lakes):
a partition's QOS, constraint and account, entries that are not Slurm partitions (nodes picked by QOS and
constraint), a required account, and limits on a whole job. Every key is optional: the shipped profiles and
the example golden files do not change (tests/test_examples.py checks the goldens)."""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ProfileError
from hpcwidgets.examples import examples
from hpcwidgets.lint import lint
from hpcwidgets.profiles import SHIPPED_DIR, load_profile, profile_from_toml, profile_to_toml
from hpcwidgets.spec.profile import ClusterProfile, Partition, check_job
from hpcwidgets.spec.slurm import SlurmJob

pytestmark = pytest.mark.usefixtures("isolated_profiles")  # see conftest.py

SHIPPED = sorted(p.stem for p in SHIPPED_DIR.glob("*.toml"))

# NERSC Perlmutter: no partition a user names; -C gpu plus a QOS (debug is the default, 30 min).
PERLMUTTER = '''\
name = "perlmutter"
login_host = "perlmutter.nersc.gov"
runtimes = ["apptainer"]
gpu_vendor = "nvidia"
account = "m1234"
account_required = true
default_partition = "debug"
default_gpu_partition = "regular"

[modules]
apptainer = "apptainer"

[[partitions]]
name = "debug"
slurm_partition = false
qos = "debug"
constraint = "gpu"
is_default = true
max_time = "00:30:00"
max_nodes = 8
cpus_per_node = 64
mem_per_node = "256G"
gpus_per_node = 4

[[partitions]]
name = "regular"
slurm_partition = false
qos = "regular"
constraint = "gpu"
max_time = "2-00:00:00"
cpus_per_node = 64
mem_per_node = "256G"
gpus_per_node = 4
'''

# JHU Rockfish: GPU partitions charge <PI>_gpu and need --qos=qos_gpu; CPU partitions charge <PI>.
ROCKFISH = '''\
name = "rockfish"
runtimes = ["apptainer"]
scratch = "$SCRATCH4"
gpu_vendor = "nvidia"
account = "jsmith123"
default_partition = "shared"
default_gpu_partition = "a100"

[[partitions]]
name = "shared"
is_default = true
max_time = "36:00:00"
cpus_per_node = 32
mem_per_node = "128G"

[[partitions]]
name = "a100"
account = "jsmith123_gpu"
qos = "qos_gpu"
max_time = "3-00:00:00"
cpus_per_node = 48
mem_per_node = "192G"
gpus_per_node = 4
gpu_types = ["a100"]
'''

# IDRIS Jean Zay: one account per kind of node, V100 memory picked by a constraint.
JEAN_ZAY = '''\
name = "jeanzay"
runtimes = ["singularity"]
apptainer_binary = "singularity"
gpu_vendor = "nvidia"
account = "abc@cpu"
default_partition = "cpu_p1"
default_gpu_partition = "gpu_p13"

[[partitions]]
name = "cpu_p1"
is_default = true
max_time = "100:00:00"
cpus_per_node = 40
mem_per_node = "160G"

[[partitions]]
name = "gpu_p13"
account = "abc@v100"
constraint = "v100-32g"
max_time = "100:00:00"
default_time = "00:10:00"
cpus_per_node = 40
mem_per_node = "160G"
gpus_per_node = 4
'''

# UMich Great Lakes: debug allows 8 CPUs and 40 GB per job (not per node), one node.
GREAT_LAKES = '''\
name = "greatlakes"
runtimes = ["singularity"]
apptainer_binary = "singularity"
gpu_vendor = "nvidia"
account = "example0"
default_partition = "standard"
default_gpu_partition = "gpu"

[[partitions]]
name = "standard"
is_default = true
max_time = "14-00:00:00"
cpus_per_node = 36
mem_per_node = "180G"

[[partitions]]
name = "debug"
max_time = "04:00:00"
max_nodes = 1
cpus_per_node = 36
mem_per_node = "180G"
max_cpus_per_job = 8
max_mem_per_job = "40G"

[[partitions]]
name = "gpu"
max_time = "14-00:00:00"
cpus_per_node = 40
mem_per_node = "180G"
gpus_per_node = 2
gpu_types = ["v100"]
max_gpus_per_job = 2
'''


def profile(text: str) -> ClusterProfile:
    return profile_from_toml(text, source="test.toml")


def job_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def profile_codes(script: str, site: ClusterProfile) -> list[str]:
    return sorted(f.code for f in lint(script, site) if f.code.startswith("HPC40"))


# ------------------------------------------------------------------------------------------------
# the shipped profiles are unchanged
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_use_none_of_the_new_keys(name):
    site = load_profile(SHIPPED_DIR / f"{name}.toml")
    assert site.account_required is False
    for part in site.partitions:
        assert (part.slurm_partition, part.qos, part.constraint, part.account) == (True, "", "", "")
        assert (part.max_cpus_per_job, part.max_mem_per_job, part.max_gpus_per_job) == (None, "", None)
    assert site.slurm_partition_names() == site.partition_names()
    assert profile_from_toml(profile_to_toml(site)) == site


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_examples_keep_their_partition_and_account(name):
    site = load_profile(SHIPPED_DIR / f"{name}.toml")
    for ex in examples(site).values():
        job = ex.model.job
        assert job.qos == "" and job.constraint == "" and job.account == site.account
        assert job.partition in site.partition_names()
        assert "--qos" not in ex.render() and "--constraint" not in ex.render()


# ------------------------------------------------------------------------------------------------
# entries selected by QOS / constraint (Perlmutter)
# ------------------------------------------------------------------------------------------------
def test_perlmutter_profile_loads_and_round_trips():
    site = profile(PERLMUTTER)
    assert site.partition_names() == ["debug", "regular"]
    assert site.slurm_partition_names() == []
    assert profile_from_toml(profile_to_toml(site)) == site
    assert site.partition("regular").selector() == "--qos=regular --constraint=gpu"


def test_perlmutter_examples_select_nodes_by_qos_and_constraint():
    site = profile(PERLMUTTER)
    exs = examples(site)
    gpu = job_lines(exs["single-gpu"].render())
    assert "#SBATCH --qos=regular" in gpu and "#SBATCH --constraint=gpu" in gpu
    assert "#SBATCH --account=m1234" in gpu
    assert not any(line.startswith("#SBATCH --partition") for line in gpu)
    jupyter = job_lines(exs["jupyter"].render())
    assert "#SBATCH --qos=debug" in jupyter and "#SBATCH --time=00:30:00" in jupyter
    assert "regular (--qos=regular --constraint=gpu)" in exs["single-gpu"].description
    for name, ex in exs.items():
        assert profile_codes(ex.render(), site) == [], name


def test_correct_perlmutter_job_has_no_profile_finding():
    site = profile(PERLMUTTER)
    script = ("#!/bin/bash\n#SBATCH --qos=regular\n#SBATCH -C gpu\n#SBATCH --time=01:00:00\n#SBATCH -A m1234\n"
              "#SBATCH --gpus-per-node=4\nsrun python train.py\n")
    assert profile_codes(script, site) == []
    job = SlurmJob(qos="regular", constraint="gpu", time="01:00:00", account="m1234")
    assert check_job(site, job) == []
    assert site.entry_for(job).name == "regular"


def test_perlmutter_job_without_qos_is_judged_by_the_default_qos():
    site = profile(PERLMUTTER)
    problems = check_job(site, SlurmJob(constraint="gpu", time="01:00:00", account="m1234"))
    assert [p.field for p in problems] == ["time"]
    assert "00:30:00 limit of debug (--qos=debug --constraint=gpu)" in problems[0].message
    assert "regular (--qos=regular --constraint=gpu)" in problems[0].message


def test_perlmutter_time_over_the_selected_qos_is_reported():
    site = profile(PERLMUTTER)
    problems = check_job(site, SlurmJob(qos="regular", constraint="gpu", time="3-00:00:00", account="m1234"))
    assert [p.field for p in problems] == ["time"] and "2-00:00:00 limit of regular" in problems[0].message


def test_a_job_leaving_the_default_qos_for_an_unknown_one_is_not_judged_by_the_default():
    site = profile(PERLMUTTER)
    assert check_job(site, SlurmJob(qos="premium", constraint="gpu", time="10:00:00", account="m1234")) == []


def test_naming_an_entry_that_is_not_a_partition_says_how_to_select_it():
    site = profile(PERLMUTTER)
    problems = check_job(site, SlurmJob(partition="regular", time="01:00:00", account="m1234"))
    assert [p.field for p in problems] == ["partition"]
    assert "remove --partition and use --qos=regular --constraint=gpu" in problems[0].message
    script = "#!/bin/bash\n#SBATCH -p regular\n#SBATCH -A m1234\n#SBATCH -t 01:00:00\nsrun python train.py\n"
    assert profile_codes(script, site) == ["HPC401"]


def test_entry_that_is_not_a_partition_needs_a_selector():
    text = PERLMUTTER.replace('qos = "regular"\nconstraint = "gpu"\n', "")
    with pytest.raises(ProfileError, match="set qos and/or constraint"):
        profile(text)


def test_two_entries_with_the_same_selector_are_reported():
    text = PERLMUTTER.replace('qos = "regular"', 'qos = "debug"')
    with pytest.raises(ProfileError, match="selected by the same qos and constraint"):
        profile(text)


@pytest.mark.parametrize("key,value", [("qos", "a b"), ("constraint", "gpu cpu"), ("account", "a b"),
                                       ("max_mem_per_job", "lots")])
def test_bad_partition_values_are_reported_with_the_line(key, value):
    text = GREAT_LAKES.replace('max_mem_per_job = "40G"', f'{key} = "{value}"')
    with pytest.raises(ProfileError, match=f"partition 'debug'"):
        profile(text)


def test_slurm_form_defaults_follow_the_entry():
    from hpcwidgets.widgets.builder import SlurmBuilder
    job = SlurmBuilder.default_model(profile(PERLMUTTER))
    assert (job.partition, job.qos, job.constraint, job.account) == ("", "debug", "gpu", "m1234")
    job = SlurmBuilder.default_model(load_profile("generic"))
    assert (job.partition, job.qos, job.constraint) == ("cpu", "", "")


def test_limits_note_uses_the_selected_entry():
    from hpcwidgets.widgets.state import limits_note
    site = profile(PERLMUTTER)
    note = limits_note(site, SlurmJob(qos="regular", constraint="gpu"), "time")
    assert note == "regular (--qos=regular --constraint=gpu): at most 2-00:00:00"


# ------------------------------------------------------------------------------------------------
# per-partition QOS, constraint and account (Rockfish, Jean Zay)
# ------------------------------------------------------------------------------------------------
def test_rockfish_gpu_jobs_get_the_gpu_account_and_qos():
    site = profile(ROCKFISH)
    exs = examples(site)
    gpu = job_lines(exs["single-gpu"].render())
    assert "#SBATCH --account=jsmith123_gpu" in gpu and "#SBATCH --qos=qos_gpu" in gpu
    assert "#SBATCH --partition=a100" in gpu
    cpu = job_lines(exs["jupyter"].render())
    assert "#SBATCH --account=jsmith123" in cpu and not any("--qos" in line for line in cpu)


def test_jean_zay_accounts_and_constraint_per_partition():
    site = profile(JEAN_ZAY)
    exs = examples(site)
    gpu = job_lines(exs["multi-node-torchrun"].render())
    assert "#SBATCH --account=abc@v100" in gpu and "#SBATCH --constraint=v100-32g" in gpu
    assert "#SBATCH --account=abc@cpu" in job_lines(exs["jupyter"].render())
    assert site.account_for(site.partition("gpu_p13")) == "abc@v100"
    assert site.account_for(site.partition("cpu_p1")) == "abc@cpu"


def test_fill_job_adds_what_the_job_leaves_out():
    site = profile(ROCKFISH)
    job = site.fill_job(SlurmJob(partition="a100"))
    assert (job.qos, job.account) == ("qos_gpu", "jsmith123_gpu")
    job = site.fill_job(SlurmJob(partition="a100", qos="qos_long", account="other"))
    assert (job.qos, job.account) == ("qos_long", "other")
    assert site.fill_job(SlurmJob()).account == "jsmith123"


# ------------------------------------------------------------------------------------------------
# account required (LUMI, Alliance)
# ------------------------------------------------------------------------------------------------
def test_account_required_reports_a_job_without_account():
    site = profile(PERLMUTTER)
    problems = check_job(site, SlurmJob(qos="regular", constraint="gpu", time="01:00:00"))
    assert [p.field for p in problems] == ["account"]
    assert "add --account=m1234" in problems[0].message
    script = "#!/bin/bash\n#SBATCH --qos=regular\n#SBATCH -C gpu\n#SBATCH -t 01:00:00\nsrun python train.py\n"
    found = [f for f in lint(script, site) if f.code.startswith("HPC40")]
    assert [f.code for f in found] == ["HPC408"] and "--account=m1234" in found[0].message


def test_account_required_uses_the_partitions_account_and_a_hint_without_one():
    site = profile(ROCKFISH).replace(account_required=True)
    problems = check_job(site, SlurmJob(partition="a100", time="01:00:00"))
    assert "add --account=jsmith123_gpu" in problems[0].message
    bare = site.replace(account="", partitions=tuple(p.replace(account="") for p in site.partitions))
    assert "add --account=PROJECT" in check_job(bare, SlurmJob(time="01:00:00"))[0].message


def test_account_is_not_required_unless_the_profile_says_so():
    site = profile(ROCKFISH)
    assert check_job(site, SlurmJob(partition="a100", time="01:00:00")) == []


# ------------------------------------------------------------------------------------------------
# per-job limits (Great Lakes debug)
# ------------------------------------------------------------------------------------------------
def test_per_job_cpu_limit():
    site = profile(GREAT_LAKES)
    problems = check_job(site, SlurmJob(partition="debug", ntasks_per_node=4, cpus_per_task=4, account="example0"))
    assert [p.field for p in problems] == ["cpus_per_task"]
    assert "16 CPUs" in problems[0].message and "at most 8 per job" in problems[0].message
    assert check_job(site, SlurmJob(partition="debug", cpus_per_task=8)) == []
    script = "#!/bin/bash\n#SBATCH -p debug\n#SBATCH -c 16\nsrun python train.py\n"
    assert profile_codes(script, site) == ["HPC406"]


def test_per_job_memory_limit():
    site = profile(GREAT_LAKES)
    problems = check_job(site, SlurmJob(partition="debug", mem="64G"))
    assert [p.field for p in problems] == ["mem"] and "at most 40G per job" in problems[0].message
    problems = check_job(site, SlurmJob(partition="debug", cpus_per_task=8, mem_per_cpu="8G"))
    assert [p.field for p in problems] == ["mem_per_cpu"] and "5G per CPU" in problems[0].message
    assert check_job(site, SlurmJob(partition="debug", cpus_per_task=8, mem="40G")) == []
    script = "#!/bin/bash\n#SBATCH -p debug\n#SBATCH --mem=0\nsrun python train.py\n"
    assert profile_codes(script, site) == ["HPC405"]


def test_per_job_limits_count_every_node():
    site = profile(GREAT_LAKES)
    problems = check_job(site, SlurmJob(partition="gpu", nodes=2, gpus_per_node=2))
    assert [p.field for p in problems] == ["gpus_per_node"]
    assert "4 GPUs on 2 nodes" in problems[0].message and "at most 2 per job" in problems[0].message
    assert check_job(site, SlurmJob(partition="gpu", nodes=1, gpus_per_node=2)) == []
    script = "#!/bin/bash\n#SBATCH -p gpu\n#SBATCH -N 2\n#SBATCH --gres=gpu:2\nsrun python train.py\n"
    assert profile_codes(script, site) == ["HPC403"]


def test_examples_stay_within_per_job_limits():
    site = profile(GREAT_LAKES.replace('default_partition = "standard"', 'default_partition = "debug"')
                   .replace('name = "standard"\nis_default = true', 'name = "standard"')
                   .replace('name = "debug"\n', 'name = "debug"\nis_default = true\n')
                   .replace('gpu_types = ["v100"]\nmax_gpus_per_job = 2', 'gpu_types = ["v100"]\nmax_gpus_per_job = 2\n'
                                                                         'max_mem_per_job = "100G"'))
    for name, ex in examples(site).items():
        assert profile_codes(ex.render(), site) == [], name


def test_the_jupyter_job_lands_where_the_default_entry_says():
    from hpcwidgets.render import render
    from hpcwidgets.spec.jupyter import JupyterJob
    perlmutter = profile_from_toml(PERLMUTTER, source="perlmutter.toml")
    job = JupyterJob.for_profile(perlmutter).job
    part = perlmutter.default()
    assert (job.partition, job.qos, job.constraint) == ("", part.qos, part.constraint)
    assert job.account == perlmutter.account
    assert "--partition" not in render(JupyterJob.for_profile(perlmutter))
    assert check_job(perlmutter, job) == []
