import json

from qgait_lab.cli import main


def test_bitops_json_matches_paper(capsys):
    assert main(["bitops", "--model", "gaitbase", "--frames", "100", "--json"]) == 0
    rows = {r["bits"]: r["bitops"] / 1e9 for r in json.loads(capsys.readouterr().out)["rows"]}
    for bits, paper in ((32, 118.30), (8, 7.39), (4, 1.85)):
        assert abs(rows[bits] - paper) / paper < 0.01


def test_bitops_bad_option_is_a_clear_error(capsys):
    assert main(["bitops", "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_sanity_report_passes(capsys):
    assert main(["sanity"]) == 0
    out = capsys.readouterr().out
    assert "checks passed" in out and "FAIL" not in out


def test_every_command_has_help_with_examples(capsys):
    import pytest

    from qgait_lab.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"train", "eval", "demo", "reproduce", "synth", "pretreat", "bitops"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert "examples:" in capsys.readouterr().out, name
