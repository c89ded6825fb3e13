"""Conventions that hold across the whole package, read from its source, and the code its docs show."""

import ast
import functools
import re
from pathlib import Path

import causaldiffae
from doc_fixtures import DOC_PAGES, prose

PACKAGE = Path(causaldiffae.__file__).parent
ROOT = Path(__file__).resolve().parents[1]


def _unannotated(tree: ast.Module) -> list[str]:
    missing = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        a = node.args
        params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]
        names = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
        if node.returns is None and node.name != "__init__":
            names.append("return")
        if names:
            missing.append(f"line {node.lineno} {node.name}: {', '.join(names)}")
    return missing


def test_every_function_is_annotated() -> None:
    """Type hints are a convention of the codebase (docs/design.md): every parameter but self/cls and
    every return but __init__'s, nested functions included."""
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    missing = {str(f.relative_to(PACKAGE)): m for f in files if (m := _unannotated(ast.parse(f.read_text(), str(f))))}
    assert not missing, missing


def test_the_check_sees_a_missing_hint() -> None:
    tree = ast.parse("def f(a: int, b) -> int:\n    def g(c: int):\n        return c\n    return a\n")
    assert _unannotated(tree) == ["line 1 f: b", "line 2 g: return"]


def test_the_hints_type_check() -> None:
    """The hints are checked, not only present: mypy over the package and the benchmark scripts (which
    CI does not run, so a changed signature they call fails here) with pyproject.toml's settings
    (about 45 s the first time, seconds once its cache in .mypy_cache is warm)."""
    from mypy import api

    benchmarks = ROOT / "benchmarks"
    stdout, stderr, status = api.run([
        "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"), str(PACKAGE), str(benchmarks),
    ])
    assert status == 0, stdout + stderr
    checked = re.search(r"no issues found in (\d+) source files", stdout)
    expected = len(list(PACKAGE.rglob("*.py"))) + len(list(benchmarks.glob("*.py")))
    assert checked and int(checked.group(1)) == expected, stdout


def _local_links(page: Path) -> list[str]:
    """The page's links and pictures that point inside the repository (a path, an ``#anchor``, or both)."""
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", prose(page.read_text())) if "://" not in t and not t.startswith("mailto:")]


@functools.cache  # a page is linked many times over
def _anchors(page: Path) -> frozenset[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", prose(page.read_text()), re.M)
    return frozenset(re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings)


def _broken(page: Path, target: str) -> bool:
    """Whether ``target``, linked from ``page``, names no file, or an anchor that the markdown page it names lacks."""
    path, _, anchor = target.partition("#")
    linked = (page.parent / path) if path else page
    return not linked.exists() or bool(anchor and linked.suffix == ".md" and anchor not in _anchors(linked))


def test_every_local_link_and_picture_in_the_docs_exists() -> None:
    """The README and docs/ embed report figures and link each other's sections: a renamed or
    unregenerated file, or a renamed heading, must fail here, not on a reader's click."""
    links = [(page, target) for page in DOC_PAGES for target in _local_links(page)]
    assert len(links) > 100 and sum(page.name == "README.md" and page.parent == ROOT for page, _ in links) > 20
    assert [f"{page.relative_to(ROOT)}: {target}" for page, target in links if _broken(page, target)] == []


def test_the_readme_contents_line_links_its_sections() -> None:
    links = [t for t in _local_links(ROOT / "README.md") if t.startswith("#")]
    assert len(links) >= 8 and not [t for t in links if _broken(ROOT / "README.md", t)]


def test_the_link_check_sees_a_missing_file_and_a_missing_heading() -> None:
    readme = ROOT / "README.md"
    assert not _broken(readme, "docs/data.md#your-own-data") and not _broken(readme, "#quick-start")
    assert _broken(readme, "docs/nowhere.md") and _broken(readme, "docs/data.md#sped") and _broken(readme, "#sped")


def test_the_readmes_python_example_runs_as_written(tmp_path, monkeypatch) -> None:
    """Its one Python block loads the shipped model and edits four test digits. It runs from a
    folder holding the checkout's src/ and a data/morphomnist built here (eight digits a split)."""
    import numpy as np

    from causaldiffae.data.morphomnist import generate

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1
    generate(tmp_path / "data" / "morphomnist", limit=8, workers=1, progress=False)
    (tmp_path / "src").symlink_to(ROOT / "src")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md's Python example", "exec"), namespace)
    out, model = namespace["out"], namespace["model"]
    assert out.images.shape == (4, 1, 28, 28) and bool(out.images.abs().max() <= 1)
    thickness, intensity = (model.graph.index(v) for v in ("thickness", "intensity"))
    np.testing.assert_allclose(out.values[:, thickness], 4.0, rtol=1e-4)  # the intervened blocks hold the values asked for
    np.testing.assert_allclose(out.values[:, intensity], [120, 200, 90, 150], rtol=1e-4)
    assert not np.allclose(out.images.numpy(), namespace["images"].numpy(), atol=0.05)  # and the digits changed


def test_the_model_contract_in_the_design_notes_names_what_the_code_has() -> None:
    """docs/design.md's contract block lists the model's attributes and the samplers: each must exist."""
    import causaldiffae.checkpoint
    import causaldiffae.diffusion
    from causaldiffae.graph import CausalGraph
    from causaldiffae.models import CausalDiffAE
    from training_fixtures import tiny_config

    text = (ROOT / "docs" / "design.md").read_text()
    block = re.search(r"## Model contract.*?```python\n(.*?)```", text, re.S)
    assert block is not None
    config = tiny_config()
    model = CausalDiffAE(config.model, CausalGraph.parse("a -> b"), (1, 8, 8), 0, config.diffusion)
    named = sorted(set(re.findall(r"\bmodel\.(\w+)", block.group(1))))
    assert len(named) > 15 and [n for n in named if not hasattr(model, n)] == []
    samplers = re.search(r"from causaldiffae\.diffusion import (.+)", block.group(1))
    assert samplers is not None
    assert [n for n in samplers.group(1).split(", ") if not hasattr(causaldiffae.diffusion, n)] == []
    assert [n for n in re.findall(r"causaldiffae\.checkpoint\.(\w+)", block.group(1)) if not hasattr(causaldiffae.checkpoint, n)] == []
