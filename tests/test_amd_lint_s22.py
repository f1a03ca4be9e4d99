"""Lint on a site whose GPUs are AMD (and the mirror case on an NVIDIA one):

- HPC203, a GPU flag written after the image: where the profile names the vendor and the misplaced flag is the other
  vendor's (--nv on AMD GPUs), the message and the fix put the site's flag (--rocm) before the image, so following
  them no longer gives HPC218;
- HPC237, an image built for the other vendor (a CUDA build on AMD GPUs or with --rocm, a ROCm build on NVIDIA GPUs or
  with --nv), read by the profile check's own reading of image names;
- HPC417, a GPU tool of the other vendor (nvidia-smi on AMD nodes, rocm-smi / amd-smi / rocminfo on NVIDIA ones).

The AMD site is tests/data/profiles/amd_s22.toml (modelled on LUMI-G: singularity only, MI250X GPUs, a CPU partition
by default).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.examples import examples
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint, rules
from hpcwidgets.profiles import load_profile

DATA = Path(__file__).resolve().parent / "data"
AMD_SITE = DATA / "profiles" / "amd_s22.toml"
CORPUS = DATA / "corpus"
GOLDEN = Path(__file__).resolve().parent / "golden"
SHIPPED = ("generic", "local", "midway3")


@pytest.fixture(scope="module")
def amd():
    return load_profile(AMD_SITE)


@pytest.fixture(scope="module")
def nvidia():
    return load_profile("generic")


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


#: a GPU job on the AMD site's shared GPU partition
AMD_JOB = """#!/bin/bash
#SBATCH --account=project_1
#SBATCH --partition=small-g
#SBATCH --gpus-per-node=1
#SBATCH --time=01:00:00
"""

#: a GPU job on the generic (NVIDIA) profile's GPU partition
NVIDIA_JOB = """#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00
module load apptainer
"""

#: a GPU job and no profile
PLAIN_JOB = """#!/bin/bash
#SBATCH --gres=gpu:1
"""


def test_the_test_site_says_amd(amd):
    assert amd.gpu_vendor == "amd" and amd.apptainer_binary == "singularity"


# --- B4. HPC203 names the site's flag ----------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--nv", "--nvccli"])
def test_an_nvidia_flag_after_the_image_on_an_amd_site_is_fixed_to_rocm(amd, flag):
    text = AMD_JOB + f'singularity exec "$SCRATCH/pytorch_rocm6.2.sif" {flag} python train.py\n'
    [(line, message)] = found(text, "HPC203", amd)
    assert line == 6
    assert f"{flag} comes after the image" in message
    assert message.endswith("use --rocm before the image") and "move it before the image" not in message
    assert "GPUs of amd_s22 are AMD" in message
    new, fixed = fix_script(text, amd)
    assert "HPC203" in {f.code for f in fixed}
    assert new.splitlines()[-1] == 'singularity exec --rocm "$SCRATCH/pytorch_rocm6.2.sif" python train.py'
    after = {f.code for f in lint(new, amd)}
    assert not after & {"HPC203", "HPC218", "HPC201"}, after


def test_a_rocm_flag_after_the_image_on_an_nvidia_site_is_fixed_to_nv(nvidia):
    text = NVIDIA_JOB + "apptainer exec pytorch_24.05.sif --rocm --bind /scratch/data:/data python train.py\n"
    [(line, message)] = found(text, "HPC203", nvidia)
    assert line == 6 and message.endswith("use --nv before the image")
    assert "--rocm --bind /scratch/data:/data comes after the image" in message
    new, _ = fix_script(text, nvidia)
    last = new.splitlines()[-1]
    assert "--nv" in last and "--rocm" not in last and last.index("--nv") < last.index("pytorch_24.05.sif")
    assert last.index("--bind") < last.index("pytorch_24.05.sif")
    assert not {f.code for f in lint(new, nvidia)} & {"HPC203", "HPC218", "HPC201"}


def test_the_sites_own_flag_after_the_image_is_moved_as_before(amd):
    [(_, message)] = found(AMD_JOB + "singularity exec pytorch_rocm6.2.sif --rocm python train.py\n", "HPC203", amd)
    assert message.endswith("move it before the image") and "AMD" not in message


def test_without_a_profile_the_message_and_fix_are_unchanged():
    text = PLAIN_JOB + "apptainer exec pytorch_2.3.sif --nv python train.py\n"
    [(_, message)] = found(text, "HPC203")
    assert message == ("--nv comes after the image pytorch_2.3.sif, so it is passed to the program, not to apptainer; "
                       "move it before the image")
    new, _ = fix_script(text)
    assert new.splitlines()[-1] == "apptainer exec --nv pytorch_2.3.sif python train.py"


def test_run_without_gpus_names_the_sites_flag_too(amd):
    text = "#!/bin/bash\n#SBATCH --account=project_1\n#SBATCH --time=01:00:00\nsingularity run pytorch_rocm6.2.sif --nv\n"
    [(_, message)] = found(text, "HPC203", amd)
    assert "runs without the GPUs" in message and message.endswith("use --rocm before the image")


# --- G1. HPC237: an image built for the other vendor ---------------------------------------------------------------

@pytest.mark.parametrize("site,step,shown,says", [
    # the profile's vendor
    ("amd", 'singularity exec --rocm "$SCRATCH/images/pytorch_2.3.1-cuda12.1.sif" python train.py',
     "pytorch_2.3.1-cuda12.1.sif is a CUDA build", "the GPUs of amd_s22 are AMD"),
    ("amd", "singularity exec docker://nvcr.io/nvidia/pytorch:24.05-py3 python train.py",
     "docker://nvcr.io/nvidia/pytorch:24.05-py3 is a CUDA build", "the GPUs of amd_s22 are AMD"),
    ("nvidia", "apptainer exec --nv docker://rocm/pytorch:rocm6.2_ubuntu22.04_py3.10_pytorch_release_2.3.0 python train.py",
     "is a ROCm build", "the GPUs of generic are NVIDIA"),
    # the step's flag, without a profile
    ("none", "apptainer exec --rocm pytorch_24.05-cuda12.4.sif python train.py",
     "pytorch_24.05-cuda12.4.sif is a CUDA build", "--rocm is for AMD GPUs"),
    ("none", "apptainer exec --nv /scratch/images/pytorch_rocm6.2.sif python train.py",
     "pytorch_rocm6.2.sif is a ROCm build", "--nv is for NVIDIA GPUs"),
])
def test_an_image_for_the_other_vendor_is_reported(amd, nvidia, site, step, shown, says):
    head = {"amd": AMD_JOB, "nvidia": NVIDIA_JOB, "none": PLAIN_JOB}[site]
    profile = {"amd": amd, "nvidia": nvidia, "none": None}[site]
    text = head + step + "\n"
    [(line, message)] = found(text, "HPC237", profile)
    assert line == len(text.splitlines())
    assert shown in message and says in message and "torch.cuda.is_available() is False" in message
    wanted = "ROCm build (docker://rocm/pytorch:TAG)" if "CUDA build" in shown else "CUDA build (docker://nvcr.io"
    assert wanted in message


def test_the_gpu_type_the_job_names_tells_the_vendor_without_a_profile():
    text = "#!/bin/bash\n#SBATCH --gres=gpu:mi250:1\napptainer exec pytorch-cuda12.sif python train.py\n"
    [(_, message)] = found(text, "HPC237")
    assert "the job asks for mi250 GPUs, which are AMD" in message


def test_a_pull_of_an_ngc_image_and_the_file_it_writes_on_an_amd_site(amd):
    text = AMD_JOB + ("[ -f /scratch/project_1/containers/pytorch_24.05.sif ] ||\n"
                      "  singularity pull --dir /scratch/project_1/containers pytorch_24.05.sif "
                      "docker://nvcr.io/nvidia/pytorch:24.05-py3\n"
                      "singularity exec --rocm /scratch/project_1/containers/pytorch_24.05.sif python train.py\n")
    reported = found(text, "HPC237", amd)
    assert [line for line, _ in reported] == [7, 8]
    assert reported[0][1].startswith("docker://nvcr.io/nvidia/pytorch:24.05-py3 is a CUDA build")
    assert reported[0][1].endswith("fetch a ROCm build (docker://rocm/pytorch:TAG)")
    assert reported[1][1].startswith("pytorch_24.05.sif (pulled from docker://nvcr.io/nvidia/pytorch:24.05-py3 on line 7)")


def test_a_pull_without_a_file_name_and_a_charliecloud_pull(amd):
    text = AMD_JOB + ("apptainer pull docker://nvcr.io/nvidia/pytorch:24.05-py3\n"
                      "ch-image pull nvcr.io/nvidia/pytorch:24.05-py3 torch\n")
    assert [line for line, _ in found(text, "HPC237", amd)] == [6, 7]
    # the file apptainer pull names NAME_TAG.sif is known to hold that image
    run = text.replace("ch-image pull nvcr.io/nvidia/pytorch:24.05-py3 torch\n",
                       "singularity exec --rocm pytorch_24.05-py3.sif python train.py\n")
    assert "(pulled from docker://nvcr.io/nvidia/pytorch:24.05-py3 on line 6)" in found(run, "HPC237", amd)[1][1]


def test_a_workflow_with_an_ngc_image_on_the_amd_site(amd):
    model = examples(amd)["single-gpu"].model
    assert found(model, "HPC237", amd) == []
    wrong = model.replace(container=model.container.replace(image="/scratch/project_1/containers/pytorch_24.05-cuda12.4.sif"))
    [(_, message)] = found(wrong, "HPC237", amd)
    assert "pytorch_24.05-cuda12.4.sif is a CUDA build" in message


@pytest.mark.parametrize("site,text", [
    # a CPU job: a CUDA build runs on CPUs too
    ("amd", "#!/bin/bash\n#SBATCH --account=project_1\n#SBATCH --time=01:00:00\n"
            "singularity exec pytorch_2.3.1-cuda12.1.sif python prep.py\n"),
    # names that say nothing of the vendor, or a folder's name
    ("amd", AMD_JOB + "singularity exec --rocm /scratch/cuda/pytorch_24.05.sif python train.py\n"),
    ("amd", AMD_JOB + 'singularity exec --rocm "$CUDA_IMAGE" python train.py\n'),
    # each vendor's own build
    ("amd", AMD_JOB + "singularity exec --rocm /scratch/images/pytorch_rocm6.2.sif python train.py\n"),
    ("nvidia", NVIDIA_JOB + "apptainer exec --nv pytorch_2.3.1-cuda12.1.sif python train.py\n"),
    ("none", PLAIN_JOB + "apptainer exec --nv docker://nvcr.io/nvidia/pytorch:24.05-py3 python train.py\n"),
    ("none", PLAIN_JOB + "apptainer exec --rocm rocm_pytorch.sif python train.py\n"),
    # no vendor to judge by: no flag, no profile, no GPU type
    ("none", PLAIN_JOB + "apptainer exec pytorch_rocm6.2.sif python train.py\n"),
    ("none", "#!/bin/bash\napptainer pull docker://nvcr.io/nvidia/pytorch:24.05-py3\n"),
])
def test_an_image_that_fits_or_says_nothing_is_left_alone(amd, nvidia, site, text):
    profile = {"amd": amd, "nvidia": nvidia, "none": None}[site]
    assert found(text, "HPC237", profile) == []


# --- G2. HPC417: the other vendor's GPU tool -----------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "nvidia-smi",
    "nvidia-smi -L > gpus.txt",
    "srun nvidia-smi",
    "/usr/bin/nvidia-smi --query-gpu=name --format=csv",
    "timeout 60 nvidia-smi",
    "srun bash -c 'nvidia-smi; python train.py'",
])
def test_nvidia_smi_on_amd_nodes(amd, line):
    text = AMD_JOB + "set -e\n" + line + "\n"
    [(at, message)] = found(text, "HPC417", amd)
    assert at == 7
    assert message == ("nvidia-smi is not on the nodes of amd_s22, whose GPUs are AMD: the line fails ('command not "
                       "found', exit 127; under set -e the job stops there); use rocm-smi (or amd-smi)")


@pytest.mark.parametrize("tool", ["rocm-smi", "amd-smi list", "rocminfo"])
def test_amd_tools_on_nvidia_nodes(nvidia, tool):
    [(_, message)] = found(NVIDIA_JOB + tool + "\npython train.py\n", "HPC417", nvidia)
    assert message.startswith(f"{tool.split()[0]} is not on the nodes of generic, whose GPUs are NVIDIA")
    assert message.endswith("use nvidia-smi")


def test_in_a_container_the_flag_that_binds_the_tool_is_named(amd, nvidia):
    [(_, message)] = found(AMD_JOB + "singularity exec --nv img.sif nvidia-smi\n", "HPC417", amd)
    assert message.startswith("--nv binds the host's nvidia-smi into the container, but the nodes of amd_s22")
    assert message.endswith("use --rocm and rocm-smi, which --rocm binds")
    [(_, message)] = found(NVIDIA_JOB + "apptainer exec --rocm img.sif bash -c 'rocm-smi && python x.py'\n",
                           "HPC417", nvidia)
    assert message.startswith("--rocm binds the host's rocm-smi into the container")
    assert message.endswith("use --nv and nvidia-smi, which --nv binds")


def test_in_a_container_without_the_flag_the_tool_still_has_no_driver(amd):
    [(_, message)] = found(AMD_JOB + "singularity exec --rocm pytorch_rocm6.2.sif nvidia-smi\n", "HPC417", amd)
    assert message.startswith("nvidia-smi in the container needs NVIDIA's GPU driver, which the nodes of amd_s22")
    assert message.endswith("use --rocm and rocm-smi, which --rocm binds")


@pytest.mark.parametrize("site,lines", [
    ("amd", "rocm-smi\namd-smi list\nsingularity exec --rocm img.sif rocm-smi"),    # the site's own tools
    ("nvidia", "nvidia-smi\napptainer exec --nv img.sif nvidia-smi"),
    ("amd", "nvidia-smi || true"),                                    # the script copes with its failure
    ("amd", "rocm-smi || nvidia-smi"),
    ("amd", "if command -v nvidia-smi >/dev/null; then nvidia-smi; else rocm-smi; fi"),
    ("amd", "if nvidia-smi -L; then echo NVIDIA; fi"),
    ("amd", "which nvidia-smi && nvidia-smi"),
    ("amd", "echo 'run nvidia-smi to see the GPUs'"),                  # a word, not a command
    ("none", "nvidia-smi\nrocm-smi"),                                  # no profile: the vendor is not known
    ("intel", "nvidia-smi\nrocm-smi"),                                 # Intel GPUs: left alone
])
def test_tools_that_fit_or_are_handled_are_left_alone(amd, nvidia, site, lines):
    head = {"amd": AMD_JOB, "nvidia": NVIDIA_JOB, "none": PLAIN_JOB, "intel": NVIDIA_JOB}[site]
    profile = {"amd": amd, "nvidia": nvidia, "none": None, "intel": nvidia.replace(gpu_vendor="intel")}[site]
    assert found(head + lines + "\n", "HPC417", profile) == []


# --- the catalogue, and no finding on what the repo ships -------------------------------------------------------------

def test_the_new_rules_are_in_the_catalogue():
    catalogue = rules()
    for code, name in (("HPC237", "image-for-other-gpu-vendor"), ("HPC417", "other-vendor-gpu-tool")):
        r = catalogue[code]
        assert r.name == name and r.severity == "warning" and 27 in r.catalogue
    assert "nvliblist.conf" in catalogue["HPC417"].why and "rocmliblist.conf" in catalogue["HPC417"].why
    assert catalogue["HPC417"].profile == "generic"
    assert "--rocm for AMD" in catalogue["HPC203"].fix


def _profiles(amd) -> list:
    return [load_profile(name) for name in SHIPPED] + [amd]


def test_the_examples_of_every_shipped_profile_and_the_amd_site_are_clean(amd):
    for profile in _profiles(amd):
        for name, example in examples(profile).items():
            codes = {f.code for f in lint(example.render(), profile)}
            assert not codes & {"HPC237", "HPC417", "HPC203", "HPC218"}, (profile.name, name, codes)


def test_the_correct_corpus_scripts_and_golden_files_are_clean(amd, nvidia):
    scripts = sorted(CORPUS.glob("ok_*.sh"))
    assert scripts
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        site = amd if "rocm" in text else nvidia  # each script on a site of its GPUs
        for profile in (None, site):
            codes = {f.code for f in lint(text, profile)}
            assert not codes & {"HPC237", "HPC417"}, (path.name, profile and profile.name, codes)
    for path in sorted(GOLDEN.glob("*.sh")):
        name = path.name.split("-", 1)[0]
        profile = load_profile(name) if name in SHIPPED else None
        codes = {f.code for f in lint(path.read_text(encoding="utf-8"), profile)}
        assert not codes & {"HPC237", "HPC417"}, (path.name, codes)
