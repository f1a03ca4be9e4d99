import pytest

from hpcwidgets.errors import ValidationError
from hpcwidgets.render.command import argv, command_line
from hpcwidgets.spec import (ApptainerBuild, ApptainerInspect, ApptainerInstance, ApptainerPull, ApptainerRun, Bind,
                             DefFile, EnvVar)
from helpers import run_with_stand_ins


def test_exec_flags_come_before_the_image():
    m = ApptainerRun(nv=True, binds=(Bind("$SCRATCH/data", "/data", "ro"),), cleanenv=True,
                     image="pytorch.sif", command=("python", "train.py", "--nv"))
    words = argv(m)
    assert words[:2] == ["apptainer", "exec"]
    assert words.index("pytorch.sif") > words.index("--nv") > 0
    assert words[words.index("pytorch.sif") + 1:] == ["python", "train.py", "--nv"]
    assert "--bind" in words and "$SCRATCH/data:/data:ro" in words and "--cleanenv" in words


def test_paths_with_colon_or_comma_use_mount_syntax():
    words = argv(ApptainerRun(binds=(Bind("/data/a:b", "/in"), Bind("/x,y")), image="i.sif", command=("true",)))
    assert words[2:6] == ["--mount", "type=bind,src=/data/a:b,dst=/in", "--mount", 'type=bind,"src=/x,y","dst=/x,y"']


def test_singularity_binary_and_runscript_action():
    assert argv(ApptainerRun(binary="singularity", action="run", image="img.sif")) == ["singularity", "run", "img.sif"]


@pytest.mark.parametrize("kwargs,field,text", [
    ({}, "image", "an image is required"),
    ({"image": "i.sif"}, "command", "exec needs a command"),
    ({"image": "i.sif", "command": ("x",), "nv": True, "rocm": True}, "rocm", "not both"),
    ({"image": "~/i.sif", "command": ("x",)}, "image", "$HOME/i.sif"),
    ({"image": "i.sif", "command": ("x",), "binary": "docker"}, "binary", "apptainer, singularity"),
    ({"image": "i.sif", "command": ("x",), "binds": (Bind("/d", "rel"),)}, "binds.dst", "absolute"),
    ({"image": "i.sif", "command": ("x",), "env": (EnvVar("1X", "v"),)}, "env.name", "not a valid variable name"),
])
def test_problems_name_field_and_fix(kwargs, field, text):
    problems = ApptainerRun(**kwargs).problems()
    assert any(p.field == field and text in p.message for p in problems), problems


def test_nvccli_under_singularity_is_left_to_lint():
    # the model cannot tell SingularityCE from Apptainer's second name for itself; lint's HPC216 decides by the site
    assert ApptainerRun(image="i.sif", command=("x",), nvccli=True, binary="singularity").problems() == []


def test_validate_lists_every_problem():
    with pytest.raises(ValidationError) as info:
        ApptainerRun(nv=True, rocm=True).validate()
    assert len(info.value.problems) == 3  # image, command, nv+rocm
    assert "3 problems" in str(info.value)


def test_pull_renders_cache_env_and_image_path():
    pull = ApptainerPull(source="docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", dir="$SCRATCH/sif",
                         cachedir="$SCRATCH/.apptainer/cache")
    assert pull.problems() == []
    assert command_line(pull).startswith('APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache" apptainer pull')
    assert pull.image_path() == "$SCRATCH/sif/pytorch_2.3.1-cuda12.1-cudnn8-runtime.sif"
    assert ApptainerPull(source="docker://pytorch/pytorch:latest").default_dest() == "pytorch_latest.sif"
    assert any(p.field == "source" for p in ApptainerPull(source="pytorch/pytorch").problems())


def test_singularity_reads_its_own_cache_variables_and_they_read_back():
    # SingularityCE ignores APPTAINER_CACHEDIR (the cache would fill $HOME); Apptainer reads either name
    pull = ApptainerPull(binary="singularity", source="docker://alpine:3", cachedir="$SCRATCH/cache", tmpdir="/tmp/b")
    assert command_line(pull).startswith('SINGULARITY_CACHEDIR="$SCRATCH/cache" SINGULARITY_TMPDIR=/tmp/b singularity pull')
    from hpcwidgets.parse import parse_script
    from hpcwidgets.render import render
    from hpcwidgets.spec import SlurmJob, Workflow
    run = ApptainerRun(binary="singularity", image="alpine_3.sif", command=("true",))
    script = render(Workflow(job=SlurmJob(time="10"), prepare=(pull,), container=run))
    assert 'export SINGULARITY_CACHEDIR="$SCRATCH/cache"' in script and "APPTAINER_" not in script
    back = parse_script(script)
    assert back.prepare[0].cachedir == "$SCRATCH/cache" and back.exports == ()
    # an APPTAINER_ export beside singularity stays an export: moving it would rename what the script sets
    theirs = script.replace("SINGULARITY_CACHEDIR", "APPTAINER_CACHEDIR")
    assert [e.name for e in parse_script(theirs).exports] == ["APPTAINER_CACHEDIR"]


def test_build_inspect_instance():
    assert argv(ApptainerBuild(fakeroot=True, output="env.sif", source="env.def")) == \
        ["apptainer", "build", "--fakeroot", "env.sif", "env.def"]
    assert argv(ApptainerInspect(deffile=True, image="env.sif")) == ["apptainer", "inspect", "--deffile", "env.sif"]
    assert argv(ApptainerInstance(nv=True, image="db.sif", name="db")) == \
        ["apptainer", "instance", "start", "--nv", "db.sif", "db"]
    assert argv(ApptainerInstance(action="instance stop", name="db")) == ["apptainer", "instance", "stop", "db"]
    assert ApptainerInstance(action="instance stop", name="db", image="x").problems()


def test_json_round_trip_and_unknown_fields():
    m = ApptainerRun(nv=True, binds=(Bind("/a", "/b", "ro"),), env=(EnvVar("K", "v w"),), image="i.sif", command=("x",))
    assert ApptainerRun.from_json(m.to_json()) == m
    with pytest.raises(Exception, match="valid fields"):
        ApptainerRun.from_dict({"imagee": "x"})
    assert ApptainerRun.from_dict({"image": "i", "binds": ["/a:/b:ro"], "command": ["x"]}).binds == (Bind("/a", "/b", "ro"),)


def test_deffile_requires_from():
    assert DefFile().problems()[0].field == "from_"
    assert DefFile(from_="pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime").problems() == []


def test_hostile_values_reach_apptainer_intact(tmp_path):
    hostile = ["a b", "$(touch pwned)", "`id`", "x;y", "it's", "日本", "line\nbreak", "*"]
    m = ApptainerRun(binds=(Bind("$SCRATCH/d d", "/data"),), image="$SCRATCH/i.sif", command=("python", *hostile))
    calls = run_with_stand_ins(command_line(m), tmp_path, ["apptainer"], env={"SCRATCH": "/s"})
    assert calls == [{"prog": "apptainer", "argv": ["exec", "--bind", "/s/d d:/data", "/s/i.sif", "python", *hostile]}]
    assert not (tmp_path / "pwned").exists()


def test_a_path_starting_with_tilde_names_home() -> None:
    from hpcwidgets.spec.apptainer import ApptainerRun
    problems = ApptainerRun(action="exec", image="img.sif", cwd="~/project", command=("python", "t.py")).problems()
    assert [p.field for p in problems] == ["cwd"] and "$HOME/project" in problems[0].message
    assert ApptainerRun(action="exec", image="img.sif", cwd="$HOME/project", command=("python",)).problems() == []


@pytest.mark.parametrize("mode,ok", [
    ("ro", True), ("rw", True), ("image-src=/", True), ("ro,image-src=/data", True), ("id=2", True),
    ("rx", False), ("ro,rw", False), ("ro,,", True), (",", False),
])
def test_bind_modes_are_the_options_apptainer_takes(mode, ok):
    problems = Bind("/d.sqfs", "/d", mode).problems()
    assert (problems == []) is ok, problems


def test_apptainer_nvccli_needs_no_layer_of_ours():
    """Apptainer 1.1 and later implies --writable-tmpfs for --nvccli; SingularityCE does not."""
    assert ApptainerRun(image="i.sif", command=("x",), nvccli=True).problems() == []


@pytest.mark.parametrize("extra,hidden", [
    (("--no-mount", "home,cwd"), True), (("--no-mount=home",), True), (("--no-mount", "cwd"), False), ((), False),
    (("--no-mount", "bind-paths"), False),
])
def test_no_mount_home_keeps_home_out(extra, hidden):
    run = ApptainerRun(image="i.sif", command=("x",), extra=extra)
    assert run.hides_home is hidden and run.problems() == []


def test_lists_given_to_a_model_become_tuples():
    """Python users pass lists; the model keeps tuples (frozen, hashable) and has no problem with them."""
    import hpcwidgets as hw
    from hpcwidgets.render import render
    d = hw.DefFile(from_="x:1", post=["pip install a"], environment=[hw.EnvVar("A", "1")])
    assert d.post == ("pip install a",) and d.problems() == [] and "pip install a" in render(d)
    run = ApptainerRun(image="i.sif", command=["python", "t.py"], binds=["/d:/data"])
    assert run.command == ("python", "t.py")
    assert [p.message for p in run.problems()] == [
        "Bind mounts: expected a Bind, got '/d:/data'; write Bind.from_token('/d:/data')"]
    assert "expected a list of values, got 'python t.py'" in ApptainerRun(image="i.sif", command="python t.py").problems()[0].message


@pytest.mark.parametrize("entry,says", [
    ("--bind /data:/data", "write --bind=/data:/data, or the option and its value as two entries"),
    ("--exclusive --mem 0", "write each option (and its value) as an entry of its own"),
])
def test_an_option_and_its_value_in_one_entry(entry, says):
    """A form's "Other options" line is one word on the command line: apptainer would refuse it as one flag."""
    problems = ApptainerRun(image="i.sif", command=("x",), extra=(entry,)).problems()
    assert [p.field for p in problems] == ["extra"] and says in problems[0].message
    assert ApptainerRun(image="i.sif", command=("x",), extra=("--bind=/data:/data", "--hostname", "a b")).problems() == []


@pytest.mark.parametrize("name,value,says", [
    ("export OMP_NUM_THREADS", "4", "drop 'export' (the variable is exported for you): OMP_NUM_THREADS=4"),
    ("WANDB_PROJECT", '"my project"', "write WANDB_PROJECT=my project"),
    ("OMP_NUM_THREADS", "8 # one per core", "write OMP_NUM_THREADS=8"),
])
def test_a_variable_pasted_from_a_script_gets_the_fix(name, value, says):
    problems = EnvVar(name, value).problems()
    assert len(problems) == 1 and says in problems[0].message
    assert EnvVar("ARGS", 'a "quoted" word').problems() == [] and EnvVar("X", "#1").problems() == []


@pytest.mark.parametrize("source, dest", [
    ("docker://pytorch/pytorch:2.3", "pytorch_2.3.sif"),
    ("docker://$IMG", "${IMG}_latest.sif"),          # $IMG_latest would be another variable
    ("docker://reg/$NAME:$TAG", "${NAME}_$TAG.sif"),
    ("$", "\\$_latest.sif"),                          # a literal dollar stays one (found by the fidelity property)
])
def test_the_derived_file_name_keeps_its_references(source, dest):
    assert ApptainerPull(source=source).default_dest() == dest
