"""Session 32: what the audit of Jupyter job scripts and site profiles found on the command line. On a site that
requires an account, ``examples`` wrote a script the site (and lint) rejects; it now takes ``--account`` and, without
one, refuses the script with the fix (the model, to edit, is still given)."""

from __future__ import annotations

import json

import pytest

from hpcwidgets.cli import main

_SITE = """name = "acct"
description = "a site that charges every job to a project"
login_host = "login.example.org"
runtimes = ["apptainer"]
gpu_vendor = "nvidia"
default_partition = "cpu"
default_gpu_partition = "gpu"
account_required = true

[[partitions]]
name = "cpu"
max_time = "2-00:00:00"
cpus_per_node = 64
mem_per_node = "240G"
gpus_per_node = 0

[[partitions]]
name = "gpu"
max_time = "2-00:00:00"
cpus_per_node = 64
mem_per_node = "240G"
gpus_per_node = 4
gpu_types = ["a100"]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    (tmp_path / "acct.toml").write_text(_SITE)
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["single-gpu", "multi-node-torchrun", "jupyter"])
def test_examples_refuse_a_script_the_site_rejects_and_name_the_option(site, capsys, name):
    code, out, err = run(capsys, "examples", name, "--profile", "acct")
    assert code == 2 and out == ""
    assert "acct rejects a job that names no account" in err and "--account=PROJECT" in err


@pytest.mark.parametrize("name", ["single-gpu", "jupyter"])
def test_examples_take_the_account_and_the_script_then_passes_the_sites_lint(site, capsys, name):
    code, out, err = run(capsys, "examples", name, "--profile", "acct", "--account", "proj-42")
    assert code == 0 and "#SBATCH --account=proj-42\n" in out
    from hpcwidgets.lint import lint
    from hpcwidgets.profiles import load_profile
    assert [f.code for f in lint(out, load_profile("acct")) if f.code == "HPC408"] == []


def test_examples_give_the_model_to_edit_without_an_account(site, capsys):
    code, out, _ = run(capsys, "examples", "single-gpu", "--profile", "acct", "--format", "json")
    assert code == 0 and json.loads(out)["job"].get("account", "") == ""


def test_an_empty_account_is_refused(capsys):
    code, out, err = run(capsys, "examples", "single-gpu", "--account", " ")
    assert code == 2 and out == "" and "give the account's name" in err


def test_the_account_reaches_a_site_that_needs_none(capsys):
    code, out, _ = run(capsys, "examples", "single-gpu", "--profile", "generic", "--account", "lab")
    assert code == 0 and "#SBATCH --account=lab\n" in out


# --- audit F: reading scripts back, and convert's advice for a whole job ---------------------------------------------

def _script(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_step_is_refused_where_the_script_runs_the_work_in_a_line_kept_as_written(tmp_path, capsys):
    job = _script(tmp_path, "job.sh", "#!/bin/bash\n#SBATCH --time=10\napptainer exec --bind $PWD img.sif python x.py\n")
    code, out, err = run(capsys, "workflow", "--from", job, "--container", "apptainer exec --bind /data img.sif",
                         "--program", "python x.py")
    assert code == 2 and out == ""
    assert "line 3 runs the work already" in err and 'quote it ("$PWD")' in err and "a second time" in err
    # read alone, or edited elsewhere, the script comes back with a note saying why the line stayed as it was
    code, out, err = run(capsys, "workflow", "--from", job, "--set", "job.time=20")
    assert code == 0 and out.endswith("apptainer exec --bind $PWD img.sif python x.py\n")
    assert "is kept as written, as a set-up line, not read as the step: $PWD is an unquoted expansion" in err


def test_a_step_is_still_given_to_a_script_with_no_launch(tmp_path, capsys):
    job = _script(tmp_path, "job.sh", "#!/bin/bash\n#SBATCH --time=10\nmodule load apptainer\n")
    code, out, _ = run(capsys, "workflow", "--from", job, "--container", "apptainer exec img.sif",
                       "--program", "python x.py")
    assert code == 0 and out.count("apptainer exec") == 1


def test_convert_names_the_container_line_it_could_not_read(tmp_path, capsys):
    job = _script(tmp_path, "job.sh", "#!/bin/bash\n#SBATCH --time=10\napptainer exec --bind $PWD img.sif python x.py\n")
    code, _, err = run(capsys, "convert", "--from", job)
    assert code == 2 and "line 3 runs the job's container, but it is kept as a set-up line" in err
    assert "the job runs no container" not in err


def test_convert_of_a_job_adds_cd_for_a_program_named_from_the_current_directory(tmp_path, capsys):
    job = _script(tmp_path, "job.sh", "#!/bin/bash\n#SBATCH --time=10\napptainer exec img.sif python3 train.py\n")
    code, _, err = run(capsys, "convert", "--from", job)
    assert code == 2 and "--container 'ch-run \"--cd=$PWD\" --home ./img'" in err


def test_convert_of_an_apptainer_run_job_keeps_the_runscript_before_the_program(tmp_path, capsys):
    job = _script(tmp_path, "job.sh", "#!/bin/bash\n#SBATCH --time=10\napptainer run img.sif python x.py\n")
    code, _, err = run(capsys, "convert", "--from", job)
    assert code == 2 and "--program '/.singularity.d/runscript python x.py'" in err
    assert "-- /.singularity.d/runscript'" not in err  # the container itself no longer runs a command
    # the advice is taken as given: the step runs the runscript, then the program
    code, out, _ = run(capsys, "workflow", "--from", job, "--container", 'ch-run "--cd=$PWD" --home ./img',
                       "--program", "/.singularity.d/runscript python x.py",
                       "--prepare", "apptainer build --sandbox ./img img.sif")
    assert out.rstrip().endswith('ch-run "--cd=$PWD" --home ./img -- /.singularity.d/runscript python x.py')


def test_a_job_edit_of_a_script_that_submits_its_job_from_a_here_document_is_refused(tmp_path, capsys):
    wrap = _script(tmp_path, "wrap.sh", "#!/bin/bash\nsbatch <<EOT\n#!/bin/bash\n#SBATCH --time=180\n"
                                        "srun apptainer exec img.sif python x.py\nEOT\n")
    code, out, err = run(capsys, "workflow", "--from", wrap, "--set", "job.time=10")
    assert code == 2 and out == ""
    assert "submits its job from a here-document (sbatch on line 2)" in err and "never reads" in err


def test_sbatch_from_a_workflow_model_names_the_command_that_reads_it(tmp_path, capsys):
    job = _script(tmp_path, "job.sh", "#!/bin/bash\n#SBATCH --time=10\nsrun hostname\n")
    code, out, _ = run(capsys, "parse", job)
    model = _script(tmp_path, "m.json", out)
    code, out, err = run(capsys, "sbatch", "--from", model)
    assert code == 2 and f"read it with hpcwidgets workflow --from {model}" in err


def test_a_ch_run_set_env_message_shows_the_value_as_typed(capsys):
    code, _, err = run(capsys, "convert", "ch-run", "--set-env=A=${B}", "./img", "--", "true")
    assert code == 2 and "in 'A=${B}'" in err and "\\\\$" not in err


@pytest.mark.parametrize(("script", "container", "says"), [
    ("srun apptainer exec --nv -B /scratch/data:/data --env A=1 img.sif python train.py --data /data\n",
     "apptainer exec --nv img2.sif", "binds /scratch/data:/data and variables A=1"),
    ("ch-run -b /scratch/d:/mnt/0 --set-env=A=1 ./img -- python /opt/t.py\n", "ch-run ./img2",
     "binds /scratch/d:/mnt/0 and variables A=1;"),
])
def test_a_whole_new_container_says_what_it_drops_of_the_scripts(tmp_path, capsys, script, container, says):
    job = _script(tmp_path, "job.sh", f"#!/bin/bash\n#SBATCH --time=10\n{script}")
    code, _, err = run(capsys, "workflow", "--from", job, "--container", container)
    assert code == 0 and f"--container replaces the script's container with its {says}" in err
    code, _, err = run(capsys, "workflow", "--from", job, "--set", "container.image=other")
    assert "replaces the script's container" not in err


@pytest.mark.parametrize("name", ["a/../b", "my site", "x.toml", "", ".hidden"])
def test_profile_show_refuses_a_name_no_profile_file_can_carry(capsys, name):
    code, out, err = run(capsys, "profile", "show", "generic", "--name", name)
    assert code == 2 and out == "" and "a profile is found by its file's name" in err


def test_profile_show_takes_a_plain_name(capsys):
    code, out, _ = run(capsys, "profile", "show", "generic", "--name", "lumi-g.2")
    assert code == 0 and 'name = "lumi-g.2"' in out


def test_a_launch_with_random_in_its_options_is_read_as_the_step(tmp_path, capsys):
    """$RANDOM and bash's other numbers never split: the launch is read into the step's fields, and comes back as
    written."""
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --time=10\n"
            "srun torchrun --nnodes 2 --nproc_per_node 4 --rdzv_id $RANDOM --rdzv_backend c10d "
            "--rdzv_endpoint head:29500 train.py\n")
    job = _script(tmp_path, "job.sh", text)
    code, out, err = run(capsys, "parse", job)
    assert code == 0 and json.loads(out)["launcher"]["rdzv_id"] == "$RANDOM"
    code, out, err = run(capsys, "workflow", "--from", job)
    assert out == text and "not read as the step" not in err


def test_lint_fix_says_why_the_fixes_wait_while_directives_are_ignored(tmp_path, capsys):
    job = _script(tmp_path, "job.sh", "#!/bin/bash\nset -e\n#SBATCH --nodes=4\nsrun torchrun --nnodes=$SLURM_NNODES "
                                      "--nproc_per_node=1 --rdzv_backend=c10d --rdzv_endpoint=head:29500 train.py\n")
    before = (tmp_path / "job.sh").read_text()
    code, _, err = run(capsys, "lint", "--fix", job)
    assert code == 1 and (tmp_path / "job.sh").read_text() == before
    assert "nothing fixed: #SBATCH lines after the first command are ignored by sbatch (HPC501, line 3: --nodes)" in err


def test_setting_a_layer_the_program_holds_says_so(tmp_path, capsys):
    job = _script(tmp_path, "job.sh", "#!/bin/bash\n#SBATCH --gpus-per-node=4\n"
                                      "time srun apptainer exec --nv old.sif torchrun --standalone train.py\n")
    code, out, err = run(capsys, "workflow", "--from", job, "--set", "container.image=new.sif")
    assert code == 2 and out == ""
    assert "the step is held whole as the program (time srun apptainer exec" in err and "--program" in err
