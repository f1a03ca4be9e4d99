"""Lessons and conversions that follow the site (session 23).

* Lesson 12 (MPI with containers) writes its hand-written scripts' container words from the step's model
  (:func:`hpcwidgets.lessons.command`), so on a site with only SingularityCE they call ``singularity`` and lint shows
  only the mistake each script is about (no HPC414); on ``generic`` the outputs are the saved ones.
* ``convert.to_apptainer`` knows AMD's GPUs (``gpu="amd"``: ``--rocm``) and Intel's (no flag) as well as NVIDIA's
  (``gpu="nvidia"``, or the older ``nvidia=True``); ``convert.to_charliecloud`` says what ``--rocm`` does that
  Charliecloud cannot (ch-fromhost has no ROCm mode) and adds no step it cannot back.
* Lesson prose that names ``APPTAINER_CACHEDIR`` names SingularityCE's variable too; the code cells write the site's.
* The lesson refresher compares the saved widget state as well as the outputs, so the forms' texts a static view
  shows (placeholders, tooltips) are saved again when the widgets change; every lesson that saves widget state
  (00, 02, 05, 06, 07, 08, 09, 11) is re-executed by a slow test to see that it holds the current ones.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import NOTEBOOKS, cell_outputs, cell_source, lesson_cells, run_lesson_in_process
from hpcwidgets import lessons
from hpcwidgets.errors import HpcWidgetsError
from hpcwidgets.lessons import refresh
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.apptainer import ApptainerRun
from hpcwidgets.spec.argv import argv
from hpcwidgets.spec.charliecloud import ChFromhost, ChRun
from hpcwidgets.spec.convert import to_apptainer, to_charliecloud
from hpcwidgets.spec.slurm import Srun

ROOT = Path(__file__).resolve().parents[1]
#: SingularityCE only (its module is singularity), an account on every job
SINGULARITY_SITE = ROOT / "tests" / "data" / "profiles" / "lakes.toml"
#: AMD GPUs, SingularityCE only
AMD_SITE = ROOT / "tests" / "data" / "profiles" / "amd_lessons_s22.toml"

#: lesson 12's hand-written scripts and the rule each one teaches
TAUGHT_12 = {"inside": "HPC214", "outside": "HPC215", "too_many": "HPC128", "pmi2": "HPC127"}


def _noted(conversion, *needles: str) -> bool:
    text = " ".join(conversion.notes)
    return all(n in text for n in needles)


# ------------------------------------------------------------------------------------------------
# 1 · lessons.command: a script line with a model's words in it
# ------------------------------------------------------------------------------------------------
def test_command_joins_words_and_models_as_the_renderer_quotes_them():
    box = ApptainerRun(binary="singularity", action="exec", rocm=True, image="$SCRATCH/my images/sim.sif",
                       command=("./simulate",))
    line = lessons.command("mpirun", "-np", 8, box)
    assert line == 'mpirun -np 8 singularity exec --rocm "$SCRATCH/my images/sim.sif" ./simulate\n'
    assert lessons.command(Srun(mpi="pmix"), box.replace(rocm=False)).startswith("srun --mpi=pmix singularity exec ")


@pytest.mark.parametrize("parts, needle", [
    ((), "at least one word"),
    (("mpirun", True), "not bool True"),
    (("mpirun", {"kind": "apptainer.run"}), "not dict"),
])
def test_command_refuses_what_is_neither_a_word_nor_a_model(parts, needle):
    with pytest.raises(HpcWidgetsError, match=re.escape(needle)):
        lessons.command(*parts)


# ------------------------------------------------------------------------------------------------
# 2 · lesson 12 follows the site's container program
# ------------------------------------------------------------------------------------------------
def test_lesson_12_writes_no_container_program_by_hand():
    checked = 0
    for cell in lesson_cells("12"):
        if cell["cell_type"] != "code":
            continue
        source = re.sub(r"^\s*#.*$", "", cell_source(cell), flags=re.M)
        # a command typed in a string: "apptainer exec …", "singularity run …"
        assert not re.search(r"""["'][^"'\n]*\b(apptainer|singularity) (exec|run|shell)\b""", source), source
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("site", [SINGULARITY_SITE, AMD_SITE], ids=["singularity", "amd"])
def test_lesson_12_on_a_singularity_site_calls_singularity_and_shows_only_its_mistakes(site, isolated_profiles):
    profile = str(site)
    prof = load_profile(profile)
    assert prof.apptainer_binary == "singularity"
    runs = {cid: (printed, names) for cid, printed, names in run_lesson_in_process("12", profile)}
    printed, names = runs["12-08"]
    assert not re.search(r"^line .* HPC414 ", printed, re.M), printed
    for name, rule in TAUGHT_12.items():
        script = names[name]
        step = script.splitlines()[-1]
        assert re.search(r"\bsingularity exec\b", step) and "apptainer" not in script, script
        assert prof.image_dir in step, step
        codes = {f.code for f in lint(script, prof)}
        assert rule in codes and "HPC414" not in codes, (name, codes, script)
    # the step and the bind model of the cells before it are the models' too
    assert "singularity exec" in runs["12-04"][0] and "apptainer" not in runs["12-04"][0]
    assert runs["12-06"][0].startswith("singularity exec")


def test_lesson_12_on_generic_prints_its_saved_outputs(isolated_profiles):
    saved = {c.get("id"): cell_outputs(c) for c in lesson_cells("12") if c["cell_type"] == "code"}
    runs = {cid: (printed, names) for cid, printed, names in run_lesson_in_process("12", "generic")}
    for cid, (printed, _) in runs.items():
        assert printed == saved[cid], cid
    for name, rule in TAUGHT_12.items():
        assert re.search(r"\bapptainer exec \"\$SCRATCH/images/simulation_1\.0\.sif\"", runs["12-08"][1][name])
        assert f" {rule} " in saved["12-08"]


# ------------------------------------------------------------------------------------------------
# 3 · convert: AMD and Intel GPUs
# ------------------------------------------------------------------------------------------------
CH = ChRun(binds=(), image="/images/rocm-env", command=("python", "train.py"))


@pytest.mark.parametrize("kwargs, nv, rocm, needle", [
    ({}, False, False, ""),
    ({"nvidia": True}, True, False, "--nv binds the host's NVIDIA driver"),
    ({"gpu": "nvidia"}, True, False, "--nv binds the host's NVIDIA driver"),
    ({"gpu": "nvidia", "nvidia": True}, True, False, "--nv binds"),
    ({"gpu": "amd"}, False, True, "--rocm makes the AMD GPUs' devices visible"),
    ({"gpu": "AMD"}, False, True, "binds the host's ROCm libraries"),
    ({"gpu": "intel"}, False, False, "Intel GPUs take no Apptainer option"),
    ({"gpu": "none"}, False, False, ""),
])
def test_to_apptainer_writes_the_flag_of_the_jobs_gpus(kwargs, nv, rocm, needle):
    conv = to_apptainer(CH, **kwargs)
    assert (conv.result.nv, conv.result.rocm) == (nv, rocm)
    words = argv(conv.result)
    assert ("--nv" in words, "--rocm" in words) == (nv, rocm)
    assert words.index("/images/rocm-env") > max([words.index(f) for f in ("--nv", "--rocm") if f in words] or [0])
    assert conv.result.problems() == []
    if needle:
        assert _noted(conv, needle), conv.notes
    else:
        assert not _noted(conv, "--nv") and not _noted(conv, "--rocm") and not _noted(conv, "Intel")


def test_intel_gpus_under_contain_need_dev_dri_bound():
    assert _noted(to_apptainer(CH.replace(private_tmp=True), gpu="intel"), "--contain", "--bind /dev/dri")
    assert not _noted(to_apptainer(CH, gpu="intel"), "--bind /dev/dri")


@pytest.mark.parametrize("kwargs, needle", [
    ({"gpu": "radeon"}, "gpu='radeon' is no GPU vendor"),
    ({"gpu": ["amd"]}, "gpu=['amd'] is no GPU vendor"),
    ({"gpu": "amd", "nvidia": True}, "name two vendors"),
    ({"gpu": "intel", "nvidia": True}, "name two vendors"),
])
def test_to_apptainer_refuses_a_vendor_it_cannot_tell(kwargs, needle):
    with pytest.raises(HpcWidgetsError, match=re.escape(needle)) as err:
        to_apptainer(CH, **kwargs)
    assert "gpu='amd'" in str(err.value) or "gpu='nvidia'" in str(err.value)


def test_rocm_to_charliecloud_adds_no_injection_and_says_why():
    """ch-fromhost has an --nvidia mode and no ROCm one: an NVIDIA job gets the injection step, an AMD job none, with a
    note naming what --rocm did that ch-run does not and the by-name way (ch-fromhost --path)."""
    nvidia = to_charliecloud(ApptainerRun(nv=True, image="/img/pt.sif", command=("python", "t.py")))
    assert any(isinstance(s, ChFromhost) for s in nvidia.steps)
    amd = to_charliecloud(ApptainerRun(rocm=True, image="/img/pt.sif", command=("python", "t.py")))
    assert not any(isinstance(s, ChFromhost) for s in amd.steps)
    assert _noted(amd, "ch-fromhost has no ROCm mode", "/dev/kfd", "/dev/dri", "ROCm libraries",
                  "LD_LIBRARY_PATH", "ch-fromhost --path")
    assert not _noted(amd, "--nvidia' copies")
    # and back again for the AMD site: the flag returns, the image is the unpacked directory
    back = to_apptainer(amd.result, gpu="amd").result
    assert back.rocm and not back.nv and back.image == amd.result.image


# ------------------------------------------------------------------------------------------------
# 4 · the cache variable follows the site
# ------------------------------------------------------------------------------------------------
def test_prose_that_names_apptainers_cache_variables_names_singularitys_too():
    found = 0
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            text = cell_source(cell)
            if cell["cell_type"] != "markdown":
                continue
            for kind in ("CACHEDIR", "TMPDIR"):
                if f"APPTAINER_{kind}" in text:
                    found += 1
                    assert f"SINGULARITY_{kind}" in text, (path.name, cell.get("id"), text)
    assert found >= 2


@pytest.mark.parametrize("profile, want, other", [
    ("generic", "APPTAINER_CACHEDIR", "SINGULARITY_CACHEDIR"),
    (str(SINGULARITY_SITE), "SINGULARITY_CACHEDIR", "APPTAINER_CACHEDIR"),
])
def test_lesson_02s_pull_and_its_lint_name_the_sites_variable(profile, want, other, isolated_profiles):
    runs = {cid: printed for cid, printed, _ in run_lesson_in_process("02", profile, skip=("02-14", "02-15"))}
    for cid in ("02-06", "02-08"):
        assert want in runs[cid] and other not in runs[cid], (cid, runs[cid])
    # no code cell of the lessons this session changed writes a cache variable by hand
    for lesson in ("00", "02", "08", "09", "11", "12"):
        for cell in lesson_cells(lesson):
            if cell["cell_type"] == "code":
                assert not re.search(r"(APPTAINER|SINGULARITY)_(CACHEDIR|TMPDIR)", cell_source(cell)), lesson


# ------------------------------------------------------------------------------------------------
# 5 · the refresher saves a changed widget state; the lessons hold the current one
# ------------------------------------------------------------------------------------------------
def _with_widgets(models: dict[str, dict]) -> dict:
    return {"cells": [], "metadata": {"widgets": {refresh._WIDGET_STATE: {"state": models}}}}


def _text_model(placeholder: str, layout: str) -> dict:
    return {"model_name": "TextModel", "model_module": "@jupyter-widgets/controls",
            "state": {"placeholder": placeholder, "description": "Nodes", "layout": f"IPY_MODEL_{layout}"}}


def _layout() -> dict:
    return {"model_name": "LayoutModel", "model_module": "@jupyter-widgets/base", "state": {"width": "26em"}}


def test_widget_state_is_compared_without_its_ids_and_order():
    one = _with_widgets({"aa11": _layout(), "bb22": _text_model("≥ 1 (empty: default)", "aa11")})
    two = _with_widgets({"ff99": _text_model("≥ 1 (empty: default)", "ee88"), "ee88": _layout()})
    assert refresh.widget_models(one) == refresh.widget_models(two)
    assert refresh.widgets_changed(one, two) == ""
    stale = _with_widgets({"aa11": _layout(), "bb22": _text_model("1–, empty for the default", "aa11")})
    said = refresh.widgets_changed(stale, two)
    assert said.splitlines() == ["saved widget state differs from the widgets' now (2 models saved, 2 now)",
                                 "  - placeholder '1–, empty for the default'",
                                 "  + placeholder '≥ 1 (empty: default)'"]
    assert refresh.widgets_changed({"cells": [], "metadata": {}}, {"cells": [], "metadata": {}}) == ""


@pytest.fixture
def cluster_up(monkeypatch):
    monkeypatch.setattr(lessons, "practice_target", lambda *a, **k: lessons.Target("local", True, True, ""))


def test_refresh_saves_a_notebook_whose_only_change_is_its_widget_state(tmp_path, cluster_up, capsys):
    """The cell prints the same as before, so only the widget state tells that the form changed."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    code = 'import ipywidgets as w\nprint("form")\nw.Text(placeholder="≥ 1 (empty: default)", description="Nodes")'
    nb = new_notebook(cells=[new_code_cell('profile = "generic"', metadata={"tags": ["parameters"]}),
                             new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb" / "01-form.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    assert refresh.main([str(path), "--write"]) == 0, capsys.readouterr()
    first = json.loads(path.read_text(encoding="utf-8"))
    models = first["metadata"]["widgets"][refresh._WIDGET_STATE]["state"]
    text_id = next(k for k, m in models.items() if m["model_name"] == "TextModel")
    assert models[text_id]["state"]["placeholder"] == "≥ 1 (empty: default)"
    capsys.readouterr()

    # the saved state made by an older form: the outputs are the same, the placeholder is not
    models[text_id]["state"]["placeholder"] = "1–, empty for the default"
    path.write_text(json.dumps(first, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert refresh.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "outputs unchanged" in out and "- placeholder '1–, empty for the default'" in out
    assert "not saved (add --write to save)" in out
    assert refresh.main([str(path), "--write"]) == 0
    assert "01-form.ipynb: saved" in capsys.readouterr().out
    again = json.loads(path.read_text(encoding="utf-8"))
    placeholders = [m["state"].get("placeholder") for m in again["metadata"]["widgets"][refresh._WIDGET_STATE]["state"]
                    .values() if m["model_name"] == "TextModel"]
    assert placeholders == ["≥ 1 (empty: default)"]
    # and a run that finds nothing new leaves the file as it is
    before = path.read_bytes()
    assert refresh.main([str(path), "--write"]) == 0
    assert "left as it is" in capsys.readouterr().out and path.read_bytes() == before


#: the lessons whose saved forms were stale, and the form each one shows
FORMS = {"00": "WorkflowBuilder", "08": "WorkflowBuilder", "09": "WorkflowBuilder", "11": "JupyterJobBuilder"}


def _texts(state: dict, key: str) -> set[str]:
    return {m["state"][key] for m in state.values() if isinstance(m["state"].get(key), str) and m["state"][key]}


def _tree(root) -> dict:
    """The state of ``root`` and of every widget it holds, as a notebook saves it (by model id)."""
    import ipywidgets
    found: dict = {}
    todo = [root]
    while todo:
        widget = todo.pop()
        if not isinstance(widget, ipywidgets.Widget) or widget.model_id in found:
            continue
        found[widget.model_id] = {"state": widget.get_state()}
        for name in widget.keys:
            value = getattr(widget, name, None)
            todo += list(value) if isinstance(value, (list, tuple)) else [value]
    return found


@pytest.mark.parametrize("key", ["placeholder", "tooltip"])
@pytest.mark.parametrize("lesson", sorted(FORMS))
def test_the_saved_forms_show_the_texts_of_the_current_widgets(lesson, key, isolated_profiles):
    """Every placeholder and tooltip a lesson's saved form shows is one the current form writes (the forms' number
    fields said '1–, empty for the default' before they said '≥ 1 (empty: default)')."""
    from hpcwidgets import widgets
    model = {"00": "multi-node-torchrun", "08": "single-gpu", "09": "multi-node-torchrun", "11": "jupyter"}[lesson]
    builder = getattr(widgets, FORMS[lesson])(lessons.example(model, "generic"), profile="generic")
    now = _texts(_tree(builder), key)
    path = next(NOTEBOOKS.glob(f"{lesson}-*.ipynb"))
    saved = _texts(json.loads(path.read_text(encoding="utf-8"))["metadata"]["widgets"][refresh._WIDGET_STATE]["state"],
                   key)
    assert saved and saved <= now, sorted(saved - now)


def _with_widget_state() -> list[str]:
    """The lessons that save widget state (a form, a findings view): each is checked by re-executing it."""
    out = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        widgets = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("widgets", {})
        if widgets.get(refresh._WIDGET_STATE, {}).get("state"):
            out.append(path.name[:2])
    return out


def test_every_lesson_with_forms_saves_widget_state():
    assert set(FORMS) <= set(_with_widget_state())


@pytest.mark.slow
@pytest.mark.parametrize("lesson", _with_widget_state())
def test_re_executing_the_lesson_leaves_its_widget_state_as_saved(lesson):
    result = refresh.refresh(next(NOTEBOOKS.glob(f"{lesson}-*.ipynb")), write=False)
    assert not result.error, result.error
    assert result.widgets == "", result.widgets
