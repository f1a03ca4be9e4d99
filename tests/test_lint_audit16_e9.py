"""Follow-ups of audit 16 (a3): HPC504 on a line ending in an escaped backslash (\\\\), HPC535 on a name that
eval turns into a variable reference and on a name inside a list value (--dependency=afterok:JOBID), and HPC517 on
a trap that requeues on USR1 in a job that nothing sends USR1."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, select=[code])]


# --- HPC504: a line that ends in \\ -------------------------------------------------------------------------------

DOUBLED = HEAD + "srun python trainer.py \\\\\n--num_nodes 1 \\\\\n--config config.toml\n"


def test_a_line_ending_in_an_escaped_backslash_is_named_as_such():
    hits = found(DOUBLED, "HPC504")
    assert [n for n, _ in hits] == [4, 5]
    assert "line 3 ends in \\\\, an escaped backslash that is passed as an argument" in hits[0][1]
    assert hits[0][1].endswith("end it with a single \\)")
    assert "needs a trailing" not in hits[0][1]


def test_the_fix_drops_one_backslash_of_each_doubled_pair():
    fixed, done = fix_script(DOUBLED)
    assert fixed == HEAD + "srun python trainer.py \\\n--num_nodes 1 \\\n--config config.toml\n"
    assert [f.code for f in done].count("HPC504") == 2
    assert found(fixed, "HPC504") == []


def test_a_lost_backslash_keeps_its_own_message_and_has_no_fix():
    script = HEAD + "python trainer.py\n--num_nodes 1\n"
    assert found(script, "HPC504")[0][1].endswith("(line 3 needs a trailing \\)")
    assert fix_script(script)[0] == script


@pytest.mark.parametrize("ending", ["\\", "\\\\\\"])   # one backslash, or an escaped one and then a continuation
def test_a_line_continued_by_an_odd_run_of_backslashes_is_left_alone(ending):
    assert found(HEAD + f"python trainer.py {ending}\n--num_nodes 1\n", "HPC504") == []


def test_an_indented_line_after_an_escaped_backslash_is_reported():
    hits = found(HEAD + "apptainer exec --nv \\\n  img.sif \\\\\n  python train.py\n", "HPC504")
    assert [n for n, _ in hits] == [5]
    assert "line 4 ends in \\\\ (an escaped backslash, passed as an argument)" in hits[0][1]


# --- HPC535: eval indirection and list values -------------------------------------------------------------------

@pytest.mark.parametrize("reference", ['"LR=\\$$KEY"', '"LR=\\${$KEY}"', "echo \\$${KEY}"])
def test_a_variable_holding_a_name_for_eval_is_left_alone(reference):
    assert found(HEAD + f"LR_1=0.1\nKEY=LR_1\neval {reference}\npython run.py --lr \"$LR\"\n", "HPC535") == []


def test_a_name_eval_does_not_read_through_the_variable_is_still_reported():
    hits = found(HEAD + 'LR_1=0.1\nKEY=LR_1\neval "LR=$KEY"\n', "HPC535")
    assert [n for n, _ in hits] == [4]


@pytest.mark.parametrize("line, name", [
    ("sbatch --dependency=afterok:JOBID b.sh", "JOBID"),
    ("sbatch --dependency afterok:JOBID b.sh", "JOBID"),
    ("sbatch -d afterany:JOBID c.sh", "JOBID"),
    ('sbatch --dependency "afterok:SLURM_JOB_ID?afterany:7+60" c.sh', "SLURM_JOB_ID"),
    ("sbatch --gres=gpu:a100:NGPU e.sh", "NGPU"),
])
def test_a_name_inside_a_list_value_is_reported(line, name):
    script = HEAD + "JOBID=$(sbatch --parsable a.sh)\nNGPU=2\n" + line + "\n"
    hits = found(script, "HPC535")
    assert [n for n, _ in hits] == [5]
    assert hits[0][1].startswith(f"{name}: the $ before {name} is missing")


def test_each_name_of_a_list_is_reported_and_the_last_is_fixed():
    script = HEAD + "PREP=$(sbatch --parsable a.sh)\nTRAIN=$(sbatch --parsable b.sh)\n"
    both = found(script + "sbatch --dependency=afterok:PREP:TRAIN c.sh\n", "HPC535")
    assert [n for n, _ in both] == [5] and "(and TRAIN the same way)" in both[0][1]
    assert fix_script(script + "sbatch --dependency=afterok:PREP:TRAIN c.sh\n")[1] == []  # two words to change
    fixed, _ = fix_script(script + "sbatch --dependency=afterok:TRAIN c.sh\n")
    assert fixed.endswith('sbatch "--dependency=afterok:$TRAIN" c.sh\n')


@pytest.mark.parametrize("line", [
    'sbatch --dependency=afterok:"$JOBID" b.sh',            # written right
    "sbatch --dependency=singleton --job-name=prep b.sh",   # a keyword, not a name
    "apptainer exec -B JOBID:/data img.sif true",           # a bind spec, not a list option
    "python -d JOBID:x",                                    # -d is a list option of Slurm's commands only
    "sbatch --dependency=afterok:12345:lower b.sh",         # job ids and words the script does not set
])
def test_list_values_without_a_missing_dollar_are_left_alone(line):
    assert found(HEAD + "JOBID=$(sbatch --parsable a.sh)\n" + line + "\n", "HPC535") == []


# --- HPC517: a requeue trap on USR1 with nothing to send USR1 -----------------------------------------------------

REQUEUE = "trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1\n"
STEP = "srun python train.py &\nwait\n"


@pytest.mark.parametrize("trap", [
    REQUEUE,
    "trap 'touch STOP' SIGUSR2\n",                                            # a STOP file the program checks
    "save() { kill -USR1 \"$pid\"; }\ntrap save USR1\n",                    # passed on to the program
    "trap 'scontrol requeue \"$SLURM_JOB_ID\"' 10\n",                       # by its number
])
def test_a_saving_trap_on_a_signal_nothing_sends_is_reported(trap):
    hits = found(HEAD + trap + STEP, "HPC517")
    assert len(hits) == 1
    assert "no #SBATCH --signal asks Slurm to send" in hits[0][1]
    assert "#SBATCH --signal=B:USR" in hits[0][1]


def test_the_fedformer_shape_is_reported_at_its_trap():
    script = (HEAD + "restart() {\n  scontrol requeue $SLURM_JOB_ID\n}\nignore() {\n  echo ignored\n}\n"
              "trap restart USR1\ntrap ignore TERM\nbash train.sh\n")
    hits = found(script, "HPC517")
    assert [n for n, _ in hits] == [9]
    assert "#SBATCH --signal=B:USR1@120" in hits[0][1]


@pytest.mark.parametrize("extra, trap", [
    ("#SBATCH --signal=B:USR1@120\n", REQUEUE),                                 # asked for
    ("", "trap 'scontrol requeue \"$SLURM_JOB_ID\"' USR1 TERM\n"),            # runs on TERM too
    ("", REQUEUE + "( sleep 3500; kill -USR1 $$ ) &\n"),                       # the script's own timer
    ("", REQUEUE + '( sleep 3500; scancel --batch --signal=USR1 "$SLURM_JOB_ID" ) &\n'),
    ("", REQUEUE + "timeout -s USR1 3500 python train.py\n"),
    ("", "trap 'sbatch --signal=B:USR1@90 \"$0\"' USR1\n"),                   # resubmitted with the signal
    ("", "trap 'echo got USR1' USR1\n"),                                       # saves nothing
])
def test_a_trap_that_gets_its_signal_or_saves_nothing_is_left_alone(extra, trap):
    assert found(HEAD + extra + trap + STEP, "HPC517") == []


def test_a_signal_without_b_keeps_its_own_finding():
    hits = found(HEAD + "#SBATCH --signal=USR1@120\n" + REQUEUE + STEP, "HPC517")
    assert len(hits) == 1 and "goes to the job's steps, not to the batch shell" in hits[0][1]
