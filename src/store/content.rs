//! The stored form of a message: one zstd frame holding the raw bytes and the extracted text.
//! The text is mostly a copy of the raw bytes, so after them it compresses to almost nothing.

use anyhow::{bail, Context, Result};

/// Packs `raw` and `text` into one compressed frame: `u32` LE raw length, raw, text.
pub fn pack_content(
    zstd: &mut zstd::bulk::Compressor<'static>,
    raw: &[u8],
    text: &str,
) -> Result<Vec<u8>> {
    let Ok(raw_len) = u32::try_from(raw.len()) else {
        bail!("message of {} bytes is too large to store", raw.len());
    };
    let mut plain = Vec::with_capacity(4 + raw.len() + text.len());
    plain.extend_from_slice(&raw_len.to_le_bytes());
    plain.extend_from_slice(raw);
    plain.extend_from_slice(text.as_bytes());
    zstd.compress(&plain).context("zstd compression failed")
}

/// Frames that say they hold more than this are decoded as a stream instead of into one
/// buffer of the size they claim.
const MAX_FRAME: u64 = 256 << 20;

thread_local! {
    /// One decompression context per thread, reused: creating one costs more than
    /// decompressing a typical message (it probes the CPU, which traps in a VM), and a thread
    /// page decompresses a hundred.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn decompress(packed: &[u8]) -> std::io::Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(packed)
        .ok()
        .flatten()
        .filter(|&n| n <= MAX_FRAME);
    let Some(size) = size else {
        return zstd::decode_all(packed);
    };
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(packed, size as usize)
    })
}

/// Unpacks a frame made by [`pack_content`] into the raw bytes and the text.
pub fn unpack(packed: &[u8]) -> Result<(Vec<u8>, String)> {
    let mut plain = decompress(packed).context("stored message does not decompress")?;
    let Some(len_bytes) = plain.get(..4) else {
        bail!("stored message is truncated");
    };
    let raw_len =
        u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
    if plain.len() < 4 + raw_len {
        bail!("stored message is truncated");
    }
    let text = String::from_utf8_lossy(&plain[4 + raw_len..]).into_owned();
    plain.truncate(4 + raw_len);
    plain.drain(..4);
    Ok((plain, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut z = zstd::bulk::Compressor::new(1).expect("zstd");
        for (raw, text) in [
            (&b""[..], ""),
            (b"Subject: x\n\nhi\n", "hi\n"),
            (b"\x00\xff", "t\u{e9}xt"),
        ] {
            let packed = pack_content(&mut z, raw, text).expect("pack");
            let (r, t) = unpack(&packed).expect("unpack");
            assert_eq!((r.as_slice(), t.as_str()), (raw, text));
        }
        assert!(unpack(b"garbage").is_err());
    }
}
