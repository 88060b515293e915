//! Log bytes into lines for the console (pure): each chunk is scanned once,
//! and a line longer than the bound is sent in pieces, so a container that
//! prints without newlines costs a bounded buffer, never a growing one.

/// Longest line sent as one event; a longer one goes in pieces this long.
pub const MAX_LINE: usize = 16 * 1024;

/// Splits a byte stream into lines of at most `max` bytes.
pub struct Framer {
    partial: Vec<u8>,
    max: usize,
}

impl Framer {
    pub fn new(max: usize) -> Framer {
        Framer {
            partial: Vec::new(),
            max: max.max(4),
        }
    }

    /// The lines `chunk` completes, without their line ends.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            let room = self.max - self.partial.len();
            let newline = rest.iter().take(room + 1).position(|&b| b == b'\n');
            match newline {
                Some(i) => {
                    self.partial.extend_from_slice(&rest[..i]);
                    out.push(self.take(self.partial.len()));
                    rest = &rest[i + 1..];
                }
                None if rest.len() < room => {
                    self.partial.extend_from_slice(rest);
                    rest = &[];
                }
                None => {
                    self.partial.extend_from_slice(&rest[..room]);
                    rest = &rest[room..];
                    let cut = char_boundary(&self.partial);
                    out.push(self.take(cut));
                }
            }
        }
        out
    }

    /// The first `n` bytes of the partial line as a line; the rest stays.
    fn take(&mut self, n: usize) -> String {
        let line: Vec<u8> = self.partial.drain(..n).collect();
        let text = String::from_utf8_lossy(&line);
        text.strip_suffix('\r').unwrap_or(&text).to_string()
    }
}

/// Where to cut a full buffer so a UTF-8 character is not split: before
/// the last character when it is incomplete.
fn char_boundary(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=3.min(len) {
        let b = bytes[len - back];
        if b & 0b1100_0000 != 0b1000_0000 {
            // A leading byte: is its character whole?
            let need = match b {
                b if b < 0x80 => 1,
                b if b >= 0xF0 => 4,
                b if b >= 0xE0 => 3,
                b if b >= 0xC0 => 2,
                _ => 1,
            };
            return if need > back { len - back } else { len };
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks_and_at_their_ends() {
        let mut f = Framer::new(100);
        assert!(f.push(b"hel").is_empty());
        assert_eq!(f.push(b"lo\r\nwor"), ["hello"]);
        assert_eq!(f.push(b"ld\n\n"), ["world", ""]);
    }

    #[test]
    fn output_without_newlines_comes_out_in_bounded_pieces() {
        let mut f = Framer::new(8);
        let mut got = Vec::new();
        for _ in 0..1000 {
            got.extend(f.push(b"abc"));
            assert!(
                f.partial.len() < 8,
                "the buffer grew to {}",
                f.partial.len()
            );
        }
        assert!(got.iter().all(|l| l.len() == 8), "{got:?}");
        assert_eq!(got.len(), 3000 / 8);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let mut f = Framer::new(5);
        // "aaaa" then a two-byte é: the cut comes before the é.
        let got = f.push("aaaaé\n".as_bytes());
        assert_eq!(got, ["aaaa", "é"]);
    }
}
