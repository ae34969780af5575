//! Certificates for TLS tests, made with `openssl`: a CA, a server certificate for 127.0.0.1 (also
//! good as a client certificate: Redis Cluster nodes present it to each other), a client
//! certificate, and an unrelated CA.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::output_within;

/// Runs `openssl ARGS` in `dir`, failing the test with its stderr.
pub fn openssl(dir: &Path, args: &[&str]) {
    let mut openssl = Command::new("openssl");
    openssl.args(args).current_dir(dir);
    let out = output_within(&mut openssl, Stdio::null(), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA `<name>.crt` / `<name>.key` in `dir`.
pub fn make_ca(dir: &Path, name: &str) {
    let (key, crt, subject) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("/CN={name}"),
    );
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt,
            "-days", "2", "-subj", &subject,
        ],
    );
}

/// `<name>.crt` / `<name>.key` signed by the CA `ca`, for `usage` (`serverAuth`, `clientAuth`).
pub fn make_signed(dir: &Path, ca: &str, name: &str, usage: &str) {
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    let ext = format!("{name}.cnf");
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
        ),
    )
    .unwrap();
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// A CA (`ca`), a server certificate for 127.0.0.1 and a client certificate it signed, and a
/// second, unrelated CA (`other-ca`), written into `dir`.
pub fn make_certificates(dir: &Path) {
    make_ca(dir, "ca");
    make_signed(dir, "ca", "server", "serverAuth,clientAuth");
    make_signed(dir, "ca", "client", "clientAuth");
    make_ca(dir, "other-ca");
}
