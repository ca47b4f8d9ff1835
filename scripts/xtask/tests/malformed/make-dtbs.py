#!/usr/bin/env python3
"""Writes the hand-broken DTBs of this directory (the `*.dtb` files named in cases.txt).

Each blob starts from a small, valid system description written here token by token
(Devicetree Specification v0.4, chapter 5) and breaks one thing. Run it from anywhere; it
rewrites the files beside it. The .dtb files are committed so the tests need no Python.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0xD00DFEED
BEGIN_NODE, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9


def be32(*values):
    return b"".join(struct.pack(">I", v & 0xFFFFFFFF) for v in values)


def pad4(data):
    return data + b"\0" * (-len(data) % 4)


class Tree:
    """A structure block and a strings block, built token by token."""

    def __init__(self):
        self.struct = b""
        self.strings = b""
        self.offsets = {}

    def begin(self, name):
        if isinstance(name, str):
            name = name.encode() + b"\0"
        self.struct += be32(BEGIN_NODE) + pad4(name)
        return self

    def end(self):
        self.struct += be32(END_NODE)
        return self

    def name_offset(self, name):
        if name not in self.offsets:
            self.offsets[name] = len(self.strings)
            self.strings += name.encode() + b"\0"
        return self.offsets[name]

    def prop(self, name, value, length=None, name_offset=None):
        if isinstance(value, str):
            value = value.encode() + b"\0"
        offset = self.name_offset(name) if name_offset is None else name_offset
        self.struct += be32(PROP, len(value) if length is None else length, offset) + pad4(value)
        return self

    def u64(self, name, value):
        return self.prop(name, struct.pack(">Q", value))

    def token(self, token):
        self.struct += be32(token)
        return self

    def blob(self, version=17, struct_offset=None, strings_offset=None, total=None,
             strings_size=None, struct_size=None, magic=MAGIC):
        header_size = 40
        rsvmap = be32(0, 0, 0, 0)  # one empty memory reservation entry ends the list
        off_rsv = header_size
        off_struct = off_rsv + len(rsvmap)
        off_strings = off_struct + len(self.struct)
        size = off_strings + len(self.strings)
        header = be32(
            magic,
            size if total is None else total,
            off_struct if struct_offset is None else struct_offset,
            off_strings if strings_offset is None else strings_offset,
            off_rsv,
            version,
            16,
            0,
            len(self.strings) if strings_size is None else strings_size,
            len(self.struct) if struct_size is None else struct_size,
        )
        return header + rsvmap + self.struct + self.strings


def system(tree=None, vm_props=True):
    """The valid description: one VM with one CPU and 32 MiB of RAM."""
    t = tree or Tree()
    t.begin("").prop("compatible", "tessera,system").prop("board", "qemu-virt")
    t.begin("vms").begin("alpha")
    if vm_props:
        t.prop("cpus", be32(0)).prop("image", "guest.img")
        t.begin("memory").u64("guest-base", 0x4000_0000).u64("size", 0x200_0000).end()
    return t


def valid():
    return system().end().end().end().token(END)


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    good = valid().blob()
    write("valid.dtb", good)
    write("empty.dtb", b"")
    write("truncated-header.dtb", good[:22])
    write("truncated-half.dtb", good[: len(good) // 2])
    write("bad-magic.dtb", be32(0xFEEDD00D) + good[4:])
    write("old-version.dtb", valid().blob(version=16))
    write("totalsize-absurd.dtb", valid().blob(total=0xFFFFFFFF))
    write("struct-out-of-bounds.dtb", valid().blob(struct_offset=0x10000))
    write("strings-size-overflow.dtb", valid().blob(strings_size=0xFFFFFFFF))
    # The strings block placed on top of the structure block.
    t = valid()
    write("overlapping-blocks.dtb", t.blob(strings_offset=56))
    # The structure block placed over the header.
    write("struct-over-header.dtb", valid().blob(struct_offset=0))
    # A node name that runs to the end of the structure block without a NUL.
    t = Tree()
    t.struct = be32(BEGIN_NODE) + b"vms-without-end"
    write("unterminated-node-name.dtb", t.blob())
    # A property name with no NUL in the strings block.
    t = system().end().end().end().token(END)
    t.strings = t.strings.rstrip(b"\0")
    write("unterminated-property-name.dtb", t.blob())
    t = Tree().begin(b"\xff\xfe\0").end().token(END)
    write("non-utf8-node-name.dtb", t.blob())
    t = Tree().begin("").prop("compatible", "tessera,system", length=0xFFFFFFF0).end().token(END)
    write("property-length-absurd.dtb", t.blob())
    t = Tree().begin("").prop("compatible", "tessera,system", name_offset=0x7FFFFFFF).end().token(END)
    write("property-name-offset-absurd.dtb", t.blob())
    write("no-root-node.dtb", Tree().token(END).blob())
    t = Tree().begin("").token(7).end().token(END)
    write("unknown-token.dtb", t.blob())
    write("missing-end-token.dtb", system().end().end().end().blob())
    write("data-after-root.dtb", valid().begin("again").end().token(END).blob())
    t = Tree().begin("")
    for depth in range(200):
        t.begin(f"n{depth}")
    write("deep-nesting.dtb", t.blob())
    t = Tree().begin("").begin("vms").end().prop("compatible", "tessera,system").end().token(END)
    write("property-after-child.dtb", t.blob())
    # Only NOPs: the reader must stop at the end of the block.
    write("nop-flood.dtb", Tree().token(NOP).token(NOP).token(NOP).blob())
    # Two /vms nodes, and a VM with two console nodes: sibling names must be unique.
    t = system().end().end()
    t.begin("vms").end().end().token(END)
    write("duplicate-vms-node.dtb", t.blob())
    t = system()
    t.begin("console").end().begin("console").end()
    write("duplicate-console-node.dtb", t.end().end().end().token(END).blob())
    t = Tree().begin("").prop("compatible", "tessera,system").prop("compatible", "other")
    write("duplicate-property.dtb", t.prop("board", "qemu-virt").end().token(END).blob())
    # A string property without its NUL, and one that is not UTF-8.
    t = Tree().begin("").prop("compatible", b"tessera,system").prop("board", "qemu-virt").end().token(END)
    write("unterminated-string.dtb", t.blob())
    t = Tree().begin("").prop("compatible", "tessera,system").prop("board", b"qemu\xc3\x28virt\0")
    write("non-utf8-string.dtb", t.end().token(END).blob())


if __name__ == "__main__":
    main()
