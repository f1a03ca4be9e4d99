"""Container and launch rules found by audits of real scripts and of the lessons:
an apptainer option written with one dash (HPC233, and HPC201 quiet on it), a program quoted together with
its arguments after srun or a runtime (HPC533), the profile's image and cache folders in HPC206/HPC207, HPC216 judged
by the runtime the site has rather than the command's name, and GPU workers left on one CPU (HPC136)."""

from __future__ import annotations

import dataclasses

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile


def codes(text: str, profile=None) -> set[str]:
    return {f.code for f in lint(text, profile)}


def messages(text: str, code: str, profile=None) -> list[str]:
    return [f.message for f in lint(text, profile) if f.code == code]


# --- HPC233: -nv is -n -v to apptainer -------------------------------------------------------------------------

#: a real script (grasool/testing-comet, SDSC Comet)
COMET = """#!/bin/bash
# source: grasool/testing-comet test_slurm.sh
#SBATCH -N 1
#SBATCH -p gpu-shared
#SBATCH --gres=gpu:p100:2
#SBATCH -t 2:00:00
#SBATCH --ntasks-per-node 14
module load singularity
singularity exec -nv ../i-my-tensorflow-gpu-py3.simg python test_mnist.py
"""


def test_dash_nv_is_reported_and_hpc201_stays_quiet() -> None:
    found = messages(COMET, "HPC233")
    assert len(found) == 1 and "\"unknown shorthand flag: 'v' in -nv\"" in found[0] and found[0].endswith("write --nv")
    assert "HPC201" not in codes(COMET)


def test_the_fix_adds_the_dash_instead_of_a_second_flag() -> None:
    fixed, applied = fix_script(COMET)
    assert "HPC233" in {f.code for f in applied}
    assert "singularity exec --nv ../i-my-tensorflow-gpu-py3.simg python test_mnist.py" in fixed
    assert "-nv" not in fixed.replace("--nv", "")
    assert not {"HPC233", "HPC201"} & codes(fixed)


@pytest.mark.parametrize("option, reading", [
    ("-ipc", "reads -i -p -c"),                           # every letter a switch: runs, with options nobody asked for
    ("-containall", "reads -c -o with the value ntainall"),  # -o takes the rest of the word
    ("-bind /data:/data", "unknown shorthand flag: 'b' in -bind"),
])
def test_what_apptainer_makes_of_the_word(option: str, reading: str) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv {option} img.sif python train.py\n"
    found = messages(text, "HPC233")
    assert len(found) == 1 and reading in found[0]


def test_a_misread_image_gives_no_findings_that_follow_from_it() -> None:
    # the reader takes /data:/data for the image: --nv after it is no HPC203, and no GPU finding either
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec -bind /data:/data --nv img.sif python train.py\n"
    assert codes(text) & {"HPC201", "HPC203", "HPC220", "HPC233"} == {"HPC233"}


@pytest.mark.parametrize("options", ["-B /data", "-eC", "-e -C", "--nv -B/data:/data", "-H /tmp/h"])
def test_short_options_are_left_alone(options: str) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv {options} img.sif python train.py -nv\n"
    assert "HPC233" not in codes(text)


# --- HPC533: the program and its arguments as one word -----------------------------------------------------------

#: a real script (mashooo/pytorch_examples)
DDP_TUTORIAL = """#!/bin/bash
# source: mashooo/pytorch_examples distributed/ddp-tutorial-series/slurm/sbatch_run.sh

#SBATCH --job-name=multinode-example
#SBATCH --exclusive --nodes=2 --ntasks-per-node=1 --gpus=2

nodes=( $( scontrol show hostnames $SLURM_JOB_NODELIST ) )
head_node=${nodes[0]}
head_node_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)

srun -l --ntasks-per-node=1 "slurm/torchrun.sh $head_node_ip"
"""


def test_the_tutorial_script_is_reported_and_fixed() -> None:
    found = messages(DDP_TUTORIAL, "HPC533")
    assert len(found) == 1 and "'No such file or directory'" in found[0]
    assert 'slurm/torchrun.sh "$head_node_ip"' in found[0]
    fixed, _ = fix_script(DDP_TUTORIAL)
    assert 'slurm/torchrun.sh "$head_node_ip"' in fixed and "HPC533" not in codes(fixed)


@pytest.mark.parametrize("line", [
    'apptainer exec --nv img.sif "python train.py --epochs 3"',
    'srun apptainer exec --nv img.sif "python train.py --epochs 3"',
    "ch-run img -- 'python train.py'",
    'srun --ntasks=2 "./run.sh --fast"',
    'srun "python train.py"',
])
def test_a_quoted_command_is_reported(line: str) -> None:
    assert messages(f"#!/bin/bash\n#SBATCH --gres=gpu:1\n{line}\n", "HPC533")


@pytest.mark.parametrize("line", [
    'srun "/path with space/run.sh" --fast',          # one path with spaces: a real file may be named so
    'srun "$HOME/my runs/go.sh"',
    'srun bash -c "python train.py --x 1"',
    'apptainer exec img.sif bash -c "python train.py"',
    'apptainer run img.sif "--epochs 3"',             # run: arguments of the runscript
    'srun python "train.py --x"',                     # an argument, not the program
    'srun torchrun --nproc-per-node=4 "train.py --x"',
    'python "train.py --x"',                          # no srun, no container: bash itself says command not found
])
def test_words_that_may_be_right_are_left_alone(line: str) -> None:
    assert not messages(f"#!/bin/bash\n#SBATCH --gres=gpu:1\n{line}\n", "HPC533")


def test_a_quoted_variable_holding_a_command() -> None:
    text = '#!/bin/bash\nCMD="python train.py"\nsrun "$CMD"\nsrun $CMD\n'
    found = [f for f in lint(text) if f.code == "HPC533"]
    assert [f.line for f in found] == [3] and "cmd=(python train.py)" in found[0].message and found[0].fix is None


def test_shell_commands_in_one_word_are_run_by_bash() -> None:
    # audit11/h4 scripts/52 (SLAC LCLS): srun -n1 "sleep 5; echo hello1" &
    text = '#!/bin/bash\n#SBATCH --ntasks=2\nsrun -n1 "sleep 5; echo hello1" &\nwait\n'
    found = messages(text, "HPC533")
    assert len(found) == 1 and 'bash -c "sleep 5; echo hello1"' in found[0]
    fixed, _ = fix_script(text)
    assert "bash -c 'sleep 5; echo hello1' &" in fixed and "HPC533" not in codes(fixed)


# --- HPC206 / HPC207: the site's folders --------------------------------------------------------------------------

#: a pull into the home folder
PULL_HOME = "#!/bin/bash\napptainer pull $HOME/pytorch_24.05.sif docker://pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime\n"


def test_the_profile_names_its_image_and_cache_folders() -> None:
    midway3 = load_profile("midway3")
    image = messages(PULL_HOME, "HPC206", midway3)
    cache = messages(PULL_HOME, "HPC207", midway3)
    assert image and f'--dir "{midway3.image_dir}"' in image[0] and "$SCRATCH" not in image[0]
    assert cache and f'APPTAINER_CACHEDIR="{midway3.cache_dir}"' in cache[0] and "$SCRATCH" not in cache[0]
    assert f"a folder under {midway3.scratch}" in cache[0]


def test_without_a_profile_the_advice_is_scratch() -> None:
    assert '--dir "$SCRATCH/images"' in messages(PULL_HOME, "HPC206")[0]
    assert 'APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"' in messages(PULL_HOME, "HPC207")[0]


def test_a_cache_set_under_home_is_pointed_at_the_profile_cache() -> None:
    text = ('#!/bin/bash\nexport APPTAINER_CACHEDIR="$HOME/.cache/apptainer"\n'
            "apptainer pull img.sif docker://pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime\n")
    midway3 = load_profile("midway3")
    assert messages(text, "HPC207", midway3)[0].endswith(f"point it at scratch, e.g. {midway3.cache_dir}")


# --- HPC216: singularity --nvccli by the runtime the site has --------------------------------------------------

#: singularity --nvccli with no writable layer
NVCCLI = """#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=00:10:00
module load {module}
export PYTHONNOUSERSITE=1
singularity exec --nvccli "/scratch/midway3/$USER/sif_files/pytorch_24.05.sif" python train.py
"""


def test_singularity_on_an_apptainer_site_is_apptainer() -> None:
    assert "HPC216" not in codes(NVCCLI.format(module="apptainer"), load_profile("midway3"))
    assert "HPC216" not in codes(NVCCLI.format(module="apptainer"))


def test_a_singularity_only_profile_is_singularityce() -> None:
    site = dataclasses.replace(load_profile("generic"), runtimes=("singularity",), apptainer_binary="singularity")
    found = messages(NVCCLI.format(module="singularity"), "HPC216", site)
    assert len(found) == 1 and "the profile generic lists singularity, not apptainer" in found[0]


@pytest.mark.parametrize("module, reported", [("singularityce/4.1", True), ("singularity", True),
                                               ("apptainer/1.3.4", False)])
def test_without_a_profile_the_module_tells(module: str, reported: bool) -> None:
    assert bool(messages(NVCCLI.format(module=module), "HPC216")) is reported


def test_without_a_profile_or_a_module_nothing_is_said() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\nsingularity exec --nvccli img.sif python train.py\n"
    assert "HPC216" not in codes(text)


# --- HPC136: several GPU workers on Slurm's one CPU per task ------------------------------------------------------

#: lesson 07's single-node job, rendered from Workflow.single_node
LESSON07 = """#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4

set -eo pipefail
module load apptainer
set -u

apptainer exec --nv \\
  --bind "$HOME/project:/code:ro" \\
  "$SCRATCH/images/pytorch_24.05.sif" \\
  torchrun --standalone \\
  --nnodes=1 \\
  --nproc-per-node=4 \\
  /code/distributed_train.py
"""


def test_lesson07_torchrun_on_one_cpu_is_reported_with_the_gpus_share() -> None:
    generic = load_profile("generic")  # gpu partition: 32 CPUs and 4 GPUs a node
    found = messages(LESSON07, "HPC136", generic)
    assert len(found) == 1 and "4 workers" in found[0] and "--cpus-per-task=32" in found[0]
    fixed, _ = fix_script(LESSON07, generic)
    assert "#SBATCH --gres=gpu:4\n#SBATCH --cpus-per-task=32\n" in fixed
    assert "HPC136" not in codes(fixed, generic)


def test_four_tasks_of_one_gpu_each() -> None:
    text = ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n"
            "#SBATCH --gres=gpu:4\nsrun python train.py\n")
    found = messages(text, "HPC136", load_profile("generic"))
    assert len(found) == 1 and "--cpus-per-task=8" in found[0]


@pytest.mark.parametrize("directive", ["#SBATCH --cpus-per-task=16", "#SBATCH --cpus-per-gpu=8",
                                       "#SBATCH --exclusive"])
def test_a_job_that_asks_for_cpus_is_left_alone(directive: str) -> None:
    text = LESSON07.replace("#SBATCH --gres=gpu:4\n", f"#SBATCH --gres=gpu:4\n{directive}\n")
    assert "HPC136" not in codes(text, load_profile("generic"))


def test_without_a_profile_the_site_default_is_unknown() -> None:
    assert "HPC136" not in codes(LESSON07)


def test_one_worker_per_node_is_left_alone() -> None:
    text = LESSON07.replace("--nproc-per-node=4", "--nproc-per-node=1").replace("gpu:4", "gpu:1")
    assert "HPC136" not in codes(text, load_profile("generic"))


@pytest.mark.parametrize("step", [
    'srun "$(which python)" train.py',            # what the command prints is one word: the program's path
    'srun "$(placement 4 1)" ./bin/amgx.out',
    'srun "`which python`" train.py',
])
def test_hpc533_leaves_a_quoted_command_substitution_alone(step: str) -> None:
    assert [f for f in lint(f"#!/bin/bash\n#SBATCH --time=10\n{step}\n") if f.code == "HPC533"] == []


def test_hpc533_splits_the_word_as_written_and_keeps_its_variables() -> None:
    text = '#!/bin/bash\n#SBATCH --time=10\nip=10.0.0.1\nsrun "./run.sh $ip"\n'
    [found] = [f for f in lint(text) if f.code == "HPC533"]
    assert found.message.endswith('(./run.sh "$ip")')
    assert fix_script(text)[0].endswith('srun ./run.sh "$ip"\n')  # the variable, never its value


def test_hpc533_offers_no_bash_c_fix_that_would_drop_the_words_after_it() -> None:
    text = '#!/bin/bash\n#SBATCH --time=10\nsrun "sleep 5; echo hi" extra\n'
    [found] = [f for f in lint(text) if f.code == "HPC533"]
    assert found.fix is None and "after bash -c they would be $0, $1" in found.message
    alone = '#!/bin/bash\n#SBATCH --time=10\nsrun "sleep 5; echo hi"\n'
    assert fix_script(alone)[0].endswith("srun bash -c 'sleep 5; echo hi'\n")


@pytest.mark.parametrize("directive", ["--gres=shard:2", "--gres=mps:50", "--tres-per-task=gres/gpu:1"])
def test_hpc202_counts_a_share_of_a_gpu_as_a_gpu(directive: str) -> None:
    text = f"#!/bin/bash\n#SBATCH {directive}\napptainer exec --nv img_1.0.sif python t.py\n"
    assert "HPC202" not in {f.code for f in lint(text)}
    assert "HPC202" in {f.code for f in lint(text.replace(directive, "--gres=lscratch:10"))}


def test_hpc136_counts_one_cpu_when_the_job_names_no_tasks() -> None:
    text = ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:4\n#SBATCH --time=01:00:00\n"
            "torchrun --standalone --nproc-per-node=4 train.py\n")
    [found] = [f for f in lint(text, "generic") if f.code == "HPC136"]
    assert "with the 1 CPU Slurm gives by default" in found.message


@pytest.mark.parametrize("options, reported", [
    ("--overlay data.img:ro", True), ("--overlay data.img", True),   # an overlay is no --writable
    ("--writable-tmpfs", True),                                       # added for --nvccli anyway: not the fix
    ("--fakeroot", True),
    ("--writable", False),                                            # a sandbox opened writable: allowed
])
def test_hpc216_only_writable_lets_singularityce_run_nvccli(options: str, reported: bool) -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\nmodule load singularityce/4.1\nexport PYTHONNOUSERSITE=1\n"
            f"singularity exec --nvccli {options} img_1.0.sif python t.py\n")
    assert ("HPC216" in {f.code for f in lint(text)}) is reported


def test_hpc216_fix_uses_nv_in_place_of_nvccli() -> None:
    from hpcwidgets.fixes import fix_script
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\nmodule load singularityce/4.1\nexport PYTHONNOUSERSITE=1\n"
            "singularity exec --nvccli img_1.0.sif python t.py\n")
    fixed, _ = fix_script(text, select=("HPC216",))
    assert "--nvccli" not in fixed and "singularity exec --nv img_1.0.sif python t.py" in fixed
    assert "HPC216" not in {f.code for f in lint(fixed)}
