//! xorshift64: a deterministic stream of numbers for workloads (rename storms, message
//! sizes), so a failing run can be repeated exactly. Not for anything that needs real
//! randomness. The delivery bench includes this file too (`#[path]`).

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> usize {
        (lo + self.next() % (hi - lo)) as usize
    }
}
