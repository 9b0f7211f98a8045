"""The kit's models and their configurations (imports Keras)."""

from kit.models.config import PRESETS, TransformerConfig, base, large, preset, small, tiny
from kit.models.seq2seq_transformer import Seq2SeqTransformer

__all__ = ["PRESETS", "Seq2SeqTransformer", "TransformerConfig", "base", "large", "preset",
           "small", "tiny"]
