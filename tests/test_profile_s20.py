"""A broken site profile, as the session-20 audit wrote them, and what the [modules] keys are for.

One mistake gave three messages (gpus_per_node = -4, "four" or a misspelt gpus_per_nod also said "GPU types are listed
but GPUs per node is 0" and sent the person to change default_gpu_partition); malformed TOML said the reader's
"Illegal character '\\n'"; [modules] mistakes named internal classes or had no line; unknown keys said
"ClusterProfile has no field"; a text for a list, a profile without partitions and a broken profile in
`profile list` passed without a word; the template suggested cuda = "cuda/12.1" though no job loads it.
"""

from __future__ import annotations

import dataclasses

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import ProfileError
from hpcwidgets.profiles import load_profile, profile_from_toml, profile_to_toml, toml_error_place
from hpcwidgets.spec.profile import RUNTIME_PURPOSES, ClusterProfile, Partition

# a site with a CPU and a GPU partition; the GPU partition's count and the [modules] are filled in per test
SITE = '''\
name = "site"
gpu_vendor = "nvidia"
default_partition = "cpu"
default_gpu_partition = "gpu"
{top}
[modules]
apptainer = "apptainer"
{modules}
[[partitions]]
name = "cpu"
max_time = "2-00:00:00"
cpus_per_node = 64

[[partitions]]
name = "gpu"
max_time = "1-00:00:00"
{gpus}
gpu_types = ["a100"]
def_mem_per_gpu = "40G"

[[partitions]]
name = "gpu-big"
max_time = "1-00:00:00"
gpus_per_node = 8
'''


def site(gpus: str = "gpus_per_node = 4", modules: str = "", top: str = "") -> str:
    return SITE.format(gpus=gpus, modules=modules, top=top)


def problem_lines(text: str) -> list[str]:
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text, source="site.toml")
    lines = str(err.value).splitlines()
    return lines[1:] if len(lines) > 1 else lines


def line_no(text: str, start: str) -> int:
    """The number of the first line of ``text`` that starts with ``start``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def check(capsys, path) -> tuple[int, str, str]:
    code = main(["profile", "check", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_site_itself_is_valid():
    assert [p.name for p in profile_from_toml(site()).gpu_partitions()] == ["gpu", "gpu-big"]


# ------------------------------------------------------------------------------------------------
# finding 1: one mistake, one message
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gpus, said", [
    ("gpus_per_node = -4", "GPUs per node must be at least 0, got -4"),
    ('gpus_per_node = "four"', "expected a whole number, got 'four'; write a whole number without quotes"),
    ("gpus_per_node = true", "expected a whole number"),
    ("gpus_per_node = 4.5", "4.5 is not a whole number"),
    ("gpus_per_nod = 4", "a partition has no key 'gpus_per_nod' (did you mean 'gpus_per_node'?)"),
])
def test_a_wrong_gpu_count_is_reported_once_without_its_follow_ons(gpus, said):
    text = site(gpus)
    lines = problem_lines(text)
    assert len(lines) == 1, lines
    assert said in lines[0]
    where = line_no(text, "gpus_per_nod")
    assert f"line {where}, partition 'gpu': " in lines[0] or f"site.toml:{where}: partition 'gpu': " in lines[0]
    joined = "\n".join(lines)
    assert "GPU types are listed" not in joined and "has no GPUs" not in joined
    assert "def_mem_per_gpu" not in joined


def test_the_root_cause_is_reported_with_the_file_s_other_problems():
    """Only the follow-ons of the wrong value are left out: another problem of the same partition still shows."""
    text = site("gpus_per_nod = 4").replace('name = "gpu"\nmax_time = "1-00:00:00"', 'name = "gpu"\nmax_time = "xx"')
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text)
    assert "(2 problems)" in str(err.value)
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 2
    assert f"  - line {line_no(text, 'gpus_per_nod')}, partition 'gpu': a partition has no key 'gpus_per_nod'" \
        in lines[0]
    bad_time = line_no(text, 'max_time = "xx')
    assert lines[1].startswith(f"  - line {bad_time}, partition 'gpu': ")
    assert "'xx' is not a Slurm time" in lines[1]


def test_gpus_left_at_zero_on_purpose_still_gets_both_messages():
    """A count that is valid (0) is not a reported mistake: what follows from it is the problem."""
    joined = "\n".join(problem_lines(site("gpus_per_node = 0")))
    assert "GPU types are listed but GPUs per node is 0" in joined
    assert "default_gpu_partition: partition 'gpu' has no GPUs; use one with GPUs: gpu-big" in joined
    assert "def_mem_per_gpu is set but the partition has no GPUs" in joined


def test_the_model_itself_leaves_a_wrong_count_s_follow_ons_out():
    """Not only the file reader: a model holding -4 or text (a form) gets the count's own problem only."""
    for count in (-4, "four", None):
        part = Partition(name="gpu", gpus_per_node=count, gpu_types=("a100",), def_cpus_per_gpu=8, gpu_node_cpus=4)
        assert [p.field for p in part.problems()] == ["gpus_per_node"], count
        profile = ClusterProfile(name="s", gpu_vendor="nvidia", default_gpu_partition="gpu", partitions=(part,))
        assert [p.field for p in profile.problems()] == ["partitions.gpus_per_node"], count
    assert not Partition(name="gpu", gpus_per_node=-4).gpu_count_known
    assert Partition(name="gpu", gpus_per_node=0).gpu_count_known


def test_a_misspelt_partitions_table_is_the_only_message():
    text = site().replace("[[partitions]]", "[[partition]]")
    lines = problem_lines(text)
    assert len(lines) == 1, lines
    where = line_no(text, "[[partition]]")
    assert lines[0] == (f"site.toml:{where}: a profile has no [[partition]] tables (did you mean [[partitions]]?); "
                        "correct the name")


def test_a_partition_whose_name_is_unreadable_makes_no_default_problem():
    text = site().replace('name = "gpu"\n', 'nmae = "gpu"\n')
    lines = problem_lines(text)
    where = line_no(text, "nmae")
    assert lines == [f"site.toml:{where}: partition '#2': a partition has no key 'nmae' (did you mean 'name'?); "
                     "correct the name"]


def test_a_wrong_partitions_value_makes_no_default_problem():
    lines = problem_lines('name = "x"\ndefault_partition = "cpu"\npartitions = 5\n')
    assert len(lines) == 1 and lines[0].startswith("  - line 3: partitions: expected a [[partitions]] table")


# ------------------------------------------------------------------------------------------------
# finding 2: messages in the file's terms, with the fix
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, place, said", [
    ('name = "x"\nlogin_host = "login.example.edu\nscratch = "/s"\n', "2:32",
     "the value of login_host starts a quoted string that is not closed on its line: add the closing quote"),
    ('name = "x"\nscratch = /scratch\n', "2:11", "/scratch is not a TOML value: text goes in quotes (\"/scratch\")"),
    ('name = "x"\nruntimes = [apptainer]\n', "2:13", 'text goes in quotes ("apptainer")'),
    ('name = "x"\naccount_required = True\n', "2:20", "write true"),
    ('name = "x"\nscratch =\n', "2:10", "the value of scratch is missing: write one after '='"),
    ('name = "x"\n[[partitions]]\nname = "a"\nmax_time = 1-12:00:00\n', "4:13",
     'put it in quotes: max_time = "1-12:00:00"'),
    ('name = "x"\n[[partitions]]\nname = "a"\nmem_per_node = 250G\n', "4:19", 'mem_per_node = "250G"'),
    ('name = "x"\n[modules]\n[modules]\n', "3:9", "table [modules] is declared twice: merge the two"),
    ('name = "x"\nname = "y"\n', "2:11", "name is already set above in the same table: keep one of the two lines"),
    ('name = "x"\n[modules\n', "2:9", "the table header is not closed: write it as [name]"),
    ('name = "x"\nruntimes = ["apptainer" "singularity"]\n', "2:25", "separate its items with commas"),
    ('name = "x"\nruntimes = ["apptainer",\n', "2:25", "not closed before the end of the file: add the closing ]"),
    ('name = "x"\nscratch = "C:\\data"\n', "2:16", "write \\\\ for one backslash, or use single quotes"),
    ('name = "x"\ndescription = """several\nlines\n', "3:6", 'a string in triple quotes (""" or \'\'\') is not closed'),
    ('name = "x"\nlogin host = "a"\n', "2:7", "this line has no '=' after its key: write key = value"),
])
def test_malformed_toml_says_what_is_wrong_and_the_fix(text, place, said):
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text, source="site.toml")
    message = str(err.value)
    assert message.startswith(f"site.toml:{place}: not valid TOML: "), message
    assert said in message
    assert "\n" not in message
    for reader_words in ("Illegal character", "Invalid value", "Expected", "Cannot", "Unclosed", "Unterminated"):
        assert reader_words not in message


def test_a_toml_error_the_explanations_do_not_know_keeps_the_reader_s_words():
    class Unknown(ValueError):
        pass
    line, column, message = toml_error_place(Unknown("Something new (at line 1, column 2)"), "a = 1\n")
    assert (line, column) == (1, 2) and message.startswith("Something new")


def test_malformed_toml_through_the_cli_is_one_line_and_status_2(tmp_path, capsys):
    path = tmp_path / "site.toml"
    path.write_text('name = "site"\nlogin_host = "login.example.edu\n')
    code, out, err = check(capsys, path)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert f"{path.resolve()}:2:32: not valid TOML: the value of login_host" in err


def test_a_list_of_modules_under_one_key_says_one_name_per_key():
    lines = problem_lines(site(modules='cuda = ["cuda", "cudnn"]'))
    assert lines == ["  - line 8, module 'cuda': cuda = [\"cuda\", \"cudnn\"] is a list, but each [modules] key names "
                     "one module: write cuda = \"cuda/12.1\" (one module name per key; give another module a key of "
                     "its own)"]


def test_modules_written_as_text_says_to_write_a_table():
    text = site().replace("[modules]\napptainer = \"apptainer\"\n", 'modules = "apptainer"\n')
    lines = problem_lines(text)
    assert len(lines) == 1, lines
    assert lines[0].startswith("  - line 6: modules: \"apptainer\" is text, but modules is a table: write [modules] "
                               "on a line of its own")
    assert "Module" not in lines[0]


def test_a_module_written_as_a_table_has_its_line():
    lines = problem_lines(site(modules='[modules.cuda]\nname = "cuda"\n'))
    assert lines == ["  - line 8, module 'cuda': [modules.cuda] is a table, but each [modules] key names one module: "
                     "write cuda = \"cuda/12.1\" under [modules] instead"]


def test_a_module_written_inline_or_dotted_has_its_line():
    for text in ('name = "x"\nmodules = {cuda = ["a"]}\n', 'name = "x"\nmodules.cuda = ["a"]\n'):
        lines = problem_lines(text)
        assert len(lines) == 1 and lines[0].startswith("  - line 2, module 'cuda': cuda = [\"a\"] is a list"), lines


@pytest.mark.parametrize("text, said", [
    ('name = "x"\nqos_requred = true\n', "line 2: a profile has no key 'qos_requred' (did you mean 'qos_required'?)"),
    ('name = "x"\n[x]\ncuda = "cuda"\n', "line 2: a profile has no [x] table; remove it, or use one of its keys: "
                                         "account, account_required"),
    ('name = "x"\n[examples]\nimag = "/a"\n', "line 3: the [examples] table has no key 'imag' (did you mean 'image'?)"),
    ('name = "x"\n[[qos]]\nname = "short"\nmax_nodez = 4\n',
     "line 4: QOS 'short': a QOS has no key 'max_nodez' (did you mean 'max_nodes'?)"),
])
def test_unknown_keys_are_named_as_the_file_writes_them(text, said):
    """The file's only problem: ``FILE:LINE: message`` on one line (among others: ``- line N, …``)."""
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text, source="site.toml")
    message = str(err.value)
    assert message.startswith("site.toml:" + said.replace("line ", "", 1)), message
    for internal in ("ClusterProfile", "Partition", "ExampleSettings", "Qos ", "has no field"):
        assert internal not in message


def test_a_time_written_without_quotes_says_to_quote_it():
    lines = problem_lines('name = "x"\n[[partitions]]\nname = "a"\nmax_time = 12:00:00\n')
    assert lines == ["  - line 4, partition 'a': partitions[0].max_time: expected text, got the date or time "
                     "12:00:00; write it in quotes: \"12:00:00\""]


def test_every_problem_of_a_broken_file_is_one_line_with_its_place_and_status_2(tmp_path, capsys):
    path = tmp_path / "site.toml"
    path.write_text(site("gpus_per_nod = 4", modules='cuda = ["cuda", "cudnn"]', top='runtimes = "apptainer, x"'))
    code, out, err = check(capsys, path)
    assert code == 2 and out == "" and "Traceback" not in err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 3 and "(3 problems)" in err
    assert all(line.startswith("  - line ") for line in problems), problems


# ------------------------------------------------------------------------------------------------
# finding 3: the judgement calls
# ------------------------------------------------------------------------------------------------
def test_a_runtime_written_as_text_is_read_as_the_list_with_a_note(tmp_path, capsys):
    path = tmp_path / "site.toml"
    text = site(top='runtimes = "singularity"\napptainer_binary = "singularity"')
    path.write_text(text)
    assert load_profile(path).runtimes == ("singularity",)
    code, out, err = check(capsys, path)
    assert code == 0 and "is valid" in out
    where = line_no(text, "runtimes")
    assert (f'note: line {where}: runtimes = "singularity" is text, read as a list of one; write it as the list: '
            'runtimes = ["singularity"]') in err


def test_a_partition_list_key_written_as_text_gets_a_note_with_its_partition(tmp_path, capsys):
    path = tmp_path / "site.toml"
    text = site().replace('gpu_types = ["a100"]', 'gpu_types = "a100"')
    path.write_text(text)
    code, _, err = check(capsys, path)
    assert code == 0
    assert f"note: line {line_no(text, 'gpu_types')}, partition 'gpu': gpu_types = \"a100\" is text" in err
    path.write_text(site())
    assert "note" not in check(capsys, path)[2]


def test_several_runtimes_in_one_text_say_how_to_write_the_list():
    lines = problem_lines('name = "x"\nruntimes = "apptainer, singularity"\n')
    assert lines[0].endswith('; write a list: runtimes = ["apptainer", "singularity"]')


@pytest.mark.parametrize("text", ["", 'name = "nopart"\n'])
def test_a_profile_without_partitions_is_valid_with_a_note(tmp_path, capsys, text):
    path = tmp_path / "nopart.toml"
    path.write_text(text)
    code, out, err = check(capsys, path)
    assert code == 0 and "is valid: 0 partitions" in out
    assert "note: the profile has no [[partitions]] tables" in err and "profile detect" in err
    path.write_text(site())
    assert "[[partitions]]" not in check(capsys, path)[2]


def test_profile_list_shows_a_broken_profile_and_exits_1(isolated_profiles, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "profiles"
    folder.mkdir()
    text = site("gpus_per_nod = 4")
    (folder / "site.toml").write_text(text)
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(folder))
    code = main(["profile", "list"])
    out, err = capsys.readouterr()
    assert code == 1
    listed = {line.split()[0]: line for line in out.splitlines()}
    assert {"site", "generic", "local", "midway3"} <= set(listed)
    where = line_no(text, "gpus_per_nod")
    assert (f"(cannot be read: line {where}: partition 'gpu': a partition has no key 'gpus_per_nod' (did you mean "
            "'gpus_per_node'?); correct the name)") in listed["site"]
    assert "error: 1 profile cannot be read (site); hpcwidgets profile check NAME" in err
    (folder / "site.toml").write_text(site())
    assert main(["profile", "list"]) == 0
    assert "cannot be read" not in capsys.readouterr().out


def test_profile_list_shows_one_problem_of_several_with_an_ellipsis(isolated_profiles, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "site.toml").write_text(site('gpus_per_node = "four"', modules="cuda = 7"))
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(folder))
    assert main(["profile", "list"]) == 1
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("site "))
    assert "(cannot be read: profile 'site' is not valid (2 problems): …)" in line


# ------------------------------------------------------------------------------------------------
# finding 4: what the [modules] keys are used for
# ------------------------------------------------------------------------------------------------
def test_the_template_says_which_modules_keys_are_loaded(capsys):
    assert main(["profile", "show", "generic", "--name", "mysite"]) == 0
    out = capsys.readouterr().out
    comment = out.split("[modules]\n", 1)[1].split("\napptainer =", 1)[0]
    loaded = {purpose for purposes in RUNTIME_PURPOSES.values() for purpose in purposes}
    assert all(purpose in comment for purpose in loaded)
    assert "is loaded by nothing" in comment and 'cuda = "cuda/12.1"' in comment
    assert "slides check --profile" in comment
    assert all(line.startswith("#") and line == line.rstrip() for line in comment.splitlines())


def test_what_the_template_says_holds_jobs_load_the_runtime_module_only():
    """The comment's claim, checked: a site's cuda key is loaded by no job, its apptainer key is."""
    from hpcwidgets.spec.apptainer import ApptainerRun
    from hpcwidgets.spec.slurm import SlurmJob
    from hpcwidgets.spec.workflow import Workflow
    profile = profile_from_toml(site(modules='cuda = "cuda/12.1"\nmpi = "openmpi/4.1"'))
    assert profile.module("cuda") == "cuda/12.1"
    placed = profile.place(Workflow(job=SlurmJob(), container=ApptainerRun(image="a.sif")))
    assert placed.job.modules == ("apptainer",)


def test_the_template_written_out_reads_back_as_the_profile(tmp_path, capsys):
    path = tmp_path / "mysite.toml"
    assert main(["profile", "show", "generic", "--name", "mysite", "-o", str(path)]) == 0
    capsys.readouterr()
    assert load_profile(path) == dataclasses.replace(load_profile("generic"), name="mysite")
    assert profile_from_toml(profile_to_toml(load_profile("midway3"))) == load_profile("midway3")
