"""HPC416: a container program of a runtime the profile lists as render-only, a rule of its own.

HPC414 used to say two things: the profile lists no runtime that installs the program (a SingularityCE site has no
``apptainer``), and the profile lists the runtime in ``runtimes_render_only`` (the practice cluster shows and checks
Apptainer's commands and runs Charliecloud's). The second is HPC416 now, so the lessons' findings tables and the
workflow form leave it out by its code, not by reading its message, and a person can switch it off alone.
"""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import Finding, lint, rules
from hpcwidgets.lint.profile_rules import RENDER_ONLY_RULE
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.profile import Module

JOB = """\
#!/bin/bash
#SBATCH --partition=debug
#SBATCH --time=00:10:00
srun apptainer exec /var/tmp/hpcw-images/trainer.sif python train.py
"""


def codes(text: str, profile, **kw) -> list[str]:
    return [f.code for f in lint(text, profile, **kw) if f.code in ("HPC414", "HPC416")]


def local():
    return load_profile("local")


def singularity_site():
    """A SingularityCE site: no apptainer program at all (HPC414's case)."""
    return load_profile("generic").replace(name="creek", runtimes=("singularity",), apptainer_binary="singularity")


# --- which rule says what -----------------------------------------------------------------------------------------

def test_the_code_is_the_next_free_one_of_the_profile_rules():
    assert RENDER_ONLY_RULE == "HPC416"
    known = rules()
    assert sorted(c for c in known if "HPC414" <= c <= "HPC416") == ["HPC414", "HPC415", "HPC416"]
    r = known["HPC416"]
    assert (r.name, r.severity, r.profile) == ("render-only-runtime", "warning", "local")
    assert r.severity == known["HPC414"].severity, "the severity the render-only case had under HPC414"
    assert "runtimes_render_only" in r.why and "HPC414" in r.why and "ch-run(1)" in r.fix
    assert "render-only" not in known["HPC414"].summary and "HPC416" in known["HPC414"].why


def test_a_render_only_runtime_is_hpc416_not_hpc414():
    assert codes(JOB, local()) == ["HPC416"]
    assert codes(JOB.replace("apptainer exec", "singularity exec"), local()) == ["HPC416"], \
        "Apptainer's second name goes with it"
    (f,) = [f for f in lint(JOB, local()) if f.code == "HPC416"]
    assert f.line == 4 and f.severity == "warning"
    assert f.message == local().render_only_message("apptainer")


def test_a_runtime_the_profile_does_not_list_is_hpc414_not_hpc416():
    assert codes(JOB, singularity_site()) == ["HPC414"]
    charliecloud_only = load_profile("generic").replace(name="ch", runtimes=("charliecloud",))
    assert codes(JOB.replace("apptainer exec", "singularity exec"), charliecloud_only) == ["HPC414"]


def test_a_runtime_the_cluster_runs_is_neither():
    assert codes(JOB, load_profile("generic")) == []
    assert codes(JOB, None) == []
    ch = JOB.replace("apptainer exec /var/tmp/hpcw-images/trainer.sif",
                     'ch-run -b "$PWD:/mnt/0" -c /mnt/0 /var/tmp/hpcw-images/trainer --')
    assert codes(ch, local()) == [], "the practice cluster runs Charliecloud"
    assert codes(ch, local().replace(runtimes_render_only=("charliecloud",))) == ["HPC416"]


def test_once_per_program_and_under_mpirun():
    text = JOB + "apptainer exec /var/tmp/hpcw-images/trainer.sif python eval.py\n"
    assert [f.line for f in lint(text, local()) if f.code == "HPC416"] == [4]
    assert codes(JOB.replace("srun apptainer", "mpirun -np 2 apptainer"), local()) == ["HPC416"]


# --- the fix where the cluster runs another SIF runner -------------------------------------------------------------

def test_the_fix_renames_to_the_runnable_singularity_where_there_is_one():
    both = load_profile("generic").replace(name="two", runtimes=("apptainer", "singularity"),
                                           runtimes_render_only=("apptainer",))
    (f,) = [f for f in lint(JOB, both) if f.code == "HPC416"]
    assert f.fix is not None and "use singularity in its place" in f.message
    fixed, done = fix_script(JOB, both, select="HPC416")
    assert [d.code for d in done] == ["HPC416"]
    assert "srun singularity exec /var/tmp/hpcw-images/trainer.sif python train.py" in fixed
    assert codes(fixed, both) == []


def test_no_fix_where_nothing_runs_a_sif_or_apptainer_variables_are_set():
    (f,) = [f for f in lint(JOB, local()) if f.code == "HPC416"]
    assert f.fix is None, "ch-run needs another image format: no mechanical rename"
    both = load_profile("generic").replace(name="two", runtimes=("apptainer", "singularity"),
                                           runtimes_render_only=("apptainer",))
    with_var = JOB.replace("srun ", "export APPTAINERENV_X=1\nsrun ")
    (g,) = [f for f in lint(with_var, both) if f.code == "HPC416"]
    assert g.fix is None


def test_a_module_the_site_lacks_is_said_with_it():
    site = local().replace(modules=(Module(purpose="charliecloud", name="charliecloud/0.31"),))
    text = JOB.replace("srun ", "module load apptainer\nsrun ")
    (f,) = [f for f in lint(text, site) if f.code in ("HPC414", "HPC416")]
    assert f.code == "HPC416" and f.message.startswith("module load apptainer (line 4) names a module")
    assert f.message.endswith(site.render_only_message("apptainer"))


# --- switched off on its own ---------------------------------------------------------------------------------------

def test_switched_off_alone(tmp_path, capsys):
    assert codes(JOB, local(), ignore="HPC416") == []
    assert codes(JOB + "# hpcw: disable-file=HPC416\n", local()) == []
    assert codes(JOB.replace("train.py\n", "train.py  # hpcw: disable=HPC416\n"), local()) == []
    assert codes(JOB, singularity_site(), ignore="HPC416") == ["HPC414"], "HPC414 stays"
    script = tmp_path / "job.sh"
    script.write_text(JOB)
    main(["lint", "--profile", "local", str(script)])
    out, err = capsys.readouterr()
    assert "HPC416" in out + err
    main(["lint", "--profile", "local", "--ignore", "HPC416", str(script)])
    out, err = capsys.readouterr()
    assert "HPC416" not in out + err and "HPC414" not in out + err


# --- the callers test the code -------------------------------------------------------------------------------------

def test_lessons_leave_out_the_code_not_a_message():
    from hpcwidgets import lessons
    worded = "apptainer is not installed on the cluster of profile x (it lists apptainer as render-only: …)"
    assert not lessons.render_only(Finding("HPC414", "warning", 4, worded)), "the words alone do not count"
    plain = Finding("HPC416", "warning", 4, "any text")
    assert lessons.render_only(plain)
    other = Finding("HPC201", "warning", 4, "the container runs without --nv")
    assert lessons.findings_shown([plain, other]) == [other]


def test_the_lesson_table_names_the_code(capsys):
    from hpcwidgets import lessons
    lessons.findings_table(lint(JOB, local()))
    out = capsys.readouterr().out
    assert "HPC416" not in out.split("(not shown")[0] and "(not shown: HPC416," in out, out
    lessons.findings_table(lint(JOB, singularity_site()))
    out = capsys.readouterr().out
    assert "HPC414" in out and "not shown" not in out, out


def test_the_form_drops_lints_copy_by_its_code():
    pytest.importorskip("ipywidgets")
    from hpcwidgets.widgets import WorkflowBuilder
    b = WorkflowBuilder(profile=local(), submit=False)
    b.controls["container.runtime"].value = "apptainer"
    assert [f.code for f in b.findings if f.code == "PROFILE"] == ["PROFILE"]
    assert "HPC416" in [f.code for f in lint(b.text, local())]
    assert not [f for f in b.findings if f.code in ("HPC414", "HPC416")]


def test_the_form_keeps_it_for_a_preparation_step_of_another_render_only_program():
    from hpcwidgets.spec.charliecloud import ChImagePull
    from hpcwidgets.spec.workflow import Workflow
    from hpcwidgets.widgets.builder import _other_render_only_programs
    both_shown = local().replace(runtimes_render_only=("apptainer", "charliecloud"))
    wf = Workflow(prepare=(ChImagePull(source="alpine:3.19"),))
    assert _other_render_only_programs(both_shown, wf) == {"ch-image"}
    assert _other_render_only_programs(local(), wf) == set(), "Charliecloud runs there"
