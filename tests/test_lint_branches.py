"""Launches in an ``if`` branch that cannot run for the job the #SBATCH lines ask for are not judged against it.

A script that adapts to its size (``if [ "$SLURM_NNODES" -gt 1 ]; then srun torchrun … --rdzv-endpoint=…;
else torchrun --standalone …; fi``) holds a launch for each size; lint judges the one that runs.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import Context, lint
from hpcwidgets.lint.catalogue import condition_holds, steps
from hpcwidgets.parse.lexer import lex_script
from hpcwidgets.parse.script import branch_conditions, read_script

MULTI = ('head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
         '  srun torchrun --nnodes="$SLURM_NNODES" --nproc-per-node=2 --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d '
         '--rdzv-endpoint="$head_node:29500" train.py')
SINGLE = "torchrun --standalone --nnodes=1 --nproc-per-node=2 train.py"


def job(nodes: str, body: str) -> str:
    return (f"#!/bin/bash\n#SBATCH --nodes={nodes}\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:2\n"
            f"#SBATCH --time=01:00:00\n{body}\n")


def codes(text: str) -> set[str]:
    return {f.code for f in lint(text)}


def test_multi_node_branch_of_a_one_node_job_is_not_judged():
    adaptive = job("1", f'if [ "$SLURM_NNODES" -gt 1 ]; then\n  {MULTI}\nelse\n  {SINGLE}\nfi')
    assert "HPC106" not in codes(adaptive)
    # the same launch where it does run: a one-node torchrun on a fixed port
    assert "HPC106" in codes(job("1", MULTI.replace("  ", "")))
    # and under a condition lint cannot judge it is checked as before
    assert "HPC106" in codes(job("1", f'if [ -n "$MULTI" ]; then\n  {MULTI}\nelse\n  {SINGLE}\nfi'))


def test_one_node_branch_of_a_two_node_job_is_not_judged():
    adaptive = job("2", f'if [ "$SLURM_NNODES" -eq 1 ]; then\n  {SINGLE}\nelse\n  {MULTI}\nfi')
    assert "HPC110" not in codes(adaptive)
    unknown = job("2", f'if [ "$SMALL" = yes ]; then\n  {SINGLE}\nelse\n  {MULTI}\nfi')
    assert "HPC110" in codes(unknown)  # the batch shell's torchrun on the first node only


def test_the_branch_that_runs_is_still_judged():
    """In a two-node job the else branch runs: its launch in the batch shell is reported."""
    text = job("2", f'if [ "$SLURM_NNODES" -eq 1 ]; then\n  {SINGLE}\nelse\n  {SINGLE}\nfi')
    found = [f for f in lint(text) if f.code == "HPC110"]
    assert [f.line for f in found] == [9]


@pytest.mark.parametrize("nodes,runs", [("1", [7]), ("2", [9]), ("3", [11]), ("2-4", [7, 9, 11])])
def test_elif_chain_runs_one_branch(nodes, runs):
    text = job(nodes, "if (( SLURM_NNODES == 1 )); then\n  torchrun --standalone --nproc-per-node=2 a.py\n"
                      "elif [[ $SLURM_NNODES -eq 2 ]]; then\n  torchrun --standalone --nproc-per-node=2 b.py\n"
                      "else\n  torchrun --standalone --nproc-per-node=2 c.py\nfi")
    ctx = Context(read_script(text))
    assert [s.line for s in steps(ctx)] == runs


def test_nested_conditions_and_a_variable_that_holds_the_count():
    text = job("1", 'nn=$SLURM_NNODES\nfor i in 1 2; do\n  if test "$nn" -gt 1; then\n'
                    '    if [ "$i" -eq 1 ]; then\n      torchrun --nnodes=1 --nproc-per-node=2 '
                    '--rdzv-endpoint=localhost:29500 train.py\n    fi\n  fi\ndone')
    assert "HPC106" not in codes(text)
    assert "HPC106" in codes(text.replace('test "$nn" -gt 1', 'test "$nn" -eq 1'))


def test_branch_conditions_name_each_branch():
    text = "if [ $A -eq 1 ]; then\n  x\nelif (( B > 2 )); then\n  if f; then y; fi\nelse\n  z\nfi\n"
    commands = lex_script(text).commands
    at = text.index
    assert branch_conditions(commands, at("x")) == ((" [ $A -eq 1 ]; ", True),)
    assert branch_conditions(commands, at("y")) == ((" [ $A -eq 1 ]; ", False), (" (( B > 2 )); ", True),
                                                     (" f; ", True))
    assert branch_conditions(commands, at("z")) == ((" [ $A -eq 1 ]; ", False), (" (( B > 2 )); ", False))
    loop = "while true; do\n  x\ndone\n"
    assert branch_conditions(lex_script(loop).commands, loop.index("x")) == ()


@pytest.mark.parametrize("condition,holds", [
    ('[ "$SLURM_NNODES" -gt 1 ];', False),
    ("[[ $SLURM_JOB_NUM_NODES == 1 ]]", True),
    ("test $SLURM_NNODES -ne 1", False),
    ("((SLURM_NNODES > 1))", False),
    ("(( ${SLURM_NNODES} >= 1 ))", True),
    ("! [ $SLURM_NNODES -eq 1 ]", False),
    ("[ 2 -le ${SLURM_NNODES} ]", False),
    ("[ $SLURM_NTASKS -gt 2 ]", True),       # --ntasks=3
    ("[ $SLURM_NNODES -lt $SLURM_NTASKS ]", True),
    ('[ "${SLURM_NNODES:-1}" -gt 1 ]', False),  # a default counts for nothing where the job sets the variable
    ("[ ${OTHER:-1} -gt 1 ]", None),
    ("[ $OTHER -gt 1 ]", None),              # a variable the job does not fix
    ("[ -f data.tar ]", None),
    ("[ $SLURM_NNODES -gt 1", None),         # no closing bracket: no test bash runs
    ('[ "$SLURM_NNODES" -gt 1 ] && [ -f x ]', None),
])
def test_condition_holds(condition, holds):
    ctx = Context(read_script("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=3\necho\n"))
    assert condition_holds(ctx, condition, 4) is holds


def test_a_node_range_fixes_no_count():
    ctx = Context(read_script("#!/bin/bash\n#SBATCH --nodes=1-2\necho\n"))
    assert condition_holds(ctx, "[ $SLURM_NNODES -gt 1 ]", 3) is None


def test_a_variable_set_from_a_slurm_variable_with_a_default():
    """NGPU=${SLURM_GPUS_ON_NODE:-1}: the reader keeps the value as written; the count is the job's GPUs per node."""
    def script(gpus: int) -> str:
        return (f"#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:{gpus}\n#SBATCH --time=01:00:00\n"
                "NGPU=${SLURM_GPUS_ON_NODE:-1}\nif [ \"$NGPU\" -gt 1 ]; then\n"
                "  torchrun --nnodes=1 --nproc-per-node=\"$NGPU\" --rdzv-endpoint=localhost:29500 train.py\n"
                "else\n  apptainer exec --nv img.sif python train.py\nfi\n")
    ctx = Context(read_script(script(1)))
    assert condition_holds(ctx, '[ "$NGPU" -gt 1 ]', 6) is False
    assert [s.line for s in steps(ctx)] == [9]
    assert "HPC106" in codes(script(2)) and "HPC106" not in codes(script(1))


def test_a_launch_in_a_function_in_an_if_is_read_once_per_compound():
    """A function's body ({ … }) starts where the function does: each compound is read under its own text."""
    text = job("1", 'train() {\n  if [ "$SLURM_NNODES" -gt 1 ]; then\n    ' + MULTI.replace("\n  ", "\n    ")
               + '\n  else\n    ' + SINGLE + '\n  fi\n}\ntrain')
    parsed = read_script(text)
    commands = parsed.lexed.commands
    read: dict = {}
    conditions = [branch_conditions(commands, s.command.offset, read) for s in parsed.steps_as_run]
    assert conditions == [((' [ "$SLURM_NNODES" -gt 1 ]; ', True),), ((' [ "$SLURM_NNODES" -gt 1 ]; ', False),)]
    assert len(read) == 3  # the function, its { } body and the if
    assert "HPC106" not in codes(text)


@pytest.mark.parametrize("line, judged", [
    (f'[ "$SLURM_NNODES" -gt 1 ] && {MULTI.splitlines()[1].strip()}', False),   # runs only on several nodes
    (f'[ "$SLURM_NNODES" -eq 1 ] || {MULTI.splitlines()[1].strip()}', False),   # likewise
    (f'[ "$SLURM_NNODES" -eq 1 ] && {MULTI.splitlines()[1].strip()}', True),    # runs in this one-node job
    (f'[ -f ready ] && {MULTI.splitlines()[1].strip()}', True),                 # a test lint cannot judge
    (f'true && [ "$SLURM_NNODES" -gt 1 ] && {MULTI.splitlines()[1].strip()}', True),  # a longer list: left alone
])
def test_a_test_joined_to_the_launch_by_and_or_or(line, judged):
    text = job("1", f'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n{line}')
    assert ("HPC106" in codes(text)) is judged
