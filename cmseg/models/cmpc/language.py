"""CMPC, part 1: soft word types and the two sentence vectors (see :mod:`cmseg.models.cmpc`).

Every word gets a probability of being an *entity*, an *attribute*, a *relation* or
*unnecessary*, learned end-to-end without word-type labels. Two sentence vectors follow:
``q`` sums the entity and attribute words (what the referent looks like) and guides Entity
Perception; ``s`` sums every word but the unnecessary ones and guides the feature exchange.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cmseg.models.cmpc.ops import l2_normalize

__all__ = ["WORD_TYPES", "WordTypeClassifier", "sentence_vectors"]

WORD_TYPES: tuple[str, ...] = ("entity", "attribute", "relation", "unnecessary")
"""The four soft word types, in the order of the classifier's output channels."""


class WordTypeClassifier(nn.Module):
    """Soft word types: ``C -> C/2`` (ReLU) ``-> 4`` per word, softmax over the four types.

    The official code's two 1x1 convolutions over the word axis (``words_parse_1/2``) are
    per-word linear layers, written as such here.

    Args:
        channels: word feature width C.
        hidden: width of the hidden layer (``C / 2``, i.e. 500 in the paper, when None).
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(channels // 2, 1)
        self.hidden = nn.Linear(channels, hidden)
        self.out = nn.Linear(hidden, len(WORD_TYPES))

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Word-type probabilities.

        Args:
            words: ``B x T x C`` word features.
            mask: ``B x T`` bool, True on real words.

        Returns:
            ``B x T x 4`` probabilities (entity, attribute, relation, unnecessary): each real
            word's row sums to 1, padded words are all 0.
        """
        probs = self.out(F.relu(self.hidden(words))).softmax(dim=-1)
        return probs * mask[..., None].to(probs.dtype)


def sentence_vectors(words: torch.Tensor, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two sentence vectors of CMPC, each L2-normalised.

    ``q = sum_t (p_ent + p_attr)_t w_t`` (the official ``valid_lang``) and
    ``s = sum_t (1 - p_unnecessary)_t w_t`` (``nec_lang``). ``1 - p_unnecessary`` is computed
    as ``p_ent + p_attr + p_rel`` so that padded words (all four probabilities 0) add nothing.

    Args:
        words: ``B x T x C`` word features.
        types: ``B x T x 4`` from :class:`WordTypeClassifier` (0 on padded words).

    Returns:
        ``(q, s)``, each ``B x C`` with unit L2 norm (0 if every weight is 0).
    """
    entity_weight = types[..., 0] + types[..., 1]
    needed_weight = types[..., 0] + types[..., 1] + types[..., 2]
    q = torch.einsum("bt,btc->bc", entity_weight, words)
    s = torch.einsum("bt,btc->bc", needed_weight, words)
    return l2_normalize(q, dim=-1), l2_normalize(s, dim=-1)
