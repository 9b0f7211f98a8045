"""The kit's model and its configurations.

`kit.models.config` (TransformerConfig, the presets) imports no Keras, so that the
options of `train` are checked, and the preset names read, before Keras loads;
`Seq2SeqTransformer` loads Keras on first use (`kit.models.Seq2SeqTransformer`, or an
import of kit.models.seq2seq_transformer, which also registers it for loading).
"""

from kit.models.config import PRESETS, TransformerConfig, base, large, preset, small, tiny

__all__ = ["PRESETS", "Seq2SeqTransformer", "TransformerConfig", "base", "large", "preset",
           "small", "tiny"]


def __getattr__(name):
    if name == "Seq2SeqTransformer":
        from kit.models.seq2seq_transformer import Seq2SeqTransformer

        return Seq2SeqTransformer
    raise AttributeError(f"module 'kit.models' has no attribute {name!r}")
