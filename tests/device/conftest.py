"""Device tests: only numpy and a LiteRT interpreter (ai-edge-litert, or tflite-runtime
with numpy<2) are needed, so that they run in environments without TensorFlow or Keras.

Environment variables (set by .ci/run):
    KIT_DEVICE_BUNDLES: a directory made by `python -m tests.device.make_bundles`
        (bundles/ and expected.json). Unset, the bundles are exported from the shared
        tiny run (tests/conftest.py), which needs the main environment.
    KIT_EXPECT_INTERPRETER: ai_edge_litert or tflite_runtime, the package the runtime
        must be using.
    KIT_DEVICE_RECORD: a JSON file to write what loaded and how much agreed, per recipe.
"""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.device.make_bundles import BUNDLES, EXPECTED_JSON, RECIPES


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Overrides tests/conftest.py's fixture of this name, which imports Keras: these
    tests must run where Keras is not installed."""
    yield


@pytest.fixture(scope="session")
def device_dir(request, tmp_path_factory):
    """The directory with bundles/<recipe>/ and expected.json."""
    given = os.environ.get("KIT_DEVICE_BUNDLES")
    if given:
        path = Path(given)
        if not (path / EXPECTED_JSON).is_file():
            pytest.fail(f"KIT_DEVICE_BUNDLES={given} holds no {EXPECTED_JSON}: make it with "
                        "python -m tests.device.make_bundles")
        return path
    if importlib.util.find_spec("keras") is None:
        pytest.fail("set KIT_DEVICE_BUNDLES to a directory made by "
                    "python -m tests.device.make_bundles (this environment cannot export)")
    from export.load import load_run
    from tests.device.make_bundles import RUN, write_expected
    from training.run_dir import read_run

    run = request.getfixturevalue("tiny_run")
    shared, _ = request.getfixturevalue("tiny_bundles")
    path = tmp_path_factory.mktemp("device")
    shutil.copytree(shared, path / BUNDLES)  # a copy: other tests may not touch these
    shutil.copytree(run, path / RUN)
    write_expected(path, path / RUN, path / BUNDLES, load_run(read_run(path / RUN)).model)
    return path


@pytest.fixture(scope="session")
def expected(device_dir):
    return json.loads((device_dir / EXPECTED_JSON).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def record():
    """{recipe: figures} that the tests fill in; written to KIT_DEVICE_RECORD at the end."""
    from tests.device.runtime_info import interpreter_info

    figures = {"recipes": {recipe: {} for recipe in RECIPES}}
    yield figures["recipes"]
    path = os.environ.get("KIT_DEVICE_RECORD")
    if path:
        figures = {**interpreter_info(), **figures}
        Path(path).write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n",
                              encoding="utf-8")


@pytest.fixture(scope="session")
def decoded(device_dir, expected):
    """recipe -> {"ids", "texts"} decoded here, each recipe once."""
    cache = {}

    def decode(recipe):
        if recipe not in cache:
            from kit.runtime import Bundle

            bundle = Bundle.load(device_dir / BUNDLES / recipe)
            sources = expected["sources"]
            cache[recipe] = {
                "ids": [[int(t) for t in bundle.greedy_ids(bundle.source_ids(s))]
                        for s in sources],
                "texts": [bundle.translate(s) for s in sources]}
        return cache[recipe]
    return decode
