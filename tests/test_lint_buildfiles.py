"""Build-file linting: definition files and Dockerfiles get the HPC7xx rules, job scripts the others."""

from __future__ import annotations

import os

import pytest

from hpcwidgets.cli import main
from hpcwidgets.lint import lint, rule, rules, rules_markdown
from hpcwidgets.parse.buildfiles import build_file_format
from hpcwidgets.spec.apptainer import DefFile

# the audit's repro: every mistake lessons 02 and 05 warn about, in one definition file
AUDIT_DEF = """Bootstrap: docker
From: pytorch/pytorch:latest

%post
    export HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123456789
    pip install torch
"""
PINNED = "pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"


def deffile(post: str, head: str = f"Bootstrap: docker\nFrom: {PINNED}\n", section: str = "%post") -> str:
    return head + f"\n{section}\n" + "".join(f"    {line}\n" for line in post.split("\n"))


def dockerfile(*lines: str, base: str = f"FROM {PINNED}") -> str:
    return "\n".join((base, *lines)) + "\n"


def found(text: str, code: str, path: str = "") -> list[int]:
    """The lines ``code`` is reported at."""
    return [f.line for f in lint(text, path=path) if f.code == code]


# --------------------------------------------------------------------------------------------
# telling build files from job scripts

@pytest.mark.parametrize("text,path,expected", [
    ("Bootstrap: docker\nFrom: ubuntu:24.04\n", "", "apptainer"),
    ("# a comment\nFrom: ubuntu:24.04\nBootstrap: docker\n", "", "apptainer"),   # From: may come first
    ("FROM ubuntu:24.04\nRUN true\n", "", "docker"),
    ("# syntax=docker/dockerfile:1\nARG TAG=24.04\nFROM ubuntu:$TAG\n", "", "docker"),
    ("#!/bin/bash\n#SBATCH --time=1:00:00\nFROM=x python t.py\n", "", ""),
    ("python train.py\n", "job.sh", ""),
    ("anything", "envs/env.def", "apptainer"),
    ("anything", "Dockerfile", "docker"),
    ("anything", "docker/Dockerfile.gpu", "docker"),
    ("anything", "Containerfile", "docker"),
    ("anything", "gpu.Dockerfile", "docker"),
])
def test_build_files_are_told_apart_by_name_and_first_line(text: str, path: str, expected: str) -> None:
    assert build_file_format(text, path) == expected


def test_the_audit_def_file_gets_build_rules_not_job_rules() -> None:
    codes = {f.code: f for f in lint(AUDIT_DEF)}
    assert set(codes) == {"HPC701", "HPC702", "HPC703"}
    assert codes["HPC701"].line == 2 and codes["HPC702"].line == 5 and codes["HPC703"].line == 6
    assert codes["HPC703"].severity == "info"   # installing at build time is right; unpinned is advice


def test_job_scripts_get_no_build_rules() -> None:
    job = "#!/bin/bash\n#SBATCH --gres=gpu:1\nsource /opt/venv/bin/activate\npip install --user wandb\npython t.py\n"
    codes = {f.code for f in lint(job)}
    assert "HPC507" in codes and not any(c.startswith("HPC7") for c in codes)
    assert not lint(job, select=["HPC704"])          # selecting a build rule does not run it on a job script
    assert not lint(AUDIT_DEF, select=["HPC602"])    # nor a job-script rule on a build file


def test_every_rule_has_a_kind_and_the_build_family_is_complete() -> None:
    build = {c for c, r in rules().items() if r.kind == "build"}
    assert build == {"HPC701", "HPC702", "HPC703", "HPC704", "HPC705", "HPC706", "HPC707", "HPC708", "HPC709",
                     "HPC710", "HPC711", "HPC712", "HPC713", "HPC714", "HPC715", "HPC716",
                     "HPC717", "HPC718"}
    assert all(r.kind == "script" for c, r in rules().items() if c not in build)
    with pytest.raises(ValueError, match="kind must be one of"):
        rule("HPC799", "x", "info", summary="s", why="w", fix="f", bad="", good="", kind="recipe")


def test_the_catalogue_page_lists_the_build_rules_with_their_language() -> None:
    text = rules_markdown()
    assert "[HPC701](#hpc701)" in text and "The HPC7xx rules check build files" in text
    section = text.split("## HPC701")[1].split("## HPC702")[0]
    assert "```singularity\nBootstrap: docker" in section
    assert "```dockerfile\nFROM ubuntu:24.04" in text.split("## HPC706")[1]


# --------------------------------------------------------------------------------------------
# HPC701: base image not pinned

@pytest.mark.parametrize("text,lines", [
    (dockerfile(base="FROM pytorch/pytorch"), [1]),
    (dockerfile(base="FROM --platform=linux/amd64 pytorch/pytorch:latest AS build"), [1]),
    (dockerfile(base="FROM localhost:5000/pytorch"), [1]),                   # a registry port is no tag
    (dockerfile(base="FROM pytorch/pytorch@sha256:" + "0" * 64), []),
    (dockerfile(base="FROM scratch"), []),
    (dockerfile(base="ARG BASE=pytorch/pytorch:latest\nFROM ${BASE}"), [2]),  # filled in from the ARG default
    (dockerfile(base="ARG BASE\nFROM $BASE"), []),                           # only the build knows
    (f"FROM {PINNED} AS build\nRUN true\nFROM build\nRUN true\n", []),       # an earlier stage is no image
    ("Bootstrap: library\nFrom: alpine\n", [2]),
    ("Bootstrap: docker\nFrom: docker://ubuntu:latest\n", [2]),
    ("Bootstrap: localimage\nFrom: ./base.sif\n", []),
    ("Bootstrap: docker\nFrom: pytorch/pytorch:{{ TAG }}\n\n%arguments\n    TAG=latest\n", [2]),
    ("Bootstrap: docker\nFrom: pytorch/pytorch:{{ TAG }}\n", []),
    # multi-stage definition file: each stage's base counts
    (f"Bootstrap: docker\nFrom: {PINNED}\nStage: build\n\n%post\n    true\n\nBootstrap: docker\nFrom: ubuntu\n", [9]),
])
def test_hpc701_unpinned_base_images(text: str, lines: list[int]) -> None:
    assert found(text, "HPC701") == lines


# --------------------------------------------------------------------------------------------
# HPC702: secrets

@pytest.mark.parametrize("text,lines", [
    (dockerfile("ENV HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz"), [2]),
    (dockerfile("ARG HF_TOKEN"), [2]),                                  # the value given at build time is recorded
    (dockerfile("ARG WANDB_API_KEY", "ENV WANDB_API_KEY=$WANDB_API_KEY"), [2, 3]),
    (dockerfile("ENV HF_HOME=/opt/hf TOKENIZERS_PARALLELISM=false"), []),
    (dockerfile("RUN huggingface-cli login --token hf_abcdefghijklmnop && true"), [2]),
    (dockerfile("RUN --mount=type=secret,id=hf,env=HF_TOKEN huggingface-cli download gpt2"), []),
    (deffile("export WANDB_API_KEY=0123456789abcdef0123456789abcdef", section="%environment"), [5]),
    (deffile("export HF_TOKEN=$HF_TOKEN", section="%environment"), []),  # taken from the host when it runs
    (deffile("export AWS_SECRET_ACCESS_KEY=abcdefghijklmnop\n    aws s3 cp s3://b/x /opt/x", section="%post"), [5]),
])
def test_hpc702_secrets_in_build_files(text: str, lines: list[int]) -> None:
    assert found(text, "HPC702") == lines
    assert all(f.severity == "error" for f in lint(text) if f.code == "HPC702")


# --------------------------------------------------------------------------------------------
# HPC703: pip install without versions (info)

@pytest.mark.parametrize("command,flagged", [
    ("pip install numpy", True),
    ("python3 -m pip install --no-cache-dir 'torch[cuda]'", True),
    ("pip install numpy==1.26.4 'scipy>=1.11'", False),   # a range is a deliberate choice
    ("pip install -r /opt/requirements.txt", False),
    ("pip install -c /opt/constraints.txt numpy", False),
    ("pip install --upgrade pip setuptools wheel", False),
    ("pip install ./mypkg /opt/wheels/x-1.0-py3-none-any.whl", False),
    ("echo pip install numpy", False),
])
def test_hpc703_pip_versions(command: str, flagged: bool) -> None:
    assert bool(found(deffile(command), "HPC703")) is flagged


def test_hpc703_reads_exec_form_and_continued_run_lines() -> None:
    assert found(dockerfile('RUN ["pip", "install", "numpy"]'), "HPC703") == [2]
    text = dockerfile("RUN apt-get update && \\", "    pip install \\", "      numpy", "RUN true")
    assert found(text, "HPC703") == [2]   # reported at the instruction's line
    heredoc = dockerfile("RUN <<EOF", "set -e", "pip install numpy", "EOF")
    assert found(heredoc, "HPC703") == [4]


def test_pip_in_runscript_is_no_build_step() -> None:
    assert not found(deffile("pip install numpy", section="%runscript"), "HPC703")


# --------------------------------------------------------------------------------------------
# HPC704: installed into a home folder

@pytest.mark.parametrize("command,flagged", [
    ("pip install --user numpy==1.26.4", True),
    ("python3 -m venv $HOME/venv", True),
    ("bash /tmp/Miniforge3-Linux-x86_64.sh -b -p ~/miniforge3", True),
    ("conda create -y -p /root/envs/train python=3.11", True),
    ("python3 -m venv /tmp/venv", True),                 # Apptainer binds the host's /tmp over it
    ("python3 -m venv /opt/venv", False),
    ("bash /tmp/Miniforge3-Linux-x86_64.sh -b -p /opt/conda", False),
    ("mkdir -p ~/cache", False),
])
def test_hpc704_home_installs_in_definition_files(command: str, flagged: bool) -> None:
    assert bool(found(deffile(command), "HPC704")) is flagged


def test_hpc704_tmp_is_fine_in_a_dockerfile() -> None:
    assert not found(dockerfile("RUN python3 -m venv /tmp/venv"), "HPC704")
    assert found(dockerfile("RUN pip install --user numpy==1.26.4"), "HPC704") == [2]


# --------------------------------------------------------------------------------------------
# HPC705: package manager asks

@pytest.mark.parametrize("command,flagged", [
    ("apt-get install git", True),
    ("apt install -q git", True),
    ("dnf install git", True),
    ("apt-get install -yq git", False),
    ("apt-get --assume-yes install git", False),
    ("apt-get -qq install git", False),
    ("yum install -y git", False),
    ("yes | apt-get install git", False),
    ("apt-get update", False),
])
def test_hpc705_install_without_yes(command: str, flagged: bool) -> None:
    assert bool(found(deffile(command), "HPC705")) is flagged


# --------------------------------------------------------------------------------------------
# HPC706: source under /bin/sh

def test_hpc706_source_under_sh_and_the_ways_out() -> None:
    assert found(deffile("source /opt/venv/bin/activate"), "HPC706") == [5]
    assert found(deffile("if true; then source /opt/env.sh; fi"), "HPC706") == [5]
    assert not found(deffile("source /opt/venv/bin/activate", section="%post -c /bin/bash"), "HPC706")
    assert not found(deffile(". /opt/venv/bin/activate"), "HPC706")
    bash = dockerfile('SHELL ["/bin/bash", "-c"]', "RUN source /opt/env.sh")
    assert not found(bash, "HPC706")
    staged = f'FROM {PINNED} AS base\nSHELL ["/bin/bash", "-c"]\nFROM base\nRUN source /opt/env.sh\n'
    assert not found(staged, "HPC706")       # a stage built on another keeps its shell
    assert found(staged.replace("FROM base", f"FROM {PINNED}"), "HPC706") == [4]


# --------------------------------------------------------------------------------------------
# suppressions, unreadable files, models

def test_suppressions_in_build_files() -> None:
    assert not found(AUDIT_DEF.replace(":latest", ":latest  # hpcw: disable=HPC701"), "HPC701")
    assert not found(AUDIT_DEF.replace("From:", "# hpcw: disable=HPC701\nFrom:"), "HPC701")
    before = AUDIT_DEF.replace("    pip install torch", "    # hpcw: disable=HPC703\n    pip install torch")
    assert not found(before, "HPC703") and found(before, "HPC702")
    assert not found("# hpcw: disable-file=HPC702\n" + dockerfile("ARG HF_TOKEN"), "HPC702")


def test_an_unreadable_build_file_is_one_hpc000() -> None:
    out = lint(dockerfile('RUN echo "unclosed'))
    assert [f.code for f in out] == ["HPC000"] and "cannot read the Dockerfile" in out[0].message
    assert out[0].line == 2
    out = lint(deffile('echo "unclosed'))
    assert [f.code for f in out] == ["HPC000"] and out[0].line == 5 and "%post" in out[0].message


def test_a_definition_file_model_is_linted_as_a_build_file() -> None:
    model = DefFile(from_="pytorch/pytorch:latest", post=("pip install --user numpy==1.26.4",))
    assert {f.code for f in lint(model)} == {"HPC701", "HPC704"}


# --------------------------------------------------------------------------------------------
# the definition-file builder

def test_the_definition_file_form_reports_build_findings() -> None:
    pytest.importorskip("ipywidgets")
    from hpcwidgets.widgets import DefFileBuilder
    recipe = DefFile(from_="pytorch/pytorch:latest",
                     post=("export HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123456789",))
    b = DefFileBuilder(recipe, profile="generic", submit=False)
    assert {f.code for f in b.findings} == {"HPC701", "HPC702"}
    shown = " ".join(getattr(row, "value", "") for row in b.findings_view.children)
    assert "HPC701" in shown and "HPC702" in shown
    assert not DefFileBuilder(profile="generic", submit=False).findings   # the default recipe is clean


# --------------------------------------------------------------------------------------------
# the command line

def test_cli_lints_each_file_with_its_own_rules(tmp_path, capsys) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile("RUN pip install --user numpy==1.26.4", base="FROM ubuntu"))
    (tmp_path / "env.def").write_text(AUDIT_DEF)
    (tmp_path / "job.sbatch").write_text("#!/bin/bash\n#SBATCH --gres=gpu:1\npip install wandb\npython t.py\n")
    paths = [str(tmp_path / n) for n in ("Dockerfile", "env.def", "job.sbatch")]
    assert main(["lint", *paths]) == 1
    out = capsys.readouterr()
    by_file = {}
    for line in out.out.splitlines():
        by_file.setdefault(os.path.basename(line.split(":")[0]), set()).add(line.split()[2])
    assert by_file == {"Dockerfile": {"HPC701", "HPC704"}, "env.def": {"HPC701", "HPC702", "HPC703"},
                       "job.sbatch": {"HPC507"}}
    assert "in 3 file(s)" in out.err


def test_cli_fix_leaves_a_build_file_alone(tmp_path, capsys) -> None:
    path = tmp_path / "env.def"
    path.write_text(AUDIT_DEF)
    assert main(["lint", "--fix", str(path)]) == 1
    assert path.read_text() == AUDIT_DEF and not (tmp_path / "env.def.bak").exists()
    assert "nothing to fix automatically" in capsys.readouterr().err


def test_cli_folder_includes_build_files_and_help_names_them(tmp_path, capsys) -> None:
    (tmp_path / "containers").mkdir()
    (tmp_path / "containers" / "train.def").write_text(AUDIT_DEF)
    (tmp_path / "notes.txt").write_text("From: x\n")
    assert main(["lint", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert {line.split(":")[0] for line in out.out.splitlines()} == {str(tmp_path / "containers" / "train.def")}
    with pytest.raises(SystemExit):
        main(["lint", "--help"])
    assert "Build files are recognised" in " ".join(capsys.readouterr().out.split())


def test_cli_reads_a_build_file_from_stdin(monkeypatch, capsys) -> None:
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(dockerfile("RUN apt-get install git")))
    assert main(["lint", "-"]) == 0
    assert "HPC705" in capsys.readouterr().out
