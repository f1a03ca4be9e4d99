"""Reading argument vectors back into models: the inverse of rendering."""

import shlex

import pytest
from hypothesis import given, settings, strategies as st

from hpcwidgets.errors import ParseError
from hpcwidgets.parse.argv import parse_argv, parse_chain
from hpcwidgets.render.command import argv, env_assignments
from hpcwidgets.spec import ApptainerPull, ApptainerRun, Bind, Srun, Torchrun
from hpcwidgets.spec._meta import all_kinds
from strategies import models

COMMAND_KINDS = sorted(k for k, c in all_kinds().items()
                       if any(f.info.role == "program" for f in c.field_specs()))


def test_every_command_family_is_covered():
    assert {"apptainer.run", "apptainer.pull", "slurm.srun", "torchrun"} <= set(COMMAND_KINDS)


@pytest.mark.parametrize("kind", COMMAND_KINDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_parse_inverts_render(kind, data):
    cls = all_kinds()[kind]
    model = data.draw(models(cls))
    assert parse_argv(argv(model), env=dict(env_assignments(model))).model == model


def test_short_attached_and_alias_spellings():
    m = parse_argv(shlex.split("apptainer exec -B/x:/y --pwd /w -e img true")).model
    assert m.binds == (Bind("/x", "/y"),) and m.cwd == "/w" and m.cleanenv
    t = parse_argv(shlex.split("torchrun --nproc_per_node=4 --rdzv_endpoint h:1 t.py")).model
    assert t.nproc_per_node == "4" and t.rdzv_endpoint == "h:1"


def test_comma_separated_binds_and_mount():
    m = parse_argv(["apptainer", "run", "--bind", "/a:/b:ro,/c", "--mount", "type=bind,src=/x:y,dst=/z,ro", "i.sif"]).model
    assert m.binds == (Bind("/a", "/b", "ro"), Bind("/c"), Bind("/x:y", "/z", "ro"))


def test_an_empty_bind_is_kept_and_a_mode_with_a_comma_uses_mount():
    # both are invalid, and both must read back as they were written (render∘parse is a fixed point)
    m = parse_argv(["apptainer", "exec", "--bind", "", "i.sif", "true"]).model
    assert m.binds == (Bind(""),) and m.problems()
    odd = ApptainerRun(binds=(Bind("/a", "", "r,o"),), image="i.sif", command=("true",))
    assert argv(odd)[2] == "--mount"


def test_flags_after_the_image_belong_to_the_program():
    m = parse_argv(shlex.split("apptainer exec img.sif python t.py --nv")).model
    assert not m.nv and m.command == ("python", "t.py", "--nv")


def test_unknown_options_are_kept_in_place():
    p = parse_argv(shlex.split("apptainer exec --frobnicate img true"))
    assert p.model.extra == ("--frobnicate",) and p.model.image == "img" and p.notes


def test_options_the_model_has_no_field_for_keep_their_value():
    m = parse_argv(shlex.split("apptainer exec --no-mount tmp,cwd img true")).model
    assert m.extra == ("--no-mount", "tmp,cwd") and m.image == "img" and m.command == ("true",)


def test_errors():
    with pytest.raises(ParseError, match="needs a value"):
        parse_argv(["apptainer", "exec", "--bind"])
    with pytest.raises(ParseError, match="not a command this reader knows"):
        parse_argv(["docker", "run"])
    with pytest.raises(ParseError, match="no option --bogus"):
        parse_argv(["apptainer", "inspect", "--bogus", "x"])  # a model with no "other options" field


def test_pull_keeps_an_option_no_version_has_as_written():
    parsed = parse_argv(["apptainer", "pull", "--bogus", "x.sif", "docker://a/b:1"])
    assert parsed.model.extra == ("--bogus",) and parsed.model.dest == "x.sif"
    assert parsed.notes == ("unknown apptainer pull option --bogus kept as written",)


def test_pull_positionals_fill_from_the_right():
    assert parse_argv(["apptainer", "pull", "docker://a/b:1"]).model == ApptainerPull(source="docker://a/b:1")


def test_chain_of_the_source_decks_multi_node_step():
    text = ("srun apptainer run --nv --bind /path/to/data:/data $CONTAINER_IMAGE torchrun --nnodes=$SLURM_NNODES "
            "--nproc_per_node=$SLURM_NTASKS_PER_NODE --rdzv_id=$SLURM_JOB_ID --rdzv_backend=c10d "
            "--rdzv_endpoint=$SLURM_STEP_NODELIST:29500 /path/to/your/distributed_train.py")
    chain = parse_chain(text.split())
    assert isinstance(chain.srun, Srun) and isinstance(chain.container, ApptainerRun)
    assert isinstance(chain.launcher, Torchrun)
    assert chain.launcher.rdzv_endpoint == "$SLURM_STEP_NODELIST:29500"
    assert chain.container.command == () and chain.program == ()


@pytest.mark.parametrize("words,binds,again", [
    # Apptainer reads options after SRC:DST: comma-separated, and binds comma-separated too
    (["--bind", "data.sqfs:/data:image-src=/"], [Bind("data.sqfs", "/data", "image-src=/")],
     ["--bind", "data.sqfs:/data:image-src=/"]),
    (["-B", "d.sqfs:/d:ro,image-src=/,/scratch"], [Bind("d.sqfs", "/d", "ro,image-src=/"), Bind("/scratch")],
     ["--mount", "type=bind,src=d.sqfs,dst=/d,ro,image-src=/", "--bind", "/scratch"]),
    (["-B", "/a:/b:ro,/c"], [Bind("/a", "/b", "ro"), Bind("/c")], ["--bind", "/a:/b:ro", "--bind", "/c"]),
    (["--mount", "type=bind,src=e.img,dst=/e,id=2"], [Bind("e.img", "/e", "id=2")], ["--bind", "e.img:/e:id=2"]),
])
def test_bind_options_apptainer_reads_are_kept(words, binds, again):
    model = parse_argv(["apptainer", "exec", *words, "img.sif", "true"]).model
    assert list(model.binds) == binds and model.problems() == []
    assert argv(model)[2:-2] == again


def test_a_mount_with_options_a_bind_cannot_say_stays_as_written():
    mount = "type=bind,src=/a,dst=/b,bind-propagation=rshared"
    model = parse_argv(["apptainer", "exec", "--mount", mount, "img.sif", "true"]).model
    assert model.binds == () and model.problems() == []
    assert argv(model) == ["apptainer", "exec", "--mount", mount, "img.sif", "true"]
