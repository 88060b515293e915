//! Layer 0, below everything: helpers that know nothing of Berth's
//! clients or state. Imports nothing from the other layers.

/// The innermost cause of a service's error, for messages to admins.
pub mod hint;
/// Random secrets, hex, and the hashes secrets are stored under.
pub mod secret;
/// Failed-attempt throttling.
pub mod throttle;
/// RFC 3339 time for people and protocols.
pub mod time;
/// The process-wide TLS provider.
pub mod tls;
