"""Which of a bundle's signature pairs decodes what: the smallest source-length bucket
that holds a source, and a pair of batch B > 1 for several sources at once or for one
source's beams (bundle.json's `variants`; `kit.runtime.signature_checks`).

Over the CompiledModel loop every pair runs with its caches bound in place. The other
loops run one pair of batch 1 only (the tensor-index loop reaches the primary subgraph
alone): they decode every source at the full S, and batches and beams through signature
runners, which copy every input and output. Imports numpy and the LiteRT runtime only.
"""

import numpy as np

from kit.runtime.steps import CompiledSteps, RunnerSteps


def source_length(ids):
    """How many of (S,) right-padded source ids are real: up to the last non-pad id
    (at least 1, so that an empty source still runs)."""
    real = np.flatnonzero(np.asarray(ids).reshape(-1))
    return int(real[-1]) + 1 if len(real) else 1


class VariantPicker:
    """A loaded bundle's signature pairs, and the decode loop of each, made on first use.

    Args:
        spec: the checked bundle.json.
        steps: the bundle's (1, S) loop (`kit.runtime.steps.make_steps`).
        interpreter: the bundle's Interpreter, for signature runners.
    """

    def __init__(self, spec, steps, interpreter):
        self._spec, self._base, self._interpreter = spec, steps, interpreter
        self._compiled = {}
        by_size = sorted(spec["variants"], key=lambda v: (v["batch"], v["source_length"]))
        self.single = [v for v in by_size if v["batch"] == 1]
        self.batched = [v for v in by_size if v["batch"] > 1]

    @property
    def max_batch(self):
        """The most rows one pair decodes at once (1 when the file has no batch pair)."""
        return max([1] + [v["batch"] for v in self.batched])

    def _steps(self, variant):
        if (variant["batch"], variant["source_length"]) == (1, self._spec["source_length"]):
            return self._base
        if isinstance(self._base, CompiledSteps):
            key = (variant["batch"], variant["source_length"])
            if key not in self._compiled:
                self._compiled[key] = self._base.variant(variant)
            return self._compiled[key]
        # Made for one search and dropped: while a runner exists, the interpreter
        # refuses the tensor-index loop's invoke.
        return RunnerSteps(self._interpreter, self._spec, variant)

    def single_for(self, ids):
        """(loop, ids cut to its S'): the batch-1 pair of the smallest source length
        that holds `ids` (S right-padded ids), over the CompiledModel loop; the (1, S)
        loop otherwise."""
        ids = np.asarray(ids, np.int32).reshape(1, -1)
        if not isinstance(self._base, CompiledSteps):
            return self._base, ids
        length = source_length(ids)
        variant = next(v for v in self.single if v["source_length"] >= length)
        return self._steps(variant), ids[:, :variant["source_length"]]

    def batch_for(self, rows, length):
        """(loop, (batch, source length)) of the smallest pair of batch >= `rows`
        whose source length holds `length` tokens; None when there is none."""
        variant = next((v for v in self.batched
                        if v["batch"] >= rows and v["source_length"] >= length), None)
        if variant is None:
            return None
        return self._steps(variant), (variant["batch"], variant["source_length"])
