"""The Keras backend that trains, and what training does differently on each.

Training runs on the backend Keras is configured with (KERAS_BACKEND, or
~/.keras/keras.json), TensorFlow by default. Whatever the backend, the data come through
the same tf.data pipeline (training/pipeline.py; TensorFlow is installed for it), which
Keras's `fit` reads as numpy batches on JAX, and the `.keras` file a run writes exports
through the TensorFlow path as any other.

What differs on JAX:
- `--strategy` mirrored and multi_worker are tf.distribute strategies, TensorFlow's
  only: they are refused in one line (`check_backend`). auto and one_device train on
  one device.
- The train step is always compiled (XLA through `jax.jit`): without it Keras runs
  every op eagerly, tens of times slower. A compiled step is traced once per distinct
  batch shape, so batches are padded to the run's S and T, as `--jit-compile` does on
  TensorFlow.
- The GPU is JAX's: `--precision auto` picks mixed_float16 where JAX sees a GPU.
"""

TENSORFLOW = "tensorflow"
JAX = "jax"
SUPPORTED = (TENSORFLOW, JAX)
TF_ONLY_STRATEGIES = ("mirrored", "multi_worker")


class BackendError(ValueError):
    """A training option this backend cannot honour (one line for the user)."""


def keras_backend():
    """The name of the backend Keras runs on ("tensorflow", "jax", ...)."""
    import keras

    return keras.backend.backend()


def check_backend(strategy, task):
    """BackendError where the backend cannot train with `--strategy strategy` (`task`:
    the multi-worker task of TF_CONFIG, or None), or is not one the kit trains on."""
    backend = keras_backend()
    if backend not in SUPPORTED:
        raise BackendError(f"KERAS_BACKEND={backend}: the kit trains on "
                           f"{' or '.join(SUPPORTED)}")
    if backend == TENSORFLOW:
        return backend
    if strategy in TF_ONLY_STRATEGIES or task is not None:
        what = f"--strategy {strategy}" if strategy in TF_ONLY_STRATEGIES else \
            "TF_CONFIG's several workers (--strategy auto)"
        raise BackendError(f"{what} uses tf.distribute, which trains on the TensorFlow "
                           f"backend only: with KERAS_BACKEND={backend} train on one "
                           "device (--strategy one_device), or unset KERAS_BACKEND")
    return backend


def compiles_every_step():
    """Whether the train step is always compiled here (JAX), so that batches should
    have static shapes whatever --jit-compile says."""
    return keras_backend() == JAX


def gpu_names():
    """The GPUs the backend trains on, as names."""
    if keras_backend() == JAX:
        import jax

        return [str(device) for device in jax.devices() if device.platform == "gpu"]
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]
