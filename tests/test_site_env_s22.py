"""A site's own variables and binds (ClusterProfile.job_env, container_binds): read from TOML, checked, written
back, and added by ClusterProfile.place / with_site_env to the jobs the package writes for the site."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hpcwidgets.errors import ProfileError
from hpcwidgets.examples import examples
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile, profile_from_toml, profile_to_toml
from hpcwidgets.render import render
from hpcwidgets.render.workflow import workflow_exports
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.charliecloud import ChRun
from hpcwidgets.spec.common import Bind, EnvVar
from hpcwidgets.spec.jupyter import JupyterJob
from hpcwidgets.spec.profile import ClusterProfile
from hpcwidgets.spec.slurm import SlurmJob
from hpcwidgets.spec.workflow import Workflow

ROOT = Path(__file__).resolve().parents[1]
LUMI_ENV = {"NCCL_SOCKET_IFNAME": "hsn0,hsn1,hsn2,hsn3", "NCCL_NET_GDR_LEVEL": "PHB",
            "MIOPEN_USER_DB_PATH": "/tmp/$USER-miopen"}
#: a value that would run code, glob or split if it were not quoted
HOSTILE = "$(touch PWNED); `touch PWNED2`; 'q' \"d\" * ~ a  b"

SITE = """
name = "amdsite"
gpu_vendor = "amd"
runtimes = ["singularity", "charliecloud"]
apptainer_binary = "singularity"
scratch = "/scratch/project_465000000"
default_partition = "small-g"
default_gpu_partition = "small-g"
container_binds = ["/scratch/project_465000000", "/project/project_465000000:/project/project_465000000:ro"]

[job_env]
NCCL_SOCKET_IFNAME = "hsn0,hsn1,hsn2,hsn3"
NCCL_NET_GDR_LEVEL = "PHB"
MIOPEN_USER_DB_PATH = "/tmp/$USER-miopen"

[[partitions]]
name = "small-g"
max_time = "3-00:00:00"
max_nodes = 4
cpus_per_node = 56
mem_per_node = "480G"
gpus_per_node = 8
"""


@pytest.fixture(scope="module")
def site() -> ClusterProfile:
    return profile_from_toml(SITE)


def _load(text: str) -> ClusterProfile:
    return profile_from_toml('name = "s"\n' + text)


def _error(text: str) -> str:
    with pytest.raises(ProfileError) as info:
        _load(text)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# reading, checking, writing back
# ------------------------------------------------------------------------------------------------
def test_the_table_and_the_list_read_the_same(site):
    assert dict(e.to_token().split("=", 1) for e in site.site_env()) == LUMI_ENV
    listed = _load('job_env = ["NCCL_SOCKET_IFNAME=hsn0,hsn1,hsn2,hsn3", "NCCL_NET_GDR_LEVEL=PHB", '
                   '"MIOPEN_USER_DB_PATH=/tmp/$USER-miopen"]\n')
    assert listed.job_env == site.job_env
    assert [(b.src, b.dst, b.mode) for b in site.site_binds()] == [
        ("/scratch/project_465000000", "", ""), ("/project/project_465000000", "", "ro")]


def test_a_whole_number_is_its_text_and_the_defaults_are_empty():
    assert _load("[job_env]\nNCCL_IB_TIMEOUT = 22\n").job_env == ("NCCL_IB_TIMEOUT=22",)
    plain = _load("")
    assert plain.job_env == () and plain.container_binds == ()
    assert plain.site_env() == () and plain.site_binds() == ()


@pytest.mark.parametrize("text, says", [
    ('[job_env]\n"1NCCL" = "x"\n', "'1NCCL' is not a variable name"),
    ('[job_env]\n"NCCL-IF" = "x"\n', "'NCCL-IF' is not a variable name"),
    ('[job_env]\nA = ["x", "y"]\n', 'write it in quotes'),
    ('[job_env]\nA = true\n', 'write it in quotes'),
    ('job_env = ["NOVALUE"]\n', "'NOVALUE' has no value"),
    ('job_env = ["A=1", "A=2"]\n', "A is set more than once"),
    ('job_env = ["A=\\"quoted\\""]\n', "the quotes would be part of the value"),
    ('job_env = ["BAD NAME=1"]\n', "'BAD NAME' is not a variable name"),
])
def test_a_bad_variable_is_a_profile_error_naming_the_fix(text, says):
    message = _error(text)
    assert "job_env" in message and says in message, message
    assert "Traceback" not in message


@pytest.mark.parametrize("bind, says", [
    ("data:/data", "must be absolute"),
    ("/a:data", "container path 'data' must be absolute"),
    ("/a:/b:rx", "'rx' is not a bind mode"),
    ("/:/host", "binds /"),
    ("/data:/", "binds /"),
    ("~/data", "write $HOME/data"),
    ("/a,/b", "one bind per item"),
    ("", "an empty bind"),
])
def test_a_bad_bind_is_a_profile_error_naming_the_fix(bind, says):
    message = _error(f"container_binds = [{json.dumps(bind)}]\n")
    assert "container_binds" in message and says in message, message


def test_a_container_path_bound_twice_is_reported():
    assert "/data is bound more than once" in _error('container_binds = ["/a:/data", "/b:/data/"]\n')


def test_the_profile_round_trips_through_toml_and_json(site):
    text = profile_to_toml(site)
    assert profile_from_toml(text) == site
    assert profile_from_toml(profile_to_toml(site, comments=False)) == site
    assert ClusterProfile.from_json(site.to_json()) == site
    hostile = site.replace(job_env=(f"DANGER={HOSTILE}",))
    assert profile_from_toml(profile_to_toml(hostile)) == hostile


# ------------------------------------------------------------------------------------------------
# placing a model
# ------------------------------------------------------------------------------------------------
def _workflow(**container) -> Workflow:
    box = ApptainerRun(binary="singularity", action="exec", image="/img.sif",
                       binds=(Bind("$SCRATCH/data", "/data", "ro"),), **container)
    return Workflow.single_node("train.py", container=box, exports=(EnvVar("OWN", "1"),), job_name="t",
                                partition="small-g", gpus_per_node=1, gpu_vendor="amd")


def test_place_exports_the_variables_after_the_workflows_own_and_binds_the_folders_first(site):
    placed = site.place(_workflow())
    assert [(e.name, e.value) for e in placed.exports] == [("OWN", "1"), *LUMI_ENV.items()]
    assert [b.to_token() for b in placed.container.binds] == [
        "/scratch/project_465000000", "/project/project_465000000:/project/project_465000000:ro",
        "$SCRATCH/data:/data:ro"]
    assert site.place(placed) == placed  # placing twice adds nothing more
    assert placed.problems() == []


def test_what_the_model_sets_wins(site):
    wf = _workflow(env=(EnvVar("NCCL_NET_GDR_LEVEL", "LOC"),))
    wf = wf.replace(exports=(EnvVar("NCCL_SOCKET_IFNAME", "ib0"),),
                    job=wf.job.replace(env=(EnvVar("MIOPEN_USER_DB_PATH", "$TMPDIR/miopen"),)))
    wf = wf.replace(container=wf.container.replace(
        binds=(Bind("$SCRATCH/mine", "/scratch/project_465000000/"),)))
    placed = site.place(wf)
    names = [name for name, _ in workflow_exports(placed)]
    assert len(names) == len(set(names))
    assert dict(workflow_exports(placed))["NCCL_SOCKET_IFNAME"] == "ib0"
    assert [e.value for e in placed.job.env] == ["$TMPDIR/miopen"]
    assert "NCCL_NET_GDR_LEVEL" not in names  # the container sets it itself
    assert [b.src for b in placed.container.binds] == ["/project/project_465000000", "$SCRATCH/mine"]


def test_a_script_read_back_gets_none_of_them(site):
    wf = _workflow()
    as_written = site.place(wf, as_written=True)
    assert as_written.exports == wf.exports and as_written.container.binds == wf.container.binds
    job = SlurmJob(job_name="x", partition="small-g")
    assert site.place(job, as_written=True).env == ()
    assert [e.name for e in site.place(job).env] == list(LUMI_ENV)


def test_a_clean_environment_is_given_the_variables_with_env(site):
    placed = site.place(_workflow(cleanenv=True))
    assert [e.to_token() for e in placed.container.env] == [f"{n}=${n}" for n in LUMI_ENV]
    kept = site.place(_workflow())
    assert kept.container.env == ()
    codes = {f.code for f in lint(render(placed), site)}
    assert "HPC227" not in codes


def test_ch_run_gets_the_binds_without_a_mode(site):
    box = ChRun(image="/img.sqfs", binds=(Bind("$SCRATCH/in", "/mnt/0"),))
    wf = Workflow.single_node("train.py", container=box, job_name="t", partition="small-g", use_srun=True)
    placed = site.place(wf)
    assert [(b.src, b.mode) for b in placed.container.binds] == [
        ("/scratch/project_465000000", ""), ("/project/project_465000000", ""), ("$SCRATCH/in", "")]
    assert placed.problems() == []


def test_a_jupyter_job_exports_them_with_its_own_and_binds_them(site):
    job = JupyterJob.for_profile(site, login_host="lumi.example.org",
                                 container=ApptainerRun(binary="singularity", action="exec", image="/img.sif"))
    job = job.replace(job=job.job.replace(env=(EnvVar("NCCL_SOCKET_IFNAME", "hsn0"),)))
    placed = site.place(job)
    assert [(e.name, e.value) for e in placed.job.env] == [
        ("NCCL_SOCKET_IFNAME", "hsn0"), ("NCCL_NET_GDR_LEVEL", "PHB"), ("MIOPEN_USER_DB_PATH", "/tmp/$USER-miopen")]
    assert [b.src for b in placed.container.binds] == ["/scratch/project_465000000", "/project/project_465000000"]
    text = render(placed)
    assert "export NCCL_NET_GDR_LEVEL=PHB" in text and "--bind /scratch/project_465000000 " in text
    assert site.place(placed) == placed
    assert site.place(job, as_written=True).job.env == job.job.env


def test_a_profile_without_them_leaves_every_model_as_it_is():
    for name in ("generic", "local", "midway3"):
        profile = load_profile(name)
        for example in examples(profile).values():
            assert profile.with_site_env(example.model) is example.model


# ------------------------------------------------------------------------------------------------
# the rendered script
# ------------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_rendered_exports_give_the_values_as_written(site, tmp_path):
    hostile = site.replace(job_env=(*site.job_env, f"DANGER={HOSTILE}"),
                           container_binds=(*site.container_binds, "/gpfs/a b"))
    text = render(hostile.place(_workflow()))
    exports = [line for line in text.splitlines() if line.startswith("export ")]
    assert len(exports) == 5  # OWN, the three LUMI ones, DANGER
    names = ["OWN", *LUMI_ENV, "DANGER"]
    refs = " ".join('"${%s}"' % n for n in names)
    probe = "\n".join(["set -u", *exports, f"printf '%s\\0' {refs}"])
    done = subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                          env={"USER": "alice", "PATH": "/usr/bin:/bin"})
    values = done.stdout.split("\0")[:-1]
    assert values == ["1", "hsn0,hsn1,hsn2,hsn3", "PHB", "/tmp/alice-miopen", HOSTILE]
    assert list(tmp_path.iterdir()) == []  # nothing ran
    assert "--bind '/gpfs/a b'" in text


def test_the_examples_for_the_site_show_them_and_lint_clean(site):
    found = examples(site)
    for name, example in found.items():
        text = example.render()
        for var, value in LUMI_ENV.items():
            assert re.search(rf"^export {var}=", text, re.MULTILINE), (name, var)
        assert "/scratch/project_465000000" in text and "/project/project_465000000" in text, name
        bad = [f.format() for f in lint(text, site) if f.severity != "info"]
        assert bad == [], (name, bad)


def test_the_docs_snippet_loads():
    doc = (ROOT / "docs" / "profiles.md").read_text(encoding="utf-8")
    snippet = re.search(r"```toml\n(# LUMI-like values.*?)```", doc, re.DOTALL)
    assert snippet is not None
    profile = profile_from_toml('name = "doc"\n' + snippet.group(1))
    assert dict(e.to_token().split("=", 1) for e in profile.site_env()) == LUMI_ENV
    assert len(profile.site_binds()) == 2


def test_the_jupyter_form_starts_from_a_job_with_the_sites_variables(tmp_path):
    """JupyterJob.for_profile (the Jupyter form's starting job) exports the site's job_env, once."""
    from hpcwidgets.profiles import load_profile
    from hpcwidgets.spec.jupyter import JupyterJob
    path = tmp_path / "envsite.toml"
    path.write_text('name = "envsite"\nlogin_host = "login.example.org"\n[job_env]\nNCCL_SOCKET_IFNAME = "hsn0"\n'
                    '[[partitions]]\nname = "cpu"\nis_default = true\ncpus_per_node = 8\nmem_per_node = "32G"\n')
    site = load_profile(str(path))
    job = JupyterJob.for_profile(site)
    assert [(e.name, e.value) for e in job.job.env].count(("NCCL_SOCKET_IFNAME", "hsn0")) == 1
    assert site.place(job) == job  # placing it again adds nothing
