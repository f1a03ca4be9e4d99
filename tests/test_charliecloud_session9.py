"""Charliecloud audit 9: ch-run's own $NAME expansion in --set-env, options the model has no field for,
bind modes and SquashFS images ch-fromhost cannot change, the order of --set-env/--unset-env, and the
Apptainer translations of run/test/instance:// and of the starting directory."""

from __future__ import annotations

import subprocess

import pytest

from hpcwidgets.errors import HpcWidgetsError
from hpcwidgets.lint import lint
from hpcwidgets.parse.argv import parse_argv
from hpcwidgets.parse.lexer import lex_command
from hpcwidgets.render.command import argv, command_line
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.convert import Conversion, to_apptainer, to_charliecloud

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"
PREPEND = "srun ch-run --set-env --set-env='PATH=/opt/conda/bin:$PATH' \"$SCRATCH/img.sqfs\" -- python /opt/app/train.py\n"


def read(line: str) -> ChRun:
    """A ch-run command line read as a script reader reads it (quotes and all)."""
    return parse_argv([w.value for w in lex_command(line).words]).model


def codes(body: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in lint(HEAD + body):
        out.setdefault(f.code, []).append(f.message)
    return out


def noted(conv: Conversion, *needles: str) -> bool:
    return any(all(n in note for n in needles) for note in conv.notes)


# -- 1. --set-env='PATH=/opt/bin:$PATH': ch-run expands it itself ---------------------------------------------

def test_documented_prepend_is_held_rendered_unexpanded_and_read_back():
    run = read("ch-run --set-env --set-env='PATH=/opt/conda/bin:$PATH' /img -- python")
    assert run.image_env and run.set_env == ("PATH=/opt/conda/bin:\\$PATH",)
    assert run.problems() == []
    text = command_line(run)
    # what ch-run receives: the text itself, for ch-run to expand in the container
    out = subprocess.run(["bash", "-c", f"printf '%s\\n' {text}"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True).stdout.split("\n")
    assert "--set-env=PATH=/opt/conda/bin:$PATH" in out
    assert read(text) == run


def test_lint_leaves_the_documented_prepend_alone():
    found = codes(PREPEND)
    assert "HPC219" not in found and "HPC514" not in found, found


@pytest.mark.parametrize("line, code, says", [
    # --env-no-expand keeps the text: PATH becomes "/opt/conda/bin:$PATH" literally (the program is not found)
    ("srun ch-run --env-no-expand --set-env='PATH=/opt/conda/bin:$PATH' /img -- python /opt/t.py\n", "HPC514",
     "ch-run receives the text"),
    # ch-run takes the whole item as a name: "SCRATCH/data" is no variable, the item is dropped
    ("srun ch-run --set-env='DATA=$SCRATCH/data' /img -- python /opt/t.py\n", "HPC219", "'SCRATCH/data'"),
    # not at the start of an item: ch-run leaves it as text
    ("srun ch-run --set-env='OUT=run-$SLURM_JOB_ID' /img -- python /opt/t.py\n", "HPC514", "ch-run receives"),
])
def test_single_quoted_dollars_that_are_mistakes_are_still_reported(line, code, says):
    found = codes(line)
    assert code in found and says in found[code][0], found


def test_a_lookup_of_no_variable_name_is_a_model_problem():
    run = ChRun(set_env=("P=\\$HOME/bin:\\$PATH",), image="/img", command=("sh",))
    assert [p.field for p in run.problems()] == ["set_env"] and "'HOME/bin'" in run.problems()[0].message
    assert ChRun(set_env=("P=\\$HOME/bin",), env_no_expand=True, image="/img", command=("sh",)).problems() == []


def test_convert_does_not_turn_ch_run_expansion_into_host_expansion():
    conv = to_apptainer(read("ch-run --set-env --set-env='PATH=/opt/bin:$PATH' ./img -- env"))
    assert conv.result.env == () and noted(conv, "ch-run itself replaces $PATH", "left out")


# -- 2. options without a field ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options", ["-v", "-q", "--join-ct=8 --join-tag=\"$SLURM_JOB_ID\"", "-m /tmp/mnt",
                                     "--mount=/tmp/mnt", "--no-home", "--feature=squash", "-W", "--write-fake",
                                     "--join-pid 42", "--ch-ssh"])
def test_options_without_a_field_keep_the_step_checked(options):
    found = codes(f'srun ch-run {options} "$SCRATCH/img.sqfs" -- python train.py --data "$SCRATCH/data"\n')
    assert "HPC224" in found, found
    run = read(f"ch-run {options} /img -- ls")
    assert run.problems() == [] and run.extra and read(command_line(run)) == run


def test_options_without_a_field_convert_with_notes():
    run = read("ch-run -m /tmp/mnt -v --join-ct=4 --no-home /img -- ls")
    assert run.joins and run.extra == ("-m", "/tmp/mnt", "-v", "--join-ct=4", "--no-home")
    conv = to_apptainer(run)
    assert noted(conv, "-m /tmp/mnt", "no Apptainer equivalent") and noted(conv, "-v changes only what")
    assert noted(conv, "--join has no equivalent")
    assert "-m" not in argv(conv.result)


# -- 3. :ro on a ch-run bind, ch-fromhost on a SquashFS file ----------------------------------------------------

def test_lint_reports_a_bind_mode_and_a_squashfs_for_ch_fromhost():
    found = codes('srun ch-run -b "$SCRATCH/data:/mnt/0:ro" "$SCRATCH/img.sqfs" -- python /opt/t.py\n')
    assert "HPC219" in found and "'/mnt/0:ro' as the destination" in found["HPC219"][0]
    found = codes('ch-fromhost --nvidia "$SCRATCH/img.sqfs"\nsrun ch-run "$SCRATCH/img.sqfs" -- python /opt/t.py\n')
    assert "HPC219" in found and "ch-fromhost" in found["HPC219"][0] and "convert it first" in found["HPC219"][0]
    assert "HPC219" not in codes('ch-fromhost --nvidia "$SCRATCH/img"\nsrun ch-run "$SCRATCH/img" -- python /opt/t.py\n')


def test_convert_says_what_a_ch_run_bind_mode_becomes():
    conv = to_apptainer(read("ch-run -b /d:/mnt/0:ro ./img -- ls"))
    assert noted(conv, "cannot run as written", "/mnt/0:ro as the destination", "'ro' mode")


# -- 4. --set-env/--unset-env apply in the order written ----------------------------------------------------------

@pytest.mark.parametrize("line", [
    'ch-run --set-env --unset-env=PYTHONPATH /img -- python',
    "ch-run --set-env=X=1 --unset-env='*' /img -- env",
    "ch-run --unset-env=A --set-env=A=1 --unset-env=A --set-env --set-env=B=2 --set-env /img -- env",
])
def test_environment_order_survives_the_round_trip(line):
    run = read(line)
    assert read(command_line(run)) == run
    def env_words(words):
        return [str(w) for w in words if str(w).startswith(("--set-env", "--unset-env"))]
    assert env_words(argv(run)) == env_words(w.value for w in lex_command(line).words)


def test_convert_applies_unset_after_set():
    conv = to_apptainer(read("ch-run --set-env=X=1 --unset-env='*' --set-env=Y=2 /img -- env"))
    assert conv.result.cleanenv and [e.name for e in conv.result.env] == ["Y"]
    assert noted(conv, "removes again")
    conv = to_apptainer(read("ch-run --set-env --unset-env=PYTHONPATH /img -- env"))
    assert noted(conv, "image's own variables", "cannot remove")


# -- 5. apptainer run / test / instance:// -------------------------------------------------------------------------

def test_run_and_test_use_the_scripts_the_image_keeps():
    run = to_charliecloud(ApptainerRun(binary="singularity", action="run", image="img.sif", command=("--epochs", "3")))
    assert run.result.command == ("/.singularity.d/runscript", "--epochs", "3") and run.result.problems() == []
    test = to_charliecloud(ApptainerRun(action="test", image="img.sif"))
    assert test.result.command == ("/.singularity.d/test",) and test.result.problems() == []


def test_what_has_no_charliecloud_equivalent_is_an_error():
    with pytest.raises(HpcWidgetsError, match="no instances"):
        to_charliecloud(ApptainerRun(image="instance://inst1", command=("ls",)))
    with pytest.raises(HpcWidgetsError, match="ENTRYPOINT/CMD"):
        to_charliecloud(ApptainerRun(action="run", image="docker://alpine:3"))
    with pytest.raises(HpcWidgetsError, match="%test"):
        to_charliecloud(ApptainerRun(action="test", image="docker://alpine:3"))


# -- 6. --cd=$PWD only for paths relative to the current directory --------------------------------------------------

@pytest.mark.parametrize("command", [
    ("sh", "-c", "echo ok > /tmp/x"),
    ("bash", "-c", "cd /opt && ./run.sh"),
    ("python", "-m", "torch.distributed.run", "--nproc-per-node=4", "/opt/train.py"),
    ("python", "/opt/t.py", "--host=gpu01.cluster", "--model=bert-base.v2"),
])
def test_no_cd_when_nothing_is_relative(command):
    assert to_charliecloud(ApptainerRun(image="./img", command=command)).result.cd == ""


def test_cd_for_a_relative_path_in_shell_code():
    assert to_charliecloud(ApptainerRun(image="./img", command=("bash", "-c", "./run.sh --fast"))).result.cd == "$PWD"


# -- 7. env files ------------------------------------------------------------------------------------------------

def test_env_file_note_warns_about_comment_lines():
    conv = to_charliecloud(ApptainerRun(env_file="vars.env", image="./img", command=("env",)))
    assert noted(conv, "stops at a '# …' line")


def test_an_unknown_option_before_the_image_takes_its_value_when_more_words_than_the_image_stand_there():
    run = read('ch-run -d "$CONF" "$IMG" -- /spark/sbin/start-master.sh')
    assert run.image == "$IMG" and [str(w) for w in run.extra] == ["-d", "$CONF"]
    assert read("ch-run -v img -- ls").image == "img"  # one plain word: the image
    assert noted(to_apptainer(read("ch-run -d /x img -- ls")), "-d /x has no Apptainer equivalent")
