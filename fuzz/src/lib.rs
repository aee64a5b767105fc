//! What the fuzz targets share: a YAML document as a tree that edits drawn
//! from the fuzzer's bytes can change, and the checks every accepted
//! first-boot file must pass.
pub mod checks;
pub mod tree;
