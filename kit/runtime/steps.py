"""The decode loops: three ways to run a bundle's `encode` once per sentence and its
`decode_step` once per token, behind one interface (`DecodeSteps`), and the choice of
the fastest one that runs here (`make_steps`).

    CompiledSteps  ai-edge-litert's CompiledModel: each KV cache one buffer bound as both
                   decode_step's input and its output, never copied
    DirectSteps    the Interpreter through tensor indices: each cache copied from its
                   output buffer to its input buffer once a step
    RunnerSteps    signature runners: every input and output copied; carries several
                   rows (beams), each with its own cache

All three give the same logits, bit for bit. Imports numpy and the LiteRT interpreter
only.
"""

import abc

import numpy as np

from kit.decoding import greedy_search, until_eos
from kit.quiet import native_output_silenced
from kit.runtime.interpreter import DirectSignature
from kit.runtime.signatures import (
    DECODE_STEP,
    ENCODE,
    LOGITS,
    POSITION,
    SOURCE_IDS,
    TOKEN_IDS,
)
from kit.runtime.step_layout import StepLayout

MODES = ("compiled", "direct", "runner")  # fastest first: `make_steps` tries this order


class LoopRefused(Exception):
    """A decode loop that cannot run this file here; the message says why, in one line."""

    def __init__(self, mode, reason):
        super().__init__(reason)
        self.mode = mode  # one of MODES


class DecodeSteps(abc.ABC):
    """A bundle's model run one step at a time, for `kit.decoding`'s searches, over one
    signature pair (batch B, source length S'; `kit.runtime.step_layout`).

    `start` runs `encode` and empties the cache, then each `step` (or `step_rows`) runs
    `decode_step` at the next position. T is the cache's slots, V the target
    vocabulary. Over a batch-1 pair `RunnerSteps` carries several rows (beams) by one
    run each, and the other loops a single row, which `step_rows` and `reorder` accept
    as well; over a pair of batch B, `CompiledSteps` and `RunnerSteps` carry up to B
    rows in one run.
    """

    mode = None  # which of MODES this loop is: the name `Bundle.load(mode=...)` takes

    @abc.abstractmethod
    def start(self, source_ids):
        """Encodes the pair's sources and starts its rows with an empty cache.

        Args:
            source_ids: (B, S') int32, ids checked to lie in the source vocabulary.
        """

    @abc.abstractmethod
    def step(self, token, position):
        """Feeds `token` to the first row at `position`; its cache advances.

        Args:
            token: an int id (BOS at position 0).
            position: an int in [0, T).

        Returns:
            (V,) float32: the logits of the token at position + 1.

        Raises:
            ValueError for a position outside [0, T): past it, the model would write
            outside its cache.
        """

    def step_rows(self, tokens, position):
        """Feeds each row its token, all at `position` (as beam search does).

        Args:
            tokens: (R,) ints, one per row; R is 1 except for `RunnerSteps`.
            position: an int in [0, T).

        Returns:
            (R, V) float32 logits, row by row.
        """
        if len(tokens) != 1:
            raise ValueError(f"{type(self).__name__} carries one row (RunnerSteps carries "
                             f"several). Received: {len(tokens)} tokens")
        return self.step(int(tokens[0]), position)[None]

    def reorder(self, parents):
        """Row i continues from row `parents[i]`'s cache (beam search keeps some beams
        and drops others).

        Args:
            parents: (R,) ints, each a row index.
        """
        if list(parents) != [0]:
            raise ValueError(f"{type(self).__name__} carries one row (RunnerSteps carries "
                             f"several). Received: parents={list(parents)}")


def greedy_ids(steps, source_ids, bos_id, eos_id, max_new_tokens):
    """Greedy decoding of one source through `steps`, a loop over one signature pair:
    its ids, EOS included when it was reached (`kit.decoding.greedy_search`).

    Args:
        source_ids: the pair's S' ids, any shape holding them.
    """
    steps.start(np.asarray(source_ids, np.int32).reshape(1, -1))

    def step(tokens, position):  # (1,) -> (1, V)
        return steps.step(int(tokens[0]), position)[None]

    ids = greedy_search(step, 1, bos_id, eos_id, int(max_new_tokens))
    return until_eos(ids[0], eos_id)


def make_steps(interpreter, content, spec, mode=None, num_threads=None):
    """The decode loop of a loaded bundle: the one `mode` names, or for None the first
    of MODES that runs this file here.

    Args:
        interpreter: the bundle's LiteRT Interpreter, tensors allocated.
        content: the model file's bytes (CompiledModel loads its own copy).
        spec: the checked bundle.json.
        mode: one of MODES, or None.
        num_threads: CompiledModel's CPU threads (None: LiteRT's default).

    Returns:
        (steps, fallback_reason): the `DecodeSteps`, and None, or one line saying why
        each faster loop was refused ("compiled: ...; direct: ...").

    Raises:
        LoopRefused when `mode` names a loop that cannot run this file here.
        ValueError for a `mode` that is not one of MODES or None.
    """
    if mode not in (None, *MODES):
        raise ValueError("mode must be None, 'compiled', 'direct' or 'runner'. "
                         f"Received: mode={mode!r}")
    build = {"compiled": lambda: CompiledSteps.probed(content, spec, num_threads),
             "direct": lambda: DirectSteps.checked(interpreter, spec),
             "runner": lambda: RunnerSteps(interpreter, spec)}  # runs any loaded file
    refused = []
    for candidate in MODES if mode is None else (mode,):
        try:
            return build[candidate](), "; ".join(refused) or None
        except LoopRefused as error:
            if mode is not None:
                raise
            refused.append(f"{candidate}: {error}")


def _check_position(position, cache_length):
    """A position past the cache's T slots would make the model write outside its cache
    (and a loop that never stops): refuse it whatever the caller's loop does."""
    if not 0 <= position < cache_length:
        raise ValueError(f"position must lie in [0, {cache_length}) (the self-attention "
                         f"cache's T slots). Received: position={position}")


class RunnerSteps(DecodeSteps):
    """The decode loop through signature runners: every input copied in, every output
    copied out, on every step. Carries several rows (beams), each with its own cache,
    and reorders them (`reorder`) as beam search keeps and drops beams: over a batch-1
    pair one run per row, over a pair of batch B up to B rows in one run.

    While its runners exist the interpreter refuses `DirectSteps`' invoke: make one for
    a search and drop it after.
    """

    mode = "runner"

    def __init__(self, interpreter, spec, variant=None):
        self._layout = StepLayout(spec, variant)
        self._encode = interpreter.get_signature_runner(self._layout.encode)
        self._decode = interpreter.get_signature_runner(self._layout.decode)

    def start(self, source_ids):
        """Encodes the sources, (B, S') for this pair (B = 1: one source, any rows)."""
        self._encoded = self._encode(**{SOURCE_IDS: source_ids})
        self._rows = [self._layout.empty_caches()]

    def step(self, token, position):
        return self.step_rows([token], position)[0]

    def step_rows(self, tokens, position):
        _check_position(position, self._layout.cache_length)
        if self._layout.batch > 1:  # every row in one run
            out = self._decode(**{TOKEN_IDS: self._layout.tokens(tokens),
                                  POSITION: np.array([position], np.int32)},
                               **self._rows[0], **self._encoded)
            self._rows = [{name: out[name] for name in self._layout.caches}]
            return out[LOGITS][:len(tokens)]
        logits = []
        for row, token in enumerate(tokens):
            out = self._decode(**{TOKEN_IDS: np.array([[token]], np.int32),
                                  POSITION: np.array([position], np.int32)},
                               **self._rows[row], **self._encoded)
            # New arrays every step, never written in place: rows may share them.
            self._rows[row] = {name: out[name] for name in self._layout.caches}
            logits.append(out[LOGITS][0])
        return np.stack(logits)

    def reorder(self, parents):
        if self._layout.batch > 1:
            order = self._layout.permutation(parents)
            self._rows = [{name: value[order] for name, value in self._rows[0].items()}]
        else:
            self._rows = [self._rows[parent] for parent in parents]


class DirectSteps(DecodeSteps):
    """The decode loop through tensor indices: the encoder's outputs are set once per
    sentence, and each step sets two scalars, runs, reads the logits (V floats) and
    moves each layer's K and V cache from its output buffer to its input buffer with
    one memcpy each (the interpreter cannot bind one buffer to both)."""

    mode = "direct"

    def __init__(self, interpreter, spec):
        self._layout = StepLayout(spec)
        self._interpreter = interpreter
        self._decode = DirectSignature(interpreter, DECODE_STEP)
        self._empty_caches = self._layout.empty_caches()
        self._token = np.zeros((1, 1), np.int32)
        self._position = np.zeros((1,), np.int32)

    @classmethod
    def checked(cls, interpreter, spec):
        """`DirectSteps` over `interpreter`; LoopRefused unless `decode_step` lives in
        the primary subgraph, the only one the interpreter's tensor calls reach."""
        if not DirectSignature.possible(interpreter, DECODE_STEP):
            raise LoopRefused(cls.mode, f"{DECODE_STEP} is not in the primary subgraph, "
                                        "so the tensor-index loop cannot run it")
        return cls(interpreter, spec)

    def start(self, source_ids):
        # A signature runner holds a reference to the interpreter's internals, and the
        # interpreter refuses a direct `invoke` while one exists: make it and drop it.
        encode = self._interpreter.get_signature_runner(ENCODE)
        for name, value in encode(**{SOURCE_IDS: source_ids}).items():
            self._decode.set(name, value)
        for name, empty in self._empty_caches.items():
            self._decode.set(name, empty)

    def step(self, token, position):
        _check_position(position, self._layout.cache_length)
        if position:
            for name in self._layout.caches:
                self._decode.copy_output_to_input(name, name)
        self._token[0, 0] = token
        self._position[0] = position
        self._decode.set(TOKEN_IDS, self._token)
        self._decode.set(POSITION, self._position)
        self._decode.invoke()  # as `invoke` does, without its extra call on every token
        return self._decode.get(LOGITS)[0]

    def invoke(self):
        """Runs `decode_step` on its inputs as they are, cache copies left out: the
        interpreter's own share of a step, which benchmarks time alone."""
        self._decode.invoke()


class CompiledSteps(DecodeSteps):
    """The decode loop through ai-edge-litert's CompiledModel, with no cache copy at all:
    each layer's K and V cache is one TensorBuffer bound as both the input and the output
    of `decode_step` (its output is produced by its own in-place DYNAMIC_UPDATE_SLICE),
    as Google's LiteRT-LM binds its KV caches; the encoder's output buffers are bound as
    `decode_step`'s inputs as they are. Per step: B tokens and one position in, B x V
    logits out.

    Over a pair of batch B > 1 it carries up to B rows, all at one position: several
    sources at once (`start` with (B, S') ids), or one source's beams (`reorder`
    permutes the rows' caches, one read and one write of each cache).
    """

    mode = "compiled"

    def __init__(self, model, spec, variant=None):
        self._model, self._spec = model, spec
        layout = self._layout = StepLayout(spec, variant)
        encode, decode = layout.encode, layout.decode
        self._source = model.create_input_buffer_by_name(encode, SOURCE_IDS)
        self._encoded = {name: model.create_output_buffer_by_name(encode, name)
                         for name in layout.encoded}
        self._caches = {name: model.create_input_buffer_by_name(decode, name)
                        for name in layout.caches}
        self._token = model.create_input_buffer_by_name(decode, TOKEN_IDS)
        self._position = model.create_input_buffer_by_name(decode, POSITION)
        self._logits = model.create_output_buffer_by_name(decode, LOGITS)
        self._inputs = {TOKEN_IDS: self._token, POSITION: self._position,
                        **self._encoded, **self._caches}
        self._outputs = {LOGITS: self._logits, **self._caches}
        self._empty_caches = layout.empty_caches()
        self._token_value = np.zeros((layout.batch, 1), np.int32)
        self._position_value = np.zeros((1,), np.int32)
        self._logits_count = layout.batch * layout.vocab_size

    @classmethod
    def probed(cls, content, spec, num_threads=None):
        """`CompiledSteps` over a CompiledModel of `content` on the CPU, once one encode
        and one step have run.

        Raises:
            LoopRefused where the API is missing (tflite-runtime has none) or refuses
            the file. A file whose outputs CompiledModel cannot bind (a constant shared
            by two outputs, for one) loads, then raised a traceback mid-decode: the
            probe refuses it at load instead, and `make_steps` falls back to the
            tensor-index loop, which runs any file the interpreter loads.
        """
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.cpu_options import CpuOptions
            from ai_edge_litert.options import Options
        except ImportError:
            raise LoopRefused(cls.mode, "this LiteRT package has no CompiledModel API "
                                        "(it is ai-edge-litert's)") from None
        try:
            options = Options(cpu_options=CpuOptions(num_threads=num_threads or 0))
            with native_output_silenced():
                model = CompiledModel.from_buffer(content, options=options)
        except (RuntimeError, ValueError, TypeError) as error:
            raise LoopRefused(cls.mode, "CompiledModel cannot load this file: "
                                        f"{_first_line(error)}") from None
        try:
            steps = cls(model, spec)
            steps.start(np.zeros(spec["source_length"], np.int32))
            steps.step(spec["special_ids"]["bos"], 0)
        except Exception as error:  # noqa: BLE001  (its error types vary with the version)
            raise LoopRefused(cls.mode, "CompiledModel cannot run this file: "
                                        f"{_first_line(error)}") from None
        return steps

    def variant(self, variant):
        """A `CompiledSteps` over another signature pair of the same CompiledModel."""
        return type(self)(self._model, self._spec, variant)

    def start(self, source_ids):
        """Encodes (B, S') source ids (for B = 1, any shape holding S' ids)."""
        self._source.write(np.asarray(source_ids, np.int32))
        self._model.run_by_name(self._layout.encode, {SOURCE_IDS: self._source},
                                self._encoded)
        # Slots after `position` are masked out, but a stale value times a zero weight
        # is only zero when finite: start each sentence from a clean cache.
        for name, buffer in self._caches.items():
            buffer.write(self._empty_caches[name])

    def step(self, token, position):
        _check_position(position, self._layout.cache_length)
        self._token_value[0, 0] = token
        self._position_value[0] = position
        self._token.write(self._token_value)
        self._position.write(self._position_value)
        # As `invoke` does, without its extra call on every token.
        self._model.run_by_name(self._layout.decode, self._inputs, self._outputs)
        return self._logits.read(self._layout.vocab_size, np.float32)

    def step_rows(self, tokens, position):
        if self._layout.batch == 1:
            return super().step_rows(tokens, position)
        _check_position(position, self._layout.cache_length)
        self._token.write(self._layout.tokens(tokens))
        self._position_value[0] = position
        self._position.write(self._position_value)
        self._model.run_by_name(self._layout.decode, self._inputs, self._outputs)
        logits = self._logits.read(self._logits_count, np.float32)
        return logits.reshape(self._layout.batch, -1)[:len(tokens)]

    def reorder(self, parents):
        if self._layout.batch == 1:
            return super().reorder(parents)
        order = self._layout.permutation(parents)
        if (order == np.arange(len(order))).all():
            return
        for name, buffer in self._caches.items():
            shape = self._layout.cache_shapes[name]
            value = buffer.read(int(np.prod(shape)), np.float32).reshape(shape)
            buffer.write(np.ascontiguousarray(value[order]))

    def invoke(self):
        """Runs `decode_step` on its bound buffers as they are, nothing written or read:
        the interpreter's own share of a step, which benchmarks time alone."""
        self._model.run_by_name(self._layout.decode, self._inputs, self._outputs)


def _first_line(error):
    """The first line of an exception's message, for a one-line error."""
    return (str(error).strip().splitlines() or ["no reason given"])[0]
