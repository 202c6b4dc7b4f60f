//! Input sources: files (plain or gzip, detected by magic bytes, multi-member), stdin, and the
//! directory walk that turns the command line's PATHs into an ordered list of files.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::bufread::MultiGzDecoder;

/// One input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file on disk.
    File(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Input {
    /// How the input is named in reports and in the `files` table.
    pub fn display(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "<stdin>".into(),
        }
    }
}

/// File name endings taken when walking a directory. A file named on the command line is read
/// whatever its name.
const ARCHIVE_ENDINGS: &[&str] = &[
    ".mbox", ".mbx", ".mboxrd", ".txt", ".eml", ".gz", ".mbox.gz", ".txt.gz",
];

/// What a walk of the PATHs found.
#[derive(Debug, Default)]
pub struct Expanded {
    /// The inputs to read, in order.
    pub inputs: Vec<Input>,
    /// Entries passed over: files that are not mail archives by name or content, hidden files
    /// and folders (a name starting with `.`; a Maildir's `.Name` folders are walked), and a
    /// Maildir's `tmp`, so the report names them.
    pub skipped: Vec<PathBuf>,
    /// Entries that could not be read (a folder without permission, a dangling link), each
    /// with the reason: the walk goes on past them.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Expands PATHs: files as given, directories walked (sorted; symbolic links followed, each
/// folder once) for archive files, `-` for stdin. A PATH given that does not exist is an
/// error; what a walk cannot read is reported in [`Expanded::unreadable`].
pub fn expand(paths: &[PathBuf]) -> Result<Expanded> {
    let mut out = Expanded::default();
    for path in paths {
        if path.as_os_str() == "-" {
            out.inputs.push(Input::Stdin);
            continue;
        }
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !meta.is_dir() {
            out.inputs.push(Input::File(path.clone()));
            continue;
        }
        walk(path, &mut out);
    }
    out.skipped.sort();
    Ok(out)
}

/// Adds the archive files under `root` to `out`, sorted.
fn walk(root: &Path, out: &mut Expanded) {
    // What cannot be read is noted and passed over.
    fn readable<T>(r: std::io::Result<T>, path: &Path, out: &mut Expanded) -> Option<T> {
        r.map_err(|e| out.unreadable.push((path.to_path_buf(), e.to_string())))
            .ok()
    }
    // An explicit stack, not recursion: directory trees can be deep. Folders are visited once
    // by their canonical path, so a link back up the tree ends instead of looping.
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        let Some(canonical) = readable(std::fs::canonicalize(&dir), &dir, out) else {
            continue;
        };
        if !seen.insert(canonical) {
            continue;
        }
        let Some(entries) = readable(std::fs::read_dir(&dir), &dir, out) else {
            continue;
        };
        for entry in entries {
            let Some(entry) = readable(entry, &dir, out) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let p = entry.path();
            // Hidden entries are passed over, except a Maildir++ folder of a Maildir; so is a
            // Maildir's `tmp`, which holds deliveries still being written.
            let hidden = name.starts_with('.');
            let passed_over = if (hidden || name == "tmp") && is_maildir(&dir) {
                !is_subfolder(&p)
            } else {
                hidden
            };
            if passed_over {
                out.skipped.push(p);
                continue;
            }
            // Follows a symbolic link to what it names.
            let Some(meta) = readable(std::fs::metadata(&p), &p, out) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && (is_archive_name(&name, &dir) || sniffs_like_mail(&p)) {
                found.push(p);
            } else {
                out.skipped.push(p);
            }
        }
    }
    found.sort();
    out.inputs.extend(found.into_iter().map(Input::File));
}

/// Whether `dir` is a Maildir: it holds a `cur` or a `new` folder.
fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// Whether `path`, an entry of a Maildir, is a Maildir++ folder: `.Name` (`.Name.Sub` for a
/// nested one), itself a Maildir. Its messages take the folder's name as their list, as any
/// folder's do (see [`folder_list_name`]).
fn is_subfolder(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() > 1 && n.starts_with('.') && n != "..")
        && is_maildir(path)
}

fn is_archive_name(name: &str, dir: &Path) -> bool {
    let lower = name.to_ascii_lowercase();
    let in_maildir = matches!(
        dir.file_name().and_then(|n| n.to_str()),
        Some("cur") | Some("new")
    );
    in_maildir || ARCHIVE_ENDINGS.iter().any(|e| lower.ends_with(e))
}

/// Whether a file without an archive name starts like mail: a `From ` envelope or a header
/// line. Lets a walk take Maildir-style and extensionless message files and skip READMEs.
fn sniffs_like_mail(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let Ok(n) = file.read(&mut head) else {
        return false;
    };
    let first = head[..n].split(|&b| b == b'\n').next().unwrap_or_default();
    crate::ingest::mbox::parse_envelope(first).is_some()
        || crate::ingest::mbox::looks_like_header(first)
}

/// The list name a directory walk suggests for a file: its folder's name (the folder above
/// `cur`/`new` for Maildir), cleaned into a valid list name.
pub fn folder_list_name(path: &Path) -> Option<String> {
    let mut dir = path.parent()?;
    if matches!(
        dir.file_name().and_then(|n| n.to_str()),
        Some("cur") | Some("new") | Some("tmp")
    ) {
        dir = dir.parent()?;
    }
    let name = dir.file_name()?.to_str()?;
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches(['-', '_', '.']).to_string();
    (!cleaned.is_empty()).then(|| cleaned.chars().take(64).collect())
}

/// An opened input: a buffered byte stream, already decompressed.
pub struct Opened {
    /// The bytes.
    pub reader: Box<dyn BufRead + Send>,
    /// Whether the input was gzip.
    pub compressed: bool,
}

/// Opens an input, detecting gzip by its magic bytes rather than by its name.
pub fn open(input: &Input) -> Result<Opened> {
    let raw: Box<dyn Read + Send> = match input {
        Input::File(path) => {
            Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
        }
        Input::Stdin => Box::new(io::stdin()),
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, raw);
    let head = buffered
        .fill_buf()
        .with_context(|| format!("cannot read {}", input.display()))?;
    let compressed = head.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn BufRead + Send> = if compressed {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    Ok(Opened { reader, compressed })
}

/// Bytes hashed from each end of the already-read region.
const FINGERPRINT_SPAN: u64 = 64 * 1024;

/// A fingerprint of the on-disk bytes `[0, upto)`: BLAKE3 of the length, the first 64 KiB and
/// the last 64 KiB. Enough to tell a file that only grew (cron appending to a live mbox) from
/// one that was rewritten, without reading what was already imported.
pub fn fingerprint(path: &Path, upto: u64) -> Result<Vec<u8>> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = blake3::Hasher::new();
    h.update(&upto.to_le_bytes());
    let head_len = upto.min(FINGERPRINT_SPAN);
    let mut buf = vec![0u8; head_len as usize];
    file.read_exact(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    h.update(&buf);
    if upto > FINGERPRINT_SPAN {
        let tail_start = upto.saturating_sub(FINGERPRINT_SPAN).max(FINGERPRINT_SPAN);
        file.seek(SeekFrom::Start(tail_start))?;
        let mut tail = vec![0u8; (upto - tail_start) as usize];
        file.read_exact(&mut tail)
            .with_context(|| format!("cannot read {}", path.display()))?;
        h.update(&tail);
    }
    Ok(h.finalize().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        let cases = [
            ("/x/r-devel/2019-May.txt", Some("r-devel")),
            ("/x/Linux NFS/a.mbox", Some("linux-nfs")),
            ("/x/inbox/cur/123:2,S", Some("inbox")),
            (
                "/x/inbox/.dev.Nested Folder/new/1:2,",
                Some("dev.nested-folder"),
            ),
            ("a.mbox", None),
        ];
        for (path, expected) in cases {
            assert_eq!(
                folder_list_name(Path::new(path)).as_deref(),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn a_maildir_walk_takes_its_subfolders_and_passes_over_tmp_and_hidden_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("inbox");
        let files = [
            "cur/1:2,S",
            "new/2",
            "tmp/3",
            ".dev/cur/4:2,",
            ".dev.sig/new/5",
            ".dev/tmp/6",
            ".notes",
            ".cache/x.mbox",
            "plain/.hidden.mbox",
            "plain/tmp/7.mbox",
        ];
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "From: a@example.org\n\nbody\n").expect("write");
        }
        let out = expand(std::slice::from_ref(&root)).expect("expand");
        let rel = |p: &Path| {
            p.strip_prefix(&root)
                .expect("under root")
                .display()
                .to_string()
        };
        let mut taken: Vec<String> = out
            .inputs
            .iter()
            .map(|i| match i {
                Input::File(p) => rel(p),
                Input::Stdin => unreachable!("no stdin given"),
            })
            .collect();
        taken.sort();
        assert_eq!(
            taken,
            [
                ".dev.sig/new/5",
                ".dev/cur/4:2,",
                "cur/1:2,S",
                "new/2",
                "plain/tmp/7.mbox"
            ]
        );
        let mut skipped: Vec<String> = out.skipped.iter().map(|p| rel(p)).collect();
        skipped.sort();
        assert_eq!(
            skipped,
            [".cache", ".dev/tmp", ".notes", "plain/.hidden.mbox", "tmp"]
        );
        assert!(out.unreadable.is_empty());
    }

    #[test]
    fn fingerprint_tells_growth_from_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.mbox");
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &body).expect("write");
        let before = fingerprint(&path, body.len() as u64).expect("fp");
        let mut grown = body.clone();
        grown.extend_from_slice(b"more");
        std::fs::write(&path, &grown).expect("write");
        assert_eq!(before, fingerprint(&path, body.len() as u64).expect("fp"));
        let mut rewritten = body.clone();
        rewritten[body.len() - 10] ^= 1;
        std::fs::write(&path, &rewritten).expect("write");
        assert_ne!(before, fingerprint(&path, body.len() as u64).expect("fp"));
    }
}
