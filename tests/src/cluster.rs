//! The real Kubernetes control plane `scripts/test.sh` starts
//! (`scripts/lib/kube.sh`: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok's simulated nodes): its admin client, a
//! student's client from the kubeconfig Berth issues, access reviews, and
//! namespaces removed when a test ends.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use std::future::Future;
use std::path::PathBuf;

/// A cluster reached with its admin's kubeconfig.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub admin: Client,
    rt: tokio::runtime::Runtime,
    namespaces: std::sync::Mutex<Vec<String>>,
}

impl Cluster {
    /// The cluster of `BERTH_KUBECONFIG` (the harness's, or any cluster an
    /// admin points it at), or `None`: skipped, unless `BERTH_E2E_REQUIRED`
    /// is set, when a missing cluster fails the test.
    pub fn from_env() -> Option<Cluster> {
        let kubeconfig = crate::required_var(
            "BERTH_KUBECONFIG",
            "the control plane scripts/test.sh starts, or an admin's cluster",
        )?;
        let kubeconfig = PathBuf::from(kubeconfig);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let admin = rt.block_on(async {
            let kc =
                kube::config::Kubeconfig::read_from(&kubeconfig).expect("BERTH_KUBECONFIG reads");
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .expect("admin config");
            Client::try_from(cfg).expect("admin client")
        });
        Some(Cluster {
            kubeconfig,
            admin,
            rt,
            namespaces: Default::default(),
        })
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The admin's API for `K` in `namespace`.
    pub fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.admin.clone(), namespace)
    }

    /// `K` named `name` in `namespace`, if it exists.
    pub fn get<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        self.block_on(self.api::<K>(namespace).get_opt(name))
            .unwrap_or_else(|e| panic!("get {name} in {namespace}: {e}"))
    }

    /// Creates `object` as the admin (a hand-made object Berth did not make).
    pub fn create<K>(&self, namespace: &str, object: &K) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        self.block_on(
            self.api::<K>(namespace)
                .create(&PostParams::default(), object),
        )
        .unwrap_or_else(|e| panic!("create in {namespace}: {e}"))
    }

    /// A client for the kubeconfig `reconciler kubeconfig` printed.
    pub fn student(&self, printed: &str) -> Client {
        let yaml = printed
            .find("apiVersion")
            .map(|i| &printed[i..])
            .unwrap_or(printed);
        self.block_on(async {
            let kc = kube::config::Kubeconfig::from_yaml(yaml).expect("kubeconfig parses");
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .expect("student config");
            Client::try_from(cfg).expect("student client")
        })
    }

    /// Whether `client` may `verb` `resource` (`pods`, `pods/log`) in
    /// `namespace`, as the API server's authorizer answers it. Used where
    /// the request itself needs a kubelet (logs, exec) and none serves here.
    pub fn may(&self, client: &Client, namespace: &str, verb: &str, resource: &str) -> bool {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (resource, None),
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.into()),
                    verb: Some(verb.into()),
                    resource: Some(resource.into()),
                    subresource,
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let answer = self
            .block_on(api.create(&PostParams::default(), &review))
            .unwrap_or_else(|e| panic!("access review: {e}"));
        answer.status.is_some_and(|s| s.allowed)
    }

    /// Deletes `namespace` when this cluster handle is dropped (Berth never
    /// deletes namespaces; tests clean up after themselves on real clusters).
    pub fn forget_at_end(&self, namespace: &str) {
        if let Ok(mut all) = self.namespaces.lock() {
            all.push(namespace.to_string());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let all = self
            .namespaces
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        let api: Api<Namespace> = Api::all(self.admin.clone());
        for ns in all {
            let _ = self
                .rt
                .block_on(api.delete(&ns, &DeleteParams::background()));
        }
    }
}
