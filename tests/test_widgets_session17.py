"""Session 17: the forms driven by a person who brings their own script.

- Partition takes any name without a profile (or with one that lists only some partitions); a profile that lists
  them all keeps the list to choose from.
- Controls are named as the model, its findings and ``--set`` name a field (``job.nodes``); the form's older names
  (``slurm.nodes``) still work.
- One edit of a loaded script changes that field's line of the preview and nothing else.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import ipywidgets as w
import pytest

from hpcwidgets.profiles import load_profile
from hpcwidgets.widgets import JupyterJobBuilder, SlurmBuilder, WorkflowBuilder
from test_widgets_browser import lab  # noqa: F401  (a fixture: one JupyterLab for this module's browser test)

CORPUS = Path(__file__).parent / "data" / "corpus"
SCRIPT = "#!/bin/bash\n#SBATCH --partition=cpu\n#SBATCH --time=01:00:00\n\nsrun python train.py\n"


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines ``after`` drops from ``before`` and the lines it adds, blank lines left out."""
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))[2:]
    gone = [ln[1:] for ln in diff if ln.startswith("-") and ln[1:].strip()]
    added = [ln[1:] for ln in diff if ln.startswith("+") and ln[1:].strip()]
    return gone, added


# ------------------------------------------------------------------------------------------------
# Partition

def test_without_a_profile_any_partition_can_be_typed():
    b = WorkflowBuilder.from_script(SCRIPT, submit=False)
    partition = b.controls["job.partition"]
    assert isinstance(partition, w.Combobox) and not partition.ensure_option
    partition.value = "gpu"
    assert changed_lines(WorkflowBuilder.from_script(SCRIPT, submit=False).text, b.text) == (
        ["#SBATCH --partition=cpu"], ["#SBATCH --partition=gpu"])
    assert not b.stale
    partition.value = ""                                   # empty: Slurm's default partition
    assert "--partition" not in b.text


def test_a_new_form_without_a_profile_takes_a_typed_partition():
    b = SlurmBuilder(submit=False)
    b.controls["partition"].value = "my-lab"
    assert "#SBATCH --partition=my-lab" in b.text


def test_a_profile_listing_only_some_partitions_suggests_them_and_takes_others():
    b = WorkflowBuilder.from_script(SCRIPT, profile="midway3", submit=False)
    partition = b.controls["job.partition"]
    assert isinstance(partition, w.Combobox)
    assert set(load_profile("midway3").slurm_partition_names()) == set(partition.options)
    partition.value = "pi-mylab"                           # an owner partition the profile cannot know
    assert "#SBATCH --partition=pi-mylab" in b.text
    assert not [f for f in b.findings if f.severity == "error"], [f.message for f in b.findings]


def test_a_profile_listing_every_partition_offers_them_to_choose_from():
    b = WorkflowBuilder.from_script(SCRIPT, profile="generic", submit=False)
    partition = b.controls["job.partition"]
    assert isinstance(partition, w.Dropdown)
    assert partition.options == ("", "cpu", "gpu")
    partition.value = "gpu"
    assert "#SBATCH --partition=gpu" in b.text


def test_a_loaded_partition_the_complete_profile_lacks_is_kept_and_reported():
    b = WorkflowBuilder.from_script(SCRIPT.replace("=cpu", "=bigmem"), profile="generic", submit=False)
    assert b.controls["job.partition"].value == "bigmem"
    assert "#SBATCH --partition=bigmem" in b.text
    found = [f for f in b.findings if f.severity == "error" and "no partition 'bigmem'" in f.message]
    assert found and "use one of" in found[0].message


def test_changing_the_profile_swaps_the_partition_control_and_keeps_the_value():
    b = WorkflowBuilder.from_script(SCRIPT, submit=False)
    row = b._rows["slurm.partition"]
    b.set_profile("generic")
    listed = b.controls["job.partition"]
    assert isinstance(listed, w.Dropdown) and listed.value == "cpu"
    assert row.children[0] is listed, "the row shows the new control"
    b.set_profile(None)
    typed = b.controls["job.partition"]
    assert isinstance(typed, w.Combobox) and typed.value == "cpu" and row.children[0] is typed
    assert listed.comm is None, "the replaced control is closed"
    typed.value = "other"                                  # the new control is wired to the form
    assert "#SBATCH --partition=other" in b.text


def test_the_profile_selector_swaps_the_control_as_set_profile_does():
    b = SlurmBuilder(submit=False)
    b.profile_selector.value = "local"
    assert isinstance(b.controls["partition"], w.Dropdown)
    b.profile_selector.value = "midway3"
    assert isinstance(b.controls["partition"], w.Combobox)


def test_a_partition_name_the_page_would_read_as_markup_is_not_suggested():
    profile = load_profile("midway3")
    odd = profile.partitions[0].replace(name='x"><img src=y>')
    b = SlurmBuilder(profile=profile.replace(partitions=(*profile.partitions, odd)), submit=False)
    assert 'x"><img src=y>' not in b.controls["partition"].options
    assert "caslake" in b.controls["partition"].options


# ------------------------------------------------------------------------------------------------
# control names

def test_a_control_is_found_by_the_name_its_findings_use():
    b = WorkflowBuilder.from_script(SCRIPT, submit=False)
    assert b.controls["job.nodes"] is b.controls["slurm.nodes"]
    assert b.controls["exports"] is b.controls["workflow.exports"]
    b.controls["job.nodes"].value = "2x"
    (error,) = [f for f in b.findings if f.code == "FORM" and f.severity == "error"]
    assert error.path == "job.nodes" and "[job.nodes]" in error.format()
    assert b.controls[error.path] is b.controls[error.field]
    assert b.invalid_fields == {"job.nodes"}


def test_controls_list_each_field_once_by_its_model_name():
    b = WorkflowBuilder(submit=False)
    names = list(b.controls)
    assert len(names) == len(set(names)) == len(b.controls)
    assert "job.time" in names and "slurm.time" not in names and "slurm.time" in b.controls
    assert {"srun.enabled", "container.runtime", "torchrun.enabled"} <= set(names)
    assert "program" in names and "container.image" in names
    assert b.controls["launcher.nnodes"] is b.controls["torchrun.nnodes"]


def test_a_misspelt_control_name_says_which_was_meant():
    b = WorkflowBuilder(submit=False)
    with pytest.raises(KeyError, match="did you mean 'job.nodes'"):
        b.controls["job.node"]
    assert b.controls.get("nothing") is None


def test_forms_without_layers_keep_their_plain_names():
    assert "time" in list(SlurmBuilder(submit=False).controls)
    j = JupyterJobBuilder(submit=False)
    assert j.controls["job.time"] is j.controls["slurm.time"] and "local_port" in j.controls


# ------------------------------------------------------------------------------------------------
# one edit = one change

#: corpus scripts with a container, and one without, with a plain number or $SLURM_NNODES for torchrun's nodes
ONE_EDIT = ["ok_single_gpu_apptainer.sh", "ok_array_sweep.sh", "ok_multi_node_apptainer.sh",
            "bad_flags_after_image.sh", "ok_env_file_secrets.sh", "ok_suppressed.sh"]


@pytest.mark.parametrize("name", ONE_EDIT)
def test_one_edit_of_a_loaded_script_changes_only_its_line(name):
    b = WorkflowBuilder.from_script((CORPUS / name).read_text(), submit=False)
    loaded = b.text
    c = b.controls
    nodes = c["job.nodes"].value
    edits = [("job.nodes", str(int(nodes) + 1) if nodes.isdigit() else "2", "#SBATCH --nodes="),
             ("job.partition", "other", "#SBATCH --partition="),
             ("exports", (c["exports"].value + "\nMY_NEW_VAR=1").lstrip("\n"), "export MY_NEW_VAR=")]
    if "container.image" in c:
        edits.append(("container.image", "/new/image.sif", "/new/image.sif"))
    for key, value, line in edits:
        old = c[key].value
        c[key].value = value
        gone, added = changed_lines(loaded, b.text)
        assert not b.stale, (key, [f.message for f in b.findings if f.severity == "error"])
        assert len(added) == 1 and line in added[0], (key, gone, added)
        assert len(gone) <= 1, (key, gone, added)
        c[key].value = old
        assert b.text == loaded, f"setting {key} back gives the loaded text again"


def test_nodes_flow_into_torchrun_only_where_it_holds_a_number():
    b = WorkflowBuilder.from_script((CORPUS / "ok_multi_node_apptainer.sh").read_text(), submit=False)
    assert b.controls["launcher.nnodes"].value == "$SLURM_NNODES"
    b.controls["job.nodes"].value = "3"
    assert b.controls["launcher.nnodes"].value == "$SLURM_NNODES", "it follows the allocation already"
    bare = WorkflowBuilder.from_script((CORPUS / "ok_multi_node_bare.sh").read_text(), submit=False)
    bare.controls["job.nodes"].value = "5"
    assert bare.controls["launcher.nnodes"].value == "5" and "--nnodes=5" in bare.text


# ------------------------------------------------------------------------------------------------
# in the browser

@pytest.mark.real
@pytest.mark.browser
def test_a_partition_is_typed_and_chosen_with_the_keyboard_in_the_browser(lab):
    from playwright.sync_api import expect

    from test_widgets_browser import HEAD, control, open_builder, preview, shot, type_into
    cls = "WorkflowBuilder"
    code = HEAD.format(work=str(lab["work"]), cls=cls) + f"{cls}.from_script({SCRIPT!r}, submit=False)"
    context, page = open_builder(lab, f"{cls}-partition", code)
    try:
        expect(preview(page)).to_contain_text("#SBATCH --partition=cpu")
        type_into(page, "Partition", "my-lab")             # no profile: any name
        expect(preview(page)).to_contain_text("#SBATCH --partition=my-lab")
        control(page, "Cluster profile").select_option("generic")
        # the text box gives way to a list: wait until it is gone, or the key below may reach the old one
        expect(page.locator(".hpcw-partition")).to_have_count(0)
        partition = control(page, "Partition")             # a complete profile: a list, chosen with the keyboard
        expect(partition).to_have_js_property("tagName", "SELECT")
        partition.focus()
        partition.press("g")                               # a select's own keyboard search: the first "g…"
        expect(preview(page)).to_contain_text("#SBATCH --partition=gpu")
        shot(page, f"{cls}-partition")
    finally:
        context.close()
