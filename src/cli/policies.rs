//! `podguard policies lint|list`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::checks;

/// Subcommands of `podguard policies`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate policy files; exit 2 on any error, naming file, document, line and field.
    Lint {
        /// Policy files or folders.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List policies (the built-in library when no path is given) and the built-in checks.
    List {
        /// Policy files or folders.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

/// Runs the subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let (paths, list) = match cmd {
        Command::Lint { paths } => (paths, false),
        Command::List { paths } => (paths, true),
    };
    let set = match super::check::load_policies(&paths) {
        Ok(set) => set,
        Err(errors) => {
            for e in &errors {
                eprintln!("podguard: policy error: {e}");
            }
            eprintln!("{} error{}", errors.len(), if errors.len() == 1 { "" } else { "s" });
            return Ok(ExitCode::from(2));
        }
    };
    if !list {
        println!("{} polic{} OK", set.policies().len(), if set.policies().len() == 1 { "y" } else { "ies" });
        return Ok(ExitCode::SUCCESS);
    }
    for p in set.policies() {
        let mode = p.mode.map_or("enforce (default)", |m| m.as_str());
        println!("{}  [{}; severity {}; mode {}]", p.name, p.origin, p.severity.as_str(), mode);
        if !p.source.spec.description.is_empty() {
            println!("    {}", p.source.spec.description.trim());
        }
        for r in &p.source.spec.rules {
            let what = r.check.as_deref().map_or_else(|| "cel".to_owned(), |c| format!("check {c}"));
            println!("    rule {}: {what}", r.name);
        }
        if !p.controls.is_empty() {
            let c: Vec<String> = p.controls.iter().map(|c| format!("{}:{}", c.framework, c.id)).collect();
            println!("    controls: {}", c.join(", "));
        }
    }
    println!("\nbuilt-in checks:");
    for d in checks::all() {
        println!("  {:<38} {}", d.name, d.summary);
    }
    Ok(ExitCode::SUCCESS)
}
