//! Confluent's wire format: a magic byte `0`, the writer schema's registry id as a 4-byte
//! big-endian number, then the Avro binary datum.
//!
//! ```text
//! 00 | 00 00 00 2a | 0a 30 62 39 ...
//! magic   id 42      datum
//! ```

/// The first byte of every Confluent-framed record.
pub const MAGIC: u8 = 0;

/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a Confluent-framed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the value is empty")]
    Empty,
    #[error(
        "the value is {0} bytes long, shorter than the 5-byte header (magic byte and schema id)"
    )]
    TooShort(usize),
    #[error("the first byte is {0:#04x}, not the magic byte 0x00")]
    BadMagic(u8),
}

/// The 5-byte header announcing schema `id`.
pub fn header(id: u32) -> [u8; HEADER_LEN] {
    let [a, b, c, d] = id.to_be_bytes();
    [MAGIC, a, b, c, d]
}

/// Splits a framed record into its schema id and its datum.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    match bytes {
        [] => Err(FrameError::Empty),
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [MAGIC, ..] => Err(FrameError::TooShort(bytes.len())),
        [other, ..] => Err(FrameError::BadMagic(*other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_split_agree() {
        let mut framed = header(0x0102_0304).to_vec();
        assert_eq!(framed, [0, 1, 2, 3, 4]);
        framed.extend_from_slice(b"datum");
        assert_eq!(split(&framed), Ok((0x0102_0304, &b"datum"[..])));
        // An empty datum is a valid frame (a record with no fields encodes to nothing).
        assert_eq!(split(&header(7)), Ok((7, &[][..])));
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert_eq!(split(&[]), Err(FrameError::Empty));
        assert_eq!(split(&[0, 0, 1]), Err(FrameError::TooShort(3)));
        assert_eq!(split(&[1, 0, 0, 0, 1, 2]), Err(FrameError::BadMagic(1)));
        // JSON sent to an Avro topic is the common mistake.
        let json = split(br#"{"event_id":"x"}"#).unwrap_err();
        assert_eq!(json, FrameError::BadMagic(b'{'));
        assert_eq!(
            json.to_string(),
            "the first byte is 0x7b, not the magic byte 0x00"
        );
    }
}
