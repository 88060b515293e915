//! The narrow operations the student console needs on one dockerd: logs,
//! a TTY exec, files in and out as tar, start/stop/restart and an image as
//! a `docker save` stream. Each takes an [`Owned`], which only
//! [`DockerBackend::owned`] makes: it inspects the container and checks
//! its `berth.owner` label (never a name built from a URL), and refuses the
//! runner container, which mounts the host's Docker socket.

use super::{DockerBackend, DockerError, Result};
use berth_core::desired::LABEL_OWNER;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, LogsOptionsBuilder, RestartContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::{Stream, StreamExt};
use std::pin::Pin;

/// A container the console may touch for an account, as dockerd says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub id: String,
    pub name: String,
    /// The endpoint (this backend) it runs on.
    pub endpoint: String,
    pub account: String,
    pub running: bool,
}

/// What the console wants to do, so the runner is refused where it must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Logs, start/stop/restart: any own container, the runner included.
    Operate,
    /// A terminal or files: never the runner (it holds the host's socket).
    Enter,
}

pub type ByteStream =
    Pin<Box<dyn Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> + Send>>;

/// A terminal: the exec's output, and where its input goes.
pub struct Tty {
    pub exec: String,
    pub output:
        Pin<Box<dyn Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>> + Send>>,
    pub input: Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl DockerBackend {
    /// The container `name` if it belongs to `account` (by its label) and
    /// may be used for `purpose`; `None` otherwise, whatever the reason,
    /// so a missing and a foreign container look the same.
    pub async fn owned(
        &self,
        account: &str,
        name: &str,
        purpose: Purpose,
    ) -> Result<Option<Owned>> {
        let inspected = match self.docker.inspect_container(name, None).await {
            Ok(c) => c,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Ok(None);
            }
            Err(e) => return Err(Self::api("inspect", name)(e)),
        };
        let labels = inspected
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        if labels.get(LABEL_OWNER).map(String::as_str) != Some(account) {
            return Ok(None);
        }
        let full = inspected
            .name
            .as_deref()
            .unwrap_or(name)
            .trim_start_matches('/')
            .to_string();
        // By what a container is, not its name: one Berth is replacing
        // (`….berth-next`, left behind if serve died mid-recreate) is
        // Berth's, and one with a bind mount (the runner's Docker socket:
        // students' containers have named volumes only) is never entered.
        if full.ends_with(super::TEMP_SUFFIX) {
            return Ok(None);
        }
        let binds = inspected
            .mounts
            .iter()
            .flatten()
            .any(|m| m.typ.as_deref() != Some("volume"));
        if purpose == Purpose::Enter
            && (binds || full == berth_core::runner::container_name(account))
        {
            return Ok(None);
        }
        Ok(Some(Owned {
            id: inspected.id.unwrap_or_default(),
            name: full,
            endpoint: self.name.clone(),
            account: account.to_string(),
            running: inspected.state.and_then(|s| s.running).unwrap_or(false),
        }))
    }

    /// The last `tail` lines, then (with `follow`) new ones as they come.
    pub fn logs_owned(&self, c: &Owned, tail: u32, follow: bool) -> ByteStream {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .follow(follow)
            .tail(&tail.to_string())
            .build();
        Box::pin(self.docker.logs(&c.id, Some(opts)).map(|item| {
            item.map(|o| o.into_bytes())
                .map_err(|e| std::io::Error::other(e.to_string()))
        }))
    }

    /// Starts `command` in the container with a TTY.
    pub async fn tty_owned(&self, c: &Owned, command: &[String]) -> Result<Tty> {
        let exec = self
            .docker
            .create_exec(
                &c.id,
                CreateExecOptions::<String> {
                    cmd: Some(command.to_vec()),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    env: Some(vec!["TERM=xterm-256color".into()]),
                    ..Default::default()
                },
            )
            .await
            .map_err(Self::api("exec", &c.name))?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: true,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(Self::api("exec", &c.name))?;
        match started {
            StartExecResults::Attached { output, input } => Ok(Tty {
                exec: exec.id,
                output,
                input,
            }),
            StartExecResults::Detached => Err(DockerError::Upload {
                name: c.name.clone(),
                message: "the terminal detached".into(),
            }),
        }
    }

    pub async fn resize(&self, exec: &str, cols: u16, rows: u16) -> Result<()> {
        self.docker
            .resize_exec(
                exec,
                ResizeExecOptions {
                    height: rows,
                    width: cols,
                },
            )
            .await
            .map_err(Self::api("resize", exec))
    }

    /// Unpacks `tar` into directory `path` of the container.
    pub async fn upload_owned(&self, c: &Owned, path: &str, tar: ByteStream) -> Result<()> {
        let opts = UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        let body = bollard::body_try_stream(tar);
        self.docker
            .upload_to_container(&c.id, Some(opts), body)
            .await
            .map_err(Self::api("upload to", &c.name))
    }

    /// `path` of the container as a tar stream.
    pub fn download_owned(&self, c: &Owned, path: &str) -> ByteStream {
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        Box::pin(
            self.docker
                .download_from_container(&c.id, Some(opts))
                .map(|r| r.map_err(|e| std::io::Error::other(e.to_string()))),
        )
    }

    /// Starts it as the plan's Start does (already running is fine).
    pub async fn start_owned(&self, c: &Owned) -> Result<()> {
        self.start(&c.id, &c.name).await
    }

    /// Stops it as the plan's Stop does (already stopped is fine).
    pub async fn stop_owned(&self, c: &Owned) -> Result<()> {
        self.stop_by_id(&c.id, &c.name).await
    }

    pub async fn restart_owned(&self, c: &Owned) -> Result<()> {
        let opts = RestartContainerOptionsBuilder::default()
            .t(super::STOP_TIMEOUT_SECS)
            .build();
        self.docker
            .restart_container(&c.id, Some(opts))
            .await
            .map_err(Self::api("restart", &c.name))
    }

    /// `image` as a `docker save` archive stream, pulled first (with
    /// Berth's credentials) when this host lacks it. The caller checks
    /// that the account may use the image.
    pub async fn save(&self, image: &str) -> Result<ByteStream> {
        if self.docker.inspect_image(image).await.is_err() {
            self.pull(image).await?;
        }
        Ok(Box::pin(self.docker.export_image(image).map(|r| {
            r.map_err(|e| std::io::Error::other(e.to_string()))
        })))
    }
}
