//! `reconciler schema`: prints the JSON Schema generated from the spec types.

use super::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the schema of site.yaml instead of workspace.yaml.
    #[arg(long)]
    site: bool,
}

pub fn run(args: &Args) -> u8 {
    let schema = if args.site {
        berth_spec::schema::site()
    } else {
        berth_spec::schema::workspace()
    };
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => {
            println!("{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler schema: {e}");
            exit::ERROR
        }
    }
}
