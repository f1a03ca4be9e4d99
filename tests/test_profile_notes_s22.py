"""``hpcwidgets profile check`` prints the whole-node note (spec.profile.whole_node_default_note) with the file's other
notes: a site whose default GPU partition bills whole nodes while another GPU partition shares them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hpcwidgets.profiles import profile_notes

WHOLE = Path(__file__).parent / "data" / "profiles" / "amd_whole_s22.toml"


def test_profile_notes_name_the_whole_node_default_and_the_partition_to_use():
    notes = [n for n in profile_notes(WHOLE) if "whole nodes" in n]
    assert len(notes) == 1
    assert "gpu-whole" in notes[0] and 'default_gpu_partition = "gpu-shared"' in notes[0]


def test_a_profile_whose_default_shares_nodes_has_no_such_note(tmp_path):
    shared = tmp_path / "shared_default.toml"
    shared.write_text(WHOLE.read_text().replace('default_gpu_partition = "gpu-whole"',
                                                'default_gpu_partition = "gpu-shared"')
                      .replace('name = "amd_whole_s22"', 'name = "shared_default"'))
    assert not [n for n in profile_notes(shared) if "whole nodes" in n]


def test_profile_check_prints_the_note_and_still_accepts_the_profile():
    proc = subprocess.run([sys.executable, "-m", "hpcwidgets", "profile", "check", str(WHOLE)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "note: default_gpu_partition gpu-whole gives every job whole nodes" in proc.stderr
    assert "is valid" in proc.stdout


def test_a_profile_that_does_not_load_has_no_notes_and_no_traceback(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(WHOLE.read_text().replace('gpus_per_node = 4', 'gpus_per_node = -4', 1))
    assert profile_notes(broken) == []
