"""Forms, session 20 (no browser): keyboard-reachable parts, messages under their field, Save into a folder that
does not exist, the job name's one message, Cancel after a job ends, and first forms a profile's cluster can run."""

from __future__ import annotations

import html
import importlib.util
import re
import sys

import pytest

from hpcwidgets.errors import FileError, RunError
from hpcwidgets.files import write_atomic
from hpcwidgets.lint import lint
from hpcwidgets.profiles import list_profiles, load_profile
from hpcwidgets.spec import ApptainerRun
from hpcwidgets.spec.charliecloud import ChRun

pytest.importorskip("ipywidgets")
import ipywidgets as w  # noqa: E402

from hpcwidgets.widgets.builder import (Disclosure, JupyterJobBuilder, SlurmBuilder,  # noqa: E402
                                        WorkflowBuilder)
from hpcwidgets.widgets.highlight import highlight  # noqa: E402
from hpcwidgets.widgets.jobs import JobPanel  # noqa: E402


def _tree(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _tree(child)


def _field_error(builder, name):
    """The text under the control ``name`` (its error view), or "" while it is hidden."""
    key = next(k for k, f in builder.form.fields.items() if name in (k, f.path))
    view = builder._rows[key].children[1]
    return "" if view.layout.display == "none" else html.unescape(re.sub("<[^>]+>", "", view.value))


# ------------------------------------------------------------------------------------------------
# 1. Advanced and Load or reset: buttons, so the keyboard reaches them

def test_no_accordion_is_left_and_each_part_opens_with_a_button_that_says_its_state():
    b = WorkflowBuilder(profile="generic", submit=False)
    assert not [x for x in _tree(b) if isinstance(x, w.Accordion)], "an Accordion's header takes no keyboard focus"
    parts = [x for x in _tree(b) if isinstance(x, Disclosure)]
    assert b.load_section in parts and len(parts) >= 2
    load = b.load_section
    assert isinstance(load.toggle, w.ToggleButton) and not load.expanded
    assert load.toggle.description == "Show Load and Reset" and load.body.layout.display == "none"
    assert b.load_button in list(_tree(load.body))
    load.toggle.value = True  # what Enter or Space on the focused button does
    assert load.toggle.description == "Hide Load and Reset" and load.body.layout.display != "none"
    advanced = next(p for p in parts if p is not load)
    assert re.fullmatch(r"Show advanced fields \(\d+\)", advanced.toggle.description)


def test_the_preview_can_take_focus_and_keeps_jupyterlabs_shortcuts_out():
    html = highlight("#!/bin/bash\necho " + "x" * 300 + "\n")
    assert 'tabindex="0"' in html and 'role="region"' in html and 'data-lm-suppress-shortcuts="true"' in html


# ------------------------------------------------------------------------------------------------
# 2. placeholders short enough to show whole

def test_number_placeholders_are_short():
    b = WorkflowBuilder(profile="generic", submit=False)
    hints = {k: c.placeholder for k, c in b._field_controls.items() if "hpcw-int" in c._dom_classes}
    assert hints and all(len(h) <= 24 for h in hints.values()), hints  # the browser test measures them
    assert hints["slurm.ntasks"] == "≥ 1 (empty: default)"


# ------------------------------------------------------------------------------------------------
# 3. the message under the field

def test_a_bad_value_is_explained_under_its_field_and_the_message_goes_when_fixed():
    b = SlurmBuilder(profile="generic", submit=False)
    assert _field_error(b, "time") == ""
    b.controls["time"].value = "1.5h"
    under = _field_error(b, "time")
    assert "'1.5h' is not a Slurm time" in under
    finding = next(f for f in b.findings if f.field == "time")
    assert finding.message in under, "the same message as under Findings"
    b.controls["time"].value = "01:30:00"
    assert _field_error(b, "time") == ""


def test_a_profile_limit_is_said_under_its_field():
    b = SlurmBuilder(profile="local", submit=False)
    b.controls["nodes"].value = "5"
    assert "nodes" in b.invalid_fields
    assert "debug" in _field_error(b, "nodes") and "2" in _field_error(b, "nodes")


def test_a_bad_advanced_value_opens_its_part():
    b = SlurmBuilder(profile="generic", submit=False)
    part = b._disclosures["gpus_per_task"]
    assert not part.expanded
    b.controls["gpus_per_task"].value = "abc"
    assert part.expanded and _field_error(b, "gpus_per_task")


# ------------------------------------------------------------------------------------------------
# 4. Save makes no folders

def test_save_into_a_missing_folder_is_refused_and_names_it(tmp_path):
    (tmp_path / "project").mkdir()
    b = SlurmBuilder(profile="generic", submit=False)
    b.path_text.value = str(tmp_path / "projcet" / "runs" / "job.sh")
    b.save_button.click()
    status = b.status.value
    assert "Not saved" in status and f"the folder {tmp_path / 'projcet'} does not exist" in status
    assert f"did you mean {tmp_path / 'project'}?" in status and "mkdir -p" in status
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"], "no folder was made"
    with pytest.raises(FileError, match="does not exist"):
        b.save(tmp_path / "nowhere" / "job.sh")
    assert b.save(tmp_path / "project" / "job.sh").read_text() == b.text


def test_writing_makes_folders_only_when_asked(tmp_path):
    with pytest.raises(FileError, match=r"nested does not exist.*mkdir -p"):
        write_atomic(tmp_path / "nested" / "deeper" / "x.sh", "x\n", make_folders=False)
    assert not (tmp_path / "nested").exists()
    assert write_atomic(tmp_path / "nested" / "deeper" / "x.sh", "x\n").read_text() == "x\n"  # the default


# ------------------------------------------------------------------------------------------------
# 5. a refused job name gets its error, not the program-argument warning

def test_a_refused_job_name_gets_only_the_message_that_applies():
    b = WorkflowBuilder(profile="local", submit=False)
    b.controls["job.job_name"].value = 'my job "x" $(rm -rf ~)'
    said = [f for f in b.findings if f.field == "slurm.job_name"]
    assert [f.severity for f in said] == ["error"] and "#SBATCH lines are not read by the shell" in said[0].message
    assert not any("reaches the program" in f.message for f in b.findings)


def test_typed_code_in_a_program_argument_still_gets_its_warning():
    b = WorkflowBuilder(profile="local", submit=False)
    b.controls["launcher.args"].value = "--seed $(date +%s)"
    assert any("reaches the program" in f.message and f.severity == "warning" for f in b.findings)


# ------------------------------------------------------------------------------------------------
# 6. Cancel goes when the job has ended

class _Job:
    def __init__(self, states):
        self.id = "42"
        self._states = list(states)

    def state(self):
        return self._states.pop(0) if len(self._states) > 1 else self._states[0]

    def info(self):
        raise RunError("no sacct here")

    def output(self, tail=20):
        return "hello"


def test_cancel_is_hidden_once_the_job_has_ended():
    panel = JobPanel(poll_seconds=60)
    panel.job, panel._started = _Job(["RUNNING", "COMPLETED"]), 0.0
    panel.cancel_button.disabled = False
    assert panel.poll_once() == "RUNNING"
    assert panel.cancel_button.layout.display != "none" and not panel.cancel_button.disabled
    assert panel.poll_once() == "COMPLETED"
    assert panel.cancel_button.layout.display == "none" and panel.cancel_button.disabled
    panel.close()


# ------------------------------------------------------------------------------------------------
# 7. the first workflow runs on the profile's cluster and passes the project's linter

def test_the_local_workflow_starts_with_the_runtime_the_practice_cluster_runs():
    local = load_profile("local")
    assert "apptainer" in local.runtimes_render_only  # the premise: the practice cluster has Charliecloud only
    b = WorkflowBuilder(profile="local", submit=False)
    assert b.controls["container.runtime"].value == "charliecloud" and isinstance(b.spec.container, ChRun)
    assert "ch-run" in b.text and "apptainer" not in b.text.split("# The step")[1]
    assert b.spec.job.cpus_per_task == 2  # the node's 2 CPUs for its 2 GPUs' workers
    assert not [f for f in b.findings if f.severity in ("error", "warning")], b.findings


@pytest.mark.parametrize("profile", [None, *sorted(list_profiles())])
def test_no_first_workflow_trips_the_linter(profile):
    b = WorkflowBuilder(profile=profile, submit=False)
    found = {f.code for f in lint(b.text, load_profile(profile) if profile else None) if f.severity != "info"}
    assert not found and not [f for f in b.findings if f.severity in ("error", "warning")], (found, b.findings)


def test_submit_refuses_a_runtime_the_profile_only_renders(monkeypatch):
    sent = []
    b = WorkflowBuilder(profile="local", submit=sent.append)
    b.controls["container.runtime"].value = "apptainer"
    assert isinstance(b.spec.container, ApptainerRun)
    (found,) = [f for f in b.findings if f.code == "PROFILE"]
    assert "apptainer: command not found" in found.message and "choose Container = charliecloud" in found.message
    assert "Submit refuses this job" in b.refused_note.value
    with pytest.raises(RunError, match="render-only"):
        b.submit()
    b.submit_button.click()
    assert sent == [] and "Not submitted" in b.status.value
    b.controls["container.runtime"].value = "charliecloud"
    assert b.refused_note.value == "" and not [f for f in b.findings if f.code == "PROFILE"]
    b.submit_button.click()
    assert sent == [b.text]


# ------------------------------------------------------------------------------------------------
# 8. the local Jupyter job starts the JupyterLab this kernel has

def test_the_local_jupyter_job_uses_this_kernels_jupyterlab():
    b = JupyterJobBuilder(profile="local", submit=False)
    if importlib.util.find_spec("jupyterlab") is None:
        assert b.spec.python == "jupyter"
    else:
        assert b.spec.python == sys.executable and f"{sys.executable} -m jupyterlab" in b.text
    assert JupyterJobBuilder(profile="generic", submit=False).spec.python == "jupyter"  # a real cluster's nodes
