"""Where `training` and `export` are: beside `kit` in a checkout, inside it once
installed.

The repository keeps its three folders side by side (kit/, training/, export/), and
a checkout imports them as `kit`, `training` and `export`. `pip install .` puts the
last two inside the kit, as `kit.training` and `kit.export` (pyproject.toml's
package-dir), so that no package with a name as common as `training` or `export`
lands in site-packages beside the user's own. Inside each folder the modules import
each other relatively; the few imports that cross from one folder to another (the
command dispatch of `python -m kit`, export reading a run directory, the demo
training one) go through `sibling`, which finds the folder either way. Standard
library only.
"""

import importlib
import importlib.util

FOLDERS = ("training", "export")


def sibling(name):
    """The module `name` ("training.run_dir", "export.cli"), imported from where it is:
    `kit.training.run_dir` once installed, `training.run_dir` in a checkout."""
    folder, _, rest = name.partition(".")
    if folder not in FOLDERS:
        raise ValueError(f"sibling() imports from {', '.join(FOLDERS)}, got {name!r}")
    # find_spec looks for the installed subpackage without importing anything of it.
    package = f"kit.{folder}" if importlib.util.find_spec(f"kit.{folder}") else folder
    return importlib.import_module(f"{package}.{rest}" if rest else package)
