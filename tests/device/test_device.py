"""The bundles decode the same on the device as where they were made.

Only numpy and the runtime are used here (see conftest.py): these run in the main
environment, in one with only requirements-runtime.txt (ai-edge-litert, no TensorFlow)
and in one with tflite-runtime 2.14.0 and numpy<2 (.ci/run makes all three).

Expected outputs (expected.json) are what ai-edge-litert decoded when the bundles were
made. float32, float16 and dynamic_int8 must give exactly those ids on every
interpreter; int8 kernels round differently between interpreters, so its agreement is
measured and held above a floor.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kit.runtime import Bundle
from kit.runtime.interpreter import interpreter_class
from tests.device.make_bundles import BUNDLES, RECIPES, RUN

REPO = Path(__file__).resolve().parents[2]
INTERPRETERS = ("ai_edge_litert", "tflite_runtime")
IDENTICAL = ("float32", "float16", "dynamic_int8")
# Sources (of 200: the run's 64 held-out samples and 136 unusual inputs) on which int8
# must give the ids ai-edge-litert gave. Measured on the tiny run (bit-identical bundles
# from one build to the next on one machine): 200/200 on ai-edge-litert 2.3 (the
# interpreter that made them), 160/200 on tflite-runtime 2.14 (55/64 held-out; checked_on.json); the
# floor leaves room for a tiny model trained on another CPU.
INT8_FLOOR = 0.70
HEAVY = ("tensorflow", "keras", "tf_keras", "tensorflow_datasets", "jax", "torch")


def _module():
    return interpreter_class().__module__.split(".")[0]


def _agreement(mine, theirs):
    assert len(mine) == len(theirs)
    return sum(a == b for a, b in zip(mine, theirs))


def _figures(mine, expected, recipe):
    """What `record` keeps of one recipe's decoding here."""
    theirs, held = expected["recipes"][recipe]["ids"], expected["held_out"]
    return {"agree": _agreement(mine, theirs), "of": len(theirs),
            "agree_held_out": _agreement(mine[:held], theirs[:held]), "held_out": held,
            "agree_with_keras": _agreement(mine, expected["keras"]["ids"])}


def _differences(sources, mine, theirs, limit=5):
    return [(source[:50], a, b) for source, a, b in zip(sources, mine, theirs)
            if a != b][:limit]


def test_the_expected_interpreter_is_used():
    """KIT_EXPECT_INTERPRETER names it; unset, ai_edge_litert wherever it is installed."""
    want = os.environ.get("KIT_EXPECT_INTERPRETER") or (
        "ai_edge_litert" if importlib.util.find_spec("ai_edge_litert") else "tflite_runtime")
    assert want in INTERPRETERS
    assert _module() == want
    if want == "tflite_runtime":  # really the fallback, in the environment it needs
        assert importlib.util.find_spec("ai_edge_litert") is None
        assert int(np.__version__.split(".")[0]) < 2


def test_expected_outputs_cover_every_recipe(expected):
    assert expected["made_with"]["interpreter"] == "ai_edge_litert"
    assert len(expected["sources"]) == 200
    assert sorted(expected["recipes"]) == sorted(RECIPES)
    assert "" in expected["sources"] and max(map(len, expected["sources"])) >= 400


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_loads_into_the_fastest_loop(recipe, device_dir, record):
    """ai-edge-litert runs the compiled loop (its CompiledModel); tflite-runtime, which
    has none, the tensor-index loop. The record keeps which ran and why a faster one
    was refused."""
    record[recipe]["loads"] = False
    bundle = Bundle.load(device_dir / BUNDLES / recipe)
    record[recipe].update(loads=True, loop=bundle.mode,
                          fallback_reason=bundle.fallback_reason)
    assert bundle.recipe == recipe
    expected = "compiled" if _module() == "ai_edge_litert" else "direct"
    assert bundle.mode == expected, bundle.fallback_reason


@pytest.mark.parametrize("recipe", IDENTICAL)
def test_decodes_identically(recipe, expected, decoded, record):
    mine, theirs = decoded(recipe), expected["recipes"][recipe]
    record[recipe].update(_figures(mine["ids"], expected, recipe))
    agree = record[recipe]["agree"]
    print(f"\n{recipe} on {_module()}: {agree}/{len(theirs['ids'])} identical")
    assert mine["ids"] == theirs["ids"], _differences(expected["sources"], mine["ids"],
                                                      theirs["ids"])
    assert mine["texts"] == theirs["texts"]


def test_int8_agreement_is_measured(expected, decoded, record):
    mine, theirs = decoded("int8"), expected["recipes"]["int8"]
    record["int8"].update(_figures(mine["ids"], expected, "int8"), floor=INT8_FLOOR)
    agree, total = record["int8"]["agree"], record["int8"]["of"]
    print(f"\nint8 on {_module()}: {agree}/{total} identical to ai-edge-litert's ids "
          f"(floor {INT8_FLOOR:.0%}); differing: "
          f"{_differences(expected['sources'], mine['ids'], theirs['ids'], limit=3)}")
    assert agree >= INT8_FLOOR * total
    if _module() == "ai_edge_litert":  # the interpreter that made the expected outputs
        assert mine["ids"] == theirs["ids"]


def _whole_pair_ids(bundle, sources):
    """Greedy ids through the bundle's (1, S) pair in its own loop (`bundle.steps`),
    whatever bucket `greedy_ids` would pick."""
    from kit.runtime.steps import greedy_ids

    return [[int(t) for t in greedy_ids(bundle.steps, bundle.source_ids(source), bundle.bos_id,
                                        bundle.eos_id, bundle.target_length - 1)]
            for source in sources]


@pytest.mark.parametrize("recipe", RECIPES)
def test_signature_runners_decode_as_the_fastest_loop_does(recipe, device_dir, expected,
                                                           record):
    """`Bundle.load(mode="runner")`, the interpreter's signature runners, on 40 sources,
    against the loop `Bundle.load` chose, both on the (1, S) signature pair."""
    sources = expected["sources"][:20] + expected["sources"][-20:]
    mine = _whole_pair_ids(Bundle.load(device_dir / BUNDLES / recipe, mode="runner"), sources)
    fastest = _whole_pair_ids(Bundle.load(device_dir / BUNDLES / recipe), sources)
    record[recipe]["runners_match_loop"] = mine == fastest
    assert mine == fastest


@pytest.mark.parametrize("recipe", RECIPES)
def test_batches_decode_as_one_source_at_a_time(recipe, device_dir, expected, decoded,
                                                record):
    """All 200 sources through `greedy_batch`: the batch-32 pair (compiled loop on
    ai-edge-litert, signature runners on tflite-runtime). The float recipes' rows give
    the ids of one source at a time exactly; int8's pairs are calibrated each on its own
    inputs, so its agreement is recorded and held above the floor."""
    bundle = Bundle.load(device_dir / BUNDLES / recipe)
    batched = [[int(t) for t in ids] for ids in
               bundle.greedy_batch([bundle.source_ids(s) for s in expected["sources"]])]
    one_by_one = decoded(recipe)["ids"]
    agree = _agreement(batched, one_by_one)
    record[recipe]["batch_agrees"] = agree
    if recipe in IDENTICAL:
        assert batched == one_by_one, _differences(expected["sources"], batched, one_by_one)
    else:
        assert agree >= INT8_FLOOR * len(one_by_one)


def test_float32_equals_keras(expected, decoded):
    mine = decoded("float32")["ids"]
    keras_ids = expected["keras"]["ids"]
    assert mine == keras_ids, _differences(expected["sources"], mine, keras_ids)


DECODE_ALL = """
import json, sys
from kit.runtime import Bundle
texts = json.loads(sys.argv[2])
outputs = {recipe: [Bundle.load(sys.argv[1] + "/" + recipe).translate(t) for t in texts]
           for recipe in json.loads(sys.argv[3])}
print(json.dumps({"outputs": outputs, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _run(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_decoding_imports_neither_tensorflow_nor_keras(device_dir, expected):
    """In a fresh interpreter (this process may have imported them for other tests)."""
    texts = expected["sources"][:3] + ["", "9" * 400]
    done = _run(["-c", DECODE_ALL, str(device_dir / BUNDLES), json.dumps(texts),
                 json.dumps(RECIPES)])
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for recipe in RECIPES:
        want = [expected["recipes"][recipe]["texts"][expected["sources"].index(t)]
                for t in texts]
        if recipe in IDENTICAL:
            assert found["outputs"][recipe] == want
    assert not set(HEAVY) & set(found["modules"]), found["modules"]


def test_the_decode_command(device_dir, expected):
    """`python -m kit decode`, the command a device runs, one output line per input."""
    texts = expected["sources"][:5]
    done = _run(["-m", "kit", "decode", str(device_dir / BUNDLES / "float32")],
                input="".join(f"{t}\n" for t in texts))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected["recipes"]["float32"]["texts"][:5]


def test_the_evaluate_command(device_dir, tmp_path):
    """`python -m kit evaluate BUNDLE`, with the options first as a user may type them,
    scores in the device's environment too (it needs sacrebleu and rapidfuzz there)."""
    data = device_dir / RUN / "samples" / "test.tsv"
    done = _run(["-m", "kit", "evaluate", "--data", f"tsv:{data}",
                 str(device_dir / BUNDLES / "float32")])
    assert done.returncode == 0, done.stderr
    assert "exact" in done.stdout, done.stdout


@pytest.mark.parametrize("command", [
    ["train", "--data", "default", "--out", "run"],
    ["export", "{run}", "--recipe", "float32", "--out", "bundle"],
    ["demo", "--quick"],
    ["evaluate", "{run}", "--data", "tsv:{run}/samples/test.tsv"],
    ["attention", "{run}", "1 May 2020", "--out", "a.png"]])
def test_commands_of_the_full_kit_say_what_to_install(command, device_dir, tmp_path):
    """Where TensorFlow is not installed, one line naming requirements.txt, nothing
    written."""
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed here")
    command = [arg.format(run=device_dir / RUN) for arg in command]
    done = subprocess.run([sys.executable, "-m", "kit", *command], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "pip install -r requirements.txt" in errors[0]
    assert not list(tmp_path.iterdir())
