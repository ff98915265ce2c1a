//! HTML mail made inert before it is shown. ammonia parses it like a browser (html5ever) and keeps
//! only harmless structure: no script, no style (element or attribute, so no CSS `url()`), no forms,
//! no frames or objects, no images or media of any kind (a remote image is a tracking beacon), no
//! `href` (a link is shown as its text and cannot be followed from here), no event handlers, and no
//! URL of any scheme in any attribute. What is left loads nothing and runs nothing; the page's CSP
//! (`default-src 'self'`, `script-src 'none'`) is a second wall behind it.

use std::collections::HashSet;

use mail_parser::MessageParser;

/// The sanitised HTML part of a stored mail (the letter's `raw`, base64), when it has one.
pub fn sanitised_html_of(raw_base64: &str) -> Option<String> {
    let raw = data_encoding::BASE64.decode(raw_base64.as_bytes()).ok()?;
    let message = MessageParser::default().parse(&raw)?;
    let part = message.html_part(0)?;
    let html = match &part.body {
        mail_parser::PartType::Html(html) => html.as_ref(),
        _ => return None,
    };
    Some(sanitise(html))
}

/// Only structure and text survive.
pub fn sanitise(html: &str) -> String {
    let tags: HashSet<&str> = [
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "ins",
        "kbd",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    ]
    .into_iter()
    .collect();
    let generic: HashSet<&str> = ["title", "lang", "dir"].into_iter().collect();
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(tags)
        .generic_attributes(generic)
        .tag_attributes(
            [
                ("td", ["colspan", "rowspan"].into_iter().collect()),
                ("th", ["colspan", "rowspan"].into_iter().collect()),
            ]
            .into_iter()
            .collect(),
        )
        .url_schemes(HashSet::new())
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(None)
        .strip_comments(true)
        .clean_content_tags(
            ["script", "style", "template", "noscript", "title", "head"]
                .into_iter()
                .collect(),
        );
    builder.clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_and_fetching_content_is_removed() {
        let dirty = r#"<html><head><style>body{background:url(https://evil.example/css.png)}</style>
            <script>alert(1)</script></head><body onload="alert(2)">
            <p style="background-image:url('https://evil.example/bg.png')">Hallo <b>daar</b></p>
            <img src="https://evil.example/pixel.gif" alt="x">
            <a href="javascript:alert(3)">klik</a> <a href="data:text/html,<script>alert(4)</script>">data</a>
            <a href="https://evil.example/track">link</a>
            <form action="https://evil.example/post"><input name="q"></form>
            <iframe src="https://evil.example/frame"></iframe><object data="https://evil.example/o"></object>
            <svg><image href="https://evil.example/svg.png"/></svg>
            <video poster="https://evil.example/poster.png"></video>
            <table background="https://evil.example/t.png"><tr><td onclick="x()">cel</td></tr></table>
            <link rel="stylesheet" href="https://evil.example/x.css"><base href="https://evil.example/">
            <meta http-equiv="refresh" content="0;url=https://evil.example/"></body></html>"#;
        let clean = sanitise(dirty);
        for gone in [
            "evil.example",
            "script",
            "alert",
            "onload",
            "onclick",
            "style",
            "url(",
            "<img",
            "javascript:",
            "data:",
            "href",
            "<form",
            "<input",
            "<iframe",
            "<object",
            "<svg",
            "<video",
            "background",
            "<link",
            "<base",
            "<meta",
        ] {
            assert!(!clean.contains(gone), "{gone:?} left in {clean}");
        }
        assert!(clean.contains("Hallo <b>daar</b>"), "{clean}");
        assert!(clean.contains("klik") && clean.contains("link"), "{clean}");
        assert!(clean.contains("<td>cel</td>"), "{clean}");
    }

    #[test]
    fn the_html_part_of_a_stored_mail_is_found_and_cleaned() {
        let raw = "From: a@gi.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n\
            Content-Type: text/plain\r\n\r\ntekst\r\n--b\r\nContent-Type: text/html\r\n\r\n\
            <p>html <img src=\"https://evil.example/p.gif\"></p>\r\n--b--\r\n";
        let stored = data_encoding::BASE64.encode(raw.as_bytes());
        let html = sanitised_html_of(&stored).unwrap();
        assert!(html.contains("<p>html </p>"), "{html}");
        let plain = "From: a@gi.example\r\nSubject: s\r\n\r\nalleen tekst\r\n";
        assert_eq!(
            sanitised_html_of(&data_encoding::BASE64.encode(plain.as_bytes())),
            None
        );
    }
}
