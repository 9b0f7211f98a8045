"""A finished run directory, read once, with its model rebuilt in float32 for export."""

from dataclasses import dataclass, replace

from .errors import ExportError


@dataclass
class LoadedRun:
    """A finished run, with its model rebuilt in float32."""

    info: object  # training.run_dir.RunInfo
    config: object  # kit.models.TransformerConfig
    model: object  # kit.models.Seq2SeqTransformer, float32 policy
    tokenizers: object  # kit.tokenizers.TokenizerPair: the source's and the target's


def load_run(info):
    """Rebuilds a finished run's model in float32 with the trained weights.

    Args:
        info: the run's `training.run_dir.RunInfo` (`read_run(run_dir)`).

    A model trained under `mixed_float16` computes in float16 and would export float16
    (Flex) ops; the float32 rebuild exports builtins only, whatever the training policy.
    Raises ExportError (via RunDirError's message) for a missing or unfinished run.
    """
    from kit.layout import sibling
    from kit.models import Seq2SeqTransformer, TransformerConfig

    rd = sibling("training.run_dir")

    try:
        config = TransformerConfig.from_dict(info.config)
    except (TypeError, ValueError) as error:
        raise ExportError(f"{info.path / 'run.json'} has a bad model config: {error}") from None
    try:
        tokenizers = rd.load_tokenizers(info.path)
    except rd.RunDirError as error:
        raise ExportError(str(error)) from None
    for side, tokenizer, size in (("source", tokenizers.source, config.source_vocab_size),
                                  ("target", tokenizers.target, config.target_vocab_size)):
        if tokenizer.vocab_size > size:
            raise ExportError(f"{info.path}: the {side} tokenizer has {tokenizer.vocab_size} "
                              f"tokens, more than the model's {side} vocabulary ({size})")
    try:
        trained = rd.load_keras(info.path / rd.KERAS_MODEL_FILE)  # Ctrl-C held while it loads
    except rd.RunDirError as error:
        raise ExportError(str(error)) from None
    model = Seq2SeqTransformer(config, dtype="float32", name="seq2seq_transformer")
    model.build()
    try:
        model.set_weights(trained.get_weights())
    except ValueError as error:
        raise ExportError(f"{info.path / rd.KERAS_MODEL_FILE} does not match the config in "
                          f"run.json: {str(error).splitlines()[0]}") from None
    return LoadedRun(info=info, config=config, model=model, tokenizers=tokenizers)


def rebuild(loaded, **overrides):
    """A float32 model with `loaded`'s weights and its config changed by `overrides`
    (fields that change no weight shape, such as `attention_mask_value`)."""
    from kit.models import Seq2SeqTransformer

    try:
        config = replace(loaded.config, **overrides)
    except ValueError as error:
        raise ExportError(f"cannot rebuild the model: {error}") from None
    model = Seq2SeqTransformer(config, dtype="float32", name="seq2seq_transformer")
    model.build()
    model.set_weights(loaded.model.get_weights())
    return model


