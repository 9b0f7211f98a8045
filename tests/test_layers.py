"""The layers the imports keep: kit below training below export, no circle among the
modules of training, and export reading runs through training/run_dir.py alone. Read
from the source, imports inside functions included; nothing is imported."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The modules of export that call into training beyond the run directory, and what.
EXPORT_CALLS_INTO_TRAINING = {
    # The demo is every command in a row: train's entry point, the attention picture.
    "export.demo": {"training.train", "training.options", "training.attention"},
}


def modules(package):
    """{dotted name: path} of the package's modules."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


KNOWN = {**modules("kit"), **modules("training"), **modules("export")}


def imports(path):
    """The kit's own modules that the file at `path` imports, anywhere in it: absolute
    and relative imports, and the modules named to `kit.layout.sibling`."""
    name = next(key for key, value in KNOWN.items() if value == path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x import y: relative to the file's own package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in KNOWN else base
                     for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "sibling"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names = [node.args[0].value]
        else:
            continue
        found.update(name for name in names if name in KNOWN)
    return found


def test_the_modules_of_training_import_each_other_without_a_circle():
    graph = {name: {other for other in imports(path) if other.startswith("training.")}
             for name, path in modules("training").items()}
    done, path = set(), []

    def visit(name):
        assert name not in path, "import circle: " + " -> ".join(
            path[path.index(name):] + [name])
        if name in done:
            return
        path.append(name)
        for other in sorted(graph.get(name, ())):
            visit(other)
        path.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_relative_imports_and_sibling_calls_are_read():
    assert "training.choices" in imports(ROOT / "training" / "train.py")
    assert "training.run_dir" in imports(ROOT / "export" / "load.py")


def test_export_reads_runs_through_the_run_directory_alone():
    for name, path in modules("export").items():
        used = {other for other in imports(path) if other.split(".")[0] == "training"}
        assert used <= {"training.run_dir", *EXPORT_CALLS_INTO_TRAINING.get(name, ())}, name


def test_the_library_imports_neither_training_nor_export():
    for name, path in modules("kit").items():
        if name == "kit.__main__":  # `python -m kit`: it runs every command
            continue
        assert not {other for other in imports(path)
                    if other.split(".")[0] in ("training", "export")}, name
        # A sibling() call with a computed name would slip past `imports`.
        assert name == "kit.layout" or "sibling(" not in path.read_text(encoding="utf-8"), name
