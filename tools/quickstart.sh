#!/usr/bin/env bash
# Set up (idempotent) and run the main job on Fashion-MNIST: teacher, vanilla student and
# KD student on the same schedule, then their test accuracies.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/install.sh"
exec "$ROOT/tools/with_env.sh" python tools/quickstart.py "$@"
