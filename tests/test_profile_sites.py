"""Cluster profiles written the way researchers write them for real sites (IDRIS Jean Zay, JHU Rockfish,
LUMI-G, UMich Great Lakes): facts the format must accept, mistakes it must report with the line and
the fix, and what the examples render from them."""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ProfileError
from hpcwidgets.examples import examples
from hpcwidgets.profiles import load_profile, profile_from_toml, profile_to_toml
from hpcwidgets.spec.profile import ClusterProfile, Module, Partition, check_job


pytestmark = pytest.mark.usefixtures("isolated_profiles")  # see conftest.py


# IDRIS Jean Zay: jobs are charged to "project@v100" / "project@a100" (idris.fr job examples),
# V100 nodes in gpu_p13 (default time 10 minutes, at most 100 hours), Singularity from a module.
JEAN_ZAY = '''\
name = "jeanzay"
login_host = "jean-zay.idris.fr"
runtimes = ["singularity"]
apptainer_binary = "singularity"
scratch = "$SCRATCH"
node_local = "$JOBSCRATCH"
image_dir = "$SINGULARITY_ALLOWED_DIR"
gpu_vendor = "nvidia"
default_partition = "gpu_p13"
default_gpu_partition = "gpu_p13"
account = "xyz@v100"

[modules]
singularity = "singularity"

[[partitions]]
name = "gpu_p13"
max_time = "100:00:00"
default_time = "00:10:00"
cpus_per_node = 40
mem_per_node = "160G"
gpus_per_node = 4
is_default = true
'''

# JHU Rockfish: scratch is $SCRATCH4 (there is no $SCRATCH), a100 partition with 4 A100 per node.
ROCKFISH = '''\
name = "rockfish"
runtimes = ["apptainer"]
scratch = "$SCRATCH4"
gpu_vendor = "nvidia"
default_gpu_partition = "a100"

[modules]
apptainer = "apptainer"

[[partitions]]
name = "a100"
max_time = "3-00:00:00"
cpus_per_node = 48
mem_per_node = "192G"
gpus_per_node = 4
gpu_types = ["a100"]
'''

# LUMI-G: 8 GCDs per node seen as 8 GPUs, 56 usable cores, AMD (--rocm), Singularity CE without a module.
LUMI = '''\
name = "lumi"
runtimes = ["singularity"]
apptainer_binary = "singularity"
scratch = "/scratch/project_465000000"
gpu_vendor = "amd"
default_gpu_partition = "small-g"
account = "project_465000000"

[[partitions]]
name = "small-g"
max_time = "3-00:00:00"
max_nodes = 4
cpus_per_node = 56
mem_per_node = "480G"
gpus_per_node = 8

[[partitions]]
name = "standard-g"
max_time = "2-00:00:00"
max_nodes = 1024
cpus_per_node = 56
mem_per_node = "480G"
gpus_per_node = 8
'''


def write(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------
# real facts the format must accept
# ------------------------------------------------------------------------------------------------
def test_jean_zay_account_with_at_sign_loads(tmp_path):
    profile = load_profile(write(tmp_path, "jeanzay", JEAN_ZAY))
    assert profile.account == "xyz@v100"
    job = examples(profile)["single-gpu"]
    assert "#SBATCH --account=xyz@v100" in job.render()


@pytest.mark.parametrize("bad", ["xyz v100", "a;b", "$(id)", "x/y"])
def test_account_names_still_reject_shell_and_spaces(bad):
    problems = ClusterProfile(name="s", account=bad).problems()
    assert [p.field for p in problems] == ["account"]
    assert "@" in problems[0].message  # the message lists what is allowed


def test_real_site_profiles_load_and_their_examples_fit(tmp_path):
    for name, text in (("jeanzay", JEAN_ZAY), ("rockfish", ROCKFISH), ("lumi", LUMI)):
        profile = load_profile(write(tmp_path, name, text))
        for example in examples(profile).values():
            job = getattr(example.model, "job", None)
            if job is not None:
                assert check_job(profile, job) == [], (name, example.name)


def test_lumi_examples_use_rocm_and_singularity(tmp_path):
    script = examples(load_profile(write(tmp_path, "lumi", LUMI)))["multi-node-torchrun"].render()
    assert "singularity exec --rocm" in script and "--nv" not in script
    assert "--nproc-per-node=8" in script and "--cpus-per-task=56" in script


# ------------------------------------------------------------------------------------------------
# image and cache directories follow the file's scratch
# ------------------------------------------------------------------------------------------------
def test_image_and_cache_dirs_follow_scratch_when_left_out(tmp_path):
    profile = load_profile(write(tmp_path, "rockfish", ROCKFISH))
    assert profile.image_dir == "$SCRATCH4/images"
    assert profile.cache_dir == "$SCRATCH4/.apptainer/cache"
    script = examples(profile)["single-gpu"].render()
    assert "$SCRATCH/" not in script  # the site has no $SCRATCH: `set -u` would stop the job
    assert '"$SCRATCH4/images/pytorch_24.05.sif"' in script


def test_explicit_dirs_and_the_default_scratch_are_kept(tmp_path):
    explicit = profile_from_toml('name = "x"\nscratch = "/s"\nimage_dir = "/img"\n')
    assert (explicit.image_dir, explicit.cache_dir) == ("/img", "/s/.apptainer/cache")
    default = profile_from_toml('name = "x"\n')
    assert default.image_dir == ClusterProfile().image_dir == "$SCRATCH/images"
    assert profile_from_toml('name = "x"\nscratch = "/s/"\n').image_dir == "/s/images"
    # a rejected scratch is reported once, not again through derived directories
    with pytest.raises(ProfileError) as err:
        profile_from_toml('name = "x"\nscratch = "~/s"\n')
    assert [p.field for p in err.value.problems] == ["scratch"]


def test_derived_dirs_round_trip_through_toml(tmp_path):
    profile = load_profile(write(tmp_path, "rockfish", ROCKFISH))
    assert profile_from_toml(profile_to_toml(profile)) == profile
    # models built in Python keep the field defaults (JSON round trips rely on them)
    assert ClusterProfile(name="x", scratch="/s").image_dir == "$SCRATCH/images"


# ------------------------------------------------------------------------------------------------
# values a researcher gets wrong
# ------------------------------------------------------------------------------------------------
def test_default_time_unlimited_under_a_finite_maximum():
    problems = Partition("p", max_time="04:00:00", default_time="UNLIMITED").problems()
    assert [p.field for p in problems] == ["default_time"]
    assert "04:00:00" in problems[0].message
    assert Partition("p", max_time="UNLIMITED", default_time="UNLIMITED").problems() == []
    assert Partition("p", max_time="04:00:00", default_time="01:00:00").problems() == []


def test_zero_memory_per_node_is_not_a_node_size():
    problems = Partition("p", mem_per_node="0").problems()
    assert [p.field for p in problems] == ["mem_per_node"]
    assert "187G" in problems[0].message
    assert Partition("p", mem_per_node="1M").problems() == []


@pytest.mark.parametrize("typo, meant", [("apptainr", "apptainer"), ("singulariy", "singularity"),
                                          ("charlicloud", "charliecloud")])
def test_misspelled_module_purpose_is_reported(typo, meant):
    problems = Module(typo, "apptainer").problems()
    assert [p.field for p in problems] == ["purpose"]
    assert repr(meant) in problems[0].message


@pytest.mark.parametrize("purpose", ["apptainer", "cuda", "hdf5", "gcc", "openmpi"])
def test_other_module_purposes_are_free(purpose):
    assert Module(purpose, "x/1.0").problems() == []


def test_partition_problems_name_the_partition_and_line(tmp_path):
    text = ('name = "two"\ngpu_vendor = "nvidia"\n\n'
            '[[partitions]]\nname = "a"\ngpus_per_node = 4\nmax_time = "1.5h"\n\n'
            '[[partitions]]\nname = "b"\ncpus_per_node = 0\nmax_time = "2h"\n')
    with pytest.raises(ProfileError) as err:
        load_profile(write(tmp_path, "two", text))
    message = str(err.value)
    assert "line 7, partition 'a': partitions.max_time" in message
    assert "line 12, partition 'b': partitions.max_time" in message
    assert "line 11, partition 'b': partitions.cpus_per_node" in message
    # the problems themselves keep the model's field names
    assert sorted(p.field for p in err.value.problems) == ["partitions.cpus_per_node", "partitions.max_time",
                                                           "partitions.max_time"]


def test_top_level_and_module_problems_name_their_line(tmp_path):
    text = 'name = "m"\nlogin_host = "me@login"\n\n[modules]\napptainr = "apptainer"\n'
    with pytest.raises(ProfileError) as err:
        load_profile(write(tmp_path, "m", text))
    message = str(err.value)
    assert "line 2: login_host" in message
    assert "line 5, module 'apptainr'" in message


def test_unknown_key_suggests_the_closest(tmp_path):
    text = 'name = "t"\n\n[[partitions]]\nname = "gpu"\ngpu_per_node = 4\n'
    with pytest.raises(ProfileError) as err:
        load_profile(write(tmp_path, "t", text))
    message = str(err.value)
    assert ":5:" in message and "did you mean 'gpus_per_node'?" in message
    with pytest.raises(ProfileError) as err:
        profile_from_toml('name = "t"\nzzzz = 1\n')
    assert "did you mean" not in str(err.value)


def test_profile_path_pointing_at_a_file_is_explained(tmp_path, monkeypatch):
    path = write(tmp_path, "lumi", LUMI)
    monkeypatch.setenv("HPCW_PROFILE_PATH", f"{path}:{tmp_path / 'absent'}")
    with pytest.raises(ProfileError) as err:
        load_profile("lumi")
    message = str(err.value)
    assert f"lists the file {path}" in message and f"use {tmp_path}" in message
    assert f"{tmp_path / 'absent'}, which does not exist" in message
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    assert load_profile("lumi").gpu_vendor == "amd"
