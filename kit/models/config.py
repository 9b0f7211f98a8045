"""The transformer's configuration and its named presets."""

import dataclasses
from dataclasses import dataclass

from kit import _checks

# What the architecture options meant before they existed (kit v0.1): `from_dict` fills
# a saved config's absent fields from here, so that a file saved then still builds the
# model it was trained as. New configs get the dataclass defaults instead.
LEGACY = {
    "attention_initializer": "glorot_uniform",
    "residual_dropout": True,
    "feed_forward_dropout": True,
}

ATTENTION_INITIALIZERS = ("glorot_uniform", "glorot_uniform_per_head")


@dataclass
class TransformerConfig:
    """Everything that fixes the shape of a `Seq2SeqTransformer`.

    Vocabulary sizes count the special tokens; token id 0 is padding. The defaults of
    the architecture options (norm_first and below) were chosen by
    `benchmarks/train_speed.py` (see benchmarks/README.md).
    """

    source_vocab_size: int = 8000  # source token ids 0 .. source_vocab_size - 1
    target_vocab_size: int = 8000  # target token ids, also the width of the logits
    num_encoder_layers: int = 4
    num_decoder_layers: int = 4
    model_dim: int = 128  # D, the width of every residual stream
    num_heads: int = 8  # H; each head has Dh = D // H channels
    ff_dim: int = 512  # inner width of the feed-forward blocks
    dropout: float = 0.1  # on embeddings, attention weights and the sites switched on below
    max_source_length: int = 128  # S: the encoder's (and the exported file's) source length
    max_target_length: int = 128  # T: decoder positions, BOS included; the KV cache length
    # post-LN (the 2017 paper, the TF tutorial; trains with the kit's 1000-step warm-up)
    # or pre-LN (True: stable without a warm-up; v0.1's default)
    norm_first: bool = False
    position_encoding: str = "sinusoidal"  # "sinusoidal" or "learned"
    layer_norm_epsilon: float = 1e-6
    attention_mask_value: float = -1e4  # bias on masked scores; int8 export rebuilds with ~-30
    # "glorot_uniform": Glorot over each (D, H*Dh) matrix, as v0.1 and Keras 3.15's
    # MultiHeadAttention; "glorot_uniform_per_head": with the fans of (D, H, Dh) and
    # (H, Dh, D) arrays, limits ~3x smaller (see kit/layers/_initializers.py).
    attention_initializer: str = "glorot_uniform_per_head"
    residual_dropout: bool = False  # dropout on each sub-layer's output (v0.1: True)
    feed_forward_dropout: bool = False  # dropout on the feed-forward inner layer (v0.1: True)

    def __post_init__(self):
        for name in ("source_vocab_size", "target_vocab_size", "num_encoder_layers",
                     "num_decoder_layers", "model_dim", "num_heads", "ff_dim",
                     "max_source_length", "max_target_length"):
            _checks.positive_int(name, getattr(self, name))
        _checks.rate("dropout", self.dropout)
        _checks.mask_value("attention_mask_value", self.attention_mask_value)
        _checks.one_of("position_encoding", self.position_encoding, ("sinusoidal", "learned"))
        for name in ("norm_first", "residual_dropout", "feed_forward_dropout"):
            _checks.boolean(name, getattr(self, name))
        _checks.one_of("attention_initializer", self.attention_initializer,
                       ATTENTION_INITIALIZERS)
        if self.model_dim % self.num_heads:
            raise ValueError(
                "`num_heads` must divide `model_dim`. Received: "
                f"num_heads={self.num_heads}, model_dim={self.model_dim}")
        if not isinstance(self.layer_norm_epsilon, (int, float)) or self.layer_norm_epsilon <= 0:
            raise ValueError("`layer_norm_epsilon` must be a positive float. Received: "
                             f"layer_norm_epsilon={self.layer_norm_epsilon!r}")

    @property
    def head_dim(self):
        return self.model_dim // self.num_heads

    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def per_head_fans(self):
        return self.attention_initializer == "glorot_uniform_per_head"

    @classmethod
    def from_dict(cls, values):
        """The config saved as `values` (`to_dict`); fields it lacks take their `LEGACY`
        value (it was saved before they existed), then the dataclass default."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TransformerConfig field(s): {', '.join(unknown)}")
        return cls(**{**LEGACY, **values})


def tiny(**overrides):
    """For tests: one layer each side, D 32. Builds and trains in seconds."""
    values = dict(num_encoder_layers=1, num_decoder_layers=1, model_dim=32, num_heads=4,
                  ff_dim=64, dropout=0.0, max_source_length=16, max_target_length=12,
                  source_vocab_size=32, target_vocab_size=32)
    return TransformerConfig(**{**values, **overrides})


def small(**overrides):
    """For the built-in demo (dates to ISO 8601): trains in minutes on 2 CPU cores."""
    values = dict(num_encoder_layers=2, num_decoder_layers=2, model_dim=64, num_heads=4,
                  ff_dim=256, dropout=0.1, max_source_length=48, max_target_length=16)
    return TransformerConfig(**{**values, **overrides})


def base(**overrides):
    """The TensorFlow NMT tutorial's model: 4 layers, D 128, 8 heads, feed-forward 512."""
    values = dict(num_encoder_layers=4, num_decoder_layers=4, model_dim=128, num_heads=8,
                  ff_dim=512, dropout=0.1)
    return TransformerConfig(**{**values, **overrides})


def large(**overrides):
    """For large data (150,000 pairs of sentences and more): 4 layers, D 256, 4 heads
    (Dh 64, the paper's), feed-forward 1024: 4x `base`'s weights in its layers (its
    training step took 2.4x as long on 2 CPU cores).

    Wider rather than deeper: the decoder keeps `base`'s 4 layers, so a device still
    runs 4 sequential blocks a token, where 8 layers of D 128 (the same KV cache size,
    2x `base`'s) would run 8. 4 heads keep
    Dh 64, as the paper's base model, where 8 heads would leave 32 channels each.
    """
    values = dict(num_encoder_layers=4, num_decoder_layers=4, model_dim=256, num_heads=4,
                  ff_dim=1024, dropout=0.1)
    return TransformerConfig(**{**values, **overrides})


PRESETS = {"tiny": tiny, "small": small, "base": base, "large": large}


def preset(name, **overrides):
    """The named preset's config, with `overrides` (e.g. vocabulary sizes) applied."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset. Expected one of {', '.join(PRESETS)}. "
                         f"Received: preset={name!r}")
    return PRESETS[name](**overrides)
