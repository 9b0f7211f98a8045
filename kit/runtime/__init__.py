"""The device side: load and check a bundle, tokenize, decode with the KV cache.

Imports numpy, the LiteRT interpreter (`ai_edge_litert`, else `tflite_runtime`), the
kit's tokenizers (`sentencepiece` for subword bundles) and neither TensorFlow nor Keras,
so it runs on a phone-like Linux board or anywhere `pip install -r
requirements-runtime.txt` works.

    from kit.runtime import Bundle
    bundle = Bundle.load("bundles/x")
    bundle.translate("Sun 29 Nov 2026")      # -> "2026-11-29"
"""

from kit.runtime.bundle import Bundle
from kit.runtime.bundle_format import (
    BUNDLE_FORMAT_VERSION,
    BUNDLE_JSON,
    REPORT_JSON,
    TFLITE_FILE,
    BundleError,
    check_bundle_spec,
    read_bundle_json,
)
from kit.runtime.interpreter import RuntimeUnavailable, signature_specs

__all__ = ["BUNDLE_FORMAT_VERSION", "BUNDLE_JSON", "TFLITE_FILE", "REPORT_JSON", "Bundle",
           "BundleError", "RuntimeUnavailable", "check_bundle_spec", "read_bundle_json",
           "signature_specs"]
