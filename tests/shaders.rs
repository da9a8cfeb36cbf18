//! Every WGSL file parses and validates with naga, without a GPU, joined after the shared prelude as the
//! backend compiles it, and holds the entry points the backend dispatches.

use wgtrain::ops::{ENTRY_POINTS, PRELUDE, SHADERS, VARIANT_ENTRY_POINTS};

fn validate(name: &str, source: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}.wgsl is invalid:\n{}", e.emit_to_string(source)));
    module
}

#[test]
fn every_shader_validates_after_the_prelude() {
    validate("prelude", PRELUDE);
    for shader in SHADERS {
        validate(shader.stem, &shader.joined());
    }
}

#[test]
fn shader_files_on_disk_are_the_ones_compiled_in() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("shaders/ exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    on_disk.sort();
    let mut compiled: Vec<String> = SHADERS.iter().map(|s| format!("{}.wgsl", s.stem)).collect();
    compiled.push("prelude.wgsl".into());
    compiled.sort();
    assert_eq!(on_disk, compiled);
}

/// An op, its CPU reference and its WGSL entry point share a stem: `src/ops/<stem>.rs` beside
/// `shaders/<stem>.wgsl`, and a parity test in `tests/ops/<stem>.rs` named after the entry point.
#[test]
fn every_op_is_found_by_its_stem() {
    let root = env!("CARGO_MANIFEST_DIR");
    for shader in SHADERS {
        let rust = format!("{root}/src/ops/{}.rs", shader.stem);
        assert!(std::path::Path::new(&rust).is_file(), "{rust} is missing");
    }
    for (entry, shader) in ENTRY_POINTS {
        let ops = std::fs::read_to_string(format!("{root}/src/ops/{}.rs", shader.stem))
            .expect("ops file");
        assert!(
            ops.contains(&format!("pub fn {entry}(")),
            "src/ops/{}.rs lacks the CPU reference `{entry}`",
            shader.stem
        );
        let tests = std::fs::read_to_string(format!("{root}/tests/ops/{}.rs", shader.stem))
            .unwrap_or_else(|_| panic!("tests/ops/{}.rs is missing", shader.stem));
        assert!(
            tests.contains(&format!("fn {entry}()")),
            "tests/ops/{}.rs lacks the parity test `{entry}`",
            shader.stem
        );
    }
    // A variant entry point shares its op's CPU reference and has a parity test of its own name.
    for (entry, shader, op) in VARIANT_ENTRY_POINTS {
        assert!(
            ENTRY_POINTS
                .iter()
                .any(|(name, s)| name == op && s.stem == shader.stem),
            "`{entry}` is a variant of `{op}`, which {}.wgsl lacks",
            shader.stem
        );
        let tests = std::fs::read_to_string(format!("{root}/tests/ops/{}.rs", shader.stem))
            .expect("tests file");
        assert!(
            tests.contains(&format!("fn {entry}()")),
            "tests/ops/{}.rs lacks the parity test `{entry}`",
            shader.stem
        );
    }
}

#[test]
fn every_entry_point_is_in_its_shader() {
    let variants = VARIANT_ENTRY_POINTS.iter().map(|&(e, s, _)| (e, s));
    for (entry, shader) in ENTRY_POINTS.iter().copied().chain(variants) {
        let module = validate(shader.stem, &shader.joined());
        let found: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(
            found.contains(&entry),
            "{}.wgsl lacks `{entry}`, has {found:?}",
            shader.stem
        );
    }
    // And every entry point a shader declares is dispatched by some op.
    for shader in SHADERS {
        let module = validate(shader.stem, &shader.joined());
        for entry in &module.entry_points {
            let variant = VARIANT_ENTRY_POINTS
                .iter()
                .any(|(name, s, _)| *name == entry.name && s.stem == shader.stem);
            assert!(
                variant
                    || ENTRY_POINTS
                        .iter()
                        .any(|(name, s)| *name == entry.name && s.stem == shader.stem),
                "{}.wgsl declares `{}`, which no op dispatches",
                shader.stem,
                entry.name
            );
        }
    }
}
