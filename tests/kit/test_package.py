import subprocess
import sys


def test_import_kit_does_not_import_keras_or_tensorflow():
    code = ("import sys, kit; "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_kit_layers_and_models_import_no_tensorflow_directly():
    # kit/ is written with keras.ops only; the backend may import TF, our code may not.
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "kit"
    offenders = [str(p) for p in root.rglob("*.py")
                 if "import tensorflow" in p.read_text() or "from tensorflow" in p.read_text()]
    assert offenders == []
