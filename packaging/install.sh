#!/bin/sh
# Install (or upgrade) Berth as a systemd service on Debian/Ubuntu.
#
#   sudo packaging/install.sh              install or upgrade
#   sudo packaging/install.sh --uninstall  remove binary and unit, keep data
#
# The binary is taken from, in order:
#   1. $BERTH_BINARY, if set
#   2. ./berth next to this script (release tarball layout)
#   3. target/release/berth in the repository this script lives in
#
# Re-running is safe: an existing /etc/berth/berth.toml is never overwritten,
# and /var/lib/berth is never touched.
set -eu

BIN=/usr/local/bin/berth
UNIT=/etc/systemd/system/berth.service
CONFIG_DIR=/etc/berth
CONFIG=$CONFIG_DIR/berth.toml
DATA_DIR=/var/lib/berth
DEFAULT_LISTEN=127.0.0.1:7080
HEALTH_TIMEOUT=30

script_dir=$(cd "$(dirname "$0")" && pwd)

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<EOF
Usage: $0 [--uninstall]

Installs Berth to $BIN with the systemd unit $UNIT,
creates $CONFIG if missing and starts the service.

  --uninstall   stop and remove the service and binary;
                $DATA_DIR and $CONFIG_DIR are kept
  -h, --help    show this help

Environment:
  BERTH_BINARY  path of the berth binary to install
EOF
}

# ---------------------------------------------------------------- checks

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must be run as root (try: sudo $0${*:+ $*})"
}

# Only Debian and derivatives (Ubuntu, ...) are supported: we rely on apt and
# on the docker.io package.
require_debian() {
    [ -r /etc/os-release ] || die "cannot read /etc/os-release; only Debian/Ubuntu are supported"
    # shellcheck source=/dev/null
    . /etc/os-release
    case " ${ID:-} ${ID_LIKE:-} " in
        *" debian "* | *" ubuntu "*) ;;
        *) die "unsupported distribution '${PRETTY_NAME:-${ID:-unknown}}'; only Debian/Ubuntu are supported" ;;
    esac
}

require_systemd() {
    command -v systemctl >/dev/null 2>&1 || die "systemctl not found; Berth is installed as a systemd service"
    [ -d /run/systemd/system ] || die "systemd is not running (PID 1); cannot manage the berth service here"
}

# ---------------------------------------------------------------- install

ensure_docker() {
    if command -v dockerd >/dev/null 2>&1; then
        say "Docker engine found: $(command -v dockerd)"
        return
    fi
    say "Docker engine not found; installing docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io
    systemctl enable --now docker
}

# Berth fetches repositories with the git command line (and ssh for deploy keys).
ensure_git() {
    if command -v git >/dev/null 2>&1 && command -v ssh >/dev/null 2>&1; then
        say "git found: $(command -v git)"
        return
    fi
    say "git or ssh not found; installing git and openssh-client"
    DEBIAN_FRONTEND=noninteractive apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y git openssh-client
}

find_binary() {
    if [ -n "${BERTH_BINARY:-}" ]; then
        # Explicit choice: do not silently fall back to something else.
        if [ ! -f "$BERTH_BINARY" ] || [ ! -x "$BERTH_BINARY" ]; then
            die "BERTH_BINARY=$BERTH_BINARY is not an executable file"
        fi
        printf '%s\n' "$BERTH_BINARY"
    elif [ -f "$script_dir/berth" ] && [ -x "$script_dir/berth" ]; then
        printf '%s\n' "$script_dir/berth"
    elif [ -f "$script_dir/../target/release/berth" ] && [ -x "$script_dir/../target/release/berth" ]; then
        printf '%s\n' "$script_dir/../target/release/berth"
    else
        die "no berth binary found. Build it with 'cargo build --release' in $(dirname "$script_dir"), or set BERTH_BINARY=/path/to/berth"
    fi
}

install_binary() {
    src=$1
    say "Installing $src -> $BIN"
    # Copy next to the target, then rename: atomic, and works while an older
    # berth is running from $BIN.
    install -m 0755 "$src" "$BIN.new"
    mv -f "$BIN.new" "$BIN"
}

write_default_config() {
    if [ -e "$CONFIG" ]; then
        say "Keeping existing config $CONFIG"
        return
    fi
    say "Writing default config $CONFIG"
    mkdir -p "$CONFIG_DIR"
    # The config may hold secrets: root-only. Write to a temp file first so a
    # failing `print-default` never leaves a half-written config behind.
    tmp=$(mktemp "$CONFIG_DIR/.berth.toml.XXXXXX")
    if ! "$BIN" config print-default >"$tmp"; then
        rm -f "$tmp"
        die "'$BIN config print-default' failed"
    fi
    chmod 0600 "$tmp"
    mv "$tmp" "$CONFIG"
}

install_unit() {
    [ -f "$script_dir/berth.service" ] || die "unit file not found: $script_dir/berth.service"
    say "Installing systemd unit $UNIT"
    install -m 0644 "$script_dir/berth.service" "$UNIT"
    systemctl daemon-reload
}

start_service() {
    # On upgrade the service is already running the old binary: restart it.
    if systemctl is-active --quiet berth; then
        say "Restarting berth"
        systemctl enable berth
        systemctl restart berth
    else
        say "Enabling and starting berth"
        systemctl enable --now berth
    fi
}

wait_healthy() {
    say "Waiting for berth to become healthy (up to ${HEALTH_TIMEOUT}s)"
    i=0
    while [ "$i" -lt "$HEALTH_TIMEOUT" ]; do
        if "$BIN" healthcheck --config "$CONFIG" >/dev/null 2>&1; then
            say "berth is healthy"
            return
        fi
        sleep 1
        i=$((i + 1))
    done
    systemctl status berth --no-pager || true
    journalctl -u berth -n 50 --no-pager || true
    die "berth did not become healthy within ${HEALTH_TIMEOUT}s (see the status and logs above)"
}

# Top-level `listen = "host:port"` of the config (before the first [section]),
# or the built-in default.
listen_address() {
    addr=$(awk '
        /^[[:space:]]*\[/ { exit }
        /^[[:space:]]*listen[[:space:]]*=/ {
            sub(/^[^=]*=[[:space:]]*/, "")
            if (match($0, /^"[^"]*"/) || match($0, /^\047[^\047]*\047/)) {
                print substr($0, 2, RLENGTH - 2)
            }
            exit
        }' "$CONFIG" 2>/dev/null || true)
    printf '%s\n' "${addr:-$DEFAULT_LISTEN}"
}

dashboard_url() {
    addr=$(listen_address)
    case $addr in
        *://*) printf '%s\n' "$addr" ;;
        # Wildcard binds are reachable locally on loopback.
        0.0.0.0:*) printf 'http://127.0.0.1:%s\n' "${addr#0.0.0.0:}" ;;
        "[::]:"*) printf 'http://[::1]:%s\n' "${addr#\[::\]:}" ;;
        *) printf 'http://%s\n' "$addr" ;;
    esac
}

# Berth logs `setup_token=TOKEN` (or setup_token="TOKEN") on start while no
# user exists. Only the current run of the service is searched, so a token
# from an earlier installation is never shown.
setup_token() {
    esc=$(printf '\033')
    invocation=$(systemctl show -p InvocationID --value berth 2>/dev/null || true)
    if [ -n "$invocation" ]; then
        set -- "_SYSTEMD_INVOCATION_ID=$invocation"
    else
        set -- -u berth
    fi
    # journald may lag slightly behind the service's stdout: retry briefly.
    i=0
    while [ "$i" -lt 3 ]; do
        # Strip ANSI colour codes, which would split `setup_token` from `=`.
        tok=$(journalctl "$@" --no-pager -o cat 2>/dev/null |
            sed "s/$esc\[[0-9;]*m//g" |
            grep -o 'setup_token=[^ ]*' | tail -n 1)
        tok=${tok#setup_token=}
        tok=$(printf '%s' "$tok" | tr -d "\"'")
        if [ -n "$tok" ]; then
            printf '%s\n' "$tok"
            return
        fi
        sleep 1
        i=$((i + 1))
    done
}

do_install() {
    # Locate the binary first so a missing build fails before apt-get runs.
    src=$(find_binary)
    ensure_docker
    ensure_git
    install_binary "$src"
    write_default_config
    install_unit
    start_service
    wait_healthy

    url=$(dashboard_url)
    token=$(setup_token)
    echo
    say "Berth is running."
    echo "    Dashboard:   $url"
    if [ -n "$token" ]; then
        echo "    Setup token: $token"
        echo "    Open the dashboard and use the token to create the first user."
    else
        echo "    No setup token in this run's logs: setup is already done (a user exists)."
        echo "    To add a user: $BIN admin create-user --config $CONFIG"
    fi
    echo "    Logs:        journalctl -u berth -f"
}

# ---------------------------------------------------------------- uninstall

do_uninstall() {
    if [ -f "$UNIT" ] || systemctl cat berth >/dev/null 2>&1; then
        say "Stopping and disabling berth"
        systemctl disable --now berth || warn "could not stop/disable berth"
    fi
    say "Removing $UNIT and $BIN"
    rm -f "$UNIT" "$BIN" "$BIN.new"
    systemctl daemon-reload
    systemctl reset-failed berth >/dev/null 2>&1 || true

    echo
    say "Berth removed. Kept (delete by hand if you no longer need them):"
    echo "    $DATA_DIR   (database, certificates, app data)"
    echo "    $CONFIG_DIR   (configuration)"
    echo "    Docker and any containers Berth started were left as they are."
}

# ---------------------------------------------------------------- main

action=install
for arg in "$@"; do
    case $arg in
        --uninstall) action=uninstall ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: $arg"
            ;;
    esac
done

require_root "$@"
require_debian
require_systemd

case $action in
    install) do_install ;;
    uninstall) do_uninstall ;;
    *) die "internal error: unknown action $action" ;;
esac
