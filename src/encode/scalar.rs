//! Writers for scalar values: null, booleans, integers (and durations),
//! floats, decimals, strings and binary, plus JSON string escaping.

use std::io::Write as _;
use std::iter;

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, DecimalType, Float16Type, Float32Type, Float64Type};
use arrow_array::{Array, ArrayAccessor, BooleanArray, PrimitiveArray};
use arrow_buffer::i256;
use base64::Engine as _;

use super::writer::{downcast, quoted_text, BoxedWriter, Problem, Writer};

// --- null, bool, ints -------------------------------------------------------

/// The writer of a column that is null in every row (Arrow `Null`, or a value
/// column missing from the file).
pub(super) struct NullWriter;

impl Writer for NullWriter {
    fn is_null(&self, _: usize) -> bool {
        true
    }
    fn json(&self, _: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(b"null");
    }
    fn text(&self, _: usize, _: &mut Vec<u8>) {}
}

pub(super) struct BoolWriter<'a>(pub(super) &'a BooleanArray);

impl Writer for BoolWriter<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        self.text(i, out)
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.0.value(i) { b"true" } else { b"false" });
    }
}

struct IntWriter<'a, T: ArrowPrimitiveType>(&'a PrimitiveArray<T>);

pub(super) fn int<T: ArrowPrimitiveType>(arr: &dyn Array) -> Result<BoxedWriter<'_>, Problem>
where
    T::Native: itoa::Integer,
{
    Ok(Box::new(IntWriter(downcast(arr.as_primitive_opt::<T>())?)))
}

impl<T: ArrowPrimitiveType> Writer for IntWriter<'_, T>
where
    T::Native: itoa::Integer,
{
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        self.text(i, out)
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        write_int(out, self.0.value(i));
    }
}

pub(super) fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

// --- floats ----------------------------------------------------------------

/// Arrow float types printable with ryu.
pub(super) trait RyuFloat: ArrowPrimitiveType {
    fn finite(v: Self::Native) -> bool;
    fn write(v: Self::Native, out: &mut Vec<u8>);
}

impl RyuFloat for Float32Type {
    fn finite(v: f32) -> bool {
        v.is_finite()
    }
    fn write(v: f32, out: &mut Vec<u8>) {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

impl RyuFloat for Float64Type {
    fn finite(v: f64) -> bool {
        v.is_finite()
    }
    fn write(v: f64, out: &mut Vec<u8>) {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

/// Half floats are printed in their shortest form that reads back as the same half float
/// (`10.305`, not the exactly equal `f32` `10.3046875`), in the same style as `f32` and `f64`.
impl RyuFloat for Float16Type {
    fn finite(v: Self::Native) -> bool {
        v.to_f32().is_finite()
    }
    fn write(v: Self::Native, out: &mut Vec<u8>) {
        Float32Type::write(shortest_f16(v), out)
    }
}

/// The half float type (`half::f16`, which arrow does not re-export).
type Half = <Float16Type as ArrowPrimitiveType>::Native;

/// The `f32` nearest to the shortest decimal that rounds to `v` as a half float.
///
/// A half float needs at most 5 significant digits. The decimal with the fewest digits is found
/// by rounding to 1, 2, ... digits; its nearest `f32` prints back as exactly that decimal (any
/// decimal of up to 6 digits survives a trip through `f32`, and a shorter one for the same `f32`
/// would round to `v` too), so ryu prints it in the usual style.
fn shortest_f16(v: Half) -> f32 {
    let exact = v.to_f64();
    for digits in 0..5 {
        let rounded: f64 = format!("{exact:.digits$e}").parse().unwrap_or(exact);
        if Half::from_f64(rounded) == v {
            return rounded as f32;
        }
    }
    v.to_f32()
}

struct FloatWriter<'a, T: ArrowPrimitiveType>(&'a PrimitiveArray<T>);

pub(super) fn float<T: RyuFloat>(arr: &dyn Array) -> Result<BoxedWriter<'_>, Problem> {
    Ok(Box::new(FloatWriter(downcast(
        arr.as_primitive_opt::<T>(),
    )?)))
}

impl<T: RyuFloat> Writer for FloatWriter<'_, T> {
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i) || !T::finite(self.0.value(i))
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        self.text(i, out)
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        T::write(self.0.value(i), out)
    }
}

// --- decimals --------------------------------------------------------------

/// Decimal natives: writes the digits of `|self|`, returns whether negative.
pub(super) trait DecimalDigits: Copy {
    fn write_abs(self, out: &mut Vec<u8>) -> bool;
}

impl DecimalDigits for i32 {
    fn write_abs(self, out: &mut Vec<u8>) -> bool {
        write_int(out, self.unsigned_abs());
        self < 0
    }
}

impl DecimalDigits for i64 {
    fn write_abs(self, out: &mut Vec<u8>) -> bool {
        write_int(out, self.unsigned_abs());
        self < 0
    }
}

impl DecimalDigits for i128 {
    fn write_abs(self, out: &mut Vec<u8>) -> bool {
        write_int(out, self.unsigned_abs());
        self < 0
    }
}

impl DecimalDigits for i256 {
    fn write_abs(self, out: &mut Vec<u8>) -> bool {
        if let Some(v) = self.to_i128() {
            return v.write_abs(out);
        }
        let start = out.len();
        write!(out, "{self}").expect("writing to a Vec cannot fail");
        if out.get(start) == Some(&b'-') {
            out.remove(start);
            true
        } else {
            false
        }
    }
}

/// Writes `v * 10^-scale` as plain decimal text: `12.30`, `-0.05`, `1200`.
fn write_decimal<N: DecimalDigits>(out: &mut Vec<u8>, v: N, scale: i8) {
    let start = out.len();
    let neg = v.write_abs(out);
    let n = out.len() - start;
    let is_zero = n == 1 && out[start] == b'0';
    if scale > 0 {
        let s = scale as usize;
        if n > s {
            let at = out.len() - s;
            out.insert(at, b'.');
        } else {
            let prefix = [b'0', b'.'].into_iter().chain(iter::repeat_n(b'0', s - n));
            out.splice(start..start, prefix);
        }
    } else if scale < 0 && !is_zero {
        out.extend(iter::repeat_n(b'0', scale.unsigned_abs() as usize));
    }
    if neg && !is_zero {
        out.insert(start, b'-');
    }
}

struct DecimalWriter<'a, T: DecimalType>(&'a PrimitiveArray<T>, i8);

pub(super) fn decimal<T: DecimalType>(
    arr: &dyn Array,
    scale: i8,
) -> Result<BoxedWriter<'_>, Problem>
where
    T::Native: DecimalDigits,
{
    Ok(Box::new(DecimalWriter(
        downcast(arr.as_primitive_opt::<T>())?,
        scale,
    )))
}

impl<T: DecimalType> Writer for DecimalWriter<'_, T>
where
    T::Native: DecimalDigits,
{
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        quoted_text(self, i, out);
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        write_decimal(out, self.0.value(i), self.1);
    }
}

// --- strings and binary ----------------------------------------------------

pub(super) struct StringWriter<A>(pub(super) A);

impl<A> Writer for StringWriter<A>
where
    A: ArrayAccessor,
    A::Item: AsRef<[u8]>,
{
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        write_json_str(out, self.0.value(i).as_ref());
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.value(i).as_ref());
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
}

pub(super) struct BinaryWriter<A>(pub(super) A);

impl<A> Writer for BinaryWriter<A>
where
    A: ArrayAccessor,
    A::Item: AsRef<[u8]>,
{
    fn is_null(&self, i: usize) -> bool {
        self.0.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        quoted_text(self, i, out);
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        let bytes = self.0.value(i);
        let bytes = bytes.as_ref();
        let start = out.len();
        let n = base64::encoded_len(bytes.len(), true).expect("base64 length overflow");
        out.resize(start + n, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut out[start..])
            .expect("buffer sized by encoded_len");
        out.truncate(start + written);
    }
}

/// Writes `s` as a JSON string: `"` and `\` escaped, control characters
/// below 0x20 as `\n` `\r` `\t` `\b` `\f` or `\u00XX`, everything else as-is.
pub(super) fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&s[run..i]);
        out.extend_from_slice(esc);
        run = i + 1;
    }
    out.extend_from_slice(&s[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::types::Float16Type;
    use arrow_array::*;
    use arrow_buffer::i256;

    use crate::encode::test_support::*;

    #[test]
    fn integers() {
        let v: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(i64::MAX),
            Some(i64::MIN),
            None,
            Some(0),
        ]));
        assert_eq!(
            json(v.clone()),
            strs(&["9223372036854775807", "-9223372036854775808", "null", "0"])
        );
        assert_eq!(
            text(v),
            strs(&["9223372036854775807", "-9223372036854775808", "NULL", "0"])
        );
        let v: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        assert_eq!(json(v), strs(&["18446744073709551615"]));
        let v: ArrayRef = Arc::new(Int8Array::from(vec![-128]));
        assert_eq!(json(v), strs(&["-128"]));
        let v: ArrayRef = Arc::new(UInt8Array::from(vec![255]));
        assert_eq!(json(v), strs(&["255"]));
        let v: ArrayRef = Arc::new(Int16Array::from(vec![-300]));
        assert_eq!(json(v), strs(&["-300"]));
        let v: ArrayRef = Arc::new(UInt16Array::from(vec![65535]));
        assert_eq!(json(v), strs(&["65535"]));
        let v: ArrayRef = Arc::new(UInt32Array::from(vec![u32::MAX]));
        assert_eq!(json(v), strs(&["4294967295"]));
    }

    #[test]
    fn booleans_and_null_type() {
        let v: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]));
        assert_eq!(json(v.clone()), strs(&["true", "false", "null"]));
        assert_eq!(text(v), strs(&["true", "false", "NULL"]));
        let v: ArrayRef = Arc::new(NullArray::new(2));
        assert_eq!(json(v.clone()), strs(&["null", "null"]));
        assert_eq!(text(v), strs(&["NULL", "NULL"]));
    }

    #[test]
    fn floats() {
        let v: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(1.0),
            Some(-0.1),
            Some(1e300),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            None,
        ]));
        assert_eq!(
            json(v.clone()),
            strs(&["1.5", "1.0", "-0.1", "1e300", "null", "null", "null", "null"])
        );
        assert_eq!(
            text(v),
            strs(&["1.5", "1.0", "-0.1", "1e300", "NULL", "NULL", "NULL", "NULL"])
        );
        let v: ArrayRef = Arc::new(Float32Array::from(vec![0.1f32, f32::NAN]));
        assert_eq!(json(v), strs(&["0.1", "null"]));
        let v: ArrayRef = Arc::new(Float16Array::from_iter_values(
            [1.5f32, 65504.0, f32::INFINITY, 0.1]
                .into_iter()
                .map(<Float16Type as ArrowPrimitiveType>::Native::from_f32),
        ));
        // The shortest decimal that reads back as the same f16 (as numpy prints float16): 0.1 is
        // not exact in f16, and 65500 is nearer to 65504 (f16::MAX) than to any other f16.
        assert_eq!(json(v), strs(&["1.5", "65500.0", "null", "0.1"]));
    }

    /// Every finite half float: its text reads back as the same half float, has no more
    /// significant digits than needed, and is `10.305` for the f16 nearest 10.305.
    #[test]
    fn every_half_float_prints_shortest_and_round_trips() {
        use super::RyuFloat;
        type F16 = super::Half;

        let write = |v: F16| {
            let mut out = Vec::new();
            Float16Type::write(v, &mut out);
            String::from_utf8(out).unwrap()
        };
        let significant = |text: &str| {
            let mantissa = text.split('e').next().unwrap();
            let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            let digits = digits.trim_start_matches('0').trim_end_matches('0');
            digits.len().max(1)
        };
        for bits in 0..=u16::MAX {
            let v = F16::from_bits(bits);
            if !v.is_finite() {
                continue;
            }
            let text = write(v);
            let back: f64 = text.parse().unwrap();
            assert_eq!(F16::from_f64(back).to_bits(), bits, "{text} for {v}");
            let digits = significant(&text);
            if digits > 1 {
                // One digit fewer does not read back as v.
                let shorter: f64 = format!("{:.*e}", digits - 2, v.to_f64()).parse().unwrap();
                assert_ne!(F16::from_f64(shorter), v, "{text} is not shortest for {v}");
            }
        }
        assert_eq!(write(F16::from_f32(10.305)), "10.305");
        assert_eq!(F16::from_f32(10.305).to_f32(), 10.304_687_5);
        assert_eq!(write(F16::from_f32(-0.0)), "-0.0");
        assert_eq!(write(F16::MIN_POSITIVE_SUBNORMAL), "6e-8");
        assert_eq!(write(F16::MAX), "65500.0");
    }

    #[test]
    fn decimals() {
        let d128 = |vals: Vec<i128>, p: u8, sc: i8| -> ArrayRef {
            Arc::new(
                Decimal128Array::from(vals)
                    .with_precision_and_scale(p, sc)
                    .unwrap(),
            )
        };
        assert_eq!(
            json(d128(vec![1230, -5, 0, -1230, 7, i128::MIN + 1], 38, 2)),
            strs(&[
                "\"12.30\"",
                "\"-0.05\"",
                "\"0.00\"",
                "\"-12.30\"",
                "\"0.07\"",
                "\"-1701411834604692317316873037158841057.27\""
            ])
        );
        assert_eq!(text(d128(vec![1230, -5], 10, 2)), strs(&["12.30", "-0.05"]));
        assert_eq!(
            json(d128(vec![12, 0, -3], 10, -2)),
            strs(&["\"1200\"", "\"0\"", "\"-300\""])
        );
        assert_eq!(json(d128(vec![42], 10, 0)), strs(&["\"42\""]));
        assert_eq!(json(d128(vec![5], 10, 3)), strs(&["\"0.005\""]));

        let v: ArrayRef = Arc::new(
            Decimal32Array::from(vec![Some(-12345), None])
                .with_precision_and_scale(9, 4)
                .unwrap(),
        );
        assert_eq!(json(v), strs(&["\"-1.2345\"", "null"]));
        let v: ArrayRef = Arc::new(
            Decimal64Array::from(vec![i64::MIN])
                .with_precision_and_scale(18, 1)
                .unwrap(),
        );
        assert_eq!(json(v), strs(&["\"-922337203685477580.8\""]));

        let big = i256::from_i128(i128::MAX).wrapping_mul(i256::from_i128(1000));
        let v: ArrayRef = Arc::new(
            Decimal256Array::from(vec![big, big.wrapping_neg(), i256::from_i128(-5)])
                .with_precision_and_scale(76, 3)
                .unwrap(),
        );
        assert_eq!(
            json(v),
            strs(&[
                "\"170141183460469231731687303715884105727.000\"",
                "\"-170141183460469231731687303715884105727.000\"",
                "\"-0.005\"",
            ])
        );
    }

    #[test]
    fn strings_are_escaped_in_json_and_raw_in_text() {
        let raw = "a\"b\\c\nd\te\r\u{1}\u{8}\u{c}\u{1f} é日本😀/";
        let v: ArrayRef = Arc::new(StringArray::from(vec![Some(raw), Some(""), None]));
        let escaped = r#""a\"b\\c\nd\te\r\u0001\b\f\u001f é日本😀/""#;
        assert_eq!(json(v.clone()), strs(&[escaped, "\"\"", "null"]));
        assert_eq!(text(v), strs(&[raw, "", "NULL"]));
        // serde_json agrees on what the string means.
        let back: String = serde_json::from_str(escaped).unwrap();
        assert_eq!(back, raw);
        let v: ArrayRef = Arc::new(LargeStringArray::from(vec!["x\"y"]));
        assert_eq!(json(v), strs(&[r#""x\"y""#]));
        let v: ArrayRef = Arc::new(StringViewArray::from(vec![
            "a string longer than twelve bytes\n",
            "short",
        ]));
        assert_eq!(
            json(v),
            strs(&[r#""a string longer than twelve bytes\n""#, r#""short""#])
        );
    }

    #[test]
    fn binary_is_base64() {
        let data: Vec<Option<&[u8]>> = vec![Some(&[0, 1, 2, 255]), Some(b""), Some(b"hi"), None];
        let v: ArrayRef = Arc::new(BinaryArray::from(data.clone()));
        assert_eq!(
            json(v.clone()),
            strs(&["\"AAEC/w==\"", "\"\"", "\"aGk=\"", "null"])
        );
        assert_eq!(text(v), strs(&["AAEC/w==", "", "aGk=", "NULL"]));
        let v: ArrayRef = Arc::new(LargeBinaryArray::from(data.clone()));
        assert_eq!(json(v), strs(&["\"AAEC/w==\"", "\"\"", "\"aGk=\"", "null"]));
        let v: ArrayRef = Arc::new(BinaryViewArray::from(data));
        assert_eq!(json(v), strs(&["\"AAEC/w==\"", "\"\"", "\"aGk=\"", "null"]));
        let v: ArrayRef = Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                vec![Some([251u8, 255, 0]), None].into_iter(),
                3,
            )
            .unwrap(),
        );
        assert_eq!(json(v), strs(&["\"+/8A\"", "null"]));
    }
}
