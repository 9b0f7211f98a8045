"""Export: a run directory -> a verified LiteRT bundle (`export.cli`), one file per
quantization recipe, and the demo that runs the whole flow (`export.demo`).

`export.convert`, `export.verify` and `export.cli` import TensorFlow (lazily, inside
their functions). The on-device runtime that reads the bundles is `kit.runtime`, which
imports neither TensorFlow nor Keras.
"""
