# Sourced by scripts/test: the Debian packages the tests drive as real programs, installed
# when missing (a fresh machine has none of them). Prometheus gives `promtool` and a real
# server to scrape Ferryman; Chromium is the browser the dashboard tests drive; faketime
# shifts the control plane's wall clock (RELIABILITY F9); slowhttptest holds slow-header and
# slow-body connections against the servers (RELIABILITY B8). mmdebstrap, buildah and podman
# make a Debian base image, build the Containerfile on it and run it (tests/e2e/test_image.py).
# wrk is the bench scripts' load generator (tests/bench/test_wrk.py runs it).
missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
command -v slowhttptest >/dev/null 2>&1 || missing="$missing slowhttptest"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
for tool in mmdebstrap buildah podman; do
  command -v $tool >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y --no-install-recommends $missing >/dev/null \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y --no-install-recommends $missing >/dev/null; }
fi
unset missing SUDO
