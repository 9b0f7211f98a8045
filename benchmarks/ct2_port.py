"""A trained kit model as a CTranslate2 model: the CPU inference engine that the kit's
decoding speed is compared against (benchmark only; needs `requirements-bench.txt`).

    from benchmarks import ct2_port
    path = ct2_port.port(model, "runs/ct2")          # a built Seq2SeqTransformer
    translator = ct2_port.load(path)
    ids = ct2_port.ct2_greedy(translator, source_rows, BOS_ID, EOS_ID, 63)
    ct2_port.check_equal(model, translator, sources, BOS_ID, EOS_ID, 63)

What the port maps (CTranslate2 4.8's `TransformerSpec`):

- pre-LN (`norm_first=True`, with its final encoder and decoder norms) or post-LN
  (`pre_norm=False`, no final norms): both;
- token embeddings scaled by sqrt(D) (`scale_embeddings`), plus the kit's position
  vectors given as explicit tables (S rows for the encoder, T for the decoder), learned
  or sinusoidal: the kit's sines and cosines interleave, CTranslate2's built-in ones do
  not, so the kit's values are written out;
- W^Q, W^K, W^V (and their biases) fused into one (3D, D) matrix for self-attention
  and W^K, W^V into one (2D, D) for cross-attention; CTranslate2 keeps Keras kernels
  transposed, (out, in);
- the feed-forward ReLU, the layer-norm epsilon, the output projection's bias.

What it cannot map raises ValueError: an `attention_mask_value` above -1e3 (the kit
then lets masked keys through with a small weight, CTranslate2 hides them exactly), and
a feed-forward block built with another activation than ReLU (the model never builds
one).

Tokens: CTranslate2 reads token strings. Each side's vocabulary is the kit's ids as
synthetic tokens, "t<id>", except the kit's special ids: pad 0 "<blank>", unk 1 "<unk>",
bos 2 "<s>" (CTranslate2's decoder start) and eos 3 "</s>" (its end token). Sources are
given WITHOUT their padding; the helpers here take and return integer ids.

TensorFlow and Keras are imported inside the functions that read a model only.
"""

import os

import numpy as np

from kit.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID

SIDES = ("source", "target")
SPECIAL_TOKENS = {PAD_ID: "<blank>", UNK_ID: "<unk>", BOS_ID: "<s>", EOS_ID: "</s>"}
_SPECIAL_IDS = {token: i for i, token in SPECIAL_TOKENS.items()}
# The most (least negative) mask value whose masked keys get a weight of exactly 0 in
# float32, as CTranslate2 gives them: exp(-1000 + any real score gap) underflows.
MAX_MASK_VALUE = -1e3
# What a port writes; an existing folder with anything else in it is left alone.
_MODEL_FILES = {"model.bin", "config.json", "shared_vocabulary.json",
                "source_vocabulary.json", "target_vocabulary.json"}


# -- tokens -------------------------------------------------------------------------

def _check_side(side):
    if side not in SIDES:
        raise ValueError(f"`side` must be one of {', '.join(SIDES)}. Received: side={side!r}")


def ids_to_tokens(ids, side):
    """The CTranslate2 tokens of the kit ids `ids` on `side` ("source" or "target").

    Both sides name an id alike ("<blank>", "<unk>", "<s>", "</s>", then "t4", "t5",
    ...); each side's vocabulary lists its own `vocab_size` ids.
    """
    _check_side(side)
    tokens = []
    for i in ids:
        i = int(i)
        if i < 0:
            raise ValueError(f"token ids must be >= 0. Received: {i}")
        tokens.append(SPECIAL_TOKENS.get(i, f"t{i}"))
    return tokens


def tokens_to_ids(tokens, side):
    """The kit ids of CTranslate2 tokens on `side`: the inverse of `ids_to_tokens`."""
    _check_side(side)
    ids = []
    for token in tokens:
        if token in _SPECIAL_IDS:
            ids.append(_SPECIAL_IDS[token])
            continue
        number = token[1:]
        if not (token.startswith("t") and number.isdigit()
                and ids_to_tokens([int(number)], side)[0] == token):  # canonical only
            raise ValueError(f"{token!r} is not a token of a ported kit model")
        ids.append(int(number))
    return ids


def vocabulary(size, side):
    """Every token of a `side` vocabulary of `size` ids, in id order."""
    return ids_to_tokens(range(size), side)


def _source_tokens(row):
    """A kit source row (right-padded with 0) as CTranslate2 tokens, padding dropped."""
    ids = [int(i) for i in np.asarray(row).reshape(-1)]
    while ids and ids[-1] == PAD_ID:
        ids.pop()
    if not ids:
        raise ValueError("a source row is empty (all padding): CTranslate2 returns nothing "
                         "for it, where the kit attends evenly over the padding")
    if PAD_ID in ids:
        raise ValueError(f"a source row has padding ({PAD_ID}) before its last token: the "
                         "kit masks it, CTranslate2 would read it as a token")
    return ids_to_tokens(ids, "source")


# -- the port -----------------------------------------------------------------------

def _numpy(variable):
    from keras import ops

    return np.ascontiguousarray(ops.convert_to_numpy(variable), dtype=np.float32)


def _check_activation(model):
    """The kit's feed-forward blocks apply ReLU, as CTranslate2's default does; a block
    built with another activation is refused rather than guessed at."""
    import keras

    for block in model.encoder_blocks + model.decoder_blocks:
        inner = keras.activations.serialize(block.feed_forward.inner.activation)
        outer = keras.activations.serialize(block.feed_forward.outer.activation)
        if (inner, outer) != ("relu", "linear"):
            raise ValueError(f"{block.name}'s feed-forward activation ({inner}, then "
                             f"{outer}) cannot be ported: only relu, then linear, is")


def _check_portable(model):
    c = model.config
    if not model.built:
        raise ValueError("`model` is not built: there are no weights to port")
    if c.attention_mask_value > MAX_MASK_VALUE:
        raise ValueError(
            f"attention_mask_value={c.attention_mask_value:g} cannot be ported: the kit "
            "then gives masked keys a small weight, CTranslate2 hides them exactly "
            f"(the two agree for values <= {MAX_MASK_VALUE:g})")


def _set_linear(spec, dense):
    """A Keras Dense (kernel (in, out)) into a CTranslate2 linear (weight (out, in))."""
    spec.weight = _numpy(dense.kernel).T.copy()
    if dense.use_bias:
        spec.bias = _numpy(dense.bias)


def _set_fused(spec, qkv, which):
    """Several of a QKVProjection's projections, stacked as CTranslate2 fuses them."""
    spec.weight = np.concatenate([_numpy(getattr(qkv, f"{w}_kernel")).T for w in which])
    if qkv.use_bias:
        spec.bias = np.concatenate([_numpy(getattr(qkv, f"{w}_bias")) for w in which])


def _set_norm(spec, norm):
    if not (norm.scale and norm.center):
        raise ValueError(f"{norm.name} lacks a scale or an offset: CTranslate2's layer "
                         "norm has both")
    spec.gamma, spec.beta = _numpy(norm.gamma), _numpy(norm.beta)


def _set_embedding(spec, embedding, position_spec):
    """Token table and position table (max_length, D) of a TokenAndPositionEmbedding."""
    from kit.layers.token_and_position_embedding import sinusoidal_positions

    token_spec = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    token_spec.weight = _numpy(embedding.token_embedding.embeddings)
    spec.scale_embeddings = True  # the kit multiplies token vectors by sqrt(D)
    if embedding.position_encoding == "learned":
        table = _numpy(embedding.position_embedding.embeddings)
    else:
        positions = np.arange(embedding.max_length, dtype=np.int32)
        # The kit's own function, so that the table holds its float32 values exactly.
        table = _numpy(sinusoidal_positions(positions, embedding.embedding_dim))
    position_spec.encodings = table


def _set_attention(spec, attention, norm, cross):
    if cross:
        _set_fused(spec.linear[0], attention.qkv, ("query",))
        _set_fused(spec.linear[1], attention.qkv, ("key", "value"))
    else:
        _set_fused(spec.linear[0], attention.qkv, ("query", "key", "value"))
    _set_linear(spec.linear[-1], attention.output_dense)
    _set_norm(spec.layer_norm, norm)


def _set_feed_forward(spec, block):
    _set_linear(spec.linear_0, block.feed_forward.inner)
    _set_linear(spec.linear_1, block.feed_forward.outer)
    _set_norm(spec.layer_norm, block.feed_forward_norm)


def build_spec(model):
    """The `ctranslate2.specs.TransformerSpec` of a built `Seq2SeqTransformer`, its
    vocabularies registered; not yet validated nor saved (`port` does both)."""
    from ctranslate2.specs import common_spec, transformer_spec

    _check_portable(model)
    _check_activation(model)
    c = model.config
    activation = common_spec.Activation.RELU
    encoder = transformer_spec.TransformerEncoderSpec(
        c.num_encoder_layers, c.num_heads, pre_norm=c.norm_first, activation=activation)
    decoder = transformer_spec.TransformerDecoderSpec(
        c.num_decoder_layers, c.num_heads, pre_norm=c.norm_first, activation=activation)
    spec = transformer_spec.TransformerSpec(encoder, decoder)
    spec.config.layer_norm_epsilon = float(c.layer_norm_epsilon)

    _set_embedding(encoder, model.source_embedding, encoder.position_encodings)
    for layer_spec, block in zip(encoder.layer, model.encoder_blocks, strict=True):
        _set_attention(layer_spec.self_attention, block.self_attention,
                       block.self_attention_norm, cross=False)
        _set_feed_forward(layer_spec.ffn, block)

    _set_embedding(decoder, model.target_embedding, decoder.position_encodings)
    for layer_spec, block in zip(decoder.layer, model.decoder_blocks, strict=True):
        _set_attention(layer_spec.self_attention, block.self_attention,
                       block.self_attention_norm, cross=False)
        _set_attention(layer_spec.attention, block.cross_attention,
                       block.cross_attention_norm, cross=True)
        _set_feed_forward(layer_spec.ffn, block)

    if c.norm_first:  # pre-LN's last norm on each side; post-LN has none
        _set_norm(encoder.layer_norm, model.encoder_norm)
        _set_norm(decoder.layer_norm, model.decoder_norm)
    _set_linear(decoder.projection, model.output_projection)

    spec.register_source_vocabulary(vocabulary(c.source_vocab_size, "source"))
    spec.register_target_vocabulary(vocabulary(c.target_vocab_size, "target"))
    return spec


def port(model, out_dir, quantization=None):
    """Writes the CTranslate2 model of `model` (a built float32 `Seq2SeqTransformer`)
    into `out_dir` and returns its path.

    Args:
        model: the kit model; its weights are read as float32.
        out_dir: the model folder. It is replaced if it holds an earlier port; a folder
            with other files in it raises ValueError.
        quantization: None (float32) or a CTranslate2 weight type ("int8",
            "int8_float32", "int16", "float16", ...).

    Raises:
        ValueError: the model has a feature CTranslate2 cannot express (named).
    """
    import ctranslate2

    spec = build_spec(model)
    out_dir = os.fspath(out_dir)
    if os.path.isdir(out_dir):
        strangers = sorted(set(os.listdir(out_dir)) - _MODEL_FILES)
        if strangers:
            raise ValueError(f"{out_dir} holds files a port did not write "
                             f"({', '.join(strangers[:3])}): not replacing it")

    class _KitConverter(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    # The public converter path: validate, optimize (alias equal weights, quantize),
    # then write model.bin, config.json and the vocabularies.
    return _KitConverter().convert(out_dir, quantization=quantization, force=True)


def load(path, intra_threads=1, compute_type="default"):
    """A CPU `ctranslate2.Translator` over a ported model: one batch at a time
    (`inter_threads=1`) on `intra_threads` threads."""
    import ctranslate2

    return ctranslate2.Translator(os.fspath(path), device="cpu", inter_threads=1,
                                  intra_threads=intra_threads, compute_type=compute_type)


# -- decoding -----------------------------------------------------------------------

def _check_bos(bos_id):
    if SPECIAL_TOKENS.get(int(bos_id)) != "<s>":
        raise ValueError(f"bos_id={bos_id}: a ported model's decoder starts with id "
                         f"{BOS_ID} (\"<s>\")")


def _log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max()
    return logits - (top + np.log(np.exp(logits - top).sum()))


def ct2_greedy(translator, source_id_rows, bos_id, eos_id, max_new_tokens,
               return_scores=False):
    """Greedy decoding (beam 1) of each source by CTranslate2.

    Args:
        translator: from `load`.
        source_id_rows: the kit's source ids, one row per source; trailing padding (0)
            is dropped.
        bos_id, eos_id: the target's start and end ids.
        max_new_tokens: the most tokens to generate (EOS included), at most T - 1.
        return_scores: also return each generated token's log-probability, from the
            logits of the step that chose it.

    Returns:
        per row, the list of generated target ids, ending with EOS if one was made
        (as `kit.decoding.until_eos` reads the kit's rows); with `return_scores`,
        (ids, log_probs) where log_probs holds one float per id.
    """
    _check_bos(bos_id)
    sources = [_source_tokens(row) for row in source_id_rows]
    results = translator.translate_batch(
        sources, beam_size=1, max_decoding_length=int(max_new_tokens),
        end_token=ids_to_tokens([eos_id], "target")[0], return_end_token=True,
        min_decoding_length=0, max_input_length=0,
        return_logits_vocab=bool(return_scores))
    ids = [tokens_to_ids(result.hypotheses[0], "target") for result in results]
    if not return_scores:
        return ids
    scores = []
    for row, result in zip(ids, results):
        steps = result.logits[0]
        scores.append([float(_log_softmax(np.asarray(logits))[token])
                       for token, logits in zip(row, steps, strict=True)])
    return ids, scores


def ct2_forced(translator, source_id_rows, n_tokens):
    """Decodes exactly `n_tokens` tokens for each source, EOS or not (for timing):
    CTranslate2 holds EOS back until the last step (`min_decoding_length`), then stops
    there (`max_decoding_length`). Returns the ids, one list per row; raises
    RuntimeError if a row came back with another count."""
    sources = [_source_tokens(row) for row in source_id_rows]
    results = translator.translate_batch(
        sources, beam_size=1, min_decoding_length=int(n_tokens),
        max_decoding_length=int(n_tokens), return_end_token=True, max_input_length=0)
    ids = [tokens_to_ids(result.hypotheses[0], "target") for result in results]
    counts = sorted({len(row) for row in ids})
    if counts != [n_tokens]:
        raise RuntimeError(f"CTranslate2 decoded {counts} tokens a row, not {n_tokens}")
    return ids


def ct2_log_probs(translator, source_id_rows, target_rows):
    """Teacher-forced log-probabilities (float64 lists) of each target row (ids, EOS
    included or not) given its source, by `Translator.score_batch`: one per id."""
    sources = [_source_tokens(row) for row in source_id_rows]
    targets, keep = [], []
    for row in target_rows:
        row = [int(i) for i in row]
        # score_batch scores the row and then an EOS of its own: an ending EOS is left
        # to it, a row without one loses that last score.
        ends = bool(row) and row[-1] == EOS_ID
        targets.append(ids_to_tokens(row[:-1] if ends else row, "target"))
        keep.append(len(row))
    results = translator.score_batch(sources, targets, max_input_length=0)
    return [[float(p) for p in result.log_probs[:n]] for result, n in zip(results, keep)]


def keras_log_probs(model, source_id_rows, target_rows, bos_id, batch_size=64):
    """The same teacher-forced log-probabilities from the Keras model:
    `log_softmax(model((source, [BOS] + target[:-1])))` at each target id."""
    from keras import ops

    sources = np.asarray(source_id_rows, dtype=np.int32)
    out = []
    for start in range(0, len(sources), batch_size):
        rows = [[int(i) for i in row] for row in target_rows[start:start + batch_size]]
        width = max(1, max(len(row) for row in rows))
        inputs = np.zeros((len(rows), width), np.int32)  # causal: the tail is unseen
        for r, row in enumerate(rows):
            inputs[r, :len(row)] = [bos_id] + row[:-1]
        logits = model((sources[start:start + batch_size], inputs), training=False)
        log_probs = ops.convert_to_numpy(ops.log_softmax(logits, axis=-1))
        out += [[float(log_probs[r, t, token]) for t, token in enumerate(row)]
                for r, row in enumerate(rows)]
    return out


def check_equal(model, translator, sources, bos_id, eos_id, max_new_tokens):
    """CTranslate2 against the Keras model on `sources` ((N, S') ids, right-padded).

    Greedy ids: `model.greedy_decode` (read up to its EOS) against `ct2_greedy`, row
    by row. Log-probabilities: the Keras model's own greedy output, teacher-forced,
    under both (`keras_log_probs`, `ct2_log_probs`).

    Returns:
        {"matched": rows with the same ids, "total": N, "max_abs_logprob_diff": the
        largest difference of one token's log-probability}.
    """
    from kit.decoding import until_eos

    sources = np.asarray(sources, dtype=np.int32)
    reference = [until_eos(row, eos_id) for row in
                 model.greedy_decode(sources, bos_id, eos_id, max_new_tokens)]
    ported = ct2_greedy(translator, sources, bos_id, eos_id, max_new_tokens)
    matched = sum(a == b for a, b in zip(reference, ported, strict=True))
    keras_scores = keras_log_probs(model, sources, reference, bos_id)
    ct2_scores = ct2_log_probs(translator, sources, reference)
    diff = max((abs(a - b) for ks, cs in zip(keras_scores, ct2_scores)
                for a, b in zip(ks, cs, strict=True)), default=0.0)
    return {"matched": int(matched), "total": len(sources), "max_abs_logprob_diff": diff}
