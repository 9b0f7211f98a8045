"""Which interpreter the runtime uses, and the versions that matter, without TensorFlow."""

import platform
from importlib.metadata import PackageNotFoundError, version


def interpreter_info():
    from kit.runtime.interpreter import interpreter_class

    module = interpreter_class().__module__.split(".")[0]
    package = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}[module]
    info = {"interpreter": module, "python": platform.python_version()}
    for name in (package, "numpy"):
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = None
    return info
