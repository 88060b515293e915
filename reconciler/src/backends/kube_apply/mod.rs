//! Talks to the cluster for the Kubernetes backend: server-side apply of
//! Berth's manifests with field manager `berth` (forced, so Berth owns the
//! fields it sets and a student's `kubectl edit` of them is reverted),
//! deletion of objects the plan prunes, and observation of Berth-labelled
//! objects and pods. No decisions here: the plan makes them.

use berth_core::desired::kube::KubeObject;
use berth_core::desired::{LABEL_NAME, LABEL_OWNER};
use berth_core::plan::{KubeObserved, PodState};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use std::collections::BTreeMap;

pub const FIELD_MANAGER: &str = "berth";

#[derive(Debug, thiserror::Error)]
#[error("kubernetes {op} {kind} {name}: {reason}")]
pub struct KubeError {
    pub op: &'static str,
    pub kind: String,
    pub name: String,
    /// The API server's answer (`403 Forbidden: …`) or the client's error.
    pub reason: String,
}

impl KubeError {
    fn new(op: &'static str, kind: &str, name: &str, e: kube::Error) -> KubeError {
        let reason = match &e {
            kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
            other => other.to_string(),
        };
        KubeError {
            op,
            kind: kind.to_string(),
            name: name.to_string(),
            reason,
        }
    }
}

/// A kind Berth manages: its API resource and whether it lives in a
/// namespace.
struct Kind {
    name: &'static str,
    resource: fn() -> ApiResource,
    namespaced: bool,
}

fn erase<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// Every kind Berth applies and [`KubeBackend::observe`] lists, in apply
/// order. Pods are only read.
const KINDS: &[Kind] = &[
    Kind {
        name: "Namespace",
        resource: erase::<Namespace>,
        namespaced: false,
    },
    Kind {
        name: "ResourceQuota",
        resource: erase::<ResourceQuota>,
        namespaced: true,
    },
    Kind {
        name: "LimitRange",
        resource: erase::<LimitRange>,
        namespaced: true,
    },
    Kind {
        name: "NetworkPolicy",
        resource: erase::<NetworkPolicy>,
        namespaced: true,
    },
    Kind {
        name: "ServiceAccount",
        resource: erase::<ServiceAccount>,
        namespaced: true,
    },
    Kind {
        name: "Role",
        resource: erase::<Role>,
        namespaced: true,
    },
    Kind {
        name: "RoleBinding",
        resource: erase::<RoleBinding>,
        namespaced: true,
    },
    Kind {
        name: "PersistentVolumeClaim",
        resource: erase::<PersistentVolumeClaim>,
        namespaced: true,
    },
    Kind {
        name: "Deployment",
        resource: erase::<Deployment>,
        namespaced: true,
    },
    Kind {
        name: "Service",
        resource: erase::<Service>,
        namespaced: true,
    },
    Kind {
        name: "Ingress",
        resource: erase::<Ingress>,
        namespaced: true,
    },
];

#[derive(Clone)]
pub struct KubeBackend {
    client: Client,
}

impl KubeBackend {
    pub fn new(client: Client) -> Self {
        KubeBackend { client }
    }

    /// The API of `kind`: in `namespace`, or cluster-wide (`None`).
    fn api(&self, kind: &str, namespace: Option<&str>) -> Result<Api<DynamicObject>, KubeError> {
        let k = KINDS
            .iter()
            .find(|k| k.name == kind)
            .ok_or_else(|| KubeError {
                op: "handle",
                kind: kind.to_string(),
                name: String::new(),
                reason: "not a kind Berth manages".into(),
            })?;
        Ok(self.api_of(k, namespace))
    }

    fn api_of(&self, k: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = (k.resource)();
        match (k.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Server-side applies one object.
    pub async fn apply(&self, o: &KubeObject) -> Result<(), KubeError> {
        let api = self.api(&o.kind, o.namespace.as_deref())?;
        api.patch(
            &o.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&o.value),
        )
        .await
        .map(drop)
        .map_err(|e| KubeError::new("apply", &o.kind, &o.describe_name(), e))
    }

    /// Refuses an object of the same name that Berth did not create for
    /// `account`: a forced apply would otherwise take it over.
    pub async fn check_owner(&self, o: &KubeObject, account: &str) -> Result<(), KubeError> {
        let api = self.api(&o.kind, o.namespace.as_deref())?;
        let existing = api
            .get_opt(&o.name)
            .await
            .map_err(|e| KubeError::new("read", &o.kind, &o.describe_name(), e))?;
        match existing {
            None => Ok(()),
            Some(obj) if obj.metadata.labels.as_ref().and_then(|l| l.get(LABEL_OWNER))
                == Some(&account.to_string()) =>
            {
                Ok(())
            }
            Some(_) => Err(KubeError {
                op: "apply",
                kind: o.kind.clone(),
                name: o.describe_name(),
                reason: "an object of that name exists and was not created by Berth for this account; it is left alone".into(),
            }),
        }
    }

    /// Deletes one object; already gone is fine.
    pub async fn delete(&self, kind: &str, namespace: &str, name: &str) -> Result<(), KubeError> {
        let api = self.api(kind, Some(namespace))?;
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(KubeError::new(
                "delete",
                kind,
                &format!("{namespace}/{name}"),
                e,
            )),
        }
    }

    /// Berth's objects and pods by account: every account (`None`) with one
    /// cluster-wide list per kind, or one account's namespace. Only objects
    /// labelled with an owner *and* inside that owner's namespace count, so
    /// nothing outside Berth's namespaces can ever be pruned.
    pub async fn observe(
        &self,
        prefix: &str,
        account: Option<&str>,
    ) -> Result<BTreeMap<String, KubeObserved>, KubeError> {
        let selector = match account {
            Some(a) => format!("{LABEL_OWNER}={a}"),
            None => LABEL_OWNER.to_string(),
        };
        let params = ListParams::default().labels(&selector);
        let namespace = account.map(|a| format!("{prefix}{a}"));
        let mut out: BTreeMap<String, KubeObserved> = BTreeMap::new();
        // One list per kind, all in flight at once: observation sits on the
        // push-to-running path.
        let lists = futures::future::try_join_all(KINDS.iter().map(|kind| {
            let (params, namespace) = (&params, namespace.as_deref());
            async move {
                let list = self
                    .api_of(kind, namespace)
                    .list(params)
                    .await
                    .map_err(|e| {
                        KubeError::new("list", kind.name, namespace.unwrap_or("(all)"), e)
                    })?;
                Ok::<_, KubeError>((kind, list))
            }
        }));
        let pods: Api<Pod> = match &namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let (lists, pod_list) = futures::future::try_join(lists, async {
            pods.list(&params).await.map_err(|e| {
                KubeError::new("list", "Pod", namespace.as_deref().unwrap_or("(all)"), e)
            })
        })
        .await?;
        for (kind, list) in lists {
            let ar = (kind.resource)();
            for item in list.items {
                let Some(owner) = item
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_OWNER))
                else {
                    continue;
                };
                let home = format!("{prefix}{owner}");
                let name = item.metadata.name.clone().unwrap_or_default();
                let inside = match &item.metadata.namespace {
                    Some(ns) => *ns == home,
                    None => name == home,
                };
                if !inside {
                    continue;
                }
                let mut value = serde_json::to_value(&item).unwrap_or_default();
                // List items come without their type; the desired side has it.
                value["apiVersion"] = ar.api_version.clone().into();
                value["kind"] = ar.kind.clone().into();
                out.entry(owner.clone())
                    .or_default()
                    .objects
                    .push(KubeObject {
                        kind: kind.name.to_string(),
                        namespace: item.metadata.namespace.clone(),
                        name,
                        value,
                    });
            }
        }
        for pod in pod_list.items {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let Some(owner) = labels.get(LABEL_OWNER) else {
                continue;
            };
            if pod.metadata.namespace.as_deref() != Some(&format!("{prefix}{owner}")) {
                continue;
            }
            out.entry(owner.clone())
                .or_default()
                .pods
                .push(pod_state(&pod, &labels));
        }
        Ok(out)
    }

    /// A bound token of the student's service account, valid for `lifetime`.
    pub async fn student_token(
        &self,
        namespace: &str,
        lifetime: std::time::Duration,
    ) -> Result<String, KubeError> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = api
            .create_token_request(
                berth_core::desired::kube::STUDENT,
                &kube::api::PostParams::default(),
                &request,
            )
            .await
            .map_err(|e| KubeError::new("create token for", "ServiceAccount", namespace, e))?;
        Ok(created.status.map(|s| s.token).unwrap_or_default())
    }
}

fn pod_state(pod: &Pod, labels: &BTreeMap<String, String>) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    // A pod no node can take has no container status at all: only the
    // scheduler's condition says why (no node with a free GPU, say).
    let unscheduled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| (c.reason.clone(), c.message.clone()));
    let first = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .next();
    let waiting = first.as_ref().and_then(|c| c.state.clone()).and_then(|s| {
        s.waiting
            .map(|w| (w.reason, w.message))
            .or(s.terminated.map(|t| (t.reason, t.message)))
    });
    let (reason, message) = waiting.or(unscheduled).unwrap_or_default();
    PodState {
        name: pod.metadata.name.clone().unwrap_or_default(),
        workload: labels.get(LABEL_NAME).cloned().unwrap_or_default(),
        phase: status.phase.unwrap_or_else(|| "Unknown".into()),
        ready: first.as_ref().is_some_and(|c| c.ready),
        restarts: first.as_ref().map_or(0, |c| c.restart_count),
        reason,
        message,
    }
}

#[cfg(test)]
mod tests;

impl KubeBackend {
    /// Logs of the first pod of Deployment `name` in `namespace`, if the
    /// Deployment's `berth.owner` is `account` (`None` otherwise): the
    /// last `tail` lines, then (with `follow`) new ones.
    pub async fn workload_logs(
        &self,
        account: &str,
        namespace: &str,
        name: &str,
        tail: i64,
        follow: bool,
    ) -> Result<Option<crate::backends::docker::ByteStream>, KubeError> {
        use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
        let err = |op: &'static str, kind: &str, e: kube::Error| KubeError {
            op,
            kind: kind.to_string(),
            name: format!("{namespace}/{name}"),
            reason: e.to_string(),
        };
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let Some(d) = deployments
            .get_opt(name)
            .await
            .map_err(|e| err("get", "Deployment", e))?
        else {
            return Ok(None);
        };
        let owner = d.metadata.labels.as_ref().and_then(|l| l.get(LABEL_OWNER));
        if owner.map(String::as_str) != Some(account) {
            return Ok(None);
        }
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| err("list", "Pod", e))?;
        let Some(pod) = list.items.first().and_then(|p| p.metadata.name.clone()) else {
            let none: crate::backends::docker::ByteStream =
                Box::pin(futures::stream::once(async {
                    Ok(bytes::Bytes::from_static(b"[no pod is running]\n"))
                }));
            return Ok(Some(none));
        };
        let params = kube::api::LogParams {
            follow,
            tail_lines: Some(tail),
            timestamps: true,
            ..Default::default()
        };
        let reader = pods
            .log_stream(&pod, &params)
            .await
            .map_err(|e| err("logs", "Pod", e))?;
        let lines = reader
            .lines()
            .map_ok(|l| bytes::Bytes::from(format!("{l}\n")))
            .map_err(std::io::Error::other)
            .boxed();
        Ok(Some(lines))
    }
}

/// A kubeconfig for `account`'s service account in its namespace, with a
/// bound token that expires after the site's `token_lifetime` (the CLI's
/// `kubeconfig` and the console's download).
pub async fn student_kubeconfig(site: &berth_spec::Site, account: &str) -> Result<String, String> {
    let (Some(settings), Some(k)) = (
        berth_core::desired::kube::Settings::from_site(site),
        site.backends.kubernetes.as_ref(),
    ) else {
        return Err("the site has no Kubernetes cluster".into());
    };
    let lifetime =
        berth_spec::site::duration_or(&k.token_lifetime, std::time::Duration::from_secs(8 * 3600));
    let config = crate::clients::kube_config(k.kubeconfig.as_deref(), k.context.as_deref())
        .await
        .map_err(|e| format!("no cluster configuration: {e}"))?;
    let client = kube::Client::try_from(config.clone()).map_err(|e| e.to_string())?;
    let namespace = settings.namespace(account);
    let token = KubeBackend::new(client)
        .student_token(&namespace, lifetime)
        .await
        .map_err(|e| e.to_string())?;
    let ca = config.root_cert.clone().unwrap_or_default();
    Ok(berth_core::desired::kube::kubeconfig(
        &config.cluster_url.to_string(),
        &ca,
        &namespace,
        account,
        &token,
    ))
}
