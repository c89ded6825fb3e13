"""The pages the documentation checks read (the README, docs/ and the markdown shipped in the
package), and their text outside fenced code blocks."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "src").rglob("*.md"))]


def prose(text: str) -> str:
    """A markdown page's text without its fenced blocks, where a ``](...)``, a ``#`` or a backtick is code, not markup."""
    return re.sub(r"```.*?```", "", text, flags=re.S)
