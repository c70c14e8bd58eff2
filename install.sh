#!/usr/bin/env sh
# Installs the `offerhub` binary from this checkout into $PREFIX/bin (default
# ~/.local/bin, or /usr/local/bin when run as root) with cargo, then prints how to start it.
set -eu
cd "$(dirname "$0")"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust from https://rustup.rs first" >&2
  exit 1
fi
if [ -z "${PREFIX:-}" ]; then
  if [ "$(id -u)" = 0 ]; then PREFIX=/usr/local; else PREFIX="$HOME/.local"; fi
fi
cargo install --locked --path cli --root "$PREFIX" --force
echo
echo "Installed $PREFIX/bin/offerhub"
case ":$PATH:" in *":$PREFIX/bin:"*) ;; *) echo "Add $PREFIX/bin to your PATH." ;; esac
echo "Start it on the embedded default (SQLite + sandbox):  offerhub serve"
