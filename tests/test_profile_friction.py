"""Writing a profile by hand: what the session-15 audit (A2) met writing EPCC Cirrus and LUMI profiles.

A value of the wrong type hid every other problem; "did you mean" was said twice and a misspelled table had no
line; [examples] problems had no line; max_nodes = 0 and gpu_vendor = "NVIDIA" did not say the fix; a
singularity module with the default runtimes passed without a word; the docs left out `scontrol show config`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import ProfileError
from hpcwidgets.profiles import profile_from_toml, profile_notes

ROOT = Path(__file__).resolve().parents[1]

# the auditor's first Cirrus profile (profiles/cirrus.v1.toml): five problems, of which a type error used to
# leave only three to be seen
CIRRUS_V1 = '''\
name = "cirrus"
login_host = "login.cirrus.ac.uk"
gpu_vendor = "NVIDIA"
mpi_default = "pmi2"

[modules]
singularity = "singularity/3.7.2"

[[partitions]]
name = "standard"
max_time = "96:00:00"
cpus_per_node = 36
mem_per_node = 257400

[[partitions]]
name = "gpu"
max_time = "4 days"
default = false
cpus_per_node = 40
gpus_per_node = 4

[[partition]]
name = "highmem"
'''


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProfileError) as info:
        profile_from_toml(text, source="site.toml")
    return str(info.value).splitlines()[1:]


def test_a_wrong_type_is_reported_with_every_other_problem():
    # mem_per_node = 257400 (MB, as slurm.conf writes RealMemory) is read since session 16; a fraction is not
    assert len(problems_of(CIRRUS_V1)) == 4
    lines = problems_of(CIRRUS_V1.replace("mem_per_node = 257400", "mem_per_node = 257.4"))
    assert len(lines) == 5, lines
    joined = "\n".join(lines)
    assert "line 13, partition 'standard': partitions[0].mem_per_node: 257.4 is not a whole number" in joined
    assert "line 3: gpu_vendor:" in joined                       # a value check, seen beside the type error
    assert "line 17, partition 'gpu': partitions.max_time:" in joined


def test_a_dropped_top_level_value_is_not_judged_by_its_default():
    # gpu_vendor = 5 is a type error; its default "none" would add "partitions have GPUs but the vendor is none"
    lines = problems_of('name = "x"\ngpu_vendor = 5\n\n[[partitions]]\nname = "gpu"\ngpus_per_node = 4\n')
    assert len(lines) == 1 and "line 2: gpu_vendor: expected text, got 5" in lines[0]


def test_did_you_mean_is_said_once_and_a_misspelt_table_has_its_line():
    lines = problems_of(CIRRUS_V1)
    table = next(line for line in lines if "no [[partition]] tables" in line)
    assert table.startswith("  - line 22: ") and table.count("did you mean") == 1
    default = next(line for line in lines if "no key 'default'" in line)
    assert default.startswith("  - line 18, partition 'gpu': ") and default.count("did you mean") == 1


def test_examples_problems_have_their_line():
    text = ('name = "lumi"\n\n[examples]\nimage = "~/images/pytorch.sif"\n'
            'image_source = "docker://rocm/pytorch:latest"\n')
    lines = problems_of(text)
    assert any(line.startswith("  - line 4: examples.image:") for line in lines), lines
    assert any(line.startswith("  - line 5: examples.image_source:") for line in lines), lines


def test_max_nodes_zero_says_to_leave_it_out():
    lines = problems_of('name = "x"\n\n[[partitions]]\nname = "a"\nmax_nodes = 0\n')
    assert lines[0].endswith("must be at least 1, got 0; leave it out (empty) for no limit")


@pytest.mark.parametrize("key, written, meant", [("gpu_vendor", "NVIDIA", "nvidia"),
                                                 ("apptainer_binary", "Singularity", "singularity")])
def test_a_choice_in_another_case_names_the_one_meant(key, written, meant):
    lines = problems_of(f'name = "x"\n{key} = "{written}"\n')
    assert lines[0].endswith(f"got {written!r}; write {meant!r}")


def test_a_partition_state_in_lower_case_names_the_one_meant():
    lines = problems_of('name = "x"\n\n[[partitions]]\nname = "a"\nstate = "down"\n')
    assert lines[0].startswith("  - line 5, partition 'a': ") and lines[0].endswith("; write 'DOWN'")


def test_a_choice_that_is_no_case_of_one_gets_no_suggestion():
    lines = problems_of('name = "x"\ngpu_vendor = "geforce"\n')
    assert "write" not in lines[0]


def test_a_singularity_module_with_default_runtimes_gets_a_note(tmp_path, capsys):
    site = tmp_path / "cirrus.toml"
    site.write_text('name = "cirrus"\n\n[modules]\nsingularity = "singularity/3.7.2"\n')
    assert main(["profile", "check", str(site)]) == 0
    captured = capsys.readouterr()
    assert "is valid" in captured.out
    assert 'note: [modules] names a singularity module, but runtimes is left at its default' in captured.err
    site.write_text('name = "cirrus"\nruntimes = ["apptainer"]\n\n[modules]\nsingularity = "singularity/3.7.2"\n')
    assert profile_notes(site) == []


def test_the_docs_say_detection_runs_scontrol_show_config():
    doc = (ROOT / "docs" / "profiles.md").read_text()
    assert "`scontrol show config` (for `MpiDefault`)" in doc
