"""Proof that a bundle keeps the model's behaviour, measured at export time.

The reference is the float32 Keras model's own cached greedy decoding
(`Seq2SeqTransformer.greedy_decode`) on held-out sources (samples/test.tsv). Each
bundle is decoded by the runtime core (`kit.runtime.Bundle`, the code a device
runs) and compared with it:

    token_exact     % of sentences whose whole generated token sequence (up to and
                    including EOS) is identical to Keras's
    max_logit_diff  largest |bundle - Keras| logit over every step of the Keras
                    greedy path, teacher forced (both fed Keras's tokens)
    metric          the task metric of the bundle and of Keras on the same sources:
                    exact match (%) for "exact_match" runs, BLEU and chrF
                    (sacrebleu) for "bleu" runs
    ms_per_token    median over sentences of (encode + every step) / tokens
                    generated, on this CPU, through `Bundle.greedy_ids`
    gpu_compatible  `tf.lite.experimental.Analyzer`'s verdict on the GPU delegate
"""

import contextlib
import io
import statistics
import time
from dataclasses import dataclass

import numpy as np

from kit.metrics import task_metrics
from kit.tokenizers import source_ids


@dataclass
class Reference:
    """The Keras float32 model's behaviour on the verification sources."""

    sources: list  # texts
    targets: list  # reference texts
    source_ids: np.ndarray  # (N, S) int32
    token_ids: list  # per sentence: greedy ids up to and including EOS
    logits: list  # per sentence: (len(token_ids), V) float32 along that path
    metric: str  # run.json's "exact_match" or "bleu"
    scores: dict  # the task metric(s) of the Keras outputs


def keras_reference(model, tokenizers, pairs, metric, batch_size=100):
    """Decodes `pairs`' sources with the Keras model (batched, cached, float32), encoded
    by `tokenizers.source` and decoded by `tokenizers.target` (a `TokenizerPair`)."""
    S = model.config.max_source_length
    bos, eos = tokenizers.target.bos_id, tokenizers.target.eos_id
    sources_ids = np.array([source_ids(tokenizers.source, s, S) for s, _ in pairs],
                           np.int32).reshape(-1, S)
    token_ids, logits = [], []
    for start in range(0, len(sources_ids), batch_size):
        rows, steps = model.greedy_decode(sources_ids[start:start + batch_size], bos, eos,
                                          return_logits=True)  # (B, T-1), (B, T-1, V)
        paths = [_until_eos(row, eos) for row in rows]
        token_ids += paths
        logits += [steps[i, :len(path)] for i, path in enumerate(paths)]
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    hypotheses = [tokenizers.target.decode(ids) for ids in token_ids]
    return Reference(sources, targets, sources_ids, token_ids, logits, metric,
                     task_metrics(metric, hypotheses, targets))


def _until_eos(row, eos):
    row = [int(t) for t in row]
    return row[:row.index(eos) + 1] if eos in row else row


def gpu_compatibility(content):
    """(compatible, issues): `tf.lite.experimental.Analyzer`'s GPU delegate verdict.

    The analyzer prints its report; this captures it and reads the verdict line
    ("Your model looks compatible with GPU delegate") and the warning lines.
    """
    import tensorflow as tf

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        tf.lite.experimental.Analyzer.analyze(model_content=content, gpu_compatibility=True)
    text = captured.getvalue()
    issues = [line.strip() for line in text.splitlines()
              if "GPU COMPATIBILITY WARNING" in line or "is not supported by" in line]
    compatible = "looks compatible with GPU delegate" in text and not issues
    return compatible, issues[:10]


def verify_bundle(bundle, reference):
    """Decodes every reference source with `bundle`, one at a time (each through the
    smallest source-length bucket that holds it) and in batches; returns the measured
    figures."""
    bundle.greedy_ids(reference.source_ids[0])  # warm-up: first-call allocations
    same, hypotheses, per_token_ms, max_diff = 0, [], [], 0.0
    for ids, keras_ids, keras_logits in zip(reference.source_ids, reference.token_ids,
                                            reference.logits):
        start = time.perf_counter()
        tokens = bundle.greedy_ids(ids)
        elapsed = time.perf_counter() - start
        per_token_ms.append(1000.0 * elapsed / len(tokens))
        same += tokens == keras_ids
        hypotheses.append(bundle.target_tokenizer.decode(tokens))
        fed = [bundle.bos_id] + keras_ids[:-1]
        logits = bundle.step_logits(ids, fed)
        max_diff = max(max_diff, float(np.max(np.abs(logits - keras_logits))))
    n = len(reference.token_ids)
    # The same sources through the file's batch pairs (one at a time without any).
    batched = bundle.greedy_batch(reference.source_ids)
    batch_same = sum(tokens == keras_ids for tokens, keras_ids in zip(batched,
                                                                       reference.token_ids))
    return {
        "sentences": n,
        "token_exact": 100.0 * same / n,
        "batch_token_exact": 100.0 * batch_same / n,
        "batch_size": bundle.variants.max_batch,
        "max_logit_diff": max_diff,
        "scores": task_metrics(reference.metric, hypotheses, reference.targets),
        "keras_scores": reference.scores,
        "ms_per_token": statistics.median(per_token_ms),
        "examples": [{"source": s, "target": t, "bundle": h}
                     for s, t, h in list(zip(reference.sources, reference.targets,
                                             hypotheses))[:5]],
    }


def format_table(rows, metric):
    """The comparison table printed at the end of export, one row per recipe."""
    names = ["exact_match"] if metric == "exact_match" else ["bleu", "chrf"]
    header = ["recipe", "size KB", "x f32", "token-exact %", "max |dlogit|"]
    for name in names:
        header += [f"{name} bundle", f"{name} keras"]
    header += ["ms/token", "GPU"]
    lines = [header]
    for row in rows:
        cells = [row["recipe"], f"{row['file_bytes'] / 1024:.0f}", f"{row['size_ratio']:.3f}",
                 f"{row['token_exact']:.1f}", f"{row['max_logit_diff']:.2g}"]
        for name in names:
            cells += [f"{row['scores'][name]:.1f}", f"{row['keras_scores'][name]:.1f}"]
        cells += [f"{row['ms_per_token']:.3f}", "yes" if row["gpu_compatible"] else "no"]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) if i else cell.ljust(width)
                               for i, (cell, width) in enumerate(zip(line, widths)))
                     for line in lines)


def format_notes(rows):
    """The lines printed under the table: the attention mask bias a recipe was rebuilt
    with and why, and the ops that a quantized recipe left in float32."""
    lines = []
    for row in rows:
        quantization = row["quantization"]
        if "attention_mask_value" in quantization:
            scores = quantization["attention_scores"]
            lead = scores["max_masked_lead"]
            lines.append(
                f"{row['recipe']}: attention mask bias {quantization['attention_mask_value']:g} "
                f"(run: {scores['run_mask_value']:g}); in {scores['rows']} calibration "
                f"attention rows, masked scores led the best real one by at most "
                f"{0.0 if lead is None else lead:.1f}, real scores spread up to "
                f"{scores['max_real_spread']:.1f}")
        if "float_ops" in quantization:
            ops = ", ".join(f"{name} x{sum(counts.values())}"
                            for name, counts in quantization["float_ops"].items())
            lines.append(f"{row['recipe']}: ops left in float32: {ops or 'none'}")
    return lines
