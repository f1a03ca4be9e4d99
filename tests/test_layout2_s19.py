"""Session 19 (audit A4, finding 2): a step whose word spans lines (``bash -c "…"`` over several lines) edited in a
way its lines as read cannot take in place is written in the renderer's layout, never with text in the wrong place.

The rewrite in place works on the text of the script's lines; a word it changes may stand inside a quoted word that
spans lines, where a quote typed in closes the outer quote, a line added to the body joins the line before and a word
added after the quoted word lands inside it. Every rewrite in place is now read back, and its words must be the
model's; when they are not, the step is written as the renderer writes it. Edits the lines can take stay in place.
"""

from __future__ import annotations

from hpcwidgets.parse import parse_script
from hpcwidgets.render import render
from hpcwidgets.render.script import _read_back

BASHC = """#!/bin/bash
#SBATCH --time=00:30:00
srun apptainer exec --nv img.sif /bin/bash -c "
    python3 train.py --arch a --seed 42
    python3 train.py --arch b --seed 42
"
"""
BODY = "\n    python3 train.py --arch a --seed 42\n    python3 train.py --arch b --seed 42\n"


def _saved(text: str, program: tuple[str, ...], **container) -> str:
    """``text`` read back as a workflow, given ``program`` (and container fields), saved; checked to read back as
    that model."""
    model = parse_script(text)
    edited = model.replace(program=program)
    if container:
        edited = edited.replace(container=edited.container.replace(**container))
    out = render(edited, validate=False)
    back = parse_script(out)
    assert (back.srun, back.container, back.program) == (edited.srun, edited.container, edited.program)
    return out


def test_the_script_is_read_as_one_word_spanning_lines():
    assert parse_script(BASHC).program == ("/bin/bash", "-c", BODY)


def test_saved_unchanged_it_is_the_same_text():
    assert render(parse_script(BASHC), validate=False) == BASHC


def test_a_line_added_to_the_body_stays_a_line_of_its_own():
    out = _saved(BASHC, ("/bin/bash", "-c", BODY + "echo done\n"))
    assert "--seed 42 echo done" not in out
    assert "\necho done\n" in out


def test_a_quote_typed_inside_the_body_does_not_close_the_outer_quote():
    out = _saved(BASHC, ("/bin/bash", "-c", BODY.replace("--arch a", '--arch "a b"')))
    assert '-c "\n    python3 train.py --arch "a b"' not in out


def test_a_word_added_after_the_quoted_word_is_a_word_of_its_own():
    out = _saved(BASHC, ("/bin/bash", "-c", BODY, "--name=ünï"))
    assert "42 ' '--name" not in out and "--name=ünï\n\"" not in out
    assert out.endswith("\n' '--name=ünï'\n")


def test_a_word_changed_inside_the_body_that_needs_no_quote_stays_in_place():
    out = _saved(BASHC, ("/bin/bash", "-c", BODY.replace("--arch b", "--arch c")))
    assert out == BASHC.replace("--arch b", "--arch c")


def test_the_image_changed_beside_the_word_spanning_lines_stays_in_place():
    out = _saved(BASHC, ("/bin/bash", "-c", BODY), image="new.sif")
    assert out == BASHC.replace("img.sif", "new.sif")


CONTINUED = """#!/bin/bash
#SBATCH --time=10
IN=in.lj
srun apptainer exec img.sif \\
    python train.py \\
    --in $IN --tag="$IN"
"""


def test_a_word_added_after_words_the_script_spells_otherwise_stays_in_its_lines():
    # the script writes $IN bare and --tag="$IN", the renderer "$IN" and "--tag=$IN": the same words, read back
    out = _saved(CONTINUED, ("python", "train.py", "--in", "$IN", "--tag=$IN", "--seed", "7"))
    assert out == CONTINUED.replace('--tag="$IN"', '--tag="$IN" --seed 7')


TORCHRUN = """#!/bin/bash
#SBATCH --nodes=2
srun torchrun --nnodes=$SLURM_JOB_NUM_NODES --nproc_per_node=4 train.py
"""


def test_a_neighbour_of_a_changed_word_keeps_its_own_spelling():
    model = parse_script(TORCHRUN)
    out = render(model.replace(launcher=model.launcher.replace(nproc_per_node=2)), validate=False)
    assert out == TORCHRUN.replace("=4", "=2")


# --- the read-back itself ---------------------------------------------------------------------------------------

def test_reading_back_resolves_quotes_continuations_and_comments():
    text = 'srun a \\\n  --x "$IN" \'$IN\' "two words" # don\'t\n'
    assert _read_back(text) == ["srun", "a", "--x", "\x00$IN", "$IN", "two words"]


def test_reading_back_keeps_a_continuation_inside_double_quotes_out_and_a_newline_in_single_quotes():
    assert _read_back('bash -c "a \\\nb" \'c\nd\'') == ["bash", "-c", "a b", "c\nd"]


def test_reading_back_tells_a_pattern_bash_expands_from_a_quoted_one():
    assert _read_back("ls *.txt") != _read_back("ls '*.txt'")
    assert _read_back("a 2>&1") == ["a", "2", ">", "&", "1"]
