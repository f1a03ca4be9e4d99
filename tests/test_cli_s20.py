"""Session 20, C2: command-line messages name the fix the command line has.

- ``convert --from`` a whole job (saved JSON or a job script) says how to give that job the translated container,
  and the command it prints runs.
- ``choose --nv or --rocm, not both`` (and the other pairs a model refuses together) says which ``--set`` turns one
  off; the model's own message, shared with the forms, stays without it.
- ``-o`` refusing an existing file names ``--force`` only (not the forms' Replace?).
- ``workflow --help`` lists the fields ``--set`` takes, from the field metadata; ``--set help`` says what each is.
- The help says what happens to a mistake: the model's refused (exit 2, nothing written), lint's reported with the
  text still written (exit 1 for an error).
- An edit of the job's nodes keeps the count the title states true.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from hpcwidgets.cli import build_parser, set_fields
from hpcwidgets.spec.workflow import title_counts
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.slurm import SlurmJob
from hpcwidgets.spec.workflow import Workflow
from test_cli_s18 import run  # the CLI run that also asserts no traceback


@pytest.fixture
def job_json(capsys, tmp_path: Path) -> Path:
    code, out, err = run(capsys, "examples", "multi-node-torchrun", "--format", "json")
    assert code == 0, err
    path = tmp_path / "job.json"
    path.write_text(out)
    return path


@pytest.fixture
def job_script(capsys, tmp_path: Path) -> Path:
    path = tmp_path / "job.sbatch"
    code, _, err = run(capsys, "examples", "multi-node-torchrun", "-o", str(path))
    assert code == 0, err
    return path


def suggested(err: str) -> list[str]:
    """The hpcwidgets command an error message prints on its own (continued) lines, as argv."""
    lines = err.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("hpcwidgets workflow"))
    text = []
    for line in lines[start:]:
        text.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    words = shlex.split(" ".join(text))
    assert words[0] == "hpcwidgets"
    return words[1:]


def step_of(script: str) -> str:
    """The step lines of a rendered workflow script (from its srun to the end)."""
    return script[script.index("\nsrun "):]


# ---------------------------------------------------------------------------------------------------------------
# 1. convert --from a whole job

@pytest.mark.parametrize("which", ["job_json", "job_script"])
def test_convert_from_a_whole_job_prints_a_workflow_command_that_runs(capsys, request, which):
    path = request.getfixturevalue(which)
    code, out, err = run(capsys, "convert", "--from", str(path))
    assert code == 2 and out == ""
    assert "only apptainer exec/run/shell and ch-run commands can be translated" in err
    argv = suggested(err)
    assert argv[:3] == ["workflow", "--from", str(path)] and "--container" in argv
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    step = step_of(out)
    assert "ch-run" in step and "apptainer exec" not in step
    # the steps the translation needs first are in the job: the SIF unpacked, the driver libraries injected
    assert "apptainer build --sandbox" in out and "ch-fromhost --nvidia" in out
    assert "torchrun" in step  # the job's program stays


def test_convert_from_a_charliecloud_job_prints_the_apptainer_container(capsys, job_json, tmp_path):
    code, out, err = run(capsys, "workflow", "--from", str(job_json), "--container", "ch-run /var/tmp/img",
                         "--format", "json")
    assert code == 0, err
    path = tmp_path / "ch.json"
    path.write_text(out)
    code, out, err = run(capsys, "convert", "--from", str(path))
    assert code == 2
    code, out, err2 = run(capsys, *suggested(err))
    assert code == 0, err2
    container = next(line for line in step_of(out).split("\n") if "apptainer exec" in line)
    assert " --nv" in container and "ch-run" not in step_of(out)  # the job's GPUs, visible inside


def test_the_notes_command_it_names_runs(capsys, job_json):
    _, _, err = run(capsys, "convert", "--from", str(job_json))
    said = re.search(r"hpcwidgets convert ('[^']*')$", err.strip())
    assert said, err
    code, out, err = run(capsys, "convert", *shlex.split(said.group(1)))
    assert code == 0, err
    assert "# note:" in out and "ch-run" in out


def test_convert_from_a_job_without_a_container_says_how_to_give_it_one(capsys, job_json, tmp_path):
    data = json.loads(job_json.read_text())
    del data["container"]
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, "convert", "--from", str(path))
    assert code == 2 and "runs no container" in err and f"workflow --from {path} --container" in err


def test_convert_from_a_single_command_still_translates(capsys, tmp_path):
    code, out, _ = run(capsys, "apptainer", "exec", "--format", "json", "img.sif", "python", "t.py")
    path = tmp_path / "one.json"
    path.write_text(out)
    code, out, err = run(capsys, "convert", "--from", str(path))
    assert code == 0, err
    assert "ch-run" in out


# ---------------------------------------------------------------------------------------------------------------
# 2. two settings the model refuses together: the --set that turns one off

def test_nv_and_rocm_in_a_workflow_names_the_set_that_turns_one_off(capsys, job_json):
    code, out, err = run(capsys, "workflow", "--from", str(job_json), "--set", "container.rocm=true")
    assert code == 2 and out == ""
    assert "choose --nv (NVIDIA) or --rocm (AMD), not both" in err
    assert "--set container.nv=false" in err and "--set container.rocm=false" in err
    # what it names works
    code, out, err = run(capsys, "workflow", "--from", str(job_json), "--set", "container.rocm=true",
                         "--set", "container.nv=false")
    assert code in (0, 1), err
    assert "apptainer exec --rocm" in out and " --nv" not in step_of(out)


def test_nv_and_rocm_on_an_apptainer_command_names_its_own_set(capsys, tmp_path):
    code, out, _ = run(capsys, "apptainer", "exec", "--format", "json", "--nv", "img.sif", "true")
    path = tmp_path / "nv.json"
    path.write_text(out)
    code, out, err = run(capsys, "apptainer", "exec", "--from", str(path), "--rocm")
    assert code == 2 and "--set nv=false" in err and "container." not in err
    code, out, err = run(capsys, "apptainer", "exec", "--from", str(path), "--rocm", "--set", "nv=false")
    assert (code, out.strip()) == (0, "apptainer exec --rocm img.sif true"), err


@pytest.mark.parametrize("flags, named", [
    (("--contain", "--containall"), ("--set contain=false", "--set containall=false")),
    (("--no-home", "--home", "/x"), ("--set no_home=false", "--set home=")),
])
def test_the_other_pairs_name_their_sets_too(capsys, flags, named):
    code, _, err = run(capsys, "apptainer", "exec", *flags, "img.sif", "true")
    assert code == 2
    for text in named:
        assert text in err


def test_the_models_own_message_stays_without_the_command_line(capsys):
    problems = ApptainerRun(image="img.sif", command=("true",), nv=True, rocm=True).problems()
    said = [p.message for p in problems if p.field == "rocm"]
    assert said and all("--set" not in m for m in said)


# ---------------------------------------------------------------------------------------------------------------
# 3. -o refusing an existing file names --force only

def test_the_o_refusal_names_force_and_not_the_forms_button(capsys, job_json, tmp_path):
    target = tmp_path / "out.sbatch"
    target.write_text("#!/bin/bash\n# mine\n")
    code, out, err = run(capsys, "workflow", "--from", str(job_json), "-o", str(target))
    assert code == 2 and out == ""
    assert "already exists" in err and "--force" in err
    assert "Replace" not in err and "form" not in err
    assert target.read_text() == "#!/bin/bash\n# mine\n"
    code, _, err = run(capsys, "workflow", "--from", str(job_json), "-o", str(target), "--force")
    assert code == 0, err
    assert "srun" in target.read_text()


def test_a_dangling_link_refusal_names_force_only(capsys, job_json, tmp_path):
    link = tmp_path / "link.sbatch"
    link.symlink_to(tmp_path / "missing" / "x.sbatch")
    code, _, err = run(capsys, "workflow", "--from", str(job_json), "-o", str(link))
    assert code == 2 and "--force" in err and "Replace" not in err


# ---------------------------------------------------------------------------------------------------------------
# 4. the fields --set takes, in --help and with --set help

def help_of(*command: str) -> str:
    parser = build_parser()
    sub = parser
    for word in command:
        sub = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction").choices[word]
    return sub.format_help()


def test_workflow_help_lists_every_layer_field_from_the_metadata():
    text = help_of("workflow")
    listing = text[text.index("fields --set takes"):]
    words = set(listing.split())
    for prefix in ("job.FIELD", "srun.FIELD", "container.FIELD", "launcher.FIELD"):
        assert prefix in listing
    for f in SlurmJob.field_specs():
        if f.name not in ("comments", "layout", "commands"):
            assert f.name in words, f.name
    assert "commands" not in words  # the workflow refuses job.commands: not offered
    for name in ("nv", "rocm", "binds", "image", "nnodes", "nproc_per_node", "title", "program"):
        assert name in words


def test_every_field_listed_is_one_set_takes(capsys, job_json):
    """No name in the list is refused as unknown: each is set on the saved job (a ch-run one for ch-run's)."""
    from hpcwidgets.cli import load_model_file
    from hpcwidgets.cli._options import apply_sets
    from hpcwidgets.errors import ValidationError
    from hpcwidgets.spec.charliecloud import ChRun
    model = load_model_file(str(job_json), Workflow)
    for prefix, heading, fields in set_fields(Workflow):
        start = model.replace(container=ChRun(image="/img")) if "ch-run" in heading else model
        for f in fields:
            try:
                apply_sets(start, [f"{prefix}{f.name}="])
            except ValidationError as exc:
                assert "has no field" not in str(exc) and "valid fields" not in str(exc), (prefix, f.name, exc)


def test_set_help_prints_each_field_with_its_help(capsys):
    code, out, err = run(capsys, "workflow", "--set", "help")
    assert code == 0, err
    nodes = SlurmJob.field_spec("nodes").info.help
    line = next(line for line in out.split("\n") if line.strip().startswith("job.nodes "))
    assert nodes.split()[0] in line
    assert "container.nv" in out and "launcher.nproc_per_node" in out and "job.commands" not in out


def test_set_help_on_a_one_layer_command(capsys):
    code, out, err = run(capsys, "sbatch", "--set", "help")
    assert code == 0, err
    assert re.search(r"^  nodes ", out, re.M) and "job.nodes" not in out


def test_a_one_layer_commands_help_has_no_layer_list():
    assert "fields --set takes" not in help_of("sbatch")
    assert "--set help" in help_of("sbatch")


# ---------------------------------------------------------------------------------------------------------------
# 5. the help says what happens to a mistake, and it happens

def test_the_help_says_lint_findings_are_written_and_it_is_so(capsys, job_json, tmp_path):
    text = " ".join(help_of("workflow").split())
    assert "refused and nothing is written (exit status 2)" in text
    assert "the text is still written" in text and "exit status 1, as hpcwidgets lint does" in text
    # a model problem the command line makes: refused, nothing written, 2
    out_file = tmp_path / "a.sbatch"
    code, _, err = run(capsys, "workflow", "--from", str(job_json), "--set", "container.rocm=true",
                       "-o", str(out_file))
    assert code == 2 and not out_file.exists()
    # a lint error the command line makes (torchrun starts more processes than the job has GPUs): written, 1
    code, _, err = run(capsys, "workflow", "--from", str(job_json), "--set", "launcher.nproc_per_node=8",
                       "-o", str(out_file))
    assert code == 1 and out_file.exists() and "lint:" in err and " error " in err


# ---------------------------------------------------------------------------------------------------------------
# 6. the title's counts follow the edit

def title_line(script: str) -> str:
    return next(line for line in script.split("\n") if line.startswith("# ") and "training" in line)


@pytest.mark.parametrize("which", ["job_json", "job_script"])
def test_the_title_states_the_nodes_the_job_now_has(capsys, request, which):
    path = request.getfixturevalue(which)
    code, out, err = run(capsys, "workflow", "--from", str(path), "--set", "job.nodes=4")
    assert code in (0, 1), err
    assert "--nodes=4" in out and "--nnodes=4" in out
    assert "on 4 nodes" in title_line(out) and "2 nodes" not in title_line(out)
    code, out, err = run(capsys, "workflow", "--from", str(path), "--set", "job.nodes=1")
    assert "on 1 node:" in title_line(out)


def test_a_title_given_with_the_edit_is_written_as_given(capsys, job_json):
    code, out, err = run(capsys, "workflow", "--from", str(job_json), "--set", "job.nodes=4",
                         "--title", "Distributed training on 2 nodes, as I wrote it")
    assert "# Distributed training on 2 nodes, as I wrote it" in out


def test_title_counts_changes_only_the_jobs_own_number():
    before, after = SlurmJob(nodes=2, gpus_per_node=4), SlurmJob(nodes=3, gpus_per_node=4)
    assert title_counts("Training on 2 nodes", before, after) == "Training on 3 nodes"
    assert title_counts("Training on 5 nodes", before, after) == "Training on 5 nodes"  # not the job's
    assert title_counts("Training on 2 nodes", before, before) == "Training on 2 nodes"
    one, two = SlurmJob(nodes=1, gpus_per_node=1), SlurmJob(nodes=1, gpus_per_node=2)
    assert title_counts("Train on one GPU in a container", one, two) == "Train on 2 GPUs in a container"
    assert title_counts("Train on one GPU", two, one) == "Train on one GPU"
