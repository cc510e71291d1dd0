#!/usr/bin/env bash
# Vendors the console's browser files from the npm registry (run when bumping a version; the results are
# committed, so nothing is fetched when the package is built or run):
#   htmx.org  -> pfepo/console/static/vendor/htmx.min.js   (served by the daemon)
#   axe-core  -> tests/console/vendor/axe.min.js           (only the accessibility test injects it)
# `npm pack` checks each tarball against the registry's integrity hash; versions are pinned here.
set -euo pipefail
HTMX_VERSION=2.0.11
AXE_VERSION=4.14.1
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
npm pack --silent "htmx.org@$HTMX_VERSION" "axe-core@$AXE_VERSION" >/dev/null
mkdir htmx axe
tar -xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
tar -xzf "axe-core-$AXE_VERSION.tgz" -C axe
OUT="$ROOT/pfepo/console/static/vendor"
TOUT="$ROOT/tests/console/vendor"
mkdir -p "$OUT" "$TOUT"
cp htmx/package/dist/htmx.min.js "$OUT/htmx.min.js"
cp htmx/package/LICENSE "$OUT/htmx.LICENSE"
cp axe/package/axe.min.js "$TOUT/axe.min.js"
cp axe/package/LICENSE "$TOUT/axe.LICENSE"
for d in "$OUT" "$TOUT"; do
  {
    echo "# Vendored by scripts/vendor-console.sh from the npm registry; do not edit."
    [ "$d" = "$OUT" ] && echo "htmx.org $HTMX_VERSION (BSD Zero Clause, see htmx.LICENSE)"
    [ "$d" = "$TOUT" ] && echo "axe-core $AXE_VERSION (MPL-2.0, see axe.LICENSE)"
    (cd "$d" && sha256sum ./*.js)
  } > "$d/VENDORED.txt"
done
echo "vendored htmx.org $HTMX_VERSION and axe-core $AXE_VERSION"
