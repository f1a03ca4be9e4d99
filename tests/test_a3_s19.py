"""Auditor A3's findings, session 19: HPC704's reason for a Dockerfile USER's home and the ARG/ENV values it reads;
HPC708 for %environment reading what only %post sets; HPC536 for placeholders that are paths; HPC535 and a folder
named after its variable; --select/--ignore HPC000."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.lint import lint

MINICONDA = "wget -q https://repo.anaconda.com/miniconda/Miniconda3-py311_24.4.0-0-Linux-x86_64.sh -O m.sh"


def codes(text: str, path: str = "") -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in lint(text, path=path)]


def messages(text: str, code: str, path: str = "") -> list[str]:
    return [f.message for f in lint(text, path=path) if f.code == code]


def deffile(*sections: str) -> str:
    return "Bootstrap: docker\nFrom: ubuntu:24.04\n\n" + "\n".join(sections)


# -- HPC704: a Dockerfile USER's home --------------------------------------------------------------

def test_hpc704_says_the_container_runs_as_another_user_not_that_home_is_bound() -> None:
    text = (f"FROM ubuntu:22.04\nRUN useradd -m alice\nUSER alice\nRUN {MINICONDA} && bash m.sh -b -p $HOME/miniconda\n")
    [message] = messages(text, "HPC704", "Dockerfile")
    assert "the build's home, /home/alice," in message
    assert "runs the image as you, not as alice" in message and "alice's (often mode 750)" in message
    assert "binds the host's /home" not in message
    assert message.endswith("install under /opt or /usr/local")


def test_hpc704_reads_a_users_home_written_out() -> None:
    text = f"FROM ubuntu:22.04\nRUN useradd -m alice\nUSER alice\nRUN {MINICONDA} && bash m.sh -b -p /home/alice/conda\n"
    assert codes(text, "Dockerfile") == [(4, "HPC704")]
    # as root, /home/alice is a folder like any other, root's and readable: not reported
    as_root = f"FROM ubuntu:22.04\nRUN {MINICONDA} && bash m.sh -b -p /home/alice/conda\n"
    assert codes(as_root, "Dockerfile") == []
    # another user's home is not the build's
    other = as_root.replace("FROM ubuntu:22.04\n", "FROM ubuntu:22.04\nUSER bob\n")
    assert codes(other, "Dockerfile") == []


def test_hpc704_fills_in_a_dockerfiles_env_and_arg_values() -> None:
    venv = "FROM python:3.11-slim\nENV VIRTUAL_ENV=/root/venv\nRUN python -m venv $VIRTUAL_ENV\n"
    [message] = messages(venv, "HPC704", "Dockerfile")
    assert "the build's home, /root ($VIRTUAL_ENV is /root/venv)," in message
    assert codes(venv.replace("-m venv", "-m virtualenv"), "Dockerfile") == [(3, "HPC704")]
    # the radfact pattern: ARG defaults filled in one from another, USER given by an ARG
    radfact = ("FROM ubuntu:22.04\nARG user=radfact\nARG userhome=/home/${user}\nRUN useradd -m ${user}\n"
               f"USER ${{user}}\nRUN {MINICONDA} && bash m.sh -b -p ${{userhome}}/miniconda\n")
    [message] = messages(radfact, "HPC704", "Dockerfile")
    assert "/home/radfact (${userhome}/miniconda is /home/radfact/miniconda)" in message and "not as radfact" in message


def test_hpc704_leaves_alone_values_it_cannot_know_and_system_folders() -> None:
    # Docker fills $HOME in an ENV line from the image's ENV, not with the build's home: unknown here
    assert codes("FROM python:3.11-slim\nENV VIRTUAL_ENV=$HOME/venv\nRUN python -m venv $VIRTUAL_ENV\n",
                 "Dockerfile") == []
    assert codes("FROM python:3.11-slim\nENV VIRTUAL_ENV=/opt/venv\nRUN python -m venv $VIRTUAL_ENV\n",
                 "Dockerfile") == []
    # an ARG without a default is given at build time; one from before FROM counts only once named again
    assert codes("FROM python:3.11-slim\nARG VENV\nRUN python -m venv $VENV\n", "Dockerfile") == []
    global_arg = "ARG VENV=/root/venv\nFROM python:3.11-slim\n{}RUN python -m venv $VENV\n"
    assert codes(global_arg.format(""), "Dockerfile") == [(3, "HPC713")]  # empty there: HPC713 says so
    assert codes(global_arg.format("ARG VENV\n"), "Dockerfile") == [(4, "HPC704")]
    # ENV carries into a stage built on this one, ARG does not
    stages = "FROM python:3.11-slim AS base\n{} VENV=/root/venv\nFROM base\nRUN python -m venv $VENV\n"
    assert codes(stages.format("ENV"), "Dockerfile") == [(4, "HPC704")]
    assert codes(stages.format("ARG"), "Dockerfile") == []


def test_hpc704_fills_in_what_the_same_shell_set_before() -> None:
    post = deffile("%post\n    VENV=/root/venv\n    python3 -m venv $VENV\n")
    assert codes(post) == [(6, "HPC704")]
    assert codes(post.replace("/root/venv", "/opt/venv")) == []
    # a NAME=value before the command is not yet set when bash fills in the command's words
    assert codes(deffile("%post\n    VENV=/root/venv python3 -m venv $VENV\n")) == []


def test_hpc704_in_a_definition_file_home_is_not_bound_but_tmp_is() -> None:
    assert codes(deffile("%post\n    python3 -m venv /home/app/venv\n")) == []   # built as root, readable
    [message] = messages(deffile("%post\n    python3 -m venv /var/tmp/venv\n"), "HPC704")
    assert "binds the host's /var/tmp over the image's" in message
    assert "binds the host's /tmp over" in messages(deffile("%post\n    pip install --prefix /tmp/x numpy==1.26.4\n"),
                                                    "HPC704")[0]


# -- HPC708: %environment reading what only %post sets ---------------------------------------------

ENV_FROM_POST = deffile("%post\n    ENV_NAME=myenv\n    conda create -y -n $ENV_NAME python=3.11\n",
                        "%environment\n    export PATH=/opt/conda/envs/$ENV_NAME/bin:$PATH\n")


def test_hpc708_environment_reading_a_post_variable() -> None:
    assert codes(ENV_FROM_POST) == [(9, "HPC708")]
    [message] = messages(ENV_FROM_POST, "HPC708")
    assert "$ENV_NAME is set in %post" in message and "set it in %environment too" in message


def test_hpc708_environment_that_sets_it_itself_or_gives_a_default() -> None:
    own = ENV_FROM_POST.replace("%environment\n", "%environment\n    export ENV_NAME=myenv\n")
    assert codes(own) == []
    assert codes(ENV_FROM_POST.replace("$ENV_NAME/bin", "${ENV_NAME:-myenv}/bin")) == []
    # variables every shell has are no %post's
    assert codes(deffile("%post\n    PATH=/opt/x/bin:$PATH\n", "%environment\n    export PATH=/opt/x/bin:$PATH\n")) == []


def test_hpc708_writing_it_to_apptainer_environment_does_not_help_environment() -> None:
    # 91-environment.sh ($APPTAINER_ENVIRONMENT) is sourced after 90-environment.sh (%environment)
    kept = ENV_FROM_POST.replace("python=3.11\n", "python=3.11\n    echo \"export ENV_NAME=$ENV_NAME\" >> "
                                 "$APPTAINER_ENVIRONMENT\n")
    assert [c for _, c in codes(kept)] == ["HPC708"]
    # ... but it does help %runscript
    run = deffile("%post\n    NOW=$(date)\n    echo \"export NOW=\\\"$NOW\\\"\" >> $APPTAINER_ENVIRONMENT\n",
                  "%runscript\n    echo $NOW\n")
    assert codes(run) == []


# -- HPC536: placeholders that are paths ----------------------------------------------------------

@pytest.mark.parametrize("line, placeholder", [
    ("python segment.py --data <path/to/data.csv> --index 1", "<path/to/data.csv>"),
    ("python train.py --out </path/to/results/> --epochs 3", "</path/to/results/>"),
    ("python train.py --data <DATA_DIR/train.csv> --epochs 3", "<DATA_DIR/train.csv>"),
    ("python run.py --project <your/project> --epochs 3", "<your/project>"),
])
def test_hpc536_a_path_placeholder_in_a_command(line: str, placeholder: str) -> None:
    [message] = messages(f"#!/bin/bash\n{line}\n", "HPC536")
    assert message.startswith(f"{placeholder} is a placeholder")


@pytest.mark.parametrize("line", [
    "sort <data/in.txt> out.txt",       # a real redirection: no word saying what to fill in
    "sort < path/to/in.txt > out.txt",  # blanks inside the brackets
    "sort <path/to/in.txt >out.txt",
    "sort <path/to/in.txt>out.txt",     # > followed by a word: a redirection into it
    "sort </dev/null> out.txt",
    "sort <mypath/in.txt> out.txt",     # path only as part of a word
    'echo "usage: run.sh <path/to/config.yaml>"',
])
def test_hpc536_leaves_real_redirections_with_paths_alone(line: str) -> None:
    assert messages(f"#!/bin/bash\n{line}\n", "HPC536") == []


def test_hpc536_a_path_placeholder_on_an_sbatch_line() -> None:
    text = ("#!/bin/bash\n#SBATCH --output=[path/to/logs/folder]/%x_%A_%a.out\n#SBATCH --account=<your/project>\n"
            "#SBATCH --error=[/path/to/][jobname].%j.err\n#SBATCH --chdir=/scratch/[0-9]/run\n"
            "#SBATCH --nodelist=n[01-04]\n#SBATCH --job-name=<path/to/x>\nhostname\n")
    assert codes(text) == [(2, "HPC536"), (3, "HPC536"), (4, "HPC536")]
    assert messages(text, "HPC536")[2].startswith("[/path/to/] and [jobname] are placeholders")


def test_a_path_placeholder_is_named_when_bash_cannot_read_the_script() -> None:
    [problem] = [f for f in lint("#!/bin/bash\npython x.py --data <path/to/data.csv> --out <OUT_DIR>\n")
                 if f.code == "HPC000"]
    assert "`<path/to/data.csv>`, `<OUT_DIR>` (line 2)" in problem.message


# -- HPC535: a folder named after its variable -----------------------------------------------------

@pytest.mark.parametrize("value", ["${PWD}/APPTAINER_CACHEDIR", '"$PWD/APPTAINER_CACHEDIR"', "$(pwd)/APPTAINER_CACHEDIR",
                                   "./APPTAINER_CACHEDIR/"])
def test_hpc535_a_relative_folder_of_the_same_name_is_meant(value: str) -> None:
    text = f"#!/bin/bash\nexport APPTAINER_CACHEDIR={value}\nmkdir -p APPTAINER_CACHEDIR\n"
    assert messages(text, "HPC535") == []


def test_hpc535_still_reports_a_folder_elsewhere_or_set_twice() -> None:
    elsewhere = "#!/bin/bash\nexport APPTAINER_CACHEDIR=$SCRATCH/APPTAINER_CACHEDIR\nmkdir -p APPTAINER_CACHEDIR\n"
    assert codes(elsewhere) == [(3, "HPC535")]
    other_name = "#!/bin/bash\nexport CACHE_DIR=$PWD/cache\nmkdir -p CACHE_DIR\n"
    assert codes(other_name) == [(3, "HPC535")]
    twice = ("#!/bin/bash\nexport APPTAINER_CACHEDIR=$PWD/APPTAINER_CACHEDIR\n"
             "APPTAINER_CACHEDIR=$SCRATCH/cache\nmkdir -p APPTAINER_CACHEDIR\n")
    assert codes(twice) == [(4, "HPC535")]


# -- --select / --ignore HPC000 ---------------------------------------------------------------------

@pytest.mark.parametrize("option, codes_given", [("--select", "HPC000"), ("--ignore", "hpc101,hpc000")])
def test_hpc000_cannot_be_selected_or_ignored_and_the_message_says_why(
        tmp_path, capsys: pytest.CaptureFixture[str], option: str, codes_given: str) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho 'open\n")
    status = main(["lint", option, codes_given, str(script)])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{option}: HPC000 is not a rule" in err and "cannot be read" in err and "Traceback" not in err


def test_the_python_api_refuses_hpc000_with_the_same_reason() -> None:
    from hpcwidgets.errors import HpcWidgetsError
    from hpcwidgets.lint import lint
    with pytest.raises(HpcWidgetsError, match="select: HPC000 is not a rule to choose"):
        lint("#!/bin/bash\necho hi\n", select=["HPC000"])


def test_the_unreadable_finding_comes_whatever_select_says(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho 'open\n")
    assert main(["lint", "--select", "HPC101", str(script)]) == 2
    assert "error HPC000" in capsys.readouterr().out
