//! A test CA and a server certificate for 127.0.0.1 / ::1 / localhost,
//! for the loopback HTTPS servers ([`crate::http`], [`crate::duo`]). The
//! agent trusts the CA through the install config's `extra_ca_file`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

pub struct TestCa {
    /// The CA certificate, PEM: what `extra_ca_file` names.
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// A fresh CA named `name` and a server configuration whose
    /// certificate it signed.
    pub fn new(name: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "localhost".to_owned(),
        ])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }
}
