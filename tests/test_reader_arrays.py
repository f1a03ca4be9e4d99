"""Options held in a bash array (``OPTS=(--nv -B /data)`` then ``apptainer exec "${OPTS[@]}" IMG``): the reader
keeps the array among the options, so the image, the program and the GPU checks stay right, and the script
read back passes bash exactly the same words."""

from __future__ import annotations

from helpers import run_with_stand_ins
from hpcwidgets.lint import lint
from hpcwidgets.parse.workflow import parse_script
from hpcwidgets.render import render
from hpcwidgets.spec._words import Verbatim
from hpcwidgets.spec.common import kept_reference, stray_words

ONE_LINE = """#!/bin/bash
#SBATCH --gres=gpu:1
OPTS=(--nv -B /data:/data)
srun apptainer exec "${OPTS[@]}" img.sif python train.py --lr 0.1
"""
MULTI_LINE = """#!/bin/bash
#SBATCH --gres=gpu:1
OPTS=(
  --nv \\
  -B "/data x:/data"
)
srun apptainer exec --cleanenv "${OPTS[@]}" img.sif python train.py
"""
IN_A_BRANCH = """#!/bin/bash
#SBATCH --gres=gpu:1
OPTS=()
if [[ -n $SLURM_JOB_GPUS ]]; then OPTS=(--nv); fi
apptainer exec ${OPTS[*]} img.sif python train.py
"""
UNKNOWN = """#!/bin/bash
#SBATCH --gres=gpu:1
mapfile -t OPTS < opts.txt
apptainer exec "${OPTS[@]}" img.sif python train.py
"""


def codes(text: str) -> list[str]:
    return [f.code for f in lint(text)]


def test_an_array_of_options_before_the_image_is_kept_among_the_options():
    c = parse_script(ONE_LINE).container
    assert c.image == "img.sif"
    assert c.extra == (Verbatim('"${OPTS[@]}"'),) and not c.nv
    assert parse_script(ONE_LINE).program == ("python", "train.py", "--lr", "0.1")


def test_an_array_over_several_lines_with_a_quoted_element_is_read_the_same_way():
    w = parse_script(MULTI_LINE)
    assert w.container.image == "img.sif" and w.container.cleanenv
    assert w.program == ("python", "train.py")


def test_an_array_set_in_a_branch_and_expanded_unquoted_is_options_too():
    w = parse_script(IN_A_BRANCH)
    assert w.container.image == "img.sif" and w.container.extra == (Verbatim("${OPTS[*]}"),)


def test_the_gpu_flag_may_be_in_the_array_so_hpc201_is_silent():
    for text in (ONE_LINE, MULTI_LINE, IN_A_BRANCH, UNKNOWN):
        assert "HPC201" not in codes(text), text
    # the same step without the array is still an error
    assert "HPC201" in codes(ONE_LINE.replace('"${OPTS[@]}" ', ""))


def test_an_array_the_reader_cannot_see_into_stays_where_it_was():
    # its elements come from a file: the reader does not guess that they are options (they may hold the image), so
    # the line is kept as written, a set-up line of the job, and read back word for word
    w = parse_script(UNKNOWN)
    assert w.container is None and 'apptainer exec "${OPTS[@]}" img.sif python train.py' in w.job.setup
    assert 'apptainer exec "${OPTS[@]}" img.sif python train.py' in render(w, validate=False)


TORCHRUN_LISTS = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
DIST=(--nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$(hostname):29500")
srun torchrun "${DIST[@]}" train.py --epochs 3
"""


def test_a_list_before_torchrun_s_script_holds_its_options_and_nothing_is_said_missing():
    """Megatron-LM's launchers pass torchrun's options in an array: the script stays the script, no rule says an
    option is missing (it may be in the array), and no fix rewrites the line (quoting the array would pass one word)."""
    from hpcwidgets.fixes import fix_script
    for text in (TORCHRUN_LISTS, TORCHRUN_LISTS.replace('"${DIST[@]}"', '"$@"')):
        launcher = parse_script(text).launcher
        assert launcher.script == "train.py" and launcher.options_out_of_sight, text
        assert not [c for c in codes(text) if c in ("HPC103", "HPC112", "HPC116")], codes(text)
        assert fix_script(text)[0] == text
    with_fields = TORCHRUN_LISTS.replace("--nnodes=2 ", "").replace('"${DIST[@]}"', '--nnodes=2 "${DIST[@]}"')
    assert parse_script(with_fields).launcher.nnodes == "2"
    assert not [c for c in codes(with_fields) if c in ("HPC103", "HPC116")]
    many = TORCHRUN_LISTS.replace("--ntasks-per-node=1", "--ntasks-per-node=4")
    (hit,) = [f for f in lint(many) if f.code == "HPC101"]
    assert "--nproc-per-node= " not in hit.message and hit.fix is None


def test_the_model_accepts_a_kept_array_but_not_other_words():
    assert kept_reference(Verbatim('"${OPTS[@]}"')) and kept_reference(Verbatim("${A[*]}"))
    assert not kept_reference('"${OPTS[@]}"')  # typed in a form, it is text, not a reference kept from a script
    assert stray_words((Verbatim('"${OPTS[@]}"'), "--writable-tmpfs")) == []
    assert parse_script(ONE_LINE).problems() == []


def test_read_back_passes_bash_the_same_words(tmp_path):
    for i, text in enumerate((ONE_LINE, MULTI_LINE)):
        once = render(parse_script(text))
        assert render(parse_script(once)) == once
        first = run_with_stand_ins(text, tmp_path / f"a{i}", ["srun", "apptainer"])
        second = run_with_stand_ins(once, tmp_path / f"b{i}", ["srun", "apptainer"])
        assert [c["argv"] for c in first if c["prog"] == "apptainer"] == \
            [c["argv"] for c in second if c["prog"] == "apptainer"]
