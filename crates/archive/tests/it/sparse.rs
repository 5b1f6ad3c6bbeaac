//! Files with holes written into layers as sparse members (GNU PAX 1.0): read back, and
//! extracted, as the same file with the same holes; the map depends on the contents only.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use imgtool_archive::{ExtractOptions, LayerOptions, PathLayer, TarReader, apply_layer, write_layer};
use imgtool_core::Compression;

const SIZE: u64 = 20 << 30;

/// A 20 GiB file: "start" at 0, a 4 KiB block of written zeros at 4096, "middle" at 8192,
/// "end" at the last bytes; holes elsewhere.
fn sparse_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("d")).unwrap();
    let f = File::create(dir.join("d/big")).unwrap();
    f.set_len(SIZE).unwrap();
    f.write_all_at(b"start", 0).unwrap();
    f.write_all_at(&[0; 4096], 4096).unwrap();
    f.write_all_at(b"middle", 8192).unwrap();
    f.write_all_at(b"end", SIZE - 3).unwrap();
    // One whose name needs more than a header holds.
    let long = dir.join(LONG);
    std::fs::create_dir_all(long.parent().unwrap()).unwrap();
    let f = File::create(long).unwrap();
    f.set_len(SIZE).unwrap();
    f.write_all_at(b"long", 1 << 30).unwrap();
}

const LONG: &str = "a-directory-with-a-long-name/and-another-directory-with-an-even-longer-name/sparse-file-with-a-long-name-too";

fn layer_of(tree: &Path, spool: &Path) -> Vec<u8> {
    let opts = LayerOptions { compression: Compression::None, ..Default::default() };
    let layer = write_layer(PathLayer::new(tree, "/").entries(0).unwrap(), spool, opts).unwrap();
    std::fs::read(&layer.file).unwrap()
}

fn root_of(layer: &[u8], tmp: &Path) -> std::path::PathBuf {
    let root = tempfile::tempdir_in(tmp).unwrap().keep();
    apply_layer(&root, layer, ExtractOptions::default(), "sparse layer").unwrap();
    root
}

#[test]
fn holes_stay_holes_through_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    sparse_tree(&tree);
    let bytes = layer_of(&tree, tmp.path());
    assert!(bytes.len() < 64 << 10, "a 20 GiB sparse file took {} bytes of layer", bytes.len());

    let mut tar = TarReader::new(&bytes[..]);
    let mut seen = false;
    while let Some(m) = tar.next_member().unwrap() {
        if m.path == b"d/big" {
            seen = true;
            assert_eq!(m.size, SIZE);
            let runs: Vec<(u64, u64)> = m.sparse.as_ref().unwrap().iter().map(|f| (f.offset, f.length)).collect();
            // The written zeros are a hole too: the map follows the contents, not the disk.
            assert_eq!(runs, [(0, 4096), (8192, 4096), (SIZE - 4096, 4096)]);
        }
    }
    assert!(seen, "d/big is not in the layer");
    let long = root_of(&bytes, tmp.path()).join(LONG);
    let mut got = [0; 4];
    File::open(long).unwrap().read_exact_at(&mut got, 1 << 30).unwrap();
    assert_eq!(&got, b"long");

    let root = root_of(&bytes, tmp.path());
    let f = File::open(root.join("d/big")).unwrap();
    let meta = f.metadata().unwrap();
    assert_eq!(meta.len(), SIZE);
    assert!(meta.blocks() * 512 <= 64 << 10, "{} bytes on disk", meta.blocks() * 512);
    for (at, want) in [(0, &b"start"[..]), (8192, b"middle"), (SIZE - 3, b"end"), (4096, &[0; 6][..]), (SIZE / 2, &[0; 6][..])] {
        let mut got = vec![0xff; want.len()];
        f.read_exact_at(&mut got, at).unwrap();
        assert_eq!(got, want, "at {at}");
    }
    // The extracted tree, written again, gives the same layer bytes.
    let again = tmp.path().join("again");
    std::fs::create_dir(&again).unwrap();
    assert!(layer_of(&root, &again) == bytes, "the layer of the extracted tree differs");
}

#[test]
fn gnu_tar_reads_our_sparse_members() {
    imgtool_tests::require("tar", "tar");
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    sparse_tree(&tree);
    let layer = tmp.path().join("layer.tar");
    std::fs::write(&layer, layer_of(&tree, tmp.path())).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let st = std::process::Command::new("tar").arg("-C").arg(&out).arg("-xf").arg(&layer).status().unwrap();
    assert!(st.success());
    let f = File::open(out.join("d/big")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), SIZE);
    let mut got = [0; 6];
    f.read_exact_at(&mut got, 8192).unwrap();
    assert_eq!(&got, b"middle");
    assert!(!out.join("d/GNUSparseFile.0").exists(), "GNU tar took the stand-in name");
    let f = File::open(out.join(LONG)).unwrap();
    assert_eq!(f.metadata().unwrap().len(), SIZE);
    let mut got = [0; 4];
    f.read_exact_at(&mut got, 1 << 30).unwrap();
    assert_eq!(&got, b"long");
}
