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


def _readme_results_rows() -> list[list[str]]:
    """The cells of README's first criteria table (the shipped model's, from ``evaluate``)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("**Results.**", 1)[1].split("| criterion |", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]


def _agrees(quoted: str, value: float, scale: float = 1.0) -> bool:
    """``quoted`` (as README rounds it, perhaps in %) is ``value`` to its last written digit."""
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    return abs(float(quoted) - value * scale) <= 0.5 * 10**-decimals + 1e-12


def test_the_readme_quotes_the_shipped_report(shipped):
    """The README's results table is written by hand: each figure must be the shipped report's, rounded."""
    from causaldiffae.evaluation.acceptance import criteria, pass_rates, scores_from_metrics

    s = scores_from_metrics(shipped)
    rows = _readme_results_rows()
    model, truth = criteria(s), criteria(s, s["oracle"])
    rates, true_rates = pass_rates(s), pass_rates(s, s["oracle"])
    assert len(rows) == len(model) == 6
    for cells, (name, value, target, ok), (_, true_value, _, true_ok), rate, true_rate in zip(rows, model, truth, rates, true_rates):
        assert cells[0].startswith(name) or name.startswith(cells[0]), (cells[0], name)  # README may shorten or extend it
        assert cells[3].strip("*") == ("pass" if ok else "FAIL"), name
        assert rate is not None and _agrees(cells[4].rstrip("%"), rate, 100), (name, cells[4], rate)
        assert cells[6] == ("" if true_rate is None else f"{100 * true_rate:.0f}%"), (name, cells[6], true_rate)
        if name.startswith("digit identity"):  # quoted per intervention, in %
            quoted = re.findall(r"[\d.]+(?=%)", cells[1])
            eff = shipped["effectiveness"]
            assert len(quoted) == 2 and all(_agrees(q, eff[v]["class_accuracy"], 100) for q, v in zip(quoted, ("thickness", "intensity")))
            assert min(float(q) for q in quoted) == pytest.approx(100 * value)
            continue
        assert _agrees(cells[1], value), (name, cells[1], value)
        bound = re.findall(r"= ([\d.]+)", cells[2])[-1]  # the last: "<= 0.5 x null = 27.3"
        assert _agrees(bound, float(re.findall(r"= ([\d.]+)", target)[-1])), (name, cells[2], target)
        if true_value is not None:
            quoted_true = cells[5].split()[0]
            assert _agrees(quoted_true, true_value), (name, cells[5], true_value)
            assert ("FAIL" in cells[5]) == (not true_ok), name


def test_the_readme_check_sees_a_stale_figure():
    assert _agrees("0.069", 0.06885) and _agrees("97.6", 0.976, 100)
    assert not _agrees("0.070", 0.06885) and not _agrees("4.44", 4.4461)
