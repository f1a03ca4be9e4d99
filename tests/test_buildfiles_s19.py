"""Build files and the Charliecloud conversion, session 19: a RUN [...] that is not JSON is shell form; pip's
general options before install; a conda installer's default prefix; variables read in a section that does not
see them (HPC708); header keywords Apptainer refuses (HPC709); which runtime HPC704 is about; %help kept as
written; ch-run -W, --home and --contain in the conversion; parse refusing build files."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.lint import lint
from hpcwidgets.parse import parse_command
from hpcwidgets.parse.buildfiles import parse_deffile, parse_dockerfile
from hpcwidgets.render.dockerfile import render_deffile, render_dockerfile
from hpcwidgets.spec.apptainer import ApptainerRun, DefFile, header_keyword_problem
from hpcwidgets.spec.common import EnvVar
from hpcwidgets.spec.convert import to_apptainer, to_charliecloud

UBUNTU = "Bootstrap: docker\nFrom: ubuntu:24.04\n\n"


def codes(text: str, path: str = "") -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in lint(text, path=path)]


def messages(text: str, code: str, path: str = "") -> list[str]:
    return [f.message for f in lint(text, path=path) if f.code == code]


def post(*lines: str, before: str = "") -> str:
    return UBUNTU + before + "%post\n" + "".join(f"    {line}\n" for line in lines)


# -- 1. exec form that is not JSON --------------------------------------------------------------

def test_a_run_list_that_is_not_json_is_shell_form_and_the_rest_is_checked() -> None:
    text = 'FROM ubuntu:24.04\nRUN ["echo", "price: \\$5"]\nRUN apt-get update && apt-get install git\n'
    assert codes(text, "Dockerfile") == [(3, "HPC705")]
    # Charliecloud's own test Dockerfile: \$ and \n mixed in a list Docker runs with /bin/sh -c
    exhaustive = 'FROM alpine:3.19\nRUN ["echo", "hello \\n${chse_2} \\${chse_2} ${NOTSET}"]\nRUN env\n'
    assert codes(exhaustive, "Dockerfile") == []


def test_a_shell_form_list_is_checked_as_shell_text() -> None:
    text = "FROM ubuntu:24.04\nRUN [ -d /opt ] && source /opt/env.sh\n"
    assert codes(text, "Dockerfile") == [(2, "HPC706")]


def test_a_valid_exec_form_is_still_read_without_a_shell() -> None:
    text = 'FROM ubuntu:24.04\nRUN ["pip", "install", "--user", "numpy==1.26.4"]\nRUN ["source", "/x"]\n'
    assert codes(text, "Dockerfile") == [(2, "HPC704")]  # exec form: no /bin/sh, so no HPC706 for "source"


def test_a_shell_that_is_not_json_stops_docker_and_says_how_to_write_it() -> None:
    found = lint("FROM ubuntu:24.04\nSHELL /bin/bash -c\nRUN echo hi\n", path="Dockerfile")
    assert [(f.line, f.code) for f in found] == [(2, "HPC000")]
    assert "SHELL requires the arguments to be in JSON form" in found[0].message
    assert 'SHELL ["/bin/bash", "-c"]' in found[0].message


@pytest.mark.parametrize("body", ['["pip", 1]', "[]"])
def test_a_json_list_docker_refuses_is_reported(body: str) -> None:
    found = lint(f"FROM ubuntu:24.04\nRUN {body}\n", path="Dockerfile")
    assert [(f.line, f.code) for f in found] == [(2, "HPC000")]
    assert "JSON list of strings with the program first" in found[0].message


def test_a_cmd_that_is_not_json_reads_and_writes_back_as_shell_form() -> None:
    text = 'FROM ubuntu:24.04\nCMD ["echo", "\\$5"]\n'
    model = parse_dockerfile(text)
    assert model.instructions[0].exec_args() is None
    assert render_dockerfile(model) == text


# -- 2. pip's general options, PIP_USER, conda installers ---------------------------------------

@pytest.mark.parametrize("line", ["pip3 -q install --user torch==2.3.1",
                                  "python3 -m pip --no-cache-dir install --user numpy==1.26.4",
                                  "pip --cache-dir /tmp/pip install --user numpy==1.26.4",
                                  "PIP_USER=1 pip install scipy==1.13.1",
                                  "PIP_USER=yes pip3 -q install scipy==1.13.1"])
def test_pip_user_installs_are_seen_past_general_options_and_pip_user(line: str) -> None:
    assert codes(post(line)) == [(5, "HPC704")]


def test_unpinned_packages_are_seen_past_general_options() -> None:
    text = post("pip --disable-pip-version-check install pandas",
                "pip3 -q --use-feature truststore install numpy==1.26.4",
                "pip --cert /etc/ssl/ca.pem install jdata")
    assert codes(text) == [(5, "HPC703"), (7, "HPC703")]
    assert "pip install pandas " in messages(text, "HPC703")[0]
    assert "jdata" in messages(text, "HPC703")[1] and "/etc" not in messages(text, "HPC703")[1]


@pytest.mark.parametrize("line", ["pip -q list", "pip --version", "pip3 -q download torch", "PIP_USER=0 pip install x==1",
                                  "pip install --target /opt/lib numpy==1.26.4"])
def test_other_pip_commands_and_system_installs_are_left_alone(line: str) -> None:
    assert codes(post(line)) == []


def test_pip_user_exported_earlier_in_the_section_or_by_env_is_seen() -> None:
    assert codes(post("export PIP_USER=1", "pip install numpy==1.26.4")) == [(6, "HPC704")]
    docker = "FROM ubuntu:24.04\nENV PIP_USER=true\nRUN pip install numpy==1.26.4\n"
    assert codes(docker, "Dockerfile") == [(3, "HPC704")]


def test_pip_user_set_where_the_build_does_not_see_it_is_left_alone() -> None:
    # %environment is not sourced while the image is built; an export in one RUN ends with that RUN
    assert codes(post("pip install numpy==1.26.4", before="%environment\n    export PIP_USER=1\n\n")) == []
    docker = "FROM ubuntu:24.04\nRUN export PIP_USER=1\nRUN pip install numpy==1.26.4\n"
    assert codes(docker, "Dockerfile") == [(2, "HPC714")]  # no HPC704: what HPC714 says is lost never reaches pip


MINICONDA = "wget -q https://repo.anaconda.com/miniconda/Miniconda3-py311_24.4.0-0-Linux-x86_64.sh -O /tmp/mc.sh"


def test_a_conda_installer_in_batch_mode_without_a_prefix_installs_into_root() -> None:
    text = post(MINICONDA, "bash /tmp/mc.sh -b")
    assert codes(text) == [(6, "HPC704")]
    assert "run with -b and no -p (its default prefix, $HOME/miniconda3)" in messages(text, "HPC704")[0]
    assert "/root" in messages(text, "HPC704")[0]


def test_the_installer_is_known_by_its_name_or_its_download() -> None:
    forge = post("curl -fsSLo /tmp/install.sh "
                 "https://github.com/conda-forge/miniforge/releases/latest/download/Miniforge3-Linux-x86_64.sh",
                 "bash /tmp/install.sh -b")
    assert "$HOME/miniforge3" in messages(forge, "HPC704")[0]
    assert codes(post("bash Miniconda3-latest-Linux-x86_64.sh -b -p /root/miniconda3")) == [(5, "HPC704")]
    assert codes(post(MINICONDA, "bash /tmp/mc.sh -bp /root/conda")) == [(6, "HPC704")]


@pytest.mark.parametrize("line", ["bash /tmp/mc.sh -b -p /opt/conda", "bash /tmp/mc.sh -bp /opt/conda",
                                  "bash /tmp/mc.sh -bp/opt/conda", "bash /tmp/setup.sh -b", "sh ./build.sh -b"])
def test_installers_into_system_folders_and_other_scripts_are_left_alone(line: str) -> None:
    assert codes(post(MINICONDA, line)) == []


# -- 3. HPC708: a variable read where it is not set ---------------------------------------------

ENV_VENV = "%environment\n    export VENV=/opt/venv\n\n"


def test_an_environment_variable_read_in_post_is_empty_at_build_time() -> None:
    text = post("apt-get update && apt-get install -y python3-venv", "python3 -m venv $VENV", before=ENV_VENV)
    assert codes(text) == [(9, "HPC708")]
    assert "$VENV is set in %environment" in messages(text, "HPC708")[0]
    assert "export VENV=" in messages(text, "HPC708")[0]


@pytest.mark.parametrize("lines", [("export VENV=/opt/venv", "python3 -m venv $VENV"),
                                   ("python3 -m venv ${VENV:-/opt/venv}",),
                                   ("echo '$VENV is set when the container runs'",),
                                   ("for VENV in a b; do echo $VENV; done",),
                                   ("echo $PATH $HOME $APPTAINER_ROOTFS",)])
def test_variables_set_in_post_defaulted_quoted_or_given_are_left_alone(lines: tuple[str, ...]) -> None:
    assert codes(post(*lines, before=ENV_VENV + "%environment\n    export PATH=/opt/venv/bin:$PATH\n\n")) == []


def test_a_post_variable_read_in_runscript_is_gone_when_the_container_runs() -> None:
    text = post("NOW=`date`", "MODEL_DIR=/opt/models", "mkdir -p $MODEL_DIR") + \
        '\n%runscript\n    echo "built $NOW"\n    exec python3 /opt/serve.py --models "$MODEL_DIR" "$@"\n'
    assert codes(text) == [(10, "HPC708"), (11, "HPC708")]
    assert "APPTAINER_ENVIRONMENT" in messages(text, "HPC708")[0]


def test_a_post_variable_kept_for_the_container_is_left_alone() -> None:
    kept = post("NOW=`date`", 'echo "export NOW=\\"${NOW}\\"" >> $APPTAINER_ENVIRONMENT') + \
        '\n%runscript\n    echo "built $NOW"\n'
    assert codes(kept) == []
    both = post("MODEL_DIR=/opt/models", "mkdir -p $MODEL_DIR", before="%environment\n    export MODEL_DIR=/opt/models\n\n") \
        + '\n%runscript\n    ls "$MODEL_DIR"\n'
    assert codes(both) == []


def test_a_dockerfile_env_is_seen_by_run_lines() -> None:
    assert codes("FROM ubuntu:24.04\nENV VENV=/opt/venv\nRUN python3 -m venv $VENV\n", "Dockerfile") == []


# -- 4. HPC709: header keywords -----------------------------------------------------------------

def test_an_unknown_header_keyword_is_reported_with_labels_as_the_place_for_metadata() -> None:
    text = "Bootstrap: docker\nFrom: ubuntu:24.04\nMaintainer: alice@example.org\n\n%post\n    true\n"
    assert codes(text) == [(3, "HPC709")]
    message = messages(text, "HPC709")[0]
    assert "invalid header keyword found: maintainer" in message and "%labels" in message and "OSVersion" in message


def test_a_misspelled_header_keyword_gets_the_nearest_one() -> None:
    text = "Bootstrap: yum\nOSVersoin: 9\nMirrorURL: http://example.org/%{OSVERSION}/\n\n%post\n    true\n"
    assert codes(text) == [(2, "HPC709")]
    assert "write OSVersion:" in messages(text, "HPC709")[0]


def test_every_header_keyword_apptainer_reads_is_left_alone() -> None:
    text = ("bootstrap: docker\nFROM: ubuntu:24.04\nStage: build\nIncludeCmd: yes\nFingerprints: ABC\n"
            "OtherURL0: http://a\nOtherURL12: http://b\nSetOpt: x\n\n%post\n    true\n")
    assert codes(text) == []
    assert header_keyword_problem("otherurl") != "" and header_keyword_problem("Registry") == ""


def test_a_header_line_without_a_colon_is_reported() -> None:
    found = lint("Bootstrap: docker\nFrom: ubuntu:24.04\nubuntu\n\n%post\n    true\n", path="x.def")
    assert [(f.line, f.code) for f in found] == [(3, "HPC709")]
    assert "had no val" in found[0].message


def test_the_reader_keeps_an_unknown_header_keyword() -> None:
    model = parse_deffile("Bootstrap: docker\nFrom: ubuntu:24.04\nMaintainer: alice\n")
    assert [(h.name, h.value) for h in model.header] == [("Maintainer", "alice")]


# -- 5. HPC704 names the runtime; %help as written ----------------------------------------------

def test_hpc704_says_which_runtime_does_not_find_root() -> None:
    docker = "FROM ubuntu:24.04\nRUN bash ./Miniconda3-latest-Linux-x86_64.sh -b -p $HOME/miniconda3\n"
    message = messages(docker, "HPC704", "Dockerfile")[0]
    assert "Apptainer" in message and "ch-run can read /root" in message
    deffile = messages(post("pip install --user numpy==1.26.4"), "HPC704")[0]
    assert "Apptainer runs the container as you" in deffile and "ch-run" not in deffile


def test_help_is_written_back_as_written() -> None:
    text = ("Bootstrap: docker\nFrom: ubuntu:24.04\n\n%help\nThis container trains.\n  Usage: apptainer run img.sif\n"
            "\n%post\n    true\n")
    model = parse_deffile(text)
    assert model.help == "This container trains.\n  Usage: apptainer run img.sif"
    written = render_deffile(model)
    assert "%help\nThis container trains.\n  Usage: apptainer run img.sif\n" in written
    assert parse_deffile(written) == model
    # an apostrophe in help text is text, not an open shell quote
    assert parse_deffile(UBUNTU + "%help\n    It's a test.\n").help == "    It's a test."


# -- 6. conversion ------------------------------------------------------------------------------

@pytest.mark.parametrize("option, size", [("-W", ""), ("--write-fake", ""), ("--write-fake=4g", "4g"), ("-W4g", "4g")])
def test_ch_run_write_fake_becomes_writable_tmpfs(option: str, size: str) -> None:
    conv = to_apptainer(parse_command(f"ch-run {option} ./img -- python train.py"))
    assert conv.result.writable_tmpfs
    note = next(n for n in conv.notes if "--writable-tmpfs" in n)
    assert "discarded when the container exits" in note and "64 MiB" in note
    assert (f"the {size} asked for here" in note) == bool(size)
    assert not any("has no Apptainer equivalent" in n for n in conv.notes)


def test_the_home_note_names_write_fake_and_the_kernel_it_needs() -> None:
    conv = to_charliecloud(ApptainerRun(nv=True, image="./img", command=("python", "/opt/train.py")))
    assert conv.result.home
    note = next(n for n in conv.notes if "ch-run needs --home" in n)
    assert "--write-fake" in note and "5.11" in note and "operation not permitted" in note


def test_the_contain_note_says_home_is_read_only_and_what_to_do() -> None:
    conv = to_charliecloud(ApptainerRun(contain=True, image="./img", command=("python", "/opt/train.py")))
    note = next(n for n in conv.notes if n.startswith("ch-run has no --contain"))
    assert "/root" in note and "read-only" in note and "--set-env=HOME=/tmp" in note


# -- 7. parse refuses build files ---------------------------------------------------------------

@pytest.mark.parametrize("name, text, command", [
    ("env.def", "Bootstrap: docker\nFrom: ubuntu:24.04\n%post\n    apt-get update\n", "apptainer build IMAGE.sif"),
    ("Dockerfile", "FROM ubuntu:24.04\nRUN apt-get update\n", "ch-image build -f"),
    ("recipe.txt", "Bootstrap: docker\nFrom: ubuntu:24.04\n", "apptainer build IMAGE.sif")])
def test_parse_refuses_a_build_file_naming_the_command_that_builds_it(tmp_path, capsys, name: str, text: str,
                                                                      command: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["parse", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not a job script" in err and command in err and "hpcwidgets lint" in err


def test_parse_still_reads_a_job_script(tmp_path, capsys) -> None:
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/bash\n#SBATCH --nodes=1\nsrun hostname\n")
    assert main(["parse", str(path)]) == 0
    assert "hostname" in capsys.readouterr().out


# -- the model refuses what Apptainer would refuse or read otherwise ------------------------------

def test_the_model_refuses_a_header_keyword_apptainer_does_not_read() -> None:
    bad = DefFile(from_="ubuntu:24.04", header=(EnvVar("Maintainer", "alice"),))
    assert [p.field for p in bad.problems()] == ["header"]
    assert "%labels" in bad.problems()[0].message
    good = DefFile(from_="ubuntu:24.04", header=(EnvVar("Stage", "build"), EnvVar("OtherURL1", "https://x")))
    assert good.problems() == []


def test_def_with_an_unknown_header_keyword_exits_2_naming_the_keywords(capsys) -> None:
    assert main(["apptainer", "def", "--from-image", "ubuntu:24.04", "--header", "Maintainer=alice"]) == 2
    err = capsys.readouterr().err
    assert "Maintainer" in err and "%labels" in err and "Bootstrap, From, Stage" in err


def test_help_text_that_would_start_another_stage_is_refused_and_indented_text_is_kept() -> None:
    bad = DefFile(from_="ubuntu:24.04", help="Usage:\nbootstrap: run it first")
    assert [p.field for p in bad.problems()] == ["help"]
    kept = DefFile(from_="ubuntu:24.04", help="Usage:\n  Bootstrap: is only text here")
    assert kept.problems() == []
    assert parse_deffile(render_deffile(kept)).help == kept.help
