"""The outputs of a frozen network, remembered per input image.

When a backbone is frozen (no trainable weight, batch norms in inference mode) its features
of an image never change, yet a training loop recomputes them every time the image comes
round again: a quarter of the forward pass of the ris demo's CMPC. :class:`FeatureCache`
computes them once per distinct image and serves them from memory afterwards. Images are
keyed by their content (a hash of the tensor's bytes), so a flipped or re-cropped image is a
new entry and a cache never serves stale features.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

__all__ = ["FeatureCache", "check_frozen"]

#: Default memory budget of a cache: 2 GiB of features.
DEFAULT_MAX_BYTES = 2 * 2**30
#: Features are stored in blocks of at most this many bytes (at least one image) ...
BLOCK_BYTES = 64 * 2**20
#: ... and at most this many images.
BLOCK_ROWS = 64


def check_frozen(module: nn.Module) -> None:
    """Raise ``RuntimeError`` unless ``module``'s output depends on its input alone: no
    parameter requires a gradient, and no batch norm, dropout or drop-path layer is in
    training mode (batch statistics and random masks change from call to call)."""
    trainable = [name for name, p in module.named_parameters() if p.requires_grad]
    if trainable:
        raise RuntimeError(
            f"a feature cache needs a frozen module; {len(trainable)} parameters are trainable "
            f"(first: {trainable[0]})"
        )
    for name, sub in module.named_modules():
        stochastic = isinstance(sub, _BatchNorm | _DropoutNd) or type(sub).__name__ == "DropPath"
        if stochastic and sub.training:
            raise RuntimeError(
                f"a feature cache needs a frozen module; {name or type(sub).__name__} "
                f"({type(sub).__name__}) is in training mode"
            )


class FeatureCache:
    """Memoises ``module(images)`` image by image for a frozen ``module``.

    ``cache(module, images)`` returns what ``module(images)`` would (a list of
    ``B x C_i x h_i x w_i`` maps, as a timm feature pyramid returns), computing only the
    images not seen before, in one batch. Entries are kept until ``max_bytes`` is reached;
    later images are computed every time. The values equal the uncached ones up to float
    rounding (a convolution may sum in another order for another batch size).

    The features are copied into large preallocated blocks (about :data:`BLOCK_BYTES` each)
    rather than kept as one small tensor per image: thousands of long-lived small
    allocations scattered over the heap slowed every later training step by a quarter
    (measured on the ris demo), more than the cache saved.

    Args:
        max_bytes: memory budget of the stored features (default 2 GiB).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0  # allocated, in whole blocks
        self.hits = 0
        self.misses = 0
        # image key -> (shape signature, block, row); signature -> blocks, each a list of
        # per-level tensors of `rows` images; signature -> rows used in its last block
        self._where: dict[bytes, tuple[tuple, int, int]] = {}
        self._blocks: dict[tuple, list[list[torch.Tensor]]] = {}
        self._used: dict[tuple, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    @staticmethod
    def _key(image: torch.Tensor) -> bytes:
        """A content hash of one image (a host tensor), its shape and dtype."""
        digest = hashlib.blake2b(image.contiguous().numpy().tobytes(), digest_size=16)
        digest.update(repr((tuple(image.shape), str(image.dtype))).encode())
        return digest.digest()

    def _store(self, key: bytes, levels: list[torch.Tensor]) -> None:
        """Copy one image's levels into a block (a new block when the last one is full and
        the budget allows); drop them when it does not."""
        signature = tuple((tuple(t.shape), t.dtype, t.device) for t in levels)
        blocks = self._blocks.setdefault(signature, [])
        used = self._used.get(signature, 0)
        if not blocks or used == blocks[-1][0].shape[0]:
            per_image = sum(t.numel() * t.element_size() for t in levels)
            room = (self.max_bytes - self.bytes) // per_image
            rows = min(BLOCK_ROWS, max(1, BLOCK_BYTES // per_image), room)
            if rows < 1:
                return
            blocks.append([t.new_empty((rows, *t.shape)) for t in levels])
            self.bytes += rows * per_image
            used = 0
        for block, level in zip(blocks[-1], levels, strict=True):
            block[used].copy_(level)
        self._where[key] = (signature, len(blocks) - 1, used)
        self._used[signature] = used + 1

    def _load(self, key: bytes) -> list[torch.Tensor]:
        signature, block, row = self._where[key]
        return [level[row] for level in self._blocks[signature][block]]

    def __call__(self, module: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
        """``module(images)`` (``images`` ``B x ...``), from memory where possible.

        Raises:
            RuntimeError: ``module`` is not frozen (:func:`check_frozen`).
        """
        check_frozen(module)
        keys = [self._key(image) for image in images.detach().cpu()]  # one device-to-host copy
        fresh: dict[bytes, list[torch.Tensor]] = {}
        missing = [i for i, key in enumerate(keys) if key not in self._where]
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            with torch.no_grad():
                outputs = module(images if len(missing) == len(keys) else images[missing])
            for row, i in enumerate(missing):
                if keys[i] not in fresh:
                    fresh[keys[i]] = [level[row] for level in outputs]
                    self._store(keys[i], fresh[keys[i]])
            if len(fresh) == len(keys):  # every image new and distinct: the batch as computed
                return list(outputs)
        per_image = [fresh[key] if key in fresh else self._load(key) for key in keys]
        return [torch.stack(level) for level in zip(*per_image, strict=True)]
