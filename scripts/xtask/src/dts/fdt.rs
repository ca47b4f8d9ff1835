//! A reader for flattened device trees (the DTB format of the Devicetree Specification v0.4,
//! chapter 5), into an owned tree. Every offset and length is checked: bad input is an error,
//! never a panic.

use std::collections::HashSet;

use crate::error::{Error, Result};

/// `FDT_MAGIC` (DT spec 5.2).
const MAGIC: u32 = 0xd00d_feed;
/// Structure block tokens (DT spec 5.4.1).
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Deeper trees are refused rather than recursed into (system descriptions are 4 levels deep).
const MAX_DEPTH: usize = 32;
/// More nodes than any system description or board tree has (QEMU virt's has about 100; 255
/// VMs of a few nodes each stay far below): a blob with more is refused as it is read.
const MAX_NODES: usize = 1 << 16;
/// The header's size for version 17 (DT spec 5.2): ten 32-bit fields.
const HEADER_SIZE: usize = 40;

/// One node: its name as written (with any unit address), its properties and children, in
/// the order of the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub properties: Vec<Property>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub value: Vec<u8>,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedDtb {
        reason: reason.into(),
    }
}

fn be32(blob: &[u8], offset: usize) -> Result<u32> {
    offset
        .checked_add(4)
        .and_then(|end| blob.get(offset..end))
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| malformed(format!("read past the end at offset {offset:#x}")))
}

/// Reads a whole blob into its root node.
pub fn read(blob: &[u8]) -> Result<Node> {
    if be32(blob, 0)? != MAGIC {
        return Err(malformed("bad magic"));
    }
    let total = be32(blob, 4)? as usize;
    let blob = blob
        .get(..total)
        .ok_or_else(|| malformed("totalsize exceeds the blob"))?;
    let struct_offset = be32(blob, 8)? as usize;
    let strings_offset = be32(blob, 12)? as usize;
    let version = be32(blob, 20)?;
    if version < 17 {
        return Err(malformed(format!(
            "version {version} (17 or later is needed)"
        )));
    }
    let strings_size = be32(blob, 32)? as usize;
    let struct_size = be32(blob, 36)? as usize;
    let strings_range = block(strings_offset, strings_size, blob.len())
        .ok_or_else(|| malformed("strings block out of bounds"))?;
    let struct_range = block(struct_offset, struct_size, blob.len())
        .ok_or_else(|| malformed("structure block out of bounds"))?;
    // Each block lies after the header and apart from the other (DT spec 5.1), or one
    // block's bytes would be read as the other's.
    if struct_range.start < HEADER_SIZE || strings_range.start < HEADER_SIZE {
        return Err(malformed("a block overlaps the header"));
    }
    if struct_range.start < strings_range.end && strings_range.start < struct_range.end {
        return Err(malformed("the structure and strings blocks overlap"));
    }
    let mut reader = Reader {
        structure: &blob[struct_range],
        strings: &blob[strings_range],
        offset: 0,
        nodes: 0,
    };
    let token = reader.token()?;
    if token != FDT_BEGIN_NODE {
        return Err(malformed("the structure block does not start with a node"));
    }
    let root = reader.node("/", 0)?;
    if reader.token()? != FDT_END {
        return Err(malformed("data after the root node"));
    }
    if reader.offset != reader.structure.len() {
        return Err(malformed("data after the FDT_END token"));
    }
    Ok(root)
}

/// `offset..offset + size`, if it lies within `len` bytes.
fn block(offset: usize, size: usize, len: usize) -> Option<std::ops::Range<usize>> {
    let end = offset.checked_add(size)?;
    (end <= len).then_some(offset..end)
}

struct Reader<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
    offset: usize,
    /// Nodes read so far.
    nodes: usize,
}

impl Reader<'_> {
    /// The next token, skipping `FDT_NOP`s.
    fn token(&mut self) -> Result<u32> {
        loop {
            let token = be32(self.structure, self.offset)?;
            self.offset += 4;
            if token != FDT_NOP {
                return Ok(token);
            }
        }
    }

    /// A NUL-terminated string starting at `offset` of `bytes`.
    fn c_str(bytes: &[u8], offset: usize, what: &str) -> Result<String> {
        let tail = bytes
            .get(offset..)
            .ok_or_else(|| malformed(format!("{what} out of bounds")))?;
        let len = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(format!("{what} not terminated")))?;
        String::from_utf8(tail[..len].to_vec())
            .map_err(|_| malformed(format!("{what} is not UTF-8")))
    }

    fn align(&mut self) {
        self.offset = self.offset.next_multiple_of(4);
    }

    /// The node whose `FDT_BEGIN_NODE` was just read, up to and including its `FDT_END_NODE`.
    /// `path` is its full path, for messages.
    fn node(&mut self, path: &str, depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            return Err(malformed(format!("nodes nested too deeply (below `{path}`)")));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(malformed(format!("more than {MAX_NODES} nodes (below `{path}`)")));
        }
        let name = Self::c_str(self.structure, self.offset, "node name")?;
        self.offset += name.len() + 1;
        self.align();
        // The root's name is empty; every other node's path is its parent's plus its name.
        let path = match (depth, path) {
            (0, _) => String::from("/"),
            (_, "/") => format!("/{name}"),
            (_, parent) => format!("{parent}/{name}"),
        };
        let mut node = Node {
            name,
            properties: Vec::new(),
            children: Vec::new(),
        };
        // Names seen so far, so that a node with very many children stays linear.
        let mut property_names = HashSet::new();
        let mut child_names = HashSet::new();
        loop {
            match self.token()? {
                FDT_PROP => {
                    let len = be32(self.structure, self.offset)? as usize;
                    let name_offset = be32(self.structure, self.offset + 4)? as usize;
                    self.offset += 8;
                    let value = self
                        .offset
                        .checked_add(len)
                        .and_then(|end| self.structure.get(self.offset..end))
                        .ok_or_else(|| malformed(format!("a property of `{path}` is out of bounds")))?
                        .to_vec();
                    self.offset += len;
                    self.align();
                    let name = Self::c_str(self.strings, name_offset, "property name")?;
                    if !node.children.is_empty() {
                        return Err(malformed(format!("property `{name}` after a child node in `{path}`")));
                    }
                    if !property_names.insert(name.clone()) {
                        return Err(malformed(format!("duplicate property `{name}` in `{path}`")));
                    }
                    node.properties.push(Property { name, value });
                }
                FDT_BEGIN_NODE => {
                    let child = self.node(&path, depth + 1)?;
                    // Sibling names are unique (DT spec 2.2.1); a second one would silently
                    // replace or add to the first.
                    if !child_names.insert(child.name.clone()) {
                        let shown = if path == "/" { String::new() } else { path.clone() };
                        return Err(malformed(format!("duplicate node `{shown}/{}`", child.name)));
                    }
                    node.children.push(child);
                }
                FDT_END_NODE => return Ok(node),
                other => {
                    return Err(malformed(format!("unexpected token {other:#x} in `{path}`")));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_string("compatible", "x").unwrap();
        let child = w.begin_node("child@1").unwrap();
        w.property_u32("cell", 7).unwrap();
        w.end_node(child).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_what_vm_fdt_writes() {
        let root = read(&sample()).unwrap();
        assert_eq!(root.name, "");
        assert_eq!(
            root.properties[0],
            Property {
                name: "compatible".into(),
                value: b"x\0".to_vec()
            }
        );
        assert_eq!(root.children[0].name, "child@1");
        assert_eq!(root.children[0].properties[0].value, 7u32.to_be_bytes());
    }

    #[test]
    fn truncated_or_corrupt_blobs_are_errors_not_panics() {
        let blob = sample();
        for len in 0..blob.len() {
            assert!(read(&blob[..len]).is_err(), "truncated at {len}");
        }
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0xff;
            let _ = read(&bad);
        }
    }

    /// Writes `node` with vm-fdt (which checks names more strictly than the reader).
    fn write(w: &mut vm_fdt::FdtWriter, node: &Node) -> Result<(), vm_fdt::Error> {
        let handle = w.begin_node(&node.name)?;
        for p in &node.properties {
            w.property(&p.name, &p.value)?;
        }
        for child in &node.children {
            write(w, child)?;
        }
        w.end_node(handle)
    }

    #[test]
    fn duplicates_and_trailing_data_are_refused() {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        let a = w.begin_node("a").unwrap();
        w.end_node(a).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        assert!(read(&blob).is_ok());
        // `a` renamed in place cannot be duplicated by vm-fdt, so splice a second `a` node
        // after the first: BEGIN_NODE "a" END_NODE is 12 bytes at offset 8 of the structure block.
        let struct_offset = u32::from_be_bytes(blob[8..12].try_into().unwrap()) as usize;
        let node_a = blob[struct_offset + 8..struct_offset + 20].to_vec();
        let mut doubled = blob.clone();
        doubled.splice(struct_offset + 20..struct_offset + 20, node_a);
        let size = |b: &mut Vec<u8>, at: usize, grow: u32| {
            let v = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) + grow;
            b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        };
        size(&mut doubled, 4, 12); // totalsize
        size(&mut doubled, 12, 12); // off_dt_strings
        size(&mut doubled, 36, 12); // size_dt_struct
        let error = read(&doubled).unwrap_err().to_string();
        assert!(error.contains("duplicate node `/a`"), "{error}");
    }

    proptest::proptest! {
        /// Any corruption of a valid blob (bytes changed, cut short, or grown) is an error or
        /// a tree, never a panic; and a tree the reader accepts survives a write and a
        /// re-read (fuzz/src/system_dtb.rs does the same under libFuzzer).
        #[test]
        fn corrupt_blobs_never_panic_and_accepted_trees_round_trip(
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..8),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let mut blob = sample();
            for (at, value) in edits {
                let at = at % blob.len();
                blob[at] = value;
            }
            blob.truncate(blob.len() - cut % 16);
            if let Ok(root) = read(&blob) {
                let mut w = vm_fdt::FdtWriter::new().unwrap();
                if write(&mut w, &root).is_ok() {
                    let again = read(&w.finish().unwrap()).unwrap();
                    proptest::prop_assert_eq!(again, root);
                }
            }
        }
    }
}
