#!/usr/bin/env bash
# Installs the Debian packages tandem builds and tests with. Idempotent: runs
# `apt-get update` only when something is missing, and prints nothing when all
# is already there.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ pkg-config clang libclang-rt-dev  # toolchain; clang for libFuzzer
  libgtest-dev libgmock-dev                       # unit and parity tests
  nlohmann-json3-dev                              # config.json, tokenizer.json, safetensors headers
  libpcre2-dev                                    # tokenizer pre-tokenization regexes
  libutf8proc-dev                                 # Unicode normalization (NFC) in tokenizers
  libsentencepiece-dev                            # SentencePiece tokenizer.model files
  libcli11-dev                                    # command-line parsing
  libcpp-httplib-dev                              # HTTP server (tandem serve) and the load generator
  libyaml-cpp-dev                                 # serving configuration (tandem serve --config)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm run the end-to-end tests with the official openai client. A
# node from elsewhere (e.g. one that bundles npm) counts: ask for the Debian
# packages only when the commands are missing.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
