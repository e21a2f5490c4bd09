"""Native libraries in a tree: which platform an ELF file was built for, and whether it can be
stripped. Only the few header fields those decisions need are read."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from kairos_build.platforms import LambdaPlatform

_NATIVE_SUFFIXES = (".so", ".dylib", ".dll", ".pyd", ".exe")
_MACHO_MAGICS = {
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
}
_SHT_DYNAMIC = 6
_DT_RPATH, _DT_RUNPATH = 15, 29
ELF_MACHINES: dict[str, int] = {"aarch64": 183, "x86_64": 62}
"""``e_machine`` of each Lambda machine."""


@dataclass(frozen=True, slots=True)
class ElfInfo:
    machine: int
    """``e_machine``; -1 for an ELF that is not 64-bit little-endian (no Lambda platform)."""
    sections: frozenset[str] = frozenset()
    has_rpath: bool = False

    @property
    def has_symbols(self) -> bool:
        return ".symtab" in self.sections or any(name.startswith(".debug") for name in self.sections)


def read_elf(path: Path) -> ElfInfo | None:
    """The parts of an ELF header that decide whether to drop or strip it; None if not ELF."""
    with path.open("rb") as file:
        header = file.read(64)
        if header[:4] != b"\x7fELF":
            return None
        if len(header) < 64 or header[4] != 2 or header[5] != 1:
            return ElfInfo(machine=-1)
        (machine,) = struct.unpack_from("<H", header, 18)
        (section_offset,) = struct.unpack_from("<Q", header, 40)
        entry_size, count, names_index = struct.unpack_from("<HHH", header, 58)
        if section_offset == 0 or count == 0 or names_index >= count:
            return ElfInfo(machine=machine)
        file.seek(section_offset)
        table = file.read(entry_size * count)
        sections = [struct.unpack_from("<IIQQQQIIQQ", table, index * entry_size) for index in range(count)]

        def read_section(index: int) -> bytes:
            file.seek(sections[index][4])
            return file.read(sections[index][5])

        names = read_section(names_index)
        section_names = frozenset(names[s[0] : names.index(b"\0", s[0])].decode("latin-1") for s in sections)
        has_rpath = False
        for index, section in enumerate(sections):
            if section[1] == _SHT_DYNAMIC:
                dynamic = read_section(index)
                tags = (struct.unpack_from("<q", dynamic, at)[0] for at in range(0, len(dynamic) - 15, 16))
                has_rpath = any(tag in (_DT_RPATH, _DT_RUNPATH) for tag in tags)
        return ElfInfo(machine=machine, sections=section_names, has_rpath=has_rpath)


def is_foreign_binary(path: Path, target: LambdaPlatform) -> bool:
    """A native library built for another OS or architecture (macOS, Windows, the other CPU)."""
    name = path.name
    if not (name.endswith(_NATIVE_SUFFIXES) or ".so." in name):
        return False
    elf = read_elf(path)
    if elf is not None:
        return elf.machine != ELF_MACHINES[target.machine]
    with path.open("rb") as file:
        magic = file.read(4)
    return magic in _MACHO_MAGICS or (magic[:2] == b"MZ" and name.endswith((".dll", ".pyd", ".exe")))
