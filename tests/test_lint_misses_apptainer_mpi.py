"""Misses left by the last session's audits: an apptainer option written with three dashes or given to instance
start with one (HPC233), a resubmission written in a trap's handler (HPC325), Open MPI 5 read from a module a later
module swap replaces (HPC127, HPC135), and accelerate/deepspeed workers on Slurm's one default CPU (HPC136)."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


def codes(text: str, profile=None) -> set[str]:
    return {f.code for f in lint(text, profile)}


# --- HPC233: ---nvccli, and instance start -nv -------------------------------------------------------------------

#: a real script (vivekkiran/nwchem-apptainer-lawrence setup-apptainer-container.sh, its last line)
NWCHEM = """#!/usr/bin/env bash
apptainer run ---nvccli rockylinux-gpu.sif
"""


def test_three_dashes_stop_apptainer_and_the_fix_writes_two() -> None:
    ((line, message),) = found(NWCHEM, "HPC233")
    assert line == 2 and '"bad flag syntax: ---nvccli"' in message and message.endswith("write --nvccli")
    fixed, applied = fix_script(NWCHEM)
    assert "HPC233" in {f.code for f in applied}
    assert "apptainer run --nvccli rockylinux-gpu.sif" in fixed and "HPC233" not in codes(fixed)


def test_three_dashes_keep_the_value_in_the_advice() -> None:
    text = "#!/bin/bash\napptainer exec ---bind=/scratch/data:/data img.sif python train.py\n"
    ((_, message),) = found(text, "HPC233")
    assert message.startswith("---bind=/scratch/data:/data is not --bind") and message.endswith(
        "write --bind=/scratch/data:/data")


#: an inference server started as an instance, as vLLM and Jupyter guides on clusters do
SERVER = """#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
apptainer instance start -nv --bind "$SCRATCH/models:/models" vllm_0.5.sif llm
apptainer exec instance://llm python -m vllm.entrypoints.openai.api_server --model /models/llama
apptainer instance stop llm
"""


def test_instance_start_with_one_dash_is_reported_and_hpc201_leaves_it() -> None:
    ((line, message),) = found(SERVER, "HPC233")
    assert line == 4 and "\"unknown shorthand flag: 'v' in -nv\"" in message
    assert "HPC201" not in codes(SERVER)   # the flag is there, misspelled: adding a second one would be wrong
    fixed, _ = fix_script(SERVER)
    assert 'apptainer instance start --nv --bind "$SCRATCH/models:/models" vllm_0.5.sif llm' in fixed
    assert not {"HPC233", "HPC201"} & codes(fixed)


@pytest.mark.parametrize("options", [
    "--nv -B /data",
    "-e -C --nv",
    "--nv --pid-file /tmp/llm.pid",
    "--nv -pwd /work",            # instance start has no --pwd: not one of its long options written wrong
])
def test_instance_start_options_that_are_not_misdashed(options: str) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer instance start {options} img.sif llm\n"
    assert not found(text, "HPC233")


def test_the_word_after_a_misdashed_bind_is_its_value_not_the_image() -> None:
    # -bind takes /data as meant, so -nv after it is still among the options
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer instance start -bind /data -nv img.sif llm\n"
    assert [m.split(" ", 1)[0] for _, m in found(text, "HPC233")] == ["-bind", "-nv"]


def test_a_word_after_the_image_is_the_startscripts() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer instance start --nv img.sif llm -nv\n"
    assert not found(text, "HPC233")


# --- HPC325: the resubmission in a trap's handler -----------------------------------------------------------------

#: after a real script (DAGFormer, NCSA Delta): resubmits itself from its USR1 handler; here with a fixed dependency
#: on the #SBATCH line and none on the sbatch line
DAGFORMER = """#!/bin/bash
#SBATCH --job-name=1b-4way20b
#SBATCH --nodes=1
#SBATCH --gres=gpu:h200:8
#SBATCH --time=48:00:00
#SBATCH --signal=B:USR1@180
#SBATCH --dependency=afterok:4242
set -eo pipefail
AUTORESUBMIT=${AUTORESUBMIT:-1}
trap 'echo "Received SIGUSR1"; \\
      if [ "$AUTORESUBMIT" = "1" ]; then \\
          sbatch $0; \\
      fi' SIGUSR1
torchrun --nproc_per_node=8 scripts/pretrain.py --config "$CONFIG" &
wait
"""


def test_a_resubmission_in_a_multiline_trap_is_reported_at_its_own_line() -> None:
    ((line, message),) = found(DAGFORMER, "HPC325")
    assert line == 12 and "sbatch $0 submits this script again" in message and "job 4242" in message
    assert not found(DAGFORMER, "HPC326")   # HPC325 says it, with what it does to the chain
    fixed, _ = fix_script(DAGFORMER)
    assert 'sbatch --dependency=afterany:"$SLURM_JOB_ID" $0; \\' in fixed
    assert not found(fixed, "HPC325")


HEAD = "#!/bin/bash\n#SBATCH --time=24:00:00\n#SBATCH --signal=B:USR1@300\n#SBATCH --dependency=afterok:23929\n"


@pytest.mark.parametrize("trap, fixed", [
    ("""trap 'sbatch "$0"' USR1""", """trap 'sbatch --dependency=afterany:"$SLURM_JOB_ID" "$0"' USR1"""),
    # in a double-quoted handler, quotes of the fix's own would end the handler's string
    ('trap "sbatch $0" USR1', 'trap "sbatch --dependency=afterany:$SLURM_JOB_ID $0" USR1'),
])
def test_a_one_line_trap_and_its_fix(trap: str, fixed: str) -> None:
    text = HEAD + trap + "\nsrun ./md -restart &\nwait\n"
    assert [line for line, _ in found(text, "HPC325")] == [5]
    out, _ = fix_script(text)
    assert fixed in out and not found(out, "HPC325")


def test_a_function_the_trap_calls_is_reported_where_it_is_written() -> None:
    text = HEAD + 'resubmit() {\n  echo "time is up"\n  sbatch "$0"\n}\ntrap resubmit USR1\nsrun ./md &\nwait\n'
    assert [line for line, _ in found(text, "HPC325")] == [7]


@pytest.mark.parametrize("trap", [
    'trap "scontrol requeue $SLURM_JOB_ID" USR1',                             # the same job again: no new copy
    """trap 'sbatch --dependency=afterany:$SLURM_JOB_ID "$0"' USR1""",        # its own dependency wins
    """trap 'sbatch next_stage.sh' USR1""",                                  # another script
])
def test_traps_that_do_not_resubmit_with_the_fixed_dependency(trap: str) -> None:
    assert not found(HEAD + trap + "\nsrun ./md &\nwait\n", "HPC325")


# --- HPC127 / HPC135: the module loaded when the step runs ----------------------------------------------------------

TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n"


@pytest.mark.parametrize("modules", [
    "module load openmpi/5.0.3\nmodule swap openmpi/5.0.3 openmpi/4.1.6",
    "module load gcc/12.3.0 openmpi/5.0.3\nmodule switch openmpi openmpi/4.1.6",
    "module load openmpi/5.0.3\nmodule unload openmpi\nmodule load mpich/4.1.2",
    "module load openmpi/5.0.3\nmodule load openmpi/4.1.6",            # Lmod replaces a module of the same name
    "ml openmpi/5.0.3\nml -openmpi openmpi/4.1.6",
    "module load openmpi/5.0.3\nmodule purge\nmodule load openmpi/4.1.6",
])
def test_an_open_mpi_5_module_replaced_before_the_step(modules: str) -> None:
    text = TWO_NODES + modules + "\nsrun --mpi=pmi2 ./solver\n"
    assert not found(text, "HPC127")


@pytest.mark.parametrize("modules", [
    "module load openmpi/4.1.6\nmodule swap openmpi openmpi/5.0.3",
    "module load openmpi/4.1.6\nmodule sw openmpi/5.0.3",             # one module: swaps the loaded one of its name
    "module -q load openmpi/5.0.3",
])
def test_open_mpi_5_loaded_when_the_step_runs(modules: str) -> None:
    text = TWO_NODES + modules + "\nsrun --mpi=pmi2 ./solver\n"
    ((_, message),) = found(text, "HPC127")
    assert "module openmpi/5.0.3" in message


def test_each_step_is_judged_by_the_modules_of_its_time() -> None:
    text = (TWO_NODES + "module load openmpi/5.0.3\nsrun ./solver\nmodule swap openmpi/5.0.3 openmpi/4.1.6\n"
            "srun ./post\nmodule purge\nmodule load openmpi/5.0.3\nsrun ./check\n")
    profile = load_profile("local").replace(mpi_default="pmi2")
    assert [line for line, _ in found(text, "HPC135", profile)] == [5, 10]


# --- HPC136: accelerate and deepspeed workers on one CPU ------------------------------------------------------------

GENERIC = load_profile("generic")
ONE_NODE = """#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --time=12:00:00
"""


@pytest.mark.parametrize("launch, launcher", [
    ("accelerate launch --num_processes 4 --mixed_precision bf16 train.py", "accelerate launch"),
    ("accelerate launch --multi_gpu train.py --epochs 3", "accelerate launch"),        # one worker per GPU
    ("srun accelerate launch --num_processes=4 train.py", "accelerate launch"),
    ("apptainer exec --nv img.sif accelerate launch --num_processes=4 train.py", "accelerate launch"),
    ("deepspeed --num_gpus 4 train.py --deepspeed ds_config.json", "deepspeed"),
    ("srun deepspeed --num_gpus=4 train.py", "deepspeed"),
])
def test_several_workers_on_the_one_default_cpu(launch: str, launcher: str) -> None:
    ((line, message),) = found(ONE_NODE + launch + "\n", "HPC136", GENERIC)
    assert line == 7 and message.startswith(f"{launcher} starts 4 workers on this node with the 1 CPU")


def test_the_fix_asks_for_the_gpus_share_of_the_cpus() -> None:
    text = ONE_NODE + "deepspeed --num_gpus 4 train.py --deepspeed ds_config.json\n"
    fixed, applied = fix_script(text, GENERIC)
    assert "HPC136" in {f.code for f in applied} and "#SBATCH --cpus-per-task=" in fixed
    assert not found(fixed, "HPC136", GENERIC)


def test_accelerate_counts_its_processes_per_machine() -> None:
    text = ONE_NODE.replace("--nodes=1", "--nodes=2") + (
        'srun accelerate launch --num_processes 8 --num_machines 2 --machine_rank "$SLURM_NODEID" '
        '--main_process_ip "$head" train.py\n')
    ((_, message),) = found(text, "HPC136", GENERIC)
    assert message.startswith("accelerate launch starts 4 workers")


@pytest.mark.parametrize("launch", [
    "accelerate launch --num_processes 1 train.py",
    "accelerate launch --config_file fsdp.yaml train.py",        # the config file says how many
    "accelerate launch --config_file fsdp.yaml --multi_gpu train.py",
    "accelerate launch --cpu --num_processes 4 train.py",
    "deepspeed train.py --deepspeed ds_config.json",             # every GPU, or a hostfile's slots: not told
    "deepspeed --include localhost:0,1 train.py",
    "srun --cpus-per-task=32 accelerate launch --num_processes 4 train.py",
])
def test_launches_that_do_not_say_or_have_their_cpus(launch: str) -> None:
    assert not found(ONE_NODE + launch + "\n", "HPC136", GENERIC)


def test_a_job_that_asks_for_cpus_is_left_alone() -> None:
    text = ONE_NODE + "#SBATCH --cpus-per-task=32\naccelerate launch --num_processes 4 train.py\n"
    assert not found(text, "HPC136", GENERIC)
