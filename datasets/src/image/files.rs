//! Loose image files: every image under a folder (recursively, links
//! followed once, loops skipped), as an [`ImageSource`], with the classes an
//! ImageFolder's first-level folders give them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::{load_rgb, ImageSource};
use crate::{Error, Result};

/// The image files under a folder (recursively), sorted by path.
pub struct FileList(pub Vec<PathBuf>);

impl ImageSource for FileList {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn num_classes(&self) -> usize {
        1
    }
    fn label(&self, _index: usize) -> usize {
        0
    }
    fn load(&self, index: usize) -> Result<RgbImage> {
        load_rgb(&self.0[index])
    }
    fn name(&self, index: usize) -> Option<String> {
        self.0.get(index).map(|p| p.display().to_string())
    }
}

/// Whether `p` has an image extension this crate decodes (jpg, jpeg, png, bmp, webp; any case).
pub fn is_image(p: &Path) -> bool {
    p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
        matches!(
            x.to_ascii_lowercase().as_str(),
            "jpg" | "jpeg" | "png" | "bmp" | "webp"
        )
    })
}

/// The image files under `dir`, following symbolic links, sorted by path.
/// A link back to one of its own ancestors (a loop) is skipped with a warning;
/// a file reachable through several links or paths is listed once (under the
/// first path in sorted walk order). Any other unreadable entry is an error
/// naming it.
pub fn collect_images(dir: &Path) -> Result<Vec<PathBuf>> {
    // canonical path -> (listed path, whether it is a link)
    let mut seen: HashMap<PathBuf, (PathBuf, bool)> = HashMap::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                if let Some(ancestor) = e.loop_ancestor() {
                    eprintln!(
                        "warning: {}: symbolic link loop back to {}; not followed",
                        e.path().unwrap_or(dir).display(),
                        ancestor.display()
                    );
                    continue;
                }
                let at = e.path().unwrap_or(dir).to_path_buf();
                return Err(Error::Layout(format!("reading {}: {e}", at.display())));
            }
        };
        if entry.file_type().is_dir() || !is_image(entry.path()) {
            continue;
        }
        let real = std::fs::canonicalize(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        let link = entry.path_is_symlink();
        match seen.get(&real) {
            // Keep the path that is not a link when there is one.
            Some(&(_, false)) => {}
            Some(&(_, true)) if link => {}
            _ => {
                seen.insert(real, (entry.into_path(), link));
            }
        }
    }
    let mut out: Vec<PathBuf> = seen.into_values().map(|(p, _)| p).collect();
    out.sort();
    Ok(out)
}

/// The class of each file: the name of its folder directly under `root`
/// (an ImageFolder), when every file sits in one and there are at least two;
/// `None` otherwise.
pub fn folder_labels(root: &Path, files: &[PathBuf]) -> Option<(Vec<usize>, Vec<String>)> {
    let class_of = |f: &PathBuf| -> Option<String> {
        let rel = f.strip_prefix(root).ok()?;
        let mut parts = rel.components();
        let first = parts.next()?.as_os_str().to_string_lossy().into_owned();
        parts.next().map(|_| first)
    };
    let per_file: Vec<String> = files.iter().map(class_of).collect::<Option<_>>()?;
    let mut classes = per_file.clone();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return None;
    }
    let labels = per_file
        .iter()
        .map(|c| classes.binary_search(c).unwrap_or(0))
        .collect();
    Some((labels, classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_listed_once_sorted_with_folder_classes() {
        let root = std::env::temp_dir().join(format!("image-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (dir, file) in [("cat", "b.PNG"), ("cat", "a.jpg"), ("dog", "c.webp")] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(root.join(dir).join(file), b"x").unwrap();
        }
        std::fs::write(root.join("dog").join("notes.txt"), b"x").unwrap();
        #[cfg(unix)]
        {
            // A loop back to the root and a second path to a listed file.
            std::os::unix::fs::symlink(&root, root.join("dog").join("loop")).unwrap();
            std::os::unix::fs::symlink(
                root.join("cat").join("a.jpg"),
                root.join("dog").join("z.jpg"),
            )
            .unwrap();
        }
        let files = collect_images(&root).unwrap();
        let rel: Vec<_> = files
            .iter()
            .map(|f| {
                f.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(rel, ["cat/a.jpg", "cat/b.PNG", "dog/c.webp"]);
        let (labels, classes) = folder_labels(&root, &files).unwrap();
        assert_eq!(
            (labels, classes),
            (vec![0, 0, 1], vec!["cat".to_string(), "dog".to_string()])
        );
        // One folder is no classification.
        assert!(folder_labels(&root, &files[..2]).is_none());
        let list = FileList(files);
        assert_eq!((list.len(), list.num_classes(), list.label(2)), (3, 1, 0));
        assert!(
            list.load(0).is_err(),
            "a file that is not an image is an error"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
