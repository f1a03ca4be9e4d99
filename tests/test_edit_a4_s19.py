"""Session 19, E15 (auditor A4, the daily edit): a line typed below a last command that ends in a continuation
backslash is that command's (as bash reads it); editing one line of a paragraph in a form box keeps the other lines
byte for byte (``\\ `` and blanks inside a quoted string are part of what runs); a backslash that is the file's last
byte is dropped, as bash drops it; ``--set program=…``/``launcher.args=…``/``--program`` keep a word the script
wrote as shell code when it is typed again as written, as the forms do; the instance refusal quotes the script's
own instance commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.parse import parse_script
from hpcwidgets.spec import Verbatim
from hpcwidgets.spec.workflow import refused_edit
from hpcwidgets.widgets import SlurmBuilder, WorkflowBuilder
from hpcwidgets.widgets.state import kept_items
from test_cli_s18 import run  # the CLI run that also asserts no traceback

HEAD = "#!/bin/bash\n#SBATCH --time=10\n"
#: the last command goes on with a continuation backslash into the end of the file
LAST_GOES_ON = HEAD + "srun python train.py \\\n  --epochs 10 \\\n"


def type_keys(box, text: str) -> None:
    """Type ``text`` at the end of a box key by key, as a control with continuous updates sends it."""
    value = box.value
    for key in text:
        value += key
        box.value = value
        value = box.value


def script(tmp_path: Path, text: str, name: str = "job.sh") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return str(path)


# ---------------------------------------------------------------------------------------------------------------
# 1. a line typed below a command that goes on

@pytest.mark.parametrize("edit_first", [False, True])
def test_a_line_typed_below_a_last_command_that_goes_on_is_that_command(edit_first):
    b = SlurmBuilder.from_script(LAST_GOES_ON)
    box = b.controls["commands"]
    if edit_first:
        box.value = box.value.replace("10", "20")
    type_keys(box, "\n  --seed 7")
    epochs = "20" if edit_first else "10"
    assert b.spec.commands == (f"srun python train.py \\\n  --epochs {epochs} \\\n  --seed 7",)
    # and the saved script has it, as the command's next line (the layout writer used to drop it)
    assert b.text.endswith(f"srun python train.py \\\n  --epochs {epochs} \\\n  --seed 7\n")
    assert not [f for f in b.findings if f.code in ("FORM", "LOAD")]


def test_a_blank_line_below_a_command_that_goes_on_leaves_it_as_it_was():
    shown = [("srun a \\\n  --x \\", "srun a \\\n  --x \\")]
    assert kept_items("srun a \\\n  --x \\\n\necho next", shown, shell=True) == [
        ("srun a \\\n  --x \\", False), ("echo next", True)]


def test_a_line_below_a_backslash_blank_is_a_command_of_its_own():
    # "\ " quotes a blank: the command ends there, and the line below runs on its own
    shown = [("srun a \\ ", "srun a \\ ")]
    assert kept_items("srun a \\ \necho next", shown, shell=True) == [("srun a \\ ", False), ("echo next", True)]


def test_outside_a_shell_box_lines_are_items_of_their_own():
    shown = [("a \\", "a \\")]
    assert kept_items("a \\\nb", shown) == [("a \\", False), ("b", True)]


# ---------------------------------------------------------------------------------------------------------------
# 2. the unedited lines of an edited paragraph stay byte for byte

LOOP = HEAD + 'for s in 1 2; do\n  srun singularity exec img.sif \\ \n    python run.py $s\n  echo "seed $s"\ndone\n'


def test_editing_one_line_of_a_loop_keeps_a_backslash_blank_on_another():
    b = SlurmBuilder.from_script(LOOP)
    box = b.controls["commands"]
    box.value = box.value.replace('"seed $s"', '"seed: $s"')
    assert b.spec.commands == ('for s in 1 2; do\n  srun singularity exec img.sif \\ \n    python run.py $s\n'
                               '  echo "seed: $s"\ndone',)
    assert "  srun singularity exec img.sif \\ " in b.text.split("\n")


def test_editing_one_line_keeps_trailing_blanks_inside_a_quoted_string():
    text = HEAD + 'srun echo -e "first\n second  \n third \n"\n'
    b = SlurmBuilder.from_script(text)
    box = b.controls["commands"]
    box.value = box.value.replace("third", "3rd")
    assert b.spec.commands == ('srun echo -e "first\n second  \n 3rd \n"',)


def test_the_edited_line_is_kept_as_typed_but_for_a_pasted_carriage_return():
    b = SlurmBuilder.from_script(LOOP)
    box = b.controls["commands"]
    box.value = box.value.replace('  echo "seed $s"', '  echo "seed $s" \\ \r')
    assert b.spec.commands[0].split("\n")[3] == '  echo "seed $s" \\ '


# ---------------------------------------------------------------------------------------------------------------
# 3. a backslash as the file's last byte

NO_FINAL_BREAK = HEAD + "srun python train.py \\\n  --epochs 10 \\"


def test_a_backslash_as_the_last_byte_is_read_as_bash_reads_it(capsys, tmp_path):
    path = script(tmp_path, NO_FINAL_BREAK)
    assert not [f for f in lint(NO_FINAL_BREAK) if f.code == "HPC000"]
    code, out, _ = run(capsys, "sbatch", "--from", path)
    assert code == 0 and out == NO_FINAL_BREAK  # an unchanged save: byte for byte
    code, out, _ = run(capsys, "sbatch", "--from", path, "--set", "time=20")
    assert code == 0 and out == NO_FINAL_BREAK.replace("--time=10", "--time=20")


def test_the_form_saves_a_script_ending_in_a_backslash_unchanged():
    assert SlurmBuilder.from_script(NO_FINAL_BREAK).text == NO_FINAL_BREAK


# ---------------------------------------------------------------------------------------------------------------
# 4. words kept as the script wrote them, on the command line

ARITH = HEAD + "srun python train.py \\\n    --workers $((SLURM_CPUS_PER_TASK*SLURM_NNODES)) \\\n    --epochs 10\n"
GLOB = HEAD + "srun python prep.py --in data/*.txt --out $(hostname).log\n"


@pytest.mark.parametrize("argv", [
    ["--set", "program=python train.py --workers $((SLURM_CPUS_PER_TASK*SLURM_NNODES)) --epochs 20"],
    ["--program", "python train.py --workers $((SLURM_CPUS_PER_TASK*SLURM_NNODES)) --epochs 20"],
])
def test_a_word_the_script_wrote_as_code_typed_again_stays_code(capsys, tmp_path, argv):
    code, out, _ = run(capsys, "workflow", "--from", script(tmp_path, ARITH), *argv)
    assert code == 0
    assert "    --workers $((SLURM_CPUS_PER_TASK*SLURM_NNODES)) \\\n    --epochs 20\n" in out


def test_a_glob_and_a_substitution_typed_again_stay_code_and_a_new_one_is_text(capsys, tmp_path):
    code, out, _ = run(capsys, "workflow", "--from", script(tmp_path, GLOB),
                       "--set", "program=python prep.py --in data/*.txt --out $(hostname).log --tag $(date)")
    assert code == 0
    # the forms' rule: what is typed is text, but for the words the script wrote, which stay as written
    assert "--in data/*.txt --out $(hostname).log --tag '$(date)'" in out


def test_launcher_args_keep_a_word_the_script_wrote_as_code(capsys, tmp_path):
    text = HEAD + "srun torchrun --standalone --nproc_per_node=4 train.py --rank-file=$(hostname).txt --epochs 10\n"
    code, out, _ = run(capsys, "workflow", "--from", script(tmp_path, text),
                       "--set", "launcher.args=--rank-file=$(hostname).txt --epochs 20")
    assert code == 0
    assert "train.py --rank-file=$(hostname).txt --epochs 20" in out


def test_the_kept_word_is_the_same_verbatim_word():
    model = parse_script(ARITH)
    kept = [w for w in model.program if isinstance(w, Verbatim)]
    assert [str(w) for w in kept] == ["$((SLURM_CPUS_PER_TASK*SLURM_NNODES))"]


# ---------------------------------------------------------------------------------------------------------------
# 5. the instance refusal quotes the script's own commands

RUN_INSTANCE = (HEAD + "apptainer instance run --nv old.sif srv\napptainer run instance://srv --port 8000\n"
                "apptainer instance stop srv\n")
START_INSTANCE = (HEAD + "singularity instance start --nv old.sif srv\nsingularity exec instance://srv python s.py\n"
                  "singularity instance stop srv\n")


@pytest.mark.parametrize("text, step, started, absent", [
    (RUN_INSTANCE, "(apptainer run instance://srv)", "'apptainer instance run … IMAGE srv'", "instance start"),
    (START_INSTANCE, "(singularity exec instance://srv)", "'singularity instance start … IMAGE srv'", "instance run"),
])
def test_the_instance_refusal_quotes_the_scripts_own_commands(text, step, started, absent):
    model = parse_script(text)
    for path, value in (("container.image", "new.sif"), ("container.runtime", "none")):
        why = refused_edit(model, path, value)
        assert step in why and started in why and absent not in why, why


def test_the_cli_refusal_names_the_instance_run_line(capsys, tmp_path):
    code, _, err = run(capsys, "workflow", "--from", script(tmp_path, RUN_INSTANCE), "--set", "container.image=n.sif")
    assert code == 2 and "change it on that apptainer instance run line" in err


def test_the_form_refusal_names_the_instance_run_line():
    b = WorkflowBuilder.from_script(RUN_INSTANCE)
    b.controls["container.image"].value = "new.sif"
    assert any("apptainer instance run" in f.message for f in b.findings if f.severity == "error")


@pytest.mark.parametrize("text", [
    "srun a \\ \necho next",     # the blank after the backslash is an argument; the next line runs on its own
    "srun a \\\n\nfor s in 1; do\n  echo $s\ndone",  # the blank line ends the continued command
])
def test_the_box_check_reads_line_ends_as_bash_does(text):
    from hpcwidgets.widgets.state import shell_problem
    assert shell_problem("Commands", text) == ""
