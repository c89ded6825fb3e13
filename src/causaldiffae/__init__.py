"""causaldiffae: causal counterfactual image generation with diffusion autoencoders."""

from causaldiffae.graph import CausalGraph, GraphError

__all__ = ["CausalGraph", "GraphError"]
__version__ = "0.1.0"
