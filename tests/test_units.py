import pytest

from hpcwidgets.spec.units import UNLIMITED, format_mem, format_time, parse_mem, parse_time, time_equal


@pytest.mark.parametrize("text,seconds", [
    ("90", 5400), ("1:30", 90), ("01:30:00", 5400), ("2-0", 172800), ("1-12", 129600), ("1-12:30", 131400),
    ("1-00:00:01", 86401), ("0", UNLIMITED), ("UNLIMITED", UNLIMITED), ("infinite", UNLIMITED),
])
def test_parse_time_accepts_every_slurm_form(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["1.5h", "2h", "1:2:3:4", "-1", "", "1 day"])
def test_parse_time_rejects_with_the_forms(text):
    with pytest.raises(ValueError, match="D-H:M:S"):
        parse_time(text)


def test_format_time_round_trip():
    for s in (59, 3600, 86399, 86400 * 3 + 5):
        assert parse_time(format_time(s)) == s
    assert time_equal("90", "1:30:00") and not time_equal("90", "1:00:00")


@pytest.mark.parametrize("text,mib", [("16G", 16384), ("4000", 4000), ("512M", 512), ("1T", 1048576), ("2048K", 2), ("0", 0)])
def test_parse_mem(text, mib):
    assert parse_mem(text) == mib


def test_parse_mem_names_the_fix():
    with pytest.raises(ValueError, match=r"write 16G"):
        parse_mem("16GB")
    with pytest.raises(ValueError, match=r"1536M"):
        parse_mem("1.5G")
    assert format_mem(16384) == "16G" and format_mem(1500) == "1500M" and format_mem(1048576) == "1T"
