"""Export: a run directory -> a verified LiteRT bundle, and the on-device runtime.

`export.convert`, `export.verify` and `export.cli` import TensorFlow (lazily, inside
their functions). `kit.runtime` imports neither TensorFlow nor Keras.
"""
