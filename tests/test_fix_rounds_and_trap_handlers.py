"""Linter mends: the fixer, not HPC201, fixes a rule's findings together; HPC230 reads
srun's options from the reader's steps; HPC529 and HPC531 read trap handlers through one catalogue helper."""

from __future__ import annotations

import pytest

from hpcwidgets import fixes
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import Context, Finding, Fix, lint
from hpcwidgets.lint.catalogue import simple_commands, trap_handler_commands
from hpcwidgets.parse.script import read_script


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text) if f.code == code]


# --- task 1: a rule's fixes applied together by fix_script --------------------------------------------------------

TWO_GPU_STEPS = """#!/bin/bash
#SBATCH --gres=gpu:2
srun apptainer exec pytorch.sif python prepare.py
srun apptainer exec pytorch.sif python train.py
"""


def test_two_gpu_container_steps_without_nv_are_both_fixed_in_one_call():
    new, done = fix_script(TWO_GPU_STEPS)
    assert new.count("apptainer exec --nv pytorch.sif") == 2
    assert [(f.code, f.line) for f in done] == [("HPC201", 3), ("HPC201", 4)]
    assert not found(new, "HPC220") and not found(new, "HPC201")


def test_hpc201_gives_each_step_its_own_fix():
    """The rule no longer builds one fix for every step: each finding's fix covers its own line only."""
    fixed = [f.fix for f in lint(TWO_GPU_STEPS) if f.code == "HPC201"]
    assert [(fix.start, fix.end, fix.description) for fix in fixed] == [(3, 3, "add --nv"), (4, 4, "add --nv")]


def test_two_gpu_containers_on_one_line_are_both_fixed():
    """Their fixes share a line, so they are applied one round after the other; the second is still HPC201's."""
    text = "#!/bin/bash\n#SBATCH --gres=gpu:2\napptainer exec a.sif python prep.py && apptainer exec b.sif python t.py\n"
    new, done = fix_script(text)
    assert new.count("apptainer exec --nv") == 2 and [f.code for f in done] == ["HPC201", "HPC201"]


def test_only_the_first_rules_fixes_that_touch_no_taken_line_go_together(monkeypatch):
    """One round: the first finding's rule, its other fixes that overlap none already taken, bottom up."""
    text = "\n".join(f"line{n}" for n in range(1, 8))
    a1 = Finding("HPC900", "error", 2, "a1", Fix("a1", 2, 3, text="A1"))
    b = Finding("HPC901", "error", 4, "b", Fix("b", 4, 4, text="B"))
    a2 = Finding("HPC900", "error", 3, "a2", Fix("a2", 3, 3, text="A2"))      # overlaps a1: next round
    a3 = Finding("HPC900", "error", 6, "a3", Fix("a3", 6, 6, text="A3a\nA3b"))  # adds a line below a1
    rounds = iter([[a1, a2, b, a3], []])
    monkeypatch.setattr(fixes, "lint", lambda *args, **kwargs: next(rounds))
    new, done = fix_script(text)
    assert new == "line1\nA1\nline4\nline5\nA3a\nA3b\nline7"
    assert done == [a1, a3]


# --- task 2: HPC230 reads srun from the reader's steps ------------------------------------------------------------

CPU = "#!/bin/bash\n#SBATCH -C cpu\n#SBATCH --nodes=1\n"
GPU = "#!/bin/bash\n#SBATCH -C gpu\n#SBATCH --gpus-per-node=4\n"


@pytest.mark.parametrize("line", [
    "srun -n 2 --gpus 4 podman-hpc run --rm img:1 python t.py\n",                 # an option's value as its own word
    "for i in 1 2; do\n  time srun --gpus=1 env A=1 podman-hpc run img:1 python t.py\ndone\n",
    "srun --gpus=4 bash -c 'podman-hpc run --rm img:1 python t.py'\n",             # the step that runs the script
])
def test_srun_asking_for_gpus_itself_is_read_from_its_step(line):
    hits = found(CPU + line, "HPC230")
    assert len(hits) == 1 and "podman-hpc run runs without --gpu" in hits[0][1]


def test_srun_without_gpus_of_its_own_in_a_cpu_job_is_quiet():
    assert found(CPU + "srun -n 2 podman-hpc run --rm img:1 python t.py\n", "HPC230") == []


def test_podman_hpc_under_srun_in_a_gpu_job_is_found_with_its_words():
    hits = found(GPU + "srun --ntasks-per-node=4 podman-hpc shared-run --rm img:1 python t.py\n", "HPC230")
    assert len(hits) == 1 and "podman-hpc shared-run runs without --gpu" in hits[0][1]


# --- task 3: one reader of trap handlers --------------------------------------------------------------------------

def handlers(text: str) -> list[tuple[int, list[str]]]:
    ctx = Context(read_script(text), None, "", text)
    trap = next(c for c in simple_commands(ctx) if c.kind == "simple" and c.name == "trap")
    return trap_handler_commands(ctx, trap)


def test_a_handler_string_is_lexed_at_the_traps_line():
    assert handlers("#!/bin/bash\ntrap 'echo \"stop\"; kill -USR1 \"$pid\"' USR1\n") == [
        (2, ["echo", "stop"]), (2, ["kill", "-USR1", "$pid"])]


def test_a_function_the_handler_calls_gives_its_bodys_commands_at_their_lines():
    text = ("#!/bin/bash\nsave() {\n  touch STOP\n}\nstop() {\n  save\n  if true; then scontrol requeue \"$ID\"; fi\n"
            "  stop\n}\ntrap 'stop 143' TERM\n")
    assert handlers(text) == [(10, ["stop", "143"]), (6, ["save"]), (3, ["touch", "STOP"]), (7, ["true"]),
                              (7, ["scontrol", "requeue", "$ID"]), (8, ["stop"])]


def test_a_handler_that_cannot_be_lexed_gives_no_commands():
    assert handlers("#!/bin/bash\ntrap 'echo \"unclosed' USR1\n") == []


WAITS_ONCE = ("#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --signal=B:USR1@300\n{handler}\nsrun python train.py &\n"
              "pid=$!\nwait\n")


@pytest.mark.parametrize("handler", [
    # the function called with an argument requeues (the handler text named no function the old reading knew)
    "on_signal() {\n  scontrol requeue \"$SLURM_JOB_ID\"\n}\ntrap 'on_signal USR1' USR1",
    "trap 'scontrol requeuehold \"$SLURM_JOB_ID\"' USR1",
    "trap 'scancel \"$SLURM_JOB_ID\"' USR1",
    "trap 'sbatch \"$SLURM_SUBMIT_DIR/job.sh\"' USR1",
])
def test_handlers_that_end_the_job_are_left_alone(handler):
    assert found(WAITS_ONCE.format(handler=handler), "HPC529") == []


@pytest.mark.parametrize("handler", [
    # words that only name a command, in an echo or a comment, do not end the job
    "trap 'echo \"exit soon\"; kill -USR1 \"$pid\"' USR1",
    "on_usr1() {\n  # sbatch job.sh would resubmit\n  kill -USR1 \"$pid\"\n}\ntrap on_usr1 USR1",
    # scancel -s only sends the signal, as --signal does
    "trap 'scancel -s USR1 \"$SLURM_JOB_ID\"' USR1",
    "trap 'scancel --signal=USR1 \"$SLURM_JOB_ID\"' USR1",
])
def test_handlers_that_only_tell_the_step_are_reported(handler):
    text = WAITS_ONCE.format(handler=handler)
    hits = found(text, "HPC529")
    assert len(hits) == 1 and hits[0][0] == text.count("\n") and "the trap for SIGUSR1 only tells the step" in hits[0][1]


def test_an_interrupt_in_a_function_defined_after_the_trap_is_reported_at_the_kill():
    text = ("#!/bin/bash\n#SBATCH --signal=B:USR1@300\npython -u train.py &\npid=$!\ntrap on_usr1 USR1\n"
            "on_usr1() {\n  kill -INT \"$pid\"\n}\nwait\n")
    hits = found(text, "HPC531")
    assert len(hits) == 1 and hits[0][0] == 7 and "to python (line 3)" in hits[0][1]


def test_the_wait_goes_after_a_command_sharing_the_background_steps_line():
    """srun … & echo "two<newline>lines": HPC519's wait is written after the echo, not inside its quoted text."""
    text = '#!/bin/bash\n#SBATCH --ntasks=2\nsrun -n1 python a.py & echo "started\nin the background"\n'
    fixed, done = fix_script(text)
    assert fixed == text + "wait\n" and [f.code for f in done] == ["HPC519"]
    assert fix_script(fixed) == (fixed, [])


def test_a_fix_that_does_not_remove_its_finding_is_applied_once():
    """In a script bash cannot read (a quote left open), an inserted line can land inside the open quote, so the
    finding stays; the fixer applies that fix once, not once per round."""
    text = ("#!/bin/bash\n#SBATCH --ntasks=2\nexit \u2014 ok.\"; trap 'echo \"got &\n  if true; then \\\n"
            "    echo x; \\\n  fi' USR1\necho done\n")
    fixed, done = fix_script(text)
    assert fixed.count("\nwait") == 1 and [f.code for f in done].count("HPC519") == 1
