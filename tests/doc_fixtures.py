"""The pages the documentation checks read: the README, docs/ and the markdown shipped in the package."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "src").rglob("*.md"))]
