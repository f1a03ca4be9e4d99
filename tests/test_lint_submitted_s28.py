"""Job scripts a driver writes in its own text and submits (``sbatch <<EOF``, ``cat > job.sh <<EOF`` then ``sbatch
job.sh``, ``cat <<EOF | sbatch``): lint checks each as the script sbatch reads, at the driver's lines, and reports
what the submitting shell puts in too early (HPC542) or leaves out (HPC543).

The text lint checks is compared with what bash really hands a stand-in sbatch, so the reading of escapes, the
driver's variables and ``<<-`` is bash's, not a guess.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hpcwidgets.fixes import apply_fix
from hpcwidgets.lint import Context, lint
from hpcwidgets.lint.submitted import job_text, submitted_scripts
from hpcwidgets.parse.script import read_script

JOB = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def codes(text: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in lint(text, profile)]


def found(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


def subs(text: str):
    return submitted_scripts(Context(read_script(text), None, "", text))


def job_of(driver: str):
    """The text lint checks for the one job script ``driver`` submits."""
    parsed = read_script(driver)
    [sub] = submitted_scripts(Context(parsed, None, "", driver))
    return job_text(parsed, sub)


# --- what sbatch reads: the same text as bash hands it --------------------------------------------------------------

STAND_IN = """#!/bin/bash
n=$(find "$CAPTURE" -type f | wc -l)
script=
for a in "$@"; do case $a in -*) ;; *) script=$a; break;; esac; done
if [ -n "$script" ]; then cat -- "$script"; else cat; fi > "$CAPTURE/$n"
echo "Submitted batch job $((100 + n))"
"""


def submitted_by_bash(driver: str, tmp_path: Path) -> list[str]:
    """The job scripts a run of ``driver`` by bash hands to sbatch, in order (sbatch is a stand-in that keeps them)."""
    bin_dir, capture, work = tmp_path / "bin", tmp_path / "capture", tmp_path / "work"
    for d in (bin_dir, capture, work):
        d.mkdir()
    (bin_dir / "sbatch").write_text(STAND_IN)
    (bin_dir / "sbatch").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CAPTURE": str(capture), "HOME": str(tmp_path)}
    subprocess.run(["bash", "-c", driver], cwd=work, env=env, check=True, capture_output=True)
    return [(capture / str(k)).read_text() for k in range(len(list(capture.iterdir())))]


DRIVERS = {
    "escapes and driver values": """EPOCHS=20
IMG=$HOME/images/pt.sif
for lr in 0.1 0.01; do
sbatch <<EOF
#!/bin/bash
#SBATCH --job-name=lr-${lr}
#SBATCH --time=01:00:00
head=\\$(scontrol show hostnames "\\$SLURM_JOB_NODELIST" | head -n 1)
echo 'single quotes do not stop it: $EPOCHS' "\\\\ one backslash" \\`date\\`
srun apptainer exec $IMG python train.py --lr $lr --epochs ${EPOCHS} --host \\$head
EOF
done
""",
    "quoted delimiter": """for lr in 0.1; do
sbatch <<'EOF'
#!/bin/bash
#SBATCH --time=01:00:00
srun python train.py --lr "$lr" \\
    --out "$SLURM_JOB_ID"
EOF
done
""",
    "tabs stripped": "sbatch <<-EOF\n\t#!/bin/bash\n\t#SBATCH --time=01:00:00\n\tsrun hostname\n\tEOF\n",
    "written to a file first": """N=2
cat > job.sh <<EOF
#!/bin/bash
#SBATCH --nodes=$N
#SBATCH --time=01:00:00
srun --nodes=\\$SLURM_NNODES hostname
EOF
sbatch job.sh
""",
    "piped from cat": """cat <<EOF | sbatch
#!/bin/bash
#SBATCH --time=01:00:00
srun hostname
EOF
""",
}


@pytest.mark.parametrize("name", DRIVERS)
def test_the_text_lint_checks_is_the_text_bash_hands_sbatch(name, tmp_path):
    driver = DRIVERS[name]
    job = job_of(driver)
    text, unknown = job.text, job.unknown
    real = submitted_by_bash(driver, tmp_path)
    assert real, "the stand-in sbatch was never called"
    assert text.replace(str(tmp_path), "$HOME") == real[0].replace(str(tmp_path), "$HOME")
    assert unknown == set()


def test_the_body_starts_on_the_line_below_its_operator():
    driver = "#!/bin/bash\nfor i in 1 2; do\n  sbatch --parsable \\\n    --job-name=x <<EOF\n" + JOB + "srun a\nEOF\ndone\n"
    [sub] = subs(driver)
    assert (sub.doc_line, sub.start, sub.sbatch_line) == (4, 5, 3)
    assert sub.body.startswith("#!/bin/bash\n") and driver.split("\n")[sub.start - 1] == "#!/bin/bash"


@pytest.mark.parametrize("driver", [
    "sbatch job.sh\n",                                           # a file the driver does not write
    "cat > notes.txt <<EOF\nhello\nEOF\nsbatch job.sh\n",        # it writes another file
    "sbatch job.sh <<EOF\nthe script's input\nEOF\n",             # the here-document is the job script's input
    "python submit.py <<EOF\n#!/bin/bash\nEOF\n",                 # not sbatch
    "cat <<EOF | grep x\n#!/bin/bash\nEOF\n",                      # piped, but not to sbatch
])
def test_nothing_else_is_read_as_a_submitted_job_script(driver):
    assert subs("#!/bin/bash\n" + driver) == ()


# --- the job script is checked as one, at the driver's lines ---------------------------------------------------------

def test_a_mistake_in_the_job_script_is_reported_at_the_drivers_line_and_says_where():
    driver = ("#!/bin/bash\nfor n in 2; do\nsbatch <<EOF\n#!/bin/bash\n#SBATCH --nodes=$n\n#SBATCH --gpus-per-node=4\n"
              "#SBATCH --time=01:00:00\nsrun torchrun --standalone --nproc-per-node=4 train.py\nEOF\ndone\n")
    [f] = found(driver, "HPC113")
    assert f.line == 8
    assert f.message.startswith("in the job script sbatch reads from the here-document on line 3: ")
    assert "on 2 nodes" in f.message  # the loop's value reached the job's --nodes
    assert f.fix is None              # in an unquoted here-document a fix's $ would be filled in by the driver


def test_a_job_script_written_to_a_file_is_checked_and_its_fix_applies_in_the_driver():
    driver = ("#!/bin/bash\ncat > job.sh <<'EOF'\n#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gpus-per-node=4\n"
              "#SBATCH --time=01:00:00\nsrun torchrun --standalone --nproc-per-node=4 train.py\nEOF\n"
              "sbatch job.sh\n")
    [f] = found(driver, "HPC113")
    assert f.line == 7 and "written to job.sh on line 2 and submitted on line 9" in f.message
    assert f.fix is not None and (f.fix.start, f.fix.end) == (7, 7)
    fixed = apply_fix(driver, f.fix)
    assert fixed.split("\n")[:6] == driver.split("\n")[:6] and fixed.endswith("EOF\nsbatch job.sh\n")
    assert found(fixed, "HPC113") == []


def test_the_drivers_suppression_and_the_job_scripts_own_both_apply():
    body = "srun torchrun --standalone --nproc-per-node=4 train.py"
    job = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --gpus-per-node=4\n#SBATCH --time=01:00:00\n"
    assert found(f"#!/bin/bash\n# hpcw: disable-file=HPC113\nsbatch <<'EOF'\n{job}{body}\nEOF\n", "HPC113") == []
    assert found(f"#!/bin/bash\nsbatch <<'EOF'\n{job}{body}  # hpcw: disable=HPC113\nEOF\n", "HPC113") == []
    assert len(found(f"#!/bin/bash\nsbatch <<'EOF'\n{job}{body}\nEOF\n", "HPC113")) == 1


def test_a_directive_value_the_driver_fills_in_is_not_judged_unless_the_driver_tells_it():
    unknown = "#!/bin/bash\nsbatch <<EOF\n#!/bin/bash\n#SBATCH --time=$1\n#SBATCH --job-name=$(date +%F)\nsrun a\nEOF\n"
    assert [c for c in codes(unknown) if c[1].startswith("HPC3")] == []
    known = "#!/bin/bash\nT=1.5h\nsbatch <<EOF\n#!/bin/bash\n#SBATCH --time=$T\nsrun a\nEOF\n"
    assert (5, "HPC301") in codes(known)  # the driver says what sbatch reads: a time it refuses
    escaped = "#!/bin/bash\nsbatch <<EOF\n#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --job-name=\\$USER\nsrun a\nEOF\n"
    assert (5, "HPC305") in codes(escaped)  # sbatch gets $USER, which it does not expand


def test_a_job_script_bash_cannot_read_is_reported_at_its_line():
    driver = "#!/bin/bash\nsbatch <<'EOF'\n#!/bin/bash\n#SBATCH --time=01:00:00\necho 'open\nEOF\n"
    [f] = found(driver, "HPC000")
    assert f.line == 5 and "here-document on line 2" in f.message


def test_a_driver_without_a_submitted_script_gets_nothing_new():
    assert codes("#!/bin/bash\nfor lr in 0.1 0.01; do\n  sbatch --export=ALL,LR=$lr train.sbatch\ndone\n") == []


# --- HPC542: filled in by the submitting shell ----------------------------------------------------------------------

def sweep(lines: str, delimiter: str = "EOF") -> str:
    return f"#!/bin/bash\nfor lr in 0.1 0.01; do\nsbatch <<{delimiter}\n{JOB}{lines}\nEOF\ndone\n"


@pytest.mark.parametrize(("line", "why"), [
    ('srun python train.py --rank $SLURM_PROCID --lr $lr', "Slurm sets it in the job"),
    ('echo "nodes: ${SLURM_JOB_NODELIST}"', "Slurm sets it in the job"),
    ('head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)', "the command runs on the login node"),
    ('echo "running on `hostname`"', "the command runs on the login node"),
    ('echo $CUDA_VISIBLE_DEVICES', "Slurm sets it in the job"),
])
def test_what_only_the_job_knows_is_reported(line, why):
    text = sweep(line)
    [f] = found(text, "HPC542")
    assert f.line == 6 and why in f.message and "here-document on line 3" in f.message
    fixed = apply_fix(text, f.fix)
    assert found(fixed, "HPC542") == []
    assert "$lr" in fixed.split("\n")[5] or "$lr" not in line  # the driver's own value stays the driver's


def test_a_variable_the_job_script_sets_is_reported_where_it_is_used():
    text = sweep('export MASTER_ADDR=$(hostname -s)\nsrun torchrun --rdzv-endpoint=$MASTER_ADDR:29500 train.py --lr $lr')
    found_ = found(text, "HPC542")
    assert [f.line for f in found_] == [6, 7]
    assert "the job script sets it on line 6" in found_[1].message and "\\$MASTER_ADDR" in found_[1].message


def test_several_on_a_line_are_one_finding_with_one_fix(tmp_path):
    text = sweep('head=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1); echo $SLURM_JOB_ID $lr')
    [f] = found(text, "HPC542")
    fixed = apply_fix(text, f.fix)
    assert fixed.split("\n")[5] == ('head=\\$(scontrol show hostnames \\$SLURM_JOB_NODELIST | head -n1); '
                                    'echo \\$SLURM_JOB_ID $lr')
    [first, _] = submitted_by_bash(fixed, tmp_path)
    assert 'head=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1); echo $SLURM_JOB_ID 0.1' in first


@pytest.mark.parametrize("line", [
    'srun python train.py --lr $lr',                             # the driver's loop variable: meant
    'srun python train.py --out \\$SLURM_JOB_ID',                # escaped
    'srun python train.py --date $(date +%F) --home $HOME',      # the same on the login node
    'srun python train.py --n $((2 * 4))',                       # arithmetic
])
def test_what_the_driver_means_to_fill_in_is_left_alone(line):
    assert found(sweep(line), "HPC542") == []


def test_a_quoted_delimiter_is_left_to_hpc543():
    assert found(sweep('srun python train.py --rank $SLURM_PROCID', "'EOF'"), "HPC542") == []


def test_a_driver_set_variable_of_the_same_name_is_the_drivers():
    text = "#!/bin/bash\nMASTER_ADDR=login1\nsbatch <<EOF\n" + JOB + "MASTER_ADDR=$MASTER_ADDR\nsrun a $MASTER_ADDR\nEOF\n"
    assert found(text, "HPC542") == []


def test_a_driver_that_is_a_job_itself_may_pass_its_own_job_variables_on():
    text = ("#!/bin/bash\n#SBATCH --time=00:10:00\nsbatch <<EOF\n" + JOB +
            "#SBATCH --dependency=afterok:$SLURM_JOB_ID\nx=1\nsrun echo $x $(hostname)\nEOF\n")
    [f] = found(text, "HPC542")  # only the variable the inner script sets: $SLURM_JOB_ID is the driver job's, meant
    assert f.line == 8 and "$x" in f.message and "hostname" not in f.message


# --- HPC543: a quoted delimiter keeps the driver's values out ---------------------------------------------------------

def test_the_loop_variable_in_a_quoted_here_document_is_reported():
    [f] = found(sweep('srun python train.py --lr "$lr"', "'EOF'"), "HPC543")
    assert f.line == 6 and "loop variable" in f.message and 'sbatch --export=ALL,lr="$lr"' in f.message


@pytest.mark.parametrize(("driver", "reported"), [
    ("EPOCHS=5\nsbatch <<'EOF'\n" + JOB + "srun a $EPOCHS\nEOF\n", True),
    ("export EPOCHS=5\nsbatch <<'EOF'\n" + JOB + "srun a $EPOCHS\nEOF\n", False),
    ("EPOCHS=5\nexport EPOCHS\nsbatch <<'EOF'\n" + JOB + "srun a $EPOCHS\nEOF\n", False),
    ("set -a\nEPOCHS=5\nsbatch <<'EOF'\n" + JOB + "srun a $EPOCHS\nEOF\n", False),
    ("EPOCHS=5\nsbatch --export=ALL,EPOCHS=$EPOCHS <<'EOF'\n" + JOB + "srun a $EPOCHS\nEOF\n", False),
    ("export EPOCHS=5\nsbatch --export=NONE <<'EOF'\n" + JOB + "srun a $EPOCHS\nEOF\n", True),
    ("EPOCHS=5\nsbatch <<'EOF'\n" + JOB + "EPOCHS=7\nsrun a $EPOCHS\nEOF\n", False),
    ("sbatch <<'EOF'\n" + JOB + "srun a $SLURM_JOB_ID $HOME\nEOF\n", False),
    ("EPOCHS=5\ncat > job.sh <<'EOF'\n" + JOB + "srun a $EPOCHS\nEOF\nsbatch job.sh\n", True),
])
def test_a_driver_variable_reaches_the_job_only_when_exported_or_passed(driver, reported):
    assert bool(found("#!/bin/bash\n" + driver, "HPC543")) is reported


def test_the_loop_variable_really_is_empty_in_the_job(tmp_path):
    """What HPC543 says, shown: the job script sbatch gets holds the text $lr, and bash in the job finds no lr."""
    [first] = submitted_by_bash("for lr in 0.1; do\nsbatch <<'EOF'\n#!/bin/bash\necho \"lr=[$lr]\"\nEOF\ndone\n",
                                tmp_path)
    assert 'echo "lr=[$lr]"' in first
    assert subprocess.run(["bash", "-c", first], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"]}).stdout == "lr=[]\n"


# --- what the audit of real drivers found (session 28) ----------------------------------------------------------------

def test_a_loop_over_an_array_gives_its_first_element_and_an_unknown_one_judges_nothing():
    driver = ('#!/bin/bash\nlrs=(1e-3 1e-4)\nfor lr in "${lrs[@]}"; do\n  for h in "${hours[@]}"; do\nsbatch <<EOF\n'
              "#!/bin/bash\n#SBATCH --job-name=train_${lr}\n#SBATCH --time=${h}:00:00\npython train.py --lr ${lr}\n"
              "EOF\n  done\ndone\n")
    job = job_of(driver)
    text, unknown = job.text, job.unknown
    assert "--job-name=train_1e-3" in text and unknown == {3}   # hours is set nowhere: its line is not judged
    assert codes(driver) == []


def test_a_driver_value_built_from_another_the_driver_sets_is_unknown_not_the_environments():
    driver = ('#!/bin/bash\nRUN_NAME="${RUN_NAME:-mae}"\nLOG_FILE="logs/${RUN_NAME}_%j.out"\nN_GPUS=${N_GPUS:-4}\n'
              "sbatch <<EOF\n#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --output=${LOG_FILE}\n"
              "#SBATCH --gres=gpu:${N_GPUS}\n#SBATCH --error=$SCRATCH/%j.err\npython train.py\nEOF\n")
    job = job_of(driver)
    text, unknown = job.text, job.unknown
    assert unknown == {3, 4, 5} and "--error=$SCRATCH/%j.err" in text  # $SCRATCH: the login node's, not judged
    assert codes(driver) == []


def test_an_argument_on_a_continued_line_is_no_assignment_and_a_hand_over_is_meant():
    continued = ("#!/bin/bash\nfor tau in 0.1 10; do\nsbatch <<EOF\n#!/bin/bash\n#SBATCH --job-name=run-${tau}\n"
                 "#SBATCH --time=01:00:00\npython main.py \\\n    tau=${tau} \\\n    seed=42 --seed-name ${seed}\nEOF\ndone\n")
    assert found(continued, "HPC542") == []
    assert [f.line for f in found(continued, "HPC544")] == [9]  # seed is set nowhere: the job gets nothing
    hand_over = ("#!/bin/bash\nCKPT=/scratch/ckpt.pt\nsbatch <<EOF\n" + JOB +
                 'export CKPT="${CKPT}"\nexport OUT="${OUT}"\npython eval.py --ckpt "\\$CKPT"\nEOF\n')
    assert found(hand_over, "HPC542") == []


def test_sbatch_in_a_command_substitution_is_read_too():
    driver = ("#!/bin/bash\nfor lr in 1 2; do\nJOB=$(sbatch --parsable <<EOF\n#!/bin/bash\n#SBATCH --nodes=2\n"
              "#SBATCH --gpus-per-node=4\n#SBATCH --time=01:00:00\nhead=$(hostname)\n"
              "srun torchrun --standalone --nproc-per-node=4 train.py --lr $lr\nEOF\n)\necho \"$JOB\"\ndone\n")
    assert [(line, code) for line, code in codes(driver) if code in ("HPC542", "HPC113")] == [(8, "HPC542"),
                                                                                             (9, "HPC113")]


def test_line_numbers_a_message_names_are_the_drivers():
    driver = ("#!/bin/bash\nfor fmt in a b; do\nsbatch <<EOF\n#!/bin/bash\n#SBATCH --time=01:00:00\n"
              "srun python train.py --fmt ${fmt}\necho done\nEOF\ndone\n")
    [f] = found(driver, "HPC527")
    assert "echo on line 7" in f.message


def test_a_job_variable_filled_in_too_early_is_told_once_by_hpc542_not_again_by_hpc502():
    text = ("#!/bin/bash\nfor lr in 1 2; do\nsbatch <<EOF\n#!/bin/bash\n#SBATCH --ntasks=4\n#SBATCH --time=01:00:00\n"
            "srun bash -c \"python train.py --rank $SLURM_PROCID --lr $lr\"\nEOF\ndone\n")
    assert "HPC502" in {f.code for f in lint(text.replace("$SLURM_PROCID", "\\$SLURM_PROCID"))}  # escaped: the job's
    assert [f.code for f in lint(text) if f.line == 7] == ["HPC542"]


# --- HPC544: a lower-case name the driver never sets -------------------------------------------------------------------

@pytest.mark.parametrize(("driver", "reported"), [
    ("for task_i in a b; do\nsbatch <<EOF\n" + JOB + "python main.py --task ${task}\nEOF\ndone\n", True),
    ("for task in a b; do\nsbatch <<EOF\n" + JOB + "python main.py --task ${task}\nEOF\ndone\n", False),
    ("read -r task < tasks.txt\nsbatch <<EOF\n" + JOB + "python main.py --task $task\nEOF\n", False),
    ("sbatch <<EOF\n" + JOB + "python main.py --data $SCRATCH/data\nEOF\n", False),     # the environment's
    ("sbatch <<EOF\n" + JOB + "name=x\necho \\$name $name\nEOF\n", False),            # the job sets it (HPC542)
    ("sbatch <<'EOF'\n" + JOB + "python main.py --task ${task}\nEOF\n", False),       # quoted: the job's own
    ("get() { local task=$1; sbatch <<EOF\n" + JOB + "python main.py --task $task\nEOF\n}\nget a\n", False),
])
def test_a_lower_case_name_nothing_sets_is_reported(driver, reported):
    [*hits] = found("#!/bin/bash\n" + driver, "HPC544")
    assert bool(hits) is reported
    if reported:
        assert "(${task_i}?)" in hits[0].message


# --- sbatch's own options on its command line override the job script's -------------------------------------------

TRAIN = "srun torchrun --standalone --nproc-per-node=4 train.py\napptainer exec img.sif python check.py\n"


@pytest.mark.parametrize("submit", [
    "sbatch --parsable -N 2 --gres=gpu:4 <<'EOF'\n#!/bin/bash\n#SBATCH --time=01:00:00\n" + TRAIN + "EOF\n",
    "cat > job.sh <<'EOF'\n#!/bin/bash\n#SBATCH --time=01:00:00\n" + TRAIN + "EOF\nsbatch --nodes=2 --gres gpu:4 job.sh\n",
    "for n in 2; do\nsbatch --nodes=$n --gres=gpu:4 <<EOF\n#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --nodes=1\n"
    + TRAIN + "EOF\ndone\n",
])
def test_the_command_lines_options_are_the_jobs(submit):
    driver = "#!/bin/bash\n" + submit
    got = {f.code: f for f in lint(driver)}
    assert "on 2 nodes" in got["HPC113"].message          # the command line's node count
    assert "HPC201" in got                                # the command line's GPUs
    assert "HPC330" not in got                            # the command line overrides: no option given twice
    assert got["HPC113"].fix is None                      # the job script lint read is not the file's text


def test_a_bad_value_on_the_command_line_is_reported_at_the_sbatch_line():
    driver = "#!/bin/bash\nsbatch -t 1.5h --job-name=$NAME <<'EOF'\n#!/bin/bash\nsrun hostname\nEOF\n"
    assert [(f.line, f.code) for f in lint(driver) if f.code.startswith("HPC3")] == [(2, "HPC301")]
    job = job_of(driver)
    assert job.text.split("\n")[1:3] == ["#SBATCH -t 1.5h", "#SBATCH --job-name=$NAME"] and job.unknown == {3}
    assert (job.after, job.count, job.body_line(4)) == (1, 2, 2)


# --- sbatch --wrap: the job script it makes is checked too --------------------------------------------------------------

def test_a_wrapped_command_is_checked_as_the_sh_script_sbatch_makes_of_it():
    [sub] = subs("#!/bin/bash\nsbatch --wrap='srun hostname' <<EOF\nignored\nEOF\n")   # --wrap: no script read
    assert sub.wrap and sub.body == "#!/bin/sh\nsrun hostname\n"
    driver = ('#!/bin/bash\nsbatch --gpus=2 --time=01:00:00 --wrap="torchrun --standalone --nproc_per_node=4 train.py"\n'
              'sbatch -N 2 -t 01:00:00 --wrap="srun torchrun --nnodes=2 --nproc_per_node=1 --rdzv_backend=c10d '
              '--rdzv_endpoint=$(hostname):29500 train.py"\n'
              "sbatch --time=01:00:00 --wrap 'echo $SLURM_JOB_ID; source env.sh'\n")
    got = [(f.line, f.code) for f in lint(driver)]
    assert (2, "HPC108") in got                  # 4 workers, 2 GPUs: the command line's --gpus
    assert (3, "HPC542") in got                  # $(hostname) runs on the login node
    assert (4, "HPC525") in got                  # sbatch --wrap runs /bin/sh: no source
    assert all(f.fix is None for f in lint(driver) if f.code == "HPC542")  # the line holds more than the command
    assert not any(code == "HPC542" and line == 4 for line, code in got)   # '$SLURM_JOB_ID' reaches the job


def test_sbatch_lines_in_a_driver_say_where_they_belong():
    driver = "#!/bin/bash\nexp=run1\n#SBATCH --nodelist=node01\nsbatch <<EOF\n" + JOB + "python train.py --name $exp\nEOF\n"
    [f] = found(driver, "HPC501")
    assert "submits its job itself (sbatch on line 4)" in f.message and "the here-document on line 4" in f.message
    job = "#!/bin/bash\nmodule load x\n#SBATCH --time=01:00:00\nsrun a\n"
    assert "move it above the first command" in found(job, "HPC501")[0].message


def test_a_written_file_submitted_from_a_command_substitution_is_read():
    driver = ("#!/bin/bash\ncat > job.sh <<EOF\n#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --time=01:00:00\n"
              "srun torchrun --standalone --nproc-per-node=1 train.py\nEOF\nJOBID=$(sbatch --parsable -N 3 job.sh)\n")
    [f] = found(driver, "HPC113")
    assert f.line == 6 and "on 3 nodes" in f.message and "submitted on line 8" in f.message
