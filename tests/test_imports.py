"""Every module imports on its own (no import cycles hidden by a lucky import order)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "langgraph_pgstore"

#: For each module of the package: forget every module of ours, then import that one first.
SCRIPT = """
import importlib, sys
failures = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] == "langgraph_pgstore"]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:  # a cycle shows as "partially initialized module"
        failures.append(f"{name}: {exc}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_each_module_imports_first() -> None:
    modules = _modules()
    assert "langgraph_pgstore.errors" in modules and len(modules) > 20
    # Optional extras (api needs fastapi) are installed in the dev environment.
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *modules], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
