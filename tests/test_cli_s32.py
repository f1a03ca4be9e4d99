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
