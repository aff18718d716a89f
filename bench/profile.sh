#!/usr/bin/env bash
# What each release-profile setting buys for a shipping Lambda: builds shift-weight for arm64 with cargo-lambda
# under each variant (the workspace profile, then one setting changed at a time) and prints a markdown table of
# zip size, unzipped bootstrap size and build time. Each variant is a full release rebuild: expect ~5-10 min each
# on 2 cores. Usage: bench/profile.sh [variant ...]   (run from the repo root; `make lambda-zips` installs tools)
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory lambda-tools >/dev/null
export PATH="$PWD/.tools/venv/bin:$PATH"

declare -A VARIANT=(
  [workspace]=""
  [opt-level-3]="CARGO_PROFILE_RELEASE_OPT_LEVEL=3"
  [opt-level-z]="CARGO_PROFILE_RELEASE_OPT_LEVEL=z"
  [lto-thin]="CARGO_PROFILE_RELEASE_LTO=thin"
  [codegen-units-16]="CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16"
  [no-strip]="CARGO_PROFILE_RELEASE_STRIP=none"
  [panic-abort]="CARGO_PROFILE_RELEASE_PANIC=abort"
)
order=("${@:-workspace opt-level-3 panic-abort no-strip lto-thin codegen-units-16 opt-level-z}")
read -r -a order <<< "${order[*]}"

echo "| variant | zip (bytes) | bootstrap (bytes) | build (s) |"
echo "|---|---:|---:|---:|"
for name in "${order[@]}"; do
  dir="target/bench-profile/$name"
  start=$(date +%s)
  env ${VARIANT[$name]} CARGO_TARGET_DIR=target/bench-profile-target cargo lambda build --release --arm64 \
    --output-format zip --lambda-dir "$dir" --bin shift-weight >/dev/null 2>&1
  took=$(( $(date +%s) - start ))
  zip="$dir/shift-weight/bootstrap.zip"
  unzipped=$(python3 -c "import zipfile,sys; print(zipfile.ZipFile(sys.argv[1]).getinfo('bootstrap').file_size)" "$zip")
  echo "| $name | $(stat -c %s "$zip") | $unzipped | $took |"
done
