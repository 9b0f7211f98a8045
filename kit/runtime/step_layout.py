"""What a decode loop needs to know of one signature pair of a bundle: its signature
names, batch, source length, cache tensors and their shapes, read from the checked
bundle.json (kit/runtime/signature_checks.py). numpy only."""

import numpy as np

from kit.runtime.signatures import DECODE_STEP, ENCODE, LOGITS


def base_variant(spec):
    """bundle.json's (1, S) variant: the `encode` and `decode_step` pair."""
    return next(v for v in spec["variants"]
                if (v["batch"], v["source_length"]) == (1, spec["source_length"]))


class StepLayout:
    """The names and shapes a decode loop needs, read from the checked bundle.json, for
    one variant (a signature pair; None: the (1, S) pair)."""

    def __init__(self, spec, variant=None):
        variant = variant or base_variant(spec)
        self.encode, self.decode = variant[ENCODE], variant[DECODE_STEP]
        self.batch, self.source_length = variant["batch"], variant["source_length"]
        decode = spec["signatures"][self.decode]
        self.encoded = sorted(spec["signatures"][self.encode]["outputs"])
        self.caches = sorted(name for name in decode["outputs"] if name != LOGITS)
        # Keys and values (B, H, T, Dh): README, "The exported file".
        self.cache_shapes = {name: decode["inputs"][name]["shape"] for name in self.caches}
        self.cache_length = spec["target_length"]
        self.vocab_size = decode["outputs"][LOGITS]["shape"][1]

    def empty_caches(self):
        """{name: zeros} for every cache tensor: a sentence's starting cache."""
        return {name: np.zeros(shape, np.float32) for name, shape in self.cache_shapes.items()}

    def tokens(self, tokens):
        """(B, 1) int32 token ids: `tokens` (R <= B of them) then padding rows."""
        if len(tokens) > self.batch:
            raise ValueError(f"this signature pair decodes at most {self.batch} rows. "
                             f"Received: {len(tokens)} tokens")
        ids = np.zeros((self.batch, 1), np.int32)
        ids[:len(tokens), 0] = tokens
        return ids

    def permutation(self, parents):
        """All B rows' sources: row i < R takes row `parents[i]`, the rest stay."""
        order = np.arange(self.batch)
        order[:len(parents)] = parents
        return order
