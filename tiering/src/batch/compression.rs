//! Codecs of the records section, as Kafka defines them in the low three bits of `attributes`:
//! gzip, snappy (xerial-framed as the Java client writes it, or raw), lz4 (frame format) and zstd.
//! Decompression is bounded so a small hostile batch cannot expand into gigabytes.

use std::io::{Read, Write};

use crate::error::BatchError;

/// Largest records section tierlog will inflate one batch to.
pub const MAX_DECOMPRESSED_BYTES: usize = 128 << 20;

/// The compression codec of a batch's records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK: usize = 32 * 1024;

impl Compression {
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    pub fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        Ok(match attributes & 0x7 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            code => return Err(BatchError::UnknownCompression { code: code as u8 }),
        })
    }

    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Inflates a records section, refusing output beyond [`MAX_DECOMPRESSED_BYTES`].
    pub fn decompress(self, data: &[u8]) -> Result<Vec<u8>, BatchError> {
        let codec = self.name();
        let err = |e: &dyn std::fmt::Display| BatchError::Decompress { codec, reason: e.to_string() };
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), codec),
            Compression::Snappy => snappy_decompress(data),
            Compression::Lz4 => read_bounded(lz4::Decoder::new(data).map_err(|e| err(&e))?, codec),
            Compression::Zstd => read_bounded(zstd::stream::read::Decoder::new(data).map_err(|e| err(&e))?, codec),
        }
    }

    /// Compresses a records section the way the Kafka Java client does.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(data).expect("invariant: writing to a Vec cannot fail");
                enc.finish().expect("invariant: writing to a Vec cannot fail")
            }
            Compression::Snappy => {
                let mut out = Vec::with_capacity(data.len() / 2 + XERIAL_HEADER_LEN);
                out.extend_from_slice(XERIAL_MAGIC);
                out.extend_from_slice(&1i32.to_be_bytes()); // version
                out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
                let mut enc = snap::raw::Encoder::new();
                for block in data.chunks(XERIAL_BLOCK) {
                    let c = enc.compress_vec(block).expect("invariant: block under snappy's limit");
                    out.extend_from_slice(&(c.len() as u32).to_be_bytes());
                    out.extend_from_slice(&c);
                }
                out
            }
            Compression::Lz4 => {
                let mut enc = lz4::EncoderBuilder::new()
                    .level(4)
                    .block_mode(lz4::BlockMode::Independent)
                    .build(Vec::new())
                    .expect("invariant: lz4 encoder over a Vec");
                enc.write_all(data).expect("invariant: writing to a Vec cannot fail");
                let (out, res) = enc.finish();
                res.expect("invariant: finishing an lz4 frame in memory");
                out
            }
            Compression::Zstd => zstd::bulk::compress(data, 3).expect("invariant: zstd compression in memory"),
        }
    }
}

fn read_bounded(reader: impl Read, codec: &'static str) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Decompress { codec, reason: e.to_string() })?;
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err(BatchError::DecompressedTooLarge { codec, limit: MAX_DECOMPRESSED_BYTES });
    }
    Ok(out)
}

fn snappy_raw(block: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    let err = |reason: String| BatchError::Decompress { codec: "snappy", reason };
    let n = snap::raw::decompress_len(block).map_err(|e| err(e.to_string()))?;
    if out.len() + n > MAX_DECOMPRESSED_BYTES {
        return Err(BatchError::DecompressedTooLarge { codec: "snappy", limit: MAX_DECOMPRESSED_BYTES });
    }
    let start = out.len();
    out.resize(start + n, 0);
    snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|e| err(e.to_string()))?;
    Ok(())
}

fn snappy_decompress(data: &[u8]) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    if data.len() < XERIAL_HEADER_LEN || &data[..8] != XERIAL_MAGIC {
        snappy_raw(data, &mut out)?;
        return Ok(out);
    }
    let mut rest = &data[XERIAL_HEADER_LEN..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(BatchError::Decompress { codec: "snappy", reason: "truncated xerial block length".into() });
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("invariant: 4 bytes")) as usize;
        let block = rest.get(4..4 + len).ok_or_else(|| BatchError::Decompress {
            codec: "snappy",
            reason: format!("xerial block of {len} bytes runs past the data"),
        })?;
        snappy_raw(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn roundtrip_every_codec(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            for c in Compression::ALL {
                prop_assert_eq!(c.decompress(&c.compress(&data)).unwrap(), data.clone());
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2_000)) {
            for c in Compression::ALL {
                let _ = c.decompress(&data);
            }
        }
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let data = b"hello hello hello hello".repeat(100);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(Compression::Snappy.decompress(&raw).unwrap(), data);
    }

    #[test]
    fn decompression_is_bounded() {
        let bomb = Compression::Zstd.compress(&vec![0u8; MAX_DECOMPRESSED_BYTES + 10]);
        assert!(matches!(Compression::Zstd.decompress(&bomb), Err(BatchError::DecompressedTooLarge { .. })));
    }
}
