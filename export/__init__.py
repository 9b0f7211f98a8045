"""Export: a run directory -> a verified LiteRT bundle, and the on-device runtime.

`export.convert`, `export.verify` and `export.cli` import TensorFlow (lazily, inside
their functions). `export.runtime` imports neither TensorFlow nor Keras.
"""
