"""The generation NFE line: what the node_translation task prints is what scripts/score.py reads back."""
import pytest

from node_transformer.nfe import format_generation_nfe, parse_generation_nfe

REPORTS = {
    "encoder_only": (dict(sentences=30, per_sentence={"encoder": 14.0}, decoder_solves=None),
                     "NODE NFE per sentence (30 sentences): encoder 14.0"),
    "decoder_only": (dict(sentences=1000, per_sentence={"decoder": 126.5}, decoder_solves=9.5),
                     "NODE NFE per sentence (1000 sentences): decoder 126.5 "
                     "over 9.5 decoder solves (one per generated token)"),
    "both": (dict(sentences=7, per_sentence={"encoder": 20.0, "decoder": 1234.1}, decoder_solves=12.0),
             "NODE NFE per sentence (7 sentences): encoder 20.0, decoder 1234.1 "
             "over 12.0 decoder solves (one per generated token)"),
}


@pytest.mark.parametrize("report, line", REPORTS.values(), ids=REPORTS.keys())
def test_line_round_trips(report, line):
    assert format_generation_nfe(**report) == line
    assert parse_generation_nfe(line) == report


def test_line_rounds_to_one_decimal():
    line = format_generation_nfe(3, {"encoder": 14 / 3, "decoder": 50 / 3}, 10 / 3)
    assert line == ("NODE NFE per sentence (3 sentences): encoder 4.7, decoder 16.7 "
                    "over 3.3 decoder solves (one per generated token)")
    assert parse_generation_nfe(line) == {"sentences": 3, "per_sentence": {"encoder": 4.7, "decoder": 16.7},
                                          "decoder_solves": 3.3}


@pytest.mark.parametrize("line", [
    "",
    "H-0\t-0.5\tein hund",
    "NODE NFE per sentence (30 sentences): ",
    "NODE NFE per sentence (30 sentences): solver 3.0",
    "NODE NFE per sentence (some sentences): encoder 14.0",
    "nfe_dec_fwd 12.3",
])
def test_other_lines_are_not_reports(line):
    assert parse_generation_nfe(line) is None
