"""A bundle directory, loaded for decoding: tokenizer + LiteRT file + greedy loop.

    BUNDLE_DIR/
      model.tflite     signatures `encode` and `decode_step` (see bundle.json)
      tokenizer.json   kit.tokenizer, the same file training used
      bundle.json      what a device needs to write the loop: S, T, special ids,
                       every signature's input and output names, shapes and dtypes
      report.json      what export measured (not needed for decoding)

Imports neither TensorFlow nor Keras.
"""

import json
from pathlib import Path

import numpy as np

from kit.decoding import greedy_search, until_eos
from kit.runtime.interpreter import DirectSignature, interpreter_class, signature_specs
from kit.files import write_json
from kit.tokenizer import TOKENIZER_FILE, TokenizerError, load_tokenizer, source_ids

BUNDLE_FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
TFLITE_FILE = "model.tflite"
REPORT_JSON = "report.json"


class BundleError(ValueError):
    """A bundle directory that is missing, incomplete or inconsistent (one line)."""


class Bundle:
    """A loaded bundle. Build it with `Bundle.load(path)`.

    Example:
    >>> bundle = Bundle.load("bundles/x")                      # doctest: +SKIP
    >>> bundle.translate("Sun 29 Nov 2026")                    # doctest: +SKIP
    '2026-11-29'
    """

    def __init__(self, path, spec, tokenizer, interpreter, direct):
        self.path = path
        self.spec = spec  # the parsed bundle.json
        self.tokenizer = tokenizer
        self.source_length = spec["source_length"]  # S
        self.target_length = spec["target_length"]  # T: cache slots, BOS included
        self.bos_id = spec["special_ids"]["bos"]
        self.eos_id = spec["special_ids"]["eos"]
        self._vocab_size = spec["vocab_size"]["source"]
        self._steps = (_DirectSteps if direct else _RunnerSteps)(interpreter, spec)

    @classmethod
    def load(cls, path, num_threads=None, direct=True):
        """Reads `path`/bundle.json, the tokenizer and the model, and checks that the
        model's signatures are the ones bundle.json describes.

        Args:
            path: the bundle directory.
            num_threads: the interpreter's CPU threads (None: LiteRT's default).
            direct: step through tensor indices, copying the KV cache from the output
                buffer to the input buffer (fast); False uses signature runners,
                which copy every input and output on every step (for comparison).

        Raises:
            BundleError, with one line naming the file and the problem.
        """
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"bundle directory not found: {path}")
        spec = read_bundle_json(path)
        try:
            tokenizer = load_tokenizer(path / spec["tokenizer_file"])
        except TokenizerError as error:
            raise BundleError(str(error)) from None
        model_path = path / spec["model_file"]
        if not model_path.is_file():
            raise BundleError(f"{path} is missing {spec['model_file']}")
        try:
            interpreter = interpreter_class()(model_path=str(model_path),
                                              num_threads=num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise BundleError(f"LiteRT cannot load {model_path}: "
                              f"{str(error).strip().splitlines()[0]}") from None
        found = signature_specs(interpreter)
        if found != spec["signatures"]:
            raise BundleError(f"{model_path} does not match {path / BUNDLE_JSON}: its "
                              f"signatures are {json.dumps(found, sort_keys=True)}")
        if direct and not DirectSignature.possible(interpreter, "decode_step"):
            direct = False
        return cls(path, spec, tokenizer, interpreter, direct)

    @property
    def recipe(self):
        return self.spec["recipe"]

    def source_ids(self, text):
        """`text` -> the S source ids the model reads."""
        return source_ids(self.tokenizer, text, self.source_length)

    def greedy_ids(self, source_ids, max_new_tokens=None):
        """Greedy decoding: BOS at position 0, then each step's argmax fed back at the
        next position, until EOS or `max_new_tokens` (default and most T - 1) tokens.

        Args:
            source_ids: S ints (see `source_ids`).

        Returns:
            The generated ids, EOS included when it was reached: the same tokens as
            the Keras model's `greedy_decode` row up to its EOS.
        """
        limit = self.target_length - 1
        max_new_tokens = limit if max_new_tokens is None else max_new_tokens
        if not 0 < max_new_tokens <= limit:
            raise ValueError(f"max_new_tokens must be in [1, {limit}]. "
                             f"Received: max_new_tokens={max_new_tokens}")
        self._steps.start(self._checked_source(source_ids))

        def step(tokens, position):  # (1,) -> (1, V)
            return self._steps.step(int(tokens[0]), position)[None]

        ids = greedy_search(step, 1, self.bos_id, self.eos_id, max_new_tokens)
        return until_eos(ids[0], self.eos_id)

    def translate(self, text):
        """`text` -> the greedy output text (what `tokenizer.decode` makes of it)."""
        return self.tokenizer.decode(self.greedy_ids(self.source_ids(text)))

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

    def _checked_source(self, source_ids):
        ids = np.asarray(source_ids, dtype=np.int64).reshape(-1)
        if ids.shape != (self.source_length,):
            raise ValueError(f"source_ids must hold S={self.source_length} ids. "
                             f"Received: {ids.shape[0]}")
        if ids.min() < 0 or ids.max() >= self._vocab_size:
            raise ValueError(f"source_ids must lie in [0, {self._vocab_size}). "
                             f"Received: min {ids.min()}, max {ids.max()}")
        return ids.astype(np.int32).reshape(1, -1)


class _RunnerSteps:
    """The decode loop through signature runners: every input copied in, every output
    copied out, on every step."""

    def __init__(self, interpreter, spec):
        self._encode = interpreter.get_signature_runner("encode")
        self._decode = interpreter.get_signature_runner("decode_step")
        self._cache_shape = spec["signatures"]["decode_step"]["inputs"]["self_cache"]["shape"]

    def start(self, source_ids):
        self._encoded = self._encode(source_ids=source_ids)
        self._cache = np.zeros(self._cache_shape, np.float32)

    def step(self, token, position):
        out = self._decode(token_ids=np.array([[token]], np.int32),
                           position=np.array([position], np.int32),
                           self_cache=self._cache, **self._encoded)
        self._cache = out["self_cache"]
        return out["logits"][0]


class _DirectSteps:
    """The decode loop through tensor indices: the encoder's outputs are set once per
    sentence, and each step sets two scalars, runs, reads the logits (V floats) and
    moves the KV cache from the output buffer to the input buffer with one memcpy."""

    def __init__(self, interpreter, spec):
        self._interpreter = interpreter
        self._decode = DirectSignature(interpreter, "decode_step")
        shape = spec["signatures"]["decode_step"]["inputs"]["self_cache"]["shape"]
        self._empty_cache = np.zeros(shape, np.float32)
        self._token = np.zeros((1, 1), np.int32)
        self._position = np.zeros((1,), np.int32)

    def start(self, source_ids):
        # A signature runner holds a reference to the interpreter's internals, and the
        # interpreter refuses a direct `invoke` while one exists: make it and drop it.
        encode = self._interpreter.get_signature_runner("encode")
        for name, value in encode(source_ids=source_ids).items():
            self._decode.set(name, value)
        self._decode.set("self_cache", self._empty_cache)

    def step(self, token, position):
        if position:
            self._decode.copy_output_to_input("self_cache", "self_cache")
        self._token[0, 0] = token
        self._position[0] = position
        self._decode.set("token_ids", self._token)
        self._decode.set("position", self._position)
        self._decode.invoke()
        return self._decode.get("logits")[0]



def bundle_spec(recipe, config, tokenizer, signatures, quantization, source_run):
    """The contents of bundle.json: all a device needs to write the decode loop.

    Args:
        recipe: the quantization recipe's name.
        config: the model config the file was converted from, as a dict
            (`TransformerConfig.to_dict()`: the int8 file's attention mask bias differs
            from the run's).
        tokenizer: the bundle's tokenizer.
        signatures: `signature_specs` of the file.
        quantization: what the recipe did (export's notes and chosen values).
        source_run: where the model came from (path, data, metrics; for people).
    """
    return {
        "format_version": BUNDLE_FORMAT_VERSION,
        "recipe": recipe,
        "quantization": quantization,
        "model_file": TFLITE_FILE,
        "tokenizer_file": TOKENIZER_FILE,
        "source_length": config["max_source_length"],
        "target_length": config["max_target_length"],
        "special_ids": {"pad": tokenizer.pad_id, "unk": tokenizer.unk_id,
                        "bos": tokenizer.bos_id, "eos": tokenizer.eos_id},
        "vocab_size": {"source": config["source_vocab_size"],
                       "target": config["target_vocab_size"],
                       "tokenizer": tokenizer.vocab_size},
        "model": {**config, "head_dim": config["model_dim"] // config["num_heads"]},
        "signatures": signatures,
        "decoding": {
            "source_ids": "tokenizer ids of the text (no BOS/EOS), cut to source_length "
                          "and right-padded with the pad id",
            "loop": "run encode once; self_cache = zeros; token = bos; for position in "
                    "0 .. target_length - 2: run decode_step(token_ids=[[token]], "
                    "position=[position], self_cache, source_mask, cross_cache), keep its "
                    "self_cache output for the next step, token = argmax(logits[0]); stop "
                    "after eos",
            "max_new_tokens": config["max_target_length"] - 1,
            "io_types": "inputs and outputs are float32 and int32 in every recipe; "
                        "quantization is internal to the file",
        },
        "source_run": source_run,
    }


def write_bundle_json(directory, spec):
    """Writes `spec` (from `bundle_spec`) as `directory`/bundle.json, atomically."""
    write_json(Path(directory) / BUNDLE_JSON, spec)

def read_bundle_json(path):
    """The parsed `bundle.json` of bundle directory `path`; BundleError if unusable."""
    file = Path(path) / BUNDLE_JSON
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} has no {BUNDLE_JSON}: not a bundle directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{file} is damaged: {error}") from None
    if not isinstance(spec, dict) or spec.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise BundleError(f"{file} is not a bundle file of format {BUNDLE_FORMAT_VERSION}")
    required = ("recipe", "model_file", "tokenizer_file", "source_length", "target_length",
                "special_ids", "vocab_size", "signatures")
    missing = [name for name in required if name not in spec]
    if missing:
        raise BundleError(f"{file} lacks {', '.join(missing)}")
    return spec
