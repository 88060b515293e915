//! The live view of long commands (`apply`, `gc`, `export-image`, `drain`):
//! on a terminal with text output, an `indicatif` bar (done / total,
//! elapsed, an estimate) with each result line printed above it as it
//! happens; off a terminal plain lines only; with `--output json` one JSON
//! object per result per line, so logs and scripts stay clean.

use super::Output;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

pub struct Live {
    output: Output,
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Live {
    /// A bar of `total` items called `unit` (`accounts`, `images`).
    pub fn counting(total: u64, unit: &str, output: Output) -> Live {
        Live::with(
            output,
            total,
            &format!(
                "{{elapsed_precise}} [{{wide_bar}}] {{pos}}/{{len}} {unit} · {{msg}} · about {{eta}} left"
            ),
        )
    }

    /// A bar of `total` bytes (0 when unknown: the bar then just counts).
    pub fn bytes(total: u64, output: Output) -> Live {
        Live::with(
            output,
            total,
            "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} · {bytes_per_sec} · {msg} · about {eta} left",
        )
    }

    fn with(output: Output, total: u64, template: &str) -> Live {
        let live =
            matches!(output, Output::Text) && std::io::IsTerminal::is_terminal(&std::io::stdout());
        let bar = live.then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Live {
            output,
            bar,
            started: Instant::now(),
        }
    }

    pub fn is_json(&self) -> bool {
        matches!(self.output, Output::Json)
    }

    /// A result line in text mode (coloured by its marks), above the bar.
    pub fn line(&self, text: &str) {
        if self.is_json() {
            return;
        }
        let text = super::paint::paint(text);
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    /// The closing line (after [`Live::finish`]), bold on a terminal; none
    /// in JSON mode, whose lines are results only.
    pub fn summary(&self, text: &str) {
        if !self.is_json() {
            println!("{}", super::paint::paint(text));
        }
    }

    /// A result object in JSON mode, on a line of its own.
    pub fn json(&self, value: &serde_json::Value) {
        if self.is_json() {
            println!("{value}");
        }
    }

    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// More to do than the bar knew (work discovered as it goes).
    pub fn grow(&self, more: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(bar.length().unwrap_or(0) + more);
        }
    }

    /// What the bar says it is doing now.
    pub fn status(&self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    /// Takes the bar away and gives the time since the start.
    pub fn finish(&self) -> Duration {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.started.elapsed()
    }
}
