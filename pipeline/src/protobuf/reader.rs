//! Reading protobuf's wire format from one contiguous slice, for the OTLP decoders beside it.
//!
//! Everything here answers [`Fallback`] at the first thing it does not handle exactly as prost would
//! (a malformed varint, a length past the end, a group, a wire type a field does not have): the
//! caller then decodes the whole request with prost, which accepts or refuses it as it always did.

/// The fast decoder stepped aside; prost decodes this request instead.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fallback;

pub(crate) type Fast<T> = Result<T, Fallback>;

pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const I32: u8 = 5;

/// The unread rest of one message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline(always)]
    pub(crate) fn varint(&mut self) -> Fast<u64> {
        match self.buf.first() {
            Some(&b) if b < 0x80 => {
                self.buf = &self.buf[1..];
                Ok(u64::from(b))
            }
            _ => self.long_varint(),
        }
    }

    fn long_varint(&mut self) -> Fast<u64> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().take(10).enumerate() {
            // prost refuses a tenth byte that would overflow 64 bits.
            if i == 9 && b > 1 {
                return Err(Fallback);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(Fallback)
    }

    /// The next field's number and wire type.
    #[inline(always)]
    pub(crate) fn key(&mut self) -> Fast<(u32, u8)> {
        let key = u32::try_from(self.varint()?).map_err(|_| Fallback)?;
        match key >> 3 {
            0 => Err(Fallback),
            field => Ok((field, (key & 7) as u8)),
        }
    }

    /// A length-delimited field's bytes.
    #[inline(always)]
    pub(crate) fn bytes(&mut self) -> Fast<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| Fallback)?;
        self.take(len)
    }

    #[inline(always)]
    fn take(&mut self, len: usize) -> Fast<&'a [u8]> {
        if len > self.buf.len() {
            return Err(Fallback);
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    #[inline]
    pub(crate) fn fixed64(&mut self) -> Fast<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| Fallback)?))
    }

    #[inline]
    pub(crate) fn fixed32(&mut self) -> Fast<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().map_err(|_| Fallback)?))
    }

    /// A string field; invalid UTF-8 is prost's to refuse.
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Fast<String> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| Fallback)
    }

    #[inline]
    pub(crate) fn vec(&mut self) -> Fast<Vec<u8>> {
        Ok(self.bytes()?.to_vec())
    }

    /// Steps over a field this message does not know (prost ignores those too), or a group.
    pub(crate) fn skip(&mut self, wire: u8) -> Fast<()> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            I32 => self.take(4).map(drop),
            _ => Err(Fallback),
        }
    }

    /// How many length-delimited fields numbered `fields[i]` the rest of this message holds, read
    /// ahead without consuming: repeated fields are then allocated once, at their final size, where
    /// pushing one by one would grow (and copy) each vector several times.
    pub(crate) fn count<const N: usize>(&self, fields: [u32; N]) -> Fast<[usize; N]> {
        let mut ahead = Reader { buf: self.buf };
        let mut counts = [0; N];
        while !ahead.is_empty() {
            let (field, wire) = ahead.key()?;
            if wire == LEN {
                if let Some(i) = fields.iter().position(|&f| f == field) {
                    counts[i] += 1;
                }
            }
            ahead.skip(wire)?;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_as_prost_decodes_them() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(v, &mut buf);
            assert_eq!(Reader::new(&buf).varint(), Ok(v), "{v}");
        }
        // Not minimal, still accepted by prost.
        assert_eq!(Reader::new(&[0x81, 0x80, 0x00]).varint(), Ok(1));
    }

    #[test]
    fn broken_varints_fall_back() {
        assert_eq!(Reader::new(&[]).varint(), Err(Fallback));
        assert_eq!(Reader::new(&[0x80, 0x80]).varint(), Err(Fallback));
        let eleven = [0xff; 11];
        assert_eq!(Reader::new(&eleven).varint(), Err(Fallback));
        let mut overflow = [0xff; 10];
        overflow[9] = 0x02;
        assert_eq!(Reader::new(&overflow).varint(), Err(Fallback));
    }

    #[test]
    fn lengths_past_the_end_fall_back() {
        assert_eq!(Reader::new(&[5, 1, 2]).bytes(), Err(Fallback));
        assert_eq!(Reader::new(&[1, 2, 3, 4]).fixed64(), Err(Fallback));
    }

    #[test]
    fn field_zero_and_groups_fall_back() {
        assert_eq!(Reader::new(&[0x02]).key(), Err(Fallback));
        let mut r = Reader::new(&[0x0b]);
        let (_, wire) = r.key().unwrap();
        assert_eq!(r.skip(wire), Err(Fallback));
    }

    #[test]
    fn count_reads_ahead_without_consuming() {
        // field 1 LEN "a", field 2 varint 7, field 1 LEN "", field 3 LEN "xy"
        let buf = [0x0a, 1, b'a', 0x10, 7, 0x0a, 0, 0x1a, 2, b'x', b'y'];
        let r = Reader::new(&buf);
        assert_eq!(r.count([1, 3, 2]), Ok([2, 1, 0]));
        assert!(!r.is_empty());
    }
}
