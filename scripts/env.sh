# shellcheck shell=bash
# Environment for rt1_ros in this checkout: `source scripts/env.sh` (bash or zsh), from any directory.
# scripts/rt1-env runs one command with the same environment. Run `make setup` first.
#
# Paths (always set): .venv/bin first on PATH; build/ros/install (the built msg/ and srv/) on LD_LIBRARY_PATH,
# PYTHONPATH and AMENT_PREFIX_PATH, with .venv (the ROS wheels' prefix) on the latter too.
# Defaults (kept when already set, so a caller can override each): ROS_DOMAIN_ID=42,
# ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (DDS stays on loopback; use SUBNET on a real robot network),
# RMW_IMPLEMENTATION=rmw_fastrtps_cpp, MUJOCO_GL=egl, HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1,
# FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds.xml (shared-memory segments that fit camera frames; docs/reliability.md, Transport;
# not set when FASTRTPS_DEFAULT_PROFILES_FILE, the Fast DDS 2.x name, already names a profile).
#
# The ros-wheels-bootstrapper .pth re-executes Python once with .venv/lib and the wheels' *.libs directories added
# to LD_LIBRARY_PATH; it keeps the entries already there, so build/ros/install/lib survives the re-exec (its
# libraries also carry an RPATH to themselves).

if [ -n "${BASH_SOURCE:-}" ]; then
  _rt1_env_file="${BASH_SOURCE[0]}"
elif [ -n "${ZSH_VERSION:-}" ]; then
  # shellcheck disable=SC2296
  _rt1_env_file="${(%):-%x}"
else
  _rt1_env_file="$0"
fi
RT1_ROS_ROOT="$(cd "$(dirname "$_rt1_env_file")/.." && pwd -P)"
export RT1_ROS_ROOT
unset _rt1_env_file

# _rt1_prepend VAR DIR: put DIR first in the colon-separated VAR, dropping an earlier copy of it.
_rt1_prepend() {
  local _var="$1" _dir="$2" _old _new="" _part _rest
  eval "_old=\"\${$_var:-}\""
  _rest="$_old"
  while [ -n "$_rest" ]; do
    _part="${_rest%%:*}"
    if [ "$_part" = "$_rest" ]; then _rest=""; else _rest="${_rest#*:}"; fi
    if [ -n "$_part" ] && [ "$_part" != "$_dir" ]; then _new="${_new:+$_new:}$_part"; fi
  done
  export "$_var=$_dir${_new:+:$_new}"
}

_rt1_venv="$RT1_ROS_ROOT/.venv"
_rt1_prefix="$RT1_ROS_ROOT/build/ros/install"

_rt1_prepend PATH "$_rt1_venv/bin"
export VIRTUAL_ENV="$_rt1_venv"
_rt1_prepend LD_LIBRARY_PATH "$_rt1_venv/lib"
_rt1_prepend LD_LIBRARY_PATH "$_rt1_prefix/lib"
_rt1_prepend PYTHONPATH "$_rt1_prefix/lib/python3.11/site-packages"
_rt1_prepend AMENT_PREFIX_PATH "$_rt1_venv"
_rt1_prepend AMENT_PREFIX_PATH "$_rt1_prefix"
_rt1_prepend CMAKE_PREFIX_PATH "$_rt1_venv"

export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
if [ -z "${FASTRTPS_DEFAULT_PROFILES_FILE:-}" ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$RT1_ROS_ROOT/config/fastdds.xml}"
fi

unset _rt1_venv _rt1_prefix
unset -f _rt1_prepend
