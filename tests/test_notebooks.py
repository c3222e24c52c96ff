"""Execute every notebook under ``examples/notebooks`` against a fresh migrated database.

The kernel is the interpreter running the tests (a kernelspec written to a temp dir), so the
notebooks see exactly the installed package; they run offline and fail the test on any error.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "examples" / "notebooks"
KERNEL = "pgstore-test"
CELL_TIMEOUT = 120
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data dir whose kernel ``pgstore-test`` is ``sys.executable -m ipykernel``."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "pgstore tests",
                "language": "python",
            }
        )
    )
    return root


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs(
    path: Path, db_url: str, kernel_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("PGSTORE_DATABASE_URL", raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    nb = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is committed with outputs; rebuild it with examples/build_notebooks.py"
    )
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{ANSI.sub('', str(exc))}")


def test_every_notebook_is_generated(tmp_path: Path) -> None:
    """The committed notebooks match their generator (``examples/build_notebooks.py``)."""
    sys.path.insert(0, str(NOTEBOOKS.parent))
    try:
        import build_notebooks
    finally:
        sys.path.remove(str(NOTEBOOKS.parent))
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(build_notebooks.NOTEBOOKS)
    for fresh in build_notebooks.build(out=tmp_path):
        committed = nbformat.read(NOTEBOOKS / fresh.name, as_version=4)
        expected = nbformat.read(fresh, as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in expected.cells], (
            f"{fresh.name} is stale: run python examples/build_notebooks.py"
        )
