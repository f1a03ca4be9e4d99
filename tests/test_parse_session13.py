"""Session 13: the script reader gives the text of a variable kept as written (``head=${nodes[0]}``), a function's
body followed by ``&&`` yields its commands, HPC530 finds traps through the reader instead of the lines' text, and
HPC511 sees the work run in the foreground by another shell (``bash train.sh``)."""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.parse.lexer import lex_script
from hpcwidgets.parse.script import _walk, read_script


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text) if f.code == code]


# --- ParsedScript.resolve_written: where a value kept as written comes from -----------------------------------

NODES = """#!/bin/bash
nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
head=${nodes[0]}
head_node=$head
addr="$(hostname -i)"
srun -w "$head_node" hostname
"""


@pytest.mark.parametrize("value, written", [
    ("$head_node", "${nodes[0]}"),          # through a plain variable to one kept as written
    ("${head}:6379", "${nodes[0]}:6379"),
    ("$addr", "$(hostname -i)"),             # the quotes of "$(…)" go, as bash removes them
    ("$nodes", "$nodes"),                    # an array is no one value
    ("$SLURM_JOB_ID", "$SLURM_JOB_ID"),      # not set by the script
])
def test_resolve_written_puts_in_the_text_of_values_kept_as_written(value, written):
    assert read_script(NODES).resolve_written(value, 6) == written


def test_resolve_still_leaves_a_value_it_cannot_know_a_reference():
    # callers of resolve take an unchanged reference for "known only when the job runs"
    parsed = read_script(NODES)
    assert parsed.resolve("$head_node", 6) == "$head" and parsed.resolve("$addr", 6) == "$addr"


RAY = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
head=${{nodes[0]}}
head_node="$head"
srun --nodes=1 --ntasks=1 -w "{head}" ray start --head --port=6379 --block &
for ((i = 1; i < 4; i++)); do
    srun --nodes=1 --ntasks=1 -w "${{nodes[$i]}}" ray start --address "$head_node:6379" --block &
done
sleep 10
python train_with_ray.py
"""


@pytest.mark.parametrize("head", ["$head_node", "${head_node}", "$head"])
def test_hpc518_follows_the_head_node_through_variables(head):
    assert found(RAY.format(head=head), "HPC518") == []


def test_hpc518_still_reports_steps_pinned_to_one_node():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=1\nhere=$(hostname)\n"
            "for s in 0 1 2 3; do\n  srun -n 1 -w \"$here\" python t.py $s &\ndone\nwait\n")
    assert found(text, "HPC518")


# --- a function's body on one line ----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "f() { trap 'x' USR1; srun a; } && f\n",
    "function f { trap 'x' USR1; srun a; } || exit 1\n",
    "f() ( trap 'x' USR1; srun a ) | tee log\n",
    "f() { trap 'x' USR1; srun a; }; f\n",
])
def test_a_one_line_function_body_yields_its_commands(text):
    seen = [(c.line, c.text.strip(" ;\n")) for c, inside in _walk(lex_script(text).commands) if c.kind == "simple"]
    assert seen[:2] == [(1, "trap 'x' USR1"), (1, "srun a")]


SIGNAL = "#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --requeue\n#SBATCH --signal=B:USR1@60\n"


@pytest.mark.parametrize("body", [
    "setup() { trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1; } && setup\nsrun python train.py &\nwait\n",
    "function setup { trap 'scontrol requeue \"$SLURM_JOB_ID\"' SIGUSR1; }\nsetup\nsrun python train.py &\nwait\n",
    "if [ -n \"$SLURM_JOB_ID\" ]; then trap 'scontrol requeue \"$SLURM_JOB_ID\"' 10; fi\nsrun python t.py &\nwait\n",
])
def test_hpc530_finds_a_trap_in_a_body(body):
    assert found(SIGNAL + body, "HPC530") == []


@pytest.mark.parametrize("body", [
    "srun bash -c 'trap \"\" USR1; python train.py'\n",   # the child shell's trap: the batch shell still dies
    "echo 'to stop early: trap handler USR1'\nsrun python train.py\n",
    "# trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1\nsrun python train.py\n",
])
def test_hpc530_is_not_fooled_by_trap_written_where_the_batch_shell_does_not_run_it(body):
    assert len(found(SIGNAL + body, "HPC530")) == 1


# --- HPC511: the work run in the foreground by another shell --------------------------------------------------

TRAPPED = ("#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --signal=B:USR1@120\n#SBATCH --requeue\n"
           "trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1\n")


@pytest.mark.parametrize("work, name", [
    ("bash train.sh", "bash train.sh"),
    ("bash ${SCRIPT} --epochs 3", "bash ${SCRIPT}"),
    ("./run.sh", "./run.sh"),
    ("sh -c 'python train.py'", "sh -c"),
    ("time bash train.sh | tee train.log", "bash train.sh"),
])
def test_hpc511_sees_a_script_run_in_the_foreground(work, name):
    hits = found(TRAPPED + work + "\n", "HPC511")
    assert len(hits) == 1 and hits[0][0] == 6
    assert f"but {name} runs in the foreground" in hits[0][1] and f"({name} … & then wait)" in hits[0][1]
    assert "a trap inside the script does not help, as B: signals the batch shell alone" in hits[0][1]


@pytest.mark.parametrize("work", [
    "exec bash train.sh",
    "exec python train.py",           # the program takes the shell's place, and the signal
    "exec srun python train.py",
    "bash train.sh &\nwait",
    "./run.sh & wait",
    "bash <<'EOF'\npython train.py\nEOF",   # commands on standard input: not read here
])
def test_hpc511_is_quiet_for_exec_and_for_background_work_waited_for(work):
    assert found(TRAPPED + work + "\n", "HPC511") == []


def test_hpc511_still_names_a_step_in_the_foreground_as_before():
    hits = found(TRAPPED + "srun python train.py\n", "HPC511")
    assert len(hits) == 1 and "but srun runs in the foreground" in hits[0][1] and "inside the script" not in hits[0][1]
