//! Property: printing a valid workspace and parsing it again gives the same
//! workspace. Guards the serializer/deserializer pair and `Located`'s
//! position-blind equality.

use berth_spec::located::Located;
use berth_spec::quantity::Memory;
use berth_spec::workspace::{Images, Resources, Runner, Share, Volume};
use berth_spec::{Backend, Container, State, Workspace, parse_workspace};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,8})?"
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,20}",
        Just("true".to_string()),
        Just("123".to_string()),
        Just("~".to_string()),
        Just("- x: #y".to_string()),
        Just("héllo\nwörld".to_string()),
    ]
}

fn container() -> impl Strategy<Value = Container> {
    (
        label(),
        prop_oneof![Just("nginx:1.27"), Just("docker.io/library/redis:7"), Just("ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")],
        proptest::option::of(prop_oneof![Just(Backend::Docker), Just(Backend::Kubernetes)]),
        proptest::option::of(proptest::collection::vec(text(), 1..4)),
        proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", text(), 0..4),
        proptest::collection::btree_set(1i64..=65535, 0..3),
        proptest::option::of((1u32..64, 6u64..4096, 0u32..4)),
        proptest::collection::btree_map(label(), "/[a-z]{1,8}(/[a-z0-9]{1,8})?", 0..3),
        proptest::option::of(prop_oneof![Just(State::Running), Just(State::Stopped)]),
    )
        .prop_map(|(name, image, backend, command, env, ports, res, vols, state)| Container {
            name: Located::new(name),
            image: Located::new(image.to_string()),
            backend: backend.map(Located::new),
            command: command.map(Located::new),
            env: env.into_iter().map(|(k, v)| (k, Located::new(v))).collect::<BTreeMap<_, _>>(),
            ports: ports.into_iter().map(Located::new).collect(),
            resources: res.map(|(quarters, mib, gpus)| Resources {
                cpus: Some(Located::new(f64::from(quarters) / 4.0)),
                memory: Some(Located::new(Memory::new(format!("{mib}Mi")))),
                gpus: Some(Located::new(gpus)),
                gpu_model: None,
                gpu_time: None,
            }),
            volumes: {
                let mut seen = std::collections::HashSet::new();
                vols.into_iter()
                    .filter(|(_, p)| seen.insert(p.clone()))
                    .filter(|(_, p)| !["/proc", "/sys", "/dev"].iter().any(|r| p == r || p.starts_with(&format!("{r}/"))))
                    .map(|(n, p)| Volume { name: Located::new(n), path: Located::new(p) })
                    .collect()
            },
            state: state.map(Located::new),
            home: false,
            keep_until: None,
            access: vec![],
        })
}

fn workspace() -> impl Strategy<Value = Workspace> {
    (
        proptest::collection::vec(container(), 0..4),
        proptest::option::of(proptest::collection::vec("[a-z]{1,10}", 0..3)),
        proptest::option::of(proptest::collection::btree_set("[a-z]{1,8}", 1..3)),
    )
        .prop_map(|(containers, tags, shares)| {
            let mut seen = std::collections::HashSet::new();
            let containers = containers
                .into_iter()
                .filter(|c| seen.insert(c.name.value.clone()))
                .collect();
            Workspace {
                version: Located::new(1),
                containers,
                runner: tags.map(|t| Runner {
                    enabled: true,
                    tags: t.into_iter().map(Located::new).collect(),
                }),
                images: shares.map(|s| Images {
                    share: s
                        .into_iter()
                        .map(|n| Share {
                            image: Located::new(format!("registry.example/alice/{n}:1")),
                            description: Some(format!("{n}: tools, \"quoted\" & more")),
                        })
                        .collect(),
                    build: vec![],
                }),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn print_then_parse_is_identity(ws in workspace()) {
        let text = serde_saphyr::to_string(&ws).expect("serializes");
        let back = parse_workspace(text.as_bytes());
        prop_assert!(back.is_ok(), "printed spec did not parse: {:?}\n{}", back.err(), text);
        prop_assert_eq!(back.ok(), Some(ws), "{}", text);
    }
}
