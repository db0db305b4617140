"""Background sources: folder crops/rescales, corrupt files, procedural kinds, bundled photos."""

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from backgrounds import (PROCEDURAL_KINDS, BackgroundError, BundledBackgrounds, FolderBackgrounds,
                         MixedBackgrounds, ProceduralBackgrounds, default_backgrounds, make_backgrounds)

SHARED = Path("/work/shared/data/backgrounds")


def _write_photo(path: Path, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return img


@pytest.fixture()
def photo_dir(tmp_path):
    _write_photo(tmp_path / "a.jpg", 300, 400, 0)
    _write_photo(tmp_path / "sub" / "b.png", 500, 200, 1)
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.mark.parametrize("size", [(64, 64), (100, 50), (256, 256)])
def test_folder_crops_and_rescales(photo_dir, size):
    src = FolderBackgrounds(photo_dir)
    assert len(src) == 2 and src.files == ["a.jpg", "sub/b.png"]
    for s in range(6):
        img, meta = src.sample(np.random.default_rng(s), size)
        assert img.shape == (*size, 3) and img.dtype == np.uint8
        assert meta["source"] == "folder" and meta["file"] in src.files
        x0, y0, cw, ch = meta["crop"]
        dh, dw = meta["decoded_hw"]
        assert 0 <= x0 and x0 + cw <= dw and 0 <= y0 and y0 + ch <= dh
        assert abs(cw / ch - size[1] / size[0]) < 0.1


def test_folder_deterministic_and_picklable(photo_dir):
    src = FolderBackgrounds(photo_dir)
    a, ma = src.sample(np.random.default_rng(5), (80, 80))
    src2 = pickle.loads(pickle.dumps(src))
    b, mb = src2.sample(np.random.default_rng(5), (80, 80))
    assert np.array_equal(a, b) and ma == mb


def test_folder_corrupt_file_names_file(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    src = FolderBackgrounds(tmp_path)
    with pytest.raises(BackgroundError, match="broken.jpg"):
        src.sample(np.random.default_rng(0), (32, 32))


def test_folder_empty_and_missing(tmp_path):
    with pytest.raises(BackgroundError, match="no images"):
        FolderBackgrounds(tmp_path).sample(np.random.default_rng(0), (32, 32))
    with pytest.raises(BackgroundError, match="does not exist"):
        FolderBackgrounds(tmp_path / "nope")


@pytest.mark.parametrize("kind", sorted(PROCEDURAL_KINDS))
def test_procedural_kind(kind):
    src = ProceduralBackgrounds((kind,))
    a, ma = src.sample(np.random.default_rng(3), (96, 128))
    b, mb = src.sample(np.random.default_rng(3), (96, 128))
    c, _ = src.sample(np.random.default_rng(4), (96, 128))
    assert a.shape == (96, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and ma == mb and ma["kind"] == kind
    assert not np.array_equal(a, c)
    assert a.std() > 0.5  # not a constant image


def test_procedural_unknown_kind_lists_valid():
    with pytest.raises(ValueError, match="wood"):
        ProceduralBackgrounds(("marble_xyz",))


def test_bundled_loads():
    src = BundledBackgrounds()
    assert len(src.files) >= 5
    seen = set()
    for s in range(10):
        img, meta = src.sample(np.random.default_rng(s), (64, 64))
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and meta["source"] == "bundled"
        seen.add(meta["file"])
    assert len(seen) >= 3


def test_mixed_and_registry(tmp_path, photo_dir):
    mix = MixedBackgrounds([(ProceduralBackgrounds(), 1.0), (FolderBackgrounds(photo_dir), 1.0)])
    sources = {mix.sample(np.random.default_rng(s), (32, 32))[1]["source"] for s in range(20)}
    assert sources == {"procedural", "folder"}
    assert isinstance(make_backgrounds(str(photo_dir)), FolderBackgrounds)
    assert isinstance(make_backgrounds("procedural"), ProceduralBackgrounds)
    assert isinstance(make_backgrounds("default"), MixedBackgrounds)
    assert make_backgrounds("procedural:wood,tiles").kinds == ("wood", "tiles")
    with pytest.raises(ValueError, match="bundled"):
        make_backgrounds("no_such_source")
    with pytest.raises(ValueError):
        MixedBackgrounds([])
    img, meta = default_backgrounds().sample(np.random.default_rng(0), (48, 48))
    assert img.shape == (48, 48, 3)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared background photos not present")
def test_shared_folder_reduced_decode():
    src = FolderBackgrounds(SHARED)
    img, meta = src.sample(np.random.default_rng(0), (128, 128))
    assert img.shape == (128, 128, 3)
    assert min(meta["decoded_hw"]) < 700  # decoded with IMREAD_REDUCED_* for a small output


def test_crop_resize_flip_and_channel_gains():
    from backgrounds.base import channel_gains, crop_resize

    img = cv2.resize(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8), (90, 60))
    for s in range(12):
        out, meta = crop_resize(img, np.random.default_rng(s), (40, 50))
        ref, _ = crop_resize(img, np.random.default_rng(s), (40, 50), flip=False)
        assert out.flags.c_contiguous and out.shape == (40, 50, 3)
        assert np.array_equal(out, ref[:, ::-1] if meta["flip"] else ref)
    g = (0.87, 1.13, 1.0)
    out = channel_gains(img, g)
    ref = cv2.multiply(img, (*g, 0.0), dtype=cv2.CV_8U)
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    exact = np.clip(np.floor(img * np.asarray(g) + 0.5), 0, 255)
    assert np.abs(out - exact).max() <= 1 and np.mean(out == exact) > 0.99


def test_truncated_photo_is_skipped_counted_and_never_used(tmp_path):
    import cv2

    good = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", good)
    data = buf.tobytes()
    (tmp_path / "a_truncated.jpg").write_bytes(data[: len(data) // 2])  # decodes with a grey block
    (tmp_path / "b_good.jpg").write_bytes(data)
    src = FolderBackgrounds(tmp_path)
    files = set()
    for seed in range(12):
        img, meta = src.sample(np.random.default_rng(seed), (48, 48))
        files.add(meta["file"])
    assert files == {"b_good.jpg"} and list(src.skipped) == ["a_truncated.jpg"]
    assert "truncated" in src.skipped["a_truncated.jpg"]


def test_same_sample_whatever_was_decoded_before(tmp_path):
    import cv2

    rng0 = np.random.default_rng(1)
    photo = cv2.GaussianBlur(rng0.integers(0, 256, (900, 1200, 3), dtype=np.uint8), (0, 0), 3)
    cv2.imwrite(str(tmp_path / "p.jpg"), photo)
    first = FolderBackgrounds(tmp_path).sample(np.random.default_rng(4), (64, 64))[0]
    src = FolderBackgrounds(tmp_path)
    src.sample(np.random.default_rng(9), (600, 600))  # a large request decodes at full size first
    again = src.sample(np.random.default_rng(4), (64, 64))[0]
    assert np.array_equal(first, again)
    assert len(src.photo_cache) == 2  # the source's own cache: one entry per reduction


def test_a_pickled_source_arrives_with_an_empty_cache_of_the_same_budget(tmp_path):
    import pickle

    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 50, 3), 90, np.uint8))
    src = FolderBackgrounds(tmp_path)
    img, _ = src.sample(np.random.default_rng(1), (16, 16))
    assert len(src.photo_cache) == 1 and src._headers
    copy = pickle.loads(pickle.dumps(src))
    assert len(copy.photo_cache) == 0 and copy.photo_cache.budget == src.photo_cache.budget
    assert not copy._headers
    assert np.array_equal(copy.sample(np.random.default_rng(1), (16, 16))[0], img)


def test_pixels_never_depend_on_what_was_decoded_before(tmp_path):
    """The decoded-photo cache is keyed on the JPEG reduction: a small sample drawn after a large one
    (which decodes the same file at full size) is byte-identical to the same sample drawn first."""
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8), (0, 0), 3)
    cv2.imwrite(str(tmp_path / "a.jpg"), photo)
    src = FolderBackgrounds(tmp_path)
    first, meta_small = src.sample(np.random.default_rng(5), (64, 64))
    _, meta_large = src.sample(np.random.default_rng(6), (1024, 1024))
    again, _ = src.sample(np.random.default_rng(5), (64, 64))
    assert meta_small["decoded_hw"] != meta_large["decoded_hw"]  # two reductions of one file
    assert np.array_equal(first, again)
