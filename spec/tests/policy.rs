//! Site policy for images: allowed registries, own namespace in the
//! department registry, and images other accounts share.

use berth_spec::policy::{Shared, image_allowed, image_allowed_with, share_key};
use berth_spec::{ImageRef, parse_site};

fn site() -> berth_spec::Site {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/site.yaml"
    ))
    .expect("example site");
    parse_site(&text).expect("valid")
}

fn img(s: &str) -> ImageRef {
    ImageRef::parse(s).expect("valid reference")
}

#[test]
fn own_namespace_allowed_registries_and_shares() {
    let site = site();
    assert!(
        image_allowed(&site, "alice", &img("nginx:1")).is_ok(),
        "docker.io is allowed"
    );
    assert!(image_allowed(&site, "alice", &img("127.0.0.1:5000/alice/tools:1")).is_ok());
    assert_eq!(
        image_allowed(&site, "bob", &img("127.0.0.1:5000/alice/tools:1")),
        Err(
            "image `127.0.0.1:5000/alice/tools:1` belongs to `alice` and is not shared with you"
                .into()
        )
    );
    let shared: Shared = [share_key(&img("127.0.0.1:5000/alice/tools:1"))]
        .into_iter()
        .collect();
    assert!(
        image_allowed_with(&site, "bob", &img("127.0.0.1:5000/alice/tools:1"), &shared).is_ok()
    );
    assert!(
        image_allowed_with(&site, "bob", &img("127.0.0.1:5000/alice/tools:2"), &shared).is_err(),
        "a share is per tag"
    );
    let pinned = img(&format!(
        "127.0.0.1:5000/alice/tools:1@sha256:{}",
        "a".repeat(64)
    ));
    assert!(
        image_allowed_with(&site, "bob", &pinned, &shared).is_ok(),
        "a digest does not change what is shared"
    );
    assert!(
        image_allowed(&site, "alice", &img("quay.io/x/y"))
            .unwrap_err()
            .contains("registry `quay.io` is not allowed")
    );
    assert!(
        image_allowed(&site, "alice", &img("127.0.0.1:5000/tools"))
            .unwrap_err()
            .contains("outside any account namespace")
    );
}
