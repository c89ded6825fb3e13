"""report.md from metrics.json: the committed reports are what their metrics render to, and each
section says what is missing rather than failing."""

import json
import re
from pathlib import Path

import pytest

from causaldiffae.evaluation.report import render

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "causaldiffae" / "weights" / "morphomnist" / "report"
COMMITTED = [SHIPPED, *(ROOT / "docs" / "results" / d for d in ("pendulum-cpu", "pendulum-cpu-v/evaluate", "circuit-cpu", "circuit-cpu-v", "circuit-cpu-v/full"))]
SECTIONS = ["Predictors", "Effectiveness and preservation", "Abduction and intervention mode", "Composition and reversibility",
            "Realism", "Disentanglement (DCI)", "Sweeps", "Latent traversal", "Training", "Timings"]


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads((SHIPPED / "metrics.json").read_text())


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_committed_report_is_exactly_what_its_metrics_render_to(folder):
    """The README quotes these reports: a change to the wording must re-render them, not leave them stale."""
    assert render(json.loads((folder / "metrics.json").read_text())) == (folder / "report.md").read_text()


def test_the_shipped_report_has_every_section_in_order_with_well_formed_tables(shipped):
    text = render(shipped)
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert [h.split(" (")[0] if h.startswith("Predictors") else h for h in headings] == SECTIONS
    for block in re.split(r"\n\n", text):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if lines:  # a header, its rule, and rows of the header's width
            assert all(line.count("|") == lines[0].count("|") for line in lines), block
            assert set(lines[1]) <= {"|", "-"}
    assert all(f"]({path})" in text for path in shipped["figures"].values())
    assert "| do(intensity) | thickness | non-descendant |" in text


def test_missing_parts_are_said_not_failed(shipped):
    bare = {**shipped, "dci": None, "guidance_sweep": {}, "figures": {}, "timings": {}}
    text = render(bare)
    assert "Not applicable: the label-conditional model has no encoder." in text
    assert "Guidance sweep skipped: the model was trained without a null condition" in text
    assert "![" not in text and "## Timings" not in text and "## Latent traversal" not in text
    no_classes = {**bare, "effectiveness": {v: {k: e for k, e in entry.items() if "class_accuracy" not in k}
                                            for v, entry in shipped["effectiveness"].items()}}
    assert "Identity preservation" in text and "Identity preservation" not in render(no_classes)


def test_an_empty_column_is_dropped_and_a_missing_value_is_a_dash(shipped):
    comparison = {key: {var: {k: v for k, v in entry.items() if k != "class_accuracy"} for var, entry in res.items()}
                  for key, res in shipped["comparison"]["results"].items()}
    text = render({**shipped, "comparison": {**shipped["comparison"], "results": comparison}})
    header = next(line for line in text.splitlines() if line.startswith("| abduction/mode"))
    assert "class acc." not in header  # no row has it: the column goes
    assert "class acc." in next(line for line in render(shipped).splitlines() if line.startswith("| abduction/mode"))
    predictors = {**shipped["predictors"], "mae": {**shipped["predictors"]["mae"], "intensity": None}}
    assert "| intensity | — |" in render({**shipped, "predictors": predictors})
