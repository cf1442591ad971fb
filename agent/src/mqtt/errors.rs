//! Connection errors in words an operator can act on, with how long to wait before retrying.

use std::time::Duration;

use edge_config::Mqtt;
use rumqttc::{ConnectReturnCode, ConnectionError};

/// A connection error in words an operator can act on, and the shortest wait before retrying it;
/// `connected` says whether the connection had been established (then it was lost, not refused).
pub fn describe(e: &ConnectionError, settings: &Mqtt, connected: bool) -> (String, Duration) {
    let broker = format!("{}:{}", settings.host, settings.port);
    let text = e.to_string();
    let tls = settings.tls.is_some();
    let dropped = text.contains("closed by peer") || text.contains("reset by peer") || text.contains("UnexpectedEof") || text.contains("unexpected end of file");
    match e {
        _ if connected && dropped => (format!("broker {broker} closed the connection ({text})"), Duration::ZERO),
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized) => {
            (format!("broker {broker} rejected the credentials (check mqtt.username and the password)"), Duration::from_secs(10))
        }
        ConnectionError::ConnectionRefused(code) => (format!("broker {broker} refused the connection: {code:?}"), Duration::from_secs(5)),
        _ if text.contains("UnknownIssuer") || text.contains("BadSignature") || text.contains("invalid peer certificate: Other") => {
            (format!("TLS: the certificate of broker {broker} is not trusted: it does not chain to mqtt.tls.ca_file ({text})"), Duration::from_secs(10))
        }
        _ if text.contains("NotValidForName") => {
            (format!("TLS: the certificate of broker {broker} is not valid for host {:?} (hostname verification) ({text})", settings.host), Duration::from_secs(10))
        }
        _ if text.contains("Expired") || text.contains("NotValidYet") => {
            (format!("TLS: the certificate of broker {broker} is expired or not yet valid ({text})"), Duration::from_secs(10))
        }
        _ if tls
            && (text.contains("InvalidContentType")
                || text.contains("corrupt message")
                || text.contains("InvalidMessage")
                || text.contains("peer is incompatible")
                // A plain MQTT listener answers a TLS ClientHello by dropping the connection.
                || (matches!(e, ConnectionError::Tls(_)) && (text.contains("reset by peer") || text.contains("closed by peer") || text.contains("UnexpectedEof") || text.contains("unexpected end of file")))) =>
        {
            (
                format!("TLS handshake with broker {broker} failed: the port does not seem to speak TLS (remove [mqtt.tls] or use the broker's TLS port) ({text})"),
                Duration::from_secs(5),
            )
        }
        _ if tls && (text.contains("CertificateRequired") || text.contains("certificate required") || text.contains("BadCertificate") || text.contains("UnknownCA")) => {
            (format!("TLS: broker {broker} did not accept the client certificate (mqtt.tls.client_cert_file / client_key_file) ({text})"), Duration::from_secs(10))
        }
        _ if !tls && (dropped || matches!(e, ConnectionError::NetworkTimeout)) => {
            (format!("broker {broker} closed the connection during the MQTT handshake: if this is a TLS port, configure [mqtt.tls] ({text})"), Duration::from_secs(2))
        }
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => (format!("broker {broker} is not accepting connections ({text})"), Duration::ZERO),
        _ => (format!("connection to broker {broker} failed: {text}"), Duration::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    fn settings(tls: bool) -> Mqtt {
        let mut text = String::from("host = \"broker.local\"\nport = 8883\n");
        if tls {
            text.push_str("[tls]\nca_file = \"/etc/ca.pem\"\n");
        }
        toml::from_str(&text).unwrap()
    }

    fn io(kind: ErrorKind, text: &str) -> ConnectionError {
        ConnectionError::Io(Error::new(kind, text.to_string()))
    }

    #[test]
    fn connection_errors_are_described_for_operators_with_a_retry_floor() {
        let cases: Vec<(ConnectionError, bool, &str, u64)> = vec![
            (ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword), false, "rejected the credentials", 10),
            (ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized), true, "rejected the credentials", 10),
            (ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable), false, "refused the connection: ServiceUnavailable", 5),
            (io(ErrorKind::Other, "invalid peer certificate: UnknownIssuer"), true, "is not trusted", 10),
            (io(ErrorKind::Other, "invalid peer certificate: NotValidForName"), true, "hostname verification", 10),
            (io(ErrorKind::Other, "invalid peer certificate: Expired"), true, "expired or not yet valid", 10),
            (io(ErrorKind::Other, "received corrupt message of type InvalidContentType"), true, "does not seem to speak TLS", 5),
            (io(ErrorKind::Other, "received fatal alert: CertificateRequired"), true, "did not accept the client certificate", 10),
            (io(ErrorKind::ConnectionReset, "connection reset by peer"), false, "closed the connection during the MQTT handshake", 2),
            (ConnectionError::NetworkTimeout, false, "closed the connection during the MQTT handshake", 2),
            (io(ErrorKind::ConnectionRefused, "connection refused"), false, "is not accepting connections", 0),
            (io(ErrorKind::Other, "something else"), false, "connection to broker broker.local:8883 failed", 0),
        ];
        for (error, tls, expected, floor_s) in cases {
            let (text, floor) = describe(&error, &settings(tls), false);
            assert!(text.contains(expected), "{error}: {text:?} lacks {expected:?}");
            assert!(text.contains("broker.local:8883"), "{text}");
            assert_eq!(floor, Duration::from_secs(floor_s), "{error}");
        }
        // Dropped after it was up: the broker closed it, no handshake advice.
        let (text, floor) = describe(&io(ErrorKind::ConnectionReset, "connection reset by peer"), &settings(false), true);
        assert!(text.starts_with("broker broker.local:8883 closed the connection (") && !text.contains("handshake"), "{text}");
        assert_eq!(floor, Duration::ZERO);
    }
}
