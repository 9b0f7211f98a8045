"""kit/runtime/steps.py: every loop keeps the `DecodeSteps` contract, and the loop a
bundle runs says why a faster one was refused."""

import numpy as np
import pytest

from kit.runtime import Bundle, BundleError
from kit.runtime.steps import MODES, CompiledSteps, DecodeSteps, make_steps

NO_COMPILED = "compiled: this LiteRT package has no CompiledModel API (it is ai-edge-litert's)"
NO_DIRECT = "decode_step is not in the primary subgraph, so the tensor-index loop cannot run it"


class _Counting(DecodeSteps):
    """A one-row loop over a vocabulary of 4 whose logits are [position, token, 0, 0]."""

    def start(self, source_ids):
        self.started = source_ids

    def step(self, token, position):
        return np.array([position, token, 0, 0], np.float32)


def test_one_row_loops_take_one_row_through_the_whole_interface():
    steps = _Counting()
    steps.start(np.zeros((1, 3), np.int32))
    np.testing.assert_array_equal(steps.step_rows(np.array([7]), 2), [[2, 7, 0, 0]])
    steps.reorder([0])
    with pytest.raises(ValueError, match="_Counting carries one row.*Received: 2 tokens"):
        steps.step_rows([7, 8], 2)
    with pytest.raises(ValueError, match=r"parents=\[0, 0\]"):
        steps.reorder([0, 0])


@pytest.fixture
def float32(tiny_bundles):
    return tiny_bundles[0] / "float32"


@pytest.mark.parametrize("mode", MODES)
def test_every_loop_keeps_the_contract(float32, mode):
    bundle = Bundle.load(float32, mode=mode)
    steps = bundle.steps
    assert isinstance(steps, DecodeSteps) and steps.mode == bundle.mode == mode
    source = np.array([bundle.source_ids("1 May 1990")], np.int32)  # (1, S)
    steps.start(source)
    first = steps.step(bundle.bos_id, 0)
    assert first.shape == (bundle.spec["vocab_size"]["target"],) and first.dtype == np.float32
    steps.start(source)
    np.testing.assert_array_equal(steps.step_rows([bundle.bos_id], 0), first[None])
    steps.reorder([0])
    with pytest.raises(ValueError, match="position must lie in"):
        steps.step(5, bundle.target_length)


def test_runner_rows_are_independent_and_reordered(float32):
    bundle = Bundle.load(float32, mode="runner")
    steps = bundle.steps
    steps.start(np.array([bundle.source_ids("1 May 1990")], np.int32))
    steps.reorder([0, 0])
    steps.step_rows([bundle.bos_id, bundle.bos_id], 0)
    two = steps.step_rows([5, 6], 1)  # (2, V): rows fed different tokens differ
    assert two.shape[0] == 2 and not np.array_equal(two[0], two[1])
    steps.reorder([1, 1])  # both rows now continue row 1 (fed 6)
    again = steps.step_rows([7, 7], 2)
    np.testing.assert_array_equal(again[0], again[1])


def test_the_fastest_loop_runs_and_nothing_was_refused(float32):
    bundle = Bundle.load(float32)
    assert bundle.mode == "compiled" and isinstance(bundle.steps, CompiledSteps)
    assert bundle.fallback_reason is None


def test_a_refused_loop_is_recorded_with_why(float32, monkeypatch):
    import sys

    from kit.runtime.interpreter import DirectSignature

    # What tflite-runtime is: an interpreter without ai-edge-litert's CompiledModel.
    monkeypatch.setitem(sys.modules, "ai_edge_litert.compiled_model", None)
    bundle = Bundle.load(float32)
    assert bundle.mode == "direct" and bundle.fallback_reason == NO_COMPILED
    monkeypatch.setattr(DirectSignature, "possible", staticmethod(lambda *args: False))
    bundle = Bundle.load(float32)
    assert bundle.mode == "runner"
    assert bundle.fallback_reason == f"{NO_COMPILED}; direct: {NO_DIRECT}"
    assert bundle.translate("1 May 1990") == Bundle.load(float32, mode="runner").translate(
        "1 May 1990")
    # Asked for by name, a loop that cannot run is an error, not a fallback.
    with pytest.raises(BundleError, match=f"model.tflite: {NO_DIRECT}$"):
        Bundle.load(float32, mode="direct")
    with pytest.raises(BundleError, match="no CompiledModel API"):
        Bundle.load(float32, mode="compiled")


def test_an_unknown_mode_is_refused(float32):
    with pytest.raises(ValueError, match="Received: mode='fast'"):
        make_steps(None, b"", {}, mode="fast")
    with pytest.raises(ValueError, match="Received: mode='fast'"):
        Bundle.load(float32, mode="fast")
