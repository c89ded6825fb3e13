"""causaldiffae: causal counterfactual image generation with diffusion autoencoders."""

__all__ = ["CausalGraph", "GraphError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> type:
    """Import on first use, so that the command line starts (and takes Ctrl-C) before any library loads."""
    if name in __all__:
        from causaldiffae import graph

        return getattr(graph, name)
    raise AttributeError(f"module 'causaldiffae' has no attribute {name!r}")
