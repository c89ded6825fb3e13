"""Causal graphs as data: named variables and directed edges, never a matrix in model code.

A graph is parsed from a YAML file (``variables:`` and ``edges:`` written ``"a -> b"``) or an
inline string such as ``"thickness -> intensity"`` or ``"angle, light -> shadow_len, shadow_pos"``. Everything the model needs
(parents, descendants, topological order and levels, adjacency) is derived here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from causaldiffae.errors import UserError, did_you_mean
from causaldiffae.yaml_files import read_yaml

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GraphError(UserError):
    """A causal graph that cannot be used: cycle, self-loop, unknown or duplicate name."""


MAX_VARIABLES = 256  # far above any image dataset's labelled factors; each is a latent block and a mechanism


@dataclass(frozen=True)
class CausalGraph:
    """A DAG over named causal variables; ``variables`` fixes the order of label columns and latent blocks."""

    variables: tuple[str, ...]
    edges: tuple[tuple[str, str], ...] = ()
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _levels: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        variables = tuple(self.variables)
        edges = tuple((str(a), str(b)) for a, b in self.edges)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "edges", edges)
        if not variables:
            raise GraphError("a causal graph needs at least one variable")
        if len(variables) > MAX_VARIABLES:
            raise GraphError(f"a causal graph of {len(variables)} variables; this library handles up to {MAX_VARIABLES}")
        seen: set[str] = set()
        for name in variables:
            if not isinstance(name, str) or not _NAME.match(name):
                raise GraphError(f"invalid variable name {name!r}: use letters, digits and '_'")
            if name in seen:
                raise GraphError(f"duplicate variable {name!r}")
            seen.add(name)
        seen_edges: set[tuple[str, str]] = set()
        for a, b in edges:
            for end in (a, b):
                if end not in seen:
                    raise GraphError(f"edge {a} -> {b} names unknown variable {end!r} ({_known(end, variables)})")
            if a == b:
                raise GraphError(f"self-loop on {a!r}")
            if (a, b) in seen_edges:
                raise GraphError(f"duplicate edge {a} -> {b}")
            seen_edges.add((a, b))
        levels = self._compute_levels(variables, edges)
        object.__setattr__(self, "_levels", levels)
        object.__setattr__(self, "_order", tuple(v for level in levels for v in level))

    @staticmethod
    def _compute_levels(variables: tuple[str, ...], edges: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], ...]:
        """Kahn's algorithm by layers; a variable's level is the length of the longest path reaching it."""
        indegree = {v: 0 for v in variables}
        children: dict[str, list[str]] = {v: [] for v in variables}
        for a, b in edges:
            indegree[b] += 1
            children[a].append(b)
        frontier = [v for v in variables if indegree[v] == 0]
        levels: list[tuple[str, ...]] = []
        placed = 0
        while frontier:
            levels.append(tuple(frontier))
            placed += len(frontier)
            nxt: list[str] = []
            for v in frontier:
                for c in children[v]:
                    indegree[c] -= 1
                    if indegree[c] == 0:
                        nxt.append(c)
            frontier = sorted(nxt, key=variables.index)
        if placed != len(variables):
            stuck = [v for v in variables if indegree[v] > 0]
            raise GraphError(f"the graph has a cycle through {', '.join(stuck)}")
        return tuple(levels)

    # Construction -----------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, variables: Iterable[str] | None = None) -> "CausalGraph":
        """Parse ``"a -> b; b -> c"`` or the grouped ``"angle, light -> shadow_len, shadow_pos"``.

        Statements are separated by ``;`` or newlines. Within one, ``->`` links groups of
        comma-separated names, every name to every name of the next group; a statement without
        ``->`` lists variables with no edges. ``variables`` fixes the order.
        """
        edges: list[tuple[str, str]] = []
        names: list[str] = []
        for part in re.split(r"[;\n]", text):
            part = part.strip()
            if not part:
                continue
            groups = [[n.strip() for n in g.split(",")] for g in part.split("->")]
            if any(not n for g in groups for n in g):
                raise GraphError(f"cannot parse {part!r}: expected 'a -> b' or 'a, b -> c'")
            if any(len(g) > 1 for g in groups[1:-1]):
                raise GraphError(f"ambiguous {part!r}: separate edges with ';' (commas group names, as in 'a, b -> c')")
            for n in (n for g in groups for n in g):
                if n not in names:
                    names.append(n)
            edges.extend((a, b) for left, right in zip(groups[:-1], groups[1:]) for a in left for b in right)
        if variables is not None:
            order = list(variables)
            missing = [n for n in names if n not in order]
            if missing:
                raise GraphError(f"edge names unknown variable {missing[0]!r} ({_known(missing[0], order)})")
            names = order
        return cls(tuple(names), tuple(edges))

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "graph") -> "CausalGraph":
        """Build from ``{"variables": [...], "edges": ["a -> b", ...]}`` (edges may also be pairs)."""
        if not isinstance(data, Mapping) or "variables" not in data:
            raise GraphError(f"{source}: expected a mapping with 'variables' and 'edges'")
        unknown = [str(key) for key in data if key not in ("variables", "edges")]
        if unknown:  # a misspelt 'edges:' would otherwise give a graph without edges
            raise GraphError(f"{source}: unknown key {unknown[0]!r} (a graph has only 'variables' and 'edges')")
        variables = data["variables"]
        if not isinstance(variables, (list, tuple)):
            raise GraphError(f"{source}: 'variables' must be a list of names")
        for name in variables:  # YAML reads on / off / yes / no as booleans and 12 as a number
            if name is None:
                raise GraphError(f"{source}: an empty variable name (YAML read null or ~); give every variable a name")
            if isinstance(name, bool):
                raise GraphError(f"{source}: a variable name was read as the boolean {name}; quote it (YAML reads on, off, yes, no as booleans)")
            if not isinstance(name, str):
                raise GraphError(f"{source}: variable name {name!r} is not a string (YAML read it as {type(name).__name__}); quote it (\"{name}\")")
        edges: list[tuple[str, str]] = []
        listed = data.get("edges")
        if listed is None:  # "edges:" left empty: a graph without edges
            listed = []
        if isinstance(listed, str):  # one line, as data.graph takes it: "a -> b; b -> c"
            listed = [listed]
        if not isinstance(listed, (list, tuple)):
            raise GraphError(f"{source}: 'edges' must be a list of 'a -> b' entries or one line 'a -> b; c -> d', "
                             f"got {type(listed).__name__} {listed!r}")
        for item in listed:
            if isinstance(item, str):
                if "->" not in item:  # often a comma group split by a flow list: [a, b -> c] is ['a', 'b -> c']
                    raise GraphError(f"{source}: cannot parse edge {item!r}: expected 'a -> b' (an edge with commas inside "
                                     "[...] must be quoted, \"a, b -> c\", or written as a block list entry: - a, b -> c)")
                try:
                    edges.extend(cls.parse(item, variables=variables).edges)
                except GraphError as err:
                    raise GraphError(f"{source}: {err}") from None
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                edges.append((str(item[0]), str(item[1])))
            else:
                raise GraphError(f"{source}: cannot parse edge {item!r}: expected 'a -> b'")
        try:
            return cls(tuple(variables), tuple(edges))
        except GraphError as err:
            raise GraphError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CausalGraph":
        path = Path(path)
        if not path.is_file():
            raise GraphError(f"graph file not found: {path}")
        return cls.from_dict(read_yaml(path, GraphError), source=str(path))

    @classmethod
    def load(cls, spec: "str | Path | CausalGraph", variables: Iterable[str] | None = None) -> "CausalGraph":
        """Accept a graph, a YAML path, or an inline edge string."""
        if isinstance(spec, CausalGraph):
            return spec
        text = str(spec)
        if text.endswith((".yaml", ".yml")) or _is_file(text):
            return cls.from_yaml(text)
        return cls.parse(text, variables=variables)

    def to_dict(self) -> dict:
        return {"variables": list(self.variables), "edges": [f"{a} -> {b}" for a, b in self.edges]}

    # Queries ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.variables)

    def index(self, name: str) -> int:
        """Column / block index of a variable, with a clear error for unknown names."""
        try:
            return self.variables.index(name)
        except ValueError:
            raise GraphError(f"unknown variable {name!r} ({_known(name, self.variables)})") from None

    def parents(self, name: str) -> tuple[str, ...]:
        self.index(name)
        return tuple(a for v in self.variables for a, b in self.edges if b == name and a == v)

    def children(self, name: str) -> tuple[str, ...]:
        self.index(name)
        return tuple(v for v in self.variables if (name, v) in self.edges)

    def descendants(self, name: str) -> tuple[str, ...]:
        """All variables reachable from ``name`` (excluding itself), in topological order."""
        reached: set[str] = set()
        stack = list(self.children(name))
        while stack:
            v = stack.pop()
            if v not in reached:
                reached.add(v)
                stack.extend(self.children(v))
        return tuple(v for v in self._order if v in reached)

    def ancestors(self, name: str) -> tuple[str, ...]:
        return tuple(v for v in self._order if name in self.descendants(v))

    @property
    def roots(self) -> tuple[str, ...]:
        return self._levels[0]

    @property
    def topological_order(self) -> tuple[str, ...]:
        return self._order

    @property
    def levels(self) -> tuple[tuple[str, ...], ...]:
        """Variables grouped so that every parent lies in an earlier level: one batched step per level."""
        return self._levels

    def adjacency(self) -> np.ndarray:
        """``A[i, j] = 1`` when ``variables[i] -> variables[j]``."""
        a = np.zeros((len(self), len(self)), dtype=np.float32)
        for u, v in self.edges:
            a[self.index(u), self.index(v)] = 1.0
        return a

    def __str__(self) -> str:
        return "; ".join(f"{a} -> {b}" for a, b in self.edges) or ", ".join(self.variables)


def _is_file(text: str) -> bool:
    """Whether ``text`` names an existing file; an inline graph too long for a file name is not one."""
    try:
        return Path(text).is_file()
    except OSError:
        return False


def _known(name: str, variables: Sequence[str]) -> str:
    """The known variables, led by the one ``name`` looks like a typo of."""
    return did_you_mean(name, variables) + f"known: {', '.join(variables)}"
