//! Paths read from annotation files (COCO `file_name`, Karpathy `filepath` /
//! `filename`, ESC-50 `filename`) are joined under their data root only when
//! they stay there: no `..`, no absolute path, no drive or UNC prefix.

use std::path::{Component, Path, PathBuf};

/// `root/rel` when `rel` is a non-empty relative path made of plain names
/// (`.` components are allowed), else a message saying why it is refused.
/// Purely lexical: with `..` and absolute paths refused, the join cannot
/// leave `root` except through a symbolic link placed inside `root` itself.
pub fn join_under(root: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    if rel.is_empty() {
        return Err("empty file name".into());
    }
    if rel.contains('\0') {
        return Err(format!("file name {rel:?} contains a NUL byte"));
    }
    // A Windows-style path written into the file: refuse `..` and drive or UNC
    // prefixes there too, whatever the platform.
    let unified = rel.replace('\\', "/");
    if unified.starts_with('/') || unified.as_bytes().get(1) == Some(&b':') {
        return Err(format!(
            "file name {rel:?} is an absolute path (names must be relative to the data root)"
        ));
    }
    for c in Path::new(&unified).components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "file name {rel:?} contains `..` (names must stay under the data root)"
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                "file name {rel:?} is an absolute path (names must be relative to the data root)"
            ))
            }
        }
    }
    Ok(root.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_join_and_escapes_are_refused() {
        let r = Path::new("/data/coco");
        assert_eq!(
            join_under(r, "a/b.jpg").unwrap(),
            PathBuf::from("/data/coco/a/b.jpg")
        );
        assert!(join_under(r, "./b.jpg").is_ok());
        for bad in [
            "",
            "../../etc/passwd",
            "a/../../x",
            "/etc/passwd",
            "..\\..\\x",
            "C:\\x.jpg",
            "\\\\server\\x",
        ] {
            assert!(join_under(r, bad).is_err(), "{bad:?}");
        }
        assert!(join_under(r, "../x").unwrap_err().contains(".."));
    }
}
