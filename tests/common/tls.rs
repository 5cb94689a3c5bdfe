//! Certificates for the TLS tests, made by rcgen: a test CA and a server
//! certificate it signs for `127.0.0.1` and `localhost`, written as PEM files
//! that the server (`IMAS_TLS_CERT`, `IMAS_TLS_KEY`) and the clients
//! (reqwest, PagerDuty's Python client, Alertmanager's `ca_file`) read.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A test CA and a server certificate it signed, as PEM files in a fresh
/// directory.
#[derive(Debug)]
pub struct TestCa {
    pub dir: PathBuf,
    /// The CA's certificate: what clients trust.
    pub ca_path: PathBuf,
    pub ca_pem: String,
    /// The server's certificate chain (its certificate, then the CA's).
    pub cert_path: PathBuf,
    /// The server's private key.
    pub key_path: PathBuf,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("certificate directory");

        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "IMAS test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");

        let mut server =
            CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("server key");
        let cert = server.signed_by(&key, &ca).expect("server certificate");

        let ca_pem = ca.pem();
        let (ca_path, cert_path, key_path) = (
            dir.join("ca.pem"),
            dir.join("server.pem"),
            dir.join("server.key"),
        );
        std::fs::write(&ca_path, &ca_pem).expect("write CA");
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca_pem)).expect("write chain");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        TestCa {
            dir,
            ca_path,
            ca_pem,
            cert_path,
            key_path,
        }
    }

    /// The server's TLS variables.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IMAS_TLS_CERT", self.cert_path.display().to_string()),
            ("IMAS_TLS_KEY", self.key_path.display().to_string()),
        ]
    }

    /// A client that trusts this CA only.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("client")
    }

    /// A client builder that trusts this CA only.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA for reqwest");
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
