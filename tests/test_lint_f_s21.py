"""Session 21's rule findings from two audits: srun-only switches shown bare (HPC312); export NAME= value and its kind
(HPC520); a runtime called by its path or from a folder put on PATH (HPC409); CUDA_VISIBLE_DEVICES set for one command
(HPC513); no small-memory warning for a job no node holds (HPC413); apptainer run with binds after the image (HPC203);
a late #SBATCH line sbatch never reads is HPC501's, not HPC310's, and a missing value is named; the components of a
heterogeneous job named (HPC201/HPC202); MPI ranks under --cleanenv (HPC223); apptainer renamed singularity (HPC414)."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.profile import ClusterProfile, Partition


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- 1. HPC312: srun's switches take no value ----------------------------------------------------------------------

SRUN_OPTIONS = """#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --pty
#SBATCH --overlap
#SBATCH --label
#SBATCH --unbuffered
#SBATCH --mpi=pmix
#SBATCH --multi-prog
#SBATCH --cpu-bind
#SBATCH --kill-on-bad-exit=1
srun hostname
"""


def test_srun_switches_are_shown_without_a_value():
    messages = dict(found(SRUN_OPTIONS, "HPC312"))
    for line, flag in ((3, "--pty"), (4, "--overlap"), (5, "--label"), (6, "--unbuffered")):
        assert f"(srun {flag} program)" in messages[line]
        assert f"{flag}=" not in messages[line]  # srun: option '--pty' doesn't allow an argument


def test_srun_options_with_a_value_keep_it():
    messages = dict(found(SRUN_OPTIONS, "HPC312"))
    assert "(srun --mpi=pmix program)" in messages[7]        # the value the line gives
    assert "(srun --cpu-bind=… program)" in messages[9]      # none given: a placeholder
    assert "(srun --kill-on-bad-exit=1 program)" in messages[10]  # an optional value the line gives
    assert "srun --multi-prog tasks.conf" in messages[8] and "--multi-prog=" not in messages[8]


# --- 2. HPC520: export NAME= value ---------------------------------------------------------------------------------

EXPORT_SPACE = """#!/bin/bash
#SBATCH --time=00:30:00
export WANDB_API_KEY= "put your wandb key here"
export DATA_DIR= /scratch/data
srun python train.py --data "$DATA_DIR"
"""


def test_export_with_a_space_after_the_equals_sign_is_reported_and_fixed():
    [(line_3, first), (line_4, second)] = found(EXPORT_SPACE, "HPC520")
    assert line_3 == 3 and line_4 == 4
    assert "WANDB_API_KEY to an empty string" in first and "not a valid identifier" in first
    assert "DATA_DIR=/scratch/data" in second
    fixed, done = fix_script(EXPORT_SPACE, select="HPC520")
    assert 'export WANDB_API_KEY="put your wandb key here"\n' in fixed
    assert "export DATA_DIR=/scratch/data\n" in fixed and len(done) == 2
    assert found(fixed, "HPC520") == []


@pytest.mark.parametrize("line, fixed", [
    ("export C = 4", "export C=4"),
    ("declare -x H =5", "declare -x H=5"),
    ("readonly R= 6", "readonly R=6"),
    ("typeset T= $HOME/x", "typeset T=$HOME/x"),
    ("export MODE= train", "export MODE=train"),  # no error from bash, and MODE is still empty
    ("export PATH= $PATH:/opt/x/bin", "export PATH=$PATH:/opt/x/bin"),
])
def test_declarations_with_spaces_around_the_equals_sign(line, fixed):
    text = f"#!/bin/bash\n{line}\npython x.py\n"
    [(line_2, message)] = found(text, "HPC520")
    assert line_2 == 2
    assert fixed.split()[-1] in message
    assert fix_script(text, select="HPC520")[0] == f"#!/bin/bash\n{fixed}\npython x.py\n"


def test_local_in_a_function_is_read_too():
    text = "#!/bin/bash\nf() {\n  local -r F= 7\n  echo \"$F\"\n}\nf\n"
    assert [line for line, _ in found(text, "HPC520")] == [3]


@pytest.mark.parametrize("line", [
    "export G=",                 # an empty value on purpose
    "export A= B=2",             # two assignments, the first one empty
    "export x=1 y",              # a value, then a second name
    "export -n OLD",
    "declare -A table",
    "export CUDA_HOME=/usr/local/cuda PATH",
])
def test_correct_declarations_are_left_alone(line):
    assert found(f"#!/bin/bash\n{line}\npython x.py\n", "HPC520") == []


# --- 3. HPC409: a runtime called by its path -----------------------------------------------------------------------

ABS_RUNTIME = """#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --mem=40G
#SBATCH --time=01:00:00
PATH_LINE
RUNTIME exec --nv /scratch/img.sif python train.py
"""


def runtime_job(runtime: str = "singularity", path_line: str = "") -> str:
    return ABS_RUNTIME.replace("PATH_LINE", path_line).replace("RUNTIME", runtime)


def test_a_runtime_by_its_name_needs_the_module():
    assert [line for line, _ in found(runtime_job(), "HPC409", "midway3")] == [7]


@pytest.mark.parametrize("runtime, path_line", [
    ("/share/apps/singularity/bin/singularity", ""),
    ("srun /opt/apptainer/1.3.4/bin/apptainer", ""),
    ("singularity", "export PATH=/share/apps/singularity/bin:$PATH"),
    ("apptainer", "PATH=/opt/apptainer-1.3/bin:$PATH"),
])
def test_a_runtime_called_by_its_path_or_from_its_own_folder_is_left_alone(runtime, path_line):
    assert found(runtime_job(runtime, path_line), "HPC409", "midway3") == []


def test_a_path_extended_with_another_folder_still_needs_the_module():
    text = runtime_job("singularity", "export PATH=$HOME/.local/bin:$PATH")
    assert [line for line, _ in found(text, "HPC409", "midway3")] == [7]


# --- 4. HPC513: CUDA_VISIBLE_DEVICES set for one command -------------------------------------------------------------

CVD = """#!/bin/bash
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
SETTING torchrun --standalone --nproc-per-node=8 train.py
"""


@pytest.mark.parametrize("setting", ["CUDA_VISIBLE_DEVICES=0,1,2,3", "env CUDA_VISIBLE_DEVICES=0,1,2,3",
                                     "env -u X CUDA_VISIBLE_DEVICES=0,1,2,3"])
def test_a_list_set_for_one_command_is_read_as_an_exported_one(setting):
    [(line, message)] = found(CVD.replace("SETTING", setting), "HPC513")
    assert line == 5 and "names 4 GPUs but the job requests 8 per node" in message
    assert "remove CUDA_VISIBLE_DEVICES=0,1,2,3 from the command" in message


def test_the_exported_list_is_still_reported_with_its_own_advice():
    text = CVD.replace("SETTING ", "export CUDA_VISIBLE_DEVICES=0,1,2,3\n")
    [(line_5, message)] = found(text, "HPC513")
    assert line_5 == 5
    assert message.endswith("remove the line")


def test_one_gpu_per_background_command_is_left_alone():
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:2\nCUDA_VISIBLE_DEVICES=0 python a.py &\n"
            "CUDA_VISIBLE_DEVICES=1 python b.py &\nwait\n")
    assert found(text, "HPC513") == []
    assert found(CVD.replace("SETTING", "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7"), "HPC513") == []


# --- 5. HPC413: not for a job no node holds ------------------------------------------------------------------------

def small_gpu_site() -> ClusterProfile:
    return ClusterProfile(name="twogpu", partitions=(
        Partition(name="gpu", is_default=True, max_time="1-00:00:00", cpus_per_node=40, mem_per_node="180G",
                  gpus_per_node=2, def_mem_per_cpu="768M"),
        Partition(name="big", max_time="1-00:00:00", cpus_per_node=32, mem_per_node="372G", gpus_per_node=8,
                  def_mem_per_cpu="768M")))


def gpu_job(partition: str, gpus: int) -> str:
    return (f"#!/bin/bash\n#SBATCH --partition={partition}\n#SBATCH --gres=gpu:{gpus}\n#SBATCH --time=01:00:00\n"
            "python train.py\n")


def test_more_gpus_than_a_node_has_is_one_error_without_the_memory_warning():
    profile = small_gpu_site()
    assert [line for line, _ in found(gpu_job("gpu", 4), "HPC403", profile)] == [3]
    assert found(gpu_job("gpu", 4), "HPC413", profile) == []


def test_the_memory_warning_stays_where_the_node_holds_the_job():
    profile = small_gpu_site()
    [(_, message)] = found(gpu_job("gpu", 2), "HPC413", profile)
    assert "its 2 of a node's 2 GPUs" in message
    # two partitions: the one whose nodes hold the job keeps its warning, the other one has none
    [(_, both)] = found(gpu_job("gpu,big", 4), "HPC413", profile)
    assert "partition big" in both and "of a node's 2 GPUs" not in both


# --- 6. HPC203: apptainer run with binds after the image -----------------------------------------------------------

def test_a_bind_after_the_image_of_run_is_reported():
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=00:30:00\n"
            "singularity run --nv train_attention.image --bind /scratch/data:/data\n")
    [(line_4, message)] = found(text, "HPC203")
    assert line_4 == 4
    assert message.startswith("--bind /scratch/data:/data comes after the image train_attention.image")
    assert "without these binds" in message


def test_gpu_flags_and_overlays_after_the_image_of_run():
    text = "#!/bin/bash\n#SBATCH --time=00:30:00\napptainer run t.sif --nv -B $SCRATCH:/scratch --overlay /x/o.img -x\n"
    [(line_3, message)] = found(text, "HPC203")
    assert line_3 == 3
    assert "--nv -B $SCRATCH:/scratch --overlay /x/o.img comes after" in message
    assert "the GPUs, these binds and the overlay" in message
    # in a GPU job too, as for exec: HPC203 names the misplaced --nv, and HPC201 leaves the step to it
    gpu = text.replace("#SBATCH --time", "#SBATCH --gres=gpu:1\n#SBATCH --time")
    [(line_4, message)] = found(gpu, "HPC203")
    assert line_4 == 4
    assert message.startswith("--nv -B $SCRATCH:/scratch --overlay") and found(gpu, "HPC201") == []


@pytest.mark.parametrize("args", ["--bind 0.0.0.0:8000", "-B 32 --nv", "--config cfg.yaml --bind /data",
                                  "--overlay=o.img"])
def test_run_arguments_a_runscript_may_take_are_left_alone(args):
    text = f"#!/bin/bash\n#SBATCH --time=00:30:00\napptainer run srv.sif {args}\n"
    assert found(text, "HPC203") == []


# --- 8. HPC501 and HPC310 for an #SBATCH line after the first command ----------------------------------------------

LATE = """#!/bin/bash
set -e
#SBATCH --time=01:00:00
#SBATCH -i
#SBATCH --mem=4G
srun hostname
"""


def test_a_late_line_without_its_value_is_reported_once_as_ignored():
    assert found(LATE, "HPC310") == []
    late = dict(found(LATE, "HPC501"))
    assert sorted(late) == [3, 4, 5]
    assert late[4].startswith("#SBATCH -i comes after the first command (line 2)")
    assert "-i (--input) needs a value: the file the job reads as its standard input, e.g. -i job.in" in late[4]


def test_a_missing_value_above_the_first_command_names_the_value():
    text = "#!/bin/bash\n#SBATCH -i\n#SBATCH --time\n#SBATCH --bb\nsrun hostname\n"
    messages = dict(found(text, "HPC310"))
    assert messages[2] == "-i (--input) needs a value: the file the job reads as its standard input, e.g. -i job.in"
    assert messages[3] == "--time needs a value: the time limit, e.g. --time=01:00:00"
    assert messages[4] == "--bb needs a value, e.g. --bb=…"
    assert found(text, "HPC501") == []


# --- 9. heterogeneous jobs: the component named; MPI under --cleanenv ----------------------------------------------

HET = """#!/bin/bash
#SBATCH --time=01:00:00
#SBATCH --nodes=1 --ntasks=1 --cpus-per-task=64
#SBATCH hetjob
#SBATCH --nodes=1 --ntasks=1 --cpus-per-task=8 --gres=gpu:1
srun --het-group=1 apptainer exec img.sif python train.py
srun --het-group=0 apptainer exec --nv img.sif python prep.py
"""


def test_the_gpu_flag_rules_name_the_component_of_a_heterogeneous_job():
    [(line_7, no_gpu)] = found(HET, "HPC202")
    assert line_7 == 7
    assert "component 0 of the heterogeneous job, where this step runs, requests no GPU" in no_gpu
    assert "srun --het-group=1" in no_gpu
    [(line_6, missing)] = found(HET, "HPC201")
    assert line_6 == 6
    assert missing.startswith("component 1 of the heterogeneous job, where this step runs, requests GPUs")


def test_an_ordinary_job_is_still_the_job():
    text = "#!/bin/bash\n#SBATCH --cpus-per-task=8\napptainer exec --nv img.sif python x.py\n"
    [(line_3, message)] = found(text, "HPC202")
    assert line_3 == 3
    assert "but the job requests no GPU" in message


MPI_CLEANENV = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=24
#SBATCH --time=10:00:00
MODULE
srun SRUN_OPTIONS apptainer exec --cleanenv IMAGE ./solver
"""


@pytest.mark.parametrize("module, srun, image, shown", [
    ("module load OpenMPI/5.0.8-GCC-14.3.0", "", "rich_env.sif", "module OpenMPI/5.0.8-GCC-14.3.0"),
    ("", "--mpi=pmix", "rich_env.sif", "--mpi=pmix"),
    ("", "", "openmpi-4.1.sif", "image openmpi-4.1.sif"),
])
def test_mpi_ranks_under_cleanenv_lose_the_process_manager_variables(module, srun, image, shown):
    text = MPI_CLEANENV.replace("MODULE", module).replace("SRUN_OPTIONS", srun).replace("IMAGE", image)
    [(line_6, message)] = found(text, "HPC223")
    assert line_6 == 6
    assert f"24 MPI ranks in the container with --cleanenv ({shown})" in message
    assert "PMI_* and PMIX_*" in message and "rank 0 of 1" in message


def test_a_program_without_mpi_keeps_the_per_task_variables_message():
    text = MPI_CLEANENV.replace("MODULE", "").replace("SRUN_OPTIONS", "").replace("IMAGE", "pytorch.sif")
    [(line_6, message)] = found(text, "HPC223")
    assert line_6 == 6
    assert "PMIX" not in message and "drops SLURM_PROCID" in message


# --- 10. HPC414: apptainer renamed singularity by --fix ------------------------------------------------------------

def singularity_site() -> ClusterProfile:
    return ClusterProfile(name="singsite", runtimes=("singularity",), apptainer_binary="singularity",
                          partitions=load_profile("generic").partitions)


SITE_JOB = """#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00
SETUP
srun apptainer exec --nv pytorch.sif python train.py
apptainer exec pytorch.sif python post.py
"""


def test_the_fix_calls_singularity_on_every_line():
    text = SITE_JOB.replace("SETUP\n", "")
    [(line_5, message)] = found(text, "HPC414", singularity_site())
    assert line_5 == 5
    assert "call singularity" in message
    fixed, done = fix_script(text, singularity_site(), select="HPC414")
    assert "srun singularity exec --nv pytorch.sif" in fixed and "\nsingularity exec pytorch.sif" in fixed
    assert [f.line for f in done] == [5, 6] and found(fixed, "HPC414", singularity_site()) == []


def test_no_fix_where_the_script_sets_apptainer_variables():
    text = SITE_JOB.replace("SETUP", "export APPTAINER_BIND=/scratch")
    [finding] = [f for f in lint(text, singularity_site()) if f.code == "HPC414"]
    assert finding.fix is None
