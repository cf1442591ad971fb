//! Log output: human-readable lines with fields, no colours or timestamps under systemd (journald adds its
//! own), and ONNX Runtime's chatter kept to errors.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
pub fn init(verbose: bool) {
    let default = if verbose { "debug,ort=warn" } else { "info,ort=error" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let result =
        if under_journald { builder.without_time().with_ansi(false).try_init() } else { builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init() };
    // A subscriber may already be installed (tests); keep it.
    let _ = result;
}
