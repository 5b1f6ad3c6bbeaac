//! The extraction fuzzer's check on a deterministic set of mutations of the hostile corpus,
//! run by every `cargo test` (cargo-fuzz needs nightly; `scripts/fuzz.sh extract` runs it).

use imgtool_archive::check_contained;
use imgtool_tests::Rng;
use imgtool_tests::hostile::Sentinel;

/// Entry-type bytes and bytes that matter in names and numbers.
const INTERESTING: &[u8] = b"0125678/.\0\xffLKx";

fn mutate(layer: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = layer.to_vec();
    if out.is_empty() {
        return out;
    }
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            // A header's type flag (offset 156 of a 512-byte block).
            0 => {
                let block = rng.below(out.len() / 512) * 512 + 156;
                if block < out.len() {
                    out[block] = INTERESTING[rng.below(INTERESTING.len())];
                }
            }
            // Any byte.
            1 => {
                let at = rng.below(out.len());
                out[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            // A block repeated (an entry seen twice, a header where data was).
            2 => {
                let from = rng.below(out.len() / 512) * 512;
                let to = rng.below(out.len() / 512) * 512;
                if from + 512 <= out.len() && to + 512 <= out.len() {
                    let b = out[from..from + 512].to_vec();
                    out[to..to + 512].copy_from_slice(&b);
                }
            }
            // Cut short.
            _ => out.truncate(rng.below(out.len())),
        }
    }
    out
}

#[test]
fn extraction_survives_mutated_hostile_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::create(tmp.path());
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let cases = imgtool_tests::hostile_cases(&sentinel.path.to_string_lossy());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut runs = 0;
    for case in &cases {
        // Each case as it is, then mutated.
        let layers: Vec<&[u8]> = case.layers.iter().map(Vec::as_slice).collect();
        check_contained(&layers, &sentinel.path, &scratch);
        for _ in 0..60 {
            let mutated: Vec<Vec<u8>> = case.layers.iter().map(|l| mutate(l, &mut rng)).collect();
            let layers: Vec<&[u8]> = mutated.iter().map(Vec::as_slice).collect();
            check_contained(&layers, &sentinel.path, &scratch);
            runs += 1;
        }
    }
    assert!(runs >= 2500, "{runs} mutations");
}
