"""A fix that only adds options inserts them into the line as written: every other character stays (the spelling
-B/-e/-H, the order, the layout, a $VAR bash may split); a fix that changes or removes words still rebuilds."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from hpcwidgets.cli import main
from hpcwidgets.fixes import apply_fix, fix_script
from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n"


def bash_reads(text: str) -> bool:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, "-n"], input=text, text=True, capture_output=True).returncode == 0


def codes(text: str) -> list[str]:
    return [f.code for f in lint(text)]


def only(text: str, code: str):
    found = [f for f in lint(text) if f.code == code]
    assert len(found) == 1, [f.format() for f in lint(text)]
    return found[0]


# the auditor's two scripts (a-scripts2/min): the fix used to respell the first and was withheld on the second
RESPELLED = HEAD + "apptainer run -B /tmp/d.sqfs:/data:image-src=/ -e --pwd /work -H /scratch/h img.sif python x.py\n"
WITH_VAR = HEAD + "singularity exec -B $PWD img.sif python y.py\n"


@pytest.mark.parametrize("before,after", [
    (RESPELLED,
     HEAD + "apptainer run --nv -B /tmp/d.sqfs:/data:image-src=/ -e --pwd /work -H /scratch/h img.sif python x.py\n"),
    (WITH_VAR, HEAD + "singularity exec --nv -B $PWD img.sif python y.py\n"),
    (HEAD + "apptainer exec -B /a:/b,/c -c img.sif python x.py\n",
     HEAD + "apptainer exec --nv -B /a:/b,/c -c img.sif python x.py\n"),
    # a program written with its path, which a rebuild would not write back
    (HEAD + "/usr/bin/apptainer exec -B $PWD img.sif python x.py\n",
     HEAD + "/usr/bin/apptainer exec --nv -B $PWD img.sif python x.py\n"),
    # the program's own options before the action
    (HEAD + "apptainer --debug exec -B /a img.sif python x.py\n",
     HEAD + "apptainer --debug exec --nv -B /a img.sif python x.py\n"),
    (HEAD + "singularity -s exec img.sif python x.py\n", HEAD + "singularity -s exec --nv img.sif python x.py\n"),
    (HEAD + "apptainer -c /etc/a.conf exec img.sif python x.py\n",
     HEAD + "apptainer -c /etc/a.conf exec --nv img.sif python x.py\n"),
    # continuation lines: the flag goes on the action's line, before its backslash
    (HEAD + "apptainer exec \\\n  -B /a:/b \\\n  img.sif python x.py\n",
     HEAD + "apptainer exec --nv \\\n  -B /a:/b \\\n  img.sif python x.py\n"),
    (HEAD + "apptainer \\\n  exec -B /a:/b img.sif python x.py\n",
     HEAD + "apptainer \\\n  exec --nv -B /a:/b img.sif python x.py\n"),
    # tabs stay tabs; what comes before and after the command stays
    (HEAD + "\tapptainer\texec\t-B /a img.sif python x.py\n",
     HEAD + "\tapptainer\texec --nv\t-B /a img.sif python x.py\n"),
    (HEAD + "cd /x && exec apptainer run img.sif  # the service\n",
     HEAD + "cd /x && exec apptainer run --nv img.sif  # the service\n"),
    (HEAD + "srun --ntasks=1 apptainer exec img.sif python x.py > log 2>&1\n",
     HEAD + "srun --ntasks=1 apptainer exec --nv img.sif python x.py > log 2>&1\n"),
    (HEAD + "for i in 1 2; do apptainer exec img.sif python x.py $i; done\n",
     HEAD + "for i in 1 2; do apptainer exec --nv img.sif python x.py $i; done\n"),
    # the container around a bash -c program: the flag lands before the string, not in it
    (HEAD + 'srun apptainer exec img.sif bash -c "cd /x && python x.py"\n',
     HEAD + 'srun apptainer exec --nv img.sif bash -c "cd /x && python x.py"\n'),
])
def test_the_gpu_flag_is_inserted_into_the_line_as_written(before: str, after: str) -> None:
    assert bash_reads(before)
    found = only(before, "HPC201")
    assert found.fix is not None and found.fix.description == "add --nv"
    assert apply_fix(before, found.fix) == after
    new, fixed = fix_script(before, select="HPC201")
    assert new == after and [f.code for f in fixed] == ["HPC201"]
    assert bash_reads(new) and "HPC201" not in codes(new)


def test_a_windows_line_keeps_its_carriage_return() -> None:
    text = (HEAD + "apptainer exec -B /a img.sif python x.py\n").replace("\n", "\r\n")
    new, fixed = fix_script(text, select="HPC201")
    assert [f.code for f in fixed] == ["HPC201"]
    assert new == (HEAD + "apptainer exec --nv -B /a img.sif python x.py\n").replace("\n", "\r\n")


def test_a_container_inside_bash_c_gets_no_fix() -> None:
    # the flag would land inside the string (and a rebuild would lose the rest of the script there)
    text = HEAD + "srun bash -c \"cd /x && apptainer exec img.sif python x.py\"\n"
    found = only(text, "HPC201")
    assert found.fix is None
    assert fix_script(text, select="HPC201") == (text, [])


def test_an_instance_started_without_the_flag_gets_it_at_its_start() -> None:
    text = HEAD + "apptainer instance start -B /a img.sif inst\napptainer exec instance://inst python x.py\n"
    found = only(text, "HPC201")
    assert found.line == 4 and found.fix is not None
    new, _ = fix_script(text, select="HPC201")
    assert new == text.replace("instance start -B", "instance start --nv -B")
    assert bash_reads(new) and "HPC201" not in codes(new)


def test_an_option_with_a_value_goes_at_the_end_of_the_options() -> None:
    # srun's --gpus-per-task=4 (HPC108) after the options written, before the command srun starts
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1\n"
            "#SBATCH --cpus-per-task=8\n"
            "srun -n 1 --ntasks-per-node=1 -c 32 apptainer exec --nv img.sif torchrun --standalone --nproc-per-node=4 "
            "train.py\n")
    found = only(text, "HPC108")
    new = apply_fix(text, found.fix)
    assert new == text.replace("-c 32 apptainer", "-c 32 --gpus-per-task=4 apptainer")
    assert bash_reads(new) and "HPC108" not in codes(new)


def test_a_bind_is_added_after_the_binds_written() -> None:
    # HPC226: the node-local folder bound last, in double quotes (it expands), the -B written before it kept
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:1\n#SBATCH --time=1:00:00\n"
            "tar -xf /project/data.tar -C $SLURM_TMPDIR\n"
            "apptainer exec -B /a:/b --nv img.sif python train.py --data $SLURM_TMPDIR/x\n")
    found = only(text, "HPC226")
    new = apply_fix(text, found.fix)
    assert new == text.replace("--nv img.sif", '--nv --bind "$SLURM_TMPDIR" img.sif')
    assert bash_reads(new) and "HPC226" not in codes(new)


def test_a_torchrun_option_goes_after_torchrun() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n"
            "srun torchrun --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=$(hostname):29500 train.py\n")
    found = only(text, "HPC112")
    new = apply_fix(text, found.fix)
    assert new == text.replace("srun torchrun ", "srun torchrun --nnodes=2 ")
    assert bash_reads(new) and "HPC112" not in codes(new)


def test_a_fix_that_moves_words_still_rebuilds_the_step() -> None:
    # HPC203 moves --nv before the image: not an insertion, so the step is written from its model
    text = HEAD + "apptainer exec -B /a:/b img.sif --nv python x.py\n"
    found = only(text, "HPC203")
    assert found.fix is not None and found.fix.text is None and found.fix.words
    new = apply_fix(text, found.fix)
    assert new == HEAD + "apptainer exec --nv --bind /a:/b img.sif python x.py\n"
    assert bash_reads(new)


def test_lint_fix_on_a_file_keeps_the_line(tmp_path, capsys) -> None:
    path = tmp_path / "job.sh"
    path.write_text(RESPELLED, encoding="utf-8")
    assert main(["lint", "--fix", str(path)]) == 0
    assert "fixed HPC201" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == RESPELLED.replace("apptainer run -B", "apptainer run --nv -B")
    assert (tmp_path / "job.sh.bak").read_text(encoding="utf-8") == RESPELLED
