"""Apptainer/Singularity options across versions (session 16): the options added to HPC234's tables from the
Apptainer 1.3–1.5 and SingularityCE 4 references, apptainer's own options before the subcommand, pull and build
commands with options the models have no field for, and the lint rule modules importable on their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hpcwidgets.lint
from hpcwidgets.lint import RULE_MODULES, lint
from hpcwidgets.parse.argv import global_option_words, parse_argv, recognise
from hpcwidgets.spec.argv import argv
from hpcwidgets.spec.apptainer import ApptainerBuild, ApptainerPull


def codes(script: str, code: str) -> list[str]:
    return [f.message for f in lint("#!/bin/bash\n" + script) if f.code == code]


# -- 1. options some version has are not reported ---------------------------------------------------------------

@pytest.mark.parametrize("options", [
    "--no-env HF_TOKEN",              # Apptainer 1.5
    "--no-env=HF_TOKEN,WANDB_API_KEY",
    "--intel-hpu",                    # Apptainer 1.5
    "--device nvidia.com/gpu=all",    # SingularityCE 4, Apptainer 1.5 (CDI)
    "--cdi-dirs /etc/cdi",
    "--sharens",                      # Apptainer 1.3
    "--netns-path /run/netns/job",    # Apptainer 1.4, SingularityCE 4
    "--oci --no-compat --keep-layers",  # SingularityCE 4's OCI mode
    "--sif-fuse --unsquash --no-eval --no-init --no-umask --keep-privs",
    "-u --uts --hostname node1 --pid --ipc --no-mount home,cwd",
    "--fusemount 'host:sshfs server:/ /mnt'",
    "--add-caps CAP_NET_RAW --security seccomp:/s.json --apply-cgroups limits.toml",
    "--cpus 4 --memory 8G --pids-limit 256",
    "--env-file job.env --passphrase --pem-path key.pem --pwd /work",
    "--network none --dns 1.1.1.1 --boot --nonet",
    "--vm --vm-ram 2048 --vm-cpu 2",
    "-ec",                            # short forms clustered: --cleanenv --contain
])
def test_options_of_some_version_are_not_reported(options):
    assert codes(f"apptainer exec {options} img.sif python train.py\n", "HPC234") == []


@pytest.mark.parametrize("command", [
    "apptainer pull --reproducible x.sif docker://alpine:3.20",
    "apptainer build --reproducible --mksquashfs-args '-comp zstd' out.sif env.def",
    "apptainer build --arch-variant v8 --buildkit-host tcp://bk:1234 out.sif Dockerfile",
    "apptainer build --data out.sif ./data",
])
def test_pull_and_build_options_of_apptainer_15_are_not_reported(command):
    assert codes(command + "\n", "HPC234") == []


def test_an_option_no_version_has_is_still_reported():
    assert codes("apptainer exec --no-envs HF_TOKEN img.sif python train.py\n", "HPC234")


# -- 2. apptainer's own options before the subcommand ----------------------------------------------------------

@pytest.mark.parametrize("words, skipped", [
    ("apptainer --debug exec img.sif ls", 1),
    ("singularity -s exec img.sif ls", 1),
    ("apptainer --quiet --nocolor run img.sif", 2),
    ("apptainer -c /etc/apptainer/apptainer.conf exec img.sif ls", 2),
    ("apptainer --config=/etc/apptainer/apptainer.conf exec img.sif ls", 1),
    ("apptainer -dv exec img.sif ls", 1),
    ("apptainer -dc /etc/apptainer.conf exec img.sif ls", 2),
    ("apptainer --build-config build out.sif env.def", 1),
    ("apptainer --nv exec img.sif ls", 0),
])
def test_global_options_are_read_past(words, skipped):
    words = words.split()
    assert global_option_words(words) == skipped
    found = recognise(words)
    assert (found is not None) == (skipped > 0)


def test_the_image_and_command_are_found_after_global_options():
    parsed = parse_argv("apptainer -d -c /etc/a.conf exec --nv img.sif python train.py".split())
    assert (parsed.model.image, parsed.model.nv, parsed.model.command) == ("img.sif", True, ("python", "train.py"))
    assert any("-d -c /etc/a.conf" in note for note in parsed.notes)


@pytest.mark.parametrize("script", [
    "apptainer --debug exec --nv img.sif python train.py\n",
    "singularity -s exec --nv img.sif python train.py\n",
    "srun apptainer --verbose exec --nv img.sif python train.py\n",
    "apptainer -c /etc/apptainer/apptainer.conf run --nv img.sif\n",
    "apptainer -d -v pull img.sif docker://alpine:3.20\n",
])
def test_valid_global_options_are_not_flagged(script):
    assert codes(script, "HPC234") == []


def test_a_container_after_global_options_is_checked_like_any_other():
    job = "#SBATCH --gres=gpu:1\napptainer --debug exec img.sif python train.py\n"
    assert codes(job, "HPC201")  # no --nv: seen through apptainer's own option
    assert codes("apptainer --quiet exec --nvcli img.sif python train.py\n", "HPC234")


def test_an_exec_option_before_exec_is_reported_with_where_it_goes():
    found = codes("srun apptainer --nv exec img.sif python train.py\n", "HPC234")
    assert len(found) == 1
    assert '"unknown flag: --nv"' in found[0] and "write it after exec (apptainer exec --nv" in found[0]


def test_an_unknown_global_option_is_reported():
    found = codes("singularity -x exec img.sif ls\n", "HPC234")
    assert len(found) == 1 and "unknown shorthand flag: 'x' in -x" in found[0]
    assert "singularity --help" in found[0]


def test_words_that_only_name_apptainer_are_not_read_as_a_command():
    assert codes("module load apptainer\ncommand -v apptainer\napptainer --version\n", "HPC234") == []


def test_pull_options_after_global_options_are_read_from_the_subcommand():
    found = codes("apptainer -d -v pull --nope img.sif docker://alpine:3.20\n", "HPC234")
    assert len(found) == 1 and "--nope is not an option of apptainer pull" in found[0]


# -- 3. pull and build with options the models have no field for -------------------------------------------------

def test_pull_keeps_other_options_and_writes_them_back():
    model = parse_argv("apptainer pull --arch arm64 --sandbox ubuntu docker://ubuntu:24.04".split()).model
    assert isinstance(model, ApptainerPull)
    assert model.extra == ("--arch", "arm64", "--sandbox") and (model.dest, model.source) == ("ubuntu",
                                                                                             "docker://ubuntu:24.04")
    assert argv(model) == ["apptainer", "pull", "--arch", "arm64", "--sandbox", "ubuntu", "docker://ubuntu:24.04"]
    assert model.problems() == []  # a sandbox is a directory: no .sif extension asked for


def test_pull_without_sandbox_still_wants_a_sif_name():
    assert [p.field for p in ApptainerPull(dest="ubuntu", source="docker://ubuntu:24.04").problems()] == ["dest"]


def test_build_keeps_other_options():
    model = parse_argv("apptainer build --fix-perms --section post out.sif docker://alpine:3.20".split()).model
    assert isinstance(model, ApptainerBuild) and model.extra == ("--fix-perms", "--section", "post")
    assert model.output == "out.sif"


def test_other_options_that_are_not_options_are_problems():
    assert [p.field for p in ApptainerPull(source="docker://alpine:3.20", extra=("arm64",)).problems()] == ["extra"]
    assert [p.field for p in ApptainerBuild(output="o.sif", source="e.def", extra=("--section post",)).problems()] \
        == ["extra"]


def test_cache_and_pull_rules_see_pulls_with_other_options():
    run = "apptainer exec img.sif true\n"  # (a job that runs no image is a build job: HPC208 leaves it alone)
    script = "apptainer pull --arch arm64 img.sif docker://alpine:3.20\n" + run
    assert codes(script, "HPC207") and codes(script, "HPC208")
    build = "apptainer build --fix-perms out.sif docker://alpine:3.20\n" + run
    assert codes(build, "HPC207") and codes(build, "HPC208")


def test_guarded_pull_with_other_options_is_left_alone():
    script = ('export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"\n'
              '[ -f img.sif ] || apptainer pull --arch arm64 img.sif docker://alpine:3.20\n')
    assert codes(script, "HPC207") == [] and codes(script, "HPC208") == []


# -- 4. rule modules importable on their own ----------------------------------------------------------------------

@pytest.mark.parametrize("module", [*RULE_MODULES, "catalogue"])
def test_each_rule_module_imports_on_its_own(module):
    # catalogue imports no rule module, so none is met half-imported (a name imported from it would be missing)
    result = subprocess.run([sys.executable, "-c", f"import hpcwidgets.lint.{module}"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_every_module_that_defines_rules_is_imported_by_rules():
    folder = Path(hpcwidgets.lint.__file__).parent
    defining = {p.stem for p in folder.glob("*.py") if "\n@rule(" in p.read_text(encoding="utf-8")}
    assert defining == set(RULE_MODULES)
