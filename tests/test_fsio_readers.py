"""The one JSON reader (fsio.read_json, read_json_if_present)."""

import json

import pytest

from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json, read_json_if_present, write_json_atomic


def test_read_json_reads_what_write_json_atomic_wrote(tmp_path):
    path = write_json_atomic(tmp_path / "deep" / "r.json", {"b": [1, 2], "a": "é"})
    assert read_json(path) == {"a": "é", "b": [1, 2]}
    assert read_json_if_present(path) == {"a": "é", "b": [1, 2]}
    assert path.read_text() == json.dumps({"a": "é", "b": [1, 2]}, indent=2, sort_keys=True) + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary sibling left


def test_a_missing_file_is_none_only_where_it_is_optional(tmp_path):
    assert read_json_if_present(tmp_path / "none.json") is None
    with pytest.raises(HrkdError, match=r"none\.json: missing; the checkpoint is incomplete$"):
        read_json(tmp_path / "none.json", "missing; the checkpoint is incomplete")
    with pytest.raises(HrkdError, match=r"none\.json: missing$"):
        read_json(tmp_path / "none.json")


def test_a_damaged_file_is_one_line_naming_it_either_way(tmp_path):
    bad = tmp_path / "run.json"
    bad.write_text('{"role": "student",')
    for reader in (read_json, read_json_if_present):
        with pytest.raises(HrkdError, match=r"run\.json: damaged JSON file \(.*line 1\)$"):
            reader(bad)
    bad.write_bytes(b"\xff\xfe{}")
    with pytest.raises(HrkdError, match=r"run\.json: damaged JSON file"):
        read_json(bad)
