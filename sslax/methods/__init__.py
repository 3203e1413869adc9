"""Registry of methods. A method is one file that defines a `METHOD = Method(...)`.

Adding a method is one entry in `METHODS`; the trainer never changes.
"""

from __future__ import annotations

from sslax.methods.base import Method
from sslax.methods import (barlow_twins, byol, dino, jigsaw, moco_v2, moco_v3, relative_patch,
                           rotation, simclr, simsiam, supervised, swav, vicreg)
from sslax.methods import data2vec, mae  # self-prediction (issue 4)
from sslax.methods import colorization, denoising_ae, inpainting  # reconstruction (issue 4)
from sslax.methods import apc, cpc, masked_frames  # sequences of frames
from sslax.methods import masked_token, next_token, skipgram  # text

METHODS: dict[str, Method] = {
    "simclr": simclr.METHOD,
    "moco_v2": moco_v2.METHOD,
    "moco_v3": moco_v3.METHOD,
    "byol": byol.METHOD,
    "simsiam": simsiam.METHOD,
    "barlow_twins": barlow_twins.METHOD,
    "vicreg": vicreg.METHOD,
    "dino": dino.METHOD,
    "swav": swav.METHOD,
    "rotation": rotation.METHOD,              # classic pretext tasks (issue 5)
    "jigsaw": jigsaw.METHOD,
    "relative_patch": relative_patch.METHOD,
    "mae": mae.METHOD,                        # self-prediction (issue 4)
    "data2vec": data2vec.METHOD,
    "denoising_ae": denoising_ae.METHOD,      # reconstruction (issue 4)
    "inpainting": inpainting.METHOD,
    "colorization": colorization.METHOD,
    "apc": apc.METHOD,                        # sequences of frames
    "cpc": cpc.METHOD,
    "masked_frames": masked_frames.METHOD,
    "skipgram": skipgram.METHOD,              # text
    "masked_token": masked_token.METHOD,
    "next_token": next_token.METHOD,
    "supervised": supervised.METHOD,  # the same backbone trained with labels, for comparison
}


def get_method(name: str) -> Method:
  if name not in METHODS:
    raise ValueError(f"method.name={name!r} is not a known method; choose one of {sorted(METHODS)}")
  return METHODS[name]
