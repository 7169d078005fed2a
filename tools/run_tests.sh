#!/usr/bin/env bash
# Set up (idempotent) and run the test suite: bash tools/run_tests.sh [pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/install.sh"
set +e
"$ROOT/tools/with_env.sh" python -m pytest "$ROOT/tests" "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit $rc
