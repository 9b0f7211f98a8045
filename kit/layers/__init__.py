"""The kit's Keras 3 layers (imports Keras; `import kit` alone does not)."""

from kit.layers.decoder_block import DecoderBlock
from kit.layers.encoder_block import EncoderBlock
from kit.layers.encoder_decoder_attention import EncoderDecoderAttention
from kit.layers.feed_forward import FeedForward
from kit.layers.qkv_projection import QKVProjection
from kit.layers.self_attention import SelfAttention
from kit.layers.token_and_position_embedding import TokenAndPositionEmbedding

__all__ = [
    "DecoderBlock",
    "EncoderBlock",
    "EncoderDecoderAttention",
    "FeedForward",
    "QKVProjection",
    "SelfAttention",
    "TokenAndPositionEmbedding",
]
