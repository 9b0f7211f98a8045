"""One serialization decorator for the whole package: classes save as "kit>ClassName"."""

import keras

register = keras.saving.register_keras_serializable(package="kit")
