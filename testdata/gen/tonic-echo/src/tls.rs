//! TLS for the test services, by rustls through tonic: `tonic-echo certs --dir D` makes a
//! self-signed certificate for localhost; the server serves TLS with `--tls-cert F --tls-key F`;
//! the client trusts `--tls-ca F` (and then speaks TLS to `https://` targets). Both write the
//! connections' secrets to the key log named by `SSLKEYLOGFILE` (rustls's `KeyLogFile`).

use std::sync::OnceLock;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

static CA: OnceLock<Vec<u8>> = OnceLock::new();

/// The client trusts this CA (PEM) from now on.
pub(crate) fn set_ca(path: &str) {
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("--tls-ca {path}: {e}"));
    let _ = CA.set(pem);
}

/// An endpoint for `target`: TLS (server name localhost, key log) when a CA was given.
pub(crate) fn endpoint(target: &str) -> Endpoint {
    let e = Endpoint::from_shared(target.to_owned()).unwrap();
    match CA.get() {
        Some(ca) => e
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost")
                    .use_key_log(),
            )
            .unwrap(),
        None => e,
    }
}

/// The server's TLS: the certificate and key (PEM files), key log on.
pub(crate) fn server(cert: &str, key: &str) -> ServerTlsConfig {
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    ServerTlsConfig::new()
        .identity(Identity::from_pem(read(cert), read(key)))
        .use_key_log()
}

/// Writes `dir/cert.pem` and `dir/key.pem`: a self-signed certificate for localhost (the
/// client's CA too).
pub(crate) fn certs(dir: &str) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let c = rcgen::generate_simple_self_signed(names).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(format!("{dir}/key.pem"), c.key_pair.serialize_pem()).unwrap();
    println!("{dir}/cert.pem {dir}/key.pem");
}
