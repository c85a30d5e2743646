"""The list parser: comma lists and the '+'-joined parts of one item."""

from hrkd_cli.parsing import comma_items, plus_items


def test_comma_items_strips_and_keeps_empty_items():
    assert comma_items("1, 2,,3 ") == ["1", "2", "", "3"]
    assert comma_items("hrkd") == ["hrkd"]
    assert comma_items("") == [""]
    assert comma_items(5) == ["5"]


def test_plus_items_strips_and_keeps_empty_parts():
    assert plus_items("comp-agg+ self-attention") == ["comp-agg", "self-attention"]
    assert plus_items("books:12++ films:3 ") == ["books:12", "", "films:3"]
    assert plus_items("hrkd") == ["hrkd"]
    assert plus_items("") == [""]
