//! A short deterministic run of the fuzz targets' entry points (see `fuzz/` for the coverage-guided
//! fuzzers): random bytes and random mutations of valid files through the CSV, IDX and safetensors
//! loaders. Each must return (usually an error), never panic; a panic fails this test.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::checkpoint::{self, ModelMeta};
use wgtrain::{fuzzing, Activation, Loss, Network};

const RUNS: usize = 3000;

/// Flips, overwrites, deletes, duplicates or truncates a few bytes.
fn mutate(rng: &mut ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if bytes.is_empty() {
            bytes.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..6) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = rng.random(),
            2 => {
                bytes.remove(at);
            }
            3 => {
                let end = (at + rng.random_range(1..16)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            4 => bytes.truncate(at),
            _ => {
                bytes[at] = *[b',', b'\n', b'"', b'-', b'.', b'e', 0, 0xff]
                    .get(rng.random_range(0..8))
                    .unwrap_or(&0)
            }
        }
    }
    bytes
}

fn run(name: &str, seeds: &[Vec<u8>], target: fn(&[u8])) {
    let mut rng = ChaCha8Rng::seed_from_u64(name.len() as u64);
    for i in 0..RUNS {
        let bytes = if i % 4 == 0 {
            (0..rng.random_range(0..256))
                .map(|_| rng.random())
                .collect()
        } else {
            mutate(&mut rng, &seeds[i % seeds.len()])
        };
        target(&bytes);
    }
}

#[test]
fn csv_loader_survives_random_and_mutated_bytes() {
    let iris = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv")).expect("iris");
    let seeds = vec![
        iris[..600].to_vec(),
        b"a,b,y\n1,2,x\n3,4,y\n".to_vec(),
        b"x,y\n1.5,0.25\n-2,1e3\n".to_vec(),
    ];
    run("csv", &seeds, fuzzing::csv);
}

fn idx_pair(images: &[u8], labels: &[u8]) -> Vec<u8> {
    // The first byte of a target input says where images end (see `fuzzing::idx`).
    let total = images.len() + labels.len();
    let split = (images.len() * 255).div_ceil(total.max(1)) as u8;
    [&[split][..], images, labels].concat()
}

#[test]
fn idx_loader_survives_random_and_mutated_bytes() {
    let header = |magic: u32, dims: &[u32]| -> Vec<u8> {
        std::iter::once(magic)
            .chain(dims.iter().copied())
            .flat_map(u32::to_be_bytes)
            .collect()
    };
    let images = [header(0x803, &[3, 2, 2]), (0..12).collect()].concat();
    let labels = [header(0x801, &[3]), vec![0, 1, 2]].concat();
    let gzip = |bytes: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    };
    let seeds = vec![
        idx_pair(&images, &labels),
        idx_pair(&gzip(&images), &gzip(&labels)),
    ];
    run("idx", &seeds, fuzzing::idx);
}

#[test]
fn safetensors_readers_survive_random_and_mutated_bytes() {
    let network = Network::builder(3)
        .dense(4, Activation::Relu)
        .dense(2, Activation::Softmax)
        .build(Loss::Ce)
        .expect("valid");
    let path = std::env::temp_dir().join(format!(
        "wgtrain-fuzz-seed-{}.safetensors",
        std::process::id()
    ));
    checkpoint::save(
        &path,
        &network.init_parameters(0),
        &ModelMeta::describe(&network),
    )
    .expect("save");
    let seed = std::fs::read(&path).expect("read");
    let _ = std::fs::remove_file(&path);
    run("safetensors", &[seed], fuzzing::safetensors);
}
