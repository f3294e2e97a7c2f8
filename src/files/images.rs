//! Images: recognised by their bytes, decoded within limits (a small file that claims a huge
//! canvas is refused before it is allocated), turned upright by their EXIF orientation, and
//! re-encoded, so no metadata (location, camera) survives; plus a thumbnail. Synchronous and
//! CPU-bound: called on a blocking thread, a few at a time (`Files::store`).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, ImageResult, Limits};

/// The most memory one decode may take (the decoded pixels count).
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// The largest width or height decoded.
const MAX_SIDE: u32 = 12_000;
/// A thumbnail fits in this square.
pub const THUMB_SIDE: u32 = 320;

/// What processing made of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processed {
    /// The stored file's type.
    pub content_type: &'static str,
    /// False: the original bytes are kept (GIF: re-encoding would lose the animation, and GIF
    /// carries no EXIF).
    pub reencoded: bool,
    /// The thumbnail's type.
    pub thumb_type: &'static str,
    /// Thumbnail width.
    pub thumb_width: u32,
    /// Thumbnail height.
    pub thumb_height: u32,
}

/// The image types served inline, by their magic bytes; anything else is a download.
pub fn recognise(head: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(head).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => {
            Some(f)
        }
        _ => None,
    }
}

/// The MIME type of a format we serve inline.
fn mime(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "image/png",
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Gif => "image/gif",
        _ => "image/webp",
    }
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_DECODE_BYTES);
    l
}

/// Decodes `src` as `format` and applies its orientation.
pub fn decode_upright(src: &Path, format: ImageFormat) -> ImageResult<DynamicImage> {
    let mut reader = ImageReader::new(BufReader::new(File::open(src)?));
    reader.set_format(format);
    reader.limits(limits());
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Writes `img` as `format` (JPEG at quality 90, without alpha) to `out`.
fn encode(img: &DynamicImage, format: ImageFormat, out: &Path) -> ImageResult<()> {
    let mut w = BufWriter::new(File::create(out)?);
    if format == ImageFormat::Jpeg {
        let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
        rgb.write_with_encoder(JpegEncoder::new_with_quality(&mut w, 90))?;
    } else {
        img.write_to(&mut w, format)?;
    }
    std::io::Write::flush(&mut w)?;
    Ok(())
}

/// Decodes `src`, writes the upright, metadata-free image to `full` (not for GIF) and a
/// thumbnail to `thumb` (JPEG, or PNG when the image has transparency).
pub fn process(
    src: &Path,
    format: ImageFormat,
    full: &Path,
    thumb: &Path,
) -> ImageResult<Processed> {
    let img = decode_upright(src, format)?;
    let reencoded = format != ImageFormat::Gif;
    if reencoded {
        encode(&img, format, full)?;
    }
    let small = if img.width() > THUMB_SIDE || img.height() > THUMB_SIDE {
        img.thumbnail(THUMB_SIDE, THUMB_SIDE)
    } else {
        img
    };
    let thumb_format = if small.color().has_alpha() {
        ImageFormat::Png
    } else {
        ImageFormat::Jpeg
    };
    encode(&small, thumb_format, thumb)?;
    Ok(Processed {
        content_type: mime(format),
        reencoded,
        thumb_type: mime(thumb_format),
        thumb_width: small.width(),
        thumb_height: small.height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::png::PngEncoder;
    use image::{ImageEncoder, Rgb, RgbImage};

    /// A TIFF-style EXIF block with one entry: orientation `o` (big-endian).
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

    #[test]
    fn an_exif_orientation_is_applied_and_the_metadata_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 4 wide, 2 high, left half red; orientation 6: shown rotated 90° clockwise.
        let img = RgbImage::from_fn(4, 2, |x, _| {
            if x < 2 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let src = dir.path().join("src.png");
        let mut enc = PngEncoder::new(BufWriter::new(File::create(&src).expect("create")));
        enc.set_exif_metadata(exif_orientation(6)).expect("exif");
        enc.write_image(img.as_raw(), 4, 2, image::ExtendedColorType::Rgb8)
            .expect("encode");
        let (full, thumb) = (dir.path().join("full"), dir.path().join("thumb"));
        let p = process(&src, ImageFormat::Png, &full, &thumb).expect("process");
        assert_eq!((p.thumb_width, p.thumb_height), (2, 4));
        assert_eq!(p.content_type, "image/png");
        let out = ImageReader::open(&full)
            .expect("open")
            .with_guessed_format()
            .expect("guess")
            .decode()
            .expect("full decodes")
            .to_rgb8();
        assert_eq!(out.dimensions(), (2, 4));
        // Red was on the left; after a clockwise turn it is on top.
        assert_eq!(out.get_pixel(0, 0), &Rgb([255, 0, 0]));
        assert_eq!(out.get_pixel(0, 3), &Rgb([0, 0, 255]));
        let mut reader = ImageReader::open(&full).expect("open");
        reader.set_format(ImageFormat::Png);
        let mut d = reader.into_decoder().expect("decoder");
        assert_eq!(d.exif_metadata().expect("read"), None);
    }

    #[test]
    fn a_picture_claiming_a_huge_canvas_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A valid PNG header claiming 30000 x 30000 pixels, with no pixel data.
        let src = dir.path().join("bomb.png");
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&30_000u32.to_be_bytes());
        png.extend_from_slice(&30_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = [0u8; 4];
        png.extend_from_slice(&crc);
        std::fs::write(&src, &png).expect("write");
        let r = process(
            &src,
            ImageFormat::Png,
            &dir.path().join("f"),
            &dir.path().join("t"),
        );
        assert!(r.is_err());
    }

    #[test]
    fn only_four_image_types_are_recognised() {
        assert_eq!(recognise(b"\x89PNG\r\n\x1a\n0000"), Some(ImageFormat::Png));
        assert_eq!(recognise(b"GIF89a000000"), Some(ImageFormat::Gif));
        assert_eq!(recognise(b"<svg xmlns="), None);
        assert_eq!(recognise(b"<html><body>"), None);
        assert_eq!(recognise(b"BM0000000000"), None);
    }
}
