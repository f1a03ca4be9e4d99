"""Job scripts read back into Workflows: render(parse(s)) is a fixed point after one round,
parse(render(m)) == m for the shipped workflows, and what the model has no place for is kept."""

from pathlib import Path

import pytest

from hpcwidgets.examples import examples
from hpcwidgets.errors import ParseError
from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.script import runs_in_a_shell
from hpcwidgets.render import render

# bad_unparseable.sh is bash that cannot be read at all (the linter reports HPC000 for it)
CORPUS = sorted(p for p in (Path(__file__).parent / "data" / "corpus").glob("*.sh") if p.name != "bad_unparseable.sh")
PROFILES = ("generic", "local", "midway3")


def rendered(model):
    return render(model, validate=False)


@pytest.mark.parametrize("profile", PROFILES)
def test_parse_inverts_render_for_every_example(profile):
    for name, example in examples(profile).items():
        if example.model.kind != "workflow":
            continue
        text = example.render()
        back = parse_script(text)
        assert back == example.model, name
        assert rendered(back) == text, name


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_render_of_parse_is_a_fixed_point_after_one_round(path):
    first = rendered(parse_script(path.read_text()))
    second = rendered(parse_script(first))
    assert second == first


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_no_command_of_the_script_is_lost(path):
    """Every command word of the original appears in the re-rendered script (order of set-up lines aside)."""
    from hpcwidgets.parse.lexer import lex_script
    original = lex_script(path.read_text())
    again = lex_script(rendered(parse_script(path.read_text())))
    names = lambda s: sorted(str(c.words[0].value) for c in s.code if c.kind == "simple" and c.words)
    have = names(again)
    for name in names(original):
        if name in ("set",):  # the fail-fast prologue is rewritten by the template
            continue
        assert name in have, f"{name} from {path.name} is missing after a round trip"


def test_unmodelled_lines_after_the_step_are_kept():
    text = ("#!/bin/bash\n#SBATCH --nodes=1\nmodule load apptainer\nIMG=/s/img.sif\n"
            "apptainer exec --nv \"$IMG\" python train.py > train.log 2>&1\necho done\ncp train.log \"$HOME\"/\n")
    wf = parse_script(text)
    out = rendered(wf)
    assert wf.job.modules == ("apptainer",) and "IMG=/s/img.sif" in wf.job.setup
    assert out.index("python train.py > train.log 2>&1") < out.index("echo done") < out.index('cp train.log "$HOME"/')


def test_property_generated_workflows_read_back():
    """For generated workflows with hostile values everywhere a person types: reading a rendered
    script back gives the same script when the model is valid (parse inverts render), and for every
    model render∘parse is a fixed point after one round."""
    from hypothesis import HealthCheck, given, settings

    from test_properties import workflows

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(workflows())
    def run(case):
        w, _task = case
        text = rendered(w)
        if not runs_in_a_shell(text):  # a #! line that names no shell: the model says so, the reader refuses it
            assert any(p.field == "job.shell" for p in w.problems())
            with pytest.raises(ParseError, match="not a shell"):
                parse_script(text)
            return
        once = rendered(parse_script(text))
        assert rendered(parse_script(once)) == once
        if not w.problems():  # render() refuses models with problems, so only valid ones must come back exactly
            assert once == text
    run()


def test_property_generated_jobs_read_back():
    """The same for a Slurm job read back on its own (``sbatch --from``, the job form): every line stays a set-up
    line, and render∘parse is a fixed point after one round (a job of directives alone among them)."""
    from hypothesis import HealthCheck, given, settings

    from test_properties import jobs

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(jobs)
    def run(job):
        text = render(job, validate=False)
        if not runs_in_a_shell(text):
            return
        once = render(parse_job(text), validate=False)
        assert render(parse_job(once), validate=False) == once
        if not job.problems():
            assert once == text
    run()


# --- directives sbatch accepts that the job model must keep (checked with `sbatch --test-only`, Slurm 22.05) ----

def _job(directives: str):
    from hpcwidgets.parse.script import read_script
    return read_script("#!/bin/bash\n" + directives + "srun python train.py\n").job


def test_a_gpu_item_with_an_empty_type_reads_as_no_type():
    # found by the property above: gpu::X was read as a count X, which the model writes gpu:X, a type X
    assert (_job("#SBATCH --gres=gpu::2\n").gpus_per_node, _job("#SBATCH --gres=gpu::2\n").gpu_type) == (2, "")
    job = _job("#SBATCH --gres=gpu::v100\n")
    assert (job.gpus_per_node, job.gpu_type) == (1, "v100")


def test_other_gres_items_survive_parse_and_render():
    # NIH Biowulf's local scratch: --gres=gpu:v100x:2,lscratch:200 (losing lscratch:200 makes the job fail)
    job = _job("#SBATCH --gres=gpu:v100x:2,lscratch:200\n")
    assert (job.gpus_per_node, job.gpu_type, job.other_gres) == (2, "v100x", ("lscratch:200",))
    assert job.problems() == []
    text = rendered(parse_script("#!/bin/bash\n#SBATCH --gres=gpu:v100x:2,lscratch:200\nsrun python train.py\n"))
    assert "#SBATCH --gres=gpu:v100x:2,lscratch:200\n" in text
    assert rendered(parse_script(text)) == text


@pytest.mark.parametrize("value,gpus,others,line", [
    ("lscratch:200", None, ("lscratch:200",), "--gres=lscratch:200"),
    ("lscratch:200,gpu:a100:1", 1, ("lscratch:200",), "--gres=gpu:a100:1,lscratch:200"),   # the GPUs go first
    ("gpu:2,lscratch:10,mps:50", 2, ("lscratch:10", "mps:50"), "--gres=gpu:2,lscratch:10,mps:50"),
    ("gpu:4", 4, (), "--gres=gpu:4"),
])
def test_gres_items_are_split_into_gpus_and_the_rest(value, gpus, others, line):
    from hpcwidgets.render.script import directive_lines
    job = _job(f"#SBATCH --gres={value}\n")
    assert (job.gpus_per_node, job.other_gres) == (gpus, others)
    assert directive_lines(job) == [line]


def test_a_second_gpu_item_or_a_stray_comma_is_kept_and_reported():
    job = _job("#SBATCH --gres=gpu:2,gpu:1\n")
    assert job.gpus_per_node == 2 and job.other_gres == ("gpu:1",)
    assert [p.field for p in job.problems()] == ["other_gres"]
    stray = _job("#SBATCH --gres=gpu:2,\n")   # sbatch: Invalid Trackable RESource (TRES) specification
    assert stray.other_gres == ("",) and [p.field for p in stray.problems()] == ["other_gres"]


@pytest.mark.parametrize("directive,field,value", [
    ("--nodes=2-4", "nodes", "2-4"),
    ("-N 1-2", "nodes", "1-2"),
    ("--gpus=a100:4", "gpus", "a100:4"),
    ("-G a100:2,v100:2", "gpus", "a100:2,v100:2"),
])
def test_node_ranges_and_typed_gpu_counts_read_back_unchanged(directive, field, value):
    text = f"#!/bin/bash\n#SBATCH {directive}\nsrun python train.py\n"
    wf = parse_script(text)
    assert getattr(wf.job, field) == value and wf.job.problems() == []
    assert rendered(wf) == text
    out = rendered(without_layout(wf))  # the renderer's spelling of the field
    assert f"#SBATCH --{field}={value}\n" in out
    assert rendered(without_layout(parse_script(out))) == rendered(parse_script(out)) == out


def test_lint_accepts_memory_with_a_trailing_b_and_valid_count_text():
    from hpcwidgets.lint import lint
    for directives in ("#SBATCH --mem=16GB\n", "#SBATCH --mem=8gb\n", "#SBATCH --mem-per-cpu=20Gb\n",
                       "#SBATCH --nodes=2-4\n#SBATCH --ntasks-per-node=1\n", "#SBATCH --gpus=a100:8\n#SBATCH --nodes=2\n",
                       "#SBATCH --nodes=1-2\n#SBATCH --ntasks=4\n#SBATCH --ntasks-per-node=2\n"):
        findings = lint("#!/bin/bash\n" + directives + "srun python train.py\n")
        assert not [f for f in findings if f.code.startswith("HPC3")], (directives, findings)
    codes = {f.code for f in lint("#!/bin/bash\n#SBATCH --mem=16GiB\nsrun python train.py\n")}
    assert "HPC302" in codes


@pytest.mark.parametrize("value,gpus,gpu_type", [
    ("gpu:a100", 1, "a100"),            # sbatch reads it as gpu:a100:1 (not "one GPU of any type")
    ("gpu", 1, ""),
    ("gpu:a100:2(S:0-1)", 2, "a100"),   # the socket list is not modelled, the count and type are kept
    ("gpu:a100:x", "x", "a100"),        # kept as written, so the job model reports it
])
def test_gpu_items_of_every_form(value, gpus, gpu_type):
    job = _job(f"#SBATCH --gres={value}\n")
    assert (job.gpus_per_node, job.gpu_type) == (gpus, gpu_type)


@pytest.mark.parametrize("directive", ["--nodes=\u00b2", "--gres=gpu:\u00b2", "--ntasks=" + "9" * 5000,
                                       "--gres=gpu:" + "9" * 5000, "--gpus-per-node=a100:" + "9" * 5000])
def test_counts_python_reads_but_sbatch_does_not_are_kept_as_text(directive):
    # '²'.isdigit() is True and int() refuses 5000 digits: neither may escape the reader as a ValueError
    job = _job(f"#SBATCH {directive}\n")
    assert job.problems()


@pytest.mark.parametrize("directive", [
    "--exclusive=user",                                          # not the switch --exclusive: shares with own jobs
    "--exclusive=mcs",
    "--container-image=nvcr.io\\#nvidia/pytorch:24.01-py3",      # \# keeps sbatch from ending the value there
    '--comment="baseline run"',                                  # quoted: sbatch would split the words
    "-L scratch",
])
def test_directives_without_a_field_of_their_own_read_back_as_written(directive):
    job = _job(f"#SBATCH {directive}\n")
    assert f"#SBATCH {directive}\n" in render(job)


def test_the_exclusive_switch_is_still_a_field():
    assert _job("#SBATCH --exclusive\n").exclusive is True


def test_a_count_the_shell_computes_reads_back():
    """srun's options are shell words: $((…)) and $(…) reach srun as numbers."""
    text = "#!/bin/bash\n#SBATCH --nodes=2\nsrun -n $((SLURM_NNODES * 4)) -N $(expr $N / 8) python train.py\n"
    wf = parse_script(text)
    assert wf.problems() == [] and render(wf) == text
    assert "srun --nodes=$(expr $N / 8) --ntasks=$((SLURM_NNODES * 4)) python" in render(without_layout(wf))


def test_a_stray_word_on_an_sbatch_line_is_kept_so_the_job_is_not_changed():
    """--nodelist=n1, n2: sbatch refuses the line (lint's HPC310); read back, the job must not become --nodelist=n1,
    alone: the whole line is kept as written, for the person to repair in place."""
    job = _job("#SBATCH --nodelist=n1, n2\n")
    assert job.extra_directives == ("--nodelist=n1, n2",)  # (no field holds --nodelist=n1,)
    assert "#SBATCH --nodelist=n1, n2\n" in render(job, validate=False)


def test_a_heterogeneous_job_whose_srun_spans_both_components_reads_back():
    text = ("#!/bin/bash\n#SBATCH --nodes=4\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:1\n#SBATCH hetjob\n"
            "#SBATCH --nodes=4\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:1\n"
            'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_0" | head -n 1)\n'
            "srun --het-group=0,1 torchrun --nnodes=8 --nproc-per-node=1 --rdzv-backend=c10d "
            "--rdzv-endpoint=$head:29500 main.py\n")
    wf = parse_script(text)
    assert not [p for p in wf.problems() if p.field == "launcher.nnodes"]


@pytest.mark.parametrize("title, job_name", [("\n", "\n"), ("", " a "), (" x ", "j"), ("\t", "")])
def test_a_blank_title_reads_back_as_the_default(title, job_name):
    """Found by the property above: a title of blank space rendered as "#  " and read back as a title."""
    from hpcwidgets.spec import SlurmJob, Workflow
    w = Workflow(title=title, job=SlurmJob(job_name=job_name), program=("python",))
    once = rendered(parse_script(rendered(w)))
    assert rendered(parse_script(once)) == once
    assert parse_script(once).title == title.strip()
