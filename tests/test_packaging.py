"""`pip install .`: the wheel holds the kit alone, training and export inside it as
kit.training and kit.export, and every command runs from the installed copy."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel's files, unpacked where `pip install` would put them."""
    wheels = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(wheels), str(ROOT)], check=True,
                   capture_output=True, timeout=300)
    wheel, = wheels.glob("kit-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def run_installed(site, code, tmp_path):
    """Python with the unpacked wheel on its path and the checkout off it."""
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(site),
                                                       "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_the_wheel_puts_one_package_into_site_packages(installed):
    top = {path.name for path in installed.iterdir() if not path.name.endswith(".dist-info")}
    assert top == {"kit"}
    assert (installed / "kit" / "training" / "run_dir.py").is_file()
    assert (installed / "kit" / "export" / "cli.py").is_file()


@pytest.mark.slow
def test_every_installed_module_imports_and_none_at_the_top_level(installed, tmp_path):
    code = ("import importlib, pkgutil, sys, kit\n"
            "names = [m.name for m in pkgutil.walk_packages(kit.__path__, 'kit.')]\n"
            "for name in names: importlib.import_module(name)\n"
            "assert 'kit.training.train' in names and 'kit.export.demo' in names, names\n"
            "assert not {'training', 'export'} & set(sys.modules), 'a top-level import'\n"
            "print(len(names))\n")
    result = run_installed(installed, code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 40


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "export", "demo", "evaluate", "attention",
                                     "decode"])
def test_every_installed_command_answers(installed, tmp_path, command):
    code = f"import sys; from kit.__main__ import main; sys.exit(main([{command!r}, '--help']))"
    result = run_installed(installed, code, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"python -m kit {command}" in result.stdout
