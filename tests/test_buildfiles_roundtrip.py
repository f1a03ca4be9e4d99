"""Properties of the build-file readers over the fields that hold what the model keeps verbatim:
header keywords, %arguments/%setup/%startscript, verbatim sections and earlier stages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hpcwidgets.parse.buildfiles import parse_deffile, parse_dockerfile
from hpcwidgets.render.dockerfile import render_deffile, render_dockerfile
from hpcwidgets.spec.apptainer import DefFile
from hpcwidgets.spec.charliecloud import Dockerfile, Instruction
from hpcwidgets.spec.common import EnvVar
from strategies import names

text_chars = st.characters(blacklist_categories=("Cs", "Cc"))
line = st.text(text_chars, min_size=1, max_size=20).map(str.strip).filter(
    lambda s: s and not s.endswith("\\") and not s.startswith(("#", "%")) and "<<" not in s
    and s.count('"') % 2 == 0 and s.count("'") % 2 == 0)
body = st.lists(line, max_size=3).map(tuple)
# a # starts a comment on a header line (Apptainer drops it and the rest), so no header value holds one
header_value = st.text(text_chars, min_size=1, max_size=15).map(str.strip).filter(lambda s: s and "#" not in s)
header = st.lists(st.builds(EnvVar, names.filter(lambda n: n.lower() not in ("bootstrap", "from")), header_value),
                  max_size=3).map(tuple)
app = st.builds(lambda name, lines: ("%apprun " + name, *("    " + x for x in lines)), names, body)
extra = st.lists(app, max_size=2).map(lambda blocks: tuple(x for k, b in enumerate(blocks) for x in ([""] if k else []) + list(b)))
stage = st.builds(lambda img, lines: ("Bootstrap: docker", "From: " + img, "Stage: build", "", "%post",
                                      *("    " + x for x in lines)), names, body)
before = st.one_of(st.just(()), stage, st.just(("# built by hand",)))

deffiles = st.builds(DefFile, st.sampled_from(["docker", "oras", "localimage"]), names,
                     post=body, header=header, arguments=body, setup=body, startscript=body,
                     extra=extra, before=before)


@settings(max_examples=150)
@given(deffiles)
def test_deffile_with_verbatim_parts_round_trips(d):
    text = render_deffile(d)
    assert parse_deffile(text) == d
    assert render_deffile(parse_deffile(text)) == text


instructions = st.builds(Instruction, st.sampled_from(["RUN", "COPY", "WORKDIR"]), line.filter(lambda s: not s.startswith("[")))
dockerfiles = st.builds(Dockerfile, names, st.lists(instructions, max_size=3).map(tuple),
                        before=st.sampled_from([(), ("# syntax=docker/dockerfile:1",), ("ARG V=1",),
                                                ("ARG V=1", "", "FROM base:1 AS build", "RUN make")]))


@settings(max_examples=100)
@given(dockerfiles)
def test_dockerfile_with_verbatim_parts_round_trips(d):
    text = render_dockerfile(d)
    assert parse_dockerfile(text) == d
    assert render_dockerfile(parse_dockerfile(text)) == text
