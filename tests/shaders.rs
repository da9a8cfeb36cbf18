//! Every WGSL file parses and validates with naga, without a GPU, joined after the shared prelude as the
//! backend compiles it, and holds the entry points the backend dispatches.

use wgtrain::gpu::kernels::{joined_source, ENTRY_POINTS, PRELUDE, SHADERS};

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
    for (name, _) in SHADERS {
        validate(name, &joined_source(name).expect("a shader"));
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
    let mut compiled: Vec<String> = SHADERS.iter().map(|(n, _)| format!("{n}.wgsl")).collect();
    compiled.push("prelude.wgsl".into());
    compiled.sort();
    assert_eq!(on_disk, compiled);
}

#[test]
fn every_entry_point_is_in_its_shader() {
    for (entry, shader) in ENTRY_POINTS {
        let module = validate(shader, &joined_source(shader).expect("shader"));
        let found: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert!(
            found.contains(&entry),
            "{shader}.wgsl lacks `{entry}`, has {found:?}"
        );
    }
    // And every entry point a shader declares is dispatched by some op.
    for (shader, _) in SHADERS {
        let module = validate(shader, &joined_source(shader).expect("shader"));
        for entry in &module.entry_points {
            assert!(
                ENTRY_POINTS.contains(&(entry.name.as_str(), shader)),
                "{shader}.wgsl declares `{}`, which no op dispatches",
                entry.name
            );
        }
    }
}
