"""The printed SSH tunnel at sites whose login node needs another ssh port (ULHPC: 8022) or a jump host."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hpcwidgets.cli import main as cli_main
from hpcwidgets.errors import HpcWidgetsError
from hpcwidgets.parse.jupyter import parse_jupyter_job
from hpcwidgets.profiles import SHIPPED_DIR, load_profile
from hpcwidgets.render.jupyter import render_jupyter_job, tunnel_command
from hpcwidgets.run import lab
from hpcwidgets.spec.jupyter import JupyterJob

LOGIN = "access-iris.uni.lu"
GENERIC_LOGIN = 'login_host = "login.cluster.example.edu"'


def _profile(tmp_path: Path, keys: str, name: str = "ulhpc") -> Path:
    """The shipped generic profile as ``name``, its login host replaced by ``LOGIN`` followed by ``keys``."""
    text = (SHIPPED_DIR / "generic.toml").read_text()
    assert GENERIC_LOGIN in text
    text = text.replace('name = "generic"', f'name = "{name}"', 1)
    text = text.replace(GENERIC_LOGIN, f'login_host = "{LOGIN}"\n{keys}', 1)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _tunnel_line(script: str) -> str:
    return next(line for line in script.splitlines() if line.startswith("jl_tunnel="))


# -- profile keys ---------------------------------------------------------------------------------

def test_profile_keys_load(tmp_path):
    profile = load_profile(_profile(tmp_path, 'login_port = 8022\njump_host = "alice@gw.example.org:2222"'))
    assert profile.login_port == 8022
    assert profile.jump_host == "alice@gw.example.org:2222"
    assert JupyterJob.login_fields(profile) == {"login_host": LOGIN, "login_port": 8022,
                                                "jump_host": "alice@gw.example.org:2222"}


@pytest.mark.parametrize("keys, field, fix", [
    ("login_port = 70000", "login_port", "at most 65535"),
    ("login_port = 0", "login_port", "at least 1"),
    ('jump_host = "gw.example.org; rm -rf $HOME"', "jump_host", "[user@]host[:port]"),
    ('jump_host = "gw one.example.org"', "jump_host", "no spaces"),
    ('jump_host = "gw.example.org:99999"', "jump_host", "from 1 to 65535"),
])
def test_profile_refuses_a_bad_port_or_jump_host(tmp_path, keys, field, fix):
    with pytest.raises(HpcWidgetsError) as err:
        load_profile(_profile(tmp_path, keys))
    assert field in str(err.value) and fix in str(err.value)


def test_profile_login_host_with_a_port_names_login_port(tmp_path):
    path = _profile(tmp_path, "")
    path.write_text(path.read_text().replace(f'login_host = "{LOGIN}"', f'login_host = "{LOGIN}:8022"'))
    with pytest.raises(HpcWidgetsError, match="login_port = 8022"):
        load_profile(path)


def test_job_fields_validate_port_and_jump_host():
    assert JupyterJob(login_host=LOGIN, login_port=8022, jump_host="gw1,bob@gw2:2200").problems() == []
    problems = {p.field: p.message for p in JupyterJob(login_host=LOGIN, login_port=65536,
                                                       jump_host="gw`id`").problems()}
    assert "65535" in problems["login_port"]
    assert "ssh -J" in problems["jump_host"]
    host = {p.field: p.message for p in JupyterJob(login_host=f"{LOGIN}:8022").problems()}
    assert "--login-port 8022" in host["login_host"]


# -- the rendered tunnel and its round trip -------------------------------------------------------

@pytest.mark.parametrize("fields, expected", [
    ({}, f'jl_tunnel="ssh -N -L 8888:$jl_host:$jl_port -o ExitOnForwardFailure=yes $USER@{LOGIN}"'),
    ({"login_port": 8022}, f'jl_tunnel="ssh -N -L 8888:$jl_host:$jl_port -o ExitOnForwardFailure=yes -p 8022 $USER@{LOGIN}"'),
    ({"jump_host": "gw"}, f'jl_tunnel="ssh -N -L 8888:$jl_host:$jl_port -o ExitOnForwardFailure=yes -J gw $USER@{LOGIN}"'),
    ({"login_port": 8022, "jump_host": "alice@gw.example.org:2222"},
     f'jl_tunnel="ssh -N -L 8888:$jl_host:$jl_port -o ExitOnForwardFailure=yes -p 8022 -J alice@gw.example.org:2222 $USER@{LOGIN}"'),
])
def test_rendered_tunnel_and_round_trip(fields, expected):
    job = JupyterJob(login_host=LOGIN, **fields)
    script = render_jupyter_job(job)
    assert _tunnel_line(script) == expected
    back = parse_jupyter_job(script)
    assert (back.login_host, back.login_port, back.jump_host) == (LOGIN, fields.get("login_port"),
                                                                  fields.get("jump_host", ""))
    assert render_jupyter_job(back) == script


def test_tunnel_command_adds_only_what_is_set():
    assert tunnel_command("n1", 23456, "login", "jdoe") == "ssh -N -L 8888:n1:23456 -o ExitOnForwardFailure=yes jdoe@login"
    assert tunnel_command("n1", 23456, "login", "jdoe", login_port=8022, jump_host="gw") == \
        "ssh -N -L 8888:n1:23456 -o ExitOnForwardFailure=yes -p 8022 -J gw jdoe@login"


def test_jupyter_job_cli_takes_port_and_jump_host_from_the_profile(capsys, tmp_path):
    path = _profile(tmp_path, 'login_port = 8022\njump_host = "gw.example.org"')
    rc = cli_main(["jupyter-job", "--profile", str(path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert f'jl_tunnel="ssh -N -L 8888:$jl_host:$jl_port -o ExitOnForwardFailure=yes -p 8022 -J gw.example.org $USER@{LOGIN}"' in out


def test_jupyter_job_cli_refuses_a_host_with_a_port(capsys):
    rc = cli_main(["jupyter-job", "--login-host", f"{LOGIN}:8022"])
    _, err = capsys.readouterr()
    assert rc != 0 and "login_port" in err and "Traceback" not in err


# -- make lab -------------------------------------------------------------------------------------

def _args(*argv: str) -> argparse.Namespace:
    return lab.parser().parse_args(list(argv))


ENV = {"SLURM_JOB_ID": "1", "SLURMD_NODENAME": "n1", "USER": "jdoe"}


def test_make_lab_uses_the_profiles_port_and_jump_host(tmp_path, monkeypatch):
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.1")
    path = _profile(tmp_path, 'login_port = 8022\njump_host = "gw.example.org"')
    p = lab.plan(_args("--notebook-dir", str(tmp_path), "--profile", str(path)), ENV, token="abc", is_root=False)
    tunnel = next(line.strip() for line in p.lines if line.strip().startswith("ssh "))
    assert tunnel.endswith(f" -p 8022 -J gw.example.org jdoe@{LOGIN}")


def test_make_lab_login_options_replace_the_profiles_way_in(tmp_path, monkeypatch):
    monkeypatch.setattr(lab.netcheck, "address", lambda node: "10.1.0.1")
    path = _profile(tmp_path, 'login_port = 8022\njump_host = "gw.example.org"')
    p = lab.plan(_args("--notebook-dir", str(tmp_path), "--profile", str(path), "--login-host", "other.org",
                       "--login-port", "2222"), ENV, token="abc", is_root=False)
    tunnel = next(line.strip() for line in p.lines if line.strip().startswith("ssh "))
    assert tunnel.endswith(" -p 2222 jdoe@other.org") and "-J" not in tunnel


@pytest.mark.parametrize("argv, fix", [
    (("--login-port", "8022"), "--login-host"),
    (("--login-host", "login.org", "--login-port", "70000"), "1 to 65535"),
    (("--login-host", "login.org", "--jump-host", "gw;id"), "ssh -J"),
])
def test_make_lab_refuses_bad_login_options(tmp_path, argv, fix):
    with pytest.raises(lab.LabError, match=fix.replace("-", r"\-")):
        lab.plan(_args("--notebook-dir", str(tmp_path), *argv), ENV, token="abc", is_root=False)


def test_every_way_to_a_jupyter_job_takes_the_profiles_port_and_jump_host(tmp_path):
    """The example, the form and jupyter-job --from a plain script all print the site's way in."""
    from hpcwidgets.cli import main
    from hpcwidgets.examples import examples
    from hpcwidgets.profiles import load_profile
    from hpcwidgets.widgets import JupyterJobBuilder
    toml = tmp_path / "ulhpc.toml"
    toml.write_text('name = "ulhpc-like"\nlogin_host = "access.example.org"\nlogin_port = 8022\n'
                    'jump_host = "gw.example.org"\n[[partitions]]\nname = "batch"\nis_default = true\n'
                    'max_time = "2-00:00:00"\ncpus_per_node = 28\nmem_per_node = "112G"\n')
    way_in = "-p 8022 -J gw.example.org $USER@access.example.org"
    assert way_in in examples(load_profile(str(toml)))["jupyter"].render()
    assert way_in in JupyterJobBuilder(profile=str(toml), submit=False).text
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/bash\n#SBATCH --time=1:00:00\njupyter lab --no-browser\n")
    out = tmp_path / "job.sbatch"
    assert main(["jupyter-job", "--from", str(plain), "--profile", str(toml), "-o", str(out)]) == 0
    assert way_in in out.read_text()
