"""Fetch an archive, check its published MD5, extract it. Any failure is one line naming the file."""
import hashlib
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import UserError
from ..console import console

CHUNK = 1 << 20  # bytes read per network call


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, md5: str, archive: Path, hint: str) -> None:
    """Save `url` as `archive` (via a .part file, so a broken transfer never looks complete)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    console.print(f"downloading {url} -> {archive}", highlight=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise UserError(f"could not download {url} ({reason}); {hint}") from None
    actual = md5sum(part)
    if actual != md5:
        part.unlink()
        raise UserError(f"{url} has MD5 {actual}, expected {md5}: the download is incomplete or corrupt; "
                        f"try again, or {hint}")
    part.replace(archive)


def extract(archive: Path, root: Path) -> None:
    """Unpack a .tar.gz into root; a truncated or corrupt archive is an error naming it."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):  # refuses absolute paths and links out of root
                tar.extractall(root, filter="data")
            else:
                tar.extractall(root)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UserError(f"{archive} is truncated or corrupt ({type(e).__name__}: {e}); delete it and "
                        "download it again") from None


def fetch(url: str, md5: str, root: Path, hint: str) -> None:
    """Download (unless an archive with the right MD5 is already in root) and extract into root."""
    archive = Path(root) / url.rsplit("/", 1)[-1]
    if not (archive.exists() and md5sum(archive) == md5):
        download(url, md5, archive, hint)
    extract(archive, Path(root))
