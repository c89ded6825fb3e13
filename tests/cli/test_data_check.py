import re

import numpy as np

from PIL import Image

from causaldiffae.cli import main
from causaldiffae.data import circuit, pendulum


def make_folder(root, n: int, split: bool = False) -> np.ndarray:
    """``n`` 24x24 RGB images whose grey level is ``brightness``, caused by ``side``."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    labels = rng.uniform(0.1, 0.9, (n, 2))
    lines = ["file,side,brightness,comment" + (",split" if split else "")]
    for k, (side, bright) in enumerate(labels.tolist()):
        Image.new("RGB", (24, 24), (int(255 * bright),) * 3).save(root / "images" / f"{k:03d}.png")
        lines.append(f"images/{k:03d}.png,{side!r},{bright!r},c" + ("," + ("train", "val", "test")[k % 3] if split else ""))
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    (root / "graph.yaml").write_text("variables: [side, brightness]\nedges: [side -> brightness]\n")
    return labels


def test_check_user_folder(tmp_path, capsys):
    root = tmp_path / "user"
    labels = make_folder(root, n=30, split=True)
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{root}: folder dataset" in out
    assert "images: 30, 3 channel(s), sizes 24x24" in out
    assert "(unused: comment)" in out and "from the 'split' column" in out
    assert "graph: side -> brightness" in out
    for split in ("train", "val", "test"):
        assert f"{split}: 10 samples, images 3x24x24" in out
    train_side = labels[0::3, 0]
    assert re.search(rf"side\s+min {train_side.min():.4g}\s+max {train_side.max():.4g}", out)
    assert "SCM: none" in out
    assert main(["data", "check", str(root), "--resolution", "8", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "images 3x8x8" in printed.out and "non-square" not in printed.out and printed.err == ""
    Image.new("RGB", (20, 20)).save(root / "images" / "002.png")  # square, but of another size than the rest
    assert main(["data", "check", str(root), "--no-progress"]) == 0
    assert "note: the images are not all square and of one size: train with data.resolution=N" in capsys.readouterr().out
    assert main(["data", "check", str(root), "--resolution", "8", "--no-progress"]) == 0
    assert "data.resolution=N" not in capsys.readouterr().out
    Image.new("RGB", (30, 24)).save(root / "images" / "000.png")
    assert main(["data", "check", str(root), "--resolution", "8", "--no-progress"]) == 0
    assert "note: non-square images are stretched to a square when resized" in capsys.readouterr().out


def test_check_reports_bad_input_in_one_line(tmp_path, capsys):
    root = tmp_path / "user"
    make_folder(root, n=12)
    (root / "images" / "005.png").unlink()
    assert main(["data", "check", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "labels.csv, row 7: image" in err and "005.png does not exist" in err
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert main(["data", "check", str(root / "labels.csv")]) == 2
    assert f"{root / 'labels.csv'} is a file, not a dataset folder; pass the folder that holds it ({root})" in capsys.readouterr().err


def test_check_generated_datasets(tmp_path, capsys):
    pend = tmp_path / "pendulum"
    pendulum.generate(pend, workers=1, limit=12)
    assert main(["data", "check", str(pend)]) == 0
    out = capsys.readouterr().out
    assert "pendulum dataset" in out and "train: 10 samples, images 4x96x96" in out and "test: 2 samples" in out
    assert "SCM: known" in out

    circ = tmp_path / "circuit"
    circuit.generate(circ, n=20, resolution=32, workers=1)
    assert main(["data", "check", str(circ), "--resolution", "32"]) == 0
    out = capsys.readouterr().out
    assert "circuit dataset" in out and "val: 2 samples, images 3x32x32" in out and "SCM: known" in out
    with np.load(circ / "train.npz") as data:
        arm = data["original_latents"][:, 0, 3]
    assert re.search(rf"arm\s+min {arm.min():.4g}", out)
