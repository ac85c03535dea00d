//! The control plane's keys and certificates, made fresh for every cluster:
//! a CA, the API server's serving certificate (127.0.0.1, localhost, and the
//! in-cluster names), client certificates for the administrator and the
//! controller-manager, and the service-account signing key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::ControlPlaneError;

/// PEM files written by [`Pki::write`].
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub ca: PathBuf,
    /// The CA in PEM, for kubeconfigs.
    pub ca_pem: String,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// Signs service-account tokens (private key).
    pub service_account_key: PathBuf,
    /// Verifies service-account tokens (public key; Kubernetes 1.20 derives
    /// none from a PKCS#8 private key).
    pub service_account_public_key: PathBuf,
    pub admin: ClientCert,
    pub controller_manager: ClientCert,
}

/// A client certificate and its key, in PEM.
#[derive(Debug, Clone)]
pub(crate) struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

fn pki_error(what: &str, e: rcgen::Error) -> ControlPlaneError {
    ControlPlaneError::Setup(format!("cannot make the {what}: {e}"))
}

fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    group: Option<&str>,
) -> Result<ClientCert, ControlPlaneError> {
    let key = KeyPair::generate().map_err(|e| pki_error("client key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| pki_error("client certificate", e))?;
    // Kubernetes reads the user from CN and the groups from O.
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(group) = group {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| pki_error("client certificate", e))?;
    Ok(ClientCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl Pki {
    /// Makes the keys and certificates and writes those the processes read
    /// into `dir`.
    ///
    /// # Errors
    /// [`ControlPlaneError::Setup`] when a key cannot be made or written.
    pub(crate) fn write(dir: &Path) -> Result<Self, ControlPlaneError> {
        let ca_key = KeyPair::generate().map_err(|e| pki_error("CA key", e))?;
        let mut ca = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| pki_error("CA certificate", e))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "tenant-worker test cluster CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca
            .self_signed(&ca_key)
            .map_err(|e| pki_error("CA certificate", e))?;
        let issuer = Issuer::new(ca, ca_key);

        let serving_key = KeyPair::generate().map_err(|e| pki_error("serving key", e))?;
        let mut serving = CertificateParams::new(vec![
            "127.0.0.1".into(),
            "localhost".into(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            "10.96.0.1".into(),
        ])
        .map_err(|e| pki_error("serving certificate", e))?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving
            .signed_by(&serving_key, &issuer)
            .map_err(|e| pki_error("serving certificate", e))?;

        let service_account_key =
            KeyPair::generate().map_err(|e| pki_error("service-account key", e))?;

        let write = |name: &str, text: &str| -> Result<PathBuf, ControlPlaneError> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| {
                ControlPlaneError::Setup(format!("cannot write {}: {e}", path.display()))
            })?;
            Ok(path)
        };
        Ok(Self {
            ca: write("ca.pem", &ca_cert.pem())?,
            ca_pem: ca_cert.pem(),
            serving_cert: write("apiserver.pem", &serving_cert.pem())?,
            serving_key: write("apiserver-key.pem", &serving_key.serialize_pem())?,
            service_account_key: write(
                "service-account-key.pem",
                &service_account_key.serialize_pem(),
            )?,
            service_account_public_key: write(
                "service-account-public-key.pem",
                &service_account_key.public_key_pem(),
            )?,
            admin: client_cert(&issuer, "tenant-worker-test-admin", Some("system:masters"))?,
            controller_manager: client_cert(&issuer, "system:kube-controller-manager", None)?,
        })
    }
}
