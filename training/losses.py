"""Loss, metric and learning-rate schedule for sequence-to-sequence training.

Padding (label id 0) is excluded through sample weights built by the input pipeline, so
the stock Keras reduction "mean_with_sample_weight" averages over real tokens only.
"""

import keras
from keras import ops

from kit.layers._register import register

from .backend import compiles_every_step
from .choices import DEFAULT_DATA_WARMUP_STEPS


@register
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy from float32 logits with label smoothing, for integer labels.

    Keras's sparse cross-entropy has no label smoothing and the dense one wants one-hot
    labels from the pipeline; this takes ids and smooths inside, in float32.

    Args:
        label_smoothing: in [0, 1): the mass spread uniformly over the vocabulary.
    """

    def __init__(self, label_smoothing=0.0, reduction="mean_with_sample_weight",
                 name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(reduction=reduction, name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError("`label_smoothing` must be in [0, 1). "
                             f"Received: label_smoothing={label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")  # (B, T, V)
        vocab = ops.shape(logits)[-1]
        log_probs = ops.log_softmax(logits, axis=-1)
        target = ops.one_hot(ops.cast(y_true, "int32"), vocab, dtype="float32")  # (B, T, V)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(
                vocab, "float32")
        return -ops.sum(target * log_probs, axis=-1)  # (B, T)

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing)
        return config


@register
class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """The schedule of "Attention Is All You Need" (5.3) and the TF transformer tutorial:
    lr = scale * D^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)."""

    def __init__(self, model_dim, warmup_steps=4000, scale=1.0):
        self.model_dim = int(model_dim)
        self.warmup_steps = int(warmup_steps)
        self.scale = float(scale)
        if self.warmup_steps <= 0:
            raise ValueError("`warmup_steps` must be positive. "
                             f"Received: warmup_steps={warmup_steps}")

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        decay = ops.minimum(ops.rsqrt(step), step * float(self.warmup_steps) ** -1.5)
        return self.scale * float(self.model_dim) ** -0.5 * decay

    def get_config(self):
        return {"model_dim": self.model_dim, "warmup_steps": self.warmup_steps,
                "scale": self.scale}


def tutorial_adam(learning_rate):
    """Adam with the betas and epsilon of the paper and the tutorial."""
    return keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.98, epsilon=1e-9)


def compile_for_training(model, options, config):
    """Compile `model` as `python -m kit train` does: Adam 0.9/0.98/1e-9 on the paper's
    warm-up schedule (or `options.learning_rate`), the label-smoothed loss weighted by
    the pipeline's sample weights, token accuracy. The benchmarks compile with it too."""
    learning_rate = (options.learning_rate if options.learning_rate is not None
                     else WarmupInverseSqrt(config.model_dim, options.warmup_steps or
                                            DEFAULT_DATA_WARMUP_STEPS))
    model.compile(
        optimizer=tutorial_adam(learning_rate),
        loss=SmoothedSparseCrossentropy(options.label_smoothing),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
        # On JAX the step is always compiled: uncompiled, Keras runs it op by op.
        jit_compile=options.jit_compile or compiles_every_step(),
    )
    return model


def learning_rate_record(options, config):
    """The schedule as run.json states it: per global batch, whatever the replicas."""
    per = "optimizer step: one per global batch, the same on every --strategy"
    if options.learning_rate is not None:
        return {"schedule": "constant", "value": options.learning_rate, "per": per}
    return {"schedule": "warmup_inverse_sqrt", "model_dim": config.model_dim,
            "warmup_steps": options.warmup_steps or DEFAULT_DATA_WARMUP_STEPS,
            "formula": "model_dim^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)",
            "per": per}
