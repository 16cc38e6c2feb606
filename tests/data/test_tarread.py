"""minialex/data/tarread.py reads what tarfile writes, in every header format, and refuses what is broken."""

import io
import tarfile

import pytest

from minialex.data.tarread import iter_members


def make_tar(fmt, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            if data is None:  # a folder
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("a/link")
        link.type, link.linkname = tarfile.SYMTYPE, "a/x.jpg"
        tar.addfile(link)
    return buf.getvalue()


MEMBERS = [
    ("a", None),
    ("a/x.jpg", b"\xff\xd8" + bytes(range(256)) * 3),
    ("a/x.cls", b"7"),
    ("a/empty.json", b""),
    ("a/block.bin", b"z" * 1024),  # exactly two blocks: no padding
    ("d" * 60 + "/" + "e" * 70 + ".jpg", b"long name, split into a ustar prefix"),
    ("f" * 120 + ".jpg", b"long base name: pax or GNU header"),
    ("caf\u00e9/\u00fcber.cls", b"3"),  # non-ASCII: a pax header in PAX_FORMAT
]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_members_equal_tarfiles(fmt):
    members = [m for m in MEMBERS if fmt != tarfile.USTAR_FORMAT or len(m[0].split("/")[-1]) <= 100]
    data = make_tar(fmt, members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
    assert list(iter_members(io.BytesIO(data))) == expected
    assert [n for n, _ in expected] == [n for n, d in members if d is not None]
    # Unwanted members are passed over: their names come, their bytes do not.
    got = list(iter_members(io.BytesIO(data), wanted=lambda name: name.endswith(".cls")))
    assert [n for n, _ in got] == [n for n, _ in expected]
    assert [d for n, d in got] == [d if n.endswith(".cls") else None for n, d in expected]


def test_broken_tars_raise_read_error():
    data = make_tar(tarfile.PAX_FORMAT, MEMBERS[:3])
    with pytest.raises(tarfile.ReadError, match="empty"):
        list(iter_members(io.BytesIO(b"")))
    with pytest.raises(tarfile.ReadError, match="not a tar"):
        list(iter_members(io.BytesIO(b"\xff\xd8 a JPEG, not a tar" * 40)))
    cut = data[:1024 + 300]  # the first file's data (after the folder's and its own header) ends early
    with pytest.raises(tarfile.ReadError, match="unexpected end"):
        list(iter_members(io.BytesIO(cut)))
    damaged = bytearray(data)
    damaged[2048 + 10] ^= 0xFF  # in the name of the third header (folder, x.jpg and its 2 blocks before it)
    names = []
    with pytest.raises(tarfile.ReadError, match="bad checksum"):
        for name, _ in iter_members(io.BytesIO(bytes(damaged))):
            names.append(name)
    assert names == ["a/x.jpg"]  # what came before the damage is read
