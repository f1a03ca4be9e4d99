"""Lint gaps closed in session 23, each with the scripts that must be reported and those that must not:

- HPC238 (new, warning): --nv in a job that asks for AMD GPUs by type, or --rocm in one that asks for NVIDIA GPUs,
  where no profile says whose GPUs the site has (with a profile, HPC218 judges the flag);
- HPC203 for ``apptainer run IMG --nv`` / ``singularity run IMG --rocm`` in a GPU job too, as for exec (HPC201 then
  leaves the step alone), on AMD GPUs as well;
- HPC235 (and HPC231) quote ``--container-image`` as the script writes it (``=`` or a space);
- HPC210/HPC211 read the images of Shifter, podman-hpc, enroot and pyxis;
- HPC214's advice names the site's container program (a SingularityCE site has no apptainer);
- HPC221/HPC224 read the bind variables through ``lint.shell.environment_binds`` (what the apptainer process gets);
- HPC417's advice comes from ``spec.profile.GPU_TOOLS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint, rules
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.profile import GPU_TOOLS

AMD_SITE = Path(__file__).parent / "data" / "profiles" / "amd_s22.toml"


@pytest.fixture(scope="module")
def amd():
    return load_profile(str(AMD_SITE))


def found(text: str, code: str, profile=None) -> list:
    return [f for f in lint(text, profile) if f.code == code]


# --- 1. HPC238: the flag against the GPU type the job names ---------------------------------------------------------

@pytest.mark.parametrize("request_line, flag, right, vendor", [
    ("#SBATCH --gres=gpu:mi250:1", "--nv", "--rocm", "AMD"),
    ("#SBATCH --gpus=mi100:2", "--nv", "--rocm", "AMD"),
    ("#SBATCH --gpus-per-node=a100:4", "--rocm", "--nv", "NVIDIA"),
    ("#SBATCH --gpus-per-task=h100:1", "--rocm", "--nv", "NVIDIA"),
    ("#SBATCH --gres=gpu:mi250x:8", "--nvccli", "--rocm", "AMD"),
])
def test_a_flag_of_the_other_vendor_than_the_gpu_type_is_reported(request_line, flag, right, vendor):
    text = f"#!/bin/bash\n{request_line}\n#SBATCH --time=01:00:00\napptainer exec {flag} pytorch.sif python train.py\n"
    [finding] = found(text, "HPC238")
    assert finding.severity == "warning" and finding.line == 4
    assert f"{flag} is for" in finding.message and f"which are {vendor}" in finding.message
    assert finding.message.endswith(f"use {right}")
    fixed, applied = fix_script(text, select="HPC238")
    assert [f.code for f in applied] == ["HPC238"]
    assert f"apptainer exec {right} pytorch.sif python train.py" in fixed and not found(fixed, "HPC238")


@pytest.mark.parametrize("request_line, flag", [
    ("#SBATCH --gres=gpu:mi250:1", "--rocm"),          # the right flag
    ("#SBATCH --gpus-per-node=a100:4", "--nv"),
    ("#SBATCH --gres=gpu:1", "--rocm"),                # no type: nothing to go by
    ("#SBATCH --gres=gpu:fast:1", "--rocm"),           # a site's own name: no vendor in it
    ("#SBATCH --gpus-per-node=pvc:4", "--nv"),         # Intel: neither flag is for it (left alone, as HPC218 does)
])
def test_a_flag_the_gpu_type_does_not_contradict_is_left_alone(request_line, flag):
    text = f"#!/bin/bash\n{request_line}\n#SBATCH --time=01:00:00\napptainer exec {flag} pytorch.sif python train.py\n"
    assert found(text, "HPC238") == []


def test_with_a_profile_hpc218_judges_the_flag_instead(amd):
    text = ("#!/bin/bash\n#SBATCH --account=project_1\n#SBATCH --partition=small-g\n#SBATCH --gres=gpu:mi250:1\n"
            "#SBATCH --time=01:00:00\nsingularity exec --nv pytorch.sif python train.py\n")
    assert found(text, "HPC238", amd) == [] and len(found(text, "HPC218", amd)) == 1
    assert len(found(text, "HPC238")) == 1  # the same script without the profile


def test_an_image_named_for_the_flags_vendor_gets_no_fix():
    """--rocm, a ROCm image and an a100 type: the type may be the mistake, so the finding offers no rewrite."""
    text = ("#!/bin/bash\n#SBATCH --gpus-per-node=a100:4\n#SBATCH --time=01:00:00\n"
            "apptainer exec --rocm pytorch_rocm6.2.sif python train.py\n")
    [finding] = found(text, "HPC238")
    assert finding.fix is None and "the type is what to correct" in finding.message


def test_hpc238_is_a_warning_in_the_catalogue():
    assert rules()["HPC238"].severity == "warning" and rules()["HPC218"].severity == "error"


# --- 2. HPC203: a GPU flag after the image of run -------------------------------------------------------------------

@pytest.mark.parametrize("step, flag", [
    ("singularity run rocm_pytorch.sif --rocm python train.py", "--rocm"),
    ("apptainer run pytorch.sif --nv", "--nv"),
    ("apptainer run pytorch.sif --nvccli python train.py", "--nvccli"),
])
def test_a_gpu_flag_after_the_image_of_run_is_hpc203_in_a_gpu_job(step, flag):
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n{step}\n"
    [finding] = found(text, "HPC203")
    assert finding.line == 4 and finding.message.startswith(f"{flag} comes after the image")
    assert "runscript as an argument" in finding.message and finding.message.endswith("move it before the image")
    assert found(text, "HPC201") == []  # one finding for one mistake, as for exec


def test_rocm_after_the_image_of_run_on_an_amd_site(amd):
    """HPC201 asks AMD jobs for no flag, so before this nothing said that --rocm went to the runscript."""
    text = ("#!/bin/bash\n#SBATCH --account=project_1\n#SBATCH --partition=small-g\n#SBATCH --gres=gpu:1\n"
            "#SBATCH --time=01:00:00\nsingularity run pytorch_rocm6.2.sif --rocm python train.py\n")
    [finding] = found(text, "HPC203", amd)
    assert "--rocm comes after the image" in finding.message and "ROCm libraries" in finding.message


@pytest.mark.parametrize("step", [
    "singularity run --rocm rocm_pytorch.sif python train.py",   # before the image
    "apptainer run --nv pytorch.sif python train.py --nv",        # the program's own --nv, after its name
    "apptainer run pytorch.sif train --device nv",                # the runscript's own arguments
])
def test_run_with_its_flag_in_place_is_left_alone(step):
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n{step}\n"
    assert found(text, "HPC203") == []


# --- 3. HPC235 (and HPC231) quote the option as written -------------------------------------------------------------

@pytest.mark.parametrize("written", [
    "srun --container-image nvcr.io/nvidia/pytorch:24.05-py3 python t.py",
    "#SBATCH --container-image nvcr.io/nvidia/pytorch:24.05-py3\nsrun python t.py",
])
def test_hpc235_quotes_a_space_as_a_space(written):
    text = f"#!/bin/bash\n#SBATCH --gpus-per-node=8\n{written}\n"
    [finding] = found(text, "HPC235")
    assert finding.message.startswith("--container-image nvcr.io/nvidia/pytorch:24.05-py3: ")
    assert finding.message.endswith("write --container-image nvcr.io#nvidia/pytorch:24.05-py3")
    assert "--container-image=" not in finding.message


@pytest.mark.parametrize("written", [
    "srun --container-image=nvcr.io/nvidia/pytorch:24.05-py3 python t.py",
    "#SBATCH --container-image=nvcr.io/nvidia/pytorch:24.05-py3\nsrun python t.py",
])
def test_hpc235_quotes_an_equals_sign_as_written(written):
    text = f"#!/bin/bash\n#SBATCH --gpus-per-node=8\n{written}\n"
    [finding] = found(text, "HPC235")
    assert finding.message.startswith("--container-image=nvcr.io/nvidia/pytorch:24.05-py3: ")
    assert finding.message.endswith("write --container-image=nvcr.io#nvidia/pytorch:24.05-py3")


# --- 4. HPC210/HPC211 for Shifter, podman-hpc, enroot and pyxis ----------------------------------------------------

@pytest.mark.parametrize("line, image", [
    ("shifter --image=docker:pytorch/pytorch:latest python train.py", "docker:pytorch/pytorch:latest"),
    ("srun shifter --image docker:ubuntu:latest cat /etc/os-release", "docker:ubuntu:latest"),
    ("shifter -i ubuntu:latest cat /etc/os-release", "ubuntu:latest"),
    ("#SBATCH --image=docker:nersc/pytorch:latest\nsrun shifter python train.py", "docker:nersc/pytorch:latest"),
    ("srun --image=docker:nersc/pytorch:latest shifter python train.py", "docker:nersc/pytorch:latest"),
    ("shifterimg pull docker:ubuntu:latest", "docker:ubuntu:latest"),
    ("podman-hpc pull ubuntu:latest", "ubuntu:latest"),
    ("srun podman-hpc run --rm --gpu -v $PWD:/w -w /w nvcr.io/nvidia/pytorch:latest python train.py",
     "nvcr.io/nvidia/pytorch:latest"),
    ("enroot import docker://nvcr.io#nvidia/pytorch:latest", "docker://nvcr.io#nvidia/pytorch:latest"),
    ("srun --container-image=nvcr.io#nvidia/pytorch:latest python t.py", "nvcr.io#nvidia/pytorch:latest"),
    ("IMG=docker:ubuntu:latest\nshifter --image=$IMG true", "docker:ubuntu:latest"),
])
def test_latest_of_the_other_runtimes_is_hpc210(line, image):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\n{line}\n"
    [finding] = found(text, "HPC210")
    assert finding.message.startswith(f"{image} (") and "moving :latest tag" in finding.message
    assert found(text, "HPC211") == []


@pytest.mark.parametrize("line, image", [
    ("shifter --image=pytorch/pytorch python train.py", "pytorch/pytorch"),
    ("shifter --image=docker:ubuntu true", "docker:ubuntu"),
    ("podman-hpc pull ubuntu", "ubuntu"),
    ("podman-hpc run --rm -it ubuntu bash", "ubuntu"),
    ("enroot import docker://ubuntu", "docker://ubuntu"),
    ("srun --container-image=ubuntu python t.py", "ubuntu"),
])
def test_no_tag_of_the_other_runtimes_is_hpc211(line, image):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\n{line}\n"
    [finding] = found(text, "HPC211")
    assert finding.message.startswith(f"{image} (") and "has no tag" in finding.message
    assert found(text, "HPC210") == []


@pytest.mark.parametrize("line", [
    "shifter --image=docker:pytorch/pytorch:24.05 python train.py",
    "shifter --image=id:8c7ad3e1f2 python train.py",                   # an image id: no tag applies
    "shifter --image=local:/ hostname",
    "#SBATCH --image=docker:nersc/pytorch:24.05\nsrun shifter python train.py",
    "shifterimg pull docker:ubuntu:22.04",
    "podman-hpc pull ubuntu@sha256:" + "a" * 64,
    "podman-hpc run --rm -v $PWD:/w ubuntu:22.04 cat /etc/latest",
    "podman-hpc build -t mytrainer .\nsrun podman-hpc run --rm mytrainer python train.py",  # the script's own build
    "enroot import docker://nvcr.io#nvidia/pytorch:24.05-py3",
    "srun --container-image=./pytorch.sqsh python t.py",
    "srun --container-image=/scratch/images/pytorch.sqsh python t.py",
    "srun --container-image=$IMAGE python t.py",                          # the job's environment says
    "echo shifter --image=docker:ubuntu:latest",                          # not run
])
def test_pinned_images_and_non_registry_images_are_left_alone(line):
    text = f"#!/bin/bash\n#SBATCH --time=01:00:00\n{line}\n"
    assert found(text, "HPC210") == [] and found(text, "HPC211") == []


# --- 5. HPC214 names the site's container program ----------------------------------------------------------------

DEEPSPEED = ("#!/bin/bash\n#SBATCH --account=project_1\n#SBATCH --partition=small-g\n#SBATCH --nodes=2\n"
             "#SBATCH --ntasks-per-node=1\n#SBATCH --time=01:00:00\n"
             "{program} exec ds.sif deepspeed --hostfile hostfile --num_nodes 2 train.py\n")


@pytest.mark.parametrize("program", ["apptainer", "singularity"])
def test_hpc214_advice_names_singularity_on_a_singularity_site(amd, program):
    [finding] = found(DEEPSPEED.format(program=program), "HPC214", amd)
    assert "'singularity exec … deepspeed --no_ssh" in finding.message and "apptainer" not in finding.message


def test_hpc214_advice_keeps_the_program_the_line_runs_without_a_profile():
    [finding] = found(DEEPSPEED.format(program="apptainer"), "HPC214")
    assert "'apptainer exec … deepspeed --no_ssh" in finding.message
    [finding] = found(DEEPSPEED.format(program="singularity"), "HPC214")
    assert "'singularity exec … deepspeed --no_ssh" in finding.message


def test_hpc214_mpirun_advice_on_a_singularity_site(amd):
    text = DEEPSPEED.format(program="apptainer").replace("deepspeed --hostfile hostfile --num_nodes 2 train.py",
                                                          "mpirun -n 2 ./solver")
    [finding] = found(text, "HPC214", amd)
    assert finding.message.endswith("singularity exec IMAGE program")


# --- 6. the bind variables as the apptainer process gets them ------------------------------------------------------

CONTAINED = ('apptainer exec --nv --containall pytorch_2.3.sif python "$HOME/project/train.py"\n')
GPU_JOB = "#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n"


@pytest.mark.parametrize("before", [
    'export APPTAINER_BIND="$HOME/project"\n',
    "export SINGULARITY_BINDPATH=/home\n",
    'APPTAINER_BIND="$HOME/project" ',                 # set for the one command
])
def test_a_bind_variable_the_step_gets_covers_the_home_file(before):
    assert found(GPU_JOB + before + CONTAINED, "HPC221") == []


@pytest.mark.parametrize("before", [
    "",
    'APPTAINER_BIND="$HOME/project"\n',                 # not exported: apptainer never sees it
    'export APPTAINER_BIND="$HOME/project"\nsrun --export=NONE ',  # srun keeps it back
])
def test_a_bind_variable_the_step_does_not_get_covers_nothing(before):
    assert len(found(GPU_JOB + before + CONTAINED, "HPC221")) == 1


def test_ch_run_reads_no_apptainer_bind_variable():
    text = ('#!/bin/bash\n#SBATCH --time=01:00:00\nexport APPTAINER_BIND="$SCRATCH/project"\n'
            'ch-run "$SCRATCH/img.sqfs" -- python "$SCRATCH/project/train.py"\n')
    [finding] = found(text, "HPC224")
    assert "$SCRATCH/project/train.py is in a host folder ch-run does not mount" in finding.message
    bound = text.replace('ch-run "', 'ch-run -b "$SCRATCH/project:$SCRATCH/project" "')
    assert found(bound, "HPC224") == []


# --- 7. HPC417's advice from GPU_TOOLS -------------------------------------------------------------------------------

def test_hpc417_advises_the_tools_gpu_tools_lists(amd):
    text = ("#!/bin/bash\n#SBATCH --account=project_1\n#SBATCH --partition=small-g\n#SBATCH --gres=gpu:1\n"
            "#SBATCH --time=01:00:00\nnvidia-smi\n")
    [finding] = found(text, "HPC417", amd)
    first, *others = GPU_TOOLS["amd"]
    smi = [t for t in others if t.endswith("-smi")]
    assert finding.message.endswith(f"use {first} (or {' or '.join(smi)})")
    nvidia = ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\nrocm-smi\n")
    [finding] = found(nvidia, "HPC417", load_profile("generic"))
    assert finding.message.endswith(f"use {GPU_TOOLS['nvidia'][0]}")
    assert found(nvidia.replace("rocm-smi", "nvidia-smi"), "HPC417", load_profile("generic")) == []
