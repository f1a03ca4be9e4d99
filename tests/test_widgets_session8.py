"""Form defects found by the session-8 learner audit (pure Python: no kernel, no browser, no job submitted).

Submit only where the preview is a batch script; a form made with another cluster's profile says so before
submitting; binds whose host path holds ':' round-trip through the form; the Jupyter form's GPU flag; clearer
messages for a port typed as text, a port below 1024 and torchrun's 0 processes per node.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hpcwidgets import lessons
from hpcwidgets.errors import RunError
from hpcwidgets.spec import ApptainerRun, Bind, Workflow
from hpcwidgets.spec.common import bind_from_mount_text, mount_text
from hpcwidgets.widgets import state

pytest.importorskip("ipywidgets")
from hpcwidgets.widgets import builder  # noqa: E402
from hpcwidgets.widgets.builder import (ApptainerBuilder, CharliecloudBuilder, DefFileBuilder,  # noqa: E402
                                        JupyterJobBuilder, SlurmBuilder, TorchrunBuilder, WorkflowBuilder)

COMMAND_BUILDERS = (ApptainerBuilder, DefFileBuilder, CharliecloudBuilder, TorchrunBuilder)
JOB_BUILDERS = (SlurmBuilder, JupyterJobBuilder, WorkflowBuilder)
COLON_BIND = Bind("/project/run:2024", "/cfg", "ro")


def make(cls, *args, **kw):
    kw.setdefault("submit", False)
    kw.setdefault("profile", "generic")
    return cls(*args, **kw)


def errors(builder, key=None):
    return [f for f in builder.findings if f.severity == "error" and (key is None or f.field == key)]


@pytest.fixture
def slurm_answers(monkeypatch):
    """A Slurm that answers with one partition, ``debug`` (the practice cluster's), and an sbatch stand-in that
    records the scripts instead of submitting them."""
    submitted: list[str] = []

    def sbatch(text):
        submitted.append(text)
        return SimpleNamespace(id="")  # a job nobody follows

    monkeypatch.setattr("hpcwidgets.run.slurm.available", lambda env=None: True)
    monkeypatch.setattr("hpcwidgets.run.slurm.partitions", lambda env=None: frozenset({"debug"}))
    monkeypatch.setattr("hpcwidgets.widgets.jobs.submitter", lambda: sbatch)
    return submitted


def cluster_findings(builder):
    return [f for f in builder.findings if f.code == "CLUSTER"]


# ------------------------------------------------------------------------------------------------
# Submit only where the preview is a whole job script

def test_only_builders_of_a_job_script_offer_submit_when_slurm_answers(slurm_answers):
    for cls in JOB_BUILDERS:
        b = cls(profile="local")
        assert b.submit_button in b.children, cls.__name__
    for cls in COMMAND_BUILDERS:
        b = cls(profile="local")
        assert b.submit_button not in b.children and b.job_panel not in b.children, cls.__name__
        with pytest.raises(RunError, match="is not a batch script"):
            b.submit()
    assert slurm_answers == []


@pytest.mark.parametrize("cls", COMMAND_BUILDERS)
@pytest.mark.parametrize("submit", [True, lambda text: pytest.fail("must not submit")])
def test_asking_a_command_builder_for_submit_is_refused_with_what_to_do(cls, submit):
    with pytest.raises(ValueError, match=r"not a batch script.*WorkflowBuilder.*leave submit out"):
        cls(profile="generic", submit=submit)


# ------------------------------------------------------------------------------------------------
# a form made with another cluster's profile, on this cluster

def test_a_partition_this_cluster_lacks_is_said_before_submitting_with_the_profile_to_pick(slurm_answers,
                                                                                           monkeypatch):
    b = WorkflowBuilder(profile="generic")              # generic's GPU partition is "gpu"; the Slurm here has debug
    (found,) = cluster_findings(b)
    assert found.severity == "warning" and found.field == "slurm.partition"
    for words in ("no partition gpu", "it has: debug", "cluster profile generic", "local, in Cluster profile"):
        assert words in found.message
    assert "no partition gpu" in b.submit_note.value, "the warning is shown next to the Submit button too"
    b.profile_selector.value = "local"                 # the fix the message names …
    (found,) = cluster_findings(b)
    assert "choose one of its partitions in Partition" in found.message and "profile" not in found.message
    b.controls["slurm.partition"].value = "debug"      # … then one of its partitions
    # and a runtime it runs: local renders Apptainer's commands only, and Submit refuses a job that runs them
    assert any("choose Container = charliecloud" in f.message for f in b.findings)
    b.controls["container.runtime"].value = "charliecloud"
    b.controls["container.image"].value = "/var/tmp/hpcw-images/trainer"   # an image directory ch-run reads
    assert cluster_findings(b) == [] and b.submit_note.value == ""
    b.submit()
    assert slurm_answers == [b.text]
    # a callable submitter may submit anywhere: it is trusted as it is, and the cluster is not asked
    monkeypatch.setattr("hpcwidgets.run.slurm.partitions", lambda env=None: pytest.fail("must not ask Slurm"))
    assert cluster_findings(WorkflowBuilder(profile="generic", submit=lambda text: None)) == []


def test_the_jupyter_form_checks_its_job_layer_too(slurm_answers):
    b = JupyterJobBuilder(lessons.example("jupyter", "generic"), profile="generic")
    (found,) = cluster_findings(b)
    assert found.field == "slurm.partition" and "no partition cpu" in found.message


def test_a_job_without_a_partition_goes_to_the_default_one_and_is_not_flagged():
    assert state.missing_partition(Workflow.single_node("t.py").job, "generic", frozenset({"debug"}), ("local",)) == ""


def test_with_no_profile_for_this_cluster_the_message_says_how_to_make_one():
    job = SlurmBuilder.default_model(None).replace(partition="gpu")
    message = state.missing_partition(job, "generic", frozenset({"batch"}), ())
    assert "cluster profile generic" in message and "hpcwidgets profile detect" in message


# ------------------------------------------------------------------------------------------------
# binds whose host path holds ':' (lesson 03)

def test_mount_text_round_trips_colons_commas_and_options():
    for bind in (COLON_BIND, Bind("/data/a,b", "/d"), Bind("/x:1", "", "ro,image-src=/"), Bind("/p:q", "/q", "rw")):
        assert bind_from_mount_text(mount_text(bind)) == bind.replace(mode=",".join(o for o in bind.options
                                                                                   if o != "rw"))
    assert mount_text(COLON_BIND) == "type=bind,src=/project/run:2024,dst=/cfg,ro"
    assert mount_text(Bind("/data/a,b", "/d")) == 'type=bind,"src=/data/a,b",dst=/d'


def test_mount_text_reads_apptainers_other_spellings_and_refuses_what_a_bind_cannot_hold():
    assert bind_from_mount_text("source=/a:1,target=/b,readonly") == Bind("/a:1", "/b", "ro")
    assert bind_from_mount_text("src=/a:1,dst=/b") == Bind("/a:1", "/b")
    for text in ("type=volume,src=a,dst=/b", "dst=/b", "type=bind,src=/a,dst=/b,bind-propagation=rshared"):
        assert bind_from_mount_text(text) is None


@pytest.mark.parametrize("cls,key", [(ApptainerBuilder, "binds"), (WorkflowBuilder, "container.binds")])
def test_the_bind_field_shows_a_colon_path_in_the_mount_form_and_reads_it_back(cls, key):
    if cls is ApptainerBuilder:
        b = make(cls, ApptainerRun(image="a.sif", command=("python", "t.py"), binds=(COLON_BIND,)))
    else:
        wf = Workflow.single_node("t.py", image="a.sif")
        b = make(cls, wf.replace(container=wf.container.replace(binds=(COLON_BIND,))))
    shown = b.controls[key].value
    assert shown == "type=bind,src=/project/run:2024,dst=/cfg,ro"
    b.controls[key].value = shown + "\n$SCRATCH/data:/data:ro"        # the audit's step: add a second bind
    assert not b.stale and errors(b, key) == []
    assert "--mount type=bind,src=/project/run:2024,dst=/cfg,ro" in b.text
    assert '"$SCRATCH/data:/data:ro"' in b.text


def test_a_colon_path_typed_as_src_dst_is_refused_with_the_mount_form_to_write():
    b = make(ApptainerBuilder)
    b.controls["binds"].value = "/project/run:2024:/cfg:ro"
    (error,) = errors(b, "binds")
    assert "Apptainer's --mount" in error.message
    assert "type=bind,src=/project/run:2024,dst=/cfg,ro" in error.message, "the form it names reads back"
    b.controls["binds"].value = "type=bind,src=/project/run:2024,dst=/cfg,ro"
    assert errors(b, "binds") == [] and b.spec.binds == (COLON_BIND,)


def test_an_unreadable_mount_line_names_the_mount_form():
    b = make(ApptainerBuilder)
    b.controls["binds"].value = "type=volume,src=a,dst=/b"
    (error,) = errors(b, "binds")
    assert "type=bind,src=HOST PATH,dst=CONTAINER PATH[,ro]" in error.message


# ------------------------------------------------------------------------------------------------
# the Jupyter form: the container's GPU flag

def test_the_jupyter_form_switches_the_containers_gpu_flag():
    b = make(JupyterJobBuilder, lessons.example("jupyter", "generic"))
    b.controls["slurm.partition"].value = "gpu"
    b.controls["slurm.gpus_per_node"].value = "1"
    assert "HPC201" in [f.code for f in b.findings]
    b.controls["container.nv"].value = True          # in the form, not only through Apply fix
    assert "HPC201" not in [f.code for f in b.findings]
    assert "apptainer exec --nv" in b.text and not b.stale
    assert not any(k.startswith("container.") for k in make(JupyterJobBuilder).controls), "no container: no fields"


# ------------------------------------------------------------------------------------------------
# one clear message each

def test_a_port_typed_as_text_gets_a_port_like_example():
    b = make(JupyterJobBuilder)
    b.controls["local_port"].value = "abc"
    (error,) = errors(b, "local_port")
    assert "e.g. 8888" in error.message and "e.g. 4" not in error.message


def test_a_port_below_1024_gets_one_message_and_no_render_line():
    b = make(JupyterJobBuilder)
    b.controls["local_port"].value = "80"
    assert [f.message for f in errors(b)] == ["Port on your computer must be at least 1024, got 80"]


def test_zero_processes_per_node_gets_one_message():
    b = make(TorchrunBuilder)
    b.controls["nproc_per_node"].value = "0"
    (error,) = errors(b, "nproc_per_node")
    assert "at least 1" in error.message and "use a number" not in error.message


def test_forms_made_together_ask_slurm_once(monkeypatch):
    asked = []
    monkeypatch.setattr("hpcwidgets.run.slurm.available", lambda env=None: asked.append("available") or True)
    monkeypatch.setattr("hpcwidgets.run.slurm.partitions",
                        lambda env=None: asked.append("partitions") or frozenset({"debug"}))
    first, second = WorkflowBuilder(profile="generic"), WorkflowBuilder(profile="local")
    assert asked == ["available", "partitions"]
    assert cluster_findings(first) and not cluster_findings(second)  # generic's "gpu" is not here; local's is
    monkeypatch.setenv("SLURM_CONF", "/elsewhere/slurm.conf")       # another cluster: asked again
    WorkflowBuilder(profile="local")
    assert asked == ["available", "partitions"] * 2
    builder.forget_cluster_answers()
    WorkflowBuilder(profile="local")
    assert len(asked) == 6


def test_a_cluster_started_after_a_form_is_found_by_the_next_form(monkeypatch):
    up = []
    monkeypatch.setattr("hpcwidgets.run.slurm.available", lambda env=None: bool(up))
    monkeypatch.setattr("hpcwidgets.run.slurm.partitions", lambda env=None: frozenset({"debug"}))
    before = WorkflowBuilder(profile="local")
    assert before.submit_button not in before.children
    up.append("practice-cluster up")
    after = WorkflowBuilder(profile="local")
    assert after.submit_button in after.children
