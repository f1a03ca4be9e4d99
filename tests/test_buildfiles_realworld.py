"""Definition files and Dockerfiles as researchers write them: read, write back, same meaning.

Each text below is a short version of a real file that the readers used to refuse or change
(multi-stage builds, header keywords, app sections, %environment with shell logic, heredocs, …).
The checks: nothing is lost or reordered within a section, the meaning for apptainer / ch-image is
kept, and render(parse(text)) is a fixed point.
"""

from __future__ import annotations

import pytest

from hpcwidgets.errors import ParseError
from hpcwidgets.parse.buildfiles import parse_deffile, parse_dockerfile
from hpcwidgets.render.dockerfile import render_deffile, render_dockerfile
from hpcwidgets.spec._words import Verbatim
from hpcwidgets.spec.apptainer import DefFile
from hpcwidgets.spec.charliecloud import Dockerfile, Instruction
from hpcwidgets.spec.common import EnvVar


def deffile_round_trip(text: str) -> tuple[DefFile, str]:
    model = parse_deffile(text)
    out = render_deffile(model)
    assert render_deffile(parse_deffile(out)) == out, "render(parse(x)) is not a fixed point"
    assert parse_deffile(out) == model
    return model, out


def dockerfile_round_trip(text: str) -> tuple[Dockerfile, str]:
    model = parse_dockerfile(text)
    out = render_dockerfile(model)
    assert render_dockerfile(parse_dockerfile(out)) == out, "render(parse(x)) is not a fixed point"
    assert parse_dockerfile(out) == model
    return model, out


def section(text: str, header: str) -> list[str]:
    """The lines of the section that starts with ``header`` (up to the next %section)."""
    lines = text.split("\n")
    start = lines.index(header) + 1
    end = next((k for k in range(start, len(lines)) if lines[k].startswith("%")), len(lines))
    body = lines[start:end]
    while body and not body[-1].strip():
        body.pop()
    return body


# -- definition files ------------------------------------------------------------------------

# a planner's two-stage build (Stage:, %files from build, comments between stages)
MULTI_STAGE = """\
# Stage 1: Compile the planner
Bootstrap: docker
From: ubuntu:22.04
Stage: build

%files
    planners/odin /planners/odin

%post
    ## Install all necessary dependencies.
    apt-get update
    cd /planners/odin
    python3.11 build.py

# Stage 2: Run the planner
Bootstrap: docker
From: ubuntu:22.04
Stage: run

%files from build
    /planners/odin/driver
    /planners/odin/builds/release/bin

%post
    apt-get update
    rm -rf /var/lib/apt/lists/*

%runscript
    DOMAINFILE="$1"
    python3.11 /planners/odin/fast-downward.py --translate "$DOMAINFILE"

%labels
Name        Odin
License     GPL 3
"""


def test_multi_stage_keeps_the_build_stage_and_files_from():
    d, out = deffile_round_trip(MULTI_STAGE)
    assert (d.bootstrap, d.from_, d.header) == ("docker", "ubuntu:22.04", (EnvVar("Stage", "run"),))
    # the earlier stage is kept exactly, comments and all
    assert d.before == tuple(MULTI_STAGE.split("\n")[:15])
    assert d.before[-1] == "# Stage 2: Run the planner"
    assert out.startswith("# Stage 1: Compile the planner\nBootstrap: docker\nFrom: ubuntu:22.04\nStage: build\n")
    assert d.extra == ("%files from build", "    /planners/odin/driver", "    /planners/odin/builds/release/bin")
    assert d.post == ("apt-get update", "rm -rf /var/lib/apt/lists/*")
    assert d.labels == (EnvVar("Name", "Odin"), EnvVar("License", "GPL 3"))
    final = out.split("Stage: run\n", 1)[1]
    assert section(final, "%files from build") == ["    /planners/odin/driver", "    /planners/odin/builds/release/bin"]
    assert section(final, "%runscript") == ['    DOMAINFILE="$1"',
                                            '    python3.11 /planners/odin/fast-downward.py --translate "$DOMAINFILE"']
    assert "Stage: run" in out and out.count("Bootstrap: docker") == 2


@pytest.mark.parametrize("text, header", [
    # a Snakemake template: IncludeCmd, spaces around the colon
    ("Bootstrap: docker\nFrom :  continuumio/miniconda3\nIncludeCmd : yes\n\n%post\n  conda clean -a\n",
     (EnvVar("IncludeCmd", "yes"),)),
    # a CentOS build from a mirror: no From:
    ("BootStrap: yum\nOSVersion: 7\nMirrorURL: http://mirror.centos.org/centos-%{OSVERSION}/%{OSVERSION}/os/$basearch/\n"
     "Include: yum\n\n%post\n    yum -y install vim-minimal\n",
     (EnvVar("OSVersion", "7"), EnvVar("MirrorURL", "http://mirror.centos.org/centos-%{OSVERSION}/%{OSVERSION}/os/$basearch/"),
      EnvVar("Include", "yum"))),
    ("Bootstrap: oras\nFrom: ghcr.io/x/y:1\nFingerprints: 22045C8C0B1004D058DE4BEDA20C27EE7FF7BA84\n",
     (EnvVar("Fingerprints", "22045C8C0B1004D058DE4BEDA20C27EE7FF7BA84"),)),
])
def test_header_keywords_are_kept_in_order(text, header):
    d, out = deffile_round_trip(text)
    assert d.header == header
    for h in header:
        assert f"\n{h.name}: {h.value}\n" in out
    assert d.problems() == []


def test_from_written_before_bootstrap_stays_in_the_header():
    d, out = deffile_round_trip("# base\nFrom: ubuntu:22.04\nBootstrap: docker\n\n%post\n    apt-get update\n")
    assert (d.bootstrap, d.from_, d.before) == ("docker", "ubuntu:22.04", ("# base",))
    assert out == "# base\n\nBootstrap: docker\nFrom: ubuntu:22.04\n\n%post\n    apt-get update\n"


def test_arguments_setup_and_startscript_are_sections_of_the_model():
    text = ("Bootstrap: docker\nFrom: nvcr.io/nvidia/pytorch:{{ VERSION }}\n\n%arguments\n    VERSION=24.04-py3\n\n"
            "%setup\n  mkdir ${SINGULARITY_ROOTFS}/src\n\n%startscript\n    nohup jupyter lab --no-browser &\n")
    d, out = deffile_round_trip(text)
    assert d.arguments == ("VERSION=24.04-py3",)
    assert d.setup == ("mkdir ${SINGULARITY_ROOTFS}/src",)
    assert d.startscript == ("nohup jupyter lab --no-browser &",)
    assert out.index("%arguments") < out.index("%setup") < out.index("%startscript")


# app sections (SCIF), a section with an interpreter option, a repeated section
APPS = """\
BootStrap: library
From: ubuntu:19.10

%post -c /bin/bash
    set -euo pipefail
    apt-get update

%apprun setup
    exec python3 /usr/bin/setup-runner.py $*

%apprun run
    exec ./run.sh

%post
    echo second post
"""


def test_app_sections_and_section_options_are_kept_verbatim_in_order():
    d, out = deffile_round_trip(APPS)
    assert d.post == ()
    assert d.extra == ("%post -c /bin/bash", "    set -euo pipefail", "    apt-get update", "",
                       "%apprun setup", "    exec python3 /usr/bin/setup-runner.py $*", "",
                       "%apprun run", "    exec ./run.sh", "",
                       "%post", "    echo second post")
    assert out.index("%post -c /bin/bash") < out.index("%apprun setup") < out.index("%apprun run") < out.index("%post\n")


@pytest.mark.parametrize("body", [
    # a Snakemake template: activate a conda environment
    ["export PATH=/opt/conda/bin:$PATH", ". /opt/conda/etc/profile.d/conda.sh", "conda activate myEnv"],
    # assignment, then export (the Singularity docs' own example)
    ["    VARIABLE=MEATBALLVALUE", "    export VARIABLE"],
    # no export: the shell does not export it, so it must not become an export
    ["    PATH=/opt/conda/bin:$PATH", "    PATH=/opt/conda/envs/Sauron.v1/bin:$PATH"],
    ["    export PATH /home/root/conda/bin:$PATH"],
    ["    if [ -n \"${SLURM_JOB_ID:-}\" ]; then", "        export PORT=$((8800 + SLURM_JOB_ID % 100))", "    fi"],
])
def test_environment_with_shell_logic_is_kept_as_written(body):
    text = "Bootstrap: docker\nFrom: continuumio/miniconda3\n\n%environment\n" + "\n".join(body) + "\n\n%runscript\n  exec \"$@\"\n"
    d, out = deffile_round_trip(text)
    assert d.environment == ()
    assert section(out, "%environment") == body
    assert d.runscript == ('exec "$@"',)


def test_environment_exports_stay_a_model_and_comments_are_dropped():
    text = ("Bootstrap: docker\nFrom: nvidia/cuda:9.0-cudnn7-devel-ubuntu16.04\n\n%environment\n"
            "#export PATH=/opt/tensorrt/bin:/usr/bin\nexport PATH=/usr/local/cuda/bin:/usr/bin:/opt/tensorrt/bin\n"
            "export LC_ALL=C\n")
    d, out = deffile_round_trip(text)
    assert d.environment == (EnvVar("PATH", "/usr/local/cuda/bin:/usr/bin:/opt/tensorrt/bin"), EnvVar("LC_ALL", "C"))
    assert d.extra == ()


def test_multi_line_string_in_unindented_post_is_not_reindented():
    # the text inside the quotes (indentation, trailing spaces) is written into sources.list
    body = ['. /etc/os-release ',
            'echo "deb http://archive.ubuntu.com/ubuntu/ ${VERSION_CODENAME} main universe ',
            '  deb http://archive.ubuntu.com/ubuntu/ ${VERSION_CODENAME}-updates main universe ',
            '  " > /etc/apt/sources.list',
            'apt-get update']
    text = "BootStrap: library\nFrom: ubuntu:20.04\n\n%post\n" + "\n".join(body) + "\n"
    d, out = deffile_round_trip(text)
    assert section(out, "%post") == body


def test_heredoc_in_post_keeps_its_column():
    body = ["cat > /opt/run.py <<'EOF'", "import torch", "print(torch.__version__)", "EOF", "chmod +x /opt/run.py"]
    text = "Bootstrap: docker\nFrom: pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime\n\n%post\n" + "\n".join(body) + "\n"
    d, out = deffile_round_trip(text)
    assert section(out, "%post") == body
    # indented the way the renderer writes it, it stays a field of the model
    indented = "Bootstrap: docker\nFrom: a:1\n\n%post\n" + "\n".join("    " + b for b in body) + "\n"
    d2, out2 = deffile_round_trip(indented)
    assert d2.post == tuple(body) and out2 == indented


def test_header_typo_and_unknown_section_say_what_is_wrong():
    with pytest.raises(ParseError) as info:
        parse_deffile("Bootstrap: docker\nFrom: a:1\n%postt\n  x\n")
    assert info.value.line == 3 and "%postt is not an Apptainer section" in str(info.value)


def test_model_checks_for_the_new_fields():
    assert DefFile(bootstrap="yum", header=(EnvVar("OSVersion", "7"),)).problems() == []
    bad = DefFile(from_="a:1", header=(EnvVar("From", "b:2"),), extra=("echo hi",))
    fields = sorted(p.field for p in bad.problems())
    assert fields == ["extra", "header"]


# -- Dockerfiles -----------------------------------------------------------------------------

def test_arg_before_from_is_kept():
    text = ("ARG UBUNTU_VERSION\nARG CUDA_VERSION\nFROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION}\n\n"
            "COPY build.sh /build.sh\nRUN apt-get update\nCMD [\"/bin/sh\", \"/build.sh\"]\n")
    d, out = dockerfile_round_trip(text)
    assert d.before == ("ARG UBUNTU_VERSION", "ARG CUDA_VERSION")
    assert d.from_ == "nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION}"
    assert out.startswith("ARG UBUNTU_VERSION\nARG CUDA_VERSION\n\nFROM nvidia/cuda:")
    assert d.instructions[-1].exec_args() == ("/bin/sh", "/build.sh")


MULTI_STAGE_DOCKERFILE = """\
# This image contains a single /opt directory and is intended to be COPYed into
# other images.

ARG _CUDA_VER

FROM debian:buster-slim as builder
ARG _CUDA_VER
WORKDIR /root
COPY build_cuda.sh .
RUN exec ./build_cuda.sh

FROM scratch
ARG _CUDA_VER
LABEL version.cuda=$_CUDA_VER
CMD []
COPY --from=builder --chown=1000:1000 /opt /opt
"""


def test_multi_stage_dockerfile_keeps_earlier_stages():
    d, out = dockerfile_round_trip(MULTI_STAGE_DOCKERFILE)
    assert d.from_ == "scratch"
    assert d.before == tuple(MULTI_STAGE_DOCKERFILE.split("\n")[:10])
    assert d.instructions == (Instruction("ARG", "_CUDA_VER"), Instruction("LABEL", "version.cuda=$_CUDA_VER"),
                              Instruction("CMD", "[]"), Instruction("COPY", "--from=builder --chown=1000:1000 /opt /opt"))
    assert out == MULTI_STAGE_DOCKERFILE


HEREDOCS = """\
# syntax=docker/dockerfile:1.4
FROM docker.io/library/python:3.11
RUN <<EOF
echo "Hello" >> /hello
echo "World!" >> /hello
EOF
COPY --chmod=0755 <<EOF /entrypoint.sh
#!/bin/bash
exec "$@"
EOF
run cat <<'EOF' >shell
cmd=\\$1
shift
EOF
RUN <<-EOT
\techo tab-indented
\tEOT
ENTRYPOINT ["/entrypoint.sh"]
"""


def test_heredocs_are_kept_verbatim():
    d, out = dockerfile_round_trip(HEREDOCS)
    assert d.before == ("# syntax=docker/dockerfile:1.4",)
    assert [i.op for i in d.instructions] == ["RUN", "COPY", "RUN", "RUN", "ENTRYPOINT"]
    assert d.instructions[0].text == 'EOF\necho "Hello" >> /hello\necho "World!" >> /hello\nEOF'.replace("EOF\n", "<<EOF\n", 1)
    assert all(isinstance(i.text, Verbatim) for i in d.instructions[:4])
    # the only changes: a blank line after the directive, the keyword in capitals
    assert out == HEREDOCS.replace("run cat", "RUN cat").replace("1.4\n", "1.4\n\n")


def test_line_break_inside_a_word_is_kept():
    # the builder joins continued lines as written: a\<newline>b is the one word "ab"
    text = 'FROM alpine:3.19\nRUN wget https://example.org/a/very/long/\\\npath.tar.gz && echo "x \\\n   y"\n'
    d, out = dockerfile_round_trip(text)
    assert out == text
    simple = "FROM alpine:3.19\nRUN apk add \\\n  # a comment inside\n  bash \\\n  curl\n"
    assert parse_dockerfile(simple).instructions == (Instruction("RUN", "apk add\nbash\ncurl"),)


def test_docker_metadata_instructions_and_heredoc_bodies_read_back_without_problems():
    # EXPOSE/VOLUME are common in ML Dockerfiles (ch-image reads past them); a heredoc body's "#!" line is
    # the script's, not a comment inside a continued instruction
    text = ('FROM pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime\nRUN <<EOF2\n#!/bin/bash\npip install numpy\nEOF2\n'
            'EXPOSE 8888\nVOLUME /data\nHEALTHCHECK CMD curl -f http://localhost:8888/ || exit 1\n'
            'CMD ["python", "train.py"]\n')
    d = parse_dockerfile(text)
    assert d.problems() == []
    assert render_dockerfile(d) == text
