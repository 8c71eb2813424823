//! The metadata event of a JFR chunk: the description of every type (event
//! types, constant pool types, primitive types) used by that chunk.
//!
//! Layout of the metadata event (type id 0), after its size and type id:
//! `startTime long, duration long, metadataId long, stringCount int,
//! strings[stringCount], root element`. Every element is `name int (index
//! into the strings), attributeCount int, (key int, value int)*,
//! childCount int, children*`. The root holds a `metadata` element whose
//! `class` children describe the types: attributes `id` (decimal type id),
//! `name`, optionally `superType`/`simpleType`; `field` children with
//! attributes `name`, `class` (decimal type id of the field),
//! `constantPool="true"` (the value is an index into that type's constant
//! pool) and `dimension="1"` (the value is an array). `annotation` and
//! `setting` children are ignored.

use rustc_hash::FxHashMap;

use super::JfrDecodeError;
use super::reader::{ByteReader, StrValue};

/// Nesting limit of metadata elements; the JDK uses five levels.
const MAX_ELEMENT_DEPTH: usize = 32;
/// Most strings and elements a metadata event may hold (the JDK's hold a
/// few thousand); bounds memory whatever the input size.
const MAX_METADATA_ITEMS: usize = 1 << 20;
/// Largest capacity reserved up front from a count read from the file;
/// collections grow past it only as items are actually read.
const MAX_PREALLOCATION: usize = 256;

/// How a value of a type is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TypeKind {
    Boolean,
    Byte,
    Char,
    Short,
    Int,
    Long,
    Float,
    Double,
    String,
    /// A class whose value is its fields, in order.
    Struct,
}

#[derive(Debug, Clone)]
pub(super) struct FieldDesc {
    pub(super) name: String,
    /// Index of the field's type in [`TypeTable::classes`].
    pub(super) type_index: usize,
    pub(super) constant_pool: bool,
    pub(super) array: bool,
}

#[derive(Debug, Clone)]
pub(super) struct ClassDesc {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) kind: TypeKind,
    pub(super) fields: Vec<FieldDesc>,
}

impl ClassDesc {
    pub(super) fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|field| field.name == name)
    }
}

/// All types of one chunk.
#[derive(Debug, Default)]
pub(super) struct TypeTable {
    pub(super) classes: Vec<ClassDesc>,
    by_id: FxHashMap<u64, usize>,
}

impl TypeTable {
    pub(super) fn index_of_id(&self, id: u64) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    pub(super) fn by_id(&self, id: u64) -> Option<&ClassDesc> {
        self.index_of_id(id).map(|index| &self.classes[index])
    }

    pub(super) fn class(&self, index: usize) -> &ClassDesc {
        &self.classes[index]
    }
}

#[derive(Debug)]
struct Element {
    name: usize,
    attributes: Vec<(usize, usize)>,
    children: Vec<Element>,
}

/// Reads the metadata event whose size and type id were already consumed.
pub(super) fn read_metadata(reader: &mut ByteReader<'_>) -> Result<TypeTable, JfrDecodeError> {
    reader.read_long("metadata start time")?;
    reader.read_long("metadata duration")?;
    reader.read_long("metadata id")?;
    let string_count = reader.read_count("metadata string count")?;
    if string_count > MAX_METADATA_ITEMS {
        return Err(JfrDecodeError::LimitExceeded {
            offset: reader.offset(),
            what: "number of metadata strings",
            limit: MAX_METADATA_ITEMS,
        });
    }
    let mut strings = Vec::with_capacity(string_count.min(MAX_PREALLOCATION));
    for _ in 0..string_count {
        let offset = reader.offset();
        match reader.read_string("metadata string")? {
            StrValue::Inline(text) => strings.push(text),
            StrValue::Null => strings.push(String::new()),
            StrValue::Pool(_) => {
                return Err(JfrDecodeError::InvalidMetadata {
                    offset,
                    reason: "a metadata string refers to a constant pool".into(),
                });
            }
        }
    }
    let mut element_budget = MAX_METADATA_ITEMS;
    let root = read_element(reader, &strings, 0, &mut element_budget)?;
    build_type_table(&root, &strings, reader.offset())
}

fn read_string_index(
    reader: &mut ByteReader<'_>,
    strings: &[String],
    what: &'static str,
) -> Result<usize, JfrDecodeError> {
    let offset = reader.offset();
    let index = usize::try_from(reader.read_int(what)?).unwrap_or(usize::MAX);
    if index >= strings.len() {
        return Err(JfrDecodeError::InvalidMetadata {
            offset,
            reason: format!(
                "{what} {index} is not below the string count {}",
                strings.len()
            ),
        });
    }
    Ok(index)
}

fn read_element(
    reader: &mut ByteReader<'_>,
    strings: &[String],
    depth: usize,
    budget: &mut usize,
) -> Result<Element, JfrDecodeError> {
    if *budget == 0 {
        return Err(JfrDecodeError::LimitExceeded {
            offset: reader.offset(),
            what: "number of metadata elements and attributes",
            limit: MAX_METADATA_ITEMS,
        });
    }
    *budget -= 1;
    if depth > MAX_ELEMENT_DEPTH {
        return Err(JfrDecodeError::InvalidMetadata {
            offset: reader.offset(),
            reason: format!("elements nest deeper than {MAX_ELEMENT_DEPTH} levels"),
        });
    }
    let name = read_string_index(reader, strings, "metadata element name")?;
    let attribute_count = reader.read_count("metadata attribute count")?;
    if attribute_count > *budget {
        return Err(JfrDecodeError::LimitExceeded {
            offset: reader.offset(),
            what: "number of metadata elements and attributes",
            limit: MAX_METADATA_ITEMS,
        });
    }
    *budget -= attribute_count;
    let mut attributes = Vec::with_capacity(attribute_count.min(MAX_PREALLOCATION));
    for _ in 0..attribute_count {
        let key = read_string_index(reader, strings, "metadata attribute key")?;
        let value = read_string_index(reader, strings, "metadata attribute value")?;
        attributes.push((key, value));
    }
    let child_count = reader.read_count("metadata child count")?;
    let mut children = Vec::with_capacity(child_count.min(MAX_PREALLOCATION));
    for _ in 0..child_count {
        children.push(read_element(reader, strings, depth + 1, budget)?);
    }
    Ok(Element {
        name,
        attributes,
        children,
    })
}

fn attribute<'s>(element: &Element, strings: &'s [String], key: &str) -> Option<&'s str> {
    element
        .attributes
        .iter()
        .find(|(k, _)| strings[*k] == key)
        .map(|(_, v)| strings[*v].as_str())
}

fn parse_type_id(text: Option<&str>, offset: usize, what: &str) -> Result<u64, JfrDecodeError> {
    text.and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| JfrDecodeError::InvalidMetadata {
            offset,
            reason: format!("{what} has a missing or non-numeric type id {text:?}"),
        })
}

fn kind_of(name: &str) -> TypeKind {
    match name {
        "boolean" => TypeKind::Boolean,
        "byte" => TypeKind::Byte,
        "char" => TypeKind::Char,
        "short" => TypeKind::Short,
        "int" => TypeKind::Int,
        "long" => TypeKind::Long,
        "float" => TypeKind::Float,
        "double" => TypeKind::Double,
        "java.lang.String" => TypeKind::String,
        _ => TypeKind::Struct,
    }
}

/// Field descriptors before their type ids are resolved to indexes.
struct PendingField {
    name: String,
    type_id: u64,
    constant_pool: bool,
    array: bool,
}

fn build_type_table(
    root: &Element,
    strings: &[String],
    offset: usize,
) -> Result<TypeTable, JfrDecodeError> {
    let mut table = TypeTable::default();
    let mut pending = Vec::new();
    let class_elements = root
        .children
        .iter()
        .filter(|child| strings[child.name] == "metadata")
        .flat_map(|metadata| metadata.children.iter())
        .filter(|child| strings[child.name] == "class");
    for element in class_elements {
        let id = parse_type_id(attribute(element, strings, "id"), offset, "a class")?;
        let name = attribute(element, strings, "name")
            .unwrap_or_default()
            .to_owned();
        let mut fields = Vec::new();
        for field in element
            .children
            .iter()
            .filter(|child| strings[child.name] == "field")
        {
            let field_name = attribute(field, strings, "name").unwrap_or_default();
            let array = match attribute(field, strings, "dimension") {
                None | Some("0") => false,
                Some("1") => true,
                Some(other) => {
                    return Err(JfrDecodeError::InvalidMetadata {
                        offset,
                        reason: format!(
                            "field {name}.{field_name} has unsupported dimension {other:?}"
                        ),
                    });
                }
            };
            fields.push(PendingField {
                name: field_name.to_owned(),
                type_id: parse_type_id(attribute(field, strings, "class"), offset, "a field")?,
                constant_pool: attribute(field, strings, "constantPool") == Some("true"),
                array,
            });
        }
        if table.by_id.insert(id, table.classes.len()).is_some() {
            return Err(JfrDecodeError::InvalidMetadata {
                offset,
                reason: format!("type id {id} is described twice"),
            });
        }
        table.classes.push(ClassDesc {
            id,
            kind: kind_of(&name),
            name,
            fields: Vec::new(),
        });
        pending.push(fields);
    }
    for (class_index, fields) in pending.into_iter().enumerate() {
        let mut resolved = Vec::with_capacity(fields.len());
        for field in fields {
            let type_index = table.index_of_id(field.type_id).ok_or_else(|| {
                JfrDecodeError::InvalidMetadata {
                    offset,
                    reason: format!(
                        "field {}.{} has unknown type id {}",
                        table.classes[class_index].name, field.name, field.type_id
                    ),
                }
            })?;
            resolved.push(FieldDesc {
                name: field.name,
                type_index,
                constant_pool: field.constant_pool,
                array: field.array,
            });
        }
        table.classes[class_index].fields = resolved;
    }
    Ok(table)
}
