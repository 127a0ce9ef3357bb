"""The usual CIFAR training script's way, as a yardstick for `resexp train`'s whole-process time.

What the common reference trainers do: a Dataset that decodes one image at a time into a PIL image
and augments it (4-pixel pad, random 32x32 crop, flip), DataLoader workers that collate batches,
eager fp32 in the default memory layout; one epoch, then the test split. The net is resexp's own
ResNet so that only the data path and step differ. Torchvision is not needed: its CIFAR10 dataset and
transforms do per image what __getitem__ below does.

    python benchmarks/reference_way.py --make-files DIR     # CIFAR-format files: 10k train, 10k test
    time python benchmarks/reference_way.py DIR             # one epoch + test, the reference's way
    time resexp train dataset=cifar10 dataset.root=DIR trainer.epochs=1 dataset.augment.flip=true \
        dataset.augment.crop_padding=4                      # the same with resexp
"""
import argparse
import pickle
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

from resexp.models import build_model

FOLDER = "cifar-10-batches-py"


def make_files(root: Path, train: int = 10_000, test: int = 10_000) -> None:
    """The official python-version layout with random pixels: 5 training batches and a test batch."""
    rng = np.random.default_rng(0)
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(f"data_batch_{i}", train // 5) for i in range(1, 6)] + [("test_batch", test)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, protocol=2))


class CifarImages(Dataset):
    MEAN, STD = np.array([0.491, 0.482, 0.447], np.float32), np.array([0.247, 0.243, 0.262], np.float32)

    def __init__(self, root: Path, train: bool):
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        batches = [pickle.loads((root / FOLDER / n).read_bytes(), encoding="bytes") for n in names]
        self.images = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self.labels = [label for b in batches for label in b[b"labels"]]
        self.train = train

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = Image.fromarray(self.images[i])
        if self.train:
            image = ImageOps.expand(image, border=4)
            x, y = random.randint(0, 8), random.randint(0, 8)
            image = image.crop((x, y, x + 32, y + 32))
            if random.random() < 0.5:
                image = ImageOps.mirror(image)
        pixels = (np.asarray(image, np.float32) / 255 - self.MEAN) / self.STD
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy()), self.labels[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--make-files", action="store_true", help="write CIFAR-format files into ROOT and stop")
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()
    if opts.make_files:
        make_files(opts.root)
        return
    torch.manual_seed(0)
    model = build_model("resnet", 20)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    train = DataLoader(CifarImages(opts.root, True), batch_size=128, shuffle=True, num_workers=opts.workers)
    test = DataLoader(CifarImages(opts.root, False), batch_size=1000, num_workers=opts.workers)
    model.train()
    for x, y in train:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        wrong = sum((model(x).argmax(1) != y).sum().item() for x, y in test)
    print(f"test error {100 * wrong / len(test.dataset):.2f}%")


if __name__ == "__main__":
    main()
