//! How a Kubernetes API server (v1.33) stores an object after a
//! server-side apply: defaults filled in, quantities canonical, empty lists
//! and nulls dropped, bookkeeping metadata and status added. The fake API
//! server (`fakekube`) stores objects through it, and the reconciler's plan
//! tests build "live" objects with it (included there by path), so both
//! test the no-false-drift rule against one model of the server. Depends on
//! `serde_json` only for that reason.

use serde_json::{Value, json};

/// `applied` as the server returns it; `version` numbers `uid` and
/// `resourceVersion`.
pub fn stored(mut v: Value, version: u64) -> Value {
    canonical("", &mut v);
    let kind = v["kind"].as_str().unwrap_or_default().to_string();
    let meta = &mut v["metadata"];
    meta["uid"] = json!(format!("00000000-0000-4000-8000-{version:012}"));
    meta["resourceVersion"] = json!(version.to_string());
    meta["creationTimestamp"] = json!("2026-11-26T10:00:00Z");
    meta["managedFields"] = json!([{"manager": "berth", "operation": "Apply"}]);
    match kind.as_str() {
        "Namespace" => {
            let name = v["metadata"]["name"].clone();
            v["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            v["spec"] = json!({"finalizers": ["kubernetes"]});
            v["status"] = json!({"phase": "Active"});
        }
        "Deployment" => {
            v["metadata"]["generation"] = json!(1);
            v["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("1");
            let replicas = v["spec"]["replicas"].as_i64().unwrap_or(1);
            let spec = &mut v["spec"];
            spec["revisionHistoryLimit"] = json!(10);
            spec["progressDeadlineSeconds"] = json!(600);
            spec["template"]["metadata"]["creationTimestamp"] = Value::Null;
            let pod = &mut spec["template"]["spec"];
            pod["restartPolicy"] = json!("Always");
            pod["dnsPolicy"] = json!("ClusterFirst");
            pod["schedulerName"] = json!("default-scheduler");
            pod["securityContext"] = json!({});
            pod["terminationGracePeriodSeconds"] = json!(30);
            for c in pod["containers"].as_array_mut().into_iter().flatten() {
                c["imagePullPolicy"] = json!("IfNotPresent");
                c["terminationMessagePath"] = json!("/dev/termination-log");
                c["terminationMessagePolicy"] = json!("File");
                for p in c["ports"].as_array_mut().into_iter().flatten() {
                    p["protocol"] = json!("TCP");
                }
            }
            for vol in pod["volumes"].as_array_mut().into_iter().flatten() {
                vol["persistentVolumeClaim"]["readOnly"] = json!(false);
            }
            v["status"] = json!({"replicas": replicas, "readyReplicas": replicas,
                                 "availableReplicas": replicas, "observedGeneration": 1});
        }
        "Service" => {
            let spec = &mut v["spec"];
            spec["clusterIP"] = json!("10.96.12.34");
            spec["clusterIPs"] = json!(["10.96.12.34"]);
            spec["type"] = json!("ClusterIP");
            spec["sessionAffinity"] = json!("None");
            spec["ipFamilies"] = json!(["IPv4"]);
            spec["ipFamilyPolicy"] = json!("SingleStack");
            spec["internalTrafficPolicy"] = json!("Cluster");
            for p in spec["ports"].as_array_mut().into_iter().flatten() {
                p["protocol"] = json!("TCP");
            }
        }
        "Ingress" => {
            v["spec"]["ingressClassName"] = json!("nginx");
            v["status"] = json!({"loadBalancer": {}});
        }
        "PersistentVolumeClaim" => {
            v["spec"]["volumeName"] = json!("pvc-1234");
            v["spec"]["storageClassName"] = json!("standard");
            v["spec"]["volumeMode"] = json!("Filesystem");
            v["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}});
        }
        "ResourceQuota" => {
            v["status"] = json!({"hard": v["spec"]["hard"].clone(), "used": {"pods": "1"}});
        }
        _ => {}
    }
    v
}

/// Quantities as the server prints them (`268435456` → `256Mi`,
/// `1000m` → `1`), empty lists and nulls dropped.
fn canonical(key: &str, v: &mut Value) {
    const QUANTITIES: &[&str] = &[
        "limits",
        "requests",
        "hard",
        "default",
        "defaultRequest",
        "max",
        "min",
    ];
    match v {
        Value::Object(map) => {
            map.retain(|_, x| match x {
                Value::Array(a) => !a.is_empty(),
                Value::Null => false,
                _ => true,
            });
            let quantities = QUANTITIES.contains(&key);
            for (k, x) in map.iter_mut() {
                if quantities && let Value::String(s) = x {
                    if let Ok(n) = s.parse::<u64>()
                        && n >= 1 << 20
                        && n % (1 << 20) == 0
                    {
                        *s = format!("{}Mi", n >> 20);
                    } else if let Some(m) = s.strip_suffix('m').and_then(|m| m.parse::<u64>().ok())
                        && m % 1000 == 0
                    {
                        *s = (m / 1000).to_string();
                    }
                }
                canonical(k, x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| canonical(key, x)),
        _ => {}
    }
}
