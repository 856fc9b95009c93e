#!/usr/bin/python3
"""make_slide.py - writes the whole-slide fixture of tests/test_slides.c: a tiled, pyramidal,
Deflate-compressed TIFF with an Aperio ImageDescription (AppMag = 20, MPP = 0.5), so that
OpenSlide opens it with its aperio driver. Standard library only (struct + zlib).

    make_slide.py OUT.svs                 the Aperio fixture
    make_slide.py --generic OUT.tif       the same pixels as a generic tiled TIFF: no
                                          description, resolution tags in px per cm only
    make_slide.py --bare OUT.tif          the same pixels with neither (no resolution at all)

Layout (level 0 is 3072 x 2048 px, levels 1 and 2 are 4x and 16x smaller; a 256-px grid has
12 x 8 cells; rectangles are [x0, x1) x [y0, y1) in level-0 px):

    tissue A  [256, 1024)  x [256, 1024)    3 x 3 cells
    tissue B  [1792, 2816) x [256, 768)     4 x 2 cells
    tissue C  [512, 1536)  x [1280, 1792)   4 x 2 cells
    tissue D  [2304, 2496) x [1280, 1536)   3/4 of cell (9, 5)
    dark      [1792, 2048) x [1280, 1792)   near-black pen mark with coloured noise
    elsewhere: near-white glass (grey, saturation 0)

The pixel at level 0 (x, y) is pixel(x, y) below; test_slides.c recomputes it. Every colour is
constant on aligned 4 x 4 blocks, so level 1 is level 0 sampled at (4u, 4v) and level 2 is the
mean of the sixteen 4 x 4 blocks of its 16 x 16 square (rounded half up)."""
import struct
import sys
import zlib

W0, H0 = 3072, 2048
TISSUE = [(256, 1024, 256, 1024), (1792, 2816, 256, 768), (512, 1536, 1280, 1792),
          (2304, 2496, 1280, 1536)]
DARK = (1792, 2048, 1280, 1792)
PINK, PURPLE = (232, 150, 196), (110, 62, 158)
GLASS = [(243, 243, 243), (246, 246, 246), (249, 249, 249)]
INK = [(12, 0, 9), (0, 11, 14), (10, 15, 0)]
TILE = 256


def pixel(x, y):
    """The level-0 colour at (x, y)."""
    if DARK[0] <= x < DARK[1] and DARK[2] <= y < DARK[3]:
        return INK[((x >> 2) + (y >> 2)) % 3]
    for x0, x1, y0, y1 in TISSUE:
        if x0 <= x < x1 and y0 <= y < y1:
            return PURPLE if ((x >> 3) * 7 + (y >> 3) * 13) % 5 == 0 else PINK
    return GLASS[((x >> 2) + 2 * (y >> 2)) % 3]


_rows = {}


def row0(y):
    """Level-0 row y as W0 * 3 bytes, one pixel() per 4-px block; rows repeat in fours."""
    y &= ~3
    if y not in _rows:
        _rows[y] = b"".join(bytes(pixel(x, y)) * 4 for x in range(0, W0, 4))
    return _rows[y]


def level(ds):
    """The level with downsample ds as rows of bytes."""
    w, h = W0 // ds, H0 // ds
    if ds == 1:
        return [row0(y) for y in range(h)]
    rows = []
    n = ds // 4
    for v in range(h):
        acc = [0] * (3 * w)
        for b in range(n):
            for a in range(n):
                for u in range(w):
                    c = pixel(u * ds + 4 * a, v * ds + 4 * b)
                    acc[3 * u] += c[0]
                    acc[3 * u + 1] += c[1]
                    acc[3 * u + 2] += c[2]
        k = n * n
        rows.append(bytes((s + k // 2) // k for s in acc))
    return rows


def tiles(rows, w, h):
    """Deflated 256 x 256 tiles in row-major order, edge tiles padded with white."""
    out = []
    for ty in range(0, h, TILE):
        for tx in range(0, w, TILE):
            buf = bytearray()
            for y in range(ty, ty + TILE):
                r = rows[y][3 * tx:3 * (tx + TILE)] if y < h else b""
                buf += r + b"\xff" * (3 * TILE - len(r))
            out.append(zlib.compress(bytes(buf), 6))
    return out


def write_tiff(path, desc_tags, res_tags):
    levels = [(1, W0, H0), (4, W0 // 4, H0 // 4), (16, W0 // 16, H0 // 16)]
    desc = (b"Aperio Image Library v12.0.0 \r\n%dx%d [0,0 %dx%d] (256x256) Deflate|AppMag = 20"
            b"|MPP = 0.5|Filename = fixture\0" % (W0, H0, W0, H0))
    body = bytearray(b"II*\0\0\0\0\0")  # header; first IFD offset patched below
    prev_next = 4  # where the offset of the next IFD goes

    def put(data):
        while len(body) % 2:
            body.append(0)
        off = len(body)
        body.extend(data)
        return off

    for i, (ds, w, h) in enumerate(levels):
        tl = tiles(level(ds), w, h)
        offs = [put(t) for t in tl]
        entries = []  # (tag, type, count, value bytes)

        def tag(t, typ, vals):
            fmt = {3: "<H", 4: "<I", 2: None, 5: None}[typ]
            if typ == 2:
                data = vals
                count = len(vals)
            elif typ == 5:
                data = b"".join(struct.pack("<II", n, d) for n, d in vals)
                count = len(vals)
            else:
                data = b"".join(struct.pack(fmt, v) for v in vals)
                count = len(vals)
            entries.append((t, typ, count, data))

        tag(254, 4, [0 if i == 0 else 1])
        tag(256, 4, [w])
        tag(257, 4, [h])
        tag(258, 3, [8, 8, 8])
        tag(259, 3, [8])  # Adobe Deflate
        tag(262, 3, [2])  # RGB
        if desc_tags:
            tag(270, 2, desc if i == 0 else b"Aperio Image Library v12.0.0 \r\nlevel\0")
        tag(277, 3, [3])
        if res_tags:
            ppcm = 20000 // ds  # 0.5 um/px at level 0: 20000 px per cm
            tag(282, 5, [(ppcm, 1)])
            tag(283, 5, [(ppcm, 1)])
        tag(284, 3, [1])
        if res_tags:
            tag(296, 3, [3])  # centimetre
        tag(322, 3, [TILE])
        tag(323, 3, [TILE])
        tag(324, 4, offs)
        tag(325, 4, [len(t) for t in tl])
        # out-of-line values first, then the IFD
        fixed = []
        for t, typ, count, data in entries:
            if len(data) <= 4:
                fixed.append((t, typ, count, data.ljust(4, b"\0")))
            else:
                fixed.append((t, typ, count, struct.pack("<I", put(data))))
        ifd = bytearray(struct.pack("<H", len(fixed)))
        for t, typ, count, val in fixed:
            ifd += struct.pack("<HHI", t, typ, count) + val
        ifd += b"\0\0\0\0"
        off = put(bytes(ifd))
        struct.pack_into("<I", body, prev_next, off)
        prev_next = off + 2 + 12 * len(fixed)

    with open(path, "wb") as f:
        f.write(body)


def main(argv):
    flags = [a for a in argv[1:] if a.startswith("--")]
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1 or len(flags) > 1 or (flags and flags[0] not in ("--generic", "--bare")):
        sys.stderr.write("usage: make_slide.py [--generic | --bare] OUT\n")
        return 2
    kind = flags[0] if flags else ""
    write_tiff(args[0], kind == "", kind != "--bare")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
