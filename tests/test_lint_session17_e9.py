"""Session 17 (E9): lint follow-ups of audit A4.

- HPC107: $SLURM_GPUS_PER_NODE is reported only where its value reaches something that reads a number, not where it
  is printed, tested as text or reduced to its count; an untyped request split at a colon gives an empty count.
- HPC201/HPC220: a container step that shows GPU work (nvidia-smi, torch.cuda.is_available()) without --nv is the
  HPC201 error whatever the other steps do.
- HPC536: a template's <PLACEHOLDER> left in a command or an #SBATCH line; HPC000 names every placeholder.
- HPC138: a rendezvous variable set on the launch's own line is empty where the batch shell expands it, and
  $MASTER_ADDR/$MASTER_PORT reaching another program are followed too.
"""

from __future__ import annotations

import pytest

from hpcwidgets import parse_script
from hpcwidgets.errors import ParseError
from hpcwidgets.lint import lint


def only(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


# --------------------------------------------------------------------------------------------
# HPC107: where a typed $SLURM_GPUS_PER_NODE is used as a number

TYPED = "#!/bin/bash\n#SBATCH --gpus-per-node=a100:2\n#SBATCH --time=01:00:00\n"
UNTYPED = "#!/bin/bash\n#SBATCH --gpus-per-node=1\n#SBATCH --time=01:00:00\n"
LAUNCH = 'torchrun --standalone --nproc-per-node="$N" train.py\n'


@pytest.mark.parametrize("body", [
    'echo "GPUs: $SLURM_GPUS_PER_NODE"\ntorchrun --standalone --nproc-per-node="$SLURM_GPUS_ON_NODE" train.py\n',
    "N=$(echo $SLURM_GPUS_PER_NODE | cut -d: -f2)\n" + LAUNCH,
    "N=$(echo \"$SLURM_GPUS_PER_NODE\" | awk -F: '{print $NF}')\n" + LAUNCH,
    "N=$(awk -F':' '{print $2}' <<< \"$SLURM_GPUS_PER_NODE\")\n" + LAUNCH,
    "torchrun --standalone --nproc-per-node=${SLURM_GPUS_PER_NODE//a100:/} train.py\n",
    "if [[ $SLURM_GPUS_PER_NODE == *:* ]]; then N=${SLURM_GPUS_PER_NODE##*:}; else N=$SLURM_GPUS_PER_NODE; fi\n"
    + LAUNCH,
    # 07-rtx4080-awk-nf.sh of the audit: the whole value first, the count alone in the branch for a typed one
    "N=$SLURM_GPUS_PER_NODE\nif [[ $SLURM_GPUS_PER_NODE == *:* ]]; then\n"
    "    N=$(echo $SLURM_GPUS_PER_NODE | awk -F: '{print $NF}')\nfi\necho \"$N\"\n" + LAUNCH,
    "GPU_TYPE=$(echo $SLURM_GPUS_PER_NODE | awk -F: '{print $1}')\necho \"$GPU_TYPE\"\n",
    "srun --gpus-per-node=$SLURM_GPUS_PER_NODE python train.py\n",
])
def test_a_typed_value_printed_tested_or_reduced_to_its_count_is_fine(body: str) -> None:
    assert only(TYPED + body, "HPC107") == []


@pytest.mark.parametrize("body, line", [
    ('torchrun --standalone --nproc-per-node="$SLURM_GPUS_PER_NODE" train.py\n', 4),
    ("W=$((SLURM_GPUS_PER_NODE * 4))\n", 4),
    ('python train.py --gpus=$SLURM_GPUS_PER_NODE\n', 4),
    ('if [ "$SLURM_GPUS_PER_NODE" -gt 1 ]; then python train.py; fi\n', 4),
    ("srun bash -c 'python train.py --gpus $SLURM_GPUS_PER_NODE'\n", 4),
])
def test_a_typed_value_used_as_a_number_is_reported(body: str, line: int) -> None:
    found = only(TYPED + body, "HPC107")
    assert [f.line for f in found] == [line]
    assert "is a100:2 here" in found[0].message and "$SLURM_GPUS_ON_NODE" in found[0].message


def test_a_variable_holding_the_whole_value_is_followed_to_its_use() -> None:
    text = TYPED + "N=$SLURM_GPUS_PER_NODE\necho \"$N GPUs\"\n" + LAUNCH
    found = only(text, "HPC107")
    assert [f.line for f in found] == [6]    # not the assignment, not the echo: the launch
    assert "(through $N, set from it on line 4)" in found[0].message


def test_a_variable_holding_the_whole_value_and_never_used_is_left_alone() -> None:
    assert only(TYPED + "N=$SLURM_GPUS_PER_NODE\necho $N\n", "HPC107") == []


@pytest.mark.parametrize("body, line, shown", [
    ("export NGPUS=$SLURM_GPUS_PER_NODE\n", 4, "(exported as $NGPUS)"),
    ("NGPUS=$SLURM_GPUS_PER_NODE\nexport NGPUS\n", 5, "(through $NGPUS, set from it on line 4)"),
])
def test_a_variable_holding_the_whole_value_exported_to_the_programs_is_reported(body: str, line: int,
                                                                                  shown: str) -> None:
    found = only(TYPED + body, "HPC107")
    assert [f.line for f in found] == [line] and shown in found[0].message
    assert only(TYPED + body.replace("$SLURM_GPUS_PER_NODE", "${SLURM_GPUS_PER_NODE#*:}"), "HPC107") == []


def test_stripping_does_not_help_when_the_job_asks_for_no_gpus_per_node() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:2\nN=$(echo $SLURM_GPUS_PER_NODE | cut -d: -f2)\n" + LAUNCH
    found = only(text, "HPC107")
    assert [f.line for f in found] == [4] and "empty here" in found[0].message and "through $N" in found[0].message


@pytest.mark.parametrize("split", [
    "awk -F: '{print $2}'",
    "cut -s -d: -f2",
])
def test_an_untyped_request_split_at_a_colon_gives_an_empty_count(split: str) -> None:
    text = UNTYPED + f"N=$(echo $SLURM_GPUS_PER_NODE | {split})\n" + LAUNCH
    found = only(text, "HPC107")
    assert [f.line for f in found] == [4]
    assert "is empty" in found[0].message and "--gpus-per-node=1 names no GPU type" in found[0].message


@pytest.mark.parametrize("body", [
    "N=$(echo $SLURM_GPUS_PER_NODE | cut -d: -f2)\n" + LAUNCH,   # cut passes a line without a colon through
    "N=$(echo $SLURM_GPUS_PER_NODE | awk -F: '{print $NF}')\n" + LAUNCH,
    "N=$(echo $SLURM_GPUS_PER_NODE | awk -F: '{print $1}')\n" + LAUNCH,
    'torchrun --standalone --nproc-per-node="$SLURM_GPUS_PER_NODE" train.py\n',
])
def test_an_untyped_request_read_whole_is_fine(body: str) -> None:
    assert only(UNTYPED + body, "HPC107") == []


# --------------------------------------------------------------------------------------------
# HPC201 / HPC220: a step that shows GPU work needs --nv whatever the other steps do

GPU_JOB = "#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=00:10:00\n"
WITH_NV = "apptainer exec --nv pytorch.sif python train.py\n"


@pytest.mark.parametrize("program, shown", [
    ("nvidia-smi -L", "nvidia-smi queries the GPU driver"),
    ('python -c "import torch; assert torch.cuda.is_available()"', "torch.cuda.is_available()"),
    ('python3 -c "import jax; print(jax.devices())"', "jax.devices()"),
    ("python -c \"import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))\"",
     "tf.config.list_physical_devices()"),
    ("python -c \"import torch; torch.zeros(1).to('cuda')\"", "torch.zeros(1).to()"),
    ("bash -c 'echo start; nvidia-smi'", "nvidia-smi"),
])
def test_gpu_work_beside_a_step_with_the_flag_stays_an_error(program: str, shown: str) -> None:
    text = GPU_JOB + f"apptainer exec pytorch.sif {program}\n" + WITH_NV
    found = only(text, "HPC201")
    assert [f.line for f in found] == [4]
    assert shown in found[0].message and "the step on line 5 has --nv" in found[0].message
    assert found[0].fix is not None
    assert only(text, "HPC220") == []
    alone = only(GPU_JOB + f"apptainer exec pytorch.sif {program}\n", "HPC201")
    assert [f.line for f in alone] == [4] and "the step on line" not in alone[0].message


@pytest.mark.parametrize("program", [
    'tar -xf data.tar -C "$TMPDIR"',
    'python -c "import torch; print(torch.__version__, torch.version.cuda)"',
    'python -c "import torch.distributed as dist; print(dist.is_available())"',
    "python prepare.py",
])
def test_a_helper_beside_a_step_with_the_flag_stays_advice(program: str) -> None:
    text = GPU_JOB + f"apptainer exec pytorch.sif {program}\n" + WITH_NV
    assert only(text, "HPC201") == []
    assert [f.line for f in only(text, "HPC220")] == [4]


# --------------------------------------------------------------------------------------------
# HPC536: a template's placeholder left in; HPC000 names them all

def test_a_placeholder_that_parses_is_an_error_in_commands_and_sbatch_lines() -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --account=<project>\n"
            "python train.py --data <DATA_DIR> --epochs 10\n")
    found = only(text, "HPC536")
    assert [(f.line, f.severity) for f in found] == [(3, "error"), (4, "error")]
    assert "<project> is a placeholder" in found[0].message and "(--account=<project>)" in found[0].message
    assert "<DATA_DIR> is a placeholder" in found[1].message and "a file named DATA_DIR" in found[1].message


def test_every_placeholder_of_a_line_is_named_once() -> None:
    text = "#!/bin/bash\npython train.py --data <DATA_DIR> --out <your dir>/run --epochs <N> --seed 1\n"
    found = only(text, "HPC536")
    assert len(found) == 1
    assert "<DATA_DIR>, <your dir> and <N> are placeholders" in found[0].message


@pytest.mark.parametrize("body", [
    "sort < input.txt > out.txt 2>&1",
    "sort <input.txt >out.txt",
    "sort <in>out",
    "cat <<EOF > config.yaml\nlabel: <b>x</b> <NAME>\nEOF",
    "diff <(ls a) <(ls b)",
    'grep x <<< "$LINE"',
    'echo "usage: train.py <config>"',
    "python train.py --note '<DATA_DIR>'",
    "python train.py  # then: --data <DATA_DIR> (a comment)",
])
def test_real_redirections_and_quoted_text_are_left_alone(body: str) -> None:
    assert only("#!/bin/bash\n#SBATCH --time=01:00:00\n" + body + "\n", "HPC536") == []


def test_an_sbatch_placeholder_is_reported_when_the_commands_cannot_be_read() -> None:
    text = "#!/bin/bash\n#SBATCH --account=<project>\nsrun python3 myprog.py <options>\n"
    assert {(f.code, f.line) for f in lint(text)} == {("HPC536", 2), ("HPC000", 3)}
    assert "HPC536" in only(text, "HPC000")[0].message   # it says which rules still run


def test_hpc000_names_every_placeholder_first_ones_first() -> None:
    text = ("#!/bin/bash\n#SBATCH --account=<project>\n# usage: <NOT_THIS>\n"
            "apptainer exec --nv <image>.sif python train.py --out <OUT>\n")
    message = only(text, "HPC000")[0].message
    assert "`<image>`, `<OUT>` (line 4) look like placeholders" in message
    assert "<NOT_THIS>" not in message and "<project>" not in message   # comments, and HPC536's own line
    with pytest.raises(ParseError) as caught:
        parse_script(text)
    assert "`<image>`" in str(caught.value)


def test_hpc000_counts_the_placeholders_it_does_not_name() -> None:
    lines = "".join(f"  --opt{i} <VALUE_{i}> \\\n" for i in range(9))
    message = only(f"#!/bin/bash\npython train.py \\\n{lines}  <LAST>\n", "HPC000")[0].message
    assert message.startswith("cannot read the script: `<VALUE_0>` (line 3); `<VALUE_1>` (line 4)")
    assert "and 4 more look like placeholders" in message


def test_hpc000_keeps_the_single_placeholder_message() -> None:
    message = only("#!/bin/bash\nsrun python3 myprog.py <options>\n", "HPC000")[0].message
    assert "`<options>` looks like a placeholder from a template: replace it" in message


@pytest.mark.parametrize("directive", ['--comment="<ECCV deadline>"', "--job-name=<name>", "-J <name>"])
def test_the_free_text_of_a_job_name_or_comment_is_left_alone(directive: str) -> None:
    assert only(f"#!/bin/bash\n#SBATCH {directive}\n#SBATCH --time=01:00:00\npython t.py\n", "HPC536") == []


def test_a_quoted_sbatch_placeholder_is_still_one() -> None:
    found = only("#!/bin/bash\n#SBATCH --qos='<qos>' --partition=<partition>\npython t.py\n", "HPC536")
    assert [f.line for f in found] == [2] and "<qos> and <partition> are placeholders" in found[0].message


# --------------------------------------------------------------------------------------------
# HPC138: set on the launch's own line, and other programs

NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --time=01:00:00\n"
TORCHRUN = ('srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d '
            '--rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" train.py')


@pytest.mark.parametrize("line, how", [
    ("MASTER_ADDR=$(hostname) MASTER_PORT=29500 " + TORCHRUN, "an assignment before the command"),
    (TORCHRUN.replace("srun ", "srun --export=ALL,MASTER_ADDR=$(hostname),MASTER_PORT=29500 "), "srun's --export"),
])
def test_a_variable_set_on_the_launch_line_is_empty_where_the_batch_shell_expands_it(line: str, how: str) -> None:
    found = only(NODES + line + "\n", "HPC138")
    assert [f.line for f in found] == [5]
    message = found[0].message
    assert f"$MASTER_ADDR and $MASTER_PORT are set on this same command line ({how})" in message
    assert "Simple Command Expansion" in message and "on a line of their own before the launch" in message


@pytest.mark.parametrize("body", [
    # each task's shell expands it, after srun has put it in the task's environment
    "MASTER_ADDR=$(hostname) MASTER_PORT=29500 srun bash -c 'torchrun --nnodes=2 --nproc-per-node=4 "
    "--rdzv-backend=c10d --rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT train.py'",
    "export MASTER_ADDR=$(hostname) MASTER_PORT=29500\n" + TORCHRUN,
    "export MASTER_ADDR=$(hostname)\nexport MASTER_PORT=1\nMASTER_PORT=29500 " + TORCHRUN,
    "export MASTER_ADDR=$(hostname) MASTER_PORT=29500\nsrun python train.py --dist-url tcp://$MASTER_ADDR:$MASTER_PORT",
    'echo "rendezvous at $MASTER_ADDR:$MASTER_PORT"\nsrun python train.py',
    "srun python train.py --host $MY_HOST",   # a name of the program's own
])
def test_variables_set_before_the_launch_or_for_the_tasks_are_fine(body: str) -> None:
    assert only(NODES + body + "\n", "HPC138") == []


def test_an_unset_port_reaching_another_program_is_reported() -> None:
    text = NODES + "export MASTER_ADDR=$(hostname)\nsrun python train.py --dist-url tcp://$MASTER_ADDR:$MASTER_PORT\n"
    found = only(text, "HPC138")
    assert [f.line for f in found] == [6]
    assert found[0].message.startswith("--dist-url tcp://$MASTER_ADDR:$MASTER_PORT: nothing in the script sets "
                                       "$MASTER_PORT")
    assert found[0].message.endswith("export MASTER_PORT=29500")


def test_deepspeeds_master_addr_is_followed_and_named_with_its_option() -> None:
    found = only(NODES + "srun deepspeed --master_addr $MASTER_ADDR --master_port 29500 train.py\n", "HPC138")
    assert [f.line for f in found] == [5]
    assert found[0].message.startswith("--master_addr $MASTER_ADDR: nothing in the script sets $MASTER_ADDR")
    assert 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in found[0].message

