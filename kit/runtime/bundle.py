"""A bundle directory, loaded for decoding: tokenizers + LiteRT file + the decode loops
(greedy, sampling and beam search from `kit.decoding`, over one of three ways to run a
step: CompiledModel with in-place caches, the Interpreter by tensor index, or signature
runners).

    BUNDLE_DIR/
      model.tflite            signatures `encode` and `decode_step` (see bundle.json)
      source_tokenizer.json   kit.tokenizers: what turns the input text into ids
      target_tokenizer.json   what turns the generated ids into text
      source_tokenizer.model  a SentencePiece tokenizer's model, beside its JSON
      target_tokenizer.model  (bundle.json's "tokenizer" lists each side's files)
      bundle.json             what a device needs to write the loop: S, T, special
                              ids, each side's tokenizer, every signature's input and
                              output names, shapes and dtypes
      report.json             what export measured (not needed for decoding)

Imports neither TensorFlow nor Keras.
"""

import hashlib
import json
import os
import re
import stat
from pathlib import Path

import numpy as np

from kit.decoding import (
    Hypothesis,
    beam_search,
    greedy_search,
    log_softmax,
    sample_search,
    until_eos,
)
from kit.files import write_json
from kit.quiet import native_output_silenced
from kit.runtime.interpreter import (
    DirectSignature,
    check_num_threads,
    interpreter_class,
    interpreter_options,
    signature_specs,
)
from kit.runtime.signatures import (
    DECODE_STEP,
    ENCODE,
    LOGITS,
    POSITION,
    SIGNATURES,
    SOURCE_IDS,
    SOURCE_MASK,
    TOKEN_IDS,
    cache_names,
    count_layers,
    decode_step_inputs,
    decode_step_outputs,
    encode_outputs,
    layer_cross_names,
)
from kit.tokenizers import (
    SOURCE_TOKENIZER_FILE,
    TARGET_TOKENIZER_FILE,
    TokenizerError,
    TokenizerPair,
    load_tokenizer,
    source_ids,
)

# 2: bundle.json records the SHA-256 of the files it describes ("files"), and every
# field is checked at load. A version 1 bundle has no checksums to check.
# 3: one K and one V tensor per decoder layer, in both signatures (self_key_i,
# self_value_i, cross_key_i, cross_value_i), each self-attention cache output produced
# by its own in-place update, instead of one stacked (1, L, 2, T, H, Dh) cache.
# 4: a tokenizer per side: "tokenizer" is {"source": {"type", "files"}, "target": {...}}
# (no "tokenizer_file"), and vocab_size holds source_tokenizer and target_tokenizer.
BUNDLE_FORMAT_VERSION = 4
BUNDLE_JSON = "bundle.json"
TFLITE_FILE = "model.tflite"
REPORT_JSON = "report.json"

# Where each recipe's files were checked to load and decode, by the kit's CI on every
# change (tests/device, 200 inputs: held-out dates and unusual ones), against
# ai-edge-litert's ids. Copied into bundle.json for the app developer.
_ON_TFLITE_RUNTIME = {
    "float32": "loads; identical ids",
    "float16": ("loads; identical ids with the built-in kernels (its XNNPACK delegate "
                "miscomputes float16 weights, so the kit's runtime turns it off there)"),
    "dynamic_int8": "loads; identical ids",
    "int8": ("loads; the same ids on about 90% of inputs: the two interpreters' int8 "
             "kernels round differently"),
}
CHECKED_ON = {recipe: {"ai-edge-litert 2.3.0": "loads; the reference ids",
                       "tflite-runtime 2.14.0": note}
              for recipe, note in _ON_TFLITE_RUNTIME.items()}

# Sanity bounds for bundle.json's numbers, far above any model this kit makes, so that
# a damaged or hostile file is refused before anything is sized from it.
MAX_BUNDLE_JSON_BYTES = 4 << 20  # an exported bundle.json is a few KB
MAX_LENGTH = 1 << 20  # S and T
MAX_VOCAB_SIZE = 1 << 24
MAX_DIMENSION = (1 << 31) - 1  # one axis of a tensor; TFLite shapes are int32
MAX_LAYERS = 1024

# The keys of a bundle.json of this format, and which of them hold free-form notes for
# people (what export measured or chose), which the runtime does not read.
_SPEC_KEYS = frozenset({"format_version", "recipe", "quantization", "model_file",
                        "files", "source_length", "target_length", "special_ids",
                        "vocab_size", "model", "signatures", "decoding", "source_run",
                        "tokenizer"})  # tokenizer: {side: {"type", "files"}}
_NOTES = ("quantization", "model", "decoding", "source_run")
_SPECIAL_NAMES = ("pad", "unk", "bos", "eos")
_SIDES = ("source", "target")
_VOCAB_NAMES = ("source", "target", "source_tokenizer", "target_tokenizer")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle directory that is missing, incomplete or inconsistent (one line)."""


class Bundle:
    """A loaded bundle. Build it with `Bundle.load(path)`.

    Example:
    >>> bundle = Bundle.load("bundles/x")                      # doctest: +SKIP
    >>> bundle.translate("Sun 29 Nov 2026")                    # doctest: +SKIP
    '2026-11-29'
    """

    def __init__(self, path, spec, tokenizers, interpreter, steps):
        self.path = path
        self.spec = spec  # the parsed bundle.json
        self.source_tokenizer = tokenizers.source  # text -> the ids `encode` reads
        self.target_tokenizer = tokenizers.target  # generated ids -> text
        self.source_length = spec["source_length"]  # S
        self.target_length = spec["target_length"]  # T: cache slots, BOS included
        self.bos_id = spec["special_ids"]["bos"]
        self.eos_id = spec["special_ids"]["eos"]
        self._vocab_size = spec["vocab_size"]["source"]
        self._steps = steps  # the fastest loop available: see `load`'s `mode`
        self._interpreter = interpreter

    @property
    def mode(self):
        """How a greedy or sampled step runs: "compiled", "direct" or "runner"."""
        return {_CompiledSteps: "compiled", _DirectSteps: "direct",
                _RunnerSteps: "runner"}[type(self._steps)]

    @classmethod
    def load(cls, path, num_threads=None, direct=True, mode=None):
        """Reads `path`/bundle.json, checks every field of it, checks that the model
        and tokenizer files are the ones it records (SHA-256) before any is parsed,
        and that the model's signatures are the ones it describes.

        Args:
            path: the bundle directory. Nothing in it is written (it may be read-only).
            num_threads: the interpreter's CPU threads, from 1 to the machine's CPU
                count (None: LiteRT's default).
            mode: how a step runs: "compiled" (ai-edge-litert's CompiledModel, each
                KV cache one buffer bound as input and output: no copy), "direct"
                (the Interpreter through tensor indices, each cache copied output to
                input once a step), "runner" (signature runners, every input and
                output copied). None: the first that works, in that order.
            direct: False is the same as mode="runner" (kept for older callers).

        Raises:
            BundleError, with one line naming the file and the problem.
            ValueError for a bad `num_threads`.
        """
        check_num_threads(num_threads)
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"bundle directory not found: {path}")
        spec = read_bundle_json(path)
        # Read once, check, then parse these very bytes: a file that is not the one
        # bundle.json records (another run's tokenizer, another recipe's model, a
        # flipped bit) never reaches the parser or the interpreter, which may crash on
        # a damaged file instead of refusing it.
        model_path = path / spec["model_file"]
        model_content = _verified_bytes(path, spec["model_file"], spec["files"])
        tokenizers = TokenizerPair(*(_load_side(path, spec, side) for side in _SIDES))
        try:
            # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" from C++ on load.
            with native_output_silenced():
                interpreter = interpreter_class()(
                    model_content=model_content,
                    num_threads=None if num_threads is None else int(num_threads),
                    **interpreter_options(spec["recipe"]))
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise BundleError(f"LiteRT cannot load {model_path}: "
                              f"{(str(error).strip().splitlines() or ['no reason given'])[0]}"
                              ) from None
        # bundle.json's signatures were checked against its S, T, vocabulary sizes and
        # special ids; equal to the model's own, they bind those to the model too.
        found = signature_specs(interpreter)
        if found != spec["signatures"]:
            raise BundleError(f"{model_path} does not match {path / BUNDLE_JSON}: "
                              f"{_first_difference(found, spec['signatures'])}")
        mode = "runner" if not direct and mode is None else mode
        if mode not in (None, "compiled", "direct", "runner"):
            raise ValueError("mode must be None, 'compiled', 'direct' or 'runner'. "
                             f"Received: mode={mode!r}")
        steps = None
        if mode in (None, "compiled"):
            model = compiled_model(model_content, num_threads)
            steps = _probed_compiled_steps(model, spec) if model is not None else None
            if steps is None and mode == "compiled":
                raise BundleError("this LiteRT package has no CompiledModel API (it is "
                                  "ai-edge-litert's), or that API cannot run this file: "
                                  "use another mode")
        if steps is None and mode in (None, "direct") and DirectSignature.possible(
                interpreter, DECODE_STEP):
            steps = _DirectSteps(interpreter, spec)
        if steps is None and mode == "direct":
            raise BundleError(f"{model_path}: decode_step is not in the primary subgraph, "
                              "so the tensor-index loop cannot run it")
        return cls(path, spec, tokenizers, interpreter,
                   steps or _RunnerSteps(interpreter, spec))

    @property
    def recipe(self):
        return self.spec["recipe"]

    def source_ids(self, text):
        """`text` -> the S source ids the model reads (cut to S: see `source_report`)."""
        return source_ids(self.source_tokenizer, text, self.source_length)

    def source_report(self, text):
        """What the model will miss of `text`, for a warning before decoding it.

        Returns:
            (unknown, length): how many unknown tokens the source tokenizer makes of
            `text` (characters, or words, it never saw), and how many tokens `text`
            makes; those past `source_length` are cut.
        """
        return (self.source_tokenizer.unknown_count(text),
                len(self.source_tokenizer.encode(text)))

    def greedy_ids(self, source_ids, max_new_tokens=None):
        """Greedy decoding: BOS at position 0, then each step's argmax fed back at the
        next position, until EOS or `max_new_tokens` (default and most T - 1) tokens.

        Args:
            source_ids: S ints (see `source_ids`).

        Returns:
            The generated ids, EOS included when it was reached: the same tokens as
            the Keras model's `greedy_decode` row up to its EOS.
        """
        max_new_tokens = self._checked_max_new_tokens(max_new_tokens)
        self._steps.start(self._checked_source(source_ids))

        def step(tokens, position):  # (1,) -> (1, V)
            return self._steps.step(int(tokens[0]), position)[None]

        ids = greedy_search(step, 1, self.bos_id, self.eos_id, int(max_new_tokens))
        return until_eos(ids[0], self.eos_id)

    def decode_ids(self, source_ids, beam_size=1, sampler=None, length_penalty=1.0,
                   max_new_tokens=None):
        """Decoding by any strategy of `kit.decoding`: greedy (the default), sampled
        (`sampler`, a `TopK` or `TopP`) or beam search (`beam_size` > 1).

        Returns:
            list of `kit.decoding.Hypothesis`, best first: one for greedy and sampling
            (its log_prob and score are the sum of its tokens' log-probabilities), up
            to `beam_size` for beam search.
        """
        max_new_tokens = self._checked_max_new_tokens(max_new_tokens)
        source = self._checked_source(source_ids)
        if beam_size > 1:
            if sampler is not None:
                raise ValueError("beam search and sampling are two ways to choose: pass "
                                 "one of beam_size > 1 and sampler")
            # Beams carry several caches and reorder them: signature runners, made for
            # this search only (while one exists, the interpreter refuses the direct
            # loop's invoke).
            rows = _RunnerSteps(self._interpreter, self.spec)
            rows.start(source)
            return beam_search(rows.step_rows, rows.reorder, self.bos_id, self.eos_id,
                               int(max_new_tokens), beam_size, length_penalty)
        self._steps.start(source)
        seen = []  # each step's logits, for the log-probability of the output

        def step(tokens, position):  # (1,) -> (1, V)
            logits = self._steps.step(int(tokens[0]), position)[None]
            seen.append(logits)
            return logits

        choose = greedy_search if sampler is None else (
            lambda *args: sample_search(*args, sampler))
        ids = until_eos(choose(step, 1, self.bos_id, self.eos_id, int(max_new_tokens))[0],
                        self.eos_id)
        total = sum(float(log_softmax(logits)[0, token])
                    for logits, token in zip(seen, ids))
        return [Hypothesis(ids, total, total / max(len(ids), 1) ** length_penalty,
                           bool(ids) and ids[-1] == self.eos_id)]

    def text_of(self, ids):
        """The text of generated ids, by the target tokenizer (an id past its
        vocabulary, which a larger model vocabulary allows, shows as unknown)."""
        tokenizer = self.target_tokenizer
        known = tokenizer.vocab_size
        return tokenizer.decode([i if i < known else tokenizer.unk_id for i in ids])

    def translate(self, text):
        """`text` -> the greedy output text (what the target tokenizer makes of it).

        Empty or whitespace-only text gives "" without running the model: there is
        nothing to translate, and the model would invent a plausible output.
        """
        if not isinstance(text, str):
            raise TypeError(f"translate expects a str. Received: {text!r}")
        if not text.strip():
            return ""
        return self.text_of(self.greedy_ids(self.source_ids(text)))

    def step_logits(self, source_ids, target_ids):
        """Teacher-forced logits, for verification against another implementation.

        Args:
            source_ids: S ints.
            target_ids: the tokens fed at positions 0, 1, ... (BOS first), at most T.

        Returns:
            (len(target_ids), V) float32: row t holds the logits `decode_step` gives
            for the token after position t.
        """
        if not 0 < len(target_ids) <= self.target_length:
            raise ValueError(f"target_ids must hold 1 to {self.target_length} tokens. "
                             f"Received: {len(target_ids)}")
        self._steps.start(self._checked_source(source_ids))
        return np.stack([self._steps.step(int(token), position)
                         for position, token in enumerate(target_ids)])

    def _checked_max_new_tokens(self, max_new_tokens):
        """`max_new_tokens`, or T - 1 for None; ValueError outside [1, T - 1]."""
        limit = self.target_length - 1
        max_new_tokens = limit if max_new_tokens is None else max_new_tokens
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
                or not 0 < max_new_tokens <= limit:
            raise ValueError(f"max_new_tokens must be an integer in [1, {limit}]. "
                             f"Received: max_new_tokens={max_new_tokens!r}")
        return int(max_new_tokens)

    def _checked_source(self, source_ids):
        ids = np.asarray(source_ids, dtype=np.int64).reshape(-1)
        if ids.shape != (self.source_length,):
            raise ValueError(f"source_ids must hold S={self.source_length} ids. "
                             f"Received: {ids.shape[0]}")
        if ids.min() < 0 or ids.max() >= self._vocab_size:
            raise ValueError(f"source_ids must lie in [0, {self._vocab_size}). "
                             f"Received: min {ids.min()}, max {ids.max()}")
        return ids.astype(np.int32).reshape(1, -1)


def _read_regular_file(file, missing, limit=None):
    """The bytes of `file`, a regular file (or a link to one) of at most `limit` bytes;
    BundleError with the message `missing` if there is none. A FIFO would block the
    read and a device such as /dev/zero would never end it, so neither is opened."""
    try:
        found = os.stat(file)
        if not stat.S_ISREG(found.st_mode):
            raise BundleError(f"{file} is not a regular file")
        if limit is not None and found.st_size > limit:
            raise BundleError(f"{file} is larger than {limit >> 20} MB: not a bundle file "
                              "(export writes a few KB)")
        with open(file, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise BundleError(missing) from None
    except OSError as error:
        raise BundleError(f"cannot read {file}: {error.strerror or error}") from None


def _verified_bytes(path, name, files):
    """The bytes of `path`/`name`, if their SHA-256 is the one bundle.json records."""
    file = path / name
    content = _read_regular_file(file, f"{path} is missing {name}")
    digest = hashlib.sha256(content).hexdigest()
    if digest != files[name]:
        raise BundleError(f"{file} is not the file {path / BUNDLE_JSON} describes (SHA-256 "
                          f"{digest[:16]}..., recorded {files[name][:16]}...): it was "
                          "changed, damaged or copied from another bundle; export again")
    return content


def _load_side(path, spec, side):
    """The `side` ("source" or "target") tokenizer of the bundle in `path`: its files
    checked against bundle.json's checksums, then parsed, then checked against
    bundle.json's type, vocabulary sizes and special ids."""
    names = spec["tokenizer"][side]["files"]
    tokenizer_path = path / names[0]
    content = _verified_bytes(path, names[0], spec["files"])

    def read_tokenizer_file(name):  # a SentencePiece model: checked, then parsed
        if name not in names:
            raise BundleError(f"{tokenizer_path} needs {name}, which {path / BUNDLE_JSON} "
                              f"does not list among the {side} tokenizer's files")
        return _verified_bytes(path, name, spec["files"])

    try:
        tokenizer = load_tokenizer(tokenizer_path, content=content,
                                   read_file=read_tokenizer_file)
    except TokenizerError as error:
        raise BundleError(str(error)) from None
    _check_tokenizer(spec, side, tokenizer, tokenizer_path, path / BUNDLE_JSON)
    return tokenizer


def _check_tokenizer(spec, side, tokenizer, tokenizer_path, file):
    """The `side` tokenizer agrees with bundle.json's type, vocabulary sizes and
    special ids."""
    kind = spec["tokenizer"][side]["type"]
    if tokenizer.TYPE != kind:
        raise BundleError(f"{tokenizer_path} is a {tokenizer.TYPE} tokenizer, "
                          f"but {file} says tokenizer.{side}.type is {kind!r}")
    sizes = spec["vocab_size"]
    if tokenizer.vocab_size != sizes[f"{side}_tokenizer"]:
        raise BundleError(f"{tokenizer_path} has {tokenizer.vocab_size} tokens, but {file} "
                          f"says vocab_size.{side}_tokenizer is {sizes[f'{side}_tokenizer']}")
    # Export's rule (export/load.py): the model embeds every id the tokenizer makes.
    # A larger model vocabulary is allowed; `translate` shows its extra ids as unknown.
    if tokenizer.vocab_size > sizes[side]:
        raise BundleError(f"{tokenizer_path} has {tokenizer.vocab_size} tokens, more than "
                          f"the model's {side} vocabulary ({sizes[side]}; {file})")
    ids = {"pad": tokenizer.pad_id, "unk": tokenizer.unk_id, "bos": tokenizer.bos_id,
           "eos": tokenizer.eos_id}
    for name, value in ids.items():
        if spec["special_ids"][name] != value:
            raise BundleError(f"{file}: special_ids.{name} is {spec['special_ids'][name]}, "
                              f"but {tokenizer_path} uses id {value}")


def _check_position(position, cache_length):
    """A position past the cache's T slots would make the model write outside its cache
    (and a loop that never stops): refuse it whatever the caller's loop does."""
    if not 0 <= position < cache_length:
        raise ValueError(f"position must lie in [0, {cache_length}) (the self-attention "
                         f"cache's T slots). Received: position={position}")


class _Layout:
    """The names and shapes a decode loop needs, read from the checked bundle.json."""

    def __init__(self, spec):
        decode = spec["signatures"][DECODE_STEP]
        self.encoded = sorted(spec["signatures"][ENCODE]["outputs"])
        self.caches = sorted(name for name in decode["outputs"] if name != LOGITS)
        self.cache_shape = decode["inputs"][self.caches[0]]["shape"]  # (1, T, H, Dh)
        self.cache_length = self.cache_shape[1]
        self.vocab_size = decode["outputs"][LOGITS]["shape"][1]


class _RunnerSteps:
    """The decode loop through signature runners: every input copied in, every output
    copied out, on every step. Carries several rows (beams), each with its own cache,
    and reorders them (`reorder`) as beam search keeps and drops beams."""

    def __init__(self, interpreter, spec):
        self._layout = _Layout(spec)
        self._encode = interpreter.get_signature_runner(ENCODE)
        self._decode = interpreter.get_signature_runner(DECODE_STEP)

    def start(self, source_ids):
        self._encoded = self._encode(**{SOURCE_IDS: source_ids})
        empty = np.zeros(self._layout.cache_shape, np.float32)
        self._rows = [{name: empty for name in self._layout.caches}]

    def step(self, token, position):
        return self.step_rows([token], position)[0]

    def step_rows(self, tokens, position):
        """(R,) tokens, one per row -> (R, V) logits; each row's cache advances."""
        _check_position(position, self._layout.cache_length)
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
        self._rows = [self._rows[parent] for parent in parents]


def _first_difference(found, recorded, where="signatures"):
    """'signatures.decode_step.inputs.position.shape is [2], bundle.json says [1]': the
    first place two nested dicts differ, short enough for one line."""
    if isinstance(found, dict) and isinstance(recorded, dict):
        for key in sorted(set(found) | set(recorded), key=str):
            if key not in found:
                return f"{where} has no {key!r}, which bundle.json lists"
            if key not in recorded:
                return f"{where} has {key!r}, which bundle.json does not list"
            if found[key] != recorded[key]:
                return _first_difference(found[key], recorded[key], f"{where}.{key}")
    shown = [json.dumps(value)[:60] for value in (found, recorded)]
    return f"{where} is {shown[0]}, bundle.json says {shown[1]}"


class _DirectSteps:
    """The decode loop through tensor indices: the encoder's outputs are set once per
    sentence, and each step sets two scalars, runs, reads the logits (V floats) and
    moves each layer's K and V cache from its output buffer to its input buffer with
    one memcpy each (the interpreter cannot bind one buffer to both)."""

    def __init__(self, interpreter, spec):
        self._layout = _Layout(spec)
        self._interpreter = interpreter
        self._decode = DirectSignature(interpreter, DECODE_STEP)
        self._empty_cache = np.zeros(self._layout.cache_shape, np.float32)
        self._token = np.zeros((1, 1), np.int32)
        self._position = np.zeros((1,), np.int32)

    def start(self, source_ids):
        # A signature runner holds a reference to the interpreter's internals, and the
        # interpreter refuses a direct `invoke` while one exists: make it and drop it.
        encode = self._interpreter.get_signature_runner(ENCODE)
        for name, value in encode(**{SOURCE_IDS: source_ids}).items():
            self._decode.set(name, value)
        for name in self._layout.caches:
            self._decode.set(name, self._empty_cache)

    def step(self, token, position):
        _check_position(position, self._layout.cache_length)
        if position:
            for name in self._layout.caches:
                self._decode.copy_output_to_input(name, name)
        self._token[0, 0] = token
        self._position[0] = position
        self._decode.set(TOKEN_IDS, self._token)
        self._decode.set(POSITION, self._position)
        self._decode.invoke()
        return self._decode.get(LOGITS)[0]


class _CompiledSteps:
    """The decode loop through ai-edge-litert's CompiledModel, with no cache copy at all:
    each layer's K and V cache is one TensorBuffer bound as both the input and the output
    of `decode_step` (its output is produced by its own in-place DYNAMIC_UPDATE_SLICE),
    as Google's LiteRT-LM binds its KV caches; the encoder's output buffers are bound as
    `decode_step`'s inputs as they are. Per step: two scalars in, V logits out."""

    def __init__(self, model, spec):
        self._model = model
        layout = self._layout = _Layout(spec)
        self._source = model.create_input_buffer_by_name(ENCODE, SOURCE_IDS)
        self._encoded = {name: model.create_output_buffer_by_name(ENCODE, name)
                         for name in layout.encoded}
        self._caches = {name: model.create_input_buffer_by_name(DECODE_STEP, name)
                        for name in layout.caches}
        self._token = model.create_input_buffer_by_name(DECODE_STEP, TOKEN_IDS)
        self._position = model.create_input_buffer_by_name(DECODE_STEP, POSITION)
        self._logits = model.create_output_buffer_by_name(DECODE_STEP, LOGITS)
        self._inputs = {TOKEN_IDS: self._token, POSITION: self._position,
                        **self._encoded, **self._caches}
        self._outputs = {LOGITS: self._logits, **self._caches}
        self._empty_cache = np.zeros(layout.cache_shape, np.float32)
        self._token_value = np.zeros((1, 1), np.int32)
        self._position_value = np.zeros((1,), np.int32)

    def start(self, source_ids):
        self._source.write(np.asarray(source_ids, np.int32))
        self._model.run_by_name(ENCODE, {SOURCE_IDS: self._source}, self._encoded)
        # Slots after `position` are masked out, but a stale value times a zero weight
        # is only zero when finite: start each sentence from a clean cache.
        for buffer in self._caches.values():
            buffer.write(self._empty_cache)

    def step(self, token, position):
        _check_position(position, self._layout.cache_length)
        self._token_value[0, 0] = token
        self._position_value[0] = position
        self._token.write(self._token_value)
        self._position.write(self._position_value)
        self._model.run_by_name(DECODE_STEP, self._inputs, self._outputs)
        return self._logits.read(self._layout.vocab_size, np.float32)


def _probed_compiled_steps(model, spec):
    """`_CompiledSteps` over `model`, once one encode and one step have run; None when
    they fail, so that `Bundle.load` falls back to the tensor-index loop, which runs any
    file the interpreter loads. (A file whose outputs CompiledModel cannot bind, a
    constant shared by two outputs for one, raised a traceback mid-decode.)"""
    try:
        steps = _CompiledSteps(model, spec)
        steps.start(np.zeros(spec["source_length"], np.int32))
        steps.step(spec["special_ids"]["bos"], 0)
    except Exception:  # noqa: BLE001  (its error types vary with the package's version)
        return None
    return steps


def compiled_model(content, num_threads=None):
    """An ai-edge-litert CompiledModel of `content` on the CPU, or None where that API is
    not available (tflite-runtime) or refuses the file."""
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.cpu_options import CpuOptions
        from ai_edge_litert.options import Options
    except ImportError:
        return None
    try:
        options = Options(cpu_options=CpuOptions(num_threads=num_threads or 0))
        with native_output_silenced():
            return CompiledModel.from_buffer(content, options=options)
    except (RuntimeError, ValueError, TypeError):
        return None


def bundle_spec(recipe, config, tokenizers, signatures, quantization, source_run):
    """The contents of bundle.json: all a device needs to write the decode loop.

    Args:
        recipe: the quantization recipe's name.
        config: the model config the file was converted from, as a dict
            (`TransformerConfig.to_dict()`: the int8 file's attention mask bias differs
            from the run's).
        tokenizers: the bundle's `kit.tokenizers.TokenizerPair`, saved in the bundle
            directory as source_tokenizer.json and target_tokenizer.json.
        signatures: `signature_specs` of the file.
        quantization: what the recipe did (export's notes and chosen values).
        source_run: where the model came from (path, data, metrics; for people).
    """
    return {
        "format_version": BUNDLE_FORMAT_VERSION,
        "recipe": recipe,
        "quantization": quantization,
        "model_file": TFLITE_FILE,
        # What an app loads for each side: "char" or "word" (the JSON's vocabulary)
        # or "sentencepiece" (the .model file, for SentencePieceProcessor); every file
        # the tokenizer uses, its JSON first. The source side encodes the input text,
        # the target side decodes the generated ids.
        "tokenizer": {
            side: {"type": tokenizer.TYPE, "files": tokenizer.files(name)}
            for side, tokenizer, name in (("source", tokenizers.source, SOURCE_TOKENIZER_FILE),
                                          ("target", tokenizers.target, TARGET_TOKENIZER_FILE))},
        "source_length": config["max_source_length"],
        "target_length": config["max_target_length"],
        # The kit's tokenizers all use these ids (kit/tokenizers/base.py).
        "special_ids": {"pad": tokenizers.target.pad_id, "unk": tokenizers.target.unk_id,
                        "bos": tokenizers.target.bos_id, "eos": tokenizers.target.eos_id},
        "vocab_size": {"source": config["source_vocab_size"],
                       "target": config["target_vocab_size"],
                       "source_tokenizer": tokenizers.source.vocab_size,
                       "target_tokenizer": tokenizers.target.vocab_size},
        "model": {**config, "head_dim": config["model_dim"] // config["num_heads"]},
        "signatures": signatures,
        "decoding": {
            "source_ids": "the source tokenizer's ids of the text (no BOS/EOS), cut to "
                          "source_length and right-padded with the pad id",
            "output": "the target tokenizer's decode of the generated ids",
            "loop": "run encode once and pass all its outputs (source_mask, cross_key_i, "
                    "cross_value_i) to every decode_step; self_key_i = self_value_i = "
                    "zeros; token = bos; for position in 0 .. target_length - 2: run "
                    "decode_step(token_ids=[[token]], position=[position], ...), "
                    "token = argmax(logits[0]); stop after eos",
            "kv_cache": "each self_key_i / self_value_i output is the same tensor as the "
                        "input of that name, updated in place at `position`: bind one "
                        "buffer as both input and output (no copy per step), or copy "
                        "each output to its input before the next step",
            "max_new_tokens": config["max_target_length"] - 1,
            "io_types": "inputs and outputs are float32 and int32 in every recipe; "
                        "quantization is internal to the file",
            "checked_on": CHECKED_ON.get(recipe, {}),
        },
        "source_run": source_run,
    }


def write_bundle_json(directory, spec):
    """Writes `spec` (from `bundle_spec`) as `directory`/bundle.json, atomically, with
    the SHA-256 of its model and tokenizer files as they are in `directory` now (so
    write them first): `Bundle.load` refuses files that are not these.

    Raises:
        BundleError if `spec` is not a valid bundle.json or a file is missing.
    """
    directory = Path(directory)
    files = {}
    for name in (spec["model_file"], *tokenizer_files(spec)):
        try:
            files[name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        except FileNotFoundError:
            raise BundleError(f"{directory} is missing {name}: write it before "
                              f"{BUNDLE_JSON}") from None
    spec = {**spec, "files": files}
    check_bundle_spec(spec, directory / BUNDLE_JSON)
    write_json(directory / BUNDLE_JSON, spec)


def read_bundle_json(path):
    """The parsed and checked `bundle.json` of bundle directory `path`.

    Raises:
        BundleError, one line, for a missing, damaged or inconsistent file.
    """
    file = Path(path) / BUNDLE_JSON
    raw = _read_regular_file(file, f"{path} has no {BUNDLE_JSON}: not a bundle directory",
                             limit=MAX_BUNDLE_JSON_BYTES)
    try:
        spec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BundleError(f"{file} is damaged: not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise BundleError(f"{file} is damaged: {error.msg} at line {error.lineno}, "
                          f"column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        # Valid JSON that Python refuses: an integer of more than 4300 digits, or
        # arrays nested deeper than the parser's recursion limit.
        raise BundleError(f"{file} is damaged: {str(error).splitlines()[0]}") from None
    check_bundle_spec(spec, file)
    return spec


def check_bundle_spec(spec, file=BUNDLE_JSON):
    """Checks every field of a parsed bundle.json that the runtime relies on: types,
    ranges, every nested key, and that S, T, the vocabulary sizes and the special ids
    agree with the signatures it describes.

    Args:
        spec: the parsed JSON.
        file: its path, for the message.

    Raises:
        BundleError, one line naming `file`, the field and the value.
    """
    def fail(message):
        raise BundleError(f"{file}: {message}")

    if not isinstance(spec, dict):
        fail(f"holds a JSON {type(spec).__name__}, expected an object: not a bundle file")
    if "format_version" not in spec:
        fail("has no format_version: not a bundle file")
    version = spec["format_version"]
    if _integer(version) != BUNDLE_FORMAT_VERSION:
        fail(f"the bundle has format version {_shown(version)}, and this runtime reads "
             f"version {BUNDLE_FORMAT_VERSION} only: export it again with this kit")
    missing = sorted(_SPEC_KEYS - set(spec))
    if missing:
        fail(f"lacks {', '.join(missing)}")
    extra = sorted(set(spec) - _SPEC_KEYS, key=str)
    if extra:
        fail(f"has unknown keys {', '.join(map(_shown, extra))} (not a format "
             f"{BUNDLE_FORMAT_VERSION} bundle file)")
    for name in _NOTES:
        if not isinstance(spec[name], dict):
            fail(f"{name} must be an object. Received: {_shown(spec[name])}")
    if not isinstance(spec["recipe"], str) or not spec["recipe"]:
        fail(f"recipe must be a non-empty string. Received: {_shown(spec['recipe'])}")
    if not _plain_file_name(spec["model_file"]):
        fail(f"model_file must be a file name in the bundle directory. "
             f"Received: {_shown(spec['model_file'])}")
    sides = _object(spec, "tokenizer", _SIDES, fail)
    seen = {spec["model_file"]}
    for side in _SIDES:
        kind = _object(sides, side, ("type", "files"), fail, f"tokenizer.{side}")
        if not isinstance(kind["type"], str) or not kind["type"]:
            fail(f"tokenizer.{side}.type must be a non-empty string. "
                 f"Received: {_shown(kind['type'])}")
        names = kind["files"]
        if not isinstance(names, list) or not names \
                or not all(_plain_file_name(name) for name in names) \
                or len(set(names)) != len(names) or seen & set(names):
            fail(f"tokenizer.{side}.files must list distinct file names in the bundle "
                 f"directory, its JSON first, none of them model_file or the other "
                 f"side's. Received: {_shown(names)}")
        seen.update(names)
    files = _object(spec, "files", (spec["model_file"], *tokenizer_files(spec)), fail)
    for name, digest in files.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            fail(f"files.{name} must be a SHA-256 (64 hex digits). Received: {_shown(digest)}")

    S = _number(spec, "source_length", spec["source_length"], 1, MAX_LENGTH, fail)
    T = _number(spec, "target_length", spec["target_length"], 2, MAX_LENGTH, fail)
    sizes = _object(spec, "vocab_size", _VOCAB_NAMES, fail)
    for name in _VOCAB_NAMES:
        _number(spec, f"vocab_size.{name}", sizes[name], 4, MAX_VOCAB_SIZE, fail)
    ids = _object(spec, "special_ids", _SPECIAL_NAMES, fail)
    smallest = min(sizes["source"], sizes["target"])
    for name in _SPECIAL_NAMES:
        _number(spec, f"special_ids.{name}", ids[name], 0, smallest - 1, fail)
    if len(set(ids.values())) != len(ids):
        fail(f"special_ids must be four different ids. Received: {_shown(ids)}")

    signatures = _object(spec, "signatures", SIGNATURES, fail)
    tensors = {}
    for key in SIGNATURES:
        sides = _object(signatures, key, ("inputs", "outputs"), fail, f"signatures.{key}")
        for side in ("inputs", "outputs"):
            where = f"signatures.{key}.{side}"
            found = sides[side]
            if not isinstance(found, dict):
                fail(f"{where} must be an object. Received: {_shown(found)}")
            for name, tensor in found.items():
                tensors[key, side, name] = _tensor(tensor, f"{where}.{name}", fail)

    # The decoding contract (README, "The exported file"): what each signature takes and
    # gives, with S, T and the target vocabulary V on the axes the loop relies on.
    V = sizes["target"]
    layers = count_layers(signatures[ENCODE]["outputs"])
    first_cross = layer_cross_names(0)[0]
    if not 1 <= layers <= MAX_LAYERS:
        fail(f"signatures.{ENCODE}.outputs must name {first_cross} .. "
             f"{layer_cross_names('(L-1)')[0]} for 1 to {MAX_LAYERS} decoder layers. "
             f"Received: {layers} of them")
    encoded, caches = encode_outputs(layers), cache_names(layers)
    expected_names = {
        (ENCODE, "inputs"): (SOURCE_IDS,),
        (ENCODE, "outputs"): encoded,
        (DECODE_STEP, "inputs"): decode_step_inputs(layers),
        (DECODE_STEP, "outputs"): decode_step_outputs(layers),
    }
    for (key, side), names in expected_names.items():
        have = set(signatures[key][side])
        if have != set(names):
            fail(f"signatures.{key}.{side} must name {', '.join(sorted(names))}. "
                 f"Received: {', '.join(sorted(map(str, have))) or 'none'}")

    def expect(key, side, name, dtype, rank, axes, meaning):
        shape, found_dtype = tensors[key, side, name]
        where = f"signatures.{key}.{side}.{name}"
        if found_dtype != dtype:
            fail(f"{where} must be {dtype}. Received: {_shown(found_dtype)}")
        if len(shape) != rank or any(shape[axis] != size for axis, size in axes.items()):
            fail(f"{where} has shape {shape}, expected {meaning}")
        return shape

    expect(ENCODE, "inputs", SOURCE_IDS, "int32", 2, {0: 1, 1: S}, f"(1, S={S})")
    expect(ENCODE, "outputs", SOURCE_MASK, "float32", 2, {0: 1, 1: S}, f"(1, S={S})")
    cross = expect(ENCODE, "outputs", first_cross, "float32", 4, {0: 1, 1: S},
                   f"(1, S={S}, H, Dh)")
    heads = {0: 1, 1: S, 2: cross[2], 3: cross[3]}
    for name in encoded[1:]:
        expect(ENCODE, "outputs", name, "float32", 4, heads,
               f"(1, S={S}, H={cross[2]}, Dh={cross[3]}) as {first_cross}")
    expect(DECODE_STEP, "inputs", TOKEN_IDS, "int32", 2, {0: 1, 1: 1}, "(1, 1)")
    expect(DECODE_STEP, "inputs", POSITION, "int32", 1, {0: 1}, "(1,)")
    for name in caches:
        for side in ("inputs", "outputs"):
            expect(DECODE_STEP, side, name, "float32", 4,
                   {0: 1, 1: T, 2: cross[2], 3: cross[3]},
                   f"(1, T={T}, H={cross[2]}, Dh={cross[3]})")
    expect(DECODE_STEP, "outputs", LOGITS, "float32", 2, {0: 1, 1: V},
           f"(1, V={V}) with V vocab_size.target")
    for name in encoded:
        if tensors[DECODE_STEP, "inputs", name] != tensors[ENCODE, "outputs", name]:
            fail(f"signatures.{DECODE_STEP}.inputs.{name} differs from {ENCODE}'s output "
                 f"{name}, which the loop passes to it")
    return spec


def tokenizer_files(spec):
    """Every tokenizer file a bundle.json names: the source's, then the target's."""
    return [name for side in _SIDES for name in spec["tokenizer"][side]["files"]]


def _integer(value):
    """`value` if it is a JSON integer (not a bool, not 1.0), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(spec, where, value, low, high, fail):
    if _integer(value) is None or not low <= value <= high:
        fail(f"{where} must be an integer from {low} to {high}. Received: {_shown(value)}")
    return value


def _object(parent, key, names, fail, where=None):
    """`parent[key]`, which must be an object holding exactly the keys `names`."""
    where = where or key
    value = parent[key]
    if not isinstance(value, dict):
        fail(f"{where} must be an object. Received: {_shown(value)}")
    missing = [name for name in names if name not in value]
    if missing:
        fail(f"{where} lacks {', '.join(missing)}")
    extra = sorted(set(value) - set(names))
    if extra:
        fail(f"{where} has unknown keys {', '.join(map(_shown, extra))}")
    return value


def _tensor(tensor, where, fail):
    """(shape, dtype) of one {"shape": [...], "dtype": "..."} entry."""
    if not isinstance(tensor, dict) or set(tensor) != {"shape", "dtype"}:
        fail(f"{where} must be an object with shape and dtype. Received: {_shown(tensor)}")
    shape, dtype = tensor["shape"], tensor["dtype"]
    if not isinstance(shape, list) or not 0 < len(shape) <= 8 or any(
            _integer(d) is None or not 1 <= d <= MAX_DIMENSION for d in shape):
        fail(f"{where}.shape must be a list of 1 to 8 positive integers. "
             f"Received: {_shown(shape)}")
    if not isinstance(dtype, str):
        fail(f"{where}.dtype must be a string. Received: {_shown(dtype)}")
    return shape, dtype


def _plain_file_name(name):
    """A name that stays inside the bundle directory: no separators, no '..'."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "\0" not in name
            and os.path.basename(name) == name and "/" not in name and "\\" not in name)


def _shown(value, limit=60):
    """`value` for a one-line message: repr, cut to `limit` characters."""
    text = json.dumps(value, ensure_ascii=True, default=repr) if not isinstance(value, str) \
        else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
