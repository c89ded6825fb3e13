import csv
import json
import math
import shutil

import numpy as np
import pytest

from causaldiffae.data import DataError, detect_format, load_dataset
from causaldiffae.data import pendulum

PX = 96 / 20  # pixels per scene unit horizontally
# Agg snaps the horizontal shadow line's ends to the pixel grid (<= 0.5 px each) and
# anti-aliasing coverage is summed to 1/255 precision: visible length within 1 px, centre within 0.5 px.
LEN_TOL, CENTRE_TOL = 1.05, 0.55


def spec_shadow(i: int, j: int) -> tuple[float, float]:
    """SPEC section 3 written out independently with math.tan."""
    theta, phi = i * math.pi / 200, j * math.pi / 200

    def proj(x, y):
        return x + (-0.5 - y) / math.tan(phi)

    p1, p2 = proj(10, 10.5), proj(10 + 9.5 * math.sin(theta), 10.5 - 9.5 * math.cos(theta))
    return max(3, abs(p1 - p2)), (p1 + p2) / 2


def measure_shadow(image: np.ndarray) -> tuple[float, float]:
    """Visible length and centre (pixels) of the black run on the ground rows, from coverage."""
    darkness = 1 - image[88:, :, :3].astype(np.float64).mean(axis=-1) / 255
    coverage = darkness.max(axis=0)
    length = coverage.sum()
    return length, float((coverage * (np.arange(96) + 0.5)).sum() / length)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("pend") / "pendulum"
    pendulum.generate(out, workers=2, limit=40)
    return out


def split_counts(limit: int | None = None) -> dict[str, int]:
    """Images per split of the grid, without rendering anything."""
    splits = [split for *_, split in pendulum.grid(limit)]
    return {name: splits.count(name) for name in ("train", "test")}


def test_grid_counts_and_order():
    cells = pendulum.grid()
    assert len(cells) == 84 * 87 == 7308
    assert split_counts() == {"train": 5482, "test": 1826}
    assert cells[0][1:] == (-40, 60, "train") and cells[4][1:] == (-40, 64, "test")
    assert cells[-1][1:3] == (43, 147)
    assert all(j != 100 for _, _, j, _ in cells)
    assert split_counts(40) == {"train": 31, "test": 9}


def test_file_names_follow_the_spec_for_the_whole_grid():
    for _, i, j, _ in pendulum.grid():
        shade, mid = spec_shadow(i, j)
        assert pendulum.file_name(i, j) == f"a_{i}_{j}_{int(shade)}_{int(mid)}.png"
    # int() truncates towards zero for negative midpoints, as the original names do
    assert pendulum.file_name(-40, 60).startswith("a_-40_60_3_")


def test_rendered_shadow_matches_labels():
    rng = np.random.default_rng(0)
    cells = pendulum.grid()
    checked_unclipped = 0
    for k in rng.choice(len(cells), size=40, replace=False):
        _, i, j, _ = cells[k]
        image = pendulum.render(i, j)
        assert image.shape == (96, 96, 4) and image.dtype == np.uint8 and (image[..., 3] == 255).all()
        shade, mid = (float(v) for v in pendulum.shadow(i, j))
        lo, hi = (mid - shade / 2) * PX, (mid + shade / 2) * PX
        length, centre = measure_shadow(image)
        vis_lo, vis_hi = max(lo, 0), min(hi, 96)
        assert abs(length - (vis_hi - vis_lo)) <= LEN_TOL, (i, j)
        assert abs(centre - (vis_lo + vis_hi) / 2) <= CENTRE_TOL, (i, j)
        if lo >= 0 and hi <= 96:  # fully visible: read the labels back in scene units
            checked_unclipped += 1
            assert abs(length / PX - shade) <= LEN_TOL / PX
            assert abs(centre / PX - mid) <= CENTRE_TOL / PX
    assert checked_unclipped >= 20


def test_sun_and_bob_positions():
    image = pendulum.render(20, 80).astype(int)
    orange = (image[..., 0] > 200) & (abs(image[..., 1] - 165) < 40) & (image[..., 2] < 60)
    ys, xs = np.nonzero(orange)
    assert abs((xs + 0.5).mean() / PX - float(pendulum.sun_x(80))) < 0.2
    assert ys.max() < 20  # only the lower half of the sun lies inside y <= 21
    red = (image[..., 0] > 150) & (image[..., 1] < 60) & (image[..., 2] < 60)
    ys, xs = np.nonzero(red)
    bob_x = 10 + 8 * math.sin(20 * math.pi / 200)
    assert abs((xs + 0.5).mean() / PX - bob_x) < 0.3


@pytest.mark.parametrize("angle", [-40, 0, 20, 43])
def test_bob_is_drawn_over_the_rod(angle):
    theta = angle * math.pi / 200
    x, y = 10 + 8 * math.sin(theta), 10.5 - 8 * math.cos(theta)
    row, col = int((21 - y) / 22 * 96), int(x / 20 * 96)
    assert tuple(pendulum.render(angle, 80)[row, col, :3]) == (178, 34, 34)  # firebrick, not the black rod


def test_generated_folder(rendered):
    names = {p.name for p in (rendered / "train").iterdir()} | {p.name for p in (rendered / "test").iterdir()}
    expected = {pendulum.file_name(i, j) for _, i, j, _ in pendulum.grid(40)}
    assert names == expected
    assert len(list((rendered / "test").iterdir())) == 9
    meta = json.loads((rendered / "pendulum.json").read_text())
    assert (meta["complete"], meta["limit"]) == (False, 40)  # a subset says how it was made
    with open(rendered / "test.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == [pendulum.file_name(i, j) for _, i, j, s in pendulum.grid(40) if s == "test"]
    for row in rows:
        shade, mid = spec_shadow(int(row["angle"]), int(row["light"]))
        assert float(row["shadow_len"]) == pytest.approx(shade, abs=1e-12)
        assert float(row["shadow_pos"]) == pytest.approx(mid, abs=1e-12)
    first = next(p for _, i, j, s in pendulum.grid(40) if s == "test" for p in [pendulum.file_name(i, j)])
    from PIL import Image

    i, j = (int(v) for v in first.split("_")[1:3])
    assert np.array_equal(np.asarray(Image.open(rendered / "test" / first)), pendulum.render(i, j))


def test_refuses_to_overwrite(rendered, tmp_path):
    with pytest.raises(FileExistsError, match="already exists and is not empty; pass --force to replace it"):
        pendulum.generate(rendered, workers=1, limit=4)
    out = tmp_path / "p"
    pendulum.generate(out, workers=1, limit=4)
    pendulum.generate(out, workers=1, limit=8, force=True)
    assert len(list((out / "train").iterdir())) + len(list((out / "test").iterdir())) == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_load_generated_and_original_layout(rendered, tmp_path):
    assert detect_format(rendered) == "pendulum"
    train, test = load_dataset(rendered, "train"), load_dataset(rendered, "test")
    assert (len(train), len(test)) == (31, 9)
    assert test.variables == ("angle", "light", "shadow_len", "shadow_pos")
    assert train.image_shape == (4, 96, 96)
    np.testing.assert_allclose(test.label_mean, train.labels.mean(axis=0))
    item = test[3]
    assert item["image"].shape == (4, 96, 96) and -1 <= item["image"].min() and item["image"].max() <= 1

    original = tmp_path / "original"
    shutil.copytree(rendered, original)
    for extra in (pendulum.METADATA, "train.csv", "test.csv"):
        (original / extra).unlink()
    assert detect_format(original) == "pendulum"
    again = load_dataset(original, "test", resolution=48)
    assert again.image_shape == (4, 48, 48)
    np.testing.assert_allclose(again.labels, test.labels, atol=1e-12)


def test_scm_counterfactuals_agree_with_the_grid(rendered):
    test = load_dataset(rendered, "test")
    rows = test.labels
    do_angle = rows[::-1, 0]
    cf = test.scm.counterfactual(rows, {"angle": do_angle})
    for k in range(len(rows)):
        shade, mid = spec_shadow(int(do_angle[k]), int(rows[k, 1]))
        assert cf[k].tolist() == pytest.approx([do_angle[k], rows[k, 1], shade, mid])
    direct = test.scm.counterfactual(rows, {"shadow_len": 7.0})
    assert (direct[:, 2] == 7.0).all()
    np.testing.assert_array_equal(direct[:, [0, 1, 3]], rows[:, [0, 1, 3]])


def test_bad_folders(rendered, tmp_path):
    from PIL import Image

    broken = tmp_path / "broken"
    shutil.copytree(rendered, broken)
    victim = sorted((broken / "test").iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match=f"row for {victim.name}"):
        load_dataset(broken, "test")
    with pytest.raises(DataError, match="no split 'val'"):
        pendulum.load(broken, "val")

    names_only = tmp_path / "names"
    shutil.copytree(rendered, names_only)
    for extra in (pendulum.METADATA, "train.csv", "test.csv"):
        (names_only / extra).unlink()
    src = next((names_only / "test").iterdir())
    shutil.copy(src, names_only / "test" / "a_0_80_1_1.png")  # the geometry gives shadow 3.09, midpoint 7.97
    with pytest.raises(DataError, match="a_0_80_1_1.png"):
        load_dataset(names_only, "test")
    listed = tmp_path / "listed"
    shutil.copytree(rendered, listed)
    table = listed / "test.csv"
    rows = table.read_text().splitlines()
    table.write_text("\n".join([*rows, rows[1]]) + "\n")
    with pytest.raises(DataError, match=rf"test.csv, row {len(rows) + 1}: {rows[1].split(',')[0]} is listed again \(first in row 2\)"):
        load_dataset(listed, "test")
    table.write_text("\n".join([rows[0], rows[1].rsplit(",", 1)[0] + ",nan", *rows[2:]]) + "\n")
    with pytest.raises(DataError, match="test.csv, row 2: non-finite label"):
        load_dataset(listed, "test")
    table.write_text("\ufeff" + "\n".join(rows) + "\n")  # a byte-order mark, as spreadsheet programs write
    assert len(load_dataset(listed, "test")) == len(rows) - 1
    table.write_text("\n".join([rows[0].rsplit(",", 1)[0], *(r.rsplit(",", 1)[0] for r in rows[1:])]) + "\n")
    with pytest.raises(DataError, match=r"test.csv: missing column 'shadow_pos'$"):
        load_dataset(listed, "test")
    table.write_text("\n".join(rows) + "\n")
    first = listed / "test" / rows[1].split(",")[0]
    Image.open(first).resize((48, 48)).save(first)
    with pytest.raises(DataError, match=r"expected 96x96 pixels, got 48x48$"):
        load_dataset(listed, "test")
    first.write_bytes(b"not a png")
    with pytest.raises(DataError, match=rf"{first.name}: unreadable image"):
        load_dataset(listed, "test")
    (listed / "test" / "stray.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"stray.png: image has no row in .*test.csv$"):
        load_dataset(listed, "test")
    (names_only / "test" / "a_0_80_1_1.png").unlink()
    (names_only / "test" / "picture.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"picture.png: not a pendulum file name \(expected a_<i>_<j>_<shade>_<mid>.png\)"):
        load_dataset(names_only, "test")
    with pytest.raises(DataError, match="--limit"):
        pendulum.generate(tmp_path / "none", limit=0)
    with pytest.raises(DataError, match="--workers"):
        pendulum.generate(tmp_path / "none", workers=0)


def test_generator_cli(tmp_path, capsys):
    from causaldiffae.cli import main

    out = tmp_path / "p"
    assert main(["data", "pendulum", "--out", str(out), "--limit", "5", "--workers", "1"]) == 0
    assert "train 4, test 1 images" in capsys.readouterr().out
    assert main(["data", "pendulum", "--out", str(out), "--limit", "5"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["data", "pendulum", "--out", str(out), "--limit", "6", "--force", "--workers", "1", "--no-progress"]) == 0
    assert len(list((out / "train").iterdir())) == 5 and capsys.readouterr().err == ""


def test_measure_shadow_reads_labels_back_at_any_resolution():
    from PIL import Image

    for i, j in ((-10, 75), (0, 99), (30, 120), (12, 140)):
        shade, mid = (float(v) for v in pendulum.shadow(i, j))
        assert 0.5 <= mid - shade / 2 and mid + shade / 2 <= 19.5  # fully visible
        image = pendulum.render(i, j)
        length, centre = pendulum.measure_shadow(image)
        assert abs(length - shade) <= LEN_TOL / PX and abs(centre - mid) <= CENTRE_TOL / PX
        small = np.asarray(Image.fromarray(image).resize((48, 48), Image.Resampling.BOX))
        length, centre = pendulum.measure_shadow(small)
        assert abs(length - shade) <= 2 * LEN_TOL / PX and abs(centre - mid) <= 2 * CENTRE_TOL / PX
    blank = np.full((96, 96, 4), 255, dtype=np.uint8)
    assert all(np.isnan(pendulum.measure_shadow(blank)))


@pytest.mark.parametrize("limit", [8, 22, 29, 43, 84, 85, 86, 200])
def test_a_limited_grid_varies_angle_and_light_independently(limit):
    """Evenly strided images line up with the rows of lights (two lights, or r = 1, at some sizes)."""
    cells = pendulum.grid(limit)
    angles, lights = np.array([i for _, i, _, _ in cells]), np.array([j for _, _, j, _ in cells])
    assert len(set(zip(angles, lights))) == limit and cells == pendulum.grid(limit)  # distinct and fixed
    assert [n for n, *_ in cells] == list(range(limit)) and sorted(cells, key=lambda c: (c[1], c[2])) == cells  # loop order
    assert len(set(lights)) >= min(limit, 6) and len(set(angles)) >= min(limit, 6) - 1
    if limit >= 20:
        assert abs(np.corrcoef(angles, lights)[0, 1]) < 0.5
    assert split_counts(limit)["test"] == (limit - 1) // 4  # image 0 stays in train, as in the full grid
