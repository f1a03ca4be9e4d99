"""Charliecloud models: exact argv, command text, problems, JSON, and argv fidelity through bash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import bash_image_dir, need_tool, run_with_stand_ins, stand_in_env
from hpcwidgets.errors import ValidationError
from hpcwidgets.render.command import argv, command_line
from hpcwidgets.render.quote import expand, quote
from hpcwidgets.spec.charliecloud import (ChConvert, ChFromhost, ChImageBuild, ChImageImport, ChImagePull, ChRun,
                                          Dockerfile, Instruction, image_format)
from hpcwidgets.spec.common import Bind, EnvVar


def messages(model, field=None):
    return [p.message for p in model.problems() if field is None or p.field.startswith(field)]


# -- argv and command text ----------------------------------------------------------------------

def test_ch_run_argv_puts_command_after_double_dash():
    run = ChRun(binds=(Bind("$SCRATCH/data", "/data"), Bind("/etc/hosts")), cd="/work", home=True,
                unset_env=("SLURM_*",), set_env=("OMP_NUM_THREADS=8", "/etc/job.env"), write=True,
                image="./img", command=("python", "train.py", "--epochs", "3"))
    assert argv(run) == ["ch-run", "--bind=$SCRATCH/data:/data", "--bind=/etc/hosts", "--cd=/work", "--home",
                         "--unset-env=SLURM_*", "--set-env=OMP_NUM_THREADS=8", "--set-env=/etc/job.env", "--write",
                         "./img", "--", "python", "train.py", "--epochs", "3"]
    assert run.problems() == []


def test_ch_run_command_line_text():
    run = ChRun(image="$SCRATCH/images/env.sqfs", set_env=("A=b c",), command=("python", "-c", "print(1)"))
    assert command_line(run) == "ch-run '--set-env=A=b c' \"$SCRATCH/images/env.sqfs\" -- python -c 'print(1)'"


def test_ch_run_advanced_options_and_env_order():
    run = ChRun(private_tmp=True, no_passwd=True, uid=0, gid=0, join=True, storage="/var/tmp/st",
                env_no_expand=True, unset_env=("*",), image_env=True, set_env=("PATH=/usr/bin:/bin",),
                image="myenv", command=("id",))
    words = argv(run)
    assert words == ["ch-run", "--private-tmp", "--no-passwd", "--uid=0", "--gid=0", "--join", "--storage=/var/tmp/st",
                     "--env-no-expand", "--unset-env=*", "--set-env", "--set-env=PATH=/usr/bin:/bin", "myenv", "--", "id"]
    # ch-run applies --unset-env and --set-env in order: unsetting everything must come first
    assert words.index("--unset-env=*") < words.index("--set-env=PATH=/usr/bin:/bin")
    assert run.problems() == []
    assert run.env == (EnvVar("PATH", "/usr/bin:/bin"),)


def test_ch_run_without_command_has_no_separator_and_a_problem():
    run = ChRun(image="./img")
    assert argv(run) == ["ch-run", "./img"]
    assert any("after --" in m for m in messages(run, "command"))


def test_ch_image_models_argv():
    build = ChImageBuild(tag="myenv:1.0", file="Dockerfile.gpu", force=True,
                         build_args=(EnvVar("TORCH", "2.3.1"),), context="src")
    assert argv(build) == ["ch-image", "build", "--tag", "myenv:1.0", "--file", "Dockerfile.gpu", "--force",
                           "--build-arg", "TORCH=2.3.1", "src"]
    assert command_line(ChImageBuild(tag="x", storage="$SCRATCH/ch")) == 'CH_IMAGE_STORAGE="$SCRATCH/ch" ch-image build --tag x .'
    assert argv(ChImageImport(path="./rootfs", name="base")) == ["ch-image", "import", "./rootfs", "base"]
    assert argv(ChImagePull(source="almalinux:8")) == ["ch-image", "pull", "almalinux:8"]
    assert argv(ChImagePull(source="almalinux:8", dest="alma")) == ["ch-image", "pull", "almalinux:8", "alma"]


def test_ch_convert_and_fromhost_argv():
    conv = ChConvert(input_format="ch-image", output_format="squash", no_clobber=True,
                     input="myenv", output="$SCRATCH/myenv.sqfs")
    assert argv(conv) == ["ch-convert", "--in-fmt", "ch-image", "--out-fmt", "squash", "--no-clobber", "myenv", "$SCRATCH/myenv.sqfs"]
    assert conv.problems() == []
    assert argv(ChConvert(input="myenv", output="./myenv")) == ["ch-convert", "myenv", "./myenv"]
    fh = ChFromhost(nvidia=True, image="$SCRATCH/images/env")
    assert argv(fh) == ["ch-fromhost", "--nvidia", "$SCRATCH/images/env"]
    assert command_line(fh) == 'ch-fromhost --nvidia "$SCRATCH/images/env"'
    assert fh.problems() == []


@pytest.mark.parametrize("descriptor, fmt", [
    ("x.sqfs", "squash"), ("/a/b.squashfs", "squash"), ("img.tar.gz", "tar"), ("img.tgz", "tar"), ("img.tar", "tar"),
    ("/scratch/img", "dir"), ("./img", "dir"), ("$SCRATCH/img", "dir"), ("almalinux:8", "ch-image"),
    ("nvcr.io/nvidia/pytorch:24.05-py3", "ch-image"), ("x.sif", "sif"), ("docker://alpine", "registry"), ("", ""),
])
def test_image_format_follows_ch_convert_inference(descriptor, fmt):
    assert image_format(descriptor) == fmt


# -- problems -----------------------------------------------------------------------------------

def test_ch_run_problems_name_the_fix():
    run = ChRun(binds=(Bind("/data", "/data", "ro"), Bind("/a", "rel/dst"), Bind("/x:y")),
                cd="work", set_env=("1BAD=x", "", "~/env"), unset_env=("",), image="pytorch.sif", command=())
    text = " | ".join(str(p) for p in run.problems())
    assert "no read-only or read-write bind modes: it takes" in text and "remove ':ro'" in text
    assert "must be absolute" in text                      # bind destination (from Bind's own check)
    assert "containing ':'" in text
    assert "'work' must be an absolute path" in text
    assert "'1BAD' is not a valid variable name" in text
    assert "empty --set-env item" in text
    assert "write $HOME/env instead" in text
    assert "--unset-env needs a non-empty" in text
    assert "SIF file, which ch-run cannot read" in text and "apptainer build --sandbox" in text
    assert "needs a command after --" in text
    with pytest.raises(ValidationError) as info:
        run.validate()
    assert len(info.value.problems) == len(run.problems())


@pytest.mark.parametrize("image, needle", [
    ("", "an image is required"),
    ("docker://almalinux:8", "ch-image pull almalinux:8"),
    ("~/img", "write $HOME/img instead"),
])
def test_ch_run_image_problems(image, needle):
    assert any(needle in m for m in messages(ChRun(image=image, command=("true",)), "image"))


def test_ch_run_write_on_squashfs_is_a_problem():
    assert any("read-only" in m for m in messages(ChRun(image="x.sqfs", write=True, command=("true",)), "write"))
    assert ChRun(image="./x", write=True, command=("true",)).problems() == []


def test_ch_run_generic_checks_apply():
    run = ChRun(image="./x", command=("true",), uid=-1, home="yes")  # type: ignore[arg-type]
    text = " | ".join(str(p) for p in run.problems())
    assert "UID inside must be at least 0" in text
    assert "Mount home: expected true or false" in text


def test_other_models_problems():
    assert any("name the image with --tag" in m for m in messages(ChImageBuild(context="")))
    assert any("context directory is required" in m for m in messages(ChImageBuild(tag="x", context="")))
    assert any("white space" in m for m in messages(ChImageBuild(tag="my env")))
    assert any("must be an absolute path" in m for m in messages(ChImageBuild(tag="x", storage="rel")))
    assert any("without the scheme" in m for m in messages(ChImagePull(source="docker://alpine:3")))
    assert any("cannot import an Apptainer SIF" in m for m in messages(ChImageImport(path="a.sif", name="a")))
    assert messages(ChImageImport(path="", name="")) and len(messages(ChImageImport())) == 2
    assert any("cannot read Apptainer SIF" in m for m in messages(ChConvert(input="x.sif", output="./x")))
    assert any("cannot write SIF" in m for m in messages(ChConvert(input="x", output="x.sif")))
    assert any("two different formats" in m for m in messages(ChConvert(input="a.sqfs", output="b.squash")))
    assert any("ends in .tar.gz" in m for m in messages(ChConvert(input="x", output="x.tar")))
    assert any("'./out'" in m for m in messages(ChConvert(input="x.sqfs", output="out", output_format="dir")))
    assert any("must be one of" in m for m in messages(ChConvert(input="x", output="./y", output_format="zip")))
    assert any("looks like a squash image" in m for m in messages(ChFromhost(nvidia=True, image="x.sqfs")))
    assert any("choose what to inject" in m for m in messages(ChFromhost(image="./x")))


def test_dockerfile_problems():
    assert any("FROM needs a base image" in m for m in messages(Dockerfile()))
    assert any("without a scheme" in m for m in messages(Dockerfile("docker://alpine:3")))
    bad = Dockerfile("alpine:3", (Instruction("RUN", ""), Instruction("COPY", "onlyone"), Instruction("FOO", "x"),
                                  Instruction("RUN", "a \\\nb"), Instruction("ENV", "=x"),
                                  Instruction("CMD", "[python, x]"), Instruction("RUN", "a\n# c")))
    text = " | ".join(str(p) for p in bad.problems())
    assert "instructions.text: RUN needs arguments" in text
    assert "source and a destination" in text
    assert "Instruction must be one of" in text
    assert "do not end lines with a backslash" in text
    assert "ENV needs NAME=value" in text
    assert "not a JSON list of strings" in text
    assert "read as a comment" in text


def test_instruction_helpers():
    cmd = Instruction.exec_form("CMD", ["python", "train.py", "it's \"q\""])
    assert cmd.exec_args() == ("python", "train.py", "it's \"q\"")
    assert Instruction("RUN", "echo hi").exec_args() is None
    assert Instruction.env("PATH", '/opt/bin:$PATH "x" \\ \\$HOME').text == 'PATH="/opt/bin:$PATH \\"x\\" \\\\ \\$HOME"'


# -- JSON ---------------------------------------------------------------------------------------

EXAMPLES = [
    ChRun(binds=(Bind("$SCRATCH", "/mnt/0"),), cd="/mnt/0", home=True, uid=0, set_env=("A=1",), image="./x",
          command=("python", "-c", "import torch")),
    ChImageBuild(tag="env", file="Dockerfile", force=True, build_args=(EnvVar("V", "1"),), storage="/st"),
    ChImagePull(source="almalinux:8", dest="alma"),
    ChImageImport(path="./rootfs", name="base"),
    ChConvert(input="env", output="$SCRATCH/env.sqfs", output_format="squash"),
    ChFromhost(nvidia=True, paths=("/usr/lib/libfoo.so",), image="./env"),
    Dockerfile("almalinux:8", (Instruction("RUN", "dnf -y install python3.11\n&& dnf clean all"),
                               Instruction.env("PATH", "/opt/venv/bin:$PATH"),
                               Instruction.exec_form("CMD", ["python3"]))),
]


@pytest.mark.parametrize("model", EXAMPLES, ids=lambda m: m.kind)
def test_json_round_trip_identity(model):
    text = model.to_json()
    assert json.loads(text)["kind"] == model.kind
    back = type(model).from_json(text)
    assert back == model
    assert back.to_json() == text
    assert model.problems() == []


words = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
from strategies import names  # noqa: E402


@st.composite
def ch_runs(draw):
    return ChRun(
        binds=tuple(draw(st.lists(st.builds(Bind, words, st.sampled_from(["", "/data", "/mnt/1"])), max_size=2))),
        cd=draw(st.sampled_from(["", "/work", "$SCRATCH"])),
        home=draw(st.booleans()), write=draw(st.booleans()), uid=draw(st.none() | st.integers(0, 5)),
        unset_env=tuple(draw(st.lists(words, max_size=2))),
        set_env=tuple(draw(st.lists(st.builds(lambda n, v: f"{n}={v}", names, words), max_size=3))),
        image=draw(words), command=tuple(draw(st.lists(words, max_size=4))))


@given(ch_runs())
def test_ch_run_json_round_trip_property(run):
    assert ChRun.from_json(run.to_json()) == run
    assert ChRun.from_dict(run.to_dict()).to_dict() == run.to_dict()


# -- argv fidelity through bash ------------------------------------------------------------------

HOSTILE = ["it's", 'say "hi"', "$(id)", "`id`", "a; rm -rf /", "two\nlines", "  spaces  ", "ünïcødé ✓", "*", "~",
           "$SCRATCH/out", "${SCRATCH}x", "\\$SCRATCH", "", "-", "--", "a|b&c>d", "tab\there"]
ENV = {"SCRATCH": "/scratch/u 1"}


def _recorded(models, tmp_path):
    script = "\n".join(command_line(m) for m in models)
    return run_with_stand_ins(script, tmp_path, ["ch-run", "ch-image", "ch-convert", "ch-fromhost"], env=ENV)


def _expected(model, tmp_path=None):
    """The argv ``model``'s program receives: its words as bash expands them in :func:`_recorded`'s environment (a
    value such as ``$HOME`` or ``$PATH``, which hypothesis may draw, expands to the stand-ins' run's)."""
    env = stand_in_env(tmp_path, ENV) if tmp_path is not None else ENV
    return [expand(w, env) for w in argv(model)[1:]]


def test_hostile_values_arrive_intact(tmp_path):
    run = ChRun(binds=(Bind("$SCRATCH/d a t a", "/data"),), cd="/mnt/0", set_env=tuple(f"V={h}" for h in HOSTILE),
                unset_env=("SLURM_*",), image="$SCRATCH/img.sqfs", command=("printf", *HOSTILE))
    build = ChImageBuild(tag="env", file="$SCRATCH/Docker file", build_args=(EnvVar("X", "$(id); `id`"),),
                         context="$SCRATCH/ctx")
    calls = _recorded([run, build], tmp_path)
    assert [c["prog"] for c in calls] == ["ch-run", "ch-image"]
    assert calls[0]["argv"] == _expected(run)
    assert calls[0]["argv"][calls[0]["argv"].index("--") + 1:] == ["printf", *[expand(h, ENV) for h in HOSTILE]]
    assert "--bind=/scratch/u 1/d a t a:/data" in calls[0]["argv"]
    assert calls[1]["argv"] == _expected(build)
    assert "X=$(id); `id`" in calls[1]["argv"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ch_runs(), st.lists(words, max_size=3))
@example(ChRun(image="$HOME"), [])  # variables the stand-ins' bash sets: expected as it expands them
@example(ChRun(image="$PATH/img"), ["$HPCW_ARGV_LOG"])
def test_argv_fidelity_property(run, extra):
    models = [run, ChConvert(input=run.image or "x", output=f"./{extra[0] if extra else 'y'}"),
              ChFromhost(nvidia=True, paths=tuple(extra), image="./img")]
    with tempfile.TemporaryDirectory() as tmp:
        calls = _recorded(models, Path(tmp))
    assert [c["argv"] for c in calls] == [_expected(m, Path(tmp)) for m in models]


# -- a real ch-run --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bash_image(tmp_path_factory):
    """A minimal image directory holding bash and its libraries (no network, ~2 MB)."""
    return bash_image_dir(tmp_path_factory.mktemp("img") / "bash-image")


def _real_run(run, tmp_path, data):
    env = {"PATH": "/usr/bin:/bin", "USER": os.environ.get("USER", "root"), "HOME": str(tmp_path), "DATA": str(data)}
    proc = subprocess.run(["bash", "-c", command_line(run)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# the inner script's dollars are literal (\$): they must reach the container's bash unexpanded
SCRIPT = 'printf "<%s>" "\\$PWD" "\\$V" "$(< f.txt)" "$@"'


@pytest.mark.real
def test_real_ch_run_delivers_argv_env_and_binds(bash_image, tmp_path):
    data = tmp_path / "in put"
    data.mkdir()
    (data / "f.txt").write_text("hello from host")
    hostile = ["it's", "$(id)", "`id`", "a; b", "two\nlines", "ünï ✓", "*", "$DATA"]
    run = ChRun(binds=(Bind("$DATA", "/data"),), cd="/data", env_no_expand=True, set_env=("V=$(id):\\$HOME",),
                image=str(bash_image), command=("/bin/bash", "-c", SCRIPT, "argv0", *hostile))
    assert run.problems() == []
    expected = ["/data", "$(id):$HOME", "hello from host", *hostile[:-1], str(data)]
    assert _real_run(run, tmp_path, data) == "".join(f"<{s}>" for s in expected)


@pytest.mark.real
def test_real_ch_run_expands_set_env_items_without_env_no_expand(bash_image, tmp_path):
    """The reason for the env_no_expand problem: ch-run drops a '$…' item it cannot resolve."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "f.txt").write_text("x")
    run = ChRun(binds=(Bind("$DATA", "/data"),), cd="/data", set_env=("V=a:$(id):b",), image=str(bash_image),
                command=("/bin/bash", "-c", SCRIPT, "argv0"))
    assert any("--env-no-expand" in m for m in messages(run, "set_env"))
    assert _real_run(run, tmp_path, data) == "</data><a:b><x>"


def test_binds_with_commas_stay_ch_run_binds():
    """Apptainer needs --mount for such paths; ch-run takes them as they are."""
    run = ChRun(binds=(Bind("/data/a,b", "/mnt/0"),), image="./x", command=("ls",))
    assert argv(run)[1] == "--bind=/data/a,b:/mnt/0"
    assert run.problems() == []


def test_long_flags_are_rendered_and_short_ones_are_known():
    for field, long, short in [("binds", "--bind", "-b"), ("cd", "--cd", "-c"), ("write", "--write", "-w")]:
        info = ChRun.field_spec(field).info
        assert (info.flag, info.short) == (long, short)
    assert quote("--") == "--"


def test_rendered_commands_pass_shellcheck(tmp_path):
    checker = Path(sys.executable).parent / "shellcheck"
    if not checker.exists():
        checker = Path(need_tool("shellcheck", "checks rendered scripts"))
    commands = [command_line(m) for m in EXAMPLES if not isinstance(m, Dockerfile)]
    commands.append(command_line(ChRun(set_env=tuple(f"V={h}" for h in HOSTILE), image="$SCRATCH/x.sqfs",
                                       command=("echo", *HOSTILE))))
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/bash\nset -euo pipefail\n" + "\n".join(commands) + "\n")
    # severity warning: SC2016 (info) would only say that the literal '$(id)' is meant literally
    proc = subprocess.run([str(checker), "-s", "bash", "-S", "warning", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_a_tilde_read_from_a_script_still_names_home_after_an_equals_sign(tmp_path):
    # bash expands ~ only at the start of a word: -b ~/data:/mnt/0 does, --bind=~/data:/mnt/0 would not
    from hpcwidgets.parse import parse_script
    from hpcwidgets.parse.layout import without_layout
    from hpcwidgets.render import render
    script = "#!/bin/bash\n#SBATCH --time=10\nch-run -b ~/data:/mnt/0 ./img -- python /mnt/0/t.py\n"
    assert render(parse_script(script)) == script  # unedited, the script's own line stays
    again = render(without_layout(parse_script(script)))  # ~/ is read as $HOME/: a fixed point of the renderer
    line = again.splitlines()[-1]
    assert line == 'ch-run "--bind=$HOME/data:/mnt/0" ./img -- python /mnt/0/t.py'
    assert render(without_layout(parse_script(again))) == again
    shown = subprocess.run(["bash", "-c", "printf '%s\\n' " + line.split()[1]], capture_output=True, text=True,
                           env={"HOME": "/home/me", "PATH": "/usr/bin:/bin"}).stdout
    assert shown == "--bind=/home/me/data:/mnt/0\n"
