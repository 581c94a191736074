//! A fast path for decoding the plain shape of a message.
//!
//! Nearly every message is a flat object of known keys with unescaped
//! strings, small integers and RFC 3339 times. This reader takes exactly
//! that shape, in any key order, straight into the record types. Whenever
//! it meets anything else — an escape, an unknown or repeated key, a
//! missing field, a float, a `null` — it answers `None` and serde decides,
//! so it never accepts what serde would reject and every error is still
//! named by the strict path. The unit tests check both properties.
//!
//! It reads bytes, not a `str`: the whole line is never checked as UTF-8.
//! Outside strings it takes ASCII only, and each string is checked as it
//! is scanned, so what it accepts is valid UTF-8 throughout.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};

use crate::record::{
    CaseKind, CaseStatus, CaseUpdate, Hardship, HardshipCategory, Hazard, HazardKind, ReporterRole,
    SafetyCheck, SpecialGroup, TargetKind, Urgency, Visit,
};
use crate::time::parse_rfc3339_fast;

/// Reads one object into a record: each field's key is its name, its value
/// is read by its expression over the reader `r`, and a field marked
/// `default` may be missing. Keys in the order listed (the producers'
/// order, optional ones left out or not) are read straight through, each
/// compared with its own literal; from the first key out of that order on
/// (or a repeated or unknown one), the rest goes through a general loop.
macro_rules! read_record {
    (@value $field:ident) => { $field? };
    (@value $field:ident default) => { $field.unwrap_or_default() };
    ($reader:expr, |$r:ident| $record:ident {
        $($field:ident $($default:ident)?: $read:expr),+ $(,)?
    }) => {{
        $(let mut $field = None;)+
        let mut open = $reader.open_object()?;
        $(
            if open && $reader.key_here(concat!("\"", stringify!($field), "\"")) {
                $reader.eat(b':')?;
                let $r = &mut $reader;
                $field = Some($read);
                open = $r.next_member()?;
            }
        )+
        if open {
            const QUOTED_KEYS: &[&str] = &[$(concat!("\"", stringify!($field), "\"")),+];
            $reader.members(QUOTED_KEYS, |$r, index| {
                let mut _at = 0usize;
                $(
                    if index == _at {
                        return once(&mut $field, $read);
                    }
                    _at += 1;
                )+
                None
            })?;
        }
        $record { $($field: read_record!(@value $field $($default)?)),+ }
    }};
}

/// A visit, when `text` has the plain shape of a valid one.
pub(crate) fn visit(text: &[u8]) -> Option<Visit<'_>> {
    let mut r = Reader::new(text);
    let visit = read_record!(r, |r| Visit {
        schema: r.borrowed()?,
        submission_id: r.borrowed()?,
        sent_at: r.time()?,
        visited_at: r.time()?,
        reporter_id: r.borrowed()?,
        reporter_role: r.variant(ReporterRole::from_wire)?,
        reporter_unit default: Some(r.borrowed()?),
        grid_id: r.borrowed()?,
        target_kind: r.variant(TargetKind::from_wire)?,
        target_id: r.borrowed()?,
        residents_recorded: r.u32()?,
        residents_present: r.u32()?,
        newcomers_registered: r.u32()?,
        residents_tested: r.u32()?,
        residents_vaccinated: r.u32()?,
        special_groups default: r.array(|r| r.variant(SpecialGroup::from_wire))?,
        safety_checks default: r.array(|r| r.variant(SafetyCheck::from_wire))?,
        hazards default: r.array(Reader::hazard)?,
        hardships default: r.array(Reader::hardship)?,
        enlisted_building_leads: r.u32()?,
        enlisted_volunteers: r.u32()?,
    });
    r.end()?;
    Some(visit)
}

/// A case update, when `text` has the plain shape of a valid one.
pub(crate) fn case(text: &[u8]) -> Option<CaseUpdate<'_>> {
    let mut r = Reader::new(text);
    let case = read_record!(r, |r| CaseUpdate {
        schema: r.borrowed()?,
        submission_id: r.borrowed()?,
        sent_at: r.time()?,
        case_id: r.borrowed()?,
        case_kind: r.variant(CaseKind::from_wire)?,
        grid_id: r.borrowed()?,
        status: r.variant(CaseStatus::from_wire)?,
        updated_at: r.time()?,
        handler_id: r.borrowed()?,
    });
    r.end()?;
    Some(case)
}

/// Sets a field seen for the first time; a repeated key is serde's to
/// reject.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// Length of the run of bytes before the first quote, backslash, control
/// character or non-ASCII byte.
fn plain_run(b: &[u8]) -> usize {
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = b.get(at..at + 16) {
        // SAFETY: SSE2 is part of the x86-64 baseline; every CPU running
        // this target has it.
        #[allow(unsafe_code)]
        let hit = unsafe { sse2::first_special(chunk) };
        if let Some(hit) = hit {
            return at + hit;
        }
        at += 16;
    }
    while let Some(chunk) = b.get(at..at + 8) {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        if let Some(hit) = swar_first_special(v) {
            return at + hit;
        }
        at += 8;
    }
    at + b[at..]
        .iter()
        .take_while(|&&c| c.is_ascii() && !ends_plain_string(c))
        .count()
}

/// A quote, backslash or control character: where a string without
/// escapes stops.
fn ends_plain_string(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// The index of the first quote, backslash, control character or
/// non-ASCII byte among eight bytes (the usual SWAR test for a byte below a
/// bound: only the lowest flagged byte is exact, and only it is used).
fn swar_first_special(v: u64) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let below = |v: u64, bound: u8| v.wrapping_sub(ONES * u64::from(bound)) & !v & HIGH;
    let hits = below(v ^ (ONES * u64::from(b'"')), 1)
        | below(v ^ (ONES * u64::from(b'\\')), 1)
        | below(v, 0x20)
        | (v & HIGH);
    (hits != 0).then(|| (hits.trailing_zeros() / 8) as usize)
}

/// Sixteen bytes at a time with SSE2, which every x86-64 CPU has.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_set_epi64x,
    };

    /// The index of the first quote, backslash, control character or
    /// non-ASCII byte in `chunk` (16 bytes).
    #[inline]
    #[target_feature(enable = "sse2")]
    pub(super) fn first_special(chunk: &[u8]) -> Option<usize> {
        let word = |at: usize| {
            let bytes: [u8; 8] = chunk[at..at + 8].try_into().unwrap_or_default();
            i64::from_le_bytes(bytes)
        };
        let v = _mm_set_epi64x(word(8), word(0));
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Below 0x20 exactly when the unsigned minimum with 0x1f is itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        // The byte mask takes each byte's top bit: set on non-ASCII bytes.
        let mask = _mm_movemask_epi8(_mm_or_si128(
            _mm_or_si128(quote, backslash),
            _mm_or_si128(control, v),
        ));
        (mask != 0).then(|| mask.trailing_zeros() as usize)
    }
}

/// Whether `text` starts with `prefix`, compared eight bytes at a time
/// (the last word overlapping the one before) instead of by a `memcmp` call:
/// keys are short, and the call cost more than the comparison.
#[inline(always)]
fn has_prefix(text: &[u8], prefix: &[u8]) -> bool {
    let n = prefix.len();
    if text.len() < n {
        return false;
    }
    if n < 8 {
        return text[..n].iter().zip(prefix).all(|(a, b)| a == b);
    }
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    let mut at = 0;
    while at + 8 < n {
        if word(text, at) != word(prefix, at) {
            return false;
        }
        at += 8;
    }
    word(text, n - 8) == word(prefix, n - 8)
}

/// A list that [`Reader::array`] fills: a vector, or flags held inline.
/// (Not `Extend`: SmallVec's extend by one item cost 46 instructions a
/// push under callgrind, its `push` a few.)
trait List<T>: Default {
    fn push_item(&mut self, item: T);
}

impl<T> List<T> for Vec<T> {
    fn push_item(&mut self, item: T) {
        self.push(item);
    }
}

impl<A: smallvec::Array> List<A::Item> for smallvec::SmallVec<A> {
    fn push_item(&mut self, item: A::Item) {
        self.push(item);
    }
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text
    }

    /// The next byte after JSON whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let b = self.bytes();
        while let Some(&c) = b.get(self.at) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(c);
            }
            self.at += 1;
        }
        None
    }

    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.at += 1)
    }

    /// Only whitespace may follow the message, as `serde_json` requires.
    fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// A string without escapes or control characters (which serde would
    /// unescape or reject), and valid UTF-8.
    #[inline]
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let b = self.bytes();
        self.at += plain_run(&b[start..]);
        if *b.get(self.at)? == b'"' {
            let ascii = &b[start..self.at];
            self.at += 1;
            // SAFETY: `plain_run` stops at the first byte outside ASCII, so
            // every byte of `ascii` is ASCII, which is valid UTF-8.
            #[allow(unsafe_code)]
            return Some(unsafe { std::str::from_utf8_unchecked(ascii) });
        }
        self.non_ascii_str(start)
    }

    /// The rest of a string that `str` found a non-ASCII byte in: up to
    /// its closing quote, checked as UTF-8 whole.
    #[cold]
    fn non_ascii_str(&mut self, start: usize) -> Option<&'a str> {
        let b = self.bytes();
        self.at += b[self.at..]
            .iter()
            .take_while(|&&c| !ends_plain_string(c))
            .count();
        if *b.get(self.at)? != b'"' {
            return None;
        }
        let s = std::str::from_utf8(&b[start..self.at]).ok()?;
        self.at += 1;
        Some(s)
    }

    fn borrowed(&mut self) -> Option<Cow<'a, str>> {
        self.str().map(Cow::Borrowed)
    }

    fn time(&mut self) -> Option<DateTime<FixedOffset>> {
        parse_rfc3339_fast(self.str()?)
    }

    fn variant<T>(&mut self, from_wire: fn(&str) -> Option<T>) -> Option<T> {
        from_wire(self.str()?)
    }

    fn bool(&mut self) -> Option<bool> {
        self.peek()?;
        let rest = &self.bytes()[self.at..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.at += len;
        Some(value)
    }

    /// A plain non-negative integer that fits `u32`: no sign, fraction,
    /// exponent or leading zero.
    fn u32(&mut self) -> Option<u32> {
        self.peek()?;
        let b = self.bytes();
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(&c) = b.get(self.at) {
            if !c.is_ascii_digit() {
                break;
            }
            n = n * 10 + u64::from(c - b'0');
            self.at += 1;
            if self.at - start > 10 {
                return None;
            }
        }
        let len = self.at - start;
        if len == 0 || (len > 1 && b[start] == b'0') {
            return None;
        }
        u32::try_from(n).ok()
    }

    /// Enters an object: false when it is empty (and already closed).
    fn open_object(&mut self) -> Option<bool> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(false);
        }
        Some(true)
    }

    /// Takes `quoted_key` if it is the next key.
    #[inline(always)]
    fn key_here(&mut self, quoted_key: &str) -> bool {
        if self.peek().is_none() {
            return false;
        }
        let found = has_prefix(&self.bytes()[self.at..], quoted_key.as_bytes());
        if found {
            self.at += quoted_key.len();
        }
        found
    }

    /// After a member's value: true if another member follows (the comma
    /// taken), false if the object ends here (closed).
    fn next_member(&mut self) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b'}' => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// The rest of an object's members, from a key on, handing the index
    /// of each key in `quoted_keys` to `field`, which reads its value. An
    /// unknown key, or one with an escape, ends the fast path.
    fn members(
        &mut self,
        quoted_keys: &[&str],
        mut field: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        let mut expected = 0;
        loop {
            let index = self.key(quoted_keys, expected)?;
            self.eat(b':')?;
            field(self, index)?;
            expected = index + 1;
            if !self.next_member()? {
                return Some(());
            }
        }
    }

    /// The index in `quoted_keys` of the key here (taken), tried from
    /// `expected` on and then from the start.
    fn key(&mut self, quoted_keys: &[&str], expected: usize) -> Option<usize> {
        (expected..quoted_keys.len())
            .chain(0..expected)
            .find(|&i| self.key_here(quoted_keys[i]))
    }

    fn array<T, C: List<T>>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<C> {
        self.eat(b'[')?;
        let mut items = C::default();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(items);
        }
        loop {
            items.push_item(item(self)?);
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(items);
                }
                _ => return None,
            }
        }
    }

    fn hazard(&mut self) -> Option<Hazard<'a>> {
        Some(read_record!(*self, |r| Hazard {
            hazard_id: r.borrowed()?,
            kind: r.variant(HazardKind::from_wire)?,
            fixed_on_spot: r.bool()?,
        }))
    }

    fn hardship(&mut self) -> Option<Hardship<'a>> {
        Some(read_record!(*self, |r| Hardship {
            case_id: r.borrowed()?,
            category: r.variant(HardshipCategory::from_wire)?,
            urgency: r.variant(Urgency::from_wire)?,
            note: r.borrowed()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::generate::{GenOptions, Generator};
    use crate::Registry;

    /// Generated messages, valid and invalid alike.
    fn generated(count: usize) -> Vec<Vec<u8>> {
        let registry = Registry::jiangmen();
        let opts = GenOptions {
            scale: 0.002,
            ..GenOptions::default()
        };
        Generator::new(&registry, opts)
            .take(count)
            .map(|m| m.bytes)
            .collect()
    }

    /// The fast path must agree with serde: the same record when it
    /// answers, and no answer where serde fails (nor where the bytes are
    /// not UTF-8, which serde is never asked to read).
    fn agrees_with_serde(bytes: &[u8]) -> Result<bool, TestCaseError> {
        let fast_visit = visit(bytes);
        let fast_case = case(bytes);
        let Ok(text) = std::str::from_utf8(bytes) else {
            prop_assert!(fast_visit.is_none() && fast_case.is_none(), "{:?}", bytes);
            return Ok(false);
        };
        let strict_visit = serde_json::from_str::<Visit>(text).ok();
        let strict_case = serde_json::from_str::<CaseUpdate>(text).ok();
        if let Some(v) = &fast_visit {
            prop_assert_eq!(Some(v), strict_visit.as_ref(), "{}", text);
        }
        if let Some(c) = &fast_case {
            prop_assert_eq!(Some(c), strict_case.as_ref(), "{}", text);
        }
        Ok(fast_visit.is_some() || fast_case.is_some())
    }

    #[test]
    fn plain_generated_messages_take_the_fast_path() {
        let messages = generated(3000);
        let mut fast = 0;
        let mut plain = 0;
        for bytes in &messages {
            let Ok(text) = std::str::from_utf8(bytes) else {
                continue;
            };
            let is_plain = !text.contains('\\')
                && (serde_json::from_str::<Visit>(text).is_ok()
                    || serde_json::from_str::<CaseUpdate>(text).is_ok());
            plain += usize::from(is_plain);
            fast += usize::from(agrees_with_serde(bytes).unwrap());
        }
        assert!(plain > 2500, "only {plain} plain messages generated");
        assert_eq!(fast, plain, "every plain valid message is read fast");
    }

    const VISIT: &str = r#"{"schema":"gridstat.visit/1","submission_id":"s-1","sent_at":"2022-11-26T10:20:00+08:00","visited_at":"2022-11-26T10:05:00+08:00","reporter_id":"rp-1","reporter_role":"cadre","grid_id":"44070300210101","target_kind":"household","target_id":"hh-1","residents_recorded":4,"residents_present":3,"newcomers_registered":1,"residents_tested":4,"residents_vaccinated":3,"special_groups":["elderly_alone"],"safety_checks":["gas","fire"],"hazards":[{"hazard_id":"hz-1","kind":"gas","fixed_on_spot":false}],"hardships":[{"case_id":"hs-1","category":"medical","urgency":"urgent","note":"需要代购药品"}],"enlisted_building_leads":0,"enlisted_volunteers":1}"#;

    const CASE: &str = r#"{"schema":"gridstat.case/1","submission_id":"s","sent_at":"2022-11-27T09:00:00+08:00","case_id":"c","case_kind":"hazard","grid_id":"g","status":"resolved","updated_at":"2022-11-27T08:00:00+08:00","handler_id":"h"}"#;

    /// `base` with its first `from` replaced by `to`.
    fn edited(base: &str, from: &str, to: &str) -> String {
        assert!(base.contains(from), "{from}");
        base.replacen(from, to, 1)
    }

    #[test]
    fn odd_but_valid_shapes_agree() {
        let accepted = [
            VISIT.to_string(),
            CASE.to_string(),
            format!(" {}\n", CASE.replace("\",", "\" ,\t").replace("\":", "\" : ")),
            edited(VISIT, ":4,", ":4294967295,"),
            edited(VISIT, r#""hazards":[{"hazard_id":"hz-1","kind":"gas","fixed_on_spot":false}],"#, ""),
            edited(VISIT, r#""special_groups":["elderly_alone"]"#, r#""special_groups":[ ]"#),
            edited(CASE, "09:00:00+08:00", "09:00:00.25-01:30"),
            r#"{"handler_id":"h","updated_at":"2022-11-27T08:00:00+08:00","status":"assigned","grid_id":"g","case_kind":"hardship","case_id":"c","sent_at":"2022-11-27T09:00:00+08:00","submission_id":"s","schema":"x"}"#.to_string(),
        ];
        for text in &accepted {
            assert!(agrees_with_serde(text.as_bytes()).unwrap(), "{text}");
        }
        let number = r#""residents_recorded":4,"#;
        let rejected = [
            edited(number, ":4", ":04"),
            edited(number, ":4", ":-4"),
            edited(number, ":4", ":4.0"),
            edited(number, ":4", ":4e0"),
            edited(number, ":4", ":4294967296"),
            edited(number, ":4", ":null"),
            edited(number, ":4", r#":"4""#),
            edited(number, ":4", ":true"),
            edited(number, ",", ",,"),
            edited(number, ",", r#","residents_recorded":4,"#),
            edited(number, ",", r#","extra":1,"#),
            edited(number, ",", ""),
            r#""fixed_on_spot":0"#.to_string(),
            r#""fixed_on_spot":False"#.to_string(),
            r#""fixed_on_spot":null"#.to_string(),
            r#""kind":"Gas""#.to_string(),
            r#""note":"a\"b""#.to_string(),
            "\"note\":\"a\u{1}b\"".to_string(),
            r#""safety_checks":["gas","fire",]"#.to_string(),
            r#""safety_checks":null"#.to_string(),
            r#""hardships":[{"case_id":"hs-1","category":"medical","urgency":"urgent"}]"#
                .to_string(),
        ];
        let originals = [
            number,
            r#""fixed_on_spot":false"#,
            r#""kind":"gas""#,
            r#""note":"需要代购药品""#,
            r#""safety_checks":["gas","fire"]"#,
            r#""hardships":[{"case_id":"hs-1","category":"medical","urgency":"urgent","note":"需要代购药品"}]"#,
        ];
        for bad in &rejected {
            let from = originals
                .iter()
                .find(|o| o.split(':').next() == bad.split(':').next())
                .unwrap();
            let text = edited(VISIT, from, bad);
            assert!(!agrees_with_serde(text.as_bytes()).unwrap(), "{text}");
        }
        for text in [
            format!("{CASE} x"),
            format!("{CASE}}}"),
            edited(CASE, r#""s","#, r#""s\u0041","#),
            edited(CASE, "09:00:00+08:00", "09:00:00Z"),
            edited(CASE, ",\"handler_id\":\"h\"", ""),
        ] {
            assert!(!agrees_with_serde(text.as_bytes()).unwrap(), "{text}");
        }
    }

    #[test]
    fn strings_are_checked_as_utf8() {
        assert!(
            visit(VISIT.as_bytes()).is_some(),
            "non-ASCII note read fast"
        );
        let note = VISIT.find('需').unwrap();
        for (at, byte) in [(note + 1, b'x'), (note, 0x80), (note + 2, 0xff)] {
            let mut bytes = VISIT.as_bytes().to_vec();
            bytes[at] = byte;
            assert!(std::str::from_utf8(&bytes).is_err());
            assert!(visit(&bytes).is_none(), "broken UTF-8 at byte {at}");
        }
        let mut bytes = VISIT.as_bytes().to_vec();
        let key = VISIT.find("\"enlisted_volunteers").unwrap();
        bytes.insert(key, 0xe6);
        assert!(visit(&bytes).is_none(), "a non-ASCII byte between members");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The word-at-a-time scans find the same first special byte as
        /// a byte-by-byte one, wherever it lies (every byte value, every
        /// offset against the 16- and 8-byte steps).
        #[test]
        fn plain_run_finds_the_first_special_byte(
            fill in prop::sample::select(b"ab0-~\x7f\x80\xe6\xff".to_vec()),
            special in any::<u8>(),
            len in 0usize..64,
            at in 0usize..64,
        ) {
            let mut bytes = vec![fill; len];
            if at < len {
                bytes[at] = special;
            }
            let expected = bytes
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))
                .unwrap_or(len);
            prop_assert_eq!(plain_run(&bytes), expected);
        }

        /// One byte changed, inserted or removed anywhere in a generated
        /// message: where the fast path answers, serde answers the same.
        #[test]
        fn mutated_messages_agree_with_serde(
            pick in 0usize..400,
            at in 0usize..2000,
            byte in prop::sample::select(b"\"\\{}[],:0123456789 \t\n.-+eEtrufalsn\x01\xe6\x80\xffx".to_vec()),
            how in 0u8..3,
        ) {
            thread_local!(static MESSAGES: Vec<Vec<u8>> = generated(400));
            let mut bytes = MESSAGES.with(|m| m[pick % m.len()].clone());
            let at = at % bytes.len();
            match how {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => { bytes.remove(at); }
            }
            agrees_with_serde(&bytes)?;
        }
    }
}
