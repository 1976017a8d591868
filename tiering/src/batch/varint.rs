//! Zigzag varints (protobuf style), as used by every length and delta in a RecordBatch v2 record.

/// Reads a zigzag varint of at most `max_bytes` bytes from the front of `buf`, returning the value
/// and how many bytes it took, or `None` when the bytes run out or the varint is too long.
#[inline]
fn read_zigzag(buf: &[u8], max_bytes: usize) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &b) in buf.iter().take(max_bytes).enumerate() {
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Some((value, i + 1));
        }
    }
    None
}

/// A 32-bit zigzag varint (at most 5 bytes).
#[inline]
pub fn read_varint(buf: &[u8]) -> Option<(i32, usize)> {
    let (v, n) = read_zigzag(buf, 5)?;
    i32::try_from(v).ok().map(|v| (v, n))
}

/// A 64-bit zigzag varint (at most 10 bytes).
#[inline]
pub fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    read_zigzag(buf, 10)
}

/// Appends `v` as a zigzag varint.
#[inline]
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Appends `v` as a zigzag varint (32-bit range).
#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, i64::from(v));
}

/// The encoded size of `v` as a zigzag varint.
#[inline]
pub fn varlong_len(v: i64) -> usize {
    let raw = ((v << 1) ^ (v >> 63)) as u64;
    let bits = 64 - raw.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varlong_roundtrip(v in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(v));
            prop_assert_eq!(read_varlong(&out), Some((v, out.len())));
        }

        #[test]
        fn varint_roundtrip(v in any::<i32>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(read_varint(&out), Some((v, out.len())));
        }
    }

    #[test]
    fn known_encodings() {
        let enc = |v| {
            let mut o = Vec::new();
            put_varlong(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(63), [126]);
        assert_eq!(enc(64), [0x80, 1]);
        assert_eq!(read_varint(&[0x80]), None);
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), None);
    }
}
