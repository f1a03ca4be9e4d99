"""The lessons' parameters cell and their saved outputs; the lesson refresher (hpcwidgets.lessons.refresh)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hpcwidgets import lessons
from hpcwidgets.lessons import refresh

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("notebooks", "solutions", "exercises")


def _notebooks() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.ipynb"))


def _source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def _outputs_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/plain", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


# ------------------------------------------------------------------------------------------------
# the committed notebooks
# ------------------------------------------------------------------------------------------------
def test_there_are_notebooks_in_each_folder():
    for folder in FOLDERS:
        assert list((ROOT / folder).glob("*.ipynb")), f"{folder}/ has no notebooks"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_notebook_carries_an_injected_parameters_cell(path):
    """papermill -p adds a cell tagged injected-parameters after the parameters cell; committed, it runs after the
    reader's own parameters cell and undoes an edit of profile there."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = refresh.injected_cells(nb)
    assert not found, (f"{path.relative_to(ROOT)}: cell(s) {found} are tagged injected-parameters; re-execute it with "
                       "python -m hpcwidgets.lessons.refresh --write, which removes them")


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_no_saved_lesson_output_is_a_path_repr(path):
    """A drawing helper returns the picture's path; a lesson shows the picture in Markdown, not that value."""
    for i, cell in enumerate(_cells(path)):
        assert not re.search(r"\b(?:Posix|Windows)?Path\('", _outputs_text(cell)), \
            f"{path.name}: cell {i} shows a Path object as its value"


def test_lesson_04s_leak_cell_shows_only_what_its_prose_is_about():
    path = ROOT / "notebooks" / "04-gpus-and-environment.ipynb"
    cell = next(c for c in _cells(path) if c["cell_type"] == "code" and "leaky = " in _source(c))
    codes = re.findall(r"\bHPC\d{3}\b", _outputs_text(cell))
    assert codes == ["HPC209"], f"the ~/.local cell of lesson 04 shows {codes}, not HPC209 alone"


def test_the_quickstart_says_what_its_submit_argument_does():
    """Lesson 00's form passes submit=...; the text before it must not promise a Submit button the cell hides."""
    cells = _cells(ROOT / "notebooks" / "00-quickstart.ipynb")
    index = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and "WorkflowBuilder" in _source(c))
    prose = next(_source(c) for c in reversed(cells[:index]) if c["cell_type"] == "markdown")
    argument = re.search(r"submit=(\w+)", _source(cells[index]))
    if argument and argument.group(1) == "False":
        assert "submit=False" in prose and "Submit" in prose, prose
    else:
        assert "Submit" in prose, prose


# ------------------------------------------------------------------------------------------------
# the refresher
# ------------------------------------------------------------------------------------------------
def _tiny(folder: Path, body: str = "") -> Path:
    """A notebook as papermill -p leaves it: a parameters cell, an injected one after it, a cell that prints."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    body = body or ('import os, pathlib\n'
                    'pathlib.Path("images").mkdir(exist_ok=True)\n'
                    'pathlib.Path("images/drawn.txt").write_text(profile)\n'
                    'print("profile:", profile, "| env:", os.environ.get("HPCW_REFRESH_PROBE"), '
                    '"| cwd:", pathlib.Path.cwd().name)')
    nb = new_notebook(cells=[
        new_markdown_cell("# a lesson"),
        new_code_cell('profile = "midway3"', metadata={"tags": ["parameters"]}),
        new_code_cell('# Parameters\nprofile = "generic"\n', metadata={"tags": ["injected-parameters"]}),
        new_code_cell(body),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["papermill"] = {"parameters": {"profile": "generic"}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "01-tiny.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def cluster_up(monkeypatch):
    monkeypatch.setattr(lessons, "practice_target", lambda *a, **k: lessons.Target("local", True, True, ""))
    monkeypatch.setenv("HPCW_REFRESH_PROBE", "seen")


def test_refresh_shows_changes_without_touching_the_folder_then_writes_without_the_injected_cell(
        tmp_path, cluster_up, capsys):
    folder = tmp_path / "lessons-copy"
    path = _tiny(folder)
    before = path.read_bytes()

    assert refresh.main([str(path)]) == 0
    shown = capsys.readouterr().out
    assert "1 injected-parameters cell(s) removed" in shown
    assert "outputs changed in 1 cell(s): 2 (id " in shown
    # the run used the parameters cell (not the injected one), the environment and a copy of the folder
    assert "+profile: midway3 | env: seen | cwd: lessons-copy" in shown
    assert "not saved (add --write to save)" in shown
    assert path.read_bytes() == before and not (folder / "images").exists()

    assert refresh.main([str(path), "--write"]) == 0
    assert "01-tiny.ipynb: saved" in capsys.readouterr().out
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert refresh.injected_cells(saved) == [] and len(saved["cells"]) == 3
    assert "papermill" not in saved["metadata"]
    assert _outputs_text(saved["cells"][2]) == "profile: midway3 | env: seen | cwd: lessons-copy\n"
    assert (folder / "images" / "drawn.txt").read_text() == "midway3"   # ran in the notebook's own folder
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]

    # run again: the same outputs, so the file is left as it is
    after = path.read_bytes()
    assert refresh.main([str(path), "--write"]) == 0
    out = capsys.readouterr().out
    assert "outputs unchanged" in out and "left as it is" in out
    assert path.read_bytes() == after


def test_refresh_does_not_save_a_failing_notebook(tmp_path, cluster_up, capsys):
    path = _tiny(tmp_path / "nb", body='raise ValueError("cell broke")')
    before = path.read_bytes()
    assert refresh.main([str(path), "--write"]) == 1
    out = capsys.readouterr().out
    assert "01-tiny.ipynb: not refreshed: cell 2 (id " in out and ") failed: ValueError: cell broke" in out
    assert path.read_bytes() == before


def test_refresh_saves_only_where_the_practice_cluster_answers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lessons, "practice_target",
                        lambda *a, **k: lessons.Target("generic", False, False, "no Slurm answers here"))
    path = _tiny(tmp_path / "nb")
    before = path.read_bytes()
    assert refresh.main([str(path), "--write"]) == 2
    err = capsys.readouterr().err
    assert "no Slurm answers here" in err and "--without-cluster" in err
    assert path.read_bytes() == before
    assert refresh.main([str(path), "--write", "--without-cluster"]) == 0
    assert refresh.injected_cells(json.loads(path.read_text(encoding="utf-8"))) == []


def test_refresh_refuses_what_is_not_a_notebook(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        refresh.main([str(tmp_path / "notes.md")])
    assert exc.value.code == 2 and "give .ipynb files" in capsys.readouterr().err
    result = refresh.refresh(tmp_path / "missing.ipynb")
    assert result.error.endswith("missing.ipynb: no such notebook") and not result.written
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    assert "not a notebook that nbformat can read" in refresh.refresh(broken).error


def test_outputs_are_compared_as_nbval_compares_them(tmp_path):
    """Widget model ids, pictures and execution counts do not count as changes; sanitize.cfg applies."""
    (tmp_path / "sanitize.cfg").write_text("[ids]\nregex: job \\d+\nreplace: job N\n", encoding="utf-8")
    subs = refresh.sanitizers(tmp_path)

    def cell(text, model, png, count):
        return {"cell_type": "code", "id": "c1", "execution_count": count, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": text},
            {"output_type": "display_data", "metadata": {}, "data": {
                "application/vnd.jupyter.widget-view+json": {"model_id": model}, "image/png": png,
                "text/plain": "Builder(...)"}}]}
    saved = {"cells": [cell("submitted job 41\n", "aaa", "AAA", 3)]}
    same = {"cells": [cell("submitted job 97\n", "bbb", "BBB", 9)]}
    other = {"cells": [cell("submitted job 97 twice\n", "bbb", "BBB", 9)]}
    assert refresh.changed_cells(saved, same, subs) == []
    assert refresh.changed_cells(saved, same) != []       # without the sanitizer the ids differ
    [(index, cid, diff)] = refresh.changed_cells(saved, other, subs)
    assert (index, cid) == (0, "c1") and "+submitted job N twice" in diff

    # a print split over two stream messages is the same output as one
    split = {"cells": [cell("submitted job 41\n", "aaa", "AAA", 3)]}
    split["cells"][0]["outputs"].insert(1, {"output_type": "stream", "name": "stdout", "text": "done\n"})
    joined = {"cells": [cell("submitted job 41\ndone\n", "aaa", "AAA", 3)]}
    assert refresh.changed_cells(split, joined) == []
    assert refresh.changed_cells(split, saved) != []

    (tmp_path / "sanitize.cfg").write_text("[broken]\nregex: (\n", encoding="utf-8")
    with pytest.raises(lessons.HpcWidgetsError, match="not an nbval sanitize file"):
        refresh.sanitizers(tmp_path)


def test_module_note_follows_the_sites_container_program(tmp_path):
    """On a SingularityCE site (runtimes = ["singularity"], its module under [modules] singularity) the lessons'
    module note names that module, not "the profile lists no apptainer"."""
    import hpcwidgets as hw
    from hpcwidgets import lessons
    site = tmp_path / "sce.toml"
    site.write_text('name = "sce"\ngpu_vendor = "nvidia"\nruntimes = ["singularity"]\napptainer_binary = "singularity"\n'
                    '[modules]\nsingularity = "singularity/4.1.5"\n'
                    '[[partitions]]\nname = "gpu"\nmax_time = "1-00:00:00"\ncpus_per_node = 32\n'
                    'mem_per_node = "256G"\ngpus_per_node = 4\n')
    prof = hw.load_profile(str(site))
    assert lessons.module_note(prof) == "singularity/4.1.5"
    assert lessons.module_note(hw.load_profile("midway3")) == hw.load_profile("midway3").module("apptainer")
