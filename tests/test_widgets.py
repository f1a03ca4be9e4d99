"""The widget builders in pure Python: no kernel, no browser.

Controls are set the way the front-end sets them (``control.value = …``); the tests assert the
preview text, the findings and the marked fields. The model ↔ control layer
(:mod:`hpcwidgets.widgets.state`) is tested on its own first.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from hpcwidgets.lint import lint
from hpcwidgets.errors import OverwriteError, RunError, ValidationError
from hpcwidgets.spec import ApptainerRun, Bind, EnvVar, SlurmJob, Torchrun
from hpcwidgets.spec.workflow import Workflow
from hpcwidgets.widgets import state
from test_lexer import MULTI_NODE

widgets = pytest.importorskip("ipywidgets")
from hpcwidgets.widgets.builder import (BUILDERS, ApptainerBuilder, CharliecloudBuilder,  # noqa: E402
                                        DefFileBuilder, JupyterJobBuilder, SlurmBuilder, TorchrunBuilder,
                                        WorkflowBuilder)
from hpcwidgets.widgets.jobs import JobPanel  # noqa: E402


def make(cls, *args, **kw):
    kw.setdefault("submit", False)
    kw.setdefault("profile", "generic")
    return cls(*args, **kw)


def codes(builder):
    return [f.code for f in builder.findings]


def errors_for(builder, key):
    return [f for f in builder.findings if getattr(f, "field", "") == key and f.severity == "error"]


# ------------------------------------------------------------------------------------------------
# the pure layer

def test_import_hpcwidgets_does_not_import_ipywidgets():
    code = ("import sys, hpcwidgets, hpcwidgets.widgets, hpcwidgets.widgets.state; "
            "print('ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("cls, name, kind", [
    (SlurmJob, "nodes", "int"), (SlurmJob, "partition", "partition"), (SlurmJob, "exclusive", "bool"),
    (SlurmJob, "gpu_flag", "choice"), (SlurmJob, "modules", "lines"), (SlurmJob, "env", "env"),
    (ApptainerRun, "binds", "binds"), (ApptainerRun, "command", "words"), (ApptainerRun, "image", "text"),
    (Torchrun, "args", "words"), (Torchrun, "rdzv_backend", "choice"),
])
def test_control_kind_follows_the_metadata(cls, name, kind):
    assert state.control_kind(cls.field_spec(name), cls) == kind


def test_nested_models_get_no_control():
    assert state.control_kind(Workflow.field_spec("job"), Workflow) is None
    assert state.control_kind(Workflow.field_spec("container"), Workflow) is None
    assert state.control_kind(Workflow.field_spec("prepare"), Workflow) is None


def test_from_control_reports_bad_text_without_raising():
    nodes = SlurmJob.field_spec("nodes")
    assert state.from_control("int", nodes, "") == (None, "")
    assert state.from_control("int", nodes, " 3 ") == (3, "")
    value, error = state.from_control("int", nodes, "1.5")
    assert value is None and "write a whole number or a range MIN-MAX (2-4)" in error
    # a text form sbatch reads is kept as text; the model then judges it (4-2 is backwards)
    assert state.from_control("int", nodes, "2-4") == ("2-4", "")
    assert SlurmJob(nodes=state.from_control("int", nodes, "4-2")[0]).problems()[0].message.endswith("write 2-4")
    cpus = SlurmJob.field_spec("cpus_per_task")
    value, error = state.from_control("int", cpus, "2-4")
    assert value is None and "type digits only" in error
    command = ApptainerRun.field_spec("command")
    value, error = state.from_control("words", command, 'python "train.py')
    assert value is None and "close the quote" in error
    env = ApptainerRun.field_spec("env")
    value, error = state.from_control("env", env, "OMP_NUM_THREADS")
    assert value is None and "NAME=value" in error


def test_list_controls_round_trip_binds_env_and_words():
    binds = ApptainerRun.field_spec("binds")
    shown = state.to_control("binds", (Bind("$SCRATCH/data", "/data", "ro"), Bind("/opt")))
    assert shown == "$SCRATCH/data:/data:ro\n/opt"
    assert state.from_control("binds", binds, shown)[0] == (Bind("$SCRATCH/data", "/data", "ro"), Bind("/opt"))
    env = ApptainerRun.field_spec("env")
    assert state.from_control("env", env, "A=1\n\nB=x=y")[0] == (EnvVar("A", "1"), EnvVar("B", "x=y"))
    words = ("python", "train.py", "--name", "my run", "$SCRATCH/out", "it's")
    text = state.show_words(words)
    assert "$SCRATCH/out" in text.split()  # references stay bare
    assert state.from_control("words", ApptainerRun.field_spec("command"), text)[0] == words


@pytest.mark.parametrize("model", [
    Workflow.multi_node("train.py", ("--epochs", "3"), nodes=2, gpus_per_node=4, image="img.sif",
                        binds=(Bind("$SCRATCH/data", "/data", "ro"),), partition="gpu", time="01:00:00"),
    Workflow.single_node("train.py", image="img.sif", runtime="charliecloud", time="10"),
])
def test_form_values_read_back_to_the_same_workflow(model):
    builder_sections = WorkflowBuilder.sections(None, model)  # sections depend only on the model
    form = state.Form(builder_sections)
    values = form.values(model)
    assert form.read(model, values) == (model, {})
    values["slurm.time"] = "02:00:00"
    values["torchrun.nproc_per_node"] = "2"
    changed, errors = form.read(model, values)
    assert errors == {}
    assert changed.job.time == "02:00:00"
    assert changed.container == model.container
    if model.launcher is not None:
        assert changed.launcher.nproc_per_node == "2"


def test_problem_fields_map_to_layer_keys():
    form = state.Form(WorkflowBuilder.sections(None, Workflow.multi_node("t.py", nodes=2, image="i.sif")))
    assert form.key_for("job.time") == "slurm.time"
    assert form.key_for("launcher.rdzv_endpoint") == "torchrun.rdzv_endpoint"
    assert form.key_for("container.binds.0.mode") == "container.binds"
    assert form.key_for("program") == "workflow.program"
    assert form.key_for("container.command") == ""  # filled in by the workflow, no control


def test_follow_moves_gpus_and_nodes_unless_set_by_hand():
    before = Workflow.single_node("t.py", image="i.sif", gpus_per_node=2, torchrun=True)
    after = before.replace(job=before.job.replace(gpus_per_node=4, nodes=2))
    # one node to two: the rendezvous and srun follow too (session 31), as Workflow.multi_node writes them
    grown = {"torchrun.nnodes": "2", "torchrun.standalone": False, "torchrun.rdzv_backend": "c10d",
             "torchrun.rdzv_endpoint": "$head_node:29500", "torchrun.rdzv_id": "$SLURM_JOB_ID", "srun.enabled": True}
    assert state.follow(before, after, set()) == {"torchrun.nproc_per_node": "4", "container.nv": True, **grown}
    # on AMD GPUs the --nv the job had goes off as --rocm comes on (both on is refused)
    assert state.follow(before, after, {"torchrun.nproc_per_node"}, "amd") == {"container.rocm": True,
                                                                                "container.nv": False, **grown}
    # a rendezvous option set by hand stays, and so does the rest of the rendezvous
    kept = state.follow(before, after, {"torchrun.standalone"})
    assert "torchrun.rdzv_endpoint" not in kept and kept["torchrun.nnodes"] == "2"


# ------------------------------------------------------------------------------------------------
# every builder: set controls, read the preview and the findings

@pytest.mark.parametrize("cls", BUILDERS)
def test_every_builder_starts_valid_with_a_preview(cls):
    b = make(cls)
    assert b.text.strip(), "the default model renders"
    assert not b.stale
    assert not [f for f in b.findings if f.severity == "error"], [f.message for f in b.findings]
    assert b.copy_button.text == b.text
    assert all(hasattr(c, "value") for c in b.controls.values())


@pytest.mark.parametrize("cls, key, value, expected", [
    (ApptainerBuilder, "image", "$SCRATCH/other.sif", '"$SCRATCH/other.sif"'),
    (ApptainerBuilder, "nv", True, "apptainer exec --nv"),
    (ApptainerBuilder, "binds", "$SCRATCH/data:/data:ro", '--bind "$SCRATCH/data:/data:ro"'),
    (ApptainerBuilder, "command", "python train.py --lr 0.1", "python train.py --lr 0.1"),
    (DefFileBuilder, "from_", "ubuntu:24.04", "From: ubuntu:24.04"),
    (DefFileBuilder, "post", "apt-get update\napt-get install -y git", "apt-get install -y git"),
    (CharliecloudBuilder, "image", "/scratch/img.sqfs", "/scratch/img.sqfs"),
    (CharliecloudBuilder, "home", True, "--home"),
    (SlurmBuilder, "time", "02:30:00", "#SBATCH --time=02:30:00"),
    (SlurmBuilder, "nodes", "3", "#SBATCH --nodes=3"),
    (SlurmBuilder, "partition", "gpu", "#SBATCH --partition=gpu"),
    (TorchrunBuilder, "nproc_per_node", "2", "--nproc-per-node=2"),
    (TorchrunBuilder, "script", "fit.py", "fit.py"),
    (JupyterJobBuilder, "local_port", "9876", "9876"),
    (JupyterJobBuilder, "slurm.time", "03:00:00", "#SBATCH --time=03:00:00"),
    (WorkflowBuilder, "slurm.job_name", "bigrun", "#SBATCH --job-name=bigrun"),
    (WorkflowBuilder, "torchrun.args", "--epochs 5", "train.py --epochs 5"),
    (WorkflowBuilder, "container.binds", "$SCRATCH/data:/data:ro", "$SCRATCH/data:/data:ro"),
])
def test_setting_a_control_updates_the_preview(cls, key, value, expected):
    b = make(cls)
    before = b.text
    assert expected not in before
    b.controls[key].value = value
    assert expected in b.text
    assert not b.stale
    assert b.spec != b._initial


def test_lint_findings_follow_the_form():
    b = make(WorkflowBuilder)
    assert "HPC201" not in codes(b)
    b.controls["container.nv"].value = False     # GPUs requested, container without --nv
    assert "HPC201" in codes(b)
    b.controls["container.nv"].value = True
    assert "HPC201" not in codes(b)


def test_profile_limits_are_findings_and_help_text():
    b = make(SlurmBuilder)
    b.controls["partition"].value = "gpu"
    assert "at most 4 per node" in b._help["gpus_per_node"].value
    assert "1-00:00:00" in b._help["time"].value
    b.controls["gpus_per_node"].value = "8"
    assert any(f.severity == "error" and "at most 4" in f.message for f in b.findings)
    assert "gpus_per_node" in b.invalid_fields    # marked even when the linter words the finding


def test_changing_the_profile_updates_partitions_and_limits():
    b = make(WorkflowBuilder)
    generic = tuple(b.controls["slurm.partition"].options)
    assert "gpu" in generic
    other = next(name for _label, name in b.profile_selector.options if name not in ("generic", ""))
    b.profile_selector.value = other
    assert b.profile.name == other
    assert tuple(b.controls["slurm.partition"].options) != generic
    assert set(b.profile.partition_names()) <= set(b.controls["slurm.partition"].options)


# ------------------------------------------------------------------------------------------------
# bad input: marked field, error finding, stale preview, nothing raised

@pytest.mark.parametrize("cls, key, bad", [
    (SlurmBuilder, "time", "1.5h"),
    (WorkflowBuilder, "slurm.time", "1.5h"),
    (WorkflowBuilder, "slurm.gpus_per_node", "-1"),
    (SlurmBuilder, "nodes", "two"),
    (ApptainerBuilder, "command", 'python "train.py'),
    (TorchrunBuilder, "args", "--name 'unfinished"),
    (ApptainerBuilder, "env", "OMP_NUM_THREADS"),
])
def test_bad_input_marks_the_field_and_keeps_the_last_valid_preview(cls, key, bad):
    b = make(cls)
    good = b.text
    b.controls[key].value = bad
    assert b.stale
    assert b.text == good, "the preview keeps the last valid text"
    assert "Stale" in b.note.value
    errors = errors_for(b, key)
    assert errors and errors[0].code == "FORM", [f.format() for f in b.findings if hasattr(f, "format")]
    assert b.form.fields[key].path in b.invalid_fields    # named as the model and the findings name it
    assert "hpcw-invalid" in b._rows[key]._dom_classes
    # fixing the value clears everything
    b.controls[key].value = b.form.values(b._effective_base())[key]
    assert not b.stale and not b.invalid_fields
    assert "hpcw-invalid" not in b._rows[key]._dom_classes
    assert b.note.value == ""


def test_the_invalid_marker_uses_the_theme_error_colour():
    from hpcwidgets.widgets.highlight import CSS
    assert ".hpcw-invalid" in CSS and "var(--jp-error-color1)" in CSS
    import re
    assert not re.search(r"#[0-9a-fA-F]{3,8}\b|rgba?\(|hsl\(", CSS), "colours come from --jp-* variables only"


def test_stale_builder_refuses_to_save_or_submit(tmp_path):
    b = make(SlurmBuilder, submit=lambda text: pytest.fail("must not submit"))
    b.controls["time"].value = "1.5h"
    with pytest.raises(ValidationError, match="Slurm time"):
        b.save(tmp_path / "job.sh")
    with pytest.raises(ValidationError):
        b.submit()
    assert not (tmp_path / "job.sh").exists()


# ------------------------------------------------------------------------------------------------
# load, apply fix, reset

def test_apply_fix_on_the_decks_multi_node_script():
    b = WorkflowBuilder.from_script(MULTI_NODE, submit=False)
    assert b.controls["slurm.ntasks_per_node"].value == "4"
    hpc101 = [f for f in b.findings if f.code == "HPC101"]
    assert hpc101 and hpc101[0].fix is not None
    assert b.apply_fix(hpc101[0])
    assert "HPC101" not in codes(b)
    # the deck's torchrun follows the job's size (--nnodes=$SLURM_NNODES), and so does the fixed task count
    assert 'srun "--ntasks=$SLURM_JOB_NUM_NODES"' in b.text and "--ntasks-per-node=1" in b.text
    assert b.controls["srun.ntasks_per_node"].value == "1"
    assert b.controls["srun.ntasks"].value == "$SLURM_JOB_NUM_NODES"
    assert b.controls["srun.enabled"].value is True


def test_a_loaded_draft_with_mistakes_can_still_be_saved(tmp_path):
    b = WorkflowBuilder.from_script(MULTI_NODE, submit=False)
    assert b.stale and b.draft and "Draft" in b.note.value
    assert b.save(tmp_path / "draft.sh").read_text() == b.text


def test_apply_fix_button_is_there_for_fixable_findings():
    b = WorkflowBuilder.from_script(MULTI_NODE, submit=False)
    buttons = [row.children[1] for row in b.findings_view.children
               if isinstance(row, widgets.HBox) and isinstance(row.children[-1], widgets.Button)]
    assert buttons and all(btn.description == "Apply fix" for btn in buttons)
    n = len([f for f in b.findings if f.fix is not None])
    assert len(buttons) == n
    buttons[0].click()
    assert len([f for f in b.findings if f.fix is not None]) < n


def test_a_problem_the_form_and_lint_both_see_is_shown_once():
    b = WorkflowBuilder.from_script("#!/bin/bash\n#SBATCH --time=10\n#SBATCH --output=$HOME/log/%x-%j.out\n"
                                    "python train.py\n", submit=False)
    about = [f for f in b.findings if "not read by the shell" in f.message]
    assert [(f.code, f.field) for f in about] == [("FORM", "slurm.output")], about
    assert "HPC305" in {f.code for f in lint(b.text)}  # lint still reports it for the saved script


def test_load_from_a_script_and_a_command():
    b = make(SlurmBuilder)
    assert b.load("#!/bin/bash\n#SBATCH --time=00:10:00\n#SBATCH --nodes=2\npython x.py\n")
    assert b.controls["time"].value == "00:10:00"
    assert b.controls["nodes"].value == "2"
    a = make(ApptainerBuilder)
    assert a.load("apptainer pull --dir $SCRATCH/images docker://pytorch/pytorch:2.3.1")
    assert a.controls["action"].value == "pull"
    assert a.text.startswith("apptainer pull --dir")
    t = TorchrunBuilder.from_script("torchrun --standalone --nproc-per-node=8 train.py --lr 1e-3", submit=False)
    assert t.controls["nproc_per_node"].value == "8"
    assert t.controls["args"].value == "--lr 1e-3"


def test_load_of_json_uses_the_model_kind():
    model = Torchrun.single_node(2, "fit.py")
    b = make(TorchrunBuilder)
    assert b.load(model.to_json())
    assert b.spec == model


def test_a_load_that_fails_leaves_the_form_and_says_why():
    b = make(ApptainerBuilder)
    before = (b.text, b.spec)
    assert b.load("apptainer exec 'unterminated") is False
    assert (b.text, b.spec) == before
    assert any(f.code == "LOAD" and f.severity == "error" for f in b.findings)
    assert "Could not load" in b.status.value
    assert b.load("srun hostname") is False  # a command this form does not hold
    b.controls["image"].value = "x.sif"       # the next edit clears the load error
    assert "LOAD" not in codes(b)


def test_load_button_reads_the_textarea():
    b = make(TorchrunBuilder)
    b.load_text.value = "torchrun --standalone --nproc-per-node=3 t.py"
    b.load_button.click()
    assert b.spec.nproc_per_node == "3"


def test_reset_returns_to_the_first_model():
    b = make(WorkflowBuilder)
    first = b.text
    b.controls["slurm.job_name"].value = "other"
    b.controls["slurm.time"].value = "bad"
    b.reset()
    assert b.text == first and not b.stale
    assert b.controls["slurm.job_name"].value == "train"


# ------------------------------------------------------------------------------------------------
# save

def test_save_is_atomic_and_refuses_to_overwrite(tmp_path):
    b = make(SlurmBuilder)
    path = tmp_path / "job.sh"
    saved = b.save(path)
    assert saved == path.absolute()
    assert path.read_text() == b.text
    b.controls["job_name"].value = "second"
    with pytest.raises(OverwriteError):
        b.save(path)
    assert "second" not in path.read_text()
    b.save(path, overwrite=True)
    assert "--job-name=second" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.sh"], "no temporary files left behind"


def test_save_button_asks_before_replacing(tmp_path):
    b = make(WorkflowBuilder)
    path = tmp_path / "run.sh"
    path.write_text("keep me\n")
    b.path_text.value = str(path)
    b.save_button.click()
    assert path.read_text() == "keep me\n"
    assert b.replace_button.layout.display != "none"
    assert "already exists" in b.status.value
    # the form says its own way to allow it, not the command line's
    assert "click Replace?" in b.status.value and "--force" not in b.status.value
    b.replace_button.click()
    assert path.read_text() == b.text
    assert str(path) in b.status.value
    assert b.replace_button.layout.display == "none"


def test_save_button_reports_the_full_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = make(DefFileBuilder)
    b.path_text.value = "env.def"
    b.save_button.click()
    assert (tmp_path / "env.def").read_text() == b.text
    assert str(tmp_path / "env.def") in b.status.value


# ------------------------------------------------------------------------------------------------
# cross-layer flows and structure

def test_gpus_per_node_flows_into_nproc_and_nv_unless_set_by_hand():
    b = make(WorkflowBuilder)
    b.controls["slurm.gpus_per_node"].value = "2"
    assert b.controls["torchrun.nproc_per_node"].value == "2"
    assert "--nproc-per-node=2" in b.text
    b.controls["slurm.gpus_per_node"].value = "0"
    assert b.controls["container.nv"].value is False
    b.controls["slurm.gpus_per_node"].value = "1"
    assert b.controls["container.nv"].value is True
    b.controls["torchrun.nproc_per_node"].value = "3"   # by hand: no longer follows
    b.controls["slurm.gpus_per_node"].value = "4"
    assert b.controls["torchrun.nproc_per_node"].value == "3"
    assert "HPC" in " ".join(codes(b)) or b.findings  # the mismatch is the linter's to report


def test_nodes_flow_into_nnodes():
    b = make(WorkflowBuilder)
    b.controls["slurm.nodes"].value = "2"
    assert b.controls["torchrun.nnodes"].value == "2"


def test_layer_switches_change_the_workflow():
    b = make(WorkflowBuilder)
    b.controls["srun.enabled"].value = True
    assert "srun --ntasks-per-node=1" in b.text
    b.controls["container.runtime"].value = "charliecloud"
    assert "container.home" in b.controls and "container.nv" not in b.controls
    assert errors_for(b, "container.image"), "a SIF image carried over is reported: ch-run cannot read it"
    b.controls["container.image"].value = "$SCRATCH/images/env.sqfs"
    assert "ch-run" in b.text and not b.stale
    b.controls["container.runtime"].value = "none"
    assert "ch-run" not in b.text and "apptainer" not in b.text


def test_apptainer_action_selector_switches_the_model():
    b = make(ApptainerBuilder)
    b.controls["action"].value = "pull"
    assert "source" in b.controls and "nv" not in b.controls
    b.controls["source"].value = "docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"
    assert b.text.startswith("apptainer pull")
    b.controls["action"].value = "run"
    assert b.text.startswith("apptainer run")


def test_charliecloud_actions_keep_their_own_program():
    b = make(CharliecloudBuilder)
    b.controls["action"].value = "build"
    b.controls["tag"].value = "myenv"
    assert b.text.startswith("ch-image build")
    assert b.spec.program == "ch-image"
    b.controls["action"].value = "run"
    assert b.spec.program == "ch-run"


# ------------------------------------------------------------------------------------------------
# submit and the job panel (a stand-in job: no Slurm needed)

class FakeJob:
    def __init__(self, states):
        self.id = "42"
        self.states = list(states)
        self.cancelled = threading.Event()
        self.calls = 0

    def state(self):
        self.calls += 1
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def info(self):
        from types import SimpleNamespace
        return SimpleNamespace(elapsed="00:00:07")

    def output(self, tail=None):
        if self.calls < 2:
            raise RunError("no output file yet")
        return "epoch 1\nepoch 2\n"

    def cancel(self):
        self.cancelled.set()


def test_submit_starts_a_job_panel_that_stops_at_a_final_state():
    job = FakeJob(["PENDING", "RUNNING", "COMPLETED"])
    submitted = []
    b = make(SlurmBuilder, submit=lambda text: submitted.append(text) or job, poll_seconds=0.01)
    assert b.submit_button in b.children
    b.submit_button.click()
    assert submitted == [b.text]
    b.job_panel._thread.join(timeout=10)
    assert not b.job_panel.polling
    assert b.job_panel.state == "COMPLETED"
    assert job.calls == 3, "polling stops at the final state"
    assert "epoch 2" in b.job_panel.output_view.value
    assert "00:00:07" in b.job_panel.summary.value
    assert b.job_panel.cancel_button.disabled


def test_cancel_asks_slurm_and_polling_can_be_stopped():
    job = FakeJob(["RUNNING"])
    panel = JobPanel(poll_seconds=0.01)
    panel.follow(job)
    panel.cancel_button.click()
    assert job.cancelled.is_set()
    panel.stop()
    assert not panel.polling
    panel.close()


def test_without_slurm_there_is_no_submit_button():
    b = make(SlurmBuilder, submit=False)
    assert b.submit_button not in b.children
    with pytest.raises(RunError, match="not available"):
        b.submit()


def test_builders_close_their_widgets():
    b = make(TorchrunBuilder)
    control = b.controls["script"]
    b.close()
    assert control.comm is None


def test_loading_a_script_keeps_its_own_lines():
    """Set-up lines of a loaded script (variables, comments) survive into the form's preview."""
    from hpcwidgets.widgets import WorkflowBuilder
    script = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:1\nIMG=/scratch/img.sif\nmkdir -p out\n"
              "apptainer exec --nv \"$IMG\" python train.py\n")
    b = WorkflowBuilder.from_script(script, submit=False)
    assert "IMG=/scratch/img.sif" in b.text and "mkdir -p out" in b.text
