//! Writers for nested values: lists (plain, large, view, fixed size) as JSON
//! arrays, structs and maps as JSON objects, and dictionaries as their
//! looked-up value.

use arrow_array::cast::AsArray;
use arrow_array::types::ArrowDictionaryKeyType;
use arrow_array::{
    Array, FixedSizeListArray, GenericListArray, GenericListViewArray, MapArray, OffsetSizeTrait,
    PrimitiveArray, StructArray,
};
use arrow_buffer::ArrowNativeType;

use super::scalar::write_json_str;
use super::writer::{
    bind, downcast, escaped_json_key, json_or_null, BoxedWriter, Opts, Problem, Writer,
};

fn write_elements(child: &dyn Writer, range: std::ops::Range<usize>, out: &mut Vec<u8>) {
    out.push(b'[');
    let start = range.start;
    for j in range {
        if j > start {
            out.push(b',');
        }
        json_or_null(child, j, out);
    }
    out.push(b']');
}

struct ListWriter<'a, O: OffsetSizeTrait> {
    arr: &'a GenericListArray<O>,
    child: BoxedWriter<'a>,
}

pub(super) fn list<'a, O: OffsetSizeTrait>(
    arr: &'a GenericListArray<O>,
    o: Opts,
) -> Result<BoxedWriter<'a>, Problem> {
    Ok(Box::new(ListWriter {
        arr,
        child: bind(arr.values().as_ref(), o)?,
    }))
}

impl<O: OffsetSizeTrait> Writer for ListWriter<'_, O> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        let offs = self.arr.value_offsets();
        write_elements(
            self.child.as_ref(),
            offs[i].as_usize()..offs[i + 1].as_usize(),
            out,
        );
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct ListViewWriter<'a, O: OffsetSizeTrait> {
    arr: &'a GenericListViewArray<O>,
    child: BoxedWriter<'a>,
}

pub(super) fn list_view<'a, O: OffsetSizeTrait>(
    arr: &'a GenericListViewArray<O>,
    o: Opts,
) -> Result<BoxedWriter<'a>, Problem> {
    Ok(Box::new(ListViewWriter {
        arr,
        child: bind(arr.values().as_ref(), o)?,
    }))
}

impl<O: OffsetSizeTrait> Writer for ListViewWriter<'_, O> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        let start = self.arr.value_offsets()[i].as_usize();
        let len = self.arr.value_sizes()[i].as_usize();
        write_elements(self.child.as_ref(), start..start + len, out);
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct FixedSizeListWriter<'a> {
    arr: &'a FixedSizeListArray,
    child: BoxedWriter<'a>,
}

pub(super) fn fixed_size_list(
    arr: &FixedSizeListArray,
    o: Opts,
) -> Result<BoxedWriter<'_>, Problem> {
    Ok(Box::new(FixedSizeListWriter {
        arr,
        child: bind(arr.values().as_ref(), o)?,
    }))
}

impl Writer for FixedSizeListWriter<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        let start = self.arr.value_offset_at(i);
        let len = self.arr.value_length() as usize;
        write_elements(self.child.as_ref(), start..start + len, out);
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct StructWriter<'a> {
    arr: &'a StructArray,
    /// (`,"name":`, writer) per child field.
    fields: Vec<(Vec<u8>, BoxedWriter<'a>)>,
}

pub(super) fn structure(arr: &StructArray, o: Opts) -> Result<BoxedWriter<'_>, Problem> {
    let mut fields = Vec::with_capacity(arr.num_columns());
    for (f, col) in arr.fields().iter().zip(arr.columns()) {
        let mut prefix = vec![b','];
        write_json_str(&mut prefix, f.name().as_bytes());
        prefix.push(b':');
        fields.push((prefix, bind(col.as_ref(), o)?));
    }
    Ok(Box::new(StructWriter { arr, fields }))
}

impl Writer for StructWriter<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        for (n, (prefix, w)) in self.fields.iter().enumerate() {
            let prefix = if n == 0 { &prefix[1..] } else { &prefix[..] };
            out.extend_from_slice(prefix);
            json_or_null(w.as_ref(), i, out);
        }
        out.push(b'}');
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct MapWriter<'a> {
    arr: &'a MapArray,
    keys: BoxedWriter<'a>,
    values: BoxedWriter<'a>,
}

pub(super) fn map(arr: &MapArray, o: Opts) -> Result<BoxedWriter<'_>, Problem> {
    Ok(Box::new(MapWriter {
        arr,
        keys: bind(arr.keys().as_ref(), o)?,
        values: bind(arr.values().as_ref(), o)?,
    }))
}

impl Writer for MapWriter<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.arr.is_null(i)
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        let offs = self.arr.value_offsets();
        let (start, end) = (offs[i] as usize, offs[i + 1] as usize);
        out.push(b'{');
        for j in start..end {
            if j > start {
                out.push(b',');
            }
            if self.keys.is_null(j) {
                // Arrow forbids null map keys; keep the output valid anyway.
                out.extend_from_slice(b"\"\"");
            } else {
                self.keys.json_key(j, out);
            }
            out.push(b':');
            json_or_null(self.values.as_ref(), j, out);
        }
        out.push(b'}');
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.json(i, out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        escaped_json_key(self, i, out)
    }
}

struct DictionaryWriter<'a, K: ArrowDictionaryKeyType> {
    keys: &'a PrimitiveArray<K>,
    values: BoxedWriter<'a>,
}

pub(super) fn dict<K: ArrowDictionaryKeyType>(
    arr: &dyn Array,
    o: Opts,
) -> Result<BoxedWriter<'_>, Problem> {
    let d = downcast(arr.as_dictionary_opt::<K>())?;
    Ok(Box::new(DictionaryWriter {
        keys: d.keys(),
        values: bind(d.values().as_ref(), o)?,
    }))
}

impl<K: ArrowDictionaryKeyType> DictionaryWriter<'_, K> {
    fn idx(&self, i: usize) -> usize {
        self.keys.values()[i].as_usize()
    }
}

impl<K: ArrowDictionaryKeyType> Writer for DictionaryWriter<'_, K> {
    fn is_null(&self, i: usize) -> bool {
        self.keys.is_null(i) || self.values.is_null(self.idx(i))
    }
    fn json(&self, i: usize, out: &mut Vec<u8>) {
        self.values.json(self.idx(i), out)
    }
    fn text(&self, i: usize, out: &mut Vec<u8>) {
        self.values.text(self.idx(i), out)
    }
    fn json_key(&self, i: usize, out: &mut Vec<u8>) {
        self.values.json_key(self.idx(i), out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{Int32Builder, MapBuilder, StringBuilder};
    use arrow_array::types::Int32Type;
    use arrow_array::*;
    use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
    use arrow_schema::{DataType, Field, Fields};

    use crate::encode::test_support::*;
    use crate::encode::{DateEncoding, TimestampEncoding};

    fn list_of_structs() -> ArrayRef {
        let fields = Fields::from(vec![
            Field::new("sku", DataType::Utf8, true),
            Field::new("qty", DataType::Int32, true),
            Field::new("at", DataType::Date32, true),
        ]);
        let values = StructArray::new(
            fields.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("A"),
                    Some("B\""),
                    None,
                    Some("D"),
                ])) as ArrayRef,
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)])),
                Arc::new(Date32Array::from(vec![Some(0), Some(1), Some(2), None])),
            ],
            Some(NullBuffer::from(vec![true, true, false, true])),
        );
        let item = Arc::new(Field::new("item", DataType::Struct(fields), true));
        Arc::new(ListArray::new(
            item,
            OffsetBuffer::new(ScalarBuffer::from(vec![0, 2, 3, 3, 4])),
            Arc::new(values),
            Some(NullBuffer::from(vec![true, true, false, true])),
        ))
    }

    #[test]
    fn nested_list_of_struct() {
        let v = list_of_structs();
        assert_eq!(
            json(v.clone()),
            strs(&[
                r#"[{"sku":"A","qty":1,"at":"1970-01-01"},{"sku":"B\"","qty":null,"at":"1970-01-02"}]"#,
                "[null]",
                "null",
                r#"[{"sku":"D","qty":4,"at":null}]"#,
            ])
        );
        // Text form is the compact JSON; nested dates follow the encoding.
        assert_eq!(
            text_enc(v, TimestampEncoding::Iso8601, DateEncoding::EpochDays),
            strs(&[
                r#"[{"sku":"A","qty":1,"at":0},{"sku":"B\"","qty":null,"at":1}]"#,
                "[null]",
                "NULL",
                r#"[{"sku":"D","qty":4,"at":null}]"#,
            ])
        );
        // A slice of the list keeps correct offsets.
        assert_eq!(json(v_slice()), strs(&["[null]", "null"]));
    }

    fn v_slice() -> ArrayRef {
        list_of_structs().slice(1, 2)
    }

    #[test]
    fn other_lists() {
        let item = Arc::new(Field::new("item", DataType::Float64, true));
        let v: ArrayRef = Arc::new(LargeListArray::new(
            item.clone(),
            OffsetBuffer::new(ScalarBuffer::from(vec![0i64, 2, 2])),
            Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(2.0)])),
            None,
        ));
        assert_eq!(json(v), strs(&["[null,2.0]", "[]"]));

        let item32 = Arc::new(Field::new("item", DataType::Int32, true));
        let v: ArrayRef = Arc::new(FixedSizeListArray::new(
            item32.clone(),
            2,
            Arc::new(Int32Array::from(vec![
                Some(1),
                None,
                Some(3),
                Some(4),
                Some(5),
                Some(6),
            ])),
            Some(NullBuffer::from(vec![true, true, false])),
        ));
        assert_eq!(json(v.clone()), strs(&["[1,null]", "[3,4]", "null"]));
        assert_eq!(json(v.slice(1, 2)), strs(&["[3,4]", "null"]));

        let v: ArrayRef = Arc::new(ListViewArray::new(
            item32,
            ScalarBuffer::from(vec![2, 0, 0]),
            ScalarBuffer::from(vec![2, 1, 0]),
            Arc::new(Int32Array::from(vec![7, 8, 9, 10])),
            None,
        ));
        assert_eq!(json(v), strs(&["[9,10]", "[7]", "[]"]));
    }

    #[test]
    fn maps() {
        let mut b = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        b.keys().append_value("a\"k");
        b.values().append_value(1);
        b.keys().append_value("b");
        b.values().append_null();
        b.append(true).unwrap();
        b.append(false).unwrap();
        b.append(true).unwrap();
        let v: ArrayRef = Arc::new(b.finish());
        assert_eq!(
            json(v.clone()),
            strs(&[r#"{"a\"k":1,"b":null}"#, "null", "{}"])
        );
        assert_eq!(text(v), strs(&[r#"{"a\"k":1,"b":null}"#, "NULL", "{}"]));

        let mut b = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
        b.keys().append_value(-7);
        b.values().append_value("x");
        b.keys().append_value(8);
        b.values().append_value("y");
        b.append(true).unwrap();
        let v: ArrayRef = Arc::new(b.finish());
        assert_eq!(json(v), strs(&[r#"{"-7":"x","8":"y"}"#]));
    }

    #[test]
    fn dictionaries() {
        let d: DictionaryArray<Int32Type> = vec![Some("a\nb"), None, Some("c"), Some("a\nb")]
            .into_iter()
            .collect();
        let v: ArrayRef = Arc::new(d);
        assert_eq!(
            json(v.clone()),
            strs(&["\"a\\nb\"", "null", "\"c\"", "\"a\\nb\""])
        );
        assert_eq!(text(v), strs(&["a\nb", "NULL", "c", "a\nb"]));

        // Dictionary of non-string values, including a null value slot.
        let keys = UInt8Array::from(vec![Some(1), Some(0), None, Some(2)]);
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(10), Some(-20), None]));
        let v: ArrayRef = Arc::new(DictionaryArray::new(keys, values));
        assert_eq!(json(v), strs(&["-20", "10", "null", "null"]));
    }
}
