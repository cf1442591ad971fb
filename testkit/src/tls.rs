//! Certificates generated at test time: a CA, a broker certificate for `localhost`/`127.0.0.1`, a client
//! certificate, and a second CA that signed none of them (for "untrusted" tests).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files written into a directory.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA certificate unrelated to the others.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA certificate");
    (params, key, cert.pem())
}

/// Generates everything into `dir`.
pub fn generate(dir: &Path) -> TlsFiles {
    let (ca_params, ca_key, ca_pem) = ca("edge-agent test CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |sans: Vec<String>, cn: &str| {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()], "localhost");
    let (client_cert, client_key) = leaf(vec!["edge-agent".into()], "edge-agent");
    let (_, _, other_ca) = ca("some other CA");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    TlsFiles {
        ca: write("ca.pem", &ca_pem),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
        other_ca: write("other-ca.pem", &other_ca),
    }
}

/// A Mosquitto password file with one user.
pub fn password_file(dir: &Path, user: &str, password: &str) -> PathBuf {
    let path = dir.join("passwd");
    let status = std::process::Command::new("/usr/bin/mosquitto_passwd").args(["-b", "-c"]).arg(&path).args([user, password]).status().expect("run mosquitto_passwd");
    assert!(status.success(), "mosquitto_passwd failed");
    path
}
