"""Session 20 (E-parse): one source for the words rule, a cheaper keystroke in a box of shell lines, the ends of a
quoted string's lines in set-up lines, and a running instance started and used under the two names of Apptainer.

- The rule that reads what is typed into a field of shell words (a word written as a script's ``Verbatim`` word stays
  that word, any other is text) lives beside ``Verbatim`` in :mod:`hpcwidgets.spec._words`; the forms and the CLI's
  options and ``--set`` both call it, and the CLI no longer imports the forms' package for it.
- A box of shell lines compares its lines with the entries it was filled with (difflib) only when an entry shown over
  several lines may have been edited; the result is the comparison's, for any edit.
- A set-up command whose quoted string spans lines keeps the blanks that end its first line (they are in the value);
  a one-line command keeps a blank a backslash quotes.
- A script that starts an instance with ``singularity`` and runs the step in it with ``apptainer`` (or the reverse)
  is read as written and written back byte for byte, each line with its own program name.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcwidgets.errors import ValidationError
from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.render import render
from hpcwidgets.spec._words import WORDS_RULE, Verbatim, holds_words, words_from_text
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.slurm import SlurmJob
from hpcwidgets.spec.torchrun import Torchrun
from hpcwidgets.spec.workflow import Workflow, moved_out_of_instance, refused_edit
from hpcwidgets.widgets import state

HEAD = "#!/bin/bash\n#SBATCH --nodes=1\n\n"


# --- 1. the words rule, one source for the forms and the CLI -------------------------------------------------------

KEPT = (Verbatim("$(( $N * 4 ))"), Verbatim("data/*.txt"), Verbatim("$(hostname)"), "plain")


@pytest.mark.parametrize("text, words", [
    ("python t.py $(( $N * 4 )) data/*.txt", ("python", "t.py", KEPT[0], KEPT[1])),
    ("--host $(hostname) 'my run'", ("--host", KEPT[2], "my run")),
    ("$(( $N * 8 ))", ("$(( $N * 8 ))",)),      # a word changed: text, as typed
    ("data/*.txt2", ("data/*.txt2",)),          # a kept word's text followed by more is another word
    ("plain", ("plain",)),                      # only Verbatim words are kept
])
def test_a_word_written_as_a_kept_script_word_stays_that_word_and_any_other_is_text(text, words):
    read = words_from_text(text, KEPT)
    assert read == words
    assert [type(w) for w in read] == [type(w) for w in words]


def test_an_open_quote_is_a_value_error_naming_the_fix_and_the_form_names_its_field():
    with pytest.raises(ValueError, match="close the quote"):
        words_from_text('python "train.py')
    command = ApptainerRun.field_spec("command")
    value, error = state.from_control("words", command, 'python "train.py')
    assert value is None and error.startswith(f"{command.info.label or command.name}: cannot split")


@pytest.mark.parametrize("cls", [ApptainerRun, SlurmJob, Torchrun, Workflow])
def test_the_forms_words_box_and_the_cli_take_the_same_fields(cls):
    from hpcwidgets.cli._options import _is_words
    for f in cls.field_specs():
        assert holds_words(f) == (state.control_kind(f, cls) == "words") == _is_words(f), f.name


_WORD = st.sampled_from(["a", "b c", "$X", "${Y}", "'q'", '"d e"', "x\\ y", "$(pwd)", "*.py", "$((1+2))", "--k=v"])


@settings(max_examples=150, deadline=None)
@given(kept=st.lists(_WORD, max_size=4), typed=st.lists(_WORD, max_size=6), verbatim=st.lists(st.booleans(),
                                                                                               min_size=4, max_size=4))
def test_the_cli_splits_an_option_as_the_forms_read_their_box(kept, typed, verbatim):
    """``--program``/``--set`` (split_words) and the forms' words box (from_control) give the same words, kept
    Verbatim words included, for any text."""
    from hpcwidgets.cli._options import split_words
    current = tuple(Verbatim(w) if v else w for w, v in zip(kept, verbatim))
    f = Workflow.field_spec("program")
    text = " ".join(typed)
    value, error = state.from_control("words", f, text, current)
    if error:
        with pytest.raises(ValidationError):
            split_words(f, [text], "--program", current)
        return
    split = split_words(f, [text], "--program", current)
    assert split == value
    assert [type(w) for w in split] == [type(w) for w in value]


def test_the_cli_reads_words_without_importing_the_forms():
    """A model command with a words option and --set on a loaded script's words runs without the widgets package
    (the words rule is in spec/_words.py)."""
    code = ("import sys, io, contextlib\n"
            "from hpcwidgets.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    rc = main(sys.argv[1:])\n"
            "print(rc, sorted(m for m in sys.modules if m.startswith('hpcwidgets.widgets')))\n")
    script = HEAD + "N=2\nsrun python train.py --workers $((N*4)) --files data/*.txt\n"
    for argv in (["workflow", "--program", "python t.py 'my run'"],
                 ["workflow", "--from", "-", "--set", "program=python train.py --workers $((N*4)) --seed 1"]):
        out = subprocess.run([sys.executable, "-c", code, *argv], input=script, capture_output=True, text=True,
                             check=True).stdout
        assert out.split() == ["0", "[]"], out


def test_the_words_rule_is_said_once_and_the_forms_help_says_it():
    assert state.WORDS_RULE is WORDS_RULE
    assert "$NAME" in WORDS_RULE and "loaded script" in WORDS_RULE


def test_the_words_module_stays_stdlib_only():
    import ast
    import hpcwidgets.spec._words as words
    tree = ast.parse(open(words.__file__, encoding="utf-8").read())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    relative = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    assert all(name.split(".")[0] in sys.stdlib_module_names for name in imported if name), imported
    assert relative <= {"_meta"}, relative  # FieldSpec, for its annotation only


# --- 2. a keystroke in a box of shell lines: the comparison only when it can find an entry edited ------------------

def _box(entries: list[list[str]]) -> list[tuple[str, str]]:
    return [("\n".join(lines), "\n".join(lines)) for lines in entries]


def _compared(shown, typed):
    owner, before, _ = state._filled_lines(tuple(said for _, said in shown))
    return state._compared_entries(shown, owner, before, tuple(ln.strip() for ln in typed))


def _edits(rng: random.Random, lines: list[str], alphabet: str) -> list[str]:
    out = list(lines)
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(out))
        kind = rng.choice("cid") if out else "i"
        if kind == "c" and at < len(out):
            out[at] = rng.choice(alphabet)
        elif kind == "d" and at < len(out):
            del out[at]
        else:
            out.insert(at, rng.choice(alphabet))
    return out


def test_the_shortcut_gives_what_the_comparison_gives_for_many_edits_and_is_taken():
    """Boxes of entries over a few repeated lines (as ``done`` and ``fi`` repeat in scripts), edited at random: the
    entries found edited are the comparison's every time, and of the edits that leave every entry over several lines
    as it was, the shortcut finds most without the comparison."""
    rng = random.Random(20)
    taken = untouched = 0
    for _ in range(5000):
        alphabet = "abcdefgh"[:rng.randint(2, 8)]
        entries = [[rng.choice(alphabet) for _ in range(rng.choice((1, 1, 1, 2, 3, 4)))]
                   for _ in range(rng.randint(1, 7))]
        shown = _box(entries)
        typed = _edits(rng, [ln for e in entries for ln in e], alphabet + "xy ")
        expected = _compared(shown, typed)
        assert state._edited_entries(shown, typed) == expected, (entries, typed)
        owner, before, several = state._filled_lines(tuple(s for _, s in shown))
        if any(several) and not expected:
            untouched += 1
            taken += state._untouched_entries(owner, several, before, tuple(ln.strip() for ln in typed))
    assert untouched > 500 and taken > untouched // 2, (taken, untouched)


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(st.lists(st.sampled_from(["a", "b", "done", "", "fi", "x"]), min_size=1, max_size=4),
                        min_size=1, max_size=6),
       typed=st.lists(st.sampled_from(["a", "b", "done", "", "fi", "x", "  a", "new"]), max_size=14))
def test_the_shortcut_never_differs_from_the_comparison(entries, typed):
    shown = _box(entries)
    assert state._edited_entries(shown, typed) == _compared(shown, typed)


SETUP = (["module purge", "module load apptainer", "export OMP_NUM_THREADS=8"] + [f"echo step {i}" for i in range(12)]
         + ["for f in a b c d; do\n    cp \"$f\" $TMPDIR/\n    echo copied $f\ndone"]
         + [f"mkdir -p out/{i}" for i in range(10)] + ["if [ -f x ]; then\n  cat x\nfi"])


@pytest.mark.parametrize("old, new", [
    ("echo step 5", "echo step 5x"),            # a line of its own: the shortcut
    ("mkdir -p out/9", "mkdir -p out/9\necho more"),
    ("    echo copied $f", "    echo copied $f again"),  # a line of the loop: compared, the loop stays one command
    ("  cat x", "  cat x y"),
])
def test_a_realistic_set_up_box_reads_the_same_after_a_keystroke(old, new):
    setup = SlurmJob.field_spec("setup")
    shown = state.to_control("lines", SETUP, SlurmJob)
    typed = shown.replace(old, new)
    pairs = [(v, v) for v in SETUP]
    assert state._edited_entries(pairs, typed.split("\n")) == _compared(pairs, typed.split("\n"))
    value, error = state.from_control("lines", setup, typed, SETUP, SlurmJob)
    assert not error
    changed = next(v for v in SETUP if old in v)
    assert changed.replace(old, new) in value or all(line in value for line in changed.replace(old, new).split("\n"))
    assert len(value) == len(SETUP) + (new.count("\n") if "\n" not in changed else 0)


# --- 3. a quoted string over several set-up lines keeps the blanks that end its first line -------------------------

@pytest.mark.parametrize("line, first", [
    ('export MSG="first line   \nsecond line"', "first line   \n"),
    ('MSG="first line   \nsecond line"', "first line   \n"),
    ('MSG="first line\t\nsecond line"', "first line\t\n"),
    ("echo 'first line   \nsecond line'", "first line   \n"),
    ('  MSG="first line   \nsecond   \nthird"', "first line   \nsecond   \n"),
])
@pytest.mark.parametrize("reader", [parse_script, parse_job])
def test_a_quoted_string_over_several_set_up_lines_keeps_its_blanks(reader, line, first):
    text = HEAD + "module load x\n" + line + '\necho "$MSG"\nsrun python train.py\n'
    model = reader(text)
    assert render(model, validate=False) == text
    job = getattr(model, "job", model)
    values = [str(v) for v in (*job.setup, *job.commands, *getattr(model, "after", ()))]
    values += [str(e.value) for e in (*job.env, *getattr(model, "exports", ()))]
    assert any(first in v for v in values), values   # the lines with their blanks, in the model
    bare = model.replace(job=job.replace(layout=None)) if model is not job else job.replace(layout=None)
    written = render(bare, validate=False)  # without the script's own layout: the model's text, blanks and all
    assert first.split("\n", 1)[0] in written and first.split("\n", 1)[0].rstrip() + "\n" not in written


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_value_bash_gives_is_the_one_the_model_writes():
    text = HEAD + 'MSG="first   \nsecond"\necho a\\ \nsrun python train.py\n'
    job = parse_script(text).job
    assert job.setup == ('MSG="first   \nsecond"', "echo a\\ ")
    run = "\n".join(job.setup[:1]) + '\nprintf "%s|" "$MSG"\n' + "set -- " + job.setup[1][len("echo "):] + \
        '\nprintf "%s|" "$@"\n'
    out = subprocess.run(["bash", "-c", run], capture_output=True, text=True, check=True).stdout
    assert out == "first   \nsecond|a |"


@pytest.mark.parametrize("line, kept", [
    ("echo a\\ ", "echo a\\ "),        # a blank the backslash quotes is the word's ("a "): stripped, bash joins lines
    ("echo a\\\\ ", "echo a\\\\"),     # a backslash quoted by one before it: the blank ends the line
    ("echo x   ", "echo x"),
    ("   echo x", "echo x"),
])
def test_a_one_line_set_up_command_loses_only_the_blanks_that_mean_nothing(line, kept):
    text = HEAD + line + "\nsrun python train.py\n"
    model = parse_script(text)
    assert model.job.setup == (kept,)
    assert render(model, validate=False) == text


# --- 4. an instance started and used under the two names of Apptainer ----------------------------------------------

def _instance_script(start: str, step: str, stop: str) -> str:
    return (HEAD + f"{start} instance start --nv img.sif srv\nsrun {step} exec instance://srv python train.py\n"
            f"{stop} instance stop srv\n")


@pytest.mark.parametrize("start, step", [("singularity", "apptainer"), ("apptainer", "singularity"),
                                         ("apptainer", "apptainer"), ("singularity", "singularity")])
def test_an_instance_under_either_name_is_read_as_written_and_edits_that_leave_it_are_refused(start, step):
    text = _instance_script(start, step, start)
    model = parse_script(text)
    assert render(model, validate=False) == text
    assert model.container.binary == step and model.container.image == "instance://srv"
    assert model.job.setup[0].startswith(f"{start} instance start")
    for path, value in (("container.image", "other.sif"), ("container.runtime", "none")):
        said = refused_edit(model, path, value)
        assert said is not None and "instance srv" in said
    assert moved_out_of_instance(model, model.replace(container=None)) is not None
    # the step may change its program's words: it stays in the instance
    assert refused_edit(model, "container.image", "instance://srv") is None


@pytest.mark.parametrize("words, said, reads", [
    (["apptainer", "instance", "run", "img.sif", "srv"], "'apptainer instance run'", "apptainer instance start"),
    (["singularity", "--debug", "frobnicate", "x"], "'singularity frobnicate'", "singularity exec"),
    (["ch-image", "list"], "'ch-image list'", "ch-image pull"),
])
def test_a_subcommand_the_reader_does_not_read_is_named_with_those_it_reads(words, said, reads):
    """A program the reader knows, with a subcommand it does not read, is not 'a command it does not know': the
    message names the subcommand and lists the program's commands it reads."""
    from hpcwidgets.errors import ParseError
    from hpcwidgets.parse.argv import parse_argv
    with pytest.raises(ParseError) as caught:
        parse_argv(words)
    assert caught.value.message.startswith(f"{said} is not a command this reader knows; of ")
    assert reads in caught.value.message
    with pytest.raises(ParseError, match=r"^'docker' is not a command this reader knows \(apptainer, singularity"):
        parse_argv(["docker", "run"])
