"""#SBATCH values and options that sbatch refuses or reads otherwise than written, from an audit of real scripts.
Each verdict about sbatch was checked with the Slurm 22.05 sbatch client against a configuration whose
controller cannot be reached: it reports option errors before it connects, and ``sbatch -vv`` lists the values it
read."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec import SlurmJob
from hpcwidgets.spec.units import UNLIMITED, parse_time


def _found(text: str, code: str, profile=None) -> list:
    return [f for f in lint(text, profile) if f.code == code]


def _job(*directives: str, body: str = "srun python train.py\n") -> str:
    return "#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives) + body


# --- 1. D- (days, the hours left out) ------------------------------------------------------------------------------

# Yale (Shushrruth/scEpiLock submit/submit_Test.sh): sbatch takes --time=1- as one day
YALE_ONE_DAY = """#!/bin/bash
#SBATCH --job-name=test
#SBATCH --time=1-
#SBATCH --gpus 1
#SBATCH --cpus-per-gpu 8
#SBATCH --mem-per-cpu 5g
#SBATCH --ntasks=1
#SBATCH --partition=gpu
#
module load miniconda
conda activate ScEpilock
python Test/tester.py
"""


@pytest.mark.parametrize("text,seconds", [
    ("1-", 86400), ("2-", 2 * 86400), ("0-", UNLIMITED),    # sbatch: a limit of 0 is none
    ("1-2", 86400 + 7200), ("1-2:3", 86400 + 7200 + 180), ("1-2:3:4", 86400 + 7200 + 184),
])
def test_days_with_or_without_the_hours_are_a_time(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "-", "1-:30", "1-2:", "1--2", "5:", ":5", "1:2:3:4", "1-2:3:4:5", "1d", "48h"])
def test_what_sbatch_refuses_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match="not a Slurm time"):
        parse_time(text)


def test_a_day_written_as_1_dash_is_no_error() -> None:
    assert not _found(YALE_ONE_DAY, "HPC301")
    assert not SlurmJob(time="2-").problems()


def test_the_partition_limit_is_checked_for_a_time_in_days() -> None:
    generic = load_profile("generic")   # partition gpu: at most a day
    assert not _found(YALE_ONE_DAY, "HPC402", generic)
    over = _found(YALE_ONE_DAY.replace("--time=1-", "--time=2-"), "HPC402", generic)
    assert len(over) == 1 and over[0].line == 3


# --- 2. an empty value ---------------------------------------------------------------------------------------------

# MetOffice/data_science_cop run_train_single_model.sh: the time left blank
METOFFICE_EMPTY_TIME = """#!/bin/bash -l
#SBATCH --mem=150G
#SBATCH --ntasks=24
#SBATCH --time=
conda activate py-lightning
python 03_pytorch_train.py > slurm_python_log.txt
"""


def test_an_empty_time_is_an_error() -> None:
    found = _found(METOFFICE_EMPTY_TIME, "HPC301")
    assert [f.line for f in found] == [4] and found[0].severity == "error"
    assert "refuses an empty --time" in found[0].message and "--time=01:00:00" in found[0].message


@pytest.mark.parametrize("directive,code", [
    ("--mem=", "HPC302"), ("--mem-per-cpu=", "HPC302"), ("--mem-per-gpu=", "HPC302"), ('--mem=""', "HPC302"),
    ('-t ""', "HPC301"), ("--mail-type=", "HPC399"), ("--begin=", "HPC399"), ("--tmp=", "HPC399"),
    ("--time-min=", "HPC399"), ("--open-mode=", "HPC399"), ("--cluster=", "HPC399"),
])
def test_an_empty_value_sbatch_refuses_is_an_error(directive: str, code: str) -> None:
    found = _found(_job(directive), code)
    assert len(found) == 1 and found[0].line == 2 and "is given no value" in found[0].message


def test_an_empty_count_is_reported_once() -> None:
    found = [f for f in lint(_job("--ntasks=")) if f.line == 2]
    assert [f.code for f in found] == ["HPC308"]


@pytest.mark.parametrize("directive", ["--account=", "--partition=", "--output=", "--comment="])
def test_an_empty_value_sbatch_takes_is_not_reported(directive: str) -> None:
    assert not [f for f in lint(_job(directive)) if "no value" in f.message]


# --- 3. options sbatch no longer has, and an option joined to its value by - ---------------------------------------

# BSC CTE-Power (VictorAtPL/Tensorflow-2_Distribution-Strategies_Playground)
BSC_WORKDIR = """#!/bin/bash
#SBATCH --job-name="test_job_multiworkermirroredstrategy"
#SBATCH --time=00-00:05:00
#SBATCH --workdir=.
#SBATCH --nodes=4
#SBATCH --ntasks=4
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
srun python3 tf_keras_multiworkermirroredstrategy_mnist.py
"""

# UBC (Carson-Lu/DPTabula job-script.sh)
UBC_MEM_TYPO = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --mem-4G
#SBATCH --time=2:00:00
#SBATCH --mail-type=ALL
python main.py
"""


def test_workdir_is_an_error_fixed_to_chdir() -> None:
    found = _found(BSC_WORKDIR, "HPC312")
    assert [f.line for f in found] == [4] and "renamed it --chdir" in found[0].message
    assert not _found(BSC_WORKDIR, "HPC313")
    fixed, _ = fix_script(BSC_WORKDIR)
    assert "#SBATCH --chdir=.\n" in fixed and not _found(fixed, "HPC312")


def test_share_is_an_error_fixed_to_oversubscribe() -> None:
    # sbatch 22.05: "unrecognized option '--share'"; Slurm renamed it --oversubscribe
    text = _job("--share")
    found = _found(text, "HPC312")
    assert len(found) == 1 and "renamed it --oversubscribe" in found[0].message and not _found(text, "HPC313")
    fixed, _ = fix_script(text)
    assert "#SBATCH --oversubscribe\n" in fixed and not _found(fixed, "HPC312")


@pytest.mark.parametrize("directive", ["--checkpoint=10", "--checkpoint-dir=/scratch/ckpt"])
def test_the_checkpoint_options_are_errors_without_a_replacement(directive: str) -> None:
    text = _job(directive)
    found = _found(text, "HPC312")
    assert len(found) == 1 and "remove the line" in found[0].message and found[0].fix is None
    assert not _found(text, "HPC313")


def test_an_option_glued_to_its_value_is_an_error_fixed_with_an_equals_sign() -> None:
    found = _found(UBC_MEM_TYPO, "HPC312")
    assert [f.line for f in found] == [3] and "write --mem=4G" in found[0].message
    assert not _found(UBC_MEM_TYPO, "HPC313")
    fixed, _ = fix_script(UBC_MEM_TYPO)
    assert "#SBATCH --mem=4G\n" in fixed and not _found(fixed, "HPC312")


@pytest.mark.parametrize("written,meant", [
    ("--mem-per-cpu-4G", "--mem-per-cpu=4G"), ("--time-1:00:00", "--time=1:00:00"), ("--gres-gpu:1", "--gres=gpu:1"),
    ("--nodes-2", "--nodes=2"),
])
def test_the_longest_option_before_the_value_is_meant(written: str, meant: str) -> None:
    found = _found(_job(written), "HPC312")
    assert len(found) == 1 and f"write {meant}" in found[0].message


@pytest.mark.parametrize("flag", ["--exclusive-user", "--nvmps", "--mail-digest"])
def test_a_site_option_that_is_no_glued_value_stays_information(flag: str) -> None:
    text = _job(flag)
    assert not _found(text, "HPC312") and len(_found(text, "HPC313")) == 1


# --- 4. --time=M:S on a job that only looks at the node ------------------------------------------------------------

# the Alliance's whole-GPU-node example (AbtinDjavadifar/ComputeCanada cedar_gpu_node_job.sh)
CEDAR_NVIDIA_SMI = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --ntasks-per-node=24
#SBATCH --exclusive
#SBATCH --mem=125G
#SBATCH --time=3:00
nvidia-smi
"""


@pytest.mark.parametrize("body", [
    "nvidia-smi\n", "module load cuda\nnvidia-smi\nhostname\n", "srun hostname\n",
    "apptainer exec --nv img_1.0.sif nvidia-smi\n", 'srun bash -c "hostname; nvidia-smi"\n',
])
def test_a_job_of_quick_checks_keeps_its_minutes(body: str) -> None:
    assert not _found(CEDAR_NVIDIA_SMI.replace("nvidia-smi\n", body), "HPC320")


@pytest.mark.parametrize("body", [
    "nvidia-smi\npython train.py\n", "srun apptainer exec --nv img_1.0.sif python train.py\n",
    "srun torchrun --nproc-per-node=4 train.py\n",
])
def test_hours_are_written_in_for_a_training_job(body: str) -> None:
    text = CEDAR_NVIDIA_SMI.replace("nvidia-smi\n", body)
    found = _found(text, "HPC320")
    assert len(found) == 1 and found[0].fix is not None
    assert "#SBATCH --time=3:00:00\n" in fix_script(text)[0]


@pytest.mark.parametrize("body", ["./run_case.sh\n", "srun ./xthi\n"])
def test_a_job_whose_work_is_unknown_is_warned_but_not_rewritten(body: str) -> None:
    text = CEDAR_NVIDIA_SMI.replace("nvidia-smi\n", body)
    found = _found(text, "HPC320")
    assert len(found) == 1 and found[0].fix is None
    assert "#SBATCH --time=3:00\n" in fix_script(text)[0]


# --- 5. the same option twice --------------------------------------------------------------------------------------

# JHU Rockfish (JHU-CLSP/turking-bench rockfish/ia1_serve.sh): a 72-hour job that ends up on the debug partition
ROCKFISH_TWO_PARTITIONS = """#!/bin/bash
#SBATCH --job-name=gpt4v
#SBATCH --ntasks=1
#SBATCH --partition=parallel
#
# Time format = HH:MM:SS, DD-HH:MM:SS
#SBATCH --time=72:00:00
#SBATCH --gres=gpu:4
#SBATCH -A ia1
#SBATCH --partition debug
#SBATCH --mail-type=FAIL
module load anaconda
ollama serve & sleep 300000
"""


def test_an_option_given_twice_names_both_lines_and_the_value_used() -> None:
    found = _found(ROCKFISH_TWO_PARTITIONS, "HPC330")
    assert len(found) == 1 and found[0].line == 10 and found[0].severity == "warning"
    assert "'debug' (line 10)" in found[0].message and "'parallel' (line 4)" in found[0].message
    assert "uses the last" in found[0].message


@pytest.mark.parametrize("directives", [
    ("-p gpu", "--partition=debug"), ("--part=gpu", "--partition=debug"), ("--time=1:00:00", "-t 2:00:00"),
])
def test_short_long_and_abbreviated_spellings_are_one_option(directives: tuple[str, ...]) -> None:
    assert len(_found(_job(*directives), "HPC330")) == 1


def test_two_gres_lines_are_shown_as_one_list() -> None:
    found = _found(_job("--gres=gpu:1", "--gres=lscratch:10"), "HPC330")
    assert len(found) == 1 and "--gres=gpu:1,lscratch:10" in found[0].message


@pytest.mark.parametrize("text", [
    _job("--partition=gpu", "--partition=gpu"),                     # the same value again
    _job("--mail-type=BEGIN", "--mail-type=END"),                   # sbatch adds them up: BEGIN,END
    _job("--exclusive", "--exclusive"),
    _job("--partition=gpu", "hetjob", "--partition=cpu",
         body="srun --het-group=0 python a.py : --het-group=1 python b.py\n"),   # each component its own
    _job("--partition=gpu", body="srun python train.py\n#SBATCH --partition=debug\n"),   # ignored: HPC501's
])
def test_no_warning_where_nothing_is_overridden(text: str) -> None:
    assert not _found(text, "HPC330")


def test_a_python_one_liner_is_a_quick_check_and_a_container_run_is_work() -> None:
    one_liner = 'python -c "import torch; print(torch.cuda.is_available())"\n'
    check = CEDAR_NVIDIA_SMI.replace("nvidia-smi\n", "nvidia-smi\n" + one_liner)
    assert not _found(check, "HPC320")
    run = CEDAR_NVIDIA_SMI.replace("nvidia-smi\n", "nvidia-smi\napptainer run --nv img_1.0.sif\n")
    assert [f.fix is not None for f in _found(run, "HPC320")] == [True]


@pytest.mark.parametrize("first, second, reported", [
    ("--time=01:00:00", "--time=60", False), ("-N 1", "--nodes=1-1", False),   # the same asked for two ways
    ("--time=01:00:00", "--time=30", True), ("-N 2", "--nodes=1-1", True),
])
def test_hpc330_compares_what_sbatch_makes_of_the_values(first: str, second: str, reported: bool) -> None:
    assert bool(_found(_job(first, second), "HPC330")) is reported


@pytest.mark.parametrize("flag,example", [("-N", "-N 1"), ("-t", "-t 01:00:00"), ("--nodes", "--nodes=1")])
def test_an_option_without_its_value_is_shown_as_sbatch_reads_it(flag, example):
    """getopt keeps the '=' of a short option's value (-N=2 gives sbatch the node count '=2'), so a short option's
    example has a space, a long one's an '='."""
    messages = [f.message for f in _found(_job(flag), "HPC310")]
    assert messages and all(f"e.g. {example}" in m for m in messages), messages
