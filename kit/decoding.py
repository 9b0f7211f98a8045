"""The kit's decoding loops: output tokens chosen from a step function's logits.

A *step* is any function

    step(token_ids, position) -> logits
        token_ids: (B,) int32, each row's token at `position` (BOS at position 0)
        position:  int, the same for every row
        logits:    (B, V) float32, the scores of each row's token at position + 1

The Keras model (`Seq2SeqTransformer.greedy_decode`, a step over `decode_step` with a
KV cache), export's verification and the device runtime (`kit.runtime.Bundle`, a step
over the LiteRT `decode_step` signature) all decode through this module, so they
cannot disagree about where decoding starts, what it feeds back and where it stops.

Three ways to choose, each tested against fake steps over a small alphabet:
- `greedy_search`: each row's argmax (what export verifies files with);
- `sample_search` with a `TopK` or `TopP` sampler: a seeded random draw from the
  temperature-scaled distribution, cut to the k likeliest tokens or to the smallest set
  whose probability reaches p;
- `beam_search`: the k best partial outputs by total log-probability, one source at a
  time (`batched_beam_search`: several sources in step, for a batched model). Its step
  rows are beams, and a `reorder(parents)` callback tells the caller which beam each
  surviving row continues, so that the caller carries and reorders each beam's KV
  cache.

numpy only: this runs on the device. Logits are read in float32 and turned into
log-probabilities in float64, so no recipe's logits overflow a softmax here.
"""

import math
from dataclasses import dataclass

import numpy as np


class NonFiniteLogits(ValueError):
    """A step returned NaN or infinite logits: the model is broken (a damaged file, a
    diverged training), and no token chosen from them would mean anything."""


def _finite(logits, position, rows=None):
    """`logits`, or NonFiniteLogits when any of `rows` (all by default) is not finite.
    One pass over (B, V) floats per step: 2-3 us for one row of 8,000 logits on 2
    cores, against about 170 us for a float32 bundle's step; the rows are picked out
    (about 2 us more) only once some have finished."""
    checked = logits if rows is None or rows.all() else logits[rows]
    if not np.isfinite(checked).all():
        raise NonFiniteLogits(
            f"the model's logits at step {position + 1} are not finite (NaN or infinity): "
            "the model is broken (a damaged file, or a training that diverged), so "
            "nothing it decodes can be trusted")
    return logits


def greedy_search(step, batch_size, bos_id, eos_id, max_new_tokens, return_logits=False):
    """Greedy decoding: BOS at position 0, then each row's argmax fed back at the next
    position, until every row has produced EOS or `max_new_tokens` tokens were made.

    Args:
        step: `step(token_ids (B,), position) -> logits (B, V)`.
        batch_size: B.
        bos_id, eos_id: the target's start and end token ids.
        max_new_tokens: the most tokens to generate (T - 1 for a cache of T slots).
        return_logits: also return every step's logits.

    Returns:
        (B, max_new_tokens) int32 ids; a row holds its EOS and then 0 (padding). With
        `return_logits`, also (B, max_new_tokens, V) float32 logits, 0 after the last
        step that ran.
    """
    def argmax(logits):
        return np.argmax(logits, axis=-1).astype(np.int32)

    return _search(step, batch_size, bos_id, eos_id, max_new_tokens, argmax, return_logits)


def sample_search(step, batch_size, bos_id, eos_id, max_new_tokens, sampler,
                  return_logits=False):
    """As `greedy_search`, with each next token drawn by `sampler` (a `TopK` or `TopP`)."""
    return _search(step, batch_size, bos_id, eos_id, max_new_tokens, sampler, return_logits)


def _search(step, batch_size, bos_id, eos_id, max_new_tokens, choose, return_logits):
    """The loop of greedy and sampled decoding; `choose(logits (B, V)) -> ids (B,)`."""
    _check_max_new_tokens(max_new_tokens)
    output = np.zeros((batch_size, max_new_tokens), np.int32)
    finished = np.zeros(batch_size, bool)
    tokens = np.full(batch_size, bos_id, np.int32)
    all_logits = None
    for position in range(max_new_tokens):
        logits = _finite(np.asarray(step(tokens, position), np.float32), position,
                         ~finished)  # (B, V)
        if return_logits:
            if all_logits is None:
                all_logits = np.zeros((batch_size, max_new_tokens, logits.shape[-1]),
                                      np.float32)
            all_logits[:, position] = logits
        next_ids = np.asarray(choose(logits), np.int32)  # (B,)
        next_ids[finished] = 0
        output[:, position] = next_ids
        finished |= next_ids == eos_id
        if finished.all():
            break
        tokens = next_ids
    return (output, all_logits) if return_logits else output


def _check_max_new_tokens(max_new_tokens):
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
            or max_new_tokens < 1:
        raise ValueError("`max_new_tokens` must be a positive integer. "
                         f"Received: max_new_tokens={max_new_tokens!r}")


def until_eos(ids, eos_id):
    """One row of `greedy_search` as a list: up to and including EOS, or all of it."""
    ids = [int(t) for t in ids]
    return ids[:ids.index(eos_id) + 1] if eos_id in ids else ids


def log_softmax(logits):
    """(..., V) -> float64 log-probabilities."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class _Sampler:
    """What `TopK` and `TopP` share: a temperature, a seeded generator, and a draw
    from the tokens that their `allowed(log_probs)` keeps."""

    def __call__(self, logits):
        """(B, V) logits -> (B,) int32 ids."""
        log_probs = log_softmax(np.asarray(logits, np.float64) / self.temperature)
        log_probs = np.where(self.allowed(log_probs), log_probs, -np.inf)
        cumulative = np.cumsum(np.exp(log_softmax(log_probs)), axis=-1)  # (B, V)
        draws = self.rng.random((len(cumulative), 1)) * cumulative[:, -1:]
        return np.minimum((cumulative <= draws).sum(axis=-1),
                          cumulative.shape[-1] - 1).astype(np.int32)


class TopK(_Sampler):
    """Samples among the k likeliest tokens, from softmax(logits / temperature).

    Args:
        k: how many of the likeliest tokens may be drawn (1 is greedy).
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
        seed: the random generator's seed: the same seed gives the same outputs.
    """

    def __init__(self, k=10, temperature=1.0, seed=None):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
        self.k = int(k)
        self.temperature = _checked_temperature(temperature)
        self.rng = np.random.default_rng(seed)

    def allowed(self, log_probs):
        """(B, V) bool: the tokens each row may draw."""
        # By rank, not by value: ties at the k-th value would let more than k in.
        ranks = np.argsort(np.argsort(-log_probs, axis=-1, kind="stable"), axis=-1)  # (B, V)
        return ranks < self.k


class TopP(_Sampler):
    """Nucleus sampling: draws from the smallest set of likeliest tokens whose total
    probability reaches p, after softmax(logits / temperature).

    Args:
        p: in (0, 1]; 1 draws from the whole distribution.
        temperature, seed: as for `TopK`.
    """

    def __init__(self, p=0.9, temperature=1.0, seed=None):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise ValueError(f"`p` must be in (0, 1]. Received: p={p!r}")
        self.p = float(p)
        self.temperature = _checked_temperature(temperature)
        self.rng = np.random.default_rng(seed)

    def allowed(self, log_probs):
        order = np.argsort(-log_probs, axis=-1, kind="stable")  # (B, V) likeliest first
        sorted_probs = np.exp(np.take_along_axis(log_probs, order, axis=-1))
        before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # mass of the likelier ones
        keep_sorted = before < self.p  # the likeliest token is always kept
        allowed = np.zeros_like(keep_sorted)
        np.put_along_axis(allowed, order, keep_sorted, axis=-1)
        return allowed


def _checked_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not (0 < temperature < math.inf):
        raise ValueError("`temperature` must be a positive number. "
                         f"Received: temperature={temperature!r}")
    return float(temperature)


@dataclass
class Hypothesis:
    """One output of `beam_search`."""

    ids: list  # the generated ids, EOS included when `finished`
    log_prob: float  # the sum of its tokens' log-probabilities
    score: float  # what beams are ranked by: log_prob / len(ids) ** length_penalty
    finished: bool  # it ended with EOS (else it ran out of `max_new_tokens`)


def beam_search(step, reorder, bos_id, eos_id, max_new_tokens, beam_size=4,
                length_penalty=1.0):
    """Beam search for one source: the `beam_size` best outputs by length-normalised
    log-probability.

    Each step scores every token after every live beam, and the best `2 * beam_size`
    continuations are read in order: one that ends with EOS becomes a finished output,
    the others become the next live beams (at most `beam_size`). The search stops when
    no live beam can still beat the k-th best finished output (or after
    `max_new_tokens` tokens); outputs that ran out of tokens only fill places no
    finished output took.

    Args:
        step: `step(token_ids (R,), position) -> logits (R, V)`, one row per live beam
            (one row at position 0, BOS).
        reorder: `reorder(parents)`, called before every step after the first with
            (R',) int indices: new row i continues old row `parents[i]` (rows may be
            repeated or dropped); the caller reorders each row's KV cache likewise.
        bos_id, eos_id: the target's start and end ids.
        max_new_tokens: the most tokens an output may have.
        beam_size: k, the live beams kept; 1 is greedy decoding.
        length_penalty: the exponent of the length that a log-probability is divided
            by; 0 ranks by log-probability alone (which favours short outputs).

    Returns:
        list of `Hypothesis`, best first, at most `beam_size`.
    """
    return batched_beam_search(step, reorder, 1, bos_id, eos_id, max_new_tokens, beam_size,
                               length_penalty)[0]


def batched_beam_search(step, reorder, batch_size, bos_id, eos_id, max_new_tokens,
                        beam_size=4, length_penalty=1.0):
    """`beam_search` for `batch_size` sources at once, in step: each call of `step` runs
    the live beams of every source still searching, so a batched model (the Keras one)
    runs one call per position instead of one per position and source. Each source's
    search is exactly `beam_search`'s.

    Args:
        step: `step(token_ids (R,), position) -> logits (R, V)`: the rows are the live
            beams of the sources still searching, source by source, in source order
            (at position 0, one BOS row per source).
        reorder: `reorder(parents)` before every step after the first: new row i
            continues old row `parents[i]`; a source whose search is over has no rows.
        batch_size: how many sources.
        The others: as for `beam_search`.

    Returns:
        per source, the list of `Hypothesis`, best first, at most `beam_size`.
    """
    _check_max_new_tokens(max_new_tokens)
    if isinstance(beam_size, bool) or not isinstance(beam_size, (int, np.integer)) \
            or beam_size < 1:
        raise ValueError("`beam_size` must be a positive integer. "
                         f"Received: beam_size={beam_size!r}")
    if not isinstance(length_penalty, (int, float)) or not math.isfinite(length_penalty):
        raise ValueError("`length_penalty` must be a finite number. "
                         f"Received: length_penalty={length_penalty!r}")
    searches = [_Beams(eos_id, max_new_tokens, int(beam_size), length_penalty)
                for _ in range(batch_size)]
    searching = list(searches)
    tokens = np.full(batch_size, bos_id, np.int32)
    for position in range(max_new_tokens):
        log_probs = log_softmax(_finite(np.asarray(step(tokens, position), np.float32),
                                        position))  # (R, V)
        parents, start, still = [], 0, []
        for search in searching:
            rows = len(search.live_ids)
            kept = search.advance(log_probs[start:start + rows], position)
            if kept is not None:
                parents.extend(start + row for row in kept)
                still.append(search)
            start += rows
        searching = still
        if not searching:
            break
        reorder(np.array(parents, np.int64))
        tokens = np.array([ids[-1] for search in searching for ids in search.live_ids],
                          np.int32)
    return [search.best() for search in searches]


class _Beams:
    """The state of one source's beam search (see `beam_search`)."""

    def __init__(self, eos_id, max_new_tokens, beam_size, length_penalty):
        self.eos_id, self.max_new_tokens = eos_id, max_new_tokens
        self.beam_size, self.length_penalty = beam_size, length_penalty
        self.live_ids, self.live_log_probs = [[]], np.zeros(1)
        self.done = []

    def hypothesis(self, ids, log_prob, finished):
        return Hypothesis(ids, float(log_prob),
                          float(log_prob) / len(ids) ** self.length_penalty, finished)

    def advance(self, log_probs, position):
        """Takes the live beams' (R, V) log-probabilities at `position`; returns the
        rows the next live beams continue, or None when this search is over."""
        totals = (self.live_log_probs[:, None] + log_probs).ravel()  # (R * V,)
        vocab = log_probs.shape[-1]
        parents, next_ids, next_log_probs = [], [], []
        # Best first; equal totals in row-major order, so the result is reproducible.
        for index in np.argsort(-totals, kind="stable")[:2 * self.beam_size]:
            row, token = divmod(int(index), vocab)
            ids = self.live_ids[row] + [token]
            if token == self.eos_id:
                self.done.append(self.hypothesis(ids, totals[index], True))
            elif len(parents) < self.beam_size:
                parents.append(row)
                next_ids.append(ids)
                next_log_probs.append(totals[index])
        self.live_ids, self.live_log_probs = next_ids, np.array(next_log_probs)
        if position == self.max_new_tokens - 1 or not self.could_still_win(position + 1):
            return None
        return parents

    def could_still_win(self, length):
        """Whether a live beam may still beat the k-th best finished output: its
        log-probability can only fall, so its best score is at the length where the
        penalty helps it most."""
        live = self.live_log_probs
        if len(self.done) < self.beam_size or not len(live):
            return len(live) > 0
        best_length = self.max_new_tokens if self.length_penalty > 0 else length + 1
        bound = live.max() / best_length ** self.length_penalty
        kth = sorted(h.score for h in self.done)[-self.beam_size]
        return bound > kth

    def best(self):
        best = sorted(self.done, key=lambda h: -h.score)[:self.beam_size]
        # Outputs cut by max_new_tokens only fill places that no finished output took.
        unfinished = [self.hypothesis(ids, log_prob, False)
                      for ids, log_prob in zip(self.live_ids, self.live_log_probs)]
        return best + sorted(unfinished, key=lambda h: -h.score)[:self.beam_size - len(best)]
