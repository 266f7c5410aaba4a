//! Checks of a self-contained HTML page: statically (every inlined image
//! decodes) and, where Chromium is installed (Debian `chromium`), in a real
//! headless browser: the page loads, every image has been decoded, and the
//! console shows no error.

use std::path::Path;
use std::process::Command;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn unbase64(s: &str) -> Vec<u8> {
    let vals: Vec<u32> = s
        .bytes()
        .filter(|&b| b != b'=')
        .map(|b| B64.iter().position(|&c| c == b).expect("base64 character") as u32)
        .collect();
    let mut out = Vec::new();
    for c in vals.chunks(4) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
        for k in 0..c.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * k)) as u8);
        }
    }
    out
}

/// Checks the page at `path`: `expect_images` inlined JPEG/PNG images that
/// all decode, `expect_audio` inlined WAV players; then, with Chromium, loads
/// a copy of the page with a checking script appended and asserts that every
/// image is decoded and no console error is logged. Prints why when no
/// browser is installed.
pub fn check_page(path: &Path, expect_images: usize, expect_audio: usize) {
    let html = std::fs::read_to_string(path).expect("read page");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    let imgs: Vec<&str> = html.split("<img src=\"").skip(1).collect();
    assert_eq!(imgs.len(), expect_images, "images in {}", path.display());
    for img in &imgs {
        let uri = img.split('"').next().unwrap_or_default();
        let data = uri.split_once(";base64,").expect("data: URI").1;
        let bytes = unbase64(data);
        assert!(
            bytes.starts_with(&[0xff, 0xd8]) || bytes.starts_with(b"\x89PNG"),
            "not a JPEG or PNG"
        );
    }
    let audio = html.matches("<audio controls").count();
    assert_eq!(audio, expect_audio, "audio players in {}", path.display());
    for a in html
        .split("<audio controls preload=\"none\" src=\"")
        .skip(1)
    {
        let data = a.split('"').next().unwrap_or_default();
        let bytes = unbase64(data.split_once(";base64,").expect("data: URI").1);
        assert!(
            bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WAVE",
            "not a WAV"
        );
    }
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!(
            "{}: checked statically; no headless browser installed (Debian package chromium)",
            path.display()
        );
        return;
    };
    let probe = path.with_extension("probe.html");
    // Images: decoded once the page has loaded. Sounds: each player is asked
    // to load and must reach its metadata (a decodable WAV) or report an error.
    let script = "<script>let sounds=0,bad=0;const au=Array.from(document.querySelectorAll('audio'));\
                  au.forEach(a=>{a.preload='auto';a.onloadedmetadata=()=>{sounds++;};a.onerror=()=>{bad++;};a.load();});\
                  window.addEventListener('load',()=>setTimeout(()=>{const i=Array.from(document.images);\
                  const broken=i.filter(x=>!(x.complete&&x.naturalWidth>0)).length;\
                  document.body.setAttribute('data-check','images='+i.length+' broken='+broken+\
                  ' sounds='+sounds+' badsounds='+bad);},2000));</script>";
    std::fs::write(&probe, html.replace("</body>", &format!("{script}</body>")))
        .expect("write probe");
    let url = format!(
        "file://{}",
        std::fs::canonicalize(&probe).expect("probe path").display()
    );
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(&url)
        .output()
        .expect("run the browser");
    let _ = std::fs::remove_file(&probe);
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        dom.contains(&format!(
            "data-check=\"images={expect_images} broken=0 sounds={expect_audio} badsounds=0\""
        )),
        "{browser}: images or sounds not all decoded in {}:\n{}\n{log}",
        path.display(),
        dom.chars().take(400).collect::<String>()
    );
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("ERROR") || l.contains("Uncaught")))
        .collect();
    assert!(
        console_errors.is_empty(),
        "console errors: {console_errors:?}"
    );
    eprintln!(
        "{}: {browser} loaded it, {expect_images} images and {expect_audio} sounds decoded, no console error",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn unbase64_inverts_base64() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let enc = vicreg_core::insight::base64(s.as_bytes());
            assert_eq!(super::unbase64(&enc), s.as_bytes());
        }
    }
}
