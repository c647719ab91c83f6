"""Tiny copies of the real datasets in their exact on-disk formats (DATASETS.md), each with the
known defects of the real release, for reader tests. Every writer returns the dataset's root.

Identical tiny images are written as bytes encoded once, so fixtures stay fast.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import scipy.io

# ---------------------------------------------------------------------------------- images


@functools.cache
def _encoded(ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, np.full((8, 8, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_encoded(path.suffix))
    return path


# --------------------------------------------------------------------------------- UTKFace

UTK_GOOD = {  # file name -> (age, gender, race)
    "25_0_0_20170116174525125.jpg.chip.jpg": (25, 0, 0),
    "1_1_2_20161219140623097.jpg.chip.jpg": (1, 1, 2),
    "116_1_3_20170120134639935.jpg.chip.jpg": (116, 1, 3),
    "40_0_4_20170117135009232.jpg": (40, 0, 4),  # the in-the-wild release's naming
    **{f"{20 + i}_{i % 2}_{i % 5}_2017011{i % 10}1{i:02d}00000000.jpg.chip.jpg":
       (20 + i, i % 2, i % 5) for i in range(36)},
}
UTK_BAD = {  # file name -> counted reason
    "39_1_20170116174525125.jpg.chip.jpg": "file name has too few fields (row dropped)",
    "20_0_1_2_20170116174525125.jpg.chip.jpg": "file name has too many fields (row dropped)",
    "53__0_20170116184028385.jpg.chip.jpg": "file name field not a number (row dropped)",
    "x_0_0_20170116184028385.jpg": "file name field not a number (row dropped)",
    "117_0_0_20170116174525125.jpg.chip.jpg": "age not in 0..116 (row dropped)",
    "30_2_0_20170116174525125.jpg.chip.jpg": "gender not 0/1 (row dropped)",
    "30_0_5_20170116174525125.jpg.chip.jpg": "race not 0..4 (row dropped)",
}


def write_utkface(root: Path) -> Path:
    for name in [*UTK_GOOD, *UTK_BAD]:
        touch_image(root / "UTKFace" / name)
    (root / "UTKFace" / "README.txt").write_text("not an image: ignored")
    return root / "UTKFace"


# ------------------------------------------------------------------------------- IMDB-WIKI


def datenum(y: int, m: int, d: int) -> float:
    """Matlab serial date number (day 1 = 1 Jan of year 0)."""
    return float(date(y, m, d).toordinal() + 366)


# (full_path, dob, photo_taken, file gender 1 male/0 female, name, face, second face, image?)
IMDB_ENTRIES = [
    ("01/nm01_a.jpg", datenum(1980, 3, 10), 2010, 1.0, "Ann Lee", 3.5, np.nan, True),  # 30 m
    ("01/nm01_b.jpg", datenum(1980, 8, 10), 2010, 0.0, "Bea Kim", 2.0, np.nan, True),  # 29 f
    ("02/nm02_a.jpg", datenum(1970, 1, 1), 2000, np.nan, "Cy Ray", 1.5, np.nan, True),  # 30 ?
    ("02/nm02_b.jpg", datenum(1970, 1, 1), 2000, 1.0, "Cy Ray", -np.inf, np.nan, True),
    ("03/nm03_a.jpg", datenum(1970, 1, 1), 2000, 1.0, "Di Orr", 0.5, np.nan, True),
    ("03/nm03_b.jpg", datenum(1970, 1, 1), 2000, 0.0, "Di Orr", 4.0, 2.5, True),
    ("04/nm04_a.jpg", datenum(2012, 1, 1), 2010, 0.0, "Ed Poe", 4.0, np.nan, True),  # -2
    ("04/nm04_b.jpg", datenum(1890, 1, 1), 2010, 0.0, "Ed Poe", 4.0, np.nan, True),  # 120
    ("05/nm05_a.jpg", 0.0, 2010, 0.0, "Flo Ng", 4.0, np.nan, True),  # dob not a date
    ("05/nm05_b.jpg", datenum(1960, 5, 5), 2010, 0.0, "Flo Ng", 4.0, np.nan, False),  # no file
    ("06/nm06_a.jpg", datenum(1960, 5, 5), 2011, 1.0, "", 4.0, np.nan, True),  # 51, no name
    # many images of few people, for the group-aware split
    *((f"{10 + k}/nm{10 + k}_{j}.jpg", datenum(1950 + k, 2, 2), 2000, 1.0, f"Star {k}", 3.0,
       np.nan, True) for k in range(12) for j in range(4)),
]
WIKI_ENTRIES = [
    ("17/w1.jpg", datenum(1980, 7, 1), 2010, 0.0, "Ann Lee", 2.0, np.nan, True),  # 30 f
    ("17/w2.jpg", datenum(1980, 7, 2), 2010, 1.0, "Gus Fry", 2.0, np.nan, True),  # 29 m
]


def _write_mat(path: Path, struct: str, entries: list[tuple], celeb_ids: bool) -> None:
    """The struct as ``savemat`` writes a Matlab struct of 1xN fields; cells (object arrays)
    for ``full_path``, ``name``, ``face_location``, so ``loadmat`` nests them as in the real
    files (``full_path[0][i][0]``)."""
    n = len(entries)

    def cell(values: list) -> np.ndarray:
        out = np.empty((1, len(values)), dtype=object)
        for i, v in enumerate(values):
            out[0, i] = v
        return out

    paths, dob, taken, gender, names, face, second, _ = zip(*entries)
    fields = {
        "dob": np.array([dob]),
        "photo_taken": np.array([taken], dtype=float),
        "full_path": cell(list(paths)),
        "gender": np.array([gender]),
        "name": cell(list(names)),
        "face_location": cell([np.array([[10.0 + i, 20.0, 110.0, 120.0]]) for i in range(n)]),
        "face_score": np.array([face]),
        "second_face_score": np.array([second]),
    }
    if celeb_ids:
        celebs = sorted({nm for nm in names if nm})
        fields["celeb_names"] = cell(celebs)
        fields["celeb_id"] = np.array([[celebs.index(nm) + 1 if nm else 0 for nm in names]],
                                      dtype=float)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {struct: fields})
    for rel, *_, has_image in entries:
        if has_image:
            touch_image(path.parent / rel)


def write_imdb_wiki(root: Path) -> Path:
    _write_mat(root / "imdb_crop" / "imdb.mat", "imdb", IMDB_ENTRIES, celeb_ids=True)
    _write_mat(root / "wiki_crop" / "wiki.mat", "wiki", WIKI_ENTRIES, celeb_ids=False)
    return root


# -------------------------------------------------------------------------------- GENKI-4K

GENKI_LINES = [
    "1 -0.021162 0.059530 -0.039662",  # file0001: smiling
    "0 0.1 0.2 0.3",
    "1 0.1 0.2",  # too few values
    "x 0.1 0.2 0.3",  # not a number
    "2 0 0 0",  # smile not 0/1
    "",  # blank line: still line 6, so file0006 has no label
    "1 0 0 0",  # file0007 is missing from files/
    *(f"{i % 2} 0.{i} -0.{i} 0" for i in range(8, 31)),
]


def write_genki4k(root: Path) -> Path:
    (root / "files").mkdir(parents=True)
    (root / "labels.txt").write_text("\r\n".join(GENKI_LINES) + "\r\n")  # CRLF, as shipped
    for i in range(1, len(GENKI_LINES) + 2):  # one image more than label lines
        if i != 7:
            touch_image(root / "files" / f"file{i:04d}.jpg")
    return root


# --------------------------------------------------------------------------------- Adience

ADIENCE_HEADER = ("user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\t"
                  "fiducial_yaw_angle\tfiducial_score")
# fold -> rows of (user_id, original_image, face_id, age, gender); one user per fold
ADIENCE_ROWS = {
    0: [("30601258@N03", "10399646885_67c7d20df9_o.jpg", "1", "(25, 32)", "f"),
        ("30601258@N03", "10424815813_e94629b1ec_o.jpg", "2", "(0, 2)", "m"),
        ("30601258@N03", "10437979845_5985be4b26_o.jpg", "3", "(8, 23)", "u"),
        ("30601258@N03", "10437979845_aaaaaaaaaa_o.jpg", "4", "None", "")],
    1: [("7153718@N04", "11597462363_0ffd1bc1fc_o.jpg", "5", "(27, 32)", "m"),
        ("7153718@N04", "11597462364_0ffd1bc1fc_o.jpg", "6", "35", "f"),
        ("7153718@N04", "11597462365_0ffd1bc1fc_o.jpg", "7", "3", "m")],
    2: [("8187011@N06", "9444546011_0a0bc5bd33_o.jpg", "8", "(38, 42)", "f"),
        ("8187011@N06", "9444546012_0a0bc5bd33_o.jpg", "9", "(38, 48)", "m"),
        ("8187011@N06", "9444546013_0a0bc5bd33_o.jpg", "10", "", "f")],
    3: [("10044155@N06", "8565402474_1f8b1b1b2e_o.jpg", "11", "(60, 100)", "m"),
        ("10044155@N06", "8565402475_1f8b1b1b2e_o.jpg", "12", "(4, 6)", "f"),
        ("10044155@N06", "8565402476_1f8b1b1b2e_o.jpg", "13", "(15, 20)", "x")],
    4: [("115321157@N03", "12111738395_a7f715aa4e_o.jpg", "14", "(48, 53)", "m"),
        ("115321157@N03", "12111738396_a7f715aa4e_o.jpg", "15", "(8, 12)", "f"),
        ("115321157@N03", "12111738397_a7f715aa4e_o.jpg", "16", "(38, 43)", "m")],
}
ADIENCE_NO_IMAGE = "16"  # face_id whose image is not on disk


def adience_image(root: Path, layout: str, user: str, face_id: str, image: str) -> Path:
    prefix = {"aligned": "landmark_aligned_face", "faces": "coarse_tilt_aligned_face"}[layout]
    return root / layout / user / f"{prefix}.{face_id}.{image}"


def write_adience(root: Path) -> Path:
    root.mkdir(parents=True)
    for fold, rows in ADIENCE_ROWS.items():
        lines = [ADIENCE_HEADER]
        for user, image, face_id, age, gender in rows:
            lines.append("\t".join([user, image, face_id, age, gender,
                                    "0", "414", "1086", "1383", "-115", "30", "17"]))
            if face_id != ADIENCE_NO_IMAGE:
                for layout in ("aligned", "faces"):
                    touch_image(adience_image(root, layout, user, face_id, image))
        if fold == 0:
            lines.append("30601258@N03\tbroken_line.jpg")  # too few fields
        (root / f"fold_{fold}_data.txt").write_text("\n".join(lines) + "\n")
    return root


# --------------------------------------------------------------------------------- FER2013


def fer_pixels(row: int) -> np.ndarray:
    return ((np.arange(48 * 48) + row) % 256).astype(np.uint8).reshape(48, 48)


def _pixel_text(row: int) -> str:
    return " ".join(map(str, fer_pixels(row).ravel()))


FER_LINES = [  # data rows, in file order (row index = position)
    f"0,{_pixel_text(0)},Training",
    f"3,{_pixel_text(1)},PublicTest",
    f"6,{_pixel_text(2)},PrivateTest",
    f"2,{' '.join(['7'] * 2303)},Training",  # one value short
    f"7,{_pixel_text(4)},Training",  # emotion out of range
    f"4,{_pixel_text(5).replace('5 ', '256 ', 1)},Training",  # value > 255
    f"5,{_pixel_text(6)},Unknown",  # bad Usage
    f"1,{_pixel_text(7).replace('7 ', 'a ', 1)},Training",  # not a number
    "3,Training",  # too few fields
    f"4,{_pixel_text(9)},Training",
]


def write_fer2013(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "fer2013.csv").write_text("emotion,pixels,Usage\n" + "\n".join(FER_LINES) + "\n")
    return root


# ------------------------------------------------------------------------------------- CK+


def _ck_sequence(root: Path, subject: str, seq: str, frames: int, code: str | None) -> None:
    for f in range(1, frames + 1):
        touch_image(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{f:08d}.png")
    emotion_dir = root / "Emotion" / subject / seq
    emotion_dir.mkdir(parents=True, exist_ok=True)  # the release has folders for all sequences
    if code is not None:
        (emotion_dir / f"{subject}_{seq}_{frames:08d}_emotion.txt").write_text(f"   {code}\n")


CK_SEQUENCES = [  # (subject, sequence, frames, emotion file text or None)
    ("S005", "001", 11, "3.0000000e+00"),  # disgust
    ("S005", "002", 6, None),  # unlabelled sequence
    ("S010", "001", 5, "2.0000000e+00"),  # contempt
    ("S010", "002", 5, "5.0000000e+00"),  # happy
    ("S011", "001", 2, "6.0000000e+00"),  # sadness, shorter than the last 3 frames
    ("S022", "001", 4, "nine"),  # unreadable code
    ("S026", "001", 4, "7.0000000e+00"),  # surprise
    ("S026", "002", 4, "1.0000000e+00"),  # anger
    ("S026", "003", 4, "4.0000000e+00"),  # fear
    # more subjects with two sequences each, for the split by subject
    *((f"S{100 + k}", f"00{j}", 4, "5.0000000e+00") for k in range(20) for j in (1, 2)),
]


def write_ckplus(root: Path) -> Path:
    for subject, seq, frames, code in CK_SEQUENCES:
        _ck_sequence(root, subject, seq, frames, code)
    orphan = root / "Emotion" / "S099" / "001"  # a label whose images are absent
    orphan.mkdir(parents=True)
    (orphan / "S099_001_00000005_emotion.txt").write_text("   1.0000000e+00\n")
    return root
