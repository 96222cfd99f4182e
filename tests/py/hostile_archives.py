"""Hostile uploads, built in memory at test time (tests/integration/test_hostile_archives.py).

Every builder returns the upload's bytes. Well-formed archives come from tarfile/zipfile;
damaged ones and the bombs are raw bytes, because the standard modules refuse to write
them (a wrong checksum, a GNU sparse member, a deflate stream 1000 times its size).
"""

import io
import struct
import tarfile
import zipfile
import zlib

GOOD_CONF = b"[good]\nkey = value\n"
MIB = 1 << 20


# ----------------------------------------------------------------------------- tar


def _tar_entry(t, name, data=b"", kind=tarfile.REGTYPE, linkname="", devmajor=0, devminor=0):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    info.linkname = linkname
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    t.addfile(info, io.BytesIO(data) if info.size else None)


def tar_bytes(entries, mode="w", fmt=tarfile.PAX_FORMAT, encoding="utf-8"):
    """entries: [(name, data)] or [(name, data, kind, linkname[, devmajor, devminor])];
    names may hold surrogate-escaped bytes (non-UTF-8 names with encoding="utf-8")."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=fmt, encoding=encoding,
                      errors="surrogateescape") as t:
        for e in entries:
            _tar_entry(t, *e)
    return buf.getvalue()


def tar_header(name, size, typeflag=b"0", magic=b"ustar\x0000", extra=None):
    """One raw 512-byte tar header with a correct checksum; extra: {offset: bytes}."""
    h = bytearray(512)

    def put(off, b):
        h[off:off + len(b)] = b

    put(0, name[:100])
    put(100, b"0000644\0")
    put(108, b"0001750\0")
    put(116, b"0001750\0")
    put(124, b"%011o\0" % size)
    put(136, b"%011o\0" % 0)
    put(156, typeflag)
    put(257, magic)
    for off, b in (extra or {}).items():
        put(off, b)
    put(148, b" " * 8)
    put(148, b"%06o\0 " % sum(h))
    return bytes(h)


def tar_bad_checksum():
    data = tar_bytes([("app/default/inputs.conf", GOOD_CONF)], fmt=tarfile.USTAR_FORMAT)
    broken = bytearray(data)
    broken[148:156] = b"0000001\0"
    return bytes(broken)


def tar_sparse(realsize=4 << 30):
    """An old-GNU sparse member ('S'): 512 real bytes at the end of a 4 GiB hole."""
    sparse_map = b"%011o\0%011o\0" % (realsize - 512, 512)
    h = tar_header(b"app/lookups/huge.csv", 512, typeflag=b"S", magic=b"ustar  \0",
                   extra={386: sparse_map, 483: b"%011o\0" % realsize})
    return h + b"x" * 512 + bytes(1024)


def many_entries(n):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.USTAR_FORMAT) as t:
        for i in range(n):
            _tar_entry(t, "d%d/" % i, kind=tarfile.DIRTYPE)
    return buf.getvalue()


# ----------------------------------------------------------------------------- bombs


def _zero_deflate(prefix, zeros_mib):
    """A raw deflate stream of prefix then zeros_mib MiB of zeros, built from one compressed
    MiB repeated: after a full flush the same input gives the same bytes, so GiBs cost a
    few ms to build and ~1 KiB per MiB to upload."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    return head + block * zeros_mib + c.flush(zlib.Z_FINISH)


def _zeros_crc(prefix, zeros_mib, suffix=b""):
    crc = zlib.crc32(prefix)
    z = bytes(MIB)
    for _ in range(zeros_mib):
        crc = zlib.crc32(z, crc)
    return zlib.crc32(suffix, crc)


def gzip_bomb(zeros_mib=2048):
    """A tar.gz of ~2 MiB whose one entry inflates to 2 GiB of zeros (honest header)."""
    size = zeros_mib * MIB
    header = tar_header(b"app/default/inputs.conf", size)
    end = bytes(1024)
    crc = _zeros_crc(header, zeros_mib, end)
    return _gzip_from_parts(header, zeros_mib, end, crc, len(header) + size + len(end))


def _gzip_from_parts(prefix, zeros_mib, suffix, crc, total):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(MIB)) + c.flush(zlib.Z_FULL_FLUSH)
    last = c.compress(suffix) + c.flush(zlib.Z_FINISH)
    last = last[:-8]
    return out + block * zeros_mib + last + struct.pack("<II", crc, total & 0xFFFFFFFF)


def gzip_bomb_many(entries=11, mib_each=99):
    """A tar.gz whose entries each stay under the per-entry limit but together pass the
    total: the headers break the repetition, so each entry is compressed on its own."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = []
    crc, total = 0, 0
    z = bytes(MIB)
    block = None
    for i in range(entries):
        h = tar_header(b"app/bin/blob%d.bin" % i, mib_each * MIB)
        out.append(c.compress(h) + c.flush(zlib.Z_FULL_FLUSH))
        crc = zlib.crc32(h, crc)
        if block is None:
            block = c.compress(z) + c.flush(zlib.Z_FULL_FLUSH)
        out.append(block * mib_each)
        for _ in range(mib_each):
            crc = zlib.crc32(z, crc)
        total += 512 + mib_each * MIB
    end = bytes(1024)
    crc = zlib.crc32(end, crc)
    total += len(end)
    last = (c.compress(end) + c.flush(zlib.Z_FINISH))[:-8]
    return b"".join(out) + last + struct.pack("<II", crc, total & 0xFFFFFFFF)


def _zip_local(name, method, crc, csize, usize, flags=0):
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc, csize,
                       usize, len(name), 0) + name


def _zip_central(name, method, crc, csize, usize, offset, attr=0, flags=0):
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 20, flags, method, 0, 0x21,
                       crc, csize, usize, len(name), 0, 0, 0, 0, attr, offset) + name


def _zip_end(count, cd_size, cd_offset):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0)


def zip_raw(entries):
    """entries: [(name, method, payload, crc, usize, attr, cd_usize)] -> zip bytes, with
    the central directory saying cd_usize (a lie when it differs from usize)."""
    body, cd = b"", b""
    for name, method, payload, crc, usize, attr, cd_usize in entries:
        off = len(body)
        body += _zip_local(name, method, crc, len(payload), usize) + payload
        cd += _zip_central(name, method, crc, len(payload), cd_usize, off, attr)
    return body + cd + _zip_end(len(entries), len(cd), len(body))


def zip_bomb(zeros_mib=1024, lie=False):
    """One deflated entry of zeros_mib MiB zeros (~1 MiB compressed); with lie the local
    and central headers both claim 100 bytes."""
    payload = _zero_deflate(b"", zeros_mib)
    crc = _zeros_crc(b"", zeros_mib)
    usize = 100 if lie else zeros_mib * MIB
    return zip_raw([(b"app/default/inputs.conf", 8, payload, crc, usize, 0o100644 << 16,
                     usize)])


# ----------------------------------------------------------------------------- zip


def zip_bytes(entries):
    """entries: [(name, data)] or [(name, data, unix_mode)] (0o120777 makes a symlink)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for e in entries:
            name, data = e[0], e[1]
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if len(e) > 2:
                info.external_attr = e[2] << 16
                info.create_system = 3
            z.writestr(info, data)
    return buf.getvalue()


def zip_bad_crc():
    data = bytearray(zip_bytes([("app/default/inputs.conf", GOOD_CONF * 20)]))
    # The CRC in both the local header (offset 14) and the central directory.
    data[14] ^= 0xFF
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 16] ^= 0xFF
    return bytes(data)


def zip_lying_offset():
    """The central directory points the entry's local header into the middle of nowhere."""
    data = bytearray(zip_bytes([("app/default/inputs.conf", GOOD_CONF * 20)]))
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 42, 7)
    return bytes(data)


def zip_lying_cd_count():
    """The end record claims 5000 entries and a central directory past the end."""
    data = bytearray(zip_bytes([("app/default/inputs.conf", GOOD_CONF)]))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HHII", data, end + 8, 5000, 5000, 1 << 20, len(data) + 4096)
    return bytes(data)


# ----------------------------------------------------------------------------- other


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def random_bytes(n=4096, seed=7):
    import random

    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))
