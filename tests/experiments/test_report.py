"""`hrkd report`: one Markdown file with every table the results allow, the environment and the hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrkd_cli.errors import HrkdError
from hrkd_cli.experiments.report import report


def quiet(msg: str) -> None:
    pass


def fake_student(root: Path, tag: str, method: str, seed: int, test: dict, data_hash: str, drop=(), teacher="multi-domain",
                 row: str | None = None) -> None:
    out = root / "student" / tag / f"seed-{seed}"
    out.mkdir(parents=True)
    rec = {"role": "student", "method": method, "seed": seed, "data_hash": data_hash, "preset_hash": f"{tag}-hash",
           "row": row or tag, "teacher": str(root / "teacher" / teacher), "test": test, "dev": test, "wall_time_s": 2,
           "preset": {"name": "tiny", "data": {}, "teacher": {"exclude_domain": ""}, "student": {},
                      "distill": {"method": method, "teacher_kind": "auto", "drop": list(drop)}, "runtime": {}},
           "environment": {"python": "3.x", "torch": "t", "transformers": "tf", "processor": "cpu"}}
    (out / "run.json").write_text(json.dumps(rec))


@pytest.fixture
def results(tiny_preset, cpu_runtime) -> tuple[Path, dict]:
    """One real HRKD run (for the case study), fake records beside it for the other rows, two fake few-shot rates."""
    from hrkd_cli.pipeline import distill

    p = tiny_preset()
    out = distill(p, cpu_runtime, say=quiet)
    real = json.loads((out / "run.json").read_text())
    root = Path(p.run_dir)
    h = real["data_hash"]
    test = real["test"]
    bump = lambda x: {k: v - x for k, v in test.items()}  # noqa: E731
    fake_student(root, "hrkd", "hrkd", 2, bump(0.01), h, row=real["row"])
    fake_student(root, "multi-domain", "multi-domain", 1, bump(0.03), h, row="HRKD-teacher -(TinyBERT-KD)-> BERT_S")
    fake_student(root, "multi-domain", "multi-domain", 2, bump(0.04), h, row="HRKD-teacher -(TinyBERT-KD)-> BERT_S")
    fake_student(root, "hrkd-drop-self-attention", "hrkd", 1, bump(0.02), h, drop=["self-attention"], row=real["row"] + " - self-attention")
    # the fake hrkd seed 2 must share the real run's configuration
    rec = json.loads((root / "student" / "hrkd" / "seed-2" / "run.json").read_text())
    rec["preset_hash"], rec["preset"] = real["preset_hash"], real["preset"]
    (root / "student" / "hrkd" / "seed-2" / "run.json").write_text(json.dumps(rec))
    rec = json.loads((root / "student" / "hrkd-drop-self-attention" / "seed-1" / "run.json").read_text())
    rec["preset"] = json.loads(json.dumps(real["preset"]))
    rec["preset"]["distill"]["drop"] = ["self-attention"]
    (root / "student" / "hrkd-drop-self-attention" / "seed-1" / "run.json").write_text(json.dumps(rec))
    for rate in (5, 20):
        rd = root / "fewshot" / f"rate-{rate}"
        for seed in (1, 2):
            fake_student(rd, "tinybert", "tinybert", seed, {"average": 0.6 + 0.01 * seed}, "f" * 63 + str(rate % 10), teacher="single")
            fake_student(rd, "hrkd", "hrkd", seed, {"average": 0.65 + 0.01 * seed}, "f" * 63 + str(rate % 10))
    return root, real


def test_report_has_every_table_and_the_hashes(results):
    root, real = results
    path = report(root, say=quiet)
    assert path == root / "report.md"
    md = path.read_text()
    for heading in ("## Data", "Tables 2/3 layout: synthetic", "## Table 4: ablations", "## Figure 2 equivalent",
                    "## Case study", "## Runs", "## Presets", "## Environment"):
        assert heading in md, heading
    assert real["data_hash"] in md and real["preset_hash"] in md
    main = md.split("## Tables 2/3")[1].split("## Table 4")[0]
    assert "HRKD-teacher -(TinyBERT-KD)-> BERT_S" in main and "- self-attention |" not in main  # ablations go to Table 4
    table4 = md.split("## Table 4")[1].split("## Figure 2")[0]
    assert "| HRKD |" in table4 and "| - Self-attention |" in table4
    png = root / "figure2-fewshot.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and "](figure2-fewshot.png)" in md
    case = md.split("## Case study")[1].split("## Runs")[0]
    assert sum(case.count(f"| {d} |") for d in ("books", "films", "gadgets")) >= 3
    assert "precision" in md.lower() and "torch" in md

    # another output path, without the case study: the figure goes beside the file
    out = report(root, root.parent / "elsewhere" / "r.md", case_study=False, say=quiet)
    assert "## Case study" not in out.read_text() and (root.parent / "elsewhere" / "figure2-fewshot.png").is_file()


def test_report_bad_input(tmp_path):
    with pytest.raises(HrkdError, match="no such"):
        report(tmp_path / "missing", say=quiet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HrkdError, match="no finished runs"):
        report(tmp_path / "empty", say=quiet)
