"""Session 18's input fixes (audit A4: F6, F8).

- F6: digits other than ASCII 0-9 (full-width ``１``, which a Japanese input method types; Arabic-Indic ``٠١``;
  superscript ``²``) pass Python's ``int()``, ``str.isdigit()`` and ``\\d``, but not Slurm's parsers
  (``_is_valid_timespec`` in src/common/parse_time.c and ``strtol`` read only '0'-'9'): the job model refuses them in
  times, arrays, memory sizes and --signal, naming the ASCII text to type, and lint reports them through the job's
  own rules (HPC301, HPC302, HPC304, HPC399).
- F8: a profile saved with a UTF-8 byte-order mark is read without it; ``profile check`` notes it.
"""

from __future__ import annotations

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import ProfileError
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile, profile_from_toml, profile_notes
from hpcwidgets.spec import SlurmJob
from hpcwidgets.spec.slurm import array_problem, array_task_ids, signal_problem
from hpcwidgets.spec.units import non_ascii_digits, parse_mem, parse_time

FIX = "Slurm reads only the ASCII digits 0-9"


# --- F6: digits Slurm does not read ---------------------------------------------------------------

@pytest.mark.parametrize("text,typed", [
    ("１:００:００", "1:00:00"),     # full-width digits
    ("１：００：００", "1:00:00"),   # full-width colons too, as the same input method types them
    ("٠١:٠٠:٠٠", "01:00:00"),      # Arabic-Indic digits
    ("۲-۰۰:۰۰:۰۰", "2-00:00:00"),  # Persian digits, with an ASCII dash
    ("1:3０", "1:30"),             # one digit among ASCII ones
])
def test_a_time_with_non_ascii_digits_is_refused_with_the_ascii_spelling(text, typed):
    with pytest.raises(ValueError) as exc:
        parse_time(text)
    assert str(exc.value) == f"{text!r}: {FIX}, not full-width or other scripts' digits; type {typed}"
    assert parse_time(typed) > 0  # the text offered is one Slurm reads


def test_a_time_without_digits_keeps_the_message_with_the_forms():
    with pytest.raises(ValueError, match="D-H:M:S"):
        parse_time("une heure")


@pytest.mark.parametrize("text,typed", [("٤G", "4G"), ("１６G", "16G")])
def test_a_memory_size_with_non_ascii_digits_names_the_ascii_spelling(text, typed):
    with pytest.raises(ValueError, match=f"{FIX}.*; type {typed}$"):
        parse_mem(text)


@pytest.mark.parametrize("text", ["01:00:00", "16G", "0-15%4", "été", "", "a100:4"])
def test_text_with_only_ascii_digits_has_no_digit_problem(text):
    assert non_ascii_digits(text) == ""


@pytest.mark.parametrize("spec,typed", [("٠-٣", "0-3"), ("0-3%²", "0-3%2"), ("１,３,５", "1,3,5"), ("0-15%４", "0-15%4")])
def test_an_array_with_non_ascii_digits_is_refused(spec, typed):
    assert array_problem(spec) == f"{spec!r}: {FIX}, not full-width or other scripts' digits; type {typed}"
    assert array_task_ids(spec) is None
    assert array_problem(typed) == ""


@pytest.mark.parametrize("value,typed", [("USR1@²", "USR1@2"), ("USR1@٩٠", "USR1@90"), ("٩", "9"), ("B:USR1@１２０", "B:USR1@120")])
def test_a_signal_with_non_ascii_digits_is_refused_not_a_crash(value, typed):
    # "²".isdigit() is true but int("²") raises: the check used to end in an internal error
    assert signal_problem(value).endswith(f"type --signal={typed}")
    assert signal_problem(typed) == ""


def test_the_job_model_reports_each_field_with_non_ascii_digits():
    job = SlurmJob(time="１:００:００", array="٠-٣", mem="٤G", extra_directives=("--signal=USR1@٩٠",))
    problems = {p.field: p.message for p in job.problems()}
    assert set(problems) == {"time", "array", "mem", "extra_directives"}
    assert all(FIX in message for message in problems.values())
    assert SlurmJob(time="1:00:00", array="0-3", mem="4G", extra_directives=("--signal=USR1@90",)).problems() == []


def test_set_refuses_a_full_width_time(capsys):
    assert main(["sbatch", "--set", "time=１:００:００"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"--time: '１:００:００': {FIX}" in captured.err and "type 1:00:00" in captured.err


@pytest.mark.parametrize("profile", [None, "generic"])
def test_lint_reports_non_ascii_digits_with_the_rules_of_the_job_fields(profile):
    script = ("#!/bin/bash\n#SBATCH --time=٠١:٠٠:٠٠\n#SBATCH --mem=٤G\n#SBATCH --array=١-٤%２\n"
              "#SBATCH --signal=USR1@٩٠\nsrun hostname\n")
    found = {(f.code, f.line): f.message for f in lint(script, profile=profile) if FIX in f.message}
    assert set(found) == {("HPC301", 2), ("HPC302", 3), ("HPC304", 4), ("HPC399", 5)}
    assert found[("HPC301", 2)].endswith("type 01:00:00")


def test_lint_leaves_the_same_values_in_ascii_digits_alone():
    script = ("#!/bin/bash\n#SBATCH --time=01:00:00\n#SBATCH --mem=4G\n#SBATCH --array=1-4%2\n"
              "#SBATCH --signal=USR1@90\nsrun hostname\n")
    assert not [f for f in lint(script) if f.code in ("HPC301", "HPC302", "HPC304", "HPC399")]


def test_a_profile_time_limit_with_non_ascii_digits_is_refused():
    with pytest.raises(ProfileError, match=f"max_time.*{FIX}.*type 2-00:00:00"):
        profile_from_toml('name = "x"\n\n[[partitions]]\nname = "a"\nmax_time = "２-００:００:００"\n')


# --- F8: a profile saved with a byte-order mark -----------------------------------------------------

BOM = b"\xef\xbb\xbf"
SITE = 'name = "site"\n\n[[partitions]]\nname = "cpu"\nmax_time = "1-00:00:00"\n'


def test_a_profile_with_a_bom_is_read_as_without_it(tmp_path):
    path = tmp_path / "site.toml"
    path.write_bytes(BOM + SITE.encode())
    assert load_profile(path) == profile_from_toml(SITE)
    assert profile_from_toml("\ufeff" + SITE) == profile_from_toml(SITE)  # text pasted with its BOM


def test_errors_in_a_profile_with_a_bom_keep_their_place():
    with pytest.raises(ProfileError, match=r"^<profile>:1:8: not valid TOML"):
        profile_from_toml(BOM + b'name = \n')
    with pytest.raises(ProfileError, match=r"line 2: gpu_vendor"):
        profile_from_toml(BOM + b'name = "x"\ngpu_vendor = "geforce"\n')


def test_profile_check_notes_the_bom_and_how_to_remove_it(tmp_path, capsys):
    path = tmp_path / "site.toml"
    path.write_bytes(BOM + SITE.encode())
    assert main(["profile", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "is valid" in captured.out
    assert f"note: {path} starts with a UTF-8 byte-order mark" in captured.err
    assert f"sed -i '1s/^\\xEF\\xBB\\xBF//' {path}" in captured.err
    path.write_bytes(SITE.encode())
    assert profile_notes(path) == []


def test_a_profile_with_a_bom_is_found_by_the_name_inside_it(tmp_path, monkeypatch):
    (tmp_path / "other.toml").write_bytes(BOM + b'name = "site"\n')
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    with pytest.raises(ProfileError, match="other.toml has name = 'site'.*rename the file to site.toml"):
        load_profile("site")
