"""The quantization recipes a bundle can be exported with, and where each was checked.

`RECIPES` is the one list of their names: export offers and converts them in this order
(export/convert.py says what each does), and the tests and benchmarks loop over it.
"""

RECIPES = ("float32", "float16", "dynamic_int8", "int8")

# Where each recipe's files were checked to load and decode, by the kit's CI on every
# change (tests/device, 200 inputs: held-out dates and unusual ones), against
# ai-edge-litert's ids. Copied into bundle.json for the app developer.
_ON_TFLITE_RUNTIME = {
    "float32": "loads; identical ids",
    "float16": ("loads; identical ids with the built-in kernels (its XNNPACK delegate "
                "miscomputes float16 weights, so the kit's runtime turns it off there)"),
    "dynamic_int8": "loads; identical ids",
    "int8": ("loads; the same ids on 80% of inputs: the two interpreters' int8 "
             "kernels round differently"),
}
CHECKED_ON = {recipe: {"ai-edge-litert 2.3.0": "loads; the reference ids",
                       "tflite-runtime 2.14.0": note}
              for recipe, note in _ON_TFLITE_RUNTIME.items()}
