//! The texts people read: notification messages, audit descriptions and error
//! texts, one function each, so that the wording lives in one place.

use std::net::IpAddr;

pub(crate) fn from_where(client: Option<IpAddr>) -> String {
    match client {
        Some(ip) => format!("from {ip}"),
        None => "from an unknown address".to_string(),
    }
}

pub(crate) fn quoted(title: &str) -> String {
    format!("\"{title}\"")
}
