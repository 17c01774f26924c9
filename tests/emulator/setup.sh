#!/usr/bin/env bash
# Install the local-bigquery BigQuery emulator into its own Python 3.13 venv, with the
# gcp-storage-emulator Cloud Storage emulator (its `gs://` source for load jobs) beside it.
#
# Idempotent and non-interactive; needs only PyPI. On success prints the path of the
# `local-bigquery` executable (last line of stdout; `gcp-storage-emulator` is in the same
# bin directory) and exits 0. Exits 3 with a one-line message when no Python 3.13
# interpreter is found (local-bigquery needs >=3.13,<3.14).
#
# Environment:
#   BQHOLD_EMULATOR_VENV    venv location (default ~/.cache/bqhold/local-bigquery-0.3.2)
#   BQHOLD_EMULATOR_PYTHON  interpreter to use instead of searching for one
#
# DuckDB cannot download its extensions here, so the icu/ducklake/spatial/httpfs extensions
# are installed from their PyPI wheels and copied to ~/.duckdb/extensions/<version>/<platform>/,
# the directory DuckDB searches by default (it follows $HOME). httpfs reads gs:// URIs from
# the storage emulator that STORAGE_EMULATOR_HOST names.
set -euo pipefail

LBQ_VERSION=0.3.2
GCS_EMULATOR_VERSION=2026.7.19
DUCKDB_VERSION=1.5.5  # local-bigquery 0.4.0 needs DuckDB 2.0 extensions that PyPI lacks.
PACKAGES=(
  "local-bigquery==${LBQ_VERSION}"
  "duckdb==${DUCKDB_VERSION}"
  "duckdb-extension-icu==${DUCKDB_VERSION}"
  "duckdb-extension-ducklake==${DUCKDB_VERSION}"
  "duckdb-extension-spatial==${DUCKDB_VERSION}"
  "duckdb-extension-httpfs==${DUCKDB_VERSION}"
  "gcp-storage-emulator==${GCS_EMULATOR_VERSION}"
)
VENV="${BQHOLD_EMULATOR_VENV:-$HOME/.cache/bqhold/local-bigquery-${LBQ_VERSION}}"
EXE="$VENV/bin/local-bigquery"
GCS_EXE="$VENV/bin/gcp-storage-emulator"
MARKER="$VENV/.bqhold-setup-complete"
STAMP="${PACKAGES[*]}"

log() { echo "setup.sh: $*" >&2; }

is_py313() {
  "$1" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1
}

find_python() {
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}" c
  for c in "${BQHOLD_EMULATOR_PYTHON:-}" "$(command -v python3.13 || true)" \
           "$pyenv_root"/versions/3.13*/bin/python3 /usr/bin/python3.13 \
           /usr/local/bin/python3.13 "$(command -v python3 || true)"; do
    if [[ -n "$c" && -x "$c" ]] && is_py313 "$c"; then echo "$c"; return 0; fi
  done
  return 1
}

# The marker (written last) holds the pins and the DuckDB extension directory used.
complete() {
  local stamp ext_dir name
  [[ -x "$EXE" && -x "$GCS_EXE" && -f "$MARKER" ]] || return 1
  { read -r stamp && read -r ext_dir; } <"$MARKER" || return 1
  [[ "$stamp" == "$STAMP" ]] || return 1
  for name in icu ducklake spatial httpfs; do [[ -f "$ext_dir/$name.duckdb_extension" ]] || return 1; done
}

if complete; then echo "$EXE"; exit 0; fi

PYTHON="$(find_python)" || {
  echo "setup.sh: no Python 3.13 found (local-bigquery ${LBQ_VERSION} needs >=3.13,<3.14);" \
       "set BQHOLD_EMULATOR_PYTHON to one" >&2
  exit 3
}

mkdir -p "$(dirname "$VENV")"
if command -v flock >/dev/null; then  # serialise concurrent runs (e.g. pytest-xdist workers)
  exec 9>"$VENV.lock"; flock 9
  if complete; then echo "$EXE"; exit 0; fi
fi

rm -f "$MARKER"
if [[ ! -x "$VENV/bin/python" ]] || ! is_py313 "$VENV/bin/python"; then
  log "creating venv $VENV with $PYTHON"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi

log "installing ${PACKAGES[*]}"
PIP_LOG="$VENV/pip-install.log"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
     "${PACKAGES[@]}" >"$PIP_LOG" 2>&1; then
  grep -v "^WARNING: Location" "$PIP_LOG" | tail -n 20 >&2
  log "pip install failed (full log: $PIP_LOG)"
  exit 1
fi

log "copying DuckDB extensions and checking they load"
EXT_DIR="$("$VENV/bin/python" - <<'PY'
import importlib.util, os, pathlib, shutil
import duckdb

version = duckdb.sql("PRAGMA version").fetchone()[0]  # e.g. "v1.5.5"
platform = duckdb.sql("PRAGMA platform").fetchone()[0]  # e.g. "linux_amd64"
dest = pathlib.Path.home() / ".duckdb" / "extensions" / version / platform
dest.mkdir(parents=True, exist_ok=True)
for name in ("icu", "ducklake", "spatial", "httpfs"):
    package = pathlib.Path(importlib.util.find_spec(f"duckdb_extension_{name}").origin).parent
    src = package / "extensions" / version / f"{name}.duckdb_extension"
    target = dest / src.name
    if not target.exists() or target.stat().st_size != src.stat().st_size:
        shutil.copyfile(src, f"{target}.tmp")
        os.replace(f"{target}.tmp", target)  # never expose a half-written extension
con = duckdb.connect(config={"TimeZone": "UTC"})  # needs icu
con.sql("LOAD ducklake; LOAD spatial; LOAD httpfs")
print(dest)
PY
)"

printf '%s\n%s\n' "$STAMP" "$EXT_DIR" >"$MARKER"
echo "$EXE"
