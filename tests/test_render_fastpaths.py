"""The fast paths of rendering and validation give exactly what the plain code gives.

Each fast path skips work when one C-level test says it can only find nothing; these tests drive
values across those tests' edges (hostile text, verbatim words, references, control characters)
and compare with the plain reading, written out here as the reference.
"""

import dataclasses
import re

from hypothesis import given, settings, strategies as st

from hpcwidgets.errors import Problem
from hpcwidgets.render import quote as quote_module
from hpcwidgets.render.quote import _quote, quote, quote_words
from hpcwidgets.spec import Bind, SlurmJob, Torchrun, Verbatim, Workflow
from hpcwidgets.spec._meta import Spec, opt

PIECES = list("ab -_/.:=@%'\"\\$`;|*~#\n\t\x01") + ["$SCRATCH", "${USER}", "$(id)", "\\$HOME", "$lr", "${lr}"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
WORD = st.one_of(TEXT, TEXT.map(Verbatim))


def _plain_quote(value):
    """quote() without its memo: the contract's function itself."""
    return str(value) if isinstance(value, Verbatim) else _quote(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORD, max_size=6))
def test_quote_words_is_quote_word_by_word(words):
    assert quote_words(words) == [_plain_quote(w) for w in words]
    assert quote_words(tuple(words)) == [quote(w) for w in words]


@given(TEXT)
def test_a_verbatim_word_is_never_served_the_plain_words_quoting(text):
    quote(text)  # the memo now knows the plain text, which a Verbatim of it equals
    assert quote(Verbatim(text)) == text
    assert quote_words([text, Verbatim(text)]) == [_quote(text), text]


def test_the_memo_stays_bounded():
    for i in range(quote_module._QUOTED_MAX + 10):
        quote(f"word {i}")
    assert len(quote_module._QUOTED) <= quote_module._QUOTED_MAX
    assert quote("word 1") == "'word 1'"


# -- SlurmJob: the #SBATCH text fields ------------------------------------------------------------

_CONTROL = re.compile(r"[\x01-\x1f\x7f]")
DIRECTIVE_TEXT = ("job_name", "partition", "account", "mem", "time", "output", "mail_user", "constraint")


def _directive_text_messages(job):
    """The reference: each #SBATCH text field read one by one (what the fast path may skip)."""
    out = []
    for name in (f.name for f in job.field_specs() if f.name in DIRECTIVE_TEXT):  # in declaration order
        value = getattr(job, name)
        if not value or not isinstance(value, str):
            continue
        if name != "job_name" and _CONTROL.search(value):
            out.append((name, "control"))
        elif "$" in value:
            out.append((name, "reference"))
    return out


def _kind(p: Problem) -> tuple[str, str] | None:
    if "control character" in p.message:
        return p.field, "control"
    if "not expanded" in p.message and p.field in DIRECTIVE_TEXT:
        return p.field, "reference"
    return None


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({name: st.one_of(st.just(""), WORD) for name in DIRECTIVE_TEXT}))
def test_job_text_fast_path_reports_what_the_field_by_field_reading_does(values):
    job = SlurmJob(**values)
    found = [k for k in map(_kind, job._check()) if k is not None]
    assert found == _directive_text_messages(job)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([None, 2, "3-2"]), st.sampled_from([None, 4, "a100:2,v100:0"]),
       st.sampled_from([None, 8, 6, "a100:0"]), st.sampled_from([None, 1, 9]), st.sampled_from([None, 2]))
def test_job_count_checks_around_their_fast_paths(nodes, gpus_per_node, gpus, ntasks, per_node):
    """No text among the counts, no GPUs in total, no task count: each skips checks that could say nothing; a value
    that one of them could judge still gets its problem."""
    job = SlurmJob(nodes=nodes, gpus_per_node=gpus_per_node, gpus=gpus, ntasks=ntasks, ntasks_per_node=per_node)
    messages = " | ".join(p.message for p in job._check())
    assert ("asks for no GPUs" in messages) == ("a100:0" in (gpus, gpus_per_node) or gpus_per_node == "a100:2,v100:0")
    assert ("the most is below the least" in messages) == (nodes == "3-2")
    assert ("is not a whole number of nodes" in messages) == (gpus == 6 and gpus_per_node == 4)
    assert ("tasks do not fit" in messages) == (ntasks == 9 and per_node == 2 and nodes in (2, "3-2"))


# -- Workflow: lower-case references in the step ----------------------------------------------------

_LOWER = re.compile(r"(?<!\\)\$(?:\{([a-z_][a-z0-9_]*)[}:#%/^,\[-]|([a-z_][a-z0-9_]*)(?![A-Za-z0-9_]))")


@settings(max_examples=200, deadline=None)
@given(st.lists(WORD, max_size=4), st.lists(WORD, max_size=3))
def test_step_texts_fast_path_matches_the_field_by_field_reading(args, program):
    w = Workflow(launcher=Torchrun(script="t.py", args=tuple(args)), program=tuple(program))
    expected = []
    for field, words in w._step_word_groups():
        text = "\n".join(words)
        if "$" in text and _LOWER.search(text):
            expected.append((field, "\n".join(x for x in words if x.__class__ is str)))
    assert list(w._step_texts()) == expected


# -- Spec.problems goes straight to each class's own compiled checks ---------------------------------

def test_a_subclass_gets_checks_for_its_own_fields():
    Bind("/a", "/b").problems()  # the parent's checks are compiled (and installed) first

    @dataclasses.dataclass(frozen=True)
    class Tagged(Bind):
        tag: str = opt("", label="Tag", help="A tag.", role="internal", choices=("", "x"))

    assert Tagged("/a", "/b", tag="y").problems() == [Problem("tag", "Tag must be one of , x; got 'y'")]
    assert Bind("/a", "relative").problems() == [Problem("dst", "container path 'relative' must be absolute "
                                                              "(start with /)")]
    assert Spec.problems(Tagged("/a", "/b", tag="y")) == Tagged("/a", "/b", tag="y").problems()
