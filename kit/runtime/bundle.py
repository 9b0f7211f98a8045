"""A bundle directory, loaded for decoding: tokenizers + LiteRT file + the decode loops
(greedy, sampling and beam search from `kit.decoding`, over one of the three ways to
run a step of kit/runtime/steps.py: CompiledModel with in-place caches, the Interpreter
by tensor index, or signature runners). The directory's format is
kit/runtime/bundle_format.py's.

Imports neither TensorFlow nor Keras.
"""

import json
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
from kit.quiet import native_output_silenced
from kit.runtime.bundle_files import check_flat_files, load_side, verified_bytes
from kit.runtime.bundle_format import (
    BUNDLE_JSON,
    SIDES,
    BundleError,
    read_bundle_json,
)
from kit.runtime.interpreter import (
    check_num_threads,
    interpreter_class,
    interpreter_options,
    signature_specs,
)
from kit.runtime.steps import LoopRefused, RunnerSteps, greedy_ids, make_steps
from kit.runtime.variants import VariantPicker, source_length
from kit.tokenizers import (
    TokenizerPair,
    source_ids,
)


class Bundle:
    """A loaded bundle. Build it with `Bundle.load(path)`.

    Example:
    >>> bundle = Bundle.load("bundles/x")                      # doctest: +SKIP
    >>> bundle.translate("Sun 29 Nov 2026")                    # doctest: +SKIP
    '2026-11-29'
    """

    def __init__(self, path, spec, tokenizers, interpreter, steps, fallback_reason=None):
        self.path = path
        self.spec = spec  # the parsed bundle.json
        self.source_tokenizer = tokenizers.source  # text -> the ids `encode` reads
        self.target_tokenizer = tokenizers.target  # generated ids -> text
        self.source_length = spec["source_length"]  # S
        self.target_length = spec["target_length"]  # T: cache slots, BOS included
        self.bos_id = spec["special_ids"]["bos"]
        self.eos_id = spec["special_ids"]["eos"]
        self._vocab_size = spec["vocab_size"]["source"]
        # The `kit.runtime.steps.DecodeSteps` that greedy and sampled decoding run on,
        # and why a faster loop was refused (None when none was): see `load`'s `mode`.
        self.steps = steps
        self.fallback_reason = fallback_reason
        self._interpreter = interpreter
        # The file's other signature pairs: source-length buckets and batches.
        self.variants = VariantPicker(spec, steps, interpreter)

    @property
    def mode(self):
        """Which loop `steps` is: "compiled", "direct" or "runner"."""
        return self.steps.mode

    @classmethod
    def load(cls, path, num_threads=None, mode=None):
        """Reads `path`/bundle.json, checks every field of it, checks that the model,
        tokenizer and flat files are the ones it records (SHA-256) before any is
        parsed, that bundle.txt and the vocabulary files agree with it and with the
        tokenizers, and that the model's signatures are the ones it describes.

        Args:
            path: the bundle directory. Nothing in it is written (it may be read-only).
            num_threads: the interpreter's CPU threads, from 1 to the machine's CPU
                count (None: LiteRT's default).
            mode: how a step runs: "compiled" (ai-edge-litert's CompiledModel, each
                KV cache one buffer bound as input and output: no copy), "direct"
                (the Interpreter through tensor indices, each cache copied output to
                input once a step), "runner" (signature runners, every input and
                output copied). None: the first that works, in that order;
                `fallback_reason` then says why the faster ones were refused.

        Raises:
            BundleError, with one line naming the file and the problem.
            ValueError for a bad `num_threads` or `mode`.
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
        model_content = verified_bytes(path, spec["model_file"], spec["files"])
        tokenizers = TokenizerPair(*(load_side(path, spec, side) for side in SIDES))
        check_flat_files(path, spec, tokenizers)
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
        try:
            steps, fallback_reason = make_steps(interpreter, model_content, spec, mode,
                                                num_threads)
        except LoopRefused as refused:  # asked for by name: say why it cannot run
            raise BundleError(f"{model_path}: {refused}") from None
        return cls(path, spec, tokenizers, interpreter, steps, fallback_reason)

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
        steps, ids = self.variants.single_for(self._checked_source(source_ids))
        return greedy_ids(steps, ids, self.bos_id, self.eos_id, max_new_tokens)

    def greedy_batch(self, sources, max_new_tokens=None):
        """Greedy decoding of several sources at once, through the file's pairs of batch
        B > 1: the sources, longest first, in groups of at most the largest B, each
        group decoded by the smallest pair that holds it, every row until its own EOS.
        Without a batch pair, one source at a time.

        Args:
            sources: a list of S-id sources (see `source_ids`).

        Returns:
            per source, in order, the ids `greedy_ids` gives it (the same tokens: the
            rows of a batch do not see each other).
        """
        max_new_tokens = self._checked_max_new_tokens(max_new_tokens)
        checked = [self._checked_source(ids) for ids in sources]
        lengths = [source_length(ids) for ids in checked]
        order = sorted(range(len(checked)), key=lambda i: -lengths[i])
        results = [None] * len(checked)
        size = self.variants.max_batch
        for start in range(0, len(order), size):
            group = order[start:start + size]
            rows = [checked[i] for i in group]
            decoded = (self._greedy_group(rows, lengths[group[0]], max_new_tokens)
                       if len(group) > 1 else None)
            if decoded is None:  # one source, or no batch pair holds these
                decoded = [self.greedy_ids(row, max_new_tokens) for row in rows]
            for i, ids in zip(group, decoded):
                results[i] = ids
        return results

    def _greedy_group(self, rows, length, max_new_tokens):
        """The greedy ids of `rows` (checked sources, the longest `length` tokens) as
        the rows of one batch pair, or None when no pair holds them. The pair's loop
        lives in this call only: signature runners (the tensor-index loop's batches)
        must be gone before that loop invokes again."""
        found = self.variants.batch_for(len(rows), length)
        if found is None:
            return None
        steps, (batch, cut) = found
        ids = np.zeros((batch, cut), np.int32)
        for row, source in enumerate(rows):
            ids[row] = source[0, :cut]
        steps.start(ids)
        generated = greedy_search(steps.step_rows, len(rows), self.bos_id, self.eos_id,
                                  max_new_tokens)
        return [until_eos(row, self.eos_id) for row in generated[:len(rows)]]

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
            rows = self._beam_rows(source, beam_size)
            return beam_search(rows.step_rows, rows.reorder, self.bos_id, self.eos_id,
                               int(max_new_tokens), beam_size, length_penalty)
        steps, ids = self.variants.single_for(source)
        steps.start(ids)
        seen = []  # each step's logits, for the log-probability of the output

        def step(tokens, position):  # (1,) -> (1, V)
            logits = steps.step(int(tokens[0]), position)[None]
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

    def _beam_rows(self, source, beam_size):
        """A loop carrying `beam_size` rows of `source`, started: the rows of the
        smallest batch pair that holds them, when it has at most twice as many (a
        batch-32 pair for 4 beams ran 3x slower than runners), or else signature
        runners of the batch-1 pair, one run per beam (made for this search only: while
        one exists, the interpreter refuses the tensor-index loop's invoke)."""
        found = self.variants.batch_for(beam_size, source_length(source))
        if found is not None and found[1][0] <= 2 * beam_size:
            rows, (batch, cut) = found
            rows.start(np.repeat(source[:, :cut], batch, axis=0))
            return rows
        rows = RunnerSteps(self._interpreter, self.spec)
        rows.start(source)
        return rows

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

    def translate_batch(self, texts):
        """`translate` of each text, the non-empty ones decoded together
        (`greedy_batch`): the same outputs, in order."""
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"translate_batch expects strs. Received: {text!r}")
        outputs = [""] * len(texts)
        work = [i for i, text in enumerate(texts) if text.strip()]
        generated = self.greedy_batch([self.source_ids(texts[i]) for i in work])
        for i, ids in zip(work, generated):
            outputs[i] = self.text_of(ids)
        return outputs

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
        self.steps.start(self._checked_source(source_ids))
        return np.stack([self.steps.step(int(token), position)
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
