"""Session 11 (audit H2): the Python API's and the models' handling of bad input.

Unreadable profiles and folders, a profile whose name is not its file's, wrong-typed values in a profile; a saved
model missing a required field (every kind); lint/fix_script/render/parse_* given something that is not a script or
a model; lint's select/ignore checked like the CLI's; counts written as text; ``--time=-1``; ``--env NAME``
without a value.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from pathlib import Path

import pytest

import hpcwidgets as h
from hpcwidgets.errors import HpcWidgetsError, ParseError, ProfileError, ValidationError
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint, rule_codes
from hpcwidgets.parse import parse_command, parse_job, parse_script, read_script
from hpcwidgets.profiles import list_profiles, load_profile
from hpcwidgets.render import render
from hpcwidgets.spec import EnvVar, SlurmJob, Torchrun, Workflow
from hpcwidgets.spec._meta import all_kinds, spec_class
from hpcwidgets.spec.units import UNLIMITED, parse_time

REPRO = "#!/bin/bash\n#SBATCH -N 2\n#SBATCH --gres=gpu:4\nsrun --ntasks-per-node=4 torchrun --nnodes=2 " \
        "--nproc-per-node=4 t.py\n"


# ------------------------------------------------------------------------------------------------
# finding 3: a profile file or folder that cannot be read
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def locked(isolated_profiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on $HPCW_PROFILE_PATH that cannot be read or searched, as for a user without permission (simulated:
    the tests run as root too, whom permissions do not stop). Python 3.11's Path.is_file raises there."""
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "generic.toml").write_text('name = "generic"\n')
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(folder))
    real_is_file, real_scandir = Path.is_file, os.scandir

    def is_file(self: Path) -> bool:
        if self.parent == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    def scandir(path=".") -> object:  # noqa: ANN001
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    monkeypatch.setattr(os, "scandir", scandir)
    return folder


def test_a_folder_that_cannot_be_read_is_skipped_and_the_shipped_profiles_still_load(locked: Path) -> None:
    assert load_profile("generic").partitions  # the shipped one, not the locked folder's
    notes: list[str] = []
    assert "generic" in list_profiles(notes=notes)
    assert len(notes) == 1 and str(locked) in notes[0] and "permission denied" in notes[0]
    assert "HPCW_PROFILE_PATH" in notes[0]


def test_an_unknown_name_says_which_folder_was_skipped(locked: Path) -> None:
    with pytest.raises(ProfileError) as exc:
        load_profile("nope")
    message = str(exc.value)
    assert "unknown profile 'nope'" in message and f"note: skipped {locked}: permission denied" in message


def test_a_profile_file_that_cannot_be_read_names_the_file_and_the_fix(
        isolated_profiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    locked = folder / "x.toml"
    locked.write_text('name = "x"\n')
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(folder))
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "x.toml":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    for given in ("x", str(locked)):
        with pytest.raises(ProfileError) as exc:
            load_profile(given)
        message = str(exc.value)
        assert f"cannot read the profile {locked}: permission denied" in message
        assert "chmod u+r" in message and "HPCW_PROFILE_PATH" in message


def test_a_profile_path_behind_a_folder_that_cannot_be_searched(
        isolated_profiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "private" / "site.toml"

    def is_file(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_file", is_file)
    with pytest.raises(ProfileError, match="cannot read the profile .*site.toml: permission denied"):
        load_profile(target)


# ------------------------------------------------------------------------------------------------
# finding 18: a profile whose name is not its file's; values of the wrong type in a profile
# ------------------------------------------------------------------------------------------------
def test_a_profile_named_otherwise_than_its_file_is_an_error_naming_both_fixes(
        isolated_profiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "typo4.toml").write_text('name = "other"\n')
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    with pytest.raises(ProfileError) as exc:
        load_profile("typo4")
    assert "name = 'other'" in str(exc.value) and "typo4.toml" in str(exc.value)
    assert "other.toml" in str(exc.value) and 'name = "typo4"' in str(exc.value)
    with pytest.raises(ProfileError) as exc:
        load_profile("other")
    assert "typo4.toml has name = 'other'" in str(exc.value) and "rename the file to other.toml" in str(exc.value)


def test_saving_a_profile_on_the_search_path_under_another_name_is_refused(
        isolated_profiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpcwidgets.profiles import save_profile
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    profile = load_profile("generic").replace(name="mysite")
    with pytest.raises(ProfileError, match="save it as .*mysite.toml"):
        save_profile(profile, tmp_path / "site.toml")
    assert not (tmp_path / "site.toml").exists()
    assert load_profile(save_profile(profile, tmp_path / "mysite.toml").stem).name == "mysite"


def test_a_profile_loaded_by_path_outside_the_search_path_keeps_its_name(isolated_profiles, tmp_path: Path) -> None:
    path = tmp_path / "draft.toml"
    path.write_text('name = "mysite"\n')
    assert load_profile(path).name == "mysite"


def test_a_profile_value_of_the_wrong_type_says_which_profile_and_line(
        isolated_profiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lh.toml").write_text('name = "lh"\nlogin_host = 5\n[modules]\ncuda = 7\n'
                                      '[[partitions]]\nname = "a"\nmax_time = 3\n')
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    with pytest.raises(ProfileError) as exc:
        load_profile("lh")
    message = str(exc.value)
    assert "profile 'lh' is not valid (3 problems)" in message
    assert "line 2: login_host: expected text, got 5" in message
    assert "line 4, module 'cuda': cuda = 7 is not a module name" in message
    assert "line 7, partition 'a': partitions[0].max_time" in message


# ------------------------------------------------------------------------------------------------
# finding 4: a saved model missing a required field, for every kind
# ------------------------------------------------------------------------------------------------
def _required(cls: type) -> list[str]:
    return [f.name for f in cls.field_specs() if f.default is dataclasses.MISSING]


@pytest.mark.parametrize("kind", sorted(all_kinds()))
def test_every_kind_loaded_without_a_required_field_names_the_field(kind: str) -> None:
    cls = all_kinds()[kind]
    try:
        cls.from_dict({"kind": kind})
    except ValidationError as exc:
        assert {p.field for p in exc.problems} >= set(_required(cls))
        assert all("missing:" in p.message for p in exc.problems if p.field in _required(cls))
    else:
        assert not _required(cls)
    for name in _required(cls):  # each one left out, the others given
        data = {"kind": kind, **{n: "x" for n in _required(cls) if n != name}}
        with pytest.raises(ValidationError) as raised:
            cls.from_dict(data)
        assert [p.field for p in raised.value.problems] == [name]


def test_a_missing_field_of_a_nested_model_is_named_by_its_path() -> None:
    data = {"program": ["python", "train.py"],
            "container": {"kind": "apptainer.run", "image": "x.sif", "binds": [{"dst": "/data"}]},
            "exports": [{"value": "1"}]}
    with pytest.raises(ValidationError) as exc:
        Workflow.from_dict(data)
    fields = {p.field: p.message for p in exc.value.problems}
    assert set(fields) == {"container.binds[0].src", "exports[0].name"}
    assert "a Bind needs src (Host path" in fields["container.binds[0].src"]
    with pytest.raises(ValidationError, match="name: missing: a SweepAxis needs name"):
        spec_class("sweep.axis").from_dict({})


WRONG = (None, 1, 1.5, "x", "", [], ["x"], [1], {}, {"kind": "bind"}, True, {"verbatim": "x"}, {"verbatim": 1})


@pytest.mark.parametrize("kind", sorted(all_kinds()))
def test_no_loaded_value_of_any_kind_crashes_from_dict_or_problems(kind: str) -> None:
    """Every field of every kind given each shape of wrong value: a ValidationError, or a model whose problems()
    answers; never a TypeError from the constructor (a nested model without its required field)."""
    cls = all_kinds()[kind]
    base = {n: "x" for n in _required(cls)}
    for f in cls.field_specs():
        for value in WRONG:
            try:
                model = cls.from_dict({**base, f.name: value})
            except HpcWidgetsError:
                continue
            model.problems()


def test_a_nested_object_of_the_wrong_kind_says_so_before_its_own_problems() -> None:
    with pytest.raises(ValidationError) as exc:
        h.JupyterJob.from_dict({"container": {"kind": "bind"}})
    assert [str(p) for p in exc.value.problems] == [
        "container: expected one of apptainer.run, charliecloud.run, got kind 'bind'"]


# ------------------------------------------------------------------------------------------------
# finding 7: the API given the wrong type; select=/ignore=
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, fragment", [
    (lambda: lint(pathlib.Path("job.sh")), "lint(Path('job.sh').read_text())"),
    (lambda: lint(None), "lint() takes the script's text (str) or a model, got None"),
    (lambda: lint(b"#!/bin/bash\n"), "data.decode()"),
    (lambda: lint({"kind": "workflow"}), "Workflow.from_dict(data)"),
    (lambda: fix_script(None), "fix_script() takes the script's text (str), got None"),
    (lambda: fix_script(pathlib.Path("job.sh")), "hpcwidgets lint --fix FILE"),
    (lambda: render(None), "render() takes a model"),
    (lambda: render({"kind": "workflow"}), "render(Workflow.from_dict(data))"),
    (lambda: render({"kind": "slurm.job"}), "spec_class('slurm.job').from_dict(data)"),
    (lambda: render({"kind": "workflow"}, validate=False), "render(Workflow.from_dict(data))"),
    (lambda: render("#!/bin/bash\n"), "parse_script(text)"),
])
def test_lint_fix_and_render_refuse_what_they_cannot_take_naming_the_fix(call, fragment: str) -> None:
    with pytest.raises(HpcWidgetsError) as exc:
        call()
    assert fragment in str(exc.value)


@pytest.mark.parametrize("call, fragment", [
    (lambda: parse_script(None), "parse_script() takes the script's text (str), got None"),
    (lambda: parse_script(b"#!/bin/bash\n"), "parse_script(data.decode())"),
    (lambda: parse_script(pathlib.Path("job.sh")), "hpcwidgets parse FILE"),
    (lambda: parse_job(None), "parse_job()"),
    (lambda: read_script(7), "read_script() takes the script's text (str), got int 7"),
    (lambda: parse_command(None), "parse_command()"),
])
def test_the_parsers_refuse_what_is_not_text_with_a_parse_error(call, fragment: str) -> None:
    with pytest.raises(ParseError) as exc:
        call()
    assert fragment in str(exc.value)


def test_a_real_model_error_inside_render_is_not_hidden() -> None:
    with pytest.raises(ValidationError):
        render(Workflow(program=()))


@pytest.mark.parametrize("select", ["HPC101", "hpc101", ["hpc101"], ("HPC101",), {"HPC101"}, " HPC101, HPC102 "])
def test_select_takes_text_or_a_list_in_any_case(select) -> None:
    assert [f.code for f in lint(REPRO, select=select)] == ["HPC101"]


def test_ignore_takes_text_in_any_case() -> None:
    assert "HPC101" in {f.code for f in lint(REPRO)}
    assert "HPC101" not in {f.code for f in lint(REPRO, ignore="hpc101")}


@pytest.mark.parametrize("codes, fragment", [
    (["HPC1O1"], "select: unknown rule code HPC1O1 (did you mean HPC101?)"),
    ("HPC9999", "select: unknown rule code HPC9999; give codes or their groups"),
    ([101], "expected rule codes as text"),
    (101, "expected rule codes"),
])
def test_an_unknown_code_is_refused_as_the_cli_does(codes, fragment: str) -> None:
    with pytest.raises(HpcWidgetsError) as exc:
        lint(REPRO, select=codes)
    assert fragment in str(exc.value)
    with pytest.raises(HpcWidgetsError, match="--ignore: unknown rule code HPC9999.*hpcwidgets lint --select"):
        rule_codes("HPC9999", "--ignore")


def test_a_number_in_a_text_field_says_how_to_write_it() -> None:
    problems = {p.field: p.message for p in Torchrun(script="t.py", nnodes=2).problems()}
    assert problems["nnodes"] == "Nodes: expected text, got 2; write it as text: '2'"
    assert "write it as text: '0.5'" in str(Torchrun(script="t.py", rdzv_conf=0.5).problems()[0])


# ------------------------------------------------------------------------------------------------
# finding 11: a count written as text
# ------------------------------------------------------------------------------------------------
def test_a_count_written_as_text_in_a_saved_model_is_the_number() -> None:
    wf = Workflow.from_json('{"kind":"workflow","program":["a"],"job":{"kind":"slurm.job","nodes":"2",'
                            '"cpus_per_task":"4"}}')
    assert (wf.job.nodes, wf.job.cpus_per_task) == (2, 4)
    assert Workflow.from_dict({"program": ["a"], "job": {"nodes": "2-4"}}).job.nodes == "2-4"
    with pytest.raises(ValidationError, match="expected a whole number"):
        Workflow.from_dict({"program": ["a"], "job": {"cpus_per_task": 4.5}})


def test_a_count_given_as_text_in_python_says_to_drop_the_quotes() -> None:
    messages = [str(p) for p in SlurmJob(nodes="2", cpus_per_task="4").problems()]
    assert "nodes: Nodes: '2' is text; write the number without quotes: 2" in messages
    assert any(m.startswith("cpus_per_task:") and m.endswith("write the number without quotes: 4") for m in messages)
    assert not SlurmJob(nodes="2-4").problems()


# ------------------------------------------------------------------------------------------------
# finding 15: --time=-1 is Slurm's "no limit"
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["-1", "INFINITE", "unlimited", "0", "00:00:00", "0-0"])
def test_slurm_reads_these_times_as_no_limit(text: str) -> None:
    assert parse_time(text) == UNLIMITED


def test_time_minus_one_is_not_flagged_but_other_negatives_are() -> None:
    assert "HPC301" not in {f.code for f in lint("#!/bin/bash\n#SBATCH --time=-1\nsrun true\n")}
    assert "HPC301" in {f.code for f in lint("#!/bin/bash\n#SBATCH --time=-2\nsrun true\n")}
    assert parse_time("0:30") == 30


# ------------------------------------------------------------------------------------------------
# finding 18: NAME without =VALUE
# ------------------------------------------------------------------------------------------------
def test_a_variable_without_a_value_is_a_problem_not_an_empty_value() -> None:
    problems = EnvVar.from_token("FOO").problems()
    assert [p.field for p in problems] == ["value"]
    assert "FOO=VALUE" in problems[0].message and "FOO=$FOO" in problems[0].message
    assert not EnvVar.from_token("FOO=").problems() and EnvVar.from_token("FOO=").value == ""
    assert not EnvVar.from_token("$PAIRS").problems()
    with pytest.raises(ValidationError, match="'FOO' has no value"):
        render(SlurmJob(env=(EnvVar.from_token("FOO"),)))


def test_the_cli_refuses_env_without_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    from hpcwidgets.cli import main
    assert main(["sbatch", "--env", "FOO"]) == 2
    assert "'FOO' has no value; write FOO=VALUE" in capsys.readouterr().err
    assert main(["apptainer", "exec", "--env", "FOO", "x.sif", "python"]) == 2
    assert "FOO=VALUE" in capsys.readouterr().err
