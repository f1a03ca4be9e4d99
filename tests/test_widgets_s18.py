"""Session 18: a command written over several lines stays one command when a line of it is edited in a form's
shell-line box (Commands, Set-up): its continuation lines and a here-document's indented body are kept as typed."""

from __future__ import annotations

import pytest

from hpcwidgets.widgets import SlurmBuilder

CONTINUED = ("#!/bin/bash\n#SBATCH --time=01:00:00\ncd \"$SLURM_SUBMIT_DIR\"\n"
             "srun python train.py \\\n  --epochs 10 \\\n  --lr 0.1\n")
HEREDOC = ("#!/bin/bash\n#SBATCH --time=01:00:00\ncd \"$SLURM_SUBMIT_DIR\"\ncat > config.yaml <<EOF2\nmodel:\n"
           "  lr: 0.1\n  layers: 4\nEOF2\nsrun python train.py --config config.yaml\n")


def edited(text: str, box: str, old: str, new: str) -> str:
    b = SlurmBuilder.from_script(text)
    control = b.controls[box]
    assert old in control.value
    control.value = control.value.replace(old, new, 1)
    assert not [f for f in b.findings if f.code in ("FORM", "LOAD")]
    return b.text


def test_a_word_edited_in_a_continued_command_keeps_its_continuation_lines():
    assert edited(CONTINUED, "commands", "--lr 0.1", "--lr 0.01") == CONTINUED.replace("--lr 0.1", "--lr 0.01")


def test_a_here_document_keeps_its_indented_body_when_a_line_near_it_is_edited():
    out = edited(HEREDOC, "commands", "srun python train.py", "srun python train.py --fast")
    assert "cat > config.yaml <<EOF2\nmodel:\n  lr: 0.1\n  layers: 4\nEOF2\n" in out
    assert out.endswith("srun python train.py --fast --config config.yaml\n")


def test_a_here_document_body_edited_keeps_its_indentation():
    # writing a config file is set-up (the job's work is the srun that reads it): its here-document is in Set-up
    out = edited(HEREDOC, "setup", "  lr: 0.1", "  lr: 0.2")
    assert "model:\n  lr: 0.2\n  layers: 4\nEOF2\n" in out


@pytest.mark.parametrize("typed, items", [
    ("echo a\necho b", ("echo a", "echo b")),                         # one command a line, as before
    ("  echo a  \n\necho b", ("echo a", "echo b")),                    # blank lines and edges do not count
    ("srun a \\\n  --x 1\necho done", ("srun a \\\n  --x 1", "echo done")),
    ("python - <<'PY'\nfor k in range(2):\n    print(k)\nPY", ("python - <<'PY'\nfor k in range(2):\n    print(k)\nPY",)),
])
def test_typed_commands_are_read_as_bash_reads_them(typed, items):
    b = SlurmBuilder(submit=False)
    b.controls["commands"].value = typed
    assert b.spec.commands == items


# --------------------------------------------------------------------------------------------
# the reader's split of a plain job, and lines added to a script read back (CLI and forms alike)

@pytest.mark.parametrize("work", ["time srun python train.py", "exec srun python train.py",
                                  "env OMP_NUM_THREADS=4 srun python train.py", "nohup python train.py"])
def test_work_behind_a_wrapper_is_work(work):
    from hpcwidgets.parse import parse_job
    job = parse_job(f'#!/bin/bash\n#SBATCH --time=01:00:00\ncd "$SLURM_SUBMIT_DIR"\n{work}\n')
    assert job.setup == ('cd "$SLURM_SUBMIT_DIR"',) and job.commands == (work,)


def test_exec_with_only_a_redirection_is_set_up():
    from hpcwidgets.parse import parse_job
    job = parse_job("#!/bin/bash\n#SBATCH --time=01:00:00\nexec > run.log 2>&1\nsrun python train.py\n")
    assert job.setup == ("exec > run.log 2>&1",) and job.commands == ("srun python train.py",)


def test_a_command_added_after_a_last_line_continued_into_a_blank_line_is_no_argument_of_it():
    from hpcwidgets.parse import parse_job
    from hpcwidgets.render import render
    text = "#!/bin/bash\n#SBATCH --time=01:00:00\nsrun python train.py \\\n  --epochs 10 \\\n\n"
    job = parse_job(text)
    assert render(job.replace(commands=(*job.commands, "echo done"))) == text + "echo done\n"
