#!/usr/bin/env bash
# Run a command inside kdzoo's environment: the active virtualenv / conda env if any,
# otherwise the .venv that tools/install.sh created at the repository root.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${VIRTUAL_ENV:-}" && -z "${CONDA_PREFIX:-}" && -x "$ROOT/.venv/bin/python" ]]; then
  export VIRTUAL_ENV="$ROOT/.venv"
  export PATH="$VIRTUAL_ENV/bin:$PATH"
fi
cd "$ROOT"
exec "$@"
