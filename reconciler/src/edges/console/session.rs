//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` behind TLS), a CSRF token per session, an idle and an
//! absolute lifetime. Kept in memory, or in the state store (only the id's
//! hash) when the site asks them to survive a restart.

use crate::store::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const COOKIE: &str = "berth_session";
/// The cookie's name when it is `Secure`: browsers take a `__Host-` cookie
/// only from this host over TLS, with `Path=/` and no `Domain`, so a page
/// on a sibling host cannot plant a session.
pub const HOST_COOKIE: &str = "__Host-berth_session";

use crate::store::Session;

pub struct Sessions {
    idle: Duration,
    lifetime: Duration,
    secure: bool,
    memory: Mutex<HashMap<String, Session>>,
    persist: bool,
}

fn hash(id: &str) -> String {
    crate::base::secret::sha256_hex(id)
}

impl Sessions {
    pub fn new(site: &berth_spec::Site) -> Sessions {
        let c = &site.console;
        let parse = |t: &str, d: u64| berth_spec::site::duration_or(t, Duration::from_secs(d));
        Sessions {
            idle: parse(&c.idle, 1800),
            lifetime: parse(&c.lifetime, 12 * 3600),
            secure: c.tls,
            memory: Mutex::new(HashMap::new()),
            persist: c.persist_sessions,
        }
    }

    /// A new session; its id (for the cookie).
    pub async fn create(&self, store: &Store, account: &str, admin: bool) -> (String, Session) {
        let id = crate::base::secret::random_hex(32);
        let now = crate::store::now();
        let session = Session {
            account: account.to_string(),
            admin,
            csrf: crate::base::secret::random_hex(16),
            created: now,
            seen: now,
        };
        let key = hash(&id);
        match self.persist {
            true => {
                let (k, stored) = (key.clone(), session.clone());
                if let Err(e) = store.call(move |s| s.put_session(&k, &stored)).await {
                    tracing::warn!(cause = %e, "storing a console session");
                }
            }
            false => {
                let mut map = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > 100_000 {
                    let (idle, life) = (self.idle.as_secs() as i64, self.lifetime.as_secs() as i64);
                    map.retain(|_, s| now - s.seen < idle && now - s.created < life);
                }
                map.insert(key, session.clone());
            }
        }
        (id, session)
    }

    /// The live session of `id`, its last use now; `None` when unknown
    /// or expired (an expired one is forgotten).
    pub async fn get(&self, store: &Store, id: &str) -> Option<Session> {
        let key = hash(id);
        let now = crate::store::now();
        let (idle, lifetime) = (self.idle.as_secs() as i64, self.lifetime.as_secs() as i64);
        let live = move |s: &Session| now - s.seen < idle && now - s.created < lifetime;
        match self.persist {
            true => {
                store
                    .call(move |store| {
                        let found = store.session(&key).ok().flatten()?;
                        if !live(&found) {
                            let _ = store.drop_session(&key);
                            return None;
                        }
                        let _ = store.touch_session(&key, now);
                        Some(Session { seen: now, ..found })
                    })
                    .await
            }
            false => {
                let mut map = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                let s = map.get_mut(&key)?;
                if !live(s) {
                    map.remove(&key);
                    return None;
                }
                s.seen = now;
                Some(s.clone())
            }
        }
    }

    pub async fn remove(&self, store: &Store, id: &str) {
        let key = hash(id);
        match self.persist {
            true => {
                let _ = store.call(move |s| s.drop_session(&key)).await;
            }
            false => {
                self.memory
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
            }
        }
    }

    /// The `Set-Cookie` value for `id` (empty `id`: clear it).
    pub fn cookie(&self, id: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        let age = if id.is_empty() {
            "; Max-Age=0".to_string()
        } else {
            format!("; Max-Age={}", self.lifetime.as_secs())
        };
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict{secure}{age}",
            self.cookie_name()
        )
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure { HOST_COOKIE } else { COOKIE }
    }

    /// The session id in a `Cookie` header, under this site's cookie name
    /// only (behind TLS a plain `berth_session` is someone else's plant).
    pub fn id_in<'h>(&self, header: &'h str) -> Option<&'h str> {
        let name = self.cookie_name();
        header
            .split(';')
            .map(str::trim)
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(extra: &str) -> berth_spec::Site {
        let mut site = crate::fixtures::example_site();
        if extra == "persist" {
            site.console.persist_sessions = true;
        }
        site.console.tls = true;
        site
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_cookie_and_forgotten_at_logout() {
        let store = Store::in_memory().expect("store");
        let sessions = Sessions::new(&site(""));
        let (id, s) = sessions.create(&store, "alice", false).await;
        let header = format!("other=1; {HOST_COOKIE}={id}");
        let found = sessions
            .get(&store, sessions.id_in(&header).expect("id"))
            .await
            .expect("live");
        assert_eq!(
            sessions.id_in(&format!("{COOKIE}={id}")),
            None,
            "behind TLS only the __Host- cookie counts"
        );
        assert_eq!(found.account, "alice");
        assert_eq!(found.csrf, s.csrf);
        assert!(sessions.get(&store, "guess").await.is_none());
        sessions.remove(&store, &id).await;
        assert!(sessions.get(&store, &id).await.is_none());
        let cookie = sessions.cookie(&id);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Secure"), "behind TLS the cookie is Secure");
        assert!(cookie.starts_with("__Host-berth_session=") && cookie.contains("Path=/"));
        assert!(!cookie.contains("Domain"));
    }

    #[tokio::test]
    async fn persisted_sessions_survive_a_new_sessions_object_and_keep_no_raw_id() {
        let store = Store::in_memory().expect("store");
        let (id, _) = Sessions::new(&site("persist"))
            .create(&store, "bob", true)
            .await;
        let again = Sessions::new(&site("persist"));
        let s = again.get(&store, &id).await.expect("survives a restart");
        assert!(s.admin);
        assert!(
            store.session(&id).expect("read").is_none(),
            "only the hash is a key"
        );
    }

    #[tokio::test]
    async fn an_idle_session_expires() {
        let mut site = site("");
        site.console.idle = berth_spec::Located::new("1s".into());
        let store = Store::in_memory().expect("store");
        let sessions = Sessions::new(&site);
        let (id, _) = sessions.create(&store, "alice", false).await;
        {
            let mut map = sessions.memory.lock().expect("lock");
            for s in map.values_mut() {
                s.seen -= 5;
            }
        }
        assert!(sessions.get(&store, &id).await.is_none());
    }
}
