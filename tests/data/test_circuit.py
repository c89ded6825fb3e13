import io

import numpy as np
import pytest
from PIL import Image

from causaldiffae.cli import main
from causaldiffae.data import DataError, detect_format, load_dataset
from causaldiffae.data import circuit

ORDER = ("red", "green", "blue", "arm")  # official original_latents columns


def colour(k: int) -> tuple[int, int, int]:
    return (10 + 23 * k % 240, 240 - 17 * k % 230, 60 + 41 * k % 190)


def jpeg(rgb: tuple[int, int, int], size: int = 512) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def write_official(file, start: int, n: int, *, objects: bool = False, drop: str | None = None) -> np.ndarray:
    """An npz in the official layout whose sample k is a flat 512x512 JPEG of colour(start + k)."""
    rng = np.random.default_rng(start)
    latents = rng.uniform(0, 1, (n, 2, 4)).astype(np.float32)
    blobs = [[jpeg(colour(start + k)), jpeg((0, 0, 0))] for k in range(n)]
    arrays = {
        "imgs": np.array(blobs, dtype=object if objects else bytes),
        "original_latents": latents,
        "epsilon": rng.normal(size=(n, 2, 4)).astype(np.float32),
        "pressed": np.zeros((n, 2, 3), dtype=np.float32),
        "intervention_labels": np.zeros(n, dtype=np.int64),
        "intervention_masks": np.zeros((n, 4), dtype=bool),
    }
    arrays.pop(drop, None)
    np.savez(file, **arrays)
    return latents


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    parts = [write_official(root / "train-0.npz", 0, 5), write_official(root / "train-1.npz", 5, 4)]
    write_official(root / "val.npz", 20, 3, objects=True)
    write_official(root / "test.npz", 30, 3)
    return root, np.concatenate(parts)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    out = tmp_path_factory.mktemp("standin") / "circuit"
    circuit.generate(out, n=60, resolution=64, seed=3, workers=1)
    return out


def test_official_layout_shards_order_and_images(official):
    root, latents = official
    assert detect_format(root) == "circuit"
    train = load_dataset(root, "train")
    assert train.variables == ("arm", "blue", "green", "red")
    assert train.image_shape == (3, 128, 128)  # 512 px renders at the default resolution
    expected = latents[:, 0, [ORDER.index(v) for v in train.variables]]
    np.testing.assert_allclose(train.labels, expected)
    for k in range(len(train)):  # shard order kept: sample k has colour(k)
        assert np.abs(train.images[k].reshape(-1, 3).mean(0) - colour(k)).max() < 3
    assert train.scm is None


def test_official_object_arrays_need_consent_and_resolution(official, monkeypatch):
    root, latents = official
    monkeypatch.delenv(circuit.ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(DataError, match=r"val\.npz: 'imgs' is a pickled object array.*CAUSALDIFFAE_ALLOW_PICKLE=1"):
        circuit.load(root, "val", resolution=64)
    monkeypatch.setenv(circuit.ALLOW_PICKLE_ENV, "1")
    val = circuit.load(root, "val", resolution=64)
    assert val.image_shape == (3, 64, 64) and len(val) == 3
    assert np.abs(val.images[2].reshape(-1, 3).mean(0) - colour(22)).max() < 3
    np.testing.assert_allclose(val.label_mean, load_dataset(root, "train").labels.mean(0))


@pytest.mark.parametrize("value", ["0", "true", "yes"])
def test_pickles_stay_refused_unless_the_consent_variable_is_exactly_1(official, monkeypatch, value):
    root, _ = official
    monkeypatch.setenv(circuit.ALLOW_PICKLE_ENV, value)
    with pytest.raises(DataError, match=r"val\.npz: 'imgs' is a pickled object array.*CAUSALDIFFAE_ALLOW_PICKLE=1"):
        circuit.load(root, "val", resolution=64)


def test_bad_official_files(tmp_path, monkeypatch):
    monkeypatch.setenv(circuit.ALLOW_PICKLE_ENV, "1")  # the corrupt JPEG below sits in an object array
    write_official(tmp_path / "train.npz", 0, 2, drop="original_latents")
    with pytest.raises(DataError, match=r"train\.npz: missing key 'original_latents'"):
        circuit.load(tmp_path, "train")
    gaps = tmp_path / "gaps"
    gaps.mkdir()
    write_official(gaps / "train-0.npz", 0, 2)
    write_official(gaps / "train-2.npz", 2, 2)
    with pytest.raises(DataError, match=r"train-1\.npz is missing"):
        circuit.load(gaps, "train")
    with pytest.raises(DataError, match="no val.npz"):
        circuit.load(gaps, "val")
    write_official(gaps / "train-1.npz", 1, 1)
    write_official(gaps / "train-01.npz", 1, 1)
    with pytest.raises(DataError, match=r"train-0?1\.npz and train-0?1\.npz are both shard 1; keep one"):
        circuit.load(gaps, "train")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "train.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="unreadable npz"):
        circuit.load(tmp_path / "junk", "train")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    write_official(corrupt / "train.npz", 0, 3)
    with np.load(corrupt / "train.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["imgs"] = arrays["imgs"].astype(object)
    arrays["imgs"][2, 0] = b"\xff\xd8 broken"
    np.savez(corrupt / "train.npz", **arrays)
    with pytest.raises(DataError, match=r"train\.npz: imgs\[2, 0\] is not a readable JPEG"):
        circuit.load(corrupt, "train")
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    np.savez(shapes / "train.npz", imgs=np.array([[jpeg((1, 2, 3), 16)] * 2]), original_latents=np.zeros((1, 4)))
    with pytest.raises(DataError, match=r"'original_latents' has shape \(1, 4\)"):
        circuit.load(shapes, "train")
    for imgs, message in [
        (np.array([jpeg((1, 2, 3), 16)] * 2), r"'imgs' has shape \(2,\), expected \(N, 2\)"),
        (np.zeros((2, 2)), r"'imgs' must hold JPEG bytes, got dtype float64"),
        (np.zeros((0, 2), dtype="S4"), r"'imgs' holds no images"),
    ]:
        np.savez(shapes / "train.npz", imgs=imgs, original_latents=np.zeros((len(imgs), 2, 4)))
        with pytest.raises(DataError, match=rf"train\.npz: {message}"):
            circuit.load(shapes, "train")
    write_official(shapes / "train-0.npz", 0, 2)
    with pytest.raises(DataError, match=r"both train\.npz and shards train-\*\.npz; keep one"):
        circuit.load(shapes, "train")


def test_standin_files_follow_the_official_layout(standin):
    for split, count in (("train", 60), ("val", 6), ("test", 6)):
        with np.load(standin / f"{split}.npz") as data:
            assert set(data.files) == set(circuit.KEYS)
            assert data["imgs"].shape == (count, 2) and data["imgs"].dtype.kind == "S"
            assert data["original_latents"].shape == (count, 2, 4)
            assert data["pressed"].shape == (count, 2, 3)
            with Image.open(io.BytesIO(data["imgs"][0, 1])) as img:
                assert img.format == "JPEG" and img.size == (64, 64)


def test_standin_interventions_are_counterfactuals_of_the_scm(standin):
    scm = circuit.CircuitSCM()
    with np.load(standin / "train.npz") as data:
        latents = data["original_latents"].astype(np.float64)
        targets, masks = data["intervention_labels"], data["intervention_masks"]
    to_graph = [ORDER.index(v) for v in circuit.VARIABLES]
    factual, after = latents[:, 0, to_graph], latents[:, 1, to_graph]
    assert ((latents >= 0) & (latents <= 1)).all()
    assert set(np.unique(targets)) == {0, 1, 2, 3, 4}
    for k in range(len(factual)):
        if targets[k] == 0:
            assert not masks[k].any()
            np.testing.assert_array_equal(after[k], factual[k])
            continue
        name = circuit.VARIABLES[targets[k] - 1]
        assert masks[k].tolist() == [v == name for v in ORDER]
        expected = scm.counterfactual(factual[k : k + 1], {name: after[k, targets[k] - 1]})
        np.testing.assert_allclose(after[k], expected[0], atol=1e-5)  # float32 storage


def test_scm_counterfactual_semantics():
    scm = circuit.CircuitSCM()
    labels, _ = scm.sample(200, np.random.default_rng(1))
    np.testing.assert_allclose(scm.counterfactual(labels, {}), labels, atol=1e-12)
    red = scm.counterfactual(labels, {"red": 0.3})
    assert (red[:, 3] == 0.3).all() and np.array_equal(red[:, :3], labels[:, :3])
    blue = scm.counterfactual(labels, {"blue": 1.0})
    assert np.array_equal(blue[:, [0, 2]], labels[:, [0, 2]])
    assert (blue[:, 3] >= labels[:, 3] - 1e-12).all() and (blue[:, 3] > labels[:, 3] + 0.05).mean() > 0.5
    on_red = scm.counterfactual(labels, {"arm": circuit.BUTTONS["red"]})
    assert on_red[:, 3].mean() > 0.8 and on_red[:, 1].mean() < 0.2
    with pytest.raises(Exception, match="unknown variable 'purple'"):
        scm.counterfactual(labels, {"purple": 1.0})


def light_brightness(image: np.ndarray, name: str) -> float:
    size = image.shape[0]
    x, y = circuit.light_centre(name)
    r = int(circuit._LIGHT_R * size * 0.6)
    cx, cy = int(x * size), int(y * size)
    return float(image[cy - r : cy + r, cx - r : cx + r].astype(np.float64).mean())


def test_standin_images_show_the_arm_and_the_lights(standin):
    ds = load_dataset(standin, "train")  # no resolution: the size it was rendered at
    assert ds.scm is not None and ds.image_shape == (3, 64, 64)
    assert load_dataset(standin, "test", resolution=32).image_shape == (3, 32, 32)
    for k, name in ((1, "blue"), (2, "green"), (3, "red")):
        seen = [light_brightness(img, name) for img in ds.images]
        assert np.corrcoef(seen, ds.labels[:, k])[0, 1] > 0.97, name
    tips = []
    for img in ds.images.astype(int):
        yellow = (img[..., 0] > 180) & (img[..., 1] > 150) & (img[..., 2] < 110)
        ys, xs = np.nonzero(yellow)
        tips.append((xs.mean() + 0.5) / 64)
    truth = [circuit.arm_point(a)[0] for a in ds.labels[:, 0]]
    assert np.abs(np.array(tips) - truth).max() < 0.04


def test_generator_cli(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["data", "circuit", "--out", str(out), "--n", "10", "--resolution", "32", "--workers", "1", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "train 10" in printed.out and printed.err == ""
    assert main(["data", "circuit", "--out", str(out), "--n", "10"]) == 2
    assert "--force" in capsys.readouterr().err
    with pytest.raises(DataError, match="--n"):
        circuit.generate(tmp_path / "none", n=0)
    with pytest.raises(DataError, match="--seed must be at least 0, got -2"):
        circuit.generate(tmp_path / "none", n=5, seed=-2)


def test_standin_is_deterministic_across_workers(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    circuit.generate(one, n=12, resolution=32, seed=5, workers=1)
    circuit.generate(two, n=12, resolution=32, seed=5, workers=2)
    for split in ("train", "val", "test"):
        with np.load(one / f"{split}.npz") as a, np.load(two / f"{split}.npz") as b:
            for key in circuit.KEYS:
                np.testing.assert_array_equal(a[key], b[key])


def test_a_damaged_array_is_not_called_pickled_and_a_bad_stored_resolution_is_named(tmp_path, monkeypatch):
    import io
    import json
    import zipfile

    monkeypatch.delenv(circuit.ALLOW_PICKLE_ENV, raising=False)
    write_official(tmp_path / "whole.npz", 0, 2)
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 2, 4), dtype=np.float32))
    with zipfile.ZipFile(tmp_path / "whole.npz") as whole, zipfile.ZipFile(tmp_path / "train.npz", "w") as cut:
        for name in whole.namelist():  # the same file with its latents cut short
            cut.writestr(name, buf.getvalue()[:-16] if name == "original_latents.npy" else whole.read(name))
    (tmp_path / "whole.npz").unlink()
    with pytest.raises(DataError, match=r"'original_latents' is unreadable \(EOF") as err:
        circuit.load(tmp_path, "train")
    assert "ALLOW_PICKLE" not in str(err.value)  # a truncated file must not nudge anyone to allow pickles
    header = io.BytesIO()  # a member that declares 64 GiB and holds none of it: refused before anything is inflated
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2_000_000_000, 2, 4)})
    with zipfile.ZipFile(tmp_path / "whole.npz", "w") as zf:
        zf.writestr("original_latents.npy", header.getvalue())
    (tmp_path / "whole.npz").replace(tmp_path / "train.npz")
    with pytest.raises(DataError, match=r"'original_latents' declares 59.6 GiB; more than the 2 GiB"):
        circuit._read(tmp_path / "train.npz", "original_latents")
    stand_in = tmp_path / "stand-in"
    circuit.generate(stand_in, n=30, resolution=16, workers=1, progress=False)
    meta = json.loads((stand_in / "circuit.json").read_text())
    (stand_in / "circuit.json").write_text(json.dumps({**meta, "resolution": 30000}))
    with pytest.raises(DataError, match=r"circuit.json: resolution 30000 is not a whole number of pixels in 16..1024"):
        circuit.load(stand_in, "train")


@pytest.mark.parametrize("stored", ["64", 8, 64.0, True], ids=["string", "too-small", "float", "bool"])
def test_a_stored_resolution_must_be_whole_pixels_in_range(tmp_path, stored):
    import json

    out = tmp_path / "c"
    circuit.generate(out, n=1, resolution=16, workers=1, progress=False)
    meta = json.loads((out / "circuit.json").read_text())
    (out / "circuit.json").write_text(json.dumps({**meta, "resolution": stored}))
    with pytest.raises(DataError, match=rf"circuit.json: resolution {stored!r} is not a whole number of pixels in 16..1024"):
        circuit.load(out, "train")


def test_generator_refuses_a_resolution_over_the_maximum_before_writing(tmp_path):
    out = tmp_path / "c"
    with pytest.raises(DataError, match=r"--resolution must be between 16 and 1024, got 2000"):
        circuit.generate(out, n=1, resolution=2000, workers=1, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []
