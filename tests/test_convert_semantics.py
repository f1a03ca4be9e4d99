"""Apptainer -> Charliecloud translation checked against what the runtimes really do.

The unit tests pin the translation of Apptainer defaults that ch-run does not share (starting
directory, HOME under --cleanenv, bare image names, options without an equivalent). The tests at
the end run the translated commands with a real ``ch-run`` in the trainer image (skipped where it is
missing, failing under HPCW_REQUIRE_REAL=1): a program started with a relative path from the current
directory, HOME after --cleanenv, and hostile values reaching the program unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import need, need_tool
from hpcwidgets.render.command import argv, command_line
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.charliecloud import ChFromhost, ChRun
from hpcwidgets.spec.common import Bind, EnvVar
from hpcwidgets.spec.convert import Conversion, to_apptainer, to_charliecloud


def noted(conv: Conversion, *needles: str) -> bool:
    return any(all(n in note for n in needles) for note in conv.notes)


# --- the starting directory -----------------------------------------------------------------------

def test_apptainer_default_directory_becomes_cd_pwd():
    # apptainer exec img python train.py runs train.py from the current directory; ch-run starts in /
    conv = to_charliecloud(ApptainerRun(image="/images/env", command=("python", "train.py")))
    assert conv.result.cd == "$PWD"
    assert argv(conv.result)[1:3] == ["--cd=$PWD", "--home"]
    assert '"--cd=$PWD"' in command_line(conv.result)  # expands on the host, like any $NAME
    assert conv.result.problems() == []
    assert noted(conv, "ch-run starts in /", "names train.py relative to it", "--cd=$PWD", "/mnt/9")


@pytest.mark.parametrize("command, relative", [
    (("bash", "train.sh"), True),
    (("runners/training_singularity.sh",), True),
    (("./run",), True),
    (("python", "main.py", "--config=configs/a.yaml"), True),
    (("python", "-m", "pkg", "--out", "results/"), True),
    (("python", "/mnt/0/train.py", "--output", "/mnt/1", "--lr", "0.1"), False),  # absolute paths only
    (("python", "-c", "import torch"), False),
    (("nvidia-smi",), False),
    (("cat", "$SCRATCH/x.txt"), False),
])
def test_cd_pwd_where_the_command_uses_the_current_directory(command, relative):
    conv = to_charliecloud(ApptainerRun(image="/images/env", command=command))
    assert conv.result.cd == ("$PWD" if relative else "")
    # either way the difference is explained
    assert noted(conv, "--cd=$PWD", "ch-run starts")


def test_shell_starts_in_the_current_directory():
    conv = to_charliecloud(ApptainerRun(action="shell", image="/images/env"))
    assert conv.result.cd == "$PWD" and noted(conv, "a shell starts there")


@pytest.mark.parametrize("changes, cd", [
    ({"cwd": "/work"}, "/work"),          # an explicit --pwd wins
    ({"contain": True}, ""),              # --contain does not mount the current directory
    ({"containall": True}, ""),
])
def test_cd_pwd_only_where_apptainer_uses_the_current_directory(changes, cd):
    conv = to_charliecloud(ApptainerRun(image="/images/env", command=("python", "train.py"), **changes))
    assert conv.result.cd == cd
    assert not noted(conv, "--cd=$PWD")


@pytest.mark.parametrize("cd", ["$PWD", "${PWD}"])
def test_cd_pwd_maps_back_to_apptainer_default(cd):
    conv = to_apptainer(ChRun(cd=cd, image="/images/env", command=("true",)))
    assert conv.result.cwd == "" and "--pwd" not in argv(conv.result)
    assert noted(conv, "needs no --pwd")


def test_ch_run_without_cd_notes_that_it_starts_in_root():
    conv = to_apptainer(ChRun(image="/images/env", command=("true",)))
    assert conv.result.cwd == ""
    assert noted(conv, "starts the program in /", "--pwd /")


# --- HOME and the environment ---------------------------------------------------------------------

def test_cleanenv_sets_home_again_after_unset_env():
    conv = to_charliecloud(ApptainerRun(cleanenv=True, env=(EnvVar("HOME", "/override"),), image="/images/env",
                                        command=("env",)))
    words = argv(conv.result)
    # ch-run applies --unset-env and --set-env in the order written: HOME must come after '*'
    assert words.index("--unset-env=*") < words.index("--set-env=HOME=/home/$USER") < \
        words.index("--set-env=HOME=/override")  # a HOME the user set still wins
    assert noted(conv, "--unset-env='*'", "HOME (set again", "TERM", "PATH")


def test_containall_without_home_mount_does_not_invent_home():
    conv = to_charliecloud(ApptainerRun(containall=True, image="/images/env", command=("env",)))
    assert conv.result.unset_env == ("*",) and not conv.result.home
    assert not any(item.startswith("HOME=") for item in conv.result.set_env)
    assert noted(conv, "--containall", "HOME, TERM")


def test_home_set_again_is_not_written_back_as_env():
    ch = ChRun(home=True, unset_env=("*",), set_env=("HOME=/home/$USER", "A=1"), image="/images/env",
               command=("env",))
    res = to_apptainer(ch).result
    assert res.cleanenv and res.env == (EnvVar("A", "1"),)
    # without --unset-env='*' the same item is a real setting and is kept
    res = to_apptainer(ChRun(home=True, set_env=("HOME=/home/$USER",), image="/images/env", command=("env",))).result
    assert res.env == (EnvVar("HOME", "/home/$USER"),)


def test_round_trip_of_cleanenv_is_exact():
    run = ApptainerRun(cleanenv=True, env=(EnvVar("A", "1"),), image="/images/env", command=("env",))
    back = to_apptainer(to_charliecloud(run).result).result
    assert (back.cleanenv, back.env, back.cwd, back.no_home) == (True, run.env, "", False)


def test_private_tmp_with_home_keeps_home_under_contain():
    conv = to_apptainer(ChRun(home=True, private_tmp=True, image="/images/env", command=("id",)))
    res = conv.result
    # --contain alone gives an empty $HOME; an explicit --home is still mounted
    assert res.contain and res.home == "$HOME" and not res.no_home
    assert argv(res)[:5] == ["apptainer", "exec", "--contain", "--home", "$HOME"]
    assert res.problems() == []
    assert noted(conv, "--private-tmp becomes --contain", "--home $HOME")
    plain = to_apptainer(ChRun(private_tmp=True, image="/images/env", command=("id",)))
    assert plain.result.home == "" and plain.result.no_home and noted(plain, "an empty $HOME")


# --- images ---------------------------------------------------------------------------------------

def test_bare_image_name_is_a_path_for_apptainer():
    # apptainer exec --nv myimg …: myimg is a sandbox directory (or file) in the current directory,
    # not an image in ch-image storage
    conv = to_charliecloud(ApptainerRun(nv=True, image="myimg", command=("python",)))
    assert conv.steps == (ChFromhost(nvidia=True, image="./myimg"),)
    assert conv.result.image == "./myimg"
    assert to_charliecloud(ApptainerRun(image="myimg", command=("python",))).result.image == "./myimg"


def test_image_in_a_variable_is_noted():
    conv = to_charliecloud(ApptainerRun(image="$SIF", command=("python",)))
    assert conv.result.image == "$SIF"
    assert noted(conv, "$SIF is taken to be an image directory", "apptainer build --sandbox")
    assert not noted(to_charliecloud(ApptainerRun(image="$SCRATCH/env", command=("x",))), "taken to be")


# --- options without an equivalent ----------------------------------------------------------------

def test_options_without_equivalent_are_noted_not_dropped_silently():
    conv = to_charliecloud(ApptainerRun(extra=("--workdir", "/scratch/w", "--hostname", "node"), image="/images/env",
                                        command=("true",)))
    assert noted(conv, "--workdir /scratch/w --hostname node")
    assert not any("workdir" in w for w in argv(conv.result))


def test_writable_tmpfs_and_fakeroot_notes_name_the_differences():
    conv = to_charliecloud(ApptainerRun(writable_tmpfs=True, fakeroot=True, image="/images/env", command=("true",)))
    assert noted(conv, "--write-fake", "0.31")
    assert noted(conv, "--uid=0 --gid=0", "/root")


# --- real ch-run ----------------------------------------------------------------------------------

TRAINER = Path("/var/tmp/hpcw-images/trainer")
PRINT = "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ), 'cwd': os.getcwd()}))"


@pytest.fixture
def image() -> str:
    need_tool("ch-run")
    need(os.path.lexists(TRAINER / "usr/bin/python3"), f"the trainer image {TRAINER} is missing (make images)")
    return str(TRAINER)


def run_bash(text: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": f"{Path(shutil.which('ch-run') or '/usr/bin/ch-run').parent}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"), "USER": os.environ.get("USER") or "root"}
    return subprocess.run(["bash", "-c", text], cwd=cwd, env={**base, **env}, capture_output=True, text=True,
                          timeout=120)


def test_real_ch_run_starts_where_apptainer_would(image, tmp_path):
    # tmp_path is under /tmp, which ch-run shares with the host: visible at the same path inside
    (tmp_path / "train.py").write_text("import os; print('trained in', os.getcwd())\n")
    conv = to_charliecloud(ApptainerRun(image=image, command=("python3", "train.py")))
    proc = run_bash(command_line(conv.result), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"trained in {tmp_path}"


def test_real_ch_run_cleanenv_keeps_home_like_apptainer(image, tmp_path):
    conv = to_charliecloud(ApptainerRun(cleanenv=True, cwd="/", image=image, command=("python3", "-c", PRINT)))
    proc = run_bash(command_line(conv.result), tmp_path, SECRET_TOKEN="host-only")
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)["env"]
    user = os.environ.get("USER") or "root"
    assert env.get("HOME") == f"/home/{user}"
    assert "SECRET_TOKEN" not in env  # the host environment is still removed


HOSTILE = ["a b", "it's", 'say "hi"', "$(touch PWNED)", "`touch PWNED`", "*", "x;y", "a\nb", "100%", "a,b:c", "-n"]


def test_real_ch_run_hostile_values_survive_translation(image, tmp_path):
    data = tmp_path / "in dir, it's"
    data.mkdir()
    (data / "f").write_text("x")
    env = tuple(EnvVar(f"V{i}", v) for i, v in enumerate(HOSTILE)) + (
        EnvVar("FROM_HOST", "$SCRATCH/x"), EnvVar("LITERAL", "\\$HOME:keep"))
    run = ApptainerRun(binds=(Bind(str(data), "/mnt/3"),), cwd="/mnt/3", env=env, image=image,
                       command=("python3", "-c", PRINT, *HOSTILE, "$SCRATCH"))
    conv = to_charliecloud(run)
    assert conv.result.problems() == []
    proc = run_bash(command_line(conv.result), tmp_path, SCRATCH="/scr")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["argv"] == [*HOSTILE, "/scr"]
    assert out["cwd"] == "/mnt/3"
    assert {k: out["env"].get(k) for k in [f"V{i}" for i in range(len(HOSTILE))]} == \
        {f"V{i}": v for i, v in enumerate(HOSTILE)}
    assert out["env"]["FROM_HOST"] == "/scr/x" and out["env"]["LITERAL"] == "$HOME:keep"
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
