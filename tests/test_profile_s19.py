"""Session 19: a cluster profile names the site's Jupyter tunnel form (``tunnel = "login" | "node"``), which every
way to a Jupyter job starts from: the example, ``jupyter-job --profile``, the Jupyter form and ``make lab``; an
explicit ``--tunnel`` (or ``--set tunnel=…``, or ``HPCW_TUNNEL`` for make lab) still wins."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hpcwidgets.cli import main as cli_main
from hpcwidgets.errors import ProfileError
from hpcwidgets.examples import examples
from hpcwidgets.profiles import load_profile, profile_from_toml, profile_to_toml
from hpcwidgets.run import lab
from hpcwidgets.spec.jupyter import JupyterJob
from hpcwidgets.widgets import JupyterJobBuilder
from test_jupyter_tunnel_session6 import LOGIN, _profile, _tunnel_line

#: the tunnel line of a job script, in each form, for the profile's login host
THROUGH_LOGIN = f'jl_tunnel="ssh -N -L 8888:$jl_host:$jl_port -o ExitOnForwardFailure=yes $USER@{LOGIN}"'
TO_NODE = f'jl_tunnel="ssh -N -L 8888:127.0.0.1:$jl_port -o ExitOnForwardFailure=yes -J $USER@{LOGIN} $USER@$jl_node"'
PLAIN = "#!/bin/bash\n#SBATCH --time=1:00:00\njupyter lab --no-browser\n"
JOB_ENV = {"SLURM_JOB_ID": "77", "SLURMD_NODENAME": "gpu017", "USER": "jdoe"}


def _site(tmp_path: Path, keys: str = 'tunnel = "node"', name: str = "adopt") -> Path:
    """The shipped generic profile as ``name`` with the login host LOGIN, followed by ``keys``."""
    return _profile(tmp_path, keys, name)


# --- the key ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["login", "node"])
def test_the_profile_names_the_sites_tunnel_form(tmp_path, form):
    profile = load_profile(_site(tmp_path, f'tunnel = "{form}"'))
    assert profile.tunnel == form
    assert JupyterJob.login_fields(profile)["tunnel"] == form


def test_a_profile_without_the_key_names_no_form_and_leaves_the_jobs_own(tmp_path):
    """Every profile written before the key (the shipped ones among them) loads as before: no site form, so the job
    keeps whatever form it has."""
    profile = load_profile(_site(tmp_path, ""))
    assert profile.tunnel is None
    assert "tunnel" not in JupyterJob.login_fields(profile)
    assert JupyterJob.for_profile(profile).tunnel == "login"
    assert JupyterJob(tunnel="node").replace(**JupyterJob.login_fields(profile)).tunnel == "node"
    assert {load_profile(name).tunnel for name in ("generic", "local", "midway3")} == {None}


@pytest.mark.parametrize("keys, says", [
    ('tunnel = "adopt"', "Jupyter tunnel must be one of login, node; got 'adopt'"),
    ('tunnel = "Node"', "write 'node'"),
    ("tunnel = true", "expected text"),
])
def test_a_bad_tunnel_form_is_a_clear_error_on_its_line(tmp_path, keys, says):
    path = _site(tmp_path, keys)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("tunnel"))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and f"line {line}: tunnel: " in message and says in message


def test_a_misspelled_key_names_tunnel():
    with pytest.raises(ProfileError, match="did you mean 'tunnel'"):
        profile_from_toml('name = "x"\ntunel = "node"\n')


def test_a_saved_profile_writes_the_key_only_when_it_is_set(tmp_path):
    """A profile saved without a form stays readable by hpcwidgets releases that do not know the key (they refuse
    keys they do not know); one with a form reads back equal."""
    plain = load_profile(_site(tmp_path, ""))
    assert "tunnel =" not in profile_to_toml(plain)
    node = load_profile(_site(tmp_path, 'tunnel = "node"'))
    text = profile_to_toml(node)
    assert 'tunnel = "node"' in text
    assert profile_from_toml(text) == node


# --- each way to a Jupyter job starts from it ----------------------------------------------------------------------

def test_the_example_takes_the_sites_form(tmp_path):
    assert _tunnel_line(examples(load_profile(_site(tmp_path)))["jupyter"].render()) == TO_NODE
    assert _tunnel_line(examples(load_profile(_site(tmp_path, "")))["jupyter"].render()) == THROUGH_LOGIN


def test_jupyter_job_with_the_profile_takes_the_sites_form_and_an_explicit_one_wins(tmp_path, capsys):
    path = str(_site(tmp_path))
    assert cli_main(["jupyter-job", "--profile", path]) == 0
    assert _tunnel_line(capsys.readouterr().out) == TO_NODE
    for explicit in (["--tunnel", "login"], ["--set", "tunnel=login"]):
        assert cli_main(["jupyter-job", "--profile", path, *explicit]) == 0
        assert _tunnel_line(capsys.readouterr().out) == THROUGH_LOGIN


def test_jupyter_job_from_a_plain_script_takes_the_profiles_way_in_with_its_form(tmp_path, capsys):
    plain = tmp_path / "plain.sh"
    plain.write_text(PLAIN)
    assert cli_main(["jupyter-job", "--from", str(plain), "--profile", str(_site(tmp_path))]) == 0
    assert _tunnel_line(capsys.readouterr().out) == TO_NODE
    # a profile that names no form leaves the one typed
    assert cli_main(["jupyter-job", "--from", str(plain), "--profile", str(_site(tmp_path, "", "plainsite")),
                     "--tunnel", "node"]) == 0
    assert _tunnel_line(capsys.readouterr().out) == TO_NODE


def test_jupyter_job_from_a_plain_script_keeps_the_tunnel_typed(tmp_path, capsys):
    plain = tmp_path / "plain.sh"
    plain.write_text(PLAIN)
    assert cli_main(["jupyter-job", "--from", str(plain), "--profile", str(_site(tmp_path)),
                     "--tunnel", "login"]) == 0
    assert _tunnel_line(capsys.readouterr().out) == THROUGH_LOGIN


def test_the_jupyter_form_takes_the_sites_form(tmp_path):
    form = JupyterJobBuilder(profile=str(_site(tmp_path)), submit=False)
    assert form.controls["tunnel"].value == "node"
    assert _tunnel_line(form.text) == TO_NODE
    other = JupyterJobBuilder(profile=str(_site(tmp_path, "", "plainsite")), submit=False)
    assert _tunnel_line(other.text) == THROUGH_LOGIN


def test_a_plain_script_loaded_into_the_form_gets_the_sites_form(tmp_path):
    form = JupyterJobBuilder(profile=str(_site(tmp_path)), submit=False)
    form.controls["tunnel"].value = "login"
    assert form.load(PLAIN)
    assert form.controls["tunnel"].value == "node"


# --- make lab --------------------------------------------------------------------------------------------------------

def _args(*argv: str) -> argparse.Namespace:
    return lab.parser().parse_args(list(argv))


def _lab_plan(tmp_path: Path, *argv: str, env: dict[str, str] = JOB_ENV) -> lab.LabPlan:
    return lab.plan(_args("--notebook-dir", str(tmp_path), *argv), env, token="abc", is_root=False, terminal=False)


def _printed_tunnel(p: lab.LabPlan) -> str:
    return next(line.strip() for line in p.lines if line.strip().startswith("ssh -N"))


def test_make_lab_with_the_profile_tunnels_to_the_node(tmp_path, monkeypatch):
    monkeypatch.delenv("HPCW_TUNNEL", raising=False)
    p = _lab_plan(tmp_path, "--profile", str(_site(tmp_path)))
    assert "--ip=127.0.0.1" in p.argv
    assert _printed_tunnel(p) == (f"ssh -N -L 8888:127.0.0.1:{p.port} -o ExitOnForwardFailure=yes -J jdoe@{LOGIN} "
                                  "jdoe@gpu017")


def test_make_lab_keeps_the_sites_form_with_a_login_host_typed(tmp_path, monkeypatch):
    """The form is the site's rule (its login nodes cannot reach compute nodes' ports), whichever login host is
    typed; the host, its port and jump host stay the ones typed."""
    monkeypatch.delenv("HPCW_TUNNEL", raising=False)
    p = _lab_plan(tmp_path, "--profile", str(_site(tmp_path)), "--login-host", "login2.adopt.example.org",
                  "--login-port", "8022")
    assert _printed_tunnel(p).endswith("-J jdoe@login2.adopt.example.org:8022 jdoe@gpu017")


@pytest.mark.parametrize("explicit, env", [(("--tunnel", "login"), {}), ((), {"HPCW_TUNNEL": "login"})])
def test_make_lab_an_explicit_form_wins_over_the_profiles(tmp_path, monkeypatch, explicit, env):
    monkeypatch.delenv("HPCW_TUNNEL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.7")
    p = _lab_plan(tmp_path, "--profile", str(_site(tmp_path)), *explicit)
    assert "--ip=10.1.0.7" in p.argv
    assert _printed_tunnel(p) == f"ssh -N -L 8888:10.1.0.7:{p.port} -o ExitOnForwardFailure=yes jdoe@{LOGIN}"


def test_make_lab_with_a_profile_without_a_form_tunnels_through_the_login_node(tmp_path, monkeypatch):
    monkeypatch.delenv("HPCW_TUNNEL", raising=False)
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.7")
    p = _lab_plan(tmp_path, "--profile", str(_site(tmp_path, "")))
    assert _printed_tunnel(p) == f"ssh -N -L 8888:10.1.0.7:{p.port} -o ExitOnForwardFailure=yes jdoe@{LOGIN}"


def test_make_lab_outside_a_job_does_not_read_the_site(tmp_path, monkeypatch):
    """On a laptop there is no tunnel to print, so a profile that cannot be read stops nothing."""
    monkeypatch.delenv("HPCW_TUNNEL", raising=False)
    broken = _site(tmp_path, 'tunnel = "adopt"')
    p = _lab_plan(tmp_path, "--profile", str(broken), env={})
    assert "--ip=127.0.0.1" in p.argv and not any("ssh" in line for line in p.lines)


def test_make_lab_in_a_job_reports_a_bad_profile_form(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HPCW_TUNNEL", raising=False)
    for name, value in JOB_ENV.items():
        monkeypatch.setenv(name, value)
    broken = _site(tmp_path, 'tunnel = "adopt"')
    assert lab.main(["--notebook-dir", str(tmp_path), "--profile", str(broken), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "login, node; got 'adopt'" in err and "Traceback" not in err
