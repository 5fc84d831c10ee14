"""Full MNIST, Fashion-MNIST and CIFAR-10 from a local folder, verified by SHA-256.

Files are read in their published formats only: IDX (LeCun et al., "The MNIST database",
http://yann.lecun.com/exdb/mnist/) gzipped, as distributed; and CIFAR-10's *binary* version
(Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html, "binary version" section) —
never its Python version, which is a pickle and can run code when loaded.

Checksums: the SHA-256 sums of the published archives, as recorded by several independent
projects (TensorFlow Datasets' url checksums, dataset loaders in Go, Julia, Ruby and Python).
The MNIST/Fashion-MNIST authors publish MD5 sums only; these SHA-256 sums are those of the
same files. `download_dataset` is an explicit command; nothing here touches the network at
run time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnncore.errors import CNNCoreError

__all__ = [
    "STANDARD_DATASETS",
    "StandardDataset",
    "download_dataset",
    "load_standard_dataset",
    "parse_idx",
    "parse_cifar_binary",
    "sha256_of",
]

_MNIST_CLASSES = [str(d) for d in range(10)]
_FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
_CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck"]  # fmt: skip
# The same classes in Korean, index for index (what a Korean page shows)
_FASHION_CLASSES_KO = ["티셔츠/상의", "바지", "풀오버", "드레스", "코트",
                       "샌들", "셔츠", "운동화", "가방", "앵클 부츠"]  # fmt: skip
_CIFAR_CLASSES_KO = ["비행기", "자동차", "새", "고양이", "사슴",
                     "개", "개구리", "말", "배", "트럭"]  # fmt: skip
_CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
_CIFAR_FOLDER = "cifar-10-batches-bin"
_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green, 1024 blue bytes
_CHUNK = 1 << 20
# The four gzipped IDX files of MNIST and Fashion-MNIST, in this order in the tables below.
_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _idx_sums(*sums: str) -> dict[str, str]:
    return dict(zip(_IDX_FILES, sums, strict=True))


@dataclass(frozen=True)
class StandardDataset:
    """A published dataset: its files with SHA-256 sums, where to fetch them, its classes."""

    name: str
    base_url: str
    files: dict[str, str]  # file name → SHA-256 of the file as published
    class_names: list[str]
    class_names_ko: list[str] | tuple[str, ...] = ()  # index for index; () where the same (digits)


STANDARD_DATASETS: dict[str, StandardDataset] = {
    "mnist": StandardDataset(
        "mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        _idx_sums(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
        _MNIST_CLASSES,
    ),
    "fashion_mnist": StandardDataset(
        "fashion_mnist",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        _idx_sums(
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
        _FASHION_CLASSES,
        _FASHION_CLASSES_KO,
    ),
    "cifar10": StandardDataset(
        "cifar10",
        "https://www.cs.toronto.edu/~kriz/",
        {_CIFAR_ARCHIVE: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"},
        _CIFAR_CLASSES,
        _CIFAR_CLASSES_KO,
    ),
}

# The members of the CIFAR-10 binary archive, for a folder someone already unpacked.
_CIFAR_MEMBERS = {
    "data_batch_1.bin": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
    "data_batch_2.bin": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
    "data_batch_3.bin": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
    "data_batch_4.bin": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
    "data_batch_5.bin": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
    "test_batch.bin": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
}  # fmt: skip


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _verified(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise CNNCoreError(f"{path.name} is missing from {path.parent}", "root")
    actual = sha256_of(path)
    if actual != expected:
        raise CNNCoreError(
            f"{path.name} has SHA-256 {actual[:16]}…, expected {expected[:16]}…: the file is "
            "damaged or not the published one; download it again",
            "root",
        )
    return path


def _spec(name: str) -> StandardDataset:
    if name not in STANDARD_DATASETS:
        choices = ", ".join(STANDARD_DATASETS)
        raise CNNCoreError(f"unknown dataset {name!r}; choose from {choices}", "name")
    return STANDARD_DATASETS[name]


def parse_idx(raw: bytes) -> np.ndarray:
    """An IDX array of unsigned bytes: magic 0x0000 08 <ndim>, then ndim big-endian sizes."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CNNCoreError("not an IDX file of unsigned bytes", "root")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise CNNCoreError("IDX file length does not match its header", "root")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def parse_cifar_binary(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Records of 3073 bytes (label, then 3×32×32 planes) → images N×3×32×32 and labels N."""
    if len(raw) % _CIFAR_RECORD:
        raise CNNCoreError("CIFAR-10 batch length is not a whole number of records", "root")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0]


def _load_idx_pair(root: Path, spec: StandardDataset, prefix: str) -> tuple[np.ndarray, ...]:
    images, labels = (
        parse_idx(gzip.decompress(_verified(root / name, spec.files[name]).read_bytes()))
        for name in (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
    )
    return images[:, None], labels


def _cifar_batches(root: Path, names: list[str]) -> list[bytes]:
    folder = root / _CIFAR_FOLDER
    if folder.is_dir():
        return [_verified(folder / n, _CIFAR_MEMBERS[n]).read_bytes() for n in names]
    archive = _verified(root / _CIFAR_ARCHIVE, STANDARD_DATASETS["cifar10"].files[_CIFAR_ARCHIVE])
    # Read the named members straight out of the verified archive: nothing is written to disk,
    # so no member path can escape the folder.
    with tarfile.open(archive, "r:gz") as tar:
        out = []
        for name in names:
            member = tar.extractfile(f"{_CIFAR_FOLDER}/{name}")
            if member is None:
                raise CNNCoreError(f"{name} is not in {_CIFAR_ARCHIVE}", "root")
            out.append(member.read())
        return out


def load_standard_dataset(
    name: str, root: Path, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images N×C×H×W float32 in [0, 1], labels N int64 and class names, from `root`.

    `split` is "train" (60 000 or 50 000 images) or "test" (10 000).
    """
    spec = _spec(name)
    if split not in ("train", "test"):
        raise CNNCoreError("split must be 'train' or 'test'", "split")
    root = Path(root)
    if name == "cifar10":
        names = [n for n in _CIFAR_MEMBERS if (n.startswith("data") == (split == "train"))]
        pairs = [parse_cifar_binary(raw) for raw in _cifar_batches(root, names)]
        images = np.concatenate([p[0] for p in pairs])
        labels = np.concatenate([p[1] for p in pairs])
    else:
        images, labels = _load_idx_pair(root, spec, "train" if split == "train" else "t10k")
    if len(images) != len(labels):
        raise CNNCoreError("image and label files disagree on the number of examples", "root")
    return (
        torch.from_numpy(images.astype(np.float32) / 255.0),
        torch.from_numpy(labels.astype(np.int64)),
        list(spec.class_names),
    )


def download_dataset(name: str, dest: Path, timeout: float = 60.0) -> list[Path]:
    """Fetch a standard dataset's files into `dest`, verify each against its published SHA-256,
    and write `SHA256SUMS` beside them. An explicit command only; never called at run time."""
    spec = _spec(name)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, expected in spec.files.items():
        target = dest / file_name
        if not (target.is_file() and sha256_of(target) == expected):
            partial = target.with_suffix(target.suffix + ".part")
            url = spec.base_url + file_name
            with urllib.request.urlopen(url, timeout=timeout) as reply, partial.open("wb") as out:
                while block := reply.read(_CHUNK):
                    out.write(block)
            _verified(partial, expected)
            partial.replace(target)
        written.append(target)
    sums = io.StringIO()
    for path in written:
        sums.write(f"{sha256_of(path)}  {path.name}\n")
    (dest / "SHA256SUMS").write_text(sums.getvalue())
    return written
