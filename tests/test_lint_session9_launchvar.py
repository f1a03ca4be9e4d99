"""Launch commands held in a shell variable (``LAUNCHER="torchrun …"; srun $LAUNCHER train.py``, Hugging Face
accelerate's ``srun $CMD``): the linter reads the step through the variable, as bash splits it; the model read
back keeps the script's own form, and no fix rewrites the step line from the variable's words."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import Context, lint, rules
from hpcwidgets.parse import parse_script
from hpcwidgets.parse.script import _split_held, read_script
from hpcwidgets.render import render
from hpcwidgets.spec._words import Verbatim

HEAD = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node={tasks}\n#SBATCH --gres=gpu:4\n"

# huggingface/accelerate examples/slurm/submit_multinode.sh: no --machine_rank, no config file
HF_MULTINODE = """#!/bin/bash
#SBATCH --job-name=multinode
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=160
#SBATCH --time=01:59:00
export GPUS_PER_NODE=4
head_node_ip=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1)
export LAUNCHER="accelerate launch \\
    --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \\
    --num_machines $SLURM_NNODES \\
    --rdzv_backend c10d \\
    --main_process_ip $head_node_ip \\
    --main_process_port 29500 \\
    "
export SCRIPT="complete_nlp_example.py"
export CMD="$LAUNCHER $SCRIPT"
srun $CMD
"""

TORCHRUN = "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head_node:29500"
TORCHRUN_IN_VAR = HEAD.format(tasks=4) + f"""head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
LAUNCHER="{TORCHRUN}"
srun $LAUNCHER train.py
"""

ACCELERATE_BASH_C = HEAD.format(tasks=1) + """head_node_ip=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
LAUNCHER="accelerate launch --multi_gpu --num_processes 8 --num_machines 2 --main_process_ip $head_node_ip \\
  --main_process_port 29500"
SCRIPT=train.py
srun bash -c "$LAUNCHER --machine_rank \\$SLURM_NODEID $SCRIPT"
"""


def _codes(text: str) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in lint(text)]


def test_hf_multinode_example_reports_the_missing_machine_rank_at_the_srun_line():
    found = [f for f in lint(HF_MULTINODE) if f.code == "HPC116"]
    assert [f.line for f in found] == [19]
    assert "--num_machines 4" in found[0].message and "without --machine_rank" in found[0].message
    assert "read from $CMD (set on line 18)" in found[0].message
    assert found[0].fix is None


def test_torchrun_in_a_variable_started_per_task_is_reported_and_named():
    found = [f for f in lint(TORCHRUN_IN_VAR) if f.code == "HPC101"]
    assert [f.line for f in found] == [7]
    assert "read from $LAUNCHER (set on line 6)" in found[0].message


def test_no_fix_rewrites_the_srun_line_from_the_variable():
    # the rules' own fixes for a step read through $LAUNCHER are off (rebuilding it would write the variable's words)
    parsed = read_script(TORCHRUN_IN_VAR)
    assert [(f.line, f.fix) for f in rules()["HPC101"].check(Context(parsed))] == [(7, None)]
    fixed, applied = fix_script(TORCHRUN_IN_VAR)
    assert fixed == TORCHRUN_IN_VAR and applied == []


def test_a_variable_holding_a_substitution_inside_another_still_blocks_the_fix():
    # CMD holds $L, whose value has $((…)): the plain resolver cannot see it splits, the reader does
    text = HEAD.format(tasks=4) + ('L="torchrun --nnodes=2 --nproc-per-node=$((2 * 2)) --rdzv-backend=c10d '
                                   '--rdzv-endpoint=n1:29500"\nCMD="$L"\nsrun $CMD train.py\n')
    parsed = read_script(text)
    assert parsed.may_split(parsed.steps[0].command.words[1], 7)
    assert [(f.line, f.fix) for f in rules()["HPC101"].check(Context(parsed))] == [(7, None)]


def test_findings_the_step_has_as_written_keep_their_message_and_fix():
    hpc309 = next(f for f in lint(HF_MULTINODE) if f.code == "HPC309")
    assert "read from" not in hpc309.message
    assert hpc309.fix is not None and hpc309.fix.text == 'srun --cpus-per-task="$SLURM_CPUS_PER_TASK" $CMD'
    assert any(f.code == "HPC116" for f in lint(HF_MULTINODE))


def test_bash_c_script_gets_the_text_the_batch_shell_puts_in_it():
    assert "HPC116" not in [c for c, _ in _codes(ACCELERATE_BASH_C)]  # each node's rank: \$SLURM_NODEID
    broken = ACCELERATE_BASH_C.replace(" --machine_rank \\$SLURM_NODEID", "")
    assert ("HPC116", 9) in _codes(broken)
    step = read_script(broken).steps_as_run[0]
    assert step.through == (("$LAUNCHER", 6),) and step.command.words[3].raw == '"$LAUNCHER $SCRIPT"'


def test_torchrun_in_a_bash_c_variable_is_read():
    text = TORCHRUN_IN_VAR.replace("srun $LAUNCHER train.py", 'srun bash -c "$LAUNCHER train.py"')
    assert ("HPC101", 7) in _codes(text)


def test_a_batch_shell_launch_held_in_a_variable_is_read():
    text = HEAD.format(tasks=1) + 'LAUNCHER="torchrun --nnodes=2 --nproc-per-node=4"\n$LAUNCHER train.py\n'
    assert ("HPC110", 6) in _codes(text)


@pytest.mark.parametrize("launcher, code", [
    ("accelerate launch --multi_gpu --num_processes 8 --num_machines 2", "HPC110"),
    ("deepspeed --num_nodes 2 --num_gpus 4", "HPC110"),
])
def test_a_batch_shell_accelerate_or_deepspeed_held_in_a_variable_is_read(launcher, code):
    """accelerate and deepspeed are no step the models read: the command that runs them through a variable is
    read as bash splits it all the same, and the finding names the variable."""
    text = HEAD.format(tasks=1) + f'LAUNCHER="{launcher}"\n$LAUNCHER train.py\n'
    found = [f for f in lint(text) if f.code == code]
    assert [f.line for f in found] == [6] and "[the launch is read from $LAUNCHER (set on line 5)]" in found[0].message
    assert found[0].fix is None
    written = text.replace("$LAUNCHER train.py", f"{launcher} train.py")
    assert [f.line for f in lint(written) if f.code == code] == [6]  # the same finding as when written out
    quoted = text.replace("$LAUNCHER train.py", '"$LAUNCHER" train.py')  # one word: no such program
    assert code not in [c for c, _ in _codes(quoted)]


def test_a_step_in_a_loop_sees_the_assignment_before_it():
    text = TORCHRUN_IN_VAR.replace("srun $LAUNCHER train.py",
                                   "for s in 1 2; do\n  srun $LAUNCHER train.py --seed $s\ndone")
    assert ("HPC101", 8) in _codes(text)


SET = f'LAUNCHER="{TORCHRUN}"\n'
UNSURE = {
    # "$LAUNCHER" is one word: srun would look for a program named "torchrun --nnodes=2 …"
    "quoted": SET + 'srun "$LAUNCHER" train.py\n',
    # set only in an if, or set again in one: the value depends on what ran
    "only in an if": 'if [ -n "$BIG" ]; then\n  ' + SET + 'fi\nsrun $LAUNCHER train.py\n',
    "again in an if": SET + 'if [ -n "$BIG" ]; then\n  LAUNCHER="python"\nfi\nsrun $LAUNCHER train.py\n',
    # an append: the value is not the last assignment's alone
    "appended": SET + 'LAUNCHER+=" --max-restarts=1"\nsrun $LAUNCHER train.py\n',
    # a function defined before the assignment runs with whatever the variable holds when it is called
    "function": 'run() {\n  srun $LAUNCHER train.py\n}\n' + SET + 'run\n',
}


@pytest.mark.parametrize("case", sorted(UNSURE))
def test_a_variable_the_reader_cannot_be_sure_of_is_left_alone(case):
    sure = HEAD.format(tasks=4) + SET + "srun $LAUNCHER train.py\n"
    assert ("HPC101", 6) in _codes(sure)  # the same launch, read through one plain assignment
    text = HEAD.format(tasks=4) + UNSURE[case]
    assert "HPC101" not in [c for c, _ in _codes(text)]
    assert read_script(text).split_steps is None


def test_parse_keeps_the_scripts_own_form():
    parsed = read_script(TORCHRUN_IN_VAR)
    assert parsed.steps[0].chain.program == ("$LAUNCHER", "train.py")
    assert parsed.steps_as_run[0].chain.launcher.nproc_per_node == "4"
    assert "srun $LAUNCHER train.py" in render(parse_script(TORCHRUN_IN_VAR), validate=False)
    assert "srun $CMD" in render(parse_script(HF_MULTINODE), validate=False)


def test_held_values_split_as_bash_splits_them():
    assert _split_held("accelerate launch \n --num_processes $((N * G)) --ip $(hostname -s)") == [
        "accelerate", "launch", "--num_processes", "$((N * G))", "--ip", "$(hostname -s)"]
    assert _split_held("python *.py") is None  # bash would expand the glob
    assert _split_held("a 'b c'") == ["a", "'b", "c'"]  # quotes in a value are text, not quoting
    step = read_script(HF_MULTINODE).steps_as_run[0]
    program = step.chain.program
    assert program[:2] == ("accelerate", "launch") and program[-1] == "complete_nlp_example.py"
    assert isinstance(program[3], Verbatim) and str(program[3]) == "$((SLURM_NNODES * GPUS_PER_NODE))"
    assert read_script(TORCHRUN_IN_VAR).steps_as_run[0].chain.launcher.rdzv_endpoint == "$head_node:29500"
