"""Session 20: the container's GPU flag follows the vendor of the GPUs the job gets where it runs.

That vendor is its partition's (``gpu_vendor`` of the partition in the profile, else the profile's), as lint's HPC218
reads it: a workflow moved to a site's AMD partition turns --rocm on and --nv off (and back), on the command line
(``--set``) and in the form alike, unless the person sets those flags in the same edit. Without a profile the
container's own flag still says the vendor, and a site with NVIDIA GPUs only writes what it wrote before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.lint import lint
from hpcwidgets.parse import parse_script
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.workflow import Workflow, follow, followed, gpu_vendor_of, make_container
from hpcwidgets.widgets import WorkflowBuilder

PROFILE = """\
name = "{name}"
description = "A test site: a CPU partition and GPU partitions {vendors}"
login_host = "login.example.edu"
runtimes = ["apptainer"]
apptainer_binary = "apptainer"
scratch = "$SCRATCH"
node_local = "$TMPDIR"
image_dir = "$SCRATCH/images"
cache_dir = "$SCRATCH/.apptainer/cache"
gpu_vendor = "{top}"
default_partition = "cpu"
default_gpu_partition = "gpua"
account = ""

[[partitions]]
name = "cpu"
description = "CPU nodes"
max_time = "1-00:00:00"
cpus_per_node = 64
mem_per_node = "250G"
gpus_per_node = 0
is_default = true

[[partitions]]
name = "gpua"
description = "8 NVIDIA A100 per node"
max_time = "1-00:00:00"
cpus_per_node = 64
mem_per_node = "500G"
gpus_per_node = 8
gpu_types = ["a100"]
{gpua_vendor}
[[partitions]]
name = "gpum"
description = "8 GPUs per node"
max_time = "1-00:00:00"
cpus_per_node = 128
mem_per_node = "1000G"
gpus_per_node = 8
gpu_types = ["{gpum_type}"]
{gpum_vendor}
"""

#: an NVIDIA job on partition gpua, as a person brings it: --nv, four GPUs, one torchrun per node
SCRIPT = """\
#!/bin/bash
#SBATCH --partition=gpua
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=32
#SBATCH --time=01:00:00

srun apptainer exec --nv img.sif torchrun --standalone --nproc-per-node=4 train.py
"""


def write_profile(tmp_path: Path, name: str, top: str, gpua: str = "", gpum: str = "amd",
                  gpum_type: str = "mi100") -> Path:
    """A profile file of a site whose top-level vendor is ``top``, partition gpua's ``gpua`` and gpum's ``gpum``
    ("" leaves the partition's vendor out: the profile's)."""
    path = tmp_path / f"{name}.toml"
    path.write_text(PROFILE.format(
        name=name, top=top, vendors=f"{gpua or top} and {gpum or top}", gpum_type=gpum_type,
        gpua_vendor=f'gpu_vendor = "{gpua}"\n' if gpua else "",
        gpum_vendor=f'gpu_vendor = "{gpum}"\n' if gpum else ""))
    load_profile(path)  # the test's own profile is valid
    return path


@pytest.fixture
def mixed_site(tmp_path: Path) -> Path:
    """Top-level NVIDIA; partition gpum has AMD GPUs of its own."""
    return write_profile(tmp_path, "mixedsite", "nvidia")


@pytest.fixture
def amd_site(tmp_path: Path) -> Path:
    """Top-level AMD; partition gpua has NVIDIA GPUs of its own, gpum the profile's AMD ones."""
    return write_profile(tmp_path, "amdsite", "amd", gpua="nvidia", gpum="")


@pytest.fixture
def nvidia_site(tmp_path: Path) -> Path:
    """NVIDIA only: both GPU partitions have the profile's NVIDIA GPUs."""
    return write_profile(tmp_path, "nvsite", "nvidia", gpum="", gpum_type="h100")


def cli(tmp_path: Path, capsys, *args: str, script: str = SCRIPT) -> tuple[int, str, str]:
    """``hpcwidgets workflow --from SCRIPT ARGS -o FILE``: exit status, the file written, stderr."""
    src, out = tmp_path / "job.sh", tmp_path / "out.sh"
    src.write_text(script)
    out.unlink(missing_ok=True)
    code = main(["workflow", "--from", str(src), *args, "-o", str(out), "--force"])
    err = capsys.readouterr().err
    return code, out.read_text() if out.exists() else "", err


def flags(text: str) -> tuple[bool, bool]:
    """(--nv, --rocm) of the container of the script ``text``."""
    box = parse_script(text).container
    return box.nv, box.rocm


def hpc218(text: str, profile: Path) -> list[str]:
    return [f.message for f in lint(text, load_profile(profile)) if f.code == "HPC218"]


# ------------------------------------------------------------------------------------------------
# the command line

def test_a_partition_with_its_own_amd_gpus_on_an_nvidia_profile_gets_rocm(mixed_site, tmp_path, capsys):
    code, text, err = cli(tmp_path, capsys, "--profile", str(mixed_site),
                          "--set", "job.partition=gpum", "--set", "job.gpus_per_node=8")
    assert code == 0, err
    assert "#SBATCH --partition=gpum" in text and "--nproc-per-node=8" in text
    assert flags(text) == (False, True)
    assert hpc218(text, mixed_site) == [] and "HPC218" not in err
    # and back to the NVIDIA partition: --nv again, --rocm off
    code, again, err = cli(tmp_path, capsys, "--profile", str(mixed_site), "--set", "job.partition=gpua",
                           "--set", "job.gpus_per_node=2", script=text)
    assert code == 0, err
    assert flags(again) == (True, False) and hpc218(again, mixed_site) == []


def test_an_amd_profile_switches_an_nvidia_job_over_instead_of_adding_rocm(amd_site, tmp_path, capsys):
    code, text, err = cli(tmp_path, capsys, "--profile", str(amd_site),
                          "--set", "job.partition=gpum", "--set", "job.gpus_per_node=8")
    assert code == 0, err
    assert "not both" not in err
    assert flags(text) == (False, True) and hpc218(text, amd_site) == []


def test_a_partition_change_alone_switches_the_flag(mixed_site, tmp_path, capsys):
    code, text, err = cli(tmp_path, capsys, "--profile", str(mixed_site), "--set", "job.partition=gpum")
    assert code == 0, err
    assert "#SBATCH --gres=gpu:4" in text, "the GPUs are kept"
    assert flags(text) == (False, True) and hpc218(text, mixed_site) == []


def test_a_flag_given_in_the_same_edit_wins(mixed_site, tmp_path, capsys):
    # the person keeps --nv off and --rocm off (say, binding the libraries by hand): neither is switched on
    code, text, err = cli(tmp_path, capsys, "--profile", str(mixed_site), "--set", "job.partition=gpum",
                          "--set", "container.rocm=false", "--set", "container.nv=false")
    assert code == 0, err
    assert flags(text) == (False, False)
    # --nv given on: it stays, --rocm follows the partition, and the command line refuses the pair with its fix
    code, text, err = cli(tmp_path, capsys, "--profile", str(mixed_site), "--set", "job.partition=gpum",
                          "--set", "container.nv=true")
    assert code == 2 and text == "" and "not both" in err


def test_without_a_profile_the_containers_flag_still_says_the_vendor(tmp_path, capsys):
    code, text, err = cli(tmp_path, capsys, "--set", "job.partition=gpum", "--set", "job.gpus_per_node=8")
    assert code == 0, err
    assert flags(text) == (True, False)
    amd = SCRIPT.replace("--nv", "--rocm")
    code, text, err = cli(tmp_path, capsys, "--set", "job.gpus_per_node=2", script=amd)
    assert code == 0, err
    assert flags(text) == (False, True)


def test_an_nvidia_only_site_is_unchanged(nvidia_site, tmp_path, capsys):
    code, text, err = cli(tmp_path, capsys, "--profile", str(nvidia_site),
                          "--set", "job.partition=gpum", "--set", "job.gpus_per_node=8")
    assert code == 0, err
    assert flags(text) == (True, False)
    # a move between NVIDIA partitions leaves a flag turned off by hand alone
    bare = SCRIPT.replace("exec --nv", "exec")
    code, text, err = cli(tmp_path, capsys, "--profile", str(nvidia_site), "--set", "job.partition=gpum",
                          script=bare)
    assert flags(text) == (False, False)
    # no GPUs: the flag goes off, as before
    code, text, err = cli(tmp_path, capsys, "--profile", str(nvidia_site), "--set", "job.partition=cpu",
                          "--set", "job.gpus_per_node=0")
    assert flags(text) == (False, False)


# ------------------------------------------------------------------------------------------------
# the model's rule

def test_the_vendor_is_the_partitions_as_lint_reads_it(mixed_site, amd_site):
    job = Workflow.multi_node("train.py", nodes=2, gpus_per_node=4, image="i.sif", partition="gpua")
    moved = job.replace(job=job.job.replace(partition="gpum"))
    mixed, amd = load_profile(mixed_site), load_profile(amd_site)
    assert (gpu_vendor_of(mixed, job), gpu_vendor_of(mixed, moved)) == ("nvidia", "amd")
    assert (gpu_vendor_of(amd, job), gpu_vendor_of(amd, moved)) == ("nvidia", "amd")
    assert gpu_vendor_of(mixed, job) == mixed.vendor_for(job.job)
    assert gpu_vendor_of(amd, moved.replace(job=moved.job.replace(partition="cpu"))) == "amd"


def test_a_move_switches_only_a_flag_of_the_other_vendor():
    before = Workflow.multi_node("train.py", nodes=2, gpus_per_node=4, image="i.sif", partition="gpua")
    moved = before.replace(job=before.job.replace(partition="gpum"))
    assert follow(before, moved, gpu_vendor="amd") == {"container.rocm": True, "container.nv": False}
    assert follow(before, moved, gpu_vendor="nvidia") == {}, "the same vendor: nothing to switch"
    off = before.replace(container=before.container.replace(nv=False))
    assert follow(off, off.replace(job=moved.job), gpu_vendor="amd") == {}, "no flag of the other vendor: left"
    back = followed(before, moved, gpu_vendor="amd")
    assert (back.container.nv, back.container.rocm) == (False, True)
    returned = followed(back, back.replace(job=before.job), gpu_vendor="nvidia")
    assert (returned.container.nv, returned.container.rocm) == (True, False)
    assert "container.nv" not in follow(before, moved, ["container.nv"], gpu_vendor="amd")
    ch = before.replace(container=make_container("charliecloud", "/var/tmp/img"))
    assert follow(ch, ch.replace(job=moved.job), gpu_vendor="amd") == {}, "ch-run has no GPU flag"


# ------------------------------------------------------------------------------------------------
# the form

def test_the_forms_partition_control_moved_to_an_amd_partition_switches_the_flag(mixed_site):
    b = WorkflowBuilder.from_script(SCRIPT, profile=load_profile(mixed_site), submit=False)
    assert (b.spec.container.nv, b.spec.container.rocm) == (True, False)
    b.controls["job.partition"].value = "gpum"
    assert (b.spec.container.nv, b.spec.container.rocm) == (False, True)
    assert (b.controls["container.nv"].value, b.controls["container.rocm"].value) == (False, True)
    assert not [f for f in b.findings if f.code == "HPC218"], [f.message for f in b.findings]
    assert not b.stale
    b.controls["job.gpus_per_node"].value = "8"
    assert "--nproc-per-node=8" in b.text and flags(b.text) == (False, True)
    b.controls["job.partition"].value = "gpua"
    assert flags(b.text) == (True, False)


def test_the_form_and_the_command_line_write_the_same_script(mixed_site, tmp_path, capsys):
    code, text, err = cli(tmp_path, capsys, "--profile", str(mixed_site),
                          "--set", "job.partition=gpum", "--set", "job.gpus_per_node=8")
    b = WorkflowBuilder.from_script(SCRIPT, profile=load_profile(mixed_site), submit=False)
    b.controls["job.partition"].value = "gpum"
    b.controls["job.gpus_per_node"].value = "8"
    assert flags(b.text) == flags(text) == (False, True)


def test_a_flag_typed_in_the_form_is_kept(mixed_site):
    b = WorkflowBuilder.from_script(SCRIPT, profile=load_profile(mixed_site), submit=False)
    b.controls["container.nv"].value = False
    b.controls["container.nv"].value = True       # typed by hand: it wins over the partition's vendor
    b.controls["job.partition"].value = "gpum"
    assert b.controls["container.nv"].value is True
