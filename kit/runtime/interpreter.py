"""The LiteRT interpreter, whichever package provides it, and fast access to one signature.

Imports neither TensorFlow nor Keras: this runs where only numpy and `ai-edge-litert`
(or the older `tflite-runtime`) are installed.
"""

import os

import numpy as np


class RuntimeUnavailable(ImportError):
    """Neither ai-edge-litert nor tflite-runtime is installed."""


def interpreter_class():
    """`Interpreter` from ai_edge_litert, else from tflite_runtime (its 2023 predecessor)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise RuntimeUnavailable(
                "no LiteRT interpreter: pip install ai-edge-litert "
                "(or tflite-runtime where ai-edge-litert has no wheel)") from None
    return Interpreter


def interpreter_options(recipe):
    """Keyword arguments for `interpreter_class()` that a bundle of `recipe` needs here.

    tflite-runtime 2.14 (its last release) with its default XNNPACK delegate computes
    float16 bundles wrongly: the decoder's output barely depends on the token (the
    embedding's GATHER, which XNNPACK leaves to the built-in kernels, seems to read a
    dequantized table that XNNPACK never wrote), and 0 of the 200 inputs of
    tests/device decoded as with ai-edge-litert, against 200 of 200 with the built-in
    kernels alone (and with experimental_preserve_all_tensors, which also turns XNNPACK
    off). ai-edge-litert 2.3 is not affected, and the other recipes agree as well with
    XNNPACK as without it. So float16 bundles run on tflite-runtime without the default
    delegates; every other case keeps LiteRT's defaults.
    """
    if recipe != "float16":
        return {}
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
        return {}
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import OpResolverType
    except ImportError:
        return {}
    return {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


def max_threads():
    """The most interpreter threads worth asking for: this machine's CPUs. More only
    makes the threads take turns (100,000 of them brought a 2-core machine to a load
    average of 600 and never finished)."""
    return os.cpu_count() or 1


def check_num_threads(num_threads):
    """Raises ValueError unless `num_threads` is None (LiteRT's default) or an integer
    from 1 to `max_threads()`."""
    if num_threads is None:
        return
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) \
            or not 1 <= num_threads <= max_threads():
        raise ValueError(f"num_threads must be None or an integer from 1 to {max_threads()} "
                         f"(the CPUs of this machine). Received: num_threads={num_threads!r}")


def tensor_specs(details):
    """{name: {"shape": [...], "dtype": "float32"}} from a signature runner's details."""
    return {name: {"shape": [int(d) for d in detail["shape"]],
                   "dtype": np.dtype(detail["dtype"]).name}
            for name, detail in sorted(details.items())}


def signature_specs(interpreter):
    """Every signature's input and output specs, read back from the loaded file."""
    specs = {}
    for key in sorted(interpreter.get_signature_list()):
        runner = interpreter.get_signature_runner(key)
        specs[key] = {"inputs": tensor_specs(runner.get_input_details()),
                      "outputs": tensor_specs(runner.get_output_details())}
    return specs


class DirectSignature:
    """Runs one signature through tensor indices instead of a signature runner.

    A signature runner resizes and re-allocates its inputs and copies every input in
    and every output out on each call. In a decode loop most inputs do not change
    between steps (the encoder's outputs), and the one large one that does (the KV
    cache) can be copied from the output buffer straight into the input buffer. This
    class keeps tensor indices so a step sets only what changed.

    The interpreter's public `set_tensor`, `get_tensor`, `tensor` and `invoke` reach
    the primary subgraph (index 0) only, so this works when the signature lives there;
    `DirectSignature.possible` says whether it does.
    """

    def __init__(self, interpreter, key):
        self._interpreter = interpreter
        runner = interpreter.get_signature_runner(key)
        self.inputs = {name: d["index"] for name, d in runner.get_input_details().items()}
        self.outputs = {name: d["index"] for name, d in runner.get_output_details().items()}

    @staticmethod
    def possible(interpreter, key):
        """Whether signature `key` runs in the primary subgraph (found by comparing its
        input tensors with the primary subgraph's, public API only)."""
        runner = interpreter.get_signature_runner(key)
        mine = {(d["index"], d["name"]) for d in runner.get_input_details().values()}
        primary = {(d["index"], d["name"]) for d in interpreter.get_input_details()}
        return mine == primary

    def set(self, name, value):
        self._interpreter.set_tensor(self.inputs[name], value)

    def get(self, name):
        """A copy of output `name`."""
        return self._interpreter.get_tensor(self.outputs[name])

    def copy_output_to_input(self, output_name, input_name):
        """One memcpy between the interpreter's own buffers, no numpy array in between.

        The views must be gone before the next `invoke` (the interpreter refuses to run
        while numpy views of its buffers exist), hence no references kept.
        """
        np.copyto(self._interpreter.tensor(self.inputs[input_name])(),
                  self._interpreter.tensor(self.outputs[output_name])())

    def invoke(self):
        self._interpreter.invoke()
