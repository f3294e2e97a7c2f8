//! Writing a stream's frames to its socket: what the socket takes at once (no waiting, usable
//! from any thread holding the socket), and the rest with waiting.

use std::io::IoSlice;

use bytes::Bytes;
use tokio::net::TcpStream;

/// Where a write of `chunks` stands: the chunk, and the offset in it.
pub type Pos = (usize, usize);

/// The slices of `chunks` from `pos` (at most 16: one `writev`).
fn slices<'a>(chunks: &'a [Bytes], (i, off): Pos, out: &mut [IoSlice<'a>; 16]) -> usize {
    let mut k = 0;
    for (j, c) in chunks[i..].iter().enumerate().take(16) {
        out[k] = IoSlice::new(if j == 0 { &c[off..] } else { &c[..] });
        k += 1;
    }
    k
}

/// `pos` moved past `n` written bytes.
fn advance(chunks: &[Bytes], (mut i, mut off): Pos, mut n: usize) -> Pos {
    while n > 0 && i < chunks.len() {
        let left = chunks[i].len() - off;
        if n >= left {
            n -= left;
            i += 1;
            off = 0;
        } else {
            off += n;
            n = 0;
        }
    }
    (i, off)
}

/// True when `pos` is past the last chunk.
pub fn done(chunks: &[Bytes], pos: Pos) -> bool {
    pos.0 >= chunks.len()
}

/// The bytes of `chunks` not yet written at `pos` (shared, not copied).
pub fn rest(chunks: &[Bytes], (i, off): Pos) -> Vec<Bytes> {
    chunks[i.min(chunks.len())..]
        .iter()
        .enumerate()
        .map(|(j, c)| if j == 0 { c.slice(off..) } else { c.clone() })
        .collect()
}

/// Writes what the socket takes now, without waiting; returns how far it got.
pub fn write_now(io: &TcpStream, chunks: &[Bytes]) -> std::io::Result<Pos> {
    let mut pos = (0, 0);
    while !done(chunks, pos) {
        let mut buf = [IoSlice::new(&[]); 16];
        let k = slices(chunks, pos, &mut buf);
        match io.try_write_vectored(&buf[..k]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => pos = advance(chunks, pos, n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(pos)
}

/// Writes all of `chunks` from `pos`, waiting for the socket as needed.
pub async fn write_all(io: &TcpStream, chunks: &[Bytes], mut pos: Pos) -> std::io::Result<()> {
    while !done(chunks, pos) {
        io.writable().await?;
        let mut buf = [IoSlice::new(&[]); 16];
        let k = slices(chunks, pos, &mut buf);
        match io.try_write_vectored(&buf[..k]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => pos = advance(chunks, pos, n),
            // Readiness was stale (another write took the room): wait again.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks() -> Vec<Bytes> {
        vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")]
    }

    #[test]
    fn positions_advance_across_chunks() {
        let c = chunks();
        assert_eq!(advance(&c, (0, 0), 2), (0, 2));
        assert_eq!(advance(&c, (0, 2), 1), (1, 0));
        assert_eq!(advance(&c, (0, 1), 4), (1, 2));
        assert_eq!(advance(&c, (0, 0), 7), (2, 0));
        assert!(done(&c, (2, 0)));
        assert!(!done(&c, (1, 3)));
    }

    #[test]
    fn the_rest_is_what_was_not_written() {
        let c = chunks();
        let r: Vec<u8> = rest(&c, (0, 1)).concat();
        assert_eq!(r, b"bcdefg");
        let r: Vec<u8> = rest(&c, (1, 3)).concat();
        assert_eq!(r, b"g");
        assert!(rest(&c, (2, 0)).is_empty());
    }
}
