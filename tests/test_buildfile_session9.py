"""Build files read as Apptainer and Docker read them: indented and commented header lines, %section lines,
%arguments, Singularity recipe names; logins in URLs, source on shells that have it, the -y check for more
tools, and Dockerfile instructions typed on the command line."""

from __future__ import annotations

import os

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import FileError, ParseError, ValidationError
from hpcwidgets.files import decode_text
from hpcwidgets.lint import lint
from hpcwidgets.parse.buildfiles import build_file_format, build_file_name, parse_deffile
from hpcwidgets.spec.apptainer import DefFile
from hpcwidgets.spec.charliecloud import Instruction

PINNED = "pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"


def codes(text: str, path: str = "") -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in lint(text, path=path)]


def messages(text: str, code: str, path: str = "") -> list[str]:
    return [f.message for f in lint(text, path=path) if f.code == code]


# -- indented lines ---------------------------------------------------------------------------

INDENTED = """  Bootstrap: docker
  From: ubuntu:latest

  %post
      apt-get update
      apt-get install git

  %environment
      export HF_TOKEN=hf_0123456789abcdefghijklmnopqrstuv
"""


def test_an_indented_section_line_is_reported_and_its_text_still_checked() -> None:
    found = codes(INDENTED, "env.def")
    assert (4, "HPC707") in found and (8, "HPC707") in found  # Apptainer reads no name from them: the build stops
    assert (6, "HPC705") in found and (9, "HPC702") in found and (2, "HPC701") in found
    assert "start %post at the beginning of its line" in messages(INDENTED, "HPC707", "env.def")[0]


def test_indented_header_lines_are_read_like_apptainer_reads_them() -> None:
    text = "  Bootstrap: docker\n  From: ubuntu:latest\n\n%post\n    apt-get install -y git\n"
    assert build_file_format(text) == "apptainer"
    assert codes(text) == [(2, "HPC701")]
    assert parse_deffile(text).from_ == "ubuntu:latest"


def test_parse_deffile_refuses_an_indented_section_line_naming_the_fix() -> None:
    with pytest.raises(ParseError, match="%post is indented.*invalid section.*beginning of its line") as caught:
        parse_deffile("Bootstrap: docker\nFrom: ubuntu:24.04\n  %post\n    echo hi\n")
    assert caught.value.line == 3


def test_a_misspelled_section_is_reported_with_the_name_it_means() -> None:
    text = f"Bootstrap: docker\nFrom: {PINNED}\n\n%enviroment\n    export HF_TOKEN=hf_0123456789abcdefghijklmnopqrstuv\n"
    assert (4, "HPC707") in codes(text) and (5, "HPC702") in codes(text)
    assert "write %environment" in messages(text, "HPC707")[0]
    plain = f"Bootstrap: docker\nFrom: {PINNED}\n\n%environment\n    export LC_ALL=C.UTF-8\n"
    assert codes(plain) == []


# -- names and header comments ----------------------------------------------------------------

def test_singularity_hub_names_are_definition_files() -> None:
    names = ["Singularity", "recipes/Singularity.gpu", "Singularity.sh", "singularity_notes", "env.def"]
    assert [build_file_name(n) for n in names] == ["apptainer", "apptainer", "", "", "apptainer"]


def test_a_folder_yields_its_singularity_recipes(tmp_path, capsys) -> None:
    recipe = "Bootstrap: docker\nFrom: ubuntu:latest\n\n%post\n    apt-get install git\n"
    (tmp_path / "Singularity").write_text(recipe)
    (tmp_path / "Singularity.gpu").write_text(recipe)
    assert main(["lint", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.out.count("HPC705") == 2 and "in 2 file(s)" in out.err
    assert os.path.join(str(tmp_path), "Singularity.gpu") + ":5:" in out.out


def test_a_header_comment_is_dropped_as_apptainer_drops_it() -> None:
    commented = f"Bootstrap: docker\nFrom: {PINNED}  # tags: https://hub.docker.com/r/pytorch/pytorch\n"
    assert codes(commented) == []
    assert parse_deffile(commented + "\n%post\n    true\n").from_ == PINNED
    assert codes("Bootstrap: docker\nFrom: ubuntu:latest # TODO pin\n") == [(2, "HPC701")]
    assert any("Apptainer reads a # on a header line" in p.message for p in DefFile("docker", "ubuntu:24.04 #x").problems())


# -- %arguments and {{ placeholders }} --------------------------------------------------------

def test_arguments_are_name_value_lines_not_shell() -> None:
    text = ("Bootstrap: docker\nFrom: ubuntu:latest\n\n%arguments\n    MOTD=it's the training image\n"
            "    # a comment\n\n%post\n    echo \"{{ MOTD }}\" > /etc/motd\n    apt-get install git\n")
    assert codes(text) == [(2, "HPC701"), (10, "HPC705")]


@pytest.mark.parametrize("default, post, flagged", [
    ("VLLM_VERSION=0.14.0", "pip install vllm=={{ VLLM_VERSION }}", []),
    ("PKG=numpy==1.26.4", "pip install {{ PKG }}", []),
    ("PKG=numpy", "pip install {{PKG}}", ["numpy"]),
    ("", "pip install {{ UNKNOWN }}", []),
])
def test_pip_pins_read_through_build_arguments(default: str, post: str, flagged: list[str]) -> None:
    text = f"Bootstrap: docker\nFrom: {PINNED}\n\n%arguments\n    {default}\n\n%post\n    {post}\n"
    found = messages(text, "HPC703")
    assert [m.split(" without")[0].removeprefix("pip install ") for m in found] == flagged


# -- HPC702: logins in URLs -------------------------------------------------------------------

@pytest.mark.parametrize("line, what", [
    ("RUN pip install git+https://ghp_0123456789abcdefghijklmnopqrstuvwxyz12@github.com/org/private.git@v1.0.0", "token"),
    ("RUN pip config set global.index-url https://alice:s3cr3tPassw0rd@pypi.example.org/simple", "password"),
    ("ENV PIP_INDEX_URL=https://alice:s3cr3tPassw0rd@pypi.example.org/simple", "password"),
])
def test_a_login_written_into_a_url_is_a_secret(line: str, what: str) -> None:
    found = messages(f"FROM python:3.11.9-slim\n{line}\n", "HPC702")
    assert len(found) == 1 and f"holds a {what}" in found[0] and "--mount=type=secret" in found[0]
    assert "s3cr3t" not in found[0] and "ghp_0123" not in found[0]  # the secret is not repeated


@pytest.mark.parametrize("line", [
    "RUN git clone git@github.com:org/repo.git",
    "RUN pip install git+https://github.com/org/repo.git@v1.0.0",
    "RUN git clone ssh://git@github.com/org/repo.git",
    "RUN --mount=type=secret,id=gh,env=GH_TOKEN git clone https://${GH_TOKEN}@github.com/org/private.git",
    "RUN git clone https://oauth2:${CI_JOB_TOKEN}@gitlab.example.org/org/repo.git",
])
def test_urls_without_a_written_login_are_not_secrets(line: str) -> None:
    token = "RUN git clone https://ghp_0123456789abcdefghijklmnopqrstuvwxyz12@github.com/org/private.git"
    found = lint(f"FROM python:3.11.9-slim\n{line}\n{token}\n")
    assert [f.line for f in found if f.code == "HPC702"] == [3]  # the written token only


def test_a_token_url_in_post_names_apptainers_way() -> None:
    text = (f"Bootstrap: docker\nFrom: {PINNED}\n\n%post\n"
            "    git clone https://ghp_0123456789abcdefghijklmnopqrstuvwxyz12@github.com/org/private.git /opt/p\n")
    found = messages(text, "HPC702")
    assert len(found) == 1 and "Apptainer has no build secrets" in found[0] and "%files" in found[0]


# -- HPC706: which /bin/sh has source ---------------------------------------------------------

def test_source_is_reported_only_where_sh_lacks_it() -> None:
    expected = {"centos:7.9.2009": False, "rockylinux:9.3": False, "alpine:3.20": False,
                "nvidia/cuda:12.2.0-devel-ubi8": False, "registry.access.redhat.com/ubi9/ubi:9.4": False,
                "ubuntu:24.04": True, "nvidia/cuda:12.2.0-devel-ubuntu22.04": True, "myorg/base:1.0": True}
    reported = {base: bool(messages(f"FROM {base}\nRUN source /opt/env.sh && make\n", "HPC706")) for base in expected}
    assert reported == expected


def test_source_follows_the_stage_a_dockerfile_builds_on() -> None:
    text = "FROM almalinux:8 AS build\nRUN dnf install -y make\nFROM build\nRUN source /opt/env.sh\n"
    assert messages(text, "HPC706") == []
    rocky = "Bootstrap: docker\nFrom: rockylinux:9.3\n\n%post\n    source /opt/rh/gcc-toolset-13/enable\n"
    assert messages(rocky, "HPC706") == []
    assert messages(rocky.replace("rockylinux:9.3", "ubuntu:24.04"), "HPC706")


# -- HPC704 and HPC705 ------------------------------------------------------------------------

def test_hpc704_names_the_installer_and_the_users_home() -> None:
    conda = "Bootstrap: docker\nFrom: ubuntu:22.04\n\n%post\n    bash /tmp/Miniconda3-latest-Linux-x86_64.sh -b -p ~/miniconda3\n"
    assert "the Miniconda installer's -p installs into the build's home, /root," in messages(conda, "HPC704")[0]
    user = "FROM python:3.11.9-slim\nRUN useradd -m app\nUSER app\nRUN pip install --user requests==2.32.3\n"
    assert "the build's home, /home/app," in messages(user, "HPC704")[0]


@pytest.mark.parametrize("command, answer", [
    ("zypper install python311", "-n"), ("conda install numpy=1.26", "-y"), ("mamba create -n env python=3.11", "-y"),
    ("pip uninstall torch", "-y"),
])
def test_more_tools_that_stop_to_ask(command: str, answer: str) -> None:
    found = messages(f"FROM opensuse/leap:15.6\nRUN {command}\n", "HPC705")
    assert len(found) == 1 and f"add {answer}" in found[0]


@pytest.mark.parametrize("command", ["zypper -n install python311", "zypper install -y python311",
                                     "conda install -y numpy=1.26", "pip uninstall -y torch"])
def test_tools_told_to_answer_yes_are_not_reported(command: str) -> None:
    found = lint(f"FROM opensuse/leap:15.6\nRUN {command}\nRUN zypper install git\n")
    assert [f.line for f in found if f.code == "HPC705"] == [3]


def test_conda_told_once_to_answer_yes_is_not_reported() -> None:
    base = "FROM continuumio/miniconda3:24.4.0-0\n"
    assert messages(base + "RUN conda install numpy=1.26\n", "HPC705")
    assert messages(base + "ENV CONDA_ALWAYS_YES=true\nRUN conda install numpy=1.26\n", "HPC705") == []
    assert messages(base + "RUN conda config --set always_yes yes && conda install numpy=1.26\n", "HPC705") == []


# -- Dockerfile instructions from the command line --------------------------------------------

def test_an_instruction_reads_from_its_dockerfile_line() -> None:
    assert Instruction.from_token("run dnf install -y python3.11") == Instruction("RUN", "dnf install -y python3.11")
    with pytest.raises(ValidationError, match="write an instruction as 'OP text'"):
        Instruction.from_token('{"op": "RUN", "text": "make"}')
    with pytest.raises(ValidationError, match="FROM is the base image"):
        Instruction.from_token("FROM ubuntu:24.04")


def test_charliecloud_dockerfile_takes_instructions_with_set(capsys) -> None:
    assert main(["charliecloud", "dockerfile", "--from-value", "almalinux:8", "--set",
                 "instructions=RUN dnf install -y python3.11", "--set", "instructions=WORKDIR /opt"]) == 0
    assert capsys.readouterr().out == "FROM almalinux:8\nRUN dnf install -y python3.11\nWORKDIR /opt\n"


# -- files that are no text -------------------------------------------------------------------

def test_binary_input_is_called_binary_and_latin1_gets_the_iconv_hint() -> None:
    junk = bytes(range(256)) * 4
    with pytest.raises(FileError, match="is not a text file") as caught:
        decode_text(junk, "junk.def")
    assert "iconv" not in str(caught.value)
    with pytest.raises(FileError, match="iconv -f cp1252"):
        decode_text("café olé\n".encode("latin-1"), "job.sh")


def test_the_apptainer_def_help_example_lints_clean(capsys) -> None:
    assert main(["apptainer", "def", "--from-image", PINNED, "--post", "pip install wandb==0.17.0"]) == 0
    assert lint(capsys.readouterr().out, path="m.def") == []
    with pytest.raises(SystemExit):
        main(["apptainer", "def", "--help"])
    assert "--post 'pip install wandb==0.17.0'" in capsys.readouterr().out


def test_a_bare_shell_and_a_build_argument_placeholder_are_read_without_findings() -> None:
    text = ("Bootstrap: docker\nFrom: ubuntu:22.04\n\n%post\n    bash\n    export HF_TOKEN={{ HF_TOKEN }}\n"
            "    bash /tmp/Miniforge3-Linux-x86_64.sh -b -p $HOME/forge\n")
    assert [(f.line, f.code) for f in lint(text)] == [(7, "HPC704")]
    assert "the Miniforge installer's -p" in lint(text)[0].message


def test_a_percent_line_in_a_heredoc_is_the_section_apptainer_reads_not_an_unclosed_heredoc():
    text = ("Bootstrap: docker\nFrom: ubuntu:22.04\n\n%post\n    cat > /opt/fmt.txt <<EOT\n%d items\nEOT\n"
            "    echo done\n")
    found = lint(text, path="fmt.def")
    assert [f.code for f in found] == ["HPC707"] and "even inside a heredoc" in found[0].message


def test_anonymous_ftp_logins_are_no_secret():
    assert lint("FROM ubuntu:22.04\nRUN wget -q ftp://anonymous:anonymous@ftp.example.org/pub/d.tgz\n",
                path="Dockerfile") == []
    assert [f.code for f in lint("FROM ubuntu:22.04\nRUN wget -q ftp://alice:s3cr3tpw@ftp.example.org/d.tgz\n",
                                 path="Dockerfile")] == ["HPC702"]
