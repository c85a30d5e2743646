"""``predictions.json``: the per-example test predictions a finished run leaves beside its run.json.

Format ``hrkd-predictions/1`` (plain JSON, written through fsio.write_json_atomic)::

    {"format": "hrkd-predictions/1", "split": "test", "data_hash": <manifest hash>,
     "test_hashes": {domain: <manifest split hash of domain/test>},
     "domains": {domain: {"pred": [label, ...], "gold": [label, ...]}}}

Rows are in the prepared split's stored order, so two runs' lists line up example by example. The
test hashes (sha256 of each domain's test split content, from the data manifest) are what allows
pairing: predictions on different test data are never paired. Lists of small ints in JSON cost a few
bytes per example (tens of kB for a few thousand test examples), so no binary format is needed.

Reading needs no torch: hrkd_cli.compare uses it.
"""

from __future__ import annotations

from pathlib import Path

from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present

PREDICTIONS = "predictions.json"
FORMAT = "hrkd-predictions/1"


def predictions_record(manifest: dict, split: str, predicted: dict[str, list[int]], gold: dict[str, list[int]]) -> dict:
    """The content of predictions.json for one run, from the prepared data's manifest and the per-domain labels."""
    split_hashes = manifest.get("split_hashes") or {}
    return {
        "format": FORMAT, "split": split, "data_hash": manifest.get("hash", ""),
        "test_hashes": {d: split_hashes.get(f"{d}/{split}", "") for d in predicted},
        "domains": {d: {"pred": [int(x) for x in predicted[d]], "gold": [int(y) for y in gold[d]]} for d in predicted},
    }


def read_predictions(run_dir: Path) -> dict | None:
    """The predictions.json of a run directory, or None when it is missing, unreadable or malformed
    (runs finished before predictions were saved have none)."""
    try:
        obj = read_json_if_present(Path(run_dir) / PREDICTIONS)
    except HrkdError:
        return None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("domains"), dict):
        return None
    for d, lists in obj["domains"].items():
        if not isinstance(lists, dict) or len(lists.get("pred") or []) != len(lists.get("gold") or []):
            return None
    return obj
