//! Writes the channel bench/conda.sh uses: 60 packages, three large and many small (about
//! 500 MB unpacked), and `bench-all` depending on all of them. `--changed` writes the same
//! channel with one small package rebuilt.
//!
//! cargo run --release -p imgtool-conda --example bench_channel -- DIR [--changed]

#![allow(clippy::unwrap_used)]

use imgtool_tests::conda_channel::{self as channel, Item, Pkg};

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn text(n: usize, seed: u64) -> Vec<u8> {
    let line = format!("def function_{seed}(x):\n    return x * {seed} + len(str(x))  # some python-ish text\n");
    line.as_bytes().iter().copied().cycle().take(n).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).expect("usage: bench_channel DIR [--changed]"));
    let changed = args.iter().any(|a| a == "--changed");
    let mut pkgs = Vec::new();
    let mut names = Vec::new();
    for i in 0..60u64 {
        let name = leak(format!("pkg-{i:02}"));
        names.push(name);
        let mut p = Pkg::new(name, "1.0");
        if i < 3 {
            p.items.push(Item::File(leak(format!("lib/{name}/big.bin")), imgtool_tests::noise(60 << 20, i + 1)));
            p.items.push(Item::File(leak(format!("share/{name}/big.txt")), text(40 << 20, i)));
        } else {
            for f in 0..10u64 {
                p.items.push(Item::File(leak(format!("lib/python3/site-packages/{name}/mod{f}.py")), text(340 << 10, i * 100 + f)));
            }
        }
        if changed && i == 10 {
            p.build = "1";
            p.items.push(Item::File(leak(format!("share/{name}/CHANGED")), b"rebuilt".to_vec()));
        }
        pkgs.push(p);
    }
    let mut all = Pkg::new("bench-all", "1.0");
    all.depends = names;
    pkgs.push(all);
    channel::write_channel(&dir, &pkgs);
}
