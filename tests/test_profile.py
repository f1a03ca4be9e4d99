"""Cluster profiles: the model and its invariants, checks of jobs against a site, TOML loading and the
search path, detection from Slurm text (and from the live practice cluster), and the docs table."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import need
from hpcwidgets.errors import OverwriteError, ProfileError, RunError
from hpcwidgets.profiles import (SHIPPED_DIR, list_profiles, load_profile, profile_fields_markdown,
                                 profile_from_toml, profile_to_toml, save_profile, search_path, user_profile_dir)
from hpcwidgets.run import detect
from hpcwidgets.spec.profile import ClusterProfile, ExampleSettings, Module, Partition, Qos, check_job
from hpcwidgets.spec.slurm import SlurmJob

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("generic", "local", "midway3")


pytestmark = pytest.mark.usefixtures("isolated_profiles")  # see conftest.py


def site(**changes) -> ClusterProfile:
    """A small valid site: cpu (default) and gpu (4 × a100/v100) and a single-type partition."""
    base = ClusterProfile(
        name="testsite", gpu_vendor="nvidia", default_partition="cpu", default_gpu_partition="gpu",
        partitions=(
            Partition("cpu", max_time="1-00:00:00", max_nodes=4, cpus_per_node=32, mem_per_node="128G", is_default=True),
            Partition("gpu", max_time="12:00:00", max_nodes=2, cpus_per_node=16, mem_per_node="256G",
                      gpus_per_node=4, gpu_types=("a100", "v100")),
            Partition("long", max_time="7-00:00:00", max_nodes=1, cpus_per_node=8, mem_per_node="64G"),
        ))
    return base.replace(**changes) if changes else base


def fields(problems) -> list[str]:
    return [p.field for p in problems]


# ------------------------------------------------------------------------------------------------
# shipped profiles
# ------------------------------------------------------------------------------------------------
def test_shipped_profiles_are_listed_from_the_package():
    found = list_profiles()
    for name in SHIPPED:
        assert found[name] == SHIPPED_DIR / f"{name}.toml"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_without_problems(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.problems() == []
    assert profile.partitions, "a shipped profile lists its partitions"
    assert profile.default() is not None
    assert profile.default(gpu=True) is not None and profile.default(gpu=True).has_gpus


def test_local_profile_matches_the_practice_cluster_design():
    p = load_profile("local")
    debug = p.partition("debug")
    assert (debug.max_time, debug.cpus_per_node, debug.mem_per_node, debug.gpus_per_node) == ("01:00:00", 2, "3900M", 2)
    assert debug.is_default and debug.gpu_types == () and debug.max_nodes == 2
    assert p.login_host == "localhost" and p.scheduler_version == "22.05"
    assert set(p.runtimes) == {"apptainer", "charliecloud"} and p.runtimes_render_only == ("apptainer",)
    assert p.examples.image == "/var/tmp/hpcw-images/trainer"
    assert "$USER" not in p.scratch, "CI runs as root where USER may be unset"
    assert p.srun_needs_cpus_per_task()


def test_midway3_profile_follows_the_workshop():
    p = load_profile("midway3")
    assert p.login_host == "midway3.rcc.uchicago.edu"
    assert p.image_dir == "/scratch/midway3/$USER/sif_files"
    assert p.node_local == "/scratch/local/$USER"
    assert p.module("apptainer") == "apptainer"
    assert {"caslake", "gpu", "gpu-multi"} <= set(p.partition_names())
    assert "EXAMPLE" in p.description and "illustrative" in p.description
    text = (SHIPPED_DIR / "midway3.toml").read_text()
    assert "illustrative" in text and "check the site's documentation" in text.lower()


def test_workshop_jobs_fit_the_midway3_example():
    p = load_profile("midway3")
    single = SlurmJob(partition="gpu", gpus_per_node=1, cpus_per_task=4, mem="16G")
    multi = SlurmJob(partition="gpu-multi", nodes=2, ntasks_per_node=4, gpus_per_node=4, cpus_per_task=2)
    assert check_job(p, single) == []
    assert check_job(p, multi) == []


# ------------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("comments", [True, False])
def test_shipped_profile_round_trips_through_toml(name, comments):
    profile = load_profile(name)
    text = profile_to_toml(profile, comments=comments)
    assert profile_from_toml(text) == profile
    help_lines = [line for line in text.splitlines()[3:] if line.startswith("#")]
    assert bool(help_lines) is comments
    assert ("# The name given to sbatch --partition." in text) is comments


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_round_trips_through_json(name):
    profile = load_profile(name)
    again = ClusterProfile.from_json(profile.to_json())
    assert again == profile
    assert json.loads(profile.to_json())["kind"] == "profile"


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40), purpose=st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True))
def test_any_text_survives_the_toml_writer(text, purpose):
    profile = site(description=text, account="", modules=(Module(purpose, "mod/1.0"),),
                   examples=ExampleSettings(workdir="/w/" + text.replace("\x00", "")))
    assert profile_from_toml(profile_to_toml(profile), validate=False) == profile


def test_toml_writer_escapes_hostile_strings():
    hostile = 'a"b\\c\nd\te\x01 $(rm -rf /) ü'
    profile = site(description=hostile)
    text = profile_to_toml(profile)
    assert profile_from_toml(text).description == hostile
    assert "\n" not in [line for line in text.splitlines() if line.startswith("description")][0]


def test_modules_accept_a_table_or_a_list():
    a = ClusterProfile.from_dict({"name": "x", "modules": {"apptainer": "apptainer/1.3", "cuda": "cuda/12.1"}})
    b = ClusterProfile.from_dict({"name": "x", "modules": [{"purpose": "apptainer", "name": "apptainer/1.3"},
                                                             {"purpose": "cuda", "name": "cuda/12.1"}]})
    assert a == b
    assert a.module("cuda") == "cuda/12.1" and a.module("mpi") == ""


def test_save_profile_refuses_to_overwrite(tmp_path):
    target = tmp_path / "site.toml"
    save_profile(site(), target)
    assert load_profile(target) == site()
    with pytest.raises(OverwriteError, match="overwrite=True"):
        save_profile(site(), target)
    save_profile(site(description="changed"), target, overwrite=True)
    assert load_profile(target).description == "changed"


# ------------------------------------------------------------------------------------------------
# search path and loading errors
# ------------------------------------------------------------------------------------------------
def write_profile(directory: Path, name: str, description: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(profile_to_toml(site(name=name, description=description)))
    return path


def test_search_path_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("HPCW_PROFILE_PATH", os.pathsep.join([str(a), "", str(b)]))
    path = search_path()
    assert path[:2] == [a, b]
    assert path[2] == Path(os.environ["HOME"]) / ".config" / "hpcwidgets" / "profiles"
    assert path[-1] == SHIPPED_DIR


def test_precedence_env_then_user_then_shipped(tmp_path, monkeypatch):
    user = user_profile_dir()
    env_a, env_b = tmp_path / "env_a", tmp_path / "env_b"
    write_profile(user, "generic", "user copy of generic")
    write_profile(user, "mine", "user only")
    write_profile(env_b, "mine", "env_b copy")
    write_profile(env_a, "mine", "env_a copy")
    # user dir beats the shipped profile
    assert load_profile("generic").description == "user copy of generic"
    assert load_profile("mine").description == "user only"
    # $HPCW_PROFILE_PATH beats the user dir; its first directory wins
    monkeypatch.setenv("HPCW_PROFILE_PATH", os.pathsep.join([str(env_b), str(env_a)]))
    assert load_profile("mine").description == "env_b copy"
    monkeypatch.setenv("HPCW_PROFILE_PATH", os.pathsep.join([str(env_a), str(env_b)]))
    assert load_profile("mine").description == "env_a copy"
    listed = list_profiles()
    assert listed["mine"] == env_a / "mine.toml"
    assert listed["generic"] == user / "generic.toml"
    assert listed["midway3"] == SHIPPED_DIR / "midway3.toml"
    # an explicit path beats every name lookup
    explicit = write_profile(tmp_path / "elsewhere", "mine", "explicit file")
    assert load_profile(explicit).description == "explicit file"
    assert load_profile(str(explicit)).description == "explicit file"


def test_xdg_config_home_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    write_profile(tmp_path / "xdg" / "hpcwidgets" / "profiles", "xdgsite", "from xdg")
    assert load_profile("xdgsite").description == "from xdg"


def test_unknown_name_lists_available_profiles():
    with pytest.raises(ProfileError) as err:
        load_profile("nosuchsite")
    message = str(err.value)
    assert "nosuchsite" in message
    for name in SHIPPED:
        assert name in message
    assert "HPCW_PROFILE_PATH" in message


def test_missing_explicit_path(tmp_path):
    with pytest.raises(ProfileError, match="no profile file at"):
        load_profile(tmp_path / "absent.toml")


def test_bad_toml_names_file_and_line(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "broken"\nlogin_host = "x"\nruntimes = [apptainer]\n')
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    assert f"{bad.resolve()}:3:" in str(err.value)
    assert "not valid TOML" in str(err.value)


def test_toml_left_open_is_placed_at_the_end_not_at_line_0(tmp_path):
    bad = tmp_path / "open.toml"
    bad.write_text('name = "open"\nlogin_host = "x"\nruntimes = ["apptainer",\n')
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    assert f"{bad.resolve()}:3:" in str(err.value) and ":0:0:" not in str(err.value)


def test_misspelt_profile_and_field_get_a_suggestion(tmp_path):
    with pytest.raises(ProfileError, match="unknown profile 'generc' \\(did you mean 'generic'\\?\\)"):
        load_profile("generc")
    from hpcwidgets.errors import UnknownFieldError
    from hpcwidgets.spec import SlurmJob
    with pytest.raises(UnknownFieldError, match="no field 'tme' \\(did you mean 'time'\\?\\); valid fields: "):
        SlurmJob().replace(tme="10")


def test_twice_named_partition_is_listed_once_among_the_choices():
    text = ('name = "twice"\nlogin_host = "x"\ndefault_partition = "gpu"\n'
            '[[partitions]]\nname = "cpu"\n[[partitions]]\nname = "cpu"\n')
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text)
    assert "use one of: cpu\n" in str(err.value) + "\n" and "defined more than once" in str(err.value)


def test_unknown_key_names_line_and_valid_keys(tmp_path):
    bad = tmp_path / "typo.toml"
    bad.write_text('name = "typo"\n\n[[partitions]]\nname = "a"\nmaxtime = "1:00:00"\n')
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    message = str(err.value)
    assert ":5:" in message and "maxtime" in message and "max_time" in message


def test_invalid_profile_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndefault_partition = "nope"\nscratch = "~/scratch"\n\n'
                   '[[partitions]]\nname = "a"\nmax_time = "forever"\n')
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    message = str(err.value)
    assert "3 problems" in message
    assert "nope" in message and "$HOME/scratch" in message and "forever" in message
    assert set(fields(err.value.problems)) == {"default_partition", "scratch", "partitions.max_time"}
    # without validation the model is returned as written, for an editor to fix
    assert load_profile(bad, validate=False).default_partition == "nope"


def test_file_name_is_the_default_name(tmp_path):
    path = tmp_path / "unnamed.toml"
    path.write_text('[[partitions]]\nname = "a"\n')
    assert load_profile(path).name == "unnamed"


def test_wrong_kind_is_rejected(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text('kind = "slurm.job"\n')
    with pytest.raises(ProfileError, match='kind = "profile"'):
        load_profile(path)


def test_loaded_profiles_are_cached_until_the_file_changes(tmp_path):
    path = write_profile(tmp_path / "p", "cached", "first")
    first = load_profile(path)
    assert load_profile(path) is first
    path.write_text(profile_to_toml(site(name="cached", description="second, longer")))
    assert load_profile(path).description == "second, longer"
    assert load_profile("local") is load_profile("local")


# ------------------------------------------------------------------------------------------------
# model invariants (each with a near miss that passes)
# ------------------------------------------------------------------------------------------------
def test_valid_site_has_no_problems():
    assert site().problems() == []


def test_duplicate_partition_names():
    dup = site(partitions=site().partitions + (Partition("cpu"),))
    assert "partitions" in fields(dup.problems())
    assert "unique" in str(dup.problems())
    assert site(partitions=site().partitions + (Partition("cpu2"),)).problems() == []


def test_default_partition_must_exist():
    problems = site(default_partition="cpuu").problems()
    assert fields(problems) == ["default_partition"]
    assert "cpu, gpu, long" in problems[0].message


def test_default_partition_agrees_with_is_default():
    problems = site(default_partition="long").problems()
    assert fields(problems) == ["default_partition"] and "is_default" in problems[0].message
    several = site(partitions=tuple(p.replace(is_default=True) for p in site().partitions), default_partition="")
    assert "only one" in str(several.problems())


def test_default_gpu_partition_must_have_gpus():
    problems = site(default_gpu_partition="cpu").problems()
    assert fields(problems) == ["default_gpu_partition"] and "gpu" in problems[0].message
    assert site(default_gpu_partition="").problems() == []


def test_partition_times_parse_and_default_within_max():
    bad = Partition("x", max_time="2 days")
    assert fields(bad.problems()) == ["max_time"] and "D-H:M:S" in bad.problems()[0].message
    assert Partition("x", max_time="2-00:00:00").problems() == []
    assert Partition("x", max_time="UNLIMITED").problems() == []
    longer = Partition("x", max_time="01:00:00", default_time="02:00:00")
    assert fields(longer.problems()) == ["default_time"]
    assert Partition("x", max_time="01:00:00", default_time="01:00:00").problems() == []


def test_partition_memory_and_gpu_types():
    assert fields(Partition("x", mem_per_node="187GiB").problems()) == ["mem_per_node"]
    assert "187G" in Partition("x", mem_per_node="187GiB").problems()[0].message
    assert Partition("x", mem_per_node="187G").problems() == []
    assert fields(Partition("x", gpu_types=("a100",)).problems()) == ["gpu_types"]
    assert Partition("x", gpus_per_node=4, gpu_types=("a100",)).problems() == []
    assert fields(Partition("x", gpus_per_node=-1).problems()) == ["gpus_per_node"]
    assert fields(Partition("").problems()) == ["name"]


def test_gpu_vendor_none_with_gpu_partitions():
    problems = site(gpu_vendor="none").problems()
    assert fields(problems) == ["gpu_vendor"] and "gpu" in problems[0].message
    assert site(gpu_vendor="amd").problems() == []
    assert fields(site(gpu_vendor="ati").problems()) == ["gpu_vendor"]


def test_runtimes():
    assert fields(site(runtimes=()).problems()) == ["runtimes"]
    assert fields(site(runtimes=("docker",)).problems()) == ["runtimes"]
    assert fields(site(runtimes_render_only=("charliecloud",)).problems()) == ["runtimes_render_only"]
    assert site(runtimes=("apptainer", "charliecloud"), runtimes_render_only=("charliecloud",)).problems() == []
    assert fields(site(runtimes=("singularity",)).problems()) == ["apptainer_binary"]
    assert site(runtimes=("singularity",), apptainer_binary="singularity").problems() == []


def test_paths_host_version_and_modules():
    assert "$HOME/scratch" in str(site(scratch="~/scratch").problems())
    assert fields(site(image_dir="images").problems()) == ["image_dir"]
    assert site(image_dir="/data/images").problems() == []
    assert fields(site(login_host="me@login.example.edu").problems()) == ["login_host"]
    assert site(login_host="login.example.edu").problems() == []
    assert fields(site(scheduler_version="22").problems()) == ["scheduler_version"]
    assert site(scheduler_version="23.11").problems() == []
    two = site(modules=(Module("cuda", "cuda/11.8"), Module("cuda", "cuda/12.1")))
    assert fields(two.problems()) == ["modules"]
    assert fields(site(modules=(Module("cuda", "cuda 12"),)).problems()) == ["modules.name"]
    assert fields(site(examples=ExampleSettings(data_dir="~/data")).problems()) == ["examples.data_dir"]
    assert site(examples=ExampleSettings(image="docker://pytorch/pytorch:2.3.1")).problems() == []


def test_partition_lookup_lists_valid_names():
    p = site()
    assert p.partition("gpu").gpus_per_node == 4
    with pytest.raises(ProfileError) as err:
        p.partition("gpus")
    assert "'gpus'" in str(err.value) and "cpu, gpu, long" in str(err.value)
    assert [x.name for x in p.gpu_partitions()] == ["gpu"]
    assert p.default().name == "cpu" and p.default(gpu=True).name == "gpu"


@pytest.mark.parametrize("version,needed", [("", True), ("21.08", False), ("22.05", True), ("23.02", True),
                                            ("23.11", False), ("24.05", False)])
def test_srun_cpus_per_task_rule(version, needed):
    assert site(scheduler_version=version).srun_needs_cpus_per_task() is needed


def test_problems_never_raise_on_garbage():
    garbage = ClusterProfile(name=3, runtimes="apptainer", partitions=("cpu",), gpu_vendor=None)  # type: ignore[arg-type]
    problems = garbage.problems()
    assert {"name", "runtimes", "partitions"} <= set(fields(problems))


# ------------------------------------------------------------------------------------------------
# check_job: each rule with a near miss that passes
# ------------------------------------------------------------------------------------------------
def test_unknown_partition_lists_valid():
    problems = check_job(site(), SlurmJob(partition="gpu2"))
    assert fields(problems) == ["partition"]
    assert "gpu2" in problems[0].message and "cpu, gpu, long" in problems[0].message
    assert check_job(site(), SlurmJob(partition="gpu")) == []


def test_time_over_the_partition_limit():
    problems = check_job(site(), SlurmJob(partition="gpu", time="12:00:01"))
    assert fields(problems) == ["time"]
    assert "12:00:00" in problems[0].message and "long" in problems[0].message
    assert check_job(site(), SlurmJob(partition="gpu", time="12:00:00")) == []
    assert check_job(site(), SlurmJob(partition="gpu", time="720")) == []          # 720 minutes
    assert fields(check_job(site(), SlurmJob(partition="gpu", time="UNLIMITED"))) == ["time"]
    assert check_job(site(), SlurmJob(partition="gpu", time="soon")) == []        # left to job.problems()


def test_more_nodes_than_allowed():
    problems = check_job(site(), SlurmJob(partition="gpu", nodes=3))
    assert fields(problems) == ["nodes"] and "at most 2" in problems[0].message
    assert check_job(site(), SlurmJob(partition="gpu", nodes=2)) == []


def test_more_gpus_per_node_than_the_nodes_have():
    problems = check_job(site(), SlurmJob(partition="gpu", gpus_per_node=5))
    assert fields(problems) == ["gpus_per_node"] and "at most 4" in problems[0].message
    assert check_job(site(), SlurmJob(partition="gpu", gpus_per_node=4)) == []
    # GPUs in total are spread over the nodes
    assert fields(check_job(site(), SlurmJob(partition="gpu", nodes=1, gpus=8))) == ["gpus"]
    assert check_job(site(), SlurmJob(partition="gpu", nodes=2, gpus=8)) == []


def test_gpus_on_a_partition_without_gpus():
    problems = check_job(site(), SlurmJob(partition="cpu", gpus_per_node=1))
    assert fields(problems) == ["partition"]
    assert "has none" in problems[0].message and "gpu" in problems[0].message.split("partition:")[-1]
    assert check_job(site(), SlurmJob(partition="cpu")) == []
    # no partition named: the default (cpu) is meant, and the GPU request is what to change
    default = check_job(site(), SlurmJob(gpus_per_node=1))
    assert fields(default) == ["gpus_per_node"] and "the default" in default[0].message


def test_unknown_gpu_type_names_the_valid():
    problems = check_job(site(), SlurmJob(partition="gpu", gpus_per_node=1, gpu_type="h100"))
    assert fields(problems) == ["gpu_type"] and "a100, v100" in problems[0].message
    assert check_job(site(), SlurmJob(partition="gpu", gpus_per_node=1, gpu_type="v100")) == []
    untyped = site(partitions=(Partition("debug", gpus_per_node=2, is_default=True),), default_partition="debug",
                   default_gpu_partition="debug")
    # a partition that names no GPU types takes any: the profile does not know them (session 16)
    assert check_job(untyped, SlurmJob(gpus_per_node=1, gpu_type="a100")) == []
    assert check_job(untyped, SlurmJob(gpus_per_node=1)) == []


def test_memory_per_node_above_the_nodes():
    problems = check_job(site(), SlurmJob(partition="cpu", mem="129G"))
    assert fields(problems) == ["mem"] and "128G" in problems[0].message
    assert check_job(site(), SlurmJob(partition="cpu", mem="128G")) == []
    assert check_job(site(), SlurmJob(partition="cpu", mem="0")) == []            # all of the node
    per_cpu = check_job(site(), SlurmJob(partition="cpu", cpus_per_task=32, mem_per_cpu="5G"))
    assert fields(per_cpu) == ["mem_per_cpu"] and "4G per CPU" in per_cpu[0].message
    assert check_job(site(), SlurmJob(partition="cpu", cpus_per_task=32, mem_per_cpu="4G")) == []


def test_cpus_per_node_above_the_nodes():
    problems = check_job(site(), SlurmJob(partition="gpu", ntasks_per_node=4, cpus_per_task=5))
    assert fields(problems) == ["cpus_per_task"]
    assert "4 tasks per node × 5 CPUs per task = 20" in problems[0].message and "16" in problems[0].message
    assert check_job(site(), SlurmJob(partition="gpu", ntasks_per_node=4, cpus_per_task=4)) == []
    # ntasks without ntasks-per-node spreads over the nodes
    assert fields(check_job(site(), SlurmJob(partition="long", ntasks=9))) == ["ntasks"]
    assert check_job(site(), SlurmJob(partition="cpu", nodes=2, ntasks=64)) == []


def test_several_partitions_must_each_fit():
    job = SlurmJob(partition="cpu,long", time="2-00:00:00")
    problems = check_job(site(), job)
    assert fields(problems) == ["time"] and "partition cpu" in problems[0].message
    assert check_job(site(), job.replace(partition="long")) == []


def test_every_problem_is_reported_at_once():
    job = SlurmJob(partition="gpu", nodes=3, time="1-00:00:00", gpus_per_node=8, gpu_type="h100",
                   ntasks_per_node=1, cpus_per_task=64, mem="1T")
    assert set(fields(check_job(site(), job))) == {"time", "nodes", "gpus_per_node", "gpu_type", "cpus_per_task", "mem"}


def test_practice_cluster_limits_in_check_job():
    local = load_profile("local")
    assert check_job(local, SlurmJob(gpus_per_node=2, nodes=2, ntasks_per_node=1, cpus_per_task=2, mem="3900M",
                                     time="01:00:00")) == []
    assert fields(check_job(local, SlurmJob(gpus_per_node=3))) == ["gpus_per_node"]
    assert fields(check_job(local, SlurmJob(nodes=3))) == ["nodes"]


# ------------------------------------------------------------------------------------------------
# detection: pure parsing of captured Slurm 22.05 text
# ------------------------------------------------------------------------------------------------
PARTITIONS_TEXT = """\
PartitionName=cpu
   AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL
   AllocNodes=ALL Default=YES QoS=N/A
   DefaultTime=01:00:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO
   MaxNodes=16 MaxTime=2-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED
   Nodes=c[001-004]
   PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO
   OverTimeLimit=NONE PreemptMode=OFF
   State=UP TotalCPUs=192 TotalNodes=4 SelectTypeParameters=NONE
   JobDefaults=(null)
   DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED
   TRES=cpu=192,mem=760000M,node=4,billing=192

PartitionName=gpu
   AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL
   AllocNodes=ALL Default=NO QoS=N/A
   DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO
   MaxNodes=UNLIMITED MaxTime=1-12:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED
   Nodes=g[01-02],gv1
   PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO
   OverTimeLimit=NONE PreemptMode=OFF
   State=UP TotalCPUs=144 TotalNodes=3 SelectTypeParameters=NONE
   JobDefaults=DefCpuPerGPU=4
   DefMemPerNode=UNLIMITED MaxMemPerNode=500000
   TRES=cpu=144,mem=1500000M,node=3,billing=144,gres/gpu=12

PartitionName=long
   AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL
   AllocNodes=ALL Default=NO QoS=N/A
   DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO
   MaxNodes=1 MaxTime=UNLIMITED MinNodes=0 LLN=NO MaxCPUsPerNode=40
   Nodes=c004
   PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO
   OverTimeLimit=NONE PreemptMode=OFF
   State=UP TotalCPUs=48 TotalNodes=1 SelectTypeParameters=NONE
   JobDefaults=(null)
   DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED
   TRES=cpu=48,mem=190000M,node=1,billing=48
"""


def node_text(name: str, cpus: int, mem: int, gres: str, partitions: str) -> str:
    return f"""\
NodeName={name} Arch=x86_64 CoresPerSocket={cpus // 2}
   CPUAlloc=0 CPUEfctv={cpus} CPUTot={cpus} CPULoad=0.01
   AvailableFeatures=(null)
   ActiveFeatures=(null)
   Gres={gres}
   NodeAddr={name} NodeHostName={name} Version=22.05.8
   OS=Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)
   RealMemory={mem} AllocMem=0 FreeMem={mem - 1000} Sockets=2 Boards=1
   State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A
   Partitions={partitions}
   BootTime=2024-05-01T09:58:12 SlurmdStartTime=2024-05-01T10:00:03
   LastBusyTime=2024-05-01T10:00:03
   CfgTRES=cpu={cpus},mem={mem}M,billing={cpus}
   AllocTRES=
   CapWatts=n/a
   CurrentWatts=0 AveWatts=0
   ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s
"""


NODES_TEXT = "\n".join([
    *(node_text(f"c00{i}", 48, 190000, "(null)", "cpu" if i < 4 else "cpu,long") for i in range(1, 5)),
    node_text("g01", 48, 500000, "gpu:a100:4(S:0-1)", "gpu"),
    node_text("g02", 48, 500000, "gpu:a100:4(S:0-1)", "gpu"),
    node_text("gv1", 48, 380000, "gpu:v100:2(S:0),gpu:v100:2(S:1)", "gpu"),
])


def test_parse_scontrol_records_keep_spaces_and_nested_equals():
    nodes = detect.parse_scontrol(NODES_TEXT, "NodeName")
    assert [n["NodeName"] for n in nodes] == ["c001", "c002", "c003", "c004", "g01", "g02", "gv1"]
    assert nodes[0]["OS"].startswith("Linux 6.1.0-18-amd64 #1 SMP") and nodes[0]["OS"].endswith("(2024-02-01)")
    assert nodes[0]["CfgTRES"] == "cpu=48,mem=190000M,billing=48"
    assert nodes[0]["AllocTRES"] == ""
    assert nodes[4]["Gres"] == "gpu:a100:4(S:0-1)"


def test_parse_scontrol_oneliner_equals_multiline():
    oneliner = "\n".join(" ".join(block.split()) for block in PARTITIONS_TEXT.split("\n\n"))
    assert detect.parse_scontrol(oneliner, "PartitionName") == detect.parse_scontrol(PARTITIONS_TEXT, "PartitionName")


@pytest.mark.parametrize("text,names", [
    ("n[1-2]", ["n1", "n2"]),
    ("c[001-003,010]", ["c001", "c002", "c003", "c010"]),
    ("g[01-02],gv1", ["g01", "g02", "gv1"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("node7", ["node7"]),
    ("(null)", []),
])
def test_expand_hostlist(text, names):
    assert detect.expand_hostlist(text) == names


@pytest.mark.parametrize("bad", ["n[1-2", "n[3-1]", "n[a-b]"])
def test_expand_hostlist_rejects_malformed(bad):
    with pytest.raises(ValueError, match="host list"):
        detect.expand_hostlist(bad)


@pytest.mark.parametrize("text,gpus", [
    ("gpu:a100:4(S:0-1)", {"a100": 4}),
    ("gpu:2", {"": 2}),
    ("gpu:v100:2(S:0),gpu:v100:2(S:1)", {"v100": 4}),
    ("gpu:a100:2,gpu:v100:2,shard:8", {"a100": 2, "v100": 2}),
    ("gpu:a100:4(S:0-1),mps:400", {"a100": 4}),
    ("(null)", {}),
])
def test_parse_gres(text, gpus):
    assert detect.parse_gres(text) == gpus


def test_scheduler_version_from_sinfo():
    assert detect.scheduler_version_from("slurm-wlm 22.05.8\n") == "22.05"
    assert detect.scheduler_version_from("slurm 23.11.4") == "23.11"
    assert detect.scheduler_version_from("no version here") == ""


def test_profile_from_scontrol_sample_site():
    p = detect.profile_from_scontrol(PARTITIONS_TEXT, NODES_TEXT, name="sample", version_text="slurm 22.05.8")
    assert p.problems() == []
    assert p.partition_names() == ["cpu", "gpu", "long"]
    assert (p.default_partition, p.default_gpu_partition, p.gpu_vendor) == ("cpu", "gpu", "nvidia")
    assert p.scheduler_version == "22.05"
    cpu, gpu, long = p.partitions
    assert (cpu.max_time, cpu.default_time, cpu.max_nodes, cpu.cpus_per_node, cpu.mem_per_node) == \
        ("2-00:00:00", "01:00:00", 4, 48, "190000M")  # MaxNodes=16 but only 4 nodes
    assert cpu.gpus_per_node == 0 and cpu.is_default
    assert (gpu.max_time, gpu.default_time, gpu.max_nodes) == ("1-12:00:00", "", 3)
    assert gpu.gpus_per_node == 4 and gpu.gpu_types == ("a100", "v100")
    assert gpu.mem_per_node == format_mem_mib(500000)           # MaxMemPerNode caps the node's RealMemory
    assert (long.max_time, long.max_nodes, long.cpus_per_node) == ("UNLIMITED", 1, 40)   # MaxCPUsPerNode caps
    assert p == profile_from_toml(profile_to_toml(p))


def format_mem_mib(mib: int) -> str:
    from hpcwidgets.spec.units import format_mem
    return format_mem(mib)


def test_profile_from_scontrol_uses_node_partitions_when_nodes_are_not_listed():
    partitions = PARTITIONS_TEXT.replace("Nodes=c004", "Nodes=(null)")
    p = detect.profile_from_scontrol(partitions, NODES_TEXT)
    assert p.partition("long").cpus_per_node == 40


def test_profile_from_scontrol_without_partitions():
    with pytest.raises(ProfileError, match="no PartitionName"):
        detect.profile_from_scontrol("", NODES_TEXT)


def test_runtimes_from_programs():
    assert detect.runtimes_from_programs({"apptainer", "singularity", "ch-run"}) == \
        (("apptainer", "charliecloud"), (), "apptainer")
    assert detect.runtimes_from_programs({"singularity"}) == (("singularity",), (), "singularity")
    assert detect.runtimes_from_programs(set()) == (("apptainer",), ("apptainer",), "apptainer")


def test_detect_profile_runs_argv_lists():
    calls: list[list[str]] = []
    replies = {"partition": PARTITIONS_TEXT, "node": NODES_TEXT, "--version": "slurm 22.05.8\n",
               "config": "Configuration data as of 2026-11-30T04:00:00\nMpiDefault              = pmix_v4\n",
               detect.QOS_ARGV[-1]: ""}

    def runner(argv: list[str]) -> str:
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        calls.append(argv)
        return replies[argv[-1]]

    p = detect.detect_profile("mysite", runner=runner, which=lambda prog: "/usr/bin/ch-run" if prog == "ch-run" else None)
    assert calls == [list(detect.PARTITIONS_ARGV), list(detect.NODES_ARGV), list(detect.VERSION_ARGV),
                     list(detect.CONFIG_ARGV), list(detect.QOS_ARGV)]
    assert p.mpi_default == "pmix_v4"  # the site's MpiDefault, for HPC135
    assert detect.mpi_default_from("MpiDefault = something-else\n") == "" == detect.mpi_default_from("")
    assert p.name == "mysite" and p.runtimes == ("charliecloud",) and p.partition_names() == ["cpu", "gpu", "long"]


def test_missing_slurm_command_is_a_run_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))   # an empty directory: no scontrol
    with pytest.raises(RunError, match="not installed or not on PATH"):
        detect.detect_profile(env={"SLURM_CONF": str(tmp_path / "slurm.conf")})


# ------------------------------------------------------------------------------------------------
# detection against the live practice cluster
# ------------------------------------------------------------------------------------------------
def practice_slurm_conf() -> Path | None:
    candidates = [os.environ.get("SLURM_CONF", "")]
    if os.environ.get("HPCW_CLUSTER_DIR"):
        candidates.append(os.path.join(os.environ["HPCW_CLUSTER_DIR"], "slurm.conf"))
    candidates.append("/var/lib/hpcwidgets-practice/slurm.conf")
    for c in candidates:
        if c and Path(c).is_file() and "ClusterName=practice" in Path(c).read_text(errors="replace"):
            return Path(c)
    return None


@pytest.mark.real
def test_detected_practice_cluster_matches_the_local_profile():
    conf = practice_slurm_conf()
    need(conf is not None, "the practice cluster is not set up (hpcwidgets practice-cluster up)")
    env = {"SLURM_CONF": str(conf)}
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20,
                              env={**os.environ, **env})
        up = ping.returncode == 0 and "UP" in ping.stdout
    except (FileNotFoundError, subprocess.TimeoutExpired):
        up = False
    need(up, f"the practice cluster's slurmctld does not answer (SLURM_CONF={conf})")
    detected = detect.detect_profile("local", env=env)
    shipped = load_profile("local")
    assert detected.problems() == []
    assert detected.scheduler_version == shipped.scheduler_version
    assert detected.default_partition == shipped.default_partition
    assert detected.default_gpu_partition == shipped.default_gpu_partition
    keys = ("name", "max_time", "max_nodes", "cpus_per_node", "mem_per_node", "gpus_per_node", "gpu_types", "is_default")
    assert [{k: getattr(p, k) for k in keys} for p in detected.partitions] == \
        [{k: getattr(p, k) for k in keys} for p in shipped.partitions]


# ------------------------------------------------------------------------------------------------
# documentation
# ------------------------------------------------------------------------------------------------
def test_docs_field_table_is_current():
    doc = (ROOT / "docs" / "profiles.md").read_text()
    begin, end = "<!-- fields:begin -->", "<!-- fields:end -->"
    assert begin in doc and end in doc
    current = doc.split(begin, 1)[1].split(end, 1)[0].strip()
    assert current == profile_fields_markdown().strip(), (
        "docs/profiles.md is stale: replace the text between the fields markers with the output of\n"
        "  .venv/bin/python -c 'from hpcwidgets.profiles import profile_fields_markdown as f; print(f())'")


def test_field_table_covers_every_field():
    table = profile_fields_markdown()
    for cls, prefix in ((ClusterProfile, ""), (ExampleSettings, "examples."), (Partition, "partitions."),
                        (Qos, "qos.")):
        for f in cls.field_specs():
            assert f"`{prefix}{f.name}`" in table


_values = st.one_of(st.none(), st.integers(-3, 300), st.text(max_size=12), st.booleans())


@settings(max_examples=150, deadline=None)
@given(partition=st.sampled_from(["", "cpu", "gpu", "long", "cpu,gpu", "nope", 7]), nodes=_values, ntasks=_values,
       ntasks_per_node=_values, cpus_per_task=_values, gpus_per_node=_values, gpus=_values, gpus_per_task=_values,
       cpus_per_gpu=_values, gpu_type=_values, mem=_values, mem_per_cpu=_values, mem_per_gpu=_values, time=_values)
def test_check_job_never_raises(**values):
    problems = check_job(site(), SlurmJob(**values))
    assert all(p.field in {f.name for f in SlurmJob.field_specs()} for p in problems)
