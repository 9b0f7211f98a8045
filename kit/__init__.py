"""kit: on-device encoder-decoder transformers with Keras 3.

`import kit` is deliberately light: it imports neither Keras nor TensorFlow, so that
the on-device runtime (`python -m kit decode`, `kit.tokenizers`) works where only numpy
and the LiteRT interpreter are installed. Keras is imported when `kit.layers` or
`kit.models` is first used.
"""

import importlib

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("decoding", "files", "layers", "models", "runtime", "tokenizers")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"kit.{name}")
    raise AttributeError(f"module 'kit' has no attribute {name!r}")
