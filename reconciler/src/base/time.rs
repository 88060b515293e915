//! Time as Berth writes it for people and protocols (see
//! [`berth_core::time`]).

pub use berth_core::time::rfc3339;
