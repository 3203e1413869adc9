"""Pure loss functions: arrays in, scalar out, one module per family.

Every loss takes an optional `axis_name`. Called inside the per-device function
(see sslax/parallel.py) with the mesh's axis name, it returns the value of the
loss on the *global* batch, the same on every device, and its gradients are the
global-batch gradients. Called without it, it is the plain single-device loss.
Cross-device statistics go through sslax/parallel.py only.
"""

from sslax.losses.classification import (
                                         label_smoothed_cross_entropy,
                                         softmax_cross_entropy,
                                         token_cross_entropy,
)
from sslax.losses.clustering import dino_center_update, dino_loss, sinkhorn_knopp, swapped_prediction
from sslax.losses.common import l2_normalize
from sslax.losses.contrastive import batch_keys_infonce, moco_infonce, moco_v3_infonce, nt_xent
from sslax.losses.non_contrastive import barlow_twins_loss, byol_loss, simsiam_loss, vicreg_loss
from sslax.losses.reconstruction import masked_patch_mse, masked_regression, mean_regression, weighted_mse
from sslax.losses.sequence import apc_loss, cpc_infonce, masked_frame_loss, skipgram_loss

__all__ = [
    "apc_loss", "barlow_twins_loss", "batch_keys_infonce", "byol_loss", "cpc_infonce", "dino_center_update", "dino_loss",
    "l2_normalize", "label_smoothed_cross_entropy", "masked_frame_loss", "masked_patch_mse",
    "masked_regression", "mean_regression", "moco_infonce", "moco_v3_infonce", "nt_xent",
    "simsiam_loss", "sinkhorn_knopp", "skipgram_loss", "softmax_cross_entropy",
    "swapped_prediction", "token_cross_entropy", "vicreg_loss", "weighted_mse",
]
