"""Apptainer options no version has (HPC234), the rules' shared reading of "the script asks for no resources"
(HPC202 beside HPC521), and short options written as sbatch reads them."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.lint.catalogue import resources_from_command_line, written_option
from hpcwidgets.parse.script import read_script


def codes(text: str) -> set[str]:
    return {f.code for f in lint(text)}


def findings(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


GPU_JOB = "#!/bin/bash\n#SBATCH --gres=gpu:1\n"


# --------------------------------------------------------------------------------------------
# HPC234: an option no Apptainer or SingularityCE version has


def test_an_unknown_long_option_stops_the_command() -> None:
    [found] = findings(GPU_JOB + "apptainer exec --nv --bogus img.sif python t.py\n", "HPC234")
    assert found.line == 3
    assert '"unknown flag: --bogus"' in found.message and "did you mean" not in found.message
    assert found.fix is None


def test_a_close_misspelling_names_the_option_and_fixes_it() -> None:
    text = GPU_JOB + "apptainer exec --nvcli --writable-tmpfs img.sif python t.py\n"
    [found] = findings(text, "HPC234")
    assert "did you mean --nvccli?" in found.message
    fixed, _ = fix_script(text)
    assert "apptainer exec --nvccli --writable-tmpfs img.sif python t.py" in fixed
    assert "HPC234" not in codes(fixed)


def test_a_misspelled_gpu_flag_is_not_also_reported_as_a_missing_one() -> None:
    # HPC234's fix gives the container its GPUs; HPC201 would add a second flag
    assert "HPC201" not in codes(GPU_JOB + "apptainer exec --nvcli img.sif python t.py\n")
    assert "HPC201" in codes(GPU_JOB + "apptainer exec --bogus img.sif python t.py\n")


def test_the_value_keeps_its_place_in_the_fix() -> None:
    fixed, _ = fix_script(GPU_JOB + "apptainer exec --nv --bnd=/data:/data img.sif python t.py\n")
    assert "--bind=/data:/data img.sif" in fixed


@pytest.mark.parametrize("options", [
    "--compat", "--no-init", "--unsquash", "--keep-privs", "--disable-cache", "--no-umask", "--underlay",
    "--oci", "--sharens", "--no-setgroups", "--intel-hpu", "--runscript-timeout 10m", "--data d.sif:/data",
    "--nv=false", "-eC", "-B /data", "-eB/data", "--bind=/a:/b --no-home", "--nohttps", "--passphrase",
])
def test_options_of_some_version_are_not_reported(options: str) -> None:
    text = GPU_JOB + f"apptainer exec --nv {options} img.sif python t.py\n"
    assert "HPC234" not in codes(text)


def test_an_unknown_short_option_names_its_letter() -> None:
    [found] = findings(GPU_JOB + "apptainer exec --nv -ex img.sif python t.py\n", "HPC234")
    assert found.message.startswith("-x (in -ex) is not an option")
    assert "\"unknown shorthand flag: 'x' in -ex\"" in found.message


@pytest.mark.parametrize("line", [
    "apptainer exec -nv img.sif python t.py",               # a long option with one dash: HPC233's
    "apptainer exec $OPTS --$FLAG img.sif python t.py",     # written with variables: not read
    "apptainer exec --nv img.sif python t.py --bogus",      # the program's own option
    "apptainer run --nv img.sif --bogus",                   # the runscript's argument
])
def test_words_that_are_not_apptainers_options_are_left_alone(line: str) -> None:
    assert "HPC234" not in codes(GPU_JOB + line + "\n")


def test_pull_build_and_instance_start_are_checked_against_their_own_options() -> None:
    text = ("#!/bin/bash\n#SBATCH --time=10\n"
            "apptainer pull --arch amd64 --archh amd64 x.sif docker://ubuntu:22.04\n"
            "singularity build --fakeroot --notest --section post --bogus out.sif x.def\n"
            "apptainer instance start --nvv img.sif svc\n")
    found = findings(text, "HPC234")
    assert [(f.line, f.message.split(" is not")[0]) for f in found] == [(3, "--archh"), (4, "--bogus"), (5, "--nvv")]
    assert "apptainer pull stops at once" in found[0].message and "did you mean --arch?" in found[0].message
    assert "did you mean --nv?" in found[2].message


def test_the_options_of_pull_and_build_are_not_those_of_exec() -> None:
    # --arch belongs to pull and build; exec has none (HPC234 says so), pull has no --nv
    assert "HPC234" not in codes("#!/bin/bash\napptainer pull --arch arm64 x.sif docker://ubuntu:22.04\n")
    assert "HPC234" in codes(GPU_JOB + "apptainer exec --arch arm64 img.sif python t.py\n")
    assert "HPC234" in codes("#!/bin/bash\napptainer pull --nv x.sif docker://ubuntu:22.04\n")


# --------------------------------------------------------------------------------------------
# HPC202 and HPC521: one reading of "the script asks for no resources"


NV_STEP = ('export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\n'
           'singularity exec --nv img.sif python train.py --num-gpus "$num_gpus"\n')


@pytest.mark.parametrize("directives, reported", [
    ("", False),                                        # a command on its own
    ("#SBATCH -o logs/%j.log\n", False),                # resources from sbatch's command line (a1's FP2)
    ("#SBATCH --time=01:00:00\n#SBATCH -J train\n", False),
    ("#SBATCH --cpus-per-task=8\n", True),              # asks for CPUs, and no GPU
    ("#SBATCH --mem=16G\n", True),
    ("#SBATCH --gres=lscratch:10\n", True),             # a generic resource, not a GPU
    ("#SBATCH --partition=gpus\n#SBATCH --gres=gpu:0\n", True),  # zero GPUs, said outright
])
def test_hpc202_reports_only_a_script_that_asks_for_resources_but_no_gpu(directives: str, reported: bool) -> None:
    assert ("HPC202" in codes("#!/bin/bash\n" + directives + NV_STEP)) is reported


@pytest.mark.parametrize("directives", ["#SBATCH -o logs/%j.log\n", "#SBATCH --ntasks=1\n#SBATCH --gres=gpu:1\n"])
def test_hpc202_and_hpc521_agree_on_the_script_that_asks_for_nothing(directives: str) -> None:
    found = codes("#!/bin/bash\n" + directives + NV_STEP)
    asks = not resources_from_command_line(read_script("#!/bin/bash\n" + directives + NV_STEP).job)
    assert ("HPC521" in found) is asks
    assert "HPC202" not in found  # asks for nothing, or asks for a GPU


# --------------------------------------------------------------------------------------------
# short options: `-o ~/x`, not `-o=~/x` (getopt keeps the "=" in a short option's value)


@pytest.mark.parametrize("flag, value, written", [("--nodes", "2", "--nodes=2"), ("-N", "2", "-N 2"),
                                                  ("-o", "~/logs/%j.out", "-o ~/logs/%j.out")])
def test_written_option(flag: str, value: str, written: str) -> None:
    assert written_option(flag, value) == written


def test_directive_messages_write_a_short_option_with_a_space() -> None:
    [tilde] = findings("#!/bin/bash\n#SBATCH -o ~/logs/%j.out\npython t.py\n", "HPC311")
    assert tilde.message.startswith("-o ~/logs/%j.out: sbatch does not expand ~")
    [unexpanded] = findings("#!/bin/bash\n#SBATCH -d afterok:$JOB\npython t.py\n", "HPC305")
    assert unexpanded.message.startswith("#SBATCH -d afterok:$JOB: #SBATCH lines are not read")


# --------------------------------------------------------------------------------------------
# HPC201 on Intel GPUs: neither --nv nor --rocm applies, so no flag is asked for


@pytest.mark.parametrize("request_", ["--gres=gpu:pvc:1", "--gpus-per-node=pvc:4", "--gpus=max_1550:2",
                                      "--gpus-per-task=pvc:1"])
def test_an_intel_gpu_type_asks_for_no_gpu_flag(request_: str) -> None:
    # without a profile the job's GPU type names the vendor (an Aurora-style job)
    assert "HPC201" not in codes(f"#!/bin/bash\n#SBATCH {request_}\napptainer exec img.sif python t.py\n")


@pytest.mark.parametrize("request_", ["--gres=gpu:a100:1", "--gres=gpu:1", "--gpus=fast:2"])
def test_an_nvidia_or_unknown_gpu_type_still_needs_nv(request_: str) -> None:
    [found] = findings(f"#!/bin/bash\n#SBATCH {request_}\napptainer exec img.sif python t.py\n", "HPC201")
    assert "add --nv" in found.message


def test_the_profile_names_the_vendor_before_the_gpu_type() -> None:
    from hpcwidgets.profiles import load_profile
    text = "#!/bin/bash\n#SBATCH --gres=gpu:pvc:1\napptainer exec img.sif python t.py\n"
    assert "HPC201" in {f.code for f in lint(text, load_profile("generic"))}  # an NVIDIA site: pvc is HPC407's


def test_hpc201_says_intel_gpus_need_neither_flag() -> None:
    from hpcwidgets.lint import rules
    rule = rules()["HPC201"]
    assert "Intel GPUs (the profile's gpu_vendor, or a type such as pvc" in rule.why
    assert "Intel GPUs need neither flag" in rule.fix
