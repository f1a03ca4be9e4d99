"""Session 19: a script read back keeps more of its own layout when it is saved after an edit.

- A launcher line the renderer wraps otherwise than the script (``srun … torchrun … train.py ARGS`` over the
  author's continuation lines) keeps the author's lines when words are changed in place, added after a word or taken
  out, in several places at once; only words moved bring the renderer's own layout back.
- A paragraph the reader took as one command (a loop, a continued line, a here-document, among other lines) stays one
  command, its lines as typed, when a line of it is edited in a form's Commands box; a compound command typed afresh
  is one command too.

Every script written here is also read back, to check it says what the model says.
"""

from __future__ import annotations

import pytest

from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.render import render
from hpcwidgets.spec.slurm import SlurmJob
from hpcwidgets.widgets.state import from_control, kept_items

LAUNCH = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --gres=gpu:4

head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun --ntasks-per-node=1 apptainer exec --nv img.sif \\
    torchrun --nnodes=2 --nproc-per-node=4 \\
    --rdzv-backend=c10d --rdzv-endpoint=$head:29500 \\
    train.py --epochs 10 --lr 0.1 \\
    --batch 32
"""
ARGS = ("--epochs", "10", "--lr", "0.1", "--batch", "32")


def _saved(text: str, **launcher) -> str:
    """``text`` read back as a workflow, its launcher's fields changed, saved; checked to read back as that model."""
    model = parse_script(text)
    edited = model.replace(launcher=model.launcher.replace(**launcher))
    out = render(edited, validate=False)
    back = parse_script(out)
    assert (back.srun, back.container, back.launcher) == (edited.srun, edited.container, edited.launcher)
    return out


def _step(text: str) -> str:
    return text.split("head -n 1)\n", 1)[1]


# --- an edited launcher line keeps its own wrapping ------------------------------------------------------------

def test_a_launcher_read_back_and_saved_unchanged_is_the_same_text():
    assert render(parse_script(LAUNCH), validate=False) == LAUNCH


def test_words_changed_in_two_places_on_two_lines_are_changed_in_place():
    out = _saved(LAUNCH, args=("--epochs", "20", "--lr", "0.1", "--batch", "64"))
    assert out == LAUNCH.replace("--epochs 10", "--epochs 20").replace("--batch 32", "--batch 64")


def test_words_changed_with_an_option_of_the_launcher_are_changed_in_place():
    out = _saved(LAUNCH, nproc_per_node="2", args=("--epochs", "20", *ARGS[2:]))
    assert out == LAUNCH.replace("--nproc-per-node=4", "--nproc-per-node=2").replace("--epochs 10", "--epochs 20")


@pytest.mark.parametrize("args, line", [
    ((*ARGS, "--seed", "7"), "    --batch 32 --seed 7\n"),                          # at the end: on the last line
    ((*ARGS[:4], "--seed", "7", *ARGS[4:]), "    train.py --epochs 10 --lr 0.1 --seed 7 \\\n"),  # on 0.1's line
    ((*ARGS, "my run"), "    --batch 32 'my run'\n"),                            # a word as the renderer quotes it
])
def test_words_added_go_at_the_end_of_the_line_of_the_word_they_follow(args, line):
    out = _saved(LAUNCH, args=args)
    assert line in out
    assert len(out.splitlines()) == len(LAUNCH.splitlines())


@pytest.mark.parametrize("args, step_end", [
    (ARGS[:4], "    train.py --epochs 10 --lr 0.1\n"),                          # a continuation line's words: the line
    (ARGS[2:], "    train.py --lr 0.1 \\\n    --batch 32\n"),
    (ARGS[:2] + ARGS[4:], "    train.py --epochs 10 \\\n    --batch 32\n"),
])
def test_words_taken_out_go_with_their_gap_and_the_other_lines_stay(args, step_end):
    out = _saved(LAUNCH, args=args)
    assert out.startswith(LAUNCH.split("    train.py")[0]) and out.endswith(step_end)


def test_a_launcher_option_added_goes_among_the_lines_as_read():
    """The renderer writes a new option on a line of its own; the script's lines take it next to a word around it."""
    out = _saved(LAUNCH, max_restarts=3)
    # after the word it follows, at the end of that word's line (the script writes it bare, the renderer quoted)
    assert "--rdzv-endpoint=$head:29500 --max-restarts=3 \\\n    train.py --epochs 10 --lr 0.1 \\\n" in out
    assert len(out.splitlines()) == len(LAUNCH.splitlines())


def test_words_moved_bring_the_renderers_layout_back():
    out = _saved(LAUNCH, args=("--batch", "32", "--epochs", "10", "--lr", "0.1"))
    assert "  train.py --batch 32 --epochs 10 --lr 0.1\n" in _step(out)
    assert "    torchrun --nnodes=2 --nproc-per-node=4 \\\n" not in out


def test_words_swapped_within_one_line_as_read_stay_on_it():
    out = _saved(LAUNCH, args=("--lr", "0.1", "--epochs", "10", "--batch", "32"))
    assert out == LAUNCH.replace("--epochs 10 --lr 0.1", "--lr 0.1 --epochs 10")


def test_a_comment_at_the_end_of_the_step_stays_after_the_words_added():
    text = LAUNCH.replace("--batch 32\n", "--batch 32  # the paper's value\n")
    out = _saved(text, args=(*ARGS, "--seed", "7"))
    assert out == text.replace("--batch 32  #", "--batch 32 --seed 7  #")


def test_a_word_the_script_spells_otherwise_is_found_by_the_words_on_its_other_side():
    # the renderer quotes the endpoint, the script does not: the word before train.py places the option added
    text = LAUNCH.replace("--rdzv-endpoint=$head:29500 \\\n    train.py", "--rdzv-endpoint=$head:29500 train.py")
    out = _saved(text, max_restarts=3)
    assert "--rdzv-endpoint=$head:29500 --max-restarts=3 train.py" in out


def test_a_step_of_a_job_form_written_as_read_takes_the_lines_as_typed():
    """A job's commands are written as the person typed them: a line added to one stays a line of its own."""
    text = "#!/bin/bash\n#SBATCH --time=10\nsrun python train.py \\\n  --epochs 10\n"
    job = parse_job(text)
    command = job.commands[0] + " \\\n  --seed 7"
    out = render(job.replace(commands=(command,)), validate=False)
    assert out == text.replace("--epochs 10\n", "--epochs 10 \\\n  --seed 7\n")


# --- a paragraph edited in the Commands box stays one command ------------------------------------------------------

PARAGRAPH = ("srun hostname\nfor f in a b c; do\n    srun echo \"$f\"\ndone\ncat > cfg.txt <<EOF\nlr: 0.1\nEOF\n"
             "srun python train.py \\\n    --epochs 10")
SCRIPT = f"#!/bin/bash\n#SBATCH --nodes=1\n\n{PARAGRAPH}\n"
COMMANDS = next(f for f in SlurmJob.field_specs() if f.name == "commands")


def _read(typed: str, current: tuple[str, ...] = (PARAGRAPH,)) -> tuple[str, ...]:
    value, error = from_control("lines", COMMANDS, typed, current)
    assert not error
    return value  # type: ignore[no-any-return]


@pytest.mark.parametrize("old, new", [
    ('    srun echo "$f"', '    srun echo "got $f"'),            # inside a loop
    ("for f in a b c; do", "for f in a b; do"),                  # a loop's first line
    ("lr: 0.1", "lr: 0.2"),                                      # a here-document's body
    ("    --epochs 10", "    --epochs 20"),                      # a continuation line
    ("srun hostname", "srun -N1 hostname"),                      # a simple command among them
])
def test_a_line_edited_in_a_paragraph_leaves_it_one_command_as_typed(old, new):
    assert _read(PARAGRAPH.replace(old, new)) == (PARAGRAPH.replace(old, new),)


def test_lines_added_inside_a_paragraph_join_it_and_lines_after_it_are_a_command_of_their_own():
    inside = PARAGRAPH.replace('"$f"\n', '"$f"\n    srun echo more\n')
    assert _read(inside) == (inside,)
    assert _read(PARAGRAPH.replace("srun hostname", "srun -N1 hostname") + "\necho done") == \
        (PARAGRAPH.replace("srun hostname", "srun -N1 hostname"), "echo done")
    assert _read(PARAGRAPH + "\necho done") == (PARAGRAPH, "echo done")  # the paragraph as it was: kept


def test_a_line_taken_out_of_a_paragraph_leaves_the_rest_one_command():
    shorter = PARAGRAPH.replace("srun hostname\n", "")
    assert _read(shorter) == (shorter,)


def test_paragraphs_left_as_they_were_are_kept_as_they_were():
    current = ("module list\nsrun hostname", PARAGRAPH)
    assert kept_items("\n".join(current), [(c, c) for c in current], shell=True) == [(c, False) for c in current]
    edited = "module list\nsrun -N1 hostname"
    assert _read("\n".join([edited, PARAGRAPH]), current) == (edited, PARAGRAPH)


@pytest.mark.parametrize("typed, items", [
    ("for f in a b; do\n  echo $f\ndone\necho after", ("for f in a b; do\n  echo $f\ndone", "echo after")),
    ("if [ -f x ]; then\n  cat x\nfi", ("if [ -f x ]; then\n  cat x\nfi",)),
    ("setup() {\n  mkdir -p out\n}\nsetup", ("setup() {\n  mkdir -p out\n}", "setup")),
    ("srun a \\\n  --x 1\necho done", ("srun a \\\n  --x 1", "echo done")),
    ("echo $(hostname)\necho if", ("echo $(hostname)", "echo if")),  # opens nothing: a line each
])
def test_a_compound_command_typed_afresh_is_one_command(typed, items):
    assert _read(typed, ()) == items


def test_the_slurm_form_writes_a_loaded_paragraph_with_one_line_edited_in_its_place():
    pytest.importorskip("ipywidgets")
    from hpcwidgets.widgets import SlurmBuilder
    builder = SlurmBuilder.from_script(SCRIPT)
    assert builder.text == SCRIPT
    box = builder.controls["commands"]
    box.value = box.value.replace('srun echo "$f"', 'srun echo "got $f"')
    assert builder.text == SCRIPT.replace('srun echo "$f"', 'srun echo "got $f"')
    assert not [f for f in builder.findings if f.code in ("FORM", "LOAD")]
