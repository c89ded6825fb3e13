"""YAML as the library reads it: presets and config files, a run's config.yaml, graph files.

The safe loader (no Python objects), with aliases refused: ``*name`` references let a few hundred
bytes expand to gigabytes ("billion laughs"), and no config or graph needs them. Files are read as
bytes, so text that is not UTF-8 fails as any other YAML error does, as one line naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from causaldiffae.errors import UserError


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted; write the value out", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A key given twice would silently drop the first value (a whole section, for a repeated ``train:``)."""
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(source: str | bytes) -> Any:
    """Parse YAML text with the safe loader, aliases and repeated keys refused.

    A malformed tagged value (``!!float 1e-3x``) makes PyYAML's constructors raise plain Python
    errors; they are raised as ``yaml.YAMLError`` so that callers report them like any other.
    """
    try:
        return yaml.load(source, Loader=_NoAliasLoader)  # a SafeLoader subclass: plain data only
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as err:
        raise yaml.YAMLError(f"a malformed tagged value ({type(err).__name__}: {err})") from None


def read_yaml(path: Path, error: type[UserError]) -> Any:
    """``load_yaml`` of a file; any problem (syntax, encoding, an alias) raises ``error`` naming the file and place."""
    try:
        return load_yaml(path.read_bytes())
    except yaml.YAMLError as err:
        raise error(f"{path}: invalid YAML {yaml_problem(err)}") from None


def yaml_problem(err: Exception) -> str:
    """A YAML parse error as one line's tail that says where: ``at line 3, column 9: expected ...``."""
    mark = getattr(err, "problem_mark", None)
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"at line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else f"({what})"
