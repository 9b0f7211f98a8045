"""`python -m kit attention RUN_DIR TEXT`: what attends to what, as a picture.

Decodes TEXT greedily with the run's Keras model, then draws one layer's attention
weights as heatmaps (one panel per head and their mean), with the tokenizer's pieces
as labels:

    cross    the encoder-decoder attention: each output token (row) over the source
    decoder  the decoder's masked self-attention: each output token over the tokens fed
             before it (the upper triangle is empty: no position sees a later one)
    encoder  the encoder's self-attention: each source token over the whole source
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.commands import CommandParser, bounds_error, integer, run_command

ATTENTION_KINDS = ("cross", "decoder", "encoder")


class AttentionError(ValueError):
    """A bad argument or run; one line for the user."""


@dataclass
class Picture:
    """One layer's weights of one kind, ready to draw."""

    weights: np.ndarray  # (H, rows, columns) float32
    rows: list  # labels down the side
    columns: list  # labels along the top
    title: str
    output: str  # the decoded text


def token_label(tokenizer, token_id):
    """A token as people read it: its text, or the special token's name."""
    names = {tokenizer.pad_id: "<pad>", tokenizer.unk_id: "<unk>",
             tokenizer.bos_id: "<s>", tokenizer.eos_id: "</s>"}
    if token_id in names:
        return names[token_id]
    return tokenizer.decode([token_id]) or "␣"


def check_request(text, kind, layer, encoder_layers, decoder_layers):
    """The 1-based layer to draw (the last by default), or AttentionError: checked
    against the run's numbers before its model is loaded."""
    if kind not in ATTENTION_KINDS:
        raise AttentionError(f"--kind must be one of {', '.join(ATTENTION_KINDS)}. "
                             f"Received: {kind!r}")
    if not text.strip():
        raise AttentionError("TEXT is empty: there is nothing to attend to")
    count = encoder_layers if kind == "encoder" else decoder_layers
    layer = count if layer is None else layer
    refused = bounds_error(layer, 1, count)
    if refused:
        raise AttentionError(f"--layer {refused} (the run's {kind} attention has {count} "
                             f"layer{'s' * (count != 1)})")
    return layer


def attention_picture(model, tokenizers, text, kind="cross", layer=None, run_name="run"):
    """Decodes `text` and returns the `Picture` of `kind` at `layer` (1-based; default
    the last). The source's labels come from `tokenizers.source`, the output's (and
    what the decoder read) from `tokenizers.target` (a `TokenizerPair`)."""
    config = model.config
    layer = check_request(text, kind, layer, config.num_encoder_layers,
                          config.num_decoder_layers)
    target = tokenizers.target
    source = tokenizers.source.encode(text)[:config.max_source_length]
    generated = model.greedy_decode(np.array([source], np.int32), target.bos_id,
                                    target.eos_id)[0].tolist()
    if target.eos_id in generated:
        generated = generated[:generated.index(target.eos_id) + 1]
    fed = [target.bos_id] + generated[:-1]  # what the decoder read at each position
    weights = model.attention_weights(np.array([source], np.int32), np.array([fed], np.int32))
    chosen = np.asarray(weights[kind])[0, layer - 1]  # (H, rows, columns)
    source_labels = [token_label(tokenizers.source, t) for t in source]
    output_labels = [token_label(target, t) for t in generated]
    fed_labels = [token_label(target, t) for t in fed]
    rows, columns = {"cross": (output_labels, source_labels),
                     "decoder": (output_labels, fed_labels),
                     "encoder": (source_labels, source_labels)}[kind]
    output = target.decode(generated)
    count = config.num_encoder_layers if kind == "encoder" else config.num_decoder_layers
    title = f"{run_name}: {kind} attention, layer {layer} of {count}; {text!r} -> {output!r}"
    return Picture(chosen.astype(np.float32), rows, columns, title, output)


def build_parser():
    parser = CommandParser(
        "attention",
        description="Decode TEXT with a run's model and draw which tokens attended to "
                    "which, one panel per head plus their mean.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    parser.add_argument("text", metavar="TEXT", help="the source to decode")
    parser.add_argument("--out", default="attention.png", metavar="FILE.png",
                        help="the picture to write (default: %(default)s)")
    parser.add_argument("--layer", action=integer(), default=None, metavar="N",
                        help="which layer, 1 to the number of layers (default: the last)")
    parser.add_argument("--kind", choices=ATTENTION_KINDS, default="cross",
                        help="cross (default): output over source; decoder: the masked "
                             "self-attention; encoder: the source over itself")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from . import run_dir as rd

    def body():
        if not args.out.lower().endswith(".png"):
            raise AttentionError(f"--out must name a .png file. Received: {args.out}")
        if Path(args.out).is_dir():
            raise AttentionError(f"--out {args.out} is a directory")
        info = rd.read_run(args.run_dir)
        check_request(args.text, args.kind, args.layer,
                      info.config.get("num_encoder_layers", 1),
                      info.config.get("num_decoder_layers", 1))
        tokenizers = rd.load_tokenizers(info.path)
        model = rd.load_keras(info.path / rd.KERAS_MODEL_FILE)
        picture = attention_picture(model, tokenizers, args.text, args.kind, args.layer,
                                    run_name=str(info.path))
        from kit.plots import attention_figure

        attention_figure(picture.weights, picture.rows, picture.columns, picture.title,
                         args.out, kind=args.kind)
        print(f"{args.text!r} -> {picture.output!r}")
        print(f"{args.kind} attention of layer {args.layer or 'last'} written to {args.out}")
        return 0

    return run_command(body, (AttentionError, rd.RunDirError))
