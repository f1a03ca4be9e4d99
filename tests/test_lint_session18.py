"""Session 18's lint changes.

- HPC536: a placeholder with a blank inside on an #SBATCH line (``--account=<account name>``) is named as the
  placeholder it is, and HPC310 leaves alone the stray word it splits into; a placeholder in the script of a
  ``bash -c`` that bash cannot read is reported too (bash reads that script only when the step starts).
"""

from __future__ import annotations

import pytest

from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def codes(text: str) -> set[tuple[str, int]]:
    return {(f.code, f.line) for f in lint(text)}


def test_a_placeholder_with_a_blank_on_an_sbatch_line_is_one_placeholder() -> None:
    found = [f for f in lint(HEAD + "#SBATCH --account=<account name>\npython t.py\n") if f.severity == "error"]
    assert [(f.code, f.line) for f in found] == [("HPC536", 3)]
    assert "<account name> is a placeholder" in found[0].message


def test_a_stray_word_that_is_no_placeholder_is_still_unreadable() -> None:
    assert ("HPC310", 3) in codes(HEAD + "#SBATCH --account=proj name\npython t.py\n")


@pytest.mark.parametrize("directive", ['--comment="<ECCV deadline>"', '--job-name="<my job>"'])
def test_free_text_with_a_blank_is_left_alone(directive: str) -> None:
    assert not {c for c in codes(HEAD + f"#SBATCH {directive}\npython t.py\n") if c[0] in ("HPC536", "HPC310")}


def test_a_job_name_with_a_blank_left_unquoted_is_unreadable_not_a_placeholder() -> None:
    found = codes(HEAD + "#SBATCH -J <my job>\npython t.py\n")
    assert ("HPC310", 3) in found and ("HPC536", 3) not in found


@pytest.mark.parametrize("script", ["python train.py --data <DATA_DIR>", "cd <WORK_DIR> && python train.py <ARGS>"])
def test_a_placeholder_in_a_bash_c_script_bash_cannot_read(script: str) -> None:
    found = [f for f in lint(HEAD + f"srun bash -c '{script}'\n") if f.code in ("HPC536", "HPC000")]
    assert [(f.code, f.line) for f in found] == [("HPC536", 3)]
    assert "bash -c" in found[0].message and "syntax error" in found[0].message


def test_a_placeholder_in_a_bash_c_script_that_reads_gets_the_redirection_message() -> None:
    found = [f for f in lint(HEAD + "srun bash -c 'python train.py --data <DATA_DIR> --epochs 3'\n")
             if f.code == "HPC536"]
    assert [f.line for f in found] == [3] and "a file named DATA_DIR" in found[0].message


@pytest.mark.parametrize("script", ['echo "usage: train.py <config>"', "sort < in.txt > out.txt",
                                    "python train.py 2>&1 | tee log"])
def test_bash_c_scripts_without_a_placeholder_are_left_alone(script: str) -> None:
    assert not [f for f in lint(HEAD + f"srun bash -c '{script}'\n") if f.code == "HPC536"]


# --------------------------------------------------------------------------------------------
# a superscript digit where a count or a port goes: str.isdigit() takes it, int() refuses it

NODES = "#!/bin/bash\n#SBATCH -N 2\n#SBATCH --ntasks-per-node=1\n#SBATCH -t 10\n"


@pytest.mark.parametrize("line", [
    "mpirun -np ² ./a.out",
    "srun mpirun -np ² ./a.out",
    "mpirun --map-by ppr:²:node ./a.out",
    "torchrun --rdzv-endpoint=h:² --rdzv-backend=c10d --nnodes=2 --nproc-per-node=2 t.py",
    "srun torchrun --master-port=² --nnodes=2 --nproc-per-node=2 t.py",
    "srun torchrun --nnodes=2 --nproc-per-node=² --node-rank=² t.py",
    "srun accelerate launch --num_machines 2 --machine_rank ² t.py",
    "srun python -m torch.distributed.run --nproc_per_node=² --nnodes=² t.py",
    "srun --ntasks-per-node=² --gpus-per-task=² python t.py",
])
def test_a_superscript_digit_is_no_number_and_no_crash(line: str) -> None:
    """(These raised ValueError from int('²').) The digit is read as what it is to Slurm and the launchers' C
    parsers: a word that is no number, as a letter there would be."""
    for profile in (None, "generic"):
        found = {f.code for f in lint(NODES + line + "\n", profile)}
        assert found == {f.code for f in lint(NODES + line.replace("²", "x") + "\n", profile)}


def test_a_placeholder_in_doubled_brackets_on_an_sbatch_line() -> None:
    found = [f for f in lint(HEAD + "#SBATCH --account=<<PROJECT>>\npython t.py\n") if f.code == "HPC536"]
    assert [f.line for f in found] == [3] and "<<PROJECT>> is a placeholder" in found[0].message


def test_a_here_document_is_no_placeholder() -> None:
    assert not [f for f in lint(HEAD + "cat <<EOF > a.yaml\nx: 1\nEOF\npython t.py\n") if f.code == "HPC536"]


# --------------------------------------------------------------------------------------------
# HPC314: a carriage return inside a line of an LF file is the script's own character, no line end

def test_a_carriage_return_inside_a_line_is_left_alone() -> None:
    text = HEAD + 'sed -i "s/\r//g" input.csv\nsrun python t.py\n'
    assert not [f for f in lint(text) if f.code == "HPC314"]


@pytest.mark.parametrize("text, kind", [
    ("#!/bin/bash\r#SBATCH --time=01:00:00\rsrun python t.py\r", "old Mac"),
    ("#!/bin/bash\r#SBATCH --time=01:00:00\rsrun python t.py\r\n", "old Mac"),   # an LF added at the end
    ("#!/bin/bash\r\n#SBATCH --time=01:00:00\r\nsed 's/\r//' a\r\n", "Windows"),  # a CR inside a CRLF line
])
def test_line_ends_of_carriage_returns_are_reported_and_fixed(text: str, kind: str) -> None:
    found = [f for f in lint(text) if f.code == "HPC314"]
    assert len(found) == 1 and kind in found[0].message
    fixed = found[0].fix.text
    assert "\r\n" not in fixed and fixed.count("\n") >= 3
    assert ("s/\r//" in fixed) == ("s/\r//" in text)   # the CR inside the sed expression stays
