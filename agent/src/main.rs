use std::process::ExitCode;

use clap::Parser;
use edge_agent::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let args = Cli::parse();
    edge_agent::logging::init(args.verbose);
    let result = match &args.command {
        Command::Run { config } => edge_agent::daemon::run(config).map(|stopped| match stopped {
            edge_agent::daemon::Stopped::Clean => ExitCode::SUCCESS,
            edge_agent::daemon::Stopped::Abandoned => ExitCode::from(edge_agent::daemon::EXIT_ABANDONED),
        }),
        Command::CheckConfig { config } => Ok(cli::check_config::run(config)),
        Command::Analyze(a) => cli::analyze::run(a),
        Command::Models { action, dir, config } => models_dir(dir.as_deref(), config.as_deref()).and_then(|dir| cli::models_cmd::run(action, &dir)),
        Command::Users { action, config, file } => match file {
            Some(f) => cli::users_cmd::run(action, f),
            None => edge_config::load_file(config).map_err(anyhow::Error::from).and_then(|c| cli::users_cmd::run(action, &edge_agent::daemon::users_file(&c))),
        },
        Command::Policy { action } => cli::policy_cmd::run(action),
        Command::Audit { action, config, dir } => match dir {
            Some(d) => cli::audit(action, d),
            None => edge_config::load_file(config).map_err(anyhow::Error::from).and_then(|c| cli::audit(action, &c.storage.state_dir.join("audit"))),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn models_dir(dir: Option<&std::path::Path>, config: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    Ok(match (dir, config) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(c)) => edge_config::load_file(c)?.models.dir,
        (None, None) => cli::default_models().dir,
    })
}
