//! The committed generated modules are exactly what the generator writes today.

use rovn_ovsdb_schemas::modelgen;

#[test]
fn generated_models_are_up_to_date() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let stale = match modelgen::stale_outputs(root) {
        Ok(stale) => stale,
        Err(e) => panic!("the generator failed: {e}"),
    };
    assert!(
        stale.is_empty(),
        "generated models are out of date: {stale:?}\nregenerate with: {}",
        modelgen::REGENERATE
    );
}
