"""Reader fixes from the real-world audit (session 7): options in a shell variable (A1), pyxis options of srun
written with a space (D1), repeated #SBATCH --mail-type lines (D2) and a job name with a space (D3)."""

from __future__ import annotations

import pytest

from helpers import run_with_stand_ins
from hpcwidgets.cli import main
from hpcwidgets.errors import ValidationError
from hpcwidgets.lint import lint
from hpcwidgets.parse.argv import parse_chain
from hpcwidgets.parse.layout import without_layout
from hpcwidgets.parse.script import merge_mail_types, read_script
from hpcwidgets.parse.workflow import parse_script
from hpcwidgets.render import render
from hpcwidgets.spec import SlurmJob
from hpcwidgets.spec._words import Verbatim
from hpcwidgets.spec.slurm import PYXIS_SWITCHES, PYXIS_VALUE_OPTIONS, Srun


def stable(text: str) -> str:
    """The script read back and rendered in the renderer's own layout (what the reader put in which field); a second
    round must give the same text. Written back unedited in its own layout, each is its own text."""
    assert render(parse_script(text)) == text
    once = render(without_layout(parse_script(text)))
    assert render(without_layout(parse_script(once))) == render(parse_script(once)) == once
    return once


def codes(text: str) -> list[str]:
    return [f.code for f in lint(text)]


def launches(text: str, tmp_path, names=("singularity", "apptainer", "srun", "torchrun", "python")) -> list[dict]:
    return run_with_stand_ins(text, tmp_path, list(names))


# ---------------------------------------------------------------------------------------------
# A1: --nv (or other options) through an unquoted shell variable

COND_NV = """#!/bin/bash
#SBATCH --gres=gpu:1
if [[ $(hostname -s) =~ ^g ]]; then nv="--nv"; fi
singularity exec $nv --overlay overlay.ext3:ro cuda.sif python train.py
"""
ONE_NV = """#!/bin/bash
#SBATCH --gres=gpu:1
NV=--nv
singularity exec ${NV} img.sif python t.py
"""


class TestOptionsInAVariable:
    def test_a_conditional_value_is_kept_as_written_among_the_options(self):
        c = parse_script(COND_NV).container
        assert c.image == "cuda.sif" and c.overlay == ("overlay.ext3:ro",)
        assert c.extra == (Verbatim("$nv"),) and isinstance(c.extra[0], Verbatim) and not c.nv
        assert parse_script(COND_NV).problems() == []  # a reference kept as written is not a stray word

    def test_a_conditional_value_renders_unquoted_before_the_image_and_reads_back(self, tmp_path):
        out = stable(COND_NV)
        assert "singularity exec --overlay overlay.ext3:ro $nv cuda.sif python train.py" in out
        body = COND_NV.replace("$(hostname -s)", "g01").split("\n", 2)[2]
        again = out.replace("$(hostname -s)", "g01").split("\n", 2)[2]
        first, second = launches(body, tmp_path / "a"), launches(again, tmp_path / "b")
        assert [(c["prog"], c["argv"][4:]) for c in first] == [(c["prog"], c["argv"][4:]) for c in second]
        # the options before the image, in another order (apptainer reads options in any order)
        assert sorted(first[0]["argv"][:4]) == sorted(second[0]["argv"][:4]) == sorted(
            ["exec", "--nv", "--overlay", "overlay.ext3:ro"])

    def test_the_lint_step_sees_the_image_and_the_overlay_as_an_option(self):
        step = read_script(COND_NV).steps[0]
        assert step.chain.container.image == "cuda.sif" and step.chain.program == ("python", "train.py")
        assert "HPC203" not in codes(COND_NV)

    def test_one_unconditional_value_of_known_options_is_read_as_them(self, tmp_path):
        w = parse_script(ONE_NV)
        assert w.container.nv and w.container.image == "img.sif" and w.container.extra == ()
        assert w.program == ("python", "t.py")
        out = stable(ONE_NV)
        assert "singularity exec --nv img.sif python t.py" in out and "NV=--nv" in out
        assert launches(ONE_NV, tmp_path / "a") == launches(out, tmp_path / "b")
        assert not {"HPC201", "HPC203"} & set(codes(ONE_NV))

    def test_several_options_in_one_value(self, tmp_path):
        text = '#!/bin/bash\nOPTS="--nv --bind /data"\napptainer exec $OPTS img.sif python t.py\n'
        c = parse_script(text).container
        assert c.nv and [b.src for b in c.binds] == ["/data"] and c.image == "img.sif"
        out = stable(text)
        assert launches(text, tmp_path / "a") == launches(out, tmp_path / "b")

    @pytest.mark.parametrize("value", ['""', '"--nv --frobnicate"', '"--bind $SCRATCH"'])
    def test_an_empty_or_unknown_value_stays_as_written(self, value, tmp_path):
        text = f"#!/bin/bash\nOPTS={value}\napptainer exec $OPTS img.sif python t.py\n"
        c = parse_script(text).container
        assert c.image == "img.sif" and c.extra == (Verbatim("$OPTS"),)
        out = stable(text)
        assert "apptainer exec $OPTS img.sif python t.py" in out

    def test_srun_and_torchrun_options_in_a_variable(self):
        w = parse_script('#!/bin/bash\nSARGS="--ntasks=2 --label"\nsrun $SARGS python t.py\n')
        assert w.srun.ntasks == 2 and w.srun.label and w.program == ("python", "t.py")
        text = '#!/bin/bash\nif true; then D="--nnodes=1"; fi\ntorchrun $D train.py --lr 1\n'
        w = parse_script(text)
        assert w.launcher.extra == (Verbatim("$D"),) and w.launcher.script == "train.py"
        assert "torchrun $D train.py --lr 1" in stable(text)

    @pytest.mark.parametrize("text", [
        '#!/bin/bash\nIMG=cuda.sif\napptainer exec "$IMG" python t.py\n',
        '#!/bin/bash\nIMG=cuda.sif\napptainer exec $IMG python t.py\n',
    ])
    def test_a_variable_that_holds_the_image_is_still_the_image(self, text):
        c = parse_script(text).container
        assert c.image == "$IMG" and c.extra == () and parse_script(text).program == ("python", "t.py")
        stable(text)

    def test_a_quoted_reference_is_one_word_as_before(self):
        text = '#!/bin/bash\nnv=--nv\napptainer exec "$nv" img.sif python t.py\n'
        w = parse_script(text)
        assert w.container.image == "$nv" and not w.container.nv and w.program == ("img.sif", "python", "t.py")

    def test_a_variable_the_script_does_not_set_is_read_as_before(self):
        chain = read_script("#!/bin/bash\napptainer exec $IMG python t.py\n").steps[0].chain
        assert chain.container.image == "$IMG" and chain.expanded == ()

    def test_program_arguments_are_not_read_as_options(self):
        text = '#!/bin/bash\nif x; then nv=--nv; fi\napptainer exec $nv img.sif python t.py $nv\n'
        w = parse_script(text)
        assert w.container.extra == (Verbatim("$nv"),) and w.program == ("python", "t.py", Verbatim("$nv"))
        assert "apptainer exec $nv img.sif python t.py $nv" in stable(text)

    def test_plain_words_never_become_expansions_in_the_models(self):
        chain = parse_chain(["apptainer", "exec", "--nv", "img.sif", "python", "t.py"])
        assert all(type(w) is str for w in chain.program) and chain.expanded == ()
        step = read_script(COND_NV).steps[0]
        assert all(type(w) is str for w in step.chain.program)
        assert type(step.chain.container.image) is str


# ---------------------------------------------------------------------------------------------
# D1: pyxis options of srun written with a space

PYXIS_SPACE = """#!/bin/bash
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
srun --container-image /scratch/pytorch.sqsh --container-mounts /data:/data torchrun --standalone --nproc_per_node=8 train.py
"""


class TestPyxisOptions:
    def test_the_space_form_takes_the_next_word_as_its_value(self):
        w = parse_script(PYXIS_SPACE)
        assert w.srun.extra == ("--container-image", "/scratch/pytorch.sqsh", "--container-mounts", "/data:/data")
        assert w.launcher is not None and w.launcher.script == "train.py" and w.launcher.standalone
        assert str(w.launcher.nproc_per_node) == "8" and w.program == ()
        out = stable(PYXIS_SPACE)
        assert "srun --container-image /scratch/pytorch.sqsh" in out

    def test_the_launcher_rules_see_the_torchrun(self):
        eq = PYXIS_SPACE.replace("--container-image ", "--container-image=").replace("--container-mounts ",
                                                                                       "--container-mounts=")
        for text in (PYXIS_SPACE, eq):
            found = [(f.code, f.line) for f in lint(text)]
            assert ("HPC108", 4) in found, found

    @pytest.mark.parametrize("option", sorted(PYXIS_VALUE_OPTIONS))
    def test_every_value_option(self, option):
        chain = parse_chain(["srun", option, "VALUE", "python", "t.py"])
        assert chain.srun.extra == (option, "VALUE") and chain.program == ("python", "t.py")
        assert not chain.srun.problems()

    @pytest.mark.parametrize("option", sorted(PYXIS_SWITCHES))
    def test_every_switch_leaves_the_next_word_alone(self, option):
        chain = parse_chain(["srun", "--container-image=img.sqsh", option, "python", "t.py"])
        assert chain.srun.extra == ("--container-image=img.sqsh", option) and chain.program == ("python", "t.py")
        assert not any(option in note for note in chain.notes)  # a known switch: no "unknown option" note

    def test_the_model_knows_them(self):
        assert PYXIS_VALUE_OPTIONS <= Srun.other_value_options
        assert not PYXIS_SWITCHES & Srun.other_value_options


# ---------------------------------------------------------------------------------------------
# D2: repeated --mail-type lines are ORed by sbatch

def job_of(*directives: str) -> SlurmJob:
    return read_script("#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives) + "python t.py\n").job


class TestMailTypes:
    def test_repeated_lines_are_the_union(self):
        text = "#!/bin/bash\n#SBATCH --mail-type=BEGIN\n#SBATCH --mail-type=END\n#SBATCH --mail-type=FAIL\npython t.py\n"
        assert parse_script(text).job.mail_type == "BEGIN,END,FAIL"
        out = stable(text)
        assert "#SBATCH --mail-type=BEGIN,END,FAIL" in out

    @pytest.mark.parametrize("directives,expected", [
        (("--mail-type=BEGIN,END",), "BEGIN,END"),                      # one line: as written
        (("--mail-type=END", "--mail-type=BEGIN,END"), "END,BEGIN"),    # order of first appearance, once each
        (("--mail-type=BEGIN", "--mail-type=ALL"), "ALL"),              # ALL absorbs what it stands for
        (("--mail-type=ALL", "--mail-type=TIME_LIMIT_90"), "ALL,TIME_LIMIT_90"),
        (("--mail-type=BEGIN", "--mail-type=NONE"), "BEGIN"),           # NONE adds nothing, clears nothing
        (("--mail-type=NONE", "--mail-type=END"), "END"),
        (("--mail-type=NONE", "--mail-type=NONE"), "NONE"),
        (("--mail-type=BEGIN", "--mail-type=END,NONE"), "BEGIN"),       # NONE in a value: that value adds nothing
        (("--mail-type=begin", "--mail-type=BEGIN"), "begin"),
        (("--mail-type END", "--mail-type=FAIL"), "END,FAIL"),         # the value as the next word
    ])
    def test_what_sbatch_does(self, directives, expected):
        assert job_of(*directives).mail_type == expected

    def test_an_unknown_type_is_still_reported(self):
        job = job_of("--mail-type=BEGIN", "--mail-type=SOMETIMES")
        assert job.mail_type == "BEGIN,SOMETIMES" and any(p.field == "mail_type" for p in job.problems())

    def test_merge_function(self):
        assert merge_mail_types("BEGIN,END", "FAIL,END") == "BEGIN,END,FAIL"


# ---------------------------------------------------------------------------------------------
# D3: a job name with a space

SPACED = '#!/bin/bash\n#SBATCH --job-name="PyTorch MNIST"\npython train.py\n'


class TestSpacedJobName:
    def test_reads_back_and_renders_quoted(self):
        w = parse_script(SPACED)
        assert w.job.job_name == "PyTorch MNIST"
        out = stable(SPACED)
        assert '#SBATCH --job-name="PyTorch MNIST"' in out
        assert parse_script(out).job.job_name == "PyTorch MNIST"

    def test_it_is_advice_not_a_problem(self):
        job = SlurmJob(job_name="PyTorch MNIST")
        assert job.problems() == [] and job.validate() is job
        assert [p.field for p in job.advice()] == ["job_name"] and "spaces" in job.advice()[0].message
        assert SlurmJob(job_name="mnist").advice() == []

    @pytest.mark.parametrize("name", ["a\nb", "a\tb"])
    def test_a_line_break_or_a_tab_still_blocks(self, name):
        with pytest.raises(ValidationError, match="job_name"):
            SlurmJob(job_name=name).validate()

    def test_the_cli_reads_it_back(self, tmp_path, capsys):
        path = tmp_path / "job.sh"
        path.write_text(SPACED)
        code = main(["workflow", "--from", str(path)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert '#SBATCH --job-name="PyTorch MNIST"' in out
