"""Apptainer <-> Charliecloud translation: mapped fields, extra steps and notes, both ways."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcwidgets.render.command import argv, command_line
from hpcwidgets.spec.apptainer import ApptainerBuild, ApptainerRun
from hpcwidgets.spec.charliecloud import ChConvert, ChFromhost, ChImagePull, ChRun
from hpcwidgets.spec.common import Bind, EnvVar
from hpcwidgets.spec.convert import Conversion, to_apptainer, to_charliecloud


def noted(conv: Conversion, *needles: str) -> bool:
    return any(all(n in note for n in needles) for note in conv.notes)


def test_plain_exec_maps_binds_env_cwd_and_command():
    run = ApptainerRun(binds=(Bind("$SCRATCH/data", "/data"),), cwd="/data", env=(EnvVar("OMP_NUM_THREADS", "8"),),
                       image="/images/env", command=("python", "train.py", "--lr", "0.1"))
    conv = to_charliecloud(run)
    assert conv.steps == ()
    assert argv(conv.result) == ["ch-run", "--bind=$SCRATCH/data:/data", "--cd=/data", "--home",
                                 "--set-env=OMP_NUM_THREADS=8", "/images/env", "--", "python", "train.py", "--lr", "0.1"]
    assert conv.result.problems() == []
    assert noted(conv, "mounts $HOME by default", "--home")
    assert noted(conv, "/data must already exist in the image")
    assert conv.commands == (conv.result,)


def test_sif_with_nv_cleanenv_and_ro_bind():
    run = ApptainerRun(nv=True, cleanenv=True, binds=(Bind("/scratch/in", "/in", "ro"),),
                       image="$SCRATCH/pytorch.sif", command=("python", "-V"))
    conv = to_charliecloud(run)
    build, fromhost = conv.steps
    assert build == ApptainerBuild(sandbox=True, output="$SCRATCH/pytorch", source="$SCRATCH/pytorch.sif")
    assert fromhost == ChFromhost(nvidia=True, image="$SCRATCH/pytorch")
    res = conv.result
    assert isinstance(res, ChRun) and res.image == "$SCRATCH/pytorch"
    assert res.binds == (Bind("/scratch/in", "/in"),) and res.unset_env == ("*",)
    assert all(m.problems() == [] for m in conv.commands)
    assert noted(conv, "cannot read SIF")
    assert noted(conv, "no --nv", "ch-fromhost --nvidia")
    assert noted(conv, "no read-only binds", "/scratch/in")
    assert noted(conv, "--unset-env='*'", "--cleanenv", "PATH")
    # --home sets HOME before --unset-env removes it, so HOME is set again after '*'
    assert res.set_env == ("HOME=/home/$USER",)
    assert argv(res)[:5] == ["ch-run", "--bind=/scratch/in:/in", "--home", "--unset-env=*",
                             "--set-env=HOME=/home/$USER"]
    assert "'--unset-env=*'" in command_line(res)


def test_docker_source_is_pulled_and_converted_for_gpus():
    conv = to_charliecloud(ApptainerRun(image="docker://pytorch/pytorch:2.3.1", command=("python",)))
    assert conv.steps == (ChImagePull(source="pytorch/pytorch:2.3.1"),)
    assert conv.result.image == "pytorch/pytorch:2.3.1"
    gpu = to_charliecloud(ApptainerRun(nv=True, image="docker://pytorch/pytorch:2.3.1", command=("python",)),
                          image_dir="$SCRATCH/pt")
    assert gpu.steps == (ChImagePull(source="pytorch/pytorch:2.3.1"),
                         ChConvert(input_format="ch-image", output_format="dir", input="pytorch/pytorch:2.3.1",
                                   output="$SCRATCH/pt"),
                         ChFromhost(nvidia=True, image="$SCRATCH/pt"))
    assert gpu.result.image == "$SCRATCH/pt"
    sqfs = to_charliecloud(ApptainerRun(nv=True, image="/img/env.sqfs", command=("x",)))
    assert [type(s) for s in sqfs.steps] == [ChConvert, ChFromhost] and sqfs.result.image == "/img/env"


@pytest.mark.parametrize("changes, needles", [
    ({"containall": True}, ("--containall", "PID and IPC")),
    ({"contain": True}, ("--contain", "--private-tmp")),
    ({"writable_tmpfs": True}, ("no in-memory writable layer",)),
    ({"fakeroot": True}, ("--uid=0 --gid=0",)),
    ({"no_home": True}, ("--no-home is ch-run's default",)),
    ({"home": "/scratch/me:/home/me"}, ("/scratch/me", "HOME=/home/me")),
    ({"rocm": True}, ("no --rocm",)),
    ({"overlay": ("o.img",)}, ("no overlays",)),
    ({"env_file": "job.env"}, ("plain NAME=value lines",)),
    ({"action": "run"}, ("/.singularity.d/runscript",)),
    ({"action": "shell", "command": ()}, ("/bin/sh",)),
    ({"image": "oras://reg/x:1"}, ("cannot pull oras://",)),
])
def test_features_without_equivalent_are_noted(changes, needles):
    run = dataclasses.replace(ApptainerRun(image="./img", command=("python",)), **changes)
    conv = to_charliecloud(run)
    assert noted(conv, *needles), conv.notes


def test_option_details_to_charliecloud():
    res = to_charliecloud(ApptainerRun(containall=True, fakeroot=True, writable=True, home="/scratch/me:/home/me",
                                       env=(EnvVar("LIT", "\\$HOME:x"),), env_file="job.env",
                                       image="./img", command=("id",))).result
    assert (res.private_tmp, res.uid, res.gid, res.write, res.home) == (True, 0, 0, True, False)
    assert res.unset_env == ("*",) and res.env_no_expand
    assert res.set_env == ("HOME=/home/me", "LIT=\\$HOME:x", "job.env")
    assert Bind("/scratch/me", "/home/me") in res.binds
    assert res.problems() == []
    shell = to_charliecloud(ApptainerRun(action="shell", image="./img")).result
    assert shell.command == ("/bin/sh",)


def test_to_apptainer_maps_back():
    ch = ChRun(binds=(Bind("$SCRATCH/data", "/data"),), cd="/data", home=True,
               set_env=("A=1", "/etc/job.env"), unset_env=("*",), uid=0, write=True,
               image="/images/env", command=("python", "train.py"))
    conv = to_apptainer(ch, nvidia=True)
    res = conv.result
    assert isinstance(res, ApptainerRun)
    assert argv(res) == ["apptainer", "exec", "--cleanenv", "--nv", "--bind", "$SCRATCH/data:/data", "--pwd", "/data",
                         "--writable", "--fakeroot", "--env", "A=1", "--env-file", "/etc/job.env", "/images/env",
                         "python", "train.py"]
    assert res.problems() == []
    assert conv.steps == ()
    assert noted(conv, "--cleanenv") and noted(conv, "--fakeroot") and noted(conv, "--nv")


def test_to_apptainer_storage_image_and_notes():
    conv = to_apptainer(ChRun(image="pytorch:2.3", private_tmp=True, no_passwd=True, join=True, image_env=True,
                              env_no_expand=True, unset_env=("SLURM_*",), uid=1000,
                              set_env=("a.env", "b.env"), command=("python",)))
    assert conv.steps == (ChConvert(input_format="ch-image", output_format="dir", input="pytorch:2.3",
                                    output="./pytorch_2.3"),)
    res = conv.result
    assert res.image == "./pytorch_2.3" and res.contain and res.no_home and not res.cleanenv
    assert res.env_file == "a.env"
    for needles in [("cannot read ch-image storage",), ("merge b.env",), ("--no-home",), ("--contain",),
                    ("--no-passwd",), ("--join",), ("/ch/environment",), ("--env-no-expand",),
                    ("--unset-env=SLURM_*",), ("another user ID",)]:
        assert noted(conv, *needles), needles
    assert noted(to_apptainer(ChRun(image="x.sqfs", command=("a",))), "SquashFS")


from strategies import names  # noqa: E402
paths = st.from_regex(r"/[a-z]{1,6}(/[a-z0-9]{1,6}){0,2}", fullmatch=True)
words = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=8)


@given(binds=st.lists(st.builds(Bind, paths, st.sampled_from(["", "/data", "/mnt/0"])), max_size=3),
       env=st.lists(st.builds(EnvVar, names, st.from_regex(r"[a-z0-9/ ]{0,6}", fullmatch=True)), max_size=3),
       cwd=st.sampled_from(["", "/work"]), command=st.lists(words, min_size=1, max_size=4),
       writable=st.booleans(), cleanenv=st.booleans())
def test_round_trip_keeps_what_both_runtimes_share(binds, env, cwd, command, writable, cleanenv):
    run = ApptainerRun(binds=tuple(binds), env=tuple(env), cwd=cwd, writable=writable, cleanenv=cleanenv,
                       image="/images/env", command=tuple(command))
    there = to_charliecloud(run)
    assert there.result.problems() == []
    back = to_apptainer(there.result).result
    assert (back.binds, back.env, back.cwd, back.writable, back.cleanenv, back.image, back.command) == \
           (run.binds, run.env, run.cwd, run.writable, run.cleanenv, run.image, run.command)


def test_a_pasted_command_line_keeps_what_bash_would_expand(capsys):
    # one quoted argument holding the command: an unquoted ~ is the shell's, so it stays $HOME
    from hpcwidgets.cli import main
    assert main(["convert", "apptainer exec --bind ~/.ssh ~/x.sif python /opt/t.py"]) == 0
    out = capsys.readouterr().out
    assert 'ch-run --bind="$HOME"/.ssh' in out and "apptainer build --sandbox \"$HOME/x\" ~/x.sif" in out


def test_a_cdi_gpu_device_is_the_gpu_flag_of_the_translation():
    """SingularityCE 4's OCI mode gives the GPUs with a CDI device (--device nvidia.com/gpu=all), not --nv: the
    Charliecloud translation still injects the NVIDIA libraries with ch-fromhost."""
    from hpcwidgets.parse.argv import parse_argv
    run = parse_argv(["singularity", "exec", "--oci", "--device", "nvidia.com/gpu=all", "img.sif", "python", "t.py"]).model
    steps = to_charliecloud(run).commands
    assert any(isinstance(s, ChFromhost) and s.nvidia for s in steps)
    plain = parse_argv(["singularity", "exec", "--device", "/dev/fuse", "img.sif", "python", "t.py"]).model
    assert not any(isinstance(s, ChFromhost) for s in to_charliecloud(plain).commands)
