//! Memory sizes as people write them: `512Mi`, `1G`, `1.5Gi`, `2048` (bytes).
//! Binary suffixes (Ki, Mi, Gi, Ti) and decimal ones (k/K, M, G, T) as in
//! Kubernetes quantities; the canonical form keeps what the user wrote.

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A memory size, kept as written (for messages and round-trips) and in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Memory {
    text: String,
    bytes: Result<u64, String>,
}

impl Memory {
    /// Parses; an invalid text is kept, and reported by validation with its
    /// position rather than as a parse error without one.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let bytes = parse_bytes(&text);
        Memory { text, bytes }
    }

    pub fn from_bytes(bytes: u64) -> Self {
        Memory {
            text: bytes.to_string(),
            bytes: Ok(bytes),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Bytes, or why the text is not a memory size.
    pub fn bytes(&self) -> Result<u64, &str> {
        self.bytes.as_ref().copied().map_err(String::as_str)
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A size for people to read, in binary units with one decimal:
/// `2.0 MiB`, `512 B`.
pub fn describe_bytes(n: u64) -> String {
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("memory `{text}` must be positive"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let multiplier: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => {
            return Err(format!(
                "memory `{text}` has an unknown unit; use a number of bytes or Ki, Mi, Gi, Ti, k, M, G, T"
            ));
        }
    };
    let bad = || format!("memory `{text}` is not a positive size like `512Mi` or `1G`");
    if num.is_empty() || num.matches('.').count() > 1 || num.starts_with('.') || num.ends_with('.')
    {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("memory `{text}` is too large"));
    }
    Ok(bytes as u64)
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Memory;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a memory size such as `512Mi`, `1G` or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Memory, E> {
                Ok(Memory::new(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Memory, E> {
                Ok(Memory::new(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Memory, E> {
                Ok(Memory::new(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Memory, E> {
                Ok(Memory::new(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Memory {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Memory".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Memory size: bytes, or a number with Ki, Mi, Gi, Ti, k, M, G or T (e.g. `512Mi`).",
            "anyOf": [
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|K|M|G|T)?$" },
                { "type": "integer", "minimum": 1 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(super::describe_bytes(512), "512 B");
        assert_eq!(super::describe_bytes(2 << 20), "2.0 MiB");
        assert_eq!(super::describe_bytes(1536), "1.5 KiB");
        assert_eq!(super::describe_bytes(3 << 30), "3.0 GiB");
    }

    use super::*;

    #[test]
    fn parses_binary_decimal_and_plain_units() {
        assert_eq!(Memory::new("512Mi").bytes(), Ok(512 << 20));
        assert_eq!(Memory::new("1G").bytes(), Ok(1_000_000_000));
        assert_eq!(Memory::new("1.5Gi").bytes(), Ok(3 << 29));
        assert_eq!(Memory::new("2048").bytes(), Ok(2048));
    }

    #[test]
    fn rejects_negative_unknown_and_empty() {
        for bad in ["-1", "", "Mi", "1.2.3Mi", "12MB", "1e9", ".5G", "NaN"] {
            assert!(Memory::new(bad).bytes().is_err(), "{bad:?}");
        }
        assert!(Memory::new("99999999999999999999Ti").bytes().is_err());
    }
}
