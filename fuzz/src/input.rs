//! Reading structured values out of fuzz input, and writing seeds in the same layout.
//!
//! Every read succeeds: past the end of the input it yields zeros (or an empty slice), so any
//! byte string is a valid input and the fuzzer never wastes runs on "too short".

/// A cursor over fuzz input.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    /// A little-endian integer of `N` bytes, zero-extended past the end of the input.
    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.bytes(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.le::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }

    /// A value in `0..n` (`n > 0`) from one byte.
    pub fn below(&mut self, n: u8) -> u8 {
        self.u8() % n
    }
}

/// Builds an input byte by byte, in the layout [`Input`] reads: used by the seed generator.
#[derive(Debug, Default)]
pub struct Output {
    pub bytes: Vec<u8>,
}

impl Output {
    #[must_use]
    pub fn new() -> Output {
        Output::default()
    }

    pub fn u8(&mut self, v: u8) -> &mut Output {
        self.bytes.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Output {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Output {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Output {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Output {
        self.bytes.extend_from_slice(v);
        self
    }
}
