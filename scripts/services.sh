# Sourced by .ci/run: the servers some tests need answer on 127.0.0.1, started (and, when
# missing, installed with apt-get) if they do not — PostgreSQL on 5432 with a role for this
# user and a database "test" (the registry tests' second half), Redis on 6379 (the response
# cache). With CI=true a test skipped for lack of them fails the run (tests/ci_services.py).
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_install() {
  $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null \
    || { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
wait_until() {  # wait_until SECONDS COMMAND...: true once COMMAND succeeds
  local left=$(( $1 * 10 )); shift
  until "$@" >/dev/null 2>&1; do
    left=$(( left - 1 )); [ "$left" -gt 0 ] || return 1; sleep 0.1
  done
}

command -v pg_ctlcluster >/dev/null 2>&1 || { echo "installing PostgreSQL"; apt_install postgresql; }
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  pg_lsclusters -h | while read -r version cluster _; do
    $SUDO pg_ctlcluster "$version" "$cluster" start || true
  done
  pg_isready -q -h 127.0.0.1 -p 5432 || $SUDO service postgresql start || true
  wait_until 30 pg_isready -q -h 127.0.0.1 -p 5432 \
    || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
fi
user="$(id -un)"
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }
as_postgres "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = '$user'\"" | grep -q 1 \
  || as_postgres "createuser --superuser '$user'"
as_postgres "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'test'\"" | grep -q 1 \
  || as_postgres "createdb --owner '$user' test"

command -v redis-server >/dev/null 2>&1 || { echo "installing Redis"; apt_install redis-server; }
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  wait_until 10 redis-cli -h 127.0.0.1 -p 6379 ping \
    || { echo "Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }
fi
unset SUDO user
