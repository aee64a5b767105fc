//! Structure-aware: a valid first-boot file (the documented example, or
//! the small three-node file) changed by edits the fuzzer picks, so that
//! inputs get past YAML and the schema's types into the semantic
//! validation and into what pgboxd renders from an accepted file.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pgbox_fuzz::checks;
use pgbox_fuzz::tree::{Edit, Node};

const EXAMPLE: &str = include_str!("../../docs/pgbox.example.yaml");
const SMALL: &str = include_str!("../corpus/config_parse/seed-three-nodes.yaml");

#[derive(Debug, Arbitrary)]
struct Input {
    small: bool,
    edits: Vec<Edit>,
}

fn seeds() -> &'static [Node; 2] {
    static SEEDS: OnceLock<[Node; 2]> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let read = |text: &str| {
            let value: serde_json::Value =
                serde_saphyr::from_str(text).expect("the seed files are valid YAML");
            Node::from_json(&value)
        };
        // The example's secrets are placeholders that must be refused;
        // filled in, as a user does, it is a valid file to start from.
        let mut example = EXAMPLE.to_string();
        for secret in [
            "kq8Vx2mPz4LwT7nBa1",
            "Rj5tH9cWq2XvN6sDb2",
            "Fz3Lp8Ym1QkB7wGec3",
            "Hn4Wd7Rt2ZpK9sVmd4",
        ] {
            let placeholder = format!("\"{}\"", pgbox::config::SECRET_PLACEHOLDER);
            example = example.replacen(&placeholder, &format!("\"{secret}\""), 1);
        }
        let seeds = [read(&example), read(SMALL)];
        // Both must be accepted as written, or the edits start from a
        // refused file and explore little.
        for seed in &seeds {
            if let Err(e) = pgbox::config::parse(&seed.to_yaml(), checks::SOURCE) {
                panic!("a seed is refused once rewritten:\n{e}\n{}", seed.to_yaml());
            }
        }
        seeds
    })
}

fuzz_target!(|input: Input| {
    let mut doc = seeds()[usize::from(input.small)].clone();
    for edit in input.edits.iter().take(16) {
        doc.apply(edit);
    }
    let text = doc.to_yaml();
    let outcome = checks::parse_and_check(&text);
    checks::check_secrets_kept(&outcome, &doc.secrets(), &doc.non_secret_text());
});
