#!/usr/bin/env bash
# Idempotent set-up of kdzoo and its OpenMMLab stack.
#
# Installs into the active virtualenv / conda env; with none active it creates (or reuses)
# .venv at the repository root. mmcv 2.1.0 is built from source with its compiled ops
# (CUDA ops too where CUDA is present) and the built wheel is cached, so a second run is a
# quick no-op. Ends by printing the versions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TORCH_VERSION=2.11.0
TORCHVISION_VERSION=0.26.0
MMCV_VERSION=2.1.0
WHEEL_CACHE="${KDZOO_WHEEL_CACHE:-$HOME/.cache/kdzoo/wheels}"

log() { printf '\033[1;34m[kdzoo install]\033[0m %s\n' "$*"; }

if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PY="$VIRTUAL_ENV/bin/python"
elif [[ -n "${CONDA_PREFIX:-}" ]]; then
  PY="$CONDA_PREFIX/bin/python"
else
  if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    log "creating virtualenv at $ROOT/.venv"
    python3 -m venv "$ROOT/.venv"
  fi
  PY="$ROOT/.venv/bin/python"
fi
PIP=("$PY" -m pip --disable-pip-version-check)
log "python: $PY"

# Debian ships the real Fashion-MNIST; it is the built-in default data set.
FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [[ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]] && command -v apt-get >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]]; then
    log "installing Debian's dataset-fashion-mnist"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
      || log "could not install dataset-fashion-mnist; put the files under data/fashion_mnist instead"
  else
    log "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist'"
  fi
fi

# A PostgreSQL server for the tests of the search's database storage (clusters use one).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [[ "$(id -u)" == 0 ]]; then
  log "installing Debian's postgresql (tests of the search storage)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
    || log "could not install postgresql; its storage test will be skipped"
fi

stack_ok() {
  "$PY" - "$TORCH_VERSION" "$MMCV_VERSION" <<'PY' >/dev/null 2>&1
import sys
import torch, torchvision, mmengine, mmcv, mmdet, mmseg, timm, optuna, kdzoo, pytest  # noqa
import psycopg2  # noqa: PostgreSQL storage of searches
from mmcv.ops import nms  # noqa: compiled ops present
assert torch.__version__.split('+')[0] == sys.argv[1], torch.__version__
assert mmcv.__version__ == sys.argv[2], mmcv.__version__
PY
}

if stack_ok && [[ "${1:-}" != "--force" ]]; then
  log "environment already complete; nothing to do"
else
  "${PIP[@]}" install -q --upgrade pip
  "${PIP[@]}" install -q -r requirements/build.txt
  "${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  "${PIP[@]}" install -q -r requirements/runtime.txt -r requirements/tests.txt "mmengine==0.10.7"

  if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1; then
    # The wheel depends on the torch it was compiled against: key the cache by it.
    TORCH_TAG="torch$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
    CACHE_DIR="$WHEEL_CACHE/$TORCH_TAG"
    mkdir -p "$CACHE_DIR"
    if ! ls "$CACHE_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
      log "building mmcv $MMCV_VERSION with ops (about 11 minutes on 2 cores)"
      if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        export FORCE_CUDA=1
      fi
      MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${PIP[@]}" wheel -q --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$CACHE_DIR"
    fi
    "${PIP[@]}" install -q --no-deps "$CACHE_DIR"/mmcv-"$MMCV_VERSION"-*.whl
    # mmcv's own runtime requirements (its wheel was installed without them).
    "${PIP[@]}" install -q addict packaging Pillow pyyaml yapf opencv-python-headless
  fi
  "${PIP[@]}" install -q "mmdet==3.3.0" "mmsegmentation==1.2.2"
  "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
  stack_ok || { log "installation incomplete: an import failed"; "$PY" -c "import kdzoo, mmdet, mmseg, mmcv.ops"; exit 1; }
fi

"$PY" - <<'PY'
import torch, torchvision, mmengine, mmcv, mmdet, mmseg, timm, optuna, kdzoo
from mmcv.ops import nms
rows = [('torch', torch.__version__), ('torchvision', torchvision.__version__),
        ('mmengine', mmengine.__version__), ('mmcv (ops)', mmcv.__version__),
        ('mmdet', mmdet.__version__), ('mmseg', mmseg.__version__), ('timm', timm.__version__),
        ('optuna', optuna.__version__), ('kdzoo', kdzoo.__version__),
        ('cuda available', str(torch.cuda.is_available()))]
for name, version in rows:
    print(f'  {name:<15}{version}')
PY
