"""The package's public API and rlt 0.1's flat module paths (`rlt/__init__.py`), in a fresh interpreter each: the
old paths are the moved modules themselves, and importing one leaves the module's own spec in place."""

import subprocess
import sys

import rlt


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_every_public_name_resolves():
    out = run("import rlt\nfor name in rlt.PUBLIC: print(name, getattr(rlt, name).__module__)")
    resolved = dict(line.split() for line in out.splitlines())
    assert resolved.keys() == rlt.PUBLIC.keys()
    assert all(module.startswith(rlt.PUBLIC[name]) for name, module in resolved.items())


def test_old_module_paths_are_the_moved_modules_and_keep_their_own_spec():
    out = run(
        "import importlib, importlib.util, rlt\n"
        "for old, new in rlt.MOVED.items():\n"
        "    module = importlib.import_module(old)\n"
        "    assert module is importlib.import_module(new), old\n"
        "    assert module.__spec__.name == new and module.__spec__.origin.endswith('.py'), (old, module.__spec__)\n"
        "    assert importlib.util.find_spec(new).name == new\n"
        "from rlt.coldstart import CorrectnessReward\n"
        "from rlt.formats import STRATOS\n"
        "print(CorrectnessReward.__module__, len(rlt.MOVED))"
    )
    assert out.split() == ["rlt.train.coldstart", str(len(rlt.MOVED))]
