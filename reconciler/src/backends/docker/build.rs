//! Image builds on one dockerd (the Engine API's `/build`, classic
//! builder): the context tar streamed in, the account's CPU and memory
//! quota on every step, the default bridge network (never the host's),
//! base images always pulled with a credential that can pull only what the
//! student may, a time limit, each `RUN` step's processes limited as a
//! container's are; then the result pushed with Berth's own.
//! At most `per_host` builds run at once on a host.

use super::{DockerBackend, DockerError, Result};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// One build to run.
pub struct BuildJob {
    pub context: Vec<u8>,
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    /// Full references (`registry/account/name:tag`), the first one built.
    pub tags: Vec<String>,
    pub cpus: f64,
    pub memory: u64,
    pub timeout: Duration,
    pub labels: HashMap<String, String>,
    /// For pulling base images, by registry host.
    pub pull_credentials: HashMap<String, DockerCredentials>,
}

/// How a build ended when it did not produce an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildFailed {
    pub reason: String,
    pub log: String,
}

const LOG_CAP: usize = 1024 * 1024;

impl DockerBackend {
    /// Runs `job`; the built image's id and the log, or why it failed.
    /// `on_step` hears each Dockerfile step as it begins.
    pub async fn build(
        &self,
        job: BuildJob,
        on_step: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<std::result::Result<(String, String), BuildFailed>> {
        let _slot = self.build_slots.acquire().await;
        let Some(first) = job.tags.first().cloned() else {
            return Ok(Err(BuildFailed {
                reason: "no tag to build".into(),
                log: String::new(),
            }));
        };
        let period = 100_000i32;
        let memory = i32::try_from(job.memory).unwrap_or(i32::MAX);
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(&job.dockerfile)
            .t(&first)
            .pull("1")
            .rm(true)
            .forcerm(true)
            .nocache(false)
            .memory(memory)
            // No swap beyond the memory limit.
            .memswap(memory)
            .cpuperiod(period)
            .cpuquota(((job.cpus * f64::from(period)) as i32).max(1000))
            .networkmode("default")
            .buildargs(&job.args.clone().into_iter().collect())
            .labels(&job.labels)
            .build();
        let mut log = String::new();
        let push_log = |log: &mut String, text: &str| {
            if log.len() < LOG_CAP {
                log.push_str(text);
            }
        };
        let stream = self.docker.build_image(
            options,
            Some(job.pull_credentials.clone()),
            Some(bollard::body_full(bytes::Bytes::from(job.context))),
        );
        let run = async {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                            if text.starts_with("Step ") {
                                on_step(text.trim_end());
                            }
                            if let Some(step) = running_in(text) {
                                self.confine_step(step).await;
                            }
                            push_log(&mut log, text);
                            if !text.ends_with('\n') && info.status.is_some() {
                                push_log(&mut log, "\n");
                            }
                        }
                        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                            push_log(&mut log, &format!("{detail}\n"));
                            return Err(detail);
                        }
                    }
                    Err(bollard::errors::Error::DockerStreamError { error }) => {
                        push_log(&mut log, &format!("{error}\n"));
                        return Err(error);
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(()))
        };
        let outcome = tokio::time::timeout(job.timeout, run).await;
        let failed = |reason: String, log: String| Ok(Err(BuildFailed { reason, log }));
        match outcome {
            Err(_) => {
                return failed(
                    format!(
                        "the build took longer than the site's {} s limit",
                        job.timeout.as_secs()
                    ),
                    log,
                );
            }
            Ok(Err(why)) => return failed(explain(&why), log),
            // dockerd itself failing is an error to retry, not a verdict.
            Ok(Ok(Err(e))) => return Err(Self::api("build", &first)(e)),
            Ok(Ok(Ok(()))) => {}
        }
        let id = match self.docker.inspect_image(&first).await {
            Ok(image) => image.id.unwrap_or_default(),
            Err(e) => return failed(format!("the build left no image: {e}"), log),
        };
        for tag in &job.tags[1..] {
            let (repo, tag) = super::images::split_tag(tag);
            let opts = TagImageOptionsBuilder::default()
                .repo(repo)
                .tag(tag)
                .build();
            self.docker
                .tag_image(&first, Some(opts))
                .await
                .map_err(Self::api("tag", &first))?;
        }
        Ok(Ok((id, log)))
    }

    /// Pushes `image` (`registry/account/name:tag`) with Berth's credential.
    pub async fn push(&self, image: &str) -> Result<()> {
        let (repo, tag) = super::images::split_tag(image);
        let credentials = self.credentials_for(image, "pull,push");
        let opts = PushImageOptionsBuilder::default().tag(tag).build();
        let mut stream = self.docker.push_image(repo, Some(opts), credentials);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| DockerError::Pull {
                image: image.to_string(),
                message: format!("push: {e}"),
            })?;
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Pull {
                    image: image.to_string(),
                    message: format!("push: {message}"),
                });
            }
        }
        Ok(())
    }
}

/// The container a `RUN` step runs in, from the classic builder's
/// ` ---> Running in 3f2a…` line.
fn running_in(text: &str) -> Option<&str> {
    let id = text.trim().strip_prefix("---> Running in ")?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

impl DockerBackend {
    /// The build API takes no PIDs limit: each `RUN` step's container gets
    /// the one every student container has as soon as the builder names
    /// it, so a fork bomb in a Dockerfile meets the same bound (the step's
    /// first milliseconds are bounded by its memory limit alone).
    async fn confine_step(&self, container: &str) {
        let limit = bollard::models::ContainerUpdateBody {
            pids_limit: Some(berth_core::desired::PIDS_LIMIT),
            ..Default::default()
        };
        if let Err(e) = self.docker.update_container(container, limit).await {
            // The step may have ended already; nothing to confine then.
            tracing::debug!(container, cause = %e, "build step: PIDs limit");
        }
    }
}

/// The builder's words, with what a student can do about the common ones.
fn explain(why: &str) -> String {
    if why.contains("returned a non-zero code: 137") {
        format!("{why} (killed: the step used more memory than the account's quota)")
    } else {
        why.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::running_in;

    #[test]
    fn the_step_container_is_read_from_the_builders_line() {
        assert_eq!(
            running_in(" ---> Running in 3f2a9c1b0d4e\n"),
            Some("3f2a9c1b0d4e")
        );
        assert_eq!(running_in("Step 2/4 : RUN make\n"), None);
        assert_eq!(running_in(" ---> Running in ../../etc\n"), None);
    }
}
