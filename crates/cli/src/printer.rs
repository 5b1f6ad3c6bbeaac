//! All output goes through here: results on stdout, progress on stderr, `--quiet` and
//! `--json` honoured in one place.

// The one place that prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use imgtool_core::{CopyEvent, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub quiet: bool,
    pub json: bool,
}

/// A warning on stderr, whatever --quiet or --json say: something was done that the user
/// did not quite ask for.
pub fn warn(line: impl AsRef<str>) {
    eprintln!("warning: {}", line.as_ref());
}

impl Printer {
    /// A result: `text` normally, `json` (one line) with --json.
    pub fn record(&self, json: serde_json::Value, text: impl AsRef<str>) {
        if self.json { out(&json.to_string()) } else { out(text.as_ref()) }
    }

    /// A result line on stdout.
    pub fn result(&self, line: impl AsRef<str>) {
        out(line.as_ref());
    }

    /// An error on stderr. Silent once the process is being interrupted: what fails then
    /// fails because its files and processes are being removed, which is no news.
    pub fn error(&self, line: impl AsRef<str>) {
        if !imgtool_core::is_interrupted() {
            eprintln!("error: {}", line.as_ref());
        }
    }

    /// Bytes as they are (a blob) on stdout.
    pub async fn bytes(&self, mut stream: imgtool_core::BlobStream) -> std::io::Result<u64> {
        let mut out = tokio::io::stdout();
        let n = tokio::io::copy(&mut stream, &mut out).await?;
        tokio::io::AsyncWriteExt::flush(&mut out).await?;
        Ok(n)
    }

    /// A status line on stderr (silent with --quiet).
    pub fn status(&self, line: impl AsRef<str>) {
        if !self.quiet && !self.json {
            eprintln!("{}", line.as_ref());
        }
    }

    /// A spinner for work with no byte count (building a layer) on a terminal; a plain
    /// status line elsewhere. Finish it with [`Printer::done`].
    pub fn spinner(&self, msg: String) -> Option<ProgressBar> {
        if self.quiet || self.json {
            return None;
        }
        if !std::io::stderr().is_terminal() {
            eprintln!("{msg}");
            return None;
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        bar.set_message(msg);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    }

    /// End a spinner with a line saying what was made.
    pub fn done(&self, bar: Option<ProgressBar>, line: String) {
        match bar {
            Some(b) => b.finish_with_message(line),
            None => self.status(line),
        }
    }

    /// A progress reporter for copies: bars on a terminal, plain lines otherwise.
    pub fn progress(&self) -> Option<Arc<dyn Progress>> {
        if self.quiet || self.json {
            return None;
        }
        if std::io::stderr().is_terminal() {
            Some(Arc::new(Bars { multi: MultiProgress::new(), bars: Mutex::new(HashMap::new()) }))
        } else {
            Some(Arc::new(Lines))
        }
    }
}

/// One line on stdout. A reader that went away (`| head`) ends the program quietly, as
/// it does for other Unix tools, instead of a panic.
fn out(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

fn short(d: &imgtool_core::Descriptor) -> String {
    d.digest.hex().chars().take(12).collect()
}

fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

struct Lines;

impl Progress for Lines {
    fn event(&self, event: CopyEvent) {
        match event {
            CopyEvent::Skipped(d) => eprintln!("blob {} already present", short(&d)),
            CopyEvent::Mounted(d) => eprintln!("blob {} mounted", short(&d)),
            CopyEvent::Started(d) => eprintln!("blob {} copying ({})", short(&d), human(d.size)),
            CopyEvent::Done(_) | CopyEvent::Bytes(..) | CopyEvent::Manifest(_) => {}
        }
    }
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress for Bars {
    fn event(&self, event: CopyEvent) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            CopyEvent::Started(d) => {
                let bar = self.multi.add(ProgressBar::new(d.size));
                bar.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_prefix(short(&d));
                bars.insert(d.digest.to_string(), bar);
            }
            CopyEvent::Bytes(d, n) => {
                if let Some(b) = bars.get(&d.digest.to_string()) {
                    b.inc(n);
                }
            }
            CopyEvent::Done(d) => {
                if let Some(b) = bars.remove(&d.digest.to_string()) {
                    b.finish_and_clear();
                    let _ = self.multi.println(format!("blob {} copied ({})", short(&d), human(d.size)));
                }
            }
            CopyEvent::Skipped(d) => {
                let _ = self.multi.println(format!("blob {} already present", short(&d)));
            }
            CopyEvent::Mounted(d) => {
                let _ = self.multi.println(format!("blob {} mounted", short(&d)));
            }
            CopyEvent::Manifest(_) => {}
        }
    }
}
