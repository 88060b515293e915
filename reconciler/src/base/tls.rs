//! One TLS crypto provider for the whole process (ring), so reqwest, ldap3
//! and bollard never build or pick a second stack.

/// Installs ring as rustls' process-wide provider; later calls are no-ops.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
