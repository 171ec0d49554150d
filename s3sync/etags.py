"""Is a local file the same as an object? Size first, then the ETag S3 gives it (plain or multipart MD5)."""
from __future__ import annotations

import hashlib
import stat
from pathlib import Path

PART_SIZES = (8, 5, 16, 50, 64, 100) + (15,)   # MiB: boto3's default first, then other common clients'


def md5_file(path: Path, part_size: int | None = None) -> str:
    """The ETag S3 gives this file: plain MD5, or MD5 of part MD5s + `-N` for a multipart upload."""
    if part_size is None:
        digest = hashlib.md5()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    parts = []
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(part_size), b""):
            parts.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"


def same_content(path: Path, size: int, etag: str) -> bool:
    """Size first (cheap), then the ETag, recomputing a multipart ETag with the part sizes clients use."""
    try:
        st = path.stat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        return False
    etag = etag.strip('"')
    if "-" not in etag:
        return md5_file(path) == etag
    count = int(etag.rsplit("-", 1)[1]) if etag.rsplit("-", 1)[1].isdigit() else 0
    for mib in PART_SIZES:
        part = mib * 1024 * 1024
        if -(-size // part) == count and md5_file(path, part) == etag:
            return True
    return False
