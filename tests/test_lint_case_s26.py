"""Launches in a ``case`` item that cannot run for the job the #SBATCH lines ask for are not judged against it.

``case "$SLURM_NNODES" in 1) torchrun --standalone …;; *) srun torchrun … --rdzv-endpoint=…;; esac`` holds a launch
for each size of job, as an ``if`` on the node count does; lint judges the one that runs.
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import Context
from hpcwidgets.lint.catalogue import condition_holds, steps
from hpcwidgets.parse.lexer import case_branches, lex_script
from hpcwidgets.parse.script import branch_conditions, read_script
from test_lint_branches import MULTI, SINGLE, codes, job


def ran(text: str) -> list[int]:
    """The lines of the steps lint judges for the job ``text`` asks for."""
    return [s.line for s in steps(Context(read_script(text)))]


def adaptive(nodes: str, subject: str = '"$SLURM_NNODES"') -> str:
    return job(nodes, f"case {subject} in\n  1)\n    {SINGLE}\n    ;;\n  *)\n    {MULTI}\n    ;;\nesac")


def test_the_lexer_gives_each_item_its_patterns_and_commands():
    text = 'case "$N" in\n  1) a ;;\n  (2|3)\n    b\n    ;;\n  *) c\nesac\n'
    command = lex_script(text).commands[0]
    items = case_branches(command)
    assert [cond for cond, _, _ in items] == ['case "$N" in 1', 'case "$N" in 2|3', 'case "$N" in *']
    assert [text[a:b].strip() for _, a, b in items] == ["a", "b", "c"]
    assert case_branches(lex_script("if true; then a; fi\n").commands[0]) == ()


@pytest.mark.parametrize("terminator", [";&", ";;&"])
def test_items_that_run_on_into_the_next_are_not_read(terminator):
    text = f'case "$N" in\n  1) a {terminator}\n  *) b ;;\nesac\n'
    assert case_branches(lex_script(text).commands[0]) == ()


def test_multi_node_item_of_a_one_node_job_is_not_judged():
    assert "HPC106" not in codes(adaptive("1"))
    # the same launch where it runs for the job: a one-node torchrun on a fixed port
    assert "HPC106" in codes(job("1", MULTI.replace("  ", "")))


def test_one_node_item_of_a_two_node_job_is_not_judged():
    assert "HPC110" not in codes(adaptive("2"))
    assert "HPC110" in codes(adaptive("2", subject='"$MODE"'))  # a subject lint cannot tell: both items checked


# 12 nodes: no item runs (bash matches [4-9]* against "12", whose first digit is 1)
@pytest.mark.parametrize("nodes,runs", [("1", [7]), ("2", [9]), ("3", [9]), ("4", [11]), ("12", []),
                                        ("2-4", [7, 9, 11])])
def test_the_item_whose_patterns_match_runs(nodes, runs):
    text = job(nodes, "case $SLURM_JOB_NUM_NODES in\n"
                      "  1) torchrun --standalone --nproc-per-node=2 a.py ;;\n"
                      "  2|3)\n    torchrun --standalone --nproc-per-node=2 b.py ;;\n"
                      "  [4-9]*)\n    torchrun --standalone --nproc-per-node=2 c.py ;;\n"
                      "esac")
    assert ran(text) == runs


def test_an_earlier_item_that_matches_keeps_the_later_ones_from_running():
    text = job("1", "case $SLURM_NNODES in\n  1) torchrun --standalone --nproc-per-node=2 a.py ;;\n"
                    "  *) torchrun --standalone --nproc-per-node=2 b.py ;;\nesac")
    assert ran(text) == [7]
    conds = branch_conditions(read_script(text).lexed.commands, text.index("b.py"))
    assert conds == (("case $SLURM_NNODES in 1", False), ("case $SLURM_NNODES in *", True))


@pytest.mark.parametrize("patterns,held", [
    ("1", True), ("2", False), ("1|2", True), ("[0-1]", True), ("?", True), ("1*", True), ("*", True),
    ("'1'", True), ('"2"', False), ("'[1]'", None), ("$ONE", None), ("\\1", None), ("a'1'", None),
])
def test_patterns_are_matched_as_bash_globs(patterns, held):
    ctx = Context(read_script(job("1", "true")))
    assert condition_holds(ctx, f"case $SLURM_NNODES in {patterns}", 7) is held


def test_a_default_item_holds_even_where_the_subject_is_unknown():
    ctx = Context(read_script(job("1", "true")))
    assert condition_holds(ctx, 'case "$MODE" in *', 7) is True
    assert condition_holds(ctx, 'case "$MODE" in fast', 7) is None


def test_a_case_on_the_gpus_of_a_node_in_a_function():
    text = job("1", "launch() {\n  case ${SLURM_GPUS_ON_NODE:-1} in\n"
                    "    1) srun python train.py ;;\n"
                    "    *) torchrun --standalone --nproc-per-node=\"$SLURM_GPUS_ON_NODE\" train.py ;;\n"
                    "  esac\n}\nlaunch")
    assert ran(text) == [9]   # 2 GPUs per node: the torchrun item
    one_gpu = text.replace("--gres=gpu:2", "--gres=gpu:1")
    assert ran(one_gpu) == [8]
