"""Model components: encoder, causal layer, UNet decoder and the CausalDiffAE model that joins them."""

from causaldiffae.models.causal_layer import CausalLayer
from causaldiffae.models.causaldiffae import CausalDiffAE
from causaldiffae.models.decoder import Decoder, build_unet
from causaldiffae.models.encoder import Encoder

__all__ = ["CausalDiffAE", "CausalLayer", "Decoder", "Encoder", "build_unet"]
