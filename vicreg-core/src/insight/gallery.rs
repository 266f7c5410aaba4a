//! Retrieval galleries: a self-contained HTML page (every thumbnail and sound
//! inlined as a `data:` URI, no script, no external file) that shows, for
//! sample queries, the nearest items with their similarity, hits marked.

use std::path::Path;

use crate::Result;

/// What a query or a result shows besides its text.
#[derive(Clone, Debug, PartialEq)]
pub enum Media {
    /// Text only.
    None,
    /// An image, as a `data:image/...;base64,...` URI.
    Image(String),
    /// A sound, as a `data:audio/wav;base64,...` URI (an `<audio>` player).
    Audio(String),
}

/// One item of a row: a query or one of its results.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// Text shown under the item (a caption, a file or class name); escaped.
    pub text: String,
    /// Its picture or sound.
    pub media: Media,
}

/// One result of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The item found.
    pub item: Item,
    /// Its similarity to the query (cosine, or the score ranked by).
    pub score: f32,
    /// Whether it is a correct answer (its border is green and marked).
    pub correct: bool,
}

/// A query and its ranked results.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The query.
    pub query: Item,
    /// Its results, best first.
    pub hits: Vec<Hit>,
}

/// A titled list of rows (e.g. "caption -> images").
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Rows.
    pub rows: Vec<Row>,
}

/// `s` with `& < > " '` escaped for HTML text and attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k <= c.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn media_html(m: &Media) -> String {
    // `data:` URIs hold only base64 characters and a MIME type: no escaping
    // is needed, but escape anyway so that a caller's mistake cannot inject.
    match m {
        Media::None => String::new(),
        Media::Image(uri) => format!("<img src=\"{}\" alt=\"\">", escape_html(uri)),
        Media::Audio(uri) => format!(
            "<audio controls preload=\"none\" src=\"{}\"></audio>",
            escape_html(uri)
        ),
    }
}

fn item_html(class: &str, item: &Item, extra: &str) -> String {
    format!(
        "<div class=\"{class}\">{}<p>{}</p>{extra}</div>",
        media_html(&item.media),
        escape_html(&item.text)
    )
}

/// The whole page: `title`, a `summary` line, then every section.
pub fn gallery_html(title: &str, summary: &str, sections: &[Section]) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str(&format!("<title>{}</title>\n", escape_html(title)));
    h.push_str(
        "<style>\
body{font-family:sans-serif;margin:1.5em;color:#222}\
.row{display:flex;gap:8px;align-items:flex-start;margin:10px 0;padding-bottom:10px;border-bottom:1px solid #ddd}\
.query{width:190px;flex:none;background:#f3f3f3;padding:6px}\
.hit{width:150px;flex:none;border:3px solid #ccc;padding:4px}\
.hit.correct{border-color:#2a2}\
img{max-width:140px;max-height:140px;display:block}\
audio{width:140px}\
p{font-size:12px;margin:4px 0;word-wrap:break-word}\
.score{color:#666}\
</style>\n</head>\n<body>\n",
    );
    h.push_str(&format!(
        "<h1>{}</h1>\n<p>{}</p>\n",
        escape_html(title),
        escape_html(summary)
    ));
    for s in sections {
        h.push_str(&format!("<h2>{}</h2>\n", escape_html(&s.title)));
        for r in &s.rows {
            h.push_str("<div class=\"row\">");
            h.push_str(&item_html("query", &r.query, ""));
            for (rank, hit) in r.hits.iter().enumerate() {
                let class = if hit.correct { "hit correct" } else { "hit" };
                let mark = if hit.correct { " &#10003; hit" } else { "" };
                h.push_str(&item_html(
                    class,
                    &hit.item,
                    &format!(
                        "<p class=\"score\">#{} &middot; {:.3}{mark}</p>",
                        rank + 1,
                        hit.score
                    ),
                ));
            }
            h.push_str("</div>\n");
        }
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// Writes [`gallery_html`] to `path` (crash-safe).
pub fn write_gallery(path: &Path, title: &str, summary: &str, sections: &[Section]) -> Result<()> {
    crate::io::write_atomic(path, gallery_html(title, summary, sections).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn text_is_escaped_and_hits_are_marked() {
        let q = Item {
            text: "a <b>dog</b> & \"cat\"".into(),
            media: Media::None,
        };
        let hit = |correct| Hit {
            item: Item {
                text: "x.png".into(),
                media: Media::Image("data:image/png;base64,AAAA".into()),
            },
            score: 0.5,
            correct,
        };
        let page = gallery_html(
            "t<",
            "s",
            &[Section {
                title: "caption -> images".into(),
                rows: vec![Row {
                    query: q,
                    hits: vec![hit(true), hit(false)],
                }],
            }],
        );
        assert!(page.contains("a &lt;b&gt;dog&lt;/b&gt; &amp; &quot;cat&quot;"));
        assert!(!page.contains("<b>dog"));
        assert_eq!(page.matches("class=\"hit correct\"").count(), 1);
        assert_eq!(page.matches("<img ").count(), 2);
        assert!(page.contains("<title>t&lt;</title>"));
    }
}
