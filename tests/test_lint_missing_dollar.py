"""HPC535: a variable's name written without its $ where its value was meant (cd SCRATCH/project, --seed
SLURM_ARRAY_TASK_ID, run_from_path=ltp_dir): the program gets the name as text and the job runs on with a wrong path
or value. Names meant as names (export NAME, --export=NAME, mpirun -x NAME, echo "SLURM_JOB_ID is …") are left
alone."""

from __future__ import annotations

import subprocess

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def found(text: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, select=["HPC535"])]


@pytest.mark.parametrize("line, written", [
    ("cd SCRATCH/project", "SCRATCH/project"),
    ("python train.py --output-dir SLURM_TMPDIR/run", "SLURM_TMPDIR/run"),
    ("python train.py --seed SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_ID"),
    ("python train.py --out=WORK/runs", "WORK/runs"),                        # an option's value after =
    ("python train.py trainer.default_root_dir=SCRATCH/runs", "SCRATCH/runs"),  # a Hydra setting
    ("out=TMPDIR/out", "TMPDIR/out"),                                        # the right side of an assignment
    ("export RUN_DIR=SCRATCH/run", "SCRATCH/run"),
    ('srun --chdir "HOME/work" python train.py', "HOME/work"),               # in double quotes, still a path
    ("scontrol show hostnames SLURM_JOB_NODELIST", "SLURM_JOB_NODELIST"),
    ("srun bash -c 'cd SCRATCH/project && python train.py'", "SCRATCH/project"),  # in the step's own script
    ("SCRATCH/venv/bin/python train.py", "SCRATCH/venv/bin/python"),         # a program's path
])
def test_a_well_known_variable_without_its_dollar_is_reported(line, written):
    hits = found(HEAD + line + "\n")
    assert [n for n, _ in hits] == [3]
    message = hits[0][1]
    assert message.startswith(f"{written}: the $ before {written.split('/')[0]} is missing")
    assert message.endswith(f'write "${written}"')


def test_a_variable_the_script_sets_is_reported_with_the_line_that_sets_it():
    text = HEAD + 'ltp_dir="$HOME/ltp"\nrun_from_path=ltp_dir\ncd "$run_from_path"\n'
    assert found(text) == [(4, "ltp_dir: the $ before ltp_dir is missing, so the word is the text 'ltp_dir', not the "
                               "value of $ltp_dir (set on line 3), and the job runs on with a wrong path or value; "
                               'write "$ltp_dir"')]


@pytest.mark.parametrize("text", [
    HEAD + "export SCRATCH TMPDIR\nunset SLURM_MEM_PER_CPU\nreadonly HOME\n",  # builtins that take names
    HEAD + "declare -p SLURM_JOB_ID\nlocal_name=x; read -r local_name\nprintenv SLURM_JOB_ID\n",
    HEAD + 'echo "SLURM_JOB_ID is $SLURM_JOB_ID"\necho SLURM_NTASKS "$SLURM_NTASKS"\nprintf "%s\\n" HOME\n',
    HEAD + "env | grep SLURM_\nenv | grep -E 'SLURM_JOB_ID|HOME'\nsed -n 1p HOME\n",  # patterns and text tools
    HEAD + "srun --export=ALL,SCRATCH python train.py\nsbatch --export SCRATCH next.sh\n",  # name lists
    HEAD + "mpirun -x NCCL_DEBUG -x HOME python train.py\nenv -u SLURM_CPUS_PER_TASK srun python t.py\n",
    HEAD + "srun --container-env=HOME python t.py\nch-run --unset-env=SLURM_JOB_ID img -- python t.py\n",
    HEAD + "if [[ -v SLURM_JOB_ID ]]; then cd \"$SLURM_SUBMIT_DIR\"; fi\n[ -n \"$HOME\" ] && test -v USER\n",
    HEAD + "declare -n ref=SLURM_JOB_ID\necho \"$ref\"\n",                     # a name reference
    HEAD + "declare -i n=SLURM_NTASKS*2\nlocal -i m=SLURM_NNODES\n",            # arithmetic: names are variables
    HEAD + "for SLURM_ARRAY_TASK_ID in 1 2; do python t.py --task \"$SLURM_ARRAY_TASK_ID\"; done\n",
    HEAD + "IDX=$(( SLURM_ARRAY_TASK_ID - 1 ))\nlet j=SLURM_NTASKS+1\n",
    HEAD + "var=SLURM_NTASKS\necho \"${!var}\"\n",                            # read indirectly
    HEAD + "var_name=SLURM_JOB_ID\nprintenv \"$var_name\"\n",                 # handed to a builtin taking names
    HEAD + "show() { echo \"$1=${!1}\"; }\nshow SLURM_JOB_ID\n",             # a function reading ${!1}
    HEAD + "for v in SLURM_JOB_ID HOME; do echo \"$v\"; done\n",              # a list of names
    HEAD + "cat <<EOF\nSLURM_JOB_ID HOME\nEOF\npython - <<EOF\nimport os; print(os.environ['SCRATCH'])\nEOF\n",
    HEAD + "python -c 'import os; print(os.environ[\"SLURM_PROCID\"])'\n",   # code, not a value
    HEAD + "squeue -o '%i %j' -u \"$USER\"\nsacct --format=JobID,User -j \"$SLURM_JOB_ID\"\n",  # formats
    HEAD + "cd \"$SCRATCH/project\"\npython train.py --seed \"$SLURM_ARRAY_TASK_ID\" --out ${TMPDIR}/x\n",
    HEAD + "data=/scratch/d\npython train.py --data data\n",                 # a lower-case word may be a folder
    HEAD + "DEBUG=1\npython train.py --log-level DEBUG\n",                   # a value in its own right
    HEAD + "python train.py --output SLURM_JOB_ID.out --tag HOMEWORK --dir HOMEDIR/x\n",  # other words
    HEAD + "export -f start_server\nstart_server\n",                         # a function, not a variable
    HEAD + "echo 'scratch' # SCRATCH/project\n",                             # a comment
])
def test_names_meant_as_names_are_left_alone(text):
    assert found(text) == []


def test_several_words_of_a_line_are_one_finding_with_one_fix():
    text = HEAD + "srun python train.py --seed SLURM_ARRAY_TASK_ID --out=SCRATCH/run \"TMPDIR/x\"  # go\n"
    (finding,) = lint(text, select=["HPC535"])
    assert "(and SCRATCH/run, TMPDIR/x the same way)" in finding.message
    fixed, done = fix_script(text)
    assert [f.code for f in done] == ["HPC535"]
    assert fixed.splitlines()[2] == ('srun python train.py --seed "$SLURM_ARRAY_TASK_ID" "--out=$SCRATCH/run" '
                                     '"$TMPDIR/x"  # go')
    assert found(fixed) == []


def test_the_fixed_words_expand_to_the_values_meant():
    fixed, _ = fix_script("#!/bin/bash\nrun_dir='/data/my run'\nout=run_dir\ncp SCRATCH/a --x=USER\n")
    lines = fixed.splitlines()
    assert lines[2:] == ['out="$run_dir"', 'cp "$SCRATCH/a" "--x=$USER"']
    shown = "\n".join([lines[1], lines[2], lines[3].replace("cp", "printf '%s\\n'", 1), 'echo "$out"'])
    env = {"SCRATCH": "/s c", "USER": "ann", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["bash", "-c", shown], env=env, capture_output=True, text=True, check=True).stdout
    assert out == "/s c/a\n--x=ann\n/data/my run\n"


def test_words_in_single_quotes_or_spread_over_lines_are_reported_without_a_fix():
    text = HEAD + "python train.py --out 'SCRATCH/run'\nsrun bash -c \"cd SCRATCH && python t.py\"\n"
    findings = lint(text, select=["HPC535"])
    assert [(f.line, f.fix) for f in findings] == [(3, None), (4, None)]


def test_a_continued_command_is_reported_at_the_line_of_the_word():
    text = HEAD + "srun python train.py \\\n    --out SLURM_TMPDIR/run \\\n    --epochs 3\n"
    (finding,) = lint(text, select=["HPC535"])
    assert finding.line == 4
    fixed, _ = fix_script(text)
    assert fixed.splitlines()[3] == '    --out "$SLURM_TMPDIR/run" \\'


def test_a_suppression_comment_switches_it_off():
    assert found(HEAD + "cd SCRATCH  # hpcw: disable=HPC535\n") == []


def test_an_option_that_takes_names_for_one_program_is_a_value_for_another():
    assert found(HEAD + "squeue -u USER\n") != []          # squeue's user, not env's -u NAME
    assert found(HEAD + "env -u USER python t.py\n") == []
    assert found(HEAD + "srun -x HOME python t.py\n") != []  # srun -x excludes nodes; mpirun -x passes a name


@pytest.mark.parametrize("line, written", [
    # Slurm's ? ("any of") makes the list a glob for bash, which passes it on as written: its parts are still values
    ("sbatch --dependency=afterok:JOB?afterany:1 next.sh", "JOB"),
    ("sbatch -d afterany:1?afterok:JOB next.sh", "JOB"),
    ("sbatch --dependency=afterok:$FIRST?afterok:JOB next.sh", "JOB"),
    ("python train.py --data SCRATCH/shards/*.tar", "SCRATCH/shards/*.tar"),  # a glob: the folder is still $SCRATCH
    ("cp SCRATCH/run?/model.pt .", "SCRATCH/run?/model.pt"),
])
def test_a_word_bash_reads_as_a_glob_is_still_checked(line, written):
    text = HEAD + "JOB=$(sbatch --parsable first.sh)\nFIRST=$JOB\n" + line + "\n"
    hits = found(text)
    assert [n for n, _ in hits] == [5]
    assert hits[0][1].startswith(f"{written}: the $ before {written.split('/')[0]} is missing")


def test_the_fix_of_a_glob_keeps_its_pattern_unquoted():
    text = HEAD + "rm -rf TMPDIR/*\npython train.py --seed SLURM_ARRAY_TASK_ID --data=SCRATCH/d/part-??.npz\n"
    assert found(text)[0][1].endswith('write "$TMPDIR/"*')
    fixed, done = fix_script(text)
    assert [f.code for f in done] == ["HPC535", "HPC535"]
    assert fixed.splitlines()[2:] == ['rm -rf "$TMPDIR/"*',
                                      'python train.py --seed "$SLURM_ARRAY_TASK_ID" "--data=$SCRATCH/d/part-"??.npz']
    assert found(fixed) == []
    env = {"SCRATCH": "/s c", "PATH": "/usr/bin:/bin"}
    shown = subprocess.run(["bash", "-c", "printf '%s\\n' \"--data=$SCRATCH/d/part-\"??.npz"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert shown == "--data=/s c/d/part-??.npz\n"  # no file matches: bash passes the pattern with the value in it


@pytest.mark.parametrize("text", [
    HEAD + "ls SLURM_* 2>/dev/null\nenv | grep SLURM_*\n",                    # names with a pattern after them
    HEAD + "cp data?/x* \"$SCRATCH/out\"\necho SCRATCH/*\n",                    # no name; a printer
    HEAD + "sbatch --dependency=afterok:$JOB?afterany:$FIRST next.sh\n",      # every part written with its $
    HEAD + "cp SCRATCH/{a,b}?.txt .\nsrun --export=ALL,SCRATCH* python t.py\n",  # braces; a name list
])
def test_globs_that_name_no_variable_are_left_alone(text):
    assert found(text) == []
