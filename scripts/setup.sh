#!/usr/bin/env bash
# One-shot, idempotent development set-up for rt1_ros (what `make setup` runs).
#
#   1. Debian packages, only those missing (dpkg-query first; `apt-get update` only when installing):
#      cmake, g++, make (message build), libegl1 libgl1 libegl-mesa0 (MuJoCo headless EGL rendering),
#      python3-venv/python3-dev only when the interpreter lacks venv or its headers.
#   2. .venv (repo root) with the pinned requirements.txt, then `pip install -e . --no-deps`.
#   3. The interfaces (msg/, srv/) built with plain cmake + make against the ROS wheels into build/ros,
#      installed to build/ros/install; then interfaces/<package> (standard packages no wheel provides, tf2_msgs).
#
# Every step is keyed on a hash of its inputs (stamp files in .venv/ and build/ros/), so a rerun with nothing
# changed only checks and returns. Environment knobs:
#   PYTHON=python3.11    interpreter used to create .venv (must be CPython 3.11: the ros-* wheels are cp311)
#   RT1_SKIP_APT=1       never call apt-get (report missing packages instead)
#   RT1_FORCE=1          redo every step
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
cd "$ROOT"

VENV="$ROOT/.venv"
BUILD="$ROOT/build/ros"
PREFIX="$BUILD/install"
PY_SITE_REL="lib/python3.11/site-packages"
STAMPS="$VENV/.rt1_ros-stamps"
PYTHON="${PYTHON:-python3}"
FORCE="${RT1_FORCE:-0}"
JOBS="${RT1_JOBS:-$(nproc 2>/dev/null || echo 2)}"

t_start=$SECONDS
log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

hash_of() {  # hash_of <file-or-dir>... : content hash of the given inputs (missing ones count as empty)
  local path
  for path in "$@"; do
    if [[ -d "$path" ]]; then
      find "$path" -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
    elif [[ -f "$path" ]]; then
      sha256sum "$path"
    else
      echo "missing $path"
    fi
  done | sed "s#  $ROOT/#  #" | sha256sum | cut -c1-16
}

stamp_ok() { [[ "$FORCE" != 1 && -f "$1" && "$(cat "$1")" == "$2" ]]; }
write_stamp() { mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" >"$1"; }

# One set-up at a time per checkout (several shells may run `make test` at once); the others wait, then find
# everything up to date.
if command -v flock >/dev/null 2>&1; then
  mkdir -p "$ROOT/build"
  exec 9>"$ROOT/build/.setup.lock"
  if ! flock -n 9; then
    log "another set-up is running in this checkout; waiting for it"
    flock -w 3600 9 || die "timed out waiting for $ROOT/build/.setup.lock"
  fi
fi

# --------------------------------------------------------------------------------------------------- 1. apt
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else die "need root (or sudo) to run: $*"; fi
}

apt_missing() {  # prints the packages among "$@" that are not installed
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
  done
}

apt_ensure() {
  command -v dpkg-query >/dev/null 2>&1 || { log "no dpkg here; make sure these are installed: $*"; return 0; }
  local missing
  missing="$(apt_missing "$@" | tr '\n' ' ')"
  [[ -z "${missing// /}" ]] && return 0
  if [[ "${RT1_SKIP_APT:-0}" == 1 ]]; then
    die "missing Debian packages (RT1_SKIP_APT=1): $missing"
  fi
  log "installing Debian packages: $missing"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

APT_PACKAGES=(
  ca-certificates          # pip over https
  cmake make g++           # building msg/ and srv/ (rosidl C/C++ typesupport + the Python C extension)
  libegl1 libgl1 libegl-mesa0  # MuJoCo offscreen rendering with MUJOCO_GL=egl ...
  libgl1-mesa-dri              # ... through Mesa's llvmpipe software rasterizer (no GPU)
  libosmesa6                   # fallback: MUJOCO_GL=osmesa where EGL cannot start
)
apt_ensure "${APT_PACKAGES[@]}"

# ------------------------------------------------------------------------------------------------ 2. python
VPY="$VENV/bin/python"
venv_info() {  # "<major.minor> <full version> <include dir>" of the venv's interpreter; -S: no site, no re-exec
  "$VPY" -S -c 'import sys, sysconfig; print("%d.%d" % sys.version_info[:2], sys.version.split()[0],
                sysconfig.get_paths()["include"])' 2>/dev/null
}

if ! venv_py="$(venv_info)"; then
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "no $PYTHON on PATH: installing Debian's python3 (3.11 on Debian 12)"
    apt_ensure python3 python3-venv python3-dev
    PYTHON=python3
  fi
  py_ver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$py_ver" == 3.11 ]] || die "$PYTHON is Python $py_ver; the ROS 2 wheels need CPython 3.11 (set PYTHON=...)"
  # Debian's interpreter needs python3-venv (ensurepip) for this; pyenv/python.org builds have it.
  if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_ensure python3-venv
  fi
  [[ -e "$VENV" ]] && die "$VENV exists but its interpreter does not run; remove it and rerun"
  log "creating $VENV with $("$PYTHON" -c 'import sys; print(sys.executable)')"
  "$PYTHON" -m venv "$VENV"
  venv_py="$(venv_info)" || die "the new $VENV does not run"
fi
read -r venv_ver venv_full_ver py_include <<<"$venv_py"
[[ "$venv_ver" == 3.11 ]] || die "$VENV runs Python $venv_ver; the ROS 2 wheels need 3.11 (make distclean, rerun)"

# The rosidl Python extension compiles against Python.h of the venv's base interpreter.
if [[ ! -f "$py_include/Python.h" ]]; then
  case "$py_include" in
    /usr/include/*) apt_ensure python3-dev ;;
    *) die "no Python.h in $py_include; install the headers of that interpreter" ;;
  esac
fi

# ------------------------------------------------------------------------------------- 3. pinned requirements
req_key="$(hash_of requirements.txt)-$venv_full_ver"
if ! stamp_ok "$STAMPS/requirements" "$req_key"; then
  log "installing requirements.txt into .venv (first run: a few minutes)"
  # editable_mode=compat (below) needs pip >= 23.1; Python 3.11.2/3.11.4 venvs start with older ones.
  if ! "$VPY" -c 'import sys, pip; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (23, 1))'; then
    "$VPY" -m pip install --disable-pip-version-check -q --upgrade "pip>=23.1"
  fi
  "$VPY" -m pip install --disable-pip-version-check -q -r requirements.txt
  write_stamp "$STAMPS/requirements" "$req_key"
  rm -f "$STAMPS/editable"  # a reinstall may have replaced the editable rt1_ros
fi

# ------------------------------------------------------------------------------------- 4. editable rt1_ros
# editable_mode=compat puts the repository root on sys.path (a .pth entry, like `setup.py develop`). The default
# (an import-hook finder appended to sys.meta_path) would lose to the namespace portion rt1_ros/ in
# build/ros/install (rt1_ros.msg/.srv) that comes first on PYTHONPATH, so `import rt1_ros` would not run
# rt1_ros/__init__.py. With a path entry the regular package always wins and extend_path adds the portion.
editable_key="$(hash_of setup.py setup.cfg)-$ROOT"
if ! stamp_ok "$STAMPS/editable" "$editable_key"; then
  log "pip install -e . --no-deps"
  "$VPY" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation \
    --config-settings editable_mode=compat -e .
  write_stamp "$STAMPS/editable" "$editable_key"
fi

# --------------------------------------------------------------------------------------- 5. ROS interfaces
BUILD_FLAGS_VERSION=3  # bump when the cmake invocation below changes
build_key="$(hash_of CMakeLists.txt package.xml msg srv scripts/ros scripts/fix_rosidl_exports.py)"
build_key+="-$req_key-$ROOT-v$BUILD_FLAGS_VERSION"
generated="$PREFIX/$PY_SITE_REL/rt1_ros/msg/__init__.py"
if ! stamp_ok "$BUILD/.rt1_ros-build" "$build_key" || [[ ! -f "$generated" ]]; then
  log "building msg/ and srv/ with cmake into build/ros"
  # The wheels' rosidl export files name the wheel builder's include paths; point them at ours (idempotent).
  "$VPY" "$ROOT/scripts/fix_rosidl_exports.py" -q "$VENV"

  rm -rf "$BUILD"
  mkdir -p "$PREFIX/include"
  # .venv lives inside the source tree, and CMake refuses to export an include directory that is "prefixed in the
  # source directory" (the numpy headers of rt1_ros__rosidl_generator_py). Paths under the install prefix are
  # allowed, so hand FindPython3 the numpy include directory through a link there.
  ln -sfn "$("$VPY" -c 'import numpy; print(numpy.get_include())')" "$PREFIX/include/_numpy_include"

  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export PATH="$VENV/bin:$PATH"
  cmake_log="$BUILD/cmake-build.log"
  if ! {
    cmake -S "$ROOT" -B "$BUILD" \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$PREFIX" \
      -DCMAKE_PREFIX_PATH="$VENV" \
      -DPython3_EXECUTABLE="$VPY" \
      -DPython3_NumPy_INCLUDE_DIR="$PREFIX/include/_numpy_include" \
      -DRT1_ROS_INSTALL_PYTHON=OFF \
      -DBUILD_TESTING=OFF \
      '-DCMAKE_INSTALL_RPATH=$ORIGIN;$ORIGIN/../../..' \
      -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON &&
      cmake --build "$BUILD" -j "$JOBS" &&
      cmake --install "$BUILD"
  } >"$cmake_log.tmp" 2>&1; then
    mv "$cmake_log.tmp" "$cmake_log"
    tail -n 40 "$cmake_log" >&2
    die "interface build failed; full log: $cmake_log"
  fi
  mv "$cmake_log.tmp" "$cmake_log"

  site="$PREFIX/$PY_SITE_REL"
  # Our source rt1_ros/__init__.py uses pkgutil.extend_path, so the generated rt1_ros/ becomes a namespace portion
  # of the same package once its own (empty) __init__.py is gone. Its egg-info would duplicate the editable
  # install's metadata, so it goes too.
  rm -rf "$site/rt1_ros/__init__.py" "$site/rt1_ros/__pycache__" "$site"/rt1_ros-*.egg-info
  # get_package_share_directory('rt1_ros') -> build/ros/install/share/rt1_ros: show the live launch/ and config/.
  for dir in launch config; do
    ln -sfn "$ROOT/$dir" "$PREFIX/share/rt1_ros/$dir"
  done

  "$ROOT/scripts/rt1-env" python -c 'from rt1_ros.msg import ArmCommand, RT1Action, EpisodeStatus
from rt1_ros.srv import ResetEpisode' || die "the built interfaces do not import (see $cmake_log)"
  write_stamp "$BUILD/.rt1_ros-build" "$build_key"
fi

# ------------------------------------------------------------------ 6. interfaces the PyPI wheels lack
# interfaces/<package>: standard message packages (tf2_msgs) built into the same prefix when no wheel provides them.
# Keyed on build/ros's own stamp too: a rebuild of the rt1_ros interfaces starts from an empty build/ros.
for package_dir in "$ROOT"/interfaces/*/; do
  package="$(basename "$package_dir")"
  extra_key="$(hash_of "$package_dir")-$(cat "$BUILD/.rt1_ros-build")"
  stamp="$BUILD/.extra-$package"
  stamp_ok "$stamp" "$extra_key" && continue
  if "$ROOT/scripts/rt1-env" python -c "import $package.msg" >/dev/null 2>&1 && [[ ! -d "$BUILD/extra/$package" ]]; then
    write_stamp "$stamp" "$extra_key"  # a wheel provides it
    continue
  fi
  log "building $package (no wheel provides it) into build/ros"
  extra_log="$BUILD/extra-$package.log"
  if ! {
    AMENT_PREFIX_PATH="$PREFIX:$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" PATH="$VENV/bin:$PATH" \
      cmake -S "$package_dir" -B "$BUILD/extra/$package" \
        -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$PREFIX" \
        -DCMAKE_PREFIX_PATH="$PREFIX;$VENV" \
        -DPython3_EXECUTABLE="$VPY" \
        -DPython3_NumPy_INCLUDE_DIR="$PREFIX/include/_numpy_include" \
        -DBUILD_TESTING=OFF \
        '-DCMAKE_INSTALL_RPATH=$ORIGIN;$ORIGIN/../../..' \
        -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON &&
      cmake --build "$BUILD/extra/$package" -j "$JOBS" &&
      cmake --install "$BUILD/extra/$package"
  } >"$extra_log" 2>&1; then
    tail -n 40 "$extra_log" >&2
    die "building interfaces/$package failed; full log: $extra_log"
  fi
  "$ROOT/scripts/rt1-env" python -c "import $package.msg" || die "the built $package does not import (see $extra_log)"
  write_stamp "$stamp" "$extra_key"
done

log "ready in $((SECONDS - t_start)) s: run commands with scripts/rt1-env, or 'source scripts/env.sh'"
