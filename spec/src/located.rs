//! `Located<T>`: a value from a YAML file together with where it was written,
//! so validation that runs after parsing can still point at `line:col`.
//!
//! Equality and hashing ignore the position: two specs that say the same thing
//! are equal wherever they say it (this is what the round-trip property relies on).

use crate::diag::Pos;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::ops::Deref;

#[derive(Clone, Debug, Default)]
pub struct Located<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Located<T> {
    /// A value with no source position, for specs built in code.
    pub fn new(value: T) -> Self {
        Located {
            value,
            pos: Pos::default(),
        }
    }

    pub fn at(value: T, pos: Pos) -> Self {
        Located { value, pos }
    }

    /// Names the setting `key` this value was read from, for an error that
    /// tells an admin what to check: `` `ldap.url` (line 2 of the site
    /// configuration)``, without the line when it is unknown.
    pub fn setting(&self, key: &str) -> String {
        match self.pos.line {
            0 => format!("`{key}` in the site configuration"),
            line => format!("`{key}` (line {line} of the site configuration)"),
        }
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Located<T> {}

impl<T> From<T> for Located<T> {
    fn from(value: T) -> Self {
        Located::new(value)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let loc = spanned.referenced;
        Ok(Located {
            value: spanned.value,
            pos: Pos::new(
                u32::try_from(loc.line()).unwrap_or(u32::MAX),
                u32::try_from(loc.column()).unwrap_or(u32::MAX),
            ),
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_is_named_with_its_line_when_known() {
        let url = Located::at("ldap://x".to_string(), Pos::new(2, 8));
        assert_eq!(
            url.setting("ldap.url"),
            "`ldap.url` (line 2 of the site configuration)"
        );
        assert_eq!(
            Located::new(1).setting("x"),
            "`x` in the site configuration"
        );
    }
}
