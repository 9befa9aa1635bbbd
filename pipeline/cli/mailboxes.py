"""Reading mails from disk for `bounceguard parse --format dsn`: one .eml file, an mbox, a
Maildir (cur/ and new/), or a directory of .eml files. Not a command of its own."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path


def read_mails(path: str) -> Iterator[tuple[str, bytes]]:
    """Yield (label, raw bytes) for every mail at `path`, in a stable order: an mbox's in file
    order ("message N"), a Maildir's or a directory's by file name (the name). A file that
    starts with "From " is an mbox; any other file is one mail. Raises OSError when `path`
    cannot be read."""
    target = Path(path)
    if target.is_dir():
        yield from _directory(target)
        return
    with target.open("rb") as head:
        is_mbox = head.read(5) == b"From "
    if not is_mbox:
        yield "message 1", target.read_bytes()
        return
    box = mailbox.mbox(str(target), create=False)
    try:
        for number, key in enumerate(box.iterkeys(), 1):
            yield f"message {number}", box.get_bytes(key)
    finally:
        box.close()


def _directory(target: Path) -> Iterator[tuple[str, bytes]]:
    """A Maildir (new/ then cur/, tmp/ never: those are mails still being written) or a plain
    directory of mails, each folder's files by name."""
    if (target / "cur").is_dir() or (target / "new").is_dir():
        folders = [target / "new", target / "cur"]
    else:
        folders = [target]
    for folder in folders:
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                yield file.name, file.read_bytes()
