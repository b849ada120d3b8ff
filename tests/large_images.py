"""Images above Pillow's decompression-bomb limit, made fast and small on disk."""

from __future__ import annotations

import struct
import zlib

from PIL import Image

#: Pillow refuses to open more than twice its limit (179 million pixels at its default).
HUGE_SIDE = 14000


def write_blank_png(path, width: int = HUGE_SIDE, height: int = HUGE_SIDE, bit_depth: int = 1):
    """A black grayscale PNG, written row by row: 14000 x 14000 at 1 bit takes 0.1 s and 100 kB.

    Written by hand (the chunks of the PNG specification), so that making it
    needs no image of that size in memory.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width * bit_depth + 7) // 8)  # filter byte 0, then the pixels
    compressor = zlib.compressobj(1)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # gray, no interlace
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def lower_pillow_limit(monkeypatch, pixels: int = 1000) -> None:
    """Make Pillow's limit so low that small test images are above it (it raises above twice the limit)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels)
