import pytest
import torch

from causaldiffae.graph import CausalGraph
from causaldiffae.models.causal_layer import CausalLayer

PENDULUM = "angle -> shadow_len; angle -> shadow_pos; light -> shadow_len; light -> shadow_pos"
DIAMOND = "a -> b; a -> c; b -> d; c -> d"


def _layer(spec: str, block: int = 3, variables: list[str] | None = None) -> CausalLayer:
    torch.manual_seed(0)
    return CausalLayer(CausalGraph.parse(spec, variables=variables), block, hidden=16, layers=2)


def _block(z: torch.Tensor, layer: CausalLayer, name: str) -> torch.Tensor:
    i = layer.graph.index(name)
    return z[:, i * layer.block : (i + 1) * layer.block]


def test_roots_equal_their_noise_and_chain_propagates_two_hops():
    layer = _layer("a -> b -> c")
    u = torch.randn(5, 9)
    z = layer(u)
    torch.testing.assert_close(_block(z, layer, "a"), _block(u, layer, "a"))
    u2 = u.clone()
    u2[:, :3] += 1.0  # change only the root's noise
    z2 = layer(u2)
    assert not torch.allclose(_block(z2, layer, "c"), _block(z, layer, "c")), "the grandchild must respond to the root"


def test_mechanism_sees_only_parents():
    layer = _layer("a -> c", variables=["a", "b", "c"])
    u = torch.randn(4, 9)
    u2 = u.clone()
    u2[:, 3:6] += 2.0  # b is not a parent of c
    assert torch.equal(_block(layer(u), layer, "c"), _block(layer(u2), layer, "c"))


@pytest.mark.parametrize(
    "spec,target",
    [("a -> b -> c", "b"), (DIAMOND, "b"), (DIAMOND, "a"), (PENDULUM, "light"), (PENDULUM, "shadow_len")],
)
def test_intervention_changes_exactly_the_descendants(spec, target):
    layer = _layer(spec)
    g = layer.graph
    u = torch.randn(6, len(g) * layer.block)
    factual = layer(u)
    value = torch.full((6, layer.block), 3.0)
    cf = layer.intervene(u, {target: value})
    torch.testing.assert_close(_block(cf, layer, target), value)
    changed = set(g.descendants(target))
    for name in g.variables:
        if name == target:
            continue
        if name in changed:
            assert not torch.allclose(_block(cf, layer, name), _block(factual, layer, name)), name
        else:
            assert torch.equal(_block(cf, layer, name), _block(factual, layer, name)), f"{name} must stay bit-identical"


@pytest.mark.parametrize("target", ["a", "b"])
def test_descendants_keep_their_own_noise(target):
    """do(V = v) is the forward pass of the noise that makes V come out at v, every other noise kept:
    for a root that noise is v itself, otherwise v minus what V's mechanism adds."""
    layer = _layer("a -> b -> c")
    u = torch.randn(3, 9)
    value = torch.full((3, 3), 2.0)
    i = layer.graph.index(target)
    mechanism = (layer(u) - u)[:, 3 * i : 3 * i + 3]  # f_V(parents): z_V - u_V
    noise = u.clone()
    noise[:, 3 * i : 3 * i + 3] = value - mechanism
    torch.testing.assert_close(layer.intervene(u, {target: value}), layer(noise))


@pytest.mark.parametrize("spec", [PENDULUM, DIAMOND, "x", "a -> b -> c -> d"])
def test_shapes_and_gradients_for_any_dag(spec):
    layer = _layer(spec, block=5)
    u = torch.randn(7, len(layer.graph) * 5, requires_grad=True)
    z = layer(u)
    assert z.shape == u.shape
    z.square().sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    assert len(layer.mechanisms) == len(layer.graph.levels) - 1


def test_one_batched_module_per_level():
    layer = _layer(PENDULUM)
    assert [names for names in layer.levels] == [("shadow_len", "shadow_pos")]
    assert layer.mechanisms[0].weights[0].shape[0] == 2  # both mechanisms of the level in one tensor


@pytest.mark.parametrize("graph", ["a -> b", "a -> b; a -> c"])
def test_mechanism_gradients_have_their_weights_strides(graph):
    """DDP copies gradients into buckets laid out like the weights; other strides make it warn on every process."""
    layer = _layer(graph, block=4)
    layer(torch.randn(5, 4 * len(layer.graph))).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad.stride() == p.stride(), name
