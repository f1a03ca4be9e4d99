"""Job scripts read back into Workflows: render(parse(s)) is a fixed point after one round,
parse(render(m)) == m for the shipped workflows, and what the model has no place for is kept."""

from pathlib import Path

import pytest

from hpcwidgets.examples import examples
from hpcwidgets.parse import parse_script
from hpcwidgets.render import render

# bad_unparseable.sh is bash that cannot be read at all (the linter reports HPC000 for it)
CORPUS = sorted(p for p in (Path(__file__).parent / "data" / "corpus").glob("*.sh") if p.name != "bad_unparseable.sh")
PROFILES = ("generic", "local", "midway3")


def rendered(model):
    return render(model, validate=False)


@pytest.mark.parametrize("profile", PROFILES)
def test_parse_inverts_render_for_every_example(profile):
    for name, example in examples(profile).items():
        if example.model.kind != "workflow":
            continue
        text = example.render()
        back = parse_script(text)
        assert back == example.model, name
        assert rendered(back) == text, name


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_render_of_parse_is_a_fixed_point_after_one_round(path):
    first = rendered(parse_script(path.read_text()))
    second = rendered(parse_script(first))
    assert second == first


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_no_command_of_the_script_is_lost(path):
    """Every command word of the original appears in the re-rendered script (order of set-up lines aside)."""
    from hpcwidgets.parse.lexer import lex_script
    original = lex_script(path.read_text())
    again = lex_script(rendered(parse_script(path.read_text())))
    names = lambda s: sorted(str(c.words[0].value) for c in s.code if c.kind == "simple" and c.words)
    have = names(again)
    for name in names(original):
        if name in ("set",):  # the fail-fast prologue is rewritten by the template
            continue
        assert name in have, f"{name} from {path.name} is missing after a round trip"


def test_unmodelled_lines_after_the_step_are_kept():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\nmodule load apptainer\nIMG=/s/img.sif\n"
            "apptainer exec --nv \"$IMG\" python train.py > train.log 2>&1\necho done\ncp train.log \"$HOME\"/\n")
    wf = parse_script(text)
    out = rendered(wf)
    assert wf.job.modules == ("apptainer",) and "IMG=/s/img.sif" in wf.job.setup
    assert out.index("python train.py > train.log 2>&1") < out.index("echo done") < out.index('cp train.log "$HOME"/')


def test_property_generated_workflows_read_back():
    """For generated workflows with hostile values everywhere a person types: reading a rendered
    script back gives the same script when the model is valid (parse inverts render), and for every
    model render∘parse is a fixed point after one round."""
    from hypothesis import HealthCheck, given, settings

    from test_properties import workflows

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(workflows())
    def run(case):
        w, _task = case
        text = rendered(w)
        once = rendered(parse_script(text))
        assert rendered(parse_script(once)) == once
        if not w.problems():  # render() refuses models with problems, so only valid ones must come back exactly
            assert once == text
    run()
