//! `reconciler schema`: prints the JSON Schema generated from the spec types.

use super::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the schema of site.yaml instead of workspace.yaml.
    #[arg(long)]
    site: bool,
    /// A Markdown reference of every key instead of the JSON Schema (what
    /// the documentation site's references are generated with).
    #[arg(long)]
    markdown: bool,
}

pub fn run(args: &Args) -> u8 {
    let schema = if args.site {
        berth_spec::schema::site()
    } else {
        berth_spec::schema::workspace()
    };
    if args.markdown {
        let title = if args.site {
            "site.yaml reference"
        } else {
            "workspace.yaml reference"
        };
        let value = serde_json::to_value(&schema).unwrap_or_default();
        print!("{}", super::schema_markdown::render(title, &value));
        return exit::OK;
    }
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
