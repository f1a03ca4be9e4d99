"""``--from FILE`` with a file that already holds a mistake, and ``--set`` paths the model does not have.

A mistake the file holds is the researcher's existing job: workflow and sbatch both write it back as it was, report
it and exit 1 (as lint does); a mistake the options or --set make is refused with exit status 2 and nothing written.
An unknown --set path names the path meant: a layer called by its tool, a field written as its option, a typo."""

from __future__ import annotations

import pytest

from hpcwidgets.cli import MODEL_COMMANDS, main

#: a two-node torchrun with no rendezvous endpoint (the models refuse it) and --mem with --mem-per-cpu
BROKEN = """#!/bin/bash
#SBATCH --job-name=t
#SBATCH --nodes=2
#SBATCH --mem=16G
#SBATCH --mem-per-cpu=2G
#SBATCH --time=01:00:00
srun torchrun --nnodes=2 --nproc-per-node=4 train.py
"""


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["workflow", "sbatch"])
def test_a_script_with_mistakes_is_written_back_and_its_mistakes_reported(tmp_path, capsys, command):
    script, out = tmp_path / "job.sh", tmp_path / "out.sh"
    script.write_text(BROKEN)
    code, _, err = run(capsys, command, "--from", str(script), "-o", str(out))
    assert code == 1 and "Traceback" not in err
    assert "#SBATCH --mem-per-cpu=2G" in out.read_text() and "--nnodes=2" in out.read_text()
    assert f"hpcwidgets: error: {script}: " in err and "exclude each other" in err and "written back as it was" in err
    assert "HPC302" in err  # and lint's findings on the script written


#: a site whose default GPU partition's QOS allows 20 hours (as IDRIS Jean Zay's qos_gpu-t3)
QOS_SITE = """name = "qsite"
gpu_vendor = "nvidia"
[[partitions]]
name = "gpu"
is_default = true
max_time = "100:00:00"
gpus_per_node = 4
qos = "t3"
[[qos]]
name = "t3"
max_time = "20:00:00"
[[qos]]
name = "t4"
max_time = "100:00:00"
"""


@pytest.mark.parametrize("command", ["workflow", "sbatch"])
def test_a_limit_the_file_breaks_on_the_profile_is_the_files_mistake(tmp_path, capsys, monkeypatch, command):
    """The profile fills in the partition's QOS; the time over that QOS's limit was the file's already."""
    from hpcwidgets.profiles import clear_cache
    (tmp_path / "qsite.toml").write_text(QOS_SITE)
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    clear_cache()
    script, out = tmp_path / "job.sh", tmp_path / "out.sh"
    script.write_text("#!/bin/bash\n#SBATCH --gres=gpu:4\n#SBATCH --time=40:00:00\nsrun python t.py\n")
    code, _, err = run(capsys, command, "--from", str(script), "--profile", "qsite", "-o", str(out))
    assert code == 1 and "#SBATCH --time=40:00:00" in out.read_text(), err
    assert "limit of QOS t3" in err and "written back as it was" in err
    code, _, err = run(capsys, command, "--from", str(script), "--profile", "qsite", "--set",
                       ("job." if command == "workflow" else "") + "qos=t4", "-o", str(out), "--force")
    assert code == 0, err


@pytest.mark.parametrize("command, setting", [("workflow", "job.mem_per_cpu="), ("sbatch", "mem_per_cpu=")])
def test_a_script_made_right_with_set_is_written_clean(tmp_path, capsys, command, setting):
    script = tmp_path / "job.sh"
    script.write_text(BROKEN.replace("srun torchrun --nnodes=2 --nproc-per-node=4 train.py", "srun python t.py"))
    code, out, err = run(capsys, command, "--from", str(script), "--set", setting)
    assert code == 0, err
    assert "--mem-per-cpu" not in out and "error" not in err


@pytest.mark.parametrize("command, setting", [("workflow", "job.mem_per_cpu=2G"), ("sbatch", "mem_per_cpu=2G")])
def test_a_mistake_the_set_makes_is_refused_and_nothing_is_written(tmp_path, capsys, command, setting):
    script, out = tmp_path / "job.sh", tmp_path / "out.sh"
    script.write_text("#!/bin/bash\n#SBATCH --mem=16G\n#SBATCH --time=10\nsrun python t.py\n")
    code, _, err = run(capsys, command, "--from", str(script), "--set", setting, "-o", str(out))
    assert code == 2 and not out.exists()
    assert "exclude each other" in err and "written back" not in err


def test_the_help_says_what_happens_to_a_file_with_mistakes(capsys):
    for command in ("workflow", "sbatch"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "already holds is reported and written back as it was (exit status 1" in text
        assert "--set make is refused and nothing is written (exit status 2)" in text


@pytest.mark.parametrize("command, path, meant", [
    (["workflow"], "torchrun.nproc_per_node=4", "--set launcher.nproc_per_node=4"),   # the tool's name
    (["workflow"], "apptainer.nv=true", "--set container.nv=true"),
    (["workflow"], "singularity.nv=true", "--set container.nv=true"),
    (["workflow"], "sbatch.time=10", "--set job.time=10"),
    (["workflow"], "launcher.nproc-per-node=4", "--set launcher.nproc_per_node=4"),  # written as the option
    (["workflow"], "job.nodez=2", "--set job.nodes=2"),                               # a typo
    (["workflow"], "gpus_per_node=4", "--set job.gpus_per_node=4"),                   # the layer left out
    (["workflow"], "time=02:00:00", "--set job.time=02:00:00"),      # a layer's exact field before 'title'
    (["jupyter-job"], "slurm.time=02:00:00", "--set job.time=02:00:00"),
    (["sbatch"], "job.nodes=2", "--set nodes=2"),                                     # the layer of a layered model
    (["torchrun"], "torchrun.nnodes=2", "--set nnodes=2"),
    (["apptainer", "exec"], "container.nv=true", "--set nv=true"),
    (["srun"], "ntask=2", "--set ntasks=2"),
])
def test_an_unknown_set_path_names_the_path_meant(capsys, command, path, meant):
    code, out, err = run(capsys, *command, "--set", path)
    assert code == 2 and not out and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith(f"hpcwidgets: error: --set {path.split('=')[0]}: ") and f"did you mean {meant}?" in line


def test_a_path_with_nothing_close_lists_the_valid_fields(capsys):
    code, _, err = run(capsys, "workflow", "--set", "xyzzy.plugh=1")
    assert code == 2 and "did you mean" not in err
    assert "Workflow has no field 'xyzzy' (valid fields of Workflow: title, job, srun, container" in err


@pytest.mark.parametrize("command, path", [(["workflow"], "job.layout"), (["workflow"], "job.comments"),
                                           (["sbatch"], "layout"), (["sbatch"], "comments")])
def test_what_the_reader_keeps_of_a_scripts_text_is_not_set_by_hand(tmp_path, capsys, command, path):
    """SlurmJob.layout and SlurmJob.comments follow the lines of a script read back: --set refuses them, saying what
    to set instead, and no list of valid fields names them."""
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --time=10  # ten minutes\nsrun python t.py\n")
    code, out, err = run(capsys, *command, "--from", str(script), "--set", f"{path}=x")
    assert code == 2 and not out and "Traceback" not in err
    (line,) = err.splitlines()
    assert f"--set {path}: {path.rsplit('.', 1)[-1]} is kept from the script" in line and "set the fields" in line
    valid = line.split("(valid fields of SlurmJob: ", 1)[1]
    assert "time" in valid.split(", ") and "layout" not in valid and "comments" not in valid
    code, _, err = run(capsys, *command, "--set", f"{path.rsplit('.', 1)[0]}.no_such_field=1"
                       if "." in path else "no_such_field=1")
    assert code == 2 and "has no field 'no_such_field'" in err and "layout" not in err and "comments" not in err


def _model_commands():
    return [c.path for c in MODEL_COMMANDS]


@pytest.mark.parametrize("path", _model_commands(), ids=" ".join)
def test_every_command_that_takes_set_refuses_an_unknown_path_in_one_line(capsys, path):
    code, out, err = run(capsys, *path, "--set", "no_such_field=1")
    assert code == 2 and not out and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("hpcwidgets: error: --set no_such_field: ") and "has no field 'no_such_field'" in line
