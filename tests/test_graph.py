import numpy as np
import pytest

from causaldiffae.graph import CausalGraph, GraphError


def test_inline_chain_and_queries():
    g = CausalGraph.parse("a->b; b->c")
    assert g.variables == ("a", "b", "c")
    assert g.parents("c") == ("b",)
    assert g.descendants("a") == ("b", "c")
    assert g.ancestors("c") == ("a", "b")
    assert g.levels == (("a",), ("b",), ("c",))
    assert g.roots == ("a",)
    np.testing.assert_array_equal(g.adjacency(), [[0, 1, 0], [0, 0, 1], [0, 0, 0]])


def test_chained_arrow_and_fixed_order():
    g = CausalGraph.parse("x -> y -> z", variables=["z", "y", "x", "w"])
    assert g.variables == ("z", "y", "x", "w")
    assert g.topological_order == ("x", "w", "y", "z")
    assert g.levels == (("x", "w"), ("y",), ("z",))


def test_pendulum_graph_levels():
    g = CausalGraph.from_dict(
        {
            "variables": ["angle", "light", "shadow_len", "shadow_pos"],
            "edges": ["angle -> shadow_len", "angle -> shadow_pos", "light -> shadow_len", "light -> shadow_pos"],
        }
    )
    assert g.levels == (("angle", "light"), ("shadow_len", "shadow_pos"))
    assert g.parents("shadow_pos") == ("angle", "light")
    assert g.descendants("light") == ("shadow_len", "shadow_pos")
    assert g.descendants("shadow_len") == ()


@pytest.mark.parametrize(
    "text",
    ["angle, light -> shadow_len, shadow_pos", "angle, light -> shadow_len; angle, light -> shadow_pos"],
)
def test_comma_groups_link_every_name_to_the_next_group(text):
    g = CausalGraph.parse(text)
    assert g.variables == ("angle", "light", "shadow_len", "shadow_pos")
    assert sorted(g.edges) == [("angle", "shadow_len"), ("angle", "shadow_pos"), ("light", "shadow_len"), ("light", "shadow_pos")]
    path_form = CausalGraph.from_dict({"variables": list(g.variables), "edges": [text.split(";")[0]]})
    first = [("angle", "shadow_len"), ("angle", "shadow_pos"), ("light", "shadow_len"), ("light", "shadow_pos")]
    assert sorted(path_form.edges) == (first if ";" not in text else [("angle", "shadow_len"), ("light", "shadow_len")])


def test_circuit_graph_in_grouped_form_and_edgeless_statements():
    g = CausalGraph.parse("arm -> blue, green, red; blue, green -> red", variables=["arm", "blue", "green", "red"])
    assert g.parents("red") == ("arm", "blue", "green")
    assert g.levels == (("arm",), ("blue", "green"), ("red",))
    lone = CausalGraph.parse("a -> b; c, d")
    assert lone.variables == ("a", "b", "c", "d") and lone.edges == (("a", "b"),)
    assert CausalGraph.parse(str(CausalGraph(("x", "y")))) == CausalGraph(("x", "y"))


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("variables: [thickness, intensity]\nedges:\n  - thickness -> intensity\n")
    g = CausalGraph.from_yaml(path)
    assert g.edges == (("thickness", "intensity"),)
    assert CausalGraph.from_dict(g.to_dict()) == g
    assert CausalGraph.load(str(path)) == g
    assert CausalGraph.load("thickness->intensity") == g


def test_an_inline_graph_longer_than_a_file_name_is_parsed():
    text = "; ".join(f"variable_number_{i} -> variable_number_{i + 1}" for i in range(10))
    assert len(text) > 255
    assert len(CausalGraph.load(text).edges) == 10


@pytest.mark.parametrize(
    "text, message",
    [
        ("a->b; b->a", "cycle"),
        ("a->a", "self-loop"),
        ("a->b; a->b", "duplicate edge"),
        ("a->", "cannot parse"),
        ("a, -> b", "cannot parse"),
        ("a -> b, c -> d", "ambiguous"),
        ("a b -> c", "invalid variable name"),
    ],
)
def test_inline_errors(text, message):
    with pytest.raises(GraphError, match=message):
        CausalGraph.parse(text)


def test_dict_errors(tmp_path):
    with pytest.raises(GraphError, match="duplicate variable 'a'"):
        CausalGraph.from_dict({"variables": ["a", "a"], "edges": []})
    with pytest.raises(GraphError, match="^g.yaml: edge names unknown variable 'c'"):
        CausalGraph.from_dict({"variables": ["a", "b"], "edges": ["a -> c"]}, source="g.yaml")
    with pytest.raises(GraphError, match=r"unknown variable 'q' \(known: a, b\)$"):
        CausalGraph.parse("a->b").index("q")
    with pytest.raises(GraphError, match=r"unknown variable 'thicknes' \(did you mean 'thickness'\? known: thickness, intensity\)$"):
        CausalGraph.parse("thickness -> intensity").index("thicknes")
    with pytest.raises(GraphError, match=r"^g.yaml: edge names unknown variable 'intensty' \(did you mean 'intensity'\? known: "):
        CausalGraph.from_dict({"variables": ["thickness", "intensity"], "edges": ["thickness -> intensty"]}, source="g.yaml")
    with pytest.raises(GraphError, match="graph file not found"):
        CausalGraph.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("variables: [a, b\n")
    with pytest.raises(GraphError, match=r"bad.yaml: invalid YAML at line 2, column 1: expected .,. or .\]., but got"):
        CausalGraph.from_yaml(bad)
    bad.write_text("edges: [a -> b]\n")
    with pytest.raises(GraphError, match="bad.yaml: expected a mapping"):
        CausalGraph.from_yaml(bad)
    bad.write_text("variables: [a, b, c]\nedges: [a, b -> c]\n")  # the flow list splits the comma group
    with pytest.raises(GraphError, match=r"bad.yaml: cannot parse edge 'a': expected 'a -> b' \(an edge with commas inside \[...\] must be quoted"):
        CausalGraph.from_yaml(bad)
    bad.write_text('variables: [a, b, c]\nedges: ["a, b -> c"]\n')
    assert CausalGraph.from_yaml(bad).edges == (("a", "c"), ("b", "c"))
    bad.write_text("variables: [a, b]\nedge: [a -> b]\n")  # misspelt: would be a graph without edges
    with pytest.raises(GraphError, match="bad.yaml: unknown key 'edge' \\(a graph has only 'variables' and 'edges'\\)"):
        CausalGraph.from_yaml(bad)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"variables": []}, "^g.yaml: a causal graph needs at least one variable$"),
        ({"variables": "a, b"}, "^g.yaml: 'variables' must be a list of names$"),
        ({"variables": ["a", "b"], "edges": [["a", "c"]]}, r"^g.yaml: edge a -> c names unknown variable 'c' \(known: a, b\)$"),
        ({"variables": ["angle", "light"], "edges": [["angel", "light"]]},
         r"^g.yaml: edge angel -> light names unknown variable 'angel' \(did you mean 'angle'\? known: angle, light\)$"),
        ({"variables": ["a", "b"], "edges": [["a", "b", "c"]]}, r"^g.yaml: cannot parse edge \['a', 'b', 'c'\]: expected 'a -> b'$"),
        ({"variables": ["a", "b"], "edges": [3]}, "^g.yaml: cannot parse edge 3: expected 'a -> b'$"),
        ({"variables": ["a", "b"], "edges": 5}, r"^g.yaml: 'edges' must be a list of 'a -> b' entries or one line 'a -> b; c -> d', got int 5$"),
        ({"variables": ["a", "b"], "edges": False}, r"^g.yaml: 'edges' must be a list .*, got bool False$"),  # not read as no edges
        ({"variables": ["a", "b"], "edges": {"a": "b"}}, r"^g.yaml: 'edges' must be a list .*, got dict \{'a': 'b'\}$"),
    ],
)
def test_more_dict_errors_name_the_file(data, message):
    with pytest.raises(GraphError, match=message):
        CausalGraph.from_dict(data, source="g.yaml")


def test_edges_may_be_pairs_or_one_line():
    assert CausalGraph.from_dict({"variables": ["a", "b"], "edges": [["a", "b"]]}).edges == (("a", "b"),)
    line = CausalGraph.from_dict({"variables": ["a", "b", "c"], "edges": "a -> b -> c; a -> c"})  # "edges: a -> b" read a character at a time
    assert line.edges == (("a", "b"), ("b", "c"), ("a", "c"))
    assert CausalGraph.from_dict({"variables": ["a", "b"], "edges": None}).edges == ()  # "edges:" left empty


@pytest.mark.parametrize(
    "names, message",
    [
        ("[on, off, c]", "a variable name was read as the boolean True; quote it"),
        ("[a, ~]", r"an empty variable name \(YAML read null or ~\)"),
        ("[1, b]", r"variable name 1 is not a string \(YAML read it as int\); quote it \(\"1\"\)"),
    ],
)
def test_yaml_names_that_are_not_strings_are_one_line_errors(tmp_path, names, message):
    path = tmp_path / "graph.yaml"
    path.write_text(f"variables: {names}\nedges: []\n")
    with pytest.raises(GraphError, match=f"^{path}: {message}") as err:
        CausalGraph.from_yaml(path)
    assert "\n" not in str(err.value)
    path.write_text('variables: ["on", "off", c]\nedges: [on -> off -> c]\n')
    assert CausalGraph.from_yaml(path).edges == (("on", "off"), ("off", "c"))


def test_a_graph_of_thousands_of_variables_is_refused_at_once():
    with pytest.raises(GraphError, match="a causal graph of 1500 variables; this library handles up to 256"):
        CausalGraph(tuple(f"v{i}" for i in range(1500)))
    assert len(CausalGraph(tuple(f"v{i}" for i in range(256)))) == 256  # the cap itself is allowed
    with pytest.raises(GraphError, match="a causal graph of 257 variables"):
        CausalGraph(tuple(f"v{i}" for i in range(257)))
