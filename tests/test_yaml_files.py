"""YAML files: plain data only, no aliases (a few hundred bytes could expand to gigabytes), encoding errors as one line."""

import pytest

from causaldiffae.config import ConfigError, load_config
from causaldiffae.graph import CausalGraph, GraphError
from causaldiffae.yaml_files import load_yaml

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"


def test_plain_yaml_loads_and_aliases_are_refused():
    assert load_yaml("variables: [a, b]\nedges: [a -> b]\n") == {"variables": ["a", "b"], "edges": ["a -> b"]}
    with pytest.raises(Exception, match="aliases"):
        load_yaml(BOMB)


def test_an_alias_bomb_or_a_python_tag_in_a_config_or_graph_is_one_clear_error(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("name: &n [1, 2]\ntrain: {steps: *n}\n")
    with pytest.raises(ConfigError, match=r"config.yaml: invalid YAML at line 2, column \d+: aliases \(\*name\) are not accepted"):
        load_config(str(config))
    graph = tmp_path / "graph.yaml"
    graph.write_text(BOMB)
    with pytest.raises(GraphError, match="graph.yaml: invalid YAML at line 2"):
        CausalGraph.from_yaml(graph)
    graph.write_text("variables: !!python/object/apply:os.system [echo hi]\n")
    with pytest.raises(GraphError, match="graph.yaml: invalid YAML"):
        CausalGraph.from_yaml(graph)


def test_text_that_is_not_utf8_is_a_yaml_error_naming_the_file(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_bytes(b"name: \xff\xfe tiny\n")
    with pytest.raises(ConfigError, match="config.yaml: invalid YAML"):
        load_config(str(config))


@pytest.mark.parametrize("text, problem", [
    ("train: {lr: !!float 1e-3x}\n", r"a malformed tagged value \(ValueError"),
    ("train: {steps: !!timestamp x}\n", "a malformed tagged value"),
    ("train: {steps: 10, lr: 0.001, lr: 0.5}\n", r"at line 1, column \d+: key 'lr' appears twice"),
    ("train: {steps: 10}\nmodel: {dropout: 0.1}\ntrain: {batch_size: 8}\n", r"at line 3, column 1: key 'train' appears twice"),
])
def test_a_malformed_tag_or_a_repeated_key_is_one_line_naming_the_file(tmp_path, text, problem):
    """PyYAML raises plain ValueErrors for the first and silently keeps the last of repeated keys."""
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=rf"config.yaml: invalid YAML .*{problem}") as err:
        load_config(str(config))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["''\n", "false\n", "[]\n", "0\n"])
def test_a_config_file_that_is_not_a_mapping_is_refused_not_read_as_the_defaults(tmp_path, text):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match="config.yaml: expected a mapping of sections"):
        load_config(str(config))
