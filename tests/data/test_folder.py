import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causaldiffae.data import DataError, circuit, detect_format, folder, load_dataset, pendulum
from causaldiffae.data.idx import write_idx
from causaldiffae.graph import CausalGraph, GraphError


def make_folder(root: Path, n: int = 36, *, mode: str = "RGB", size: int = 24, split: bool = False) -> np.ndarray:
    """A user folder: squares whose side is ``size`` and brightness is ``brightness`` (size -> brightness)."""
    rng = np.random.default_rng(7)
    (root / "images").mkdir(parents=True)
    lines = ["file,side,brightness,comment" + (",split" if split else "")]
    labels = []
    for k in range(n):
        side = float(rng.uniform(0.2, 0.9))
        bright = float(np.clip(0.2 + 0.6 * side + rng.normal(0, 0.05), 0, 1))
        canvas = np.zeros((size, size), dtype=np.uint8)
        r = max(1, int(side * size / 2))
        canvas[size // 2 - r : size // 2 + r, size // 2 - r : size // 2 + r] = int(255 * bright)
        Image.fromarray(canvas).convert(mode).save(root / "images" / f"{k:03d}.png")
        tail = "," + ("train", "val", "test")[k % 3] if split else ""
        lines.append(f"images/{k:03d}.png,{side!r},{bright!r},note {k}{tail}")
        labels.append((side, bright))
    (root / folder.LABELS).write_text("\n".join(lines) + "\n")
    (root / folder.GRAPH_FILE).write_text("variables: [side, brightness]\nedges:\n  - side -> brightness\n")
    return np.array(labels)


@pytest.fixture
def user(tmp_path):
    root = tmp_path / "user"
    return root, make_folder(root)


def test_load_default_split(user):
    root, labels = user
    assert folder.looks_like(root) and detect_format(root) == "folder"
    train, test = load_dataset(root, "train"), load_dataset(root, "test")
    assert (len(train), len(test)) == (32, 4)  # round(10% of 36) to test
    assert train.variables == ("side", "brightness") and train.scm is None
    assert train.image_shape == (3, 24, 24)
    index = folder.scan(root)
    np.testing.assert_allclose(np.concatenate([train.labels, test.labels]), labels[np.r_[index.rows("train"), index.rows("test")]])
    np.testing.assert_allclose(test.label_mean, train.labels.mean(axis=0))
    k = int(index.rows("test")[0])
    assert np.array_equal(test.images[0], np.asarray(Image.open(root / index.files[k])))
    with pytest.raises(DataError, match="no rows in split 'val'"):
        load_dataset(root, "val")


def test_default_split_ignores_row_order(user, tmp_path):
    root, _ = user
    before = {folder.scan(root).files[k] for k in folder.scan(root).rows("test")}
    lines = (root / folder.LABELS).read_text().splitlines()
    (root / folder.LABELS).write_text("\n".join([lines[0]] + lines[1:][::-1]) + "\n")
    index = folder.scan(root)
    assert {index.files[k] for k in index.rows("test")} == before


def test_split_column_gray_images_and_resizing(tmp_path, capsys):
    root = tmp_path / "gray"
    make_folder(root, n=12, mode="L", split=True)
    val = load_dataset(root, "val", resolution=16, progress=False)
    assert len(val) == 4 and val.image_shape == (1, 16, 16)
    assert capsys.readouterr().err == ""  # no bar
    load_dataset(root, "val", resolution=16)
    assert "gray val: 100%" in capsys.readouterr().err
    Image.new("L", (40, 30)).save(root / "images" / "000.png")  # one image of another size
    with pytest.raises(DataError, match="give a resolution"):
        load_dataset(root, "train")
    assert load_dataset(root, "train", resolution=20).image_shape == (1, 20, 20)
    Image.new("L", (24, 24)).save(root / "images" / "000.png")
    Image.new("L", (20, 20)).save(root / "images" / "002.png")  # another size, in the test split only
    with pytest.raises(DataError, match=r"not all square and of one size \(20x20, 24x24\); give a resolution"):
        load_dataset(root, "train")  # refused now, not after a training whose run no other split could load


def test_looks_like_does_not_claim_other_formats(tmp_path):
    pend = tmp_path / "pendulum"
    pendulum.generate(pend, workers=1, limit=2)
    circ = tmp_path / "circuit"
    circuit.generate(circ, n=2, resolution=16, workers=1)
    mnist = tmp_path / "morpho"
    mnist.mkdir()
    write_idx(mnist / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), dtype=np.uint8))
    write_idx(mnist / "train-labels-idx1-ubyte.gz", np.zeros(2, dtype=np.uint8))
    (mnist / "train-morpho.csv").write_text("index,thickness,intensity\n0,2.0,200.0\n1,3.0,220.0\n")
    for path, fmt in ((pend, "pendulum"), (circ, "circuit"), (mnist, "morphomnist")):
        assert not folder.looks_like(path)
        assert detect_format(path) == fmt


def rewrite(root: Path, line: int, text: str) -> None:
    lines = (root / folder.LABELS).read_text().splitlines()
    lines[line - 1] = text
    (root / folder.LABELS).write_text("\n".join(lines) + "\n")


def test_bad_labels(user):
    root, _ = user
    good = (root / folder.LABELS).read_text()
    cases = [
        (5, "images/003.png,big,0.5,x", r"labels.csv, row 5, column 'side': non-numeric value 'big'"),
        (6, "images/004.png,nan,0.5,x", r"row 6, column 'side': 'nan' is not a finite number"),
        (6, "images/004.png,0.5, ,x", r"labels.csv, row 6, column 'brightness': missing value$"),
        (7, "images/nope.png,0.5,0.5,x", r"labels.csv, row 7: image .*nope.png does not exist"),
        (7, "images\\005.png,0.5,0.5,x", r"row 7: image .*images\\005.png does not exist \(paths are separated by '/': images/005.png does\)"),
        (8, "images/000.png,0.5,0.5,x", r"row 8: images/000.png is listed twice \(first at row 2\)"),
        (9, "images/007.png,0.5,0.5", r"row 9: 3 fields, the header has 4"),
        (1, "name,side,brightness,comment", r"labels.csv: no 'file' column \(columns: name, side, brightness, comment\)$"),
        (1, "file;side;brightness;comment", r"no 'file' column \(columns: file;side;brightness;comment\); it is read as comma-separated, "
                                            r"and its header is separated by semicolons$"),
        (1, "file\tside\tbrightness\tcomment", r"and its header is separated by tabs$"),
        (1, "file,side,luminance,comment", r"graph.yaml: variable 'brightness' is not a column of labels.csv \(columns: file, "),
        (1, "file,side,brightnes,comment", r"variable 'brightness' is not a column of labels.csv \(did you mean 'brightnes'\? columns: "),
        (1, "file,side,brightness,side", r"labels.csv: column 'side' appears more than once in the header"),
        (3, "/tmp/001.png,0.5,0.5,x", r"row 3: /tmp/001.png must be a path inside the folder, relative to it"),
        (3, "images/../images/001.png,0.5,0.5,x", r"row 3: images/../images/001.png must be a path inside the folder"),
    ]
    for line, text, message in cases:
        (root / folder.LABELS).write_text(good)
        rewrite(root, line, text)
        with pytest.raises(DataError, match=message):
            folder.load(root, "train")
    (root / folder.LABELS).write_text(good.replace("\n", ",train\n").replace("comment,train", "comment,split", 1))
    rewrite(root, 4, "images/002.png,0.5,0.5,x,holdout")
    with pytest.raises(DataError, match=r"row 4, column 'split': 'holdout' is not one of train, val, test"):
        folder.load(root, "train")
    header = good.splitlines()[0]
    (root / "notes.txt").write_text("not an image")
    for text, message in [
        ("", r"labels.csv: empty file$"),
        (header + "\n", r"labels.csv: no rows$"),
        # the rest of the folder's images have no row: counted after the first problem
        (header + "\n,0.5,0.5,x\n", r"labels.csv, row 2: empty 'file' \(and \d+ more problems: causaldiffae data check .* lists them\)$"),
        (header + "\nnotes.txt,0.5,0.5,x\n", r"labels.csv, row 2: image .*notes.txt is not a PNG or JPEG file \(and \d+ more"),
        (header + ",split\n" + "".join(f"{row},test\n" for row in good.splitlines()[1:]), r"labels.csv: no rows in split 'train' \(needed for label statistics\)$"),
    ]:
        (root / folder.LABELS).write_text(text)
        with pytest.raises(DataError, match=message):
            folder.load(root, "train")


def test_bad_images_and_graph(user):
    root, _ = user
    shutil.copy(root / "images" / "000.png", root / "images" / "extra.png")
    with pytest.raises(DataError, match=r"extra.png: image has no row in labels.csv"):
        folder.load(root, "train")
    (root / "images" / "extra.png").unlink()

    Image.new("L", (24, 24)).save(root / "images" / "010.png")
    with pytest.raises(DataError, match=r"mixed channel counts: images/000.png has 3, images/010.png has 1"):
        folder.load(root, "train")
    (root / "images" / "010.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"010.png: unreadable image"):
        folder.load(root, "train")
    data = (root / "images" / "011.png").read_bytes()
    Image.new("RGB", (24, 24)).save(root / "images" / "010.png")
    (root / "images" / "011.png").write_bytes(data[: len(data) // 2])  # header fine, pixels truncated
    with pytest.raises(DataError, match=r"011.png: unreadable image"):
        for split in ("train", "test"):
            folder.load(root, split)
    (root / "images" / "011.png").write_bytes(data)
    (root / "images" / "012.png").write_bytes(_png_with_a_broken_chunk())  # Pillow raises SyntaxError, not OSError
    with pytest.raises(DataError, match=r"012.png: unreadable image \(broken PNG file"):
        folder.load(root, "train")
    Image.new("RGB", (24, 24)).save(root / "images" / "012.png")

    (root / folder.GRAPH_FILE).write_text("variables: [side, brightness, colour]\nedges: [side -> colour]\n")
    with pytest.raises(DataError, match=r"graph.yaml: variable 'colour' is not a column of labels.csv"):
        folder.load(root, "train")
    (root / folder.GRAPH_FILE).write_text("variables: [side, brightness]\nedges: [side -> brightness, brightness -> side]\n")
    with pytest.raises(GraphError, match="cycle"):
        folder.load(root, "train")
    (root / folder.GRAPH_FILE).unlink()
    with pytest.raises(DataError, match="has labels.csv but no graph.yaml; a user dataset folder needs both"):
        load_dataset(root, "train")
    with pytest.raises(DataError, match="no graph.yaml"):
        folder.load(root, "train")


def _png_with_a_broken_chunk() -> bytes:
    """An RGB 24x24 PNG whose pixel data is split by a chunk with an invalid type and length."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(b"".join(b"\x00" + bytes(72) for _ in range(24)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 24, 24, 8, 2, 0, 0, 0)) + chunk(b"IDAT", pixels[:10])
            + b"\x00\x00\x00\x05\x01\x02\x03\x04xxxxx\x00\x00\x00\x00" + chunk(b"IDAT", pixels[10:]) + chunk(b"IEND", b""))


def test_data_check_lists_every_problem_of_a_folder_and_loading_names_the_first_and_counts_the_rest(user, capsys):
    from causaldiffae.cli import main

    root, _ = user
    rewrite(root, 3, "images/001.png,big,nan,x")  # two bad cells: two problems, the row skipped
    rewrite(root, 5, "images/nope.png,0.5,0.5,x")  # 003.png is left without a row
    rewrite(root, 8, "images/000.png,0.5,0.5,x")  # and 006.png
    (root / "images" / "010.png").write_bytes(b"this is not a png")
    Image.new("L", (24, 24)).save(root / "images" / "020.png")
    table = root / folder.LABELS
    expected = [
        f"{table}, row 3, column 'side': non-numeric value 'big'",
        f"{table}, row 3, column 'brightness': 'nan' is not a finite number",
        f"{table}, row 8: images/000.png is listed twice (first at row 2)",
        f"{table}, row 5: image {root / 'images/nope.png'} does not exist",
        f"{root / 'images/003.png'}: image has no row in labels.csv",
        f"{root / 'images/006.png'}: image has no row in labels.csv",
        f"{root / 'images/010.png'}: unreadable image (cannot identify image file '{root / 'images/010.png'}')",
        f"{root}: images have mixed channel counts: images/000.png has 3, images/020.png has 1; convert them to one mode",
    ]
    assert main(["data", "check", str(root), "--no-progress"]) == 2
    printed = capsys.readouterr()
    assert printed.err.splitlines() == [f"causaldiffae data: error: {line}" for line in expected] and printed.out == ""
    with pytest.raises(folder.FolderProblems) as raised:
        folder.load(root, "train")
    assert str(raised.value) == f"{expected[0]} (and 7 more problems: causaldiffae data check {root} lists them)"


def test_data_check_lists_every_image_whose_pixels_are_cut_short(user, capsys):
    from causaldiffae.cli import main

    root, _ = user
    cut = ["images/011.png", "images/015.png", "images/027.png"]
    for name in cut:  # header fine, pixels truncated: found only by decoding
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])
    assert main(["data", "check", str(root), "--no-progress"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and len(printed.err.splitlines()) == 3
    assert all(f"causaldiffae data: error: {root / name}: unreadable image" in printed.err for name in cut)


def test_a_folder_s_problems_read_as_one_line_naming_the_first():
    assert str(folder.FolderProblems(Path("d"), ["a"])) == "a"
    assert str(folder.FolderProblems(Path("my data"), ["a", "b"])) == "a (and 1 more problem: causaldiffae data check 'my data' lists it)"
    assert str(folder.FolderProblems(Path("d"), ["a", "b", "c"])) == "a (and 2 more problems: causaldiffae data check d lists them)"


def test_data_check_lists_thirty_problems_and_counts_the_rest(user, capsys, monkeypatch):
    from causaldiffae.cli import main

    root, _ = user
    lines = (root / folder.LABELS).read_text().splitlines()
    (root / folder.LABELS).write_text("\n".join([lines[0]] + [line.replace(",", ",x", 1) for line in lines[1:]]) + "\n")
    assert main(["data", "check", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 31 and err[-1] == "causaldiffae data: error: and 6 more problems"  # 36 bad rows; their images are listed
    assert err[0].endswith("row 2, column 'side': non-numeric value 'x" + lines[1].split(",")[1] + "'")


def test_a_cell_too_large_for_csv_is_one_line(user):
    root, _ = user
    rewrite(root, 3, "images/001.png,0.5,0.5," + "x" * 200_000)
    with pytest.raises(DataError, match=r"labels.csv: unreadable \(field larger than field limit"):
        folder.load(root, "train")


def test_a_user_folder_holding_an_npz_is_still_a_user_folder(user):
    root, _ = user
    np.savez(root / "test.npz", x=np.zeros(3))
    assert detect_format(root) == "folder" and len(load_dataset(root, "train")) > 0


def test_paths_are_normalised_and_symlinked_folders_followed(tmp_path):
    real = tmp_path / "real"
    labels = make_folder(real, n=12)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "images").symlink_to(real / "images", target_is_directory=True)
    (real / "images" / "loop").symlink_to(real / "images", target_is_directory=True)  # a cycle is walked once
    rows = (real / folder.LABELS).read_text().replace("\nimages/", "\n./images/")
    (linked / folder.LABELS).write_text(rows)
    shutil.copy(real / folder.GRAPH_FILE, linked / folder.GRAPH_FILE)
    ours, theirs = folder.load(linked, "train"), folder.load(real, "train")
    assert np.array_equal(ours.images, theirs.images) and np.array_equal(ours.labels, theirs.labels)
    assert len(ours) + len(folder.load(linked, "test")) == len(labels)
    Image.new("RGB", (24, 24)).save(tmp_path / "stray.png")  # beside the dataset, not in it
    (real / "images" / "up").symlink_to(tmp_path, target_is_directory=True)  # an ancestor: not followed (nor would `/` be)
    assert np.array_equal(folder.load(real, "train").images, theirs.images)  # followed, it would list images/up/stray.png


def test_huge_images_need_a_resolution_and_a_decompression_bomb_is_one_line(tmp_path, monkeypatch):
    root = tmp_path / "big"
    make_folder(root, n=6, mode="L", size=1100)
    with pytest.raises(DataError, match=r"images of 1100x1100 pixels, larger than the 1024 this library trains at; give a resolution"):
        folder.load(root, "train")
    assert folder.load(root, "train", resolution=16).images.shape[1:] == (16, 16, 1)  # resized per image: fine
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1100^2 is then past PIL's decompression-bomb limit
    with pytest.raises(DataError, match=r"000.png: unreadable image \(Image size"):
        folder.load(root, "train", resolution=16)


def test_images_exactly_at_the_maximum_resolution_load_without_one(tmp_path):
    root = tmp_path / "max"
    make_folder(root, n=4, mode="L", size=1024)
    train = folder.load(root, "train", progress=False)
    assert train.image_shape == (1, 1024, 1024) and len(train) == 3


def test_data_check_notes_images_too_large_to_load_without_a_resolution(tmp_path, capsys):
    from causaldiffae.cli import main

    root = tmp_path / "big"
    make_folder(root, n=6, mode="L", size=1100)
    assert main(["data", "check", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "not decoded (larger than 1024 px)" in out and "note: images larger than 1024 px load only resized" in out


def test_exif_orientation_is_applied_as_viewers_show_it(tmp_path):
    """Phone photos are stored sideways with an EXIF tag saying how to turn them; users label what they see."""
    root = tmp_path / "photos"
    make_folder(root, n=4, mode="L")

    def save_sideways(width: int, height: int) -> None:
        for file in sorted((root / "images").iterdir()):
            stored = np.zeros((height, width), np.uint8)
            stored[0, 0] = 255
            exif = Image.Exif()
            exif[folder.EXIF_ORIENTATION] = 6  # shown turned a quarter clockwise
            Image.fromarray(stored).save(file, exif=exif)

    save_sideways(24, 16)
    with pytest.raises(DataError, match=r"not all square and of one size \(16x24\)"):  # the size as shown
        folder.load(root, "train", progress=False)
    save_sideways(24, 24)
    from PIL import PngImagePlugin

    with pytest.MonkeyPatch.context() as patch:  # the scan reads the orientation from the header, decoding no pixel
        patch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: pytest.fail("a pixel was decoded"))
        assert folder.scan(root).sizes == ((24, 24),) * 4
    train = folder.load(root, "train", progress=False)
    assert np.argwhere(train.images[0, ..., 0] == 255).tolist() == [[0, 23]]  # the stored top-left, turned to the top-right


@pytest.mark.parametrize("alias", ["aaa", "zzz"])  # before and after "images" in any listing
def test_a_linked_alias_of_the_image_folder_is_skipped_whatever_its_name(tmp_path, alias):
    root = tmp_path / "user"
    make_folder(root, n=6)
    (root / alias).symlink_to(root / "images", target_is_directory=True)
    assert len(folder.load(root, "train", progress=False)) + len(folder.load(root, "test", progress=False)) == 6
    (root / folder.LABELS).write_text((root / folder.LABELS).read_text().replace("images/000.png", f"{alias}/000.png"))
    with pytest.raises(DataError, match=f"{alias}/000.png lies in a linked folder that is not walked"):
        folder.load(root, "train", progress=False)
    (root / "images" / ".hidden.png").write_bytes((root / "images" / "001.png").read_bytes())
    (root / folder.LABELS).write_text((root / folder.LABELS).read_text().replace(f"{alias}/000.png", "images/.hidden.png"))
    with pytest.raises(DataError, match=r"images/.hidden.png is hidden \(a name starting with '.'\)"):
        folder.load(root, "train", progress=False)


def test_an_alias_in_an_earlier_branch_does_not_hide_the_real_folder(tmp_path):
    root = tmp_path / "user"
    make_folder(root, n=6)
    (root / "z").mkdir()
    (root / "images").rename(root / "z" / "real")
    (root / folder.LABELS).write_text((root / folder.LABELS).read_text().replace("images/", "z/real/"))
    (root / "a").mkdir()
    (root / "a" / "alias").symlink_to(root / "z" / "real", target_is_directory=True)  # walked before z/ in any order
    assert len(folder.load(root, "train", progress=False)) + len(folder.load(root, "test", progress=False)) == 6


def test_sixteen_bit_grey_keeps_its_top_byte_and_a_palette_with_transparency_is_rgba(tmp_path):
    levels = np.arange(36, dtype=np.uint16).reshape(6, 6) * 7
    Image.fromarray(levels * 257).save(tmp_path / "grey16.png")  # a 16-bit PNG: each level v stored as v * 257
    with Image.open(tmp_path / "grey16.png") as written:
        assert written.mode.startswith("I")
    pixels, was = folder.read_image(tmp_path / "grey16.png", channels=1, resolution=6)
    assert was == "6x6 I;16" and np.array_equal(pixels[..., 0], levels)
    palette = Image.new("P", (6, 6), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(tmp_path / "palette.png", transparency=0)
    pixels, was = folder.read_image(tmp_path / "palette.png", channels=4, resolution=6)
    assert was == "6x6 P" and pixels.shape == (6, 6, 4) and (pixels[0, 0] == [255, 0, 0, 255]).all()
    root = tmp_path / "user"
    make_folder(root, n=6)
    for png in (root / "images").iterdir():
        Image.open(png).convert("P").save(png, transparency=0)
    assert folder.load(root, "train", progress=False).images.shape[-1] == 4  # a folder of them loads as RGBA


def test_read_image_reads_one_file_as_the_folder_loader_does(tmp_path):
    """``counterfactual --images`` relies on it: the same pixels as the dataset, and a word when it had to convert."""
    root = tmp_path / "f"
    make_folder(root, n=6, mode="L", size=24)
    train = folder.load(root, "train", resolution=16, progress=False)
    index = folder.scan(root)
    first = root / index.files[index.rows("train")[0]]
    image, was = folder.read_image(first, channels=1, resolution=16)
    assert image.shape == (16, 16, 1) and np.array_equal(image, train.images[0]) and was == "24x24 L"
    assert folder.read_image(first, channels=1, resolution=24)[1] is None  # already the shape asked for
    rgb, was = folder.read_image(first, channels=3, resolution=24)
    assert rgb.shape == (24, 24, 3) and was == "24x24 L" and np.array_equal(rgb[..., 0], rgb[..., 2])
    sideways = tmp_path / "sideways.png"
    exif = Image.Exif()
    exif[folder.EXIF_ORIENTATION] = 6
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(sideways, exif=exif)
    assert folder.read_image(sideways, 1, 16)[1] == "16x24 L"  # the size as shown
    with pytest.raises(DataError, match="f: a folder, not an image file; give its images"):
        folder.read_image(root, 1, 16)
    with pytest.raises(DataError, match="gone.png: image file not found"):
        folder.read_image(tmp_path / "gone.png", 1, 16)
    (tmp_path / "text.png").write_text("no image")
    with pytest.raises(DataError, match="text.png: unreadable image"):
        folder.read_image(tmp_path / "text.png", 1, 16)


def test_read_image_inverts_then_frames_at_the_files_own_resolution(tmp_path):
    """A dark digit drawn small in a corner of a large white page comes out white on black, spanning the
    asked fraction, centred; framed at 224 px and then resized, its edges are as sharp as a digit drawn
    at 28 px in the first place (the same pixels as that digit, to within the resize's rounding)."""
    from causaldiffae.data.framing import Framing, centroid_offset, extent

    page = np.full((224, 224), 255, np.uint8)
    page[16:56, 152:168] = 0  # a dark bar, 40 by 16 px, top right
    Image.fromarray(page).save(tmp_path / "page.png")
    image, was = folder.read_image(tmp_path / "page.png", 1, 28, invert=True, frame=Framing(20 / 28))
    assert was == "224x224 L" and image.shape == (28, 28, 1)
    assert extent(image[None])[0] == 20 / 28 and centroid_offset(image[None])[0] * 28 <= 0.75
    assert image[:4].max() == 0 and image[:, :4].max() == 0  # the page's white is black, and the margin clear
    drawn = np.zeros((28, 28, 1), np.uint8)
    drawn[4:24, 10:18] = 255  # the bar drawn at 28 px: 20 by 8, centred
    assert np.abs(image.astype(int) - drawn).max() <= 1
    plain, _ = folder.read_image(tmp_path / "page.png", 1, 28, invert=True)
    assert extent(plain[None])[0] == 5 / 28  # unframed: 40 of 224 px is 5 of 28


def test_read_image_names_a_background_its_framing_levelled(tmp_path):
    """A photographed page (dark ink on grey paper), inverted, is grey where the run's pages are black; framed
    with the run's background span it comes out on black, and what it was says so, even at the run's size."""
    from causaldiffae.data.framing import Framing

    page = np.full((28, 28), 200, np.uint8)
    page[4:24, 10:18] = 40
    Image.fromarray(page).save(tmp_path / "photo.png")
    image, was = folder.read_image(tmp_path / "photo.png", 1, 28, invert=True, frame=Framing(20 / 28, None, (0.0, 0.02)))
    assert was == "28x28 L, its background 0.22 bright, levelled to the run's"
    assert image[0, 0, 0] == 0 and image.max() == 215
    assert folder.read_image(tmp_path / "photo.png", 1, 28, invert=True, frame=Framing(20 / 28))[1] is None


def test_read_image_lays_a_transparent_drawing_on_a_page_it_stands_out_from(tmp_path):
    """A drawing app's export: dark strokes on transparency read as dark on white (converted without alpha
    they would be black on black), light strokes as light on black; an opaque RGBA file is read as before."""
    strokes = np.zeros((32, 32, 4), np.uint8)
    strokes[8:24, 14:18, 3] = 255  # opaque black strokes; everything else transparent black
    Image.fromarray(strokes).save(tmp_path / "dark.png")
    image, was = folder.read_image(tmp_path / "dark.png", 1, 16)
    assert was == "32x32 RGBA, laid on a white page where transparent"
    assert image[0, 0, 0] == 255 and image[8, 8, 0] == 0  # the page white, the strokes black
    assert folder.read_image(tmp_path / "dark.png", 1, 16, invert=True)[0][8, 8, 0] == 255
    strokes[8:24, 14:18, :3] = 230  # light strokes
    Image.fromarray(strokes).save(tmp_path / "light.png")
    image, was = folder.read_image(tmp_path / "light.png", 3, 16)
    assert was.endswith("laid on a black page where transparent") and image[0, 0].max() == 0 and image[8, 8].min() == 230
    strokes[..., 3] = 255
    Image.fromarray(strokes).save(tmp_path / "opaque.png")
    assert folder.read_image(tmp_path / "opaque.png", 1, 16)[1] == "32x32 RGBA"
    assert folder.read_image(tmp_path / "dark.png", 4, 32)[1] is None  # a run with alpha keeps it


def test_a_split_of_one_image_reads_as_one_sample():
    graph = CausalGraph.parse("a -> b")
    one = folder._split_report("test", np.array([[0.5, 0.25]]), "3x16x16", graph)
    two = folder._split_report("train", np.array([[0.5, 0.25], [0.1, 0.2]]), "3x16x16", graph)
    assert one[0] == "  test: 1 sample, images 3x16x16 (CxHxW)"
    assert two[0] == "  train: 2 samples, images 3x16x16 (CxHxW)"
