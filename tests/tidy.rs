//! Tidy checks over `src/`: each foreign crate is used only by the module that owns it, so its
//! types cannot leak across module edges (see ARCHITECTURE.md).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn foreign_crates_stay_behind_their_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // (crate path as written in code, the only places allowed to name it). Templates have
    // two owners: the web pages and the digest emails each keep their own environment.
    let owners: &[(&str, &[&str])] = &[
        ("mail_parser", &["src/ingest/parse.rs"]),
        ("rusqlite", &["src/store/"]),
        ("tantivy", &["src/index/"]),
        ("actix_web", &["src/web/"]),
        ("lettre", &["src/digest/mailer.rs"]),
        ("minijinja", &["src/digest/render.rs", "src/web/render.rs"]),
    ];
    let mut violations = Vec::new();
    for file in rust_files(&src) {
        let rel = file
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .expect("inside the crate")
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file).expect("read");
        for (krate, allowed) in owners {
            if allowed.iter().any(|owner| rel.starts_with(owner)) {
                continue;
            }
            let owner = allowed.join(" or ");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}")) {
                    violations.push(format!("{rel}:{}: uses {krate} (owned by {owner})", n + 1));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
