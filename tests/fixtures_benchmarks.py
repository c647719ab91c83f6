"""Tiny copies of today's benchmarks (CelebA, FairFace, RAF-DB, AffectNet, AgeDB) in their exact
shipped formats (DATASETS.md), each with the known defects of the real files, for reader tests.
Every writer returns the dataset's root."""

from __future__ import annotations

from pathlib import Path

from fixtures_real import touch_image

# ----------------------------------------------------------------------------------- CelebA

CELEBA_ATTRS = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses "
    "Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache "
    "Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks "
    "Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
    "Wearing_Necklace Wearing_Necktie Young"
).split()
MALE, SMILING, EYEGLASSES = (CELEBA_ATTRS.index(a) for a in ("Male", "Smiling", "Eyeglasses"))


def celeba_values(i: int) -> list[int]:
    """The 40 -1/1 values of image ``i``: attribute j is 1 when (i + j) is even."""
    return [1 if (i + j) % 2 == 0 else -1 for j in range(len(CELEBA_ATTRS))]


CELEBA_GOOD = 12  # 000001.jpg ... 000012.jpg are fine; partition i % 3 (0 train, 1 val, 2 test)
CELEBA_BAD = {  # image -> counted reason
    "000013.jpg": "list_attr_celeba.txt: line has too few fields (row dropped)",
    "000014.jpg": "image file missing (row dropped)",
    "000015.jpg": "list_eval_partition.txt: partition not 0/1/2 (row dropped)",
    "000016.jpg": "image not in list_eval_partition.txt (row dropped)",
}
CELEBA_ZERO = ("000005.jpg", "Eyeglasses")  # a 0 where -1/1 belongs: that label blanked


def _celeba_row(name: str, values: list[int]) -> str:
    # as shipped: the name, then each value right-aligned in 2 columns after a space, so
    # a 1 follows a double space and a -1 a single one
    return name + "".join(f" {v:2d}" for v in values)


def write_celeba(root: Path, crlf: bool = True) -> Path:
    root.mkdir(parents=True)
    rows, partition = [], []
    for i in range(1, CELEBA_GOOD + 5):
        name = f"{i:06d}.jpg"
        values = celeba_values(i)
        if name == CELEBA_ZERO[0]:
            values[CELEBA_ATTRS.index(CELEBA_ZERO[1])] = 0
        if name == "000013.jpg":
            values = values[:-1]
        rows.append(_celeba_row(name, values))
        if name == "000015.jpg":
            partition.append(f"{name} 3")
        elif name != "000016.jpg":
            partition.append(f"{name} {i % 3}")
        if name != "000014.jpg":
            touch_image(root / "img_align_celeba" / name)
    rows.append(_celeba_row("000003.jpg", celeba_values(3)))  # listed twice
    partition.append("000099.jpg 0")  # a partition entry without attributes
    eol = "\r\n" if crlf else "\n"
    # the count line says one row more than the file holds
    attr = [str(len(rows) + 1), " ".join(CELEBA_ATTRS) + " ", *rows]
    (root / "list_attr_celeba.txt").write_text(eol.join(attr) + eol, newline="")
    (root / "list_eval_partition.txt").write_text(eol.join(partition) + eol, newline="")
    names = [f"{i:06d}.jpg" for i in range(1, CELEBA_GOOD + 5)]
    (root / "identity_CelebA.txt").write_text(
        "".join(f"{n} {2880 + i % 4}{eol}" for i, n in enumerate(names)), newline="")
    bbox = [str(len(names)), "image_id x_1 y_1 width height",
            *(f"{n}    {95 + i}   71  226  313" for i, n in enumerate(names))]
    (root / "list_bbox_celeba.txt").write_text(eol.join(bbox) + eol, newline="")
    marks = [str(len(names)), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
             "leftmouth_x leftmouth_y rightmouth_x rightmouth_y",
             *(f"{n} 69  109  106  113   77  142   73  152  108  154" for n in names)]
    (root / "list_landmarks_align_celeba.txt").write_text(eol.join(marks) + eol, newline="")
    return root


# --------------------------------------------------------------------------------- FairFace

FAIRFACE_AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69",
                 "more than 70")
FAIRFACE_RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian",
                  "Indian", "Middle Eastern")
FAIRFACE_TRAIN = 40  # train/1.jpg ... train/40.jpg are fine
FAIRFACE_VAL = 9  # val/1.jpg ... val/9.jpg are fine


def fairface_row(folder: str, i: int) -> str:
    """A good row: age group i % 9, gender i % 2 (Male first), race i % 7."""
    return (f"{folder}/{i}.jpg,{FAIRFACE_AGES[i % 9]},{('Male', 'Female')[i % 2]},"
            f"{FAIRFACE_RACES[i % 7]},{('True', 'False')[i % 2]}")


FAIRFACE_BAD_TRAIN = [  # (row, counted reason)
    ("train/41.jpg,50-59,Male", "fairface_label_train.csv: line has too few fields "
                                "(row dropped)"),
    ("train/42.jpg,70-79,Male,White,True", "age group not a FairFace age group (label blanked)"),
    ("train/43.jpg,20-29,Unknown,Indian,True", "gender not a FairFace gender (label blanked)"),
    ("train/44.jpg,20-29,Female,Martian,True", "race not a FairFace race (label blanked)"),
    ("train/45.jpg,20-29,Female,White,True", "image file missing (row dropped)"),
]


def write_fairface(root: Path) -> Path:
    root.mkdir(parents=True)
    header = "file,age,gender,race,service_test"
    train = [fairface_row("train", i) for i in range(1, FAIRFACE_TRAIN + 1)]
    train += [row for row, _ in FAIRFACE_BAD_TRAIN]
    val = [fairface_row("val", i) for i in range(1, FAIRFACE_VAL + 1)]
    (root / "fairface_label_train.csv").write_text("\n".join([header, *train]) + "\n")
    (root / "fairface_label_val.csv").write_text("\n".join([header, *val]) + "\n")
    for row in train:
        if not row.startswith("train/45.jpg"):
            touch_image(root / row.split(",")[0])
    for row in val:
        touch_image(root / row.split(",")[0])
    return root


# ---------------------------------------------------------------------------------- RAF-DB

RAF_TRAIN = 21  # train_00001.jpg ... train_00021.jpg, label (i - 1) % 7 + 1
RAF_TEST = 7  # test_0001.jpg ... test_0007.jpg, label i
RAF_BAD = [  # (line, counted reason)
    ("train_00022.jpg 8", "list_patition_label.txt: label not 1..7 (row dropped)"),
    ("train_00023.jpg", "list_patition_label.txt: line is not '<name> <label>' (row dropped)"),
    ("val_0001.jpg 3", "list_patition_label.txt: name not train_*/test_* (row dropped)"),
    ("train_00001.jpg 2", "list_patition_label.txt: image listed twice (row dropped)"),
    ("train_00024.jpg 4", "image file missing (row dropped)"),
]


# Annotation/manual/<stem>_manu_attri.txt of image k (its position in the list, from 0):
# gender k % 3 (2 = unsure), race k % 3, age group k % 5; these are missing, malformed or
# carry an unknown race code
RAF_NO_ATTRIBUTES = "train_00002.jpg"
RAF_MALFORMED_ATTRIBUTES = "train_00003.jpg"
RAF_BAD_RACE = "test_0001.jpg"


def raf_attribute_text(gender: int, race: int, age: int) -> str:
    marks = ["37.50\t40.25", "62.75\t39.50", "50.00 55.25", "39.00\t70.50", "61.25\t71.00"]
    return "\n".join([*marks, str(gender), str(race), str(age)]) + "\n"


def write_rafdb(root: Path) -> Path:
    lines = [f"train_{i:05d}.jpg {(i - 1) % 7 + 1}" for i in range(1, RAF_TRAIN + 1)]
    lines += [f"test_{i:04d}.jpg {i}" for i in range(1, RAF_TEST + 1)]
    names = [line.split()[0] for line in lines]
    lines += ["", *(line for line, _ in RAF_BAD)]
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    manual = root / "Annotation" / "manual"
    manual.mkdir(parents=True)
    for k, name in enumerate(names):
        touch_image(root / "Image" / "aligned" / f"{name[:-4]}_aligned.jpg")
        touch_image(root / "Image" / "original" / name)
        attributes = manual / f"{name[:-4]}_manu_attri.txt"
        if name == RAF_MALFORMED_ATTRIBUTES:
            attributes.write_text("37.50\t40.25\n")
        elif name == RAF_BAD_RACE:
            attributes.write_text(raf_attribute_text(k % 3, 7, k % 5))
        elif name != RAF_NO_ATTRIBUTES:
            attributes.write_text(raf_attribute_text(k % 3, k % 3, k % 5))
    return root


# ------------------------------------------------------------------------------- AffectNet

AFFECTNET_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,"
                    "facial_landmarks,expression,valence,arousal")
LANDMARKS = ";".join(f"{40 + k % 30}.{k % 10}" for k in range(136))


def affectnet_row(path: str, expression: str, valence: str = "0.5", arousal: str = "-0.25",
                  box: str = "1,1,5,6") -> str:
    return f"{path},{box},{LANDMARKS},{expression},{valence},{arousal}"


AFFECTNET_TRAIN = 21  # 1/img_001.jpg ... : expression (i - 1) % 7, valence/arousal given
AFFECTNET_BAD = [  # (row, counted reason); image written unless the reason says missing
    (affectnet_row("2/contempt.jpg", "7"),
     "training.csv: contempt has no FER2013 class (emotion blank)"),
    (affectnet_row("2/none.jpg", "8", "-2", "-2"),
     "training.csv: expression 8 None (emotion blank)"),
    (affectnet_row("2/uncertain.jpg", "9", "0.1", "1.5"),
     "training.csv: expression 9 Uncertain (emotion blank)"),
    (affectnet_row("2/nonface.png", "10", "-2", "-2"),
     "training.csv: expression 10 Non-Face (row dropped)"),
    (affectnet_row("2/eleven.jpg", "11"),
     "training.csv: expression not a code 0..10 (row dropped)"),
    (affectnet_row("2/nobox.jpg", "1", box="0,0,0,0"),
     "training.csv: face box empty, width or height <= 0 (row dropped)"),
    ("2/short.jpg,1,1,5,6", "training.csv: line has too few fields (row dropped)"),
    # contempt with no valence, but no image: counted as missing only
    (affectnet_row("2/missing.jpg", "7", "-2"), "image file missing (row dropped)"),
    (affectnet_row("1/img_001.jpg", "4"), "training.csv: image listed twice (row dropped)"),
]
AFFECTNET_VAL = 7  # 3/val_1.jpg ... 3/val_7.jpg, expression i - 1


def write_affectnet(root: Path, validation_header: bool = False) -> Path:
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    train = [affectnet_row(f"1/img_{i:03d}.jpg", str((i - 1) % 7), f"{(i % 5) / 5:.3f}",
                           f"{-(i % 4) / 4:.3f}") for i in range(1, AFFECTNET_TRAIN + 1)]
    train += [row for row, _ in AFFECTNET_BAD]
    val = [affectnet_row(f"3/val_{i}.jpg", str(i - 1)) for i in range(1, AFFECTNET_VAL + 1)]
    (lists / "training.csv").write_text("\n".join([AFFECTNET_HEADER, *train]) + "\n")
    (lists / "validation.csv").write_text(
        "\n".join([AFFECTNET_HEADER] * validation_header + val) + "\n")
    for row in train + val:
        path = row.split(",")[0]
        if path != "2/missing.jpg":
            touch_image(root / "Manually_Annotated_Images" / path)
    return root


# ----------------------------------------------------------------------------------- AgeDB

AGEDB_PEOPLE = [f"Person{k:02d}" for k in range(12)]  # 3 images each, ages 30/40/50
AGEDB_GOOD = {  # file name -> (age, gender, name)
    **{f"{3 * k + j}_{p}_{30 + 10 * j}_{'mf'[k % 2]}.jpg": (30 + 10 * j, k % 2, p)
       for k, p in enumerate(AGEDB_PEOPLE) for j in range(3)},
    "0_MariaCallas_35_f.jpg": (35, 1, "MariaCallas"),
    "100_Jean_Claude_Van_Damme_45_m.jpg": (45, 0, "Jean_Claude_Van_Damme"),
}
AGEDB_BLANKED = {  # file name -> (age or None, gender or None, counted reason)
    "101_AlPacino_xx_m.jpg": (None, 0, "age not a whole number in 0..120 (label blanked)"),
    "102_AlPacino_130_m.jpg": (None, 0, "age not a whole number in 0..120 (label blanked)"),
    "103_BadGender_30_x.jpg": (30, None, "gender not m/f (label blanked)"),
}
AGEDB_DROPPED = {  # file name -> counted reason
    "104_Nobody_abc_q.jpg": "neither age nor gender valid (row dropped)",
    "NoId_Name_30_m.jpg": "file name id not a number (row dropped)",
    "105_Short_m.jpg": "file name has too few fields (row dropped)",
}


def write_agedb(root: Path) -> Path:
    for name in [*AGEDB_GOOD, *AGEDB_BLANKED, *AGEDB_DROPPED]:
        touch_image(root / "AgeDB" / name)
    (root / "AgeDB" / "readme.txt").write_text("not an image: ignored")
    return root
