//! GPU utilisation from the NVIDIA DCGM exporter's Prometheus text: per
//! whole card `DCGM_FI_DEV_GPU_UTIL` (percent), per MIG instance
//! `DCGM_FI_PROF_GR_ENGINE_ACTIVE` (a ratio), labelled with the parent
//! card's `UUID` (and index `gpu`) and the instance's `GPU_I_ID`. MIG
//! instances have no `GPU_UTIL`.

use std::collections::BTreeMap;

/// Where a reading belongs: the card (its index and UUID) and, for a MIG
/// instance, its GPU instance id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reading {
    pub gpu: String,
    pub uuid: String,
    pub instance: Option<u32>,
}

/// Largest exporter answer read (a host with 16 cards and MIG writes a
/// few hundred KiB).
pub const MAX_BYTES: usize = 4 << 20;

/// Percent busy per reading, from the exporter's text.
pub fn parse(text: &str) -> BTreeMap<Reading, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let (name, scale) = if line.starts_with("DCGM_FI_DEV_GPU_UTIL{") {
            ("DCGM_FI_DEV_GPU_UTIL", 1.0)
        } else if line.starts_with("DCGM_FI_PROF_GR_ENGINE_ACTIVE{") {
            ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 100.0)
        } else {
            continue;
        };
        let Some((labels, value)) = line[name.len() + 1..].rsplit_once('}') else {
            continue;
        };
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let label = |key: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let instance = label("GPU_I_ID").and_then(|i| i.parse().ok());
        // A whole card's engine activity (no instance) says less than
        // GPU_UTIL: only instances are read from it.
        if name == "DCGM_FI_PROF_GR_ENGINE_ACTIVE" && instance.is_none() {
            continue;
        }
        out.insert(
            Reading {
                gpu: label("gpu").unwrap_or_default(),
                uuid: label("UUID").unwrap_or_default(),
                instance,
            },
            value * scale,
        );
    }
    out
}

/// The utilisation of a lendable device: a whole card by index or UUID,
/// a MIG instance by its parent card and instance id.
pub fn of(
    readings: &BTreeMap<Reading, f64>,
    id: &str,
    parent: Option<&str>,
    instance: Option<u32>,
) -> Option<f64> {
    readings.iter().find_map(|(r, v)| {
        let matches = match (parent, instance) {
            (Some(p), Some(i)) => (r.uuid == p || r.gpu == p) && r.instance == Some(i),
            _ => (r.uuid == id || r.gpu == id) && r.instance.is_none(),
        };
        matches.then_some(*v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As dcgm-exporter writes it (default counters file).
    const SAMPLE: &str = r#"# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-604ac76c",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",Hostname="gpu1"} 87
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-9a1e2b3c",device="nvidia1",modelName="NVIDIA A100-SXM4-40GB",Hostname="gpu1"} 0
# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="2",UUID="GPU-77aa",device="nvidia2",GPU_I_PROFILE="1g.5gb",GPU_I_ID="1",modelName="NVIDIA A100",Hostname="gpu1"} 0.000000
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="2",UUID="GPU-77aa",device="nvidia2",GPU_I_PROFILE="1g.5gb",GPU_I_ID="2",modelName="NVIDIA A100",Hostname="gpu1"} 0.420000
"#;

    #[test]
    fn cards_by_index_or_uuid_and_mig_instances_by_parent_and_instance() {
        let r = parse(SAMPLE);
        assert_eq!(of(&r, "0", None, None), Some(87.0));
        assert_eq!(of(&r, "GPU-9a1e2b3c", None, None), Some(0.0));
        assert_eq!(of(&r, "MIG-x", Some("GPU-77aa"), Some(2)), Some(42.0));
        assert_eq!(of(&r, "MIG-y", Some("GPU-77aa"), Some(1)), Some(0.0));
        assert_eq!(of(&r, "7", None, None), None, "no reading: not idle");
    }
}
