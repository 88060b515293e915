//! Berth's file formats: `workspace.yaml` (a student's, in their repository)
//! and `site.yaml` (the admin's). Pure: no IO, no async, usable on its own.
//!
//! # Layout
//! - [`load`] turns bytes into typed values strictly (limits, duplicate keys,
//!   unknown fields with suggestions), [`validate`] checks a workspace on its
//!   own, [`policy`] checks it against a site for one account.
//! - Every problem is a [`Diagnostic`] with `line:col`.

/// Dates students write (`keep_until`, access `until`).
pub mod dates;
/// Problems with positions.
pub mod diag;
/// Docker image reference grammar and normalisation.
pub mod image;
/// Strict YAML loading and error translation.
pub mod load;
/// A value with the position it was written at.
pub mod located;
/// Name rules shared with the backends.
pub mod names;
/// Site policy for one account: registries, backends, quotas.
pub mod policy;
/// Memory sizes.
pub mod quantity;
/// JSON Schema export.
pub mod schema;
/// `site.yaml` types and validation.
pub mod site;
/// Structural validation of a workspace.
pub mod validate;
/// `workspace.yaml` types.
pub mod workspace;

pub use diag::{Diagnostic, Diagnostics, Pos};
pub use image::ImageRef;
pub use located::Located;
pub use site::Site;
pub use workspace::{Access, Allow, Backend, Container, State, Workspace};

/// Parses and validates a `workspace.yaml` (without site policy).
pub fn parse_workspace(bytes: &[u8]) -> Result<Workspace, Diagnostics> {
    let ws: Workspace = load::load(bytes, load::Kind::Workspace, load::Limits::default())?;
    validate::validate(&ws)?;
    Ok(ws)
}

/// Parses and validates a `site.yaml`.
pub fn parse_site(bytes: &[u8]) -> Result<Site, Diagnostics> {
    let site: Site = load::load(bytes, load::Kind::Site, load::Limits::default())?;
    site::validate(&site)?;
    Ok(site)
}
