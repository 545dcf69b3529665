//! Embeds the web client: lists every file under `web-client/` (except its tests, package
//! files and node_modules) into `$OUT_DIR/web_client_files.rs` as `(path, bytes)` pairs,
//! so the binary serves the client without reading the disk; and has the crate rebuilt when
//! a migration is added (they are embedded too).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SKIP: &[&str] = &["node_modules", "tests", "package.json", "package-lock.json", "jsconfig.json"];

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || (dir == root && SKIP.contains(&name.as_str())) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
            let rel = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
            out.push((rel, path));
        }
    }
}

fn main() {
    // `sqlx::migrate!` embeds `migrations/` at compile time: a new migration must rebuild.
    println!("cargo:rerun-if-changed=migrations");
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("web-client");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    let mut code = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (rel, path) in &files {
        let _ = writeln!(code, "    ({rel:?}, include_bytes!({:?})),", path.display().to_string());
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web_client_files.rs");
    std::fs::write(out, code).expect("writing the embedded file list");
}
