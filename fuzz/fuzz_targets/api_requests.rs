//! The JSON bodies of POST /switchover, POST /failover and PATCH /config,
//! through the same functions the endpoints call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbox::api::routes::{config, operations};
use pgbox::dcs::model::DynamicConfig;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    match operations::parse_request(body) {
        Ok(req) => {
            // Accepted only as an object of the three known fields, each a
            // string or null: nothing else may slip into the failover key.
            let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
                panic!("accepted a body that is not a JSON object: {req:?}");
            };
            for (k, v) in &fields {
                assert!(
                    matches!(k.as_str(), "leader" | "candidate" | "scheduled_at"),
                    "accepted an unknown field {k:?}"
                );
                assert!(v.is_string() || v.is_null(), "accepted {k} = {v}");
            }
            assert_eq!(
                req.candidate.as_deref(),
                fields.get("candidate").and_then(Value::as_str)
            );
        }
        Err(message) => assert!(message.starts_with("request body: "), "{message}"),
    }

    for current in [
        DynamicConfig::default(),
        DynamicConfig::default().with_pause(true),
    ] {
        match config::apply_patch(&current, body, None) {
            Ok(next) => {
                // Only `pause` may change at run time, and only to a boolean.
                let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
                    panic!("accepted a patch that is not a JSON object");
                };
                assert!(fields.keys().all(|k| k == "pause"), "accepted {fields:?}");
                let wanted = fields.get("pause").map_or(current.pause, |v| {
                    v.as_bool().expect("an accepted pause is a boolean")
                });
                assert_eq!(next.pause, wanted);
            }
            Err(message) => assert!(!message.is_empty()),
        }
    }
});
