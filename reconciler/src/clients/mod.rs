//! Layer 4, the clients' room: the site file turned into connected clients
//! ([`Context`]), what was observed of the backends ([`Observed`]), and
//! the errors every operation shares. Reconcile, builds, gc, drain, cull
//! and the console all stand on it; it imports only the layers below.

mod context;
mod error;

pub use context::{BuildEvent, Context, Observed, Reservations, connect, kube_config, load_site};
pub use error::{ActionError, ReconcileError, Result};
