"""The quoting contract, checked against real bash."""

import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from hpcwidgets.render.quote import assignment, expand, join, quote, references
from hpcwidgets.spec import Verbatim

ENV = {"SCRATCH": "/scratch/x y", "USER": "ada", "SLURM_JOB_ID": "42", "head_node": "n1"}
PIECES = list("ab -_/.:,=@%+'\"\\$`;|&<>(){}[]*?!~#\n\t\r") + ["é", "日", "$SCRATCH", "${USER}", "$(id)", "\\$HOME"]
HOSTILE = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


def bash_words(words: list[str], env: dict[str, str]) -> list[str]:
    script = "printf '%s\\0' " + " ".join(words)
    out = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **env},
                         capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize("value", [
    "plain", "", "with space", "it's", 'say "hi"', "$(rm -rf /)", "`id`", "a;b", "a|b", "*", "~/x", "a\nb",
    "tab\there", "$SCRATCH/data", "${USER}_run", "$SCRATCH/my dir/$USER", "\\$HOME", "$1", "$$", "100%", "日本",
    "--flag=$(id)", "'$SCRATCH'", "$SCRATCH'quoted'", "a\\b", "-rf",
])
def test_examples_match_bash(value):
    assert bash_words([quote(value)], ENV) == [expand(value, ENV)]


@settings(max_examples=300, deadline=None)
@given(st.lists(HOSTILE, min_size=1, max_size=5))
def test_property_argv_fidelity(values):
    assert bash_words([quote(v) for v in values], ENV) == [expand(v, ENV) for v in values]


def test_safe_words_stay_bare():
    assert quote("train.py") == "train.py"
    assert quote("--lr=0.01") == "--lr=0.01"
    assert quote("$SCRATCH/data") == '"$SCRATCH/data"'


def test_control_characters_keep_scripts_line_oriented():
    assert "\n" not in quote("a\nb")
    assert quote("a\nb") == "a$'\\n'b"


def test_references_and_verbatim():
    assert references("$SCRATCH/${USER}/\\$HOME") == ["SCRATCH", "USER"]
    assert quote(Verbatim("$(pwd)")) == "$(pwd)"
    assert join(["echo", "a b", "$X"]) == "echo 'a b' \"$X\""


def test_assignment_rejects_bad_names():
    assert assignment("A_1", "x y") == "A_1='x y'"
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        assignment("1A", "x")


def test_a_needless_escape_writes_the_same_word_as_a_bare_dollar():
    """``\\$`` before what would be no reference anyway means the same as ``$``: one word for both, so a script read
    back (where bash gave ``$``) renders as it was written (found by the definition-file round-trip property)."""
    for escaped, bare in (("\\$", "$"), ("x\\$", "x$"), ("\\$1", "$1"), ("\\${1}", "${1}"), ("\\$_", "$_")):
        assert expand(escaped, {}) == expand(bare, {})
        assert quote(escaped) == quote(bare), escaped
    assert quote("\\$HOME") == '"\\$HOME"' != quote("$HOME")  # before a name the escape means something
    assert quote("\\\\$") != quote("\\$")  # a backslash, then a dollar
