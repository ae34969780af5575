#!/usr/bin/env bash
# Regenerates src/catalog/hive_metastore/thrift_gen.rs from the trimmed Hive Metastore IDL beside
# it, with the Thrift compiler whose version matches the `thrift` crate in Cargo.toml (0.17:
# Debian 12's `thrift-compiler` package). Run it after changing hive_metastore.thrift, then commit
# both files; the build never runs the compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=src/catalog/hive_metastore
want=0.17.0
if ! command -v thrift >/dev/null 2>&1; then
    echo "gen-hms-thrift: no thrift compiler: apt-get install thrift-compiler" >&2
    exit 1
fi
have=$(thrift --version | awk '{print $3}')
if [ "$have" != "$want" ]; then
    echo "gen-hms-thrift: thrift $have, want $want (the thrift crate's version)" >&2
    exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
thrift -out "$out" --gen rs "$dir/hive_metastore.thrift"
cp "$out/hive_metastore.rs" "$dir/thrift_gen.rs"
echo "gen-hms-thrift: wrote $dir/thrift_gen.rs"
