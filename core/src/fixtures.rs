//! Test fixtures shared by the core's unit tests and other crates' (with
//! the `fixtures` feature).

/// The project's example `site.yaml`.
pub fn example_site() -> berth_spec::Site {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/site.yaml"
    ))
    .expect("example site");
    berth_spec::parse_site(&text).expect("the example site is valid")
}
