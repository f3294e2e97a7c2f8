//! Attachments: uploads (multipart, streamed), thumbnails, serving only to members with safe
//! headers, the upload limit, deletion, and live delivery.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageEncoder, ImageFormat, Rgb, RgbImage};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};

use crate::helpers::{Client, LIVE, Resp, TestApp, about_my_account};

/// A `w` x `h` PNG, left half red, right half blue.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A TIFF-style EXIF block with one entry: orientation `o`.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut v = b"MM\0\x2a\0\0\0\x08".to_vec();
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&0x0112u16.to_be_bytes());
    v.extend_from_slice(&3u16.to_be_bytes());
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&o.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    v
}

/// Posts a message with files as multipart (as live.js does when `fetch`, else as a plain form).
pub async fn upload(
    c: &Client,
    conversation: i64,
    body: &str,
    files: &[(&str, Vec<u8>)],
    fetch: bool,
) -> Resp {
    let mut form = Form::new().text("body", body.to_owned());
    for (name, bytes) in files {
        form = form.part(
            "files",
            Part::bytes(bytes.clone()).file_name((*name).to_owned()),
        );
    }
    let mut rb = c
        .http
        .post(format!("{}/conversations/{conversation}/messages", c.base))
        .multipart(form);
    if fetch {
        rb = rb.header("X-Parley-Fetch", "1");
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let location = headers
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    Resp {
        status,
        location,
        headers,
        body: r.text().await.unwrap_or_default(),
    }
}

/// Posts files as multipart without a Content-Length (each file a stream of 64 KiB chunks), so
/// the server learns the size only as it reads.
async fn upload_chunked(c: &Client, conversation: i64, files: &[(&str, Vec<u8>)]) -> Resp {
    let mut form = Form::new().text("body", "");
    for (name, bytes) in files {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(64 * 1024).map(|b| Ok(b.to_vec())).collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        form = form.part("files", Part::stream(body).file_name((*name).to_owned()));
    }
    let r = c
        .http
        .post(format!("{}/conversations/{conversation}/messages", c.base))
        .header("X-Parley-Fetch", "1")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    Resp {
        status,
        location: None,
        headers,
        body: r.text().await.unwrap_or_default(),
    }
}

/// A GET whose body is bytes.
async fn fetch(c: &Client, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = c
        .http
        .get(format!("{}{path}", c.base))
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap().to_vec())
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The attachment URLs in a message fragment or page, in order.
fn attachment_urls(r: &Resp) -> Vec<String> {
    let html = r.html();
    let sel = scraper::Selector::parse("a.attachment").unwrap();
    html.select(&sel)
        .filter_map(|a| a.value().attr("href").map(str::to_owned))
        .collect()
}

/// Files stored in the attachments directory (not counting `tmp/`), and those in `tmp/`.
fn files_in(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let list = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default()
    };
    (list(dir), list(&dir.join("tmp")))
}

fn files_dir(app: &TestApp) -> PathBuf {
    app.state.config.files_dir()
}

#[tokio::test]
async fn an_image_gets_a_thumbnail_and_is_served_inline_to_members_with_safe_headers() {
    // Arrange
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    // Act
    let r = upload(&ann, c, "look", &[("cat.png", png(800, 400))], true).await;
    // Assert
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.count("article.message .attachments a.attachment.image img"),
        1
    );
    let urls = attachment_urls(&r);
    assert_eq!(urls.len(), 1);
    let img = r.attr("a.attachment.image img", "src").unwrap();
    assert_eq!(img, format!("{}/thumbnail", urls[0]));
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert_eq!(attachment_urls(&page), urls);
    let (status, h, bytes) = fetch(&bob, &urls[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "image/png");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert!(header(&h, "content-security-policy").contains("sandbox"));
    assert!(header(&h, "content-disposition").starts_with("inline;"));
    let full = image::load_from_memory(&bytes).unwrap();
    assert_eq!((full.width(), full.height()), (800, 400));
    let (status, h, bytes) = fetch(&bob, &img).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "image/jpeg");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    let thumb = image::load_from_memory(&bytes).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 160));
}

#[tokio::test]
async fn several_files_go_with_one_message_which_may_have_no_text() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let r = upload(
        &ann,
        c,
        "",
        &[
            ("notes ü.txt", b"hello\n".to_vec()),
            ("a.png", png(10, 10)),
            ("b.bin", vec![0u8; 3000]),
        ],
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = bob.get(&format!("/conversations/{c}")).await;
    let urls = attachment_urls(&page);
    assert_eq!(urls.len(), 3);
    assert_eq!(page.count("article.message"), 1);
    assert_eq!(
        page.text("a.attachment.file .file-name").as_deref(),
        Some("notes ü.txt")
    );
    assert_eq!(
        page.text("a.attachment.file .file-size").as_deref(),
        Some("6 B")
    );
    let (status, h, bytes) = fetch(&bob, &urls[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, b"hello\n");
    assert_eq!(header(&h, "content-type"), "application/octet-stream");
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&h, "content-disposition"),
        "attachment; filename=\"notes _.txt\"; filename*=UTF-8''notes%20%C3%BC.txt"
    );
    // A 10 x 10 image is its own thumbnail; the third file is a download.
    assert_eq!(page.count("a.attachment.image"), 1);
    assert_eq!(page.count("a.attachment.file"), 2);
    // The conversation list previews it as an attachment.
    let list = bob.get("/conversations").await;
    assert!(
        list.text(&format!("#preview-{c}"))
            .is_some_and(|t| t.contains("📎 Attachment")),
        "{:?}",
        list.text(&format!("#preview-{c}"))
    );
    let (stored, tmp) = files_in(&files_dir(&app));
    assert_eq!(stored.len(), 4, "three files and one thumbnail: {stored:?}");
    assert!(tmp.is_empty());
}

#[tokio::test]
async fn text_without_files_posts_as_before_and_nothing_at_all_is_refused() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let r = upload(&ann, c, "just words", &[], true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.text("article.message .body").as_deref(),
        Some("just words")
    );
    assert_eq!(r.count("a.attachment"), 0);
    // Neither text nor files: the same rule as a plain post.
    let r = upload(&ann, c, "  ", &[], false).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Write a message first."));
    // The url-encoded contract is unchanged.
    let r = ann
        .post_fetch(
            &format!("/conversations/{c}/messages"),
            &[("body", "plain")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = ann
        .post(&format!("/conversations/{c}/messages"), &[("body", "")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_upload_over_the_limit_gets_413_and_leaves_no_file() {
    let app = TestApp::spawn_with(|c| c.max_upload_mib = 1).await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let big = vec![7u8; 1024 * 1024 + 512 * 1024];
    let r = upload(&ann, c, "too much", &[("big.bin", big.clone())], true).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body.contains("at most 1 MiB"), "{}", r.body);
    // Without JS: the page, with the reason in the composer.
    let r = upload(&ann, c, "too much", &[("big.bin", big)], false).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.text(&format!("#composer-error-{c}"))
            .unwrap()
            .contains("too large")
    );
    // Sent without a length (chunked), two files each under the limit, together over it: the
    // first was written to disk whole, the second cut off; both are removed.
    let half = vec![1u8; 700 * 1024];
    let r = upload_chunked(&ann, c, &[("a.bin", half.clone()), ("b.bin", half)]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let (stored, tmp) = files_in(&files_dir(&app));
    assert!(stored.is_empty() && tmp.is_empty(), "{stored:?} {tmp:?}");
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert_eq!(page.count("article.message"), 0);
    // Under the limit still works.
    let r = upload(&ann, c, "", &[("ok.bin", vec![1u8; 1000])], true).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn too_many_files_and_a_stranger_s_upload_leave_nothing_behind() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let c = ann.direct_with(&bob).await;
    let many: Vec<(&str, Vec<u8>)> = (0..11).map(|_| ("x.txt", b"x".to_vec())).collect();
    let r = upload(&ann, c, "", &many, true).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("At most 10 files"));
    let r = upload(&carl, c, "hi", &[("x.txt", b"x".to_vec())], true).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let (stored, tmp) = files_in(&files_dir(&app));
    assert!(stored.is_empty() && tmp.is_empty(), "{stored:?} {tmp:?}");
    // A read-only (unfriended) conversation takes no files either.
    ann.post(&format!("/friends/{}/remove", bob.id), &[]).await;
    let r = upload(&ann, c, "", &[("x.txt", b"x".to_vec())], true).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (stored, _) = files_in(&files_dir(&app));
    assert!(stored.is_empty(), "{stored:?}");
}

#[tokio::test]
async fn strangers_and_removed_members_get_404_for_files_and_thumbnails() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let g = ann.group("pics", &[&bob]).await;
    let r = upload(&ann, g, "", &[("p.png", png(40, 20))], true).await;
    let url = attachment_urls(&r).remove(0);
    let thumb = format!("{url}/thumbnail");
    assert_eq!(fetch(&bob, &url).await.0, StatusCode::OK);
    assert_eq!(fetch(&bob, &thumb).await.0, StatusCode::OK);
    for path in [&url, &thumb] {
        assert_eq!(fetch(&carl, path).await.0, StatusCode::NOT_FOUND);
    }
    // The same id under another conversation, and an unknown id, look the same.
    let other = ann.direct_with(&bob).await;
    let id = url.rsplit('/').next().unwrap();
    let elsewhere = format!("/conversations/{other}/attachments/{id}");
    assert_eq!(fetch(&bob, &elsewhere).await.0, StatusCode::NOT_FOUND);
    let unknown = format!("/conversations/{g}/attachments/999999");
    assert_eq!(fetch(&bob, &unknown).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        fetch(&bob, &format!("{unknown}/thumbnail")).await.0,
        StatusCode::NOT_FOUND
    );
    // Removed from the group: gone for bob too.
    let r = ann
        .post(
            &format!("/conversations/{g}/members/{}/remove", bob.id),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for path in [&url, &thumb] {
        assert_eq!(fetch(&bob, path).await.0, StatusCode::NOT_FOUND);
    }
    // Anonymous: sent to log in.
    let anon = app.client();
    assert_eq!(fetch(&anon, &url).await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn html_and_svg_uploads_are_served_as_downloads_with_nosniff() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let svg =
        br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec();
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    // A file that claims to be a PNG but is HTML inside.
    let fake = b"<html><body>not a png</body></html>".to_vec();
    let r = upload(
        &ann,
        c,
        "",
        &[("x.svg", svg.clone()), ("x.html", html), ("x.png", fake)],
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.count("a.attachment.image"), 0);
    let urls = attachment_urls(&r);
    assert_eq!(urls.len(), 3);
    for (url, name) in urls.iter().zip(["x.svg", "x.html", "x.png"]) {
        let (status, h, _) = fetch(&bob, url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&h, "content-type"), "application/octet-stream");
        assert_eq!(header(&h, "x-content-type-options"), "nosniff");
        assert!(
            header(&h, "content-disposition")
                .starts_with(&format!("attachment; filename=\"{name}\"")),
            "{:?}",
            h
        );
        assert_eq!(
            fetch(&bob, &format!("{url}/thumbnail")).await.0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(fetch(&bob, &urls[0]).await.2, svg);
}

#[tokio::test]
async fn deleting_a_message_or_its_group_deletes_the_files() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let g = ann.group("pics", &[&bob]).await;
    let r = upload(&ann, g, "one", &[("p.png", png(40, 20))], true).await;
    let m: i64 = r
        .attr("article.message", "id")
        .unwrap()
        .trim_start_matches("message-")
        .parse()
        .unwrap();
    let url = attachment_urls(&r).remove(0);
    upload(&ann, g, "two", &[("t.txt", b"t".to_vec())], true).await;
    assert_eq!(files_in(&files_dir(&app)).0.len(), 3);
    let r = ann
        .post(&format!("/conversations/{g}/messages/{m}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(files_in(&files_dir(&app)).0.len(), 1);
    assert_eq!(fetch(&bob, &url).await.0, StatusCode::NOT_FOUND);
    let r = ann.post(&format!("/conversations/{g}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(files_in(&files_dir(&app)).0.is_empty());
}

#[tokio::test]
async fn a_message_with_files_arrives_live_for_members_and_nobody_else() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let c = ann.direct_with(&bob).await;
    let mut b = bob.stream().await;
    let mut x = carl.stream().await;
    let r = upload(
        &ann,
        c,
        "",
        &[("p.png", png(40, 20)), ("d.txt", b"d".to_vec())],
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let urls = attachment_urls(&r);
    let f = b.expect_target("append", &format!("messages-{c}")).await;
    let html = f.content();
    assert!(html.contains(&format!("href=\"{}\"", urls[0])), "{html}");
    assert!(
        html.contains(&format!("src=\"{}/thumbnail\"", urls[0])),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"{}\"", urls[1])), "{html}");
    x.assert_none(Duration::from_millis(300), "anything", |f| {
        f.event != "presence" && !about_my_account(f)
    })
    .await;
    // A fresh load shows what the stream showed.
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert_eq!(attachment_urls(&page), urls);
    let _ = LIVE;
}

#[tokio::test]
async fn a_jpeg_with_an_exif_orientation_is_shown_upright_without_its_metadata() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    // 60 wide, 20 high; orientation 6: to be shown turned 90° clockwise (20 wide, 60 high).
    let img = RgbImage::from_fn(60, 20, |x, _| {
        if x < 30 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut jpeg = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut jpeg, 95);
    enc.set_exif_metadata(exif_orientation(6)).unwrap();
    enc.write_image(img.as_raw(), 60, 20, image::ExtendedColorType::Rgb8)
        .unwrap();
    let r = upload(&ann, c, "", &[("phone.jpg", jpeg)], true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.attr("a.attachment img", "width").as_deref(), Some("20"));
    assert_eq!(r.attr("a.attachment img", "height").as_deref(), Some("60"));
    let url = attachment_urls(&r).remove(0);
    let (_, h, bytes) = fetch(&bob, &url).await;
    assert_eq!(header(&h, "content-type"), "image/jpeg");
    let full = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(full.dimensions(), (20, 60));
    // Red (left) is now on top.
    assert!(full.get_pixel(10, 5).0[0] > 200 && full.get_pixel(10, 55).0[2] > 200);
    // No EXIF left: the bytes hold no "Exif" marker.
    assert!(!bytes.windows(4).any(|w| w == b"Exif"));
}

#[tokio::test]
async fn a_backup_carries_the_attachments_and_the_restored_instance_serves_them() {
    let app = TestApp::on(crate::helpers::TestDb::sqlite()).await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let r = upload(
        &ann,
        c,
        "",
        &[("p.png", png(40, 20)), ("d.txt", b"doc".to_vec())],
        true,
    )
    .await;
    let urls = attachment_urls(&r);
    let (_, _, png_bytes) = fetch(&bob, &urls[0]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.db");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["backup", file.to_str().unwrap()])
        .env("DATABASE_URL", &app.db.url)
        .env_remove("PARLEY_FILES_DIR")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    // Two files and one thumbnail.
    assert!(said.contains("attachments: 3 files"), "{said}");
    assert!(dir.path().join("b-files").is_dir());
    // Restore: Parley started on the backup finds its files beside it.
    let restored = TestApp::on(crate::helpers::TestDb::sqlite_at(dir, "b.db")).await;
    let bob2 = restored.login("bob").await;
    let (status, _, bytes) = fetch(&bob2, &urls[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, png_bytes);
    assert_eq!(
        fetch(&bob2, &format!("{}/thumbnail", urls[0])).await.0,
        StatusCode::OK
    );
    assert_eq!(fetch(&bob2, &urls[1]).await.2, b"doc");
}

#[tokio::test]
async fn an_upload_cut_off_by_the_client_leaves_no_file() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    // 256 KiB arrive, then the client gives up mid-file.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(vec![1u8; 128 * 1024]),
        Ok(vec![2u8; 128 * 1024]),
        Err(std::io::Error::other("the client went away")),
    ];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let form = Form::new()
        .text("body", "")
        .part("files", Part::stream(body).file_name("cut.bin"));
    let sent = ann
        .http
        .post(format!("{}/conversations/{c}/messages", ann.base))
        .multipart(form)
        .send()
        .await;
    assert!(sent.is_err(), "the client's own send fails");
    // The server notices the cut and removes what it had written.
    let dir = files_dir(&app);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (stored, tmp) = files_in(&dir);
        if stored.is_empty() && tmp.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind: {stored:?} {tmp:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert_eq!(page.count("article.message"), 0);
}

#[tokio::test]
async fn the_text_of_a_message_with_files_may_be_edited_away_but_not_of_one_without() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let r = upload(&ann, c, "caption", &[("d.txt", b"d".to_vec())], true).await;
    let m: i64 = r
        .attr("article.message", "id")
        .unwrap()
        .trim_start_matches("message-")
        .parse()
        .unwrap();
    let plain = ann.say(c, "words").await;
    let r = ann
        .post(
            &format!("/conversations/{c}/messages/{m}"),
            &[("body", " ")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert_eq!(
        page.text(&format!("#message-{m} .body")).as_deref(),
        Some("")
    );
    assert_eq!(page.count(&format!("#message-{m} a.attachment")), 1);
    let r = ann
        .post(
            &format!("/conversations/{c}/messages/{plain}"),
            &[("body", " ")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Bob may not edit Ann's message, text or none.
    let r = bob
        .post(&format!("/conversations/{c}/messages/{m}"), &[("body", "")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
